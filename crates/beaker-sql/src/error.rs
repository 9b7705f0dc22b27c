//! [`OpenError`] for building a store, and the mapping of sqlx errors onto
//! [`StoreError`] for every store call.

use beaker_core::StoreError;

/// Why a [`SqlStore`](crate::SqlStore) could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// An option has a value the store cannot use.
    #[error("invalid {option} {value:?}: {expected}")]
    InvalidOption {
        /// The option (`url`, `table_name`, `cache_table_name`, `schema_name`, `pool_size`,
        /// `timeout`).
        option: &'static str,
        /// The value given.
        value: String,
        /// What is accepted.
        expected: &'static str,
    },
    /// The URL names a database this build of beaker-sql does not support.
    #[error("unsupported database URL scheme {scheme:?}: {hint}")]
    UnsupportedScheme {
        /// The URL's scheme.
        scheme: String,
        /// How to get support (usually: enable a feature).
        hint: &'static str,
    },
    /// The database could not be reached, or creating the tables failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl OpenError {
    /// True when the database could not be reached (as opposed to a configuration mistake).
    pub fn is_unavailable(&self) -> bool {
        matches!(self, OpenError::Store(e) if e.is_unavailable())
    }
}

/// Codes of transient conditions (lock waits, deadlocks, busy files, lost connections,
/// shutdowns): the database is there but cannot serve now, so callers answer 503.
const TRANSIENT: &[&str] = &[
    // SQLite: BUSY (+ RECOVERY, SNAPSHOT, TIMEOUT), LOCKED (+ SHAREDCACHE), IOERR, CANTOPEN.
    "5", "261", "517", "773", "6", "262", "10", "14",
    // PostgreSQL: serialization failure, deadlock, too many connections, shutdowns, lock timeout.
    "40001", "40P01", "53300", "57P01", "57P02", "57P03", "55P03",
    // MySQL / MariaDB: lock wait timeout, deadlock, too many connections, server shutdown.
    "1205", "1213", "1040", "1053",
];

/// Codes of values the database refused for their size.
const TOO_LARGE: &[&str] = &[
    // SQLite: TOOBIG. PostgreSQL: string too long, program limit (row/index too big).
    "18", "22001", "54000", // MySQL: data too long, packet too large, row size too large, key too long.
    "1406", "1153", "1118", "1071",
];

/// Codes after which the same transaction, run again at once, is expected to succeed:
/// PostgreSQL serialization failure and deadlock, MySQL deadlock, SQLite BUSY_SNAPSHOT.
const RETRYABLE: &[&str] = &["40001", "40P01", "1213", "517"];

/// Whether the whole operation may be run again at once: its transaction was a deadlock
/// victim or saw a stale snapshot, or its connection broke (another one may be fine; an
/// unreachable server fails again quickly). Every operation may be repeated: `apply`,
/// `touch` and `delete` are idempotent, and a `create` whose commit was lost with its
/// connection reports `false`, after which the engine uses a fresh id.
pub(crate) fn is_retryable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(db) => db.code().is_some_and(|c| RETRYABLE.contains(&c.as_ref())),
        sqlx::Error::Io(_) | sqlx::Error::Protocol(_) | sqlx::Error::WorkerCrashed => true,
        _ => false,
    }
}

/// The error for a call that ran out of its time budget.
pub(crate) fn timed_out(what: &str, timeout: std::time::Duration) -> StoreError {
    StoreError::Unavailable { message: format!("sql store: {what}: no answer within {timeout:?}"), source: None }
}

/// Maps a sqlx error: connection, pool and I/O trouble → `Unavailable`; undecodable data →
/// `Corrupt`; values refused for their size → `Rejected`; anything else → `Backend`.
pub(crate) fn map_sqlx(what: &str, e: sqlx::Error) -> StoreError {
    use sqlx::Error as E;
    let message = format!("sql store: {what}");
    match &e {
        E::Io(_) | E::Tls(_) | E::PoolTimedOut | E::PoolClosed | E::WorkerCrashed | E::Protocol(_) => {
            StoreError::unavailable(message, e)
        }
        E::Decode(_) | E::ColumnDecode { .. } | E::ColumnNotFound(_) | E::ColumnIndexOutOfBounds { .. } => {
            StoreError::corrupt(format!("{message}: {e}"))
        }
        E::Database(db) => {
            let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
            // PostgreSQL class 08 is "connection exception".
            if TRANSIENT.contains(&code.as_str()) || code.starts_with("08") {
                StoreError::unavailable(message, e)
            } else if TOO_LARGE.contains(&code.as_str()) {
                StoreError::rejected(message, Some(e.into()))
            } else {
                StoreError::backend(message, e)
            }
        }
        _ => StoreError::backend(message, e),
    }
}
