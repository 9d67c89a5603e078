//! A transform that masks secrets and personal data in every string of an
//! event: typed columns, `unmapped` (at any depth) and `raw_data`.
//!
//! Rules come in three layers, all data (`default_rules.toml`, shipped with
//! the plugin) and all with an id:
//! 1. `sensitive-key`: a JSON key anywhere in the event that names a secret
//!    (case and punctuation ignored; the key *ends* with `password`,
//!    `passwd`, `secret`, `token`, `apikey`, `authorization`, `cookie`,
//!    `signature`, `credential(s)`, `privatekey`, `clientsecret`, ..., or is
//!    `auth`, `session`, `pass`) has its value replaced whole, whatever its
//!    type (booleans and nulls are left: they hold no secret); an object
//!    under it is entered instead, and its ids, names and times stay
//!    (`credentials: {accessKeyId, expiration, sessionToken}` keeps the first
//!    two). A key ending in `key` or `auth` (`slackKey`, `basicAuth`) has its
//!    value replaced only when the value looks like a credential. A
//!    name/value object (`{"name": "DB_PASSWORD", "value": "..."}`,
//!    CloudFormation's `ParameterKey`/`ParameterValue`) counts as that key.
//! 2. Value rules on free text: a keyword prefilter (one Aho-Corasick pass
//!    per string) before any regex, then a validator, entropy floor and
//!    allowlists: private keys, JWTs, GitHub/GitLab/Slack/Stripe/Google/
//!    OpenAI/Anthropic/AWS and ~45 other vendors' token formats, credentials
//!    in URLs, `Authorization: Bearer|Basic`, passwords on command lines,
//!    `key=value` in every common notation (any value of a password/secret/
//!    token key but placeholders; a high-entropy value of a generic `*key`),
//!    the values indented under a sensitive key alone on its line in
//!    multi-line text (`secret-block`: YAML, JSON, INI), and a last
//!    free-standing high-entropy token rule (documentation placeholders made
//!    of alphabet runs, `aBcDeF...123456`, are left).
//! 3. Personal data with validators: payment cards (Luhn; BIN and last four
//!    can be kept), IBANs (mod-97), email addresses and phone numbers, each
//!    with a per-field policy (emails in actor/user/principal/... fields are
//!    evidence and kept).
//!
//! Rules are field-aware: `skip_keys`/`only_keys` scope a rule by the keys on
//! a field's path, so an AWS access key id in `actor_user_credential_uid` or
//! an `accessKeyId` field is evidence and kept while the same id in a message
//! is masked. The time, id, sequence, class and correlation columns are never
//! touched (`PRESERVED_KEYS`, at any depth).
//!
//! Each finding is replaced according to its rule's action:
//! - `mask`: `[REDACTED:<rule-id>]` (the rule may keep `keep_start` /
//!   `keep_end` characters in clear, e.g. a card's BIN and last four);
//! - `pseudonym`: `[PSEUDONYM:<rule-id>:<32 hex>]`, the first 16 bytes of
//!   HMAC-SHA256 of the value under the tenant's key (never an unkeyed hash);
//!   when the event's tenant has no key the value is masked instead;
//! - `drop`: the whole field is removed (an array item becomes `null`).
//!
//! and adds `{"path": "a.b.0.c", "rule": "<rule-id>", "action": "<action>"}`
//! to the event's `redactions` array (once per path, rule and action; never
//! the value). Redacting an event twice changes nothing more.
//!
//! Config (the stage's `config` table; any other key is rejected):
//! - `extra_keys`: more key names to treat as sensitive (matched exactly,
//!   normalized).
//! - `disable`: rule ids to turn off (`sensitive-key` included).
//! - `rules`: rules to add or change. A rule with a new `id` runs before the
//!   defaults; one with an existing `id` changes only the fields it sets. The
//!   fields are those of `default_rules.toml` (see [`rules::RuleSpec`]); a
//!   new rule needs `pattern` (or `patterns`). Its `examples` / `negatives`,
//!   if given, are checked at `init`.
//! - `actions`: rule id → `mask` | `pseudonym` | `drop`.
//! - `allow`: regexes; a finding that matches one is left, for every rule.
//! - `preserve`: more key names never touched (exact, at any depth).
//! - `pseudonym_key`: the HMAC key for `pseudonym` (16+ characters).
//! - `pseudonym_keys`: tenant → key, chosen by the event's `tenant_uid` (or
//!   `tenant_field`); `pseudonym_key` is the fallback.
//! - `tenant_field`: the column holding the tenant (default `tenant_uid`).
//!
//! ```toml
//! [stages.redact.config]
//! actions = { email = "pseudonym" }
//! pseudonym_key = "${REDACT_PSEUDONYM_KEY}"
//! [[stages.redact.config.rules]]
//! id = "acme-key"
//! pattern = "ACME-[0-9A-F]{32}"
//! keywords = ["ACME-"]
//! action = "mask"
//! [[stages.redact.config.rules]]
//! id = "payment-card"
//! keep_start = 6
//! keep_end = 4
//! ```

