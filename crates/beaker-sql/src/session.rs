//! [`SqlStore`]: sessions as one row plus one row per entry, changed per key in a
//! transaction.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use beaker_core::store::{
    async_trait, Changes, Listed, Lookup, Owner, Page, Record, SessionHandle, SessionStore, StoreKey,
};
use beaker_core::{SessionConfig, StoreError};
use tokio::sync::OnceCell;

use crate::client::{from_ms, on_pool, to_ms, SqlClient};
use crate::error::OpenError;
use crate::options::SqlOptions;
use crate::sql::{Dialect, SessionSql, ENTRY_NAME_MAX, PRINCIPAL_MAX, ROWS_PER_INSERT};

/// Upserts the `(name, value)` pairs `$entries` of session `$key` in batches inside the
/// transaction `$tx`. A macro, not a function: it runs inside `on_pool!`, once per
/// database type, where the transaction's type differs.
macro_rules! upsert_entries {
    ($tx:ident, $sql:expr, $key:expr, $entries:expr) => {
        for chunk in $entries.chunks(ROWS_PER_INSERT) {
            let text = $sql.upsert_entries(chunk.len());
            let mut query = sqlx::query(&text);
            for (name, value) in chunk {
                query = query.bind($key.as_str()).bind(name.as_bytes()).bind(value.as_slice());
            }
            query.execute(&mut *$tx).await?;
        }
    };
}

/// Applies `$changes` (with its `$removals` and `$sets` lists) to the entries of session
/// `$key` inside the transaction `$tx`; the session row is already checked and locked.
macro_rules! write_changes {
    ($tx:ident, $sql:expr, $key:expr, $changes:expr, $removals:expr, $sets:expr) => {
        if $changes.clear {
            sqlx::query(&$sql.clear_entries).bind($key.as_str()).execute(&mut *$tx).await?;
        }
        for chunk in $removals.chunks(ROWS_PER_INSERT) {
            let text = $sql.remove_entries(chunk.len());
            let mut query = sqlx::query(&text).bind($key.as_str());
            for name in chunk {
                query = query.bind(name.as_bytes());
            }
            query.execute(&mut *$tx).await?;
        }
        upsert_entries!($tx, $sql, $key, $sets);
    };
}

/// Updates the timestamps (and, when `$owner` is `Some`, the owner) of the live session
/// `$key` inside the transaction `$tx`, which checks the record is live and locks its row;
/// the rows changed (0 or 1).
macro_rules! lock_row {
    ($tx:ident, $sql:expr, $key:expr, $accessed:expr, $expires:expr, $owner:expr, $now:expr) => {
        match $owner {
            None => sqlx::query(&$sql.touch).bind($accessed).bind($expires).bind($key.as_str()).bind($now),
            Some((principal, device)) => sqlx::query(&$sql.touch_owned)
                .bind($accessed)
                .bind($expires)
                .bind(principal)
                .bind(device)
                .bind($key.as_str())
                .bind($now),
        }
        .execute(&mut *$tx)
        .await?
        .rows_affected()
    };
}

