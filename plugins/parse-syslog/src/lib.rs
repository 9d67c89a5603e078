//! A parser for syslog lines: RFC 3164 (BSD) and RFC 5424.
//!
//! RFC 3164: `[<PRI>]Mmm dd hh:mm:ss HOST APP[PID]: MSG`. The hostname may be
//! missing (`Nov  1 00:00:03 sshd[1]: ...`) and the timestamp may be an
//! RFC 3339 one instead, as rsyslog writes with high-precision timestamps.
//! RFC 5424: `<PRI>1 TIMESTAMP HOST APP PROCID MSGID SD [MSG]`, `-` for nil.
//!
//! Config (any other key is rejected):
//! - `year`: the year of RFC 3164 timestamps, which have none. Without it the
//!   current UTC year is used, or the previous one for a date more than a
//!   month ahead of today (a December line read in January).
//! - `utc_offset`: the zone of RFC 3164 timestamps, `"+00:00"` by default.
//!
//! sshd and sudo messages become OCSF Authentication (3002) and Authorize
//! Session (3003) events, see [`auth`]; everything else is a Base Event (0).

mod auth;

use serde_json::{Map, Value};
use sluice_plugin_sdk::{Event, Outcome, Parser, days_from_civil, export_parser, parse_rfc3339_micros, record_text};

const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
const FACILITIES: [&str; 24] = [
    "kern",
    "user",
    "mail",
    "daemon",
    "auth",
    "syslog",
    "lpr",
    "news",
    "uucp",
    "cron",
    "authpriv",
    "ftp",
    "ntp",
    "security",
    "console",
    "solaris-cron",
    "local0",
    "local1",
    "local2",
    "local3",
    "local4",
    "local5",
    "local6",
    "local7",
];
const SEVERITIES: [&str; 8] = ["emerg", "alert", "crit", "err", "warning", "notice", "info", "debug"];
/// OCSF severity_id for each syslog severity.
const OCSF_SEVERITY: [i64; 8] = [6, 5, 5, 4, 3, 2, 1, 1];

#[derive(Debug)]
pub struct ParseSyslog {
    /// Year for RFC 3164 dates: fixed by config, or inferred from the clock.
    year: YearRule,
    utc_offset_secs: i64,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum YearRule {
    Fixed(i64),
    /// The current year and month (1-12), read once at init.
    Around {
        year: i64,
        month: u32,
    },
}

impl YearRule {
    fn year_for(self, month: u32) -> i64 {
        match self {
            YearRule::Fixed(y) => y,
            YearRule::Around { year, month: now } if month > now + 1 => year - 1,
            YearRule::Around { year, .. } => year,
        }
    }
}

/// The parts common to both formats.
#[derive(Debug, Default)]
struct Line<'a> {
    time: i64,
    host: Option<&'a str>,
    app: Option<&'a str>,
    pid: Option<&'a str>,
    message: &'a str,
}

impl Parser for ParseSyslog {
    fn init(config: Value) -> Result<Self, String> {
        let Value::Object(config) = config else {
            return Err("parse-syslog: config must be a table".into());
        };
        let mut year = None;
        let mut utc_offset_secs = 0;
        for (key, value) in &config {
            match key.as_str() {
                "year" => {
                    let y = value.as_i64().filter(|y| (1..=9999).contains(y));
                    year = Some(y.ok_or("parse-syslog: `year` must be an integer from 1 to 9999")?);
                }
                "utc_offset" => {
                    let text = value.as_str().unwrap_or_default();
                    utc_offset_secs = parse_offset(text)
                        .ok_or_else(|| format!("parse-syslog: `utc_offset` must look like \"+02:00\", got {value}"))?;
                }
                _ => return Err(format!("parse-syslog: unknown config key `{key}`")),
            }
        }
        let year = match year {
            Some(y) => YearRule::Fixed(y),
            None => match current_year_month() {
                // sluice denies clocks unless the stage grants them: the clock
                // then reads 1970, and guessing the year from it would be wrong
                YearRule::Around { year, .. } if year < 2000 => {
                    return Err("parse-syslog: set `year` (RFC 3164 lines have none), or grant the stage \
                                a clock with `clocks = true`"
                        .into());
                }
                rule => rule,
            },
        };
        Ok(ParseSyslog { year, utc_offset_secs })
    }

