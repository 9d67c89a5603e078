//! Correlation: trace and request ids found anywhere in an event are copied
//! to the correlation columns, and `correlation_uid` is derived so an analyst
//! can group the events of one request across sources.
//!
//! Read: a W3C `traceparent` (`00-<32 hex trace>-<16 hex span>-<flags>`), an
//! AWS X-Ray `X-Amzn-Trace-Id` (`Root=1-<8 hex>-<24 hex>;Parent=<16 hex>`), a
//! Google Cloud `trace` (`projects/<p>/traces/<32 hex>`, with its `spanId`),
//! and request ids (`X-Request-ID` and native keys such as `requestId`).
//! Written, only where the event has none: `trace_id`, `span_id`,
//! `api_request_uid`, and `correlation_uid` = the first of the `group_by`
//! values, the trace id, the request id.

use crate::doc::{Doc, Node, Object};
use serde::Deserialize;

/// `correlation` in the config (`correlation = {}` turns it on with defaults).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CorrelationConfig {
    /// Key names holding a W3C `traceparent` (case, `-`, `_` ignored).
    /// Default: `traceparent`.
    pub traceparent_keys: Option<Vec<String>>,
    /// Key names holding a request id. Default: `X-Request-ID`, `requestId`,
    /// `request_id`, `X-Amzn-RequestId`, `X-Amz-Request-Id`, `X-Correlation-ID`.
    pub request_id_keys: Option<Vec<String>>,
    /// Dotted paths whose value groups events ahead of any trace or request
    /// id (e.g. `unmapped.sharedEventID` for CloudTrail's cross-account pair).
    #[serde(default)]
    pub group_by: Vec<String>,
    /// How deep nested objects are searched (default 6).
    pub max_depth: Option<usize>,
}

pub struct Correlation {
    traceparent_keys: Vec<String>,
    request_id_keys: Vec<String>,
    group_by: Vec<String>,
    max_depth: usize,
    /// The first characters of the normalized keys looked for (all `true`
    /// when one normalizes to nothing): a key whose first letter or digit is
    /// not among them is passed over without being normalized.
    firsts: [bool; 128],
}

/// The lower-cased first ASCII letter or digit of `key` (0 when it has none).
fn first(key: &str) -> u8 {
    key.bytes().find(u8::is_ascii_alphanumeric).map_or(0, |b| b.to_ascii_lowercase())
}

/// The columns this writes, never searched.
const OUTPUTS: [&str; 5] = ["trace_id", "span_id", "api_request_uid", "correlation_uid", "metadata_uid"];

fn normalize(key: &str) -> String {
    normalized(key).collect()
}

/// The characters of `key` that matter: ASCII letters (lower-cased) and digits.
fn normalized(key: &str) -> impl Iterator<Item = char> + '_ {
    key.chars().filter(char::is_ascii_alphanumeric).map(|c| c.to_ascii_lowercase())
}

