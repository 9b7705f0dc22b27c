//! `compat = beaker` against the real Python Beaker 1.14 (from PyPI, in the venv that
//! `cargo xtask test` makes under `target/`): a session written by one side is read and
//! updated by the other, both ways, on the `ext:redis` layout; the idle timeout is
//! honoured by both sides. `beaker_interop/database.rs` does the same on `ext:database`,
//! `beaker_interop/cookie.rs` for cookie-only sessions.
//!
//! Needs `BEAKER_TEST_PYTHON` (the venv's interpreter) and `BEAKER_TEST_REDIS_URL`; without
//! them the tests are skipped loudly, and fail under `CI=true`.
#![cfg(feature = "redis")]

use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use beaker_rs::store::{SessionStore as _, StoreKey};
use beaker_rs::{SessionConfig, SessionManager};
use serde_json::Value;

#[cfg(all(feature = "sqlite", feature = "postgres"))]
#[path = "beaker_interop/database.rs"]
mod database;

#[path = "beaker_interop/cookie.rs"]
mod cookie;

const SECRET: &str = "interop secret shared by both apps";
const COOKIE: &str = "beaker.session.id";

/// What the tests need from the environment; `None` (after saying so) when they must skip.
fn environment(test: &str) -> Option<(String, String)> {
    let python = std::env::var("BEAKER_TEST_PYTHON").ok().filter(|v| !v.is_empty());
    let redis = std::env::var("BEAKER_TEST_REDIS_URL").ok().filter(|v| !v.is_empty());
    match (python, redis) {
        (Some(p), Some(r)) => Some((p, r)),
        (p, _) => {
            let missing = if p.is_none() { "BEAKER_TEST_PYTHON" } else { "BEAKER_TEST_REDIS_URL" };
            if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") {
                panic!("{test}: {missing} is not set (cargo xtask test sets it up)");
            }
            eprintln!("SKIPPED {test}: {missing} is not set; run `cargo xtask test` to make the Python Beaker venv");
            None
        }
    }
}

/// The Python Beaker app of `tests/beaker_interop/app.py`, stopped on drop.
struct PythonApp {
    child: Child,
    base: String,
    http: reqwest::Client,
}

impl PythonApp {
    fn start(python: &str, redis: &str, timeout: Option<u64>, serializer: &str) -> Self {
        Self::start_with(python, redis, timeout, serializer, &[])
    }

    /// [`start`](Self::start) with more environment variables for `app.py`.
    fn start_with(python: &str, redis: &str, timeout: Option<u64>, serializer: &str, env: &[(&str, &str)]) -> Self {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/beaker_interop/app.py");
        let mut cmd = Command::new(python);
        cmd.envs(env.iter().copied());
        cmd.arg(script)
            .env("BEAKER_TEST_REDIS_URL", redis)
            .env("BEAKER_TEST_SECRET", SECRET)
            .env("BEAKER_TEST_SERIALIZER", serializer)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        if let Some(t) = timeout {
            cmd.env("BEAKER_TEST_TIMEOUT", t.to_string());
        }
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("cannot start {python} {script}: {e}"));
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("piped")).read_line(&mut line).expect("the app prints its port");
        let port: u16 = line.trim().parse().unwrap_or_else(|_| panic!("the Python app did not start: {line:?}"));
        PythonApp { child, base: format!("http://127.0.0.1:{port}"), http: reqwest::Client::new() }
    }

    /// GETs `path` with the cookie value `cookie`; the session dict Python sees and the
    /// cookie value it sets, if any.
    async fn get(&self, path: &str, cookie: Option<&str>) -> (serde_json::Map<String, Value>, Option<String>) {
        let mut req = self.http.get(format!("{}{path}", self.base));
        if let Some(c) = cookie {
            req = req.header("Cookie", format!("{COOKIE}={c}"));
        }
        let resp = req.send().await.expect("the Python app answers");
        assert!(resp.status().is_success(), "{path}: {}", resp.status());
        let set =
            resp.headers().get_all("set-cookie").iter().find_map(|v| cookie_value(v.to_str().ok()?)).map(str::to_owned);
        (resp.json().await.expect("a JSON session dict"), set)
    }
}

