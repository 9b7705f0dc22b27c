//! The conformance suites for [`SessionStore`] and [`CacheBackend`] implementations.
//!
//! Every built-in backend runs them from its own tests against the real server; a
//! third-party backend runs them the same way:
//!
//! ```
//! use std::sync::Arc;
//! use beaker_core::MemoryStore;
//! use beaker_testkit::store::SessionStoreSuite;
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! SessionStoreSuite::new(Arc::new(MemoryStore::new())).run().await;
//! # }
//! ```
//!
//! The suites panic with a message naming the failed check (they are meant for tests).
//! Every check uses fresh random keys and deletes what it wrote, so a suite can run against
//! a shared server. The fixtures the suites build their records from ([`fresh_key`],
//! [`record`], [`changes`], [`now_ms`]; for the principal index [`fresh_principal`],
//! [`owner`], [`owned`], [`with_owner`], [`listed_keys`], [`key_set`]) and the race of
//! [`EndRace`] are public for a store's own tests.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use beaker_core::cache::{CacheBackend, CacheEntry, LockOutcome, LockToken};
use beaker_core::store::{Changes, Record, SessionStore, StoreKey};
use beaker_core::{SessionId, StoreError};

mod end_race;
mod ended;
mod index;

pub use end_race::EndRace;
pub use index::{
    fresh_principal, key_set, listed_keys, owned, owner, scan_whole, with_owner, SessionIndexSuite, OWNED_ENTRY,
};

/// A boxed future, for the hooks below.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Writes undecodable bytes under a store key (backend-specific, so supplied by the test).
pub type Corruptor = Box<dyn Fn(StoreKey) -> BoxFuture<'static, ()> + Send + Sync>;

const HOUR: Duration = Duration::from_secs(3600);
/// Stores may round expiry to whole seconds (Memcached, some SQL types).
const EXPIRY_TOLERANCE: Duration = Duration::from_secs(2);

/// A fresh random store key (of a hashed id), for a store's own tests.
pub fn fresh_key() -> StoreKey {
    StoreKey::for_id(&SessionId::generate(), true)
}

/// Now, in whole milliseconds: what record formats keep, so that a record built from it
/// compares equal after a round trip through a store.
pub fn now_ms() -> SystemTime {
    let ms = SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
    std::time::UNIX_EPOCH + Duration::from_millis(ms)
}

/// A record holding `entries` (raw bytes, as stores see them), created five seconds ago
/// and accessed now, in whole milliseconds.
pub fn record(entries: &[(&str, &[u8])], expires: Option<SystemTime>) -> Record {
    let now = now_ms();
    Record {
        entries: entries.iter().map(|(k, v)| (k.to_string(), v.to_vec())).collect(),
        created: now - Duration::from_secs(5),
        accessed: now,
        expires,
        owner: None,
    }
}

/// Changes that set `set` and remove `remove`, accessed now (whole milliseconds).
pub fn changes(set: &[(&str, &[u8])], remove: &[&str], expires: Option<SystemTime>) -> Changes {
    Changes {
        clear: false,
        set: set.iter().map(|(k, v)| (k.to_string(), v.to_vec())).collect(),
        remove: remove.iter().map(|k| k.to_string()).collect(),
        accessed: now_ms(),
        expires,
        owner: None,
    }
}

fn close_to(actual: Option<SystemTime>, expected: Option<SystemTime>) -> bool {
    match (actual, expected) {
        (None, None) => true,
        (Some(a), Some(e)) => {
            let diff = a.duration_since(e).or_else(|_| e.duration_since(a)).unwrap_or_default();
            diff <= EXPIRY_TOLERANCE
        }
        _ => false,
    }
}

/// The [`SessionStore`] conformance suite.
pub struct SessionStoreSuite {
    store: Arc<dyn SessionStore>,
    corruptor: Option<Corruptor>,
    large_value: usize,
    real_time_expiry: bool,
}

