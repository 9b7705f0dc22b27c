//! Session ids and the keys stores file records under.

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use sha2::{Digest, Sha256};

/// Number of random bytes in a session id (192 bits from the OS CSPRNG).
pub(crate) const ID_BYTES: usize = 24;
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
        Self::from_bytes(&bytes)
    }

    /// Parses an id, accepting exactly the shape [`generate`](Self::generate) produces.
    pub fn parse(s: &str) -> Option<Self> {
        // 32 characters of the alphabet are exactly the 192 bits of 24 bytes: no padding,
        // no left-over bits, so every such string decodes, and no decode is needed.
        const _: () = assert!(ID_BYTES * 8 == ID_LEN * 6);
        let id: [u8; ID_LEN] = s.as_bytes().try_into().ok()?;
        id.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_').then_some(SessionId(id))
    }

    /// The id's random bytes, for a binary record that stores them in 24 bytes, not 32.
    pub(crate) fn to_bytes(&self) -> [u8; ID_BYTES] {
        let mut bytes = [0u8; ID_BYTES];
        // 32 characters of the alphabet always decode to exactly 24 bytes (see `parse`).
        let read = URL_SAFE_NO_PAD.decode_slice(self.0, &mut bytes);
        debug_assert_eq!(read, Ok(ID_BYTES));
        bytes
    }

    /// The id whose random bytes are `bytes` (what [`to_bytes`](Self::to_bytes) returned).
    pub(crate) fn from_bytes(bytes: &[u8; ID_BYTES]) -> Self {
        let mut id = [0u8; ID_LEN];
        let written = URL_SAFE_NO_PAD.encode_slice(bytes, &mut id);
        debug_assert_eq!(written, Ok(ID_LEN));
        SessionId(id)
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
// Held inline, like `SessionId`: a key is derived on every request that reaches the store.
#[derive(Clone)]
pub struct StoreKey {
    len: u8,
    /// The key's ASCII bytes, then zeros.
    bytes: [u8; MAX_KEY_LEN],
}

/// Length of a hashed store key: a SHA-256 digest in unpadded base64.
const HASHED_KEY_LEN: usize = 43;
/// Longest store key [`StoreKey::from_stored`] accepts.
const MAX_KEY_LEN: usize = 64;

impl StoreKey {
    /// The store key of `id`: its hash when `hashed`, else the id itself.
    pub fn for_id(id: &SessionId, hashed: bool) -> Self {
        if hashed {
            let mut key = StoreKey { len: HASHED_KEY_LEN as u8, bytes: [0; MAX_KEY_LEN] };
            let written = URL_SAFE_NO_PAD.encode_slice(Sha256::digest(id.0), &mut key.bytes[..HASHED_KEY_LEN]);
            debug_assert_eq!(written, Ok(HASHED_KEY_LEN));
            key
        } else {
            Self::inline(&id.0)
        }
    }

    /// `ascii` (at most 64 bytes of the key alphabet, checked by every caller) held inline.
    fn inline(ascii: &[u8]) -> Self {
        let mut key = StoreKey { len: ascii.len() as u8, bytes: [0; MAX_KEY_LEN] };
        key.bytes[..ascii.len()].copy_from_slice(ascii);
        key
    }

    /// Wraps a key read back from a store (for listing and cleanup); `None` unless it has
    /// the shape of a key this crate makes.
    pub fn from_stored(s: &str) -> Option<Self> {
        let ok = (1..=MAX_KEY_LEN).contains(&s.len())
            && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        ok.then(|| Self::inline(s.as_bytes()))
    }

    fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }

    /// The key as a string.
    pub fn as_str(&self) -> &str {
        // Always ASCII: every constructor holds only `[A-Za-z0-9_-]`.
        std::str::from_utf8(self.as_bytes()).unwrap_or_default()
    }
}

/// A name for one stored session that is safe to show: to its user ("your devices"), to an
/// operator, in logs. It is derived from the [`StoreKey`] by a one-way hash, so it is
/// never a usable session token, not even where the store key is the id itself (Beaker
/// compatibility). 22 characters (about 132 bits): a letter or digit, then 21 of URL-safe
/// base64. The first is never `-`, so a handle typed as a command-line argument is never
/// taken for an option.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionHandle(String);

