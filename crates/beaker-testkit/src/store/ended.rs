//! The store suite's checks of the ended-session rule: `lookup`, `end` and `rename`
//! (see the contract on [`SessionStore`](beaker_core::store::SessionStore)).

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime};

use beaker_core::store::{Lookup, Record};

use super::{changes, close_to, fresh_key, record, SessionStoreSuite, HOUR};

/// The retire window the checks use when they do not wait for it to pass.
const WINDOW: Duration = Duration::from_secs(60);
/// Concurrent applies raced against one rename, and how many times.
const RACERS: usize = 16;
const RACE_TRIALS: usize = 8;

impl SessionStoreSuite {
    /// Runs the ended-session checks.
    pub(super) async fn ended_session_rule(&self) {
        self.lookup_finds_live_and_missing().await;
        self.end_retires_the_key().await;
        self.end_without_window_leaves_nothing().await;
        self.rename_moves_the_record().await;
        self.rename_of_nothing_writes_nothing().await;
        self.rename_never_overwrites().await;
        for _ in 0..RACE_TRIALS {
            self.rename_carries_or_drops_concurrent_applies().await;
        }
        self.retired_key_is_forgotten_after_the_window().await;
    }

    async fn lookup(&self, k: &beaker_core::store::StoreKey) -> Lookup {
        self.ok("lookup", self.s().lookup(k).await).await
    }

    async fn lookup_finds_live_and_missing(&self) {
        let name = self.s().name();
        let k = fresh_key();
        assert_eq!(self.lookup(&k).await, Lookup::Missing, "[{name}] lookup of an unknown key");
        let r = record(&[("a", b"j1")], Some(SystemTime::now() + HOUR));
        assert!(self.ok("create", self.s().create(&k, &r).await).await);
        match self.lookup(&k).await {
            Lookup::Live(found) => assert_eq!(found.entries, r.entries, "[{name}] lookup returned other data"),
            other => panic!("[{name}] lookup of a live record gave {other:?}"),
        }
        self.ok("delete", self.s().delete(&k).await).await;
        assert_eq!(self.lookup(&k).await, Lookup::Missing, "[{name}] delete must leave no tombstone");
    }

    async fn end_retires_the_key(&self) {
        let name = self.s().name();
        let k = fresh_key();
        let r = record(&[("user", b"j\"ada\"")], Some(SystemTime::now() + HOUR));
        assert!(self.ok("create", self.s().create(&k, &r).await).await);
        self.ok("end", self.s().end(&k, WINDOW).await).await;
        assert_eq!(self.lookup(&k).await, Lookup::Retired, "[{name}] an ended key must read as retired");
        assert!(self.ok("load", self.s().load(&k).await).await.is_none(), "[{name}] an ended record loaded");
        let c = changes(&[("user", b"j\"eve\"")], &[], Some(SystemTime::now() + HOUR));
        assert!(!self.ok("apply", self.s().apply(&k, &c).await).await, "[{name}] apply after end must be refused");
        assert!(
            !self.ok("touch", self.s().touch(&k, SystemTime::now(), None).await).await,
            "[{name}] touch after end must be refused"
        );
        let to = fresh_key();
        assert!(
            !self.ok("rename", self.s().rename(&k, &to, &c, WINDOW).await).await,
            "[{name}] rename of an ended key must be refused"
        );
        assert_eq!(self.lookup(&to).await, Lookup::Missing, "[{name}] rename of an ended key wrote a record");
        assert_eq!(self.lookup(&k).await, Lookup::Retired, "[{name}] a refused write revived an ended key");
        // Ending again (two logouts racing) is not an error.
        self.ok("end of an ended key", self.s().end(&k, WINDOW).await).await;
        self.ok("end of a missing key", self.s().end(&fresh_key(), WINDOW).await).await;
    }

    async fn end_without_window_leaves_nothing(&self) {
        let name = self.s().name();
        let k = fresh_key();
        assert!(self.ok("create", self.s().create(&k, &record(&[("a", b"j1")], None)).await).await);
        self.ok("end", self.s().end(&k, Duration::ZERO).await).await;
        assert_eq!(self.lookup(&k).await, Lookup::Missing, "[{name}] end with no window must leave no tombstone");
    }

    async fn rename_moves_the_record(&self) {
        let name = self.s().name();
        let (from, to) = (fresh_key(), fresh_key());
        let r = record(&[("keep", b"j1"), ("drop", b"j2")], Some(SystemTime::now() + HOUR));
        assert!(self.ok("create", self.s().create(&from, &r).await).await);
        let new_expiry = Some(SystemTime::now() + 2 * HOUR);
        let c = changes(&[("user", b"j\"ada\"")], &["drop"], new_expiry);
        assert!(self.ok("rename", self.s().rename(&from, &to, &c, WINDOW).await).await, "[{name}] rename refused");
        let moved = match self.lookup(&to).await {
            Lookup::Live(moved) => moved,
            other => panic!("[{name}] nothing live under the new key after rename: {other:?}"),
        };
        let keys: Vec<&str> = moved.entries.keys().map(String::as_str).collect();
        assert_eq!(keys, ["keep", "user"], "[{name}] rename did not apply the changes");
        assert!(
            close_to(Some(moved.created), Some(r.created)),
            "[{name}] rename must keep `created` (the absolute lifetime survives regeneration)"
        );
        assert!(close_to(moved.expires, new_expiry), "[{name}] rename did not take the new expiry");
        assert_eq!(self.lookup(&from).await, Lookup::Retired, "[{name}] the old key must be retired by rename");
        let late = changes(&[("late", b"j1")], &[], new_expiry);
        assert!(!self.ok("apply", self.s().apply(&from, &late).await).await, "[{name}] apply to a renamed key");
        self.ok("delete", self.s().delete(&to).await).await;
    }

