//! Beaker 1.14's cookie-only sessions in compat mode, through the public API: the cookies
//! Python's `CookieSession` writes are read and updated, and what is written reopens as
//! Beaker's format. (Both directions against the real Python Beaker run in
//! `crates/beaker-rs/tests/beaker_interop.rs`.)

mod common;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use beaker_core::compat::cookie_session::{BeakerCookieCodec, DOMAIN_ENTRY, ID_ENTRY, PATH_ENTRY};
use beaker_core::compat::BeakerSerializer;
use beaker_core::{ConfigError, DataSerializer, Error, ManualClock, SessionConfig, SessionManager};
use common::{pair, value};

const VK: &str = "a validation key of 16+ bytes";
const EK: &str = "an encryption key of 16+ bytes";

// Python 3.11, Beaker 1.14.1, cryptography: CookieSession(encrypt_key=EK, validate_key=VK,
// data_serializer='json') of {'_domain': None, '_path': '/', '_id':
// '2c787a2a299c49078c99034dc543962b', 'user': 'alice', 'n': 3, '_creation_time':
// 1700000000.25, '_accessed_time': 1700000100.5}
const PY_JSON: &str = "8d468199eb79d6bd23c898456d9064c1be081ddbDxdl4MD9LI4zEDZPHmvlcg==eb9tKvLWuawTr2b4OmJUNjq2Bq3aXjNr9WU2zeDaLNlU/5IQnoEk+i+tYgnaMgBgLTfvi1Y62T7wPuSJSINkogTozyV+y8vT+oeDhVTt6ZjtZII8mBIgSVsbTuVW89TYTXth9dHpRY4n0Q2cuQVsIVQ0p2YzZNIJ1EgEoZh5YVOjGXMJpRzrXsf7/YZ1BINp/+sT7BD6aLF6";
// The same keys, data_serializer='pickle' (user 'bob').
const PY_PICKLE: &str = "cd3cfe81ded79c1e6571d482cd24fe0496d43374R2DIbSUEokpOAFWJHDXF/A==c99oIpVjo7ETjsie5Ow8236+rB1nHQ2mFK8o+AyhDp9EBHcD/PRMonG9ghMEJsPSVhTJxVv/NZPHVQU56u1BXAuEQuEwIfkInCZ3sFNF1aPqbUqIqF0D+YmcsJJy12WifTr3Ok8PHwT8uO2DaLQhHhpoxedC8nVyfzlNE6dP6LLZeX9TtTzrsMwOaCwZ/umWOJnanmvksQwEYVqH1Tbmm8jm6U7ni9wYu3PkSZatLByGGs2FbWrsLAM/o7YQbByjmQZfwIuGqYHIp6WaNk9obXvQ61elGe0fMjhgUi3gnWKKSLhu7+l5oBApxZQ0wkY3IlbNO+ruEIsB1zbtQkUVByhrUkMKlYc1YzHEFc4/";

fn config(extra: &[(&str, &str)]) -> Result<SessionConfig, ConfigError> {
    let mut pairs = vec![
        ("session.compat", "beaker"),
        ("session.type", "cookie"),
        ("session.validate_key", VK),
        ("session.encrypt_key", EK),
        ("session.data_serializer", "json"),
        // The recorded cookies are from 2023: no lifetime, unless a test sets one.
        ("session.timeout", "none"),
        ("session.absolute_timeout", "none"),
    ];
    for (k, v) in extra {
        pairs.retain(|(pk, _)| pk != k);
        pairs.push((k, v));
    }
    SessionConfig::from_map(pairs)
}

fn manager(config: SessionConfig) -> (SessionManager, ManualClock) {
    let clock = ManualClock::new();
    (SessionManager::builder(config).clock(Arc::new(clock.clone())).build().unwrap(), clock)
}

fn codec(s: BeakerSerializer) -> BeakerCookieCodec {
    BeakerCookieCodec::new(&[VK.as_bytes()], &[EK.as_bytes()], s).unwrap()
}

fn cookie(v: &str) -> String {
    format!("beaker.session.id={v}")
}

