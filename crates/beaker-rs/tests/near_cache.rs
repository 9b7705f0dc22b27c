//! The near-cache options through the facade: refused by name where they would do
//! nothing, and on Redis, sessions and cache regions that two managers (two processes'
//! worth) share coherently, with one creator per dogpile.
//!
//! `BEAKER_TEST_REDIS_URL` chooses the server (default `redis://127.0.0.1:6379`); an
//! unreachable one skips loudly, unless `CI=true`.

#![cfg(feature = "redis")]

mod common;

use std::time::Duration;

use beaker_rs::config::{CacheConfig, RegionConfig};
use beaker_rs::SessionConfig;
use beaker_testkit::fixtures::cookie_pair;
use beaker_testkit::skip_or_fail;
use common::{assert_one_creator, redis_url, run_prefix};

fn session_config(pairs: &[(&str, &str)]) -> SessionConfig {
    // The fixture's secret has a comma, which a configuration map reads as two secrets.
    let mut all = vec![("session.secret", "a near cache test secret without commas")];
    all.extend_from_slice(pairs);
    SessionConfig::from_map(all).unwrap()
}

#[tokio::test]
async fn near_cache_options_that_would_do_nothing_are_refused_by_name() {
    for (pairs, key) in [
        (vec![("session.type", "memory"), ("session.near_cache", "true")], "session.near_cache"),
        (vec![("session.type", "cookie"), ("session.near_cache", "true")], "session.near_cache"),
        (vec![("session.url", "sqlite::memory:"), ("session.near_cache_bytes", "1000")], "session.near_cache_bytes"),
        (
            vec![("session.url", "redis://127.0.0.1:1"), ("session.near_cache_entries", "10")],
            "session.near_cache_entries",
        ),
    ] {
        let err = beaker_rs::session_manager(session_config(&pairs)).await.unwrap_err().to_string();
        assert!(err.contains(key), "{pairs:?}: {err}");
    }
    let bad = SessionConfig::from_map([("session.near_cache", "maybe")]).unwrap_err().to_string();
    assert!(bad.contains("session.near_cache"), "{bad}");
    let zero = SessionConfig::from_map([("session.near_cache_entries", "0")]).unwrap_err().to_string();
    assert!(zero.contains("near_cache_entries"), "{zero}");

    let cache = CacheConfig::from_env_vars([
        ("BEAKER_CACHE_REGIONS".to_owned(), "hot".to_owned()),
        ("BEAKER_CACHE_HOT_TYPE".to_owned(), "memory".to_owned()),
        ("BEAKER_CACHE_HOT_NEAR_CACHE".to_owned(), "true".to_owned()),
    ])
    .unwrap();
    let err = beaker_rs::cache_manager(cache).await.unwrap_err().to_string();
    assert!(err.contains("cache.hot.near_cache"), "{err}");
}

/// One request on manager A that writes, then one on manager B that reads (started after
/// A's response), 300 rounds each way: every write is seen.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_managers_with_near_caches_see_each_others_writes() {
    let url = redis_url();
    let prefix = run_prefix("near-sessions");
    let config = session_config(&[
        ("session.url", url.as_str()),
        ("session.key_prefix", prefix.as_str()),
        ("session.near_cache", "true"),
        ("session.near_cache_entries", "1000"),
    ]);
    let (a, b) = match (beaker_rs::session_manager(config.clone()).await, beaker_rs::session_manager(config).await) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(e), _) | (_, Err(e)) => return skip_or_fail("redis", &format!("{url}: {e}")),
    };
    let first = a.start([""]);
    first.insert("n", &0u64).await.unwrap();
    let cookie = cookie_pair(a.finish(&first).await.unwrap()[0].as_str());
    for (writer, reader) in [(&a, &b), (&b, &a)] {
        for round in 1..=300u64 {
            let warm = reader.start([cookie.as_str()]);
            warm.get::<u64>("n").await.unwrap();
            reader.finish(&warm).await.unwrap();
            let w = writer.start([cookie.as_str()]);
            w.insert("n", &round).await.unwrap();
            writer.finish(&w).await.unwrap();
            let r = reader.start([cookie.as_str()]);
            assert_eq!(r.get::<u64>("n").await.unwrap(), Some(round), "a stale read");
            reader.finish(&r).await.unwrap();
        }
    }
    // Logout on A: B never serves the ended session again.
    let out = a.start([cookie.as_str()]);
    out.invalidate().await.unwrap();
    a.finish(&out).await.unwrap();
    let after = b.start([cookie.as_str()]);
    assert_eq!(after.get::<u64>("n").await.unwrap(), None, "an ended session was served");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_tier_regions_on_two_managers_still_run_one_creator() {
    let url = redis_url();
    let mut region = RegionConfig::memory(Some(Duration::from_secs(5))).with_url(url.as_str()).unwrap();
    region.backend_options.insert("key_prefix".into(), run_prefix("near-dogpile"));
    region.backend_options.insert("near_cache".into(), "true".into());
    let config = CacheConfig::new().with_region("shared", region);
    let (a, b) = match (beaker_rs::cache_manager(config.clone()).await, beaker_rs::cache_manager(config).await) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(e), _) | (_, Err(e)) => return skip_or_fail("redis", &format!("{url}: {e}")),
    };
    for trial in 0..20 {
        let key = format!("key-{trial}");
        assert_one_creator(&a, &b, "shared", &key).await;
        // A put on one manager is what the other reads next.
        let (ra, rb) = (a.region("shared").unwrap(), b.region("shared").unwrap());
        ra.put(&key, &(trial as u64 + 100), None).await.unwrap();
        assert_eq!(rb.get::<u64>(&key).await.unwrap(), Some(trial as u64 + 100));
    }
}
