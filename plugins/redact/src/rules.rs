//! Rules as data, and the engine that runs them over a string.
//!
//! A rule is a [`RuleSpec`] (from `default_rules.toml` or the pipeline's
//! `rules` list) compiled into a [`Rule`]. A [`RuleSet`] runs its rules over a
//! string in order: one Aho-Corasick pass finds which rules' keywords occur,
//! and only those rules (and the few without keywords, behind cheaper tests)
//! run their regexes. Each match then goes through the rule's [`Check`], its
//! entropy floor, boundary and allowlists before it is replaced. A rule sees
//! the text as earlier rules left it, and a match that touches an earlier
//! replacement is skipped, so a GitHub token in `--password=ghp_...` is
//! reported once, as `github-token`.

use crate::checks;
use crate::keys::{KeyClass, KeyPattern, KeySpec, Keys, normalize};
use aho_corasick::AhoCorasick;
use regex::{Captures, Match, Regex};
use regex_automata::util::prefilter::Prefilter;
use regex_automata::{MatchKind, meta};
use serde::Deserialize;
use std::ops::Range;

/// The default rule set, shipped with the plugin.
pub const DEFAULT_RULES: &str = include_str!("default_rules.toml");

/// A rule file: key names and rules.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleFile {
    pub keys: KeySpec,
    pub rules: Vec<RuleSpec>,
}

/// The parsed default rule set.
pub fn default_file() -> RuleFile {
    toml::from_str(DEFAULT_RULES).expect("the default rule set parses")
}

/// What happens to what a rule finds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    /// Replaced by `[REDACTED:<rule-id>]`.
    #[default]
    Mask,
    /// Replaced by `[PSEUDONYM:<rule-id>:<hex>]`, a keyed HMAC-SHA256 of it.
    Pseudonym,
    /// The whole field is removed (an array item becomes `null`).
    Drop,
}

impl Action {
    pub fn name(self) -> &'static str {
        match self {
            Action::Mask => "mask",
            Action::Pseudonym => "pseudonym",
            Action::Drop => "drop",
        }
    }
}

/// A built-in validator for a rule's matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Check {
    /// Every match is a secret.
    #[default]
    None,
    /// A PEM block with a real body: 50+ base64 characters before its END
    /// line, or 12+ when the text ends before one.
    Pem,
    /// Base64 that decodes to a PEM private key header.
    Base64Pem,
    /// 8+ characters mixing two of lower case, upper case and digits.
    Credential,
    /// Group `k` is a key: a sensitive key's value is a secret unless it is a
    /// placeholder; a weak key's value only when it looks like a credential.
    Assignment,
    /// A password given to a program: not a placeholder, not the next
    /// `-flag`; with a group `k`, the flag must name a secret.
    Password,
    /// The password of a URL: not a placeholder, 4+ characters, and not equal
    /// to the user (group `u`).
    UrlPassword,
    /// 13-19 digits passing the Luhn check, not inside an identifier.
    Luhn,
    /// An IBAN of its country's length passing the mod-97 check.
    Iban,
    /// An email address, not the `user@` of a URL.
    Email,
    /// A phone number: 8-15 digits after `+`, or 10 national digits.
    Phone,
    /// A random-looking token (see [`high_entropy`]).
    HighEntropy,
    /// Group `k` is a sensitive key alone on its line (group `i` its
    /// indentation); the values of the lines indented under it are secrets
    /// (see [`block_values`]).
    Block,
}

/// Characters the masked part may not touch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Boundary {
    #[default]
    None,
    /// No ASCII letter or digit on either side.
    Alnum,
    /// No ASCII letter on either side.
    Letter,
}

/// A rule as written in a rule file or in the pipeline's `rules` list. Every
/// field but `id` is optional: for a new rule `patterns` is required; for an
/// existing id only the given fields change.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSpec {
    /// The rule's name: recorded in `redactions`, shown in the mask.
    pub id: String,
    /// What it finds, for people.
    pub description: Option<String>,
    /// Substrings (ASCII case ignored), one of which must occur before the
    /// patterns run. Without keywords the patterns run on every string.
    pub keywords: Option<Vec<String>>,
    /// Skip strings with fewer ASCII digits (a cheap test for keyword-less rules).
    pub min_digits: Option<usize>,
    /// One regex (shorthand for `patterns = [..]`).
    pub pattern: Option<String>,
    /// Regexes; the part replaced is the first of the groups `s`, `s1`..`s4`
    /// that took part in the match, else the whole match.
    pub patterns: Option<Vec<String>>,
    /// A built-in validator for each match.
    pub check: Option<Check>,
    /// Minimum Shannon entropy (bits per character) of the part replaced.
    pub entropy: Option<f64>,
    /// Minimum length of the part replaced.
    pub min_len: Option<usize>,
    /// Characters the part replaced may not touch.
    pub boundary: Option<Boundary>,
    /// Regexes: a part replaced that matches one is left alone.
    pub allow: Option<Vec<String>>,
    /// Substrings (case ignored) that make the part replaced a placeholder.
    pub stopwords: Option<Vec<String>>,
    /// Key patterns under which the rule does not apply.
    pub skip_keys: Option<Vec<String>>,
    /// Key patterns under which alone the rule applies.
    pub only_keys: Option<Vec<String>>,
    /// Whether `skip_keys` also applies to the key of a `key=value` (or
    /// `"key": "value"`, `<key>value</key>`) that a match in free text is the
    /// value of.
    pub text_keys: Option<bool>,
    /// `mask` (default), `pseudonym` or `drop`.
    pub action: Option<Action>,
    /// Characters of the part replaced kept in clear at its start (e.g. 6 for
    /// a card's BIN); only with `mask`.
    pub keep_start: Option<usize>,
    /// Characters kept in clear at its end (e.g. 4).
    pub keep_end: Option<usize>,
    /// Strings the rule must find something in (checked by the tests, and at
    /// `init` for rules given in the pipeline).
    pub examples: Option<Vec<String>>,
    /// Strings the rule must find nothing in.
    pub negatives: Option<Vec<String>>,
}

