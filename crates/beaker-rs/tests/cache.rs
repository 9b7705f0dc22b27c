//! Cache regions through the facade, on real backends. Huge expiries saturate. The dogpile
//! rule holds across processes: two cache managers built
//! by `beaker_rs::cache_manager` (two processes' worth: separate in-process locks, one
//! Redis region) run one creator for concurrent misses of one key, because the facade gives
//! core a way to wait for the other holder's lock.
//!
//! `BEAKER_TEST_REDIS_URL` chooses the server (default `redis://127.0.0.1:6379`); an
//! unreachable one skips loudly, unless `CI=true`. Keys live under a prefix of this run's
//! own and expire within seconds.

#![cfg(feature = "redis")]

mod common;

use std::time::Duration;

use beaker_rs::config::{CacheConfig, RegionConfig};
use beaker_testkit::skip_or_fail;
use common::{assert_one_creator, redis_url, run_prefix};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_managers_sharing_a_redis_region_run_one_creator() {
    let url = redis_url();
    let mut region = RegionConfig::memory(Some(Duration::from_secs(5))).with_url(url.as_str()).unwrap();
    region.backend_options.insert("key_prefix".into(), run_prefix("dogpile"));
    let config = CacheConfig::new().with_region("shared", region);
    let (a, b) = match (beaker_rs::cache_manager(config.clone()).await, beaker_rs::cache_manager(config).await) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(e), _) | (_, Err(e)) => return skip_or_fail("redis", &format!("{url}: {e}")),
    };
    for trial in 0..5 {
        assert_one_creator(&a, &b, "shared", &format!("key-{trial}")).await;
    }
}

/// `Duration::MAX` (or any expiry past what `SystemTime` holds) saturates: no panic, the
/// value is stored and fresh, on memory, file and Redis regions alike.
#[tokio::test]
#[cfg(feature = "file")]
async fn huge_expiries_saturate_instead_of_panicking() {
    let url = redis_url();
    let dir = tempfile::tempdir().unwrap();
    let mut redis_region = RegionConfig::memory(None).with_url(url.as_str()).unwrap();
    redis_region.backend_options.insert("key_prefix".into(), run_prefix("huge"));
    let file_region = RegionConfig::memory(None).with_url(format!("file://{}", dir.path().display())).unwrap();
    let config = CacheConfig::new()
        .with_region("memory", RegionConfig::memory(Some(Duration::MAX)))
        .with_region("file", file_region.with_expire(Some(Duration::MAX)));
    let with_redis = config.clone().with_region("redis", redis_region.with_expire(Some(Duration::MAX)));
    let (caches, names) = match beaker_rs::cache_manager(with_redis).await {
        Ok(c) => (c, vec!["memory", "file", "redis"]),
        Err(e) => {
            skip_or_fail("redis", &format!("{url}: {e}"));
            (beaker_rs::cache_manager(config).await.unwrap(), vec!["memory", "file"])
        }
    };
    for name in names {
        let region = caches.region(name).unwrap();
        // The region's own expiry (Duration::MAX) and an explicit one.
        region.put("a", &1u32, None).await.unwrap();
        region.put("b", &2u32, Some(Duration::MAX)).await.unwrap();
        region.put("c", &3u32, Some(Duration::from_secs(u64::MAX / 2))).await.unwrap();
        for (key, value) in [("a", 1u32), ("b", 2), ("c", 3)] {
            assert_eq!(region.get::<u32>(key).await.unwrap(), Some(value), "{name}/{key}");
        }
        let n: u32 =
            region.get_or_create_with("d", Some(Duration::MAX), || async { Ok::<_, std::io::Error>(4) }).await.unwrap();
        assert_eq!(n, 4);
        region.remove("a").await.unwrap();
        region.remove("b").await.unwrap();
        region.remove("c").await.unwrap();
        region.remove("d").await.unwrap();
    }
}
