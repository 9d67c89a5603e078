//! The event as `enrich-static` reads and edits it: a JSON tree decoded in one
//! pass from the event's text, whose strings and keys borrow from that text,
//! and whose objects are sorted vectors instead of maps.
//!
//! An [`Object`] holds what serde_json's `Map` would hold (keys in byte order, a
//! key given twice keeping its last value), so every rule sees what it saw when
//! events were decoded into `serde_json::Value`. Enrichment only adds and
//! replaces top-level keys; [`Doc`] records which, so that the output is the
//! input text with the new keys written before its closing brace, and the
//! whole event is encoded again only when a key the text already had changed.

pub use sluice_plugin_sdk::tree::{Node, Object};
use std::borrow::Cow;

/// The top-level object of one event, and what enrichment changed in it.
pub struct Doc<'a> {
    top: Object<'a>,
    /// Keys the text did not have, in the order they were added.
    added: Vec<String>,
    /// Keys the text had that were replaced or removed.
    changed: Vec<String>,
    /// An object in the text named a key twice: the output is encoded from
    /// the tree, so that it holds only what the rules saw.
    repeated: bool,
}

impl<'a> Doc<'a> {
    /// Decodes an event's text; an error for text that is not one JSON object.
    pub fn parse(text: &'a str) -> Result<Self, String> {
        match sluice_plugin_sdk::tree::decode(text) {
            Ok((Node::Object(top), repeated)) => Ok(Doc { top, added: Vec::new(), changed: Vec::new(), repeated }),
            Ok(_) => Err("event is not a JSON object".into()),
            Err(e) => Err(format!("event is not valid JSON: {e}")),
        }
    }

    pub fn top(&self) -> &Object<'a> {
        &self.top
    }

    pub fn get(&self, key: &str) -> Option<&Node<'a>> {
        self.top.get(key)
    }

    /// Whether `key` is missing or null.
    pub fn absent(&self, key: &str) -> bool {
        matches!(self.get(key), None | Some(Node::Null))
    }

    /// Notes that `key`, which the object has, is about to change.
    fn touch(&mut self, key: &str) {
        if !self.added.iter().any(|k| k == key) && !self.changed.iter().any(|k| k == key) {
            self.changed.push(key.to_string());
        }
    }

    /// Sets a top-level key.
    pub fn insert(&mut self, key: &str, value: Node<'a>) {
        match self.top.find(key) {
            Ok(i) => {
                self.touch(key);
                self.top.members_mut()[i].1 = value;
            }
            Err(i) => {
                // a key the text had, removed and now set again, is written with the changed ones
                if !self.changed.iter().any(|k| k == key) {
                    self.added.push(key.to_string());
                }
                self.top.members_mut().insert(i, (Cow::Owned(key.to_string()), value));
            }
        }
    }

    /// Removes a top-level key.
    pub fn remove(&mut self, key: &str) -> Option<Node<'a>> {
        let i = self.top.find(key).ok()?;
        match self.added.iter().position(|k| k == key) {
            Some(a) => {
                self.added.remove(a);
            }
            None => self.touch(key),
        }
        Some(self.top.members_mut().remove(i).1)
    }

    /// The array at `key` to append to: made one when absent or null, and the
    /// old value as its first item when it was something else.
    pub fn array(&mut self, key: &str) -> &mut Vec<Node<'a>> {
        match self.get(key) {
            Some(Node::Array(_)) => self.touch(key),
            None | Some(Node::Null) => self.insert(key, Node::Array(Vec::new())),
            Some(other) => {
                let old = other.clone();
                self.insert(key, Node::Array(vec![old]));
            }
        }
        let i = self.top.find(key).expect("just made");
        match &mut self.top.members_mut()[i].1 {
            Node::Array(items) => items,
            _ => unreachable!("just made an array"),
        }
    }

    /// Whether the event is as it came.
    pub fn unchanged(&self) -> bool {
        !self.repeated && self.added.is_empty() && self.changed.is_empty()
    }

    /// The event's text. Unless the text named a key twice (then the whole
    /// tree is encoded), it is the text as it came, with the members whose
    /// keys changed cut out, and the changed and added keys written at the
    /// end. When only keys were added, the cut is skipped: they go before the
    /// closing brace.
    pub fn finish(self, text: &str) -> String {
        if self.repeated {
            return serde_json::to_string(&self.top).expect("a JSON tree serializes");
        }
        let mut out = Vec::with_capacity(text.len() + 48 * (self.added.len() + self.changed.len()));
        // whether a member has been written: the next one needs a comma
        let mut any = if self.changed.is_empty() {
            let body = text.trim_end().strip_suffix('}').expect("the text decoded as one object");
            out.extend_from_slice(body.as_bytes());
            self.top.len() > self.added.len()
        } else {
            out.push(b'{');
            let mut any = false;
            for (span, key) in members(text) {
                if self.changed.iter().any(|k| *k == key) {
                    continue;
                }
                if any {
                    out.push(b',');
                }
                any = true;
                out.extend_from_slice(text[span].as_bytes());
            }
            any
        };
        for key in self.changed.iter().chain(&self.added) {
            // a removed key is gone from the tree
            let Some(value) = self.top.get(key) else { continue };
            if any {
                out.push(b',');
            }
            any = true;
            serde_json::to_writer(&mut out, key.as_str()).expect("a key serializes");
            out.push(b':');
            serde_json::to_writer(&mut out, value).expect("a JSON tree serializes");
        }
        out.push(b'}');
        String::from_utf8(out).expect("a str and serde_json's output are UTF-8")
    }
}

