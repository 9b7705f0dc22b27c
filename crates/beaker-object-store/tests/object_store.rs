//! beaker-object-store against real emulators on loopback: the published conformance
//! suites on S3 (moto), Azure Blob (Azurite) and GCS (a real bucket only), plus what
//! only these tests check (conditional writes under contention, cleanup, outages, the
//! requests a session request costs).
//!
//! `cargo xtask test` (or `cargo xtask services`) starts the emulators and sets
//! `BEAKER_TEST_S3_URL`, `BEAKER_TEST_AZURE_URL`, `BEAKER_TEST_GCS_URL` and the clouds'
//! own variables (`AWS_ENDPOINT_URL`, `AZURITE_BLOB_STORAGE_URL`, ...). A missing one
//! skips loudly, or fails under `CI=true`. GCS runs only against a bucket given in
//! `BEAKER_TEST_GCS_URL` (with `GOOGLE_SERVICE_ACCOUNT_KEY` or another credential).
//! Every test works under a fresh random prefix and deletes what it wrote.

mod counting;

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use beaker_core::cache::CacheBackend;
use beaker_core::store::{SessionStore, StoreKey};
use beaker_core::{SessionConfig, SessionManager};
use beaker_object_store::{ObjectCache, ObjectSessionStore, ObjectStoreClient, ObjectStoreOptions, Service};
use beaker_testkit::store::{changes, fresh_key, record, CacheBackendSuite, SessionIndexSuite, SessionStoreSuite};
use object_store::ObjectStore as _;

use counting::Counting;

mod common;

use common::*;

