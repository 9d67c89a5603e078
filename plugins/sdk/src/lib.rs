//! The Rust SDK for sluice plugins.
//!
//! A plugin is a type that implements [`Parser`] (raw records → events) or
//! [`Transform`] (events → events), plus one macro call that exports it as a
//! `sluice:plugin@0.1.0` component:
//!
//! ```
//! use sluice_plugin_sdk::{Event, Outcome, Transform, export_transform};
//!
//! struct Tag { value: String }
//!
//! impl Transform for Tag {
//!     fn init(config: serde_json::Value) -> Result<Self, String> {
//!         let value = config["value"].as_str().unwrap_or("sluice").to_string();
//!         Ok(Tag { value })
//!     }
//!     fn process(&mut self, mut event: Event) -> Outcome {
//!         event.insert("tag".into(), self.value.clone().into());
//!         Outcome::Keep(event)
//!     }
//! }
//!
//! export_transform!(Tag);
//! ```
//!
//! The bindings exist only when compiling for `wasm32`; on the host the macro
//! expands to nothing, so the plugin's logic is tested with plain `cargo test`.

pub mod fuzz;
pub mod json;
pub mod mem;
pub mod tree;

use serde_json::{Map, Value};

/// One event: a JSON object keyed by the flattened schema column names.
pub type Event = Map<String, Value>;

/// What a plugin did with one input.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// It became exactly one event.
    Keep(Event),
    /// Dropped on purpose; the text names the rule.
    Drop(String),
    /// It became zero or more events.
    Many(Vec<Event>),
    /// It could not be processed; the host quarantines it with this reason.
    Error(String),
    /// Transforms only: the event goes on as it came in, without being
    /// encoded again: the input text is passed on (a redactor that found
    /// nothing returns this). If the text names a key twice in one object
    /// (decoded, the last one wins, so the text holds more than the plugin
    /// saw), the event is encoded from its decoded form instead.
    Unchanged,
    /// One event, as JSON text (one object) that the plugin wrote itself,
    /// passed on without being decoded or encoded by the SDK: a transform's
    /// edit of its input (see [`Transform::process_text`]), a parser's event
    /// written with [`json::encode_with`]. The host checks it as it checks
    /// every event.
    Text(String),
    /// Zero or more events as [`Outcome::Text`] each.
    Texts(Vec<String>),
}

impl Outcome {
    /// Shorthand for `Outcome::Error(reason.to_string())`.
    pub fn error(reason: impl std::fmt::Display) -> Self {
        Outcome::Error(reason.to_string())
    }
}

/// Turns raw records (one line, or one body) into events.
pub trait Parser: Sized {
    /// Builds the plugin from its config table in the pipeline file.
    fn init(config: Value) -> Result<Self, String>;
    /// Parses one record. Called once per record of every batch, in order
    /// (by the default [`Parser::parse_batch`]).
    fn parse(&mut self, record: &[u8]) -> Outcome;

    /// Parses one batch: what the host calls. Must return exactly one outcome
    /// per record, in order (the host quarantines a batch whose count is off).
    ///
    /// The default calls [`Parser::parse`] on each record. Override it when
    /// records of one event arrive as several lines that must be joined (auditd):
    /// keep the joined event on one record and drop the others with a rule that
    /// says so, so that every record still has exactly one outcome. A batch may
    /// end in the middle of such a group, and the host may split a batch to
    /// isolate a faulting record, so a join can only see one batch.
    fn parse_batch(&mut self, records: &[Vec<u8>]) -> Vec<Outcome> {
        records.iter().map(|record| self.parse(record)).collect()
    }
}

/// Turns events into events: redact, enrich, filter.
pub trait Transform: Sized {
    /// Builds the plugin from its config table in the pipeline file.
    fn init(config: Value) -> Result<Self, String>;
    /// Processes one event. Called once per event of every batch, in order.
    fn process(&mut self, event: Event) -> Outcome;

