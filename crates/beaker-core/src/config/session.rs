//! [`SessionConfig`]: every session option, with Beaker's names and (safe) defaults.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use super::coerce::{as_bool, as_datetime, as_opt_seconds, as_seconds, as_u64, non_blank};
use super::source::{self, Source};
use super::store_type::StoreType;
use crate::compat::{BeakerSerializer, Compat};
use crate::error::ConfigError;
use crate::secret::Secret;
use crate::serializer::DataSerializer;

/// When the session cookie expires in the browser (Beaker's `cookie_expires`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum CookieExpires {
    /// No `Max-Age`/`Expires`: the cookie goes when the browser closes (Beaker `true`, the default).
    #[default]
    BrowserSession,
    /// A long-lived cookie (Beaker `false`; 400 days, the longest browsers keep a cookie).
    Never,
    /// `Max-Age` of this long from the last time the cookie was sent (Beaker's integer).
    After(Duration),
    /// A fixed date (Beaker's datetime).
    At(SystemTime),
}

/// `SameSite` attribute of the session cookie.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum SameSite {
    /// `SameSite=Lax` (the default).
    #[default]
    Lax,
    /// `SameSite=Strict`.
    Strict,
    /// `SameSite=None` (requires `secure = true`).
    None,
}

/// What a request does when the store cannot be reached while loading its session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum OnStoreError {
    /// Fail the request (adapters answer 503). The default.
    #[default]
    Fail,
    /// Carry on with an empty session. A request that carried a session cookie then
    /// saves nothing of what it changed (it did not see the stored data, and must not
    /// replace it): [`Session::changes_dropped`](crate::Session::changes_dropped) says so.
    /// A write that fails still fails with 503, never silently.
    Continue,
}

/// Whether responses get the caching headers their session needs (`cache_headers`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum CacheHeaders {
    /// `Vary: Cookie` on every response whose request used its session, and
    /// `Cache-Control` that keeps responses setting the session cookie out of shared caches
    /// (see [`CacheDirectives`](crate::CacheDirectives)). The default.
    #[default]
    Auto,
    /// No caching header: the application (or the proxy) takes care of them.
    Off,
}

