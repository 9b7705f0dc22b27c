//! [`ConnectError`], and how Redis errors become [`StoreError`]s.

use beaker_core::StoreError;
use redis::{ErrorKind, RedisError, ServerErrorKind};

/// Why [`RedisClient::connect`](crate::RedisClient::connect) failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    /// The URL could not be read (the password, if any, is masked).
    #[error("invalid Redis URL {url}: {reason}")]
    InvalidUrl {
        /// The URL, password masked.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The options are inconsistent.
    #[error("invalid Redis options: {0}")]
    InvalidOptions(String),
    /// The client could not be set up or the first connection failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl ConnectError {
    /// True when the server could not be reached (as opposed to a configuration mistake).
    pub fn is_unavailable(&self) -> bool {
        matches!(self, ConnectError::Store(e) if e.is_unavailable())
    }
}

/// Whether the error means the connection (not the command) failed, so that a retry on
/// a fresh connection may succeed.
pub(crate) fn is_connection_error(e: &RedisError) -> bool {
    e.is_io_error()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || e.is_timeout()
        || e.kind() == ErrorKind::ClusterConnectionNotFound
}

/// Maps a Redis error: anything that means "the server is not there (or not ready)" is
/// `Unavailable` so adapters answer 503, a refused write is `Rejected`, a key of the wrong
/// type is `Corrupt`, the rest is `Backend`.
pub(crate) fn map(what: &str, e: RedisError) -> StoreError {
    let unavailable = is_connection_error(&e)
        || matches!(
            e.kind(),
            ErrorKind::Server(
                ServerErrorKind::BusyLoading
                    | ServerErrorKind::TryAgain
                    | ServerErrorKind::ClusterDown
                    | ServerErrorKind::MasterDown
                    | ServerErrorKind::ReadOnly
            ) | ErrorKind::MasterNameNotFoundBySentinel
                | ErrorKind::NoValidReplicasFoundBySentinel
        );
    if unavailable {
        return StoreError::unavailable(format!("redis: {what}"), e);
    }
    match e.code() {
        // maxmemory reached with a noeviction policy, or a value over proto-max-bulk-len.
        Some("OOM") => StoreError::rejected(format!("redis: {what}: out of memory"), Some(e.into())),
        Some("WRONGTYPE") => StoreError::corrupt(format!("redis: {what}: the key holds a value of another type")),
        _ if e.kind() == ErrorKind::Parse || e.kind() == ErrorKind::UnexpectedReturnType => {
            StoreError::corrupt(format!("redis: {what}: unexpected reply ({e})"))
        }
        _ => StoreError::backend(format!("redis: {what}"), e),
    }
}

/// The error for a call that ran out of its time budget.
pub(crate) fn timed_out(what: &str, timeout: std::time::Duration) -> StoreError {
    StoreError::Unavailable { message: format!("redis: {what}: no answer within {timeout:?}"), source: None }
}
