//! The Cookie header parser, signature verification and id validation: any header reads
//! as "no session" (nothing was ever issued here), and nothing panics.
#![no_main]

use std::sync::OnceLock;

use beaker_core::{MemoryStore, SessionConfig, SessionManager};
use libfuzzer_sys::fuzz_target;

fn manager() -> &'static SessionManager {
    static M: OnceLock<SessionManager> = OnceLock::new();
    M.get_or_init(|| {
        let config = SessionConfig::new().with_secret("fuzzing secret, 16+ bytes").unwrap();
        SessionManager::builder(config).store(MemoryStore::new()).build().unwrap()
    })
}

fuzz_target!(|data: &[u8]| {
    let header = String::from_utf8_lossy(data);
    let prefixed = format!("beaker.session.id={header}");
    for h in [header.as_ref(), prefixed.as_str()] {
        let session = manager().start(h.split('\n'));
        assert!(pollster::block_on(session.is_new()).unwrap(), "adopted an id that was never issued");
        assert!(pollster::block_on(manager().finish(&session)).unwrap().is_empty());
    }
});
