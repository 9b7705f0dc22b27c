//! The state of one request's session: where its data came from (the [`Phase`]) and what
//! the request did to it (the [`Data`] view and its delta). `SessionManager::finish` is
//! one `match` over the phase.

use std::collections::{BTreeMap, BTreeSet};
use std::time::SystemTime;

use crate::error::{Error, StoreError};
use crate::id::{SessionId, StoreKey};
use crate::store::Owner;

/// A session record this request loaded: its id and timestamps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Stored {
    pub(crate) id: SessionId,
    pub(crate) created: SystemTime,
    pub(crate) accessed: SystemTime,
}

/// Why a session is [`Phase::Ended`] for this request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EndedBy {
    /// The request's id was retired a moment ago (a logout or regeneration elsewhere).
    Retired,
    /// The record went between this request's load and its write (logout, regeneration,
    /// expiry or revocation elsewhere).
    Vanished,
}

/// The lifecycle of a session within one request.
///
/// ```text
/// Untouched ──load──► Loaded(None | Some) ──change──► Changed ──┐
///     │                   │   └────regenerate_id────► Regenerating
///     │                   │                                     │ finish: record gone
///     ├──load: retired──► Ended ◄───────────────────────────────┘
///     └──load: outage───► Failed
/// invalidate (any phase) ──► Loaded(None), the old ids ended at finish
/// ```
///
/// `None` in `Loaded`, `Changed` and `Regenerating` is a new session (no record: no
/// cookie, an expired or unknown id, or one invalidated by this request); `Some` is the
/// record that was loaded.
#[derive(Debug, Default)]
pub(crate) enum Phase {
    /// Nothing was loaded yet.
    #[default]
    Untouched,
    /// Loaded; not changed (yet).
    Loaded(Option<Stored>),
    /// Changed by this request (the delta is in [`Data`]).
    Changed(Option<Stored>),
    /// To move to a fresh id at finish, with this request's changes if any.
    Regenerating(Option<Stored>),
    /// The session ended: this request's changes are dropped, no cookie is sent.
    Ended(EndedBy),
    /// The store could not be reached while loading. `Some`: the `fail` policy, and
    /// `finish` reports the error; `None`: the `continue` policy, the request went on with
    /// an empty session, and its changes are dropped (they were made without the stored
    /// data, and must not replace it).
    Failed(Option<StoreError>),
}

impl Phase {
    /// The record behind the session, if it was loaded and is still this request's.
    pub(crate) fn stored(&self) -> Option<&Stored> {
        match self {
            Phase::Loaded(s) | Phase::Changed(s) | Phase::Regenerating(s) => s.as_ref(),
            Phase::Untouched | Phase::Ended(_) | Phase::Failed(_) => None,
        }
    }

    /// The error to report again, under the `fail` policy.
    pub(crate) fn failure(&self) -> Option<Error> {
        match self {
            Phase::Failed(Some(e)) => Some(Error::Store(e.summary())),
            _ => None,
        }
    }

    /// A change was made to the data.
    fn changed(&mut self) {
        if let Phase::Loaded(stored) = self {
            *self = Phase::Changed(stored.take());
        }
    }

    /// `regenerate_id` was called.
    pub(crate) fn regenerate(&mut self) {
        match self {
            Phase::Loaded(stored) | Phase::Changed(stored) => *self = Phase::Regenerating(stored.take()),
            // An ended or failed session has nothing to move; untouched cannot happen
            // (regenerating loads first).
            Phase::Regenerating(_) | Phase::Ended(_) | Phase::Failed(_) | Phase::Untouched => {}
        }
    }
}

/// The session's entries as this request sees them, and the delta it made.
#[derive(Debug, Default)]
pub(crate) struct Data {
    /// The current view: loaded entries with this request's changes applied.
    pub(crate) entries: BTreeMap<String, Vec<u8>>,
    pub(crate) set: BTreeMap<String, Vec<u8>>,
    pub(crate) remove: BTreeSet<String>,
    pub(crate) clear: bool,
    /// Who the session belongs to, as this request sees it (loaded, or set by it).
    pub(crate) owner: Option<Owner>,
    /// This request set `owner`: the write files the session under it.
    pub(crate) owner_set: bool,
}

impl Data {
    pub(crate) fn is_dirty(&self) -> bool {
        self.clear || !self.set.is_empty() || !self.remove.is_empty() || self.owner_set
    }

