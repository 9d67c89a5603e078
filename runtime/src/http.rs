//! HTTP ingest (`[http]`, `type = "http"` sources) and the admin listener
//! (`[metrics] listen`).
//!
//! A client POSTs records to a source's path with `Authorization: Bearer
//! TOKEN`. The token's SHA-256 is looked up in the tokens file, which names
//! the tenant (every event of the request gets that `tenant_uid`, whatever the
//! payload says) and, optionally, the streams the token may write. The body
//! is split into records by its type: `application/json` — an array is one
//! record per element, anything else one record (a Kubernetes `EventList`
//! goes whole to the parser, which makes one event per item); any other type
//! (`application/x-ndjson`, `text/plain`, none) — one record per non-empty
//! line. The records are appended to the source's spool and fsynced before
//! the answer, so a 200 means they survive a crash (see `sources/spool.rs`).
//!
//! Answers: 200 `{"accepted": N}`; 400 a body that is not what its type says;
//! 401 no or an unknown token; 403 a stream the token may not write; 404 no
//! source at the path; 405 not a POST; 413 a body over `max_body_mb`; 429 the
//! pipeline is behind by more than `spool_limit_mb` (with `Retry-After`); 503
//! the spool cannot be written (with `Retry-After`). Logs name the source,
//! tenant and status, never a token or a body.

use crate::sources::Spool;
use anyhow::{Context, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::fmt::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

/// What a token may do.
#[derive(Debug, Clone)]
pub struct Grant {
    pub tenant: String,
    /// The streams it may write (`None`: any).
    pub streams: Option<Vec<String>>,
}

/// Tokens by the SHA-256 of their text.
pub type Tokens = HashMap<[u8; 32], Grant>;

/// Whether a tenant name is 1 to 64 letters, digits, `-`, `_` or `.` (it is a
/// path segment of partitions and a field of spool lines).
pub fn valid_tenant(tenant: &str) -> bool {
    !tenant.is_empty()
        && tenant.len() <= 64
        && tenant.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// Reads a tokens file: `TENANT SHA256-HEX [STREAM,STREAM...]` per line.
pub fn read_tokens(path: &Path) -> anyhow::Result<Tokens> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read the tokens file {}", path.display()))?;
    let mut tokens = Tokens::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or_default().trim();
        if line.is_empty() {
            continue;
        }
        let at = || format!("{}:{}", path.display(), n + 1);
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [tenant, digest, rest @ ..] = fields.as_slice() else {
            bail!("{}: expected `TENANT SHA256-OF-TOKEN [STREAM,...]`", at());
        };
        if !valid_tenant(tenant) {
            bail!("{}: tenant `{tenant}` must be 1 to 64 letters, digits, `-`, `_` or `.`", at());
        }
        let mut hash = [0u8; 32];
        hex::decode_to_slice(digest, &mut hash)
            .map_err(|_| anyhow::anyhow!("{}: `{digest}` is not a hex SHA-256 (64 hex digits)", at()))?;
        let streams = match rest {
            [] => None,
            [list] => Some(list.split(',').filter(|s| !s.is_empty()).map(str::to_string).collect()),
            _ => bail!("{}: streams are one comma-separated field", at()),
        };
        if tokens.insert(hash, Grant { tenant: tenant.to_string(), streams }).is_some() {
            bail!("{}: the same token hash is listed twice", at());
        }
    }
    Ok(tokens)
}

/// Where a path's requests go.
pub struct Route {
    pub source: String,
    /// Every stream the source can write.
    pub streams: Vec<String>,
    pub spool: Arc<Spool>,
}

/// The ingest listener's settings.
pub struct Ingest {
    pub routes: HashMap<String, Route>,
    pub tokens: Tokens,
    pub max_body: usize,
    pub spool_limit: u64,
    /// Answers given, per (source or "", status).
    pub answers: Mutex<std::collections::BTreeMap<(String, u16), u64>>,
    /// Records accepted, per source.
    pub accepted: Mutex<std::collections::BTreeMap<String, u64>>,
}

