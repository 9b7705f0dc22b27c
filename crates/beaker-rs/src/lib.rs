//! # beaker-rs
//!
//! Sessions and caching for Rust web services, in the spirit of Python's Beaker: one
//! framework-agnostic core, thin adapters for axum, actix-web, rocket and warp, and stores
//! from an in-process map to Redis Cluster.
//!
//! This facade re-exports [`beaker_core`] and turns configuration into a ready
//! [`SessionManager`]: it is the one crate that knows every backend (behind features), so
//! `BEAKER_SESSION_URL=redis://…` in the environment is all it takes to switch stores.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), beaker_rs::Error> {
//! let config = beaker_rs::SessionConfig::new().with_secret("at least sixteen bytes of secret")?.with_url("memory:");
//! let sessions = beaker_rs::session_manager(config).await?;
//! let session = sessions.start(std::iter::empty::<&str>());
//! session.insert("user", "ada").await?;
//! assert_eq!(sessions.finish(&session).await?.len(), 1);
//! # Ok(()) }
//! ```
//!
//! ## Features
//!
//! | Name | Description | Default |
//! |---|---|---|
//! | `file` | file-system store (`file:///var/lib/app/sessions`) | no |
//! | `sqlite` | SQLite store (`sqlite:sessions.sqlite3`) | no |
//! | `postgres` | PostgreSQL store (`postgres://…`) | no |
//! | `mysql` | MySQL / MariaDB store (`mysql://…`) | no |
//! | `redis` | Redis, Redis Cluster, Sentinel (`redis://…`, `redis+cluster://…`) | no |
//! | `memcached` | Memcached (`memcached://h1:11211,h2:11211`) | no |
//! | `all-stores` | all of the above | no |
//! | `bincode` | the bincode 2 serializer | no |
//! | `macros` | `#[beaker_rs::cached(region = "…", crate = "::beaker_rs")]` memoisation | no |
//!
//! Memory and cookie-only sessions need no feature.

pub use beaker_core::*;
#[cfg(feature = "macros")]
pub use beaker_macros::cached;

/// The file-system store, for options the URL cannot carry (feature `file`).
#[cfg(feature = "file")]
pub use beaker_file as file;
/// The Memcached store and cache backend (feature `memcached`).
#[cfg(feature = "memcached")]
pub use beaker_memcached as memcached;
/// The Redis store and cache backend (feature `redis`).
#[cfg(feature = "redis")]
pub use beaker_redis as redis;
/// The SQL stores and cache backend (features `sqlite`, `postgres`, `mysql`).
#[cfg(any(feature = "sqlite", feature = "postgres", feature = "mysql"))]
pub use beaker_sql as sql;

mod build;
mod cache_build;

pub use build::{
    insecure_demo_session_manager_from_env_or, session_manager, session_manager_from_env, session_manager_from_env_or,
    Error,
};
pub use cache_build::{cache_manager, cache_manager_from_env, cache_manager_from_env_or};

/// The README's examples, compiled and run as doc tests (its `#[cached]` example needs the
/// `macros` feature; `cargo xtask test` runs with every feature).
#[doc = include_str!("../../../README.md")]
#[cfg(all(doctest, feature = "macros"))]
pub struct ReadmeDoctests;
