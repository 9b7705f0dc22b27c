//! The `beaker_*` counters, read through a recorder of the `metrics` facade installed for
//! the managers under test: each event of a session's and a cache region's life moves its
//! counter by exactly one.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use beaker_core::cache::CacheManager;
use beaker_core::config::{CacheConfig, RegionConfig};
use beaker_core::store::{async_trait, Changes, Record, SessionStore, StoreKey};
use beaker_core::{MemoryStore, SessionConfig, SessionManager, StoreError};
use metrics::{Counter, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit};

/// Counters by `name{label=value,...}`.
#[derive(Debug, Default, Clone)]
struct Counts(Arc<Mutex<BTreeMap<String, Arc<AtomicU64>>>>);

impl Counts {
    fn get(&self, series: &str) -> u64 {
        self.0.lock().unwrap().get(series).map_or(0, |c| c.load(Ordering::Relaxed))
    }
}

impl Recorder for Counts {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}

    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        let labels: Vec<String> = key.labels().map(|l| format!("{}={}", l.key(), l.value())).collect();
        let series = format!("{}{{{}}}", key.name(), labels.join(","));
        Counter::from_arc(self.0.lock().unwrap().entry(series).or_default().clone())
    }

    fn register_gauge(&self, _: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::noop()
    }

    fn register_histogram(&self, _: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::noop()
    }
}

/// A memory store that can be switched off, to count store errors.
#[derive(Debug, Clone)]
struct Flaky {
    inner: MemoryStore,
    down: Arc<AtomicBool>,
}

impl Flaky {
    fn check(&self) -> Result<(), StoreError> {
        if self.down.load(Ordering::SeqCst) {
            Err(StoreError::Unavailable { message: "switched off by the test".into(), source: None })
        } else {
            Ok(())
        }
    }
}

#[async_trait]
impl SessionStore for Flaky {
    async fn load(&self, key: &StoreKey) -> Result<Option<Record>, StoreError> {
        self.check()?;
        self.inner.load(key).await
    }
    async fn create(&self, key: &StoreKey, record: &Record) -> Result<bool, StoreError> {
        self.check()?;
        self.inner.create(key, record).await
    }
    async fn apply(&self, key: &StoreKey, changes: &Changes) -> Result<bool, StoreError> {
        self.check()?;
        self.inner.apply(key, changes).await
    }
    async fn touch(&self, key: &StoreKey, at: SystemTime, expires: Option<SystemTime>) -> Result<bool, StoreError> {
        self.check()?;
        self.inner.touch(key, at, expires).await
    }
    async fn delete(&self, key: &StoreKey) -> Result<(), StoreError> {
        self.check()?;
        self.inner.delete(key).await
    }
    fn name(&self) -> &'static str {
        "flaky"
    }
}

fn cookie_of(set_cookies: &[beaker_core::SetCookie]) -> String {
    set_cookies[0].as_str().split(';').next().unwrap().to_owned()
}

#[tokio::test]
async fn session_events_move_their_counters() {
    let counts = Counts::default();
    let down = Arc::new(AtomicBool::new(false));
    let store = Flaky { inner: MemoryStore::new(), down: down.clone() };
    let config = SessionConfig::new().with_secret("a secret of at least 16 bytes").unwrap();
    let manager =
        metrics::with_local_recorder(&counts, || SessionManager::builder(config).store(store).build()).unwrap();
    let c = |name: &str| counts.get(&format!("beaker_{name}_total{{store=flaky}}"));

    let s = manager.start(std::iter::empty::<&str>());
    s.insert("n", &1).await.unwrap();
    let cookie = cookie_of(&manager.finish(&s).await.unwrap());
    assert_eq!((c("sessions_created"), c("sessions_saved"), c("sessions_loaded")), (1, 1, 0));

    let s = manager.start([cookie.as_str()]);
    assert_eq!(s.get::<i32>("n").await.unwrap(), Some(1));
    s.insert("n", &2).await.unwrap();
    manager.finish(&s).await.unwrap();
    assert_eq!((c("sessions_created"), c("sessions_saved"), c("sessions_loaded")), (1, 2, 1));

    // A read-only request loads and saves nothing.
    let s = manager.start([cookie.as_str()]);
    s.get::<i32>("n").await.unwrap();
    assert!(manager.finish(&s).await.unwrap().is_empty());
    assert_eq!((c("sessions_saved"), c("sessions_loaded")), (2, 2));

    let tampered = format!("{}x", cookie);
    let s = manager.start([tampered.as_str()]);
    assert_eq!(s.get::<i32>("n").await.unwrap(), None);
    assert_eq!(c("session_cookies_rejected"), 1);
    // Checked again, not remembered: only verified cookies are.
    let s = manager.start([tampered.as_str()]);
    assert_eq!(s.get::<i32>("n").await.unwrap(), None);
    assert_eq!(c("session_cookies_rejected"), 2);

    down.store(true, Ordering::SeqCst);
    let s = manager.start([cookie.as_str()]);
    assert!(s.get::<i32>("n").await.is_err());
    assert_eq!(counts.get("beaker_session_store_errors_total{store=flaky,op=lookup}"), 1, "a session's load");
    assert_eq!(counts.get("beaker_session_store_errors_total{store=flaky,op=apply}"), 0);
    down.store(false, Ordering::SeqCst);

    let s = manager.start([cookie.as_str()]);
    s.invalidate().await.unwrap();
    manager.finish(&s).await.unwrap();
    assert_eq!(c("sessions_ended"), 1);
    assert_eq!(c("sessions_created"), 1, "ending creates nothing");
}

#[tokio::test]
async fn cache_events_move_their_counters() {
    let counts = Counts::default();
    let config = CacheConfig::new().with_region("short", RegionConfig::memory(None));
    let caches = metrics::with_local_recorder(&counts, || CacheManager::new(config)).unwrap();
    let region = caches.region("short").unwrap();
    let c = |name: &str| counts.get(&format!("beaker_cache_{name}_total{{region=short,store=memory}}"));

    let v: u32 = region.get_or_create("k", || async { Ok::<_, std::io::Error>(7) }).await.unwrap();
    assert_eq!(v, 7);
    assert_eq!((c("misses"), c("creations"), c("hits")), (1, 1, 0));
    let v: u32 = region.get_or_create("k", || async { Ok::<_, std::io::Error>(8) }).await.unwrap();
    assert_eq!(v, 7);
    assert_eq!((c("misses"), c("creations"), c("hits")), (1, 1, 1));
    let failed = region.get_or_create::<u32, _, _, _>("e", || async { Err(std::io::Error::other("no")) }).await;
    assert!(failed.is_err());
    assert_eq!(c("errors"), 1);

    // Twenty callers at once for a missing key: one creator, the others wait for it.
    let region2 = region.clone();
    let runs = (0..20).map(|_| {
        let r = region2.clone();
        tokio::spawn(async move {
            r.get_or_create("slow", || async {
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                Ok::<_, std::io::Error>(1u32)
            })
            .await
            .unwrap()
        })
    });
    for run in runs.collect::<Vec<_>>() {
        assert_eq!(run.await.unwrap(), 1);
    }
    assert_eq!(c("creations"), 2, "one creator for twenty callers");
    assert_eq!(c("lock_waits"), 19, "the other nineteen waited for it");
    assert_eq!(region.stats().lock_waits, 19, "Region::stats counts the same");
}
