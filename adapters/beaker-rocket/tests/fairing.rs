//! The fairing and the guard through rocket's local client: cookies set only on writes,
//! sessions found again from their cookie, and a clear 500 without the fairing.

use beaker_rocket::{Session, SessionError, SessionFairing};
use beaker_testkit::fixtures::{cookie_pair, manager};
use rocket::config::LogLevel;
use rocket::http::{Header, Status};
use rocket::local::asynchronous::{Client, LocalResponse};
use rocket::{Build, Config, Rocket};

#[rocket::get("/counter")]
async fn counter(session: Session) -> Result<String, SessionError> {
    let n: u64 = session.get("n").await?.unwrap_or(0) + 1;
    session.insert("n", &n).await?;
    Ok(n.to_string())
}

#[rocket::get("/read")]
async fn read(session: Session) -> Result<String, SessionError> {
    Ok(session.get::<u64>("n").await?.map_or("none".into(), |n| n.to_string()))
}

/// Two guards in one request: the second finds the session the first started.
#[rocket::get("/twice")]
async fn twice(writer: Session, reader: Session) -> Result<String, SessionError> {
    writer.insert("n", &5u64).await?;
    Ok(reader.get::<u64>("n").await?.map_or("none".into(), |n| n.to_string()))
}

#[rocket::get("/plain")]
fn plain() -> &'static str {
    "plain"
}

fn rocket(with_fairing: bool) -> Rocket<Build> {
    let config = Config { log_level: LogLevel::Off, ..Config::debug_default() };
    let rocket = rocket::custom(config).mount("/", rocket::routes![counter, read, twice, plain]);
    if with_fairing {
        rocket.attach(SessionFairing::new(manager()))
    } else {
        rocket
    }
}

fn set_cookies(res: &LocalResponse<'_>) -> Vec<String> {
    res.headers().get("Set-Cookie").map(str::to_owned).collect()
}

#[rocket::async_test]
async fn a_write_sets_the_cookie_that_finds_the_session_again() {
    let client = Client::untracked(rocket(true)).await.expect("a client");
    let first = client.get("/counter").dispatch().await;
    let cookies = set_cookies(&first);
    assert_eq!(first.into_string().await.as_deref(), Some("1"));
    assert_eq!(cookies.len(), 1, "{cookies:?}");
    assert!(cookies[0].starts_with("beaker.session.id="), "{cookies:?}");
    let pair = cookie_pair(&cookies[0]);

    // Two Cookie lines, ours second: still found; a read writes nothing.
    let read =
        client.get("/read").header(Header::new("Cookie", "theme=dark")).header(Header::new("Cookie", pair.clone()));
    let read = read.dispatch().await;
    assert!(set_cookies(&read).is_empty());
    assert_eq!(read.into_string().await.as_deref(), Some("1"));

    let second = client.get("/counter").header(Header::new("Cookie", pair)).dispatch().await;
    assert!(set_cookies(&second).is_empty(), "an existing session keeps its cookie");
    assert_eq!(second.into_string().await.as_deref(), Some("2"));
}

#[rocket::async_test]
async fn every_guard_of_a_request_shares_one_session() {
    let client = Client::untracked(rocket(true)).await.expect("a client");
    let res = client.get("/twice").dispatch().await;
    let cookie = cookie_pair(set_cookies(&res).first().expect("the write set a cookie"));
    assert_eq!(res.into_string().await.as_deref(), Some("5"));
    let read = client.get("/read").header(Header::new("Cookie", cookie)).dispatch().await;
    assert_eq!(read.into_string().await.as_deref(), Some("5"));
}

#[rocket::async_test]
async fn untouched_requests_and_unknown_routes_set_no_cookie() {
    let client = Client::untracked(rocket(true)).await.expect("a client");
    for (path, status) in [("/plain", Status::Ok), ("/read", Status::Ok), ("/nowhere", Status::NotFound)] {
        let res = client.get(path).header(Header::new("Cookie", "beaker.session.id=forged")).dispatch().await;
        assert_eq!(res.status(), status, "{path}");
        assert!(set_cookies(&res).is_empty(), "{path}");
    }
}

#[rocket::async_test]
async fn the_guard_without_the_fairing_is_a_500() {
    let client = Client::untracked(rocket(false)).await.expect("a client");
    let res = client.get("/counter").dispatch().await;
    assert_eq!(res.status(), Status::InternalServerError);
    assert!(set_cookies(&res).is_empty());
}
