//! Building and running `demo-axum` for `soak` and `e2e`: a child process on a free
//! loopback port, found through its `listening on http://ADDR` line.

use std::io::{BufRead as _, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::host::{root, target_dir};
use crate::Result;

/// How to build the demo binary.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Profile {
    /// `cargo build --release -p demo-axum` with the SQLite and Redis stores.
    Release,
    /// The debug build of `cargo xtask test` (same flags, so nothing is rebuilt after it).
    Debug,
}

/// Builds `demo-axum` and returns the path of its binary; `XTASK_DEMO_BINARY=PATH` skips
/// the build and uses that binary instead.
pub(crate) fn build(profile: Profile) -> Result<PathBuf> {
    if let Some(binary) = std::env::var_os("XTASK_DEMO_BINARY") {
        return Ok(PathBuf::from(binary));
    }
    let mut cmd = crate::cargo();
    cmd.current_dir(root()).arg("build");
    match profile {
        // The demo turns on every store itself (demo-common's `beaker-rs/all-stores`).
        Profile::Release => {
            cmd.args(["--release", "--locked", "-p", "demo-axum"]);
        }
        Profile::Debug => {
            cmd.args(crate::BUILD_FLAGS);
        }
    }
    crate::run(&mut cmd)?;
    let dir = if profile == Profile::Release { "release" } else { "debug" };
    Ok(target_dir().join(dir).join("demo-axum"))
}

/// A running demo; dropping it stops it.
pub(crate) struct Demo {
    child: Child,
    pub(crate) addr: SocketAddr,
    log: Arc<Mutex<Vec<String>>>,
}

impl Demo {
    /// Starts `binary` on a free loopback port with `env` (and a random secret unless `env`
    /// has one), in `dir`, and waits up to 60 s for it to listen.
    pub(crate) fn spawn(binary: &Path, dir: &Path, env: &[(&str, &str)]) -> Result<Demo> {
        let mut cmd = Command::new(binary);
        cmd.current_dir(dir).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        for (key, _) in std::env::vars_os() {
            if key.to_str().is_some_and(|k| k.starts_with("BEAKER_")) {
                cmd.env_remove(key);
            }
        }
        cmd.env("BEAKER_DEMO_ADDR", "127.0.0.1:0").env("BEAKER_SESSION_SECRET", random_secret());
        cmd.envs(env.iter().copied());
        let mut child = cmd.spawn().map_err(|e| format!("cannot run {}: {e}", binary.display()))?;
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        for (pipe, tx) in [
            (child.stdout.take().map(|p| Box::new(p) as Box<dyn std::io::Read + Send>), Some(tx)),
            (child.stderr.take().map(|p| Box::new(p) as Box<dyn std::io::Read + Send>), None),
        ] {
            let Some(pipe) = pipe else { continue };
            let log = Arc::clone(&log);
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines().map_while(std::result::Result::ok) {
                    if let Some(tx) = &tx {
                        let _ = tx.send(line.clone());
                    }
                    if let Ok(mut l) = log.lock() {
                        l.push(line);
                    }
                }
            });
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        let addr = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    if let Some(a) = line.trim().strip_prefix("listening on http://") {
                        break a.trim_end_matches('/').parse().map_err(|_| format!("bad announcement {line:?}"))?;
                    }
                }
                Err(_) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    std::thread::sleep(Duration::from_millis(100));
                    let out = log.lock().map(|l| l.join("\n")).unwrap_or_default();
                    return Err(format!("{} did not start listening; output:\n{out}", binary.display()));
                }
            }
        };
        Ok(Demo { child, addr, log })
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    pub(crate) fn output(&self) -> String {
        self.log.lock().map(|l| l.join("\n")).unwrap_or_default()
    }

    /// `None` while running, else how it ended.
    pub(crate) fn exit_status(&mut self) -> Option<String> {
        match self.child.try_wait() {
            Ok(None) => None,
            Ok(Some(status)) => Some(status.to_string()),
            Err(e) => Some(e.to_string()),
        }
    }

    /// The resident set size in KiB (`VmRSS` of `/proc/PID/status`).
    pub(crate) fn rss_kib(&self) -> Option<u64> {
        rss_kib(self.pid())
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if !matches!(self.child.try_wait(), Ok(None)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// A secret for one run (the demo would otherwise warn about its development secret).
fn random_secret() -> String {
    let mut s = String::from("xtask-");
    let bytes = std::fs::read("/proc/sys/kernel/random/uuid").unwrap_or_default();
    s.push_str(String::from_utf8_lossy(&bytes).trim());
    s.push_str(&format!("-{}-{:?}", std::process::id(), Instant::now()));
    s
}

/// A scratch directory under the system's temporary directory, removed on drop.
pub(crate) struct Scratch(pub(crate) PathBuf);

impl Scratch {
    pub(crate) fn new(name: &str) -> Result<Scratch> {
        let dir = std::env::temp_dir().join(format!("beaker-xtask-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        Ok(Scratch(dir))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
