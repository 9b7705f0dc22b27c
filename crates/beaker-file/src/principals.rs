//! The principal index as files: an empty marker `<dir>/principals/<hash of principal>/<key>`
//! for every session that has an owner, written before the record and removed after it.
//! A marker whose record is gone, expired or owned by someone else is stale: listing and
//! `cleanup` prune it, so the index never lists what the sessions directory does not hold.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use beaker_core::store::{Record, StoreKey};
use sha2::{Digest, Sha256};

use crate::fsops::{self, remove_opt};

pub(crate) const PRINCIPALS_DIR: &str = "principals";

/// The directory of `principal`'s markers: a hash, so that any principal is a safe name.
pub(crate) fn dir_of(principals: &Path, principal: &str) -> PathBuf {
    let digest = Sha256::new_with_prefix(b"beaker-rs principal\0").chain_update(principal.as_bytes()).finalize();
    principals.join(digest.iter().map(|b| format!("{b:02x}")).collect::<String>())
}

/// The principal `record` is filed under, if any.
pub(crate) fn principal_of(record: &Record) -> Option<&str> {
    record.owner.as_ref().map(|o| o.principal.as_str())
}

/// Files `key` under `principal`. A `cleanup` may remove the (empty) directory between
/// its creation and the marker's: the creation is then tried again.
pub(crate) fn put(principals: &Path, principal: &str, key: &StoreKey) -> io::Result<()> {
    let dir = dir_of(principals, principal);
    let mut attempts = 0;
    loop {
        fsops::create_dir(&dir)?;
        let mut options = fs::OpenOptions::new();
        options.write(true).create(true).truncate(false);
        match options.open(dir.join(key.as_str())) {
            Ok(_) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound && attempts < 3 => attempts += 1,
            Err(e) => return Err(e),
        }
    }
}

/// Removes `key` from `principal`'s markers (absent is fine).
pub(crate) fn remove(principals: &Path, principal: &str, key: &StoreKey) -> io::Result<()> {
    remove_opt(&dir_of(principals, principal).join(key.as_str())).map(drop)
}

/// The keys filed in `dir` (a principal's directory); none when it does not exist.
pub(crate) fn keys_in(dir: &Path) -> io::Result<Vec<StoreKey>> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut keys = Vec::new();
    for entry in entries {
        if let Some(key) = StoreKey::from_stored(&entry?.file_name().to_string_lossy()) {
            keys.push(key);
        }
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn principal_directories_are_safe_names_and_distinct() {
        let root = Path::new("/s/principals");
        let a = dir_of(root, "../../etc/passwd");
        assert_eq!(a.parent(), Some(root));
        assert_eq!(a.file_name().unwrap().len(), 64);
        assert_ne!(dir_of(root, "alice"), dir_of(root, "Alice"));
        assert_eq!(dir_of(root, "alice"), dir_of(root, "alice"));
    }
}