/// Session options. Build one with [`SessionConfig::new`] and the `with_*` methods, from
/// Beaker's prefixed string maps ([`from_map`](Self::from_map)), from the environment
/// ([`from_env`](Self::from_env)), or with serde (TOML, JSON) through the same rules.
///
/// Beaker's option names and defaults are kept where they are safe. Deviations:
/// `httponly` defaults to true, ids are signed and stored hashed, `samesite` defaults to Lax.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct SessionConfig {
    /// Cookie name (`key`, default `beaker.session.id`).
    pub key: String,
    /// Secrets, first signs (`secret`, also Beaker's `validate_key`/`encrypt_key` outside
    /// compat mode; comma-separated).
    pub secrets: Vec<Secret>,
    /// With `compat = beaker` and `type = cookie`: Beaker's `validate_key`, which signs the
    /// cookie and salts its encryption key (comma-separated, newest first: the first
    /// writes, every one reads).
    pub beaker_validate_keys: Vec<Secret>,
    /// With `compat = beaker` and `type = cookie`: Beaker's `encrypt_key`, from which the
    /// AES key of each cookie is derived (comma-separated, newest first).
    pub beaker_encrypt_keys: Vec<Secret>,
    /// Backend kind (`type`); when unset, the scheme of `url` decides.
    pub store_type: Option<StoreType>,
    /// Backend URL (`url`).
    pub url: Option<String>,
    /// Idle timeout (`timeout`, seconds; default [`DEFAULT_TIMEOUT`](Self::DEFAULT_TIMEOUT),
    /// 30 minutes; Beaker: none). `none` turns it off.
    pub timeout: Option<Duration>,
    /// Absolute lifetime cap from creation (`absolute_timeout`, seconds; default
    /// [`DEFAULT_ABSOLUTE_TIMEOUT`](Self::DEFAULT_ABSOLUTE_TIMEOUT), 8 hours). `none` turns it off.
    pub absolute_timeout: Option<Duration>,
    /// How often an unmodified session is touched (`touch_interval`; default timeout/10).
    pub touch_interval: Option<Duration>,
    /// Browser-side expiry (`cookie_expires`).
    pub cookie_expires: CookieExpires,
    /// Record the last access time (`save_accessed_time`, default true).
    pub save_accessed_time: bool,
    /// `Secure` cookie attribute (`secure`, default false).
    pub secure: bool,
    /// `HttpOnly` cookie attribute (`httponly`, default true — Beaker's is false).
    pub httponly: bool,
    /// `SameSite` (`samesite`, default Lax).
    pub samesite: SameSite,
    /// `Domain` (`domain` or `cookie_domain`).
    pub domain: Option<String>,
    /// `Path` (`path` or `cookie_path`, default `/`).
    pub path: String,
    /// Serializer for new values (`data_serializer`, default json).
    pub data_serializer: DataSerializer,
    /// Start a fresh session on a corrupt record instead of failing (`invalidate_corrupt`, default true).
    pub invalidate_corrupt: bool,
    /// Store records under a hash of the id (`hash_ids`, default true; false for Beaker interop).
    pub hash_ids: bool,
    /// Outage policy (`on_store_error = fail | continue`).
    pub on_store_error: OnStoreError,
    /// Time limit for one store call (`store_timeout`, seconds, default 2).
    pub store_timeout: Duration,
    /// Largest `Set-Cookie` value for cookie-only sessions (`cookie_limit`, default 4096).
    pub cookie_limit: usize,
    /// On-the-wire formats (`compat = beaker` to share sessions with Python Beaker 1.14;
    /// default none). Beaker mode needs `hash_ids = false`, which setting it implies.
    pub compat: Compat,
    /// How Beaker's session dict is serialized in compat mode (`data_serializer = json`,
    /// the default, or `pickle`, which only compat mode accepts).
    pub compat_serializer: BeakerSerializer,
    /// How often the `beaker-rs` facade's background sweeper removes expired records from
    /// stores without native expiry (`cleanup_interval`, seconds, default 60, jittered by
    /// ±50 %; `none` turns the sweeper off).
    pub cleanup_interval: Option<Duration>,
    /// Capacity of the memory store in sessions (`max_sessions`, default 100 000).
    pub max_sessions: usize,
    /// Capacity of the memory store in bytes of session data (`max_bytes`, default 256 MiB).
    pub max_bytes: u64,
    /// How long a server-side store remembers the id of a session that ended by logout or
    /// regeneration (`retired_window`, seconds, default 60; 0 turns it off). A request
    /// still carrying such an id (the same browser's requests sent before it got its new
    /// cookie) neither sees the session nor gets a fresh one that would replace the new
    /// cookie. Each logout and login leaves a tombstone (the store key and a lapse time, no
    /// data) for this long.
    pub retired_window: Duration,
    /// The most sessions one principal may hold (`max_sessions_per_principal`, default
    /// none = unlimited; `0` also means unlimited). When a request sets a session's
    /// principal (a login), the least recently used sessions of that principal beyond the
    /// cap are ended. Server-side stores with a principal index only: refused by name with
    /// cookie-only sessions.
    pub max_sessions_per_principal: Option<usize>,
    /// Caching headers on responses that used their session (`cache_headers = auto | off`,
    /// default auto).
    pub cache_headers: CacheHeaders,
    /// Options for the backend that beaker-core does not interpret itself
    /// (`data_dir`, `table_name`, `key_prefix`, `schema_name`, and the Redis store's
    /// `near_cache`, `near_cache_entries`, `near_cache_bytes`, ...).
    pub backend_options: BTreeMap<String, String>,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            key: "beaker.session.id".into(),
            secrets: Vec::new(),
            beaker_validate_keys: Vec::new(),
            beaker_encrypt_keys: Vec::new(),
            store_type: None,
            url: None,
            timeout: Some(Self::DEFAULT_TIMEOUT),
            absolute_timeout: Some(Self::DEFAULT_ABSOLUTE_TIMEOUT),
            touch_interval: None,
            cookie_expires: CookieExpires::BrowserSession,
            save_accessed_time: true,
            secure: false,
            httponly: true,
            samesite: SameSite::Lax,
            domain: None,
            path: "/".into(),
            data_serializer: DataSerializer::Json,
            invalidate_corrupt: true,
            hash_ids: true,
            on_store_error: OnStoreError::Fail,
            store_timeout: Duration::from_secs(2),
            cookie_limit: 4096,
            compat: Compat::Off,
            compat_serializer: BeakerSerializer::Json,
            cleanup_interval: Some(Self::DEFAULT_CLEANUP_INTERVAL),
            max_sessions: crate::memory::MemoryStore::DEFAULT_MAX_SESSIONS,
            max_bytes: crate::memory::MemoryStore::DEFAULT_MAX_BYTES,
            retired_window: DEFAULT_RETIRED_WINDOW,
            max_sessions_per_principal: None,
            cache_headers: CacheHeaders::Auto,
            backend_options: BTreeMap::new(),
        }
    }
}

