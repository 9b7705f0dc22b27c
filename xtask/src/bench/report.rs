//! The report of `cargo xtask bench`: medians and ratios, the Markdown table, the targets,
//! and the SVG plot written to `docs/`.

use std::fmt::Write as _;
use std::time::Duration;

use super::*;

pub(super) fn median(mut v: Vec<f64>) -> f64 {
    v.retain(|x| x.is_finite());
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

pub(super) fn min_max(v: &[f64]) -> (f64, f64) {
    v.iter().filter(|x| x.is_finite()).fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &x| (lo.min(x), hi.max(x)))
}

/// The medians of one row.
#[derive(Clone, Copy)]
pub(super) struct Row {
    rps: f64,
    rps_min: f64,
    rps_max: f64,
    per_core: f64,
    pc_min: f64,
    pc_max: f64,
    cpu: f64,
    p50_us: f64,
    p99_us: f64,
    errors: f64,
}

/// Which load generator measured a sample.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Load {
    /// `bench-load`, one session per connection.
    BenchLoad,
    /// `wrk` with `circulate.lua`, sessions circulated between connections.
    Wrk,
}

impl Load {
    pub(super) fn name(self) -> &'static str {
        match self {
            Load::BenchLoad => "bench-load",
            Load::Wrk => "wrk",
        }
    }
}

impl Http {
    /// Every repeat's sample of `config` on `route`, measured by `load`.
    fn samples_in(&self, load: Load, config: usize, route: &str) -> Option<&[Sample]> {
        let map = match load {
            Load::BenchLoad => &self.samples,
            Load::Wrk => &self.wrk,
        };
        map.iter().find(|((c, r), _)| *c == config && *r == route).map(|(_, s)| s.as_slice())
    }

    fn row(&self, config: usize, route: &str) -> Option<Row> {
        self.row_in(Load::BenchLoad, config, route)
    }

    fn row_in(&self, load: Load, config: usize, route: &str) -> Option<Row> {
        let s = self.samples_in(load, config, route)?;
        let rps: Vec<f64> = s.iter().map(|x| x.rps).collect();
        let pc: Vec<f64> = s.iter().map(Sample::per_core).collect();
        let (rps_min, rps_max) = min_max(&rps);
        let (pc_min, pc_max) = min_max(&pc);
        Some(Row {
            rps: median(rps),
            rps_min,
            rps_max,
            per_core: median(pc),
            pc_min,
            pc_max,
            cpu: median(s.iter().map(|x| x.cpu).collect()),
            p50_us: median(s.iter().map(|x| x.p50_us).collect()),
            p99_us: median(s.iter().map(|x| x.p99_us).collect()),
            errors: s.iter().map(|x| x.errors).sum(),
        })
    }

    fn index(&self, name: &str) -> Option<usize> {
        self.configs.iter().position(|c| c.name == name)
    }

    fn bare(&self, config: usize) -> Option<usize> {
        let f = self.configs[config].framework;
        self.configs.iter().position(|c| c.framework == f && c.kind == Kind::Bare)
    }

    /// How many times fewer instructions per request `config` needs than `other` on
    /// `route` (a throughput-like ratio: above 1 is faster).
    fn instr_ratio(&self, config: usize, other: Option<usize>, route: &str) -> Option<f64> {
        let a = self.instructions.get(&(config, route))?;
        let b = self.instructions.get(&(other?, route))?;
        Some(b.total / a.total)
    }

    /// [`instr_ratio`](Self::instr_ratio) without software SHA-256 on either side.
    fn instr_ratio_hw_sha(&self, config: usize, other: Option<usize>, route: &str) -> Option<f64> {
        let a = self.instructions.get(&(config, route))?;
        let b = self.instructions.get(&(other?, route))?;
        Some(b.without_soft_sha() / a.without_soft_sha())
    }

    /// The per-core ratio of `config` to `other` on `route` within each repeat that
    /// measured both: how far one comparison moves from repeat to repeat.
    fn paired_in(&self, load: Load, config: usize, other: usize, route: &str) -> Vec<f64> {
        let (Some(a), Some(b)) = (self.samples_in(load, config, route), self.samples_in(load, other, route)) else {
            return Vec::new();
        };
        a.iter()
            .filter_map(|x| b.iter().find(|y| y.repeat == x.repeat).map(|y| x.per_core() / y.per_core()))
            .filter(|r| r.is_finite())
            .collect()
    }

    /// (ratio of requests/s, ratio of per-core requests/s) of `config` to `other` on `route`.
    fn ratio(&self, config: usize, other: Option<usize>, route: &str) -> Option<(f64, f64)> {
        self.ratio_in(Load::BenchLoad, config, other, route)
    }

    fn ratio_in(&self, load: Load, config: usize, other: Option<usize>, route: &str) -> Option<(f64, f64)> {
        let a = self.row_in(load, config, route)?;
        let b = self.row_in(load, other?, route)?;
        Some((a.rps / b.rps, a.per_core / b.per_core))
    }
}

