//! The object store's principal index against the emulators (S3 on moto, Azure Blob on
//! Azurite): markers follow the records and go with them (end, delete, rename, cleanup),
//! stale markers are pruned once past the grace and never before, scans page through
//! every record once, and an end through the index is final under racing writes.
//! Servers and prefixes as in `object_store.rs`.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime};

use beaker_core::store::{Lookup, SessionHandle, SessionStore, StoreKey};
use beaker_core::StoreError;
use beaker_object_store::{ObjectSessionStore, ObjectStoreClient, ObjectStoreOptions};
use beaker_testkit::store::{
    changes, fresh_key, fresh_principal, key_set, listed_keys, owned, owner, record, scan_whole, with_owner, EndRace,
};
use common::*;
use futures_util::StreamExt as _;

const HOUR: Duration = Duration::from_secs(3600);
/// The device every owned session here is on.
const FIREFOX: Option<&str> = Some("Firefox");

/// The index's marker objects under the client's prefix, as `<principal hash>/<key>`.
async fn markers(client: &ObjectStoreClient) -> Vec<String> {
    let prefix = object_store::path::Path::from(format!("{}/principals", client.prefix().trim_matches('/')));
    let mut out: Vec<String> = client
        .object_store()
        .list(Some(&prefix))
        .filter_map(|m| async move { m.ok() })
        .map(|m| {
            m.location
                .parts()
                .skip(m.location.parts().count() - 2)
                .map(|p| p.as_ref().to_owned())
                .collect::<Vec<_>>()
                .join("/")
        })
        .collect()
        .await;
    out.sort();
    out
}

async fn follows_records(var: &str, suite: &str) {
    let options = ObjectStoreOptions::default().with_index_grace(Duration::ZERO);
    let Some(client) = client_with(var, suite, options).await else { return };
    let store = ObjectSessionStore::new(client.clone());
    let later = Some(SystemTime::now() + HOUR);
    let (alice, bob) = (fresh_principal(), fresh_principal());

    let (a, b) = (fresh_key(), fresh_key());
    assert!(store.create(&a, &owned(&alice, FIREFOX, later)).await.unwrap());
    assert!(store.create(&b, &record(&[], later)).await.unwrap());
    assert_eq!(store.load(&a).await.unwrap().unwrap().owner, Some(owner(&alice, FIREFOX)));
    assert_eq!(listed_keys(&store, &alice).await, key_set([&a]));
    assert_eq!(markers(&client).await.len(), 1);
    // Gaining an owner files the key; changing it moves the marker (after a load, the
    // write takes the remembered version: the same path as a request's).
    assert!(store.apply(&b, &with_owner(changes(&[], &[], later), owner(&alice, FIREFOX))).await.unwrap());
    assert_eq!(listed_keys(&store, &alice).await, key_set([&a, &b]));
    store.load(&b).await.unwrap();
    assert!(store.apply(&b, &with_owner(changes(&[], &[], later), owner(&bob, FIREFOX))).await.unwrap());
    assert_eq!(listed_keys(&store, &alice).await, key_set([&a]));
    assert_eq!(listed_keys(&store, &bob).await, key_set([&b]));
    assert_eq!(markers(&client).await.len(), 2);
    // Rename moves the marker; end and delete remove it.
    let moved = fresh_key();
    assert!(store.rename(&a, &moved, &changes(&[], &[], later), HOUR).await.unwrap());
    assert_eq!(listed_keys(&store, &alice).await, key_set([&moved]));
    assert_eq!(store.count().await.unwrap(), 2, "the tombstone is not counted");
    store.end(&moved, HOUR).await.unwrap();
    assert_eq!(store.lookup(&moved).await.unwrap(), Lookup::Retired);
    store.delete(&b).await.unwrap();
    assert!(listed_keys(&store, &alice).await.is_empty() && listed_keys(&store, &bob).await.is_empty());
    assert_eq!(markers(&client).await, Vec::<String>::new());
    // Expiry: not listed at once; cleanup removes the record and its marker.
    let short = fresh_key();
    assert!(store
        .create(&short, &owned(&alice, FIREFOX, Some(SystemTime::now() + Duration::from_secs(1))))
        .await
        .unwrap());
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let markers_before = markers(&client).await.len();
    assert_eq!(markers_before, 1);
    assert!(store.sessions_of(&alice).await.unwrap().is_empty());
    assert!(store.cleanup().await.unwrap() >= 1);
    assert_eq!(markers(&client).await, Vec::<String>::new());
    // A marker a crashed writer left (no record): skipped, then pruned, by listing and by cleanup.
    for prune in ["sessions_of", "cleanup"] {
        let orphan = fresh_key();
        assert!(store.create(&orphan, &owned(&alice, FIREFOX, later)).await.unwrap());
        delete_record(&client, &store, &orphan).await;
        assert_eq!(markers(&client).await.len(), 1, "{prune}");
        if prune == "sessions_of" {
            assert!(store.sessions_of(&alice).await.unwrap().is_empty());
        } else {
            store.cleanup().await.unwrap();
        }
        assert_eq!(markers(&client).await, Vec::<String>::new(), "{prune} pruned it");
    }
    wipe(&client).await;
}