/// A [`SessionStore`] on SQLite, PostgreSQL or MySQL/MariaDB.
///
/// # Tables
///
/// ```text
/// <table>          (id PRIMARY KEY, created, accessed, expires,   -- one row per session
///                   principal, device, handle)
/// <table>_entries  (id, name, value, PRIMARY KEY (id, name))       -- one row per session key
/// <table>_retired  (id PRIMARY KEY, retired_until)                  -- one row per retired key
/// ```
///
/// `id` is the [`StoreKey`] (by default a hash of the session id, never the id itself);
/// times are Unix milliseconds (`BIGINT`), `expires` is `NULL` for "no server-side expiry";
/// `<table>_retired` holds the tombstones of the ended-session rule: a key ended by `end`
/// or moved away by `rename` less than its retire window ago (`retired_until` in Unix
/// milliseconds; no data, and never the key the session moved to). `name` and `value` are binary (`BLOB` / `BYTEA` / `VARBINARY` + `LONGBLOB`), so keys
/// compare byte for byte whatever the server's collation. Entries go with their session
/// by `ON DELETE CASCADE`. On PostgreSQL the tables live in
/// [`SqlOptions::schema`] when one is set. They are created on first use (or by
/// [`migrate`](Self::migrate)) unless [`SqlOptions::create_tables`] is off; on MySQL a
/// session key may be at most 512 bytes (a longer one is `StoreError::Rejected`).
///
/// # The principal index
///
/// A session's owner is kept in its row: `principal` (indexed; binary on MySQL, so that
/// principals compare byte for byte; at most 512 bytes, a longer one is
/// `StoreError::Rejected`) and `device`, both `NULL` without an owner, written by the same
/// `INSERT` or `UPDATE` as the timestamps; `handle` (indexed) is the session's
/// [`SessionHandle`], so `find` is one indexed query. `rename` copies them with the row.
/// `sessions_of` is one indexed query, `count` one `COUNT(*)`, `scan` one range query on
/// the primary key per page (the cursor is the last id of the previous page). All of them
/// skip expired rows, and a row goes with its index entries when it is deleted.
///
/// A session table made by an earlier version, without these columns, gains them (and
/// their indexes) when the store starts, safely from several processes at once; its rows
/// get their handle the first time `find` misses. With [`SqlOptions::create_tables`] off,
/// add them yourself, e.g. on PostgreSQL:
///
/// ```text
/// ALTER TABLE beaker_sessions ADD COLUMN principal TEXT NULL, ADD COLUMN device TEXT NULL,
///     ADD COLUMN handle VARCHAR(32) NULL;
/// CREATE INDEX beaker_sessions_principal ON beaker_sessions (principal);
/// CREATE INDEX beaker_sessions_handle ON beaker_sessions (handle);
/// ```
///
/// (MySQL: `principal VARBINARY(512)`, `device LONGBLOB`, `handle VARBINARY(32)`; SQLite:
/// `TEXT` for all three.)
///
/// Expired rows are never returned: every statement compares `expires` with
/// [`SqlOptions::clock`]. They stay in the table until [`cleanup`](SessionStore::cleanup)
/// (`DELETE`s of up to 1000 rows each) or [`spawn_cleanup`](Self::spawn_cleanup) removes them.
///
/// # Round trips
///
/// Each statement, `BEGIN` and `COMMIT` is one round trip (sqlx does not pipeline):
///
/// | call | round trips | statements |
/// |---|---|---|
/// | `load`, `lookup` | 1 | `SELECT … LEFT JOIN` of the session and its entries, `UNION ALL` its tombstone |
/// | `touch` | 1 | `UPDATE … WHERE id = ? AND <live>` |
/// | `delete` | 1 | `DELETE` (entries by cascade) |
/// | `end` | 4 (1 without a retire window) | `BEGIN`, `DELETE`, upsert the tombstone, `COMMIT` |
/// | `rename` | 7 to 9 | `BEGIN`, `UPDATE` timestamps of the old row (checks it is live, locks it), copy the row under the new key, move the entries, the changes as in `apply`, `DELETE` the old row, file its tombstone, `COMMIT` |
/// | `create` | 4 (3 without entries) | `BEGIN`, `INSERT` session, `INSERT` entries, `COMMIT` (+2 when an expired record is replaced) |
/// | `sessions_of`, `count`, `scan`, `find` | 1 | one indexed `SELECT` (`find` on a table upgraded from an earlier version: also a one-time pass filling in handles) |
/// | `apply` | 3 to 5 | `BEGIN`, `UPDATE` timestamps (which also checks the record is live and locks it), `DELETE` removed or cleared entries (if any), upsert set entries (if any), `COMMIT` |
///
/// An entry list longer than 500 keys takes one more statement per 500. A pooled
/// connection idle for a second or more costs one ping before use; the ping sqlx sends
/// when a connection goes back to the pool runs in the background, off the request path.
/// On SQLite a "round trip" is a hand-off to the connection's worker thread, not the
/// network.
///
/// So a session request costs: untouched 0; read-only 1 (`load`, plus 1 for a `touch`
/// once per touch interval when an idle timeout is set); modified 1 + 3..5 (`load` +
/// `apply`), or 4 for a brand-new session (`create`, no `load`: it has no id yet).
///
/// # Concurrency
///
/// `apply` runs in one transaction that starts by updating the session row, which locks
/// it (SQLite: `BEGIN IMMEDIATE` takes the database's write lock), so concurrent `apply`
/// calls on one session run one after the other, and each changes only the entries it
/// names: two requests changing different keys both survive. `create` inserts the
/// session row with `ON CONFLICT DO NOTHING` (MySQL: the duplicate-key error is caught),
/// so it never overwrites a live record; an expired one under the same key is deleted and
/// replaced in the same transaction. A transaction chosen as a deadlock victim is retried.
///
/// `rename` (regeneration) is one transaction that starts like `apply`, by updating the
/// old row, so it waits for (or makes wait) every `apply` on the old key: an `apply` that
/// ran first is in the moved record; one that runs after finds no live row under the old
/// key and returns `false`. `end` deletes the row and files the tombstone in one
/// transaction. `apply`, `touch` and `rename` never write under a retired key: there is
/// no session row left to update. Tombstones go with [`cleanup`](SessionStore::cleanup).
///
/// ```no_run
/// use beaker_core::{SessionConfig, SessionManager};
/// use beaker_sql::{SqlOptions, SqlStore};
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let store = SqlStore::connect("sqlite:sessions.db", SqlOptions::new()).await?;
/// let config = SessionConfig::new().with_secret("change me: at least 16 bytes")?;
/// let manager = SessionManager::builder(config).store(store).build()?;
/// # Ok(()) }
/// ```

