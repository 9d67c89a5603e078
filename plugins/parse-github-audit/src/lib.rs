//! A parser for GitHub organization and enterprise audit log events (the JSON
//! of the audit log API and of streamed/exported audit logs), one per line.
//!
//! The time is `@timestamp`, else `created_at`: milliseconds since the epoch
//! (a number below 10^11 is read as seconds) or an RFC 3339 text.
//!
//! Classes, from `action` (`category.verb`):
//! - `api.request` → API Activity (6003), activity from `request_method`
//!   (POST → 1, GET/HEAD → 2, PUT/PATCH → 3, DELETE → 4, else 99);
//! - `git.*` → API Activity (6003): clone/fetch → 2 Read, push → 3 Update;
//! - `*.login`, `*.failed_login` → Authentication (3002) Logon, `*.logout` →
//!   Logoff; an OAuth grant (`oauth_authorization.*`, `oauth_access.*`) is an
//!   app authenticated on the user's behalf: create → Logon, destroy → Logoff;
//! - everything else (`org.add_member`, `team.*`, `repo.*`, `protected_branch.*`...)
//!   → Entity Management (3004), activity from `operation_type` when the event
//!   has one (create → 1, access → 2, modify/transfer → 3, remove → 4), else from
//!   the verb: create/add/invite… → 1, clone/download/view/…export → 2,
//!   destroy/delete/remove… → 4, anything else → 3 Update.
//!
//! Status: from `status_code` when there is one (< 400 success); otherwise an
//! audit entry records something that happened (1 success), unless its verb
//! says it failed or was rejected (`failed_login`, `rejected_ref_update`) → 2.
//! `org` (or `business`) is the tenant. `repo`/`repository`, `team` (or
//! `data.team`) and `user` become `resources`. The rest stays under `unmapped`.
//!
//! Config: none; any key is rejected.

use serde_json::{Map, Value};
use sluice_plugin_sdk::json::{self, kind, string};
use sluice_plugin_sdk::{Event, Outcome, Parser, export_parser, parse_rfc3339_micros, set_class};

const AUTHENTICATION: i64 = 3002;
const ENTITY_MANAGEMENT: i64 = 3004;
const API_ACTIVITY: i64 = 6003;

/// String keys copied to a column as they are.
const COLUMNS: [(&str, &str); 6] = [
    ("action", "api_operation"),
    ("actor", "actor_user_name"),
    ("user_agent", "http_user_agent"),
    ("_document_id", "metadata_uid"),
    ("request_id", "api_request_uid"),
    ("request_method", "http_request_method"),
];

#[derive(Debug)]
pub struct ParseGithubAudit;

impl Parser for ParseGithubAudit {
    fn init(config: Value) -> Result<Self, String> {
        match config {
            Value::Object(m) => match m.keys().next() {
                Some(key) => {
                    Err(format!("parse-github-audit: unknown config key `{key}` (this plugin takes no config)"))
                }
                None => Ok(ParseGithubAudit),
            },
            _ => Err("parse-github-audit: config must be a table".into()),
        }
    }

    fn parse(&mut self, record: &[u8]) -> Outcome {
        let object = match json::object(record) {
            Ok(object) => object,
            Err(outcome) => return outcome,
        };
        match audit_event(object) {
            Ok(event) => Outcome::Keep(event),
            Err(reason) => Outcome::Error(reason),
        }
    }
}

fn audit_event(mut object: Map<String, Value>) -> Result<Event, String> {
    let action = match object.get("action") {
        Some(Value::String(a)) if !a.is_empty() => a.clone(),
        Some(other) if !other.is_null() => {
            return Err(format!("field `action`: expected a string, got {}", kind(other)));
        }
        _ => return Err("not a GitHub audit event: no `action`".into()),
    };
    let mut event = Event::new();
    let (time_key, time) = event_time(&object)?;
    object.remove(time_key);
    event.insert("time".into(), time.into());
    event.insert("metadata_product_name".into(), "GitHub".into());

    for (key, column) in COLUMNS {
        if let Some(v) = take_string(&mut object, key)? {
            event.insert(column.into(), v.into());
        }
    }
    if let Some(id) = take_id(&mut object, "actor_id")? {
        event.insert("actor_user_uid".into(), id.into());
    }
    if let Some(ip) = take_string(&mut object, "actor_ip")? {
        if ip.parse::<std::net::IpAddr>().is_ok() {
            event.insert("src_endpoint_ip".into(), ip.into());
        } else {
            object.insert("actor_ip".into(), ip.into());
        }
    }
    for key in ["org", "business"] {
        if let Some(Value::String(tenant)) = object.get(key).filter(|v| v.as_str().is_some_and(|t| !t.is_empty())) {
            event.insert("tenant_uid".into(), tenant.as_str().into());
            object.remove(key);
            break;
        }
    }
    for key in ["url_path", "route"] {
        if let Some(path) = take_string(&mut object, key)? {
            event.insert("http_request_url_path".into(), path.into());
            break;
        }
    }
    if let Some(resources) = resources(&object) {
        event.insert("resources".into(), Value::Array(resources));
    }

    let code = match object.remove("status_code") {
        None | Some(Value::Null) => None,
        Some(v) => match v.as_i64().or_else(|| v.as_str().and_then(|s| s.parse().ok())) {
            Some(c) => Some(c),
            None => return Err(format!("field `status_code`: expected an integer, got {v}")),
        },
    };
    let (category, verb) = action.rsplit_once('.').unwrap_or(("", action.as_str()));
    let (class_uid, activity) =
        classify(&action, category, verb, event.get("http_request_method"), string(&object, "operation_type")?);
    set_class(&mut event, class_uid, activity);
    let failed_verb = ["fail", "reject", "denied", "blocked"].iter().any(|w| verb.contains(w));
    let status = match code {
        Some(c) if c < 400 => 1,
        Some(_) => 2,
        None if failed_verb => 2,
        None => 1,
    };
    event.insert("status_id".into(), status.into());
    if let Some(code) = code {
        event.insert("http_response_code".into(), code.into());
        event.insert("status_code".into(), code.to_string().into());
    }
    let severity = match status {
        2 if class_uid == AUTHENTICATION || code.is_some_and(|c| c == 401 || c == 403) => 3,
        2 => 2,
        _ => 1,
    };
    event.insert("severity_id".into(), severity.into());
    object.retain(|_, v| !v.is_null());
    if !object.is_empty() {
        event.insert("unmapped".into(), Value::Object(object));
    }
    Ok(event)
}

