//! [`DemoServer`]: a demo binary running on a free loopback port, for black-box tests.

use std::fmt;
use std::io::{BufRead as _, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use beaker_core::SessionId;

/// How long a demo may take to print its `listening on` line.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a demo may take to exit after SIGTERM before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// The line the contract promises once the server accepts connections.
const ANNOUNCEMENT: &str = "listening on http://";

/// Why a demo binary did not come up.
#[derive(Debug)]
pub struct SpawnError {
    /// What went wrong, in one line.
    pub reason: String,
    /// The exit status, when the process exited (bad configuration exits non-zero).
    pub status: Option<ExitStatus>,
    /// Everything the process printed on stdout and stderr, line by line.
    pub output: String,
}

impl fmt::Display for SpawnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.reason)?;
        if let Some(status) = self.status {
            write!(f, " ({status})")?;
        }
        write!(f, "; output:\n{}", self.output)
    }
}

impl std::error::Error for SpawnError {}

/// A demo app (`docs/demo-contract.md`) running as a child process on a loopback port.
///
/// [`spawn`](Self::spawn) starts the binary with `BEAKER_DEMO_ADDR=127.0.0.1:0` and waits
/// (up to 60 s) for its `listening on http://ADDR` line; [`base_url`](Self::base_url) is
/// then `http://ADDR`. The child runs in a fresh temporary working directory (so a demo's
/// default SQLite file lands there), without any `BEAKER_*` variable of the test's own
/// environment, and with a random `BEAKER_SESSION_SECRET` unless `env` sets one; the
/// variables in `env` come last and win. Dropping the server stops it (SIGTERM, then a
/// kill after 10 s).
///
/// [`restart`](Self::restart) stops and starts it again with the same environment,
/// secret, working directory and, when the port is still free, the same address: what a
/// persistent store must survive.
///
/// ```no_run
/// use beaker_testkit::adapter::{ContractSuite, DemoServer};
///
/// # async fn demo() {
/// // In an integration test of the demo's own package: env!("CARGO_BIN_EXE_demo-axum").
/// let binary = std::path::Path::new("target/debug/demo-axum");
/// let server = DemoServer::spawn(binary, &[("BEAKER_SESSION_TYPE", "memory")]);
/// ContractSuite::new(server.base_url()).run().await;
/// # }
/// ```
#[derive(Debug)]
pub struct DemoServer {
    binary: PathBuf,
    env: Vec<(String, String)>,
    dir: tempfile::TempDir,
    child: Option<Child>,
    addr: SocketAddr,
    base_url: String,
    log: Arc<Mutex<Vec<String>>>,
}

impl DemoServer {
    /// Starts `binary` with `env` (see the type's documentation) and waits for it to listen.
    ///
    /// # Panics
    /// When the demo does not come up within 60 s or exits first; the message carries
    /// its output. Use [`try_spawn`](Self::try_spawn) to expect a failure.
    pub fn spawn(binary: &Path, env: &[(&str, &str)]) -> DemoServer {
        DemoServer::try_spawn(binary, env)
            .unwrap_or_else(|e| panic!("demo server {} did not start: {e}", binary.display()))
    }

    /// Like [`spawn`](Self::spawn), but returns the failure (for tests of bad configuration).
    pub fn try_spawn(binary: &Path, env: &[(&str, &str)]) -> Result<DemoServer, SpawnError> {
        let dir = tempfile::Builder::new().prefix("beaker-demo-").tempdir().map_err(|e| SpawnError {
            reason: format!("cannot create a working directory: {e}"),
            status: None,
            output: String::new(),
        })?;
        let mut env: Vec<(String, String)> = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        if !env.iter().any(|(k, _)| k == "BEAKER_SESSION_SECRET") {
            // Kept for restarts, so that cookies stay valid across them.
            let secret = format!("{}{}", SessionId::generate().expose(), SessionId::generate().expose());
            env.insert(0, ("BEAKER_SESSION_SECRET".into(), secret));
        }
        let mut server = DemoServer {
            binary: binary.to_owned(),
            env,
            dir,
            child: None,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            base_url: String::new(),
            log: Arc::default(),
        };
        server.start("127.0.0.1:0")?;
        Ok(server)
    }

