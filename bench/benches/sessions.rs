//! Session micro-benchmarks (the cache ones are in `caches.rs`, per backend, and in
//! `beaker-core/benches/cache.rs`, the memory region against its raw engines):
//!
//! - `start`: [`SessionManager::start`] on no cookie, a valid signed cookie, a tampered
//!   cookie (verification fails), and the cookie store's start + first read (decryption).
//! - `request/<store>`: one whole modifying request on an existing session, as an adapter
//!   runs it: `start` with its cookie, read `n`, write `n + 1`, `finish` (load + modify +
//!   save). Stores: memory, cookie, file, SQLite, Redis, Memcached, PostgreSQL. A server
//!   whose store cannot be opened is skipped with a loud `SKIPPED` line.
//! - `serializer/<format>/<size>`: encode + decode of a small and a 10 KiB session value
//!   with JSON, MessagePack and bincode.
//!
//! Servers: `BEAKER_TEST_REDIS_URL` (default `redis://127.0.0.1:6379`),
//! `BEAKER_TEST_POSTGRES_URL` (default `postgres://postgres@127.0.0.1:5432/test`),
//! `BEAKER_TEST_MEMCACHED_URL` (no default: skipped when unset).
//!
//! Run with `cargo bench -p beaker-bench --bench sessions` (or `cargo xtask bench`).

use std::time::Duration;

use beaker_rs::{DataSerializer, SessionConfig, SessionManager};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use serde::{Deserialize, Serialize};

const SECRET: &str = "beaker-bench secret: not for production";

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

fn config() -> SessionConfig {
    SessionConfig::new().with_secret(SECRET).unwrap()
}

/// The `name=value` part of the first `Set-Cookie` of a new session holding `n = 0`.
async fn new_session(manager: &SessionManager) -> String {
    let session = manager.start(std::iter::empty());
    session.insert("n", &0i64).await.unwrap();
    let set = manager.finish(&session).await.unwrap();
    set[0].as_str().split(';').next().unwrap().to_owned()
}

fn start(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("start");
    let manager =
        rt.block_on(beaker_rs::session_manager(config().with_url("memory:"))).expect("a memory session manager");
    let cookie = rt.block_on(new_session(&manager));
    let tampered = {
        let mut t = cookie.clone().into_bytes();
        let last = t.len() - 1;
        t[last] = if t[last] == b'A' { b'B' } else { b'A' };
        String::from_utf8(t).unwrap()
    };
    let other = "theme=dark; lang=en";
    group.bench_function("no_cookie", |b| b.iter(|| std::hint::black_box(manager.start([other]))));
    let header = format!("{other}; {cookie}");
    group.bench_function("signed_cookie", |b| b.iter(|| std::hint::black_box(manager.start([header.as_str()]))));
    let header = format!("{other}; {tampered}");
    group.bench_function("tampered_cookie", |b| b.iter(|| std::hint::black_box(manager.start([header.as_str()]))));

    let cookies =
        rt.block_on(beaker_rs::session_manager(config().with_url("cookie:"))).expect("a cookie session manager");
    let cookie = rt.block_on(new_session(&cookies));
    group.bench_function("cookie_store_start_and_read", |b| {
        b.to_async(&rt).iter(|| async {
            let s = cookies.start([cookie.as_str()]);
            std::hint::black_box(s.get::<i64>("n").await.unwrap())
        })
    });
    group.finish();
}

/// A manager per store; `None` (after a loud line) when its server cannot be used.
async fn open(name: &str, config: SessionConfig) -> Option<SessionManager> {
    match tokio::time::timeout(Duration::from_secs(5), beaker_rs::session_manager(config)).await {
        Ok(Ok(m)) => Some(m),
        Ok(Err(e)) => {
            eprintln!("\n!!! SKIPPED request/{name}: {e}\n");
            None
        }
        Err(_) => {
            eprintln!("\n!!! SKIPPED request/{name}: the store did not open within 5 s\n");
            None
        }
    }
}

