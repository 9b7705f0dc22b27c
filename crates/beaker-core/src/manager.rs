//! [`SessionManager`]: the request lifecycle every adapter shares.

use std::fmt;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use memchr::memmem::Finder;

use crate::backend::Backend;
use crate::cache_headers::Finished;
use crate::clock::{saturating_add, Clock, SystemClock};
use crate::compat::cookie_session::{BeakerCookieCodec, OpenError};
use crate::compat::Compat;
use crate::config::{OnStoreError, SessionConfig, StoreType};
use crate::cookie_store::{self, CookieStore};
use crate::cookies::{self, CookieFormat, SetCookie};
use crate::error::{ConfigError, Error, StoreError};
use crate::id::{SessionId, StoreKey};
use crate::memory::MemoryStore;
use crate::secret::Keys;
use crate::serializer::DataSerializer;
use crate::session::{Session, SessionInner};
use crate::state::{EndedBy, Phase, State, Stored};
use crate::store::{Lookup, Record, SessionStore};
use crate::telemetry::{SessionCounters, StoreErrorCounters};

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
    pub(crate) inner: Arc<ManagerInner>,
}

impl fmt::Debug for SessionManager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionManager")
            .field("store", &self.inner.backend_name())
            .field("cookie", &self.inner.config.key)
            .finish_non_exhaustive()
    }
}

pub(crate) struct ManagerInner {
    pub(crate) config: SessionConfig,
    /// Finds the cookie name in a `Cookie` header (built once: setting up a substring
    /// search per request cost more than the search).
    cookie_name: Finder<'static>,
    /// The `Set-Cookie` attributes, rendered once.
    pub(crate) cookie_format: CookieFormat,
    pub(crate) keys: Keys,
    /// With `compat = beaker` and cookie-only sessions: Beaker's `CookieSession` format.
    pub(crate) beaker_cookie: Option<BeakerCookieCodec>,
    pub(crate) backend: Backend,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) counters: SessionCounters,
    /// Signed cookies this manager verified lately, with their id and store key: a
    /// returning browser's cookie costs a lookup instead of an HMAC and a SHA-256. Only
    /// verified cookies enter it (a forged one is checked, and counted, every time); the
    /// keys never change for a manager, so an entry never goes stale; bounded, so a
    /// client minting sessions only pushes others back to the full check.
    verified: VerifiedCookies,
}

/// How many verified cookies a manager remembers.
const VERIFIED_COOKIES: usize = 4096;

/// What a verified cookie stood for: its id, whether an older secret signed it, and the
/// id's store key.
type Verified = (SessionId, bool, StoreKey);

type VerifiedCookies =
    quick_cache::sync::Cache<CookieValue, Verified, quick_cache::UnitWeighter, foldhash::fast::RandomState>;

/// The longest cookie value remembered (the signed ids of both formats are shorter).
const MAX_REMEMBERED: usize = 96;
const _: () = assert!(MAX_REMEMBERED.is_multiple_of(8), "compared a word at a time");

/// A cookie value held inline, compared in constant time: looking a request's cookie up
/// among verified ones must not tell, by its timing, how much of it matched one of them.
#[derive(Clone)]
struct CookieValue {
    len: u8,
    bytes: [u8; MAX_REMEMBERED],
}

impl CookieValue {
    /// `None` for a value too long to remember (it is verified every time).
    fn of(value: &str) -> Option<Self> {
        let len = value.len();
        let mut bytes = [0u8; MAX_REMEMBERED];
        bytes.get_mut(..len)?.copy_from_slice(value.as_bytes());
        Some(CookieValue { len: len as u8, bytes })
    }
}

impl PartialEq for CookieValue {
    fn eq(&self, other: &Self) -> bool {
        // The length is public (the cookie's size); the bytes are compared in full, a
        // word at a time, with no early exit.
        let mut diff = 0u64;
        for (a, b) in self.bytes.chunks_exact(8).zip(other.bytes.chunks_exact(8)) {
            let (Ok(a), Ok(b)) = (<[u8; 8]>::try_from(a), <[u8; 8]>::try_from(b)) else { return false };
            diff |= u64::from_ne_bytes(a) ^ u64::from_ne_bytes(b);
        }
        self.len == other.len && bool::from(subtle::ConstantTimeEq::ct_eq(&diff, &0))
    }
}

impl Eq for CookieValue {}

impl std::hash::Hash for CookieValue {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        // Equal values have equal lengths and bytes, zeros after the end included.
        self.bytes[..usize::from(self.len)].hash(state);
    }
}

/// Builds a [`SessionManager`].
#[derive(Debug)]
pub struct SessionManagerBuilder {
    config: SessionConfig,
    store: Option<Backend>,
    cookie: bool,
    clock: Arc<dyn Clock>,
}

