//! Conditions on events, and what the pipeline does with them after the
//! chain: **routes** send each event to one or more streams, **filters** drop,
//! sample or rate-limit known noise, and the **protected set** overrides any
//! filter that would drop a security event.
//!
//! A condition is a small expression over an event's fields, written as a
//! string in the pipeline file:
//!
//! ```text
//! class_uid in [3001, 3005] or (status_id == 2 and not source == "app")
//! api_operation ~ "^(Get|List|Describe)" and actor_user_type == "AssumedRole"
//! unmapped.metadata_labels in ["failed-authentication"]   resources.type == "secrets"
//! ```
//!
//! Fields are the schema's columns (`docs/schema.md`), `source` (the source's
//! name), a field of the `resources` list (`resources.type`: any item) or a
//! path into `unmapped` (`unmapped.a.b`; through arrays, any element).
//! Operators: `==`, `!=`, `<`, `<=`, `>`, `>=` (integers), `in [..]`,
//! `not in [..]`, `~` and `!~` (regular expressions, on text), `exists`;
//! combined with `and`, `or`, `not` and parentheses. A missing field equals
//! `null` and matches nothing but `!= value`, `not in` and `!~`. Literals must
//! fit the column: `class_uid == "3002"` is an error, reported with its place.

use crate::schema::{self, Kind, Row};
use regex::Regex;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Mutex;

/// What a condition reads.
#[derive(Debug, Clone, PartialEq)]
pub enum Field {
    Source,
    Column(usize, Kind),
    /// A field of the items of a list-of-structs column.
    Item(usize, usize),
    /// A path into `unmapped`.
    Unmapped(Vec<String>),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Lit {
    Int(i64),
    Str(String),
    Bool(bool),
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    In,
    NotIn,
    Match,
    NotMatch,
    Exists,
}

/// A compiled condition.
#[derive(Debug, Clone)]
pub enum Expr {
    And(Vec<Expr>),
    Or(Vec<Expr>),
    Not(Box<Expr>),
    Cmp { field: Field, op: Op, values: Vec<Lit>, regex: Option<Regex> },
}

/// A parse or type error, at a byte offset of the condition text.
#[derive(Debug, PartialEq)]
pub struct ExprError {
    pub offset: usize,
    pub message: String,
}

/// What an event offers a condition: its values at a field (several for a
/// list), or `None` when unknown (only while checking rules against examples).
pub trait Values {
    fn values(&self, field: &Field) -> Option<Vec<Lit>>;
}

impl Expr {
    /// Parses and type-checks a condition.
    pub fn parse(text: &str) -> Result<Expr, ExprError> {
        let tokens = lex(text)?;
        let mut p = Parser { tokens, at: 0, end: text.len() };
        let expr = p.or()?;
        match p.tokens.get(p.at) {
            None => Ok(expr),
            Some((offset, t)) => Err(ExprError { offset: *offset, message: format!("unexpected {}", t.describe()) }),
        }
    }

    /// A field name, as conditions name fields.
    pub fn field(name: &str) -> Result<Field, String> {
        resolve(name)
    }

    /// Whether the event matches; `None` when it depends on a field the
    /// event does not know (three-valued: `false and unknown` is `false`).
    pub fn eval(&self, event: &dyn Values) -> Option<bool> {
        match self {
            Expr::And(items) => kleene(items, event, false),
            Expr::Or(items) => kleene(items, event, true),
            Expr::Not(inner) => inner.eval(event).map(|b| !b),
            Expr::Cmp { field, op, values, regex } => {
                let found = event.values(field)?;
                Some(compare(&found, *op, values, regex.as_ref()))
            }
        }
    }

    /// Whether the event matches (every field known).
    pub fn matches(&self, event: &dyn Values) -> bool {
        self.eval(event).unwrap_or(false)
    }

