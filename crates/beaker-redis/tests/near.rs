//! The near cache against the shared Redis (`BEAKER_TEST_REDIS_URL`): the conformance
//! suites with the tier on, and coherence between two instances (two clients, each with
//! its own tier and tracking connection): every read that starts after a write returned
//! sees it, also across a killed tracking connection, a foreign writer and a flush of the
//! tier's keys.

mod common;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use beaker_core::cache::{CacheBackend, CacheEntry};
use beaker_core::store::{Changes, Lookup, SessionStore, StoreKey};
use beaker_core::SessionId;
use beaker_redis::{NearCacheOptions, NearCacheStats, RedisCache, RedisClient, RedisOptions, RedisStore};
use beaker_testkit::store::{changes, CacheBackendSuite, SessionStoreSuite};
use common::{
    cleanup, connect, current_thread_runtime, kill_by_name, lifecycle_races, options, raw, record, single, single_url,
};

fn name(tag: &str) -> String {
    let id = StoreKey::for_id(&SessionId::generate(), true);
    format!("beaker-near-test-{tag}-{}", &id.as_str()[..10])
}

async fn near_store(client: RedisClient, tag: &str) -> RedisStore {
    RedisStore::new(client).with_near_cache(NearCacheOptions::default().with_client_name(name(tag))).await.unwrap()
}

/// A store with the near cache (at most `max_entries` values when given), opened on
/// `runtime`, with its URL and options: for the tests whose threads drive runtimes of
/// their own. `None` when Redis is not there (the suite is skipped).
fn store_on(
    runtime: &tokio::runtime::Runtime,
    tag: &str,
    max_entries: Option<u64>,
) -> Option<(String, RedisOptions, RedisStore)> {
    let (url, opts) = (single_url(), options(&format!("near-{tag}")));
    let client = runtime.block_on(connect(&format!("redis near {tag}"), &url, opts.clone()))?;
    let mut near = NearCacheOptions::default().with_client_name(name(tag));
    if let Some(n) = max_entries {
        near = near.with_max_entries(n);
    }
    let store = runtime.block_on(RedisStore::new(client).with_near_cache(near)).unwrap();
    Some((url, opts, store))
}

/// A second "instance": its own client, tier and tracking connection, same prefixes.
async fn instance(url: &str, opts: &RedisOptions, tag: &str) -> RedisStore {
    near_store(connect("redis near", url, opts.clone()).await.unwrap(), tag).await
}

/// A new session, live for a minute, stored through `store`.
async fn live_session(store: &RedisStore) -> StoreKey {
    let key = StoreKey::for_id(&SessionId::generate(), true);
    assert!(store.create(&key, &record(Some(SystemTime::now() + Duration::from_secs(60)))).await.unwrap());
    key
}

fn set(key: &str, value: &[u8]) -> Changes {
    changes(&[(key, value)], &[], Some(SystemTime::now() + Duration::from_secs(60)))
}