/// How many cookies of our name a session tries to verify or open.
const MAX_COOKIE_CANDIDATES: usize = 4;

impl SessionManager {
    /// Starts building a manager from `config`.
    pub fn builder(config: SessionConfig) -> SessionManagerBuilder {
        SessionManagerBuilder { config, store: None, cookie: false, clock: Arc::new(SystemClock) }
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
        Session {
            inner: Arc::new(SessionInner {
                manager: self.inner.clone(),
                state,
                used: AtomicBool::new(false),
                dropped: AtomicBool::new(false),
            }),
        }
    }

    /// Ends the request: persists what changed (one write at most), touches the record
    /// when the expiry policy asks, ends invalidated sessions, and returns the
    /// `Set-Cookie` values to append to the response (none when the session was not
    /// written) with the caching headers the response needs
    /// ([`Finished::cache_directives`]; none for a session the request never used).
    ///
    /// A session that ended while the request ran (a logout, a regeneration, expiry or
    /// revocation elsewhere), or whose id was retired a moment before the request
    /// arrived, is not written back and gets no cookie: the request's changes are
    /// dropped, and [`Session::changes_dropped`] says so. So are the changes of a request
    /// that went on with an empty session after a load failure (`on_store_error =
    /// continue`), which must not replace the stored session.
    ///
    /// # Errors
    /// A store failure (during this call, or while loading under the `fail` policy) and
    /// [`Error::CookieTooLarge`]. Adapters answer with [`Error::status_code`]; nothing was
    /// lost silently, and for cookie-only sessions the previous cookie stays valid.
    pub async fn finish(&self, session: &Session) -> Result<Finished, Error> {
        let used = session.is_touched();
        let mut st = session.inner.state.lock().await;
        let set_cookies = self.inner.finish(&session.inner, &mut st).await?;
        Ok(Finished::new(set_cookies, self.inner.config.cache_headers, used))
    }

    /// Removes expired records from the store (for stores without native expiry).
    pub async fn cleanup(&self) -> Result<u64, Error> {
        Ok(self.inner.backend.cleanup().await?)
    }
}

