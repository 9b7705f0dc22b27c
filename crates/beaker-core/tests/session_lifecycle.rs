//! The request lifecycle through the public API: lazy loading, cookies, regeneration,
//! invalidation, flash messages, outages.

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use beaker_core::{CookieExpires, OnStoreError, SessionId};
use common::*;

#[tokio::test]
async fn untouched_session_does_no_io_and_sets_no_cookie() {
    let f = fixture(config());
    let s = f.manager.start(std::iter::empty());
    assert!(f.manager.finish(&s).await.unwrap().is_empty());
    // Even with a valid cookie: no load, no write.
    let s = f.manager.start(["x=1"]);
    s.insert("a", &1).await.unwrap();
    let c = f.manager.finish(&s).await.unwrap();
    let before = f.store.counts.total();
    let s = f.manager.start([pair(&c[0]).as_str()]);
    // Adapters skip `finish` (and its future) when the handler never used the session.
    assert!(!s.is_touched());
    assert!(f.manager.finish(&s).await.unwrap().is_empty());
    assert_eq!(f.store.counts.total(), before, "an untouched session reached the store");
    let s = f.manager.start([pair(&c[0]).as_str()]);
    assert!(s.contains_key("a").await.unwrap());
    assert!(s.is_touched(), "a loaded session must be finished");
    let s = f.manager.start([pair(&c[0]).as_str()]);
    s.invalidate().await.unwrap();
    assert!(s.is_touched(), "an invalidated session must be finished");
}

#[tokio::test]
async fn raw_header_bytes_that_are_not_utf8_spoil_only_the_cookie_they_are_in() {
    let f = fixture(config());
    let s = f.manager.start(std::iter::empty());
    s.insert("n", &7u32).await.unwrap();
    let cookie = pair(&f.manager.finish(&s).await.unwrap()[0]);

    // Stray bytes in other cookies, in the same header or another one: ours still reads.
    let header = [&b"pref=\xff\xfe; "[..], cookie.as_bytes(), b"; other=\xc3"].concat();
    let s = f.manager.start_bytes([&header[..], b"\x80\x81=x"]);
    assert_eq!(s.get::<u32>("n").await.unwrap(), Some(7), "a stray byte elsewhere cost the session");
    assert!(f.manager.finish(&s).await.unwrap().is_empty());

    // A stray byte inside our cookie's value: a bad cookie like any other, a fresh session.
    let mut spoiled = cookie.clone().into_bytes();
    let last = spoiled.len() - 1;
    spoiled[last] = 0xff;
    let s = f.manager.start_bytes([&spoiled[..]]);
    assert!(!s.is_touched());
    assert_eq!(s.get::<u32>("n").await.unwrap(), None);
    assert!(s.is_new().await.unwrap());
    // `start` and `start_bytes` read the same header alike.
    assert_eq!(f.manager.start([cookie.as_str()]).get::<u32>("n").await.unwrap(), Some(7));
}

#[tokio::test]
async fn read_only_requests_set_no_cookie_and_cost_one_load() {
    let f = fixture(config());
    // New session, read only: no id issued, nothing stored.
    let s = f.manager.start(std::iter::empty());
    assert_eq!(s.get::<u32>("n").await.unwrap(), None);
    assert!(s.is_new().await.unwrap());
    assert!(f.manager.finish(&s).await.unwrap().is_empty());
    assert_eq!(f.store.counts.total(), 0, "a new read-only session needs no store call at all");

    let s = f.manager.start(std::iter::empty());
    s.insert("n", &7u32).await.unwrap();
    let cookies = f.manager.finish(&s).await.unwrap();
    assert_eq!(cookies.len(), 1);
    let cookie = pair(&cookies[0]);

    let loads = f.store.counts.loads();
    let writes = f.store.counts.writes();
    let s = f.manager.start([cookie.as_str()]);
    assert_eq!(s.get::<u32>("n").await.unwrap(), Some(7));
    assert_eq!(s.get::<u32>("n").await.unwrap(), Some(7));
    assert!(!s.is_new().await.unwrap());
    assert!(f.manager.finish(&s).await.unwrap().is_empty(), "read-only request got a Set-Cookie");
    assert_eq!(f.store.counts.loads(), loads + 1, "exactly one load");
    assert_eq!(f.store.counts.writes(), writes, "no write");
}

