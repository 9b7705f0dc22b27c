//! The session model check (proptest, from `beaker-testkit`) on the file store: any
//! sequence of session operations across requests reads back like a plain map.

use beaker_core::{SessionConfig, SessionManager};
use beaker_file::{FileOptions, FileStore};
use beaker_testkit::model::{check_model, requests_strategy};
use proptest::prelude::*;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

proptest! {
    // Each case opens a fresh directory; fewer cases than the memory store's, as each
    // request here touches the file system.
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn file_store_behaves_like_a_map(requests in requests_strategy()) {
        let dir = tempfile::tempdir().unwrap();
        let outcome = runtime().block_on(async {
            let store = FileStore::open(dir.path(), FileOptions::new()).await.expect("open");
            let config = SessionConfig::new().with_secret("model check secret, 16+ bytes").unwrap();
            let manager = SessionManager::builder(config).store(store).build().unwrap();
            check_model(&manager, &requests).await
        });
        prop_assert!(outcome.is_ok(), "{}", outcome.unwrap_err());
    }
}
