//! # beaker-file
//!
//! A file-system [`SessionStore`](beaker_core::store::SessionStore) and
//! [`CacheBackend`](beaker_core::cache::CacheBackend) for beaker-rs: Beaker's `type = file`
//! with its `data_dir`.
//!
//! **Who should depend on this crate:** applications that want sessions or cache entries to
//! survive a restart without running a database server, usually through the `beaker-rs` facade
//! (`BEAKER_SESSION_URL=file:/var/lib/myapp/sessions`).
//!
//! ```
//! use std::time::{Duration, SystemTime};
//! use beaker_core::SessionId;
//! use beaker_core::store::{Record, SessionStore, StoreKey};
//! use beaker_file::{FileOptions, FileStore};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), beaker_core::StoreError> {
//! # let dir = tempfile::tempdir().unwrap();
//! let store = FileStore::open(dir.path().join("sessions"), FileOptions::new()).await?;
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
//! assert_eq!(store.load(&key).await?.unwrap().entries, record.entries);
//! # Ok(()) }
//! ```
//!
//! ## Layout and guarantees
//!
//! ```text
//! <dir>/sessions/<store key>            one file per session (beaker_core::store::Record::to_bytes)
//! <dir>/cache/<hash of namespace>/<hash of key>   one file per cache entry
//! <dir>/principals/<hash of principal>/<store key>   an empty marker per owned session
//! ```
//!
//! - Every write goes to a temporary file in the target's own directory and is renamed
//!   over the target, so a reader sees the old or the new file, never a partial one. A
//!   failed write (read-only directory, full disk) removes its temporary file and returns
//!   [`StoreError::Unavailable`](beaker_core::StoreError::Unavailable); no lock files exist.
//! - Within one process, operations on one session are serialized by a striped async
//!   mutex, so concurrent requests changing different keys of one session both survive.
//! - `create` never overwrites a live record, even across processes (it links the new file
//!   into place, which fails if one is there).
//! - **Several processes writing one directory** get last-writer-wins per record for
//!   `apply` and `touch`: each rewrites the whole file, and a concurrent change made by
//!   another process between its read and its rename is lost. Use a SQL or Redis store
//!   when several processes share sessions and update them concurrently.
//! - A session that ends (logout) or moves to a new id (regeneration) leaves a small
//!   tombstone file under its old name for the retire window (no data, no pointer to
//!   the new id): the file is replaced by its tombstone with one `rename`, so a reader
//!   sees the record or the tombstone, never neither. Within one process, a regeneration
//!   holds the old record's lock while it writes the new file and retires the old one,
//!   so a concurrent change either moves with it or finds the record gone.
//! - Expired files stay on disk until they are read or [`FileStore::cleanup_cache`] /
//!   [`SessionStore::cleanup`](beaker_core::store::SessionStore::cleanup) runs (the
//!   `beaker-rs` facade runs the latter in the background).
//! - **The principal index** is the `principals` directory: a session with an owner has
//!   an empty marker file in its principal's directory, created before the record is
//!   written and removed after it goes (end, delete, rename, a change of owner, cleanup of
//!   an expired record). `sessions_of` lists the directory and reads each record it names,
//!   listing only live records of that principal and pruning the other markers;
//!   `cleanup` prunes stale markers (left by a crash) and empty directories. `count` reads
//!   every session file; `scan` walks the directory once per page, keeping only the page's
//!   names in memory; `find` scans. Markers are kept consistent within one process (under
//!   the record's lock); processes sharing a directory can leave a stale marker for
//!   `cleanup` to prune, never a listed session that is not live.
//! - Locks are per process: there are no lock files, and Beaker's `lock_dir` is refused.
//! - Each session operation is bounded by [`FileOptions::timeout`] (the facade sets it from
//!   `store_timeout`), so a hung disk answers with `Unavailable` instead of hanging requests.
//!
//! ## Features
//!
//! None: the crate has no optional parts.

mod cache;
mod enumerate;
mod fsops;
mod locks;
mod options;
mod principals;
mod store;
mod tombstone;

pub use options::FileOptions;
pub use store::FileStore;