impl Ingest {
    pub fn new(routes: HashMap<String, Route>, tokens: Tokens, max_body: usize, spool_limit: u64) -> Ingest {
        Ingest { routes, tokens, max_body, spool_limit, answers: Mutex::default(), accepted: Mutex::default() }
    }

    /// The listener's counters and the spools' backlog, as Prometheus text.
    pub fn prometheus(&self) -> String {
        use std::fmt::Write;
        let mut out = String::new();
        out.push_str("# HELP sluice_http_requests_total Ingest requests answered, by source and status.\n");
        out.push_str("# TYPE sluice_http_requests_total counter\n");
        for ((source, status), n) in self.answers.lock().expect("not poisoned").iter() {
            let source = crate::telemetry::label(source);
            let _ = writeln!(out, "sluice_http_requests_total{{source=\"{source}\",status=\"{status}\"}} {n}");
        }
        out.push_str("# HELP sluice_http_records_accepted_total Records spooled (acknowledged with a 200).\n");
        out.push_str("# TYPE sluice_http_records_accepted_total counter\n");
        for (source, n) in self.accepted.lock().expect("not poisoned").iter() {
            let _ = writeln!(
                out,
                "sluice_http_records_accepted_total{{source=\"{}\"}} {n}",
                crate::telemetry::label(source)
            );
        }
        out.push_str("# HELP sluice_spool_unread_bytes Bytes acknowledged and not yet read by the pipeline.\n");
        out.push_str("# TYPE sluice_spool_unread_bytes gauge\n");
        let mut routes: Vec<&Route> = self.routes.values().collect();
        routes.sort_by(|a, b| a.source.cmp(&b.source));
        for route in routes {
            let source = crate::telemetry::label(&route.source);
            let _ = writeln!(out, "sluice_spool_unread_bytes{{source=\"{source}\"}} {}", route.spool.unread());
        }
        out
    }
}

/// TLS from PEM files: the server's chain and key, and for mTLS the CAs
/// client certificates must chain to; `at` names the settings in errors
/// (`http`, `sources.NAME`).
pub fn tls_acceptor(at: &str, cert: &Path, key: &Path, client_ca: Option<&Path>) -> anyhow::Result<TlsAcceptor> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let certs: Vec<CertificateDer> = CertificateDer::pem_file_iter(cert)
        .and_then(|i| i.collect())
        .with_context(|| format!("{at}.tls_cert: cannot read certificates from {}", cert.display()))?;
    anyhow::ensure!(!certs.is_empty(), "{at}.tls_cert: no certificate in {}", cert.display());
    let key = PrivateKeyDer::from_pem_file(key)
        .with_context(|| format!("{at}.tls_key: cannot read a private key from {}", key.display()))?;
    let builder =
        rustls::ServerConfig::builder_with_provider(provider.clone()).with_safe_default_protocol_versions()?;
    let builder = match client_ca {
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for c in CertificateDer::pem_file_iter(ca)
                .with_context(|| format!("{at}.client_ca: cannot read {}", ca.display()))?
            {
                roots.add(c.with_context(|| format!("{at}.client_ca: {}", ca.display()))?)?;
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .with_context(|| format!("{at}.client_ca"))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_single_cert(certs, key).with_context(|| format!("{at}.tls_cert/tls_key"))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

type Body = http_body_util::combinators::BoxBody<Bytes, std::convert::Infallible>;
type Reply = Response<Body>;

fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).boxed()
}

