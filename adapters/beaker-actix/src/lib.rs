//! # beaker-actix
//!
//! [actix-web](https://docs.rs/actix-web) integration for beaker-rs sessions: a
//! [`SessionMiddleware`] that starts each request's session and finishes it after the
//! handler, a [`Session`] extractor, and [`SessionExt`] to reach the session from a
//! request, a `ServiceRequest` or a guard.
//!
//! The middleware only translates between actix-web and [`beaker_core::SessionManager`].
//! When finishing fails (a store outage, a session too large for its cookie) the response
//! is replaced by the error's status (503, 413 or 500) and a one-line body; see
//! [`SessionError`].
//!
//! ## Quick start
//!
//! ```no_run
//! use actix_web::{web, App, HttpServer};
//! use beaker_actix::{Session, SessionError, SessionMiddleware};
//! use beaker_core::{SessionConfig, SessionManager};
//!
//! async fn counter(session: Session) -> Result<String, SessionError> {
//!     let n: u64 = session.get("n").await?.unwrap_or(0) + 1;
//!     session.insert("n", &n).await?;
//!     Ok(n.to_string())
//! }
//!
//! #[actix_web::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     // BEAKER_SESSION_SECRET must be set: without a secret, `build` fails.
//!     let manager = SessionManager::builder(SessionConfig::from_env()?).build()?;
//!     let app = move || App::new().wrap(SessionMiddleware::new(manager.clone())).route("/counter", web::get().to(counter));
//!     HttpServer::new(app).bind("127.0.0.1:3000")?.run().await?;
//!     Ok(())
//! }
//! ```
//!
//! Application state such as a cache manager travels the actix way, as
//! [`web::Data`](actix_web::web::Data); the middleware does not need to know about it.

mod error;
mod extract;
mod middleware;

pub use error::SessionError;
pub use extract::{Session, SessionExt};
pub use middleware::{SessionFuture, SessionMiddleware, SessionMiddlewareService};
