//! Ed25519 keys and signed checkpoints in the C2SP formats (`signed-note`,
//! `tlog-checkpoint`): a checkpoint is the text
//!
//! ```text
//! <origin>
//! <tree size>
//! <base64 root hash>
//! [extension lines]
//!
//! — <key name> <base64(key id || signature)>
//! ```
//!
//! where the key id is the first 4 bytes of SHA-256(name || "\n" || 0x01 ||
//! public key). Public keys are written as verifier keys
//! (`<name>+<hex id>+<base64(0x01 || key)>`), optionally followed by
//! `not-before=<RFC 3339>` / `not-after=<RFC 3339>` to bound when a key may sign.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::{Signature, Signer as _, SigningKey, Verifier as _, VerifyingKey};
use sha2::{Digest, Sha256};

const ED25519: u8 = 0x01;
const PRIVATE_PREFIX: &str = "PRIVATE+KEY+";

/// Why a key or checkpoint was refused.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum NoteError {
    #[error("malformed key: {0}")]
    Key(String),
    #[error("malformed checkpoint: {0}")]
    Malformed(String),
    #[error("no signature by a trusted key (signed by: {0})")]
    UnknownKey(String),
    #[error("signature by key {0} does not verify")]
    BadSignature(String),
    #[error("signed by key {name} at {time}, outside its validity ({window})")]
    Expired { name: String, time: String, window: String },
}

fn key_id(name: &str, public: &[u8; 32]) -> [u8; 4] {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update(b"\n");
    h.update([ED25519]);
    h.update(public);
    let d = h.finalize();
    [d[0], d[1], d[2], d[3]]
}

fn check_name(name: &str) -> Result<(), NoteError> {
    if name.is_empty() || name.contains(['+', ' ', '\n', '\t']) {
        return Err(NoteError::Key(format!("key name `{name}` must be non-empty, without '+' or spaces")));
    }
    Ok(())
}

/// A private signing key with its name.
pub struct NoteSigner {
    pub name: String,
    key: SigningKey,
}

impl NoteSigner {
    /// A fresh key from the operating system's randomness.
    pub fn generate(name: &str) -> Result<Self, NoteError> {
        check_name(name)?;
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(|e| NoteError::Key(format!("no randomness: {e}")))?;
        Ok(NoteSigner { name: name.to_string(), key: SigningKey::from_bytes(&seed) })
    }

    /// `PRIVATE+KEY+<name>+<hex id>+<base64(0x01 || seed)>`
    pub fn to_text(&self) -> String {
        let public = self.key.verifying_key().to_bytes();
        let mut body = vec![ED25519];
        body.extend_from_slice(&self.key.to_bytes());
        format!("{PRIVATE_PREFIX}{}+{}+{}", self.name, hex::encode(key_id(&self.name, &public)), B64.encode(body))
    }

    pub fn from_text(text: &str) -> Result<Self, NoteError> {
        let rest =
            text.trim().strip_prefix(PRIVATE_PREFIX).ok_or_else(|| NoteError::Key("not a private key".into()))?;
        let parts: Vec<&str> = rest.splitn(3, '+').collect();
        let [name, _id, body] = parts[..] else { return Err(NoteError::Key("expected name+id+key".into())) };
        let bytes = B64.decode(body).map_err(|_| NoteError::Key("key is not base64".into()))?;
        let seed: [u8; 32] = match bytes.split_first() {
            Some((&ED25519, seed)) => seed.try_into().map_err(|_| NoteError::Key("wrong key length".into()))?,
            _ => return Err(NoteError::Key("not an Ed25519 key".into())),
        };
        check_name(name)?;
        Ok(NoteSigner { name: name.to_string(), key: SigningKey::from_bytes(&seed) })
    }

    pub fn verifier(&self) -> NoteVerifier {
        NoteVerifier::new(&self.name, self.key.verifying_key(), None, None)
    }

    /// Signs `text` (which must end with a newline) as a note.
    pub fn sign(&self, text: &str) -> String {
        debug_assert!(text.ends_with('\n'));
        let public = self.key.verifying_key().to_bytes();
        let mut sig = key_id(&self.name, &public).to_vec();
        sig.extend_from_slice(&self.key.sign(text.as_bytes()).to_bytes());
        format!("{text}\n\u{2014} {} {}\n", self.name, B64.encode(sig))
    }
}

/// A public key that checkpoints are verified with, and when it may sign.
#[derive(Clone, Debug)]
pub struct NoteVerifier {
    pub name: String,
    id: [u8; 4],
    key: VerifyingKey,
    not_before: Option<chrono::DateTime<chrono::Utc>>,
    not_after: Option<chrono::DateTime<chrono::Utc>>,
}

