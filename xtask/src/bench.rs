//! `cargo xtask bench [criterion | http] [--quick] [--repeats N] [--seconds S]
//! [--connections N]`: the criterion micro-benchmarks and the HTTP load benchmark against
//! the peers, measured in one run; writes `docs/benchmarks.md` and `docs/benchmarks.svg`.
//!
//! The HTTP run builds the demos and the `beaker-bench` binaries with `--release`, then, for
//! each repeat and each configuration (interleaved, so that drift hits every row alike):
//! starts the server pinned to CPU 0 (`taskset`, one worker thread: `TOKIO_WORKER_THREADS=1`,
//! and actix sizes its workers by the one CPU it may use), loads `/counter`, `/read` and `/`
//! with `bench-load` pinned to CPU 1 (a fixed number of keep-alive connections, each with
//! its own session cookie), and stops the server. `bench-load` reads the server's CPU time
//! from `/proc/PID/stat`, so per-core throughput is requests/s divided by the CPU share the
//! server used. When `wrk` is installed, the same server is then loaded by wrk on
//! `/counter` and `/read` (`xtask/src/bench/wrk.rs`), so that every figure has a second, independent
//! generator. Beside the demos run the minimal beaker servers (`bench-beaker`: the peers'
//! three routes and nothing else). After the repeats: demo-axum on the object-store
//! emulators (`xtask/src/bench/object_stores.rs`) and the instruction counts.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::host::{have, output, reachable, root, target_dir};
use crate::{cargo, run as run_cmd, Result};

mod instructions;
mod object_stores;
mod report;
mod wrk;

use report::*;

const ROUTES: [&str; 3] = ["/counter", "/read", "/"];

/// Milliseconds this run spent compiling (reported apart from the measuring time).
static BUILD_MS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Runs a build step, adding its duration to [`BUILD_MS`].
fn build(cmd: &mut Command) -> Result {
    let t = Instant::now();
    let outcome = run_cmd(cmd);
    BUILD_MS.fetch_add(t.elapsed().as_millis() as u64, std::sync::atomic::Ordering::Relaxed);
    outcome
}
/// Every request carries a `Cookie` header of at least this many bytes (`bench-load
/// --cookie-floor`): about one beaker signed id cookie, so that the bare rows parse the same
/// request shape as the session rows.
pub(crate) const COOKIE_FLOOR: usize = 100;
const REDIS_ADDR: &str = "127.0.0.1:6379";
const REDIS_URL: &str = "redis://127.0.0.1:6379";
const SECRET: &str = "beaker-bench secret: loopback benchmark only";

struct Options {
    criterion: bool,
    http: bool,
    quick: bool,
    repeats: usize,
    warmup_ms: u64,
    duration_ms: u64,
    connections: usize,
    instructions: bool,
    command: String,
}

/// Which half of the benchmark to run.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Half {
    /// The criterion micro-benchmarks only.
    Criterion,
    /// The HTTP load run against the peers only.
    Http,
}

/// `cargo xtask bench` arguments.
#[derive(clap::Args)]
pub(crate) struct Args {
    /// Run only this half (default: both).
    half: Option<Half>,
    /// Shorter runs: 3 repeats, 0.25 s warm-up, 1 s per measurement.
    #[arg(long)]
    quick: bool,
    /// Repeats per HTTP configuration.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    repeats: Option<u64>,
    /// Seconds per HTTP measurement.
    #[arg(long)]
    seconds: Option<f64>,
    /// Keep-alive connections the load generator opens.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u64).range(1..))]
    connections: u64,
    /// Skip the instructions-per-request counts (callgrind), the slowest part of the HTTP run.
    #[arg(long)]
    no_instructions: bool,
}

fn options(args: &Args) -> Result<Options> {
    let mut o = Options {
        criterion: args.half != Some(Half::Http),
        http: args.half != Some(Half::Criterion),
        quick: args.quick,
        repeats: 5,
        warmup_ms: 1000,
        duration_ms: 5000,
        connections: args.connections as usize,
        instructions: !args.no_instructions,
        command: std::iter::once("cargo xtask".to_owned())
            .chain(std::env::args().skip(1))
            .collect::<Vec<_>>()
            .join(" "),
    };
    if o.quick {
        o.repeats = 3;
        o.warmup_ms = 250;
        o.duration_ms = 1000;
    }
    if let Some(r) = args.repeats {
        o.repeats = r as usize;
    }
    if let Some(s) = args.seconds {
        if !(s.is_finite() && s > 0.0) {
            return Err(format!("bench: --seconds must be a positive number, not {s}"));
        }
        o.duration_ms = (s.max(0.1) * 1000.0) as u64;
    }
    Ok(o)
}

