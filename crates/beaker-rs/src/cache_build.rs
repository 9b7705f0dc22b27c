//! From cache configuration to a ready [`CacheManager`]: each region's backend is chosen
//! by its `type` or by its URL's scheme, like session stores.

use std::sync::Arc;

use beaker_core::cache::{CacheBackend, CacheManager};
use beaker_core::config::{CacheConfig, RegionConfig};
use beaker_core::StoreType;

use crate::build::BuildError;

/// Reads `BEAKER_CACHE_*` from the environment and builds the cache manager, opening each
/// region's backend.
pub async fn cache_manager_from_env() -> Result<CacheManager, BuildError> {
    build_cache_manager(CacheConfig::from_env()?, true).await
}

/// Like [`cache_manager_from_env`], with `default`'s regions when `BEAKER_CACHE_REGIONS`
/// is not set; the environment may still change their options (`BEAKER_CACHE_DEMO_URL`
/// for region `demo`) without listing them. For demos and local development.
pub async fn cache_manager_from_env_or(default: CacheConfig) -> Result<CacheManager, BuildError> {
    build_cache_manager(CacheConfig::from_env_over(default)?, true).await
}

/// Builds the cache manager for `config`: memory regions in process, the others on the
/// backend their `type`/`url` names (which needs that backend's feature of this crate).
pub async fn cache_manager(config: CacheConfig) -> Result<CacheManager, BuildError> {
    build_cache_manager(config, false).await
}

async fn build_cache_manager(config: CacheConfig, from_env: bool) -> Result<CacheManager, BuildError> {
    let mut backends = Vec::new();
    for (name, region) in &config.regions {
        crate::near::check(&format!("cache.{name}"), region.store_type, false, &region.backend_options)?;
        if region.store_type == StoreType::Memory {
            continue;
        }
        let key = if from_env {
            format!("BEAKER_CACHE_{}_URL", name.to_ascii_uppercase().replace('-', "_"))
        } else {
            format!("cache.{name}.url")
        };
        backends.push((name.clone(), Box::pin(open_backend(key, region)).await?));
    }
    // Waits for another process's dogpile lock on the tokio runtime: without a way to
    // sleep, core would create the value itself instead of waiting for the lock holder.
    let mut builder = CacheManager::builder(config).sleep_with(tokio::time::sleep);
    for (name, backend) in backends {
        builder = builder.backend(name, backend);
    }
    Ok(builder.build()?)
}

#[allow(unused_variables)]
async fn open_backend(key: String, region: &RegionConfig) -> Result<Arc<dyn CacheBackend>, BuildError> {
    let store = region.store_type;
    let missing = |feature| -> Result<Arc<dyn CacheBackend>, BuildError> {
        Err(BuildError::MissingFeature { key: key.clone(), store, feature })
    };
    let opened = |source: beaker_core::BoxError| BuildError::Store { key: key.clone(), store, source };
    #[allow(unused)]
    let missing_url = || -> Result<Arc<dyn CacheBackend>, BuildError> {
        Err(BuildError::Config(beaker_core::ConfigError::Invalid {
            key: key.clone(),
            value: String::new(),
            expected: format!("a {store} URL (only sqlite has a default)"),
        }))
    };
    match store {
        #[cfg(feature = "file")]
        StoreType::File => {
            let dir = crate::build::file_directory(region.url.as_deref(), &region.backend_options);
            let store = beaker_file::FileStore::open(dir, beaker_file::FileOptions::new())
                .await
                .map_err(|e| opened(e.into()))?;
            Ok(Arc::new(store))
        }
        #[cfg(not(feature = "file"))]
        StoreType::File => missing("file"),
        #[cfg(feature = "redis")]
        StoreType::Redis | StoreType::RedisCluster => {
            let url = region.url.as_deref().unwrap_or("redis://127.0.0.1:6379");
            let mut options = beaker_redis::RedisOptions::default();
            if let Some(prefix) = region.backend_options.get("key_prefix") {
                options = options.with_cache_prefix(prefix.clone());
            }
            let mut cache = beaker_redis::RedisCache::connect(url, options).await.map_err(|e| opened(e.into()))?;
            if let Some(near) = crate::near::options(&region.backend_options) {
                cache = cache.with_near_cache(near).await.map_err(|e| opened(e.into()))?;
            }
            Ok(Arc::new(cache))
        }
        #[cfg(not(feature = "redis"))]
        StoreType::Redis | StoreType::RedisCluster => missing("redis"),
        #[cfg(any(feature = "sqlite", feature = "postgres", feature = "mysql"))]
        StoreType::Sqlite | StoreType::Postgres | StoreType::Mysql if sql_enabled(store) => {
            let url = match (region.url.as_deref(), store) {
                (Some(url), _) => url.to_owned(),
                (None, StoreType::Sqlite) => "sqlite:".to_owned(),
                (None, _) => return missing_url(),
            };
            let mut options = beaker_sql::SqlOptions::new();
            if let Some(table) = region.backend_options.get("table_name") {
                options = options.cache_table_name(table.clone());
            }
            if let Some(schema) = region.backend_options.get("schema_name") {
                options = options.schema(schema.clone());
            }
            let cache = beaker_sql::SqlCache::connect(&url, options).await.map_err(|e| opened(e.into()))?;
            Ok(Arc::new(cache))
        }
        StoreType::Sqlite => missing("sqlite"),
        StoreType::Postgres => missing("postgres"),
        StoreType::Mysql => missing("mysql"),
        #[cfg(feature = "memcached")]
        StoreType::Memcached => {
            let url = crate::build::memcached_url(
                region.url.as_deref(),
                region.url.as_deref().is_some_and(|u| !u.starts_with("memcached:")),
            );
            let mut options = beaker_memcached::MemcachedOptions::default();
            if let Some(prefix) = region.backend_options.get("key_prefix") {
                options = options.with_cache_prefix(prefix.clone());
            }
            let cache = beaker_memcached::MemcachedCache::connect(&url, options).await.map_err(|e| opened(e.into()))?;
            Ok(Arc::new(cache))
        }
        #[cfg(not(feature = "memcached"))]
        StoreType::Memcached => missing("memcached"),
        #[cfg(feature = "object-store")]
        StoreType::ObjectStore => {
            let url = crate::build::object_store_url(&key, region.url.as_deref())?;
            let cache =
                beaker_object_store::ObjectCache::connect(&url, beaker_object_store::ObjectStoreOptions::default())
                    .await
                    .map_err(|e| opened(e.into()))?;
            Ok(Arc::new(cache))
        }
        #[cfg(not(feature = "object-store"))]
        StoreType::ObjectStore => missing("object-store"),
        // Cookie "caches" do not exist; memory regions never get here.
        other => Err(BuildError::Config(beaker_core::ConfigError::Invalid {
            key: key.clone(),
            value: other.as_str().to_owned(),
            expected: "memory, file, sqlite, postgres, mysql, redis, redis+cluster, memcached, s3, gs or az".to_owned(),
        })),
    }
}