    /// Events that satisfy the condition's equalities, one per alternative:
    /// what a rule is checked against to see if it could drop them.
    pub fn examples(&self) -> Vec<Vec<(Field, Lit)>> {
        const MAX: usize = 256;
        match self {
            Expr::Cmp { field, op: Op::Eq, values, .. } => vec![vec![(field.clone(), values[0].clone())]],
            Expr::Cmp { field, op: Op::In, values, .. } => {
                values.iter().map(|v| vec![(field.clone(), v.clone())]).collect()
            }
            Expr::Cmp { .. } | Expr::Not(_) => vec![Vec::new()],
            Expr::Or(items) => items.iter().flat_map(Expr::examples).take(MAX).collect(),
            Expr::And(items) => items.iter().fold(vec![Vec::new()], |acc, item| {
                let mut out = Vec::new();
                for a in &acc {
                    for b in item.examples() {
                        if out.len() < MAX {
                            out.push(a.iter().cloned().chain(b).collect());
                        }
                    }
                }
                out
            }),
        }
    }
}

/// Three-valued `and` (`decisive` false) or `or` (true): the decisive value
/// of any item decides; else unknown if any item is, else the other value.
fn kleene(items: &[Expr], event: &dyn Values, decisive: bool) -> Option<bool> {
    let mut result = Some(!decisive);
    for item in items {
        match item.eval(event) {
            Some(b) if b == decisive => return Some(decisive),
            None => result = None,
            Some(_) => {}
        }
    }
    result
}

fn compare(found: &[Lit], op: Op, values: &[Lit], regex: Option<&Regex>) -> bool {
    let eq = |a: &Lit, b: &Lit| match (a, b) {
        (Lit::Int(x), Lit::Str(y)) | (Lit::Str(y), Lit::Int(x)) => y.parse::<i64>().ok() == Some(*x),
        _ => a == b,
    };
    let any_in = || found.iter().any(|f| values.iter().any(|v| eq(f, v)));
    let text = |l: &Lit| match l {
        Lit::Str(s) => s.clone(),
        Lit::Int(i) => i.to_string(),
        Lit::Bool(b) => b.to_string(),
    };
    let int_cmp = |test: fn(i64, i64) -> bool| {
        let Some(Lit::Int(v)) = values.first() else { return false };
        found.iter().any(|f| match f {
            Lit::Int(x) => test(*x, *v),
            Lit::Str(s) => s.parse::<i64>().is_ok_and(|x| test(x, *v)),
            Lit::Bool(_) => false,
        })
    };
    match op {
        Op::Eq | Op::In => any_in(),
        Op::Ne | Op::NotIn => !any_in(),
        Op::Match => found.iter().any(|f| regex.is_some_and(|r| r.is_match(&text(f)))),
        Op::NotMatch => !found.iter().any(|f| regex.is_some_and(|r| r.is_match(&text(f)))),
        Op::Lt => int_cmp(|a, b| a < b),
        Op::Le => int_cmp(|a, b| a <= b),
        Op::Gt => int_cmp(|a, b| a > b),
        Op::Ge => int_cmp(|a, b| a >= b),
        Op::Exists => !found.is_empty(),
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Ident(String),
    Str(String),
    Int(i64),
    Sym(&'static str),
}

impl Token {
    fn describe(&self) -> String {
        match self {
            Token::Ident(s) => format!("`{s}`"),
            Token::Str(s) => format!("string \"{s}\""),
            Token::Int(i) => format!("number {i}"),
            Token::Sym(s) => format!("`{s}`"),
        }
    }
}

fn lex(text: &str) -> Result<Vec<(usize, Token)>, ExprError> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        let start = i;
        match c {
            b' ' | b'\t' | b'\n' | b'\r' => i += 1,
            b'"' | b'\'' => {
                let mut s = String::new();
                i += 1;
                loop {
                    let Some(&b) = bytes.get(i) else {
                        return Err(ExprError { offset: start, message: "unterminated string".into() });
                    };
                    if b == c {
                        i += 1;
                        break;
                    }
                    if b == b'\\' && matches!(bytes.get(i + 1), Some(&n) if n == c || n == b'\\') {
                        s.push(bytes[i + 1] as char);
                        i += 2;
                        continue;
                    }
                    let ch = text[i..].chars().next().expect("in bounds");
                    s.push(ch);
                    i += ch.len_utf8();
                }
                out.push((start, Token::Str(s)));
            }
            b'0'..=b'9' | b'-' => {
                i += 1;
                while i < bytes.len() && bytes[i].is_ascii_digit() {
                    i += 1;
                }
                let n =
                    text[start..i].parse().map_err(|_| ExprError { offset: start, message: "bad number".into() })?;
                out.push((start, Token::Int(n)));
            }
            b'a'..=b'z' | b'A'..=b'Z' | b'_' => {
                while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || matches!(bytes[i], b'_' | b'.' | b'-')) {
                    i += 1;
                }
                out.push((start, Token::Ident(text[start..i].to_string())));
            }
            _ => {
                let sym = ["==", "!=", "<=", ">=", "!~", "<", ">", "~", "(", ")", "[", "]", ","]
                    .into_iter()
                    .find(|s| text[i..].starts_with(s))
                    .ok_or_else(|| ExprError {
                        offset: start,
                        message: format!("unexpected `{}`", text[i..].chars().next().unwrap_or(' ')),
                    })?;
                i += sym.len();
                out.push((start, Token::Sym(sym)));
            }
        }
    }
    Ok(out)
}

