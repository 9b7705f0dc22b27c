//! `#[beaker_rs::cached]` through the facade: without `crate = ...` the macro names the
//! crate the caller depends on; with `crate = "::beaker_rs"` the generated code names only
//! `::beaker_rs::cache::...`.
#![cfg(feature = "macros")]

use std::sync::atomic::{AtomicUsize, Ordering};

use beaker_rs::cache::{CacheManager, CacheSource};
use beaker_rs::config::{CacheConfig, RegionConfig};

fn caches() -> CacheManager {
    CacheManager::new(CacheConfig::new().with_region("short_term", RegionConfig::memory(None))).unwrap()
}

static ASYNC_RUNS: AtomicUsize = AtomicUsize::new(0);

#[beaker_rs::cached(region = "short_term")]
async fn greeting(caches: &CacheManager, name: &str) -> Result<String, std::fmt::Error> {
    ASYNC_RUNS.fetch_add(1, Ordering::SeqCst);
    Ok(format!("hello {name}"))
}

#[tokio::test]
async fn async_functions_cache_and_invalidate_through_the_facade() -> Result<(), beaker_rs::BuildError> {
    let caches = caches();
    assert_eq!(greeting(&caches, "ada").await.unwrap(), "hello ada");
    assert_eq!(greeting(&caches, "ada").await.unwrap(), "hello ada");
    assert_eq!(ASYNC_RUNS.load(Ordering::SeqCst), 1);
    // The companion's error (core's `Error`) converts into the facade's `BuildError`.
    assert!(greeting_invalidate(&caches, "ada").await?);
    assert_eq!(greeting_uncached(&caches, "ada").await.unwrap(), "hello ada");
    assert_eq!(ASYNC_RUNS.load(Ordering::SeqCst), 2);
    Ok(())
}

struct State {
    caches: CacheManager,
    runs: AtomicUsize,
}

impl CacheSource for State {
    fn cache_manager(&self) -> &CacheManager {
        &self.caches
    }
}

impl State {
    #[beaker_rs::cached(region = "short_term", crate = "::beaker_rs", expire = 60)]
    fn length(&self, text: String) -> Option<usize> {
        self.runs.fetch_add(1, Ordering::SeqCst);
        (!text.is_empty()).then_some(text.len())
    }
}

#[test]
fn sync_methods_cache_through_the_facade() {
    let state = State { caches: caches(), runs: AtomicUsize::new(0) };
    assert_eq!(state.length("abc".into()), Some(3));
    assert_eq!(state.length("abc".into()), Some(3));
    assert_eq!(state.length(String::new()), None);
    assert_eq!(state.length(String::new()), None);
    assert_eq!(state.runs.load(Ordering::SeqCst), 3, "Some once, None every time");
    assert!(state.length_invalidate("abc".into()).unwrap());
}
