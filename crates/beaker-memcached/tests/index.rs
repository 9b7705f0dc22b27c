//! The principal index of `MemcachedStore` against a real memcached: the owner's round
//! trip, the index following every write, its item expiring with its latest session,
//! `end` racing `apply` through the index, two processes racing on one index, the
//! testkit's index suite, and scans over `lru_crawler metadump`.

mod common;

use std::collections::HashSet;
use std::time::{Duration, SystemTime};

use beaker_core::store::{SessionHandle, SessionStore, StoreKey};
use beaker_core::StoreError;
use beaker_memcached::MemcachedStore;
use beaker_testkit::store::{
    changes, fresh_key, key_set, listed_keys, owned, owner, record, with_owner, EndRace, SessionIndexSuite, OWNED_ENTRY,
};
use common::{connect, options, server, two_processes};
use memcache::exp::Get;

const RETIRE: Duration = Duration::from_secs(60);

/// The device of every owned session here.
const DEVICE: Option<&str> = Some("Firefox on 203.0.113.7");

async fn store(tag: &str) -> Option<(common::Server, MemcachedStore, String)> {
    let suite = "memcached index";
    let server = server(suite).await?;
    let opts = options(tag);
    let client = connect(suite, &server.url, opts.clone()).await?;
    Some((server, MemcachedStore::new(client), opts.session_prefix))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_owner_round_trips_and_the_index_follows_every_write() {
    let Some((_server, store, _)) = store("index").await else { return };
    let soon = Some(SystemTime::now() + Duration::from_secs(30));
    let (p, q) = (format!("p {}", fresh_key().as_str()), format!("Зоя {}", fresh_key().as_str()));
    let [a, b, c] = [fresh_key(), fresh_key(), fresh_key()];
    let r = owned(&p, DEVICE, soon);
    assert!(store.create(&a, &r).await.unwrap());
    assert_eq!(store.load(&a).await.unwrap().unwrap().owner, r.owner);
    assert!(store.create(&b, &owned(&p, DEVICE, soon)).await.unwrap());
    assert!(store.create(&c, &record(&[], soon)).await.unwrap());
    assert_eq!(listed_keys(&store, &p).await, key_set([&a, &b]));
    let one = store.sessions_of(&p).await.unwrap().into_iter().find(|l| l.key == a).unwrap();
    assert_eq!((one.owner, one.size), (r.owner.clone(), (OWNED_ENTRY.0.len() + OWNED_ENTRY.1.len()) as u64));

    // Changes without an owner keep it; an owner given later files the session; a new
    // owner moves it.
    assert!(store.apply(&a, &changes(&[("n", b"1")], &[], soon)).await.unwrap());
    assert_eq!(store.load(&a).await.unwrap().unwrap().owner, r.owner);
    assert!(store.apply(&c, &with_owner(changes(&[], &[], soon), owner(&p, None))).await.unwrap());
    assert_eq!(listed_keys(&store, &p).await, key_set([&a, &b, &c]));
    assert!(store.apply(&c, &with_owner(changes(&[], &[], soon), owner(&q, None))).await.unwrap());
    assert_eq!(store.load(&c).await.unwrap().unwrap().owner, Some(owner(&q, None)));
    assert_eq!(listed_keys(&store, &p).await, key_set([&a, &b]));
    assert_eq!(listed_keys(&store, &q).await, key_set([&c]));

    // rename lists the new key in place of the old; end and delete take keys out.
    let a2 = fresh_key();
    assert!(store.rename(&a, &a2, &changes(&[], &[], soon), RETIRE).await.unwrap());
    assert_eq!(listed_keys(&store, &p).await, key_set([&a2, &b]));
    store.end(&a2, RETIRE).await.unwrap();
    assert!(!store.apply(&a2, &with_owner(changes(&[], &[], soon), owner(&p, None))).await.unwrap());
    store.delete(&b).await.unwrap();
    assert!(store.sessions_of(&p).await.unwrap().is_empty());
    store.delete(&c).await.unwrap();
    assert!(store.sessions_of(&q).await.unwrap().is_empty());
    assert!(store.sessions_of("nobody at all").await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_index_item_expires_with_its_latest_session() {
    let Some((server, store, prefix)) = store("index-ttl").await else { return };
    let raw = server.raw().await;
    let p = format!("ttl-{}", fresh_key().as_str());
    let ikey = format!("{prefix}principal:{p}");
    let index_exists = || {
        let raw = raw.clone();
        let get = Get::new(ikey.clone());
        async move { raw.run(get).await.unwrap().value.is_some() }
    };
    let now = SystemTime::now();
    let (short, long) = (fresh_key(), fresh_key());
    assert!(store.create(&short, &owned(&p, DEVICE, Some(now + Duration::from_secs(1)))).await.unwrap());
    assert!(store.create(&long, &owned(&p, DEVICE, Some(now + Duration::from_secs(3)))).await.unwrap());
    assert!(index_exists().await);
    // A touch carries the index along with the session it extends.
    assert!(store.touch(&short, SystemTime::now(), Some(now + Duration::from_secs(5))).await.unwrap());
    tokio::time::sleep(Duration::from_millis(3500)).await;
    assert_eq!(listed_keys(&store, &p).await, key_set([&short]), "the index lost a live session");
    tokio::time::sleep(Duration::from_millis(3000)).await;
    assert!(store.sessions_of(&p).await.unwrap().is_empty());
    assert!(!index_exists().await, "the index outlived its sessions");
}

/// Sign-out-everywhere through the index while requests keep writing and logging in
/// again: every listed session ends and stays ended, and none is listed again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_racing_end_through_the_index_never_revives() {
    let Some((_server, store, _)) = store("index-race").await else { return };
    let race = EndRace {
        trials: 20,
        sessions: 3,
        writers: 3,
        writes: 10,
        pause: Duration::from_micros(300),
        relogin: true,
        // Nine writers on three records and one index: a writer may run out of CAS
        // retries, which says so; never a lost write.
        contended: |e| matches!(e, StoreError::Unavailable { message, .. } if message.contains("CAS")),
        ..EndRace::default()
    };
    race.run(std::sync::Arc::new(store)).await;
}

/// Two processes filing sessions of one principal at once: the CAS loop loses none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_filing_one_principal_lose_no_session() {
    let suite = "memcached index processes";
    let Some(server) = server(suite).await else { return };
    let Some((a, b)) = two_processes(suite, &server, &options("index-procs")).await else { return };
    let (a, b) = (MemcachedStore::new(a), MemcachedStore::new(b));
    let p = format!("shared-{}", fresh_key().as_str());
    let soon = Some(SystemTime::now() + Duration::from_secs(60));
    let keys: Vec<StoreKey> = (0..40).map(|_| fresh_key()).collect();
    let each = keys.iter().enumerate().map(|(i, k)| {
        let store = if i % 2 == 0 { a.clone() } else { b.clone() };
        let r = owned(&p, DEVICE, soon);
        let k = k.clone();
        tokio::spawn(async move { store.create(&k, &r).await.unwrap() })
    });
    for created in futures_util::future::join_all(each).await {
        assert!(created.unwrap());
    }
    assert_eq!(listed_keys(&a, &p).await, key_set(&keys));
    for k in &keys {
        a.delete(k).await.unwrap();
    }
    assert!(b.sessions_of(&p).await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passes_the_index_suite() {
    let Some((_server, store, _)) = store("index-suite").await else { return };
    SessionIndexSuite::new(std::sync::Arc::new(store)).run().await;
}

/// `lru_crawler metadump` lists the server's items in no stable order and cannot resume:
/// pages still list each live session once, within their limit, and never a tombstone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scans_list_each_session_once_in_bounded_pages() {
    let Some((_server, store, _)) = store("index-scan").await else { return };
    let soon = Some(SystemTime::now() + Duration::from_secs(60));
    let keys: Vec<StoreKey> = (0..2000).map(|_| fresh_key()).collect();
    for chunk in keys.chunks(200) {
        let each = chunk.iter().map(|k| {
            let r = if k.as_str().ends_with(['a', 'b']) { owned("scanned", DEVICE, soon) } else { record(&[], soon) };
            let store = &store;
            async move { store.create(k, &r).await }
        });
        for created in futures_util::future::join_all(each).await {
            assert!(created.unwrap());
        }
    }
    let ended: HashSet<StoreKey> = keys.iter().step_by(10).cloned().collect();
    for k in &ended {
        store.end(k, RETIRE).await.unwrap();
    }
    let live: HashSet<StoreKey> = keys.iter().filter(|k| !ended.contains(k)).cloned().collect();
    assert_eq!(store.count().await.unwrap(), live.len() as u64);

    let mut seen = HashSet::new();
    let mut cursor = None::<String>;
    loop {
        // Reads in between move items in memcached's LRU: the next dump has another order.
        let _ = store.load(keys.last().unwrap()).await.unwrap();
        let page = store.scan(cursor.as_deref(), 250).await.unwrap();
        assert!(page.items.len() <= 250, "a page of {} items", page.items.len());
        assert!(!page.items.is_empty() || page.next.is_none(), "an empty page before the end");
        for item in page.items {
            assert!(seen.insert(item.key.clone()), "{:?} listed twice", item.key);
        }
        match page.next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert_eq!(seen, live, "a scan lists exactly the live sessions");
    // One page larger than the store: everything at once, reads bounded in flight.
    let whole = store.scan(None, 5000).await.unwrap();
    assert_eq!(whole.next, None);
    assert_eq!(whole.items.into_iter().map(|l| l.key).collect::<HashSet<_>>(), live);

    let target = live.iter().next().unwrap();
    assert_eq!(store.find(&SessionHandle::of(target)).await.unwrap().as_ref(), Some(target));
    assert_eq!(store.find(&SessionHandle::of(ended.iter().next().unwrap())).await.unwrap(), None);
    for bad in ["", "garbage", "m1/5/abc", "m1/0/a b"] {
        assert!(matches!(store.scan(Some(bad), 10).await, Err(StoreError::Rejected { .. })), "{bad:?}");
    }
    for k in &keys {
        store.delete(k).await.unwrap();
    }
    assert_eq!(store.count().await.unwrap(), 0);
}

/// Reading a session makes memcached move its item between LRU queues in the background;
/// a listing taken right after must still see every session (the dump walks the hash
/// table, not the queues).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listing_right_after_reads_sees_every_session() {
    let Some((_server, store, _)) = store("index-fresh").await else { return };
    let soon = Some(SystemTime::now() + Duration::from_secs(60));
    for trial in 0..30 {
        let keys: HashSet<StoreKey> = (0..6).map(|_| fresh_key()).collect();
        for k in &keys {
            assert!(store.create(k, &owned("fresh", DEVICE, soon)).await.unwrap());
        }
        for _ in 0..3 {
            for k in &keys {
                assert!(store.load(k).await.unwrap().is_some());
            }
        }
        let mut seen = HashSet::new();
        let mut cursor = None::<String>;
        loop {
            let page = store.scan(cursor.as_deref(), 4).await.unwrap();
            seen.extend(page.items.into_iter().map(|l| l.key));
            match page.next {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        assert!(
            keys.is_subset(&seen),
            "trial {trial}: {} of {} sessions listed",
            keys.intersection(&seen).count(),
            keys.len()
        );
        for k in &keys {
            store.delete(k).await.unwrap();
        }
    }
}
