//! The ended-session rule through the public API, step by step (the races run many trials
//! in `beaker-testkit`'s lifecycle suite): a session that ended by logout, regeneration,
//! expiry or revocation is never written again and no response carries it.

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use beaker_core::store::{SessionStore, StoreKey};
use beaker_core::{CookieExpires, CookieStore, MemoryStore, OnStoreError, SessionConfig, SessionManager};
use common::{config, fixture, pair, Fixture, SECRET};

async fn logged_in(f: &Fixture) -> String {
    let s = f.manager.start(std::iter::empty());
    s.insert("user", "ada").await.unwrap();
    pair(&f.manager.finish(&s).await.unwrap()[0])
}

#[tokio::test]
async fn a_write_loaded_before_logout_is_dropped_and_reported() {
    let f = fixture(config());
    let cookie = logged_in(&f).await;
    let in_flight = f.manager.start([cookie.as_str()]);
    assert_eq!(in_flight.get::<String>("user").await.unwrap().as_deref(), Some("ada"));

    let logout = f.manager.start([cookie.as_str()]);
    logout.invalidate().await.unwrap();
    assert!(f.manager.finish(&logout).await.unwrap()[0].is_removal());

    in_flight.insert("n", &1).await.unwrap();
    let records = f.store.inner.len();
    assert!(f.manager.finish(&in_flight).await.unwrap().is_empty(), "a cookie for an ended session");
    assert!(in_flight.changes_dropped());
    assert!(in_flight.has_ended().await.unwrap());
    assert_eq!(f.store.inner.len(), records, "the dropped write created a record");
    assert_eq!(in_flight.id().await.unwrap(), None);
}

#[tokio::test]
async fn a_touch_or_rotation_resign_after_logout_sends_nothing() {
    let cfg = config().with_timeout(Duration::from_secs(100)).with_touch_interval(Duration::from_secs(1));
    let f = fixture(cfg);
    let cookie = logged_in(&f).await;
    f.clock.advance(Duration::from_secs(5));
    let reader = f.manager.start([cookie.as_str()]);
    reader.get::<String>("user").await.unwrap();
    let logout = f.manager.start([cookie.as_str()]);
    logout.invalidate().await.unwrap();
    f.manager.finish(&logout).await.unwrap();
    assert!(f.manager.finish(&reader).await.unwrap().is_empty());
    assert!(!reader.changes_dropped(), "a read-only request had nothing to drop");
}

#[tokio::test]
async fn a_retired_id_gets_no_session_and_no_cookie_until_its_window_passes() {
    let f = fixture(config().with_retired_window(Duration::from_secs(30)));
    let old = logged_in(&f).await;
    let login = f.manager.start([old.as_str()]);
    login.insert("role", "admin").await.unwrap();
    login.regenerate_id().await.unwrap();
    let new = pair(&f.manager.finish(&login).await.unwrap()[0]);

    // The same browser's request sent before it got the new cookie.
    let late = f.manager.start([old.as_str()]);
    assert!(late.has_ended().await.unwrap());
    assert_eq!(late.get::<String>("user").await.unwrap(), None, "the retired id still reads the session");
    late.insert("n", &1).await.unwrap();
    late.regenerate_id().await.unwrap();
    assert!(f.manager.finish(&late).await.unwrap().is_empty(), "a cookie that would replace the new one");
    assert!(late.changes_dropped());
    let s = f.manager.start([new.as_str()]);
    assert_eq!(s.get::<String>("role").await.unwrap().as_deref(), Some("admin"));
    assert_eq!(s.get::<i32>("n").await.unwrap(), None);

    // After the window the old id is just unknown: a fresh session, never the old one.
    f.clock.advance(Duration::from_secs(31));
    let later = f.manager.start([old.as_str()]);
    assert!(!later.has_ended().await.unwrap());
    later.insert("n", &1).await.unwrap();
    let out = f.manager.finish(&later).await.unwrap();
    assert_eq!(out.len(), 1);
    assert_ne!(pair(&out[0]), old);
    assert_ne!(pair(&out[0]), new, "a retired id must never lead to its successor");
}

