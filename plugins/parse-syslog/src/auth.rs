//! Maps sshd and sudo messages to OCSF classes.
//!
//! - sshd logins and logouts → Authentication (3002): activity 1 Logon or
//!   2 Logoff, status 1 success or 2 failure.
//! - sudo commands → Authorize Session (3003), activity 1 Assign Privileges.
//! - anything else → Base Event (class 0, category 0, activity 0).

use serde_json::{Map, Value};
use sluice_plugin_sdk::Event;

const AUTHENTICATION: i64 = 3002;
const AUTHORIZE_SESSION: i64 = 3003;
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
        _ => false,
    };
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

fn set_class(event: &mut Event, class_uid: i64, activity_id: i64, status_id: Option<i64>, detail: Option<&str>) {
    event.insert("class_uid".into(), class_uid.into());
    event.insert("category_uid".into(), (class_uid / 1000).into());
    event.insert("activity_id".into(), activity_id.into());
    event.insert("type_uid".into(), (class_uid * 100 + activity_id).into());
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