/// Deletes a record object behind the store's back: what a crash between the marker and
/// the record leaves.
async fn delete_record(client: &ObjectStoreClient, store: &ObjectSessionStore, key: &StoreKey) {
    client.object_store().delete(&store.object_path(key)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn s3_index_follows_records() {
    follows_records("BEAKER_TEST_S3_URL", "s3 (moto) principal index").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn azure_index_follows_records() {
    follows_records("BEAKER_TEST_AZURE_URL", "azure (Azurite) principal index").await;
}

/// A marker younger than the grace is never pruned: it may belong to a write in flight.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn s3_young_markers_are_kept() {
    let Some(client) = client("BEAKER_TEST_S3_URL", "s3 (moto) principal index").await else { return };
    let store = ObjectSessionStore::new(client.clone());
    let principal = fresh_principal();
    let key = fresh_key();
    assert!(store.create(&key, &owned(&principal, FIREFOX, Some(SystemTime::now() + HOUR))).await.unwrap());
    delete_record(&client, &store, &key).await;
    assert!(store.sessions_of(&principal).await.unwrap().is_empty(), "not listed");
    store.cleanup().await.unwrap();
    assert_eq!(markers(&client).await.len(), 1, "kept within the grace");
    wipe(&client).await;
}

async fn scans(var: &str, suite: &str) {
    const RECORDS: usize = 300;
    const PAGE: usize = 7;
    let Some(client) = client(var, suite).await else { return };
    let store = ObjectSessionStore::new(client.clone());
    let later = Some(SystemTime::now() + HOUR);
    let keys: Vec<StoreKey> = (0..RECORDS).map(|_| fresh_key()).collect();
    let writes = futures_util::stream::iter(keys.iter().map(|k| {
        let store = store.clone();
        async move { assert!(store.create(k, &record(&[("n", b"j1")], later)).await.unwrap()) }
    }));
    writes.buffer_unordered(16).collect::<Vec<()>>().await;
    // Tombstones between the records.
    for _ in 0..30 {
        let ended = fresh_key();
        assert!(store.create(&ended, &record(&[], later)).await.unwrap());
        store.end(&ended, HOUR).await.unwrap();
    }
    assert_eq!(store.count().await.unwrap(), RECORDS as u64);
    let (seen, _) = scan_whole(&store, PAGE).await;
    assert_eq!(seen.len(), RECORDS, "each record exactly once");
    assert_eq!(seen.iter().map(String::as_str).collect::<BTreeSet<_>>(), keys.iter().map(StoreKey::as_str).collect());
    assert_eq!(store.find(&SessionHandle::of(&keys[RECORDS / 2])).await.unwrap().as_ref(), Some(&keys[RECORDS / 2]));
    assert_eq!(store.find(&SessionHandle::of(&fresh_key())).await.unwrap(), None);
    let err = store.scan(Some("../x"), 5).await.unwrap_err();
    assert!(matches!(err, StoreError::Rejected { .. }), "{err}");
    wipe(&client).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn s3_scans_every_record_once() {
    scans("BEAKER_TEST_S3_URL", "s3 (moto) scan").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn azure_scans_every_record_once() {
    scans("BEAKER_TEST_AZURE_URL", "azure (Azurite) scan").await;
}

async fn end_races_apply(var: &str, suite: &str) {
    // The emulators serve one request at a time on a shared machine: a generous timeout,
    // since this test is about revival, not latency.
    let options = ObjectStoreOptions::default().with_timeout(Duration::from_secs(15));
    let Some(client) = client_with(var, suite, options).await else { return };
    let store = ObjectSessionStore::new(client.clone());
    let race = EndRace {
        trials: 6,
        writers: 6,
        writes: 10,
        pause: Duration::from_millis(5),
        pause_cycle: 3,
        ..EndRace::default()
    };
    race.run(std::sync::Arc::new(store)).await;
    wipe(&client).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn s3_end_through_the_index_is_final() {
    end_races_apply("BEAKER_TEST_S3_URL", "s3 (moto) end via index").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn azure_end_through_the_index_is_final() {
    end_races_apply("BEAKER_TEST_AZURE_URL", "azure (Azurite) end via index").await;
}
