//! beaker-memcached over several servers of the test's own: the conformance suites pass
//! and sessions spread over the servers.

mod common;

use std::sync::Arc;

use beaker_core::store::{SessionStore, StoreKey};
use beaker_core::SessionId;
use beaker_memcached::{MemcachedCache, MemcachedClient, MemcachedStore};
use beaker_testkit::skip_or_fail;
use beaker_testkit::store::{CacheBackendSuite, SessionStoreSuite};
use common::{options, own_memcached, record};
use memcache::exp::{AsyncMetaClient, Get};

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
