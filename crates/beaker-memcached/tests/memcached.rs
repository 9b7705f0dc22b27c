//! beaker-memcached against a real memcached: the published conformance suites plus the
//! checks only a memcached test can make (native expiry, long keys, several servers,
//! outages).
//!
//! `BEAKER_TEST_MEMCACHED_URL` chooses the server. When it is unset, each test starts a
//! throwaway `memcached -p PORT -U 0 -l 127.0.0.1` of its own (if the binary is installed)
//! and kills it at the end. No server at all skips with a loud line, unless `CI=true`,
//! where it fails. The outage test always runs its own server, since it kills it.

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use beaker_core::cache::{CacheBackend, CacheEntry, LockOutcome};
use beaker_core::store::{Changes, Record, SessionStore, StoreKey};
use beaker_core::{SessionId, StoreError};
use beaker_memcached::{MemcachedCache, MemcachedClient, MemcachedOptions, MemcachedStore};
use beaker_testkit::process::LocalServer;
use beaker_testkit::skip_or_fail;
use beaker_testkit::store::{CacheBackendSuite, SessionStoreSuite};
use memcache::exp::{AsyncMetaClient, Delete, Get, Meta, Set};

/// A `memcached` of the test's own on a free port; `None` when the binary is missing or
/// does not come up.
async fn own_memcached() -> Option<LocalServer> {
    let spawn = |port: u16| {
        Command::new("memcached")
            // `-u` only matters when running as root, where memcached insists on it.
            .args(["-p", &port.to_string(), "-U", "0", "-l", "127.0.0.1", "-m", "64", "-u", "root"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
    };
    LocalServer::start(spawn).await.ok()
}

/// The server a test talks to: the configured one, or a throwaway one kept alive by the
/// guard.
struct Server {
    url: String,
    own: Option<LocalServer>,
}

impl Server {
    /// `host:port` of the first server, for raw access.
    fn first_addr(&self) -> String {
        let rest = self.url.split_once("://").map_or(self.url.as_str(), |(_, r)| r);
        let first = rest.split([',', '/']).next().unwrap_or(rest);
        if first.contains(':') {
            first.to_owned()
        } else {
            format!("{first}:11211")
        }
    }

    async fn raw(&self) -> AsyncMetaClient {
        AsyncMetaClient::connect(self.first_addr()).await.expect("raw memcached client")
    }
}

async fn server(suite: &str) -> Option<Server> {
    if let Ok(url) = std::env::var("BEAKER_TEST_MEMCACHED_URL") {
        return Some(Server { url, own: None });
    }
    match own_memcached().await {
        Some(own) => Some(Server { url: format!("memcached://{}", own.addr()), own: Some(own) }),
        None => {
            skip_or_fail(suite, "BEAKER_TEST_MEMCACHED_URL is unset and no memcached binary could be started");
            None
        }
    }
}

/// A unique prefix per run, so that tests on a shared server never see each other's keys.
fn options(tag: &str) -> MemcachedOptions {
    let id = StoreKey::for_id(&SessionId::generate(), true);
    let p = format!("beaker-test:{tag}:{}:", &id.as_str()[..12]);
    MemcachedOptions::default().with_session_prefix(format!("{p}s:")).with_cache_prefix(format!("{p}c:"))
}

async fn connect(suite: &str, url: &str, options: MemcachedOptions) -> Option<MemcachedClient> {
    match MemcachedClient::connect(url, options).await {
        Ok(c) => Some(c),
        Err(e) => {
            skip_or_fail(suite, &format!("cannot reach {url}: {e}"));
            None
        }
    }
}

/// Two clients with separate pools (and separate CAS hints and remembered generations):
/// two application processes sharing `server`.
async fn two_processes(
    suite: &str,
    server: &Server,
    opts: &MemcachedOptions,
) -> Option<(MemcachedClient, MemcachedClient)> {
    let a = connect(suite, &server.url, opts.clone()).await?;
    let b = connect(suite, &server.url, opts.clone()).await?;
    Some((a, b))
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

fn changes(set: &[(&str, &str)], expires: Option<SystemTime>) -> Changes {
    Changes {
        clear: false,
        set: set.iter().map(|(k, v)| (k.to_string(), v.as_bytes().to_vec())).collect(),
        remove: Default::default(),
        accessed: SystemTime::now(),
        expires,
    }
}

fn entry(value: &[u8]) -> CacheEntry {
    CacheEntry { value: value.to_vec(), stored_at: SystemTime::now(), fresh_until: None }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passes_the_conformance_suites() {
    let suite = "memcached suites";
    let Some(server) = server(suite).await else { return };
    let Some(client) = connect(suite, &server.url, options("suite")).await else { return };
    let store = MemcachedStore::new(client.clone());
    let raw = server.raw().await;
    let corrupt_store = store.clone();
    let corruptor: beaker_testkit::store::Corruptor = Box::new(move |key: StoreKey| {
        let mkey = corrupt_store.memcached_key(&key);
        let raw = raw.clone();
        Box::pin(async move {
            raw.run(Set::new(mkey, b"\xff\x00garbage")).await.unwrap();
        })
    });
    // memcached's default item limit is 1 MiB including the key and item header, so the
    // suites' 1 MiB value cannot fit; half of it still crosses memcached's slab sizes.
    lifecycle_races(Arc::new(store.clone())).await;
    SessionStoreSuite::new(Arc::new(store))
        .with_corruptor(corruptor)
        .with_large_value(512 * 1024)
        .with_real_time_expiry()
        .run()
        .await;
    CacheBackendSuite::new(Arc::new(MemcachedCache::new(client)))
        .with_large_value(512 * 1024)
        .with_real_time_expiry()
        .run()
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cache_remembering_a_generation_still_sees_every_clear_at_once() {
    let suite = "memcached cache generations";
    let Some(server) = server(suite).await else { return };
    let opts = options("gens");
    let Some((a, b)) = two_processes(suite, &server, &opts).await else { return };
    let (a, b) = (MemcachedCache::new(a), MemcachedCache::new(b));
    let value = |e: Option<CacheEntry>| e.map(|e| e.value);
    a.put("ns", "k", &entry(b"v1"), None).await.unwrap();
    // `a` has seen the generation now: its reads take the one-exchange path.
    for _ in 0..2 {
        assert_eq!(value(a.get("ns", "k").await.unwrap()), Some(b"v1".to_vec()));
    }
    b.clear("ns").await.unwrap();
    assert_eq!(a.get("ns", "k").await.unwrap(), None, "a cleared entry came back through a remembered generation");
    b.put("ns", "k", &entry(b"v2"), None).await.unwrap();
    assert_eq!(value(a.get("ns", "k").await.unwrap()), Some(b"v2".to_vec()));
    assert_eq!(value(a.get("ns", "k").await.unwrap()), Some(b"v2".to_vec()));

    // Writes through a remembered generation that a clear elsewhere has moved on from land
    // in the current one.
    b.clear("ns").await.unwrap();
    a.put("ns", "put", &entry(b"after clear"), None).await.unwrap();
    assert_eq!(
        value(b.get("ns", "put").await.unwrap()),
        Some(b"after clear".to_vec()),
        "a put was lost in a cleared generation"
    );
    b.clear("ns").await.unwrap();
    b.put("ns", "gone", &entry(b"x"), None).await.unwrap();
    assert!(a.remove("ns", "gone").await.unwrap(), "a remove missed the current generation");
    assert_eq!(b.get("ns", "gone").await.unwrap(), None);
    assert!(!a.remove("ns", "gone").await.unwrap());

    // The counter lost (evicted, or a restart): the remembered generation is not trusted,
    // a new one starts, and the old entries stay unreachable.
    let raw = server.raw().await;
    let gkey = format!("{}g:ns", opts.cache_prefix);
    assert!(raw.run(Delete::new(&gkey)).await.is_ok());
    assert_eq!(a.get("ns", "k").await.unwrap(), None, "an entry outlived its generation's counter");
    assert_eq!(b.get("ns", "k").await.unwrap(), None);
    a.clear("ns").await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_applies_from_two_processes_on_different_keys_both_survive() {
    let suite = "memcached concurrent applies";
    let Some(server) = server(suite).await else { return };
    let opts = options("cas");
    let Some((a, b)) = two_processes(suite, &server, &opts).await else { return };
    let (a, b) = (MemcachedStore::new(a), MemcachedStore::new(b));
    let key = StoreKey::for_id(&SessionId::generate(), true);
    let later = Some(SystemTime::now() + Duration::from_secs(600));
    assert!(a.create(&key, &record(later)).await.unwrap());
    for round in 0..10 {
        // Both load first (as requests do), then both save a key of their own.
        a.load(&key).await.unwrap().expect("record");
        b.load(&key).await.unwrap().expect("record");
        let (ka, kb) = (format!("a{round}"), format!("b{round}"));
        let (ca, cb) = (changes(&[(&ka, "1")], later), changes(&[(&kb, "2")], later));
        let (ra, rb) = tokio::join!(a.apply(&key, &ca), b.apply(&key, &cb));
        assert!(ra.unwrap() && rb.unwrap(), "round {round}: an apply found no record");
    }
    let loaded = a.load(&key).await.unwrap().expect("record");
    for round in 0..10 {
        assert!(loaded.entries.contains_key(&format!("a{round}")), "a{round} lost: {:?}", loaded.entries.keys());
        assert!(loaded.entries.contains_key(&format!("b{round}")), "b{round} lost: {:?}", loaded.entries.keys());
    }
    assert!(loaded.entries.contains_key("user"));

    // A stale CAS hint (the record changed elsewhere since this process loaded it) must
    // not lose the other process's write.
    a.load(&key).await.unwrap();
    assert!(b.apply(&key, &changes(&[("from_b", "x")], later)).await.unwrap());
    assert!(a.apply(&key, &changes(&[("from_a", "y")], later)).await.unwrap());
    let loaded = b.load(&key).await.unwrap().expect("record");
    assert!(loaded.entries.contains_key("from_a") && loaded.entries.contains_key("from_b"));

    // A hint for a record deleted since must not resurrect it.
    a.load(&key).await.unwrap();
    b.delete(&key).await.unwrap();
    assert!(!a.apply(&key, &changes(&[("late", "z")], later)).await.unwrap());
    assert!(a.load(&key).await.unwrap().is_none());
}

#[tokio::test]
async fn sessions_use_native_expiry() {
    let suite = "memcached expiry";
    let Some(server) = server(suite).await else { return };
    let Some(client) = connect(suite, &server.url, options("ttl")).await else { return };
    let store = MemcachedStore::new(client.clone());
    let cache = MemcachedCache::new(client);
    let raw = server.raw().await;
    let key = StoreKey::for_id(&SessionId::generate(), true);
    let mkey = store.memcached_key(&key);
    let ttl = |raw: AsyncMetaClient, mkey: String| async move {
        raw.run(Get::new(mkey).meta(Meta::NONE.ttl()).without_value()).await.unwrap().item.ttl
    };

    // No expiry: memcached's "never" (-1).
    assert!(store.create(&key, &record(None)).await.unwrap());
    assert_eq!(ttl(raw.clone(), mkey.clone()).await, Some(-1));

    // A relative TTL of about a minute.
    let soon = SystemTime::now() + Duration::from_secs(60);
    assert!(store.touch(&key, SystemTime::now(), Some(soon)).await.unwrap());
    let t = ttl(raw.clone(), mkey.clone()).await.unwrap();
    assert!((55..=61).contains(&t), "TTL {t} after a 60 s touch");

    // Beyond 30 days: sent as an absolute Unix time, still read back as ~40 days left.
    let forty_days = 40 * 24 * 3600;
    let far = SystemTime::now() + Duration::from_secs(forty_days);
    assert!(store.apply(&key, &changes(&[("k", "v")], Some(far))).await.unwrap());
    let t = ttl(raw.clone(), mkey.clone()).await.unwrap();
    assert!((forty_days as i64 - 10..=forty_days as i64 + 1).contains(&t), "TTL {t} for a 40-day expiry");
    let loaded = store.load(&key).await.unwrap().expect("record");
    assert_eq!(loaded.entries.get("k").map(Vec::as_slice), Some(&b"v"[..]));

    // apply and touch on a missing key write nothing.
    store.delete(&key).await.unwrap();
    assert!(!store.apply(&key, &changes(&[("k", "v")], None)).await.unwrap());
    assert!(!store.touch(&key, SystemTime::now(), None).await.unwrap());
    assert!(!raw.run(Get::new(&mkey)).await.unwrap().hit(), "apply/touch on a missing session created an item");

    // The cache's hard TTL is native too.
    cache.put("ns", "k", &entry(b"v"), Some(Duration::from_secs(90))).await.unwrap();
    assert!(cache.get("ns", "k").await.unwrap().is_some());
    cache.clear("ns").await.unwrap();
}

#[tokio::test]
async fn long_keys_are_hashed_and_stay_distinct() {
    let suite = "memcached long keys";
    let Some(server) = server(suite).await else { return };
    let Some(client) = connect(suite, &server.url, options("long")).await else { return };
    let cache = MemcachedCache::new(client.clone());
    let long_ns = "n".repeat(300);
    let long_a = format!("{}a", "k".repeat(400));
    let long_b = format!("{}b", "k".repeat(400));
    cache.put(&long_ns, &long_a, &entry(b"ja"), Some(Duration::from_secs(60))).await.unwrap();
    cache.put(&long_ns, &long_b, &entry(b"jb"), Some(Duration::from_secs(60))).await.unwrap();
    cache.put("short", "key with spaces\r\n", &entry(b"jc"), None).await.unwrap();
    assert_eq!(cache.get(&long_ns, &long_a).await.unwrap().unwrap().value, b"ja");
    assert_eq!(cache.get(&long_ns, &long_b).await.unwrap().unwrap().value, b"jb");
    assert_eq!(cache.get("short", "key with spaces\r\n").await.unwrap().unwrap().value, b"jc");
    let LockOutcome::Acquired(token) = cache.try_lock(&long_ns, &long_a, Duration::from_secs(30)).await.unwrap() else {
        panic!("free lock on a long key not granted")
    };
    assert_eq!(cache.try_lock(&long_ns, &long_a, Duration::from_secs(30)).await.unwrap(), LockOutcome::Busy);
    cache.unlock(&long_ns, &long_a, &token).await.unwrap();
    cache.clear(&long_ns).await.unwrap();
    assert!(cache.get(&long_ns, &long_a).await.unwrap().is_none());
    cache.clear("short").await.unwrap();

    // A session prefix near the limit still gives keys memcached accepts.
    let near = "p".repeat(99) + ":";
    let Some(client) = connect(suite, &server.url, MemcachedOptions::default().with_session_prefix(near)).await else {
        return;
    };
    let store = MemcachedStore::new(client);
    let key = StoreKey::for_id(&SessionId::generate(), true);
    assert!(store.memcached_key(&key).len() <= 250);
    assert!(store.create(&key, &record(None)).await.unwrap());
    assert!(store.load(&key).await.unwrap().is_some());
    store.delete(&key).await.unwrap();
}

#[tokio::test]
async fn clearing_one_namespace_leaves_the_others() {
    let suite = "memcached namespaces";
    let Some(server) = server(suite).await else { return };
    let Some(client) = connect(suite, &server.url, options("ns")).await else { return };
    let cache = MemcachedCache::new(client);
    // Each pair would alias under a naive `prefix + ns + ":" + key` scheme.
    let pairs = [("a", "a:b"), ("x", "x\\"), ("g", "l"), ("1", "2")];
    for (ns, other) in pairs {
        cache.put(ns, "b:k", &entry(b"v1"), Some(Duration::from_secs(60))).await.unwrap();
        cache.put(other, "k", &entry(b"v2"), Some(Duration::from_secs(60))).await.unwrap();
        cache.put(other, "b:k", &entry(b"v3"), None).await.unwrap();
        cache.clear(ns).await.unwrap();
        assert!(cache.get(ns, "b:k").await.unwrap().is_none(), "clear({ns:?}) left its entry");
        assert_eq!(cache.get(other, "k").await.unwrap().map(|e| e.value), Some(b"v2".to_vec()), "{other:?}");
        assert_eq!(cache.get(other, "b:k").await.unwrap().map(|e| e.value), Some(b"v3".to_vec()), "{other:?}");
        // Usable again after the clear, and cleared again.
        cache.put(ns, "b:k", &entry(b"v4"), None).await.unwrap();
        assert_eq!(cache.get(ns, "b:k").await.unwrap().map(|e| e.value), Some(b"v4".to_vec()));
        cache.clear(ns).await.unwrap();
        cache.clear(other).await.unwrap();
        assert!(cache.get(other, "k").await.unwrap().is_none());
    }
    // Clearing a namespace never written to is fine, and so is removing from it.
    cache.clear("never-written").await.unwrap();
    assert!(!cache.remove("never-written", "k").await.unwrap());

    // Under the hood: `<prefix>g:<ns>` holds the generation, entries live under
    // `<prefix><generation>:<ns>:<key>`. A foreign value in either place is handled.
    let raw = server.raw().await;
    let prefix = cache.client().options().cache_prefix.clone();
    cache.put("n", "k", &entry(b"v"), None).await.unwrap();
    let generation = raw.run(Get::new(format!("{prefix}g:n"))).await.unwrap().value.expect("generation counter");
    let generation = String::from_utf8(generation).unwrap();
    let ekey = format!("{prefix}{generation}:n:k");
    assert!(raw.run(Get::new(&ekey)).await.unwrap().hit(), "entry not under {ekey}");
    raw.run(Set::new(&ekey, b"not an entry")).await.unwrap();
    assert!(matches!(cache.get("n", "k").await, Err(StoreError::Corrupt { .. })));
    raw.run(Set::new(format!("{prefix}g:n"), b"garbage")).await.unwrap();
    assert!(cache.get("n", "k").await.unwrap().is_none(), "a reset generation must not find old entries");
    cache.put("n", "k", &entry(b"v2"), None).await.unwrap();
    assert_eq!(cache.get("n", "k").await.unwrap().map(|e| e.value), Some(b"v2".to_vec()));
    raw.run(Set::new(format!("{prefix}g:n"), b"garbage")).await.unwrap();
    cache.clear("n").await.unwrap();
    assert!(cache.get("n", "k").await.unwrap().is_none());

    // The lock lives outside every generation: clearing does not release it.
    let LockOutcome::Acquired(token) = cache.try_lock("n", "k", Duration::from_secs(30)).await.unwrap() else {
        panic!("free lock not granted")
    };
    cache.clear("n").await.unwrap();
    assert_eq!(cache.try_lock("n", "k", Duration::from_secs(30)).await.unwrap(), LockOutcome::Busy);
    cache.unlock("n", "k", &token).await.unwrap();
    assert!(matches!(cache.try_lock("n", "k", Duration::from_secs(30)).await.unwrap(), LockOutcome::Acquired(_)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_spread_over_several_servers() {
    let suite = "memcached several servers";
    let (Some(one), Some(two)) = (own_memcached().await, own_memcached().await) else {
        return skip_or_fail(suite, "cannot start two memcached servers");
    };
    let url = format!("memcached://{},{}", one.addr(), two.addr());
    let client = MemcachedClient::connect(&url, options("multi")).await.unwrap();
    let store = MemcachedStore::new(client.clone());
    SessionStoreSuite::new(Arc::new(store.clone())).with_large_value(64 * 1024).run().await;
    CacheBackendSuite::new(Arc::new(MemcachedCache::new(client))).with_large_value(64 * 1024).run().await;

    let raws =
        [AsyncMetaClient::connect(one.addr()).await.unwrap(), AsyncMetaClient::connect(two.addr()).await.unwrap()];
    let mut per_server = [0; 2];
    for _ in 0..40 {
        let key = StoreKey::for_id(&SessionId::generate(), true);
        assert!(store.create(&key, &record(None)).await.unwrap());
        let mkey = store.memcached_key(&key);
        for (i, raw) in raws.iter().enumerate() {
            if raw.run(Get::new(&mkey)).await.unwrap().hit() {
                per_server[i] += 1;
            }
        }
    }
    assert_eq!(per_server[0] + per_server[1], 40, "every session lives on exactly one server");
    assert!(per_server[0] >= 5 && per_server[1] >= 5, "sessions not spread: {per_server:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outage_is_unavailable_and_the_first_call_after_it_succeeds() {
    let suite = "memcached reconnect";
    let Some(mut server) = own_memcached().await else {
        return skip_or_fail(suite, "cannot start memcached");
    };
    let url = format!("memcached://{}", server.addr());
    let opts = MemcachedOptions::default().with_timeout(Duration::from_millis(700));
    let client = MemcachedClient::connect(&url, opts).await.unwrap();
    let store = MemcachedStore::new(client.clone());
    let cache = MemcachedCache::new(client);
    let key = StoreKey::for_id(&SessionId::generate(), true);
    assert!(store.create(&key, &record(None)).await.unwrap());
    cache.put("ns", "k", &entry(b"v"), None).await.unwrap();

    server.stop();
    for _ in 0..3 {
        match store.load(&key).await {
            Err(e) => assert!(e.is_unavailable(), "outage reported as {e:?}"),
            Ok(r) => panic!("load succeeded with the server down: {r:?}"),
        }
        let e = store.apply(&key, &changes(&[("k", "v")], None)).await.unwrap_err();
        assert!(e.is_unavailable(), "{e:?}");
        let e = cache.get("ns", "k").await.unwrap_err();
        assert!(e.is_unavailable(), "{e:?}");
    }
    let err = MemcachedStore::connect(&url, MemcachedOptions::default().with_timeout(Duration::from_millis(300))).await;
    assert!(err.as_ref().is_err_and(|e| e.is_unavailable()), "{err:?}");

    server.restart().await.expect("own memcached restarts");
    // The data went with the server; what matters is that the very first call answers
    // instead of failing on a dead pooled connection.
    assert_eq!(store.load(&key).await.unwrap(), None);
    assert!(store.create(&key, &record(None)).await.unwrap());
    assert!(store.load(&key).await.unwrap().is_some());
    assert!(cache.get("ns", "k").await.unwrap().is_none());
}

#[tokio::test]
async fn a_server_that_never_answers_is_unavailable_within_the_timeout() {
    // Accepts connections, never answers: the worst kind of outage.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hold = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            open.push(socket);
        }
    });
    let timeout = Duration::from_millis(300);
    let started = std::time::Instant::now();
    let err =
        MemcachedClient::connect(&format!("memcached://{addr}"), MemcachedOptions::default().with_timeout(timeout))
            .await
            .unwrap_err();
    assert!(err.is_unavailable(), "{err:?}");
    assert!(started.elapsed() < timeout * 3, "connect took {:?}", started.elapsed());
    hold.abort();
}

#[tokio::test]
async fn bad_urls_and_options_are_configuration_errors() {
    for url in ["redis://127.0.0.1:6379", "memcached://", "127.0.0.1:11211"] {
        let err = MemcachedClient::connect(url, MemcachedOptions::default()).await.unwrap_err();
        assert!(!err.is_unavailable(), "{url}: {err:?}");
    }
    let same = MemcachedOptions::default().with_session_prefix("x:").with_cache_prefix("x:");
    assert!(MemcachedClient::connect("memcached://127.0.0.1:1", same).await.is_err());
    let spaced = MemcachedOptions::default().with_session_prefix("a b");
    assert!(MemcachedClient::connect("memcached://127.0.0.1:1", spaced).await.is_err());
}

#[tokio::test]
async fn oversized_values_are_rejected_not_unavailable() {
    let suite = "memcached size limit";
    let Some(server) = server(suite).await else { return };
    let Some(client) = connect(suite, &server.url, options("size").with_item_size_limit(4 * 1024 * 1024)).await else {
        return;
    };
    let store = MemcachedStore::new(client);
    let key = StoreKey::for_id(&SessionId::generate(), true);
    let mut r = record(None);
    r.entries.insert("big".into(), vec![7; 2 * 1024 * 1024]);
    // Over memcached's own 1 MiB default (known only for a server of our own): the
    // server refuses it.
    if server.own.is_some() {
        match store.create(&key, &r).await {
            Err(StoreError::Rejected { .. }) => {}
            other => panic!("an item over the server's limit gave {other:?}"),
        }
    }
    // Over the client-side limit: refused before anything is sent.
    let small =
        MemcachedStore::new(connect(suite, &server.url, options("size2").with_item_size_limit(1024)).await.unwrap());
    r.entries.insert("big".into(), vec![7; 2048]);
    assert!(matches!(small.create(&key, &r).await, Err(StoreError::Rejected { .. })));
    // The connection is fine afterwards.
    assert!(store.load(&key).await.unwrap().is_none());
}

/// memcached's own command counters (`stats`), summed over every command kind.
async fn commands_served(addr: &str) -> u64 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
    conn.write_all(b"stats\r\n").await.unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while !out.ends_with(b"END\r\n") {
        let n = conn.read(&mut buf).await.unwrap();
        assert!(n > 0, "stats cut short");
        out.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8(out).unwrap();
    let stat = |name: &str| -> u64 {
        text.lines().find_map(|l| l.strip_prefix(&format!("STAT {name} "))).map_or(0, |v| v.trim().parse().unwrap())
    };
    ["cmd_get", "cmd_set", "cmd_touch", "delete_hits", "delete_misses", "incr_hits", "incr_misses"]
        .iter()
        .map(|s| stat(s))
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_trips_per_session_request_keep_the_promise() {
    use beaker_core::{SessionConfig, SessionManager};
    let suite = "memcached round trips";
    let Some(server) = own_memcached().await else {
        return skip_or_fail(suite, "cannot start memcached");
    };
    let addr = server.addr();
    let store = MemcachedStore::connect(&format!("memcached://{addr}"), options("rt")).await.unwrap();
    let config = SessionConfig::new().with_secret("a secret of sixteen+ bytes").unwrap();
    let manager = SessionManager::builder(config).store(store).build().unwrap();

    // First request: a new session is written once (an `add`).
    let before = commands_served(&addr).await;
    let session = manager.start(std::iter::empty::<&str>());
    session.insert("user", "ada").await.unwrap();
    let set_cookie = manager.finish(&session).await.unwrap();
    assert_eq!(commands_served(&addr).await - before, 1, "new session");
    let cookie = set_cookie[0].as_str().split(';').next().unwrap().to_owned();

    // Untouched: nothing.
    let before = commands_served(&addr).await;
    let session = manager.start([cookie.as_str()]);
    assert!(manager.finish(&session).await.unwrap().is_empty());
    assert_eq!(commands_served(&addr).await - before, 0, "untouched session");

    // Read-only: one read.
    let before = commands_served(&addr).await;
    let session = manager.start([cookie.as_str()]);
    assert_eq!(session.get::<String>("user").await.unwrap().as_deref(), Some("ada"));
    manager.finish(&session).await.unwrap();
    assert_eq!(commands_served(&addr).await - before, 1, "read-only session");

    // Modified: one read and one (CAS) write.
    let before = commands_served(&addr).await;
    let session = manager.start([cookie.as_str()]);
    session.insert("visits", &1).await.unwrap();
    manager.finish(&session).await.unwrap();
    assert_eq!(commands_served(&addr).await - before, 2, "modified session");

    let session = manager.start([cookie.as_str()]);
    assert_eq!(session.get::<u32>("visits").await.unwrap(), Some(1));
    assert_eq!(session.get::<String>("user").await.unwrap().as_deref(), Some("ada"));

    // Read-only with a touch due (idle timeout, touch on every request): one read and
    // one CAS write.
    let store = MemcachedStore::connect(&format!("memcached://{addr}"), options("rt-touch")).await.unwrap();
    let config = SessionConfig::new()
        .with_secret("a secret of sixteen+ bytes")
        .unwrap()
        .with_timeout(Duration::from_secs(3600))
        .with_touch_interval(Duration::ZERO);
    let manager = SessionManager::builder(config).store(store.clone()).build().unwrap();
    let session = manager.start(std::iter::empty::<&str>());
    session.insert("user", "ada").await.unwrap();
    let set_cookie = manager.finish(&session).await.unwrap();
    let cookie = set_cookie[0].as_str().split(';').next().unwrap().to_owned();
    let before = commands_served(&addr).await;
    let session = manager.start([cookie.as_str()]);
    assert_eq!(session.get::<String>("user").await.unwrap().as_deref(), Some("ada"));
    manager.finish(&session).await.unwrap();
    assert_eq!(commands_served(&addr).await - before, 2, "read-only session with a touch due");

    // The cache: the namespace generation, then the entry.
    let cache = MemcachedCache::connect(&format!("memcached://{addr}"), options("rt")).await.unwrap();
    let count = |what: &'static str, expected: u64, before: u64| {
        let addr = addr.clone();
        async move { assert_eq!(commands_served(&addr).await - before, expected, "cache {what}") }
    };
    let before = commands_served(&addr).await;
    cache.put("ns", "k", &entry(b"v"), None).await.unwrap();
    count("put in a new namespace", 3, before).await;
    let before = commands_served(&addr).await;
    cache.get("ns", "k").await.unwrap().expect("entry");
    count("get", 2, before).await;
    let before = commands_served(&addr).await;
    cache.put("ns", "k", &entry(b"v"), None).await.unwrap();
    count("put", 2, before).await;
    let before = commands_served(&addr).await;
    cache.clear("ns").await.unwrap();
    count("clear", 1, before).await;
    let before = commands_served(&addr).await;
    let LockOutcome::Acquired(token) = cache.try_lock("ns", "k", Duration::from_secs(5)).await.unwrap() else {
        panic!("free lock not granted")
    };
    count("try_lock", 1, before).await;
    let before = commands_served(&addr).await;
    cache.unlock("ns", "k", &token).await.unwrap();
    count("unlock", 2, before).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_server_is_unavailable_within_the_timeout_and_recovers() {
    let suite = "memcached stalled server";
    let Some(mut server) = own_memcached().await else {
        return skip_or_fail(suite, "cannot start memcached");
    };
    let timeout = Duration::from_millis(400);
    let url = format!("memcached://{}", server.addr());
    let client = MemcachedClient::connect(&url, options("stall").with_timeout(timeout)).await.unwrap();
    let store = MemcachedStore::new(client.clone());
    let cache = MemcachedCache::new(client);
    let key = StoreKey::for_id(&SessionId::generate(), true);
    assert!(store.create(&key, &record(None)).await.unwrap());
    cache.put("ns", "k", &entry(b"v"), None).await.unwrap();
    store.load(&key).await.unwrap().expect("record");

    // SIGSTOP: the server keeps its connections open and answers nothing.
    server.signal("STOP");
    let started = std::time::Instant::now();
    let e = store.apply(&key, &changes(&[("k", "v")], None)).await.unwrap_err();
    assert!(e.is_unavailable(), "{e:?}");
    let e = cache.get("ns", "k").await.unwrap_err();
    assert!(e.is_unavailable(), "{e:?}");
    let elapsed = started.elapsed();
    server.signal("CONT");
    assert!(
        elapsed < timeout * 2 + Duration::from_millis(300),
        "two calls took {elapsed:?} with a {timeout:?} timeout"
    );

    // The stalled connections were dropped; the next calls answer.
    assert!(store.load(&key).await.unwrap().is_some());
    assert_eq!(cache.get("ns", "k").await.unwrap().map(|e| e.value), Some(b"v".to_vec()));
    server.stop();
}

/// Whole requests racing a logout and a login, through a manager on `store`.
async fn lifecycle_races(store: Arc<dyn beaker_core::store::SessionStore>) {
    let config = beaker_core::SessionConfig::new().with_secret("a test secret, long enough").unwrap();
    let manager = beaker_core::SessionManager::builder(config).shared_store(store).build().unwrap();
    beaker_testkit::lifecycle::LifecycleRaceSuite::new(manager).run().await;
}
