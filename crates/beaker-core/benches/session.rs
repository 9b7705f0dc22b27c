//! Session engine benchmarks on the built-in memory store (no I/O): the engine's own cost
//! per request, the figure the state machine must not make worse.
//!
//! - `counter`: load, increment, save (a per-key delta) of one session.
//! - `read`: load and read one key, no write and no cookie.
//! - `login`: load, set a key and regenerate the id (a move under a fresh id).
//!
//! Run with `cargo bench -p beaker-core --bench session`.

use beaker_core::{MemoryStore, SessionConfig, SessionManager};
use criterion::{criterion_group, criterion_main, Criterion};
use futures_util::FutureExt as _;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

fn manager() -> SessionManager {
    let config = SessionConfig::new().with_secret("a benchmark secret of 16+ bytes").unwrap();
    SessionManager::builder(config).store(MemoryStore::new()).build().unwrap()
}

async fn new_session(m: &SessionManager) -> String {
    let s = m.start(std::iter::empty::<&str>());
    s.insert("n", &0_i64).await.unwrap();
    s.insert("user", "ada").await.unwrap();
    let out = m.finish(&s).await.unwrap();
    out[0].as_str().split(';').next().unwrap().to_owned()
}

fn requests(c: &mut Criterion) {
    let rt = runtime();
    let m = manager();
    let cookie = rt.block_on(new_session(&m));
    let mut group = c.benchmark_group("memory");
    group.bench_function("counter", |b| {
        b.to_async(&rt).iter(|| async {
            let s = m.start([cookie.as_str()]);
            let n: i64 = s.get("n").await.unwrap().unwrap_or(0);
            s.insert("n", &(n + 1)).await.unwrap();
            std::hint::black_box(m.finish(&s).await.unwrap())
        })
    });
    group.bench_function("read", |b| {
        b.to_async(&rt).iter(|| async {
            let s = m.start([cookie.as_str()]);
            let user: Option<String> = s.get("user").await.unwrap();
            std::hint::black_box((user, m.finish(&s).await.unwrap()))
        })
    });
    group.bench_function("login", |b| {
        b.to_async(&rt).iter_batched(
            // The memory store never pends: the setup runs the future to completion in place
            // (criterion calls it inside the runtime, where `block_on` is not allowed).
            || new_session(&m).now_or_never().expect("the memory store never pends"),
            |cookie| {
                let m = &m;
                async move {
                    let s = m.start([cookie.as_str()]);
                    s.insert("user", "grace").await.unwrap();
                    s.regenerate_id().await.unwrap();
                    std::hint::black_box(m.finish(&s).await.unwrap())
                }
            },
            criterion::BatchSize::SmallInput,
        )
    });
    group.finish();
}

criterion_group!(benches, requests);
criterion_main!(benches);
