//! The beaker-rs demo app on warp (see `docs/demo-contract.md`): the routes of
//! [`demo_common::Demo`], translated to warp filters around [`with_session`], served
//! behind a [`SessionService`] that finishes every request's session after its reply.

use std::future::Future;

use beaker_warp::{with_session, with_state, Session, SessionError, SessionService};
use demo_common::{announce, exit_with, shutdown_signal, startup_or_exit, Demo, Reply, StartupError};
use warp::filters::BoxedFilter;
use warp::http::header::{CONTENT_TYPE, LOCATION};
use warp::http::{HeaderValue, StatusCode};
use warp::hyper::body::Bytes;
use warp::reject::MethodNotAllowed;
use warp::reply::Response;
use warp::{Buf, Filter, Rejection, Reply as _, Stream};

/// Request bodies (`/kv`, `/login`, `/flash`) are read whole up to this size, as axum's
/// default body limit does; larger ones are answered 413.
const BODY_LIMIT: u64 = 2 * 1024 * 1024;

fn respond(reply: Reply) -> Response {
    let mut res = match reply.body {
        std::borrow::Cow::Borrowed(s) => s.into_response(),
        std::borrow::Cow::Owned(s) => s.into_response(),
    };
    *res.status_mut() = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    res.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(reply.content_type));
    for (name, value) in reply.headers {
        res.headers_mut().append(*name, HeaderValue::from_static(value));
    }
    if let Some(location) = reply.location {
        res.headers_mut().insert(LOCATION, HeaderValue::from_static(location));
    }
    res
}

/// Runs a session route: its reply, or the session error's own response. The
/// [`SessionService`] finishes the session afterwards.
async fn answer<F>(session: Session, route: impl FnOnce(Session) -> F) -> Response
where
    F: Future<Output = Result<Reply, beaker_core::Error>>,
{
    match route(session).await {
        Ok(reply) => respond(reply),
        Err(e) => SessionError::from(e).into_response(),
    }
}

type Route = BoxedFilter<(Response,)>;

/// `GET`, and `HEAD` answered like it (as axum and rocket do).
fn get() -> BoxedFilter<()> {
    warp::get().or(warp::head()).unify().boxed()
}

/// The raw query string, if any.
fn query() -> BoxedFilter<(Option<String>,)> {
    warp::query::raw().map(Some).or(warp::any().map(|| None)).unify().boxed()
}

/// Why a request body was refused.
#[derive(Debug)]
enum BodyRejection {
    /// Over [`BODY_LIMIT`]: 413.
    TooLarge,
    /// The connection failed while the body was read: 400.
    Unreadable,
}

impl warp::reject::Reject for BodyRejection {}

/// The body of that 413, as the axum demo words it.
const BODY_TOO_LARGE: &str = "Failed to buffer the request body: length limit exceeded";

/// Reads `body` whole, refusing it as soon as it grows over [`BODY_LIMIT`].
async fn read_capped(
    len: Option<u64>,
    body: impl Stream<Item = Result<impl Buf, warp::Error>>,
) -> Result<Bytes, Rejection> {
    if len.is_some_and(|len| len > BODY_LIMIT) {
        return Err(warp::reject::custom(BodyRejection::TooLarge));
    }
    let mut body = std::pin::pin!(body);
    let mut whole = Vec::new();
    while let Some(chunk) = std::future::poll_fn(|cx| body.as_mut().poll_next(cx)).await {
        let mut chunk = chunk.map_err(|_| warp::reject::custom(BodyRejection::Unreadable))?;
        if (whole.len() + chunk.remaining()) as u64 > BODY_LIMIT {
            return Err(warp::reject::custom(BodyRejection::TooLarge));
        }
        while chunk.has_remaining() {
            let part = chunk.chunk();
            whole.extend_from_slice(part);
            let n = part.len();
            chunk.advance(n);
        }
    }
    Ok(Bytes::from(whole))
}

/// The whole request body, up to [`BODY_LIMIT`]; 413 beyond it, whether declared by
/// `Content-Length` or found while reading a chunked body.
fn body() -> BoxedFilter<(Bytes,)> {
    warp::header::optional::<u64>("content-length").and(warp::body::stream()).and_then(read_capped).boxed()
}

/// A key from the path, percent-decoded as the other frameworks do; `None` when it is
/// not UTF-8 once decoded.
fn key() -> BoxedFilter<(Option<String>,)> {
    warp::path::param::<String>()
        .map(|raw: String| percent_encoding::percent_decode_str(&raw).decode_utf8().ok().map(|k| k.into_owned()))
        .boxed()
}

