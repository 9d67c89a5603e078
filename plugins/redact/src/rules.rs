//! The value rules: patterns that find a secret inside free text.
//!
//! Each rule has a cheap prefilter (a substring test) so that its regexes run
//! only on strings that could match, and a `span` function that picks what to
//! mask from a match (the `s` group, the whole match, or nothing).

use regex::{Captures, Regex};

/// A cheap test that a string could match.
type Prefilter = fn(&str) -> bool;
/// The byte range to mask for one regex match, or `None` to leave it.
type Span = fn(&Captures, &str) -> Option<(usize, usize)>;

pub(crate) struct ValueRule {
    pub id: &'static str,
    prefilter: Prefilter,
    patterns: Vec<Regex>,
    span: Span,
    mask: String,
}

/// Every value rule id, in the order they run: specific formats first, so a
/// GitHub token in `--password=ghp_...` is reported as `github-token`.
pub(crate) const VALUE_RULE_IDS: [&str; 10] = [
    "pem-private-key",
    "jwt",
    "github-token",
    "aws-access-key-id",
    "url-credentials",
    "bearer",
    "secret-assignment",
    "password-flag",
    "payment-card",
    "high-entropy-token",
];

/// The generic detector that identity keys are exempt from.
pub(crate) const HIGH_ENTROPY: &str = "high-entropy-token";

pub(crate) fn mask_for(id: &str) -> String {
    format!("[REDACTED:{id}]")
}

fn is_masked(text: &str) -> bool {
    text.starts_with("[REDACTED:")
}

pub(crate) fn build(id: &'static str) -> ValueRule {
    let (prefilter, patterns, span): (Prefilter, &[&str], Span) = match id {
        "pem-private-key" => (
            |s| s.contains("PRIVATE KEY"),
            &[
                r"-----BEGIN[A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----(?s:.*?)(?:-----END[A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----|\z)",
            ],
            secret_group,
        ),
        "jwt" => (
            |s| s.contains("eyJ"),
            // header.payload.signature with a JSON header; the payload is
            // JSON too (eyJ...) or, as some issuers write it, any base64url.
            // No leading \b: GitHub app tokens glue one on with `ghs_12345_eyJ...`.
            &[r"eyJ[A-Za-z0-9_-]{8,}\.(?:eyJ[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]*)?|[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,})"],
            secret_group,
        ),
        "github-token" => (
            |s| s.contains("gh") || s.contains("github_pat_"),
            &[r"\b(?:gh[pousr]_[A-Za-z0-9]{36,255}|github_pat_[A-Za-z0-9_]{22,255})\b"],
            secret_group,
        ),
        "aws-access-key-id" => {
            (|s| s.contains("AKIA") || s.contains("ASIA"), &[r"\b(?:AKIA|ASIA)[A-Z2-7]{16}\b"], secret_group)
        }
        "url-credentials" => (
            |s| s.contains("://") && s.contains('@'),
            &[r"\b[A-Za-z][A-Za-z0-9+.-]*://[^\s:/@]*:(?P<s>[^\s/]+)@"],
            secret_group,
        ),
        "bearer" => (
            |s| contains_ci(s, "bearer") || contains_ci(s, "basic"),
            &[r"\b(?i:bearer|basic)\s+(?P<s>[A-Za-z0-9._~+/-]+=*)"],
            credential_like,
        ),
        "secret-assignment" => (
            |s| {
                (s.contains('=') || s.contains(':'))
                    && (contains_ci(s, "secret") || contains_ci(s, "token") || contains_ci(s, "key"))
            },
            &[concat!(
                r#"(?i)(?P<k>[a-z0-9_.-]*(?:secret|token|api[_-]?key|access[_-]?key|private[_-]?key)[a-z0-9_.-]*)"#,
                r#"(?:["']?\s*=\s*["']?|["']?\s*:\s*["']|\s*:\s+)(?P<s>[^\s"',;&]+)"#
            )],
            secret_assignment,
        ),
        "password-flag" => (
            |s| contains_ci(s, "pass") || s.contains("wd=") || contains_ci(s, "mysql") || contains_ci(s, "mariadb"),
            &[
                // --password=X, --password X, -pass X
                r#"(?i)(?:^|[\s"'])--?(?:password|passwd|pass)(?:=|\s+)["']?(?P<s>[^\s"']+)"#,
                // password=X, DB_PASSWORD=X, passwd = X
                r#"(?i)(?:password|passwd|passphrase)\s*=\s*["']?(?P<s>[^\s"'&,;]+)"#,
                // pwd=X and ODBC's Pwd=X, but not sudo's PWD=/home/x (a directory)
                r#"\b(?:pwd|Pwd)=["']?(?P<s>[^\s"'&,;]+)"#,
                // "password": "X", my_password: 'X', password := "X" (quoted values only,
                // so that "password: incorrect" in prose is left alone)
                r#"(?i)(?:password|passwd|passphrase)["']?\s*:=?\s*["'](?P<s>[^"']+)["']"#,
                // mysql -u root -pX (lower-case -p: -P is the port)
                r#"(?i:\b(?:mysql|mysqldump|mysqladmin|mariadb)\b)[^\n|;&]*?\s-p(?P<s>[^\s"']+)"#,
            ],
            password_value,
        ),
        "payment-card" => {
            (|s| s.bytes().filter(u8::is_ascii_digit).count() >= 13, &[r"\b[2-6]\d(?:[ -]?\d){11,17}\b"], luhn_span)
        }
        "high-entropy-token" => (
            |s| s.len() >= 16 && s.bytes().any(|b| b.is_ascii_uppercase()) && s.bytes().any(|b| b.is_ascii_lowercase()),
            &[r"[A-Za-z0-9+/=_.-]{16,}"],
            high_entropy,
        ),
        other => unreachable!("unknown rule {other}"),
    };
    let patterns = patterns.iter().map(|p| Regex::new(p).expect("rule pattern compiles")).collect();
    ValueRule { id, prefilter, patterns, span, mask: mask_for(id) }
}

