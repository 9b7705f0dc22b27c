//! The near-cache paths of [`RedisStore`] and [`RedisCache`]: what each operation reads
//! from or writes to the process-local tier of [`tracking`](crate::tracking), and on
//! which connection.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use beaker_core::cache::{CacheBackend, CacheEntry};
use beaker_core::store::{Changes, Lookup, Record, SessionStore, StoreKey};
use beaker_core::StoreError;
use redis::{ErrorKind, ServerErrorKind, Value};

use crate::cache::RedisCache;
use crate::client::evalsha;
use crate::error;
use crate::session::{changes_args, classify, expiry_arg, millis, RedisStore, APPLY_READ, APPLY_TRACK};
use crate::tracking::{Near, NearCacheOptions, NearCacheStats, Ticket, Tier, Weigh};

/// A session as the tier keeps it: decoded, shared between the requests it serves. Only
/// live records: a tombstone is not kept, because Redis drops it at the end of its retire
/// window without telling anyone until something touches the key (an expired key is
/// deleted, and its invalidation sent, only when a read or the expiry cycle finds it).
#[derive(Clone)]
pub(crate) enum CachedSession {
    Live(Arc<Record>),
}

impl Weigh for CachedSession {
    fn weight(&self) -> u64 {
        match self {
            CachedSession::Live(r) => r.entries.iter().map(|(k, v)| (k.len() + v.len() + 48) as u64).sum::<u64>() + 96,
        }
    }
}

/// A cache entry as the tier keeps it, with the instant Redis drops it (its hard TTL).
#[derive(Clone)]
pub(crate) struct CachedEntry {
    entry: Arc<CacheEntry>,
    until: Option<Instant>,
}

impl Weigh for CachedEntry {
    fn weight(&self) -> u64 {
        self.entry.value.len() as u64 + 64
    }
}

impl RedisStore {
    /// Turns on the near cache: a process-local tier of decoded sessions in front of
    /// Redis, kept coherent by RESP3 client tracking on a connection of its own.
    ///
    /// A request that only reads a session this process saw recently is then answered
    /// from memory after a `PING` that concurrent requests share (no command on the
    /// session's key), and one that changes it costs one round trip: the write script,
    /// after which what the write left refills the tier. **A request that
    /// starts after another request's write to the same session has returned (on any
    /// instance) sees that write**; a session that ended anywhere is never served from the
    /// tier. While the tracking connection is down the store reads and writes Redis as if
    /// the tier were off, and the tier is empty when it comes back.
    ///
    /// Single node, Sentinel and Redis Cluster (one tracking connection per master; a
    /// changed slot map or a failover empties the tier).
    ///
    /// # Errors
    /// [`ConnectError::InvalidOptions`](crate::ConnectError::InvalidOptions) for bad
    /// options; [`ConnectError::Store`](crate::ConnectError::Store) if the
    /// tracking connection cannot be opened (Redis before 6, or unreachable).
    pub async fn with_near_cache(mut self, options: NearCacheOptions) -> Result<Self, crate::ConnectError> {
        let prefix = self.client().options().session_prefix.clone();
        self.near = Some(Near::open(self.client().clone(), prefix, "sessions", options).await?);
        Ok(self)
    }

    /// The near cache's counters, when it is on.
    pub fn near_cache_stats(&self) -> Option<NearCacheStats> {
        self.near.as_ref().map(Near::stats)
    }

    /// The near cache's options, when it is on.
    pub fn near_cache_options(&self) -> Option<&NearCacheOptions> {
        self.near.as_ref().map(Near::options)
    }

    /// The same store without its tier: the plain paths, on the client's connections.
    fn plain(&self) -> RedisStore {
        RedisStore::new(self.client().clone())
    }
}

pub(crate) async fn lookup(
    store: &RedisStore,
    near: &Near<CachedSession>,
    key: &StoreKey,
) -> Result<Lookup, StoreError> {
    let near = &near.here();
    let rkey = store.redis_key(key);
    match near.get(rkey.as_bytes()).await {
        Some(CachedSession::Live(record)) if !record.is_expired(SystemTime::now()) => {
            return Ok(Lookup::Live(Record::clone(&record)));
        }
        Some(CachedSession::Live(_)) => near.forget(rkey.as_bytes()),
        None => {}
    }
    near.missed();
    // Boxed apart, as the plain store's lookup is: a hit needs none of its state.
    Box::pin(load(store, near, key, rkey)).await
}

