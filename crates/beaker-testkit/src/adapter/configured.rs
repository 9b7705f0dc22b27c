//! The scenarios that need a server configured (or restarted) for them; not part of
//! [`ContractSuite::run`].

use std::time::Duration;

use super::http::Cx;
use super::scenarios::unique;
use super::ContractSuite;

impl ContractSuite {
    /// For a server started with `BEAKER_SESSION_TIMEOUT=1` (not part of [`run`](Self::run)):
    /// a session used every 0.4 s outlives its timeout; left alone for 2.2 s it reads as
    /// fresh, and a write gets a new id.
    pub async fn idle_timeout(&self) {
        let cx = Cx("idle_timeout");
        let mut a = self.agent(cx);
        a.get("/counter").await.expect(cx, 200, "1");
        let first = a.value();
        for _ in 0..3 {
            tokio::time::sleep(Duration::from_millis(400)).await;
            a.get("/read").await.expect(cx, 200, "1");
        }
        let kept = a.cookie();
        tokio::time::sleep(Duration::from_millis(2200)).await;
        self.get(cx, "/read", Some(&kept)).await.expect(cx, 200, "none").expect_no_cookie(cx);
        let write = self.get(cx, "/counter", Some(&kept)).await;
        write.expect(cx, 200, "1");
        let fresh = write.cookie(cx, &self.cookie_name);
        cx.ensure(self.id_part(&fresh.value) != self.id_part(&first), || {
            format!("an expired session's id was reused; {write}")
        });
    }

    /// For a server started with `BEAKER_SESSION_SECURE=true` (not part of
    /// [`run`](Self::run)): the session cookie and the removal cookie carry `Secure`.
    pub async fn secure_cookie(&self) {
        let cx = Cx("secure_cookie");
        let secure = Some(self.secure.unwrap_or(true));
        let mut a = self.agent(cx);
        let first = a.get("/counter").await;
        first.expect(cx, 200, "1");
        first.cookie(cx, &self.cookie_name).expect_attributes(cx, secure);
        let bye = a.post_form("/logout", "").await;
        bye.expect(cx, 200, "bye");
        let removal = bye.cookie(cx, &self.cookie_name);
        cx.ensure(removal.is_removal(), || format!("expected a removal cookie; {bye}"));
        removal.expect_attributes(cx, secure);
    }

    /// Writes a session to look at again after [`DemoServer::restart`](super::DemoServer::restart):
    /// the counter at 1, `user` = `ada` (logged in), and a key `probe`.
    pub async fn before_restart(&self) -> SessionProbe {
        let cx = Cx("before_restart");
        let mut a = self.agent(cx);
        a.get("/counter").await.expect(cx, 200, "1");
        a.post_form("/login", "user=ada").await.expect(cx, 200, "ada");
        let value = unique();
        a.put("/kv/probe", &value).await.expect(cx, 200, "ok");
        SessionProbe { cookie: a.cookie(), value }
    }

    /// After a restart, the probe's session is still there (persistent stores, cookie-only
    /// sessions): same data, logged in, and reading it sets no cookie.
    pub async fn survived_restart(&self, probe: &SessionProbe) {
        let cx = Cx("survived_restart");
        let cookie = Some(probe.cookie.as_str());
        self.get(cx, "/read", cookie).await.expect(cx, 200, "1").expect_no_cookie(cx);
        self.get(cx, "/whoami", cookie).await.expect(cx, 200, "ada").expect_no_cookie(cx);
        self.get(cx, "/kv/probe", cookie).await.expect(cx, 200, &probe.value).expect_no_cookie(cx);
    }

    /// After a restart, the probe's session is gone (the memory store): its cookie reads as
    /// no session, and a write under it gets a new id (a restart must not resurrect ids).
    pub async fn lost_in_restart(&self, probe: &SessionProbe) {
        let cx = Cx("lost_in_restart");
        let cookie = Some(probe.cookie.as_str());
        self.get(cx, "/read", cookie).await.expect(cx, 200, "none").expect_no_cookie(cx);
        self.get(cx, "/whoami", cookie).await.expect(cx, 200, "anonymous").expect_no_cookie(cx);
        let write = self.get(cx, "/counter", cookie).await;
        write.expect(cx, 200, "1");
        let fresh = write.cookie(cx, &self.cookie_name);
        let old = probe.cookie.split_once('=').map_or("", |(_, v)| v);
        cx.ensure(self.id_part(&fresh.value) != self.id_part(old), || {
            format!("the id of a session lost in a restart was adopted; {write}")
        });
    }
}

/// A session written by [`ContractSuite::before_restart`], to check after a restart.
#[derive(Debug, Clone)]
pub struct SessionProbe {
    cookie: String,
    value: String,
}
