//! [`MemoryStore`]: an in-process, bounded session store for tests and single-process apps.

use std::collections::{HashMap, VecDeque};
use std::hash::BuildHasher;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use parking_lot::Mutex;

use crate::clock::{Clock, SystemClock};
use crate::error::StoreError;
use crate::id::StoreKey;
use crate::store::{Changes, Lookup, Record, SessionStore};

const SHARDS: usize = 16;
/// A full shard drops this fraction of its records at once (see `make_room`).
const EVICT_BATCH: usize = 32;

/// foldhash, seeded per map: a store key costs ~20 instructions to hash where SipHash
/// took ~270, twice per call (shard, then map). Keys that reach the store come from
/// server-issued ids (a SHA-256 digest, or the random id itself), so no client picks
/// them, and the per-process random seed keeps the layout unpredictable all the same.
type Hasher = foldhash::fast::RandomState;

/// An in-process session store, bounded by a maximum number of sessions.
///
/// Changes are applied per key under a shard lock, so concurrent requests changing
/// different keys of one session both survive. The bound is kept per shard (16 of them).
/// When a shard is full, it first drops its expired records and then, if it is still
/// full, its least recently accessed ones: 1/32 of the shard at once, so that the scan
/// this takes is paid once per batch of new sessions rather than on each. Sessions are
/// lost when the process exits.
///
/// Ended sessions leave a tombstone (the key and when it lapses, no data) in their shard
/// for the retire window, under the same lock as the records, so that a lookup sees a
/// key either live or retired, never neither. Tombstones lapse in the order they were
/// made, so each shard drops its lapsed ones from the front of a queue as it makes new
/// ones (no scan), and keeps at most as many as its record bound: past that, the oldest
/// goes early (its id then reads as unknown rather than retired).
#[derive(Debug, Clone)]
pub struct MemoryStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    shards: Vec<Mutex<Shard>>,
    /// Chooses the shard; seeded apart from the maps, whose buckets take the low bits.
    hasher: Hasher,
    per_shard: usize,
    clock: Arc<dyn Clock>,
}

/// One shard: its records, and the keys retired by `end` or `rename` with when their
/// tombstones lapse (a map to look them up, and the same in the order they were made).
#[derive(Debug, Default)]
struct Shard {
    records: HashMap<StoreKey, Record, Hasher>,
    retired: HashMap<StoreKey, SystemTime, Hasher>,
    retired_order: VecDeque<(StoreKey, SystemTime)>,
}

impl Shard {
    /// Leaves a tombstone under `key` until `now + retire_for` (nothing for a zero window).
    fn retire(&mut self, key: &StoreKey, now: SystemTime, retire_for: Duration, limit: usize) {
        if retire_for.is_zero() {
            return;
        }
        while self.retired_order.front().is_some_and(|(_, until)| *until <= now) {
            self.forget_oldest();
        }
        while self.retired.len() >= limit && !self.retired_order.is_empty() {
            self.forget_oldest();
        }
        let until = crate::clock::saturating_add(now, retire_for);
        self.retired.insert(key.clone(), until);
        self.retired_order.push_back((key.clone(), until));
    }

    /// Drops the oldest tombstone, unless its key was retired again later (then the map
    /// holds the later time, and its own queue entry comes later).
    fn forget_oldest(&mut self) {
        if let Some((key, until)) = self.retired_order.pop_front() {
            if self.retired.get(&key) == Some(&until) {
                self.retired.remove(&key);
            }
        }
    }

    /// Drops every lapsed tombstone.
    fn forget_lapsed(&mut self, now: SystemTime) {
        self.retired.retain(|_, until| *until > now);
        self.retired_order.retain(|(_, until)| *until > now);
    }

    fn is_retired(&self, key: &StoreKey, now: SystemTime) -> bool {
        self.retired.get(key).is_some_and(|until| *until > now)
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

    /// A store holding at most [`DEFAULT_MAX_SESSIONS`](Self::DEFAULT_MAX_SESSIONS).
    pub fn new() -> Self {
        Self::with_capacity(Self::DEFAULT_MAX_SESSIONS)
    }

    /// A store holding at most `max_sessions` sessions (rounded up to a multiple of 16).
    pub fn with_capacity(max_sessions: usize) -> Self {
        Self::with_clock(max_sessions, Arc::new(SystemClock))
    }

    /// Like [`with_capacity`](Self::with_capacity), with the clock used for expiry.
    pub fn with_clock(max_sessions: usize, clock: Arc<dyn Clock>) -> Self {
        MemoryStore {
            inner: Arc::new(Inner {
                shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
                hasher: Default::default(),
                per_shard: max_sessions.div_ceil(SHARDS).max(1),
                clock,
            }),
        }
    }

    /// Number of records held (expired ones included until they are dropped).
    pub fn len(&self) -> usize {
        self.inner.shards.iter().map(|s| s.lock().records.len()).sum()
    }

    /// Whether the store holds no record.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn shard(&self, key: &StoreKey) -> &Mutex<Shard> {
        &self.inner.shards[(self.inner.hasher.hash_one(key) as usize) % SHARDS]
    }

