//! Beaker 1.14's cookie-only sessions (`CookieSession` with `encrypt_key`, `validate_key`
//! and the `cryptography` backend), read and written byte for byte as Beaker does:
//!
//! ```text
//! cookie value = hex(HMAC-SHA1(validate_key, v)) ‖ v          (SignedCookie, 40 + len(v))
//! v            = nonce ‖ base64(iv ‖ tag ‖ ciphertext)
//! nonce        = base64(16 random bytes)                        (24 characters, `==` included)
//! key          = PBKDF2-HMAC-SHA1(encrypt_key, validate_key ‖ nonce, 1 iteration, 32 bytes)
//! ciphertext   = AES-256-GCM(key, iv: 12 random bytes, no associated data)
//!                of the serialized session dict (`json`: zlib-compressed JSON; `pickle`)
//! ```
//!
//! The dict carries the application's keys and Beaker's `_id`, `_domain`, `_path`,
//! `_creation_time` and `_accessed_time`. In a record, `_id` is the session id and
//! `_domain` / `_path` are kept under reserved names ([`DOMAIN_ENTRY`], [`PATH_ENTRY`]),
//! so they survive a round trip and stay out of the application's keys.
//!
//! Rotation: several validate keys and several encrypt keys may be configured; the first
//! of each writes, every one reads. The signature names the validate key, and AES-GCM's
//! tag tells which encrypt key fits.

use std::time::SystemTime;

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use sha1::Sha1;

use super::payload::{self, corrupt};
use super::signed_cookie::BeakerSigner;
use super::BeakerSerializer;
use crate::error::StoreError;
use crate::serializer::DataSerializer;
use crate::store::Record;

/// Beaker's key for the session id inside the dict.
pub const ID_KEY: &str = "_id";
/// Beaker's key for the cookie domain inside the dict.
pub const DOMAIN_KEY: &str = "_domain";
/// Beaker's key for the cookie path inside the dict.
pub const PATH_KEY: &str = "_path";
/// Where a record keeps Beaker's `_domain` (a reserved name: not one of the application's keys).
pub const DOMAIN_ENTRY: &str = "_beaker.beaker_domain";
/// Where a record keeps Beaker's `_path`.
pub const PATH_ENTRY: &str = "_beaker.beaker_path";
/// Where a record keeps the session id (the entry native cookie sessions use as well).
pub const ID_ENTRY: &str = crate::cookie_store::ID_ENTRY;
/// The keys of Beaker's session dict that are Beaker's own: an application key of the
/// same name cannot be written in this format.
pub const RESERVED_KEYS: [&str; 5] = [ID_KEY, DOMAIN_KEY, PATH_KEY, payload::CREATION_TIME, payload::ACCESSED_TIME];
/// The record entries that are Beaker's bookkeeping rather than the application's data.
pub const BOOKKEEPING: [&str; 3] = [ID_ENTRY, DOMAIN_ENTRY, PATH_ENTRY];

/// Length of the base64 nonce in front of the ciphertext (128 bits, Beaker's default
/// `encrypt_nonce_bits`).
const NONCE_B64: usize = 24;
const NONCE_RAW: usize = 16;
const IV: usize = 12;
const TAG: usize = 16;
/// The longest signed cookie value Beaker agrees to write (4064 bytes before the
/// 40-character signature); [`BeakerCookieCodec::seal`] leaves the check to its caller.
pub const MAX_SIGNED: usize = 4064 + 40;
/// The longest cookie value read: browsers keep 4096 bytes per cookie, so anything much
/// longer is not a cookie a browser sent back; refused before any MAC is computed.
pub const MAX_COOKIE: usize = 8192;

/// Why a cookie was not opened.
#[derive(Debug)]
pub enum OpenError {
    /// Not signed with any validate key (garbage, tampered, foreign, oversized): the
    /// request simply has no session.
    Unsigned,
    /// Signed with a validate key, but it does not decrypt with any encrypt key or its
    /// payload does not decode with the configured serializer (`invalidate_corrupt`
    /// decides).
    Corrupt(StoreError),
}

/// The keys and serializer of Beaker's cookie-only sessions.
#[derive(Clone)]
pub struct BeakerCookieCodec {
    signer: BeakerSigner,
    validate: Vec<Vec<u8>>,
    encrypt: Vec<Vec<u8>>,
    serializer: BeakerSerializer,
}

impl std::fmt::Debug for BeakerCookieCodec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "BeakerCookieCodec({} validate key(s), {} encrypt key(s), {:?})",
            self.validate.len(),
            self.encrypt.len(),
            self.serializer
        )
    }
}

