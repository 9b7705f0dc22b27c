//! beaker-redis beyond one node and one thread: Cluster (`BEAKER_TEST_REDIS_CLUSTER_URL`,
//! unset = skipped), Sentinel with a failover (servers of the test's own), and the
//! connections of worker threads.

mod common;

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use beaker_core::cache::{CacheBackend, CacheEntry};
use beaker_core::store::{Changes, Lookup, SessionStore, StoreKey};
use beaker_core::{SessionId, StoreError};
use beaker_redis::{NearCacheOptions, RedisCache, RedisClient, RedisOptions, RedisStore};
use beaker_testkit::process::LocalServer;
use beaker_testkit::skip_or_fail;
use beaker_testkit::store::{changes, CacheBackendSuite, SessionStoreSuite};
use common::{
    assert_worker_round_trip, cleanup, connect, current_thread_runtime, kill_by_name, lifecycle_races, options,
    own_redis, own_redis_with, raw, record, redis_url, run_prefix, single_url, try_raw, worker_round_trip,
};

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
    let cache = RedisCache::new(client.clone());
    CacheBackendSuite::new(Arc::new(cache.clone())).run().await;
    // The same with the near cache on: a tracking connection per master.
    let near = RedisStore::new(client.clone()).with_near_cache(NearCacheOptions::default()).await.unwrap();
    lifecycle_races(Arc::new(near.clone())).await;
    SessionStoreSuite::new(Arc::new(near.clone())).with_real_time_expiry().run().await;
    assert!(near.near_cache_stats().unwrap().hits > 0, "the suites never hit the tier: it is not in the path");
    let near_cache = RedisCache::new(client).with_near_cache(NearCacheOptions::default()).await.unwrap();
    CacheBackendSuite::new(Arc::new(near_cache)).run().await;

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

