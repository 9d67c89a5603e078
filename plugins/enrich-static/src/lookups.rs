//! Lookup tables: the value of one field selects a row whose columns are
//! added to the event (`actor_user_name = alice` → `actor_user_department`,
//! `actor_user_manager`).
//!
//! Rows are given inline (`rows`), or read at `init` from a file the pipeline
//! grants the stage (`read_files = ["users.csv"]` on the stage; the plugin
//! sees it, read-only, as `/grants/users.csv` and nothing else of the host's
//! file system): CSV with a header row, or JSON (an object of rows by key, or
//! an array of row objects). `key_column` names the column that holds the key
//! (default: the first CSV column; required for a JSON array).

use crate::doc::{Doc, Node};
use serde::Deserialize;
use serde_json::{Map, Value};
use std::borrow::Cow;
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
    #[serde(default)]
    pub rows: Map<String, Value>,
    /// A granted file to read the rows from (`/grants/<name>.csv` or `.json`).
    pub file: Option<String>,
    /// The column of the file that holds the key.
    pub key_column: Option<String>,
}

/// Rows read from a granted file, in the inline `rows` shape.
fn rows_from_file(name: &str, path: &str, key_column: Option<&str>) -> Result<Map<String, Value>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        format!("enrich-static: `lookups.{name}.file`: cannot read {path}: {e} (is it in the stage's read_files?)")
    })?;
    let keyed = |rows: Vec<Map<String, Value>>, column: &str| -> Result<Map<String, Value>, String> {
        let mut out = Map::new();
        for mut row in rows {
            let key = match row.remove(column) {
                Some(Value::String(s)) => s,
                Some(Value::Number(n)) => n.to_string(),
                _ => return Err(format!("enrich-static: `lookups.{name}.file`: a row has no `{column}`")),
            };
            out.insert(key, Value::Object(row));
        }
        Ok(out)
    };
    if path.ends_with(".json") {
        return match serde_json::from_str(&text).map_err(|e| format!("enrich-static: {path}: {e}"))? {
            Value::Object(rows) => Ok(rows),
            Value::Array(rows) => {
                let column = key_column
                    .ok_or_else(|| format!("enrich-static: `lookups.{name}.key_column` is needed for a JSON array"))?;
                let rows = rows
                    .into_iter()
                    .map(|r| match r {
                        Value::Object(o) => Ok(o),
                        _ => Err(format!("enrich-static: {path}: every row must be an object")),
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                keyed(rows, column)
            }
            _ => Err(format!("enrich-static: {path}: expected an object or an array of rows")),
        };
    }
    let mut records = csv_records(&text).into_iter();
    let header = records.next().ok_or_else(|| format!("enrich-static: {path}: empty CSV file"))?;
    let column = key_column.unwrap_or_else(|| header.first().map_or("", String::as_str)).to_string();
    if !header.contains(&column) {
        return Err(format!("enrich-static: {path}: no column `{column}` in the header"));
    }
    let rows = records
        .filter(|r| !(r.len() == 1 && r[0].is_empty()))
        .map(|r| header.iter().cloned().zip(r.into_iter().map(Value::String)).collect())
        .collect();
    keyed(rows, &column)
}

/// RFC 4180 records: fields separated by commas, quoted fields may hold
/// commas, newlines and doubled quotes.
fn csv_records(text: &str) -> Vec<Vec<String>> {
    let mut records = Vec::new();
    let (mut record, mut field) = (Vec::new(), String::new());
    let mut chars = text.chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => field.push(c),
            (false, '"') if field.is_empty() => quoted = true,
            (false, ',') => record.push(std::mem::take(&mut field)),
            (false, '\r') => {}
            (false, '\n') => {
                record.push(std::mem::take(&mut field));
                records.push(std::mem::take(&mut record));
            }
            (false, c) => field.push(c),
        }
    }
    if !field.is_empty() || !record.is_empty() {
        record.push(field);
        records.push(record);
    }
    records
}

pub struct Lookup {
    key: String,
    prefix: String,
    case_insensitive: bool,
    overwrite: bool,
    rows: HashMap<String, Vec<(String, Node<'static>)>>,
}

impl Lookup {
    pub fn new(name: &str, config: LookupConfig) -> Result<Self, String> {
        let prefix = config.prefix.unwrap_or_else(|| match config.key.rfind('_') {
            Some(i) if !config.key.contains('.') => config.key[..=i].to_string(),
            _ => format!("{name}_"),
        });
        let mut inline = config.rows;
        if let Some(path) = &config.file {
            inline.extend(rows_from_file(name, path, config.key_column.as_deref())?);
        }
        let mut rows = HashMap::new();
        for (value, row) in inline {
            let Value::Object(columns) = row else {
                return Err(format!("enrich-static: `lookups.{name}.rows.{value}` must be a table of columns"));
            };
            let key = if config.case_insensitive { value.to_ascii_lowercase() } else { value };
            rows.insert(key, columns.iter().map(|(c, v)| (format!("{prefix}{c}"), Node::from(v))).collect());
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

    pub fn apply(&self, event: &mut Doc) {
        let Ok(Some(value)) = event.top().path(&self.key) else { return };
        let Some(value) = value.text() else { return };
        let value = if self.case_insensitive { Cow::Owned(value.to_ascii_lowercase()) } else { value };
        let Some(row) = self.rows.get(value.as_ref()) else { return };
        for (key, column) in row {
            if self.overwrite || event.absent(key) {
                event.insert(key, column.clone());
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
        crate::doc::edit(event, |doc| l.apply(doc))
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
    fn csv_records_follow_rfc_4180() {
        let r = csv_records("name,team\r\nalice,\"red, blue\"\n\"bob \"\"b\"\"\",\"two\nlines\"\n");
        assert_eq!(r, [vec!["name", "team"], vec!["alice", "red, blue"], vec!["bob \"b\"", "two\nlines"]]);
    }

    #[test]
    fn a_file_that_cannot_be_read_says_so() {
        let err =
            Lookup::new("users", serde_json::from_value(json!({"key": "k", "file": "/grants/none.csv"})).unwrap());
        assert!(err.err().unwrap().contains("cannot read /grants/none.csv"));
    }

    #[test]
    fn a_row_must_be_a_table() {
        let err = Lookup::new("users", serde_json::from_value(json!({"key": "k", "rows": {"alice": 3}})).unwrap());
        assert!(err.err().unwrap().contains("`lookups.users.rows.alice`"));
    }
}
