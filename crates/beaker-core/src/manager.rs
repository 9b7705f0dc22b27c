//! [`SessionManager`]: the request lifecycle every adapter shares.

use std::fmt;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use memchr::memmem::Finder;
use tracing::Instrument as _;

use crate::clock::{Clock, SystemClock};
use crate::config::{OnStoreError, SessionConfig, StoreType};
use crate::cookie_store::{self, CookieStore, ID_ENTRY};
use crate::cookies::{self, SetCookie};
use crate::error::{ConfigError, Error, StoreError};
use crate::id::{SessionId, StoreKey};
use crate::memory::MemoryStore;
use crate::secret::Keys;
use crate::serializer::DataSerializer;
use crate::session::{Session, SessionInner, State};
use crate::store::{Changes, Record, SessionStore};

/// How many fresh ids to try before giving up on a create (a collision of 192-bit random
/// ids means a broken random source, not bad luck).
const CREATE_ATTEMPTS: usize = 3;

/// Owns the configuration, the store and the keys; gives adapters the two calls of a
/// request's life: [`start`](Self::start) (no I/O) and [`finish`](Self::finish).
///
/// Cheap to clone (an `Arc` inside).
///
/// ```
/// use beaker_core::{MemoryStore, SessionConfig, SessionManager};
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// let config = SessionConfig::new().with_secret("a secret of at least 16 bytes")?;
/// let manager = SessionManager::builder(config).store(MemoryStore::new()).build()?;
///
/// // One request: the Cookie header in, Set-Cookie values out.
/// let session = manager.start(std::iter::empty::<&str>());
/// session.insert("user", "ada").await?;
/// let set_cookies = manager.finish(&session).await?;
/// assert_eq!(set_cookies.len(), 1);
///
/// // The next request sends the cookie back.
/// let cookie = set_cookies[0].as_str().split(';').next().unwrap();
/// let session = manager.start([cookie]);
/// assert_eq!(session.get::<String>("user").await?.as_deref(), Some("ada"));
/// assert!(manager.finish(&session).await?.is_empty()); // read-only: no Set-Cookie
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct SessionManager {
    inner: Arc<ManagerInner>,
}

impl fmt::Debug for SessionManager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionManager")
            .field("store", &self.inner.backend_name())
            .field("cookie", &self.inner.config.key)
            .finish_non_exhaustive()
    }
}

pub(crate) enum Backend {
    Server(Arc<dyn SessionStore>),
    Cookie,
}

pub(crate) struct ManagerInner {
    pub(crate) config: SessionConfig,
    /// Finds the cookie name in a `Cookie` header (built once: setting up a substring
    /// search per request cost more than the search).
    cookie_name: Finder<'static>,
    keys: Keys,
    backend: Backend,
    /// The backend again when it is the built-in [`MemoryStore`]: its `load` and `apply`
    /// (every request that reads or changes a session) are then called directly, without
    /// the boxed future of the trait call.
    memory: Option<MemoryStore>,
    clock: Arc<dyn Clock>,
}

/// Builds a [`SessionManager`].
#[derive(Debug)]
pub struct SessionManagerBuilder {
    config: SessionConfig,
    store: Option<Arc<dyn SessionStore>>,
    /// The store again when it is a [`MemoryStore`] passed by value.
    memory: Option<MemoryStore>,
    cookie: bool,
    clock: Arc<dyn Clock>,
}

/// How many cookies of our name a session tries to verify or open.
const MAX_COOKIE_CANDIDATES: usize = 4;

impl SessionManager {
    /// Starts building a manager from `config`.
    pub fn builder(config: SessionConfig) -> SessionManagerBuilder {
        SessionManagerBuilder { config, store: None, memory: None, cookie: false, clock: Arc::new(SystemClock) }
    }

    /// The configuration in force.
    pub fn config(&self) -> &SessionConfig {
        &self.inner.config
    }

