//! [`CacheManager`]: the application's cache regions, built from a [`CacheConfig`].

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use super::backend::CacheBackend;
use super::memory::{Bound, MemoryEngine};
use super::region::{Region, RegionShared, Storage};
use crate::clock::{Clock, SystemClock};
use crate::config::{CacheConfig, StoreType};
use crate::error::{ConfigError, Error};
use crate::serializer::DataSerializer;

/// Sleeps for a while on the application's runtime (see [`CacheManagerBuilder::sleep_with`]).
pub(crate) type Sleeper = Arc<dyn Fn(Duration) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

/// The application's cache regions. Cheap to clone (an `Arc` inside); there is no
/// process-global registry: the application builds one and hands it to its handlers.
///
/// Memory regions are built in; a region of any other type needs its
/// [`CacheBackend`] passed to [`CacheManagerBuilder::backend`] (the `beaker-rs` facade crate
/// builds them from the regions' URLs).
///
/// ```
/// use std::time::Duration;
/// use beaker_core::cache::CacheManager;
/// use beaker_core::config::CacheConfig;
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let config = CacheConfig::from_map([
///     ("beaker.cache.regions", "short_term, long_term"),
///     ("beaker.cache.short_term.expire", "60"),
///     ("beaker.cache.long_term.expire", "3600"),
/// ])?;
/// let caches = CacheManager::new(config)?;
/// let users = caches.region("short_term")?.namespace("users");
///
/// # futures_util::FutureExt::now_or_never(async {
/// // The dogpile rule: concurrent callers run the creator once.
/// let name: String = users.get_or_create("42", || async { Ok::<_, std::io::Error>("Zoë".to_owned()) }).await?;
/// assert_eq!(name, "Zoë");
/// assert_eq!(users.get::<String>("42").await?, Some("Zoë".to_owned()));
///
/// users.put("43", &"Ada".to_owned(), Some(Duration::from_secs(5))).await?;
/// users.clear().await?; // this namespace only
/// assert!(!users.contains("43").await?);
///
/// let stats = users.stats();
/// println!("creations={} hits={} misses={}", stats.creations, stats.hits, stats.misses);
/// assert!(caches.region("no_such_region").is_err());
/// # Ok::<(), beaker_core::Error>(()) }).expect("memory regions never wait here")?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct CacheManager {
    regions: Arc<BTreeMap<String, Arc<RegionShared>>>,
}

impl fmt::Debug for CacheManager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CacheManager").field("regions", &self.regions.keys().collect::<Vec<_>>()).finish()
    }
}

impl CacheManager {
    /// A manager for a configuration of memory regions only.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] when a region is not a memory region (use
    /// [`builder`](Self::builder) and give its backend).
    pub fn new(config: CacheConfig) -> Result<Self, Error> {
        Self::builder(config).build()
    }

    /// A builder, to add backends, a clock or a serializer.
    pub fn builder(config: CacheConfig) -> CacheManagerBuilder {
        CacheManagerBuilder {
            config,
            backends: BTreeMap::new(),
            clock: Arc::new(SystemClock),
            system_clock: true,
            serializer: DataSerializer::default(),
            lock_timeout: CacheManagerBuilder::DEFAULT_LOCK_TIMEOUT,
            sleeper: None,
        }
    }

    /// The region called `name`, in its default namespace.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] naming the region when no region of that name is configured.
    pub fn region(&self, name: &str) -> Result<Region, Error> {
        match self.regions.get(name) {
            Some(shared) => Ok(Region::new(Arc::clone(shared))),
            None => Err(Error::Config(ConfigError::Missing {
                key: format!("cache.{name}"),
                why: format!(
                    "no cache region named {name:?} is configured (configured: {})",
                    self.regions.keys().map(String::as_str).collect::<Vec<_>>().join(", ")
                ),
            })),
        }
    }

    /// The names of the configured regions.
    pub fn region_names(&self) -> impl Iterator<Item = &str> + '_ {
        self.regions.keys().map(String::as_str)
    }
}

