//! The [`CacheBackend`] half of [`FileStore`]: one file per entry, one directory per
//! namespace, both named by hashes so that any namespace or key is a safe file name.

use std::fs;
use std::io;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use beaker_core::cache::{CacheBackend, CacheEntry, NamespaceStats};
use beaker_core::store::async_trait;
use beaker_core::StoreError;
use sha2::{Digest, Sha256};

use crate::fsops::{self, blocking, from_millis, io_error, read_opt, remove_opt, to_millis, TempFile};
use crate::store::FileStore;

/// An entry file: this magic, the hard expiry (ms since the epoch, 0 = none), then
/// [`CacheEntry::to_bytes`]. The hard expiry is the backend's, so it is not in the entry.
const FILE_MAGIC: &[u8] = b"BKF1";
const HEADER: usize = FILE_MAGIC.len() + 8;

fn hex_digest(s: &str, len: usize) -> String {
    Sha256::digest(s.as_bytes()).iter().take(len).map(|b| format!("{b:02x}")).collect()
}

/// Decodes an entry file; `None` when its hard TTL has passed at `now`.
fn decode(bytes: &[u8], now: SystemTime) -> Result<Option<CacheEntry>, StoreError> {
    if bytes.len() < HEADER || &bytes[..FILE_MAGIC.len()] != FILE_MAGIC {
        return Err(StoreError::corrupt("file store: not a beaker cache file"));
    }
    let hard = u64::from_be_bytes(bytes[FILE_MAGIC.len()..HEADER].try_into().expect("8 bytes"));
    if hard != 0 && from_millis(hard) <= now {
        return Ok(None);
    }
    CacheEntry::from_bytes(&bytes[HEADER..]).map(Some)
}

impl FileStore {
    /// The directory of `namespace` (128 bits of its SHA-256) and the file of `key` in it.
    fn entry_path(&self, namespace: &str, key: &str) -> (PathBuf, PathBuf) {
        let dir = self.inner.cache.join(hex_digest(namespace, 16));
        let file = dir.join(hex_digest(key, 20));
        (dir, file)
    }

    /// Removes cache entries past their hard TTL (and abandoned temporary files and
    /// directories); returns how many entries went. Entries are not touched by
    /// [`SessionStore::cleanup`](beaker_core::store::SessionStore::cleanup), which is about sessions.
    pub async fn cleanup_cache(&self) -> Result<u64, StoreError> {
        let inner = self.inner.clone();
        blocking(move || {
            let now = inner.clock.now();
            let err = |e| io_error("clean the cache", &inner.root, e);
            let mut removed = 0;
            for ns in fs::read_dir(&inner.cache).map_err(err)?.flatten() {
                let name = ns.file_name().to_string_lossy().into_owned();
                if name.starts_with(fsops::TRASH_PREFIX) {
                    // A clear that died half-way.
                    let _ = fs::remove_dir_all(ns.path());
                    continue;
                }
                let Ok(files) = fs::read_dir(ns.path()) else { continue };
                for file in files.flatten() {
                    let fname = file.file_name().to_string_lossy().into_owned();
                    if fsops::is_stale_temp(&fname, &file, now) {
                        let _ = fs::remove_file(file.path());
                        continue;
                    }
                    // Racing a `put` here is harmless: a replaced file is read afresh, and a
                    // file removed a moment after being rewritten is only a cache miss.
                    let expired =
                        read_opt(&file.path()).ok().flatten().is_some_and(|b| matches!(decode(&b, now), Ok(None)));
                    if expired && remove_opt(&file.path()).map_err(err)? {
                        removed += 1;
                    }
                }
            }
            Ok(removed)
        })
        .await
    }
}

#[async_trait]
impl CacheBackend for FileStore {
    async fn get(&self, namespace: &str, key: &str) -> Result<Option<CacheEntry>, StoreError> {
        let (_, path) = self.entry_path(namespace, key);
        let inner = self.inner.clone();
        blocking(move || match read_opt(&path).map_err(|e| io_error("read a cache entry", &inner.root, e))? {
            Some(bytes) => decode(&bytes, inner.clock.now()),
            None => Ok(None),
        })
        .await
    }

    async fn put(
        &self,
        namespace: &str,
        key: &str,
        entry: &CacheEntry,
        hard_ttl: Option<Duration>,
    ) -> Result<(), StoreError> {
        let (dir, path) = self.entry_path(namespace, key);
        let hard = hard_ttl.map_or(0, |ttl| to_millis(self.inner.clock.now() + ttl).max(1));
        let mut bytes = Vec::with_capacity(HEADER + 20 + entry.value.len());
        bytes.extend_from_slice(FILE_MAGIC);
        bytes.extend_from_slice(&hard.to_be_bytes());
        bytes.extend_from_slice(&entry.to_bytes());
        let inner = self.inner.clone();
        blocking(move || {
            let err = |e| io_error("write a cache entry", &inner.root, e);
            let write = || -> io::Result<()> {
                fsops::create_dir(&dir)?;
                TempFile::write(&dir, &bytes, inner.fsync)?.rename_to(&path)
            };
            match write() {
                // A concurrent `clear` moved the namespace directory away mid-write: once more.
                Err(e) if e.kind() == io::ErrorKind::NotFound => write().map_err(err),
                other => other.map_err(err),
            }
        })
        .await
    }

    async fn remove(&self, namespace: &str, key: &str) -> Result<bool, StoreError> {
        let (_, path) = self.entry_path(namespace, key);
        let root = self.inner.root.clone();
        blocking(move || remove_opt(&path).map_err(|e| io_error("remove a cache entry", &root, e))).await
    }

    /// Moves the namespace's directory aside in one rename (so the namespace is empty at
    /// once for every reader), then deletes it.
    async fn clear(&self, namespace: &str) -> Result<(), StoreError> {
        let (dir, _) = self.entry_path(namespace, "");
        let inner = self.inner.clone();
        blocking(move || {
            let trash = inner.cache.join(fsops::random_name(fsops::TRASH_PREFIX));
            match fs::rename(&dir, &trash) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
                Err(e) => return Err(io_error("clear a cache namespace", &inner.root, e)),
            }
            fs::remove_dir_all(&trash).map_err(|e| io_error("clear a cache namespace", &inner.root, e))
        })
        .await
    }

    /// Reads the namespace's directory: live entry files, not temporary ones or those
    /// past their hard TTL.
    async fn namespace_stats(&self, namespace: &str) -> Result<NamespaceStats, StoreError> {
        let (dir, _) = self.entry_path(namespace, "");
        let inner = self.inner.clone();
        blocking(move || {
            let files = match fs::read_dir(&dir) {
                Ok(files) => files,
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(NamespaceStats::new(0, Some(0))),
                Err(e) => return Err(io_error("count a cache namespace", &inner.root, e)),
            };
            let now = inner.clock.now();
            let (mut entries, mut bytes) = (0u64, 0u64);
            for file in files.flatten() {
                if file.file_name().to_string_lossy().starts_with(fsops::TEMP_PREFIX) {
                    continue;
                }
                // A file removed or replaced meanwhile is simply not counted, or counted anew.
                let Ok(Some(content)) = read_opt(&file.path()) else { continue };
                if let Ok(Some(entry)) = decode(&content, now) {
                    entries += 1;
                    bytes += entry.value.len() as u64;
                }
            }
            Ok(NamespaceStats::new(entries, Some(bytes)))
        })
        .await
    }

    fn name(&self) -> &'static str {
        "file"
    }
}
