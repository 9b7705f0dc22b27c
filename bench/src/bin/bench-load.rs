//! The HTTP load generator of `cargo xtask bench http`.
//!
//! Opens a fixed number of keep-alive HTTP/1.1 connections to one loopback server; each
//! connection first primes its own session (one `GET` of the priming path, keeping the
//! `Set-Cookie` it gets), then sends `GET PATH` back to back with its cookie, replacing the
//! cookie whenever the server sets a new one. A warm-up phase is run and discarded, then
//! the measured phase runs until its duration or the request budget is spent.
//!
//! When `--server-pid` is given, the server's CPU time (`utime + stime` of
//! `/proc/PID/stat`, all threads) is read at the start and the end of the measured phase,
//! so that per-core throughput (requests/s divided by the CPU share used) is exact.
//!
//! Output: one line on stdout,
//! `requests=N errors=N seconds=S rps=R p50_us=N p99_us=N cpu=SHARE`.
//!
//! ```text
//! bench-load --url http://127.0.0.1:PORT --path /counter [--prime /counter]
//!            [--connections 32] [--warmup-ms 500] [--duration-ms 3000]
//!            [--max-requests 2000000] [--server-pid PID] [--clk-tck 100]
//!            [--cookie-floor 0]
//! ```
//!
//! `--cookie-floor N`: after priming, a connection whose `Cookie` header is shorter than
//! N bytes (a bare server sets none, tower-sessions a short id) appends a padding cookie
//! `bench-pad=xxx…` up to N bytes, so that every configuration parses requests of the same
//! shape and header parsing is not charged to the session layer.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::{COOKIE, HOST, SET_COOKIE};
use hyper::Request;
use hyper_util::rt::TokioIo;

struct Args {
    addr: SocketAddr,
    path: String,
    prime: String,
    connections: usize,
    warmup: Duration,
    duration: Duration,
    max_requests: u64,
    server_pid: Option<u32>,
    clk_tck: f64,
    cookie_floor: usize,
}

fn usage(problem: &str) -> ! {
    eprintln!("bench-load: {problem}");
    eprintln!(
        "usage: bench-load --url http://127.0.0.1:PORT --path /ROUTE [--prime /ROUTE] [--connections N] \
         [--warmup-ms N] [--duration-ms N] [--max-requests N] [--server-pid PID] [--clk-tck N] [--cookie-floor N]"
    );
    std::process::exit(2)
}

fn parse_args() -> Args {
    let mut url = None;
    let mut args = Args {
        addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        path: "/".into(),
        prime: "/counter".into(),
        connections: 32,
        warmup: Duration::from_millis(500),
        duration: Duration::from_millis(3000),
        max_requests: 2_000_000,
        server_pid: None,
        clk_tck: 100.0,
        cookie_floor: 0,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().unwrap_or_else(|| usage(&format!("{flag} needs a value")));
        let number = || value.parse::<u64>().unwrap_or_else(|_| usage(&format!("{flag}: not a number: {value}")));
        match flag.as_str() {
            "--url" => url = Some(value.clone()),
            "--path" => args.path = value.clone(),
            "--prime" => args.prime = value.clone(),
            "--connections" => args.connections = number().max(1) as usize,
            "--warmup-ms" => args.warmup = Duration::from_millis(number()),
            "--duration-ms" => args.duration = Duration::from_millis(number()),
            "--max-requests" => args.max_requests = number().max(1),
            "--server-pid" => args.server_pid = Some(number() as u32),
            "--clk-tck" => args.clk_tck = number().max(1) as f64,
            "--cookie-floor" => args.cookie_floor = number().min(4096) as usize,
            _ => usage(&format!("unknown flag {flag}")),
        }
    }
    let url = url.unwrap_or_else(|| usage("--url is required"));
    let authority = url.strip_prefix("http://").unwrap_or_else(|| usage("only http:// URLs")).trim_end_matches('/');
    args.addr = authority.parse().unwrap_or_else(|_| usage(&format!("not an IP:PORT authority: {authority}")));
    // Loopback only: this tool must never load anything but a local benchmark server.
    if !args.addr.ip().is_loopback() {
        usage("only loopback addresses (127.0.0.1) may be loaded");
    }
    args
}

/// `utime + stime` of a process, in seconds.
fn cpu_seconds(pid: u32, clk_tck: f64) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may contain spaces: fields start after ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After ')': state is field 3 of the full line, utime 14 and stime 15.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / clk_tck)
}

/// One connection with its session cookie.
struct Client {
    send: SendRequest<Empty<Bytes>>,
    host: String,
    cookie: Option<String>,
}

impl Client {
    async fn connect(addr: SocketAddr) -> Result<Client, String> {
        let stream = tokio::net::TcpStream::connect(addr).await.map_err(|e| format!("connect {addr}: {e}"))?;
        stream.set_nodelay(true).map_err(|e| e.to_string())?;
        let (send, conn) = http1::handshake(TokioIo::new(stream)).await.map_err(|e| format!("handshake: {e}"))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(Client { send, host: addr.to_string(), cookie: None })
    }

