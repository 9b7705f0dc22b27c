//! "Sign out everywhere" raced against the user's own requests: the check every store with
//! a principal index runs, in the shape its own contention calls for.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use beaker_core::store::{Lookup, SessionStore, StoreKey};
use beaker_core::StoreError;

use super::index::{key_set, keys, owned, owner};
use super::{changes, fresh_key, fresh_principal, HOUR};

/// How long ended sessions stay retired: longer than any round, so every lookup after the
/// end sees the tombstone.
const RETIRE: Duration = Duration::from_secs(60);

/// Ends every session of a principal through the index (`sessions_of`, then `end` of each
/// listed key) while writers keep applying changes to those sessions, as an operator's
/// "sign out everywhere" meets the user's requests in flight.
///
/// Each round, with a fresh principal: creates [`sessions`](Self::sessions) owned
/// sessions, starts [`writers`](Self::writers) tasks per session that apply up to
/// [`writes`](Self::writes) changes each (a writer stops at its first refused write), lets
/// them run for `pause × (round mod pause_cycle)`, lists and ends, then waits for the
/// writers. It panics, naming the store and the round, unless:
/// - the listing taken during the writes names exactly the principal's sessions;
/// - afterwards each session is retired ([`Lookup::Retired`]), refuses a late `apply` and
///   a late `touch`, and the principal lists nothing: no write revived a session;
/// - every write either landed, was refused, or failed with an error
///   [`contended`](Self::contended) accepts.
///
/// ```
/// use std::sync::Arc;
/// use beaker_core::MemoryStore;
/// use beaker_testkit::store::EndRace;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// EndRace { trials: 2, ..EndRace::default() }.run(Arc::new(MemoryStore::new())).await;
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct EndRace {
    /// Rounds (default 10).
    pub trials: usize,
    /// Sessions of the principal in each round (default 1).
    pub sessions: usize,
    /// Concurrent writers per session (default 8).
    pub writers: usize,
    /// Writes each writer attempts (default 20).
    pub writes: usize,
    /// How long round `t` lets the writers run before it ends the sessions:
    /// `pause × (t mod pause_cycle)`, so that the end lands at different points of the
    /// writes (default 1 ms).
    pub pause: Duration,
    /// See [`pause`](Self::pause) (default 5).
    pub pause_cycle: u32,
    /// Every third write also names the session's owner again, as a re-login does, so the
    /// index entry is rewritten while it is being ended (default off).
    pub relogin: bool,
    /// A `touch` after every `n`th write that landed (default none).
    pub touch_every: Option<usize>,
    /// Errors a writer may meet under this contention and go on after, such as a store's
    /// compare-and-set retries running out; any other error fails the check (default:
    /// none is accepted).
    pub contended: fn(&StoreError) -> bool,
}

impl Default for EndRace {
    fn default() -> Self {
        EndRace {
            trials: 10,
            sessions: 1,
            writers: 8,
            writes: 20,
            pause: Duration::from_millis(1),
            pause_cycle: 5,
            relogin: false,
            touch_every: None,
            contended: |_| false,
        }
    }
}

impl EndRace {
    /// Runs every round against `store`.
    pub async fn run(&self, store: Arc<dyn SessionStore>) {
        for trial in 0..self.trials {
            self.round(&store, trial).await;
        }
    }

    async fn round(&self, store: &Arc<dyn SessionStore>, trial: usize) {
        let name = store.name();
        let expires = Some(SystemTime::now() + HOUR);
        let principal = fresh_principal();
        let sessions: Vec<StoreKey> = (0..self.sessions).map(|_| fresh_key()).collect();
        for k in &sessions {
            let created = store.create(k, &owned(&principal, Some("Firefox"), expires)).await;
            assert!(matches!(created, Ok(true)), "[{name}] round {trial}: create: {created:?}");
        }
        let mut writers = Vec::with_capacity(self.sessions * self.writers);
        for (s, k) in sessions.iter().enumerate() {
            for w in 0..self.writers {
                let (store, key, principal, race) = (store.clone(), k.clone(), principal.clone(), self.clone());
                let writer = s * self.writers + w;
                writers.push(tokio::spawn(async move { race.write(&*store, &key, &principal, writer, expires).await }));
            }
        }
        let cycle = self.pause_cycle.max(1);
        tokio::time::sleep(self.pause * (trial as u32 % cycle)).await;

        let listed = match store.sessions_of(&principal).await {
            Ok(listed) => listed,
            Err(e) => panic!("[{name}] round {trial}: sessions_of during writes: {e}"),
        };
        assert_eq!(keys(&listed), key_set(&sessions), "[{name}] round {trial}: sessions_of during writes");
        for l in &listed {
            if let Err(e) = store.end(&l.key, RETIRE).await {
                panic!("[{name}] round {trial}: end: {e}");
            }
        }
        for w in writers {
            if let Err(e) = w.await.expect("writer task") {
                panic!("[{name}] round {trial}: a writer failed: {e}");
            }
        }

        let late = changes(&[("late", b"j1")], &[], expires);
        for k in &sessions {
            let lookup = store.lookup(k).await;
            assert!(
                matches!(lookup, Ok(Lookup::Retired)),
                "[{name}] round {trial}: a write revived a session ended through the index: {lookup:?}"
            );
            let applied = store.apply(k, &late).await;
            assert!(matches!(applied, Ok(false)), "[{name}] round {trial}: apply after the end: {applied:?}");
            let touched = store.touch(k, SystemTime::now(), expires).await;
            assert!(matches!(touched, Ok(false)), "[{name}] round {trial}: touch after the end: {touched:?}");
        }
        let after = match store.sessions_of(&principal).await {
            Ok(listed) => listed,
            Err(e) => panic!("[{name}] round {trial}: sessions_of after the end: {e}"),
        };
        assert!(after.is_empty(), "[{name}] round {trial}: a session ended through the index is listed again");
    }

    /// One writer's requests; stops at the first write refused because the session ended.
    async fn write(
        &self,
        store: &dyn SessionStore,
        key: &StoreKey,
        principal: &str,
        writer: usize,
        expires: Option<SystemTime>,
    ) -> Result<(), StoreError> {
        for n in 0..self.writes {
            let name = format!("k{writer}-{n}");
            let mut c = changes(&[(name.as_str(), b"j1")], &[], expires);
            if self.relogin && n % 3 == 0 {
                c.owner = Some(owner(principal, Some("re-login")));
            }
            match store.apply(key, &c).await {
                Ok(true) => {}
                Ok(false) => return Ok(()),
                Err(e) if (self.contended)(&e) => continue,
                Err(e) => return Err(e),
            }
            if self.touch_every.is_some_and(|every| every > 0 && (n + 1) % every == 0) {
                match store.touch(key, SystemTime::now(), expires).await {
                    Ok(_) => {}
                    Err(e) if (self.contended)(&e) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(())
    }
}