#[test]
fn both_of_beakers_keys_are_required_and_only_for_cookie_sessions() {
    for (drop, named) in
        [("session.validate_key", "session.validate_key"), ("session.encrypt_key", "session.encrypt_key")]
    {
        let pairs = [
            ("session.compat", "beaker"),
            ("session.type", "cookie"),
            (if drop == "session.validate_key" { "session.encrypt_key" } else { "session.validate_key" }, VK),
        ];
        let e = SessionConfig::from_map(pairs).unwrap_err().to_string();
        assert!(e.contains(named) && e.contains("CookieSession"), "{e}");
    }
    // `secret` alone does not key Beaker's cookie sessions.
    let e = SessionConfig::from_map([
        ("session.compat", "beaker"),
        ("session.type", "cookie"),
        ("session.secret", "a secret of sixteen+ bytes"),
    ])
    .unwrap_err()
    .to_string();
    assert!(e.contains("session.validate_key"), "{e}");
    // Server-side compat sessions refuse them by name.
    let e = SessionConfig::from_map([
        ("session.compat", "beaker"),
        ("session.url", "redis://127.0.0.1:6379"),
        ("session.secret", "a secret of sixteen+ bytes"),
        ("session.encrypt_key", EK),
    ])
    .unwrap_err()
    .to_string();
    assert!(e.contains("session.encrypt_key") && e.contains("type = cookie"), "{e}");
    // Short keys are refused under their own name.
    let e = config(&[("session.validate_key", "short")]).unwrap_err().to_string();
    assert!(e.contains("session.validate_key") && e.contains("16 bytes"), "{e}");
    // A builder given Beaker's keys without cookie sessions says so.
    let c = SessionConfig::new()
        .with_compat(beaker_core::Compat::Beaker)
        .with_secret("a secret of sixteen+ bytes")
        .unwrap()
        .with_beaker_cookie_keys(&[VK.as_bytes()], &[EK.as_bytes()])
        .unwrap();
    let e = SessionManager::builder(c).build().unwrap_err().to_string();
    assert!(e.contains("session.validate_key"), "{e}");
    // Outside compat mode both stay names of `secret`.
    let c = SessionConfig::from_map([("session.validate_key", VK)]).unwrap();
    assert_eq!((c.secrets.len(), c.beaker_validate_keys.len()), (1, 0));
    // Rotation lists.
    let c = config(&[("session.encrypt_key", "a new encryption key 16+, an encryption key of 16+ bytes")]).unwrap();
    assert_eq!(c.beaker_encrypt_keys.len(), 2);
}

#[tokio::test]
async fn reads_and_updates_what_python_wrote() {
    let (m, _) = manager(config(&[]).unwrap());
    let s = m.start([cookie(PY_JSON).as_str()]);
    assert_eq!(s.get::<String>("user").await.unwrap().as_deref(), Some("alice"));
    assert_eq!(s.get::<i64>("n").await.unwrap(), Some(3));
    // Beaker's bookkeeping is not the application's.
    assert_eq!(s.keys().await.unwrap(), vec!["n".to_owned(), "user".to_owned()]);
    assert_eq!(s.id().await.unwrap().unwrap().expose(), "2c787a2a299c49078c99034dc543962b");
    s.insert("n", &4).await.unwrap();
    let out = m.finish(&s).await.unwrap();
    assert_eq!(out.len(), 1);
    assert!(out[0].as_str().contains("Path=/"), "{}", out[0].as_str());
    // What Beaker will read: same _id, _domain, _path and creation time, the new value.
    let o = codec(BeakerSerializer::Json).open(&value(&out[0]), SystemTime::now()).unwrap();
    assert_eq!(o.id, "2c787a2a299c49078c99034dc543962b");
    assert_eq!(o.record.created, SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_000_000_250));
    assert!(o.record.accessed > o.record.created + Duration::from_secs(86_400));
    let e = &o.record.entries;
    assert_eq!(DataSerializer::decode::<i64>(&e["n"]).unwrap(), 4);
    assert_eq!(DataSerializer::decode::<String>(&e["user"]).unwrap(), "alice");
    assert_eq!(DataSerializer::decode::<Option<String>>(&e[DOMAIN_ENTRY]).unwrap(), None);
    assert_eq!(DataSerializer::decode::<String>(&e[PATH_ENTRY]).unwrap(), "/");
    assert!(e.contains_key(ID_ENTRY));

    // Pickle, when configured.
    let (m, _) = manager(config(&[("session.data_serializer", "pickle")]).unwrap());
    let s = m.start([cookie(PY_PICKLE).as_str()]);
    assert_eq!(s.get::<String>("user").await.unwrap().as_deref(), Some("bob"));
    assert_eq!(s.get::<Vec<i64>>("t").await.unwrap(), Some(vec![1, 2]));
}

