//! `beaker cache …` against every out-of-process cache backend: clearing one namespace
//! leaves the others (and other regions) alone; `get` reads what the application stored;
//! `stats` counts where the backend can.

mod common;

use beaker_rs::config::CacheConfig;
use common::{beaker, service, unique};
use serde_json::json;

/// `region_options`: the options of region `far` (`url`, `key_prefix`, ...).
async fn scenario(name: &str, region_options: &[(&str, String)], counts: bool) {
    let mut env = vec![("BEAKER_CACHE_REGIONS".to_owned(), "far,near".to_owned())];
    let mut map = vec![("cache.regions".to_owned(), "far,near".to_owned())];
    for (k, v) in region_options {
        env.push((format!("BEAKER_CACHE_FAR_{}", k.to_ascii_uppercase()), v.clone()));
        map.push((format!("cache.far.{k}"), v.clone()));
    }
    let caches = beaker_rs::cache_manager(CacheConfig::from_map(map).unwrap()).await.unwrap();
    let far = caches.region("far").unwrap();
    let (a, b) = (unique("ns_a"), unique("ns_b"));
    for ns in [&a, &b] {
        far.namespace(ns).put("k1", &json!({"price": 7}), None).await.unwrap();
        far.namespace(ns).put("k2", &"two".to_owned(), None).await.unwrap();
    }

    let got = beaker(&env, &["cache", "get", "far", &b, "k1"]).ok();
    assert_eq!(got.trim(), r#"{"price":7}"#, "{name}");
    let missing = beaker(&env, &["cache", "get", "far", &b, "nope"]);
    assert_eq!(missing.code, 1, "{name}: a missing key exits with 1");
    assert!(missing.stderr.contains("no fresh value"), "{name}: {}", missing.stderr);

    let stats = beaker(&env, &["--json", "cache", "stats", "far", &a]).json();
    assert_eq!(stats["namespace"], json!(a));
    if counts {
        assert_eq!(stats["entries"], 2, "{name}: {stats}");
        assert!(stats["bytes"].as_u64().unwrap() > 0, "{name}: {stats}");
    } else {
        assert_eq!(stats["entries"], serde_json::Value::Null, "{name}: {stats}");
    }

    let out = beaker(&env, &["cache", "clear", "far", &a]).ok();
    assert!(out.contains(&a), "{name}: {out}");
    for key in ["k1", "k2"] {
        assert!(!far.namespace(&a).contains(key).await.unwrap(), "{name}: {key} survived the clear of {a}");
        assert!(far.namespace(&b).contains(key).await.unwrap(), "{name}: clearing {a} removed {key} from {b}");
    }
    if counts {
        let stats = beaker(&env, &["--json", "cache", "stats", "far", &a]).json();
        assert_eq!(stats["entries"], 0, "{name}: {stats}");
    }
    // The memory region `near` lives in the application's process: refused by name.
    let near = beaker(&env, &["cache", "clear", "near"]);
    assert_eq!(near.code, 1);
    assert!(near.stderr.contains("memory region") && near.stderr.contains("BEAKER_CACHE_NEAR_URL"), "{}", near.stderr);
    let unknown = beaker(&env, &["cache", "stats", "nowhere"]);
    assert!(unknown.code == 1 && unknown.stderr.contains("far, near"), "{}", unknown.stderr);
    far.namespace(&b).clear().await.unwrap();
}

#[tokio::test]
async fn file_backend() {
    let dir = tempfile::tempdir().unwrap();
    scenario("file", &[("url", format!("file://{}", dir.path().display()))], true).await;
}

#[tokio::test]
async fn sqlite_backend() {
    let dir = tempfile::tempdir().unwrap();
    scenario("sqlite", &[("url", format!("sqlite://{}?mode=rwc", dir.path().join("c.sqlite3").display()))], true).await;
}

#[tokio::test]
async fn postgres_backend() {
    let Some(url) = service("BEAKER_TEST_POSTGRES_URL", "beaker cache on postgres") else { return };
    let schema = unique("cli");
    scenario("postgres", &[("url", url.clone()), ("schema_name", schema.clone())], true).await;
    common::sql::drop_postgres_schema(&url, &schema).await;
}

#[tokio::test]
async fn mysql_backend() {
    let Some(url) = service("BEAKER_TEST_MYSQL_URL", "beaker cache on mysql") else { return };
    let db = common::sql::MysqlDatabase::create(&url).await;
    scenario("mysql", &[("url", db.url.clone())], true).await;
    db.drop().await;
}

#[tokio::test]
async fn redis_backend() {
    let Some(url) = service("BEAKER_TEST_REDIS_URL", "beaker cache on redis") else { return };
    scenario("redis", &[("url", url), ("key_prefix", format!("{}:", unique("cli")))], false).await;
}

#[tokio::test]
async fn memcached_backend() {
    let Some(url) = service("BEAKER_TEST_MEMCACHED_URL", "beaker cache on memcached") else { return };
    scenario("memcached", &[("url", url), ("key_prefix", format!("{}:", unique("cli")))], false).await;
}
