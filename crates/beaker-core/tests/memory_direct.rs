//! The manager calls the built-in `MemoryStore` directly (no boxed future per call) when
//! it is the default store or passed by value (its own backend variant), and through the
//! `SessionStore` trait when
//! it comes shared behind an `Arc`. Both paths must behave alike: the same scenario runs
//! on each and must observe the same things.

mod common;

use std::sync::Arc;
use std::time::Duration;

use beaker_core::{ManualClock, MemoryStore, SessionManager};
use common::{config, pair};

const TIMEOUT: Duration = Duration::from_secs(60);

fn managers(clock: &ManualClock) -> Vec<(&'static str, SessionManager)> {
    let config = config().with_timeout(TIMEOUT);
    let tick = || Arc::new(clock.clone());
    vec![
        ("default", SessionManager::builder(config.clone()).clock(tick()).build().unwrap()),
        (
            "by value",
            SessionManager::builder(config.clone())
                .store(MemoryStore::with_clock(100, tick()))
                .clock(tick())
                .build()
                .unwrap(),
        ),
        (
            "shared",
            SessionManager::builder(config)
                .shared_store(Arc::new(MemoryStore::with_clock(100, tick())))
                .clock(tick())
                .build()
                .unwrap(),
        ),
    ]
}

async fn scenario(m: &SessionManager, clock: &ManualClock) -> Vec<String> {
    let mut seen = Vec::new();
    let first = m.start([""]);
    first.insert("a", &1).await.unwrap();
    let cookies = m.finish(&first).await.unwrap();
    seen.push(format!("created: {} cookie(s)", cookies.len()));
    let cookie = pair(&cookies[0]);

    // Two requests of one session, changing different keys: both changes survive.
    let (one, two) = (m.start([cookie.as_str()]), m.start([cookie.as_str()]));
    seen.push(format!(
        "both loaded: {:?} {:?}",
        one.get::<i32>("a").await.unwrap(),
        two.get::<i32>("a").await.unwrap()
    ));
    one.insert("x", &10).await.unwrap();
    two.insert("y", &20).await.unwrap();
    seen.push(format!(
        "cookies on update: {} {}",
        m.finish(&one).await.unwrap().len(),
        m.finish(&two).await.unwrap().len()
    ));
    let read = m.start([cookie.as_str()]);
    seen.push(format!(
        "merged: {:?} {:?} {:?} new={}",
        read.get::<i32>("a").await.unwrap(),
        read.get::<i32>("x").await.unwrap(),
        read.get::<i32>("y").await.unwrap(),
        read.is_new().await.unwrap()
    ));

    // Ended under a loaded handle: its write is dropped, under any id, and no cookie.
    let loaded = m.start([cookie.as_str()]);
    loaded.get::<i32>("a").await.unwrap();
    let ender = m.start([cookie.as_str()]);
    ender.invalidate().await.unwrap();
    m.finish(&ender).await.unwrap();
    loaded.insert("z", &30).await.unwrap();
    let late = m.finish(&loaded).await.unwrap();
    seen.push(format!("ended: {} cookie(s), dropped={}", late.len(), loaded.changes_dropped()));
    let old = m.start([cookie.as_str()]);
    seen.push(format!("old id: ended={} a={:?}", old.has_ended().await.unwrap(), old.get::<i32>("a").await.unwrap()));
    old.insert("w", &1).await.unwrap();
    seen.push(format!("write to the retired id: {} cookie(s)", m.finish(&old).await.unwrap().len()));

    // Idle past the timeout: gone.
    let next = m.start([""]);
    next.insert("z", &30).await.unwrap();
    let fresh = pair(&m.finish(&next).await.unwrap()[0]);
    clock.advance(TIMEOUT + Duration::from_secs(1));
    let expired = m.start([fresh.as_str()]);
    seen.push(format!("expired: {:?} new={}", expired.get::<i32>("z").await.unwrap(), expired.is_new().await.unwrap()));
    // The retired id is forgotten after its window (60 s by default): a fresh start.
    let forgotten = m.start([cookie.as_str()]);
    seen.push(format!("old id later: ended={}", forgotten.has_ended().await.unwrap()));
    seen
}

#[tokio::test]
async fn the_direct_and_the_trait_paths_behave_alike() {
    let expected = [
        "created: 1 cookie(s)",
        "both loaded: Some(1) Some(1)",
        "cookies on update: 0 0",
        "merged: Some(1) Some(10) Some(20) new=false",
        "ended: 0 cookie(s), dropped=true",
        "old id: ended=true a=None",
        "write to the retired id: 0 cookie(s)",
        "expired: None new=true",
        "old id later: ended=false",
    ];
    let clock = ManualClock::new();
    for (name, manager) in managers(&clock) {
        assert_eq!(scenario(&manager, &clock).await, expected, "{name}");
    }
}
