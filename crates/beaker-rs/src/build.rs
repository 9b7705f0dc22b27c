//! From configuration to a ready session manager: the store is chosen by `type` or by the
//! URL's scheme.

use beaker_core::{ConfigError, CookieStore, SessionConfig, SessionManager, StoreType};

/// Why a session or cache manager could not be built (named apart from the re-exported
/// [`beaker_core::Error`], the error of a session in use).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// Bad configuration (the message names the option or variable).
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The store could not be reached or prepared at start-up.
    #[error("{key}: could not open the {store} store: {source}")]
    Store {
        /// The option that chose the store (`session.url`, `cache.short_term.type`, ...).
        key: String,
        /// The store type.
        store: StoreType,
        /// What went wrong.
        #[source]
        source: beaker_core::BoxError,
    },
    /// The store type needs a cargo feature of this crate that is off.
    #[error("{key}: the {store} store needs the `{feature}` feature of the `beaker-rs` crate")]
    MissingFeature {
        /// The option that chose the store (`session.url`, `cache.short_term.type`, ...).
        key: String,
        /// The store type.
        store: StoreType,
        /// The feature to enable.
        feature: &'static str,
    },
    /// Any other session error (while using the re-exported API in the same function).
    #[error(transparent)]
    Session(#[from] beaker_core::Error),
}

/// Reads `BEAKER_SESSION_*` from the environment and builds the manager with its store.
///
/// With `BEAKER_SESSION_URL_FROM_PLATFORM=true` ([`URL_FROM_PLATFORM`](crate::URL_FROM_PLATFORM))
/// and neither `BEAKER_SESSION_URL` nor `BEAKER_SESSION_TYPE` set, the store comes from
/// `REDIS_URL`, else `DATABASE_URL`, as Heroku-style platforms set them.
pub async fn session_manager_from_env() -> Result<SessionManager, BuildError> {
    let (config, from) = crate::platform::session_config_from_vars(std::env::vars())?;
    build_session_manager(config, Some(from.unwrap_or(""))).await
}

/// Like [`session_manager_from_env`], with `default_url` as the store when neither
/// `BEAKER_SESSION_TYPE` nor `BEAKER_SESSION_URL` is set. A secret is still required:
/// without `BEAKER_SESSION_SECRET` this fails with an error naming it.
///
/// `BEAKER_SESSION_URL_FROM_PLATFORM` applies as in [`session_manager_from_env`], before
/// `default_url`.
pub async fn session_manager_from_env_or(default_url: &str) -> Result<SessionManager, BuildError> {
    let (config, from) = crate::platform::session_config_from_vars(std::env::vars())?;
    build_session_manager(with_default_url(config, default_url), Some(from.unwrap_or(""))).await
}

/// For demos and tests only: like [`session_manager_from_env_or`], but when
/// `BEAKER_SESSION_SECRET` is not set it signs cookies with a **public** secret (anyone can
/// forge sessions) and says so on stderr. Never call it in a service that is deployed.
pub async fn insecure_demo_session_manager_from_env_or(default_url: &str) -> Result<SessionManager, BuildError> {
    let (config, from) = crate::platform::session_config_from_vars(std::env::vars())?;
    let config = config.with_insecure_demo_secret_if_missing();
    build_session_manager(with_default_url(config, default_url), Some(from.unwrap_or(""))).await
}

fn with_default_url(config: SessionConfig, default_url: &str) -> SessionConfig {
    if config.store_type.is_none() && config.url.is_none() {
        config.with_url(default_url)
    } else {
        config
    }
}

/// Builds the manager for `config`, opening the store its `type`/`url` names.
pub async fn session_manager(config: SessionConfig) -> Result<SessionManager, BuildError> {
    build_session_manager(config, None).await
}

/// Opens the session store `config` names, as [`session_manager`] would, without building
/// a manager or starting a sweeper: for tools that inspect or administer the store an
/// application uses (the `beaker` command). No secret is needed, since stores hold no
/// cookie.
///
/// Memory and cookie-only sessions have no store another process can open; asking for
/// one is a [`BuildError::Config`] naming `session.type` (or `session.url`).
pub async fn session_store(
    config: &SessionConfig,
) -> Result<std::sync::Arc<dyn beaker_core::store::SessionStore>, BuildError> {
    open_named_store(config, None).await
}

