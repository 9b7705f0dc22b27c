//! The routes of the demo contract, one function each.

use std::borrow::Cow;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use beaker_core::cache::CacheManager;
use beaker_core::{Error, Session, SessionHandle, SessionManager, StoreError};
use serde_json::Value;

use crate::page;

/// A response, framework-independent: status, content type and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The HTTP status code.
    pub status: u16,
    /// The `Content-Type` header value.
    pub content_type: &'static str,
    /// The body (borrowed when it never changes, like the index page).
    pub body: Cow<'static, str>,
    /// Other headers the route sets itself (`GET /cached-page`'s caching headers).
    pub headers: &'static [(&'static str, &'static str)],
    /// The `Location` header, for redirects.
    pub location: Option<&'static str>,
}

const TEXT: &str = "text/plain; charset=utf-8";
/// The `Content-Type` of the HTML pages.
pub const HTML: &str = "text/html; charset=utf-8";

impl Reply {
    /// A 200 `text/plain` reply.
    pub fn text(body: impl Into<Cow<'static, str>>) -> Reply {
        Reply::status(200, body)
    }

    /// A `text/plain` reply with another status.
    pub fn status(status: u16, body: impl Into<Cow<'static, str>>) -> Reply {
        Reply { status, content_type: TEXT, body: body.into(), location: None, headers: &[] }
    }

    /// A 200 `text/html` reply.
    pub fn html(body: impl Into<Cow<'static, str>>) -> Reply {
        Reply { status: 200, content_type: HTML, body: body.into(), location: None, headers: &[] }
    }

    /// A `303 See Other` to `location` (the "redirect" of POST/redirect/GET).
    pub fn see_other(location: &'static str) -> Reply {
        Reply {
            status: 303,
            content_type: TEXT,
            body: format!("see {location}").into(),
            location: Some(location),
            headers: &[],
        }
    }

    /// The reply for a session error ending a handler: [`Error::status_code`] and
    /// [`Error::public_message`]. Adapters have their own mapping; this one serves
    /// frameworks whose handlers answer with a plain reply.
    pub fn from_error(e: &Error) -> Reply {
        Reply::status(e.status_code(), e.public_message())
    }
}

type Result<T> = std::result::Result<T, Error>;

/// The route logic and its process-wide state (the `/cached` generation counter).
/// Cheap to clone.
#[derive(Debug, Clone)]
pub struct Demo {
    pub(crate) inner: Arc<Inner>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) slow: Duration,
    generation: AtomicU64,
    pub(crate) caches: CacheManager,
    /// For the routes that list and end a user's sessions.
    pub(crate) sessions: SessionManager,
}

/// The caching headers `GET /cached-page` sets itself, as an application does on a page it
/// wants shared caches to keep: the session layer merges its own into them.
pub const CACHED_PAGE_HEADERS: &[(&str, &str)] =
    &[("Cache-Control", "public, max-age=60"), ("Vary", "Accept-Encoding")];

/// The cache region behind `/cached`.
pub const DEMO_REGION: &str = "demo";

/// The first value of `name` in an `application/x-www-form-urlencoded` string.
pub(crate) fn field(encoded: &[u8], name: &str) -> Option<String> {
    form_urlencoded::parse(encoded).find(|(k, _)| k == name).map(|(_, v)| v.into_owned())
}

/// A session key read as an integer: `Ok(None)` when absent, `Err(reply)` when it holds
/// something else (a client can put any string under `n` through `/kv/n`).
pub(crate) async fn integer(session: &Session, key: &str) -> Result<std::result::Result<Option<i64>, Reply>> {
    Ok(match session.get::<Value>(key).await? {
        None => Ok(None),
        Some(v) => v.as_i64().map(Some).ok_or_else(|| Reply::status(409, format!("{key} is not an integer"))),
    })
}

/// A store that keeps no index of a user's sessions (cookie-only sessions) answers 501
/// with one line; other errors go to the adapter's mapping.
fn unsupported(e: Error) -> Result<Reply> {
    match e {
        Error::Store(StoreError::Unsupported { .. }) => {
            Ok(Reply::status(501, "this session store cannot list or end sessions by user"))
        }
        other => Err(other),
    }
}

/// Seconds since the Unix epoch.
pub(crate) fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Reserved keys (`_beaker.*`) are a client error here, not a server one.
fn reserved(result: Result<Reply>) -> Result<Reply> {
    match result {
        Err(Error::ReservedKey(key)) => Ok(Reply::status(400, format!("key {key} is reserved"))),
        other => other,
    }
}

