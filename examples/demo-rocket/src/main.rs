//! The beaker-rs demo app on rocket (see `docs/demo-contract.md`): the routes of
//! [`demo_common::Demo`], translated to rocket handlers behind a [`SessionFairing`].
//!
//! Rocket is configured from code only (no `Rocket.toml`, no `ROCKET_*` variables): the
//! address comes from `BEAKER_DEMO_ADDR` through [`demo_common::Startup`], rocket's own
//! log is off (stdout carries only the `listening on` line), and shutdown follows
//! [`demo_common::shutdown_signal`].

use std::io::Cursor;
use std::net::SocketAddr;

use beaker_rocket::{Session, SessionError, SessionFairing};
use demo_common::{announce, exit_with, shutdown_signal, startup_or_exit, Demo, Reply, StartupError};
use rocket::config::{Ident, LogLevel, Shutdown};
use rocket::data::{self, Data, FromData, Limits, ToByteUnit};
use rocket::fairing::AdHoc;
use rocket::http::uri::Origin;
use rocket::http::{Method, Status};
use rocket::outcome::Outcome;
use rocket::request::{self, FromRequest};
use rocket::response::{self, Responder};
use rocket::route::{self, Route};
use rocket::{Config, Request, Response, State};

/// Request bodies (`/kv`, `/login`, `/flash`) are read whole up to this size (rocket's
/// `bytes` limit), as axum's default body limit does; larger ones are answered 413.
const BODY_LIMIT_MIB: u64 = 2;

/// The body of that 413, as the axum demo words it.
const BODY_TOO_LARGE: &str = "Failed to buffer the request body: length limit exceeded";

/// Every method a path of the contract may be asked with; the ones it does not serve are
/// answered 405, as axum and warp do (rocket alone would say 404).
const METHODS: [Method; 5] = [Method::Get, Method::Put, Method::Post, Method::Delete, Method::Patch];

/// The contract's paths and the methods each one serves (`HEAD` comes with `GET`).
const PATHS: [(&str, &[Method]); 20] = [
    ("/", &[Method::Get]),
    ("/healthz", &[Method::Get]),
    ("/counter", &[Method::Get]),
    ("/read", &[Method::Get]),
    ("/login", &[Method::Post]),
    ("/whoami", &[Method::Get]),
    ("/logout", &[Method::Post]),
    ("/protected", &[Method::Get]),
    ("/sessions", &[Method::Get]),
    ("/sessions/<_>/end", &[Method::Post]),
    ("/logout/everywhere", &[Method::Post]),
    ("/kv/<_>", &[Method::Get, Method::Put, Method::Delete]),
    ("/keys", &[Method::Get]),
    ("/flash", &[Method::Get, Method::Post]),
    ("/cached", &[Method::Get]),
    ("/cached/stats", &[Method::Get]),
    ("/cached-page", &[Method::Get]),
    ("/app", &[Method::Get]),
    ("/app/<_>", &[Method::Post]),
    ("/metrics", &[Method::Get]),
];

/// A [`Reply`] as a rocket response: its status, its exact `Content-Type`, its body.
struct Answer(Reply);

impl<'r> Responder<'r, 'static> for Answer {
    fn respond_to(self, _req: &'r Request<'_>) -> response::Result<'static> {
        let Reply { status, content_type, body, location, headers } = self.0;
        let body: std::borrow::Cow<'static, [u8]> = match body {
            std::borrow::Cow::Borrowed(s) => s.as_bytes().into(),
            std::borrow::Cow::Owned(s) => s.into_bytes().into(),
        };
        let mut res = Response::build();
        res.status(Status::from_code(status).unwrap_or(Status::InternalServerError))
            .raw_header("Content-Type", content_type)
            .sized_body(body.len(), Cursor::new(body));
        for (name, value) in headers {
            res.raw_header_adjoin(*name, *value);
        }
        if let Some(location) = location {
            res.raw_header("Location", location);
        }
        res.ok()
    }
}

type Answered = Result<Answer, SessionError>;

fn answer(reply: Result<Reply, beaker_core::Error>) -> Answered {
    Ok(Answer(reply?))
}

/// A whole request body, up to the `bytes` limit; 413 beyond it.
struct Body(Vec<u8>);

#[rocket::async_trait]
impl<'r> FromData<'r> for Body {
    type Error = std::io::Error;

