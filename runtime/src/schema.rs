//! The typed event schema: which columns a stream's Parquet files have, and how
//! a plugin's JSON event becomes one row of them.
//!
//! Known columns are typed; every other key of the event is kept, as JSON, in
//! `unmapped`. An event whose typed column has the wrong type is refused with a
//! reason (it goes to quarantine; it never fails a batch or a file).

use crate::integrity::merkle::Hash;
use arrow_array::builder::{
    ArrayBuilder, Int32Builder, Int64Builder, ListBuilder, StringBuilder, StructBuilder, TimestampMicrosecondBuilder,
};
use arrow_array::{ArrayRef, Int64Array, RecordBatch};
use arrow_schema::{DataType, Field, Fields, Schema, SchemaRef, TimeUnit};
use serde::de::{Deserialize, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value;
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::fmt;
use std::sync::{Arc, LazyLock};

/// The type of one column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Microseconds since the epoch, UTC. Integer or RFC 3339 text on the wire.
    Timestamp,
    Int32,
    Int64,
    Utf8,
    /// Kept as JSON text: the catch-all `unmapped` column.
    Json,
    /// A list of structs of string fields (`(name, required)`), e.g. the
    /// `redactions` (what the redactor changed, never the value) or `resources`.
    StructList(&'static [(&'static str, bool)]),
}

const REDACTION_FIELDS: &[(&str, bool)] = &[("path", true), ("rule", true), ("action", true)];
const RESOURCE_FIELDS: &[(&str, bool)] = &[("type", false), ("uid", false), ("name", false), ("namespace", false)];

/// The columns every stream has, in file order. `seq` is added by the sink.
pub const COLUMNS: &[(&str, Kind)] = &[
    ("time", Kind::Timestamp),
    ("observed_time", Kind::Timestamp),
    ("class_uid", Kind::Int32),
    ("category_uid", Kind::Int32),
    ("activity_id", Kind::Int32),
    ("type_uid", Kind::Int64),
    ("severity_id", Kind::Int32),
    ("status_id", Kind::Int32),
    ("status_code", Kind::Utf8),
    ("status_detail", Kind::Utf8),
    ("message", Kind::Utf8),
    ("actor_user_name", Kind::Utf8),
    ("actor_user_uid", Kind::Utf8),
    ("actor_user_credential_uid", Kind::Utf8),
    ("actor_user_type", Kind::Utf8),
    ("actor_session_uid", Kind::Utf8),
    ("actor_invoked_by", Kind::Utf8),
    ("src_endpoint_ip", Kind::Utf8),
    ("src_endpoint_port", Kind::Int32),
    ("device_hostname", Kind::Utf8),
    ("process_name", Kind::Utf8),
    ("process_pid", Kind::Int32),
    ("process_cmd_line", Kind::Utf8),
    ("file_path", Kind::Utf8),
    ("http_user_agent", Kind::Utf8),
    ("http_request_method", Kind::Utf8),
    ("http_request_url_path", Kind::Utf8),
    ("http_response_code", Kind::Int32),
    ("traffic_bytes_out", Kind::Int64),
    ("api_service_name", Kind::Utf8),
    ("api_operation", Kind::Utf8),
    ("api_request_uid", Kind::Utf8),
    ("resources", Kind::StructList(RESOURCE_FIELDS)),
    ("cloud_provider", Kind::Utf8),
    ("cloud_region", Kind::Utf8),
    ("cloud_account_uid", Kind::Utf8),
    ("tenant_uid", Kind::Utf8),
    ("metadata_uid", Kind::Utf8),
    ("metadata_product_name", Kind::Utf8),
    ("metadata_log_name", Kind::Utf8),
    ("correlation_uid", Kind::Utf8),
    ("trace_id", Kind::Utf8),
    ("span_id", Kind::Utf8),
    ("unmapped", Kind::Json),
    ("raw_data", Kind::Utf8),
    ("redactions", Kind::StructList(REDACTION_FIELDS)),
];

const TIME: usize = 0;
const OBSERVED_TIME: usize = 1;
static METADATA_LOG_NAME: LazyLock<usize> = LazyLock::new(|| column_index("metadata_log_name").expect("a column"));
static UNMAPPED: LazyLock<usize> = LazyLock::new(|| column_index("unmapped").expect("a column"));

fn struct_fields(fields: &[(&str, bool)]) -> Fields {
    fields.iter().map(|&(name, required)| Field::new(name, DataType::Utf8, !required)).collect()
}

fn list_item(fields: &[(&str, bool)]) -> Arc<Field> {
    Arc::new(Field::new("item", DataType::Struct(struct_fields(fields)), true))
}

fn data_type(kind: Kind) -> DataType {
    match kind {
        Kind::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        Kind::Int32 => DataType::Int32,
        Kind::Int64 => DataType::Int64,
        Kind::Utf8 | Kind::Json => DataType::Utf8,
        Kind::StructList(fields) => DataType::List(list_item(fields)),
    }
}

/// The types a stream may declare for its extra columns.
pub fn extra_kind(name: &str) -> Option<Kind> {
    Some(match name {
        "string" => Kind::Utf8,
        "int32" => Kind::Int32,
        "int64" => Kind::Int64,
        "timestamp" => Kind::Timestamp,
        _ => return None,
    })
}

/// One stream's columns: the core [`COLUMNS`], then the stream's own typed
/// extra columns (declared in `[streams.<name>] columns`), then `seq` and
/// `event_hash`. Schema changes are additive: extras only add columns.
#[derive(Debug)]
pub struct StreamSchema {
    extras: Vec<(String, Kind)>,
    /// The columns an event hash covers (everything but `event_hash`).
    hashed: SchemaRef,
    /// The schema of the stream's files.
    pub file: SchemaRef,
}

impl StreamSchema {
    pub fn new(extras: Vec<(String, Kind)>) -> Self {
        let mut fields: Vec<Field> =
            COLUMNS.iter().map(|&(name, kind)| Field::new(name, data_type(kind), name != "time")).collect();
        fields.extend(extras.iter().map(|(name, kind)| Field::new(name, data_type(*kind), true)));
        fields.push(Field::new("seq", DataType::Int64, false));
        let hashed = Arc::new(Schema::new(fields.clone()));
        fields.push(Field::new(crate::integrity::canonical::EVENT_HASH, DataType::Utf8, false));
        StreamSchema { extras, hashed, file: Arc::new(Schema::new(fields)) }
    }

    fn kind(&self, i: usize) -> (&str, Kind) {
        match COLUMNS.get(i) {
            Some(&(name, kind)) => (name, kind),
            None => {
                let (name, kind) = &self.extras[i - COLUMNS.len()];
                (name, *kind)
            }
        }
    }

    fn index(&self, name: &str) -> Option<usize> {
        column_index(name).or_else(|| self.extras.iter().position(|(n, _)| n == name).map(|i| COLUMNS.len() + i))
    }

