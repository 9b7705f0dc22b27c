//! [`RedisOptions`] and the URL forms this crate accepts.

use std::time::Duration;

use crate::error::ConnectError;

/// Options shared by [`RedisStore`](crate::RedisStore) and [`RedisCache`](crate::RedisCache).
///
/// ```
/// use std::time::Duration;
/// use beaker_redis::RedisOptions;
///
/// let options = RedisOptions::default()
///     .with_timeout(Duration::from_millis(500))
///     .with_session_prefix("myapp:session:");
/// assert_eq!(options.cache_prefix, "beaker_cache:");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RedisOptions {
    /// The longest one store or cache call may take, connecting and retrying included;
    /// past it the call fails with `StoreError::Unavailable`. Default 2 s.
    pub timeout: Duration,
    /// Prefix of session keys (default `beaker:session:`). A session lives under
    /// `<prefix>{<store key>}`.
    pub session_prefix: String,
    /// Prefix of cache entries (default Beaker's `beaker_cache:`). An entry lives under
    /// `<prefix><namespace>:<key>`, with `:` and `\` in the namespace escaped by `\`.
    pub cache_prefix: String,
    /// Prefix of the cache's dogpile lock keys (default `beaker_lock:`); must differ from
    /// `cache_prefix` so that clearing a namespace never steals a held lock.
    pub lock_prefix: String,
    /// The `COUNT` hint of the `SCAN` that clears a namespace (default 500).
    pub scan_count: u32,
    /// Whether a client (any topology) called from a current-thread runtime other than the
    /// one it connected on (an actix-web worker) opens a connection of its own for that
    /// thread (default `true`; see [`RedisClient`](crate::RedisClient)). `false` keeps
    /// one connection per client.
    pub thread_connections: bool,
}

impl Default for RedisOptions {
    fn default() -> Self {
        RedisOptions {
            timeout: Duration::from_secs(2),
            session_prefix: "beaker:session:".to_owned(),
            cache_prefix: "beaker_cache:".to_owned(),
            lock_prefix: "beaker_lock:".to_owned(),
            scan_count: 500,
            thread_connections: true,
        }
    }
}

impl RedisOptions {
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

    /// Sets [`lock_prefix`](Self::lock_prefix).
    pub fn with_lock_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.lock_prefix = prefix.into();
        self
    }

    /// Sets [`thread_connections`](Self::thread_connections).
    pub fn with_thread_connections(mut self, on: bool) -> Self {
        self.thread_connections = on;
        self
    }

    pub(crate) fn validate(&self) -> Result<(), ConnectError> {
        let bad = |what: &str, why: &str| Err(ConnectError::InvalidOptions(format!("{what}: {why}")));
        if self.timeout.is_zero() {
            return bad("timeout", "must be positive");
        }
        // A brace in the session prefix would become the cluster hash tag of every session.
        if self.session_prefix.contains(['{', '}']) {
            return bad("session_prefix", "must not contain `{` or `}`");
        }
        if self.cache_prefix.is_empty() || self.cache_prefix == self.lock_prefix {
            return bad("cache_prefix", "must be non-empty and differ from lock_prefix");
        }
        if self.lock_prefix.starts_with(&self.cache_prefix) || self.cache_prefix.starts_with(&self.lock_prefix) {
            return bad("lock_prefix", "must not be a prefix of cache_prefix or the other way round");
        }
        Ok(())
    }
}

/// Where to connect, as read from a URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Target {
    /// `redis://` or `rediss://`: one server, passed to the client as is.
    Single(String),
    /// `redis+cluster://h1:p1,h2:p2/?…`: seed nodes, each as a `redis://` URL.
    Cluster(Vec<String>),
    /// `redis+sentinel://h1:p1,h2:p2/master_name/db`: sentinels and the master's name.
    Sentinel { sentinels: Vec<(String, u16)>, master: String, db: i64, userinfo: Option<String> },
}

