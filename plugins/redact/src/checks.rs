//! Validators that decide whether a regex match is a secret: checksums (Luhn,
//! IBAN mod-97), entropy, and the placeholder test that keeps `${DB_PASSWORD}`,
//! `<your-key>` or `********` from being reported.

/// Shannon entropy of a string, in bits per character.
pub fn entropy(text: &str) -> f64 {
    if text.is_empty() {
        return 0.0;
    }
    let mut counts = [0u32; 256];
    for b in text.bytes() {
        counts[b as usize] += 1;
    }
    let n = text.len() as f64;
    counts.iter().filter(|&&c| c > 0).map(|&c| -(c as f64 / n) * (c as f64 / n).log2()).sum()
}

/// Values that stand for a secret rather than being one: empty, `null`,
/// template and variable references (`${X}`, `{{ x }}`, `$X`, `%X%`, `<X>`,
/// `!Ref X`), environment-variable names (`DB_PASSWORD`), code (`getPass()`,
/// `env.X`), one repeated character (`****`, `xxxx`), the key's own name,
/// words such as `password`, `your-token`, `changeme`, and status words
/// (`password: incorrect`).
pub fn is_placeholder(value: &str, key: Option<&str>) -> bool {
    let v = value.trim().trim_matches(|c| c == '"' || c == '\'' || c == '\\');
    if v.is_empty() {
        return true;
    }
    // a PEM block with no real body: -----BEGIN PRIVATE KEY-----\n...\n-----END
    if let Some(rest) = v.strip_prefix("-----BEGIN") {
        let body = rest.split("-----").nth(1).unwrap_or("");
        let body = body.replace("\\n", "").replace("\\r", "");
        return body.bytes().filter(u8::is_ascii_alphanumeric).count() < 50;
    }
    let lower = v.to_ascii_lowercase();
    let norm: String = lower.chars().filter(char::is_ascii_alphanumeric).collect();
    const WORDS: &[&str] = &[
        "null",
        "none",
        "nil",
        "undefined",
        "true",
        "false",
        "yes",
        "no",
        "on",
        "off",
        "empty",
        "na",
        "tbd",
        "todo",
        "fixme",
        "redacted",
        "masked",
        "hidden",
        "removed",
        "omitted",
        "filtered",
        "password",
        "passwd",
        "pwd",
        "mypassword",
        "yourpassword",
        "userpassword",
        "dbpassword",
        "adminpassword",
        "rootpassword",
        "newpassword",
        "oldpassword",
        "somepassword",
        "examplepassword",
        "samplepassword",
        "dummypassword",
        "changeme",
        "secretvalue",
        "placeholder",
        "notset",
        "unset",
        "set",
        "incorrect",
        "invalid",
        "wrong",
        "failed",
        "failure",
        "expired",
        "required",
        "changed",
        "reset",
        "missing",
        "denied",
        "accepted",
        "mismatch",
        "updated",
        "ok",
        "success",
        "successful",
        "error",
        "blank",
        "optional",
        "default",
        "generated",
        "random",
        "provided",
        "encrypted",
        "notrequired",
        "string",
        "value",
        "text",
        "token",
        "apikey",
        "key",
        "bearer",
        "basic",
        "digest",
        "negotiate",
        "ntlm",
        "aws4hmacsha256",
    ];
    if WORDS.contains(&norm.as_str()) {
        return true;
    }
    if norm.starts_with("your") || lower.starts_with("<") || lower.starts_with("&lt;") {
        return true;
    }
    // code around the value: `" + getPassword() + "`
    if v.starts_with('+') || v.ends_with('+') {
        return true;
    }
    // prose: three or more plain words ("Get this from elsewhere")
    let words: Vec<&str> = v.split_whitespace().collect();
    if words.len() >= 3 && words.iter().all(|w| w.bytes().all(|b| b.is_ascii_alphabetic() || b"'.,".contains(&b))) {
        return true;
    }
    // templates and references
    const PREFIXES: &[&str] = &[
        "${",
        "$(",
        "$$",
        "{{",
        "{%",
        "<%",
        "#{",
        "%(",
        "%{",
        "!ref",
        "!sub",
        "!getatt",
        "!importvalue",
        "fn::",
        "arn:",
        "secretsmanager:",
        "ssm:",
        "vault:",
        "env:",
        "env.",
        "env(",
        "env[",
        "process.env",
        "os.environ",
        "os.getenv",
        "getenv(",
        "system.getenv",
        "secrets.",
        "vars.",
        "var.",
        "config.",
        "settings.",
        "params.",
        "parameters(",
        "ref(",
        "lookup(",
        "request.",
        "$_post",
        "$_get",
        "$_env",
        "$_server",
    ];
    if PREFIXES.iter().any(|p| lower.starts_with(p)) {
        return true;
    }
    let bytes = v.as_bytes();
    // $VAR, $var_name/path (shell, PHP, PowerShell variables)
    if bytes[0] == b'$' && bytes.len() > 1 && (bytes[1].is_ascii_alphabetic() || bytes[1] == b'_') {
        return true;
    }
    // wrapped: {x}, [x], <x>, %x%, @x@, __x__ with plain words inside
    let wrapped = [("{", "}"), ("[", "]"), ("<", ">"), ("%", "%"), ("@", "@"), ("__", "__"), ("(", ")")];
    for (open, close) in wrapped {
        if v.len() > open.len() + close.len() && v.starts_with(open) && v.ends_with(close) {
            let inner = &v[open.len()..v.len() - close.len()];
            if inner.bytes().all(|b| b.is_ascii_alphanumeric() || b" _-.:'\"()".contains(&b)) {
                return true;
            }
        }
    }
    // one repeated character, or only mask characters: ****, xxxx, ####, 0000
    let first = bytes[0].to_ascii_lowercase();
    if bytes.iter().all(|b| b.to_ascii_lowercase() == first)
        || bytes.iter().all(|b| matches!(b, b'*' | b'#' | b'.' | b'-' | b'_' | b'x' | b'X' | b'?'))
    {
        return true;
    }
    // an environment-variable name: DB_PASSWORD, AUTH_TOKEN
    if bytes[0].is_ascii_uppercase()
        && v.contains('_')
        && bytes.iter().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || *b == b'_')
    {
        return true;
    }
    // the key's own name: TRAVEL_API_KEY: TRAVEL_API_KEY
    if let Some(key) = key {
        let key_norm = crate::keys::normalize(key);
        if !key_norm.is_empty() && (norm == key_norm || key_norm.ends_with(&norm) && norm.len() >= 6) {
            return true;
        }
    }
    // code: a call (`getPassword()`, `Buffer.from(x)`), a subscript, a dotted path
    let ident = |s: &str| {
        !s.is_empty()
            && s.bytes().next().is_some_and(|b| b.is_ascii_alphabetic() || b == b'_' || b == b'$')
            && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'$')
    };
    if let Some(open) = v.find('(')
        && v.ends_with(')')
        && v[..open].split(['.', ':']).all(ident)
    {
        return true;
    }
    if let Some(open) = v.find('[')
        && open > 0
        && v.ends_with(']')
        && v[..open].split('.').all(ident)
    {
        return true;
    }
    if v.contains('.') && !v.ends_with('.') && v.split('.').count() >= 2 && v.split('.').all(ident) {
        let first_part = lower.split('.').next().unwrap_or("");
        if ["env", "process", "config", "settings", "secrets", "vars", "params", "self", "this", "os", "request"]
            .contains(&first_part)
        {
            return true;
        }
    }
    // a CSS selector or anchor: #add-password
    if (bytes[0] == b'#' || bytes[0] == b'.')
        && v.len() > 1
        && v[1..].bytes().all(|b| b.is_ascii_lowercase() || b == b'-' || b == b'_')
    {
        return true;
    }
    // a path: /home/carol, ./config, /en/enterprise-server@3.0/auth
    if (v.starts_with('/') || v.starts_with("./") || v.starts_with("~/") || v.starts_with("../"))
        && !v.contains(char::is_whitespace)
        && (v.bytes().all(|b| b.is_ascii_alphanumeric() || b"/._-~".contains(&b)) || v.matches('/').count() >= 2)
    {
        return true;
    }
    // stop words anywhere in it
    const STOP: &[&str] = &["example", "placeholder", "dummy", "changeme", "replace", "insert_", "enter_", "xxxxx"];
    STOP.iter().any(|s| lower.contains(s)) || norm.contains("notareal") || norm.contains("notreal")
}

