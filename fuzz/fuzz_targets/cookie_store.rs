//! The cookie-store decoder (base64 → AES-GCM → record → values): garbage is "no session".
//!
//! Two shapes per input: the input as the cookie's value (must never decrypt, so it reads
//! as a fresh, empty session), and the input *sealed with the server's own key*, which
//! gets past AES-GCM so that the record decoder, the id check and the value decoders see
//! attacker-chosen plaintext (what a leaked secret would allow). That may load a session;
//! it must never panic, and every value must decode or be refused.
#![no_main]

use std::sync::OnceLock;

use beaker_core::{CookieStore, Secret, SessionConfig, SessionManager};
use beaker_core::__private::Keys;
use libfuzzer_sys::fuzz_target;

const SECRET: &str = "fuzzing secret, 16+ bytes";
const NAME: &str = "beaker.session.id";

fn manager() -> &'static SessionManager {
    static M: OnceLock<SessionManager> = OnceLock::new();
    M.get_or_init(|| {
        let config = SessionConfig::new().with_secret(SECRET).unwrap();
        SessionManager::builder(config).cookie_store(CookieStore).build().unwrap()
    })
}

fn keys() -> &'static Keys {
    static K: OnceLock<Keys> = OnceLock::new();
    K.get_or_init(|| Keys::new(&[Secret::new(SECRET.as_bytes().to_vec()).unwrap()]).unwrap())
}

fuzz_target!(|data: &[u8]| {
    let value = String::from_utf8_lossy(data);
    let header = format!("{NAME}={value}");
    let session = manager().start([header.as_str()]);
    assert!(pollster::block_on(session.is_new()).unwrap());
    assert!(pollster::block_on(session.keys()).unwrap().is_empty());
    assert!(keys().decrypt(NAME, &value).is_none());
    assert!(keys().verify(NAME, &value).is_none());

    let sealed = format!("{NAME}={}", keys().encrypt(NAME, data));
    let session = manager().start([sealed.as_str()]);
    let _ = pollster::block_on(session.is_new());
    if let Ok(keys) = pollster::block_on(session.keys()) {
        for k in keys {
            let _ = pollster::block_on(session.get::<serde_json::Value>(&k));
            let _ = pollster::block_on(session.get::<i64>(&k));
        }
    }
    let _ = pollster::block_on(session.insert("n", &1));
    let _ = pollster::block_on(manager().finish(&session));
});