    /// `http://ADDR`, without a trailing slash.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// The demo's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The address the demo listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The working directory of the demo (a temporary directory, removed on drop).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Everything the demo printed so far (stdout and stderr), line by line.
    pub fn output(&self) -> String {
        self.log.lock().map(|l| l.join("\n")).unwrap_or_default()
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        self.child.as_mut().is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Stops the demo: SIGTERM (on Unix), then a kill if it has not exited after 10 s.
    /// Returns its exit status (`None` if it was not running). The contract asks for a
    /// clean exit on SIGTERM, so a test may assert `status.success()`.
    pub fn stop(&mut self) -> Option<ExitStatus> {
        let mut child = self.child.take()?;
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        terminate(&mut child);
        let deadline = Instant::now() + STOP_TIMEOUT;
        while Instant::now() < deadline {
            match child.try_wait() {
                Ok(Some(status)) => return Some(status),
                Ok(None) => std::thread::sleep(Duration::from_millis(20)),
                Err(_) => break,
            }
        }
        let _ = child.kill();
        child.wait().ok()
    }

    /// Stops the demo and starts it again with the same environment and working
    /// directory, on the same address if it can still be bound (else on a fresh port:
    /// read [`base_url`](Self::base_url) again).
    ///
    /// # Panics
    /// When the demo does not come up again.
    pub fn restart(&mut self) {
        self.stop();
        let same = self.addr.to_string();
        if let Err(first) = self.start(&same) {
            self.start("127.0.0.1:0")
                .unwrap_or_else(|e| panic!("demo server did not restart on {same} ({first}) nor on a fresh port: {e}"));
        }
    }

    fn start(&mut self, addr: &str) -> Result<(), SpawnError> {
        let mut cmd = Command::new(&self.binary);
        cmd.current_dir(self.dir.path()).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        for (key, _) in std::env::vars_os() {
            if key.to_str().is_some_and(|k| k.starts_with("BEAKER_")) {
                cmd.env_remove(key);
            }
        }
        cmd.env("BEAKER_DEMO_ADDR", addr);
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)));
        let log = Arc::clone(&self.log);
        let fail = |reason: String, status: Option<ExitStatus>| SpawnError {
            reason,
            status,
            output: log.lock().map(|l| l.join("\n")).unwrap_or_default(),
        };
        let mut child = cmd.spawn().map_err(|e| fail(format!("cannot run {}: {e}", self.binary.display()), None))?;
        let (tx, rx) = mpsc::channel();
        if let Some(out) = child.stdout.take() {
            drain(out, Arc::clone(&self.log), Some(tx));
        }
        if let Some(err) = child.stderr.take() {
            drain(err, Arc::clone(&self.log), None);
        }
        match wait_for_announcement(&rx) {
            Ok(addr) => {
                self.addr = addr;
                self.base_url = format!("http://{addr}");
                self.child = Some(child);
                Ok(())
            }
            Err(reason) => {
                let status = match child.try_wait() {
                    Ok(Some(status)) => Some(status),
                    _ => {
                        let _ = child.kill();
                        child.wait().ok()
                    }
                };
                // Let the readers catch the last lines of a crashing process.
                std::thread::sleep(Duration::from_millis(100));
                Err(fail(reason, status))
            }
        }
    }
}

impl Drop for DemoServer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn wait_for_announcement(rx: &Receiver<String>) -> Result<SocketAddr, String> {
    let deadline = Instant::now() + STARTUP_TIMEOUT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => {
                if let Some(addr) = line.trim().strip_prefix(ANNOUNCEMENT) {
                    return addr.trim_end_matches('/').parse().map_err(|_| format!("unparsable announcement {line:?}"));
                }
            }
            Err(RecvTimeoutError::Timeout) => {
                return Err(format!("no `{ANNOUNCEMENT}ADDR` line within {}s", STARTUP_TIMEOUT.as_secs()))
            }
            Err(RecvTimeoutError::Disconnected) => return Err("the process closed stdout before listening".into()),
        }
    }
}

/// Reads `pipe` line by line into `log` (and `lines`) until it closes, on its own thread,
/// so that the child never blocks on a full pipe.
fn drain(pipe: impl Read + Send + 'static, log: Arc<Mutex<Vec<String>>>, lines: Option<Sender<String>>) {
    std::thread::spawn(move || {
        let mut reader = BufReader::new(pipe);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match reader.read_until(b'\n', &mut buf) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    let line = String::from_utf8_lossy(&buf).trim_end_matches(['\r', '\n']).to_owned();
                    if let Ok(mut log) = log.lock() {
                        log.push(line.clone());
                    }
                    if let Some(tx) = &lines {
                        // The receiver is gone once the server is up; keep draining.
                        let _ = tx.send(line);
                    }
                }
            }
        }
    });
}

/// Asks the child to stop (SIGTERM, through `kill(1)`: this crate has no unsafe code).
/// Falls back to a kill when SIGTERM cannot be sent.
#[cfg(unix)]
fn terminate(child: &mut Child) {
    let sent = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    if !sent.is_ok_and(|s| s.success()) {
        let _ = child.kill();
    }
}

#[cfg(not(unix))]
fn terminate(child: &mut Child) {
    let _ = child.kill();
}