#[derive(Debug, Clone)]
pub struct SqlStore {
    client: SqlClient,
    sql: Arc<SessionSql>,
    ready: Arc<OnceCell<()>>,
}

type Row = (i64, i64, Option<i64>, Option<Vec<u8>>, Option<Vec<u8>>, Option<String>, Option<String>);

/// id, created, accessed, expires, principal, device, size.
type ListedRow = (String, i64, i64, Option<i64>, Option<String>, Option<String>, i64);

/// Rows without a handle `find` fills in per statement.
const FILL_HANDLES_PAGE: i64 = 500;

/// Most rows one `scan` page reads, whatever the caller asks for.
const SCAN_PAGE_MAX: usize = 10_000;

impl SqlStore {
    /// A store on an existing client (which a [`SqlCache`](crate::SqlCache) may share).
    /// Its tables are created on first use, unless [`SqlOptions::create_tables`] is off.
    pub fn new(client: SqlClient) -> Self {
        let options = client.options();
        let sql = SessionSql::new(client.dialect(), client.schema(), &options.session_table);
        SqlStore { client, sql: Arc::new(sql), ready: Arc::new(OnceCell::new()) }
    }

    /// Connects (see [`SqlClient::connect`]) and creates the tables now unless
    /// [`SqlOptions::create_tables`] is off, so that a bad URL, an unreachable server or
    /// missing rights show at start-up.
    pub async fn connect(url: &str, options: SqlOptions) -> Result<Self, OpenError> {
        let store = Self::new(SqlClient::connect(url, options).await?);
        store.ensure_tables().await?;
        Ok(store)
    }

    /// Connects as a `SessionConfig` says: its `url` (a `type = sqlite` without a URL
    /// means `sqlite:`, the default file), `store_timeout`, and the backend options
    /// `table_name`, `schema_name` and `pool_size`.
    pub async fn from_session_config(config: &SessionConfig) -> Result<Self, OpenError> {
        let url = match (&config.url, config.store_type) {
            (Some(url), _) => url.clone(),
            (None, Some(beaker_core::StoreType::Sqlite)) => "sqlite:".to_owned(),
            (None, _) => {
                return Err(OpenError::InvalidOption {
                    option: "url",
                    value: String::new(),
                    expected: "a postgres:// or mysql:// URL (only sqlite has a default)",
                })
            }
        };
        let mut options = SqlOptions::new().timeout(config.store_timeout);
        let backend = &config.backend_options;
        if let Some(table) = backend.get("table_name") {
            options = options.table_name(table.clone());
        }
        if let Some(schema) = backend.get("schema_name") {
            options = options.schema(schema.clone());
        }
        if let Some(size) = backend.get("pool_size") {
            let size = size.trim().parse().map_err(|_| OpenError::InvalidOption {
                option: "pool_size",
                value: size.clone(),
                expected: "a whole number of connections",
            })?;
            options = options.pool_size(size);
        }
        Self::connect(&url, options).await
    }

    /// The underlying client.
    pub fn client(&self) -> &SqlClient {
        &self.client
    }

    /// The session table and the entries table, as named in SQL (schema-qualified on
    /// PostgreSQL when a schema is set).
    pub fn tables(&self) -> (&str, &str) {
        (self.sql.sessions_table(), self.sql.entries_table())
    }

    /// The table of retired keys (tombstones), as named in SQL.
    pub fn retired_table(&self) -> &str {
        self.sql.retired_table()
    }