impl std::fmt::Debug for SessionStoreSuite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionStoreSuite").field("store", &self.store.name()).finish_non_exhaustive()
    }
}

impl SessionStoreSuite {
    /// The suite for `store`, with a 1 MiB large value and no corruption check.
    pub fn new(store: Arc<dyn SessionStore>) -> Self {
        SessionStoreSuite { store, corruptor: None, large_value: 1 << 20, real_time_expiry: false }
    }

    /// Also checks that a corrupt record loads as `Err(Corrupt)` or `None`, never as data
    /// and never a panic: `corrupt` must write garbage under the key it is given.
    pub fn with_corruptor(mut self, corrupt: Corruptor) -> Self {
        self.corruptor = Some(corrupt);
        self
    }

    /// Size of the large-value round trip (default 1 MiB).
    pub fn with_large_value(mut self, bytes: usize) -> Self {
        self.large_value = bytes;
        self
    }

    /// Also waits (at most 15 s) for a record with a 1 s expiry to disappear on its own.
    pub fn with_real_time_expiry(mut self) -> Self {
        self.real_time_expiry = true;
        self
    }

    /// Runs every check; panics naming the first that fails.
    pub async fn run(self) {
        let name = self.store.name();
        self.create_never_overwrites().await;
        self.unknown_is_none().await;
        self.apply_is_per_key().await;
        self.apply_on_missing_record_writes_nothing().await;
        self.clear_then_set().await;
        self.concurrent_different_keys_survive().await;
        self.touch_extends_expiry().await;
        self.delete_removes().await;
        self.expired_is_never_returned().await;
        self.large_and_unicode_values().await;
        self.corrupt_record_is_not_data().await;
        self.ended_session_rule().await;
        if self.real_time_expiry {
            self.expires_on_its_own().await;
        }
        let _ = self.store.cleanup().await.unwrap_or_else(|e| panic!("[{name}] cleanup failed: {e}"));
    }

    fn s(&self) -> &dyn SessionStore {
        self.store.as_ref()
    }

    async fn ok<T>(&self, what: &str, r: Result<T, StoreError>) -> T {
        r.unwrap_or_else(|e| panic!("[{}] {what} failed: {e}", self.store.name()))
    }

    async fn create_never_overwrites(&self) {
        let k = fresh_key();
        let first = record(&[("a", b"j1")], Some(SystemTime::now() + HOUR));
        assert!(self.ok("create", self.s().create(&k, &first).await).await, "create of a new key must succeed");
        let second = record(&[("a", b"j2")], Some(SystemTime::now() + HOUR));
        assert!(
            !self.ok("create", self.s().create(&k, &second).await).await,
            "[{}] create must not overwrite a live record",
            self.s().name()
        );
        let loaded = self.ok("load", self.s().load(&k).await).await.expect("record");
        assert_eq!(loaded.entries, first.entries, "[{}] create overwrote a live record", self.s().name());
        assert!(close_to(loaded.expires, first.expires), "[{}] expires not kept", self.s().name());
        self.ok("delete", self.s().delete(&k).await).await;
    }

    async fn unknown_is_none(&self) {
        let k = fresh_key();
        assert!(self.ok("load", self.s().load(&k).await).await.is_none(), "[{}] unknown key loaded", self.s().name());
        assert!(!self.ok("apply", self.s().apply(&k, &changes(&[("a", b"j1")], &[], None)).await).await);
        assert!(!self.ok("touch", self.s().touch(&k, SystemTime::now(), None).await).await);
        self.ok("delete of a missing key", self.s().delete(&k).await).await;
    }

