//! A parser for newline-delimited JSON: each record is one JSON object.
//!
//! Config (all optional; any other key is rejected):
//! - `time_field`: dotted path to the event time, default `"time"`.
//! - `time_format`: `"rfc3339"` (default), `"unix"` (seconds, integer or
//!   fractional), `"unix_ms"`, `"unix_us"`, or a chrono strftime format such as
//!   `"%d/%b/%Y:%H:%M:%S %z"`. A strftime format without `%z` is read as UTC.
//! - `fields`: table `schema column → dotted source path`, copied with its JSON
//!   type. A number in a path indexes an array (`sourceIPs.0`).
//! - `value_maps`: table `schema column → table (source value → output value)`,
//!   applied to what `fields` put in that column. The source value is matched
//!   as text (`200`, `true` and `"200"` all match the key `"200"`); the output
//!   is any value, e.g. `value_maps.status_id = { success = 1, failure = 2 }`
//!   with `fields.status_id = "outcome"`. A value the map does not name leaves
//!   the column unset and is kept as `unmapped.<column>_raw`. Each column of
//!   `value_maps` must be one of `fields`.
//! - `constants`: table `schema column → value`, set on every event.
//! - `keep_original`: keep the whole original object under `unmapped`, default true.
//!
//! The event is built in this order, later steps winning: mapped `fields`,
//! `value_maps`, `constants`, `time`, `unmapped`.

use chrono::format::{Item, StrftimeItems};
use chrono::{DateTime, NaiveDate, NaiveDateTime};
use serde_json::{Map, Value};
use sluice_plugin_sdk::{Event, Outcome, Parser, export_parser, json, parse_rfc3339_micros, truncate};

#[derive(Debug, Clone, PartialEq)]
enum TimeFormat {
    Rfc3339,
    /// Epoch numbers; the value is how many microseconds one unit is.
    Epoch(i64),
    Strftime(String),
}

#[derive(Debug)]
pub struct ParseJson {
    time_field: String,
    time_format: TimeFormat,
    fields: Vec<(String, String)>,
    value_maps: Vec<(String, Map<String, Value>)>,
    constants: Map<String, Value>,
    keep_original: bool,
}

fn reject_reserved(column: &str, table: &str) -> Result<(), String> {
    if column == "time" || column == "unmapped" {
        return Err(format!("parse-json: `{table}` cannot set `{column}` (use time_field / keep_original)"));
    }
    Ok(())
}

impl Parser for ParseJson {
    fn init(config: Value) -> Result<Self, String> {
        let Value::Object(config) = config else {
            return Err("parse-json: config must be a table".into());
        };
        let mut plugin = ParseJson {
            time_field: "time".into(),
            time_format: TimeFormat::Rfc3339,
            fields: Vec::new(),
            value_maps: Vec::new(),
            constants: Map::new(),
            keep_original: true,
        };
        for (key, value) in config {
            match (key.as_str(), value) {
                ("time_field", Value::String(s)) if !s.is_empty() => plugin.time_field = s,
                ("time_format", Value::String(s)) => plugin.time_format = time_format(&s)?,
                ("fields", Value::Object(m)) => {
                    for (column, path) in m {
                        reject_reserved(&column, "fields")?;
                        let Value::String(path) = path else {
                            return Err(format!("parse-json: fields.{column} must be a dotted path string"));
                        };
                        plugin.fields.push((column, path));
                    }
                }
                ("value_maps", Value::Object(m)) => {
                    for (column, table) in m {
                        reject_reserved(&column, "value_maps")?;
                        let Value::Object(table) = table else {
                            return Err(format!(
                                "parse-json: value_maps.{column} must be a table of source value → output value"
                            ));
                        };
                        plugin.value_maps.push((column, table));
                    }
                }
                ("constants", Value::Object(m)) => {
                    for column in m.keys() {
                        reject_reserved(column, "constants")?;
                    }
                    plugin.constants = m;
                }
                ("keep_original", Value::Bool(b)) => plugin.keep_original = b,
                ("time_field" | "time_format" | "fields" | "value_maps" | "constants" | "keep_original", v) => {
                    return Err(format!("parse-json: `{key}` has the wrong type: {v}"));
                }
                _ => return Err(format!("parse-json: unknown config key `{key}`")),
            }
        }
        for (column, _) in &plugin.value_maps {
            if !plugin.fields.iter().any(|(c, _)| c == column) {
                return Err(format!("parse-json: value_maps.{column} has no fields.{column} whose value it would map"));
            }
        }
        Ok(plugin)
    }