const HANDLE_LEN: usize = 22;
const HANDLE_FIRST: &[u8; 62] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

impl SessionHandle {
    /// The handle of the session filed under `key`.
    pub fn of(key: &StoreKey) -> Self {
        let digest = Sha256::new_with_prefix(b"beaker-rs session handle\0").chain_update(key.as_bytes()).finalize();
        let mut s = String::with_capacity(HANDLE_LEN + 2);
        s.push(char::from(HANDLE_FIRST[usize::from(digest[0]) % HANDLE_FIRST.len()]));
        URL_SAFE_NO_PAD.encode_string(&digest[1..], &mut s);
        s.truncate(HANDLE_LEN);
        SessionHandle(s)
    }

    /// Reads a handle a user or operator typed; `None` unless it has a handle's shape.
    pub fn parse(s: &str) -> Option<Self> {
        let b = s.as_bytes();
        let ok = b.len() == HANDLE_LEN
            && b[0].is_ascii_alphanumeric()
            && b.iter().all(|&c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_');
        ok.then(|| SessionHandle(s.to_owned()))
    }

    /// The handle as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SessionHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for SessionHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SessionHandle({})", self.0)
    }
}

// By the key's bytes (the zeros after it are not part of it).
impl PartialEq for StoreKey {
    fn eq(&self, other: &Self) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for StoreKey {}

impl std::hash::Hash for StoreKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        // The bytes alone, without the slice's length prefix (one hasher call fewer):
        // equal keys still hash alike, which is all `Eq` asks.
        state.write(self.as_bytes());
    }
}

impl PartialOrd for StoreKey {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for StoreKey {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.as_bytes().cmp(other.as_bytes())
    }
}

impl fmt::Debug for StoreKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StoreKey({}…)", self.as_str().get(..6).unwrap_or(self.as_str()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles_parse_and_never_start_with_a_hyphen() {
        // Under plain base64 one handle in 64 would start with `-`: 4,096 keys all but
        // guarantee one would be seen.
        for _ in 0..4096 {
            let h = SessionHandle::of(&StoreKey::for_id(&SessionId::generate(), true));
            assert_eq!(h.as_str().len(), HANDLE_LEN);
            assert!(h.as_str().as_bytes()[0].is_ascii_alphanumeric(), "{h:?}");
            assert_eq!(SessionHandle::parse(h.as_str()), Some(h));
        }
        assert_eq!(SessionHandle::parse("-bcdefghijklmnopqrstuv"), None);
        assert_eq!(SessionHandle::parse("abcdefghijklmnopqrstu"), None);
        assert!(SessionHandle::parse("a-cdefghijklmnopqrs_uv").is_some());
    }

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
    fn keys_compare_hash_and_order_as_their_text() {
        use std::collections::hash_map::DefaultHasher;
        use std::hash::{Hash, Hasher};
        let hash = |k: &StoreKey| {
            let mut h = DefaultHasher::new();
            k.hash(&mut h);
            h.finish()
        };
        let text_hash = |s: &str| {
            let mut h = DefaultHasher::new();
            h.write(s.as_bytes());
            h.finish()
        };
        let long = "x".repeat(64);
        let keys = ["a", "ab", "abc", "b", "B", "a-_9", long.as_str()];
        for a in keys {
            let ka = StoreKey::from_stored(a).expect(a);
            assert_eq!(ka.as_str(), a);
            assert_eq!(hash(&ka), text_hash(a), "{a}");
            for b in keys {
                let kb = StoreKey::from_stored(b).expect(b);
                assert_eq!(ka == kb, a == b, "{a} {b}");
                assert_eq!(ka.cmp(&kb), a.cmp(b), "{a} {b}");
            }
        }
        assert!(StoreKey::from_stored(&"x".repeat(65)).is_none());
        assert!(StoreKey::from_stored("").is_none());
        let id = SessionId::generate();
        assert_eq!(StoreKey::for_id(&id, true).as_str().len(), HASHED_KEY_LEN);
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