fn is_hex(text: &str, len: usize) -> bool {
    text.len() == len && text.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn zero(text: &str) -> bool {
    text.bytes().all(|b| b == b'0')
}

/// (trace id, span id) of a W3C `traceparent`; `None` when it is not valid.
pub fn traceparent(value: &str) -> Option<(String, String)> {
    let parts: Vec<&str> = value.trim().split('-').collect();
    let [version, trace, span, flags, ..] = parts[..] else { return None };
    let valid = is_hex(version, 2)
        && version != "ff"
        && (version != "00" || parts.len() == 4)
        && is_hex(trace, 32)
        && !zero(trace)
        && is_hex(span, 16)
        && !zero(span)
        && is_hex(flags, 2);
    valid.then(|| (trace.to_string(), span.to_string()))
}

/// (trace id as 32 hex, parent span) of an AWS X-Ray trace header.
pub fn xray(value: &str) -> Option<(String, Option<String>)> {
    let mut trace = None;
    let mut parent = None;
    for part in value.split(';') {
        match part.trim().split_once('=') {
            Some(("Root", root)) => {
                let pieces: Vec<&str> = root.split('-').collect();
                if let ["1", time, id] = pieces[..]
                    && is_hex(time, 8)
                    && is_hex(id, 24)
                {
                    trace = Some(format!("{time}{id}"));
                }
            }
            Some(("Parent", p)) if is_hex(p, 16) => parent = Some(p.to_string()),
            _ => {}
        }
    }
    trace.map(|t| (t, parent))
}

/// The trace id of a Google Cloud `projects/<p>/traces/<32 hex>`.
pub fn gcp_trace(value: &str) -> Option<String> {
    let (_, id) = value.split_once("/traces/")?;
    (value.starts_with("projects/") && is_hex(id, 32)).then(|| id.to_string())
}

#[derive(Default)]
struct Found {
    trace: Option<(String, Option<String>)>,
    request: Option<String>,
}

impl Correlation {
    pub fn new(config: CorrelationConfig) -> Self {
        let defaults = |list: &[&str]| list.iter().map(|s| s.to_string()).collect();
        let mut c = Correlation {
            traceparent_keys: config
                .traceparent_keys
                .unwrap_or_else(|| defaults(&["traceparent"]))
                .iter()
                .map(|k| normalize(k))
                .collect(),
            request_id_keys: config
                .request_id_keys
                .unwrap_or_else(|| {
                    defaults(&[
                        "x-request-id",
                        "request_id",
                        "x-amzn-requestid",
                        "x-amz-request-id",
                        "x-correlation-id",
                    ])
                })
                .iter()
                .map(|k| normalize(k))
                .collect(),
            group_by: config.group_by,
            max_depth: config.max_depth.unwrap_or(6),
            firsts: [false; 128],
        };
        let keys = || c.traceparent_keys.iter().chain(&c.request_id_keys).map(String::as_str);
        let mut firsts = [keys().any(str::is_empty); 128];
        for key in keys().chain(["xamzntraceid", "trace"]) {
            firsts[usize::from(first(key))] = true;
        }
        c.firsts = firsts;
        c
    }

    /// The trace (and span) id that `key: text` holds, if any; `map` is the
    /// object it is in (a GCP `trace` has its `spanId` next to it).
    fn trace_in(&self, key: &str, text: &str, map: &Object) -> Option<(String, Option<String>)> {
        if self.traceparent_keys.iter().any(|k| k == key) {
            return traceparent(text).map(|(t, s)| (t, Some(s)));
        }
        match key {
            "xamzntraceid" => xray(text),
            "trace" => {
                let id = gcp_trace(text)?;
                let span = ["spanId", "span_id", "spanid"]
                    .iter()
                    .find_map(|k| map.get(k).and_then(Node::as_str))
                    .filter(|s| is_hex(s, 16))
                    .map(str::to_string);
                Some((id, span))
            }
            _ => None,
        }
    }

    /// Looks through the event breadth first: shallower ids win.
    fn search(&self, event: &Object) -> Found {
        let mut found = Found::default();
        let mut level: Vec<&Object> = vec![event];
        // every key of every event is looked at: normalized into one buffer
        let mut norm = String::new();
        for depth in 0..=self.max_depth {
            let mut next = Vec::new();
            for map in level {
                for (key, value) in map.iter() {
                    if depth == 0 && OUTPUTS.contains(&key) {
                        continue;
                    }
                    match value {
                        Node::String(_) if !self.firsts[usize::from(first(key))] => {}
                        Node::String(text) => {
                            norm.clear();
                            norm.extend(normalized(key));
                            if found.trace.is_none() {
                                found.trace = self.trace_in(&norm, text, map);
                            }
                            if found.request.is_none() && self.request_id_keys.contains(&norm) && !text.is_empty() {
                                found.request = Some(text.to_string());
                            }
                        }
                        Node::Object(inner) => next.push(inner),
                        Node::Array(items) => next.extend(items.iter().filter_map(Node::as_object)),
                        _ => {}
                    }
                }
            }
            if next.is_empty() || (found.trace.is_some() && found.request.is_some()) {
                break;
            }
            level = next;
        }
        found
    }

    pub fn apply(&self, event: &mut Doc) {
        let absent = |event: &Doc, key: &str| match event.get(key) {
            None | Some(Node::Null) => true,
            Some(Node::String(s)) => s.is_empty(),
            _ => false,
        };
        let found = self.search(event.top());
        if let Some((trace, span)) = found.trace
            && absent(event, "trace_id")
        {
            event.insert("trace_id", trace.into());
            if let Some(span) = span
                && absent(event, "span_id")
            {
                event.insert("span_id", span.into());
            }
        }
        if let Some(request) = found.request
            && absent(event, "api_request_uid")
        {
            event.insert("api_request_uid", request.into());
        }
        if absent(event, "correlation_uid") {
            let group = self.group_by.iter().find_map(|path| match event.top().path(path) {
                Ok(Some(Node::String(s))) if !s.is_empty() => Some(s.to_string()),
                Ok(Some(Node::Number(n))) => Some(n.to_string()),
                _ => None,
            });
            let id = group.or_else(|| {
                ["trace_id", "api_request_uid"]
                    .iter()
                    .find_map(|k| event.get(k).and_then(Node::as_str))
                    .map(str::to_string)
            });
            if let Some(id) = id.filter(|id| !id.is_empty()) {
                event.insert("correlation_uid", id.into());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
    const SPAN: &str = "00f067aa0ba902b7";

    fn run(config: Value, event: Value) -> Value {
        let c = Correlation::new(serde_json::from_value(config).unwrap());
        crate::doc::edit(event, |doc| c.apply(doc))
    }

    #[test]
    fn w3c_traceparent_is_validated() {
        assert_eq!(traceparent(&format!("00-{TRACE}-{SPAN}-01")), Some((TRACE.into(), SPAN.into())));
        assert_eq!(traceparent(&format!("01-{TRACE}-{SPAN}-01-future")), Some((TRACE.into(), SPAN.into())));
        for bad in [
            format!("00-{TRACE}-{SPAN}-01-extra"),
            format!("ff-{TRACE}-{SPAN}-01"),
            format!("00-{}-{SPAN}-01", "0".repeat(32)),
            format!("00-{TRACE}-{}-01", "0".repeat(16)),
            format!("00-{}-{SPAN}-01", TRACE.to_uppercase()),
            format!("00-{TRACE}-{SPAN}"),
            "garbage".into(),
        ] {
            assert_eq!(traceparent(&bad), None, "{bad}");
        }
    }

    #[test]
    fn trace_and_request_ids_are_found_in_headers_and_correlation_derived() {
        let out = run(
            json!({}),
            json!({"unmapped": {"request": {"headers": {"Traceparent": format!("00-{TRACE}-{SPAN}-01"),
                                                         "X-Request-ID": "req-7"}}}}),
        );
        assert_eq!(out["trace_id"], TRACE);
        assert_eq!(out["span_id"], SPAN);
        assert_eq!(out["api_request_uid"], "req-7");
        assert_eq!(out["correlation_uid"], TRACE);
    }

    #[test]
    fn existing_columns_are_kept_and_a_request_id_correlates_without_a_trace() {
        let out = run(json!({}), json!({"api_request_uid": "ct-123", "unmapped": {"requestId": "other"}}));
        assert_eq!(out["api_request_uid"], "ct-123");
        assert_eq!(out["correlation_uid"], "ct-123");
        assert!(out.get("trace_id").is_none());
        let out = run(
            json!({}),
            json!({"trace_id": "mine", "correlation_uid": "set", "traceparent": format!("00-{TRACE}-{SPAN}-01")}),
        );
        assert_eq!((out["trace_id"].as_str(), out["correlation_uid"].as_str()), (Some("mine"), Some("set")));
    }

    #[test]
    fn xray_and_gcp_traces() {
        let out = run(
            json!({}),
            json!({"unmapped": {"X-Amzn-Trace-Id": "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"}}),
        );
        assert_eq!(out["trace_id"], "5759e988bd862e3fe1be46a994272793");
        assert_eq!(out["span_id"], "53995c3f42cd8ad8");
        let out = run(json!({}), json!({"unmapped": {"trace": format!("projects/p1/traces/{TRACE}"), "spanId": SPAN}}));
        assert_eq!((out["trace_id"].as_str(), out["span_id"].as_str()), (Some(TRACE), Some(SPAN)));
    }

    #[test]
    fn keys_are_matched_whatever_their_case_and_punctuation() {
        // the first-letter filter reads past leading punctuation and ignores case
        let out = run(
            json!({}),
            json!({"unmapped": {"__X-Request-ID": "r-1", "-TraceParent": format!("00-{TRACE}-{SPAN}-01")}}),
        );
        assert_eq!((out["api_request_uid"].as_str(), out["trace_id"].as_str()), (Some("r-1"), Some(TRACE)));
        // a configured key that normalizes to nothing matches keys without letters or digits
        let out = run(json!({"request_id_keys": ["--"]}), json!({"unmapped": {"_": "r-2"}}));
        assert_eq!(out["api_request_uid"], "r-2");
    }

    #[test]
    fn group_by_paths_come_first_and_keys_are_configurable() {
        let out = run(
            json!({"group_by": ["unmapped.sharedEventID"], "request_id_keys": ["x-trace-ref"]}),
            json!({"unmapped": {"sharedEventID": "shared-1", "x_trace_ref": "r-9", "requestId": "ignored"}}),
        );
        assert_eq!(out["correlation_uid"], "shared-1");
        assert_eq!(out["api_request_uid"], "r-9");
    }
}