pub(super) fn ratio_text(r: Option<(f64, f64)>) -> String {
    r.map_or_else(|| "–".into(), |(raw, pc)| format!("{pc:.2}× ({raw:.2}×)"))
}

pub(super) fn table(h: &Http, o: &Options) -> String {
    table_in(h, o, Load::BenchLoad, &ROUTES)
}

/// The full table of the samples `load` measured on `routes`.
pub(super) fn table_in(h: &Http, o: &Options, load: Load, routes: &[&'static str]) -> String {
    let mut t = String::new();
    let _ = writeln!(
        t,
        "| configuration | route | req/s median (min–max) | server CPU | per-core req/s median (min–max) | p50 µs | p99 µs | × bare | × peer |"
    );
    let _ = writeln!(t, "|---|---|---|---|---|---|---|---|---|");
    for (i, c) in h.configs.iter().enumerate() {
        for &route in routes {
            let Some(r) = h.row_in(load, i, route) else { continue };
            let vs_bare =
                if c.kind == Kind::Bare { "1.00×".into() } else { ratio_text(h.ratio_in(load, i, h.bare(i), route)) };
            let vs_peer = match c.kind {
                Kind::Beaker => ratio_text(h.ratio_in(load, i, c.peer.and_then(|p| h.index(p)), route)),
                _ => "–".into(),
            };
            let _ = writeln!(
                t,
                "| {} | `{route}` | {:.0} ({:.0}–{:.0}) | {:.2} | {:.0} ({:.0}–{:.0}) | {:.0} | {:.0} | {vs_bare} | {vs_peer} |{}",
                c.name,
                r.rps,
                r.rps_min,
                r.rps_max,
                r.cpu,
                r.per_core,
                r.pc_min,
                r.pc_max,
                r.p50_us,
                r.p99_us,
                if r.errors > 0.0 { format!(" {} errors", r.errors) } else { String::new() }
            );
        }
    }
    let (duration_ms, warmup_ms) = match load {
        Load::BenchLoad => (o.duration_ms, o.warmup_ms),
        // wrk runs whole seconds.
        Load::Wrk => (o.duration_ms.div_ceil(1000).max(1) * 1000, o.warmup_ms.div_ceil(1000).max(1) * 1000),
    };
    let _ = writeln!(
        t,
        "\nRatios: per-core throughput, with the raw requests/s ratio in parentheses; measured by {}, {} repeats of {duration_ms} ms after {warmup_ms} ms of warm-up, {} connections.",
        load.name(),
        o.repeats,
        o.connections
    );
    t
}

/// The instructions-per-request table (empty without valgrind).
pub(super) fn instructions_table(h: &Http) -> String {
    let mut t = String::new();
    if h.instructions.is_empty() {
        return t;
    }
    let _ = writeln!(
        t,
        "| configuration | route | instructions / request | × bare | × peer | of which software SHA-256 | × bare without it | × peer without it |\n|---|---|---|---|---|---|---|---|"
    );
    for (i, c) in h.configs.iter().enumerate() {
        for route in ROUTES {
            let Some(n) = h.instructions.get(&(i, route)) else { continue };
            let ratio = |r: Option<f64>| r.map_or_else(|| "–".to_owned(), |r| format!("{r:.2}×"));
            let peer = c.peer.and_then(|p| h.index(p));
            let (vs_bare, vs_bare_hw) = match c.kind {
                Kind::Bare => ("1.00×".into(), "1.00×".into()),
                _ => (ratio(h.instr_ratio(i, h.bare(i), route)), ratio(h.instr_ratio_hw_sha(i, h.bare(i), route))),
            };
            let (vs_peer, vs_peer_hw) = match c.kind {
                Kind::Beaker => (ratio(h.instr_ratio(i, peer, route)), ratio(h.instr_ratio_hw_sha(i, peer, route))),
                _ => ("–".into(), "–".into()),
            };
            let _ = writeln!(
                t,
                "| {} | `{route}` | {:.0} | {vs_bare} | {vs_peer} | {:.0} | {vs_bare_hw} | {vs_peer_hw} |",
                c.name, n.total, n.soft_sha
            );
        }
    }
    t
}

/// The verdict on a per-core ratio whose median is `median` against a goal of at least
/// `goal`: `INCONCLUSIVE` when the ratios of single repeats (`paired`) fall on both sides
/// of the goal, so that the run cannot tell; otherwise the median decides.
pub(super) fn verdict(median: f64, paired: &[f64], goal: f64) -> &'static str {
    let (lo, hi) = min_max(paired);
    if paired.len() >= 2 && lo < goal && hi >= goal {
        "INCONCLUSIVE"
    } else if median >= goal {
        "MET"
    } else {
        "NOT MET"
    }
}

