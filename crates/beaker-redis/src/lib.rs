//! # beaker-redis
//!
//! Redis for beaker-rs: [`RedisStore`] implements [`beaker_core::store::SessionStore`] and
//! [`RedisCache`] implements [`beaker_core::cache::CacheBackend`], on a single node, a
//! Redis Cluster (`redis+cluster://h1:p1,h2:p2`) or the master a Sentinel names
//! (`redis+sentinel://s1:p1,s2:p2/master_name`). Both can share one [`RedisClient`].
//!
//! **Who should depend on this crate:** applications that keep sessions or cache regions
//! in Redis. The `beaker-rs` facade re-exports it behind its `redis` feature and builds it
//! from a `redis://…` session URL.
//!
//! - Sessions are hashes with per-key fields and a native TTL; `apply` changes only the
//!   fields a request touched, atomically, in one round trip (see [`RedisStore`]).
//! - Every call has a deadline ([`RedisOptions::timeout`], default 2 s); an unreachable
//!   server is `StoreError::Unavailable`, and the first call after it returns succeeds.
//! - The sessions of one user: a sorted set per principal, kept in the same script as
//!   the record on one node and in a second step in a Cluster, where listing checks
//!   every member against its record; `count` and `scan` walk the session keys with
//!   `SCAN` on every master (see [`RedisStore`]).
//! - Namespaces are cleared with `SCAN` + `UNLINK`, never `KEYS` or `FLUSHDB`.
//! - An opt-in near cache ([`RedisStore::with_near_cache`], [`RedisCache::with_near_cache`])
//!   keeps recently used sessions and entries in the process, kept coherent by RESP3 client
//!   tracking (single node, Sentinel and Cluster): a request that starts after a write
//!   returned, on any instance, sees it. Its counters ([`NearCacheStats`]) are also
//!   counted through the [`metrics`](https://docs.rs/metrics) facade as
//!   `beaker_near_cache_{hits,misses,invalidations,resets,pings}_total` and the gauge
//!   `beaker_near_cache_tiers`, labelled `kind` (`sessions` or `cache`).
//! - [`BeakerRedisStore`] keeps sessions in Python Beaker's `ext:redis` layout, to share
//!   them with a running Beaker application (`compat = beaker`).
//! - On a thread-per-core server (actix-web), each worker thread gets a connection of its
//!   own on first use, so commands never cross threads (see [`RedisClient`]).
//!
//! ```no_run
//! use beaker_redis::{RedisCache, RedisClient, RedisOptions, RedisStore};
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let client = RedisClient::connect("redis://127.0.0.1:6379/0", RedisOptions::default()).await?;
//! let sessions = RedisStore::new(client.clone());
//! let cache = RedisCache::new(client);
//! # Ok(()) }
//! ```
//!
//! ## Features
//!
//! None; TLS (`rediss://`) is not enabled yet.
//!
//! ## MSRV
//!
//! Rust 1.89, as every beaker-rs crate.

mod beaker_layout;
mod cache;
mod client;
mod error;
mod index;
mod near;
mod options;
mod scan;
mod session;
mod tracking;

pub use beaker_layout::BeakerRedisStore;
pub use cache::RedisCache;
pub use client::RedisClient;
pub use error::ConnectError;
pub use options::RedisOptions;
pub use session::RedisStore;
pub use tracking::{NearCacheOptions, NearCacheStats};
