//! beaker-redis against the shared Redis (`BEAKER_TEST_REDIS_URL`): the published
//! conformance suites plus the checks only a Redis test can make (native TTL, key layout,
//! legacy records, namespaces, argument chunks).

mod common;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use beaker_core::cache::{CacheBackend, CacheEntry, LockOutcome};
use beaker_core::store::{Changes, SessionStore, StoreKey};
use beaker_core::{SessionId, StoreError};
use beaker_redis::{RedisCache, RedisStore};
use beaker_testkit::store::{CacheBackendSuite, SessionStoreSuite};
use common::{cleanup, lifecycle_races, raw, record, single};
use redis::AsyncCommands;

fn corruptor(store: RedisStore, url: String) -> beaker_testkit::store::Corruptor {
    Box::new(move |key: StoreKey| {
        let rkey = store.redis_key(&key);
        let url = url.clone();
        Box::pin(async move {
            // A string where a hash belongs, the most likely leftover of a foreign writer.
            let _: () = raw(&url).await.set(rkey, b"\xff\x00garbage".as_slice()).await.unwrap();
        })
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_node_passes_the_conformance_suites() {
    let Some((url, opts, client)) = single("suite", "redis single-node suites").await else { return };
    let store = RedisStore::new(client.clone());
    lifecycle_races(Arc::new(store.clone())).await;
    SessionStoreSuite::new(Arc::new(store.clone()))
        .with_corruptor(corruptor(store, url.clone()))
        .with_real_time_expiry()
        .run()
        .await;
    CacheBackendSuite::new(Arc::new(RedisCache::new(client))).with_real_time_expiry().run().await;
    cleanup(&url, &opts).await;
}

#[tokio::test]
async fn sessions_use_native_ttl_and_a_hash_tag() {
    let Some((url, opts, client)) = single("ttl", "redis TTL checks").await else { return };
    let store = RedisStore::new(client);
    let mut conn = raw(&url).await;
    let key = StoreKey::for_id(&SessionId::generate(), true);
    let rkey = store.redis_key(&key);
    assert_eq!(rkey, format!("{}{{{}}}", opts.session_prefix, key.as_str()));

    // No expiry: no TTL at all.
    assert!(store.create(&key, &record(None)).await.unwrap());
    let pttl: i64 = conn.pttl(&rkey).await.unwrap();
    assert_eq!(pttl, -1, "a record without expiry got a TTL");
    let fields: Vec<String> = conn.hkeys(&rkey).await.unwrap();
    assert!(fields.contains(&"k:ключ 🔑".to_string()) && fields.contains(&"m".to_string()), "{fields:?}");

    // touch sets and later extends the native TTL.
    let soon = SystemTime::now() + Duration::from_secs(60);
    assert!(store.touch(&key, SystemTime::now(), Some(soon)).await.unwrap());
    let pttl: i64 = conn.pttl(&rkey).await.unwrap();
    assert!((1..=60_000).contains(&pttl), "PTTL {pttl} after a 60 s touch");
    let later = SystemTime::now() + Duration::from_secs(3600);
    assert!(store.touch(&key, SystemTime::now(), Some(later)).await.unwrap());
    let pttl: i64 = conn.pttl(&rkey).await.unwrap();
    assert!(pttl > 60_000, "touch did not extend the TTL: {pttl}");

    // apply back to "no expiry" removes the TTL.
    let changes = Changes {
        clear: false,
        set: Default::default(),
        remove: ["user".to_string()].into(),
        accessed: SystemTime::now(),
        expires: None,
        owner: None,
    };
    assert!(store.apply(&key, &changes).await.unwrap());
    let pttl: i64 = conn.pttl(&rkey).await.unwrap();
    assert_eq!(pttl, -1);
    let loaded = store.load(&key).await.unwrap().unwrap();
    assert_eq!(loaded.entries.keys().collect::<Vec<_>>(), vec!["ключ 🔑"]);

    // apply and touch on a missing key write nothing: the key must not be resurrected.
    store.delete(&key).await.unwrap();
    assert!(!store.apply(&key, &changes).await.unwrap());
    assert!(!store.touch(&key, SystemTime::now(), Some(later)).await.unwrap());
    let exists: bool = conn.exists(&rkey).await.unwrap();
    assert!(!exists, "apply/touch on a missing session created a key");

    // A record created already expired is gone at once.
    assert!(store.create(&key, &record(Some(SystemTime::now() - Duration::from_secs(1)))).await.unwrap());
    assert!(store.load(&key).await.unwrap().is_none());
    cleanup(&url, &opts).await;
}

#[tokio::test]
async fn records_of_the_legacy_layout_load_and_are_never_written_in_place() {
    let Some((url, opts, client)) = single("legacy", "redis legacy records").await else { return };
    let store = RedisStore::new(client);
    let mut conn = raw(&url).await;
    let key = StoreKey::for_id(&SessionId::generate(), true);
    let rkey = store.redis_key(&key);
    let created = SystemTime::now() - Duration::from_secs(5);
    let ms = |t: SystemTime| t.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_millis().to_string();
    let _: () = redis::cmd("HSET")
        .arg(&rkey)
        .arg(&[("m:c", ms(created)), ("m:a", ms(created)), ("m:e", "0".into()), ("k:n", "7".into())])
        .query_async(&mut conn)
        .await
        .unwrap();
    let loaded = store.load(&key).await.unwrap().expect("a legacy record loads");
    assert_eq!(loaded.entries.get("n"), Some(&b"7".to_vec()));
    assert_eq!(ms(loaded.created), ms(created));
    // A write finds no `m` field: it reports "gone", so the manager moves the data to a
    // fresh record (never a half-updated mix of both layouts).
    let changes = Changes {
        clear: false,
        set: [("n".to_string(), b"8".to_vec())].into(),
        remove: Default::default(),
        accessed: SystemTime::now(),
        expires: None,
        owner: None,
    };
    assert!(!store.apply(&key, &changes).await.unwrap());
    assert!(!store.touch(&key, SystemTime::now(), None).await.unwrap());
    let n: Option<String> = conn.hget(&rkey, "k:n").await.unwrap();
    assert_eq!(n.as_deref(), Some("7"), "a legacy record was changed in place");
    cleanup(&url, &opts).await;
}

#[tokio::test]
async fn cache_namespaces_with_glob_characters_are_isolated() {
    let Some((url, opts, client)) = single("glob", "redis cache namespaces").await else { return };
    let cache = RedisCache::new(client);
    let entry = CacheEntry { value: b"v".to_vec(), stored_at: SystemTime::now(), fresh_until: None };
    // Each pair would alias under a naive `prefix + ns + ":" + key` / `ns:*` scheme.
    let pairs = [("a*", "a-b"), ("a", "a:b"), ("x[1]", "x1"), (r"w\", "w")];
    for (ns, other) in pairs {
        cache.put(ns, "k:1", &entry, Some(Duration::from_secs(60))).await.unwrap();
        cache.put(other, "k:1", &entry, Some(Duration::from_secs(60))).await.unwrap();
        cache.put(other, "1", &entry, None).await.unwrap();
        cache.clear(ns).await.unwrap();
        assert!(cache.get(ns, "k:1").await.unwrap().is_none(), "clear({ns:?}) left its entry");
        assert!(cache.get(other, "k:1").await.unwrap().is_some(), "clear({ns:?}) removed {other:?}'s entry");
        assert!(cache.get(other, "1").await.unwrap().is_some(), "clear({ns:?}) removed {other:?}'s entry");
        cache.clear(other).await.unwrap();
    }
    // A foreign value under an entry's key is Corrupt, not data.
    let _: () = raw(&url).await.set(cache.redis_key("n", "k"), "not an entry").await.unwrap();
    assert!(matches!(cache.get("n", "k").await, Err(StoreError::Corrupt { .. })));
    // The lock key lives outside every namespace: clearing does not release it.
    let LockOutcome::Acquired(token) = cache.try_lock("n", "k", Duration::from_secs(30)).await.unwrap() else {
        panic!("free lock not granted")
    };
    cache.clear("n").await.unwrap();
    assert_eq!(cache.try_lock("n", "k", Duration::from_secs(30)).await.unwrap(), LockOutcome::Busy);
    cache.unlock("n", "k", &token).await.unwrap();
    cleanup(&url, &opts).await;
}

#[tokio::test]
async fn changes_of_thousands_of_keys_cross_the_scripts_argument_chunks() {
    // The scripts pass fields to `HSET`/`HDEL` a thousand arguments at a time.
    let Some((url, opts, client)) = single("chunks", "redis chunks").await else { return };
    let store = RedisStore::new(client);
    let key = StoreKey::for_id(&SessionId::generate(), true);
    let mut rec = record(None);
    rec.entries = (0..1203).map(|i| (format!("key {i}"), format!("value {i}").into_bytes())).collect();
    assert!(store.create(&key, &rec).await.unwrap());
    assert_eq!(store.load(&key).await.unwrap().unwrap().entries, rec.entries);

    let changes = Changes {
        clear: false,
        set: (1000..1701).map(|i| (format!("key {i}"), format!("new {i}").into_bytes())).collect(),
        remove: (0..999).map(|i| format!("key {i}")).collect(),
        accessed: SystemTime::now(),
        expires: None,
        owner: None,
    };
    assert!(store.apply(&key, &changes).await.unwrap());
    for k in &changes.remove {
        rec.entries.remove(k);
    }
    rec.entries.extend(changes.set.clone());
    let loaded = store.load(&key).await.unwrap().unwrap();
    assert_eq!(loaded.entries.len(), 1701 - 999);
    assert_eq!(loaded.entries, rec.entries);
    cleanup(&url, &opts).await;
}
