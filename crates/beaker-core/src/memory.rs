//! [`MemoryStore`]: an in-process, bounded session store for tests and single-process apps.

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use quick_cache::sync::{Cache, DefaultLifecycle, EntryAction, EntryResult};
use quick_cache::{OptionsBuilder, Weighter};

use crate::clock::{Clock, SystemClock};
use crate::error::StoreError;
use crate::id::{SessionHandle, StoreKey};
use crate::memory_index::{Cursor, PrincipalIndex};
use crate::store::{Changes, Listed, Lookup, Page, Record, SessionStore};

/// foldhash, seeded per process: far cheaper than SipHash on these short keys. Keys that
/// reach the store come from server-issued ids (a SHA-256 digest, or the random id
/// itself), so no client picks them.
type Hasher = foldhash::fast::RandomState;

/// What a record is charged for besides its keys and values (timestamps, map nodes).
const RECORD_OVERHEAD: u64 = 96;
/// What one entry is charged for besides its key and value bytes.
const ENTRY_OVERHEAD: u64 = 32;
/// Fewest sessions per shard: smaller shards would make the bound too coarse.
const MIN_PER_SHARD: usize = 32;

/// What the store keeps under a key: a live record with its weight (computed once per
/// change: the engine asks for weights while it evicts, which must stay cheap), or the
/// tombstone of an ended session with when it lapses. Both sit in one engine entry, so a
/// key is live or retired under the engine's lock, never neither.
#[derive(Debug, Clone)]
enum Slot {
    Live { record: Record, weight: u64 },
    Retired { until: SystemTime },
}

impl Slot {
    fn weight(&self) -> u64 {
        match self {
            Slot::Live { weight, .. } => *weight,
            Slot::Retired { .. } => 1,
        }
    }

    /// Whether nothing under this slot is of use at `now` (an expired record or a lapsed
    /// tombstone).
    fn is_dead(&self, now: SystemTime) -> bool {
        match self {
            Slot::Live { record, .. } => record.is_expired(now),
            Slot::Retired { until } => *until <= now,
        }
    }

    fn live(&self, now: SystemTime) -> Option<&Record> {
        match self {
            Slot::Live { record, .. } if !record.is_expired(now) => Some(record),
            _ => None,
        }
    }
}

/// Weighs a record in units of `unit` bytes, at least 1: with a capacity of
/// `max_sessions` units, the store holds at most `max_sessions` records and at most
/// `max_sessions * unit` (about `max_bytes`) bytes.
#[derive(Debug, Clone, Copy)]
struct Units {
    unit: u64,
}

impl Units {
    fn slot(self, key: &StoreKey, record: Record) -> Slot {
        Slot::Live { weight: self.weigh(key, &record), record }
    }

    fn weigh(self, key: &StoreKey, record: &Record) -> u64 {
        let bytes = RECORD_OVERHEAD
            + key.as_str().len() as u64
            + record.entries.iter().map(|(k, v)| ENTRY_OVERHEAD + k.len() as u64 + v.len() as u64).sum::<u64>();
        bytes.div_ceil(self.unit).max(1)
    }
}

#[derive(Debug, Clone, Copy)]
struct SlotWeight;

impl Weighter<StoreKey, Slot> for SlotWeight {
    fn weight(&self, _key: &StoreKey, slot: &Slot) -> u64 {
        slot.weight()
    }
}

/// An in-process session store, bounded by a number of sessions and by bytes.
///
/// The storage is a [`quick_cache`] engine: its admission and eviction policy (a
/// CLOCK-Pro variant with ghost entries, in the spirit of TinyLFU and S3-FIFO) keeps the
/// sessions that come back and evicts first the ones that were created and never used
/// again. A flood of one-shot sessions (cookieless requests that write) therefore cycles
/// through a small part of the store instead of logging every user out.
///
/// Changes are applied in place under the engine's shard lock, so concurrent requests
/// changing different keys of one session both survive. Expired records are dropped when
/// read and by [`cleanup`](SessionStore::cleanup). Sessions are lost when the process exits.
///
/// Ended sessions leave a tombstone (no data, one unit of weight) in the same entry, for
/// the retire window: `end` and `rename` replace the record by it under the entry's lock,
/// so a concurrent `apply` runs before (and its change moves with a rename) or finds the
/// tombstone. Tombstones are evicted like records under pressure; an evicted one's id then
/// reads as unknown rather than retired.
#[derive(Debug, Clone)]
pub struct MemoryStore {
    inner: Arc<Inner>,
}

