//! [`SqlOptions`]: table names, schema, pool size, timeout, clock.

use std::sync::Arc;
use std::time::Duration;

use beaker_core::{Clock, SystemClock};

/// Options of a [`SqlClient`](crate::SqlClient), and so of the [`SqlStore`](crate::SqlStore)
/// and [`SqlCache`](crate::SqlCache) on it.
///
/// ```
/// use std::time::Duration;
/// use beaker_sql::SqlOptions;
///
/// let options = SqlOptions::new()
///     .table_name("app_sessions")
///     .schema("web")
///     .pool_size(4)
///     .timeout(Duration::from_secs(1));
/// assert_eq!(options.session_table, "app_sessions");
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct SqlOptions {
    /// The session table (Beaker's `table_name`, default `beaker_sessions`); its entries
    /// live in `<session_table>_entries`.
    pub session_table: String,
    /// The cache table (default `beaker_cache`).
    pub cache_table: String,
    /// PostgreSQL schema for the tables (Beaker's `schema_name`; created if missing).
    /// `None` (the default) uses the connection's `search_path`. Ignored by SQLite and MySQL.
    pub schema: Option<String>,
    /// Most connections the pool opens (default 10; an in-memory SQLite database uses 1).
    pub pool_size: u32,
    /// Time limit for one store call, waiting for a connection included (default 2 s).
    /// When it passes, the call fails with [`StoreError::Unavailable`](beaker_core::StoreError).
    pub timeout: Duration,
    /// Create missing tables on first use (default true). Off, call
    /// [`SqlStore::migrate`](crate::SqlStore::migrate) or create them yourself.
    pub create_tables: bool,
    /// The clock expiry is judged by (default: the system clock). All expiry comparisons
    /// use this clock, never the database server's, so that application and tests agree.
    pub clock: Arc<dyn Clock>,
}

impl Default for SqlOptions {
    fn default() -> Self {
        Self::new()
    }
}

impl SqlOptions {
    /// The defaults.
    pub fn new() -> Self {
        SqlOptions {
            session_table: "beaker_sessions".into(),
            cache_table: "beaker_cache".into(),
            schema: None,
            pool_size: 10,
            timeout: Duration::from_secs(2),
            create_tables: true,
            clock: Arc::new(SystemClock),
        }
    }

    /// Sets [`session_table`](Self::session_table).
    pub fn table_name(mut self, name: impl Into<String>) -> Self {
        self.session_table = name.into();
        self
    }

    /// Sets [`cache_table`](Self::cache_table).
    pub fn cache_table_name(mut self, name: impl Into<String>) -> Self {
        self.cache_table = name.into();
        self
    }

    /// Sets [`schema`](Self::schema).
    pub fn schema(mut self, schema: impl Into<String>) -> Self {
        self.schema = Some(schema.into());
        self
    }

    /// Sets [`pool_size`](Self::pool_size).
    pub fn pool_size(mut self, connections: u32) -> Self {
        self.pool_size = connections;
        self
    }

    /// Sets [`timeout`](Self::timeout).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sets [`create_tables`](Self::create_tables).
    pub fn create_tables(mut self, on: bool) -> Self {
        self.create_tables = on;
        self
    }

    /// Sets [`clock`](Self::clock).
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }
}