#[tokio::test]
async fn a_new_session_carries_beakers_keys() {
    let (m, _) = manager(config(&[("session.domain", "example.com"), ("session.path", "/app")]).unwrap());
    let s = m.start(std::iter::empty());
    s.insert("user", "dora").await.unwrap();
    let out = m.finish(&s).await.unwrap();
    let o = codec(BeakerSerializer::Json).open(&value(&out[0]), SystemTime::now()).unwrap();
    assert_eq!(o.id.len(), 32);
    assert_eq!(DataSerializer::decode::<String>(&o.record.entries[DOMAIN_ENTRY]).unwrap(), "example.com");
    assert_eq!(DataSerializer::decode::<String>(&o.record.entries[PATH_ENTRY]).unwrap(), "/app");
    // Emptying the session removes the cookie (the bookkeeping alone is no session).
    let s = m.start([pair(&out[0]).as_str()]);
    s.remove("user").await.unwrap();
    let out = m.finish(&s).await.unwrap();
    assert!(out[0].as_str().contains("Max-Age=0"), "{}", out[0].as_str());
}

#[tokio::test]
async fn a_pickle_cookie_under_json_is_absent_or_an_error_by_invalidate_corrupt() {
    let (m, _) = manager(config(&[]).unwrap());
    let s = m.start([cookie(PY_PICKLE).as_str()]);
    assert!(s.is_new().await.unwrap());
    assert_eq!(s.get::<String>("user").await.unwrap(), None);
    s.insert("user", "new").await.unwrap();
    let out = m.finish(&s).await.unwrap();
    assert_ne!(value(&out[0]), PY_PICKLE);

    let (m, _) = manager(config(&[("session.invalidate_corrupt", "false")]).unwrap());
    let s = m.start([cookie(PY_PICKLE).as_str()]);
    assert!(matches!(s.get::<String>("user").await, Err(Error::Store(_))));
    assert!(m.finish(&s).await.is_err());
    // A bad signature is no session at all, whatever invalidate_corrupt says.
    let s = m.start([cookie(&PY_PICKLE.replacen('2', "3", 1)).as_str()]);
    assert!(s.is_new().await.unwrap());
}

#[tokio::test]
async fn garbage_tampered_foreign_and_oversized_cookies_read_as_no_session() {
    let (m, _) = manager(config(&[]).unwrap());
    let mut tampered = PY_JSON.to_owned().into_bytes();
    tampered[120] = if tampered[120] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    let huge = "a".repeat(10_000);
    let foreign = {
        let other =
            BeakerCookieCodec::new(&[b"another validation key".as_slice()], &[EK.as_bytes()], BeakerSerializer::Json)
                .unwrap();
        let mut entries = std::collections::BTreeMap::new();
        entries.insert(ID_ENTRY.to_owned(), DataSerializer::Json.encode(&"0123456789abcdef0123456789abcdef").unwrap());
        entries.insert("user".to_owned(), DataSerializer::Json.encode(&"eve").unwrap());
        let now = SystemTime::now();
        other
            .seal(
                &beaker_core::store::Record { entries, created: now, accessed: now, expires: None, owner: None },
                None,
                "/",
            )
            .unwrap()
    };
    for bad in [tampered.as_str(), foreign.as_str(), "", "\"", "AAAA", &PY_JSON[..80], &huge, "%%%;;"] {
        let s = m.start([cookie(bad).as_str()]);
        assert!(s.is_new().await.unwrap(), "{bad:.40} accepted");
        assert_eq!(s.get::<String>("user").await.unwrap(), None);
    }
    // The first cookie that verifies wins over garbage ones beside it.
    let s = m.start([cookie("garbage").as_str(), cookie(PY_JSON).as_str()]);
    assert_eq!(s.get::<String>("user").await.unwrap().as_deref(), Some("alice"));
}