    fn len(&self) -> usize {
        COLUMNS.len() + self.extras.len()
    }

    /// Whether two streams have the same columns (a row checked for one fits the other).
    pub fn same_columns(&self, other: &StreamSchema) -> bool {
        self.extras == other.extras
    }
}

/// The schema of a stream without extra columns.
pub static CORE: LazyLock<Arc<StreamSchema>> = LazyLock::new(|| Arc::new(StreamSchema::new(Vec::new())));

/// The file schema of a stream without extra columns.
pub static FILE_SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| CORE.file.clone());

/// SHA-256 of a file schema's column names and types, in order (recorded in
/// the integrity log; `verify` recomputes it from each file).
pub fn schema_hash(schema: &Schema) -> String {
    use sha2::{Digest, Sha256};
    let description: String = schema.fields().iter().map(|f| format!("{}:{}\n", f.name(), f.data_type())).collect();
    hex::encode(Sha256::digest(description.as_bytes()))
}

/// A core column's index and type.
pub fn column(name: &str) -> Option<(usize, Kind)> {
    column_index(name).map(|i| (i, COLUMNS[i].1))
}

/// A cell as routing conditions read it.
pub enum CellRef<'a> {
    Null,
    Int(i64),
    Text(&'a str),
}

/// A core column's index: looked up for every key of every event, so hashed,
/// not a scan of the columns.
pub fn column_index(name: &str) -> Option<usize> {
    // foldhash: SipHash was a third of the schema check's own time
    static INDEX: LazyLock<std::collections::HashMap<&str, usize, foldhash::fast::FixedState>> =
        LazyLock::new(|| COLUMNS.iter().enumerate().map(|(i, (n, _))| (*n, i)).collect());
    INDEX.get(name).copied()
}

/// Whether `key` can partition a stream: the derived `event_day`/`hour`, or a
/// string or integer column.
pub fn is_partition_key(key: &str) -> bool {
    matches!(key, "event_day" | "hour")
        || column_index(key)
            .is_some_and(|i| matches!(COLUMNS[i].1, Kind::Int32 | Kind::Int64 | Kind::Utf8) && key != "message")
}

/// One typed value of a row, checked but not yet appended.
#[derive(Debug, Clone)]
enum Cell {
    Null,
    Int(i64),
    Text(String),
    StructList(Vec<Vec<Option<String>>>),
}

/// A checked event: its cells, in column order.
#[derive(Debug, Clone)]
pub struct Row {
    cells: Vec<Cell>,
}

impl Row {
    /// The event time, microseconds since the epoch, UTC.
    pub fn time(&self) -> i64 {
        match self.cells[TIME] {
            Cell::Int(t) => t,
            _ => unreachable!("time is checked to be present"),
        }
    }

    /// The value of a partition key for its `key=value` path segment (the
    /// object store percent-encodes what a path segment cannot hold).
    /// A scalar cell (text, integer or timestamp column).
    pub fn cell(&self, i: usize) -> CellRef<'_> {
        match &self.cells[i] {
            Cell::Int(v) => CellRef::Int(*v),
            Cell::Text(s) => CellRef::Text(s),
            Cell::Null | Cell::StructList(_) => CellRef::Null,
        }
    }

    /// Sets `tenant_uid` (an http source's tenant, from its token: whatever
    /// the event said is replaced).
    pub fn set_tenant(&mut self, tenant: &str) {
        static TENANT_UID: LazyLock<usize> = LazyLock::new(|| column_index("tenant_uid").expect("a column"));
        self.cells[*TENANT_UID] = Cell::Text(tenant.to_string());
    }

    /// Field `field` of every item of the list column `column`.
    pub fn item_values(&self, column: usize, field: usize) -> Vec<String> {
        match &self.cells[column] {
            Cell::StructList(items) => items.iter().filter_map(|item| item.get(field)?.clone()).collect(),
            _ => Vec::new(),
        }
    }

    /// The member `key` of the `unmapped` object, `None` when it has none.
    /// Only that member is decoded: routing conditions read one or two keys
    /// of an object of ten or more.
    pub fn unmapped_member(&self, key: &str) -> Option<Value> {
        let Cell::Text(text) = &self.cells[*UNMAPPED] else {
            return None;
        };
        Member(key).deserialize(&mut serde_json::Deserializer::from_str(text)).ok().flatten()
    }

    pub fn partition_value(&self, key: &str) -> String {
        let t = self.time();
        match key {
            "event_day" | "hour" => {
                let secs = t.div_euclid(1_000_000);
                let days = secs.div_euclid(86_400);
                if key == "hour" {
                    format!("{:02}", secs.rem_euclid(86_400) / 3600)
                } else {
                    let (y, m, d) = civil_from_days(days);
                    format!("{y:04}{m:02}{d:02}")
                }
            }
            _ => match column_index(key).map(|i| &self.cells[i]) {
                Some(Cell::Int(v)) => v.to_string(),
                Some(Cell::Text(s)) if !s.is_empty() => s.clone(),
                _ => "__HIVE_DEFAULT_PARTITION__".to_string(),
            },
        }
    }
}

/// (year, month, day) for days since 1970-01-01.
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn kind_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// An event's top-level fields, decoded in one pass with the keys borrowed
/// from the text: the values of the schema's columns by index, the
/// `unmapped` column's members, and every other key's value as its text. A
/// key given twice keeps its last value, as a map would.
/// (Decoding into a `Map` first cost a key allocation and a tree insert per
/// field, and the schema check was the largest of the host's costs.)
struct TopLevel<'s>(&'s StreamSchema);

struct TopFields<'de> {
    known: Vec<Option<Value>>,
    /// What the event gave as `unmapped` (null when it gave nothing).
    nested: Nested<'de>,
    /// The keys that are no column, in text order, with their values' text.
    extra: Members<'de>,
    /// The members of an `unmapped` object that a later `unmapped` replaced:
    /// checked as the event's decoding checked them, then dropped.
    replaced: Members<'de>,
}

/// An object's members: each key with its value's text.
type Members<'de> = Vec<(Cow<'de, str>, &'de RawValue)>;

/// The `unmapped` column as the event gave it.
enum Nested<'de> {
    Null,
    Object(Members<'de>),
    /// Something other than an object: its JSON kind, for the error.
    Other(&'static str),
}

impl<'de> DeserializeSeed<'de> for TopLevel<'_> {
    type Value = TopFields<'de>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<TopFields<'de>, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for TopLevel<'_> {
    type Value = TopFields<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<TopFields<'de>, A::Error> {
        let mut fields = TopFields {
            known: vec![None; self.0.len()],
            nested: Nested::Null,
            extra: Vec::new(),
            replaced: Vec::new(),
        };
        while let Some(Key(key)) = map.next_key()? {
            match self.0.index(&key) {
                Some(i) if i == *UNMAPPED => {
                    if let Nested::Object(members) = std::mem::replace(&mut fields.nested, map.next_value()?) {
                        fields.replaced.extend(members);
                    }
                }
                Some(i) => fields.known[i] = Some(map.next_value()?),
                None => fields.extra.push((key, map.next_value()?)),
            }
        }
        Ok(fields)
    }
}

