//! The session engine on an SQLite store: which store calls each kind of request makes
//! (the numbers in `SqlStore`'s docs), and per-key merging of concurrent requests.

#![cfg(feature = "sqlite")]

use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use beaker_core::store::{async_trait, Changes, Record, SessionStore, StoreKey};
use beaker_core::{SessionConfig, SessionManager, StoreError};
use beaker_sql::{SqlOptions, SqlStore};
use beaker_testkit::fixtures::cookie_pair;

/// Records the name of every call before passing it on.
#[derive(Debug)]
struct Counting {
    inner: SqlStore,
    calls: Mutex<Vec<&'static str>>,
}

impl Counting {
    fn take(&self) -> Vec<&'static str> {
        std::mem::take(&mut *self.calls.lock().unwrap())
    }

    fn log(&self, call: &'static str) {
        self.calls.lock().unwrap().push(call);
    }
}

#[async_trait]
impl SessionStore for Counting {
    async fn load(&self, key: &StoreKey) -> Result<Option<Record>, StoreError> {
        self.log("load");
        self.inner.load(key).await
    }
    async fn create(&self, key: &StoreKey, record: &Record) -> Result<bool, StoreError> {
        self.log("create");
        self.inner.create(key, record).await
    }
    async fn apply(&self, key: &StoreKey, changes: &Changes) -> Result<bool, StoreError> {
        self.log("apply");
        self.inner.apply(key, changes).await
    }
    async fn touch(
        &self,
        key: &StoreKey,
        accessed: SystemTime,
        expires: Option<SystemTime>,
    ) -> Result<bool, StoreError> {
        self.log("touch");
        self.inner.touch(key, accessed, expires).await
    }
    async fn delete(&self, key: &StoreKey) -> Result<(), StoreError> {
        self.log("delete");
        self.inner.delete(key).await
    }
    fn name(&self) -> &'static str {
        "counting-sqlite"
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_make_the_documented_store_calls_and_merge_per_key() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}", dir.path().join("sessions.db").display());
    let store = Arc::new(Counting {
        inner: SqlStore::connect(&url, SqlOptions::new()).await.unwrap(),
        calls: Mutex::default(),
    });
    let config = SessionConfig::new().with_secret("a secret of sixteen+ bytes").unwrap();
    let manager = SessionManager::builder(config).shared_store(store.clone()).build().unwrap();

    // A new session: one create.
    let s = manager.start(std::iter::empty());
    s.insert("user", "ann").await.unwrap();
    let set = manager.finish(&s).await.unwrap();
    assert_eq!(store.take(), ["create"]);
    let cookie = cookie_pair(set[0].as_str());

    // Untouched: nothing.
    let s = manager.start([cookie.as_str()]);
    assert!(manager.finish(&s).await.unwrap().is_empty());
    assert_eq!(store.take(), Vec::<&str>::new());

    // Read only: one load.
    let s = manager.start([cookie.as_str()]);
    assert_eq!(s.get::<String>("user").await.unwrap().as_deref(), Some("ann"));
    manager.finish(&s).await.unwrap();
    assert_eq!(store.take(), ["load"]);

    // Modified: one load, one apply.
    let s = manager.start([cookie.as_str()]);
    s.insert("theme", "dark").await.unwrap();
    manager.finish(&s).await.unwrap();
    assert_eq!(store.take(), ["load", "apply"]);

    // Two requests on one session, each changing its own key, finishing in either order:
    // both changes survive.
    let (a, b) = (manager.start([cookie.as_str()]), manager.start([cookie.as_str()]));
    a.insert("left", &1).await.unwrap();
    b.insert("right", &2).await.unwrap();
    let (fa, fb) = tokio::join!(manager.finish(&a), manager.finish(&b));
    fa.unwrap();
    fb.unwrap();
    let s = manager.start([cookie.as_str()]);
    assert_eq!(s.get::<i32>("left").await.unwrap(), Some(1));
    assert_eq!(s.get::<i32>("right").await.unwrap(), Some(2));
    assert_eq!(s.get::<String>("theme").await.unwrap().as_deref(), Some("dark"));
    assert_eq!(s.get::<String>("user").await.unwrap().as_deref(), Some("ann"));
}
