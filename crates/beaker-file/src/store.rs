//! [`FileStore`]: sessions as files; the cache half lives in `cache.rs`.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use beaker_core::store::{async_trait, Changes, Listed, Lookup, Page, Record, SessionHandle, SessionStore, StoreKey};
use beaker_core::{Clock, StoreError};

use crate::fsops::{self, blocking, io_error, read_opt, remove_opt, TempFile};
use crate::locks::StripedLocks;
use crate::options::FileOptions;
use crate::principals::{self, principal_of};
use crate::tombstone;

const SESSIONS_DIR: &str = "sessions";
/// The end of the year 9999, where tombstone times saturate.
const LATEST: Duration = Duration::from_secs(253_402_300_799);
/// Sessions `find` reads per walk of the directory.
const FIND_PAGE: usize = 5000;
pub(crate) const CACHE_DIR: &str = "cache";

/// Sessions and cache entries as files under one directory (Beaker's `data_dir`).
///
/// Cheap to clone: clones share the directory and the per-record locks. See the
/// [crate documentation](crate) for the layout and the guarantees.
///
/// ```
/// use beaker_core::cache::{CacheBackend, CacheEntry};
/// use beaker_file::{FileOptions, FileStore};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), beaker_core::StoreError> {
/// # let dir = tempfile::tempdir().unwrap();
/// let store = FileStore::open(dir.path(), FileOptions::new()).await?;
/// let entry = CacheEntry { value: b"j42".to_vec(), stored_at: std::time::SystemTime::now(), fresh_until: None };
/// store.put("reports", "2024", &entry, None).await?;
/// assert_eq!(store.get("reports", "2024").await?.map(|e| e.value), Some(b"j42".to_vec()));
/// store.clear("reports").await?;
/// assert!(store.get("reports", "2024").await?.is_none());
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct FileStore {
    pub(crate) inner: Arc<Inner>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) root: PathBuf,
    pub(crate) sessions: PathBuf,
    /// The principal index (see `principals.rs`).
    pub(crate) principals: PathBuf,
    pub(crate) cache: PathBuf,
    pub(crate) fsync: bool,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) locks: StripedLocks,
    /// Time limit of one session operation.
    timeout: Option<Duration>,
}

impl FileStore {
    /// Opens (creating it, owner-only, if needed) the store under `dir`.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when the directory cannot be created or is not writable.
    pub async fn open(dir: impl Into<PathBuf>, options: FileOptions) -> Result<Self, StoreError> {
        let root: PathBuf = dir.into();
        let inner = Inner {
            sessions: root.join(SESSIONS_DIR),
            principals: root.join(principals::PRINCIPALS_DIR),
            cache: root.join(CACHE_DIR),
            root,
            fsync: options.fsync_enabled(),
            clock: options.clock_ref().clone(),
            locks: StripedLocks::new(),
            timeout: options.timeout_limit(),
        };
        let (sessions, cache, root) = (inner.sessions.clone(), inner.cache.clone(), inner.root.clone());
        let principals = inner.principals.clone();
        blocking(move || {
            for d in [&sessions, &cache, &principals] {
                fsops::create_dir(d).map_err(|e| io_error("create the store directory", &root, e))?;
            }
            // Fail at start-up, not on the first request, when the directory is read-only.
            TempFile::write(&sessions, b"", false).map_err(|e| io_error("write a test file", &root, e))?;
            Ok(())
        })
        .await?;
        Ok(FileStore { inner: Arc::new(inner) })
    }

    /// The directory the store was opened on.
    pub fn directory(&self) -> &Path {
        &self.inner.root
    }

    /// The file of `key`. Store keys are `[A-Za-z0-9_-]` already; this checks again so that
    /// no key can name a path outside the directory, whatever its origin.
    pub(crate) fn session_path(&self, key: &StoreKey) -> Result<PathBuf, StoreError> {
        match StoreKey::from_stored(key.as_str()) {
            Some(_) => Ok(self.inner.sessions.join(key.as_str())),
            None => Err(StoreError::rejected("file store: store key is not a safe file name", None)),
        }
    }

