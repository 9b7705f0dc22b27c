//! beaker-rs on axum: a counter, login/logout and a typed session value. Copy and adapt.
//! Try: `BEAKER_SESSION_SECRET=$(openssl rand -hex 32) cargo run -p axum-basic`, then
//! `curl -c jar -b jar -X POST localhost:3000/counter`, `curl -c jar -b jar -d name=ada localhost:3000/login`
//! and `curl -b jar localhost:3000/`.

use axum::routing::{get, post};
use axum::{Form, Router};
use beaker_axum::{Session, SessionError, SessionLayer};
use serde::{Deserialize, Serialize};

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

async fn login(session: Session, Form(user): Form<User>) -> Result<String, SessionError> {
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
    let sessions = beaker_rs::session_manager_from_env_or("memory:").await?;
    let app = Router::new()
        .route("/", get(home))
        .route("/counter", post(counter))
        .route("/login", post(login))
        .route("/logout", post(logout))
        .layer(SessionLayer::new(sessions));
    let port = std::env::var("PORT").unwrap_or_else(|_| "3000".into());
    axum::serve(tokio::net::TcpListener::bind(format!("127.0.0.1:{port}")).await?, app).await?;
    Ok(())
}