    async fn apply_is_per_key(&self) {
        let k = fresh_key();
        let r = record(&[("keep", b"j1"), ("drop", b"j2"), ("change", b"j3")], Some(SystemTime::now() + HOUR));
        assert!(self.ok("create", self.s().create(&k, &r).await).await);
        let new_expiry = Some(SystemTime::now() + 2 * HOUR);
        let c = changes(&[("change", b"j33"), ("new", b"j4")], &["drop"], new_expiry);
        assert!(self.ok("apply", self.s().apply(&k, &c).await).await, "apply to a live record must succeed");
        let loaded = self.ok("load", self.s().load(&k).await).await.expect("record");
        let expected: BTreeMap<String, Vec<u8>> = [("keep", &b"j1"[..]), ("change", b"j33"), ("new", b"j4")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_vec()))
            .collect();
        assert_eq!(loaded.entries, expected, "[{}] apply did not apply per key", self.s().name());
        assert!(close_to(loaded.expires, new_expiry), "[{}] apply did not update expires", self.s().name());
        self.ok("delete", self.s().delete(&k).await).await;
    }

    async fn apply_on_missing_record_writes_nothing(&self) {
        let k = fresh_key();
        assert!(!self.ok("apply", self.s().apply(&k, &changes(&[("a", b"j1")], &[], None)).await).await);
        assert!(
            self.ok("load", self.s().load(&k).await).await.is_none(),
            "[{}] apply on a missing record created one",
            self.s().name()
        );
    }

    async fn clear_then_set(&self) {
        let k = fresh_key();
        let r = record(&[("a", b"j1"), ("b", b"j2")], Some(SystemTime::now() + HOUR));
        assert!(self.ok("create", self.s().create(&k, &r).await).await);
        let mut c = changes(&[("c", b"j3")], &[], Some(SystemTime::now() + HOUR));
        c.clear = true;
        assert!(self.ok("apply", self.s().apply(&k, &c).await).await);
        let loaded = self.ok("load", self.s().load(&k).await).await.expect("record");
        assert_eq!(loaded.entries.keys().collect::<Vec<_>>(), vec!["c"], "[{}] clear not applied", self.s().name());
        self.ok("delete", self.s().delete(&k).await).await;
    }

    async fn concurrent_different_keys_survive(&self) {
        let k = fresh_key();
        let r = record(&[("base", b"j0")], Some(SystemTime::now() + HOUR));
        assert!(self.ok("create", self.s().create(&k, &r).await).await);
        let tasks: Vec<_> = (0..20)
            .map(|i| {
                let store = self.store.clone();
                let k = k.clone();
                tokio::spawn(async move {
                    let key = format!("k{i}");
                    let c = changes(&[(&key, format!("j{i}").as_bytes())], &[], Some(SystemTime::now() + HOUR));
                    store.apply(&k, &c).await
                })
            })
            .collect();
        for t in tasks {
            let applied = t.await.expect("task").unwrap_or_else(|e| panic!("[{}] apply failed: {e}", self.s().name()));
            assert!(applied);
        }
        let loaded = self.ok("load", self.s().load(&k).await).await.expect("record");
        for i in 0..20 {
            assert_eq!(
                loaded.entries.get(&format!("k{i}")),
                Some(&format!("j{i}").into_bytes()),
                "[{}] concurrent apply lost key k{i}",
                self.s().name()
            );
        }
        assert!(loaded.entries.contains_key("base"));
        self.ok("delete", self.s().delete(&k).await).await;
    }

    async fn touch_extends_expiry(&self) {
        let k = fresh_key();
        let r = record(&[("a", b"j1")], Some(SystemTime::now() + Duration::from_secs(60)));
        assert!(self.ok("create", self.s().create(&k, &r).await).await);
        let later = Some(SystemTime::now() + 5 * HOUR);
        let accessed = SystemTime::now();
        assert!(self.ok("touch", self.s().touch(&k, accessed, later).await).await);
        let loaded = self.ok("load", self.s().load(&k).await).await.expect("record");
        assert!(close_to(loaded.expires, later), "[{}] touch did not extend expires", self.s().name());
        assert!(close_to(Some(loaded.accessed), Some(accessed)), "[{}] touch did not set accessed", self.s().name());
        assert_eq!(loaded.entries, r.entries, "[{}] touch changed the data", self.s().name());
        self.ok("delete", self.s().delete(&k).await).await;
    }

    async fn delete_removes(&self) {
        let k = fresh_key();
        assert!(self.ok("create", self.s().create(&k, &record(&[("a", b"j1")], None)).await).await);
        self.ok("delete", self.s().delete(&k).await).await;
        assert!(
            self.ok("load", self.s().load(&k).await).await.is_none(),
            "[{}] deleted record loaded",
            self.s().name()
        );
        assert!(
            self.ok("create", self.s().create(&k, &record(&[("b", b"j2")], None)).await).await,
            "[{}] create after delete must succeed",
            self.s().name()
        );
        self.ok("delete", self.s().delete(&k).await).await;
    }

    async fn expired_is_never_returned(&self) {
        let k = fresh_key();
        let r = record(&[("a", b"j1")], Some(SystemTime::now() + HOUR));
        assert!(self.ok("create", self.s().create(&k, &r).await).await);
        let past = Some(SystemTime::now() - Duration::from_secs(10));
        // Expiring a record through apply: afterwards it must be gone for every operation.
        let applied = self.ok("apply", self.s().apply(&k, &changes(&[], &[], past)).await).await;
        assert!(applied);
        assert!(
            self.ok("load", self.s().load(&k).await).await.is_none(),
            "[{}] an expired record was returned",
            self.s().name()
        );
        assert!(!self.ok("apply", self.s().apply(&k, &changes(&[("b", b"j")], &[], None)).await).await);
        // An expired record does not block a create.
        let fresh = record(&[("c", b"j3")], Some(SystemTime::now() + HOUR));
        assert!(
            self.ok("create", self.s().create(&k, &fresh).await).await,
            "[{}] expired record blocked create",
            self.s().name()
        );
        self.ok("delete", self.s().delete(&k).await).await;
    }

    async fn large_and_unicode_values(&self) {
        let k = fresh_key();
        let big: Vec<u8> = (0..self.large_value).map(|i| (i % 251) as u8).collect();
        let r = record(&[("größe 🚀", "j\"ünïcødé ✓\"".as_bytes()), ("big", &big)], Some(SystemTime::now() + HOUR));
        assert!(self.ok("create", self.s().create(&k, &r).await).await);
        let loaded = self.ok("load", self.s().load(&k).await).await.expect("record");
        assert_eq!(loaded.entries, r.entries, "[{}] large or unicode values did not round-trip", self.s().name());
        self.ok("delete", self.s().delete(&k).await).await;
    }

    async fn corrupt_record_is_not_data(&self) {
        let Some(corrupt) = &self.corruptor else { return };
        let k = fresh_key();
        corrupt(k.clone()).await;
        match self.s().load(&k).await {
            Ok(None) | Err(StoreError::Corrupt { .. }) => {}
            Ok(Some(r)) => panic!("[{}] a corrupt record loaded as data: {:?}", self.s().name(), r.entries.keys()),
            Err(e) => panic!("[{}] a corrupt record gave {e} instead of Corrupt", self.s().name()),
        }
        self.ok("delete", self.s().delete(&k).await).await;
    }

    async fn expires_on_its_own(&self) {
        let k = fresh_key();
        let r = record(&[("a", b"j1")], Some(SystemTime::now() + Duration::from_secs(1)));
        assert!(self.ok("create", self.s().create(&k, &r).await).await);
        for _ in 0..150 {
            if self.ok("load", self.s().load(&k).await).await.is_none() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("[{}] a record with a 1 s expiry was still returned after 15 s", self.s().name());
    }
}

