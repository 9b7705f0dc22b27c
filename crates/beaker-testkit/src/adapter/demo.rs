//! The demo contract tests every demo package runs against its own binary: the whole
//! [`ContractSuite`] over the memory, cookie-only and file stores with restarts, the idle
//! timeout and Secure cookies, a bad configuration, the logout and login races on
//! every server-side store ([`session_races`]), and a user's sessions listed and ended
//! on each of them ([`sessions_per_user`]). A demo's `tests/contract.rs` is
//! one line: `beaker_testkit::demo_contract_tests!(env!("CARGO_BIN_EXE_demo-axum"));`.

use std::panic::AssertUnwindSafe;
use std::path::Path;

use futures_util::FutureExt as _;

use super::{cache_headers_off, idle_timeout, secure_cookie, ContractSuite, DemoServer, RACE_TRIALS};
use crate::skip_or_fail;

/// The whole suite on the memory store; a restart forgets sessions; SIGTERM exits cleanly.
pub async fn memory_store_passes_the_contract_and_forgets_in_a_restart(binary: &Path) {
    let mut server = DemoServer::spawn(binary, &[("BEAKER_SESSION_TYPE", "memory")]);
    ContractSuite::new(server.base_url()).expect_secure(false).run().await;
    let probe = ContractSuite::new(server.base_url()).before_restart().await;
    server.restart();
    let again = ContractSuite::new(server.base_url());
    again.lost_in_restart(&probe).await;
    again.first_write().await;
    let status = server.stop().expect("the demo was running");
    assert!(status.success(), "the demo must exit cleanly on SIGTERM: {status}; output:\n{}", server.output());
}

/// The whole suite with cookie-only sessions, which survive a restart (same secret); the
/// routes of a user's sessions answer 501.
pub async fn cookie_sessions_pass_the_contract_and_survive_a_restart(binary: &Path) {
    let mut server = DemoServer::spawn(binary, &[("BEAKER_SESSION_TYPE", "cookie")]);
    let suite = ContractSuite::new(server.base_url()).cookie_only();
    let probe = suite.before_restart().await;
    suite.sessions_per_user_unsupported().await;
    suite.expect_secure(false).run().await;
    // The same secret after a restart: cookie-only sessions live on.
    server.restart();
    ContractSuite::new(server.base_url()).cookie_only().survived_restart(&probe).await;
}

/// The whole suite on the file store, whose sessions survive a restart.
pub async fn file_store_passes_the_contract_and_survives_a_restart(binary: &Path) {
    let mut server = DemoServer::spawn(binary, &[("BEAKER_SESSION_TYPE", "file")]);
    let suite = ContractSuite::new(server.base_url());
    let probe = suite.before_restart().await;
    suite.run().await;
    server.restart();
    ContractSuite::new(server.base_url()).survived_restart(&probe).await;
}

/// The idle timeout (`BEAKER_SESSION_TIMEOUT=1`) and Secure cookies, on two servers.
pub async fn idle_timeout_and_secure_cookies(binary: &Path) {
    let idle = DemoServer::spawn(binary, &[("BEAKER_SESSION_TYPE", "memory"), ("BEAKER_SESSION_TIMEOUT", "1")]);
    let secure = DemoServer::spawn(binary, &[("BEAKER_SESSION_TYPE", "memory"), ("BEAKER_SESSION_SECURE", "true")]);
    tokio::join!(idle_timeout(idle.base_url()), secure_cookie(secure.base_url()));
}