mod checks;
mod hmac;
mod keys;
pub mod rules;
mod scan;

use keys::KeyClass;
use rules::{Action, Redacted, Replacement, RuleSet, RuleSpec};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use sluice_plugin_sdk::tree::{self, Node, Object};
use sluice_plugin_sdk::{Event, Outcome, Transform, export_transform};
use std::cell::RefCell;
use std::collections::{BTreeMap, HashSet};
use std::fmt::Write;
use std::hash::BuildHasher;
use std::sync::Arc;

const SENSITIVE_KEY: &str = "sensitive-key";

/// Keys whose values are never touched, at any depth: times, ids, sequence,
/// class and correlation columns, and the redaction list itself. (The
/// credential column `actor_user_credential_uid` is not here: the rules that
/// would touch an access key id or a token hash there skip it, and a real
/// token a source put there is still masked.)
const PRESERVED_KEYS: [&str; 20] = [
    "time",
    "observed_time",
    "seq",
    "class_uid",
    "category_uid",
    "activity_id",
    "type_uid",
    "severity_id",
    "status_id",
    "metadata_uid",
    "api_request_uid",
    "trace_id",
    "span_id",
    "correlation_uid",
    "actor_user_uid",
    "actor_session_uid",
    "cloud_account_uid",
    "tenant_uid",
    "redactions",
    "event_hash",
];

/// Whether a value is a replacement this plugin wrote (redacting twice changes nothing more).
fn already_masked(text: &str) -> bool {
    text.starts_with("[REDACTED:") || text.starts_with("[PSEUDONYM:")
}

/// Integers that may be card numbers (13 to 19 digits; every such integer fits a u64).
const CARD_RANGE: std::ops::Range<u64> = 1_000_000_000_000..10_000_000_000_000_000_000;

/// The plugin's config, as written in the pipeline file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedactConfig {
    /// More key names whose values are always masked (normalized: case, `-`,
    /// `_` and `.` ignored).
    #[serde(default)]
    pub extra_keys: Vec<String>,
    /// Rule ids to turn off.
    #[serde(default)]
    pub disable: Vec<String>,
    /// Rules to add (new id) or change (existing id, only the fields given).
    #[serde(default)]
    pub rules: Vec<RuleSpec>,
    /// Rule id → action (`mask`, `pseudonym`, `drop`).
    #[serde(default)]
    pub actions: BTreeMap<String, Action>,
    /// Regexes: findings matching one are left, for every rule.
    #[serde(default)]
    pub allow: Vec<String>,
    /// More keys never touched (exact names, at any depth).
    #[serde(default)]
    pub preserve: Vec<String>,
    /// The HMAC key for the `pseudonym` action (16+ characters).
    pub pseudonym_key: Option<String>,
    /// Per-tenant HMAC keys, by the value of the tenant column.
    #[serde(default)]
    pub pseudonym_keys: BTreeMap<String, String>,
    /// The column that names the tenant (default `tenant_uid`).
    pub tenant_field: Option<String>,
}

