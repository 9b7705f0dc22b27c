//! Races of whole requests against a logout or a login, through a [`SessionManager`] on a
//! real store: the ended-session rule under real concurrency.
//!
//! ```
//! use beaker_core::{MemoryStore, SessionConfig, SessionManager};
//! use beaker_testkit::lifecycle::LifecycleRaceSuite;
//!
//! # #[tokio::main(flavor = "multi_thread", worker_threads = 4)] async fn main() {
//! let config = SessionConfig::new().with_secret("a secret of at least 16 bytes").unwrap();
//! let manager = SessionManager::builder(config).store(MemoryStore::new()).build().unwrap();
//! LifecycleRaceSuite::new(manager).with_trials(3).run().await;
//! # }
//! ```
//!
//! Run it on a multi-threaded runtime: every request of a trial is a task of its own. The
//! manager must use the default `cookie_expires` (a browser-session cookie), so that an
//! unchanged id is never re-sent and every `Set-Cookie` a request gets means a new session,
//! and a non-zero `retired_window` (the default).

use std::time::Duration;

use beaker_core::{SessionManager, SetCookie};

use crate::fixtures::cookie_pair;

/// The logout and login races.
#[derive(Debug)]
pub struct LifecycleRaceSuite {
    manager: SessionManager,
    trials: usize,
    parallel: usize,
}

/// What one racing request got back.
struct Reply {
    cookies: Vec<SetCookie>,
    dropped: bool,
}

impl LifecycleRaceSuite {
    /// 25 trials of 11 parallel requests against one logout or login.
    pub fn new(manager: SessionManager) -> Self {
        LifecycleRaceSuite { manager, trials: 25, parallel: 11 }
    }

    /// Sets the number of trials of each race.
    pub fn with_trials(mut self, trials: usize) -> Self {
        self.trials = trials;
        self
    }

    /// Runs both races; panics naming the rule that broke.
    pub async fn run(self) {
        let mut dropped = 0;
        for _ in 0..self.trials {
            dropped += self.logout_races_in_flight_writes().await;
        }
        assert!(dropped > 0, "no write ever raced a logout: the race is not exercised");
        for _ in 0..self.trials {
            self.login_races_the_same_browsers_requests().await;
        }
    }

    /// When the logout or login starts: amid the counters' loads and writes.
    fn midpoint(&self) -> Duration {
        Duration::from_millis(self.parallel as u64 / 2)
    }

    async fn session_with(&self, key: &str, value: &str) -> String {
        let s = self.manager.start(std::iter::empty());
        s.insert(key, value).await.expect("insert");
        let out = self.manager.finish(&s).await.expect("finish");
        cookie_pair(out.first().expect("a new session's cookie").as_str())
    }

    /// `parallel` counter requests on `cookie`, spread around the moment the other
    /// request (started by the caller) runs: each loads, waits, increments and finishes.
    fn counters(&self, cookie: &str) -> Vec<tokio::task::JoinHandle<Reply>> {
        (0..self.parallel)
            .map(|i| {
                let (m, cookie) = (self.manager.clone(), cookie.to_owned());
                tokio::spawn(async move {
                    // Whole milliseconds apart: tokio's timer has millisecond ticks, and
                    // finer steps would start the counters in a few bunches.
                    tokio::time::sleep(Duration::from_millis(i as u64)).await;
                    let s = m.start([cookie.as_str()]);
                    let n: u64 = s.get("n").await.expect("get").unwrap_or(0);
                    tokio::time::sleep(Duration::from_millis(1)).await;
                    s.insert("n", &(n + 1)).await.expect("insert");
                    let cookies = m.finish(&s).await.expect("finish").into_set_cookies();
                    Reply { cookies, dropped: s.changes_dropped() }
                })
            })
            .collect()
    }

    /// Whether `cookie` opens a session logged in as anyone.
    async fn logged_in(&self, cookie: &str) -> bool {
        let s = self.manager.start([cookie]);
        s.get::<String>("user").await.expect("get").is_some()
    }

    /// A logout while requests of the same session are in flight: afterwards no cookie
    /// any of them got, nor the old one, opens a logged-in session. Returns how many
    /// writes were dropped.
    async fn logout_races_in_flight_writes(&self) -> usize {
        let cookie = self.session_with("user", "ada").await;
        let counters = self.counters(&cookie);
        let logout = {
            let (m, cookie, mid) = (self.manager.clone(), cookie.clone(), self.midpoint());
            tokio::spawn(async move {
                tokio::time::sleep(mid).await;
                let s = m.start([cookie.as_str()]);
                s.invalidate().await.expect("invalidate");
                m.finish(&s).await.expect("finish logout")
            })
        };
        let mut dropped = 0;
        let mut given = Vec::new();
        for c in counters {
            let reply = c.await.expect("counter task");
            dropped += usize::from(reply.dropped);
            given.extend(reply.cookies.iter().filter(|c| !c.is_removal()).map(|c| cookie_pair(c.as_str())));
        }
        let out = logout.await.expect("logout task");
        assert!(out.iter().all(SetCookie::is_removal), "logout set a live cookie");
        for c in given.iter().chain([&cookie]) {
            assert!(!self.logged_in(c).await, "a request racing a logout revived the login");
        }
        dropped
    }

    /// A login (regeneration) while the same browser's requests still carry the old id:
    /// none of them gets a cookie (which would replace the new one in the browser), the
    /// new id holds the login, and the old one has ended.
    async fn login_races_the_same_browsers_requests(&self) {
        let anonymous = self.session_with("theme", "dark").await;
        let counters = self.counters(&anonymous);
        let login = {
            let (m, cookie, mid) = (self.manager.clone(), anonymous.clone(), self.midpoint());
            tokio::spawn(async move {
                tokio::time::sleep(mid).await;
                let s = m.start([cookie.as_str()]);
                s.insert("user", "ada").await.expect("insert");
                s.regenerate_id().await.expect("regenerate");
                let out = m.finish(&s).await.expect("finish login");
                (out, s.changes_dropped())
            })
        };
        for c in counters {
            let reply = c.await.expect("counter task");
            assert!(
                reply.cookies.is_empty(),
                "a request carrying the pre-login id got a cookie that would replace the login's"
            );
        }
        let (out, dropped) = login.await.expect("login task");
        assert!(!dropped, "the login itself was dropped");
        let new = cookie_pair(out.first().expect("the login's cookie").as_str());
        let s = self.manager.start([new.as_str()]);
        assert_eq!(s.get::<String>("user").await.expect("get").as_deref(), Some("ada"), "login lost");
        assert_eq!(s.get::<String>("theme").await.expect("get").as_deref(), Some("dark"), "data lost in the move");
        let old = self.manager.start([anonymous.as_str()]);
        assert!(old.has_ended().await.expect("has_ended"), "the pre-login id is not retired");
        assert!(!self.logged_in(&anonymous).await, "the pre-login id leads to the login");
    }
}