impl ValueRule {
    /// The text with this rule's matches masked, or `None` if nothing matched.
    pub fn apply(&self, text: &str) -> Option<String> {
        if !(self.prefilter)(text) {
            return None;
        }
        let mut current: Option<String> = None;
        for pattern in &self.patterns {
            let input = current.as_deref().unwrap_or(text);
            let mut out = String::new();
            let mut last = 0;
            let mut changed = false;
            for caps in pattern.captures_iter(input) {
                let Some((start, end)) = (self.span)(&caps, input) else {
                    continue;
                };
                if start < last || is_masked(&input[start..end]) {
                    continue;
                }
                out.push_str(&input[last..start]);
                out.push_str(&self.mask);
                last = end;
                changed = true;
            }
            if changed {
                out.push_str(&input[last..]);
                current = Some(out);
            }
        }
        current
    }
}

/// The `s` group if the pattern has one, else the whole match.
fn secret_group(caps: &Captures, _text: &str) -> Option<(usize, usize)> {
    let m = caps.name("s").or_else(|| caps.get(0))?;
    Some((m.start(), m.end()))
}

/// Bearer / Basic credentials: at least 8 characters mixing two of lower case,
/// upper case and digits, so that "Basic authentication failed" or
/// "Bearer secret_name=x" is left alone.
fn credential_like(caps: &Captures, text: &str) -> Option<(usize, usize)> {
    let (start, end) = secret_group(caps, text)?;
    let value = &text[start..end];
    let kinds = [
        value.bytes().any(|b| b.is_ascii_lowercase()),
        value.bytes().any(|b| b.is_ascii_uppercase()),
        value.bytes().any(|b| b.is_ascii_digit()),
    ];
    (value.len() >= 8 && kinds.iter().filter(|k| **k).count() >= 2).then_some((start, end))
}

/// `key=value` where the key names a secret, but not an identifier of one
/// (`secret_name`, `token_type`, `access_key_id`), nor an ARN segment
/// (`arn:aws:secretsmanager:...`), nor a placeholder value.
fn secret_assignment(caps: &Captures, text: &str) -> Option<(usize, usize)> {
    let key = caps.name("k")?;
    let value = caps.name("s")?;
    let normalized: String = key.as_str().to_ascii_lowercase().replace(['_', '-', '.'], "");
    const NOT_SECRET_SUFFIXES: [&str; 8] = ["id", "ids", "name", "type", "arn", "uri", "url", "count"];
    if NOT_SECRET_SUFFIXES.iter().any(|s| normalized.ends_with(s)) || text[..key.start()].ends_with(':') {
        return None;
    }
    let placeholder = ["null", "none", "true", "false"].iter().any(|p| value.as_str().eq_ignore_ascii_case(p));
    (!placeholder).then_some((value.start(), value.end()))
}

