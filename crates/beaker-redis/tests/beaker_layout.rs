//! `BeakerRedisStore` against a real Redis: Beaker's key and TTL, the store contract, and
//! concurrent requests changing different keys of one session (each trial races real
//! writers through the compare-and-set).
//!
//! `BEAKER_TEST_REDIS_URL` (default `redis://127.0.0.1:6379`); an unreachable server skips
//! with a loud line, unless `CI=true`, where it fails. Ids are fresh per run and every
//! record is deleted at the end.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use beaker_core::compat::BeakerSerializer;
use beaker_core::store::{Changes, Owner, Record, SessionStore, StoreKey};
use beaker_core::{DataSerializer, SessionId, StoreError};
use beaker_redis::{BeakerRedisStore, RedisClient, RedisOptions};
use beaker_testkit::skip_or_fail;
use redis::AsyncCommands;

async fn store(suite: &str) -> Option<(BeakerRedisStore, redis::aio::MultiplexedConnection)> {
    let url = std::env::var("BEAKER_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let client = match RedisClient::connect(&url, RedisOptions::default()).await {
        Ok(c) => c,
        Err(e) => {
            skip_or_fail(suite, &format!("cannot reach {url}: {e}"));
            return None;
        }
    };
    let raw = redis::Client::open(url.as_str()).unwrap().get_multiplexed_async_connection().await.unwrap();
    Some((BeakerRedisStore::new(client), raw))
}

fn record(entries: &[(&str, i64)], expires: Option<SystemTime>) -> Record {
    let now = SystemTime::now();
    Record {
        entries: entries.iter().map(|(k, v)| (k.to_string(), DataSerializer::Json.encode(v).unwrap())).collect(),
        created: now,
        accessed: now,
        expires,
        owner: None,
    }
}

fn key() -> StoreKey {
    StoreKey::for_id(&SessionId::generate(), false)
}

#[tokio::test]
async fn beakers_key_ttl_and_the_store_contract() {
    let Some((store, mut raw)) = store("beaker_layout contract").await else { return };
    let k = key();
    let rkey = format!("beaker_cache:{}:session", k.as_str());
    assert_eq!(store.redis_key(&k), rkey);

    let expires = SystemTime::now() + Duration::from_secs(60);
    assert!(store.create(&k, &record(&[("a", 1)], Some(expires))).await.unwrap());
    assert!(!store.create(&k, &record(&[("a", 2)], None)).await.unwrap(), "create never overwrites");
    let ttl: i64 = raw.pttl(&rkey).await.unwrap();
    assert!((170_000..=180_000).contains(&ttl), "Beaker's TTL is the timeout plus two minutes: {ttl}");

    let later = SystemTime::now() + Duration::from_secs(5);
    assert!(store.touch(&k, later, Some(later + Duration::from_secs(10))).await.unwrap());
    let loaded = store.load(&k).await.unwrap().expect("the record");
    // Beaker keeps times as float seconds: exact to well under a microsecond.
    let skew = loaded.accessed.duration_since(later).unwrap_or_else(|e| e.duration());
    assert!(skew < Duration::from_micros(1), "accessed moved to {skew:?} from the touch");
    assert_eq!(DataSerializer::decode::<i64>(&loaded.entries["a"]).unwrap(), 1);
    let ttl: i64 = raw.pttl(&rkey).await.unwrap();
    assert!((125_000..=135_000).contains(&ttl), "touch moves the TTL: {ttl}");

    store.delete(&k).await.unwrap();
    assert!(store.load(&k).await.unwrap().is_none());
    let changes = Changes {
        clear: false,
        set: BTreeMap::new(),
        remove: Default::default(),
        accessed: SystemTime::now(),
        expires: None,
        owner: None,
    };
    assert!(!store.apply(&k, &changes).await.unwrap(), "apply on a missing record writes nothing");
    assert!(!store.touch(&k, SystemTime::now(), None).await.unwrap());
    let exists: bool = raw.exists(&rkey).await.unwrap();
    assert!(!exists);
    store.delete(&k).await.unwrap();

    // Garbage under Beaker's key is a corrupt record, not a panic; pickle needs its serializer.
    let _: () = raw.set(&rkey, b"not a pickle").await.unwrap();
    assert!(matches!(store.load(&k).await, Err(beaker_core::StoreError::Corrupt { .. })));
    store.delete(&k).await.unwrap();
    let pickled = store.clone().with_serializer(BeakerSerializer::Pickle);
    assert!(pickled.create(&k, &record(&[("p", 7)], None)).await.unwrap());
    assert!(matches!(store.load(&k).await, Err(beaker_core::StoreError::Corrupt { .. })), "json cannot read pickle");
    let back = pickled.load(&k).await.unwrap().expect("the pickled record");
    assert_eq!(DataSerializer::decode::<i64>(&back.entries["p"]).unwrap(), 7);
    store.delete(&k).await.unwrap();
}

#[tokio::test]
async fn concurrent_writers_of_different_keys_all_survive() {
    let Some((store, _raw)) = store("beaker_layout races").await else { return };
    const TRIALS: usize = 20;
    const WRITERS: usize = 8;
    for trial in 0..TRIALS {
        let k = key();
        assert!(store.create(&k, &record(&[("base", 0)], None)).await.unwrap());
        let tasks: Vec<_> = (0..WRITERS)
            .map(|w| {
                let (store, k) = (store.clone(), k.clone());
                tokio::spawn(async move {
                    let changes = Changes {
                        clear: false,
                        set: [(format!("w{w}"), DataSerializer::Json.encode(&w).unwrap())].into(),
                        remove: Default::default(),
                        accessed: SystemTime::now(),
                        expires: None,
                        owner: None,
                    };
                    store.apply(&k, &changes).await
                })
            })
            .collect();
        for t in tasks {
            assert!(t.await.unwrap().expect("apply under contention"), "trial {trial}");
        }
        let r = store.load(&k).await.unwrap().expect("the record");
        let keys: Vec<_> = r.entries.keys().cloned().collect();
        assert_eq!(keys.len(), WRITERS + 1, "trial {trial}: a concurrent write was lost: {keys:?}");
        store.delete(&k).await.unwrap();
    }
}

#[tokio::test]
async fn an_owner_is_refused_not_dropped() {
    let Some((store, _raw)) = store("beaker_layout owner").await else { return };
    let owner = Owner { principal: "alice".into(), device: None };
    let fresh = key();
    let owned = Record { owner: Some(owner.clone()), ..record(&[("a", 1)], None) };
    let err = store.create(&fresh, &owned).await.unwrap_err();
    assert!(matches!(err, StoreError::Unsupported { store: "redis-beaker", .. }), "{err}");
    assert!(store.load(&fresh).await.unwrap().is_none(), "a refused create wrote a record");

    let k = key();
    assert!(store.create(&k, &record(&[("a", 1)], None)).await.unwrap());
    let now = SystemTime::now();
    let changes = Changes {
        clear: false,
        set: [("c".to_string(), DataSerializer::Json.encode(&3).unwrap())].into(),
        remove: Default::default(),
        accessed: now,
        expires: None,
        owner: Some(owner),
    };
    let err = store.apply(&k, &changes).await.unwrap_err();
    assert!(matches!(err, StoreError::Unsupported { .. }), "{err}");
    assert!(!store.load(&k).await.unwrap().unwrap().entries.contains_key("c"), "a refused apply wrote");
    for err in [store.sessions_of("alice").await.unwrap_err(), store.count().await.unwrap_err()] {
        assert!(matches!(err, StoreError::Unsupported { store: "redis-beaker", .. }), "{err}");
    }
    store.delete(&k).await.unwrap();
}