/// Like [`session_store`], with the configuration read from `BEAKER_SESSION_*` (and the
/// platform switch, as in [`session_manager_from_env`]); errors name the variables.
/// Returns the configuration too, since a tool needs its other options (the retired
/// window, the serializer).
pub async fn session_store_from_env(
) -> Result<(SessionConfig, std::sync::Arc<dyn beaker_core::store::SessionStore>), BuildError> {
    let (config, from) = crate::platform::session_config_from_vars(std::env::vars())?;
    let store = open_named_store(&config, Some(from.unwrap_or(""))).await?;
    Ok((config, store))
}

/// `env` is `None` for a configuration given in code, else `Some` of the platform
/// variable the URL came from (`""` when it came from `BEAKER_SESSION_*`): errors name
/// what the user set.
async fn build_session_manager(config: SessionConfig, env: Option<&'static str>) -> Result<SessionManager, BuildError> {
    // Beaker's cookie-only sessions are keyed by validate_key and encrypt_key instead
    // (`validate` below names whichever is missing).
    let beaker_cookie =
        config.compat == beaker_core::Compat::Beaker && matches!(config.resolved_store_type(), Ok(StoreType::Cookie));
    if config.secrets.is_empty() && !beaker_cookie {
        // Refused before any store is opened, naming what the user sets.
        return Err(BuildError::Config(ConfigError::Missing {
            key: if env.is_some() { "BEAKER_SESSION_SECRET" } else { "session.secret" }.into(),
            why: "signed and encrypted cookies need at least one secret".into(),
        }));
    }
    let (store_type, key) = resolve_store(&config, env)?;
    let builder = SessionManager::builder(config.clone());
    let builder = match store_type {
        // The manager builds the memory store itself, with `max_sessions` and `max_bytes`.
        StoreType::Memory => builder,
        StoreType::Cookie => builder.cookie_store(CookieStore),
        other => {
            // Boxed: the backends' connect futures are deep types that would otherwise be
            // inlined into every caller's future.
            let store = Box::pin(open_store(key, other, &config)).await?;
            // Redis and Memcached expire records natively (the record's expiry is their
            // TTL); SQL rows, files and objects need a sweep (for objects, a bucket
            // lifecycle rule is cheaper: `cleanup_interval = none` then turns this off).
            let needs_sweep = matches!(
                other,
                StoreType::File | StoreType::Sqlite | StoreType::Postgres | StoreType::Mysql | StoreType::ObjectStore
            );
            if let (true, Some(every)) = (needs_sweep, config.cleanup_interval) {
                crate::sweeper::spawn(&store, every);
            }
            builder.shared_store(store)
        }
    };
    Ok(builder.build()?)
}

/// The store type `config` names and the option (or variable) that named it, once the
/// configuration is checked: both are settled before any store is opened.
fn resolve_store(config: &SessionConfig, env: Option<&'static str>) -> Result<(StoreType, &'static str), BuildError> {
    let store_type = config.resolved_store_type().map_err(|e| match e {
        // Name the variable the user set, not the option it maps to.
        ConfigError::Invalid { key, value, expected } if env.is_some() => ConfigError::Invalid {
            key: format!("BEAKER_{}", key.to_ascii_uppercase().replace('.', "_")),
            value,
            expected,
        },
        other => other,
    })?;
    let key = match (config.store_type.is_some(), env) {
        (true, Some(_)) => "BEAKER_SESSION_TYPE",
        (true, None) => "session.type",
        (false, Some("")) => "BEAKER_SESSION_URL",
        (false, Some(platform)) => platform,
        (false, None) => "session.url",
    };
    config.validate()?;
    crate::near::check("session", store_type, config.compat == beaker_core::Compat::Beaker, &config.backend_options)?;
    Ok((store_type, key))
}

async fn open_named_store(
    config: &SessionConfig,
    env: Option<&'static str>,
) -> Result<std::sync::Arc<dyn beaker_core::store::SessionStore>, BuildError> {
    let (store_type, key) = resolve_store(config, env)?;
    match store_type {
        StoreType::Memory | StoreType::Cookie => Err(BuildError::Config(ConfigError::Conflict {
            key: key.to_owned(),
            message: format!(
                "{store_type} sessions live in the application's process or in its cookies; \
                 only a server store (file, SQL, Redis, Memcached, object storage) can be opened from outside"
            ),
        })),
        other => Box::pin(open_store(key, other, config)).await,
    }
}

