//! What the SQL test files share: the databases to test against (`Env`), with this run's
//! own table names, dropped at the end, and a raw pool for looking under the hood.

#![allow(dead_code, unreachable_pub)]

use std::sync::Arc;

use beaker_core::store::StoreKey;
use beaker_core::SessionId;
use beaker_sql::{SqlClient, SqlOptions, SqlStore};
use beaker_testkit::skip_or_fail;
use beaker_testkit::store::Corruptor;
use sqlx::Executor as _;

pub fn postgres_url() -> String {
    std::env::var("BEAKER_TEST_POSTGRES_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

pub fn mysql_url() -> String {
    std::env::var("BEAKER_TEST_MYSQL_URL").unwrap_or_else(|_| "mysql://root@127.0.0.1:3306/test".into())
}

/// A name no other run uses: lower case, because PostgreSQL folds unquoted names.
pub fn unique(tag: &str) -> String {
    let random: String = SessionId::generate()
        .expose()
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(10)
        .collect::<String>()
        .to_ascii_lowercase();
    format!("bk_{tag}_{random}")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Sqlite,
    Postgres,
    Mysql,
}

/// A raw pool for looking under the hood, corrupting rows and dropping tables.
#[derive(Clone)]
pub enum Raw {
    Sqlite(sqlx::SqlitePool),
    Postgres(sqlx::PgPool),
    Mysql(sqlx::MySqlPool),
}

impl Raw {
    pub async fn connect(kind: Kind, url: &str) -> Raw {
        match kind {
            Kind::Sqlite => Raw::Sqlite(sqlx::SqlitePool::connect(url).await.unwrap()),
            Kind::Postgres => Raw::Postgres(sqlx::PgPool::connect(url).await.unwrap()),
            Kind::Mysql => Raw::Mysql(sqlx::MySqlPool::connect(url).await.unwrap()),
        }
    }

    pub async fn exec(&self, sql: &str) {
        let done = match self {
            Raw::Sqlite(p) => p.execute(sql).await.map(|_| ()),
            Raw::Postgres(p) => p.execute(sql).await.map(|_| ()),
            Raw::Mysql(p) => p.execute(sql).await.map(|_| ()),
        };
        done.unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    /// A binary literal of `bytes` in this database's syntax.
    pub fn blob(&self, bytes: &[u8]) -> String {
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        match self {
            Raw::Postgres(_) => format!("decode('{hex}', 'hex')"),
            Raw::Sqlite(_) | Raw::Mysql(_) => format!("X'{hex}'"),
        }
    }
}

/// One database to test against, with this run's table names.
pub struct Env {
    pub kind: Kind,
    pub url: String,
    pub options: SqlOptions,
    pub raw: Raw,
    pub _dir: Option<tempfile::TempDir>,
}

impl Env {
    /// `None` (after the SKIPPED line) when the server is not there.
    pub async fn open(kind: Kind, suite: &str) -> Option<Env> {
        let (url, options, dir) = match kind {
            Kind::Sqlite => {
                let dir = tempfile::tempdir().unwrap();
                let url = format!("sqlite:{}", dir.path().join("beaker.db").display());
                (url, SqlOptions::new(), Some(dir))
            }
            Kind::Postgres => {
                let options = SqlOptions::new().schema(unique("pg")).table_name("sessions").cache_table_name("cache");
                (postgres_url(), options, None)
            }
            Kind::Mysql => {
                let options = SqlOptions::new().table_name(unique("s")).cache_table_name(unique("c"));
                (mysql_url(), options, None)
            }
        };
        match SqlClient::connect(&url, options.clone()).await {
            Ok(client) => client.close().await,
            Err(e) if e.is_unavailable() => {
                skip_or_fail(suite, &format!("cannot reach {url}: {e}"));
                return None;
            }
            Err(e) => panic!("{suite}: {e}"),
        }
        let raw = Raw::connect(kind, &url).await;
        Some(Env { kind, url, options, raw, _dir: dir })
    }

    pub async fn client(&self) -> SqlClient {
        SqlClient::connect(&self.url, self.options.clone()).await.unwrap()
    }

    pub async fn store(&self) -> SqlStore {
        SqlStore::connect(&self.url, self.options.clone()).await.unwrap()
    }

    /// Runs `body`, then drops this run's tables even if `body` panicked.
    pub async fn run<F, Fut>(self, body: F)
    where
        F: FnOnce(Arc<Env>) -> Fut,
        Fut: std::future::Future<Output = ()>,
    {
        use futures_util::FutureExt as _;
        let env = Arc::new(self);
        let outcome = std::panic::AssertUnwindSafe(body(env.clone())).catch_unwind().await;
        env.teardown().await;
        if let Err(panic) = outcome {
            std::panic::resume_unwind(panic);
        }
    }

    /// Drops everything this run created.
    pub async fn teardown(&self) {
        match self.kind {
            Kind::Sqlite => {}
            Kind::Postgres => {
                let schema = self.options.schema.clone().unwrap();
                self.raw.exec(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE")).await;
            }
            Kind::Mysql => {
                let (s, c) = (&self.options.session_table, &self.options.cache_table);
                self.raw.exec(&format!("DROP TABLE IF EXISTS {s}_entries, {s}_retired, {s}, {c}, {c}_locks")).await;
            }
        }
    }

    /// Writes a live session whose only entry has a name that is not UTF-8.
    pub fn corruptor(&self, store: &SqlStore) -> Corruptor {
        let (sessions, entries) = store.tables();
        let (sessions, entries, raw) = (sessions.to_owned(), entries.to_owned(), self.raw.clone());
        Box::new(move |key: StoreKey| {
            let (sessions, entries, raw) = (sessions.clone(), entries.clone(), raw.clone());
            Box::pin(async move {
                let id = key.as_str();
                raw.exec(&format!(
                    "INSERT INTO {sessions} (id, created, accessed, expires) VALUES ('{id}', 1, 1, NULL)"
                ))
                .await;
                let (name, value) = (raw.blob(&[0xff, 0xfe]), raw.blob(b"j1"));
                raw.exec(&format!("INSERT INTO {entries} (id, name, value) VALUES ('{id}', {name}, {value})")).await;
            })
        })
    }
}