struct Parser {
    tokens: Vec<(usize, Token)>,
    at: usize,
    end: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at).map(|(_, t)| t)
    }

    fn offset(&self) -> usize {
        self.tokens.get(self.at).map_or(self.end, |(o, _)| *o)
    }

    fn error<T>(&self, message: impl Into<String>) -> Result<T, ExprError> {
        Err(ExprError { offset: self.offset(), message: message.into() })
    }

    fn keyword(&mut self, word: &str) -> bool {
        if self.peek() == Some(&Token::Ident(word.to_string())) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    fn sym(&mut self, s: &str) -> bool {
        if matches!(self.peek(), Some(Token::Sym(x)) if *x == s) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    fn or(&mut self) -> Result<Expr, ExprError> {
        let mut items = vec![self.and()?];
        while self.keyword("or") {
            items.push(self.and()?);
        }
        Ok(if items.len() == 1 { items.pop().expect("one") } else { Expr::Or(items) })
    }

    fn and(&mut self) -> Result<Expr, ExprError> {
        let mut items = vec![self.not()?];
        while self.keyword("and") {
            items.push(self.not()?);
        }
        Ok(if items.len() == 1 { items.pop().expect("one") } else { Expr::And(items) })
    }

    fn not(&mut self) -> Result<Expr, ExprError> {
        if self.keyword("not") {
            return Ok(Expr::Not(Box::new(self.not()?)));
        }
        if self.sym("(") {
            let inner = self.or()?;
            if !self.sym(")") {
                return self.error("expected `)`");
            }
            return Ok(inner);
        }
        self.comparison()
    }

    fn comparison(&mut self) -> Result<Expr, ExprError> {
        let at = self.offset();
        let name = match self.peek() {
            Some(Token::Ident(name)) if !matches!(name.as_str(), "and" | "or" | "not" | "in" | "exists") => {
                name.clone()
            }
            Some(t) => return self.error(format!("expected a field, found {}", t.describe())),
            None => return self.error("expected a field, found the end"),
        };
        self.at += 1;
        let field = resolve(&name).map_err(|message| ExprError { offset: at, message })?;
        let op_at = self.offset();
        let op = if self.keyword("exists") {
            return Ok(Expr::Cmp { field, op: Op::Exists, values: Vec::new(), regex: None });
        } else if self.keyword("in") {
            Op::In
        } else if self.keyword("not") {
            if !self.keyword("in") {
                return self.error("expected `in` after `not`");
            }
            Op::NotIn
        } else {
            let op = match self.peek() {
                Some(Token::Sym("==")) => Op::Eq,
                Some(Token::Sym("!=")) => Op::Ne,
                Some(Token::Sym("<")) => Op::Lt,
                Some(Token::Sym("<=")) => Op::Le,
                Some(Token::Sym(">")) => Op::Gt,
                Some(Token::Sym(">=")) => Op::Ge,
                Some(Token::Sym("~")) => Op::Match,
                Some(Token::Sym("!~")) => Op::NotMatch,
                _ => return self.error(format!("expected an operator after `{name}` (==, !=, <, >, in, ~, exists …)")),
            };
            self.at += 1;
            op
        };
        let values = if matches!(op, Op::In | Op::NotIn) {
            if !self.sym("[") {
                return self.error("expected a list `[...]`");
            }
            let mut values = Vec::new();
            if !self.sym("]") {
                loop {
                    values.push(self.literal()?);
                    if self.sym("]") {
                        break;
                    }
                    if !self.sym(",") {
                        return self.error("expected `,` or `]`");
                    }
                }
            }
            values
        } else {
            vec![self.literal()?]
        };
        let mut regex = None;
        if matches!(op, Op::Match | Op::NotMatch) {
            let Lit::Str(pattern) = &values[0] else {
                return Err(ExprError { offset: op_at, message: "`~` needs a string pattern".into() });
            };
            regex = Some(Regex::new(pattern).map_err(|e| ExprError {
                offset: op_at,
                message: format!("bad regular expression: {}", e.to_string().lines().last().unwrap_or_default()),
            })?);
        }
        if matches!(op, Op::Lt | Op::Le | Op::Gt | Op::Ge) && !matches!(values[0], Lit::Int(_)) {
            return Err(ExprError { offset: op_at, message: "`<`, `>` compare integers".into() });
        }
        check_types(&name, &field, op, &values).map_err(|message| ExprError { offset: op_at, message })?;
        Ok(Expr::Cmp { field, op, values, regex })
    }

    fn literal(&mut self) -> Result<Lit, ExprError> {
        let lit = match self.peek() {
            Some(Token::Str(s)) => Lit::Str(s.clone()),
            Some(Token::Int(i)) => Lit::Int(*i),
            Some(Token::Ident(w)) if w == "true" => Lit::Bool(true),
            Some(Token::Ident(w)) if w == "false" => Lit::Bool(false),
            Some(t) => return self.error(format!("expected a value, found {}", t.describe())),
            None => return self.error("expected a value, found the end"),
        };
        self.at += 1;
        Ok(lit)
    }
}

/// A field name, resolved against the schema.
fn resolve(name: &str) -> Result<Field, String> {
    if name == "source" {
        return Ok(Field::Source);
    }
    if let Some(path) = name.strip_prefix("unmapped.") {
        return Ok(Field::Unmapped(path.split('.').map(str::to_string).collect()));
    }
    if let Some((column, item)) = name.split_once('.')
        && let Some((i, Kind::StructList(fields))) = schema::column(column)
    {
        return match fields.iter().position(|(f, _)| *f == item) {
            Some(j) => Ok(Field::Item(i, j)),
            None => Err(format!(
                "`{column}` items have no field `{item}` (they have {})",
                fields.iter().map(|(f, _)| *f).collect::<Vec<_>>().join(", ")
            )),
        };
    }
    match schema::column(name) {
        Some((_, Kind::Json)) => Err(format!("`{name}` is JSON: name a path in it, e.g. `{name}.key`")),
        Some((_, Kind::StructList(_))) => {
            Err(format!("`{name}` is a list: name a field of its items, e.g. `{name}.type`"))
        }
        Some((i, kind)) => Ok(Field::Column(i, kind)),
        None => Err(format!(
            "unknown field `{name}`: use a column of docs/schema.md, `source`, `resources.<field>` or `unmapped.<path>`"
        )),
    }
}

fn check_types(name: &str, field: &Field, op: Op, values: &[Lit]) -> Result<(), String> {
    let Field::Column(_, kind) = field else { return Ok(()) };
    let integer = matches!(kind, Kind::Int32 | Kind::Int64 | Kind::Timestamp);
    for v in values {
        let fits = match v {
            Lit::Int(_) => integer || matches!(op, Op::Match | Op::NotMatch),
            Lit::Str(_) => !integer || matches!(op, Op::Match | Op::NotMatch),
            Lit::Bool(_) => false,
        };
        if !fits {
            let want = if integer { "an integer" } else { "a string" };
            return Err(format!("`{name}` holds {want}; {v:?} does not fit"));
        }
    }
    Ok(())
}

/// A checked event seen by conditions: its row and its source.
pub struct RowView<'a> {
    pub row: &'a Row,
    pub source: &'a str,
}