#[tokio::test]
async fn equal_value_does_not_dirty_and_a_change_is_one_write() {
    let f = fixture(config());
    let s = f.manager.start(std::iter::empty());
    s.insert("n", &1).await.unwrap();
    let cookie = pair(&f.manager.finish(&s).await.unwrap()[0]);

    let writes = f.store.counts.writes();
    let s = f.manager.start([cookie.as_str()]);
    s.insert("n", &1).await.unwrap();
    assert!(f.manager.finish(&s).await.unwrap().is_empty());
    assert_eq!(f.store.counts.writes(), writes, "inserting an equal value wrote");

    let s = f.manager.start([cookie.as_str()]);
    s.insert("n", &2).await.unwrap();
    assert!(f.manager.finish(&s).await.unwrap().is_empty(), "same id: no new cookie");
    assert_eq!(f.store.counts.apply.load(Ordering::SeqCst), 1);
    assert_eq!(f.store.counts.writes(), writes + 1, "one write per modified request");
    let s = f.manager.start([cookie.as_str()]);
    assert_eq!(s.get::<i32>("n").await.unwrap(), Some(2));
}

#[tokio::test]
async fn typed_access_keys_remove_clear() {
    #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
    struct User {
        name: String,
        roles: Vec<String>,
    }
    let f = fixture(config());
    let s = f.manager.start(std::iter::empty());
    let ada = User { name: "ada".into(), roles: vec!["admin".into()] };
    s.insert("user", &ada).await.unwrap();
    s.insert("b", "text").await.unwrap();
    s.insert("a", &[1, 2, 3]).await.unwrap();
    assert_eq!(s.keys().await.unwrap(), vec!["a", "b", "user"]);
    assert!(s.contains_key("b").await.unwrap());
    assert_eq!(s.get::<User>("user").await.unwrap(), Some(ada));
    assert!(s.get::<u64>("b").await.is_err(), "wrong type is an error, not a panic");
    assert!(s.remove("b").await.unwrap());
    assert!(!s.remove("b").await.unwrap());
    assert!(s.insert("_beaker.flash", &1).await.is_err(), "reserved keys are refused");
    let cookie = pair(&f.manager.finish(&s).await.unwrap()[0]);

    let s = f.manager.start([cookie.as_str()]);
    assert_eq!(s.keys().await.unwrap(), vec!["a", "user"]);
    s.clear().await.unwrap();
    s.insert("after", &true).await.unwrap();
    f.manager.finish(&s).await.unwrap();
    let s = f.manager.start([cookie.as_str()]);
    assert_eq!(s.keys().await.unwrap(), vec!["after"]);
}

#[tokio::test]
async fn regenerate_keeps_data_and_kills_the_old_id() {
    let f = fixture(config());
    let s = f.manager.start(std::iter::empty());
    s.insert("cart", &vec!["tea"]).await.unwrap();
    let old = pair(&f.manager.finish(&s).await.unwrap()[0]);

    let s = f.manager.start([old.as_str()]);
    let old_id = s.id().await.unwrap().unwrap();
    s.insert("user", "ada").await.unwrap();
    s.regenerate_id().await.unwrap();
    let cookies = f.manager.finish(&s).await.unwrap();
    assert_eq!(cookies.len(), 1);
    let new = pair(&cookies[0]);
    assert_ne!(new, old);
    assert_ne!(s.id().await.unwrap().unwrap(), old_id);

    let s = f.manager.start([new.as_str()]);
    assert_eq!(s.get::<Vec<String>>("cart").await.unwrap(), Some(vec!["tea".to_string()]));
    assert_eq!(s.get::<String>("user").await.unwrap().as_deref(), Some("ada"));

    let s = f.manager.start([old.as_str()]);
    assert!(s.is_new().await.unwrap(), "the old id still works after regeneration");
    assert_eq!(s.get::<String>("user").await.unwrap(), None);
}

