//! `cargo xtask e2e [--debug]`: a real browser through `GET /app` of `demo-axum`.
//!
//! Starts the demo (memory store) and `chromedriver` on free loopback ports, and drives
//! headless Chromium over WebDriver through the forms of `/app` (each posts and redirects
//! back): log in, increment, reload and see the state kept and each flash message shown
//! once, set a key, watch the expiry count down, run the slow computation from five
//! parallel requests and see one creator, check the session cookie's attributes as the
//! browser stored them, log out and see the session gone; then the same forms in a browser
//! with JavaScript off. Screenshots land in `target/e2e/`: `app-desktop.png` and
//! `app-phone.png` (390 x 844, where the page must not scroll sideways).
//!
//! Needs Debian's `chromium` and `chromium-driver` (`/usr/bin/chromium`,
//! `/usr/bin/chromedriver`; `.ci/run` installs them). `--debug` reuses the debug build of
//! `cargo xtask test` instead of building a release binary.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{json, Value};

use crate::demo::{self, Demo, Profile, Scratch};
use crate::http::Conn;
use crate::Result;

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// The W3C key under which an element reference arrives.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// `cargo xtask e2e` arguments.
#[derive(clap::Args)]
pub(crate) struct Args {
    /// Reuse the debug build of `cargo xtask test` instead of building a release binary.
    #[arg(long)]
    debug: bool,
}

pub(crate) fn run(args: &Args) -> Result {
    for tool in [CHROMIUM, CHROMEDRIVER] {
        if !Path::new(tool).exists() {
            return Err(format!("{tool} is missing: apt-get install -y chromium chromium-driver (Debian's packages)"));
        }
    }
    let profile = if args.debug { Profile::Debug } else { Profile::Release };
    let binary = demo::build(profile)?;
    let scratch = Scratch::new("e2e")?;
    let env = [("BEAKER_SESSION_URL", "memory:"), ("BEAKER_SESSION_TIMEOUT", "1800"), ("BEAKER_DEMO_SLOW_MS", "800")];
    let server = Demo::spawn(&binary, &scratch.0, &env)?;
    let artifacts = crate::host::target_dir().join("e2e");
    std::fs::create_dir_all(&artifacts).map_err(|e| format!("{}: {e}", artifacts.display()))?;
    let driver = Driver::start(&scratch.0)?;
    let base = format!("http://{}", server.addr);
    let browser = driver.browser(&scratch.0.join("profile"), true)?;
    let outcome = scenario(&browser, &base, &artifacts);
    if outcome.is_err() {
        // A picture of the failure helps more than the error alone.
        let _ = browser.screenshot(&artifacts.join("failure.png"));
    }
    browser.quit();
    outcome.map_err(|e| format!("e2e: {e}\ndemo output:\n{}", server.output()))?;
    let browser = driver.browser(&scratch.0.join("profile-nojs"), false)?;
    let outcome = without_javascript(&browser, &base);
    if outcome.is_err() {
        let _ = browser.screenshot(&artifacts.join("failure-nojs.png"));
    }
    browser.quit();
    outcome.map_err(|e| format!("e2e without JavaScript: {e}\ndemo output:\n{}", server.output()))?;
    eprintln!("e2e: passed; screenshots in {}", artifacts.display());
    Ok(())
}

