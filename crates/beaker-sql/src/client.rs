//! [`SqlClient`]: the connection pool shared by the session store and the cache, the URL
//! that chooses the database, and the per-call deadline.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use beaker_core::StoreError;

use crate::error::{is_retryable, map_sqlx, timed_out, OpenError};
use crate::options::SqlOptions;
use crate::sql::Dialect;

/// The pool of whichever database the URL named.
#[derive(Clone)]
pub(crate) enum Pool {
    #[cfg(feature = "sqlite")]
    Sqlite(sqlx::SqlitePool),
    #[cfg(feature = "postgres")]
    Postgres(sqlx::PgPool),
    #[cfg(feature = "mysql")]
    Mysql(sqlx::MySqlPool),
}

/// Runs `$body` with `$p` bound to the concrete `&sqlx::Pool<DB>`: the same code, compiled
/// once per enabled database.
macro_rules! on_pool {
    ($pool:expr, $p:ident => $body:expr) => {
        match *$pool {
            #[cfg(feature = "sqlite")]
            $crate::client::Pool::Sqlite(ref $p) => $body,
            #[cfg(feature = "postgres")]
            $crate::client::Pool::Postgres(ref $p) => $body,
            #[cfg(feature = "mysql")]
            $crate::client::Pool::Mysql(ref $p) => $body,
        }
    };
}
pub(crate) use on_pool;

/// A connection pool to SQLite, PostgreSQL or MySQL/MariaDB, shared by
/// [`SqlStore`](crate::SqlStore) and [`SqlCache`](crate::SqlCache); cheap to clone.
///
/// The URL chooses the database:
///
/// | URL | database | feature |
/// |---|---|---|
/// | `sqlite:path/to/file.db`, `sqlite:///abs/path.db` | SQLite file, created if missing, WAL journal | `sqlite` |
/// | `sqlite:` | the file `beaker.sqlite3` in the working directory | `sqlite` |
/// | `sqlite::memory:` | a private in-memory database (one connection; gone when the pool closes) | `sqlite` |
/// | `postgres://user:pw@host:5432/db`, `postgresql://…` | PostgreSQL | `postgres` |
/// | `mysql://user:pw@host:3306/db`, `mariadb://…` | MySQL or MariaDB | `mysql` |
///
/// `sqlite3:` is read as `sqlite:`, and a SQLAlchemy driver suffix (`postgresql+psycopg2://`)
/// is dropped, so Beaker's URLs work unchanged. A SQLite URL with its own `mode=` keeps it.
///
/// Every call is bounded by [`SqlOptions::timeout`], waiting for a pooled connection
/// included, and fails with `StoreError::Unavailable` when it passes or when the server
/// cannot be reached. A pooled connection that sat idle for a second or more is pinged
/// before use (one that was just used was checked when it went back to the pool, off the
/// request path), and a call whose connection turns out dead, or whose transaction the
/// database chose as a deadlock victim, runs again (at most twice) within the same
/// deadline, so the first call after the server comes back succeeds.
///
/// ```no_run
/// use beaker_sql::{SqlCache, SqlClient, SqlOptions, SqlStore};
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let client = SqlClient::connect("postgres://app@127.0.0.1/app", SqlOptions::new()).await?;
/// let sessions = SqlStore::new(client.clone());
/// let cache = SqlCache::new(client);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct SqlClient {
    inner: Arc<Inner>,
}

struct Inner {
    pool: Pool,
    dialect: Dialect,
    options: SqlOptions,
    /// SQLite lets one writer in at a time and its busy handler polls with growing sleeps,
    /// so under contention a writer that has waited long polls rarely and can starve past
    /// the deadline while newer ones take the lock (found by `cargo xtask soak`: a few 503s
    /// a minute with 32 clients). This process's SQLite writers queue here instead, first
    /// come, first served (see [`SqlClient::run_write`]).
    writer: tokio::sync::Mutex<()>,
}

impl fmt::Debug for SqlClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqlClient")
            .field("database", &self.inner.dialect.name())
            .field("options", &self.inner.options)
            .finish()
    }
}

/// The file `sqlite:` alone means.
const DEFAULT_SQLITE_FILE: &str = "beaker.sqlite3";

