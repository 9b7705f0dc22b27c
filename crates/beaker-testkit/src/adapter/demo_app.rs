//! The people's page (`/app`, its `POST /app/{action}` forms) and `GET /metrics` of a demo,
//! black-box: every action redirects back, flash messages show once, the page shows the
//! live session, several parallel callers of the slow computation see one creator, and the
//! Prometheus counters move by exactly what the requests did.

use std::path::Path;

use reqwest::header::{CONTENT_TYPE, COOKIE, LOCATION, SET_COOKIE};
use reqwest::redirect::Policy;
use reqwest::Client;

use super::DemoServer;

/// A browser-like client: a cookie jar, redirects not followed (so that 303s are seen).
fn browser() -> Client {
    Client::builder()
        .no_proxy()
        .cookie_store(true)
        .redirect(Policy::none())
        .timeout(std::time::Duration::from_secs(60))
        .build()
        .expect("a plain HTTP client builds")
}

struct Page {
    status: u16,
    location: Option<String>,
    set_cookie: bool,
    content_type: String,
    body: String,
}

async fn send(req: reqwest::RequestBuilder, what: &str) -> Page {
    let res = req.send().await.unwrap_or_else(|e| panic!("{what}: request failed: {e}"));
    let header =
        |name| res.headers().get(name).map(|v: &reqwest::header::HeaderValue| v.to_str().unwrap_or("").to_owned());
    let (status, location, content_type) = (res.status().as_u16(), header(LOCATION), header(CONTENT_TYPE));
    let set_cookie = res.headers().contains_key(SET_COOKIE);
    let body = res.text().await.unwrap_or_else(|e| panic!("{what}: reading the body failed: {e}"));
    Page { status, location, set_cookie, content_type: content_type.unwrap_or_default(), body }
}

async fn get(c: &Client, base: &str, path: &str) -> Page {
    send(c.get(format!("{base}{path}")), &format!("GET {path}")).await
}

/// Posts a form to `/app/{action}` and checks the 303 back to `/app`.
async fn act(c: &Client, base: &str, action: &str, form: &[(&str, &str)]) -> Page {
    let what = format!("POST /app/{action}");
    let page = send(c.post(format!("{base}/app/{action}")).form(form), &what).await;
    assert_eq!(page.status, 303, "{what} must redirect (POST/redirect/GET): {}", page.body);
    assert_eq!(page.location.as_deref(), Some("/app"), "{what} must redirect to /app");
    page
}

/// The value of one counter line (`name{labels} value`) of a Prometheus text page; 0 when
/// the counter is absent (not registered yet).
pub fn prometheus_value(text: &str, series: &str) -> u64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.strip_prefix(series).and_then(|rest| rest.strip_prefix(' ')))
        .map_or(0, |v| v.trim().parse::<f64>().unwrap_or_else(|_| panic!("{series}: not a number: {v}")) as u64)
}

struct Metrics(String);

impl Metrics {
    async fn read(c: &Client, base: &str) -> Metrics {
        let page = get(c, base, "/metrics").await;
        assert_eq!(page.status, 200, "GET /metrics: {}", page.body);
        assert!(
            page.content_type.starts_with("text/plain; version=0.0.4"),
            "GET /metrics content type: {}",
            page.content_type
        );
        Metrics(page.body)
    }

    fn session(&self, name: &str) -> u64 {
        prometheus_value(&self.0, &format!("beaker_{name}_total{{store=\"memory\"}}"))
    }

    fn cache(&self, name: &str) -> u64 {
        prometheus_value(&self.0, &format!("beaker_cache_{name}_total{{region=\"demo\",store=\"memory\"}}"))
    }
}

/// Counts the flash message `text` on a page.
fn shown(page: &Page, text: &str) -> usize {
    page.body.matches(text).count()
}