#[tokio::test]
async fn regenerate_without_changes_still_rotates() {
    let f = fixture(config());
    let s = f.manager.start(std::iter::empty());
    s.insert("user", "ada").await.unwrap();
    let old = pair(&f.manager.finish(&s).await.unwrap()[0]);
    let s = f.manager.start([old.as_str()]);
    s.regenerate_id().await.unwrap();
    let new = pair(&f.manager.finish(&s).await.unwrap()[0]);
    assert_ne!(old, new);
    assert!(f.manager.start([old.as_str()]).is_new().await.unwrap());
    assert!(!f.manager.start([new.as_str()]).is_new().await.unwrap());
}

#[tokio::test]
async fn invalidate_deletes_and_sends_a_matching_removal_cookie() {
    let cfg = config().with_domain("example.com").with_path("/app").with_secure(true);
    let f = fixture(cfg);
    let s = f.manager.start(std::iter::empty());
    s.insert("user", "ada").await.unwrap();
    let cookie = pair(&f.manager.finish(&s).await.unwrap()[0]);

    let s = f.manager.start([cookie.as_str()]);
    s.invalidate().await.unwrap();
    let out = f.manager.finish(&s).await.unwrap();
    assert_eq!(out.len(), 1);
    assert!(out[0].is_removal());
    let text = out[0].as_str();
    for attr in
        ["beaker.session.id=;", "Path=/app", "Domain=example.com", "Secure", "HttpOnly", "SameSite=Lax", "Max-Age=0"]
    {
        assert!(text.contains(attr), "{text} lacks {attr}");
    }
    let s = f.manager.start([cookie.as_str()]);
    assert!(s.is_new().await.unwrap(), "invalidated session still loads");
}

#[tokio::test]
async fn writing_after_invalidate_starts_a_new_session() {
    let f = fixture(config());
    let s = f.manager.start(std::iter::empty());
    s.insert("user", "ada").await.unwrap();
    let old = pair(&f.manager.finish(&s).await.unwrap()[0]);
    let s = f.manager.start([old.as_str()]);
    s.invalidate().await.unwrap();
    s.flash("bye").await.unwrap();
    let out = f.manager.finish(&s).await.unwrap();
    assert_eq!(out.len(), 1);
    assert!(!out[0].is_removal());
    let new = pair(&out[0]);
    assert_ne!(new, old);
    let s = f.manager.start([new.as_str()]);
    assert_eq!(s.get::<String>("user").await.unwrap(), None);
    assert_eq!(s.take_flashes().await.unwrap(), vec!["bye"]);
    assert!(f.manager.start([old.as_str()]).is_new().await.unwrap());
}

#[tokio::test]
async fn flash_messages_are_read_once() {
    let f = fixture(config());
    let s = f.manager.start(std::iter::empty());
    s.flash("one").await.unwrap();
    s.flash("two").await.unwrap();
    let cookie = pair(&f.manager.finish(&s).await.unwrap()[0]);
    assert_eq!(
        f.manager.start([cookie.as_str()]).keys().await.unwrap(),
        Vec::<String>::new(),
        "flash is not a user key"
    );
    let s = f.manager.start([cookie.as_str()]);
    assert_eq!(s.take_flashes().await.unwrap(), vec!["one", "two"]);
    f.manager.finish(&s).await.unwrap();
    let s = f.manager.start([cookie.as_str()]);
    assert!(s.take_flashes().await.unwrap().is_empty());
}