/// What the targets compare: (configuration, reference, route, goal), on per-core
/// throughput. The minimal servers (`bench-beaker`, the peers' three routes) are judged
/// beside the demos, so that a gap the demo's extras cause is told from one of the layer.
const TARGETS: &[(&str, &str, &str, f64)] = &[
    ("axum + beaker memory", "axum (bare)", "/counter", 0.90),
    ("axum + beaker memory", "axum + tower-sessions 0.15 memory", "/counter", 1.2),
    ("axum + beaker memory (minimal)", "axum + tower-sessions 0.15 memory", "/counter", 1.2),
    ("actix + beaker memory", "actix (bare)", "/counter", 0.90),
    ("actix + beaker memory", "actix + actix-session cookie", "/counter", 1.2),
    ("actix + beaker memory (minimal)", "actix + actix-session cookie", "/counter", 1.2),
    ("actix + beaker cookie", "actix + actix-session cookie", "/counter", 1.0),
    ("actix + beaker cookie (minimal)", "actix + actix-session cookie", "/counter", 1.0),
    ("axum + beaker redis", "axum + tower-sessions 0.14 redis", "/counter", 1.2),
    ("actix + beaker redis", "actix + actix-session redis", "/counter", 1.2),
    // The Redis near cache: a read as cheap as the memory store's, a write at one round trip.
    ("axum + beaker redis near", "axum + beaker memory", "/read", 0.8),
    ("axum + beaker redis near", "axum + beaker redis", "/counter", 1.5),
    ("actix + beaker redis near", "actix + beaker memory", "/read", 0.8),
    ("actix + beaker redis near", "actix + beaker redis", "/counter", 1.5),
    ("axum + beaker memory", "axum (bare)", "/", 0.97),
    ("actix + beaker memory", "actix (bare)", "/", 0.97),
];

/// The performance targets, judged on per-core throughput, per load generator.
pub(super) fn targets(h: &Http) -> String {
    let mut t = String::new();
    let mut check =
        |what: String, value: Option<(f64, f64)>, paired: Vec<f64>, instr: Option<(f64, f64)>, goal: f64| {
            let instr = instr.map_or_else(String::new, |(r, hw)| {
                format!(
                    "; by instructions per request {r:.2}× ({}), {hw:.2}× without software SHA-256 ({})",
                    if r >= goal { "met" } else { "not met" },
                    if hw >= goal { "met" } else { "not met" }
                )
            });
            let spread = match min_max(&paired) {
                (lo, hi) if paired.len() >= 2 => format!("; single repeats {lo:.2}×–{hi:.2}×"),
                _ => String::new(),
            };
            let line = match value {
                Some((raw, pc)) => format!(
                    "- {} {what}: {pc:.2}× per core ({raw:.2}× raw{spread}), target ≥ {goal:.2}×{instr}",
                    verdict(pc, &paired, goal)
                ),
                None => format!("- NOT MEASURED {what} (a row is missing, see the skipped list)"),
            };
            let _ = writeln!(t, "{line}");
        };
    let loads: &[Load] = if h.wrk.is_empty() { &[Load::BenchLoad] } else { &[Load::BenchLoad, Load::Wrk] };
    for &load in loads {
        for &(name, other, route, goal) in TARGETS {
            let (Some(i), Some(o)) = (h.index(name), h.index(other)) else { continue };
            if load == Load::Wrk && !super::wrk::ROUTES.contains(&route) {
                continue;
            }
            // Instruction counts do not depend on the generator: shown once.
            let instr = match load {
                Load::BenchLoad => h.instr_ratio(i, Some(o), route).zip(h.instr_ratio_hw_sha(i, Some(o), route)),
                Load::Wrk => None,
            };
            check(
                format!("[{}] {name} `{route}` vs {other}", load.name()),
                h.ratio_in(load, i, Some(o), route),
                h.paired_in(load, i, o, route),
                instr,
                goal,
            );
        }
    }
    t
}

pub(super) fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name").and_then(|r| r.split_once(':')).map(|(_, m)| m.trim().to_owned()))
        .unwrap_or_else(|| "unknown CPU".into());
    let nproc = output("nproc", &[]).unwrap_or_else(|| "?".into());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines().next().map(|l| l.split_whitespace().nth(1).unwrap_or("0").parse::<f64>().unwrap_or(0.0))
        })
        .map_or_else(String::new, |kb| format!(", {:.1} GiB RAM", kb / 1024.0 / 1024.0));
    let rustc = output("rustc", &["-V"]).unwrap_or_default();
    format!("{model}, nproc = {nproc}{mem}, Linux {}, {rustc}", kernel.trim())
}

