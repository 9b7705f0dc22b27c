//! [`SessionService`] over real HTTP ([`beaker_warp::serve`] on a loopback port): handlers
//! that never call `Session::finish` lose nothing, rejections and handler errors finish
//! too, an explicit `finish` under the layer does not finish twice, a failed finish is
//! the error's response, and parallel requests never see each other's session.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

use beaker_core::{CookieStore, SessionManager};
use beaker_testkit::fixtures::{config, cookie_pair, manager};
use beaker_warp::{with_session, Session, SessionError, SessionService};
use tokio::sync::oneshot;
use tower_service::Service;
use warp::http::header::{CACHE_CONTROL, COOKIE, SET_COOKIE, VARY};
use warp::http::{Request, StatusCode};
use warp::hyper::body::Bytes;
use warp::reply::Response;
use warp::{Filter, Rejection, Reply};

/// A custom rejection some route raises after writing to the session.
#[derive(Debug)]
struct Teapot;

impl warp::reject::Reject for Teapot {}

async fn teapot(rejection: Rejection) -> Result<Response, Rejection> {
    match rejection.find::<Teapot>() {
        Some(Teapot) => Ok(warp::reply::with_status("teapot", StatusCode::IM_A_TEAPOT).into_response()),
        None => Err(rejection),
    }
}

/// The routes under test; none of them calls `Session::finish` except `/explicit`.
fn routes(manager: SessionManager) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    let sessions = with_session(manager);
    // Writes `value` under `key`, and forgets to finish.
    let put =
        warp::path!("put" / String / u64).and(sessions.clone()).then(|k: String, v: u64, s: Session| async move {
            s.insert(&k, &v).await.map(|()| "stored").map_err(SessionError::from).into_response()
        });
    let get = warp::path!("get" / String).and(sessions.clone()).then(|k: String, s: Session| async move {
        match s.get::<u64>(&k).await {
            Ok(v) => v.map_or("none".to_owned(), |v| v.to_string()).into_response(),
            Err(e) => SessionError::from(e).into_response(),
        }
    });
    // The session filter after an asynchronous one (the body): it runs in a later poll.
    let incr =
        warp::path!("incr").and(warp::body::bytes()).and(sessions.clone()).then(|body: Bytes, s: Session| async move {
            tokio::task::yield_now().await;
            let n: u64 = s.get("n").await.ok().flatten().unwrap_or(0) + 1;
            s.insert("n", &n).await.expect("insert");
            s.insert("who", &String::from_utf8_lossy(&body).into_owned()).await.expect("insert");
            format!("{n}").into_response()
        });
    let who = warp::path!("who").and(sessions.clone()).then(|s: Session| async move {
        s.get::<String>("who").await.ok().flatten().unwrap_or_default().into_response()
    });
    let login = warp::path!("login").and(sessions.clone()).then(|s: Session| async move {
        s.regenerate_id().await.expect("regenerate");
        s.insert("user", "ada").await.expect("insert");
        "logged in".into_response()
    });
    let explicit = warp::path!("explicit").and(sessions.clone()).then(|s: Session| async move {
        assert!(s.is_layered());
        s.insert("explicit", &1).await.expect("insert");
        s.finish("finished by hand").await
    });
    let not_found = warp::path!("gone").and(sessions.clone()).and_then(|s: Session| async move {
        s.insert("before_404", &1).await.expect("insert");
        Err::<Response, _>(warp::reject::not_found())
    });
    let custom = warp::path!("teapot").and(sessions.clone()).and_then(|s: Session| async move {
        s.insert("before_teapot", &1).await.expect("insert");
        Err::<Response, _>(warp::reject::custom(Teapot))
    });
    let failing = warp::path!("fails").and(sessions.clone()).then(|s: Session| async move {
        s.insert("before_500", &1).await.expect("insert");
        warp::reply::with_status("handler failed", StatusCode::INTERNAL_SERVER_ERROR).into_response()
    });
    let big = warp::path!("big").and(sessions).then(|s: Session| async move {
        s.insert("big", &"x".repeat(8 * 1024)).await.expect("insert");
        "too big for a cookie".into_response()
    });
    put.or(get)
        .unify()
        .or(incr)
        .unify()
        .or(who)
        .unify()
        .or(login)
        .unify()
        .or(explicit)
        .unify()
        .or(not_found)
        .unify()
        .or(custom)
        .unify()
        .or(failing)
        .unify()
        .or(big)
        .unify()
        .recover(teapot)
        .unify()
}

