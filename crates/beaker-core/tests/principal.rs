//! Sessions per user through the public API: a principal on the session, the manager's
//! listing, ending by handle, everywhere and all but one, the per-principal cap, and what
//! cookie-only sessions refuse. Each test runs on the memory store called directly and
//! on the same store behind the `SessionStore` trait.

mod common;

use std::sync::Arc;
use std::time::Duration;

use beaker_core::store::SessionStore;
use beaker_core::{
    ConfigError, CookieStore, Error, ManualClock, MemoryStore, Session, SessionConfig, SessionHandle, SessionManager,
    StoreError,
};
use common::{config, pair};

struct Setup {
    clock: ManualClock,
    manager: SessionManager,
}

/// The memory store passed by value (the engine's direct path) and behind the trait.
fn setups(config: SessionConfig) -> Vec<(&'static str, Setup)> {
    let direct = {
        let clock = ManualClock::new();
        let store = MemoryStore::with_clock(1000, Arc::new(clock.clone()));
        let manager =
            SessionManager::builder(config.clone()).store(store).clock(Arc::new(clock.clone())).build().unwrap();
        Setup { clock, manager }
    };
    let dynamic = {
        let clock = ManualClock::new();
        let store: Arc<dyn SessionStore> = Arc::new(MemoryStore::with_clock(1000, Arc::new(clock.clone())));
        let manager =
            SessionManager::builder(config).shared_store(store).clock(Arc::new(clock.clone())).build().unwrap();
        Setup { clock, manager }
    };
    vec![("direct", direct), ("dyn", dynamic)]
}

/// A browser that logs in as `user` (principal set, id regenerated, as at a login) and
/// returns its cookie.
async fn login(m: &SessionManager, user: &str) -> String {
    let anon = m.start(std::iter::empty());
    anon.insert("n", &1).await.unwrap();
    let cookie = pair(&m.finish(&anon).await.unwrap()[0]);
    let s = m.start([cookie.as_str()]);
    s.insert("user", user).await.unwrap();
    s.set_principal(user).await.unwrap();
    s.regenerate_id().await.unwrap();
    let out = m.finish(&s).await.unwrap();
    pair(&out[0])
}

async fn handle_of(m: &SessionManager, cookie: &str) -> SessionHandle {
    let s = m.start([cookie]);
    s.handle().await.unwrap().expect("a stored session has a handle")
}

async fn user_of(m: &SessionManager, cookie: &str) -> Option<String> {
    let s = m.start([cookie]);
    let user = s.get::<String>("user").await.unwrap();
    m.finish(&s).await.unwrap();
    user
}

#[tokio::test]
async fn a_login_files_the_session_and_regeneration_moves_it_in_the_index() {
    for (name, f) in setups(config()) {
        let m = &f.manager;
        let anon = m.start(std::iter::empty());
        anon.insert("n", &1).await.unwrap();
        let old = pair(&m.finish(&anon).await.unwrap()[0]);
        let old_handle = handle_of(m, &old).await;

        let s = m.start([old.as_str()]);
        s.set_principal("alice").await.unwrap();
        s.set_device("Firefox on a laptop").await.unwrap();
        s.regenerate_id().await.unwrap();
        assert_eq!(s.handle().await.unwrap().as_ref(), Some(&old_handle), "{name}: before finish, the old handle");
        let new = pair(&m.finish(&s).await.unwrap()[0]);
        let new_handle = s.handle().await.unwrap().unwrap();
        assert_ne!(new_handle, old_handle, "{name}");
        assert_eq!(handle_of(m, &new).await, new_handle, "{name}: after finish, the new one");
        assert!(!new.contains(new_handle.as_str()), "{name}: a handle is not the id");

        let listed = m.sessions_of("alice").await.unwrap();
        assert_eq!(listed.len(), 1, "{name}: {listed:?}");
        assert_eq!(listed[0].handle, new_handle, "{name}: the retired key is not listed");
        assert_eq!(listed[0].device.as_deref(), Some("Firefox on a laptop"), "{name}");
        assert!(m.sessions_of("bob").await.unwrap().is_empty(), "{name}");

        let again = m.start([new.as_str()]);
        assert_eq!(again.principal().await.unwrap().as_deref(), Some("alice"), "{name}");
        assert_eq!(again.device().await.unwrap().as_deref(), Some("Firefox on a laptop"), "{name}");
        // Setting the same principal again writes nothing.
        again.set_principal("alice").await.unwrap();
        assert!(m.finish(&again).await.unwrap().is_empty(), "{name}");
        let _ = f.clock;
    }
}

