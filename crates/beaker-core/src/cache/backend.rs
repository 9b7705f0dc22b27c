//! The [`CacheBackend`] trait for out-of-process cache backends (Redis, Memcached, SQL,
//! files), and the entries it stores.

use std::fmt::Debug;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;

use crate::clock::{from_millis, to_millis};
use crate::error::StoreError;

/// One cached value as a backend keeps it: serialized bytes plus the region's own
/// freshness clock. Freshness is *not* the backend's TTL: a stale entry stays readable (so
/// that it can be served while one caller regenerates it) until the backend's hard TTL,
/// a multiple of the region's expiry, drops it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheEntry {
    /// The serialized, tagged value.
    pub value: Vec<u8>,
    /// When the value was stored.
    pub stored_at: SystemTime,
    /// Until when the value is fresh; `None` = always fresh.
    pub fresh_until: Option<SystemTime>,
}

const ENTRY_MAGIC: &[u8] = b"BKC1";

impl CacheEntry {
    /// Whether the value is still fresh at `now`.
    pub fn is_fresh(&self, now: SystemTime) -> bool {
        self.fresh_until.is_none_or(|t| now < t)
    }

    /// A compact binary form for backends that store blobs.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(20 + self.value.len());
        out.extend_from_slice(ENTRY_MAGIC);
        out.extend_from_slice(&to_millis(self.stored_at).to_be_bytes());
        out.extend_from_slice(&self.fresh_until.map_or(0, to_millis).to_be_bytes());
        out.extend_from_slice(&self.value);
        out
    }

    /// Reads what [`to_bytes`](Self::to_bytes) wrote.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, StoreError> {
        if bytes.len() < 20 || &bytes[..4] != ENTRY_MAGIC {
            return Err(StoreError::corrupt("not a beaker cache entry"));
        }
        let stored_at = from_millis(u64::from_be_bytes(bytes[4..12].try_into().expect("8 bytes")));
        let fresh = u64::from_be_bytes(bytes[12..20].try_into().expect("8 bytes"));
        Ok(CacheEntry { value: bytes[20..].to_vec(), stored_at, fresh_until: (fresh != 0).then(|| from_millis(fresh)) })
    }
}

/// A token proving ownership of a distributed lock (released by compare-and-delete).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockToken(pub String);

/// The answer to [`CacheBackend::try_lock`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum LockOutcome {
    /// The backend has no distributed lock; the process-local dogpile lock is all there is.
    Unsupported,
    /// This caller holds the lock until it unlocks or the lock's TTL passes.
    Acquired(LockToken),
    /// Another holder (probably another process) has it.
    Busy,
}

/// What one namespace of a backend holds, from [`CacheBackend::namespace_stats`]: for
/// operators and tools, not for the request path.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct NamespaceStats {
    /// Entries stored, fresh or stale (those past their hard TTL but not yet dropped by
    /// the backend may be counted too).
    pub entries: u64,
    /// Their stored size in bytes, when the backend can tell without reading them.
    pub bytes: Option<u64>,
}

impl NamespaceStats {
    /// `entries` entries of `bytes` bytes in all.
    pub fn new(entries: u64, bytes: Option<u64>) -> Self {
        NamespaceStats { entries, bytes }
    }
}

/// An out-of-process cache backend: bytes in, bytes out, per-entry expiry, namespaces.
///
/// # Contract
///
/// - `namespace` and `key` arrive already limited by the region's `key_length` (long keys
///   are hashed by the cache manager); a backend with a stricter limit (Memcached's 250
///   bytes for prefix + namespace + key) hashes further itself.
/// - `put` stores the entry with `hard_ttl` as the backend's native expiry (`None` =
///   none); entries past their `fresh_until` must still be returned until then.
/// - `clear` removes one namespace only, never the whole server (no `FLUSHDB`, no
///   `flush_all`): SCAN-and-delete, a namespace generation counter, or a `WHERE`.
/// - A value that cannot be decoded is [`StoreError::Corrupt`]; an unreachable backend is
///   [`StoreError::Unavailable`], within the backend's timeout. Never a panic.
#[async_trait]
pub trait CacheBackend: Send + Sync + Debug + 'static {
    /// The entry under `namespace`/`key`, fresh or stale.
    async fn get(&self, namespace: &str, key: &str) -> Result<Option<CacheEntry>, StoreError>;

    /// Stores an entry, replacing any previous one.
    async fn put(
        &self,
        namespace: &str,
        key: &str,
        entry: &CacheEntry,
        hard_ttl: Option<Duration>,
    ) -> Result<(), StoreError>;

    /// Removes an entry; returns whether one was there (backends that cannot tell say true).
    async fn remove(&self, namespace: &str, key: &str) -> Result<bool, StoreError>;

    /// Removes every entry of `namespace`.
    async fn clear(&self, namespace: &str) -> Result<(), StoreError>;

    /// Takes the cross-process dogpile lock for `namespace`/`key` for at most `ttl`, so a
    /// crashed holder cannot block the key forever. The default has no such lock.
    async fn try_lock(&self, namespace: &str, key: &str, ttl: Duration) -> Result<LockOutcome, StoreError> {
        let _ = (namespace, key, ttl);
        Ok(LockOutcome::Unsupported)
    }

    /// Releases a lock taken by [`try_lock`](Self::try_lock), only if `token` still owns it.
    async fn unlock(&self, namespace: &str, key: &str, token: &LockToken) -> Result<(), StoreError> {
        let _ = (namespace, key, token);
        Ok(())
    }

    /// How many entries `namespace` holds and their size. A backend that cannot enumerate
    /// its keys (Memcached) keeps the default, which answers [`StoreError::Unsupported`].
    async fn namespace_stats(&self, namespace: &str) -> Result<NamespaceStats, StoreError> {
        let _ = namespace;
        Err(StoreError::unsupported(self.name(), "counting cache entries"))
    }

    /// A short name for logs (`redis`, `memcached`, ...).
    fn name(&self) -> &'static str;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_bytes_round_trip_and_reject_garbage() {
        let e =
            CacheEntry { value: b"j42".to_vec(), stored_at: from_millis(1_000), fresh_until: Some(from_millis(2_000)) };
        assert_eq!(CacheEntry::from_bytes(&e.to_bytes()).unwrap(), e);
        let forever = CacheEntry { fresh_until: None, ..e.clone() };
        assert_eq!(CacheEntry::from_bytes(&forever.to_bytes()).unwrap(), forever);
        assert!(CacheEntry::from_bytes(b"BKC1").is_err());
        assert!(CacheEntry::from_bytes(b"garbage that is long enough").is_err());
        assert!(e.is_fresh(from_millis(1_999)) && !e.is_fresh(from_millis(2_000)));
    }
}
