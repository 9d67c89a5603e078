//! Maps sshd, sudo, su, PAM and account-tool messages to OCSF classes.
//!
//! - sshd logins and logouts → Authentication (3002): activity 1 Logon or
//!   2 Logoff, status 1 success or 2 failure.
//! - sudo commands and su (`(to root) alice on pts/0`, `FAILED SU (to root) ...`,
//!   `Successful su for root by alice`) → Authorize Session (3003), activity
//!   1 Assign Privileges; the user switched to is `unmapped.target_user`.
//! - pam_unix of any other service: `authentication failure` → 3002 Logon
//!   failure, `session opened` / `session closed` → 3002 Logon / Logoff (the
//!   actor is the `by` user when there is one: `session opened for user root by
//!   alice(uid=1000)` is alice's), `password changed for X` → Account Change.
//! - useradd/userdel/groupadd/groupdel and passwd → Account Change (3001):
//!   1 Create (`new user: name=bob, ...`, `new group: name=...`), 6 Delete
//!   (`delete user 'bob'`, `removed group 'bob' ...`, `group 'x' removed`),
//!   3 Password Change (`password for 'bob' changed by 'root'`, PAM
//!   `chauthtok`). The account is the event's resource (`type` user or group).
//!   Groups stay in Account Change rather than OCSF 1.1's Group Management
//!   (3006), so that one class holds every account-database change.
//! - anything else → Base Event (class 0, category 0, activity 0).

use serde_json::{Map, Value};
use sluice_plugin_sdk::Event;

const AUTHENTICATION: i64 = 3002;
const AUTHORIZE_SESSION: i64 = 3003;
const ACCOUNT_CHANGE: i64 = 3001;
const CREATE: i64 = 1;
const PASSWORD_CHANGE: i64 = 3;
const DELETE: i64 = 6;
const LOGON: i64 = 1;
const LOGOFF: i64 = 2;
const ASSIGN_PRIVILEGES: i64 = 1;
const SUCCESS: i64 = 1;
const FAILURE: i64 = 2;

/// Sets the class fields (and what the message tells) on `event`. sudo's PWD goes
/// to `unmapped.cwd`, not `pwd`, so that redact's `pwd` key rule leaves it alone.
pub(crate) fn classify(app: &str, message: &str, event: &mut Event, unmapped: &mut Map<String, Value>) {
    let message = match unwrap_repeated(message) {
        Some((count, inner)) => {
            unmapped.insert("repeated".into(), count.into());
            inner
        }
        None => message,
    };
    // `sshd(pam_unix)` is how older PAM logs tag sshd's session lines.
    let program = app.split('(').next().unwrap_or(app);
    let matched = match program {
        "sshd" => sshd(message, event, unmapped),
        "sudo" => sudo(message, event, unmapped),
        "su" => su(message, event, unmapped),
        "useradd" | "userdel" | "groupadd" | "groupdel" => account_tool(message, event, unmapped),
        "passwd" => passwd(message, event),
        _ => false,
    } || pam(app.contains("(pam_unix)"), message, event, unmapped);
    if !matched {
        set_class(event, 0, 0, None, None);
    }
}

/// `message repeated 5 times: [ TEXT]` → (5, TEXT).
fn unwrap_repeated(message: &str) -> Option<(i64, &str)> {
    let rest = message.strip_prefix("message repeated ")?;
    let (count, inner) = rest.split_once(" times: [")?;
    let inner = inner.strip_suffix(']')?.trim();
    Some((count.parse().ok()?, inner))
}

/// The SDK's `set_class`, and the status and its detail when given.
fn set_class(event: &mut Event, class_uid: i64, activity_id: i64, status_id: Option<i64>, detail: Option<&str>) {
    sluice_plugin_sdk::set_class(event, class_uid, activity_id);
    if let Some(status) = status_id {
        event.insert("status_id".into(), status.into());
    }
    if let Some(detail) = detail {
        event.insert("status_detail".into(), detail.into());
    }
}

fn set_user(event: &mut Event, user: &str) {
    if !user.is_empty() {
        event.insert("actor_user_name".into(), user.into());
    }
}

/// `IP port N REST` (port optional) → sets the source endpoint; returns REST.
fn set_source<'a>(event: &mut Event, unmapped: &mut Map<String, Value>, text: &'a str) -> &'a str {
    let (address, mut rest) = text.split_once(' ').unwrap_or((text, ""));
    if address.parse::<std::net::IpAddr>().is_ok() {
        event.insert("src_endpoint_ip".into(), address.into());
    } else if !address.is_empty() {
        // sshd logs a hostname here when UseDNS is on.
        unmapped.insert("src_endpoint_hostname".into(), address.into());
    }
    if let Some(after) = rest.strip_prefix("port ") {
        let (port, after) = after.split_once(' ').unwrap_or((after, ""));
        if let Ok(port) = port.parse::<i64>() {
            event.insert("src_endpoint_port".into(), port.into());
        }
        rest = after;
    }
    rest
}