struct Inner {
    cache: Cache<StoreKey, Slot, SlotWeight, Hasher, DefaultLifecycle<StoreKey, Slot>>,
    units: Units,
    max_sessions: usize,
    max_bytes: u64,
    clock: Arc<dyn Clock>,
    /// principal → keys of the sessions it owns (see `memory_index.rs`). Only sessions
    /// with an owner ever take its lock.
    index: parking_lot::Mutex<PrincipalIndex>,
    /// Orders a scan (its cursor is a position in this order, never a key).
    cursor: Cursor,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryStore")
            .field("len", &self.cache.len())
            .field("max_sessions", &self.max_sessions)
            .field("max_bytes", &self.max_bytes)
            .finish_non_exhaustive()
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryStore {
    /// Default bound on the number of sessions.
    pub const DEFAULT_MAX_SESSIONS: usize = 100_000;
    /// Default bound on the bytes of session data (keys, values and a per-record overhead).
    pub const DEFAULT_MAX_BYTES: u64 = 256 * 1024 * 1024;

    /// A store with the default bounds ([`DEFAULT_MAX_SESSIONS`](Self::DEFAULT_MAX_SESSIONS),
    /// [`DEFAULT_MAX_BYTES`](Self::DEFAULT_MAX_BYTES)).
    pub fn new() -> Self {
        Self::with_capacity(Self::DEFAULT_MAX_SESSIONS)
    }

    /// A store holding at most `max_sessions` sessions (rounded down to a multiple of the
    /// engine's shard count) and the default bytes.
    pub fn with_capacity(max_sessions: usize) -> Self {
        Self::with_clock(max_sessions, Arc::new(SystemClock))
    }

    /// Like [`with_capacity`](Self::with_capacity), with the clock used for expiry.
    pub fn with_clock(max_sessions: usize, clock: Arc<dyn Clock>) -> Self {
        Self::bounded_with_clock(max_sessions, Self::DEFAULT_MAX_BYTES, clock)
    }

    /// A store holding at most `max_sessions` sessions and about `max_bytes` bytes of
    /// session data, whichever comes first.
    pub fn bounded(max_sessions: usize, max_bytes: u64) -> Self {
        Self::bounded_with_clock(max_sessions, max_bytes, Arc::new(SystemClock))
    }

    /// Like [`bounded`](Self::bounded), with the clock used for expiry.
    pub fn bounded_with_clock(max_sessions: usize, max_bytes: u64, clock: Arc<dyn Clock>) -> Self {
        let max_sessions = max_sessions.max(1);
        let max_bytes = max_bytes.max(1);
        let units = Units { unit: (max_bytes / max_sessions as u64).max(1) };
        // Shards of equal, exact capacity (the engine rounds each shard up otherwise, and
        // the bound would be exceeded by up to one record per shard).
        let parallelism = std::thread::available_parallelism().map_or(1, |n| n.get());
        let mut shards = (parallelism * 4).next_power_of_two();
        while shards > 1 && max_sessions / shards < MIN_PER_SHARD {
            shards /= 2;
        }
        let per_shard = (max_sessions / shards).max(1);
        let capacity = (per_shard * shards) as u64;
        let options = OptionsBuilder::new()
            .shards(shards)
            .estimated_items_capacity(per_shard * shards)
            .weight_capacity(capacity)
            // A tenth for new sessions: room for a new user to come back before a flood of
            // one-shot sessions pushes theirs out.
            .hot_allocation(0.9)
            .build()
            .expect("all options set");
        MemoryStore {
            inner: Arc::new(Inner {
                cache: Cache::with_options(options, SlotWeight, Hasher::default(), DefaultLifecycle::default()),
                units,
                max_sessions: per_shard * shards,
                max_bytes,
                clock,
                index: parking_lot::Mutex::new(PrincipalIndex::new(per_shard * shards)),
                cursor: Cursor::default(),
            }),
        }
    }

    /// Number of entries held: records and the tombstones of ended sessions (expired or
    /// lapsed ones included until they are dropped).
    pub fn len(&self) -> usize {
        self.inner.cache.len()
    }

    /// Whether the store holds no entry.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The most sessions the store holds.
    pub fn max_sessions(&self) -> usize {
        self.inner.max_sessions
    }

    /// The bytes of session data the store holds at most (as it counts them: keys, values
    /// and a fixed overhead per record and per entry).
    pub fn max_bytes(&self) -> u64 {
        self.inner.max_bytes
    }

    /// The bytes of session data held now, as counted against [`max_bytes`](Self::max_bytes)
    /// (rounded up to whole units of `max_bytes / max_sessions` per record).
    pub fn bytes(&self) -> u64 {
        self.inner.cache.weight() * self.inner.units.unit
    }

    /// [`SessionStore::lookup`], without the future: the session manager calls the
    /// built-in store directly (no boxed future, nothing that could hang).
    pub(crate) fn lookup_now(&self, key: &StoreKey) -> Lookup {
        let now = self.inner.clock.now();
        let Some(slot) = self.inner.cache.get(key) else { return Lookup::Missing };
        match slot {
            Slot::Live { record, .. } if !record.is_expired(now) => Lookup::Live(record),
            Slot::Retired { until } if until > now => Lookup::Retired,
            _ => {
                self.inner.cache.remove_if(key, |s| s.is_dead(now));
                Lookup::Missing
            }
        }
    }

    /// [`SessionStore::end`], without the future.
    pub(crate) fn end_now(&self, key: &StoreKey, retire_for: Duration) {
        if retire_for.is_zero() {
            self.inner.cache.remove(key);
            return;
        }
        let until = crate::clock::saturating_add(self.inner.clock.now(), retire_for);
        self.inner.cache.insert(key.clone(), Slot::Retired { until });
    }

    /// [`SessionStore::rename`], without the future.
    pub(crate) fn rename_now(
        &self,
        from: &StoreKey,
        to: &StoreKey,
        changes: &Changes,
        retire_for: Duration,
    ) -> Result<bool, StoreError> {
        let now = self.inner.clock.now();
        let until = crate::clock::saturating_add(now, retire_for);
        // Take the record out and leave the tombstone in one step under the entry's lock:
        // an `apply` on `from` either ran before (and its change moves) or finds nothing.
        let taken = match self.inner.cache.entry(from, None, |_, slot| match slot.live(now) {
            Some(record) => {
                let record = record.clone();
                if retire_for.is_zero() {
                    EntryAction::Remove
                } else {
                    *slot = Slot::Retired { until };
                    EntryAction::Retain(Some(record))
                }
            }
            None => EntryAction::Retain(None),
        }) {
            EntryResult::Retained(taken) => taken,
            EntryResult::Removed(_, Slot::Live { record, .. }) => Some(record),
            _ => None,
        };
        let Some(mut record) = taken else { return Ok(false) };
        record.apply(changes);
        if self.create_now(to, &record)? {
            return Ok(true);
        }
        // Never reached with fresh ids; put the record back rather than lose it.
        let weight = self.inner.units.weigh(from, &record);
        self.inner.cache.insert(from.clone(), Slot::Live { record, weight });
        Err(StoreError::Backend { message: "rename: a record already exists under the new key".into(), source: None })
    }

    /// Runs `f` on the live record of `key` in place; `None` when there is none (an
    /// expired record found on the way is dropped).
    fn update<T>(&self, key: &StoreKey, f: impl FnOnce(&mut Record) -> T) -> Option<T> {
        let now = self.inner.clock.now();
        let units = self.inner.units;
        match self.inner.cache.entry(key, None, |k, slot| match slot {
            Slot::Live { record, weight } if !record.is_expired(now) => {
                let out = f(record);
                *weight = units.weigh(k, record);
                EntryAction::Retain(Some(out))
            }
            Slot::Live { .. } => EntryAction::Remove,
            Slot::Retired { .. } => EntryAction::Retain(None),
        }) {
            EntryResult::Retained(out) => out,
            // Vacant: the guard is dropped unfilled, which leaves the key absent.
            _ => None,
        }
    }

    /// [`SessionStore::apply`], without the future (see [`load_now`](Self::load_now)).
    pub(crate) fn apply_now(&self, key: &StoreKey, changes: &Changes) -> bool {
        let applied = self.update(key, |r| r.apply(changes)).is_some();
        if let (true, Some(owner)) = (applied, &changes.owner) {
            self.file(key, &owner.principal);
        }
        applied
    }

    /// Files `key` under `principal` in the index, after the record says so (a listing
    /// that runs between the two misses the key, as the contract allows for a session
    /// created meanwhile; one that runs after finds both).
    fn file(&self, key: &StoreKey, principal: &str) {
        self.inner.index.lock().file(key, principal, |k, p| self.owned_by(k, p));
    }

    /// The live record under `key` if `principal` owns it. A peek: listing a user's
    /// sessions must not make them look used to the eviction policy.
    fn owned_by(&self, key: &StoreKey, principal: &str) -> Option<Listed> {
        let now = self.inner.clock.now();
        match self.inner.cache.peek(key)? {
            Slot::Live { record, .. }
                if !record.is_expired(now) && record.owner.as_ref().is_some_and(|o| o.principal == principal) =>
            {
                Some(Listed::of(key, &record))
            }
            _ => None,
        }
    }

    /// [`SessionStore::sessions_of`], without the future.
    pub(crate) fn sessions_of_now(&self, principal: &str) -> Vec<Listed> {
        self.inner.index.lock().list(principal, |k, p| self.owned_by(k, p))
    }

    /// Visits every entry by reference, shard by shard (under each shard's lock, without
    /// cloning the records), dropping the dead ones on the way.
    fn visit(&self, f: impl Fn(&StoreKey, &Record)) {
        let now = self.inner.clock.now();
        self.inner.cache.retain(|key, slot| match slot {
            Slot::Live { record, .. } if !record.is_expired(now) => {
                f(key, record);
                true
            }
            other => !other.is_dead(now),
        });
    }

    /// [`SessionStore::touch`], without the future.
    pub(crate) fn touch_now(&self, key: &StoreKey, accessed: SystemTime, expires: Option<SystemTime>) -> bool {
        self.update(key, |r| {
            r.accessed = accessed;
            r.expires = expires;
        })
        .is_some()
    }

    /// [`SessionStore::create`], without the future.
    pub(crate) fn create_now(&self, key: &StoreKey, record: &Record) -> Result<bool, StoreError> {
        let now = self.inner.clock.now();
        let slot = self.inner.units.slot(key, record.clone());
        // At most half a shard, so that admitting one session never empties a shard.
        if slot.weight() > (self.inner.cache.shard_capacity() / 2).max(1) {
            return Err(StoreError::Rejected {
                message: format!(
                    "a session of about {} bytes does not fit the memory store (max_bytes {})",
                    slot.weight() * self.inner.units.unit,
                    self.inner.max_bytes
                ),
                source: None,
            });
        }
        // A live record stays; so does a tombstone (ids are fresh: a create never meets one).
        let guard = match self.inner.cache.entry(key, None, |_, old| {
            if old.is_dead(now) {
                EntryAction::ReplaceWithGuard
            } else {
                EntryAction::Retain(())
            }
        }) {
            EntryResult::Retained(()) => return Ok(false),
            EntryResult::Replaced(guard, _) | EntryResult::Vacant(guard) => guard,
            EntryResult::Removed(..) | EntryResult::Timeout => return Ok(false),
        };
        if guard.insert(slot).is_err() {
            return Ok(false);
        }
        if let Some(owner) = &record.owner {
            self.file(key, &owner.principal);
        }
        Ok(true)
    }
}

#[async_trait]
impl SessionStore for MemoryStore {
    async fn load(&self, key: &StoreKey) -> Result<Option<Record>, StoreError> {
        Ok(match self.lookup_now(key) {
            Lookup::Live(record) => Some(record),
            Lookup::Retired | Lookup::Missing => None,
        })
    }

