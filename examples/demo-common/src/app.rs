//! `GET /app` and its actions, `POST /app/{action}`: each action changes the session, queues
//! a flash message saying what happened, and answers `303 See Other` back to `/app`
//! (POST/redirect/GET), so that a reload never repeats it.

use std::time::{Instant, SystemTime};

use beaker_core::{Error, Session, StoreError};
use serde_json::Value;

use crate::app_page::{self, AppView, Listed};
use crate::routes::{field, integer, Demo, Reply, DEMO_REGION};

type Result<T> = std::result::Result<T, Error>;

/// Where every action sends the browser back to.
const BACK: &str = "/app";

impl Demo {
    /// `GET /app`: the page for people. Reads the session, and takes its flash messages
    /// (shown once).
    pub async fn app(&self, session: &Session) -> Result<Reply> {
        let flashes = session.take_flashes().await?;
        let mut entries = Vec::new();
        for key in session.keys().await? {
            let shown = match session.get::<Value>(&key).await? {
                Some(Value::String(s)) => s,
                Some(other) => other.to_string(),
                None => continue,
            };
            entries.push((key, shown));
        }
        let others = self.others(session).await?;
        let view = AppView {
            others,
            user: self.user(session).await?,
            n: integer(session, "n").await?.ok().flatten(),
            entries,
            created: session.created().await?,
            accessed: session.last_accessed().await?,
            expires: session.expires().await?,
            now: SystemTime::now(),
            flashes,
            cache: self.inner.caches.region(DEMO_REGION).ok().map(|r| r.stats()),
            slow: self.inner.slow,
        };
        Ok(Reply::html(app_page::render(&view)))
    }

    /// `POST /app/{action}` with a form body: `login` (`user`), `logout`, `increment`,
    /// `flash` (`msg`), `set` (`key`, `value`), `remove` (`key`), `cached` (`key`), `end`
    /// (`handle`: one of the user's sessions), `everywhere` (sign out everywhere).
    /// Answers 303 to `/app`, or 404 for an unknown action.
    pub async fn app_action(&self, session: &Session, action: &str, body: &[u8]) -> Result<Reply> {
        let message = match action {
            "login" => match field(body, "user").filter(|u| !u.trim().is_empty()) {
                Some(user) => {
                    session.insert("user", &user).await?;
                    match session.set_principal(user.as_str()).await {
                        Ok(()) => {
                            // Against session fixation, as `POST /login` does.
                            session.regenerate_id().await?;
                            format!("Logged in as {user}; the session got a fresh id.")
                        }
                        Err(Error::InvalidOwner(why)) => {
                            session.remove("user").await?;
                            format!("Not logged in: {why}.")
                        }
                        Err(e) => return Err(e),
                    }
                }
                None => "Give a name to log in.".to_owned(),
            },
            "logout" => {
                session.invalidate().await?;
                // The flash starts a brand-new session: the ended one stays ended.
                "Logged out: the old session is gone from the store.".to_owned()
            }
            "increment" => match integer(session, "n").await? {
                Ok(n) => {
                    let n = n.unwrap_or(0).saturating_add(1);
                    session.insert("n", &n).await?;
                    format!("Counter is now {n}.")
                }
                Err(_) => "n holds something other than an integer: remove it first.".to_owned(),
            },
            "flash" => match field(body, "msg").filter(|m| !m.is_empty()) {
                Some(msg) => msg,
                None => "Type a message to flash.".to_owned(),
            },
            "set" => match field(body, "key").filter(|k| !k.is_empty()) {
                Some(key) => {
                    let value = field(body, "value").unwrap_or_default();
                    match session.insert(&key, &value).await {
                        Ok(()) => format!("Set {key}."),
                        Err(Error::ReservedKey(_)) => format!("{key} is reserved for beaker-rs."),
                        Err(e) => return Err(e),
                    }
                }
                None => "Give a key to set.".to_owned(),
            },
            "remove" => match field(body, "key") {
                Some(key) => match session.remove(&key).await {
                    Ok(true) => format!("Removed {key}."),
                    Ok(false) => format!("{key} was not set."),
                    Err(Error::ReservedKey(_)) => format!("{key} is reserved for beaker-rs."),
                    Err(e) => return Err(e),
                },
                None => "Give a key to remove.".to_owned(),
            },
            "cached" => self.cached_message(field(body, "key").unwrap_or_default()).await,
            "end" => {
                let reply = self.end_session(session, &field(body, "handle").unwrap_or_default()).await?;
                match reply.status {
                    200 => "Signed that session out: its next request starts afresh.".to_owned(),
                    404 => "That session is not one of yours any more.".to_owned(),
                    _ => reply.body.into_owned(),
                }
            }
            "everywhere" => {
                let reply = self.logout_everywhere(session).await?;
                if reply.status != 200 {
                    reply.body.into_owned()
                } else {
                    // The flash starts a brand-new session, as after a logout.
                    let n = reply.body.trim_start_matches("bye ");
                    format!("Signed out everywhere: {n} session(s) ended, this one included.")
                }
            }
            _ => return Ok(Reply::status(404, "not found")),
        };
        session.flash(message).await?;
        Ok(Reply::see_other(BACK))
    }

    /// The logged-in user's sessions for the page, the current one marked; `None` when
    /// nobody is logged in, a line of explanation when the store cannot list them.
    async fn others(&self, session: &Session) -> Result<Option<std::result::Result<Vec<Listed>, String>>> {
        let Some(principal) = session.principal().await? else { return Ok(None) };
        let current = session.handle().await?;
        Ok(Some(match self.inner.sessions.sessions_of(&principal).await {
            Ok(listed) => Ok(listed
                .into_iter()
                .map(|info| Listed { current: current.as_ref() == Some(&info.handle), info })
                .collect()),
            Err(Error::Store(StoreError::Unsupported { .. })) => {
                Err("This session store keeps no index of a user's sessions (cookie-only sessions).".to_owned())
            }
            Err(e) => return Err(e),
        }))
    }

    /// Runs the slow computation for `key` through the cache and says what it got.
    async fn cached_message(&self, key: String) -> String {
        let key = if key.is_empty() { "a".to_owned() } else { key };
        let started = Instant::now();
        let reply = self
            .cached(Some(&format!("key={}", form_urlencoded::byte_serialize(key.as_bytes()).collect::<String>())))
            .await;
        let took = started.elapsed().as_millis();
        match reply.status {
            200 => {
                let generation = reply.body.rsplit(':').next().unwrap_or("?");
                format!("Cache key {key}: generation {generation}, answered in {took} ms.")
            }
            _ => format!("Cache key {key}: {}", reply.body),
        }
    }
}