    /// Optional: a look at the event's text before it is decoded. Return
    /// `true` only when [`Transform::process`] would return
    /// [`Outcome::Unchanged`] for this event and no object in the text names
    /// a key twice; the event's text then goes on as it came, and the event
    /// is neither decoded nor given to `process`. When unsure, return
    /// `false`. The default always does: every event is decoded.
    ///
    /// For a transform that leaves most events as they are (a redactor), a
    /// streaming read of the text that stops at the first thing it would
    /// change costs a fraction of decoding the event into a tree.
    fn unchanged(&mut self, text: &str) -> bool {
        let _ = text;
        false
    }

    /// Optional: processes the event from its text, for a transform that
    /// reads events its own way instead of as an [`Event`] map. Return `None`
    /// to have the event decoded and given to [`Transform::process`]; the
    /// default always does. Called after [`Transform::unchanged`] said no.
    ///
    /// A transform that adds a few keys to each event can decode the text
    /// into a tree that borrows from it, and write its additions into the
    /// text instead of encoding the whole event again ([`Outcome::Text`]).
    /// Having read the text itself, the plugin answers for all of it: an
    /// [`Outcome::Unchanged`] from here passes the text on exactly as it
    /// came, keys given twice included.
    fn process_text(&mut self, text: &str) -> Option<Outcome> {
        let _ = text;
        None
    }
}

/// The text of a record, or the outcome to return for it as it is: an error
/// naming the byte where it stops being UTF-8 (`record is not valid UTF-8 at
/// byte 13`), or a drop (`blank line`) when it is only white space.
pub fn record_text(record: &[u8]) -> Result<&str, Outcome> {
    let text = match std::str::from_utf8(record) {
        Ok(t) => t,
        Err(e) => return Err(Outcome::Error(format!("record is not valid UTF-8 at byte {}", e.valid_up_to()))),
    };
    if text.trim().is_empty() {
        return Err(Outcome::Drop("blank line".into()));
    }
    Ok(text)
}

/// [`Transform::process`] for a transform that reads events as text (its
/// [`Transform::process_text`] does the work): encodes the event, runs
/// `on_text` on the text, and decodes what it wrote back into an event.
pub fn process_as_text(event: Event, on_text: impl FnOnce(&str) -> Outcome) -> Outcome {
    let text = serde_json::to_string(&event).expect("a JSON map serializes");
    match on_text(&text) {
        Outcome::Text(out) => match serde_json::from_str(&out) {
            Ok(event) => Outcome::Keep(event),
            Err(e) => Outcome::error(format!("the plugin wrote an event that is not JSON: {e}")),
        },
        other => other,
    }
}

/// Sets the OCSF class columns: `class_uid`, `category_uid` (the class's
/// thousands), `activity_id` and `type_uid` (class × 100 + activity).
pub fn set_class(event: &mut Event, class_uid: i64, activity_id: i64) {
    event.insert("class_uid".into(), class_uid.into());
    event.insert("category_uid".into(), (class_uid / 1000).into());
    event.insert("activity_id".into(), activity_id.into());
    event.insert("type_uid".into(), (class_uid * 100 + activity_id).into());
}

/// `text` cut to its first `max_chars` characters, with `…` added when cut;
/// for quoting record values in error texts.
pub fn truncate(text: &str, max_chars: usize) -> String {
    match text.char_indices().nth(max_chars) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_string(),
    }
}