    /// Creates the schema (PostgreSQL, if set), the tables and the index if they do not
    /// exist. Safe to run any number of times, also from several processes.
    /// A session table made by a version without the principal index gains its owner
    /// columns and their indexes here.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        self.client.run_ddl("create session tables", &self.sql.migrate).await?;
        self.add_owner_columns().await?;
        self.client.run_ddl("create owner indexes", &self.sql.owner_indexes).await
    }

    /// Adds the owner columns a table made by an older version lacks. Another process may
    /// add one at the same time: a failed `ALTER` whose column exists afterwards is fine.
    async fn add_owner_columns(&self) -> Result<(), StoreError> {
        let present = self.columns().await?;
        for (column, statements) in &self.sql.owner_columns {
            if present.iter().any(|c| c.eq_ignore_ascii_case(column)) {
                continue;
            }
            if let Err(e) = self.client.run_ddl("add owner columns", statements).await {
                if !self.columns().await?.iter().any(|c| c.eq_ignore_ascii_case(column)) {
                    return Err(e);
                }
            }
            tracing::info!(table = self.sql.sessions_table(), column, "sql store: column added to an older table");
        }
        Ok(())
    }

    async fn columns(&self) -> Result<Vec<String>, StoreError> {
        self.client
            .run("list columns", || async {
                on_pool!(self.client.pool(), p => {
                    sqlx::query_scalar::<_, String>(&self.sql.columns).fetch_all(p).await
                })
            })
            .await
    }

    /// Fills in the handles of up to a page of rows written by a version without the handle
    /// column, after the id `after`; the last id seen, or `None` when none is left.
    async fn fill_handles(&self, after: &str) -> Result<Option<String>, StoreError> {
        let ids: Vec<String> = self
            .client
            .run("find", || async {
                on_pool!(self.client.pool(), p => {
                    sqlx::query_scalar::<_, String>(&self.sql.unhandled)
                        .bind(after)
                        .bind(FILL_HANDLES_PAGE)
                        .fetch_all(p)
                        .await
                })
            })
            .await?;
        for id in &ids {
            let Some(key) = StoreKey::from_stored(id) else { continue };
            let handle = SessionHandle::of(&key);
            self.client
                .run_write("find", || async {
                    on_pool!(self.client.pool(), p => {
                        sqlx::query(&self.sql.set_handle).bind(handle.as_str()).bind(id.as_str()).execute(p).await.map(|_| ())
                    })
                })
                .await?;
        }
        Ok(ids.last().cloned())
    }

    async fn find_indexed(&self, handle: &SessionHandle) -> Result<Option<StoreKey>, StoreError> {
        let now = self.client.now_ms();
        let id: Option<String> = self
            .client
            .run("find", || async {
                on_pool!(self.client.pool(), p => {
                    sqlx::query_scalar::<_, String>(&self.sql.find).bind(handle.as_str()).bind(now).fetch_optional(p).await
                })
            })
            .await?;
        id.map(|id| {
            StoreKey::from_stored(&id)
                .ok_or_else(|| StoreError::corrupt("sql store: a session id that is not a store key"))
        })
        .transpose()
    }

    /// MySQL keeps entry names in a `VARBINARY(512)` (they are part of the primary key); a
    /// server without strict mode would cut a longer one silently, so it is refused here.
    fn check_names<'a>(&self, mut names: impl Iterator<Item = &'a String>) -> Result<(), StoreError> {
        if self.client.dialect() != Dialect::Mysql {
            return Ok(());
        }
        match names.find(|n| n.len() > ENTRY_NAME_MAX) {
            Some(n) => Err(StoreError::rejected(
                format!("sql store: session key of {} bytes; MySQL allows {ENTRY_NAME_MAX}", n.len()),
                None,
            )),
            None => Ok(()),
        }
    }

    async fn ensure_tables(&self) -> Result<(), StoreError> {
        if !self.client.options().create_tables {
            return Ok(());
        }
        self.ready.get_or_try_init(|| self.migrate()).await.map(|_| ())
    }

    /// Runs [`cleanup`](SessionStore::cleanup) every `every` on the current tokio runtime
    /// until the returned handle is aborted; failures are logged and retried next time.
    pub fn spawn_cleanup(&self, every: Duration) -> tokio::task::JoinHandle<()> {
        let store = self.clone();
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(every);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                match store.cleanup().await {
                    Ok(0) => {}
                    Ok(removed) => tracing::debug!(removed, "sql store: expired sessions removed"),
                    Err(e) => tracing::warn!(error = %e, "sql store: cleanup failed"),
                }
            }
        })
    }
}