/// The whole `/app` flow and the counters it moves, on the memory store.
pub async fn app_page_and_metrics(binary: &Path) {
    let env = [("BEAKER_SESSION_TYPE", "memory"), ("BEAKER_SESSION_TIMEOUT", "1800"), ("BEAKER_DEMO_SLOW_MS", "1000")];
    let server = DemoServer::spawn(binary, &env);
    let base = server.base_url().trim_end_matches('/').to_owned();
    let base = base.as_str();
    let c = browser();
    let before = Metrics::read(&c, base).await;

    let page = get(&c, base, "/app").await;
    assert_eq!(page.status, 200);
    assert!(page.content_type.starts_with("text/html"), "{}", page.content_type);
    assert!(
        page.body.contains("not logged in") && page.body.contains("Counter: <span id=\"counter\">none"),
        "{}",
        page.body
    );
    assert!(!page.set_cookie, "GET /app of a session with nothing in it must not set a cookie");
    assert!(page.body.contains("<meta name=\"viewport\""), "the page is built for phones too");

    let login = act(&c, base, "login", &[("user", "alice")]).await;
    assert!(login.set_cookie, "logging in saves the session");
    let page = get(&c, base, "/app").await;
    assert!(page.body.contains("logged in as <b id=\"who\">alice</b>"), "{}", page.body);
    assert_eq!(shown(&page, "Logged in as alice"), 1, "the flash shows once: {}", page.body);
    for id in ["id=\"created\"", "id=\"accessed\"", "id=\"expires-in\" data-epoch="] {
        assert!(page.body.contains(id), "the page shows {id}: {}", page.body);
    }
    assert!(page.body.contains(" UTC"), "times are shown as dates");
    let page = get(&c, base, "/app").await;
    assert_eq!(shown(&page, "Logged in as alice"), 0, "a flash shows only once");

    act(&c, base, "increment", &[]).await;
    act(&c, base, "increment", &[]).await;
    let page = get(&c, base, "/app").await;
    assert!(page.body.contains("Counter: <span id=\"counter\">2</span>"), "{}", page.body);
    // The page's session is the contract routes' session.
    assert_eq!(get(&c, base, "/read").await.body, "2");

    act(&c, base, "set", &[("key", "colour"), ("value", "<b>teal</b>")]).await;
    let page = get(&c, base, "/app").await;
    assert!(
        page.body.contains("<code>colour</code>") && page.body.contains("&lt;b&gt;teal&lt;/b&gt;"),
        "{}",
        page.body
    );
    assert!(!page.body.contains("<b>teal"), "values are escaped");
    act(&c, base, "remove", &[("key", "colour")]).await;
    let page = get(&c, base, "/app").await;
    assert!(!page.body.contains("<code>colour</code>") && page.body.contains("Removed colour."), "{}", page.body);
    act(&c, base, "flash", &[("msg", "hello there")]).await;
    assert_eq!(shown(&get(&c, base, "/app").await, "hello there"), 1);

    let unknown = send(c.post(format!("{base}/app/frobnicate")), "POST /app/frobnicate").await;
    assert_eq!(unknown.status, 404, "an unknown action: {}", unknown.body);

    // Five callers at once while the computation runs (1 s): one creator.
    let mid = Metrics::read(&c, base).await;
    let runs = (0..5).map(|_| {
        let c = browser();
        let url = format!("{base}/cached?key=app-parallel");
        async move { send(c.get(url), "GET /cached?key=app-parallel").await.body }
    });
    let answers = futures_util::future::join_all(runs).await;
    assert!(answers.iter().all(|a| *a == answers[0]), "one creator, one generation: {answers:?}");
    act(&c, base, "cached", &[("key", "app-parallel")]).await;
    let page = get(&c, base, "/app").await;
    let generation = answers[0].rsplit(':').next().unwrap_or("?");
    assert!(page.body.contains(&format!("Cache key app-parallel: generation {generation},")), "{}", page.body);
    assert!(page.body.contains("id=\"stat-creations\""), "the cache panel: {}", page.body);

    // A forged cookie is rejected (and counted).
    let forged =
        send(browser().get(format!("{base}/whoami")).header(COOKIE, "beaker.session.id=forged.signature"), "forged")
            .await;
    assert_eq!(forged.body, "anonymous", "a forged cookie reads as no session");

    act(&c, base, "logout", &[]).await;
    let page = get(&c, base, "/app").await;
    assert!(page.body.contains("not logged in") && page.body.contains("Logged out"), "{}", page.body);

    let after = Metrics::read(&c, base).await;
    let delta = |name: &str| after.session(name) - before.session(name);
    // alice's session, and the fresh one that carries the "Logged out" flash.
    assert_eq!(delta("sessions_created"), 2, "sessions created:\n{}", after.0);
    assert_eq!(delta("sessions_ended"), 1, "sessions ended:\n{}", after.0);
    assert!(delta("session_cookies_rejected") >= 1, "rejected cookies:\n{}", after.0);
    assert!(delta("sessions_loaded") >= 10, "every page after the login loaded the session:\n{}", after.0);
    assert!(delta("sessions_saved") >= 8, "every action saved the session:\n{}", after.0);
    let cache = |name: &str| after.cache(name) - mid.cache(name);
    assert_eq!(cache("creations"), 1, "one creator for six callers:\n{}", after.0);
    assert_eq!(cache("misses"), 1, "{}", after.0);
    assert_eq!(cache("hits"), 5, "{}", after.0);
    assert!(cache("lock_waits") >= 1, "callers waited for the creator:\n{}", after.0);
    assert_eq!(before.cache("creations"), 0, "nothing was cached before");
}
