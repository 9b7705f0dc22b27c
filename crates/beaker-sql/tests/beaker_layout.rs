//! `BeakerSqlStore` against SQLite and a real PostgreSQL: Beaker's `beaker_cache` row, the
//! store contract, corrupt rows, and concurrent requests changing different keys of one
//! session (each trial races real writers through the compare on `data`).
//!
//! `BEAKER_TEST_POSTGRES_URL` (default `postgres://postgres@127.0.0.1:5432/test`); every
//! run uses its own schema and drops it at the end. An unreachable server skips with a
//! loud line, unless `CI=true`, where it fails.

#![cfg(all(feature = "sqlite", feature = "postgres"))]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use beaker_core::compat::payload;
use beaker_core::store::{Changes, Owner, Record, SessionHandle, SessionStore, StoreKey};
use beaker_core::{DataSerializer, SessionId, StoreError};
use beaker_sql::{BeakerSqlStore, SqlOptions};
use beaker_testkit::skip_or_fail;

fn postgres_url() -> String {
    std::env::var("BEAKER_TEST_POSTGRES_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// A lower-case name no other run uses.
fn unique(tag: &str) -> String {
    let random: String = SessionId::generate().expose().chars().filter(char::is_ascii_alphanumeric).take(10).collect();
    format!("bk_{tag}_{}", random.to_ascii_lowercase())
}

fn record(entries: &[(&str, i64)]) -> Record {
    let now = SystemTime::now();
    Record {
        entries: entries.iter().map(|(k, v)| (k.to_string(), DataSerializer::Json.encode(v).unwrap())).collect(),
        created: now,
        accessed: now,
        expires: None,
        owner: None,
    }
}

fn set(entries: &[(&str, i64)]) -> Changes {
    Changes {
        clear: false,
        set: entries.iter().map(|(k, v)| (k.to_string(), DataSerializer::Json.encode(v).unwrap())).collect(),
        remove: Default::default(),
        accessed: SystemTime::now(),
        expires: None,
        owner: None,
    }
}

fn key() -> StoreKey {
    StoreKey::for_id(&SessionId::generate(), false)
}

/// Drops the run's PostgreSQL schema when the test ends, whatever the outcome.
struct DropSchema(String);

impl Drop for DropSchema {
    fn drop(&mut self) {
        let schema = std::mem::take(&mut self.0);
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async {
                use sqlx::Executor as _;
                let pool = sqlx::PgPool::connect(&postgres_url()).await?;
                pool.execute(format!("DROP SCHEMA IF EXISTS {schema} CASCADE").as_str()).await.map(|_| ())
            })
        })
        .join();
    }
}

