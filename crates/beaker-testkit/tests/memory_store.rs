//! The store conformance suite on the built-in memory store.

use std::sync::Arc;
use std::time::SystemTime;

use beaker_core::store::{Changes, Record, SessionStore, StoreKey};
use beaker_core::{MemoryStore, StoreError};
use beaker_testkit::store::SessionStoreSuite;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory_store_passes_the_store_suite() {
    SessionStoreSuite::new(Arc::new(MemoryStore::new())).with_real_time_expiry().run().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory_store_passes_the_lifecycle_races() {
    let config = beaker_core::SessionConfig::new().with_secret("a secret of at least 16 bytes").unwrap();
    // By value: the manager's direct memory path.
    let direct = beaker_core::SessionManager::builder(config.clone()).store(MemoryStore::new()).build().unwrap();
    beaker_testkit::lifecycle::LifecycleRaceSuite::new(direct).run().await;
    // Shared: through the trait.
    let shared =
        beaker_core::SessionManager::builder(config).shared_store(Arc::new(MemoryStore::new())).build().unwrap();
    beaker_testkit::lifecycle::LifecycleRaceSuite::new(shared).run().await;
}

/// A store that keeps only the trait's required operations (no tombstones, the default
/// three-step rename).
#[derive(Debug, Clone, Default)]
struct Minimal(MemoryStore);

#[beaker_core::store::async_trait]
impl SessionStore for Minimal {
    async fn load(&self, k: &StoreKey) -> Result<Option<Record>, StoreError> {
        self.0.load(k).await
    }
    async fn create(&self, k: &StoreKey, r: &Record) -> Result<bool, StoreError> {
        self.0.create(k, r).await
    }
    async fn apply(&self, k: &StoreKey, c: &Changes) -> Result<bool, StoreError> {
        self.0.apply(k, c).await
    }
    async fn touch(&self, k: &StoreKey, a: SystemTime, e: Option<SystemTime>) -> Result<bool, StoreError> {
        self.0.touch(k, a, e).await
    }
    async fn delete(&self, k: &StoreKey) -> Result<(), StoreError> {
        self.0.delete(k).await
    }
    fn name(&self) -> &'static str {
        "minimal"
    }
}

/// The suites can fail: a store without tombstones lets the same browser's requests
/// mint sessions during a login, and the store suite sees no retired key.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[should_panic(expected = "pre-login id")]
async fn the_lifecycle_races_catch_a_store_without_tombstones() {
    let config = beaker_core::SessionConfig::new().with_secret("a secret of at least 16 bytes").unwrap();
    let m = beaker_core::SessionManager::builder(config).store(Minimal::default()).build().unwrap();
    beaker_testkit::lifecycle::LifecycleRaceSuite::new(m).run().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[should_panic(expected = "an ended key must read as retired")]
async fn the_store_suite_catches_a_store_without_tombstones() {
    SessionStoreSuite::new(Arc::new(Minimal::default())).run().await;
}

#[tokio::test]
async fn memory_store_passes_the_index_suite() {
    beaker_testkit::store::SessionIndexSuite::new(Arc::new(MemoryStore::new())).run().await;
}
