//! A parser for AWS CloudTrail records.
//!
//! A record is one CloudTrail event (one JSON object per line, as CloudWatch
//! Logs, EventBridge exports and log shippers write them) or a delivered log
//! file body, `{"Records":[...]}`, which becomes one event per item
//! (`Outcome::Texts`).
//!
//! Classes:
//! - `ConsoleLogin` → Authentication (3002), activity 1 Logon, status from
//!   `responseElements.ConsoleLogin` (`Success` / `Failure`).
//! - everything else → API Activity (6003), activity from the leading verb of
//!   `eventName` (see [`verb_activity`]). `Put*` counts as Update: it sets a
//!   value (a policy, a bucket setting, an object) whether or not one existed.
//!
//! `errorCode` makes the status a failure (2) with `status_code`/`status_detail`
//! from `errorCode`/`errorMessage`. The time is `eventTime`; copies shipped by
//! Logstash without it (as in some public datasets) fall back to `@timestamp`.
//! Everything not mapped to a column is kept under `unmapped` (the record minus
//! the mapped top-level keys; `userIdentity` is kept whole), written as it was
//! read: the event is returned as text, `unmapped` written from the record's
//! tree rather than copied into the event first.
//!
//! Config: none; any key is rejected.

use serde_json::{Map, Value};
use sluice_plugin_sdk::json;
use sluice_plugin_sdk::tree::{Node, Object};
use sluice_plugin_sdk::{Event, Outcome, Parser, export_parser, parse_rfc3339_micros, set_class, truncate};
use std::borrow::Cow;

const AUTHENTICATION: i64 = 3002;
const API_ACTIVITY: i64 = 6003;

/// Whether a top-level key becomes a column and so is not repeated under
/// `unmapped` (a `match`: a list's `contains` compared each key with every
/// entry, a tenth of the parser's native time).
fn mapped(key: &str) -> bool {
    matches!(
        key,
        "eventTime"
            | "eventSource"
            | "eventName"
            | "eventID"
            | "requestID"
            | "awsRegion"
            | "sourceIPAddress"
            | "userAgent"
            | "errorCode"
            | "errorMessage"
            | "recipientAccountId"
            | "resources"
    )
}

#[derive(Debug)]
pub struct ParseCloudTrail;

impl Parser for ParseCloudTrail {
    fn init(config: Value) -> Result<Self, String> {
        match config {
            Value::Object(m) => match m.keys().next() {
                Some(key) => Err(format!("parse-cloudtrail: unknown config key `{key}` (this plugin takes no config)")),
                None => Ok(ParseCloudTrail),
            },
            _ => Err("parse-cloudtrail: config must be a table".into()),
        }
    }

    fn parse(&mut self, record: &[u8]) -> Outcome {
        let object = match json::tree(record) {
            Ok(object) => object,
            Err(outcome) => return outcome,
        };
        match object.get("Records") {
            Some(Node::Array(items)) => records_file(items),
            Some(other) => Outcome::Error(format!("field `Records`: expected an array, got {}", other.kind())),
            None => match cloudtrail_event(&object) {
                Ok(e) => Outcome::Text(e),
                Err(reason) => Outcome::Error(reason),
            },
        }
    }
}

/// A delivered log file: every item must be a record, or the whole body is quarantined.
fn records_file(items: &[Node]) -> Outcome {
    if items.is_empty() {
        return Outcome::Drop("empty Records list".into());
    }
    let mut events = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let Node::Object(item) = item else {
            return Outcome::Error(format!("Records[{i}]: expected an object, got {}", item.kind()));
        };
        match cloudtrail_event(item) {
            Ok(e) => events.push(e),
            Err(reason) => return Outcome::Error(format!("Records[{i}]: {reason}")),
        }
    }
    Outcome::Texts(events)
}