impl ManagerInner {
    fn backend_name(&self) -> &'static str {
        self.backend.name()
    }

    pub(crate) fn key(&self, id: &SessionId) -> StoreKey {
        StoreKey::for_id(id, self.config.hash_ids)
    }

    /// The store key of `id`, derived once per request (a load and the write that follows
    /// share it: hashed ids cost a SHA-256 each).
    pub(crate) fn cached_key<'s>(&self, st: &'s mut State, id: &SessionId) -> &'s StoreKey {
        if !st.store_key.as_ref().is_some_and(|(for_id, _)| for_id == id) {
            st.store_key = None;
        }
        &st.store_key.get_or_insert_with(|| (id.clone(), self.key(id))).1
    }

    /// When a record written or touched at `now` expires: the idle timeout from now,
    /// capped by the absolute lifetime from creation.
    pub(crate) fn expiry(&self, created: SystemTime, now: SystemTime) -> Option<SystemTime> {
        let idle = self.config.timeout.map(|t| saturating_add(now, t));
        let cap = self.config.absolute_timeout.map(|t| saturating_add(created, t));
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
            if saturating_add(record.created, cap) <= now {
                return false;
            }
        }
        if let Some(t) = self.config.timeout {
            if self.config.save_accessed_time && saturating_add(record.accessed, t) <= now {
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
        if self.backend.is_cookie() {
            // Only notes whether our cookie came (for the removal cookie of `invalidate`).
            self.first_cookie(st, |_| None::<()>);
            return None;
        }
        let verified = self.first_cookie(st, |value| {
            let remembered = CookieValue::of(value);
            if let Some(hit) = remembered.as_ref().and_then(|v| self.verified.get(v)) {
                return Some(hit);
            }
            match self.keys.verify(&self.config.key, value) {
                Some((raw, old)) => match SessionId::parse(raw) {
                    Some(id) => {
                        let found = (id.clone(), old, self.key(&id));
                        if let Some(v) = remembered {
                            self.verified.insert(v, found.clone());
                        }
                        Some(found)
                    }
                    None => {
                        self.counters.rejected_cookies.increment(1);
                        tracing::warn!("signed session cookie holds a malformed id; ignored");
                        None
                    }
                },
                None => {
                    self.counters.rejected_cookies.increment(1);
                    tracing::debug!("session cookie with a bad signature; ignored");
                    None
                }
            }
        });
        if let Some((id, old, key)) = verified {
            st.store_key = Some((id.clone(), key));
            st.cookie_id = Some(id);
            st.stale_key = old;
        }
        st.cookie_id.clone()
    }

    /// Loads the session's record into `st` (called once, on first use): moves the phase
    /// from `Untouched` to `Loaded`, `Ended` (a retired id) or `Failed`.
    pub(crate) async fn load(&self, st: &mut State) -> Result<(), Error> {
        let now = self.clock.now();
        let found = if self.backend.is_cookie() {
            let opened = match &self.beaker_cookie {
                None => {
                    self.first_cookie(st, |sealed| cookie_store::open(&self.keys, &self.config.key, sealed).map(Ok))
                }
                // The first cookie signed with a validate key is the session, decodable or not.
                Some(codec) => self.first_cookie(st, |value| match codec.open(value, now) {
                    Ok(o) => Some(match SessionId::parse(&o.id) {
                        Some(id) => Ok((o.record, id, o.stale)),
                        None => Err(StoreError::corrupt("beaker cookie session: an _id beaker-rs cannot use")),
                    }),
                    Err(OpenError::Unsigned) => None,
                    Err(OpenError::Corrupt(e)) => Some(Err(e)),
                }),
            };
            let opened = match opened {
                Some(Ok(found)) => Some(found),
                Some(Err(e)) if self.config.invalidate_corrupt => {
                    self.counters.rejected_cookies.increment(1);
                    tracing::warn!(error = %e, "corrupt Beaker cookie session; starting a fresh session");
                    None
                }
                Some(Err(e)) => {
                    st.phase = Phase::Failed(Some(e.summary()));
                    return Err(Error::Store(e));
                }
                None => {
                    if st.cookie_seen {
                        self.counters.rejected_cookies.increment(1);
                        tracing::debug!(
                            "cookie session could not be opened (tampered, foreign key or corrupt); starting fresh"
                        );
                    }
                    None
                }
            };
            opened.map(|(record, id, stale)| {
                st.stale_key = stale;
                (record, id)
            })
        } else {
            let Some(id) = self.verified_cookie_id(st) else {
                st.phase = Phase::Loaded(None);
                return Ok(());
            };
            match self.backend.lookup(self.cached_key(st, &id)).await {
                Ok(Lookup::Live(record)) => Some((record, id)),
                Ok(Lookup::Missing) => None,
                Ok(Lookup::Retired) => {
                    tracing::debug!("session id retired a moment ago; the request gets no session");
                    st.phase = Phase::Ended(EndedBy::Retired);
                    return Ok(());
                }
                Err(StoreError::Corrupt { message }) if self.config.invalidate_corrupt => {
                    tracing::warn!(%message, "corrupt session record; starting a fresh session");
                    None
                }
                Err(e) if self.config.on_store_error == OnStoreError::Continue && e.is_unavailable() => {
                    tracing::warn!(error = %e, "store unavailable; continuing with an empty session");
                    st.phase = Phase::Failed(None);
                    return Ok(());
                }
                Err(e) => {
                    // Reported again by `finish`, even if the handler swallowed it.
                    st.phase = Phase::Failed(Some(e.summary()));
                    return Err(Error::Store(e));
                }
            }
        };
        st.phase = Phase::Loaded(None);
        match found {
            Some((record, id)) if self.alive(&record, now) => {
                if !record.entries.values().all(|v| DataSerializer::is_known_tag(v)) {
                    tracing::warn!("session record holds a value in an unknown format; starting a fresh session");
                    return Ok(());
                }
                self.counters.loaded.increment(1);
                st.phase = Phase::Loaded(Some(Stored { id, created: record.created, accessed: record.accessed }));
                st.data.entries = record.entries;
                st.data.owner = record.owner;
            }
            Some(_) => tracing::debug!("session expired; starting a fresh session"),
            None => {}
        }
        Ok(())
    }

    /// Whether a session last accessed at `accessed` is due a touch at `now`.
    /// When the session expires if this request ends now: its next write or touch moves
    /// the idle timeout to now, else the last one stands. `None` for an unsaved session
    /// with nothing to save, for an ended one, or when no lifetime applies.
    pub(crate) fn projected_expiry(&self, st: &State) -> Option<SystemTime> {
        let now = self.clock.now();
        let dirty = st.data.is_dirty();
        let Some(stored) = st.phase.stored() else {
            let unsaved = matches!(st.phase, Phase::Changed(None) | Phase::Regenerating(None));
            return (unsaved && dirty && st.data.has_content()).then(|| self.expiry(now, now)).flatten();
        };
        let moves = dirty || matches!(st.phase, Phase::Regenerating(_)) || self.touch_due(stored.accessed, now);
        self.expiry(stored.created, if moves { now } else { stored.accessed })
    }

    pub(crate) fn touch_due(&self, accessed: SystemTime, now: SystemTime) -> bool {
        if !self.config.save_accessed_time || self.config.timeout.is_none() {
            return false;
        }
        let every = self.config.effective_touch_interval().unwrap_or(Duration::ZERO);
        now.duration_since(accessed).unwrap_or(Duration::ZERO) >= every
    }

    pub(crate) fn cookie_for(&self, id: &SessionId, now: SystemTime) -> SetCookie {
        self.cookie_format.session(&self.config, self.keys.sign(&self.config.key, id.expose()), now)
    }

    /// Whether an existing session's cookie must be sent again although its id is unchanged.
    pub(crate) fn cookie_refresh(&self, st: &State) -> bool {
        st.stale_key || matches!(self.config.cookie_expires, crate::config::CookieExpires::After(_))
    }
}