    /// Runs `f` on the record of `key` under its lock: `f` gets the live record (or `None`)
    /// and returns the record to write, if any. Returns whether something was written.
    /// A change of owner moves the key in the principal index: the new marker before the
    /// write, the old one after it.
    async fn update<F>(&self, key: &StoreKey, f: F) -> Result<bool, StoreError>
    where
        F: FnOnce(Record) -> Record + Send + 'static,
    {
        let path = self.session_path(key)?;
        let _guard = self.inner.locks.lock(key.as_str()).await;
        let inner = self.inner.clone();
        let key = key.clone();
        blocking(move || {
            let Some(current) = read_live(&inner, &path)? else { return Ok(false) };
            let old = principal_of(&current).map(str::to_owned);
            let next = f(current);
            let new = principal_of(&next).filter(|p| Some(*p) != old.as_deref());
            if let Some(new) = new {
                principals::put(&inner.principals, new, &key)
                    .map_err(|e| io_error("index a session", &inner.root, e))?;
            }
            let temp = TempFile::write(&inner.sessions, &next.to_bytes(), inner.fsync)
                .map_err(|e| io_error("write a session", &inner.root, e))?;
            temp.rename_to(&path).map_err(|e| io_error("replace a session", &inner.root, e))?;
            if new.is_some() {
                unfile(&inner, old.as_deref(), &key)?;
            }
            Ok(true)
        })
        .await
    }

    fn now(&self) -> SystemTime {
        self.inner.clock.now()
    }
}

/// What is at `path`: a live record, a live tombstone, or nothing (absent, expired, a
/// lapsed tombstone); `Corrupt` when undecodable.
pub(crate) fn read_state(inner: &Inner, path: &Path) -> Result<Lookup, StoreError> {
    let Some(bytes) = read_opt(path).map_err(|e| io_error("read a session", &inner.root, e))? else {
        return Ok(Lookup::Missing);
    };
    let now = inner.clock.now();
    if let Some(until) = tombstone::decode(&bytes) {
        return Ok(if until > now { Lookup::Retired } else { Lookup::Missing });
    }
    let record = Record::from_bytes(&bytes)?;
    Ok(if record.is_expired(now) { Lookup::Missing } else { Lookup::Live(record) })
}

/// The live record at `path`: `None` when absent, expired or retired.
pub(crate) fn read_live(inner: &Inner, path: &Path) -> Result<Option<Record>, StoreError> {
    Ok(match read_state(inner, path)? {
        Lookup::Live(record) => Some(record),
        Lookup::Retired | Lookup::Missing => None,
    })
}

/// Removes `key` from the index of `principal`, if it has one (after its record went).
fn unfile(inner: &Inner, principal: Option<&str>, key: &StoreKey) -> Result<(), StoreError> {
    match principal {
        Some(p) => {
            principals::remove(&inner.principals, p, key).map_err(|e| io_error("unindex a session", &inner.root, e))
        }
        None => Ok(()),
    }
}

/// The principal of whatever record is at `path`, expired or not (`None` for no record, a
/// tombstone, a corrupt file or a record without an owner).
fn principal_at(path: &Path) -> Option<String> {
    let bytes = read_opt(path).ok()??;
    Record::from_bytes(&bytes).ok()?.owner.map(|o| o.principal)
}

/// Removes `key`'s marker under `principal` unless the live record at `path` is filed
/// there: what a write that put the marker first does when the write does not happen.
fn unfile_unless_owned(inner: &Inner, path: &Path, principal: &str, key: &StoreKey) {
    let owned = matches!(read_live(inner, path), Ok(Some(r)) if principal_of(&r) == Some(principal));
    if !owned {
        let _ = principals::remove(&inner.principals, principal, key);
    }
}

/// Replaces whatever is at `path` by a tombstone lapsing `retire_for` from now (one
/// rename: readers see the old file or the tombstone), or removes it for a zero window.
fn retire(inner: &Inner, path: &Path, retire_for: Duration) -> Result<(), StoreError> {
    if retire_for.is_zero() {
        return remove_opt(path).map(drop).map_err(|e| io_error("delete a session", &inner.root, e));
    }
    // Saturated, like every time in beaker: a huge window means "until the year 9999".
    let latest = SystemTime::UNIX_EPOCH + LATEST;
    let until = inner.clock.now().checked_add(retire_for).map_or(latest, |t| t.min(latest));
    let temp = TempFile::write(&inner.sessions, &tombstone::encode(until), inner.fsync)
        .map_err(|e| io_error("write a tombstone", &inner.root, e))?;
    temp.rename_to(path).map_err(|e| io_error("retire a session", &inner.root, e))
}

