//! A parser for Linux audit daemon logs (`/var/log/audit/audit.log`).
//!
//! A record is one line, `[node=HOST ]type=TYPE msg=audit(SECONDS.MILLIS:SERIAL): key=value ...`,
//! in the raw or the enriched format (enriched names such as `AUID="alice"` follow
//! a 0x1D separator). User-space records nest their fields in `msg='...'`;
//! those are read as if they were top-level.
//!
//! One audit event is several records with the same `SECONDS.MILLIS:SERIAL`
//! (SYSCALL, EXECVE, CWD, PATH, PROCTITLE...). With `join` on (the default) the
//! records of one event within a batch become ONE event: the last of them gets
//! `Keep`, the earlier ones are dropped with the rule [`JOINED`]. Every record
//! still has exactly one outcome. A group cut by a batch boundary becomes two
//! events with the same `metadata_uid`.
//!
//! Columns: `time` and `metadata_uid` (`SECONDS.MILLIS:SERIAL`) from the header;
//! `exe` → `process_name` (`comm` if no exe), `pid` → `process_pid`, the EXECVE
//! arguments (or else the PROCTITLE, or a USER_CMD `cmd`) → `process_cmd_line`;
//! `auid` (or `uid` when auid is unset) → `actor_user_uid` and the enriched
//! `AUID`/`UID` name → `actor_user_name`; `ses` → `actor_session_uid`;
//! `success=yes|no` or `res=success|failed` → `status_id`; `addr` (or a
//! `hostname` that is an address) → `src_endpoint_ip`; the PATH `name` →
//! `file_path`; `node` → `device_hostname`. Hex-encoded values are decoded. The
//! account a user-space record acts on (`acct`, `id`, enriched `ID`) goes to
//! `unmapped.user`; every record's raw fields go to `unmapped.records`.
//!
//! Classes: account records (ADD_USER, DEL_USER, ADD_GROUP, USER_CHAUTHTOK,
//! ACCT_LOCK...) → Account Change (3001); login and PAM records (USER_LOGIN,
//! USER_AUTH, USER_ACCT, USER_START, CRED_ACQ, LOGIN... → 1 Logon; USER_LOGOUT,
//! USER_END, CRED_DISP → 2 Logoff) → Authentication (3002); a SYSCALL with an
//! EXECVE record, and USER_CMD (a command run through sudo) → Process Activity
//! (1007) Launch; another SYSCALL on a file (PATH records, or a file syscall) →
//! File System Activity (1001); anything else → Base Event (0). Groups are
//! Account Change (3001) by choice: OCSF 1.0 has no group class.
//!
//! Config (any other key is rejected):
//! - `join`: join the records of one event, default true. With false, every
//!   record is its own event.

use serde_json::{Map, Value};
use sluice_plugin_sdk::{Event, Outcome, Parser, export_parser, record_text, set_class, truncate};
use std::collections::HashMap;

/// The drop rule of a record whose fields went into a later record's event.
/// One fixed text (the serial is the event's `metadata_uid`), so that the run
/// summary has one line for it, not one per event.
pub const JOINED: &str = "joined into the auditd event of its serial (kept on the last record)";

/// The auid and ses of a process that never logged in.
const UNSET: [&str; 3] = ["4294967295", "-1", "unset"];

/// Fields whose values auditd writes as hex when they hold spaces or odd bytes.
const ENCODED: [&str; 10] = ["exe", "comm", "cmd", "proctitle", "name", "cwd", "acct", "data", "path", "key"];

/// Account Change (3001) records and their activity.
const ACCOUNT: [(&str, i64); 12] = [
    ("ADD_USER", 1),
    ("ADD_GROUP", 1),
    ("ACCT_UNLOCK", 2),
    ("USER_CHAUTHTOK", 3),
    ("GRP_CHAUTHTOK", 3),
    ("ACCT_LOCK", 5),
    ("DEL_USER", 6),
    ("DEL_GROUP", 6),
    ("USER_MGMT", 99),
    ("GRP_MGMT", 99),
    ("CHUSER_ID", 99),
    ("CHGRP_ID", 99),
];
const LOGON: [&str; 9] = [
    "USER_LOGIN",
    "USER_AUTH",
    "USER_ACCT",
    "USER_START",
    "USER_ERR",
    "CRED_ACQ",
    "CRED_REFR",
    "LOGIN",
    "USER_LOGIN_FAILED",
];
const LOGOFF: [&str; 3] = ["USER_LOGOUT", "USER_END", "CRED_DISP"];