impl RedactConfig {
    /// Parses the config table, naming the field that is wrong.
    pub fn from_json(config: Value) -> Result<Self, String> {
        let Value::Object(map) = config else {
            return Err("redact: config must be a table".into());
        };
        serde_json::from_value(Value::Object(map.clone())).map_err(|e| {
            for (key, value) in &map {
                if key == "rules"
                    && let Value::Array(items) = value
                {
                    for (i, item) in items.iter().enumerate() {
                        if let Err(e) = serde_json::from_value::<RuleSpec>(item.clone()) {
                            let id = item.get("id").and_then(Value::as_str).unwrap_or("?");
                            return format!("redact: `rules` entry {} (`{id}`): {e}", i + 1);
                        }
                    }
                }
                let one = Value::Object(Map::from_iter([(key.clone(), value.clone())]));
                if let Err(e) = serde_json::from_value::<RedactConfig>(one) {
                    return format!("redact: `{key}`: {e}");
                }
            }
            format!("redact: {e}")
        })
    }
}

/// What the walk needs to know about a JSON key, worked out once per distinct
/// key (events of one source repeat the same keys).
struct KeyInfo {
    norm: String,
    class: KeyClass,
    /// Inside a sensitive object: an id, name or time that stays.
    metadata: bool,
    /// Bits (see `Redact::scope_bit`) of the rules that do not apply under it.
    skip: u128,
    /// Bits of the rules whose `only_keys` it matches.
    only: u128,
    /// A key whose value is never touched (`PRESERVED_KEYS`, `preserve`).
    preserved: bool,
    /// The name field of a name/value pair (`name`, `ParameterKey`, ...).
    pair_name: bool,
}

/// Distinct keys remembered before the cache starts over.
const KEY_CACHE_SIZE: usize = 8192;

/// A string the value rules found nothing in, and the `skip` and `only`
/// scope bits it was read under.
type CleanString = (Box<str>, u128, u128);

/// Clean strings remembered before that cache starts over, and the longest remembered.
const CLEAN_CACHE_SIZE: usize = 8192;
const CLEAN_CACHE_MAX_LEN: usize = 256;

pub struct Redact {
    rules: RuleSet,
    /// Looked up once per key of every event: foldhash, not SipHash, which
    /// was a visible share of the plugin's time.
    key_cache: RefCell<foldhash::HashMap<String, Arc<KeyInfo>>>,
    /// Strings the value rules found nothing in, by the hash of the string and
    /// the rule scopes (`skip`, `only` bits) it was read under: the values of
    /// audit events repeat (user names, hosts, verbs, paths, agents), and a
    /// lookup costs a fraction of the keyword automaton and the regexes.
    /// The entry holds the string and scopes, so a hash collision is a miss.
    clean: RefCell<foldhash::HashMap<u64, CleanString>>,
    /// For each rule with key scopes, its bit in `KeyInfo::skip` / `only`.
    scope_bit: Vec<Option<u8>>,
    /// The bits of the rules that have `only_keys`.
    only_bits: u128,
    /// The action of `sensitive-key`, or `None` when it is disabled.
    key_action: Option<Action>,
    preserve: foldhash::HashSet<String>,
    default_key: Option<Vec<u8>>,
    tenant_keys: BTreeMap<String, Vec<u8>>,
    tenant_field: String,
    card_rule: Option<usize>,
}

/// What one event's walk collects.
struct Walk<'a> {
    path: String,
    /// Rules (by scope bit) that a key on the path turns off.
    skip: u128,
    /// Rules (by scope bit) whose `only_keys` a key on the path matches.
    only: u128,
    found: Vec<Value>,
    seen: HashSet<(String, usize, Action)>,
    /// How many sensitive keys enclose the current field.
    secret_depth: usize,
    hmac_key: Option<&'a [u8]>,
}

