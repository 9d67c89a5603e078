//! A parser for Kubernetes API server audit logs.
//!
//! A record is one of:
//! - an `audit.k8s.io` `Event` (one JSON object per line, as the log backend writes);
//! - an `EventList` body (`{"kind":"EventList","items":[...]}`, as the webhook
//!   backend posts) → one event per kept item (`Outcome::Texts`);
//! - an AKS diagnostic-log envelope whose `properties.log` holds the `Event`
//!   (as a JSON string or an object);
//! - a GKE Cloud Audit Logs entry for the `k8s.io` service (`protoPayload`).
//!
//! Every event is OCSF API Activity (6003), activity from the verb: create → 1,
//! get/list/watch → 2, update/patch → 3, delete/deletecollection → 4, else 99.
//!
//! Config (any other key is rejected):
//! - `stages`: the audit stages to keep, default `["ResponseComplete"]`. An
//!   event of another stage is dropped with the rule `stage <X> not kept`.
//!   GKE entries have no stage and are always kept.
//!
//! Events are returned as text: `unmapped` is a tree that borrows from the
//! record, written as it is rather than copied into the event first.

use serde_json::{Map, Value};
use sluice_plugin_sdk::json;
use sluice_plugin_sdk::tree::{self, Node, Object};
use sluice_plugin_sdk::{Event, Outcome, Parser, export_parser, parse_rfc3339_micros, set_class, truncate};
use std::borrow::Cow;

const STAGES: [&str; 4] = ["RequestReceived", "ResponseStarted", "ResponseComplete", "Panic"];
const API_ACTIVITY: i64 = 6003;
const DECISION: &str = "authorization.k8s.io/decision";
const REASON: &str = "authorization.k8s.io/reason";

#[derive(Debug)]
pub struct ParseK8sAudit {
    stages: Vec<String>,
}

/// What goes under `unmapped`, in any order (sorted once, when written:
/// in Wasm a sort of a few members costs less than a binary search per insert).
type Unmapped<'a> = Vec<(Cow<'a, str>, Node<'a>)>;

/// What became of one audit event.
enum Converted<'a> {
    /// The event's columns, and what goes under `unmapped`.
    Event(Event, Unmapped<'a>),
    /// Not kept; the text is the drop rule.
    Skipped(String),
}

/// An event's JSON text.
fn text(event: &Event, unmapped: Unmapped) -> String {
    json::encode_with(event, "unmapped", &Node::Object(unmapped.into_iter().collect()))
}

impl Parser for ParseK8sAudit {
    fn init(config: Value) -> Result<Self, String> {
        let Value::Object(config) = config else {
            return Err("parse-k8s-audit: config must be a table".into());
        };
        let mut stages = vec!["ResponseComplete".to_string()];
        for (key, value) in &config {
            match key.as_str() {
                "stages" => {
                    let list = value.as_array().ok_or("parse-k8s-audit: `stages` must be a list of stage names")?;
                    stages = Vec::new();
                    for item in list {
                        match item.as_str() {
                            Some(s) if STAGES.contains(&s) => stages.push(s.to_string()),
                            _ => {
                                return Err(format!(
                                    "parse-k8s-audit: `stages` has {item}, expected one of {}",
                                    STAGES.join(", ")
                                ));
                            }
                        }
                    }
                    if stages.is_empty() {
                        return Err("parse-k8s-audit: `stages` is empty, so every event would be dropped".into());
                    }
                }
                _ => return Err(format!("parse-k8s-audit: unknown config key `{key}`")),
            }
        }
        Ok(ParseK8sAudit { stages })
    }

    fn parse(&mut self, record: &[u8]) -> Outcome {
        let object = match json::tree(record) {
            Ok(object) => object,
            Err(outcome) => return outcome,
        };
        match self.record(&object) {
            Ok(outcome) => outcome,
            Err(reason) => Outcome::Error(reason),
        }
    }
}

impl ParseK8sAudit {
    fn record(&self, object: &Object) -> Result<Outcome, String> {
        match object.get("kind") {
            Some(Node::String(k)) if k == "EventList" => self.event_list(object),
            Some(Node::String(k)) if k == "Event" => Ok(match self.audit_event(object, &Map::new())? {
                Converted::Event(e, unmapped) => Outcome::Text(text(&e, unmapped)),
                Converted::Skipped(rule) => Outcome::Drop(rule),
            }),
            Some(Node::String(k)) => Err(format!("`kind` is `{k}`, expected `Event` or `EventList`")),
            Some(other) => Err(format!("field `kind`: expected a string, got {}", other.kind())),
            None if object.get("protoPayload").is_some() => Ok(Outcome::Text(gke_entry(object)?)),
            None if object.path("properties.log")?.is_some() => self.aks_envelope(object),
            None => Err("not a Kubernetes audit event: no `kind` (Event or EventList), \
                         no GKE `protoPayload` and no AKS `properties.log`"
                .into()),
        }
    }