/// Reads the database from the URL's scheme and rewrites Beaker-style aliases to the form
/// sqlx reads.
fn normalize(url: &str) -> Result<(Dialect, String), OpenError> {
    let Some((scheme, rest)) = url.trim().split_once(':') else {
        return Err(OpenError::InvalidOption {
            option: "url",
            value: url.to_owned(),
            expected: "a sqlite:, postgres:// or mysql:// URL",
        });
    };
    let scheme = scheme.to_ascii_lowercase();
    // SQLAlchemy URLs name a driver after a `+` (`postgresql+psycopg2://`).
    let base = scheme.split_once('+').map_or(scheme.as_str(), |(b, _)| b);
    match base {
        "sqlite" | "sqlite3" => {
            let rest = if rest.is_empty() || rest == "//" { DEFAULT_SQLITE_FILE } else { rest };
            Ok((Dialect::Sqlite, format!("sqlite:{rest}")))
        }
        "postgres" | "postgresql" => Ok((Dialect::Postgres, format!("postgres:{rest}"))),
        "mysql" | "mariadb" => Ok((Dialect::Mysql, format!("mysql:{rest}"))),
        _ => Err(OpenError::UnsupportedScheme {
            scheme: scheme.clone(),
            hint: "beaker-sql reads sqlite:, postgres:// and mysql:// URLs",
        }),
    }
}

/// A valid unquoted identifier on every database: it is spliced into SQL text. At most 40
/// characters, so that derived names (`<table>_entries_session`) fit PostgreSQL's 63 and
/// MySQL's 64.
pub(crate) fn check_identifier(option: &'static str, value: &str) -> Result<(), OpenError> {
    let mut chars = value.chars();
    let ok = value.len() <= 40
        && chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(OpenError::InvalidOption {
            option,
            value: value.to_owned(),
            expected: "1 to 40 ASCII letters, digits and underscores, not starting with a digit",
        })
    }
}

fn check_options(options: &SqlOptions) -> Result<(), OpenError> {
    check_identifier("table_name", &options.session_table)?;
    check_identifier("cache_table_name", &options.cache_table)?;
    if let Some(schema) = &options.schema {
        check_identifier("schema_name", schema)?;
    }
    if options.pool_size == 0 {
        return Err(OpenError::InvalidOption { option: "pool_size", value: "0".into(), expected: "at least 1" });
    }
    if options.timeout.is_zero() {
        return Err(OpenError::InvalidOption { option: "timeout", value: "0s".into(), expected: "more than zero" });
    }
    Ok(())
}

#[cfg(not(all(feature = "sqlite", feature = "postgres", feature = "mysql")))]
fn not_enabled(scheme: &str, hint: &'static str) -> OpenError {
    OpenError::UnsupportedScheme { scheme: scheme.to_owned(), hint }
}

fn bad_url(url: &str, e: sqlx::Error) -> OpenError {
    // The message of a parse error never contains the password; the URL might.
    let shown = match url.split_once('@') {
        Some((head, tail)) => match head.rsplit_once(':') {
            Some((user, _)) if user.contains("//") => format!("{user}:***@{tail}"),
            _ => url.to_owned(),
        },
        None => url.to_owned(),
    };
    OpenError::InvalidOption { option: "url", value: format!("{shown} ({e})"), expected: "a URL sqlx can read" }
}

impl SqlClient {
    /// Opens a pool to the database `url` names (see the table above) and checks that it
    /// answers, within [`SqlOptions::timeout`]. Creates no tables: the store and the cache
    /// create their own on first use.
    pub async fn connect(url: &str, options: SqlOptions) -> Result<Self, OpenError> {
        check_options(&options)?;
        let (dialect, url) = normalize(url)?;
        let pool = match dialect {
            Dialect::Sqlite => sqlite(&url, &options).await?,
            Dialect::Postgres => postgres(&url, &options).await?,
            Dialect::Mysql => mysql(&url, &options).await?,
        };
        tracing::debug!(database = dialect.name(), "sql store: connected");
        Ok(SqlClient { inner: Arc::new(Inner { pool, dialect, options, writer: tokio::sync::Mutex::new(()) }) })
    }

    /// The options the client was opened with.
    pub fn options(&self) -> &SqlOptions {
        &self.inner.options
    }