    /// Whether a new session has anything to save (entries or an owner).
    pub(crate) fn has_content(&self) -> bool {
        !self.entries.is_empty() || self.owner.is_some()
    }
}

/// Everything the engine keeps for one request's session.
#[derive(Debug, Default)]
pub(crate) struct State {
    pub(crate) phase: Phase,
    pub(crate) data: Data,
    /// The request's `Cookie` header values that mention our cookie name, unparsed (empty
    /// once parsed): our cookies are read, verified (server-side) or decrypted
    /// (cookie-only) on first use.
    pub(crate) raw_cookies: Vec<u8>,
    /// The request carried our cookie (valid or not); known once `raw_cookies` is parsed.
    pub(crate) cookie_seen: bool,
    /// A correctly signed id (server-side) read from the request, once verified; not yet
    /// known to exist.
    pub(crate) cookie_id: Option<SessionId>,
    /// The cookie was signed or sealed with an older secret.
    pub(crate) stale_key: bool,
    /// The store key of the last id this request used, and that id.
    pub(crate) store_key: Option<(SessionId, StoreKey)>,
    /// Ids this request invalidated: their sessions are ended at finish.
    pub(crate) doomed: Vec<SessionId>,
    pub(crate) invalidated: bool,
}

impl State {
    /// Sets `key` (a no-op when the value is unchanged).
    pub(crate) fn put(&mut self, key: &str, bytes: Vec<u8>) {
        let d = &mut self.data;
        if d.entries.get(key) == Some(&bytes) {
            return;
        }
        d.remove.remove(key);
        d.set.insert(key.to_owned(), bytes.clone());
        match d.entries.get_mut(key) {
            Some(value) => *value = bytes,
            None => {
                d.entries.insert(key.to_owned(), bytes);
            }
        }
        self.phase.changed();
    }

    /// Removes `key`, returning its value.
    pub(crate) fn take(&mut self, key: &str) -> Option<Vec<u8>> {
        let d = &mut self.data;
        let old = d.entries.remove(key)?;
        d.set.remove(key);
        d.remove.insert(key.to_owned());
        self.phase.changed();
        Some(old)
    }

    /// Removes every entry.
    pub(crate) fn clear(&mut self) {
        let d = &mut self.data;
        if !d.entries.is_empty() {
            d.entries.clear();
            d.set.clear();
            d.remove.clear();
            d.clear = true;
            self.phase.changed();
        }
    }

    /// Gives the session an owner (a no-op when it is the owner already).
    pub(crate) fn set_owner(&mut self, owner: Owner) {
        if self.data.owner.as_ref() == Some(&owner) {
            return;
        }
        self.data.owner = Some(owner);
        self.data.owner_set = true;
        self.phase.changed();
    }

    /// `invalidate`: the session's ids are ended at finish; the handle goes on as a
    /// brand-new session (nothing of the old one is carried over).
    pub(crate) fn invalidate(&mut self, cookie_id: Option<SessionId>) {
        let old = std::mem::take(&mut self.phase);
        let id = match old {
            Phase::Loaded(Some(s)) | Phase::Changed(Some(s)) | Phase::Regenerating(Some(s)) => Some(s.id),
            _ => cookie_id,
        };
        self.doomed.extend(id);
        self.cookie_id = None;
        self.data = Data::default();
        self.phase = Phase::Loaded(None);
        self.invalidated = true;
    }
}

#[cfg(test)]
mod tests {
    use std::time::UNIX_EPOCH;

    use super::*;

    fn stored() -> Stored {
        Stored { id: SessionId::generate(), created: UNIX_EPOCH, accessed: UNIX_EPOCH }
    }

    fn loaded() -> State {
        State { phase: Phase::Loaded(Some(stored())), ..State::default() }
    }

    #[test]
    fn a_change_moves_loaded_to_changed_and_keeps_the_record() {
        let mut st = loaded();
        let s = st.phase.stored().cloned();
        st.put("a", b"j1".to_vec());
        assert!(matches!(&st.phase, Phase::Changed(got) if *got == s));
        assert!(st.data.is_dirty());
    }

    #[test]
    fn an_unchanged_value_stays_loaded() {
        let mut st = loaded();
        st.data.entries.insert("a".into(), b"j1".to_vec());
        st.put("a", b"j1".to_vec());
        assert!(matches!(st.phase, Phase::Loaded(Some(_))));
        assert!(st.take("missing").is_none());
        assert!(matches!(st.phase, Phase::Loaded(Some(_))));
        st.take("a");
        assert!(matches!(st.phase, Phase::Changed(Some(_))));
    }

