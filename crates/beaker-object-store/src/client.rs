//! [`ObjectStoreClient`]: the bucket or container, the prefix under it, and the options
//! shared by the session store and the cache.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use beaker_core::StoreError;
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::azure::{AzureConfigKey, MicrosoftAzureBuilder};
use object_store::gcp::{GoogleCloudStorageBuilder, GoogleConfigKey};
use object_store::path::Path;
use object_store::{BackoffConfig, ClientConfigKey, ObjectStore, RetryConfig};

use crate::error::{map_error, ConnectError};

/// Which service a URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Service {
    /// Amazon S3 and S3-compatible services (`s3://BUCKET/PREFIX`).
    S3,
    /// Google Cloud Storage (`gs://BUCKET/PREFIX`).
    Gcs,
    /// Azure Blob Storage (`az://CONTAINER/PREFIX`).
    Azure,
}

impl Service {
    /// The short name used in logs and as the stores' `name()`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Service::S3 => "s3",
            Service::Gcs => "gcs",
            Service::Azure => "azure",
        }
    }
}

/// Options of an object-store client.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ObjectStoreOptions {
    /// The longest a single request may take, retries included (default 2 s, the engine's
    /// `store_timeout`): object_store's request timeout and retry timeout.
    pub timeout: Duration,
    /// How often object_store retries a request that failed on the network or with a
    /// server error, within `timeout` (default 2).
    pub max_retries: usize,
    /// How often a per-key change is merged again after losing a conditional-write race
    /// to another writer of the same session (default 64), with a jittered, growing pause.
    pub max_conflict_retries: u32,
    /// How old a principal-index marker must be before a listing or `cleanup` may remove
    /// it for naming no live record of its principal (default 5 minutes). A write files
    /// the marker before the record, so a younger marker may belong to a write still
    /// running; the listing skips it either way.
    pub index_grace: Duration,
}

impl Default for ObjectStoreOptions {
    fn default() -> Self {
        ObjectStoreOptions {
            timeout: Duration::from_secs(2),
            max_retries: 2,
            max_conflict_retries: 64,
            index_grace: Duration::from_secs(300),
        }
    }
}

impl ObjectStoreOptions {
    /// Sets [`timeout`](Self::timeout).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sets [`max_retries`](Self::max_retries).
    pub fn with_max_retries(mut self, retries: usize) -> Self {
        self.max_retries = retries;
        self
    }

    /// Sets [`index_grace`](Self::index_grace).
    pub fn with_index_grace(mut self, grace: Duration) -> Self {
        self.index_grace = grace;
        self
    }

    /// Sets [`max_conflict_retries`](Self::max_conflict_retries).
    pub fn with_max_conflict_retries(mut self, retries: u32) -> Self {
        self.max_conflict_retries = retries;
        self
    }
}

/// A client for one bucket (or container) and a prefix in it, shared by an
/// [`ObjectSessionStore`](crate::ObjectSessionStore) and an
/// [`ObjectCache`](crate::ObjectCache). Cheap to clone.
///
/// Credentials, region and endpoint come from the environment each cloud's own tools
/// read, through object_store's `from_env` builders:
///
/// | service | variables |
/// |---|---|
/// | S3 | `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, `AWS_REGION`, `AWS_ENDPOINT_URL` (or `AWS_ENDPOINT`), `AWS_ALLOW_HTTP`, instance and web-identity credentials |
/// | GCS | `GOOGLE_SERVICE_ACCOUNT` (a key file), `GOOGLE_SERVICE_ACCOUNT_KEY` (its JSON), `GOOGLE_APPLICATION_CREDENTIALS`, the metadata server |
/// | Azure | `AZURE_STORAGE_ACCOUNT_NAME`, `AZURE_STORAGE_ACCOUNT_KEY`, `AZURE_STORAGE_SAS_KEY`, `AZURE_STORAGE_CLIENT_ID`/`_SECRET`/`_TENANT_ID`, `AZURE_STORAGE_ENDPOINT`, `AZURE_STORAGE_USE_EMULATOR` with `AZURITE_BLOB_STORAGE_URL` |
#[derive(Clone)]
pub struct ObjectStoreClient {
    pub(crate) store: Arc<dyn ObjectStore>,
    pub(crate) service: Service,
    pub(crate) prefix: String,
    pub(crate) options: ObjectStoreOptions,
}

