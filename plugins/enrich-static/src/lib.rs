//! A transform that adds static values to every event.
//!
//! Config (all optional; any other key is rejected):
//! - `rename`: table `from → to` of top-level fields. A missing `from` is
//!   ignored; an existing `to` is overwritten.
//! - `defaults`: table `field → value`, set only when the field is absent or null.
//! - `set`: table `field → value`, always set (overwrites).
//!
//! They apply in that order: rename, then defaults, then set, so `defaults`
//! and `set` name fields by their final names.

use serde_json::{Map, Value};
use sluice_plugin_sdk::{Event, Outcome, Transform, export_transform};

#[derive(Debug, Default)]
pub struct EnrichStatic {
    rename: Vec<(String, String)>,
    defaults: Map<String, Value>,
    set: Map<String, Value>,
}

fn table(config: &Map<String, Value>, key: &str) -> Result<Map<String, Value>, String> {
    match config.get(key) {
        None => Ok(Map::new()),
        Some(Value::Object(m)) => Ok(m.clone()),
        Some(_) => Err(format!("enrich-static: `{key}` must be a table")),
    }
}

impl Transform for EnrichStatic {
    fn init(config: Value) -> Result<Self, String> {
        let Value::Object(config) = config else {
            return Err("enrich-static: config must be a table".into());
        };
        for key in config.keys() {
            if !matches!(key.as_str(), "set" | "defaults" | "rename") {
                return Err(format!("enrich-static: unknown config key `{key}`"));
            }
        }
        let mut rename = Vec::new();
        for (from, to) in table(&config, "rename")? {
            match to {
                Value::String(to) => rename.push((from, to)),
                _ => {
                    return Err(format!("enrich-static: rename target for `{from}` must be a string"));
                }
            }
        }
        Ok(EnrichStatic { rename, defaults: table(&config, "defaults")?, set: table(&config, "set")? })
    }

    fn process(&mut self, mut event: Event) -> Outcome {
        for (from, to) in &self.rename {
            if let Some(value) = event.remove(from) {
                event.insert(to.clone(), value);
            }
        }
        for (field, value) in &self.defaults {
            let absent = matches!(event.get(field), None | Some(Value::Null));
            if absent {
                event.insert(field.clone(), value.clone());
            }
        }
        for (field, value) in &self.set {
            event.insert(field.clone(), value.clone());
        }
        Outcome::Keep(event)
    }
}

export_transform!(EnrichStatic);

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run(config: Value, event: Value) -> Value {
        let mut p = EnrichStatic::init(config).expect("valid config");
        match p.process(event.as_object().cloned().expect("object")) {
            Outcome::Keep(e) => Value::Object(e),
            other => panic!("expected Keep, got {other:?}"),
        }
    }

    #[test]
    fn set_overwrites_and_adds() {
        let out = run(
            json!({"set": {"cloud_provider": "aws", "tenant_uid": "t-1", "class_uid": 6003}}),
            json!({"cloud_provider": "gcp", "message": "hi"}),
        );
        assert_eq!(out, json!({"cloud_provider": "aws", "tenant_uid": "t-1", "class_uid": 6003, "message": "hi"}));
    }

    #[test]
    fn defaults_fill_only_absent_or_null() {
        let out = run(
            json!({"defaults": {"cloud_region": "eu-west-1", "tenant_uid": "t-default", "severity_id": 1}}),
            json!({"cloud_region": "us-east-1", "tenant_uid": null}),
        );
        assert_eq!(out["cloud_region"], "us-east-1");
        assert_eq!(out["tenant_uid"], "t-default");
        assert_eq!(out["severity_id"], 1);
    }

    #[test]
    fn rename_moves_top_level_fields_before_defaults_and_set() {
        let out = run(
            json!({
                "rename": {"user": "actor_user_name", "missing": "nowhere"},
                "defaults": {"actor_user_name": "nobody"},
                "set": {"metadata_product_name": "app"}
            }),
            json!({"user": "alice", "unmapped": {"user": "kept"}}),
        );
        assert_eq!(
            out,
            json!({"actor_user_name": "alice", "metadata_product_name": "app", "unmapped": {"user": "kept"}})
        );
    }

    #[test]
    fn empty_config_passes_events_through() {
        let e = json!({"time": 5, "message": "x"});
        assert_eq!(run(json!({}), e.clone()), e);
    }

    #[test]
    fn bad_config_is_rejected() {
        assert!(EnrichStatic::init(json!({"sett": {}})).unwrap_err().contains("`sett`"));
        assert!(EnrichStatic::init(json!({"set": 3})).unwrap_err().contains("`set`"));
        assert!(EnrichStatic::init(json!({"rename": {"a": 1}})).unwrap_err().contains("`a`"));
    }
}
