//! [`MemcachedCache`]: cache entries as items under a per-namespace generation, the
//! dogpile lock as `add` with a TTL.

use std::future::Future;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use beaker_core::cache::{CacheBackend, CacheEntry, GenerationHints, LockOutcome, LockToken};
use beaker_core::store::async_trait;
use beaker_core::StoreError;
use memcache::exp::{Arithmetic, Delete, Get, Meta, MutationStatus, Set, Ttl};

use crate::client::{escape_namespace, make_key, ttl_for, MemcachedClient};
use crate::error::ConnectError;
use crate::MemcachedOptions;

/// A [`CacheBackend`] on memcached (one server or several).
///
/// An entry is one item (`CacheEntry::to_bytes`) under
/// `<cache_prefix><generation>:<namespace>:<key>` (hashed when too long), with the hard
/// TTL as memcached's expiry. `:` and `\` in the namespace are escaped, so no namespace's
/// keys can be mistaken for another's.
///
/// **Clearing a namespace** increments its generation counter
/// (`<cache_prefix>g:<namespace>`, one `incr`): every key of the old generation becomes
/// unreachable at once and memcached's LRU and the hard TTLs reclaim the items. Nothing
/// else on the server is touched (never `flush_all`). A counter that memcached evicted or
/// lost in a restart is started again at a random 63-bit value, so old generations do not
/// come back to life.
///
/// **The dogpile lock** is an `add` of `<cache_prefix>l:<namespace>:<key>` holding a
/// random 128-bit token, with the lock's TTL as the item's expiry (memcached counts whole
/// seconds, so a TTL under one second lasts one second). `unlock` reads the item with its
/// CAS value and deletes it only if it still holds the caller's token *and* its CAS is
/// unchanged, so a holder whose lock expired cannot release the next holder's. Limits,
/// inherent to memcached: an eviction under memory pressure can drop a held lock early
/// (two creators then run at once, which the dogpile rule tolerates: it only costs work),
/// and locks are not replicated across servers.
///
/// Round trips: `get` 1 once this instance has seen the namespace's generation (the
/// counter and the entry under that generation are read in one pipelined exchange, and
/// the entry is used only if the counter has not moved; a moved counter costs a second
/// exchange), 2 otherwise; `put` and `remove` likewise, the counter read and the write
/// under the last-seen generation sent at once on two pooled connections (a moved counter
/// means the write is made again under the current generation); `clear` 1;
/// `try_lock` 1; `unlock` 2. The counter is read on every call, so a `clear` by any
/// process is seen by the next `get` everywhere.
///
/// ```no_run
/// use std::time::{Duration, SystemTime};
/// use beaker_core::cache::{CacheBackend, CacheEntry};
/// use beaker_memcached::{MemcachedCache, MemcachedOptions};
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let cache = MemcachedCache::connect("memcached://127.0.0.1:11211", MemcachedOptions::default()).await?;
/// let entry = CacheEntry { value: b"42".to_vec(), stored_at: SystemTime::now(), fresh_until: None };
/// cache.put("answers", "life", &entry, Some(Duration::from_secs(60))).await?;
/// assert_eq!(cache.get("answers", "life").await?, Some(entry));
/// cache.clear("answers").await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct MemcachedCache {
    client: MemcachedClient,
    /// The generation last seen per namespace: a guess that lets `get` read it and the
    /// entry under it at once, checked against the stored generation.
    seen: GenerationHints<u64>,
}

impl MemcachedCache {
    /// A cache on an existing client (which a [`MemcachedStore`](crate::MemcachedStore)
    /// may share).
    pub fn new(client: MemcachedClient) -> Self {
        MemcachedCache { client, seen: GenerationHints::new() }
    }

    /// Connects a new client; see [`MemcachedClient::connect`].
    pub async fn connect(url: &str, options: MemcachedOptions) -> Result<Self, ConnectError> {
        Ok(Self::new(MemcachedClient::connect(url, options).await?))
    }

    /// The underlying client.
    pub fn client(&self) -> &MemcachedClient {
        &self.client
    }

    /// The memcached key of a namespace's generation counter.
    fn generation_key(&self, namespace: &str) -> String {
        make_key(&self.client.options.cache_prefix, &["g:", &escape_namespace(namespace)])
    }

    /// The memcached key of an entry in generation `generation`.
    fn entry_key(&self, generation: u64, namespace: &str, key: &str) -> String {
        let generation = generation.to_string();
        make_key(&self.client.options.cache_prefix, &[&generation, ":", &escape_namespace(namespace), ":", key])
    }

    /// The memcached key of a dogpile lock (outside every generation: a clear does not
    /// release it).
    fn lock_key(&self, namespace: &str, key: &str) -> String {
        make_key(&self.client.options.cache_prefix, &["l:", &escape_namespace(namespace), ":", key])
    }

