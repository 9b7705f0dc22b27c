//! The cache API of a region through the public interface: get / put / contains /
//! remove, region and per-call expiry, namespaces and their clear, soft and hard
//! invalidation, counters, disabled regions, long keys and typed values.

use std::time::Duration;

use beaker_core::cache::{CacheManager, Region};
use beaker_core::config::{CacheConfig, RegionConfig};
use beaker_core::{Error, ManualClock};
use serde::{Deserialize, Serialize};

const EXPIRE: Duration = Duration::from_secs(60);

fn manager(region: RegionConfig) -> (CacheManager, ManualClock) {
    let clock = ManualClock::new();
    let config = CacheConfig::new().with_region("short", region);
    (CacheManager::builder(config).clock(clock.clone()).build().unwrap(), clock)
}

fn region() -> (Region, ManualClock) {
    let (caches, clock) = manager(RegionConfig::memory(Some(EXPIRE)));
    (caches.region("short").unwrap(), clock)
}

type Io<T> = Result<T, std::io::Error>;

/// `get_or_create` with a creator that must not run.
async fn cached_only(region: &Region, key: &str) -> u64 {
    region.get_or_create(key, || async { Io::Ok(u64::MAX) }).await.unwrap()
}

#[tokio::test]
async fn put_get_contains_remove() {
    let (region, _) = region();
    assert_eq!(region.get::<String>("k").await.unwrap(), None);
    assert!(!region.contains("k").await.unwrap());
    region.put("k", &"v".to_string(), None).await.unwrap();
    assert_eq!(region.get::<String>("k").await.unwrap().as_deref(), Some("v"));
    assert!(region.contains("k").await.unwrap());
    assert!(region.remove("k").await.unwrap());
    assert!(!region.remove("k").await.unwrap(), "second remove finds nothing");
    assert_eq!(region.get::<String>("k").await.unwrap(), None);
}

#[tokio::test]
async fn values_expire_with_the_region_and_per_call() {
    let (region, clock) = region();
    region.put("region", &1u64, None).await.unwrap();
    region.put("short", &2u64, Some(Duration::from_secs(5))).await.unwrap();
    region.put("long", &3u64, Some(Duration::from_secs(600))).await.unwrap();

    clock.advance(Duration::from_secs(6));
    assert_eq!(region.get::<u64>("short").await.unwrap(), None, "per-call expire passed");
    assert_eq!(region.get::<u64>("region").await.unwrap(), Some(1));

    clock.advance(EXPIRE);
    assert_eq!(region.get::<u64>("region").await.unwrap(), None, "region expire passed");
    assert!(!region.contains("region").await.unwrap());
    assert_eq!(region.get::<u64>("long").await.unwrap(), Some(3), "per-call expire outlives the region's");
}

#[tokio::test]
async fn get_or_create_with_stores_for_the_given_expiry() {
    let (region, clock) = region();
    let v = region.get_or_create_with("k", Some(Duration::from_secs(2)), || async { Io::Ok(7u64) }).await.unwrap();
    assert_eq!(v, 7);
    assert_eq!(cached_only(&region, "k").await, 7);
    clock.advance(Duration::from_secs(3));
    let v = region.get_or_create_with("k", None, || async { Io::Ok(8u64) }).await.unwrap();
    assert_eq!(v, 8, "stale after its own expiry: regenerated");
}

#[tokio::test]
async fn namespaces_are_isolated_and_clear_only_their_own() {
    let (region, _) = region();
    let a = region.namespace("a");
    let b = region.namespace("b");
    a.put("k", &1u64, None).await.unwrap();
    b.put("k", &2u64, None).await.unwrap();
    region.put("k", &3u64, None).await.unwrap();
    assert_eq!(a.get::<u64>("k").await.unwrap(), Some(1));
    assert_eq!(b.get::<u64>("k").await.unwrap(), Some(2));

    a.clear().await.unwrap();
    assert_eq!(a.get::<u64>("k").await.unwrap(), None);
    assert_eq!(b.get::<u64>("k").await.unwrap(), Some(2));
    assert_eq!(region.get::<u64>("k").await.unwrap(), Some(3));

    a.put("k", &4u64, None).await.unwrap();
    assert_eq!(a.get::<u64>("k").await.unwrap(), Some(4), "a cleared namespace is usable again");
}

#[tokio::test]
async fn soft_invalidation_makes_values_stale_but_servable() {
    let (region, _) = region();
    let other_ns = region.namespace("other");
    region.put("k", &1u64, None).await.unwrap();
    other_ns.put("k", &10u64, None).await.unwrap();

    region.invalidate_soft();
    assert_eq!(region.get::<u64>("k").await.unwrap(), None, "get never returns a stale value");
    assert_eq!(other_ns.get::<u64>("k").await.unwrap(), None, "the whole region, all namespaces");
    // Uncontended, the caller that finds the stale value regenerates it.
    let v = region.get_or_create("k", || async { Io::Ok(2u64) }).await.unwrap();
    assert_eq!(v, 2);
    assert_eq!(region.get::<u64>("k").await.unwrap(), Some(2), "fresh after regeneration");
}