fn env_or(var: &str, default: &str) -> String {
    std::env::var(var).ok().filter(|v| !v.is_empty()).unwrap_or_else(|| default.to_owned())
}

fn request(c: &mut Criterion) {
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let prefix = format!("beaker-bench:criterion:{}:", std::process::id());
    let mut stores: Vec<(&str, SessionConfig)> = vec![
        ("memory", config().with_url("memory:")),
        ("cookie", config().with_url("cookie:")),
        ("file", config().with_url(format!("file:{}", dir.path().join("sessions").display()))),
        ("sqlite", config().with_url(format!("sqlite:{}", dir.path().join("sessions.sqlite3").display()))),
    ];
    let mut redis = config().with_url(env_or("BEAKER_TEST_REDIS_URL", "redis://127.0.0.1:6379"));
    redis.backend_options.insert("key_prefix".into(), prefix.clone());
    stores.push(("redis", redis));
    match std::env::var("BEAKER_TEST_MEMCACHED_URL") {
        Ok(url) if !url.is_empty() => {
            let mut memcached = config().with_url(url);
            memcached.backend_options.insert("key_prefix".into(), prefix.clone());
            stores.push(("memcached", memcached));
        }
        _ => eprintln!("\n!!! SKIPPED request/memcached: BEAKER_TEST_MEMCACHED_URL is unset\n"),
    }
    let mut postgres = config().with_url(env_or("BEAKER_TEST_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/test"));
    postgres.backend_options.insert("table_name".into(), "beaker_bench_sessions".into());
    stores.push(("postgres", postgres));

    let mut group = c.benchmark_group("request");
    for (name, config) in stores {
        let Some(manager) = rt.block_on(open(name, config)) else { continue };
        let cookie = rt.block_on(new_session(&manager));
        group.bench_function(BenchmarkId::new("load_modify_save", name), |b| {
            b.to_async(&rt).iter(|| async {
                let session = manager.start([cookie.as_str()]);
                let n: i64 = session.get("n").await.unwrap().unwrap_or(0);
                session.insert("n", &(n + 1)).await.unwrap();
                std::hint::black_box(manager.finish(&session).await.unwrap())
            })
        });
    }
    group.finish();
}

/// A typical session value: who is logged in, a counter, roles, and a variable payload.
#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct SessionData {
    user: String,
    n: i64,
    roles: Vec<String>,
    cart: Vec<(u32, String, u32)>,
}

fn session_data(items: usize) -> SessionData {
    SessionData {
        user: "alice@example.org".into(),
        n: 42,
        roles: vec!["admin".into(), "editor".into()],
        cart: (0..items).map(|i| (i as u32, format!("item number {i:05} in the cart"), 1 + i as u32 % 3)).collect(),
    }
}

fn serializers(c: &mut Criterion) {
    let small = session_data(2);
    // About 10 KiB as JSON.
    let large = session_data(257);
    let mut group = c.benchmark_group("serializer");
    for (format, serializer) in
        [("json", DataSerializer::Json), ("msgpack", DataSerializer::MessagePack), ("bincode", DataSerializer::Bincode)]
    {
        for (size, value) in [("small", &small), ("10KiB", &large)] {
            let bytes = serializer.encode(value).unwrap();
            assert_eq!(&DataSerializer::decode::<SessionData>(&bytes).unwrap(), value);
            if size == "10KiB" {
                eprintln!("serializer/{format}: the 10 KiB session is {} bytes encoded", bytes.len());
            }
            group.bench_function(BenchmarkId::new(format, size), |b| {
                b.iter(|| {
                    let bytes = serializer.encode(std::hint::black_box(value)).unwrap();
                    std::hint::black_box(DataSerializer::decode::<SessionData>(&bytes).unwrap())
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, start, request, serializers);
criterion_main!(benches);
