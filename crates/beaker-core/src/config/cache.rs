//! [`CacheConfig`]: cache regions as Beaker configures them.

use std::collections::BTreeMap;
use std::time::Duration;

use super::coerce::{as_bool, as_list, as_opt_seconds, as_u64, non_blank};
use super::source::{self, Source};
use super::store_type::StoreType;
use crate::error::ConfigError;

/// One cache region: a backend, a default expiry, a key length limit and a switch.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct RegionConfig {
    /// Backend kind (`type`, default memory).
    pub store_type: StoreType,
    /// Backend URL (`url`).
    pub url: Option<String>,
    /// Default expiry of entries (`expire`, seconds; none = never stale).
    pub expire: Option<Duration>,
    /// Keys longer than this are hashed (`key_length`, default 250).
    pub key_length: usize,
    /// When false, every lookup misses and nothing is stored (`enabled`, default true).
    pub enabled: bool,
    /// Bound on entries for memory regions (`max_entries`, default 10 000).
    pub max_entries: u64,
    /// Bound on bytes for memory regions (`max_bytes`, default none); replaces
    /// `max_entries` when set. Values are weighed by their JSON size when stored.
    pub max_bytes: Option<u64>,
    /// Backend-specific options (`data_dir`, `key_prefix`, `table_name`, ...).
    pub backend_options: BTreeMap<String, String>,
}

impl Default for RegionConfig {
    fn default() -> Self {
        RegionConfig {
            store_type: StoreType::Memory,
            url: None,
            expire: None,
            key_length: 250,
            enabled: true,
            max_entries: 10_000,
            max_bytes: None,
            backend_options: BTreeMap::new(),
        }
    }
}

impl RegionConfig {
    /// A memory region with the given expiry.
    pub fn memory(expire: Option<Duration>) -> Self {
        RegionConfig { expire, ..Self::default() }
    }

    /// Sets the backend URL (the type follows its scheme).
    pub fn with_url(mut self, url: impl Into<String>) -> Result<Self, ConfigError> {
        let url = url.into();
        self.store_type = StoreType::from_url(&url).ok_or_else(|| {
            ConfigError::invalid("cache.url", &url, format!("a URL whose scheme is one of {}", StoreType::ACCEPTED))
        })?;
        self.url = Some(url);
        Ok(self)
    }

    /// Enables or disables the region.
    pub fn with_enabled(mut self, enabled: bool) -> Self {
        self.enabled = enabled;
        self
    }

    /// Sets the key length limit.
    pub fn with_key_length(mut self, key_length: usize) -> Self {
        self.key_length = key_length;
        self
    }

    /// Sets the entry bound for memory regions.
    pub fn with_max_entries(mut self, max_entries: u64) -> Self {
        self.max_entries = max_entries;
        self
    }

    /// Bounds a memory region by bytes instead of entries.
    pub fn with_max_bytes(mut self, max_bytes: u64) -> Self {
        self.max_bytes = Some(max_bytes);
        self
    }

    /// Sets the default expiry of entries.
    pub fn with_expire(mut self, expire: Option<Duration>) -> Self {
        self.expire = expire;
        self
    }

    fn set(&mut self, opt: &str, key: &str, value: &str) -> Result<(), ConfigError> {
        match opt {
            "type" => self.store_type = StoreType::parse_option(key, value)?,
            "url" => {
                let url = non_blank(key, value)?;
                if let Some(t) = StoreType::from_url(url) {
                    self.store_type = t;
                }
                self.url = Some(url.to_owned());
            }
            "expire" | "expiretime" => self.expire = as_opt_seconds(key, value)?,
            "key_length" => {
                let n = as_u64(key, value)?;
                if n < 16 {
                    return Err(ConfigError::invalid(key, value, "at least 16"));
                }
                self.key_length = n as usize;
            }
            "enabled" => self.enabled = as_bool(key, value)?,
            "max_entries" => self.max_entries = as_u64(key, value)?,
            "max_bytes" => self.max_bytes = Some(as_u64(key, value)?),
            "data_dir" | "key_prefix" | "table_name" | "schema_name" => {
                self.backend_options.insert(opt.to_owned(), non_blank(key, value)?.to_owned());
            }
            // Read by the Redis backend (the facade refuses them for any other).
            "near_cache" => {
                self.backend_options.insert(opt.to_owned(), as_bool(key, value)?.to_string());
            }
            "near_cache_entries" | "near_cache_bytes" => {
                let n = as_u64(key, value)?;
                if n == 0 {
                    return Err(ConfigError::invalid(key, value, "a positive number"));
                }
                self.backend_options.insert(opt.to_owned(), n.to_string());
            }
            "lock_dir" => {
                return Err(ConfigError::Conflict {
                    key: key.to_owned(),
                    message: "not supported: the dogpile lock lives in the backend itself, no lock files".into(),
                })
            }
            "namespace" => {
                return Err(ConfigError::Conflict {
                    key: key.to_owned(),
                    message: "not supported here: namespaces are chosen per call (Region::namespace) or by #[cached]"
                        .into(),
                })
            }
            "memcache_module" => {
                return Err(ConfigError::Conflict {
                    key: key.to_owned(),
                    message: "not supported: the Memcached backend has one client, built in".into(),
                })
            }
            _ => return Err(ConfigError::Unknown { key: key.to_owned() }),
        }
        Ok(())
    }
}