impl FileStore {
    /// Runs one session operation within the store's time limit. The file work itself
    /// cannot be interrupted (a blocking thread keeps waiting on a hung disk); the caller
    /// gets its answer in time and the record's lock is released.
    async fn within<T>(
        &self,
        op: &'static str,
        fut: impl std::future::Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        match self.inner.timeout {
            None => fut.await,
            Some(limit) => tokio::time::timeout(limit, fut).await.unwrap_or_else(|_| {
                Err(StoreError::Unavailable {
                    message: format!("file store: {op}: no answer within {limit:?} in {}", self.inner.root.display()),
                    source: None,
                })
            }),
        }
    }
}

#[async_trait]
impl SessionStore for FileStore {
    async fn load(&self, key: &StoreKey) -> Result<Option<Record>, StoreError> {
        self.within("load", self.load_untimed(key)).await
    }

    async fn create(&self, key: &StoreKey, record: &Record) -> Result<bool, StoreError> {
        self.within("create", self.create_untimed(key, record)).await
    }

    async fn lookup(&self, key: &StoreKey) -> Result<Lookup, StoreError> {
        self.within("lookup", self.lookup_untimed(key)).await
    }

    async fn end(&self, key: &StoreKey, retire_for: Duration) -> Result<(), StoreError> {
        self.within("end", self.end_untimed(key, retire_for)).await
    }

    async fn rename(
        &self,
        from: &StoreKey,
        to: &StoreKey,
        changes: &Changes,
        retire_for: Duration,
    ) -> Result<bool, StoreError> {
        self.within("rename", self.rename_untimed(from, to, changes, retire_for)).await
    }

    async fn apply(&self, key: &StoreKey, changes: &Changes) -> Result<bool, StoreError> {
        self.within("apply", self.apply_untimed(key, changes)).await
    }

    async fn touch(
        &self,
        key: &StoreKey,
        accessed: SystemTime,
        expires: Option<SystemTime>,
    ) -> Result<bool, StoreError> {
        self.within("touch", self.touch_untimed(key, accessed, expires)).await
    }

    async fn delete(&self, key: &StoreKey) -> Result<(), StoreError> {
        self.within("delete", self.delete_untimed(key)).await
    }

    /// Removes expired session files (and temporary files abandoned by a crashed writer);
    /// returns how many sessions went. Corrupt files are left for an operator to inspect.
    /// Not bounded by the time limit: a sweep of a large directory may take longer.
    async fn cleanup(&self) -> Result<u64, StoreError> {
        self.cleanup_untimed().await
    }

    /// Lists the principal's directory and reads each record it names; markers whose
    /// record is gone, expired or no longer the principal's are removed on the way.
    async fn sessions_of(&self, principal: &str) -> Result<Vec<Listed>, StoreError> {
        self.within("sessions_of", self.sessions_of_untimed(principal)).await
    }

    /// Reads every session file (tombstones and expired records are not counted). Not
    /// bounded by the time limit, like `cleanup`.
    async fn count(&self) -> Result<u64, StoreError> {
        self.count_untimed().await
    }

    /// A page of sessions in file-name order, after the cursor (the last name of the
    /// previous page). Each page walks the directory once, keeping only `limit` names.
    async fn scan(&self, cursor: Option<&str>, limit: usize) -> Result<Page, StoreError> {
        self.within("scan", self.scan_untimed(cursor, limit)).await
    }