/// The body of the 400 for a `/kv/{key}` whose key is not UTF-8 once percent-decoded,
/// as the axum demo words it.
const BAD_KEY: &str = "Invalid URL: Invalid UTF-8 in `key`";

fn bad_key() -> Response {
    respond(Reply::status(400, BAD_KEY))
}

fn routes(demo: Demo, sessions: BoxedFilter<(Session,)>) -> Route {
    let demo = with_state(demo).boxed();
    let index = warp::path::end().and(get()).and(demo.clone()).map(|d: Demo| respond(d.index())).boxed();
    let healthz = warp::path!("healthz").and(get()).and(demo.clone()).map(|d: Demo| respond(d.healthz())).boxed();
    let counter = warp::path!("counter")
        .and(get())
        .and(demo.clone())
        .and(sessions.clone())
        .then(|d: Demo, s: Session| answer(s, move |s| async move { d.counter(&s).await }))
        .boxed();
    let read = warp::path!("read")
        .and(get())
        .and(demo.clone())
        .and(sessions.clone())
        .then(|d: Demo, s: Session| answer(s, move |s| async move { d.read(&s).await }))
        .boxed();
    let login = warp::path!("login")
        .and(warp::post())
        .and(demo.clone())
        .and(sessions.clone())
        .and(query())
        .and(body())
        .then(|d: Demo, s: Session, q: Option<String>, b: Bytes| {
            answer(s, move |s| async move { d.login(&s, q.as_deref(), &b).await })
        })
        .boxed();
    let cached_page = warp::path!("cached-page")
        .and(get())
        .and(demo.clone())
        .and(sessions.clone())
        .then(|d: Demo, s: Session| answer(s, move |s| async move { d.cached_page(&s).await }))
        .boxed();
    let whoami = warp::path!("whoami")
        .and(get())
        .and(demo.clone())
        .and(sessions.clone())
        .then(|d: Demo, s: Session| answer(s, move |s| async move { d.whoami(&s).await }))
        .boxed();
    let logout = warp::path!("logout")
        .and(warp::post())
        .and(demo.clone())
        .and(sessions.clone())
        .then(|d: Demo, s: Session| answer(s, move |s| async move { d.logout(&s).await }))
        .boxed();
    let protected = warp::path!("protected")
        .and(get())
        .and(demo.clone())
        .and(sessions.clone())
        .then(|d: Demo, s: Session| answer(s, move |s| async move { d.protected(&s).await }))
        .boxed();
    let sessions_list = warp::path!("sessions")
        .and(get())
        .and(demo.clone())
        .and(sessions.clone())
        .then(|d: Demo, s: Session| answer(s, move |s| async move { d.sessions(&s).await }))
        .boxed();
    let end_session = warp::path!("sessions" / String / "end")
        .and(warp::post())
        .and(demo.clone())
        .and(sessions.clone())
        .then(|h: String, d: Demo, s: Session| answer(s, move |s| async move { d.end_session(&s, &h).await }))
        .boxed();
    let logout_everywhere = warp::path!("logout" / "everywhere")
        .and(warp::post())
        .and(demo.clone())
        .and(sessions.clone())
        .then(|d: Demo, s: Session| answer(s, move |s| async move { d.logout_everywhere(&s).await }))
        .boxed();
    let kv = warp::path("kv").and(key()).and(warp::path::end()).boxed();
    let kv_put = kv
        .clone()
        .and(warp::put())
        .and(demo.clone())
        .and(sessions.clone())
        .and(body())
        .then(|k: Option<String>, d: Demo, s: Session, b: Bytes| async move {
            match k {
                Some(k) => answer(s, move |s| async move { d.kv_put(&s, &k, &b).await }).await,
                None => bad_key(),
            }
        })
        .boxed();
    let kv_get = kv
        .clone()
        .and(get())
        .and(demo.clone())
        .and(sessions.clone())
        .then(|k: Option<String>, d: Demo, s: Session| async move {
            match k {
                Some(k) => answer(s, move |s| async move { d.kv_get(&s, &k).await }).await,
                None => bad_key(),
            }
        })
        .boxed();
    let kv_delete = kv
        .and(warp::delete())
        .and(demo.clone())
        .and(sessions.clone())
        .then(|k: Option<String>, d: Demo, s: Session| async move {
            match k {
                Some(k) => answer(s, move |s| async move { d.kv_delete(&s, &k).await }).await,
                None => bad_key(),
            }
        })
        .boxed();
    let keys = warp::path!("keys")
        .and(get())
        .and(demo.clone())
        .and(sessions.clone())
        .then(|d: Demo, s: Session| answer(s, move |s| async move { d.keys(&s).await }))
        .boxed();
    let flash_post = warp::path!("flash")
        .and(warp::post())
        .and(demo.clone())
        .and(sessions.clone())
        .and(body())
        .then(|d: Demo, s: Session, b: Bytes| answer(s, move |s| async move { d.flash_post(&s, &b).await }))
        .boxed();
    let flash_get = warp::path!("flash")
        .and(get())
        .and(demo.clone())
        .and(sessions.clone())
        .then(|d: Demo, s: Session| answer(s, move |s| async move { d.flash_get(&s).await }))
        .boxed();
    let cached = warp::path!("cached")
        .and(get())
        .and(demo.clone())
        .and(query())
        .then(|d: Demo, q: Option<String>| async move { respond(d.cached(q.as_deref()).await) })
        .boxed();
    let cached_stats = warp::path!("cached" / "stats")
        .and(get())
        .and(demo.clone())
        .then(|d: Demo| async move { respond(d.cached_stats().await) })
        .boxed();
    let app = warp::path!("app")
        .and(get())
        .and(demo.clone())
        .and(sessions.clone())
        .then(|d: Demo, s: Session| answer(s, move |s| async move { d.app(&s).await }))
        .boxed();
    let app_action = warp::path!("app" / String)
        .and(warp::post())
        .and(demo.clone())
        .and(sessions)
        .and(body())
        .then(|a: String, d: Demo, s: Session, b: Bytes| {
            answer(s, move |s| async move { d.app_action(&s, &a, &b).await })
        })
        .boxed();
    let metrics =
        warp::path!("metrics").and(get()).and(demo).then(|d: Demo| async move { respond(d.metrics()) }).boxed();
    index
        .or(healthz)
        .unify()
        .or(counter)
        .unify()
        .or(read)
        .unify()
        .or(login)
        .unify()
        .or(whoami)
        .unify()
        .or(logout)
        .unify()
        .or(protected)
        .unify()
        .or(sessions_list)
        .unify()
        .or(end_session)
        .unify()
        .or(logout_everywhere)
        .unify()
        .or(kv_put)
        .unify()
        .or(kv_get)
        .unify()
        .or(kv_delete)
        .unify()
        .or(keys)
        .unify()
        .or(flash_post)
        .unify()
        .or(flash_get)
        .unify()
        .or(cached)
        .unify()
        .or(cached_stats)
        .unify()
        .or(cached_page)
        .unify()
        .or(app)
        .unify()
        .or(app_action)
        .unify()
        .or(metrics)
        .unify()
        .boxed()
}