fn reply(status: StatusCode, message: &str) -> Reply {
    let body = serde_json::json!({ "error": message }).to_string();
    let mut r = Response::new(full(body));
    *r.status_mut() = status;
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

fn retry_after(mut r: Reply) -> Reply {
    r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    r
}

/// The records of a body, by its content type; an error says what is wrong.
pub fn split_body(content_type: &str, body: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    let media = content_type.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    if media != "application/json" {
        return Ok(body
            .split(|&b| b == b'\n')
            .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
            .filter(|l| !l.iter().all(u8::is_ascii_whitespace))
            .map(<[u8]>::to_vec)
            .collect());
    }
    if let Err(e) = serde_json::from_slice::<serde::de::IgnoredAny>(body) {
        return Err(format!("the body is not JSON: {e}"));
    }
    // valid JSON holds newlines only between tokens: they can become spaces
    let flat = |text: &[u8]| text.iter().map(|&b| if b == b'\n' || b == b'\r' { b' ' } else { b }).collect();
    let text = body.trim_ascii();
    if !text.starts_with(b"[") {
        return Ok(vec![flat(text)]);
    }
    Ok(array_elements(text).into_iter().map(flat).collect())
}

/// The elements of a JSON array's text (already known to be valid JSON),
/// each as it was written.
fn array_elements(text: &[u8]) -> Vec<&[u8]> {
    let mut elements = Vec::new();
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    let mut start = None;
    for (i, &b) in text.iter().enumerate() {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => depth += 1,
            b']' | b'}' => depth -= 1,
            _ => {}
        }
        if b.is_ascii_whitespace() {
            continue;
        }
        match (depth, b) {
            // the outer array's own brackets and commas end elements
            (1, b'[') if i == 0 => continue,
            (1, b',') | (0, b']') => {
                if let Some(s) = start.take() {
                    elements.push(text[s..i].trim_ascii());
                }
            }
            _ if start.is_none() => start = Some(i),
            _ => {}
        }
    }
    elements
}

async fn handle(ingest: Arc<Ingest>, req: Request<Incoming>) -> Reply {
    let source = ingest.routes.get(req.uri().path()).map(|r| r.source.clone()).unwrap_or_default();
    let answer = answer(&ingest, req).await;
    *ingest.answers.lock().expect("not poisoned").entry((source, answer.status().as_u16())).or_default() += 1;
    answer
}

/// A body over the limit is still read, up to this many times the limit, and
/// thrown away before the 413 is sent: a client still writing its body to a
/// closed connection sees a broken pipe, not the answer.
const DRAIN_FACTOR: usize = 4;

/// Reads and discards up to `cap` bytes of `body`.
async fn drain(mut body: Incoming, cap: usize) {
    let mut read = 0;
    while read <= cap {
        match body.frame().await {
            Some(Ok(frame)) => read += frame.data_ref().map_or(0, Bytes::len),
            _ => return,
        }
    }
}

