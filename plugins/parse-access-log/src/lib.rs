//! A parser for web server access logs in the common and combined formats that
//! Apache httpd and nginx write by default:
//!
//! ```text
//! [VHOST[:PORT] ]CLIENT IDENT USER [10/Oct/2000:13:55:36 -0700] "METHOD PATH PROTOCOL" STATUS BYTES ["REFERRER" "USER-AGENT"] [extra...]
//! ```
//!
//! With four fields before the timestamp the first is the virtual host (Apache's
//! `vhost_combined`, nginx configs that log `$host` first). The client may carry
//! a port (`10.0.0.1:51234`, `[2001:db8::1]:443`) and may be a host name. After
//! the user agent, quoted values and words are kept in `unmapped.extra`, and
//! `Key="value"` pairs (`X-Forwarded-For="..."`) under their lower-cased key.
//! A line cut short inside its last quoted field keeps what it has, with
//! `unmapped.truncated = true`.
//!
//! Every line is OCSF HTTP Activity (4002), activity from the method: CONNECT 1,
//! DELETE 2, GET 3, HEAD 4, OPTIONS 5, POST 6, PUT 7, TRACE 8, another method
//! 99, and 0 when the request line is not `METHOD TARGET [PROTOCOL]` (a `-`,
//! a TLS handshake sent to a plain port: kept as `unmapped.request`). Status
//! below 400 is a success.
//!
//! Config (any other key is rejected):
//! - `product`: `metadata_product_name`, default `"access log"` (e.g. `"nginx"`).

use serde_json::{Map, Value};
use sluice_plugin_sdk::{Event, Outcome, Parser, days_from_civil, export_parser, record_text, set_class, truncate};

const HTTP_ACTIVITY: i64 = 4002;
const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

#[derive(Debug)]
pub struct ParseAccessLog {
    product: String,
}

impl Parser for ParseAccessLog {
    fn init(config: Value) -> Result<Self, String> {
        let Value::Object(config) = config else {
            return Err("parse-access-log: config must be a table".into());
        };
        let mut product = "access log".to_string();
        for (key, value) in &config {
            match (key.as_str(), value) {
                ("product", Value::String(p)) if !p.is_empty() => product = p.clone(),
                ("product", other) => {
                    return Err(format!("parse-access-log: `product` must be a non-empty string, got {other}"));
                }
                _ => return Err(format!("parse-access-log: unknown config key `{key}`")),
            }
        }
        Ok(ParseAccessLog { product })
    }

    fn parse(&mut self, record: &[u8]) -> Outcome {
        let text = match record_text(record) {
            Ok(text) => text.trim_end_matches(['\r', '\n']),
            Err(outcome) => return outcome,
        };
        match self.access_line(text.trim_start()) {
            Ok(event) => Outcome::Keep(event),
            Err(reason) => Outcome::Error(reason),
        }
    }
}