    async fn lookup(&self, key: &StoreKey) -> Result<Lookup, StoreError> {
        Ok(self.lookup_now(key))
    }

    async fn end(&self, key: &StoreKey, retire_for: Duration) -> Result<(), StoreError> {
        self.end_now(key, retire_for);
        Ok(())
    }

    async fn rename(
        &self,
        from: &StoreKey,
        to: &StoreKey,
        changes: &Changes,
        retire_for: Duration,
    ) -> Result<bool, StoreError> {
        self.rename_now(from, to, changes, retire_for)
    }

    async fn create(&self, key: &StoreKey, record: &Record) -> Result<bool, StoreError> {
        self.create_now(key, record)
    }

    async fn apply(&self, key: &StoreKey, changes: &Changes) -> Result<bool, StoreError> {
        Ok(self.apply_now(key, changes))
    }

    async fn touch(
        &self,
        key: &StoreKey,
        accessed: SystemTime,
        expires: Option<SystemTime>,
    ) -> Result<bool, StoreError> {
        Ok(self.touch_now(key, accessed, expires))
    }

    async fn delete(&self, key: &StoreKey) -> Result<(), StoreError> {
        self.inner.cache.remove(key);
        Ok(())
    }

    async fn cleanup(&self) -> Result<u64, StoreError> {
        let now = self.inner.clock.now();
        let removed = AtomicU64::new(0);
        self.inner.cache.retain(|_, slot| {
            let dead = slot.is_dead(now);
            removed.fetch_add(u64::from(dead && matches!(slot, Slot::Live { .. })), Ordering::Relaxed);
            !dead
        });
        // The index goes with the records it names.
        self.inner.index.lock().sweep(|k, p| self.owned_by(k, p).is_some());
        Ok(removed.into_inner())
    }

