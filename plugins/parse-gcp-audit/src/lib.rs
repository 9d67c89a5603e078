//! A parser for Google Cloud Audit Logs: one `LogEntry` per line whose
//! `protoPayload` is a `google.cloud.audit.AuditLog`.
//!
//! Every entry is OCSF API Activity (6003). The activity comes from the verb of
//! the method's last part (`google.iam.admin.v1.CreateServiceAccountKey` →
//! create, `storage.objects.get` → get, `io.k8s.core.v1.pods.delete` → delete):
//! create/insert → 1, get/list/read/search/lookup/query/watch → 2,
//! update/patch/set/modify/replace → 3, delete/remove → 4, anything else → 99.
//!
//! `protoPayload.status.code` is a gRPC code: 0 or absent is a success, anything
//! else a failure. The project is `resource.labels.project_id`, or else the
//! `projects/<id>` of `logName`. What is not mapped to a column stays under
//! `unmapped` (the entry without the mapped leaves).
//!
//! Config: none; any key is rejected.

use serde_json::{Map, Value};
use sluice_plugin_sdk::json::{self, get, kind, remove, string};
use sluice_plugin_sdk::{Event, Outcome, Parser, export_parser, parse_rfc3339_micros, set_class, truncate};

const API_ACTIVITY: i64 = 6003;

/// Leaves copied to a column as they are, and then removed from `unmapped`.
const COLUMNS: [(&str, &str); 8] = [
    ("insertId", "metadata_uid"),
    ("protoPayload.authenticationInfo.principalEmail", "actor_user_name"),
    ("protoPayload.authenticationInfo.principalSubject", "actor_user_uid"),
    ("protoPayload.requestMetadata.callerSuppliedUserAgent", "http_user_agent"),
    ("protoPayload.serviceName", "api_service_name"),
    ("protoPayload.methodName", "api_operation"),
    ("resource.labels.location", "cloud_region"),
    ("protoPayload.status.message", "status_detail"),
];

#[derive(Debug)]
pub struct ParseGcpAudit;

impl Parser for ParseGcpAudit {
    fn init(config: Value) -> Result<Self, String> {
        match config {
            Value::Object(m) => match m.keys().next() {
                Some(key) => Err(format!("parse-gcp-audit: unknown config key `{key}` (this plugin takes no config)")),
                None => Ok(ParseGcpAudit),
            },
            _ => Err("parse-gcp-audit: config must be a table".into()),
        }
    }

    fn parse(&mut self, record: &[u8]) -> Outcome {
        let object = match json::object(record) {
            Ok(object) => object,
            Err(outcome) => return outcome,
        };
        match audit_entry(object) {
            Ok(event) => Outcome::Keep(event),
            Err(reason) => Outcome::Error(reason),
        }
    }
}

