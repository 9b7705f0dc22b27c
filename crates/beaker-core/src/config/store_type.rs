//! Which backend a session store or cache region uses.

use std::fmt;
use std::str::FromStr;

use crate::error::ConfigError;

/// A backend kind, chosen by Beaker's `type` option or by the scheme of `url`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum StoreType {
    /// In-process map (`memory`).
    Memory,
    /// Cookie-only sessions: the whole session, encrypted, in the cookie (`cookie`).
    Cookie,
    /// Files under a directory (`file`).
    File,
    /// SQLite (`sqlite`).
    Sqlite,
    /// PostgreSQL (`postgres`, `postgresql`).
    Postgres,
    /// MySQL / MariaDB (`mysql`, `mariadb`).
    Mysql,
    /// Redis, single node or Sentinel (`redis`, `rediss`, `redis+sentinel`).
    Redis,
    /// Redis Cluster (`redis+cluster`).
    RedisCluster,
    /// Memcached (`memcached`).
    Memcached,
    /// An object store: Amazon S3 (`s3`), Google Cloud Storage (`gs`), Azure Blob Storage
    /// (`az`).
    ObjectStore,
}

impl StoreType {
    /// The names accepted in configuration.
    pub const ACCEPTED: &'static str =
        "memory, cookie, file, sqlite, postgres, mysql, redis, redis+cluster, memcached, s3, gs, az (Beaker's ext:redis, ext:memcached, ext:database and dbm are accepted too)";

    /// The store type named by a URL's scheme (`redis://h:6379/0` → `Redis`), if any.
    pub fn from_url(url: &str) -> Option<Self> {
        let scheme = url.split_once(':').map_or(url, |(s, _)| s);
        Self::from_name(scheme)
    }

    fn from_name(name: &str) -> Option<Self> {
        Some(match name.trim().to_ascii_lowercase().as_str() {
            "memory" | "mem" => StoreType::Memory,
            "cookie" => StoreType::Cookie,
            "file" | "dbm" => StoreType::File,
            "sqlite" | "sqlite3" => StoreType::Sqlite,
            "postgres" | "postgresql" | "ext:database" => StoreType::Postgres,
            "mysql" | "mariadb" => StoreType::Mysql,
            "redis" | "rediss" | "redis+sentinel" | "ext:redis" => StoreType::Redis,
            "redis+cluster" | "rediss+cluster" | "ext:rediscluster" => StoreType::RedisCluster,
            "memcached" | "memcache" | "ext:memcached" => StoreType::Memcached,
            "s3" | "gs" | "az" | "object-store" => StoreType::ObjectStore,
            _ => return None,
        })
    }

    /// Parses a `type` option, naming `key` in the error.
    pub fn parse_option(key: &str, value: &str) -> Result<Self, ConfigError> {
        Self::from_name(value).ok_or_else(|| ConfigError::invalid(key, value, Self::ACCEPTED))
    }

    /// The canonical name.
    pub fn as_str(&self) -> &'static str {
        match self {
            StoreType::Memory => "memory",
            StoreType::Cookie => "cookie",
            StoreType::File => "file",
            StoreType::Sqlite => "sqlite",
            StoreType::Postgres => "postgres",
            StoreType::Mysql => "mysql",
            StoreType::Redis => "redis",
            StoreType::RedisCluster => "redis+cluster",
            StoreType::Memcached => "memcached",
            StoreType::ObjectStore => "object-store",
        }
    }
}

impl FromStr for StoreType {
    type Err = ConfigError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse_option("type", s)
    }
}

impl fmt::Display for StoreType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_names() {
        assert_eq!(StoreType::from_url("redis://127.0.0.1:6379/0"), Some(StoreType::Redis));
        assert_eq!(StoreType::from_url("redis+cluster://a:1,b:2"), Some(StoreType::RedisCluster));
        assert_eq!(StoreType::from_url("sqlite:beaker.sqlite3"), Some(StoreType::Sqlite));
        assert_eq!(StoreType::from_url("memory:"), Some(StoreType::Memory));
        assert_eq!(StoreType::from_url("postgresql://root@localhost/test"), Some(StoreType::Postgres));
        assert_eq!(StoreType::from_url("gopher://x"), None);
        assert_eq!(StoreType::from_url("s3://bucket/sessions"), Some(StoreType::ObjectStore));
        assert_eq!(StoreType::from_url("az://container"), Some(StoreType::ObjectStore));
        assert_eq!("ext:memcached".parse::<StoreType>().unwrap(), StoreType::Memcached);
        let e = StoreType::parse_option("session.type", "mongo").unwrap_err().to_string();
        assert!(e.contains("session.type") && e.contains("mongo") && e.contains("redis+cluster"), "{e}");
    }
}
