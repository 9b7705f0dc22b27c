//! [`Session`]: the per-request session handle handlers use.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::SystemTime;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::Error;
use crate::id::{SessionHandle, SessionId};
use crate::manager::ManagerInner;
use crate::serializer::DataSerializer;
use crate::state::{Phase, State};
use crate::store::Owner;

/// Prefix of the keys beaker keeps for itself inside a session.
pub(crate) const RESERVED_PREFIX: &str = "_beaker.";
const FLASH_KEY: &str = "_beaker.flash";

/// The session of one request: a lazily loaded map of string keys to serde values.
///
/// Handles are cheap to clone and share one state. Nothing touches the store until a
/// method that needs the data is called; the first such call loads the record once.
/// Changes are tracked per key and written by
/// [`SessionManager::finish`](crate::SessionManager::finish) at the end of the request.
///
/// ```
/// # async fn demo(session: beaker_core::Session) -> Result<(), beaker_core::Error> {
/// let n: u64 = session.get("n").await?.unwrap_or(0);
/// session.insert("n", &(n + 1)).await?;
/// session.flash("saved").await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Session {
    pub(crate) inner: Arc<SessionInner>,
}

pub(crate) struct SessionInner {
    pub(crate) manager: Arc<ManagerInner>,
    /// futures-util's lock: releasing it uncontended is one atomic operation, where
    /// async-lock's allocates its waiter list on the first release of every session.
    pub(crate) state: futures_util::lock::Mutex<State>,
    /// Set before the state is first locked for use: until then `finish` has nothing to
    /// do, and [`Session::is_touched`] can say so without taking the lock.
    pub(crate) used: AtomicBool,
    /// Set by `finish` when it dropped this request's changes (see
    /// [`Session::changes_dropped`]).
    pub(crate) dropped: AtomicBool,
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the id or the data.
        f.debug_struct("Session").finish_non_exhaustive()
    }
}

/// The most bytes of a principal or a device.
pub(crate) const MAX_OWNER_TEXT: usize = 256;

/// The messages of [`check_owner_text`]: empty, too long, control characters.
const PRINCIPAL_PROBLEMS: [&str; 3] =
    ["the principal is empty", "the principal is longer than 256 bytes", "the principal holds control characters"];
const DEVICE_PROBLEMS: [&str; 3] =
    ["the device is empty", "the device is longer than 256 bytes", "the device holds control characters"];