/// `cargo xtask bench ...`.
pub(crate) fn run(args: &Args) -> Result {
    let started = Instant::now();
    // The commit measured is the one built now, whatever HEAD is when the run ends.
    report::note_commit();
    let o = options(args)?;
    let (mut criterion, mut criterion_skipped) = (Vec::new(), Vec::new());
    if o.criterion {
        (criterion, criterion_skipped) = criterion_run(&o)?;
    }
    let mut http = None;
    if o.http {
        http = Some(http_run(&o)?);
    }
    let elapsed = started.elapsed();
    eprintln!(
        "bench: done in {:.0} s ({:.0} s of it compiling)",
        elapsed.as_secs_f64(),
        BUILD_MS.load(std::sync::atomic::Ordering::Relaxed) as f64 / 1000.0
    );
    if let Some(h) = &http {
        write_docs(&o, h, &criterion, &criterion_skipped, elapsed)?;
    } else {
        eprintln!("bench: docs/benchmarks.md is written by runs that include `http`");
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// criterion

struct CriterionFigure {
    id: String,
    mean_ns: f64,
}

/// Runs the criterion benches; returns their figures and the services they ran without
/// (whose rows are missing), for the report to name.
fn criterion_run(o: &Options) -> Result<(Vec<CriterionFigure>, Vec<String>)> {
    let since = std::time::SystemTime::now();
    let services = crate::services::Services::start()?;
    services.report();
    let skipped = services.missing.iter().map(|m| format!("{}: {}", m.suite, m.why)).collect();
    let mut flags = vec!["--noplot"];
    if o.quick {
        flags.extend(["--warm-up-time", "0.3", "--measurement-time", "0.6", "--sample-size", "10"]);
    }
    build(
        cargo()
            .args(["bench", "-p", "beaker-core", "--bench", "cache", "-p", "beaker-bench"])
            .args(["--bench", "sessions", "--bench", "caches"])
            .args(["--all-features", "--no-run"]),
    )?;
    // Both benches run whole in `--quick` too: the cache stale-storm group fixes its own
    // sample count (about 10 s in all).
    for (package, bench) in [("beaker-core", "cache"), ("beaker-bench", "sessions"), ("beaker-bench", "caches")] {
        let mut cmd = cargo();
        cmd.args(["bench", "-p", package, "--bench", bench, "--all-features", "--"]).args(&flags);
        for (k, v) in &services.env {
            cmd.env(k, v);
        }
        run_cmd(&mut cmd)?;
    }
    if reachable(REDIS_ADDR) {
        clean_redis();
    }
    let mut figures = Vec::new();
    collect_estimates(&target_dir().join("criterion"), &mut figures, since);
    figures.sort_by(|a, b| a.id.cmp(&b.id));
    Ok((figures, skipped))
}

fn collect_estimates(dir: &Path, out: &mut Vec<CriterionFigure>, since: std::time::SystemTime) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        let path = e.path();
        if path.is_dir() && path.file_name().is_some_and(|n| n != "report" && n != "base" && n != "change") {
            if path.file_name().is_some_and(|n| n == "new") {
                let file = path.join("estimates.json");
                let fresh = std::fs::metadata(&file).and_then(|m| m.modified()).is_ok_and(|t| t >= since);
                let id = path.join("benchmark.json");
                if let (true, Some(mean), Some(full)) = (fresh, criterion_mean(&file), criterion_id(&id)) {
                    out.push(CriterionFigure { id: full, mean_ns: mean });
                }
            } else {
                collect_estimates(&path, out, since);
            }
        }
    }
}

fn read_json(path: &Path) -> Option<serde_json::Value> {
    serde_json::from_slice(&std::fs::read(path).ok()?).ok()
}

/// The mean's point estimate in a criterion `estimates.json`, in nanoseconds.
fn criterion_mean(path: &Path) -> Option<f64> {
    read_json(path)?.pointer("/mean/point_estimate")?.as_f64()
}

/// The benchmark's `group/function/parameter` id in a criterion `benchmark.json`.
fn criterion_id(path: &Path) -> Option<String> {
    Some(read_json(path)?.get("full_id")?.as_str()?.to_owned())
}

