//! The suite for a store's optional capabilities: the principal index (`sessions_of`) and
//! enumeration (`count`, `scan`, `find`), against the rules in the "principal index and
//! enumeration" section of [`SessionStore`]'s contract.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use beaker_core::store::{Changes, Listed, Owner, Record, SessionHandle, SessionStore, StoreKey};
use beaker_core::{SessionId, StoreError};

use super::{changes, close_to, fresh_key, record, EndRace, HOUR};

/// The retire window the checks end sessions with.
const WINDOW: Duration = Duration::from_secs(60);
/// Concurrent applies raced against one `end` through the index, and how many times.
const RACERS: usize = 16;
const RACE_TRIALS: usize = 8;

/// The conformance suite for the principal index and enumeration. Every built-in server
/// store runs it beside [`SessionStoreSuite`](super::SessionStoreSuite):
///
/// ```
/// use std::sync::Arc;
/// use beaker_core::MemoryStore;
/// use beaker_testkit::store::SessionIndexSuite;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// # if false {
/// SessionIndexSuite::new(Arc::new(MemoryStore::new())).run().await;
/// # }
/// # }
/// ```
///
/// Each check uses fresh principals and keys and ends what it wrote, so the suite can run
/// against a store that other tests share; it never assumes the store is empty.
pub struct SessionIndexSuite {
    store: Arc<dyn SessionStore>,
    scan_records: usize,
    page: usize,
}

impl std::fmt::Debug for SessionIndexSuite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionIndexSuite").field("store", &self.store.name()).finish_non_exhaustive()
    }
}

/// A principal no other test uses.
pub fn fresh_principal() -> String {
    format!("user-{}@example.com", &SessionId::generate().expose()[..12])
}

/// The one entry of an [`owned`] record, as a store sees it: `user`, the JSON string
/// `"ada"`. A listing gives such a record the size `user.len() + value.len()`.
pub const OWNED_ENTRY: (&str, &[u8]) = ("user", b"j\"ada\"");

/// The owner `principal`, on `device` if the application recorded one.
pub fn owner(principal: &str, device: Option<&str>) -> Owner {
    Owner { principal: principal.to_owned(), device: device.map(str::to_owned) }
}

/// A record of `principal` (on `device`) holding [`OWNED_ENTRY`], otherwise as
/// [`record`] makes it.
pub fn owned(principal: &str, device: Option<&str>, expires: Option<SystemTime>) -> Record {
    Record { owner: Some(owner(principal, device)), ..record(&[OWNED_ENTRY], expires) }
}

/// `changes` that also give the session to `owner`: a login, or a move to another
/// principal.
pub fn with_owner(mut changes: Changes, owner: Owner) -> Changes {
    changes.owner = Some(owner);
    changes
}

/// The keys `store` lists for `principal` (`sessions_of`), as text; panics naming the
/// store when listing fails.
pub async fn listed_keys(store: &dyn SessionStore, principal: &str) -> BTreeSet<String> {
    match store.sessions_of(principal).await {
        Ok(listed) => keys(&listed),
        Err(e) => panic!("[{}] sessions_of failed: {e}", store.name()),
    }
}

/// `keys` as text, to compare with [`listed_keys`].
pub fn key_set<'a>(keys: impl IntoIterator<Item = &'a StoreKey>) -> BTreeSet<String> {
    keys.into_iter().map(|k| k.as_str().to_owned()).collect()
}

/// A whole scan of `store`, `limit` sessions per page: the keys in the order they were
/// listed, and how many pages it took. Panics, naming the store, when a scan fails, a
/// page holds more than `limit` sessions, or an empty page is not the last.
pub async fn scan_whole(store: &dyn SessionStore, limit: usize) -> (Vec<String>, usize) {
    let name = store.name();
    let (mut seen, mut pages, mut cursor) = (Vec::new(), 0, None::<String>);
    loop {
        let page = match store.scan(cursor.as_deref(), limit).await {
            Ok(page) => page,
            Err(e) => panic!("[{name}] scan failed: {e}"),
        };
        pages += 1;
        assert!(page.items.len() <= limit, "[{name}] a page of {} items for a limit of {limit}", page.items.len());
        assert!(!page.items.is_empty() || page.next.is_none(), "[{name}] an empty page before the end");
        seen.extend(page.items.into_iter().map(|l| l.key.as_str().to_owned()));
        match page.next {
            Some(next) => cursor = Some(next),
            None => return (seen, pages),
        }
    }
}

