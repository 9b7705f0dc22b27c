//! [`Near`]: a process-local tier in front of Redis, kept coherent by RESP3 client
//! tracking on a connection of its own. Used by [`RedisStore`](crate::RedisStore) and
//! [`RedisCache`](crate::RedisCache) when their near cache is on; see
//! [`NearCacheOptions`] for what it promises and ARCHITECTURE.md for the argument.
//!
//! The parts, and why each is there:
//!
//! - **One tracking connection** (RESP3, `CLIENT TRACKING ON NOLOOP`) carries every read
//!   that fills the tier, so Redis remembers that this connection holds the key, and the
//!   writes whose result enters the tier, each followed in the same call or pipeline by a
//!   read of what it left (a write of one's own stops the tracking of the key; the read
//!   renews it, also from inside a script, whose reads Redis tracks for its caller). A
//!   session write over the tier's own copy refills it from that copy and the changes. When
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
//! - **Barrier**: an entry is served only after a `PING` (`ROLE` behind Sentinel and on a
//!   Cluster) sent on the tracking connection after the request started has been
//!   answered: every invalidation Redis sent before that has then been applied. Rounds
//!   are chained per connection ([`Track`]): at most one `PING` is in flight, the
//!   requests that start meanwhile join the next round, whose `PING` the connection's
//!   pinger task sends when the one in flight is answered, and each request is woken
//!   once, by its own round. Behind Sentinel the reads that fill the tier carry a `ROLE`
//!   as well: a demoted master that kept the connection open must not answer them.
//! - **Cluster**: one tracking connection per master, opened from `CLUSTER SLOTS`; a key's
//!   reads, writes and barriers go to the connection of its slot's master, so the
//!   ordering argument holds per master. A slot moved elsewhere: `MIGRATE` deletes its
//!   keys on the old master (invalidations there, before anything on the new one), and a
//!   command of ours that still goes to the old master is answered `MOVED`, which drops
//!   all the connections and the tier; the next ones read the new map. A demoted master
//!   fails its `ROLE` barrier and answers reads with `MOVED`.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use futures_util::future::try_join_all;
use metrics::{counter, describe_counter, describe_gauge, gauge, Counter, Gauge};
use quick_cache::sync::Cache;
use quick_cache::Weighter;
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, PushInfo, PushKind, RedisResult, Value};
use tokio::sync::Notify;

use crate::client::RedisClient;
use crate::error::{self, is_connection_error};

/// Sizing and naming of a near cache (the process-local tier of a
/// [`RedisStore`](crate::RedisStore) or [`RedisCache`](crate::RedisCache)).
///
/// The tier holds at most [`max_entries`](Self::max_entries) values and
/// [`max_bytes`](Self::max_bytes) of them (an estimate of their size in memory), evicting
/// the least valuable first. A worker thread with a current-thread runtime of its own
/// (each actix-web worker) keeps a tier of its own until the thread ends, as it keeps a
/// connection of its own (see [`RedisClient`](crate::RedisClient)); the bounds are the
/// store's (or cache's), shared by all its tiers.
/// It promises: **a request that starts after another request's write to the same key
/// has returned, on any instance, sees that write.** It costs one more connection per
/// store or cache (on a Cluster, one per master) with a task beside it that sends the
/// `PING`s, each shared by the requests that start while the previous one is on its way,
/// and an invalidation message (the key's name) to every instance that holds the key
/// when it changes.
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
    /// How many values the tiers hold at most, together (default 10 000).
    pub max_entries: u64,
    /// How many bytes of values the tiers hold at most, together (default 32 MiB).
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

/// Counters of a near cache, for tests and metrics. The same counts go to the
/// [`metrics`](https://docs.rs/metrics) recorder installed when the near cache was opened,
/// as `beaker_near_cache_hits_total`, `_misses_total`, `_invalidations_total`,
/// `_resets_total`, `_pings_total` and the gauge `beaker_near_cache_tiers`, each labelled
/// `kind` (`sessions` or `cache`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct NearCacheStats {
    /// Reads answered by the tier.
    pub hits: u64,
    /// Reads that went to Redis.
    pub misses: u64,
    /// Invalidated keys received from Redis.
    pub invalidations: u64,
    /// Times the tracking connection was lost, or (on a cluster) replaced for a changed
    /// slot map; the tier was emptied each time.
    pub resets: u64,
    /// Barrier rounds sent (`PING`, or `ROLE` behind Sentinel and on a Cluster); each
    /// serves every hit that began while the previous one was on its way.
    pub pings: u64,
    /// Tiers in use: the shared one, and one for each worker thread (a current-thread
    /// runtime of its own) that has used the near cache and still runs. The other
    /// counters include those of the tiers let go.
    pub tiers: u64,
    /// Values held now, in all the tiers: at most
    /// [`max_entries`](NearCacheOptions::max_entries).
    pub entries: u64,
    /// Their estimated size in memory: at most [`max_bytes`](NearCacheOptions::max_bytes).
    pub bytes: u64,
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

