//! The near cache seen from outside: two demo processes on one Redis with
//! `BEAKER_SESSION_NEAR_CACHE=true`; every read that starts after a write's response, on
//! the other process, sees that write, also while the reading process's tracking
//! connection is killed (`CLIENT KILL`) now and then.

use std::path::Path;

use reqwest::Method;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use super::demo_app::prometheus_value;
use super::{Cx, DemoServer, Http};
use crate::skip_or_fail;

/// Rounds of "write on one, then read on the other" per phase.
pub const NEAR_ROUNDS: u64 = 1000;

/// Two demos on one Redis with the near cache: 1,000 rounds of `/counter` on A then
/// `/read` on B, the same with A and B swapped, then 1,000 more with B's tracking
/// connection killed every 100 rounds: no read is stale.
pub async fn near_cache_sees_every_write(binary: &Path) {
    let url = std::env::var("BEAKER_TEST_REDIS_URL")
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "redis://127.0.0.1:6379".into());
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    let prefix = format!("beaker-test:near:{}_{nanos}:", std::process::id());
    let env = [
        ("BEAKER_SESSION_URL", url.as_str()),
        ("BEAKER_SESSION_KEY_PREFIX", prefix.as_str()),
        ("BEAKER_SESSION_TIMEOUT", "300"),
        ("BEAKER_SESSION_NEAR_CACHE", "true"),
        // Both processes must accept each other's cookies.
        ("BEAKER_SESSION_SECRET", "a near cache test secret shared by both demos"),
    ];
    let a = match DemoServer::try_spawn(binary, &env) {
        Ok(server) => server,
        Err(e) => return skip_or_fail("near cache", &format!("the demo could not start: {e}")),
    };
    let b = DemoServer::spawn(binary, &env);
    let (ha, hb) = (Http::new(a.base_url().to_owned()), Http::new(b.base_url().to_owned()));
    let cx = Cx("near cache");
    let first = ha.send(cx, Method::GET, "/counter", &[], None).await;
    cx.ensure(first.status == 200 && first.set_cookies.len() == 1, || format!("first /counter: {first:?}"));
    let cookie = first.set_cookies[0].split(';').next().unwrap_or_default().trim().to_owned();
    let mut expected = 1u64;
    let b_tracking = format!("beaker-near-{}", b.pid().expect("the demo is running"));
    let mut kills = 0;
    for (phase, (writer, reader)) in [(&ha, &hb), (&hb, &ha), (&ha, &hb)].into_iter().enumerate() {
        for round in 0..NEAR_ROUNDS {
            if phase == 2 && round % 100 == 50 {
                kills += kill_by_name(&url, &b_tracking).await;
            }
            // The reader holds the session in its tier before the write.
            reader.send(cx, Method::GET, "/read", &[cookie.as_bytes()], None).await;
            let w = writer.send(cx, Method::GET, "/counter", &[cookie.as_bytes()], None).await;
            expected += 1;
            cx.ensure(w.status == 200 && w.body.trim() == expected.to_string(), || {
                format!("phase {phase} round {round}: /counter answered {w:?}, expected {expected}")
            });
            let r = reader.send(cx, Method::GET, "/read", &[cookie.as_bytes()], None).await;
            cx.ensure(r.body.trim() == expected.to_string(), || {
                format!(
                    "phase {phase} round {round}: a stale read: /read answered {:?} after the write of {expected}",
                    r.body
                )
            });
        }
    }
    cx.ensure(kills >= 5, || format!("B's tracking connection `{b_tracking}` was found {kills} times, not 10"));

    // What B's tier did, as an operator sees it at `GET /metrics`.
    let metrics = hb.send(cx, Method::GET, "/metrics", &[], None).await;
    cx.ensure(metrics.status == 200, || format!("GET /metrics: {metrics:?}"));
    let value = |name: &str| prometheus_value(&metrics.body, &format!("beaker_near_cache_{name}{{kind=\"sessions\"}}"));
    let (hits, misses, invalidations) = (value("hits_total"), value("misses_total"), value("invalidations_total"));
    // B reads before and after each of A's writes: the first read of a round is a hit
    // unless a kill emptied the tier, and every write of A reaches B as an invalidation.
    cx.ensure(hits >= NEAR_ROUNDS && hits + misses >= 4 * NEAR_ROUNDS && invalidations >= NEAR_ROUNDS, || {
        format!("B's near cache counters: {hits} hits, {misses} misses, {invalidations} invalidations")
    });
    // Each kill empties a tier (a connection killed while it was still being set up is
    // counted as killed but was never live, hence the margin).
    cx.ensure(value("resets_total") >= 5 && value("pings_total") > 0 && value("tiers") >= 1, || {
        format!("B's near cache counters after {kills} kills:\n{}", metrics.body)
    });
}

/// Kills every Redis connection named `name`; how many there were.
async fn kill_by_name(url: &str, name: &str) -> usize {
    let list = command(url, &["CLIENT", "LIST"]).await;
    let mut killed = 0;
    for line in list.lines() {
        let field = |f: &str| line.split(' ').find_map(|kv| kv.strip_prefix(f)).map(str::to_owned);
        if field("name=").as_deref() == Some(name) {
            if let Some(id) = field("id=") {
                command(url, &["CLIENT", "KILL", "ID", &id]).await;
                killed += 1;
            }
        }
    }
    killed
}

/// Sends one command on a fresh connection and returns the reply's text (a bulk or
/// simple string, or an integer).
async fn command(url: &str, args: &[&str]) -> String {
    let addr = url.split("://").nth(1).unwrap_or(url).split(['/', '?']).next().unwrap_or_default();
    let addr = addr.rsplit('@').next().unwrap_or(addr);
    let mut conn = TcpStream::connect(addr).await.unwrap_or_else(|e| panic!("redis at {addr}: {e}"));
    let mut out = format!("*{}\r\n", args.len());
    for a in args {
        out.push_str(&format!("${}\r\n{a}\r\n", a.len()));
    }
    conn.write_all(out.as_bytes()).await.expect("write to redis");
    let mut buf = Vec::new();
    loop {
        let mut chunk = [0u8; 8192];
        let n = conn.read(&mut chunk).await.expect("read from redis");
        assert!(n > 0, "redis closed the connection");
        buf.extend_from_slice(&chunk[..n]);
        if let Some(text) = complete(&buf) {
            return text;
        }
    }
}

/// The reply in `buf` once it is complete.
fn complete(buf: &[u8]) -> Option<String> {
    let end = buf.windows(2).position(|w| w == b"\r\n")?;
    let head = std::str::from_utf8(&buf[1..end]).ok()?;
    match buf.first()? {
        b'$' => {
            let len: usize = head.parse().ok()?;
            let body = buf.get(end + 2..end + 2 + len)?;
            Some(String::from_utf8_lossy(body).into_owned())
        }
        b'-' => panic!("redis: {head}"),
        _ => Some(head.to_owned()),
    }
}
