//! Sessions per user: listing the sessions of a principal, ending one, all, or all but
//! the current one, and the per-principal cap enforced at login.
//!
//! Ending goes through the store's `end` with the retire window, as a logout does: a
//! request that loaded an ended session before and writes after finds the tombstone and
//! its changes are dropped, so no request in flight brings an ended session back.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::SystemTime;

use crate::clock::saturating_add;
use crate::error::Error;
use crate::id::{SessionHandle, StoreKey};
use crate::manager::{ManagerInner, SessionManager};
use crate::session::Session;
use crate::store::{Listed, SessionStore};

/// One session of a principal, as [`SessionManager::sessions_of`] lists it: safe to show
/// to its user ("your devices") or an operator. It carries no session id and no data.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SessionInfo {
    /// The session's handle: pass it to [`SessionManager::end_session`]. Never a usable
    /// session id.
    pub handle: SessionHandle,
    /// When the session was created (a regenerated id keeps it).
    pub created: SystemTime,
    /// When the session was last used, as far as the store was told (reads refresh it
    /// once per touch interval).
    pub last_used: SystemTime,
    /// When the session expires unless used again.
    pub expires: Option<SystemTime>,
    /// What the application recorded with [`Session::set_device`], if anything.
    pub device: Option<String>,
}

/// How many times ending a principal's sessions lists them again: a session renamed
/// (logged in again) between a listing and its end is under a new key, which the next
/// listing finds.
const END_ROUNDS: usize = 3;

impl SessionManager {
    /// The live sessions of `principal`, newest first (by creation; the handle breaks
    /// ties).
    ///
    /// # Errors
    /// [`StoreError::Unsupported`](crate::StoreError::Unsupported) (HTTP 501) for
    /// cookie-only sessions and stores without a principal index; store failures.
    pub async fn sessions_of(&self, principal: &str) -> Result<Vec<SessionInfo>, Error> {
        let mut out: Vec<SessionInfo> = self.inner.live_sessions_of(principal).await?.iter().map(info).collect();
        out.sort_by(|a, b| b.created.cmp(&a.created).then_with(|| a.handle.cmp(&b.handle)));
        Ok(out)
    }

    /// Ends the session named `handle`, if it is live and, when `principal` is given,
    /// belongs to that principal (so that a user can end only their own sessions; pass
    /// `None` for an operator's tool). Returns whether a session was ended. The session
    /// ends as by a logout: its id is retired, and no request in flight brings it back.
    ///
    /// # Errors
    /// As for [`sessions_of`](Self::sessions_of) (and, without a principal, when the
    /// store cannot look a handle up).
    pub async fn end_session(&self, principal: Option<&str>, handle: &SessionHandle) -> Result<bool, Error> {
        let key = match principal {
            Some(principal) => self
                .inner
                .live_sessions_of(principal)
                .await?
                .into_iter()
                .find(|l| SessionHandle::of(&l.key) == *handle)
                .map(|l| l.key),
            None => self.inner.backend.find(handle).await?,
        };
        let Some(key) = key else { return Ok(false) };
        self.inner.end_keys(std::slice::from_ref(&key)).await?;
        Ok(true)
    }

    /// Ends every session of `principal` ("sign out everywhere", after a password change
    /// say). Returns how many were ended. A session created for the principal after this
    /// call started may survive it.
    pub async fn end_principal(&self, principal: &str) -> Result<u64, Error> {
        self.inner.end_all_but(principal, None).await
    }

    /// Ends every session of `principal` except `keep`, the session of the request
    /// calling it ("sign out my other devices"). Returns how many were ended.
    pub async fn end_principal_except(&self, principal: &str, keep: &Session) -> Result<u64, Error> {
        let keep = keep.handle().await?;
        self.inner.end_all_but(principal, keep.as_ref()).await
    }

