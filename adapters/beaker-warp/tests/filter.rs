//! The filter and `Session::finish` through `warp::test`: cookies set only on writes,
//! sessions found again from their cookie (over several `Cookie` lines too).

use beaker_testkit::fixtures::manager;
use beaker_warp::{with_session, Session, SessionError};
use warp::http::header::{CONTENT_TYPE, SET_COOKIE};
use warp::http::Response;
use warp::hyper::body::Bytes;
use warp::Filter;

async fn counter(session: &Session) -> Result<String, SessionError> {
    let n: u64 = session.get("n").await?.unwrap_or(0) + 1;
    session.insert("n", &n).await?;
    Ok(n.to_string())
}

async fn read(session: &Session) -> Result<String, SessionError> {
    Ok(session.get::<u64>("n").await?.map_or("none".into(), |n| n.to_string()))
}

fn set_cookies(res: &Response<Bytes>) -> Vec<String> {
    res.headers().get_all(SET_COOKIE).iter().map(|v| v.to_str().expect("visible ASCII").to_owned()).collect()
}

#[tokio::test]
async fn a_write_sets_the_cookie_that_finds_the_session_again() {
    let sessions = with_session(manager());
    let counter = warp::path!("counter")
        .and(sessions.clone())
        .then(|s: Session| async move { s.finish(counter(&s).await).await });
    let read = warp::path!("read").and(sessions).then(|s: Session| async move { s.finish(read(&s).await).await });
    let routes = counter.or(read);

    let first = warp::test::request().path("/counter").reply(&routes).await;
    let cookies = set_cookies(&first);
    assert_eq!(first.body(), "1");
    assert_eq!(first.headers()[CONTENT_TYPE], "text/plain; charset=utf-8");
    assert_eq!(cookies.len(), 1, "{cookies:?}");
    assert!(cookies[0].starts_with("beaker.session.id="), "{cookies:?}");
    let pair = cookies[0].split(';').next().expect("name=value").to_owned();

    // Two Cookie lines, ours second: still found; a read writes nothing.
    let mut request = warp::test::request().path("/read");
    request = request.header("cookie", "theme=dark").header("cookie", pair.as_str());
    let read = request.reply(&routes).await;
    assert!(set_cookies(&read).is_empty());
    assert_eq!(read.body(), "1");

    let second = warp::test::request().path("/counter").header("cookie", pair.as_str()).reply(&routes).await;
    assert!(set_cookies(&second).is_empty(), "an existing session keeps its cookie");
    assert_eq!(second.body(), "2");
}

#[tokio::test]
async fn untouched_sessions_set_no_cookie() {
    let routes = with_session(manager()).then(|s: Session| async move { s.finish("untouched").await });
    let res = warp::test::request().path("/").header("cookie", "beaker.session.id=forged").reply(&routes).await;
    assert_eq!(res.body(), "untouched");
    assert!(set_cookies(&res).is_empty());
}
