//! The `wrk` pass of `cargo xtask bench`: the same servers under an independent load
//! generator, so that the comparison does not rest on `bench-load` alone. Runs when `wrk`
//! is installed (skipped and named in the report otherwise).
//!
//! One wrk thread with the bench's connections, pinned to CPU 1 (the server on CPU 0, one
//! worker, as in the `bench-load` run), and `circulate.lua`: the first requests prime one
//! session each, then sessions circulate between connections (see the script). wrk has no
//! warm-up phase, so a short wrk run warms the server up first and is discarded. The
//! server's CPU time is read from `/proc/PID/stat` around the measured run, so that
//! per-core throughput is requests/s divided by the server's CPU share, as for `bench-load`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use super::{Options, Result, Sample, Server, COOKIE_FLOOR};

/// The routes the wrk pass loads (the modifying and the read-only one).
pub(super) const ROUTES: [&str; 2] = ["/counter", "/read"];

const SCRIPT: &str = include_str!("circulate.lua");

pub(super) fn available() -> bool {
    // `wrk --version` prints its banner and exits with status 1: found is enough.
    Command::new("wrk").arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok()
}

/// Writes the Lua script where wrk can read it.
pub(super) fn script(dir: &Path) -> Result<PathBuf> {
    let path = dir.join("circulate.lua");
    std::fs::write(&path, SCRIPT).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(path)
}

/// The server's CPU time so far (`utime + stime`, in clock ticks).
fn cpu_ticks(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces: the fields after it start past the last `)`.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are the 14th and 15th fields of the whole line, 12th and 13th here.
    Some(fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?)
}

fn wrk(server: &Server, route: &str, script: &Path, seconds: u64, o: &Options, pinned: bool) -> Result<String> {
    // On the load generator's CPU, as bench-load.
    let mut cmd = super::on_cpu("wrk".as_ref(), "1", pinned);
    cmd.args(["-t1", "-c", &o.connections.to_string(), "-d", &format!("{seconds}s"), "--latency", "-s"])
        .arg(script)
        .arg(format!("http://{}", server.addr))
        .args(["--", route, &o.connections.to_string(), &COOKIE_FLOOR.to_string()])
        .stdin(Stdio::null())
        .stderr(Stdio::inherit());
    let out = cmd.output().map_err(|e| format!("could not start wrk: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        return Err(format!("wrk failed ({}) on {route}: {}", out.status, text.trim()));
    }
    Ok(text)
}

/// One measured wrk run of `route` against `server`, after a discarded warm-up run.
pub(super) fn measure(
    server: &Server,
    route: &str,
    script: &Path,
    o: &Options,
    pinned: bool,
    clk_tck: f64,
) -> Result<Sample> {
    let warmup_s = o.warmup_ms.div_ceil(1000).max(1);
    let seconds = o.duration_ms.div_ceil(1000).max(1);
    wrk(server, route, script, warmup_s, o, pinned)?;
    let before = cpu_ticks(server.pid).ok_or("cannot read the server's CPU time")?;
    let started = Instant::now();
    let text = wrk(server, route, script, seconds, o, pinned)?;
    let elapsed = started.elapsed().as_secs_f64();
    let after = cpu_ticks(server.pid).ok_or("cannot read the server's CPU time")?;
    let mut s = parse(&text).ok_or_else(|| format!("unexpected wrk output: {text}"))?;
    s.cpu = (after - before) / clk_tck / elapsed;
    Ok(s)
}

/// Requests/s, latency percentiles and errors from wrk's `--latency` report.
fn parse(text: &str) -> Option<Sample> {
    let mut s = Sample { cpu: f64::NAN, ..Sample::default() };
    let mut rps = None;
    for line in text.lines().map(str::trim) {
        if let Some(v) = line.strip_prefix("Requests/sec:") {
            rps = v.trim().parse().ok();
        } else if let Some(v) = line.strip_prefix("50%") {
            s.p50_us = micros(v.trim())?;
        } else if let Some(v) = line.strip_prefix("99%") {
            s.p99_us = micros(v.trim())?;
        } else if let Some(v) = line.strip_prefix("Non-2xx or 3xx responses:") {
            s.errors += v.trim().parse::<f64>().ok()?;
        } else if let Some(v) = line.strip_prefix("Socket errors:") {
            // `connect 0, read 0, write 0, timeout 0`
            s.errors += v.split(',').filter_map(|kv| kv.split_whitespace().nth(1)?.parse::<f64>().ok()).sum::<f64>();
        }
    }
    s.rps = rps?;
    Some(s)
}

/// A wrk duration (`812.00us`, `1.20ms`, `2.00s`) in microseconds.
fn micros(v: &str) -> Option<f64> {
    let split = v.find(|c: char| c.is_ascii_alphabetic())?;
    let (n, unit) = v.split_at(split);
    let n: f64 = n.parse().ok()?;
    Some(match unit {
        "us" => n,
        "ms" => n * 1e3,
        "s" => n * 1e6,
        "m" => n * 60e6,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_wrks_latency_report() {
        let text = "Running 1s test @ http://127.0.0.1:1234\n  1 threads and 32 connections\n\
            Thread Stats   Avg      Stdev     Max   +/- Stdev\n    Latency   410.11us  100.00us   3.10ms   90.00%\n\
            Latency Distribution\n     50%  398.00us\n     75%  450.00us\n     90%  500.00us\n     99%    1.20ms\n\
            77777 requests in 1.00s, 10.00MB read\n  Socket errors: connect 0, read 2, write 0, timeout 1\n\
            Non-2xx or 3xx responses: 4\nRequests/sec:  77700.50\nTransfer/sec:     10.00MB\n";
        let s = parse(text).unwrap();
        assert_eq!(s.rps, 77700.5);
        assert_eq!(s.p50_us, 398.0);
        assert_eq!(s.p99_us, 1200.0);
        assert_eq!(s.errors, 7.0);
        assert!(parse("no report").is_none());
    }

    #[test]
    fn reads_the_cpu_time_of_a_process() {
        let pid = std::process::id();
        let ticks = cpu_ticks(pid).unwrap();
        assert!(ticks >= 0.0);
        assert!(cpu_ticks(u32::MAX).is_none());
    }
}
