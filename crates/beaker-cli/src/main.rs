//! `beaker`: see `beaker --help`, or the crate documentation.

use std::process::ExitCode;

use clap::Parser as _;

fn main() -> ExitCode {
    // Usage errors print clap's message and exit with 2; `--help` and `--version` with 0.
    let cli = beaker_cli::Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("beaker: error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(beaker_cli::run(cli)) {
        Ok(()) | Err(beaker_cli::CliError::OutputClosed) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("beaker: error: {}", e.one_line());
            ExitCode::from(e.exit_code())
        }
    }
}
