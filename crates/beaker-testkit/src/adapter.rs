//! The adapter conformance suite: the HTTP scenarios of `docs/demo-contract.md`, run
//! black-box against a demo app (or any app serving the same routes) with a real HTTP
//! client and hand-made `Cookie` headers, checking the raw `Set-Cookie` values.
//!
//! ```no_run
//! use beaker_testkit::adapter::{ContractSuite, DemoServer};
//!
//! # async fn contract() {
//! // In the demo package's tests/contract.rs: Path::new(env!("CARGO_BIN_EXE_demo-axum")).
//! let binary = std::path::Path::new("target/debug/demo-axum");
//! let server = DemoServer::spawn(binary, &[("BEAKER_SESSION_TYPE", "memory")]);
//! ContractSuite::new(server.base_url()).run().await;
//! # }
//! ```
//!
//! [`ContractSuite::run`] runs every scenario that applies to the server's configuration,
//! keeps going after a failure, and panics at the end naming each failed scenario (each
//! failure is also printed as it happens). Every scenario is a `pub async fn` of its own,
//! so a test can run one. Two scenarios need a server configured for them and are not
//! part of `run`: [`idle_timeout`] (`BEAKER_SESSION_TIMEOUT=1`) and [`secure_cookie`]
//! (`BEAKER_SESSION_SECURE=true`); nor is [`cache_headers_off`]
//! (`BEAKER_SESSION_CACHE_HEADERS=off`). The races of one browser's parallel requests against
//! its logout and login ([`ContractSuite::logout_race`], [`ContractSuite::login_race`])
//! run many trials and need a server-side store; they are not part of `run` either, nor are
//! the routes of a user's sessions ([`ContractSuite::sessions_per_user`],
//! [`ContractSuite::logout_everywhere_race`]; [`ContractSuite::sessions_per_user_unsupported`]
//! for cookie-only sessions), which need a store with a principal index. Restarts are checked with a probe:
//! [`ContractSuite::before_restart`], then [`DemoServer::restart`], then
//! [`ContractSuite::survived_restart`] (persistent stores, cookie-only sessions) or
//! [`ContractSuite::lost_in_restart`] (the memory store).
//!
//! Every scenario uses sessions of its own, so scenarios (and suites) may share a server.
//! `run` expects the library's cookie defaults (`Path=/`, `HttpOnly`, `SameSite=Lax`, a
//! browser-session cookie with neither `Max-Age` nor `Expires`).

mod caching;
mod configured;
pub mod demo;
pub mod demo_app;
pub mod demo_near;
mod http;
mod principals;
mod races;
mod scenarios;
mod server;

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;

use futures_util::FutureExt as _;
use reqwest::Method;

pub use self::configured::SessionProbe;
use self::http::{Answer, Body, Cx, Http};
pub use self::races::{RACE_READERS, RACE_TRIALS};
pub use self::server::{DemoServer, SpawnError};

/// The session cookie name under the library's defaults.
const DEFAULT_COOKIE: &str = "beaker.session.id";

/// The HTTP scenarios every adapter (through its demo app) passes.
///
/// Built for one server; see the [module documentation](self).
#[derive(Debug, Clone)]
pub struct ContractSuite {
    http: Http,
    cookie_name: String,
    cookie_only: bool,
    secure: Option<bool>,
}

type Scenario<'a> = Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

impl ContractSuite {
    /// The suite against the server at `base_url` (`http://127.0.0.1:PORT`), expecting a
    /// server-side store and the cookie name `beaker.session.id`.
    pub fn new(base_url: impl Into<String>) -> Self {
        ContractSuite {
            http: Http::new(base_url.into()),
            cookie_name: DEFAULT_COOKIE.to_owned(),
            cookie_only: false,
            secure: None,
        }
    }

    /// The server keeps whole sessions in cookies (`BEAKER_SESSION_TYPE=cookie`): the
    /// checks that need a server-side record (revocation on logout, unknown ids,
    /// concurrent writes to one session) are skipped and the oversized-value check runs.
    pub fn cookie_only(mut self) -> Self {
        self.cookie_only = true;
        self
    }

    /// The server's session cookie name (`BEAKER_SESSION_KEY`), if not the default.
    pub fn cookie_name(mut self, name: impl Into<String>) -> Self {
        self.cookie_name = name.into();
        self
    }

    /// Checks that session and removal cookies carry `Secure` (or do not); unchecked by
    /// default.
    pub fn expect_secure(mut self, secure: bool) -> Self {
        self.secure = Some(secure);
        self
    }