/// Caching headers: the scenarios of the whole suite once more on Redis (skipped loudly
/// when Redis is not reachable, failed under `CI=true`); `BEAKER_SESSION_CACHE_HEADERS=off`
/// turns them off; any other value than `auto` or `off` is refused at start-up, naming
/// the variable.
pub async fn cache_headers_on_redis_and_off(binary: &Path) {
    let off = DemoServer::spawn(binary, &[("BEAKER_SESSION_TYPE", "memory"), ("BEAKER_SESSION_CACHE_HEADERS", "off")]);
    cache_headers_off(off.base_url()).await;
    drop(off);
    let err =
        DemoServer::try_spawn(binary, &[("BEAKER_SESSION_TYPE", "memory"), ("BEAKER_SESSION_CACHE_HEADERS", "on")])
            .expect_err("must not start");
    assert!(err.status.is_some_and(|s| !s.success()), "{err}");
    assert!(err.output.contains("BEAKER_SESSION_CACHE_HEADERS") && err.output.contains("auto or off"), "{err}");

    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    let url = std::env::var("BEAKER_TEST_REDIS_URL")
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "redis://127.0.0.1:6379".into());
    let prefix = format!("beaker-test:caching:{}_{nanos}:", std::process::id());
    // Records expire on their own (idle timeout): nothing is left behind under the prefix.
    let env = [
        ("BEAKER_SESSION_URL", url.as_str()),
        ("BEAKER_SESSION_KEY_PREFIX", &prefix),
        ("BEAKER_SESSION_TIMEOUT", "300"),
    ];
    let server = match DemoServer::try_spawn(binary, &env) {
        Ok(server) => server,
        Err(e) => return skip_or_fail("caching headers on redis", &format!("the demo could not start: {e}")),
    };
    let suite = ContractSuite::new(server.base_url());
    suite.cache_headers().await;
    suite.cache_headers_merge().await;
}

/// A bad variable: the demo exits non-zero with one line naming it.
pub fn bad_configuration_exits_with_one_line_naming_the_variable(binary: &Path) {
    let err = DemoServer::try_spawn(binary, &[("BEAKER_SESSION_TIMEOUT", "soon")]).expect_err("must not start");
    assert!(err.status.is_some_and(|s| !s.success()), "{err}");
    let lines: Vec<&str> = err.output.lines().filter(|l| !l.starts_with("warning:")).collect();
    assert!(lines.len() == 1 && lines[0].contains("BEAKER_SESSION_TIMEOUT"), "{err}");
}

/// A server-side store the demo can run the races on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RaceStore {
    /// `BEAKER_SESSION_TYPE=memory`.
    Memory,
    /// `BEAKER_SESSION_TYPE=file`, in the demo's working directory.
    File,
    /// The demo's default: a SQLite file in its working directory.
    Sqlite,
    /// `BEAKER_TEST_POSTGRES_URL` (default `postgres://postgres@127.0.0.1:5432/test`), in a
    /// schema of the run's own, dropped afterwards (through `psql`, best effort).
    Postgres,
    /// `BEAKER_TEST_REDIS_URL` (default `redis://127.0.0.1:6379`), under a key prefix of
    /// the run's own, with records that expire after 300 s.
    Redis,
    /// `BEAKER_TEST_MEMCACHED_URL` (set by `cargo xtask test`, which starts a throwaway
    /// memcached), under a key prefix of the run's own, records expiring after 300 s.
    Memcached,
}

/// A demo server on `store`, with the run's own schema or key prefix (`tag`); `Ok(None)`
/// when the store's server is not reachable (the caller skips, loudly).
fn spawn_on(binary: &Path, store: RaceStore, tag: &str, what: &str) -> Option<DemoServer> {
    let service =
        |var: &str, default: &str| std::env::var(var).ok().filter(|v| !v.is_empty()).unwrap_or(default.into());
    let env: Vec<(&str, String)> = match store {
        RaceStore::Memory => vec![("BEAKER_SESSION_TYPE", "memory".into())],
        RaceStore::File => vec![("BEAKER_SESSION_TYPE", "file".into())],
        RaceStore::Sqlite => vec![],
        RaceStore::Postgres => vec![
            ("BEAKER_SESSION_URL", service("BEAKER_TEST_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/test")),
            ("BEAKER_SESSION_SCHEMA_NAME", format!("beaker_race_{tag}")),
        ],
        RaceStore::Redis => vec![
            ("BEAKER_SESSION_URL", service("BEAKER_TEST_REDIS_URL", "redis://127.0.0.1:6379")),
            ("BEAKER_SESSION_KEY_PREFIX", format!("beaker-test:race:{tag}:")),
            ("BEAKER_SESSION_TIMEOUT", "300".into()),
        ],
        RaceStore::Memcached => {
            let Some(url) = std::env::var("BEAKER_TEST_MEMCACHED_URL").ok().filter(|v| !v.is_empty()) else {
                skip_or_fail(
                    what,
                    "BEAKER_TEST_MEMCACHED_URL is not set (cargo xtask test starts a throwaway memcached)",
                );
                return None;
            };
            vec![
                ("BEAKER_SESSION_URL", url),
                ("BEAKER_SESSION_KEY_PREFIX", format!("beaker-test:race:{tag}:")),
                ("BEAKER_SESSION_TIMEOUT", "300".into()),
            ]
        }
    };
    let env_refs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    match DemoServer::try_spawn(binary, &env_refs) {
        Ok(server) => Some(server),
        // Only a missing database server is a reason to skip; the embedded stores must run.
        Err(e) if matches!(store, RaceStore::Postgres | RaceStore::Redis | RaceStore::Memcached) => {
            skip_or_fail(what, &format!("the demo could not start: {e}"));
            None
        }
        Err(e) => panic!("{what}: the demo did not start: {e}"),
    }
}