impl fmt::Debug for ObjectStoreClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ObjectStoreClient")
            .field("service", &self.service)
            .field("prefix", &self.prefix)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

/// `(service, bucket, prefix)` of `s3://BUCKET/PREFIX`, `gs://…` or `az://…`.
pub(crate) fn parse_url(url: &str) -> Result<(Service, String, String), ConnectError> {
    let bad = |why: &str| ConnectError::Config { message: format!("{url:?}: {why}") };
    let (scheme, rest) = url.split_once("://").ok_or_else(|| bad("expected s3://, gs:// or az://BUCKET/PREFIX"))?;
    let service = match scheme.to_ascii_lowercase().as_str() {
        "s3" | "s3a" => Service::S3,
        "gs" | "gcs" => Service::Gcs,
        "az" | "azure" => Service::Azure,
        _ => return Err(bad("the scheme must be s3, gs or az")),
    };
    if rest.contains(['?', '#']) {
        return Err(bad("query strings are not supported; set options through the environment"));
    }
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        return Err(bad("the bucket (container) name is missing"));
    }
    let prefix = prefix.trim_matches('/');
    if prefix.split('/').any(|p| p.is_empty() && !prefix.is_empty() || p == "." || p == "..") {
        return Err(bad("the prefix has an empty, `.` or `..` segment"));
    }
    Ok((service, bucket.to_owned(), prefix.to_owned()))
}

impl ObjectStoreClient {
    /// Opens `url` (`s3://BUCKET/PREFIX`, `gs://BUCKET/PREFIX`, `az://CONTAINER/PREFIX`)
    /// with credentials from the environment, and checks that the bucket answers (one
    /// list request), so that a wrong name or credential fails at start-up.
    pub async fn connect(url: &str, options: ObjectStoreOptions) -> Result<Self, ConnectError> {
        let (service, bucket, prefix) = parse_url(url)?;
        if options.timeout.is_zero() {
            return Err(ConnectError::Config { message: "timeout must be greater than zero".into() });
        }
        let retry = RetryConfig {
            backoff: BackoffConfig {
                init_backoff: Duration::from_millis(20),
                max_backoff: options.timeout / 4,
                base: 2.0,
            },
            max_retries: options.max_retries,
            retry_timeout: options.timeout,
        };
        let timeout = format!("{}ms", options.timeout.as_millis());
        let built: Result<Arc<dyn ObjectStore>, object_store::Error> = match service {
            Service::S3 => AmazonS3Builder::from_env()
                .with_bucket_name(&bucket)
                .with_retry(retry)
                .with_config(AmazonS3ConfigKey::Client(ClientConfigKey::Timeout), &timeout)
                .with_config(AmazonS3ConfigKey::Client(ClientConfigKey::ConnectTimeout), &timeout)
                .build()
                .map(|s| Arc::new(s) as _),
            Service::Gcs => GoogleCloudStorageBuilder::from_env()
                .with_bucket_name(&bucket)
                .with_retry(retry)
                .with_config(GoogleConfigKey::Client(ClientConfigKey::Timeout), &timeout)
                .with_config(GoogleConfigKey::Client(ClientConfigKey::ConnectTimeout), &timeout)
                .build()
                .map(|s| Arc::new(s) as _),
            Service::Azure => MicrosoftAzureBuilder::from_env()
                .with_container_name(&bucket)
                .with_retry(retry)
                .with_config(AzureConfigKey::Client(ClientConfigKey::Timeout), &timeout)
                .with_config(AzureConfigKey::Client(ClientConfigKey::ConnectTimeout), &timeout)
                .build()
                .map(|s| Arc::new(s) as _),
        };
        let store = built.map_err(|e| ConnectError::Config { message: format!("{url}: {e}") })?;
        let client = ObjectStoreClient { store, service, prefix, options };
        // One list request: an unreachable service, a missing bucket or refused
        // credentials show at start-up rather than on the first request.
        client
            .bounded("connect", async {
                client
                    .store
                    .list_with_delimiter(Some(&client.path(&[])))
                    .await
                    .map(drop)
                    .map_err(|e| map_error("connect", e))
            })
            .await
            .map_err(|e| match e {
                StoreError::Unavailable { .. } => ConnectError::Unavailable { source: e },
                other => ConnectError::Config { message: format!("{url}: the bucket cannot be listed: {other}") },
            })?;
        Ok(client)
    }

