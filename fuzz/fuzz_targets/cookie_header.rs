//! The Cookie header parser, signature verification and id validation: any header reads
//! as "no session" (nothing was ever issued here), and nothing panics.
//!
//! Four shapes per input: the raw bytes as headers (`start_bytes`, not UTF-8-checked by
//! anyone first), the raw header, the input as our cookie's value, and the input
//! *signed with the server's own key* as our cookie's value. The last one gets past the
//! signature check, so the id parser and the store lookup see attacker-chosen text too
//! (what a leaked secret would allow); even then no id is adopted.
#![no_main]

use std::sync::OnceLock;

use beaker_core::{MemoryStore, Secret, SessionConfig, SessionManager};
use beaker_core::__private::Keys;
use libfuzzer_sys::fuzz_target;

const SECRET: &str = "fuzzing secret, 16+ bytes";
const NAME: &str = "beaker.session.id";

fn manager() -> &'static SessionManager {
    static M: OnceLock<SessionManager> = OnceLock::new();
    M.get_or_init(|| {
        let config = SessionConfig::new().with_secret(SECRET).unwrap();
        SessionManager::builder(config).store(MemoryStore::new()).build().unwrap()
    })
}

fn keys() -> &'static Keys {
    static K: OnceLock<Keys> = OnceLock::new();
    K.get_or_init(|| Keys::new(&[Secret::new(SECRET.as_bytes().to_vec()).unwrap()]).unwrap())
}

fn assert_fresh(session: &beaker_core::Session) {
    assert!(pollster::block_on(session.is_new()).unwrap(), "adopted an id that was never issued");
    assert!(pollster::block_on(session.keys()).unwrap().is_empty());
    assert!(pollster::block_on(manager().finish(session)).unwrap().is_empty());
}

fuzz_target!(|data: &[u8]| {
    assert_fresh(&manager().start_bytes(data.split(|&b| b == b'\n')));
    let header = String::from_utf8_lossy(data);
    let prefixed = format!("{NAME}={header}");
    let signed = format!("{NAME}={}", keys().sign(NAME, &header));
    for h in [header.as_ref(), prefixed.as_str(), signed.as_str()] {
        assert_fresh(&manager().start(h.split('\n')));
    }
});