impl Drop for PythonApp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The value of our cookie in a `Set-Cookie` header value.
fn cookie_value(set_cookie: &str) -> Option<&str> {
    let pair = set_cookie.trim().split(';').next()?;
    pair.strip_prefix(COOKIE)?.strip_prefix('=').filter(|v| !v.is_empty())
}

async fn manager(redis: &str, timeout: Option<u64>) -> SessionManager {
    manager_with(redis, timeout, "json").await
}

async fn manager_with(redis: &str, timeout: Option<u64>, serializer: &str) -> SessionManager {
    let mut options = vec![
        ("session.compat", "beaker".to_owned()),
        ("session.type", "ext:redis".to_owned()),
        ("session.url", redis.to_owned()),
        ("session.secret", SECRET.to_owned()),
        ("session.data_serializer", serializer.to_owned()),
    ];
    if let Some(t) = timeout {
        options.push(("session.timeout", t.to_string()));
    }
    beaker_rs::session_manager(SessionConfig::from_map(options).expect("valid options")).await.expect("manager")
}

/// Runs one Rust request with cookie value `cookie`; returns `f`'s result and the cookie
/// value the response sets, if any.
async fn rust_request<T, F: std::future::Future<Output = T>>(
    m: &SessionManager,
    cookie: Option<&str>,
    f: impl FnOnce(beaker_rs::Session) -> F,
) -> (T, Option<String>) {
    let header = cookie.map(|c| format!("{COOKIE}={c}"));
    let session = m.start(header.as_deref());
    let out = f(session.clone()).await;
    let set = m.finish(&session).await.expect("finish");
    let value = set.iter().find_map(|c| cookie_value(c.as_str()).map(str::to_owned));
    (out, value)
}

/// The id inside a Beaker signed cookie (after the 40 hex digits of the signature).
fn id_of(cookie: &str) -> String {
    cookie.trim_matches('"')[40..].to_owned()
}

/// Deletes the records of the cookies it tracks when dropped, so a failing test cleans up
/// too. Drop runs inside the test's runtime, which cannot be blocked on: the deletes run
/// on a thread with a runtime of its own.
struct Cleanup {
    redis: String,
    ids: Vec<String>,
}

impl Cleanup {
    fn new(redis: &str) -> Self {
        Cleanup { redis: redis.to_owned(), ids: Vec::new() }
    }

    /// Tracks the record of `cookie` and hands the cookie back.
    fn track(&mut self, cookie: Option<String>) -> String {
        let cookie = cookie.expect("a cookie");
        self.ids.push(id_of(&cookie));
        cookie
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let (redis, ids) = (std::mem::take(&mut self.redis), std::mem::take(&mut self.ids));
        let deleted = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
            rt.block_on(async {
                let store = beaker_rs::redis::BeakerRedisStore::connect(&redis, Default::default())
                    .await
                    .map_err(|e| e.to_string())?;
                for id in &ids {
                    store.delete(&StoreKey::from_stored(id).expect("an id")).await.map_err(|e| e.to_string())?;
                }
                Ok::<_, String>(())
            })
        })
        .join();
        match deleted {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("cleanup: could not delete the test's records: {e}"),
            Err(_) => eprintln!("cleanup: the delete thread panicked"),
        }
    }
}

#[tokio::test]
async fn python_writes_rust_reads_and_updates_python_reads_back() {
    let Some((python, redis)) = environment("python_writes_rust_reads_and_updates_python_reads_back") else {
        return;
    };
    let py = PythonApp::start(&python, &redis, None, "json");
    let mut records = Cleanup::new(&redis);
    let m = manager(&redis, None).await;

    let (seen, cookie) = py.get("/login?user=alice", None).await;
    let cookie = records.track(cookie);
    assert_eq!(seen["user"], "alice");
    assert_eq!(cookie.len(), 40 + 32, "{cookie}");

    let ((user, id, keys), rust_cookie) = rust_request(&m, Some(&cookie), |s| async move {
        let user: Option<String> = s.get("user").await.unwrap();
        s.insert("cart", &[1, 2, 3]).await.unwrap();
        s.insert("note", "from rust é").await.unwrap();
        (user, s.id().await.unwrap(), s.keys().await.unwrap())
    })
    .await;
    assert_eq!(user.as_deref(), Some("alice"), "Rust reads Python's session");
    assert!(keys.iter().all(|k| !k.starts_with('_')), "Beaker's own keys are hidden from keys(): {keys:?}");
    assert_eq!(id.expect("an id").expose(), id_of(&cookie), "same session id on both sides");
    if let Some(c) = &rust_cookie {
        assert_eq!(c, &cookie, "a refreshed cookie is Beaker's signed cookie of the same id");
    }

    let (seen, _) = py.get("/get", Some(&cookie)).await;
    assert_eq!(seen["user"], "alice");
    assert_eq!(seen["cart"], serde_json::json!([1, 2, 3]));
    assert_eq!(seen["note"], "from rust é");
    assert!(seen["_creation_time"].as_f64().is_some() && seen["_accessed_time"].as_f64().is_some());
    assert_eq!(seen["_path"], "/", "Beaker's _path survives a Rust write");
    assert!(seen.contains_key("_domain"), "Beaker's _domain survives a Rust write");
}