/// One record's event, as JSON text.
fn cloudtrail_event(object: &Object) -> Result<String, String> {
    let name = object.string("eventName")?;
    let source = object.string("eventSource")?;
    let (Some(name), Some(source)) = (name, source) else {
        return Err(match (name, source) {
            (None, None) => "not a CloudTrail record: no `eventName` or `eventSource` (nor a `Records` list)".into(),
            (None, _) => "CloudTrail record has no `eventName`".into(),
            _ => "CloudTrail record has no `eventSource`".into(),
        });
    };
    let mut event = Event::new();
    event.insert("time".into(), event_time(object)?.into());
    event.insert("metadata_product_name".into(), "CloudTrail".into());
    event.insert("cloud_provider".into(), "AWS".into());
    event.insert("api_service_name".into(), source.into());
    event.insert("api_operation".into(), name.into());
    let mut unmapped: Object = object
        .members()
        .iter()
        .filter(|(k, v)| !mapped(k) && *v != Node::Null)
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();

    for (from, to) in [
        ("eventID", "metadata_uid"),
        ("requestID", "api_request_uid"),
        ("userAgent", "http_user_agent"),
        ("awsRegion", "cloud_region"),
    ] {
        if let Some(v) = object.string(from)? {
            event.insert(to.into(), v.into());
        }
    }
    // An AWS service calling on a user's behalf logs its name here, not an address.
    if let Some(address) = object.string("sourceIPAddress")? {
        if address.parse::<std::net::IpAddr>().is_ok() {
            event.insert("src_endpoint_ip".into(), address.into());
        } else {
            unmapped.insert(Cow::Borrowed("source"), address.into());
        }
    }
    user_identity(object, &mut event)?;
    let account = match object.string("recipientAccountId")? {
        Some(a) => Some(a),
        None => object.string("userIdentity.accountId")?,
    };
    if let Some(account) = account {
        event.insert("cloud_account_uid".into(), account.into());
    }
    if let Some(resources) = resources(object)? {
        event.insert("resources".into(), Value::Array(resources));
    }

    let error_code = object.string("errorCode")?;
    let error_message = object.string("errorMessage")?;
    let mut status = if error_code.is_some() { 2 } else { 1 };
    if name == "ConsoleLogin" {
        set_class(&mut event, AUTHENTICATION, 1);
        match object.string("responseElements.ConsoleLogin")? {
            Some("Success") => status = 1,
            Some("Failure") => status = 2,
            _ => {}
        }
    } else {
        set_class(&mut event, API_ACTIVITY, verb_activity(name));
    }
    event.insert("status_id".into(), status.into());
    event.insert("severity_id".into(), severity(status, name, error_code).into());
    if let Some(code) = error_code {
        event.insert("status_code".into(), code.into());
    }
    if let Some(message) = error_message {
        event.insert("status_detail".into(), message.into());
    }
    Ok(match unmapped.is_empty() {
        true => json::encode(&event),
        false => json::encode_with(&event, "unmapped", &Node::Object(unmapped)),
    })
}

fn event_time(object: &Object) -> Result<i64, String> {
    for field in ["eventTime", "@timestamp"] {
        if let Some(text) = object.string(field)? {
            return parse_rfc3339_micros(text)
                .ok_or_else(|| format!("field `{field}`: `{}` is not an RFC 3339 time", truncate(text, 64)));
        }
    }
    Err("CloudTrail record has no `eventTime`".into())
}

/// The actor, for every `userIdentity.type`.
fn user_identity(object: &Object, event: &mut Event) -> Result<(), String> {
    let identity = match object.get("userIdentity") {
        None | Some(Node::Null) => return Ok(()),
        Some(Node::Object(identity)) => identity,
        Some(other) => return Err(format!("field `userIdentity`: expected an object, got {}", other.kind())),
    };
    let field = |name: &str| identity.string_under("userIdentity", name);
    let kind = field("type")?;
    let arn = field("arn")?;
    let user_name = field("userName")?;
    let invoked_by = field("invokedBy")?;
    // The last part of an ARN's resource: `user/path/JohnDoe` → JohnDoe.
    let arn_tail = arn.and_then(|a| a.rsplit([':', '/']).next()).filter(|s| !s.is_empty());
    let name: Option<String> = match kind {
        Some("AssumedRole") => {
            // arn:aws:sts::123456789012:assumed-role/ROLE/SESSION
            let role = arn.and_then(|a| a.split('/').nth(1));
            if let Some(session) = arn.and_then(|a| a.split('/').nth(2)) {
                event.insert("actor_session_uid".into(), session.into());
            }
            field("sessionContext.sessionIssuer.userName")?.or(role).map(str::to_string)
        }
        Some("Root") => Some(user_name.unwrap_or("root").to_string()),
        Some("AWSService") => invoked_by.map(str::to_string),
        Some("AWSAccount") => user_name.or(field("accountId")?).or(field("principalId")?).map(str::to_string),
        Some("IdentityCenterUser") => {
            if let Some(credential) = field("credentialId")? {
                event.insert("actor_session_uid".into(), credential.into());
            }
            user_name.or(field("onBehalfOf.userId")?).map(str::to_string)
        }
        // IAMUser, FederatedUser, Unknown, and types yet to come.
        _ => user_name.or(arn_tail).map(str::to_string),
    };
    if let Some(name) = name {
        event.insert("actor_user_name".into(), name.into());
    }
    for (from, to) in [
        ("principalId", "actor_user_uid"),
        ("type", "actor_user_type"),
        ("accessKeyId", "actor_user_credential_uid"),
        ("invokedBy", "actor_invoked_by"),
    ] {
        if let Some(v) = field(from)? {
            event.insert(to.into(), v.into());
        }
    }
    Ok(())
}