async fn answer(ingest: &Ingest, req: Request<Incoming>) -> Reply {
    let Some(route) = ingest.routes.get(req.uri().path()) else {
        return reply(StatusCode::NOT_FOUND, "no source at this path");
    };
    if req.method() != Method::POST {
        let mut r = reply(StatusCode::METHOD_NOT_ALLOWED, "only POST");
        r.headers_mut().insert(header::ALLOW, HeaderValue::from_static("POST"));
        return r;
    }
    let token = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim());
    let Some(grant) = token.and_then(|t| ingest.tokens.get(&<[u8; 32]>::from(Sha256::digest(t.as_bytes())))) else {
        tracing::info!(source = %route.source, status = 401, "Ingest refused: no or an unknown token.");
        let mut r = reply(StatusCode::UNAUTHORIZED, "a valid bearer token is needed");
        r.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        return r;
    };
    if let Some(allowed) = &grant.streams
        && let Some(stream) = route.streams.iter().find(|s| !allowed.contains(s))
    {
        tracing::info!(source = %route.source, tenant = %grant.tenant, %stream, status = 403, "Ingest refused: stream not granted.");
        return reply(StatusCode::FORBIDDEN, &format!("this token may not write stream `{stream}`"));
    }
    let declared = req.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<usize>().ok());
    if declared.is_some_and(|n| n > ingest.max_body) {
        drain(req.into_body(), ingest.max_body.saturating_mul(DRAIN_FACTOR)).await;
        return reply(StatusCode::PAYLOAD_TOO_LARGE, &format!("the body is over {} bytes", ingest.max_body));
    }
    if route.spool.unread() > ingest.spool_limit {
        tracing::info!(source = %route.source, tenant = %grant.tenant, status = 429, "Ingest deferred: the pipeline is behind.");
        return retry_after(reply(StatusCode::TOO_MANY_REQUESTS, "the pipeline is behind; retry later"));
    }
    let content_type =
        req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    let mut incoming = req.into_body();
    let mut body = Vec::new();
    loop {
        match incoming.frame().await {
            None => break,
            Some(Ok(frame)) => {
                let Some(data) = frame.data_ref() else { continue };
                if body.len() + data.len() > ingest.max_body {
                    drain(incoming, ingest.max_body.saturating_mul(DRAIN_FACTOR)).await;
                    return reply(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        &format!("the body is over {} bytes", ingest.max_body),
                    );
                }
                body.extend_from_slice(data);
            }
            Some(Err(_)) => return reply(StatusCode::BAD_REQUEST, "the body could not be read"),
        }
    }
    let records = match split_body(&content_type, &body) {
        Ok(r) => r,
        Err(why) => {
            tracing::info!(source = %route.source, tenant = %grant.tenant, status = 400, "Ingest refused: bad body.");
            return reply(StatusCode::BAD_REQUEST, &why);
        }
    };
    let accepted = records.len();
    if accepted > 0 {
        let spool = route.spool.clone();
        let tenant = grant.tenant.clone();
        let written = tokio::task::spawn_blocking(move || spool.append(&tenant, &records)).await;
        if let Err(e) = written.map_err(|e| e.to_string()).and_then(|r| r.map_err(|e| e.to_string())) {
            tracing::error!(source = %route.source, error = %e, status = 503, "Ingest failed: the spool cannot be written.");
            return retry_after(reply(StatusCode::SERVICE_UNAVAILABLE, "the spool cannot be written; retry later"));
        }
        *ingest.accepted.lock().expect("not poisoned").entry(route.source.clone()).or_default() += accepted as u64;
    }
    tracing::debug!(source = %route.source, tenant = %grant.tenant, records = accepted, status = 200, "Ingest accepted.");
    let mut r = Response::new(full(serde_json::json!({ "accepted": accepted }).to_string()));
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

/// At most this many connections at once; more wait to be accepted.
pub(crate) const MAX_CONNECTIONS: usize = 1024;
/// A client has this long to finish the TLS handshake, and to send a
/// request's headers.
pub(crate) const HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
const HEADER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Serves connections on `listener` (with TLS, if given) until the task is
/// aborted; when `shutdown` turns true, open connections answer the request
/// under way and close.
pub async fn serve<F, Fut>(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    handler: F,
    shutdown: tokio::sync::watch::Receiver<bool>,
) where
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = Reply> + Send + 'static,
{
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        let slot = slots.clone().acquire_owned().await.expect("never closed");
        let (tcp, peer) = accept(&listener).await;
        let handler = handler.clone();
        let tls = tls.clone();
        let mut shutdown = shutdown.clone();
        tokio::spawn(async move {
            let _slot = slot;
            if *shutdown.borrow_and_update() {
                return;
            }
            let service = hyper::service::service_fn(move |req| {
                let handler = handler.clone();
                async move { Ok::<_, std::convert::Infallible>(handler(req).await) }
            });
            let mut http = hyper::server::conn::http1::Builder::new();
            http.timer(hyper_util::rt::TokioTimer::new()).header_read_timeout(HEADER_TIMEOUT);
            let served = match tls {
                Some(acceptor) => match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                    Ok(Ok(stream)) => {
                        until_shutdown(http.serve_connection(TokioIo::new(stream), service), shutdown).await
                    }
                    Ok(Err(e)) => {
                        tracing::info!(%peer, error = %e, "TLS handshake failed.");
                        return;
                    }
                    Err(_) => {
                        tracing::info!(%peer, "TLS handshake timed out.");
                        return;
                    }
                },
                None => until_shutdown(http.serve_connection(TokioIo::new(tcp), service), shutdown).await,
            };
            if let Err(e) = served {
                tracing::debug!(%peer, error = %e, "Connection ended with an error.");
            }
        });
    }
}

