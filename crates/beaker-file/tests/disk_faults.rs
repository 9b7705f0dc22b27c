//! The file store on a real full disk and a real read-only file system: a small tmpfs
//! mounted for the test (so this needs root and permission to mount; otherwise the test
//! says loudly that it skipped). Every failed write is a clear error, leaves no partial or
//! temporary file behind, and never damages the record that was there before.

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use beaker_core::store::SessionStore;
use beaker_file::{FileOptions, FileStore};
use beaker_testkit::store::{changes, fresh_key, record};
use common::{files, leftovers};

/// A tmpfs of `size` mounted on a fresh directory; unmounted on drop.
struct Tmpfs {
    dir: PathBuf,
}

impl Tmpfs {
    fn mount(size: &str) -> Option<Tmpfs> {
        let dir = std::env::temp_dir().join(format!("beaker-file-faults-{}-{size}", std::process::id()));
        std::fs::create_dir_all(&dir).ok()?;
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size},mode=0755"), "tmpfs"])
            .arg(&dir)
            .output()
            .is_ok_and(|o| o.status.success());
        if !ok {
            let _ = std::fs::remove_dir(&dir);
            eprintln!(
                "!! SKIPPED file store disk-fault test: cannot mount a tmpfs here (needs root and mount rights) !!"
            );
            return None;
        }
        Some(Tmpfs { dir })
    }

    fn remount_read_only(&self) {
        let ok = Command::new("mount").args(["-o", "remount,ro"]).arg(&self.dir).status().is_ok_and(|s| s.success());
        assert!(ok, "remount read-only failed");
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
        let _ = std::fs::remove_dir(&self.dir);
    }
}

/// The error and its causes, as one line (the I/O error is kept as the `source`).
fn chain(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut cause = err.source();
    while let Some(c) = cause {
        out.push_str(": ");
        out.push_str(&c.to_string());
        cause = c.source();
    }
    out
}

#[tokio::test]
async fn a_full_disk_is_a_clear_error_and_leaves_no_partial_files() {
    let Some(fs) = Tmpfs::mount("256k") else { return };
    let store = FileStore::open(&fs.dir, FileOptions::new()).await.expect("open on the tmpfs");
    let k = fresh_key();
    let small = record(&[("user", b"j\"ada\"")], None);
    assert!(store.create(&k, &small).await.unwrap());
    let before = files(&fs.dir);

    // A new session too large for the disk.
    let big = vec![b'x'; 512 * 1024];
    let err = store.create(&fresh_key(), &record(&[("blob", &big)], None)).await.unwrap_err();
    let msg = chain(&err);
    assert!(err.is_unavailable(), "a full disk is an outage, not corruption: {err}");
    assert!(msg.to_lowercase().contains("space"), "the error should say the disk is full: {msg}");
    assert!(!msg.contains(k.as_str()), "the store key leaked into the error: {msg}");
    assert_eq!(leftovers(&fs.dir), Vec::<String>::new(), "a failed create left files behind");
    assert_eq!(files(&fs.dir), before, "a failed create changed the directory");

    // An update of the existing session that does not fit either.
    let err = store.apply(&k, &changes(&[("blob", &big)], &[], None)).await.unwrap_err();
    assert!(err.is_unavailable(), "{err}");
    assert_eq!(leftovers(&fs.dir), Vec::<String>::new(), "a failed apply left files behind");
    assert_eq!(store.load(&k).await.unwrap(), Some(small.clone()), "the old record was damaged by the failed write");

    // Once there is room again, writes work. The kernel can be a moment late in giving back
    // the blocks of the temporary file the failed write removed (seen about once in a hundred
    // runs), so the first write may still meet a full disk; a file the store kept open would
    // keep the space forever and fail this.
    let mut done = small.clone();
    done.apply(&changes(&[("n", b"j1")], &[], None));
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        match store.apply(&k, &changes(&[("n", b"j1")], &[], None)).await {
            Ok(found) => break assert!(found),
            Err(e) if std::time::Instant::now() < deadline && chain(&e).contains("space") => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => panic!("the disk has room again, yet the write failed: {}", chain(&e)),
        }
    }
    let loaded = store.load(&k).await.unwrap().unwrap();
    assert_eq!(loaded.entries, done.entries);
}

#[tokio::test]
async fn a_read_only_file_system_is_a_clear_error_and_reads_still_work() {
    let Some(fs) = Tmpfs::mount("1m") else { return };
    let store = FileStore::open(&fs.dir, FileOptions::new()).await.expect("open on the tmpfs");
    let k = fresh_key();
    let r = record(&[("user", b"j\"ada\"")], None);
    assert!(store.create(&k, &r).await.unwrap());
    fs.remount_read_only();
    let before = files(&fs.dir);

    let err = store.create(&fresh_key(), &r).await.unwrap_err();
    assert!(err.is_unavailable(), "{err}");
    let msg = chain(&err);
    assert!(msg.to_lowercase().contains("read-only"), "the error should say why: {msg}");
    let err = store.apply(&k, &changes(&[("n", b"j1")], &[], None)).await.unwrap_err();
    assert!(err.is_unavailable(), "{err}");
    let err = store.delete(&k).await.unwrap_err();
    assert!(err.is_unavailable(), "{err}");
    assert_eq!(store.load(&k).await.unwrap(), Some(r), "reads keep working on a read-only disk");
    assert_eq!(files(&fs.dir), before, "nothing may change on a read-only disk");
}
