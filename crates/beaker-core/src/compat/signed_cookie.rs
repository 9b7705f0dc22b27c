//! Beaker's `SignedCookie`: the value is the lower-case hex HMAC-SHA1 of the id, keyed
//! with the raw secret, followed by the id; Beaker strips surrounding double quotes before
//! checking it.

use hmac::{Hmac, Mac};
use sha1::Sha1;
use subtle::ConstantTimeEq as _;

/// Length of the hex signature in front of the id.
const SIG_LEN: usize = 40;

/// The signing keys of Beaker's id cookies: the first secret signs, every one verifies.
#[derive(Clone)]
pub(crate) struct BeakerSigner {
    keys: Vec<Hmac<Sha1>>,
}

impl BeakerSigner {
    /// Keys HMAC-SHA1 with each secret's raw bytes, as Beaker does (`secret.encode('utf-8')`).
    pub(crate) fn new<'a>(secrets: impl IntoIterator<Item = &'a [u8]>) -> Self {
        let keys = secrets
            .into_iter()
            .map(|s| <Hmac<Sha1> as Mac>::new_from_slice(s).expect("HMAC takes any key length"))
            .collect();
        BeakerSigner { keys }
    }

    fn tag(key: &Hmac<Sha1>, value: &str) -> [u8; SIG_LEN] {
        let mut mac = key.clone();
        mac.update(value.as_bytes());
        let digest = mac.finalize().into_bytes();
        let mut hex = [0u8; SIG_LEN];
        for (i, b) in digest.iter().enumerate() {
            hex[2 * i] = HEX[usize::from(b >> 4)];
            hex[2 * i + 1] = HEX[usize::from(b & 0xf)];
        }
        hex
    }

    /// `signature + value`, signed with the first secret.
    pub(crate) fn sign(&self, value: &str) -> String {
        let tag = Self::tag(&self.keys[0], value);
        let mut out = String::with_capacity(SIG_LEN + value.len());
        // The tag is lower-case hex, always ASCII.
        out.push_str(std::str::from_utf8(&tag).unwrap_or_default());
        out.push_str(value);
        out
    }

    /// The value of a signed cookie when a secret's signature matches (in constant time),
    /// with whether it was an older secret's.
    pub(crate) fn verify<'a>(&self, signed: &'a str) -> Option<(&'a str, bool)> {
        self.verify_index(signed).map(|(value, i)| (value, i > 0))
    }

    /// Like [`verify`](Self::verify), with the index of the secret whose signature matched.
    pub(crate) fn verify_index<'a>(&self, signed: &'a str) -> Option<(&'a str, usize)> {
        let signed = signed.trim_matches('"');
        if signed.len() <= SIG_LEN || !signed.is_char_boundary(SIG_LEN) {
            return None;
        }
        let (sig, value) = signed.split_at(SIG_LEN);
        self.keys
            .iter()
            .enumerate()
            .find_map(|(i, key)| bool::from(Self::tag(key, value).ct_eq(sig.as_bytes())).then_some((value, i)))
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_beakers_signed_cookie() {
        // hmac.new(b"a secret of sixteen+ bytes", b"0123456789abcdef0123456789abcdef", sha1).hexdigest()
        let s = BeakerSigner::new([&b"a secret of sixteen+ bytes"[..]]);
        let signed = s.sign("0123456789abcdef0123456789abcdef");
        assert_eq!(signed, format!("{}0123456789abcdef0123456789abcdef", PY_SIG));
        assert_eq!(s.verify(&signed), Some(("0123456789abcdef0123456789abcdef", false)));
        assert_eq!(s.verify(&format!("\"{signed}\"")), Some(("0123456789abcdef0123456789abcdef", false)));
    }

    // Computed with Python's `hmac` and `hashlib`, as Beaker computes it.
    const PY_SIG: &str = "ddba9d24790755b72b1b19aa3fc39b64449563cf";

    #[test]
    fn rotation_and_tampering() {
        let old = BeakerSigner::new([&b"old secret, sixteen+"[..]]);
        let both = BeakerSigner::new([&b"new secret, sixteen+"[..], &b"old secret, sixteen+"[..]]);
        let signed = old.sign("abc");
        assert_eq!(both.verify(&signed), Some(("abc", true)));
        let mut tampered = signed.clone().into_bytes();
        tampered[3] = if tampered[3] == b'0' { b'1' } else { b'0' };
        assert_eq!(both.verify(std::str::from_utf8(&tampered).unwrap()), None);
        for bad in ["", "\"\"", &signed[..40], "é".repeat(30).as_str(), &signed.to_uppercase()] {
            assert_eq!(both.verify(bad), None, "{bad:?}");
        }
    }
}