impl RuleSpec {
    /// Sets the fields that `other` sets.
    pub fn merge(&mut self, other: RuleSpec) {
        macro_rules! take {
            ($($field:ident),*) => { $( if other.$field.is_some() { self.$field = other.$field; } )* };
        }
        if other.pattern.is_some() || other.patterns.is_some() {
            self.pattern = None;
            self.patterns = None;
        }
        take!(
            description,
            keywords,
            min_digits,
            pattern,
            patterns,
            check,
            entropy,
            min_len,
            boundary,
            allow,
            stopwords,
            skip_keys,
            only_keys,
            text_keys,
            action,
            keep_start,
            keep_end,
            examples,
            negatives
        );
    }

    pub fn compile(&self) -> Result<Rule, String> {
        let id = &self.id;
        if id.is_empty() || !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
            return Err(format!("rule id `{id}` must be letters, digits, `-` or `_`"));
        }
        let sources: Vec<&String> = self.pattern.iter().chain(self.patterns.iter().flatten()).collect();
        if sources.is_empty() {
            return Err(format!("rule `{id}` has no `pattern`"));
        }
        let regex = |what: &str, p: &str| Regex::new(p).map_err(|e| format!("rule `{id}`: {what} `{p}`: {e}"));
        let patterns = sources.iter().map(|p| regex("pattern", p)).collect::<Result<Vec<_>, _>>()?;
        let needs = patterns.iter().map(|p| needed_bytes_of(p.as_str())).collect();
        let bare = patterns
            .iter()
            .map(|p| (p.captures_len() == 1 && slow_prefilter(p.as_str())).then(|| bare(p.as_str())).transpose())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("rule `{id}`: pattern: {e}"))?;
        let allow = self.allow.iter().flatten().map(|p| regex("allow", p)).collect::<Result<Vec<_>, _>>()?;
        let action = self.action.unwrap_or_default();
        if (self.keep_start.is_some() || self.keep_end.is_some()) && action != Action::Mask {
            return Err(format!("rule `{id}`: `keep_start`/`keep_end` need the `mask` action"));
        }
        Ok(Rule {
            id: id.clone(),
            keywords: self.keywords.clone().unwrap_or_default(),
            min_digits: self.min_digits.unwrap_or(0),
            patterns,
            needs,
            bare,
            check: self.check.unwrap_or_default(),
            entropy: self.entropy,
            min_len: self.min_len.unwrap_or(1),
            boundary: self.boundary.unwrap_or_default(),
            allow,
            stopwords: self.stopwords.iter().flatten().map(|s| s.to_ascii_lowercase()).collect(),
            skip_keys: self.skip_keys.iter().flatten().map(|k| KeyPattern::parse(k)).collect(),
            only_keys: self.only_keys.iter().flatten().map(|k| KeyPattern::parse(k)).collect(),
            text_keys: self.text_keys.unwrap_or(false),
            action,
            keep_start: self.keep_start.unwrap_or(0),
            keep_end: self.keep_end.unwrap_or(0),
            examples: self.examples.clone().unwrap_or_default(),
            negatives: self.negatives.clone().unwrap_or_default(),
        })
    }
}

/// A compiled rule.
pub struct Rule {
    pub id: String,
    keywords: Vec<String>,
    min_digits: usize,
    patterns: Vec<Regex>,
    /// For each pattern without groups that can start with any of four or
    /// more single bytes (the card rule's `[2-6]`): the same regex without a
    /// prefilter, which `find` runs instead. The prefilter for such a set
    /// (which the regex engine itself rates slow) stops at nearly every byte
    /// of ids and times and starts a search there, which made the card rule
    /// 2 to 6 times slower than one scan of the string.
    bare: Vec<Option<meta::Regex>>,
    /// For each pattern, sets of bytes of which every match holds one byte
    /// each: a text that lacks all the bytes of one set is not searched.
    needs: Vec<Vec<ByteSet>>,
    check: Check,
    entropy: Option<f64>,
    min_len: usize,
    boundary: Boundary,
    allow: Vec<Regex>,
    stopwords: Vec<String>,
    skip_keys: Vec<KeyPattern>,
    only_keys: Vec<KeyPattern>,
    text_keys: bool,
    pub action: Action,
    pub keep_start: usize,
    pub keep_end: usize,
    pub examples: Vec<String>,
    pub negatives: Vec<String>,
}

impl Rule {
    /// Whether the rule does not apply under this key (as written, normalized).
    pub fn skipped_by(&self, raw: &str, norm: &str) -> bool {
        self.skip_keys.iter().any(|p| p.matches(raw, norm))
    }

    /// Whether this key is one of the rule's `only_keys`.
    pub fn allowed_by(&self, raw: &str, norm: &str) -> bool {
        self.only_keys.iter().any(|p| p.matches(raw, norm))
    }

    /// Whether the rule has key scopes.
    pub fn scoped(&self) -> bool {
        !self.skip_keys.is_empty() || !self.only_keys.is_empty()
    }

    /// Whether the rule has `only_keys`.
    pub fn has_only_keys(&self) -> bool {
        !self.only_keys.is_empty()
    }