    async fn sessions_of(&self, principal: &str) -> Result<Vec<Listed>, StoreError> {
        Ok(self.sessions_of_now(principal))
    }

    /// Live records only (expired ones met on the way are dropped).
    async fn count(&self) -> Result<u64, StoreError> {
        let n = AtomicU64::new(0);
        self.visit(|_, _| {
            n.fetch_add(1, Ordering::Relaxed);
        });
        Ok(n.into_inner())
    }

    /// Each page walks the whole store once, keeping only the `limit` entries that come
    /// next in the cursor's order: memory stays bounded by the page, whatever the store
    /// holds, at the price of time linear in the store per page.
    async fn scan(&self, cursor: Option<&str>, limit: usize) -> Result<Page, StoreError> {
        let after = cursor.map(Cursor::parse).transpose()?;
        let page = RefCell::new(self.inner.cursor.page(after, limit));
        self.visit(|key, record| page.borrow_mut().offer(key, record));
        Ok(page.into_inner().finish())
    }

    async fn find(&self, handle: &SessionHandle) -> Result<Option<StoreKey>, StoreError> {
        let found = RefCell::new(None);
        self.visit(|key, _| {
            if SessionHandle::of(key) == *handle {
                *found.borrow_mut() = Some(key.clone());
            }
        });
        Ok(found.into_inner())
    }