#[derive(Debug)]
pub struct ParseAuditd {
    join: bool,
}

/// One parsed line.
#[derive(Debug, Clone, PartialEq)]
struct Record {
    node: Option<String>,
    kind: String,
    /// `SECONDS.MILLIS:SERIAL`, the audit event id.
    id: String,
    time: i64,
    fields: Vec<Field>,
    /// Words that are not `key=value` (`auditd normal halt,`).
    text: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
struct Field {
    key: String,
    value: String,
    /// Written in double quotes: a literal string, never hex.
    quoted: bool,
}

impl Record {
    fn raw(&self, key: &str) -> Option<&str> {
        self.fields.iter().find(|f| f.key == key).map(|f| f.value.as_str())
    }

    /// A field's value, hex-decoded where auditd encodes it; `None` for `(null)` / `?`.
    fn value(&self, key: &str) -> Option<String> {
        let field = self.fields.iter().find(|f| f.key == key)?;
        if !field.quoted && matches!(field.value.as_str(), "(null)" | "?" | "(none)" | "") {
            return None;
        }
        let encoded = ENCODED.contains(&key) || (self.kind == "EXECVE" && is_arg(key));
        Some(match (encoded && !field.quoted).then(|| decode_hex(&field.value)).flatten() {
            Some(decoded) => decoded,
            None => field.value.clone(),
        })
    }
}

impl Parser for ParseAuditd {
    fn init(config: Value) -> Result<Self, String> {
        let Value::Object(config) = config else {
            return Err("parse-auditd: config must be a table".into());
        };
        let mut join = true;
        for (key, value) in &config {
            match (key.as_str(), value) {
                ("join", Value::Bool(b)) => join = *b,
                ("join", other) => return Err(format!("parse-auditd: `join` must be true or false, got {other}")),
                _ => return Err(format!("parse-auditd: unknown config key `{key}`")),
            }
        }
        Ok(ParseAuditd { join })
    }

    fn parse(&mut self, record: &[u8]) -> Outcome {
        match read_record(record) {
            Ok(r) => Outcome::Keep(build_event(&[&r])),
            Err(outcome) => outcome,
        }
    }