    /// The secret spans of this rule in `text`, in order, not touching
    /// `masked`. `present`: the bytes `text` holds, once someone needed them.
    fn find(
        &self,
        text: &str,
        present: &mut Option<ByteSet>,
        keys: &Keys,
        masked: &[(usize, usize)],
        allow: &[Regex],
    ) -> Vec<(usize, usize)> {
        let mut spans: Vec<(usize, usize)> = Vec::new();
        if self.check == Check::Block && !text.contains('\n') {
            return spans;
        }
        for ((pattern, bare), needs) in self.patterns.iter().zip(&self.bare).zip(&self.needs) {
            if !needs.is_empty() {
                let present = present.get_or_insert_with(|| ByteSet::of_text(text));
                if !needs.iter().all(|set| set.meets(present)) {
                    continue;
                }
            }
            if self.check == Check::Block {
                for caps in pattern.captures_iter(text) {
                    for (start, end) in block_values(&caps, text, keys) {
                        self.keep(text, start, end, masked, allow, &mut spans);
                    }
                }
            } else if pattern.captures_len() == 1 {
                // no groups: the whole match is all there is to read, and
                // finding it needs no capture engine (the entropy, card and
                // IBAN rules, which run on most strings)
                let mut whole = |found: Range<usize>| {
                    if let Some((start, end)) = self.accept(&Found::Whole(found), text, keys) {
                        self.keep(text, start, end, masked, allow, &mut spans);
                    }
                };
                match bare {
                    Some(bare) => bare.find_iter(text).for_each(|m| whole(m.range())),
                    None => pattern.find_iter(text).for_each(|m| whole(m.range())),
                }
            } else {
                for caps in pattern.captures_iter(text) {
                    if let Some((start, end)) = self.accept(&Found::Groups(caps), text, keys) {
                        self.keep(text, start, end, masked, allow, &mut spans);
                    }
                }
            }
        }
        spans.sort_unstable();
        spans
    }

    /// Adds the finding `start..end` to `spans` unless its key is skipped, it
    /// touches an earlier replacement or finding, or an allowlist matches it.
    fn keep(
        &self,
        text: &str,
        start: usize,
        end: usize,
        masked: &[(usize, usize)],
        allow: &[Regex],
        spans: &mut Vec<(usize, usize)>,
    ) {
        let secret = &text[start..end];
        if self.text_keys
            && let Some(key) = key_before(text, start)
            && self.skip_keys.iter().any(|p| p.matches(key, &normalize(key)))
        {
            return;
        }
        if masked.iter().any(|&(s, e)| start < e && s < end)
            || spans.iter().any(|&(s, e)| start < e && s < end)
            || self.allow.iter().chain(allow).any(|a| a.is_match(secret))
        {
            return;
        }
        spans.push((start, end));
    }

    /// The span to replace for one match, or `None` to leave it.
    fn accept(&self, caps: &Found, text: &str, keys: &Keys) -> Option<(usize, usize)> {
        let whole = caps.whole();
        let group = ["s", "s1", "s2", "s3", "s4", "s5", "s6"].iter().find_map(|n| caps.name(n));
        let (mut start, mut end) = group.map_or((whole.start, whole.end), |m| (m.start(), m.end()));
        match self.check {
            Check::None => {}
            Check::Pem => {
                let block = &text[start..end];
                let body_start = block.find("-----").and_then(|i| block[i + 5..].find("-----").map(|j| i + 10 + j))?;
                let body_end = block[body_start..].find("-----END").map(|i| body_start + i);
                let body = &block[body_start..body_end.unwrap_or(block.len())];
                // escaped newlines (`\n`, `\r\n`) are not body characters
                let base64 = body.replace("\\n", "").replace("\\r", "");
                let count = base64.bytes().filter(|b| b.is_ascii_alphanumeric() || *b == b'+' || *b == b'/').count();
                let needed = if body_end.is_some() { 50 } else { 12 };
                if count < needed || checks::is_placeholder(body.trim(), None) {
                    return None;
                }
            }
            Check::Base64Pem => {
                let head: String = text[start..end].chars().take(64).collect();
                let decoded = checks::base64_decode(&head)?;
                if !String::from_utf8_lossy(&decoded).contains("PRIVATE KEY") {
                    return None;
                }
            }
            Check::Credential => {
                let value = &text[start..end];
                let kinds = [
                    value.bytes().any(|b| b.is_ascii_lowercase()),
                    value.bytes().any(|b| b.is_ascii_uppercase()),
                    value.bytes().any(|b| b.is_ascii_digit()),
                ];
                if value.len() < 8 || kinds.iter().filter(|k| **k).count() < 2 {
                    return None;
                }
            }
            Check::Assignment => {
                let key = caps.name("k")?;
                let before = &text[..key.start()];
                // `...:secret:prod/db` is an ARN segment and `/forgot-password`
                // a path segment, not keys
                if before.ends_with('/')
                    || before.strip_suffix(':').is_some_and(|b| b.ends_with(|c: char| c.is_ascii_alphanumeric()))
                {
                    return None;
                }
                (start, end) = trim_span(text, start, end);
                let value = &text[start..end];
                // `password = getPassword(...)`: code, not a value
                if text[end..].starts_with('(') {
                    return None;
                }
                let alnum = value.bytes().filter(u8::is_ascii_alphanumeric).count();
                // a URL is judged by what is in it (a password, a token in its path)
                let url = value.contains("://");
                match keys.classify(key.as_str(), true) {
                    KeyClass::Strong if !url && alnum >= 3 && !checks::is_placeholder(value, Some(key.as_str())) => {}
                    KeyClass::Strong | KeyClass::Weak if checks::credential_like(value) => {}
                    _ => return None,
                }
            }
            Check::Password => {
                (start, end) = trim_span(text, start, end);
                let value = &text[start..end];
                if let Some(key) = caps.name("k") {
                    const SWITCHES: [&str; 12] = [
                        "no", "ask", "prompt", "use", "require", "skip", "show", "print", "reset", "change",
                        "generate", "random",
                    ];
                    let norm = normalize(key.as_str());
                    if SWITCHES.iter().any(|s| norm.starts_with(s)) {
                        return None;
                    }
                    match keys.classify(key.as_str(), true) {
                        KeyClass::Strong => {}
                        KeyClass::Weak if checks::credential_like(value) => {}
                        _ => return None,
                    }
                }
                // `--password --host db`: the flag took the next flag as its value
                if value.starts_with('-') || checks::is_placeholder(value, caps.name("k").map(|k| k.as_str())) {
                    return None;
                }
            }
            Check::UrlPassword => {
                let value = &text[start..end];
                let user = caps.name("u").map(|u| u.as_str());
                if value.len() < 4 || user == Some(value) || checks::is_placeholder(value, None) {
                    return None;
                }
            }
            Check::Luhn => (start, end) = checks::luhn_span(text, start, end)?,
            Check::Iban => end = start + checks::iban_len(&text[start..end])?,
            Check::Email => {
                let before = &text[..start];
                if before.ends_with("://") || before.ends_with(':') {
                    return None;
                }
            }
            Check::Phone => {
                let value = &text[start..end];
                let digits = value.bytes().filter(u8::is_ascii_digit).count();
                let after = text[end..].chars().next();
                let ok = if value.starts_with('+') { (8..=15).contains(&digits) } else { digits == 10 };
                if !ok || after.is_some_and(|c| c.is_ascii_alphanumeric() || c == '.' || c == ':') {
                    return None;
                }
            }
            Check::HighEntropy => (start, end) = high_entropy(text, start, end)?,
            // found by `block_values`, never here
            Check::Block => return None,
        }
        // a free-standing token made of alphabet and digit runs is a
        // documentation placeholder (`aBcDeF...1234567890`); a token in a
        // vendor's format is masked whatever its body
        if self.check == Check::HighEntropy && checks::is_sequence(&text[start..end]) {
            return None;
        }
        let secret = &text[start..end];
        if secret.len() < self.min_len || self.entropy.is_some_and(|floor| checks::entropy(secret) < floor) {
            return None;
        }
        let touches = |c: Option<char>| {
            c.is_some_and(|c| match self.boundary {
                Boundary::None => false,
                Boundary::Alnum => c.is_ascii_alphanumeric(),
                Boundary::Letter => c.is_ascii_alphabetic(),
            })
        };
        if touches(text[..start].chars().next_back()) || touches(text[end..].chars().next()) {
            return None;
        }
        if !self.stopwords.is_empty() {
            let lower = secret.to_ascii_lowercase();
            if self.stopwords.iter().any(|s| lower.contains(s.as_str())) {
                return None;
            }
        }
        (start < end).then_some((start, end))
    }
}