#[tokio::test]
async fn without_a_window_a_retired_id_is_just_unknown() {
    let f = fixture(config().with_retired_window(Duration::ZERO));
    let old = logged_in(&f).await;
    let logout = f.manager.start([old.as_str()]);
    logout.invalidate().await.unwrap();
    f.manager.finish(&logout).await.unwrap();
    let late = f.manager.start([old.as_str()]);
    assert!(!late.has_ended().await.unwrap());
    late.insert("n", &1).await.unwrap();
    assert_eq!(f.manager.finish(&late).await.unwrap().len(), 1, "retired_window = 0 keeps no tombstone");
}

#[tokio::test]
async fn invalidate_then_write_starts_a_new_session_with_none_of_the_old_data() {
    let f = fixture(config());
    let old = logged_in(&f).await;
    let s = f.manager.start([old.as_str()]);
    s.get::<String>("user").await.unwrap();
    s.invalidate().await.unwrap();
    s.insert("theme", "dark").await.unwrap();
    let out = f.manager.finish(&s).await.unwrap();
    assert_eq!(out.len(), 1);
    assert!(!out[0].is_removal());
    let fresh = f.manager.start([pair(&out[0]).as_str()]);
    assert_eq!(fresh.keys().await.unwrap(), vec!["theme"]);
    assert!(f.manager.start([old.as_str()]).has_ended().await.unwrap());
}

#[tokio::test]
async fn the_absolute_lifetime_survives_regeneration() {
    let cfg = config().with_timeout(Duration::from_secs(100)).with_absolute_timeout(Duration::from_secs(250));
    let f = fixture(cfg);
    let cookie = logged_in(&f).await;
    let created = f.manager.start([cookie.as_str()]).created().await.unwrap();
    f.clock.advance(Duration::from_secs(90));
    let login = f.manager.start([cookie.as_str()]);
    login.regenerate_id().await.unwrap();
    let mut cookie = pair(&f.manager.finish(&login).await.unwrap()[0]);
    assert_eq!(f.manager.start([cookie.as_str()]).created().await.unwrap(), created);
    for _ in 0..2 {
        f.clock.advance(Duration::from_secs(70));
        let s = f.manager.start([cookie.as_str()]);
        s.regenerate_id().await.unwrap();
        cookie = pair(&f.manager.finish(&s).await.unwrap()[0]);
    }
    // Active (230 s in, 70 s idle at most), and yet over 250 s after the first creation,
    // however often the id changed, it is over.
    let s = f.manager.start([cookie.as_str()]);
    assert_eq!(s.get::<String>("user").await.unwrap().as_deref(), Some("ada"));
    f.clock.advance(Duration::from_secs(21));
    assert!(f.manager.start([cookie.as_str()]).is_new().await.unwrap(), "regeneration restarted the lifetime");
}

#[tokio::test]
async fn continue_after_a_load_failure_never_replaces_the_stored_session() {
    let f = fixture(config().with_on_store_error(OnStoreError::Continue));
    let cookie = logged_in(&f).await;
    f.store.down.store(true, Ordering::SeqCst);
    let s = f.manager.start([cookie.as_str()]);
    assert_eq!(s.get::<String>("user").await.unwrap(), None);
    s.insert("cart", &["tea"]).await.unwrap();
    // The store is back when the request ends: the write must still not replace the user's.
    f.store.down.store(false, Ordering::SeqCst);
    assert!(f.manager.finish(&s).await.unwrap().is_empty(), "a cookie replacing the user's session");
    assert!(s.changes_dropped());
    let back = f.manager.start([cookie.as_str()]);
    assert_eq!(back.get::<String>("user").await.unwrap().as_deref(), Some("ada"));
    assert_eq!(back.keys().await.unwrap(), vec!["user"]);
}