    /// Scans (the file store keeps no handle index): one walk of the directory per page of
    /// `FIND_PAGE` sessions.
    async fn find(&self, handle: &SessionHandle) -> Result<Option<StoreKey>, StoreError> {
        let mut cursor: Option<String> = None;
        loop {
            let page = self.scan_untimed(cursor.as_deref(), FIND_PAGE).await?;
            if let Some(found) = page.items.into_iter().find(|l| SessionHandle::of(&l.key) == *handle) {
                return Ok(Some(found.key));
            }
            match page.next {
                Some(next) => cursor = Some(next),
                None => return Ok(None),
            }
        }
    }

    fn name(&self) -> &'static str {
        "file"
    }
}

/// The session operations without the time limit.
impl FileStore {
    async fn load_untimed(&self, key: &StoreKey) -> Result<Option<Record>, StoreError> {
        // No lock: every write is a rename, so a read sees one whole version of the file.
        let path = self.session_path(key)?;
        let inner = self.inner.clone();
        blocking(move || read_live(&inner, &path)).await
    }

    async fn lookup_untimed(&self, key: &StoreKey) -> Result<Lookup, StoreError> {
        let path = self.session_path(key)?;
        let inner = self.inner.clone();
        blocking(move || read_state(&inner, &path)).await
    }

    async fn end_untimed(&self, key: &StoreKey, retire_for: Duration) -> Result<(), StoreError> {
        let path = self.session_path(key)?;
        let _guard = self.inner.locks.lock(key.as_str()).await;
        let inner = self.inner.clone();
        let key = key.clone();
        blocking(move || {
            let principal = principal_at(&path);
            retire(&inner, &path, retire_for)?;
            unfile(&inner, principal.as_deref(), &key)
        })
        .await
    }

    async fn rename_untimed(
        &self,
        from: &StoreKey,
        to: &StoreKey,
        changes: &Changes,
        retire_for: Duration,
    ) -> Result<bool, StoreError> {
        let (from_path, to_path) = (self.session_path(from)?, self.session_path(to)?);
        // The old record's lock for the whole move: an `apply` on it runs before (and its
        // change is in what moves) or after (and finds the tombstone).
        let _guard = self.inner.locks.lock(from.as_str()).await;
        let inner = self.inner.clone();
        let changes = changes.clone();
        let (from, to) = (from.clone(), to.clone());
        blocking(move || {
            let Some(mut record) = read_live(&inner, &from_path)? else { return Ok(false) };
            let old = principal_of(&record).map(str::to_owned);
            record.apply(&changes);
            let new = principal_of(&record).map(str::to_owned);
            if let Some(new) = &new {
                principals::put(&inner.principals, new, &to)
                    .map_err(|e| io_error("index a session", &inner.root, e))?;
            }
            // A link, not a rename: it fails rather than replace a file under the new name.
            let placed = TempFile::write(&inner.sessions, &record.to_bytes(), inner.fsync)
                .and_then(|temp| temp.link_to(&to_path))
                .map_err(|e| io_error("move a session", &inner.root, e));
            if !matches!(placed, Ok(true)) {
                if let Some(new) = &new {
                    unfile_unless_owned(&inner, &to_path, new, &to);
                }
                placed?;
                return Err(StoreError::Backend {
                    message: "file store: rename target already exists".into(),
                    source: None,
                });
            }
            retire(&inner, &from_path, retire_for)?;
            unfile(&inner, old.as_deref(), &from)?;
            Ok(true)
        })
        .await
    }

    async fn create_untimed(&self, key: &StoreKey, record: &Record) -> Result<bool, StoreError> {
        let path = self.session_path(key)?;
        let bytes = record.to_bytes();
        let _guard = self.inner.locks.lock(key.as_str()).await;
        let inner = self.inner.clone();
        let principal = principal_of(record).map(str::to_owned);
        let key = key.clone();
        blocking(move || {
            // A corrupt file is no live record: it may be replaced.
            let live = |p: &Path| matches!(read_live(&inner, p), Ok(Some(_)));
            let exists = path.exists();
            if exists && live(&path) {
                return Ok(false);
            }
            // The marker first: a crash leaves a stale marker (pruned later), never a live
            // record missing from the index.
            if let Some(principal) = &principal {
                principals::put(&inner.principals, principal, &key)
                    .map_err(|e| io_error("index a session", &inner.root, e))?;
            }
            let created = create_file(&inner, &path, &bytes, exists);
            if let (Some(principal), false) = (&principal, matches!(created, Ok(true))) {
                unfile_unless_owned(&inner, &path, principal, &key);
            }
            created
        })
        .await
    }
}