#[tokio::test]
async fn three_logins_list_newest_first_and_ending_one_by_handle_logs_out_exactly_that_client() {
    for (name, f) in setups(config()) {
        let m = &f.manager;
        let mut cookies = Vec::new();
        for _ in 0..3 {
            cookies.push(login(m, "alice").await);
            f.clock.advance(Duration::from_secs(1));
        }
        let bob = login(m, "bob").await;
        let listed = m.sessions_of("alice").await.unwrap();
        let handles: Vec<SessionHandle> = listed.iter().map(|i| i.handle.clone()).collect();
        let mut expected = Vec::new();
        for c in cookies.iter().rev() {
            expected.push(handle_of(m, c).await);
        }
        assert_eq!(handles, expected, "{name}: newest first");
        assert!(listed.windows(2).all(|w| w[0].created >= w[1].created), "{name}");

        // A request of the middle client is in flight: loaded before, writes after.
        let in_flight = m.start([cookies[1].as_str()]);
        in_flight.get::<String>("user").await.unwrap();
        // Bob cannot end Alice's session by its handle; Alice can.
        assert!(!m.end_session(Some("bob"), &expected[1]).await.unwrap(), "{name}");
        assert!(m.end_session(Some("alice"), &expected[1]).await.unwrap(), "{name}");
        assert!(!m.end_session(Some("alice"), &expected[1]).await.unwrap(), "{name}: ended twice");
        in_flight.insert("n", &99).await.unwrap();
        assert!(m.finish(&in_flight).await.unwrap().is_empty(), "{name}: a cookie for the ended session");
        assert!(in_flight.changes_dropped(), "{name}");

        assert_eq!(user_of(m, &cookies[1]).await, None, "{name}: the ended client");
        assert_eq!(user_of(m, &cookies[0]).await.as_deref(), Some("alice"), "{name}");
        assert_eq!(user_of(m, &cookies[2]).await.as_deref(), Some("alice"), "{name}");
        assert_eq!(user_of(m, &bob).await.as_deref(), Some("bob"), "{name}");
        assert_eq!(m.sessions_of("alice").await.unwrap().len(), 2, "{name}");

        // An operator ends by handle alone.
        let bob_handle = handle_of(m, &bob).await;
        assert!(m.end_session(None, &bob_handle).await.unwrap(), "{name}");
        assert_eq!(user_of(m, &bob).await, None, "{name}");
        assert!(!m.end_session(None, &bob_handle).await.unwrap(), "{name}");
    }
}

#[tokio::test]
async fn logout_everywhere_ends_every_session_and_in_flight_writes_never_revive_one() {
    for (name, f) in setups(config()) {
        let m = &f.manager;
        let cookies = [login(m, "alice").await, login(m, "alice").await, login(m, "alice").await];
        let bob = login(m, "bob").await;
        let in_flight: Vec<Session> = cookies.iter().map(|c| m.start([c.as_str()])).collect();
        for s in &in_flight {
            s.get::<String>("user").await.unwrap();
        }

        let here = m.start([cookies[0].as_str()]);
        assert_eq!(m.end_everywhere(&here).await.unwrap(), 3, "{name}");
        let out = m.finish(&here).await.unwrap();
        assert!(out.len() == 1 && out[0].is_removal(), "{name}: a removal cookie for this client");

        for s in &in_flight {
            s.insert("n", &7).await.unwrap();
            assert!(m.finish(s).await.unwrap().is_empty(), "{name}: a cookie for an ended session");
            assert!(s.changes_dropped(), "{name}");
        }
        for c in &cookies {
            assert_eq!(user_of(m, c).await, None, "{name}");
        }
        assert!(m.sessions_of("alice").await.unwrap().is_empty(), "{name}");
        assert_eq!(user_of(m, &bob).await.as_deref(), Some("bob"), "{name}: another user's session");
        assert_eq!(m.end_principal("alice").await.unwrap(), 0, "{name}");
        assert_eq!(m.end_principal("bob").await.unwrap(), 1, "{name}");
    }
}

