//! The process-local dogpile lock: one async mutex per key that someone is creating.
//!
//! Runtime-agnostic (async-lock, woken through event-listener). The table holds an entry
//! only while a key is locked or waited for; guards remove it on drop, so a finished,
//! failed, panicking or cancelled creator never leaves the key wedged.

use std::collections::HashMap;
use std::sync::Arc;

use async_lock::{Mutex, MutexGuardArc};

type KeyMutex = Arc<Mutex<()>>;

/// A key of the lock table: namespace id + length-limited key.
type LockKey = (u64, Box<str>);

#[derive(Debug, Default)]
pub(crate) struct LockTable {
    locks: parking_lot::Mutex<HashMap<LockKey, KeyMutex>>,
}

/// Holds the lock of one key; dropping it (also by unwinding or cancellation) releases it.
#[derive(Debug)]
pub(crate) struct KeyGuard {
    // Field order matters: the mutex is unlocked before the table entry is tidied.
    _held: MutexGuardArc<()>,
    _entry: EntryRef,
}

/// A counted reference to a table entry; the last one out removes the entry.
#[derive(Debug)]
struct EntryRef {
    table: Arc<LockTable>,
    key: Option<LockKey>,
    mutex: Option<KeyMutex>,
}

impl Drop for EntryRef {
    fn drop(&mut self) {
        let mut locks = self.table.locks.lock();
        drop(self.mutex.take());
        if let Some(key) = self.key.take() {
            // Clones are only made under the table lock, so the count cannot grow here.
            if locks.get(&key).is_some_and(|m| Arc::strong_count(m) == 1) {
                locks.remove(&key);
            }
        }
    }
}

impl LockTable {
    fn entry(self: &Arc<Self>, namespace: u64, key: &str) -> EntryRef {
        let key: LockKey = (namespace, key.into());
        let mutex = self.locks.lock().entry(key.clone()).or_default().clone();
        EntryRef { table: Arc::clone(self), key: Some(key), mutex: Some(mutex) }
    }

    /// The lock of `key` if nobody holds it, without waiting.
    pub(crate) fn try_lock(self: &Arc<Self>, namespace: u64, key: &str) -> Option<KeyGuard> {
        let entry = self.entry(namespace, key);
        let held = entry.mutex.as_ref().expect("set until drop").try_lock_arc()?;
        Some(KeyGuard { _held: held, _entry: entry })
    }

    /// The lock of `key`, waiting for the current holder to finish.
    pub(crate) async fn lock(self: &Arc<Self>, namespace: u64, key: &str) -> KeyGuard {
        let entry = self.entry(namespace, key);
        let held = entry.mutex.as_ref().expect("set until drop").lock_arc().await;
        KeyGuard { _held: held, _entry: entry }
    }

    /// Keys currently locked or waited for (for tests of the no-leak promise).
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.locks.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guards_exclude_each_other_and_leave_nothing_behind() {
        let table = Arc::new(LockTable::default());
        let first = table.try_lock(1, "k").expect("free");
        assert!(table.try_lock(1, "k").is_none(), "held");
        assert!(table.try_lock(2, "k").is_some(), "other namespace");
        assert_eq!(table.len(), 1);
        drop(first);
        assert_eq!(table.len(), 0);
        assert!(table.try_lock(1, "k").is_some());
        assert_eq!(table.len(), 0);
    }
}