/// A lookup the tier could not serve: `HGETALL` on the tracking connection, whose reply
/// fills the tier.
async fn load(
    store: &RedisStore,
    near: &Tier<CachedSession>,
    key: &StoreKey,
    rkey: String,
) -> Result<Lookup, StoreError> {
    let Some(ticket) = near.read_ticket(rkey.as_bytes()) else { return store.plain().lookup(key).await };
    let mut conn = ticket.conn();
    let sentinel = near.client().is_sentinel();
    let read = async {
        if sentinel {
            let (role, raw): (Value, Fields) =
                redis::pipe().cmd("ROLE").cmd("HGETALL").arg(&rkey).query_async(&mut conn).await?;
            master_only(&role)?;
            Ok(raw)
        } else {
            redis::cmd("HGETALL").arg(&rkey).query_async::<Fields>(&mut conn).await
        }
    };
    let raw = match tracked(near, &ticket, "load", read).await {
        Ok(raw) => raw,
        Err(Fallback::Plain) => return store.plain().lookup(key).await,
        Err(Fallback::Fail(e)) => return Err(e),
    };
    let found = classify(raw)?;
    near.fill(rkey.as_bytes(), &ticket, cached(&found));
    Ok(found)
}

/// What a write of `changes` left of `base`, as Redis keeps it (times in whole
/// milliseconds); `None` if that has expired already.
fn applied_locally(base: &Record, changes: &Changes) -> Option<CachedSession> {
    let mut record = base.clone();
    record.apply(changes);
    record.accessed = UNIX_EPOCH + Duration::from_millis(millis(changes.accessed));
    record.expires = match expiry_arg(changes.expires) {
        0 => None,
        ms => Some(UNIX_EPOCH + Duration::from_millis(ms)),
    };
    (!record.is_expired(SystemTime::now())).then(|| CachedSession::Live(Arc::new(record)))
}

/// As [`cached`], for a lookup nobody else needs (no copy of the record).
fn into_cached(found: Lookup) -> Option<CachedSession> {
    match found {
        Lookup::Live(record) => Some(CachedSession::Live(Arc::new(record))),
        Lookup::Retired | Lookup::Missing => None,
    }
}

fn cached(found: &Lookup) -> Option<CachedSession> {
    match found {
        Lookup::Live(record) => Some(CachedSession::Live(Arc::new(record.clone()))),
        // Unknown ids are not remembered: a flood of them would only evict live sessions.
        // Tombstones neither (see `CachedSession`).
        Lookup::Retired | Lookup::Missing => None,
    }
}

pub(crate) async fn apply(
    store: &RedisStore,
    near: &Near<CachedSession>,
    key: &StoreKey,
    changes: &Changes,
) -> Result<bool, StoreError> {
    let near = &near.here();
    let rkey = store.redis_key(key);
    let (ticket, held) = near.write_ticket_held(rkey.as_bytes(), true);
    let Some(ticket) = ticket else {
        let applied = store.plain().apply(key, changes).await;
        near.forget(rkey.as_bytes());
        return applied;
    };
    // The tier's copy as the write began. If anything else changes the key before the
    // script runs, its invalidation (or the other local write's ticket) moves the stripe
    // before the reply arrives, and nothing is refilled; so when the stripe holds, Redis
    // held exactly this copy, and the write left it with the changes applied: no need to
    // read the record back.
    let base = match held {
        Some(CachedSession::Live(record)) => Some(record),
        _ => None,
    };
    let script = store.script(if base.is_some() { &APPLY_TRACK } else { &APPLY_READ });
    let mut call = evalsha(script, &rkey);
    changes_args(&mut call, changes, store.prefix());
    // The script's guard and write, then what it left, in one call: nothing else can run
    // between them, and the tier (NOLOOP) hears no echo of the write.
    let mut conn = ticket.conn();
    let run = async {
        match call.query_async::<Value>(&mut conn).await {
            Err(e) if e.kind() == ErrorKind::Server(ServerErrorKind::NoScript) => {
                script.load_async(&mut conn).await?;
                call.query_async(&mut conn).await
            }
            other => other,
        }
    };
    let (reply, raw) = match tracked(near, &ticket, "apply", run).await.map(split_applied) {
        Ok(Ok(split)) => split,
        Ok(Err(e)) | Err(Fallback::Fail(e)) => {
            near.write_done(rkey.as_bytes(), &ticket, None);
            return Err(e);
        }
        Err(Fallback::Plain) => {
            near.write_done(rkey.as_bytes(), &ticket, None);
            return store.plain().apply(key, changes).await;
        }
    };
    let applied = match store.follow_index(key, key, reply, expiry_arg(changes.expires)).await {
        Ok(applied) => applied,
        Err(e) => {
            near.write_done(rkey.as_bytes(), &ticket, None);
            return Err(e);
        }
    };
    let left = match (applied, base) {
        (false, _) => None,
        (true, Some(base)) => applied_locally(&base, changes),
        (true, None) => classify(raw).ok().and_then(into_cached),
    };
    near.write_done(rkey.as_bytes(), &ticket, left);
    Ok(applied)
}

