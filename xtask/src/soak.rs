//! `cargo xtask soak [--seconds N] [--clients N] [--stores memory,sqlite,redis] [--debug] [--env K=V]...`:
//! drives `demo-axum` with many concurrent clients, each with its own session, for a
//! bounded time per store (default 60 s, loopback only), and checks that
//!
//! - every client's counter is exactly the number of its requests (no lost or duplicated
//!   update), read back at the end through `/read`;
//! - no request fails (error count zero: every answer is a 200 with the expected body);
//! - memory stays flat: after a warm-up (the first quarter of the run), the demo's
//!   resident set grows by at most 25 % + 16 MiB.
//!
//! Stores: `memory:`, SQLite on a scratch file, and Redis (`redis://127.0.0.1:6379` when
//! something answers there, else a throwaway `redis-server` on a free port). `--debug`
//! reuses the debug build of `cargo xtask test` instead of building a release binary (for CI);
//! `--env KEY=VALUE` (repeatable) adds a variable to the demo's environment (for example
//! `--env BEAKER_SESSION_POOL_SIZE=4`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::demo::{self, Demo, Profile, Scratch};
use crate::http::Conn;
use crate::Result;

/// Allowed growth of the resident set after the warm-up: a fraction and a constant.
const RSS_GROWTH_FRACTION: f64 = 0.25;
const RSS_GROWTH_KIB: u64 = 16 * 1024;

struct Options {
    seconds: u64,
    clients: usize,
    stores: Vec<String>,
    profile: Profile,
    env: Vec<(String, String)>,
}

/// `cargo xtask soak` arguments.
#[derive(clap::Args)]
pub(crate) struct Args {
    /// Seconds per store.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..))]
    seconds: u64,
    /// Concurrent clients, each with its own session.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u64).range(1..=512))]
    clients: u64,
    /// The stores to soak, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "memory,sqlite,redis",
          value_parser = ["memory", "sqlite", "redis"])]
    stores: Vec<String>,
    /// Reuse the debug build of `cargo xtask test` instead of building a release binary.
    #[arg(long)]
    debug: bool,
    /// A variable for the demo's environment, `KEY=VALUE` (repeatable).
    #[arg(long = "env", value_parser = key_value)]
    env: Vec<(String, String)>,
}

fn key_value(kv: &str) -> std::result::Result<(String, String), String> {
    kv.split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned())).ok_or_else(|| format!("{kv:?} is not KEY=VALUE"))
}

fn options(args: &Args) -> Options {
    Options {
        seconds: args.seconds,
        clients: args.clients as usize,
        stores: args.stores.clone(),
        profile: if args.debug { Profile::Debug } else { Profile::Release },
        env: args.env.clone(),
    }
}

pub(crate) fn run(args: &Args) -> Result {
    let opts = options(args);
    let binary = demo::build(opts.profile)?;
    let mut failures = Vec::new();
    let mut reports = Vec::new();
    for store in &opts.stores {
        eprintln!("== soak: {store}, {} clients, {} s ==", opts.clients, opts.seconds);
        match soak_store(&binary, store, &opts) {
            Ok(Some(report)) => {
                eprintln!("{report}");
                if !report.problems.is_empty() {
                    failures.push(format!("{store}: {}", report.problems.join("; ")));
                }
                reports.push(report);
            }
            Ok(None) => {}
            Err(e) => failures.push(format!("{store}: {e}")),
        }
    }
    eprintln!("== soak summary ==");
    for r in &reports {
        eprintln!("  {}", r.summary());
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(format!("soak failed:\n  {}", failures.join("\n  ")))
    }
}

fn redis_url(scratch: &Scratch) -> Result<Option<(String, Option<crate::host::Throwaway>)>> {
    if crate::host::reachable("127.0.0.1:6379") {
        return Ok(Some(("redis://127.0.0.1:6379".into(), None)));
    }
    let have = crate::host::have("redis-server", "--version");
    match crate::host::Throwaway::redis(&scratch.0, &[]) {
        Ok(server) => Ok(Some((format!("redis://127.0.0.1:{}", server.port), Some(server)))),
        Err(e) if !have && !crate::in_ci() => {
            eprintln!("!! SKIPPED soak over redis: nothing on 127.0.0.1:6379 and no redis-server ({e}) !!");
            Ok(None)
        }
        Err(e) => Err(format!("no Redis for the soak: nothing on 127.0.0.1:6379, and {e}")),
    }
}

struct ClientResult {
    requests: u64,
    errors: Vec<String>,
}

struct Report {
    store: String,
    requests: u64,
    errors: u64,
    seconds: f64,
    rss_warm_kib: u64,
    rss_end_kib: u64,
    rss_max_kib: u64,
    problems: Vec<String>,
}

impl Report {
    fn summary(&self) -> String {
        format!(
            "{:<7} {:>9} requests {:>8.0} req/s  errors {}  RSS after warm-up {} KiB, max {} KiB, end {} KiB  {}",
            self.store,
            self.requests,
            self.requests as f64 / self.seconds,
            self.errors,
            self.rss_warm_kib,
            self.rss_max_kib,
            self.rss_end_kib,
            if self.problems.is_empty() { "PASS" } else { "FAIL" }
        )
    }
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.summary())?;
        for p in &self.problems {
            write!(f, "\n  problem: {p}")?;
        }
        Ok(())
    }
}