    fn name(&self) -> &'static str {
        "memory"
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::time::Duration;

    use super::*;
    use crate::clock::ManualClock;
    use crate::id::SessionId;

    fn record(accessed: SystemTime, expires: Option<SystemTime>) -> Record {
        Record { entries: BTreeMap::new(), created: accessed, accessed, expires, owner: None }
    }

    fn key() -> StoreKey {
        StoreKey::for_id(&SessionId::generate(), true)
    }

    #[tokio::test]
    async fn the_store_never_holds_more_than_its_bound() {
        let clock = ManualClock::new();
        let store = MemoryStore::with_clock(16 * 8, Arc::new(clock.clone()));
        assert!(store.max_sessions() <= 16 * 8);
        let mut newest = None;
        for _ in 0..16 * 8 * 4 {
            clock.advance(Duration::from_millis(1));
            let k = key();
            assert!(store.create(&k, &record(clock.now(), None)).await.unwrap());
            newest = Some(k);
            assert!(store.len() <= 16 * 8, "{} records", store.len());
        }
        // The session created last is always there.
        assert!(store.load(&newest.unwrap()).await.unwrap().is_some());
    }

    #[tokio::test]
    async fn bytes_are_bounded_as_well_as_count() {
        let clock = ManualClock::new();
        // Room for 1000 sessions but only ~64 KiB: 1 KiB sessions fill it at about 64.
        let store = MemoryStore::bounded_with_clock(1000, 64 * 1024, Arc::new(clock.clone()));
        let mut big = record(clock.now(), None);
        big.entries.insert("blob".into(), vec![7; 1024]);
        for _ in 0..1000 {
            assert!(store.create(&key(), &big).await.unwrap());
            assert!(store.bytes() <= 64 * 1024, "{} bytes held", store.bytes());
        }
        assert!(store.len() < 100, "{} records of 1 KiB in 64 KiB", store.len());
        // Growing a record in place is charged too.
        let k = key();
        assert!(store.create(&k, &record(clock.now(), None)).await.unwrap());
        let grow = Changes {
            clear: false,
            set: BTreeMap::from([("more".to_owned(), vec![1; 4096])]),
            remove: Default::default(),
            accessed: clock.now(),
            expires: None,
            owner: None,
        };
        assert!(store.apply(&k, &grow).await.unwrap());
        assert!(store.bytes() <= 64 * 1024, "{} bytes held", store.bytes());
    }