impl<V: Weigh> Weighter<TierKey, Slot<V>> for SlotWeighter {
    fn weight(&self, key: &TierKey, slot: &Slot<V>) -> u64 {
        (key.1.len() as u64 + slot.value.weight() + 72).max(self.floor)
    }
}

/// A key in the values all the tiers of a near cache share: the tier's id and the key.
type TierKey = (u64, Vec<u8>);

/// A [`TierKey`] to look up without building one; hashes as the tuple does.
#[derive(Hash)]
struct Probe<'a>(u64, &'a [u8]);

impl quick_cache::Equivalent<TierKey> for Probe<'_> {
    fn equivalent(&self, key: &TierKey) -> bool {
        self.0 == key.0 && self.1 == key.1.as_slice()
    }
}

/// The process-local tier of a store or cache; cheap to clone. One [`Tier`] serves the
/// runtime the client connected on and multi-threaded runtimes; a worker thread of a
/// thread-per-core server (a current-thread runtime of its own, as each actix-web worker
/// runs) gets a tier and tracking connections of its own on first use, so that its hits
/// and writes are answered on its own thread instead of being handed to another thread
/// and back. Each tier is coherent on its own, as two processes are: Redis tracks each
/// tracking connection separately.
pub(crate) struct Near<V> {
    own: Tier<V>,
    workers: Arc<Workers<V>>,
}

impl<V> Clone for Near<V> {
    fn clone(&self) -> Self {
        Near { own: self.own.clone(), workers: self.workers.clone() }
    }
}

impl<V> std::fmt::Debug for Near<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let shared = &self.own.inner.shared;
        f.debug_struct("Near").field("prefix", &shared.prefix).field("options", &shared.options).finish()
    }
}

/// The worker threads' tiers, and the counters of those let go. Each worker thread finds
/// its tier through a thread-local entry ([`WorkerTier`]), without a lock; the entry's end
/// (the thread's, or its runtime's replacement) lets the tier go here.
type Workers<V> = Mutex<WorkerState<V>>;

struct WorkerState<V> {
    tiers: Vec<Tier<V>>,
    /// What the tiers let go counted, so that the sums never go back.
    retired: NearCacheStats,
}

impl<V> Default for WorkerState<V> {
    fn default() -> Self {
        WorkerState { tiers: Vec::new(), retired: NearCacheStats::default() }
    }
}

/// What a thread-local entry needs of [`Workers`], whatever its value type.
trait Retire: Send + Sync {
    /// Lets the tier with id `tier` go, keeping its counts.
    fn retire(&self, tier: u64);
}

impl<V: Clone + Weigh + Send + Sync + 'static> Retire for Workers<V> {
    fn retire(&self, tier: u64) {
        let gone = {
            let state = &mut *lock(self);
            let at = state.tiers.iter().position(|t| t.inner.id == tier);
            at.map(|at| {
                let gone = state.tiers.swap_remove(at);
                gone.add_stats(&mut state.retired);
                gone
            })
        };
        // Its values leave the bound the tiers share. (A request still under way on it
        // may put one back; no tier can serve it, and it is evicted in turn.)
        if let Some(gone) = &gone {
            gone.inner.clear();
        }
        // Its connections close outside the lock.
        drop(gone);
    }
}

/// A worker thread's way to its tier of one near cache: the tier, for the runtime it was
/// opened on. Held weakly: the near cache owns its tiers, so dropping the store frees them.
struct WorkerTier {
    workers: Weak<dyn Retire>,
    runtime: tokio::runtime::Id,
    tier: Weak<dyn std::any::Any + Send + Sync>,
    /// The tier's id, to let it go by.
    id: u64,
}

impl Drop for WorkerTier {
    fn drop(&mut self) {
        if let Some(workers) = self.workers.upgrade() {
            workers.retire(self.id);
        }
    }
}