impl<'a> RowView<'a> {
    pub fn new(row: &'a Row, source: &'a str) -> Self {
        RowView { row, source }
    }
}

fn json_atoms(v: &Value, path: &[String], out: &mut Vec<Lit>) {
    match (v, path.split_first()) {
        (Value::Array(items), _) => items.iter().for_each(|item| json_atoms(item, path, out)),
        (Value::Object(m), Some((key, rest))) => {
            if let Some(next) = m.get(key) {
                json_atoms(next, rest, out);
            }
        }
        (Value::String(s), None) => out.push(Lit::Str(s.clone())),
        (Value::Number(n), None) => match n.as_i64() {
            Some(i) => out.push(Lit::Int(i)),
            None => out.push(Lit::Str(n.to_string())),
        },
        (Value::Bool(b), None) => out.push(Lit::Bool(*b)),
        _ => {}
    }
}

impl Values for RowView<'_> {
    fn values(&self, field: &Field) -> Option<Vec<Lit>> {
        Some(match field {
            Field::Source => vec![Lit::Str(self.source.to_string())],
            Field::Column(i, _) => match self.row.cell(*i) {
                schema::CellRef::Null => Vec::new(),
                schema::CellRef::Int(v) => vec![Lit::Int(v)],
                schema::CellRef::Text(s) => vec![Lit::Str(s.to_string())],
            },
            Field::Item(i, j) => self.row.item_values(*i, *j).into_iter().map(Lit::Str).collect(),
            Field::Unmapped(path) => {
                let mut out = Vec::new();
                if let Some((key, rest)) = path.split_first()
                    && let Some(v) = self.row.unmapped_member(key)
                {
                    json_atoms(&v, rest, &mut out);
                }
                out
            }
        })
    }
}