impl<'de> Deserialize<'de> for Nested<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct NestedVisitor;
        impl<'de> Visitor<'de> for NestedVisitor {
            type Value = Nested<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_unit<E>(self) -> Result<Nested<'de>, E> {
                Ok(Nested::Null)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Nested<'de>, A::Error> {
                let mut members = Vec::new();
                while let Some(Key(key)) = map.next_key()? {
                    members.push((key, map.next_value()?));
                }
                Ok(Nested::Object(members))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Nested<'de>, A::Error> {
                // decoded, not skipped: skipping does not refuse a lone surrogate
                while seq.next_element::<Value>()?.is_some() {}
                Ok(Nested::Other("array"))
            }
            fn visit_bool<E>(self, _: bool) -> Result<Nested<'de>, E> {
                Ok(Nested::Other("boolean"))
            }
            fn visit_i64<E>(self, _: i64) -> Result<Nested<'de>, E> {
                Ok(Nested::Other("number"))
            }
            fn visit_u64<E>(self, _: u64) -> Result<Nested<'de>, E> {
                Ok(Nested::Other("number"))
            }
            fn visit_f64<E>(self, _: f64) -> Result<Nested<'de>, E> {
                Ok(Nested::Other("number"))
            }
            fn visit_str<E>(self, _: &str) -> Result<Nested<'de>, E> {
                Ok(Nested::Other("string"))
            }
        }
        deserializer.deserialize_any(NestedVisitor)
    }
}

/// The `unmapped` column's text: the event's keys that are no column, then
/// the members of the `unmapped` object it gave (plugins may nest what they
/// keep there; a top-level key wins over a nested one of the same name), as
/// one object with its keys in order, `None` when there are none.
///
/// The text is what encoding a `serde_json::Map` of the values would write,
/// but most values are copied as they were written: each value's text is
/// checked to be in that form ([`is_compact`]), and only one that is not is
/// decoded and encoded again. (Decoding `unmapped` into a tree and encoding
/// it again was about a third of the schema check.)
///
/// Capturing a value's text checks less than decoding it (not lone
/// surrogates, the range of numbers or the depth of nesting), so every value
/// that is not copied is decoded, including the ones a later key replaced:
/// the event is refused exactly when decoding it whole would have refused it.
fn unmapped_text(extra: Members, nested: Members, replaced: Members) -> Result<Option<String>, String> {
    for (key, value) in &replaced {
        if !is_compact(value.get().as_bytes()) {
            decode_member(key, value.get(), NESTED_DEPTH)?;
        }
    }
    // nested first, then top level, each in text order: after a stable sort by
    // key, the last member of each run of one key is the one a map would keep
    let mut members: Vec<_> = nested.into_iter().map(|(k, v)| (k, v, NESTED_DEPTH)).collect();
    members.extend(extra.into_iter().map(|(k, v)| (k, v, TOP_DEPTH)));
    if members.is_empty() {
        return Ok(None);
    }
    members.sort_by(|a, b| a.0.cmp(&b.0));
    let size: usize = members.iter().map(|(k, v, _)| k.len() + v.get().len() + 4).sum();
    let mut out = Vec::with_capacity(size + 2);
    out.push(b'{');
    for (i, (key, value, depth)) in members.iter().enumerate() {
        let text = value.get();
        let compact = is_compact(text.as_bytes());
        if members.get(i + 1).is_some_and(|(next, ..)| next == key) {
            if !compact {
                decode_member(key, text, *depth)?;
            }
            continue;
        }
        if out.len() > 1 {
            out.push(b',');
        }
        serde_json::to_writer(&mut out, key.as_ref()).expect("writing to memory cannot fail");
        out.push(b':');
        if compact {
            out.extend_from_slice(text.as_bytes());
        } else {
            let value = decode_member(key, text, *depth)?;
            serde_json::to_writer(&mut out, &value).expect("writing to memory cannot fail");
        }
    }
    out.push(b'}');
    Ok(Some(String::from_utf8(out).expect("JSON text is UTF-8")))
}

/// How deep in the event a top-level key's value is, and a member of the
/// `unmapped` object: inside one object, and inside two.
const TOP_DEPTH: usize = 1;
const NESTED_DEPTH: usize = 2;

/// Decodes the value of `key` as decoding the whole event would have, where
/// it is `depth` objects deep: it is decoded inside as many arrays, so that
/// serde_json's limit on nesting counts those levels as it did.
fn decode_member(key: &str, text: &str, depth: usize) -> Result<Value, String> {
    let wrapped = format!("{}{text}{}", "[".repeat(depth), "]".repeat(depth));
    let mut value: Value = serde_json::from_str(&wrapped).map_err(|e| {
        // the position would be within the value, not the event
        let reason = e.to_string();
        format!("field `{key}`: {}", reason.rsplit_once(" at line ").map_or(reason.as_str(), |(r, _)| r))
    })?;
    for _ in 0..depth {
        value = value.as_array_mut().and_then(Vec::pop).expect("the value was wrapped in arrays");
    }
    Ok(value)
}

/// Whether `text`, one valid JSON value, is exactly what serde_json writes
/// for it once decoded into a `Value`: no white space, object keys without
/// escapes in strictly ascending order (a `Map`'s order, no key twice),
/// integers that decode as integers, and only the escapes serde_json writes.
/// `false` is always safe: the value is then decoded and encoded again.
fn is_compact(text: &[u8]) -> bool {
    let mut at = 0;
    compact_value(text, &mut at, 0) && at == text.len()
}

fn compact_value(text: &[u8], at: &mut usize, depth: usize) -> bool {
    if depth > 100 {
        return false;
    }
    match text.get(*at) {
        Some(&open @ (b'{' | b'[')) => {
            let (object, close) = if open == b'{' { (true, b'}') } else { (false, b']') };
            *at += 1;
            if text.get(*at) == Some(&close) {
                *at += 1;
                return true;
            }
            let mut previous: Option<&[u8]> = None;
            loop {
                if object {
                    let start = *at + 1;
                    if !compact_string(text, at) {
                        return false;
                    }
                    let key = &text[start..*at - 1];
                    if key.contains(&b'\\') || previous.is_some_and(|p| p >= key) || text.get(*at) != Some(&b':') {
                        return false;
                    }
                    previous = Some(key);
                    *at += 1;
                }
                if !compact_value(text, at, depth + 1) {
                    return false;
                }
                match text.get(*at) {
                    Some(b',') => *at += 1,
                    Some(&c) if c == close => {
                        *at += 1;
                        return true;
                    }
                    _ => return false,
                }
            }
        }
        Some(b'"') => compact_string(text, at),
        Some(b't') => literal(text, at, b"true"),
        Some(b'f') => literal(text, at, b"false"),
        Some(b'n') => literal(text, at, b"null"),
        Some(b'-' | b'0'..=b'9') => {
            // an integer of up to 18 digits is written back as it is; "-0",
            // fractions and exponents would be written differently
            let start = *at;
            if text[start] == b'-' {
                *at += 1;
            }
            let digits = *at;
            while text.get(*at).is_some_and(u8::is_ascii_digit) {
                *at += 1;
            }
            let n = *at - digits;
            // (a fraction or exponent that follows is no `,`, `]` or `}`: refused)
            (1..=18).contains(&n) && !(n > 1 && text[digits] == b'0') && &text[start..*at] != b"-0"
        }
        _ => false,
    }
}

