//! beaker-memcached through outages: a server that is gone, one that never answers and one
//! that stalls are unavailable within the timeout, and the client recovers. These tests
//! always run servers of their own, since they stop them.

mod common;

use std::time::Duration;

use beaker_core::cache::CacheBackend;
use beaker_core::store::{SessionStore, StoreKey};
use beaker_core::SessionId;
use beaker_memcached::{MemcachedCache, MemcachedClient, MemcachedOptions, MemcachedStore};
use beaker_testkit::skip_or_fail;
use common::{changes, entry, options, own_memcached, record};

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
