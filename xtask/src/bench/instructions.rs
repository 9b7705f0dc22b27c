//! Instructions per request, counted by callgrind: the noise-free companion of the HTTP
//! throughput figures. Each server runs under `valgrind --tool=callgrind`; per route,
//! `bench-load` warms it up, the counters are zeroed (`callgrind_control -z`), a fixed
//! number of requests is sent, and the counters are dumped (`callgrind_control -d`). The
//! count is the same for the same binary and inputs whatever else the machine is doing.
//!
//! What it does not see: time spent waiting (I/O, the Redis server), cache misses, and
//! CPU extensions valgrind does not emulate (it hides SHA-NI, so SHA-256 — the HMAC of a
//! signed session cookie — is counted in software, several times its cost on the CPU).

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::{have, Config, Options, Result, COOKIE_FLOOR, ROUTES, SECRET};

/// Connections of the counted runs (few: valgrind runs the server on one thread anyway).
const CONNECTIONS: usize = 4;

/// `(configuration index, route)` → instructions per request.
pub(super) type Counts = BTreeMap<(usize, &'static str), f64>;

pub(super) fn available() -> bool {
    have("valgrind", "--version") && have("callgrind_control", "--version")
}

/// Counts every configuration and route; configurations that fail are named in `skipped`.
pub(super) fn run(
    o: &Options,
    configs: &[Config],
    bin_dir: &Path,
    skip: &dyn Fn(&Config) -> bool,
) -> (Counts, Vec<String>) {
    let requests: u64 = if o.quick { 1000 } else { 3000 };
    let dir = std::env::temp_dir().join(format!("beaker-bench-callgrind-{}", std::process::id()));
    let mut counts = Counts::new();
    let mut skipped = Vec::new();
    if let Err(e) = std::fs::create_dir_all(&dir) {
        skipped.push(format!("callgrind: {}: {e}", dir.display()));
        return (counts, skipped);
    }
    for (i, config) in configs.iter().enumerate() {
        if skip(config) {
            continue;
        }
        match count_config(config, bin_dir, &dir.join(format!("config-{i}")), requests) {
            Ok(per_route) => {
                for (route, n) in per_route {
                    eprintln!("bench: callgrind {:<36} {:<9} {:>9.0} instructions/request", config.name, route, n);
                    counts.insert((i, route), n);
                }
            }
            Err(e) => {
                let line = format!("callgrind {}: {e}", config.name);
                eprintln!("\n!!! SKIPPED {line}\n");
                skipped.push(line);
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    (counts, skipped)
}

fn count_config(config: &Config, bin_dir: &Path, dir: &Path, requests: u64) -> Result<Vec<(&'static str, f64)>> {
    // A directory of its own per configuration: dumps are told apart by their number.
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let out_file = dir.join("callgrind.out");
    let log = dir.join("server.log");
    let stderr = std::fs::File::create(&log).map_err(|e| format!("{}: {e}", log.display()))?;
    let mut cmd = Command::new("valgrind");
    cmd.arg("--tool=callgrind")
        .arg(format!("--callgrind-out-file={}", out_file.display()))
        .arg(bin_dir.join(config.program))
        .args(&config.args)
        .env("BEAKER_DEMO_ADDR", "127.0.0.1:0")
        .env("TOKIO_WORKER_THREADS", "1")
        .env("BEAKER_SESSION_SECRET", SECRET)
        .envs(config.env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(stderr);
    let server = super::spawn_announcing(cmd, Duration::from_secs(120))
        .map_err(|e| format!("{e}: {}", std::fs::read_to_string(&log).unwrap_or_default().trim()))?;
    let pid = server.pid.to_string();
    let mut out = Vec::new();
    for route in ROUTES {
        load(bin_dir, &server.addr, route, 300)?;
        control(&["-z", &pid])?;
        load(bin_dir, &server.addr, route, requests)?;
        let before = dumps(dir, &out_file);
        control(&["-d", &pid])?;
        let total = wait_for_new_dump(dir, &out_file, &before)?;
        // Each connection's priming request is counted too.
        out.push((route, total / (requests + CONNECTIONS as u64) as f64));
    }
    drop(server);
    Ok(out)
}

fn load(bin_dir: &Path, addr: &str, route: &str, requests: u64) -> Result {
    let status = Command::new(bin_dir.join("bench-load"))
        .args(["--url", &format!("http://{addr}"), "--path", route, "--prime", "/counter"])
        .args(["--connections", &CONNECTIONS.to_string(), "--warmup-ms", "0", "--duration-ms", "600000"])
        .args(["--max-requests", &requests.to_string(), "--cookie-floor", &COOKIE_FLOOR.to_string()])
        .stdout(Stdio::null())
        .status()
        .map_err(|e| format!("bench-load: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("bench-load failed ({status}) on {route}"))
    }
}

fn control(args: &[&str]) -> Result {
    let status = Command::new("callgrind_control")
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map_err(|e| format!("callgrind_control: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("callgrind_control {} failed ({status})", args.join(" ")))
    }
}

/// The dump files callgrind wrote so far for `out_file` (`NAME.1`, `NAME.2`, …).
fn dumps(dir: &Path, out_file: &Path) -> Vec<std::path::PathBuf> {
    let stem = out_file.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.path())
                .filter(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with(&format!("{stem}."))))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Waits for the dump `callgrind_control -d` asked for; returns its instruction count.
fn wait_for_new_dump(dir: &Path, out_file: &Path, before: &[std::path::PathBuf]) -> Result<f64> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Some(p) = dumps(dir, out_file).into_iter().find(|p| !before.contains(p)) {
            // Complete once its summary line is there.
            if let Some(n) = std::fs::read_to_string(&p).ok().as_deref().and_then(summary) {
                return Ok(n);
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Err("callgrind wrote no dump within 30 s".into())
}

/// The `summary:` (or `totals:`) count of a callgrind dump.
fn summary(text: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix("summary:").or_else(|| l.strip_prefix("totals:")))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}