/// Whether `text` (16+ letters and digits) is mostly alphabet and digit
/// runs, as placeholders in documentation are (`aBcDeFgH...`,
/// `ABCDEF1234567890`, `aAbBcC...`): at least half of its neighbouring
/// letters and digits go up by one (`a`→`b`, `9`→`0`, case ignored) or flip
/// case (`a`→`A`), and no 10 pairs in a row fail to. In a random token
/// about one pair in twenty steps.
pub fn is_sequence(text: &str) -> bool {
    let chars: Vec<u8> = text.bytes().filter(u8::is_ascii_alphanumeric).collect();
    if chars.len() < 16 {
        return false;
    }
    let (mut stepped, mut gap, mut longest_gap) = (0, 0, 0);
    for w in chars.windows(2) {
        let (a, b) = (w[0].to_ascii_lowercase(), w[1].to_ascii_lowercase());
        if b == a + 1 || (a, b) == (b'9', b'0') || (a == b && w[0] != w[1]) {
            stepped += 1;
            gap = 0;
        } else {
            gap += 1;
            longest_gap = longest_gap.max(gap);
        }
    }
    // 11 characters without a step are random material glued to a run (a
    // vendor format's 8-character checksum after a run is still a placeholder)
    stepped * 2 >= chars.len() - 1 && longest_gap < 10
}