fn value_of(found: Lookup, key: &str) -> Option<Vec<u8>> {
    match found {
        Lookup::Live(r) => r.entries.get(key).cloned(),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn near_cached_store_and_cache_pass_the_conformance_suites() {
    let Some((url, opts, client)) = single("near-suite", "redis near suites").await else { return };
    let store = near_store(client.clone(), "suite").await;
    lifecycle_races(Arc::new(store.clone())).await;
    SessionStoreSuite::new(Arc::new(store.clone())).with_real_time_expiry().run().await;
    let cache = RedisCache::new(client).with_near_cache(NearCacheOptions::default()).await.unwrap();
    CacheBackendSuite::new(Arc::new(cache)).with_real_time_expiry().run().await;
    assert!(store.near_cache_stats().unwrap().hits > 0, "the suites never hit the tier: it is not in the path");
    cleanup(&url, &opts).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_reads_are_served_by_the_tier_and_writes_refill_it() {
    let Some((url, opts, client)) = single("near-hits", "redis near hits").await else { return };
    let store = near_store(client, "hits").await;
    let key = live_session(&store).await;
    store.lookup(&key).await.unwrap();
    let before = store.near_cache_stats().unwrap();
    for _ in 0..50 {
        assert!(matches!(store.lookup(&key).await.unwrap(), Lookup::Live(_)));
    }
    let after = store.near_cache_stats().unwrap();
    assert_eq!((after.hits - before.hits, after.misses - before.misses), (50, 0), "{after:?}");
    // A write leaves what it wrote in the tier: the next read is a hit that sees it.
    assert!(store.apply(&key, &set("n", b"7")).await.unwrap());
    assert_eq!(value_of(store.lookup(&key).await.unwrap(), "n"), Some(b"7".to_vec()));
    assert_eq!(store.near_cache_stats().unwrap().misses, after.misses, "the write did not refill the tier");
    cleanup(&url, &opts).await;
}

/// Write on one instance, then read on the other (each read starting after the write
/// returned), 1,000 rounds each way, with both tiers warm: every write is seen.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_after_a_write_on_another_instance_sees_it() {
    let Some((url, opts, client)) = single("near-ab", "redis near coherence").await else { return };
    let a = near_store(client, "a").await;
    let b = instance(&url, &opts, "b").await;
    let key = live_session(&a).await;
    for (writer, reader) in [(&a, &b), (&b, &a)] {
        for round in 0..1000u32 {
            let v = round.to_string();
            // The reader holds the previous value in its tier.
            reader.lookup(&key).await.unwrap();
            assert!(writer.apply(&key, &set("n", v.as_bytes())).await.unwrap());
            let seen = value_of(reader.lookup(&key).await.unwrap(), "n");
            assert_eq!(seen.as_deref(), Some(v.as_bytes()), "round {round}: a stale read");
        }
    }
    let stats = b.near_cache_stats().unwrap();
    assert!(stats.hits > 500 && stats.invalidations > 500, "the tier was bypassed: {stats:?}");
    cleanup(&url, &opts).await;
}

/// A write leaves what it wrote in its own tier, read in the same script call: that read
/// must also renew the tracking the write ended, or the next write elsewhere would go
/// unheard.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refill_by_a_write_is_still_invalidated_by_writes_elsewhere() {
    let Some((url, opts, client)) = single("near-refill", "redis near refill").await else { return };
    let a = near_store(client, "wa").await;
    let b = instance(&url, &opts, "wb").await;
    let key = live_session(&a).await;
    for round in 0..300u32 {
        let mine = format!("a{round}");
        assert!(a.apply(&key, &set("n", mine.as_bytes())).await.unwrap());
        let hits = a.near_cache_stats().unwrap().hits;
        assert_eq!(value_of(a.lookup(&key).await.unwrap(), "n"), Some(mine.into_bytes()), "round {round}");
        assert_eq!(a.near_cache_stats().unwrap().hits, hits + 1, "round {round}: the write did not refill the tier");
        let theirs = format!("b{round}");
        assert!(b.apply(&key, &set("n", theirs.as_bytes())).await.unwrap());
        let seen = value_of(a.lookup(&key).await.unwrap(), "n");
        assert_eq!(seen, Some(theirs.into_bytes()), "round {round}: a stale read after a refill");
    }
    cleanup(&url, &opts).await;
}

/// A write over the tier's copy refills the tier from that copy and the changes, without
/// reading the record back: what the tier then serves is what Redis holds, to the
/// millisecond, also when another writer changed the record just before the write.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_over_the_tiers_copy_leaves_what_redis_holds() {
    let Some((url, opts, client)) = single("near-local", "redis near local refill").await else { return };
    let a = near_store(client.clone(), "la").await;
    let plain = RedisStore::new(client);
    let key = live_session(&a).await;
    let mut conn = raw(&url).await;
    let rkey = a.redis_key(&key);
    let mut refilled = 0;
    for round in 0..300u32 {
        assert!(matches!(a.lookup(&key).await.unwrap(), Lookup::Live(_)));
        if round % 2 == 1 {
            // Another writer, just before this instance writes over its copy.
            let _: () = redis::cmd("HSET").arg(&rkey).arg("k:other").arg(round).query_async(&mut conn).await.unwrap();
        }
        let mut change = set("n", round.to_string().as_bytes());
        // Times finer than Redis keeps them.
        change.accessed = SystemTime::now();
        change.expires = Some(SystemTime::now() + Duration::from_secs(60));
        if round % 3 == 2 {
            change.remove.insert("other".to_owned());
        }
        assert!(a.apply(&key, &change).await.unwrap());
        let hits = a.near_cache_stats().unwrap().hits;
        let Lookup::Live(served) = a.lookup(&key).await.unwrap() else { panic!("round {round}: no record") };
        refilled += a.near_cache_stats().unwrap().hits - hits;
        let Lookup::Live(stored) = plain.lookup(&key).await.unwrap() else { panic!("round {round}: no record") };
        assert_eq!(served, stored, "round {round}: the tier's copy is not what Redis holds");
    }
    assert!(refilled > 100, "writes refilled the tier only {refilled} times");
    cleanup(&url, &opts).await;
}

