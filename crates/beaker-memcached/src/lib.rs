//! # beaker-memcached
//!
//! Memcached for beaker-rs: [`MemcachedStore`] implements [`beaker_core::store::SessionStore`]
//! and [`MemcachedCache`] implements [`beaker_core::cache::CacheBackend`], on one server
//! or several (`memcached://h1:11211,h2:11211`, keys spread by client-side rendezvous
//! hashing). Both can share one [`MemcachedClient`].
//!
//! **Who should depend on this crate:** applications that keep sessions or cache regions
//! in memcached. The `beaker-rs` facade re-exports it behind its `memcached` feature and
//! builds it from a `memcached://…` session URL.
//!
//! - A session is one item; `apply` merges per key under a gets/cas loop, so two requests
//!   changing different keys of one session both survive (see [`MemcachedStore`]).
//! - Expiry is memcached's own (relative seconds, an absolute Unix time past 30 days).
//! - Keys longer than memcached's 250 bytes (prefix included) or not plain ASCII are
//!   replaced by `prefix#<SHA-256, base64url>`.
//! - Every call has a deadline ([`MemcachedOptions::timeout`], default 2 s); an
//!   unreachable server is `StoreError::Unavailable`, never a panic, and the first call
//!   after the server returns succeeds (dead pooled connections are dropped, not reused).
//! - Cache namespaces are cleared by bumping a generation counter that is part of every
//!   key, never with `flush_all` (see [`MemcachedCache`]).
//! - The sessions of one user are listed in an index item per principal, changed by
//!   gets/cas and expiring with its latest session; `count`, `scan` and `find` read
//!   `lru_crawler metadump`, which costs a whole server's key list per page (see
//!   [`MemcachedStore`]).
//!
//! Memcached is a cache: it may evict any item when it runs out of memory, sessions
//! included, and it keeps nothing across a restart. Use it for sessions only when losing
//! one now and then is acceptable.
//!
//! ```no_run
//! use beaker_memcached::{MemcachedCache, MemcachedClient, MemcachedOptions, MemcachedStore};
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let client =
//!     MemcachedClient::connect("memcached://10.0.0.1:11211,10.0.0.2:11211", MemcachedOptions::default()).await?;
//! let sessions = MemcachedStore::new(client.clone());
//! let cache = MemcachedCache::new(client);
//! # Ok(()) }
//! ```
//!
//! ## Round trips
//!
//! | call | round trips |
//! |---|---|
//! | `SessionStore::load` | 1 |
//! | `SessionStore::apply`, `touch` | 1 right after a `load` of the same session in this process (its CAS value is remembered), else 2; each lost CAS race costs 2 more |
//! | `SessionStore::create` | 1 (3 when an expired record still sits under the key) |
//! | `SessionStore::delete`, `end` | 1 |
//! | a write (`create`, `apply`, `touch`, `rename`) of a session that has an owner | 2 more: the principal index's gets and cas |
//! | `SessionStore::sessions_of` | 1 for the index, then one read per listed session (concurrent), 2 more when it prunes |
//! | `SessionStore::count`, `find` | one `lru_crawler metadump` per server (on a connection of its own), plus reads of the session keys |
//! | `SessionStore::scan` | one `lru_crawler metadump` of a server per page, plus a read per listed session |
//! | `CacheBackend::get` | 1 once this instance has seen the namespace's generation (counter and entry pipelined), else 2 |
//! | `CacheBackend::put`, `remove` | 2 (namespace generation, then the entry; `put` 3 the first time a namespace is used) |
//! | `CacheBackend::clear` | 1 |
//! | `CacheBackend::try_lock` | 1; `unlock` 2 |
//!
//! So a session request costs: untouched 0, read-only 1 (plus 1 for a due touch), and
//! modified 2 (a load and a CAS write); the integration tests check these numbers against
//! memcached's own command counters.
//!
//! ## Features
//!
//! This crate has no optional features of its own (TLS and SASL authentication are not
//! supported yet). It is switched on in the facade:
//!
//! | Name | Description | Default |
//! |---|---|---|
//! | `beaker-rs/memcached` | `memcached://` session URLs open a [`MemcachedStore`] | no |
//!
//! ## MSRV
//!
//! Rust 1.89, as every beaker-rs crate.

mod cache;
mod client;
mod enumerate;
mod error;
mod index;
mod session;

pub use cache::MemcachedCache;
pub use client::{MemcachedClient, MemcachedOptions};
pub use error::ConnectError;
pub use session::MemcachedStore;
