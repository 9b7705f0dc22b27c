//! The principal index and enumeration of `SqlStore` on SQLite, PostgreSQL and
//! MariaDB/MySQL: owners kept in their columns, the index following creates, changes,
//! renames, ends and expiry, keyset scans, `find` by handle, and tables made by an older
//! version upgraded in place. Servers and table names as in `sql.rs`.

#![cfg(all(feature = "sqlite", feature = "postgres", feature = "mysql"))]

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use beaker_core::store::{Lookup, SessionHandle, SessionStore, StoreKey};
use beaker_core::{Clock as _, ManualClock, StoreError};
use beaker_sql::SqlStore;
use beaker_testkit::store::{
    changes, fresh_key, fresh_principal, key_set, listed_keys, owned, owner, scan_whole, with_owner, EndRace,
    OWNED_ENTRY,
};
use common::*;

const HOUR: Duration = Duration::from_secs(3600);

async fn index(kind: Kind, checks: fn(Arc<Env>) -> futures_util::future::BoxFuture<'static, ()>) {
    let suite = format!("{kind:?} principal index");
    let Some(env) = Env::open(kind, &suite).await else { return };
    env.run(checks).await;
}

/// The owner survives round trips; the index follows create, apply, rename, end, delete,
/// expiry and cleanup; bad principals are refused; MySQL compares principals byte for byte.
async fn follows_records(env: Arc<Env>) {
    let clock = ManualClock::new();
    let store = SqlStore::connect(&env.url, env.options.clone().clock(clock.clone())).await.unwrap();
    let now = clock.now();
    let later = Some(now + HOUR);
    let (alice, bob) = (fresh_principal(), fresh_principal());

    // Owner and device survive a round trip, with or without a device.
    let (phone, laptop) = (fresh_key(), fresh_key());
    assert!(store.create(&phone, &owned(&alice, Some("Firefox on 203.0.113.7"), later)).await.unwrap());
    assert!(store.create(&laptop, &owned(&alice, None, later)).await.unwrap());
    assert_eq!(store.load(&phone).await.unwrap().unwrap().owner, Some(owner(&alice, Some("Firefox on 203.0.113.7"))));
    assert_eq!(store.load(&laptop).await.unwrap().unwrap().owner, Some(owner(&alice, None)));
    let listed = store.sessions_of(&alice).await.unwrap();
    assert_eq!(listed.len(), 2);
    let first = listed.iter().find(|l| l.key == phone).unwrap();
    assert_eq!(first.owner, Some(owner(&alice, Some("Firefox on 203.0.113.7"))));
    assert_eq!(first.size, (OWNED_ENTRY.0.len() + OWNED_ENTRY.1.len()) as u64);
    assert_eq!(
        first.expires,
        later
            .map(|t| t.duration_since(SystemTime::UNIX_EPOCH).unwrap())
            .map(|d| { SystemTime::UNIX_EPOCH + Duration::from_millis(d.as_millis() as u64) })
    );

    // An apply without an owner keeps it; with one, moves the key to the new principal.
    assert!(store.apply(&phone, &changes(&[("theme", b"j1")], &[], later)).await.unwrap());
    assert_eq!(listed_keys(&store, &alice).await, key_set([&phone, &laptop]));
    assert!(store.apply(&laptop, &with_owner(changes(&[], &[], later), owner(&bob, Some("curl")))).await.unwrap());
    assert_eq!(listed_keys(&store, &alice).await, key_set([&phone]));
    assert_eq!(listed_keys(&store, &bob).await, key_set([&laptop]));
    assert_eq!(store.load(&laptop).await.unwrap().unwrap().owner, Some(owner(&bob, Some("curl"))));

    // Rename lists the new key in place of the old one, owner kept or changed.
    let moved = fresh_key();
    assert!(store.rename(&phone, &moved, &changes(&[], &[], later), HOUR).await.unwrap());
    assert_eq!(listed_keys(&store, &alice).await, key_set([&moved]));
    assert_eq!(store.load(&moved).await.unwrap().unwrap().owner, Some(owner(&alice, Some("Firefox on 203.0.113.7"))));
    let moved_again = fresh_key();
    let to_bob = with_owner(changes(&[], &[], later), owner(&bob, None));
    assert!(store.rename(&moved, &moved_again, &to_bob, HOUR).await.unwrap());
    assert!(listed_keys(&store, &alice).await.is_empty());
    assert_eq!(listed_keys(&store, &bob).await, key_set([&laptop, &moved_again]));
    let handle = SessionHandle::of(&moved_again);
    assert_eq!(store.find(&handle).await.unwrap(), Some(moved_again.clone()), "the handle follows the rename");
    assert_eq!(store.find(&SessionHandle::of(&moved)).await.unwrap(), None);

    // End and delete take the key out; a retired key is not listed.
    store.end(&moved_again, HOUR).await.unwrap();
    assert_eq!(store.lookup(&moved_again).await.unwrap(), Lookup::Retired);
    assert_eq!(listed_keys(&store, &bob).await, key_set([&laptop]));
    assert_eq!(store.find(&handle).await.unwrap(), None);
    store.delete(&laptop).await.unwrap();
    assert!(listed_keys(&store, &bob).await.is_empty());

    // Expired records are neither listed, counted, scanned nor found, and cleanup removes them.
    let before = store.count().await.unwrap();
    let short = fresh_key();
    assert!(store.create(&short, &owned(&alice, None, Some(now + Duration::from_secs(60)))).await.unwrap());
    assert_eq!(store.count().await.unwrap(), before + 1);
    clock.advance(Duration::from_secs(61));
    assert!(listed_keys(&store, &alice).await.is_empty());
    assert_eq!(store.count().await.unwrap(), before);
    assert!(store.find(&SessionHandle::of(&short)).await.unwrap().is_none());
    let page = store.scan(None, 10_000).await.unwrap();
    assert!(page.items.iter().all(|l| l.key != short));
    assert!(store.cleanup().await.unwrap() >= 1);
    let reopened = env.store().await;
    assert!(reopened.sessions_of(&alice).await.unwrap().is_empty(), "the row went with cleanup");

    // A principal the index cannot key is refused by name, and nothing is written.
    let long = fresh_key();
    let err = store.create(&long, &owned(&"x".repeat(513), None, later)).await.unwrap_err();
    assert!(matches!(err, StoreError::Rejected { .. }) && err.to_string().contains("principal"), "{err}");
    assert!(store.load(&long).await.unwrap().is_none());

    // Principals compare byte for byte, whatever the collation (MySQL's is case-blind).
    let (lower, upper) = (fresh_key(), fresh_key());
    let name = format!("case-{}", fresh_principal());
    assert!(store.create(&lower, &owned(&name, None, later)).await.unwrap());
    assert!(store.create(&upper, &owned(&name.to_uppercase(), None, later)).await.unwrap());
    assert_eq!(listed_keys(&store, &name).await, key_set([&lower]));
    assert_eq!(listed_keys(&store, &name.to_uppercase()).await, key_set([&upper]));
    // Non-ASCII text survives the binary columns.
    let accented = fresh_key();
    let unicode = format!("Zoë-{}", fresh_principal());
    assert!(store.create(&accented, &owned(&unicode, Some("Safari — iPhone"), later)).await.unwrap());
    assert_eq!(store.sessions_of(&unicode).await.unwrap()[0].owner, Some(owner(&unicode, Some("Safari — iPhone"))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_index_follows_records() {
    index(Kind::Sqlite, |env| Box::pin(follows_records(env))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_index_follows_records() {
    index(Kind::Postgres, |env| Box::pin(follows_records(env))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_index_follows_records() {
    index(Kind::Mysql, |env| Box::pin(follows_records(env))).await;
}

/// Records written in parallel: a scan in small pages lists each exactly once, `count`
/// agrees, and `find` reaches any of them by handle.
async fn scans(env: Arc<Env>) {
    const RECORDS: usize = 2000;
    const PAGE: usize = 37;
    let store = env.store().await;
    let later = Some(SystemTime::now() + HOUR);
    let principal = fresh_principal();
    let keys: Vec<StoreKey> = (0..RECORDS).map(|_| fresh_key()).collect();
    let writers: Vec<_> = keys
        .chunks(RECORDS / 8)
        .map(|chunk| {
            let (store, chunk, principal) = (store.clone(), chunk.to_vec(), principal.clone());
            tokio::spawn(async move {
                for key in chunk {
                    assert!(store.create(&key, &owned(&principal, None, later)).await.unwrap());
                }
            })
        })
        .collect();
    for w in writers {
        w.await.unwrap();
    }
    assert_eq!(store.count().await.unwrap(), RECORDS as u64);
    let (seen, pages) = scan_whole(&store, PAGE).await;
    assert_eq!(seen.len(), RECORDS, "each record listed exactly once");
    assert_eq!(
        seen.iter().map(String::as_str).collect::<BTreeSet<_>>(),
        keys.iter().map(StoreKey::as_str).collect::<BTreeSet<_>>()
    );
    assert!(pages >= RECORDS / PAGE);
    assert_eq!(store.sessions_of(&principal).await.unwrap().len(), RECORDS);
    for key in keys.iter().step_by(397) {
        assert_eq!(store.find(&SessionHandle::of(key)).await.unwrap().as_ref(), Some(key));
    }
    assert_eq!(store.find(&SessionHandle::of(&fresh_key())).await.unwrap(), None);
    // A cursor this store never handed out is refused, not read as "from the start".
    let err = store.scan(Some("x' OR '1'='1"), 10).await.unwrap_err();
    assert!(matches!(err, StoreError::Rejected { .. }), "{err}");
    // A limit of zero still makes progress.
    assert_eq!(store.scan(None, 0).await.unwrap().items.len(), 1);
    for key in &keys {
        store.delete(key).await.unwrap();
    }
    assert_eq!(store.count().await.unwrap(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_scans_every_record_once() {
    index(Kind::Sqlite, |env| Box::pin(scans(env))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_scans_every_record_once() {
    index(Kind::Postgres, |env| Box::pin(scans(env))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_scans_every_record_once() {
    index(Kind::Mysql, |env| Box::pin(scans(env))).await;
}

/// Requests writing a session while an operator ends it through the index: once `end`
/// returns, nothing brings the session back, under the old key or in the index.
async fn end_races_apply(env: Arc<Env>) {
    let store = env.store().await;
    EndRace { trials: 10, ..EndRace::default() }.run(Arc::new(store)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_end_through_the_index_is_final() {
    index(Kind::Sqlite, |env| Box::pin(end_races_apply(env))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_end_through_the_index_is_final() {
    index(Kind::Postgres, |env| Box::pin(end_races_apply(env))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_end_through_the_index_is_final() {
    index(Kind::Mysql, |env| Box::pin(end_races_apply(env))).await;
}

/// The session table as the version without the index made it, with one session in it.
async fn old_table(env: &Env, key: &StoreKey, expires_ms: i64) {
    let table = &env.options.session_table;
    let (sessions, ddl) = match env.kind {
        Kind::Sqlite => (
            table.clone(),
            format!(
                "CREATE TABLE {table} (id TEXT NOT NULL PRIMARY KEY, created INTEGER NOT NULL, \
                 accessed INTEGER NOT NULL, expires INTEGER NULL)"
            ),
        ),
        Kind::Postgres => {
            let schema = env.options.schema.clone().unwrap();
            env.raw.exec(&format!("CREATE SCHEMA {schema}")).await;
            let sessions = format!("{schema}.{table}");
            let ddl = format!(
                "CREATE TABLE {sessions} (id VARCHAR(128) NOT NULL PRIMARY KEY, created BIGINT NOT NULL, \
                 accessed BIGINT NOT NULL, expires BIGINT NULL)"
            );
            (sessions, ddl)
        }
        Kind::Mysql => (
            table.clone(),
            format!(
                "CREATE TABLE {table} (id VARBINARY(128) NOT NULL PRIMARY KEY, created BIGINT NOT NULL, \
                 accessed BIGINT NOT NULL, expires BIGINT NULL, INDEX {table}_expires (expires)) ENGINE=InnoDB"
            ),
        ),
    };
    env.raw.exec(&ddl).await;
    env.raw
        .exec(&format!(
            "INSERT INTO {sessions} (id, created, accessed, expires) VALUES ('{}', 1000, 2000, {expires_ms})",
            key.as_str()
        ))
        .await;
}

/// A table made by an older version gains the owner columns on start (from several
/// processes at once, and again on every start), keeps its sessions, and they become
/// findable by handle and can be given an owner.
async fn upgrades(env: Arc<Env>) {
    let old = fresh_key();
    let expires = SystemTime::now() + HOUR;
    let expires_ms = expires.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_millis() as i64;
    old_table(&env, &old, expires_ms).await;
    let openers: Vec<_> = (0..3)
        .map(|_| {
            let env = env.clone();
            tokio::spawn(async move { env.store().await })
        })
        .collect();
    let mut stores = Vec::new();
    for o in openers {
        stores.push(o.await.unwrap());
    }
    let store = stores.pop().unwrap();
    store.migrate().await.unwrap();
    let loaded = store.load(&old).await.unwrap().expect("the old session survives the upgrade");
    assert_eq!(loaded.owner, None);
    assert!(loaded.entries.is_empty());
    assert_eq!(store.count().await.unwrap(), 1);
    // Its handle was never written: `find` fills it in.
    assert_eq!(store.find(&SessionHandle::of(&old)).await.unwrap(), Some(old.clone()));
    assert_eq!(store.find(&SessionHandle::of(&old)).await.unwrap(), Some(old.clone()));
    let principal = fresh_principal();
    let later = Some(expires);
    assert!(store
        .apply(&old, &with_owner(changes(&[("a", b"j1")], &[], later), owner(&principal, None)))
        .await
        .unwrap());
    assert_eq!(listed_keys(&store, &principal).await, key_set([&old]));
    let new = fresh_key();
    assert!(store.create(&new, &owned(&principal, Some("new"), later)).await.unwrap());
    assert_eq!(listed_keys(&store, &principal).await, key_set([&old, &new]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_older_tables_are_upgraded() {
    index(Kind::Sqlite, |env| Box::pin(upgrades(env))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_older_tables_are_upgraded() {
    index(Kind::Postgres, |env| Box::pin(upgrades(env))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_older_tables_are_upgraded() {
    index(Kind::Mysql, |env| Box::pin(upgrades(env))).await;
}

/// 100 000 sessions (written in bulk with SQL) scanned in pages of 1000 through the store:
/// each listed once, memory bounded by the page. Slow on a shared machine, so run by hand:
/// `cargo test -p beaker-sql --all-features --test index -- --ignored`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn sqlite_scans_a_hundred_thousand_sessions() {
    const RECORDS: i64 = 100_000;
    let Some(env) = Env::open(Kind::Sqlite, "sqlite 100k scan").await else { return };
    let store = env.store().await;
    let (sessions, _) = store.tables();
    let far = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap().as_millis() as i64 + 3_600_000;
    // Keys of the store's alphabet, distinct, in no particular order of insertion.
    env.raw
        .exec(&format!(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {RECORDS}) \
             INSERT INTO {sessions} (id, created, accessed, expires, principal) \
             SELECT 'k' || hex(randomblob(8)) || i, 1000, 2000, {far}, 'p' || (i % 100) FROM n"
        ))
        .await;
    let started = std::time::Instant::now();
    let (listed, pages) = scan_whole(&store, 1000).await;
    let seen: BTreeSet<String> = listed.iter().cloned().collect();
    assert_eq!(seen.len(), listed.len(), "listed twice");
    let took = started.elapsed();
    assert_eq!(seen.len() as i64, RECORDS);
    assert_eq!(store.count().await.unwrap(), RECORDS as u64);
    assert_eq!(store.sessions_of("p7").await.unwrap().len(), (RECORDS / 100) as usize);
    eprintln!("scanned {RECORDS} sessions in {pages} pages of 1000 in {took:?}");
}
