//! A parser for Okta System Log events (the JSON of `/api/v1/logs`), one per line.
//!
//! Classes, from `eventType`:
//! - `user.session.start` → Authentication (3002) 1 Logon, `user.session.end`
//!   → 2 Logoff; the other `user.authentication.*` events (SSO, MFA, ...) are
//!   logons too;
//! - `user.lifecycle.create` → Account Change (3001) 1 Create, `activate`,
//!   `reactivate`, `unsuspend` → 2 Enable, `deactivate`, `suspend` → 5 Disable,
//!   `delete` → 6 Delete; `user.account.update_password` → 3 Password Change,
//!   `user.account.reset_password` → 4 Password Reset;
//! - anything else → API Activity (6003), activity from the last part of the
//!   type: create/add → 1, read/get/list → 2, update → 3, delete/remove → 4,
//!   else 99.
//!
//! `outcome.result`: SUCCESS/ALLOW → 1 success, FAILURE/DENY → 2 failure,
//! CHALLENGE/SKIPPED → 99 other, UNKNOWN or none → 0. `target[]` become
//! `resources`. What is not mapped stays under `unmapped` (the event without
//! the mapped leaves and without nulls).
//!
//! Config: none; any key is rejected.

use serde_json::{Map, Value};
use sluice_plugin_sdk::json::{self, kind, remove, string};
use sluice_plugin_sdk::{Event, Outcome, Parser, export_parser, parse_rfc3339_micros, set_class, truncate};

const ACCOUNT_CHANGE: i64 = 3001;
const AUTHENTICATION: i64 = 3002;
const API_ACTIVITY: i64 = 6003;

/// Leaves copied to a column as they are, then removed from `unmapped`.
const COLUMNS: [(&str, &str); 9] = [
    ("uuid", "metadata_uid"),
    ("eventType", "api_operation"),
    ("displayMessage", "message"),
    ("actor.alternateId", "actor_user_name"),
    ("actor.id", "actor_user_uid"),
    ("actor.type", "actor_user_type"),
    ("client.userAgent.rawUserAgent", "http_user_agent"),
    ("authenticationContext.externalSessionId", "actor_session_uid"),
    ("debugContext.debugData.requestId", "api_request_uid"),
];

#[derive(Debug)]
pub struct ParseOkta;

impl Parser for ParseOkta {
    fn init(config: Value) -> Result<Self, String> {
        match config {
            Value::Object(m) => match m.keys().next() {
                Some(key) => Err(format!("parse-okta: unknown config key `{key}` (this plugin takes no config)")),
                None => Ok(ParseOkta),
            },
            _ => Err("parse-okta: config must be a table".into()),
        }
    }

    fn parse(&mut self, record: &[u8]) -> Outcome {
        let object = match json::object(record) {
            Ok(object) => object,
            Err(outcome) => return outcome,
        };
        match okta_event(object) {
            Ok(event) => Outcome::Keep(event),
            Err(reason) => Outcome::Error(reason),
        }
    }
}

