//! The cookie-store decoder (base64 → AES-GCM → record): garbage is "no session".
#![no_main]

use std::sync::OnceLock;

use beaker_core::{CookieStore, Keys, Secret, SessionConfig, SessionManager};
use libfuzzer_sys::fuzz_target;

fn manager() -> &'static SessionManager {
    static M: OnceLock<SessionManager> = OnceLock::new();
    M.get_or_init(|| {
        let config = SessionConfig::new().with_secret("fuzzing secret, 16+ bytes").unwrap();
        SessionManager::builder(config).cookie_store(CookieStore).build().unwrap()
    })
}

fuzz_target!(|data: &[u8]| {
    let value = String::from_utf8_lossy(data);
    let header = format!("beaker.session.id={value}");
    let session = manager().start([header.as_str()]);
    assert!(pollster::block_on(session.is_new()).unwrap());
    assert!(pollster::block_on(session.keys()).unwrap().is_empty());
    let keys = Keys::new(&[Secret::new(b"fuzzing secret, 16+ bytes".to_vec()).unwrap()]).unwrap();
    assert!(keys.decrypt("beaker.session.id", &value).is_none());
    assert!(keys.verify("beaker.session.id", &value).is_none());
});