/// One match of a rule's pattern.
enum Found<'h> {
    /// The pattern has groups: all of them.
    Groups(Captures<'h>),
    /// The pattern has none: where it matched.
    Whole(Range<usize>),
}

impl<'h> Found<'h> {
    fn whole(&self) -> Range<usize> {
        match self {
            Found::Groups(caps) => caps.get(0).expect("group 0 is the match").range(),
            Found::Whole(m) => m.clone(),
        }
    }

    fn name(&self, name: &str) -> Option<Match<'h>> {
        match self {
            Found::Groups(caps) => caps.name(name),
            Found::Whole(_) => None,
        }
    }
}

/// Whether the regex engine would look for where `pattern` (a valid regex)
/// starts with a prefilter for a set of single bytes that it rates slow:
/// four or more bytes (fewer are found with `memchr`). Only single bytes
/// decide it, so that it is the same on every target: whether a prefilter
/// for longer literals is fast depends on the target's SIMD (Teddy is not
/// built for Wasm).
fn slow_prefilter(pattern: &str) -> bool {
    regex_automata::util::syntax::parse(pattern)
        .ok()
        .and_then(|hir| Prefilter::from_hir_prefix(MatchKind::LeftmostFirst, &hir))
        .is_some_and(|prefilter| prefilter.max_needle_len() == 1 && !prefilter.is_fast())
}

/// A set of bytes.
#[derive(Clone, Copy, Default, PartialEq, Debug)]
struct ByteSet([u64; 4]);

impl ByteSet {
    fn insert(&mut self, b: u8) {
        self.0[usize::from(b >> 6)] |= 1 << (b & 63);
    }

    fn contains(&self, b: u8) -> bool {
        self.0[usize::from(b >> 6)] & (1 << (b & 63)) != 0
    }

    fn union(self, other: ByteSet) -> ByteSet {
        ByteSet(std::array::from_fn(|i| self.0[i] | other.0[i]))
    }

    /// The bytes `text` holds.
    fn of_text(text: &str) -> ByteSet {
        let mut set = ByteSet::default();
        text.bytes().for_each(|b| set.insert(b));
        set
    }

    /// Whether `present` holds one of these bytes.
    fn meets(&self, present: &ByteSet) -> bool {
        self.0.iter().zip(&present.0).any(|(a, b)| a & b != 0)
    }

    fn len(&self) -> u32 {
        self.0.iter().map(|w| w.count_ones()).sum()
    }

    /// How often such bytes turn up in log text, roughly: letters and digits
    /// are everywhere, white space and the separators of names and paths
    /// often, other punctuation (`=`, `:`, `<`, quotes) less.
    fn commonness(&self) -> u32 {
        (0..=255u8)
            .filter(|b| self.contains(*b))
            .map(|b| match b {
                b if b.is_ascii_alphanumeric() => 16,
                b' ' | b'\t' | b'-' | b'.' | b'/' | b'_' => 4,
                _ => 1,
            })
            .sum()
    }
}

/// The larger sets are not worth a look: most texts hold one of their bytes.
const MAX_NEEDED_SET: u32 = 8;

/// What every match of `pattern` (a valid `regex::Regex`) holds: sets of
/// bytes of which it holds one byte each (see [`needed_bytes`]). A rule's
/// patterns are searched only in a text that meets every set of theirs,
/// which skips most searches a keyword started (`Failed password for ...`
/// has no `=`, `:`, `<`, quote or `,` that `secret-assignment` needs).
fn needed_bytes_of(pattern: &str) -> Vec<ByteSet> {
    let Ok(hir) = regex_automata::util::syntax::parse(pattern) else { return Vec::new() };
    let mut sets: Vec<ByteSet> = needed_bytes(&hir).into_iter().filter(|s| s.len() <= MAX_NEEDED_SET).collect();
    sets.sort_by_key(|s| (s.commonness(), s.0));
    sets.dedup();
    sets
}