impl SessionManagerBuilder {
    /// Uses a server-side store.
    pub fn store(mut self, store: impl SessionStore) -> Self {
        self.store = Some(match (&store as &dyn std::any::Any).downcast_ref::<MemoryStore>() {
            Some(memory) => Backend::Memory(memory.clone()),
            None => Backend::Store(Arc::new(store), StoreErrorCounters::noop()),
        });
        self
    }

    /// Uses a server-side store already behind an `Arc`.
    pub fn shared_store(mut self, store: Arc<dyn SessionStore>) -> Self {
        self.store = Some(Backend::Store(store, StoreErrorCounters::noop()));
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
        let mut backend = match (self.store, self.cookie) {
            (Some(_), true) => {
                return Err(ConfigError::Conflict {
                    key: "session.type".into(),
                    message: "both a store and cookie-only sessions were chosen".into(),
                })
            }
            (Some(store), false) => store,
            (None, true) => Backend::Cookie,
            (None, false) => match self.config.resolved_store_type()? {
                StoreType::Cookie => Backend::Cookie,
                StoreType::Memory => Backend::Memory(MemoryStore::bounded_with_clock(
                    self.config.max_sessions,
                    self.config.max_bytes,
                    self.clock.clone(),
                )),
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
        let beaker_cookie = match (self.config.compat, &backend) {
            (Compat::Beaker, Backend::Cookie) => Some(crate::compat::cookie_codec(&self.config)?),
            _ if !self.config.beaker_validate_keys.is_empty() || !self.config.beaker_encrypt_keys.is_empty() => {
                return Err(ConfigError::Conflict {
                    key: "session.validate_key".into(),
                    message: "validate_key and encrypt_key are only used by Beaker's cookie-only sessions \
                              (compat = beaker, type = cookie); otherwise set `secret`"
                        .into(),
                })
            }
            _ => None,
        };
        // Beaker's cookie-only sessions are keyed by validate_key and encrypt_key alone;
        // `secret` is then optional (it signs nothing).
        let secrets = match &beaker_cookie {
            Some(_) if self.config.secrets.is_empty() => &self.config.beaker_validate_keys,
            _ => &self.config.secrets,
        };
        let keys = Keys::with_compat(secrets, self.config.compat)?;
        if backend.is_cookie() && self.config.max_sessions_per_principal.is_some() {
            return Err(ConfigError::Conflict {
                key: "session.max_sessions_per_principal".into(),
                message: "cookie-only sessions keep no index of a principal's sessions, so no cap can be enforced; \
                          use a server-side store or leave it unset"
                    .into(),
            });
        }
        let cookie_name = Finder::new(self.config.key.as_bytes()).into_owned();
        let cookie_format = CookieFormat::new(&self.config);
        let counters = SessionCounters::new(backend.name());
        if let Backend::Store(store, errors) = &mut backend {
            *errors = StoreErrorCounters::new(store.name());
        }
        Ok(SessionManager {
            inner: Arc::new(ManagerInner {
                config: self.config,
                cookie_name,
                cookie_format,
                keys,
                beaker_cookie,
                backend,
                clock: self.clock,
                counters,
                verified: VerifiedCookies::with(
                    VERIFIED_COOKIES,
                    VERIFIED_COOKIES as u64,
                    quick_cache::UnitWeighter,
                    foldhash::fast::RandomState::default(),
                    quick_cache::sync::DefaultLifecycle::default(),
                ),
            }),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembered_cookie_values_compare_whole_and_long_ones_are_not_remembered() {
        let a = CookieValue::of("abc.def").unwrap();
        assert!(a == CookieValue::of("abc.def").unwrap());
        assert!(a != CookieValue::of("abc.deg").unwrap());
        assert!(a != CookieValue::of("abc.de").unwrap(), "a prefix is another value");
        assert!(a != CookieValue::of("abc.def\0").unwrap(), "the length counts, not only the bytes");
        assert!(CookieValue::of(&"x".repeat(MAX_REMEMBERED)).is_some());
        assert!(CookieValue::of(&"x".repeat(MAX_REMEMBERED + 1)).is_none());
    }
}