/// The [`CacheBackend`] conformance suite.
pub struct CacheBackendSuite {
    backend: Arc<dyn CacheBackend>,
    large_value: usize,
    real_time_expiry: bool,
}

impl std::fmt::Debug for CacheBackendSuite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CacheBackendSuite").field("backend", &self.backend.name()).finish_non_exhaustive()
    }
}

fn unique_ns(tag: &str) -> String {
    format!("suite-{tag}-{}", &StoreKey::for_id(&SessionId::generate(), true).as_str()[..10])
}

fn entry(value: &[u8], fresh_for: Option<Duration>) -> CacheEntry {
    let now = SystemTime::now();
    CacheEntry { value: value.to_vec(), stored_at: now, fresh_until: fresh_for.map(|d| now + d) }
}

impl CacheBackendSuite {
    /// The suite for `backend`, with a 1 MiB large value.
    pub fn new(backend: Arc<dyn CacheBackend>) -> Self {
        CacheBackendSuite { backend, large_value: 1 << 20, real_time_expiry: false }
    }

    /// Size of the large-value round trip (default 1 MiB).
    pub fn with_large_value(mut self, bytes: usize) -> Self {
        self.large_value = bytes;
        self
    }

    /// Also waits (at most 15 s) for an entry with a 1 s hard TTL to disappear.
    pub fn with_real_time_expiry(mut self) -> Self {
        self.real_time_expiry = true;
        self
    }

