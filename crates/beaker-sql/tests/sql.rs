//! beaker-sql against real databases: the published conformance suites on SQLite,
//! PostgreSQL and MariaDB/MySQL, plus what only an SQL test can check (per-key concurrency,
//! corrupt rows, a restart, the injected clock, an outage).
//!
//! `BEAKER_TEST_POSTGRES_URL` (default `postgres://postgres@127.0.0.1:5432/test`) and
//! `BEAKER_TEST_MYSQL_URL` (default `mysql://root@127.0.0.1:3306/test`) choose the servers.
//! Every run uses its own PostgreSQL schema / MySQL table names and drops them at the end.
//! An unreachable server skips with a loud line, unless `CI=true`, where it fails.

#![cfg(all(feature = "sqlite", feature = "postgres", feature = "mysql"))]

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use beaker_core::cache::{CacheBackend, CacheEntry};
use beaker_core::store::SessionStore;
use beaker_core::{ManualClock, StoreError};
use beaker_sql::{SqlCache, SqlOptions, SqlStore};
use beaker_testkit::store::{changes, fresh_key, record, CacheBackendSuite, SessionIndexSuite, SessionStoreSuite};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

mod common;

use common::*;

async fn conformance(kind: Kind) {
    let suite = format!("{kind:?} conformance suites");
    let Some(env) = Env::open(kind, &suite).await else { return };
    env.run(conformance_checks).await;
}

