//! The end of a request: what `SessionManager::finish` writes for each [`Phase`].
//!
//! The rule it enforces: a session that ended (logout, regeneration, expiry, revocation)
//! is never written again, under any id, and no response sets a cookie carrying it.

use std::sync::atomic::Ordering;
use std::time::SystemTime;

use crate::compat::cookie_session::{BOOKKEEPING, MAX_SIGNED, RESERVED_KEYS};
use crate::cookie_store::{self, ID_ENTRY};
use crate::cookies::SetCookie;
use crate::error::{Error, StoreError};
use crate::id::SessionId;
use crate::manager::ManagerInner;
use crate::serializer::DataSerializer;
use crate::session::SessionInner;
use crate::state::{Data, EndedBy, Phase, State, Stored};
use crate::store::{Changes, Record};

/// How many fresh ids to try before giving up on a create (a collision of 192-bit random
/// ids means a broken random source, not bad luck).
const CREATE_ATTEMPTS: usize = 3;

/// What a finish wrote.
enum Written {
    /// Nothing to write, or nothing that needs a cookie.
    Nothing,
    /// The session's cookie: a fresh id, or the same one re-signed.
    Cookie(SetCookie),
    /// The request's changes were dropped: the session had ended, or the request ran
    /// without its stored data.
    Dropped,
}

impl ManagerInner {
    pub(crate) async fn finish(&self, session: &SessionInner, st: &mut State) -> Result<Vec<SetCookie>, Error> {
        if let Some(err) = st.phase.failure() {
            return Err(err);
        }
        let doomed = std::mem::take(&mut st.doomed);
        for id in &doomed {
            self.backend.end(&self.key(id), self.config.retired_window).await?;
        }
        if !doomed.is_empty() {
            self.counters.ended.increment(doomed.len() as u64);
        }
        let now = self.clock.now();
        // A login (the write that sets the principal) enforces the per-principal cap once
        // the session is saved under its final key.
        let login = match (&st.data.owner, self.config.max_sessions_per_principal) {
            (Some(owner), Some(cap)) if st.data.owner_set => Some((owner.principal.clone(), cap)),
            _ => None,
        };
        let written =
            if self.backend.is_cookie() { self.finish_cookie(st, now)? } else { self.finish_server(st, now).await? };
        if let (Some((principal, cap)), Some(stored)) = (login, st.phase.stored()) {
            let id = stored.id.clone();
            let current = self.cached_key(st, &id).clone();
            self.end_beyond_cap(&principal, &current, cap).await?;
        }
        let mut out = Vec::new();
        match written {
            Written::Cookie(cookie) => out.push(cookie),
            Written::Dropped => {
                tracing::info!("session ended or unavailable while the request ran; its changes were dropped");
                session.dropped.store(true, Ordering::Relaxed);
            }
            Written::Nothing if st.invalidated && (st.cookie_seen || !doomed.is_empty()) => {
                out.push(self.cookie_format.removal())
            }
            Written::Nothing => {}
        }
        Ok(out)
    }

    /// The write for a server-side store: one `match` over the phase.
    async fn finish_server(&self, st: &mut State, now: SystemTime) -> Result<Written, Error> {
        match std::mem::take(&mut st.phase) {
            Phase::Untouched => Ok(Written::Nothing),
            // `failure()` returned the `fail` policy's error above.
            Phase::Failed(e) => {
                let dirty = st.data.is_dirty();
                st.phase = Phase::Failed(e);
                Ok(if dirty { Written::Dropped } else { Written::Nothing })
            }
            Phase::Ended(by) => {
                let dirty = st.data.is_dirty();
                st.phase = Phase::Ended(by);
                Ok(if dirty { Written::Dropped } else { Written::Nothing })
            }
            Phase::Loaded(None) => {
                st.phase = Phase::Loaded(None);
                Ok(Written::Nothing)
            }
            Phase::Loaded(Some(stored)) => self.touch_or_resign(st, stored, now).await,
            Phase::Changed(None) | Phase::Regenerating(None) => self.create(st, now).await,
            Phase::Changed(Some(stored)) => {
                let changes = self.take_changes(&mut st.data, stored.created, now);
                let applied = self.backend.apply(self.cached_key(st, &stored.id), &changes).await?;
                if !applied {
                    return Ok(self.vanished(st));
                }
                self.counters.saved.increment(1);
                let cookie = self.cookie_refresh(st).then(|| self.cookie_for(&stored.id, now));
                st.stale_key = false;
                st.phase = Phase::Loaded(Some(Stored { accessed: now, ..stored }));
                Ok(cookie.map_or(Written::Nothing, Written::Cookie))
            }
            Phase::Regenerating(Some(stored)) => {
                let changes = self.take_changes(&mut st.data, stored.created, now);
                let from = self.cached_key(st, &stored.id).clone();
                // No retry under another id: a record under a fresh 192-bit id means a broken
                // random source, and the store reports it as an error.
                let id = SessionId::generate();
                if !self.backend.rename(&from, &self.key(&id), &changes, self.config.retired_window).await? {
                    return Ok(self.vanished(st));
                }
                self.counters.saved.increment(1);
                st.stale_key = false;
                let cookie = self.cookie_for(&id, now);
                st.phase = Phase::Loaded(Some(Stored { id, created: stored.created, accessed: now }));
                Ok(Written::Cookie(cookie))
            }
        }
    }