/// `USER from REST` → (USER, REST); the user may be empty.
fn user_from(text: &str) -> Option<(&str, &str)> {
    match text.strip_prefix("from ") {
        Some(rest) => Some(("", rest)),
        None => text.rsplit_once(" from "),
    }
}

fn sshd(message: &str, event: &mut Event, unmapped: &mut Map<String, Value>) -> bool {
    if let Some(rest) = message.strip_prefix("Failed ") {
        // Failed METHOD for [invalid user ]USER from IP port N ssh2
        let Some((method, rest)) = rest.split_once(" for ") else {
            return false;
        };
        let (invalid, rest) = match rest.strip_prefix("invalid user ") {
            Some(r) => (true, r),
            None => (false, rest),
        };
        let Some((user, source)) = user_from(rest) else {
            return false;
        };
        set_class(event, AUTHENTICATION, LOGON, Some(FAILURE), Some(&format!("Failed {method}")));
        set_user(event, user);
        set_source(event, unmapped, source);
        unmapped.insert("auth_method".into(), method.into());
        if invalid {
            unmapped.insert("invalid_user".into(), true.into());
        }
        return true;
    }
    if let Some(rest) = message.strip_prefix("Invalid user ") {
        // Invalid user USER from IP [port N]
        let Some((user, source)) = user_from(rest) else {
            return false;
        };
        set_class(event, AUTHENTICATION, LOGON, Some(FAILURE), Some("Invalid user"));
        set_user(event, user);
        set_source(event, unmapped, source);
        unmapped.insert("invalid_user".into(), true.into());
        return true;
    }
    if let Some(rest) = message.strip_prefix("Accepted ") {
        // Accepted METHOD for USER from IP port N ssh2[: KEYTYPE FINGERPRINT]
        let Some((method, rest)) = rest.split_once(" for ") else {
            return false;
        };
        let Some((user, source)) = user_from(rest) else {
            return false;
        };
        set_class(event, AUTHENTICATION, LOGON, Some(SUCCESS), Some(&format!("Accepted {method}")));
        set_user(event, user);
        let tail = set_source(event, unmapped, source);
        unmapped.insert("auth_method".into(), method.into());
        if let Some((key_type, fingerprint)) = tail.split_once(": ").and_then(|(_, key)| key.split_once(' ')) {
            unmapped.insert("key_type".into(), key_type.into());
            unmapped.insert("key_fingerprint".into(), fingerprint.into());
        }
        return true;
    }
    if let Some(rest) = message.strip_prefix("Disconnected from user ") {
        // Disconnected from user USER IP port N
        let Some((user, source)) = rest.split_once(' ') else {
            return false;
        };
        set_class(event, AUTHENTICATION, LOGOFF, Some(SUCCESS), None);
        set_user(event, user);
        set_source(event, unmapped, source);
        return true;
    }
    let pam = message.strip_prefix("pam_unix(sshd:session): ").unwrap_or(message);
    if let Some(rest) = pam.strip_prefix("session opened for user ") {
        set_class(event, AUTHENTICATION, LOGON, Some(SUCCESS), None);
        set_user(event, session_user(rest));
        return true;
    }
    if let Some(rest) = pam.strip_prefix("session closed for user ") {
        set_class(event, AUTHENTICATION, LOGOFF, Some(SUCCESS), None);
        set_user(event, session_user(rest));
        return true;
    }
    let pam = message.strip_prefix("pam_unix(sshd:auth): ").unwrap_or(message);
    if let Some(rest) = pam.strip_prefix("authentication failure;") {
        // logname= uid=0 euid=0 tty=ssh ruser= rhost=IP  user=root
        set_class(event, AUTHENTICATION, LOGON, Some(FAILURE), Some("authentication failure"));
        for (key, value) in rest.split_whitespace().filter_map(|kv| kv.split_once('=')) {
            match key {
                "rhost" if !value.is_empty() => {
                    set_source(event, unmapped, value);
                }
                "user" => set_user(event, value),
                _ => {}
            }
        }
        return true;
    }
    false
}

/// `bob by (uid=0)` or `bob(uid=1000) by (uid=0)` → `bob`.
fn session_user(text: &str) -> &str {
    let user = text.split(' ').next().unwrap_or_default();
    user.split('(').next().unwrap_or(user)
}

