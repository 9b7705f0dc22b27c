//! The file store's principal index and enumeration against a real temporary directory:
//! the marker files follow the records (and nothing is left once they go), stale markers
//! are pruned, scans list every record once in name order with tombstones and expired
//! records in between, and an end through the index is final under racing writes.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, SystemTime};

use beaker_core::store::{Lookup, SessionHandle, SessionStore, StoreKey};
use beaker_core::{Clock, ManualClock, StoreError};
use beaker_file::{FileOptions, FileStore};
use beaker_testkit::store::{
    changes, fresh_key, fresh_principal, key_set, listed_keys, owned, owner, record, scan_whole, with_owner, EndRace,
};
use common::{files, leftovers};

const HOUR: Duration = Duration::from_secs(3600);

/// The marker files of the principal index, as `<principal dir>/<key>`.
fn markers(dir: &Path) -> Vec<String> {
    files(&dir.join("principals"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_index_follows_the_records_and_leaves_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new();
    let store = FileStore::open(dir.path(), FileOptions::new().clock(clock.clone())).await.unwrap();
    let later = Some(clock.now() + HOUR);
    let (alice, bob) = (fresh_principal(), fresh_principal());

    let (a, b) = (fresh_key(), fresh_key());
    assert!(store.create(&a, &owned(&alice, Some("Firefox"), later)).await.unwrap());
    assert!(store.create(&b, &record(&[], later)).await.unwrap());
    assert_eq!(store.load(&a).await.unwrap().unwrap().owner, Some(owner(&alice, Some("Firefox"))));
    assert_eq!(listed_keys(&store, &alice).await, key_set([&a]));
    assert_eq!(markers(dir.path()).len(), 1, "one marker, for the owned session only");

    // Gaining an owner files the key; changing it moves the marker.
    assert!(store.apply(&b, &with_owner(changes(&[], &[], later), owner(&alice, None))).await.unwrap());
    assert_eq!(listed_keys(&store, &alice).await, key_set([&a, &b]));
    assert!(store.apply(&b, &with_owner(changes(&[], &[], later), owner(&bob, None))).await.unwrap());
    assert_eq!(listed_keys(&store, &alice).await, key_set([&a]));
    assert_eq!(listed_keys(&store, &bob).await, key_set([&b]));
    assert!(store.touch(&b, clock.now(), later).await.unwrap());
    assert_eq!(listed_keys(&store, &bob).await, key_set([&b]), "touch leaves the index alone");
    assert_eq!(markers(dir.path()).len(), 2);

    // Rename moves the marker with the record.
    let moved = fresh_key();
    assert!(store.rename(&a, &moved, &changes(&[], &[], later), HOUR).await.unwrap());
    assert_eq!(listed_keys(&store, &alice).await, key_set([&moved]));
    assert!(markers(dir.path()).iter().all(|m| !m.ends_with(a.as_str())), "{:?}", markers(dir.path()));

    // End and delete remove the marker with the record.
    store.end(&moved, HOUR).await.unwrap();
    assert_eq!(store.lookup(&moved).await.unwrap(), Lookup::Retired);
    store.delete(&b).await.unwrap();
    assert!(listed_keys(&store, &alice).await.is_empty() && listed_keys(&store, &bob).await.is_empty());
    assert_eq!(markers(dir.path()), Vec::<String>::new());

    // An expired record is not listed; cleanup removes its file and its marker, and the
    // principal's directory once empty.
    let short = fresh_key();
    assert!(store
        .create(&short, &owned(&alice, Some("Firefox"), Some(clock.now() + Duration::from_secs(60))))
        .await
        .unwrap());
    clock.advance(Duration::from_secs(61));
    assert_eq!(store.count().await.unwrap(), 0);
    assert!(store.cleanup().await.unwrap() >= 1);
    assert_eq!(markers(dir.path()), Vec::<String>::new());
    assert_eq!(std::fs::read_dir(dir.path().join("principals")).unwrap().count(), 0, "empty directories removed");
    assert_eq!(leftovers(dir.path()), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_markers_are_pruned_by_listing_and_by_cleanup() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::open(dir.path(), FileOptions::new()).await.unwrap();
    let later = Some(SystemTime::now() + HOUR);
    let principal = fresh_principal();
    let live = fresh_key();
    assert!(store.create(&live, &owned(&principal, Some("Firefox"), later)).await.unwrap());
    let principal_dir = dir.path().join("principals").join(markers(dir.path())[0].split('/').next().unwrap());
    // What a writer that crashed between its marker and its record leaves behind.
    let orphan = fresh_key();
    std::fs::write(principal_dir.join(orphan.as_str()), b"").unwrap();
    assert_eq!(listed_keys(&store, &principal).await, key_set([&live]), "the orphan is not listed");
    assert!(!principal_dir.join(orphan.as_str()).exists(), "listing pruned it");
    // A marker filed under the wrong principal (its record belongs to someone else).
    let other = fresh_key();
    assert!(store.create(&other, &owned(&fresh_principal(), Some("Firefox"), later)).await.unwrap());
    std::fs::write(principal_dir.join(other.as_str()), b"").unwrap();
    std::fs::write(principal_dir.join(orphan.as_str()), b"").unwrap();
    assert_eq!(store.cleanup().await.unwrap(), 0);
    assert!(!principal_dir.join(orphan.as_str()).exists() && !principal_dir.join(other.as_str()).exists());
    assert_eq!(listed_keys(&store, &principal).await, key_set([&live]));
    assert_eq!(markers(dir.path()).len(), 2, "the live records keep theirs");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn any_principal_is_a_safe_name() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::open(dir.path(), FileOptions::new()).await.unwrap();
    let later = Some(SystemTime::now() + HOUR);
    for principal in ["../../etc/passwd", "a/b\\c", "", "Zoë 👩‍💻", &"x".repeat(5000)] {
        let key = fresh_key();
        assert!(store.create(&key, &owned(principal, Some("Firefox"), later)).await.unwrap(), "{principal:?}");
        assert_eq!(listed_keys(&store, principal).await, key_set([&key]), "{principal:?}");
    }
    assert_eq!(listed_keys(&store, "alice").await, BTreeSet::new());
    assert!(markers(dir.path()).iter().all(|m| m.split('/').count() == 2));
    assert!(files(dir.path()).iter().all(|f| f.starts_with("sessions/") || f.starts_with("principals/")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scans_list_every_record_once_in_small_pages() {
    const RECORDS: usize = 2000;
    const PAGE: usize = 37;
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new();
    let store = FileStore::open(dir.path(), FileOptions::new().clock(clock.clone())).await.unwrap();
    let later = Some(clock.now() + HOUR);
    let keys: Vec<StoreKey> = (0..RECORDS).map(|_| fresh_key()).collect();
    for key in &keys {
        assert!(store.create(key, &record(&[("n", b"j1")], later)).await.unwrap());
    }
    // Runs of tombstones and expired records between the live ones.
    for _ in 0..300 {
        let key = fresh_key();
        assert!(store.create(&key, &record(&[], Some(clock.now() + Duration::from_secs(1)))).await.unwrap());
        let ended = fresh_key();
        assert!(store.create(&ended, &record(&[], later)).await.unwrap());
        store.end(&ended, HOUR).await.unwrap();
    }
    clock.advance(Duration::from_secs(2));
    assert_eq!(store.count().await.unwrap(), RECORDS as u64);
    let (seen, _) = scan_whole(&store, PAGE).await;
    assert_eq!(seen.len(), RECORDS, "each record exactly once");
    assert!(seen.windows(2).all(|w| w[0] < w[1]), "in name order");
    assert_eq!(seen.iter().map(String::as_str).collect::<BTreeSet<_>>(), keys.iter().map(StoreKey::as_str).collect());
    for key in keys.iter().step_by(499) {
        assert_eq!(store.find(&SessionHandle::of(key)).await.unwrap().as_ref(), Some(key));
    }
    assert_eq!(store.find(&SessionHandle::of(&fresh_key())).await.unwrap(), None);
    let err = store.scan(Some("../sessions"), 10).await.unwrap_err();
    assert!(matches!(err, StoreError::Rejected { .. }), "{err}");
    assert_eq!(store.scan(None, 0).await.unwrap().items.len(), 1, "a zero limit still makes progress");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_end_through_the_index_is_final_under_racing_writes() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::open(dir.path(), FileOptions::new()).await.unwrap();
    let race = EndRace { trials: 20, pause_cycle: 4, ..EndRace::default() };
    race.run(std::sync::Arc::new(store)).await;
    assert_eq!(markers(dir.path()), Vec::<String>::new());
}

/// 100 000 session files (written directly) scanned in pages of 1000 through the store:
/// each listed once, memory bounded by the page. Slow on a shared machine, so run by hand:
/// `cargo test -p beaker-file --test index -- --ignored`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn scans_a_hundred_thousand_sessions() {
    const RECORDS: usize = 100_000;
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::open(dir.path(), FileOptions::new()).await.unwrap();
    let bytes = record(&[("n", b"j1")], Some(SystemTime::now() + HOUR)).to_bytes();
    for _ in 0..RECORDS {
        std::fs::write(dir.path().join("sessions").join(fresh_key().as_str()), &bytes).unwrap();
    }
    let started = std::time::Instant::now();
    let (listed, pages) = scan_whole(&store, 1000).await;
    let seen: BTreeSet<String> = listed.iter().cloned().collect();
    assert_eq!(seen.len(), listed.len(), "listed twice");
    let took = started.elapsed();
    assert_eq!(seen.len(), RECORDS);
    eprintln!("scanned {RECORDS} sessions in {pages} pages of 1000 in {took:?}");
}