impl NoteVerifier {
    fn new(
        name: &str,
        key: VerifyingKey,
        not_before: Option<chrono::DateTime<chrono::Utc>>,
        not_after: Option<chrono::DateTime<chrono::Utc>>,
    ) -> Self {
        NoteVerifier { name: name.to_string(), id: key_id(name, &key.to_bytes()), key, not_before, not_after }
    }

    /// `<name>+<hex id>+<base64(0x01 || key)>`
    pub fn to_text(&self) -> String {
        let mut body = vec![ED25519];
        body.extend_from_slice(&self.key.to_bytes());
        format!("{}+{}+{}", self.name, hex::encode(self.id), B64.encode(body))
    }

    /// Parses a verifier key line, with optional `not-before=` / `not-after=` words.
    pub fn from_text(line: &str) -> Result<Self, NoteError> {
        let mut words = line.split_whitespace();
        let vkey = words.next().ok_or_else(|| NoteError::Key("empty key line".into()))?;
        let parts: Vec<&str> = vkey.splitn(3, '+').collect();
        let [name, id, body] = parts[..] else {
            return Err(NoteError::Key(format!("expected name+id+key, got `{vkey}`")));
        };
        check_name(name)?;
        let bytes = B64.decode(body).map_err(|_| NoteError::Key("key is not base64".into()))?;
        let public: [u8; 32] = match bytes.split_first() {
            Some((&ED25519, k)) => k.try_into().map_err(|_| NoteError::Key("wrong key length".into()))?,
            _ => return Err(NoteError::Key("not an Ed25519 key".into())),
        };
        let key = VerifyingKey::from_bytes(&public).map_err(|_| NoteError::Key("not a valid Ed25519 point".into()))?;
        let mut v = NoteVerifier::new(name, key, None, None);
        if hex::encode(v.id) != id {
            return Err(NoteError::Key(format!("key id {id} does not match the key")));
        }
        for word in words {
            let (k, t) = word.split_once('=').ok_or_else(|| NoteError::Key(format!("unexpected `{word}`")))?;
            let t = chrono::DateTime::parse_from_rfc3339(t)
                .map_err(|_| NoteError::Key(format!("`{t}` is not an RFC 3339 time")))?
                .to_utc();
            match k {
                "not-before" => v.not_before = Some(t),
                "not-after" => v.not_after = Some(t),
                _ => return Err(NoteError::Key(format!("unknown key option `{k}`"))),
            }
        }
        Ok(v)
    }

    fn window(&self) -> String {
        let f = |t: Option<chrono::DateTime<chrono::Utc>>| t.map_or("-".to_string(), |t| t.to_rfc3339());
        format!("{} .. {}", f(self.not_before), f(self.not_after))
    }
}

/// Reads a file of verifier keys, one per line (`#` comments allowed).
pub fn parse_verifiers(text: &str) -> Result<Vec<NoteVerifier>, NoteError> {
    text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).map(NoteVerifier::from_text).collect()
}

/// A parsed checkpoint body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub origin: String,
    pub size: u64,
    pub root: [u8; 32],
    /// Extension lines, `key value` each (sluice writes `time <RFC 3339>`).
    pub extensions: Vec<String>,
}

impl Checkpoint {
    pub fn body(&self) -> String {
        let mut s = format!("{}\n{}\n{}\n", self.origin, self.size, B64.encode(self.root));
        for e in &self.extensions {
            s.push_str(e);
            s.push('\n');
        }
        s
    }