/// Microseconds since the Unix epoch for an RFC 3339 / ISO 8601 text, the form
/// that timestamp columns take on the wire. `None` when it does not parse.
pub fn parse_rfc3339_micros(text: &str) -> Option<i64> {
    let (date, rest) = text.split_at_checked(10)?;
    let mut parts = date.split('-');
    let year: i64 = parts.next()?.parse().ok()?;
    let month: u32 = parts.next()?.parse().ok()?;
    let day: u32 = parts.next()?.parse().ok()?;
    let rest = rest.strip_prefix(['T', 't', ' '])?;
    let (hms, mut tail) = rest.split_at_checked(8)?;
    let mut hms_parts = hms.split(':');
    let h: i64 = hms_parts.next()?.parse().ok()?;
    let m: i64 = hms_parts.next()?.parse().ok()?;
    let s: i64 = hms_parts.next()?.parse().ok()?;
    if h > 23 || m > 59 || s > 60 || !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return None;
    }
    let mut micros = 0i64;
    if let Some(frac) = tail.strip_prefix('.') {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        let (f, t) = frac.split_at(digits);
        let mut v: i64 = f[..digits.min(6)].parse().ok()?;
        for _ in digits.min(6)..6 {
            v *= 10;
        }
        micros = v;
        tail = t;
    }
    let offset_secs: i64 = match tail {
        "Z" | "z" | "" => 0,
        _ => {
            let sign = match tail.as_bytes()[0] {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let t = &tail[1..];
            let (oh, om) = match t.len() {
                5 if &t[2..3] == ":" => (&t[..2], &t[3..]),
                4 => (&t[..2], &t[2..]),
                2 => (t, "0"),
                _ => return None,
            };
            sign * (oh.parse::<i64>().ok()? * 3600 + om.parse::<i64>().ok()? * 60)
        }
    };
    let days = days_from_civil(year, month, day);
    Some(((days * 86_400 + h * 3600 + m * 60 + s - offset_secs) * 1_000_000) + micros)
}

/// Days since 1970-01-01 for a proleptic Gregorian date.
pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = month as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + day as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Writes a line to the host's log (a no-op outside Wasm).
pub fn log(level: Level, message: &str) {
    #[cfg(target_arch = "wasm32")]
    {
        use bindings::transform::sluice::plugin::types::Level as L;
        let l = match level {
            Level::Debug => L::Debug,
            Level::Info => L::Info,
            Level::Warn => L::Warn,
            Level::Error => L::Error,
        };
        bindings::transform::sluice::plugin::host::log(l, message);
    }
    #[cfg(not(target_arch = "wasm32"))]
    let _ = (level, message);
}

/// Log levels a plugin can use.
#[derive(Debug, Clone, Copy)]
pub enum Level {
    Debug,
    Info,
    Warn,
    Error,
}

#[doc(hidden)]
pub mod glue {
    //! What the export macros expand to. Not for direct use.
    use super::*;
    use std::cell::RefCell;

    pub enum Wire {
        Keep(String),
        Drop(String),
        Many(Vec<String>),
        Error(String),
    }

    /// The outcome as it crosses the boundary; `input` is the event's text
    /// for a transform, and whether it names a key twice (`None` for a
    /// parser, which cannot return `Unchanged`).
    fn to_wire(outcome: Outcome, input: Option<(String, bool)>) -> Wire {
        match outcome {
            Outcome::Keep(e) => Wire::Keep(json::encode(&e)),
            Outcome::Drop(r) => Wire::Drop(r),
            Outcome::Many(es) => Wire::Many(es.iter().map(json::encode).collect()),
            Outcome::Error(r) => Wire::Error(r),
            Outcome::Text(text) => Wire::Keep(text),
            Outcome::Texts(texts) => Wire::Many(texts),
            Outcome::Unchanged => match input {
                Some((text, false)) => Wire::Keep(text),
                // what the plugin saw: the last of each duplicated key
                Some((text, true)) => match serde_json::from_str::<Event>(&text) {
                    Ok(event) => Wire::Keep(json::encode(&event)),
                    Err(e) => Wire::Error(format!("event is not valid JSON: {e}")),
                },
                None => Wire::Error("a parser returned `Unchanged`, which only a transform may".into()),
            },
        }
    }

    pub fn init<T>(
        slot: &RefCell<Option<T>>,
        config: &str,
        build: fn(Value) -> Result<T, String>,
    ) -> Result<(), String> {
        let value: Value = if config.trim().is_empty() {
            Value::Object(Map::new())
        } else {
            serde_json::from_str(config).map_err(|e| format!("plugin config is not valid JSON: {e}"))?
        };
        *slot.borrow_mut() = Some(build(value)?);
        Ok(())
    }

