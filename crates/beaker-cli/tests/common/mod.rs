//! Shared by the `beaker` binary's tests: running it, and the stores it is run against,
//! each on the real server with names unique to the run.

#![allow(dead_code, unreachable_pub)]

use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// A name unique to this run and call: `prefix_<time>_<n>`.
pub fn unique(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let t = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos();
    format!("{prefix}_{:x}_{}_{}", t, std::process::id(), N.fetch_add(1, Ordering::Relaxed))
}

/// What one run of the binary printed, and its exit status.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn ok(self) -> String {
        assert_eq!(self.code, 0, "expected success; stderr: {}", self.stderr);
        self.stdout
    }
    pub fn json(self) -> serde_json::Value {
        let out = self.ok();
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
    }
}

/// Runs `beaker ARGS` with exactly `env` as its BEAKER_* environment (the test's own is
/// not passed on; `PATH` and cloud credentials are).
pub fn beaker(env: &[(String, String)], args: &[&str]) -> Run {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_beaker"));
    cmd.env_clear();
    // The object stores' credentials and endpoints come from the environment, as in an
    // application.
    for (k, v) in std::env::vars() {
        if k == "PATH" || ["AWS_", "AZURE_", "GOOGLE_"].iter().any(|p| k.starts_with(p)) {
            cmd.env(k, v);
        }
    }
    cmd.envs(env.iter().map(|(k, v)| (k, v))).args(args);
    let Output { status, stdout, stderr } = cmd.output().expect("the beaker binary runs");
    let stderr = String::from_utf8_lossy(&stderr).into_owned();
    assert!(!stderr.contains("panicked"), "beaker panicked: {stderr}");
    Run { code: status.code().unwrap_or(-1), stdout: String::from_utf8_lossy(&stdout).into_owned(), stderr }
}

/// The value of a BEAKER_TEST_* variable, or a loud skip (a failure under CI=true).
pub fn service(var: &str, suite: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(url) if !url.trim().is_empty() => Some(url),
        _ => {
            beaker_testkit::skip_or_fail(suite, &format!("{var} is not set (cargo xtask test sets it)"));
            None
        }
    }
}

/// Options as `(name, value)` pairs, written as the environment (`BEAKER_SESSION_URL`)
/// for the binary and as a map (`session.url`) for the test's own handle on the store.
pub fn as_env(prefix: &str, options: &[(String, String)]) -> Vec<(String, String)> {
    options
        .iter()
        .map(|(k, v)| (format!("BEAKER_{prefix}_{}", k.to_ascii_uppercase().replace('.', "_")), v.clone()))
        .collect()
}

pub fn as_map(prefix: &str, options: &[(String, String)]) -> Vec<(String, String)> {
    options.iter().map(|(k, v)| (format!("{prefix}.{k}"), v.clone())).collect()
}

pub mod sql {
    //! Per-run PostgreSQL schemas and MySQL databases, dropped at the end.

    use sqlx::Connection as _;

    pub async fn drop_postgres_schema(url: &str, schema: &str) {
        let mut c = sqlx::PgConnection::connect(url).await.expect("postgres");
        sqlx::raw_sql(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE")).execute(&mut c).await.expect("drop schema");
    }

    /// A database of its own on the MySQL server of `url`.
    pub struct MysqlDatabase {
        pub url: String,
        name: String,
    }

    impl MysqlDatabase {
        pub async fn create(url: &str) -> Self {
            let name = super::unique("cli");
            let mut c = sqlx::MySqlConnection::connect(url).await.expect("mysql");
            sqlx::raw_sql(&format!("CREATE DATABASE {name}")).execute(&mut c).await.expect("create database");
            let base = url.split('?').next().unwrap_or(url);
            let server = base.rsplit_once('/').map_or(base, |(s, _)| s);
            MysqlDatabase { url: format!("{server}/{name}"), name }
        }

        pub async fn drop(self) {
            let mut c = sqlx::MySqlConnection::connect(&self.url).await.expect("mysql");
            sqlx::raw_sql(&format!("DROP DATABASE IF EXISTS {}", self.name)).execute(&mut c).await.expect("drop");
        }
    }
}