/// The marker `created` of the tombstone row `lookup` returns.
const RETIRED: i64 = -1;

/// The rows of `lookup`: a live record, the tombstone row alone, or nothing.
fn decode_lookup(mut rows: Vec<Row>) -> Result<Lookup, StoreError> {
    let before = rows.len();
    rows.retain(|row| row.0 != RETIRED);
    let retired = rows.len() < before;
    Ok(match decode(rows)? {
        Some(record) => Lookup::Live(record),
        None if retired => Lookup::Retired,
        None => Lookup::Missing,
    })
}

fn decode(rows: Vec<Row>) -> Result<Option<Record>, StoreError> {
    let Some((created, accessed, expires, _, _, principal, device)) = rows.first().cloned() else {
        return Ok(None);
    };
    let mut entries = BTreeMap::new();
    for (_, _, _, name, value, _, _) in rows {
        match (name, value) {
            (Some(name), Some(value)) => {
                let name = String::from_utf8(name)
                    .map_err(|_| StoreError::corrupt("sql store: a session key is not UTF-8"))?;
                entries.insert(name, value);
            }
            (None, None) => {}
            _ => return Err(StoreError::corrupt("sql store: an entry without a name or a value")),
        }
    }
    Ok(Some(Record {
        entries,
        created: from_ms(created, "created")?,
        accessed: from_ms(accessed, "accessed")?,
        expires: expires.map(|e| from_ms(e, "expires")).transpose()?,
        owner: owner(principal, device)?,
    }))
}

/// The owner of a row: none without a principal; a device without one is corrupt.
fn owner(principal: Option<String>, device: Option<String>) -> Result<Option<Owner>, StoreError> {
    match (principal, device) {
        (Some(principal), device) => Ok(Some(Owner { principal, device })),
        (None, None) => Ok(None),
        (None, Some(_)) => Err(StoreError::corrupt("sql store: a device without a principal")),
    }
}

fn listed(row: ListedRow) -> Result<Listed, StoreError> {
    let (id, created, accessed, expires, principal, device, size) = row;
    Ok(Listed {
        key: StoreKey::from_stored(&id)
            .ok_or_else(|| StoreError::corrupt("sql store: a session id that is not a store key"))?,
        created: from_ms(created, "created")?,
        accessed: from_ms(accessed, "accessed")?,
        expires: expires.map(|e| from_ms(e, "expires")).transpose()?,
        owner: owner(principal, device)?,
        size: u64::try_from(size).unwrap_or(0),
    })
}

/// The principal and device columns of `owner`, refusing a principal the index cannot key.
fn owner_columns(owner: Option<&Owner>) -> Result<(Option<&str>, Option<&str>), StoreError> {
    let Some(owner) = owner else { return Ok((None, None)) };
    if owner.principal.len() > PRINCIPAL_MAX {
        return Err(StoreError::rejected(
            format!(
                "sql store: a principal of {} bytes; the index keeps at most {PRINCIPAL_MAX}",
                owner.principal.len()
            ),
            None,
        ));
    }
    Ok((Some(owner.principal.as_str()), owner.device.as_deref()))
}

#[async_trait]
impl SessionStore for SqlStore {
    async fn load(&self, key: &StoreKey) -> Result<Option<Record>, StoreError> {
        self.ensure_tables().await?;
        let now = self.client.now_ms();
        let rows = self
            .client
            .run("load", || async {
                on_pool!(self.client.pool(), p => {
                    sqlx::query_as::<_, Row>(&self.sql.load).bind(key.as_str()).bind(now).fetch_all(p).await
                })
            })
            .await?;
        decode(rows)
    }

    async fn lookup(&self, key: &StoreKey) -> Result<Lookup, StoreError> {
        self.ensure_tables().await?;
        let now = self.client.now_ms();
        let rows = self
            .client
            .run("lookup", || async {
                on_pool!(self.client.pool(), p => {
                    sqlx::query_as::<_, Row>(&self.sql.lookup)
                        .bind(key.as_str())
                        .bind(now)
                        .bind(key.as_str())
                        .bind(now)
                        .fetch_all(p)
                        .await
                })
            })
            .await?;
        decode_lookup(rows)
    }

