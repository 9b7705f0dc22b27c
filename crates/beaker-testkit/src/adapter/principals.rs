//! Sessions per user, black-box: `GET /sessions`, `POST /sessions/{HANDLE}/end` and
//! `POST /logout/everywhere` of the demo contract. Not part of [`ContractSuite::run`]:
//! they need a store with a principal index, and the race runs many trials.

use std::time::Duration;

use futures_util::future::join_all;
use reqwest::Method;

use super::http::{Answer, Body, Cx};
use super::races::first_lines;
use super::scenarios::unique;
use super::{ContractSuite, RACE_READERS};

/// One line of `GET /sessions`: `HANDLE CREATED LAST_USED[ current]`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Line {
    handle: String,
    created: u64,
    last_used: u64,
    current: bool,
}

fn lines(cx: Cx, answer: &Answer) -> Vec<Line> {
    answer.expect_status(cx, 200);
    answer
        .body
        .lines()
        .map(|line| {
            let parts: Vec<&str> = line.split(' ').collect();
            let number = |s: &str| s.parse::<u64>().unwrap_or_else(|_| cx.fail(format!("not a time in {line:?}")));
            match parts.as_slice() {
                [handle, created, last_used] | [handle, created, last_used, "current"] => Line {
                    handle: (*handle).to_owned(),
                    created: number(created),
                    last_used: number(last_used),
                    current: parts.len() == 4,
                },
                _ => cx.fail(format!("not a line of GET /sessions: {line:?}")),
            }
        })
        .collect()
}

impl ContractSuite {
    /// Three clients log in as the same user, a second apart: `GET /sessions` lists the
    /// three, newest first, the asker's own marked ` current`; handles are not the ids.
    /// Ending one by handle logs out exactly that client; another user gets 404 for it.
    /// `POST /logout/everywhere` ends the rest (`bye 2`, with a removal cookie) and
    /// leaves the other user alone. Without a login, `GET /sessions` answers 401, ending
    /// a handle 404, and logout everywhere ends nothing (`bye 0`).
    pub async fn sessions_per_user(&self) {
        let cx = Cx("sessions_per_user");
        let user = format!("u{}", unique());
        let mut anonymous = self.agent(cx);
        anonymous.get("/sessions").await.expect(cx, 401, "login required");
        anonymous.post_form("/sessions/AAAAAAAAAAAAAAAAAAAAAA/end", "").await.expect(cx, 404, "not found");
        anonymous.post_form("/logout/everywhere", "").await.expect(cx, 200, "bye 0");

        let mut clients = Vec::new();
        for i in 0..3 {
            if i > 0 {
                // CREATED is in seconds: a second apart, the order is observable.
                tokio::time::sleep(Duration::from_millis(1050)).await;
            }
            let mut a = self.agent(cx);
            a.post_form("/login", &format!("user={user}")).await.expect(cx, 200, &user);
            clients.push(a);
        }
        let mut other = self.agent(cx);
        let mallory = format!("m{}", unique());
        other.post_form("/login", &format!("user={mallory}")).await.expect(cx, 200, &mallory);

        // Each client sees the three sessions, with its own marked.
        let mut handles = Vec::new();
        for c in &mut clients {
            let listed = lines(cx, &c.get("/sessions").await);
            cx.ensure(listed.len() == 3, || format!("expected 3 sessions of {user}, got {listed:?}"));
            let current: Vec<&Line> = listed.iter().filter(|l| l.current).collect();
            cx.ensure(current.len() == 1, || format!("expected one current session: {listed:?}"));
            let cookie = c.value();
            cx.ensure(!cookie.contains(&current[0].handle), || "a handle is part of the session cookie".into());
            handles.push(current[0].handle.clone());
            cx.ensure(listed.windows(2).all(|w| w[0].created > w[1].created), || {
                format!("not newest first, one second apart: {listed:?}")
            });
            cx.ensure(listed.iter().all(|l| l.last_used >= l.created), || format!("used before created: {listed:?}"));
        }
        cx.ensure(handles[0] != handles[1] && handles[1] != handles[2] && handles[0] != handles[2], || {
            format!("each client must have a handle of its own: {handles:?}")
        });
        let listed = lines(cx, &clients[0].get("/sessions").await);
        let newest_first: Vec<&str> = listed.iter().map(|l| l.handle.as_str()).collect();
        let expected: Vec<&str> = handles.iter().rev().map(String::as_str).collect();
        cx.ensure(newest_first == expected, || format!("expected {expected:?} (newest first), got {newest_first:?}"));

        // Another user cannot end it, nor can a handle that is no handle.
        other.post_form(&format!("/sessions/{}/end", handles[1]), "").await.expect(cx, 404, "not found");
        clients[0].post_form("/sessions/not-a-handle/end", "").await.expect(cx, 404, "not found");
        clients[1].get("/whoami").await.expect(cx, 200, &user);
        // The owner can: exactly that client is logged out.
        clients[0].post_form(&format!("/sessions/{}/end", handles[1]), "").await.expect(cx, 200, "ok");
        clients[0].post_form(&format!("/sessions/{}/end", handles[1]), "").await.expect(cx, 404, "not found");
        clients[1].get("/whoami").await.expect(cx, 200, "anonymous");
        clients[1].get("/sessions").await.expect(cx, 401, "login required");
        clients[0].get("/whoami").await.expect(cx, 200, &user);
        clients[2].get("/whoami").await.expect(cx, 200, &user);
        let left = lines(cx, &clients[2].get("/sessions").await);
        cx.ensure(left.len() == 2 && left.iter().all(|l| l.handle != handles[1]), || {
            format!("after ending one of three: {left:?}")
        });

        // Everywhere: the other two, this one included, with a removal cookie.
        let bye = clients[2].post_form("/logout/everywhere", "").await;
        bye.expect(cx, 200, "bye 2");
        cx.ensure(bye.cookie(cx, &self.cookie_name).is_removal(), || format!("no removal cookie: {bye}"));
        for c in &mut clients {
            c.get("/whoami").await.expect(cx, 200, "anonymous");
        }
        other.get("/whoami").await.expect(cx, 200, &mallory);
        let theirs = lines(cx, &other.get("/sessions").await);
        cx.ensure(theirs.len() == 1 && theirs[0].current, || format!("the other user's sessions: {theirs:?}"));
        // A new login of the user finds none of the ended sessions.
        let mut again = self.agent(cx);
        again.post_form("/login", &format!("user={user}")).await.expect(cx, 200, &user);
        let fresh = lines(cx, &again.get("/sessions").await);
        cx.ensure(fresh.len() == 1 && fresh[0].current, || format!("ended sessions listed again: {fresh:?}"));
    }

