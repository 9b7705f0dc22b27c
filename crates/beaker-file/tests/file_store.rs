//! The file store against a real temporary directory: the published conformance suites,
//! then what is specific to files (layout, atomicity, expiry with an injected clock).

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use beaker_core::cache::{CacheBackend, CacheEntry};
use beaker_core::store::{SessionStore, StoreKey};
use beaker_core::{Clock, ManualClock, StoreError};
use beaker_file::{FileOptions, FileStore};
use beaker_testkit::store::{
    changes, fresh_key, now_ms, record, CacheBackendSuite, SessionIndexSuite, SessionStoreSuite,
};
use common::{files, leftovers};

const HOUR: Duration = Duration::from_secs(3600);

async fn open(dir: &Path) -> FileStore {
    FileStore::open(dir, FileOptions::new()).await.expect("open")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn session_conformance_suite() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path()).await;
    let sessions = dir.path().join("sessions");
    SessionStoreSuite::new(Arc::new(store))
        .with_corruptor(Box::new(move |k: StoreKey| {
            let path = sessions.join(k.as_str());
            Box::pin(async move { std::fs::write(path, b"BKR1 but then garbage").unwrap() })
        }))
        .run()
        .await;
    assert_eq!(leftovers(dir.path()), Vec::<String>::new(), "temporary files left behind");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn session_index_conformance_suite() {
    let dir = tempfile::tempdir().unwrap();
    SessionIndexSuite::new(Arc::new(open(dir.path()).await)).run().await;
    assert_eq!(leftovers(dir.path()), Vec::<String>::new(), "temporary files left behind");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cache_conformance_suite() {
    let dir = tempfile::tempdir().unwrap();
    CacheBackendSuite::new(Arc::new(open(dir.path()).await)).run().await;
    assert_eq!(leftovers(dir.path()), Vec::<String>::new(), "temporary files left behind");
}

#[tokio::test]
async fn sessions_survive_reopening_the_directory() {
    let dir = tempfile::tempdir().unwrap();
    let k = fresh_key();
    let r = record(&[("user", b"j\"ada\"")], Some(now_ms() + HOUR));
    assert!(open(dir.path()).await.create(&k, &r).await.unwrap());
    let reopened = open(dir.path()).await;
    assert_eq!(reopened.load(&k).await.unwrap(), Some(r));
}

#[tokio::test]
async fn expiry_follows_the_injected_clock_and_cleanup_removes_expired_files() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new();
    let store = FileStore::open(dir.path(), FileOptions::new().clock(clock.clone())).await.unwrap();
    let now = clock.now();
    let (short, long, forever) = (fresh_key(), fresh_key(), fresh_key());
    assert!(store.create(&short, &record(&[("a", b"j1")], Some(now + Duration::from_secs(60)))).await.unwrap());
    assert!(store.create(&long, &record(&[("a", b"j1")], Some(now + HOUR))).await.unwrap());
    assert!(store.create(&forever, &record(&[("a", b"j1")], None)).await.unwrap());

    // Touch moves the expiry: the short session outlives its original 60 s.
    assert!(store.touch(&short, now, Some(now + Duration::from_secs(120))).await.unwrap());
    clock.advance(Duration::from_secs(90));
    assert!(store.load(&short).await.unwrap().is_some(), "touch did not extend the expiry");

    clock.advance(Duration::from_secs(60));
    assert!(store.load(&short).await.unwrap().is_none(), "an expired record was returned");
    assert!(
        !store.apply(&short, &changes(&[("b", b"j2")], &[], None)).await.unwrap(),
        "apply revived an expired record"
    );
    assert!(!store.touch(&short, now, None).await.unwrap(), "touch revived an expired record");
    assert!(dir.path().join("sessions").join(short.as_str()).exists(), "expired file should wait for cleanup");

    assert_eq!(store.cleanup().await.unwrap(), 1);
    assert!(!dir.path().join("sessions").join(short.as_str()).exists());
    assert!(store.load(&long).await.unwrap().is_some());
    assert!(store.load(&forever).await.unwrap().is_some());
    // An expired record may be replaced by create.
    clock.advance(2 * HOUR);
    assert!(store.create(&long, &record(&[("new", b"j")], None)).await.unwrap());
    assert_eq!(store.load(&long).await.unwrap().unwrap().entries.keys().collect::<Vec<_>>(), vec!["new"]);
}

#[tokio::test]
async fn cache_hard_ttl_follows_the_injected_clock() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new();
    let store = FileStore::open(dir.path(), FileOptions::new().clock(clock.clone())).await.unwrap();
    let stale = CacheEntry { value: b"j1".to_vec(), stored_at: clock.now(), fresh_until: Some(clock.now()) };
    store.put("ns", "short", &stale, Some(Duration::from_secs(10))).await.unwrap();
    store.put("ns", "long", &stale, Some(HOUR)).await.unwrap();
    store.put("ns", "none", &stale, None).await.unwrap();
    assert_eq!(store.get("ns", "short").await.unwrap(), Some(stale.clone()), "stale entries stay readable");
    clock.advance(Duration::from_secs(11));
    assert_eq!(store.get("ns", "short").await.unwrap(), None, "an entry past its hard TTL was returned");
    assert_eq!(store.cleanup_cache().await.unwrap(), 1);
    assert_eq!(store.get("ns", "long").await.unwrap(), Some(stale.clone()));
    assert_eq!(store.get("ns", "none").await.unwrap(), Some(stale));
    assert_eq!(files(&dir.path().join("cache")).len(), 2);
}

