//! Blocking file operations (run on tokio's blocking pool) and their error mapping.
//!
//! Every compound operation (read, decide, write, rename) runs as one blocking task rather
//! than as a chain of `tokio::fs` calls, each of which would be its own thread hop.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use beaker_core::StoreError;

/// Prefix of temporary files; never a valid store key or hash, so listings skip them.
pub(crate) const TEMP_PREFIX: &str = ".tmp.";
/// Prefix of namespace directories being removed by a cache `clear`.
pub(crate) const TRASH_PREFIX: &str = ".trash.";
/// A temporary file this old belongs to a writer that died; cleanup removes it.
pub(crate) const STALE_TEMP: Duration = Duration::from_secs(3600);

/// Runs `f` on the blocking pool.
pub(crate) async fn blocking<T, F>(f: F) -> Result<T, StoreError>
where
    F: FnOnce() -> Result<T, StoreError> + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(f).await.map_err(|e| StoreError::backend("file store task failed", e))?
}

/// Maps an I/O error: the disk or directory is not usable, so callers answer 503.
pub(crate) fn io_error(what: &str, dir: &Path, e: io::Error) -> StoreError {
    StoreError::unavailable(format!("file store: could not {what} in {}", dir.display()), e)
}

/// The file's bytes, or `None` when it does not exist.
pub(crate) fn read_opt(path: &Path) -> io::Result<Option<Vec<u8>>> {
    match fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Removes a file; whether it was there.
pub(crate) fn remove_opt(path: &Path) -> io::Result<bool> {
    match fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// Creates a directory (and its parents) readable by the owner only: sessions are secrets.
pub(crate) fn create_dir(path: &Path) -> io::Result<()> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(path)
}

/// A random, unused-looking name with `prefix`.
pub(crate) fn random_name(prefix: &str) -> String {
    let mut bytes = [0u8; 12];
    // Uniqueness, not secrecy, is what matters here; fall back to the time if the OS
    // random source fails rather than failing the write.
    if getrandom::getrandom(&mut bytes).is_err() {
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        bytes.copy_from_slice(&nanos.to_le_bytes()[..12]);
    }
    let mut name = String::with_capacity(prefix.len() + 24);
    name.push_str(prefix);
    for b in bytes {
        name.push_str(&format!("{b:02x}"));
    }
    name
}

/// A fully written temporary file next to its target. Dropping it removes it, so a failed
/// operation leaves nothing behind.
#[derive(Debug)]
pub(crate) struct TempFile {
    path: PathBuf,
    placed: bool,
}

impl TempFile {
    /// Writes `bytes` to a new temporary file in `dir` (the target's directory, so that the
    /// final rename stays within one file system and is atomic).
    pub(crate) fn write(dir: &Path, bytes: &[u8], fsync: bool) -> io::Result<TempFile> {
        let mut temp = TempFile { path: dir.join(random_name(TEMP_PREFIX)), placed: false };
        let mut options = fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = match options.open(&temp.path) {
            Ok(f) => f,
            Err(e) => {
                // Nothing was created; do not try to remove a file that is not ours.
                temp.placed = true;
                return Err(e);
            }
        };
        file.write_all(bytes)?;
        if fsync {
            file.sync_all()?;
        }
        Ok(temp)
    }

    /// Renames the file over `target`, replacing whatever is there.
    pub(crate) fn rename_to(mut self, target: &Path) -> io::Result<()> {
        fs::rename(&self.path, target)?;
        self.placed = true;
        Ok(())
    }

    /// Puts the file at `target` only if nothing is there; `false` if something is. A hard
    /// link fails atomically when the target exists, even against another process.
    pub(crate) fn link_to(self, target: &Path) -> io::Result<bool> {
        match fs::hard_link(&self.path, target) {
            Ok(()) => Ok(true), // dropping `self` removes the temporary name
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
            // File systems without hard links: check, then rename (atomic within one process,
            // where the caller holds the record's lock).
            Err(_) if target.exists() => Ok(false),
            Err(_) => self.rename_to(target).map(|()| true),
        }
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.placed {
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// Whether a directory entry named `name` is a temporary file old enough to be abandoned.
pub(crate) fn is_stale_temp(name: &str, entry: &fs::DirEntry, now: SystemTime) -> bool {
    name.starts_with(TEMP_PREFIX)
        && entry
            .metadata()
            .and_then(|m| m.modified())
            .is_ok_and(|t| now.duration_since(t).is_ok_and(|age| age >= STALE_TEMP))
}

/// Milliseconds since the Unix epoch (0 for earlier times).
pub(crate) fn to_millis(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// The time `ms` milliseconds after the Unix epoch.
pub(crate) fn from_millis(ms: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms)
}
