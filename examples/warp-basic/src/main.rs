//! beaker-rs on warp: a counter, login/logout and a typed session value. Copy and adapt.
//! Try: `BEAKER_SESSION_SECRET=$(openssl rand -hex 32) cargo run -p warp-basic`, then
//! `curl -c jar -b jar -X POST localhost:3000/counter`, `curl -c jar -b jar -d name=ada localhost:3000/login`
//! and `curl -b jar localhost:3000/`.

use beaker_warp::{with_session, Session, SessionError, SessionService};
use serde::{Deserialize, Serialize};
use warp::Filter as _;

/// Who is logged in: any serde type can live in the session.
#[derive(Serialize, Deserialize)]
struct User {
    name: String,
}

async fn home(session: Session) -> Result<String, SessionError> {
    let visits: u64 = session.get("visits").await?.unwrap_or(0);
    let name = session.get::<User>("user").await?.map_or("stranger".into(), |u| u.name);
    Ok(format!("hello {name}, {visits} visits\n"))
}

async fn counter(session: Session) -> Result<String, SessionError> {
    let visits: u64 = session.get("visits").await?.unwrap_or(0) + 1;
    session.insert("visits", &visits).await?;
    Ok(format!("{visits}\n"))
}

async fn login(session: Session, user: User) -> Result<String, SessionError> {
    session.regenerate_id().await?; // a fresh id on login, against session fixation
    session.insert("user", &user).await?;
    Ok(format!("logged in as {}\n", user.name))
}

async fn logout(session: Session) -> Result<&'static str, SessionError> {
    session.invalidate().await?; // deletes the record and the cookie
    Ok("logged out\n")
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // BEAKER_SESSION_URL picks the store (memory when unset); BEAKER_SESSION_SECRET is required.
    let manager = beaker_rs::session_manager_from_env_or("memory:").await?;
    let sessions = with_session(manager.clone());
    let home = warp::get().and(warp::path::end()).and(sessions.clone()).then(home);
    let counter = warp::post().and(warp::path!("counter")).and(sessions.clone()).then(counter);
    let login = warp::post().and(warp::path!("login")).and(sessions.clone()).and(warp::body::form()).then(login);
    let logout = warp::post().and(warp::path!("logout")).and(sessions).then(logout);
    // Saves each request's session and sends its cookie after the reply, whatever the route did.
    let app = SessionService::new(warp::service(home.or(counter).or(login).or(logout)), manager);
    let port: u16 = std::env::var("PORT").map_or(Ok(3000), |p| p.parse())?;
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    beaker_warp::serve(listener, app, std::future::pending()).await;
    Ok(())
}