thread_local! {
    static WORKER_TIERS: std::cell::RefCell<Vec<WorkerTier>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// One tier and its tracking connections; cheap to clone.
pub(crate) struct Tier<V> {
    inner: Arc<Inner<V>>,
}

impl<V> Clone for Tier<V> {
    fn clone(&self) -> Self {
        Tier { inner: self.inner.clone() }
    }
}

/// What the tiers of a near cache share: its client and options, its `metrics` handles,
/// and the values, kept under one bound (each tier's under its own id).
struct Shared<V> {
    client: RedisClient,
    prefix: String,
    options: NearCacheOptions,
    meters: Meters,
    l1: Cache<TierKey, Slot<V>, SlotWeighter>,
    /// The id of the next tier.
    next_id: AtomicU64,
}

struct Inner<V> {
    shared: Arc<Shared<V>>,
    /// This tier's part of `shared.l1`.
    id: u64,
    stripes: Box<[Mutex<u64>]>,
    generation: AtomicU64,
    /// Numbers the tracking connections, so that a late message of an old one is ignored.
    serials: AtomicU64,
    live: Mutex<Option<Arc<Live>>>,
    reconnecting: AtomicBool,
    last_attempt: Mutex<Option<Instant>>,
    hits: AtomicU64,
    misses: AtomicU64,
    invalidations: AtomicU64,
    resets: AtomicU64,
    pings: AtomicU64,
}

impl<V> Drop for Inner<V> {
    fn drop(&mut self) {
        self.shared.meters.tiers.decrement(1.0);
    }
}

/// The near cache's counters through the [`metrics`] facade, labelled `kind` (`sessions`
/// or `cache`): registered when the near cache is opened, with the recorder installed
/// then, and bumped with the tier's own counts.
struct Meters {
    hits: Counter,
    misses: Counter,
    invalidations: Counter,
    resets: Counter,
    pings: Counter,
    tiers: Gauge,
}

impl Meters {
    fn new(kind: &'static str) -> Self {
        describe_counter!(
            "beaker_near_cache_hits_total",
            "Redis near cache: reads answered by the process-local tier."
        );
        describe_counter!("beaker_near_cache_misses_total", "Redis near cache: reads that went to Redis.");
        describe_counter!("beaker_near_cache_invalidations_total", "Redis near cache: invalidated keys received.");
        describe_counter!(
            "beaker_near_cache_resets_total",
            "Redis near cache: tracking connections lost or replaced (the tier emptied)."
        );
        describe_counter!("beaker_near_cache_pings_total", "Redis near cache: barrier rounds sent.");
        describe_gauge!(
            "beaker_near_cache_tiers",
            "Redis near cache: tiers in use (shared, and one per worker thread)."
        );
        Meters {
            hits: counter!("beaker_near_cache_hits_total", "kind" => kind),
            misses: counter!("beaker_near_cache_misses_total", "kind" => kind),
            invalidations: counter!("beaker_near_cache_invalidations_total", "kind" => kind),
            resets: counter!("beaker_near_cache_resets_total", "kind" => kind),
            pings: counter!("beaker_near_cache_pings_total", "kind" => kind),
            tiers: gauge!("beaker_near_cache_tiers", "kind" => kind),
        }
    }
}

/// The tracking connections in use: one, or on a cluster one per master with the slot
/// map they were opened for. Any of them lost loses them all (and the tier).
struct Live {
    /// One per node of `map`, in its order.
    links: Vec<Link>,
    map: Map,
    /// Identifies these connections to their push handlers.
    serial: u64,
}

/// Where the tracking connections go: the one server, or on a cluster each master and
/// the slot map.
#[derive(PartialEq, Eq)]
struct Map {
    /// `None`: the client's one server (or Sentinel's master).
    nodes: Vec<Option<(String, u16)>>,
    /// Cluster: the index in `nodes` of each hash slot's master (`NO_LINK`: unserved).
    slots: Option<Box<[u16]>>,
}

/// One tracking connection and its barrier rounds.
struct Link {
    conn: MultiplexedConnection,
    track: Arc<Track>,
    /// The runtime its I/O task and its pinger run on.
    runtime: tokio::runtime::Id,
}

impl Drop for Link {
    fn drop(&mut self) {
        // Stops its pinger.
        self.track.close();
    }
}

const SLOTS: usize = 16384;
const NO_LINK: u16 = u16::MAX;

impl Live {
    /// The link that serves `key`: the master of its slot on a cluster.
    fn link_of(&self, key: &[u8]) -> Option<usize> {
        match &self.map.slots {
            None => Some(0),
            Some(slots) => match slots[slot_of(key)] {
                NO_LINK => None,
                link => Some(usize::from(link)),
            },
        }
    }
}

/// A key's Redis Cluster hash slot: CRC16 (XMODEM) of its hash tag, the part between the
/// first `{` and the next `}` when that is not empty, or else of the whole key.
fn slot_of(key: &[u8]) -> usize {
    let tagged = key.iter().position(|b| *b == b'{').and_then(|open| {
        let rest = &key[open + 1..];
        rest.iter().position(|b| *b == b'}').filter(|close| *close > 0).map(|close| &rest[..close])
    });
    usize::from(crc16::State::<crc16::XMODEM>::calculate(tagged.unwrap_or(key))) % SLOTS
}

/// The barrier rounds of one tracking connection. A round is one `PING`; the requests
/// that start while a round is in flight join the next one (`pending`), whose `PING` the
/// connection's pinger task ([`pinger`]) sends when the one in flight has been answered.
/// So at most one `PING` is in flight, every round serves all the requests that arrived
/// during the previous one, and a request is woken once, by the round it waits for (on a
/// server whose every wake-up re-polls the whole connection, as actix-web's does, a second
/// wake-up costs as much as the hit itself).
struct Track {
    rounds: Mutex<Rounds>,
    /// Wakes the pinger: a round is pending, or the track closed.
    wake: Notify,
}

#[derive(Default)]
struct Rounds {
    /// The round requests join now; its `PING` is not sent yet.
    pending: Option<Arc<Round>>,
    /// The round whose `PING` is on its way.
    in_flight: Option<Arc<Round>>,
    /// The connection is gone or its pinger stopped: no round will be answered.
    closed: bool,
}

impl Track {
    fn new() -> Self {
        Track { rounds: Mutex::new(Rounds::default()), wake: Notify::new() }
    }

    /// A round whose `PING` will be sent after this call; `None` once the track closed.
    fn join(&self) -> Option<Arc<Round>> {
        let mut rounds = lock(&self.rounds);
        if rounds.closed {
            return None;
        }
        if let Some(round) = &rounds.pending {
            return Some(round.clone());
        }
        let round = Arc::new(Round::new());
        rounds.pending = Some(round.clone());
        // A permit if the pinger is busy: it looks for this round when it is done.
        self.wake.notify_one();
        Some(round)
    }

    /// No round will be answered from now on: the parked requests read from Redis, and
    /// the pinger stops.
    fn close(&self) {
        let mut rounds = lock(&self.rounds);
        rounds.closed = true;
        for round in [rounds.pending.take(), rounds.in_flight.take()].into_iter().flatten() {
            round.finish(FAILED);
        }
        self.wake.notify_one();
    }
}

/// One barrier round: its outcome and the requests parked on it.
struct Round {
    /// `OPEN`, then `ANSWERED` or `FAILED`.
    state: AtomicU8,
    notify: Notify,
}

const OPEN: u8 = 0;
/// The `PING` was answered: the round's requests may serve from the tier.
const ANSWERED: u8 = 1;
/// The connection failed or is not the master any more: they read from Redis.
const FAILED: u8 = 2;

impl Round {
    fn new() -> Self {
        Round { state: AtomicU8::new(OPEN), notify: Notify::new() }
    }

    fn finish(&self, state: u8) {
        if self.state.compare_exchange(OPEN, state, Ordering::AcqRel, Ordering::Acquire).is_ok() {
            self.notify.notify_waiters();
        }
    }

    /// Parks until the round is over; its outcome.
    async fn outcome(&self) -> u8 {
        loop {
            // Created before the check: a `finish` in between still wakes it.
            let notified = self.notify.notified();
            let state = self.state.load(Ordering::Acquire);
            if state != OPEN {
                return state;
            }
            notified.await;
        }
    }
}

/// Sends the barrier rounds of one tracking connection, one after the other, until the
/// track closes. It runs on the runtime the connection was opened on, beside the
/// connection's own I/O task. Whenever it stops, dropped with its runtime included, the
/// track closes and the connections are given up, so the tier reconnects where it is
/// used next instead of waiting on rounds nobody sends.
async fn pinger<V: Clone + Weigh + Send + Sync + 'static>(
    inner: Weak<Inner<V>>,
    serial: u64,
    mut conn: MultiplexedConnection,
    track: Arc<Track>,
    command: &'static str,
    timeout: Duration,
) {
    struct Stop<V: Clone + Weigh + Send + Sync + 'static> {
        inner: Weak<Inner<V>>,
        serial: u64,
        track: Arc<Track>,
    }
    impl<V: Clone + Weigh + Send + Sync + 'static> Drop for Stop<V> {
        fn drop(&mut self) {
            if let Some(inner) = self.inner.upgrade() {
                inner.lost_serial(self.serial);
            }
            self.track.close();
        }
    }
    let _stop = Stop { inner: inner.clone(), serial, track: track.clone() };
    loop {
        let round = {
            let mut rounds = lock(&track.rounds);
            if rounds.closed {
                return;
            }
            // From here on, requests that start join a new round.
            let round = rounds.pending.take();
            rounds.in_flight.clone_from(&round);
            round
        };
        let Some(round) = round else {
            track.wake.notified().await;
            continue;
        };
        let Some(tier) = inner.upgrade() else { return };
        bump(&tier.pings, &tier.shared.meters.pings);
        drop(tier);
        let reply = tokio::time::timeout(timeout, redis::cmd(command).query_async::<Value>(&mut conn)).await;
        let answered = match reply {
            // A demoted master: what it answers says nothing of the new one.
            Ok(Ok(role @ Value::Array(_))) => is_master(&role),
            Ok(Ok(_)) => true,
            // An error reply arrives in order with the others all the same.
            Ok(Err(e)) => !is_connection_error(&e),
            // A connection that cannot answer a `PING` within the deadline may have
            // missed invalidations: drop it with the tier.
            Err(_) => false,
        };
        if !answered {
            return;
        }
        lock(&track.rounds).in_flight = None;
        round.finish(ANSWERED);
    }
}

