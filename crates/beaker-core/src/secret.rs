//! Key material: signing of id cookies (HMAC-SHA256) and encryption of cookie-only sessions
//! (AES-256-GCM), with rotation (the first secret signs and encrypts, all of them verify
//! and decrypt).

use std::fmt;

use aes_gcm::aead::{Aead, AeadInPlace, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use rand08::RngCore as _;
use sha2::Sha256;
use subtle::ConstantTimeEq as _;

use crate::compat::signed_cookie::BeakerSigner;
use crate::compat::Compat;
use crate::error::ConfigError;

/// Shortest secret accepted, in bytes.
pub(crate) const MIN_SECRET_LEN: usize = 16;
const NONCE_LEN: usize = 12;
const GCM_TAG_LEN: usize = 16;
/// Length of an HMAC-SHA256 tag in unpadded URL-safe base64.
const TAG_LEN: usize = 43;

/// One application secret. Its bytes never appear in `Debug` output.
#[derive(Clone)]
pub struct Secret(Vec<u8>);

impl Secret {
    /// Wraps secret bytes; refuses blank secrets and anything shorter than 16 bytes.
    pub fn new(bytes: impl Into<Vec<u8>>) -> Result<Self, ConfigError> {
        let bytes = bytes.into();
        if bytes.iter().all(|b| b.is_ascii_whitespace()) {
            return Err(ConfigError::Blank { key: "session.secret".into() });
        }
        if bytes.len() < MIN_SECRET_LEN {
            return Err(ConfigError::Invalid {
                key: "session.secret".into(),
                value: "<hidden>".into(),
                expected: format!("a secret of at least {MIN_SECRET_LEN} bytes (32 or more recommended)"),
            });
        }
        Ok(Secret(bytes))
    }
}

impl Secret {
    /// The raw bytes (Beaker's formats key their MACs with them directly).
    pub(crate) fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<hidden>)")
    }
}

struct KeyPair {
    /// HMAC-SHA256 already keyed with the signing key: each use clones it, which skips the
    /// two key-schedule compressions of a fresh `new_from_slice`.
    sign: Hmac<Sha256>,
    cipher: Aes256Gcm,
}

/// The derived keys of one or more [`Secret`]s. The first secret signs and encrypts; every
/// secret verifies and decrypts, so a secret can be rotated in without logging anybody out.
///
/// Signing and encryption keys are derived from each secret with HKDF-SHA256 under distinct
/// labels, so the same secret never serves two purposes directly.
pub struct Keys {
    pairs: Vec<KeyPair>,
    /// With `compat = beaker`, id cookies are signed as Beaker's `SignedCookie` signs them.
    beaker: Option<BeakerSigner>,
}

impl fmt::Debug for Keys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Keys({} secret(s))", self.pairs.len())
    }
}

impl Keys {
    /// Derives keys from secrets, newest first.
    pub fn new(secrets: &[Secret]) -> Result<Self, ConfigError> {
        if secrets.is_empty() {
            return Err(ConfigError::Missing {
                key: "session.secret".into(),
                why: "signed and encrypted cookies need at least one secret".into(),
            });
        }
        let pairs = secrets
            .iter()
            .map(|s| {
                let hk = Hkdf::<Sha256>::new(Some(b"beaker-rs"), &s.0);
                let mut sign = [0u8; 32];
                let mut enc = [0u8; 32];
                // Both lengths are valid for HKDF-SHA256 (at most 255 * 32 bytes).
                hk.expand(b"beaker-rs v1 cookie signing", &mut sign).expect("valid HKDF length");
                hk.expand(b"beaker-rs v1 cookie encryption", &mut enc).expect("valid HKDF length");
                let sign = <Hmac<Sha256> as Mac>::new_from_slice(&sign).expect("HMAC takes any key length");
                KeyPair { sign, cipher: Aes256Gcm::new(&enc.into()) }
            })
            .collect();
        Ok(Keys { pairs, beaker: None })
    }