/// Serves `app` on a free loopback port until the returned sender is dropped.
async fn start<S>(app: S) -> (SocketAddr, oneshot::Sender<()>)
where
    S: Service<Request<warp::hyper::body::Incoming>, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(beaker_warp::serve(listener, app, async move {
        let _ = stopped.await;
    }));
    (addr, stop)
}

async fn serve_routes(manager: SessionManager) -> (SocketAddr, oneshot::Sender<()>) {
    start(SessionService::new(warp::service(routes(manager.clone())), manager)).await
}

struct Answer {
    status: StatusCode,
    body: String,
    set_cookies: Vec<String>,
    vary: Option<String>,
    cache_control: Option<String>,
}

async fn call(http: &reqwest::Client, addr: SocketAddr, path: &str, cookie: Option<&str>) -> Answer {
    let mut req = http.post(format!("http://{addr}{path}"));
    if let Some(cookie) = cookie {
        req = req.header(COOKIE, cookie);
    }
    let res = req.send().await.expect("request");
    let header =
        |name| res.headers().get(name).map(|v: &warp::http::HeaderValue| v.to_str().expect("ascii").to_owned());
    let (vary, cache_control) = (header(VARY), header(CACHE_CONTROL));
    let set_cookies = res.headers().get_all(SET_COOKIE).iter().map(|v| v.to_str().expect("ascii").to_owned()).collect();
    let status = StatusCode::from_u16(res.status().as_u16()).expect("status");
    Answer { status, body: res.text().await.expect("body"), set_cookies, vary, cache_control }
}

#[tokio::test]
async fn a_handler_that_never_calls_finish_loses_nothing() {
    let (addr, _stop) = serve_routes(manager()).await;
    let http = reqwest::Client::new();
    let first = call(&http, addr, "/put/a/7", None).await;
    assert_eq!((first.status, first.body.as_str()), (StatusCode::OK, "stored"));
    assert_eq!(first.set_cookies.len(), 1, "the new session's cookie is sent: {:?}", first.set_cookies);
    assert_eq!(first.vary.as_deref(), Some("Cookie"), "caching headers too");
    assert!(first.cache_control.is_some_and(|cc| cc.contains("no-store") || cc.contains("private")));
    let cookie = cookie_pair(&first.set_cookies[0]);

    let second = call(&http, addr, "/put/b/8", Some(&cookie)).await;
    assert!(second.set_cookies.is_empty(), "an existing session keeps its cookie");
    for (key, want) in [("a", "7"), ("b", "8"), ("c", "none")] {
        assert_eq!(call(&http, addr, &format!("/get/{key}"), Some(&cookie)).await.body, want, "key {key}");
    }
    // An untouched route sets nothing.
    let untouched = call(&http, addr, "/nowhere", Some(&cookie)).await;
    assert_eq!(untouched.status, StatusCode::NOT_FOUND);
    assert!(untouched.set_cookies.is_empty() && untouched.vary.is_none(), "no session use, no headers");

    // A login (a new id) without `finish`: the new cookie is sent, the old one is dead.
    let login = call(&http, addr, "/login", Some(&cookie)).await;
    assert_eq!(login.set_cookies.len(), 1, "{:?}", login.set_cookies);
    let fresh = cookie_pair(&login.set_cookies[0]);
    assert_ne!(fresh, cookie);
    assert_eq!(call(&http, addr, "/get/a", Some(&fresh)).await.body, "7", "the data moved to the new id");
    assert_eq!(call(&http, addr, "/get/a", Some(&cookie)).await.body, "none", "the old id is retired");
}

#[tokio::test]
async fn an_explicit_finish_under_the_layer_finishes_once() {
    let (addr, _stop) = serve_routes(manager()).await;
    let http = reqwest::Client::new();
    let res = call(&http, addr, "/explicit", None).await;
    assert_eq!(res.body, "finished by hand");
    assert_eq!(res.set_cookies.len(), 1, "one finish, one cookie: {:?}", res.set_cookies);
    let cookie = cookie_pair(&res.set_cookies[0]);
    assert_eq!(call(&http, addr, "/get/explicit", Some(&cookie)).await.body, "1");
}

