//! Key names: which ones name a secret, and key patterns for rule scopes.
//!
//! Keys are compared normalized: ASCII lower case, only letters and digits
//! (`X-Api-Key`, `x_api_key` and `xApiKey` are all `xapikey`). A key names a
//! secret when it *ends* with a secret word, so `secretName`,
//! `passwordLastUsed` and `accessKeyId` do not.

use serde::Deserialize;
use std::collections::HashSet;

/// The `[keys]` table of a rule file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeySpec {
    /// Endings that make a key sensitive: any value is masked.
    pub suffixes: Vec<String>,
    /// Whole names that are sensitive.
    pub exact: Vec<String>,
    /// Last words (of `DB_PASS`, `adoPat`) that make a key sensitive.
    pub words: Vec<String>,
    /// Endings that look sensitive but are not (`bypass`).
    pub not_suffixes: Vec<String>,
    /// Whole names that are never sensitive (`key` alone names a lookup key).
    pub plain_exact: Vec<String>,
    /// Endings that make a key sensitive only for credential-like values.
    pub weak_suffixes: Vec<String>,
    /// Endings of weak keys that are not secrets (`publicKey`, `sortKey`).
    pub weak_not_suffixes: Vec<String>,
    /// Endings of keys inside a sensitive object that are not secret (`accessKeyId`).
    pub metadata_suffixes: Vec<String>,
    /// Names of the name field of a name/value pair (`name`, `ParameterKey`).
    pub pair_names: Vec<String>,
    /// Names of the value field of a name/value pair.
    pub pair_values: Vec<String>,
}

/// What a key says about its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyClass {
    /// A secret whatever it looks like: `password`, `api_key`, `sessionToken`.
    Strong,
    /// A secret if it looks like one: `slackKey`, `basicAuth`.
    Weak,
    /// Says nothing.
    Plain,
}

pub struct Keys {
    spec: KeySpec,
    extra: HashSet<String>,
}

/// `X-Api-Key` → `xapikey`.
pub fn normalize(key: &str) -> String {
    key.chars().filter(char::is_ascii_alphanumeric).map(|c| c.to_ascii_lowercase()).collect()
}

/// The last word of a key, lower case: `DB_PASS` → `pass`, `adoPat` → `pat`.
fn last_word(key: &str) -> String {
    let trimmed = key.trim_end_matches(|c: char| !c.is_ascii_alphanumeric());
    let mut start = 0;
    let bytes = trimmed.as_bytes();
    for i in 1..bytes.len() {
        let (prev, cur) = (bytes[i - 1], bytes[i]);
        if !cur.is_ascii_alphanumeric() || (prev.is_ascii_lowercase() && cur.is_ascii_uppercase()) {
            start = if cur.is_ascii_alphanumeric() { i } else { i + 1 };
        }
    }
    trimmed[start.min(trimmed.len())..].to_ascii_lowercase()
}

impl Keys {
    pub fn new(mut spec: KeySpec, extra: &[String]) -> Self {
        for list in [
            &mut spec.suffixes,
            &mut spec.exact,
            &mut spec.words,
            &mut spec.not_suffixes,
            &mut spec.plain_exact,
            &mut spec.weak_suffixes,
            &mut spec.weak_not_suffixes,
            &mut spec.metadata_suffixes,
            &mut spec.pair_names,
            &mut spec.pair_values,
        ] {
            for item in list.iter_mut() {
                *item = normalize(item);
            }
        }
        Keys { spec, extra: extra.iter().map(|k| normalize(k)).collect() }
    }

    /// The class of a key. `in_text`: the key was read from free text, where
    /// `session` is a word of prose (`session opened`) more often than a key.
    pub fn classify(&self, key: &str, in_text: bool) -> KeyClass {
        let norm = normalize(key);
        if norm.is_empty() {
            return KeyClass::Plain;
        }
        if self.extra.contains(&norm) {
            return KeyClass::Strong;
        }
        let s = &self.spec;
        if s.plain_exact.contains(&norm) {
            return KeyClass::Plain;
        }
        if s.exact.contains(&norm) && !(in_text && norm == "session") {
            return KeyClass::Strong;
        }
        let excluded = s.not_suffixes.iter().any(|x| norm.ends_with(x.as_str()));
        if !excluded && s.suffixes.iter().any(|x| norm.ends_with(x.as_str())) {
            return KeyClass::Strong;
        }
        if !excluded && s.words.contains(&last_word(key)) {
            return KeyClass::Strong;
        }
        if s.weak_suffixes.iter().any(|x| norm.ends_with(x.as_str()))
            && !s.weak_not_suffixes.iter().any(|x| norm.ends_with(x.as_str()))
        {
            return KeyClass::Weak;
        }
        KeyClass::Plain
    }

    /// Whether a key inside a sensitive object holds metadata, not a secret.
    pub fn is_metadata(&self, key: &str) -> bool {
        let norm = normalize(key);
        self.spec.metadata_suffixes.iter().any(|s| norm.ends_with(s.as_str()))
            && self.classify(key, false) == KeyClass::Plain
    }

