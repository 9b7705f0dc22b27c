//! Cookie-only sessions: encrypted, authenticated, size-limited.

mod common;

use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use beaker_core::{CookieStore, Error, ManualClock, SessionConfig, SessionManager};
use common::{pair, value, SECRET};

fn manager(config: SessionConfig) -> (SessionManager, ManualClock) {
    let clock = ManualClock::new();
    let m = SessionManager::builder(config).cookie_store(CookieStore).clock(Arc::new(clock.clone())).build().unwrap();
    (m, clock)
}

fn config() -> SessionConfig {
    SessionConfig::new().with_secret(SECRET).unwrap()
}

#[tokio::test]
async fn round_trip_without_server_state() {
    let (m, _) = manager(config());
    // Long enough that no ciphertext holds it by chance (a three-letter value does, about
    // once in 2,700 cookies).
    let user = "ada-lovelace-wrote-the-first-program";
    let s = m.start(std::iter::empty());
    s.insert("user", user).await.unwrap();
    let out = m.finish(&s).await.unwrap();
    assert_eq!(out.len(), 1);
    let sent = value(&out[0]);
    let decoded = URL_SAFE_NO_PAD.decode(&sent).expect("the cookie value is base64url");
    assert!(!sent.contains(user), "cookie payload is not encrypted");
    assert!(!decoded.windows(user.len()).any(|w| w == user.as_bytes()), "cookie payload is only encoded");
    let cookie = pair(&out[0]);
    // A second manager with the same secret (another process) reads it.
    let (other, _) = manager(config());
    let s = other.start([cookie.as_str()]);
    assert_eq!(s.get::<String>("user").await.unwrap().as_deref(), Some(user));
    assert!(s.id().await.unwrap().is_some());
    assert!(other.finish(&s).await.unwrap().is_empty(), "read-only: no Set-Cookie");
}

#[tokio::test]
async fn tampered_or_foreign_cookies_give_a_fresh_session() {
    let (m, _) = manager(config());
    let s = m.start(std::iter::empty());
    s.insert("user", "ada").await.unwrap();
    let good = value(&m.finish(&s).await.unwrap()[0]);
    let mut bytes = good.clone().into_bytes();
    let mid = bytes.len() / 2;
    bytes[mid] = if bytes[mid] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(bytes).unwrap();
    let (foreign_mgr, _) = manager(SessionConfig::new().with_secret("a different secret entirely").unwrap());
    let s = foreign_mgr.start(std::iter::empty());
    s.insert("user", "eve").await.unwrap();
    let foreign = value(&foreign_mgr.finish(&s).await.unwrap()[0]);
    for bad in [tampered.as_str(), foreign.as_str(), &good[..good.len() - 5], "", "AAAA", "!!"] {
        let h = format!("beaker.session.id={bad}");
        let s = m.start([h.as_str()]);
        assert!(s.is_new().await.unwrap(), "{bad:.30} accepted");
        assert_eq!(s.get::<String>("user").await.unwrap(), None);
    }
}

#[tokio::test]
async fn oversized_session_is_refused_and_the_old_cookie_stays_valid() {
    let (m, _) = manager(config());
    let s = m.start(std::iter::empty());
    s.insert("small", "x").await.unwrap();
    let cookie = pair(&m.finish(&s).await.unwrap()[0]);
    let s = m.start([cookie.as_str()]);
    s.insert("big", &"y".repeat(5000)).await.unwrap();
    match m.finish(&s).await {
        Err(Error::CookieTooLarge { size, limit }) => {
            assert_eq!(limit, 4096);
            assert!(size > limit);
        }
        other => panic!("expected CookieTooLarge, got {other:?}"),
    }
    let s = m.start([cookie.as_str()]);
    assert_eq!(s.get::<String>("small").await.unwrap().as_deref(), Some("x"));
    assert_eq!(s.get::<String>("big").await.unwrap(), None);
}

#[tokio::test]
async fn regenerate_changes_the_id_and_logout_removes_the_cookie() {
    let (m, _) = manager(config());
    let s = m.start(std::iter::empty());
    s.insert("user", "ada").await.unwrap();
    let first = pair(&m.finish(&s).await.unwrap()[0]);
    let id1 = m.start([first.as_str()]).id().await.unwrap().unwrap();
    let s = m.start([first.as_str()]);
    s.regenerate_id().await.unwrap();
    let second = pair(&m.finish(&s).await.unwrap()[0]);
    let id2 = m.start([second.as_str()]).id().await.unwrap().unwrap();
    assert_ne!(id1, id2);
    let s = m.start([second.as_str()]);
    s.invalidate().await.unwrap();
    let out = m.finish(&s).await.unwrap();
    assert!(out[0].is_removal());
}