#[tokio::test]
async fn idle_timeout_from_accessed_time_and_cookie_expires() {
    let (m, clock) = manager(config(&[("session.timeout", "600"), ("session.cookie_expires", "3600")]).unwrap());
    let s = m.start(std::iter::empty());
    s.insert("user", "ada").await.unwrap();
    let out = m.finish(&s).await.unwrap();
    assert!(out[0].as_str().contains("Max-Age=3600"), "{}", out[0].as_str());
    let c = pair(&out[0]);
    clock.advance(Duration::from_secs(590));
    let s = m.start([c.as_str()]);
    assert_eq!(s.get::<String>("user").await.unwrap().as_deref(), Some("ada"));
    // Touched (_accessed_time moved): the new cookie lives another 600 s from now.
    let touched = pair(&m.finish(&s).await.unwrap()[0]);
    clock.advance(Duration::from_secs(590));
    let s = m.start([touched.as_str()]);
    assert_eq!(s.get::<String>("user").await.unwrap().as_deref(), Some("ada"));
    // The first cookie was last accessed 1180 s ago: expired.
    let s = m.start([c.as_str()]);
    assert!(s.is_new().await.unwrap());
    // Python's recorded cookie was last accessed in 2023.
    let (m, _) = manager(config(&[("session.timeout", "600")]).unwrap());
    let s = m.start([cookie(PY_JSON).as_str()]);
    assert!(s.is_new().await.unwrap());
}

#[tokio::test]
async fn rotation_reads_old_keys_and_rewrites_with_the_new() {
    let new_keys = [
        ("session.validate_key", "a new validation key 16+, a validation key of 16+ bytes"),
        ("session.encrypt_key", "a new encryption key 16+, an encryption key of 16+ bytes"),
    ];
    let (m, _) = manager(config(&new_keys).unwrap());
    let s = m.start([cookie(PY_JSON).as_str()]);
    assert_eq!(s.get::<String>("user").await.unwrap().as_deref(), Some("alice"));
    // Read only, but written again under the new keys.
    let out = m.finish(&s).await.unwrap();
    assert_eq!(out.len(), 1);
    assert!(codec(BeakerSerializer::Json).open(&value(&out[0]), SystemTime::now()).is_err());
    let newest = BeakerCookieCodec::new(
        &[b"a new validation key 16+".as_slice()],
        &[b"a new encryption key 16+".as_slice()],
        BeakerSerializer::Json,
    )
    .unwrap();
    assert_eq!(newest.open(&value(&out[0]), SystemTime::now()).unwrap().id, "2c787a2a299c49078c99034dc543962b");
}

#[tokio::test]
async fn a_session_past_beakers_size_limit_is_refused() {
    let (m, _) = manager(config(&[("session.cookie_limit", "100000")]).unwrap());
    let s = m.start([cookie(PY_JSON).as_str()]);
    // Incompressible: xorshift letters.
    let mut x = 0x9e37_79b9_7f4a_7c15_u64;
    let noise: String = (0..5000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            char::from(b'a' + (x % 26) as u8)
        })
        .collect();
    s.insert("big", &noise).await.unwrap();
    match m.finish(&s).await {
        Err(Error::CookieTooLarge { size, limit }) => assert!(limit == 4104 && size > limit),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn beakers_own_keys_cannot_be_written_by_the_application() {
    let (m, _) = manager(config(&[]).unwrap());
    for key in ["_id", "_domain", "_path", "_creation_time", "_accessed_time"] {
        let s = m.start([cookie(PY_JSON).as_str()]);
        s.insert(key, "mine").await.unwrap();
        match m.finish(&s).await {
            Err(Error::ReservedKey(k)) => assert_eq!(k, key),
            other => panic!("{key}: {other:?}"),
        }
    }
}