    #[tokio::test]
    async fn a_store_of_one_session_accepts_sessions_and_holds_one() {
        let store = MemoryStore::with_capacity(1);
        let (a, b) = (key(), key());
        assert!(store.create(&a, &record(SystemTime::now(), None)).await.unwrap());
        assert!(store.load(&a).await.unwrap().is_some());
        assert!(store.create(&b, &record(SystemTime::now(), None)).await.unwrap());
        assert_eq!(store.len(), 1);
        let held =
            usize::from(store.load(&a).await.unwrap().is_some()) + usize::from(store.load(&b).await.unwrap().is_some());
        assert_eq!(held, 1);
    }

    #[tokio::test]
    async fn a_record_larger_than_the_store_is_refused() {
        let store = MemoryStore::bounded(100, 10 * 1024);
        let mut huge = record(SystemTime::now(), None);
        huge.entries.insert("blob".into(), vec![0; 64 * 1024]);
        let e = store.create(&key(), &huge).await.unwrap_err();
        assert!(e.to_string().contains("max_bytes"), "{e}");
    }

    #[tokio::test]
    async fn expired_records_are_not_returned_and_are_cleaned_up() {
        let clock = ManualClock::new();
        let store = MemoryStore::with_clock(1000, Arc::new(clock.clone()));
        let (live, dead) = (key(), key());
        store.create(&live, &record(clock.now(), None)).await.unwrap();
        store.create(&dead, &record(clock.now(), Some(clock.now() + Duration::from_secs(10)))).await.unwrap();
        clock.advance(Duration::from_secs(11));
        assert_eq!(store.cleanup().await.unwrap(), 1);
        assert!(store.load(&dead).await.unwrap().is_none());
        assert!(store.load(&live).await.unwrap().is_some());
        // An expired id may be created again.
        assert!(store.create(&dead, &record(clock.now(), None)).await.unwrap());
    }

