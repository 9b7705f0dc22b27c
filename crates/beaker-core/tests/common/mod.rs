//! Helpers shared by the session tests: a store that counts its calls and can be switched
//! off, and cookie plumbing.
#![allow(dead_code, unreachable_pub, missing_docs)]

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use beaker_core::store::{async_trait, Changes, Lookup, Record, SessionStore, StoreKey};
use beaker_core::{ManualClock, MemoryStore, SessionConfig, SessionManager, SetCookie, StoreError};

pub const SECRET: &str = "a test secret that is long enough";

#[derive(Debug, Default)]
pub struct Counts {
    pub load: AtomicUsize,
    pub create: AtomicUsize,
    pub apply: AtomicUsize,
    pub touch: AtomicUsize,
    pub delete: AtomicUsize,
}

impl Counts {
    pub fn total(&self) -> usize {
        [&self.load, &self.create, &self.apply, &self.touch, &self.delete]
            .iter()
            .map(|c| c.load(Ordering::SeqCst))
            .sum()
    }
    pub fn writes(&self) -> usize {
        [&self.create, &self.apply, &self.touch, &self.delete].iter().map(|c| c.load(Ordering::SeqCst)).sum()
    }
    pub fn loads(&self) -> usize {
        self.load.load(Ordering::SeqCst)
    }
}

/// A memory store that counts calls and can simulate an outage.
#[derive(Debug, Clone)]
pub struct CountingStore {
    pub inner: MemoryStore,
    pub counts: Arc<Counts>,
    pub down: Arc<AtomicBool>,
}

impl CountingStore {
    pub fn new(clock: &ManualClock) -> Self {
        CountingStore {
            inner: MemoryStore::with_clock(1000, Arc::new(clock.clone())),
            counts: Arc::default(),
            down: Arc::default(),
        }
    }
    fn check(&self) -> Result<(), StoreError> {
        if self.down.load(Ordering::SeqCst) {
            Err(StoreError::Unavailable { message: "simulated outage".into(), source: None })
        } else {
            Ok(())
        }
    }
}

#[async_trait]
impl SessionStore for CountingStore {
    async fn load(&self, key: &StoreKey) -> Result<Option<Record>, StoreError> {
        self.counts.load.fetch_add(1, Ordering::SeqCst);
        self.check()?;
        self.inner.load(key).await
    }
    async fn lookup(&self, key: &StoreKey) -> Result<Lookup, StoreError> {
        self.counts.load.fetch_add(1, Ordering::SeqCst);
        self.check()?;
        self.inner.lookup(key).await
    }
    async fn end(&self, key: &StoreKey, retire_for: Duration) -> Result<(), StoreError> {
        self.counts.delete.fetch_add(1, Ordering::SeqCst);
        self.check()?;
        self.inner.end(key, retire_for).await
    }
    async fn rename(
        &self,
        from: &StoreKey,
        to: &StoreKey,
        changes: &Changes,
        retire_for: Duration,
    ) -> Result<bool, StoreError> {
        self.counts.create.fetch_add(1, Ordering::SeqCst);
        self.check()?;
        self.inner.rename(from, to, changes, retire_for).await
    }
    async fn create(&self, key: &StoreKey, record: &Record) -> Result<bool, StoreError> {
        self.counts.create.fetch_add(1, Ordering::SeqCst);
        self.check()?;
        self.inner.create(key, record).await
    }
    async fn apply(&self, key: &StoreKey, changes: &Changes) -> Result<bool, StoreError> {
        self.counts.apply.fetch_add(1, Ordering::SeqCst);
        self.check()?;
        self.inner.apply(key, changes).await
    }
    async fn touch(
        &self,
        key: &StoreKey,
        accessed: SystemTime,
        expires: Option<SystemTime>,
    ) -> Result<bool, StoreError> {
        self.counts.touch.fetch_add(1, Ordering::SeqCst);
        self.check()?;
        self.inner.touch(key, accessed, expires).await
    }
    async fn delete(&self, key: &StoreKey) -> Result<(), StoreError> {
        self.counts.delete.fetch_add(1, Ordering::SeqCst);
        self.check()?;
        self.inner.delete(key).await
    }
    fn name(&self) -> &'static str {
        "counting"
    }
}

pub struct Fixture {
    pub clock: ManualClock,
    pub store: CountingStore,
    pub manager: SessionManager,
}

pub fn fixture(config: SessionConfig) -> Fixture {
    let clock = ManualClock::new();
    let store = CountingStore::new(&clock);
    let manager = SessionManager::builder(config)
        .store(store.clone())
        .clock(Arc::new(clock.clone()))
        .build()
        .expect("valid config");
    Fixture { clock, store, manager }
}

pub fn config() -> SessionConfig {
    SessionConfig::new().with_secret(SECRET).unwrap()
}

/// The `name=value` pair of a Set-Cookie value, as a browser would send it back.
pub fn pair(set_cookie: &SetCookie) -> String {
    set_cookie.as_str().split(';').next().unwrap().to_owned()
}

pub fn value(set_cookie: &SetCookie) -> String {
    pair(set_cookie).split_once('=').unwrap().1.to_owned()
}