#[tokio::test]
async fn hard_invalidation_makes_values_absent() {
    let (region, _) = region();
    region.put("k", &1u64, None).await.unwrap();
    region.invalidate_hard();
    assert_eq!(region.get::<u64>("k").await.unwrap(), None);
    assert!(!region.contains("k").await.unwrap());
    let v = region.get_or_create("k", || async { Io::Ok(5u64) }).await.unwrap();
    assert_eq!(v, 5, "no stale value to serve: the creator ran");
}

#[tokio::test]
async fn counters_count_hits_misses_creations_and_errors() {
    let (region, clock) = region();
    assert_eq!(region.get::<u64>("k").await.unwrap(), None); // miss
    let _ = region.get_or_create("k", || async { Io::Ok(1u64) }).await.unwrap(); // miss + creation
    let _ = region.get::<u64>("k").await.unwrap(); // hit
    assert_eq!(cached_only(&region, "k").await, 1); // hit
    let failed = region.get_or_create("e", || async { Io::<u64>::Err(std::io::Error::other("boom")) }).await;
    assert!(matches!(failed, Err(Error::Creator(_))), "the creator's error comes back");
    clock.advance(EXPIRE * 2);
    let _ = region.get_or_create("k", || async { Io::Ok(2u64) }).await.unwrap(); // stale, regenerated: miss + creation
    let s = region.stats();
    assert_eq!((s.hits, s.creations), (2, 2), "{s:?}");
    assert_eq!(s.misses, 4, "{s:?}");
    assert_eq!(s.errors, 1, "{s:?}");
    assert_eq!(s.stale_serves, 0, "nobody else was waiting: {s:?}");
}

#[tokio::test]
async fn a_disabled_region_stores_nothing_and_always_creates() {
    let (caches, _) = manager(RegionConfig::memory(Some(EXPIRE)).with_enabled(false));
    let region = caches.region("short").unwrap();
    region.put("k", &1u64, None).await.unwrap();
    assert_eq!(region.get::<u64>("k").await.unwrap(), None);
    assert_eq!(region.get_or_create("k", || async { Io::Ok(2u64) }).await.unwrap(), 2);
    assert_eq!(region.get_or_create("k", || async { Io::Ok(3u64) }).await.unwrap(), 3);
}

#[tokio::test]
async fn long_keys_are_hashed_and_stay_distinct() {
    let (caches, _) = manager(RegionConfig::memory(Some(EXPIRE)).with_key_length(16));
    let region = caches.region("short").unwrap();
    let long_a = format!("{}a", "x".repeat(300));
    let long_b = format!("{}b", "x".repeat(300));
    region.put(&long_a, &1u64, None).await.unwrap();
    region.put(&long_b, &2u64, None).await.unwrap();
    assert_eq!(region.get::<u64>(&long_a).await.unwrap(), Some(1));
    assert_eq!(region.get::<u64>(&long_b).await.unwrap(), Some(2));
    assert!(region.remove(&long_a).await.unwrap());
    assert_eq!(region.get::<u64>(&long_b).await.unwrap(), Some(2));
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Report {
    title: String,
    rows: Vec<u32>,
}

#[tokio::test]
async fn typed_values_round_trip_and_a_wrong_type_is_an_error() {
    let (region, _) = region();
    let report = Report { title: "q3".into(), rows: vec![1, 2, 3] };
    region.put("r", &report, None).await.unwrap();
    assert_eq!(region.get::<Report>("r").await.unwrap(), Some(report));
    assert!(matches!(region.get::<u64>("r").await, Err(Error::Deserialize { .. })));
    // `get_or_create` treats the wrong type as a miss and overwrites it.
    assert_eq!(region.get_or_create("r", || async { Io::Ok(9u64) }).await.unwrap(), 9);
    assert_eq!(region.get::<u64>("r").await.unwrap(), Some(9));
}

#[test]
fn unknown_regions_are_a_clear_error() {
    let (caches, _) = manager(RegionConfig::memory(None));
    let e = caches.region("nope").unwrap_err().to_string();
    assert!(e.contains("nope"), "{e}");
}

#[test]
fn the_coarse_system_clock_follows_the_real_one() {
    use beaker_core::{Clock, SystemClock};
    use std::time::UNIX_EPOCH;
    let ms = |t: std::time::SystemTime| t.duration_since(UNIX_EPOCH).unwrap().as_millis() as u64;
    for _ in 0..3 {
        let before = ms(SystemClock.now());
        let coarse = SystemClock.now_millis_coarse();
        let after = ms(SystemClock.now());
        assert!(coarse <= after, "never ahead of the real clock: {coarse} > {after}");
        // Generous: the refreshing thread may be descheduled on a busy machine.
        assert!(coarse + 1_000 >= before, "at most a little behind: {coarse} vs {before}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test]
async fn values_expire_on_the_system_clock_too() {
    let config = CacheConfig::new().with_region("real", RegionConfig::memory(Some(Duration::from_millis(50))));
    let region = CacheManager::new(config).unwrap().region("real").unwrap();
    region.put("k", &1u64, None).await.unwrap();
    assert_eq!(region.get::<u64>("k").await.unwrap(), Some(1));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(region.get::<u64>("k").await.unwrap(), None);
}