#[tokio::test]
async fn rust_writes_python_reads_and_updates_rust_reads_back() {
    let Some((python, redis)) = environment("rust_writes_python_reads_and_updates_rust_reads_back") else {
        return;
    };
    let py = PythonApp::start(&python, &redis, None, "json");
    let mut records = Cleanup::new(&redis);
    let m = manager(&redis, None).await;

    let (_, cookie) = rust_request(&m, None, |s| async move { s.insert("user", "bob").await.unwrap() }).await;
    let cookie = records.track(cookie);

    let (seen, _) = py.get("/get", Some(&cookie)).await;
    assert_eq!(seen["user"], "bob", "Python reads Rust's session: {seen:?}");
    let (seen, _) = py.get("/set?k=theme&v=%22dark%22", Some(&cookie)).await;
    assert_eq!((&seen["user"], &seen["theme"]), (&Value::from("bob"), &Value::from("dark")));

    let ((user, theme), _) = rust_request(&m, Some(&cookie), |s| async move {
        (s.get::<String>("user").await.unwrap(), s.get::<String>("theme").await.unwrap())
    })
    .await;
    assert_eq!((user.as_deref(), theme.as_deref()), (Some("bob"), Some("dark")), "Rust reads Python's update");

    // A tampered signature is refused by both sides.
    let mut forged = cookie.clone().into_bytes();
    forged[0] = if forged[0] == b'0' { b'1' } else { b'0' };
    let forged = String::from_utf8(forged).unwrap();
    let (seen, _) = py.get("/get", Some(&forged)).await;
    assert!(seen.get("user").is_none(), "Python accepted a forged cookie");
    let (user, _) = rust_request(&m, Some(&forged), |s| async move { s.get::<String>("user").await.unwrap() }).await;
    assert_eq!(user, None, "Rust accepted a forged cookie");
}

/// The idle timeout of `the_idle_timeout_is_honoured_by_both_sides`, in seconds. Each
/// step between accesses stays 2 s under it, and each idle wait 2 s over it, so a slow
/// request on a loaded machine cannot flip an outcome.
const IDLE_TIMEOUT: u64 = 6;
/// The pause between accesses that must keep a session alive (two of them idle a
/// session for 8 s, past the timeout).
const ACTIVE_STEP: Duration = Duration::from_secs(4);
/// The pause after which a session must have timed out.
const IDLE_WAIT: Duration = Duration::from_secs(8);

#[tokio::test]
async fn the_idle_timeout_is_honoured_by_both_sides() {
    let Some((python, redis)) = environment("the_idle_timeout_is_honoured_by_both_sides") else {
        return;
    };
    let py = PythonApp::start(&python, &redis, Some(IDLE_TIMEOUT), "json");
    let mut records = Cleanup::new(&redis);
    let m = manager(&redis, Some(IDLE_TIMEOUT)).await;

    let (_, from_python) = py.get("/login?user=carol", None).await;
    let from_python = records.track(from_python);
    let (_, from_rust) = rust_request(&m, None, |s| async move { s.insert("user", "dave").await.unwrap() }).await;
    let from_rust = records.track(from_rust);
    let (_, idle_python) = py.get("/login?user=erin", None).await;
    let idle_python = records.track(idle_python);

    // Activity on one side keeps the session alive for the other.
    tokio::time::sleep(ACTIVE_STEP).await;
    let (user, _) =
        rust_request(&m, Some(&from_python), |s| async move { s.get::<String>("user").await.unwrap() }).await;
    assert_eq!(user.as_deref(), Some("carol"));
    let (seen, _) = py.get("/get", Some(&from_rust)).await;
    assert_eq!(seen["user"], "dave");

    tokio::time::sleep(ACTIVE_STEP).await;
    let (seen, _) = py.get("/get", Some(&from_python)).await;
    assert_eq!(seen["user"], "carol", "Rust's read reset Beaker's idle timer");
    let (user, _) = rust_request(&m, Some(&from_rust), |s| async move { s.get::<String>("user").await.unwrap() }).await;
    assert_eq!(user.as_deref(), Some("dave"), "Python's read reset the idle timer Rust checks");

    // Idle for longer than the timeout: gone on both sides.
    let (user, _) =
        rust_request(&m, Some(&idle_python), |s| async move { s.get::<String>("user").await.unwrap() }).await;
    assert_eq!(user, None, "Rust honours the idle timeout of a session Python wrote");
    tokio::time::sleep(IDLE_WAIT).await;
    let (seen, _) = py.get("/get", Some(&from_rust)).await;
    assert!(seen.get("user").is_none(), "Python honours the idle timeout of a session Rust touched last");
}

