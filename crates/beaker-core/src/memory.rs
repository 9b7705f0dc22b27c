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

/// foldhash, seeded per map: a store key costs ~20 instructions to hash where SipHash
/// took ~270, twice per call (shard, then map). Keys that reach the store come from
/// server-issued ids (a SHA-256 digest, or the random id itself), so no client picks
/// them, and the per-process random seed keeps the layout unpredictable all the same.
type Hasher = foldhash::fast::RandomState;

/// An in-process session store, bounded by a maximum number of sessions.
///
/// Changes are applied per key under a shard lock, so concurrent requests changing
/// different keys of one session both survive. When full, it first drops expired records
/// and then the least recently accessed ones. Sessions are lost when the process exits.
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

    fn make_room(map: &mut HashMap<StoreKey, Record, Hasher>, limit: usize, now: SystemTime) {
        if map.len() < limit {
            return;
        }
        map.retain(|_, r| !r.is_expired(now));
        while map.len() >= limit {
            let oldest = map.iter().min_by_key(|(_, r)| r.accessed).map(|(k, _)| k.clone());
            match oldest {
                Some(k) => {
                    map.remove(&k);
                }
                None => break,
            }
        }
    }
}

#[async_trait]
impl SessionStore for MemoryStore {
    async fn load(&self, key: &StoreKey) -> Result<Option<Record>, StoreError> {
        let now = self.inner.clock.now();
        let mut map = self.shard(key).lock();
        match map.get(key) {
            Some(r) if r.is_expired(now) => {
                map.remove(key);
                Ok(None)
            }
            other => Ok(other.cloned()),
        }
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
        let now = self.inner.clock.now();
        let mut map = self.shard(key).lock();
        match map.get_mut(key) {
            Some(r) if !r.is_expired(now) => {
                r.apply(changes);
                Ok(true)
            }
            _ => Ok(false),
        }
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