    fn event_list(&self, object: &Object) -> Result<Outcome, String> {
        check_api_version(object)?;
        let items = match object.get("items") {
            Some(Node::Array(items)) => items,
            Some(other) => return Err(format!("field `items`: expected an array, got {}", other.kind())),
            None => return Err("EventList has no `items`".into()),
        };
        let mut kept = Vec::new();
        let mut skipped = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let Node::Object(item) = item else {
                return Err(format!("items[{i}]: expected an object, got {}", item.kind()));
            };
            match item.get("kind") {
                None | Some(Node::Null) => {}
                Some(Node::String(k)) if k == "Event" => {}
                Some(other) => return Err(format!("items[{i}]: `kind` is {other}, expected \"Event\"")),
            }
            match self.audit_event(item, &Map::new()).map_err(|reason| format!("items[{i}]: {reason}"))? {
                Converted::Event(e, unmapped) => kept.push(text(&e, unmapped)),
                Converted::Skipped(rule) => skipped.push(rule),
            }
        }
        if !kept.is_empty() {
            return Ok(Outcome::Texts(kept));
        }
        Ok(Outcome::Drop(match skipped.first() {
            None => "EventList has no items".into(),
            Some(first) if skipped.iter().all(|s| s == first) => first.clone(),
            Some(_) => "no EventList item is in a kept stage".into(),
        }))
    }

    /// AKS diagnostic logs: the audit event is `properties.log`, as JSON text or an object.
    fn aks_envelope(&self, object: &Object) -> Result<Outcome, String> {
        let inner: Object = match object.path("properties.log")? {
            Some(Node::String(text)) => match tree::decode(text) {
                Ok((Node::Object(m), _)) => m,
                Ok((other, _)) => {
                    return Err(format!("AKS `properties.log` holds {}, not an audit event", other.kind()));
                }
                Err(e) => return Err(format!("AKS `properties.log` is not valid JSON: {e}")),
            },
            Some(Node::Object(m)) => m.clone(),
            Some(other) => {
                return Err(format!(
                    "field `properties.log`: expected a JSON string or an object, got {}",
                    other.kind()
                ));
            }
            None => unreachable!("checked by the caller"),
        };
        match inner.get("kind") {
            Some(Node::String(k)) if k == "Event" => {}
            other => {
                let shown = other.map_or("nothing".to_string(), Node::to_string);
                return Err(format!("AKS `properties.log` has kind {shown}, expected \"Event\""));
            }
        }
        let mut envelope = Map::new();
        for (from, to) in [("category", "category"), ("resourceId", "resource_id"), ("operationName", "operation_name")]
        {
            if let Some(v) = object.string(from)? {
                envelope.insert(to.into(), v.into());
            }
        }
        for (from, to) in [("properties.pod", "pod"), ("properties.containerID", "container_id")] {
            if let Some(v) = object.string(from)? {
                envelope.insert(to.into(), v.into());
            }
        }
        Ok(match self.audit_event(&inner, &envelope)? {
            Converted::Event(mut e, unmapped) => {
                e.insert("cloud_provider".into(), "Azure".into());
                // /SUBSCRIPTIONS/<id>/RESOURCEGROUPS/...
                let subscription = object
                    .string("resourceId")?
                    .and_then(|id| id.split('/').skip_while(|s| !s.eq_ignore_ascii_case("subscriptions")).nth(1));
                if let Some(subscription) = subscription.filter(|s| !s.is_empty()) {
                    e.insert("cloud_account_uid".into(), subscription.to_lowercase().into());
                }
                Outcome::Text(text(&e, unmapped))
            }
            Converted::Skipped(rule) => Outcome::Drop(rule),
        })
    }

    /// One `audit.k8s.io` Event. `envelope` (AKS metadata) goes to `unmapped.aks`.
    fn audit_event<'a>(&self, object: &'a Object, envelope: &Map<String, Value>) -> Result<Converted<'a>, String> {
        check_api_version(object)?;
        let stage = object.string("stage")?;
        if let Some(stage) = stage
            && !self.stages.iter().any(|s| s == stage)
        {
            return Ok(Converted::Skipped(format!("stage {stage} not kept")));
        }
        let mut event = Event::new();
        let mut unmapped = Unmapped::new();

        // v1beta1 events also have a second-precision `timestamp`; the others are finer.
        let mut time = None;
        for field in ["requestReceivedTimestamp", "stageTimestamp", "timestamp"] {
            if let Some(text) = object.string(field)? {
                let micros = parse_rfc3339_micros(text)
                    .ok_or_else(|| format!("field `{field}`: `{}` is not an RFC 3339 time", truncate(text, 64)))?;
                time = Some(micros);
                break;
            }
        }
        let time = time.ok_or("no `requestReceivedTimestamp` or `stageTimestamp`")?;
        event.insert("time".into(), time.into());

        let verb = object.string("verb")?;
        let activity = verb.map_or(99, verb_activity);
        set_class(&mut event, API_ACTIVITY, activity);
        event.insert("metadata_product_name".into(), "kubernetes".into());
        if let Some(id) = object.string("auditID")? {
            event.insert("metadata_uid".into(), id.into());
            event.insert("api_request_uid".into(), id.into());
        }
        if let Some(verb) = verb {
            event.insert("api_operation".into(), verb.into());
        }

        // Who: with impersonation the effective user is the impersonated one,
        // and the authenticated user is the one who invoked it.
        let user = object.string("user.username")?;
        match object.string("impersonatedUser.username")? {
            Some(impersonated) => {
                event.insert("actor_user_name".into(), impersonated.into());
                if let Some(user) = user {
                    event.insert("actor_invoked_by".into(), user.into());
                }
                if let Some(uid) = object.string("impersonatedUser.uid")? {
                    event.insert("actor_user_uid".into(), uid.into());
                }
                if let Some(groups) = object.path("impersonatedUser.groups")? {
                    unmapped.push(("impersonated_user_groups".into(), groups.clone()));
                }
                if let Some(uid) = object.string("user.uid")? {
                    unmapped.push(("invoked_by_uid".into(), uid.into()));
                }
            }
            None => {
                if let Some(user) = user {
                    event.insert("actor_user_name".into(), user.into());
                }
                if let Some(uid) = object.string("user.uid")? {
                    event.insert("actor_user_uid".into(), uid.into());
                }
            }
        }
        if let Some(groups) = object.path("user.groups")? {
            unmapped.push(("user_groups".into(), groups.clone()));
        }
        if let Some(extra) = object.path("user.extra")?.filter(|v| v.as_object().is_none_or(|m| !m.is_empty())) {
            unmapped.push(("user_extra".into(), extra.clone()));
        }

        // Where from.
        match object.path("sourceIPs")? {
            Some(Node::Array(ips)) => {
                match ips.first() {
                    Some(Node::String(ip)) => {
                        event.insert("src_endpoint_ip".into(), ip.as_ref().into());
                    }
                    Some(other) => return Err(format!("field `sourceIPs.0`: expected a string, got {}", other.kind())),
                    None => {}
                }
                if ips.len() > 1 {
                    unmapped.push(("source_ips".into(), Node::Array(ips.clone())));
                }
            }
            Some(other) => return Err(format!("field `sourceIPs`: expected an array, got {}", other.kind())),
            None => {}
        }
        if let Some(agent) = object.string("userAgent")? {
            event.insert("http_user_agent".into(), agent.into());
        }
        if let Some(uri) = object.string("requestURI")? {
            event.insert("http_request_url_path".into(), uri.into());
        }

        // What on.
        if let Some(resource) = object_ref(object, &mut unmapped)? {
            event.insert("resources".into(), Value::Array(vec![Value::Object(resource)]));
        }

        // Outcome.
        let code = match object.path("responseStatus.code")? {
            None => None,
            Some(v) => {
                Some(v.as_i64().ok_or_else(|| format!("field `responseStatus.code`: expected an integer, got {v}"))?)
            }
        };
        let status = match code {
            Some(c) if c < 400 => 1,
            Some(_) => 2,
            None => 0,
        };
        event.insert("status_id".into(), status.into());
        event.insert("severity_id".into(), severity(status, code).into());
        if let Some(code) = code {
            event.insert("status_code".into(), code.to_string().into());
        }
        let detail = match object.string("responseStatus.message")? {
            Some(m) => Some(m),
            None => object.string("responseStatus.reason")?,
        };
        if let Some(detail) = detail {
            event.insert("status_detail".into(), detail.into());
        }
        if let Some(Node::Object(status)) = object.get("responseStatus") {
            let rest: Object = status
                .members()
                .iter()
                .filter(|(k, v)| !matches!(k.as_ref(), "code" | "message" | "reason" | "metadata") && *v != Node::Null)
                .cloned()
                .collect();
            if !rest.is_empty() {
                unmapped.push(("response_status".into(), Node::Object(rest)));
            }
        }

        // Annotations: the authorizer's decision and reason by name, the rest as they are.
        match object.get("annotations") {
            Some(Node::Object(annotations)) => annotations_into(annotations, &mut unmapped),
            None | Some(Node::Null) => {}
            Some(other) => return Err(format!("field `annotations`: expected an object, got {}", other.kind())),
        }

        for (from, to) in [("level", "level"), ("stage", "stage"), ("stageTimestamp", "stage_timestamp")] {
            if let Some(v) = object.string(from)? {
                unmapped.push((to.into(), v.into()));
            }
        }
        if let Some(request) = object.path("requestObject")? {
            unmapped.push(("request_object".into(), request.clone()));
        }
        if !envelope.is_empty() {
            unmapped.push(("aks".into(), Node::from(&Value::Object(envelope.clone()))));
        }
        Ok(Converted::Event(event, unmapped))
    }
}