    /// A loaded, unchanged session: a touch when the idle timeout asks for one, and the
    /// cookie again when its key is old (rotation) or its `Max-Age` slides. A re-signed
    /// cookie always follows a successful touch, so it is never sent for a session that
    /// ended meanwhile.
    async fn touch_or_resign(&self, st: &mut State, stored: Stored, now: SystemTime) -> Result<Written, Error> {
        let touch = self.touch_due(stored.accessed, now) || st.stale_key;
        st.phase = Phase::Loaded(Some(stored.clone()));
        if !touch {
            return Ok(Written::Nothing);
        }
        let expires = self.expiry(stored.created, now);
        let touched = self.backend.touch(self.cached_key(st, &stored.id), now, expires).await?;
        if !touched {
            st.phase = Phase::Ended(EndedBy::Vanished);
            return Ok(Written::Nothing);
        }
        let cookie = self.cookie_refresh(st).then(|| self.cookie_for(&stored.id, now));
        st.stale_key = false;
        st.phase = Phase::Loaded(Some(Stored { accessed: now, ..stored }));
        Ok(cookie.map_or(Written::Nothing, Written::Cookie))
    }

    /// A new session (or one this request invalidated and wrote again): created under a
    /// fresh id with this request's data only.
    async fn create(&self, st: &mut State, now: SystemTime) -> Result<Written, Error> {
        if !st.data.has_content() {
            st.data = Data::default();
            st.phase = Phase::Loaded(None);
            return Ok(Written::Nothing);
        }
        let record = Record {
            entries: st.data.entries.clone(),
            created: now,
            accessed: now,
            expires: self.expiry(now, now),
            owner: st.data.owner.clone(),
        };
        let mut created = None;
        for _ in 0..CREATE_ATTEMPTS {
            let id = SessionId::generate();
            if self.backend.create(&self.key(&id), &record).await? {
                created = Some(id);
                break;
            }
        }
        let id = created.ok_or_else(Self::no_fresh_id)?;
        self.counters.created.increment(1);
        self.counters.saved.increment(1);
        st.data.set.clear();
        st.data.remove.clear();
        st.data.clear = false;
        st.data.owner_set = false;
        let cookie = self.cookie_for(&id, now);
        st.phase = Phase::Loaded(Some(Stored { id, created: now, accessed: now }));
        Ok(Written::Cookie(cookie))
    }

    /// The record went between load and write: the session ended elsewhere.
    fn vanished(&self, st: &mut State) -> Written {
        tracing::debug!("session record gone before saving; the request's changes are dropped");
        st.phase = Phase::Ended(EndedBy::Vanished);
        Written::Dropped
    }

    fn no_fresh_id() -> Error {
        Error::Store(StoreError::Backend { message: "could not write a session under a fresh id".into(), source: None })
    }

    /// The request's delta, taken out of `data` (a second finish writes nothing again).
    fn take_changes(&self, data: &mut Data, created: SystemTime, now: SystemTime) -> Changes {
        let changes = Changes {
            clear: data.clear,
            set: std::mem::take(&mut data.set),
            remove: std::mem::take(&mut data.remove),
            accessed: now,
            expires: self.expiry(created, now),
            // Only when this request set it: a write that did not must not move the key
            // in the store's index.
            owner: if data.owner_set { data.owner.clone() } else { None },
        };
        data.clear = false;
        data.owner_set = false;
        changes
    }