/// A string at `at` (its opening quote) with only the escapes serde_json
/// writes: `\"`, `\\`, `\b`, `\f`, `\n`, `\r`, `\t`, and `\u00xx`
/// (lower-case hex) for the other control characters. Moves past it.
fn compact_string(text: &[u8], at: &mut usize) -> bool {
    if text.get(*at) != Some(&b'"') {
        return false;
    }
    *at += 1;
    loop {
        // the text is valid JSON: a string has no raw control characters
        match memchr::memchr2(b'"', b'\\', &text[*at..]) {
            None => return false,
            Some(i) if text[*at + i] == b'"' => {
                *at += i + 1;
                return true;
            }
            Some(i) => {
                *at += i + 1;
                match text.get(*at) {
                    Some(b'"' | b'\\' | b'b' | b'f' | b'n' | b'r' | b't') => *at += 1,
                    Some(b'u') => {
                        let digit = |c: u8| if c.is_ascii_digit() { c - b'0' } else { c - b'a' + 10 };
                        let code = match text.get(*at + 1..*at + 5) {
                            Some(&[b'0', b'0', high @ (b'0' | b'1'), low @ (b'0'..=b'9' | b'a'..=b'f')]) => {
                                (high - b'0') * 16 + digit(low)
                            }
                            _ => return false,
                        };
                        // these five have the short escapes above
                        if matches!(code, 0x08 | 0x09 | 0x0a | 0x0c | 0x0d) {
                            return false;
                        }
                        *at += 5;
                    }
                    _ => return false,
                }
            }
        }
    }
}

fn literal(text: &[u8], at: &mut usize, word: &[u8]) -> bool {
    let ok = text[*at..].starts_with(word);
    *at += word.len();
    ok
}

/// Decodes one member of an object, skipping the others.
struct Member<'k>(&'k str);

impl<'de> DeserializeSeed<'de> for Member<'_> {
    type Value = Option<Value>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Option<Value>, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Member<'_> {
    type Value = Option<Value>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Option<Value>, A::Error> {
        let mut found = None;
        while let Some(Key(key)) = map.next_key()? {
            if key == self.0 {
                found = Some(map.next_value()?);
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(found)
    }
}

/// A key, borrowed from the text unless it holds an escape.
struct Key<'de>(Cow<'de, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v.to_string())))
            }
            fn visit_string<E>(self, v: String) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v)))
            }
        }
        deserializer.deserialize_str(KeyVisitor)
    }
}

/// Why `text` is not an event: not JSON, or JSON but not an object.
fn not_an_event(text: &str, error: serde_json::Error) -> String {
    match serde_json::from_str::<Value>(text) {
        Ok(other) if !other.is_object() => format!("event is a JSON {}, not an object", kind_name(&other)),
        Ok(_) => format!("event is not valid JSON: {error}"),
        Err(e) => format!("event is not valid JSON: {e}"),
    }
}

/// Checks one event against the schema. `observed` fills `observed_time` and
/// `log_name` fills `metadata_log_name` when the event has none.
pub fn check_event(text: &str, observed: i64, log_name: &str, schema: &StreamSchema) -> Result<Row, String> {
    let mut decoder = serde_json::Deserializer::from_str(text);
    let decoded = TopLevel(schema).deserialize(&mut decoder).and_then(|fields| decoder.end().map(|()| fields));
    let TopFields { known, nested, extra, replaced } = decoded.map_err(|e| not_an_event(text, e))?;
    let (nested, not_an_object) = match nested {
        Nested::Null => (Vec::new(), None),
        Nested::Object(members) => (members, None),
        Nested::Other(kind) => (Vec::new(), Some(kind)),
    };
    // first, as decoding the whole event refused what it could not decode first
    let unmapped = unmapped_text(extra, nested, replaced)?;
    let mut cells: Vec<Cell> = (0..schema.len()).map(|_| Cell::Null).collect();
    // with several wrong fields, the reason names the first in column order
    for (i, value) in known.into_iter().enumerate() {
        if i == *UNMAPPED {
            if let Some(kind) = not_an_object {
                return Err(format!("field `unmapped`: expected an object, got {kind}"));
            }
            continue;
        }
        let Some(value) = value.filter(|v| !v.is_null()) else {
            continue;
        };
        let (name, kind) = schema.kind(i);
        cells[i] = match kind {
            Kind::Timestamp => Cell::Int(timestamp(name, &value)?),
            Kind::Int32 => {
                let v = integer(name, &value)?;
                i32::try_from(v).map_err(|_| format!("field `{name}`: {v} does not fit a 32-bit integer"))?;
                Cell::Int(v)
            }
            Kind::Int64 => Cell::Int(integer(name, &value)?),
            Kind::Utf8 => match value {
                Value::String(s) => Cell::Text(s),
                Value::Number(n) => Cell::Text(n.to_string()),
                Value::Bool(b) => Cell::Text(b.to_string()),
                other => {
                    return Err(format!("field `{name}`: expected a string, got {}", kind_name(&other)));
                }
            },
            Kind::Json => unreachable!("`unmapped` is the only JSON column"),
            Kind::StructList(fields) => Cell::StructList(struct_list(name, fields, &value)?),
        };
    }
    if matches!(cells[TIME], Cell::Null) {
        return Err("missing required field `time`".into());
    }
    if matches!(cells[OBSERVED_TIME], Cell::Null) {
        cells[OBSERVED_TIME] = Cell::Int(observed);
    }
    if matches!(cells[*METADATA_LOG_NAME], Cell::Null) {
        cells[*METADATA_LOG_NAME] = Cell::Text(log_name.to_string());
    }
    if let Some(text) = unmapped {
        cells[*UNMAPPED] = Cell::Text(text);
    }
    Ok(Row { cells })
}

fn integer(name: &str, v: &Value) -> Result<i64, String> {
    match v {
        Value::Number(n) => n.as_i64().ok_or_else(|| format!("field `{name}`: expected an integer, got {n}")),
        other => Err(format!("field `{name}`: expected an integer, got {}", kind_name(other))),
    }
}