#[tokio::test]
async fn forged_malformed_tampered_and_unknown_cookies_give_a_fresh_session() {
    let f = fixture(config());
    let s = f.manager.start(std::iter::empty());
    s.insert("user", "ada").await.unwrap();
    let good = value(&f.manager.finish(&s).await.unwrap()[0]);
    let unsigned_real_id = good.split('.').next().unwrap().to_owned();
    let mut tampered = good.clone().into_bytes();
    tampered[3] = if tampered[3] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    let other_secret_mgr = fixture(SessionConfig::new().with_secret("some other secret, long enough").unwrap()).manager;
    let s = other_secret_mgr.start(std::iter::empty());
    s.insert("user", "eve").await.unwrap();
    let foreign = value(&other_secret_mgr.finish(&s).await.unwrap()[0]);
    let unknown = {
        // Correctly shaped and signed by us, but never issued: needs the secret, so build it
        // via a second manager with the same secret and a different store.
        let m = fixture(config()).manager;
        let s = m.start(std::iter::empty());
        s.insert("x", &1).await.unwrap();
        value(&m.finish(&s).await.unwrap()[0])
    };
    let huge = "A".repeat(100_000);
    for bad in [
        unsigned_real_id.as_str(),
        tampered.as_str(),
        foreign.as_str(),
        unknown.as_str(),
        "",
        "garbage",
        "....",
        "\u{7f}\u{0}",
        huge.as_str(),
        "%00%ff",
    ] {
        let header = format!("beaker.session.id={bad}");
        let s = f.manager.start([header.as_str()]);
        assert!(s.is_new().await.unwrap(), "{bad:.40} was adopted");
        assert_eq!(s.get::<String>("user").await.unwrap(), None);
        s.insert("k", &1).await.unwrap();
        let out = f.manager.finish(&s).await.unwrap();
        assert_eq!(out.len(), 1);
        let issued = value(&out[0]);
        assert_ne!(issued, bad, "the server adopted an id it did not issue");
        assert_ne!(issued.split('.').next(), bad.split('.').next());
    }
}

#[tokio::test]
async fn unrelated_and_illegal_cookies_beside_ours_change_nothing() {
    let f = fixture(config());
    let s = f.manager.start(std::iter::empty());
    s.insert("n", &5).await.unwrap();
    let cookie = pair(&f.manager.finish(&s).await.unwrap()[0]);
    let header = format!("a=b; ;;= ; \u{1}bad; {cookie}; theme=dark");
    let s = f.manager.start([header.as_str(), "x=\"unterminated"]);
    assert_eq!(s.get::<i32>("n").await.unwrap(), Some(5));
    assert!(f.manager.finish(&s).await.unwrap().is_empty());
}

#[tokio::test]
async fn idle_timeout_and_touch_interval() {
    let f = fixture(config().with_timeout(Duration::from_secs(100)));
    let s = f.manager.start(std::iter::empty());
    s.insert("n", &1).await.unwrap();
    let cookie = pair(&f.manager.finish(&s).await.unwrap()[0]);

    // Within the touch interval (timeout/10 = 10 s): a read costs no write.
    f.clock.advance(Duration::from_secs(5));
    let writes = f.store.counts.writes();
    let s = f.manager.start([cookie.as_str()]);
    assert_eq!(s.get::<i32>("n").await.unwrap(), Some(1));
    assert!(f.manager.finish(&s).await.unwrap().is_empty());
    assert_eq!(f.store.counts.writes(), writes);

    // Past the touch interval: one touch, which slides the expiry.
    f.clock.advance(Duration::from_secs(60));
    let s = f.manager.start([cookie.as_str()]);
    assert_eq!(s.get::<i32>("n").await.unwrap(), Some(1));
    assert!(f.manager.finish(&s).await.unwrap().is_empty(), "browser-session cookie: the touch needs no cookie");
    assert_eq!(f.store.counts.touch.load(Ordering::SeqCst), 1);

    // 90 s after the touch (155 s after creation) the session is still alive...
    f.clock.advance(Duration::from_secs(90));
    let s = f.manager.start([cookie.as_str()]);
    assert_eq!(s.get::<i32>("n").await.unwrap(), Some(1));
    f.manager.finish(&s).await.unwrap();
    // ...and dies after 100 idle seconds.
    f.clock.advance(Duration::from_secs(101));
    let s = f.manager.start([cookie.as_str()]);
    assert!(s.is_new().await.unwrap(), "session outlived its idle timeout");
    s.insert("n", &2).await.unwrap();
    let out = f.manager.finish(&s).await.unwrap();
    assert_ne!(pair(&out[0]), cookie, "an expired id was reused");
}

