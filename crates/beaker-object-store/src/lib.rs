//! S3, Google Cloud Storage and Azure Blob Storage for beaker-rs: an
//! [`ObjectSessionStore`] (sessions) and an [`ObjectCache`] (cache regions), on the
//! [`object_store`] crate's one client for the three clouds.
//!
//! Depend on this crate directly only to build a store by hand; applications usually
//! switch on the `object-store` feature of `beaker-rs` and set
//! `BEAKER_SESSION_URL=s3://BUCKET/PREFIX` (or `gs://…`, `az://CONTAINER/PREFIX`), with
//! credentials in the environment the cloud's own tools read (see [`ObjectStoreClient`]).
//!
//! ```no_run
//! use beaker_core::{SessionConfig, SessionManager};
//! use beaker_object_store::{ObjectSessionStore, ObjectStoreOptions};
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! // AWS_REGION, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY (and AWS_ENDPOINT_URL for an
//! // S3-compatible service) come from the environment.
//! let store = ObjectSessionStore::connect("s3://my-bucket/sessions", ObjectStoreOptions::default()).await?;
//! let config = SessionConfig::new().with_secret("change me: at least 16 bytes")?;
//! let manager = SessionManager::builder(config).store(store).build()?;
//! # Ok(()) }
//! ```
//!
//! Every change is a conditional write (ETag or generation match; put-if-absent for new
//! objects), so concurrent requests changing different keys of one session all survive
//! and a deleted session is never written back. An unreachable service, a timeout or a
//! server error is [`StoreError::Unavailable`](beaker_core::StoreError::Unavailable):
//! 503 under the default outage policy.
//!
//! S3-compatible services must support conditional writes (`If-Match` and
//! `If-None-Match` on `PutObject`): Amazon S3 does, as do MinIO and Cloudflare R2.
//!
//! ## Features
//!
//! This crate has no optional features; S3, GCS and Azure are always built. It is switched
//! on in the facade:
//!
//! | Name | Description | Default |
//! |---|---|---|
//! | `beaker-rs/object-store` | `s3://`, `gs://` and `az://` URLs open an [`ObjectSessionStore`] or [`ObjectCache`] | no |
//!
//! ## MSRV
//!
//! Rust 1.82, like the rest of beaker-rs.

mod cache;
mod client;
mod error;
mod index;
mod session;

pub use cache::ObjectCache;
pub use client::{ObjectStoreClient, ObjectStoreOptions, Service};
pub use error::ConnectError;
pub use session::ObjectSessionStore;
