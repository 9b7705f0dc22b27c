//! # beaker-cli
//!
//! The `beaker` command: administer the sessions and caches of a beaker-rs application
//! from a shell on the server, against whatever store the application uses, read from the
//! same configuration (the `BEAKER_SESSION_*` and `BEAKER_CACHE_*` environment, or a
//! Beaker-style INI or a TOML file).
//!
//! ```text
//! beaker sessions count | list [--principal P] [--limit N] | show HANDLE | end HANDLE
//!                       | end-principal P | purge-expired
//! beaker cache stats REGION [NAMESPACE] | clear REGION [NAMESPACE] | get REGION NAMESPACE KEY
//! beaker config check [--offline]
//! ```
//!
//! Install it with `cargo install beaker-cli`; `beaker --help` is the manual. This library
//! target exists for the binary and its tests: [`Scan`] is the paged walk that keeps the
//! tool's memory bounded on stores of any size.

mod cache;
mod check;
mod cli;
mod error;
mod output;
pub mod scan;
mod sessions;
mod settings;

pub use cli::{CacheCommand, Cli, Command, ConfigCommand, Global, SessionsCommand};
pub use error::CliError;
pub use scan::Scan;
pub use settings::Source;

/// Runs one command line.
pub async fn run(cli: Cli) -> Result<(), CliError> {
    let source = match cli.global.config.clone() {
        Some(path) => Source::File { path, section: cli.global.section.clone() },
        None => Source::Environment,
    };
    match cli.command {
        Command::Sessions(command) => sessions::run(&cli.global, &source, command).await,
        Command::Cache(command) => cache::run(&cli.global, &source, command).await,
        Command::Config(ConfigCommand::Check { offline }) => check::run(&cli.global, &source, offline).await,
    }
}
