//! [`MemoryStore`]: an in-process, bounded session store for tests and single-process apps.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;
use parking_lot::Mutex;

use crate::clock::{Clock, SystemClock};
use crate::error::StoreError;
use crate::id::StoreKey;
use crate::store::{Changes, Record, SessionStore};

const SHARDS: usize = 16;
/// A full shard drops this fraction of its records at once (see `make_room`).
const EVICT_BATCH: usize = 32;

/// foldhash, seeded per map: far cheaper than SipHash on these short keys, which are
/// hashed twice per call (shard, then map). Keys that reach the store come from
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
#[derive(Debug, Clone)]
pub struct MemoryStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    shards: Vec<Mutex<HashMap<StoreKey, Record, Hasher>>>,
    /// Chooses the shard; seeded apart from the maps, whose buckets take the low bits.
    hasher: Hasher,
    per_shard: usize,
    clock: Arc<dyn Clock>,
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
                shards: (0..SHARDS).map(|_| Mutex::new(HashMap::default())).collect(),
                hasher: Default::default(),
                per_shard: max_sessions.div_ceil(SHARDS).max(1),
                clock,
            }),
        }
    }

    /// Number of records held (expired ones included until they are dropped).
    pub fn len(&self) -> usize {
        self.inner.shards.iter().map(|s| s.lock().len()).sum()
    }

    /// Whether the store holds no record.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn shard(&self, key: &StoreKey) -> &Mutex<HashMap<StoreKey, Record, Hasher>> {
        &self.inner.shards[(self.inner.hasher.hash_one(key) as usize) % SHARDS]
    }

    /// [`SessionStore::load`], without the future: the session manager calls the
    /// built-in store directly (no boxed future, nothing that could hang).
    pub(crate) fn load_now(&self, key: &StoreKey) -> Option<Record> {
        let now = self.inner.clock.now();
        let mut map = self.shard(key).lock();
        match map.get(key) {
            Some(r) if r.is_expired(now) => {
                map.remove(key);
                None
            }
            other => other.cloned(),
        }
    }

    /// [`SessionStore::apply`], without the future (see [`load_now`](Self::load_now)).
    pub(crate) fn apply_now(&self, key: &StoreKey, changes: &Changes) -> bool {
        let now = self.inner.clock.now();
        let mut map = self.shard(key).lock();
        match map.get_mut(key) {
            Some(r) if !r.is_expired(now) => {
                r.apply(changes);
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
        Ok(self.load_now(key))
    }

    async fn create(&self, key: &StoreKey, record: &Record) -> Result<bool, StoreError> {
        let now = self.inner.clock.now();
        let mut map = self.shard(key).lock();
        if map.get(key).is_some_and(|r| !r.is_expired(now)) {
            return Ok(false);
        }
        Self::make_room(&mut map, self.inner.per_shard, now);
        map.insert(key.clone(), record.clone());
        Ok(true)
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
        let now = self.inner.clock.now();
        let mut map = self.shard(key).lock();
        match map.get_mut(key) {
            Some(r) if !r.is_expired(now) => {
                r.accessed = accessed;
                r.expires = expires;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn delete(&self, key: &StoreKey) -> Result<(), StoreError> {
        self.shard(key).lock().remove(key);
        Ok(())
    }

    async fn cleanup(&self) -> Result<u64, StoreError> {
        let now = self.inner.clock.now();
        let mut removed = 0;
        for shard in &self.inner.shards {
            let mut map = shard.lock();
            let before = map.len();
            map.retain(|_, r| !r.is_expired(now));
            removed += (before - map.len()) as u64;
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