/// Options a region accepts (for the hint on an option of a region nobody listed).
const REGION_OPTIONS: &[&str] = &[
    "type",
    "url",
    "expire",
    "expiretime",
    "key_length",
    "enabled",
    "max_entries",
    "max_bytes",
    "data_dir",
    "key_prefix",
    "table_name",
    "schema_name",
    "near_cache",
    "near_cache_entries",
    "near_cache_bytes",
];

/// The error for an option of a region that is not in the list of regions
/// (`cache.other.url`, `BEAKER_CACHE_OTHER_URL`), naming the list to add it to.
fn unlisted_region(name: &str, key: &str) -> Option<ConfigError> {
    let list = if key.starts_with("BEAKER_") { "BEAKER_CACHE_REGIONS" } else { "cache.regions" };
    if let Some((region, _)) = name.split_once('.') {
        return Some(ConfigError::Conflict {
            key: key.to_owned(),
            message: format!("region `{region}` is not listed in {list}; add it there"),
        });
    }
    // Environment style: `<region>_<option>`, e.g. `demo_url`.
    let region = REGION_OPTIONS.iter().find_map(|opt| name.strip_suffix(opt)?.strip_suffix('_'))?;
    (!region.is_empty()).then(|| ConfigError::Conflict {
        key: key.to_owned(),
        message: format!("region `{region}` is not listed in {list}; add it there"),
    })
}

/// The cache regions of an application. No process-global registry: the application owns
/// this value (and the cache manager built from it) and hands it to its handlers.
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct CacheConfig {
    /// Regions by name.
    pub regions: BTreeMap<String, RegionConfig>,
}

impl CacheConfig {
    /// No regions.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) a region.
    pub fn with_region(mut self, name: impl Into<String>, region: RegionConfig) -> Self {
        self.regions.insert(name.into(), region);
        self
    }

    /// Reads Beaker-style options (`beaker.cache.regions = a, b`, `beaker.cache.a.expire = 60`,
    /// region defaults as `beaker.cache.type`, `beaker.cache.expire`, ...). Keys with other
    /// prefixes are ignored.
    pub fn from_map<I, K, V>(pairs: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: AsRef<str>,
    {
        Self::from_source(Source::from_prefixed(pairs, &["beaker.cache.", "cache."]))
    }

    /// Reads `BEAKER_CACHE_REGIONS`, region defaults (`BEAKER_CACHE_EXPIRE`, ...) and
    /// per-region options (`BEAKER_CACHE_<REGION>_EXPIRE`, region upper-cased, `-` as `_`).
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_env_vars(std::env::vars())
    }

    /// Like [`from_env`](Self::from_env), from the given variables.
    pub fn from_env_vars(vars: impl IntoIterator<Item = (String, String)>) -> Result<Self, ConfigError> {
        Self::from_flat_env(Source::from_env(vars, "BEAKER_CACHE_"), None)
    }

    /// Like [`from_env`](Self::from_env) on top of `base`: when `BEAKER_CACHE_REGIONS` is
    /// not set, the regions are `base`'s, and the environment may change their options
    /// (`BEAKER_CACHE_DEMO_URL` for `base`'s region `demo`) without listing them again.
    /// When it is set, it alone decides, as in [`from_env`](Self::from_env).
    pub fn from_env_over(base: CacheConfig) -> Result<Self, ConfigError> {
        Self::from_env_vars_over(base, std::env::vars())
    }

