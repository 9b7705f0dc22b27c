//! [`SqlCache`]: cache entries as rows keyed by namespace and key, the dogpile lock as a
//! row in a lock table.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use beaker_core::cache::{CacheBackend, CacheEntry, LockOutcome, LockToken, NamespaceStats};
use beaker_core::store::async_trait;
use beaker_core::{SessionId, StoreError};
use sha2::{Digest, Sha256};
use tokio::sync::OnceCell;

use crate::client::{from_ms, on_pool, to_ms, SqlClient};
use crate::error::OpenError;
use crate::options::SqlOptions;
use crate::sql::{CacheSql, CACHE_KEY_MAX, NAMESPACE_MAX};

/// A [`CacheBackend`] on SQLite, PostgreSQL or MySQL/MariaDB.
///
/// ```text
/// <cache_table>        (namespace, cache_key, value, stored_at, fresh_until, expires,
///                       PRIMARY KEY (namespace, cache_key))
/// <cache_table>_locks  (namespace, cache_key, token, expires, PRIMARY KEY (namespace, cache_key))
/// ```
///
/// Namespaces and keys are stored as bytes; one longer than 255 (namespace) or 512 (key)
/// bytes is stored as `0xFF` + its SHA-256 instead (`0xFF` never occurs in UTF-8, so a
/// hashed name cannot equal a real one). `expires` is the hard TTL in Unix milliseconds
/// (`NULL` = none): `get` ignores rows past it, [`SqlCache::cleanup`] deletes them.
/// `fresh_until` is the region's own freshness, returned as stored. Each call is one
/// statement (one round trip), except `try_lock` (two: delete an expired lock, insert).
/// `clear(namespace)` is `DELETE … WHERE namespace = ?`, nothing wider.
///
/// ```no_run
/// use std::time::{Duration, SystemTime};
/// use beaker_core::cache::{CacheBackend, CacheEntry};
/// use beaker_sql::{SqlCache, SqlOptions};
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let cache = SqlCache::connect("sqlite:cache.db", SqlOptions::new()).await?;
/// let entry = CacheEntry { value: b"42".to_vec(), stored_at: SystemTime::now(), fresh_until: None };
/// cache.put("answers", "life", &entry, Some(Duration::from_secs(60))).await?;
/// assert_eq!(cache.get("answers", "life").await?, Some(entry));
/// cache.clear("answers").await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct SqlCache {
    client: SqlClient,
    sql: Arc<CacheSql>,
    ready: Arc<OnceCell<()>>,
}

/// The stored form of a namespace or key: itself, or `0xFF` + SHA-256 when too long.
fn column_key(s: &str, max: usize) -> Cow<'_, [u8]> {
    if s.len() <= max {
        Cow::Borrowed(s.as_bytes())
    } else {
        let mut hashed = Vec::with_capacity(33);
        hashed.push(0xFF);
        hashed.extend_from_slice(&Sha256::digest(s.as_bytes()));
        Cow::Owned(hashed)
    }
}

fn ttl_ms(ttl: Duration) -> i64 {
    i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX)
}

impl SqlCache {
    /// A cache on an existing client (which a [`SqlStore`](crate::SqlStore) may share).
    /// Its tables are created on first use, unless [`SqlOptions::create_tables`] is off.
    pub fn new(client: SqlClient) -> Self {
        let sql = CacheSql::new(client.dialect(), client.schema(), &client.options().cache_table);
        SqlCache { client, sql: Arc::new(sql), ready: Arc::new(OnceCell::new()) }
    }

    /// Connects (see [`SqlClient::connect`]) and creates the tables now unless
    /// [`SqlOptions::create_tables`] is off.
    pub async fn connect(url: &str, options: SqlOptions) -> Result<Self, OpenError> {
        let cache = Self::new(SqlClient::connect(url, options).await?);
        cache.ensure_tables().await?;
        Ok(cache)
    }