/// A session read from a Beaker cookie.
#[derive(Debug)]
pub struct Opened {
    /// The session's data and timestamps; `_domain` and `_path` under [`DOMAIN_ENTRY`] and
    /// [`PATH_ENTRY`]; the id under [`ID_ENTRY`].
    pub record: Record,
    /// Beaker's `_id`.
    pub id: String,
    /// Whether an older validate or encrypt key was needed (the cookie should be rewritten).
    pub stale: bool,
}

fn derive_key(encrypt_key: &[u8], validate_key: &[u8], nonce: &[u8]) -> Aes256Gcm {
    let mut salt = Vec::with_capacity(validate_key.len() + nonce.len());
    salt.extend_from_slice(validate_key);
    salt.extend_from_slice(nonce);
    let mut key = [0u8; 32];
    pbkdf2::pbkdf2_hmac::<Sha1>(encrypt_key, &salt, 1, &mut key);
    Aes256Gcm::new(&key.into())
}

impl BeakerCookieCodec {
    /// Keys newest first. `None` when either list is empty (Beaker needs both).
    pub fn new(validate_keys: &[&[u8]], encrypt_keys: &[&[u8]], serializer: BeakerSerializer) -> Option<Self> {
        if validate_keys.is_empty() || encrypt_keys.is_empty() {
            return None;
        }
        Some(BeakerCookieCodec {
            signer: BeakerSigner::new(validate_keys.iter().copied()),
            validate: validate_keys.iter().map(|k| k.to_vec()).collect(),
            encrypt: encrypt_keys.iter().map(|k| k.to_vec()).collect(),
            serializer,
        })
    }

    /// Opens a cookie value (surrounding double quotes allowed, as Python's cookie
    /// parser may send them). Never panics, whatever the input.
    pub fn open(&self, cookie: &str, now: SystemTime) -> Result<Opened, OpenError> {
        if cookie.len() > MAX_COOKIE {
            return Err(OpenError::Unsigned);
        }
        let (value, vk) = self.signer.verify_index(cookie).ok_or(OpenError::Unsigned)?;
        let bad = |what: &str| OpenError::Corrupt(corrupt(format_args!("beaker cookie session: {what}")));
        if value.len() < NONCE_B64 || !value.is_char_boundary(NONCE_B64) {
            return Err(bad("too short for its nonce"));
        }
        let (nonce, rest) = value.split_at(NONCE_B64);
        let raw = STANDARD.decode(rest).map_err(|_| bad("not base64 after the nonce"))?;
        if raw.len() < IV + TAG {
            return Err(bad("too short for AES-GCM"));
        }
        // Beaker lays out iv ‖ tag ‖ ciphertext; the aead crate takes ciphertext ‖ tag.
        let (iv, rest) = raw.split_at(IV);
        let (tag, ct) = rest.split_at(TAG);
        let mut sealed = Vec::with_capacity(ct.len() + TAG);
        sealed.extend_from_slice(ct);
        sealed.extend_from_slice(tag);
        let (plain, ek) = self
            .encrypt
            .iter()
            .enumerate()
            .find_map(|(i, ek)| {
                derive_key(ek, &self.validate[vk], nonce.as_bytes())
                    .decrypt(Nonce::from_slice(iv), sealed.as_slice())
                    .ok()
                    .map(|p| (p, i))
            })
            .ok_or_else(|| bad("does not decrypt with any encrypt_key"))?;
        let record = payload::decode_session(STANDARD.encode(&plain).as_bytes(), self.serializer, now)
            .map_err(OpenError::Corrupt)?;
        let id = match record.entries.get(ID_ENTRY).map(|v| DataSerializer::decode::<String>(v)) {
            Some(Ok(id)) => id,
            _ => return Err(bad("no _id string")),
        };
        Ok(Opened { record, id, stale: vk > 0 || ek > 0 })
    }