fn sudo(message: &str, event: &mut Event, unmapped: &mut Map<String, Value>) -> bool {
    // USER : [REASON ; ]TTY=pts/0 ; PWD=/home/x ; USER=root ; COMMAND=/usr/bin/foo args
    let Some((user, mut rest)) = message.split_once(" : ") else {
        return false;
    };
    let user = user.trim();
    if user.is_empty() || user.contains(' ') {
        return false;
    }
    let mut reason = None;
    let mut command = None;
    let mut fields = Vec::new();
    loop {
        // COMMAND comes last and may itself contain " ; ".
        if let Some(cmd) = rest.strip_prefix("COMMAND=") {
            command = Some(cmd);
            break;
        }
        let (part, next) = rest.split_once(" ; ").map_or((rest, None), |(p, n)| (p, Some(n)));
        match part.split_once('=') {
            Some(("TTY", v)) => fields.push(("tty", v)),
            Some(("PWD", v)) => fields.push(("cwd", v)),
            Some(("USER", v)) => fields.push(("target_user", v)),
            Some(("GROUP", v)) => fields.push(("target_group", v)),
            Some(("ENV", v)) => fields.push(("env", v)),
            _ if reason.is_none() && fields.is_empty() => reason = Some(part.trim()),
            _ => {}
        }
        match next {
            Some(n) => rest = n,
            None => break,
        }
    }
    if command.is_none() && !fields.iter().any(|(k, _)| *k == "target_user") {
        return false;
    }
    let status = if reason.is_some() { FAILURE } else { SUCCESS };
    set_class(event, AUTHORIZE_SESSION, ASSIGN_PRIVILEGES, Some(status), reason);
    set_user(event, user);
    if let Some(command) = command {
        event.insert("process_cmd_line".into(), command.into());
    }
    for (key, value) in fields {
        unmapped.insert(key.into(), value.into());
    }
    true
}

/// `(to root) alice on pts/0`, `FAILED SU (to root) alice on pts/0`, `Successful su for root by alice`.
fn su(message: &str, event: &mut Event, unmapped: &mut Map<String, Value>) -> bool {
    let (failed, rest) = match message.strip_prefix("FAILED SU ") {
        Some(rest) => (true, rest),
        None => (false, message),
    };
    if let Some(rest) = rest.strip_prefix("(to ") {
        let Some((target, rest)) = rest.split_once(") ") else {
            return false;
        };
        let (user, tty) = rest.split_once(" on ").unwrap_or((rest, ""));
        let (status, detail) = if failed { (FAILURE, Some("FAILED SU")) } else { (SUCCESS, None) };
        set_class(event, AUTHORIZE_SESSION, ASSIGN_PRIVILEGES, Some(status), detail);
        set_user(event, user.trim());
        unmapped.insert("target_user".into(), target.into());
        if !tty.is_empty() {
            unmapped.insert("tty".into(), tty.into());
        }
        return true;
    }
    if let Some(rest) = message.strip_prefix("Successful su for ") {
        let Some((target, user)) = rest.split_once(" by ") else {
            return false;
        };
        set_class(event, AUTHORIZE_SESSION, ASSIGN_PRIVILEGES, Some(SUCCESS), None);
        set_user(event, user.trim());
        unmapped.insert("target_user".into(), target.into());
        return true;
    }
    false
}

