//! # beaker-warp
//!
//! [warp](https://docs.rs/warp) integration for beaker-rs sessions: the
//! [`with_session`] filter yields the request's [`Session`], and
//! [`Session::finish`] completes it on the way out, turning any reply into a response
//! that carries the `Set-Cookie` headers.
//!
//! Both are ordinary filters and functions, so they compose with any other filter. A
//! handler that forgets to call `finish` loses that request's session changes (warp has
//! no response hook a filter could install), so call it on every path out of a handler.
//!
//! When finishing fails (a store outage, a session too large for its cookie) the reply is
//! replaced by the error's status (503, 413 or 500) and a one-line body; see
//! [`SessionError`].
//!
//! ## Quick start
//!
//! ```no_run
//! use beaker_core::{SessionConfig, SessionManager};
//! use beaker_warp::{with_session, Session, SessionError};
//! use warp::Filter as _;
//!
//! async fn counter(session: &Session) -> Result<String, SessionError> {
//!     let n: u64 = session.get("n").await?.unwrap_or(0) + 1;
//!     session.insert("n", &n).await?;
//!     Ok(n.to_string())
//! }
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! // BEAKER_SESSION_SECRET must be set: without a secret, `build` fails.
//! let manager = SessionManager::builder(SessionConfig::from_env()?).build()?;
//! let routes = warp::path!("counter")
//!     .and(with_session(manager))
//!     .then(|session: Session| async move { session.finish(counter(&session).await).await });
//! warp::serve(routes).run(([127, 0, 0, 1], 3000)).await;
//! # Ok(()) }
//! ```
//!
//! Application state such as a cache manager travels as a filter value: see
//! [`with_state`].

mod error;
mod filter;
mod session;

pub use error::SessionError;
pub use filter::{with_session, with_state};
pub use session::Session;