/// An example event (a few known fields; the rest unknown).
struct Example<'a>(&'a [(Field, Lit)]);

impl Values for Example<'_> {
    fn values(&self, field: &Field) -> Option<Vec<Lit>> {
        self.0.iter().find(|(f, _)| f == field).map(|(_, v)| vec![v.clone()])
    }
}

/// The built-in protected set: events no filter may drop.
pub const PROTECTED: &[(&str, &str)] = &[
    ("failed-authentication", "class_uid == 3002 and status_id == 2"),
    ("failure-or-denied", "status_id == 2"),
    ("account-or-permission-change", "class_uid in [3001, 3003, 3005, 3006]"),
    (
        "iam-change",
        r#"api_operation in ["AttachUserPolicy", "AttachRolePolicy", "AttachGroupPolicy", "PutUserPolicy", "PutRolePolicy", "PutGroupPolicy", "DetachUserPolicy", "DetachRolePolicy", "DetachGroupPolicy", "DeleteUserPolicy", "DeleteRolePolicy", "DeleteGroupPolicy", "CreatePolicyVersion", "SetDefaultPolicyVersion", "UpdateAssumeRolePolicy", "CreateUser", "DeleteUser", "CreateRole", "DeleteRole", "CreateAccessKey", "UpdateAccessKey", "DeleteAccessKey", "CreateLoginProfile", "UpdateLoginProfile", "AddUserToGroup", "RemoveUserFromGroup", "PassRole", "SetIamPolicy", "user.account.privilege.grant", "user.account.privilege.revoke", "group.user_membership.add", "group.user_membership.remove", "org.add_member", "org.update_member", "team.add_member", "repo.add_member", "business.add_admin"]"#,
    ),
    (
        "rbac-change",
        r#"resources.type in ["clusterrolebindings", "rolebindings", "clusterroles", "roles"] and api_operation in ["create", "update", "patch", "delete"]"#,
    ),
    (
        "audit-config-change",
        r#"api_operation in ["StopLogging", "DeleteTrail", "UpdateTrail", "PutEventSelectors", "DeleteFlowLogs", "DeleteLogGroup", "DeleteDetector", "StopConfigurationRecorder", "DeleteConfigurationRecorder", "DeleteSink", "UpdateSink"] or process_name in ["auditctl"] or resources.type in ["auditsinks"]"#,
    ),
    (
        "classified",
        r#"unmapped.metadata_labels in ["failed-authentication", "privileged-action", "secret-access", "audit-config-change"]"#,
    ),
];

/// What a filter does with the events it matches.
#[derive(Debug, Clone)]
pub enum Action {
    Drop,
    /// Keep one in `n`, chosen by a hash of the event (the same events on every run and worker).
    Sample(u64),
    /// Keep the first `n` per value of `per` per window of event time.
    Limit {
        n: u64,
        per: Field,
        window_us: i64,
    },
}

#[derive(Debug)]
pub struct Filter {
    pub name: String,
    pub when: Expr,
    /// Stream indices the filter applies to (empty: all).
    pub streams: Vec<usize>,
    pub action: Action,
}

/// Where a source's events go.
#[derive(Debug)]
pub enum Destination {
    Stream(usize),
    /// Every rule that matches adds its streams; none: `default`.
    Route {
        rules: Vec<(Expr, Vec<usize>)>,
        default: usize,
    },
}

/// What became of one copy of an event.
#[derive(Debug, PartialEq)]
pub enum Verdict<'a> {
    Keep,
    /// Dropped by this rule (`filter: <name>`, `sample: <name>`, `limit: <name>`).
    Drop(String),
    /// A filter would have dropped it, but a protected rule keeps it.
    Protected {
        rule: &'a str,
        filter: &'a str,
    },
}

/// An alert rule's condition, evaluated by the workers (the windows are the sink's).
#[derive(Debug)]
pub struct AlertCondition {
    pub when: Expr,
    pub per: Option<Field>,
}

/// What a limit filter has kept: per (key, window), and the newest window.
#[derive(Debug, Default)]
struct Kept {
    counts: HashMap<(String, i64), u64>,
    newest: i64,
    /// Old windows are forgotten when the table reaches this size.
    clean_at: usize,
}

impl Kept {
    /// Counts one more event for `key` in `window`; whether it is within `n`.
    fn admit(&mut self, key: String, window: i64, n: u64) -> bool {
        self.newest = self.newest.max(window);
        if self.counts.len() >= self.clean_at.max(100_000) {
            // a window two behind the newest cannot take events any more (event
            // times of one batch are close); then wait until the table doubles
            let newest = self.newest;
            self.counts.retain(|(_, w), _| *w >= newest - 1);
            self.clean_at = 2 * self.counts.len();
        }
        let count = self.counts.entry((key, window)).or_default();
        *count += 1;
        *count <= n
    }
}

