//! # beaker-core
//!
//! The framework-agnostic heart of beaker-rs: sessions and caching for Rust web services in
//! the spirit of Python's Beaker.
//!
//! **Who should depend on this crate:** authors of framework adapters and of storage
//! backends, and anyone driving sessions by hand. Applications usually depend on the
//! `beaker` facade crate plus one adapter (`beaker-axum`, `beaker-actix`, `beaker-rocket`,
//! `beaker-warp`).
//!
//! This crate knows no web framework, no `http` crate and no async runtime: it takes raw
//! `Cookie` header values in and hands `Set-Cookie` header values out.
//!
//! ## The model
//!
//! - [`SessionManager`] owns the [`SessionConfig`], the [`SessionStore`] and the [`Keys`].
//!   Per request, [`SessionManager::start`] turns the `Cookie` headers into a [`Session`]
//!   (no I/O), and [`SessionManager::finish`] persists what changed and returns the
//!   `Set-Cookie` values. Adapters hold it in a [`LazySession`], which starts the session
//!   only when a handler first asks for it.
//! - [`Session`] is a lazily loaded map of string keys to serde values with per-key change
//!   tracking, flash messages, [`Session::regenerate_id`] and [`Session::invalidate`].
//! - [`SessionStore`] is the trait server-side backends implement; [`MemoryStore`] is the
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
//! ## Features
//!
//! | Name | Description | Default |
//! |---|---|---|
//! | `bincode` | the bincode 2 serializer (unmaintained upstream: opt in knowingly) | no |
//!
//! ## MSRV
//!
//! The minimum supported Rust version is 1.82; raising it is a minor-version change.

pub mod cache;
mod clock;
pub mod config;
mod cookie_store;
mod cookies;
mod error;
mod id;
mod lazy;
mod manager;
mod memory;
mod secret;
mod serializer;
mod session;
mod store;

pub use clock::{Clock, ManualClock, SystemClock};
pub use config::{CookieExpires, OnStoreError, SameSite, SessionConfig, StoreType};
pub use cookie_store::CookieStore;
pub use cookies::SetCookie;
pub use error::{BoxError, ConfigError, Error, StoreError};
pub use id::{SessionId, StoreKey};
pub use lazy::{CurrentGuard, LazySession, WithCurrent};
pub use manager::{SessionManager, SessionManagerBuilder};
pub use memory::MemoryStore;
pub use secret::{Keys, Secret};
pub use serializer::DataSerializer;
pub use session::Session;
pub use store::{Changes, Record, SessionStore};

/// Re-exported so that store implementations name the same `async_trait`.
pub use async_trait::async_trait;
