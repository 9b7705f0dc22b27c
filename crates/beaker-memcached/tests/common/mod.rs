//! Helpers shared by the beaker-memcached test files: the server a test talks to (the one
//! named by `BEAKER_TEST_MEMCACHED_URL`, or else a throwaway `memcached -p PORT -U 0 -l
//! 127.0.0.1` of the test's own, killed at the end), per-run key prefixes and the records
//! the tests write. No server at all skips with a loud line, unless `CI=true`, where it
//! fails.
// Each test file uses a part of these.
#![allow(dead_code)]

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::SystemTime;

use beaker_core::cache::CacheEntry;
use beaker_core::store::{Changes, Record, StoreKey};
use beaker_core::SessionId;
use beaker_memcached::{MemcachedClient, MemcachedOptions};
use beaker_testkit::process::LocalServer;
use beaker_testkit::skip_or_fail;
use memcache::exp::AsyncMetaClient;

/// A `memcached` of the test's own on a free port; `None` when the binary is missing or
/// does not come up.
pub(crate) async fn own_memcached() -> Option<LocalServer> {
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
pub(crate) struct Server {
    pub(crate) url: String,
    pub(crate) own: Option<LocalServer>,
}

impl Server {
    /// `host:port` of the first server, for raw access.
    pub(crate) fn first_addr(&self) -> String {
        let rest = self.url.split_once("://").map_or(self.url.as_str(), |(_, r)| r);
        let first = rest.split([',', '/']).next().unwrap_or(rest);
        if first.contains(':') {
            first.to_owned()
        } else {
            format!("{first}:11211")
        }
    }

    pub(crate) async fn raw(&self) -> AsyncMetaClient {
        AsyncMetaClient::connect(self.first_addr()).await.expect("raw memcached client")
    }
}

pub(crate) async fn server(suite: &str) -> Option<Server> {
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
pub(crate) fn options(tag: &str) -> MemcachedOptions {
    let id = StoreKey::for_id(&SessionId::generate(), true);
    let p = format!("beaker-test:{tag}:{}:", &id.as_str()[..12]);
    MemcachedOptions::default().with_session_prefix(format!("{p}s:")).with_cache_prefix(format!("{p}c:"))
}

pub(crate) async fn connect(suite: &str, url: &str, options: MemcachedOptions) -> Option<MemcachedClient> {
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
pub(crate) async fn two_processes(
    suite: &str,
    server: &Server,
    opts: &MemcachedOptions,
) -> Option<(MemcachedClient, MemcachedClient)> {
    let a = connect(suite, &server.url, opts.clone()).await?;
    let b = connect(suite, &server.url, opts.clone()).await?;
    Some((a, b))
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

pub(crate) fn changes(set: &[(&str, &str)], expires: Option<SystemTime>) -> Changes {
    Changes {
        clear: false,
        set: set.iter().map(|(k, v)| (k.to_string(), v.as_bytes().to_vec())).collect(),
        remove: Default::default(),
        accessed: SystemTime::now(),
        expires,
        owner: None,
    }
}

pub(crate) fn entry(value: &[u8]) -> CacheEntry {
    CacheEntry { value: value.to_vec(), stored_at: SystemTime::now(), fresh_until: None }
}

/// Whole requests racing a logout and a login, through a manager on `store`.
pub(crate) async fn lifecycle_races(store: Arc<dyn beaker_core::store::SessionStore>) {
    beaker_testkit::lifecycle::LifecycleRaceSuite::new(beaker_testkit::fixtures::manager_on(store)).run().await;
}
