//! The demo contract (`shared/DEMO-CONTRACT.md`), black-box, on the warp demo.

use std::path::Path;

use beaker_testkit::adapter::{idle_timeout, secure_cookie, ContractSuite, DemoServer};

fn binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_demo-warp"))
}

#[tokio::test]
async fn memory_store_passes_the_contract_and_forgets_in_a_restart() {
    let mut server = DemoServer::spawn(binary(), &[("BEAKER_SESSION_TYPE", "memory")]);
    ContractSuite::new(server.base_url()).expect_secure(false).run().await;
    let probe = ContractSuite::new(server.base_url()).before_restart().await;
    server.restart();
    let again = ContractSuite::new(server.base_url());
    again.lost_in_restart(&probe).await;
    again.first_write().await;
    let status = server.stop().expect("the demo was running");
    assert!(status.success(), "the demo must exit cleanly on SIGTERM: {status}; output:\n{}", server.output());
}

#[tokio::test]
async fn cookie_sessions_pass_the_contract_and_survive_a_restart() {
    let mut server = DemoServer::spawn(binary(), &[("BEAKER_SESSION_TYPE", "cookie")]);
    let suite = ContractSuite::new(server.base_url()).cookie_only();
    let probe = suite.before_restart().await;
    suite.expect_secure(false).run().await;
    // The same secret after a restart: cookie-only sessions live on.
    server.restart();
    ContractSuite::new(server.base_url()).cookie_only().survived_restart(&probe).await;
}

#[tokio::test]
async fn file_store_passes_the_contract_and_survives_a_restart() {
    let mut server = DemoServer::spawn(binary(), &[("BEAKER_SESSION_TYPE", "file")]);
    let suite = ContractSuite::new(server.base_url());
    let probe = suite.before_restart().await;
    suite.run().await;
    server.restart();
    ContractSuite::new(server.base_url()).survived_restart(&probe).await;
}

#[tokio::test]
async fn idle_timeout_and_secure_cookies() {
    let idle = DemoServer::spawn(binary(), &[("BEAKER_SESSION_TYPE", "memory"), ("BEAKER_SESSION_TIMEOUT", "1")]);
    let secure = DemoServer::spawn(binary(), &[("BEAKER_SESSION_TYPE", "memory"), ("BEAKER_SESSION_SECURE", "true")]);
    tokio::join!(idle_timeout(idle.base_url()), secure_cookie(secure.base_url()));
}

#[test]
fn bad_configuration_exits_with_one_line_naming_the_variable() {
    let err = DemoServer::try_spawn(binary(), &[("BEAKER_SESSION_TIMEOUT", "soon")]).expect_err("must not start");
    assert!(err.status.is_some_and(|s| !s.success()), "{err}");
    let lines: Vec<&str> = err.output.lines().filter(|l| !l.starts_with("warning:")).collect();
    assert!(lines.len() == 1 && lines[0].contains("BEAKER_SESSION_TIMEOUT"), "{err}");
}