/// A free-standing token that looks random: 16+ characters mixing upper case,
/// lower case and digits with at least 3 bits of entropy per character. Key
/// fingerprints (`SHA256:...`), URLs and paths of plain words are left alone.
fn high_entropy(caps: &Captures, text: &str) -> Option<(usize, usize)> {
    let m = caps.get(0)?;
    let token = m.as_str().trim_matches(|c| c == '.' || c == '-' || c == '/');
    let start = m.start() + m.as_str().find(token)?;
    let before = &text[..start];
    // a lone JWT header (`eyJ...` without its parts) is left to the jwt rule
    if ["SHA256:", "SHA1:", "MD5:", "sha256:", "sha1:", "://"].iter().any(|p| before.ends_with(p))
        || token.len() < 16
        || token.starts_with("eyJ")
    {
        return None;
    }
    let count = |f: fn(&u8) -> bool| token.bytes().filter(&f).count();
    let (upper, lower, digits) =
        (count(u8::is_ascii_uppercase), count(u8::is_ascii_lowercase), count(u8::is_ascii_digit));
    // Letters and digits mixed; or, without digits, a long run whose case flips
    // like random text (CamelCase words have one capital per word).
    let mixed = upper > 0 && lower > 0 && digits > 0;
    let random_case = token.len() >= 24 && upper * 4 >= upper + lower && lower * 4 >= upper + lower;
    if !(mixed || random_case) {
        return None;
    }
    // every '/'-separated part short and word-like: a path, not a secret
    if token.split('/').all(|part| part.len() < 12) {
        return None;
    }
    let mut counts = [0u32; 256];
    for b in token.bytes() {
        counts[b as usize] += 1;
    }
    let n = token.len() as f64;
    let entropy: f64 = counts.iter().filter(|&&c| c > 0).map(|&c| -(c as f64 / n) * (c as f64 / n).log2()).sum();
    (entropy >= 3.0).then_some((start, start + token.len()))
}

/// The password, unless a `--password -x` form took the next flag as its value.
fn password_value(caps: &Captures, text: &str) -> Option<(usize, usize)> {
    let (start, end) = secret_group(caps, text)?;
    let after_space = text[..start].ends_with(char::is_whitespace);
    (!(after_space && text[start..end].starts_with('-'))).then_some((start, end))
}

/// A 13-19 digit number (spaces or dashes allowed) that passes the Luhn check.
/// If the whole run fails, shorter runs ending at a separator are tried, so
/// "4111 1111 1111 1111 123" still masks the card.
fn luhn_span(caps: &Captures, text: &str) -> Option<(usize, usize)> {
    let m = caps.get(0)?;
    let run = m.as_str();
    // Digit groups inside a token with letters are part of an identifier (a
    // UUID such as `32bf2d9f-b874-0020-1234-567812345670`, a hex hash), not a card.
    let token_start = text[..m.start()].rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '-')).map_or(0, |i| i + 1);
    let token_end =
        text[m.end()..].find(|c: char| !(c.is_ascii_alphanumeric() || c == '-')).map_or(text.len(), |i| m.end() + i);
    if text[token_start..token_end].bytes().any(|b| b.is_ascii_alphabetic()) {
        return None;
    }
    let mut ends: Vec<usize> = vec![run.len()];
    ends.extend(run.char_indices().filter(|(_, c)| *c == ' ' || *c == '-').map(|(i, _)| i).rev());
    ends.into_iter().find_map(|end| {
        let digits: Vec<u8> = run[..end].bytes().filter(u8::is_ascii_digit).map(|b| b - b'0').collect();
        ((13..=19).contains(&digits.len()) && luhn_valid(&digits)).then_some((m.start(), m.start() + end))
    })
}

pub(crate) fn luhn_valid(digits: &[u8]) -> bool {
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            let d = u32::from(d);
            if i % 2 == 1 { if d * 2 > 9 { d * 2 - 9 } else { d * 2 } } else { d }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// ASCII case-insensitive substring test; `needle` must be lower case.
fn contains_ci(haystack: &str, needle: &str) -> bool {
    let (h, n) = (haystack.as_bytes(), needle.as_bytes());
    h.len() >= n.len() && h.windows(n.len()).any(|w| w.eq_ignore_ascii_case(n))
}
