//! The caching directives `SessionManager::finish` hands adapters, through the public API:
//! none for an untouched session, `Vary: Cookie` for a read, both for a response that sets
//! or removes the cookie, on server-side and cookie-only sessions; none under
//! `cache_headers = off`.

mod common;

use beaker_core::adapter::LazySession;
use beaker_core::{CacheHeaders, CookieStore, SessionConfig, SessionManager};
use common::{config, pair};

const PRIVATE: &[u8] = b"private, no-cache=\"Set-Cookie, Set-Cookie2\"";

fn managers(config: SessionConfig) -> Vec<(&'static str, SessionManager)> {
    vec![
        ("memory", SessionManager::builder(config.clone()).build().unwrap()),
        ("cookie", SessionManager::builder(config).cookie_store(CookieStore).build().unwrap()),
    ]
}

#[tokio::test]
async fn each_step_of_a_session_asks_for_its_headers() {
    for (name, m) in managers(config()) {
        // Untouched, with or without a cookie: nothing.
        let untouched = m.start(["beaker.session.id=whatever"]);
        assert!(m.finish(&untouched).await.unwrap().cache_directives().is_empty(), "{name}");
        assert!(LazySession::new(m.clone()).finish().await.unwrap().cache_directives().is_empty(), "{name}");

        // A read without a session: varies on Cookie, sets nothing.
        let read = m.start(None::<&str>);
        assert_eq!(read.get::<u64>("n").await.unwrap(), None);
        let done = m.finish(&read).await.unwrap();
        assert!(done.is_empty(), "{name}");
        let cache = done.cache_directives();
        assert!(cache.vary_cookie() && !cache.keep_out_of_shared_caches(), "{name}");
        assert_eq!(cache.merge_cache_control(None), None, "{name}");

        // The first write: the cookie, Vary and the private directive.
        let write = m.start(None::<&str>);
        write.insert("n", &1u64).await.unwrap();
        let done = m.finish(&write).await.unwrap();
        assert_eq!(done.len(), 1, "{name}");
        let cache = done.cache_directives();
        assert_eq!(cache.merge_vary(None).as_deref(), Some(b"Cookie".as_slice()), "{name}");
        assert_eq!(cache.merge_cache_control(None).as_deref(), Some(PRIVATE), "{name}");
        let cookie = pair(&done[0]);

        // A read with the cookie: Vary only.
        let again = m.start([cookie.as_str()]);
        assert_eq!(again.get::<u64>("n").await.unwrap(), Some(1));
        let done = m.finish(&again).await.unwrap();
        assert!(done.is_empty(), "{name}");
        let cache = done.cache_directives();
        assert!(cache.vary_cookie() && !cache.keep_out_of_shared_caches(), "{name}");

        // Logout: the removal cookie is kept out of shared caches too.
        let out = m.start([cookie.as_str()]);
        out.invalidate().await.unwrap();
        let done = m.finish(&out).await.unwrap();
        assert!(done.len() == 1 && done[0].is_removal(), "{name}: {done:?}");
        assert!(done.cache_directives().keep_out_of_shared_caches(), "{name}");
        assert_eq!(
            done.cache_directives().merge_cache_control([b"public, max-age=60".as_slice()]).as_deref(),
            Some(b"public, max-age=60, no-cache=\"Set-Cookie, Set-Cookie2\"".as_slice()),
            "{name}"
        );
    }
}

#[tokio::test]
async fn off_asks_for_nothing() {
    for (name, m) in managers(config().with_cache_headers(CacheHeaders::Off)) {
        let write = m.start(None::<&str>);
        write.insert("n", &1u64).await.unwrap();
        let done = m.finish(&write).await.unwrap();
        assert_eq!(done.len(), 1, "{name}: the cookie is still set");
        assert!(done.cache_directives().is_empty(), "{name}");
        assert_eq!(done.cache_directives().merge_vary(None), None, "{name}");
    }
}
