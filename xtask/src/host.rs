//! What every xtask command needs from the machine: where the workspace and its target
//! directory are, free loopback ports, waiting for a port to answer, and probing for tools.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::Result;

/// The workspace root (xtask lives one level below it).
pub(crate) fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

/// The cargo target directory (honours `CARGO_TARGET_DIR`, relative to the root).
pub(crate) fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(d) => root().join(d),
        None => root().join("target"),
    }
}

/// A loopback port nobody listens on right now.
pub(crate) fn free_port() -> Result<u16> {
    let [port] = free_ports::<1>()?;
    Ok(port)
}

/// `N` free ports, all different: each is held until all are chosen.
pub(crate) fn free_ports<const N: usize>() -> Result<[u16; N]> {
    let mut held = Vec::with_capacity(N);
    let mut ports = [0; N];
    for port in &mut ports {
        let l = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("no free port: {e}"))?;
        *port = l.local_addr().map_err(|e| e.to_string())?.port();
        held.push(l);
    }
    Ok(ports)
}

/// Whether something accepts TCP connections at `addr`.
pub(crate) fn reachable(addr: &str) -> bool {
    addr.parse::<SocketAddr>().is_ok_and(|a| TcpStream::connect_timeout(&a, Duration::from_millis(500)).is_ok())
}

/// Waits until `addr` accepts connections, up to `limit`.
pub(crate) fn wait_for(addr: &str, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if reachable(addr) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// Whether `binary arg` runs and succeeds (`arg` is usually `--version`).
pub(crate) fn have(binary: &str, arg: &str) -> bool {
    Command::new(binary).arg(arg).stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok_and(|s| s.success())
}

/// The trimmed standard output of a successful command, if it ran and succeeded.
pub(crate) fn output(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program).args(args).stderr(Stdio::null()).output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// A throwaway server process on a loopback port: started, waited for until the port
/// answers, and killed when dropped. `cargo xtask services`, `test` and `soak` start their
/// `redis-server` and `memcached` through it; tests use `beaker_testkit::process::LocalServer`.
pub(crate) struct Throwaway {
    child: Child,
    pub(crate) port: u16,
}

impl Throwaway {
    /// Runs `cmd` (with its output discarded) and waits up to 10 s for `port` to answer.
    pub(crate) fn start(cmd: Command, port: u16) -> Result<Throwaway> {
        Self::start_within(cmd, port, Duration::from_secs(10))
    }

    /// [`start`](Self::start), waiting up to `limit` (servers on an interpreter start slower).
    pub(crate) fn start_within(mut cmd: Command, port: u16, limit: Duration) -> Result<Throwaway> {
        let name = cmd.get_program().to_string_lossy().into_owned();
        let child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("could not start {name}: {e}"))?;
        let server = Throwaway { child, port };
        if wait_for(&format!("127.0.0.1:{port}"), limit) {
            Ok(server)
        } else {
            Err(format!("the throwaway {name} on port {port} did not start"))
        }
    }

    /// A `redis-server` without persistence on a free port, its files in `dir`.
    pub(crate) fn redis(dir: &Path, extra: &[&str]) -> Result<Throwaway> {
        Self::redis_on(free_port()?, dir, extra)
    }

    /// A `redis-server` without persistence on `port`, its files in `dir`.
    pub(crate) fn redis_on(port: u16, dir: &Path, extra: &[&str]) -> Result<Throwaway> {
        let mut cmd = Command::new("redis-server");
        cmd.args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(dir)
            .args(extra);
        Self::start(cmd, port)
    }
}

impl Drop for Throwaway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_throwaway_redis_answers_until_dropped() {
        if !have("redis-server", "--version") {
            eprintln!("=== SKIPPED: xtask throwaway server: no redis-server ===");
            return;
        }
        let dir = std::env::temp_dir().join(format!("xtask-throwaway-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let server = Throwaway::redis(&dir, &[]).unwrap();
        let addr = format!("127.0.0.1:{}", server.port);
        assert!(reachable(&addr));
        drop(server);
        assert!(!reachable(&addr), "the server outlived its handle");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_missing_binary_is_an_error() {
        let err = Throwaway::start(Command::new("/nonexistent/beaker-server"), 1).err().unwrap();
        assert!(err.contains("could not start"), "{err}");
    }
}