    /// Runs every scenario (the ones that apply to this configuration), then panics
    /// naming each one that failed.
    pub async fn run(self) {
        let scenarios: Vec<(&str, Scenario<'_>)> = vec![
            ("untouched_requests", Box::pin(self.untouched_requests())),
            ("first_write", Box::pin(self.first_write())),
            ("returning_cookie", Box::pin(self.returning_cookie())),
            ("read_only_requests", Box::pin(self.read_only_requests())),
            ("malformed_cookies", Box::pin(self.malformed_cookies())),
            ("tampered_cookie", Box::pin(self.tampered_cookie())),
            ("unknown_cookie", Box::pin(self.unknown_cookie())),
            ("login_regenerates_id", Box::pin(self.login_regenerates_id())),
            ("logout", Box::pin(self.logout())),
            ("protected", Box::pin(self.protected())),
            ("kv", Box::pin(self.kv())),
            ("keys_sorted", Box::pin(self.keys_sorted())),
            ("flash", Box::pin(self.flash())),
            ("cached", Box::pin(self.cached())),
            ("concurrent_writes", Box::pin(self.concurrent_writes())),
            ("foreign_cookies", Box::pin(self.foreign_cookies())),
            ("oversized_value", Box::pin(self.oversized_value())),
            ("app_page", Box::pin(self.app_page())),
            ("unknown_route", Box::pin(self.unknown_route())),
            ("cache_headers", Box::pin(self.cache_headers())),
            ("cache_headers_merge", Box::pin(self.cache_headers_merge())),
        ];
        let mut failed = Vec::new();
        for (name, scenario) in scenarios {
            if AssertUnwindSafe(scenario).catch_unwind().await.is_err() {
                failed.push(name);
            }
        }
        assert!(
            failed.is_empty(),
            "adapter contract: {} scenario(s) failed (messages above): {}",
            failed.len(),
            failed.join(", ")
        );
    }

    /// A client without cookies yet.
    fn agent(&self, cx: Cx) -> Agent<'_> {
        Agent { suite: self, cx, cookie: None }
    }

    /// One request with `cookie` as the whole `Cookie` header.
    async fn send(&self, cx: Cx, method: Method, path: &str, cookie: Option<&str>, body: Option<Body>) -> Answer {
        let lines: Vec<&[u8]> = cookie.map(str::as_bytes).into_iter().collect();
        self.http.send(cx, method, path, &lines, body).await
    }

    async fn get(&self, cx: Cx, path: &str, cookie: Option<&str>) -> Answer {
        self.send(cx, Method::GET, path, cookie, None).await
    }

    /// The part of a cookie value naming the session: the id of a signed `id.signature`
    /// value, the whole sealed value of a cookie-only session.
    fn id_part<'v>(&self, value: &'v str) -> &'v str {
        if self.cookie_only {
            value
        } else {
            value.rsplit_once('.').map_or(value, |(id, _)| id)
        }
    }
}

/// The scenario the server-independent `idle_timeout` check runs: against a server
/// started with `BEAKER_SESSION_TIMEOUT=1`, a session used every 0.4 s outlives its
/// timeout, and one left alone for 2.2 s reads as fresh and gets a new id when written.
pub async fn idle_timeout(base_url: impl Into<String>) {
    ContractSuite::new(base_url).idle_timeout().await;
}

/// Against a server started with `BEAKER_SESSION_CACHE_HEADERS=off`: the session adds no
/// caching header and leaves the handler's own as they were.
pub async fn cache_headers_off(base_url: impl Into<String>) {
    ContractSuite::new(base_url).cache_headers_off().await;
}

/// Against a server started with `BEAKER_SESSION_SECURE=true`: the session cookie and
/// the removal cookie carry `Secure` (and the other default attributes).
pub async fn secure_cookie(base_url: impl Into<String>) {
    ContractSuite::new(base_url).expect_secure(true).secure_cookie().await;
}

/// A client that keeps the session cookie the server sets, like a browser would.
#[derive(Debug)]
struct Agent<'s> {
    suite: &'s ContractSuite,
    cx: Cx,
    /// The `name=value` pair to send.
    cookie: Option<String>,
}

impl Agent<'_> {
    async fn request(&mut self, method: Method, path: &str, body: Option<Body>) -> Answer {
        let answer = self.suite.send(self.cx, method, path, self.cookie.as_deref(), body).await;
        let name = &self.suite.cookie_name;
        let ours: Vec<_> =
            answer.set_cookies.iter().map(|raw| http::SetCookie::parse(raw)).filter(|c| c.name == *name).collect();
        if let Some(last) = ours.last() {
            self.cookie = if last.is_removal() { None } else { Some(last.pair()) };
        }
        answer
    }

    async fn get(&mut self, path: &str) -> Answer {
        self.request(Method::GET, path, None).await
    }

    async fn post_form(&mut self, path: &str, form: &str) -> Answer {
        self.request(Method::POST, path, Some(Body::Form(form.to_owned()))).await
    }

    async fn put(&mut self, path: &str, value: &str) -> Answer {
        self.request(Method::PUT, path, Some(Body::Text(value.as_bytes().to_vec()))).await
    }

    async fn delete(&mut self, path: &str) -> Answer {
        self.request(Method::DELETE, path, None).await
    }

    /// The current cookie pair; fails the scenario when there is none.
    fn cookie(&self) -> String {
        self.cookie.clone().unwrap_or_else(|| self.cx.fail("expected the server to have set a session cookie by now"))
    }

    /// The value of the current cookie.
    fn value(&self) -> String {
        let pair = self.cookie();
        pair.split_once('=').map_or(pair.clone(), |(_, v)| v.to_owned())
    }
}
