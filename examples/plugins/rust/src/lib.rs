//! tag-privileged, in Rust: the conformance sample (`../conformance/`).
//!
//! For each event: an `api_operation` that is not a string is an error; one
//! in `drop` is dropped as noise; one in `privileged` gets `severity_id` from
//! the config and `privileged = true`; the field named by `redact`, when set,
//! becomes "[REDACTED]".

use serde_json::Value;
use sluice_plugin_sdk::{Event, Outcome, Transform, export_transform};

struct TagPrivileged {
    privileged: Vec<String>,
    severity_id: i64,
    redact: Option<String>,
    drop: Vec<String>,
}

fn strings(config: &Value, key: &str) -> Result<Vec<String>, String> {
    match config.get(key) {
        None => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|i| i.as_str().map(String::from).ok_or(format!("`{key}` must be a list of strings")))
            .collect(),
        Some(_) => Err(format!("`{key}` must be a list of strings")),
    }
}

impl Transform for TagPrivileged {
    fn init(config: Value) -> Result<Self, String> {
        let severity_id = match config.get("severity_id") {
            None => 4,
            Some(v) => v.as_i64().ok_or("`severity_id` must be an integer")?,
        };
        let redact = match config.get("redact") {
            None => None,
            Some(v) => Some(v.as_str().ok_or("`redact` must be a string")?.to_string()),
        };
        Ok(TagPrivileged { privileged: strings(&config, "privileged")?, severity_id, redact, drop: strings(&config, "drop")? })
    }

    fn process(&mut self, mut event: Event) -> Outcome {
        let operation = match event.get("api_operation") {
            None => None,
            Some(Value::String(op)) => Some(op.clone()),
            Some(_) => return Outcome::error("api_operation is not a string"),
        };
        if let Some(op) = &operation {
            if self.drop.contains(op) {
                return Outcome::Drop(format!("noise: {op}"));
            }
            if self.privileged.contains(op) {
                event.insert("severity_id".into(), self.severity_id.into());
                event.insert("privileged".into(), true.into());
            }
        }
        if let Some(field) = &self.redact
            && event.get(field).is_some_and(|v| !v.is_null())
        {
            event.insert(field.clone(), "[REDACTED]".into());
        }
        Outcome::Keep(event)
    }
}

export_transform!(TagPrivileged);