    fn parse(&mut self, record: &[u8]) -> Outcome {
        let original = match json::object(record) {
            Ok(object) => object,
            Err(outcome) => return outcome,
        };
        let time = match self.event_time(&original) {
            Ok(t) => t,
            Err(reason) => return Outcome::Error(reason),
        };

        let mut event = Event::new();
        for (column, path) in &self.fields {
            match lookup(&original, path) {
                Some(Value::Null) | None => {}
                Some(value) => {
                    event.insert(column.clone(), value.clone());
                }
            }
        }
        let raw = self.map_values(&mut event);
        for (column, value) in &self.constants {
            event.insert(column.clone(), value.clone());
        }
        event.insert("time".into(), time.into());
        let mut unmapped = if self.keep_original { original } else { Map::new() };
        unmapped.extend(raw);
        if !unmapped.is_empty() {
            event.insert("unmapped".into(), Value::Object(unmapped));
        }
        Outcome::Keep(event)
    }
}

impl ParseJson {
    /// Applies `value_maps` to the event's columns; returns the `<column>_raw`
    /// entries of the values no map names.
    fn map_values(&self, event: &mut Event) -> Map<String, Value> {
        let mut raw = Map::new();
        for (column, table) in &self.value_maps {
            let Some(value) = event.get(column) else { continue };
            let key = match value {
                Value::String(s) => Some(s.clone()),
                Value::Number(n) => Some(n.to_string()),
                Value::Bool(b) => Some(b.to_string()),
                _ => None,
            };
            match key.and_then(|k| table.get(&k)) {
                Some(mapped) => {
                    event.insert(column.clone(), mapped.clone());
                }
                None => {
                    let original = event.remove(column).expect("just read");
                    raw.insert(format!("{column}_raw"), original);
                }
            }
        }
        raw
    }

    fn event_time(&self, original: &Map<String, Value>) -> Result<i64, String> {
        let field = &self.time_field;
        let Some(value) = lookup(original, field).filter(|v| !v.is_null()) else {
            return Err(format!("time field `{field}` is missing"));
        };
        time_micros(value, &self.time_format).ok_or_else(|| {
            let shown = truncate(&value.to_string(), 64);
            format!("time field `{field}` has a value that is not a {} time: {shown}", self.format_name())
        })
    }

    fn format_name(&self) -> &str {
        match &self.time_format {
            TimeFormat::Rfc3339 => "rfc3339",
            TimeFormat::Epoch(1_000_000) => "unix",
            TimeFormat::Epoch(1_000) => "unix_ms",
            TimeFormat::Epoch(_) => "unix_us",
            TimeFormat::Strftime(f) => f,
        }
    }
}

fn time_format(name: &str) -> Result<TimeFormat, String> {
    Ok(match name {
        "rfc3339" => TimeFormat::Rfc3339,
        "unix" => TimeFormat::Epoch(1_000_000),
        "unix_ms" => TimeFormat::Epoch(1_000),
        "unix_us" => TimeFormat::Epoch(1),
        f if f.contains('%') => {
            if StrftimeItems::new(f).any(|item| matches!(item, Item::Error)) {
                return Err(format!("parse-json: time_format `{f}` is not a valid strftime format"));
            }
            TimeFormat::Strftime(f.to_string())
        }
        other => {
            return Err(format!(
                "parse-json: unknown time_format `{other}` (rfc3339, unix, unix_ms, unix_us or a strftime format)"
            ));
        }
    })
}

/// Microseconds since the epoch for a time value, or `None` if it does not parse.
fn time_micros(value: &Value, format: &TimeFormat) -> Option<i64> {
    match (format, value) {
        (TimeFormat::Rfc3339, Value::String(s)) => parse_rfc3339_micros(s.trim()),
        (TimeFormat::Epoch(unit), Value::Number(n)) => {
            if let Some(i) = n.as_i64() {
                i.checked_mul(*unit)
            } else {
                float_micros(n.as_f64()?, *unit)
            }
        }
        // Epoch numbers quoted as strings are common (e.g. "1699999999.5").
        (TimeFormat::Epoch(unit), Value::String(s)) => {
            let s = s.trim();
            match s.parse::<i64>() {
                Ok(i) => i.checked_mul(*unit),
                Err(_) => float_micros(s.parse().ok()?, *unit),
            }
        }
        (TimeFormat::Strftime(f), Value::String(s)) => strftime_micros(s.trim(), f),
        _ => None,
    }
}

fn float_micros(value: f64, unit: i64) -> Option<i64> {
    let micros = (value * unit as f64).round();
    (micros.is_finite() && micros.abs() < 9.0e18).then_some(micros as i64)
}