impl Walk<'_> {
    fn record(&mut self, rule: usize, id: &str, action: Action) {
        if self.seen.insert((self.path.clone(), rule, action)) {
            self.found.push(json!({"path": self.path, "rule": id, "action": action.name()}));
        }
    }

    fn enter(&mut self, segment: &str) -> usize {
        let len = self.path.len();
        if !self.path.is_empty() {
            self.path.push('.');
        }
        self.path.push_str(segment);
        len
    }

    /// `enter` for an array index, without a `String` for it.
    fn enter_index(&mut self, index: usize) -> usize {
        let len = self.path.len();
        if !self.path.is_empty() {
            self.path.push('.');
        }
        write!(self.path, "{index}").expect("writing to a String");
        len
    }
}

fn validate_key(what: &str, key: &str) -> Result<Vec<u8>, String> {
    if key.chars().count() < 16 {
        return Err(format!("redact: `{what}` must be at least 16 characters"));
    }
    Ok(key.as_bytes().to_vec())
}

impl Transform for Redact {
    fn init(config: Value) -> Result<Self, String> {
        Redact::build(RedactConfig::from_json(config)?)
    }

    /// Most events hold nothing to redact: a scan of the text (see `scan.rs`)
    /// finds that out without decoding the event into a tree.
    fn unchanged(&mut self, text: &str) -> bool {
        scan::Scan::unchanged(self, text)
    }

    /// The SDK calls [`Transform::process_text`]; this serves callers that
    /// hold a decoded event, through the same code.
    fn process(&mut self, event: Event) -> Outcome {
        sluice_plugin_sdk::process_as_text(event, |text| self.redact_text(text))
    }

    /// An event the scan could not call unchanged: decoded into a tree that
    /// borrows from its text, walked, and written again if anything changed.
    fn process_text(&mut self, text: &str) -> Option<Outcome> {
        Some(self.redact_text(text))
    }
}

impl Redact {
    /// Redacts one event's text (see the module docs): `Unchanged` when
    /// nothing was found and no object named a key twice, else the event
    /// written again with what was found in `redactions`.
    fn redact_text(&self, text: &str) -> Outcome {
        let (mut event, repeated) = match tree::decode(text) {
            Ok((Node::Object(event), repeated)) => (event, repeated),
            Ok(_) => return Outcome::Error("event is not a JSON object".into()),
            Err(e) => return Outcome::Error(format!("event is not valid JSON: {e}")),
        };
        let tenant = event.get(&self.tenant_field).and_then(Node::as_str);
        let hmac_key = tenant.and_then(|t| self.tenant_keys.get(t)).or(self.default_key.as_ref());
        let mut walk = Walk {
            path: String::new(),
            skip: 0,
            only: 0,
            found: Vec::new(),
            seen: HashSet::new(),
            secret_depth: 0,
            hmac_key: hmac_key.map(Vec::as_slice),
        };
        let drops = self.visit_members(&mut event, None, &mut walk);
        if walk.found.is_empty() && drops == 0 && !repeated {
            // every change is recorded, so nothing changed
            return Outcome::Unchanged;
        }
        if !walk.found.is_empty() {
            let found: Vec<Node> = walk.found.iter().map(Node::from).collect();
            match event.find("redactions") {
                Ok(i) => match &mut event.members_mut()[i].1 {
                    Node::Array(existing) => existing.extend(found),
                    other => *other = Node::Array(found),
                },
                Err(_) => event.insert("redactions", Node::Array(found)),
            }
        }
        let mut out = Vec::with_capacity(text.len() + 128);
        event.write_json(&mut out);
        Outcome::Text(String::from_utf8(out).expect("JSON text is UTF-8"))
    }

