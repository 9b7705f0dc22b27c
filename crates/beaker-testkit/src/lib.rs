//! # beaker-testkit
//!
//! The published conformance suites of beaker-rs. Third-party stores, cache backends and
//! framework adapters can run the same scenarios as the built-in ones:
//!
//! - [`store`]: the [`SessionStore`](beaker_core::SessionStore) and
//!   [`CacheBackend`](beaker_core::cache::CacheBackend) suites;
//! - [`adapter`]: the HTTP scenario table every framework adapter passes, run against a
//!   real server on a loopback port with a real HTTP client;
//! - [`model`]: a model check of whole session managers against a plain map (proptest).

pub mod adapter;
pub mod model;
pub mod store;