    /// `sqlite`, `postgres` or `mysql`.
    pub fn database(&self) -> &'static str {
        self.inner.dialect.name()
    }

    /// Closes every connection; later calls fail with `StoreError::Unavailable`.
    pub async fn close(&self) {
        on_pool!(&self.inner.pool, p => p.close().await)
    }

    pub(crate) fn pool(&self) -> &Pool {
        &self.inner.pool
    }

    pub(crate) fn dialect(&self) -> Dialect {
        self.inner.dialect
    }

    /// PostgreSQL's schema, if any (the other databases ignore it).
    pub(crate) fn schema(&self) -> Option<&str> {
        match self.inner.dialect {
            Dialect::Postgres => self.inner.options.schema.as_deref(),
            Dialect::Sqlite | Dialect::Mysql => None,
        }
    }

    /// Now, by the configured clock, in Unix milliseconds.
    pub(crate) fn now_ms(&self) -> i64 {
        to_ms(self.inner.options.clock.now())
    }

    /// Runs `op` within the deadline, again (at most twice) when its connection broke or
    /// the database chose it as a deadlock victim (see `is_retryable`), and maps its error.
    pub(crate) async fn run<T, F, Fut>(&self, what: &str, op: F) -> Result<T, StoreError>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T, sqlx::Error>>,
    {
        self.run_within(what, op, self.inner.options.timeout).await
    }

    /// [`run`](Self::run) for a call that writes: on SQLite it first waits for its turn
    /// among this process's writers, within the same deadline.
    pub(crate) async fn run_write<T, F, Fut>(&self, what: &str, op: F) -> Result<T, StoreError>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T, sqlx::Error>>,
    {
        let timeout = self.inner.options.timeout;
        if self.inner.dialect != Dialect::Sqlite {
            return self.run_within(what, op, timeout).await;
        }
        let started = tokio::time::Instant::now();
        let Ok(_turn) = tokio::time::timeout(timeout, self.inner.writer.lock()).await else {
            return Err(timed_out(what, timeout));
        };
        self.run_within(what, op, timeout.saturating_sub(started.elapsed())).await
    }

    async fn run_within<T, F, Fut>(&self, what: &str, op: F, timeout: Duration) -> Result<T, StoreError>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T, sqlx::Error>>,
    {
        let attempts = async {
            let mut retries = 0;
            loop {
                match op().await {
                    Ok(v) => return Ok(v),
                    Err(e) if retries < 2 && is_retryable(&e) => {
                        retries += 1;
                        tracing::debug!(what, error = %e, "sql store: call retried");
                    }
                    Err(e) => return Err(map_sqlx(what, e)),
                }
            }
        };
        match tokio::time::timeout(timeout, attempts).await {
            Ok(result) => result,
            Err(_) => Err(timed_out(what, timeout)),
        }
    }

    /// Runs DDL statements in order (each `IF NOT EXISTS`, so running them twice is fine).
    pub(crate) async fn run_ddl(&self, what: &str, statements: &[String]) -> Result<(), StoreError> {
        // Two processes creating the same table at once can trip PostgreSQL's catalog
        // unique index; a later attempt finds the table and goes on to the next statement,
        // where a third process may trip it again: a few attempts, a little apart.
        for attempt in 0..DDL_ATTEMPTS {
            let result = self
                .run(what, || async {
                    on_pool!(self.pool(), p => {
                        for statement in statements {
                            sqlx::raw_sql(statement).execute(p).await?;
                        }
                        Ok(())
                    })
                })
                .await;
            match result {
                Err(StoreError::Backend { source: Some(source), .. })
                    if attempt + 1 < DDL_ATTEMPTS && is_unique_violation(source.as_ref()) =>
                {
                    tokio::time::sleep(Duration::from_millis(10 * (attempt + 1))).await;
                    continue;
                }
                other => return other,
            }
        }
        Ok(())
    }
}

/// Attempts of a DDL list that lost a race with another process creating the same tables.
const DDL_ATTEMPTS: u64 = 6;