    #[tokio::test]
    async fn tombstones_lapse_are_bounded_and_go_with_cleanup() {
        let clock = ManualClock::new();
        let store = MemoryStore::with_clock(256, Arc::new(clock.clone()));
        let window = Duration::from_secs(60);
        let live = key();
        store.create(&live, &record(clock.now(), None)).await.unwrap();
        store.end_now(&live, window);
        assert_eq!(store.lookup_now(&live), Lookup::Retired);
        assert!(!store.apply_now(
            &live,
            &Changes {
                clear: false,
                set: BTreeMap::from([("k".to_owned(), vec![1])]),
                remove: Default::default(),
                accessed: clock.now(),
                expires: None,
                owner: None,
            }
        ));
        // Many tombstones stay within the store's bound.
        for _ in 0..1000 {
            store.end_now(&key(), window);
        }
        assert!(store.len() <= store.max_sessions(), "{} entries", store.len());
        clock.advance(window);
        assert_eq!(store.lookup_now(&live), Lookup::Missing, "a lapsed tombstone still counts");
        store.cleanup().await.unwrap();
        assert_eq!(store.len(), 0);
    }

    #[tokio::test]
    async fn a_flood_of_one_shot_sessions_keeps_the_returning_ones() {
        let clock = ManualClock::new();
        let store = MemoryStore::with_clock(1024, Arc::new(clock.clone()));
        let regulars: Vec<StoreKey> = (0..50).map(|_| key()).collect();
        for k in &regulars {
            store.create(k, &record(clock.now(), None)).await.unwrap();
        }
        for round in 0..20 {
            // Each regular comes back between bursts of one-shot sessions.
            for k in &regulars {
                assert!(store.load(k).await.unwrap().is_some(), "a regular was evicted in round {round}");
            }
            for _ in 0..store.max_sessions() / 10 {
                store.create(&key(), &record(clock.now(), None)).await.unwrap();
            }
            assert!(store.len() <= store.max_sessions());
        }
    }

    fn owned(now: SystemTime, principal: &str) -> Record {
        let mut r = record(now, None);
        r.owner = Some(crate::store::Owner { principal: principal.into(), device: None });
        r
    }

    #[tokio::test]
    async fn the_index_never_lists_an_evicted_ended_renamed_or_deleted_session_and_stays_bounded() {
        let clock = ManualClock::new();
        let store = MemoryStore::with_clock(256, Arc::new(clock.clone()));
        let window = Duration::from_secs(60);
        let (ended, renamed, deleted, kept) = (key(), key(), key(), key());
        for k in [&ended, &renamed, &deleted, &kept] {
            assert!(store.create(k, &owned(clock.now(), "alice")).await.unwrap());
        }
        assert_eq!(store.sessions_of("alice").await.unwrap().len(), 4);
        store.end(&ended, window).await.unwrap();
        let moved = key();
        let no_change = Changes {
            clear: false,
            set: BTreeMap::new(),
            remove: Default::default(),
            accessed: clock.now(),
            expires: None,
            owner: None,
        };
        assert!(store.rename(&renamed, &moved, &no_change, window).await.unwrap());
        store.delete(&deleted).await.unwrap();
        let mut listed: Vec<StoreKey> = store.sessions_of("alice").await.unwrap().into_iter().map(|l| l.key).collect();
        listed.sort_by(|a, b| a.as_str().cmp(b.as_str()));
        let mut expected = vec![kept.clone(), moved];
        expected.sort_by(|a, b| a.as_str().cmp(b.as_str()));
        assert_eq!(listed, expected);

        // A flood of owned sessions evicts most of them; the index follows the store.
        for i in 0..5000 {
            store.create(&key(), &owned(clock.now(), &format!("user{}", i % 50))).await.unwrap();
        }
        let filed = store.inner.index.lock().len();
        assert!(filed <= 2 * store.max_sessions() + 1, "{filed} keys filed for a store of {}", store.max_sessions());
        let mut listed_total = 0;
        for i in 0..50 {
            for l in store.sessions_of(&format!("user{i}")).await.unwrap() {
                assert!(store.load(&l.key).await.unwrap().is_some(), "a listed session is gone");
                listed_total += 1;
            }
        }
        assert!(listed_total <= store.len());
        // Expired sessions are not listed; cleanup takes them out of the index too.
        let short = key();
        let mut r = owned(clock.now(), "brief");
        r.expires = Some(clock.now() + Duration::from_secs(5));
        store.create(&short, &r).await.unwrap();
        assert_eq!(store.sessions_of_now("brief").len(), 1);
        clock.advance(Duration::from_secs(6));
        assert!(store.sessions_of_now("brief").is_empty());
        store.create(&key(), &r).await.unwrap();
        store.cleanup().await.unwrap();
        assert!(store.inner.index.lock().len() <= store.len());
    }

