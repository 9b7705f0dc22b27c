//! [`Region`]: one named region seen through one namespace — reads, writes, clears,
//! invalidation and counters. The dogpile-guarded `get_or_create` family lives in
//! `create.rs`.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::RwLock;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::backend::{CacheBackend, CacheEntry, NamespaceStats};
use super::key::limit_key;
use super::lock::LockTable;
use super::manager::Sleeper;
use super::memory::{MemEntry, MemoryEngine};
use super::stats::{CacheStats, Counters};
use crate::clock::{from_millis, to_millis, Clock};
use crate::config::RegionConfig;
use crate::error::{BoxError, Error};
use crate::serializer::DataSerializer;

/// What a cache value must be: serde for out-of-process backends, `Clone + 'static` so
/// that memory regions can hand out copies of the decoded value they keep.
pub trait CacheValue: Serialize + DeserializeOwned + Clone + Send + Sync + 'static {}

impl<T: Serialize + DeserializeOwned + Clone + Send + Sync + 'static> CacheValue for T {}

/// Out-of-process entries are dropped by the backend this many expiry periods after they
/// were stored; until then a stale entry can still be served while one caller regenerates.
pub const HARD_TTL_FACTOR: u32 = 10;

/// The longest expiry an entry is given (longer ones are cut to it): ten years, so that the
/// hard TTL ([`HARD_TTL_FACTOR`] times as long) stays within what every backend accepts.
pub const MAX_EXPIRE: Duration = Duration::from_secs(10 * 365 * 24 * 60 * 60);

/// The name of the namespace a region handle uses until [`Region::namespace`] picks another.
pub const DEFAULT_NAMESPACE: &str = "default";

/// Where a region keeps its values.
#[derive(Debug)]
pub(crate) enum Storage {
    /// Decoded values in process memory.
    Memory(MemoryEngine),
    /// Serialized values in an out-of-process backend.
    Backend { backend: Arc<dyn CacheBackend>, serializer: DataSerializer },
}

/// One namespace of a region.
#[derive(Debug)]
pub(crate) struct Namespace {
    pub(crate) id: u64,
    pub(crate) name: Arc<str>,
    /// Bumped by `clear` on memory regions: older entries count as absent.
    clear_gen: AtomicU64,
}

/// The state of one region, shared by every handle on it.
pub(crate) struct RegionShared {
    pub(crate) name: Arc<str>,
    pub(crate) config: RegionConfig,
    pub(crate) storage: Storage,
    pub(crate) clock: Arc<dyn Clock>,
    /// `clock` is the system clock and its coarse-time thread runs: hits read the
    /// process-wide coarse time directly.
    coarse_ticker: bool,
    pub(crate) stats: Counters,
    pub(crate) locks: Arc<LockTable>,
    /// How long a distributed dogpile lock may be held (its TTL) and waited for.
    pub(crate) lock_timeout: Duration,
    pub(crate) sleeper: Option<Sleeper>,
    /// Memory regions: entries stored under an older soft generation are stale.
    soft_gen: AtomicU64,
    /// Backend regions: entries stored at or before this instant (ms) are stale.
    soft_mark_ms: AtomicU64,
    /// Entries stored under an older hard generation are absent (memory), or live in an
    /// older backend namespace nobody reads any more (backends).
    hard_gen: AtomicU64,
    namespaces: RwLock<HashMap<Arc<str>, Arc<Namespace>>>,
    next_namespace_id: AtomicU64,
}

impl fmt::Debug for RegionShared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RegionShared")
            .field("name", &self.name)
            .field("config", &self.config)
            .field("storage", &self.storage)
            .finish_non_exhaustive()
    }
}

impl RegionShared {
    pub(crate) fn new(
        name: &str,
        config: RegionConfig,
        storage: Storage,
        clock: Arc<dyn Clock>,
        system_clock: bool,
        lock_timeout: Duration,
        sleeper: Option<Sleeper>,
    ) -> Self {
        let stats = Counters::new(name, &config.store_type.to_string());
        RegionShared {
            name: name.into(),
            config,
            storage,
            clock,
            // Started now, off the hit path: a hit then reads the coarse time with one load.
            coarse_ticker: system_clock && crate::clock::system_coarse_start(),
            stats,
            locks: Arc::default(),
            lock_timeout,
            sleeper,
            soft_gen: AtomicU64::new(0),
            soft_mark_ms: AtomicU64::new(0),
            hard_gen: AtomicU64::new(0),
            namespaces: RwLock::default(),
            next_namespace_id: AtomicU64::new(0),
        }
    }

