//! Enumeration on the file store: the principal index (`sessions_of`), `count` and `scan`
//! by walking the sessions directory, and the sweep of stale index markers.

use std::collections::BinaryHeap;
use std::fs;
use std::path::PathBuf;

use beaker_core::store::{Listed, Lookup, Page, StoreKey};
use beaker_core::StoreError;

use crate::fsops::{blocking, io_error};
use crate::principals::{self, principal_of};
use crate::store::{read_live, read_state, FileStore};

/// Most names one `scan` page keeps in memory, whatever the caller asks for.
const SCAN_PAGE_MAX: usize = 10_000;

impl FileStore {
    pub(crate) async fn sessions_of_untimed(&self, principal: &str) -> Result<Vec<Listed>, StoreError> {
        let inner = self.inner.clone();
        let dir = principals::dir_of(&inner.principals, principal);
        let keys =
            blocking(move || principals::keys_in(&dir).map_err(|e| io_error("list a principal", &inner.root, e)))
                .await?;
        let mut listed = Vec::with_capacity(keys.len());
        for key in keys {
            let path = self.session_path(&key)?;
            let inner = self.inner.clone();
            let state = blocking(move || read_state(&inner, &path)).await;
            match state {
                Ok(Lookup::Live(record)) if principal_of(&record) == Some(principal) => {
                    listed.push(Listed::of(&key, &record));
                }
                // A corrupt record is reported by `load`; its marker stays for an operator.
                Err(StoreError::Corrupt { .. }) => {}
                Err(e) => return Err(e),
                Ok(_) => self.prune_marker(principal, &key).await?,
            }
        }
        Ok(listed)
    }

    /// Removes `key`'s marker under `principal` if, under the record's lock, its record is
    /// still not a live one of `principal` (a create may have filed it a moment ago).
    async fn prune_marker(&self, principal: &str, key: &StoreKey) -> Result<(), StoreError> {
        let path = self.session_path(key)?;
        let _guard = self.inner.locks.lock(key.as_str()).await;
        let (inner, principal, key) = (self.inner.clone(), principal.to_owned(), key.clone());
        blocking(move || {
            let owned = match read_live(&inner, &path) {
                Ok(Some(record)) => principal_of(&record) == Some(principal.as_str()),
                Ok(None) => false,
                Err(StoreError::Corrupt { .. }) => true,
                Err(e) => return Err(e),
            };
            if !owned {
                principals::remove(&inner.principals, &principal, &key)
                    .map_err(|e| io_error("unindex a session", &inner.root, e))?;
            }
            Ok(())
        })
        .await
    }

    /// Removes every marker whose record is not a live one of its principal, and the
    /// principal directories left empty. Directory by directory, so memory stays bounded
    /// by the largest principal.
    pub(crate) async fn sweep_markers(&self) -> Result<(), StoreError> {
        let inner = self.inner.clone();
        let dirs: Vec<PathBuf> = blocking(move || {
            let entries = fs::read_dir(&inner.principals).map_err(|e| io_error("list principals", &inner.root, e))?;
            Ok(entries.flatten().map(|e| e.path()).collect())
        })
        .await?;
        for dir in dirs {
            let inner = self.inner.clone();
            let listed = dir.clone();
            let keys = blocking(move || {
                principals::keys_in(&listed).map_err(|e| io_error("list a principal", &inner.root, e))
            })
            .await?;
            for key in keys {
                let path = self.session_path(&key)?;
                let _guard = self.inner.locks.lock(key.as_str()).await;
                let (inner, dir) = (self.inner.clone(), dir.clone());
                blocking(move || {
                    let filed_here = match read_live(&inner, &path) {
                        Ok(Some(record)) => {
                            principal_of(&record).is_some_and(|p| principals::dir_of(&inner.principals, p) == dir)
                        }
                        Ok(None) => false,
                        Err(StoreError::Corrupt { .. }) => true,
                        Err(e) => return Err(e),
                    };
                    if !filed_here {
                        crate::fsops::remove_opt(&dir.join(key.as_str()))
                            .map_err(|e| io_error("unindex a session", &inner.root, e))?;
                    }
                    Ok(())
                })
                .await?;
            }
            // Fails while the directory holds a marker, which is what we want; a writer that
            // loses its directory here makes it again (see `principals::put`).
            let _ = fs::remove_dir(&dir);
        }
        Ok(())
    }

    pub(crate) async fn count_untimed(&self) -> Result<u64, StoreError> {
        let inner = self.inner.clone();
        blocking(move || {
            let mut count = 0;
            let entries = fs::read_dir(&inner.sessions).map_err(|e| io_error("list sessions", &inner.root, e))?;
            for entry in entries.flatten() {
                if StoreKey::from_stored(&entry.file_name().to_string_lossy()).is_none() {
                    continue;
                }
                match read_live(&inner, &entry.path()) {
                    Ok(Some(_)) => count += 1,
                    Ok(None) | Err(StoreError::Corrupt { .. }) => {}
                    Err(e) => return Err(e),
                }
            }
            Ok(count)
        })
        .await
    }

    pub(crate) async fn scan_untimed(&self, cursor: Option<&str>, limit: usize) -> Result<Page, StoreError> {
        let mut after = match cursor {
            None => String::new(),
            Some(c) if StoreKey::from_stored(c).is_some() => c.to_owned(),
            Some(c) => {
                return Err(StoreError::rejected(format!("file store: {c:?} is not a scan cursor of this store"), None))
            }
        };
        let limit = limit.clamp(1, SCAN_PAGE_MAX);
        let inner = self.inner.clone();
        blocking(move || {
            let mut items = Vec::new();
            // Names of tombstones and expired records take a place in a batch without
            // giving an item: batches go on until one gives something or the walk ends.
            loop {
                let batch = smallest_after(&inner.sessions, &after, limit)
                    .map_err(|e| io_error("list sessions", &inner.root, e))?;
                let done = batch.len() < limit;
                for name in &batch {
                    let Some(key) = StoreKey::from_stored(name) else { continue };
                    match read_live(&inner, &inner.sessions.join(name)) {
                        Ok(Some(record)) => items.push(Listed::of(&key, &record)),
                        Ok(None) | Err(StoreError::Corrupt { .. }) => {}
                        Err(e) => return Err(e),
                    }
                }
                match batch.last() {
                    Some(last) if !done => after = last.clone(),
                    _ => return Ok(Page { items, next: None }),
                }
                if !items.is_empty() {
                    return Ok(Page { items, next: Some(after) });
                }
            }
        })
        .await
    }
}

/// The `limit` smallest session file names greater than `after`, in order: one walk of the
/// directory holding at most `limit` names.
fn smallest_after(dir: &std::path::Path, after: &str, limit: usize) -> std::io::Result<Vec<String>> {
    let mut heap: BinaryHeap<String> = BinaryHeap::with_capacity(limit + 1);
    for entry in fs::read_dir(dir)? {
        let name = entry?.file_name().to_string_lossy().into_owned();
        if name.as_str() <= after || StoreKey::from_stored(&name).is_none() {
            continue;
        }
        if heap.len() < limit {
            heap.push(name);
        } else if heap.peek().is_some_and(|top| name < *top) {
            heap.pop();
            heap.push(name);
        }
    }
    Ok(heap.into_sorted_vec())
}