/// `resources` → `[{type, uid: ARN, name}]`, the name being the ARN's last part.
fn resources(object: &Object) -> Result<Option<Vec<Value>>, String> {
    let items = match object.get("resources") {
        None | Some(Node::Null) => return Ok(None),
        Some(Node::Array(items)) => items,
        Some(other) => return Err(format!("field `resources`: expected an array, got {}", other.kind())),
    };
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let Node::Object(item) = item else {
            return Err(format!("field `resources.{i}`: expected an object, got {}", item.kind()));
        };
        let mut resource = Map::new();
        let arn = match item.string("ARN")? {
            Some(a) => Some(a),
            None => item.string("arn")?,
        };
        if let Some(kind) = item.string("type")? {
            resource.insert("type".into(), kind.into());
        }
        if let Some(arn) = arn {
            resource.insert("uid".into(), arn.into());
            if let Some(name) = arn.rsplit([':', '/']).next().filter(|s| !s.is_empty()) {
                resource.insert("name".into(), name.into());
            }
        }
        if !resource.is_empty() {
            out.push(Value::Object(resource));
        }
    }
    Ok((!out.is_empty()).then_some(out))
}

/// API Activity from the verb that starts an event name (`DescribeInstances` → Describe):
/// Create/Run/Attach/Add/Register/Import/Allocate → 1 Create;
/// Get/Describe/List/Head/Lookup/Search/Scan/Query/Select → 2 Read;
/// Update/Modify/Set/Put/Change/Replace/Enable/Disable/Reset/Tag/Untag → 3 Update;
/// Delete/Remove/Terminate/Detach/Deregister/Release → 4 Delete; anything else → 99.
pub fn verb_activity(event_name: &str) -> i64 {
    let end =
        event_name.char_indices().skip(1).find(|(_, c)| !c.is_ascii_lowercase()).map_or(event_name.len(), |(i, _)| i);
    match &event_name[..end] {
        "Create" | "Run" | "Attach" | "Add" | "Register" | "Import" | "Allocate" => 1,
        "Get" | "Describe" | "List" | "Head" | "Lookup" | "Search" | "Scan" | "Query" | "Select" => 2,
        "Update" | "Modify" | "Set" | "Put" | "Change" | "Replace" | "Enable" | "Disable" | "Reset" | "Tag"
        | "Untag" => 3,
        "Delete" | "Remove" | "Terminate" | "Detach" | "Deregister" | "Release" => 4,
        _ => 99,
    }
}

/// 1 informational; 3 for a failed console login or a refused call; 2 for other failures.
fn severity(status: i64, name: &str, error_code: Option<&str>) -> i64 {
    let denied = error_code.is_some_and(|c| {
        c.contains("AccessDenied") || c.contains("Unauthorized") || c.contains("Forbidden") || c == "AuthFailure"
    });
    match status {
        2 if denied || name == "ConsoleLogin" => 3,
        2 => 2,
        _ => 1,
    }
}

export_parser!(ParseCloudTrail);

#[cfg(test)]
mod tests;
