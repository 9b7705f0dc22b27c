//! Beaker's cache half: regions, namespaces, the dogpile lock with serve-stale.

mod backend;

pub use backend::{CacheBackend, CacheEntry, LockOutcome, LockToken};