/// Concurrent writers on both instances and readers racing them: a reader that starts
/// after a write returned never sees an older value (the counter only grows).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_writers_and_readers_never_go_back_in_time() {
    let Some((url, opts, client)) = single("near-race", "redis near races").await else { return };
    let a = near_store(client, "ra").await;
    let b = instance(&url, &opts, "rb").await;
    let key = live_session(&a).await;
    let written = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut tasks = Vec::new();
    for w in 0..2u64 {
        let (store, written, key) = (if w == 0 { a.clone() } else { b.clone() }, written.clone(), key.clone());
        tasks.push(tokio::spawn(async move {
            for i in 0..300u64 {
                // Each writer owns its field; the highest value it has written is recorded
                // after the write returned.
                let v = i * 2 + w;
                assert!(store.apply(&key, &set(&format!("w{w}"), v.to_string().as_bytes())).await.unwrap());
                written.fetch_max(v, std::sync::atomic::Ordering::SeqCst);
            }
        }));
    }
    for r in 0..4u64 {
        let (store, written, key) = (if r % 2 == 0 { a.clone() } else { b.clone() }, written.clone(), key.clone());
        tasks.push(tokio::spawn(async move {
            for _ in 0..400 {
                let floor = written.load(std::sync::atomic::Ordering::SeqCst);
                let Lookup::Live(rec) = store.lookup(&key).await.unwrap() else { panic!("session vanished") };
                let field = format!("w{}", floor % 2);
                if floor > 0 {
                    let seen: u64 = std::str::from_utf8(&rec.entries[&field]).unwrap().parse().unwrap();
                    assert!(seen >= floor, "read {seen} after {floor} was written and returned");
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    cleanup(&url, &opts).await;
}

/// Many requests on one instance at once, racing a writer on the other: each read that
/// starts after a write returned sees it, although the reads share their barrier `PING`s
/// (a read that starts while one is on its way waits for the next one).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_hits_share_barrier_rounds_and_still_see_every_write() {
    let Some((url, opts, client)) = single("near-share", "redis near shared rounds").await else { return };
    let a = near_store(client, "sa").await;
    let b = instance(&url, &opts, "sb").await;
    let key = live_session(&a).await;
    let written = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (a, key, written, done) = (a.clone(), key.clone(), written.clone(), done.clone());
        tokio::spawn(async move {
            // Paced, so that the readers also find the tier warm between writes.
            for v in 1..=60u64 {
                assert!(a.apply(&key, &set("n", v.to_string().as_bytes())).await.unwrap());
                written.store(v, std::sync::atomic::Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            done.store(true, std::sync::atomic::Ordering::SeqCst);
        })
    };
    let before = b.near_cache_stats().unwrap();
    let mut readers = Vec::new();
    for _ in 0..32 {
        let (b, key, written, done) = (b.clone(), key.clone(), written.clone(), done.clone());
        readers.push(tokio::spawn(async move {
            let mut reads = 0;
            while reads < 100 || !done.load(std::sync::atomic::Ordering::SeqCst) {
                reads += 1;
                let floor = written.load(std::sync::atomic::Ordering::SeqCst);
                let seen = value_of(b.lookup(&key).await.unwrap(), "n");
                let seen: u64 = seen.map_or(0, |v| std::str::from_utf8(&v).unwrap().parse().unwrap());
                assert!(seen >= floor, "read {seen} after {floor} was written and returned");
            }
        }));
    }
    for r in readers {
        r.await.unwrap();
    }
    writer.await.unwrap();
    let after = b.near_cache_stats().unwrap();
    let (hits, pings) = (after.hits - before.hits, after.pings - before.pings);
    assert!(hits > 1000, "the tier was bypassed: {after:?}");
    // At most one `PING` is on its way at a time, and the reads that start meanwhile
    // share the next one.
    assert!(pings * 2 < hits, "{pings} barrier rounds for {hits} hits: rounds are not shared");
    cleanup(&url, &opts).await;
}

/// A request dropped while it waits for a barrier round leaves no round unsent: the others
/// go on, and the tier keeps serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_dropped_mid_barrier_do_not_stall_the_others() {
    let Some((url, opts, client)) = single("near-drop", "redis near dropped requests").await else { return };
    let store = near_store(client, "drop").await;
    let key = live_session(&store).await;
    store.lookup(&key).await.unwrap();
    let mut tasks = Vec::new();
    for t in 0..16u64 {
        let (store, key) = (store.clone(), key.clone());
        tasks.push(tokio::spawn(async move {
            for i in 0..200u64 {
                if (i + t) % 3 == 0 {
                    // Dropped at its first wait, whatever it was doing there.
                    let lookup = store.lookup(&key);
                    let _ = tokio::time::timeout(Duration::ZERO, lookup).await;
                } else {
                    let found = tokio::time::timeout(Duration::from_secs(5), store.lookup(&key)).await;
                    assert!(matches!(found, Ok(Ok(Lookup::Live(_)))), "a read stalled or failed: {found:?}");
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let before = store.near_cache_stats().unwrap().hits;
    assert!(matches!(store.lookup(&key).await.unwrap(), Lookup::Live(_)));
    assert_eq!(store.near_cache_stats().unwrap().hits, before + 1, "the tier stopped serving");
    cleanup(&url, &opts).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_tracking_connection_empties_the_tier_before_any_further_hit() {
    let Some((url, opts, client)) = single("near-kill", "redis near kill").await else { return };
    let a = near_store(client, "ka").await;
    let b_name = name("kb");
    let b = RedisStore::new(connect("redis near", &url, opts.clone()).await.unwrap())
        .with_near_cache(NearCacheOptions::default().with_client_name(b_name.clone()))
        .await
        .unwrap();
    let key = live_session(&a).await;
    let mut kills = 0;
    for round in 0..400u32 {
        if round % 50 == 25 {
            // Requests make the tier reconnect (at most a few attempts a second): keep
            // reading until it is back before killing it again.
            for _ in 0..100 {
                let killed = kill_by_name(&url, &b_name).await;
                if killed > 0 {
                    kills += killed;
                    break;
                }
                b.lookup(&key).await.unwrap();
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        let v = round.to_string();
        b.lookup(&key).await.unwrap();
        assert!(a.apply(&key, &set("n", v.as_bytes())).await.unwrap());
        let seen = value_of(b.lookup(&key).await.unwrap(), "n");
        assert_eq!(seen.as_deref(), Some(v.as_bytes()), "round {round}: a stale read");
    }
    assert_eq!(kills, 8, "the tracking connection was not there to kill each time");
    let stats = b.near_cache_stats().unwrap();
    assert!(stats.resets >= 8, "the losses went unnoticed: {stats:?}");
    // After the last loss, reads bring the tier back and it serves hits again.
    let mut came_back = false;
    for _ in 0..100 {
        b.lookup(&key).await.unwrap();
        if b.near_cache_stats().unwrap().hits > stats.hits {
            came_back = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(came_back, "the tier never came back: {:?}", b.near_cache_stats());
    cleanup(&url, &opts).await;
}

#[tokio::test]
async fn foreign_writes_and_logouts_elsewhere_are_seen() {
    let Some((url, opts, client)) = single("near-foreign", "redis near foreign").await else { return };
    let a = near_store(client, "fa").await;
    let b = instance(&url, &opts, "fb").await;
    let key = live_session(&a).await;
    assert!(matches!(a.lookup(&key).await.unwrap(), Lookup::Live(_)));
    // A writer that is not beaker-rs at all.
    let mut conn = raw(&url).await;
    let _: () =
        redis::cmd("HSET").arg(a.redis_key(&key)).arg("k:n").arg("foreign").query_async(&mut conn).await.unwrap();
    assert_eq!(value_of(a.lookup(&key).await.unwrap(), "n"), Some(b"foreign".to_vec()));
    // Logout on the other instance: the ended session is never served again.
    b.end(&key, Duration::from_secs(30)).await.unwrap();
    assert!(matches!(a.lookup(&key).await.unwrap(), Lookup::Retired));
    assert!(!a.apply(&key, &set("n", b"late")).await.unwrap(), "a write revived an ended session");
    // Deleted behind its back.
    let key2 = StoreKey::for_id(&SessionId::generate(), true);
    assert!(a.create(&key2, &record(None)).await.unwrap());
    assert!(matches!(a.lookup(&key2).await.unwrap(), Lookup::Live(_)));
    let _: () = redis::cmd("DEL").arg(a.redis_key(&key2)).query_async(&mut conn).await.unwrap();
    assert!(matches!(a.lookup(&key2).await.unwrap(), Lookup::Missing));
    cleanup(&url, &opts).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_tier_cache_regions_see_puts_removes_and_clears_of_other_instances() {
    let Some((url, opts, client)) = single("near-cache", "redis near cache").await else { return };
    let a = RedisCache::new(client).with_near_cache(NearCacheOptions::default()).await.unwrap();
    let b = RedisCache::new(connect("redis near", &url, opts.clone()).await.unwrap())
        .with_near_cache(NearCacheOptions::default())
        .await
        .unwrap();
    let entry = |v: &str| CacheEntry { value: v.as_bytes().to_vec(), stored_at: SystemTime::now(), fresh_until: None };
    for round in 0..300u32 {
        let (w, r) = if round % 2 == 0 { (&a, &b) } else { (&b, &a) };
        r.get("ns", "k").await.unwrap();
        let e = entry(&round.to_string());
        w.put("ns", "k", &e, Some(Duration::from_secs(60))).await.unwrap();
        assert_eq!(r.get("ns", "k").await.unwrap().map(|e| e.value), Some(e.value), "round {round}");
    }
    assert!(b.near_cache_stats().unwrap().hits > 100 || a.near_cache_stats().unwrap().hits > 100);
    // Hits on the hot key, then a remove and a clear elsewhere.
    assert!(a.get("ns", "k").await.unwrap().is_some());
    assert!(b.remove("ns", "k").await.unwrap());
    assert_eq!(a.get("ns", "k").await.unwrap(), None);
    a.put("ns", "k", &entry("again"), None).await.unwrap();
    assert!(a.get("ns", "k").await.unwrap().is_some());
    b.clear("ns").await.unwrap();
    assert_eq!(a.get("ns", "k").await.unwrap(), None, "a cleared namespace served from the tier");
    // The tier drops a value when Redis does (its hard TTL).
    a.put("ns", "short", &entry("x"), Some(Duration::from_millis(200))).await.unwrap();
    assert!(a.get("ns", "short").await.unwrap().is_some());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(a.get("ns", "short").await.unwrap(), None);
    cleanup(&url, &opts).await;
}

/// A worker thread of a thread-per-core server (a current-thread runtime of its own, as
/// each actix-web worker runs) gets a tier and tracking connection of its own: its hits do
/// not wait on the runtime the store was opened on, which here nobody drives any more
/// (with the tracking connection's I/O there, every barrier would wait for the call
/// deadline). Its tier is coherent with another instance's writes like any other.
#[test]
fn a_worker_thread_has_a_tier_of_its_own() {
    let origin = current_thread_runtime();
    let Some((url, opts, store)) = store_on(&origin, "worker", None) else { return };
    let writers = tokio::runtime::Runtime::new().unwrap();
    let writer = writers.block_on(instance(&url, &opts, "writer"));
    let writes = writers.handle().clone();
    let worker = std::thread::spawn(move || {
        let (key, stats) = current_thread_runtime().block_on(async {
            let key = live_session(&store).await;
            for round in 0..300u32 {
                let v = round.to_string();
                store.lookup(&key).await.unwrap();
                let (writer, key2, v2) = (writer.clone(), key.clone(), v.clone());
                assert!(writes
                    .spawn(async move { writer.apply(&key2, &set("n", v2.as_bytes())).await })
                    .await
                    .unwrap()
                    .unwrap());
                let seen = value_of(store.lookup(&key).await.unwrap(), "n");
                assert_eq!(seen.as_deref(), Some(v.as_bytes()), "round {round}: a stale read");
            }
            (key, store.near_cache_stats().unwrap())
        });
        // A later runtime of the same thread gets a new tier; the counters never go back.
        current_thread_runtime().block_on(async {
            for _ in 0..3 {
                assert!(matches!(store.lookup(&key).await.unwrap(), Lookup::Live(_)));
            }
            let later = store.near_cache_stats().unwrap();
            assert!(later.hits >= stats.hits && later.misses > stats.misses, "{stats:?} then {later:?}");
            assert_eq!(later.tiers, 2, "the earlier runtime's tier was kept: {later:?}");
        });
        (stats, store)
    });
    let (stats, store) = worker.join().unwrap();
    assert!(stats.hits > 250 && stats.invalidations > 250, "the worker's tier did not serve: {stats:?}");
    // A tracking connection on the idle runtime would have failed its first barrier.
    assert_eq!(stats.resets, 0, "a barrier waited on another runtime: {stats:?}");
    assert_eq!(stats.tiers, 2, "the shared tier and the worker's: {stats:?}");
    let after = store.near_cache_stats().unwrap();
    assert_eq!(after.tiers, 1, "the worker's tier outlived its thread: {after:?}");
    assert!(after.hits >= stats.hits, "{stats:?} then {after:?}");
    writers.block_on(cleanup(&url, &opts));
}

/// A pool of short-lived threads, each with a current-thread runtime of its own: each
/// thread's tier (and its tracking connection) is let go when the thread ends, and the
/// counters keep what it counted.
#[test]
fn a_worker_threads_tier_ends_with_its_thread() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let Some((url, opts, store)) = store_on(&runtime, "pool", None) else { return };
    let key = runtime.block_on(live_session(&store));
    let mut hits = 0;
    for thread in 0..8 {
        let (store2, key) = (store.clone(), key.clone());
        let seen = std::thread::spawn(move || {
            current_thread_runtime().block_on(async {
                // The tier connects on first use; until then the reads go to Redis.
                for _ in 0..500 {
                    assert!(matches!(store2.lookup(&key).await.unwrap(), Lookup::Live(_)));
                    let stats = store2.near_cache_stats().unwrap();
                    if stats.hits > hits {
                        return stats;
                    }
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                panic!("a worker's tier never served: {:?}", store2.near_cache_stats());
            })
        })
        .join()
        .unwrap();
        assert_eq!(seen.tiers, 2, "thread {thread}: no tier of the worker's own: {seen:?}");
        let stats = store.near_cache_stats().unwrap();
        assert_eq!(stats.tiers, 1, "thread {thread}: its tier outlived it: {stats:?}");
        assert!(stats.hits >= seen.hits, "thread {thread}: the counts of its tier were lost: {stats:?}");
        hits = stats.hits;
    }
    runtime.block_on(cleanup(&url, &opts));
}

/// A store with the near cache opened on `origin`, a session, and the tier's counts after
/// it served that session from `origin`.
fn warm_tier_on(
    origin: &tokio::runtime::Runtime,
    tag: &str,
) -> Option<(String, RedisOptions, RedisStore, StoreKey, NearCacheStats)> {
    let (url, opts, store) = store_on(origin, tag, None)?;
    let key = origin.block_on(async {
        let key = live_session(&store).await;
        for _ in 0..3 {
            assert!(matches!(store.lookup(&key).await.unwrap(), Lookup::Live(_)));
        }
        key
    });
    let stats = store.near_cache_stats().unwrap();
    assert!(stats.hits >= 1 && stats.entries == 1, "the tier did not serve: {stats:?}");
    Some((url, opts, store, key, stats))
}

/// Reads `key` until the tier counts a hit past `hits`, each read within `deadline`;
/// the number of reads that failed meanwhile.
async fn until_the_tier_serves_again(store: &RedisStore, key: &StoreKey, hits: u64, deadline: Duration) -> usize {
    let mut failed = 0;
    for _ in 0..100 {
        match tokio::time::timeout(deadline, store.lookup(key)).await {
            Ok(Ok(Lookup::Live(_))) => {}
            Ok(_) => failed += 1,
            Err(_) => panic!("a read waited past {deadline:?}"),
        }
        if store.near_cache_stats().unwrap().hits > hits {
            return failed;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the tier never came back: {:?}", store.near_cache_stats());
}

/// The tracking connection, and the task that sends its barrier rounds, run on the
/// runtime the tier connected on. When that runtime ends, the tier lets them go at once
/// and empties, and the runtime that uses the store next reconnects it and is served
/// from the tier again: no request waits on rounds nobody sends.
#[test]
fn a_tier_whose_runtime_ended_reconnects_where_it_is_used_next() {
    let origin = current_thread_runtime();
    let Some((url, opts, store, key, before)) = warm_tier_on(&origin, "ended") else { return };
    drop(origin);
    let after = store.near_cache_stats().unwrap();
    assert_eq!(after.entries, 0, "the tier outlived its connection's runtime: {after:?}");
    assert_eq!(after.resets, before.resets + 1, "{before:?} then {after:?}");
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let failed = until_the_tier_serves_again(&store, &key, after.hits, Duration::from_secs(1)).await;
        assert_eq!(failed, 0, "reads failed while the tier reconnected");
        cleanup(&url, &opts).await;
    });
}

/// A tier whose tracking connection lives on a runtime that is still there but that
/// nobody drives any more (a `main` that only waits, from a multi-threaded runtime's point
/// of view): a hit waits for its barrier no longer than a call may (the store's timeout),
/// then gives the connection up, and the tier reconnects on the runtime that uses it.
#[test]
fn a_barrier_never_waits_past_the_deadline_on_a_runtime_nobody_drives() {
    let origin = current_thread_runtime();
    let Some((url, opts, store, key, before)) = warm_tier_on(&origin, "idle") else { return };
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        // The plain read it falls back to goes over the client's connection, on the idle
        // runtime too: it fails at the deadline as well. What matters is that it returns.
        let deadline = opts.timeout * 3 + Duration::from_secs(1);
        let found = tokio::time::timeout(deadline, store.lookup(&key)).await;
        assert!(found.is_ok(), "a hit waited past the deadline for a barrier nobody sends");
        let after = store.near_cache_stats().unwrap();
        assert_eq!(after.resets, before.resets + 1, "the connection was not given up: {after:?}");
        until_the_tier_serves_again(&store, &key, after.hits, deadline).await;
        cleanup(&url, &opts).await;
    });
    drop(origin);
}

/// The bounds are the store's: the worker threads' tiers share them with the store's own
/// tier, so more worker threads do not hold more values; a tier let go takes its values.
#[test]
fn the_bounds_hold_for_all_the_tiers_together() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let Some((url, opts, store)) = store_on(&runtime, "bound", Some(40)) else { return };
    let keys: Vec<StoreKey> = runtime.block_on(async {
        let mut keys = Vec::new();
        for _ in 0..30 {
            keys.push(live_session(&store).await);
        }
        keys
    });
    let ready = Arc::new(std::sync::Barrier::new(3));
    let workers: Vec<_> = (0..3)
        .map(|_| {
            let (store, keys, ready) = (store.clone(), keys.clone(), ready.clone());
            std::thread::spawn(move || {
                current_thread_runtime().block_on(async {
                    // The tier connects on first use; the passes after that fill it.
                    for _ in 0..20 {
                        for key in &keys {
                            assert!(matches!(store.lookup(key).await.unwrap(), Lookup::Live(_)));
                        }
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                    // Looked at while every runtime still runs: a tier whose runtime is
                    // gone has lost its connection, and its values with it.
                    ready.wait();
                    let stats = store.near_cache_stats().unwrap();
                    ready.wait();
                    stats
                })
            })
        })
        .collect();
    for worker in workers {
        let stats = worker.join().unwrap();
        assert_eq!(stats.tiers, 4, "{stats:?}");
        // Three tiers of 30 sessions each, under one bound of 40.
        assert!(stats.entries <= 40 && stats.entries >= 20, "the bound is not shared: {stats:?}");
        assert!(stats.hits >= 30 && stats.bytes > 0, "{stats:?}");
    }
    let after = store.near_cache_stats().unwrap();
    assert_eq!((after.tiers, after.entries, after.bytes), (1, 0, 0), "the ended tiers left values: {after:?}");
    runtime.block_on(cleanup(&url, &opts));
}

#[tokio::test]
async fn bad_near_cache_options_are_refused_by_name() {
    let Some((url, opts, client)) = single("near-bad", "redis near options").await else { return };
    for (options, word) in [
        (NearCacheOptions::default().with_max_entries(0), "max_entries"),
        (NearCacheOptions::default().with_max_bytes(0), "max_bytes"),
        (NearCacheOptions::default().with_client_name("two words"), "client_name"),
    ] {
        let err = RedisStore::new(client.clone()).with_near_cache(options).await.unwrap_err();
        assert!(err.to_string().contains(word), "{err}");
    }
    let _ = single_url();
    cleanup(&url, &opts).await;
}
