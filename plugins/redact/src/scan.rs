//! Whether an event's text would come out of [`Redact::process`] unchanged,
//! found by reading the text once, without decoding it into a tree.
//!
//! Most events hold nothing to redact. For them, decoding the text into a
//! `Value` tree (and the glue's check for repeated keys) was about half of
//! the plugin's time. This scan reads the text with serde_json's streaming
//! decoder instead: keys and strings are borrowed from the text when they
//! have no escapes, nothing is built, and it stops at the first thing that
//! may change. It makes the same decisions as the walk in `lib.rs` (key
//! classes, preserved keys, rule scopes by the keys on the path, the value
//! rules on every string, the card rule on integers) and errs one way only:
//! when it is not sure (a sensitive key whose value is an object, a
//! name/value pair whose name is sensitive, a key given twice in one object,
//! text that is not a JSON object), it says "may change", and the event goes
//! through the full walk: decoded into a tree that borrows from its text
//! (`sluice_plugin_sdk::tree`), walked, and written again if anything changed.

use crate::keys::KeyClass;
use crate::{Redact, already_masked, checks};
use serde::de::{DeserializeSeed, Deserializer, Error, MapAccess, SeqAccess, Visitor};
use std::hash::BuildHasher;

/// What the key above a value makes of it.
#[derive(Clone, Copy, PartialEq)]
enum Under {
    /// No key decides anything (array items, a plain key): the value rules run.
    Plain,
    /// A key `preserve` names: nothing under it is touched.
    Preserved,
    /// A sensitive key: only null, a boolean or an already masked string stays.
    Strong,
    /// A `*key` / `*auth` key: a credential-like string is masked whole.
    Weak,
}

/// The state of one scan.
pub(crate) struct Scan<'r> {
    redact: &'r Redact,
    /// Rules (by scope bit) that a key on the path turns off.
    skip: u128,
    /// Rules (by scope bit) whose `only_keys` a key on the path matches.
    only: u128,
    /// Hashes of the keys of the objects open on the path, for repeated keys.
    keys: Vec<u64>,
}

/// Why a scan stopped early; never shown (the event then takes the full walk).
const MAY_CHANGE: &str = "may change";

impl<'r> Scan<'r> {
    /// `true` when [`Redact::process`] would return `Unchanged` for `text` and
    /// no object in it names a key twice; `false` when it may not.
    pub(crate) fn unchanged(redact: &'r Redact, text: &str) -> bool {
        let mut scan = Scan { redact, skip: 0, only: 0, keys: Vec::with_capacity(64) };
        let mut decoder = serde_json::Deserializer::from_str(text);
        // the top level must be an object: anything else is an error for the walk to report
        let top = (&mut decoder).deserialize_map(Value { scan: &mut scan, under: Under::Plain, pair_name: false });
        top.is_ok() && decoder.end().is_ok()
    }

    /// Whether a string under `under` may change. `pair_name`: the string is
    /// the name of a name/value pair, which the walk reads whatever the key's
    /// own class (preserved, sensitive, already masked): a name that names a
    /// secret changes how the pair's value is read.
    fn string_changes(&self, text: &str, under: Under, pair_name: bool) -> bool {
        if pair_name && self.redact.rules.keys.classify(text, false) != KeyClass::Plain {
            return true;
        }
        match under {
            Under::Preserved => false,
            Under::Strong => !already_masked(text),
            Under::Weak if checks::credential_like(text) => !already_masked(text),
            _ => self.redact.finds(text, None, self.skip, self.only),
        }
    }

    /// Whether an integer under `under` may change: a card number written as a number.
    fn integer_changes(&self, value: u64, under: Under) -> bool {
        match under {
            Under::Preserved => false,
            Under::Strong => true,
            _ => {
                let Some(card) = self.redact.card_rule else { return false };
                crate::CARD_RANGE.contains(&value)
                    && self.redact.finds(&value.to_string(), Some(card), self.skip, self.only)
            }
        }
    }
}

