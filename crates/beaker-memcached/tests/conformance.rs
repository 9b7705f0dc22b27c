//! beaker-memcached against a real memcached (`BEAKER_TEST_MEMCACHED_URL`, or a throwaway
//! server of the test's own): the published conformance suites plus the checks only a
//! memcached test can make (native expiry, long keys, namespaces, generations, size and
//! configuration errors).

mod common;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use beaker_core::cache::{CacheBackend, CacheEntry, LockOutcome};
use beaker_core::store::{SessionStore, StoreKey};
use beaker_core::{SessionId, StoreError};
use beaker_memcached::{MemcachedCache, MemcachedClient, MemcachedOptions, MemcachedStore};
use beaker_testkit::store::{CacheBackendSuite, SessionStoreSuite};
use common::{changes, connect, entry, lifecycle_races, options, record, server, two_processes};
use memcache::exp::{AsyncMetaClient, Delete, Get, Meta, Set};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passes_the_conformance_suites() {
    let suite = "memcached suites";
    let Some(server) = server(suite).await else { return };
    let Some(client) = connect(suite, &server.url, options("suite")).await else { return };
    let store = MemcachedStore::new(client.clone());
    let raw = server.raw().await;
    let corrupt_store = store.clone();
    let corruptor: beaker_testkit::store::Corruptor = Box::new(move |key: StoreKey| {
        let mkey = corrupt_store.memcached_key(&key);
        let raw = raw.clone();
        Box::pin(async move {
            raw.run(Set::new(mkey, b"\xff\x00garbage")).await.unwrap();
        })
    });
    // memcached's default item limit is 1 MiB including the key and item header, so the
    // suites' 1 MiB value cannot fit; half of it still crosses memcached's slab sizes.
    lifecycle_races(Arc::new(store.clone())).await;
    SessionStoreSuite::new(Arc::new(store))
        .with_corruptor(corruptor)
        .with_large_value(512 * 1024)
        .with_real_time_expiry()
        .run()
        .await;
    CacheBackendSuite::new(Arc::new(MemcachedCache::new(client)))
        .with_large_value(512 * 1024)
        .with_real_time_expiry()
        .run()
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cache_remembering_a_generation_still_sees_every_clear_at_once() {
    let suite = "memcached cache generations";
    let Some(server) = server(suite).await else { return };
    let opts = options("gens");
    let Some((a, b)) = two_processes(suite, &server, &opts).await else { return };
    let (a, b) = (MemcachedCache::new(a), MemcachedCache::new(b));
    let value = |e: Option<CacheEntry>| e.map(|e| e.value);
    a.put("ns", "k", &entry(b"v1"), None).await.unwrap();
    // `a` has seen the generation now: its reads take the one-exchange path.
    for _ in 0..2 {
        assert_eq!(value(a.get("ns", "k").await.unwrap()), Some(b"v1".to_vec()));
    }
    b.clear("ns").await.unwrap();
    assert_eq!(a.get("ns", "k").await.unwrap(), None, "a cleared entry came back through a remembered generation");
    b.put("ns", "k", &entry(b"v2"), None).await.unwrap();
    assert_eq!(value(a.get("ns", "k").await.unwrap()), Some(b"v2".to_vec()));
    assert_eq!(value(a.get("ns", "k").await.unwrap()), Some(b"v2".to_vec()));

    // Writes through a remembered generation that a clear elsewhere has moved on from land
    // in the current one.
    b.clear("ns").await.unwrap();
    a.put("ns", "put", &entry(b"after clear"), None).await.unwrap();
    assert_eq!(
        value(b.get("ns", "put").await.unwrap()),
        Some(b"after clear".to_vec()),
        "a put was lost in a cleared generation"
    );
    b.clear("ns").await.unwrap();
    b.put("ns", "gone", &entry(b"x"), None).await.unwrap();
    assert!(a.remove("ns", "gone").await.unwrap(), "a remove missed the current generation");
    assert_eq!(b.get("ns", "gone").await.unwrap(), None);
    assert!(!a.remove("ns", "gone").await.unwrap());

    // The counter lost (evicted, or a restart): the remembered generation is not trusted,
    // a new one starts, and the old entries stay unreachable.
    let raw = server.raw().await;
    let gkey = format!("{}g:ns", opts.cache_prefix);
    assert!(raw.run(Delete::new(&gkey)).await.is_ok());
    assert_eq!(a.get("ns", "k").await.unwrap(), None, "an entry outlived its generation's counter");
    assert_eq!(b.get("ns", "k").await.unwrap(), None);
    a.clear("ns").await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_applies_from_two_processes_on_different_keys_both_survive() {
    let suite = "memcached concurrent applies";
    let Some(server) = server(suite).await else { return };
    let opts = options("cas");
    let Some((a, b)) = two_processes(suite, &server, &opts).await else { return };
    let (a, b) = (MemcachedStore::new(a), MemcachedStore::new(b));
    let key = StoreKey::for_id(&SessionId::generate(), true);
    let later = Some(SystemTime::now() + Duration::from_secs(600));
    assert!(a.create(&key, &record(later)).await.unwrap());
    for round in 0..10 {
        // Both load first (as requests do), then both save a key of their own.
        a.load(&key).await.unwrap().expect("record");
        b.load(&key).await.unwrap().expect("record");
        let (ka, kb) = (format!("a{round}"), format!("b{round}"));
        let (ca, cb) = (changes(&[(&ka, "1")], later), changes(&[(&kb, "2")], later));
        let (ra, rb) = tokio::join!(a.apply(&key, &ca), b.apply(&key, &cb));
        assert!(ra.unwrap() && rb.unwrap(), "round {round}: an apply found no record");
    }
    let loaded = a.load(&key).await.unwrap().expect("record");
    for round in 0..10 {
        assert!(loaded.entries.contains_key(&format!("a{round}")), "a{round} lost: {:?}", loaded.entries.keys());
        assert!(loaded.entries.contains_key(&format!("b{round}")), "b{round} lost: {:?}", loaded.entries.keys());
    }
    assert!(loaded.entries.contains_key("user"));

    // A stale CAS hint (the record changed elsewhere since this process loaded it) must
    // not lose the other process's write.
    a.load(&key).await.unwrap();
    assert!(b.apply(&key, &changes(&[("from_b", "x")], later)).await.unwrap());
    assert!(a.apply(&key, &changes(&[("from_a", "y")], later)).await.unwrap());
    let loaded = b.load(&key).await.unwrap().expect("record");
    assert!(loaded.entries.contains_key("from_a") && loaded.entries.contains_key("from_b"));

    // A hint for a record deleted since must not resurrect it.
    a.load(&key).await.unwrap();
    b.delete(&key).await.unwrap();
    assert!(!a.apply(&key, &changes(&[("late", "z")], later)).await.unwrap());
    assert!(a.load(&key).await.unwrap().is_none());
}

#[tokio::test]
async fn sessions_use_native_expiry() {
    let suite = "memcached expiry";
    let Some(server) = server(suite).await else { return };
    let Some(client) = connect(suite, &server.url, options("ttl")).await else { return };
    let store = MemcachedStore::new(client.clone());
    let cache = MemcachedCache::new(client);
    let raw = server.raw().await;
    let key = StoreKey::for_id(&SessionId::generate(), true);
    let mkey = store.memcached_key(&key);
    let ttl = |raw: AsyncMetaClient, mkey: String| async move {
        raw.run(Get::new(mkey).meta(Meta::NONE.ttl()).without_value()).await.unwrap().item.ttl
    };

    // No expiry: memcached's "never" (-1).
    assert!(store.create(&key, &record(None)).await.unwrap());
    assert_eq!(ttl(raw.clone(), mkey.clone()).await, Some(-1));

    // A relative TTL of about a minute.
    let soon = SystemTime::now() + Duration::from_secs(60);
    assert!(store.touch(&key, SystemTime::now(), Some(soon)).await.unwrap());
    let t = ttl(raw.clone(), mkey.clone()).await.unwrap();
    assert!((55..=61).contains(&t), "TTL {t} after a 60 s touch");

    // Beyond 30 days: sent as an absolute Unix time, still read back as ~40 days left.
    let forty_days = 40 * 24 * 3600;
    let far = SystemTime::now() + Duration::from_secs(forty_days);
    assert!(store.apply(&key, &changes(&[("k", "v")], Some(far))).await.unwrap());
    let t = ttl(raw.clone(), mkey.clone()).await.unwrap();
    assert!((forty_days as i64 - 10..=forty_days as i64 + 1).contains(&t), "TTL {t} for a 40-day expiry");
    let loaded = store.load(&key).await.unwrap().expect("record");
    assert_eq!(loaded.entries.get("k").map(Vec::as_slice), Some(&b"v"[..]));

    // apply and touch on a missing key write nothing.
    store.delete(&key).await.unwrap();
    assert!(!store.apply(&key, &changes(&[("k", "v")], None)).await.unwrap());
    assert!(!store.touch(&key, SystemTime::now(), None).await.unwrap());
    assert!(!raw.run(Get::new(&mkey)).await.unwrap().hit(), "apply/touch on a missing session created an item");

    // The cache's hard TTL is native too.
    cache.put("ns", "k", &entry(b"v"), Some(Duration::from_secs(90))).await.unwrap();
    assert!(cache.get("ns", "k").await.unwrap().is_some());
    cache.clear("ns").await.unwrap();
}

#[tokio::test]
async fn long_keys_are_hashed_and_stay_distinct() {
    let suite = "memcached long keys";
    let Some(server) = server(suite).await else { return };
    let Some(client) = connect(suite, &server.url, options("long")).await else { return };
    let cache = MemcachedCache::new(client.clone());
    let long_ns = "n".repeat(300);
    let long_a = format!("{}a", "k".repeat(400));
    let long_b = format!("{}b", "k".repeat(400));
    cache.put(&long_ns, &long_a, &entry(b"ja"), Some(Duration::from_secs(60))).await.unwrap();
    cache.put(&long_ns, &long_b, &entry(b"jb"), Some(Duration::from_secs(60))).await.unwrap();
    cache.put("short", "key with spaces\r\n", &entry(b"jc"), None).await.unwrap();
    assert_eq!(cache.get(&long_ns, &long_a).await.unwrap().unwrap().value, b"ja");
    assert_eq!(cache.get(&long_ns, &long_b).await.unwrap().unwrap().value, b"jb");
    assert_eq!(cache.get("short", "key with spaces\r\n").await.unwrap().unwrap().value, b"jc");
    let LockOutcome::Acquired(token) = cache.try_lock(&long_ns, &long_a, Duration::from_secs(30)).await.unwrap() else {
        panic!("free lock on a long key not granted")
    };
    assert_eq!(cache.try_lock(&long_ns, &long_a, Duration::from_secs(30)).await.unwrap(), LockOutcome::Busy);
    cache.unlock(&long_ns, &long_a, &token).await.unwrap();
    cache.clear(&long_ns).await.unwrap();
    assert!(cache.get(&long_ns, &long_a).await.unwrap().is_none());
    cache.clear("short").await.unwrap();

    // A session prefix near the limit still gives keys memcached accepts.
    let near = "p".repeat(99) + ":";
    let Some(client) = connect(suite, &server.url, MemcachedOptions::default().with_session_prefix(near)).await else {
        return;
    };
    let store = MemcachedStore::new(client);
    let key = StoreKey::for_id(&SessionId::generate(), true);
    assert!(store.memcached_key(&key).len() <= 250);
    assert!(store.create(&key, &record(None)).await.unwrap());
    assert!(store.load(&key).await.unwrap().is_some());
    store.delete(&key).await.unwrap();
}

#[tokio::test]
async fn clearing_one_namespace_leaves_the_others() {
    let suite = "memcached namespaces";
    let Some(server) = server(suite).await else { return };
    let Some(client) = connect(suite, &server.url, options("ns")).await else { return };
    let cache = MemcachedCache::new(client);
    // Each pair would alias under a naive `prefix + ns + ":" + key` scheme.
    let pairs = [("a", "a:b"), ("x", "x\\"), ("g", "l"), ("1", "2")];
    for (ns, other) in pairs {
        cache.put(ns, "b:k", &entry(b"v1"), Some(Duration::from_secs(60))).await.unwrap();
        cache.put(other, "k", &entry(b"v2"), Some(Duration::from_secs(60))).await.unwrap();
        cache.put(other, "b:k", &entry(b"v3"), None).await.unwrap();
        cache.clear(ns).await.unwrap();
        assert!(cache.get(ns, "b:k").await.unwrap().is_none(), "clear({ns:?}) left its entry");
        assert_eq!(cache.get(other, "k").await.unwrap().map(|e| e.value), Some(b"v2".to_vec()), "{other:?}");
        assert_eq!(cache.get(other, "b:k").await.unwrap().map(|e| e.value), Some(b"v3".to_vec()), "{other:?}");
        // Usable again after the clear, and cleared again.
        cache.put(ns, "b:k", &entry(b"v4"), None).await.unwrap();
        assert_eq!(cache.get(ns, "b:k").await.unwrap().map(|e| e.value), Some(b"v4".to_vec()));
        cache.clear(ns).await.unwrap();
        cache.clear(other).await.unwrap();
        assert!(cache.get(other, "k").await.unwrap().is_none());
    }
    // Clearing a namespace never written to is fine, and so is removing from it.
    cache.clear("never-written").await.unwrap();
    assert!(!cache.remove("never-written", "k").await.unwrap());

    // Under the hood: `<prefix>g:<ns>` holds the generation, entries live under
    // `<prefix><generation>:<ns>:<key>`. A foreign value in either place is handled.
    let raw = server.raw().await;
    let prefix = cache.client().options().cache_prefix.clone();
    cache.put("n", "k", &entry(b"v"), None).await.unwrap();
    let generation = raw.run(Get::new(format!("{prefix}g:n"))).await.unwrap().value.expect("generation counter");
    let generation = String::from_utf8(generation).unwrap();
    let ekey = format!("{prefix}{generation}:n:k");
    assert!(raw.run(Get::new(&ekey)).await.unwrap().hit(), "entry not under {ekey}");
    raw.run(Set::new(&ekey, b"not an entry")).await.unwrap();
    assert!(matches!(cache.get("n", "k").await, Err(StoreError::Corrupt { .. })));
    raw.run(Set::new(format!("{prefix}g:n"), b"garbage")).await.unwrap();
    assert!(cache.get("n", "k").await.unwrap().is_none(), "a reset generation must not find old entries");
    cache.put("n", "k", &entry(b"v2"), None).await.unwrap();
    assert_eq!(cache.get("n", "k").await.unwrap().map(|e| e.value), Some(b"v2".to_vec()));
    raw.run(Set::new(format!("{prefix}g:n"), b"garbage")).await.unwrap();
    cache.clear("n").await.unwrap();
    assert!(cache.get("n", "k").await.unwrap().is_none());

    // The lock lives outside every generation: clearing does not release it.
    let LockOutcome::Acquired(token) = cache.try_lock("n", "k", Duration::from_secs(30)).await.unwrap() else {
        panic!("free lock not granted")
    };
    cache.clear("n").await.unwrap();
    assert_eq!(cache.try_lock("n", "k", Duration::from_secs(30)).await.unwrap(), LockOutcome::Busy);
    cache.unlock("n", "k", &token).await.unwrap();
    assert!(matches!(cache.try_lock("n", "k", Duration::from_secs(30)).await.unwrap(), LockOutcome::Acquired(_)));
}

#[tokio::test]
async fn bad_urls_and_options_are_configuration_errors() {
    for url in ["redis://127.0.0.1:6379", "memcached://", "127.0.0.1:11211"] {
        let err = MemcachedClient::connect(url, MemcachedOptions::default()).await.unwrap_err();
        assert!(!err.is_unavailable(), "{url}: {err:?}");
    }
    let same = MemcachedOptions::default().with_session_prefix("x:").with_cache_prefix("x:");
    assert!(MemcachedClient::connect("memcached://127.0.0.1:1", same).await.is_err());
    let spaced = MemcachedOptions::default().with_session_prefix("a b");
    assert!(MemcachedClient::connect("memcached://127.0.0.1:1", spaced).await.is_err());
}

#[tokio::test]
async fn oversized_values_are_rejected_not_unavailable() {
    let suite = "memcached size limit";
    let Some(server) = server(suite).await else { return };
    let Some(client) = connect(suite, &server.url, options("size").with_item_size_limit(4 * 1024 * 1024)).await else {
        return;
    };
    let store = MemcachedStore::new(client);
    let key = StoreKey::for_id(&SessionId::generate(), true);
    let mut r = record(None);
    r.entries.insert("big".into(), vec![7; 2 * 1024 * 1024]);
    // Over memcached's own 1 MiB default (known only for a server of our own): the
    // server refuses it.
    if server.own.is_some() {
        match store.create(&key, &r).await {
            Err(StoreError::Rejected { .. }) => {}
            other => panic!("an item over the server's limit gave {other:?}"),
        }
    }
    // Over the client-side limit: refused before anything is sent.
    let small =
        MemcachedStore::new(connect(suite, &server.url, options("size2").with_item_size_limit(1024)).await.unwrap());
    r.entries.insert("big".into(), vec![7; 2048]);
    assert!(matches!(small.create(&key, &r).await, Err(StoreError::Rejected { .. })));
    // The connection is fine afterwards.
    assert!(store.load(&key).await.unwrap().is_none());
}