    #[tokio::test]
    async fn a_new_owner_moves_the_key_and_an_unowned_write_leaves_it() {
        let store = MemoryStore::with_capacity(1000);
        let k = key();
        store.create(&k, &owned(SystemTime::now(), "alice")).await.unwrap();
        let mut changes = Changes {
            clear: false,
            set: BTreeMap::from([("a".to_owned(), vec![1])]),
            remove: Default::default(),
            accessed: SystemTime::now(),
            expires: None,
            owner: None,
        };
        assert!(store.apply(&k, &changes).await.unwrap());
        assert_eq!(store.sessions_of("alice").await.unwrap().len(), 1);
        changes.owner = Some(crate::store::Owner { principal: "bob".into(), device: Some("phone".into()) });
        assert!(store.apply(&k, &changes).await.unwrap());
        assert!(store.sessions_of("alice").await.unwrap().is_empty());
        let bob = store.sessions_of("bob").await.unwrap();
        assert_eq!(bob.len(), 1);
        assert_eq!(bob[0].owner.as_ref().and_then(|o| o.device.as_deref()), Some("phone"));
        assert_eq!(bob[0].size, 2);
    }

    #[tokio::test]
    async fn a_scan_lists_every_live_session_once_in_bounded_pages() {
        let clock = ManualClock::new();
        let store = MemoryStore::with_clock(4096, Arc::new(clock.clone()));
        let mut keys = std::collections::HashSet::new();
        for _ in 0..1000 {
            let k = key();
            store.create(&k, &record(clock.now(), None)).await.unwrap();
            keys.insert(k);
        }
        // Tombstones and expired records are not listed.
        store.end_now(&key(), Duration::from_secs(60));
        let mut dying = record(clock.now(), Some(clock.now() + Duration::from_secs(1)));
        dying.entries.insert("x".into(), vec![1]);
        store.create(&key(), &dying).await.unwrap();
        clock.advance(Duration::from_secs(2));
        assert_eq!(store.count().await.unwrap(), 1000);

        let mut seen = std::collections::HashSet::new();
        let mut cursor: Option<String> = None;
        let mut pages = 0;
        loop {
            let page = store.scan(cursor.as_deref(), 64).await.unwrap();
            assert!(page.items.len() <= 64);
            for l in page.items {
                assert!(keys.contains(&l.key));
                assert!(seen.insert(l.key), "listed twice");
            }
            pages += 1;
            match page.next {
                Some(next) => {
                    assert!(!keys.iter().any(|k| next.contains(k.as_str())), "a cursor shows a key");
                    cursor = Some(next);
                }
                None => break,
            }
        }
        assert_eq!(seen.len(), 1000);
        assert!((16..=17).contains(&pages), "{pages} pages");
        assert!(store.scan(Some("not a cursor"), 10).await.is_err());

        let wanted = keys.iter().next().unwrap();
        assert_eq!(store.find(&SessionHandle::of(wanted)).await.unwrap().as_ref(), Some(wanted));
        assert_eq!(store.find(&SessionHandle::of(&key())).await.unwrap(), None);
    }
}
