//! Counters through the [`metrics`] facade (the names are listed in the crate documentation,
//! section "Metrics"), each registered once per manager or region, so that counting is one call on a held handle
//! (a no-op when no recorder is installed).

use metrics::{counter, describe_counter, Counter};

/// Gives every counter its help text (shown by exporters such as Prometheus'). Cheap and
/// idempotent; called whenever counters are registered, so that a recorder installed
/// after an earlier manager still learns them.
fn describe() {
    describe_counter!("beaker_sessions_created_total", "Sessions created (first saved).");
    describe_counter!("beaker_sessions_loaded_total", "Live sessions loaded from a request's cookie.");
    describe_counter!("beaker_sessions_saved_total", "Session writes: new, changed or regenerated sessions.");
    describe_counter!("beaker_sessions_ended_total", "Sessions ended by invalidation (logout, ending by handle).");
    describe_counter!(
        "beaker_session_cookies_rejected_total",
        "Session cookies refused: bad signature, malformed, undecryptable."
    );
    describe_counter!("beaker_session_store_errors_total", "Failed session store calls, by operation.");
    describe_counter!("beaker_cache_hits_total", "Cache reads answered with a fresh value.");
    describe_counter!("beaker_cache_misses_total", "Cache reads that found no fresh value.");
    describe_counter!("beaker_cache_creations_total", "Creator runs that returned a value.");
    describe_counter!(
        "beaker_cache_stale_serves_total",
        "Reads answered with a stale value while another caller regenerated it."
    );
    describe_counter!(
        "beaker_cache_lock_waits_total",
        "get_or_create calls that waited for another caller's creator and used its value."
    );
    describe_counter!("beaker_cache_errors_total", "Creator failures and absorbed cache backend failures.");
}

/// The store operations whose failures are counted.
const STORE_OPS: [&str; 9] = ["lookup", "create", "apply", "touch", "end", "rename", "cleanup", "sessions_of", "find"];

/// A session manager's counters, labelled with its store.
pub(crate) struct SessionCounters {
    pub(crate) created: Counter,
    pub(crate) loaded: Counter,
    pub(crate) saved: Counter,
    pub(crate) ended: Counter,
    pub(crate) rejected_cookies: Counter,
}

impl SessionCounters {
    pub(crate) fn new(store: &'static str) -> Self {
        describe();
        // Registered up front so that exporters show every operation's error count at zero.
        for op in STORE_OPS {
            let _ = counter!("beaker_session_store_errors_total", "store" => store, "op" => op);
        }
        SessionCounters {
            created: counter!("beaker_sessions_created_total", "store" => store),
            loaded: counter!("beaker_sessions_loaded_total", "store" => store),
            saved: counter!("beaker_sessions_saved_total", "store" => store),
            ended: counter!("beaker_sessions_ended_total", "store" => store),
            rejected_cookies: counter!("beaker_session_cookies_rejected_total", "store" => store),
        }
    }
}

/// A store's failed-call counters, one per operation, held like the others so that a
/// failure is counted by the recorder the manager was built under.
pub(crate) struct StoreErrorCounters([Counter; STORE_OPS.len()]);

impl StoreErrorCounters {
    /// Counters that count nothing, until the manager is built.
    pub(crate) fn noop() -> Self {
        StoreErrorCounters(std::array::from_fn(|_| Counter::noop()))
    }

    pub(crate) fn new(store: &'static str) -> Self {
        StoreErrorCounters(
            STORE_OPS.map(|op| counter!("beaker_session_store_errors_total", "store" => store, "op" => op)),
        )
    }

    /// Counts a failed store call of operation `op`.
    pub(crate) fn count(&self, op: &'static str) {
        if let Some(i) = STORE_OPS.iter().position(|o| *o == op) {
            self.0[i].increment(1);
        }
    }
}

impl std::fmt::Debug for StoreErrorCounters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StoreErrorCounters")
    }
}

/// A cache region's counters, labelled with its name and backend.
pub(crate) struct CacheCounters {
    pub(crate) hits: Counter,
    pub(crate) misses: Counter,
    pub(crate) creations: Counter,
    pub(crate) stale_serves: Counter,
    pub(crate) lock_waits: Counter,
    pub(crate) errors: Counter,
}

impl CacheCounters {
    pub(crate) fn new(region: &str, store: &str) -> Self {
        describe();
        let (region, store) = (region.to_owned(), store.to_owned());
        CacheCounters {
            hits: counter!("beaker_cache_hits_total", "region" => region.clone(), "store" => store.clone()),
            misses: counter!("beaker_cache_misses_total", "region" => region.clone(), "store" => store.clone()),
            creations: counter!("beaker_cache_creations_total", "region" => region.clone(), "store" => store.clone()),
            stale_serves: counter!("beaker_cache_stale_serves_total", "region" => region.clone(), "store" => store.clone()),
            lock_waits: counter!("beaker_cache_lock_waits_total", "region" => region.clone(), "store" => store.clone()),
            errors: counter!("beaker_cache_errors_total", "region" => region, "store" => store),
        }
    }
}

impl Default for CacheCounters {
    /// Handles that count nothing (regions built without a name, in unit tests).
    fn default() -> Self {
        CacheCounters {
            hits: Counter::noop(),
            misses: Counter::noop(),
            creations: Counter::noop(),
            stale_serves: Counter::noop(),
            lock_waits: Counter::noop(),
            errors: Counter::noop(),
        }
    }
}

impl std::fmt::Debug for CacheCounters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CacheCounters").finish_non_exhaustive()
    }
}
