//! The session model check (proptest) on the memory store and on cookie-only sessions.

use beaker_core::{CookieStore, MemoryStore, SessionConfig, SessionManager};
use beaker_testkit::model::{check_model, requests_strategy};
use proptest::prelude::*;

fn config() -> SessionConfig {
    SessionConfig::new().with_secret("model check secret, 16+ bytes").unwrap()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn memory_store_behaves_like_a_map(requests in requests_strategy()) {
        let manager = SessionManager::builder(config()).store(MemoryStore::new()).build().unwrap();
        let outcome = runtime().block_on(check_model(&manager, &requests));
        prop_assert!(outcome.is_ok(), "{}", outcome.unwrap_err());
    }

    #[test]
    fn cookie_sessions_behave_like_a_map(requests in requests_strategy()) {
        let manager = SessionManager::builder(config()).cookie_store(CookieStore).build().unwrap();
        let outcome = runtime().block_on(check_model(&manager, &requests));
        prop_assert!(outcome.is_ok(), "{}", outcome.unwrap_err());
    }
}