#[tokio::test]
async fn absolute_cap_ends_an_active_session() {
    let f = fixture(
        config()
            .with_timeout(Duration::from_secs(100))
            .with_absolute_timeout(Duration::from_secs(250))
            .with_touch_interval(Duration::from_secs(1)),
    );
    let s = f.manager.start(std::iter::empty());
    s.insert("n", &1).await.unwrap();
    let cookie = pair(&f.manager.finish(&s).await.unwrap()[0]);
    // Active every 60 s: the idle timeout never fires...
    for _ in 0..4 {
        f.clock.advance(Duration::from_secs(60));
        let s = f.manager.start([cookie.as_str()]);
        assert_eq!(s.get::<i32>("n").await.unwrap(), Some(1));
        f.manager.finish(&s).await.unwrap();
    }
    // ...but the absolute cap (250 s) does.
    f.clock.advance(Duration::from_secs(11));
    let s = f.manager.start([cookie.as_str()]);
    assert!(s.is_new().await.unwrap(), "session outlived its absolute lifetime");
}

#[tokio::test]
async fn key_rotation_old_cookies_load_and_reissues_use_the_new_secret() {
    let clock = beaker_core::ManualClock::new();
    let store = CountingStore::new(&clock);
    let old_mgr = beaker_core::SessionManager::builder(config()).store(store.clone()).build().unwrap();
    let s = old_mgr.start(std::iter::empty());
    s.insert("n", &1).await.unwrap();
    let old_cookie = pair(&old_mgr.finish(&s).await.unwrap()[0]);

    let rotated =
        SessionConfig::new().with_secret("the new secret, at least 16 bytes").unwrap().with_secret(SECRET).unwrap();
    let rotated = rotated.with_cookie_expires(CookieExpires::BrowserSession);
    let new_mgr = beaker_core::SessionManager::builder(rotated).store(store.clone()).build().unwrap();
    let s = new_mgr.start([old_cookie.as_str()]);
    assert_eq!(s.get::<i32>("n").await.unwrap(), Some(1), "a cookie signed with the old secret must still load");
    s.insert("n", &2).await.unwrap();
    let out = new_mgr.finish(&s).await.unwrap();
    assert_eq!(out.len(), 1, "a write re-issues a cookie signed with the new secret");
    let reissued = pair(&out[0]);
    assert_ne!(reissued, old_cookie);
    // Same id, new signature: the old manager (old secret only) cannot verify it.
    assert_eq!(reissued.split('.').next(), old_cookie.split('.').next());
    assert!(old_mgr.start([reissued.as_str()]).is_new().await.unwrap());
    assert_eq!(new_mgr.start([reissued.as_str()]).get::<i32>("n").await.unwrap(), Some(2));
    // The old cookie again (the manager has seen it): still known as signed by the old
    // secret, so a read re-signs it with the new one, every time it comes back.
    for _ in 0..2 {
        let s = new_mgr.start([old_cookie.as_str()]);
        assert_eq!(s.get::<i32>("n").await.unwrap(), Some(2));
        let out = new_mgr.finish(&s).await.unwrap();
        assert_eq!(out.len(), 1, "a read with an old-secret cookie re-signs it");
        assert_eq!(pair(&out[0]), reissued);
    }
    // The new cookie, seen before too, needs nothing.
    let s = new_mgr.start([reissued.as_str()]);
    assert_eq!(s.get::<i32>("n").await.unwrap(), Some(2));
    assert!(new_mgr.finish(&s).await.unwrap().is_empty());
}

