//! The principal index on object storage: an empty marker object
//! `<prefix>/principals/<hash of principal>/<key>` per owned session, written before the
//! record and removed after it; and the enumeration (`sessions_of`, `count`, `scan`) by
//! listing prefixes. Object stores have no transaction across two objects, so a marker
//! may outlive its record for a moment (or, after a crash, until pruned): every listing
//! reads the record a marker names and lists only live records of that principal.

use std::time::SystemTime;

use beaker_core::store::{Listed, Page, Record, StoreKey};
use beaker_core::StoreError;
use futures_util::StreamExt as _;
use object_store::path::Path;
use object_store::{ObjectMeta, PutMode, PutOptions, PutPayload};
use sha2::{Digest as _, Sha256};

use crate::error::map_error;
use crate::session::{ObjectSessionStore, Stored, TOMBSTONE_LEN};

/// The prefix (under the store's) of the index's markers.
pub(crate) const PRINCIPALS: &str = "principals";

/// Most records one `scan` page reads, whatever the caller asks for.
const SCAN_PAGE_MAX: usize = 1000;

/// The directory of `principal`'s markers: a hash, so that any principal is a safe path.
pub(crate) fn principal_segment(principal: &str) -> String {
    let digest = Sha256::new_with_prefix(b"beaker-rs principal\0").chain_update(principal.as_bytes()).finalize();
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// The principal `record` is filed under, if any.
pub(crate) fn principal_of(record: &Record) -> Option<&str> {
    record.owner.as_ref().map(|o| o.principal.as_str())
}

impl ObjectSessionStore {
    fn marker_path(&self, principal: &str, key: &StoreKey) -> Path {
        self.client.path(&[PRINCIPALS, &principal_segment(principal), key.as_str()])
    }

    /// Files `key` under `principal` (an empty object; writing it again is harmless).
    pub(crate) async fn put_marker(&self, principal: &str, key: &StoreKey) -> Result<(), StoreError> {
        let options = PutOptions { mode: PutMode::Overwrite, ..Default::default() };
        self.client
            .store
            .put_opts(&self.marker_path(principal, key), PutPayload::new(), options)
            .await
            .map(drop)
            .map_err(|e| map_error("index", e))
    }

    pub(crate) async fn remove_marker(&self, principal: &str, key: &StoreKey) -> Result<(), StoreError> {
        self.delete_path("index", &self.marker_path(principal, key)).await
    }

    /// Before writing `record` over one owned by `old`: files the key under its new
    /// principal if that changed; whether it did.
    pub(crate) async fn file_before(
        &self,
        key: &StoreKey,
        old: Option<&str>,
        record: &Record,
    ) -> Result<bool, StoreError> {
        match principal_of(record) {
            Some(new) if Some(new) != old => self.put_marker(new, key).await.map(|()| true),
            _ => Ok(false),
        }
    }

    /// After the write: removes the key from its old principal if it moved.
    pub(crate) async fn unfile_after(&self, key: &StoreKey, old: Option<&str>, moved: bool) -> Result<(), StoreError> {
        match old {
            Some(old) if moved => self.remove_marker(old, key).await,
            _ => Ok(()),
        }
    }

    pub(crate) async fn unfile(&self, key: &StoreKey, principal: Option<&str>) -> Result<(), StoreError> {
        match principal {
            Some(p) => self.remove_marker(p, key).await,
            None => Ok(()),
        }
    }

    /// The principal of the record at `path`, expired or not.
    pub(crate) async fn principal_at(&self, what: &str, path: &Path) -> Result<Option<String>, StoreError> {
        Ok(match self.read_stored(what, path).await {
            Ok(Some(Stored::Record(read))) => principal_of(&read.record).map(str::to_owned),
            Ok(_) | Err(StoreError::Corrupt { .. }) => None,
            Err(e) => return Err(e),
        })
    }

    /// Whether a marker is old enough that no write that put it can still be running.
    fn past_grace(&self, marker: &ObjectMeta) -> bool {
        let written = SystemTime::from(marker.last_modified);
        SystemTime::now().duration_since(written).is_ok_and(|age| age >= self.client.options.index_grace)
    }

    /// The live record `key` names if it is `principal`'s (by its segment), else `None`.
    async fn owned_record(&self, what: &str, key: &StoreKey, segment: &str) -> Result<Option<Record>, StoreError> {
        let now = SystemTime::now();
        Ok(match self.read_stored(what, &self.object_path(key)).await {
            Ok(Some(Stored::Record(read)))
                if !read.record.is_expired(now)
                    && principal_of(&read.record).map(principal_segment).as_deref() == Some(segment) =>
            {
                Some(read.record)
            }
            Ok(_) | Err(StoreError::Corrupt { .. }) => None,
            Err(e) => return Err(e),
        })
    }

    pub(crate) async fn sessions_of_inner(&self, principal: &str) -> Result<Vec<Listed>, StoreError> {
        let segment = principal_segment(principal);
        let prefix = self.client.path(&[PRINCIPALS, &segment]);
        let markers: Vec<ObjectMeta> = self
            .client
            .bounded("sessions_of", async {
                let listing: Vec<_> = self.client.store.list(Some(&prefix)).collect().await;
                listing.into_iter().collect::<Result<Vec<_>, _>>().map_err(|e| map_error("sessions_of", e))
            })
            .await?;
        let mut listed = Vec::with_capacity(markers.len());
        for marker in markers {
            let Some(key) = marker.location.filename().and_then(StoreKey::from_stored) else { continue };
            let record = self.client.bounded("sessions_of", self.owned_record("sessions_of", &key, &segment)).await?;
            match record {
                Some(record) if principal_of(&record) == Some(principal) => listed.push(Listed::of(&key, &record)),
                _ if self.past_grace(&marker) => {
                    self.client.bounded("sessions_of", self.delete_path("sessions_of", &marker.location)).await?;
                }
                _ => {}
            }
        }
        Ok(listed)
    }

    /// Removes the markers (past the grace) whose record is gone, expired, a tombstone or
    /// owned by another principal: what a crashed or failed write leaves behind.
    pub(crate) async fn sweep_markers(&self) -> Result<(), StoreError> {
        let prefix = self.client.path(&[PRINCIPALS]);
        let mut listing = self.client.store.list(Some(&prefix));
        while let Some(marker) = listing.next().await {
            let marker = marker.map_err(|e| map_error("cleanup", e))?;
            let parts: Vec<_> = marker.location.parts().collect();
            let (Some(segment), Some(key)) = (
                parts.len().checked_sub(2).map(|i| parts[i].as_ref().to_owned()),
                marker.location.filename().and_then(StoreKey::from_stored),
            ) else {
                continue;
            };
            if !self.past_grace(&marker) {
                continue;
            }
            if self.owned_record("cleanup", &key, &segment).await?.is_none() {
                self.delete_path("cleanup", &marker.location).await?;
            }
        }
        Ok(())
    }

    pub(crate) async fn count_inner(&self) -> Result<u64, StoreError> {
        let prefix = self.client.path(&["s"]);
        let mut listing = self.client.store.list(Some(&prefix));
        let mut count = 0;
        while let Some(meta) = listing.next().await {
            let meta = meta.map_err(|e| map_error("count", e))?;
            if meta.size != TOMBSTONE_LEN {
                count += 1;
            }
        }
        Ok(count)
    }

    pub(crate) async fn scan_inner(&self, cursor: Option<&str>, limit: usize) -> Result<Page, StoreError> {
        let prefix = self.client.path(&["s"]);
        let mut listing = match cursor {
            None => self.client.store.list(Some(&prefix)),
            Some(c) => match StoreKey::from_stored(c) {
                Some(after) => self.client.store.list_with_offset(Some(&prefix), &self.object_path(&after)),
                None => {
                    return Err(StoreError::rejected(
                        format!("{}: {c:?} is not a scan cursor of this store", self.client.service.as_str()),
                        None,
                    ))
                }
            },
        };
        let limit = limit.clamp(1, SCAN_PAGE_MAX);
        let now = SystemTime::now();
        let mut items = Vec::new();
        while let Some(meta) = listing.next().await {
            let meta = meta.map_err(|e| map_error("scan", e))?;
            let Some(key) = meta.location.filename().and_then(StoreKey::from_stored) else { continue };
            if meta.size == TOMBSTONE_LEN {
                continue;
            }
            let read = self.client.bounded("scan", self.read("scan", &meta.location)).await;
            match read {
                Ok(Some(read)) if !read.record.is_expired(now) => items.push(Listed::of(&key, &read.record)),
                Ok(_) | Err(StoreError::Corrupt { .. }) => {}
                Err(e) => return Err(e),
            }
            if items.len() == limit {
                return Ok(Page { next: Some(key.as_str().to_owned()), items });
            }
        }
        Ok(Page { items, next: None })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn principal_segments_are_safe_and_distinct() {
        let a = principal_segment("../../x/y");
        assert_eq!(a.len(), 64);
        assert!(a.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(principal_segment("alice"), principal_segment("Alice"));
    }
}
