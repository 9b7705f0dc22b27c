//! How the `Session` extractor finds its request's session: through the layer's
//! current-session slot while the layer runs the inner service, or through the request
//! extensions (the default; `current_task_only` turns them off). What must hold: every extractor under the
//! layer sees its own request's session, interleaved requests on one thread never see each
//! other's, and nothing is left behind for a later request (not even after a panic).

use axum::body::Body;
use axum::extract::Request;
use axum::middleware::{from_fn, Next};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use beaker_axum::{Session, SessionError, SessionLayer, SessionService};
use beaker_testkit::fixtures::manager;
use http::header::{COOKIE, SET_COOKIE};
use http::StatusCode;
use tower::ServiceExt as _;

/// `/login/{name}` stores `name`; `/whoami` answers it (or `nobody`).
fn routes() -> Router {
    async fn login(
        session: Session,
        axum::extract::Path(name): axum::extract::Path<String>,
    ) -> Result<String, SessionError> {
        session.insert("name", &name).await?;
        Ok(name)
    }
    async fn whoami(session: Session) -> Result<String, SessionError> {
        Ok(session.get::<String>("name").await?.unwrap_or_else(|| "nobody".into()))
    }
    Router::new().route("/login/{name}", get(login)).route("/whoami", get(whoami))
}

async fn send<S>(service: S, path: &str, cookie: Option<&str>) -> (StatusCode, Option<String>, String)
where
    S: tower::Service<Request, Response = Response, Error = std::convert::Infallible>,
{
    let mut req = Request::builder().uri(path);
    if let Some(c) = cookie {
        req = req.header(COOKIE, c);
    }
    let res = service.oneshot(req.body(Body::empty()).expect("request")).await.expect("infallible");
    let status = res.status();
    let cookie =
        res.headers().get(SET_COOKIE).map(|v| v.to_str().expect("ascii").split(';').next().unwrap().to_owned());
    let body = axum::body::to_bytes(res.into_body(), 1 << 16).await.expect("body");
    (status, cookie, String::from_utf8(body.to_vec()).expect("utf-8"))
}

async fn login<S>(service: S, name: &str) -> String
where
    S: tower::Service<Request, Response = Response, Error = std::convert::Infallible>,
{
    let (status, cookie, body) = send(service, &format!("/login/{name}"), None).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, name));
    cookie.expect("a login sets the session cookie")
}

#[tokio::test]
async fn handlers_and_middleware_inside_the_layer_share_the_session() {
    // A middleware inside the layer reads what the handler wrote in an earlier request,
    // and its own write is saved with the handler's.
    async fn stamp(session: Session, req: Request, next: Next) -> Result<Response, SessionError> {
        let seen = session.get::<String>("name").await?;
        session.insert("seen_by_middleware", &seen).await?;
        Ok(next.run(req).await)
    }
    let m = manager();
    let wrapped = SessionService::new(routes().layer(from_fn(stamp)), m.clone());
    let layered = routes().layer(from_fn(stamp)).layer(SessionLayer::new(m.clone()));
    for app in [wrapped.boxed_clone(), tower::util::BoxCloneService::new(layered)] {
        let cookie = login(app.clone(), "ada").await;
        let (status, _, body) = send(app.clone(), "/whoami", Some(&cookie)).await;
        assert_eq!((status, body.as_str()), (StatusCode::OK, "ada"));
    }
    let session = m.start([login(SessionService::new(routes().layer(from_fn(stamp)), m.clone()), "bo").await.as_str()]);
    assert_eq!(session.get::<Option<String>>("seen_by_middleware").await.unwrap(), Some(None));
}