/// Sets of bytes of which every match of `hir` holds one byte each; empty
/// when nothing is known. A literal needs each of its bytes; a class of
/// ASCII characters one of them; a repetition at least once what its item
/// needs; a sequence what each of its parts needs; an alternation one of
/// the sets its branches need (the least common of each). Anything else (an
/// empty match, a look-around, an optional part, a class with a non-ASCII
/// character, such as the Unicode case folds of `k` and `s`) needs nothing.
fn needed_bytes(hir: &regex_syntax::hir::Hir) -> Vec<ByteSet> {
    use regex_syntax::hir::{Class, HirKind};
    let of = |bytes: &mut dyn Iterator<Item = u8>| {
        let mut set = ByteSet::default();
        bytes.for_each(|b| set.insert(b));
        set
    };
    match hir.kind() {
        HirKind::Literal(literal) => literal.0.iter().map(|&b| of(&mut std::iter::once(b))).collect(),
        HirKind::Class(Class::Unicode(class)) => {
            if !class.ranges().iter().all(|r| r.end().is_ascii()) {
                return Vec::new();
            }
            vec![of(&mut class.ranges().iter().flat_map(|r| r.start() as u8..=r.end() as u8))]
        }
        HirKind::Class(Class::Bytes(class)) => vec![of(&mut class.ranges().iter().flat_map(|r| r.start()..=r.end()))],
        HirKind::Repetition(repetition) if repetition.min >= 1 => needed_bytes(&repetition.sub),
        HirKind::Capture(capture) => needed_bytes(&capture.sub),
        HirKind::Concat(parts) => parts.iter().flat_map(needed_bytes).collect(),
        HirKind::Alternation(branches) => {
            let mut union = ByteSet::default();
            for branch in branches {
                let Some(least) = needed_bytes(branch).into_iter().min_by_key(ByteSet::commonness) else {
                    return Vec::new();
                };
                union = union.union(least);
            }
            vec![union]
        }
        _ => Vec::new(),
    }
}

/// `pattern` (a valid `regex::Regex`) as the same engine builds it for
/// `Regex::new`, but without a prefilter: it finds the same matches.
fn bare(pattern: &str) -> Result<meta::Regex, Box<meta::BuildError>> {
    meta::Regex::builder().configure(meta::Regex::config().auto_prefilter(false)).build(pattern).map_err(Box::new)
}

/// The key of the `key=value`, `key: value`, `"key": "value"` or
/// `<key>value</key>` whose value starts at `start`.
pub fn key_before(text: &str, start: usize) -> Option<&str> {
    let bytes = &text.as_bytes()[..start];
    let mut i = bytes.len();
    let skip = |i: &mut usize, set: &[u8]| {
        while *i > 0 && set.contains(&bytes[*i - 1]) {
            *i -= 1;
        }
    };
    skip(&mut i, b" \t\"'\\");
    let xml = i > 0 && bytes[i - 1] == b'>';
    if xml {
        i -= 1;
    } else {
        let sep_end = i;
        skip(&mut i, b"=:>");
        if i == sep_end || sep_end - i > 2 {
            return None;
        }
        skip(&mut i, b" \t\"'\\");
    }
    let key_end = i;
    while i > 0 && (bytes[i - 1].is_ascii_alphanumeric() || b"_.-".contains(&bytes[i - 1])) {
        i -= 1;
    }
    if i == key_end || (xml && (i == 0 || bytes[i - 1] != b'<')) {
        return None;
    }
    Some(&text[i..key_end])
}

/// The values under a sensitive key that is alone on its line: YAML
/// `passwords:` with list items or `password:` with a nested mapping below,
/// JSON `"passwords": [` with strings below, an INI key continued on indented
/// lines. Each line indented deeper than the key (or a `- ` item at its
/// depth) gives its value: the item, the line, or the value of its own
/// `key: value`, unless that key holds metadata (`name`, `id`, `type`: see
/// [`Keys::is_metadata`]) or the value is a placeholder. Under a section key
/// (`credentials:`, `auth:`) a sub-key's value counts only when it looks like
/// a credential (`login: admin` stays). The block ends at the first non-blank
/// line that is not indented under the key.
fn block_values(caps: &Captures, text: &str, keys: &Keys) -> Vec<(usize, usize)> {
    let (Some(whole), Some(key)) = (caps.get(0), caps.name("k")) else { return Vec::new() };
    if keys.classify(key.as_str(), true) != KeyClass::Strong {
        return Vec::new();
    }
    // `credentials:` and `auth:` name a section, which holds ids (`login`,
    // `user`) beside secrets: there a sub-key's value is masked only when it
    // looks like a credential, as under a weak key
    let norm = normalize(key.as_str());
    let section = ["credential", "credentials", "auth", "authentication"].iter().any(|s| norm.ends_with(s));
    // the block is what is indented deeper than the key itself (for `- key:`,
    // than the key's column: the item's other keys are its siblings)
    let line_start = caps.name("i").map_or(whole.start(), |i| i.start());
    let indent = text[line_start..key.start()].trim_end_matches(['"', '\'']).len();
    let mut spans = Vec::new();
    let mut pos = whole.end();
    for line in text[whole.end()..].split_inclusive('\n') {
        let line_start = pos;
        pos += line.len();
        let body = line.trim_end_matches(['\n', '\r']);
        let content = body.trim_start_matches([' ', '\t']);
        if content.is_empty() {
            continue;
        }
        let depth = body.len() - content.len();
        if depth < indent || (depth == indent && !content.starts_with("- ")) {
            break;
        }
        let mut item = content;
        while let Some(rest) = item.strip_prefix("- ") {
            item = rest.trim_start_matches([' ', '\t']);
        }
        let mut value_at = line_start + (body.len() - item.len());
        let mut value = item;
        let mut judged = false;
        if let Some((sub_key, offset)) = split_key(item) {
            if keys.is_metadata(sub_key) {
                continue;
            }
            value = &item[offset..];
            value_at += offset;
            judged = section;
        }
        // trim white space, a trailing comma, then one pair of quotes
        let lead = value.len() - value.trim_start().len();
        let mut v = value.trim().trim_end_matches(',').trim_end();
        let mut at = value_at + lead;
        if v.len() >= 2 && (v.starts_with('"') && v.ends_with('"') || v.starts_with('\'') && v.ends_with('\'')) {
            v = &v[1..v.len() - 1];
            at += 1;
        }
        if v.bytes().filter(u8::is_ascii_alphanumeric).count() < 3
            || checks::is_placeholder(v, Some(key.as_str()))
            || judged && !checks::credential_like(v)
        {
            continue;
        }
        spans.push((at, at + v.len()));
    }
    spans
}