impl Target {
    pub(crate) fn parse(url: &str) -> Result<Self, ConnectError> {
        let invalid = |why: &str| ConnectError::InvalidUrl { url: redact(url), reason: why.to_owned() };
        let (scheme, rest) = url.split_once("://").ok_or_else(|| invalid("expected scheme://…"))?;
        match scheme.to_ascii_lowercase().as_str() {
            "redis" | "rediss" | "valkey" | "valkeys" | "unix" | "redis+unix" => Ok(Target::Single(url.to_owned())),
            "redis+cluster" | "rediss+cluster" => {
                let inner = if scheme.starts_with("rediss") { "rediss" } else { "redis" };
                let (userinfo, hosts, tail) = split_authority(rest);
                let nodes = hosts
                    .split(',')
                    .filter(|h| !h.trim().is_empty())
                    .map(|h| {
                        format!("{inner}://{}{}{tail}", userinfo.map(|u| format!("{u}@")).unwrap_or_default(), h.trim())
                    })
                    .collect::<Vec<_>>();
                if nodes.is_empty() {
                    return Err(invalid("no cluster node given"));
                }
                Ok(Target::Cluster(nodes))
            }
            "redis+sentinel" => {
                let (userinfo, hosts, tail) = split_authority(rest);
                let sentinels = hosts
                    .split(',')
                    .filter(|h| !h.trim().is_empty())
                    .map(|h| match h.trim().rsplit_once(':') {
                        Some((host, port)) => {
                            port.parse().map(|p| (host.to_owned(), p)).map_err(|_| invalid("bad port"))
                        }
                        None => Ok((h.trim().to_owned(), 26379)),
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                if sentinels.is_empty() {
                    return Err(invalid("no sentinel given"));
                }
                let path = tail.split(['?', '#']).next().unwrap_or("");
                let mut parts = path.trim_start_matches('/').split('/');
                let master = parts.next().filter(|m| !m.is_empty()).ok_or_else(|| invalid("missing /master_name"))?;
                let db = match parts.next().filter(|d| !d.is_empty()) {
                    Some(d) => d.parse().map_err(|_| invalid("the database after the master name must be a number"))?,
                    None => 0,
                };
                Ok(Target::Sentinel { sentinels, master: master.to_owned(), db, userinfo: userinfo.map(str::to_owned) })
            }
            _ => Err(invalid("unknown scheme: expected redis, rediss, redis+cluster or redis+sentinel")),
        }
    }
}

/// Splits `user:pw@h1:p1,h2:p2/rest` into the user info, the host list and `/rest`.
fn split_authority(rest: &str) -> (Option<&str>, &str, &str) {
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    match authority.rsplit_once('@') {
        Some((userinfo, hosts)) => (Some(userinfo), hosts, tail),
        None => (None, authority, tail),
    }
}

/// The URL without its password, for error messages.
pub(crate) fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_owned() };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..end].rsplit_once('@') {
        Some((userinfo, hosts)) => {
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{scheme}://{user}:***@{hosts}{}", &rest[end..])
        }
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_cluster_and_sentinel_urls() {
        assert_eq!(
            Target::parse("redis://127.0.0.1:6379/2").unwrap(),
            Target::Single("redis://127.0.0.1:6379/2".into())
        );
        assert_eq!(
            Target::parse("redis+cluster://u:pw@a:7000,b:7001").unwrap(),
            Target::Cluster(vec!["redis://u:pw@a:7000".into(), "redis://u:pw@b:7001".into()])
        );
        assert_eq!(
            Target::parse("redis+sentinel://s1,s2:26380/mymaster/3").unwrap(),
            Target::Sentinel {
                sentinels: vec![("s1".into(), 26379), ("s2".into(), 26380)],
                master: "mymaster".into(),
                db: 3,
                userinfo: None,
            }
        );
        for bad in
            ["redis+sentinel://s1:26379", "redis+cluster://", "gopher://x", "no-scheme", "redis+sentinel://s:1/m/x"]
        {
            assert!(Target::parse(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn errors_never_show_the_password() {
        let err = Target::parse("bogus://user:hunter2@host:1/x").unwrap_err();
        assert!(!err.to_string().contains("hunter2"), "{err}");
        assert!(err.to_string().contains("user:***@host:1"), "{err}");
    }

    #[test]
    fn option_validation() {
        assert!(RedisOptions::default().validate().is_ok());
        assert!(RedisOptions::default().with_session_prefix("a{b}:").validate().is_err());
        assert!(RedisOptions::default().with_lock_prefix("beaker_cache:lock:").validate().is_err());
        assert!(RedisOptions::default().with_timeout(Duration::ZERO).validate().is_err());
    }
}
