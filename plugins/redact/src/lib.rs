//! A transform that masks secrets in every string of an event.
//!
//! Two kinds of rule:
//! - `sensitive-key`: a field whose key names a secret (`password`,
//!   `Authorization`, `client_secret`, `X-Api-Key`, ...) has its whole value
//!   replaced, whatever its type (booleans and nulls are left: they hold no secret).
//! - value rules (see [`rules`]): patterns found inside any other string;
//!   only the secret part is replaced.
//!
//! The replacement is `[REDACTED:<rule-id>]`, and each masked string adds
//! `{"path": "a.b.0.c", "rule": "<rule-id>", "action": "mask"}` to the event's
//! `redactions` array (once per rule and path; never the value).
//!
//! Config (any other key is rejected):
//! - `extra_keys`: more key names to treat as sensitive (matched like the
//!   built-in exact names: case, `-` and `_` ignored).
//! - `disable`: rule ids to turn off.

mod rules;

use rules::{VALUE_RULE_IDS, ValueRule};
use serde_json::{Value, json};
use sluice_plugin_sdk::{Event, Outcome, Transform, export_transform};
use std::collections::HashSet;

const SENSITIVE_KEY: &str = "sensitive-key";

/// Keys whose values are never touched, at any depth: ids, times, and the
/// credential id column (an AWS access key id there is evidence).
const PRESERVED_KEYS: [&str; 16] = [
    "time",
    "observed_time",
    "seq",
    "class_uid",
    "category_uid",
    "activity_id",
    "type_uid",
    "severity_id",
    "status_id",
    "metadata_uid",
    "api_request_uid",
    "trace_id",
    "span_id",
    "correlation_uid",
    "redactions",
    "actor_user_credential_uid",
];

/// Normalized key names (lower case, no `-` / `_`) that are sensitive exactly.
const EXACT_KEYS: [&str; 4] = ["pwd", "auth", "session", "credential"];
/// Normalized key endings that make a key sensitive: `password`, `db_password`,
/// `x-api-key`, `refresh_token`, `sessionToken`, `set-cookie`,
/// `aws_secret_access_key`, ... (`accessKeyId` is not: it ends in `id`).
const SENSITIVE_SUFFIXES: [&str; 13] = [
    "password",
    "passwd",
    "passphrase",
    "secret",
    "token",
    "apikey",
    "accesskey",
    "privatekey",
    "credentials",
    "authorization",
    "cookie",
    "signature",
    "clientsecret",
];

pub struct Redact {
    key_rule: bool,
    extra_keys: HashSet<String>,
    value_rules: Vec<ValueRule>,
}

enum KeyKind {
    Preserved,
    Sensitive,
    Plain,
}

fn string_list(value: &Value, key: &str) -> Result<Vec<String>, String> {
    let items = value.as_array().ok_or_else(|| format!("redact: `{key}` must be a list of strings"))?;
    items
        .iter()
        .map(|v| v.as_str().map(str::to_string).ok_or_else(|| format!("redact: `{key}` must be a list of strings")))
        .collect()
}

fn normalize(key: &str) -> String {
    key.chars().filter(|c| *c != '-' && *c != '_').map(|c| c.to_ascii_lowercase()).collect()
}

impl Transform for Redact {
    fn init(config: Value) -> Result<Self, String> {
        let Value::Object(config) = config else {
            return Err("redact: config must be a table".into());
        };
        let mut extra_keys = HashSet::new();
        let mut disabled = HashSet::new();
        for (key, value) in &config {
            match key.as_str() {
                "extra_keys" => extra_keys.extend(string_list(value, key)?.iter().map(|k| normalize(k))),
                "disable" => {
                    for id in string_list(value, key)? {
                        if id != SENSITIVE_KEY && !VALUE_RULE_IDS.contains(&id.as_str()) {
                            return Err(format!("redact: `disable` names an unknown rule `{id}`"));
                        }
                        disabled.insert(id);
                    }
                }
                _ => return Err(format!("redact: unknown config key `{key}`")),
            }
        }
        let value_rules =
            VALUE_RULE_IDS.iter().filter(|id| !disabled.contains(**id)).map(|id| rules::build(id)).collect();
        Ok(Redact { key_rule: !disabled.contains(SENSITIVE_KEY), extra_keys, value_rules })
    }