    fn namespace(&self, name: &str) -> Arc<Namespace> {
        if let Some(ns) = self.namespaces.read().get(name) {
            return Arc::clone(ns);
        }
        let mut all = self.namespaces.write();
        let ns = all.entry(name.into()).or_insert_with(|| {
            Arc::new(Namespace {
                id: self.next_namespace_id.fetch_add(1, Ordering::Relaxed),
                name: name.into(),
                clear_gen: AtomicU64::new(0),
            })
        });
        Arc::clone(ns)
    }

    pub(crate) fn now_ms(&self) -> u64 {
        to_millis(self.clock.now())
    }

    /// Milliseconds for freshness checks on the hit path (see [`Clock::now_millis_coarse`]).
    #[inline]
    fn coarse_now_ms(&self) -> u64 {
        if self.coarse_ticker {
            crate::clock::system_coarse_ticking_ms()
        } else {
            self.clock.now_millis_coarse()
        }
    }
}

/// What a lookup found.
pub(crate) enum Lookup<T> {
    Fresh(T),
    Stale(T),
    Absent,
}

/// A handle on one cache region and one namespace inside it; cheap to clone.
///
/// Get one from [`CacheManager::region`](super::CacheManager::region) (the
/// [default namespace](DEFAULT_NAMESPACE)) and switch with [`namespace`](Self::namespace).
/// Keys longer than the region's `key_length` are replaced by their SHA-256.
///
/// Memory regions keep values decoded: a hit clones the value out of an `Arc`, with no
/// serializer involved. Reading a key as another type than the one stored is an
/// [`Error::Deserialize`] from [`get`](Self::get), and a miss (logged, then overwritten)
/// for [`get_or_create`](Self::get_or_create), exactly as an undecodable value would be
/// on an out-of-process backend.
#[derive(Clone)]
pub struct Region {
    pub(crate) shared: Arc<RegionShared>,
    pub(crate) ns: Arc<Namespace>,
}

impl fmt::Debug for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Region").field("name", &self.shared.name).field("namespace", &self.ns.name).finish()
    }
}

impl Region {
    pub(crate) fn new(shared: Arc<RegionShared>) -> Self {
        let ns = shared.namespace(DEFAULT_NAMESPACE);
        Region { shared, ns }
    }

    /// The same region seen through namespace `name` (created on first use; namespaces
    /// live as long as the region, so do not derive their names from unbounded input).
    pub fn namespace(&self, name: &str) -> Region {
        Region { shared: Arc::clone(&self.shared), ns: self.shared.namespace(name) }
    }

    /// The region's name.
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// The namespace this handle reads and writes.
    pub fn namespace_name(&self) -> &str {
        &self.ns.name
    }

    /// The region's configuration.
    pub fn config(&self) -> &RegionConfig {
        &self.shared.config
    }

    /// Whether values live in process memory (and the `*_blocking` methods work).
    pub fn is_memory(&self) -> bool {
        matches!(self.shared.storage, Storage::Memory(_))
    }

    /// A snapshot of the region's counters (all namespaces together).
    pub fn stats(&self) -> CacheStats {
        self.shared.stats.snapshot()
    }

    /// The fresh value under `key`, if any. Stale values are not returned (only
    /// [`get_or_create`](Self::get_or_create) serves them, under the dogpile rule).
    ///
    /// # Errors
    ///
    /// [`Error::Store`] when the backend fails, [`Error::Deserialize`] when the value is
    /// not a `T`.
    pub async fn get<T: CacheValue>(&self, key: &str) -> Result<Option<T>, Error> {
        let s = &*self.shared;
        if !s.config.enabled {
            s.stats.miss();
            return Ok(None);
        }
        let key = limit_key(key, s.config.key_length);
        // Memory regions answer without entering the backend's async path: a hit is a
        // hash lookup, a few atomic loads and a clone.
        let found = match &s.storage {
            Storage::Memory(engine) => self.memory_lookup::<T>(engine, &key)?,
            Storage::Backend { .. } => self.lookup::<T>(&key).await?,
        };
        match found {
            Lookup::Fresh(v) => {
                s.stats.hit();
                Ok(Some(v))
            }
            Lookup::Stale(_) | Lookup::Absent => {
                s.stats.miss();
                Ok(None)
            }
        }
    }

    /// Whether a fresh value is stored under `key` (of any type).
    ///
    /// # Errors
    ///
    /// [`Error::Store`] when the backend fails.
    pub async fn contains(&self, key: &str) -> Result<bool, Error> {
        let s = &*self.shared;
        if !s.config.enabled {
            return Ok(false);
        }
        let key = limit_key(key, s.config.key_length);
        match &s.storage {
            Storage::Memory(engine) => Ok(engine.get(self.ns.id, &key).is_some_and(|e| self.judge(&e) == Some(true))),
            Storage::Backend { backend, .. } => {
                let entry = backend.get(&self.backend_namespace(), &key).await?;
                Ok(entry.is_some_and(|e| self.judge_entry(&e)))
            }
        }
    }

