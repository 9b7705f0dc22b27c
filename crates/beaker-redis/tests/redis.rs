//! beaker-redis against a real Redis: the published conformance suites plus the checks
//! only a Redis test can make (TTL, key layout, reconnect, cluster).
//!
//! `BEAKER_TEST_REDIS_URL` (default `redis://127.0.0.1:6379`) and
//! `BEAKER_TEST_REDIS_CLUSTER_URL` (unset = skipped) choose the servers. An unreachable
//! server skips with a loud line, unless `CI=true`, where it fails.

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use beaker_core::cache::{CacheBackend, CacheEntry, LockOutcome};
use beaker_core::store::{Changes, Record, SessionStore, StoreKey};
use beaker_core::{SessionId, StoreError};
use beaker_redis::{RedisCache, RedisClient, RedisOptions, RedisStore};
use beaker_testkit::process::LocalServer;
use beaker_testkit::skip_or_fail;
use beaker_testkit::store::{CacheBackendSuite, SessionStoreSuite};
use redis::AsyncCommands;

/// A unique prefix per run, so that tests on a shared server never see each other's keys.
fn run_prefix(tag: &str) -> String {
    let id = StoreKey::for_id(&SessionId::generate(), true);
    format!("beaker-test:{tag}:{}:", &id.as_str()[..12])
}

fn options(tag: &str) -> RedisOptions {
    let p = run_prefix(tag);
    RedisOptions::default()
        .with_session_prefix(format!("{p}s:"))
        .with_cache_prefix(format!("{p}c:"))
        .with_lock_prefix(format!("{p}l:"))
}

