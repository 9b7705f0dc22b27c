//! [`CliError`]: why a command failed, and the exit status that says so.

use beaker_rs::{BuildError, ConfigError, StoreError};

/// Why a command failed. Printed as one line on stderr; [`exit_code`](Self::exit_code)
/// is the process's exit status.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CliError {
    /// The command line is wrong (exit status 2, like clap's own usage errors).
    #[error("{0}")]
    Usage(String),
    /// The configuration is wrong; the message names the option or variable.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A store or cache backend could not be opened.
    #[error(transparent)]
    Build(BuildError),
    /// A store or cache backend failed, or cannot do what was asked.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A cache operation failed.
    #[error(transparent)]
    Cache(#[from] beaker_rs::Error),
    /// A file could not be read, or what was asked for does not exist.
    #[error("{0}")]
    Input(String),
    /// The reader of the output went away (`beaker sessions list | head`): not an error
    /// of the command, so it ends quietly with status 0.
    #[error("the output was closed")]
    OutputClosed,
}

impl CliError {
    /// 2 for usage errors, 0 when the output was closed, 1 for everything else.
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::OutputClosed => 0,
            CliError::Usage(_) => 2,
            _ => 1,
        }
    }

    /// The message and its causes, on one line.
    pub fn one_line(&self) -> String {
        let mut line = self.to_string();
        let mut source = std::error::Error::source(self);
        // `transparent` variants share their source's message: skip what is already said.
        while let Some(cause) = source {
            let text = cause.to_string();
            if !line.contains(&text) {
                line.push_str(": ");
                line.push_str(&text);
            }
            source = cause.source();
        }
        line.replace('\n', " ")
    }
}