#[allow(unused_variables)]
async fn open_store(
    key: &'static str,
    store: StoreType,
    config: &SessionConfig,
) -> Result<std::sync::Arc<dyn beaker_core::store::SessionStore>, BuildError> {
    let missing = |feature| -> Result<std::sync::Arc<dyn beaker_core::store::SessionStore>, BuildError> {
        Err(BuildError::MissingFeature { key: key.to_owned(), store, feature })
    };
    let opened = |source: beaker_core::BoxError| BuildError::Store { key: key.to_owned(), store, source };
    if config.compat == beaker_core::Compat::Beaker {
        return Box::pin(open_beaker_layout_store(key, store, config)).await;
    }
    match store {
        #[cfg(feature = "file")]
        StoreType::File => {
            let dir = file_directory(config.url.as_deref(), &config.backend_options);
            let options = beaker_file::FileOptions::new().timeout(config.store_timeout);
            let store = beaker_file::FileStore::open(dir, options).await.map_err(|e| opened(e.into()))?;
            Ok(std::sync::Arc::new(store))
        }
        #[cfg(not(feature = "file"))]
        StoreType::File => missing("file"),
        // The URL decides the database (`sqlite:` alone is the file `beaker.sqlite3`);
        // `table_name`, `schema_name`, `pool_size` and `store_timeout` are honoured.
        #[cfg(feature = "sqlite")]
        StoreType::Sqlite => Ok(std::sync::Arc::new(
            beaker_sql::SqlStore::from_session_config(config).await.map_err(|e| opened(e.into()))?,
        )),
        #[cfg(not(feature = "sqlite"))]
        StoreType::Sqlite => missing("sqlite"),
        #[cfg(feature = "postgres")]
        StoreType::Postgres => Ok(std::sync::Arc::new(
            beaker_sql::SqlStore::from_session_config(config).await.map_err(|e| opened(e.into()))?,
        )),
        #[cfg(not(feature = "postgres"))]
        StoreType::Postgres => missing("postgres"),
        #[cfg(feature = "mysql")]
        StoreType::Mysql => Ok(std::sync::Arc::new(
            beaker_sql::SqlStore::from_session_config(config).await.map_err(|e| opened(e.into()))?,
        )),
        #[cfg(not(feature = "mysql"))]
        StoreType::Mysql => missing("mysql"),
        #[cfg(feature = "redis")]
        StoreType::Redis | StoreType::RedisCluster => {
            let url = config.url.as_deref().unwrap_or("redis://127.0.0.1:6379");
            let mut options = beaker_redis::RedisOptions::default().with_timeout(config.store_timeout);
            if let Some(prefix) = config.backend_options.get("key_prefix") {
                options = options.with_session_prefix(prefix.clone());
            }
            let mut store = beaker_redis::RedisStore::connect(url, options).await.map_err(|e| opened(e.into()))?;
            if let Some(near) = crate::near::options(&config.backend_options) {
                store = store.with_near_cache(near).await.map_err(|e| opened(e.into()))?;
            }
            Ok(std::sync::Arc::new(store))
        }
        #[cfg(not(feature = "redis"))]
        StoreType::Redis | StoreType::RedisCluster => missing("redis"),
        #[cfg(feature = "memcached")]
        StoreType::Memcached => {
            let url = memcached_url(config.url.as_deref(), config.store_type.is_some());
            let mut options = beaker_memcached::MemcachedOptions::default().with_timeout(config.store_timeout);
            if let Some(prefix) = config.backend_options.get("key_prefix") {
                options = options.with_session_prefix(prefix.clone());
            }
            let store = beaker_memcached::MemcachedStore::connect(&url, options).await.map_err(|e| opened(e.into()))?;
            Ok(std::sync::Arc::new(store))
        }
        #[cfg(not(feature = "memcached"))]
        StoreType::Memcached => missing("memcached"),
        #[cfg(feature = "object-store")]
        StoreType::ObjectStore => {
            let url = object_store_url(key, config.url.as_deref())?;
            let options = beaker_object_store::ObjectStoreOptions::default().with_timeout(config.store_timeout);
            let store =
                beaker_object_store::ObjectSessionStore::connect(&url, options).await.map_err(|e| opened(e.into()))?;
            Ok(std::sync::Arc::new(store))
        }
        #[cfg(not(feature = "object-store"))]
        StoreType::ObjectStore => missing("object-store"),
        _ => unreachable!("memory and cookie sessions need no store"),
    }
}

