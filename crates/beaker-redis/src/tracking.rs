//! [`Near`]: a process-local tier in front of Redis, kept coherent by RESP3 client
//! tracking on a connection of its own. Used by [`RedisStore`](crate::RedisStore) and
//! [`RedisCache`](crate::RedisCache) when their near cache is on; see
//! [`NearCacheOptions`] for what it promises and ARCHITECTURE.md for the argument.
//!
//! The parts, and why each is there:
//!
//! - **One tracking connection** (RESP3, `CLIENT TRACKING ON NOLOOP`) carries every read
//!   that fills the tier, so Redis remembers that this connection holds the key, and the
//!   writes whose result enters the tier, each pipelined with a read of what it left
//!   (a write of one's own stops the tracking of the key; the read renews it). When
//!   another client changes a tracked key, Redis appends the invalidation to this
//!   connection's output before it answers that write, so on this one socket replies and
//!   invalidations arrive in the order Redis produced them, and the push handler runs
//!   inline, in that order, in the connection's read loop. (Broadcast mode, `BCAST`, was
//!   not used: it sends invalidations from the event loop's end, after the reply to a
//!   write of this connection's own, and `NOLOOP` does not hold back writes made by a
//!   script there, so every write would evict the value it just left.)
//! - **Stripes**: a sequence number per stripe of keys, bumped under the stripe's lock by
//!   every invalidation and by the start and the end of every local write. A fill (a reply
//!   that would enter the tier) is inserted only if its stripe did not move since it was
//!   sent, so no reply can land after an invalidation or a local write that superseded it.
//!   `NOLOOP` keeps this process's own writes from invalidating the values it just wrote.
//! - **Generation**: bumped when the tracking connection is lost (before anything else
//!   can run on its behalf), when a new one is up, and on a flush; an entry of an older
//!   generation is never served.
//! - **Barrier**: an entry is served only after a `PING` (`ROLE` behind Sentinel) sent on
//!   the tracking connection after the request started has been answered: every
//!   invalidation Redis sent before that has then been applied. One round is shared by
//!   every request that is waiting when it is sent.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use quick_cache::sync::Cache;
use quick_cache::Weighter;
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, PushInfo, PushKind, RedisResult, Value};
use tokio::sync::watch;

use crate::client::RedisClient;
use crate::error::{self, is_connection_error};

/// Sizing and naming of a near cache (the process-local tier of a
/// [`RedisStore`](crate::RedisStore) or [`RedisCache`](crate::RedisCache)).
///
/// The tier holds at most [`max_entries`](Self::max_entries) values and
/// [`max_bytes`](Self::max_bytes) of them (an estimate of their size in memory), evicting
/// the least valuable first. It promises: **a request that starts after another request's
/// write to the same key has returned, on any instance, sees that write.** It costs one
/// more connection per store or cache, a `PING` shared by the requests waiting at the same
/// moment, and an invalidation message (the key's name) to every instance that holds the
/// key when it changes.
///
/// ```
/// use beaker_redis::NearCacheOptions;
///
/// let options = NearCacheOptions::default().with_max_entries(50_000).with_max_bytes(64 << 20);
/// assert_eq!(options.max_entries, 50_000);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct NearCacheOptions {
    /// How many values the tier holds at most (default 10 000).
    pub max_entries: u64,
    /// How many bytes of values the tier holds at most (default 32 MiB).
    pub max_bytes: u64,
    /// `CLIENT SETNAME` of the tracking connection (default `beaker-near-<process id>`),
    /// so that an operator can find it in `CLIENT LIST`.
    pub client_name: String,
}

impl Default for NearCacheOptions {
    fn default() -> Self {
        NearCacheOptions {
            max_entries: 10_000,
            max_bytes: 32 << 20,
            client_name: format!("beaker-near-{}", std::process::id()),
        }
    }
}

impl NearCacheOptions {
    /// Sets [`max_entries`](Self::max_entries).
    pub fn with_max_entries(mut self, n: u64) -> Self {
        self.max_entries = n;
        self
    }