    async fn create(&self, key: &StoreKey, record: &Record) -> Result<bool, StoreError> {
        self.check_names(record.entries.keys())?;
        self.ensure_tables().await?;
        let now = self.client.now_ms();
        let entries: Vec<(&String, &Vec<u8>)> = record.entries.iter().collect();
        let (created, accessed, expires) = (to_ms(record.created), to_ms(record.accessed), record.expires.map(to_ms));
        let (principal, device) = owner_columns(record.owner.as_ref())?;
        let handle = SessionHandle::of(key);
        let sql = &*self.sql;
        let begin = self.client.dialect().begin();
        self.client
            .run_write("create", || async {
                on_pool!(self.client.pool(), p => {
                    let mut tx = p.begin_with(begin).await?;
                    let mut inserted = false;
                    for attempt in 0..2 {
                        if attempt == 1 {
                            // The key is taken: by an expired record (replace it) or a live one
                            // (leave it alone; dropping `tx` rolls back).
                            let gone = sqlx::query(&sql.delete_expired)
                                .bind(key.as_str())
                                .bind(now)
                                .execute(&mut *tx)
                                .await?
                                .rows_affected();
                            if gone == 0 {
                                tx.rollback().await?;
                                return Ok(false);
                            }
                        }
                        let insert = sqlx::query(&sql.insert)
                            .bind(key.as_str())
                            .bind(created)
                            .bind(accessed)
                            .bind(expires)
                            .bind(principal)
                            .bind(device)
                            .bind(handle.as_str())
                            .execute(&mut *tx)
                            .await;
                        inserted = match insert {
                            Ok(done) => done.rows_affected() == 1,
                            Err(sqlx::Error::Database(db)) if db.is_unique_violation() => false,
                            Err(e) => return Err(e),
                        };
                        if inserted {
                            break;
                        }
                    }
                    if !inserted {
                        tx.rollback().await?;
                        return Ok(false);
                    }
                    upsert_entries!(tx, sql, key, entries);
                    tx.commit().await?;
                    Ok(true)
                })
            })
            .await
    }

    async fn apply(&self, key: &StoreKey, changes: &Changes) -> Result<bool, StoreError> {
        self.check_names(changes.set.keys())?;
        self.ensure_tables().await?;
        let now = self.client.now_ms();
        let sets: Vec<(&String, &Vec<u8>)> = changes.set.iter().collect();
        let removals: Vec<&String> = if changes.clear { Vec::new() } else { changes.remove.iter().collect() };
        let (accessed, expires) = (to_ms(changes.accessed), changes.expires.map(to_ms));
        let owner = changes.owner.as_ref().map(|o| owner_columns(Some(o))).transpose()?;
        let sql = &*self.sql;
        let begin = self.client.dialect().begin();
        self.client
            .run_write("apply", || async {
                on_pool!(self.client.pool(), p => {
                    let mut tx = p.begin_with(begin).await?;
                    // Checks that the record is live and locks its row for the transaction.
                    let live = lock_row!(tx, sql, key, accessed, expires, owner, now);
                    if live == 0 {
                        tx.rollback().await?;
                        return Ok(false);
                    }
                    write_changes!(tx, sql, key, changes, removals, sets);
                    tx.commit().await?;
                    Ok(true)
                })
            })
            .await
    }

    async fn touch(
        &self,
        key: &StoreKey,
        accessed: SystemTime,
        expires: Option<SystemTime>,
    ) -> Result<bool, StoreError> {
        self.ensure_tables().await?;
        let now = self.client.now_ms();
        let (accessed, expires) = (to_ms(accessed), expires.map(to_ms));
        let touched: u64 = self
            .client
            .run_write("touch", || async {
                on_pool!(self.client.pool(), p => {
                    sqlx::query(&self.sql.touch)
                        .bind(accessed)
                        .bind(expires)
                        .bind(key.as_str())
                        .bind(now)
                        .execute(p)
                        .await
                        .map(|done| done.rows_affected())
                })
            })
            .await?;
        Ok(touched > 0)
    }

    async fn delete(&self, key: &StoreKey) -> Result<(), StoreError> {
        self.ensure_tables().await?;
        self.client
            .run_write("delete", || async {
                on_pool!(self.client.pool(), p => {
                    sqlx::query(&self.sql.delete).bind(key.as_str()).execute(p).await.map(|_| ())
                })
            })
            .await
    }