/// Whether this build has the SQL driver for `store`.
#[allow(dead_code)]
fn sql_enabled(store: StoreType) -> bool {
    (matches!(store, StoreType::Sqlite) && cfg!(feature = "sqlite"))
        || (matches!(store, StoreType::Postgres) && cfg!(feature = "postgres"))
        || (matches!(store, StoreType::Mysql) && cfg!(feature = "mysql"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn memory_regions_need_no_feature() {
        let config = CacheConfig::new().with_region("short", RegionConfig::memory(Some(Duration::from_secs(5))));
        let caches = cache_manager(config).await.unwrap();
        let region = caches.region("short").unwrap();
        region.put("k", &7u32, None).await.unwrap();
        assert_eq!(region.get::<u32>("k").await.unwrap(), Some(7));
    }

    #[tokio::test]
    #[cfg(not(feature = "memcached"))]
    async fn a_backend_without_its_feature_names_the_option() {
        let region = RegionConfig::default().with_url("memcached://127.0.0.1:1").unwrap();
        let e = cache_manager(CacheConfig::new().with_region("far", region)).await.unwrap_err().to_string();
        assert!(e.contains("cache.far.url") && e.contains("memcached"), "{e}");
    }

    /// A region on S3 (moto, started by `cargo xtask test`): values round-trip through
    /// the object store, a clear empties the namespace, and `get_or_create` runs once.
    #[tokio::test]
    #[cfg(feature = "object-store")]
    async fn an_s3_region_stores_clears_and_creates_once() {
        if std::env::var("BEAKER_TEST_S3_URL").is_err() {
            beaker_testkit_skip("s3 cache region", "BEAKER_TEST_S3_URL is not set (cargo xtask test starts moto)");
            return;
        }
        let run =
            format!("{:x}", std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos());
        let region = RegionConfig::default()
            .with_url(format!("s3://beaker-test/facade-cache-{run}"))
            .unwrap()
            .with_expire(Some(Duration::from_secs(60)));
        let caches = cache_manager(CacheConfig::new().with_region("far", region)).await.unwrap();
        let far = caches.region("far").unwrap().namespace("facade");
        far.put("k", &7u32, None).await.unwrap();
        assert_eq!(far.get::<u32>("k").await.unwrap(), Some(7));
        let calls = std::sync::atomic::AtomicU32::new(0);
        for _ in 0..3 {
            let v: u32 = far
                .get_or_create("made", || async {
                    calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    Ok::<_, std::convert::Infallible>(42)
                })
                .await
                .unwrap();
            assert_eq!(v, 42);
        }
        assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 1);
        far.clear().await.unwrap();
        assert_eq!(far.get::<u32>("k").await.unwrap(), None);
    }

    /// A loud skip (this crate does not depend on the testkit): fails under `CI=true`.
    #[cfg(feature = "object-store")]
    fn beaker_testkit_skip(suite: &str, why: &str) {
        assert!(!std::env::var("CI").is_ok_and(|v| v == "true" || v == "1"), "{suite}: {why} (CI=true)");
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), "\n=== SKIPPED: {suite}: {why} ===\n");
    }
}
