//! Throwaway server processes for tests: a `redis-server`, a `memcached`, … of the test's
//! own on a free loopback port, for tests that stop, restart or freeze their server (outage
//! tests), or that need a server when no shared one is configured.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use std::process::{Command, Stdio};
//! use beaker_testkit::process::LocalServer;
//!
//! let mut server = LocalServer::start(|port| {
//!     Command::new("memcached")
//!         .args(["-p", &port.to_string(), "-U", "0", "-l", "127.0.0.1"])
//!         .stdout(Stdio::null())
//!         .stderr(Stdio::null())
//!         .spawn()
//! })
//! .await?;
//! let url = format!("memcached://{}", server.addr());
//! server.stop(); // an outage
//! server.restart().await?; // the same port again
//! # Ok(()) }
//! ```

use std::fmt;
use std::io;
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command};
use std::time::Duration;

type Spawn = Box<dyn Fn(u16) -> io::Result<Child> + Send + Sync>;

/// How many free ports [`LocalServer::start`] tries.
const TRIES: usize = 5;
/// How long a server has to start accepting connections.
const READY_WITHIN: Duration = Duration::from_secs(5);
const READY_POLL: Duration = Duration::from_millis(50);

/// A server process listening on a loopback port of its own; killed when dropped.
pub struct LocalServer {
    port: u16,
    child: Option<Child>,
    spawn: Spawn,
}

impl LocalServer {
    /// Runs `spawn(port)` on a free port and waits until the port accepts connections.
    /// When the server exits instead (another process took the port between the probe and
    /// the server's bind), another port is tried, five in all.
    ///
    /// # Errors
    /// `spawn`'s own error (typically: the binary is not installed), or
    /// [`io::ErrorKind::TimedOut`] when no try came up within 5 s.
    pub async fn start(spawn: impl Fn(u16) -> io::Result<Child> + Send + Sync + 'static) -> io::Result<LocalServer> {
        let mut last_exit = None;
        for _ in 0..TRIES {
            let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
            let mut child = spawn(port)?;
            // Still running once the port answers: the port is this server's.
            if wait_ready(port, &mut child).await && matches!(child.try_wait(), Ok(None)) {
                return Ok(LocalServer { port, child: Some(child), spawn: Box::new(spawn) });
            }
            let _ = child.kill();
            last_exit = child.wait().ok().filter(|status| status.code().is_some());
        }
        let why = last_exit.map_or_else(String::new, |status| format!(" (the last try exited: {status})"));
        Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("the server did not come up on any of {TRIES} free ports{why}"),
        ))
    }

    /// The loopback port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The process id while the server runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Sends the signal `name` (`"STOP"`, `"CONT"`, …) to the server: `SIGSTOP` keeps its
    /// connections open while it answers nothing, a hung server.
    ///
    /// # Panics
    /// When the server is stopped or `kill` fails: the test could not do what it says.
    pub fn signal(&self, name: &str) {
        let pid = self.pid().expect("signal to a stopped server");
        let status = Command::new("kill").arg(format!("-{name}")).arg(pid.to_string()).status();
        assert!(status.is_ok_and(|s| s.success()), "kill -{name} {pid} failed");
        if name == "STOP" {
            // `kill` returns once the signal is pending; a thread busy on the other core
            // stops a moment later. Wait until every thread is stopped, so that the
            // test's next request cannot still be answered.
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
            while !all_threads_stopped(pid) && std::time::Instant::now() < deadline {
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
        }
    }

    /// Kills the server and waits for it to exit (idempotent).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops the server and starts it again on the same port; returns once it accepts
    /// connections.
    ///
    /// # Errors
    /// The spawn error, or [`io::ErrorKind::TimedOut`] when it did not come back within 5 s.
    pub async fn restart(&mut self) -> io::Result<()> {
        self.stop();
        let child = self.child.insert((self.spawn)(self.port)?);
        if wait_ready(self.port, child).await {
            Ok(())
        } else {
            Err(io::Error::new(io::ErrorKind::TimedOut, format!("the server did not come back on port {}", self.port)))
        }
    }
}

impl Drop for LocalServer {
    fn drop(&mut self) {
        self.stop();
    }
}

impl fmt::Debug for LocalServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalServer").field("port", &self.port).field("pid", &self.pid()).finish_non_exhaustive()
    }
}

/// Whether `port` accepts a connection within [`READY_WITHIN`]; `false` at once when the
/// process exits first (a bad argument, a taken port), instead of waiting out the time.
async fn wait_ready(port: u16, child: &mut Child) -> bool {
    let polls = READY_WITHIN.as_millis() / READY_POLL.as_millis();
    for _ in 0..polls {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return true;
        }
        if !matches!(child.try_wait(), Ok(None)) {
            return false;
        }
        tokio::time::sleep(READY_POLL).await;
    }
    false
}

/// Whether every thread of process `pid` is in the stopped state (`T` in
/// `/proc/PID/task/*/stat`); `true` where `/proc` cannot be read (nothing to wait for).
fn all_threads_stopped(pid: u32) -> bool {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return true };
    tasks.flatten().all(|task| {
        std::fs::read_to_string(task.path().join("stat"))
            // The state follows the parenthesised command name.
            .map(|stat| stat.rsplit_once(") ").is_none_or(|(_, rest)| rest.starts_with('T')))
            .unwrap_or(true)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_missing_binary_is_an_error_not_a_panic() {
        let err = LocalServer::start(|_| Command::new("/nonexistent/beaker-test-server").spawn()).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound, "{err}");
    }

    #[tokio::test]
    async fn a_server_that_exits_at_once_fails_fast_and_says_how_it_exited() {
        let started = std::time::Instant::now();
        let err = LocalServer::start(|_| Command::new("sh").args(["-c", "exit 3"]).spawn()).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut, "{err}");
        assert!(err.to_string().contains("exit status: 3"), "{err}");
        assert!(started.elapsed() < READY_WITHIN, "waited {:?} for a process that had exited", started.elapsed());
    }
}