/// `key: value` or `"key": value` at the start of `line`: the key and where
/// the value starts. The colon must be followed by white space or the end of
/// the line (`https://...` is a value, not a key); `=` is not a separator
/// here (`Tr0ub4dor=3` and base64 padding are values).
fn split_key(line: &str) -> Option<(&str, usize)> {
    let quoted = line.starts_with(['"', '\'']);
    let from = usize::from(quoted);
    let len = line[from..].find(|c: char| !(c.is_ascii_alphanumeric() || "_.-".contains(c)))?;
    if len == 0 {
        return None;
    }
    let mut i = from + len;
    if quoted {
        if !line[i..].starts_with(['"', '\'']) {
            return None;
        }
        i += 1;
    }
    let after = line[i..].trim_start_matches([' ', '\t']);
    i = line.len() - after.len();
    let colon = after.starts_with(':') && (after.len() == 1 || after[1..].starts_with([' ', '\t']));
    colon.then_some((&line[from..from + len], i + 1))
}

/// The span without surrounding white space.
fn trim_span(text: &str, start: usize, end: usize) -> (usize, usize) {
    let inner = &text[start..end];
    let lead = inner.len() - inner.trim_start().len();
    let trail = inner.len() - inner.trim_end().len();
    (start + lead, (end - trail).max(start + lead))
}

/// A free-standing token that looks random: 16+ characters mixing upper case,
/// lower case and digits with at least 3 bits of entropy per character (or,
/// without digits, 24+ characters whose case flips like random text). Left
/// alone: hex strings (hashes), key fingerprints (`SHA256:...`), URLs, JWT
/// headers, the body of a public key or certificate, and names: paths and
/// dotted or dashed names of short parts, and identifiers made of words
/// (`getServerAddressByClientCIDRs`, `SandboxConfigurationS3BucketPolicy`).
pub fn high_entropy(text: &str, start: usize, end: usize) -> Option<(usize, usize)> {
    let raw = &text[start..end];
    let trimmed = |c| c == '.' || c == '-' || c == '/';
    let rest = raw.trim_start_matches(trimmed);
    let start = start + (raw.len() - rest.len());
    let token = rest.trim_end_matches(trimmed);
    let before = &text[..start];
    if ["SHA256:", "SHA1:", "MD5:", "sha256:", "sha1:", "sha512:", "://"].iter().any(|p| before.ends_with(p))
        || token.len() < 16
        || token.starts_with("eyJ")
    {
        return None;
    }
    let (mut upper, mut lower, mut digits) = (0, 0, 0);
    for b in token.bytes() {
        upper += usize::from(b.is_ascii_uppercase());
        lower += usize::from(b.is_ascii_lowercase());
        digits += usize::from(b.is_ascii_digit());
    }
    // Letters and digits mixed; or, without digits, a long run whose case flips
    // like random text (CamelCase words have one capital per word).
    let mixed = upper > 0 && lower > 0 && digits > 0;
    let random_case = token.len() >= 24 && upper * 4 >= upper + lower && lower * 4 >= upper + lower;
    if !(mixed || random_case) {
        return None;
    }
    // the parts of 12+ characters between separators decide: none (a path,
    // a domain, a dashed name), or all of them hex (hashes) or words
    // a part of letters in one case (a word) or of hex digits (a hash) is not
    // random text either
    let mut long: Vec<&str> = token.split(['/', '.', '-', '_']).filter(|part| part.len() >= 12).collect();
    if long.is_empty() {
        // only short parts: base64 with `/` or `+` in it (`73Nksk/x2cmAV/...`)
        // is judged by its parts as well as a path is
        long = token.split(['/', '.', '-', '_', '+']).filter(|part| part.len() >= 4).collect();
    }
    let plain = |part: &str| {
        part.bytes().all(|b| b.is_ascii_lowercase())
            || part.bytes().all(|b| b.is_ascii_uppercase())
            || part.bytes().all(|b| b.is_ascii_hexdigit())
    };
    // a short token that mixes all three classes is not an identifier made of
    // words: random pieces pass the word test by chance (`Pa55-DneNubVTOijevv`)
    // (a digit only at the end, `ConnectionString1`, does not count)
    let inner_digit = token.trim_end_matches(|c: char| c.is_ascii_digit()).bytes().any(|b| b.is_ascii_digit());
    let short_mixed = token.len() < 24 && upper > 0 && lower > 0 && inner_digit;
    if long.iter().all(|part| plain(part) || (!short_mixed && wordy(part))) {
        return None;
    }
    // part of an ARN (`arn:aws:iam::1:role/GeneratedName-9S3E0UAE1MM0`) or of
    // a public key or certificate block
    let word_start = before.rfind(|c: char| c.is_whitespace() || "\"'([{=,".contains(c)).map_or(0, |i| i + 1);
    if before[word_start..].starts_with("arn:") || inside_public_block(before) {
        return None;
    }
    if checks::entropy(token) < 3.0 {
        return None;
    }
    // a path of plain directories before the random part stays readable:
    // `fonts/xjAJXh38I15wypJXxuGMBp0EAVxt0G0biEntp43Qt6E.ttf`
    let mut skip = 0;
    for part in token.split('/') {
        // lower-case words, or short names with digits (`scale11x`, `v1`)
        let path_like = part.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
            && (part.len() < 12 || !part.bytes().any(|b| b.is_ascii_digit()));
        if !path_like || skip + part.len() + 1 >= token.len() {
            break;
        }
        skip += part.len() + 1;
    }
    Some((start + skip, start + token.len()))
}