// ---------------------------------------------------------------------------------------
// HTTP

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Framework {
    Axum,
    Actix,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Bare,
    Beaker,
    Peer,
}

struct Config {
    name: &'static str,
    framework: Framework,
    kind: Kind,
    /// The configuration beaker rows are compared with (same framework and store family).
    peer: Option<&'static str>,
    program: &'static str,
    args: Vec<&'static str>,
    env: Vec<(&'static str, String)>,
    redis: bool,
}

fn configs(prefix: &str) -> Vec<Config> {
    let memory = || vec![("BEAKER_SESSION_URL", "memory:".to_owned())];
    let cookie = || vec![("BEAKER_SESSION_URL", "cookie:".to_owned())];
    let redis = || vec![("BEAKER_SESSION_URL", REDIS_URL.to_owned()), ("BEAKER_SESSION_KEY_PREFIX", prefix.to_owned())];
    let near = || {
        let mut env = redis();
        env.push(("BEAKER_SESSION_NEAR_CACHE", "true".to_owned()));
        env
    };
    let peer = |name, framework, kind, program_arg| Config {
        name,
        framework,
        kind,
        peer: None,
        program: "bench-peers",
        args: vec![program_arg],
        env: vec![("BEAKER_BENCH_REDIS_URL", REDIS_URL.to_owned())],
        redis: program_arg.ends_with("redis"),
    };
    let beaker = |name, framework, program, peer, env: Vec<(&'static str, String)>| Config {
        name,
        framework,
        kind: Kind::Beaker,
        peer: Some(peer),
        program,
        args: vec![],
        redis: env.iter().any(|(_, v)| v.starts_with("redis")),
        env,
    };
    // The minimal beaker server with exactly the peers' routes (`bench-beaker`).
    let minimal = |name, framework, peer, env: Vec<(&'static str, String)>| Config {
        name,
        framework,
        kind: Kind::Beaker,
        peer: Some(peer),
        program: "bench-beaker",
        args: vec![if framework == Framework::Axum { "axum" } else { "actix" }],
        redis: env.iter().any(|(_, v)| v.starts_with("redis")),
        env,
    };
    vec![
        peer("axum (bare)", Framework::Axum, Kind::Bare, "axum-bare"),
        beaker("axum + beaker memory", Framework::Axum, "demo-axum", "axum + tower-sessions 0.15 memory", memory()),
        minimal("axum + beaker memory (minimal)", Framework::Axum, "axum + tower-sessions 0.15 memory", memory()),
        peer("axum + tower-sessions 0.15 memory", Framework::Axum, Kind::Peer, "axum-tower-sessions"),
        beaker("axum + beaker redis", Framework::Axum, "demo-axum", "axum + tower-sessions 0.14 redis", redis()),
        beaker("axum + beaker redis near", Framework::Axum, "demo-axum", "axum + tower-sessions 0.14 redis", near()),
        minimal("axum + beaker redis (minimal)", Framework::Axum, "axum + tower-sessions 0.14 redis", redis()),
        peer("axum + tower-sessions 0.14 redis", Framework::Axum, Kind::Peer, "axum-tower-sessions-redis"),
        peer("actix (bare)", Framework::Actix, Kind::Bare, "actix-bare"),
        beaker("actix + beaker memory", Framework::Actix, "demo-actix", "actix + actix-session cookie", memory()),
        minimal("actix + beaker memory (minimal)", Framework::Actix, "actix + actix-session cookie", memory()),
        beaker("actix + beaker cookie", Framework::Actix, "demo-actix", "actix + actix-session cookie", cookie()),
        minimal("actix + beaker cookie (minimal)", Framework::Actix, "actix + actix-session cookie", cookie()),
        peer("actix + actix-session cookie", Framework::Actix, Kind::Peer, "actix-session-cookie"),
        beaker("actix + beaker redis", Framework::Actix, "demo-actix", "actix + actix-session redis", redis()),
        beaker("actix + beaker redis near", Framework::Actix, "demo-actix", "actix + actix-session redis", near()),
        minimal("actix + beaker redis (minimal)", Framework::Actix, "actix + actix-session redis", redis()),
        peer("actix + actix-session redis", Framework::Actix, Kind::Peer, "actix-session-redis"),
    ]
}

/// One measurement: one configuration, one route, one repeat.
#[derive(Clone, Copy, Default)]
struct Sample {
    /// Which repeat of the run (1-based): samples of two configurations in the same
    /// repeat were measured minutes apart at most, and are compared pairwise.
    repeat: usize,
    rps: f64,
    cpu: f64,
    p50_us: f64,
    p99_us: f64,
    errors: f64,
}

impl Sample {
    fn per_core(&self) -> f64 {
        if self.cpu > 0.01 {
            self.rps / self.cpu
        } else {
            f64::NAN
        }
    }

