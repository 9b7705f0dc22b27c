//! The beaker-rs demo app on axum (see `docs/demo-contract.md`): the routes of
//! [`demo_common::Demo`], translated to axum handlers, the whole router wrapped in one [`SessionService`].

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::header::{CONTENT_TYPE, LOCATION};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Router, ServiceExt};
use beaker_axum::{Session, SessionError, SessionService};
use demo_common::{announce, exit_with, shutdown_signal, startup_or_exit, Demo, Reply};

type Answer = Result<Response, SessionError>;

fn respond(reply: Reply) -> Response {
    let status = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut res = (status, [(CONTENT_TYPE, reply.content_type)], reply.body).into_response();
    for (name, value) in reply.headers {
        res.headers_mut().append(*name, HeaderValue::from_static(value));
    }
    if let Some(location) = reply.location {
        res.headers_mut().insert(LOCATION, HeaderValue::from_static(location));
    }
    res
}

fn answer(reply: Result<Reply, beaker_core::Error>) -> Answer {
    Ok(respond(reply?))
}

/// `GET /`: the same bytes every time, the session untouched; no extractor, so that
/// axum need not take the request apart.
async fn index() -> Response {
    ([(CONTENT_TYPE, demo_common::HTML)], demo_common::index_page()).into_response()
}

async fn healthz(State(demo): State<Demo>) -> Response {
    respond(demo.healthz())
}

async fn counter(State(demo): State<Demo>, s: Session) -> Answer {
    answer(demo.counter(&s).await)
}

async fn cached_page(State(demo): State<Demo>, s: Session) -> Answer {
    answer(demo.cached_page(&s).await)
}

async fn read(State(demo): State<Demo>, s: Session) -> Answer {
    answer(demo.read(&s).await)
}

async fn login(State(demo): State<Demo>, s: Session, RawQuery(query): RawQuery, body: Bytes) -> Answer {
    answer(demo.login(&s, query.as_deref(), &body).await)
}

async fn whoami(State(demo): State<Demo>, s: Session) -> Answer {
    answer(demo.whoami(&s).await)
}

async fn logout(State(demo): State<Demo>, s: Session) -> Answer {
    answer(demo.logout(&s).await)
}

async fn protected(State(demo): State<Demo>, s: Session) -> Answer {
    answer(demo.protected(&s).await)
}

async fn kv_put(State(demo): State<Demo>, s: Session, Path(key): Path<String>, body: Bytes) -> Answer {
    answer(demo.kv_put(&s, &key, &body).await)
}

async fn kv_get(State(demo): State<Demo>, s: Session, Path(key): Path<String>) -> Answer {
    answer(demo.kv_get(&s, &key).await)
}

async fn kv_delete(State(demo): State<Demo>, s: Session, Path(key): Path<String>) -> Answer {
    answer(demo.kv_delete(&s, &key).await)
}

async fn keys(State(demo): State<Demo>, s: Session) -> Answer {
    answer(demo.keys(&s).await)
}

async fn flash_post(State(demo): State<Demo>, s: Session, body: Bytes) -> Answer {
    answer(demo.flash_post(&s, &body).await)
}

async fn flash_get(State(demo): State<Demo>, s: Session) -> Answer {
    answer(demo.flash_get(&s).await)
}

async fn cached(State(demo): State<Demo>, RawQuery(query): RawQuery) -> Response {
    respond(demo.cached(query.as_deref()).await)
}

async fn cached_stats(State(demo): State<Demo>) -> Response {
    respond(demo.cached_stats().await)
}

async fn sessions(State(demo): State<Demo>, s: Session) -> Answer {
    answer(demo.sessions(&s).await)
}

async fn end_session(State(demo): State<Demo>, s: Session, Path(handle): Path<String>) -> Answer {
    answer(demo.end_session(&s, &handle).await)
}

async fn logout_everywhere(State(demo): State<Demo>, s: Session) -> Answer {
    answer(demo.logout_everywhere(&s).await)
}

async fn app(State(demo): State<Demo>, s: Session) -> Answer {
    answer(demo.app(&s).await)
}

async fn app_action(State(demo): State<Demo>, s: Session, Path(action): Path<String>, body: Bytes) -> Answer {
    answer(demo.app_action(&s, &action, &body).await)
}

async fn metrics(State(demo): State<Demo>) -> Response {
    respond(demo.metrics())
}

#[tokio::main]
async fn main() {
    // Boxed: the start-up future (every store the facade can open) is deep enough to
    // overflow the layout query depth of `main`'s future otherwise.
    let startup = Box::pin(startup_or_exit()).await;
    let listener = startup.bind().and_then(|l| {
        tokio::net::TcpListener::from_std(l)
            .map_err(|source| demo_common::StartupError::Bind { addr: startup.addr, source })
    });
    let listener = listener.unwrap_or_else(|e| exit_with(&e));
    let router = Router::new()
        .route("/healthz", get(healthz))
        .route("/counter", get(counter))
        .route("/read", get(read))
        .route("/login", axum::routing::post(login))
        .route("/whoami", get(whoami))
        .route("/logout", axum::routing::post(logout))
        .route("/protected", get(protected))
        .route("/sessions", get(sessions))
        .route("/sessions/{handle}/end", axum::routing::post(end_session))
        .route("/logout/everywhere", axum::routing::post(logout_everywhere))
        .route("/kv/{key}", get(kv_get).put(kv_put).delete(kv_delete))
        .route("/keys", get(keys))
        .route("/flash", get(flash_get).post(flash_post))
        .route("/cached", get(cached))
        .route("/cached/stats", get(cached_stats))
        .route("/cached-page", get(cached_page))
        .route("/app", get(app))
        .route("/app/{action}", axum::routing::post(app_action))
        .route("/metrics", get(metrics))
        .with_state(startup.demo)
        // Merged after `with_state`: a handler that takes no state stays a plain handler,
        // where `with_state` would box it as a route cloned on every request.
        .merge(Router::new().route("/", get(index)));
    // The layer wraps the whole router (not each route, as `Router::layer` does): one
    // service and one future fewer per request.
    let app = SessionService::new(router, startup.manager);
    match listener.local_addr() {
        Ok(addr) => announce(addr),
        Err(source) => exit_with(&demo_common::StartupError::Bind { addr: startup.addr, source }),
    }
    if let Err(e) = axum::serve(listener, ServiceExt::<axum::extract::Request>::into_make_service(app))
        .with_graceful_shutdown(shutdown_signal())
        .await
    {
        eprintln!("error: server failed: {e}");
        std::process::exit(1);
    }
}
