//! Cache benchmarks, peers in the same run:
//!
//! - `memory_hit`: a hot-key hit of a memory region against a raw `get` of the engine it
//!   wraps (quick_cache), and moka for reference. Target: region within 1.5x of raw.
//! - `stale_storm`: 1,000 concurrent `get_or_create` on an expired key whose creator takes
//!   200 ms. Timed: how long the 999 callers that do not regenerate take to get an answer
//!   (beaker serves them the stale value at once), against moka's `get_with`, where every
//!   caller waits for the one initialiser.
//!
//! Run with `cargo bench -p beaker-core --bench cache` (or `cargo xtask bench`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use beaker_core::cache::{CacheManager, Region};
use beaker_core::config::{CacheConfig, RegionConfig};
use beaker_core::ManualClock;
use criterion::{criterion_group, criterion_main, Criterion};
use futures_util::future::join_all;

const CREATOR: Duration = Duration::from_millis(200);
const CALLERS: usize = 1000;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

fn region(clock: &ManualClock) -> Region {
    let config = CacheConfig::new().with_region("bench", RegionConfig::memory(Some(Duration::from_secs(60))));
    CacheManager::builder(config).clock(clock.clone()).build().unwrap().region("bench").unwrap()
}

fn memory_hit(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("memory_hit");

    // The system clock, as in production: freshness is judged on its coarse reading.
    let config = CacheConfig::new().with_region("bench", RegionConfig::memory(Some(Duration::from_secs(60))));
    let region = CacheManager::new(config).unwrap().region("bench").unwrap();
    rt.block_on(region.put("hot", &42u64, None)).unwrap();
    group.bench_function("beaker_region_get", |b| {
        b.to_async(&rt).iter(|| async { std::hint::black_box(region.get::<u64>("hot").await.unwrap()) })
    });

    let raw: quick_cache::sync::Cache<(u64, String), Arc<u64>> = quick_cache::sync::Cache::new(10_000);
    raw.insert((0, "hot".to_owned()), Arc::new(42));
    let key = (0u64, "hot".to_owned());
    group.bench_function("quick_cache_get", |b| b.to_async(&rt).iter(|| async { std::hint::black_box(raw.get(&key)) }));

    let moka: moka::future::Cache<String, u64> = moka::future::Cache::new(10_000);
    rt.block_on(moka.insert("hot".to_owned(), 42));
    group.bench_function("moka_future_get", |b| {
        b.to_async(&rt).iter(|| async { std::hint::black_box(moka.get("hot").await) })
    });
    group.finish();
}

/// How long the callers that do not regenerate wait, for one storm on an expired key.
async fn beaker_storm() -> Duration {
    let clock = ManualClock::new();
    let region = region(&clock);
    region.put("k", &1u64, None).await.unwrap();
    clock.advance(Duration::from_secs(61));
    let (started_tx, started_rx) = tokio::sync::oneshot::channel::<()>();
    let regenerator = {
        let region = region.clone();
        tokio::spawn(async move {
            region
                .get_or_create("k", || async move {
                    let _ = started_tx.send(());
                    tokio::time::sleep(CREATOR).await;
                    Ok::<_, std::io::Error>(2u64)
                })
                .await
        })
    };
    started_rx.await.unwrap();
    let t = Instant::now();
    let values =
        join_all((1..CALLERS).map(|_| region.get_or_create("k", || async { Ok::<_, std::io::Error>(3u64) }))).await;
    let elapsed = t.elapsed();
    assert!(values.iter().all(|v| matches!(v, Ok(1))), "the stale value was served");
    assert_eq!(regenerator.await.unwrap().unwrap(), 2);
    elapsed
}

/// The same storm on moka: an expired key, one initialiser, everybody waits for it.
async fn moka_storm() -> Duration {
    let cache: moka::future::Cache<&'static str, u64> =
        moka::future::Cache::builder().time_to_live(Duration::from_millis(1)).build();
    cache.insert("k", 1).await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    let (started_tx, started_rx) = tokio::sync::oneshot::channel::<()>();
    let first = {
        let cache = cache.clone();
        tokio::spawn(async move {
            cache
                .get_with("k", async move {
                    let _ = started_tx.send(());
                    tokio::time::sleep(CREATOR).await;
                    2u64
                })
                .await
        })
    };
    started_rx.await.unwrap();
    let t = Instant::now();
    join_all((1..CALLERS).map(|_| cache.get_with("k", async { 3u64 }))).await;
    let elapsed = t.elapsed();
    first.await.unwrap();
    elapsed
}

fn stale_storm(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("stale_storm");
    group.sample_size(10).warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(3));
    group.bench_function("beaker_others_wait", |b| {
        b.iter_custom(|iters| rt.block_on(async { futures_sum(iters, beaker_storm).await }))
    });
    group.bench_function("moka_get_with_others_wait", |b| {
        b.iter_custom(|iters| rt.block_on(async { futures_sum(iters, moka_storm).await }))
    });
    group.finish();
}

async fn futures_sum<F, Fut>(iters: u64, storm: F) -> Duration
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Duration>,
{
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        total += storm().await;
    }
    total
}

criterion_group!(benches, memory_hit, stale_storm);
criterion_main!(benches);
