//! The safe defaults through the facade, against real servers: with no timeout configured,
//! every record has an expiry (a Redis TTL, an SQL `expires`, a file's record expiry), and
//! expired records disappear without any call from the application (the facade's sweeper);
//! the memory store honours `max_sessions`.
//!
//! `BEAKER_TEST_REDIS_URL`, `BEAKER_TEST_POSTGRES_URL`, `BEAKER_TEST_MYSQL_URL` choose the
//! servers (set by `cargo xtask test`; the machine's defaults otherwise). An unreachable
//! server skips loudly, unless `CI=true`, where it fails. Each run uses its own tables /
//! key prefix and drops them afterwards.

#![cfg(all(feature = "sqlite", feature = "postgres", feature = "mysql", feature = "redis", feature = "file"))]

use std::path::Path;
use std::time::Duration;

use beaker_rs::{SessionConfig, SessionManager};
use beaker_testkit::skip_or_fail;
use sqlx::Row as _;

fn service(var: &str, default: &str) -> String {
    std::env::var(var).ok().filter(|v| !v.is_empty()).unwrap_or_else(|| default.to_owned())
}

/// A name no other run uses (lower case: PostgreSQL folds unquoted names).
fn unique(tag: &str) -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    format!("bk_{tag}_{}_{}", std::process::id(), nanos % 1_000_000_000)
}

fn config(url: &str) -> SessionConfig {
    SessionConfig::new().with_secret("a test secret of at least sixteen bytes").unwrap().with_url(url)
}

/// Writes one fresh session through `manager`; returns its cookie (`name=value`).
async fn write_one(manager: &SessionManager) -> String {
    let session = manager.start(std::iter::empty::<&str>());
    session.insert("n", &1u64).await.unwrap();
    let cookies = manager.finish(&session).await.unwrap();
    cookies[0].as_str().split(';').next().unwrap().to_owned()
}

async fn reads_back(manager: &SessionManager, cookie: &str) -> bool {
    let session = manager.start([cookie]);
    let n: Option<u64> = session.get("n").await.unwrap();
    manager.finish(&session).await.unwrap();
    n.is_some()
}

