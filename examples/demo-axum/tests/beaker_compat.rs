//! The demo in Beaker compatibility mode beside a running Python Beaker 1.14 app on the
//! same Redis and secret (`BEAKER_SESSION_COMPAT=beaker`, `BEAKER_SESSION_DATA_SERIALIZER=json`):
//! the demo sees the Python app's logged-in user at `GET /whoami`, and a value it writes
//! with `PUT /kv/x` is read by the Python app.
//!
//! Needs `BEAKER_TEST_PYTHON` (the venv `cargo xtask test` makes) and
//! `BEAKER_TEST_REDIS_URL`; without them the test skips loudly, and fails under `CI=true`.

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use beaker_testkit::adapter::DemoServer;
use beaker_testkit::skip_or_fail;

const SECRET: &str = "demo and python share this secret";
const COOKIE: &str = "beaker.session.id";

/// The Python Beaker app of `crates/beaker-rs/tests/beaker_interop/app.py`; killed on drop.
struct PythonApp(Child, String);

impl PythonApp {
    fn start(python: &str, redis: &str) -> PythonApp {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../crates/beaker-rs/tests/beaker_interop/app.py");
        let mut child = Command::new(python)
            .arg(&script)
            .env("BEAKER_TEST_REDIS_URL", redis)
            .env("BEAKER_TEST_SECRET", SECRET)
            .env("BEAKER_TEST_SERIALIZER", "json")
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {python} {}: {e}", script.display()));
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("piped")).read_line(&mut line).expect("a port line");
        let port: u16 = line.trim().parse().unwrap_or_else(|_| panic!("the Python app did not start: {line:?}"));
        PythonApp(child, format!("http://127.0.0.1:{port}"))
    }
}

impl Drop for PythonApp {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn cookie_value(resp: &reqwest::Response) -> Option<String> {
    resp.headers().get_all("set-cookie").iter().find_map(|v| {
        let pair = v.to_str().ok()?.trim().split(';').next()?;
        pair.strip_prefix(COOKIE)?.strip_prefix('=').filter(|v| !v.is_empty()).map(str::to_owned)
    })
}

#[tokio::test]
async fn the_demo_and_a_python_beaker_app_share_the_login() {
    let suite = "demo-axum beaker compat";
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let (Some(python), Some(redis)) = (var("BEAKER_TEST_PYTHON"), var("BEAKER_TEST_REDIS_URL")) else {
        skip_or_fail(suite, "BEAKER_TEST_PYTHON or BEAKER_TEST_REDIS_URL is not set (cargo xtask test sets both)");
        return;
    };
    let py = PythonApp::start(&python, &redis);
    let demo = DemoServer::spawn(
        Path::new(env!("CARGO_BIN_EXE_demo-axum")),
        &[
            ("BEAKER_SESSION_COMPAT", "beaker"),
            ("BEAKER_SESSION_DATA_SERIALIZER", "json"),
            ("BEAKER_SESSION_SECRET", SECRET),
            ("BEAKER_SESSION_URL", &redis),
        ],
    );
    let http = reqwest::Client::new();

    let login = http.get(format!("{}/login?user=alice", py.1)).send().await.expect("python answers");
    let cookie = cookie_value(&login).expect("the Python app sets its cookie");
    let header = format!("{COOKIE}={cookie}");

    let who = http.get(format!("{}/whoami", demo.base_url())).header("Cookie", &header).send().await.unwrap();
    assert_eq!(who.text().await.unwrap(), "alice", "the demo sees the Python app's login");

    let put = http.put(format!("{}/kv/x", demo.base_url())).header("Cookie", &header).body("from the demo");
    assert_eq!(put.send().await.unwrap().text().await.unwrap(), "ok");
    let seen: serde_json::Value =
        http.get(format!("{}/get", py.1)).header("Cookie", &header).send().await.unwrap().json().await.unwrap();
    assert_eq!(seen["x"], "from the demo", "the Python app reads what the demo wrote: {seen}");
    assert_eq!(seen["user"], "alice");

    // Logging out on the demo deletes the shared record: the Python app sees nobody.
    let bye = http.post(format!("{}/logout", demo.base_url())).header("Cookie", &header).send().await.unwrap();
    assert_eq!(bye.text().await.unwrap(), "bye");
    let seen: serde_json::Value =
        http.get(format!("{}/get", py.1)).header("Cookie", &header).send().await.unwrap().json().await.unwrap();
    assert!(seen.get("user").is_none(), "logged out on both sides: {seen}");
}