    fn b(&self) -> &dyn CacheBackend {
        self.backend.as_ref()
    }

    fn ok<T>(&self, what: &str, r: Result<T, StoreError>) -> T {
        r.unwrap_or_else(|e| panic!("[{}] {what} failed: {e}", self.backend.name()))
    }

    /// Runs every check; panics naming the first that fails.
    pub async fn run(self) {
        let name = self.b().name();
        let ns = unique_ns("a");
        let other = unique_ns("b");

        // Round trip with metadata; a miss is None.
        assert!(self.ok("get", self.b().get(&ns, "missing").await).is_none(), "[{name}] a miss returned a value");
        let e = entry(b"j42", Some(HOUR));
        self.ok("put", self.b().put(&ns, "k", &e, Some(2 * HOUR)).await);
        let got = self.ok("get", self.b().get(&ns, "k").await).expect("entry");
        assert_eq!(got.value, e.value, "[{name}] value did not round-trip");
        assert!(close_to(got.fresh_until, e.fresh_until), "[{name}] fresh_until did not round-trip");
        assert!(close_to(Some(got.stored_at), Some(e.stored_at)), "[{name}] stored_at did not round-trip");

        // A stored "nothing" is distinct from a miss.
        self.ok("put", self.b().put(&ns, "unit", &entry(b"jnull", None), None).await);
        let unit = self.ok("get", self.b().get(&ns, "unit").await).expect("a stored null is not a miss");
        assert_eq!(unit.value, b"jnull");
        assert_eq!(unit.fresh_until, None, "[{name}] an always-fresh entry came back with an expiry");

        // A stale entry stays readable until its hard TTL.
        let stale =
            CacheEntry { fresh_until: Some(SystemTime::now() - Duration::from_secs(30)), ..entry(b"jold", None) };
        self.ok("put", self.b().put(&ns, "stale", &stale, Some(HOUR)).await);
        let got = self.ok("get", self.b().get(&ns, "stale").await).expect("[stale entries must stay readable]");
        assert!(!got.is_fresh(SystemTime::now()), "[{name}] stale entry came back fresh");

        // Replace, remove.
        self.ok("put", self.b().put(&ns, "k", &entry(b"j43", None), None).await);
        assert_eq!(self.ok("get", self.b().get(&ns, "k").await).expect("entry").value, b"j43");
        assert!(self.ok("remove", self.b().remove(&ns, "k").await), "[{name}] remove of a present key said false");
        assert!(self.ok("get", self.b().get(&ns, "k").await).is_none(), "[{name}] removed entry still there");

        // Unicode keys and large values.
        let big: Vec<u8> = (0..self.large_value).map(|i| (i % 253) as u8).collect();
        self.ok("put", self.b().put(&ns, "clé 🔑 ключ", &entry(&big, None), None).await);
        assert_eq!(self.ok("get", self.b().get(&ns, "clé 🔑 ключ").await).expect("entry").value, big);

        // Namespace isolation and scoped clear.
        self.ok("put", self.b().put(&ns, "shared", &entry(b"ja", None), None).await);
        self.ok("put", self.b().put(&other, "shared", &entry(b"jb", None), None).await);
        assert_eq!(self.ok("get", self.b().get(&ns, "shared").await).expect("entry").value, b"ja");
        assert_eq!(self.ok("get", self.b().get(&other, "shared").await).expect("entry").value, b"jb");
        self.ok("clear", self.b().clear(&ns).await);
        assert!(self.ok("get", self.b().get(&ns, "shared").await).is_none(), "[{name}] clear left an entry");
        assert!(self.ok("get", self.b().get(&ns, "unit").await).is_none(), "[{name}] clear left an entry");
        assert_eq!(
            self.ok("get", self.b().get(&other, "shared").await).map(|e| e.value),
            Some(b"jb".to_vec()),
            "[{name}] clear of one namespace touched another"
        );
        // The namespace is usable after a clear.
        self.ok("put", self.b().put(&ns, "after", &entry(b"j1", None), None).await);
        assert!(self.ok("get", self.b().get(&ns, "after").await).is_some(), "[{name}] namespace unusable after clear");

        self.lock_checks(&ns).await;
        if self.real_time_expiry {
            self.ok("put", self.b().put(&ns, "short", &entry(b"j1", None), Some(Duration::from_secs(1))).await);
            let mut gone = false;
            for _ in 0..150 {
                if self.ok("get", self.b().get(&ns, "short").await).is_none() {
                    gone = true;
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            assert!(gone, "[{name}] an entry with a 1 s hard TTL was still there after 15 s");
        }
        self.ok("clear", self.b().clear(&ns).await);
        self.ok("clear", self.b().clear(&other).await);
    }

    async fn lock_checks(&self, ns: &str) {
        let name = self.b().name();
        let token = match self.ok("try_lock", self.b().try_lock(ns, "lk", Duration::from_secs(30)).await) {
            LockOutcome::Acquired(t) => t,
            LockOutcome::Unsupported => return,
            other => panic!("[{name}] a free lock answered {other:?}"),
        };
        assert_eq!(
            self.ok("try_lock", self.b().try_lock(ns, "lk", Duration::from_secs(30)).await),
            LockOutcome::Busy,
            "[{name}] a held lock was granted twice"
        );
        self.ok("unlock", self.b().unlock(ns, "lk", &LockToken("not-the-owner".into())).await);
        assert_eq!(
            self.ok("try_lock", self.b().try_lock(ns, "lk", Duration::from_secs(30)).await),
            LockOutcome::Busy,
            "[{name}] unlock with a foreign token released the lock"
        );
        self.ok("unlock", self.b().unlock(ns, "lk", &token).await);
        match self.ok("try_lock", self.b().try_lock(ns, "lk", Duration::from_secs(30)).await) {
            LockOutcome::Acquired(t) => self.ok("unlock", self.b().unlock(ns, "lk", &t).await),
            other => panic!("[{name}] lock not free after unlock: {other:?}"),
        }
        if self.real_time_expiry {
            let LockOutcome::Acquired(_) =
                self.ok("try_lock", self.b().try_lock(ns, "ttl", Duration::from_secs(1)).await)
            else {
                panic!("[{name}] free lock not granted");
            };
            for _ in 0..150 {
                if let LockOutcome::Acquired(t) = self.ok("try_lock", self.b().try_lock(ns, "ttl", HOUR).await) {
                    self.ok("unlock", self.b().unlock(ns, "ttl", &t).await);
                    return;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            panic!("[{name}] a lock with a 1 s TTL was still held after 15 s");
        }
    }
}