fn timestamp(name: &str, v: &Value) -> Result<i64, String> {
    match v {
        Value::Number(n) => n.as_i64().ok_or_else(|| format!("field `{name}`: expected integer microseconds, got {n}")),
        Value::String(s) => sluice_rfc3339(s).ok_or_else(|| {
            let shown: String = s.chars().take(64).collect();
            format!("field `{name}`: `{shown}` is not an RFC 3339 timestamp")
        }),
        other => Err(format!("field `{name}`: expected a timestamp, got {}", kind_name(other))),
    }
}

fn sluice_rfc3339(s: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(s).ok().map(|t| t.timestamp_micros())
}

/// A list of objects whose fields are strings; required fields must be present.
fn struct_list(name: &str, fields: &[(&str, bool)], v: &Value) -> Result<Vec<Vec<Option<String>>>, String> {
    let names: Vec<&str> = fields.iter().map(|(n, _)| *n).collect();
    let bad = || format!("field `{name}`: expected a list of {{{}}} objects with string values", names.join(", "));
    let items = v.as_array().ok_or_else(bad)?;
    items
        .iter()
        .map(|item| {
            let object = item.as_object().ok_or_else(bad)?;
            fields
                .iter()
                .map(|&(field, required)| match object.get(field) {
                    Some(Value::String(s)) => Ok(Some(s.clone())),
                    Some(Value::Number(n)) => Ok(Some(n.to_string())),
                    None | Some(Value::Null) if !required => Ok(None),
                    _ => Err(bad()),
                })
                .collect()
        })
        .collect()
}

enum ColumnBuilder {
    Timestamp(TimestampMicrosecondBuilder),
    Int32(Int32Builder),
    Int64(Int64Builder),
    Utf8(StringBuilder),
    StructList(ListBuilder<StructBuilder>),
}

/// Checked rows split by partition (`key=value` path segments), in order of
/// first appearance, so that `seq` follows arrival order.
pub struct PartitionedRows<'a> {
    schema: &'a StreamSchema,
    keys: &'a [String],
    parts: Vec<(Vec<String>, BatchBuilder)>,
}

impl<'a> PartitionedRows<'a> {
    pub fn new(schema: &'a StreamSchema, keys: &'a [String]) -> Self {
        PartitionedRows { schema, keys, parts: Vec::new() }
    }

    pub fn push(&mut self, row: Row) {
        let segments: Vec<String> = self.keys.iter().map(|k| format!("{k}={}", row.partition_value(k))).collect();
        match self.parts.iter_mut().find(|(p, _)| *p == segments) {
            Some((_, builder)) => builder.push(row),
            None => {
                let mut builder = BatchBuilder::new(self.schema);
                builder.push(row);
                self.parts.push((segments, builder));
            }
        }
    }

    /// Per partition, its segments and its columns.
    pub fn finish(self) -> Vec<(Vec<String>, Vec<ArrayRef>)> {
        self.parts.into_iter().map(|(p, b)| (p, b.finish())).collect()
    }
}

/// Accumulates checked rows into Arrow columns.
pub struct BatchBuilder {
    columns: Vec<ColumnBuilder>,
}

impl BatchBuilder {
    pub fn new(schema: &StreamSchema) -> Self {
        // small to start (the builders double as rows come): a batch of a few
        // rows held until its row group is written must not hold room for 1024
        const ROWS: usize = 32;
        let columns = (0..schema.len())
            .map(|i| match schema.kind(i).1 {
                Kind::Timestamp => {
                    ColumnBuilder::Timestamp(TimestampMicrosecondBuilder::with_capacity(ROWS).with_timezone("UTC"))
                }
                Kind::Int32 => ColumnBuilder::Int32(Int32Builder::with_capacity(ROWS)),
                Kind::Int64 => ColumnBuilder::Int64(Int64Builder::with_capacity(ROWS)),
                Kind::Utf8 | Kind::Json => ColumnBuilder::Utf8(StringBuilder::with_capacity(ROWS, ROWS * 32)),
                Kind::StructList(fields) => {
                    let values = StructBuilder::from_fields(struct_fields(fields), 0);
                    ColumnBuilder::StructList(ListBuilder::with_capacity(values, ROWS).with_field(list_item(fields)))
                }
            })
            .collect();
        BatchBuilder { columns }
    }

    pub fn push(&mut self, row: Row) {
        for (builder, cell) in self.columns.iter_mut().zip(row.cells) {
            match (builder, cell) {
                (ColumnBuilder::Timestamp(b), Cell::Int(v)) => b.append_value(v),
                (ColumnBuilder::Timestamp(b), _) => b.append_null(),
                (ColumnBuilder::Int32(b), Cell::Int(v)) => b.append_value(v as i32),
                (ColumnBuilder::Int32(b), _) => b.append_null(),
                (ColumnBuilder::Int64(b), Cell::Int(v)) => b.append_value(v),
                (ColumnBuilder::Int64(b), _) => b.append_null(),
                (ColumnBuilder::Utf8(b), Cell::Text(s)) => b.append_value(s),
                (ColumnBuilder::Utf8(b), _) => b.append_null(),
                (ColumnBuilder::StructList(b), Cell::StructList(items)) => {
                    let values = b.values();
                    for item in &items {
                        for (i, field) in item.iter().enumerate() {
                            values
                                .field_builder::<StringBuilder>(i)
                                .expect("string field")
                                .append_option(field.as_deref());
                        }
                        values.append(true);
                    }
                    b.append(true);
                }
                (ColumnBuilder::StructList(b), _) => b.append(false),
            }
        }
    }

    /// The finished columns (without `seq`).
    pub fn finish(mut self) -> Vec<ArrayRef> {
        self.columns
            .iter_mut()
            .map(|c| match c {
                ColumnBuilder::Timestamp(b) => ArrayBuilder::finish(b),
                ColumnBuilder::Int32(b) => ArrayBuilder::finish(b),
                ColumnBuilder::Int64(b) => ArrayBuilder::finish(b),
                ColumnBuilder::Utf8(b) => ArrayBuilder::finish(b),
                ColumnBuilder::StructList(b) => ArrayBuilder::finish(b),
            })
            .collect()
    }
}

/// Adds `seq` (first_seq, first_seq+1, ...) and `event_hash` to finished
/// columns: the batch as it goes into a file, and its event hashes.
pub fn file_batch(columns: Vec<ArrayRef>, first_seq: i64, schema: &StreamSchema) -> (RecordBatch, Vec<Hash>) {
    hash_batch(seq_batch(columns, first_seq, schema), schema)
}

/// Adds `seq` (first_seq, first_seq+1, ...) to finished columns: the batch
/// that its events' hashes are taken over.
pub fn seq_batch(mut columns: Vec<ArrayRef>, first_seq: i64, schema: &StreamSchema) -> RecordBatch {
    let rows = columns.first().map_or(0, |c| c.len());
    columns.push(Arc::new(Int64Array::from_iter_values(first_seq..first_seq + rows as i64)));
    RecordBatch::try_new(schema.hashed.clone(), columns).expect("builders follow the schema")
}

