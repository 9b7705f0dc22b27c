//! [`MemcachedClient`] and [`MemcachedOptions`]: servers, key distribution, deadlines and
//! the key rules every operation shares.

use std::fmt;
use std::future::Future;
use std::time::{Duration, SystemTime};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use beaker_core::StoreError;
use memcache::exp::{AsyncMetaClient, Router, Ttl};
use sha2::{Digest, Sha256};

use crate::error::{self, ConnectError};

/// Keys longer than this, or with bytes outside printable ASCII, are replaced by a hash
/// (memcached's own limit is 250 bytes of printable, space-free ASCII).
const MAX_PLAIN_KEY: usize = 240;

/// Relative expiry times above 30 days are read by memcached as absolute Unix times.
const THIRTY_DAYS: u64 = 30 * 24 * 3600;

/// Options shared by [`MemcachedStore`](crate::MemcachedStore) and
/// [`MemcachedCache`](crate::MemcachedCache).
///
/// ```
/// use std::time::Duration;
/// use beaker_memcached::MemcachedOptions;
///
/// let options = MemcachedOptions::default().with_timeout(Duration::from_millis(300));
/// assert_eq!(options.item_size_limit, 1024 * 1024);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct MemcachedOptions {
    /// The longest one call may take, connecting and CAS retries included; past it the
    /// call fails with `StoreError::Unavailable`. Default 2 s.
    pub timeout: Duration,
    /// Prefix of session keys (default `beaker:session:`).
    pub session_prefix: String,
    /// Prefix of cache keys, generation counters and locks (default `beaker_cache:`).
    pub cache_prefix: String,
    /// Values larger than this are refused with `StoreError::Rejected` before anything is
    /// sent (default 1 MiB, memcached's default `-I`). The server may still refuse items
    /// slightly under it (its limit includes the key and item header): that is
    /// `Rejected` too.
    pub item_size_limit: usize,
    /// How often `apply` and `touch` retry after losing a compare-and-swap race (default 64, with a random, growing pause between tries).
    pub max_cas_retries: u32,
}

impl Default for MemcachedOptions {
    fn default() -> Self {
        MemcachedOptions {
            timeout: Duration::from_secs(2),
            session_prefix: "beaker:session:".to_owned(),
            cache_prefix: "beaker_cache:".to_owned(),
            item_size_limit: 1024 * 1024,
            max_cas_retries: 64,
        }
    }
}

impl MemcachedOptions {
    /// Sets [`timeout`](Self::timeout).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sets [`session_prefix`](Self::session_prefix).
    pub fn with_session_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.session_prefix = prefix.into();
        self
    }

    /// Sets [`cache_prefix`](Self::cache_prefix).
    pub fn with_cache_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.cache_prefix = prefix.into();
        self
    }

    /// Sets [`item_size_limit`](Self::item_size_limit).
    pub fn with_item_size_limit(mut self, bytes: usize) -> Self {
        self.item_size_limit = bytes;
        self
    }

    /// Sets [`max_cas_retries`](Self::max_cas_retries).
    pub fn with_max_cas_retries(mut self, retries: u32) -> Self {
        self.max_cas_retries = retries;
        self
    }

    fn validate(&self) -> Result<(), ConnectError> {
        let printable = |s: &str| s.bytes().all(|b| b.is_ascii_graphic());
        if self.timeout.is_zero() {
            return Err(ConnectError::InvalidOptions("timeout must be positive".into()));
        }
        for (name, prefix) in [("session_prefix", &self.session_prefix), ("cache_prefix", &self.cache_prefix)] {
            if prefix.len() > 100 || !printable(prefix) {
                return Err(ConnectError::InvalidOptions(format!("{name} must be at most 100 printable ASCII bytes")));
            }
        }
        if self.session_prefix == self.cache_prefix {
            return Err(ConnectError::InvalidOptions("session_prefix and cache_prefix must differ".into()));
        }
        Ok(())
    }
}

/// A connection to one or several memcached servers, shared by
/// [`MemcachedStore`](crate::MemcachedStore) and [`MemcachedCache`](crate::MemcachedCache);
/// cheap to clone.
///
/// URL: `memcached://host1:11211,host2:11211` (also `memcache://`, and `;` between servers
/// as Beaker writes them; the port defaults to
/// 11211). Keys are spread over the servers by rendezvous hashing on a hash that is the
/// same in every process and every build, so all application instances agree on where a
/// session lives, and adding or removing a server moves only that server's keys.
///
/// ```no_run
/// use beaker_memcached::{MemcachedCache, MemcachedClient, MemcachedOptions, MemcachedStore};
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let client = MemcachedClient::connect("memcached://127.0.0.1:11211", MemcachedOptions::default()).await?;
/// let sessions = MemcachedStore::new(client.clone());
/// let cache = MemcachedCache::new(client);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct MemcachedClient {
    pub(crate) mc: AsyncMetaClient,
    pub(crate) options: MemcachedOptions,
    servers: Vec<String>,
}

