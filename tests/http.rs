//! HTTP ingest: every status a client can get, tenants from tokens, the
//! spool that makes a 200 durable across a kill, TLS and mTLS, and a
//! Kubernetes audit webhook body, against the real binary on loopback.

use crate::util::*;
use serde_json::{Value, json};
use sha2::Digest;
use std::process::Child;

pub(crate) const ACME: &str = "acme-token-0123456789";
const GLOBEX: &str = "globex-token-9876543210";

fn sha(token: &str) -> String {
    hex::encode(sha2::Sha256::digest(token.as_bytes()))
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

/// A pipeline listening on a free port: source `app` (parse-json into stream
/// `app`) at `/app`, and `extra` (TOML appended).
pub(crate) struct Server {
    t: TestDir,
    port: u16,
    admin: u16,
    child: Option<Child>,
    scheme: &'static str,
}

impl Server {
    pub(crate) fn new(http_extra: &str, chain: &str, extra: &str) -> Server {
        let t = TestDir::new();
        t.write("tokens.txt", &format!("acme {}\nglobex {} other\n", sha(ACME), sha(GLOBEX)));
        let (port, admin) = (free_port(), free_port());
        t.write(
            "pipeline.toml",
            &format!(
                r#"
[http]
listen = "127.0.0.1:{port}"
tokens_file = "tokens.txt"
spool_dir = "spool"
max_body_mb = 1
{http_extra}

[metrics]
listen = "127.0.0.1:{admin}"

[sources.app]
type = "http"
chain = [{chain}]

[stages.json]
plugin = "parse-json"
config = {{ time_field = "time", fields = {{ message = "message", tenant_uid = "tenant_uid", metadata_uid = "id" }} }}

[sink]
url = "out"
roll_age_secs = 1
{extra}
"#
            ),
        );
        let scheme = if http_extra.contains("tls_cert") { "https" } else { "http" };
        let mut server = Server { t, port, admin, child: None, scheme };
        server.start();
        server
    }

    fn start(&mut self) {
        self.child = Some(spawn_sluice(self.t.root(), &["run", "pipeline.toml"]));
        let port = self.port;
        wait_for("the listener", || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok());
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// Edits the pipeline file (for the next start).
    fn edit(&self, from: &str, to: &str) {
        let text = std::fs::read_to_string(self.t.path("pipeline.toml")).unwrap();
        assert!(text.contains(from), "no `{from}` in the pipeline");
        self.t.write("pipeline.toml", &text.replacen(from, to, 1));
    }

    fn segments(&self) -> usize {
        std::fs::read_dir(self.t.path("spool/app")).unwrap().count()
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}://localhost:{}{path}", self.scheme, self.port)
    }

    /// SIGKILL: nothing is flushed or committed.
    fn kill(&mut self) {
        let mut child = self.child.take().unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
    }

    /// SIGTERM, and the run's output.
    pub(crate) fn stop(&mut self) -> Run {
        terminate(self.child.as_mut().unwrap())
    }

    /// Waits until the pipeline has written `n` events of source `app`.
    pub(crate) fn wait_written(&self, n: u64) {
        wait_written(self.admin, n);
    }

    pub(crate) fn rows(&self, sql_select: &str) -> Value {
        duckdb(&format!(
            "SELECT {sql_select} FROM read_parquet('{}/app/**/*.parquet', hive_partitioning = true)",
            self.t.path("out").display()
        ))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().ok();
            child.wait().ok();
        }
    }
}

/// POSTs `body` and returns the status, `Retry-After` and body.
pub(crate) fn post(
    client: &reqwest::Client,
    url: &str,
    token: Option<&str>,
    content_type: &str,
    body: Vec<u8>,
) -> Result<(u16, Option<String>, String), String> {
    runtime().block_on(async {
        let mut req = client.post(url).header("content-type", content_type).body(body);
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        let resp = req.send().await.map_err(|e| format!("{e:?}"))?;
        let status = resp.status().as_u16();
        let retry = resp.headers().get("retry-after").map(|v| v.to_str().unwrap().to_string());
        Ok((status, retry, resp.text().await.map_err(|e| e.to_string())?))
    })
}