    /// Turns the request's `Cookie` header values into a session handle. Does no I/O and
    /// cannot fail: a missing, malformed, badly signed or foreign cookie gives a handle on a
    /// fresh session (logged at debug level).
    pub fn start<'a>(&self, cookie_headers: impl IntoIterator<Item = &'a str>) -> Session {
        self.start_bytes(cookie_headers.into_iter().map(str::as_bytes))
    }

    /// [`start`](Self::start) for header values as raw bytes, as HTTP libraries hold them
    /// (`HeaderValue::as_bytes`): adapters need not check every request's `Cookie` header
    /// for UTF-8 first. Values that are not UTF-8 are read lossily when the session is
    /// first used, so a cookie of ours with a stray byte in it fails verification like any
    /// other bad cookie, and the rest of the header is unaffected.
    pub fn start_bytes<'a>(&self, cookie_headers: impl IntoIterator<Item = &'a [u8]>) -> Session {
        // Parsed and verified (or decrypted) lazily: a request that never touches its
        // session pays for no cookie parsing, HMAC or AES, only for one copy of the header.
        let st =
            State { raw_cookies: cookies::raw_header(cookie_headers, &self.inner.cookie_name), ..State::default() };
        let state = futures_util::lock::Mutex::new(st);
        Session { inner: Arc::new(SessionInner { manager: self.inner.clone(), state, used: AtomicBool::new(false) }) }
    }

    /// Ends the request: persists what changed (one write at most), touches the record
    /// when the expiry policy asks, deletes invalidated records, and returns the
    /// `Set-Cookie` values to append to the response (none when the session was not
    /// written).
    ///
    /// # Errors
    /// A store failure (during this call, or while loading under the `fail` policy) and
    /// [`Error::CookieTooLarge`]. Adapters answer with [`Error::status_code`]; nothing was
    /// lost silently, and for cookie-only sessions the previous cookie stays valid.
    pub async fn finish(&self, session: &Session) -> Result<Vec<SetCookie>, Error> {
        let mut st = session.inner.state.lock().await;
        if let Some(err) = st.failure.take() {
            return Err(err);
        }
        let mut out = Vec::new();
        let m = &self.inner;
        let doomed = std::mem::take(&mut st.doomed);
        if let Backend::Server(store) = &m.backend {
            for id in &doomed {
                m.call("delete", store.delete(&m.key(id))).await?;
            }
        }
        if !st.loaded {
            return Ok(out);
        }
        let now = m.clock.now();
        let written = match &m.backend {
            Backend::Server(store) => m.finish_server(store.as_ref(), &mut st, now).await?,
            Backend::Cookie => m.finish_cookie(&mut st, now)?,
        };
        match written {
            Some(cookie) => out.push(cookie),
            None if st.invalidated && (st.cookie_seen || !doomed.is_empty()) => {
                out.push(cookies::removal_cookie(&m.config))
            }
            None => {}
        }
        Ok(out)
    }

    /// Removes expired records from the store (for stores without native expiry).
    pub async fn cleanup(&self) -> Result<u64, Error> {
        match &self.inner.backend {
            Backend::Server(store) => Ok(self.inner.call("cleanup", store.cleanup()).await?),
            Backend::Cookie => Ok(0),
        }
    }
}

