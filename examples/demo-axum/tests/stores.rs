//! The demo contract over every server-side store the demo accepts through
//! `BEAKER_SESSION_URL`, and restarts that keep users logged in (SQLite, Redis,
//! PostgreSQL, MySQL, Memcached, S3).
//!
//! The servers come from `BEAKER_TEST_*_URL` (set by `cargo xtask test`; the machine's
//! defaults otherwise). An unreachable server skips its test with a loud line, unless
//! `CI=true`, where it fails. Each run uses its own key prefix / tables and short-lived
//! records, and drops what it can afterwards.

use std::path::Path;
use std::process::Command;

use beaker_testkit::adapter::{ContractSuite, DemoServer};
use beaker_testkit::skip_or_fail;

fn binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_demo-axum"))
}

/// A short random tag for this run's keys and tables.
fn run_tag() -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
    format!("t{}_{nanos}", std::process::id())
}

fn service(var: &str, default: &str) -> String {
    std::env::var(var).ok().filter(|v| !v.is_empty()).unwrap_or_else(|| default.to_owned())
}

/// Starts the demo on `env`, or reports why it could not (a missing service).
fn spawn_or_skip(suite: &str, env: &[(&str, &str)]) -> Option<DemoServer> {
    match DemoServer::try_spawn(binary(), env) {
        Ok(server) => Some(server),
        Err(e) => {
            skip_or_fail(suite, &format!("the demo could not open its store: {e}"));
            None
        }
    }
}

/// The whole contract on one store, then a restart that must keep the session.
async fn contract_and_restart(server: &mut DemoServer) {
    let suite = ContractSuite::new(server.base_url());
    let probe = suite.before_restart().await;
    suite.run().await;
    server.restart();
    ContractSuite::new(server.base_url()).survived_restart(&probe).await;
}

#[tokio::test]
async fn the_embedded_default_store_is_sqlite_and_survives_a_restart() {
    // No BEAKER_SESSION_* at all: the demo's default, a SQLite file in its directory.
    let mut server = DemoServer::spawn(binary(), &[]);
    contract_and_restart(&mut server).await;
    let file = server.dir().join("beaker-demo.sqlite3");
    assert!(file.exists(), "the default store is the SQLite file in the working directory");
}

#[tokio::test]
async fn redis() {
    let url = service("BEAKER_TEST_REDIS_URL", "redis://127.0.0.1:6379");
    let prefix = format!("beaker-test:demo:{}:", run_tag());
    // Records expire on their own (idle timeout), so nothing outlives the test for long.
    let env = [
        ("BEAKER_SESSION_URL", url.as_str()),
        ("BEAKER_SESSION_KEY_PREFIX", &prefix),
        ("BEAKER_SESSION_TIMEOUT", "300"),
    ];
    if let Some(mut server) = spawn_or_skip("redis", &env) {
        contract_and_restart(&mut server).await;
    }
}

#[tokio::test]
async fn postgres() {
    let url = service("BEAKER_TEST_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/test");
    let schema = format!("beaker_demo_{}", run_tag());
    let env = [("BEAKER_SESSION_URL", url.as_str()), ("BEAKER_SESSION_SCHEMA_NAME", schema.as_str())];
    if let Some(mut server) = spawn_or_skip("postgres", &env) {
        contract_and_restart(&mut server).await;
        // Best effort: psql is beside the server on these machines.
        let _ =
            Command::new("psql").arg(&url).args(["-qc", &format!("DROP SCHEMA IF EXISTS {schema} CASCADE")]).output();
    }
}

#[tokio::test]
async fn mysql() {
    let url = service("BEAKER_TEST_MYSQL_URL", "mysql://root@127.0.0.1:3306/test");
    let table = format!("beaker_demo_{}", run_tag());
    let env = [("BEAKER_SESSION_URL", url.as_str()), ("BEAKER_SESSION_TABLE_NAME", table.as_str())];
    if let Some(mut server) = spawn_or_skip("mysql", &env) {
        contract_and_restart(&mut server).await;
        let drop = format!("DROP TABLE IF EXISTS {table}_entries, {table}_retired, {table}");
        let _ = Command::new("mariadb").args(["-h", "127.0.0.1", "-u", "root", "test", "-e", &drop]).output();
    }
}

#[tokio::test]
async fn memcached() {
    let Ok(url) = std::env::var("BEAKER_TEST_MEMCACHED_URL") else {
        skip_or_fail(
            "memcached",
            "BEAKER_TEST_MEMCACHED_URL is not set (cargo xtask test starts a throwaway memcached)",
        );
        return;
    };
    let prefix = format!("beaker-test:demo:{}:", run_tag());
    let env = [
        ("BEAKER_SESSION_URL", url.as_str()),
        ("BEAKER_SESSION_KEY_PREFIX", &prefix),
        ("BEAKER_SESSION_TIMEOUT", "300"),
    ];
    if let Some(mut server) = spawn_or_skip("memcached", &env) {
        contract_and_restart(&mut server).await;
    }
}

#[tokio::test]
async fn s3() {
    // `cargo xtask test` starts moto, creates the `beaker-demo` bucket and sets the AWS_*
    // variables (endpoint, credentials, region, plain HTTP), which the demo inherits.
    if std::env::var("BEAKER_TEST_S3_URL").is_err() {
        skip_or_fail("s3", "BEAKER_TEST_S3_URL is not set (cargo xtask test starts moto, an S3 emulator)");
        return;
    }
    let url = format!("s3://beaker-demo/sessions/{}", run_tag());
    let env = [("BEAKER_SESSION_URL", url.as_str()), ("BEAKER_SESSION_TIMEOUT", "300")];
    if let Some(mut server) = spawn_or_skip("s3", &env) {
        contract_and_restart(&mut server).await;
    }
}