/// pam_unix lines of any service: `pam_unix(SERVICE:KIND): TEXT`, or just
/// `TEXT` when the tag itself says pam_unix (`su(pam_unix)[1]: session opened ...`).
fn pam(tagged: bool, message: &str, event: &mut Event, unmapped: &mut Map<String, Value>) -> bool {
    let text = match message.strip_prefix("pam_unix(").and_then(|r| r.split_once("): ")) {
        Some((service, text)) => {
            let service = service.split(':').next().unwrap_or(service);
            unmapped.insert("pam_service".into(), service.into());
            text
        }
        None if tagged => message,
        None => return false,
    };
    if let Some(rest) = text.strip_prefix("authentication failure;") {
        // logname=bob uid=1117 euid=0 tty=/dev/pts/1 ruser=alice rhost= user=root
        let fields: Vec<(&str, &str)> = rest.split_whitespace().filter_map(|kv| kv.split_once('=')).collect();
        let field = |name: &str| fields.iter().find(|(k, v)| *k == name && !v.is_empty()).map(|(_, v)| *v);
        set_class(event, AUTHENTICATION, LOGON, Some(FAILURE), Some("authentication failure"));
        // the one who tried: the remote/real user, else the login name, else the target
        if let Some(actor) = field("ruser").or(field("logname")).or(field("user")) {
            set_user(event, actor);
        }
        if let Some(target) = field("user") {
            unmapped.insert("target_user".into(), target.into());
        }
        if let Some(host) = field("rhost") {
            set_source(event, unmapped, host);
        }
        if let Some(tty) = field("tty") {
            unmapped.insert("tty".into(), tty.into());
        }
        return true;
    }
    if let Some(rest) = text.strip_prefix("session opened for user ") {
        // USER by BY(uid=N), USER(uid=N) by BY(uid=M), or USER by (uid=0)
        let user = session_user(rest);
        let by = rest.split_once(" by ").map(|(_, by)| by.split('(').next().unwrap_or(by).trim()).unwrap_or("");
        set_class(event, AUTHENTICATION, LOGON, Some(SUCCESS), None);
        if by.is_empty() || by == user {
            set_user(event, user);
        } else {
            set_user(event, by);
            unmapped.insert("target_user".into(), user.into());
        }
        return true;
    }
    if let Some(rest) = text.strip_prefix("session closed for user ") {
        set_class(event, AUTHENTICATION, LOGOFF, Some(SUCCESS), None);
        set_user(event, session_user(rest));
        return true;
    }
    if let Some(user) = text.strip_prefix("password changed for ") {
        set_class(event, ACCOUNT_CHANGE, PASSWORD_CHANGE, Some(SUCCESS), None);
        set_account(event, "user", user.trim(), None);
        return true;
    }
    false
}

/// useradd, userdel, groupadd and groupdel.
fn account_tool(message: &str, event: &mut Event, unmapped: &mut Map<String, Value>) -> bool {
    for (prefix, kind) in [("new user: ", "user"), ("new group: ", "group")] {
        let Some(rest) = message.strip_prefix(prefix) else { continue };
        // name=bob, UID=1001, GID=1001, home=/home/bob, shell=/bin/bash, from=/dev/pts/0
        let mut name = None;
        let mut id = None;
        for (key, value) in rest.split(", ").filter_map(|kv| kv.split_once('=')) {
            match (kind, key) {
                (_, "name") => name = Some(value),
                ("user", "UID") | ("group", "GID") => id = Some(value),
                _ => {
                    unmapped.insert(key.to_ascii_lowercase(), value.into());
                }
            }
        }
        let Some(name) = name else { return false };
        set_class(event, ACCOUNT_CHANGE, CREATE, Some(SUCCESS), None);
        set_account(event, kind, name, id);
        return true;
    }
    // delete user 'bob' | removed group 'bob' owned by 'bob' | group 'devs' removed
    let deleted = if let Some((name, _)) = message.strip_prefix("delete user ").and_then(quoted_name) {
        Some(("user", name))
    } else if let Some((name, _)) = message.strip_prefix("removed group ").and_then(quoted_name) {
        Some(("group", name))
    } else {
        message
            .strip_prefix("group ")
            .and_then(quoted_name)
            .filter(|(_, rest)| rest.trim_start().starts_with("removed"))
            .map(|(name, _)| ("group", name))
    };
    let Some((kind, name)) = deleted else { return false };
    set_class(event, ACCOUNT_CHANGE, DELETE, Some(SUCCESS), None);
    set_account(event, kind, name, None);
    true
}

/// shadow-utils passwd: `password for 'bob' changed by 'root'`.
fn passwd(message: &str, event: &mut Event) -> bool {
    let Some((user, rest)) = message.strip_prefix("password for ").and_then(quoted_name) else {
        return false;
    };
    let Some((by, _)) = rest.strip_prefix(" changed by ").and_then(quoted_name) else {
        return false;
    };
    set_class(event, ACCOUNT_CHANGE, PASSWORD_CHANGE, Some(SUCCESS), None);
    set_user(event, by);
    set_account(event, "user", user, None);
    true
}

/// `'bob' rest` or `` `bob' rest `` → (bob, rest).
fn quoted_name(text: &str) -> Option<(&str, &str)> {
    let inner = text.strip_prefix(['\'', '`'])?;
    let (name, rest) = inner.split_once('\'')?;
    (!name.is_empty()).then_some((name, rest))
}

/// The account an Account Change is about, as the event's one resource.
fn set_account(event: &mut Event, kind: &str, name: &str, uid: Option<&str>) {
    let mut resource = Map::new();
    resource.insert("type".into(), kind.into());
    resource.insert("name".into(), name.into());
    if let Some(uid) = uid {
        resource.insert("uid".into(), uid.into());
    }
    event.insert("resources".into(), Value::Array(vec![Value::Object(resource)]));
}