    async fn end(&self, key: &StoreKey, retire_for: Duration) -> Result<(), StoreError> {
        if retire_for.is_zero() {
            return self.delete(key).await;
        }
        self.ensure_tables().await?;
        let until = self.client.now_ms().saturating_add(i64::try_from(retire_for.as_millis()).unwrap_or(i64::MAX));
        let sql = &*self.sql;
        let begin = self.client.dialect().begin();
        self.client
            .run_write("end", || async {
                on_pool!(self.client.pool(), p => {
                    let mut tx = p.begin_with(begin).await?;
                    sqlx::query(&sql.delete).bind(key.as_str()).execute(&mut *tx).await?;
                    sqlx::query(&sql.retire).bind(key.as_str()).bind(until).execute(&mut *tx).await?;
                    tx.commit().await?;
                    Ok(())
                })
            })
            .await
    }

    async fn rename(
        &self,
        from: &StoreKey,
        to: &StoreKey,
        changes: &Changes,
        retire_for: Duration,
    ) -> Result<bool, StoreError> {
        self.check_names(changes.set.keys())?;
        self.ensure_tables().await?;
        let now = self.client.now_ms();
        let until = now.saturating_add(i64::try_from(retire_for.as_millis()).unwrap_or(i64::MAX));
        let sets: Vec<(&String, &Vec<u8>)> = changes.set.iter().collect();
        let removals: Vec<&String> = if changes.clear { Vec::new() } else { changes.remove.iter().collect() };
        let (accessed, expires) = (to_ms(changes.accessed), changes.expires.map(to_ms));
        let owner = changes.owner.as_ref().map(|o| owner_columns(Some(o))).transpose()?;
        let sql = &*self.sql;
        let begin = self.client.dialect().begin();
        let handle = SessionHandle::of(to);
        let moved: Option<bool> = self
            .client
            .run_write("rename", || async {
                on_pool!(self.client.pool(), p => {
                    let mut tx = p.begin_with(begin).await?;
                    // As in `apply`: checks the old record is live and locks its row, so
                    // every `apply` on it runs wholly before or after this transaction.
                    let live = lock_row!(tx, sql, from, accessed, expires, owner, now);
                    if live == 0 {
                        tx.rollback().await?;
                        return Ok(Some(false));
                    }
                    let copied = match sqlx::query(&sql.copy_session)
                        .bind(to.as_str())
                        .bind(handle.as_str())
                        .bind(from.as_str())
                        .execute(&mut *tx)
                        .await
                    {
                        Ok(done) => done.rows_affected() == 1,
                        Err(sqlx::Error::Database(db)) if db.is_unique_violation() => false,
                        Err(e) => return Err(e),
                    };
                    if !copied {
                        tx.rollback().await?;
                        return Ok(None);
                    }
                    sqlx::query(&sql.move_entries).bind(to.as_str()).bind(from.as_str()).execute(&mut *tx).await?;
                    write_changes!(tx, sql, to, changes, removals, sets);
                    sqlx::query(&sql.delete).bind(from.as_str()).execute(&mut *tx).await?;
                    if !retire_for.is_zero() {
                        sqlx::query(&sql.retire).bind(from.as_str()).bind(until).execute(&mut *tx).await?;
                    }
                    tx.commit().await?;
                    Ok(Some(true))
                })
            })
            .await?;
        moved.ok_or_else(|| StoreError::Backend {
            message: "sql store: rename: a record already exists under the new key".into(),
            source: None,
        })
    }

    async fn cleanup(&self) -> Result<u64, StoreError> {
        self.ensure_tables().await?;
        let now = self.client.now_ms();
        let mut removed = 0;
        loop {
            let batch = self
                .client
                .run_write("cleanup", || async {
                    on_pool!(self.client.pool(), p => {
                        sqlx::query(&self.sql.cleanup).bind(now).execute(p).await.map(|done| done.rows_affected())
                    })
                })
                .await?;
            removed += batch;
            if batch < crate::sql::CLEANUP_BATCH {
                break;
            }
        }
        // Tombstones are a key and a time each, and lapse within the retire window: one
        // statement takes them all.
        let tombstones = self
            .client
            .run_write("cleanup", || async {
                on_pool!(self.client.pool(), p => {
                    sqlx::query(&self.sql.cleanup_retired).bind(now).execute(p).await.map(|done| done.rows_affected())
                })
            })
            .await?;
        Ok(removed + tombstones)
    }

