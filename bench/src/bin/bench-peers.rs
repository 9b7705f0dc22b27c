//! The peer servers of `cargo xtask bench http`: the demo's benchmarked routes, minimal, on
//! each framework with no sessions (the "bare" baselines) and with the peer session
//! libraries.
//!
//! | kind | server |
//! |---|---|
//! | `axum-bare` | axum, no sessions; `/counter` increments a process-wide atomic |
//! | `actix-bare` | actix-web, likewise |
//! | `axum-tower-sessions` | axum + tower-sessions 0.15, `MemoryStore` |
//! | `axum-tower-sessions-redis` | axum + tower-sessions 0.14 + tower-sessions-redis-store 0.16 |
//! | `actix-session-cookie` | actix-web + actix-session, `CookieSessionStore` |
//! | `actix-session-redis` | actix-web + actix-session, `RedisSessionStore` |
//!
//! Routes: `GET /counter` (reads integer `n`, writes `n + 1`, answers it), `GET /read`
//! (answers `n` or `none`), `GET /` (the demo's index page, session untouched).
//!
//! Like the demos: listens on `BEAKER_DEMO_ADDR` (default `127.0.0.1:3000`), prints
//! `listening on http://ADDR` once it accepts connections; tokio servers honour
//! `TOKIO_WORKER_THREADS`, actix servers run one worker. Redis: `BEAKER_BENCH_REDIS_URL`
//! (default `redis://127.0.0.1:6379`), keys under `beaker-bench:` where the peer allows a
//! prefix.

use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::AtomicI64;

const TEXT: &str = "text/plain; charset=utf-8";
const HTML: &str = "text/html; charset=utf-8";

/// The demo's index page, so that `/` answers the same bytes as the demos.
fn index_page() -> &'static str {
    demo_common::index_page()
}

static BARE_COUNTER: AtomicI64 = AtomicI64::new(0);

fn fail(what: impl std::fmt::Display) -> ! {
    eprintln!("error: {what}");
    std::process::exit(2)
}

fn announce(addr: SocketAddr) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "listening on http://{addr}").and_then(|()| out.flush());
}

fn listener() -> std::net::TcpListener {
    let addr = std::env::var("BEAKER_DEMO_ADDR").unwrap_or_else(|_| "127.0.0.1:3000".into());
    let l = std::net::TcpListener::bind(&addr).unwrap_or_else(|e| fail(format!("cannot listen on {addr}: {e}")));
    l.set_nonblocking(true).unwrap_or_else(|e| fail(e));
    l
}