#[tokio::test]
async fn concurrent_requests_writing_different_keys_all_survive() {
    let f = fixture(config());
    let s = f.manager.start(std::iter::empty());
    s.insert("base", &0).await.unwrap();
    let cookie = pair(&f.manager.finish(&s).await.unwrap()[0]);
    let tasks: Vec<_> = (0..100)
        .map(|i| {
            let m = f.manager.clone();
            let cookie = cookie.clone();
            tokio::spawn(async move {
                let s = m.start([cookie.as_str()]);
                s.insert(&format!("k{i}"), &i).await.unwrap();
                m.finish(&s).await.unwrap()
            })
        })
        .collect();
    for t in tasks {
        assert!(t.await.unwrap().is_empty(), "no new id for an existing session");
    }
    let s = f.manager.start([cookie.as_str()]);
    let keys = s.keys().await.unwrap();
    assert_eq!(keys.len(), 101, "lost updates: {keys:?}");
    for i in 0..100 {
        assert_eq!(s.get::<i32>(&format!("k{i}")).await.unwrap(), Some(i));
    }
}

#[tokio::test]
async fn store_outage_fails_fast_and_finish_reports_it_even_if_swallowed() {
    let f = fixture(config());
    let s = f.manager.start(std::iter::empty());
    s.insert("n", &1).await.unwrap();
    let cookie = pair(&f.manager.finish(&s).await.unwrap()[0]);
    f.store.down.store(true, Ordering::SeqCst);
    let s = f.manager.start([cookie.as_str()]);
    let err = s.get::<i32>("n").await.unwrap_err();
    assert!(err.is_unavailable());
    assert_eq!(err.status_code(), 503);
    assert!(s.is_touched(), "adapters must still finish a session whose load failed");
    let err = f.manager.finish(&s).await.unwrap_err();
    assert_eq!(err.status_code(), 503, "finish must report a swallowed load failure");
    // A write to a new session during the outage fails too, never silently.
    let s = f.manager.start(std::iter::empty());
    s.insert("n", &1).await.unwrap();
    assert_eq!(f.manager.finish(&s).await.unwrap_err().status_code(), 503);
    // Service resumes by itself.
    f.store.down.store(false, Ordering::SeqCst);
    let s = f.manager.start([cookie.as_str()]);
    assert_eq!(s.get::<i32>("n").await.unwrap(), Some(1));
}

#[tokio::test]
async fn continue_policy_gives_an_empty_session_on_load_failure() {
    let f = fixture(config().with_on_store_error(OnStoreError::Continue));
    let s = f.manager.start(std::iter::empty());
    s.insert("n", &1).await.unwrap();
    let cookie = pair(&f.manager.finish(&s).await.unwrap()[0]);
    f.store.down.store(true, Ordering::SeqCst);
    let s = f.manager.start([cookie.as_str()]);
    assert_eq!(s.get::<i32>("n").await.unwrap(), None);
    assert!(f.manager.finish(&s).await.unwrap().is_empty());
}

#[tokio::test]
async fn cookie_expiry_policies_shape_the_cookie() {
    let f = fixture(config().with_cookie_expires(CookieExpires::After(Duration::from_secs(600))));
    let s = f.manager.start(std::iter::empty());
    s.insert("n", &1).await.unwrap();
    let out = f.manager.finish(&s).await.unwrap();
    assert!(out[0].as_str().contains("Max-Age=600"), "{}", out[0]);
    let f = fixture(config());
    let s = f.manager.start(std::iter::empty());
    s.insert("n", &1).await.unwrap();
    let out = f.manager.finish(&s).await.unwrap();
    assert!(!out[0].as_str().contains("Max-Age") && !out[0].as_str().contains("Expires"), "{}", out[0]);
}

#[tokio::test]
async fn ids_are_never_logged_in_debug_output() {
    let f = fixture(config());
    let s = f.manager.start(std::iter::empty());
    s.insert("secret-data", "hunter2").await.unwrap();
    let out = f.manager.finish(&s).await.unwrap();
    let id: SessionId = s.id().await.unwrap().unwrap();
    let dbg = format!("{s:?} {:?} {out:?} {id:?}", f.manager);
    assert!(!dbg.contains(id.expose()) && !dbg.contains("hunter2") && !dbg.contains(&value(&out[0])), "{dbg}");
}

use beaker_core::SessionConfig;
