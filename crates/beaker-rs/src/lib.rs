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
//! # async fn main() -> Result<(), beaker_rs::BuildError> {
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
//! | `object-store` | Amazon S3, Google Cloud Storage, Azure Blob (`s3://bucket/prefix`, `gs://…`, `az://container/prefix`; credentials from the environment) | no |
//! | `all-stores` | all of the above | no |
//! | `bincode` | the bincode 2 serializer | no |
//! | `macros` | `#[beaker_rs::cached(region = "…")]` memoisation | no |
//! | `axum`, `actix`, `rocket`, `warp` | the framework adapter as `beaker_rs::axum` (and so on): one dependency for an app | no |
//!
//! Memory and cookie-only sessions need no feature.
//!
//! ## Errors
//!
//! [`BuildError`] says why a manager could not be built (configuration, an unreachable
//! store, a missing feature); [`Error`] is the error of a session in use, re-exported from
//! `beaker-core`. `BuildError` converts from `Error`, so one `?` serves both in start-up code.
//!
//! ## Platform conventions
//!
//! With `BEAKER_SESSION_URL_FROM_PLATFORM=true` and neither `BEAKER_SESSION_URL` nor
//! `BEAKER_SESSION_TYPE` set, [`session_manager_from_env`] takes the store from `REDIS_URL`,
//! else `DATABASE_URL`, as Heroku-style platforms provide them. Off by default: a
//! `DATABASE_URL` meant for the application's data must not silently become its session
//! store.

#![cfg_attr(docsrs, feature(doc_cfg))]

pub use beaker_core::*;
#[cfg(feature = "macros")]
#[cfg_attr(docsrs, doc(cfg(feature = "macros")))]
pub use beaker_macros::cached;

/// The file-system store, for options the URL cannot carry (feature `file`).
#[cfg(feature = "file")]
#[cfg_attr(docsrs, doc(cfg(feature = "file")))]
pub use beaker_file as file;
/// The Memcached store and cache backend (feature `memcached`).
#[cfg(feature = "memcached")]
#[cfg_attr(docsrs, doc(cfg(feature = "memcached")))]
pub use beaker_memcached as memcached;
/// The S3, GCS and Azure Blob store and cache backend (feature `object-store`).
#[cfg(feature = "object-store")]
pub use beaker_object_store as object_store;
/// The Redis store and cache backend (feature `redis`).
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub use beaker_redis as redis;
/// The SQL stores and cache backend (features `sqlite`, `postgres`, `mysql`).
#[cfg(any(feature = "sqlite", feature = "postgres", feature = "mysql"))]
#[cfg_attr(docsrs, doc(cfg(any(feature = "sqlite", feature = "postgres", feature = "mysql"))))]
pub use beaker_sql as sql;

/// The actix-web adapter (feature `actix`).
#[cfg(feature = "actix")]
pub use beaker_actix as actix;
/// The axum adapter: `beaker_rs::axum::SessionLayer` (feature `axum`).
#[cfg(feature = "axum")]
pub use beaker_axum as axum;
/// The rocket adapter (feature `rocket`).
#[cfg(feature = "rocket")]
pub use beaker_rocket as rocket;
/// The warp adapter (feature `warp`).
#[cfg(feature = "warp")]
pub use beaker_warp as warp;

mod build;
mod cache_build;
mod near;
mod platform;
mod sweeper;

pub use build::{
    insecure_demo_session_manager_from_env_or, session_manager, session_manager_from_env, session_manager_from_env_or,
    session_store, session_store_from_env, BuildError,
};
pub use cache_build::{cache_manager, cache_manager_from_env, cache_manager_from_env_or};
pub use platform::URL_FROM_PLATFORM;

/// The README's examples, compiled and run as doc tests (its `#[cached]` example needs the
/// `macros` feature; `cargo xtask test` runs with every feature).
#[doc = include_str!("../../../README.md")]
#[cfg(all(doctest, feature = "macros"))]
pub struct ReadmeDoctests;