impl ParseAccessLog {
    fn access_line(&self, line: &str) -> Result<Event, String> {
        let Some((prefix, rest)) = line.split_once(" [") else {
            return Err("not an access log line: no `[` timestamp after `client ident user`".into());
        };
        let words: Vec<&str> = prefix.split_whitespace().collect();
        let (vhost, client, ident, user) = match words[..] {
            [client, ident, user] => (None, client, ident, user),
            [vhost, client, ident, user] => (Some(vhost), client, ident, user),
            _ => {
                return Err(format!(
                    "expected `client ident user` (or `vhost client ident user`) before the timestamp, got {} fields",
                    words.len()
                ));
            }
        };
        let (stamp, rest) = rest.split_once(']').ok_or("the `[` of the timestamp is not closed")?;
        let time = clf_time(stamp).ok_or_else(|| format!("timestamp `[{stamp}]` is not dd/Mon/yyyy:HH:MM:SS +zzzz"))?;
        let rest = rest.trim_start();
        let rest = rest.strip_prefix('"').ok_or("expected the quoted request line after the timestamp")?;
        let (request, rest) = quoted(rest).ok_or("the request line's quote is not closed")?;
        let (status_text, rest) = next_word(rest);
        let status: i64 = match status_text.parse() {
            Ok(s) if status_text.len() == 3 && (100..=999).contains(&s) => s,
            _ => return Err(format!("status `{}` is not a 3-digit code", truncate(status_text, 20))),
        };
        let (bytes_text, mut rest) = next_word(rest);
        let bytes: Option<i64> = match bytes_text {
            "" | "-" => None,
            b => Some(b.parse().map_err(|_| format!("bytes `{}` is not a number or `-`", truncate(b, 20)))?),
        };

        let mut event = Event::new();
        let mut unmapped = Map::new();
        event.insert("time".into(), time.into());
        event.insert("metadata_product_name".into(), self.product.as_str().into());
        let (host, port) = split_port(client);
        if host.parse::<std::net::IpAddr>().is_ok() {
            event.insert("src_endpoint_ip".into(), host.into());
        } else {
            unmapped.insert("client_host".into(), host.into());
        }
        if let Some(port) = port {
            event.insert("src_endpoint_port".into(), port.into());
        }
        if let Some(vhost) = vhost {
            unmapped.insert("vhost".into(), vhost.into());
        }
        if ident != "-" {
            unmapped.insert("ident".into(), ident.into());
        }
        if user != "-" {
            event.insert("actor_user_name".into(), user.into());
        }

        let activity = match request_line(&request) {
            Some((method, target, protocol)) => {
                event.insert("http_request_method".into(), method.into());
                let (path, query) = target.split_once('?').map_or((target, None), |(p, q)| (p, Some(q)));
                event.insert("http_request_url_path".into(), path.into());
                if let Some(query) = query {
                    unmapped.insert("url_query".into(), query.into());
                }
                if let Some(protocol) = protocol {
                    unmapped.insert("http_version".into(), protocol.into());
                }
                method_activity(method)
            }
            None => {
                unmapped.insert("request".into(), request.as_str().into());
                0
            }
        };
        set_class(&mut event, HTTP_ACTIVITY, activity);
        event.insert("http_response_code".into(), status.into());
        event.insert("status_code".into(), status_text.into());
        event.insert("status_id".into(), (if status < 400 { 1 } else { 2 }).into());
        let severity = match status {
            401 | 403 => 3,
            s if s >= 400 => 2,
            _ => 1,
        };
        event.insert("severity_id".into(), severity.into());
        if let Some(bytes) = bytes {
            event.insert("traffic_bytes_out".into(), bytes.into());
        }

        // The combined format's referrer and user agent, then anything else.
        let mut quoted_values = Vec::new();
        let mut extra = Vec::new();
        loop {
            rest = rest.trim_start();
            if rest.is_empty() {
                break;
            }
            if let Some(after) = rest.strip_prefix('"') {
                // A line cut short (a full disk, a size limit) loses its last quote.
                let (value, after) = quoted(after).unwrap_or_else(|| {
                    unmapped.insert("truncated".into(), true.into());
                    (after.replace("\\\"", "\""), "")
                });
                if quoted_values.len() < 2 {
                    quoted_values.push(value);
                } else {
                    extra.push(Value::String(value));
                }
                rest = after;
                continue;
            }
            let (word, after) = next_word(rest);
            match word.split_once("=\"") {
                Some((key, start)) => {
                    // Key="value with spaces"
                    let (value, after) = quoted(&rest[key.len() + 2..]).unwrap_or((start.to_string(), after));
                    unmapped.insert(key.to_ascii_lowercase().replace('-', "_"), value.into());
                    rest = after;
                }
                None => {
                    extra.push(word.into());
                    rest = after;
                }
            }
        }
        let mut quoted_values = quoted_values.into_iter();
        if let Some(referrer) = quoted_values.next().filter(|r| r != "-") {
            unmapped.insert("referrer".into(), referrer.into());
        }
        if let Some(agent) = quoted_values.next().filter(|a| a != "-") {
            event.insert("http_user_agent".into(), agent.into());
        }
        if !extra.is_empty() {
            unmapped.insert("extra".into(), Value::Array(extra));
        }
        if !unmapped.is_empty() {
            event.insert("unmapped".into(), Value::Object(unmapped));
        }
        Ok(event)
    }
}

