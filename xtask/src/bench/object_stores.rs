//! The object-store rows of `cargo xtask bench`: demo-axum with its sessions on S3 (moto)
//! and on Azure Blob (Azurite), the emulators `cargo xtask services` starts. Per route, the
//! requests the store receives per HTTP request (counted by a loopback proxy between the
//! demo and the emulator) and the latency of one client's requests, one after the other.
//!
//! The proxy counts HTTP/1.1 request lines in the demo-to-emulator stream: object_store
//! speaks HTTP/1.1 to an `http://` endpoint, and session records never contain the
//! ` HTTP/1.1\r\n` of a request line.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::{pinned_command, spawn_announcing, Result, Sample, COOKIE_FLOOR, SECRET};

/// One backend and route: store requests per HTTP request and one client's latency.
pub(super) struct ObjectRow {
    pub(super) backend: &'static str,
    pub(super) route: &'static str,
    pub(super) store_requests: f64,
    pub(super) sample: Sample,
}

/// Requests of the longer and the shorter counted run: the difference removes each run's
/// priming request from the count.
const COUNTED: (u64, u64) = (60, 10);

/// (name, the variable that says the emulator runs, its endpoint variable, session URL).
const BACKENDS: [(&str, &str, &str, &str); 2] = [
    ("S3 (moto)", "BEAKER_TEST_S3_URL", "AWS_ENDPOINT_URL", "s3://beaker-demo"),
    ("Azure Blob (Azurite)", "BEAKER_TEST_AZURE_URL", "AZURITE_BLOB_STORAGE_URL", "az://beaker-demo"),
];

/// Measures every backend whose emulator runs; what could not run is named in the second
/// list.
pub(super) fn run(bin_dir: &Path, pinned: bool) -> (Vec<ObjectRow>, Vec<String>) {
    let (mut rows, mut skipped) = (Vec::new(), Vec::new());
    let services = match crate::services::Services::start_object_stores() {
        Ok(s) => s,
        Err(e) => {
            skipped.push(format!("object stores: {e}"));
            return (rows, skipped);
        }
    };
    for m in &services.missing {
        skipped.push(format!("object store {}: {}", m.suite, m.why));
    }
    let var = |name: &str| services.env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    for (backend, marker, endpoint_var, url) in BACKENDS {
        if var(marker).is_none() {
            continue;
        }
        match measure(bin_dir, pinned, &services.env, endpoint_var, url) {
            Ok(mut r) => {
                for row in &mut r {
                    row.backend = backend;
                    eprintln!(
                        "bench: {backend:<22} {:<9} {:.1} store requests/request  p50 {:.0} us  p99 {:.0} us",
                        row.route, row.store_requests, row.sample.p50_us, row.sample.p99_us
                    );
                }
                rows.append(&mut r);
            }
            Err(e) => {
                let line = format!("object store {backend}: {e}");
                eprintln!("\n!!! SKIPPED {line}\n");
                skipped.push(line);
            }
        }
    }
    (rows, skipped)
}

fn measure(
    bin_dir: &Path,
    pinned: bool,
    env: &[(String, String)],
    endpoint_var: &str,
    url: &str,
) -> Result<Vec<ObjectRow>> {
    let upstream = env
        .iter()
        .find(|(k, _)| k == endpoint_var)
        .and_then(|(_, v)| v.strip_prefix("http://")?.trim_end_matches('/').parse::<SocketAddr>().ok())
        .ok_or_else(|| format!("{endpoint_var} is not an http://127.0.0.1:PORT endpoint"))?;
    let proxy = CountingProxy::start(upstream)?;
    let mut cmd = pinned_command(&bin_dir.join("demo-axum"), pinned);
    cmd.envs(env.iter().filter(|(k, _)| k != endpoint_var).map(|(k, v)| (k.as_str(), v.as_str())))
        .env(endpoint_var, format!("http://{}", proxy.addr))
        .env("BEAKER_SESSION_URL", format!("{url}/bench-{}", std::process::id()))
        .env("BEAKER_SESSION_SECRET", SECRET)
        .env("BEAKER_DEMO_ADDR", "127.0.0.1:0")
        .env("TOKIO_WORKER_THREADS", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let server = spawn_announcing(cmd, Duration::from_secs(30))?;
    let mut rows = Vec::new();
    for route in ["/counter", "/read", "/"] {
        let before = proxy.requests();
        load(bin_dir, &server.addr, route, COUNTED.1)?;
        let short = proxy.requests() - before;
        let before = proxy.requests();
        let sample = load(bin_dir, &server.addr, route, COUNTED.0)?;
        let long = proxy.requests() - before;
        let store_requests = long.saturating_sub(short) as f64 / (COUNTED.0 - COUNTED.1) as f64;
        rows.push(ObjectRow { backend: "", route, store_requests, sample });
    }
    Ok(rows)
}

/// One client, `requests` requests one after the other (after its priming `/counter`).
fn load(bin_dir: &Path, addr: &str, route: &str, requests: u64) -> Result<Sample> {
    let out = Command::new(bin_dir.join("bench-load"))
        .args(["--url", &format!("http://{addr}"), "--path", route, "--prime", "/counter"])
        .args(["--connections", "1", "--warmup-ms", "0", "--duration-ms", "600000"])
        .args(["--max-requests", &requests.to_string(), "--cookie-floor", &COOKIE_FLOOR.to_string()])
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("could not start bench-load: {e}"))?;
    let line = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(format!("bench-load failed ({}) on {route}", out.status));
    }
    let s = Sample::parse(&line).ok_or_else(|| format!("bench-load printed {line:?}"))?;
    if s.errors > 0.0 {
        return Err(format!("{} errors on {route}", s.errors));
    }
    Ok(s)
}