impl ManagerInner {
    fn backend_name(&self) -> &'static str {
        match &self.backend {
            Backend::Server(s) => s.name(),
            Backend::Cookie => "cookie",
        }
    }

    fn key(&self, id: &SessionId) -> StoreKey {
        StoreKey::for_id(id, self.config.hash_ids)
    }

    /// The store key of `id`, derived once per request (a load and the write that follows
    /// share it: hashed ids cost a SHA-256 each).
    fn cached_key<'s>(&self, st: &'s mut State, id: &SessionId) -> &'s StoreKey {
        if !st.store_key.as_ref().is_some_and(|(for_id, _)| for_id == id) {
            st.store_key = None;
        }
        &st.store_key.get_or_insert_with(|| (id.clone(), self.key(id))).1
    }

    /// Runs one store call inside a span naming the store and operation, and logs the
    /// outcome (never the id or the data).
    async fn call<T>(
        &self,
        op: &'static str,
        fut: impl std::future::Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        // The span only when some subscriber may want debug spans at all: building and
        // entering a disabled span is not free, and this runs on every store call.
        let result = if tracing::level_enabled!(tracing::Level::DEBUG) {
            fut.instrument(tracing::debug_span!("beaker.store", store = self.backend_name(), op)).await
        } else {
            fut.await
        };
        match &result {
            Ok(_) => tracing::trace!(store = self.backend_name(), op, "ok"),
            Err(e) => tracing::warn!(store = self.backend_name(), op, error = %e, "store call failed"),
        }
        result
    }

    /// `store.load(key)`, or the built-in memory store's direct call.
    async fn load_record(&self, store: &dyn SessionStore, key: &StoreKey) -> Result<Option<Record>, StoreError> {
        match &self.memory {
            Some(memory) => Ok(memory.load_now(key)),
            None => self.call("load", store.load(key)).await,
        }
    }

    /// `store.apply(key, changes)`, or the built-in memory store's direct call.
    async fn apply_changes(
        &self,
        store: &dyn SessionStore,
        key: &StoreKey,
        changes: &Changes,
    ) -> Result<bool, StoreError> {
        match &self.memory {
            Some(memory) => Ok(memory.apply_now(key, changes)),
            None => self.call("apply", store.apply(key, changes)).await,
        }
    }

    /// When a record written or touched at `now` expires: the idle timeout from now,
    /// capped by the absolute lifetime from creation.
    fn expiry(&self, created: SystemTime, now: SystemTime) -> Option<SystemTime> {
        let idle = self.config.timeout.map(|t| now + t);
        let cap = self.config.absolute_timeout.map(|t| created + t);
        match (idle, cap) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn alive(&self, record: &Record, now: SystemTime) -> bool {
        if record.is_expired(now) {
            return false;
        }
        if let Some(cap) = self.config.absolute_timeout {
            if record.created + cap <= now {
                return false;
            }
        }
        if let Some(t) = self.config.timeout {
            if self.config.save_accessed_time && record.accessed + t <= now {
                return false;
            }
        }
        true
    }

    /// Runs `f` on the values of our cookies in the request (parsed on first use, a few at
    /// most), until it returns `Some`. Sets `cookie_seen`; later calls see no cookie.
    fn first_cookie<T>(&self, st: &mut State, mut f: impl FnMut(&str) -> Option<T>) -> Option<T> {
        let raw = std::mem::take(&mut st.raw_cookies);
        // `from_utf8` first: its ASCII fast path is several times quicker than the lossy
        // decoder on the valid headers nearly every request carries.
        let raw = match std::str::from_utf8(&raw) {
            Ok(valid) => std::borrow::Cow::Borrowed(valid),
            Err(_) => String::from_utf8_lossy(&raw),
        };
        for value in cookies::values_named(&raw, &self.config.key).take(MAX_COOKIE_CANDIDATES) {
            // Several cookies of our name (a stale one on another path, an injected one)
            // may come: the first valid one wins.
            st.cookie_seen = true;
            if let Some(found) = f(value) {
                return Some(found);
            }
        }
        None
    }

    /// The id of the first correctly signed, well-formed cookie of the request
    /// (server-side stores), verified on first use and remembered in `st`.
    pub(crate) fn verified_cookie_id(&self, st: &mut State) -> Option<SessionId> {
        let verified = self.first_cookie(st, |value| match self.backend {
            Backend::Cookie => None,
            Backend::Server(_) => match self.keys.verify(&self.config.key, value) {
                Some((raw, old)) => match SessionId::parse(raw) {
                    Some(id) => Some((id, old)),
                    None => {
                        tracing::warn!("signed session cookie holds a malformed id; ignored");
                        None
                    }
                },
                None => {
                    tracing::debug!("session cookie with a bad signature; ignored");
                    None
                }
            },
        });
        if let Some((id, old)) = verified {
            st.cookie_id = Some(id);
            st.stale_key = old;
        }
        st.cookie_id.clone()
    }

    /// Loads the session's record into `st` (called once, on first use).
    pub(crate) async fn load(&self, st: &mut State) -> Result<(), Error> {
        let now = self.clock.now();
        let found = match &self.backend {
            Backend::Cookie => {
                let opened = self.first_cookie(st, |sealed| cookie_store::open(&self.keys, &self.config.key, sealed));
                if opened.is_none() && st.cookie_seen {
                    tracing::debug!(
                        "cookie session could not be opened (tampered, foreign key or corrupt); starting fresh"
                    );
                }
                opened
            }
            Backend::Server(store) => match self.verified_cookie_id(st) {
                None => None,
                Some(id) => match self.load_record(store.as_ref(), self.cached_key(st, &id)).await {
                    Ok(Some(record)) => Some((record, id, st.stale_key)),
                    Ok(None) => None,
                    Err(StoreError::Corrupt { message }) if self.config.invalidate_corrupt => {
                        tracing::warn!(%message, "corrupt session record; starting a fresh session");
                        None
                    }
                    Err(e) if self.config.on_store_error == OnStoreError::Continue && e.is_unavailable() => {
                        tracing::warn!(error = %e, "store unavailable; continuing with an empty session");
                        None
                    }
                    Err(e) => {
                        // Reported again by `finish`, even if the handler swallowed it.
                        st.failure = Some(Error::Store(e.summary()));
                        return Err(Error::Store(e));
                    }
                },
            },
        };
        st.loaded = true;
        match found {
            Some((record, id, stale)) if self.alive(&record, now) => {
                if !record.entries.values().all(|v| DataSerializer::is_known_tag(v)) {
                    tracing::warn!("session record holds a value in an unknown format; starting a fresh session");
                    return Ok(());
                }
                st.exists = true;
                st.id = Some(id);
                st.stale_key = stale;
                st.created = Some(record.created);
                st.accessed = Some(record.accessed);
                st.entries = record.entries;
            }
            Some(_) => tracing::debug!("session expired; starting a fresh session"),
            None => {}
        }
        Ok(())
    }

    fn touch_due(&self, st: &State, now: SystemTime) -> bool {
        if !self.config.save_accessed_time || self.config.timeout.is_none() {
            return false;
        }
        let every = self.config.effective_touch_interval().unwrap_or(Duration::ZERO);
        st.accessed.is_none_or(|a| now.duration_since(a).unwrap_or(Duration::ZERO) >= every)
    }

    fn cookie_for(&self, id: &SessionId, now: SystemTime) -> SetCookie {
        cookies::session_cookie(&self.config, self.keys.sign(&self.config.key, id.expose()), now)
    }

    /// Whether an existing session's cookie must be sent again although its id is unchanged.
    fn cookie_refresh(&self, st: &State) -> bool {
        st.stale_key || matches!(self.config.cookie_expires, crate::config::CookieExpires::After(_))
    }

    async fn finish_server(
        &self,
        store: &dyn SessionStore,
        st: &mut State,
        now: SystemTime,
    ) -> Result<Option<SetCookie>, Error> {
        let dirty = st.is_dirty();
        if st.exists && !dirty && !st.regenerate {
            if !self.touch_due(st, now) {
                return Ok(None);
            }
            let id = st.id.clone().expect("existing session has an id");
            let created = st.created.unwrap_or(now);
            let expires = self.expiry(created, now);
            let touched = self.call("touch", store.touch(self.cached_key(st, &id), now, expires)).await?;
            return Ok((touched && self.cookie_refresh(st)).then(|| self.cookie_for(&id, now)));
        }
        if st.exists && !st.regenerate {
            let id = st.id.clone().expect("existing session has an id");
            let changes = Changes {
                clear: st.clear,
                set: std::mem::take(&mut st.set),
                remove: std::mem::take(&mut st.remove),
                accessed: now,
                expires: self.expiry(st.created.unwrap_or(now), now),
            };
            st.clear = false;
            if self.apply_changes(store, self.cached_key(st, &id), &changes).await? {
                return Ok(self.cookie_refresh(st).then(|| self.cookie_for(&id, now)));
            }
            // The record went away under us (expired, deleted by a logout elsewhere): never
            // resurrect the old id; the data of this request moves to a fresh one.
            tracing::debug!("session record vanished before saving; issuing a fresh id");
            st.exists = false;
        } else if !st.exists && !dirty {
            // New and unwritten (or a regenerate of nothing): nothing to persist, no cookie.
            return Ok(None);
        }
        if !st.exists && st.entries.is_empty() {
            return Ok(None);
        }
        let created = if st.exists { st.created.unwrap_or(now) } else { now };
        let record = Record { entries: st.entries.clone(), created, accessed: now, expires: self.expiry(created, now) };
        let mut new_id = None;
        for _ in 0..CREATE_ATTEMPTS {
            let id = SessionId::generate();
            if self.call("create", store.create(&self.key(&id), &record)).await? {
                new_id = Some(id);
                break;
            }
        }
        let new_id = new_id.ok_or_else(|| StoreError::Backend {
            message: "could not create a session under a fresh id".into(),
            source: None,
        })?;
        if let (true, Some(old)) = (st.exists, st.id.take()) {
            self.call("delete", store.delete(&self.key(&old))).await?;
        }
        st.set.clear();
        st.remove.clear();
        st.clear = false;
        st.regenerate = false;
        st.exists = true;
        st.created = Some(created);
        st.id = Some(new_id.clone());
        Ok(Some(self.cookie_for(&new_id, now)))
    }

    fn finish_cookie(&self, st: &mut State, now: SystemTime) -> Result<Option<SetCookie>, Error> {
        let dirty = st.is_dirty();
        if !dirty && !st.regenerate && !(st.exists && (self.touch_due(st, now) || st.stale_key)) {
            return Ok(None);
        }
        let has_data = st.entries.keys().any(|k| k != ID_ENTRY);
        if !has_data {
            // Emptied: the cookie itself must go.
            return Ok(st.exists.then(|| cookies::removal_cookie(&self.config)));
        }
        let id = match (&st.id, st.regenerate) {
            (Some(id), false) => id.clone(),
            _ => SessionId::generate(),
        };
        let created = if st.exists { st.created.unwrap_or(now) } else { now };
        let mut entries = st.entries.clone();
        let id_bytes = DataSerializer::Json
            .encode(id.expose())
            .map_err(|source| Error::Serialize { key: ID_ENTRY.into(), source })?;
        entries.insert(ID_ENTRY.to_owned(), id_bytes);
        let record = Record { entries, created, accessed: now, expires: self.expiry(created, now) };
        let sealed = cookie_store::seal(&self.keys, &self.config.key, &record);
        let cookie = cookies::session_cookie(&self.config, sealed, now);
        if cookie.as_str().len() > self.config.cookie_limit {
            return Err(Error::CookieTooLarge { size: cookie.as_str().len(), limit: self.config.cookie_limit });
        }
        st.id = Some(id);
        st.exists = true;
        st.regenerate = false;
        Ok(Some(cookie))
    }
}