    /// Sets [`max_bytes`](Self::max_bytes).
    pub fn with_max_bytes(mut self, n: u64) -> Self {
        self.max_bytes = n;
        self
    }

    /// Sets [`client_name`](Self::client_name).
    pub fn with_client_name(mut self, name: impl Into<String>) -> Self {
        self.client_name = name.into();
        self
    }

    fn validate(&self) -> Result<(), crate::ConnectError> {
        let bad = |what: &str, why: &str| Err(crate::ConnectError::InvalidOptions(format!("near_cache {what}: {why}")));
        if self.max_entries == 0 {
            return bad("max_entries", "must be positive");
        }
        if self.max_bytes == 0 {
            return bad("max_bytes", "must be positive");
        }
        if self.client_name.is_empty() || !self.client_name.bytes().all(|b| b.is_ascii_graphic()) {
            return bad("client_name", "must be non-empty printable ASCII without spaces");
        }
        Ok(())
    }
}

/// Counters of a near cache, for tests and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct NearCacheStats {
    /// Reads answered by the tier.
    pub hits: u64,
    /// Reads that went to Redis.
    pub misses: u64,
    /// Invalidated keys received from Redis.
    pub invalidations: u64,
    /// Times the tracking connection was lost (the tier was emptied each time).
    pub resets: u64,
}

const STRIPES: usize = 1024;

/// What a value costs in the tier; at least `max_bytes / max_entries`, which bounds the
/// number of entries with the byte budget.
pub(crate) trait Weigh {
    fn weight(&self) -> u64;
}

#[derive(Clone)]
struct Slot<V> {
    generation: u64,
    value: V,
}

#[derive(Clone)]
struct SlotWeighter {
    floor: u64,
}

impl<V: Weigh> Weighter<Vec<u8>, Slot<V>> for SlotWeighter {
    fn weight(&self, key: &Vec<u8>, slot: &Slot<V>) -> u64 {
        (key.len() as u64 + slot.value.weight() + 64).max(self.floor)
    }
}

/// The process-local tier and its tracking connection; cheap to clone.
pub(crate) struct Near<V> {
    inner: Arc<Inner<V>>,
}

impl<V> Clone for Near<V> {
    fn clone(&self) -> Self {
        Near { inner: self.inner.clone() }
    }
}

impl<V> std::fmt::Debug for Near<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Near").field("prefix", &self.inner.prefix).field("options", &self.inner.options).finish()
    }
}

struct Inner<V> {
    client: RedisClient,
    prefix: String,
    options: NearCacheOptions,
    l1: Cache<Vec<u8>, Slot<V>, SlotWeighter>,
    stripes: Box<[Mutex<u64>]>,
    generation: AtomicU64,
    /// Numbers the tracking connections, so that a late message of an old one is ignored.
    serials: AtomicU64,
    live: Mutex<Option<Live>>,
    reconnecting: AtomicBool,
    last_attempt: Mutex<Option<Instant>>,
    rounds: Mutex<Rounds>,
    done: watch::Sender<Done>,
    hits: AtomicU64,
    misses: AtomicU64,
    invalidations: AtomicU64,
    resets: AtomicU64,
}

#[derive(Clone)]
struct Live {
    conn: MultiplexedConnection,
    /// Identifies this connection to its own push handler.
    serial: u64,
}

/// Barrier rounds: `next` is the number the next round will carry; `wanted` the highest
/// round a waiter needs; `running` whether a driver task is sending rounds.
#[derive(Default)]
struct Rounds {
    next: u64,
    wanted: u64,
    running: bool,
}

/// The last finished round and whether it was answered.
#[derive(Clone, Copy, Default)]
struct Done {
    round: u64,
    ok: bool,
}

/// A fill's ticket: where its stripe and the generation stood when its read was sent.
pub(crate) struct Ticket {
    stripe: usize,
    seq: u64,
    generation: u64,
    conn: MultiplexedConnection,
    serial: u64,
}

impl Ticket {
    /// The tracking connection the read or write must be sent on.
    pub(crate) fn conn(&self) -> MultiplexedConnection {
        self.conn.clone()
    }
}