/// `objectRef` → one resource `{type, name, namespace, uid}`; the type is
/// `resource/subresource` when there is a subresource (`pods/exec`).
fn object_ref<'a>(object: &'a Object, unmapped: &mut Unmapped<'a>) -> Result<Option<Map<String, Value>>, String> {
    let object_ref = match object.get("objectRef") {
        None | Some(Node::Null) => return Ok(None),
        Some(Node::Object(object_ref)) => object_ref,
        Some(other) => return Err(format!("field `objectRef`: expected an object, got {}", other.kind())),
    };
    let field = |name: &str| object_ref.string_under("objectRef", name);
    let mut resource = Map::new();
    let kind_name = match (field("resource")?, field("subresource")?) {
        (Some(r), Some(sub)) => Some(format!("{r}/{sub}")),
        (Some(r), None) => Some(r.to_string()),
        (None, Some(sub)) => Some(sub.to_string()),
        (None, None) => None,
    };
    if let Some(k) = kind_name {
        resource.insert("type".into(), k.into());
    }
    for name in ["name", "namespace", "uid"] {
        if let Some(v) = field(name)? {
            resource.insert(name.into(), v.into());
        }
    }
    for (from, to) in [("apiGroup", "object_api_group"), ("apiVersion", "object_api_version")] {
        if let Some(v) = field(from)? {
            unmapped.push((to.into(), v.into()));
        }
    }
    Ok((!resource.is_empty()).then_some(resource))
}