impl Demo {
    /// The route logic; `/cached` computations take `slow` and are cached in region
    /// [`DEMO_REGION`] of `caches`; the sessions of a user are listed and ended through
    /// `sessions`, the manager the app's session layer uses.
    pub fn new(slow: Duration, caches: CacheManager, sessions: SessionManager) -> Demo {
        Demo { inner: Arc::new(Inner { slow, generation: AtomicU64::new(0), caches, sessions }) }
    }

    /// `GET /`: explains the demo; does not touch the session.
    pub fn index(&self) -> Reply {
        Reply::html(page::index())
    }

    /// `GET /healthz`.
    pub fn healthz(&self) -> Reply {
        Reply::text("ok")
    }

    /// `GET /counter`: increments `n`.
    pub async fn counter(&self, session: &Session) -> Result<Reply> {
        let n = match integer(session, "n").await? {
            Ok(n) => n.unwrap_or(0).saturating_add(1),
            Err(reply) => return Ok(reply),
        };
        session.insert("n", &n).await?;
        Ok(Reply::text(n.to_string()))
    }

    /// `GET /cached-page`: a page that asks shared caches to keep it
    /// ([`CACHED_PAGE_HEADERS`]) and counts its visits in the session (key `views`).
    pub async fn cached_page(&self, session: &Session) -> Result<Reply> {
        let views = match integer(session, "views").await? {
            Ok(n) => n.unwrap_or(0).saturating_add(1),
            Err(reply) => return Ok(reply),
        };
        session.insert("views", &views).await?;
        Ok(Reply { headers: CACHED_PAGE_HEADERS, ..Reply::text(format!("views {views}")) })
    }

    /// `GET /read`: reads `n`.
    pub async fn read(&self, session: &Session) -> Result<Reply> {
        Ok(match integer(session, "n").await? {
            Ok(Some(n)) => Reply::text(n.to_string()),
            Ok(None) => Reply::text("none"),
            Err(reply) => reply,
        })
    }

    /// `POST /login`: `user` from the form body, else from the query string.
    pub async fn login(&self, session: &Session, query: Option<&str>, body: &[u8]) -> Result<Reply> {
        let user = field(body, "user").or_else(|| query.and_then(|q| field(q.as_bytes(), "user")));
        let Some(user) = user.filter(|u| !u.is_empty()) else {
            return Ok(Reply::status(400, "user required"));
        };
        session.insert("user", &user).await?;
        // Files the session under the user, so that their other devices can list and end it.
        session.set_principal(user.as_str()).await?;
        // Against session fixation: whoever knew the anonymous id must not ride the login.
        session.regenerate_id().await?;
        Ok(Reply::text(user))
    }

    /// `GET /sessions`: the sessions of the logged-in user, newest first, one per line:
    /// `HANDLE CREATED LAST_USED` in Unix seconds, ` current` after this one.
    pub async fn sessions(&self, session: &Session) -> Result<Reply> {
        let Some(principal) = session.principal().await? else {
            return Ok(Reply::status(401, "login required"));
        };
        let current = session.handle().await?;
        let listed = match self.inner.sessions.sessions_of(&principal).await {
            Ok(listed) => listed,
            Err(e) => return unsupported(e),
        };
        let lines: Vec<String> = listed
            .iter()
            .map(|s| {
                let mark = if current.as_ref() == Some(&s.handle) { " current" } else { "" };
                format!("{} {} {}{mark}", s.handle, unix(s.created), unix(s.last_used))
            })
            .collect();
        Ok(Reply::text(lines.join("\n")))
    }

    /// `POST /sessions/{HANDLE}/end`: ends that session if it is the logged-in user's.
    pub async fn end_session(&self, session: &Session, handle: &str) -> Result<Reply> {
        // Without a principal nothing belongs to the session: not found, like another's.
        let Some(principal) = session.principal().await? else { return Ok(Reply::status(404, "not found")) };
        let Some(handle) = SessionHandle::parse(handle) else { return Ok(Reply::status(404, "not found")) };
        match self.inner.sessions.end_session(Some(&principal), &handle).await {
            Ok(true) => Ok(Reply::text("ok")),
            Ok(false) => Ok(Reply::status(404, "not found")),
            Err(e) => unsupported(e),
        }
    }

    /// `POST /logout/everywhere`: ends every session of the logged-in user, this one too
    /// (without a principal, only this one).
    pub async fn logout_everywhere(&self, session: &Session) -> Result<Reply> {
        match self.inner.sessions.end_everywhere(session).await {
            Ok(n) => Ok(Reply::text(format!("bye {n}"))),
            Err(e) => unsupported(e),
        }
    }