    /// A client on any [`ObjectStore`] (object_store's in-memory store in tests, a store
    /// built with options the URL cannot express), with `prefix` under it.
    pub fn from_store(
        store: Arc<dyn ObjectStore>,
        service: Service,
        prefix: &str,
        options: ObjectStoreOptions,
    ) -> Self {
        ObjectStoreClient { store, service, prefix: prefix.trim_matches('/').to_owned(), options }
    }

    /// The service this client talks to.
    pub fn service(&self) -> Service {
        self.service
    }

    /// The prefix under the bucket (no leading or trailing `/`).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The underlying object_store client.
    pub fn object_store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    /// The path of `parts` under the prefix.
    pub(crate) fn path(&self, parts: &[&str]) -> Path {
        let mut all: Vec<&str> = self.prefix.split('/').filter(|p| !p.is_empty()).collect();
        all.extend_from_slice(parts);
        Path::from_iter(all)
    }

    /// Runs `op` within the timeout; a timeout is [`StoreError::Unavailable`].
    pub(crate) async fn bounded<T>(
        &self,
        what: &str,
        op: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        // object_store bounds each attempt and its retries; this bounds the whole call,
        // credentials and DNS included.
        match tokio::time::timeout(self.options.timeout + self.options.timeout / 2, op).await {
            Ok(r) => r,
            Err(_) => Err(StoreError::Unavailable {
                message: format!("{}: {what}: no answer within {:?}", self.service.as_str(), self.options.timeout),
                source: None,
            }),
        }
    }
}

/// A path segment for any string: base64url of short ones (`b…`), a SHA-256 of long ones
/// (`h…`), so that no namespace, key or id can reach outside its place in the bucket.
pub(crate) fn segment(s: &str) -> String {
    use base64::Engine as _;
    use sha2::Digest as _;
    if s.len() <= 150 {
        format!("b{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s))
    } else {
        let digest = sha2::Sha256::digest(s.as_bytes());
        let mut out = String::with_capacity(65);
        out.push('h');
        for b in digest {
            out.push_str(&format!("{b:02x}"));
        }
        out
    }
}

/// 128 random bits as a URL-safe string.
pub(crate) fn random_token() -> Result<String, StoreError> {
    use base64::Engine as _;
    let mut bytes = [0u8; 16];
    getrandom::getrandom(&mut bytes).map_err(|e| StoreError::backend("no random source", e))?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

/// A random pause in `[0, 5 ms × 2^attempt)`, at most 320 ms: jittered exponential
/// backoff after a lost conditional-write race.
pub(crate) fn conflict_backoff(attempt: u32) -> Duration {
    let cap_us = 5_000u64 << attempt.min(6);
    let mut buf = [0u8; 8];
    let random = getrandom::getrandom(&mut buf).map_or(cap_us / 2, |()| u64::from_le_bytes(buf));
    Duration::from_micros(random % cap_us)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(parse_url("s3://b/p/q/").unwrap(), (Service::S3, "b".into(), "p/q".into()));
        assert_eq!(parse_url("gs://b").unwrap(), (Service::Gcs, "b".into(), "".into()));
        assert_eq!(parse_url("az://c/x").unwrap(), (Service::Azure, "c".into(), "x".into()));
        for bad in ["s3:/b", "ftp://b/p", "s3:///p", "s3://b/a//c", "s3://b/../x", "s3://b/p?region=x"] {
            assert!(parse_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn segments_are_distinct_and_bounded() {
        assert_ne!(segment(""), segment("a"));
        assert!(!segment("a/b").contains('/'));
        let long = "x".repeat(1000);
        assert_eq!(segment(&long).len(), 65);
        assert_ne!(segment(&long), segment(&"x".repeat(999)));
    }
}