    /// The current generation of `namespace`, started at a random value when there is none
    /// (never created, evicted, or garbage written by someone else). One round trip when
    /// the counter exists. The flag says whether this call started the generation: then
    /// it holds no entries yet.
    async fn generation(&self, namespace: &str) -> Result<(u64, bool), StoreError> {
        let gkey = self.generation_key(namespace);
        for _ in 0..3 {
            let get = Get::new(&gkey);
            let got = self.client.run("cache generation", |mc| async move { mc.run(get).await }).await?;
            if let Some(n) = got.value.as_deref().and_then(parse_counter) {
                self.seen.remember(namespace, n);
                return Ok((n, false));
            }
            let start = random_generation()?;
            let set = Set::new(&gkey, start.to_string()).ttl(Ttl::NEVER);
            // A foreign value is replaced outright; a missing counter is added, so that
            // concurrent starters agree on one value (the loser reads the winner's).
            let set = if got.value.is_some() { set } else { set.add() };
            let status = self.client.run("cache generation", |mc| async move { mc.run(set).await }).await?.status;
            if status == MutationStatus::Applied {
                self.seen.remember(namespace, start);
                return Ok((start, true));
            }
        }
        Err(StoreError::Unavailable {
            message: format!("memcached: cache generation of {namespace:?} kept changing"),
            source: None,
        })
    }

    /// Runs `op` on the entry's key under the generation this instance saw last, while the
    /// counter is read (both at once, on two pooled connections). `op`'s outcome when the
    /// counter has not moved; `None` when there is no guess or a clear came first: a write
    /// then went to a generation nobody reads, and the caller makes it again under the
    /// current one.
    async fn under_guess<T, Fut>(
        &self,
        what: &str,
        namespace: &str,
        key: &str,
        op: impl FnOnce(String) -> Fut,
    ) -> Result<Option<T>, StoreError>
    where
        Fut: Future<Output = Result<T, StoreError>>,
    {
        let Some(guess) = self.seen.guess(namespace) else { return Ok(None) };
        let (counter, outcome) = tokio::join!(self.counter(what, namespace), op(self.entry_key(guess, namespace, key)));
        if counter? == Some(guess) {
            outcome.map(Some)
        } else {
            Ok(None)
        }
    }

    /// The namespace's counter as it stands; `None` when it is missing or not a number.
    async fn counter(&self, what: &str, namespace: &str) -> Result<Option<u64>, StoreError> {
        let get = Get::new(self.generation_key(namespace));
        Ok(self.client.run(what, |mc| async move { mc.run(get).await }).await?.value.as_deref().and_then(parse_counter))
    }

    /// The entry under the generation this instance saw last, read with the counter in one
    /// pipelined exchange; `None` when there is no guess, the counter has moved (a clear)
    /// or either read failed: the caller then takes the two-step path, which reports errors.
    async fn get_with_guess(&self, namespace: &str, key: &str) -> Option<Option<Vec<u8>>> {
        let guess = self.seen.guess(namespace)?;
        let gets = [Get::new(self.generation_key(namespace)), Get::new(self.entry_key(guess, namespace, key))];
        let mut both = self.client.run("cache get", |mc| async move { mc.run_many(gets).await }).await.ok()?;
        let entry = both.pop()?.ok()?;
        let counter = both.pop()?.ok()?;
        (counter.value.as_deref().and_then(parse_counter) == Some(guess)).then_some(entry.value)
    }

    /// The key of an entry in the current generation; `None` when the generation was
    /// only just started, so that there is nothing to read or remove.
    async fn entry_key_now(&self, namespace: &str, key: &str) -> Result<(String, bool), StoreError> {
        let (generation, started) = self.generation(namespace).await?;
        Ok((self.entry_key(generation, namespace, key), started))
    }
}

/// A counter as memcached stores it: decimal ASCII.
fn parse_counter(bytes: &[u8]) -> Option<u64> {
    std::str::from_utf8(bytes).ok()?.trim().parse().ok()
}

/// A fresh generation: random, below 2^63 so that increments never wrap.
fn random_generation() -> Result<u64, StoreError> {
    let mut bytes = [0u8; 8];
    getrandom::getrandom(&mut bytes).map_err(|e| StoreError::backend("memcached cache: no random source", e))?;
    Ok(u64::from_be_bytes(bytes) >> 1)
}