fn check_owner_text(text: &str, problems: &[&'static str; 3]) -> Result<(), Error> {
    let problem = if text.is_empty() {
        0
    } else if text.len() > MAX_OWNER_TEXT {
        1
    } else if text.chars().any(char::is_control) {
        2
    } else {
        return Ok(());
    };
    Err(Error::InvalidOwner(problems[problem]))
}

fn check_key(key: &str) -> Result<(), Error> {
    if key.starts_with(RESERVED_PREFIX) {
        Err(Error::ReservedKey(key.to_owned()))
    } else {
        Ok(())
    }
}

impl Session {
    /// The state, locked for use.
    async fn state(&self) -> futures_util::lock::MutexGuard<'_, State> {
        self.inner.used.store(true, Ordering::Relaxed);
        self.inner.state.lock().await
    }

    async fn loaded(&self) -> Result<futures_util::lock::MutexGuard<'_, State>, Error> {
        let mut st = self.state().await;
        match &st.phase {
            Phase::Untouched => self.inner.manager.load(&mut st).await?,
            Phase::Failed(Some(_)) => return Err(st.phase.failure().expect("a failure")),
            _ => {}
        }
        Ok(st)
    }

    fn serializer(&self) -> DataSerializer {
        self.inner.manager.config.data_serializer
    }

    /// The value under `key`, read as `T`; `None` when absent.
    ///
    /// # Errors
    /// [`Error::Store`] when the store cannot be reached (under the `fail` policy), and
    /// [`Error::Deserialize`] when the stored value is not a `T`.
    pub async fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, Error> {
        let st = self.loaded().await?;
        match st.data.entries.get(key) {
            None => Ok(None),
            Some(bytes) => DataSerializer::decode(bytes)
                .map(Some)
                .map_err(|source| Error::Deserialize { key: key.to_owned(), source }),
        }
    }

    /// Sets `key` to `value`. Setting a value equal to the stored one changes nothing.
    pub async fn insert<T: Serialize + ?Sized>(&self, key: &str, value: &T) -> Result<(), Error> {
        check_key(key)?;
        let bytes =
            self.serializer().encode(value).map_err(|source| Error::Serialize { key: key.to_owned(), source })?;
        self.loaded().await?.put(key, bytes);
        Ok(())
    }

    /// Removes `key`; returns whether it was there.
    pub async fn remove(&self, key: &str) -> Result<bool, Error> {
        check_key(key)?;
        Ok(self.loaded().await?.take(key).is_some())
    }

    /// Removes `key` and returns its value read as `T`.
    pub async fn remove_as<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, Error> {
        check_key(key)?;
        match self.loaded().await?.take(key) {
            None => Ok(None),
            Some(bytes) => DataSerializer::decode(&bytes)
                .map(Some)
                .map_err(|source| Error::Deserialize { key: key.to_owned(), source }),
        }
    }

    /// Whether `key` is set.
    pub async fn contains_key(&self, key: &str) -> Result<bool, Error> {
        Ok(self.loaded().await?.data.entries.contains_key(key))
    }

    /// The application's keys, sorted (beaker's own reserved keys are left out).
    pub async fn keys(&self) -> Result<Vec<String>, Error> {
        Ok(self.loaded().await?.data.entries.keys().filter(|k| !k.starts_with(RESERVED_PREFIX)).cloned().collect())
    }

    /// Removes every key (the session and its id stay).
    pub async fn clear(&self) -> Result<(), Error> {
        self.loaded().await?.clear();
        Ok(())
    }

    /// The session id; `None` for a session that has not been saved yet (ids are issued
    /// when a session is first written, never taken from the request).
    pub async fn id(&self) -> Result<Option<SessionId>, Error> {
        Ok(self.loaded().await?.phase.stored().map(|s| s.id.clone()))
    }

    /// True when no saved session was found for this request.
    pub async fn is_new(&self) -> Result<bool, Error> {
        Ok(self.loaded().await?.phase.stored().is_none())
    }

    /// True when the session this request carried has ended: its id was retired a moment
    /// ago by a logout or a regeneration (typically by a parallel request of the same
    /// browser), or, after [`SessionManager::finish`](crate::SessionManager::finish), its
    /// record went while the request ran. Such a session reads as empty, and nothing the
    /// request changes in it is saved: the browser keeps the cookie the other request
    /// gave it.
    pub async fn has_ended(&self) -> Result<bool, Error> {
        Ok(matches!(self.loaded().await?.phase, Phase::Ended(_)))
    }

    /// Whether [`SessionManager::finish`](crate::SessionManager::finish) dropped this
    /// request's changes instead of saving them: the session had ended (logout,
    /// regeneration, expiry or revocation elsewhere), or the request ran with an empty
    /// session after a load failure under `on_store_error = continue`. Nothing of such a
    /// request is written under any id and no cookie is sent for it. Middleware that
    /// wants to tell the user ("your change was not saved: you were logged out") checks
    /// this after `finish`.
    pub fn changes_dropped(&self) -> bool {
        self.inner.dropped.load(Ordering::Relaxed)
    }

    /// When the session was created (`None` for a new session).
    pub async fn created(&self) -> Result<Option<SystemTime>, Error> {
        Ok(self.loaded().await?.phase.stored().map(|s| s.created))
    }

    /// When the session was last accessed before this request (`None` for a new session).
    pub async fn last_accessed(&self) -> Result<Option<SystemTime>, Error> {
        Ok(self.loaded().await?.phase.stored().map(|s| s.accessed))
    }

    /// When the session will expire if this request ends now (its idle timeout counted
    /// from this request when it writes or touches the session, capped by the absolute
    /// lifetime); `None` for a session with nothing saved or to save, or when no lifetime
    /// applies.
    pub async fn expires(&self) -> Result<Option<SystemTime>, Error> {
        let st = self.loaded().await?;
        Ok(self.inner.manager.projected_expiry(&st))
    }

    /// Gives the session a fresh id at the end of this request, keeping its data (and its
    /// creation time: the absolute lifetime is not restarted). The store moves the record
    /// in one step and retires the old id: a parallel request still carrying it gets no
    /// session and no cookie, and its changes are dropped unless they landed before the
    /// move (then they move too). Call it on login (against fixation).
    pub async fn regenerate_id(&self) -> Result<(), Error> {
        self.loaded().await?.phase.regenerate();
        Ok(())
    }

    /// Ends the session: its record is deleted, its id retired for the store's retire
    /// window, and the browser gets a removal cookie. A request that loaded the session
    /// before and writes after finds it gone, and its changes are dropped. The handle
    /// stays usable: writing to it afterwards starts a brand-new session, under a fresh id
    /// and with none of the old data.
    pub async fn invalidate(&self) -> Result<(), Error> {
        let mut st = self.state().await;
        // No need to load: the record goes whatever it holds.
        let cookie_id = match st.phase {
            Phase::Untouched => self.inner.manager.verified_cookie_id(&mut st),
            _ => st.cookie_id.clone(),
        };
        st.invalidate(cookie_id);
        Ok(())
    }

    /// Says who the session belongs to: the application's id for the user (a user id, a
    /// login name). The store files the session under it with this request's write, so
    /// that [`SessionManager::sessions_of`](crate::SessionManager::sessions_of) lists it
    /// and the user can end it from another device. Call it at login, together with
    /// [`regenerate_id`](Self::regenerate_id): the store moves the session to its new id
    /// and files it under the principal in one step. Setting the principal it already has
    /// changes nothing; a different one moves the session (and keeps its device).
    ///
    /// # Errors
    /// [`Error::InvalidOwner`] for an empty principal, one over 256 bytes or one with
    /// control characters; load errors as for [`get`](Self::get).
    pub async fn set_principal(&self, principal: impl Into<String>) -> Result<(), Error> {
        let principal = principal.into();
        check_owner_text(&principal, &PRINCIPAL_PROBLEMS)?;
        let mut st = self.loaded().await?;
        let device = st.data.owner.as_ref().and_then(|o| o.device.clone());
        st.set_owner(Owner { principal, device });
        Ok(())
    }

    /// Records a short description of the device the session is used from (a user agent,
    /// an address: whatever the application chooses to show in a list of the user's
    /// sessions), beside the principal. At most 256 bytes: truncate a user agent first.
    ///
    /// # Errors
    /// [`Error::InvalidOwner`] when the session has no principal yet, or for a device that
    /// is empty, over 256 bytes or holds control characters.
    pub async fn set_device(&self, device: impl Into<String>) -> Result<(), Error> {
        let device = device.into();
        check_owner_text(&device, &DEVICE_PROBLEMS)?;
        let mut st = self.loaded().await?;
        let Some(owner) = st.data.owner.clone() else {
            return Err(Error::InvalidOwner("a device needs a principal: call set_principal first"));
        };
        st.set_owner(Owner { device: Some(device), ..owner });
        Ok(())
    }

    /// Who the session belongs to (see [`set_principal`](Self::set_principal)); `None` for
    /// a session nobody claimed.
    pub async fn principal(&self) -> Result<Option<String>, Error> {
        Ok(self.loaded().await?.data.owner.as_ref().map(|o| o.principal.clone()))
    }

    /// The device recorded with [`set_device`](Self::set_device), if any.
    pub async fn device(&self) -> Result<Option<String>, Error> {
        Ok(self.loaded().await?.data.owner.as_ref().and_then(|o| o.device.clone()))
    }

    /// The handle of the stored session this request uses: the name under which
    /// [`SessionManager::sessions_of`](crate::SessionManager::sessions_of) lists it, safe
    /// to show (it is never a usable session id). `None` for a session not saved yet, an
    /// ended one, and cookie-only sessions (nothing is stored). For a session being
    /// regenerated it is the old id's handle until
    /// [`SessionManager::finish`](crate::SessionManager::finish) has moved the record, and
    /// the new one's after.
    pub async fn handle(&self) -> Result<Option<SessionHandle>, Error> {
        let mut st = self.loaded().await?;
        let manager = &self.inner.manager;
        if manager.backend.is_cookie() {
            return Ok(None);
        }
        let Some(id) = st.phase.stored().map(|s| s.id.clone()) else { return Ok(None) };
        Ok(Some(SessionHandle::of(manager.cached_key(&mut st, &id))))
    }

    /// Queues a flash message, to be read once by [`take_flashes`](Self::take_flashes) on a
    /// later request.
    pub async fn flash(&self, message: impl Into<String>) -> Result<(), Error> {
        let mut st = self.loaded().await?;
        let mut queue: Vec<String> =
            st.data.entries.get(FLASH_KEY).and_then(|b| DataSerializer::decode(b).ok()).unwrap_or_default();
        queue.push(message.into());
        let bytes = self
            .serializer()
            .encode(&queue)
            .map_err(|source| Error::Serialize { key: FLASH_KEY.to_owned(), source })?;
        st.put(FLASH_KEY, bytes);
        Ok(())
    }

    /// Takes (and clears) the queued flash messages, oldest first.
    pub async fn take_flashes(&self) -> Result<Vec<String>, Error> {
        let mut st = self.loaded().await?;
        Ok(st.take(FLASH_KEY).and_then(|b| DataSerializer::decode(&b).ok()).unwrap_or_default())
    }

    /// Whether any method that reads, changes or ends the session was called in this request
    /// (adapters need not call this; [`SessionManager::finish`](crate::SessionManager::finish)
    /// decides).
    ///
    /// When it returns `false`, [`finish`](crate::SessionManager::finish) has nothing to
    /// do and would return no cookie: adapters may skip it (and the allocation of its
    /// future) on requests that never used their session.
    pub fn is_touched(&self) -> bool {
        // A flag rather than a look at the state: no lock to take (and release) on every
        // request that never used its session.
        self.inner.used.load(Ordering::Relaxed)
    }
}
