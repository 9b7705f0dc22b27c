//! The session starts when first asked for: by the extractor, a guard or a middleware
//! inside [`SessionMiddleware`] through [`SessionExt`]. Whoever asks first, every asker in
//! the request gets the same session, and what any of them changed is saved.

use actix_web::dev::Service as _;
use actix_web::http::header::{COOKIE, SET_COOKIE};
use actix_web::http::StatusCode;
use actix_web::{guard, test, web, App, HttpResponse};
use beaker_actix::{Session, SessionError, SessionExt as _, SessionMiddleware};
use beaker_core::{SessionConfig, SessionManager};
use beaker_testkit::fixtures::{cookie_pair, manager};

async fn whoami(session: Session) -> Result<String, SessionError> {
    Ok(session.get::<String>("name").await?.unwrap_or_else(|| "nobody".into()))
}

fn cookie_of<B>(res: &actix_web::dev::ServiceResponse<B>) -> Option<String> {
    res.headers().get(SET_COOKIE).map(|v| cookie_pair(v.to_str().expect("ascii")))
}

#[actix_web::test]
async fn every_asker_in_a_request_shares_the_session_and_their_writes_are_saved() {
    let m = manager();
    let app = test::init_service(
        App::new()
            // A middleware inside the session middleware asks first and writes.
            .wrap_fn(|req, srv| {
                let session = req.session().expect("inside the session middleware");
                let fut = srv.call(req);
                async move {
                    if session.get::<String>("name").await.ok().flatten().is_none() {
                        session.insert("name", "set by middleware").await.expect("insert");
                    }
                    fut.await
                }
            })
            .wrap(SessionMiddleware::new(m.clone()))
            .route("/whoami", web::get().to(whoami))
            // The guard asks too; the handler renames.
            .route(
                "/rename",
                web::get().guard(guard::fn_guard(|ctx| ctx.session().is_some())).to(|s: Session| async move {
                    let before: Option<String> = s.get("name").await?;
                    s.insert("name", &format!("renamed from {}", before.unwrap_or_default())).await?;
                    Ok::<_, SessionError>(HttpResponse::Ok().finish())
                }),
            )
            .route("/untouched", web::get().to(|| async { "hello" })),
    )
    .await;

    let res = test::call_service(&app, test::TestRequest::get().uri("/rename").to_request()).await;
    assert_eq!(res.status(), StatusCode::OK);
    let cookie = cookie_of(&res).expect("the writes set the session cookie");
    let req = test::TestRequest::get().uri("/whoami").insert_header((COOKIE, cookie.clone())).to_request();
    assert_eq!(test::call_and_read_body(&app, req).await, "renamed from set by middleware");
    // The middleware reads (and so starts) the session on every request: a read sets no cookie.
    let req = test::TestRequest::get().uri("/untouched").insert_header((COOKIE, cookie)).to_request();
    let res = test::call_service(&app, req).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(cookie_of(&res), None);
}

#[actix_web::test]
async fn an_untouched_request_sets_no_cookie_and_the_extractor_needs_the_middleware() {
    let m = manager();
    let app = test::init_service(
        App::new()
            .wrap(SessionMiddleware::new(m.clone()))
            .route("/untouched", web::get().to(|| async { "hello" }))
            .route(
                "/login",
                web::get().to(|s: Session| async move {
                    s.insert("name", "ada").await?;
                    Ok::<_, SessionError>("ok")
                }),
            ),
    )
    .await;
    let res = test::call_service(&app, test::TestRequest::get().uri("/login").to_request()).await;
    let cookie = cookie_of(&res).expect("login sets the cookie");
    let req = test::TestRequest::get().uri("/untouched").insert_header((COOKIE, cookie.as_str())).to_request();
    let res = test::call_service(&app, req).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(cookie_of(&res), None);
    // Without the middleware the extractor fails loudly.
    let bare = test::init_service(App::new().route("/whoami", web::get().to(whoami))).await;
    let req = test::TestRequest::get().uri("/whoami").insert_header((COOKIE, cookie)).to_request();
    let res = test::call_service(&bare, req).await;
    assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
}