#[tokio::test]
async fn rotation_resigns_a_read_only_session_once() {
    let f = fixture(config());
    let old_cookie = logged_in(&f).await;
    let rotated = SessionConfig::new().with_secret("the new secret, at least 16 bytes").unwrap().with_secret(SECRET);
    let rotated = SessionManager::builder(rotated.unwrap()).store(f.store.clone()).build().unwrap();

    let s = rotated.start([old_cookie.as_str()]);
    assert_eq!(s.get::<String>("user").await.unwrap().as_deref(), Some("ada"));
    let out = rotated.finish(&s).await.unwrap();
    assert_eq!(out.len(), 1, "a read-only session with an old-key cookie must be re-signed");
    let resigned = pair(&out[0]);
    assert_ne!(resigned, old_cookie);
    assert_eq!(resigned.split('.').next(), old_cookie.split('.').next(), "same id, new signature");

    let s = rotated.start([resigned.as_str()]);
    assert_eq!(s.get::<String>("user").await.unwrap().as_deref(), Some("ada"));
    assert!(rotated.finish(&s).await.unwrap().is_empty(), "re-signed on every request");
    // The new-key-only manager (old secret dropped) keeps the user logged in.
    let new_only = SessionConfig::new().with_secret("the new secret, at least 16 bytes").unwrap();
    let new_only = SessionManager::builder(new_only).store(f.store.clone()).build().unwrap();
    let s = new_only.start([resigned.as_str()]);
    assert_eq!(s.get::<String>("user").await.unwrap().as_deref(), Some("ada"));
}

#[tokio::test]
async fn maximal_durations_saturate_instead_of_panicking() {
    let cfg = config()
        .with_timeout(Duration::MAX)
        .with_absolute_timeout(Duration::MAX)
        .with_touch_interval(Duration::ZERO)
        .with_retired_window(Duration::MAX)
        .with_cookie_expires(CookieExpires::After(Duration::MAX));
    let f = fixture(cfg);
    let cookie = logged_in(&f).await;
    f.clock.advance(Duration::from_secs(3600));
    let s = f.manager.start([cookie.as_str()]);
    assert_eq!(s.get::<String>("user").await.unwrap().as_deref(), Some("ada"));
    s.regenerate_id().await.unwrap();
    let new = pair(&f.manager.finish(&s).await.unwrap()[0]);
    let s = f.manager.start([new.as_str()]);
    s.invalidate().await.unwrap();
    f.manager.finish(&s).await.unwrap();
    assert!(f.manager.start([cookie.as_str()]).has_ended().await.unwrap());

    let far = std::time::UNIX_EPOCH + Duration::from_secs(400_000_000_000);
    let cookie_cfg = config().with_timeout(Duration::MAX).with_cookie_expires(CookieExpires::At(far));
    let m = SessionManager::builder(cookie_cfg).cookie_store(CookieStore).build().unwrap();
    let s = m.start(std::iter::empty());
    s.insert("n", &1).await.unwrap();
    assert_eq!(m.finish(&s).await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_revoked_session_drops_the_in_flight_write() {
    // Revocation: an operator deletes the record in the store.
    let store = MemoryStore::new();
    let m = SessionManager::builder(config()).store(store.clone()).build().unwrap();
    let s = m.start(std::iter::empty());
    s.insert("user", "ada").await.unwrap();
    let cookie = pair(&m.finish(&s).await.unwrap()[0]);
    let id = s.id().await.unwrap().unwrap();
    let in_flight = m.start([cookie.as_str()]);
    in_flight.get::<String>("user").await.unwrap();
    store.end(&StoreKey::for_id(&id, true), Duration::from_secs(60)).await.unwrap();
    in_flight.insert("n", &1).await.unwrap();
    assert!(m.finish(&in_flight).await.unwrap().is_empty());
    assert!(in_flight.changes_dropped());
    assert_eq!(store.len(), 1, "the dropped write created a record (only the tombstone may be held)");
}

#[tokio::test]
async fn cookie_only_sessions_regenerate_but_cannot_retire_a_copy() {
    let m = SessionManager::builder(config()).cookie_store(CookieStore).build().unwrap();
    let s = m.start(std::iter::empty());
    s.insert("user", "ada").await.unwrap();
    let old = pair(&m.finish(&s).await.unwrap()[0]);
    let s = m.start([old.as_str()]);
    let old_id = s.id().await.unwrap();
    s.regenerate_id().await.unwrap();
    let new = pair(&m.finish(&s).await.unwrap()[0]);
    assert_ne!(m.start([new.as_str()]).id().await.unwrap(), old_id);
    // Documented limit: the copied old cookie still opens until it expires.
    let replay = m.start([old.as_str()]);
    assert_eq!(replay.get::<String>("user").await.unwrap().as_deref(), Some("ada"));
    assert!(!replay.has_ended().await.unwrap());
}