/// What every back end must do; `raw` reads a row's `(namespace, data)` by id.
async fn contract(store: BeakerSqlStore, raw: impl Fn(String) -> futures_util::future::BoxFuture<'static, Vec<u8>>) {
    let k = key();
    assert!(store.create(&k, &record(&[("a", 1)])).await.unwrap());
    assert!(!store.create(&k, &record(&[("a", 2)])).await.unwrap(), "create never overwrites");
    let text = payload::unpickle_namespace(&raw(k.as_str().to_owned()).await).expect("Beaker's namespace dict");
    assert!(
        payload::decode_json_session(&text, SystemTime::now()).is_ok(),
        "the session text is Beaker's json payload"
    );

    let later = SystemTime::now() + Duration::from_secs(5);
    assert!(store.touch(&k, later, None).await.unwrap());
    assert!(store.apply(&k, &set(&[("b", 2)])).await.unwrap());
    let loaded = store.load(&k).await.unwrap().expect("the record");
    assert_eq!(DataSerializer::decode::<i64>(&loaded.entries["a"]).unwrap(), 1);
    assert_eq!(DataSerializer::decode::<i64>(&loaded.entries["b"]).unwrap(), 2);

    // Different keys of one session written at once all survive, trial after trial.
    for trial in 0..10 {
        let writers = (0..8).map(|i| {
            let (store, k) = (store.clone(), k.clone());
            tokio::spawn(async move { store.apply(&k, &set(&[(&format!("t{trial}_{i}"), i)])).await })
        });
        for w in futures_util::future::join_all(writers).await {
            assert!(w.unwrap().unwrap());
        }
        let loaded = store.load(&k).await.unwrap().unwrap();
        for i in 0..8 {
            assert!(loaded.entries.contains_key(&format!("t{trial}_{i}")), "trial {trial}: writer {i} was lost");
        }
    }

    // Beaker's table has no room for an owner: refused by name, nothing written or lost.
    let owner = Owner { principal: "alice".into(), device: None };
    let owned = Record { owner: Some(owner.clone()), ..record(&[("a", 1)]) };
    let fresh = key();
    let err = store.create(&fresh, &owned).await.unwrap_err();
    assert!(matches!(err, StoreError::Unsupported { .. }) && err.to_string().contains("owner"), "{err}");
    assert!(store.load(&fresh).await.unwrap().is_none());
    let err = store.apply(&k, &Changes { owner: Some(owner), ..set(&[("c", 3)]) }).await.unwrap_err();
    assert!(matches!(err, StoreError::Unsupported { .. }), "{err}");
    assert!(!store.load(&k).await.unwrap().unwrap().entries.contains_key("c"));
    for err in [
        store.sessions_of("alice").await.unwrap_err(),
        store.count().await.unwrap_err(),
        store.scan(None, 10).await.unwrap_err(),
        store.find(&SessionHandle::of(&k)).await.unwrap_err(),
    ] {
        assert!(matches!(err, StoreError::Unsupported { store: "sql-beaker", .. }), "{err}");
    }

    store.delete(&k).await.unwrap();
    assert!(store.load(&k).await.unwrap().is_none());
    assert!(!store.apply(&k, &set(&[("a", 1)])).await.unwrap(), "apply on a missing row writes nothing");
    assert!(!store.touch(&k, SystemTime::now(), None).await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_keeps_beakers_table() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("beaker.db");
    let url = format!("sqlite:{}", path.display());
    let store = BeakerSqlStore::connect(&url, SqlOptions::new(), "beaker_cache").await.unwrap();
    let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
    let schema: String =
        sqlx::query_scalar("SELECT sql FROM sqlite_master WHERE name = 'beaker_cache'").fetch_one(&pool).await.unwrap();
    for column in ["id INTEGER", "namespace VARCHAR(255)", "accessed DATETIME", "created DATETIME", "data BLOB"] {
        assert!(schema.contains(column), "{schema}");
    }
    let raw_pool = pool.clone();
    contract(store.clone(), move |id| {
        let pool = raw_pool.clone();
        Box::pin(async move {
            sqlx::query_scalar("SELECT data FROM beaker_cache WHERE namespace = ?")
                .bind(id)
                .fetch_one(&pool)
                .await
                .unwrap()
        })
    })
    .await;

    // A row Beaker's SQLAlchemy would write has a text DATETIME it can parse.
    let k = key();
    store.create(&k, &record(&[("a", 1)])).await.unwrap();
    let accessed: String = sqlx::query_scalar("SELECT accessed FROM beaker_cache WHERE namespace = ?")
        .bind(k.as_str())
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(accessed.len(), "2026-01-01 00:00:00.000000".len(), "{accessed}");

    // A corrupt row reads as corrupt, never as a panic.
    sqlx::query("UPDATE beaker_cache SET data = ? WHERE namespace = ?")
        .bind(&b"\x80\x03K\x01."[..])
        .bind(k.as_str())
        .execute(&pool)
        .await
        .unwrap();
    assert!(matches!(store.load(&k).await, Err(StoreError::Corrupt { .. })));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_keeps_beakers_table() {
    let url = postgres_url();
    let pool = match sqlx::PgPool::connect(&url).await {
        Ok(p) => p,
        Err(e) => return skip_or_fail("beaker_layout postgres", &format!("cannot reach {url}: {e}")),
    };
    let schema = unique("bkcompat");
    let _drop = DropSchema(schema.clone());
    let store = BeakerSqlStore::connect(&url, SqlOptions::new().schema(schema.clone()), "beaker_cache").await.unwrap();
    let columns: BTreeMap<String, String> = sqlx::query_as(
        "SELECT column_name::text, data_type::text FROM information_schema.columns \
         WHERE table_schema = $1 AND table_name = 'beaker_cache'",
    )
    .bind(&schema)
    .fetch_all(&pool)
    .await
    .unwrap()
    .into_iter()
    .collect();
    assert_eq!(columns["namespace"], "character varying");
    assert_eq!(columns["accessed"], "timestamp without time zone");
    assert_eq!(columns["data"], "bytea");
    assert_eq!(columns["id"], "integer");
    let (raw_pool, table) = (pool.clone(), Arc::new(format!("{schema}.beaker_cache")));
    contract(store, move |id| {
        let (pool, table) = (raw_pool.clone(), table.clone());
        Box::pin(async move {
            sqlx::query_scalar(&format!("SELECT data FROM {table} WHERE namespace = $1"))
                .bind(id)
                .fetch_one(&pool)
                .await
                .unwrap()
        })
    })
    .await;
}