fn stripe_of(key: &[u8]) -> usize {
    // FNV-1a: cheap, and spreads the random session ids and cache keys well enough.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in key {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    (h as usize) % STRIPES
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl<V: Clone + Weigh + Send + Sync + 'static> Near<V> {
    /// Opens the tracking connection for keys under `prefix`.
    pub(crate) async fn open(
        client: RedisClient,
        prefix: String,
        options: NearCacheOptions,
    ) -> Result<Self, crate::ConnectError> {
        options.validate()?;
        if client.is_cluster() {
            return Err(crate::ConnectError::InvalidOptions(
                "near_cache: not available on Redis Cluster (it needs one tracking connection per master)".into(),
            ));
        }
        let floor = (options.max_bytes / options.max_entries).max(1);
        let estimated = usize::try_from(options.max_entries.min(1 << 20)).unwrap_or(1 << 20);
        let l1 = Cache::with_weighter(estimated, options.max_bytes, SlotWeighter { floor });
        let (done, _) = watch::channel(Done::default());
        let near = Near {
            inner: Arc::new(Inner {
                client,
                prefix,
                options,
                l1,
                stripes: (0..STRIPES).map(|_| Mutex::new(0)).collect(),
                generation: AtomicU64::new(1),
                serials: AtomicU64::new(1),
                live: Mutex::new(None),
                reconnecting: AtomicBool::new(false),
                last_attempt: Mutex::new(None),
                rounds: Mutex::new(Rounds { next: 1, ..Rounds::default() }),
                done,
                hits: AtomicU64::new(0),
                misses: AtomicU64::new(0),
                invalidations: AtomicU64::new(0),
                resets: AtomicU64::new(0),
            }),
        };
        let timeout = near.inner.client.options().timeout;
        match tokio::time::timeout(timeout, Inner::connect(&near.inner)).await {
            Ok(Ok(())) => Ok(near),
            Ok(Err(e)) => Err(crate::ConnectError::Store(error::map("near cache: tracking", e))),
            Err(_) => Err(crate::ConnectError::Store(error::timed_out("near cache: tracking", timeout))),
        }
    }

    /// The client whose connections carry everything when the tracking connection is down.
    pub(crate) fn client(&self) -> &RedisClient {
        &self.inner.client
    }

    pub(crate) fn options(&self) -> &NearCacheOptions {
        &self.inner.options
    }

    pub(crate) fn stats(&self) -> NearCacheStats {
        let i = &self.inner;
        NearCacheStats {
            hits: i.hits.load(Ordering::Relaxed),
            misses: i.misses.load(Ordering::Relaxed),
            invalidations: i.invalidations.load(Ordering::Relaxed),
            resets: i.resets.load(Ordering::Relaxed),
        }
    }

    /// The tracking connection, or `None` while it is down (a reconnect is then started).
    fn live(&self) -> Option<Live> {
        let live = lock(&self.inner.live).clone();
        if live.is_none() {
            self.reconnect_soon();
        }
        live
    }

    fn reconnect_soon(&self) {
        let inner = &self.inner;
        {
            let mut last = lock(&inner.last_attempt);
            // A Redis that is down is not asked more than a few times a second.
            if last.is_some_and(|t| t.elapsed() < Duration::from_millis(200)) {
                return;
            }
            if inner.reconnecting.swap(true, Ordering::AcqRel) {
                return;
            }
            *last = Some(Instant::now());
        }
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            inner.reconnecting.store(false, Ordering::Release);
            return;
        };
        let inner = self.inner.clone();
        handle.spawn(async move {
            let timeout = inner.client.options().timeout;
            if let Ok(Err(e)) | Err(e) = tokio::time::timeout(timeout, Inner::connect(&inner))
                .await
                .map_err(|_| redis::RedisError::from((redis::ErrorKind::Io, "timed out")))
            {
                tracing::debug!(error = %e, "redis near cache: tracking connection not restored yet");
            }
            inner.reconnecting.store(false, Ordering::Release);
        });
    }

    /// A served value for `key`, if the tier holds one that is known current: only after
    /// a barrier round sent after this call began has been answered.
    pub(crate) async fn get(&self, key: &[u8]) -> Option<V> {
        // Nothing to wait for when there is nothing to serve.
        self.inner.l1.get(key)?;
        if !self.barrier().await {
            return None;
        }
        let slot = self.inner.l1.get(key)?;
        if slot.generation != self.inner.generation.load(Ordering::Acquire) {
            return None;
        }
        self.inner.hits.fetch_add(1, Ordering::Relaxed);
        Some(slot.value)
    }

    /// Counts a read that went to Redis.
    pub(crate) fn missed(&self) {
        self.inner.misses.fetch_add(1, Ordering::Relaxed);
    }

    /// Drops `key` from the tier (a value found expired or unusable).
    pub(crate) fn forget(&self, key: &[u8]) {
        let mut seq = lock(&self.inner.stripes[stripe_of(key)]);
        *seq += 1;
        self.inner.l1.remove(key);
    }

    /// A ticket for a read of `key` on the tracking connection, whose reply may fill the
    /// tier; `None` while the connection is down (read through the client then).
    pub(crate) fn read_ticket(&self, key: &[u8]) -> Option<Ticket> {
        let live = self.live()?;
        let stripe = stripe_of(key);
        let seq = *lock(&self.inner.stripes[stripe]);
        Some(Ticket {
            stripe,
            seq,
            generation: self.inner.generation.load(Ordering::Acquire),
            conn: live.conn,
            serial: live.serial,
        })
    }

    /// A ticket for a write of `key`: evicts it and moves its stripe, so that no fill sent
    /// before the write can land after it. `None` while the connection is down (the key is
    /// evicted all the same; write through the client then).
    pub(crate) fn write_ticket(&self, key: &[u8]) -> Option<Ticket> {
        let stripe = stripe_of(key);
        let live = self.live();
        let mut seq = lock(&self.inner.stripes[stripe]);
        *seq += 1;
        self.inner.l1.remove(key);
        let generation = self.inner.generation.load(Ordering::Acquire);
        live.map(|live| Ticket { stripe, seq: *seq, generation, conn: live.conn, serial: live.serial })
    }

    /// Enters `value` (read or written under `ticket`) unless the stripe moved or the
    /// connection changed since the ticket was taken.
    pub(crate) fn fill(&self, key: &[u8], ticket: &Ticket, value: Option<V>) {
        let seq = lock(&self.inner.stripes[ticket.stripe]);
        let current = *seq == ticket.seq && self.inner.generation.load(Ordering::Acquire) == ticket.generation;
        match value {
            Some(value) if current => {
                self.inner.l1.insert(key.to_vec(), Slot { generation: ticket.generation, value });
            }
            _ => {
                self.inner.l1.remove(key);
            }
        }
    }

    /// Ends a write's ticket: enters what the write left (if given and still current),
    /// then moves the stripe so that reads sent during the write cannot land after it.
    pub(crate) fn write_done(&self, key: &[u8], ticket: &Ticket, value: Option<V>) {
        self.fill(key, ticket, value);
        *lock(&self.inner.stripes[ticket.stripe]) += 1;
    }

    /// A call on the tracking connection failed: if the connection is at fault, drop it
    /// (and the tier with it).
    pub(crate) fn failed(&self, ticket: &Ticket, e: &redis::RedisError) {
        let readonly = e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::ReadOnly);
        if is_connection_error(e) || readonly {
            self.inner.lost_serial(ticket.serial);
        }
    }

    /// Waits for a barrier round sent after this call; `false` if the tracking connection
    /// could not answer one within the call deadline.
    async fn barrier(&self) -> bool {
        let inner = &self.inner;
        let mut rx = inner.done.subscribe();
        let (mine, drive) = {
            let mut r = lock(&inner.rounds);
            let mine = r.next;
            r.wanted = r.wanted.max(mine);
            let drive = !r.running;
            r.running = true;
            (mine, drive)
        };
        if drive {
            let Ok(handle) = tokio::runtime::Handle::try_current() else { return false };
            handle.spawn(Inner::drive(inner.clone()));
        }
        let wait = rx.wait_for(|d| d.round >= mine);
        let ok = match tokio::time::timeout(inner.client.options().timeout, wait).await {
            Ok(Ok(done)) => done.ok,
            _ => false,
        };
        ok
    }
}

