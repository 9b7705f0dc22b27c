//! With no timeout configured, sessions still end: idle after 30 minutes, however active
//! after 8 hours, on a server store and in cookie-only sessions alike.

use std::sync::Arc;
use std::time::Duration;

use beaker_core::{CookieStore, ManualClock, SessionConfig, SessionManager};

const SECRET: &str = "a test secret of at least sixteen bytes";

fn managers() -> Vec<(&'static str, SessionManager, ManualClock)> {
    let config = SessionConfig::new().with_secret(SECRET).unwrap();
    let (c1, c2) = (ManualClock::new(), ManualClock::new());
    let memory = SessionManager::builder(config.clone()).clock(Arc::new(c1.clone())).build().unwrap();
    let cookie = SessionManager::builder(config).cookie_store(CookieStore).clock(Arc::new(c2.clone())).build().unwrap();
    vec![("memory", memory, c1), ("cookie", cookie, c2)]
}

/// One request: reads `n`, writes `n + 1`; returns what it read and the cookie to send next.
async fn visit(m: &SessionManager, cookie: &str) -> (Option<u64>, String) {
    let s = m.start([cookie]);
    let n: Option<u64> = s.get("n").await.unwrap();
    s.insert("n", &(n.unwrap_or(0) + 1)).await.unwrap();
    let set = m.finish(&s).await.unwrap();
    let next = set.first().map_or(cookie.to_owned(), |c| c.as_str().split(';').next().unwrap().to_owned());
    (n, next)
}

#[tokio::test]
async fn an_idle_session_ends_after_the_default_timeout() {
    for (store, m, clock) in managers() {
        let (_, cookie) = visit(&m, "").await;
        clock.advance(SessionConfig::DEFAULT_TIMEOUT - Duration::from_secs(60));
        let (n, cookie) = visit(&m, &cookie).await;
        assert_eq!(n, Some(1), "{store}: alive within the idle timeout");
        clock.advance(SessionConfig::DEFAULT_TIMEOUT + Duration::from_secs(1));
        assert_eq!(visit(&m, &cookie).await.0, None, "{store}: idle past the default timeout");
    }
}

#[tokio::test]
async fn an_active_session_ends_after_the_default_absolute_timeout() {
    for (store, m, clock) in managers() {
        let (_, mut cookie) = visit(&m, "").await;
        let step = Duration::from_secs(10 * 60);
        let mut elapsed = Duration::ZERO;
        while elapsed + step < SessionConfig::DEFAULT_ABSOLUTE_TIMEOUT {
            clock.advance(step);
            elapsed += step;
            let (n, next) = visit(&m, &cookie).await;
            assert!(n.is_some(), "{store}: active session ended early, after {elapsed:?}");
            cookie = next;
        }
        clock.advance(step);
        assert_eq!(visit(&m, &cookie).await.0, None, "{store}: active past the absolute timeout");
    }
}