/// The store of `compat = beaker`: Beaker's own record layout, for the back ends that
/// have one here.
#[allow(unused_variables)]
async fn open_beaker_layout_store(
    key: &'static str,
    store: StoreType,
    config: &SessionConfig,
) -> Result<std::sync::Arc<dyn beaker_core::store::SessionStore>, BuildError> {
    match store {
        #[cfg(feature = "redis")]
        StoreType::Redis => {
            let url = config.url.as_deref().unwrap_or("redis://127.0.0.1:6379");
            let options = beaker_redis::RedisOptions::default().with_timeout(config.store_timeout);
            let store = beaker_redis::BeakerRedisStore::connect(url, options).await.map_err(|e| BuildError::Store {
                key: key.to_owned(),
                store,
                source: e.into(),
            })?;
            Ok(std::sync::Arc::new(store.with_serializer(config.compat_serializer)))
        }
        #[cfg(not(feature = "redis"))]
        StoreType::Redis => Err(BuildError::MissingFeature { key: key.to_owned(), store, feature: "redis" }),
        // Beaker's `ext:database` table: `table_name` (Beaker's default `beaker_cache`),
        // `schema_name` (PostgreSQL) and `store_timeout` are honoured.
        #[cfg(any(feature = "sqlite", feature = "postgres"))]
        StoreType::Sqlite | StoreType::Postgres => {
            let url = config.url.as_deref().unwrap_or("sqlite:");
            let table = config.backend_options.get("table_name").map_or("beaker_cache", String::as_str);
            let mut options = beaker_sql::SqlOptions::new().timeout(config.store_timeout);
            if let Some(schema) = config.backend_options.get("schema_name") {
                options = options.schema(schema.clone());
            }
            let store = beaker_sql::BeakerSqlStore::connect(url, options, table)
                .await
                .map_err(|e| BuildError::Store { key: key.to_owned(), store, source: e.into() })?;
            Ok(std::sync::Arc::new(store.with_serializer(config.compat_serializer)))
        }
        // The same refusal `SessionConfig::validate` gives, reached here before it runs.
        StoreType::File => Err(BuildError::Config(ConfigError::Conflict {
            key: "session.type".into(),
            message: "compat = beaker cannot share Beaker's file sessions: Beaker's file container pickles each \
                      record into a file guarded by Python's lock files; move both apps to ext:redis"
                .into(),
        })),
        other => Err(BuildError::Config(ConfigError::Conflict {
            key: "session.compat".into(),
            message: format!(
                "compat = beaker keeps sessions in Beaker's layout on ext:redis and ext:database (PostgreSQL, \
                 SQLite) only, not on {other}"
            ),
        })),
    }
}

/// The `s3://`, `gs://` or `az://` URL an object store needs (there is no default bucket).
#[cfg_attr(not(feature = "object-store"), allow(dead_code))]
pub(crate) fn object_store_url(key: &str, url: Option<&str>) -> Result<String, BuildError> {
    match url.map(str::trim) {
        Some(u) if u.contains("://") => Ok(u.to_owned()),
        other => Err(BuildError::Config(ConfigError::Invalid {
            key: key.to_owned(),
            value: other.unwrap_or("").to_owned(),
            expected: "an object store URL: s3://BUCKET/PREFIX, gs://BUCKET/PREFIX or az://CONTAINER/PREFIX".into(),
        })),
    }
}

/// A `memcached://` URL from what the configuration says: nothing (the local default), a
/// full URL, Beaker's bare server list with `type = memcached` (`h1:11211;h2:11211`), or
/// the scheme alone (`memcached:h1:11211,h2:11211`).
#[cfg_attr(not(feature = "memcached"), allow(dead_code))]
pub(crate) fn memcached_url(url: Option<&str>, type_given: bool) -> String {
    match url.map(str::trim) {
        None | Some("") => "memcached://127.0.0.1:11211".to_owned(),
        Some(u) if u.contains("://") => u.to_owned(),
        Some(u) if type_given => format!("memcached://{u}"),
        Some(u) => format!("memcached://{}", u.split_once(':').map_or(u, |(_, rest)| rest)),
    }
}