/// Polls `count` until it reaches 0, for at most `within`; the last count.
async fn drains(within: Duration, mut count: impl AsyncFnMut() -> i64) -> i64 {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let n = count().await;
        if n == 0 || tokio::time::Instant::now() > deadline {
            return n;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The SQL part for one database: `url` reaches it, `pool` looks under the hood.
async fn sql_rows_expire_and_are_swept(url: &str, pool: sqlx::AnyPool, table: &str) {
    let mut defaults = config(url);
    defaults.backend_options.insert("table_name".into(), table.to_owned());
    let manager = beaker_rs::session_manager(defaults.clone()).await.unwrap();
    for _ in 0..3 {
        write_one(&manager).await;
    }
    let count = |sql: String| {
        let pool = pool.clone();
        async move { sqlx::query(&sql).fetch_one(&pool).await.unwrap().get::<i64, _>(0) }
    };
    assert_eq!(count(format!("SELECT COUNT(*) FROM {table}")).await, 3);
    assert_eq!(
        count(format!("SELECT COUNT(*) FROM {table} WHERE expires IS NULL")).await,
        0,
        "with no timeout configured, every row has an expiry"
    );
    // Short lifetimes and a fast sweeper: the rows go without any call from here.
    let short = defaults.with_timeout(Duration::from_secs(1)).with_cleanup_interval(Some(Duration::from_millis(500)));
    let sweeping = beaker_rs::session_manager(short).await.unwrap();
    for _ in 0..3 {
        write_one(&sweeping).await;
    }
    drop(manager);
    let left = drains(Duration::from_secs(15), async || {
        // The default-lifetime rows are 8 hours from expiring: only the short ones may go.
        count(format!("SELECT COUNT(*) FROM {table} WHERE expires < {}", now_ms() + 60_000)).await
    })
    .await;
    assert_eq!(left, 0, "expired rows were not swept");
    assert_eq!(count(format!("SELECT COUNT(*) FROM {table}")).await, 3, "live rows stay");
    drop(sweeping);
    cleanup_runs_in_batches_until_done(url, &pool, table).await;
    for t in [format!("{table}_entries"), table.to_owned()] {
        sqlx::query(&format!("DROP TABLE IF EXISTS {t}")).execute(&pool).await.unwrap();
    }
}

/// More expired rows than one batch deletes: one `cleanup` call still removes them all.
async fn cleanup_runs_in_batches_until_done(url: &str, pool: &sqlx::AnyPool, table: &str) {
    use beaker_rs::store::{Record, SessionStore as _, StoreKey};
    let mut c = config(url);
    c.backend_options.insert("table_name".into(), table.to_owned());
    c.store_timeout = Duration::from_secs(30);
    let store = beaker_rs::sql::SqlStore::from_session_config(&c).await.unwrap();
    let before: i64 = sqlx::query(&format!("SELECT COUNT(*) FROM {table}")).fetch_one(pool).await.unwrap().get(0);
    let now = std::time::SystemTime::now();
    let expired = Record {
        entries: [("n".to_owned(), b"1".to_vec())].into(),
        created: now,
        accessed: now,
        expires: Some(now + Duration::from_millis(1)),
        owner: None,
    };
    const ROWS: usize = 2_300;
    for _ in 0..ROWS / 10 {
        let inserts: Vec<_> = (0..10)
            .map(|_| {
                let (store, record) = (store.clone(), expired.clone());
                tokio::spawn(async move {
                    let key = StoreKey::for_id(&beaker_rs::SessionId::generate(), true);
                    assert!(store.create(&key, &record).await.unwrap());
                })
            })
            .collect();
        for insert in inserts {
            insert.await.unwrap();
        }
    }
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(store.cleanup().await.unwrap(), ROWS as u64, "batches of at most 1000 until none is left");
    let after: i64 = sqlx::query(&format!("SELECT COUNT(*) FROM {table}")).fetch_one(pool).await.unwrap().get(0);
    assert_eq!(after, before);
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64
}

async fn any_pool(url: &str) -> Result<sqlx::AnyPool, sqlx::Error> {
    sqlx::any::install_default_drivers();
    sqlx::any::AnyPoolOptions::new().max_connections(2).connect(url).await
}

#[tokio::test]
async fn sqlite_rows_have_an_expiry_and_expired_ones_are_swept() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("s.sqlite3").display());
    let pool = any_pool(&url).await.unwrap();
    sql_rows_expire_and_are_swept(&url, pool, &unique("sqlite")).await;
}

#[tokio::test]
async fn postgres_rows_have_an_expiry_and_expired_ones_are_swept() {
    let url = service("BEAKER_TEST_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/test");
    match any_pool(&url).await {
        Ok(pool) => sql_rows_expire_and_are_swept(&url, pool, &unique("pg")).await,
        Err(e) => skip_or_fail("postgres", &format!("{url}: {e}")),
    }
}

#[tokio::test]
async fn mysql_rows_have_an_expiry_and_expired_ones_are_swept() {
    let url = service("BEAKER_TEST_MYSQL_URL", "mysql://root@127.0.0.1:3306/test");
    match any_pool(&url).await {
        Ok(pool) => sql_rows_expire_and_are_swept(&url, pool, &unique("my")).await,
        Err(e) => skip_or_fail("mysql", &format!("{url}: {e}")),
    }
}

fn session_files(dir: &Path) -> Vec<beaker_rs::store::Record> {
    let Ok(entries) = std::fs::read_dir(dir.join("sessions")) else { return Vec::new() };
    entries
        .flatten()
        .filter_map(|e| std::fs::read(e.path()).ok())
        .filter_map(|bytes| beaker_rs::store::Record::from_bytes(&bytes).ok())
        .collect()
}

