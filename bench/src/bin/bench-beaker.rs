//! The minimal beaker-rs servers of `cargo xtask bench`: exactly the routes of
//! `bench-peers` (`/`, `/counter`, `/read`), on axum and actix-web, with beaker-rs's session
//! layer and nothing else: no cache region, no metrics recorder, no other routes, no
//! shutdown-signal task. Set beside the demos, they tell what the demo's extras cost from
//! what the session layer costs, against peers that are built the same way.
//!
//! | kind | server |
//! |---|---|
//! | `axum` | axum + `beaker_axum::SessionService` around the three-route router |
//! | `actix` | actix-web + `beaker_actix::SessionMiddleware`, one worker |
//!
//! The store comes from `BEAKER_SESSION_*` (as in the demos: `BEAKER_SESSION_URL=memory:`,
//! `cookie:`, `redis://…`; `BEAKER_SESSION_SECRET` required). Listens on `BEAKER_DEMO_ADDR`
//! (default `127.0.0.1:3000`) and prints `listening on http://ADDR` once it accepts
//! connections; the axum server honours `TOKIO_WORKER_THREADS`.
//!
//! Routes, as in `bench-peers`: `GET /counter` (reads integer `n`, writes `n + 1`, answers
//! it), `GET /read` (answers `n` or `none`), `GET /` (the demo's index page, session
//! untouched).

use std::io::Write as _;
use std::net::SocketAddr;

const TEXT: &str = "text/plain; charset=utf-8";
const HTML: &str = "text/html; charset=utf-8";

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

async fn manager() -> beaker_rs::SessionManager {
    beaker_rs::session_manager_from_env().await.unwrap_or_else(|e| fail(e))
}

mod axum_server {
    use axum::http::header::CONTENT_TYPE;
    use axum::response::{IntoResponse, Response};
    use axum::routing::get;
    use axum::{Router, ServiceExt};
    use beaker_axum::{Session, SessionError, SessionService};

    use super::{HTML, TEXT};

    fn text(body: String) -> Response {
        ([(CONTENT_TYPE, TEXT)], body).into_response()
    }

    async fn index() -> Response {
        ([(CONTENT_TYPE, HTML)], demo_common::index_page()).into_response()
    }

    async fn counter(session: Session) -> Result<Response, SessionError> {
        let n = session.get::<i64>("n").await?.unwrap_or(0).saturating_add(1);
        session.insert("n", &n).await?;
        Ok(text(n.to_string()))
    }

    async fn read(session: Session) -> Result<Response, SessionError> {
        Ok(match session.get::<i64>("n").await? {
            Some(n) => text(n.to_string()),
            None => text("none".into()),
        })
    }

    pub(super) fn serve() {
        let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap_or_else(|e| super::fail(e));
        rt.block_on(async {
            let router = Router::new().route("/", get(index)).route("/counter", get(counter)).route("/read", get(read));
            // Around the whole router, as the demo does.
            let app = SessionService::new(router, super::manager().await);
            let listener = tokio::net::TcpListener::from_std(super::listener()).unwrap_or_else(|e| super::fail(e));
            super::announce(listener.local_addr().unwrap_or_else(|e| super::fail(e)));
            axum::serve(listener, ServiceExt::<axum::extract::Request>::into_make_service(app))
                .await
                .unwrap_or_else(|e| super::fail(e));
        });
    }
}

mod actix_server {
    use actix_web::{guard, web, App, HttpResponse, HttpServer, Route};
    use beaker_actix::{Session, SessionError, SessionMiddleware};

    use super::{HTML, TEXT};

    /// `GET` and `HEAD`, routed as in demo-actix and bench-peers.
    fn get() -> Route {
        web::route().guard(guard::Any(guard::Get()).or(guard::Head()))
    }

    fn text(body: String) -> HttpResponse {
        HttpResponse::Ok().content_type(TEXT).body(body)
    }

    async fn index() -> HttpResponse {
        HttpResponse::Ok().content_type(HTML).body(demo_common::index_page())
    }

    async fn counter(session: Session) -> Result<HttpResponse, SessionError> {
        let n = session.get::<i64>("n").await?.unwrap_or(0).saturating_add(1);
        session.insert("n", &n).await?;
        Ok(text(n.to_string()))
    }

    async fn read(session: Session) -> Result<HttpResponse, SessionError> {
        Ok(match session.get::<i64>("n").await? {
            Some(n) => text(n.to_string()),
            None => text("none".into()),
        })
    }

    pub(super) fn serve() {
        let listener = super::listener();
        let addr = listener.local_addr().unwrap_or_else(|e| super::fail(e));
        actix_web::rt::System::new().block_on(async move {
            let manager = super::manager().await;
            let server = HttpServer::new(move || {
                App::new()
                    .wrap(SessionMiddleware::new(manager.clone()))
                    .route("/", get().to(index))
                    .route("/counter", get().to(counter))
                    .route("/read", get().to(read))
            })
            .workers(1)
            .disable_signals()
            .listen(listener)
            .unwrap_or_else(|e| super::fail(e))
            .run();
            super::announce(addr);
            server.await.unwrap_or_else(|e| super::fail(e));
        });
    }
}

fn main() {
    match std::env::args().nth(1).unwrap_or_default().as_str() {
        "axum" => axum_server::serve(),
        "actix" => actix_server::serve(),
        _ => {
            eprintln!("usage: bench-beaker <axum | actix>   (store from BEAKER_SESSION_URL)");
            std::process::exit(2)
        }
    }
}
