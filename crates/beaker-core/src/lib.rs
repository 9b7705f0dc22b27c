//! # beaker-core
//!
//! The framework-agnostic heart of beaker-rs: sessions and caching for Rust web services in
//! the spirit of Python's Beaker.
//!
//! **Who should depend on this crate:** authors of framework adapters and of storage
//! backends, and anyone driving sessions by hand. Applications usually depend on the
//! `beaker-rs` facade crate plus one adapter (`beaker-axum`, `beaker-actix`, `beaker-rocket`,
//! `beaker-warp`).
//!
//! This crate knows no web framework, no `http` crate and no async runtime: it takes raw
//! `Cookie` header values in and hands `Set-Cookie` header values out.
//!
//! ## The model
//!
//! - [`SessionManager`] owns the [`SessionConfig`], the [`SessionStore`](store::SessionStore)
//!   and the key material derived from the configured [`Secret`]s.
//!   Per request, [`SessionManager::start`] turns the `Cookie` headers into a [`Session`]
//!   (no I/O), and [`SessionManager::finish`] persists what changed and returns the
//!   `Set-Cookie` values with the caching headers the response needs ([`Finished`],
//!   [`CacheDirectives`]). Adapters hold it in a [`LazySession`](adapter::LazySession), which starts the session
//!   only when a handler first asks for it.
//! - [`Session`] is a lazily loaded map of string keys to serde values with per-key change
//!   tracking, flash messages, [`Session::regenerate_id`] and [`Session::invalidate`].
//! - [`SessionStore`](store::SessionStore) is the trait server-side backends implement; [`MemoryStore`] is the
//!   in-process one, [`CookieStore`] keeps whole sessions in encrypted cookies.
//!
//! ```
//! use beaker_core::{MemoryStore, SessionConfig, SessionManager};
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let config = SessionConfig::new().with_secret("change me: at least 16 bytes")?;
//! let manager = SessionManager::builder(config).store(MemoryStore::new()).build()?;
//! let session = manager.start(["theme=dark"]);
//! session.insert("cart", &vec!["tea", "scones"]).await?;
//! let set_cookie = manager.finish(&session).await?;
//! assert!(set_cookie[0].as_str().starts_with("beaker.session.id="));
//! # Ok(()) }
//! ```
//!
//! ## Modules by audience
//!
//! - The crate root: what applications use ([`Session`], [`SessionManager`],
//!   [`SessionConfig`], the errors, the built-in [`MemoryStore`] and [`CookieStore`]).
//! - [`adapter`]: what framework adapter authors need ([`LazySession`](adapter::LazySession)
//!   and the current-request machinery).
//! - [`store`]: what store authors need (the [`SessionStore`](store::SessionStore) trait,
//!   [`Record`](store::Record), [`Changes`](store::Changes), [`StoreKey`](store::StoreKey)).
//! - [`cache`] and [`config`]: the cache manager and the typed configuration.
//! - [`compat`]: Python Beaker 1.14's formats (signed id cookie, session payload, pickle),
//!   for sharing sessions with a running Beaker application.
//!
//! ## Metrics
//!
//! Managers and cache regions count what they do through the [`metrics`](https://docs.rs/metrics)
//! facade, labelled with the store (and region): `beaker_sessions_created_total`,
//! `beaker_sessions_loaded_total`, `beaker_sessions_saved_total`, `beaker_sessions_ended_total`,
//! `beaker_session_cookies_rejected_total`, `beaker_session_store_errors_total` (label `op`),
//! `beaker_cache_hits_total`, `beaker_cache_misses_total`, `beaker_cache_creations_total`,
//! `beaker_cache_stale_serves_total`, `beaker_cache_lock_waits_total`,
//! `beaker_cache_errors_total`. No exporter is included: install a recorder (before
//! building the managers, which register their counters when built); without one, counting
//! is a no-op. The repository's `docs/metrics.md` says what each counts.
//!
//! ## Features
//!
//! | Name | Description | Default |
//! |---|---|---|
//! | `bincode` | the bincode 2 serializer (unmaintained upstream: opt in knowingly) | no |
//!
//! ## MSRV
//!
//! The minimum supported Rust version is 1.89, as for every beaker-rs crate; raising it is
//! a minor-version change.

#![cfg_attr(docsrs, feature(doc_cfg))]

mod adapter_finish;
mod backend;
pub mod cache;
mod cache_headers;
mod clock;
pub mod compat;
pub mod config;
mod cookie_store;
mod cookies;
mod error;
mod finish;
mod id;
mod lazy;
mod manager;
mod memory;
mod memory_index;
mod principal;
mod secret;
mod serializer;
mod session;
mod state;
mod telemetry;

pub mod store;

pub use cache_headers::{CacheDirectives, Finished};
pub use clock::{Clock, ManualClock, SystemClock};
pub use compat::Compat;
pub use config::{CacheHeaders, CookieExpires, OnStoreError, SameSite, SessionConfig, StoreType};
pub use cookie_store::CookieStore;
pub use cookies::SetCookie;
pub use error::{BoxError, ConfigError, Error, StoreError};
pub use id::{SessionHandle, SessionId};
pub use manager::{SessionManager, SessionManagerBuilder};
pub use memory::MemoryStore;
pub use principal::SessionInfo;
pub use secret::Secret;
pub use serializer::DataSerializer;
pub use session::Session;

/// What framework adapters need: the per-request slot that starts a session on first use
/// and the current-request machinery that lets extractors find it. Applications never
/// name these; they use an adapter crate.
pub mod adapter {
    pub use crate::adapter_finish::{FinishFuture, Finisher};
    pub use crate::cache_headers::{ResponseHeader, ResponseHeaders};
    pub use crate::lazy::{CurrentGuard, LazySession, WithCurrent};
}

/// Not public API: key material, for this workspace's tests and fuzz targets only.
#[doc(hidden)]
pub mod __private {
    pub use crate::secret::Keys;
}
