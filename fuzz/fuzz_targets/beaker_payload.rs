//! The `compat = beaker` decoders: Beaker's pickled sessions (the input as the pickle
//! itself), its zlib JSON sessions and the container's pickled text. A decoded session
//! must encode and decode to itself. Errors are fine; panics, stack overflows and
//! unbounded allocations are not.
#![no_main]

use std::time::{Duration, UNIX_EPOCH};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use beaker_core::compat::{payload, BeakerSerializer};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let encoded = STANDARD.encode(data).into_bytes();
    for serializer in [BeakerSerializer::Pickle, BeakerSerializer::Json] {
        for input in [&encoded[..], data] {
            if let Ok(r) = payload::decode_session(input, serializer, now) {
                let again = payload::encode_session(&r, serializer).expect("a decoded session encodes");
                let back = payload::decode_session(&again, serializer, now).expect("and decodes again");
                assert_eq!(back.entries.keys().collect::<Vec<_>>(), r.entries.keys().collect::<Vec<_>>());
            }
        }
    }
    if let Ok(text) = payload::unpickle_text(data) {
        assert_eq!(payload::unpickle_text(&payload::pickle_text(&text)).ok(), Some(String::from_utf8_lossy(&text).into_owned().into_bytes()));
    }
});