fn strftime_micros(text: &str, format: &str) -> Option<i64> {
    if format.contains("%z") || format.contains("%:z") || format.contains("%#z") || format.contains("%::z") {
        return DateTime::parse_from_str(text, format).ok().map(|t| t.timestamp_micros());
    }
    if let Ok(t) = NaiveDateTime::parse_from_str(text, format) {
        return Some(t.and_utc().timestamp_micros());
    }
    // A date-only format means midnight UTC.
    let date = NaiveDate::parse_from_str(text, format).ok()?;
    Some(date.and_hms_opt(0, 0, 0)?.and_utc().timestamp_micros())
}

/// Follows a dotted path through objects and arrays. A key that itself has
/// dots (`authorization.k8s.io/decision`) is found too: at each object the
/// shortest run of segments that names a key is taken.
///
/// Not the SDK's `json::get`: these paths come from the user's config and may
/// index arrays and name keys with dots, and a path that does not fit the
/// record just leaves the column unset instead of quarantining the record.
fn lookup<'a>(object: &'a Map<String, Value>, path: &str) -> Option<&'a Value> {
    let segments: Vec<&str> = path.split('.').collect();
    let mut current = object.get(segments[0]);
    let mut i = 1;
    if current.is_none() {
        // The first key may itself contain dots.
        let (value, used) = dotted_key(object, &segments)?;
        current = Some(value);
        i = used;
    }
    while i < segments.len() {
        match current? {
            Value::Object(m) => {
                let (value, used) = dotted_key(m, &segments[i..])?;
                current = Some(value);
                i += used;
            }
            Value::Array(items) => {
                current = items.get(segments[i].parse::<usize>().ok()?);
                i += 1;
            }
            _ => return None,
        }
    }
    current
}

/// The value of the key made of the fewest leading `segments` joined by dots,
/// with how many segments it used.
fn dotted_key<'a>(object: &'a Map<String, Value>, segments: &[&str]) -> Option<(&'a Value, usize)> {
    let mut key = String::new();
    for (n, segment) in segments.iter().enumerate() {
        if n > 0 {
            key.push('.');
        }
        key.push_str(segment);
        if let Some(v) = object.get(&key) {
            return Some((v, n + 1));
        }
    }
    None
}

