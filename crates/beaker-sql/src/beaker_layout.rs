//! [`BeakerSqlStore`]: sessions in Python Beaker's `ext:database` layout (its
//! `beaker_cache` table), so that a Beaker application and a beaker-rs one share them.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use beaker_core::compat::layout::{self, BeakerCodec, BeakerLayout, Envelope, Swap};
use beaker_core::compat::{BeakerSerializer, NO_OWNER};
use beaker_core::store::{async_trait, Changes, Listed, Page, Record, SessionHandle, SessionStore, StoreKey};
use beaker_core::StoreError;

use crate::client::{check_identifier, on_pool, SqlClient};
use crate::error::OpenError;
use crate::options::SqlOptions;
use crate::sql::Dialect;

/// A [`SessionStore`] that reads and writes exactly what Python Beaker 1.14's
/// `ext:database` back end does (the `compat = beaker` mode), on PostgreSQL or SQLite.
///
/// - The table is Beaker's (`beaker_cache` unless named otherwise, as Beaker's
///   `table_name`): `id` integer key, `namespace` (the session id, unhashed: Beaker looks
///   rows up by id, unique), `accessed` and `created` (local time, informational: neither
///   side reads them), `data` (a pickled dict `{'session': <text>}`, the text being the
///   base64 session dict in the configured `data_serializer`). It is created if missing,
///   with the columns SQLAlchemy gives it.
/// - Beaker never deletes expired rows; both sides decide the idle timeout from the dict's
///   `_accessed_time`, so configure the same `timeout` on both.
/// - `apply` and `touch` are read-modify-writes made atomic by comparing `data` with what
///   was read: concurrent beaker-rs requests that change different keys both survive (a
///   Beaker writer, which does not lock, still replaces the whole dict).
/// - A row in another serializer, an encrypted one, or a pickle holding anything but
///   plain data is [`StoreError::Corrupt`]: treated as absent and logged.
/// - MySQL is refused: Beaker's interop there is not tested.
/// - No principal index and no enumeration: Beaker's table has no column for a session's
///   owner, so a record or change that carries one is refused with
///   [`StoreError::Unsupported`] (never silently dropped), and `sessions_of`, `count`,
///   `scan` and `find` answer `Unsupported` too.
#[derive(Debug, Clone)]
pub struct BeakerSqlStore {
    client: SqlClient,
    serializer: BeakerSerializer,
    sql: Arc<Statements>,
}

/// The statements, with the dialect's placeholders and the table spliced in.
#[derive(Debug)]
struct Statements {
    create_table: String,
    load: String,
    insert: String,
    update: String,
    delete: String,
}

impl Statements {
    fn new(dialect: Dialect, table: &str) -> Self {
        // `$1` is a time in Unix seconds.
        let (create_table, time) = match dialect {
            Dialect::Postgres => (
                format!(
                    "CREATE TABLE IF NOT EXISTS {table} (id SERIAL PRIMARY KEY, namespace VARCHAR(255) NOT NULL \
                     UNIQUE, accessed TIMESTAMP NOT NULL, created TIMESTAMP NOT NULL, data BYTEA NOT NULL)"
                ),
                "to_timestamp($1)::timestamp",
            ),
            _ => (
                format!(
                    "CREATE TABLE IF NOT EXISTS {table} (id INTEGER NOT NULL PRIMARY KEY, namespace VARCHAR(255) \
                     NOT NULL UNIQUE, accessed DATETIME NOT NULL, created DATETIME NOT NULL, data BLOB NOT NULL)"
                ),
                // SQLAlchemy's text form of a DATETIME on SQLite.
                "strftime('%Y-%m-%d %H:%M:%f000', $1, 'unixepoch', 'localtime')",
            ),
        };
        let statements = Statements {
            create_table,
            load: format!("SELECT data FROM {table} WHERE namespace = $2"),
            insert: format!(
                "INSERT INTO {table} (namespace, accessed, created, data) VALUES ($2, {time}, {time}, $3) \
                 ON CONFLICT (namespace) DO NOTHING"
            ),
            update: format!("UPDATE {table} SET data = $3, accessed = {time} WHERE namespace = $2 AND data = $4"),
            delete: format!("DELETE FROM {table} WHERE namespace = $2"),
        };
        match dialect {
            // SQLite numbers its parameters `?N`; every statement binds $1 first.
            Dialect::Sqlite => Statements {
                create_table: statements.create_table,
                load: statements.load.replace('$', "?"),
                insert: statements.insert.replace('$', "?"),
                update: statements.update.replace('$', "?"),
                delete: statements.delete.replace('$', "?"),
            },
            _ => statements,
        }
    }
}