    /// Visits each member of an object (the name/value pair's class for its
    /// value key, if any) and removes those to drop; returns how many.
    fn visit_members(&self, map: &mut Object, pair: Option<(String, KeyClass)>, walk: &mut Walk) -> usize {
        let mut drops = Vec::new();
        for (i, (key, value)) in map.members_mut().iter_mut().enumerate() {
            let class = pair.as_ref().filter(|(value_key, _)| value_key == key).map(|(_, class)| *class);
            if self.visit_field(key, value, class, walk) {
                drops.push(i);
            }
        }
        for &i in drops.iter().rev() {
            map.members_mut().remove(i);
        }
        drops.len()
    }

    pub fn build(config: RedactConfig) -> Result<Self, String> {
        let file = rules::default_file();
        let mut defaults = file.rules;
        let mut added: Vec<RuleSpec> = Vec::new();
        let mut to_check: Vec<String> = Vec::new();
        for spec in config.rules {
            if spec.id == SENSITIVE_KEY {
                return Err(format!(
                    "redact: `{SENSITIVE_KEY}` is not a pattern rule; use `extra_keys`, `actions` or `disable`"
                ));
            }
            to_check.push(spec.id.clone());
            if let Some(existing) = defaults.iter_mut().chain(added.iter_mut()).find(|r| r.id == spec.id) {
                existing.merge(spec);
            } else {
                added.push(spec);
            }
        }
        let specs: Vec<RuleSpec> = added.into_iter().chain(defaults).collect();
        let known = |id: &str| id == SENSITIVE_KEY || specs.iter().any(|r| r.id == id);
        let disabled: HashSet<&str> = config.disable.iter().map(String::as_str).collect();
        for id in &config.disable {
            if !known(id) {
                return Err(format!("redact: `disable` names an unknown rule `{id}`"));
            }
        }
        for id in config.actions.keys() {
            if !known(id) {
                return Err(format!("redact: `actions` names an unknown rule `{id}`"));
            }
        }
        let mut compiled = Vec::new();
        for mut spec in specs.into_iter().filter(|r| !disabled.contains(r.id.as_str())) {
            if let Some(action) = config.actions.get(&spec.id) {
                spec.action = Some(*action);
            }
            compiled.push(spec.compile().map_err(|e| format!("redact: {e}"))?);
        }
        let allow = config
            .allow
            .iter()
            .map(|p| regex::Regex::new(p).map_err(|e| format!("redact: `allow` pattern `{p}`: {e}")))
            .collect::<Result<Vec<_>, _>>()?;
        let key_action =
            (!disabled.contains(SENSITIVE_KEY)).then(|| config.actions.get(SENSITIVE_KEY).copied().unwrap_or_default());
        let default_key = config.pseudonym_key.as_deref().map(|k| validate_key("pseudonym_key", k)).transpose()?;
        let mut tenant_keys = BTreeMap::new();
        for (tenant, key) in &config.pseudonym_keys {
            tenant_keys.insert(tenant.clone(), validate_key(&format!("pseudonym_keys.{tenant}"), key)?);
        }
        let pseudonyms =
            key_action == Some(Action::Pseudonym) || compiled.iter().any(|r| r.action == Action::Pseudonym);
        if pseudonyms && default_key.is_none() && tenant_keys.is_empty() {
            return Err("redact: the `pseudonym` action needs `pseudonym_key` or `pseudonym_keys`".into());
        }
        let keys = keys::Keys::new(file.keys, &config.extra_keys);
        let rules = RuleSet::new(compiled, keys, allow);
        let mut scope_bit = vec![None; rules.rules.len()];
        let mut only_bits = 0u128;
        for (bit, (index, rule)) in rules.rules.iter().enumerate().filter(|(_, r)| r.scoped()).enumerate() {
            let bit = u8::try_from(bit)
                .ok()
                .filter(|b| *b < 128)
                .ok_or("redact: at most 128 rules can have `skip_keys` or `only_keys`")?;
            scope_bit[index] = Some(bit);
            if rule.has_only_keys() {
                only_bits |= 1 << bit;
            }
        }
        for id in &to_check {
            let Some(index) = rules.index(id) else { continue };
            let rule = &rules.rules[index];
            if let Some(example) = rule.examples.iter().find(|e| !rules.rule_finds(index, e)) {
                return Err(format!("redact: rule `{id}` finds nothing in its example `{example}`"));
            }
            if let Some(negative) = rule.negatives.iter().find(|e| rules.rule_finds(index, e)) {
                return Err(format!("redact: rule `{id}` finds something in its negative `{negative}`"));
            }
        }
        Ok(Redact {
            card_rule: rules.index("payment-card"),
            rules,
            key_cache: RefCell::new(foldhash::HashMap::default()),
            clean: RefCell::new(foldhash::HashMap::default()),
            scope_bit,
            only_bits,
            key_action,
            preserve: PRESERVED_KEYS.iter().map(|k| k.to_string()).chain(config.preserve).collect(),
            default_key,
            tenant_keys,
            tenant_field: config.tenant_field.unwrap_or_else(|| "tenant_uid".into()),
        })
    }