/// The directory of a `file:` store: Beaker's `data_dir` option, else the URL's path
/// (`file:///var/lib/app/sessions`, `file:sessions`), else `./beaker-sessions`.
#[cfg_attr(not(feature = "file"), allow(dead_code))]
pub(crate) fn file_directory(
    url: Option<&str>,
    options: &std::collections::BTreeMap<String, String>,
) -> std::path::PathBuf {
    if let Some(dir) = options.get("data_dir") {
        return dir.into();
    }
    let path = url.and_then(|u| u.strip_prefix("file:")).map(|p| p.strip_prefix("//").unwrap_or(p)).unwrap_or("");
    if path.is_empty() {
        "beaker-sessions".into()
    } else {
        path.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn memory_and_cookie_need_no_feature() {
        let c = SessionConfig::new().with_secret("a secret of sixteen+ bytes").unwrap();
        assert!(session_manager(c.clone()).await.is_ok());
        assert!(session_manager(c.with_url("cookie:")).await.is_ok());
    }

    #[tokio::test]
    async fn no_secret_no_manager() {
        let from_config = session_manager(SessionConfig::new()).await.expect_err("no secret").to_string();
        assert!(from_config.contains("session.secret"), "{from_config}");
        let from_env = build_session_manager(SessionConfig::new(), Some("")).await.expect_err("no secret").to_string();
        assert!(from_env.contains("BEAKER_SESSION_SECRET"), "{from_env}");
        let demo = SessionConfig::new().with_insecure_demo_secret_if_missing();
        assert!(session_manager(demo).await.is_ok(), "demos and tests may opt in to the public secret");
    }

    #[tokio::test]
    async fn compat_refuses_stores_without_beakers_layout() {
        let c = SessionConfig::new()
            .with_secret("a secret of sixteen+ bytes")
            .unwrap()
            .with_compat(beaker_core::Compat::Beaker)
            .with_url("file:/tmp/nowhere");
        let e = session_manager(c).await.unwrap_err().to_string();
        assert!(e.contains("session.type") && e.contains("file container pickles"), "{e}");
        // Beaker's cookie-only sessions need both of Beaker's keys, and no secret.
        let cookie = SessionConfig::from_map([("session.compat", "beaker"), ("session.type", "cookie")]);
        let e = cookie.unwrap_err().to_string();
        assert!(e.contains("session.validate_key") && e.contains("CookieSession"), "{e}");
        let cookie = SessionConfig::from_map([
            ("session.compat", "beaker"),
            ("session.type", "cookie"),
            ("session.validate_key", "a validate key of sixteen+ bytes"),
            ("session.encrypt_key", "an encrypt key of sixteen+ bytes"),
        ]);
        assert!(session_manager(cookie.unwrap()).await.is_ok());
        let hashed = SessionConfig::from_map([("session.compat", "beaker"), ("session.hash_ids", "true")]);
        assert!(hashed.unwrap_err().to_string().contains("hash_ids"));
        let encrypted =
            SessionConfig::from_map([("session.compat", "beaker"), ("session.encrypt_key", "sixteen bytes or more")]);
        assert!(encrypted.unwrap_err().to_string().contains("session.encrypt_key"));
        let pickle = SessionConfig::from_map([("session.data_serializer", "pickle")]).unwrap_err().to_string();
        assert!(pickle.contains("session.data_serializer") && pickle.contains("compat"), "{pickle}");
        let bad = SessionConfig::from_map([("session.compat", "pylons")]).unwrap_err().to_string();
        assert!(bad.contains("session.compat") && bad.contains("pylons"), "{bad}");
    }

    #[tokio::test]
    async fn object_store_urls_need_the_feature_and_a_bucket() {
        let c = SessionConfig::new().with_secret("a secret of sixteen+ bytes").unwrap();
        let e = session_manager(c.clone().with_url("s3:")).await.unwrap_err().to_string();
        assert!(e.contains("session.url"), "{e}");
        if cfg!(feature = "object-store") {
            assert!(e.contains("s3://BUCKET/PREFIX"), "{e}");
            // A URL without a bucket is refused before any request.
            let e = session_manager(c.with_url("s3:///sessions")).await.unwrap_err().to_string();
            assert!(e.contains("session.url") && e.contains("bucket"), "{e}");
        } else {
            assert!(e.contains("object-store"), "{e}");
        }
    }

    #[tokio::test]
    async fn a_store_opens_without_a_manager_and_in_process_stores_are_refused() {
        for url in ["memory:", "cookie:"] {
            let e = session_store(&SessionConfig::new().with_url(url)).await.unwrap_err().to_string();
            assert!(e.contains("session.url") && e.contains("server store"), "{e}");
        }
        let e = session_store(&SessionConfig::new().with_url("nosuch://x")).await.unwrap_err().to_string();
        assert!(e.contains("session.url"), "{e}");
        if cfg!(feature = "file") {
            let dir = tempfile::tempdir().unwrap();
            let config = SessionConfig::new().with_url(format!("file://{}", dir.path().display()));
            let store = session_store(&config).await.expect("no secret is needed to open a store");
            assert_eq!(store.name(), "file");
        }
    }

    #[tokio::test]
    async fn bad_urls_name_the_option() {
        let c = SessionConfig::new().with_secret("a secret of sixteen+ bytes").unwrap().with_url("nosuch://x");
        let e = session_manager(c).await.unwrap_err().to_string();
        assert!(e.contains("session.url"), "{e}");
    }
}