    /// Whether a (normalized) key is the name field of a name/value pair.
    pub fn is_pair_name(&self, norm: &str) -> bool {
        self.spec.pair_names.iter().any(|k| k == norm)
    }

    /// Whether a (normalized) key is the value field of a name/value pair.
    pub fn is_pair_value(&self, norm: &str) -> bool {
        self.spec.pair_values.iter().any(|k| k == norm)
    }
}

/// A key pattern of a rule scope: `name`, `*name`, `name*` or `*name*`,
/// compared with normalized keys.
#[derive(Debug, Clone)]
pub enum KeyPattern {
    Exact(String),
    Suffix(String),
    Prefix(String),
    Contains(String),
}

impl KeyPattern {
    pub fn parse(pattern: &str) -> Self {
        let starts = pattern.starts_with('*');
        let ends = pattern.len() > 1 && pattern.ends_with('*');
        let core = normalize(pattern);
        match (starts, ends) {
            (true, true) => KeyPattern::Contains(core),
            (true, false) => KeyPattern::Suffix(core),
            (false, true) => KeyPattern::Prefix(core),
            (false, false) => KeyPattern::Exact(core),
        }
    }

    /// `raw`: a key as written; `norm`: the same key normalized. A suffix
    /// does not match from a one-letter word (`*id` matches `accessKeyId`,
    /// `key_id` and `keyid`, not `an_i_d`).
    pub fn matches(&self, raw: &str, norm: &str) -> bool {
        match self {
            KeyPattern::Exact(k) => norm == k,
            KeyPattern::Suffix(k) => {
                if !norm.ends_with(k.as_str()) {
                    return false;
                }
                // the raw characters from the suffix's first letter on
                let skip = norm.len() - k.len();
                let mut seen = 0;
                let from = raw.char_indices().find(|(_, c)| {
                    if c.is_ascii_alphanumeric() {
                        seen += 1;
                    }
                    seen > skip
                });
                let tail = from.map_or("", |(i, _)| &raw[i..]);
                !tail[tail.chars().next().map_or(0, char::len_utf8)..].starts_with(|c: char| !c.is_ascii_alphanumeric())
            }
            KeyPattern::Prefix(k) => norm.starts_with(k.as_str()),
            KeyPattern::Contains(k) => norm.contains(k.as_str()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> Keys {
        Keys::new(crate::rules::default_file().keys, &["employee_ssn".into()])
    }

    #[test]
    fn secret_key_names_by_ending() {
        let k = keys();
        for strong in [
            "password",
            "db_password",
            "X-Api-Key",
            "aws_secret_access_key",
            "sessionToken",
            "Set-Cookie",
            "client_secret",
            "SSHpassword",
            "DB_PASS",
            "ado_pat",
            "auth",
            "Employee-SSN",
            "resetUrlPassword",
            "secretarySecret",
            "PresharedKey",
        ] {
            assert_eq!(k.classify(strong, false), KeyClass::Strong, "{strong}");
        }
        for plain in [
            "secretName",
            "passwordLastUsed",
            "accessKeyId",
            "session_id",
            "author",
            "passenger",
            "passthrough",
            "passwordForPassenger",
            "secretSecretary",
            "PasswordResetUrl",
            "bypass",
            "path",
            "token_type",
            "tokens",
        ] {
            assert_eq!(k.classify(plain, false), KeyClass::Plain, "{plain}");
        }
        for weak in ["slackKey", "GITLAB_KEY", "basicAuth", "slack-webhook"] {
            assert_eq!(k.classify(weak, false), KeyClass::Weak, "{weak}");
        }
        for plain in ["publicKey", "key", "sortKey", "idempotency-key", "oauth"] {
            assert_eq!(k.classify(plain, false), KeyClass::Plain, "{plain}");
        }
        assert_eq!(k.classify("session", false), KeyClass::Strong);
        assert_eq!(k.classify("session", true), KeyClass::Plain);
    }

    #[test]
    fn key_patterns() {
        let m = |pattern: &str, key: &str| KeyPattern::parse(pattern).matches(key, &normalize(key));
        assert!(m("*name", "rolename") && m("*name", "userName") && m("*name", "user_name"));
        assert!(!m("*name", "namespace"));
        assert!(m("*id", "accessKeyId") && m("*accesskeyid", "aws_access_key_id") && m("*id", "uid"));
        assert!(!m("*id", "real_secret_which_isnt_an_i_d"));
        assert!(m("actor*", "actor_user_name"));
        assert!(m("*user*", "userIdentity"));
        assert!(m("actor_user_credential_uid", "actor_user_credential_uid"));
        assert_eq!(last_word("REACT_APP_PASS"), "pass");
        assert_eq!(last_word("adoPat"), "pat");
        assert_eq!(last_word("path"), "path");
    }
}