    /// Keys for `compat`: with [`Compat::Beaker`], [`sign`](Self::sign) and
    /// [`verify`](Self::verify) use Beaker's id cookie format (HMAC-SHA1 of the raw secret).
    pub fn with_compat(secrets: &[Secret], compat: Compat) -> Result<Self, ConfigError> {
        let mut keys = Self::new(secrets)?;
        if compat == Compat::Beaker {
            keys.beaker = Some(BeakerSigner::new(secrets.iter().map(|s| s.0.as_slice())));
        }
        Ok(keys)
    }

    fn mac(keyed: &Hmac<Sha256>, context: &str, value: &str) -> Hmac<Sha256> {
        let mut mac = keyed.clone();
        mac.update(context.as_bytes());
        mac.update(&[0]);
        mac.update(value.as_bytes());
        mac
    }

    /// `value.signature`, signed with the newest key. `context` (the cookie name) is bound
    /// into the signature, so a value cannot be replayed under another cookie name.
    pub fn sign(&self, context: &str, value: &str) -> String {
        if let Some(beaker) = &self.beaker {
            return beaker.sign(value);
        }
        let tag = Self::mac(&self.pairs[0].sign, context, value).finalize().into_bytes();
        format!("{value}.{}", URL_SAFE_NO_PAD.encode(tag))
    }