/// Options a backend may read from [`SessionConfig::backend_options`]; others are refused.
const BACKEND_OPTIONS: &[&str] = &["data_dir", "table_name", "schema_name", "key_prefix", "pool_size"];

/// Beaker options that have no meaning here, refused with the reason (an option that is
/// accepted must do something).
const REFUSED_OPTIONS: &[(&str, &str)] = &[
    (
        "lock_dir",
        "not supported: the file store locks records within one process only (share it between processes through a server store instead)",
    ),
    ("namespace", "not supported for sessions: use key_prefix (Redis, Memcached) or table_name (SQL)"),
    ("crypto_type", "not supported: cookie sessions are always encrypted with AES-256-GCM"),
    ("encrypt_nonce_bits", "not supported: AES-256-GCM uses its fixed 96-bit nonce"),
    ("memcache_module", "not supported: the Memcached store has one client, built in"),
    ("sentinel_master", "give the master's name in the URL instead: redis+sentinel://s1:26379,s2:26379/master_name"),
];

/// Default of [`SessionConfig::retired_window`]: longer than a request that was sent
/// before its browser received a new cookie can take to reach the server.
const DEFAULT_RETIRED_WINDOW: Duration = Duration::from_secs(60);

/// The public secret of [`SessionConfig::with_insecure_demo_secret_if_missing`].
const DEV_SECRET: &str = "beaker-rs development secret: do not use in production";