    /// Stores `value` under `key`, fresh for `expire` (`None`: the region's `expire`).
    /// Does nothing when the region is disabled.
    ///
    /// # Errors
    ///
    /// [`Error::Serialize`] when an out-of-process region cannot encode the value (or a
    /// byte-bounded memory region cannot size it), [`Error::Store`] when the backend fails.
    pub async fn put<T: CacheValue>(&self, key: &str, value: &T, expire: Option<Duration>) -> Result<(), Error> {
        if !self.shared.config.enabled {
            return Ok(());
        }
        let key = limit_key(key, self.shared.config.key_length);
        self.store(&key, value, expire).await
    }

    /// Removes the value under `key`; returns whether one was there.
    ///
    /// # Errors
    ///
    /// [`Error::Store`] when the backend fails.
    pub async fn remove(&self, key: &str) -> Result<bool, Error> {
        let key = limit_key(key, self.shared.config.key_length);
        match &self.shared.storage {
            Storage::Memory(engine) => Ok(engine.remove(self.ns.id, &key)),
            Storage::Backend { backend, .. } => Ok(backend.remove(&self.backend_namespace(), &key).await?),
        }
    }

    /// [`remove`](Self::remove) for synchronous code; memory regions only.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] on a region that is not in memory (its backend's futures need
    /// their async runtime).
    pub fn remove_blocking(&self, key: &str) -> Result<bool, Error> {
        match &self.shared.storage {
            Storage::Memory(engine) => Ok(engine.remove(self.ns.id, &limit_key(key, self.shared.config.key_length))),
            Storage::Backend { .. } => Err(self.not_memory()),
        }
    }

    /// Removes every value of this handle's namespace, and only those. O(1) on memory
    /// regions (a namespace generation; the engine evicts the old entries by size).
    ///
    /// # Errors
    ///
    /// [`Error::Store`] when the backend fails.
    pub async fn clear(&self) -> Result<(), Error> {
        match &self.shared.storage {
            Storage::Memory(_) => {
                self.ns.clear_gen.fetch_add(1, Ordering::AcqRel);
                Ok(())
            }
            Storage::Backend { backend, .. } => Ok(backend.clear(&self.backend_namespace()).await?),
        }
    }

    /// What this handle's namespace holds in the backend ([`CacheBackend::namespace_stats`]),
    /// for operators and tools.
    ///
    /// # Errors
    ///
    /// [`Error::Store`]: the backend failed, or cannot count
    /// ([`StoreError::Unsupported`](crate::StoreError::Unsupported), also for memory
    /// regions, whose namespaces share one engine).
    pub async fn entry_stats(&self) -> Result<NamespaceStats, Error> {
        match &self.shared.storage {
            Storage::Memory(_) => Err(Error::Store(crate::StoreError::unsupported("memory", "counting cache entries"))),
            Storage::Backend { backend, .. } => Ok(backend.namespace_stats(&self.backend_namespace()).await?),
        }
    }

    /// Makes every value of the region (all namespaces) stale, in O(1): still servable by
    /// [`get_or_create`](Self::get_or_create) while one caller regenerates it, never
    /// returned by [`get`](Self::get). Process-local, like Beaker's `region_invalidate`.
    /// Backend entries are judged by their store time at millisecond resolution, so a
    /// value stored in the same millisecond as the invalidation is treated as stale too.
    pub fn invalidate_soft(&self) {
        self.shared.soft_gen.fetch_add(1, Ordering::AcqRel);
        let now = self.shared.now_ms();
        self.shared.soft_mark_ms.fetch_max(now, Ordering::AcqRel);
    }

    /// Makes every value of the region (all namespaces) absent, in O(1). Process-local:
    /// on backends this process moves on to fresh namespaces and the old entries go at
    /// their hard TTL.
    pub fn invalidate_hard(&self) {
        self.shared.hard_gen.fetch_add(1, Ordering::AcqRel);
    }

    pub(crate) fn not_memory(&self) -> Error {
        Error::Config(crate::error::ConfigError::Conflict {
            key: format!("cache.{}.type", self.shared.name),
            message: format!(
                "synchronous cache access needs a memory region, and region {:?} is {}",
                self.shared.name, self.shared.config.store_type
            ),
        })
    }