/// A value under a weak key (`slackKey`, `basicAuth`) is a credential when it
/// is one token of 8+ characters, mixes two of lower case, upper case and
/// digits with 3+ bits of entropy, and is not hex (a hash), an ARN, or a URL
/// or path without such a token in it.
pub fn credential_like(value: &str) -> bool {
    let v = value.trim();
    if v.len() < 8 || v.len() > 4096 || v.contains(char::is_whitespace) || is_placeholder(v, None) {
        return false;
    }
    if v.starts_with("arn:") {
        return false;
    }
    if let Some((_, rest)) = v.split_once("://") {
        return rest.split(['/', '?', '&', '=']).skip(1).any(|seg| {
            seg.len() >= 10
                && seg.bytes().any(|b| b.is_ascii_digit())
                && seg.bytes().any(|b| b.is_ascii_alphabetic())
                && token_like(seg)
        });
    }
    if v.contains('/') && v.split('/').all(|part| part.len() < 12) {
        return false;
    }
    token_like(v)
}

fn token_like(v: &str) -> bool {
    let hex = v.bytes().all(|b| b.is_ascii_hexdigit());
    let classes = [
        v.bytes().any(|b| b.is_ascii_lowercase()),
        v.bytes().any(|b| b.is_ascii_uppercase()),
        v.bytes().any(|b| b.is_ascii_digit()),
    ];
    !hex && classes.iter().filter(|c| **c).count() >= 2 && entropy(v) >= 3.0
}

