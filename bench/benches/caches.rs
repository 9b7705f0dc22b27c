//! Cache micro-benchmarks per backend (the memory region against the raw engines it is
//! compared with are in `beaker-core/benches/cache.rs`):
//!
//! - `cache_hit/<backend>`: `Region::get` of a key that is there.
//! - `cache_miss/<backend>`: `Region::get` of a key that is not.
//! - `cache_hit_x32/<backend>`: 32 concurrent `Region::get`s of that key (the time for all
//!   32). A two-tier region (`redis_near`: Redis with its process-local tier) serves a hit
//!   only after a `PING` on its tracking connection that one whole batch shares, so this
//!   is the row that shows what it costs under load; `cache_hit` shows one request alone.
//! - `cache_get_or_create/<backend>`: `Region::get_or_create` of a new key each time: the
//!   miss, the dogpile lock (a distributed one on Redis and Memcached), the creator and
//!   the write.
//!
//! Backends: memory, file, SQLite, Redis, Redis with its near cache, Memcached, PostgreSQL; the value is a small
//! struct (about 100 bytes as JSON). A backend that cannot be opened is skipped with a
//! loud `SKIPPED` line. Servers as in `sessions.rs`: `BEAKER_TEST_REDIS_URL`,
//! `BEAKER_TEST_POSTGRES_URL` (with defaults), `BEAKER_TEST_MEMCACHED_URL` (skipped when
//! unset). Each region is cleared at the end.
//!
//! Run with `cargo bench -p beaker-bench --bench caches` (or `cargo xtask bench`).

use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use beaker_rs::cache::Region;
use beaker_rs::config::{CacheConfig, RegionConfig};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use serde::{Deserialize, Serialize};

/// What a cached lookup typically holds: a small record.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
struct Profile {
    id: u64,
    name: String,
    email: String,
    roles: Vec<String>,
}

fn profile() -> Profile {
    Profile { id: 42, name: "Ada Lovelace".into(), email: "ada@example.org".into(), roles: vec!["admin".into()] }
}

fn env_or(var: &str, default: &str) -> String {
    std::env::var(var).ok().filter(|v| !v.is_empty()).unwrap_or_else(|| default.to_owned())
}

/// The region configuration of every backend to measure (a loud line for those that
/// cannot be).
fn backends(dir: &std::path::Path, prefix: &str) -> Vec<(&'static str, RegionConfig)> {
    let hour = Some(Duration::from_secs(3600));
    let url = |u: String| RegionConfig::memory(hour).with_url(u).expect("a valid cache URL");
    let with = |mut r: RegionConfig, k: &str, v: &str| {
        r.backend_options.insert(k.into(), v.into());
        r
    };
    let redis = with(url(env_or("BEAKER_TEST_REDIS_URL", "redis://127.0.0.1:6379")), "key_prefix", prefix);
    let mut out = vec![
        ("memory", RegionConfig::memory(hour)),
        ("file", url(format!("file:{}", dir.join("cache").display()))),
        ("sqlite", url(format!("sqlite:{}", dir.join("cache.sqlite3").display()))),
        ("redis", redis.clone()),
        ("redis_near", with(redis, "near_cache", "true")),
    ];
    match std::env::var("BEAKER_TEST_MEMCACHED_URL") {
        Ok(u) if !u.is_empty() => out.push(("memcached", with(url(u), "key_prefix", prefix))),
        _ => eprintln!("\n!!! SKIPPED cache benches on memcached: BEAKER_TEST_MEMCACHED_URL is unset\n"),
    }
    let postgres = url(env_or("BEAKER_TEST_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/test"));
    out.push(("postgres", with(postgres, "table_name", "beaker_bench_cache")));
    out
}

/// The region named `name` on its backend; `None` (after a loud line) when it cannot be
/// opened.
async fn open(name: &'static str, region: RegionConfig) -> Option<Region> {
    let config = CacheConfig::new().with_region(name, region);
    match tokio::time::timeout(Duration::from_secs(5), beaker_rs::cache_manager(config)).await {
        Ok(Ok(manager)) => match manager.region(name) {
            Ok(region) => Some(region.namespace(&format!("bench-{}", std::process::id()))),
            Err(e) => {
                eprintln!("\n!!! SKIPPED cache benches on {name}: {e}\n");
                None
            }
        },
        Ok(Err(e)) => {
            eprintln!("\n!!! SKIPPED cache benches on {name}: {e}\n");
            None
        }
        Err(_) => {
            eprintln!("\n!!! SKIPPED cache benches on {name}: the backend did not open within 5 s\n");
            None
        }
    }
}

fn caches(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let prefix = format!("beaker-bench:criterion:{}:", std::process::id());
    let mut regions = Vec::new();
    for (name, config) in backends(dir.path(), &prefix) {
        let Some(region) = rt.block_on(open(name, config)) else { continue };
        // A backend that answers but cannot store is no benchmark: say so, skip it.
        let stored = rt.block_on(async {
            region.put("hit", &profile(), None).await?;
            region.get::<Profile>("hit").await
        });
        match stored {
            Ok(Some(p)) if p == profile() => regions.push((name, region)),
            other => eprintln!("\n!!! SKIPPED cache benches on {name}: a stored value read back as {other:?}\n"),
        }
    }

    let mut group = c.benchmark_group("cache_hit");
    for (name, region) in &regions {
        group.bench_function(BenchmarkId::from_parameter(name), |b| {
            b.to_async(&rt).iter(|| async { std::hint::black_box(region.get::<Profile>("hit").await.unwrap()) })
        });
    }
    group.finish();

    let mut group = c.benchmark_group("cache_hit_x32");
    for (name, region) in &regions {
        group.bench_function(BenchmarkId::from_parameter(name), |b| {
            b.to_async(&rt).iter(|| async {
                let hits = futures_util::future::join_all((0..32).map(|_| region.get::<Profile>("hit"))).await;
                std::hint::black_box(hits.into_iter().filter(|h| h.as_ref().unwrap().is_some()).count())
            })
        });
    }
    group.finish();

    let mut group = c.benchmark_group("cache_miss");
    for (name, region) in &regions {
        group.bench_function(BenchmarkId::from_parameter(name), |b| {
            b.to_async(&rt).iter(|| async { std::hint::black_box(region.get::<Profile>("absent").await.unwrap()) })
        });
    }
    group.finish();

    let mut group = c.benchmark_group("cache_get_or_create");
    let fresh = AtomicU64::new(0);
    for (name, region) in &regions {
        group.bench_function(BenchmarkId::from_parameter(name), |b| {
            b.to_async(&rt).iter(|| async {
                let key = format!("new-{}", fresh.fetch_add(1, Ordering::Relaxed));
                let value = region.get_or_create(&key, || async { Ok::<_, Infallible>(profile()) }).await;
                std::hint::black_box(value.unwrap())
            })
        });
    }
    group.finish();

    for (name, region) in &regions {
        if let Err(e) = rt.block_on(region.clear()) {
            eprintln!("cache benches: clearing {name} failed: {e}");
        }
    }
}

criterion_group!(benches, caches);
criterion_main!(benches);