/// The cache target (a memory-region hit within 1.5× of the raw engine), and the two-tier
/// region's figures.
pub(super) fn cache_target(criterion: &[CriterionFigure]) -> String {
    let mean = |id: &str| criterion.iter().find(|f| f.id == id).map(|f| f.mean_ns);
    let memory = match (mean("memory_hit/beaker_region_get"), mean("memory_hit/quick_cache_get")) {
        (Some(region), Some(raw)) => format!(
            "- {} memory cache hit vs the raw quick_cache get: {:.2}× the time ({} vs {}), target ≤ 1.50×\n",
            if region / raw <= 1.5 { "MET" } else { "NOT MET" },
            region / raw,
            human_ns(region),
            human_ns(raw)
        ),
        _ => String::new(),
    };
    memory + &two_tier_hits(criterion)
}

/// The two-tier Redis region's hits, one alone and 32 at once, against the memory region,
/// plain Redis and moka (no target: reported).
fn two_tier_hits(criterion: &[CriterionFigure]) -> String {
    let mean = |id: &str| criterion.iter().find(|f| f.id == id).map(|f| f.mean_ns);
    let mut out = String::new();
    for (group, what) in [("cache_hit", "one hit alone"), ("cache_hit_x32", "32 concurrent hits")] {
        let Some(near) = mean(&format!("{group}/redis_near")) else { continue };
        let vs = |id: String, label: &str| mean(&id).map(|m| format!("{:.2}× {label} ({})", near / m, human_ns(m)));
        let others: Vec<String> = [
            vs(format!("{group}/memory"), "the memory region"),
            vs(format!("{group}/redis"), "plain Redis"),
            // moka is measured one get at a time.
            mean("memory_hit/moka_future_get")
                .map(|m| if group == "cache_hit" { m } else { 32.0 * m })
                .map(|m| format!("{:.2}× moka's get ({})", near / m, human_ns(m))),
        ]
        .into_iter()
        .flatten()
        .collect();
        let _ = writeln!(
            out,
            "- two-tier Redis cache region, {what}: {} — the time of {}",
            human_ns(near),
            others.join(", ")
        );
    }
    out
}

/// What a user acts on: per framework and store, the throughput of each route against the
/// bare framework and of the modifying route against the peer on the same store.
pub(super) fn summary_table(h: &Http) -> String {
    let mut t = String::new();
    let _ = writeln!(
        t,
        "| framework + store | modifying request (`/counter`) × bare | read-only (`/read`) × bare | untouched (`/`) × bare | `/counter` × peer |"
    );
    let _ = writeln!(t, "|---|---|---|---|---|");
    for (i, c) in h.configs.iter().enumerate() {
        if c.kind != Kind::Beaker {
            continue;
        }
        let cell = |other: Option<usize>, route: &str| {
            let pc = h.ratio(i, other, route).map(|(_, pc)| pc);
            let instr = h.instr_ratio_hw_sha(i, other, route);
            match (pc, instr) {
                (Some(pc), Some(instr)) => format!("{pc:.2}× ({instr:.2}×)"),
                (Some(pc), None) => format!("{pc:.2}×"),
                _ => "–".into(),
            }
        };
        if ROUTES.iter().all(|r| h.row(i, r).is_none()) {
            continue; // not measured in this run (its service was missing): no row
        }
        let peer = c.peer.and_then(|p| h.index(p));
        let vs_peer = match (h.ratio(i, peer, "/counter"), c.peer) {
            (Some(_), Some(name)) => format!("{} vs {name}", cell(peer, "/counter")),
            _ => "–".into(),
        };
        let _ = writeln!(
            t,
            "| {} | {} | {} | {} | {vs_peer} |",
            c.name,
            cell(h.bare(i), "/counter"),
            cell(h.bare(i), "/read"),
            cell(h.bare(i), "/"),
        );
    }
    t
}

/// Three lines a user reads first, from the same figures as [`summary_table`].
pub(super) fn summary_lines(h: &Http) -> String {
    let range = |pick: &dyn Fn(usize, &Config) -> Option<f64>| {
        let v: Vec<f64> = h
            .configs
            .iter()
            .enumerate()
            .filter(|(_, c)| c.kind == Kind::Beaker)
            .filter_map(|(i, c)| pick(i, c))
            .filter(|x| x.is_finite())
            .collect();
        match min_max(&v) {
            (lo, hi) if !v.is_empty() => format!("{lo:.2}–{hi:.2}×"),
            _ => "not measured".into(),
        }
    };
    let untouched = range(&|i, _| h.instr_ratio_hw_sha(i, h.bare(i), "/"));
    let memory = range(&|i, c| {
        if c.name.contains("memory") || c.name.contains("cookie") {
            h.ratio(i, h.bare(i), "/counter").map(|(_, pc)| pc)
        } else {
            None
        }
    });
    let redis = range(&|i, c| {
        if c.name.contains("redis") {
            h.ratio(i, h.bare(i), "/counter").map(|(_, pc)| pc)
        } else {
            None
        }
    });
    let peers = range(&|i, c| h.ratio(i, c.peer.and_then(|p| h.index(p)), "/counter").map(|(_, pc)| pc));
    format!(
        "- A route that never touches its session costs next to nothing: {untouched} the bare framework's throughput (instructions per request).\n\
         - A request that reads and writes its session runs at {memory} the bare framework's per-core throughput with an in-process or cookie store, {redis} with Redis (network round trips included).\n\
         - Against tower-sessions and actix-session on the same store, a modifying request runs at {peers} their per-core throughput.\n"
    )
}