fn scenario(b: &Browser, base: &str, artifacts: &Path) -> Result {
    let app = format!("{base}/app");
    b.goto(&app)?;
    b.expect_text("#status", "not logged in")?;
    b.expect_text("#status", "Counter: none")?;

    // Every action is a form that posts and comes back to /app with a flash message.
    b.type_into("#user", "alice")?;
    b.click("#login")?;
    b.expect_text("#status", "logged in as alice")?;
    b.expect_text("#flashes", "Logged in as alice")?;
    b.expect_url(&app)?;
    for n in 1..=3 {
        b.click("#increment")?;
        b.expect_text("#status", &format!("Counter: {n}"))?;
        b.expect_text("#flashes", &format!("Counter is now {n}"))?;
    }
    // A reload shows the state again, without repeating the action or the flash.
    b.refresh()?;
    b.expect_text("#status", "Counter: 3")?;
    if b.script("return document.getElementById('flashes') !== null")? != json!(false) {
        return Err("a flash message showed twice".into());
    }
    b.type_into("#key", "colour")?;
    b.type_into("#value", "teal")?;
    b.click("#set")?;
    b.expect_text("#entries", "colour")?;
    b.expect_text("#entries", "teal")?;
    b.type_into("#msg", "hello from e2e")?;
    b.click("#flash")?;
    b.expect_text("#flashes", "hello from e2e")?;

    // The expiry counts down (the inline script), and the cache panel's parallel run
    // sees one creator.
    b.expect_text("#expires-in", "in ")?;
    let first = b.text("#expires-in")?;
    b.wait_for("the expiry countdown to tick", || b.text("#expires-in"), |t| t != first && t.starts_with("in "))?;
    b.type_into_replacing("#cache-key", "e2e")?;
    b.click("#parallel")?;
    b.expect_text("#parallel-out", "one creator served all five")?;
    b.click("#compute")?;
    b.expect_text("#flashes", "Cache key e2e: generation")?;
    b.wait_for("callers that waited for the creator", || b.text("#stat-waits"), |t| !t.is_empty() && t != "0")?;
    // Tall enough for the whole page, the cache panel included.
    b.cmd("POST", "/window/rect", Some(json!({"width": 1280, "height": 1500})))?;
    b.screenshot(&artifacts.join("app-desktop.png"))?;

    let cookie = b.session_cookie()?.ok_or("the browser holds no beaker.session.id cookie while logged in")?;
    let attr = |k: &str| cookie.get(k).cloned().unwrap_or(Value::Null);
    if attr("httpOnly") != json!(true) || attr("sameSite") != json!("Lax") || attr("path") != json!("/") {
        return Err(format!("the session cookie's attributes are not HttpOnly, SameSite=Lax, Path=/: {cookie}"));
    }
    if b.script("return document.cookie")?.as_str().is_some_and(|c| c.contains("beaker.session.id")) {
        return Err("scripts can read the HttpOnly session cookie".into());
    }

    // A phone: nothing wider than the screen.
    b.cmd("POST", "/window/rect", Some(json!({"width": 390, "height": 844})))?;
    b.refresh()?;
    b.expect_text("#status", "Counter: 3")?;
    if b.script("return document.documentElement.scrollWidth <= window.innerWidth")? != json!(true) {
        return Err("the page scrolls sideways on a phone-sized screen".into());
    }
    b.screenshot(&artifacts.join("app-phone.png"))?;
    b.cmd("POST", "/window/rect", Some(json!({"width": 1280, "height": 900})))?;

    b.click("#logout")?;
    b.expect_text("#status", "not logged in")?;
    b.expect_text("#flashes", "Logged out")?;
    let after = b.session_cookie()?.ok_or("the logout's flash message needs a (new) session")?;
    if after["value"] == cookie["value"] {
        return Err("the session cookie survived the logout".into());
    }
    b.expect_text("#status", "Counter: none")?;
    Ok(())
}

/// The same flow's forms with JavaScript off: the page needs no script to work.
fn without_javascript(b: &Browser, base: &str) -> Result {
    let app = format!("{base}/app");
    b.goto(&app)?;
    b.expect_text("#status", "not logged in")?;
    b.type_into("#user", "bob")?;
    b.click("#login")?;
    b.expect_text("#status", "logged in as bob")?;
    b.click("#increment")?;
    b.expect_text("#status", "Counter: 1")?;
    b.expect_text("#expires-in", "in ")?;
    // The script reveals the parallel-run button: hidden here, so no script ran.
    let parallel = b.element("#parallel")?;
    if b.cmd("GET", &format!("/element/{parallel}/displayed"), None)? != json!(false) {
        return Err("the page's script ran in the browser that has JavaScript off".into());
    }
    b.click("#compute")?;
    b.expect_text("#flashes", "generation")?;
    b.click("#logout")?;
    b.expect_text("#status", "not logged in")
}

/// A `chromedriver` process on a free loopback port.
struct Driver {
    child: Child,
    addr: SocketAddr,
}

impl Driver {
    fn start(dir: &Path) -> Result<Driver> {
        let port = crate::host::free_port()?;
        let log = std::fs::File::create(dir.join("chromedriver.log")).map_err(|e| e.to_string())?;
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log)
            .spawn()
            .map_err(|e| format!("cannot run {CHROMEDRIVER}: {e}"))?;
        let driver = Driver { child, addr: SocketAddr::from(([127, 0, 0, 1], port)) };
        if !crate::host::wait_for(&driver.addr.to_string(), Duration::from_secs(20)) {
            return Err(format!("chromedriver did not listen on {} within 20 s", driver.addr));
        }
        Ok(driver)
    }

    /// Opens a headless Chromium with a fresh profile, with or without JavaScript.
    fn browser(&self, profile: &Path, javascript: bool) -> Result<Browser> {
        let args = [
            "--headless".to_owned(),
            "--no-sandbox".to_owned(),
            "--disable-gpu".to_owned(),
            "--disable-quic".to_owned(),
            "--no-first-run".to_owned(),
            "--disable-background-networking".to_owned(),
            "--disable-component-update".to_owned(),
            "--disable-sync".to_owned(),
            "--disable-dev-shm-usage".to_owned(),
            "--window-size=1280,900".to_owned(),
            format!("--user-data-dir={}", profile.display()),
        ];
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": args,
                "prefs": {"profile.managed_default_content_settings.javascript": if javascript { 1 } else { 2 }},
            },
        }}});
        let mut b = Browser {
            conn: std::cell::RefCell::new(Conn::new(self.addr, Duration::from_secs(60))),
            session: String::new(),
        };
        let v = b.call("POST", "/session", Some(&caps))?;
        b.session = v["sessionId"].as_str().ok_or_else(|| format!("no sessionId in {v}"))?.to_owned();
        Ok(b)
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One WebDriver session.
struct Browser {
    conn: std::cell::RefCell<Conn>,
    session: String,
}