/// Drops the run's PostgreSQL schema (through `psql`, best effort); other stores clean up
/// by themselves (expiring keys) or live in the demo's temporary directory.
fn drop_schema(store: RaceStore, tag: &str) {
    if store == RaceStore::Postgres {
        let url = std::env::var("BEAKER_TEST_POSTGRES_URL")
            .ok()
            .filter(|v| !v.is_empty())
            .unwrap_or("postgres://postgres@127.0.0.1:5432/test".into());
        let _ = std::process::Command::new("psql")
            .arg(&url)
            .args(["-qc", &format!("DROP SCHEMA IF EXISTS beaker_race_{tag} CASCADE")])
            .output();
    }
}

fn run_tag() -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    format!("r{}_{nanos}", std::process::id())
}

fn store_name(store: RaceStore) -> &'static str {
    match store {
        RaceStore::Memory => "memory",
        RaceStore::File => "file",
        RaceStore::Sqlite => "sqlite",
        RaceStore::Postgres => "postgres",
        RaceStore::Redis => "redis",
        RaceStore::Memcached => "memcached",
    }
}

/// [`ContractSuite::sessions_per_user`] and [`ContractSuite::logout_everywhere_race`]
/// ([`RACE_TRIALS`] trials) against the demo on `store`: three clients of one user, their
/// listing, ending one by handle, logout everywhere, and in-flight requests that never
/// revive an ended session. Skips like [`session_races`] when a server is missing.
pub async fn sessions_per_user(binary: &Path, store: RaceStore) {
    let tag = run_tag();
    let what = format!("sessions per user on {}", store_name(store));
    let Some(server) = spawn_on(binary, store, &tag, &what) else { return };
    let suite = ContractSuite::new(server.base_url());
    let listing = AssertUnwindSafe(suite.sessions_per_user()).catch_unwind().await;
    let race = AssertUnwindSafe(suite.logout_everywhere_race(RACE_TRIALS)).catch_unwind().await;
    drop(server);
    drop_schema(store, &tag);
    for outcome in [listing, race] {
        if let Err(panic) = outcome {
            std::panic::resume_unwind(panic);
        }
    }
}

/// [`ContractSuite::logout_race`] and [`ContractSuite::login_race`], [`RACE_TRIALS`] trials
/// each, against the demo on `store`. A PostgreSQL or Redis server that is not reachable
/// skips the test with a loud line ([`skip_or_fail`]), or fails it under `CI=true`.
pub async fn session_races(binary: &Path, store: RaceStore) {
    let tag = run_tag();
    let what = format!("session races on {}", store_name(store));
    let Some(server) = spawn_on(binary, store, &tag, &what) else { return };
    let suite = ContractSuite::new(server.base_url());
    let logout = AssertUnwindSafe(suite.logout_race(RACE_TRIALS)).catch_unwind().await;
    let login = AssertUnwindSafe(suite.login_race(RACE_TRIALS)).catch_unwind().await;
    drop(server);
    drop_schema(store, &tag);
    for outcome in [logout, login] {
        if let Err(panic) = outcome {
            std::panic::resume_unwind(panic);
        }
    }
}