/// The commit the run builds, read when it starts.
static COMMIT: std::sync::OnceLock<String> = std::sync::OnceLock::new();

pub(super) fn note_commit() {
    COMMIT.get_or_init(|| {
        output("git", &["-C", &root().display().to_string(), "rev-parse", "--short", "HEAD"]).unwrap_or_default()
    });
}

pub(super) fn write_docs(
    o: &Options,
    h: &Http,
    criterion: &[CriterionFigure],
    criterion_skipped: &[String],
    elapsed: Duration,
) -> Result {
    let docs = root().join("docs");
    let dev = docs.join("dev");
    std::fs::create_dir_all(&dev).map_err(|e| format!("{}: {e}", dev.display()))?;
    let md_path = docs.join("benchmarks.md");
    let dev_path = dev.join("benchmarks.md");
    // The maintainers' hand-written analysis below `## Analysis` survives regeneration.
    let analysis = std::fs::read_to_string(&dev_path)
        .ok()
        .and_then(|old| old.find("\n## Analysis").map(|at| old[at..].to_owned()))
        .unwrap_or_else(|| "\n## Analysis\n\n(hand-written; kept when the file is regenerated)\n".into());
    let date = output("date", &["-u", "+%Y-%m-%d %H:%M UTC"]).unwrap_or_default();
    note_commit();
    let commit = COMMIT.get().cloned().unwrap_or_default();
    let mut md = String::new();
    let _ = writeln!(md, "# Benchmarks\n");
    md.push_str(&summary_lines(h));
    let _ = writeln!(
        md,
        "\nThroughput of each route relative to the same framework without a session layer (1.00× = no cost; \
         0.70× = 30 % fewer requests per CPU core), median per-core figure of the run described below, with the \
         ratio of instructions per request in parentheses (repeatable to about 1 %; user space only, software \
         SHA-256 excluded). The last column compares beaker-rs with the peer library on the same store.\n"
    );
    md.push_str(&summary_table(h));
    let _ = writeln!(
        md,
        "\nWhat to take from it: the store decides the cost far more than the session layer does, a route that \
         does not use its session pays next to nothing, and the last column compares the peer on your store.\n"
    );
    let _ = writeln!(md, "## Method\n");
    let _ = writeln!(
        md,
        "Written by `cargo xtask bench` (`xtask/src/bench.rs`), which rewrites this whole file; the maintainers' \
         notes on the figures are in [dev/benchmarks.md](dev/benchmarks.md).\n"
    );
    let build_s = BUILD_MS.load(std::sync::atomic::Ordering::Relaxed) as f64 / 1000.0;
    let _ = writeln!(
        md,
        "- Command: `{}`: {:.0} s in all, of which {build_s:.0} s compiling and {:.0} s measuring",
        o.command,
        elapsed.as_secs_f64(),
        elapsed.as_secs_f64() - build_s
    );
    let _ = writeln!(md, "- Date: {date}, commit `{commit}`");
    let _ = writeln!(md, "- Machine: {}", machine());
    let _ = writeln!(md, "- Load average before the HTTP run: `{}`", h.load_before);
    let _ = writeln!(
        md,
        "- Pinning: {}",
        if h.pinned {
            "server on CPU 0, load generator on CPU 1 (`taskset`); the Redis server is not pinned"
        } else {
            "none (taskset or a second CPU missing)"
        }
    );
    let _ = writeln!(md, "\nReproduce: `cargo xtask bench` (criterion + HTTP), `cargo xtask bench http`, `cargo xtask bench criterion`, `cargo xtask bench --quick` (short runs, under 5 minutes on 2 cores).\n");
    let _ = writeln!(md, "## HTTP load\n");
    let _ = writeln!(
        md,
        "Each server runs with one worker thread (`TOKIO_WORKER_THREADS=1`; actix-web sizes its workers by the CPUs it may use, \
         one under `taskset`, and the peers set `workers(1)`). `bench-load` (in `bench/`) opens {} keep-alive HTTP/1.1 connections; \
         each primes its own session with one `GET /counter` and then sends its cookie on every request; a connection whose \
         `Cookie` header would be shorter than {} bytes (bare servers set none, tower-sessions a short id) pads it with a cookie \
         no server reads, so that every configuration parses requests of the same shape. \
         Per-core throughput is requests/s divided by the server process's CPU share (`utime + stime` of `/proc/PID/stat` over the \
         measured phase), which removes the load generator's limit from the comparison: on two cores the generator usually saturates first. \
         Every figure is the median of {} interleaved repeats of {} ms (after {} ms warm-up); min–max shows the noise. \
         `/counter` reads and writes the integer `n`, `/read` reads it, `/` does not touch the session.\n",
        o.connections,
        super::COOKIE_FLOOR,
        o.repeats,
        o.duration_ms,
        o.warmup_ms
    );
    md.push_str(&table(h, o));
    let _ = writeln!(md, "\n![throughput per configuration](benchmarks.svg)\n");
    if !h.wrk.is_empty() {
        let _ = writeln!(md, "### The same servers under wrk\n");
        let _ = writeln!(
            md,
            "An independent load generator on the same servers, in the same run (each server measured by `bench-load`, \
             then by wrk, before the next one starts): `wrk -t1 -c{}` pinned to CPU 1 with `xtask/src/bench/circulate.lua`. \
             The script primes {} sessions, then circulates them between the connections: each response hands back the \
             cookie it sets, or, when it sets none, a known session round-robin, so a server that does not re-send its \
             cookie (beaker's server-side stores) can see two requests of one session in flight at once, where a server \
             that re-sends it on every response (the peers, and beaker's cookie store, on `/counter`) sees one. \
             A discarded wrk run warms each server up first; the `Cookie` header is padded to {} bytes as above; \
             per-core is requests/s over the server's CPU share during the measured run.\n",
            o.connections,
            o.connections,
            super::COOKIE_FLOOR
        );
        md.push_str(&table_in(h, o, Load::Wrk, &super::wrk::ROUTES));
        md.push('\n');
    }
    if !h.instructions.is_empty() {
        let _ = writeln!(md, "### Instructions per request (callgrind)\n");
        let _ = writeln!(
            md,
            "The same servers and routes under `valgrind --tool=callgrind`: after a warm-up, the counters are zeroed and a fixed \
             number of requests is counted (`xtask/src/bench/instructions.rs`). Unlike throughput on a shared machine, the count \
             repeats exactly; ratios are shown throughput-like (bare ÷ configuration: above 1 is cheaper). It does not see waiting \
             (the Redis rows' round trips), time in the kernel (loopback TCP, about the same for every server, and on some \
             machines most of a request), cache misses, or CPU extensions valgrind hides: SHA-256 (the HMAC of beaker's signed id \
             cookie, the store key hash) is counted in software, several times its cost on a CPU with SHA-NI.\n"
        );
        md.push_str(&instructions_table(h));
        md.push('\n');
    }
    if !h.objects.is_empty() {
        md.push_str(&objects_section(h));
    }
    if !h.skipped.is_empty() {
        let _ = writeln!(md, "\nSkipped or failed:\n");
        for s in &h.skipped {
            let _ = writeln!(md, "- {s}");
        }
    }
    if !criterion.is_empty() {
        let _ = writeln!(md, "\n## Criterion micro-benchmarks\n");
        let _ = writeln!(
            md,
            "Mean time per iteration. `request/load_modify_save/*`: one whole modifying request on an existing session \
             (`start` + read + write + `finish`). `cache_hit`, `cache_miss`: `Region::get` of a present and an absent \
             key; `cache_hit_x32`: 32 concurrent `get`s of a present key (the time for all 32; `redis_near` is \
             Redis with its process-local tier, whose hits share one `PING` per batch); `cache_get_or_create`: a new key each time (miss, dogpile lock, creator, write); the value is a \
             ~100-byte struct, which a memory-region hit clones. `memory_hit/*`: a memory region against the raw \
             engines (quick_cache, moka), measured in the same run.\n"
        );
        let _ = writeln!(md, "| benchmark | mean |\n|---|---|");
        for f in criterion {
            let _ = writeln!(md, "| `{}` | {} |", f.id, human_ns(f.mean_ns));
        }
        if !criterion_skipped.is_empty() {
            let _ = writeln!(md, "\nNot in this run (service unavailable, so its rows are missing):\n");
            for s in criterion_skipped {
                let _ = writeln!(md, "- {s}");
            }
        }
    }
    std::fs::write(&md_path, md).map_err(|e| format!("{}: {e}", md_path.display()))?;
    let mut dev_md = String::new();
    let _ = writeln!(dev_md, "# Benchmarks: targets and analysis (maintainers)\n");
    let _ = writeln!(
        dev_md,
        "The figures are in [../benchmarks.md](../benchmarks.md). `cargo xtask bench` rewrites everything above \
         **Analysis** (run of {date}, commit `{commit}`).\n"
    );
    let _ = writeln!(dev_md, "## Targets, on per-core throughput\n");
    let _ = writeln!(
        dev_md,
        "The verdict reads the median per-core ratio, unless the ratios of single repeats (each \
         configuration against its reference in the same repeat) fall on both sides of the target: \
         then it is INCONCLUSIVE, and the instruction counts are the figures to read.\n"
    );
    dev_md.push_str(&targets(h));
    dev_md.push_str(&cache_target(criterion));
    dev_md.push_str(&analysis);
    std::fs::write(&dev_path, dev_md).map_err(|e| format!("{}: {e}", dev_path.display()))?;
    let svg_path = docs.join("benchmarks.svg");
    std::fs::write(&svg_path, svg(h)).map_err(|e| format!("{}: {e}", svg_path.display()))?;
    eprintln!("bench: wrote {}, {} and {}", md_path.display(), dev_path.display(), svg_path.display());
    print!("\nTargets:\n{}{}", targets(h), cache_target(criterion));
    Ok(())
}