async fn conformance_checks(env: Arc<Env>) {
    let client = env.client().await;
    let store = SqlStore::new(client.clone());
    SessionStoreSuite::new(Arc::new(store.clone()))
        .with_corruptor(env.corruptor(&store))
        .with_real_time_expiry()
        .run()
        .await;
    SessionIndexSuite::new(Arc::new(store.clone())).run().await;
    // Whole requests racing a logout and a login, through a manager on this store.
    let manager = beaker_testkit::fixtures::manager_on(Arc::new(store.clone()));
    beaker_testkit::lifecycle::LifecycleRaceSuite::new(manager).run().await;
    let cache = SqlCache::new(client.clone());
    CacheBackendSuite::new(Arc::new(cache.clone())).with_real_time_expiry().run().await;
    // Long namespaces and keys are hashed to fit, and still isolated from each other.
    let entry = CacheEntry { value: b"v".to_vec(), stored_at: SystemTime::now(), fresh_until: None };
    let (long_ns, long_key) = ("n".repeat(400), "k".repeat(2000));
    cache.put(&long_ns, &long_key, &entry, None).await.unwrap();
    assert_eq!(cache.get(&long_ns, &long_key).await.unwrap().map(|e| e.value), Some(b"v".to_vec()));
    assert_eq!(cache.get(&long_ns, &"k".repeat(2001)).await.unwrap(), None);
    cache.clear(&long_ns).await.unwrap();
    assert_eq!(cache.get(&long_ns, &long_key).await.unwrap(), None);
    client.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_passes_the_conformance_suites() {
    conformance(Kind::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_passes_the_conformance_suites() {
    conformance(Kind::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_passes_the_conformance_suites() {
    conformance(Kind::Mysql).await;
}

/// Per-key concurrency, corrupt rows, a restart and the injected clock.
async fn behaviour(kind: Kind) {
    let suite = format!("{kind:?} behaviour");
    let Some(env) = Env::open(kind, &suite).await else { return };
    env.run(behaviour_checks).await;
}

async fn behaviour_checks(env: Arc<Env>) {
    let kind = env.kind;
    let store = env.store().await;
    let later = Some(SystemTime::now() + Duration::from_secs(3600));

    // Two requests changing different keys of one session at the same time both survive,
    // round after round.
    let k = fresh_key();
    assert!(store.create(&k, &record(&[("base", b"j0")], later)).await.unwrap());
    for round in 0..10 {
        let value = format!("j{round}");
        let [left, right] = ["left", "right"].map(|name| {
            let (store, k, changes) = (store.clone(), k.clone(), changes(&[(name, value.as_bytes())], &[], later));
            tokio::spawn(async move { store.apply(&k, &changes).await })
        });
        assert!(left.await.unwrap().unwrap() && right.await.unwrap().unwrap());
        let loaded = store.load(&k).await.unwrap().unwrap();
        let want = format!("j{round}").into_bytes();
        assert_eq!(loaded.entries.get("left"), Some(&want), "{kind:?}: concurrent apply lost `left`");
        assert_eq!(loaded.entries.get("right"), Some(&want), "{kind:?}: concurrent apply lost `right`");
        assert_eq!(loaded.entries.get("base"), Some(&b"j0".to_vec()));
    }

    // A row with a non-UTF-8 key is Corrupt (not data, not "no session").
    let bad = fresh_key();
    (env.corruptor(&store))(bad.clone()).await;
    match store.load(&bad).await {
        Err(StoreError::Corrupt { .. }) => {}
        other => panic!("{kind:?}: a corrupt row loaded as {other:?}"),
    }
    // A negative timestamp too.
    let (sessions, _) = store.tables();
    let negative = fresh_key();
    env.raw
        .exec(&format!(
            "INSERT INTO {sessions} (id, created, accessed, expires) VALUES ('{}', -5, 1, NULL)",
            negative.as_str()
        ))
        .await;
    assert!(matches!(store.load(&negative).await, Err(StoreError::Corrupt { .. })), "{kind:?}");
    store.delete(&bad).await.unwrap();
    store.delete(&negative).await.unwrap();
    assert_eq!(store.load(&bad).await.unwrap(), None);

    // A long session key round-trips where the database allows it, and is refused (not
    // cut short) on MySQL.
    let long_name = "n".repeat(600);
    let long = fresh_key();
    let created = store.create(&long, &record(&[(long_name.as_str(), b"j1")], later)).await;
    if kind == Kind::Mysql {
        assert!(matches!(created, Err(StoreError::Rejected { .. })), "{created:?}");
    } else {
        assert!(created.unwrap());
        assert!(store.load(&long).await.unwrap().unwrap().entries.contains_key(&long_name));
        store.delete(&long).await.unwrap();
    }

    // A session survives closing the store and opening a new one (a restart).
    let kept = fresh_key();
    let r = record(&[("user", b"j\"ann\""), ("ключ", &[0, 1, 255])], later);
    assert!(store.create(&kept, &r).await.unwrap());
    store.client().close().await;
    assert!(store.load(&kept).await.unwrap_err().is_unavailable(), "{kind:?}: a closed pool must be Unavailable");
    let reopened = env.store().await;
    let loaded = reopened.load(&kept).await.unwrap().expect("the session did not survive the restart");
    assert_eq!(loaded.entries, r.entries);

    // Expiry follows the injected clock: nothing is returned past it, cleanup removes it.
    let clock = ManualClock::new();
    let timed = SqlStore::connect(&env.url, env.options.clone().clock(clock.clone())).await.unwrap();
    let (short, long) = (fresh_key(), fresh_key());
    let soon = Some(clock_now(&clock) + Duration::from_secs(60));
    assert!(timed.create(&short, &record(&[("a", b"j1")], soon)).await.unwrap());
    assert!(timed.create(&long, &record(&[("a", b"j1")], later)).await.unwrap());
    clock.advance(Duration::from_secs(61));
    assert_eq!(timed.load(&short).await.unwrap(), None);
    assert!(!timed.touch(&short, clock_now(&clock), later).await.unwrap());
    assert!(!timed.apply(&short, &changes(&[("b", b"j2")], &[], later)).await.unwrap());
    assert!(timed.load(&long).await.unwrap().is_some());
    assert!(timed.cleanup().await.unwrap() >= 1);
    // The row is gone for good: the system clock (of `reopened`) does not bring it back.
    assert_eq!(reopened.load(&short).await.unwrap(), None);
    assert!(reopened.load(&long).await.unwrap().is_some());
    // A live record is never replaced.
    assert!(!timed.create(&long, &record(&[("fresh", b"j")], later)).await.unwrap());
    assert!(timed.load(&long).await.unwrap().unwrap().entries.contains_key("a"));
    // An expired one is, and none of its entries come back with the new record.
    let old = fresh_key();
    let soon = Some(clock_now(&clock) + Duration::from_secs(10));
    assert!(timed.create(&old, &record(&[("old", b"j1"), ("both", b"j1")], soon)).await.unwrap());
    clock.advance(Duration::from_secs(11));
    let fresh = record(&[("both", b"j2")], later);
    assert!(timed.create(&old, &fresh).await.unwrap(), "{kind:?}: an expired record blocked create");
    assert_eq!(timed.load(&old).await.unwrap().unwrap().entries, fresh.entries, "{kind:?}");
    timed.client().close().await;
    reopened.client().close().await;
}

fn clock_now(clock: &ManualClock) -> SystemTime {
    beaker_core::Clock::now(clock)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_behaviour() {
    behaviour(Kind::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_behaviour() {
    behaviour(Kind::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_behaviour() {
    behaviour(Kind::Mysql).await;
}

#[tokio::test]
async fn spawned_cleanup_removes_expired_rows() {
    let clock = ManualClock::new();
    let store = SqlStore::connect("sqlite::memory:", SqlOptions::new().clock(clock.clone())).await.unwrap();
    let (k, kept) = (fresh_key(), fresh_key());
    let soon = Some(clock_now(&clock) + Duration::from_secs(5));
    assert!(store.create(&k, &record(&[("a", b"j1")], soon)).await.unwrap());
    assert!(store.create(&kept, &record(&[("a", b"j1")], None)).await.unwrap());
    clock.advance(Duration::from_secs(6));
    let task = store.spawn_cleanup(Duration::from_millis(20));
    tokio::time::sleep(Duration::from_millis(200)).await;
    task.abort();
    // Nothing expired is left for a manual cleanup; the record without expiry stays.
    assert_eq!(store.cleanup().await.unwrap(), 0);
    assert!(store.load(&kept).await.unwrap().is_some());
}

#[tokio::test]
async fn in_memory_sqlite_and_bad_urls() {
    let store = SqlStore::connect("sqlite::memory:", SqlOptions::new()).await.unwrap();
    let k = fresh_key();
    assert!(store.create(&k, &record(&[("a", b"j1")], None)).await.unwrap());
    // The single connection is reused: the data is still there on the next call.
    assert!(store.load(&k).await.unwrap().is_some());
    assert_eq!(store.name(), "sqlite");

    let e = SqlStore::connect("redis://127.0.0.1", SqlOptions::new()).await.unwrap_err();
    assert!(matches!(e, beaker_sql::OpenError::UnsupportedScheme { .. }), "{e}");
    let e = SqlStore::connect("sqlite::memory:", SqlOptions::new().table_name("x; DROP TABLE y")).await.unwrap_err();
    assert!(e.to_string().contains("table_name"), "{e}");
    // Nothing listens on port 1: unavailable, within the timeout, not a panic.
    let started = std::time::Instant::now();
    let options = SqlOptions::new().timeout(Duration::from_millis(500));
    let e = SqlStore::connect("postgres://postgres@127.0.0.1:1/test", options.clone()).await.unwrap_err();
    assert!(e.is_unavailable(), "{e:?}");
    let e = SqlStore::connect("mysql://root@127.0.0.1:1/test", options).await.unwrap_err();
    assert!(e.is_unavailable(), "{e:?}");
    assert!(started.elapsed() < Duration::from_secs(3), "took {:?}", started.elapsed());
}

/// A TCP relay in front of the real server, which the test can cut and restore, so that
/// an outage can be staged without touching the shared server.
struct Relay {
    port: u16,
    target: String,
    tasks: Vec<JoinHandle<()>>,
    conns: Arc<std::sync::Mutex<Vec<JoinHandle<()>>>>,
}

impl Relay {
    async fn start(target: String) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let mut relay = Relay { port, target, tasks: Vec::new(), conns: Default::default() };
        relay.serve(listener);
        relay
    }

    fn serve(&mut self, listener: TcpListener) {
        let (target, conns) = (self.target.clone(), self.conns.clone());
        self.tasks.push(tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let target = target.clone();
                let conn = tokio::spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(&target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                conns.lock().unwrap().push(conn);
            }
        }));
    }

    /// Closes the port and every relayed connection, and waits until they are closed.
    async fn cut(&mut self) {
        let conns: Vec<_> = self.conns.lock().unwrap().drain(..).collect();
        for t in self.tasks.drain(..).chain(conns) {
            t.abort();
            let _ = t.await;
        }
    }

    async fn restore(&mut self) {
        let listener = TcpListener::bind(("127.0.0.1", self.port)).await.unwrap();
        self.serve(listener);
    }
}

/// `scheme://user@host:port/db` with `host:port` replaced.
fn via(url: &str, port: u16) -> (String, String) {
    let (head, tail) = url.split_once('@').expect("a URL with user@host");
    let (hostport, rest) = tail.split_once('/').unwrap_or((tail, ""));
    (format!("{head}@127.0.0.1:{port}/{rest}"), hostport.to_owned())
}

async fn outage(kind: Kind) {
    let suite = format!("{kind:?} outage");
    let Some(env) = Env::open(kind, &suite).await else { return };
    env.run(outage_checks).await;
}

async fn outage_checks(env: Arc<Env>) {
    let kind = env.kind;
    let (_, target) = via(&env.url, 0);
    let mut relay = Relay::start(target).await;
    let (url, _) = via(&env.url, relay.port);
    let options = env.options.clone().timeout(Duration::from_millis(800)).pool_size(2);
    let store = SqlStore::connect(&url, options).await.unwrap();
    let k = fresh_key();
    assert!(store.create(&k, &record(&[("a", b"j1")], None)).await.unwrap());

    // A blip: the connections die and the server is back before anyone notices. The
    // pooled connection was used a moment ago, so it is not pinged; the call finds it
    // dead and runs again on a new one.
    relay.cut().await;
    relay.restore().await;
    assert!(store.load(&k).await.unwrap().is_some(), "{kind:?}: a call after a blip failed");
    assert!(store.apply(&k, &changes(&[("a", b"j1")], &[], None)).await.unwrap());

    relay.cut().await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    for _ in 0..3 {
        let started = std::time::Instant::now();
        match store.load(&k).await {
            Err(e) => assert!(e.is_unavailable(), "{kind:?}: outage reported as {e:?}"),
            Ok(r) => panic!("{kind:?}: load succeeded with the server cut off: {r:?}"),
        }
        assert!(started.elapsed() < Duration::from_secs(2), "{kind:?}: took {:?}", started.elapsed());
    }
    assert!(store.apply(&k, &changes(&[("b", b"j2")], &[], None)).await.unwrap_err().is_unavailable());

    relay.restore().await;
    // The pool replaces its dead connections: the very first call after the return works.
    let loaded = store.load(&k).await.unwrap().expect("record");
    assert_eq!(loaded.entries.keys().collect::<Vec<_>>(), ["a"]);
    assert!(store.apply(&k, &changes(&[("b", b"j2")], &[], None)).await.unwrap());
    store.client().close().await;
    relay.cut().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_outage_is_unavailable_and_the_pool_recovers() {
    outage(Kind::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_outage_is_unavailable_and_the_pool_recovers() {
    outage(Kind::Mysql).await;
}
