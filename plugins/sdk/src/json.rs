//! Helpers for JSON: records that hold one object (parsers), and the events
//! a transform is given.
//!
//! The parser helpers' error texts name the field and what was found there ("field
//! `userIdentity.userName`: expected a string, got an array"), so a
//! quarantined record says what is wrong with it.

use crate::tree::{Node, Object};
use crate::{Event, Outcome, record_text};
use serde_json::{Map, Value};

/// Reads a record that holds one JSON object.
///
/// `Err` holds the outcome to return for the record as it is: a drop
/// (`blank line`) for a blank record, an error for one that is not UTF-8
/// (see [`record_text`]), not JSON (`not valid JSON: …`) or JSON but not an
/// object (`expected a JSON object, got an array`).
pub fn object(record: &[u8]) -> Result<Map<String, Value>, Outcome> {
    let text = record_text(record)?;
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(other) => Err(Outcome::Error(format!("expected a JSON object, got {}", kind(&other)))),
        Err(e) => Err(Outcome::Error(format!("not valid JSON: {e}"))),
    }
}

/// Reads a record that holds one JSON object, as [`object`] does (the same
/// outcomes), into a tree whose keys and strings borrow from the record:
/// about half the work of building a `Map` (see [`crate::tree`]). One
/// exception, in native builds only: where serde_json's `raw_value` feature
/// is on (the host turns it on for the whole build), its `Value` decoder
/// reads an object whose first key is `$serde_json::private::RawValue` as
/// that key's value; the tree reads it as the object it is, as Wasm builds
/// always did.
pub fn tree(record: &[u8]) -> Result<Object<'_>, Outcome> {
    let text = record_text(record)?;
    match crate::tree::decode(text) {
        Ok((Node::Object(object), _)) => Ok(object),
        Ok((other, _)) => Err(Outcome::Error(format!("expected a JSON object, got {}", other.kind()))),
        Err(e) => Err(Outcome::Error(format!("not valid JSON: {e}"))),
    }
}

/// The value at a dotted `path` of nested objects (`userIdentity.userName`);
/// `None` when missing or null, an error naming the path so far when something
/// on the way is not an object.
///
/// Each part is one key, so keys that contain dots and array indexes are not
/// reached.
pub fn get<'a>(object: &'a Map<String, Value>, path: &str) -> Result<Option<&'a Value>, String> {
    let mut current = object;
    let mut walked = 0;
    let mut parts = path.split('.').peekable();
    while let Some(part) = parts.next() {
        walked += part.len() + 1;
        match current.get(part) {
            None | Some(Value::Null) => return Ok(None),
            Some(value) if parts.peek().is_none() => return Ok(Some(value)),
            Some(Value::Object(next)) => current = next,
            Some(other) => {
                return Err(format!("field `{}`: expected an object, got {}", &path[..walked - 1], kind(other)));
            }
        }
    }
    Ok(None)
}

/// The string at a dotted `path` (see [`get`]); `None` when missing, null or
/// empty, an error naming the path when it is not a string.
pub fn string<'a>(object: &'a Map<String, Value>, path: &str) -> Result<Option<&'a str>, String> {
    match get(object, path)? {
        None => Ok(None),
        Some(Value::String(s)) => Ok((!s.is_empty()).then_some(s.as_str())),
        Some(other) => Err(format!("field `{path}`: expected a string, got {}", kind(other))),
    }
}

/// Removes the leaf at a dotted `path` of nested objects, and the objects left
/// empty on the way. Does nothing when the path is not there.
pub fn remove(object: &mut Map<String, Value>, path: &str) {
    match path.split_once('.') {
        None => {
            object.remove(path);
        }
        Some((head, rest)) => {
            if let Some(Value::Object(inner)) = object.get_mut(head) {
                remove(inner, rest);
                if inner.is_empty() {
                    object.remove(head);
                }
            }
        }
    }
}

/// Sets the value at a dotted `path`, making the objects on the way (a value
/// on the way that is not an object is replaced by one).
pub fn set(object: &mut Map<String, Value>, path: &str, value: Value) {
    match path.split_once('.') {
        None => {
            object.insert(path.to_string(), value);
        }
        Some((head, rest)) => {
            let inner = object.entry(head).or_insert_with(|| Value::Object(Map::new()));
            if !inner.is_object() {
                *inner = Value::Object(Map::new());
            }
            if let Value::Object(inner) = inner {
                set(inner, rest, value);
            }
        }
    }
}

/// An event's JSON text: the bytes `serde_json::to_string` writes for it,
/// written faster. Most strings in events need no escape, and a check of
/// eight bytes at a time finds that; those that do are written by
/// serde_json, as are numbers. The buffer starts at 1 KiB, which holds most
/// events without growing.
pub fn encode(event: &Event) -> String {
    let mut out = Vec::with_capacity(1024);
    write_object(&mut out, event);
    String::from_utf8(out).expect("strings and serde_json's output are UTF-8")
}