impl SessionConfig {
    /// Default idle timeout: 30 minutes, the top of OWASP's range for low-risk applications
    /// and the servlet containers' default (Beaker has none).
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30 * 60);

    /// Default absolute lifetime: 8 hours, a working day (OWASP's upper example).
    pub const DEFAULT_ABSOLUTE_TIMEOUT: Duration = Duration::from_secs(8 * 60 * 60);

    /// Default period of the facade's sweeper of expired records.
    pub const DEFAULT_CLEANUP_INTERVAL: Duration = Duration::from_secs(60);

    /// The defaults (no secret yet: add one with [`with_secret`](Self::with_secret)).
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a secret (the first one added signs; later ones only verify).
    pub fn with_secret(mut self, secret: impl AsRef<[u8]>) -> Result<Self, ConfigError> {
        self.secrets.push(Secret::new(secret.as_ref().to_vec())?);
        Ok(self)
    }

    /// For demos and tests only: when no secret is configured, signs and encrypts with a
    /// fixed secret that is **public** (anyone can forge sessions with it), and says so
    /// loudly on stderr. A deployed service sets `secret` (`BEAKER_SESSION_SECRET`)
    /// instead; without one, building a manager fails.
    pub fn with_insecure_demo_secret_if_missing(mut self) -> Self {
        // Beaker's cookie-only sessions use validate_key and encrypt_key, never `secret`.
        let beaker_cookie =
            self.compat == Compat::Beaker && matches!(self.resolved_store_type(), Ok(StoreType::Cookie));
        if self.secrets.is_empty() && !beaker_cookie {
            eprintln!(
                "warning: BEAKER_SESSION_SECRET is not set; using a PUBLIC demo secret (anyone can \
                 forge sessions). Set BEAKER_SESSION_SECRET before deploying."
            );
            tracing::warn!("no session secret configured; using the public development secret");
            self.secrets.push(Secret::new(DEV_SECRET.as_bytes().to_vec()).expect("long enough"));
        }
        self
    }

    /// Sets the store URL (and the type, from its scheme, unless already set).
    pub fn with_url(mut self, url: impl Into<String>) -> Self {
        self.url = Some(url.into());
        self
    }

    /// Sets the idle timeout.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Sets the absolute lifetime cap.
    pub fn with_absolute_timeout(mut self, cap: Duration) -> Self {
        self.absolute_timeout = Some(cap);
        self
    }

    /// Sets the period of the facade's sweeper of expired records (`None`: no sweeper).
    pub fn with_cleanup_interval(mut self, every: Option<Duration>) -> Self {
        self.cleanup_interval = every;
        self
    }

    /// Sets the memory store's capacity in sessions and in bytes of session data.
    pub fn with_memory_capacity(mut self, max_sessions: usize, max_bytes: u64) -> Self {
        self.max_sessions = max_sessions;
        self.max_bytes = max_bytes;
        self
    }

    /// Sets how long an ended session's id is remembered (zero: not at all).
    pub fn with_retired_window(mut self, window: Duration) -> Self {
        self.retired_window = window;
        self
    }

    /// Sets the most sessions one principal may hold (`None` or 0: unlimited).
    pub fn with_max_sessions_per_principal(mut self, cap: Option<usize>) -> Self {
        self.max_sessions_per_principal = cap.filter(|&n| n > 0);
        self
    }

    /// Sets the touch interval.
    pub fn with_touch_interval(mut self, every: Duration) -> Self {
        self.touch_interval = Some(every);
        self
    }

    /// Sets the browser-side expiry.
    pub fn with_cookie_expires(mut self, expires: CookieExpires) -> Self {
        self.cookie_expires = expires;
        self
    }

    /// Sets the cookie name.
    pub fn with_cookie_name(mut self, name: impl Into<String>) -> Self {
        self.key = name.into();
        self
    }

    /// Sets `Secure`.
    pub fn with_secure(mut self, secure: bool) -> Self {
        self.secure = secure;
        self
    }

    /// Sets `HttpOnly`.
    pub fn with_httponly(mut self, httponly: bool) -> Self {
        self.httponly = httponly;
        self
    }

    /// Sets `SameSite`.
    pub fn with_samesite(mut self, samesite: SameSite) -> Self {
        self.samesite = samesite;
        self
    }

    /// Sets `Domain`.
    pub fn with_domain(mut self, domain: impl Into<String>) -> Self {
        self.domain = Some(domain.into());
        self
    }

    /// Sets `Path`.
    pub fn with_path(mut self, path: impl Into<String>) -> Self {
        self.path = path.into();
        self
    }

    /// Sets the serializer for new values.
    pub fn with_serializer(mut self, serializer: DataSerializer) -> Self {
        self.data_serializer = serializer;
        self
    }

    /// Sets the outage policy.
    pub fn with_on_store_error(mut self, policy: OnStoreError) -> Self {
        self.on_store_error = policy;
        self
    }

    /// Sets whether responses get the caching headers their session needs.
    pub fn with_cache_headers(mut self, policy: CacheHeaders) -> Self {
        self.cache_headers = policy;
        self
    }

    /// Sets the on-the-wire formats; [`Compat::Beaker`] also stores ids unhashed, as
    /// Beaker looks records up by id.
    pub fn with_compat(mut self, compat: Compat) -> Self {
        self.compat = compat;
        if compat == Compat::Beaker {
            self.hash_ids = false;
        }
        self
    }

    /// Sets how Beaker's session dict is serialized in compat mode (`data_serializer`).
    pub fn with_compat_serializer(mut self, serializer: BeakerSerializer) -> Self {
        self.compat_serializer = serializer;
        self
    }

    /// Sets Beaker's `validate_key` and `encrypt_key` for cookie-only sessions in compat
    /// mode (each newest first: the first writes, every one reads).
    pub fn with_beaker_cookie_keys(
        mut self,
        validate_keys: &[&[u8]],
        encrypt_keys: &[&[u8]],
    ) -> Result<Self, ConfigError> {
        let wrap = |keys: &[&[u8]], name: &str| {
            keys.iter().map(|k| Secret::new(k.to_vec()).map_err(|e| rename(e, name))).collect::<Result<Vec<_>, _>>()
        };
        self.beaker_validate_keys = wrap(validate_keys, "session.validate_key")?;
        self.beaker_encrypt_keys = wrap(encrypt_keys, "session.encrypt_key")?;
        Ok(self)
    }

    /// Sets whether store keys are hashes of the ids.
    pub fn with_hash_ids(mut self, hashed: bool) -> Self {
        self.hash_ids = hashed;
        self
    }

    /// The store type: `type` if set, else the scheme of `url`, else memory.
    pub fn resolved_store_type(&self) -> Result<StoreType, ConfigError> {
        match (&self.store_type, &self.url) {
            (Some(t), _) => Ok(*t),
            (None, Some(url)) => StoreType::from_url(url).ok_or_else(|| {
                ConfigError::invalid(
                    "session.url",
                    url,
                    format!("a URL whose scheme is one of {}", StoreType::ACCEPTED),
                )
            }),
            (None, None) => Ok(StoreType::Memory),
        }
    }

    /// The touch interval in force: the configured one, else a tenth of the idle timeout.
    pub fn effective_touch_interval(&self) -> Option<Duration> {
        self.touch_interval.or(self.timeout.map(|t| t / 10))
    }

    /// Checks options that only make sense together.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.key.is_empty() || !self.key.bytes().all(|b| b.is_ascii_graphic() && !b";,=\"\\".contains(&b)) {
            return Err(ConfigError::invalid(
                "session.key",
                &self.key,
                "a cookie name of printable ASCII without ; , = \" \\",
            ));
        }
        if !self.path.starts_with('/') || self.path.bytes().any(|b| b == b';' || b.is_ascii_control()) {
            return Err(ConfigError::invalid("session.path", &self.path, "a path starting with / and without ;"));
        }
        if let Some(d) = &self.domain {
            if d.is_empty() || d.bytes().any(|b| b == b';' || b.is_ascii_whitespace() || b.is_ascii_control()) {
                return Err(ConfigError::invalid("session.domain", d, "a domain name"));
            }
        }
        if self.samesite == SameSite::None && !self.secure {
            return Err(ConfigError::Conflict {
                key: "session.samesite".into(),
                message: "SameSite=None requires secure = true (browsers drop such cookies otherwise)".into(),
            });
        }
        if self.timeout == Some(Duration::ZERO) {
            return Err(ConfigError::invalid("session.timeout", "0", "a positive number of seconds, or none"));
        }
        crate::compat::validate(self)?;
        if self.absolute_timeout == Some(Duration::ZERO) {
            return Err(ConfigError::invalid("session.absolute_timeout", "0", "a positive number of seconds, or none"));
        }
        if self.cleanup_interval == Some(Duration::ZERO) {
            return Err(ConfigError::invalid("session.cleanup_interval", "0", "a positive number of seconds, or none"));
        }
        if self.max_sessions == 0 {
            return Err(ConfigError::invalid("session.max_sessions", "0", "a positive number of sessions"));
        }
        if self.max_bytes == 0 {
            return Err(ConfigError::invalid("session.max_bytes", "0", "a positive number of bytes"));
        }
        if self.cookie_limit < 64 {
            return Err(ConfigError::invalid(
                "session.cookie_limit",
                &self.cookie_limit.to_string(),
                "at least 64 bytes",
            ));
        }
        Ok(())
    }

    /// Reads Beaker-style options from `(key, value)` pairs. Keys may carry the prefixes
    /// `beaker.session.` or `session.`; keys with other prefixes (`beaker.cache.`, an app's
    /// own) are ignored, so a whole application config map can be passed in.
    pub fn from_map<'a, I, K, V>(pairs: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str> + 'a,
        V: AsRef<str> + 'a,
    {
        let src = Source::from_prefixed(pairs, &["beaker.session.", "session."]);
        Self::from_source(&src)
    }

    /// Reads `BEAKER_SESSION_*` from the process environment (`BEAKER_SESSION_TIMEOUT` is
    /// `session.timeout`, `BEAKER_SESSION_COOKIE_EXPIRES` is `session.cookie_expires`, ...).
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_env_vars(std::env::vars())
    }

    /// Like [`from_env`](Self::from_env), from the given variables.
    pub fn from_env_vars(vars: impl IntoIterator<Item = (String, String)>) -> Result<Self, ConfigError> {
        Self::from_source(&Source::from_env(vars, "BEAKER_SESSION_"))
    }

    /// Parses a TOML document's table of session options (the keys without prefix).
    pub fn from_toml_str(doc: &str) -> Result<Self, ConfigError> {
        let table: toml::Table = toml::from_str(doc).map_err(|e| ConfigError::Invalid {
            key: "session".into(),
            value: String::new(),
            expected: format!("a TOML table of session options ({})", e.message()),
        })?;
        Self::from_source(&Source::from_toml(&table, "session.")?)
    }

    fn from_source(src: &Source) -> Result<Self, ConfigError> {
        let mut c = SessionConfig::default();
        for (name, (key, value)) in &src.entries {
            let (key, value) = (key.as_str(), value.as_str());
            match name.as_str() {
                "key" | "id" | "name" => c.key = non_blank(key, value)?.to_owned(),
                "secret" | "secrets" => c.secrets = secret_list(key, value)?,
                // Compat mode keeps these apart (Beaker's cookie-only sessions use both);
                // otherwise they are names of `secret`, sorted out after the loop.
                "validate_key" => c.beaker_validate_keys = secret_list(key, value)?,
                "encrypt_key" => c.beaker_encrypt_keys = secret_list(key, value)?,
                "type" => c.store_type = Some(StoreType::parse_option(key, value)?),
                "url" => c.url = Some(non_blank(key, value)?.to_owned()),
                "timeout" => c.timeout = as_opt_seconds(key, value)?,
                "absolute_timeout" => c.absolute_timeout = as_opt_seconds(key, value)?,
                "touch_interval" => c.touch_interval = as_opt_seconds(key, value)?,
                "cookie_expires" => c.cookie_expires = parse_cookie_expires(key, value)?,
                "save_accessed_time" => c.save_accessed_time = as_bool(key, value)?,
                "secure" => c.secure = as_bool(key, value)?,
                "httponly" => c.httponly = as_bool(key, value)?,
                "samesite" => c.samesite = parse_samesite(key, value)?,
                "domain" | "cookie_domain" => c.domain = Some(non_blank(key, value)?.to_owned()),
                "path" | "cookie_path" => c.path = non_blank(key, value)?.to_owned(),
                "data_serializer" => match non_blank(key, value)?.trim().to_ascii_lowercase().as_str() {
                    // Beaker's pickle: values stay JSON inside beaker-rs, the record is pickled.
                    "pickle" => c.compat_serializer = BeakerSerializer::Pickle,
                    _ => c.data_serializer = value.parse().map_err(|e| rename(e, key))?,
                },
                "invalidate_corrupt" => c.invalidate_corrupt = as_bool(key, value)?,
                "hash_ids" => c.hash_ids = as_bool(key, value)?,
                "on_store_error" => {
                    c.on_store_error = match non_blank(key, value)?.to_ascii_lowercase().as_str() {
                        "fail" => OnStoreError::Fail,
                        "continue" => OnStoreError::Continue,
                        _ => return Err(ConfigError::invalid(key, value, "fail or continue")),
                    }
                }
                "cache_headers" => {
                    c.cache_headers = match non_blank(key, value)?.to_ascii_lowercase().as_str() {
                        "auto" => CacheHeaders::Auto,
                        "off" => CacheHeaders::Off,
                        _ => return Err(ConfigError::invalid(key, value, "auto or off")),
                    }
                }
                "store_timeout" => c.store_timeout = as_seconds(key, value)?,
                "cookie_limit" => c.cookie_limit = as_u64(key, value)? as usize,
                "compat" => {
                    c.compat = non_blank(key, value)?.parse().map_err(|e| rename(e, key))?;
                    if c.compat == Compat::Beaker && !src.entries.contains_key("hash_ids") {
                        c.hash_ids = false;
                    }
                }
                "cleanup_interval" => c.cleanup_interval = as_opt_seconds(key, value)?,
                "max_sessions" => {
                    let n = as_u64(key, value)?;
                    if n == 0 {
                        return Err(ConfigError::invalid(key, value, "a positive number of sessions"));
                    }
                    c.max_sessions = usize::try_from(n).unwrap_or(usize::MAX);
                }
                "max_bytes" => {
                    let n = as_u64(key, value)?;
                    if n == 0 {
                        return Err(ConfigError::invalid(key, value, "a positive number of bytes"));
                    }
                    c.max_bytes = n;
                }
                other if REFUSED_OPTIONS.iter().any(|(name, _)| *name == other) => {
                    let why = REFUSED_OPTIONS.iter().find(|(name, _)| *name == other).map_or("", |(_, why)| why);
                    return Err(ConfigError::Conflict { key: key.to_owned(), message: why.to_owned() });
                }
                "retired_window" => c.retired_window = as_seconds(key, value)?,
                "max_sessions_per_principal" => {
                    c.max_sessions_per_principal = match non_blank(key, value)?.to_ascii_lowercase().as_str() {
                        "none" | "null" => None,
                        _ => match as_u64(key, value)
                            .map_err(|_| ConfigError::invalid(key, value, "a number of sessions, or 0 or none"))?
                        {
                            0 => None,
                            n => Some(usize::try_from(n).unwrap_or(usize::MAX)),
                        },
                    }
                }
                // Read by the Redis store (the facade refuses them for any other store).
                "near_cache" => {
                    c.backend_options.insert("near_cache".into(), as_bool(key, value)?.to_string());
                }
                "near_cache_entries" | "near_cache_bytes" => {
                    let n = as_u64(key, value)?;
                    if n == 0 {
                        return Err(ConfigError::invalid(key, value, "a positive number"));
                    }
                    c.backend_options.insert(name.clone(), n.to_string());
                }
                other if BACKEND_OPTIONS.contains(&other) => {
                    c.backend_options.insert(other.to_owned(), non_blank(key, value)?.to_owned());
                }
                _ => return Err(ConfigError::Unknown { key: key.to_owned() }),
            }
        }
        if c.compat != Compat::Beaker && c.compat_serializer == BeakerSerializer::Pickle {
            let (key, value) =
                src.entries.get("data_serializer").map(|(k, v)| (k.as_str(), v.as_str())).unwrap_or_default();
            return Err(ConfigError::invalid(
                key,
                value,
                format!(
                    "one of {} (pickle only with compat = beaker, to share sessions with Python Beaker)",
                    DataSerializer::ACCEPTED
                ),
            ));
        }
        if c.compat != Compat::Beaker {
            // Outside compat mode all four name the secret; the one read last (in name
            // order: encrypt_key, secret, secrets, validate_key) wins, as it always has.
            let validate = std::mem::take(&mut c.beaker_validate_keys);
            let encrypt = std::mem::take(&mut c.beaker_encrypt_keys);
            if !validate.is_empty() {
                c.secrets = validate;
            } else if c.secrets.is_empty() {
                c.secrets = encrypt;
            }
        } else if c.resolved_store_type()? != StoreType::Cookie {
            if let Some((key, _)) = ["encrypt_key", "validate_key"].iter().find_map(|k| src.entries.get(*k)) {
                // Beaker would encrypt server-side records with these; only `secret` is Beaker's.
                return Err(ConfigError::Conflict {
                    key: key.clone(),
                    message: "compat = beaker signs id cookies with `secret`; Beaker's encrypted records \
                              (encrypt_key, validate_key) are not supported, only its cookie-only sessions \
                              (type = cookie) use them"
                        .into(),
                });
            }
        }
        c.validate()?;
        Ok(c)
    }
}