    /// `GET /whoami`.
    pub async fn whoami(&self, session: &Session) -> Result<Reply> {
        Ok(Reply::text(self.user(session).await?.unwrap_or_else(|| "anonymous".into())))
    }

    /// `POST /logout`: ends the session.
    pub async fn logout(&self, session: &Session) -> Result<Reply> {
        session.invalidate().await?;
        Ok(Reply::text("bye"))
    }

    /// `GET /protected`.
    pub async fn protected(&self, session: &Session) -> Result<Reply> {
        Ok(match self.user(session).await? {
            Some(user) => Reply::text(format!("hello {user}")),
            None => Reply::status(401, "login required"),
        })
    }

    pub(crate) async fn user(&self, session: &Session) -> Result<Option<String>> {
        // A non-string `user` (written through /kv) reads as nobody.
        Ok(session.get::<Value>("user").await?.and_then(|v| v.as_str().map(str::to_owned)))
    }

    /// `PUT /kv/{key}`: stores the UTF-8 body under `key`.
    pub async fn kv_put(&self, session: &Session, key: &str, body: &[u8]) -> Result<Reply> {
        let Ok(value) = std::str::from_utf8(body) else {
            return Ok(Reply::status(400, "value must be UTF-8"));
        };
        reserved(session.insert(key, value).await.map(|()| Reply::text("ok")))
    }

    /// `GET /kv/{key}`: strings as they are, other values as JSON.
    pub async fn kv_get(&self, session: &Session, key: &str) -> Result<Reply> {
        Ok(match session.get::<Value>(key).await? {
            Some(Value::String(s)) => Reply::text(s),
            Some(other) => Reply::text(other.to_string()),
            None => Reply::status(404, "not found"),
        })
    }

    /// `DELETE /kv/{key}`.
    pub async fn kv_delete(&self, session: &Session, key: &str) -> Result<Reply> {
        reserved(session.remove(key).await.map(|_| Reply::text("ok")))
    }

    /// `GET /keys`: the application's keys, sorted, one per line.
    pub async fn keys(&self, session: &Session) -> Result<Reply> {
        Ok(Reply::text(session.keys().await?.join("\n")))
    }

    /// `POST /flash`: queues the form field `msg`.
    pub async fn flash_post(&self, session: &Session, body: &[u8]) -> Result<Reply> {
        match field(body, "msg") {
            Some(msg) => {
                session.flash(msg).await?;
                Ok(Reply::text("ok"))
            }
            None => Ok(Reply::status(400, "msg required")),
        }
    }

    /// `GET /flash`: takes the queued messages, one per line.
    pub async fn flash_get(&self, session: &Session) -> Result<Reply> {
        Ok(Reply::text(session.take_flashes().await?.join("\n")))
    }

    /// `GET /cached?key=K`: the slow computation for `K`, under the dogpile rule.
    pub async fn cached(&self, query: Option<&str>) -> Reply {
        let Some(key) = query.and_then(|q| field(q.as_bytes(), "key")) else {
            return Reply::status(400, "key required");
        };
        let region = match self.inner.caches.region(DEMO_REGION) {
            Ok(region) => region,
            Err(_) => return Reply::status(500, format!("cache region {DEMO_REGION} is not configured")),
        };
        let generation = region
            .get_or_create(&key, || async { Ok::<u64, std::convert::Infallible>(self.slow_generation().await) })
            .await;
        match generation {
            Ok(generation) => Reply::text(format!("{key}:{generation}")),
            // The creator cannot fail; cache outages are absorbed by `get_or_create`.
            Err(e) => Reply::status(500, format!("cache error: {e}")),
        }
    }

    /// `GET /cached/stats`.
    pub async fn cached_stats(&self) -> Reply {
        match self.inner.caches.region(DEMO_REGION) {
            Ok(region) => {
                let s = region.stats();
                Reply::text(format!("creations={} hits={} misses={}", s.creations, s.hits, s.misses))
            }
            Err(_) => Reply::status(500, format!("cache region {DEMO_REGION} is not configured")),
        }
    }

    /// The slow computation behind `/cached`: sleeps, then returns a process-wide generation.
    async fn slow_generation(&self) -> u64 {
        tokio::time::sleep(self.inner.slow).await;
        self.inner.generation.fetch_add(1, Ordering::SeqCst) + 1
    }

    /// `GET /metrics`: the process's counters in Prometheus text format (see
    /// [`install_metrics`](crate::install_metrics)).
    pub fn metrics(&self) -> Reply {
        crate::metrics::render()
    }
}