fn soak_store(binary: &std::path::Path, store: &str, opts: &Options) -> Result<Option<Report>> {
    let scratch = Scratch::new(&format!("soak-{store}"))?;
    let mut _redis = None;
    let url = match store {
        "memory" => "memory:".to_owned(),
        "sqlite" => format!("sqlite:{}", scratch.0.join("soak.sqlite3").display()),
        _ => match redis_url(&scratch)? {
            Some((url, guard)) => {
                _redis = guard;
                url
            }
            None => return Ok(None),
        },
    };
    // An idle timeout, so that the sessions left in a shared Redis expire on their own.
    let mut env: Vec<(&str, &str)> = vec![("BEAKER_SESSION_URL", &url), ("BEAKER_SESSION_TIMEOUT", "3600")];
    env.extend(opts.env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let mut server = Demo::spawn(binary, &scratch.0, &env)?;
    let addr = server.addr;
    let duration = Duration::from_secs(opts.seconds);
    let warm_up = duration / 4;
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let handles: Vec<_> = (0..opts.clients)
        .map(|i| {
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || client(addr, i, &stop))
        })
        .collect();

    // Sample the resident set once a second until the end of the run.
    let mut samples: Vec<(Duration, u64)> = Vec::new();
    while started.elapsed() < duration {
        std::thread::sleep(Duration::from_secs(1).min(duration.saturating_sub(started.elapsed())));
        match server.rss_kib() {
            Some(kib) => samples.push((started.elapsed(), kib)),
            None => break,
        }
    }
    stop.store(true, Ordering::Relaxed);
    let results: Vec<ClientResult> = handles
        .into_iter()
        .map(|h| h.join().map_err(|_| "a soak client panicked".to_owned()))
        .collect::<Result<_>>()?;
    let seconds = started.elapsed().as_secs_f64();

    let mut problems = Vec::new();
    if let Some(status) = server.exit_status() {
        problems.push(format!("the demo exited during the run ({status}); output:\n{}", server.output()));
    }
    let requests: u64 = results.iter().map(|r| r.requests).sum();
    let errors: u64 = results.iter().map(|r| r.errors.len() as u64).sum();
    if errors > 0 {
        let first: Vec<&String> = results.iter().flat_map(|r| &r.errors).take(5).collect();
        problems.push(format!("{errors} error(s), first ones: {first:?}"));
    }
    if requests == 0 {
        problems.push("no request completed".into());
    }
    let warm = samples.iter().find(|(t, _)| *t >= warm_up).map(|s| s.1).unwrap_or_default();
    let after: Vec<u64> = samples.iter().filter(|(t, _)| *t >= warm_up).map(|s| s.1).collect();
    let max = after.iter().copied().max().unwrap_or_default();
    let end = after.last().copied().unwrap_or_default();
    let allowed = warm + (warm as f64 * RSS_GROWTH_FRACTION) as u64 + RSS_GROWTH_KIB;
    if warm == 0 {
        problems.push("no memory sample after the warm-up (run longer: --seconds 8 at least)".into());
    } else if max > allowed {
        problems.push(format!(
            "memory grew from {warm} KiB after the warm-up to {max} KiB (allowed {allowed} KiB); samples: {samples:?}"
        ));
    }
    let output = server.output();
    if output.contains("panicked") {
        problems.push(format!("the demo panicked:\n{output}"));
    }
    Ok(Some(Report {
        store: store.to_owned(),
        requests,
        errors,
        seconds,
        rss_warm_kib: warm,
        rss_end_kib: end,
        rss_max_kib: max,
        problems,
    }))
}

/// One client: its own session, incrementing its counter until told to stop; every
/// answer must be the number of its requests so far. Ends with a `/read` check.
fn client(addr: std::net::SocketAddr, index: usize, stop: &AtomicBool) -> ClientResult {
    let mut conn = Conn::new(addr, Duration::from_secs(10));
    let mut cookie: Option<String> = None;
    let mut result = ClientResult { requests: 0, errors: Vec::new() };
    // Bounded by the stop flag; the count is a backstop against a runaway loop.
    for _ in 0..100_000_000u64 {
        if stop.load(Ordering::Relaxed) || result.errors.len() >= 20 {
            break;
        }
        let headers: Vec<(&str, &str)> = cookie.as_deref().map(|c| vec![("Cookie", c)]).unwrap_or_default();
        match conn.send("GET", "/counter", &headers, b"") {
            Ok(r) => {
                let expected = result.requests + 1;
                if let Some(set) = r.header("set-cookie") {
                    let pair = set.split(';').next().unwrap_or_default().trim().to_owned();
                    if cookie.is_some() {
                        result.errors.push(format!("client {index}: a new session cookie mid-run: {set}"));
                    }
                    cookie = Some(pair);
                }
                let body = r.text();
                if r.status != 200 || body.trim() != expected.to_string() {
                    result.errors.push(format!("client {index}: request {expected} got {} {body:?}", r.status));
                    // Resynchronise on what the server says, so one error is counted once.
                    if let Ok(n) = body.trim().parse::<u64>() {
                        result.requests = n;
                        continue;
                    }
                }
                result.requests = expected;
            }
            Err(e) => result.errors.push(format!("client {index}: request {}: {e}", result.requests + 1)),
        }
    }
    if let Some(c) = &cookie {
        match conn.send("GET", "/read", &[("Cookie", c)], b"") {
            Ok(r) if r.status == 200 && r.text().trim() == result.requests.to_string() => {}
            Ok(r) => result.errors.push(format!(
                "client {index}: /read says {} {:?} after {} increments",
                r.status,
                r.text(),
                result.requests
            )),
            Err(e) => result.errors.push(format!("client {index}: /read: {e}")),
        }
    }
    result
}
