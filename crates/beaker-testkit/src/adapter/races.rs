//! Races between one browser's requests: an ended session stays ended (`DESIGN.md` §2).
//! Not part of [`ContractSuite::run`]: each scenario runs many trials of parallel
//! requests, and needs a server-side store (a cookie-only session cannot be revoked).

use futures_util::future::join_all;
use reqwest::Method;

use super::http::{Answer, Body, Cx, SetCookie};
use super::scenarios::unique;
use super::ContractSuite;

/// Trials per race: enough for the losing interleavings to show up on every store.
pub const RACE_TRIALS: usize = 25;
/// Parallel `GET /counter` requests racing the logout or login of each trial.
pub const RACE_READERS: usize = 11;

impl ContractSuite {
    /// Logout racing in-flight writes (`trials` times): log in, count to 2, then send
    /// [`RACE_READERS`] `GET /counter` with the session's cookie in parallel with one
    /// `POST /logout`. Afterwards no cookie that came back in the race is logged in or
    /// carries the ended session's counter, and the logged-out cookie stays logged out:
    /// a request that loaded the session before the logout never writes it back.
    pub async fn logout_race(&self, trials: usize) {
        let cx = Cx("logout_race");
        let mut revived = Vec::new();
        let mut returned = 0;
        for trial in 0..trials {
            let user = format!("u{}", unique());
            let mut a = self.agent(cx);
            a.post_form("/login", &format!("user={user}")).await.expect(cx, 200, &user);
            a.get("/counter").await.expect(cx, 200, "1");
            a.get("/counter").await.expect(cx, 200, "2");
            let cookie = a.cookie();
            let answers = self.race(cx, &cookie, Method::POST, "/logout").await;
            let (bye, counters) = answers.split_last().unwrap_or_else(|| cx.fail("no answers"));
            bye.expect(cx, 200, "bye");
            for answer in counters {
                answer.expect_status(cx, 200);
            }
            for live in self.live_cookies(&answers) {
                returned += 1;
                let pair = live.pair();
                let who = self.get(cx, "/whoami", Some(&pair)).await;
                let read = self.get(cx, "/read", Some(&pair)).await;
                if who.body != "anonymous" || !matches!(read.body.as_str(), "none" | "1") {
                    revived.push(format!("trial {trial}: a cookie set during the race: {who}; {read}"));
                }
            }
            let who = self.get(cx, "/whoami", Some(&cookie)).await;
            if who.body != "anonymous" || !who.set_cookies.is_empty() {
                revived.push(format!("trial {trial}: the logged-out cookie: {who}"));
            }
        }
        cx.ensure(revived.is_empty(), || {
            format!(
                "{} cookies (of {returned} set during {trials} logout races, plus the {trials} logged-out ones) \
                 still carry the ended session; the first ones:\n{}",
                revived.len(),
                first_lines(&revived)
            )
        });
    }

    /// The same browser's parallel requests during a login (`trials` times): an anonymous
    /// session counts to 1, then [`RACE_READERS`] `GET /counter` with its cookie race one
    /// `POST /login`, which regenerates the id. None of the parallel requests sets a
    /// session cookie (a live one would replace the new id in the browser if it arrived
    /// last, a removal one would log the user out), the new cookie is logged in, and the
    /// retired id is dead.
    pub async fn login_race(&self, trials: usize) {
        let cx = Cx("login_race");
        let mut replaced = Vec::new();
        for trial in 0..trials {
            let user = format!("u{}", unique());
            let mut a = self.agent(cx);
            a.get("/counter").await.expect(cx, 200, "1");
            let cookie = a.cookie();
            let answers = self.race(cx, &cookie, Method::POST, &format!("/login?user={user}")).await;
            let (login, counters) = answers.split_last().unwrap_or_else(|| cx.fail("no answers"));
            login.expect(cx, 200, &user);
            let new = login.cookie(cx, &self.cookie_name).pair();
            for answer in counters {
                answer.expect_status(cx, 200);
                if answer.set_cookies.iter().any(|raw| SetCookie::parse(raw).name == self.cookie_name) {
                    replaced.push(format!("trial {trial}: {answer}"));
                }
            }
            let who = self.get(cx, "/whoami", Some(&new)).await;
            if who.body != user {
                replaced.push(format!("trial {trial}: the login's own cookie: {who}"));
            }
            let old = self.get(cx, "/whoami", Some(&cookie)).await;
            if old.body != "anonymous" || !old.set_cookies.is_empty() {
                replaced.push(format!("trial {trial}: the retired cookie: {old}"));
            }
        }
        cx.ensure(replaced.is_empty(), || {
            format!(
                "{} answers in {trials} login races set a session cookie beside the login's (or the login did not \
                 hold); the first ones:\n{}",
                replaced.len(),
                first_lines(&replaced)
            )
        });
    }

    /// [`RACE_READERS`] `GET /counter` and one `method path` (placed among them, so that
    /// readers start both before and after it), all with `cookie`, in parallel. The
    /// answers come back with the `method path` one last.
    async fn race(&self, cx: Cx, cookie: &str, method: Method, path: &str) -> Vec<Answer> {
        let middle = RACE_READERS / 2;
        let sends = (0..=RACE_READERS).map(|i| {
            let (method, path) = if i == middle { (method.clone(), path) } else { (Method::GET, "/counter") };
            let body = (method == Method::POST).then(|| Body::Form(String::new()));
            self.send(cx, method, path, Some(cookie), body)
        });
        let mut answers = join_all(sends).await;
        let target = answers.remove(middle);
        answers.push(target);
        answers
    }

    /// The session cookies (not removals) that `answers` set.
    pub(super) fn live_cookies(&self, answers: &[Answer]) -> Vec<SetCookie> {
        answers
            .iter()
            .flat_map(|a| a.set_cookies.iter().map(|raw| SetCookie::parse(raw)))
            .filter(|c| c.name == self.cookie_name && !c.is_removal())
            .collect()
    }
}

/// The first few findings, one per line.
pub(super) fn first_lines(findings: &[String]) -> String {
    findings.iter().take(8).cloned().collect::<Vec<_>>().join("\n")
}
