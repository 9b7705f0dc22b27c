//! Error types of beaker-core: one enum for the session and cache engine, one for stores,
//! one for configuration.

use std::error::Error as StdError;

/// A boxed error from a backend (a Redis, SQL or I/O error), kept as the `source` of ours.
pub type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// An error from a [`SessionStore`](crate::store::SessionStore) or a
/// [`CacheBackend`](crate::cache::CacheBackend).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The backend could not be reached or did not answer in time (a connection refused,
    /// a timeout, a pool exhausted). Adapters answer 503.
    #[error("session store unavailable: {message}")]
    Unavailable {
        /// What was being done.
        message: String,
        /// The backend's own error.
        #[source]
        source: Option<BoxError>,
    },
    /// The backend answered but refused the operation (a value too large, a constraint).
    #[error("session store refused the operation: {message}")]
    Rejected {
        /// Why.
        message: String,
        /// The backend's own error.
        #[source]
        source: Option<BoxError>,
    },
    /// A stored record could not be decoded.
    #[error("corrupt record in the session store: {message}")]
    Corrupt {
        /// What was wrong.
        message: String,
    },
    /// The store cannot do this at all (listing the sessions of a cookie-only or
    /// third-party store that keeps no index). Adapters answer 501.
    #[error("the {store} session store does not support {operation}")]
    Unsupported {
        /// The store's [`name`](crate::store::SessionStore::name).
        store: &'static str,
        /// What was asked (`listing sessions`, `a principal index`, ...).
        operation: &'static str,
    },
    /// Any other backend failure.
    #[error("session store error: {message}")]
    Backend {
        /// What was being done.
        message: String,
        /// The backend's own error.
        #[source]
        source: Option<BoxError>,
    },
}

impl StoreError {
    /// An `Unavailable` error with a backend source.
    pub fn unavailable(message: impl Into<String>, source: impl Into<BoxError>) -> Self {
        StoreError::Unavailable { message: message.into(), source: Some(source.into()) }
    }

    /// A `Backend` error with a backend source.
    pub fn backend(message: impl Into<String>, source: impl Into<BoxError>) -> Self {
        StoreError::Backend { message: message.into(), source: Some(source.into()) }
    }

    /// A `Rejected` error with a backend source.
    pub fn rejected(message: impl Into<String>, source: Option<BoxError>) -> Self {
        StoreError::Rejected { message: message.into(), source }
    }

    /// An `Unsupported` error.
    pub fn unsupported(store: &'static str, operation: &'static str) -> Self {
        StoreError::Unsupported { store, operation }
    }

    /// A `Corrupt` error.
    pub fn corrupt(message: impl Into<String>) -> Self {
        StoreError::Corrupt { message: message.into() }
    }

    /// A copy without the backend source (errors are not `Clone`), for reporting one
    /// failure twice.
    pub(crate) fn summary(&self) -> StoreError {
        let message = self.to_string();
        match self {
            StoreError::Unavailable { .. } => StoreError::Unavailable { message, source: None },
            StoreError::Rejected { .. } => StoreError::Rejected { message, source: None },
            StoreError::Corrupt { .. } => StoreError::Corrupt { message },
            StoreError::Backend { .. } => StoreError::Backend { message, source: None },
            StoreError::Unsupported { store, operation } => StoreError::Unsupported { store, operation },
        }
    }

    /// True when the backend could not be reached (the outage policy applies).
    pub fn is_unavailable(&self) -> bool {
        matches!(self, StoreError::Unavailable { .. })
    }
}

/// An error of the session or cache engine.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The store failed (see [`StoreError`]).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A value could not be serialized.
    #[error("could not serialize the value of key {key:?}")]
    Serialize {
        /// The session or cache key.
        key: String,
        /// The serializer's error.
        #[source]
        source: BoxError,
    },
    /// A stored value could not be read as the requested type.
    #[error("could not read the value of key {key:?} as the requested type")]
    Deserialize {
        /// The session or cache key.
        key: String,
        /// The serializer's error.
        #[source]
        source: BoxError,
    },
    /// A cookie-only session grew past the cookie size limit; nothing was sent and the
    /// previous cookie stays valid.
    #[error("the session is too large for a cookie: {size} bytes, limit {limit}")]
    CookieTooLarge {
        /// Size of the Set-Cookie value that would have been sent.
        size: usize,
        /// The configured limit.
        limit: usize,
    },
    /// A key reserved for beaker's own use (prefix `_beaker.`) was written by the application.
    #[error("session key {0:?} is reserved for beaker")]
    ReservedKey(String),
    /// Bad configuration.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A principal or device given to [`Session::set_principal`](crate::Session::set_principal)
    /// or [`Session::set_device`](crate::Session::set_device) was refused (empty, too long,
    /// control characters, or a device without a principal). Adapters answer 400.
    #[error("invalid session owner: {0}")]
    InvalidOwner(&'static str),
    /// A cache value creator failed.
    #[error("the cache value creator failed")]
    Creator(#[source] BoxError),
}

impl Error {
    /// True when a store could not be reached: adapters answer 503 Service Unavailable.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Error::Store(e) if e.is_unavailable())
    }

    /// The HTTP status an adapter should answer with when this error ends a request:
    /// 503 for an unreachable store, 501 for what the store cannot do, 413 for a session
    /// too large for its cookie or refused by the store for its size, 400 for an invalid
    /// owner, 500 otherwise. A number, so that core stays free of `http`.
    pub fn status_code(&self) -> u16 {
        match self {
            Error::Store(StoreError::Unavailable { .. }) => 503,
            Error::Store(StoreError::Unsupported { .. }) => 501,
            Error::Store(StoreError::Rejected { .. }) | Error::CookieTooLarge { .. } => 413,
            Error::InvalidOwner(_) => 400,
            _ => 500,
        }
    }

    /// A one-line, client-safe description for a response body (no secrets, no ids).
    pub fn public_message(&self) -> &'static str {
        match self {
            Error::Store(StoreError::Unavailable { .. }) => "session store unavailable",
            Error::Store(StoreError::Rejected { .. }) => "session store refused the data (too large?)",
            Error::Store(StoreError::Unsupported { .. }) => "not supported by this session store",
            Error::CookieTooLarge { .. } => "session too large for its cookie",
            Error::InvalidOwner(_) => "invalid session owner",
            Error::Store(_) => "session store error",
            _ => "session error",
        }
    }
}

/// A configuration error; the message always names the offending key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A value that could not be read as the expected type.
    #[error("invalid value {value:?} for {key}: expected {expected}")]
    Invalid {
        /// The configuration key (as the user wrote it, e.g. `beaker.session.timeout`).
        key: String,
        /// The value given.
        value: String,
        /// What was accepted.
        expected: String,
    },
    /// A blank value where one is required.
    #[error("blank value for {key}: give a value or remove the key")]
    Blank {
        /// The configuration key.
        key: String,
    },
    /// A required value is missing.
    #[error("missing {key}: {why}")]
    Missing {
        /// The configuration key.
        key: String,
        /// Why it is needed.
        why: String,
    },
    /// Options that cannot be combined.
    #[error("{key}: {message}")]
    Conflict {
        /// The configuration key.
        key: String,
        /// What is wrong.
        message: String,
    },
    /// An option name that beaker does not know.
    #[error("unknown option {key}")]
    Unknown {
        /// The configuration key.
        key: String,
    },
}

impl ConfigError {
    pub(crate) fn invalid(key: &str, value: &str, expected: impl Into<String>) -> Self {
        ConfigError::Invalid { key: key.to_owned(), value: value.to_owned(), expected: expected.into() }
    }
}