/// The next connection (an error accepting one, such as too many open
/// files, is logged and waited out).
pub async fn accept(listener: &TcpListener) -> (tokio::net::TcpStream, std::net::SocketAddr) {
    loop {
        match listener.accept().await {
            Ok(connection) => return connection,
            Err(e) => {
                tracing::warn!(error = %e, "Cannot accept a connection.");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }
}

/// Serves a connection until it ends or `shutdown` turns true; then the
/// request under way is answered (its records are spooled, or refused with a
/// 503 if the spool closed first) and the connection closed — dropping it
/// mid-answer would make the client send spooled records again.
async fn until_shutdown<I, S, B>(
    connection: hyper::server::conn::http1::Connection<I, S>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) -> hyper::Result<()>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    S: hyper::service::HttpService<Incoming, ResBody = B>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    B: hyper::body::Body + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    tokio::pin!(connection);
    tokio::select! {
        served = connection.as_mut() => served,
        _ = shutdown.changed() => {
            connection.as_mut().graceful_shutdown();
            tokio::time::timeout(SHUTDOWN_GRACE, connection).await.unwrap_or(Ok(()))
        }
    }
}

/// How long a stopping listener lets a request under way finish.
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

/// The ingest handler, for [`serve`].
pub fn ingest_handler(
    ingest: Arc<Ingest>,
) -> impl Fn(Request<Incoming>) -> std::pin::Pin<Box<dyn std::future::Future<Output = Reply> + Send>> + Clone + Send + Sync
{
    move |req| Box::pin(handle(ingest.clone(), req))
}

/// What the admin listener serves.
pub struct Admin {
    /// The sink's latest Prometheus text.
    pub metrics: Arc<Mutex<String>>,
    pub ingest: Option<Arc<Ingest>>,
    pub telemetry: Arc<crate::telemetry::Telemetry>,
    pub taps: Arc<crate::telemetry::Taps>,
}

/// The admin handler: `GET /metrics` answers the sink's latest Prometheus
/// text and the stages' and the ingest listener's counters (live); `GET
/// /tap?after=STAGE` (or `before=`) `[&where=CONDITION]` streams what passes
/// there, one item per line, until the client goes away.
pub fn admin_handler(
    admin: Admin,
) -> impl Fn(Request<Incoming>) -> std::pin::Pin<Box<dyn std::future::Future<Output = Reply> + Send>> + Clone + Send + Sync
{
    let admin = Arc::new(admin);
    move |req| {
        let admin = admin.clone();
        Box::pin(async move {
            if req.method() != Method::GET {
                return reply(StatusCode::METHOD_NOT_ALLOWED, "GET /metrics or /tap");
            }
            match req.uri().path() {
                "/metrics" => {
                    let mut body = admin.metrics.lock().expect("not poisoned").clone();
                    body.push_str(&admin.telemetry.prometheus());
                    let _ = write!(
                        body,
                        "# HELP sluice_taps_open Open `sluice tap` streams.\n# TYPE sluice_taps_open gauge\nsluice_taps_open {}\n\
                         # HELP sluice_tap_items_missed_total Items a slow tap client did not get.\n\
                         # TYPE sluice_tap_items_missed_total counter\nsluice_tap_items_missed_total {}\n",
                        admin.taps.count(),
                        admin.taps.missed.load(std::sync::atomic::Ordering::Relaxed)
                    );
                    if let Some(ingest) = &admin.ingest {
                        body.push_str(&ingest.prometheus());
                    }
                    let mut r = Response::new(full(body));
                    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4"));
                    r
                }
                "/tap" => tap(&admin, req.uri().query().unwrap_or_default()),
                _ => reply(StatusCode::NOT_FOUND, "GET /metrics or /tap"),
            }
        })
    }
}

fn tap(admin: &Admin, query: &str) -> Reply {
    use crate::telemetry::TapPoint;
    let params: HashMap<String, String> = url::form_urlencoded::parse(query.as_bytes()).into_owned().collect();
    let point = match (params.get("before"), params.get("after")) {
        (Some(stage), None) => TapPoint::Before(stage.clone()),
        (None, Some(stage)) => TapPoint::After(stage.clone()),
        _ => return reply(StatusCode::BAD_REQUEST, "give one of before=STAGE or after=STAGE"),
    };
    let (TapPoint::Before(stage) | TapPoint::After(stage)) = &point;
    if !admin.telemetry.stages.contains_key(stage) {
        let known: Vec<&str> = admin.telemetry.stages.keys().map(String::as_str).collect();
        return reply(StatusCode::NOT_FOUND, &format!("no stage `{stage}` (stages: {})", known.join(", ")));
    }
    let select = match params.get("where").map(|w| crate::route::Expr::parse(w)) {
        None => None,
        Some(Ok(expr)) => Some(expr),
        Some(Err(e)) => return reply(StatusCode::BAD_REQUEST, &format!("where, at {}: {}", e.offset, e.message)),
    };
    let rx = admin.taps.open(point, select);
    let lines = futures::stream::unfold(rx, |mut rx| async move {
        let item = rx.recv().await?;
        Some((Ok::<_, std::convert::Infallible>(hyper::body::Frame::data(Bytes::from(item + "\n"))), rx))
    });
    let mut r = Response::new(http_body_util::StreamBody::new(lines).boxed());
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/x-ndjson"));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(records: Vec<Vec<u8>>) -> Vec<String> {
        records.into_iter().map(|r| String::from_utf8(r).unwrap()).collect()
    }

    #[test]
    fn bodies_split_into_records_by_their_type() {
        let lines = split_body("application/x-ndjson", b"{\"a\":1}\r\n\n  \n{\"b\":2}\n").unwrap();
        assert_eq!(texts(lines), ["{\"a\":1}", "{\"b\":2}"]);
        let array =
            split_body("application/json; charset=utf-8", b" [ {\"a\": [1, \"],\\\"\"]},\n 2 , \"x,y\" ] ").unwrap();
        assert_eq!(texts(array), ["{\"a\": [1, \"],\\\"\"]}", "2", "\"x,y\""]);
        let object = split_body("application/json", b"{\n \"kind\": \"EventList\",\n \"items\": []\n}\n").unwrap();
        assert_eq!(texts(object), ["{  \"kind\": \"EventList\",  \"items\": [] }"]);
        assert_eq!(split_body("application/json", b"[]").unwrap().len(), 0);
        let bad = split_body("application/json", b"[1,").unwrap_err();
        assert!(bad.starts_with("the body is not JSON"), "{bad}");
    }

    #[test]
    fn tokens_files_are_checked_line_by_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens");
        let digest = hex::encode(Sha256::digest(b"secret-token"));
        std::fs::write(&path, format!("# tenants\nacme {digest} audit,operational\n\nglobex {}\n", "ab".repeat(32)))
            .unwrap();
        let tokens = read_tokens(&path).unwrap();
        let acme = &tokens[&<[u8; 32]>::from(Sha256::digest(b"secret-token"))];
        assert_eq!(acme.tenant, "acme");
        assert_eq!(acme.streams.as_deref(), Some(&["audit".to_string(), "operational".to_string()][..]));
        for (line, message) in [
            ("acme", "expected `TENANT SHA256-OF-TOKEN"),
            ("acme xyz", "is not a hex SHA-256"),
            (&format!("a/b {digest}"), "tenant `a/b` must be"),
            (&format!("a {digest}\nb {digest}"), "listed twice"),
        ] {
            std::fs::write(&path, line).unwrap();
            let e = read_tokens(&path).unwrap_err().to_string();
            assert!(e.contains(message), "{line}: {e}");
        }
    }
}