#[tokio::test]
async fn namespaces_and_keys_never_escape_the_directory() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("store");
    let store = open(&root).await;
    let e = CacheEntry { value: b"j1".to_vec(), stored_at: now_ms(), fresh_until: None };
    for (ns, k) in [("../../escape", "../../../x"), ("/etc", "/etc/passwd"), ("a\0b", "\u{202e}.."), ("", "")] {
        store.put(ns, k, &e, None).await.unwrap();
        assert_eq!(store.get(ns, k).await.unwrap(), Some(e.clone()), "{ns:?}/{k:?}");
    }
    assert_eq!(
        files(dir.path()).iter().filter(|f| !f.starts_with("store/cache/")).count(),
        0,
        "{:?}",
        files(dir.path())
    );
}

#[tokio::test]
async fn concurrent_applies_of_different_keys_all_survive() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path()).await;
    let k = fresh_key();
    assert!(store.create(&k, &record(&[], Some(now_ms() + HOUR))).await.unwrap());
    let tasks: Vec<_> = (0..50)
        .map(|i| {
            let (store, k) = (store.clone(), k.clone());
            tokio::spawn(async move {
                store.apply(&k, &changes(&[(&format!("k{i}"), b"j")], &[], Some(now_ms() + HOUR))).await
            })
        })
        .collect();
    for t in tasks {
        assert!(t.await.unwrap().unwrap());
    }
    assert_eq!(store.load(&k).await.unwrap().unwrap().entries.len(), 50);
}

#[tokio::test]
async fn a_corrupt_session_file_is_reported_and_can_be_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path()).await;
    let k = fresh_key();
    std::fs::write(dir.path().join("sessions").join(k.as_str()), b"\x00\x01garbage").unwrap();
    assert!(matches!(store.load(&k).await, Err(StoreError::Corrupt { .. })));
    assert!(matches!(store.apply(&k, &changes(&[("a", b"j")], &[], None)).await, Err(StoreError::Corrupt { .. })));
    // Cleanup leaves it for inspection; create may replace it (it is no live record).
    assert_eq!(store.cleanup().await.unwrap(), 0);
    assert!(store.create(&k, &record(&[("a", b"j1")], None)).await.unwrap());
    assert!(store.load(&k).await.unwrap().is_some());
}

#[tokio::test]
async fn an_unwritable_directory_is_unavailable_and_leaves_no_partial_files() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path()).await;
    let k = fresh_key();
    let r = record(&[("a", b"j1")], None);
    assert!(store.create(&k, &r).await.unwrap());

    // Tests may run as root, which ignores permission bits: make the sessions directory
    // unusable by putting a regular file in its place instead.
    let sessions = dir.path().join("sessions");
    std::fs::rename(&sessions, dir.path().join("moved")).unwrap();
    std::fs::write(&sessions, b"not a directory").unwrap();
    let err = store.create(&fresh_key(), &r).await.unwrap_err();
    assert!(err.is_unavailable(), "{err}");
    let err = store.apply(&k, &changes(&[("b", b"j2")], &[], None)).await.unwrap_err();
    assert!(err.is_unavailable(), "{err}");
    assert!(!err.to_string().contains(k.as_str()), "the store key leaked into an error message: {err}");
    let err = FileStore::open(&sessions, FileOptions::new()).await.unwrap_err();
    assert!(err.is_unavailable(), "{err}");

    std::fs::remove_file(&sessions).unwrap();
    std::fs::rename(dir.path().join("moved"), &sessions).unwrap();
    assert_eq!(store.load(&k).await.unwrap(), Some(r), "the old record was damaged by the failed writes");
    assert_eq!(leftovers(dir.path()), Vec::<String>::new());
}

#[tokio::test]
async fn cleanup_removes_abandoned_temporary_files_only_when_old() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new();
    let store = FileStore::open(dir.path(), FileOptions::new().clock(clock.clone())).await.unwrap();
    let abandoned = dir.path().join("sessions").join(".tmp.0123456789abcdef01234567");
    std::fs::write(&abandoned, b"half a record").unwrap();
    store.cleanup().await.unwrap();
    assert!(abandoned.exists(), "a temporary file in use by a writer was removed");
    clock.advance(2 * HOUR);
    store.cleanup().await.unwrap();
    assert!(!abandoned.exists(), "an abandoned temporary file survived cleanup");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn lifecycle_races_on_the_file_store() {
    let dir = tempfile::tempdir().unwrap();
    let manager = beaker_testkit::fixtures::manager_on(std::sync::Arc::new(open(dir.path()).await));
    beaker_testkit::lifecycle::LifecycleRaceSuite::new(manager).run().await;
    assert_eq!(leftovers(dir.path()), Vec::<String>::new(), "temporary files left behind");
}

#[tokio::test]
async fn a_tombstone_lapses_and_cleanup_removes_its_file() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new();
    let store = FileStore::open(dir.path(), FileOptions::new().clock(clock.clone())).await.unwrap();
    let k = fresh_key();
    assert!(store.create(&k, &record(&[("user", b"j\"ada\"")], None)).await.unwrap());
    store.end(&k, Duration::from_secs(60)).await.unwrap();
    assert_eq!(store.lookup(&k).await.unwrap(), beaker_core::store::Lookup::Retired);
    assert_eq!(files(&dir.path().join("sessions")).len(), 1, "the tombstone is a file");
    assert_eq!(store.cleanup().await.unwrap(), 0, "a live tombstone must stay");
    clock.advance(Duration::from_secs(61));
    assert_eq!(store.lookup(&k).await.unwrap(), beaker_core::store::Lookup::Missing);
    assert_eq!(store.cleanup().await.unwrap(), 1);
    assert!(files(&dir.path().join("sessions")).is_empty(), "a lapsed tombstone stayed on disk");
}
