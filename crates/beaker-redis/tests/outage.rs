//! beaker-redis through outages, on a `redis-server` of the test's own: a server that is
//! gone, and one that stops answering, are unavailable and the store recovers.

mod common;

use std::time::Duration;

use beaker_core::store::{SessionStore, StoreKey};
use beaker_core::SessionId;
use beaker_redis::{RedisOptions, RedisStore};
use common::{own_redis, record, redis_url};

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