    /// [`SessionStore::lookup`], without the future: the session manager calls the
    /// built-in store directly (no boxed future, nothing that could hang).
    pub(crate) fn lookup_now(&self, key: &StoreKey) -> Lookup {
        let now = self.inner.clock.now();
        let mut shard = self.shard(key).lock();
        match shard.records.get(key) {
            Some(r) if !r.is_expired(now) => return Lookup::Live(r.clone()),
            Some(_) => {
                shard.records.remove(key);
            }
            None => {}
        }
        if shard.is_retired(key, now) {
            Lookup::Retired
        } else {
            Lookup::Missing
        }
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
        // Take the record out under its shard's lock, retiring the key in the same step:
        // an `apply` on `from` either ran before (and its change moves) or finds nothing.
        let mut record = {
            let mut shard = self.shard(from).lock();
            match shard.records.remove(from) {
                Some(r) if !r.is_expired(now) => {
                    shard.retire(from, now, retire_for, self.inner.per_shard);
                    r
                }
                _ => return Ok(false),
            }
        };
        record.apply(changes);
        let mut shard = self.shard(to).lock();
        if shard.records.get(to).is_some_and(|r| !r.is_expired(now)) {
            drop(shard);
            // Never reached with fresh ids; put the record back rather than lose it.
            let mut back = self.shard(from).lock();
            back.retired.remove(from); // its queue entry lapses harmlessly
            back.records.insert(from.clone(), record);
            return Err(StoreError::Backend {
                message: "rename: a record already exists under the new key".into(),
                source: None,
            });
        }
        Self::make_room(&mut shard.records, self.inner.per_shard, now);
        shard.records.insert(to.clone(), record);
        Ok(true)
    }

    /// [`SessionStore::end`], without the future.
    pub(crate) fn end_now(&self, key: &StoreKey, retire_for: Duration) {
        let now = self.inner.clock.now();
        let mut shard = self.shard(key).lock();
        shard.records.remove(key);
        shard.retire(key, now, retire_for, self.inner.per_shard);
    }

    /// [`SessionStore::apply`], without the future (see [`lookup_now`](Self::lookup_now)).
    pub(crate) fn apply_now(&self, key: &StoreKey, changes: &Changes) -> bool {
        let now = self.inner.clock.now();
        let mut shard = self.shard(key).lock();
        match shard.records.get_mut(key) {
            Some(r) if !r.is_expired(now) => {
                r.apply(changes);
                true
            }
            _ => false,
        }
    }

    /// [`SessionStore::create`], without the future.
    pub(crate) fn create_now(&self, key: &StoreKey, record: &Record) -> bool {
        let now = self.inner.clock.now();
        let mut shard = self.shard(key).lock();
        if shard.records.get(key).is_some_and(|r| !r.is_expired(now)) {
            return false;
        }
        Self::make_room(&mut shard.records, self.inner.per_shard, now);
        shard.records.insert(key.clone(), record.clone());
        true
    }

    /// [`SessionStore::touch`], without the future.
    pub(crate) fn touch_now(&self, key: &StoreKey, accessed: SystemTime, expires: Option<SystemTime>) -> bool {
        let now = self.inner.clock.now();
        let mut shard = self.shard(key).lock();
        match shard.records.get_mut(key) {
            Some(r) if !r.is_expired(now) => {
                r.accessed = accessed;
                r.expires = expires;
                true
            }
            _ => false,
        }
    }

    fn make_room(map: &mut HashMap<StoreKey, Record, Hasher>, limit: usize, now: SystemTime) {
        if map.len() < limit {
            return;
        }
        map.retain(|_, r| !r.is_expired(now));
        if map.len() < limit {
            return;
        }
        // Full of live records: the least recently accessed go, a batch at once (1/32 of
        // the shard), so that the scan is paid once per batch of inserts, not per insert.
        let evict = (map.len() + 1 - limit).max(limit / EVICT_BATCH).min(map.len());
        let mut accessed: Vec<SystemTime> = map.values().map(|r| r.accessed).collect();
        let cutoff = *accessed.select_nth_unstable(evict - 1).1;
        // Everything older than the cutoff (fewer than `evict`), then ties up to `evict`.
        let mut left = evict;
        map.retain(|_, r| {
            let go = r.accessed < cutoff;
            left -= usize::from(go);
            !go
        });
        map.retain(|_, r| {
            let go = left > 0 && r.accessed == cutoff;
            left -= usize::from(go);
            !go
        });
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
        Ok(self.create_now(key, record))
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
        self.shard(key).lock().records.remove(key);
        Ok(())
    }