    pub fn parse<T: Parser>(slot: &RefCell<Option<T>>, records: Vec<Vec<u8>>) -> Vec<Wire> {
        let mut guard = slot.borrow_mut();
        let Some(plugin) = guard.as_mut() else {
            return records.iter().map(|_| Wire::Error("plugin used before init".into())).collect();
        };
        plugin.parse_batch(&records).into_iter().map(|o| to_wire(o, None)).collect()
    }

    pub fn process<T: Transform>(slot: &RefCell<Option<T>>, events: Vec<String>) -> Vec<Wire> {
        let mut guard = slot.borrow_mut();
        let Some(plugin) = guard.as_mut() else {
            return events.iter().map(|_| Wire::Error("plugin used before init".into())).collect();
        };
        events
            .into_iter()
            .map(|text| {
                if plugin.unchanged(&text) {
                    return Wire::Keep(text);
                }
                if let Some(outcome) = plugin.process_text(&text) {
                    // the plugin read the text itself: an `Unchanged` passes it on as it is
                    return to_wire(outcome, Some((text, false)));
                }
                match json::decode_event(&text) {
                    Ok(Some((event, repeated))) => to_wire(plugin.process(event), Some((text, repeated))),
                    Ok(None) => Wire::Error("event is not a JSON object".into()),
                    Err(e) => Wire::Error(format!("event is not valid JSON: {e}")),
                }
            })
            .collect()
    }
}

#[cfg(target_arch = "wasm32")]
#[doc(hidden)]
pub mod bindings {
    pub mod parser {
        wit_bindgen::generate!({
            path: "../../wit/v0.1.0",
            world: "parser-plugin",
            pub_export_macro: true,
            export_macro_name: "export_parser_world",
            default_bindings_module: "sluice_plugin_sdk::bindings::parser",
        });
    }
    pub mod transform {
        wit_bindgen::generate!({
            path: "../../wit/v0.1.0",
            world: "transform-plugin",
            pub_export_macro: true,
            export_macro_name: "export_transform_world",
            default_bindings_module: "sluice_plugin_sdk::bindings::transform",
        });
    }
}

/// Exports a [`Parser`] as the plugin's `parser` world.
#[macro_export]
macro_rules! export_parser {
    ($plugin:ty) => {
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            use $crate::bindings::parser::exports::sluice::plugin::parser::{Guest, Outcome, PluginInfo};
            use $crate::glue::Wire;
            ::std::thread_local! {
                static STATE: ::std::cell::RefCell<Option<$plugin>> = const { ::std::cell::RefCell::new(None) };
            }
            struct Export;
            impl Guest for Export {
                fn info() -> PluginInfo {
                    PluginInfo { name: env!("CARGO_PKG_NAME").into(), version: env!("CARGO_PKG_VERSION").into() }
                }
                fn init(config: String) -> Result<(), String> {
                    STATE.with(|s| $crate::glue::init(s, &config, <$plugin as $crate::Parser>::init))
                }
                fn parse(records: Vec<Vec<u8>>) -> Vec<Outcome> {
                    STATE
                        .with(|s| $crate::glue::parse::<$plugin>(s, records))
                        .into_iter()
                        .map(|w| match w {
                            Wire::Keep(e) => Outcome::Keep(e),
                            Wire::Drop(r) => Outcome::Drop(r),
                            Wire::Many(es) => Outcome::Many(es),
                            Wire::Error(r) => Outcome::Error(r),
                        })
                        .collect()
                }
            }
    $crate::bindings::parser::export_parser_world!(Export with_types_in $crate::bindings::parser);
        };
    };
}