/// The members of an object's text (which must be valid JSON, as an event's
/// text is once decoded): each as its byte range (`"key":value`) and its key.
fn members(text: &str) -> impl Iterator<Item = (std::ops::Range<usize>, Cow<'_, str>)> {
    let b = text.as_bytes();
    let skip_space = |mut i: usize| {
        while b[i].is_ascii_whitespace() {
            i += 1;
        }
        i
    };
    // from a quote, to just past the closing one; most of an event's bytes
    // are in strings, and `memchr2` looks at 16 of them a step (simd128)
    let string_end = move |mut i: usize| {
        i += 1;
        loop {
            i += memchr::memchr2(b'"', b'\\', &b[i..]).expect("a decoded string is closed");
            match b[i] {
                b'"' => return i + 1,
                _ => i += 2,
            }
        }
    };
    let value_end = move |mut i: usize| match b[i] {
        b'"' => string_end(i),
        b'{' | b'[' => {
            let mut depth = 0usize;
            loop {
                match b[i] {
                    b'"' => i = string_end(i),
                    b'{' | b'[' => {
                        depth += 1;
                        i += 1;
                    }
                    b'}' | b']' => {
                        depth -= 1;
                        i += 1;
                        if depth == 0 {
                            return i;
                        }
                    }
                    _ => i += 1,
                }
            }
        }
        _ => {
            while !matches!(b[i], b',' | b'}' | b']') && !b[i].is_ascii_whitespace() {
                i += 1;
            }
            i
        }
    };
    let mut i = skip_space(0) + 1;
    std::iter::from_fn(move || {
        i = skip_space(i);
        if b[i] == b',' {
            i = skip_space(i + 1);
        }
        if b[i] == b'}' {
            return None;
        }
        let start = i;
        let key_end = string_end(i);
        let raw = &text[start + 1..key_end - 1];
        let key = if raw.contains('\\') {
            Cow::Owned(serde_json::from_str(&text[start..key_end]).expect("a decoded key decodes"))
        } else {
            Cow::Borrowed(raw)
        };
        i = skip_space(key_end) + 1; // the colon
        i = value_end(skip_space(i));
        Some((start..i, key))
    })
}