    async fn rename_of_nothing_writes_nothing(&self) {
        let name = self.s().name();
        let (from, to) = (fresh_key(), fresh_key());
        let c = changes(&[("a", b"j1")], &[], Some(SystemTime::now() + HOUR));
        assert!(!self.ok("rename", self.s().rename(&from, &to, &c, WINDOW).await).await);
        assert_eq!(self.lookup(&to).await, Lookup::Missing, "[{name}] rename of nothing created a record");
        // An expired record is nothing too.
        let expired = record(&[("a", b"j1")], Some(SystemTime::now() - Duration::from_secs(10)));
        let _ = self.ok("create", self.s().create(&from, &expired).await).await;
        assert!(!self.ok("rename", self.s().rename(&from, &to, &c, WINDOW).await).await, "[{name}] renamed expired");
        assert_eq!(self.lookup(&to).await, Lookup::Missing, "[{name}] rename of an expired record wrote one");
        self.ok("delete", self.s().delete(&from).await).await;
    }

    async fn rename_never_overwrites(&self) {
        let name = self.s().name();
        let (from, to) = (fresh_key(), fresh_key());
        assert!(self.ok("create", self.s().create(&from, &record(&[("a", b"j1")], None)).await).await);
        let there = record(&[("b", b"j2")], Some(SystemTime::now() + HOUR));
        assert!(self.ok("create", self.s().create(&to, &there).await).await);
        let c = changes(&[], &[], Some(SystemTime::now() + HOUR));
        assert!(self.s().rename(&from, &to, &c, WINDOW).await.is_err(), "[{name}] rename onto a live record must fail");
        match self.lookup(&to).await {
            Lookup::Live(r) => assert_eq!(r.entries, there.entries, "[{name}] rename overwrote a live record"),
            other => panic!("[{name}] the record under the target went: {other:?}"),
        }
        self.ok("delete", self.s().delete(&from).await).await;
        self.ok("delete", self.s().delete(&to).await).await;
    }

    /// Applies race one rename: each that returned `true` must be in the moved record,
    /// and nothing may be left under the old key.
    async fn rename_carries_or_drops_concurrent_applies(&self) {
        let name = self.s().name();
        let (from, to) = (fresh_key(), fresh_key());
        let base: Record = record(&[("base", b"j0")], Some(SystemTime::now() + HOUR));
        assert!(self.ok("create", self.s().create(&from, &base).await).await);
        let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(RACERS + 1));
        let appliers: Vec<_> = (0..RACERS)
            .map(|i| {
                let (store, from, barrier) = (self.store.clone(), from.clone(), barrier.clone());
                tokio::spawn(async move {
                    barrier.wait().await;
                    // Spread the applies around the rename.
                    tokio::time::sleep(Duration::from_micros(150 * i as u64)).await;
                    let key = format!("k{i}");
                    let c = changes(&[(&key, b"j1")], &[], Some(SystemTime::now() + HOUR));
                    (key, store.apply(&from, &c).await)
                })
            })
            .collect();
        let renamer = {
            let (store, from, to, barrier) = (self.store.clone(), from.clone(), to.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                tokio::time::sleep(Duration::from_micros(150 * RACERS as u64 / 2)).await;
                let c = changes(&[("user", b"j\"ada\"")], &[], Some(SystemTime::now() + HOUR));
                store.rename(&from, &to, &c, WINDOW).await
            })
        };
        let mut landed = BTreeSet::new();
        for a in appliers {
            let (key, applied) = a.await.expect("apply task");
            if applied.unwrap_or_else(|e| panic!("[{name}] apply failed: {e}")) {
                landed.insert(key);
            }
        }
        let renamed = renamer.await.expect("rename task").unwrap_or_else(|e| panic!("[{name}] rename failed: {e}"));
        assert!(renamed, "[{name}] rename of a live record refused");
        let moved = match self.lookup(&to).await {
            Lookup::Live(moved) => moved,
            other => panic!("[{name}] nothing under the new key: {other:?}"),
        };
        for key in &landed {
            assert!(
                moved.entries.contains_key(key),
                "[{name}] an apply that returned true before the rename was lost (not carried to the new key)"
            );
        }
        for i in 0..RACERS {
            let key = format!("k{i}");
            assert!(
                landed.contains(&key) || !moved.entries.contains_key(&key),
                "[{name}] an apply reported as refused reached the moved record"
            );
        }
        assert_eq!(self.lookup(&from).await, Lookup::Retired, "[{name}] the old key came back after the race");
        self.ok("delete", self.s().delete(&to).await).await;
    }

    async fn retired_key_is_forgotten_after_the_window(&self) {
        let name = self.s().name();
        let k = fresh_key();
        assert!(self.ok("create", self.s().create(&k, &record(&[("a", b"j1")], None)).await).await);
        self.ok("end", self.s().end(&k, Duration::from_secs(1)).await).await;
        assert_eq!(self.lookup(&k).await, Lookup::Retired, "[{name}] not retired within the window");
        for _ in 0..150 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if self.lookup(&k).await == Lookup::Missing {
                return;
            }
        }
        panic!("[{name}] a key retired for 1 s still read as retired after 15 s");
    }
}