/// `METHOD TARGET [PROTOCOL]` with an upper-case method and an HTTP protocol.
fn request_line(request: &str) -> Option<(&str, &str, Option<&str>)> {
    let mut parts = request.split(' ');
    let method = parts.next()?;
    let target = parts.next()?;
    let protocol = parts.next();
    let method_ok = (1..=20).contains(&method.len()) && method.bytes().all(|b| b.is_ascii_uppercase() || b == b'-');
    let protocol_ok = protocol.is_none_or(|p| p.starts_with("HTTP/"));
    (method_ok && method != "-" && !target.is_empty() && protocol_ok && parts.next().is_none())
        .then_some((method, target, protocol))
}

fn method_activity(method: &str) -> i64 {
    match method {
        "CONNECT" => 1,
        "DELETE" => 2,
        "GET" => 3,
        "HEAD" => 4,
        "OPTIONS" => 5,
        "POST" => 6,
        "PUT" => 7,
        "TRACE" => 8,
        _ => 99,
    }
}

/// `10/Oct/2000:13:55:36 -0700` → microseconds since the epoch, UTC.
fn clf_time(stamp: &str) -> Option<i64> {
    let (local, zone) = stamp.split_once(' ')?;
    let mut parts = local.splitn(3, '/');
    let day: u32 = parts.next()?.parse().ok()?;
    let month_name = parts.next()?;
    let month = MONTHS.iter().position(|m| *m == month_name)? as u32 + 1;
    let (year, hms) = parts.next()?.split_once(':')?;
    let year: i64 = year.parse().ok()?;
    let mut clock = hms.split(':').map(|p| p.parse::<i64>().ok().filter(|_| p.len() == 2));
    let (h, m, s) = (clock.next()??, clock.next()??, clock.next()??);
    if clock.next().is_some() || !(1..=31).contains(&day) || h > 23 || m > 59 || s > 60 || !(1..=9999).contains(&year) {
        return None;
    }
    let sign = match zone.as_bytes().first()? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let digits = &zone[1..];
    if digits.len() != 4 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let offset = sign * (digits[..2].parse::<i64>().ok()? * 3600 + digits[2..].parse::<i64>().ok()? * 60);
    let secs = days_from_civil(year, month, day) * 86_400 + h * 3600 + m * 60 + s - offset;
    Some(secs * 1_000_000)
}

/// Reads up to the closing quote (after the opening one), undoing `\"` and `\\`.
fn quoted(text: &str) -> Option<(String, &str)> {
    let mut value = String::new();
    let mut chars = text.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Some((value, &text[i + 1..])),
            '\\' => match chars.next() {
                Some((_, e @ ('"' | '\\'))) => value.push(e),
                Some((_, other)) => {
                    value.push('\\');
                    value.push(other);
                }
                None => value.push('\\'),
            },
            c => value.push(c),
        }
    }
    None
}

fn next_word(text: &str) -> (&str, &str) {
    let text = text.trim_start();
    text.split_once(' ').unwrap_or((text, ""))
}

/// `10.0.0.1:8080` → (10.0.0.1, 8080); `[2001:db8::1]:443` → (2001:db8::1, 443);
/// a bare IPv6 address or a name without a port is left whole.
fn split_port(token: &str) -> (&str, Option<i32>) {
    if let Some(rest) = token.strip_prefix('[')
        && let Some((host, after)) = rest.split_once(']')
    {
        return (host, after.strip_prefix(':').and_then(|p| p.parse().ok()));
    }
    if token.parse::<std::net::IpAddr>().is_ok() {
        return (token, None);
    }
    match token.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') && !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => {
            (host, port.parse().ok())
        }
        _ => (token, None),
    }
}

export_parser!(ParseAccessLog);

#[cfg(test)]
mod tests;