    fn parse(&mut self, record: &[u8]) -> Outcome {
        let text = match record_text(record) {
            Ok(text) => text.trim_end_matches(['\r', '\n']),
            Err(outcome) => return outcome,
        };
        let mut event = Event::new();
        let mut unmapped = Map::new();
        let (pri, rest) = split_pri(text);
        if let Some(pri) = pri {
            let (facility, severity) = ((pri / 8) as usize, (pri % 8) as usize);
            event.insert("severity_id".into(), OCSF_SEVERITY[severity].into());
            unmapped.insert("facility".into(), FACILITIES[facility].into());
            unmapped.insert("severity".into(), SEVERITIES[severity].into());
        }
        let line = match rfc5424_version(rest) {
            Some(after_version) => parse_5424(after_version, &mut unmapped),
            None => self.parse_3164(rest),
        };
        let Some(line) = line else {
            let shown: String = text.chars().take(80).collect();
            return Outcome::Error(format!("not an RFC 3164 or RFC 5424 syslog line: {shown}"));
        };

        event.insert("time".into(), line.time.into());
        if let Some(host) = line.host {
            event.insert("device_hostname".into(), host.into());
        }
        if let Some(app) = line.app {
            event.insert("process_name".into(), app.into());
            event.insert("metadata_product_name".into(), app.into());
        }
        match line.pid.map(|p| (p, p.parse::<i64>())) {
            Some((_, Ok(pid))) => {
                event.insert("process_pid".into(), pid.into());
            }
            Some((procid, Err(_))) => {
                unmapped.insert("procid".into(), procid.into());
            }
            None => {}
        }
        event.insert("message".into(), line.message.into());
        auth::classify(line.app.unwrap_or_default(), line.message, &mut event, &mut unmapped);
        // Without a PRI the line says nothing of its severity: informational.
        event.entry("severity_id").or_insert(1.into());
        if !unmapped.is_empty() {
            event.insert("unmapped".into(), Value::Object(unmapped));
        }
        Outcome::Keep(event)
    }
}

impl ParseSyslog {
    fn parse_3164<'a>(&self, text: &'a str) -> Option<Line<'a>> {
        let (time, rest) = if text.as_bytes().first()?.is_ascii_digit() {
            // rsyslog's RFC 3339 timestamp in place of the BSD one.
            let (stamp, rest) = text.split_once(' ')?;
            (parse_rfc3339_micros(stamp)?, rest)
        } else {
            self.bsd_timestamp(text)?
        };
        let rest = rest.trim_start_matches(' ');
        // The hostname is the next word, unless that word is already the tag.
        let (first, after) = rest.split_once(' ').unwrap_or((rest, ""));
        let (host, content) = if first.ends_with(':') { (None, rest) } else { (Some(first), after) };
        let content = content.trim_start_matches(' ');
        let (app, pid, message) = split_tag(content);
        Some(Line { time, host: host.filter(|h| !h.is_empty()), app, pid, message })
    }

    /// `Mmm dd hh:mm:ss` (day padded with a space or a zero) → (UTC micros, rest).
    fn bsd_timestamp<'a>(&self, text: &'a str) -> Option<(i64, &'a str)> {
        let month = MONTHS.iter().position(|m| text.starts_with(m))? as u32 + 1;
        let rest = text.get(3..)?.strip_prefix(' ')?.trim_start_matches(' ');
        let (day, rest) = rest.split_once(' ')?;
        let day: u32 = day.parse().ok()?;
        let (hms, rest) = rest.split_once(' ').unwrap_or((rest, ""));
        let [h, m, s]: [i64; 3] = split_numbers(hms)?;
        let year = self.year.year_for(month);
        if day == 0 || day > days_in_month(year, month) || h > 23 || m > 59 || s > 60 {
            return None;
        }
        let secs = days_from_civil(year, month, day) * 86_400 + h * 3600 + m * 60 + s - self.utc_offset_secs;
        Some((secs * 1_000_000, rest))
    }
}

/// `1 TIMESTAMP ...` → the text after the version, for RFC 5424 lines.
fn rfc5424_version(text: &str) -> Option<&str> {
    let digits = text.bytes().take_while(u8::is_ascii_digit).count();
    if !(1..=3).contains(&digits) {
        return None;
    }
    text[digits..].strip_prefix(' ')
}

fn parse_5424<'a>(text: &'a str, unmapped: &mut Map<String, Value>) -> Option<Line<'a>> {
    let mut parts = text.splitn(6, ' ');
    let stamp = parts.next()?;
    let nil = |s: &'a str| (s != "-").then_some(s);
    let host = nil(parts.next()?);
    let app = nil(parts.next()?);
    let pid = nil(parts.next()?);
    let msgid = nil(parts.next()?);
    let rest = parts.next().unwrap_or("-");
    let time = parse_rfc3339_micros(stamp)?;
    if let Some(msgid) = msgid {
        unmapped.insert("msgid".into(), msgid.into());
    }
    let message = if let Some(after) = rest.strip_prefix('-') {
        after
    } else {
        let (data, after) = structured_data(rest)?;
        unmapped.insert("structured_data".into(), Value::Object(data));
        after
    };
    let message = message.strip_prefix(' ').unwrap_or(message);
    let message = message.strip_prefix('\u{feff}').unwrap_or(message);
    Some(Line { time, host, app, pid, message })
}