/// Exports a [`Transform`] as the plugin's `transform` world.
#[macro_export]
macro_rules! export_transform {
    ($plugin:ty) => {
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            use $crate::bindings::transform::exports::sluice::plugin::transform::{Guest, Outcome, PluginInfo};
            use $crate::glue::Wire;
            ::std::thread_local! {
                static STATE: ::std::cell::RefCell<Option<$plugin>> = const { ::std::cell::RefCell::new(None) };
            }
            struct Export;
            impl Guest for Export {
                fn info() -> PluginInfo {
                    PluginInfo { name: env!("CARGO_PKG_NAME").into(), version: env!("CARGO_PKG_VERSION").into() }
                }
                fn init(config: String) -> Result<(), String> {
                    STATE.with(|s| $crate::glue::init(s, &config, <$plugin as $crate::Transform>::init))
                }
                fn process(events: Vec<String>) -> Vec<Outcome> {
                    STATE
                        .with(|s| $crate::glue::process::<$plugin>(s, events))
                        .into_iter()
                        .map(|w| match w {
                            Wire::Keep(e) => Outcome::Keep(e),
                            Wire::Drop(r) => Outcome::Drop(r),
                            Wire::Many(es) => Outcome::Many(es),
                            Wire::Error(r) => Outcome::Error(r),
                        })
                        .collect()
                }
            }
    $crate::bindings::transform::export_transform_world!(Export with_types_in $crate::bindings::transform);
        };
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Upper;

    impl Parser for Upper {
        fn init(_: Value) -> Result<Self, String> {
            Ok(Upper)
        }
        fn parse(&mut self, record: &[u8]) -> Outcome {
            let mut event = Event::new();
            event.insert("message".into(), String::from_utf8_lossy(record).to_uppercase().into());
            Outcome::Keep(event)
        }
    }

    struct Nothing;

    impl Transform for Nothing {
        fn init(_: Value) -> Result<Self, String> {
            Ok(Nothing)
        }
        fn process(&mut self, _: Event) -> Outcome {
            Outcome::Unchanged
        }
    }

    /// The texts of wires that must all be `Keep`.
    fn kept_texts(wires: Vec<glue::Wire>) -> Vec<String> {
        wires
            .into_iter()
            .map(|w| match w {
                glue::Wire::Keep(text) => text,
                _ => panic!("expected keep"),
            })
            .collect()
    }

    #[test]
    fn unchanged_passes_the_text_on_unless_it_says_more_than_its_decoded_form() {
        let slot = std::cell::RefCell::new(Some(Nothing));
        let texts = [
            r#"{"b":1, "a":{"x":"y"}}"#,
            // decoded, `password` is null: the text must not pass on with the secret in it
            r#"{"a":{"password":"hunter2","password":null}}"#,
        ];
        let kept = kept_texts(glue::process(&slot, texts.iter().map(|t| t.to_string()).collect()));
        assert_eq!(kept, [texts[0], r#"{"a":{"password":null}}"#]);
    }

    /// Says "unchanged" for texts that start with `{"ok"`; counts `process` calls.
    struct Scans(usize);

    impl Transform for Scans {
        fn init(_: Value) -> Result<Self, String> {
            Ok(Scans(0))
        }
        fn unchanged(&mut self, text: &str) -> bool {
            text.starts_with(r#"{"ok""#)
        }
        fn process(&mut self, mut event: Event) -> Outcome {
            self.0 += 1;
            event.insert("seen".into(), true.into());
            Outcome::Keep(event)
        }
    }

    #[test]
    fn a_text_the_transform_calls_unchanged_passes_on_without_being_decoded() {
        let slot = std::cell::RefCell::new(Some(Scans(0)));
        // the first is not even JSON: nothing decodes it
        let texts = [r#"{"ok" not json"#, r#"{"b":1}"#];
        let kept = kept_texts(glue::process(&slot, texts.iter().map(|t| t.to_string()).collect()));
        assert_eq!(kept, [texts[0], r#"{"b":1,"seen":true}"#]);
        assert_eq!(slot.borrow().as_ref().unwrap().0, 1);
    }

    /// Reads texts itself: `T` texts it rewrites, `U` texts it leaves as
    /// they are, the rest it leaves to `process`.
    struct Reads;

    impl Transform for Reads {
        fn init(_: Value) -> Result<Self, String> {
            Ok(Reads)
        }
        fn process_text(&mut self, text: &str) -> Option<Outcome> {
            match text.as_bytes().get(2) {
                Some(b'T') => Some(Outcome::Text(text.replace('T', "W"))),
                Some(b'U') => Some(Outcome::Unchanged),
                _ => None,
            }
        }
        fn process(&mut self, mut event: Event) -> Outcome {
            event.insert("seen".into(), true.into());
            Outcome::Keep(event)
        }
    }

    #[test]
    fn a_transform_that_reads_the_text_itself_writes_its_own_output() {
        let slot = std::cell::RefCell::new(Some(Reads));
        let texts = [r#"{"T":1}"#, r#"{"U":1,"U":2}"#, r#"{"b":1,"b":2}"#];
        let kept = kept_texts(glue::process(&slot, texts.iter().map(|t| t.to_string()).collect()));
        // the plugin that read the text answers for all of it; `process` sees the decoded event
        assert_eq!(kept, [r#"{"W":1}"#, texts[1], r#"{"b":2,"seen":true}"#]);
    }

    #[test]
    fn a_parser_may_write_its_events_as_text() {
        // one event per record, or as many as the record has lines
        struct Lines;
        impl Parser for Lines {
            fn init(_: Value) -> Result<Self, String> {
                Ok(Lines)
            }
            fn parse(&mut self, record: &[u8]) -> Outcome {
                let text = String::from_utf8_lossy(record);
                match text.lines().count() {
                    1 => Outcome::Text(text.into_owned()),
                    _ => Outcome::Texts(text.lines().map(str::to_string).collect()),
                }
            }
        }
        let wires = glue::parse(&std::cell::RefCell::new(Some(Lines)), vec![b"{}".to_vec(), b"{\"a\":1}\n{}".to_vec()]);
        assert!(
            matches!(&wires[..], [glue::Wire::Keep(e), glue::Wire::Many(es)] if e == "{}" && es == &[r#"{"a":1}"#, "{}"])
        );
    }

    #[test]
    fn encode_with_writes_what_encode_writes_for_the_event_with_the_member() {
        let record = r#"{"z":[1,"x\u0001",{"b":null,"a":true}],"q":"é\"","n":-1.5e3}"#;
        let tree = crate::json::tree(record.as_bytes()).unwrap();
        let node = tree::Node::Object(tree);
        let value = node.to_value();
        for keys in [&[][..], &["a"], &["m", "zz"], &["m", "n", "unmapped"], &["unmapped"], &["v", "w"]] {
            let mut event: Event = keys.iter().map(|k| (k.to_string(), Value::from(format!("{k}!")))).collect();
            let text = json::encode_with(&event, "n", &node);
            event.insert("n".into(), value.clone());
            assert_eq!(text, json::encode(&event), "{keys:?}");
            assert_eq!(text, serde_json::to_string(&event).unwrap());
        }
    }

    #[test]
    fn default_parse_batch_maps_parse_over_the_records() {
        let slot = std::cell::RefCell::new(Some(Upper));
        let texts = kept_texts(glue::parse(&slot, vec![b"a".to_vec(), b"b".to_vec()]));
        assert_eq!(texts, [r#"{"message":"A"}"#, r#"{"message":"B"}"#]);
    }

    #[test]
    fn rfc3339_to_micros() {
        assert_eq!(parse_rfc3339_micros("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_rfc3339_micros("2026-11-01T00:00:01.5Z"), Some(1_793_491_201_500_000));
        assert_eq!(parse_rfc3339_micros("2026-11-01T01:00:00+01:00"), Some(1_793_491_200_000_000));
        assert_eq!(parse_rfc3339_micros("2026-11-01T00:00:00.123456789Z"), Some(1_793_491_200_123_456));
        assert_eq!(parse_rfc3339_micros("2026-13-01T00:00:00Z"), None);
        assert_eq!(parse_rfc3339_micros("yesterday"), None);
    }
}