impl fmt::Debug for MemcachedClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemcachedClient").field("servers", &self.servers).field("options", &self.options).finish()
    }
}

/// Rendezvous hashing on SHA-256, stable across processes and Rust versions (the
/// client's default mixes in `DefaultHasher`, whose algorithm std may change).
#[derive(Debug, Clone, Copy)]
struct StableRendezvous;

fn hash64(parts: &[&[u8]]) -> u64 {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_be_bytes());
        h.update(p);
    }
    u64::from_be_bytes(h.finalize()[..8].try_into().expect("8 bytes"))
}

impl Router for StableRendezvous {
    fn route(&self, key: &[u8], servers: &[String]) -> usize {
        (0..servers.len()).max_by_key(|&i| (hash64(&[key, servers[i].as_bytes()]), std::cmp::Reverse(i))).unwrap_or(0)
    }
}

/// The servers of a `memcached://` URL as `host:port`.
fn parse_url(url: &str) -> Result<Vec<String>, ConnectError> {
    let invalid = |why: &str| ConnectError::InvalidUrl { url: url.to_owned(), reason: why.to_owned() };
    let (scheme, rest) = url.split_once("://").ok_or_else(|| invalid("expected memcached://host:port,…"))?;
    if !matches!(scheme.to_ascii_lowercase().as_str(), "memcached" | "memcache") {
        return Err(invalid("the scheme must be memcached"));
    }
    let hosts = rest.split(['/', '?', '#']).next().unwrap_or("");
    let servers: Vec<String> = hosts
        .split([',', ';'])
        .map(str::trim)
        .filter(|h| !h.is_empty())
        .map(|h| {
            let has_port = h.rsplit_once(':').is_some_and(|(_, p)| p.parse::<u16>().is_ok()) && !h.ends_with(']');
            if has_port {
                h.to_owned()
            } else {
                format!("{h}:11211")
            }
        })
        .collect();
    if servers.is_empty() {
        return Err(invalid("no server given"));
    }
    Ok(servers)
}

impl MemcachedClient {
    /// Connects to the servers of `url` and checks that each answers.
    ///
    /// # Errors
    /// [`ConnectError::InvalidUrl`] / [`ConnectError::InvalidOptions`] for configuration
    /// mistakes; [`ConnectError::Store`] with `StoreError::Unavailable` when a server
    /// cannot be resolved or does not answer within [`MemcachedOptions::timeout`].
    pub async fn connect(url: &str, options: MemcachedOptions) -> Result<Self, ConnectError> {
        options.validate()?;
        let servers = parse_url(url)?;
        let timeout = options.timeout;
        let builder = AsyncMetaClient::builder()
            .router(StableRendezvous)
            .connect_timeout(Some(timeout))
            .io_timeout(Some(timeout));
        let mc = tokio::time::timeout(timeout, builder.connect_multiple_async(servers.clone()))
            .await
            .map_err(|_| error::timed_out("resolve servers", timeout))?
            .map_err(|e| error::map("resolve servers", e))?;
        let client = MemcachedClient { mc, options, servers };
        // The client dials lazily; fail here, not on the first request, when a server is down.
        let what = format!("connect to {}", client.servers.join(","));
        client.run(&what, |mc| async move { mc.noop().await }).await?;
        Ok(client)
    }

    /// The options this client was made with.
    pub fn options(&self) -> &MemcachedOptions {
        &self.options
    }

    /// The servers, as `host:port`.
    pub(crate) fn servers(&self) -> &[String] {
        &self.servers
    }

    /// Runs `op` under the call deadline and maps its error.
    pub(crate) async fn run<T, F, Fut>(&self, what: &str, op: F) -> Result<T, StoreError>
    where
        F: FnOnce(AsyncMetaClient) -> Fut,
        Fut: Future<Output = memcache::exp::Result<T>>,
    {
        let timeout = self.options.timeout;
        match tokio::time::timeout(timeout, op(self.mc.clone())).await {
            Ok(r) => r.map_err(|e| error::map(what, e)),
            Err(_) => Err(error::timed_out(what, timeout)),
        }
    }

    /// Runs a call of several exchanges under one deadline, so that the whole call (CAS
    /// retries included) takes at most [`MemcachedOptions::timeout`].
    pub(crate) async fn bounded<T>(
        &self,
        what: &str,
        call: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        let timeout = self.options.timeout;
        tokio::time::timeout(timeout, call).await.unwrap_or_else(|_| Err(error::timed_out(what, timeout)))
    }