    /// Verifies a `value.signature` string against every key, in constant time per key;
    /// returns the value and whether it was signed with an older key.
    pub fn verify<'a>(&self, context: &str, signed: &'a str) -> Option<(&'a str, bool)> {
        if let Some(beaker) = &self.beaker {
            return beaker.verify(signed);
        }
        // `memrchr` (SIMD): `rsplit_once` searches a byte at a time.
        let dot = memchr::memrchr(b'.', signed.as_bytes())?;
        let (value, sig) = (&signed[..dot], &signed[dot + 1..]);
        // The expected tag is encoded and compared with the one received, in constant
        // time, rather than the received one decoded: encoding is the cheaper half of
        // base64, and the strict decoder accepts exactly the canonical encoding anyway.
        if sig.len() != TAG_LEN {
            return None;
        }
        self.pairs.iter().enumerate().find_map(|(i, pair)| {
            let tag = Self::mac(&pair.sign, context, value).finalize().into_bytes();
            let mut expected = [0u8; TAG_LEN];
            let written = URL_SAFE_NO_PAD.encode_slice(tag, &mut expected).ok()?;
            (written == TAG_LEN && bool::from(expected.ct_eq(sig.as_bytes()))).then_some((value, i > 0))
        })
    }

    /// Encrypts and authenticates `plaintext` with the newest key: URL-safe base64 of
    /// nonce ‖ ciphertext ‖ tag. `context` (the cookie name) is authenticated too.
    ///
    /// The 96-bit nonce is random, from `rand`'s thread-local CSPRNG (seeded from the OS,
    /// reseeded in a forked child) rather than a system call per cookie.
    pub fn encrypt(&self, context: &str, plaintext: &[u8]) -> String {
        let mut sealed = Vec::with_capacity(NONCE_LEN + plaintext.len() + GCM_TAG_LEN);
        sealed.resize(NONCE_LEN, 0);
        rand08::thread_rng().fill_bytes(&mut sealed);
        sealed.extend_from_slice(plaintext);
        let (nonce, body) = sealed.split_at_mut(NONCE_LEN);
        let tag = self.pairs[0]
            .cipher
            .encrypt_in_place_detached(Nonce::from_slice(nonce), context.as_bytes(), body)
            .expect("AES-GCM encryption of an in-memory buffer cannot fail");
        sealed.extend_from_slice(&tag);
        URL_SAFE_NO_PAD.encode(sealed)
    }

    /// Decrypts what [`encrypt`](Self::encrypt) produced with any of the keys; returns the
    /// plaintext and whether an older key was needed. `None` for anything tampered,
    /// truncated, foreign or garbage.
    pub fn decrypt(&self, context: &str, sealed: &str) -> Option<(Vec<u8>, bool)> {
        let raw = URL_SAFE_NO_PAD.decode(sealed).ok()?;
        if raw.len() < NONCE_LEN + GCM_TAG_LEN {
            return None;
        }
        let (nonce, ct) = raw.split_at(NONCE_LEN);
        self.pairs.iter().enumerate().find_map(|(i, pair)| {
            pair.cipher
                .decrypt(Nonce::from_slice(nonce), Payload { msg: ct, aad: context.as_bytes() })
                .ok()
                .map(|pt| (pt, i > 0))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(secrets: &[&str]) -> Keys {
        Keys::new(&secrets.iter().map(|s| Secret::new(s.as_bytes().to_vec()).unwrap()).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn sign_verify_and_rotation() {
        let old = keys(&["an old secret of enough length"]);
        let new = keys(&["a brand new secret, long enough", "an old secret of enough length"]);
        let signed_old = old.sign("c", "value");
        assert_eq!(new.verify("c", &signed_old), Some(("value", true)));
        let signed_new = new.sign("c", "value");
        assert_eq!(new.verify("c", &signed_new), Some(("value", false)));
        assert_eq!(old.verify("c", &signed_new), None);
        assert_eq!(new.verify("other-cookie", &signed_new), None);
        let mut tampered = signed_new.clone().into_bytes();
        tampered[0] ^= 1;
        assert_eq!(new.verify("c", std::str::from_utf8(&tampered).unwrap()), None);
        for garbage in ["", ".", "value.", "value.!!!", "value.AAAA"] {
            assert_eq!(new.verify("c", garbage), None, "{garbage:?}");
        }
    }

    #[test]
    fn every_other_signature_is_refused() {
        // Each character of the tag replaced by each other one of the alphabet: none
        // verifies, including the last character's variants that differ only in the two
        // padding bits (a lenient decoder would map those to the same tag).
        let k = keys(&["a secret that is long enough!!"]);
        let signed = k.sign("c", "value");
        let dot = signed.rfind('.').unwrap();
        assert_eq!(signed.len() - dot - 1, TAG_LEN);
        let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        for at in dot + 1..signed.len() {
            for &c in alphabet.iter().filter(|&&c| c != signed.as_bytes()[at]) {
                let mut forged = signed.clone().into_bytes();
                forged[at] = c;
                let forged = String::from_utf8(forged).unwrap();
                assert_eq!(k.verify("c", &forged), None, "{forged}");
            }
        }
        assert_eq!(k.verify("c", &format!("{signed}A")), None, "one character too many");
        assert_eq!(k.verify("c", &signed[..signed.len() - 1]), None, "one character short");
        assert_eq!(k.verify("c", &signed), Some(("value", false)));
    }

    #[test]
    fn encrypt_decrypt_and_tamper() {
        let k = keys(&["a secret that is long enough!!"]);
        let sealed = k.encrypt("c", b"hello");
        assert_eq!(k.decrypt("c", &sealed), Some((b"hello".to_vec(), false)));
        assert_eq!(k.decrypt("d", &sealed), None);
        let other = keys(&["another secret that is long enough"]);
        assert_eq!(other.decrypt("c", &sealed), None);
        let mut raw = URL_SAFE_NO_PAD.decode(&sealed).unwrap();
        let last = raw.len() - 1;
        raw[last] ^= 0x80;
        assert_eq!(k.decrypt("c", &URL_SAFE_NO_PAD.encode(raw)), None);
        assert_eq!(k.decrypt("c", "AAAA"), None);
        assert_eq!(k.decrypt("c", "%%%"), None);
    }

    #[test]
    fn short_or_blank_secrets_are_refused() {
        assert!(Secret::new(b"short".to_vec()).is_err());
        assert!(matches!(Secret::new(b"   ".to_vec()), Err(ConfigError::Blank { .. })));
        assert!(Keys::new(&[]).is_err());
        assert!(!format!("{:?}", Secret::new(b"0123456789abcdef".to_vec()).unwrap()).contains("0123"));
    }
}
