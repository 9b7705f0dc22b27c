//! Start-up: the listening address, the managers from the environment, the one-line
//! announcement and the shutdown signal.

use std::io::Write as _;
use std::net::SocketAddr;
use std::time::Duration;

use beaker_rs::config::{CacheConfig, RegionConfig};
use beaker_rs::SessionManager;

use crate::routes::{Demo, DEMO_REGION};

const ADDR_VAR: &str = "BEAKER_DEMO_ADDR";
const SLOW_VAR: &str = "BEAKER_DEMO_SLOW_MS";
const DEFAULT_ADDR: &str = "127.0.0.1:3000";
const DEFAULT_SLOW_MS: u64 = 200;

/// Why a demo could not start; the message names the variable at fault.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartupError {
    /// A `BEAKER_SESSION_*` or `BEAKER_CACHE_*` variable was refused by the library, or
    /// the store it names could not be opened.
    #[error("{0}")]
    Config(#[from] beaker_rs::BuildError),
    /// The listening address could not be bound.
    #[error("cannot listen on {addr} (BEAKER_DEMO_ADDR): {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A demo variable (`BEAKER_DEMO_*`) could not be read.
    #[error("invalid value {value:?} for {var}: expected {expected}")]
    Demo {
        /// The variable.
        var: &'static str,
        /// Its value.
        value: String,
        /// What is accepted.
        expected: &'static str,
    },
}

/// What a demo needs to serve: where, the session manager, and the route logic.
#[derive(Debug)]
pub struct Startup {
    /// Where to listen (`BEAKER_DEMO_ADDR`, default `127.0.0.1:3000`).
    pub addr: SocketAddr,
    /// The session manager built from `BEAKER_SESSION_*`.
    pub manager: SessionManager,
    /// The route logic, with the cache behind `/cached`.
    pub demo: Demo,
}

/// The demo's session store when `BEAKER_SESSION_TYPE` and `BEAKER_SESSION_URL` are unset:
/// an embedded SQLite file in the working directory, so sessions survive a restart.
pub const DEFAULT_SESSION_URL: &str = "sqlite:beaker-demo.sqlite3";

/// The demo's cache when `BEAKER_CACHE_REGIONS` is unset: region `demo`, memory, 5 s.
pub fn default_cache_config() -> CacheConfig {
    CacheConfig::new().with_region(DEMO_REGION, RegionConfig::memory(Some(Duration::from_secs(5))))
}

impl Startup {
    /// Reads the whole configuration from the environment and opens the stores it names.
    pub async fn from_env() -> Result<Startup, StartupError> {
        let addr = demo_var(ADDR_VAR, DEFAULT_ADDR, "a socket address such as 127.0.0.1:3000")?;
        let slow_ms = demo_var(SLOW_VAR, &DEFAULT_SLOW_MS.to_string(), "a number of milliseconds")?;
        // Before the managers: they register their counters with the recorder installed
        // when they are built.
        crate::install_metrics();
        let manager = beaker_rs::insecure_demo_session_manager_from_env_or(DEFAULT_SESSION_URL).await?;
        let caches = beaker_rs::cache_manager_from_env_or(default_cache_config()).await?;
        let demo = Demo::new(Duration::from_millis(slow_ms), caches, manager.clone());
        Ok(Startup { addr, manager, demo })
    }
}

fn demo_var<T: std::str::FromStr>(var: &'static str, default: &str, expected: &'static str) -> Result<T, StartupError> {
    let value = std::env::var(var).unwrap_or_else(|_| default.to_owned());
    value.trim().parse().map_err(|_| StartupError::Demo { var, value, expected })
}

impl Startup {
    /// Binds the listening socket (non-blocking, ready for any runtime).
    pub fn bind(&self) -> Result<std::net::TcpListener, StartupError> {
        let addr = self.addr;
        let listener = std::net::TcpListener::bind(addr).map_err(|source| StartupError::Bind { addr, source })?;
        listener.set_nonblocking(true).map_err(|source| StartupError::Bind { addr, source })?;
        Ok(listener)
    }
}

/// [`Startup::from_env`], or one line on stderr and exit status 2.
pub async fn startup_or_exit() -> Startup {
    Box::pin(Startup::from_env()).await.unwrap_or_else(|e| exit_with(&e))
}

/// Prints `error: {e}` as one line on stderr and exits with status 2.
pub fn exit_with(e: &StartupError) -> ! {
    eprintln!("error: {e}");
    std::process::exit(2)
}

/// Prints the one line `listening on http://ADDR` the contract promises once the server
/// accepts connections (flushed: tests and scripts wait for it on a pipe).
pub fn announce(addr: SocketAddr) {
    let mut out = std::io::stdout().lock();
    // A closed stdout must not stop the server.
    let _ = writeln!(out, "listening on http://{addr}").and_then(|()| out.flush());
}

/// Resolves on SIGINT (Ctrl-C) or, on Unix, SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}