/// Parses `[id k="v" ...][id2 ...]` into `{id: {k: v}}`, returning the text after it.
fn structured_data(mut text: &str) -> Option<(Map<String, Value>, &str)> {
    let mut data = Map::new();
    while let Some(inner) = text.strip_prefix('[') {
        let id_len = inner.find([' ', ']'])?;
        let (id, mut rest) = inner.split_at(id_len);
        let mut params = Map::new();
        loop {
            rest = rest.trim_start_matches(' ');
            if let Some(after) = rest.strip_prefix(']') {
                rest = after;
                break;
            }
            let (name, after) = rest.split_once("=\"")?;
            let (value, after) = quoted_value(after)?;
            params.insert(name.to_string(), value.into());
            rest = after;
        }
        match data.get_mut(id) {
            Some(Value::Object(existing)) => existing.extend(params),
            _ => {
                data.insert(id.to_string(), Value::Object(params));
            }
        }
        text = rest;
    }
    Some((data, text))
}

/// Reads a PARAM-VALUE up to its closing quote, undoing `\"`, `\\` and `\]`.
fn quoted_value(text: &str) -> Option<(String, &str)> {
    let mut value = String::new();
    let mut chars = text.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Some((value, &text[i + 1..])),
            '\\' => match chars.next()? {
                (_, e @ ('"' | '\\' | ']')) => value.push(e),
                (_, other) => {
                    value.push('\\');
                    value.push(other);
                }
            },
            c => value.push(c),
        }
    }
    None
}

/// `<PRI>` prefix, if present and valid (0-191).
fn split_pri(text: &str) -> (Option<u32>, &str) {
    let parsed = text.strip_prefix('<').and_then(|t| t.split_once('>')).and_then(|(n, rest)| {
        let ok = (1..=3).contains(&n.len()) && n.bytes().all(|b| b.is_ascii_digit());
        let pri: u32 = if ok { n.parse().ok()? } else { return None };
        (pri <= 191).then_some((pri, rest))
    });
    match parsed {
        Some((pri, rest)) => (Some(pri), rest),
        None => (None, text),
    }
}

/// `APP[PID]: MSG` or `APP: MSG` → (app, pid, msg); otherwise the whole text is the message.
fn split_tag(content: &str) -> (Option<&str>, Option<&str>, &str) {
    let tag_end = content.find([' ', '[', ':']).unwrap_or(content.len());
    let app = &content[..tag_end];
    let rest = &content[tag_end..];
    let (pid, rest) = match rest.strip_prefix('[').and_then(|r| r.split_once(']')) {
        Some((pid, after)) => (Some(pid), after),
        None => (None, rest),
    };
    match rest.strip_prefix(':') {
        Some(message) if !app.is_empty() => (Some(app), pid, message.strip_prefix(' ').unwrap_or(message)),
        _ => (None, None, content),
    }
}

fn split_numbers<const N: usize>(text: &str) -> Option<[i64; N]> {
    let mut out = [0; N];
    let mut parts = text.split(':');
    for slot in &mut out {
        let part = parts.next()?;
        if part.len() != 2 {
            return None;
        }
        *slot = part.parse().ok()?;
    }
    parts.next().is_none().then_some(out)
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// `+02:00`, `-0530`, `Z` → seconds east of UTC.
fn parse_offset(text: &str) -> Option<i64> {
    if text == "Z" || text == "z" {
        return Some(0);
    }
    let sign = match text.as_bytes().first()? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let body = &text[1..];
    if !body.is_ascii() {
        return None;
    }
    let (h, m) = match body.len() {
        5 if &body[2..3] == ":" => (&body[..2], &body[3..]),
        4 => (&body[..2], &body[2..]),
        _ => return None,
    };
    if !(h.bytes().chain(m.bytes())).all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (h, m): (i64, i64) = (h.parse().ok()?, m.parse().ok()?);
    (h <= 23 && m <= 59).then_some(sign * (h * 3600 + m * 60))
}

fn current_year_month() -> YearRule {
    let secs =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0);
    // Walk years from 1970; cheap, and only done once at init.
    let mut year = 1970;
    while days_from_civil(year + 1, 1, 1) * 86_400 <= secs {
        year += 1;
    }
    let mut month = 1;
    while month < 12 && days_from_civil(year, month + 1, 1) * 86_400 <= secs {
        month += 1;
    }
    YearRule::Around { year, month }
}

export_parser!(ParseSyslog);

#[cfg(test)]
mod tests;
