//! The demo contract tests every demo package runs against its own binary: the whole
//! [`ContractSuite`] over the memory, cookie-only and file stores with restarts, the idle
//! timeout and Secure cookies, and a bad configuration. A demo's `tests/contract.rs` is
//! one line: `beaker_testkit::demo_contract_tests!(env!("CARGO_BIN_EXE_demo-axum"));`.

use std::path::Path;

use super::{idle_timeout, secure_cookie, ContractSuite, DemoServer};

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

/// The whole suite with cookie-only sessions, which survive a restart (same secret).
pub async fn cookie_sessions_pass_the_contract_and_survive_a_restart(binary: &Path) {
    let mut server = DemoServer::spawn(binary, &[("BEAKER_SESSION_TYPE", "cookie")]);
    let suite = ContractSuite::new(server.base_url()).cookie_only();
    let probe = suite.before_restart().await;
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

/// A bad variable: the demo exits non-zero with one line naming it.
pub fn bad_configuration_exits_with_one_line_naming_the_variable(binary: &Path) {
    let err = DemoServer::try_spawn(binary, &[("BEAKER_SESSION_TIMEOUT", "soon")]).expect_err("must not start");
    assert!(err.status.is_some_and(|s| !s.success()), "{err}");
    let lines: Vec<&str> = err.output.lines().filter(|l| !l.starts_with("warning:")).collect();
    assert!(lines.len() == 1 && lines[0].contains("BEAKER_SESSION_TIMEOUT"), "{err}");
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
        async fn app_page_and_metrics() {
            $crate::adapter::demo_app::app_page_and_metrics(demo_binary()).await
        }

        #[test]
        fn bad_configuration_exits_with_one_line_naming_the_variable() {
            $crate::adapter::demo::bad_configuration_exits_with_one_line_naming_the_variable(demo_binary())
        }
    };
}