/// A hash as `HGETALL` lists it: field, value.
type Fields = Vec<(Vec<u8>, Vec<u8>)>;

/// Splits the reply of [`APPLY_READ`] into the reply `APPLY` gives (`0` or `{1, old, new}`)
/// and the hash the write left (empty when it wrote nothing, or for [`APPLY_TRACK`], which
/// answers as `APPLY`).
fn split_applied(reply: Value) -> Result<(Value, Fields), StoreError> {
    let malformed = || StoreError::corrupt("redis store: unexpected near-cache apply reply");
    let Value::Array(mut parts) = reply else { return Ok((reply, Vec::new())) };
    if parts.len() == 3 {
        return Ok((Value::Array(parts), Vec::new()));
    }
    let Some(Value::Array(flat)) = (parts.len() == 4).then(|| parts.pop()).flatten() else { return Err(malformed()) };
    let mut fields = Vec::with_capacity(flat.len() / 2);
    let mut flat = flat.into_iter();
    while let Some(field) = flat.next() {
        match (field, flat.next()) {
            (Value::BulkString(f), Some(Value::BulkString(v))) => fields.push((f, v)),
            _ => return Err(malformed()),
        }
    }
    Ok((Value::Array(parts), fields))
}

/// Runs a write that changes `keys` on the client's connections, with the tier's keys
/// evicted around it (Redis's invalidations follow as well).
pub(crate) async fn around<'a, T, F, Fut>(
    store: &RedisStore,
    near: &Near<CachedSession>,
    keys: &[&StoreKey],
    write: F,
) -> Result<T, StoreError>
where
    F: FnOnce(RedisStore) -> Fut,
    Fut: Future<Output = Result<T, StoreError>> + 'a,
{
    let near = &near.here();
    let rkeys: Vec<String> = keys.iter().map(|k| store.redis_key(k)).collect();
    let tickets: Vec<Option<Ticket>> = rkeys.iter().map(|k| near.write_ticket(k.as_bytes())).collect();
    let result = write(store.plain()).await;
    for (rkey, ticket) in rkeys.iter().zip(&tickets) {
        match ticket {
            Some(ticket) => near.write_done(rkey.as_bytes(), ticket, None),
            None => near.forget(rkey.as_bytes()),
        }
    }
    result
}

/// Behind Sentinel, a read on the tracking connection comes with `ROLE`: a node that was
/// demoted while the connection stayed open must not answer it (the error drops the
/// connection and the tier, and the read goes to the client's connection, which follows
/// the master).
fn master_only(role: &Value) -> redis::RedisResult<()> {
    if crate::tracking::is_master(role) {
        Ok(())
    } else {
        Err(redis::RedisError::from((ErrorKind::Server(ServerErrorKind::ReadOnly), "not the master any more")))
    }
}

/// Why a call on the tracking connection did not answer.
enum Fallback {
    /// The connection failed (it is dropped): do the operation the plain way.
    Plain,
    /// Redis answered with an error: the operation's own.
    Fail(StoreError),
}

async fn tracked<T, V>(
    near: &Tier<V>,
    ticket: &Ticket,
    what: &str,
    call: impl Future<Output = redis::RedisResult<T>>,
) -> Result<T, Fallback>
where
    V: Clone + Weigh + Send + Sync + 'static,
{
    let timeout = near.client().options().timeout;
    match tokio::time::timeout(timeout, call).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => {
            if near.failed(ticket, &e) {
                Err(Fallback::Plain)
            } else {
                Err(Fallback::Fail(error::map(what, e)))
            }
        }
        Err(_) => {
            // No answer within the deadline: the plain path has its own deadline and
            // retry, and the tracking connection is suspect.
            near.failed(ticket, &redis::RedisError::from((ErrorKind::Io, "timed out")));
            Err(Fallback::Plain)
        }
    }
}

impl RedisCache {
    /// Turns on the near cache for this cache's regions: a process-local tier in front of
    /// Redis with the same invalidation and promise as
    /// [`RedisStore::with_near_cache`]: `get` on a hot key is a memory hit, and a `put`,
    /// `remove` or `clear` on any instance is seen by every request that starts after it
    /// returned. The dogpile lock stays in Redis, so `get_or_create` still runs one
    /// creator across instances.
    ///
    /// # Errors
    /// As [`RedisStore::with_near_cache`].
    pub async fn with_near_cache(mut self, options: NearCacheOptions) -> Result<Self, crate::ConnectError> {
        let prefix = self.client().options().cache_prefix.clone();
        self.near = Some(Near::open(self.client().clone(), prefix, "cache", options).await?);
        Ok(self)
    }

    /// The near cache's counters, when it is on.
    pub fn near_cache_stats(&self) -> Option<NearCacheStats> {
        self.near.as_ref().map(Near::stats)
    }

    fn plain(&self) -> RedisCache {
        RedisCache::new(self.client().clone())
    }
}