/// A fill's ticket: where its stripe and the generation stood when its read was sent.
pub(crate) struct Ticket {
    stripe: usize,
    seq: u64,
    generation: u64,
    live: Arc<Live>,
    link: usize,
}

impl Ticket {
    /// The tracking connection the read or write must be sent on.
    pub(crate) fn conn(&self) -> MultiplexedConnection {
        self.live.links[self.link].conn.clone()
    }
}

/// Whether a `ROLE` reply is a master's.
pub(crate) fn is_master(role: &Value) -> bool {
    matches!(role, Value::Array(parts) if matches!(parts.first(), Some(Value::BulkString(r)) if r == b"master"))
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

/// Counts one event in a tier's own count and in its `metrics` counter.
fn bump(count: &AtomicU64, meter: &Counter) {
    count.fetch_add(1, Ordering::Relaxed);
    meter.increment(1);
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl<V: Clone + Weigh + Send + Sync + 'static> Near<V> {
    /// Opens the tracking connections for keys under `prefix`.
    pub(crate) async fn open(
        client: RedisClient,
        prefix: String,
        kind: &'static str,
        options: NearCacheOptions,
    ) -> Result<Self, crate::ConnectError> {
        options.validate()?;
        let floor = (options.max_bytes / options.max_entries).max(1);
        let estimated = usize::try_from(options.max_entries.min(1 << 20)).unwrap_or(1 << 20);
        let shared = Shared {
            client,
            prefix,
            meters: Meters::new(kind),
            l1: Cache::with_weighter(estimated, options.max_bytes, SlotWeighter { floor }),
            options,
            next_id: AtomicU64::new(0),
        };
        let own = Tier::new(Arc::new(shared));
        let timeout = own.inner.shared.client.options().timeout;
        let connect = async { Inner::connect(&own.inner, Inner::read_map(&own.inner).await?).await };
        match tokio::time::timeout(timeout, connect).await {
            Ok(Ok(())) => Ok(Near { own, workers: Arc::default() }),
            Ok(Err(e)) => Err(crate::ConnectError::Store(error::map("near cache: tracking", e))),
            Err(_) => Err(crate::ConnectError::Store(error::timed_out("near cache: tracking", timeout))),
        }
    }

    /// The tier the calling thread uses: its own on a worker thread's current-thread
    /// runtime (created here, connected by its first use), else the shared one.
    pub(crate) fn here(&self) -> Tier<V> {
        let Some(runtime) = self.own.inner.shared.client.thread_runtime() else { return self.own.clone() };
        // `try_with`: a call made while the thread is being torn down uses the shared tier.
        match WORKER_TIERS.try_with(|v| self.find_worker_tier(&v.borrow(), runtime)) {
            Err(_) => return self.own.clone(),
            Ok(Some(tier)) => return tier,
            Ok(None) => {}
        }
        let own = &self.own.inner;
        let tier = Tier::new(own.shared.clone());
        lock(&self.workers).tiers.push(tier.clone());
        let workers: Arc<dyn Retire> = self.workers.clone();
        let inner: Arc<dyn std::any::Any + Send + Sync> = tier.inner.clone();
        let entry =
            WorkerTier { workers: Arc::downgrade(&workers), runtime, tier: Arc::downgrade(&inner), id: tier.inner.id };
        let stale = WORKER_TIERS.try_with(|v| {
            let mut v = v.borrow_mut();
            // This thread's tier of an earlier runtime is gone with that runtime's tasks,
            // and the entries of near caches dropped since are of no use.
            let (stale, kept) = std::mem::take(&mut *v)
                .into_iter()
                .partition::<Vec<_>, _>(|t| t.workers.strong_count() == 0 || self.owns(t));
            *v = kept;
            v.push(entry);
            stale
        });
        // Let go outside the borrow: letting go takes the near cache's lock.
        drop(stale);
        tier
    }

    /// Whether the thread-local entry `t` is one of this near cache's. (A `Weak` keeps its
    /// allocation, so no other near cache can have the same address while `t` exists.)
    fn owns(&self, t: &WorkerTier) -> bool {
        std::ptr::eq(t.workers.as_ptr().cast::<()>(), Arc::as_ptr(&self.workers).cast::<()>())
    }

    fn find_worker_tier(&self, v: &[WorkerTier], runtime: tokio::runtime::Id) -> Option<Tier<V>> {
        let entry = v.iter().find(|t| t.runtime == runtime && self.owns(t))?;
        let inner = entry.tier.upgrade()?.downcast::<Inner<V>>().ok()?;
        Some(Tier { inner })
    }

    pub(crate) fn options(&self) -> &NearCacheOptions {
        &self.own.inner.shared.options
    }

    /// The counters of every tier, summed (those of tiers let go included).
    pub(crate) fn stats(&self) -> NearCacheStats {
        let state = lock(&self.workers);
        let mut sum = state.retired;
        for tier in std::iter::once(&self.own).chain(&state.tiers) {
            tier.add_stats(&mut sum);
        }
        sum.tiers = 1 + state.tiers.len() as u64;
        let l1 = &self.own.inner.shared.l1;
        (sum.entries, sum.bytes) = (l1.len() as u64, l1.weight());
        sum
    }
}

impl<V: Clone + Weigh + Send + Sync + 'static> Tier<V> {
    /// Adds this tier's counters to `sum`.
    fn add_stats(&self, sum: &mut NearCacheStats) {
        let i = &self.inner;
        sum.hits += i.hits.load(Ordering::Relaxed);
        sum.misses += i.misses.load(Ordering::Relaxed);
        sum.invalidations += i.invalidations.load(Ordering::Relaxed);
        sum.resets += i.resets.load(Ordering::Relaxed);
        sum.pings += i.pings.load(Ordering::Relaxed);
    }

    /// A tier with no tracking connection yet: its first use connects it.
    fn new(shared: Arc<Shared<V>>) -> Self {
        shared.meters.tiers.increment(1.0);
        Tier {
            inner: Arc::new(Inner {
                id: shared.next_id.fetch_add(1, Ordering::Relaxed),
                shared,
                stripes: (0..STRIPES).map(|_| Mutex::new(0)).collect(),
                generation: AtomicU64::new(1),
                serials: AtomicU64::new(1),
                live: Mutex::new(None),
                reconnecting: AtomicBool::new(false),
                last_attempt: Mutex::new(None),
                hits: AtomicU64::new(0),
                misses: AtomicU64::new(0),
                invalidations: AtomicU64::new(0),
                resets: AtomicU64::new(0),
                pings: AtomicU64::new(0),
            }),
        }
    }

    /// The client whose connections carry everything when the tracking connection is down.
    pub(crate) fn client(&self) -> &RedisClient {
        &self.inner.shared.client
    }

    /// The tracking connections, the one of them that serves `key` and the tier's
    /// generation with them, or `None` while they are down (a reconnect is then started)
    /// or, on a cluster, while the slot map they were opened for has no master for `key`
    /// (the map is then read again, and the connections replaced only if it changed).
    fn live(&self, key: &[u8]) -> Option<(Arc<Live>, usize, u64)> {
        let live = {
            let live = lock(&self.inner.live);
            // Read under the lock that connecting and losing take: the pair is consistent.
            live.clone().map(|l| (l, self.inner.generation.load(Ordering::Acquire)))
        };
        let found = live.and_then(|(live, generation)| {
            let link = live.link_of(key)?;
            Some((live, link, generation))
        });
        if found.is_none() {
            self.reconnect_soon();
        }
        found
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
            let timeout = inner.shared.client.options().timeout;
            let reconnect = async {
                let map = Inner::read_map(&inner).await?;
                // A slot without a master in a map that is still current: keep the
                // connections and the tier (that slot's keys go to the client).
                if lock(&inner.live).as_ref().is_some_and(|live| live.map == map) {
                    return Ok(());
                }
                Inner::connect(&inner, map).await
            };
            if let Ok(Err(e)) | Err(e) = tokio::time::timeout(timeout, reconnect)
                .await
                .map_err(|_| redis::RedisError::from((redis::ErrorKind::Io, "timed out")))
            {
                tracing::debug!(error = %e, "redis near cache: tracking connection not restored yet");
            }
            inner.reconnecting.store(false, Ordering::Release);
        });
    }

    /// A served value for `key`, if the tier holds one that is known current: only after
    /// a reply to a command sent on the tracking connection after this call began.
    pub(crate) async fn get(&self, key: &[u8]) -> Option<V> {
        // Nothing to wait for when there is nothing to serve.
        self.inner.l1_get(key)?;
        let (live, link, generation) = self.live(key)?;
        if !self.barrier(&live, link).await {
            return None;
        }
        let slot = self.inner.l1_get(key)?;
        // An entry of another generation (a lost connection, a flush, or filled through a
        // connection that was not yet live when the barrier began) is not covered by it.
        if slot.generation != generation || self.inner.generation.load(Ordering::Acquire) != generation {
            return None;
        }
        bump(&self.inner.hits, &self.inner.shared.meters.hits);
        Some(slot.value)
    }

    /// Counts a read that went to Redis.
    pub(crate) fn missed(&self) {
        bump(&self.inner.misses, &self.inner.shared.meters.misses);
    }

    /// Drops `key` from the tier (a value found expired or unusable).
    pub(crate) fn forget(&self, key: &[u8]) {
        let mut seq = lock(&self.inner.stripes[stripe_of(key)]);
        *seq += 1;
        self.inner.l1_remove(key);
    }

    /// A ticket for a read of `key` on the tracking connection, whose reply may fill the
    /// tier; `None` while the connection is down (read through the client then).
    pub(crate) fn read_ticket(&self, key: &[u8]) -> Option<Ticket> {
        let (live, link, generation) = self.live(key)?;
        let stripe = stripe_of(key);
        let seq = *lock(&self.inner.stripes[stripe]);
        Some(Ticket { stripe, seq, generation, live, link })
    }

    /// A ticket for a write of `key`: evicts it and moves its stripe, so that no fill sent
    /// before the write can land after it. `None` while the connection is down (the key is
    /// evicted all the same; write through the client then).
    pub(crate) fn write_ticket(&self, key: &[u8]) -> Option<Ticket> {
        self.write_ticket_held(key, false).0
    }

    /// As [`write_ticket`](Self::write_ticket); with `want`, also the value the tier held
    /// for `key` (of the current generation) when the write began.
    pub(crate) fn write_ticket_held(&self, key: &[u8], want: bool) -> (Option<Ticket>, Option<V>) {
        let stripe = stripe_of(key);
        let live = self.live(key);
        let mut seq = lock(&self.inner.stripes[stripe]);
        *seq += 1;
        let generation = self.inner.generation.load(Ordering::Acquire);
        let held = if want {
            self.inner.l1_get(key).filter(|slot| slot.generation == generation).map(|slot| slot.value)
        } else {
            None
        };
        self.inner.l1_remove(key);
        (live.map(|(live, link, _)| Ticket { stripe, seq: *seq, generation, live, link }), held)
    }

    /// Enters `value` (read or written under `ticket`) unless the stripe moved or the
    /// connection changed since the ticket was taken.
    pub(crate) fn fill(&self, key: &[u8], ticket: &Ticket, value: Option<V>) {
        let seq = lock(&self.inner.stripes[ticket.stripe]);
        let current = *seq == ticket.seq && self.inner.generation.load(Ordering::Acquire) == ticket.generation;
        match value {
            Some(value) if current => {
                self.inner.l1_insert(key, Slot { generation: ticket.generation, value });
            }
            _ => {
                self.inner.l1_remove(key);
            }
        }
    }

    /// Ends a write's ticket: enters what the write left (if given and still current),
    /// then moves the stripe so that reads sent during the write cannot land after it.
    pub(crate) fn write_done(&self, key: &[u8], ticket: &Ticket, value: Option<V>) {
        self.fill(key, ticket, value);
        *lock(&self.inner.stripes[ticket.stripe]) += 1;
    }

    /// A call on the tracking connection failed: if the connection is at fault, or (a
    /// `MOVED` reply) the slot map it was opened for is out of date, drop the connections
    /// (and the tier with them). Whether the operation should be done on the client's
    /// connections instead: also for a key mid-migration (`ASK`), which the cluster
    /// client follows; any other error is the operation's own.
    pub(crate) fn failed(&self, ticket: &Ticket, e: &redis::RedisError) -> bool {
        use redis::ServerErrorKind::{Ask, Moved, ReadOnly};
        let kind = e.kind();
        let stale = matches!(kind, redis::ErrorKind::Server(ReadOnly | Moved));
        if is_connection_error(e) || stale {
            self.inner.lost_serial(ticket.live.serial);
            return true;
        }
        kind == redis::ErrorKind::Server(Ask)
    }

    /// Waits for a barrier round on `live`'s connection whose `PING` was sent after this
    /// call began; `false` if the connection was lost (or could not answer a `PING` within
    /// the call deadline) first.
    async fn barrier(&self, live: &Live, link: usize) -> bool {
        let link = &live.links[link];
        let Some(round) = link.track.join() else { return false };
        // On the pinger's own runtime the pinger runs whenever this request does, and it
        // bounds its `PING` by the deadline. Another runtime may have stopped driving it.
        if tokio::runtime::Handle::try_current().is_ok_and(|here| here.id() == link.runtime) {
            return round.outcome().await == ANSWERED;
        }
        let timeout = self.inner.shared.client.options().timeout;
        match tokio::time::timeout(timeout, round.outcome()).await {
            Ok(state) => state == ANSWERED,
            Err(_) => {
                self.inner.lost_serial(live.serial);
                false
            }
        }
    }
}

