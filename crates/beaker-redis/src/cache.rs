//! [`RedisCache`]: cache entries as Redis strings, the dogpile lock as `SET NX PX`.

use std::sync::LazyLock;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use beaker_core::cache::{CacheBackend, CacheEntry, LockOutcome, LockToken};
use beaker_core::store::async_trait;
use beaker_core::StoreError;
use redis::Script;

use crate::client::{evalsha, glob_escape, RedisClient};
use crate::error::ConnectError;
use crate::options::RedisOptions;

/// Deletes the lock only if it still holds the caller's token, so a holder whose lock
/// expired cannot release the next holder's.
static UNLOCK: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
",
    )
});

/// A [`CacheBackend`] on Redis (single node, Cluster or Sentinel).
///
/// An entry is a string (`CacheEntry::to_bytes`) under
/// `<cache_prefix><namespace>:<key>` with the hard TTL as `PX`; `:` and `\` in the
/// namespace are escaped with `\`, so no namespace's keys can be mistaken for another's.
/// `clear` is `SCAN MATCH` + `UNLINK` over every master, never `KEYS` or `FLUSHDB`. The
/// dogpile lock is `SET <lock_prefix>… <random token> NX PX <ttl>`, released by a
/// compare-and-delete script.
///
/// ```no_run
/// use std::time::{Duration, SystemTime};
/// use beaker_core::cache::{CacheBackend, CacheEntry};
/// use beaker_redis::{RedisCache, RedisOptions};
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let cache = RedisCache::connect("redis://127.0.0.1:6379", RedisOptions::default()).await?;
/// let entry = CacheEntry { value: b"42".to_vec(), stored_at: SystemTime::now(), fresh_until: None };
/// cache.put("answers", "life", &entry, Some(Duration::from_secs(60))).await?;
/// assert_eq!(cache.get("answers", "life").await?, Some(entry));
/// cache.clear("answers").await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct RedisCache {
    client: RedisClient,
    /// The process-local tier, when on (see [`RedisCache::with_near_cache`]).
    pub(crate) near: Option<crate::tracking::Near<crate::near::CachedEntry>>,
}

impl RedisCache {
    /// A cache on an existing client (which a [`RedisStore`](crate::RedisStore) may share).
    pub fn new(client: RedisClient) -> Self {
        RedisCache { client, near: None }
    }

    /// Connects a new client; see [`RedisClient::connect`].
    pub async fn connect(url: &str, options: RedisOptions) -> Result<Self, ConnectError> {
        Ok(Self::new(RedisClient::connect(url, options).await?))
    }

    /// The underlying client.
    pub fn client(&self) -> &RedisClient {
        &self.client
    }

    /// The Redis key of an entry.
    pub fn redis_key(&self, namespace: &str, key: &str) -> String {
        format!("{}{}:{key}", self.client.options().cache_prefix, escape_namespace(namespace))
    }

    fn lock_key(&self, namespace: &str, key: &str) -> String {
        format!("{}{}:{key}", self.client.options().lock_prefix, escape_namespace(namespace))
    }
}

fn escape_namespace(namespace: &str) -> String {
    namespace.replace('\\', r"\\").replace(':', r"\:")
}

/// Milliseconds for `PX`, at least 1 (Redis refuses 0).
pub(crate) fn px(ttl: Duration) -> u64 {
    u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1)
}

#[async_trait]
impl CacheBackend for RedisCache {
    async fn get(&self, namespace: &str, key: &str) -> Result<Option<CacheEntry>, StoreError> {
        if let Some(near) = &self.near {
            return crate::near::cache_get(self, near, namespace, key).await;
        }
        let rkey = self.redis_key(namespace, key);
        let raw: Option<Vec<u8>> = self
            .client
            .run("cache get", |mut c| {
                let rkey = &rkey;
                async move { redis::cmd("GET").arg(rkey).query_async(&mut c).await }
            })
            .await?;
        raw.map(|b| CacheEntry::from_bytes(&b)).transpose()
    }

    async fn put(
        &self,
        namespace: &str,
        key: &str,
        entry: &CacheEntry,
        hard_ttl: Option<Duration>,
    ) -> Result<(), StoreError> {
        if let Some(near) = &self.near {
            return crate::near::cache_put(self, near, namespace, key, entry, hard_ttl).await;
        }
        let rkey = self.redis_key(namespace, key);
        let bytes = entry.to_bytes();
        let () = self
            .client
            .run("cache put", |mut c| {
                let (rkey, bytes) = (&rkey, &bytes);
                async move {
                    let mut set = redis::cmd("SET");
                    set.arg(rkey).arg(bytes.as_slice());
                    if let Some(ttl) = hard_ttl {
                        set.arg("PX").arg(px(ttl));
                    }
                    set.query_async(&mut c).await
                }
            })
            .await?;
        Ok(())
    }

    async fn remove(&self, namespace: &str, key: &str) -> Result<bool, StoreError> {
        if let Some(near) = &self.near {
            return crate::near::cache_remove(self, near, namespace, key).await;
        }
        let rkey = self.redis_key(namespace, key);
        let n: i64 = self
            .client
            .run("cache remove", |mut c| {
                let rkey = &rkey;
                async move { redis::cmd("DEL").arg(rkey).query_async(&mut c).await }
            })
            .await?;
        Ok(n > 0)
    }

    async fn clear(&self, namespace: &str) -> Result<(), StoreError> {
        let prefix = format!("{}{}:", self.client.options().cache_prefix, escape_namespace(namespace));
        let removed = self.client.scan_delete(&format!("{}*", glob_escape(&prefix))).await?;
        tracing::debug!(namespace, removed, "redis cache: namespace cleared");
        Ok(())
    }

    async fn try_lock(&self, namespace: &str, key: &str, ttl: Duration) -> Result<LockOutcome, StoreError> {
        let lkey = self.lock_key(namespace, key);
        let token = new_token()?;
        let reply: Option<String> = self
            .client
            .run("cache lock", |mut c| {
                let (lkey, token) = (&lkey, &token);
                async move {
                    redis::cmd("SET").arg(lkey).arg(token).arg("NX").arg("PX").arg(px(ttl)).query_async(&mut c).await
                }
            })
            .await?;
        Ok(match reply {
            Some(_) => LockOutcome::Acquired(LockToken(token)),
            None => LockOutcome::Busy,
        })
    }

    async fn unlock(&self, namespace: &str, key: &str, token: &LockToken) -> Result<(), StoreError> {
        let lkey = self.lock_key(namespace, key);
        let mut call = evalsha(&UNLOCK, &lkey);
        call.arg(&token.0);
        let _: i64 = self.client.eval("cache unlock", &UNLOCK, &call).await?;
        Ok(())
    }

    fn name(&self) -> &'static str {
        "redis"
    }
}

/// 128 random bits: a token no other holder can guess or collide with.
fn new_token() -> Result<String, StoreError> {
    let mut bytes = [0u8; 16];
    getrandom::getrandom(&mut bytes).map_err(|e| StoreError::backend("redis cache lock: no random source", e))?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespaces_cannot_alias_each_other() {
        // Without escaping, namespace "a" + key "b:c" and namespace "a:b" + key "c" collide.
        assert_ne!(format!("{}:{}", escape_namespace("a"), "b:c"), format!("{}:{}", escape_namespace("a:b"), "c"));
        assert_eq!(escape_namespace(r"x\:y"), r"x\\\:y");
    }

    #[test]
    fn px_is_never_zero() {
        assert_eq!(px(Duration::ZERO), 1);
        assert_eq!(px(Duration::from_secs(2)), 2000);
    }
}