    /// The signed cookie value of a session: `record`'s entries (the id under
    /// [`ID_ENTRY`] is written as `_id`, [`DOMAIN_ENTRY`] / [`PATH_ENTRY`] as `_domain` /
    /// `_path`, defaulting to `domain` / `path`) with its timestamps, encrypted with the
    /// first keys. Fails when a value cannot be written with the serializer, or when the
    /// application used one of Beaker's own keys (`_id`, `_domain`, `_path`,
    /// `_creation_time`, `_accessed_time`) as a key of its own. A result
    /// longer than [`MAX_SIGNED`] is one Beaker would refuse to write.
    pub fn seal(&self, record: &Record, domain: Option<&str>, path: &str) -> Result<String, StoreError> {
        let mut dict = Record { owner: None, expires: None, ..record.clone() };
        let json = |v: serde_json::Value| DataSerializer::Json.encode(&v).map_err(corrupt);
        if !dict.entries.contains_key(DOMAIN_ENTRY) {
            dict.entries.insert(DOMAIN_ENTRY.into(), json(domain.map_or(serde_json::Value::Null, Into::into))?);
        }
        if !dict.entries.contains_key(PATH_ENTRY) {
            dict.entries.insert(PATH_ENTRY.into(), json(path.into())?);
        }
        if !dict.entries.contains_key(ID_ENTRY) {
            return Err(corrupt("beaker cookie session: no id to write"));
        }
        let encoded = payload::encode_session(&dict, self.serializer)?;
        let plain = STANDARD.decode(&encoded).map_err(corrupt)?;
        Ok(self.seal_bytes(&plain))
    }

