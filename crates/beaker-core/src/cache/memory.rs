//! The storage of memory regions: a bounded quick_cache of *decoded* values.
//!
//! Values are kept as `Arc<MemEntry<dyn Any>>` so that a hit is a hash lookup, an `Arc`
//! clone and a downcast — no serializer. The engine evicts only by size; freshness, namespace clears
//! and region invalidation are decided by the region from the generations stored next to
//! each value, so that stale values stay readable for serve-stale.

use std::any::Any;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use quick_cache::sync::Cache;
use quick_cache::{Equivalent, Weighter};

/// Entries are keyed by namespace id and (length-limited) key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MemKey {
    pub(crate) namespace: u64,
    pub(crate) key: Box<str>,
}

// Hash by hand, identically to `MemKeyRef`, so that lookups need no owned key.
impl Hash for MemKey {
    #[inline]
    fn hash<H: Hasher>(&self, state: &mut H) {
        MemKeyRef { namespace: self.namespace, key: &self.key }.hash(state);
    }
}

/// A borrowed [`MemKey`] for lookups.
#[derive(Debug, Clone, Copy)]
pub(crate) struct MemKeyRef<'a> {
    pub(crate) namespace: u64,
    pub(crate) key: &'a str,
}

impl Hash for MemKeyRef<'_> {
    #[inline]
    fn hash<H: Hasher>(&self, state: &mut H) {
        // One `write` and one `write_u64` (no length prefix or terminator: equal keys
        // hash equally, which is all a hash map needs): the hit path hashes little.
        state.write(self.key.as_bytes());
        state.write_u64(self.namespace);
    }
}

impl Equivalent<MemKey> for MemKeyRef<'_> {
    fn equivalent(&self, key: &MemKey) -> bool {
        self.namespace == key.namespace && self.key == &*key.key
    }
}

/// One value of a memory region, with what the region needs to judge it.
///
/// Built as a `MemEntry<T>` and held as `Arc<MemEntry>` (the value unsized to `dyn Any`):
/// the value sits in the same allocation as its generations, so a hit follows one pointer
/// and a write allocates once.
pub(crate) struct MemEntry<V: ?Sized = dyn Any + Send + Sync> {
    /// `std::any::type_name` of the value, for the wrong-type error.
    pub(crate) type_name: &'static str,
    /// Milliseconds since the epoch until which the value is fresh; 0 = always.
    pub(crate) fresh_until_ms: u64,
    /// The region's soft-invalidation generation when stored.
    pub(crate) soft_gen: u64,
    /// The region's hard-invalidation generation when stored.
    pub(crate) hard_gen: u64,
    /// The namespace's clear generation when stored.
    pub(crate) ns_gen: u64,
    /// Weight for the byte bound (1 when the region is bounded by entries).
    pub(crate) weight: u64,
    /// The value (last: the field that is unsized).
    pub(crate) value: V,
}

impl std::fmt::Debug for MemEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemEntry")
            .field("type_name", &self.type_name)
            .field("fresh_until_ms", &self.fresh_until_ms)
            .field("weight", &self.weight)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, Copy)]
struct EntryWeighter;

impl Weighter<MemKey, Arc<MemEntry>> for EntryWeighter {
    fn weight(&self, _key: &MemKey, val: &Arc<MemEntry>) -> u64 {
        val.weight
    }
}

/// How a memory region is bounded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Bound {
    /// At most this many entries.
    Entries(u64),
    /// At most about this many bytes of keys and (serialized-size estimated) values.
    Bytes(u64),
}

/// The engine of one memory region.
pub(crate) struct MemoryEngine {
    // Entries behind an `Arc`: a hit clones one pointer out of the engine.
    cache: Cache<MemKey, Arc<MemEntry>, EntryWeighter>,
    bound: Bound,
}

impl std::fmt::Debug for MemoryEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryEngine").field("bound", &self.bound).field("len", &self.cache.len()).finish()
    }
}

/// Bytes counted per entry on top of its key and value, for the byte bound.
const ENTRY_OVERHEAD: u64 = 96;

impl MemoryEngine {
    pub(crate) fn new(bound: Bound) -> Self {
        let (items, weight) = match bound {
            Bound::Entries(n) => (n.max(1), n.max(1)),
            // A guess at the item count only sizes the initial tables.
            Bound::Bytes(b) => ((b / 256).max(16), b.max(1)),
        };
        let items = usize::try_from(items).unwrap_or(usize::MAX);
        MemoryEngine { cache: Cache::with_weighter(items, weight, EntryWeighter), bound }
    }

    /// Whether values need a size estimate (a serializer pass on writes, never on reads).
    pub(crate) fn weighs_bytes(&self) -> bool {
        matches!(self.bound, Bound::Bytes(_))
    }

    /// The weight of an entry whose key is `key_len` bytes and value about `value_len`.
    pub(crate) fn weight_of(&self, key_len: usize, value_len: usize) -> u64 {
        match self.bound {
            Bound::Entries(_) => 1,
            Bound::Bytes(_) => ENTRY_OVERHEAD + key_len as u64 + value_len as u64,
        }
    }

    #[inline]
    pub(crate) fn get(&self, namespace: u64, key: &str) -> Option<Arc<MemEntry>> {
        self.cache.get(&MemKeyRef { namespace, key })
    }

    pub(crate) fn insert(&self, namespace: u64, key: &str, entry: Arc<MemEntry>) {
        self.cache.insert(MemKey { namespace, key: key.into() }, entry);
    }

    pub(crate) fn remove(&self, namespace: u64, key: &str) -> bool {
        self.cache.remove(&MemKeyRef { namespace, key }).is_some()
    }
}
