//! Helpers for parsers whose records are JSON objects.
//!
//! Their error texts name the field and what was found there ("field
//! `userIdentity.userName`: expected a string, got an array"), so a
//! quarantined record says what is wrong with it.

use crate::{Outcome, record_text};
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

/// Whether some object in the JSON `text` names the same key twice, at any
/// depth (keys compared after unescaping). Such text says more than its
/// decoded form, where the last value of a key wins. Text that is not valid
/// JSON counts as having none.
pub fn has_duplicate_keys(text: &str) -> bool {
    use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
    use std::borrow::Cow;

    /// A value read only to look at its objects' keys.
    struct Checked;
    /// A key, borrowed from the text unless it holds an escape.
    struct Key<'a>(Cow<'a, str>);
    const DUPLICATE: &str = "duplicate key";

    impl<'de> Deserialize<'de> for Checked {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            d.deserialize_any(Checked)
        }
    }
    impl<'de> Visitor<'de> for Checked {
        type Value = Checked;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a JSON value")
        }
        fn visit_bool<E>(self, _: bool) -> Result<Checked, E> {
            Ok(Checked)
        }
        fn visit_i64<E>(self, _: i64) -> Result<Checked, E> {
            Ok(Checked)
        }
        fn visit_u64<E>(self, _: u64) -> Result<Checked, E> {
            Ok(Checked)
        }
        fn visit_f64<E>(self, _: f64) -> Result<Checked, E> {
            Ok(Checked)
        }
        fn visit_str<E>(self, _: &str) -> Result<Checked, E> {
            Ok(Checked)
        }
        fn visit_unit<E>(self) -> Result<Checked, E> {
            Ok(Checked)
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut items: A) -> Result<Checked, A::Error> {
            while items.next_element::<Checked>()?.is_some() {}
            Ok(Checked)
        }
        fn visit_map<A: MapAccess<'de>>(self, mut fields: A) -> Result<Checked, A::Error> {
            let mut keys: Vec<Cow<'de, str>> = Vec::new();
            while let Some(Key(key)) = fields.next_key::<Key<'de>>()? {
                if keys.contains(&key) {
                    return Err(de::Error::custom(DUPLICATE));
                }
                keys.push(key);
                fields.next_value::<Checked>()?;
            }
            Ok(Checked)
        }
    }
    impl<'de> Deserialize<'de> for Key<'de> {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct KeyVisitor;
            impl<'de> Visitor<'de> for KeyVisitor {
                type Value = Key<'de>;
                fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                    f.write_str("a key")
                }
                fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Key<'de>, E> {
                    Ok(Key(Cow::Borrowed(s)))
                }
                fn visit_str<E>(self, s: &str) -> Result<Key<'de>, E> {
                    Ok(Key(Cow::Owned(s.to_string())))
                }
            }
            d.deserialize_str(KeyVisitor)
        }
    }
    match serde_json::from_str::<Checked>(text) {
        Ok(_) => false,
        Err(e) => e.to_string().starts_with(DUPLICATE),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn duplicate_keys_are_found_at_any_depth_and_after_unescaping() {
        for text in [
            r#"{"a":1,"a":2}"#,
            r#"{"x":{"password":"hunter2","password":null}}"#,
            r#"{"x":[1,{"k":"v","k":"w"}]}"#,
            r#"{"ab":1,"a\u0062":2}"#,
        ] {
            assert!(has_duplicate_keys(text), "{text}");
        }
        for text in [r#"{"a":1,"b":{"a":2},"c":[{"a":3},{"a":4}]}"#, "[1,2]", "not json", r#"{"a\"b":1,"a":2}"#] {
            assert!(!has_duplicate_keys(text), "{text}");
        }
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