/// Routes, filters and the protected set of a pipeline, shared by its workers.
#[derive(Debug)]
pub struct Router {
    /// Per source.
    pub destinations: Vec<Destination>,
    pub filters: Vec<Filter>,
    pub protected: Vec<(String, Expr)>,
    /// Per filter: what its limit kept (unused for other filters).
    kept: Vec<Mutex<Kept>>,
    /// Alert rules' conditions, in rule order.
    pub alerts: Vec<AlertCondition>,
}

impl Router {
    pub fn new(destinations: Vec<Destination>, filters: Vec<Filter>, protected: Vec<(String, Expr)>) -> Router {
        let kept = filters.iter().map(|_| Mutex::new(Kept::default())).collect();
        Router { destinations, filters, protected, kept, alerts: Vec::new() }
    }

    pub fn with_alerts(mut self, alerts: Vec<AlertCondition>) -> Router {
        self.alerts = alerts;
        self
    }

    /// The alert rules an event matches: (rule index, key).
    pub fn alert_hits(&self, event: &RowView) -> Vec<(usize, String)> {
        self.alerts
            .iter()
            .enumerate()
            .filter(|(_, a)| a.when.matches(event))
            .map(|(i, a)| {
                let key = match &a.per {
                    Some(field) => event.values(field).unwrap_or_default().first().map(lit_text).unwrap_or_default(),
                    None => String::new(),
                };
                (i, key)
            })
            .collect()
    }

    /// The streams a source's event goes to (at least one).
    pub fn route(&self, source: usize, event: &RowView) -> Vec<usize> {
        match &self.destinations[source] {
            Destination::Stream(s) => vec![*s],
            Destination::Route { rules, default } => {
                let mut to: Vec<usize> = Vec::new();
                for (when, streams) in rules {
                    if when.matches(event) {
                        for s in streams {
                            if !to.contains(s) {
                                to.push(*s);
                            }
                        }
                    }
                }
                if to.is_empty() {
                    to.push(*default);
                }
                to
            }
        }
    }

    /// Whether the filters keep an event bound for `stream` (`text`: its JSON, for sampling).
    pub fn filter(&self, stream: usize, event: &RowView, text: &str) -> Verdict<'_> {
        for (index, f) in self.filters.iter().enumerate() {
            if !(f.streams.is_empty() || f.streams.contains(&stream)) || !f.when.matches(event) {
                continue;
            }
            let rule = match &f.action {
                Action::Drop => format!("filter: {}", f.name),
                Action::Sample(n) => {
                    use sha2::Digest;
                    let digest = sha2::Sha256::digest(text.as_bytes());
                    let h = u64::from_le_bytes(digest[..8].try_into().expect("8 bytes"));
                    if h % n == 0 {
                        return Verdict::Keep;
                    }
                    format!("sample: {}", f.name)
                }
                Action::Limit { n, per, window_us } => {
                    let key = event.values(per).unwrap_or_default().first().map(lit_text).unwrap_or_default();
                    let window = event.row.time().div_euclid(*window_us);
                    if self.kept[index].lock().expect("not poisoned").admit(key, window, *n) {
                        return Verdict::Keep;
                    }
                    format!("limit: {}", f.name)
                }
            };
            return match self.protected.iter().find(|(_, p)| p.matches(event)) {
                Some((name, _)) => Verdict::Protected { rule: name, filter: &f.name },
                None => Verdict::Drop(rule),
            };
        }
        Verdict::Keep
    }

    /// For each filter, the protected rules whose events it could match
    /// (checked on examples built from each protected condition; a filter
    /// that says nothing about a field an example sets is taken to match).
    pub fn overlaps(&self) -> Vec<(&str, Vec<&str>)> {
        let mut out = Vec::new();
        for f in &self.filters {
            let hit: Vec<&str> = self
                .protected
                .iter()
                .filter(|(_, p)| p.examples().iter().any(|ex| f.when.eval(&Example(ex)) != Some(false)))
                .map(|(name, _)| name.as_str())
                .collect();
            if !hit.is_empty() {
                out.push((f.name.as_str(), hit));
            }
        }
        out
    }
}

/// What an alert lists of an event: enough for a responder to find it.
pub fn summary(event: &RowView) -> std::collections::BTreeMap<String, String> {
    let mut out = std::collections::BTreeMap::new();
    out.insert("source".to_string(), event.source.to_string());
    for name in ["metadata_uid", "actor_user_name", "api_operation", "src_endpoint_ip"] {
        if let Ok(field) = resolve(name)
            && let Some(v) = event.values(&field).unwrap_or_default().first()
        {
            out.insert(name.to_string(), lit_text(v));
        }
    }
    out
}

