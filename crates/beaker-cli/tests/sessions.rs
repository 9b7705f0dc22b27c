//! `beaker sessions …` against every server store: the test files sessions through the
//! store itself (as an application's requests would leave them), runs the real binary,
//! and checks what it printed and what it changed in the store.

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use beaker_rs::store::{Changes, Owner, Record, SessionStore, StoreKey};
use beaker_rs::{DataSerializer, SessionConfig, SessionHandle, SessionId};
use common::{as_env, as_map, beaker, service, unique};

/// One session the test filed, with what must never be printed.
struct Filed {
    id: SessionId,
    key: StoreKey,
    handle: String,
}

fn record(owner: Option<(&str, Option<&str>)>, created: SystemTime, expires: SystemTime) -> Record {
    let mut entries = std::collections::BTreeMap::new();
    let name = owner.map_or("anonymous", |(p, _)| p);
    entries.insert("user".to_owned(), DataSerializer::Json.encode(name).unwrap());
    entries.insert("cart".to_owned(), DataSerializer::MessagePack.encode(&vec![3u32, 5]).unwrap());
    Record {
        entries,
        created,
        accessed: created,
        expires: Some(expires),
        owner: owner.map(|(p, d)| Owner { principal: p.to_owned(), device: d.map(str::to_owned) }),
    }
}

async fn file(store: &dyn SessionStore, hashed: bool, record: &Record) -> Filed {
    let id = SessionId::generate();
    let key = StoreKey::for_id(&id, hashed);
    assert!(store.create(&key, record).await.unwrap(), "created");
    let handle = SessionHandle::of(&key).to_string();
    Filed { id, key, handle }
}

/// The whole scenario on one store, configured by `options` (`url`, `key_prefix`, ...).
/// `native_expiry`: the store drops expired records itself (Redis, Memcached), so no
/// expired record can be left for `purge-expired`.
async fn scenario(name: &str, options: Vec<(String, String)>, native_expiry: bool) {
    let env = as_env("SESSION", &options);
    let config = SessionConfig::from_map(as_map("session", &options)).unwrap();
    let store: Arc<dyn SessionStore> = beaker_rs::session_store(&config).await.unwrap();
    let now = SystemTime::now();
    let later = now + Duration::from_secs(3600);
    let alice = unique("alice");
    let bob = unique("bob");
    let mut filed = Vec::new();
    for (i, device) in [Some("Firefox on Linux"), Some("Safari on iOS"), None].into_iter().enumerate() {
        let created = now - Duration::from_secs(300 - 60 * i as u64);
        filed.push(file(&*store, config.hash_ids, &record(Some((&alice, device)), created, later)).await);
    }
    for i in 0..2u64 {
        let created = now - Duration::from_secs(100 + i);
        filed.push(file(&*store, config.hash_ids, &record(Some((&bob, None)), created, later)).await);
    }
    filed.push(file(&*store, config.hash_ids, &record(None, now, later)).await);
    let mut expired = Vec::new();
    if !native_expiry {
        let past = now - Duration::from_secs(10);
        for _ in 0..2 {
            expired.push(file(&*store, config.hash_ids, &record(Some((&bob, None)), past, past)).await);
        }
    }
    let never_printed = |out: &str| {
        for f in filed.iter().chain(&expired) {
            assert!(!out.contains(f.id.expose()), "{name}: a session id was printed: {out}");
            assert!(!out.contains(f.key.as_str()), "{name}: a store key was printed: {out}");
        }
    };

    whole_store(name, &env, &filed, expired.len() as u64, &never_printed);

    // list --principal: alice's three, newest first, devices shown.
    let mine = beaker(&env, &["--json", "sessions", "list", "--principal", &alice]).json();
    let mine: Vec<&str> = mine.as_array().unwrap().iter().map(|s| s["handle"].as_str().unwrap()).collect();
    assert_eq!(mine, [&filed[2].handle, &filed[1].handle, &filed[0].handle], "{name}: newest first");
    let table = beaker(&env, &["sessions", "list", "-p", &alice]).ok();
    assert!(table.contains("Safari on iOS") && table.contains(&alice), "{name}:\n{table}");

    // show: the values decoded whatever their serializer, never the id or key.
    let by: &[&str] = &[];
    let shown = beaker(&env, &[&["sessions", "show", &filed[0].handle][..], by].concat()).ok();
    assert!(shown.contains(&format!("user = \"{alice}\"")) && shown.contains("cart = [3,5]"), "{name}:\n{shown}");
    assert!(shown.contains("Firefox on Linux"), "{name}:\n{shown}");
    never_printed(&shown);
    let doc = beaker(&env, &[&["--json", "sessions", "show", &filed[0].handle][..], by].concat()).json();
    assert_eq!(doc["values"]["cart"], serde_json::json!([3, 5]));
    never_printed(&doc.to_string());

    // end: that session only, and it stays ended (an in-flight write finds no record).
    let out = beaker(&env, &[&["sessions", "end", &filed[0].handle][..], by].concat()).ok();
    assert!(out.contains(&filed[0].handle), "{name}: {out}");
    assert!(store.load(&filed[0].key).await.unwrap().is_none(), "{name}: ended");
    let late_write = Changes {
        set: [("user".to_owned(), DataSerializer::Json.encode("revived").unwrap())].into_iter().collect(),
        accessed: SystemTime::now(),
        expires: Some(later),
        clear: false,
        remove: Default::default(),
        owner: None,
    };
    assert!(!store.apply(&filed[0].key, &late_write).await.unwrap(), "{name}: an ended session was written back");
    assert!(store.load(&filed[1].key).await.unwrap().is_some(), "{name}: another session of alice was ended");
    let again = beaker(&env, &[&["sessions", "show", &filed[0].handle][..], by].concat());
    assert_eq!(again.code, 1, "{name}: showing an ended session");
    assert!(again.stderr.contains("no live session"), "{name}: {}", again.stderr);

    // end-principal: alice's other two, nobody else's.
    let out = beaker(&env, &["--json", "sessions", "end-principal", &alice]).json();
    assert_eq!(out["ended"].as_array().unwrap().len(), 2, "{name}: {out}");
    assert!(store.sessions_of(&alice).await.unwrap().is_empty(), "{name}: alice signed out everywhere");
    for f in &filed[1..3] {
        assert!(store.load(&f.key).await.unwrap().is_none(), "{name}: ended");
    }
    for f in &filed[3..] {
        assert!(store.load(&f.key).await.unwrap().is_some(), "{name}: bob's and the anonymous session stay");
    }
    let none = beaker(&env, &["sessions", "end-principal", &alice]).ok();
    assert!(none.contains("ended 0 sessions"), "{name}: {none}");

    // purge-expired: the expired records go, the live ones stay.
    let out = beaker(&env, &["--json", "sessions", "purge-expired"]).json();
    let removed = out["removed"].as_u64().unwrap();
    assert!(removed >= expired.len() as u64, "{name}: purge removed {removed}");
    for f in &expired {
        assert!(store.load(&f.key).await.unwrap().is_none(), "{name}: expired record left");
    }
    let counted: u64 = beaker(&env, &["sessions", "count"]).ok().trim().parse().unwrap();
    assert_eq!(counted, 3, "{name}: bob's two and the anonymous one");

    for f in &filed {
        store.delete(&f.key).await.unwrap();
    }
}

