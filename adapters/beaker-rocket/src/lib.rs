//! # beaker-rocket
//!
//! [Rocket](https://rocket.rs) integration for beaker-rs sessions: a [`SessionFairing`]
//! that owns the [`beaker_core::SessionManager`], starts each request's session when a
//! handler first asks for it and finishes it on the response, and a [`Session`] request guard.
//!
//! The fairing only translates between Rocket and the manager. When finishing fails (a
//! store outage, a session too large for its cookie) the response is replaced by the
//! error's status (503, 413 or 500) and a one-line body; see [`SessionError`].
//!
//! ## Quick start
//!
//! ```no_run
//! use beaker_core::{SessionConfig, SessionManager};
//! use beaker_rocket::{Session, SessionError, SessionFairing};
//!
//! #[rocket::get("/counter")]
//! async fn counter(session: Session) -> Result<String, SessionError> {
//!     let n: u64 = session.get("n").await?.unwrap_or(0) + 1;
//!     session.insert("n", &n).await?;
//!     Ok(n.to_string())
//! }
//!
//! #[rocket::launch]
//! fn rocket() -> _ {
//!     // BEAKER_SESSION_SECRET must be set: without a secret, `build` fails.
//!     let config = SessionConfig::from_env().expect("session config");
//!     let manager = SessionManager::builder(config).build().expect("session manager (is BEAKER_SESSION_SECRET set?)");
//!     rocket::build().attach(SessionFairing::new(manager)).mount("/", rocket::routes![counter])
//! }
//! ```
//!
//! Application state such as a cache manager travels the Rocket way, as managed state
//! (`rocket.manage(caches)`, then a `&State<CacheManager>` guard).

mod error;
mod fairing;
mod guard;

pub use error::SessionError;
pub use fairing::SessionFairing;
pub use guard::Session;

/// The request-local slot the fairing fills and the guard reads (the session starts
/// when the first guard asks for it). `None` means the fairing is not attached (the
/// guard's fallback filled the slot). Behind a mutex because Rocket wants request-local
/// data `Sync`; only the request's own guards and fairing take it, never for long.
struct Slot(Option<std::sync::Mutex<beaker_core::adapter::LazySession>>);

impl Slot {
    /// The slot, locked; a guard that panicked while holding it left nothing half-done
    /// (starting a session only fills the cell), so poisoning is ignored.
    fn lock(
        lock: &std::sync::Mutex<beaker_core::adapter::LazySession>,
    ) -> std::sync::MutexGuard<'_, beaker_core::adapter::LazySession> {
        lock.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
