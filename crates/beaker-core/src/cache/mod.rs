//! Beaker's cache half: named regions, namespaces, and `get_or_create` with the dogpile
//! rule and serve-stale.
//!
//! - [`CacheManager`] owns the regions of a [`CacheConfig`](crate::config::CacheConfig);
//!   memory regions are built in, others get a [`CacheBackend`] from the builder.
//! - [`Region`] is a handle on one region and one namespace: `get`, `put`, `remove`,
//!   `contains`, `clear` (the namespace only), `get_or_create`, soft and hard
//!   invalidation of the whole region, and [`CacheStats`].
//! - [`CacheSource`] lets `#[cached]` functions (crate `beaker-macros`) find the manager.
//!
//! Freshness is the region's own clock (stored-at + expire); engines and backends drop
//! entries only by size or by a hard TTL of [`HARD_TTL_FACTOR`] × expire, so a stale value
//! stays readable and can be served while one caller regenerates it.

mod backend;
mod block_on;
mod create;
mod hints;
mod key;
mod lock;
mod manager;
mod memory;
mod region;
mod source;
mod stats;

#[doc(hidden)]
pub mod __private;

pub use backend::{CacheBackend, CacheEntry, LockOutcome, LockToken, NamespaceStats};
pub use hints::GenerationHints;
pub use manager::{CacheManager, CacheManagerBuilder};
pub use region::{CacheValue, Region, DEFAULT_NAMESPACE, HARD_TTL_FACTOR, MAX_EXPIRE};
pub use source::CacheSource;
pub use stats::CacheStats;
