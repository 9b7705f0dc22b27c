//! Per-region counters: hits, misses, creations, stale serves, errors.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use crate::telemetry::CacheCounters;

/// A snapshot of a region's counters, from [`Region::stats`](super::Region::stats).
///
/// Every [`get`](super::Region::get) and every
/// [`get_or_create`](super::Region::get_or_create) call counts exactly one of `hits`,
/// `misses` or `stale_serves`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CacheStats {
    /// Calls answered with a fresh value (including callers that waited for another
    /// caller's creator and got its value).
    pub hits: u64,
    /// Calls that found no fresh value and returned nothing (`get`) or ran the creator
    /// (`get_or_create`).
    pub misses: u64,
    /// Creator runs that returned a value.
    pub creations: u64,
    /// Calls answered with a stale value while another caller regenerated it.
    pub stale_serves: u64,
    /// Creator failures, and backend failures that `get_or_create` absorbed (logged).
    pub errors: u64,
    /// `get_or_create` calls that waited for another caller's creator (in this process or,
    /// with a distributed lock, another one) and then used its value instead of running
    /// their own. Also counted in `hits` or `stale_serves`.
    pub lock_waits: u64,
}

/// How many stripes the hit counter is split into.
const HIT_STRIPES: usize = 8;

/// One counter on a cache line of its own, so that threads counting hits do not evict
/// each other's lines (or the region's generations, which every hit reads).
#[derive(Debug, Default)]
#[repr(align(128))]
struct Padded(AtomicU64);

/// This thread's hit stripe.
#[inline]
fn stripe() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        // A const initialiser without drop glue: a plain thread-local slot, no lazy-init
        // state to check on the hit path.
        static STRIPE: Cell<usize> = const { Cell::new(usize::MAX) };
    }
    STRIPE.with(|s| match s.get() {
        usize::MAX => {
            let stripe = NEXT.fetch_add(1, Ordering::Relaxed) % HIT_STRIPES;
            s.set(stripe);
            stripe
        }
        stripe => stripe,
    })
}

/// The live counters behind [`CacheStats`]. Hits, the hot path, are striped per thread.
/// Every event also goes to the `metrics` facade (`exported`).
#[derive(Debug, Default)]
#[repr(align(128))]
pub(crate) struct Counters {
    hits: [Padded; HIT_STRIPES],
    misses: AtomicU64,
    creations: AtomicU64,
    stale_serves: AtomicU64,
    errors: AtomicU64,
    lock_waits: AtomicU64,
    exported: CacheCounters,
}

impl Counters {
    /// The counters of region `region` on backend `store`.
    pub(crate) fn new(region: &str, store: &str) -> Self {
        Counters { exported: CacheCounters::new(region, store), ..Counters::default() }
    }

    #[inline]
    pub(crate) fn hit(&self) {
        self.hits[stripe()].0.fetch_add(1, Ordering::Relaxed);
        self.exported.hits.increment(1);
    }

    pub(crate) fn miss(&self) {
        self.misses.fetch_add(1, Ordering::Relaxed);
        self.exported.misses.increment(1);
    }

    pub(crate) fn creation(&self) {
        self.creations.fetch_add(1, Ordering::Relaxed);
        self.exported.creations.increment(1);
    }

    pub(crate) fn stale_serve(&self) {
        self.stale_serves.fetch_add(1, Ordering::Relaxed);
        self.exported.stale_serves.increment(1);
    }

    pub(crate) fn error(&self) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        self.exported.errors.increment(1);
    }

    pub(crate) fn lock_wait(&self) {
        self.lock_waits.fetch_add(1, Ordering::Relaxed);
        self.exported.lock_waits.increment(1);
    }

    pub(crate) fn snapshot(&self) -> CacheStats {
        CacheStats {
            hits: self.hits.iter().map(|h| h.0.load(Ordering::Relaxed)).sum(),
            misses: self.misses.load(Ordering::Relaxed),
            creations: self.creations.load(Ordering::Relaxed),
            stale_serves: self.stale_serves.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
            lock_waits: self.lock_waits.load(Ordering::Relaxed),
        }
    }
}