/// Builds a [`CacheManager`]; from [`CacheManager::builder`].
pub struct CacheManagerBuilder {
    config: CacheConfig,
    backends: BTreeMap<String, Arc<dyn CacheBackend>>,
    clock: Arc<dyn Clock>,
    /// Whether `clock` is still the system clock (whose coarse reading has a fast path).
    system_clock: bool,
    serializer: DataSerializer,
    lock_timeout: Duration,
    sleeper: Option<Sleeper>,
}

impl fmt::Debug for CacheManagerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CacheManagerBuilder")
            .field("config", &self.config)
            .field("backends", &self.backends)
            .field("clock", &self.clock)
            .field("serializer", &self.serializer)
            .field("lock_timeout", &self.lock_timeout)
            .field("sleeper", &self.sleeper.is_some())
            .finish()
    }
}

impl CacheManagerBuilder {
    /// The default [`lock_timeout`](Self::lock_timeout).
    pub const DEFAULT_LOCK_TIMEOUT: Duration = Duration::from_secs(30);

    /// The backend of region `region`, whatever its configured type.
    pub fn backend(mut self, region: impl Into<String>, backend: Arc<dyn CacheBackend>) -> Self {
        self.backends.insert(region.into(), backend);
        self
    }

    /// The clock that decides freshness (a [`ManualClock`](crate::ManualClock) in tests).
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self.system_clock = false;
        self
    }

    /// The serializer for out-of-process regions (default JSON). Memory regions keep
    /// values decoded and never serialize them.
    pub fn serializer(mut self, serializer: DataSerializer) -> Self {
        self.serializer = serializer;
        self
    }

    /// How long a backend's distributed dogpile lock lives (so a crashed holder cannot
    /// block a key forever) and how long a caller waits for another process's value.
    pub fn lock_timeout(mut self, timeout: Duration) -> Self {
        self.lock_timeout = timeout;
        self
    }

    /// How to sleep on the application's runtime, e.g.
    /// `.sleep_with(|d| tokio::time::sleep(d))`. Core has no runtime: without this, a
    /// caller that finds a missing key locked by *another process* creates the value
    /// itself instead of polling for the other process's result.
    pub fn sleep_with<F, Fut>(mut self, sleep: F) -> Self
    where
        F: Fn(Duration) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.sleeper = Some(Arc::new(move |d| Box::pin(sleep(d))));
        self
    }

    /// Builds the regions.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] when a backend is given for a region that is not configured, or
    /// a region that is not a memory region has no backend.
    pub fn build(self) -> Result<CacheManager, Error> {
        if let Some(name) = self.backends.keys().find(|n| !self.config.regions.contains_key(*n)) {
            return Err(Error::Config(ConfigError::Conflict {
                key: format!("cache.{name}"),
                message: format!("a backend was given for region {name:?}, which is not configured"),
            }));
        }
        let mut backends = self.backends;
        let mut regions = BTreeMap::new();
        for (name, config) in self.config.regions {
            let storage = match (backends.remove(&name), config.store_type) {
                (Some(backend), _) => Storage::Backend { backend, serializer: self.serializer },
                (None, StoreType::Memory) => Storage::Memory(MemoryEngine::new(match config.max_bytes {
                    Some(bytes) => Bound::Bytes(bytes),
                    None => Bound::Entries(config.max_entries),
                })),
                (None, other) => {
                    return Err(Error::Config(ConfigError::Missing {
                        key: format!("cache.{name}.type"),
                        why: format!(
                            "region {name:?} is of type {other}: pass its backend to CacheManagerBuilder::backend \
                             (the beaker-rs facade builds it from the URL)"
                        ),
                    }))
                }
            };
            let shared = RegionShared::new(
                &name,
                config,
                storage,
                Arc::clone(&self.clock),
                self.system_clock,
                self.lock_timeout,
                self.sleeper.clone(),
            );
            regions.insert(name, Arc::new(shared));
        }
        Ok(CacheManager { regions: Arc::new(regions) })
    }
}
