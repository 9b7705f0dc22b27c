//! Helpers shared by the beaker-redis test files: the servers (the shared one named by
//! `BEAKER_TEST_REDIS_URL`, default `redis://127.0.0.1:6379`, or a `redis-server` of the
//! test's own), per-run key prefixes, raw connections and cleanup, and the checks several
//! topologies run. An unreachable server skips with a loud line, unless `CI=true`, where it
//! fails.
// Each test file uses a part of these.
#![allow(dead_code)]

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::SystemTime;

use beaker_core::store::{Record, SessionStore, StoreKey};
use beaker_core::{SessionId, StoreError};
use beaker_redis::{RedisClient, RedisOptions, RedisStore};
use beaker_testkit::process::LocalServer;
use beaker_testkit::skip_or_fail;
use redis::AsyncCommands;

/// A unique prefix per run, so that tests on a shared server never see each other's keys.
pub(crate) fn run_prefix(tag: &str) -> String {
    let id = StoreKey::for_id(&SessionId::generate(), true);
    format!("beaker-test:{tag}:{}:", &id.as_str()[..12])
}

pub(crate) fn options(tag: &str) -> RedisOptions {
    let p = run_prefix(tag);
    RedisOptions::default()
        .with_session_prefix(format!("{p}s:"))
        .with_cache_prefix(format!("{p}c:"))
        .with_lock_prefix(format!("{p}l:"))
}

pub(crate) async fn connect(suite: &str, url: &str, options: RedisOptions) -> Option<RedisClient> {
    match RedisClient::connect(url, options).await {
        Ok(c) => Some(c),
        Err(e) => {
            skip_or_fail(suite, &format!("cannot reach {url}: {e}"));
            None
        }
    }
}

/// The shared server's URL, this test's options (own prefixes) and a client on them;
/// `None` (after a loud skip, or a failure under `CI=true`) when the server is unreachable.
pub(crate) async fn single(tag: &str, suite: &str) -> Option<(String, RedisOptions, RedisClient)> {
    let (url, opts) = (single_url(), options(tag));
    let client = connect(suite, &url, opts.clone()).await?;
    Some((url, opts, client))
}