pub(super) fn keys(listed: &[Listed]) -> BTreeSet<String> {
    key_set(listed.iter().map(|l| &l.key))
}

impl SessionIndexSuite {
    /// The suite for `store`: scans 250 records in pages of 7.
    pub fn new(store: Arc<dyn SessionStore>) -> Self {
        SessionIndexSuite { store, scan_records: 250, page: 7 }
    }

    /// How many records the scan check writes and lists (default 250), and the page size
    /// it asks for (default 7).
    pub fn with_scan(mut self, records: usize, page: usize) -> Self {
        self.scan_records = records;
        self.page = page.max(1);
        self
    }

    /// Runs every check; panics naming the first that fails.
    pub async fn run(self) {
        self.owner_round_trips().await;
        self.lists_the_live_sessions_of_a_principal().await;
        self.apply_moves_a_session_between_principals().await;
        self.rename_moves_the_index_entry().await;
        self.end_and_delete_unlist().await;
        self.expired_sessions_are_not_listed().await;
        self.scan_lists_each_live_session_once().await;
        self.find_by_handle().await;
        // "Sign out everywhere" while the user's other requests are writing: each write
        // lands before the end or is refused; afterwards the session is retired and unlisted.
        EndRace { trials: RACE_TRIALS, writers: RACERS, writes: 1, pause: Duration::ZERO, ..EndRace::default() }
            .run(self.store.clone())
            .await;
    }

    fn s(&self) -> &dyn SessionStore {
        self.store.as_ref()
    }

    fn ok<T>(&self, what: &str, r: Result<T, StoreError>) -> T {
        r.unwrap_or_else(|e| panic!("[{}] {what} failed: {e}", self.store.name()))
    }

    async fn create_owned(&self, principal: Option<&str>, device: Option<&str>) -> StoreKey {
        let k = fresh_key();
        let mut r = record(&[OWNED_ENTRY], Some(SystemTime::now() + HOUR));
        r.owner = principal.map(|p| owner(p, device));
        assert!(self.ok("create", self.s().create(&k, &r).await), "[{}] create of a fresh key", self.s().name());
        k
    }

    async fn listed(&self, principal: &str) -> Vec<Listed> {
        self.ok("sessions_of", self.s().sessions_of(principal).await)
    }

    async fn end_all(&self, ks: &[&StoreKey]) {
        for k in ks {
            self.ok("end", self.s().end(k, WINDOW).await);
        }
    }

    async fn owner_round_trips(&self) {
        let name = self.s().name();
        let p = fresh_principal();
        let k = self.create_owned(Some(&p), Some("Firefox on 203.0.113.7")).await;
        let loaded = self.ok("load", self.s().load(&k).await).expect("record");
        assert_eq!(loaded.owner, Some(owner(&p, Some("Firefox on 203.0.113.7"))), "[{name}] owner not kept by create");

        // A write that names no owner keeps the one the record has.
        let c = changes(&[("n", b"j1")], &[], Some(SystemTime::now() + HOUR));
        assert!(self.ok("apply", self.s().apply(&k, &c).await));
        let loaded = self.ok("load", self.s().load(&k).await).expect("record");
        assert_eq!(loaded.owner, Some(owner(&p, Some("Firefox on 203.0.113.7"))), "[{name}] apply lost the owner");
        assert!(self.ok("touch", self.s().touch(&k, SystemTime::now(), Some(SystemTime::now() + HOUR)).await));
        let loaded = self.ok("load", self.s().load(&k).await).expect("record");
        assert_eq!(
            loaded.owner.as_ref().map(|o| o.principal.as_str()),
            Some(p.as_str()),
            "[{name}] touch lost the owner"
        );

        // A write that names one replaces it, device included.
        let mut c = changes(&[], &[], Some(SystemTime::now() + HOUR));
        c.owner = Some(owner(&p, None));
        assert!(self.ok("apply", self.s().apply(&k, &c).await));
        let loaded = self.ok("load", self.s().load(&k).await).expect("record");
        assert_eq!(loaded.owner, Some(owner(&p, None)), "[{name}] apply did not set the owner");
        self.end_all(&[&k]).await;
    }

