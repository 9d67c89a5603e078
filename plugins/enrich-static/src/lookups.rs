//! Lookup tables: the value of one field selects a row whose columns are
//! added to the event (`actor_user_name = alice` → `actor_user_department`,
//! `actor_user_manager`).
//!
//! Rows are given inline in the config today. Reading a table from a file is
//! host work (a plugin has no file system); the host will then hand the rows
//! to the plugin in this same `rows` shape, so configs written now keep working.

use serde::Deserialize;
use serde_json::{Map, Value};
use sluice_plugin_sdk::Event;
use std::collections::HashMap;

/// One table under `lookups.<name>` in the config.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LookupConfig {
    /// The field whose value selects a row: a column (`actor_user_name`) or a
    /// dotted path (`unmapped.user.login`).
    pub key: String,
    /// Prepended to each column name to make the key written. Default: the
    /// key up to its last `_` (`actor_user_name` → `actor_user_`), else
    /// `<table name>_`.
    pub prefix: Option<String>,
    /// Match values ignoring ASCII case (`Alice` finds the row `alice`).
    #[serde(default)]
    pub case_insensitive: bool,
    /// Replace fields the event already has (default: keep them).
    #[serde(default)]
    pub overwrite: bool,
    /// Rows by key value; each row is a table of column → value.
    pub rows: Map<String, Value>,
}

pub struct Lookup {
    key: String,
    prefix: String,
    case_insensitive: bool,
    overwrite: bool,
    rows: HashMap<String, Vec<(String, Value)>>,
}

impl Lookup {
    pub fn new(name: &str, config: LookupConfig) -> Result<Self, String> {
        let prefix = config.prefix.unwrap_or_else(|| match config.key.rfind('_') {
            Some(i) if !config.key.contains('.') => config.key[..=i].to_string(),
            _ => format!("{name}_"),
        });
        let mut rows = HashMap::new();
        for (value, row) in config.rows {
            let Value::Object(columns) = row else {
                return Err(format!("enrich-static: `lookups.{name}.rows.{value}` must be a table of columns"));
            };
            let key = if config.case_insensitive { value.to_ascii_lowercase() } else { value };
            rows.insert(key, columns.into_iter().map(|(c, v)| (format!("{prefix}{c}"), v)).collect());
        }
        Ok(Lookup {
            key: config.key,
            prefix,
            case_insensitive: config.case_insensitive,
            overwrite: config.overwrite,
            rows,
        })
    }

    /// The prefix of the keys this table writes.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    pub fn apply(&self, event: &mut Event) {
        let value = match sluice_plugin_sdk::json::get(event, &self.key) {
            Ok(Some(Value::String(s))) => s.clone(),
            Ok(Some(Value::Number(n))) => n.to_string(),
            _ => return,
        };
        let value = if self.case_insensitive { value.to_ascii_lowercase() } else { value };
        let Some(row) = self.rows.get(&value) else { return };
        for (key, column) in row {
            if self.overwrite || matches!(event.get(key), None | Some(Value::Null)) {
                event.insert(key.clone(), column.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn lookup(config: Value) -> Lookup {
        Lookup::new("users", serde_json::from_value(config).unwrap()).unwrap()
    }

    fn apply(l: &Lookup, event: Value) -> Value {
        let mut e = event.as_object().cloned().unwrap();
        l.apply(&mut e);
        Value::Object(e)
    }

    #[test]
    fn a_row_adds_its_columns_with_the_key_prefix() {
        let users = lookup(json!({"key": "actor_user_name", "rows": {
            "alice": {"department": "payroll", "manager": "bob", "clearance": 3}
        }}));
        assert_eq!(users.prefix(), "actor_user_");
        let out = apply(&users, json!({"actor_user_name": "alice", "actor_user_manager": "kept"}));
        assert_eq!(
            out,
            json!({"actor_user_name": "alice", "actor_user_department": "payroll", "actor_user_manager": "kept",
                   "actor_user_clearance": 3})
        );
        assert_eq!(apply(&users, json!({"actor_user_name": "mallory"})), json!({"actor_user_name": "mallory"}));
        assert_eq!(apply(&users, json!({"message": "x"})), json!({"message": "x"}));
    }

    #[test]
    fn options_case_prefix_overwrite_and_paths() {
        let users = lookup(json!({"key": "unmapped.user.login", "prefix": "owner_", "case_insensitive": true,
                                  "overwrite": true, "rows": {"Alice": {"team": "red"}}}));
        let out = apply(&users, json!({"unmapped": {"user": {"login": "ALICE"}}, "owner_team": "old"}));
        assert_eq!(out["owner_team"], "red");
        let default_prefix = lookup(json!({"key": "unmapped.user.login", "rows": {}}));
        assert_eq!(default_prefix.prefix(), "users_");
    }

    #[test]
    fn a_row_must_be_a_table() {
        let err = Lookup::new("users", serde_json::from_value(json!({"key": "k", "rows": {"alice": 3}})).unwrap());
        assert!(err.err().unwrap().contains("`lookups.users.rows.alice`"));
    }
}
