//! What the object-store test files share: the emulators' URLs under a fresh prefix, a
//! client on them, and wiping what a test wrote.

#![allow(dead_code, unreachable_pub)]

use beaker_core::store::StoreKey;
use beaker_core::SessionId;
use beaker_object_store::{ObjectStoreClient, ObjectStoreOptions};
use beaker_testkit::skip_or_fail;
use futures_util::StreamExt as _;
use object_store::ObjectStore as _;

pub const SERVICES: [(&str, &str); 3] =
    [("BEAKER_TEST_S3_URL", "s3 (moto)"), ("BEAKER_TEST_AZURE_URL", "azure (Azurite)"), (GCS_VAR, "gcs")];

/// No GCS emulator installable from PyPI or npm accepts object_store's requests with
/// their preconditions (see the crate's README), so the GCS tests run only against a
/// service given explicitly (a real bucket), and their absence is not a CI failure.
pub const GCS_VAR: &str = "BEAKER_TEST_GCS_URL";

/// The emulator's URL with a fresh prefix; `None` (after a loud skip) when it is not set.
pub fn url(var: &str, suite: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(base) if !base.is_empty() => {
            let key = StoreKey::for_id(&SessionId::generate(), true);
            let run = &key.as_str()[..12];
            Some(format!("{}/beaker-test-{run}", base.trim_end_matches('/')))
        }
        _ if var == GCS_VAR => {
            use std::io::Write as _;
            let why = "BEAKER_TEST_GCS_URL is unset: no GCS emulator supports object_store's requests with generation preconditions; set it to a real gs:// bucket";
            let _ = writeln!(std::io::stderr(), "\n=== SKIPPED: {suite}: {why} ===\n");
            None
        }
        _ => {
            skip_or_fail(suite, &format!("{var} is unset (run `cargo xtask services`)"));
            None
        }
    }
}

pub async fn client(var: &str, suite: &str) -> Option<ObjectStoreClient> {
    client_with(var, suite, ObjectStoreOptions::default()).await
}

pub async fn client_with(var: &str, suite: &str, options: ObjectStoreOptions) -> Option<ObjectStoreClient> {
    let url = url(var, suite)?;
    Some(ObjectStoreClient::connect(&url, options).await.unwrap_or_else(|e| panic!("{url}: {e}")))
}

/// Deletes every object under the client's prefix.
pub async fn wipe(client: &ObjectStoreClient) {
    let store = client.object_store();
    let prefix = object_store::path::Path::from(client.prefix());
    let paths: Vec<_> =
        store.list(Some(&prefix)).filter_map(|m| async move { m.ok().map(|m| m.location) }).collect().await;
    for p in paths {
        let _ = store.delete(&p).await;
    }
}