#[tokio::test]
async fn expired_cookie_sessions_are_not_loaded() {
    let (m, clock) = manager(config().with_timeout(Duration::from_secs(60)));
    let s = m.start(std::iter::empty());
    s.insert("user", "ada").await.unwrap();
    let cookie = pair(&m.finish(&s).await.unwrap()[0]);
    clock.advance(Duration::from_secs(61));
    assert!(m.start([cookie.as_str()]).is_new().await.unwrap(), "an expired cookie session was replayed");
}

#[tokio::test]
async fn a_bad_cookie_of_our_name_does_not_hide_the_good_one() {
    let (m, _) = manager(config());
    let s = m.start(std::iter::empty());
    s.insert("user", "ada").await.unwrap();
    let good = pair(&m.finish(&s).await.unwrap()[0]);
    // A stale cookie on another path, or one planted by a sibling domain, comes first.
    for header in [format!("beaker.session.id=garbage; {good}"), format!("beaker.session.id=AAAA; x=1; {good}")] {
        let s = m.start([header.as_str()]);
        assert_eq!(s.get::<String>("user").await.unwrap().as_deref(), Some("ada"), "{header:.40}");
    }
    let two_headers = m.start(["beaker.session.id=garbage", good.as_str()]);
    assert_eq!(two_headers.get::<String>("user").await.unwrap().as_deref(), Some("ada"));
}

#[tokio::test]
async fn a_small_sessions_cookie_is_small() {
    // A counter, and a signed-in user with a device: the cookie is the id's 24 bytes, the
    // times, the entries, AES-GCM's nonce and tag, in base64.
    let (m, _) = manager(config());
    let s = m.start(std::iter::empty());
    s.insert("counter", &1).await.unwrap();
    let counter = value(&m.finish(&s).await.unwrap()[0]);
    assert!(counter.len() <= 104, "a counter session's cookie holds {} characters", counter.len());
    let s = m.start(std::iter::empty());
    s.set_principal("ada@example.com").await.unwrap();
    s.set_device("laptop").await.unwrap();
    let owned = value(&m.finish(&s).await.unwrap()[0]);
    assert!(owned.len() <= 120, "a signed-in session's cookie holds {} characters", owned.len());
}

#[tokio::test]
async fn cookies_of_the_earlier_record_layout_still_open() {
    use beaker_core::__private::Keys;
    use beaker_core::store::{Owner, Record};
    use beaker_core::{DataSerializer, Secret, SessionId};

    // Written as earlier versions did: the store's record layout, the id among the entries.
    let (m, _) = manager(config());
    let keys = Keys::new(&[Secret::new(SECRET.as_bytes().to_vec()).unwrap()]).unwrap();
    let id = SessionId::generate();
    let now = std::time::SystemTime::now();
    let record = Record {
        entries: [
            ("counter".to_owned(), DataSerializer::Json.encode(&41).unwrap()),
            ("_beaker.id".to_owned(), DataSerializer::Json.encode(id.expose()).unwrap()),
        ]
        .into(),
        created: now,
        accessed: now,
        expires: Some(now + Duration::from_secs(600)),
        owner: Some(Owner { principal: "ada".to_owned(), device: None }),
    };
    let old = format!("beaker.session.id={}", keys.encrypt("beaker.session.id", &record.to_bytes()));
    let s = m.start([old.as_str()]);
    assert_eq!(s.get::<i64>("counter").await.unwrap(), Some(41));
    assert_eq!(s.id().await.unwrap().as_ref(), Some(&id));
    assert_eq!(s.principal().await.unwrap().as_deref(), Some("ada"));
    assert_eq!(s.keys().await.unwrap(), ["counter"]);
    // The next write moves it to the current layout, same id, same data.
    s.insert("counter", &42).await.unwrap();
    let new = pair(&m.finish(&s).await.unwrap()[0]);
    assert!(new.len() < old.len());
    let s = m.start([new.as_str()]);
    assert_eq!(s.get::<i64>("counter").await.unwrap(), Some(42));
    assert_eq!(s.id().await.unwrap().as_ref(), Some(&id));
    assert_eq!(s.principal().await.unwrap().as_deref(), Some("ada"));
}
