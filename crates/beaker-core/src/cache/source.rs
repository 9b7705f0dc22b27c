//! [`CacheSource`]: how `#[cached]` functions reach the application's [`CacheManager`].

use std::sync::Arc;

use super::CacheManager;

/// Anything that can hand out the application's [`CacheManager`]: the manager itself, or
/// an application state that owns one. `#[cached]` functions take their cache from their
/// first argument (or the one marked `#[cache]`) through this trait.
///
/// ```
/// use beaker_core::cache::{CacheManager, CacheSource};
///
/// struct AppState {
///     caches: CacheManager,
/// }
///
/// impl CacheSource for AppState {
///     fn cache_manager(&self) -> &CacheManager {
///         &self.caches
///     }
/// }
/// ```
pub trait CacheSource {
    /// The cache manager to use.
    fn cache_manager(&self) -> &CacheManager;
}

impl CacheSource for CacheManager {
    fn cache_manager(&self) -> &CacheManager {
        self
    }
}

impl<T: CacheSource + ?Sized> CacheSource for &T {
    fn cache_manager(&self) -> &CacheManager {
        (**self).cache_manager()
    }
}

impl<T: CacheSource + ?Sized> CacheSource for Arc<T> {
    fn cache_manager(&self) -> &CacheManager {
        (**self).cache_manager()
    }
}