#[tokio::test]
async fn files_have_an_expiry_and_expired_ones_are_swept() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("file://{}", dir.path().display());
    let manager = beaker_rs::session_manager(config(&url)).await.unwrap();
    for _ in 0..3 {
        write_one(&manager).await;
    }
    let records = session_files(dir.path());
    assert_eq!(records.len(), 3);
    assert!(records.iter().all(|r| r.expires.is_some()), "with no timeout configured, every file has an expiry");
    drop(manager);
    let short =
        config(&url).with_timeout(Duration::from_secs(1)).with_cleanup_interval(Some(Duration::from_millis(500)));
    let sweeping = beaker_rs::session_manager(short).await.unwrap();
    for _ in 0..3 {
        write_one(&sweeping).await;
    }
    let horizon = std::time::SystemTime::now() + Duration::from_secs(60);
    let left = drains(Duration::from_secs(15), async || {
        session_files(dir.path()).iter().filter(|r| r.expires.is_some_and(|e| e < horizon)).count() as i64
    })
    .await;
    assert_eq!(left, 0, "expired files were not swept");
    assert_eq!(session_files(dir.path()).len(), 3, "live files stay");
}

#[tokio::test]
async fn redis_keys_have_a_ttl_with_no_timeout_configured() {
    let url = service("BEAKER_TEST_REDIS_URL", "redis://127.0.0.1:6379");
    let prefix = format!("beaker-test:defaults:{}:", unique("r"));
    let mut c = config(&url);
    c.backend_options.insert("key_prefix".into(), prefix.clone());
    let manager = match beaker_rs::session_manager(c).await {
        Ok(m) => m,
        Err(e) => return skip_or_fail("redis", &format!("{url}: {e}")),
    };
    let cookie = write_one(&manager).await;
    assert!(reads_back(&manager, &cookie).await);
    let client = redis::Client::open(url.as_str()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = redis::cmd("KEYS").arg(format!("{prefix}*")).query_async(&mut conn).await.unwrap();
    assert!(!keys.is_empty(), "no key under {prefix}");
    for key in &keys {
        let ttl: i64 = redis::cmd("PTTL").arg(key).query_async(&mut conn).await.unwrap();
        assert!(ttl > 0, "{key} has no TTL ({ttl})");
        assert!(ttl <= SessionConfig::DEFAULT_ABSOLUTE_TIMEOUT.as_millis() as i64);
        let _: () = redis::cmd("DEL").arg(key).query_async(&mut conn).await.unwrap();
    }
}

#[tokio::test]
async fn the_memory_store_honours_max_sessions() {
    let mut c = config("memory:");
    c.max_sessions = 64;
    let manager = beaker_rs::session_manager(c).await.unwrap();
    let mut cookies = Vec::new();
    for _ in 0..640 {
        cookies.push(write_one(&manager).await);
    }
    let mut live = 0;
    for cookie in &cookies {
        live += usize::from(reads_back(&manager, cookie).await);
    }
    assert!(live <= 64, "{live} sessions live in a store of 64");
    assert!(live > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_file_store_honours_the_store_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("file://{}", dir.path().display());
    let mut c = config(&url);
    c.store_timeout = Duration::from_millis(300);
    let manager = beaker_rs::session_manager(c).await.unwrap();
    let cookie = write_one(&manager).await;
    // A read that never returns: the record's file becomes a FIFO nobody writes to.
    let file = std::fs::read_dir(dir.path().join("sessions")).unwrap().flatten().next().unwrap().path();
    std::fs::remove_file(&file).unwrap();
    let made = std::process::Command::new("mkfifo").arg(&file).status();
    if !made.is_ok_and(|s| s.success()) {
        return skip_or_fail("file-timeout", "no mkfifo to make a hanging file");
    }
    let started = std::time::Instant::now();
    let session = manager.start([cookie.as_str()]);
    let answer = tokio::time::timeout(Duration::from_secs(5), session.get::<u64>("n")).await;
    let took = started.elapsed();
    // Let the stuck reader finish (end of file), so that the runtime can shut down.
    drop(std::fs::OpenOptions::new().write(true).open(&file));
    let e = answer.expect("the store timeout did not apply").unwrap_err();
    assert!(e.to_string().contains("unavailable") || format!("{e:?}").contains("Unavailable"), "{e:?}");
    assert!(took < Duration::from_secs(2), "answered after {took:?}, store timeout 300 ms");
}
