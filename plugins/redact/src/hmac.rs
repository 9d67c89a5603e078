//! HMAC-SHA256 (RFC 2104), for keyed pseudonyms: the same value under the
//! same key always gives the same pseudonym, and without the key a pseudonym
//! cannot be checked against guessed values (an unkeyed hash could).

use sha2::{Digest, Sha256};

const BLOCK: usize = 64;

/// HMAC-SHA256 of `message` under `key`.
pub fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    let mut block = [0u8; BLOCK];
    if key.len() > BLOCK {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let mut inner = Sha256::new();
    inner.update(block.map(|b| b ^ 0x36));
    inner.update(message);
    let mut outer = Sha256::new();
    outer.update(block.map(|b| b ^ 0x5c));
    outer.update(inner.finalize());
    outer.finalize().into()
}

/// The first 16 bytes of the HMAC, as lower-case hex.
pub fn pseudonym(key: &[u8], value: &str) -> String {
    hmac_sha256(key, value.as_bytes())[..16].iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    // RFC 4231 test cases 1, 2 and 6 (a key longer than the block).
    #[test]
    fn rfc_4231_vectors() {
        assert_eq!(
            hex(&hmac_sha256(&[0x0b; 20], b"Hi There")),
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"
        );
        assert_eq!(
            hex(&hmac_sha256(b"Jefe", b"what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert_eq!(
            hex(&hmac_sha256(&[0xaa; 131], b"Test Using Larger Than Block-Size Key - Hash Key First")),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }

    #[test]
    fn pseudonyms_depend_on_key_and_value() {
        let a = pseudonym(b"tenant-a-key-0123456789", "alice@example.com");
        assert_eq!(a.len(), 32);
        assert_eq!(a, pseudonym(b"tenant-a-key-0123456789", "alice@example.com"));
        assert_ne!(a, pseudonym(b"tenant-b-key-0123456789", "alice@example.com"));
        assert_ne!(a, pseudonym(b"tenant-a-key-0123456789", "bob@example.com"));
    }
}
