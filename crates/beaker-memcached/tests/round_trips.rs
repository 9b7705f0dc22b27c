//! The memcached round trips per request that the docs promise, counted with memcached's
//! own `stats`.

mod common;

use std::time::Duration;

use beaker_core::cache::{CacheBackend, LockOutcome};
use beaker_memcached::{MemcachedCache, MemcachedStore};
use beaker_testkit::skip_or_fail;
use common::{entry, options, own_memcached};

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
