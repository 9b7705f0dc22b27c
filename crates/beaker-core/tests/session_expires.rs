//! `Session::expires`: when the session will expire if the request ends now, under an
//! idle timeout, a touch interval and an absolute lifetime, on a manual clock.

use std::sync::Arc;
use std::time::Duration;

use beaker_core::{Clock, ManualClock, MemoryStore, SessionConfig, SessionManager};

#[tokio::test]
async fn expires_follows_the_writes_touches_and_the_lifetime_cap() {
    let clock = Arc::new(ManualClock::new());
    let config = SessionConfig::new()
        .with_secret("a secret of at least 16 bytes")
        .unwrap()
        .with_timeout(Duration::from_secs(600))
        .with_touch_interval(Duration::from_secs(60))
        .with_absolute_timeout(Duration::from_secs(1000));
    let store = MemoryStore::with_clock(MemoryStore::DEFAULT_MAX_SESSIONS, clock.clone());
    let manager = SessionManager::builder(config).store(store).clock(clock.clone()).build().unwrap();
    let t0 = clock.now();

    let s = manager.start(std::iter::empty::<&str>());
    assert_eq!(s.expires().await.unwrap(), None, "nothing saved, nothing to save");
    s.insert("n", &1).await.unwrap();
    assert_eq!(s.expires().await.unwrap(), Some(t0 + Duration::from_secs(600)), "about to be written now");
    let set = manager.finish(&s).await.unwrap();
    let cookie = set[0].as_str().split(';').next().unwrap().to_owned();

    // 30 s later, a read: no touch due yet, the last write's expiry stands.
    clock.advance(Duration::from_secs(30));
    let s = manager.start([cookie.as_str()]);
    assert_eq!(s.expires().await.unwrap(), Some(t0 + Duration::from_secs(600)));
    manager.finish(&s).await.unwrap();

    // 100 s after the write, a read touches: the idle timeout counts from now.
    clock.advance(Duration::from_secs(70));
    let s = manager.start([cookie.as_str()]);
    assert_eq!(s.expires().await.unwrap(), Some(t0 + Duration::from_secs(700)));
    manager.finish(&s).await.unwrap();

    // Near the cap, the absolute lifetime wins.
    clock.advance(Duration::from_secs(500));
    let s = manager.start([cookie.as_str()]);
    s.insert("n", &2).await.unwrap();
    assert_eq!(s.expires().await.unwrap(), Some(t0 + Duration::from_secs(1000)));
}