/// An oversized body is 413 and a method a path does not serve an empty 405, as in the
/// axum demo; every other rejection (an unknown route: 404) keeps warp's own answer.
async fn rejected(rejection: Rejection) -> Result<Response, Rejection> {
    match rejection.find::<BodyRejection>() {
        Some(BodyRejection::TooLarge) => return Ok(respond(Reply::status(413, BODY_TOO_LARGE))),
        Some(BodyRejection::Unreadable) => return Ok(StatusCode::BAD_REQUEST.into_response()),
        None => {}
    }
    if rejection.find::<MethodNotAllowed>().is_some() {
        return Ok(StatusCode::METHOD_NOT_ALLOWED.into_response());
    }
    Err(rejection)
}

#[tokio::main]
async fn main() {
    let startup = startup_or_exit().await;
    let addr = startup.addr;
    let listener = startup
        .bind()
        .and_then(|l| tokio::net::TcpListener::from_std(l).map_err(|source| StartupError::Bind { addr, source }))
        .unwrap_or_else(|e| exit_with(&e));
    let sessions = with_session(startup.manager.clone()).boxed();
    let app = SessionService::new(warp::service(routes(startup.demo, sessions).recover(rejected)), startup.manager);
    match listener.local_addr() {
        Ok(local) => announce(local),
        Err(source) => exit_with(&StartupError::Bind { addr, source }),
    }
    beaker_warp::serve(listener, app, shutdown_signal()).await;
}