pub(crate) fn single_url() -> String {
    std::env::var("BEAKER_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// A raw connection for looking under the hood and for cleaning up.
pub(crate) async fn raw(url: &str) -> redis::aio::MultiplexedConnection {
    try_raw(url).await.unwrap()
}

/// Kills the connections named `name` on the server at `url` (the tracking connection of
/// a near cache); how many.
pub(crate) async fn kill_by_name(url: &str, name: &str) -> usize {
    let mut conn = raw(url).await;
    let list: String = redis::cmd("CLIENT").arg("LIST").query_async(&mut conn).await.unwrap();
    let mut killed = 0;
    for line in list.lines() {
        let field = |f: &str| line.split(' ').find_map(|kv| kv.strip_prefix(f)).map(str::to_owned);
        if field("name=").as_deref() == Some(name) {
            let id = field("id=").unwrap();
            let _: () = redis::cmd("CLIENT").arg("KILL").arg("ID").arg(&id).query_async(&mut conn).await.unwrap();
            killed += 1;
        }
    }
    killed
}

/// [`raw`], for a server that may drop the connection (a failover in progress).
pub(crate) async fn try_raw(url: &str) -> redis::RedisResult<redis::aio::MultiplexedConnection> {
    redis::Client::open(url)?.get_multiplexed_async_connection().await
}

/// Deletes every key of this run with SCAN (never KEYS or FLUSHDB: the server is shared).
pub(crate) async fn cleanup(url: &str, options: &RedisOptions) {
    let mut conn = raw(url).await;
    let common = options.session_prefix.trim_end_matches("s:").to_owned();
    let mut cursor = 0u64;
    loop {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(format!("{common}*"))
            .arg("COUNT")
            .arg(1000)
            .query_async(&mut conn)
            .await
            .unwrap();
        if !keys.is_empty() {
            let _: i64 = conn.del(keys).await.unwrap();
        }
        if next == 0 {
            break;
        }
        cursor = next;
    }
}

pub(crate) fn record(expires: Option<SystemTime>) -> Record {
    let now = SystemTime::now();
    Record {
        entries: [("user".to_string(), b"\"ann\"".to_vec()), ("ключ 🔑".to_string(), "значение".as_bytes().to_vec())]
            .into(),
        created: now,
        accessed: now,
        expires,
        owner: None,
    }
}

/// A `redis-server` of the test's own on a free port (no persistence), up and answering;
/// `None` (after a loud skip, or a failure under `CI=true`) when it cannot be started.
pub(crate) async fn own_redis(suite: &str) -> Option<LocalServer> {
    own_redis_with(suite, |_| Vec::new()).await
}

pub(crate) fn redis_url(server: &LocalServer) -> String {
    format!("redis://{}", server.addr())
}

/// A current-thread runtime, as each actix-web worker thread runs one.
pub(crate) fn current_thread_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

/// Connects to `url` on a current-thread runtime that nobody drives afterwards (like a
/// `main` that only waits for its server: the shared connection's I/O task lives there).
/// Then, on another thread with runtimes of its own (an actix-web worker), creates a
/// record, and reads it back on a second runtime of that thread (the first one's
/// connection went with it), and deletes it. Everything runs on threads of its own, so
/// async tests can call it too.
pub(crate) fn worker_round_trip(
    url: &str,
    opts: &RedisOptions,
) -> (Result<bool, StoreError>, Result<Option<Record>, StoreError>) {
    let (url, opts) = (url.to_owned(), opts.clone());
    std::thread::spawn(move || {
        let origin = current_thread_runtime();
        let store = RedisStore::new(origin.block_on(RedisClient::connect(&url, opts)).expect("connects"));
        let worker = std::thread::spawn(move || {
            let key = StoreKey::for_id(&SessionId::generate(), true);
            let runtime = current_thread_runtime();
            let created = runtime.block_on(store.create(&key, &record(None)));
            drop(runtime);
            let runtime = current_thread_runtime();
            let loaded = runtime.block_on(store.load(&key));
            let _ = runtime.block_on(store.delete(&key));
            (created, loaded)
        });
        worker.join().unwrap()
    })
    .join()
    .unwrap()
}

/// [`worker_round_trip`] succeeds, on a connection of the worker's own.
pub(crate) fn assert_worker_round_trip(url: &str, opts: &RedisOptions) {
    let (created, loaded) = worker_round_trip(url, opts);
    assert!(created.expect("the worker's create"), "the worker's create did not create");
    assert_eq!(loaded.expect("the worker's load").map(|r| r.entries), Some(record(None).entries));
}

/// [`own_redis`] with `args(port)` after its own, computed for each port tried (so that
/// another port the server needs can be chosen afresh on each try, as the first may have
/// been taken meanwhile). Nothing goes to disk: no snapshots, and a replica loads what
/// it syncs straight from the socket; anything redis-server still writes lands in the
/// temporary directory, never in the crate.
pub(crate) async fn own_redis_with(
    suite: &str,
    args: impl Fn(u16) -> Vec<String> + Send + Sync + 'static,
) -> Option<LocalServer> {
    let dir = std::env::temp_dir();
    let spawn = move |port: u16| {
        Command::new("redis-server")
            .args(["--port", &port.to_string(), "--save", "", "--appendonly", "no", "--bind", "127.0.0.1"])
            .args(["--repl-diskless-load", "swapdb", "--dbfilename", &format!("beaker-test-{port}.rdb")])
            .arg("--dir")
            .arg(&dir)
            .args(args(port))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
    };
    match LocalServer::start(spawn).await {
        Ok(server) => Some(server),
        Err(e) => {
            skip_or_fail(suite, &format!("cannot start redis-server: {e}"));
            None
        }
    }
}

/// Whole requests racing a logout and a login, through a manager on `store`.
pub(crate) async fn lifecycle_races(store: Arc<dyn beaker_core::store::SessionStore>) {
    beaker_testkit::lifecycle::LifecycleRaceSuite::new(beaker_testkit::fixtures::manager_on(store)).run().await;
}