    async fn from_data(req: &'r Request<'_>, data: Data<'r>) -> data::Outcome<'r, Self> {
        let limit = req.limits().get("bytes").unwrap_or(Limits::BYTES);
        match data.open(limit).into_bytes().await {
            Ok(bytes) if bytes.is_complete() => Outcome::Success(Body(bytes.into_inner())),
            Ok(_) => Outcome::Error((Status::PayloadTooLarge, std::io::Error::other(BODY_TOO_LARGE))),
            Err(e) => Outcome::Error((Status::BadRequest, e)),
        }
    }
}

/// The body of the 400 for a `/kv/{key}` whose key is not UTF-8 once percent-decoded,
/// as the axum demo words it.
const BAD_KEY: &str = "Invalid URL: Invalid UTF-8 in `key`";

/// The `{key}` of `/kv/{key}`, percent-decoded strictly (rocket's own parameters decode
/// lossily); `None` when it is not UTF-8.
struct Key(Option<String>);

#[rocket::async_trait]
impl<'r> FromRequest<'r> for Key {
    type Error = std::convert::Infallible;

    async fn from_request(req: &'r Request<'_>) -> request::Outcome<Self, Self::Error> {
        // Rocket routes on the non-empty segments: `kv`, then the key.
        let raw = req.uri().path().raw_segments().filter(|s| !s.is_empty()).nth(1);
        Outcome::Success(Key(raw.and_then(|raw| raw.percent_decode().ok()).map(|key| key.into_owned())))
    }
}

/// Runs a `/kv` route with the decoded key, or answers 400 when it is not UTF-8.
async fn with_key<F>(key: Key, route: impl FnOnce(String) -> F) -> Answered
where
    F: std::future::Future<Output = Result<Reply, beaker_core::Error>>,
{
    match key.0 {
        Some(key) => answer(route(key).await),
        None => Ok(Answer(Reply::status(400, BAD_KEY))),
    }
}

fn query<'a>(origin: &'a Origin<'_>) -> Option<&'a str> {
    origin.query().map(|q| q.as_str())
}

#[rocket::get("/")]
fn index(demo: &State<Demo>) -> Answer {
    Answer(demo.index())
}

#[rocket::get("/cached-page")]
async fn cached_page(demo: &State<Demo>, s: Session) -> Answered {
    answer(demo.cached_page(&s).await)
}

#[rocket::get("/healthz")]
fn healthz(demo: &State<Demo>) -> Answer {
    Answer(demo.healthz())
}

#[rocket::get("/counter")]
async fn counter(demo: &State<Demo>, s: Session) -> Answered {
    answer(demo.counter(&s).await)
}

#[rocket::get("/read")]
async fn read(demo: &State<Demo>, s: Session) -> Answered {
    answer(demo.read(&s).await)
}

#[rocket::post("/login", data = "<body>")]
async fn login(demo: &State<Demo>, s: Session, origin: &Origin<'_>, body: Body) -> Answered {
    answer(demo.login(&s, query(origin), &body.0).await)
}

#[rocket::get("/whoami")]
async fn whoami(demo: &State<Demo>, s: Session) -> Answered {
    answer(demo.whoami(&s).await)
}

#[rocket::post("/logout")]
async fn logout(demo: &State<Demo>, s: Session) -> Answered {
    answer(demo.logout(&s).await)
}

#[rocket::get("/protected")]
async fn protected(demo: &State<Demo>, s: Session) -> Answered {
    answer(demo.protected(&s).await)
}

#[rocket::get("/sessions")]
async fn sessions(demo: &State<Demo>, s: Session) -> Answered {
    answer(demo.sessions(&s).await)
}

#[rocket::post("/sessions/<handle>/end")]
async fn end_session(demo: &State<Demo>, s: Session, handle: &str) -> Answered {
    answer(demo.end_session(&s, handle).await)
}

#[rocket::post("/logout/everywhere")]
async fn logout_everywhere(demo: &State<Demo>, s: Session) -> Answered {
    answer(demo.logout_everywhere(&s).await)
}

#[rocket::put("/kv/<_>", data = "<body>")]
async fn kv_put(demo: &State<Demo>, s: Session, key: Key, body: Body) -> Answered {
    with_key(key, |key| async move { demo.kv_put(&s, &key, &body.0).await }).await
}

#[rocket::get("/kv/<_>")]
async fn kv_get(demo: &State<Demo>, s: Session, key: Key) -> Answered {
    with_key(key, |key| async move { demo.kv_get(&s, &key).await }).await
}

#[rocket::delete("/kv/<_>")]
async fn kv_delete(demo: &State<Demo>, s: Session, key: Key) -> Answered {
    with_key(key, |key| async move { demo.kv_delete(&s, &key).await }).await
}

#[rocket::get("/keys")]
async fn keys(demo: &State<Demo>, s: Session) -> Answered {
    answer(demo.keys(&s).await)
}

#[rocket::post("/flash", data = "<body>")]
async fn flash_post(demo: &State<Demo>, s: Session, body: Body) -> Answered {
    answer(demo.flash_post(&s, &body.0).await)
}

#[rocket::get("/flash")]
async fn flash_get(demo: &State<Demo>, s: Session) -> Answered {
    answer(demo.flash_get(&s).await)
}

#[rocket::get("/cached")]
async fn cached(demo: &State<Demo>, origin: &Origin<'_>) -> Answer {
    Answer(demo.cached(query(origin)).await)
}

#[rocket::get("/cached/stats")]
async fn cached_stats(demo: &State<Demo>) -> Answer {
    Answer(demo.cached_stats().await)
}

#[rocket::get("/app")]
async fn app(demo: &State<Demo>, s: Session) -> Answered {
    answer(demo.app(&s).await)
}

#[rocket::post("/app/<action>", data = "<body>")]
async fn app_action(demo: &State<Demo>, s: Session, action: &str, body: Body) -> Answered {
    answer(demo.app_action(&s, action, &body.0).await)
}

#[rocket::get("/metrics")]
fn metrics(demo: &State<Demo>) -> Answer {
    Answer(demo.metrics())
}

/// Every error status without a route's own body (unknown route, oversized body, ...):
/// the bare status and an empty body, as the other demos answer them.
struct Bare(Status);

impl<'r> Responder<'r, 'static> for Bare {
    fn respond_to(self, _req: &'r Request<'_>) -> response::Result<'static> {
        Response::build().status(self.0).ok()
    }
}

