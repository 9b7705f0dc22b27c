//! [`ConnectError`], and how memcached errors become [`StoreError`]s.

use beaker_core::StoreError;
use memcache::exp::Error as McError;

/// Why [`MemcachedClient::connect`](crate::MemcachedClient::connect) failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    /// The URL could not be read.
    #[error("invalid memcached URL {url}: {reason}")]
    InvalidUrl {
        /// The URL.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The options are inconsistent.
    #[error("invalid memcached options: {0}")]
    InvalidOptions(String),
    /// A server could not be resolved or did not answer.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl ConnectError {
    /// True when a server could not be reached (as opposed to a configuration mistake).
    pub fn is_unavailable(&self) -> bool {
        matches!(self, ConnectError::Store(e) if e.is_unavailable())
    }
}

/// Transport trouble (including a write whose answer never came) is `Unavailable`; the
/// server refusing an item for its size or for lack of memory is `Rejected` (memcached's
/// `SERVER_ERROR object too large for cache` / `out of memory storing object`, which the
/// client may report wrapped as an ambiguous write).
pub(crate) fn map(what: &str, e: McError) -> StoreError {
    // The client wraps the server's answer to a write it could not confirm in
    // `Ambiguous`; what the server said is what counts.
    match cause(&e) {
        McError::Io(_) | McError::Timeout { .. } => StoreError::unavailable(format!("memcached: {what}"), e),
        McError::Server(msg) if msg.contains("too large") || msg.contains("out of memory") => {
            let message = format!("memcached: {what}: {msg}");
            StoreError::rejected(message, Some(e.into()))
        }
        _ => StoreError::backend(format!("memcached: {what}"), e),
    }
}

/// The error under any `Ambiguous` wrapping.
fn cause(e: &McError) -> &McError {
    match e {
        McError::Ambiguous { source, .. } => cause(source),
        other => other,
    }
}

/// The error for a call that ran out of its time budget.
pub(crate) fn timed_out(what: &str, timeout: std::time::Duration) -> StoreError {
    StoreError::Unavailable { message: format!("memcached: {what}: no answer within {timeout:?}"), source: None }
}