    /// What the walk needs to know about `key` (cached).
    fn key_info(&self, key: &str) -> Arc<KeyInfo> {
        if let Some(info) = self.key_cache.borrow().get(key) {
            return info.clone();
        }
        let norm = keys::normalize(key);
        let (mut skip, mut only) = (0u128, 0u128);
        for (index, bit) in self.scope_bit.iter().enumerate() {
            let Some(bit) = bit else { continue };
            let rule = &self.rules.rules[index];
            if rule.skipped_by(key, &norm) {
                skip |= 1 << bit;
            }
            if rule.allowed_by(key, &norm) {
                only |= 1 << bit;
            }
        }
        let info = Arc::new(KeyInfo {
            class: self.rules.keys.classify(key, false),
            metadata: self.rules.keys.is_metadata(key),
            preserved: self.preserve.contains(key),
            pair_name: self.rules.keys.is_pair_name(&norm),
            norm,
            skip,
            only,
        });
        let mut cache = self.key_cache.borrow_mut();
        if cache.len() >= KEY_CACHE_SIZE {
            cache.clear();
        }
        cache.insert(key.to_string(), info.clone());
        info
    }

    /// Visits `key: value`; returns whether the field is to be dropped.
    /// `class`: the class of the key, when a name/value pair decided it.
    fn visit_field(&self, key: &str, value: &mut Node, class: Option<KeyClass>, walk: &mut Walk) -> bool {
        if self.preserve.contains(key) {
            return false;
        }
        let info = self.key_info(key);
        let parent = walk.enter(key);
        let scope = (walk.skip, walk.only);
        walk.skip |= info.skip;
        walk.only |= info.only;
        let class = match self.key_action {
            Some(_) => class.unwrap_or(info.class),
            None => KeyClass::Plain,
        };
        let drop = match class {
            KeyClass::Strong => self.redact_secret(value, walk),
            KeyClass::Weak if value.as_str().is_some_and(checks::credential_like) => self.redact_whole(value, walk),
            _ if walk.secret_depth > 0 && !info.metadata => self.redact_secret(value, walk),
            _ => self.walk(value, walk),
        };
        (walk.skip, walk.only) = scope;
        walk.path.truncate(parent);
        drop
    }

    /// The value of a sensitive key: an object is entered (its ids, names and
    /// times stay, everything else is masked), anything else replaced whole.
    fn redact_secret(&self, value: &mut Node, walk: &mut Walk) -> bool {
        let entered = match value {
            Node::Object(_) => true,
            Node::Array(items) => items.iter().any(|i| matches!(i, Node::Object(_) | Node::Array(_))),
            _ => false,
        };
        if !entered {
            return self.redact_whole(value, walk);
        }
        walk.secret_depth += 1;
        match value {
            Node::Object(map) => {
                self.visit_members(map, None, walk);
            }
            Node::Array(items) => {
                for (index, item) in items.iter_mut().enumerate() {
                    let parent = walk.enter_index(index);
                    if self.redact_secret(item, walk) {
                        *item = Node::Null;
                    }
                    walk.path.truncate(parent);
                }
            }
            _ => {}
        }
        walk.secret_depth -= 1;
        false
    }

