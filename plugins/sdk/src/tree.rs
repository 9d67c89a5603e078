//! A JSON tree decoded in one pass from a text, whose strings and keys
//! borrow from that text, and whose objects are sorted vectors instead of
//! maps: for reading a record or an event without allocating each key and
//! string (`enrich-static` edits events as one; parsers read records).
//!
//! An [`Object`] holds what serde_json's `Map` would hold (keys in byte
//! order, a key given twice keeping its last value), so code that reads it
//! sees what it saw in a `serde_json::Value`.

use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};
use serde_json::{Map, Number, Value};
use std::borrow::Cow;
use std::cell::Cell;
use std::fmt;

/// Decodes `text` (one JSON value, white space around it allowed). The flag
/// says whether an object in it, at any depth, named a key twice.
pub fn decode(text: &str) -> Result<(Node<'_>, bool), serde_json::Error> {
    let repeated = Cell::new(false);
    let mut de = serde_json::Deserializer::from_str(text);
    let node = Seed { repeated: &repeated }.deserialize(&mut de)?;
    de.end()?;
    Ok((node, repeated.get()))
}

/// A JSON value; strings borrow from the event's text unless they had escapes.
#[derive(Debug, Clone, PartialEq)]
pub enum Node<'a> {
    Null,
    Bool(bool),
    Number(Number),
    String(Cow<'a, str>),
    Array(Vec<Node<'a>>),
    Object(Object<'a>),
}

/// A JSON object: members sorted by key, one per key.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Object<'a>(Vec<(Cow<'a, str>, Node<'a>)>);

impl<'a> Node<'a> {
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Node::String(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Node::Number(n) => n.as_i64(),
            _ => None,
        }
    }

    pub fn as_object(&self) -> Option<&Object<'a>> {
        match self {
            Node::Object(o) => Some(o),
            _ => None,
        }
    }

    /// What the value is, for error texts (as [`crate::json::kind`]).
    pub fn kind(&self) -> &'static str {
        match self {
            Node::Null => "null",
            Node::Bool(_) => "a boolean",
            Node::Number(_) => "a number",
            Node::String(_) => "a string",
            Node::Array(_) => "an array",
            Node::Object(_) => "an object",
        }
    }

    /// The same value as a `serde_json::Value`.
    pub fn to_value(&self) -> Value {
        match self {
            Node::Null => Value::Null,
            Node::Bool(b) => Value::Bool(*b),
            Node::Number(n) => Value::Number(n.clone()),
            Node::String(s) => Value::String(s.to_string()),
            Node::Array(items) => Value::Array(items.iter().map(Node::to_value).collect()),
            Node::Object(o) => Value::Object(o.to_map()),
        }
    }

    /// Appends the value's JSON text: the bytes `serde_json::to_string`
    /// writes for the same value.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        match self {
            Node::Null => out.extend_from_slice(b"null"),
            Node::Bool(true) => out.extend_from_slice(b"true"),
            Node::Bool(false) => out.extend_from_slice(b"false"),
            Node::Number(n) => serde_json::to_writer(&mut *out, n).expect("writing to memory cannot fail"),
            Node::String(s) => crate::json::write_str(out, s),
            Node::Array(items) => {
                out.push(b'[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    item.write_json(out);
                }
                out.push(b']');
            }
            Node::Object(o) => o.write_json(out),
        }
    }

    /// A string as itself, a number as its JSON text (a lookup key, a glob's subject).
    pub fn text(&self) -> Option<Cow<'_, str>> {
        match self {
            Node::String(s) => Some(Cow::Borrowed(s)),
            Node::Number(n) => Some(Cow::Owned(n.to_string())),
            _ => None,
        }
    }
}

impl From<&Value> for Node<'static> {
    fn from(value: &Value) -> Self {
        match value {
            Value::Null => Node::Null,
            Value::Bool(b) => Node::Bool(*b),
            Value::Number(n) => Node::Number(n.clone()),
            Value::String(s) => Node::String(Cow::Owned(s.clone())),
            Value::Array(items) => Node::Array(items.iter().map(Node::from).collect()),
            Value::Object(map) => Node::Object(
                Object::from_members(map.iter().map(|(k, v)| (Cow::Owned(k.clone()), Node::from(v))).collect()).0,
            ),
        }
    }
}

