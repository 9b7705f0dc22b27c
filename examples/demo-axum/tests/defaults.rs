//! The safe defaults seen from outside, through the demo contract:
//! - a flood of twice `max_sessions` one-shot sessions (cookieless `GET /counter`) on the
//!   memory store leaves a logged-in user logged in, and the store within its capacity;
//! - the demo's SQLite file loses its expired rows with no request doing anything;
//! - two demos of different frameworks (axum and actix) sharing a Redis cache region run
//!   one creation in total for 20 concurrent misses of one key, configured only through
//!   `BEAKER_CACHE_DEMO_URL` (region `demo` need not be listed in `BEAKER_CACHE_REGIONS`).
//!
//! `BEAKER_TEST_REDIS_URL` chooses the Redis server (default `redis://127.0.0.1:6379`); an
//! unreachable one, or a `demo-actix` binary that was not built next to this one, skips
//! loudly, unless `CI=true`, where it fails.

use std::path::{Path, PathBuf};

use beaker_testkit::adapter::DemoServer;
use beaker_testkit::skip_or_fail;

fn binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_demo-axum"))
}

fn client() -> reqwest::Client {
    reqwest::Client::builder().build().unwrap()
}

/// The `name=value` of the response's session cookie, if it set one.
fn session_cookie(response: &reqwest::Response) -> Option<String> {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("beaker.session.id=") && !v.contains("Expires=Thu, 01 Jan 1970"))
        .map(|v| v.split(';').next().unwrap().to_owned())
}

async fn get(c: reqwest::Client, url: String, cookie: Option<&str>) -> (reqwest::StatusCode, Option<String>, String) {
    let mut req = c.get(url);
    if let Some(cookie) = cookie {
        req = req.header("cookie", cookie);
    }
    let response = req.send().await.unwrap();
    let (status, set) = (response.status(), session_cookie(&response));
    (status, set, response.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_one_shot_sessions_leaves_a_returning_user_logged_in() {
    const MAX_SESSIONS: usize = 500;
    let max = MAX_SESSIONS.to_string();
    let server =
        DemoServer::spawn(binary(), &[("BEAKER_SESSION_URL", "memory:"), ("BEAKER_SESSION_MAX_SESSIONS", &max)]);
    let base = server.base_url().to_owned();
    let c = client();
    let login = c.post(format!("{base}/login")).form(&[("user", "ada")]).send().await.unwrap();
    let user = session_cookie(&login).expect("login sets a cookie");
    for _ in 0..4 {
        assert_eq!(get(c.clone(), format!("{base}/whoami"), Some(&user)).await.2, "ada");
    }
    // Twice the capacity in one-shot sessions, 16 at a time.
    let mut flood = Vec::new();
    for _ in 0..(2 * MAX_SESSIONS / 16) {
        let burst: Vec<_> = (0..16).map(|_| get(c.clone(), format!("{base}/counter"), None)).collect();
        for (status, cookie, body) in futures_join(burst).await {
            assert_eq!((status.as_u16(), body.as_str()), (200, "1"));
            flood.push(cookie.expect("a new session sets a cookie"));
        }
    }
    assert_eq!(get(c.clone(), format!("{base}/whoami"), Some(&user)).await.2, "ada", "the flood logged the user out");
    // Within capacity: of the flood's sessions, at most MAX_SESSIONS (minus the user's) are alive.
    let mut alive = 0;
    for cookie in &flood {
        alive += usize::from(get(c.clone(), format!("{base}/read"), Some(cookie)).await.2 == "1");
    }
    assert!(alive < MAX_SESSIONS, "{alive} of {} flood sessions alive in a store of {MAX_SESSIONS}", flood.len());
}

async fn futures_join<F: std::future::Future + Send + 'static>(futures: Vec<F>) -> Vec<F::Output>
where
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futures.into_iter().map(tokio::spawn).collect();
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}

fn sibling(name: &str) -> PathBuf {
    binary().with_file_name(format!("{name}{}", std::env::consts::EXE_SUFFIX))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_demos_of_different_frameworks_sharing_a_redis_region_create_once() {
    let actix = sibling("demo-actix");
    if !actix.exists() {
        return skip_or_fail("demo-actix", &format!("{} is not built (cargo build -p demo-actix)", actix.display()));
    }
    let url = std::env::var("BEAKER_TEST_REDIS_URL")
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "redis://127.0.0.1:6379".into());
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    let prefix = format!("beaker-test:demo-dogpile:{}:{nanos}:", std::process::id());
    let env = [
        ("BEAKER_SESSION_URL", "memory:"),
        ("BEAKER_CACHE_DEMO_URL", url.as_str()),
        ("BEAKER_CACHE_DEMO_KEY_PREFIX", prefix.as_str()),
        ("BEAKER_DEMO_SLOW_MS", "400"),
    ];
    let servers = match (DemoServer::try_spawn(binary(), &env), DemoServer::try_spawn(&actix, &env)) {
        (Ok(a), Ok(b)) => [a, b],
        (Err(e), _) | (_, Err(e)) => return skip_or_fail("redis", &format!("a demo could not open {url}: {e}")),
    };
    let bases: Vec<String> = servers.iter().map(|s| s.base_url().to_owned()).collect();
    let c = client();
    for trial in 0..3 {
        let key = format!("k{trial}");
        let misses: Vec<_> =
            (0..20).map(|i| get(c.clone(), format!("{}/cached?key={key}", bases[i % 2]), None)).collect();
        let bodies: Vec<String> = futures_join(misses).await.into_iter().map(|(_, _, body)| body).collect();
        assert!(bodies.iter().all(|b| *b == bodies[0]), "trial {trial}: different values {bodies:?}");
    }
    let mut creations = 0;
    for base in &bases {
        let stats = get(c.clone(), format!("{base}/cached/stats"), None).await.2;
        let n: u64 = stats.split_whitespace().find_map(|kv| kv.strip_prefix("creations=")).unwrap().parse().unwrap();
        creations += n;
    }
    assert_eq!(creations, 3, "3 keys, 20 concurrent misses each over two processes: one creation per key");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_sqlite_file_does_not_keep_a_row_per_anonymous_write() {
    // The demo's default store (a SQLite file in its directory), with short lifetimes: the
    // facade's sweeper must empty the table with no request doing anything.
    let server =
        DemoServer::spawn(binary(), &[("BEAKER_SESSION_TIMEOUT", "1"), ("BEAKER_SESSION_CLEANUP_INTERVAL", "0.5")]);
    let base = server.base_url().to_owned();
    let c = client();
    for _ in 0..30 {
        assert_eq!(get(c.clone(), format!("{base}/counter"), None).await.2, "1");
    }
    let url = format!("sqlite://{}?mode=ro", server.dir().join("beaker-demo.sqlite3").display());
    let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
    let rows = || async {
        sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM beaker_sessions").fetch_one(&pool).await.unwrap()
    };
    assert!(rows().await > 0, "the anonymous writes were stored");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    while rows().await > 0 && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    assert_eq!(rows().await, 0, "expired rows stayed in the demo's SQLite file");
}
