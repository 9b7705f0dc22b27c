//! Errors of opening a client, and how object_store's errors become [`StoreError`]s.

use beaker_core::StoreError;

/// Why an [`ObjectStoreClient`](crate::ObjectStoreClient) could not be opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    /// The URL, an option or the environment is wrong (bad scheme, missing bucket or
    /// credentials, a bucket that does not exist or refuses us).
    #[error("object store configuration: {message}")]
    Config {
        /// What is wrong.
        message: String,
    },
    /// The service did not answer (network, timeout, server errors).
    #[error("object store unavailable: {source}")]
    Unavailable {
        /// The failure.
        #[source]
        source: StoreError,
    },
}

impl ConnectError {
    /// True when the service could not be reached (as opposed to a configuration error).
    pub fn is_unavailable(&self) -> bool {
        matches!(self, ConnectError::Unavailable { .. })
    }
}

/// object_store's error as ours. `Generic` is what object_store reports for a network
/// failure, a timeout or a server error once its retries are spent: the outage policy
/// applies (503). A 4xx answer (a missing bucket, a bad request), refused credentials and
/// unsupported operations are configuration problems, not outages.
pub(crate) fn map_error(what: &str, e: object_store::Error) -> StoreError {
    use object_store::Error as E;
    let message = format!("object store: {what}");
    match e {
        E::Generic { .. } if client_error(&e) => StoreError::backend(message, e),
        E::Generic { .. } | E::JoinError { .. } => StoreError::unavailable(message, e),
        E::PermissionDenied { .. } | E::Unauthenticated { .. } => {
            StoreError::backend(format!("{message}: access refused (check the credentials)"), e)
        }
        other => StoreError::backend(message, other),
    }
}

/// Whether the service answered with a 4xx status. object_store's retry error, which
/// carries the status, is not a public type, so its message is what we can read.
fn client_error(e: &object_store::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if s.is::<object_store::client::HttpError>() {
            // A transport failure: no status at all.
            return false;
        }
        if s.to_string().contains("status code: 4") {
            return true;
        }
        source = s.source();
    }
    false
}