    async fn lists_the_live_sessions_of_a_principal(&self) {
        let name = self.s().name();
        let (p, q) = (fresh_principal(), fresh_principal());
        let a = self.create_owned(Some(&p), Some("phone")).await;
        let b = self.create_owned(Some(&p), None).await;
        let c = self.create_owned(Some(&p), Some("laptop")).await;
        let other = self.create_owned(Some(&q), None).await;
        let anonymous = self.create_owned(None, None).await;

        let listed = self.listed(&p).await;
        assert_eq!(keys(&listed), key_set([&a, &b, &c]), "[{name}] sessions_of lists exactly the principal's sessions");
        for l in &listed {
            let r = self.ok("load", self.s().load(&l.key).await).expect("listed record");
            assert_eq!(l.owner, r.owner, "[{name}] listed owner differs from the record's");
            assert_eq!(l.created, r.created, "[{name}] listed created differs from the record's");
            assert!(close_to(l.expires, r.expires), "[{name}] listed expiry differs from the record's");
            assert_eq!(l.size, (OWNED_ENTRY.0.len() + OWNED_ENTRY.1.len()) as u64, "[{name}] listed size");
        }
        assert_eq!(keys(&self.listed(&q).await), key_set([&other]), "[{name}] sessions_of of another principal");
        assert!(self.listed(&fresh_principal()).await.is_empty(), "[{name}] an unknown principal has sessions");

        // Last use is what the store was last told.
        let later = super::now_ms() + Duration::from_secs(30);
        assert!(self.ok("touch", self.s().touch(&b, later, Some(later + HOUR)).await));
        let listed = self.listed(&p).await;
        let lb = listed.iter().find(|l| l.key == b).expect("b listed");
        assert!(close_to(Some(lb.accessed), Some(later)), "[{name}] touch not seen in the listing's last use");

        self.end_all(&[&a, &b, &c, &other, &anonymous]).await;
    }

    async fn apply_moves_a_session_between_principals(&self) {
        let name = self.s().name();
        let (p, q) = (fresh_principal(), fresh_principal());
        let k = self.create_owned(None, None).await;
        let mut c = changes(&[("user", b"j\"p\"")], &[], Some(SystemTime::now() + HOUR));
        c.owner = Some(owner(&p, None));
        assert!(self.ok("apply", self.s().apply(&k, &c).await));
        assert_eq!(keys(&self.listed(&p).await), key_set([&k]), "[{name}] apply with an owner must index the session");
        c.owner = Some(owner(&q, None));
        assert!(self.ok("apply", self.s().apply(&k, &c).await));
        assert!(
            self.listed(&p).await.is_empty(),
            "[{name}] a session moved to another principal is still listed under the first"
        );
        assert_eq!(
            keys(&self.listed(&q).await),
            key_set([&k]),
            "[{name}] a session moved to another principal is not listed under it"
        );
        self.end_all(&[&k]).await;
    }

    async fn rename_moves_the_index_entry(&self) {
        let name = self.s().name();
        let p = fresh_principal();
        // Login: an anonymous session is renamed and gets its owner in the same step.
        let anon = self.create_owned(None, None).await;
        let logged_in = fresh_key();
        let mut c = changes(&[("user", b"j\"p\"")], &[], Some(SystemTime::now() + HOUR));
        c.owner = Some(owner(&p, Some("tablet")));
        assert!(self.ok("rename", self.s().rename(&anon, &logged_in, &c, WINDOW).await));
        assert_eq!(
            keys(&self.listed(&p).await),
            key_set([&logged_in]),
            "[{name}] rename with an owner must index the new key"
        );

        // A later regeneration keeps the owner and lists the new key in place of the old.
        let again = fresh_key();
        let c = changes(&[], &[], Some(SystemTime::now() + HOUR));
        assert!(self.ok("rename", self.s().rename(&logged_in, &again, &c, WINDOW).await));
        let listed = self.listed(&p).await;
        assert_eq!(keys(&listed), key_set([&again]), "[{name}] rename must list the new key instead of the old");
        assert_eq!(listed[0].owner, Some(owner(&p, Some("tablet"))), "[{name}] rename lost the owner");
        self.end_all(&[&again]).await;
    }

