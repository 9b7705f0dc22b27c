//! The decoder of Beaker's cookie-only sessions (`compat = beaker`, `type = cookie`).
//! The first byte picks what the rest is: a cookie value as a browser would send it (the
//! signature check and everything before it), or the plaintext of a correctly signed and
//! encrypted cookie (the serializers behind the crypto, which no forged input reaches).
//! A session that opens must seal and open to itself; a sealed cookie with one byte
//! changed must not open. Errors are fine; panics and unbounded allocations are not.
#![no_main]

use std::time::{Duration, UNIX_EPOCH};

use beaker_core::compat::cookie_session::{BeakerCookieCodec, OpenError, DOMAIN_ENTRY, PATH_ENTRY};
use beaker_core::compat::BeakerSerializer;
use libfuzzer_sys::fuzz_target;

const VK: &[u8] = b"fuzz validate key of 16+ bytes";
const EK: &[u8] = b"fuzz encrypt key of 16+ bytes";

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let serializer = if mode & 1 == 0 { BeakerSerializer::Json } else { BeakerSerializer::Pickle };
    let codec = BeakerCookieCodec::new(&[VK], &[EK], serializer).expect("both keys");
    let opened = match (mode >> 1) & 3 {
        // A cookie value from the request.
        0 => codec.open(&String::from_utf8_lossy(rest), now),
        // A signed, encrypted cookie of this plaintext.
        1 => codec.open(&codec.seal_bytes(rest), now),
        // A sealed cookie with one byte changed (the first byte of `rest` picks which).
        _ => {
            let mut sealed = codec.seal_bytes(rest.get(1..).unwrap_or_default()).into_bytes();
            let at = usize::from(rest.first().copied().unwrap_or(0)) % sealed.len();
            sealed[at] = if sealed[at] == b'0' { b'1' } else { b'0' };
            let forged = String::from_utf8_lossy(&sealed).into_owned();
            assert!(matches!(codec.open(&forged, now), Err(OpenError::Unsigned)), "a changed cookie opened");
            return;
        }
    };
    if let Ok(o) = opened {
        let again = codec.seal(&o.record, None, "/").expect("an opened session seals");
        let back = codec.open(&again, now).expect("and opens again");
        assert_eq!(back.id, o.id);
        // Sealing adds `_domain` / `_path` when the dict had none, as Beaker's load does.
        let data = |e: &std::collections::BTreeMap<String, Vec<u8>>| {
            e.keys().filter(|k| ![DOMAIN_ENTRY, PATH_ENTRY].contains(&k.as_str())).cloned().collect::<Vec<_>>()
        };
        assert_eq!(data(&back.record.entries), data(&o.record.entries));
        assert!(back.record.entries.contains_key(DOMAIN_ENTRY) && back.record.entries.contains_key(PATH_ENTRY));
    }
});