#[rocket::catch(default)]
fn bare(status: Status, _req: &Request<'_>) -> Result<Answer, Bare> {
    match status {
        Status::PayloadTooLarge => Ok(Answer(Reply::status(413, BODY_TOO_LARGE))),
        _ => Err(Bare(status)),
    }
}

fn not_allowed<'r>(_req: &'r Request<'_>, _data: Data<'r>) -> route::BoxFuture<'r> {
    Box::pin(async { route::Outcome::Error(Status::MethodNotAllowed) })
}

/// A route answering 405 for every method a contract path does not serve.
fn not_allowed_routes() -> Vec<Route> {
    PATHS
        .iter()
        .flat_map(|(path, served)| {
            METHODS.iter().filter(|m| !served.contains(m)).map(|m| Route::new(*m, path, not_allowed))
        })
        .collect()
}

/// Rocket's configuration, from code only: where to listen, no log on stdout, no
/// `Server` header, body limits for the contract's `/kv` values, and no signal handling
/// of its own (shutdown is triggered from [`shutdown_signal`]).
fn config(addr: SocketAddr) -> Config {
    let body = BODY_LIMIT_MIB.mebibytes();
    Config {
        address: addr.ip(),
        port: addr.port(),
        ident: Ident::none(),
        log_level: LogLevel::Off,
        cli_colors: false,
        // Nothing stands in front of the demo that would set X-Real-IP honestly.
        ip_header: None,
        limits: Limits::default().limit("bytes", body),
        shutdown: Shutdown { ctrlc: false, signals: Default::default(), grace: 1, mercy: 1, ..Shutdown::default() },
        ..Config::default()
    }
}

fn fail(what: &str, e: impl std::fmt::Display) -> ! {
    eprintln!("error: {what}: {e}");
    std::process::exit(1)
}

#[tokio::main]
async fn main() {
    let startup = startup_or_exit().await;
    let addr = startup.addr;
    let rocket = rocket::custom(config(addr))
        .attach(SessionFairing::new(startup.manager))
        .attach(AdHoc::on_liftoff("announce", |rocket| {
            Box::pin(async move {
                let config = rocket.config();
                announce(SocketAddr::new(config.address, config.port));
            })
        }))
        .manage(startup.demo)
        .mount(
            "/",
            rocket::routes![
                index,
                healthz,
                counter,
                read,
                login,
                whoami,
                logout,
                protected,
                sessions,
                end_session,
                logout_everywhere,
                kv_put,
                kv_get,
                kv_delete,
                keys,
                flash_post,
                flash_get,
                cached,
                cached_stats,
                cached_page,
                app,
                app_action,
                metrics
            ],
        )
        .mount("/", not_allowed_routes())
        .register("/", rocket::catchers![bare]);
    let rocket = rocket.ignite().await.unwrap_or_else(|e| fail("cannot start rocket", e));
    let shutdown = rocket.shutdown();
    tokio::spawn(async move {
        shutdown_signal().await;
        shutdown.notify();
    });
    if let Err(e) = rocket.launch().await {
        match e.kind() {
            rocket::error::ErrorKind::Bind(source) => {
                let source = std::io::Error::new(source.kind(), source.to_string());
                exit_with(&StartupError::Bind { addr, source })
            }
            _ => fail("server failed", e),
        }
    }
}
