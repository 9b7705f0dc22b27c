//! The dogpile rule under concurrency: one creator for a missing key, one regeneration
//! for a stale key while everybody else gets the stale value, and no wedged keys after a
//! failing, panicking or cancelled creator.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use beaker_core::cache::{CacheManager, Region};
use beaker_core::config::{CacheConfig, RegionConfig};
use beaker_core::ManualClock;
use futures_util::future::join_all;
use tokio::sync::{mpsc, oneshot};

const EXPIRE: Duration = Duration::from_secs(60);

fn region() -> (Region, ManualClock) {
    let clock = ManualClock::new();
    let config = CacheConfig::new().with_region("short", RegionConfig::memory(Some(EXPIRE)));
    let caches = CacheManager::builder(config).clock(clock.clone()).build().unwrap();
    (caches.region("short").unwrap(), clock)
}

type Result<T> = std::result::Result<T, std::io::Error>;

/// Starts a `get_or_create` of `key` whose creator reports that it started and then
/// waits for `release` before returning `value`.
async fn blocked_creator(
    region: &Region,
    key: &'static str,
    value: u64,
) -> (tokio::task::JoinHandle<Result<u64>>, oneshot::Sender<Result<()>>) {
    let (started_tx, mut started_rx) = mpsc::channel::<()>(1);
    let (release_tx, release_rx) = oneshot::channel::<Result<()>>();
    let r = region.clone();
    let task = tokio::spawn(async move {
        r.get_or_create_with(key, None, move || async move {
            started_tx.send(()).await.unwrap();
            release_rx.await.unwrap()?;
            Ok(value)
        })
        .await
    });
    started_rx.recv().await.expect("the creator started");
    (task, release_tx)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_thousand_callers_on_a_missing_key_run_the_creator_once() {
    let (region, _clock) = region();
    let runs = Arc::new(AtomicUsize::new(0));
    let (release_tx, release_rx) = tokio::sync::watch::channel(false);
    let tasks: Vec<_> = (0..1000)
        .map(|_| {
            let (r, runs, mut release) = (region.clone(), runs.clone(), release_rx.clone());
            tokio::spawn(async move {
                r.get_or_create("answer", || async move {
                    runs.fetch_add(1, Ordering::SeqCst);
                    release.wait_for(|go| *go).await.unwrap();
                    Ok::<_, std::io::Error>(42u64)
                })
                .await
                .unwrap()
            })
        })
        .collect();
    tokio::task::yield_now().await;
    release_tx.send(true).unwrap();
    let values: Vec<u64> = join_all(tasks).await.into_iter().map(|r| r.unwrap()).collect();
    assert!(values.iter().all(|&v| v == 42));
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    let stats = region.stats();
    assert_eq!((stats.creations, stats.misses, stats.hits + stats.stale_serves), (1, 1, 999), "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stale_key_is_regenerated_once_while_the_others_get_the_stale_value_without_waiting() {
    let (region, clock) = region();
    region.put("k", &1u64, None).await.unwrap();
    clock.advance(EXPIRE + Duration::from_secs(1));

    let (regenerator, release) = blocked_creator(&region, "k", 2).await;
    let others = Arc::new(AtomicUsize::new(0));
    // These complete while the regenerating creator is still blocked on `release`:
    // nobody waits for it.
    let stale: Vec<u64> = join_all((0..1000).map(|_| {
        let (r, others) = (region.clone(), others.clone());
        async move {
            r.get_or_create("k", || async move {
                others.fetch_add(1, Ordering::SeqCst);
                Ok::<_, std::io::Error>(99u64)
            })
            .await
            .unwrap()
        }
    }))
    .await;
    assert!(stale.iter().all(|&v| v == 1), "stale value served");
    assert_eq!(others.load(Ordering::SeqCst), 0, "no second creator");
    assert!(!regenerator.is_finished());

    release.send(Ok(())).unwrap();
    assert_eq!(regenerator.await.unwrap().unwrap(), 2);
    assert_eq!(region.get::<u64>("k").await.unwrap(), Some(2));
    let stats = region.stats();
    assert_eq!((stats.stale_serves, stats.creations), (1000, 1), "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_creator_releases_the_key_and_a_waiter_creates_instead() {
    let (region, _clock) = region();
    let (failing, release) = blocked_creator(&region, "k", 1).await;
    let r = region.clone();
    let waiter = tokio::spawn(async move { r.get_or_create("k", || async { Ok::<_, std::io::Error>(7u64) }).await });
    tokio::task::yield_now().await;
    release.send(Err(std::io::Error::other("database down"))).unwrap();
    let err = failing.await.unwrap().unwrap_err();
    assert_eq!(err.to_string(), "database down", "the creator's own error comes back");
    assert_eq!(waiter.await.unwrap().unwrap(), 7);
    assert_eq!(region.get::<u64>("k").await.unwrap(), Some(7));

    let e = region.get_or_create::<u64, _, _, _>("x", || async { Err("nope") }).await.unwrap_err();
    assert!(matches!(e, beaker_core::Error::Creator(_)), "{e:?}");
    assert_eq!(region.get::<u64>("x").await.unwrap(), None, "a failure stores nothing");
    assert_eq!(region.get_or_create("x", || async { Ok::<_, std::io::Error>(3u64) }).await.unwrap(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_creator_does_not_wedge_the_key() {
    let (region, _clock) = region();
    let r = region.clone();
    let panicked = tokio::spawn(async move {
        r.get_or_create::<u64, std::io::Error, _, _>("k", || async { panic!("creator bug") }).await
    })
    .await;
    assert!(panicked.unwrap_err().is_panic());
    assert_eq!(region.get_or_create("k", || async { Ok::<_, std::io::Error>(5u64) }).await.unwrap(), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_creator_does_not_wedge_the_key() {
    let (region, _clock) = region();
    let (cancelled, _release) = blocked_creator(&region, "k", 1).await;
    let r = region.clone();
    let waiter = tokio::spawn(async move { r.get_or_create("k", || async { Ok::<_, std::io::Error>(8u64) }).await });
    tokio::task::yield_now().await;
    cancelled.abort();
    assert!(cancelled.await.unwrap_err().is_cancelled());
    assert_eq!(waiter.await.unwrap().unwrap(), 8, "the waiter took over");
    assert_eq!(region.get_or_create("k", || async { Ok::<_, std::io::Error>(9u64) }).await.unwrap(), 8);
}

#[test]
fn blocking_callers_share_one_creator_too() {
    let (region, _clock) = region();
    let runs = Arc::new(AtomicUsize::new(0));
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let (r, runs) = (region.clone(), runs.clone());
            std::thread::spawn(move || {
                r.get_or_create_blocking("k", None, || {
                    runs.fetch_add(1, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(20));
                    Ok::<_, std::io::Error>(11u64)
                })
                .unwrap()
            })
        })
        .collect();
    for t in threads {
        assert_eq!(t.join().unwrap(), 11);
    }
    assert_eq!(runs.load(Ordering::SeqCst), 1);
}