fn redis_url() -> String {
    std::env::var("BEAKER_BENCH_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

mod axum_peers {
    use axum::http::header::CONTENT_TYPE;
    use axum::http::StatusCode;
    use axum::response::{IntoResponse, Response};
    use axum::routing::get;
    use axum::Router;

    use super::{index_page, BARE_COUNTER, HTML, TEXT};
    use std::sync::atomic::Ordering;

    fn text(body: String) -> Response {
        ([(CONTENT_TYPE, TEXT)], body).into_response()
    }

    fn unavailable(e: impl std::fmt::Display) -> Response {
        (StatusCode::SERVICE_UNAVAILABLE, [(CONTENT_TYPE, TEXT)], e.to_string()).into_response()
    }

    async fn index() -> Response {
        ([(CONTENT_TYPE, HTML)], index_page()).into_response()
    }

    pub(super) fn bare() -> Router {
        async fn counter() -> Response {
            text((BARE_COUNTER.fetch_add(1, Ordering::Relaxed) + 1).to_string())
        }
        async fn read() -> Response {
            text(BARE_COUNTER.load(Ordering::Relaxed).to_string())
        }
        Router::new().route("/", get(index)).route("/counter", get(counter)).route("/read", get(read))
    }

    /// Routes for one tower-sessions version (0.15 and 0.14 have the same `Session` API).
    macro_rules! tower_sessions_routes {
        ($ts:ident) => {{
            async fn counter(session: $ts::Session) -> Response {
                let n = match session.get::<i64>("n").await {
                    Ok(n) => n.unwrap_or(0).saturating_add(1),
                    Err(e) => return unavailable(e),
                };
                match session.insert("n", n).await {
                    Ok(()) => text(n.to_string()),
                    Err(e) => unavailable(e),
                }
            }
            async fn read(session: $ts::Session) -> Response {
                match session.get::<i64>("n").await {
                    Ok(Some(n)) => text(n.to_string()),
                    Ok(None) => text("none".into()),
                    Err(e) => unavailable(e),
                }
            }
            Router::new().route("/", get(index)).route("/counter", get(counter)).route("/read", get(read))
        }};
    }

    pub(super) fn tower_sessions_memory() -> Router {
        let layer = tower_sessions::SessionManagerLayer::new(tower_sessions::MemoryStore::default()).with_secure(false);
        tower_sessions_routes!(tower_sessions).layer(layer)
    }

    pub(super) async fn tower_sessions_redis(url: &str) -> Router {
        use tower_sessions_redis_store::fred::prelude::{ClientLike, Config, Pool};
        let config = Config::from_url(url).unwrap_or_else(|e| super::fail(format!("redis url {url}: {e}")));
        let pool = Pool::new(config, None, None, None, 1).unwrap_or_else(|e| super::fail(e));
        let _task = pool.connect();
        pool.wait_for_connect().await.unwrap_or_else(|e| super::fail(format!("redis {url}: {e}")));
        let store = tower_sessions_redis_store::RedisStore::new(pool);
        let layer = tower_sessions_014::SessionManagerLayer::new(store).with_secure(false);
        tower_sessions_routes!(tower_sessions_014).layer(layer)
    }

    pub(super) fn serve(make: impl std::future::Future<Output = Router>) {
        // `#[tokio::main]`'s runtime: multi-threaded, sized by TOKIO_WORKER_THREADS.
        let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap_or_else(|e| super::fail(e));
        rt.block_on(async {
            let router = make.await;
            let listener = tokio::net::TcpListener::from_std(super::listener()).unwrap_or_else(|e| super::fail(e));
            super::announce(listener.local_addr().unwrap_or_else(|e| super::fail(e)));
            axum::serve(listener, router).await.unwrap_or_else(|e| super::fail(e));
        });
    }
}

mod actix_peers {
    use actix_session::storage::{CookieSessionStore, RedisSessionStore, SessionStore};
    use actix_session::{Session, SessionMiddleware};
    use actix_web::cookie::Key;
    use actix_web::{guard, web, App, HttpResponse, HttpServer, Route};

    use super::{index_page, BARE_COUNTER, HTML, TEXT};
    use std::sync::atomic::Ordering;

    /// A `GET` route that also answers `HEAD`, routed exactly as demo-actix routes its
    /// pages, so that the comparison charges no routing difference to the session layer.
    fn get() -> Route {
        web::route().guard(guard::Any(guard::Get()).or(guard::Head()))
    }

    fn text(body: String) -> HttpResponse {
        HttpResponse::Ok().content_type(TEXT).body(body)
    }

    fn unavailable(e: impl std::fmt::Display) -> HttpResponse {
        HttpResponse::ServiceUnavailable().content_type(TEXT).body(e.to_string())
    }

    async fn index() -> HttpResponse {
        HttpResponse::Ok().content_type(HTML).body(index_page())
    }

    async fn bare_counter() -> HttpResponse {
        text((BARE_COUNTER.fetch_add(1, Ordering::Relaxed) + 1).to_string())
    }

    async fn bare_read() -> HttpResponse {
        text(BARE_COUNTER.load(Ordering::Relaxed).to_string())
    }

    async fn counter(session: Session) -> HttpResponse {
        let n = match session.get::<i64>("n") {
            Ok(n) => n.unwrap_or(0).saturating_add(1),
            Err(e) => return unavailable(e),
        };
        match session.insert("n", n) {
            Ok(()) => text(n.to_string()),
            Err(e) => unavailable(e),
        }
    }

    async fn read(session: Session) -> HttpResponse {
        match session.get::<i64>("n") {
            Ok(Some(n)) => text(n.to_string()),
            Ok(None) => text("none".into()),
            Err(e) => unavailable(e),
        }
    }

    fn key() -> Key {
        // A fixed benchmark key (64 bytes), never used outside this loopback benchmark.
        Key::from(&[7u8; 64])
    }

    /// Runs `setup` then serves the app built by `$factory` (one worker) in one actix system.
    macro_rules! serve {
        (|$state:ident| $setup:expr, $factory:expr) => {{
            let listener = super::listener();
            let addr = listener.local_addr().unwrap_or_else(|e| super::fail(e));
            actix_web::rt::System::new().block_on(async move {
                let $state = $setup;
                let server = HttpServer::new(move || {
                    let $state = $state.clone();
                    $factory
                })
                .workers(1)
                .disable_signals()
                .listen(listener)
                .unwrap_or_else(|e| super::fail(e))
                .run();
                super::announce(addr);
                server.await.unwrap_or_else(|e| super::fail(e));
            });
        }};
    }

    pub(super) fn bare() {
        serve!(
            |state| (),
            App::new()
                .app_data(state)
                .route("/", get().to(index))
                .route("/counter", get().to(bare_counter))
                .route("/read", get().to(bare_read))
        );
    }

    fn sessions_app<S: SessionStore + 'static>(
        store: S,
    ) -> App<
        impl actix_web::dev::ServiceFactory<
            actix_web::dev::ServiceRequest,
            Config = (),
            Response = actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>,
            Error = actix_web::Error,
            InitError = (),
        >,
    > {
        App::new()
            .wrap(SessionMiddleware::builder(store, key()).cookie_secure(false).build())
            .route("/", get().to(index))
            .route("/counter", get().to(counter))
            .route("/read", get().to(read))
    }

    pub(super) fn cookie() {
        serve!(|state| (), {
            let () = state;
            sessions_app(CookieSessionStore::default())
        });
    }

    pub(super) fn redis(url: String) {
        serve!(
            |store| RedisSessionStore::builder(url.clone())
                .cache_keygen(|key| format!("beaker-bench:actix-session:{key}"))
                .build()
                .await
                .unwrap_or_else(|e| super::fail(format!("redis {url}: {e}"))),
            sessions_app(store)
        );
    }
}

fn main() {
    let kind = std::env::args().nth(1).unwrap_or_default();
    match kind.as_str() {
        "axum-bare" => axum_peers::serve(async { axum_peers::bare() }),
        "axum-tower-sessions" => axum_peers::serve(async { axum_peers::tower_sessions_memory() }),
        "axum-tower-sessions-redis" => {
            let url = redis_url();
            axum_peers::serve(async move { axum_peers::tower_sessions_redis(&url).await })
        }
        "actix-bare" => actix_peers::bare(),
        "actix-session-cookie" => actix_peers::cookie(),
        "actix-session-redis" => actix_peers::redis(redis_url()),
        _ => {
            eprintln!(
                "usage: bench-peers <axum-bare | actix-bare | axum-tower-sessions | axum-tower-sessions-redis \
                 | actix-session-cookie | actix-session-redis>"
            );
            std::process::exit(2)
        }
    }
}