impl<V: Clone + Weigh + Send + Sync + 'static> Inner<V> {
    fn l1_get(&self, key: &[u8]) -> Option<Slot<V>> {
        self.shared.l1.get(&Probe(self.id, key))
    }

    fn l1_remove(&self, key: &[u8]) {
        self.shared.l1.remove(&Probe(self.id, key));
    }

    fn l1_insert(&self, key: &[u8], slot: Slot<V>) {
        self.shared.l1.insert((self.id, key.to_vec()), slot);
    }

    /// Drops this tier's values (the other tiers' stay).
    fn clear(&self) {
        let id = self.id;
        self.shared.l1.retain(|key, _| key.0 != id);
    }

    /// Where the tracking connections go now: on a cluster, the masters and slot map
    /// that `CLUSTER SLOTS` gives.
    async fn read_map(&self) -> RedisResult<Map> {
        if !self.shared.client.is_cluster() {
            return Ok(Map { nodes: vec![None], slots: None });
        }
        let ranges =
            self.shared.client.cluster_slots().await.map_err(|e| {
                redis::RedisError::from((redis::ErrorKind::Io, "near cache: CLUSTER SLOTS", e.to_string()))
            })?;
        let mut nodes: Vec<Option<(String, u16)>> = Vec::new();
        let mut slots = vec![NO_LINK; SLOTS].into_boxed_slice();
        for ((first, last), master) in ranges {
            let link = match nodes.iter().position(|n| n.as_ref() == Some(&master)) {
                Some(i) => i,
                None => {
                    nodes.push(Some(master));
                    nodes.len() - 1
                }
            };
            let link = u16::try_from(link).unwrap_or(NO_LINK);
            slots[usize::from(first)..=usize::from(last)].fill(link);
        }
        Ok(Map { nodes, slots: Some(slots) })
    }

    /// Opens the tracking connections of `map` (one per master on a cluster) and makes
    /// them the live ones, in place of any that were.
    async fn connect(this: &Arc<Self>, map: Map) -> RedisResult<()> {
        let serial = this.serials.fetch_add(1, Ordering::AcqRel);
        let weak: Weak<Self> = Arc::downgrade(this);
        // The runtime the connections' I/O tasks and their pingers run on.
        let runtime = tokio::runtime::Handle::current().id();
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(this.shared.client.options().timeout))
            .set_response_timeout(None)
            .set_push_sender(move |info: PushInfo| -> Result<(), ()> {
                let inner = weak.upgrade().ok_or(())?;
                inner.on_push(serial, info);
                Ok(())
            });
        let open = map.nodes.iter().map(|node| {
            let (this, config) = (this.clone(), config.clone());
            async move {
                let mut conn = this.shared.client.open_tracking(node.as_ref(), &config).await?;
                let () = redis::cmd("CLIENT")
                    .arg("SETNAME")
                    .arg(&this.shared.options.client_name)
                    .query_async(&mut conn)
                    .await?;
                let () = redis::cmd("CLIENT").arg("TRACKING").arg("ON").arg("NOLOOP").query_async(&mut conn).await?;
                Ok::<_, redis::RedisError>(Link { conn, track: Arc::new(Track::new()), runtime })
            }
        });
        let links = try_join_all(open).await?;
        // Behind Sentinel and on a cluster a master can be demoted while the connection
        // stays open; `ROLE` tells.
        let client = &this.shared.client;
        let command = if client.is_sentinel() || client.is_cluster() { "ROLE" } else { "PING" };
        for link in &links {
            let (conn, track) = (link.conn.clone(), link.track.clone());
            tokio::spawn(pinger(Arc::downgrade(this), serial, conn, track, command, client.options().timeout));
        }
        let mut live = lock(&this.live);
        // Anything filled before now came through connections that are gone.
        this.generation.fetch_add(1, Ordering::AcqRel);
        this.clear();
        // Connections this replaces (a changed slot map) go when their last request does;
        // what they filled is of the old generation.
        if live.replace(Arc::new(Live { links, map, serial })).is_some() {
            bump(&this.resets, &this.shared.meters.resets);
        }
        tracing::debug!(prefix = %this.shared.prefix, "redis near cache: tracking connection up");
        Ok(())
    }

    fn on_push(&self, serial: u64, info: PushInfo) {
        match info.kind {
            PushKind::Invalidate => match info.data.into_iter().next() {
                Some(Value::Array(keys)) => {
                    for key in keys {
                        if let Value::BulkString(key) = key {
                            bump(&self.invalidations, &self.shared.meters.invalidations);
                            let mut seq = lock(&self.stripes[stripe_of(&key)]);
                            *seq += 1;
                            self.l1_remove(&key);
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
        self.clear();
    }

    fn lost_serial(&self, serial: u64) {
        let mut live = lock(&self.live);
        if live.as_ref().is_some_and(|l| l.serial == serial) {
            let gone = live.take();
            bump(&self.resets, &self.shared.meters.resets);
            self.flush();
            // After the flush: a waiter that wakes finds the tier of a new generation.
            // The requests parked on their rounds read from Redis.
            for link in gone.iter().flat_map(|gone| &gone.links) {
                link.track.close();
            }
            tracing::debug!(prefix = %self.shared.prefix, "redis near cache: tracking connection lost, tier emptied");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::slot_of;

    #[test]
    fn hash_slots_are_the_ones_redis_cluster_computes() {
        // As `CLUSTER KEYSLOT` answers, hash tags and their corner cases included.
        for (key, slot) in [
            ("123456789", 12739),
            ("foo", 12182),
            ("hello", 866),
            ("{user1000}.following", 3443),
            ("foo{}{bar}", 8363),
            ("foo{{bar}}zap", 4015),
            ("foo{bar}{zap}", 5061),
            ("beaker:s:abc{", 5662),
            ("{}", 15257),
        ] {
            assert_eq!(slot_of(key.as_bytes()), slot, "{key}");
        }
    }
}