    /// The `time` extension, if any.
    pub fn time(&self) -> Option<chrono::DateTime<chrono::Utc>> {
        self.extensions
            .iter()
            .find_map(|e| e.strip_prefix("time "))
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.to_utc())
    }

    /// Parses a signed checkpoint and checks that a trusted key signed it
    /// (within that key's validity, judged by the checkpoint's own time).
    pub fn open(text: &str, trusted: &[NoteVerifier]) -> Result<(Checkpoint, String), NoteError> {
        let bad = |m: &str| NoteError::Malformed(m.to_string());
        let (body, sigs) = text.split_once("\n\n").ok_or_else(|| bad("no blank line before the signatures"))?;
        let body = format!("{body}\n");
        let mut lines = body.lines();
        let origin = lines.next().filter(|o| !o.is_empty()).ok_or_else(|| bad("no origin line"))?.to_string();
        let size_text = lines.next().ok_or_else(|| bad("no tree size line"))?;
        if size_text.is_empty()
            || !size_text.bytes().all(|b| b.is_ascii_digit())
            || (size_text.len() > 1 && size_text.starts_with('0'))
        {
            return Err(bad("tree size is not a decimal number"));
        }
        let size: u64 = size_text.parse().map_err(|_| bad("tree size out of range"))?;
        let root_bytes = B64
            .decode(lines.next().ok_or_else(|| bad("no root hash line"))?)
            .map_err(|_| bad("root hash is not base64"))?;
        let root: [u8; 32] = root_bytes.try_into().map_err(|_| bad("root hash is not 32 bytes"))?;
        let extensions: Vec<String> = lines.map(str::to_string).collect();
        if extensions.iter().any(String::is_empty) {
            return Err(bad("empty extension line"));
        }
        if !sigs.ends_with('\n') {
            return Err(bad("signature block does not end with a newline"));
        }
        let checkpoint = Checkpoint { origin, size, root, extensions };
        let mut seen = Vec::new();
        for line in sigs.lines() {
            let rest =
                line.strip_prefix("\u{2014} ").ok_or_else(|| bad("signature line does not start with an em dash"))?;
            let (name, sig_b64) = rest.split_once(' ').ok_or_else(|| bad("signature line without a signature"))?;
            let sig = B64.decode(sig_b64).map_err(|_| bad("signature is not base64"))?;
            if sig.len() != 4 + 64 {
                return Err(bad("signature has the wrong length"));
            }
            seen.push(name.to_string());
            let Some(key) = trusted.iter().find(|k| k.name == name && k.id[..] == sig[..4]) else { continue };
            let signature = Signature::from_slice(&sig[4..]).map_err(|_| bad("signature bytes"))?;
            if key.key.verify(body.as_bytes(), &signature).is_err() {
                return Err(NoteError::BadSignature(name.to_string()));
            }
            if let Some(t) = checkpoint.time() {
                let early = key.not_before.is_some_and(|nb| t < nb);
                let late = key.not_after.is_some_and(|na| t > na);
                if early || late {
                    return Err(NoteError::Expired {
                        name: name.to_string(),
                        time: t.to_rfc3339(),
                        window: key.window(),
                    });
                }
            }
            return Ok((checkpoint, name.to_string()));
        }
        if seen.is_empty() {
            return Err(bad("no signature lines"));
        }
        Err(NoteError::UnknownKey(seen.join(", ")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checkpoint() -> Checkpoint {
        Checkpoint {
            origin: "sluice.example/archive/auth".into(),
            size: 7,
            root: [7u8; 32],
            extensions: vec!["time 2026-11-26T10:00:00Z".into()],
        }
    }

    #[test]
    fn sign_and_open_round_trip_and_keys_round_trip() {
        let signer = NoteSigner::generate("archive-2026").unwrap();
        let again = NoteSigner::from_text(&signer.to_text()).unwrap();
        assert_eq!(again.verifier().to_text(), signer.verifier().to_text());
        let verifier = NoteVerifier::from_text(&signer.verifier().to_text()).unwrap();
        let note = signer.sign(&checkpoint().body());
        let (c, by) = Checkpoint::open(&note, &[verifier]).unwrap();
        assert_eq!((c, by.as_str()), (checkpoint(), "archive-2026"));
    }

    #[test]
    fn tampering_unknown_and_expired_keys_are_refused() {
        let signer = NoteSigner::generate("k1").unwrap();
        let other = NoteSigner::generate("k2").unwrap();
        let v = signer.verifier();
        let note = signer.sign(&checkpoint().body());
        let tampered = note.replacen("\n7\n", "\n8\n", 1);
        assert_eq!(Checkpoint::open(&tampered, std::slice::from_ref(&v)), Err(NoteError::BadSignature("k1".into())));
        assert_eq!(Checkpoint::open(&note, &[other.verifier()]), Err(NoteError::UnknownKey("k1".into())));
        let expired = NoteVerifier::from_text(&format!("{} not-after=2026-01-01T00:00:00Z", v.to_text())).unwrap();
        assert!(matches!(Checkpoint::open(&note, &[expired]), Err(NoteError::Expired { .. })));
        let later = NoteVerifier::from_text(&format!("{} not-before=2027-01-01T00:00:00Z", v.to_text())).unwrap();
        assert!(matches!(Checkpoint::open(&note, &[later]), Err(NoteError::Expired { .. })));
    }

    #[test]
    fn malformed_checkpoints_are_refused_not_panicked_on() {
        let signer = NoteSigner::generate("k").unwrap();
        let v = [signer.verifier()];
        let note = signer.sign(&checkpoint().body());
        for cut in 0..note.len() {
            if note.is_char_boundary(cut) {
                assert!(Checkpoint::open(&note[..cut], &v).is_err(), "truncated at {cut}");
            }
        }
        assert!(Checkpoint::open(&format!("{note}trailing"), &v).is_err());
        assert!(Checkpoint::open("garbage", &v).is_err());
        assert!(Checkpoint::open(&note.replacen("\n7\n", "\n07\n", 1), &v).is_err());
    }
}