/// Writes the new record `bytes` at `path` (`exists`: a dead file is there, to be
/// replaced); `false` when another process created a live one first.
fn create_file(inner: &Inner, path: &Path, bytes: &[u8], exists: bool) -> Result<bool, StoreError> {
    let temp = TempFile::write(&inner.sessions, bytes, inner.fsync)
        .map_err(|e| io_error("write a session", &inner.root, e))?;
    if exists {
        temp.rename_to(path).map_err(|e| io_error("replace a session", &inner.root, e))?;
        return Ok(true);
    }
    if temp.link_to(path).map_err(|e| io_error("create a session", &inner.root, e))? {
        return Ok(true);
    }
    // Another process created it since we looked; it wins unless already expired.
    if matches!(read_live(inner, path), Ok(Some(_))) {
        return Ok(false);
    }
    let temp = TempFile::write(&inner.sessions, bytes, inner.fsync)
        .map_err(|e| io_error("write a session", &inner.root, e))?;
    temp.rename_to(path).map_err(|e| io_error("replace a session", &inner.root, e))?;
    Ok(true)
}

impl FileStore {
    async fn apply_untimed(&self, key: &StoreKey, changes: &Changes) -> Result<bool, StoreError> {
        let changes = changes.clone();
        self.update(key, move |mut r| {
            r.apply(&changes);
            r
        })
        .await
    }

    async fn touch_untimed(
        &self,
        key: &StoreKey,
        accessed: SystemTime,
        expires: Option<SystemTime>,
    ) -> Result<bool, StoreError> {
        self.update(key, move |mut r| {
            r.accessed = accessed;
            r.expires = expires;
            r
        })
        .await
    }

    async fn delete_untimed(&self, key: &StoreKey) -> Result<(), StoreError> {
        let path = self.session_path(key)?;
        let _guard = self.inner.locks.lock(key.as_str()).await;
        let root = self.inner.root.clone();
        let (inner, key) = (self.inner.clone(), key.clone());
        blocking(move || {
            let principal = principal_at(&path);
            remove_opt(&path).map(drop).map_err(|e| io_error("delete a session", &root, e))?;
            unfile(&inner, principal.as_deref(), &key)
        })
        .await
    }

    async fn cleanup_untimed(&self) -> Result<u64, StoreError> {
        let inner = self.inner.clone();
        let now = self.now();
        let names = blocking(move || {
            let mut keys = Vec::new();
            let dir = fs::read_dir(&inner.sessions).map_err(|e| io_error("list sessions", &inner.root, e))?;
            for entry in dir.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if fsops::is_stale_temp(&name, &entry, now) {
                    let _ = fs::remove_file(entry.path());
                } else if let Some(key) = StoreKey::from_stored(&name) {
                    keys.push(key);
                }
            }
            Ok(keys)
        })
        .await?;
        let mut removed = 0;
        for key in names {
            // Under the record's lock, so that a record re-created since the listing survives.
            let _guard = self.inner.locks.lock(key.as_str()).await;
            let path = self.session_path(&key)?;
            let inner = self.inner.clone();
            let gone = blocking(move || {
                let now = inner.clock.now();
                let (expired, principal) = match read_opt(&path) {
                    Ok(Some(bytes)) => match tombstone::decode(&bytes) {
                        Some(until) => (until <= now, None),
                        None => match Record::from_bytes(&bytes) {
                            Ok(r) => (r.is_expired(now), r.owner.map(|o| o.principal)),
                            Err(_) => (false, None),
                        },
                    },
                    _ => (false, None),
                };
                let gone = expired && remove_opt(&path).map_err(|e| io_error("delete a session", &inner.root, e))?;
                if gone {
                    unfile(&inner, principal.as_deref(), &key)?;
                }
                Ok(gone)
            })
            .await?;
            removed += u64::from(gone);
        }
        // Markers a crashed writer left behind (the record never written, or gone).
        self.sweep_markers().await?;
        Ok(removed)
    }
}
