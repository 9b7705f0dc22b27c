//! Configuration: typed builders, serde, Beaker's prefixed string maps and the environment,
//! all through one set of coercion rules.
//!
//! | source | session | cache |
//! |---|---|---|
//! | builder | [`SessionConfig::new`] + `with_*` | [`CacheConfig::new`] + [`RegionConfig`] |
//! | Beaker map | `beaker.session.timeout = 300` | `beaker.cache.regions = short, long`, `beaker.cache.short.expire = 60` |
//! | environment | `BEAKER_SESSION_TIMEOUT=300` | `BEAKER_CACHE_REGIONS=short`, `BEAKER_CACHE_SHORT_EXPIRE=60` |
//! | serde | `timeout = 300` in a `[session]` table | `regions = ["short"]` + `[cache.short]` tables |

mod cache;
mod coerce;
mod session;
mod source;
mod store_type;

pub use cache::{CacheConfig, RegionConfig};
pub use session::{CacheHeaders, CookieExpires, OnStoreError, SameSite, SessionConfig};
pub use store_type::StoreType;

#[cfg(test)]
mod tests;