/// 128 random bits: a lock token no other holder can guess or collide with.
fn new_token() -> Result<String, StoreError> {
    let mut bytes = [0u8; 16];
    getrandom::getrandom(&mut bytes).map_err(|e| StoreError::backend("memcached cache lock: no random source", e))?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

#[async_trait]
impl CacheBackend for MemcachedCache {
    async fn get(&self, namespace: &str, key: &str) -> Result<Option<CacheEntry>, StoreError> {
        let got = self
            .client
            .bounded("cache get", async {
                if let Some(value) = self.get_with_guess(namespace, key).await {
                    return Ok(value);
                }
                let (mkey, started) = self.entry_key_now(namespace, key).await?;
                if started {
                    return Ok(None);
                }
                let get = Get::new(mkey);
                Ok(self.client.run("cache get", |mc| async move { mc.run(get).await }).await?.value)
            })
            .await?;
        got.map(|b| CacheEntry::from_bytes(&b)).transpose()
    }

    async fn put(
        &self,
        namespace: &str,
        key: &str,
        entry: &CacheEntry,
        hard_ttl: Option<Duration>,
    ) -> Result<(), StoreError> {
        let bytes = entry.to_bytes();
        self.client.check_size("cache put", bytes.len())?;
        self.client
            .bounded("cache put", async {
                let ttl = ttl_for(hard_ttl);
                let write = |mkey: String| {
                    let set = Set::new(mkey, &bytes).ttl(ttl);
                    self.client.run("cache put", |mc| async move { mc.run(set).await.map(drop) })
                };
                if let Some(()) = self.under_guess("cache put", namespace, key, write).await? {
                    return Ok(());
                }
                write(self.entry_key_now(namespace, key).await?.0).await
            })
            .await
    }

    async fn remove(&self, namespace: &str, key: &str) -> Result<bool, StoreError> {
        self.client
            .bounded("cache remove", async {
                let delete = |mkey: String| {
                    let delete = Delete::new(mkey);
                    self.client.run("cache remove", |mc| async move { mc.run(delete).await.map(|d| d.applied()) })
                };
                if let Some(removed) = self.under_guess("cache remove", namespace, key, delete).await? {
                    return Ok(removed);
                }
                let (mkey, started) = self.entry_key_now(namespace, key).await?;
                if started {
                    return Ok(false);
                }
                delete(mkey).await
            })
            .await
    }

    async fn clear(&self, namespace: &str) -> Result<(), StoreError> {
        self.client.bounded("cache clear", self.clear_inner(namespace)).await
    }

    async fn try_lock(&self, namespace: &str, key: &str, ttl: Duration) -> Result<LockOutcome, StoreError> {
        let lkey = self.lock_key(namespace, key);
        let token = new_token()?;
        let add = Set::new(&lkey, &token).ttl(ttl_for(Some(ttl))).add();
        let status = self.client.run("cache lock", |mc| async move { mc.run(add).await }).await?.status;
        Ok(match status {
            MutationStatus::Applied => LockOutcome::Acquired(LockToken(token)),
            _ => LockOutcome::Busy,
        })
    }

    async fn unlock(&self, namespace: &str, key: &str, token: &LockToken) -> Result<(), StoreError> {
        self.client.bounded("cache unlock", self.unlock_inner(namespace, key, token)).await
    }

    fn name(&self) -> &'static str {
        "memcached"
    }
}

impl MemcachedCache {
    async fn clear_inner(&self, namespace: &str) -> Result<(), StoreError> {
        let gkey = self.generation_key(namespace);
        let incr = Arithmetic::new(&gkey);
        let bumped = match self.client.run("cache clear", |mc| async move { mc.run(incr).await }).await {
            Ok(done) => done.applied(),
            // memcached refuses to count a foreign, non-numeric value.
            Err(e) if !e.is_unavailable() => false,
            Err(e) => return Err(e),
        };
        if !bumped {
            // No counter, or one memcached cannot count with: a new random generation is
            // just as good a clear.
            let set = Set::new(&gkey, random_generation()?.to_string()).ttl(Ttl::NEVER);
            self.client.run("cache clear", |mc| async move { mc.run(set).await }).await?;
        }
        tracing::debug!(namespace, "memcached cache: namespace cleared (generation bumped)");
        Ok(())
    }

    async fn unlock_inner(&self, namespace: &str, key: &str, token: &LockToken) -> Result<(), StoreError> {
        let lkey = self.lock_key(namespace, key);
        let get = Get::new(&lkey).meta(Meta::NONE.cas());
        let got = self.client.run("cache unlock", |mc| async move { mc.run(get).await }).await?;
        let (Some(value), Some(cas)) = (got.value, got.item.cas) else { return Ok(()) };
        if value != token.0.as_bytes() {
            return Ok(());
        }
        // Deleted only if it is still the very item that holds our token.
        let delete = Delete::new(&lkey).compare_cas(cas);
        self.client.run("cache unlock", |mc| async move { mc.run(delete).await }).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_and_generations() {
        assert_eq!(parse_counter(b"42"), Some(42));
        assert_eq!(parse_counter(b"x"), None);
        let g = random_generation().unwrap();
        assert!(g < 1 << 63);
    }
}
