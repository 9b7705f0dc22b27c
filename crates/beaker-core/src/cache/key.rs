//! Key length limiting: keys longer than a region's `key_length` are replaced by a hash,
//! so that backends with key limits (Memcached's 250 bytes) and memory regions with huge
//! keys stay bounded.

use std::borrow::Cow;

use sha2::{Digest, Sha256};

/// `key` itself when it fits in `max_len` bytes, otherwise the lowercase hex SHA-256 of
/// it, cut to `max_len` characters when that is shorter than the 64-character digest.
#[inline]
pub(crate) fn limit_key(key: &str, max_len: usize) -> Cow<'_, str> {
    if key.len() <= max_len {
        return Cow::Borrowed(key);
    }
    hashed_key(key, max_len)
}

#[cold]
fn hashed_key(key: &str, max_len: usize) -> Cow<'_, str> {
    let digest = Sha256::digest(key.as_bytes());
    let mut hex = String::with_capacity(64);
    for byte in digest {
        hex.push(char::from_digit(u32::from(byte >> 4), 16).expect("a nibble"));
        hex.push(char::from_digit(u32::from(byte & 0xf), 16).expect("a nibble"));
    }
    hex.truncate(max_len.max(1));
    Cow::Owned(hex)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_keys_pass_long_keys_are_hashed_within_the_limit() {
        assert_eq!(limit_key("user:1", 250), "user:1");
        let long = "k".repeat(300);
        let hashed = limit_key(&long, 250);
        assert_eq!(hashed.len(), 64);
        assert_ne!(hashed, limit_key(&"k".repeat(301), 250));
        assert_eq!(limit_key(&long, 16).len(), 16);
        assert_eq!(hashed, limit_key(&long, 250), "hashing is deterministic");
    }
}
