//! The beaker-rs demo app on actix-web (see `docs/demo-contract.md`): the routes of
//! [`demo_common::Demo`], translated to actix-web handlers behind a [`SessionMiddleware`].

use actix_web::http::StatusCode;
use actix_web::web::{self, Bytes, Data};
use actix_web::{guard, App, HttpRequest, HttpResponse, HttpServer, Route};
use beaker_actix::{Session, SessionError, SessionMiddleware};
use demo_common::{announce, exit_with, shutdown_signal, startup_or_exit, Demo, Reply, StartupError};

type Answer = Result<HttpResponse, SessionError>;

/// Request bodies up to 2 MiB, as on the axum demo.
const BODY_LIMIT: usize = 2 * 1024 * 1024;

fn respond(reply: Reply) -> HttpResponse {
    let status = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut res = HttpResponse::build(status);
    for header in reply.headers {
        res.append_header(*header);
    }
    if let Some(location) = reply.location {
        res.insert_header((actix_web::http::header::LOCATION, location));
    }
    res.content_type(reply.content_type).body(reply.body)
}

fn answer(reply: Result<Reply, beaker_core::Error>) -> Answer {
    Ok(respond(reply?))
}

/// A `GET` route that also answers `HEAD` (without the body), as axum's `get` does. Every
/// path is a resource, so that a known path with another method is 405, as on axum.
fn get() -> Route {
    web::route().guard(guard::Any(guard::Get()).or(guard::Head()))
}

/// The raw query string, `None` when the URL has none (like axum's `RawQuery`).
fn query(req: &HttpRequest) -> Option<&str> {
    req.uri().query()
}

/// `GET /`: the same bytes every time, the session untouched; no extractor.
async fn index() -> HttpResponse {
    HttpResponse::Ok().content_type(demo_common::HTML).body(demo_common::index_page())
}

async fn healthz(demo: Data<Demo>) -> HttpResponse {
    respond(demo.healthz())
}

async fn counter(demo: Data<Demo>, s: Session) -> Answer {
    answer(demo.counter(&s).await)
}

async fn cached_page(demo: Data<Demo>, s: Session) -> Answer {
    answer(demo.cached_page(&s).await)
}

async fn read(demo: Data<Demo>, s: Session) -> Answer {
    answer(demo.read(&s).await)
}

async fn login(demo: Data<Demo>, s: Session, req: HttpRequest, body: Bytes) -> Answer {
    answer(demo.login(&s, query(&req), &body).await)
}

async fn whoami(demo: Data<Demo>, s: Session) -> Answer {
    answer(demo.whoami(&s).await)
}

async fn logout(demo: Data<Demo>, s: Session) -> Answer {
    answer(demo.logout(&s).await)
}

async fn protected(demo: Data<Demo>, s: Session) -> Answer {
    answer(demo.protected(&s).await)
}

async fn kv_put(demo: Data<Demo>, s: Session, key: web::Path<String>, body: Bytes) -> Answer {
    answer(demo.kv_put(&s, &key, &body).await)
}

async fn kv_get(demo: Data<Demo>, s: Session, key: web::Path<String>) -> Answer {
    answer(demo.kv_get(&s, &key).await)
}

async fn kv_delete(demo: Data<Demo>, s: Session, key: web::Path<String>) -> Answer {
    answer(demo.kv_delete(&s, &key).await)
}

async fn keys(demo: Data<Demo>, s: Session) -> Answer {
    answer(demo.keys(&s).await)
}

async fn flash_post(demo: Data<Demo>, s: Session, body: Bytes) -> Answer {
    answer(demo.flash_post(&s, &body).await)
}

async fn flash_get(demo: Data<Demo>, s: Session) -> Answer {
    answer(demo.flash_get(&s).await)
}

async fn cached(demo: Data<Demo>, req: HttpRequest) -> HttpResponse {
    respond(demo.cached(query(&req)).await)
}

async fn cached_stats(demo: Data<Demo>) -> HttpResponse {
    respond(demo.cached_stats().await)
}

async fn app_action(demo: Data<Demo>, s: Session, action: web::Path<String>, body: Bytes) -> Answer {
    answer(demo.app_action(&s, &action, &body).await)
}

async fn metrics(demo: Data<Demo>) -> HttpResponse {
    respond(demo.metrics())
}

async fn sessions(demo: Data<Demo>, s: Session) -> Answer {
    answer(demo.sessions(&s).await)
}

async fn end_session(demo: Data<Demo>, s: Session, handle: web::Path<String>) -> Answer {
    answer(demo.end_session(&s, &handle).await)
}

async fn logout_everywhere(demo: Data<Demo>, s: Session) -> Answer {
    answer(demo.logout_everywhere(&s).await)
}

async fn app(demo: Data<Demo>, s: Session) -> Answer {
    answer(demo.app(&s).await)
}

#[actix_web::main]
async fn main() {
    // Boxed: the start-up future (every store the facade can open) is deep enough to
    // overflow the layout query depth of `main`'s future otherwise.
    let startup = Box::pin(startup_or_exit()).await;
    let bind_error = |source| StartupError::Bind { addr: startup.addr, source };
    let listener = startup.bind().unwrap_or_else(|e| exit_with(&e));
    let addr = listener.local_addr().unwrap_or_else(|e| exit_with(&bind_error(e)));
    let manager = startup.manager.clone();
    let demo = Data::new(startup.demo.clone());
    let server = HttpServer::new(move || {
        App::new()
            .app_data(demo.clone())
            .app_data(web::PayloadConfig::new(BODY_LIMIT))
            .wrap(SessionMiddleware::new(manager.clone()))
            .service(web::resource("/").route(get().to(index)))
            .service(web::resource("/healthz").route(get().to(healthz)))
            .service(web::resource("/counter").route(get().to(counter)))
            .service(web::resource("/read").route(get().to(read)))
            .service(web::resource("/login").route(web::post().to(login)))
            .service(web::resource("/whoami").route(get().to(whoami)))
            .service(web::resource("/logout").route(web::post().to(logout)))
            .service(web::resource("/protected").route(get().to(protected)))
            .service(web::resource("/sessions").route(get().to(sessions)))
            .service(web::resource("/sessions/{handle}/end").route(web::post().to(end_session)))
            .service(web::resource("/logout/everywhere").route(web::post().to(logout_everywhere)))
            .service(
                web::resource("/kv/{key}")
                    .route(get().to(kv_get))
                    .route(web::put().to(kv_put))
                    .route(web::delete().to(kv_delete)),
            )
            .service(web::resource("/keys").route(get().to(keys)))
            .service(web::resource("/flash").route(get().to(flash_get)).route(web::post().to(flash_post)))
            .service(web::resource("/cached").route(get().to(cached)))
            .service(web::resource("/cached/stats").route(get().to(cached_stats)))
            .service(web::resource("/cached-page").route(get().to(cached_page)))
            .service(web::resource("/app").route(get().to(app)))
            .service(web::resource("/app/{action}").route(web::post().to(app_action)))
            .service(web::resource("/metrics").route(get().to(metrics)))
    })
    // SIGINT/SIGTERM are handled below, the same way as in the other demos.
    .disable_signals()
    .shutdown_timeout(5)
    .listen(listener)
    .unwrap_or_else(|e| exit_with(&bind_error(e)))
    .run();
    announce(addr);
    let handle = server.handle();
    actix_web::rt::spawn(async move {
        shutdown_signal().await;
        handle.stop(true).await;
    });
    if let Err(e) = server.await {
        eprintln!("error: server failed: {e}");
        std::process::exit(1);
    }
}