pub(crate) fn event(i: usize, tenant: &str) -> String {
    json!({"time": format!("2026-11-01T10:00:{:02}Z", i % 60), "message": format!("event {i}"), "tenant_uid": tenant, "id": format!("e{i}")}).to_string()
}

#[test]
fn http_ingest_answers_each_status_and_a_200_survives_a_kill() {
    let mut s = Server::new("", "\"json\"", "");
    // no commit in the first run: what the next one archives comes from the spool
    s.edit("roll_age_secs = 1", "roll_age_secs = 3600");
    s.kill();
    s.start();
    let client = reqwest::Client::new();
    let url = s.url("/app");
    let ndjson = |range: std::ops::Range<usize>, tenant: &str| {
        range.map(|i| event(i, tenant) + "\n").collect::<String>().into_bytes()
    };
    // (token, path, content type, body, status, message)
    type Case<'a> = (Option<&'a str>, &'a str, &'a str, Vec<u8>, u16, &'a str);
    let cases: Vec<Case> = vec![
        (None, "/app", "application/x-ndjson", ndjson(0..1, "acme"), 401, "a valid bearer token is needed"),
        (Some("wrong"), "/app", "application/x-ndjson", ndjson(0..1, "acme"), 401, "a valid bearer token is needed"),
        (Some(GLOBEX), "/app", "application/x-ndjson", ndjson(0..1, "acme"), 403, "may not write stream `app`"),
        (Some(ACME), "/nope", "application/x-ndjson", ndjson(0..1, "acme"), 404, "no source at this path"),
        (Some(ACME), "/app", "application/json", b"[{\"time\": 1},".to_vec(), 400, "the body is not JSON"),
        (Some(ACME), "/app", "text/plain", vec![b'x'; (1 << 20) + 1], 413, "the body is over 1048576 bytes"),
    ];
    for (token, path, content_type, body, status, message) in cases {
        let (got, _, text) = post(&client, &s.url(path), token, content_type, body).unwrap();
        assert_eq!(got, status, "{path} {token:?}: {text}");
        assert!(text.contains(message), "{status}: {text}");
    }
    let get = runtime().block_on(async { client.get(&url).send().await.unwrap() });
    assert_eq!((get.status().as_u16(), get.headers()["allow"].to_str().unwrap()), (405, "POST"));

    // acme sends 3 events as NDJSON (one claiming to be globex's) and 2 as a JSON array
    let (status, _, text) = post(&client, &url, Some(ACME), "application/x-ndjson", ndjson(0..3, "globex")).unwrap();
    assert_eq!((status, text.as_str()), (200, "{\"accepted\":3}"));
    let array = format!("[\n{},\n{}\n]", event(3, "acme"), event(4, "acme"));
    let (status, _, text) = post(&client, &url, Some(ACME), "application/json", array.into_bytes()).unwrap();
    assert_eq!((status, text.as_str()), (200, "{\"accepted\":2}"));
    // and one the parser refuses (its time is under `ts`), claiming to be globex's
    let bad = json!({"ts": "2026-11-01T11:00:00Z", "message": "late", "tenant_uid": "globex", "id": "q1"}).to_string();
    let (status, _, _) = post(&client, &url, Some(ACME), "application/x-ndjson", bad.into_bytes()).unwrap();
    assert_eq!(status, 200);

    // the admin listener counts the answers and what was accepted
    let metrics = http_get(&format!("http://127.0.0.1:{}/metrics", s.admin)).unwrap();
    for line in [
        "sluice_http_requests_total{source=\"app\",status=\"200\"} 3",
        "sluice_http_requests_total{source=\"app\",status=\"401\"} 2",
        "sluice_http_requests_total{source=\"app\",status=\"403\"} 1",
        "sluice_http_requests_total{source=\"app\",status=\"405\"} 1",
        "sluice_http_requests_total{source=\"\",status=\"404\"} 1",
        "sluice_http_records_accepted_total{source=\"app\"} 6",
    ] {
        assert!(metrics.lines().any(|l| l == line), "no `{line}` in\n{metrics}");
    }

    // killed at once: what was acknowledged is in the spool, and the next run archives it once
    s.kill();
    assert!(!s.t.path("out/app").exists(), "nothing was committed before the kill");
    s.edit("roll_age_secs = 3600", "roll_age_secs = 1");
    s.start();
    s.wait_written(5);
    // the first run's segment goes once a commit has read it whole; the new run's stays
    wait_for("the committed segment deleted", || s.segments() == 1);
    let run = s.stop();
    run.assert_success();
    let rows = s.rows("count(*), count(DISTINCT metadata_uid), list(DISTINCT tenant_uid)");
    assert_eq!(rows, json!([[5, 5, ["acme"]]]));
    // one tenant's partition
    let partitions: Vec<String> = std::fs::read_dir(s.t.path("out/app"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(partitions, ["tenant_uid=acme"]);

    // the refused record is quarantined with its sender's tenant, and a replay keeps it there
    let q = s.t.quarantine("out", "app");
    assert_eq!((q.len(), q[0]["tenant"].as_str()), (1, Some("acme")), "{q:?}");
    s.edit("time_field = \"time\"", "time_field = \"ts\"");
    let replay = sluice_in(s.t.root(), &["quarantine", "replay", "pipeline.toml"], &[]);
    replay.assert_success();
    assert_eq!(replay.summary().written, 1, "{replay}");
    let rows = s.rows("count(*), list(DISTINCT tenant_uid), count(*) FILTER (metadata_uid = 'q1')");
    assert_eq!(rows, json!([[6, ["acme"], 1]]));
}

#[test]
fn http_answers_429_while_the_pipeline_is_behind_and_takes_the_retry() {
    // one worker, small batches, and a stage that hangs on "boom" until its 300 ms timeout
    let faulty = format!(
        "[stages.faulty]\nplugin = \"{}\"\ntimeout_ms = 300\nconfig = {{ mode = \"loop\", field = \"message\", equals = \"boom\" }}\n",
        fixture_plugin("faulty")
    );
    let mut s = Server::new(
        "spool_limit_mb = 0",
        "\"json\", \"faulty\"",
        &format!("[runtime]\nworkers = 1\nbatch_size = 8\n{faulty}"),
    );
    let client = reqwest::Client::new();
    let url = s.url("/app");
    let mut first: String = (0..400).map(|i| event(i, "acme") + "\n").collect();
    first = first.replacen("\"event 0\"", "\"boom\"", 1);
    let (status, _, _) = post(&client, &url, Some(ACME), "application/x-ndjson", first.into_bytes()).unwrap();
    assert_eq!(status, 200);
    let second: String = (400..410).map(|i| event(i, "acme") + "\n").collect();
    let (status, retry, text) =
        post(&client, &url, Some(ACME), "application/x-ndjson", second.clone().into_bytes()).unwrap();
    assert_eq!((status, retry.as_deref()), (429, Some("1")), "{text}");
    // the client retries after Retry-After until it is taken
    let mut tries = 1;
    loop {
        std::thread::sleep(std::time::Duration::from_secs(1));
        let (status, _, _) =
            post(&client, &url, Some(ACME), "application/x-ndjson", second.clone().into_bytes()).unwrap();
        if status == 200 {
            break;
        }
        assert_eq!(status, 429);
        tries += 1;
        assert!(tries < 60, "never taken");
    }
    s.wait_written(409);
    // the stages' counters: every record parsed once; the hanging one faulted (more than once: halves)
    let metrics = http_get(&format!("http://127.0.0.1:{}/metrics", s.admin)).unwrap();
    assert_eq!(metric_sum(&metrics, "sluice_stage_inputs_total{stage=\"json\"}"), 410, "{metrics}");
    assert_eq!(metric_sum(&metrics, "sluice_stage_outputs_total{stage=\"json\"}"), 410, "{metrics}");
    assert!(metric_sum(&metrics, "sluice_stage_faults_total{stage=\"faulty\"}") >= 2, "{metrics}");
    assert_eq!(
        metric_sum(&metrics, "sluice_stage_call_seconds_count{stage=\"json\"}"),
        metric_sum(&metrics, "sluice_stage_calls_total{stage=\"json\"}")
    );
    // and `sluice top` shows them as a table
    let top =
        sluice_in(s.t.root(), &["top", &format!("127.0.0.1:{}", s.admin), "--interval", "1", "--iterations", "1"], &[]);
    top.assert_success();
    for row in ["source ", "app ", "stage ", "json ", "faulty ", "http source", "seconds since the last commit"] {
        assert!(top.stdout.lines().any(|l| l.starts_with(row)), "no `{row}` row: {top}");
    }
    s.stop().assert_success();
    // 410 in: 409 written, the hanging one quarantined
    assert_eq!(s.rows("count(*), count(DISTINCT metadata_uid)"), json!([[409, 409]]));
    let q = s.t.quarantine("out", "app");
    assert_eq!(q.len(), 1);
    assert_eq!(q[0]["reason"], "plugin exceeded its time limit and was interrupted", "{}", q[0]);
    assert_eq!(q[0]["stage"], "faulty");
}

/// A CA, a server certificate for localhost/127.0.0.1 and a client certificate, as PEM files.
pub(crate) fn certificates(t: &TestDir) -> (String, String) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_pem = ca_params.self_signed(&ca_key).unwrap().pem();
    let issuer = Issuer::new(ca_params, ca_key);
    let server_key = KeyPair::generate().unwrap();
    let server = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
        .unwrap()
        .signed_by(&server_key, &issuer)
        .unwrap();
    let client_key = KeyPair::generate().unwrap();
    let client =
        CertificateParams::new(vec!["client.example".to_string()]).unwrap().signed_by(&client_key, &issuer).unwrap();
    t.write("ca.pem", &ca_pem);
    t.write("server.pem", &server.pem());
    t.write("server.key", &server_key.serialize_pem());
    (ca_pem, format!("{}{}", client.pem(), client_key.serialize_pem()))
}

#[test]
fn http_over_tls_and_mtls_takes_only_clients_with_a_certificate() {
    let t = TestDir::new();
    let (ca, client_identity) = certificates(&t);
    let dir = t.root().display().to_string();
    let mut s = Server::new(
        &format!("tls_cert = \"{dir}/server.pem\"\ntls_key = \"{dir}/server.key\"\nclient_ca = \"{dir}/ca.pem\""),
        "\"json\"",
        "",
    );
    let root = reqwest::Certificate::from_pem(ca.as_bytes()).unwrap();
    let body = || (event(1, "acme") + "\n").into_bytes();
    // no client certificate: the handshake fails, nothing is taken
    let anonymous = reqwest::Client::builder().tls_certs_only([root.clone()]).build().unwrap();
    let refused = post(&anonymous, &s.url("/app"), Some(ACME), "application/x-ndjson", body());
    assert!(refused.is_err(), "{refused:?}");
    // plain HTTP to the TLS port: no answer
    let plain = post(
        &reqwest::Client::new(),
        &s.url("/app").replace("https:", "http:"),
        Some(ACME),
        "application/x-ndjson",
        body(),
    );
    assert!(plain.is_err() || plain.as_ref().unwrap().0 >= 400, "{plain:?}");
    // with one: taken
    let identity = reqwest::Identity::from_pem(client_identity.as_bytes()).unwrap();
    let client = reqwest::Client::builder().tls_certs_only([root]).identity(identity).build().unwrap();
    let (status, _, text) = post(&client, &s.url("/app"), Some(ACME), "application/x-ndjson", body()).unwrap();
    assert_eq!((status, text.as_str()), (200, "{\"accepted\":1}"));
    s.wait_written(1);
    s.stop().assert_success();
    assert_eq!(s.rows("count(*)"), json!([[1]]));
}

#[test]
fn the_example_takes_a_kubernetes_webhook_eventlist_and_the_benchmark_sources() {
    let t = TestDir::new();
    let data = t.path("data");
    let out = std::process::Command::new("python3")
        .arg(repo_root().join("../shared/bench/gen_events.py"))
        .arg(&data)
        .args(["--events", "400"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    t.write("tokens.txt", &format!("acme {}\n", sha(ACME)));
    let (port, admin) = (free_port(), free_port());
    let env = [
        ("SLUICE_LISTEN", format!("127.0.0.1:{port}")),
        ("SLUICE_TOKENS", t.path("tokens.txt").display().to_string()),
        ("SLUICE_OUT", t.path("out").display().to_string()),
        ("SLUICE_SPOOL", t.path("spool").display().to_string()),
        ("SLUICE_ADMIN", format!("127.0.0.1:{admin}")),
        ("SLUICE_ROLL_AGE", "1".to_string()),
        // the most the log says: still never a body, a secret or a token
        ("SLUICE_LOG", "debug".to_string()),
    ];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let example = repo_root().join("examples/http/pipeline.toml");
    let mut child = spawn_sluice_env(t.root(), &["run", example.to_str().unwrap()], &env);
    wait_for("the listener", || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok());
    let client = reqwest::Client::new();
    let url = |path: &str| format!("http://127.0.0.1:{port}{path}");
    let mut sent = 0;
    // the Kubernetes events as one webhook EventList
    let k8s: Vec<Value> = std::fs::read_to_string(data.join("k8s-audit.ndjson"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let list = json!({"kind": "EventList", "apiVersion": "audit.k8s.io/v1", "metadata": {}, "items": k8s});
    let (status, _, text) =
        post(&client, &url("/k8s"), Some(ACME), "application/json", list.to_string().into_bytes()).unwrap();
    assert_eq!((status, text.as_str()), (200, "{\"accepted\":1}"));
    sent += k8s.len();
    for (path, file, content_type) in [
        ("/auth", "auth.log", "text/plain"),
        ("/cloudtrail", "cloudtrail.ndjson", "application/x-ndjson"),
        ("/app", "app.ndjson", "application/x-ndjson"),
    ] {
        let body = std::fs::read(data.join(file)).unwrap();
        let lines = body.split(|&b| b == b'\n').filter(|l| !l.is_empty()).count();
        let (status, _, text) = post(&client, &url(path), Some(ACME), content_type, body).unwrap();
        assert_eq!((status, text), (200, format!("{{\"accepted\":{lines}}}")), "{path}");
        sent += lines;
    }
    let metrics = format!("http://127.0.0.1:{admin}/metrics");
    wait_for("every event written", || {
        http_get(&metrics).is_some_and(|m| metric_sum(&m, "sluice_events_written_total") == sent as u64)
    });
    let run = terminate(&mut child);
    run.assert_success();
    let archive = t.path("out");
    let count = duckdb(&format!(
        "SELECT count(*), count(DISTINCT tenant_uid), min(tenant_uid), count(*) FILTER (metadata_product_name = 'kubernetes') \
         FROM read_parquet(['{0}/audit/**/*.parquet', '{0}/operational/**/*.parquet'], hive_partitioning = true, union_by_name = true)",
        archive.display()
    ));
    assert_eq!(count, json!([[sent, 1, "acme", k8s.len()]]));
    // the secrets planted in the input are not in the archive
    let secrets: Vec<String> = std::fs::read_to_string(data.join("secrets.txt"))
        .unwrap()
        .lines()
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect();
    assert!(!secrets.is_empty());
    assert_eq!(find_strings_in_archive(&archive, &secrets), Vec::<String>::new());
    assert!(run.stderr.contains("Ingest accepted."), "the debug log was on: {run}");
    let leaked: Vec<&String> = secrets.iter().filter(|s| run.stderr.contains(s.as_str())).collect();
    assert!(leaked.is_empty(), "secrets in the log: {leaked:?}");
    assert!(!run.stderr.contains(ACME), "the token is in the log");
}