#[tokio::test]
async fn rejections_and_handler_errors_after_a_write_still_save_it() {
    let (addr, _stop) = serve_routes(manager()).await;
    let http = reqwest::Client::new();
    for (path, status, key) in [
        ("/gone", StatusCode::NOT_FOUND, "before_404"),
        ("/teapot", StatusCode::IM_A_TEAPOT, "before_teapot"),
        ("/fails", StatusCode::INTERNAL_SERVER_ERROR, "before_500"),
    ] {
        let res = call(&http, addr, path, None).await;
        assert_eq!(res.status, status, "{path}");
        assert_eq!(res.set_cookies.len(), 1, "{path}: the written session's cookie: {:?}", res.set_cookies);
        let cookie = cookie_pair(&res.set_cookies[0]);
        assert_eq!(call(&http, addr, &format!("/get/{key}"), Some(&cookie)).await.body, "1", "{path}");
    }
}

#[tokio::test]
async fn a_failed_finish_answers_with_the_session_error() {
    // Cookie-only sessions cannot hold 8 KiB: finishing fails after the handler answered.
    let cookies = SessionManager::builder(config()).cookie_store(CookieStore).build().expect("cookie manager");
    let (addr, _stop) = serve_routes(cookies).await;
    let res = call(&reqwest::Client::new(), addr, "/big", None).await;
    assert_eq!(res.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", res.body);
    assert!(res.set_cookies.is_empty(), "no cookie for a session that was not saved");
    assert_ne!(res.body, "too big for a cookie", "the handler's reply is replaced");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_requests_never_see_each_others_session() {
    const CLIENTS: usize = 16;
    const ROUNDS: u64 = 20;
    let (addr, _stop) = serve_routes(manager()).await;
    let mut clients = Vec::new();
    for c in 0..CLIENTS {
        clients.push(tokio::spawn(async move {
            let http = reqwest::Client::new();
            let mut cookie: Option<String> = None;
            for round in 1..=ROUNDS {
                let me = format!("client-{c}");
                let res = http
                    .post(format!("http://{addr}/incr"))
                    .header(COOKIE, cookie.clone().unwrap_or_default())
                    .body(me.clone())
                    .send()
                    .await
                    .expect("request");
                if let Some(set) = res.headers().get(SET_COOKIE) {
                    assert!(cookie.is_none(), "{me}: a second cookie in round {round}");
                    cookie = Some(cookie_pair(set.to_str().expect("ascii")));
                }
                assert_eq!(res.text().await.expect("body"), round.to_string(), "{me}: its own counter");
            }
            let who = http
                .post(format!("http://{addr}/who"))
                .header(COOKIE, cookie.clone().expect("a cookie"))
                .send()
                .await
                .expect("request");
            assert_eq!(who.text().await.expect("body"), format!("client-{c}"));
        }));
    }
    for client in clients {
        client.await.expect("client");
    }
}

/// A service that runs the rest of the request on a task of its own, as some tower
/// middlewares do: the layer's thread-local slot is not current there.
#[derive(Clone)]
struct Spawning<S>(S);

impl<S, B> Service<Request<B>> for Spawning<S>
where
    S: Service<Request<B>, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let mut inner = self.0.clone();
        Box::pin(async move { tokio::spawn(async move { inner.call(req).await }).await.expect("the spawned request") })
    }
}

#[tokio::test]
async fn the_session_is_found_on_another_task_through_the_request_extension() {
    let m = manager();
    let (addr, _stop) = start(SessionService::new(Spawning(warp::service(routes(m.clone()))), m.clone())).await;
    let http = reqwest::Client::new();
    let res = call(&http, addr, "/put/a/1", None).await;
    assert_eq!(res.set_cookies.len(), 1, "saved by the layer although its slot was not current");
    assert_eq!(call(&http, addr, "/get/a", Some(&cookie_pair(&res.set_cookies[0]))).await.body, "1");

    // `current_task_only` gives that up: the filter finds no layer, and a handler that
    // does not finish loses its write (the documented cost of the option).
    let (addr, _stop) =
        start(SessionService::new(Spawning(warp::service(routes(m.clone()))), m).current_task_only()).await;
    let res = call(&http, addr, "/put/a/1", None).await;
    assert!(res.set_cookies.is_empty(), "{:?}", res.set_cookies);
}