    #[test]
    fn clear_of_nothing_is_no_change() {
        let mut st = loaded();
        st.clear();
        assert!(matches!(st.phase, Phase::Loaded(Some(_))));
        st.data.entries.insert("a".into(), b"j1".to_vec());
        st.clear();
        assert!(matches!(st.phase, Phase::Changed(Some(_))) && st.data.clear);
    }

    #[test]
    fn regenerate_keeps_the_record_and_later_changes_stay_regenerating() {
        let mut st = loaded();
        st.phase.regenerate();
        assert!(matches!(st.phase, Phase::Regenerating(Some(_))));
        st.put("user", b"j1".to_vec());
        assert!(matches!(st.phase, Phase::Regenerating(Some(_))));
        let mut changed = loaded();
        changed.put("a", b"j1".to_vec());
        changed.phase.regenerate();
        assert!(matches!(changed.phase, Phase::Regenerating(Some(_))));
    }

    #[test]
    fn an_ended_or_failed_session_stays_so() {
        for mut phase in [Phase::Ended(EndedBy::Retired), Phase::Failed(None)] {
            phase.regenerate();
            let mut st = State { phase, ..State::default() };
            st.put("a", b"j1".to_vec());
            assert!(matches!(st.phase, Phase::Ended(_) | Phase::Failed(None)), "{:?}", st.phase);
            assert!(st.phase.stored().is_none());
        }
    }

    #[test]
    fn only_a_fail_policy_failure_is_reported_again() {
        let failed = Phase::Failed(Some(StoreError::Unavailable { message: "down".into(), source: None }));
        assert!(matches!(failed.failure(), Some(Error::Store(StoreError::Unavailable { .. }))));
        assert!(Phase::Failed(None).failure().is_none());
        assert!(Phase::Ended(EndedBy::Vanished).failure().is_none());
    }

    #[test]
    fn invalidate_dooms_the_loaded_id_and_starts_afresh() {
        let mut st = loaded();
        let id = st.phase.stored().unwrap().id.clone();
        st.put("user", b"j1".to_vec());
        st.phase.regenerate();
        st.invalidate(None);
        assert_eq!(st.doomed, vec![id]);
        assert!(matches!(st.phase, Phase::Loaded(None)));
        assert!(st.data.entries.is_empty() && !st.data.is_dirty());
        // Writing afterwards starts a new session: nothing of the old one.
        st.put("b", b"j2".to_vec());
        assert!(matches!(st.phase, Phase::Changed(None)));
    }

    #[test]
    fn setting_an_owner_is_a_change_once_and_invalidate_forgets_it() {
        let alice = Owner { principal: "alice".into(), device: None };
        let mut st = loaded();
        st.set_owner(alice.clone());
        assert!(matches!(st.phase, Phase::Changed(Some(_))) && st.data.is_dirty() && st.data.owner_set);
        // The same owner again is no change.
        let mut same = loaded();
        same.data.owner = Some(alice.clone());
        same.set_owner(alice.clone());
        assert!(matches!(same.phase, Phase::Loaded(Some(_))) && !same.data.is_dirty());
        // An owner alone is content worth saving for a new session.
        let mut fresh = State { phase: Phase::Loaded(None), ..State::default() };
        assert!(!fresh.data.has_content());
        fresh.set_owner(alice.clone());
        assert!(matches!(fresh.phase, Phase::Changed(None)) && fresh.data.has_content());
        // Set during a regeneration: still regenerating, and the owner moves with it.
        let mut regen = loaded();
        regen.phase.regenerate();
        regen.set_owner(alice);
        assert!(matches!(regen.phase, Phase::Regenerating(Some(_))) && regen.data.owner_set);
        regen.invalidate(None);
        assert!(regen.data.owner.is_none() && !regen.data.owner_set);
    }

    #[test]
    fn invalidate_of_a_retired_or_unloaded_session_dooms_the_cookie_id() {
        let cookie = SessionId::generate();
        for phase in [Phase::Untouched, Phase::Ended(EndedBy::Retired), Phase::Failed(None)] {
            let mut st = State { phase, ..State::default() };
            st.invalidate(Some(cookie.clone()));
            assert_eq!(st.doomed, vec![cookie.clone()]);
            assert!(matches!(st.phase, Phase::Loaded(None)) && st.invalidated);
        }
    }
}