    fn parse_batch(&mut self, records: &[Vec<u8>]) -> Vec<Outcome> {
        let mut outcomes: Vec<Option<Outcome>> = vec![None; records.len()];
        let parsed: Vec<Option<Record>> = records
            .iter()
            .enumerate()
            .map(|(i, bytes)| match read_record(bytes) {
                Ok(r) => Some(r),
                Err(outcome) => {
                    outcomes[i] = Some(outcome);
                    None
                }
            })
            .collect();
        // Groups of record indexes, in order of first appearance.
        let mut groups: Vec<Vec<usize>> = Vec::new();
        let mut by_id: HashMap<(Option<&str>, &str), usize> = HashMap::new();
        for (i, record) in parsed.iter().enumerate() {
            let Some(record) = record else { continue };
            if !self.join {
                groups.push(vec![i]);
                continue;
            }
            let key = (record.node.as_deref(), record.id.as_str());
            match by_id.get(&key) {
                Some(&g) => groups[g].push(i),
                None => {
                    by_id.insert(key, groups.len());
                    groups.push(vec![i]);
                }
            }
        }
        for group in &groups {
            let members: Vec<&Record> = group.iter().filter_map(|&i| parsed[i].as_ref()).collect();
            let (&last, earlier) = group.split_last().expect("groups are never empty");
            for &i in earlier {
                outcomes[i] = Some(Outcome::Drop(JOINED.into()));
            }
            outcomes[last] = Some(Outcome::Keep(build_event(&members)));
        }
        outcomes.into_iter().map(|o| o.expect("every record has an outcome")).collect()
    }
}

/// Reads one line into a [`Record`], or the outcome for a line that is not one.
fn read_record(bytes: &[u8]) -> Result<Record, Outcome> {
    let text = record_text(bytes)?.trim_end_matches(['\r', '\n']);
    parse_line(text).map_err(Outcome::Error)
}

fn parse_line(text: &str) -> Result<Record, String> {
    let mut rest = text.trim_start();
    let mut node = None;
    if let Some(after) = rest.strip_prefix("node=") {
        let (name, after) = after.split_once(' ').ok_or("auditd record has nothing after `node=`")?;
        node = Some(name.to_string()).filter(|n| !n.is_empty());
        rest = after.trim_start();
    }
    let Some(after) = rest.strip_prefix("type=") else {
        return Err(format!("not an auditd record: expected `type=` at the start, got `{}`", truncate(rest, 40)));
    };
    let (kind, after) = after.split_once(' ').unwrap_or((after, ""));
    if kind.is_empty() {
        return Err("auditd record has an empty `type=`".into());
    }
    let header = after.trim_start().strip_prefix("msg=audit(").and_then(|h| h.split_once("):"));
    let Some((id, body)) = header else {
        return Err(format!("auditd {kind} record has no `msg=audit(SECONDS.MILLIS:SERIAL):` header"));
    };
    let time = event_time(id)
        .ok_or_else(|| format!("auditd {kind} record: `{}` is not SECONDS.MILLIS:SERIAL", truncate(id, 40)))?;
    let mut record =
        Record { node, kind: kind.to_string(), id: id.to_string(), time, fields: Vec::new(), text: Vec::new() };
    read_fields(body, &mut record);
    Ok(record)
}

/// `1604994496.155:92733` → microseconds since the epoch.
fn event_time(id: &str) -> Option<i64> {
    let (stamp, serial) = id.split_once(':')?;
    let (secs, frac) = stamp.split_once('.').unwrap_or((stamp, ""));
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(secs) || !digits(serial) || !(frac.is_empty() || digits(frac)) || secs.len() > 12 {
        return None;
    }
    let mut micros: i64 = 0;
    for (i, b) in frac.bytes().take(6).enumerate() {
        micros += i64::from(b - b'0') * 10_i64.pow(5 - i as u32);
    }
    Some(secs.parse::<i64>().ok()? * 1_000_000 + micros)
}

/// Splits `k=v k="v v" msg='k=v ...'` into fields; a `msg='...'` is read in place.
/// `old auid=1 new auid=2` (older LOGIN records) becomes `old-auid` and `auid`.
fn read_fields(body: &str, record: &mut Record) {
    let is_space = |c: char| c == ' ' || c == '\t' || c == '\u{1d}';
    let mut rest = body;
    let mut prefix: Option<&str> = None;
    loop {
        rest = rest.trim_start_matches(is_space);
        if rest.is_empty() {
            break;
        }
        let word_end = rest.find(is_space).unwrap_or(rest.len());
        let Some(eq) = rest[..word_end].find('=') else {
            let word = &rest[..word_end];
            if matches!(word, "old" | "new") {
                prefix = Some(word);
            } else {
                record.text.push(word.to_string());
            }
            rest = &rest[word_end..];
            continue;
        };
        let key = &rest[..eq];
        let after = &rest[eq + 1..];
        let (value, quoted, next) = match after.chars().next() {
            Some(q @ ('"' | '\'')) => match after[1..].find(q) {
                Some(end) => (&after[1..1 + end], q, &after[end + 2..]),
                None => (&after[1..], q, ""),
            },
            _ => {
                let end = after.find(is_space).unwrap_or(after.len());
                (&after[..end], ' ', &after[end..])
            }
        };
        if key == "msg" && quoted == '\'' {
            read_fields(value, record);
        } else {
            let key = match prefix.take() {
                Some("old") => format!("old-{key}"),
                _ => key.to_string(),
            };
            record.fields.push(Field { key, value: value.to_string(), quoted: quoted == '"' });
        }
        rest = next;
    }
}

/// `a0`, `a12`, `a1[0]` (a long argument written in pieces).
fn is_arg(key: &str) -> bool {
    let digits = key.strip_prefix('a').map(|k| k.split('[').next().unwrap_or(k));
    digits.is_some_and(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
}

/// Decodes an even-length hex string; NUL bytes (argument separators) become spaces.
fn decode_hex(text: &str) -> Option<String> {
    if text.is_empty() || !text.len().is_multiple_of(2) || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let bytes: Vec<u8> = (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("checked hex digits"))
        .map(|b| if b == 0 { b' ' } else { b })
        .collect();
    Some(String::from_utf8_lossy(&bytes).trim_end().to_string())
}

/// The event for the records of one audit event (in their order).
fn build_event(records: &[&Record]) -> Event {
    let first = records[0];
    let mut event = Event::new();
    event.insert("time".into(), first.time.into());
    event.insert("metadata_uid".into(), first.id.as_str().into());
    event.insert("metadata_product_name".into(), "auditd".into());
    if let Some(node) = &first.node {
        event.insert("device_hostname".into(), node.as_str().into());
    }
    // Process and actor fields come from the SYSCALL record when there is one.
    let mut ordered: Vec<&Record> = records.iter().copied().filter(|r| r.kind == "SYSCALL").collect();
    ordered.extend(records.iter().copied().filter(|r| r.kind != "SYSCALL"));
    let find = |key: &str| ordered.iter().find_map(|r| r.value(key));
    let has = |kind: &str| records.iter().any(|r| r.kind == kind);

    if let Some(pid) = find("pid").and_then(|p| p.parse::<i32>().ok()) {
        event.insert("process_pid".into(), pid.into());
    }
    if let Some(name) = find("exe").or_else(|| find("comm")) {
        event.insert("process_name".into(), name.into());
    }
    if let Some(line) = command_line(records) {
        event.insert("process_cmd_line".into(), line.into());
    }
    let auid = find("auid").filter(|a| !UNSET.contains(&a.as_str()));
    let (uid, name) = match auid {
        Some(auid) => (Some(auid), find("AUID")),
        None => (find("uid"), find("UID")),
    };
    if let Some(uid) = uid {
        event.insert("actor_user_uid".into(), uid.into());
    }
    if let Some(name) = name.filter(|n| !UNSET.contains(&n.as_str())) {
        event.insert("actor_user_name".into(), name.into());
    }
    if let Some(session) = find("ses").filter(|s| !UNSET.contains(&s.as_str())) {
        event.insert("actor_session_uid".into(), session.into());
    }
    let address =
        [find("addr"), find("hostname")].into_iter().flatten().find(|a| a.parse::<std::net::IpAddr>().is_ok());
    if let Some(address) = address {
        event.insert("src_endpoint_ip".into(), address.into());
    }
    if let Some(path) = file_path(records) {
        event.insert("file_path".into(), path.into());
    }
    // `res=successUID="root"`: an enriched line that lost its separator still says success.
    let res = find("res").unwrap_or_default();
    let status = match find("success").as_deref() {
        Some("yes") => 1,
        Some("no") => 2,
        _ if res.starts_with("success") || res == "yes" || res == "1" => 1,
        _ if res.starts_with("fail") || res == "no" || res == "0" => 2,
        _ => 0,
    };
    event.insert("status_id".into(), status.into());

    let (class_uid, activity) = classify(records, has("SYSCALL"));
    set_class(&mut event, class_uid, activity);
    let anomaly = records.iter().any(|r| r.kind.starts_with("ANOM_"));
    let severity = match status {
        2 if matches!(class_uid, 3001 | 3002) => 3,
        _ if anomaly => 3,
        2 => 2,
        _ => 1,
    };
    event.insert("severity_id".into(), severity.into());

    let mut unmapped = Map::new();
    if matches!(class_uid, 3001 | 3002) {
        let mut user = Map::new();
        if let Some(name) = find("acct").or_else(|| find("ID")) {
            user.insert("name".into(), name.into());
        }
        if let Some(id) = find("id") {
            user.insert("uid".into(), id.into());
        }
        if !user.is_empty() {
            unmapped.insert("user".into(), Value::Object(user));
        }
    }
    let raw: Vec<Value> = records
        .iter()
        .map(|r| {
            let mut fields = Map::new();
            fields.insert("type".into(), r.kind.as_str().into());
            for f in &r.fields {
                fields.entry(f.key.as_str()).or_insert_with(|| f.value.as_str().into());
            }
            if !r.text.is_empty() {
                fields.insert("text".into(), r.text.join(" ").into());
            }
            Value::Object(fields)
        })
        .collect();
    unmapped.insert("records".into(), Value::Array(raw));
    event.insert("unmapped".into(), Value::Object(unmapped));
    event
}

fn classify(records: &[&Record], syscall: bool) -> (i64, i64) {
    let has = |kind: &str| records.iter().any(|r| r.kind == kind);
    if let Some(&(_, activity)) = ACCOUNT.iter().find(|(kind, _)| has(kind)) {
        return (3001, activity);
    }
    if LOGON.iter().any(|k| has(k)) {
        return (3002, 1);
    }
    if LOGOFF.iter().any(|k| has(k)) {
        return (3002, 2);
    }
    if (syscall && has("EXECVE")) || has("USER_CMD") {
        return (1007, 1);
    }
    if syscall {
        let call = records.iter().find(|r| r.kind == "SYSCALL").and_then(|r| syscall_name(r));
        let activity = call.map_or(99, file_activity);
        if has("PATH") || activity != 99 {
            return (1001, activity);
        }
    }
    (0, 0)
}

/// The syscall's name: the enriched `SYSCALL=` field, or the x86_64 number.
fn syscall_name(record: &Record) -> Option<&str> {
    if let Some(name) = record.raw("SYSCALL") {
        return Some(name);
    }
    if record.raw("arch") != Some("c000003e") {
        return None;
    }
    const X86_64: [(&str, &str); 24] = [
        ("2", "open"),
        ("257", "openat"),
        ("85", "creat"),
        ("83", "mkdir"),
        ("258", "mkdirat"),
        ("86", "link"),
        ("265", "linkat"),
        ("88", "symlink"),
        ("266", "symlinkat"),
        ("87", "unlink"),
        ("263", "unlinkat"),
        ("84", "rmdir"),
        ("82", "rename"),
        ("264", "renameat"),
        ("316", "renameat2"),
        ("76", "truncate"),
        ("77", "ftruncate"),
        ("90", "chmod"),
        ("91", "fchmod"),
        ("268", "fchmodat"),
        ("92", "chown"),
        ("93", "fchown"),
        ("94", "lchown"),
        ("260", "fchownat"),
    ];
    let number = record.raw("syscall")?;
    X86_64.iter().find(|(n, _)| *n == number).map(|(_, name)| *name)
}

/// File System Activity (1001) activity for a syscall name.
fn file_activity(name: &str) -> i64 {
    match name {
        "creat" | "mkdir" | "mkdirat" | "link" | "linkat" | "symlink" | "symlinkat" | "mknod" | "mknodat" => 1,
        "truncate" | "ftruncate" => 3,
        "unlink" | "unlinkat" | "rmdir" => 4,
        "rename" | "renameat" | "renameat2" => 5,
        "setxattr" | "lsetxattr" | "fsetxattr" | "removexattr" | "lremovexattr" | "fremovexattr" | "utime"
        | "utimes" | "utimensat" => 6,
        "chmod" | "fchmod" | "fchmodat" | "chown" | "fchown" | "lchown" | "fchownat" => 7,
        "mount" => 12,
        "umount2" => 13,
        "open" | "openat" | "openat2" | "open_by_handle_at" => 14,
        _ => 99,
    }
}

/// The EXECVE arguments joined by spaces, else the PROCTITLE, else a USER_CMD `cmd`.
fn command_line(records: &[&Record]) -> Option<String> {
    if let Some(execve) = records.iter().find(|r| r.kind == "EXECVE") {
        let mut args: Vec<(usize, usize, String)> = Vec::new();
        for field in execve.fields.iter().filter(|f| is_arg(&f.key)) {
            // a3 or a3[0]: the argument number, then the piece number.
            let (n, piece) = field.key[1..].split_once('[').map_or((&field.key[1..], "0]"), |(n, p)| (n, p));
            let n: usize = n.parse().unwrap_or(usize::MAX);
            let piece: usize = piece.trim_end_matches(']').parse().unwrap_or(0);
            args.push((n, piece, execve.value(&field.key).unwrap_or_default()));
        }
        args.sort_by_key(|(n, piece, _)| (*n, *piece));
        let mut line = String::new();
        let mut last = None;
        for (n, _, text) in args {
            if last.is_some() && last != Some(n) {
                line.push(' ');
            }
            line.push_str(&text);
            last = Some(n);
        }
        if !line.is_empty() {
            return Some(line);
        }
    }
    let find = |kind: &str, key: &str| records.iter().filter(|r| r.kind == kind).find_map(|r| r.value(key));
    find("PROCTITLE", "proctitle").or_else(|| find("USER_CMD", "cmd"))
}

/// The first PATH `name` that is not the parent directory of the object.
fn file_path(records: &[&Record]) -> Option<String> {
    let paths: Vec<&&Record> = records.iter().filter(|r| r.kind == "PATH").collect();
    paths.iter().find(|r| r.raw("nametype") != Some("PARENT")).or(paths.first()).and_then(|r| r.value("name"))
}

export_parser!(ParseAuditd);

#[cfg(test)]
mod tests;