#[tokio::test]
async fn a_pickled_record_reads_as_no_session_in_json_mode() {
    let Some((python, redis)) = environment("a_pickled_record_reads_as_no_session_in_json_mode") else {
        return;
    };
    let py = PythonApp::start(&python, &redis, None, "pickle");
    let mut records = Cleanup::new(&redis);
    let m = manager(&redis, None).await;
    let (_, cookie) = py.get("/login?user=mallory", None).await;
    let cookie = records.track(cookie);
    let ((user, new), _) = rust_request(&m, Some(&cookie), |s| async move {
        (s.get::<String>("user").await.unwrap(), s.is_new().await.unwrap())
    })
    .await;
    assert_eq!(user, None);
    assert!(new, "a record Rust cannot read starts a fresh session");
}

#[tokio::test]
async fn pickled_sessions_are_shared_both_ways() {
    let Some((python, redis)) = environment("pickled_sessions_are_shared_both_ways") else {
        return;
    };
    let py = PythonApp::start(&python, &redis, None, "pickle");
    let mut records = Cleanup::new(&redis);
    let m = manager_with(&redis, None, "pickle").await;

    // Python -> Rust -> Python, with a tuple holding bytes and None.
    let (_, cookie) = py.get("/login?user=alice", None).await;
    let cookie = records.track(cookie);
    let (seen, _) = py.get("/types", Some(&cookie)).await;
    assert_eq!(seen["_types_of"]["types"], "tuple");
    let ((user, types), _) = rust_request(&m, Some(&cookie), |s| async move {
        let user = s.get::<String>("user").await.unwrap();
        let types = s.get::<(i64, Vec<u8>, Option<i64>)>("types").await.unwrap();
        s.insert("cart", &[1, 2]).await.unwrap();
        (user, types)
    })
    .await;
    assert_eq!(user.as_deref(), Some("alice"), "Rust reads Python's pickled session");
    let (one, raw, none) = types.expect("the tuple");
    assert_eq!((one, none), (1, None));
    assert_eq!(raw, [0, 255], "bytes arrive as bytes");
    let (seen, _) = py.get("/get", Some(&cookie)).await;
    assert_eq!(seen["cart"], serde_json::json!([1, 2]));
    assert_eq!(seen["user"], "alice");
    assert_eq!(seen["_types_of"]["types"], "list", "Rust writes tuples back as lists");
    assert_eq!(seen["types"], serde_json::json!([1, [0, 255], null]), "bytes stay bytes: {seen:?}");

    // Rust -> Python -> Rust.
    let (_, from_rust) = rust_request(&m, None, |s| async move { s.insert("user", "bob").await.unwrap() }).await;
    let from_rust = records.track(from_rust);
    let (seen, _) = py.get("/set?k=theme&v=%22dark%22", Some(&from_rust)).await;
    assert_eq!((&seen["user"], &seen["theme"]), (&Value::from("bob"), &Value::from("dark")));
    assert_eq!(seen["_types_of"]["_creation_time"], "float");
    let (theme, _) =
        rust_request(&m, Some(&from_rust), |s| async move { s.get::<String>("theme").await.unwrap() }).await;
    assert_eq!(theme.as_deref(), Some("dark"));
}