#[tokio::test]
async fn ending_all_but_this_one_keeps_the_caller_signed_in() {
    for (name, f) in setups(config()) {
        let m = &f.manager;
        let cookies = [login(m, "alice").await, login(m, "alice").await, login(m, "alice").await];
        let here = m.start([cookies[2].as_str()]);
        assert_eq!(m.end_principal_except("alice", &here).await.unwrap(), 2, "{name}");
        assert!(m.finish(&here).await.unwrap().is_empty(), "{name}");
        assert_eq!(user_of(m, &cookies[2]).await.as_deref(), Some("alice"), "{name}");
        assert_eq!(user_of(m, &cookies[0]).await, None, "{name}");
        assert_eq!(user_of(m, &cookies[1]).await, None, "{name}");
        let listed = m.sessions_of("alice").await.unwrap();
        assert_eq!(listed.len(), 1, "{name}");
        assert_eq!(listed[0].handle, handle_of(m, &cookies[2]).await, "{name}");
    }
}

#[tokio::test]
async fn a_login_beyond_the_cap_ends_the_least_recently_used_sessions() {
    for (name, f) in setups(config().with_max_sessions_per_principal(Some(2))) {
        let m = &f.manager;
        let a = login(m, "alice").await;
        f.clock.advance(Duration::from_secs(10));
        let b = login(m, "alice").await;
        f.clock.advance(Duration::from_secs(10));
        // `a` is used again: now `b` is the least recently used.
        let s = m.start([a.as_str()]);
        s.insert("n", &2).await.unwrap();
        m.finish(&s).await.unwrap();
        f.clock.advance(Duration::from_secs(10));
        let c = login(m, "alice").await;
        assert_eq!(m.sessions_of("alice").await.unwrap().len(), 2, "{name}");
        assert_eq!(user_of(m, &b).await, None, "{name}: the least recently used one");
        assert_eq!(user_of(m, &a).await.as_deref(), Some("alice"), "{name}");
        assert_eq!(user_of(m, &c).await.as_deref(), Some("alice"), "{name}: the new login");
        // Other users are not counted.
        login(m, "bob").await;
        assert_eq!(m.sessions_of("alice").await.unwrap().len(), 2, "{name}");
    }
    for (name, f) in setups(config().with_max_sessions_per_principal(Some(1))) {
        let first = login(&f.manager, "alice").await;
        let second = login(&f.manager, "alice").await;
        assert_eq!(user_of(&f.manager, &first).await, None, "{name}");
        assert_eq!(user_of(&f.manager, &second).await.as_deref(), Some("alice"), "{name}");
    }
}

#[tokio::test]
async fn a_principal_alone_is_saved_and_a_new_principal_moves_the_session() {
    for (name, f) in setups(config()) {
        let m = &f.manager;
        let s = m.start(std::iter::empty());
        s.set_principal("carol").await.unwrap();
        let out = m.finish(&s).await.unwrap();
        assert_eq!(out.len(), 1, "{name}: a session with an owner and no data is saved");
        let cookie = pair(&out[0]);
        assert_eq!(m.sessions_of("carol").await.unwrap().len(), 1, "{name}");
        let s = m.start([cookie.as_str()]);
        s.set_principal("dave").await.unwrap();
        m.finish(&s).await.unwrap();
        assert!(m.sessions_of("carol").await.unwrap().is_empty(), "{name}: still listed under the old principal");
        assert_eq!(m.sessions_of("dave").await.unwrap().len(), 1, "{name}");
        // Invalidated: the owner goes with the session.
        let s = m.start([cookie.as_str()]);
        s.invalidate().await.unwrap();
        assert_eq!(s.principal().await.unwrap(), None, "{name}");
        m.finish(&s).await.unwrap();
        assert!(m.sessions_of("dave").await.unwrap().is_empty(), "{name}");
    }
}

#[tokio::test]
async fn expired_sessions_are_not_listed() {
    for (name, f) in setups(config().with_timeout(Duration::from_secs(60))) {
        let m = &f.manager;
        login(m, "alice").await;
        f.clock.advance(Duration::from_secs(30));
        login(m, "alice").await;
        assert_eq!(m.sessions_of("alice").await.unwrap().len(), 2, "{name}");
        f.clock.advance(Duration::from_secs(31));
        assert_eq!(m.sessions_of("alice").await.unwrap().len(), 1, "{name}");
        f.clock.advance(Duration::from_secs(30));
        assert!(m.sessions_of("alice").await.unwrap().is_empty(), "{name}");
        assert_eq!(m.end_principal("alice").await.unwrap(), 0, "{name}");
    }
}