/// Adds `event_hash` to a batch from [`seq_batch`]: the batch as it goes
/// into a file, and its event hashes.
pub fn hash_batch(hashed: RecordBatch, schema: &StreamSchema) -> (RecordBatch, Vec<Hash>) {
    let rows = hashed.num_rows();
    let hashes = crate::integrity::canonical::event_hashes(&hashed);
    let mut columns = hashed.columns().to_vec();
    let mut hex = StringBuilder::with_capacity(rows, rows * 64);
    let mut text = [0u8; 64];
    for hash in &hashes {
        hex::encode_to_slice(hash, &mut text).expect("64 hex digits");
        hex.append_value(std::str::from_utf8(&text).expect("hex is ASCII"));
    }
    columns.push(Arc::new(hex.finish()));
    (RecordBatch::try_new(schema.file.clone(), columns).expect("builders follow the file schema"), hashes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_row_and_unmapped() {
        let row = check_event(
            r#"{"time":"2026-11-01T13:00:00Z","class_uid":3002,"actor_user_name":"alice","x":{"y":1},"unmapped":{"z":true}}"#,
            5,
            "auth",
            &CORE,
        )
        .unwrap();
        assert_eq!(row.time(), 1_793_538_000_000_000);
        assert_eq!(row.partition_value("event_day"), "20261101");
        assert_eq!(row.partition_value("hour"), "13");
        assert_eq!(row.partition_value("class_uid"), "3002");
        assert_eq!(row.partition_value("tenant_uid"), "__HIVE_DEFAULT_PARTITION__");
        let mut b = BatchBuilder::new(&CORE);
        b.push(row);
        let (batch, hashes) = file_batch(b.finish(), 7, &CORE);
        assert_eq!(hashes.len(), 1);
        assert_eq!(batch.num_rows(), 1);
        let unmapped = batch.column_by_name("unmapped").unwrap();
        let s = unmapped.as_any().downcast_ref::<arrow_array::StringArray>().unwrap().value(0);
        assert_eq!(s, r#"{"x":{"y":1},"z":true}"#);
    }

    #[test]
    fn wrong_types_are_named() {
        let e = |t: &str| check_event(t, 0, "s", &CORE).err().unwrap();
        assert_eq!(e(r#"{"message":"m"}"#), "missing required field `time`");
        assert_eq!(e(r#"{"time":1,"class_uid":"x"}"#), "field `class_uid`: expected an integer, got string");
        assert_eq!(e(r#"{"time":"soon"}"#), "field `time`: `soon` is not an RFC 3339 timestamp");
        assert_eq!(
            e(r#"{"time":1,"status_id":9999999999}"#),
            "field `status_id`: 9999999999 does not fit a 32-bit integer"
        );
        assert_eq!(e("[1]"), "event is a JSON array, not an object");
        assert_eq!(e("\"text\""), "event is a JSON string, not an object");
        assert_eq!(e(r#"{"time":"#), "event is not valid JSON: EOF while parsing a value at line 1 column 8");
        assert_eq!(e(r#"{"time":1} {}"#), "event is not valid JSON: trailing characters at line 1 column 12");
        // `unmapped` values are copied as text when they can be: one that
        // cannot be decoded is still refused, with its key named
        assert_eq!(e(r#"{"time":1,"x":"\ud800"}"#), "field `x`: unexpected end of hex escape");
        assert_eq!(e(r#"{"time":1,"unmapped":{"y":["\udc00"]}}"#), "field `y`: lone leading surrogate in hex escape");
        assert_eq!(e(r#"{"time":1,"unmapped":[]}"#), "field `unmapped`: expected an object, got array");
    }

    /// As a map decode would: a key given twice keeps its last value, and a
    /// key spelled with an escape is the same key.
    #[test]
    fn repeated_and_escaped_keys() {
        let row = check_event(
            r#"{"time":1,"message":"first","mess\u0061ge":"second","x":1,"x":2,"actor_user_name":"a","actor_user_name":null}"#,
            0,
            "s",
            &CORE,
        )
        .unwrap();
        assert!(matches!(row.cell(column_index("message").unwrap()), CellRef::Text("second")));
        assert!(matches!(row.cell(column_index("actor_user_name").unwrap()), CellRef::Null));
        assert!(matches!(row.cell(*UNMAPPED), CellRef::Text(r#"{"x":2}"#)));
        assert_eq!(row.unmapped_member("x"), Some(serde_json::json!(2)));
        assert_eq!(row.unmapped_member("y"), None);
    }

    /// The values `unmapped` copies as they are written, and the ones it
    /// decodes and encodes again because serde_json would write them
    /// differently (the fuzz test below checks the two agree).
    #[test]
    fn compact_values_are_copied_as_written() {
        for text in [
            r#"{"a":"x\"y\\z\n\u001f","b":[1,-2,{"c":null}],"c":{},"d":[],"e":true,"f":"é"}"#,
            "123456789012345678",
            "-7",
            "0",
        ] {
            assert!(is_compact(text.as_bytes()), "{text}");
        }
        for text in [
            r#"{"b":1,"a":2}"#,
            r#"{"a":1,"a":2}"#,
            // keys with escapes, even in order: `a"b` sorts before `a/`, `a\"b` after
            r#"{"a\"b":1,"a/":2}"#,
            r#"{"a/":1,"a\"b":2}"#,
            r#"{"\u0061":1}"#,
            r#"{"a": 1}"#,
            "[1, 2]",
            "1.5",
            "1e5",
            "-0",
            "1234567890123456789",
            r#""\/""#,
            r#""\u000d""#,
            r#""\u0008""#,
            r#""\u001F""#,
            r#""\u00e9""#,
        ] {
            assert!(!is_compact(text.as_bytes()), "{text}");
        }
    }

    /// An event is refused exactly when decoding it whole is, although the
    /// values of `unmapped` are captured as text, which checks less: values
    /// that a later key replaces, lone surrogates, numbers out of range, and
    /// nesting as deep as serde_json allows in the whole event and no deeper.
    #[test]
    fn unmapped_values_are_refused_as_decoding_the_event_refuses_them() {
        let deep = |levels: usize| format!("{}{}", "[".repeat(levels), "]".repeat(levels));
        let events = [
            r#"{"time":1,"x":"\ud800","x":1}"#.to_string(),
            r#"{"time":1,"x":1,"unmapped":{"x":"\udc00"}}"#.to_string(),
            r#"{"time":1,"unmapped":{"a":1e999},"unmapped":null}"#.to_string(),
            r#"{"time":1,"unmapped":{"a":"\ud800"},"unmapped":{"b":1}}"#.to_string(),
            r#"{"time":1,"unmapped":["\ud800"]}"#.to_string(),
            r#"{"time":1,"x":1e999}"#.to_string(),
            r#"{"time":1,"x":[1.5,"\u00e9\/"]}"#.to_string(),
            format!(r#"{{"time":1,"x":{},"x":1}}"#, deep(10_000)),
        ];
        let mut events = events.to_vec();
        for levels in [100, 101, 124, 125, 126, 127] {
            events.push(format!(r#"{{"time":1,"x":{}}}"#, deep(levels)));
            events.push(format!(r#"{{"time":1,"x":{},"x":1}}"#, deep(levels)));
            events.push(format!(r#"{{"time":1,"unmapped":{{"x":{}}}}}"#, deep(levels)));
        }
        let mut refused = 0;
        for event in &events {
            let whole = serde_json::from_str::<serde_json::Map<String, Value>>(event);
            let checked = check_event(event, 0, "s", &CORE);
            assert_eq!(checked.is_ok(), whole.is_ok(), "{}: {checked:?}", &event[..event.len().min(80)]);
            refused += usize::from(checked.is_err());
        }
        // the first 8 but `[1.5, ...]`; the limit falls between 126 and 127
        // levels for a top-level value (kept or replaced), 125 and 126 nested
        assert_eq!(refused, 7 + 1 + 1 + 2);
    }

    /// docs/schema.md documents every column, in order, with its type.
    #[test]
    fn schema_doc_matches_the_files() {
        let doc = include_str!("../../docs/schema.md");
        let documented: Vec<(String, String)> = doc
            .lines()
            .filter(|l| l.starts_with("| ") && !l.starts_with("| column") && !l.starts_with("|---"))
            .map(|l| {
                let cells: Vec<&str> = l.split('|').map(str::trim).collect();
                (cells[1].to_string(), cells[2].replace("&lt;", "<").replace("&gt;", ">"))
            })
            .collect();
        let written: Vec<(String, String)> = FILE_SCHEMA
            .fields()
            .iter()
            .map(|f| {
                let t = match f.data_type() {
                    DataType::Timestamp(TimeUnit::Microsecond, Some(tz)) if tz.as_ref() == "UTC" => {
                        "timestamp".to_string()
                    }
                    DataType::Int32 => "int32".into(),
                    DataType::Int64 => "int64".into(),
                    DataType::Utf8 if f.name() == "unmapped" => "json".into(),
                    DataType::Utf8 => "string".into(),
                    DataType::List(item) => match item.data_type() {
                        DataType::Struct(fs) if fs.len() == 4 && fs[0].name() == "type" => "list<resource>".into(),
                        DataType::Struct(fs) if fs.len() == 3 && fs[0].name() == "path" => "list<redaction>".into(),
                        other => format!("list<{other}>"),
                    },
                    other => other.to_string(),
                };
                (f.name().to_string(), t)
            })
            .collect();
        assert_eq!(documented, written, "docs/schema.md and the file schema differ");
    }

    #[test]
    fn extra_columns_are_typed_and_kept_out_of_unmapped() {
        let schema = StreamSchema::new(vec![("amount_cents".into(), Kind::Int64), ("paid_at".into(), Kind::Timestamp)]);
        let row = check_event(
            r#"{"time":1,"amount_cents":1250,"paid_at":"2026-11-01T00:00:00Z","other":1}"#,
            0,
            "s",
            &schema,
        )
        .unwrap();
        let mut b = BatchBuilder::new(&schema);
        b.push(row);
        let (batch, _) = file_batch(b.finish(), 0, &schema);
        let file_schema = batch.schema();
        let names: Vec<&str> = file_schema.fields().iter().rev().take(4).map(|f| f.name().as_str()).collect();
        assert_eq!(names, ["event_hash", "seq", "paid_at", "amount_cents"]);
        assert_eq!(
            batch.column_by_name("amount_cents").unwrap().as_any().downcast_ref::<Int64Array>().unwrap().value(0),
            1250
        );
        let unmapped = batch.column_by_name("unmapped").unwrap();
        assert_eq!(unmapped.as_any().downcast_ref::<arrow_array::StringArray>().unwrap().value(0), r#"{"other":1}"#);
        let e = check_event(r#"{"time":1,"amount_cents":"lots"}"#, 0, "s", &schema).err().unwrap();
        assert_eq!(e, "field `amount_cents`: expected an integer, got string");
        assert_ne!(schema_hash(&schema.file), schema_hash(&CORE.file));
    }

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(20_758), (2026, 11, 1));
    }

    /// Fuzz target for the host's decoding of plugin output: any event text a
    /// plugin returns is a typed row or a reason — never a panic — and every
    /// row it accepts encodes into a file batch with its hash.
    /// `SLUICE_FUZZ_CASES` sets the number of cases (default 1,000).
    mod fuzz {
        use super::*;
        use proptest::prelude::*;
        use serde_json::Value;

        fn cases() -> u32 {
            std::env::var("SLUICE_FUZZ_CASES").map_or(1000, |v| v.parse().expect("a number"))
        }

        /// Keys a plugin might use: every column (and some that are not).
        fn key() -> impl Strategy<Value = String> {
            let mut names: Vec<String> = CORE.file.fields().iter().map(|f| f.name().clone()).collect();
            names.extend(["unmapped", "redactions", "x", "", "time "].map(String::from));
            prop::sample::select(names)
        }

        fn value() -> impl Strategy<Value = Value> {
            let leaf = prop_oneof![
                Just(Value::Null),
                any::<bool>().prop_map(Value::from),
                any::<i64>().prop_map(Value::from),
                any::<u64>().prop_map(Value::from),
                any::<f64>().prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
                "\\PC{0,12}".prop_map(Value::from),
                prop::sample::select(vec![
                    "2026-11-01T00:00:00Z",
                    "1970-01-01T00:00:00+14:00",
                    "9999-12-31T23:59:59.999999999Z",
                    "-0001-01-01T00:00:00Z",
                    "2026-02-30T00:00:00Z",
                ])
                .prop_map(Value::from),
            ];
            leaf.prop_recursive(4, 32, 6, |inner| {
                prop_oneof![
                    prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                    prop::collection::btree_map(key(), inner, 0..6)
                        .prop_map(|m| Value::Object(m.into_iter().collect())),
                ]
            })
        }

        fn decode_and_encode(texts: &[String]) {
            let mut builder = BatchBuilder::new(&CORE);
            let mut rows = 0;
            for text in texts {
                if let Ok(row) = check_event(text, 1, "fuzz", &CORE) {
                    let _ = row.partition_value("event_day");
                    let _ = row.partition_value("tenant_uid");
                    builder.push(row);
                    rows += 1;
                }
            }
            let (batch, hashes) = file_batch(builder.finish(), 0, &CORE);
            assert_eq!((batch.num_rows(), hashes.len()), (rows, rows));
        }

        /// A JSON value with a choice of how it is written: keys in any
        /// order and possibly twice, white space, escapes serde_json would
        /// not write, numbers as any text JSON allows.
        #[derive(Debug, Clone)]
        enum Written {
            Literal(&'static str),
            Number(String),
            Text(String, Escapes),
            Array(Vec<Written>),
            /// Members in this order, and whether white space follows `:` and `,`.
            Object(Vec<(String, Escapes, Written)>, bool),
        }

        /// How a string is written.
        #[derive(Debug, Clone, Copy)]
        enum Escapes {
            /// As serde_json writes it.
            Usual,
            /// Every character as `\uXXXX`, upper-case.
            Upper,
            /// Every character as `\uxxxx`, lower-case.
            Lower,
            /// `/` as `\/`, the rest as usual.
            Solidus,
            /// As usual, then a lone surrogate: not valid, refused.
            Lone,
        }

        fn write_string(out: &mut String, s: &str, escapes: Escapes) {
            match escapes {
                Escapes::Usual => out.push_str(&serde_json::to_string(s).unwrap()),
                Escapes::Solidus => out.push_str(&serde_json::to_string(s).unwrap().replace('/', "\\/")),
                Escapes::Lone => {
                    let usual = serde_json::to_string(s).unwrap();
                    out.push_str(&usual[..usual.len() - 1]);
                    out.push_str("\\ud800\"");
                }
                Escapes::Upper | Escapes::Lower => {
                    out.push('"');
                    for unit in s.encode_utf16() {
                        match escapes {
                            Escapes::Upper => out.push_str(&format!("\\u{unit:04X}")),
                            _ => out.push_str(&format!("\\u{unit:04x}")),
                        }
                    }
                    out.push('"');
                }
            }
        }

        fn escapes() -> impl Strategy<Value = Escapes> {
            prop::sample::select(vec![
                Escapes::Usual,
                Escapes::Usual,
                Escapes::Usual,
                Escapes::Upper,
                Escapes::Lower,
                Escapes::Solidus,
                Escapes::Lone,
            ])
        }

        impl Written {
            fn write(&self, out: &mut String) {
                match self {
                    Written::Literal(s) => out.push_str(s),
                    Written::Number(s) => out.push_str(s),
                    Written::Text(s, escapes) => write_string(out, s, *escapes),
                    Written::Array(items) => {
                        out.push('[');
                        for (i, item) in items.iter().enumerate() {
                            if i > 0 {
                                out.push(',');
                            }
                            item.write(out);
                        }
                        out.push(']');
                    }
                    Written::Object(members, spaced) => {
                        out.push('{');
                        for (i, (key, escapes, value)) in members.iter().enumerate() {
                            if i > 0 {
                                out.push_str(if *spaced { ", " } else { "," });
                            }
                            write_string(out, key, *escapes);
                            out.push_str(if *spaced { ": " } else { ":" });
                            value.write(out);
                        }
                        out.push('}');
                    }
                }
            }
        }

        /// Few keys, so that they repeat and collide; some need escapes.
        fn member_key() -> impl Strategy<Value = String> {
            prop::sample::select(vec!["a", "b", "ab", "B", "é", "a\"b", "t\u{1}", "a/", "pipeline", "time", "unmapped"])
                .prop_map(String::from)
        }

        fn written() -> impl Strategy<Value = Written> {
            let leaf = prop_oneof![
                prop::sample::select(vec!["null", "true", "false"]).prop_map(Written::Literal),
                "-?(0|[1-9][0-9]{0,20})(\\.[0-9]{1,3})?([eE][+-]?[0-9]{1,3})?".prop_map(Written::Number),
                ("[a-z\"\\\\/\u{0}-\u{1f}\u{7f}é€😀]{0,6}", escapes()).prop_map(|(s, e)| Written::Text(s, e)),
            ];
            leaf.prop_recursive(4, 24, 5, |inner| {
                prop_oneof![
                    prop::collection::vec(inner.clone(), 0..4).prop_map(Written::Array),
                    (prop::collection::vec((member_key(), escapes(), inner), 0..5), any::<bool>())
                        .prop_map(|(m, spaced)| Written::Object(m, spaced)),
                ]
            })
        }

        /// What `unmapped` held when the schema check decoded the event into
        /// a map and encoded the keys that are no column.
        fn unmapped_by_map(text: &str) -> Option<String> {
            let event: serde_json::Map<String, Value> = serde_json::from_str(text).unwrap();
            let mut unmapped = serde_json::Map::new();
            let mut nested = serde_json::Map::new();
            for (key, value) in event {
                match (key.as_str(), value) {
                    ("unmapped", Value::Object(m)) => nested = m,
                    (k, value) if column_index(k).is_none() => {
                        unmapped.insert(key, value);
                    }
                    _ => {}
                }
            }
            for (key, value) in nested {
                unmapped.entry(key).or_insert(value);
            }
            (!unmapped.is_empty()).then(|| serde_json::to_string(&unmapped).unwrap())
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: cases(), failure_persistence: None, ..ProptestConfig::default() })]

            /// `unmapped` is exactly what encoding a map of the values wrote,
            /// however the plugin wrote them, and an event is refused exactly
            /// when decoding it whole is (lone surrogates, numbers out of range).
            #[test]
            fn unmapped_is_what_a_map_encodes(
                top in prop::collection::vec((member_key(), escapes(), written()), 0..5),
                nested in prop::option::of((prop::collection::vec((member_key(), escapes(), written()), 0..5), any::<bool>())),
            ) {
                let top: Vec<_> = top.into_iter().filter(|(k, _, _)| k != "time" && k != "unmapped").collect();
                let mut members = vec![("time".to_string(), Escapes::Usual, Written::Number("1".into()))];
                members.extend(top);
                if let Some((nested, spaced)) = nested {
                    members.push(("unmapped".into(), Escapes::Usual, Written::Object(nested, spaced)));
                }
                let mut text = String::new();
                Written::Object(members, false).write(&mut text);
                let checked = check_event(&text, 1, "fuzz", &CORE);
                let whole = serde_json::from_str::<serde_json::Map<String, Value>>(&text);
                prop_assert_eq!(checked.is_ok(), whole.is_ok(), "event {}: {:?}", text, checked);
                if let Ok(row) = checked {
                    let unmapped = match row.cell(*UNMAPPED) {
                        CellRef::Text(t) => Some(t.to_string()),
                        _ => None,
                    };
                    prop_assert_eq!(unmapped, unmapped_by_map(&text), "event {}", text);
                }
            }

            #[test]
            fn fuzz_plugin_output_events(events in prop::collection::vec(
                (prop::collection::btree_map(key(), value(), 0..12), any::<bool>()), 1..8)
            ) {
                let texts: Vec<String> = events
                    .into_iter()
                    .map(|(mut fields, with_time)| {
                        if with_time {
                            fields.insert("time".into(), Value::from(1_793_538_000_000_000i64));
                        }
                        Value::Object(fields.into_iter().collect()).to_string()
                    })
                    .collect();
                decode_and_encode(&texts);
            }

            #[test]
            fn fuzz_plugin_output_any_text(texts in prop::collection::vec("\\PC{0,200}", 1..4)) {
                decode_and_encode(&texts);
            }
        }
    }
}
