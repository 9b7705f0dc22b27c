//! beaker-rs automation, all in Rust: `cargo xtask <command>` (`cargo xtask help` lists
//! the commands, `cargo xtask help COMMAND` their options).

mod bench;
mod checks;
mod demo;
mod e2e;
mod fuzz;
mod host;
mod http;
mod publish;
mod python_beaker;
mod services;
mod soak;
mod tidy;

use std::process::{Command, ExitCode};

use clap::{Parser, Subcommand};

/// beaker-rs automation.
#[derive(Parser)]
#[command(name = "cargo xtask", bin_name = "cargo xtask")]
struct Cli {
    #[command(subcommand)]
    command: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Start the throwaway services it can, build the workspace once, run every test.
    Test {
        /// Passed on to `cargo test` (e.g. `-- --nocapture`).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        extra: Vec<String>,
    },
    /// rustfmt check, clippy `-D warnings`, rustdoc, the core-purity check, publish-check,
    /// tidy.
    Lint,
    /// `test` then `lint` (what `.ci/run` runs).
    Ci,
    /// Start the throwaway services and print their URLs until Ctrl-C.
    Services,
    /// The core-purity check alone.
    Purity,
    /// Criterion micro-benchmarks and the HTTP load run against the peers; writes
    /// `docs/benchmarks.md` and `docs/benchmarks.svg`.
    Bench(bench::Args),
    /// Run one cargo-fuzz target (or `all`) for a bounded time.
    Fuzz(fuzz::Args),
    /// Many clients against demo-axum over memory, SQLite and Redis: no lost update, flat
    /// memory, zero errors.
    Soak(soak::Args),
    /// `cargo package` of every publishable crate, after checking its metadata, README and
    /// licence files (also part of `lint`).
    PublishCheck(publish::Args),
    /// Every relative link and repository path named in the docs and in code comments
    /// exists (also part of `lint`).
    Tidy,
    /// Headless Chromium through demo-axum's `/app` (screenshots in `target/e2e/`).
    E2e(e2e::Args),
}

fn main() -> ExitCode {
    let result = match Cli::parse().command {
        Task::Test { extra } => test(&extra),
        Task::Lint => checks::lint(),
        Task::Ci => test(&[]).and_then(|()| checks::lint()),
        Task::Services => services::hold(),
        Task::Purity => checks::core_purity(),
        Task::Fuzz(args) => fuzz::run(&args),
        Task::Soak(args) => soak::run(&args),
        Task::E2e(args) => e2e::run(&args),
        Task::Bench(args) => bench::run(&args),
        Task::Tidy => tidy::run(),
        Task::PublishCheck(args) => publish::run_check(&args),
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