    /// Replaces a sensitive key's whole value; returns whether to drop it.
    fn redact_whole(&self, value: &mut Node, walk: &mut Walk) -> bool {
        let text = match value {
            Node::Null | Node::Bool(_) => return false,
            Node::String(s) if already_masked(s) => return false,
            Node::String(s) => s.to_string(),
            Node::Number(n) => n.to_string(),
            Node::Array(_) | Node::Object(_) => {
                let mut json = Vec::new();
                value.write_json(&mut json);
                String::from_utf8(json).expect("JSON text is UTF-8")
            }
        };
        let action = self.key_action.unwrap_or_default();
        let index = usize::MAX;
        match self.replacement(SENSITIVE_KEY, action, 0, 0, &text, walk.hmac_key) {
            (Replacement::Drop, _) => {
                walk.record(index, SENSITIVE_KEY, Action::Drop);
                true
            }
            (Replacement::Text(t), used) => {
                *value = Node::String(t.into());
                walk.record(index, SENSITIVE_KEY, used);
                false
            }
        }
    }

    /// What a finding becomes, and the action actually taken (a pseudonym
    /// without a key for the tenant falls back to a mask).
    fn replacement(
        &self,
        id: &str,
        action: Action,
        keep_start: usize,
        keep_end: usize,
        secret: &str,
        hmac_key: Option<&[u8]>,
    ) -> (Replacement, Action) {
        match (action, hmac_key) {
            (Action::Drop, _) => (Replacement::Drop, Action::Drop),
            (Action::Pseudonym, Some(key)) => {
                (Replacement::Text(format!("[PSEUDONYM:{id}:{}]", hmac::pseudonym(key, secret))), Action::Pseudonym)
            }
            _ => {
                let mask = format!("[REDACTED:{id}]");
                let keep = keep_start + keep_end;
                let text = if keep > 0 && secret.is_ascii() && secret.len() > keep {
                    format!("{}{mask}{}", &secret[..keep_start], &secret[secret.len() - keep_end..])
                } else {
                    mask
                };
                (Replacement::Text(text), Action::Mask)
            }
        }
    }

    /// Walks a value that is not under a sensitive key; returns whether to drop it.
    fn walk(&self, value: &mut Node, walk: &mut Walk) -> bool {
        match value {
            Node::String(text) => match self.redact_string(text, None, walk) {
                Some(Some(new)) => {
                    *text = new.into();
                    false
                }
                found => found.is_some(),
            },
            Node::Number(n) => {
                // a card number written as a JSON number
                let Some(card) = self.card_rule else { return false };
                // text only for the integers that may be cards
                let Some(digits) = n.as_u64().filter(|v| CARD_RANGE.contains(v)) else {
                    return false;
                };
                match self.redact_string(&digits.to_string(), Some(card), walk) {
                    Some(Some(new)) => {
                        *value = Node::String(new.into());
                        false
                    }
                    found => found.is_some(),
                }
            }
            Node::Array(items) => {
                for (index, item) in items.iter_mut().enumerate() {
                    let parent = walk.enter_index(index);
                    if self.walk(item, walk) {
                        *item = Node::Null;
                    }
                    walk.path.truncate(parent);
                }
                false
            }
            Node::Object(map) => {
                let pair = self.name_value_pair(map);
                self.visit_members(map, pair, walk);
                false
            }
            Node::Null | Node::Bool(_) => false,
        }
    }

    /// In `{"name": "DB_PASSWORD", "value": "..."}`, the value field's key and
    /// the class the name gives it.
    fn name_value_pair(&self, map: &Object) -> Option<(String, KeyClass)> {
        if map.len() > 8 || self.key_action.is_none() {
            return None;
        }
        let keys = &self.rules.keys;
        let name = map.iter().find(|(k, _)| self.key_info(k).pair_name)?.1.as_str()?;
        let class = keys.classify(name, false);
        if class == KeyClass::Plain {
            return None;
        }
        let (value_key, _) = map.iter().find(|(k, _)| keys.is_pair_value(&self.key_info(k).norm))?;
        Some((value_key.to_string(), class))
    }

