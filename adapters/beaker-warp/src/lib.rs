//! # beaker-warp
//!
//! [warp](https://docs.rs/warp) integration for beaker-rs sessions: the
//! [`with_session`] filter yields the request's [`Session`], and a [`SessionService`]
//! around the routes finishes it after every reply: the session is saved and its
//! `Set-Cookie` and caching headers go out whatever path the request took (a handler's
//! reply, an error, a rejection), without the handler doing anything.
//!
//! warp's filters cannot run code around the rest of the request, and `warp::serve`
//! takes only filters, so the layer is a tower layer around `warp::service(routes)`
//! ([`SessionService::new`]) and [`serve`] runs it on hyper as `warp::serve` would.
//!
//! When finishing fails (a store outage, a session too large for its cookie) the reply is
//! replaced by the error's status (503, 413 or 500) and a one-line body; see
//! [`SessionError`].
//!
//! ## Quick start
//!
//! ```no_run
//! use beaker_core::{SessionConfig, SessionManager};
//! use beaker_warp::{with_session, Session, SessionError, SessionService};
//! use warp::Filter as _;
//!
//! async fn counter(session: Session) -> Result<String, SessionError> {
//!     let n: u64 = session.get("n").await?.unwrap_or(0) + 1;
//!     session.insert("n", &n).await?;
//!     Ok(n.to_string())
//! }
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! // BEAKER_SESSION_SECRET must be set: without a secret, `build` fails.
//! let manager = SessionManager::builder(SessionConfig::from_env()?).build()?;
//! let routes = warp::path!("counter").and(with_session(manager.clone())).then(counter);
//! let app = SessionService::new(warp::service(routes), manager);
//! let listener = tokio::net::TcpListener::bind(("127.0.0.1", 3000)).await?;
//! beaker_warp::serve(listener, app, std::future::pending()).await;
//! # Ok(()) }
//! ```
//!
//! ## Without the layer
//!
//! Apps served by `warp::serve` itself have no layer: there, [`with_session`] starts the
//! session from its manager and the handler must end every path out with
//! [`Session::finish`], which saves the session and adds its headers to the reply. A
//! handler that forgets it loses that request's session changes. Under a layer the same
//! call only converts the reply (the layer finishes, once), so routes written this way
//! work in both setups.
//!
//! `warp::test::request().reply(&routes)` runs the filters alone, without the service:
//! test an app built on the service through it (its `call`, or over HTTP with [`serve`]
//! on a loopback port), or its cookies and saved changes are not there to see.
//!
//! Application state such as a cache manager travels as a filter value: see
//! [`with_state`].

mod error;
mod filter;
mod layer;
mod serve;
mod session;

pub use error::SessionError;
pub use filter::{with_session, with_state};
pub use layer::{ResponseFuture, SessionLayer, SessionService, Warp};
pub use serve::serve;
pub use session::Session;
