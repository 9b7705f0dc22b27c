//! The `near_cache` options of Redis sessions and cache regions: read for Redis, refused
//! by name for every other store.

use std::collections::BTreeMap;

use beaker_core::{ConfigError, StoreType};

use crate::build::BuildError;

const OPTIONS: [&str; 3] = ["near_cache", "near_cache_entries", "near_cache_bytes"];

/// Whether `near_cache = true` (the core configuration stores it normalised).
fn on(options: &BTreeMap<String, String>) -> bool {
    options.get("near_cache").is_some_and(|v| v == "true")
}

/// Refuses the near-cache options where they would do nothing: on any store but Redis,
/// in Beaker's record layout, or (the sizes) without `near_cache = true`. `owner` is the
/// options' prefix (`session`, `cache.<region>`).
pub(crate) fn check(
    owner: &str,
    store: StoreType,
    beaker_layout: bool,
    options: &BTreeMap<String, String>,
) -> Result<(), BuildError> {
    let given: Vec<&str> = OPTIONS.into_iter().filter(|o| options.contains_key(*o)).collect();
    let Some(first) = given.first() else { return Ok(()) };
    let conflict = |option: &str, message: String| {
        Err(BuildError::Config(ConfigError::Conflict { key: format!("{owner}.{option}"), message }))
    };
    if !matches!(store, StoreType::Redis | StoreType::RedisCluster) {
        return conflict(
            first,
            format!("the near cache is a process-local tier in front of Redis; the {store} store cannot have one"),
        );
    }
    if beaker_layout && on(options) {
        return conflict("near_cache", "not available with compat = beaker (Beaker's own record layout)".into());
    }
    if !on(options) {
        if let Some(size) = given.iter().find(|o| **o != "near_cache") {
            return conflict(size, "sizes the near cache, which is off: set near_cache = true as well".into());
        }
    }
    Ok(())
}

/// The near cache's options when it is on.
#[cfg(feature = "redis")]
pub(crate) fn options(options: &BTreeMap<String, String>) -> Option<beaker_redis::NearCacheOptions> {
    if !on(options) {
        return None;
    }
    let mut near = beaker_redis::NearCacheOptions::default();
    if let Some(n) = options.get("near_cache_entries").and_then(|v| v.parse().ok()) {
        near = near.with_max_entries(n);
    }
    if let Some(n) = options.get("near_cache_bytes").and_then(|v| v.parse().ok()) {
        near = near.with_max_bytes(n);
    }
    Some(near)
}
