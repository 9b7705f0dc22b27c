//! The background sweeper: removes expired session records from stores that have no native
//! expiry (SQL, file), so that no store grows without bound under the defaults.
//!
//! Built for several processes sharing one store: each process sweeps at its own jittered
//! period (so they do not all hit the database at once), every sweep is an idempotent
//! "delete what expired before now" (two processes sweeping together remove each record
//! once, and neither fails), and a failed sweep is logged and retried at the next tick.

use std::hash::{BuildHasher as _, Hasher as _};
use std::sync::{Arc, Weak};
use std::time::Duration;

use beaker_core::store::SessionStore;

/// Starts the sweeper of `store` on the current tokio runtime, if there is one. The task
/// holds the store weakly: it ends when the last manager using the store is dropped.
pub(crate) fn spawn(store: &Arc<dyn SessionStore>, every: Duration) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        tracing::warn!(
            store = store.name(),
            "no tokio runtime: expired sessions are not swept; call SessionManager::cleanup yourself"
        );
        return;
    };
    let store: Weak<dyn SessionStore> = Arc::downgrade(store);
    runtime.spawn(async move {
        // The first sweep anywhere in the first period, so that processes started together
        // spread out from the start.
        tokio::time::sleep(every.mul_f64(random_unit())).await;
        loop {
            let Some(live) = store.upgrade() else { return };
            match live.cleanup().await {
                Ok(0) => {}
                Ok(removed) => tracing::debug!(store = live.name(), removed, "expired sessions removed"),
                Err(e) => tracing::warn!(store = live.name(), error = %e, "sweeping expired sessions failed"),
            }
            drop(live);
            // 50 % to 150 % of the period.
            tokio::time::sleep(every.mul_f64(0.5 + random_unit())).await;
        }
    });
}

/// A number in `[0, 1)`, different in every process and call (std's per-process random
/// hash keys; jitter needs no cryptographic randomness).
fn random_unit() -> f64 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(std::process::id().into());
    (h.finish() >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    #[test]
    fn jitter_is_a_unit_fraction_and_varies() {
        let draws: Vec<f64> = (0..100).map(|_| super::random_unit()).collect();
        assert!(draws.iter().all(|d| (0.0..1.0).contains(d)));
        let first = draws[0];
        assert!(draws.iter().any(|d| *d != first), "jitter never varies");
    }
}
