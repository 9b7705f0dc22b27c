//! beaker-rs on Rocket: a counter, login/logout and a typed session value. Copy and adapt.
//! Try: `BEAKER_SESSION_SECRET=$(openssl rand -hex 32) cargo run -p rocket-basic`, then
//! `curl -c jar -b jar -X POST localhost:3000/counter`, `curl -c jar -b jar -d name=ada localhost:3000/login`
//! and `curl -b jar localhost:3000/`.

use beaker_rocket::{Session, SessionError, SessionFairing};
use rocket::form::{Form, FromForm};
use serde::{Deserialize, Serialize};

/// Who is logged in: any serde type can live in the session.
#[derive(Serialize, Deserialize, FromForm)]
struct User {
    name: String,
}

#[rocket::get("/")]
async fn home(session: Session) -> Result<String, SessionError> {
    let visits: u64 = session.get("visits").await?.unwrap_or(0);
    let name = session.get::<User>("user").await?.map_or("stranger".into(), |u| u.name);
    Ok(format!("hello {name}, {visits} visits\n"))
}

#[rocket::post("/counter")]
async fn counter(session: Session) -> Result<String, SessionError> {
    let visits: u64 = session.get("visits").await?.unwrap_or(0) + 1;
    session.insert("visits", &visits).await?;
    Ok(format!("{visits}\n"))
}

#[rocket::post("/login", data = "<user>")]
async fn login(session: Session, user: Form<User>) -> Result<String, SessionError> {
    session.regenerate_id().await?; // a fresh id on login, against session fixation
    session.insert("user", &*user).await?;
    Ok(format!("logged in as {}\n", user.name))
}

#[rocket::post("/logout")]
async fn logout(session: Session) -> Result<&'static str, SessionError> {
    session.invalidate().await?; // deletes the record and the cookie
    Ok("logged out\n")
}

#[rocket::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // BEAKER_SESSION_URL picks the store (memory when unset); BEAKER_SESSION_SECRET is required.
    let sessions = beaker_rs::session_manager_from_env_or("memory:").await?;
    let port: u16 = std::env::var("PORT").map_or(Ok(3000), |p| p.parse())?;
    let config = rocket::Config::figment().merge(("port", port));
    let routes = rocket::routes![home, counter, login, logout];
    let _ = rocket::custom(config).attach(SessionFairing::new(sessions)).mount("/", routes).launch().await?;
    Ok(())
}