/// What [`encode`] writes for `event` with `key` set to `value`: for a
/// parser that keeps part of its record as it is (`unmapped`), as a tree
/// that borrows from the record, instead of copying it into the event.
pub fn encode_with(event: &Event, key: &str, value: &crate::tree::Node) -> String {
    let mut out = Vec::with_capacity(1024);
    out.push(b'{');
    // `"name":`, after a comma unless it is the first member
    let start = |out: &mut Vec<u8>, name: &str| {
        if out.len() > 1 {
            out.push(b',');
        }
        write_str(out, name);
        out.push(b':');
    };
    let mut extra = Some(value);
    for (name, v) in event.iter().filter(|(name, _)| *name != key) {
        if name.as_str() > key
            && let Some(value) = extra.take()
        {
            start(&mut out, key);
            value.write_json(&mut out);
        }
        start(&mut out, name);
        write_value(&mut out, v);
    }
    if let Some(value) = extra {
        start(&mut out, key);
        value.write_json(&mut out);
    }
    out.push(b'}');
    String::from_utf8(out).expect("strings and serde_json's output are UTF-8")
}

fn write_object(out: &mut Vec<u8>, object: &Map<String, Value>) {
    out.push(b'{');
    for (i, (key, value)) in object.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_str(out, key);
        out.push(b':');
        write_value(out, value);
    }
    out.push(b'}');
}

fn write_value(out: &mut Vec<u8>, value: &Value) {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(n) => serde_json::to_writer(&mut *out, n).expect("writing to memory cannot fail"),
        Value::String(s) => write_str(out, s),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_value(out, item);
            }
            out.push(b']');
        }
        Value::Object(object) => write_object(out, object),
    }
}

/// Appends `s` as a JSON string, the bytes serde_json writes for it (the
/// host writes the canonical text of events with it too).
pub fn write_str(out: &mut Vec<u8>, s: &str) {
    if needs_escape(s.as_bytes()) {
        serde_json::to_writer(&mut *out, s).expect("writing to memory cannot fail");
    } else {
        out.reserve(s.len() + 2);
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
    }
}

/// Whether serde_json escapes something in `bytes`: a control character
/// (below 0x20), `"` or `\`.
fn needs_escape(bytes: &[u8]) -> bool {
    const ONES: u64 = u64::from_ne_bytes([1; 8]);
    const HIGH: u64 = u64::from_ne_bytes([0x80; 8]);
    // a byte of `word` below `n` (n <= 0x80) sets the high bit of its lane
    let below = |word: u64, n: u8| word.wrapping_sub(ONES * u64::from(n)) & !word & HIGH;
    let mut chunks = bytes.chunks_exact(8);
    for chunk in &mut chunks {
        let word = u64::from_ne_bytes(chunk.try_into().expect("eight bytes"));
        let quote = word ^ (ONES * u64::from(b'"'));
        let backslash = word ^ (ONES * u64::from(b'\\'));
        if below(word, 0x20) | below(quote, 1) | below(backslash, 1) != 0 {
            return true;
        }
    }
    chunks.remainder().iter().any(|&b| b < 0x20 || b == b'"' || b == b'\\')
}

