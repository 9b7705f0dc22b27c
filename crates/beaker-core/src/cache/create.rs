//! `get_or_create`: the dogpile rule (Beaker's `Value.get_value`, dogpile.cache's `Lock`).
//!
//! - fresh value: returned;
//! - no value: one caller runs the creator, the others wait for the process-local key
//!   lock and then read what it stored;
//! - stale value: the caller that gets the key lock without waiting regenerates; every
//!   other caller returns the stale value at once.
//!
//! A creator that fails, panics or is cancelled drops its lock guard, which releases the
//! key: waiters then find no value and the next one runs its own creator. Backends with a
//! distributed lock ([`LockOutcome::Acquired`]) additionally keep other processes out.
//!
//! Cache failures never fail these calls: an unreadable backend or an undecodable value
//! counts as a miss and a failed write is logged (`errors` counts both); the creator is
//! the source of truth and its own error is the only one returned.

use std::borrow::Cow;
use std::future::Future;
use std::time::Duration;

use super::backend::{LockOutcome, LockToken};
use super::block_on::block_on;
use super::key::limit_key;
use super::region::{CacheValue, Lookup, Region, Storage};
use crate::error::{BoxError, Error};

/// How often a caller polls while another process holds the distributed lock of a key
/// that has no value yet.
const DISTRIBUTED_POLL: Duration = Duration::from_millis(50);

/// The distributed side of the dogpile lock.
enum DistLock {
    /// The backend has none, or it failed (logged): the process-local lock only.
    Local,
    /// We hold it and must release it.
    Held(LockToken),
    /// Another process holds it.
    Busy,
}