pub fn luhn_valid(digits: &[u8]) -> bool {
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

/// A 13-19 digit number (spaces or dashes allowed) that passes the Luhn check,
/// as a range of `run` (which starts at `start` in `text`). If the whole run
/// fails, shorter runs ending at a separator are tried, so
/// "4111 1111 1111 1111 123" still finds the card. Digit groups inside a token
/// with letters or `_` (a UUID, a hex hash, `blk_-695...`) are part of an
/// identifier, and a run after `-` or `.` is a negative or decimal number.
pub fn luhn_span(text: &str, start: usize, end: usize) -> Option<(usize, usize)> {
    let run = &text[start..end];
    let is_id_char = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
    let token_start = text[..start].rfind(|c: char| !is_id_char(c)).map_or(0, |i| i + 1);
    let token_end = text[end..].find(|c: char| !is_id_char(c)).map_or(text.len(), |i| end + i);
    // `blk_-6952295868487656571`, `-4980916519894289629`: ids and negative numbers
    if text[token_start..token_end].bytes().any(|b| b.is_ascii_alphabetic() || b == b'_')
        || text[..start].ends_with(['-', '.'])
    {
        return None;
    }
    let mut ends: Vec<usize> = vec![run.len()];
    ends.extend(run.char_indices().filter(|(_, c)| *c == ' ' || *c == '-').map(|(i, _)| i).rev());
    ends.into_iter().find_map(|cut| {
        let digits: Vec<u8> = run[..cut].bytes().filter(u8::is_ascii_digit).map(|b| b - b'0').collect();
        ((13..=19).contains(&digits.len()) && luhn_valid(&digits)).then_some((start, start + cut))
    })
}

/// IBAN length by country (ISO 13616 registry).
const IBAN_LENGTHS: &[(&str, usize)] = &[
    ("AD", 24),
    ("AE", 23),
    ("AL", 28),
    ("AT", 20),
    ("AZ", 28),
    ("BA", 20),
    ("BE", 16),
    ("BG", 22),
    ("BH", 22),
    ("BI", 27),
    ("BR", 29),
    ("BY", 28),
    ("CH", 21),
    ("CR", 22),
    ("CY", 28),
    ("CZ", 24),
    ("DE", 22),
    ("DJ", 27),
    ("DK", 18),
    ("DO", 28),
    ("EE", 20),
    ("EG", 29),
    ("ES", 24),
    ("FI", 18),
    ("FK", 18),
    ("FO", 18),
    ("FR", 27),
    ("GB", 22),
    ("GE", 22),
    ("GI", 23),
    ("GL", 18),
    ("GR", 27),
    ("GT", 28),
    ("HN", 28),
    ("HR", 21),
    ("HU", 28),
    ("IE", 22),
    ("IL", 23),
    ("IQ", 23),
    ("IS", 26),
    ("IT", 27),
    ("JO", 30),
    ("KW", 30),
    ("KZ", 20),
    ("LB", 28),
    ("LC", 32),
    ("LI", 21),
    ("LT", 20),
    ("LU", 20),
    ("LV", 21),
    ("LY", 25),
    ("MC", 27),
    ("MD", 24),
    ("ME", 22),
    ("MK", 19),
    ("MN", 20),
    ("MR", 27),
    ("MT", 31),
    ("MU", 30),
    ("NI", 28),
    ("NL", 18),
    ("NO", 15),
    ("OM", 23),
    ("PK", 24),
    ("PL", 28),
    ("PS", 29),
    ("PT", 25),
    ("QA", 29),
    ("RO", 24),
    ("RS", 22),
    ("RU", 33),
    ("SA", 24),
    ("SC", 31),
    ("SD", 18),
    ("SE", 24),
    ("SI", 19),
    ("SK", 24),
    ("SM", 27),
    ("SO", 23),
    ("ST", 25),
    ("SV", 28),
    ("TL", 23),
    ("TN", 24),
    ("TR", 26),
    ("UA", 29),
    ("VA", 22),
    ("VG", 24),
    ("XK", 20),
    ("YE", 30),
];

/// The longest prefix of `candidate` (spaces allowed) that is an IBAN: the
/// country's length and a mod-97 remainder of 1. Returns its byte length.
pub fn iban_len(candidate: &str) -> Option<usize> {
    let country = candidate.get(..2)?;
    let &(_, len) = IBAN_LENGTHS.iter().find(|(c, _)| *c == country)?;
    let mut chars = 0;
    let mut end = 0;
    for (i, c) in candidate.char_indices() {
        if c == ' ' {
            continue;
        }
        chars += 1;
        if chars == len {
            end = i + 1;
            break;
        }
    }
    if chars < len {
        return None;
    }
    let compact: String = candidate[..end].chars().filter(|c| *c != ' ').collect();
    let rearranged = format!("{}{}", &compact[4..], &compact[..4]);
    let mut remainder: u32 = 0;
    for c in rearranged.chars() {
        let value = c.to_digit(36)?;
        remainder = if value >= 10 { (remainder * 100 + value) % 97 } else { (remainder * 10 + value) % 97 };
    }
    (remainder == 1).then_some(end)
}

/// Decodes standard base64 (padding optional); `None` on a bad character.
pub fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let mut buffer = 0u32;
    let mut bits = 0;
    for b in text.bytes() {
        let value = match b {
            b'A'..=b'Z' => b - b'A',
            b'a'..=b'z' => b - b'a' + 26,
            b'0'..=b'9' => b - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            b'=' => break,
            _ => return None,
        };
        buffer = (buffer << 6) | u32::from(value);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders() {
        for p in [
            "",
            "null",
            "${DB_PASSWORD}",
            "{{ password }}",
            "$password",
            "$$password",
            "%env(DB_SECRET_VALUE)%",
            "<% PASSWORD_HERE %>",
            "&lt;YOURPASSWROD&gt;",
            "!Ref 'MasterUserPassword'",
            "DB_PASSWORD",
            "********",
            "xxxx",
            "######",
            "getMasterUserPassword()",
            "env.PERKEEP_TEST_PASSWORD",
            "request.form['password']",
            "#add-password",
            "/home/carol",
            "incorrect",
            "your-api-key",
            "myPassword",
        ] {
            assert!(is_placeholder(p, None), "{p:?}");
        }
        for s in
            ["hunter2", "hardcoded3", "password1", "super$ecret", "$2a$12$abc", "Pa55-x", "thisismypassword", "admin"]
        {
            assert!(!is_placeholder(s, None), "{s:?}");
        }
        assert!(is_placeholder("TRAVEL_API_KEY", Some("TRAVEL_API_KEY")));
    }

    #[test]
    fn credentials_under_weak_keys() {
        assert!(credential_like("YXNkZmZmZmZm_HARDcoded"));
        assert!(credential_like("https://chat.twilio.com/v2/Services/ISX/hardcodedWebhook03"));
        assert!(!credential_like("https://hooks.slack.com/services/"));
        assert!(!credential_like("s3://bucket/deduped_events/schema"));
        assert!(!credential_like("951bc382db9abad29c68634761dd6e19"));
        assert!(!credential_like("Get this from elsewhere"));
        assert!(!credential_like("arn:aws:kms:us-east-1:123456789012:key/1234abcd"));
    }

    #[test]
    fn checksums() {
        assert!(luhn_valid(&[4, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1]));
        assert_eq!(iban_len("DE89 3704 0044 0532 0130 00"), Some(27));
        assert_eq!(iban_len("GB82WEST12345698765432"), Some(22));
        assert_eq!(iban_len("DE89 3704 0044 0532 0130 01"), None);
        assert_eq!(iban_len("DE89 3704"), None);
        assert_eq!(base64_decode("aGVsbG8=").unwrap(), b"hello");
        assert!(entropy("aaaa") < 0.1 && entropy("abcd") > 1.9);
    }
}
