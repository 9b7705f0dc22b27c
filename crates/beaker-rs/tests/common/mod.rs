//! What the Redis tests of the facade share: the server they use, a key prefix of the
//! run's own, and the cross-manager dogpile check.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use beaker_rs::cache::CacheManager;

/// `BEAKER_TEST_REDIS_URL`, or the local server.
pub(crate) fn redis_url() -> String {
    std::env::var("BEAKER_TEST_REDIS_URL")
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "redis://127.0.0.1:6379".into())
}

/// A key prefix no other run (or test) shares.
pub(crate) fn run_prefix(tag: &str) -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    format!("beaker-test:{tag}:{}:{nanos}:", std::process::id())
}

/// Twenty concurrent misses of `key` in `region`, alternating between managers `a` and
/// `b`, whose creator takes 300 ms: every call gets the value and it is created once.
pub(crate) async fn assert_one_creator(a: &CacheManager, b: &CacheManager, region: &str, key: &str) {
    let creations = Arc::new(AtomicUsize::new(0));
    let mut calls = Vec::new();
    for i in 0..20 {
        let region = if i % 2 == 0 { a.region(region) } else { b.region(region) }.unwrap();
        let (creations, key) = (creations.clone(), key.to_owned());
        calls.push(tokio::spawn(async move {
            region
                .get_or_create(&key, || async {
                    creations.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    Ok::<_, std::io::Error>(42u64)
                })
                .await
                .unwrap()
        }));
    }
    for call in calls {
        assert_eq!(call.await.unwrap(), 42);
    }
    assert_eq!(creations.load(Ordering::SeqCst), 1, "{key}: 20 concurrent misses on two managers, one creation");
}