fn audit_entry(object: Map<String, Value>) -> Result<Event, String> {
    match object.get("protoPayload") {
        Some(Value::Object(_)) => {}
        Some(other) => return Err(format!("field `protoPayload`: expected an object, got {}", kind(other))),
        None => {
            return Err(if object.contains_key("jsonPayload") || object.contains_key("textPayload") {
                "a LogEntry without `protoPayload` is not an audit log entry".into()
            } else {
                "not a Cloud Audit Logs entry: no `protoPayload`".into()
            });
        }
    }
    match string(&object, "protoPayload.@type")? {
        Some(t) if !t.ends_with("google.cloud.audit.AuditLog") => {
            return Err(format!(
                "`protoPayload.@type` is `{t}`, expected type.googleapis.com/google.cloud.audit.AuditLog"
            ));
        }
        _ => {}
    }
    let mut event = Event::new();
    let stamp = match string(&object, "timestamp")? {
        Some(s) => ("timestamp", s),
        None => ("receiveTimestamp", string(&object, "receiveTimestamp")?.ok_or("LogEntry has no `timestamp`")?),
    };
    let time = parse_rfc3339_micros(stamp.1)
        .ok_or_else(|| format!("field `{}`: `{}` is not an RFC 3339 time", stamp.0, truncate(stamp.1, 64)))?;
    event.insert("time".into(), time.into());
    event.insert("metadata_product_name".into(), "Google Cloud Audit Logs".into());
    event.insert("cloud_provider".into(), "GCP".into());

    for (path, column) in COLUMNS {
        if let Some(v) = string(&object, path)? {
            event.insert(column.into(), v.into());
        }
    }
    // `gce-internal-ip`, `private` and the like are not addresses.
    let mut caller = None;
    if let Some(ip) = string(&object, "protoPayload.requestMetadata.callerIp")? {
        if ip.parse::<std::net::IpAddr>().is_ok() {
            event.insert("src_endpoint_ip".into(), ip.into());
        } else {
            caller = Some(ip.to_string());
        }
    }
    let log_name = string(&object, "logName")?;
    let project = match string(&object, "resource.labels.project_id")? {
        Some(p) => Some(p),
        None => log_name.and_then(|l| l.strip_prefix("projects/")).and_then(|l| l.split('/').next()),
    };
    if let Some(project) = project.filter(|p| !p.is_empty()) {
        event.insert("cloud_account_uid".into(), project.into());
    }
    let mut resource = Map::new();
    if let Some(t) = string(&object, "resource.type")? {
        resource.insert("type".into(), t.into());
    }
    if let Some(name) = string(&object, "protoPayload.resourceName")? {
        resource.insert("name".into(), name.into());
    }
    if !resource.is_empty() {
        event.insert("resources".into(), Value::Array(vec![Value::Object(resource)]));
    }

    let method = string(&object, "protoPayload.methodName")?;
    set_class(&mut event, API_ACTIVITY, method.map_or(99, method_activity));
    let code = match get(&object, "protoPayload.status.code")? {
        None => 0,
        Some(v) => {
            v.as_i64().ok_or_else(|| format!("field `protoPayload.status.code`: expected an integer, got {v}"))?
        }
    };
    let status = if code == 0 { 1 } else { 2 };
    event.insert("status_id".into(), status.into());
    if code != 0 {
        event.insert("status_code".into(), code.to_string().into());
    }
    let level = severity(string(&object, "severity")?);
    // gRPC 7 PERMISSION_DENIED and 16 UNAUTHENTICATED are denials.
    let floor = match code {
        0 => 1,
        7 | 16 => 3,
        _ => 2,
    };
    event.insert("severity_id".into(), level.max(floor).into());

    let mut unmapped = object;
    for path in COLUMNS.iter().map(|(p, _)| *p).chain([
        "timestamp",
        "protoPayload.requestMetadata.callerIp",
        "protoPayload.resourceName",
        "protoPayload.status.code",
        "resource.type",
    ]) {
        remove(&mut unmapped, path);
    }
    if let Some(caller) = caller {
        unmapped.insert("caller_ip".into(), caller.into());
    }
    if !unmapped.is_empty() {
        event.insert("unmapped".into(), Value::Object(unmapped));
    }
    Ok(event)
}

/// API Activity from the verb that starts the method's last part.
pub fn method_activity(method: &str) -> i64 {
    let last = method.rsplit('.').next().unwrap_or(method).to_ascii_lowercase();
    let starts = |verbs: &[&str]| verbs.iter().any(|v| last.starts_with(v));
    if starts(&["create", "insert"]) {
        1
    } else if starts(&["get", "list", "read", "search", "lookup", "query", "watch"]) {
        2
    } else if starts(&["update", "patch", "set", "modify", "replace"]) {
        3
    } else if starts(&["delete", "remove"]) {
        4
    } else {
        99
    }
}

/// OCSF severity for a LogEntry severity.
fn severity(level: Option<&str>) -> i64 {
    match level {
        Some("WARNING") => 3,
        Some("ERROR") => 4,
        Some("CRITICAL") => 5,
        Some("ALERT" | "EMERGENCY") => 6,
        _ => 1,
    }
}

export_parser!(ParseGcpAudit);

#[cfg(test)]
mod tests;