/// Declares the demo contract tests of [`demo`](crate::adapter::demo) for one demo binary,
/// as `#[tokio::test]` functions of the calling test crate (which needs `tokio` with the
/// `macros` and `rt-multi-thread` features).
///
/// ```ignore
/// beaker_testkit::demo_contract_tests!(env!("CARGO_BIN_EXE_demo-axum"));
/// ```
#[macro_export]
macro_rules! demo_contract_tests {
    ($binary:expr) => {
        fn demo_binary() -> &'static ::std::path::Path {
            ::std::path::Path::new($binary)
        }

        #[::tokio::test]
        async fn near_cache_sees_every_write_of_another_process() {
            $crate::adapter::demo_near::near_cache_sees_every_write(demo_binary()).await
        }

        #[::tokio::test]
        async fn memory_store_passes_the_contract_and_forgets_in_a_restart() {
            $crate::adapter::demo::memory_store_passes_the_contract_and_forgets_in_a_restart(demo_binary()).await
        }

        #[::tokio::test]
        async fn cookie_sessions_pass_the_contract_and_survive_a_restart() {
            $crate::adapter::demo::cookie_sessions_pass_the_contract_and_survive_a_restart(demo_binary()).await
        }

        #[::tokio::test]
        async fn file_store_passes_the_contract_and_survives_a_restart() {
            $crate::adapter::demo::file_store_passes_the_contract_and_survives_a_restart(demo_binary()).await
        }

        #[::tokio::test]
        async fn idle_timeout_and_secure_cookies() {
            $crate::adapter::demo::idle_timeout_and_secure_cookies(demo_binary()).await
        }

        #[::tokio::test]
        async fn session_races_on_memory() {
            $crate::adapter::demo::session_races(demo_binary(), $crate::adapter::demo::RaceStore::Memory).await
        }

        #[::tokio::test]
        async fn session_races_on_file() {
            $crate::adapter::demo::session_races(demo_binary(), $crate::adapter::demo::RaceStore::File).await
        }

        #[::tokio::test]
        async fn session_races_on_sqlite() {
            $crate::adapter::demo::session_races(demo_binary(), $crate::adapter::demo::RaceStore::Sqlite).await
        }

        #[::tokio::test]
        async fn session_races_on_postgres() {
            $crate::adapter::demo::session_races(demo_binary(), $crate::adapter::demo::RaceStore::Postgres).await
        }

        #[::tokio::test]
        async fn session_races_on_redis() {
            $crate::adapter::demo::session_races(demo_binary(), $crate::adapter::demo::RaceStore::Redis).await
        }

        #[::tokio::test]
        async fn sessions_per_user_on_memory() {
            $crate::adapter::demo::sessions_per_user(demo_binary(), $crate::adapter::demo::RaceStore::Memory).await
        }

        #[::tokio::test]
        async fn sessions_per_user_on_file() {
            $crate::adapter::demo::sessions_per_user(demo_binary(), $crate::adapter::demo::RaceStore::File).await
        }

        #[::tokio::test]
        async fn sessions_per_user_on_sqlite() {
            $crate::adapter::demo::sessions_per_user(demo_binary(), $crate::adapter::demo::RaceStore::Sqlite).await
        }

        #[::tokio::test]
        async fn sessions_per_user_on_postgres() {
            $crate::adapter::demo::sessions_per_user(demo_binary(), $crate::adapter::demo::RaceStore::Postgres).await
        }

        #[::tokio::test]
        async fn sessions_per_user_on_redis() {
            $crate::adapter::demo::sessions_per_user(demo_binary(), $crate::adapter::demo::RaceStore::Redis).await
        }

        #[::tokio::test]
        async fn sessions_per_user_on_memcached() {
            $crate::adapter::demo::sessions_per_user(demo_binary(), $crate::adapter::demo::RaceStore::Memcached).await
        }

        #[::tokio::test]
        async fn cache_headers_on_redis_and_off() {
            $crate::adapter::demo::cache_headers_on_redis_and_off(demo_binary()).await
        }

        #[::tokio::test]
        async fn app_page_and_metrics() {
            $crate::adapter::demo_app::app_page_and_metrics(demo_binary()).await
        }

        #[test]
        fn bad_configuration_exits_with_one_line_naming_the_variable() {
            $crate::adapter::demo::bad_configuration_exits_with_one_line_naming_the_variable(demo_binary())
        }
    };
}