/// Whether a run of letters and digits reads as words: CamelCase words of 3+
/// letters with a vowel (`getServerAddressByClientCIDRs`,
/// `SandboxConfigurationS3BucketPolicy`), where random text has short,
/// vowel-less pieces. Under 20 characters every piece must be a word.
fn wordy(part: &str) -> bool {
    let bytes = part.as_bytes();
    let mut pieces: Vec<&[u8]> = Vec::new();
    let mut from = 0;
    for i in 1..bytes.len() {
        let (a, b) = (bytes[i - 1], bytes[i]);
        let next_lower = bytes.get(i + 1).is_some_and(u8::is_ascii_lowercase);
        let split = a.is_ascii_digit() != b.is_ascii_digit()
            || (a.is_ascii_lowercase() && b.is_ascii_uppercase())
            || (a.is_ascii_uppercase() && b.is_ascii_uppercase() && next_lower)
            || !b.is_ascii_alphanumeric()
            || !a.is_ascii_alphanumeric();
        if split {
            pieces.push(&bytes[from..i]);
            from = i;
        }
    }
    pieces.push(&bytes[from..]);
    let pieces: Vec<&[u8]> = pieces.into_iter().filter(|p| p.iter().all(u8::is_ascii_alphanumeric)).collect();
    // a word: a capital and 2+ lower-case letters, or 3+ lower-case letters,
    // with a vowel
    let word = |p: &&[u8]| {
        let caps = p.iter().take_while(|b| b.is_ascii_uppercase()).count();
        let rest = &p[caps..];
        caps <= 1
            && rest.len() + caps >= 3
            && rest.len() >= 2
            && rest.iter().all(u8::is_ascii_lowercase)
            && rest.iter().any(|b| b"aeiouy".contains(b))
    };
    let words = pieces.iter().filter(|p| word(p)).count();
    if part.len() < 20 {
        // short: random text passes loose tests, so every piece must be a
        // word, a 2-4 letter acronym or one short number (`ConnectionString1`,
        // `AmazonEC2FullAccess`)
        let acronym = |p: &&[u8]| (2..=4).contains(&p.len()) && p.iter().all(u8::is_ascii_uppercase);
        let number = |p: &&[u8]| p.len() <= 2 && p.iter().all(u8::is_ascii_digit);
        return words >= 1
            && pieces.iter().filter(|p| number(p)).count() <= 1
            && pieces.iter().all(|p| word(p) || acronym(p) || number(p));
    }
    let singles = pieces.iter().filter(|p| p.len() == 1).count();
    let in_words: usize = pieces.iter().filter(|p| word(p)).map(|p| p.len()).sum();
    let total: usize = pieces.iter().map(|p| p.len()).sum();
    singles <= 2 && in_words * 5 >= total * 3
}

/// Whether `before` ends inside a `-----BEGIN ...-----` block of a public
/// key or certificate (their bodies are random-looking but public).
fn inside_public_block(before: &str) -> bool {
    let Some(begin) = before.rfind("-----BEGIN ") else { return false };
    let header = &before[begin..];
    let header_line = header.split("-----").nth(1).unwrap_or("");
    !header.contains("-----END") && (header_line.contains("PUBLIC KEY") || header_line.contains("CERTIFICATE"))
}

/// The spans of earlier replacements in `text`: `[REDACTED:...]`, `[PSEUDONYM:...]`.
fn masked_spans(text: &str) -> Vec<(usize, usize)> {
    let mut spans = Vec::new();
    for marker in ["[REDACTED:", "[PSEUDONYM:"] {
        let mut from = 0;
        while let Some(i) = text[from..].find(marker) {
            let start = from + i;
            let end = text[start..].find(']').map_or(text.len(), |j| start + j + 1);
            spans.push((start, end));
            from = end;
        }
    }
    spans
}

/// What a rule's finding becomes.
pub enum Replacement {
    Text(String),
    /// Remove the whole field.
    Drop,
}

/// The result of redacting one string.
pub enum Redacted {
    Unchanged,
    /// The new text and the indexes of the rules that changed it.
    Changed(String, Vec<usize>),
    /// A rule whose action is `drop` found something (its index).
    Drop(usize),
}

/// Rules in the order they run, with the keyword automaton.
pub struct RuleSet {
    pub rules: Vec<Rule>,
    pub keys: Keys,
    allow: Vec<Regex>,
    automaton: Option<AhoCorasick>,
    /// For each automaton pattern, the rules it belongs to.
    keyword_rules: Vec<Vec<usize>>,
    /// The shortest string any rule looks at.
    min_len: usize,
}

impl RuleSet {
    pub fn new(rules: Vec<Rule>, keys: Keys, allow: Vec<Regex>) -> Self {
        let mut words: Vec<String> = Vec::new();
        let mut keyword_rules: Vec<Vec<usize>> = Vec::new();
        for (index, rule) in rules.iter().enumerate() {
            for keyword in &rule.keywords {
                let keyword = keyword.to_ascii_lowercase();
                match words.iter().position(|w| *w == keyword) {
                    Some(p) => keyword_rules[p].push(index),
                    None => {
                        words.push(keyword);
                        keyword_rules.push(vec![index]);
                    }
                }
            }
        }
        let automaton = (!words.is_empty()).then(|| {
            AhoCorasick::builder()
                .ascii_case_insensitive(true)
                .kind(Some(aho_corasick::AhoCorasickKind::DFA))
                .build(&words)
                .expect("keywords build an automaton")
        });
        RuleSet { rules, keys, allow, automaton, keyword_rules, min_len: 6 }
    }