    /// Refuses a value over the item size limit before sending it.
    pub(crate) fn check_size(&self, what: &str, len: usize) -> Result<(), StoreError> {
        if len > self.options.item_size_limit {
            return Err(StoreError::rejected(
                format!(
                    "memcached: {what}: {len} bytes is over the item size limit of {}",
                    self.options.item_size_limit
                ),
                None,
            ));
        }
        Ok(())
    }
}

/// `prefix + parts`, or `prefix + "#" + hash` when that would be too long or not plain
/// printable ASCII. The raw form never has `#` right after the prefix (callers start
/// their parts with a digit or a fixed word), so the two forms cannot collide.
pub(crate) fn make_key(prefix: &str, parts: &[&str]) -> String {
    let plain: String = parts.concat();
    if prefix.len() + plain.len() <= MAX_PLAIN_KEY
        && plain.bytes().all(|b| b.is_ascii_graphic())
        && !plain.starts_with('#')
    {
        return format!("{prefix}{plain}");
    }
    let digest = Sha256::digest(plain.as_bytes());
    format!("{prefix}#{}", URL_SAFE_NO_PAD.encode(digest))
}

/// `:` and `\` escaped, so that namespace `a` + key `b:c` and namespace `a:b` + key `c`
/// stay apart.
pub(crate) fn escape_namespace(namespace: &str) -> String {
    namespace.replace('\\', r"\\").replace(':', r"\:")
}

/// The memcached expiry for an absolute time: `None` = never. A time already past gets
/// the shortest expiry (1 s); callers check the record's own expiry on reading, so it is
/// never served. Longer than 30 days becomes an absolute Unix time, as the protocol wants.
pub(crate) fn ttl_until(expires: Option<SystemTime>, now: SystemTime) -> Ttl {
    match expires {
        None => Ttl::NEVER,
        Some(t) => {
            let left = t.duration_since(now).unwrap_or_default();
            let secs = (left.as_secs() + u64::from(left.subsec_nanos() > 0)).max(1);
            if secs > THIRTY_DAYS {
                Ttl::at(t)
            } else {
                Ttl::secs(secs as u32)
            }
        }
    }
}

/// The memcached expiry for a duration (`None` = never).
pub(crate) fn ttl_for(d: Option<Duration>) -> Ttl {
    let now = SystemTime::now();
    ttl_until(d.map(|d| now + d), now)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(parse_url("memcached://a:1,b").unwrap(), vec!["a:1", "b:11211"]);
        assert_eq!(parse_url("memcached://a:1;b:2").unwrap(), vec!["a:1", "b:2"]);
        assert_eq!(parse_url("memcache://127.0.0.1:21211/").unwrap(), vec!["127.0.0.1:21211"]);
        for bad in ["memcached://", "redis://a:1", "a:1"] {
            assert!(parse_url(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn long_or_odd_keys_are_hashed_and_distinct() {
        assert_eq!(make_key("p:", &["1:", "ns:", "k"]), "p:1:ns:k");
        let long = "x".repeat(300);
        let a = make_key("p:", &["1:", "ns:", &long]);
        let b = make_key("p:", &["1:", "ns:", &format!("{long}y")]);
        assert!(a.len() <= 250 && a.starts_with("p:#") && a != b);
        let spaced = make_key("p:", &["1:", "ns:", "a key"]);
        let unicode = make_key("p:", &["1:", "ns:", "ключ"]);
        assert!(spaced.starts_with("p:#") && unicode.starts_with("p:#") && spaced != unicode);
        assert!(spaced.bytes().all(|b| b.is_ascii_graphic()));
    }

    #[test]
    fn ttl_follows_memcached_rules() {
        let now = SystemTime::now();
        assert_eq!(ttl_until(None, now), Ttl::NEVER);
        assert_eq!(ttl_until(Some(now - Duration::from_secs(5)), now), Ttl::secs(1));
        assert_eq!(ttl_until(Some(now + Duration::from_millis(1500)), now), Ttl::secs(2));
        let far = now + Duration::from_secs(THIRTY_DAYS + 10);
        assert_eq!(ttl_until(Some(far), now), Ttl::at(far));
    }

    #[test]
    fn routing_is_stable_and_spreads() {
        let servers: Vec<String> = (0..3).map(|i| format!("10.0.0.{i}:11211")).collect();
        let picks: Vec<usize> =
            (0..300).map(|i| StableRendezvous.route(format!("k{i}").as_bytes(), &servers)).collect();
        for s in 0..3 {
            assert!(picks.iter().filter(|&&p| p == s).count() > 50, "server {s} is starved: {picks:?}");
        }
        // Removing a server moves only its own keys.
        for (i, &p) in picks.iter().enumerate() {
            if p != 2 {
                assert_eq!(StableRendezvous.route(format!("k{i}").as_bytes(), &servers[..2]), p);
            }
        }
        assert_eq!(StableRendezvous.route(b"k0", &servers), picks[0]);
    }
}