fn okta_event(object: Map<String, Value>) -> Result<Event, String> {
    let event_type = string(&object, "eventType")?.ok_or("not an Okta System Log event: no `eventType`")?;
    let published = string(&object, "published")?.ok_or("Okta event has no `published` time")?;
    let time = parse_rfc3339_micros(published)
        .ok_or_else(|| format!("field `published`: `{}` is not an RFC 3339 time", truncate(published, 64)))?;
    let mut event = Event::new();
    event.insert("time".into(), time.into());
    event.insert("metadata_product_name".into(), "Okta".into());
    for (path, column) in COLUMNS {
        // Okta writes "unknown" where it has no value.
        if let Some(v) = string(&object, path)?.filter(|v| *v != "unknown") {
            event.insert(column.into(), v.into());
        }
    }
    let ip = string(&object, "client.ipAddress")?.filter(|ip| ip.parse::<std::net::IpAddr>().is_ok());
    if let Some(ip) = ip {
        event.insert("src_endpoint_ip".into(), ip.into());
    }
    let ip_mapped = ip.is_some();
    if let Some(resources) = targets(&object)? {
        event.insert("resources".into(), Value::Array(resources));
    }

    let (class_uid, activity) = classify(event_type);
    set_class(&mut event, class_uid, activity);
    let result = string(&object, "outcome.result")?;
    let status = match result {
        Some("SUCCESS" | "ALLOW") => 1,
        Some("FAILURE" | "DENY") => 2,
        Some("CHALLENGE" | "SKIPPED") => 99,
        _ => 0,
    };
    event.insert("status_id".into(), status.into());
    if let Some(result) = result {
        event.insert("status_code".into(), result.into());
    }
    if let Some(reason) = string(&object, "outcome.reason")? {
        event.insert("status_detail".into(), reason.into());
    }
    let level = match string(&object, "severity")? {
        Some("WARN") => 3,
        Some("ERROR") => 4,
        _ => 1,
    };
    let floor = match status {
        2 if class_uid == AUTHENTICATION || result == Some("DENY") => 3,
        2 => 2,
        _ => 1,
    };
    event.insert("severity_id".into(), level.max(floor).into());

    let mut unmapped = object;
    for path in COLUMNS.iter().map(|(p, _)| *p).chain(["published", "target", "outcome.result", "outcome.reason"]) {
        remove(&mut unmapped, path);
    }
    if ip_mapped {
        remove(&mut unmapped, "client.ipAddress");
    }
    drop_nulls(&mut unmapped);
    if !unmapped.is_empty() {
        event.insert("unmapped".into(), Value::Object(unmapped));
    }
    Ok(event)
}

fn classify(event_type: &str) -> (i64, i64) {
    match event_type {
        "user.session.start" => (AUTHENTICATION, 1),
        "user.session.end" => (AUTHENTICATION, 2),
        t if t.starts_with("user.authentication.") => (AUTHENTICATION, 1),
        "user.lifecycle.create" => (ACCOUNT_CHANGE, 1),
        "user.lifecycle.activate" | "user.lifecycle.reactivate" | "user.lifecycle.unsuspend" => (ACCOUNT_CHANGE, 2),
        "user.account.update_password" => (ACCOUNT_CHANGE, 3),
        "user.account.reset_password" => (ACCOUNT_CHANGE, 4),
        "user.lifecycle.deactivate" | "user.lifecycle.suspend" => (ACCOUNT_CHANGE, 5),
        "user.lifecycle.delete" => (ACCOUNT_CHANGE, 6),
        t => {
            let last = t.rsplit('.').next().unwrap_or(t);
            let starts = |words: &[&str]| words.iter().any(|w| last.starts_with(w));
            let activity = if starts(&["create", "add"]) {
                1
            } else if starts(&["read", "get", "list"]) {
                2
            } else if starts(&["update"]) {
                3
            } else if starts(&["delete", "remove"]) {
                4
            } else {
                99
            };
            (API_ACTIVITY, activity)
        }
    }
}

/// `target[]` → `[{type, uid: id, name: alternateId or displayName}]`.
fn targets(object: &Map<String, Value>) -> Result<Option<Vec<Value>>, String> {
    let items = match object.get("target") {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Array(items)) => items,
        Some(other) => return Err(format!("field `target`: expected an array, got {}", kind(other))),
    };
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let Value::Object(item) = item else {
            return Err(format!("field `target.{i}`: expected an object, got {}", kind(item)));
        };
        let known = |key: &str| string(item, key).map(|v| v.filter(|v| *v != "unknown"));
        let mut resource = Map::new();
        if let Some(t) = known("type")? {
            resource.insert("type".into(), t.into());
        }
        if let Some(id) = known("id")? {
            resource.insert("uid".into(), id.into());
        }
        let name = match known("alternateId")? {
            Some(n) => Some(n),
            None => known("displayName")?,
        };
        if let Some(name) = name {
            resource.insert("name".into(), name.into());
        }
        if !resource.is_empty() {
            out.push(Value::Object(resource));
        }
    }
    Ok((!out.is_empty()).then_some(out))
}

/// Okta writes many fields as null; they tell nothing.
fn drop_nulls(object: &mut Map<String, Value>) {
    object.retain(|_, v| match v {
        Value::Null => false,
        Value::Object(inner) => {
            drop_nulls(inner);
            !inner.is_empty()
        }
        _ => true,
    });
}

export_parser!(ParseOkta);

#[cfg(test)]
mod tests;