/// The object-storage section: demo-axum on each emulator.
pub(super) fn objects_section(h: &Http) -> String {
    let mut t = String::new();
    let _ = writeln!(t, "### Object storage (demo-axum on the emulators)\n");
    let _ = writeln!(
        t,
        "demo-axum with `BEAKER_SESSION_URL=s3://…` on moto and `az://…` on Azurite, started by the run on loopback \
         (as `cargo xtask services` does). Store requests are counted by a proxy between the demo and the emulator, \
         per HTTP request; latency is one client's requests one after the other. The emulators are single-process \
         servers on the same two cores, so read the latencies as an order of magnitude: a cloud service adds its \
         network round trip (typically tens of milliseconds) to each store request, and bills each one. \
         Cache regions on an object store: a `get` is two requests in one round trip (the namespace generation and \
         the entry), a `put` likewise, a `clear` one (`*_round_trips_per_request` tests of `beaker-object-store`). \
         Google Cloud Storage makes the same requests by construction; no emulator serves object_store's conditional \
         requests, so it is not measured here.\n"
    );
    let _ = writeln!(t, "| backend | route | store requests per request | p50 | p99 |\n|---|---|---|---|---|");
    for r in &h.objects {
        let what = match r.route {
            "/counter" => "`/counter` (modified)",
            "/read" => "`/read` (read-only)",
            _ => "`/` (untouched)",
        };
        let _ = writeln!(
            t,
            "| {} | {what} | {:.1} | {:.1} ms | {:.1} ms |",
            r.backend,
            r.store_requests,
            r.sample.p50_us / 1000.0,
            r.sample.p99_us / 1000.0
        );
    }
    t.push('\n');
    t
}