    /// Logs `session`'s user out everywhere: every other session of its principal ends
    /// now, and `session` itself is invalidated (ended when the request finishes, with a
    /// removal cookie). Returns the number of sessions ended, this one included if it
    /// was saved. A session without a principal is only invalidated.
    pub async fn end_everywhere(&self, session: &Session) -> Result<u64, Error> {
        let this = session.handle().await?;
        let others = match session.principal().await? {
            Some(principal) => self.inner.end_all_but(&principal, this.as_ref()).await?,
            None => 0,
        };
        session.invalidate().await?;
        Ok(others + u64::from(this.is_some()))
    }

    /// The manager's store, for tools that list, count or inspect sessions (the
    /// enumeration methods of [`SessionStore`]); `None` for cookie-only sessions. Records
    /// are filed under [`StoreKey`]s derived from the ids with the manager's `hash_ids`.
    pub fn store(&self) -> Option<Arc<dyn SessionStore>> {
        self.inner.backend.store()
    }
}

fn info(l: &Listed) -> SessionInfo {
    SessionInfo {
        handle: SessionHandle::of(&l.key),
        created: l.created,
        last_used: l.accessed,
        expires: l.expires,
        device: l.owner.as_ref().and_then(|o| o.device.clone()),
    }
}

impl ManagerInner {
    /// The store's listing of `principal`, without what the manager's own timeouts have
    /// ended (a store keeps a record until its stored expiry; the idle timeout counted
    /// from the last use may end it first).
    async fn live_sessions_of(&self, principal: &str) -> Result<Vec<Listed>, Error> {
        let now = self.clock.now();
        let mut listed = self.backend.sessions_of(principal).await?;
        listed.retain(|l| self.listed_alive(l, now));
        Ok(listed)
    }

    fn listed_alive(&self, l: &Listed, now: SystemTime) -> bool {
        let expired = l.expires.is_some_and(|e| e <= now)
            || self.config.absolute_timeout.is_some_and(|cap| saturating_add(l.created, cap) <= now)
            || (self.config.save_accessed_time
                && self.config.timeout.is_some_and(|t| saturating_add(l.accessed, t) <= now));
        !expired
    }

    async fn end_keys(&self, keys: &[StoreKey]) -> Result<(), Error> {
        for key in keys {
            self.backend.end(key, self.config.retired_window).await?;
        }
        self.counters.ended.increment(keys.len() as u64);
        Ok(())
    }

    /// Ends the sessions of `principal` but the one named `keep`, listing again until no
    /// other is left (a few rounds at most).
    async fn end_all_but(&self, principal: &str, keep: Option<&SessionHandle>) -> Result<u64, Error> {
        let mut ended: HashSet<StoreKey> = HashSet::new();
        for _ in 0..END_ROUNDS {
            let targets: Vec<StoreKey> = self
                .live_sessions_of(principal)
                .await?
                .into_iter()
                .map(|l| l.key)
                .filter(|k| !ended.contains(k) && keep.is_none_or(|h| SessionHandle::of(k) != *h))
                .collect();
            if targets.is_empty() {
                break;
            }
            self.end_keys(&targets).await?;
            ended.extend(targets);
        }
        Ok(ended.len() as u64)
    }

    /// At a login of `principal` into the session under `current`: ends the least
    /// recently used other sessions of `principal` beyond `cap` (the new one counts).
    pub(crate) async fn end_beyond_cap(&self, principal: &str, current: &StoreKey, cap: usize) -> Result<(), Error> {
        let mut others: Vec<Listed> =
            self.live_sessions_of(principal).await?.into_iter().filter(|l| l.key != *current).collect();
        if others.len() < cap {
            return Ok(());
        }
        // Most recently used first; the ones past the cap go.
        others.sort_by(|a, b| b.accessed.cmp(&a.accessed).then_with(|| b.created.cmp(&a.created)));
        let beyond: Vec<StoreKey> = others.into_iter().skip(cap.saturating_sub(1)).map(|l| l.key).collect();
        tracing::debug!(count = beyond.len(), "ending sessions beyond max_sessions_per_principal");
        self.end_keys(&beyond).await
    }
}