export_parser!(ParseJson);

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use sluice_plugin_sdk::fuzz;

    fn plugin(config: Value) -> ParseJson {
        ParseJson::init(config).expect("valid config")
    }

    fn keep(outcome: Outcome) -> Value {
        match outcome {
            Outcome::Keep(e) => Value::Object(e),
            other => panic!("expected Keep, got {other:?}"),
        }
    }

    fn error(outcome: Outcome) -> String {
        match outcome {
            Outcome::Error(r) => r,
            other => panic!("expected Error, got {other:?}"),
        }
    }

    #[test]
    fn default_config_keeps_original_and_parses_rfc3339() {
        let mut p = plugin(json!({}));
        let out = keep(p.parse(br#"{"time":"2026-11-01T00:00:01.5Z","user":"alice"}"#));
        assert_eq!(out["time"], 1_793_491_201_500_000i64);
        assert_eq!(out["unmapped"], json!({"time": "2026-11-01T00:00:01.5Z", "user": "alice"}));
        assert_eq!(out.as_object().unwrap().len(), 2);
    }

    #[test]
    fn cloudtrail_shape_maps_fields_and_constants() {
        let mut p = plugin(json!({
            "time_field": "eventTime",
            "fields": {
                "api_operation": "eventName",
                "api_service_name": "eventSource",
                "src_endpoint_ip": "sourceIPAddress",
                "actor_user_name": "userIdentity.userName",
                "actor_user_credential_uid": "userIdentity.accessKeyId",
                "cloud_region": "awsRegion",
                "status_code": "errorCode",
                "unmapped_first_resource": "resources.0.ARN"
            },
            "constants": {"class_uid": 6003, "category_uid": 6, "metadata_product_name": "CloudTrail"},
            "keep_original": false
        }));
        let line = br#"{"eventTime":"2020-10-20T16:40:35Z","eventName":"GetObject","eventSource":"s3.amazonaws.com",
            "sourceIPAddress":"198.51.100.7","awsRegion":"us-east-1",
            "userIdentity":{"userName":"alice","accessKeyId":"AKIAIOSFODNN7EXAMPLE"},
            "resources":[{"ARN":"arn:aws:s3:::bucket/key"}],"errorCode":null}"#;
        let out = keep(p.parse(line));
        assert_eq!(
            out,
            json!({
                "time": 1_603_212_035_000_000i64,
                "api_operation": "GetObject",
                "api_service_name": "s3.amazonaws.com",
                "src_endpoint_ip": "198.51.100.7",
                "actor_user_name": "alice",
                "actor_user_credential_uid": "AKIAIOSFODNN7EXAMPLE",
                "cloud_region": "us-east-1",
                "unmapped_first_resource": "arn:aws:s3:::bucket/key",
                "class_uid": 6003,
                "category_uid": 6,
                "metadata_product_name": "CloudTrail"
            })
        );
    }

    #[test]
    fn fields_keep_json_types_and_reach_into_arrays() {
        let mut p = plugin(json!({"fields": {"src_endpoint_port": "net.port", "src_endpoint_ip": "sourceIPs.1"}}));
        let out =
            keep(p.parse(br#"{"time":"1970-01-01T00:00:00Z","net":{"port":443},"sourceIPs":["10.0.0.1","10.0.0.2"]}"#));
        assert_eq!(out["src_endpoint_port"], 443);
        assert_eq!(out["src_endpoint_ip"], "10.0.0.2");
    }

    #[test]
    fn keys_with_dots_are_found() {
        let mut p = plugin(json!({"fields": {"status_detail": "annotations.authorization.k8s.io/decision"}}));
        let out = keep(
            p.parse(br#"{"time":"2026-01-01T00:00:00Z","annotations":{"authorization.k8s.io/decision":"allow"}}"#),
        );
        assert_eq!(out["status_detail"], "allow");
    }

    #[test]
    fn epoch_formats() {
        let cases = [
            ("unix", r#"{"ts":1700000000}"#, 1_700_000_000_000_000i64),
            ("unix", r#"{"ts":1700000000.25}"#, 1_700_000_000_250_000),
            ("unix", r#"{"ts":"1700000000.5"}"#, 1_700_000_000_500_000),
            ("unix_ms", r#"{"ts":1700000000123}"#, 1_700_000_000_123_000),
            ("unix_us", r#"{"ts":1700000000123456}"#, 1_700_000_000_123_456),
        ];
        for (format, line, expected) in cases {
            let mut p = plugin(json!({"time_field": "ts", "time_format": format}));
            assert_eq!(keep(p.parse(line.as_bytes()))["time"], expected, "{format} {line}");
        }
    }

    #[test]
    fn strftime_formats_with_and_without_zone() {
        let mut p = plugin(json!({"time_field": "t", "time_format": "%d/%b/%Y:%H:%M:%S %z"}));
        let out = keep(p.parse(br#"{"t":"01/Nov/2026:01:00:00 +0100"}"#));
        assert_eq!(out["time"], 1_793_491_200_000_000i64);

        let mut p = plugin(json!({"time_field": "t", "time_format": "%Y-%m-%d %H:%M:%S"}));
        let out = keep(p.parse(br#"{"t":"2026-11-01 00:00:00"}"#));
        assert_eq!(out["time"], 1_793_491_200_000_000i64);

        let mut p = plugin(json!({"time_field": "t", "time_format": "%Y-%m-%d"}));
        let out = keep(p.parse(br#"{"t":"2026-11-01"}"#));
        assert_eq!(out["time"], 1_793_491_200_000_000i64);
    }

    #[test]
    fn nested_time_field() {
        let mut p = plugin(json!({"time_field": "meta.when"}));
        let out = keep(p.parse(br#"{"meta":{"when":"1970-01-01T00:00:01Z"}}"#));
        assert_eq!(out["time"], 1_000_000);
    }

    #[test]
    fn bad_records_are_errors_or_drops() {
        let mut p = plugin(json!({}));
        assert_eq!(p.parse(b"   \r\n"), Outcome::Drop("blank line".into()));
        assert_eq!(error(p.parse(b"{\"a\":\"\xff\"}")), "record is not valid UTF-8 at byte 6");
        assert!(error(p.parse(b"{\"a\":")).starts_with("not valid JSON: "));
        assert_eq!(error(p.parse(b"[1,2]")), "expected a JSON object, got an array");
        assert_eq!(error(p.parse(b"\"x\"")), "expected a JSON object, got a string");
    }

    #[test]
    fn missing_or_bad_time_names_field_and_value() {
        let mut p = plugin(json!({"time_field": "eventTime"}));
        assert_eq!(error(p.parse(br#"{"time":"2026-01-01T00:00:00Z"}"#)), "time field `eventTime` is missing");
        assert_eq!(error(p.parse(br#"{"eventTime":null}"#)), "time field `eventTime` is missing");
        let reason = error(p.parse(br#"{"eventTime":"yesterday"}"#));
        assert_eq!(reason, "time field `eventTime` has a value that is not a rfc3339 time: \"yesterday\"");
        let long = format!(r#"{{"eventTime":"{}"}}"#, "x".repeat(200));
        let reason = error(p.parse(long.as_bytes()));
        assert!(reason.ends_with(&format!("\"{}…", "x".repeat(63))), "{reason}");
        let mut p = plugin(json!({"time_field": "ts", "time_format": "unix"}));
        assert!(error(p.parse(br#"{"ts":"soon"}"#)).contains("not a unix time: \"soon\""));
    }

    #[test]
    fn value_maps_translate_outcomes() {
        let mut p = plugin(json!({
            "time_field": "ts",
            "fields": {"status_id": "outcome", "severity_id": "level", "status_code": "http.code"},
            "value_maps": {
                "status_id": {"success": 1, "failure": 2},
                "severity_id": {"info": 1, "warn": 3, "true": 6},
                "status_code": {"200": "OK"}
            },
            "keep_original": false
        }));
        let out =
            keep(p.parse(br#"{"ts":"1970-01-01T00:00:00Z","outcome":"failure","level":"warn","http":{"code":200}}"#));
        assert_eq!(out, json!({"time": 0, "status_id": 2, "severity_id": 3, "status_code": "OK"}));
        // a value the map does not name: the column stays unset, the value is kept
        let out = keep(p.parse(br#"{"ts":"1970-01-01T00:00:00Z","outcome":"partial","level":true}"#));
        assert_eq!(out, json!({"time": 0, "severity_id": 6, "unmapped": {"status_id_raw": "partial"}}));
        // a missing source leaves the column unset and adds nothing
        let out = keep(p.parse(br#"{"ts":"1970-01-01T00:00:00Z"}"#));
        assert_eq!(out, json!({"time": 0}));
        // with keep_original, the raw value joins the original object
        let mut p = plugin(json!({"fields": {"status_id": "outcome"}, "value_maps": {"status_id": {"ok": 1}}}));
        let out = keep(p.parse(br#"{"time":"1970-01-01T00:00:00Z","outcome":["ok"]}"#));
        assert!(out.get("status_id").is_none());
        assert_eq!(out["unmapped"]["status_id_raw"], json!(["ok"]));
        assert_eq!(out["unmapped"]["outcome"], json!(["ok"]));
    }

    #[test]
    fn config_errors_name_the_key() {
        assert!(ParseJson::init(json!({"time_feild": "x"})).unwrap_err().contains("`time_feild`"));
        assert!(ParseJson::init(json!({"time_format": "iso"})).unwrap_err().contains("`iso`"));
        assert!(ParseJson::init(json!({"keep_original": "yes"})).unwrap_err().contains("`keep_original`"));
        assert!(ParseJson::init(json!({"fields": {"a": 1}})).unwrap_err().contains("fields.a"));
        assert!(ParseJson::init(json!({"constants": {"time": 1}})).unwrap_err().contains("`time`"));
        assert!(ParseJson::init(json!({"fields": {"unmapped": "x"}})).unwrap_err().contains("`unmapped`"));
        let no_field = ParseJson::init(json!({"value_maps": {"status_id": {"ok": 1}}})).unwrap_err();
        assert!(no_field.contains("value_maps.status_id has no fields.status_id"), "{no_field}");
        let not_table =
            ParseJson::init(json!({"fields": {"status_id": "o"}, "value_maps": {"status_id": [1]}})).unwrap_err();
        assert!(not_table.contains("value_maps.status_id must be a table"), "{not_table}");
        assert!(ParseJson::init(json!({"value_maps": []})).unwrap_err().contains("`value_maps` has the wrong type"));
        assert!(ParseJson::init(json!({"value_maps": {"time": {}}})).unwrap_err().contains("`time`"));
    }

    #[test]
    fn random_bytes_mutations_and_truncations_never_panic() {
        let mut p = plugin(json!({
            "time_field": "ts", "time_format": "%d/%b/%Y:%H:%M:%S %z",
            "fields": {"status_id": "outcome", "src_endpoint_ip": "ips.0"},
            "value_maps": {"status_id": {"ok": 1}}
        }));
        let alphabet = b"{}[]\":,.0123456789 -+/tsoutcomeipsNov\xff\xc3";
        let valid = br#"{"ts":"01/Nov/2026:01:00:00 +0100","outcome":"ok","ips":["10.0.0.1"]}"#;
        // this test's random records have always been shorter than 120 bytes (160 for the others)
        fuzz::never_panics_up_to(&mut p, valid, alphabet, 29, 120);
    }
}