impl<V: Clone + Weigh + Send + Sync + 'static> Inner<V> {
    /// Opens a tracking connection and makes it the live one.
    async fn connect(this: &Arc<Self>) -> RedisResult<()> {
        let serial = this.serials.fetch_add(1, Ordering::AcqRel);
        let weak: Weak<Self> = Arc::downgrade(this);
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(this.client.options().timeout))
            .set_response_timeout(None)
            .set_push_sender(move |info: PushInfo| -> Result<(), ()> {
                let inner = weak.upgrade().ok_or(())?;
                inner.on_push(serial, info);
                Ok(())
            });
        let mut conn = this.client.open_tracking(config).await?;
        let () = redis::cmd("CLIENT").arg("SETNAME").arg(&this.options.client_name).query_async(&mut conn).await?;
        let () = redis::cmd("CLIENT").arg("TRACKING").arg("ON").arg("NOLOOP").query_async(&mut conn).await?;
        let mut live = lock(&this.live);
        // Anything filled before now came through a connection that is gone.
        this.generation.fetch_add(1, Ordering::AcqRel);
        this.l1.clear();
        *live = Some(Live { conn, serial });
        tracing::debug!(prefix = %this.prefix, "redis near cache: tracking connection up");
        Ok(())
    }

    fn on_push(&self, serial: u64, info: PushInfo) {
        match info.kind {
            PushKind::Invalidate => match info.data.into_iter().next() {
                Some(Value::Array(keys)) => {
                    for key in keys {
                        if let Value::BulkString(key) = key {
                            self.invalidations.fetch_add(1, Ordering::Relaxed);
                            let mut seq = lock(&self.stripes[stripe_of(&key)]);
                            *seq += 1;
                            self.l1.remove(key.as_slice());
                        }
                    }
                }
                // A null key list: the database was flushed.
                _ => self.flush(),
            },
            PushKind::Disconnection => self.lost_serial(serial),
            _ => {}
        }
    }

    /// Forgets everything: nothing filled before this can be served or land later.
    fn flush(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.l1.clear();
    }

    fn lost_serial(&self, serial: u64) {
        let mut live = lock(&self.live);
        if live.as_ref().is_some_and(|l| l.serial == serial) {
            *live = None;
            self.resets.fetch_add(1, Ordering::Relaxed);
            self.flush();
            tracing::debug!(prefix = %self.prefix, "redis near cache: tracking connection lost, tier emptied");
        }
    }

    /// Sends barrier rounds while some waiter needs one.
    async fn drive(this: Arc<Self>) {
        let command = if this.client.is_sentinel() { "ROLE" } else { "PING" };
        loop {
            let round = {
                let mut r = lock(&this.rounds);
                let round = r.next;
                r.next += 1;
                round
            };
            let live = lock(&this.live).clone();
            let ok = match live {
                Some(live) => {
                    let mut conn = live.conn.clone();
                    let timeout = this.client.options().timeout;
                    let reply =
                        tokio::time::timeout(timeout, redis::cmd(command).query_async::<Value>(&mut conn)).await;
                    match reply {
                        Ok(Ok(Value::Array(role))) => {
                            let master = matches!(role.first(), Some(Value::BulkString(r)) if r == b"master");
                            if !master {
                                this.lost_serial(live.serial);
                            }
                            master
                        }
                        Ok(Ok(_)) => true,
                        Ok(Err(e)) if !is_connection_error(&e) => false,
                        // A connection that cannot answer a PING within the deadline may
                        // have missed invalidations: drop it with the tier.
                        _ => {
                            this.lost_serial(live.serial);
                            false
                        }
                    }
                }
                None => false,
            };
            this.done.send_replace(Done { round, ok });
            let mut r = lock(&this.rounds);
            if r.wanted <= round {
                r.running = false;
                return;
            }
        }
    }
}