#[actix_web::test]
async fn nested_middlewares_finish_the_session_once_with_the_innermost_manager() {
    // The outer manager names its cookie differently: a session finished by it would show.
    let outer = SessionManager::builder(
        SessionConfig::new().with_secret("another test secret, long enough").expect("secret").with_cookie_name("outer"),
    )
    .build()
    .expect("manager");
    let inner = manager();
    let count = |s: Session| async move {
        let n = s.get::<u64>("n").await?.unwrap_or(0) + 1;
        s.insert("n", &n).await?;
        Ok::<_, SessionError>(n.to_string())
    };
    let app = test::init_service(
        App::new()
            .wrap(SessionMiddleware::new(outer))
            .service(
                web::scope("/scoped").wrap(SessionMiddleware::new(inner.clone())).route("/count", web::get().to(count)),
            )
            .route("/count", web::get().to(count)),
    )
    .await;

    let res = test::call_service(&app, test::TestRequest::get().uri("/scoped/count").to_request()).await;
    assert_eq!(res.status(), StatusCode::OK);
    let set: Vec<_> = res.headers().get_all(SET_COOKIE).map(|v| v.to_str().expect("ascii").to_owned()).collect();
    assert_eq!(set.len(), 1, "one Set-Cookie, from the innermost middleware: {set:?}");
    assert!(set[0].starts_with(&format!("{}=", inner.config().key)), "{set:?}");
    let cookie = set[0].split(';').next().expect("a pair").to_owned();
    assert_eq!(test::read_body(res).await, "1");
    // Each request counts once: the session is saved once, by the middleware that serves it.
    for expected in 2..=3 {
        let req = test::TestRequest::get().uri("/scoped/count").insert_header((COOKIE, cookie.clone()));
        let res = test::call_service(&app, req.to_request()).await;
        assert_eq!(res.status(), StatusCode::OK);
        assert!(res.headers().get_all(SET_COOKIE).all(|v| !v.as_bytes().starts_with(b"outer=")));
        assert_eq!(test::read_body(res).await, expected.to_string());
    }
    // Outside the scope, the outer middleware serves its own session.
    let res = test::call_service(&app, test::TestRequest::get().uri("/count").to_request()).await;
    let set: Vec<_> = res.headers().get_all(SET_COOKIE).map(|v| v.to_str().expect("ascii").to_owned()).collect();
    assert_eq!(set.len(), 1, "{set:?}");
    assert!(set[0].starts_with("outer="), "{set:?}");
}

/// A handler that hands its request to a task of its own, which asks for the session first
/// and writes to it.
async fn spawned(req: actix_web::HttpRequest) -> HttpResponse {
    let task = actix_web::rt::spawn(async move {
        let session = req.session()?;
        session.insert("from", "spawned task").await.ok()?;
        Some(())
    });
    match task.await {
        Ok(Some(())) => HttpResponse::Ok().body("saved"),
        _ => HttpResponse::InternalServerError().body("no session"),
    }
}

#[actix_web::test]
async fn a_spawned_task_reaches_the_session_through_the_request_unless_current_task_only() {
    let m = manager();
    // current_task_only: the session is current only while the middleware polls; a
    // spawned task asking first finds none, and says so.
    let app = test::init_service(
        App::new().wrap(SessionMiddleware::new(m.clone()).current_task_only()).route("/", web::get().to(spawned)),
    )
    .await;
    let res = test::call_service(&app, test::TestRequest::get().uri("/").to_request()).await;
    assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(cookie_of(&res), None);

    let app = test::init_service(
        App::new().wrap(SessionMiddleware::new(m.clone())).route("/", web::get().to(spawned)).route(
            "/whoami",
            web::get()
                .to(|s: Session| async move { Ok::<_, SessionError>(format!("{:?}", s.get::<String>("from").await?)) }),
        ),
    )
    .await;
    let res = test::call_service(&app, test::TestRequest::get().uri("/").to_request()).await;
    assert_eq!(res.status(), StatusCode::OK);
    let cookie = cookie_of(&res).expect("the spawned task's write is saved");
    let req = test::TestRequest::get().uri("/whoami").insert_header((COOKIE, cookie)).to_request();
    assert_eq!(test::call_and_read_body(&app, req).await, "Some(\"spawned task\")");
}