    async fn end_and_delete_unlist(&self) {
        let name = self.s().name();
        let p = fresh_principal();
        let ended = self.create_owned(Some(&p), None).await;
        let deleted = self.create_owned(Some(&p), None).await;
        let kept = self.create_owned(Some(&p), None).await;
        self.ok("end", self.s().end(&ended, WINDOW).await);
        self.ok("delete", self.s().delete(&deleted).await);
        assert_eq!(
            keys(&self.listed(&p).await),
            key_set([&kept]),
            "[{name}] ended or deleted sessions are still listed"
        );
        self.ok("end", self.s().end(&kept, Duration::ZERO).await);
        assert!(self.listed(&p).await.is_empty(), "[{name}] a session ended without a window is still listed");
    }

    async fn expired_sessions_are_not_listed(&self) {
        let name = self.s().name();
        let p = fresh_principal();
        let kept = self.create_owned(Some(&p), None).await;
        let short = fresh_key();
        let r = owned(&p, None, Some(SystemTime::now() + Duration::from_secs(1)));
        assert!(self.ok("create", self.s().create(&short, &r).await));
        // Wait until the store itself no longer returns the record (stores may round expiry
        // to whole seconds), then the index must agree at once.
        let deadline = SystemTime::now() + Duration::from_secs(10);
        while self.ok("load", self.s().load(&short).await).is_some() {
            assert!(SystemTime::now() < deadline, "[{name}] a record with a 1 s expiry still loads after 10 s");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        assert_eq!(keys(&self.listed(&p).await), key_set([&kept]), "[{name}] an expired session is listed");
        let _ = self.ok("cleanup", self.s().cleanup().await);
        assert_eq!(keys(&self.listed(&p).await), key_set([&kept]), "[{name}] cleanup changed the live listing");
        self.end_all(&[&kept]).await;
    }

    async fn scan_all(&self) -> BTreeMap<String, usize> {
        let name = self.s().name();
        let mut seen = BTreeMap::new();
        let mut cursor: Option<String> = None;
        loop {
            let page = self.ok("scan", self.s().scan(cursor.as_deref(), self.page).await);
            assert!(
                page.items.len() <= self.page,
                "[{name}] scan returned {} items for a limit of {}",
                page.items.len(),
                self.page
            );
            assert!(
                !page.items.is_empty() || page.next.is_none(),
                "[{name}] scan returned an empty page that is not the last"
            );
            for l in page.items {
                *seen.entry(l.key.as_str().to_owned()).or_insert(0) += 1;
            }
            match page.next {
                Some(next) => {
                    assert_ne!(Some(&next), cursor.as_ref(), "[{name}] scan did not advance");
                    cursor = Some(next);
                }
                None => return seen,
            }
        }
    }

    async fn scan_lists_each_live_session_once(&self) {
        let name = self.s().name();
        let p = fresh_principal();
        let mut ours = Vec::with_capacity(self.scan_records);
        for i in 0..self.scan_records {
            let principal = (i % 3 == 0).then_some(p.as_str());
            ours.push(self.create_owned(principal, None).await);
        }
        // A few of them end before the scan: tombstones are never listed.
        let (ended, live) = ours.split_at(self.scan_records.min(5));
        self.end_all(&ended.iter().collect::<Vec<_>>()).await;

        let count = self.ok("count", self.s().count().await);
        assert!(count >= live.len() as u64, "[{name}] count {count} is below the {} live sessions written", live.len());
        let seen = self.scan_all().await;
        for k in live {
            match seen.get(k.as_str()) {
                Some(1) => {}
                Some(n) => panic!("[{name}] scan listed a stable live session {n} times"),
                None => panic!("[{name}] scan missed a live session"),
            }
        }
        for k in ended {
            assert!(!seen.contains_key(k.as_str()), "[{name}] scan listed an ended session");
        }
        self.end_all(&live.iter().collect::<Vec<_>>()).await;
    }

    async fn find_by_handle(&self) {
        let name = self.s().name();
        let k = self.create_owned(Some(&fresh_principal()), None).await;
        let h = SessionHandle::of(&k);
        assert_eq!(self.ok("find", self.s().find(&h).await), Some(k.clone()), "[{name}] find by handle");
        assert_eq!(
            self.ok("find", self.s().find(&SessionHandle::of(&fresh_key())).await),
            None,
            "[{name}] find of an unknown handle"
        );
        self.ok("end", self.s().end(&k, WINDOW).await);
        assert_eq!(self.ok("find", self.s().find(&h).await), None, "[{name}] find returned an ended session");
    }
}