impl<'a> From<String> for Node<'a> {
    fn from(s: String) -> Self {
        Node::String(Cow::Owned(s))
    }
}

impl<'a> From<&'a str> for Node<'a> {
    fn from(s: &'a str) -> Self {
        Node::String(Cow::Borrowed(s))
    }
}

/// Members in any order; of a key given twice, the last stays.
impl<'a> FromIterator<(Cow<'a, str>, Node<'a>)> for Object<'a> {
    fn from_iter<I: IntoIterator<Item = (Cow<'a, str>, Node<'a>)>>(members: I) -> Self {
        Object::from_members(members.into_iter().collect()).0
    }
}

/// Key order (`str` order). Most keys of an object differ in their first
/// byte, which is compared before `memcmp` is called: a lookup's few
/// comparisons of short keys were a third of `enrich-static`'s native time.
pub fn key_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    match (a.as_bytes().first(), b.as_bytes().first()) {
        (Some(x), Some(y)) if x != y => x.cmp(y),
        _ => a.cmp(b),
    }
}

impl<'a> Object<'a> {
    /// Sorts decoded members by key; of a key given twice, the last stays
    /// (and the flag says so).
    fn from_members(mut members: Vec<(Cow<'a, str>, Node<'a>)>) -> (Self, bool) {
        let before = members.len();
        if !members.is_sorted_by(|a, b| key_cmp(&a.0, &b.0).is_lt()) {
            // stable: members with one key keep their text order
            members.sort_by(|a, b| key_cmp(&a.0, &b.0));
            members.dedup_by(|later, kept| {
                let same = later.0 == kept.0;
                if same {
                    std::mem::swap(&mut later.1, &mut kept.1);
                }
                same
            });
        }
        let repeated = members.len() < before;
        (Object(members), repeated)
    }

    /// Where `key` is (`Ok`), or would go (`Err`), in [`Object::members_mut`].
    pub fn find(&self, key: &str) -> Result<usize, usize> {
        self.0.binary_search_by(|(k, _)| key_cmp(k, key))
    }

    pub fn get(&self, key: &str) -> Option<&Node<'a>> {
        self.find(key).ok().map(|i| &self.0[i].1)
    }

    /// Sets `key` to `value`, replacing the value it had.
    pub fn insert(&mut self, key: impl Into<Cow<'a, str>>, value: Node<'a>) {
        let key = key.into();
        match self.find(&key) {
            Ok(i) => self.0[i].1 = value,
            Err(i) => self.0.insert(i, (key, value)),
        }
    }

    /// Appends the object's JSON text (as [`Node::write_json`]).
    pub fn write_json(&self, out: &mut Vec<u8>) {
        out.push(b'{');
        for (i, (key, value)) in self.0.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            crate::json::write_str(out, key);
            out.push(b':');
            value.write_json(out);
        }
        out.push(b'}');
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The same object as a `serde_json::Map`.
    pub fn to_map(&self) -> Map<String, Value> {
        self.0.iter().map(|(k, v)| (k.to_string(), v.to_value())).collect()
    }

    /// The string at a dotted `path` (see [`Object::path`]); `None` when
    /// missing, null or empty, an error naming the path when it is not a
    /// string (as [`crate::json::string`]).
    pub fn string(&self, path: &str) -> Result<Option<&str>, String> {
        match self.path(path)? {
            None => Ok(None),
            Some(Node::String(s)) => Ok((!s.is_empty()).then_some(s.as_ref())),
            Some(other) => Err(format!("field `{path}`: expected a string, got {}", other.kind())),
        }
    }

    /// The string at `name` in this object, itself the object at `path` in
    /// a record: what `record.string("{path}.{name}")` gives, without
    /// building that path (the error text names it whole).
    pub fn string_under(&self, path: &str, name: &str) -> Result<Option<&str>, String> {
        self.string(name).map_err(|e| e.replacen("field `", &format!("field `{path}."), 1))
    }

    /// Members in key order (the order serde_json's `Map` iterates in).
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Node<'a>)> {
        self.0.iter().map(|(k, v)| (k.as_ref(), v))
    }

    /// The members in key order, with keys that borrow from the text as
    /// long as the tree does (to build another tree from).
    pub fn members(&self) -> &[(Cow<'a, str>, Node<'a>)] {
        &self.0
    }

    /// The members, sorted by key, for editing in place: whoever edits them
    /// keeps them sorted, one per key.
    pub fn members_mut(&mut self) -> &mut Vec<(Cow<'a, str>, Node<'a>)> {
        &mut self.0
    }

    /// The value at a dotted `path` of nested objects (`userIdentity.userName`);
    /// `None` when missing or null, an error naming the path so far when
    /// something on the way is not an object (as [`crate::json::get`]).
    pub fn path(&self, path: &str) -> Result<Option<&Node<'a>>, String> {
        let mut current = self;
        let mut walked = 0;
        let mut parts = path.split('.').peekable();
        while let Some(part) = parts.next() {
            walked += part.len() + 1;
            match current.get(part) {
                None | Some(Node::Null) => return Ok(None),
                Some(value) if parts.peek().is_none() => return Ok(Some(value)),
                Some(Node::Object(next)) => current = next,
                Some(other) => {
                    return Err(format!("field `{}`: expected an object, got {}", &path[..walked - 1], other.kind()));
                }
            }
        }
        Ok(None)
    }
}