    /// Runs the rules that `applies` accepts over `text`; `replace` says what
    /// each finding becomes.
    pub fn redact(
        &self,
        text: &str,
        applies: &dyn Fn(usize) -> bool,
        replace: &mut dyn FnMut(usize, &str) -> Replacement,
    ) -> Redacted {
        if text.len() < self.min_len {
            return Redacted::Unchanged;
        }
        // which rules a keyword turned on, a bit each (on the stack up to 256 rules)
        let words = self.rules.len().div_ceil(64);
        let (mut small, mut large) = ([0u64; 4], Vec::new());
        let hit: &mut [u64] = if words <= small.len() {
            &mut small[..words]
        } else {
            large.resize(words, 0);
            &mut large
        };
        if let Some(automaton) = &self.automaton {
            for m in automaton.find_overlapping_iter(text) {
                for &rule in &self.keyword_rules[m.pattern().as_usize()] {
                    hit[rule / 64] |= 1 << (rule % 64);
                }
            }
        }
        let digits = std::cell::OnceCell::new();
        let mut current: Option<String> = None;
        let mut present = None;
        let mut masked: Vec<(usize, usize)> = Vec::new();
        let mut fired = Vec::new();
        for (index, rule) in self.rules.iter().enumerate() {
            if !rule.keywords.is_empty() && hit[index / 64] & (1 << (index % 64)) == 0 {
                continue;
            }
            if rule.min_digits > 0
                && *digits.get_or_init(|| text.bytes().filter(u8::is_ascii_digit).count()) < rule.min_digits
            {
                continue;
            }
            let input = current.as_deref().unwrap_or(text);
            if input.len() < rule.min_len || !applies(index) {
                continue;
            }
            let spans = rule.find(input, &mut present, &self.keys, &masked, &self.allow);
            if spans.is_empty() {
                continue;
            }
            let mut out = String::with_capacity(input.len());
            let mut last = 0;
            for (start, end) in spans {
                match replace(index, &input[start..end]) {
                    Replacement::Drop => return Redacted::Drop(index),
                    Replacement::Text(t) => {
                        out.push_str(&input[last..start]);
                        out.push_str(&t);
                    }
                }
                last = end;
            }
            out.push_str(&input[last..]);
            masked = masked_spans(&out);
            current = Some(out);
            present = None;
            fired.push(index);
        }
        match current {
            Some(text) => Redacted::Changed(text, fired),
            None => Redacted::Unchanged,
        }
    }

    /// Strings shorter than this are never changed.
    pub fn min_len(&self) -> usize {
        self.min_len
    }

    /// The index of a rule by id.
    pub fn index(&self, id: &str) -> Option<usize> {
        self.rules.iter().position(|r| r.id == id)
    }

    /// Whether rule `index` alone finds something in `text` (for examples).
    pub fn rule_finds(&self, index: usize, text: &str) -> bool {
        let rule = &self.rules[index];
        !rule.find(text, &mut None, &self.keys, &masked_spans(text), &self.allow).is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(bytes: &[u8]) -> ByteSet {
        let mut set = ByteSet::default();
        bytes.iter().for_each(|b| set.insert(*b));
        set
    }

    #[test]
    fn what_every_match_holds() {
        // a sequence needs each part; an alternation one of its branches' least common bytes
        assert_eq!(needed_bytes_of("ab"), vec![set(b"a"), set(b"b")]);
        assert_eq!(
            needed_bytes_of(r"(?i)\bkey\s*(?:=>|:=|->|=|:)\s*x+"),
            vec![set(b":=>"), set(b"Ee"), set(b"Xx"), set(b"Yy")]
        );
        assert_eq!(needed_bytes_of("<(?P<k>[a-z]+)>.*?</"), vec![set(b"<"), set(b">"), set(b"/")]);
        // optional parts, look-arounds, wide classes and Unicode case folds need nothing
        assert_eq!(needed_bytes_of(r"\b(?:x=)?[A-Za-z0-9]{16,}(?i:s)"), vec![]);
        // an alternation with a branch that needs nothing needs nothing
        assert_eq!(needed_bytes_of("(?:=|[^a])b"), vec![set(b"b")]);
        assert_eq!(needed_bytes_of("(?:=|:|->)"), vec![set(b"=:>")]);
    }

    /// The sets only ever skip texts the pattern finds nothing in: every
    /// pattern of the default rules, on every example and negative of them all.
    #[test]
    fn a_text_a_pattern_matches_meets_its_needs() {
        let specs = default_file().rules;
        let texts: Vec<&String> =
            specs.iter().flat_map(|s| s.examples.iter().flatten().chain(s.negatives.iter().flatten())).collect();
        let (mut gated, mut matched) = (0, 0);
        for spec in &specs {
            let rule = spec.compile().unwrap();
            for (pattern, needs) in rule.patterns.iter().zip(&rule.needs) {
                gated += usize::from(!needs.is_empty());
                for text in &texts {
                    if pattern.is_match(text) {
                        matched += 1;
                        let present = ByteSet::of_text(text);
                        assert!(needs.iter().all(|n| n.meets(&present)), "rule {}, {text:?}", rule.id);
                    }
                }
            }
        }
        assert!(gated >= 20 && matched >= 100, "{gated} patterns with needs, {matched} matches");
    }

    #[test]
    fn a_pattern_searched_without_its_prefilter_finds_what_it_found() {
        let specs = default_file().rules;
        let mut texts: Vec<String> = specs
            .iter()
            .flat_map(|s| s.examples.iter().flatten().chain(s.negatives.iter().flatten()))
            .cloned()
            .collect();
        texts.extend(
            [
                "c9e9c616-612e-7696-a6ce-cc1b78e51061",
                "2026-11-01T00:00:00.366091Z and 4111 1111 1111 1111 then 4111-1111-1111-1111",
                "card 5500005555555559, id 1700000000123456, ٤١١١١١١١١١١١١١١١ (Arabic-Indic digits)",
                "é4111111111111111é x4111111111111111 4111111111111111x 04111111111111111",
                "",
            ]
            .map(String::from),
        );
        let mut bare = 0;
        for spec in &specs {
            let rule = spec.compile().unwrap();
            for (pattern, without) in rule.patterns.iter().zip(&rule.bare) {
                let Some(without) = without else { continue };
                bare += 1;
                for text in &texts {
                    let found: Vec<_> = pattern.find_iter(text).map(|m| m.range()).collect();
                    let again: Vec<_> = without.find_iter(text).map(|m| m.range()).collect();
                    assert_eq!(found, again, "rule {}, {text:?}", rule.id);
                }
            }
        }
        // the card rule, whose prefilter is `[2-6]`, is the only one
        let card = specs.iter().find(|s| s.id == "payment-card").unwrap().compile().unwrap();
        assert!(card.bare[0].is_some());
        assert_eq!(bare, 1);
    }
}