pub(super) fn human_ns(ns: f64) -> String {
    if ns >= 1e9 {
        format!("{:.2} s", ns / 1e9)
    } else if ns >= 1e6 {
        format!("{:.2} ms", ns / 1e6)
    } else if ns >= 1e3 {
        format!("{:.2} µs", ns / 1e3)
    } else {
        format!("{ns:.1} ns")
    }
}

pub(super) fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// A horizontal grouped bar chart of per-core throughput (median, min–max whiskers).
pub(super) fn svg(h: &Http) -> String {
    const COLORS: [&str; 3] = ["#d62728", "#1f77b4", "#2ca02c"];
    let rows: Vec<(usize, &Config)> =
        h.configs.iter().enumerate().filter(|(i, _)| ROUTES.iter().any(|r| h.row(*i, r).is_some())).collect();
    let max = rows
        .iter()
        .flat_map(|(i, _)| ROUTES.iter().filter_map(|r| h.row(*i, r)).map(|r| r.pc_max.max(r.per_core)))
        .filter(|x| x.is_finite())
        .fold(1.0, f64::max);
    // Round the axis up to five ticks of 1, 2 or 5 × 10^k.
    let magnitude = 10f64.powf((max / 5.0).log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0].iter().map(|m| m * magnitude).find(|s| s * 5.0 >= max).unwrap_or(max / 5.0);
    let max = step * 5.0;
    let (left, top, bar, gap, width) = (300.0, 60.0, 9.0, 12.0, 560.0);
    let group = bar * ROUTES.len() as f64 + gap;
    let height = top + group * rows.len() as f64 + 50.0;
    let scale = |v: f64| left + width * v / max;
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{:.0}" height="{height:.0}" font-family="sans-serif" font-size="12">"#,
        left + width + 40.0
    );
    let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="10" y="20" font-size="15" font-weight="bold">Per-core throughput (requests/s per server CPU), median of repeats, min–max whiskers</text>"#
    );
    for (k, route) in ROUTES.iter().enumerate() {
        let x = left + 120.0 * k as f64;
        let _ = writeln!(s, r#"<rect x="{x}" y="32" width="12" height="12" fill="{}"/>"#, COLORS[k]);
        let _ = writeln!(s, r#"<text x="{}" y="42">{route}</text>"#, x + 16.0);
    }
    let ticks = 5;
    for t in 0..=ticks {
        let v = max * t as f64 / ticks as f64;
        let x = scale(v);
        let _ = writeln!(
            s,
            r##"<line x1="{x:.1}" y1="{top}" x2="{x:.1}" y2="{:.1}" stroke="#ddd"/><text x="{x:.1}" y="{:.1}" text-anchor="middle">{:.0}k</text>"##,
            height - 40.0,
            height - 25.0,
            v / 1000.0
        );
    }
    for (n, (i, c)) in rows.iter().enumerate() {
        let y0 = top + group * n as f64;
        let weight = if c.kind == Kind::Beaker { "bold" } else { "normal" };
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="end" font-weight="{weight}">{}</text>"#,
            left - 8.0,
            y0 + bar * 1.5 + 4.0,
            escape(c.name)
        );
        for (k, route) in ROUTES.iter().enumerate() {
            let Some(r) = h.row(*i, route) else { continue };
            if !r.per_core.is_finite() {
                continue;
            }
            let y = y0 + bar * k as f64;
            let _ = writeln!(
                s,
                r#"<rect x="{left}" y="{y:.1}" width="{:.1}" height="{:.1}" fill="{}"><title>{} {route}: {:.0} req/s per core</title></rect>"#,
                scale(r.per_core) - left,
                bar - 1.0,
                COLORS[k],
                escape(c.name),
                r.per_core
            );
            if r.pc_min.is_finite() && r.pc_max.is_finite() {
                let ym = y + (bar - 1.0) / 2.0;
                let _ = writeln!(
                    s,
                    r#"<line x1="{:.1}" y1="{ym:.1}" x2="{:.1}" y2="{ym:.1}" stroke="black"/>"#,
                    scale(r.pc_min),
                    scale(r.pc_max)
                );
            }
        }
    }
    let _ = writeln!(s, "</svg>");
    s
}

