//! A striped async mutex: a fixed set of locks, one chosen per record by hashing its name.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};

use tokio::sync::{Mutex, MutexGuard};

/// Enough stripes that unrelated sessions rarely wait for each other, few enough to be
/// allocated once. Two records sharing a stripe only serialize, which is always safe.
const STRIPES: usize = 128;

#[derive(Debug)]
pub(crate) struct StripedLocks {
    stripes: Vec<Mutex<()>>,
}

impl StripedLocks {
    pub(crate) fn new() -> Self {
        StripedLocks { stripes: (0..STRIPES).map(|_| Mutex::new(())).collect() }
    }

    /// Locks the stripe of `name`. An async lock, because the guard is held across the
    /// blocking file work that runs on another thread.
    pub(crate) async fn lock(&self, name: &str) -> MutexGuard<'_, ()> {
        let mut h = DefaultHasher::new();
        name.hash(&mut h);
        self.stripes[(h.finish() as usize) % STRIPES].lock().await
    }
}