    /// Whether rule `index` runs on a string (only rule `only` if given) whose
    /// path's keys turn off the rules in `skip` and match the `only_keys` of
    /// those in `only_hit` (scope bits).
    fn applies(&self, index: usize, only: Option<usize>, skip: u128, only_hit: u128) -> bool {
        only.is_none_or(|o| o == index)
            && self.scope_bit[index].is_none_or(|bit| {
                let bit = 1u128 << bit;
                skip & bit == 0 && (self.only_bits & bit == 0 || only_hit & bit != 0)
            })
    }

    /// Whether the value rules (only rule `only` if given; those that apply
    /// under the scopes `skip` and `only_hit`) find something in `text`.
    fn finds(&self, text: &str, only: Option<usize>, skip: u128, only_hit: u128) -> bool {
        let mut replace = |_: usize, _: &str| Replacement::Text(String::new());
        !matches!(self.run_rules(text, only, skip, only_hit, &mut replace), Redacted::Unchanged)
    }

    /// Runs the value rules (only rule `only` if given; those that apply
    /// under the scopes `skip` and `only_hit`) over `text`, `replace` saying
    /// what each finding becomes. With all rules, the strings they found
    /// nothing in are remembered, and not searched again.
    fn run_rules(
        &self,
        text: &str,
        only: Option<usize>,
        skip: u128,
        only_hit: u128,
        replace: &mut dyn FnMut(usize, &str) -> Replacement,
    ) -> Redacted {
        if text.len() < self.rules.min_len() {
            return Redacted::Unchanged;
        }
        let hash = (only.is_none() && text.len() <= CLEAN_CACHE_MAX_LEN)
            .then(|| foldhash::fast::FixedState::with_seed(0).hash_one((text, skip, only_hit)));
        // most strings of an event that changes are clean too, and known to be
        if let Some(hash) = hash
            && let Some((known, s, o)) = self.clean.borrow().get(&hash)
            && (&**known, *s, *o) == (text, skip, only_hit)
        {
            return Redacted::Unchanged;
        }
        let applies = |index: usize| self.applies(index, only, skip, only_hit);
        let redacted = self.rules.redact(text, &applies, replace);
        if let Some(hash) = hash
            && matches!(redacted, Redacted::Unchanged)
        {
            let mut clean = self.clean.borrow_mut();
            if clean.len() >= CLEAN_CACHE_SIZE {
                clean.clear();
            }
            clean.insert(hash, (text.into(), skip, only_hit));
        }
        redacted
    }

    /// Runs the value rules over one string (only rule `only` if given).
    /// `None`: nothing found; `Some(None)`: drop the field; `Some(Some(new))`: changed.
    fn redact_string(&self, text: &str, only: Option<usize>, walk: &mut Walk) -> Option<Option<String>> {
        let hmac_key = walk.hmac_key;
        let mut hits: Vec<(usize, Action)> = Vec::new();
        let mut replace = |index: usize, secret: &str| {
            let rule = &self.rules.rules[index];
            let (replacement, used) =
                self.replacement(&rule.id, rule.action, rule.keep_start, rule.keep_end, secret, hmac_key);
            if !hits.contains(&(index, used)) {
                hits.push((index, used));
            }
            replacement
        };
        match self.run_rules(text, only, walk.skip, walk.only, &mut replace) {
            Redacted::Unchanged => None,
            Redacted::Drop(index) => {
                walk.record(index, &self.rules.rules[index].id, Action::Drop);
                Some(None)
            }
            Redacted::Changed(new, _) => {
                for (index, action) in hits {
                    walk.record(index, &self.rules.rules[index].id, action);
                }
                Some(Some(new))
            }
        }
    }
}

export_transform!(Redact);

#[cfg(test)]
mod tests;