#[cfg(test)]
mod tests {
    use super::verdict;

    #[test]
    fn a_spread_across_the_goal_is_inconclusive_whatever_the_median() {
        assert_eq!(verdict(1.05, &[0.89, 1.01, 1.20, 1.21, 1.23], 1.2), "INCONCLUSIVE");
        assert_eq!(verdict(1.21, &[1.19, 1.21, 1.30], 1.2), "INCONCLUSIVE");
    }

    #[test]
    fn a_spread_on_one_side_follows_the_median() {
        assert_eq!(verdict(0.71, &[0.58, 0.71, 0.88], 0.9), "NOT MET");
        assert_eq!(verdict(1.13, &[0.99, 1.13, 1.30], 0.97), "MET");
        assert_eq!(verdict(1.2, &[1.2, 1.25], 1.2), "MET", "the goal itself is met");
    }

    #[test]
    fn without_pairs_the_median_decides() {
        assert_eq!(verdict(1.3, &[], 1.2), "MET");
        assert_eq!(verdict(1.1, &[1.3], 1.2), "NOT MET", "one repeat shows no spread");
        assert_eq!(verdict(f64::NAN, &[], 1.2), "NOT MET");
    }
}

#[cfg(test)]
mod summary_tests {
    use super::*;

    fn sample(rps: f64) -> Sample {
        Sample { repeat: 1, rps, cpu: 1.0, p50_us: 1.0, p99_us: 2.0, errors: 0.0 }
    }

    #[test]
    fn the_summary_reads_each_beaker_row_against_bare_and_peer() {
        let configs = configs("test");
        let index = |name: &str| configs.iter().position(|c| c.name == name).unwrap();
        let (bare, ours, peer) =
            (index("axum (bare)"), index("axum + beaker memory"), index("axum + tower-sessions 0.15 memory"));
        let mut samples = BTreeMap::new();
        for route in ROUTES {
            samples.insert((bare, route), vec![sample(1000.0)]);
            samples.insert((ours, route), vec![sample(800.0)]);
            samples.insert((peer, route), vec![sample(400.0)]);
        }
        let h = Http {
            samples,
            configs,
            skipped: Vec::new(),
            wrk: BTreeMap::new(),
            objects: Vec::new(),
            pinned: true,
            load_before: String::new(),
            instructions: Default::default(),
        };
        let table = summary_table(&h);
        assert!(
            table.contains(
                "| axum + beaker memory | 0.80× | 0.80× | 0.80× | 2.00× vs axum + tower-sessions 0.15 memory |"
            ),
            "{table}"
        );
        // Configurations this run did not measure get no row.
        assert_eq!(table.lines().count(), 3, "{table}");
        let lines = summary_lines(&h);
        assert_eq!(lines.lines().count(), 3, "{lines}");
        assert!(lines.contains("0.80–0.80× the bare framework's per-core throughput"), "{lines}");
        assert!(lines.contains("runs at 2.00–2.00× their per-core throughput"), "{lines}");
    }
}