impl Browser {
    /// A WebDriver command; returns its `value`.
    fn call(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Value> {
        let body = body.map(Value::to_string).unwrap_or_default();
        let headers: &[(&str, &str)] =
            if method == "POST" { &[("Content-Type", "application/json; charset=utf-8")] } else { &[] };
        let r = self.conn.borrow_mut().send(method, path, headers, body.as_bytes())?;
        let v: Value = serde_json::from_slice(&r.body)
            .map_err(|e| format!("WebDriver {method} {path}: unparsable answer ({e}): {}", r.text()))?;
        if r.status != 200 {
            return Err(format!("WebDriver {method} {path}: {} {}", r.status, v["value"]));
        }
        Ok(v["value"].clone())
    }

    fn cmd(&self, method: &str, what: &str, body: Option<Value>) -> Result<Value> {
        self.call(method, &format!("/session/{}{what}", self.session), body.as_ref())
    }

    fn goto(&self, url: &str) -> Result {
        self.cmd("POST", "/url", Some(json!({ "url": url }))).map(drop)
    }

    fn refresh(&self) -> Result {
        self.cmd("POST", "/refresh", Some(json!({}))).map(drop)
    }

    fn element(&self, css: &str) -> Result<String> {
        let v = self.cmd("POST", "/element", Some(json!({"using": "css selector", "value": css})))?;
        v[ELEMENT].as_str().map(str::to_owned).ok_or_else(|| format!("no element {css}: {v}"))
    }

    fn click(&self, css: &str) -> Result {
        let e = self.element(css)?;
        self.cmd("POST", &format!("/element/{e}/click"), Some(json!({}))).map(drop)
    }

    fn type_into(&self, css: &str, text: &str) -> Result {
        let e = self.element(css)?;
        self.cmd("POST", &format!("/element/{e}/value"), Some(json!({ "text": text }))).map(drop)
    }

    fn script(&self, js: &str) -> Result<Value> {
        self.cmd("POST", "/execute/sync", Some(json!({"script": js, "args": []})))
    }

    /// Waits (up to 10 s: a click's navigation is asynchronous) until `css`'s text
    /// contains `want`.
    fn expect_text(&self, css: &str, want: &str) -> Result {
        self.wait_for(
            &format!("{css} to contain {want:?}"),
            || {
                let e = self.element(css)?;
                Ok(self.cmd("GET", &format!("/element/{e}/text"), None)?.as_str().unwrap_or_default().to_owned())
            },
            |text| text.contains(want),
        )
    }

    fn text(&self, css: &str) -> Result<String> {
        let e = self.element(css)?;
        Ok(self.cmd("GET", &format!("/element/{e}/text"), None)?.as_str().unwrap_or_default().to_owned())
    }

    /// Clears the input `css`, then types `text`.
    fn type_into_replacing(&self, css: &str, text: &str) -> Result {
        let e = self.element(css)?;
        self.cmd("POST", &format!("/element/{e}/clear"), Some(json!({})))?;
        self.cmd("POST", &format!("/element/{e}/value"), Some(json!({ "text": text }))).map(drop)
    }

    /// Waits until the browser shows `url` (after a redirect).
    fn expect_url(&self, url: &str) -> Result {
        self.wait_for(
            &format!("the address {url}"),
            || Ok(self.cmd("GET", "/url", None)?.as_str().unwrap_or_default().to_owned()),
            |u| u == url,
        )
    }

    fn wait_for(&self, what: &str, mut read: impl FnMut() -> Result<String>, ok: impl Fn(&str) -> bool) -> Result {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut last = String::new();
        while Instant::now() < deadline {
            // Elements of the previous page may vanish under us: retry until the deadline.
            if let Ok(text) = read() {
                if ok(&text) {
                    return Ok(());
                }
                last = text;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Err(format!("timed out waiting for {what}; last seen: {last:?}"))
    }

    /// The `beaker.session.id` cookie as the browser keeps it, if any.
    fn session_cookie(&self) -> Result<Option<Value>> {
        let all = self.cmd("GET", "/cookie", None)?;
        Ok(all.as_array().and_then(|a| a.iter().find(|c| c["name"] == "beaker.session.id")).cloned())
    }

    fn screenshot(&self, path: &Path) -> Result {
        let v = self.cmd("GET", "/screenshot", None)?;
        let png = base64::engine::general_purpose::STANDARD
            .decode(v.as_str().unwrap_or_default())
            .map_err(|e| format!("screenshot: bad base64: {e}"))?;
        std::fs::write(path, png).map_err(|e| format!("{}: {e}", path.display()))?;
        eprintln!("e2e: screenshot {}", path.display());
        Ok(())
    }

    fn quit(&self) {
        let _ = self.call("DELETE", &format!("/session/{}", self.session), None);
    }
}