fn lit_text(l: &Lit) -> String {
    match l {
        Lit::Str(s) => s.clone(),
        Lit::Int(i) => i.to_string(),
        Lit::Bool(b) => b.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(json: &str) -> Row {
        schema::check_event(json, 0, "test", &schema::CORE).unwrap()
    }

    fn matches(expr: &str, json: &str, source: &str) -> bool {
        let row = row(json);
        Expr::parse(expr).unwrap().matches(&RowView::new(&row, source))
    }

    const EVENT: &str = r#"{"time": 1, "class_uid": 3002, "status_id": 2, "api_operation": "ListBuckets",
        "actor_user_name": "system:kube", "resources": [{"type": "pods"}, {"type": "secrets"}],
        "unmapped": {"metadata_labels": ["failed-authentication"], "a": {"b": 7}}}"#;

    #[test]
    fn conditions_match_columns_lists_unmapped_and_source() {
        assert!(matches("class_uid == 3002 and status_id == 2", EVENT, "auth"));
        assert!(matches("class_uid in [3001, 3002]", EVENT, "auth"));
        assert!(!matches("class_uid not in [3001, 3002]", EVENT, "auth"));
        assert!(matches("api_operation ~ \"^(List|Get)\" and not actor_user_name !~ '^system:'", EVENT, "auth"));
        assert!(matches("resources.type == \"secrets\"", EVENT, "auth"));
        assert!(matches("unmapped.metadata_labels in [\"failed-authentication\"]", EVENT, "auth"));
        assert!(matches("unmapped.a.b >= 7 and unmapped.a.b < 8", EVENT, "auth"));
        assert!(matches("source == \"auth\" or source == \"k8s\"", EVENT, "auth"));
        assert!(!matches("source == \"k8s\"", EVENT, "auth"));
        assert!(matches("severity_id != 4 and not severity_id exists", EVENT, "auth"));
        assert!(!matches("severity_id == 4 or severity_id > 0", EVENT, "auth"));
        assert!(matches("(class_uid == 1 or class_uid == 3002) and status_id == 2", EVENT, "auth"));
    }

    #[test]
    fn errors_name_the_place_and_the_problem() {
        let err = |text: &str| Expr::parse(text).unwrap_err();
        assert_eq!(err("clas_uid == 3").offset, 0);
        assert!(err("clas_uid == 3").message.starts_with("unknown field `clas_uid`"));
        let e = err("class_uid == \"3002\"");
        assert_eq!((e.offset, e.message.as_str()), (10, "`class_uid` holds an integer; Str(\"3002\") does not fit"));
        let e = err("api_operation ~ \"(\"");
        assert_eq!(e.offset, 14);
        assert!(e.message.starts_with("bad regular expression"), "{}", e.message);
        assert_eq!(err("status_id == 2 and").message, "expected a field, found the end");
        assert_eq!(err("status_id == 2 status_id").message, "unexpected `status_id`");
        assert_eq!(err("unmapped == 1").message, "`unmapped` is JSON: name a path in it, e.g. `unmapped.key`");
        assert!(err("resources.kind == \"x\"").message.contains("have no field `kind`"));
        assert_eq!(err("status_id in [1, 2").message, "expected `,` or `]`");
        assert_eq!(err("'open").message, "unterminated string");
    }

    #[test]
    fn unknown_fields_make_a_condition_unknown_not_false() {
        let when = Expr::parse("source == \"k8s\" and api_operation in [\"get\", \"list\"]").unwrap();
        let failed_login = [(Field::Column(schema::column("status_id").unwrap().0, Kind::Int32), Lit::Int(2))];
        assert_eq!(when.eval(&Example(&failed_login)), None);
        let excludes = Expr::parse("status_id != 2 and source == \"k8s\"").unwrap();
        assert_eq!(excludes.eval(&Example(&failed_login)), Some(false));
    }

    fn router(filters: Vec<Filter>) -> Router {
        let protected = PROTECTED.iter().map(|(n, e)| (n.to_string(), Expr::parse(e).unwrap())).collect();
        Router::new(vec![Destination::Stream(0)], filters, protected)
    }

    #[test]
    fn no_filter_drops_a_protected_event_and_validate_can_tell() {
        let everything = Filter {
            name: "all".into(),
            when: Expr::parse("time exists").unwrap(),
            streams: vec![],
            action: Action::Drop,
        };
        let careful = Filter {
            name: "reads".into(),
            when: Expr::parse("status_id == 1 and class_uid == 6003 and api_operation in [\"get\"] and unmapped.metadata_labels not in [\"secret-access\", \"privileged-action\", \"failed-authentication\", \"audit-config-change\"] and resources.type not in [\"clusterrolebindings\", \"rolebindings\", \"clusterroles\", \"roles\", \"auditsinks\"] and process_name != \"auditctl\"").unwrap(),
            streams: vec![],
            action: Action::Drop,
        };
        let r = router(vec![everything, careful]);
        let failed = row(EVENT);
        let v = r.filter(0, &RowView::new(&failed, "auth"), EVENT);
        assert_eq!(v, Verdict::Protected { rule: "failed-authentication", filter: "all" });
        let noise = r#"{"time": 1, "class_uid": 6003, "status_id": 1, "api_operation": "get"}"#;
        assert_eq!(r.filter(0, &RowView::new(&row(noise), "k8s"), noise), Verdict::Drop("filter: all".into()));
        let overlaps = r.overlaps();
        assert_eq!(overlaps.len(), 1, "{overlaps:?}");
        assert_eq!(overlaps[0].0, "all");
        assert!(overlaps[0].1.contains(&"failed-authentication"));
    }

    mod fuzz {
        use super::*;
        use proptest::prelude::*;

        const VALID: &str = r#"class_uid in [3001, 3002] or (status_id == 2 and not source == "app") and api_operation ~ "^(Get|List)" and unmapped.a.b >= -7 and resources.type exists"#;

        fn cases() -> u32 {
            std::env::var("SLUICE_FUZZ_CASES").map_or(1000, |v| v.parse().expect("a number"))
        }

        /// Any text: an expression or an error inside the text, never a panic;
        /// and a parsed expression evaluates on an event without panicking.
        fn check(text: &str) {
            match Expr::parse(text) {
                Ok(expr) => {
                    let row = row(EVENT);
                    let view = RowView::new(&row, "auth");
                    let _ = expr.eval(&view);
                    let _ = expr.examples();
                }
                Err(e) => {
                    assert!(e.offset <= text.len(), "offset {} of {}: {}", e.offset, text.len(), e.message);
                    assert!(!e.message.is_empty());
                }
            }
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

            #[test]
            fn fuzz_conditions_any_text(text in ".{0,80}") {
                check(&text);
            }

            #[test]
            fn fuzz_conditions_edited(at in 0.0..1.0f64, op in 0u8..3, c in prop::sample::select(vec![
                '(', ')', '[', ']', '"', '\'', '~', '!', '=', '<', '>', ',', '.', '-', ' ', 'a', '0', '\\', 'é',
            ])) {
                let mut chars: Vec<char> = VALID.chars().collect();
                let i = ((chars.len() as f64) * at) as usize;
                match op {
                    0 if i < chars.len() => { chars.remove(i); }
                    1 => chars.insert(i.min(chars.len()), c),
                    _ if i < chars.len() => chars[i] = c,
                    _ => {}
                }
                check(&chars.into_iter().collect::<String>());
            }
        }
    }

    #[test]
    fn sampling_is_by_event_and_limits_are_per_key_and_window() {
        let sample = Filter {
            name: "s".into(),
            when: Expr::parse("time exists").unwrap(),
            streams: vec![],
            action: Action::Sample(4),
        };
        let r = router(vec![sample]);
        let kept = (0..4000)
            .filter(|i| {
                let text = format!("{{\"time\": {i}, \"status_id\": 1}}");
                r.filter(0, &RowView::new(&row(&text), "a"), &text) == Verdict::Keep
            })
            .count();
        assert!((850..1150).contains(&kept), "{kept}");
        let per = Field::Column(schema::column("actor_user_name").unwrap().0, Kind::Utf8);
        let limit = Filter {
            name: "l".into(),
            when: Expr::parse("time exists").unwrap(),
            streams: vec![],
            action: Action::Limit { n: 2, per, window_us: 60_000_000 },
        };
        let r = router(vec![limit]);
        let verdict = |user: &str, t: i64| {
            let text = format!("{{\"time\": {t}, \"status_id\": 1, \"actor_user_name\": \"{user}\"}}");
            r.filter(0, &RowView::new(&row(&text), "a"), &text) == Verdict::Keep
        };
        assert_eq!([verdict("a", 1), verdict("a", 2), verdict("a", 3), verdict("b", 4)], [true, true, false, true]);
        assert!(verdict("a", 60_000_001), "a new window");
    }
}