/// A loopback TCP proxy that counts the HTTP/1.1 requests passing through it; its threads
/// end with the process (the benchmark's).
struct CountingProxy {
    addr: SocketAddr,
    requests: Arc<AtomicU64>,
}

impl CountingProxy {
    fn start(upstream: SocketAddr) -> Result<CountingProxy> {
        let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("proxy: {e}"))?;
        let addr = listener.local_addr().map_err(|e| format!("proxy: {e}"))?;
        let requests = Arc::new(AtomicU64::new(0));
        let counter = requests.clone();
        std::thread::spawn(move || {
            for client in listener.incoming().map_while(std::result::Result::ok) {
                let Ok(server) = TcpStream::connect(upstream) else { continue };
                let _ = (client.set_nodelay(true), server.set_nodelay(true));
                let (Ok(client_r), Ok(server_w)) = (client.try_clone(), server.try_clone()) else { continue };
                let counter = counter.clone();
                std::thread::spawn(move || pipe(client_r, server_w, Some(&counter)));
                std::thread::spawn(move || pipe(server, client, None));
            }
        });
        Ok(CountingProxy { addr, requests })
    }

    fn requests(&self) -> u64 {
        self.requests.load(Ordering::SeqCst)
    }
}

const REQUEST_LINE_END: &[u8] = b" HTTP/1.1\r\n";

/// Copies `from` to `to` until either closes, counting request lines when `count` is set
/// (a line split between two reads is found through the bytes kept from the last one).
fn pipe(mut from: TcpStream, mut to: TcpStream, count: Option<&AtomicU64>) {
    let mut buf = vec![0u8; 64 * 1024];
    let mut carry: Vec<u8> = Vec::new();
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if let Some(count) = count {
            carry.extend_from_slice(&buf[..n]);
            let found = carry.windows(REQUEST_LINE_END.len()).filter(|w| *w == REQUEST_LINE_END).count();
            count.fetch_add(found as u64, Ordering::SeqCst);
            let keep = carry.len().min(REQUEST_LINE_END.len() - 1);
            carry.drain(..carry.len() - keep);
        }
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(std::net::Shutdown::Write);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_proxy_counts_requests_split_across_reads() {
        // An upstream that reads everything and answers nothing.
        let upstream = TcpListener::bind("127.0.0.1:0").unwrap();
        let upstream_addr = upstream.local_addr().unwrap();
        std::thread::spawn(move || {
            for mut c in upstream.incoming().map_while(std::result::Result::ok) {
                std::thread::spawn(move || {
                    let mut sink = Vec::new();
                    let _ = c.read_to_end(&mut sink);
                });
            }
        });
        let proxy = CountingProxy::start(upstream_addr).unwrap();
        let mut c = TcpStream::connect(proxy.addr).unwrap();
        c.write_all(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nPUT /b HT").unwrap();
        c.flush().unwrap();
        std::thread::sleep(Duration::from_millis(100));
        c.write_all(b"TP/1.1\r\nContent-Length: 3\r\n\r\nabc").unwrap();
        drop(c);
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while proxy.requests() < 2 && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(proxy.requests(), 2);
    }
}
