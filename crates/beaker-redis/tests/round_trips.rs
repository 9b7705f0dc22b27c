//! The Redis round trips per request that the docs promise, counted with `MONITOR` on a
//! `redis-server` of the test's own.

mod common;

use std::time::Duration;

use beaker_redis::{RedisOptions, RedisStore};
use beaker_testkit::process::LocalServer;
use common::{own_redis, raw, redis_url};

/// The commands clients send to `server`, as `MONITOR` reports them: the names, in order,
/// of every command from a client connection (the commands a script runs are reported
/// apart, from `lua`, and left out; so is the marker that ends each batch).
struct Monitor {
    lines: tokio::io::Lines<tokio::io::BufReader<tokio::net::TcpStream>>,
    /// The connection that sends the markers, opened once (a new connection's own setup
    /// commands must not land inside a batch).
    marker: redis::aio::MultiplexedConnection,
    marks: u64,
}

impl Monitor {
    async fn start(server: &LocalServer) -> Monitor {
        use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
        let mut stream = tokio::net::TcpStream::connect(server.addr()).await.unwrap();
        stream.write_all(b"MONITOR\r\n").await.unwrap();
        let mut lines = tokio::io::BufReader::new(stream).lines();
        assert_eq!(lines.next_line().await.unwrap().as_deref(), Some("+OK"));
        Monitor { lines, marker: raw(&redis_url(server)).await, marks: 0 }
    }

    /// The client commands since the last call (lowercase names).
    async fn commands(&mut self) -> Vec<String> {
        self.marks += 1;
        let mark = format!("beaker-monitor-mark-{}", self.marks);
        let _: String = redis::cmd("ECHO").arg(&mark).query_async(&mut self.marker).await.unwrap();
        let mut seen = Vec::new();
        let deadline = Duration::from_secs(10);
        loop {
            let line = tokio::time::timeout(deadline, self.lines.next_line()).await.unwrap().unwrap().unwrap();
            if line.contains(&mark) {
                return seen;
            }
            // `+1700000000.123456 [0 127.0.0.1:50000] "hgetall" "key"`; `[0 lua]` for a
            // script's own calls.
            let Some((origin, args)) = line.split_once("] ") else { continue };
            if !origin.ends_with(" lua") {
                seen.push(args.split('"').nth(1).unwrap_or_default().to_lowercase());
            }
        }
    }
}

/// One request through the engine: the cookie in, `body` on the session, the Set-Cookie
/// values out; returns the commands it sent to Redis.
async fn request_commands<F: std::future::Future<Output = ()>>(
    monitor: &mut Monitor,
    manager: &beaker_core::SessionManager,
    cookie: &str,
    body: impl FnOnce(beaker_core::Session) -> F,
) -> (Vec<String>, Vec<beaker_core::SetCookie>) {
    monitor.commands().await;
    let session = manager.start([cookie]);
    body(session.clone()).await;
    let set_cookies = manager.finish(&session).await.unwrap().into_set_cookies();
    (monitor.commands().await, set_cookies)
}

/// The round trips the docs promise (and the benchmark target asks): one for a read-only
/// request, two for a modifying one, none for a request that never uses its session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_make_the_round_trips_the_docs_promise() {
    let suite = "redis round trips";
    let Some(server) = own_redis(suite).await else { return };
    let url = redis_url(&server);
    let store = RedisStore::connect(&url, RedisOptions::default()).await.unwrap();
    // An idle timeout, so that a read could touch; the default touch interval keeps a
    // request right after a write from touching.
    let config = beaker_core::SessionConfig::new()
        .with_secret("round trips test secret, 32 bytes")
        .unwrap()
        .with_timeout(Duration::from_secs(600));
    let manager = beaker_core::SessionManager::builder(config).store(store).build().unwrap();
    let mut monitor = Monitor::start(&server).await;

    // Create the session, then one modifying request so that both scripts are loaded:
    // the counts below are the steady state.
    let (_, set) =
        request_commands(&mut monitor, &manager, "", |s| async move { s.insert("n", &1u64).await.unwrap() }).await;
    let cookie = set[0].as_str().split(';').next().unwrap().to_owned();
    request_commands(&mut monitor, &manager, &cookie, |s| async move { s.insert("n", &2u64).await.unwrap() }).await;

    let (calls, set) = request_commands(&mut monitor, &manager, &cookie, |s| async move {
        assert_eq!(s.get::<u64>("n").await.unwrap(), Some(2));
    })
    .await;
    assert_eq!(calls, ["hgetall"], "a read-only request: one round trip");
    assert!(set.is_empty());

    let (calls, set) = request_commands(&mut monitor, &manager, &cookie, |s| async move {
        let n: u64 = s.get("n").await.unwrap().unwrap();
        s.insert("n", &(n + 1)).await.unwrap();
    })
    .await;
    assert_eq!(calls, ["hgetall", "evalsha"], "a modifying request: two round trips");
    assert!(set.is_empty(), "the id is unchanged: no Set-Cookie");

    let (calls, set) = request_commands(&mut monitor, &manager, &cookie, |_| async {}).await;
    assert!(calls.is_empty(), "an untouched request: {calls:?}");
    assert!(set.is_empty());

    // The value the modifying request wrote is what the next one reads.
    request_commands(&mut monitor, &manager, &cookie, |s| async move {
        assert_eq!(s.get::<u64>("n").await.unwrap(), Some(3));
    })
    .await;

    // A read whose touch is due (here: every request) makes a second round trip.
    let config = manager.config().clone().with_touch_interval(Duration::ZERO);
    let store = RedisStore::connect(&url, RedisOptions::default()).await.unwrap();
    let touching = beaker_core::SessionManager::builder(config).store(store).build().unwrap();
    // The first touch also loads the touch script (`NOSCRIPT`, `SCRIPT LOAD`): not counted.
    request_commands(&mut monitor, &touching, &cookie, |s| async move {
        s.get::<u64>("n").await.unwrap();
    })
    .await;
    let (calls, _) = request_commands(&mut monitor, &touching, &cookie, |s| async move {
        assert_eq!(s.get::<u64>("n").await.unwrap(), Some(3));
    })
    .await;
    assert_eq!(calls, ["hgetall", "evalsha"], "a read that touches: two round trips");
}