/// `count` and `list` over the whole store: six live sessions (stores that count natively
/// may count the expired records the sweeper has yet to remove).
fn whole_store(name: &str, env: &[(String, String)], filed: &[Filed], expired: u64, never_printed: &dyn Fn(&str)) {
    let counted: u64 = beaker(env, &["sessions", "count"]).ok().trim().parse().unwrap();
    assert!(counted == 6 || counted == 6 + expired, "{name}: count printed {counted}");
    let scanned = beaker(env, &["sessions", "count", "--scan", "--page-size", "2", "--json"]).json();
    assert_eq!(scanned["sessions"], 6, "{name}: a scan lists live sessions only");

    // Every live session by handle, in pages smaller than the store.
    let listed = beaker(env, &["--json", "sessions", "list", "--page-size", "4"]).json();
    let handles: BTreeSet<&str> = listed.as_array().unwrap().iter().map(|s| s["handle"].as_str().unwrap()).collect();
    let want: BTreeSet<&str> = filed.iter().map(|f| f.handle.as_str()).collect();
    assert_eq!(handles, want, "{name}: list");
    let limited = beaker(env, &["--json", "sessions", "list", "--limit", "4", "--page-size", "3"]).json();
    assert_eq!(limited.as_array().unwrap().len(), 4, "{name}: --limit");
    let table = beaker(env, &["sessions", "list"]).ok();
    assert!(table.starts_with("HANDLE") && table.lines().count() == 7, "{name}: table:\n{table}");
    never_printed(&table);
}

fn opts(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

#[tokio::test]
async fn file_store() {
    let dir = tempfile::tempdir().unwrap();
    scenario("file", opts(&[("url", &format!("file://{}", dir.path().display()))]), false).await;
}

#[tokio::test]
async fn sqlite_store() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("s.sqlite3").display());
    scenario("sqlite", opts(&[("url", &url)]), false).await;
}

#[tokio::test]
async fn postgres_store() {
    let Some(url) = service("BEAKER_TEST_POSTGRES_URL", "beaker sessions on postgres") else { return };
    let schema = unique("cli");
    scenario("postgres", opts(&[("url", &url), ("schema_name", &schema)]), false).await;
    common::sql::drop_postgres_schema(&url, &schema).await;
}

#[tokio::test]
async fn mysql_store() {
    let Some(url) = service("BEAKER_TEST_MYSQL_URL", "beaker sessions on mysql") else { return };
    let db = common::sql::MysqlDatabase::create(&url).await;
    scenario("mysql", opts(&[("url", &db.url)]), false).await;
    db.drop().await;
}

#[tokio::test]
async fn redis_store() {
    let Some(url) = service("BEAKER_TEST_REDIS_URL", "beaker sessions on redis") else { return };
    let prefix = format!("{}:", unique("cli"));
    scenario("redis", opts(&[("url", &url), ("key_prefix", &prefix)]), true).await;
}

#[tokio::test]
async fn redis_cluster_store() {
    let Some(url) = service("BEAKER_TEST_REDIS_CLUSTER_URL", "beaker sessions on redis cluster") else { return };
    let prefix = format!("{}:", unique("cli"));
    scenario("redis cluster", opts(&[("url", &url), ("key_prefix", &prefix)]), true).await;
}

#[tokio::test]
async fn memcached_store() {
    let Some(url) = service("BEAKER_TEST_MEMCACHED_URL", "beaker sessions on memcached") else { return };
    let prefix = format!("{}:", unique("cli"));
    scenario("memcached", opts(&[("url", &url), ("key_prefix", &prefix)]), true).await;
}

#[tokio::test]
async fn s3_store() {
    let Some(url) = service("BEAKER_TEST_S3_URL", "beaker sessions on s3") else { return };
    let url = format!("{}/{}", url.trim_end_matches('/'), unique("cli"));
    scenario("s3", opts(&[("url", &url)]), false).await;
}
