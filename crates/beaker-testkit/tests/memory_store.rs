//! The store conformance suite on the built-in memory store.

use std::sync::Arc;

use beaker_core::MemoryStore;
use beaker_testkit::store::SessionStoreSuite;

#[tokio::test]
async fn memory_store_passes_the_store_suite() {
    SessionStoreSuite::new(Arc::new(MemoryStore::new())).with_real_time_expiry().run().await;
}