/// What a value is, for error texts: `null`, `a boolean`, `a number`,
/// `a string`, `an array` or `an object`.
pub fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Decodes a transform's input event in one pass. `Ok(None)` when the text
/// is JSON but not an object. The flag says whether some object in the text,
/// at any depth, names a key twice (keys compared after unescaping): the
/// decoded form keeps the last value, so such text says more than the event
/// the plugin saw.
pub fn decode_event(text: &str) -> Result<Option<(Event, bool)>, serde_json::Error> {
    use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
    use std::cell::Cell;

    /// Builds a `Value` as serde_json's own decoder does, and notes whether
    /// an object came out with fewer entries than the keys it was given.
    #[derive(Clone, Copy)]
    struct Tree<'a>(&'a Cell<bool>);

    impl<'de> DeserializeSeed<'de> for Tree<'_> {
        type Value = Value;
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
            d.deserialize_any(self)
        }
    }
    impl<'de> Visitor<'de> for Tree<'_> {
        type Value = Value;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a JSON value")
        }
        fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
            Ok(Value::Bool(v))
        }
        fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
            Ok(Value::from(v))
        }
        fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
            Ok(Value::from(v))
        }
        fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
            Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
        }
        fn visit_str<E>(self, v: &str) -> Result<Value, E> {
            Ok(Value::String(v.to_owned()))
        }
        fn visit_string<E>(self, v: String) -> Result<Value, E> {
            Ok(Value::String(v))
        }
        fn visit_unit<E>(self) -> Result<Value, E> {
            Ok(Value::Null)
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut items: A) -> Result<Value, A::Error> {
            let mut out = Vec::new();
            while let Some(item) = items.next_element_seed(self)? {
                out.push(item);
            }
            Ok(Value::Array(out))
        }
        fn visit_map<A: MapAccess<'de>>(self, mut fields: A) -> Result<Value, A::Error> {
            let mut out = Map::new();
            let mut given = 0;
            while let Some(key) = fields.next_key::<String>()? {
                out.insert(key, fields.next_value_seed(self)?);
                given += 1;
            }
            if out.len() < given {
                self.0.set(true);
            }
            Ok(Value::Object(out))
        }
    }

    let repeated = Cell::new(false);
    let mut decoder = serde_json::Deserializer::from_str(text);
    let value = Tree(&repeated).deserialize(&mut decoder)?;
    decoder.end()?;
    Ok(match value {
        Value::Object(event) => Some((event, repeated.get())),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn duplicate_keys_are_found_at_any_depth_and_after_unescaping() {
        let repeated = |text: &str| decode_event(text).unwrap().unwrap().1;
        for text in [
            r#"{"a":1,"a":2}"#,
            r#"{"x":{"password":"hunter2","password":null}}"#,
            r#"{"x":[1,{"k":"v","k":"w"}]}"#,
            r#"{"ab":1,"a\u0062":2}"#,
        ] {
            assert!(repeated(text), "{text}");
        }
        for text in [r#"{"a":1,"b":{"a":2},"c":[{"a":3},{"a":4}]}"#, r#"{"a\"b":1,"a":2}"#] {
            assert!(!repeated(text), "{text}");
        }
    }

    #[test]
    fn events_decode_as_serde_json_decodes_them() {
        let text =
            r#"{"b":[1,-2,3.5,1.5e300,null,true,"s\n"],"a":{"y":{},"x":[]},"c":18446744073709551615,"a":{"z":0}}"#;
        let (event, repeated) = decode_event(text).unwrap().unwrap();
        assert!(repeated);
        assert_eq!(event, serde_json::from_str::<Map<String, Value>>(text).unwrap());
        assert_eq!(decode_event("[1,2]").unwrap(), None);
        assert_eq!(decode_event("\"x\"").unwrap(), None);
        for bad in ["not json", r#"{"a":1} x"#, r#"{"a":"#] {
            assert_eq!(
                decode_event(bad).unwrap_err().to_string(),
                serde_json::from_str::<Value>(bad).unwrap_err().to_string()
            );
        }
    }

    #[test]
    fn encode_writes_what_serde_json_writes() {
        // every byte that is or is not escaped, at each place in and around an eight-byte chunk
        let controls = (0..0x20u8).map(|b| char::from(b).to_string());
        let others = ["\"", "\\", " ", "\u{7f}", "/", "é", "\u{2028}", "😀"].map(String::from);
        let specials: Vec<String> = controls.chain(others).collect();
        let mut strings = vec![String::new()];
        for len in 0..20 {
            for at in 0..len {
                for special in &specials {
                    let mut s: String = "abcdefghijklmnopqrstuvwxyz".chars().take(len).collect();
                    s.replace_range(at..at + 1, special);
                    strings.push(s);
                }
            }
        }
        let mut event = Map::new();
        for (i, s) in strings.iter().enumerate() {
            event.insert(format!("{s}{i}"), Value::String(s.clone()));
        }
        event.insert(
            "numbers".into(),
            json!([0, -1, u64::MAX, i64::MIN, 1.5, 1.5e300, -2.5e-8, 0.1, f64::MAX, f64::MIN_POSITIVE, 5e-324]),
        );
        event.insert("nested".into(), json!({"a": [[], {}, [null, true, false, {"b\"": ""}]], "": {"": []}}));
        assert_eq!(encode(&event), serde_json::to_string(&event).unwrap());
        assert_eq!(encode(&Map::new()), "{}");
    }

    #[test]
    fn set_makes_the_objects_on_the_way_and_get_reads_them_back() {
        let mut event = json!({"a": 1, "b": {"c": 2}}).as_object().unwrap().clone();
        set(&mut event, "b.d.e", json!("x"));
        set(&mut event, "a.f", json!(true)); // a number on the way becomes an object
        set(&mut event, "g", json!(3));
        assert_eq!(Value::Object(event.clone()), json!({"a": {"f": true}, "b": {"c": 2, "d": {"e": "x"}}, "g": 3}));
        assert_eq!(get(&event, "b.d.e"), Ok(Some(&json!("x"))));
        remove(&mut event, "b.d.e");
        assert_eq!(Value::Object(event), json!({"a": {"f": true}, "b": {"c": 2}, "g": 3}));
    }
}