/// The value's JSON text.
impl fmt::Display for Node<'_> {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(&serde_json::to_string(self).map_err(|_| fmt::Error)?)
    }
}

impl Serialize for Node<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Node::Null => s.serialize_unit(),
            Node::Bool(b) => s.serialize_bool(*b),
            Node::Number(n) => n.serialize(s),
            Node::String(t) => s.serialize_str(t),
            Node::Array(items) => {
                let mut seq = s.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(item)?;
                }
                seq.end()
            }
            Node::Object(o) => o.serialize(s),
        }
    }
}

impl Serialize for Object<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            map.serialize_entry(k.as_ref(), v)?;
        }
        map.end()
    }
}

/// Decodes one value, noting in `repeated` whether an object named a key twice.
#[derive(Clone, Copy)]
struct Seed<'s> {
    repeated: &'s Cell<bool>,
}

impl<'de> DeserializeSeed<'de> for Seed<'_> {
    type Value = Node<'de>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Node<'de>, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Seed<'_> {
    type Value = Node<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, b: bool) -> Result<Node<'de>, E> {
        Ok(Node::Bool(b))
    }
    fn visit_i64<E>(self, n: i64) -> Result<Node<'de>, E> {
        Ok(Node::Number(n.into()))
    }
    fn visit_u64<E>(self, n: u64) -> Result<Node<'de>, E> {
        Ok(Node::Number(n.into()))
    }
    fn visit_f64<E>(self, n: f64) -> Result<Node<'de>, E> {
        // as serde_json's `Value`: a float JSON cannot hold is null
        Ok(Number::from_f64(n).map_or(Node::Null, Node::Number))
    }
    fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Node<'de>, E> {
        Ok(Node::String(Cow::Borrowed(s)))
    }
    fn visit_str<E>(self, s: &str) -> Result<Node<'de>, E> {
        Ok(Node::String(Cow::Owned(s.to_string())))
    }
    fn visit_string<E>(self, s: String) -> Result<Node<'de>, E> {
        Ok(Node::String(Cow::Owned(s)))
    }
    fn visit_unit<E>(self) -> Result<Node<'de>, E> {
        Ok(Node::Null)
    }
    fn visit_none<E>(self) -> Result<Node<'de>, E> {
        Ok(Node::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Node<'de>, D::Error> {
        d.deserialize_any(self)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node<'de>, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(item) = seq.next_element_seed(self)? {
            items.push(item);
        }
        Ok(Node::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node<'de>, A::Error> {
        let mut members = Vec::with_capacity(map.size_hint().unwrap_or(0));
        while let Some(key) = map.next_key_seed(Key)? {
            members.push((key, map.next_value_seed(self)?));
        }
        let (object, repeated) = Object::from_members(members);
        if repeated {
            self.repeated.set(true);
        }
        Ok(Node::Object(object))
    }
}

/// A key, borrowed from the text when it has no escapes.
struct Key;