fn annotations_into<'a>(annotations: &'a Object, unmapped: &mut Unmapped<'a>) {
    let mut rest = Vec::new();
    for (key, value) in annotations.members() {
        match (key.as_ref(), value) {
            (DECISION, Node::String(v)) if !v.is_empty() => {
                unmapped.push(("authorization_decision".into(), v.as_ref().into()));
            }
            (REASON, Node::String(v)) if !v.is_empty() => {
                unmapped.push(("authorization_reason".into(), v.as_ref().into()));
            }
            (DECISION | REASON, _) => {}
            _ => rest.push((key.clone(), value.clone())),
        }
    }
    if !rest.is_empty() {
        unmapped.push(("annotations".into(), Node::Object(rest.into_iter().collect())));
    }
}

/// A GKE Cloud Audit Logs entry for the Kubernetes API (`serviceName` `k8s.io`),
/// as its event's text.
fn gke_entry(object: &Object) -> Result<String, String> {
    match object.string("protoPayload.serviceName")? {
        Some("k8s.io") => {}
        Some(other) => {
            return Err(format!(
                "GKE envelope: `protoPayload.serviceName` is `{other}`, not `k8s.io` (parse-gcp-audit reads other services)"
            ));
        }
        None => return Err("GKE envelope: `protoPayload.serviceName` is missing".into()),
    }
    let mut event = Event::new();
    let mut unmapped = Unmapped::new();
    let stamp = object.string("timestamp")?.ok_or("GKE envelope: no `timestamp`")?;
    let time = parse_rfc3339_micros(stamp)
        .ok_or_else(|| format!("field `timestamp`: `{}` is not an RFC 3339 time", truncate(stamp, 64)))?;
    event.insert("time".into(), time.into());
    // io.k8s.core.v1.pods.create, or io.k8s.get for non-resource URLs: the verb is last.
    let method = object.string("protoPayload.methodName")?;
    let verb = method.and_then(|m| m.rsplit('.').next());
    set_class(&mut event, API_ACTIVITY, verb.map_or(99, verb_activity));
    event.insert("metadata_product_name".into(), "kubernetes".into());
    event.insert("cloud_provider".into(), "GCP".into());
    if let Some(verb) = verb {
        event.insert("api_operation".into(), verb.into());
    }
    if let Some(method) = method {
        unmapped.push(("method_name".into(), method.into()));
    }
    let pairs = [
        ("insertId", "metadata_uid"),
        ("protoPayload.authenticationInfo.principalEmail", "actor_user_name"),
        ("protoPayload.requestMetadata.callerIp", "src_endpoint_ip"),
        ("protoPayload.requestMetadata.callerSuppliedUserAgent", "http_user_agent"),
        ("resource.labels.project_id", "cloud_account_uid"),
        ("resource.labels.location", "cloud_region"),
    ];
    for (from, to) in pairs {
        if let Some(v) = object.string(from)? {
            event.insert(to.into(), v.into());
        }
    }
    if let Some(name) = object.string("protoPayload.resourceName")? {
        event.insert("resources".into(), Value::Array(vec![Value::Object(gke_resource(name))]));
    }
    let code = match object.path("protoPayload.status.code")? {
        None => 0,
        Some(v) => {
            v.as_i64().ok_or_else(|| format!("field `protoPayload.status.code`: expected an integer, got {v}"))?
        }
    };
    let status = if code == 0 { 1 } else { 2 };
    event.insert("status_id".into(), status.into());
    // gRPC 7 PERMISSION_DENIED and 16 UNAUTHENTICATED are denials.
    event.insert("severity_id".into(), (if matches!(code, 7 | 16) { 3 } else { status }).into());
    if code != 0 {
        event.insert("status_code".into(), code.to_string().into());
    }
    if let Some(message) = object.string("protoPayload.status.message")? {
        event.insert("status_detail".into(), message.into());
    }
    if let Some(Node::Object(labels)) = object.get("labels") {
        annotations_into(labels, &mut unmapped);
    }
    if let Some(cluster) = object.string("resource.labels.cluster_name")? {
        unmapped.push(("cluster_name".into(), cluster.into()));
    }
    if let Some(log) = object.string("logName")? {
        unmapped.push(("log_name".into(), log.into()));
    }
    if let Some(info) = object.path("protoPayload.authorizationInfo")? {
        unmapped.push(("authorization_info".into(), info.clone()));
    }
    Ok(text(&event, unmapped))
}