impl BeakerSqlStore {
    /// Connects (see [`SqlClient::connect`]) and creates Beaker's table `table` (Beaker's
    /// `table_name`; `beaker_cache` by default) if it does not exist.
    pub async fn connect(url: &str, options: SqlOptions, table: &str) -> Result<Self, OpenError> {
        check_identifier("table_name", table)?;
        let client = SqlClient::connect(url, options).await?;
        if client.dialect() == Dialect::Mysql {
            return Err(OpenError::UnsupportedScheme {
                scheme: "mysql".into(),
                hint: "compat = beaker shares ext:database sessions on PostgreSQL and SQLite only",
            });
        }
        let table = match client.schema() {
            Some(schema) => format!("{schema}.{table}"),
            None => table.to_owned(),
        };
        let sql = Statements::new(client.dialect(), &table);
        let mut ddl = Vec::new();
        if let Some(schema) = client.schema() {
            ddl.push(format!("CREATE SCHEMA IF NOT EXISTS {schema}"));
        }
        ddl.push(sql.create_table.clone());
        client.run_ddl("create beaker table", &ddl).await?;
        Ok(BeakerSqlStore { client, serializer: BeakerSerializer::Json, sql: Arc::new(sql) })
    }

    /// Uses Beaker's `serializer` for the session dict (`data_serializer`; JSON by default).
    pub fn with_serializer(mut self, serializer: BeakerSerializer) -> Self {
        self.serializer = serializer;
        self
    }

    /// Runs a write statement binding `now`, the id, then `args`; the rows it changed.
    async fn write(&self, what: &str, sql: &str, key: &StoreKey, args: &[&[u8]]) -> Result<u64, StoreError> {
        let now = unix_seconds(SystemTime::now());
        self.client
            .run_write(what, || async {
                on_pool!(self.client.pool(), p => {
                    let mut query = sqlx::query(sql).bind(now).bind(key.as_str());
                    for arg in args {
                        query = query.bind(*arg);
                    }
                    query.execute(p).await.map(|r| r.rows_affected())
                })
            })
            .await
    }
}

/// Listing would unpickle every row of a table Beaker itself never lists or expires.
const NO_LISTING: &str = "listing sessions (Beaker's ext:database table is not enumerated; use its own tools)";

fn unix_seconds(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}

#[async_trait]
impl BeakerLayout for BeakerSqlStore {
    fn codec(&self) -> BeakerCodec {
        BeakerCodec { envelope: Envelope::Namespace, serializer: self.serializer }
    }

    async fn read(&self, key: &StoreKey) -> Result<Option<Vec<u8>>, StoreError> {
        let sql = &self.sql.load;
        self.client
            .run("load", || async {
                on_pool!(self.client.pool(), p => {
                    sqlx::query_scalar::<_, Vec<u8>>(sql).bind(0.0f64).bind(key.as_str()).fetch_optional(p).await
                })
            })
            .await
    }

    /// Beaker never deletes expired rows, so `swap.expires` is not stored: both sides read
    /// the idle timeout from the dict.
    async fn compare_and_set(&self, key: &StoreKey, what: &str, swap: Swap<'_>) -> Result<bool, StoreError> {
        Ok(self.write(what, &self.sql.update, key, &[swap.new, swap.old]).await? == 1)
    }
}

#[async_trait]
impl SessionStore for BeakerSqlStore {
    async fn load(&self, key: &StoreKey) -> Result<Option<Record>, StoreError> {
        layout::load(self, key).await
    }

    async fn create(&self, key: &StoreKey, record: &Record) -> Result<bool, StoreError> {
        let data = layout::create_blob(self, record)?;
        Ok(self.write("create", &self.sql.insert, key, &[&data]).await? == 1)
    }

    async fn apply(&self, key: &StoreKey, changes: &Changes) -> Result<bool, StoreError> {
        layout::apply(self, key, changes).await
    }

    async fn touch(
        &self,
        key: &StoreKey,
        accessed: SystemTime,
        expires: Option<SystemTime>,
    ) -> Result<bool, StoreError> {
        layout::touch(self, key, accessed, expires).await
    }

    async fn delete(&self, key: &StoreKey) -> Result<(), StoreError> {
        self.write("delete", &self.sql.delete, key, &[]).await.map(|_| ())
    }

    async fn sessions_of(&self, _principal: &str) -> Result<Vec<Listed>, StoreError> {
        Err(StoreError::unsupported(self.name(), NO_OWNER))
    }

    async fn count(&self) -> Result<u64, StoreError> {
        Err(StoreError::unsupported(self.name(), NO_LISTING))
    }

    async fn scan(&self, _cursor: Option<&str>, _limit: usize) -> Result<Page, StoreError> {
        Err(StoreError::unsupported(self.name(), NO_LISTING))
    }

    async fn find(&self, _handle: &SessionHandle) -> Result<Option<StoreKey>, StoreError> {
        Err(StoreError::unsupported(self.name(), NO_LISTING))
    }

    fn name(&self) -> &'static str {
        "sql-beaker"
    }
}