    fn parse(line: &str) -> Option<Sample> {
        let field = |name: &str| -> Option<f64> {
            line.split_whitespace().find_map(|kv| kv.strip_prefix(name)?.strip_prefix('=')?.parse().ok())
        };
        Some(Sample {
            repeat: 0,
            rps: field("rps")?,
            cpu: field("cpu").unwrap_or(f64::NAN),
            p50_us: field("p50_us")?,
            p99_us: field("p99_us")?,
            errors: field("errors")?,
        })
    }
}

struct Http {
    /// (configuration index, route) -> samples of every repeat, measured by `bench-load`.
    samples: BTreeMap<(usize, &'static str), Vec<Sample>>,
    /// The same, measured by `wrk` (empty when wrk is not installed).
    wrk: BTreeMap<(usize, &'static str), Vec<Sample>>,
    /// demo-axum on the object-store emulators (empty when none could run).
    objects: Vec<object_stores::ObjectRow>,
    configs: Vec<Config>,
    skipped: Vec<String>,
    pinned: bool,
    load_before: String,
    /// Instructions per request (callgrind), when valgrind is installed.
    instructions: instructions::Counts,
}

struct Server {
    child: Child,
    addr: String,
    pid: u32,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `taskset -c 0 BIN` when pinned, else `BIN`: the server's CPU.
fn pinned_command(bin: &Path, pinned: bool) -> Command {
    on_cpu(bin.as_os_str(), "0", pinned)
}

/// `taskset -c CPU PROGRAM` when pinned, else `PROGRAM`.
fn on_cpu(program: &std::ffi::OsStr, cpu: &str, pinned: bool) -> Command {
    if pinned {
        let mut c = Command::new("taskset");
        c.args(["-c", cpu]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

/// Starts `config`'s server with `cmd` (its binary, or a launcher ending with it), one
/// worker thread, stderr to `log`; returns once it announced its address.
fn start_server(mut cmd: Command, config: &Config, log: &Path, timeout: Duration) -> Result<Server> {
    let stderr = std::fs::File::create(log).map_err(|e| format!("{}: {e}", log.display()))?;
    cmd.args(&config.args)
        .env("BEAKER_DEMO_ADDR", "127.0.0.1:0")
        .env("TOKIO_WORKER_THREADS", "1")
        .env("BEAKER_SESSION_SECRET", SECRET)
        .envs(config.env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(stderr);
    spawn_announcing(cmd, timeout).map_err(|e| {
        let why = std::fs::read_to_string(log).unwrap_or_default();
        format!("{}: {e}: {}", config.name, why.trim())
    })
}

/// Spawns a server (stdout piped) and waits until it prints `listening on http://ADDR`.
fn spawn_announcing(mut cmd: Command, timeout: Duration) -> Result<Server> {
    let mut child = cmd.spawn().map_err(|e| format!("could not start {:?}: {e}", cmd.get_program()))?;
    let pid = child.id();
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        // Reads every line, so that the server never blocks on a full pipe.
        for line in BufReader::new(stdout).lines().map_while(std::result::Result::ok) {
            if let Some(addr) = line.strip_prefix("listening on http://") {
                let _ = tx.send(addr.trim().to_owned());
            }
        }
    });
    let mut server = Server { child, addr: String::new(), pid };
    match rx.recv_timeout(timeout) {
        Ok(addr) => {
            server.addr = addr;
            Ok(server)
        }
        Err(_) => Err("did not announce its address".into()),
    }
}

fn load(bin: &Path, server: &Server, route: &str, o: &Options, pinned: bool, clk_tck: &str) -> Result<Sample> {
    // The load generator on the other CPU than the server's.
    let mut cmd = on_cpu(bin.as_os_str(), "1", pinned);
    cmd.args(["--url", &format!("http://{}", server.addr), "--path", route, "--prime", "/counter"])
        .args(["--connections", &o.connections.to_string()])
        .args(["--warmup-ms", &o.warmup_ms.to_string(), "--duration-ms", &o.duration_ms.to_string()])
        .args(["--server-pid", &server.pid.to_string(), "--clk-tck", clk_tck])
        .args(["--cookie-floor", &COOKIE_FLOOR.to_string()])
        .stderr(Stdio::inherit());
    let out = cmd.output().map_err(|e| format!("could not start {}: {e}", bin.display()))?;
    let line = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(format!("bench-load failed ({}) on {route}", out.status));
    }
    Sample::parse(&line).ok_or_else(|| format!("bench-load printed {line:?}"))
}

fn http_run(o: &Options) -> Result<Http> {
    build(cargo().args(["build", "--release", "-p", "demo-axum", "-p", "demo-actix", "-p", "beaker-bench", "--bins"]))?;
    let bin_dir = target_dir().join("release");
    let pinned = have("taskset", "--version") && std::thread::available_parallelism().is_ok_and(|n| n.get() >= 2);
    if !pinned {
        eprintln!("bench: WARNING: taskset or a second CPU is missing; server and load generator are not pinned");
    }
    let clk_tck = output("getconf", &["CLK_TCK"]).unwrap_or_else(|| "100".into());
    let prefix = format!("beaker-bench:{}:", std::process::id());
    let configs = configs(&prefix);
    let redis_up = reachable(REDIS_ADDR);
    let mut skipped = Vec::new();
    if !redis_up {
        let line = format!("nothing listens on {REDIS_ADDR}: the Redis rows are skipped");
        eprintln!("\n!!! SKIPPED: {line}\n");
        skipped.push(line);
    }
    let log_dir = std::env::temp_dir().join(format!("beaker-bench-{}", std::process::id()));
    std::fs::create_dir_all(&log_dir).map_err(|e| format!("{}: {e}", log_dir.display()))?;
    let load_before = std::fs::read_to_string("/proc/loadavg").unwrap_or_default().trim().to_owned();
    let wrk_script = if wrk::available() {
        Some(wrk::script(&log_dir)?)
    } else {
        let line = "wrk is not installed: the wrk pass is skipped (Debian/Ubuntu: apt install wrk)".to_owned();
        eprintln!("\n!!! SKIPPED: {line}\n");
        skipped.push(line);
        None
    };
    let clk_ticks: f64 = clk_tck.parse().unwrap_or(100.0);
    let bench_load = bin_dir.join("bench-load");
    let mut main = Generator {
        load: Load::BenchLoad,
        routes: &ROUTES,
        measure: Box::new(|server, route| load(&bench_load, server, route, o, pinned, &clk_tck)),
        samples: BTreeMap::new(),
    };
    let mut second = wrk_script.as_deref().map(|script| Generator {
        load: Load::Wrk,
        routes: &wrk::ROUTES,
        measure: Box::new(move |server, route| wrk::measure(server, route, script, o, pinned, clk_ticks)),
        samples: BTreeMap::new(),
    });
    let mut failed: Vec<usize> = Vec::new();
    for repeat in 1..=o.repeats {
        for (i, config) in configs.iter().enumerate() {
            if (config.redis && !redis_up) || failed.contains(&i) {
                continue;
            }
            let log = log_dir.join(format!("server-{i}.log"));
            let cmd = pinned_command(&bin_dir.join(config.program), pinned);
            let server = match start_server(cmd, config, &log, Duration::from_secs(30)) {
                Ok(s) => s,
                Err(e) => {
                    let line = format!("{}: {e}", config.name);
                    eprintln!("\n!!! SKIPPED {line}\n");
                    skipped.push(line);
                    failed.push(i);
                    continue;
                }
            };
            // Every generator loads the same server, one after the other.
            for generator in std::iter::once(&mut main).chain(second.as_mut()) {
                generator.pass(&server, (i, config), (repeat, o.repeats), &mut skipped);
            }
            drop(server);
        }
    }
    let (samples, wrk_samples) = (main.samples, second.map(|g| g.samples).unwrap_or_default());
    let (objects, mut more) = object_stores::run(&bin_dir, pinned);
    skipped.append(&mut more);
    let mut instructions = instructions::Counts::new();
    if !o.instructions {
        skipped.push("instructions per request: not counted in this run (--no-instructions)".to_owned());
    } else if instructions::available() {
        let (counts, mut more) = instructions::run(o, &configs, &bin_dir, &|c: &Config| c.redis && !redis_up);
        instructions = counts;
        skipped.append(&mut more);
    } else {
        let line = "valgrind (callgrind) is not installed: the instructions-per-request table is skipped".to_owned();
        eprintln!("\n!!! SKIPPED: {line}\n");
        skipped.push(line);
    }
    if redis_up {
        clean_redis();
    }
    let h = Http { samples, wrk: wrk_samples, objects, configs, skipped, pinned, load_before, instructions };
    print!("{}", table(&h, o));
    if !h.wrk.is_empty() {
        print!("\nwrk:\n{}", table_in(&h, o, Load::Wrk, &wrk::ROUTES));
    }
    Ok(h)
}

/// One measurement of a route on a running server, warm-up included.
type Measure<'a> = Box<dyn Fn(&Server, &'static str) -> Result<Sample> + 'a>;

/// A load generator of the HTTP run: the routes it loads and how it measures one.
struct Generator<'a> {
    load: Load,
    routes: &'static [&'static str],
    measure: Measure<'a>,
    /// (configuration index, route) -> samples of every repeat.
    samples: BTreeMap<(usize, &'static str), Vec<Sample>>,
}

impl Generator<'_> {
    /// Measures every route on `server` (configuration `i` of the run, in repeat `repeat`
    /// of `repeats`); a route that fails is named in `skipped`.
    fn pass(
        &mut self,
        server: &Server,
        (i, config): (usize, &Config),
        (repeat, repeats): (usize, usize),
        skipped: &mut Vec<String>,
    ) {
        // The second generator's lines say which it is; bench-load's, the main one's, do not.
        let tag = (self.load != Load::BenchLoad).then(|| self.load.name());
        for &route in self.routes {
            match (self.measure)(server, route) {
                Ok(mut s) => {
                    s.repeat = repeat;
                    eprintln!(
                        "bench: [{repeat}/{repeats}] {:<36} {:<9} {:>9.0} req/s  cpu {:.2}  per-core {:>9.0}  p50 {:>6} us  p99 {:>6} us{}{}",
                        config.name,
                        route,
                        s.rps,
                        s.cpu,
                        s.per_core(),
                        s.p50_us,
                        s.p99_us,
                        tag.map(|t| format!("  ({t})")).unwrap_or_default(),
                        if s.errors > 0.0 { format!("  ERRORS {}", s.errors) } else { String::new() }
                    );
                    self.samples.entry((i, route)).or_default().push(s);
                }
                Err(e) => {
                    let line =
                        format!("{} {route}{}: {e}", config.name, tag.map(|t| format!(" ({t})")).unwrap_or_default());
                    eprintln!("\n!!! FAILED {line}\n");
                    skipped.push(line);
                }
            }
        }
    }
}

/// Deletes the session keys the benchmarks left in Redis.
fn clean_redis() {
    // Every key of the benchmarks is under `beaker-bench:` (the HTTP rows' prefix, the
    // criterion runs' `beaker-bench:criterion:PID:`, actix-session's rows); tower-sessions'
    // Redis store allows no prefix, its few keys expire on their own (two weeks).
    if !have("redis-cli", "--version") {
        return;
    }
    let Some(keys) = output("redis-cli", &["-h", "127.0.0.1", "-p", "6379", "--scan", "--pattern", "beaker-bench:*"])
    else {
        return;
    };
    for chunk in keys.lines().collect::<Vec<_>>().chunks(500) {
        let _ = Command::new("redis-cli")
            .args(["-h", "127.0.0.1", "-p", "6379", "DEL"])
            .args(chunk)
            .stdout(Stdio::null())
            .status();
    }
}

// ---------------------------------------------------------------------------------------
// figures

#[cfg(test)]
mod criterion_json {
    use super::{criterion_id, criterion_mean};

    #[test]
    fn reads_the_mean_and_the_id_criterion_writes() {
        let dir = std::env::temp_dir().join(format!("xtask-criterion-json-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (est, meta) = (dir.join("estimates.json"), dir.join("benchmark.json"));
        std::fs::write(&est, r#"{"mean":{"confidence_interval":{"lower_bound":1.0},"point_estimate":123.5},"median":{"point_estimate":9.0}}"#).unwrap();
        std::fs::write(&meta, r#"{"group_id":"g","full_id":"g/f/1","title":"x"}"#).unwrap();
        assert_eq!(criterion_mean(&est), Some(123.5));
        assert_eq!(criterion_id(&meta).as_deref(), Some("g/f/1"));
        assert_eq!(criterion_mean(&meta), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
