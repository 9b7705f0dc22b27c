//! Session ids and the keys stores file records under.

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use sha2::{Digest, Sha256};

/// Number of random bytes in a session id (192 bits from the OS CSPRNG).
const ID_BYTES: usize = 24;
/// Length of an id in its URL-safe base64 form.
pub(crate) const ID_LEN: usize = 32;

/// A session id: 192 bits from the operating system's CSPRNG, URL-safe base64 without
/// padding (32 characters). Ids read from a request are validated strictly by
/// [`SessionId::parse`]; the server only ever adopts ids it generated itself.
///
/// `Debug` and `Display` never print the id in full, so that logging a session cannot
/// leak a live token; use [`SessionId::expose`] when the raw value is really needed.
// Held inline: an id is made, parsed and copied on every request, and never allocates.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct SessionId([u8; ID_LEN]);

impl SessionId {
    /// A fresh random id.
    ///
    /// # Panics
    /// Only if the operating system has no random source at all, in which case no session
    /// can be secure and continuing would be worse.
    pub fn generate() -> Self {
        let mut bytes = [0u8; ID_BYTES];
        getrandom::getrandom(&mut bytes).expect("the OS random number generator failed");
        let mut id = [0u8; ID_LEN];
        let written = URL_SAFE_NO_PAD.encode_slice(bytes, &mut id);
        debug_assert_eq!(written, Ok(ID_LEN));
        SessionId(id)
    }

    /// Parses an id, accepting exactly the shape [`generate`](Self::generate) produces.
    pub fn parse(s: &str) -> Option<Self> {
        // 32 characters of the alphabet are exactly the 192 bits of 24 bytes: no padding,
        // no left-over bits, so every such string decodes, and no decode is needed.
        const _: () = assert!(ID_BYTES * 8 == ID_LEN * 6);
        let id: [u8; ID_LEN] = s.as_bytes().try_into().ok()?;
        id.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_').then_some(SessionId(id))
    }

    /// The raw id. Treat it as a secret: it is a bearer token.
    pub fn expose(&self) -> &str {
        // Always ASCII: both constructors only ever hold URL-safe base64.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

impl fmt::Debug for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SessionId({}…)", self.expose().get(..4).unwrap_or_default())
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}…", self.expose().get(..4).unwrap_or_default())
    }
}

/// The key a server-side store files a session under.
///
/// By default it is a SHA-256 hash of the session id (URL-safe base64, 43 characters), so
/// that a dump of the store does not hand out live session tokens; with `hash_ids = false`
/// (for Beaker interoperability) it is the id itself. Either way it contains only
/// `[A-Za-z0-9_-]`, so it is safe as a file name, a Redis key part or an SQL value.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StoreKey(String);

/// Length of a hashed store key: a SHA-256 digest in unpadded base64.
const HASHED_KEY_LEN: usize = 43;

impl StoreKey {
    /// The store key of `id`: its hash when `hashed`, else the id itself.
    pub fn for_id(id: &SessionId, hashed: bool) -> Self {
        if hashed {
            // Encoded on the stack: `encode` zero-fills a heap buffer first.
            let mut key = [0u8; HASHED_KEY_LEN];
            let written = URL_SAFE_NO_PAD.encode_slice(Sha256::digest(id.0), &mut key);
            debug_assert_eq!(written, Ok(HASHED_KEY_LEN));
            // Base64 is ASCII, so `from_utf8` (whose ASCII fast path is several times
            // quicker than the lossy decoder) always succeeds; the fallback is never taken.
            match std::str::from_utf8(&key) {
                Ok(ascii) => StoreKey(ascii.to_owned()),
                Err(_) => StoreKey(String::from_utf8_lossy(&key).into_owned()),
            }
        } else {
            StoreKey(id.expose().to_owned())
        }
    }

    /// Wraps a key read back from a store (for listing and cleanup); `None` unless it has
    /// the shape of a key this crate makes.
    pub fn from_stored(s: &str) -> Option<Self> {
        let ok = (1..=64).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        ok.then(|| StoreKey(s.to_owned()))
    }

    /// The key as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for StoreKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StoreKey({}…)", &self.0[..self.0.len().min(6)])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_parse_and_differ() {
        let a = SessionId::generate();
        let b = SessionId::generate();
        assert_ne!(a, b);
        assert_eq!(a.expose().len(), ID_LEN);
        assert_eq!(SessionId::parse(a.expose()), Some(a));
    }

    #[test]
    fn malformed_ids_are_rejected() {
        let good = SessionId::generate();
        let s = good.expose();
        for bad in [
            "",
            "short",
            &s[..31],
            &format!("{s}A"),
            &format!("{}+", &s[..31]),
            &format!("{}/", &s[..31]),
            &format!("{}.", &s[..31]),
            "../../../../../../../etc/passwd",
            "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\u{e9}",
        ] {
            assert!(SessionId::parse(bad).is_none(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn every_32_characters_of_the_alphabet_are_a_whole_id() {
        // `parse` checks the alphabet only: with 24 bytes there are no left-over bits.
        let alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        for last in alphabet.chars() {
            let s = format!("{}{last}", &alphabet[..31]);
            let id = SessionId::parse(&s).expect("a 32-character id of the alphabet");
            assert_eq!(id.expose(), s);
            let mut bytes = [0u8; ID_BYTES];
            assert_eq!(URL_SAFE_NO_PAD.decode_slice(&s, &mut bytes), Ok(ID_BYTES), "{s}");
        }
    }

    #[test]
    fn hashed_store_keys_hide_the_id() {
        let id = SessionId::generate();
        let k = StoreKey::for_id(&id, true);
        assert!(!k.as_str().contains(id.expose()));
        assert_eq!(k, StoreKey::for_id(&id, true));
        assert_eq!(StoreKey::for_id(&id, false).as_str(), id.expose());
        assert!(StoreKey::from_stored(k.as_str()).is_some());
        assert!(StoreKey::from_stored("../x").is_none());
    }

    #[test]
    fn the_hashed_key_format_is_stable() {
        // Records already stored are found under this key: unpadded URL-safe base64 of
        // SHA-256 over the id's text (checked against Python's hashlib and base64).
        let id = SessionId::parse("abcdefghijklmnopqrstuvwxyz012345").unwrap();
        assert_eq!(StoreKey::for_id(&id, true).as_str(), "ZTuxJF6Cj82k-lP81aPe9b12VOZR9UtBMrc9dOZENcQ");
    }

    #[test]
    fn debug_does_not_leak_the_id() {
        let id = SessionId::generate();
        assert!(!format!("{id:?} {id}").contains(id.expose()));
    }
}