    /// On a store that keeps no index of a user's sessions (cookie-only sessions): the
    /// routes answer 501 with a one-line body, and logging in still works.
    pub async fn sessions_per_user_unsupported(&self) {
        let cx = Cx("sessions_per_user_unsupported");
        let user = format!("u{}", unique());
        let mut a = self.agent(cx);
        a.post_form("/login", &format!("user={user}")).await.expect(cx, 200, &user);
        for answer in [a.get("/sessions").await, a.post_form("/logout/everywhere", "").await] {
            answer.expect_status(cx, 501);
            cx.ensure(!answer.body.is_empty() && !answer.body.contains('\n'), || format!("not one line: {answer}"));
        }
        a.get("/whoami").await.expect(cx, 200, &user);
    }

    /// Logout everywhere racing in-flight requests (`trials` times): three clients of one
    /// user count to 2, then [`RACE_READERS`] `GET /counter` spread over their cookies run
    /// in parallel with one `POST /logout/everywhere`. It answers `bye 3`; afterwards none
    /// of the three cookies is logged in or gets a cookie, no cookie set during the race
    /// carries an ended session, and a new login of the user lists only itself.
    pub async fn logout_everywhere_race(&self, trials: usize) {
        let cx = Cx("logout_everywhere_race");
        let mut revived = Vec::new();
        for trial in 0..trials {
            let user = format!("u{}", unique());
            let mut cookies = Vec::new();
            for _ in 0..3 {
                let mut a = self.agent(cx);
                a.post_form("/login", &format!("user={user}")).await.expect(cx, 200, &user);
                a.get("/counter").await.expect(cx, 200, "1");
                a.get("/counter").await.expect(cx, 200, "2");
                cookies.push(a.cookie());
            }
            let middle = RACE_READERS / 2;
            let sends = (0..=RACE_READERS).map(|i| {
                let cookie = cookies[i % 3].as_str();
                if i == middle {
                    self.send(cx, Method::POST, "/logout/everywhere", Some(cookie), Some(Body::Form(String::new())))
                } else {
                    self.send(cx, Method::GET, "/counter", Some(cookie), None)
                }
            });
            let mut answers = join_all(sends).await;
            let bye = answers.remove(middle);
            bye.expect(cx, 200, "bye 3");
            for answer in &answers {
                answer.expect_status(cx, 200);
            }
            answers.push(bye);
            for live in self.live_cookies(&answers) {
                let pair = live.pair();
                let who = self.get(cx, "/whoami", Some(&pair)).await;
                let read = self.get(cx, "/read", Some(&pair)).await;
                if who.body != "anonymous" || !matches!(read.body.as_str(), "none" | "1") {
                    revived.push(format!("trial {trial}: a cookie set during the race: {who}; {read}"));
                }
            }
            for cookie in &cookies {
                let who = self.get(cx, "/whoami", Some(cookie)).await;
                if who.body != "anonymous" || !who.set_cookies.is_empty() {
                    revived.push(format!("trial {trial}: an ended cookie: {who}"));
                }
            }
            let mut again = self.agent(cx);
            again.post_form("/login", &format!("user={user}")).await.expect(cx, 200, &user);
            let listed = lines(cx, &again.get("/sessions").await);
            if listed.len() != 1 {
                revived.push(format!("trial {trial}: after logout everywhere and a new login: {listed:?}"));
            }
        }
        cx.ensure(revived.is_empty(), || {
            format!(
                "{} findings in {trials} logout-everywhere races (an ended session came back); the first ones:\n{}",
                revived.len(),
                first_lines(&revived)
            )
        });
    }
}