    /// One `GET`; keeps any cookie the server sets. Returns the status.
    async fn get(&mut self, path: &str) -> Result<u16, String> {
        let mut req = Request::get(path).header(HOST, &self.host);
        if let Some(cookie) = &self.cookie {
            req = req.header(COOKIE, cookie);
        }
        let req = req.body(Empty::new()).map_err(|e| e.to_string())?;
        self.send.ready().await.map_err(|e| format!("connection: {e}"))?;
        let res = self.send.send_request(req).await.map_err(|e| format!("request: {e}"))?;
        let status = res.status().as_u16();
        let set: Vec<String> = res
            .headers()
            .get_all(SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .filter_map(|v| v.split(';').next())
            .map(|pair| pair.trim().to_owned())
            .collect();
        if !set.is_empty() {
            self.merge_cookies(&set);
        }
        res.into_body().collect().await.map_err(|e| format!("body: {e}"))?;
        Ok(status)
    }

    fn merge_cookies(&mut self, set: &[String]) {
        let mut jar: Vec<(String, String)> = self
            .cookie
            .iter()
            .flat_map(|c| c.split("; "))
            .filter_map(|p| p.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        for pair in set {
            let Some((name, value)) = pair.split_once('=') else { continue };
            jar.retain(|(k, _)| k != name);
            if !value.is_empty() {
                jar.push((name.to_owned(), value.to_owned()));
            }
        }
        self.cookie =
            (!jar.is_empty()).then(|| jar.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("; "));
    }

    /// Pads the `Cookie` header to at least `floor` bytes with a cookie no server reads.
    fn pad_cookie(&mut self, floor: usize) {
        let have = self.cookie.as_ref().map_or(0, |c| c.len() + 2);
        let name = "bench-pad=";
        if have + name.len() >= floor {
            return;
        }
        let pad = format!("{name}{}", "x".repeat(floor - have - name.len()));
        self.cookie = Some(match self.cookie.take() {
            Some(c) => format!("{c}; {pad}"),
            None => pad,
        });
    }
}

#[derive(Default)]
struct Outcome {
    latencies_us: Vec<u32>,
    errors: u64,
}

async fn drive(
    mut client: Client,
    path: Arc<str>,
    until: Instant,
    budget: Arc<AtomicU64>,
    record: bool,
) -> (Client, Outcome) {
    let mut out = Outcome::default();
    while Instant::now() < until {
        if record && budget.fetch_sub(1, Ordering::Relaxed) == 0 {
            budget.store(0, Ordering::Relaxed);
            break;
        }
        let t = Instant::now();
        match client.get(&path).await {
            Ok(status) if (200..300).contains(&status) => {
                if record {
                    out.latencies_us.push(u32::try_from(t.elapsed().as_micros()).unwrap_or(u32::MAX));
                }
            }
            Ok(_) => out.errors += 1,
            Err(e) => {
                eprintln!("bench-load: {e}");
                out.errors += 1;
                break;
            }
        }
    }
    (client, out)
}

fn percentile(sorted: &[u32], p: f64) -> u32 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

async fn run(args: Args) -> Result<String, String> {
    let path: Arc<str> = args.path.as_str().into();
    let mut clients = Vec::with_capacity(args.connections);
    for _ in 0..args.connections {
        let mut c = Client::connect(args.addr).await?;
        let status = c.get(&args.prime).await?;
        if !(200..300).contains(&status) {
            return Err(format!("priming GET {} answered {status}", args.prime));
        }
        c.pad_cookie(args.cookie_floor);
        clients.push(c);
    }

    // Warm-up, discarded.
    let until = Instant::now() + args.warmup;
    let budget = Arc::new(AtomicU64::new(u64::MAX));
    let tasks: Vec<_> =
        clients.into_iter().map(|c| tokio::spawn(drive(c, path.clone(), until, budget.clone(), false))).collect();
    let mut clients = Vec::with_capacity(args.connections);
    for t in tasks {
        let (c, _) = t.await.map_err(|e| e.to_string())?;
        clients.push(c);
    }

    // Measured phase.
    let budget = Arc::new(AtomicU64::new(args.max_requests));
    let cpu_before = args.server_pid.and_then(|pid| cpu_seconds(pid, args.clk_tck));
    let start = Instant::now();
    let until = start + args.duration;
    let tasks: Vec<_> =
        clients.into_iter().map(|c| tokio::spawn(drive(c, path.clone(), until, budget.clone(), true))).collect();
    let mut latencies = Vec::new();
    let mut errors = 0;
    for t in tasks {
        let (_, out) = t.await.map_err(|e| e.to_string())?;
        latencies.extend(out.latencies_us);
        errors += out.errors;
    }
    let seconds = start.elapsed().as_secs_f64();
    let cpu_after = args.server_pid.and_then(|pid| cpu_seconds(pid, args.clk_tck));
    latencies.sort_unstable();
    let requests = latencies.len() as u64;
    let cpu = match (cpu_before, cpu_after) {
        (Some(b), Some(a)) => (a - b) / seconds,
        _ => f64::NAN,
    };
    Ok(format!(
        "requests={requests} errors={errors} seconds={seconds:.3} rps={:.1} p50_us={} p99_us={} cpu={cpu:.4}",
        requests as f64 / seconds,
        percentile(&latencies, 50.0),
        percentile(&latencies, 99.0),
    ))
}

fn main() {
    let args = parse_args();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a tokio runtime");
    match rt.block_on(run(args)) {
        Ok(line) => println!("{line}"),
        Err(e) => {
            eprintln!("bench-load: {e}");
            std::process::exit(1);
        }
    }
}