/// Runs `f` on `event` as the text path does, and decodes what it wrote.
#[cfg(test)]
pub fn edit(event: serde_json::Value, f: impl FnOnce(&mut Doc)) -> serde_json::Value {
    let text = event.to_string();
    let mut doc = Doc::parse(&text).expect("an object");
    f(&mut doc);
    serde_json::from_str(&doc.finish(&text)).expect("the output is JSON")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn tree(text: &str) -> Value {
        serde_json::to_value(Doc::parse(text).unwrap().top()).unwrap()
    }

    #[test]
    fn decodes_as_serde_json_does() {
        for text in [
            r#"{"b":1,"a":{"z":[1,2.5,-3,null,true,"x"],"y":{}},"c":"t\u00e9\n\"q\"","\u0061x":[]}"#,
            r#"{"k":1,"k":2,"j":{"m":"first","m":"last"}}"#,
            r#"{}"#,
            r#" { "n" : 18446744073709551615 , "f" : -1.5e300 } "#,
        ] {
            assert_eq!(tree(text), serde_json::from_str::<Value>(text).unwrap(), "{text}");
        }
        assert_eq!(Doc::parse("[1]").err().unwrap(), "event is not a JSON object");
        assert!(Doc::parse(r#"{"a":1} x"#).err().unwrap().starts_with("event is not valid JSON: trailing characters"));
        // strings without escapes borrow from the text
        let doc = Doc::parse(r#"{"a":"plain","b":"esc\"aped"}"#).unwrap();
        assert!(matches!(doc.get("a"), Some(Node::String(Cow::Borrowed("plain")))));
        assert!(matches!(doc.get("b"), Some(Node::String(Cow::Owned(_)))));
    }

    #[test]
    fn added_keys_are_written_into_the_text() {
        let text = "{\"b\":{\"x\":1},\"a\":\"\\u0041\"}  \n";
        let mut doc = Doc::parse(text).unwrap();
        assert!(doc.unchanged());
        doc.insert("z", Node::from("new".to_string()));
        doc.insert("c\"q", Node::Number(7.into()));
        doc.insert("z", Node::from("newer".to_string()));
        doc.array("tags").push(Node::from("t".to_string()));
        assert!(!doc.unchanged());
        // the text as it came, in its order and escapes, then the keys added
        assert_eq!(doc.finish(text), r#"{"b":{"x":1},"a":"\u0041","z":"newer","c\"q":7,"tags":["t"]}"#);

        let mut empty = Doc::parse("{ }").unwrap();
        empty.insert("a", Node::Null);
        assert_eq!(empty.finish("{ }"), r#"{ "a":null}"#);
    }

    #[test]
    fn changed_keys_are_cut_out_of_the_text_and_written_at_the_end() {
        let text = r#"{"b":1,"a":[1]}"#;
        let mut doc = Doc::parse(text).unwrap();
        doc.insert("b", Node::Number(2.into()));
        doc.insert("c", Node::Null);
        assert_eq!(doc.finish(text), r#"{"a":[1],"b":2,"c":null}"#);

        let mut doc = Doc::parse(text).unwrap();
        doc.array("a").push(Node::Number(2.into()));
        assert_eq!(doc.finish(text), r#"{"b":1,"a":[1,2]}"#);

        let mut doc = Doc::parse(text).unwrap();
        assert_eq!(doc.remove("b"), Some(Node::Number(1.into())));
        assert_eq!(doc.finish(text), r#"{"a":[1]}"#);
        let mut doc = Doc::parse(text).unwrap();
        doc.remove("b");
        doc.remove("a");
        assert_eq!(doc.finish(text), "{}");

        // a key the text had, removed and set again, is written once
        let mut doc = Doc::parse(text).unwrap();
        let b = doc.remove("b").unwrap();
        doc.insert("c", b);
        doc.insert("b", Node::Null);
        assert_eq!(doc.finish(text), r#"{"a":[1],"b":null,"c":1}"#);

        // an added key removed again leaves the text as it was
        let mut doc = Doc::parse(text).unwrap();
        doc.insert("c", Node::Null);
        doc.remove("c");
        assert!(doc.unchanged());
    }

    #[test]
    fn the_cut_finds_every_member_whatever_its_text() {
        // strings holding quotes, braces, commas and escapes; escaped keys; white space
        let text = " {\n \"s\" : \"a,}\\\"{[\" , \"o\":{\"x\":[1,{\"y\":\"]\"}],\"z\":{}},\"n\":-1.5e3 ,\"t\":true,\
                    \"\\u0065sc\":null,\"e\":[],\"f\":false,\
                    \"long\":\"more than sixteen bytes \\\\\\\" then more than sixteen again \\\\\" } \t";
        let decoded: Value = serde_json::from_str(text).unwrap();
        assert_eq!(decoded["long"], "more than sixteen bytes \\\" then more than sixteen again \\");
        let keys: Vec<&String> = decoded.as_object().unwrap().keys().collect();
        assert_eq!(keys.len(), 8);
        for key in keys {
            let mut doc = Doc::parse(text).unwrap();
            doc.insert(key, Node::from("new".to_string()));
            let mut expected = decoded.clone();
            expected[key] = "new".into();
            assert_eq!(serde_json::from_str::<Value>(&doc.finish(text)).unwrap(), expected, "{key}");

            let mut doc = Doc::parse(text).unwrap();
            doc.remove(key);
            expected.as_object_mut().unwrap().remove(key);
            assert_eq!(serde_json::from_str::<Value>(&doc.finish(text)).unwrap(), expected, "{key}");
        }
    }

    #[test]
    fn a_text_that_repeats_a_key_is_encoded_from_the_tree() {
        // what the text repeats is dropped: the output holds what the rules saw
        let text = r#"{"k":"secret","k":"seen","n":{"m":1,"m":2}}"#;
        let mut doc = Doc::parse(text).unwrap();
        assert!(!doc.unchanged());
        doc.insert("z", Node::Null);
        assert_eq!(doc.finish(text), r#"{"k":"seen","n":{"m":2},"z":null}"#);
    }

    #[test]
    fn paths_walk_objects() {
        let doc = Doc::parse(r#"{"a":{"b":{"c":3},"n":null},"s":"x"}"#).unwrap();
        assert_eq!(doc.top().path("a.b.c").unwrap().and_then(Node::as_i64), Some(3));
        assert_eq!(doc.top().path("a.n.c"), Ok(None));
        assert_eq!(doc.top().path("a.x"), Ok(None));
        assert_eq!(doc.top().path("s.t").err().unwrap(), "field `s`: expected an object, got a string");
    }
}