pub(crate) async fn cache_get(
    cache: &RedisCache,
    near: &Near<CachedEntry>,
    namespace: &str,
    key: &str,
) -> Result<Option<CacheEntry>, StoreError> {
    let near = &near.here();
    let rkey = cache.redis_key(namespace, key);
    if let Some(hit) = near.get(rkey.as_bytes()).await {
        if hit.until.is_none_or(|t| t > Instant::now()) {
            return Ok(Some(CacheEntry::clone(&hit.entry)));
        }
        near.forget(rkey.as_bytes());
    }
    near.missed();
    let Some(ticket) = near.read_ticket(rkey.as_bytes()) else { return cache.plain().get(namespace, key).await };
    let mut conn = ticket.conn();
    let sentinel = near.client().is_sentinel();
    let read = async {
        // The remaining TTL comes with the value, so that the tier drops it when Redis does.
        if sentinel {
            let (role, raw, pttl): (Value, Option<Vec<u8>>, i64) =
                redis::pipe().cmd("ROLE").cmd("GET").arg(&rkey).cmd("PTTL").arg(&rkey).query_async(&mut conn).await?;
            master_only(&role)?;
            Ok((raw, pttl))
        } else {
            redis::pipe()
                .cmd("GET")
                .arg(&rkey)
                .cmd("PTTL")
                .arg(&rkey)
                .query_async::<(Option<Vec<u8>>, i64)>(&mut conn)
                .await
        }
    };
    let (raw, pttl) = match tracked(near, &ticket, "cache get", read).await {
        Ok(reply) => reply,
        Err(Fallback::Plain) => return cache.plain().get(namespace, key).await,
        Err(Fallback::Fail(e)) => return Err(e),
    };
    let Some(raw) = raw else {
        near.fill(rkey.as_bytes(), &ticket, None);
        return Ok(None);
    };
    let entry = CacheEntry::from_bytes(&raw)?;
    let until = u64::try_from(pttl).ok().map(|ms| Instant::now() + Duration::from_millis(ms));
    near.fill(rkey.as_bytes(), &ticket, Some(CachedEntry { entry: Arc::new(entry.clone()), until }));
    Ok(Some(entry))
}

pub(crate) async fn cache_put(
    cache: &RedisCache,
    near: &Near<CachedEntry>,
    namespace: &str,
    key: &str,
    entry: &CacheEntry,
    hard_ttl: Option<Duration>,
) -> Result<(), StoreError> {
    let near = &near.here();
    let rkey = cache.redis_key(namespace, key);
    let Some(ticket) = near.write_ticket(rkey.as_bytes()) else {
        let put = cache.plain().put(namespace, key, entry, hard_ttl).await;
        near.forget(rkey.as_bytes());
        return put;
    };
    let started = Instant::now();
    let mut set = redis::cmd("SET");
    set.arg(&rkey).arg(entry.to_bytes());
    if let Some(ttl) = hard_ttl {
        set.arg("PX").arg(crate::cache::px(ttl));
    }
    let mut conn = ticket.conn();
    // Read back what the write left: the read renews the tracking of the key (a write of
    // one's own ends it), and a write of another client in between is what it returns.
    let mut pipe = redis::pipe();
    pipe.add_command(set).ignore().cmd("GET").arg(&rkey).cmd("PTTL").arg(&rkey);
    let write = pipe.query_async::<(Option<Vec<u8>>, i64)>(&mut conn);
    match tracked(near, &ticket, "cache put", write).await {
        Ok((left, pttl)) => {
            let left = left.map(|raw| CacheEntry::from_bytes(&raw)).transpose().ok().flatten();
            // The TTL counted from before the write: the tier never outlives Redis.
            let until = u64::try_from(pttl).ok().map(|ms| started + Duration::from_millis(ms));
            near.write_done(rkey.as_bytes(), &ticket, left.map(|entry| CachedEntry { entry: Arc::new(entry), until }));
            Ok(())
        }
        Err(fallback) => {
            near.write_done(rkey.as_bytes(), &ticket, None);
            match fallback {
                Fallback::Plain => cache.plain().put(namespace, key, entry, hard_ttl).await,
                Fallback::Fail(e) => Err(e),
            }
        }
    }
}

pub(crate) async fn cache_remove(
    cache: &RedisCache,
    near: &Near<CachedEntry>,
    namespace: &str,
    key: &str,
) -> Result<bool, StoreError> {
    let near = &near.here();
    let rkey = cache.redis_key(namespace, key);
    let ticket = near.write_ticket(rkey.as_bytes());
    let removed = cache.plain().remove(namespace, key).await;
    match &ticket {
        Some(ticket) => near.write_done(rkey.as_bytes(), ticket, None),
        None => near.forget(rkey.as_bytes()),
    }
    removed
}