    /// The write for cookie-only sessions: the cookie is the record. It cannot be
    /// revoked: an ended cookie-only session replays until its expiry wherever a copy is.
    fn finish_cookie(&self, st: &mut State, now: SystemTime) -> Result<Written, Error> {
        let (stored, regenerate) = match std::mem::take(&mut st.phase) {
            Phase::Untouched => return Ok(Written::Nothing),
            // No store: a cookie session cannot be retired or fail to load.
            phase @ (Phase::Ended(_) | Phase::Failed(_) | Phase::Loaded(None)) => {
                st.phase = phase;
                return Ok(Written::Nothing);
            }
            Phase::Loaded(Some(stored)) => {
                if !(self.touch_due(stored.accessed, now) || st.stale_key) {
                    st.phase = Phase::Loaded(Some(stored));
                    return Ok(Written::Nothing);
                }
                (Some(stored), false)
            }
            Phase::Changed(stored) => (stored, false),
            Phase::Regenerating(stored) => (stored, true),
        };
        // The id (and, in Beaker's format, `_domain` / `_path`) are not data of their own.
        let has_data = st.data.entries.keys().any(|k| !BOOKKEEPING.contains(&k.as_str())) || st.data.owner.is_some();
        if !has_data {
            // Emptied: the cookie itself must go.
            st.phase = Phase::Loaded(None);
            return Ok(match stored {
                Some(_) => Written::Cookie(self.cookie_format.removal()),
                None => Written::Nothing,
            });
        }
        let id = match (&stored, regenerate) {
            (Some(s), false) => s.id.clone(),
            _ => SessionId::generate(),
        };
        if self.beaker_cookie.is_some() {
            if let Some(k) = st.data.entries.keys().find(|k| RESERVED_KEYS.contains(&k.as_str())) {
                // Beaker's dict has one namespace: `_id` of the application's would replace the id.
                st.phase = match regenerate {
                    true => Phase::Regenerating(stored),
                    false => Phase::Changed(stored),
                };
                return Err(Error::ReservedKey(k.clone()));
            }
        }
        let created = stored.as_ref().map_or(now, |s| s.created);
        if stored.is_none() {
            self.counters.created.increment(1);
        }
        self.counters.saved.increment(1);
        let expires = self.expiry(created, now);
        let sealed = match &self.beaker_cookie {
            None => Ok(cookie_store::seal(
                &self.keys,
                &self.config.key,
                &cookie_store::Content {
                    id: &id,
                    created,
                    accessed: now,
                    expires,
                    entries: &st.data.entries,
                    owner: st.data.owner.as_ref(),
                },
            )),
            // Beaker's cookie has no place for an owner: refused rather than dropped.
            Some(_) if st.data.owner.is_some() => {
                Err(Error::Store(StoreError::unsupported("beaker cookie", "a principal (set_principal)")))
            }
            Some(codec) => beaker_record(&st.data.entries, &id, created, now, expires)
                .and_then(|record| {
                    codec.seal(&record, self.config.domain.as_deref(), &self.config.path).map_err(Error::Store)
                })
                // Beaker refuses to write (and so never expects) a value past its own limit.
                .and_then(|v| match v.len() > MAX_SIGNED {
                    true => Err(Error::CookieTooLarge { size: v.len(), limit: MAX_SIGNED }),
                    false => Ok(v),
                }),
        };
        let sealed = match sealed {
            Ok(v) => v,
            Err(e) => {
                st.phase = match regenerate {
                    true => Phase::Regenerating(stored),
                    false => Phase::Changed(stored),
                };
                return Err(e);
            }
        };
        let cookie = self.cookie_format.session(&self.config, sealed, now);
        if cookie.as_str().len() > self.config.cookie_limit {
            st.phase = match regenerate {
                true => Phase::Regenerating(stored),
                false => Phase::Changed(stored),
            };
            return Err(Error::CookieTooLarge { size: cookie.as_str().len(), limit: self.config.cookie_limit });
        }
        st.data.set.clear();
        st.data.remove.clear();
        st.data.clear = false;
        st.data.owner_set = false;
        st.stale_key = false;
        st.phase = Phase::Loaded(Some(Stored { id, created, accessed: now }));
        Ok(Written::Cookie(cookie))
    }
}

/// The record Beaker's cookie format seals: the data, with the id among the entries.
fn beaker_record(
    data: &std::collections::BTreeMap<String, Vec<u8>>,
    id: &SessionId,
    created: SystemTime,
    accessed: SystemTime,
    expires: Option<SystemTime>,
) -> Result<Record, Error> {
    let mut entries = data.clone();
    let id_bytes =
        DataSerializer::Json.encode(id.expose()).map_err(|source| Error::Serialize { key: ID_ENTRY.into(), source })?;
    entries.insert(ID_ENTRY.to_owned(), id_bytes);
    Ok(Record { entries, created, accessed, expires, owner: None })
}