    async fn sessions_of(&self, principal: &str) -> Result<Vec<Listed>, StoreError> {
        self.ensure_tables().await?;
        let now = self.client.now_ms();
        let rows = self
            .client
            .run("sessions_of", || async {
                on_pool!(self.client.pool(), p => {
                    sqlx::query_as::<_, ListedRow>(&self.sql.sessions_of).bind(principal).bind(now).fetch_all(p).await
                })
            })
            .await?;
        rows.into_iter().map(listed).collect()
    }

    async fn count(&self) -> Result<u64, StoreError> {
        self.ensure_tables().await?;
        let now = self.client.now_ms();
        let count: i64 = self
            .client
            .run("count", || async {
                on_pool!(self.client.pool(), p => {
                    sqlx::query_scalar::<_, i64>(&self.sql.count).bind(now).fetch_one(p).await
                })
            })
            .await?;
        Ok(u64::try_from(count).unwrap_or(0))
    }

    async fn scan(&self, cursor: Option<&str>, limit: usize) -> Result<Page, StoreError> {
        // The cursor is the last id of the previous page (keyset pagination on the primary
        // key): each page is one indexed range read, whatever the table's size.
        let after = match cursor {
            None => "",
            Some(c) if StoreKey::from_stored(c).is_some() => c,
            Some(c) => {
                return Err(StoreError::rejected(format!("sql store: {c:?} is not a scan cursor of this store"), None))
            }
        };
        self.ensure_tables().await?;
        let limit = limit.clamp(1, SCAN_PAGE_MAX);
        let now = self.client.now_ms();
        let rows = self
            .client
            .run("scan", || async {
                on_pool!(self.client.pool(), p => {
                    sqlx::query_as::<_, ListedRow>(&self.sql.scan)
                        .bind(after)
                        .bind(now)
                        .bind(limit as i64)
                        .fetch_all(p)
                        .await
                })
            })
            .await?;
        let items = rows.into_iter().map(listed).collect::<Result<Vec<_>, _>>()?;
        let next = (items.len() == limit).then(|| items.last().map(|l| l.key.as_str().to_owned())).flatten();
        Ok(Page { items, next })
    }

    async fn find(&self, handle: &SessionHandle) -> Result<Option<StoreKey>, StoreError> {
        self.ensure_tables().await?;
        if let Some(key) = self.find_indexed(handle).await? {
            return Ok(Some(key));
        }
        // Rows written before the handle column existed have none yet: fill them in (once
        // per row, so this walk happens at most once per upgraded table) and look again.
        let mut after = String::new();
        let mut filled = false;
        while let Some(last) = self.fill_handles(&after).await? {
            after = last;
            filled = true;
        }
        if filled {
            return self.find_indexed(handle).await;
        }
        Ok(None)
    }

    fn name(&self) -> &'static str {
        self.client.database()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_joins_rows_and_rejects_garbage() {
        assert_eq!(decode(vec![]).unwrap(), None);
        let bare = decode(vec![(1_000, 2_000, None, None, None, None, None)]).unwrap().unwrap();
        assert!(bare.entries.is_empty() && bare.expires.is_none());
        let two = decode(vec![
            (1_000, 2_000, Some(3_000), Some(b"a".to_vec()), Some(b"j1".to_vec()), None, None),
            (1_000, 2_000, Some(3_000), Some("ключ".as_bytes().to_vec()), Some(vec![0, 255]), None, None),
        ])
        .unwrap()
        .unwrap();
        assert_eq!(two.entries.get("ключ"), Some(&vec![0, 255]));
        assert_eq!(two.expires, Some(SystemTime::UNIX_EPOCH + Duration::from_secs(3)));
        let corrupt = |rows| matches!(decode(rows), Err(StoreError::Corrupt { .. }));
        assert!(corrupt(vec![(1, 2, None, Some(vec![0xff]), Some(vec![]), None, None)]));
        assert!(corrupt(vec![(-5, 2, None, None, None, None, None)]));
        assert!(corrupt(vec![(1, 2, Some(-1), None, None, None, None)]));
        assert!(corrupt(vec![(1, 2, None, Some(b"a".to_vec()), None, None, None)]));
        assert!(corrupt(vec![(1, 2, None, None, None, None, Some("phone".into()))]));
        let owned = decode(vec![(1, 2, None, None, None, Some("alice".into()), None)]).unwrap().unwrap();
        assert_eq!(owned.owner, Some(Owner { principal: "alice".into(), device: None }));
    }
}