#[tokio::test]
async fn bad_principals_and_devices_are_refused_with_400() {
    let m = SessionManager::builder(config()).build().unwrap();
    let s = m.start(std::iter::empty());
    let long = "x".repeat(257);
    for bad in ["", long.as_str(), "alice\nbob", "tab\there"] {
        let e = s.set_principal(bad).await.unwrap_err();
        assert!(matches!(e, Error::InvalidOwner(_)), "{bad:?}: {e}");
        assert_eq!(e.status_code(), 400);
        assert!(e.to_string().contains("principal"), "{e}");
    }
    s.set_principal("x".repeat(256)).await.unwrap();
    assert!(s.set_principal("élise").await.is_ok(), "UTF-8 is fine");
    let e = m.start(std::iter::empty()).set_device("Firefox").await.unwrap_err();
    assert!(e.to_string().contains("set_principal first"), "{e}");
    for bad in ["", long.as_str(), "a\u{7}"] {
        let e = s.set_device(bad).await.unwrap_err();
        assert!(e.to_string().contains("device"), "{e}");
    }
    assert!(m.finish(&s).await.unwrap().len() == 1);
}

#[tokio::test]
async fn cookie_only_sessions_carry_a_principal_but_cannot_be_listed() {
    let m = SessionManager::builder(config()).cookie_store(CookieStore).build().unwrap();
    let s = m.start(std::iter::empty());
    s.set_principal("alice").await.unwrap();
    let cookie = pair(&m.finish(&s).await.unwrap()[0]);
    let again = m.start([cookie.as_str()]);
    assert_eq!(again.principal().await.unwrap().as_deref(), Some("alice"));
    assert_eq!(again.handle().await.unwrap(), None);
    assert!(m.store().is_none());
    let e = m.sessions_of("alice").await.unwrap_err();
    assert!(matches!(e, Error::Store(StoreError::Unsupported { .. })), "{e}");
    assert_eq!(e.status_code(), 501);
    assert_eq!(m.end_principal("alice").await.unwrap_err().status_code(), 501);
    let handle = SessionHandle::parse("AAAAAAAAAAAAAAAAAAAAAA").unwrap();
    assert_eq!(m.end_session(None, &handle).await.unwrap_err().status_code(), 501);
    assert_eq!(m.end_session(Some("alice"), &handle).await.unwrap_err().status_code(), 501);

    let refused = SessionManager::builder(config().with_max_sessions_per_principal(Some(3)))
        .cookie_store(CookieStore)
        .build()
        .unwrap_err();
    assert!(
        matches!(&refused, ConfigError::Conflict { key, .. } if key == "session.max_sessions_per_principal"),
        "{refused}"
    );
}

#[test]
fn max_sessions_per_principal_is_read_from_options_and_zero_or_none_is_unlimited() {
    let read = |v: &str| SessionConfig::from_map([("session.max_sessions_per_principal", v)]);
    assert_eq!(SessionConfig::default().max_sessions_per_principal, None);
    assert_eq!(read("3").unwrap().max_sessions_per_principal, Some(3));
    assert_eq!(read("0").unwrap().max_sessions_per_principal, None);
    assert_eq!(read("none").unwrap().max_sessions_per_principal, None);
    for bad in ["many", "-1", "2.5"] {
        match read(bad) {
            Err(ConfigError::Invalid { key, .. }) => assert_eq!(key, "session.max_sessions_per_principal"),
            other => panic!("{bad}: {other:?}"),
        }
    }
    let env = SessionConfig::from_env_vars([("BEAKER_SESSION_MAX_SESSIONS_PER_PRINCIPAL".to_owned(), "5".to_owned())]);
    assert_eq!(env.unwrap().max_sessions_per_principal, Some(5));
}

#[tokio::test]
async fn the_manager_hands_out_its_store_for_tools() {
    let m = SessionManager::builder(config()).build().unwrap();
    login(&m, "alice").await;
    login(&m, "bob").await;
    let store = m.store().expect("a memory store");
    assert_eq!(store.count().await.unwrap(), 2);
    assert_eq!(store.sessions_of("alice").await.unwrap().len(), 1);
}
