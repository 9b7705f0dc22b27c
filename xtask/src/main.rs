//! beaker-rs automation, all in Rust: `cargo xtask <command>`.
//!
//! | command | what it does |
//! |---|---|
//! | `test` | starts the throwaway services it can (and the Python Beaker venv of the interop tests), builds the workspace once, runs every test |
//! | `lint` | rustfmt check, clippy `-D warnings`, rustdoc, the core-purity check |
//! | `ci` | `test` then `lint` (what `.ci/run` runs) |
//! | `services` | starts the throwaway services and prints their URLs until Ctrl-C |
//! | `purity` | the core-purity check alone |
//! | `bench [criterion/http] [--quick]` | criterion micro-benchmarks and the HTTP load run against the peers; writes `docs/benchmarks.md` and `.svg` |
//! | `fuzz TARGET [--seconds N]` | runs one cargo-fuzz target for N seconds (default 30); `fuzz all` runs each |
//! | `soak [--seconds N] [--clients N] [--stores ...] [--debug]` | many clients against demo-axum over memory, SQLite and Redis: no lost update, flat memory, zero errors |
//! | `e2e [--debug]` | headless Chromium through demo-axum's `/app` (screenshots in `target/e2e/`) |

mod bench;
mod checks;
mod demo;
mod e2e;
mod fuzz;
mod http;
mod python_beaker;
mod services;
mod soak;

use std::process::{Command, ExitCode};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("test") => test(&args[1..]),
        Some("lint") => checks::lint(),
        Some("ci") => test(&[]).and_then(|()| checks::lint()),
        Some("services") => services::hold(),
        Some("purity") => checks::core_purity(),
        Some("fuzz") => fuzz::run(&args[1..]),
        Some("soak") => soak::run(&args[1..]),
        Some("e2e") => e2e::run(&args[1..]),
        Some("bench") => bench::run(&args[1..]),
        _ => {
            eprintln!("usage: cargo xtask <test | lint | ci | services | purity | fuzz TARGET|all [--seconds N] | soak [--seconds N] | e2e>");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}

/// An error for the user: one line, already explained.
pub(crate) type Result<T = ()> = std::result::Result<T, String>;

/// Whether we run under CI, where a missing service is a failure instead of a skip.
pub(crate) fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// Runs a command to completion, failing on a non-zero exit.
pub(crate) fn run(cmd: &mut Command) -> Result {
    eprintln!("$ {}", describe(cmd));
    let status = cmd.status().map_err(|e| format!("could not start {}: {e}", describe(cmd)))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{} failed ({status})", describe(cmd)))
    }
}

fn describe(cmd: &Command) -> String {
    std::iter::once(cmd.get_program().to_string_lossy().into_owned())
        .chain(cmd.get_args().map(|a| a.to_string_lossy().into_owned()))
        .collect::<Vec<_>>()
        .join(" ")
}

pub(crate) fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

/// The flags every build and test step shares, so that one build serves them all.
pub(crate) const BUILD_FLAGS: &[&str] = &["--workspace", "--all-targets", "--all-features", "--locked"];

fn test(extra: &[String]) -> Result {
    let mut services = services::Services::start()?;
    services.python_beaker();
    services.report();
    if in_ci() && !services.missing.is_empty() {
        return Err(format!(
            "CI=true and these services are unavailable: {} — failing instead of skipping",
            services.missing.iter().map(|m| m.suite).collect::<Vec<_>>().join(", ")
        ));
    }
    run(cargo().arg("build").args(BUILD_FLAGS))?;
    let mut cmd = cargo();
    cmd.arg("test").args(["--workspace", "--all-features", "--locked", "--no-fail-fast"]).args(extra);
    for (k, v) in &services.env {
        cmd.env(k, v);
    }
    let outcome = run(&mut cmd);
    services.report();
    outcome
}