/// `core/v1/namespaces/default/pods/web-1` → type pods, namespace default, name web-1.
fn gke_resource(name: &str) -> Map<String, Value> {
    let parts: Vec<&str> = name.split('/').collect();
    let mut resource = Map::new();
    let (namespace, kind, object) = match parts.iter().position(|p| *p == "namespaces") {
        Some(i) if i + 2 < parts.len() => (Some(parts[i + 1]), Some(parts[i + 2]), parts.get(i + 3).copied()),
        _ if parts.len() >= 3 => (None, Some(parts[2]), parts.get(3).copied()),
        _ => (None, None, Some(name)),
    };
    if let Some(kind) = kind {
        resource.insert("type".into(), kind.into());
    }
    if let Some(object) = object {
        resource.insert("name".into(), object.into());
    }
    if let Some(namespace) = namespace {
        resource.insert("namespace".into(), namespace.into());
    }
    resource
}

fn check_api_version(object: &Object) -> Result<(), String> {
    match object.string("apiVersion")? {
        Some(v) if !v.starts_with("audit.k8s.io/") => Err(format!("`apiVersion` is `{v}`, expected audit.k8s.io/v1")),
        _ => Ok(()),
    }
}

fn verb_activity(verb: &str) -> i64 {
    match verb {
        "create" => 1,
        "get" | "list" | "watch" => 2,
        "update" | "patch" => 3,
        "delete" | "deletecollection" => 4,
        _ => 99,
    }
}

/// 1 informational; 3 for a refused request (401/403); 2 for other failures.
fn severity(status: i64, code: Option<i64>) -> i64 {
    match (status, code) {
        (2, Some(401 | 403)) => 3,
        (2, _) => 2,
        _ => 1,
    }
}

export_parser!(ParseK8sAudit);

#[cfg(test)]
mod tests;
