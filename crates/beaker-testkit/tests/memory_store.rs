//! The store conformance suite on the built-in memory store.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use beaker_core::store::{Changes, Listed, Lookup, Record, SessionStore, StoreKey};
use beaker_core::{MemoryStore, StoreError};
use beaker_testkit::store::{EndRace, SessionStoreSuite};

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

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory_store_passes_the_end_race() {
    let race = EndRace { sessions: 3, writers: 3, relogin: true, touch_every: Some(5), ..EndRace::default() };
    race.run(Arc::new(MemoryStore::new())).await;
}

/// A store whose `apply` writes the changes whether or not the session is still there, as
/// an upsert does: what the end race exists to catch.
#[derive(Debug, Clone, Default)]
struct Upserting(MemoryStore);

#[beaker_core::store::async_trait]
impl SessionStore for Upserting {
    async fn load(&self, k: &StoreKey) -> Result<Option<Record>, StoreError> {
        self.0.load(k).await
    }
    async fn lookup(&self, k: &StoreKey) -> Result<Lookup, StoreError> {
        self.0.lookup(k).await
    }
    async fn create(&self, k: &StoreKey, r: &Record) -> Result<bool, StoreError> {
        self.0.create(k, r).await
    }
    async fn apply(&self, k: &StoreKey, c: &Changes) -> Result<bool, StoreError> {
        if !self.0.apply(k, c).await? {
            let r = Record {
                entries: c.set.clone(),
                created: c.accessed,
                accessed: c.accessed,
                expires: c.expires,
                owner: c.owner.clone(),
            };
            self.0.create(k, &r).await?;
        }
        Ok(true)
    }
    async fn touch(&self, k: &StoreKey, a: SystemTime, e: Option<SystemTime>) -> Result<bool, StoreError> {
        self.0.touch(k, a, e).await
    }
    async fn delete(&self, k: &StoreKey) -> Result<(), StoreError> {
        self.0.delete(k).await
    }
    async fn end(&self, k: &StoreKey, retire_for: Duration) -> Result<(), StoreError> {
        self.0.end(k, retire_for).await
    }
    async fn sessions_of(&self, principal: &str) -> Result<Vec<Listed>, StoreError> {
        self.0.sessions_of(principal).await
    }
    fn name(&self) -> &'static str {
        "upserting"
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[should_panic(expected = "after the end")]
async fn the_end_race_catches_a_store_that_writes_after_the_end() {
    EndRace { trials: 3, ..EndRace::default() }.run(Arc::new(Upserting::default())).await;
}