    /// The backend namespace: the hard generation moves to a fresh one.
    fn backend_namespace(&self) -> Cow<'_, str> {
        match self.shared.hard_gen.load(Ordering::Acquire) {
            0 => Cow::Borrowed(&self.ns.name),
            generation => Cow::Owned(format!("{}@{generation}", self.ns.name)),
        }
    }

    /// `None`: absent (cleared or hard-invalidated); `Some(fresh)` otherwise.
    #[inline]
    fn judge(&self, e: &MemEntry) -> Option<bool> {
        let s = &*self.shared;
        if e.hard_gen != s.hard_gen.load(Ordering::Acquire) || e.ns_gen != self.ns.clear_gen.load(Ordering::Acquire) {
            return None;
        }
        // The clock is read only for values that can expire, and then the coarse clock: a
        // hit costs no system call.
        Some(
            e.soft_gen == s.soft_gen.load(Ordering::Acquire)
                && (e.fresh_until_ms == 0 || s.coarse_now_ms() < e.fresh_until_ms),
        )
    }

    fn judge_entry(&self, e: &CacheEntry) -> bool {
        let mark = self.shared.soft_mark_ms.load(Ordering::Acquire);
        (mark == 0 || to_millis(e.stored_at) > mark) && e.is_fresh(self.shared.clock.now())
    }

    /// Reads `key` (already length-limited).
    // Always inlined: on the hit path a call frame costs more than the lookup's own logic.
    #[inline(always)]
    fn memory_lookup<T: CacheValue>(&self, engine: &MemoryEngine, key: &str) -> Result<Lookup<T>, Error> {
        let Some(entry) = engine.get(self.ns.id, key) else { return Ok(Lookup::Absent) };
        let Some(fresh) = self.judge(&entry) else { return Ok(Lookup::Absent) };
        let Some(value) = entry.value.downcast_ref::<T>() else {
            let why = format!("the cached value is a {}, not a {}", entry.type_name, std::any::type_name::<T>());
            return Err(Error::Deserialize { key: key.to_owned(), source: why.into() });
        };
        Ok(if fresh { Lookup::Fresh(value.clone()) } else { Lookup::Stale(value.clone()) })
    }

    pub(crate) async fn lookup<T: CacheValue>(&self, key: &str) -> Result<Lookup<T>, Error> {
        match &self.shared.storage {
            Storage::Memory(engine) => self.memory_lookup(engine, key),
            Storage::Backend { backend, .. } => {
                let Some(entry) = backend.get(&self.backend_namespace(), key).await? else {
                    return Ok(Lookup::Absent);
                };
                let fresh = self.judge_entry(&entry);
                let value: T = DataSerializer::decode(&entry.value)
                    .map_err(|source| Error::Deserialize { key: key.to_owned(), source })?;
                Ok(if fresh { Lookup::Fresh(value) } else { Lookup::Stale(value) })
            }
        }
    }

    /// Writes `value` under `key` (already length-limited).
    pub(crate) async fn store<T: CacheValue>(
        &self,
        key: &str,
        value: &T,
        expire: Option<Duration>,
    ) -> Result<(), Error> {
        let s = &*self.shared;
        // Saturated: a huge expiry (`Duration::MAX`) means "practically never", and must
        // neither overflow `SystemTime` nor reach a backend as a TTL it refuses.
        let expire = expire.or(s.config.expire).map(|e| e.min(MAX_EXPIRE));
        match &s.storage {
            Storage::Memory(engine) => {
                let value_len = if engine.weighs_bytes() { serialized_len(key, value)? } else { 0 };
                let fresh_until_ms = match expire {
                    Some(e) => s.now_ms().saturating_add(e.as_millis() as u64).max(1),
                    None => 0,
                };
                let entry: Arc<MemEntry> = Arc::new(MemEntry {
                    value: value.clone(),
                    type_name: std::any::type_name::<T>(),
                    fresh_until_ms,
                    soft_gen: s.soft_gen.load(Ordering::Acquire),
                    hard_gen: s.hard_gen.load(Ordering::Acquire),
                    ns_gen: self.ns.clear_gen.load(Ordering::Acquire),
                    weight: engine.weight_of(key.len(), value_len),
                });
                engine.insert(self.ns.id, key, entry);
                Ok(())
            }
            Storage::Backend { backend, serializer } => {
                let bytes =
                    serializer.encode(value).map_err(|source| Error::Serialize { key: key.to_owned(), source })?;
                // Whole milliseconds, as the entry's binary form keeps them.
                let now = from_millis(s.now_ms());
                let entry = CacheEntry {
                    value: bytes,
                    stored_at: now,
                    fresh_until: expire.map(|e| crate::clock::saturating_add(now, e)),
                };
                let hard_ttl = expire.map(|e| e.saturating_mul(HARD_TTL_FACTOR));
                Ok(backend.put(&self.backend_namespace(), key, &entry, hard_ttl).await?)
            }
        }
    }
}

/// The JSON size of `value`, as the weight estimate of byte-bounded memory regions.
fn serialized_len<T: Serialize>(key: &str, value: &T) -> Result<usize, Error> {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    serde_json::to_writer(&mut count, value)
        .map_err(|e| Error::Serialize { key: key.to_owned(), source: BoxError::from(e) })?;
    Ok(count.0)
}
