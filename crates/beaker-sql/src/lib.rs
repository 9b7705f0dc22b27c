//! # beaker-sql
//!
//! SQL databases for beaker-rs: [`SqlStore`] implements [`beaker_core::store::SessionStore`] and
//! [`SqlCache`] implements [`beaker_core::cache::CacheBackend`], on SQLite, PostgreSQL or
//! MySQL/MariaDB through [sqlx](https://docs.rs/sqlx). The URL picks the database
//! (`sqlite:sessions.db`, `sqlite::memory:`, `postgres://…`, `mysql://…`, see
//! [`SqlClient`]); both can share one [`SqlClient`] (one pool).
//!
//! **Who should depend on this crate:** applications that keep sessions or cache regions
//! in a relational database. The `beaker-rs` facade re-exports it behind its `sqlite`,
//! `postgres` and `mysql` features and builds it from a session URL
//! (`BEAKER_SESSION_URL=postgres://…`).
//!
//! - A session is a row plus one row per key, so `apply` writes only the keys a request
//!   changed, in one transaction: concurrent requests changing different keys of one
//!   session both survive (see [`SqlStore`] for tables and round trips).
//! - `create` never overwrites a live record; expired records are never returned, judged
//!   by [`SqlOptions::clock`], and are deleted by `cleanup()` or
//!   [`SqlStore::spawn_cleanup`].
//! - Tables are created on first use (or by `migrate()`); names are configurable, and on
//!   PostgreSQL so is the schema ([`SqlOptions`]).
//! - Every call has a deadline ([`SqlOptions::timeout`], default 2 s); an unreachable
//!   server is `StoreError::Unavailable`, the pool reconnects on its own, and a row that
//!   cannot be decoded is `StoreError::Corrupt`.
//!
//! ```
//! use std::time::{Duration, SystemTime};
//! use beaker_core::SessionId;
//! use beaker_core::store::{Changes, Record, SessionStore, StoreKey};
//! use beaker_sql::{SqlOptions, SqlStore};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # #[cfg(feature = "sqlite")] {
//! let store = SqlStore::connect("sqlite::memory:", SqlOptions::new()).await?;
//! let key = StoreKey::for_id(&SessionId::generate(), true);
//! let now = SystemTime::now();
//! let record = Record {
//!     entries: [("user".to_string(), br#"j"ada""#.to_vec())].into(),
//!     created: now,
//!     accessed: now,
//!     expires: Some(now + Duration::from_secs(3600)),
//!     owner: None,
//! };
//! assert!(store.create(&key, &record).await?);
//! assert!(!store.create(&key, &record).await?, "a live record is never overwritten");
//! let changes = Changes {
//!     clear: false,
//!     set: [("theme".to_string(), br#"j"dark""#.to_vec())].into(),
//!     remove: Default::default(),
//!     accessed: now,
//!     expires: record.expires,
//!     owner: None,
//! };
//! assert!(store.apply(&key, &changes).await?);
//! let loaded = store.load(&key).await?.expect("live");
//! assert_eq!(loaded.entries.keys().collect::<Vec<_>>(), ["theme", "user"]);
//! # }
//! # Ok(()) }
//! ```
//!
//! ## Features
//!
//! | name | enables | default |
//! |---|---|---|
//! | `sqlite` | `sqlite:` URLs (libsqlite3 bundled, nothing to install) | no |
//! | `postgres` | `postgres://` and `postgresql://` URLs (tested on PostgreSQL 15) | no |
//! | `mysql` | `mysql://` and `mariadb://` URLs (InnoDB; tested on MariaDB 10.11) | no |
//!
//! With none enabled the crate compiles, and every URL is refused with
//! [`OpenError::UnsupportedScheme`] naming the feature to turn on. tokio is always a
//! dependency (sqlx runs on it, and it enforces the deadlines).

#![cfg_attr(docsrs, feature(doc_cfg))]
// With no database feature there is nothing to run the statements on: every call site
// sits after a match on an empty enum. That build exists so a workspace build without
// features compiles; silence what it cannot use.
#![cfg_attr(not(any(feature = "sqlite", feature = "postgres", feature = "mysql")), allow(unused, unreachable_code))]

mod beaker_layout;
mod cache;
mod client;
mod error;
mod options;
mod session;
mod sql;

pub use beaker_layout::BeakerSqlStore;
pub use cache::SqlCache;
pub use client::SqlClient;
pub use error::OpenError;
pub use options::SqlOptions;
pub use session::SqlStore;
