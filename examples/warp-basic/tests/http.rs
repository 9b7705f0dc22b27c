//! Starts the example on a free port and drives it over HTTP.

#[path = "../../basic_scenario.rs"]
mod basic_scenario;

#[tokio::test]
async fn counter_login_and_logout_over_http() {
    basic_scenario::run(env!("CARGO_BIN_EXE_warp-basic")).await;
}