#[tokio::test(flavor = "current_thread")]
async fn interleaved_requests_on_one_thread_each_see_their_own_session() {
    // Each request yields before its handler extracts the session, so the two futures'
    // polls alternate on this one thread: a slot that is not swapped per poll would hand
    // one request the other's session (or none).
    async fn yield_first(req: Request, next: Next) -> Response {
        for _ in 0..3 {
            tokio::task::yield_now().await;
        }
        next.run(req).await
    }
    let app = SessionService::new(routes().layer(from_fn(yield_first)), manager()).current_task_only();
    let (ada, bo) = (login(app.clone(), "ada").await, login(app.clone(), "bo").await);
    for _ in 0..5 {
        let (a, b, none) = tokio::join!(
            send(app.clone(), "/whoami", Some(&ada)),
            send(app.clone(), "/whoami", Some(&bo)),
            send(app.clone(), "/whoami", None)
        );
        assert_eq!(a.2, "ada");
        assert_eq!(b.2, "bo");
        assert_eq!(none.2, "nobody");
    }
}

#[tokio::test(flavor = "current_thread")]
async fn no_session_outlives_its_request_on_the_thread_even_after_a_panic() {
    async fn boom(session: Session) -> &'static str {
        let _ = session.get::<String>("name").await;
        panic!("handler panics on purpose")
    }
    let m = manager();
    let app = SessionService::new(routes().route("/boom", get(boom)), m.clone()).current_task_only();
    let ada = login(app.clone(), "ada").await;
    let (app2, ada2) = (app.clone(), ada.clone());
    let panicked = tokio::spawn(async move { send(app2, "/boom", Some(&ada2)).await }).await;
    assert!(panicked.expect_err("the handler panicked").is_panic());
    // Same thread, a router without the layer: the extractor must find nothing.
    let (status, _, body) = send(routes(), "/whoami", Some(&ada)).await;
    assert_eq!((status, body.as_str()), (StatusCode::INTERNAL_SERVER_ERROR, "session layer missing"));
    // And the layer still works.
    assert_eq!(send(app, "/whoami", Some(&ada)).await.2, "ada");
}

#[tokio::test]
async fn another_task_finds_the_session_in_the_request_extension_by_default() {
    // A middleware that runs the rest of the request on a task of its own.
    async fn on_own_task(req: Request, next: Next) -> Response {
        tokio::spawn(next.run(req)).await.expect("the request task")
    }
    // Reads the session from the extensions and tags the answer with the name it holds.
    async fn read_extension(req: Request, next: Next) -> Result<Response, SessionError> {
        let session = req.extensions().get::<beaker_core::Session>().cloned().ok_or(SessionError::MissingLayer)?;
        let name = session.get::<String>("name").await?.unwrap_or_default();
        let mut res = next.run(req).await;
        res.headers_mut().insert("x-name", http::HeaderValue::from_str(&name).expect("ascii"));
        Ok(res)
    }
    let m = manager();
    let ada = login(SessionService::new(routes(), m.clone()), "ada").await;

    let plain = routes().layer(from_fn(on_own_task)).layer(SessionLayer::new(m.clone()).current_task_only());
    let (status, _, body) = send(plain, "/whoami", Some(&ada)).await;
    assert_eq!((status, body.as_str()), (StatusCode::INTERNAL_SERVER_ERROR, "session layer missing"));

    let with_extension =
        routes().route_layer(from_fn(read_extension)).layer(from_fn(on_own_task)).layer(SessionLayer::new(m.clone()));
    assert_eq!(send(with_extension.clone(), "/whoami", Some(&ada)).await.2, "ada");
    let req = Request::builder().uri("/whoami").header(COOKIE, &ada).body(Body::empty()).expect("request");
    let res = with_extension.clone().oneshot(req).await.expect("infallible");
    assert_eq!(res.headers().get("x-name").map(|v| v.as_bytes()), Some(&b"ada"[..]));
    // Writes made on the other task are saved like any others.
    let bo = login(with_extension.clone(), "bo").await;
    assert_eq!(send(SessionService::new(routes(), m.clone()), "/whoami", Some(&bo)).await.2, "bo");
}
