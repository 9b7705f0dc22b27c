//! `compat = beaker` on Beaker's `ext:database` layout, against the real Python Beaker 1.14
//! with SQLAlchemy: a session written by one side is read and updated by the other, both
//! ways, on SQLite (a scratch file) and PostgreSQL (a table of its own per run, dropped
//! whatever the outcome). `BEAKER_TEST_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/test`) chooses the server.

use beaker_rs::{SessionConfig, SessionManager};
use serde_json::Value;

use super::{environment, rust_request, PythonApp, SECRET};

fn postgres_url() -> String {
    std::env::var("BEAKER_TEST_POSTGRES_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// A lower-case table name no other run uses.
fn unique_table() -> String {
    let id = beaker_rs::SessionId::generate();
    let random: String = id.expose().chars().filter(char::is_ascii_alphanumeric).take(10).collect();
    format!("bk_interop_{}", random.to_ascii_lowercase())
}

/// Drops the run's PostgreSQL table when the test ends, whatever the outcome.
struct DropTable(String);

impl Drop for DropTable {
    fn drop(&mut self) {
        let table = std::mem::take(&mut self.0);
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
            rt.block_on(async {
                use sqlx::Executor as _;
                let pool = sqlx::PgPool::connect(&postgres_url()).await?;
                pool.execute(format!("DROP TABLE IF EXISTS {table}").as_str()).await.map(|_| ())
            })
        })
        .join();
    }
}

async fn manager(url: &str, table: &str) -> SessionManager {
    let options = [
        ("session.compat", "beaker"),
        ("session.url", url),
        ("session.table_name", table),
        ("session.secret", SECRET),
        ("session.data_serializer", "json"),
    ];
    beaker_rs::session_manager(SessionConfig::from_map(options).expect("valid options")).await.expect("manager")
}

/// Python -> Rust -> Python, then Rust -> Python -> Rust, on one database.
async fn both_ways(python: &str, redis: &str, rust_url: &str, python_url: &str, table: &str) {
    // Rust first, so that the table is created before Python's SQLAlchemy looks for it
    // (either side creates it when missing; this only keeps the order fixed).
    let m = manager(rust_url, table).await;
    let py = PythonApp::start_with(
        python,
        redis,
        None,
        "json",
        &[("BEAKER_TEST_DB_URL", python_url), ("BEAKER_TEST_DB_TABLE", table)],
    );

    let (seen, cookie) = py.get("/login?user=alice", None).await;
    let cookie = cookie.expect("Python sets its cookie");
    assert_eq!(seen["user"], "alice");
    let (user, _) = rust_request(&m, Some(&cookie), |s| async move {
        let user: Option<String> = s.get("user").await.unwrap();
        s.insert("cart", &[1, 2, 3]).await.unwrap();
        user
    })
    .await;
    assert_eq!(user.as_deref(), Some("alice"), "Rust reads Python's ext:database session");
    let (seen, _) = py.get("/get", Some(&cookie)).await;
    assert_eq!((&seen["user"], &seen["cart"]), (&Value::from("alice"), &serde_json::json!([1, 2, 3])));

    let (_, from_rust) = rust_request(&m, None, |s| async move { s.insert("user", "bob").await.unwrap() }).await;
    let from_rust = from_rust.expect("Rust sets a cookie for a new session");
    let (seen, _) = py.get("/set?k=theme&v=%22dark%22", Some(&from_rust)).await;
    assert_eq!((&seen["user"], &seen["theme"]), (&Value::from("bob"), &Value::from("dark")), "{seen:?}");
    let (theme, _) =
        rust_request(&m, Some(&from_rust), |s| async move { s.get::<String>("theme").await.unwrap() }).await;
    assert_eq!(theme.as_deref(), Some("dark"), "Rust reads Python's update");
}

#[tokio::test]
async fn database_sessions_are_shared_both_ways_on_sqlite() {
    let Some((python, redis)) = environment("database_sessions_are_shared_both_ways_on_sqlite") else {
        return;
    };
    let dir = tempfile::tempdir().expect("a scratch directory");
    let path = dir.path().join("beaker.db");
    let rust_url = format!("sqlite:{}", path.display());
    let python_url = format!("sqlite:///{}", path.display());
    both_ways(&python, &redis, &rust_url, &python_url, "beaker_cache").await;
}

#[tokio::test]
async fn database_sessions_are_shared_both_ways_on_postgres() {
    let Some((python, redis)) = environment("database_sessions_are_shared_both_ways_on_postgres") else {
        return;
    };
    let url = postgres_url();
    if let Err(e) = sqlx::PgPool::connect(&url).await {
        let test = "database_sessions_are_shared_both_ways_on_postgres";
        if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") {
            panic!("{test}: cannot reach {url}: {e}");
        }
        eprintln!("SKIPPED {test}: cannot reach {url}: {e}");
        return;
    }
    let table = unique_table();
    let _drop = DropTable(table.clone());
    // SQLAlchemy 2.1 defaults to psycopg 3; the venv holds psycopg2.
    let python_url = url.replacen("postgres://", "postgresql+psycopg2://", 1);
    both_ways(&python, &redis, &url, &python_url, &table).await;
}