async fn suites_on(var: &str, suite: &str) {
    let Some(client) = client(var, suite).await else { return };
    let store = ObjectSessionStore::new(client.clone());
    let raw = client.object_store().clone();
    let at = store.clone();
    SessionStoreSuite::new(Arc::new(store))
        .with_corruptor(Box::new(move |key| {
            let raw = raw.clone();
            let path = at.object_path(&key);
            Box::pin(async move {
                raw.put(&path, b"BKR1 but not a record".to_vec().into()).await.expect("write garbage");
            })
        }))
        .with_real_time_expiry()
        .run()
        .await;
    // The index suite lists the prefix dozens of times; an emulator on a busy machine can
    // take longer than production's timeout to answer a listing.
    let patient = ObjectStoreOptions::default().with_timeout(Duration::from_secs(20));
    let listing = client_with(var, suite, patient).await.expect("the same service answered above");
    SessionIndexSuite::new(Arc::new(ObjectSessionStore::new(listing.clone()))).run().await;
    wipe(&listing).await;
    CacheBackendSuite::new(Arc::new(ObjectCache::new(client.clone()))).with_real_time_expiry().run().await;
    wipe(&client).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn s3_passes_the_store_and_cache_suites() {
    suites_on(SERVICES[0].0, SERVICES[0].1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn azure_passes_the_store_and_cache_suites() {
    suites_on(SERVICES[1].0, SERVICES[1].1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn gcs_passes_the_store_and_cache_suites() {
    suites_on(SERVICES[2].0, SERVICES[2].1).await;
}

/// 50 requests, each setting its own key of one session at the same time: every one of
/// them survives, on every emulator.
async fn concurrent_writes_on(var: &str, suite: &str) {
    // The emulators serve one request at a time (Azurite is one Node.js process) on a
    // machine shared with the other tests: a generous timeout, since this test is about
    // lost updates, not latency.
    let options = ObjectStoreOptions::default().with_timeout(Duration::from_secs(15));
    let Some(client) = client_with(var, suite, options).await else { return };
    let store = Arc::new(ObjectSessionStore::new(client.clone()));
    let key = fresh_key();
    assert!(store.create(&key, &record(&[("base", b"j0")], None)).await.unwrap());
    let tasks: Vec<_> = (0..50)
        .map(|i| {
            let store = store.clone();
            let key = key.clone();
            tokio::spawn(async move {
                // Each writer loads first, like a request does, so that most writes start
                // from a remembered version that another writer has already replaced.
                store.load(&key).await?;
                let name = format!("k{i}");
                store.apply(&key, &changes(&[(&name, format!("j{i}").as_bytes())], &[], None)).await
            })
        })
        .collect();
    for t in tasks {
        assert!(t.await.unwrap().unwrap(), "an apply found no session");
    }
    let loaded = store.load(&key).await.unwrap().expect("record");
    for i in 0..50 {
        assert_eq!(loaded.entries.get(&format!("k{i}")), Some(&format!("j{i}").into_bytes()), "lost k{i}");
    }
    assert_eq!(loaded.entries.len(), 51);
    wipe(&client).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn s3_fifty_concurrent_writes_of_different_keys_lose_nothing() {
    concurrent_writes_on(SERVICES[0].0, SERVICES[0].1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn azure_fifty_concurrent_writes_of_different_keys_lose_nothing() {
    concurrent_writes_on(SERVICES[1].0, SERVICES[1].1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn gcs_fifty_concurrent_writes_of_different_keys_lose_nothing() {
    concurrent_writes_on(SERVICES[2].0, SERVICES[2].1).await;
}

/// A session deleted while a request that loaded it is still running is not written
/// back, neither by the write that follows the load nor by a later one.
#[tokio::test]
async fn s3_a_deleted_session_is_never_recreated() {
    let Some(client) = client(SERVICES[0].0, "s3 ended sessions").await else { return };
    let store = ObjectSessionStore::new(client.clone());
    let key = fresh_key();
    assert!(store.create(&key, &record(&[("user", b"jann")], None)).await.unwrap());
    assert!(store.load(&key).await.unwrap().is_some());
    // Another process logs the user out.
    ObjectSessionStore::new(client.clone()).delete(&key).await.unwrap();
    assert!(!store.apply(&key, &changes(&[("late", b"j1")], &[], None)).await.unwrap());
    assert!(!store.touch(&key, SystemTime::now(), None).await.unwrap());
    assert!(store.load(&key).await.unwrap().is_none());
    let head = client.object_store().head(&store.object_path(&key)).await;
    assert!(matches!(head, Err(object_store::Error::NotFound { .. })), "the object came back: {head:?}");
    wipe(&client).await;
}

/// Whole requests racing a logout and a login through a session manager: nothing an
/// in-flight request writes brings an ended session back.
async fn lifecycle_races_on(var: &str, suite: &str) {
    let Some(client) = client(var, suite).await else { return };
    let config = SessionConfig::new().with_secret("a secret of sixteen+ bytes").unwrap();
    let manager = SessionManager::builder(config).store(ObjectSessionStore::new(client.clone())).build().unwrap();
    beaker_testkit::lifecycle::LifecycleRaceSuite::new(manager).with_trials(4).run().await;
    wipe(&client).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn s3_lifecycle_races_keep_ended_sessions_ended() {
    lifecycle_races_on(SERVICES[0].0, SERVICES[0].1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn azure_lifecycle_races_keep_ended_sessions_ended() {
    lifecycle_races_on(SERVICES[1].0, SERVICES[1].1).await;
}

#[tokio::test]
async fn s3_cleanup_removes_expired_records_and_tombstones_only() {
    let Some(client) = client(SERVICES[0].0, "s3 cleanup").await else { return };
    let store = ObjectSessionStore::new(client.clone());
    let past = SystemTime::now() - Duration::from_secs(5);
    let (dead, live, forever) = (fresh_key(), fresh_key(), fresh_key());
    let exists = |k: StoreKey| {
        let raw = client.object_store().clone();
        let path = store.object_path(&k);
        async move { raw.head(&path).await.is_ok() }
    };
    assert!(store
        .create(&dead, &record(&[("a", b"j1")], Some(SystemTime::now() + Duration::from_secs(60))))
        .await
        .unwrap());
    assert!(store.apply(&dead, &changes(&[], &[], Some(past))).await.unwrap());
    assert!(store
        .create(&live, &record(&[("a", b"j1")], Some(SystemTime::now() + Duration::from_secs(60))))
        .await
        .unwrap());
    assert!(store.create(&forever, &record(&[("a", b"j1")], None)).await.unwrap());
    // A tombstone whose window has passed goes too; one still in its window stays.
    let (lapsed, retired) = (fresh_key(), fresh_key());
    for k in [&lapsed, &retired] {
        assert!(store.create(k, &record(&[("a", b"j1")], None)).await.unwrap());
    }
    store.end(&lapsed, Duration::from_millis(1)).await.unwrap();
    store.end(&retired, Duration::from_secs(60)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(store.cleanup().await.unwrap(), 2);
    assert_eq!(store.lookup(&retired).await.unwrap(), beaker_core::store::Lookup::Retired);
    assert!(!exists(lapsed).await, "the lapsed tombstone is still there");
    assert!(!exists(dead).await, "the expired object is still there");
    assert!(exists(live).await && exists(forever).await, "cleanup removed a live object");
    assert_eq!(store.cleanup().await.unwrap(), 0);
    wipe(&client).await;
}

#[tokio::test]
async fn an_unreachable_service_is_unavailable_within_the_timeout() {
    // A port nobody listens on, and one that accepts connections and never answers.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_addr = silent.local_addr().unwrap();
    let hold = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            open.push(socket);
        }
    });
    let timeout = Duration::from_millis(400);
    for endpoint in ["http://127.0.0.1:1".to_owned(), format!("http://{silent_addr}")] {
        let s3 = object_store::aws::AmazonS3Builder::new()
            .with_bucket_name("nowhere")
            .with_region("us-east-1")
            .with_endpoint(&endpoint)
            .with_allow_http(true)
            .with_access_key_id("x")
            .with_secret_access_key("x")
            .with_client_options(object_store::ClientOptions::new().with_allow_http(true).with_timeout(timeout))
            .with_retry(object_store::RetryConfig { max_retries: 1, retry_timeout: timeout, ..Default::default() })
            .build()
            .unwrap();
        let options = ObjectStoreOptions::default().with_timeout(timeout);
        let client = ObjectStoreClient::from_store(Arc::new(s3), Service::S3, "p", options);
        let store = ObjectSessionStore::new(client.clone());
        let cache = ObjectCache::new(client);
        let started = Instant::now();
        let e = store.load(&fresh_key()).await.unwrap_err();
        assert!(e.is_unavailable(), "{endpoint}: {e:?}");
        let e = store.apply(&fresh_key(), &changes(&[("a", b"j")], &[], None)).await.unwrap_err();
        assert!(e.is_unavailable(), "{endpoint}: {e:?}");
        let e = cache.get("ns", "k").await.unwrap_err();
        assert!(e.is_unavailable(), "{endpoint}: {e:?}");
        let elapsed = started.elapsed();
        assert!(elapsed < timeout * 3 * 2, "{endpoint}: three calls took {elapsed:?} with a {timeout:?} timeout");
    }
    hold.abort();
}

#[tokio::test]
async fn bad_urls_are_configuration_errors() {
    for url in ["redis://127.0.0.1/0", "s3://", "s3:/bucket", "s3://bucket/../x", "s3://bucket?region=x", "bucket"] {
        let e = ObjectStoreClient::connect(url, ObjectStoreOptions::default()).await.unwrap_err();
        assert!(!e.is_unavailable(), "{url}: {e:?}");
        assert!(e.to_string().contains(url.split('?').next().unwrap()), "{url}: {e}");
    }
    let e = ObjectStoreClient::connect("s3://b/p", ObjectStoreOptions::default().with_timeout(Duration::ZERO))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("timeout"), "{e}");
}

#[tokio::test]
async fn s3_a_missing_bucket_fails_at_start_up() {
    let Some(url) = url(SERVICES[0].0, "s3 missing bucket") else { return };
    let (_, rest) = url.split_once("://").unwrap();
    let missing = format!("s3://no-such-bucket-{}", &rest[rest.len() - 12..].to_ascii_lowercase());
    let e = ObjectStoreClient::connect(&missing, ObjectStoreOptions::default()).await.unwrap_err();
    assert!(!e.is_unavailable(), "{e:?}");
    assert!(e.to_string().contains("no-such-bucket"), "{e}");
}

/// Requests per session request and cache call, counted at the object_store client, and
/// the mean latency of each on the emulator (printed, for docs/benchmarks.md).
async fn round_trips_on(var: &str, suite: &str) {
    let Some(client) = client(var, suite).await else { return };
    let counting = Counting::new(client.object_store().clone());
    let counted = ObjectStoreClient::from_store(
        Arc::new(counting.clone()),
        client.service(),
        client.prefix(),
        ObjectStoreOptions::default(),
    );
    let store = ObjectSessionStore::new(counted.clone());
    let config = SessionConfig::new().with_secret("a secret of sixteen+ bytes").unwrap();
    let manager = SessionManager::builder(config).store(store).build().unwrap();
    const N: u32 = 20;
    let mut report = Vec::new();
    let mut measure = |what: &str, requests: u64, elapsed: Duration| {
        report.push(format!("{what}: {requests} requests, {:.1} ms", elapsed.as_secs_f64() * 1000.0 / f64::from(N)));
    };

    // New session: one create.
    let mut cookies = Vec::new();
    let before = counting.total();
    let started = Instant::now();
    for _ in 0..N {
        let session = manager.start(std::iter::empty::<&str>());
        session.insert("user", "ada").await.unwrap();
        let set = manager.finish(&session).await.unwrap();
        cookies.push(set[0].as_str().split(';').next().unwrap().to_owned());
    }
    let per = (counting.total() - before) / u64::from(N);
    assert_eq!(per, 1, "new session");
    measure("new session", per, started.elapsed());

    // Untouched: nothing.
    let before = counting.total();
    for c in &cookies {
        let session = manager.start([c.as_str()]);
        assert!(manager.finish(&session).await.unwrap().is_empty());
    }
    assert_eq!(counting.total() - before, 0, "untouched session");

    // Read-only: one read.
    let before = counting.total();
    let started = Instant::now();
    for c in &cookies {
        let session = manager.start([c.as_str()]);
        assert_eq!(session.get::<String>("user").await.unwrap().as_deref(), Some("ada"));
        manager.finish(&session).await.unwrap();
    }
    let per = (counting.total() - before) / u64::from(N);
    assert_eq!(per, 1, "read-only session");
    measure("read-only session", per, started.elapsed());

    // Modified: one read and one conditional write.
    let before = counting.total();
    let started = Instant::now();
    for c in &cookies {
        let session = manager.start([c.as_str()]);
        session.insert("visits", &1).await.unwrap();
        manager.finish(&session).await.unwrap();
    }
    let per = (counting.total() - before) / u64::from(N);
    assert_eq!(per, 2, "modified session");
    measure("modified session", per, started.elapsed());

    // The cache, once the namespace's generation is known: get and put 2 requests in one
    // round trip each.
    let cache = ObjectCache::new(counted);
    let entry =
        beaker_core::cache::CacheEntry { value: b"j1".to_vec(), stored_at: SystemTime::now(), fresh_until: None };
    cache.put("ns", "warm", &entry, None).await.unwrap();
    let before = counting.total();
    let started = Instant::now();
    for i in 0..N {
        cache.put("ns", &format!("k{i}"), &entry, None).await.unwrap();
    }
    let per = (counting.total() - before) / u64::from(N);
    assert_eq!(per, 2, "cache put");
    measure("cache put", per, started.elapsed());
    let before = counting.total();
    let started = Instant::now();
    for i in 0..N {
        assert!(cache.get("ns", &format!("k{i}")).await.unwrap().is_some());
    }
    let per = (counting.total() - before) / u64::from(N);
    assert_eq!(per, 2, "cache get");
    measure("cache get", per, started.elapsed());
    let before = counting.total();
    cache.clear("ns").await.unwrap();
    assert_eq!(counting.total() - before, 1, "cache clear");

    use std::io::Write as _;
    let _ = writeln!(std::io::stderr(), "\n=== {suite} round trips (mean of {N}) ===\n{}\n", report.join("\n"));
    wipe(&client).await;
}

#[tokio::test]
async fn s3_round_trips_per_request() {
    round_trips_on(SERVICES[0].0, SERVICES[0].1).await;
}

#[tokio::test]
async fn azure_round_trips_per_request() {
    round_trips_on(SERVICES[1].0, SERVICES[1].1).await;
}

#[tokio::test]
async fn gcs_round_trips_per_request() {
    round_trips_on(SERVICES[2].0, SERVICES[2].1).await;
}