impl SessionManagerBuilder {
    /// Uses a server-side store.
    pub fn store(mut self, store: impl SessionStore) -> Self {
        self.memory = (&store as &dyn std::any::Any).downcast_ref::<MemoryStore>().cloned();
        self.store = Some(Arc::new(store));
        self
    }

    /// Uses a server-side store already behind an `Arc`.
    pub fn shared_store(mut self, store: Arc<dyn SessionStore>) -> Self {
        self.memory = None;
        self.store = Some(store);
        self
    }

    /// Keeps whole sessions in encrypted cookies instead of a store.
    pub fn cookie_store(mut self, _marker: CookieStore) -> Self {
        self.cookie = true;
        self
    }

    /// Uses another clock for expiry decisions (tests).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Validates the configuration and builds the manager. Without an explicit store, the
    /// configured type decides: `cookie` gives cookie-only sessions, `memory` (the default)
    /// a [`MemoryStore`]; other types need their store passed in (the `beaker-rs` facade crate
    /// builds them from the URL).
    pub fn build(self) -> Result<SessionManager, ConfigError> {
        self.config.validate()?;
        let keys = Keys::new(&self.config.secrets)?;
        let mut memory = self.memory;
        let backend = match (self.store, self.cookie) {
            (Some(_), true) => {
                return Err(ConfigError::Conflict {
                    key: "session.type".into(),
                    message: "both a store and cookie-only sessions were chosen".into(),
                })
            }
            (Some(store), false) => Backend::Server(store),
            (None, true) => {
                memory = None;
                Backend::Cookie
            }
            (None, false) => match self.config.resolved_store_type()? {
                StoreType::Cookie => Backend::Cookie,
                StoreType::Memory => {
                    let store = MemoryStore::with_clock(MemoryStore::DEFAULT_MAX_SESSIONS, self.clock.clone());
                    memory = Some(store.clone());
                    Backend::Server(Arc::new(store))
                }
                other => {
                    return Err(ConfigError::Missing {
                        key: "session.type".into(),
                        why: format!(
                        "a {other} store must be passed to the builder (the `beaker-rs` crate builds it from the URL)"
                    ),
                    })
                }
            },
        };
        let cookie_name = Finder::new(self.config.key.as_bytes()).into_owned();
        Ok(SessionManager {
            inner: Arc::new(ManagerInner {
                config: self.config,
                cookie_name,
                keys,
                backend,
                memory,
                clock: self.clock,
            }),
        })
    }
}