    /// The underlying client.
    pub fn client(&self) -> &SqlClient {
        &self.client
    }

    /// Creates the cache and lock tables if they do not exist.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        self.client.run_ddl("create cache tables", &self.sql.migrate).await
    }

    async fn ensure_tables(&self) -> Result<(), StoreError> {
        if !self.client.options().create_tables {
            return Ok(());
        }
        self.ready.get_or_try_init(|| self.migrate()).await.map(|_| ())
    }

    /// Deletes entries past their hard TTL and expired locks; returns how many entries went.
    pub async fn cleanup(&self) -> Result<u64, StoreError> {
        self.ensure_tables().await?;
        let now = self.client.now_ms();
        self.client
            .run_write("cache cleanup", || async {
                on_pool!(self.client.pool(), p => {
                    let removed = sqlx::query(&self.sql.cleanup).bind(now).execute(p).await?.rows_affected();
                    sqlx::query(&self.sql.cleanup_locks).bind(now).execute(p).await?;
                    Ok(removed)
                })
            })
            .await
    }
}

#[async_trait]
impl CacheBackend for SqlCache {
    async fn get(&self, namespace: &str, key: &str) -> Result<Option<CacheEntry>, StoreError> {
        self.ensure_tables().await?;
        let (ns, k) = (column_key(namespace, NAMESPACE_MAX), column_key(key, CACHE_KEY_MAX));
        let now = self.client.now_ms();
        let row: Option<(Vec<u8>, i64, Option<i64>)> = self
            .client
            .run("cache get", || async {
                on_pool!(self.client.pool(), p => {
                    sqlx::query_as(&self.sql.get)
                        .bind(ns.as_ref())
                        .bind(k.as_ref())
                        .bind(now)
                        .fetch_optional(p)
                        .await
                })
            })
            .await?;
        let Some((value, stored_at, fresh_until)) = row else { return Ok(None) };
        Ok(Some(CacheEntry {
            value,
            stored_at: from_ms(stored_at, "stored_at")?,
            fresh_until: fresh_until.map(|t| from_ms(t, "fresh_until")).transpose()?,
        }))
    }

    async fn put(
        &self,
        namespace: &str,
        key: &str,
        entry: &CacheEntry,
        hard_ttl: Option<Duration>,
    ) -> Result<(), StoreError> {
        self.ensure_tables().await?;
        let (ns, k) = (column_key(namespace, NAMESPACE_MAX), column_key(key, CACHE_KEY_MAX));
        let expires = hard_ttl.map(|ttl| self.client.now_ms().saturating_add(ttl_ms(ttl)));
        let (stored_at, fresh_until) = (to_ms(entry.stored_at), entry.fresh_until.map(to_ms));
        self.client
            .run_write("cache put", || async {
                on_pool!(self.client.pool(), p => {
                    sqlx::query(&self.sql.put)
                        .bind(ns.as_ref())
                        .bind(k.as_ref())
                        .bind(entry.value.as_slice())
                        .bind(stored_at)
                        .bind(fresh_until)
                        .bind(expires)
                        .execute(p)
                        .await
                        .map(|_| ())
                })
            })
            .await
    }

    async fn remove(&self, namespace: &str, key: &str) -> Result<bool, StoreError> {
        self.ensure_tables().await?;
        let (ns, k) = (column_key(namespace, NAMESPACE_MAX), column_key(key, CACHE_KEY_MAX));
        let removed: u64 = self
            .client
            .run_write("cache remove", || async {
                on_pool!(self.client.pool(), p => {
                    sqlx::query(&self.sql.remove)
                        .bind(ns.as_ref())
                        .bind(k.as_ref())
                        .execute(p)
                        .await
                        .map(|done| done.rows_affected())
                })
            })
            .await?;
        Ok(removed > 0)
    }