impl Region {
    /// The value under `key`, created by `create` under the dogpile rule when it is
    /// missing or stale, and stored for the region's `expire`.
    ///
    /// The creator's error type may be anything convertible into [`BoxError`]; it comes
    /// back as [`Error::Creator`], and nothing is stored. Use
    /// [`get_or_create_with`](Self::get_or_create_with) to keep the creator's own error
    /// type or to give a per-call expiry.
    ///
    /// # Errors
    ///
    /// Only [`Error::Creator`]: cache failures are logged and count as misses.
    pub async fn get_or_create<T, E, F, Fut>(&self, key: &str, create: F) -> Result<T, Error>
    where
        T: CacheValue,
        E: Into<BoxError>,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        self.get_or_create_with(key, None, create).await.map_err(|e| Error::Creator(e.into()))
    }

    /// Like [`get_or_create`](Self::get_or_create), storing the created value for
    /// `expire` (`None`: the region's `expire`) and returning the creator's error as is.
    ///
    /// When the region is disabled, the creator always runs and nothing is stored.
    ///
    /// # Errors
    ///
    /// The creator's error; nothing is stored then, and a waiting caller runs its own
    /// creator next.
    pub async fn get_or_create_with<T, E, F, Fut>(&self, key: &str, expire: Option<Duration>, create: F) -> Result<T, E>
    where
        T: CacheValue,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let s = &*self.shared;
        if !s.config.enabled {
            s.stats.miss();
            return self.run_creator(create).await;
        }
        let key = limit_key(key, s.config.key_length);
        let key: &str = &key;
        match self.lookup_logged::<T>(key).await {
            Lookup::Fresh(value) => {
                s.stats.hit();
                Ok(value)
            }
            Lookup::Stale(stale) => {
                // Whoever holds the key is regenerating it: never wait behind them.
                let Some(_guard) = s.locks.try_lock(self.ns.id, key) else {
                    s.stats.stale_serve();
                    return Ok(stale);
                };
                // The previous holder may have stored a fresh value since our read.
                if let Lookup::Fresh(value) = self.lookup_logged::<T>(key).await {
                    s.stats.hit();
                    return Ok(value);
                }
                let dist = match self.distributed_lock(key).await {
                    DistLock::Busy => {
                        s.stats.stale_serve();
                        return Ok(stale);
                    }
                    dist => dist,
                };
                s.stats.miss();
                self.create_and_store(key, expire, dist, create).await
            }
            Lookup::Absent => {
                let _guard = s.locks.lock(self.ns.id, key).await;
                // Whoever held the lock before us has (unless it failed) stored a value.
                match self.lookup_logged::<T>(key).await {
                    Lookup::Fresh(value) => {
                        s.stats.lock_wait();
                        s.stats.hit();
                        return Ok(value);
                    }
                    Lookup::Stale(value) => {
                        s.stats.lock_wait();
                        s.stats.stale_serve();
                        return Ok(value);
                    }
                    Lookup::Absent => {}
                }
                let dist = match self.distributed_lock(key).await {
                    DistLock::Busy => match self.wait_for_other_process::<T>(key).await {
                        Ok(value) => {
                            s.stats.lock_wait();
                            s.stats.hit();
                            return Ok(value);
                        }
                        Err(dist) => dist,
                    },
                    dist => dist,
                };
                s.stats.miss();
                self.create_and_store(key, expire, dist, create).await
            }
        }
    }

    /// [`get_or_create_with`](Self::get_or_create_with) for synchronous code and a
    /// synchronous creator. Waiting for another caller's creator blocks the thread.
    ///
    /// Only memory regions can be served without an async runtime: on any other region
    /// the creator runs uncached (logged at warn level), so a synchronous `#[cached]`
    /// function keeps working, just without its cache.
    ///
    /// # Errors
    ///
    /// The creator's error.
    pub fn get_or_create_blocking<T, E, F>(&self, key: &str, expire: Option<Duration>, create: F) -> Result<T, E>
    where
        T: CacheValue,
        F: FnOnce() -> Result<T, E>,
    {
        match self.shared.storage {
            Storage::Memory(_) => block_on(self.get_or_create_with(key, expire, || std::future::ready(create()))),
            Storage::Backend { .. } => {
                tracing::warn!(region = %self.shared.name, "synchronous cache access needs a memory region; not caching");
                self.shared.stats.miss();
                block_on(self.run_creator(|| std::future::ready(create())))
            }
        }
    }

    async fn run_creator<T, E, F, Fut>(&self, create: F) -> Result<T, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let out = create().await;
        match out {
            Ok(_) => self.shared.stats.creation(),
            Err(_) => self.shared.stats.error(),
        }
        out
    }

    async fn create_and_store<T, E, F, Fut>(
        &self,
        key: &str,
        expire: Option<Duration>,
        dist: DistLock,
        create: F,
    ) -> Result<T, E>
    where
        T: CacheValue,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        // If this future is dropped mid-way, a held distributed lock is left to its TTL:
        // releasing it needs an await that a destructor cannot make.
        let out = self.run_creator(create).await;
        if let Ok(value) = &out {
            if let Err(e) = self.store(key, value, expire).await {
                self.shared.stats.error();
                tracing::warn!(region = %self.shared.name, key, error = %e, "could not store a created cache value");
            }
        }
        if let (DistLock::Held(token), Storage::Backend { backend, .. }) = (dist, &self.shared.storage) {
            if let Err(e) = backend.unlock(&self.lock_namespace(), key, &token).await {
                tracing::debug!(region = %self.shared.name, key, error = %e, "could not release a dogpile lock");
            }
        }
        out
    }

    /// Reads `key`, turning failures into misses (logged and counted).
    async fn lookup_logged<T: CacheValue>(&self, key: &str) -> Lookup<T> {
        match self.lookup::<T>(key).await {
            Ok(found) => found,
            Err(e) => {
                self.shared.stats.error();
                tracing::warn!(region = %self.shared.name, key, error = %e, "cache read failed; treating as a miss");
                Lookup::Absent
            }
        }
    }

    /// Lock names are per namespace, whatever the hard generation.
    fn lock_namespace(&self) -> Cow<'_, str> {
        Cow::Borrowed(&self.ns.name)
    }

    async fn distributed_lock(&self, key: &str) -> DistLock {
        let Storage::Backend { backend, .. } = &self.shared.storage else { return DistLock::Local };
        match backend.try_lock(&self.lock_namespace(), key, self.shared.lock_timeout).await {
            Ok(LockOutcome::Acquired(token)) => DistLock::Held(token),
            Ok(LockOutcome::Busy) => DistLock::Busy,
            Ok(_) => DistLock::Local,
            Err(e) => {
                self.shared.stats.error();
                tracing::warn!(region = %self.shared.name, key, error = %e, "dogpile lock failed; locking in-process only");
                DistLock::Local
            }
        }
    }

    /// Another process is creating `key`, which has no value here: poll for its value
    /// (with the builder's sleeper) until the lock frees or the lock timeout passes.
    /// `Ok` is the other process's value; `Err` says how to go on creating ourselves.
    async fn wait_for_other_process<T: CacheValue>(&self, key: &str) -> Result<T, DistLock> {
        let s = &*self.shared;
        let Some(sleep) = &s.sleeper else {
            // Without a way to sleep we cannot wait: create here too (at most one per process).
            return Err(DistLock::Local);
        };
        let deadline = s.now_ms().saturating_add(s.lock_timeout.as_millis() as u64);
        loop {
            sleep(DISTRIBUTED_POLL).await;
            if let Lookup::Fresh(value) | Lookup::Stale(value) = self.lookup_logged::<T>(key).await {
                return Ok(value);
            }
            match self.distributed_lock(key).await {
                DistLock::Busy if s.now_ms() < deadline => continue,
                DistLock::Busy => return Err(DistLock::Local),
                DistLock::Held(token) => {
                    // The holder may have stored its value and released the lock between
                    // the lookup above and this lock: look once more before creating.
                    let found = self.lookup_logged::<T>(key).await;
                    if let Lookup::Fresh(value) | Lookup::Stale(value) = found {
                        if let Storage::Backend { backend, .. } = &s.storage {
                            if let Err(e) = backend.unlock(&self.lock_namespace(), key, &token).await {
                                tracing::debug!(region = %s.name, key, error = %e, "could not release a dogpile lock");
                            }
                        }
                        return Ok(value);
                    }
                    return Err(DistLock::Held(token));
                }
                dist => return Err(dist),
            }
        }
    }
}