/// A comma-separated list of secrets (commas only: a secret may contain spaces).
fn secret_list(key: &str, value: &str) -> Result<Vec<Secret>, ConfigError> {
    non_blank(key, value)?
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| Secret::new(s.as_bytes().to_vec()).map_err(|e| rename(e, key)))
        .collect()
}

fn rename(e: ConfigError, key: &str) -> ConfigError {
    match e {
        ConfigError::Invalid { value, expected, .. } => ConfigError::Invalid { key: key.to_owned(), value, expected },
        ConfigError::Blank { .. } => ConfigError::Blank { key: key.to_owned() },
        other => other,
    }
}

fn parse_cookie_expires(key: &str, value: &str) -> Result<CookieExpires, ConfigError> {
    let v = non_blank(key, value)?;
    if let Ok(b) = as_bool(key, v) {
        // "0"/"1" read as booleans, as in Beaker's coercion order (bool before int).
        return Ok(if b { CookieExpires::BrowserSession } else { CookieExpires::Never });
    }
    if v.bytes().all(|b| b.is_ascii_digit()) {
        return as_seconds(key, v).map(CookieExpires::After);
    }
    as_datetime(key, v).map(CookieExpires::At).map_err(|_| {
        ConfigError::invalid(
            key,
            value,
            "true (browser session), false (never), a number of seconds, or an RFC 3339 date-time",
        )
    })
}

fn parse_samesite(key: &str, value: &str) -> Result<SameSite, ConfigError> {
    match non_blank(key, value)?.to_ascii_lowercase().as_str() {
        "lax" => Ok(SameSite::Lax),
        "strict" => Ok(SameSite::Strict),
        "none" => Ok(SameSite::None),
        _ => Err(ConfigError::invalid(key, value, "Lax, Strict or None")),
    }
}

impl<'de> serde::Deserialize<'de> for SessionConfig {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = source::ScalarMap::deserialize(deserializer)?;
        let src = Source::from_scalars(raw, "session.");
        Self::from_source(&src).map_err(serde::de::Error::custom)
    }
}