    async fn cleanup(&self) -> Result<u64, StoreError> {
        let now = self.inner.clock.now();
        let mut removed = 0;
        for shard in &self.inner.shards {
            let mut shard = shard.lock();
            let before = shard.records.len();
            shard.records.retain(|_, r| !r.is_expired(now));
            removed += (before - shard.records.len()) as u64;
            shard.forget_lapsed(now);
        }
        Ok(removed)
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
        Record { entries: BTreeMap::new(), created: accessed, accessed, expires }
    }

    fn key() -> StoreKey {
        StoreKey::for_id(&SessionId::generate(), true)
    }

    #[test]
    fn a_full_shard_drops_the_least_recently_accessed_batch() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let mut map = HashMap::default();
        let keys: Vec<StoreKey> = (0..64).map(|_| key()).collect();
        for (i, k) in keys.iter().enumerate() {
            map.insert(k.clone(), record(t0 + Duration::from_secs(i as u64), None));
        }
        MemoryStore::make_room(&mut map, 64, t0);
        // 64 / 32 = 2 go: the two accessed longest ago.
        assert_eq!(map.len(), 62);
        assert!(!map.contains_key(&keys[0]) && !map.contains_key(&keys[1]));
        assert!(keys[2..].iter().all(|k| map.contains_key(k)));
        // Ties at the cutoff never save an older record: 3 records of one time, 1 older.
        let mut tied = HashMap::default();
        let old = key();
        tied.insert(old.clone(), record(t0, None));
        for _ in 0..3 {
            tied.insert(key(), record(t0 + Duration::from_secs(5), None));
        }
        MemoryStore::make_room(&mut tied, 3, t0);
        assert_eq!(tied.len(), 2, "4 records, room for 3: two go");
        assert!(!tied.contains_key(&old));
        // Room now: nothing more goes.
        MemoryStore::make_room(&mut map, 64, t0);
        assert_eq!(map.len(), 62);
    }

    #[test]
    fn expired_records_go_before_live_ones() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let mut map = HashMap::default();
        let live = key();
        map.insert(live.clone(), record(t0, None));
        for i in 0..63 {
            // Accessed later than `live`, but expired.
            map.insert(key(), record(t0 + Duration::from_secs(i + 1), Some(t0 + Duration::from_secs(100))));
        }
        MemoryStore::make_room(&mut map, 64, t0 + Duration::from_secs(200));
        assert_eq!(map.len(), 1);
        assert!(map.contains_key(&live));
    }

    #[tokio::test]
    async fn tombstones_are_bounded_lapse_in_order_and_go_with_cleanup() {
        let clock = ManualClock::new();
        let store = MemoryStore::with_clock(16 * 4, Arc::new(clock.clone()));
        let window = Duration::from_secs(60);
        let mut keys = Vec::new();
        for _ in 0..1000 {
            let k = key();
            store.end_now(&k, window);
            keys.push(k);
        }
        let held = |s: &MemoryStore| s.inner.shards.iter().map(|s| s.lock().retired.len()).sum::<usize>();
        assert!(held(&store) <= 16 * 4, "{} tombstones", held(&store));
        assert_eq!(store.lookup_now(keys.last().unwrap()), Lookup::Retired, "the newest went");
        assert_eq!(store.lookup_now(&keys[0]), Lookup::Missing, "the oldest stayed past the bound");
        clock.advance(window);
        assert_eq!(store.lookup_now(keys.last().unwrap()), Lookup::Missing, "a lapsed tombstone still counts");
        // Lapsed ones go as new ones are made...
        let k = key();
        store.end_now(&k, window);
        assert_eq!(store.lookup_now(&k), Lookup::Retired);
        // ...and all of them with cleanup.
        clock.advance(window);
        store.cleanup().await.unwrap();
        assert_eq!(held(&store), 0);
        assert!(store.inner.shards.iter().all(|s| s.lock().retired_order.is_empty()));
    }

    #[tokio::test]
    async fn the_store_never_holds_more_than_its_bound() {
        let clock = ManualClock::new();
        let store = MemoryStore::with_clock(16 * 8, Arc::new(clock.clone()));
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
}