    fn process(&mut self, mut event: Event) -> Outcome {
        let mut found = Vec::new();
        let mut path = String::new();
        for (key, value) in event.iter_mut() {
            self.visit_field(key, value, &mut path, &mut found);
        }
        if !found.is_empty() {
            match event.get_mut("redactions") {
                Some(Value::Array(existing)) => existing.extend(found),
                _ => {
                    event.insert("redactions".into(), Value::Array(found));
                }
            }
        }
        Outcome::Keep(event)
    }
}

impl Redact {
    fn key_kind(&self, key: &str) -> KeyKind {
        if PRESERVED_KEYS.contains(&key) {
            return KeyKind::Preserved;
        }
        let normalized = normalize(key);
        // `accessKeyId` / `aws_access_key_id`: an identifier, kept as evidence.
        if normalized.ends_with("accesskeyid") {
            return KeyKind::Preserved;
        }
        if !self.key_rule {
            return KeyKind::Plain;
        }
        let sensitive = EXACT_KEYS.contains(&normalized.as_str())
            || SENSITIVE_SUFFIXES.iter().any(|s| normalized.ends_with(s))
            || self.extra_keys.contains(&normalized);
        if sensitive { KeyKind::Sensitive } else { KeyKind::Plain }
    }

    fn visit_field(&self, key: &str, value: &mut Value, path: &mut String, found: &mut Vec<Value>) {
        let parent_len = path.len();
        if !path.is_empty() {
            path.push('.');
        }
        path.push_str(key);
        match self.key_kind(key) {
            KeyKind::Preserved => {}
            KeyKind::Sensitive => match value {
                Value::Null | Value::Bool(_) => {}
                Value::String(s) if s.starts_with("[REDACTED:") => {}
                _ => {
                    *value = Value::String(rules::mask_for(SENSITIVE_KEY));
                    found.push(redaction(path, SENSITIVE_KEY));
                }
            },
            KeyKind::Plain => self.walk(value, path, found, names_something(key)),
        }
        path.truncate(parent_len);
    }

    /// `naming`: the value is a name or an identifier (by its key), where the
    /// generic high-entropy detector would mistake generated names for secrets.
    fn walk(&self, value: &mut Value, path: &mut String, found: &mut Vec<Value>, naming: bool) {
        match value {
            Value::String(text) => {
                let mut current: Option<String> = None;
                for rule in &self.value_rules {
                    if naming && rule.id == rules::HIGH_ENTROPY {
                        continue;
                    }
                    if let Some(masked) = rule.apply(current.as_deref().unwrap_or(text)) {
                        current = Some(masked);
                        found.push(redaction(path, rule.id));
                    }
                }
                if let Some(masked) = current {
                    *text = masked;
                }
            }
            Value::Array(items) => {
                for (index, item) in items.iter_mut().enumerate() {
                    let parent_len = path.len();
                    if !path.is_empty() {
                        path.push('.');
                    }
                    path.push_str(&index.to_string());
                    self.walk(item, path, found, naming);
                    path.truncate(parent_len);
                }
            }
            Value::Object(map) => {
                for (key, value) in map.iter_mut() {
                    self.visit_field(key, value, path, found);
                }
            }
            Value::Null | Value::Bool(_) | Value::Number(_) => {}
        }
    }
}

/// Keys whose values name or identify something (`userName`, `roleArn`,
/// `principalId`, `actor_user_uid`, `resourceType`): generated names such as
/// `MyStack-BankingWAFRole-9S3E0UAE1MM0` look random but are evidence.
fn names_something(key: &str) -> bool {
    const SUFFIXES: [&str; 6] = ["name", "arn", "id", "uid", "type", "ids"];
    let normalized = normalize(key);
    SUFFIXES.iter().any(|s| normalized.ends_with(s)) && !normalized.ends_with("paid")
}

fn redaction(path: &str, rule: &str) -> Value {
    json!({"path": path, "rule": rule, "action": "mask"})
}

export_transform!(Redact);

#[cfg(test)]
mod tests;