    /// Like [`from_env_over`](Self::from_env_over), from the given variables.
    pub fn from_env_vars_over(
        base: CacheConfig,
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let flat = Source::from_env(vars, "BEAKER_CACHE_");
        if flat.entries.contains_key("regions") {
            return Self::from_flat_env(flat, None);
        }
        Self::from_flat_env(flat, Some(&base))
    }

    fn from_flat_env(flat: Source, base: Option<&CacheConfig>) -> Result<Self, ConfigError> {
        let regions = match (flat.entries.get("regions"), base) {
            (Some((k, v)), _) => as_list(k, v)?,
            (None, Some(base)) => base.regions.keys().cloned().collect(),
            (None, None) => Vec::new(),
        };
        // Longest names first, so that region `a_b` wins over region `a` for `A_B_EXPIRE`.
        let mut by_len: Vec<(String, String)> =
            regions.iter().map(|r| (r.to_ascii_lowercase().replace('-', "_") + "_", r.clone())).collect();
        by_len.sort_by_key(|(p, _)| std::cmp::Reverse(p.len()));
        let mut src = Source::default();
        for (name, kv) in flat.entries {
            let renamed = by_len
                .iter()
                .find_map(|(p, r)| name.strip_prefix(p.as_str()).map(|opt| format!("{r}.{opt}")))
                .unwrap_or(name);
            src.entries.insert(renamed, kv);
        }
        Self::from_source_over(src, base)
    }

    /// Parses a TOML document (`regions = [..]`, defaults, and one table per region).
    pub fn from_toml_str(doc: &str) -> Result<Self, ConfigError> {
        let table: toml::Table = toml::from_str(doc).map_err(|e| ConfigError::Invalid {
            key: "cache".into(),
            value: String::new(),
            expected: format!("a TOML table of cache options ({})", e.message()),
        })?;
        Self::from_source(Source::from_toml(&table, "cache.")?)
    }

    fn from_source(src: Source) -> Result<Self, ConfigError> {
        Self::from_source_over(src, None)
    }

    /// Reads `src`; regions that `base` has start from `base`'s options (and the region
    /// defaults of `src` still apply to them).
    fn from_source_over(src: Source, base: Option<&CacheConfig>) -> Result<Self, ConfigError> {
        let names = match (src.entries.get("regions"), base) {
            (Some((k, v)), _) => as_list(k, v)?,
            (None, Some(base)) => base.regions.keys().cloned().collect(),
            (None, None) => Vec::new(),
        };
        let mut defaults = RegionConfig::default();
        let mut default_entries: Vec<(&str, &str, &str)> = Vec::new();
        let mut per_region: Vec<(&str, &str, &str, &str)> = Vec::new();
        for (name, (key, value)) in &src.entries {
            if name == "regions" {
                continue;
            }
            match names.iter().find(|r| name.strip_prefix(r.as_str()).is_some_and(|rest| rest.starts_with('.'))) {
                Some(r) => per_region.push((r.as_str(), &name[r.len() + 1..], key, value)),
                None => match unlisted_region(name, key) {
                    Some(e) => return Err(e),
                    None => {
                        defaults.set(name, key, value)?;
                        default_entries.push((name, key, value));
                    }
                },
            }
        }
        let mut regions = BTreeMap::new();
        for n in &names {
            let region = match base.and_then(|b| b.regions.get(n)) {
                Some(from_base) => {
                    let mut r = from_base.clone();
                    for (name, key, value) in &default_entries {
                        r.set(name, key, value)?;
                    }
                    r
                }
                None => defaults.clone(),
            };
            regions.insert(n.clone(), region);
        }
        for (region, opt, key, value) in per_region {
            regions.get_mut(region).expect("declared region").set(opt, key, value)?;
        }
        Ok(CacheConfig { regions })
    }
}

impl<'de> serde::Deserialize<'de> for CacheConfig {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = source::ScalarMap::deserialize(deserializer)?;
        Self::from_source(Source::from_scalars(raw, "cache.")).map_err(serde::de::Error::custom)
    }
}