async fn connect(suite: &str, url: &str, options: RedisOptions) -> Option<RedisClient> {
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
async fn single(tag: &str, suite: &str) -> Option<(String, RedisOptions, RedisClient)> {
    let (url, opts) = (single_url(), options(tag));
    let client = connect(suite, &url, opts.clone()).await?;
    Some((url, opts, client))
}

fn single_url() -> String {
    std::env::var("BEAKER_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// A raw connection for looking under the hood and for cleaning up.
async fn raw(url: &str) -> redis::aio::MultiplexedConnection {
    try_raw(url).await.unwrap()
}

/// [`raw`], for a server that may drop the connection (a failover in progress).
async fn try_raw(url: &str) -> redis::RedisResult<redis::aio::MultiplexedConnection> {
    redis::Client::open(url)?.get_multiplexed_async_connection().await
}

/// Deletes every key of this run with SCAN (never KEYS or FLUSHDB: the server is shared).
async fn cleanup(url: &str, options: &RedisOptions) {
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

fn record(expires: Option<SystemTime>) -> Record {
    let now = SystemTime::now();
    Record {
        entries: [("user".to_string(), b"\"ann\"".to_vec()), ("ключ 🔑".to_string(), "значение".as_bytes().to_vec())]
            .into(),
        created: now,
        accessed: now,
        expires,
    }
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

/// A `redis-server` of the test's own on a free port (no persistence), up and answering;
/// `None` (after a loud skip, or a failure under `CI=true`) when it cannot be started.
async fn own_redis(suite: &str) -> Option<LocalServer> {
    own_redis_with(suite, Vec::new()).await
}

fn redis_url(server: &LocalServer) -> String {
    format!("redis://{}", server.addr())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outage_is_unavailable_and_the_first_call_after_it_succeeds() {
    let suite = "redis reconnect";
    let Some(mut server) = own_redis(suite).await else { return };
    let url = redis_url(&server);
    let opts = RedisOptions::default().with_timeout(Duration::from_millis(700));
    let store = RedisStore::connect(&url, opts).await.unwrap();
    let key = StoreKey::for_id(&SessionId::generate(), true);
    assert!(store.create(&key, &record(None)).await.unwrap());

    server.stop();
    for _ in 0..3 {
        match store.load(&key).await {
            Err(e) => assert!(e.is_unavailable(), "outage reported as {e:?}"),
            Ok(r) => panic!("load succeeded with the server down: {r:?}"),
        }
    }
    let err = RedisStore::connect(&url, RedisOptions::default().with_timeout(Duration::from_millis(300))).await;
    assert!(err.as_ref().is_err_and(|e| e.is_unavailable()), "{err:?}");

    server.restart().await.expect("own redis-server restarts");
    // The data went with the server (no persistence); what matters is that the very first
    // call answers instead of failing on the dead connection.
    assert_eq!(store.load(&key).await.unwrap(), None);
    assert!(store.create(&key, &record(None)).await.unwrap());
    assert!(store.load(&key).await.unwrap().is_some());
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_stops_answering_fails_calls_at_the_deadline_and_recovers() {
    let suite = "redis hung server";
    let Some(server) = own_redis(suite).await else { return };
    let url = redis_url(&server);
    let store =
        RedisStore::connect(&url, RedisOptions::default().with_timeout(Duration::from_millis(500))).await.unwrap();
    let key = StoreKey::for_id(&SessionId::generate(), true);
    assert!(store.create(&key, &record(None)).await.unwrap());

    // The connection stays open but nothing answers: only the call deadline ends the call.
    server.signal("STOP");
    for _ in 0..2 {
        let outcome = tokio::time::timeout(Duration::from_secs(10), store.load(&key)).await;
        let err = outcome.expect("a call on a server that stopped answering never ended").unwrap_err();
        assert!(err.is_unavailable(), "a hung server reported as {err:?}");
    }
    server.signal("CONT");
    // The late replies to the abandoned calls are dropped; the next call gets its own.
    let record = store.load(&key).await.unwrap().expect("the record is still there");
    assert!(record.entries.contains_key("user"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_passes_the_conformance_suites() {
    let suite = "redis cluster suites";
    let Ok(url) = std::env::var("BEAKER_TEST_REDIS_CLUSTER_URL") else {
        return skip_or_fail(suite, "BEAKER_TEST_REDIS_CLUSTER_URL is not set");
    };
    let opts = options("cluster");
    let Some(client) = connect(suite, &url, opts.clone()).await else { return };
    assert!(client.is_cluster());
    assert_worker_round_trip(&url, &opts);
    let store = RedisStore::new(client.clone());
    lifecycle_races(Arc::new(store.clone())).await;
    SessionStoreSuite::new(Arc::new(store)).with_real_time_expiry().run().await;
    let cache = RedisCache::new(client);
    CacheBackendSuite::new(Arc::new(cache.clone())).run().await;

    // Enough entries to land on every master; clear must find them all.
    let entry = CacheEntry { value: b"v".to_vec(), stored_at: SystemTime::now(), fresh_until: None };
    for i in 0..200 {
        cache.put("spread", &format!("key-{i}"), &entry, Some(Duration::from_secs(120))).await.unwrap();
    }
    cache.put("kept", "key-0", &entry, Some(Duration::from_secs(120))).await.unwrap();
    cache.clear("spread").await.unwrap();
    for i in 0..200 {
        assert!(cache.get("spread", &format!("key-{i}")).await.unwrap().is_none(), "key-{i} survived clear");
    }
    assert!(cache.get("kept", "key-0").await.unwrap().is_some());
    cache.clear("kept").await.unwrap();
}

/// A current-thread runtime, as each actix-web worker thread runs one.
fn current_thread_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

/// Connects to `url` on a current-thread runtime that nobody drives afterwards (like a
/// `main` that only waits for its server: the shared connection's I/O task lives there).
/// Then, on another thread with runtimes of its own (an actix-web worker), creates a
/// record, and reads it back on a second runtime of that thread (the first one's
/// connection went with it), and deletes it. Everything runs on threads of its own, so
/// async tests can call it too.
fn worker_round_trip(url: &str, opts: &RedisOptions) -> (Result<bool, StoreError>, Result<Option<Record>, StoreError>) {
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
fn assert_worker_round_trip(url: &str, opts: &RedisOptions) {
    let (created, loaded) = worker_round_trip(url, opts);
    assert!(created.expect("the worker's create"), "the worker's create did not create");
    assert_eq!(loaded.expect("the worker's load").map(|r| r.entries), Some(record(None).entries));
}

#[test]
fn a_worker_thread_calls_on_a_connection_of_its_own() {
    let (url, opts) = (single_url(), options("threads"));
    if current_thread_runtime().block_on(connect("redis thread connections", &url, opts.clone())).is_none() {
        return;
    }
    assert_worker_round_trip(&url, &opts);
    // With one shared connection, the worker's call waits on `origin` until its deadline.
    let one = opts.clone().with_thread_connections(false).with_timeout(Duration::from_millis(300));
    let (created, _) = worker_round_trip(&url, &one);
    assert!(created.as_ref().is_err_and(|e| e.is_unavailable()), "{created:?}");
    current_thread_runtime().block_on(cleanup(&url, &opts));
}

/// `connected_clients` of `server`, once it equals `want` (within 5 s), else the last value.
async fn clients_become(server: &LocalServer, want: i64) -> i64 {
    let mut conn = raw(&redis_url(server)).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let info: String = redis::cmd("INFO").arg("clients").query_async(&mut conn).await.unwrap();
        let n = info
            .lines()
            .find_map(|l| l.strip_prefix("connected_clients:"))
            .and_then(|v| v.trim().parse::<i64>().ok())
            .unwrap_or(-1);
        // Minus the connection asking.
        if n - 1 == want || tokio::time::Instant::now() > deadline {
            return n - 1;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[test]
fn a_thread_connection_closes_with_its_thread_or_once_its_client_is_gone() {
    let main = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let Some(server) = main.block_on(own_redis("redis thread connections")) else { return };
    let url = redis_url(&server);
    let connect = || main.block_on(RedisStore::connect(&url, RedisOptions::default())).unwrap();
    let key = StoreKey::for_id(&SessionId::generate(), true);

    // A worker thread with its own current-thread runtime, loading with whatever store
    // it is sent; it answers after each load.
    let (to_worker, jobs) = std::sync::mpsc::channel::<Option<RedisStore>>();
    let (done, from_worker) = std::sync::mpsc::channel::<Result<(), StoreError>>();
    let worker = std::thread::spawn(move || {
        let runtime = current_thread_runtime();
        while let Ok(Some(store)) = jobs.recv() {
            let outcome = runtime.block_on(store.load(&key)).map(|_| ());
            drop(store);
            done.send(outcome).unwrap();
        }
    });
    let on_worker = |store: RedisStore| {
        to_worker.send(Some(store)).unwrap();
        from_worker.recv().unwrap().unwrap();
    };

    let first = connect();
    assert_eq!(main.block_on(clients_become(&server, 1)), 1);
    on_worker(first.clone());
    assert_eq!(main.block_on(clients_become(&server, 2)), 2, "the worker opened one connection of its own");
    on_worker(first.clone());
    assert_eq!(main.block_on(clients_become(&server, 2)), 2, "the worker reuses its connection");

    // The first client is dropped: its shared connection closes at once; the worker's
    // closes when the worker next opens a connection.
    drop(first);
    assert_eq!(main.block_on(clients_become(&server, 1)), 1);
    let second = connect();
    on_worker(second.clone());
    assert_eq!(main.block_on(clients_become(&server, 2)), 2, "the dropped client's connection was let go");

    // The worker thread ends: its connection closes with it.
    to_worker.send(None).unwrap();
    worker.join().unwrap();
    assert_eq!(main.block_on(clients_become(&server, 1)), 1);
    drop(second);
}

/// [`own_redis`] with `args` after its own. Nothing goes to disk: no snapshots, and a
/// replica loads what it syncs straight from the socket; anything redis-server still
/// writes lands in the temporary directory, never in the crate.
async fn own_redis_with(suite: &str, args: Vec<String>) -> Option<LocalServer> {
    let dir = std::env::temp_dir();
    let spawn = move |port: u16| {
        Command::new("redis-server")
            .args(["--port", &port.to_string(), "--save", "", "--appendonly", "no", "--bind", "127.0.0.1"])
            .args(["--repl-diskless-load", "swapdb", "--dbfilename", &format!("beaker-test-{port}.rdb")])
            .arg("--dir")
            .arg(&dir)
            .args(&args)
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

/// Runs `query` against `server` until `done` holds for its answer (within 30 s).
async fn until<T: redis::FromRedisValue>(
    server: &LocalServer,
    what: &str,
    query: redis::Cmd,
    done: impl Fn(&T) -> bool,
) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        // A fresh connection each time: a failover kills the instances' client connections.
        // Any failure, connecting included, is "not yet".
        let answer = match try_raw(&redis_url(server)).await {
            Ok(mut conn) => query.query_async::<T>(&mut conn).await.ok(),
            Err(_) => None,
        };
        if answer.as_ref().is_some_and(&done) {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "gave up waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Sends the command `words` (split at spaces) to `server`, retrying on a fresh connection
/// for up to 10 s when the connection fails: the instances of a failover drop their
/// clients. A server error naming one of `done_if` means an earlier try went through.
async fn admin(server: &LocalServer, words: &str, done_if: &[&str]) -> redis::Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let mut parts = words.split(' ');
        let mut cmd = redis::cmd(parts.next().unwrap_or_default());
        for part in parts {
            cmd.arg(part);
        }
        let outcome = match try_raw(&redis_url(server)).await {
            Ok(mut conn) => cmd.query_async::<redis::Value>(&mut conn).await,
            Err(e) => Err(e),
        };
        match outcome {
            Ok(value) => return value,
            Err(e) if done_if.iter().any(|d| e.to_string().contains(d)) => return redis::Value::Nil,
            Err(e) if e.is_io_error() || e.is_connection_dropped() || e.is_connection_refusal() => {
                assert!(tokio::time::Instant::now() < deadline, "{words}: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("{words}: {e}"),
        }
    }
}

/// The fields of the hash `key` on `server`.
async fn hash_fields(server: &LocalServer, key: &str) -> Vec<String> {
    redis::from_redis_value(admin(server, &format!("HKEYS {key}"), &[]).await).unwrap()
}

fn info(section: &str) -> redis::Cmd {
    let mut cmd = redis::cmd("INFO");
    cmd.arg(section);
    cmd
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sentinel_passes_the_conformance_suites_and_follows_a_failover() {
    let suite = "redis sentinel";
    // A master and its replica, then one sentinel watching them (started once the
    // replica is in sync, so that its first look at the master already finds it).
    let Some(master) = own_redis(suite).await else { return };
    let of_master = vec!["--replicaof".into(), "127.0.0.1".into(), master.port().to_string()];
    let Some(replica) = own_redis_with(suite, of_master).await else { return };
    until(&replica, "the replica to sync", info("replication"), |i: &String| i.contains("master_link_status:up")).await;
    let dir = std::env::temp_dir().join(format!("beaker-sentinel-{}", &run_prefix("s")[13..25]));
    std::fs::create_dir_all(&dir).unwrap();
    let sentinel_dir = dir.clone();
    let master_port = master.port();
    let conf = dir.join("sentinel.conf");
    let spawn = move |port: u16| {
        // The sentinel rewrites its configuration file: one of its own per start.
        let text = format!(
            "port {port}\nbind 127.0.0.1\ndir {dir}\nsentinel monitor beakermaster 127.0.0.1 {master_port} 1\n\
             sentinel down-after-milliseconds beakermaster 1000\nsentinel failover-timeout beakermaster 5000\n",
            dir = dir.display()
        );
        std::fs::write(&conf, text)?;
        Command::new("redis-server").arg(&conf).arg("--sentinel").stdout(Stdio::null()).stderr(Stdio::null()).spawn()
    };
    let sentinel = match LocalServer::start(spawn).await {
        Ok(s) => s,
        Err(e) => return skip_or_fail(suite, &format!("cannot start a sentinel: {e}")),
    };
    let mut replicas = redis::cmd("SENTINEL");
    replicas.arg("REPLICAS").arg("beakermaster");
    until(&sentinel, "the sentinel to see the replica", replicas, |r: &Vec<Vec<String>>| r.len() == 1).await;

    let url = format!("redis+sentinel://{}/beakermaster", sentinel.addr());
    let opts = options("sentinel");
    assert_worker_round_trip(&url, &opts);
    let client = RedisClient::connect(&url, opts).await.expect("connects through the sentinel");
    let store = RedisStore::new(client.clone());
    SessionStoreSuite::new(Arc::new(store.clone())).with_real_time_expiry().run().await;
    CacheBackendSuite::new(Arc::new(RedisCache::new(client))).with_real_time_expiry().run().await;

    // A failover: the replica becomes the master and the old master its replica, alive
    // and refusing writes. The store follows: the write after it lands on the new master.
    let key = StoreKey::for_id(&SessionId::generate(), true);
    assert!(store.create(&key, &record(None)).await.unwrap());
    admin(&master, "WAIT 1 5000", &[]).await;
    admin(&sentinel, "SENTINEL FAILOVER beakermaster", &["INPROG"]).await;
    until(&replica, "the replica to be promoted", info("replication"), |i: &String| i.contains("role:master")).await;
    until(&master, "the old master to follow it", info("replication"), |i: &String| i.contains("role:slave")).await;
    let mut changes = Changes {
        clear: false,
        set: [("after".to_string(), b"\"failover\"".to_vec())].into(),
        remove: Default::default(),
        accessed: SystemTime::now(),
        expires: None,
    };
    assert!(store.apply(&key, &changes).await.expect("a write after the failover"), "the record went missing");
    changes.set.clear();
    let loaded = store.load(&key).await.unwrap().expect("the record, on the new master");
    assert_eq!(loaded.entries.get("after").map(Vec::as_slice), Some(b"\"failover\"".as_slice()));
    let on_new_master = hash_fields(&replica, &store.redis_key(&key)).await;
    assert!(on_new_master.iter().any(|f| f.ends_with("after")), "{on_new_master:?}");

    // A switch that leaves clients connected (an operator's `REPLICAOF`, then the sentinel
    // told of the new master): the store's connection now reaches a replica, which
    // answers writes with `READONLY`. The store asks the sentinel again.
    // A worker thread (its own runtime, so its own connection) reads before the switch and
    // writes after it: its connection must follow too.
    let (ready, read_done) = std::sync::mpsc::channel();
    let (go, write_now) = std::sync::mpsc::channel::<Changes>();
    let worker = std::thread::spawn({
        let (store, key) = (store.clone(), key.clone());
        move || {
            let runtime = current_thread_runtime();
            ready.send(runtime.block_on(store.load(&key)).map(|r| r.is_some())).unwrap();
            let changes = write_now.recv().unwrap();
            runtime.block_on(store.apply(&key, &changes))
        }
    });
    assert!(read_done.recv().unwrap().expect("the worker's read"), "the worker found no record");
    admin(&master, "REPLICAOF NO ONE", &[]).await;
    admin(&replica, &format!("REPLICAOF 127.0.0.1 {}", master.port()), &[]).await;
    until(&replica, "the switch back", info("replication"), |i: &String| i.contains("master_link_status:up")).await;
    admin(&sentinel, "SENTINEL REMOVE beakermaster", &["No such master"]).await;
    admin(&sentinel, &format!("SENTINEL MONITOR beakermaster 127.0.0.1 {} 1", master.port()), &["Duplicate"]).await;
    changes.set.insert("again".to_string(), b"\"switched\"".to_vec());
    changes.accessed = SystemTime::now();
    assert!(store.apply(&key, &changes).await.expect("a write after the switch"), "the record went missing");
    changes.set = [("worker".to_string(), b"\"switched too\"".to_vec())].into();
    go.send(changes).unwrap();
    let written = worker.join().unwrap();
    assert!(written.expect("the worker's write after the switch"), "the record went missing for the worker");
    let on_master = hash_fields(&master, &store.redis_key(&key)).await;
    for field in ["again", "worker"] {
        assert!(on_master.iter().any(|f| f.ends_with(field)), "{field} missing: {on_master:?}");
    }
    drop(sentinel);
    let _ = std::fs::remove_dir_all(sentinel_dir);
}

/// The commands clients send to `server`, as `MONITOR` reports them: the names, in order,
/// of every command from a client connection (the commands a script runs are reported
/// apart, from `lua`, and left out; so is the marker that ends each batch).
struct Monitor {
    lines: tokio::io::Lines<tokio::io::BufReader<tokio::net::TcpStream>>,
    /// The connection that sends the markers, opened once (a new connection's own setup
    /// commands must not land inside a batch).
    marker: redis::aio::MultiplexedConnection,
    marks: u64,
}

impl Monitor {
    async fn start(server: &LocalServer) -> Monitor {
        use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
        let mut stream = tokio::net::TcpStream::connect(server.addr()).await.unwrap();
        stream.write_all(b"MONITOR\r\n").await.unwrap();
        let mut lines = tokio::io::BufReader::new(stream).lines();
        assert_eq!(lines.next_line().await.unwrap().as_deref(), Some("+OK"));
        Monitor { lines, marker: raw(&redis_url(server)).await, marks: 0 }
    }

    /// The client commands since the last call (lowercase names).
    async fn commands(&mut self) -> Vec<String> {
        self.marks += 1;
        let mark = format!("beaker-monitor-mark-{}", self.marks);
        let _: String = redis::cmd("ECHO").arg(&mark).query_async(&mut self.marker).await.unwrap();
        let mut seen = Vec::new();
        let deadline = Duration::from_secs(10);
        loop {
            let line = tokio::time::timeout(deadline, self.lines.next_line()).await.unwrap().unwrap().unwrap();
            if line.contains(&mark) {
                return seen;
            }
            // `+1700000000.123456 [0 127.0.0.1:50000] "hgetall" "key"`; `[0 lua]` for a
            // script's own calls.
            let Some((origin, args)) = line.split_once("] ") else { continue };
            if !origin.ends_with(" lua") {
                seen.push(args.split('"').nth(1).unwrap_or_default().to_lowercase());
            }
        }
    }
}

/// One request through the engine: the cookie in, `body` on the session, the Set-Cookie
/// values out; returns the commands it sent to Redis.
async fn request_commands<F: std::future::Future<Output = ()>>(
    monitor: &mut Monitor,
    manager: &beaker_core::SessionManager,
    cookie: &str,
    body: impl FnOnce(beaker_core::Session) -> F,
) -> (Vec<String>, Vec<beaker_core::SetCookie>) {
    monitor.commands().await;
    let session = manager.start([cookie]);
    body(session.clone()).await;
    let set_cookies = manager.finish(&session).await.unwrap().into_set_cookies();
    (monitor.commands().await, set_cookies)
}

/// The round trips the docs promise (and the benchmark target asks): one for a read-only
/// request, two for a modifying one, none for a request that never uses its session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_make_the_round_trips_the_docs_promise() {
    let suite = "redis round trips";
    let Some(server) = own_redis(suite).await else { return };
    let url = redis_url(&server);
    let store = RedisStore::connect(&url, RedisOptions::default()).await.unwrap();
    // An idle timeout, so that a read could touch; the default touch interval keeps a
    // request right after a write from touching.
    let config = beaker_core::SessionConfig::new()
        .with_secret("round trips test secret, 32 bytes")
        .unwrap()
        .with_timeout(Duration::from_secs(600));
    let manager = beaker_core::SessionManager::builder(config).store(store).build().unwrap();
    let mut monitor = Monitor::start(&server).await;

    // Create the session, then one modifying request so that both scripts are loaded:
    // the counts below are the steady state.
    let (_, set) =
        request_commands(&mut monitor, &manager, "", |s| async move { s.insert("n", &1u64).await.unwrap() }).await;
    let cookie = set[0].as_str().split(';').next().unwrap().to_owned();
    request_commands(&mut monitor, &manager, &cookie, |s| async move { s.insert("n", &2u64).await.unwrap() }).await;

    let (calls, set) = request_commands(&mut monitor, &manager, &cookie, |s| async move {
        assert_eq!(s.get::<u64>("n").await.unwrap(), Some(2));
    })
    .await;
    assert_eq!(calls, ["hgetall"], "a read-only request: one round trip");
    assert!(set.is_empty());

    let (calls, set) = request_commands(&mut monitor, &manager, &cookie, |s| async move {
        let n: u64 = s.get("n").await.unwrap().unwrap();
        s.insert("n", &(n + 1)).await.unwrap();
    })
    .await;
    assert_eq!(calls, ["hgetall", "evalsha"], "a modifying request: two round trips");
    assert!(set.is_empty(), "the id is unchanged: no Set-Cookie");

    let (calls, set) = request_commands(&mut monitor, &manager, &cookie, |_| async {}).await;
    assert!(calls.is_empty(), "an untouched request: {calls:?}");
    assert!(set.is_empty());

    // The value the modifying request wrote is what the next one reads.
    request_commands(&mut monitor, &manager, &cookie, |s| async move {
        assert_eq!(s.get::<u64>("n").await.unwrap(), Some(3));
    })
    .await;

    // A read whose touch is due (here: every request) makes a second round trip.
    let config = manager.config().clone().with_touch_interval(Duration::ZERO);
    let store = RedisStore::connect(&url, RedisOptions::default()).await.unwrap();
    let touching = beaker_core::SessionManager::builder(config).store(store).build().unwrap();
    // The first touch also loads the touch script (`NOSCRIPT`, `SCRIPT LOAD`): not counted.
    request_commands(&mut monitor, &touching, &cookie, |s| async move {
        s.get::<u64>("n").await.unwrap();
    })
    .await;
    let (calls, _) = request_commands(&mut monitor, &touching, &cookie, |s| async move {
        assert_eq!(s.get::<u64>("n").await.unwrap(), Some(3));
    })
    .await;
    assert_eq!(calls, ["hgetall", "evalsha"], "a read that touches: two round trips");
}

/// Whole requests racing a logout and a login, through a manager on `store`.
async fn lifecycle_races(store: Arc<dyn beaker_core::store::SessionStore>) {
    let config = beaker_core::SessionConfig::new().with_secret("a test secret, long enough").unwrap();
    let manager = beaker_core::SessionManager::builder(config).shared_store(store).build().unwrap();
    beaker_testkit::lifecycle::LifecycleRaceSuite::new(manager).run().await;
}