    /// The signed cookie value of an already serialized session dict (`plain`, as
    /// Beaker's serializer wrote it), encrypted with the first keys under a fresh nonce
    /// and iv. [`seal`](Self::seal) serializes and calls this; tests and the fuzz target
    /// use it to reach the decoder behind the signature.
    pub fn seal_bytes(&self, plain: &[u8]) -> String {
        let mut nonce_raw = [0u8; NONCE_RAW];
        let mut iv = [0u8; IV];
        getrandom::getrandom(&mut nonce_raw).expect("the OS random number generator failed");
        getrandom::getrandom(&mut iv).expect("the OS random number generator failed");
        let nonce = STANDARD.encode(nonce_raw);
        let sealed = derive_key(&self.encrypt[0], &self.validate[0], nonce.as_bytes())
            .encrypt(Nonce::from_slice(&iv), plain)
            .expect("AES-GCM encryption of an in-memory buffer cannot fail");
        let (ct, tag) = sealed.split_at(sealed.len() - TAG);
        let mut raw = Vec::with_capacity(IV + sealed.len());
        raw.extend_from_slice(&iv);
        raw.extend_from_slice(tag);
        raw.extend_from_slice(ct);
        let value = nonce + &STANDARD.encode(raw);
        self.signer.sign(&value)
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;

    const VK: &[u8] = b"a validation key of 16+ bytes";
    const EK: &[u8] = b"an encryption key of 16+ bytes";

    fn codec(s: BeakerSerializer) -> BeakerCookieCodec {
        BeakerCookieCodec::new(&[VK], &[EK], s).unwrap()
    }

    fn at(ms: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(ms)
    }

    // Python 3.11, Beaker 1.14.1, cryptography 46: CookieSession(encrypt_key=EK,
    // validate_key=VK, data_serializer='json') of
    // {'_domain': None, '_path': '/', '_id': '2c787a2a299c49078c99034dc543962b',
    //  'user': 'alice', 'n': 3, '_creation_time': 1700000000.25, '_accessed_time': 1700000100.5}
    const PY_JSON: &str = "8d468199eb79d6bd23c898456d9064c1be081ddbDxdl4MD9LI4zEDZPHmvlcg==eb9tKvLWuawTr2b4OmJUNjq2Bq3aXjNr9WU2zeDaLNlU/5IQnoEk+i+tYgnaMgBgLTfvi1Y62T7wPuSJSINkogTozyV+y8vT+oeDhVTt6ZjtZII8mBIgSVsbTuVW89TYTXth9dHpRY4n0Q2cuQVsIVQ0p2YzZNIJ1EgEoZh5YVOjGXMJpRzrXsf7/YZ1BINp/+sT7BD6aLF6";

    // The same with data_serializer='pickle' of
    // {'_domain': None, '_path': '/', '_id': '732fc827552b4bc4b7afd8142bd04bf8', 'user': 'bob',
    //  'b': b'\x00\x01', 't': (1, 2), '_creation_time': 1700000000.25, '_accessed_time': 1700000100.5}
    const PY_PICKLE: &str = "cd3cfe81ded79c1e6571d482cd24fe0496d43374R2DIbSUEokpOAFWJHDXF/A==c99oIpVjo7ETjsie5Ow8236+rB1nHQ2mFK8o+AyhDp9EBHcD/PRMonG9ghMEJsPSVhTJxVv/NZPHVQU56u1BXAuEQuEwIfkInCZ3sFNF1aPqbUqIqF0D+YmcsJJy12WifTr3Ok8PHwT8uO2DaLQhHhpoxedC8nVyfzlNE6dP6LLZeX9TtTzrsMwOaCwZ/umWOJnanmvksQwEYVqH1Tbmm8jm6U7ni9wYu3PkSZatLByGGs2FbWrsLAM/o7YQbByjmQZfwIuGqYHIp6WaNk9obXvQ61elGe0fMjhgUi3gnWKKSLhu7+l5oBApxZQ0wkY3IlbNO+ruEIsB1zbtQkUVByhrUkMKlYc1YzHEFc4/";

    #[test]
    fn reads_what_python_beaker_writes() {
        let o = codec(BeakerSerializer::Json).open(PY_JSON, SystemTime::now()).unwrap();
        assert_eq!(o.id, "2c787a2a299c49078c99034dc543962b");
        assert!(!o.stale);
        assert_eq!((o.record.created, o.record.accessed), (at(1_700_000_000_250), at(1_700_000_100_500)));
        let e = &o.record.entries;
        assert_eq!(DataSerializer::decode::<String>(&e["user"]).unwrap(), "alice");
        assert_eq!(DataSerializer::decode::<i64>(&e["n"]).unwrap(), 3);
        assert_eq!(DataSerializer::decode::<String>(&e[PATH_ENTRY]).unwrap(), "/");
        assert_eq!(DataSerializer::decode::<Option<String>>(&e[DOMAIN_ENTRY]).unwrap(), None);
        assert_eq!(DataSerializer::decode::<String>(&e[ID_ENTRY]).unwrap(), o.id);
        assert!(!e.contains_key(ID_KEY) && !e.contains_key(PATH_KEY) && !e.contains_key(DOMAIN_KEY));

        let o = codec(BeakerSerializer::Pickle).open(&format!("\"{PY_PICKLE}\""), SystemTime::now()).unwrap();
        assert_eq!(o.id, "732fc827552b4bc4b7afd8142bd04bf8");
        let e = &o.record.entries;
        assert_eq!(DataSerializer::decode::<String>(&e["user"]).unwrap(), "bob");
        assert_eq!(DataSerializer::decode::<serde_bytes_like::Bytes>(&e["b"]).unwrap().0, vec![0, 1]);
        assert_eq!(DataSerializer::decode::<Vec<i64>>(&e["t"]).unwrap(), vec![1, 2]);
    }

    /// `serde_bytes`-style wrapper, to read a bytes value back without another dependency.
    mod serde_bytes_like {
        pub(super) struct Bytes(pub(super) Vec<u8>);
        impl<'de> serde::Deserialize<'de> for Bytes {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl serde::de::Visitor<'_> for V {
                    type Value = Bytes;
                    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                        f.write_str("bytes")
                    }
                    fn visit_bytes<E>(self, v: &[u8]) -> Result<Bytes, E> {
                        Ok(Bytes(v.to_vec()))
                    }
                }
                d.deserialize_bytes(V)
            }
        }
    }

    #[test]
    fn a_pickle_cookie_under_json_is_corrupt_not_absent_by_signature() {
        match codec(BeakerSerializer::Json).open(PY_PICKLE, SystemTime::now()) {
            Err(OpenError::Corrupt(e)) => assert!(e.to_string().contains("pickle"), "{e}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn round_trip_and_layout() {
        for s in [BeakerSerializer::Json, BeakerSerializer::Pickle] {
            let c = codec(s);
            let mut entries = std::collections::BTreeMap::new();
            entries.insert("user".to_owned(), DataSerializer::Json.encode(&"carol").unwrap());
            entries.insert(ID_ENTRY.to_owned(), DataSerializer::Json.encode(&"0123456789abcdef").unwrap());
            let r = Record { entries, created: at(1_000), accessed: at(2_000), expires: None, owner: None };
            let v = c.seal(&r, Some("example.com"), "/app").unwrap();
            // sig(40 hex) ‖ nonce(24, ending in ==) ‖ base64
            assert!(v[..40].bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()), "{v}");
            assert_eq!(&v[62..64], "==", "{v}");
            let o = c.open(&v, SystemTime::now()).unwrap();
            assert_eq!(o.id, "0123456789abcdef");
            assert_eq!((o.record.created, o.record.accessed), (at(1_000), at(2_000)));
            let e = &o.record.entries;
            assert_eq!(DataSerializer::decode::<String>(&e["user"]).unwrap(), "carol");
            assert_eq!(DataSerializer::decode::<String>(&e[DOMAIN_ENTRY]).unwrap(), "example.com");
            assert_eq!(DataSerializer::decode::<String>(&e[PATH_ENTRY]).unwrap(), "/app");
            // Two seals of one record differ (fresh nonce and iv).
            assert_ne!(c.seal(&r, None, "/").unwrap(), c.seal(&r, None, "/").unwrap());
        }
    }

    #[test]
    fn rotation_of_both_keys() {
        let old = codec(BeakerSerializer::Json);
        let v = {
            let mut entries = std::collections::BTreeMap::new();
            entries.insert(ID_ENTRY.to_owned(), DataSerializer::Json.encode(&"abc").unwrap());
            let r = Record { entries, created: at(1), accessed: at(1), expires: None, owner: None };
            old.seal(&r, None, "/").unwrap()
        };
        let new_vk = b"a new validation key of 16+ bytes".as_slice();
        let new_ek = b"a new encryption key of 16+ bytes".as_slice();
        for (vks, eks, stale) in [
            (vec![VK], vec![EK], false),
            (vec![new_vk, VK], vec![EK], true),
            (vec![VK], vec![new_ek, EK], true),
            (vec![new_vk, VK], vec![new_ek, EK], true),
        ] {
            let c = BeakerCookieCodec::new(&vks, &eks, BeakerSerializer::Json).unwrap();
            assert_eq!(c.open(&v, SystemTime::now()).unwrap().stale, stale);
        }
        // The encrypt key was dropped: signed, but undecryptable.
        let c = BeakerCookieCodec::new(&[VK], &[new_ek], BeakerSerializer::Json).unwrap();
        assert!(matches!(c.open(&v, SystemTime::now()), Err(OpenError::Corrupt(_))));
        let c = BeakerCookieCodec::new(&[new_vk], &[EK], BeakerSerializer::Json).unwrap();
        assert!(matches!(c.open(&v, SystemTime::now()), Err(OpenError::Unsigned)));
        assert!(BeakerCookieCodec::new(&[], &[EK], BeakerSerializer::Json).is_none());
        assert!(BeakerCookieCodec::new(&[VK], &[], BeakerSerializer::Json).is_none());
    }

    #[test]
    fn garbage_tampering_and_size() {
        let c = codec(BeakerSerializer::Json);
        let now = SystemTime::now();
        let long = "a".repeat(MAX_COOKIE + 1);
        for bad in ["", "\"", "x", &PY_JSON[..40], &PY_JSON[..41], &long, "é".repeat(50).as_str()] {
            assert!(matches!(c.open(bad, now), Err(OpenError::Unsigned)), "{bad:?}");
        }
        // Flip one character of the payload: the signature no longer matches.
        let mut t = PY_JSON.to_owned().into_bytes();
        t[100] = if t[100] == b'A' { b'B' } else { b'A' };
        assert!(matches!(c.open(std::str::from_utf8(&t).unwrap(), now), Err(OpenError::Unsigned)));
        // Correctly signed garbage (someone holding validate_key only): corrupt.
        let signer = BeakerSigner::new([VK]);
        for payload in ["short", "BxS7/KD33e2snWJPZeVO4g==!!!", "BxS7/KD33e2snWJPZeVO4g==AAAA", "é".repeat(20).as_str()]
        {
            assert!(matches!(c.open(&signer.sign(payload), now), Err(OpenError::Corrupt(_))), "{payload}");
        }
        // The application may not use Beaker's own keys.
        for reserved in ["_id", "_domain", "_path", "_creation_time", "_accessed_time"] {
            let mut entries = std::collections::BTreeMap::new();
            entries.insert(ID_ENTRY.to_owned(), DataSerializer::Json.encode(&"abc").unwrap());
            entries.insert(reserved.to_owned(), DataSerializer::Json.encode(&"mine").unwrap());
            let r = Record { entries, created: at(1), accessed: at(1), expires: None, owner: None };
            assert!(matches!(c.seal(&r, None, "/"), Err(StoreError::Rejected { .. })), "{reserved}");
        }
        // Incompressible data passes Beaker's limit.
        let mut entries = std::collections::BTreeMap::new();
        entries.insert(ID_ENTRY.to_owned(), DataSerializer::Json.encode(&"abc").unwrap());
        let mut noise = [0u8; 4000];
        getrandom::getrandom(&mut noise).unwrap();
        let noise = STANDARD.encode(noise);
        entries.insert("big".to_owned(), DataSerializer::Json.encode(&noise).unwrap());
        let r = Record { entries, created: at(1), accessed: at(1), expires: None, owner: None };
        assert!(c.seal(&r, None, "/").unwrap().len() > MAX_SIGNED);
    }
}