async fn near_value(near: &RedisStore, key: &StoreKey, field: &str) -> Option<Vec<u8>> {
    match near.lookup(key).await.unwrap() {
        Lookup::Live(record) => record.entries.get(field).cloned(),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sentinel_passes_the_conformance_suites_and_follows_a_failover() {
    let suite = "redis sentinel";
    // A master and its replica, then one sentinel watching them (started once the
    // replica is in sync, so that its first look at the master already finds it).
    let Some(master) = own_redis(suite).await else { return };
    let of_master = vec!["--replicaof".into(), "127.0.0.1".into(), master.port().to_string()];
    let Some(replica) = own_redis_with(suite, move |_| of_master.clone()).await else { return };
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
    // A near cache on the same client: its tier must never outlive the master it heard.
    let near = RedisStore::new(client.clone())
        .with_near_cache(NearCacheOptions::default())
        .await
        .expect("a tracking connection through the sentinel");
    SessionStoreSuite::new(Arc::new(store.clone())).with_real_time_expiry().run().await;
    CacheBackendSuite::new(Arc::new(RedisCache::new(client))).with_real_time_expiry().run().await;

    // A failover: the replica becomes the master and the old master its replica, alive
    // and refusing writes. The store follows: the write after it lands on the new master.
    let key = StoreKey::for_id(&SessionId::generate(), true);
    assert!(store.create(&key, &record(None)).await.unwrap());
    assert!(matches!(near.lookup(&key).await.unwrap(), Lookup::Live(_)));
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
        owner: None,
    };
    assert!(store.apply(&key, &changes).await.expect("a write after the failover"), "the record went missing");
    changes.set.clear();
    let loaded = store.load(&key).await.unwrap().expect("the record, on the new master");
    assert_eq!(loaded.entries.get("after").map(Vec::as_slice), Some(b"\"failover\"".as_slice()));
    let on_new_master = hash_fields(&replica, &store.redis_key(&key)).await;
    assert!(on_new_master.iter().any(|f| f.ends_with("after")), "{on_new_master:?}");
    assert_eq!(near_value(&near, &key, "after").await, Some(b"\"failover\"".to_vec()), "the tier outlived its master");
    // Reads bring the tracking connection back, on the new master, and the tier serves
    // hits again before the next switch.
    until_the_tier_serves(&near, &key, "the failover").await;

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
    // The tier's tracking connection still reaches the demoted node, which hears none of
    // the new master's writes: its barrier (`ROLE`) fails, and the tier is not served.
    assert_eq!(near_value(&near, &key, "again").await, Some(b"\"switched\"".to_vec()), "a stale read after the switch");

    // A master demoted while the tier's tracking connection stays on it, and left behind
    // (its replication link leads nowhere): a read the tier would send there, for a key it
    // does not hold, must not be answered by it.
    let key2 = StoreKey::for_id(&SessionId::generate(), true);
    assert!(store.create(&key2, &record(None)).await.unwrap());
    admin(&master, "WAIT 1 5000", &[]).await;
    until_the_tier_serves(&near, &key, "the switch").await;
    admin(&master, "REPLICAOF 127.0.0.1 1", &[]).await;
    admin(&replica, "REPLICAOF NO ONE", &[]).await;
    admin(&sentinel, "SENTINEL REMOVE beakermaster", &["No such master"]).await;
    admin(&sentinel, &format!("SENTINEL MONITOR beakermaster 127.0.0.1 {} 1", replica.port()), &["Duplicate"]).await;
    let late = Changes {
        clear: false,
        set: [("late".to_string(), b"\"left behind\"".to_vec())].into(),
        remove: Default::default(),
        accessed: SystemTime::now(),
        expires: None,
        owner: None,
    };
    assert!(store.apply(&key2, &late).await.expect("a write after the demotion"), "the record went missing");
    assert_eq!(
        near_value(&near, &key2, "late").await,
        Some(b"\"left behind\"".to_vec()),
        "the tier read from a demoted master"
    );
    drop(sentinel);
    let _ = std::fs::remove_dir_all(sentinel_dir);
}

/// Reads `key` through `near` until a read is a hit of its tier (the tracking connection
/// is back and the barrier passes), for at most 5 s.
async fn until_the_tier_serves(near: &RedisStore, key: &StoreKey, after: &str) {
    for _ in 0..100 {
        let hits = near.near_cache_stats().unwrap().hits;
        near.lookup(key).await.unwrap();
        if near.near_cache_stats().unwrap().hits > hits {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the tier never came back after {after}: {:?}", near.near_cache_stats());
}

/// The port of `server`'s cluster bus (`cluster-port`, or the port + 10,000 when 0).
async fn cluster_port(server: &LocalServer) -> Option<u16> {
    let reply = admin(server, "CONFIG GET cluster-port", &[]).await;
    let config: std::collections::HashMap<String, String> = redis::FromRedisValue::from_redis_value(reply).ok()?;
    match config.get("cluster-port")?.parse::<u16>().ok()? {
        0 => server.port().checked_add(10_000),
        bus => Some(bus),
    }
}

/// A Redis Cluster of the test's own: two masters on free ports (their cluster bus ports
/// chosen free as well on each try, not the port + 10,000 that may not exist), slots
/// 0–8191 on the first and 8192–16383 on the second; the servers and the
/// `redis+cluster://` URL. Their node files are `beaker-test-nodes-{tag}-{0,1}.conf` in
/// the temporary directory.
async fn own_cluster(suite: &str, tag: &str) -> Option<(LocalServer, LocalServer, String)> {
    let mut nodes = Vec::new();
    for i in 0..2 {
        let config = format!("beaker-test-nodes-{tag}-{i}.conf");
        // The bus port is chosen afresh on each try, with the server's: one chosen once
        // can be taken by another test's server before a retry, which would then fail too.
        let args = move |port: u16| {
            let bus = (0..8)
                .find_map(|_| {
                    let free = std::net::TcpListener::bind("127.0.0.1:0").ok()?.local_addr().ok()?.port();
                    (free != port).then_some(free)
                })
                .unwrap_or(0);
            [
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                &config,
                "--cluster-node-timeout",
                "2000",
                "--cluster-port",
                &bus.to_string(),
            ]
            .map(String::from)
            .to_vec()
        };
        let server = own_redis_with(suite, args).await?;
        let Some(bus) = cluster_port(&server).await else {
            skip_or_fail(suite, "the cluster node does not tell its bus port");
            return None;
        };
        nodes.push((server, bus));
    }
    let (b, b_bus) = nodes.pop()?;
    let (a, _) = nodes.pop()?;
    admin(&a, "CLUSTER ADDSLOTSRANGE 0 8191", &[]).await;
    admin(&b, "CLUSTER ADDSLOTSRANGE 8192 16383", &[]).await;
    admin(&a, &format!("CLUSTER MEET 127.0.0.1 {} {b_bus}", b.port()), &[]).await;
    for node in [&a, &b] {
        let mut info = redis::cmd("CLUSTER");
        info.arg("INFO");
        until(node, "the cluster to form", info, |i: &String| i.contains("cluster_state:ok")).await;
        let mut slots = redis::cmd("CLUSTER");
        slots.arg("SLOTS");
        until(node, "both masters to be known", slots, |s: &Vec<redis::Value>| s.len() == 2).await;
    }
    let url = format!("redis+cluster://{},{}", a.addr(), b.addr());
    Some((a, b, url))
}

/// Moves hash slot `slot`, with its keys, from `from` to `to` (`CLUSTER SETSLOT`
/// `IMPORTING`/`MIGRATING`, `MIGRATE`, then `NODE` on both).
async fn move_slot(from: &LocalServer, to: &LocalServer, slot: u16) {
    let id = |node: &LocalServer| {
        let node = redis_url(node);
        async move {
            let mut conn = raw(&node).await;
            redis::cmd("CLUSTER").arg("MYID").query_async::<String>(&mut conn).await.unwrap()
        }
    };
    let (from_id, to_id) = (id(from).await, id(to).await);
    admin(to, &format!("CLUSTER SETSLOT {slot} IMPORTING {from_id}"), &[]).await;
    admin(from, &format!("CLUSTER SETSLOT {slot} MIGRATING {to_id}"), &[]).await;
    let mut conn = raw(&redis_url(from)).await;
    let keys: Vec<Vec<u8>> =
        redis::cmd("CLUSTER").arg("GETKEYSINSLOT").arg(slot).arg(1000).query_async(&mut conn).await.unwrap();
    if !keys.is_empty() {
        let mut migrate = redis::cmd("MIGRATE");
        migrate.arg("127.0.0.1").arg(to.port()).arg("").arg(0).arg(5000).arg("KEYS").arg(&keys);
        let () = migrate.query_async(&mut conn).await.unwrap();
    }
    admin(to, &format!("CLUSTER SETSLOT {slot} NODE {to_id}"), &[]).await;
    admin(from, &format!("CLUSTER SETSLOT {slot} NODE {to_id}"), &[]).await;
}

/// The near cache on a cluster: a tracking connection per master. Two instances on a
/// cluster of the test's own: every read that starts after a write on the other instance
/// sees it, for sessions on both masters, across a killed tracking connection and across
/// a slot moved to the other master behind their backs (the tier then reads the new map
/// and serves hits again).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_near_cache_on_a_cluster_sees_every_write_across_kills_and_slot_moves() {
    let suite = "redis cluster near cache";
    let tag = run_prefix("c")[13..25].to_string();
    let Some((a, b, url)) = own_cluster(suite, &tag).await else { return };
    let opts = options("cluster-near");
    let name = |who: &str| format!("beaker-near-{who}-{}", &run_prefix("n")[13..25]);
    let (x_name, y_name) = (name("x"), name("y"));
    let instance = |client_name: String| {
        let (url, opts) = (url.clone(), opts.clone());
        async move {
            let client = RedisClient::connect(&url, opts).await.expect("connects to the cluster");
            RedisStore::new(client)
                .with_near_cache(NearCacheOptions::default().with_client_name(client_name))
                .await
                .expect("a tracking connection per master")
        }
    };
    let (x, y) = (instance(x_name.clone()).await, instance(y_name).await);
    let mut conn = raw(&redis_url(&a)).await;
    let mut keys = Vec::new();
    let mut on_a = Vec::new();
    for _ in 0..16 {
        let key = StoreKey::for_id(&SessionId::generate(), true);
        assert!(x.create(&key, &record(Some(SystemTime::now() + Duration::from_secs(120)))).await.unwrap());
        let slot: u16 =
            redis::cmd("CLUSTER").arg("KEYSLOT").arg(x.redis_key(&key)).query_async(&mut conn).await.unwrap();
        on_a.push(slot < 8192);
        keys.push((key, slot));
    }
    assert!(on_a.iter().any(|a| *a) && on_a.iter().any(|a| !*a), "16 sessions all on one master: {on_a:?}");

    let set = |v: &str| changes(&[("n", v.as_bytes())], &[], Some(SystemTime::now() + Duration::from_secs(120)));
    let mut killed = 0;
    for round in 0..60u32 {
        if round == 30 {
            // The tracking connection to the first master only: the tier goes all the same.
            killed = kill_by_name(&redis_url(&a), &x_name).await;
        }
        let (writer, reader) = if round % 2 == 0 { (&y, &x) } else { (&x, &y) };
        for (key, _) in &keys {
            let v = round.to_string();
            reader.lookup(key).await.unwrap();
            assert!(writer.apply(key, &set(&v)).await.unwrap());
            assert_eq!(near_value(reader, key, "n").await, Some(v.into_bytes()), "round {round}: a stale read");
        }
    }
    assert_eq!(killed, 1, "x had no tracking connection on the first master");
    let stats = x.near_cache_stats().unwrap();
    assert!(stats.hits > 200 && stats.invalidations > 200, "the tier was bypassed: {stats:?}");
    assert!(stats.resets >= 1, "the killed connection went unnoticed: {stats:?}");

    // A slot moves from the first master to the second while x holds one of its sessions.
    let (key, slot) = keys.iter().zip(&on_a).find(|(_, a)| **a).map(|(k, _)| k.clone()).unwrap();
    until_the_tier_serves(&x, &key, "the kill").await;
    let resets = x.near_cache_stats().unwrap().resets;
    move_slot(&a, &b, slot).await;
    assert!(y.apply(&key, &set("moved")).await.unwrap());
    assert_eq!(near_value(&x, &key, "n").await, Some(b"moved".to_vec()), "a stale read after the slot moved");
    // x found its slot map out of date (MOVED) and reads the new one: hits again, and
    // the second master's invalidations reach it.
    until_the_tier_serves(&x, &key, "the slot move").await;
    assert!(x.near_cache_stats().unwrap().resets > resets, "the old slot map was kept");
    for round in 0..50u32 {
        let v = format!("after-{round}");
        assert!(y.apply(&key, &set(&v)).await.unwrap());
        assert_eq!(near_value(&x, &key, "n").await, Some(v.into_bytes()), "round {round} after the move");
        x.lookup(&key).await.unwrap();
    }
    drop((x, y, a, b));
    for i in 0..2 {
        let _ = std::fs::remove_file(std::env::temp_dir().join(format!("beaker-test-nodes-{tag}-{i}.conf")));
    }
}

/// A degraded cluster (`cluster-require-full-coverage no`) with a slot no master serves:
/// the near cache sends that slot's keys to the cluster client and keeps serving the
/// others from the tier (no reconnect, no emptied tier for each request); once the slot
/// is served again, the new map is read and its keys are served from the tier as well.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_near_cache_keeps_serving_while_a_slot_has_no_master() {
    let suite = "redis cluster near cache";
    let tag = run_prefix("u")[13..25].to_string();
    let Some((a, b, url)) = own_cluster(suite, &tag).await else { return };
    for node in [&a, &b] {
        admin(node, "CONFIG SET cluster-require-full-coverage no", &[]).await;
    }
    let opts = options("cluster-unserved").with_timeout(Duration::from_secs(1));
    let name = format!("beaker-near-u-{}", &run_prefix("n")[13..25]);
    let client = RedisClient::connect(&url, opts).await.expect("connects to the cluster");
    let x = RedisStore::new(client)
        .with_near_cache(NearCacheOptions::default().with_client_name(name.clone()))
        .await
        .expect("a tracking connection per master");
    // Two sessions on the first master, in different slots.
    let mut conn = raw(&redis_url(&a)).await;
    let mut on_a: Vec<(StoreKey, u16)> = Vec::new();
    while on_a.len() < 2 {
        let key = StoreKey::for_id(&SessionId::generate(), true);
        let slot: u16 =
            redis::cmd("CLUSTER").arg("KEYSLOT").arg(x.redis_key(&key)).query_async(&mut conn).await.unwrap();
        if slot < 8192 && on_a.iter().all(|(_, s)| *s != slot) {
            assert!(x.create(&key, &record(Some(SystemTime::now() + Duration::from_secs(120)))).await.unwrap());
            on_a.push((key, slot));
        }
    }
    let [(served, _), (orphan, slot)] = <[_; 2]>::try_from(on_a).ok().unwrap();
    let assigned = |n: u32| move |info: &String| info.contains(&format!("cluster_slots_assigned:{n}\r"));
    for node in [&a, &b] {
        admin(node, &format!("CLUSTER DELSLOTS {slot}"), &[]).await;
    }
    for node in [&a, &b] {
        let mut info = redis::cmd("CLUSTER");
        info.arg("INFO");
        until(node, "the slot to have no master", info, assigned(16383)).await;
    }
    // The tracking connections come back with the degraded map.
    assert_eq!(kill_by_name(&redis_url(&a), &name).await, 1);
    until_the_tier_serves(&x, &served, "the kill").await;
    let before = x.near_cache_stats().unwrap();
    for round in 0..8 {
        // The cluster client answers for the unserved slot (an error here).
        let _ = x.lookup(&orphan).await;
        let hits = x.near_cache_stats().unwrap().hits;
        x.lookup(&served).await.unwrap();
        assert_eq!(x.near_cache_stats().unwrap().hits, hits + 1, "round {round}: the tier was emptied");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(x.near_cache_stats().unwrap().resets, before.resets, "the unserved slot reset the tier");
    // The slot is served again: the next map has it, and the tier serves its keys.
    admin(&a, &format!("CLUSTER ADDSLOTS {slot}"), &[]).await;
    for node in [&a, &b] {
        let mut info = redis::cmd("CLUSTER");
        info.arg("INFO");
        until(node, "the slot to be served again", info, assigned(16384)).await;
    }
    until_the_tier_serves(&x, &orphan, "the slot was served again").await;
    assert_eq!(x.near_cache_stats().unwrap().resets, before.resets + 1, "{:?}", x.near_cache_stats());
    drop((x, a, b));
    for i in 0..2 {
        let _ = std::fs::remove_file(std::env::temp_dir().join(format!("beaker-test-nodes-{tag}-{i}.conf")));
    }
}