fn classify(action: &str, category: &str, verb: &str, method: Option<&Value>, operation: Option<&str>) -> (i64, i64) {
    if action == "api.request" {
        let activity = match method.and_then(Value::as_str).map(str::to_ascii_uppercase).as_deref() {
            Some("POST") => 1,
            Some("GET" | "HEAD") => 2,
            Some("PUT" | "PATCH") => 3,
            Some("DELETE") => 4,
            _ => 99,
        };
        return (API_ACTIVITY, activity);
    }
    if category == "git" {
        let activity = match verb {
            "clone" | "fetch" => 2,
            "push" => 3,
            _ => 99,
        };
        return (API_ACTIVITY, activity);
    }
    if verb == "login" || verb == "failed_login" {
        return (AUTHENTICATION, 1);
    }
    if verb == "logout" {
        return (AUTHENTICATION, 2);
    }
    if matches!(category, "oauth_authorization" | "oauth_access") {
        match verb {
            "create" => return (AUTHENTICATION, 1),
            "destroy" => return (AUTHENTICATION, 2),
            _ => {}
        }
    }
    let activity = match operation {
        Some("create") => 1,
        Some("access") => 2,
        Some("modify" | "transfer") => 3,
        Some("remove") => 4,
        _ => verb_activity(verb),
    };
    (ENTITY_MANAGEMENT, activity)
}

/// Entity Management activity from an action's verb.
pub fn verb_activity(verb: &str) -> i64 {
    let starts = |words: &[&str]| words.iter().any(|w| verb.starts_with(w));
    if starts(&["create", "add", "invite"]) {
        1
    } else if starts(&["clone", "download", "view"]) || verb.ends_with("export") {
        2
    } else if starts(&["destroy", "delete", "remove"]) {
        4
    } else {
        3
    }
}

fn event_time(object: &Map<String, Value>) -> Result<(&'static str, i64), String> {
    for key in ["@timestamp", "created_at"] {
        let micros = match object.get(key) {
            None | Some(Value::Null) => continue,
            Some(Value::Number(n)) => n.as_f64().and_then(epoch_micros),
            Some(Value::String(s)) => parse_rfc3339_micros(s).or_else(|| s.parse().ok().and_then(epoch_micros)),
            Some(other) => return Err(format!("field `{key}`: expected a time, got {}", kind(other))),
        };
        return match micros {
            Some(t) => Ok((key, t)),
            None => Err(format!("field `{key}`: {} is not epoch milliseconds or an RFC 3339 time", object[key])),
        };
    }
    Err("GitHub audit event has no `@timestamp` or `created_at`".into())
}

/// Epoch milliseconds (or seconds, below 10^11) → microseconds.
fn epoch_micros(value: f64) -> Option<i64> {
    let micros = if value.abs() < 1e11 { value * 1e6 } else { value * 1e3 };
    (micros.is_finite() && micros.abs() < 9e18).then(|| micros.round() as i64)
}

/// `repo`/`repository`, `team` (or `data.team`) and `user`, where they are strings.
fn resources(object: &Map<String, Value>) -> Option<Vec<Value>> {
    let data_team = object.get("data").and_then(|d| d.get("team"));
    let found = [
        ("repository", object.get("repo").or(object.get("repository"))),
        ("team", object.get("team").or(data_team)),
        ("user", object.get("user")),
    ];
    let out: Vec<Value> = found
        .into_iter()
        .filter_map(|(kind, name)| {
            let name = name?.as_str().filter(|n| !n.is_empty())?;
            Some(serde_json::json!({"type": kind, "name": name}))
        })
        .collect();
    (!out.is_empty()).then_some(out)
}

/// Removes and returns a string field; `None` when missing, null or empty.
fn take_string(object: &mut Map<String, Value>, key: &str) -> Result<Option<String>, String> {
    match object.remove(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok((!s.is_empty()).then_some(s)),
        Some(other) => Err(format!("field `{key}`: expected a string, got {}", kind(&other))),
    }
}

/// Removes and returns an id written as a number or a string.
fn take_id(object: &mut Map<String, Value>, key: &str) -> Result<Option<String>, String> {
    match object.remove(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok((!s.is_empty()).then_some(s)),
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        Some(other) => Err(format!("field `{key}`: expected a number or a string, got {}", kind(&other))),
    }
}

export_parser!(ParseGithubAudit);

#[cfg(test)]
mod tests;