impl<'de> DeserializeSeed<'de> for Key {
    type Value = Cow<'de, str>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Cow<'de, str>, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for Key {
    type Value = Cow<'de, str>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a key")
    }
    fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Cow<'de, str>, E> {
        Ok(Cow::Borrowed(s))
    }
    fn visit_str<E>(self, s: &str) -> Result<Cow<'de, str>, E> {
        Ok(Cow::Owned(s.to_string()))
    }
    fn visit_string<E>(self, s: String) -> Result<Cow<'de, str>, E> {
        Ok(Cow::Owned(s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json;

    /// Keys sort as `str`s do, whether they differ in the first byte or
    /// later, are prefixes of each other, empty, or not ASCII.
    #[test]
    fn keys_sort_as_strings_do() {
        let keys = [
            "",
            "a",
            "ab",
            "abc",
            "abd",
            "b",
            "B",
            "_x",
            "\u{7f}",
            "é",
            "éa",
            "ü",
            "zz",
            "actor_user_uid",
            "actor_user_name",
        ];
        for a in keys {
            for b in keys {
                assert_eq!(key_cmp(a, b), a.cmp(b), "{a:?} {b:?}");
            }
        }
        let members = keys.iter().rev().map(|k| (Cow::Borrowed(*k), Node::Null)).collect();
        let (object, repeated) = Object::from_members(members);
        assert!(!repeated);
        let mut sorted = keys.to_vec();
        sorted.sort();
        assert_eq!(object.iter().map(|(k, _)| k).collect::<Vec<_>>(), sorted);
        for (i, k) in sorted.iter().enumerate() {
            assert_eq!(object.find(k), Ok(i));
        }
        assert_eq!(object.find("aa"), sorted.binary_search(&"aa"));
        assert_eq!(object.find("aa"), Err(4));
    }

    #[test]
    fn reads_as_the_map_helpers_read() {
        let text = r#"{"a":{"b":"x","e":"","n":null,"i":7},"s":"t","k":[1,{"z":"\u00e9"}],"f":-1.5e300,"a":{"b":"y"}}"#;
        let (node, repeated) = decode(text).unwrap();
        assert!(repeated);
        let Node::Object(object) = node else { panic!("an object") };
        let map: Map<String, Value> = serde_json::from_str(text).unwrap();
        assert_eq!(Value::Object(object.to_map()), Value::Object(map.clone()));
        assert_eq!(Node::Object(object.clone()).to_string(), serde_json::to_string(&map).unwrap());
        for path in ["a.b", "a.e", "a.n", "a.i", "a.x", "s", "s.t", "k", "k.z", "f", "x.y", "a.b.c"] {
            assert_eq!(object.string(path), json::string(&map, path), "{path}");
            assert_eq!(
                object.path(path).map(|n| n.map(Node::to_value)),
                json::get(&map, path).map(|v| v.cloned()),
                "{path}"
            );
        }
        let Some(Node::Object(inner)) = object.get("a") else { panic!("an object") };
        let (Node::Object(outer), _) = decode(r#"{"a":{"b":"x","e":"","n":null,"i":7,"o":{"p":"q"}}}"#).unwrap() else {
            panic!("an object")
        };
        let Some(Node::Object(nested)) = outer.get("a") else { panic!("an object") };
        for (inner, outer) in [(inner, &object), (nested, &outer)] {
            for name in ["b", "e", "n", "i", "x", "b.c", "o", "o.p", "o.p.q"] {
                assert_eq!(inner.string_under("a", name), outer.string(&format!("a.{name}")), "{name}");
            }
        }
        assert_eq!(nested.string_under("a", "i").unwrap_err(), "field `a.i`: expected a string, got a number");
        assert_eq!(nested.string_under("a", "b.c").unwrap_err(), "field `a.b`: expected an object, got a string");
        assert_eq!(json::tree(text.as_bytes()).unwrap(), object);
        for bad in ["[1]", "{\"a\":", "", "\u{ff}"] {
            let want = json::object(bad.as_bytes()).unwrap_err();
            assert_eq!(format!("{:?}", json::tree(bad.as_bytes()).unwrap_err()), format!("{want:?}"), "{bad}");
        }
    }
}