/// One value and the key above it.
struct Value<'s, 'r> {
    scan: &'s mut Scan<'r>,
    under: Under,
    /// The key above is the name field of a name/value pair.
    pair_name: bool,
}

impl<'de> DeserializeSeed<'de> for Value<'_, '_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Value<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E: Error>(self, _: bool) -> Result<(), E> {
        Ok(())
    }

    fn visit_unit<E: Error>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_u64<E: Error>(self, v: u64) -> Result<(), E> {
        if self.scan.integer_changes(v, self.under) { Err(E::custom(MAY_CHANGE)) } else { Ok(()) }
    }

    fn visit_i64<E: Error>(self, _: i64) -> Result<(), E> {
        // negative: never a card; under a sensitive key, replaced whole
        if self.under == Under::Strong { Err(E::custom(MAY_CHANGE)) } else { Ok(()) }
    }

    fn visit_f64<E: Error>(self, _: f64) -> Result<(), E> {
        self.visit_i64(0)
    }

    fn visit_str<E: Error>(self, v: &str) -> Result<(), E> {
        if self.scan.string_changes(v, self.under, self.pair_name) { Err(E::custom(MAY_CHANGE)) } else { Ok(()) }
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut items: A) -> Result<(), A::Error> {
        let under = match self.under {
            // a sensitive key's array is replaced whole or entered: not worth following here
            Under::Strong => return Err(A::Error::custom(MAY_CHANGE)),
            Under::Preserved => Under::Preserved,
            Under::Plain | Under::Weak => Under::Plain,
        };
        while items.next_element_seed(Value { scan: &mut *self.scan, under, pair_name: false })?.is_some() {}
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut fields: A) -> Result<(), A::Error> {
        if self.under == Under::Strong {
            return Err(A::Error::custom(MAY_CHANGE));
        }
        let preserved = self.under == Under::Preserved;
        let start = self.scan.keys.len();
        while let Some((under, pair_name, scope)) =
            fields.next_key_seed(Key { scan: &mut *self.scan, start, preserved })?
        {
            fields.next_value_seed(Value { scan: &mut *self.scan, under, pair_name })?;
            (self.scan.skip, self.scan.only) = scope;
        }
        self.scan.keys.truncate(start);
        Ok(())
    }
}

/// One key of an object whose keys (hashed) start at `start` in `Scan::keys`.
/// Gives what the key makes of its value, whether it names a name/value
/// pair's name, and the rule scopes to go back to after the value.
struct Key<'s, 'r> {
    scan: &'s mut Scan<'r>,
    start: usize,
    /// Under a preserved key: only repeated keys matter.
    preserved: bool,
}

impl<'de> DeserializeSeed<'de> for Key<'_, '_> {
    type Value = (Under, bool, (u128, u128));
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for Key<'_, '_> {
    type Value = (Under, bool, (u128, u128));

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a key")
    }

    fn visit_str<E: Error>(self, key: &str) -> Result<Self::Value, E> {
        let scan = self.scan;
        let hash = foldhash::fast::FixedState::with_seed(0).hash_one(key);
        if scan.keys[self.start..].contains(&hash) {
            // a repeated key (or two keys with one hash): the glue must encode the decoded form
            return Err(E::custom(MAY_CHANGE));
        }
        scan.keys.push(hash);
        let scope = (scan.skip, scan.only);
        let redact = scan.redact;
        if self.preserved {
            // the walk does not enter a preserved key's value at all
            return Ok((Under::Preserved, false, scope));
        }
        let info = redact.key_info(key);
        // the walk looks for a pair's name among all keys, preserved ones too
        let pair_name = info.pair_name && redact.key_action.is_some();
        if info.preserved {
            return Ok((Under::Preserved, pair_name, scope));
        }
        scan.skip |= info.skip;
        scan.only |= info.only;
        if redact.key_action.is_none() {
            return Ok((Under::Plain, false, scope));
        }
        let under = match info.class {
            KeyClass::Strong => Under::Strong,
            KeyClass::Weak => Under::Weak,
            KeyClass::Plain => Under::Plain,
        };
        Ok((under, pair_name, scope))
    }
}
