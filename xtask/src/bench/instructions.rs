//! Instructions per request, counted by callgrind: the noise-free companion of the HTTP
//! throughput figures. Each server runs under `valgrind --tool=callgrind`; per route,
//! `bench-load` warms it up, the counters are zeroed (`callgrind_control -z`), a fixed
//! number of requests is sent, and the counters are dumped (`callgrind_control -d`). The
//! count is the same for the same binary and inputs whatever else the machine is doing.
//! The server is pinned to one CPU (`taskset`), as in the throughput run, so that every
//! server runs one worker.
//!
//! What it does not see: time spent waiting (I/O, the Redis server), cache misses, and
//! CPU extensions valgrind does not emulate (it hides SHA-NI, so SHA-256 — the HMAC of a
//! signed session cookie — is counted in software, several times its cost on the CPU).

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::{have, Config, Options, Result, COOKIE_FLOOR, ROUTES};

/// Connections of the counted runs (few: valgrind runs the server on one thread anyway).
const CONNECTIONS: usize = 4;

/// Instructions per request: all of them, and those of software SHA-256 among them.
#[derive(Clone, Copy, Debug)]
pub(super) struct Count {
    pub(super) total: f64,
    pub(super) soft_sha: f64,
}

impl Count {
    /// The count without the software SHA-256 compressions (which a CPU with SHA-NI
    /// replaces by a few dozen instructions).
    pub(super) fn without_soft_sha(&self) -> f64 {
        self.total - self.soft_sha
    }
}

/// `(configuration index, route)` → instructions per request.
pub(super) type Counts = BTreeMap<(usize, &'static str), Count>;

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
                    eprintln!(
                        "bench: callgrind {:<36} {:<9} {:>9.0} instructions/request ({:.0} of them software SHA-256)",
                        config.name, route, n.total, n.soft_sha
                    );
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

fn count_config(config: &Config, bin_dir: &Path, dir: &Path, requests: u64) -> Result<Vec<(&'static str, Count)>> {
    // A directory of its own per configuration: dumps are told apart by their number.
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let out_file = dir.join("callgrind.out");
    let log = dir.join("server.log");
    // Pinned to one CPU as in the throughput run: actix-web sizes its workers by the CPUs
    // it may use, and a second worker splits the connections between two event loops,
    // each waking up for fewer requests (about 900 more instructions per request on `/`).
    let mut cmd = super::pinned_command(Path::new("valgrind"), have("taskset", "--version"));
    cmd.arg("--tool=callgrind")
        .arg(format!("--callgrind-out-file={}", out_file.display()))
        .arg(bin_dir.join(config.program));
    let server = super::start_server(cmd, config, &log, Duration::from_secs(120))?;
    let pid = server.pid.to_string();
    let mut out = Vec::new();
    for route in ROUTES {
        load(bin_dir, &server.addr, route, 300)?;
        control(&["-z", &pid])?;
        load(bin_dir, &server.addr, route, requests)?;
        let before = dumps(dir, &out_file);
        control(&["-d", &pid])?;
        let dump = wait_for_new_dump(dir, &out_file, &before)?;
        let total = summary(&dump).ok_or("a callgrind dump without its summary line")?;
        // Each connection's priming request is counted too.
        let n = (requests + CONNECTIONS as u64) as f64;
        out.push((route, Count { total: total / n, soft_sha: self_cost(&dump, SOFT_SHA256) / n }));
    }
    drop(server);
    Ok(out)
}

fn load(bin_dir: &Path, addr: &str, route: &str, requests: u64) -> Result {
    crate::run(
        Command::new(bin_dir.join("bench-load"))
            .args(["--url", &format!("http://{addr}"), "--path", route, "--prime", "/counter"])
            .args(["--connections", &CONNECTIONS.to_string(), "--warmup-ms", "0", "--duration-ms", "600000"])
            .args(["--max-requests", &requests.to_string(), "--cookie-floor", &COOKIE_FLOOR.to_string()])
            .stdout(Stdio::null()),
    )
}

fn control(args: &[&str]) -> Result {
    crate::run(Command::new("callgrind_control").args(args).stdout(Stdio::null()).stderr(Stdio::null()))
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

/// Waits for the dump `callgrind_control -d` asked for; returns its text.
fn wait_for_new_dump(dir: &Path, out_file: &Path, before: &[std::path::PathBuf]) -> Result<String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Some(p) = dumps(dir, out_file).into_iter().find(|p| !before.contains(p)) {
            // Complete once its summary line is there.
            if let Some(text) = std::fs::read_to_string(&p).ok().filter(|t| summary(t).is_some()) {
                return Ok(text);
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

/// The software SHA-256 block function of the `sha2` crate (a leaf: its self cost is all
/// of it), run under valgrind because valgrind's CPUID hides SHA-NI.
const SOFT_SHA256: &str = "sha2::sha256::compress256";

/// The self cost of the functions whose name contains `needle`, from a callgrind dump
/// (names are compressed: `fn=(id) name` the first time, `fn=(id)` after; `cfn=` lines
/// share the table; the cost line after `calls=` is a callee's inclusive cost).
fn self_cost(text: &str, needle: &str) -> f64 {
    let mut matches: std::collections::HashMap<&str, bool> = std::collections::HashMap::new();
    fn resolve<'t>(matches: &mut std::collections::HashMap<&'t str, bool>, spec: &'t str, needle: &str) -> bool {
        let spec = spec.trim();
        match spec.strip_prefix('(').and_then(|r| r.split_once(')')) {
            Some((id, name)) if !name.trim().is_empty() => *matches.entry(id).or_insert(name.contains(needle)),
            Some((id, _)) => matches.get(id).copied().unwrap_or(false),
            None => spec.contains(needle),
        }
    }
    let (mut current, mut callee_line, mut total) = (false, false, 0.0);
    for line in text.lines() {
        if let Some(spec) = line.strip_prefix("fn=") {
            current = resolve(&mut matches, spec, needle);
        } else if let Some(spec) = line.strip_prefix("cfn=") {
            resolve(&mut matches, spec, needle);
        } else if line.starts_with("calls=") {
            callee_line = true;
        } else if line.starts_with(|c: char| c.is_ascii_digit() || matches!(c, '+' | '-' | '*')) {
            if std::mem::take(&mut callee_line) {
                continue;
            }
            if current {
                total += line.split_whitespace().nth(1).and_then(|c| c.parse::<f64>().ok()).unwrap_or(0.0);
            }
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn self_cost_follows_compressed_names_and_skips_callee_costs() {
        let dump =
            "events: Ir\nsummary: 1000\n\nfn=(1) main\n1 100\ncfn=(2) sha2::sha256::compress256\ncalls=2 5\n3 400\n\
                    +1 50\n\nfn=(2)\n5 300\n+2 100\n\nfn=(3) other\n* 50\n";
        assert_eq!(summary(dump), Some(1000.0));
        assert_eq!(self_cost(dump, SOFT_SHA256), 400.0);
        assert_eq!(self_cost(dump, "main"), 150.0);
        assert_eq!(self_cost(dump, "other"), 50.0);
    }
}
