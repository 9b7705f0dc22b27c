//! # beaker-axum
//!
//! [axum](https://docs.rs/axum) integration for beaker-rs sessions: a tower
//! [`SessionLayer`] that starts each request's session and finishes it after the handler,
//! and a [`Session`] extractor.
//!
//! The layer only translates between axum and [`beaker_core::SessionManager`]: it reads the
//! `Cookie` headers, makes the lazily loaded session current while the inner service runs
//! (where the extractor finds it), and after the handler appends the `Set-Cookie` values
//! the manager returns. When finishing fails
//! (a store outage, a session too large for its cookie) the response is replaced by the
//! error's status (503, 413 or 500) and a one-line body; see [`SessionError`].
//!
//! ## Quick start
//!
//! ```
//! use axum::{routing::get, Router};
//! use beaker_axum::{Session, SessionError, SessionLayer};
//! use beaker_core::{SessionConfig, SessionManager};
//!
//! async fn counter(session: Session) -> Result<String, SessionError> {
//!     let n: u64 = session.get("n").await?.unwrap_or(0) + 1;
//!     session.insert("n", &n).await?;
//!     Ok(n.to_string())
//! }
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // BEAKER_SESSION_SECRET must be set: without a secret, `build` fails.
//! let config = SessionConfig::from_env()?;
//! # let config = config.with_secret("a secret for this doc test only")?;
//! let manager = SessionManager::builder(config).build()?;
//! let app: Router = Router::new().route("/counter", get(counter)).layer(SessionLayer::new(manager));
//! # Ok(()) }
//! ```
//!
//! `Router::layer` wraps every route in its own [`SessionService`]. To wrap the whole
//! router once instead (one service and one boxed future fewer per request), serve
//! `SessionService::new(router, manager)`:
//!
//! ```
//! # use axum::{routing::get, Router};
//! # use beaker_axum::SessionService;
//! # use beaker_core::{SessionConfig, SessionManager};
//! # async fn run(listener: tokio::net::TcpListener) -> Result<(), Box<dyn std::error::Error>> {
//! # let manager = SessionManager::builder(SessionConfig::new().with_secret("a secret for this doc test only")?).build()?;
//! let router = Router::new().route("/", get(|| async { "hello" }));
//! let app = SessionService::new(router, manager);
//! axum::serve(listener, axum::ServiceExt::<axum::extract::Request>::into_make_service(app)).await?;
//! # Ok(()) }
//! ```
//!
//! A request whose handler never touches its session costs no store call, no cookie
//! parsing and no boxed future.
//!
//! Application state such as a cache manager travels the axum way, with
//! [`State`](axum::extract::State) or [`Extension`](axum::Extension); the layer does not
//! need to know about it.

mod error;
mod extract;
mod scope;
mod service;

pub use error::SessionError;
pub use extract::Session;
pub use service::{Axum, ResponseFuture, SessionLayer, SessionService};