    async fn clear(&self, namespace: &str) -> Result<(), StoreError> {
        self.ensure_tables().await?;
        let ns = column_key(namespace, NAMESPACE_MAX);
        let removed: u64 = self
            .client
            .run_write("cache clear", || async {
                on_pool!(self.client.pool(), p => {
                    sqlx::query(&self.sql.clear).bind(ns.as_ref()).execute(p).await.map(|done| done.rows_affected())
                })
            })
            .await?;
        tracing::debug!(namespace, removed, "sql cache: namespace cleared");
        Ok(())
    }

    async fn namespace_stats(&self, namespace: &str) -> Result<NamespaceStats, StoreError> {
        self.ensure_tables().await?;
        let ns = column_key(namespace, NAMESPACE_MAX);
        let now = self.client.now_ms();
        let (entries, bytes): (i64, Option<i64>) = self
            .client
            .run("cache stats", || async {
                on_pool!(self.client.pool(), p => {
                    sqlx::query_as(&self.sql.stats).bind(ns.as_ref()).bind(now).fetch_one(p).await
                })
            })
            .await?;
        Ok(NamespaceStats::new(entries.max(0) as u64, Some(bytes.unwrap_or(0).max(0) as u64)))
    }

    async fn try_lock(&self, namespace: &str, key: &str, ttl: Duration) -> Result<LockOutcome, StoreError> {
        self.ensure_tables().await?;
        let (ns, k) = (column_key(namespace, NAMESPACE_MAX), column_key(key, CACHE_KEY_MAX));
        // A fresh session id: 192 random bits from the OS: no other holder can guess or collide with it.
        let token = SessionId::generate().expose().to_owned();
        let now = self.client.now_ms();
        let expires = now.saturating_add(ttl_ms(ttl).max(1));
        let taken = self
            .client
            .run_write("cache lock", || async {
                on_pool!(self.client.pool(), p => {
                    // A lock whose holder died is free once its TTL passed.
                    sqlx::query(&self.sql.unlock_expired)
                        .bind(ns.as_ref())
                        .bind(k.as_ref())
                        .bind(now)
                        .execute(p)
                        .await?;
                    let insert = sqlx::query(&self.sql.lock)
                        .bind(ns.as_ref())
                        .bind(k.as_ref())
                        .bind(token.as_bytes())
                        .bind(expires)
                        .execute(p)
                        .await;
                    match insert {
                        Ok(done) => Ok(done.rows_affected() == 1),
                        Err(sqlx::Error::Database(db)) if db.is_unique_violation() => Ok(false),
                        Err(e) => Err(e),
                    }
                })
            })
            .await?;
        Ok(if taken { LockOutcome::Acquired(LockToken(token)) } else { LockOutcome::Busy })
    }

    async fn unlock(&self, namespace: &str, key: &str, token: &LockToken) -> Result<(), StoreError> {
        self.ensure_tables().await?;
        let (ns, k) = (column_key(namespace, NAMESPACE_MAX), column_key(key, CACHE_KEY_MAX));
        self.client
            .run_write("cache unlock", || async {
                on_pool!(self.client.pool(), p => {
                    sqlx::query(&self.sql.unlock)
                        .bind(ns.as_ref())
                        .bind(k.as_ref())
                        .bind(token.0.as_bytes())
                        .execute(p)
                        .await
                        .map(|_| ())
                })
            })
            .await
    }

    fn name(&self) -> &'static str {
        self.client.database()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_names_are_hashed_apart_from_real_ones() {
        assert_eq!(column_key("short", 10).as_ref(), b"short");
        let long = "n".repeat(300);
        let hashed = column_key(&long, NAMESPACE_MAX);
        assert_eq!(hashed.len(), 33);
        assert_eq!(hashed[0], 0xFF);
        assert_ne!(hashed, column_key(&"n".repeat(301), NAMESPACE_MAX));
        assert!(std::str::from_utf8(&hashed).is_err(), "a hashed name must not be valid UTF-8");
    }
}
