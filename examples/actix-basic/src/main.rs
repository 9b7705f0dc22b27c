//! beaker-rs on actix-web: a counter, login/logout and a typed session value. Copy and adapt.
//! Try: `BEAKER_SESSION_SECRET=$(openssl rand -hex 32) cargo run -p actix-basic`, then
//! `curl -c jar -b jar -X POST localhost:3000/counter`, `curl -c jar -b jar -d name=ada localhost:3000/login`
//! and `curl -b jar localhost:3000/`.

use actix_web::{web, App, HttpServer};
use beaker_actix::{Session, SessionError, SessionMiddleware};
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

async fn login(session: Session, user: web::Form<User>) -> Result<String, SessionError> {
    session.regenerate_id().await?; // a fresh id on login, against session fixation
    session.insert("user", &*user).await?;
    Ok(format!("logged in as {}\n", user.name))
}

async fn logout(session: Session) -> Result<&'static str, SessionError> {
    session.invalidate().await?; // deletes the record and the cookie
    Ok("logged out\n")
}

#[actix_web::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // BEAKER_SESSION_URL picks the store (memory when unset); BEAKER_SESSION_SECRET is required.
    let sessions = beaker_rs::session_manager_from_env_or("memory:").await?;
    let app = move || {
        App::new()
            .wrap(SessionMiddleware::new(sessions.clone()))
            .route("/", web::get().to(home))
            .route("/counter", web::post().to(counter))
            .route("/login", web::post().to(login))
            .route("/logout", web::post().to(logout))
    };
    let port: u16 = std::env::var("PORT").map_or(Ok(3000), |p| p.parse())?;
    HttpServer::new(app).bind(("127.0.0.1", port))?.run().await?;
    Ok(())
}
