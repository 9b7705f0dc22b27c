//! The memory store's principal index and the order of its scans.
//!
//! The index maps a principal to the keys filed under it. It is never trusted on its
//! own: a listing checks each key against the store (the record must be live and still
//! owned by that principal) and prunes what fails, so a key whose record was ended,
//! deleted, renamed away, evicted, expired or given to another principal is never listed.
//! What a listing does not visit is swept when the index has grown by the store's
//! capacity since the last sweep, and by `cleanup`, which keeps the index within a small
//! multiple of the store's bound.
//!
//! Lock order: the index's lock, then (inside the checks) a shard's. The store never
//! takes the index's lock while it holds a shard's.

use std::collections::hash_map::Entry;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::hash::BuildHasher;

use crate::error::StoreError;
use crate::id::StoreKey;
use crate::store::{Listed, Page, Record};

type Hasher = foldhash::fast::RandomState;

/// principal → the keys of its sessions, as filed (checked when read).
#[derive(Debug)]
pub(crate) struct PrincipalIndex {
    by_principal: HashMap<String, HashSet<StoreKey, Hasher>, Hasher>,
    /// Keys filed, over all principals.
    len: usize,
    /// The `len` at which the next full sweep runs.
    sweep_at: usize,
    /// How much the index may grow between sweeps: the store's capacity.
    slack: usize,
}

impl PrincipalIndex {
    pub(crate) fn new(capacity: usize) -> Self {
        let slack = capacity.max(1);
        PrincipalIndex { by_principal: HashMap::default(), len: 0, sweep_at: slack, slack }
    }

    /// Files `key` under `principal`; sweeps the whole index first when it has grown past
    /// its bound. `live(key, principal)` says whether the store still has that key owned
    /// by that principal.
    pub(crate) fn file(&mut self, key: &StoreKey, principal: &str, live: impl Fn(&StoreKey, &str) -> Option<Listed>) {
        if self.len >= self.sweep_at {
            self.sweep(|k, p| live(k, p).is_some());
        }
        let set = match self.by_principal.get_mut(principal) {
            Some(set) => set,
            None => self.by_principal.entry(principal.to_owned()).or_default(),
        };
        if set.insert(key.clone()) {
            self.len += 1;
        }
    }

    /// The live sessions of `principal`, pruning the keys that no longer are.
    pub(crate) fn list(&mut self, principal: &str, live: impl Fn(&StoreKey, &str) -> Option<Listed>) -> Vec<Listed> {
        let Entry::Occupied(mut entry) = self.by_principal.entry(principal.to_owned()) else { return Vec::new() };
        let mut out = Vec::new();
        let before = entry.get().len();
        entry.get_mut().retain(|key| match live(key, principal) {
            Some(listed) => {
                out.push(listed);
                true
            }
            None => false,
        });
        self.len -= before - entry.get().len();
        if entry.get().is_empty() {
            entry.remove();
        }
        out
    }

    /// Drops every key that `live` rejects.
    pub(crate) fn sweep(&mut self, live: impl Fn(&StoreKey, &str) -> bool) {
        let mut len = 0;
        self.by_principal.retain(|principal, keys| {
            keys.retain(|key| live(key, principal));
            len += keys.len();
            !keys.is_empty()
        });
        self.len = len;
        self.sweep_at = len.saturating_add(self.slack);
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.len
    }
}

/// The order of a memory store's scans: a keyed 64-bit hash of the store key, seeded per
/// store. A cursor is the last position returned, so it never shows a key (which, with
/// `hash_ids = false`, is a live session id) and means nothing to another store.
#[derive(Debug, Default)]
pub(crate) struct Cursor {
    hasher: Hasher,
}

const CURSOR_PREFIX: &str = "m1.";

impl Cursor {
    /// Reads a cursor this store handed out.
    pub(crate) fn parse(cursor: &str) -> Result<u64, StoreError> {
        cursor
            .strip_prefix(CURSOR_PREFIX)
            .filter(|hex| hex.len() == 16)
            .and_then(|hex| u64::from_str_radix(hex, 16).ok())
            .ok_or_else(|| StoreError::Backend {
                message: format!("{cursor:?} is not a cursor of a memory store scan"),
                source: None,
            })
    }

    /// A page of at most `limit` entries after position `after`.
    pub(crate) fn page(&self, after: Option<u64>, limit: usize) -> PageBuilder<'_> {
        PageBuilder { order: self, after, limit: limit.max(1), heap: BinaryHeap::new() }
    }

    fn position(&self, key: &StoreKey) -> u64 {
        self.hasher.hash_one(key.as_str())
    }
}

/// Keeps the `limit` entries that come first after the cursor, whatever order they are
/// offered in: memory is bounded by `limit`.
#[derive(Debug)]
pub(crate) struct PageBuilder<'a> {
    order: &'a Cursor,
    after: Option<u64>,
    limit: usize,
    heap: BinaryHeap<(u64, ListedByKey)>,
}

/// `Listed` ordered by nothing but its position (the heap's first field); ties on the
/// 64-bit position are as unlikely as a collision of two random 64-bit numbers.
#[derive(Debug)]
struct ListedByKey(Listed);

impl PartialEq for ListedByKey {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}
impl Eq for ListedByKey {}
impl PartialOrd for ListedByKey {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for ListedByKey {
    fn cmp(&self, _: &Self) -> std::cmp::Ordering {
        std::cmp::Ordering::Equal
    }
}

impl PageBuilder<'_> {
    /// Considers one live record.
    pub(crate) fn offer(&mut self, key: &StoreKey, record: &Record) {
        let position = self.order.position(key);
        if self.after.is_some_and(|after| position <= after) {
            return;
        }
        if self.heap.len() == self.limit {
            match self.heap.peek() {
                Some((last, _)) if position < *last => {
                    self.heap.pop();
                }
                _ => return,
            }
        }
        self.heap.push((position, ListedByKey(Listed::of(key, record))));
    }

    /// The page, in cursor order; `next` unless fewer than `limit` entries were left.
    pub(crate) fn finish(self) -> Page {
        let full = self.heap.len() == self.limit;
        let sorted = self.heap.into_sorted_vec();
        let next = match (full, sorted.last()) {
            (true, Some((last, _))) => Some(format!("{CURSOR_PREFIX}{last:016x}")),
            _ => None,
        };
        Page { items: sorted.into_iter().map(|(_, ListedByKey(l))| l).collect(), next }
    }
}
