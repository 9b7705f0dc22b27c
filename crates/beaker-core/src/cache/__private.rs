//! Support for the code `#[cached]` generates. Not a public API: it may change in any
//! release.

use std::future::Future;

use serde::Serialize;

use super::{CacheSource, Region};

/// The error type of the generated `fname_invalidate` companions, named through this
/// module so that the path also resolves through a facade's re-export of `cache`.
pub use crate::error::Error;

/// The cache key of an argument tuple: its JSON form, so that `f(1, "a")` and
/// `f(1, "b")` differ. `None` (logged) when the arguments cannot be serialized: the call
/// then bypasses the cache.
pub fn args_key<A: Serialize + ?Sized>(args: &A) -> Option<String> {
    match serde_json::to_string(args) {
        Ok(key) => Some(key),
        Err(e) => {
            tracing::warn!(error = %e, "#[cached]: the arguments cannot form a cache key; not caching");
            None
        }
    }
}

/// The region and namespace of a cached function. `None` (logged) when the region is not
/// configured: the call then bypasses the cache.
pub fn region<S: CacheSource + ?Sized>(source: &S, region: &str, namespace: &str) -> Option<Region> {
    match source.cache_manager().region(region) {
        Ok(r) => Some(r.namespace(namespace)),
        Err(e) => {
            tracing::warn!(error = %e, "#[cached]: not caching");
            None
        }
    }
}

/// The "error" a creator returns for `None`, which is returned but never cached.
#[derive(Debug, Clone, Copy)]
pub struct NotCached;

/// Returns `body` unchanged. Its only job is to tell the compiler that the async block
/// holding a cached function's body produces `R`, the function's written return type, so
/// that `return x.collect()` and `?` inside the body infer as they do in the function.
pub fn async_body<R, F: Future<Output = R>>(body: F) -> F {
    body
}