fn is_unique_violation(e: &(dyn std::error::Error + 'static)) -> bool {
    matches!(e.downcast_ref::<sqlx::Error>(), Some(sqlx::Error::Database(db)) if db.is_unique_violation())
}

/// Unix milliseconds, saturating (times before the epoch are 0).
pub(crate) fn to_ms(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Reads Unix milliseconds back; a negative value is a corrupt row.
pub(crate) fn from_ms(ms: i64, column: &str) -> Result<SystemTime, StoreError> {
    u64::try_from(ms)
        .map(|ms| UNIX_EPOCH + Duration::from_millis(ms))
        .map_err(|_| StoreError::corrupt(format!("sql store: negative {column} ({ms})")))
}

/// Connects with the deadline; a server that does not answer in time is `Unavailable`.
#[cfg(any(feature = "sqlite", feature = "postgres", feature = "mysql"))]
async fn connect_within<DB: sqlx::Database>(
    options: &SqlOptions,
    connecting: impl Future<Output = Result<sqlx::Pool<DB>, sqlx::Error>>,
) -> Result<sqlx::Pool<DB>, OpenError> {
    match tokio::time::timeout(options.timeout, connecting).await {
        Ok(Ok(pool)) => Ok(pool),
        // Start-up errors are read by people: say what went wrong in the message itself.
        Ok(Err(e)) => Err(OpenError::Store(map_sqlx(&format!("connect ({e})"), e))),
        Err(_) => Err(OpenError::Store(timed_out("connect", options.timeout))),
    }
}

/// How long a pooled connection may sit idle before it is pinged on its way out.
#[cfg(any(feature = "sqlite", feature = "postgres", feature = "mysql"))]
const PING_WHEN_IDLE_FOR: Duration = Duration::from_secs(1);

/// The pool settings every database shares. sqlx pings each connection before handing it
/// out by default: a round trip on every call. It already pings each connection when it
/// goes back to the pool (off the request path), so only one that sat idle since then
/// (through a possible server restart) is pinged again; a connection that dies in
/// between fails its call with an I/O error, which `run` retries on another.
#[cfg(any(feature = "sqlite", feature = "postgres", feature = "mysql"))]
fn pool_options<DB: sqlx::Database>(options: &SqlOptions) -> sqlx::pool::PoolOptions<DB> {
    use sqlx::Connection as _;

    sqlx::pool::PoolOptions::new()
        .max_connections(options.pool_size)
        .acquire_timeout(options.timeout)
        .test_before_acquire(false)
        .before_acquire(|conn: &mut DB::Connection, meta| {
            Box::pin(async move {
                if meta.idle_for >= PING_WHEN_IDLE_FOR {
                    conn.ping().await?;
                }
                Ok(true)
            })
        })
}

#[cfg(feature = "sqlite")]
async fn sqlite(url: &str, options: &SqlOptions) -> Result<Pool, OpenError> {
    use std::str::FromStr;

    use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode};

    let mut connect = SqliteConnectOptions::from_str(url).map_err(|e| bad_url(url, e))?;
    let memory = url.contains(":memory:") || url.contains("mode=memory");
    if !url.contains("mode=") {
        connect = connect.create_if_missing(true);
    }
    if !memory && !url.contains("mode=ro") {
        connect = connect.journal_mode(SqliteJournalMode::Wal);
    }
    // A writer waits for the lock as long as the call may take, then the deadline decides.
    connect = connect.busy_timeout(options.timeout).foreign_keys(true);
    let pool = pool_options::<sqlx::Sqlite>(options);
    let pool = if memory {
        // An in-memory database lives as long as its last connection: keep exactly one.
        pool.max_connections(1).min_connections(1).idle_timeout(None).max_lifetime(None)
    } else {
        pool
    };
    Ok(Pool::Sqlite(connect_within(options, pool.connect_with(connect)).await?))
}

#[cfg(not(feature = "sqlite"))]
async fn sqlite(_: &str, _: &SqlOptions) -> Result<Pool, OpenError> {
    Err(not_enabled("sqlite", "enable the `sqlite` feature of beaker-sql (or `beaker-rs`)"))
}

#[cfg(feature = "postgres")]
async fn postgres(url: &str, options: &SqlOptions) -> Result<Pool, OpenError> {
    use std::str::FromStr;

    use sqlx::postgres::PgConnectOptions;

    // The server gives up on a statement (or a lock wait) when the caller would have
    // stopped waiting anyway, so an abandoned call does not keep holding locks.
    let ms = options.timeout.as_millis().to_string();
    let connect = PgConnectOptions::from_str(url)
        .map_err(|e| bad_url(url, e))?
        .options([("statement_timeout", ms.as_str()), ("lock_timeout", ms.as_str())]);
    let pool = pool_options::<sqlx::Postgres>(options);
    Ok(Pool::Postgres(connect_within(options, pool.connect_with(connect)).await?))
}

#[cfg(not(feature = "postgres"))]
async fn postgres(_: &str, _: &SqlOptions) -> Result<Pool, OpenError> {
    Err(not_enabled("postgres", "enable the `postgres` feature of beaker-sql (or `beaker-rs`)"))
}

#[cfg(feature = "mysql")]
async fn mysql(url: &str, options: &SqlOptions) -> Result<Pool, OpenError> {
    use std::str::FromStr;

    use sqlx::mysql::MySqlConnectOptions;
    use sqlx::Executor as _;

    let connect = MySqlConnectOptions::from_str(url).map_err(|e| bad_url(url, e))?;
    let lock_wait = options.timeout.as_secs().max(1);
    let pool = pool_options::<sqlx::MySql>(options).after_connect(move |conn, _| {
        Box::pin(async move {
            // READ COMMITTED: no gap locks, so concurrent requests on different sessions
            // never deadlock on the space between their keys.
            conn.execute("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED").await?;
            conn.execute(format!("SET SESSION innodb_lock_wait_timeout = {lock_wait}").as_str()).await?;
            Ok(())
        })
    });
    Ok(Pool::Mysql(connect_within(options, pool.connect_with(connect)).await?))
}

#[cfg(not(feature = "mysql"))]
async fn mysql(_: &str, _: &SqlOptions) -> Result<Pool, OpenError> {
    Err(not_enabled("mysql", "enable the `mysql` feature of beaker-sql (or `beaker-rs`)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_choose_the_database() {
        let n = |u: &str| normalize(u).unwrap();
        assert_eq!(n("sqlite:"), (Dialect::Sqlite, "sqlite:beaker.sqlite3".into()));
        assert_eq!(n("sqlite3:data/s.db"), (Dialect::Sqlite, "sqlite:data/s.db".into()));
        assert_eq!(n("sqlite::memory:"), (Dialect::Sqlite, "sqlite::memory:".into()));
        assert_eq!(n("postgresql+psycopg2://u@h/db"), (Dialect::Postgres, "postgres://u@h/db".into()));
        assert_eq!(n("MariaDB://root@h/db"), (Dialect::Mysql, "mysql://root@h/db".into()));
        assert!(matches!(normalize("redis://h"), Err(OpenError::UnsupportedScheme { .. })));
        assert!(matches!(normalize("nothing"), Err(OpenError::InvalidOption { option: "url", .. })));
    }

    #[test]
    fn identifiers_are_checked_because_they_are_spliced_into_sql() {
        assert!(check_identifier("t", "beaker_sessions").is_ok());
        for bad in ["", "1abc", "a-b", "a;drop table x", "a.b", "ключ", &"x".repeat(41)] {
            assert!(check_identifier("t", bad).is_err(), "{bad:?} accepted");
        }
        assert!(check_options(&SqlOptions::new().pool_size(0)).is_err());
        assert!(check_options(&SqlOptions::new().schema("bad schema")).is_err());
    }

    #[test]
    fn passwords_are_masked_in_url_errors() {
        let e = bad_url("postgres://u:secret@h/db", sqlx::Error::Protocol("x".into())).to_string();
        assert!(!e.contains("secret") && e.contains("u:***@h/db"), "{e}");
    }

    #[test]
    fn milliseconds_round_trip_and_negative_is_corrupt() {
        let t = UNIX_EPOCH + Duration::from_millis(1_700_000_000_123);
        assert_eq!(from_ms(to_ms(t), "x").unwrap(), t);
        assert_eq!(to_ms(UNIX_EPOCH - Duration::from_secs(1)), 0);
        assert!(matches!(from_ms(-1, "created"), Err(StoreError::Corrupt { .. })));
    }
}
