//! The OWASP session-management checklist items that the other suites do not already
//! prove (see `docs/security.md` for the whole list and where each item is tested).

mod common;

use std::collections::HashSet;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use beaker_core::__private::Keys;
use beaker_core::store::{async_trait, Changes, Record, SessionStore, StoreKey};
use beaker_core::{MemoryStore, Secret, SessionConfig, SessionId, SessionManager, StoreError};
use common::*;

const COOKIE: &str = "beaker.session.id";

/// Session ids: 32 URL-safe characters carrying 192 bits from the OS CSPRNG. Twenty
/// thousand ids are all distinct and every one of the 192 bit positions is set in about
/// half of them (a stuck or biased bit would be far outside ±3 %, which is > 8 σ).
#[test]
fn ids_have_192_bits_of_url_safe_randomness() {
    const N: usize = 20_000;
    let mut seen = HashSet::with_capacity(N);
    let mut ones = [0u32; 192];
    for _ in 0..N {
        let id = SessionId::generate();
        let s = id.expose();
        assert_eq!(s.len(), 32, "{s}");
        assert!(s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'), "{s}");
        assert_eq!(SessionId::parse(s).as_ref(), Some(&id), "a generated id must parse back");
        let raw = URL_SAFE_NO_PAD.decode(s).unwrap();
        assert_eq!(raw.len(), 24);
        for (i, byte) in raw.iter().enumerate() {
            for bit in 0..8 {
                ones[i * 8 + bit] += u32::from(byte >> bit & 1);
            }
        }
        assert!(seen.insert(s.to_owned()), "duplicate id {s}");
    }
    for (bit, count) in ones.iter().enumerate() {
        let share = f64::from(*count) / N as f64;
        assert!((0.47..=0.53).contains(&share), "bit {bit} is set in {:.1} % of the ids", share * 100.0);
    }
}

/// Fixation: a cookie carrying a well-formed id that this server never issued is not
/// adopted, even when it is correctly signed (say, planted by someone who learned an old
/// secret, or replayed after the store was wiped): writing gives the session a fresh id and
/// nothing is ever stored under the planted one.
#[tokio::test]
async fn a_validly_signed_but_unknown_id_is_never_adopted() {
    let f = fixture(config());
    let planted = SessionId::generate();
    let keys = Keys::new(&[Secret::new(SECRET.as_bytes().to_vec()).unwrap()]).unwrap();
    let header = format!("{COOKIE}={}", keys.sign(COOKIE, planted.expose()));
    let s = f.manager.start([header.as_str()]);
    assert!(s.is_new().await.unwrap(), "an unknown id must read as a new session");
    s.insert("user", "victim").await.unwrap();
    let out = f.manager.finish(&s).await.unwrap();
    let issued = s.id().await.unwrap().expect("an id once written");
    assert_ne!(issued, planted, "the planted id was adopted");
    assert!(!out[0].as_str().contains(planted.expose()), "{out:?}");
    assert!(f.store.inner.load(&StoreKey::for_id(&planted, true)).await.unwrap().is_none());
    assert!(f.store.inner.load(&StoreKey::for_id(&issued, true)).await.unwrap().is_some());
}

/// Cookie scope: a configured narrow Path and Domain are on the session cookie and
/// repeated on the removal cookie; by default there is no Domain (a host-only cookie).
#[tokio::test]
async fn narrow_path_and_domain_are_kept_on_set_and_removal_cookies() {
    let f = fixture(config().with_path("/app").with_domain("shop.example").with_secure(true));
    let s = f.manager.start(std::iter::empty());
    s.insert("n", &1).await.unwrap();
    let set = f.manager.finish(&s).await.unwrap().into_set_cookies().remove(0);
    let back = f.manager.start([pair(&set).as_str()]);
    let set = set.into_string();
    back.invalidate().await.unwrap();
    let removal = f.manager.finish(&back).await.unwrap().into_set_cookies().remove(0).into_string();
    for cookie in [&set, &removal] {
        for attr in ["Path=/app", "Domain=shop.example", "Secure", "HttpOnly", "SameSite=Lax"] {
            assert!(cookie.split("; ").any(|a| a == attr), "{cookie} lacks {attr}");
        }
    }
    assert!(removal.contains("Max-Age=0"), "{removal}");

    let host_only = fixture(config());
    let s = host_only.manager.start(std::iter::empty());
    s.insert("n", &1).await.unwrap();
    let set = host_only.manager.finish(&s).await.unwrap().into_set_cookies().remove(0).into_string();
    assert!(!set.contains("Domain="), "no Domain unless configured: {set}");
    assert!(set.contains("Path=/") && set.contains("HttpOnly") && set.contains("SameSite=Lax"), "{set}");
}

/// Logout invalidates server-side: the record is deleted, so replaying the old cookie
/// (copied before the logout) finds nothing.
#[tokio::test]
async fn a_cookie_replayed_after_logout_finds_nothing() {
    let f = fixture(config());
    let s = f.manager.start(std::iter::empty());
    s.insert("user", "ada").await.unwrap();
    let cookie = pair(&f.manager.finish(&s).await.unwrap()[0]);
    let id = s.id().await.unwrap().unwrap();

    let logout = f.manager.start([cookie.as_str()]);
    logout.invalidate().await.unwrap();
    assert!(f.manager.finish(&logout).await.unwrap()[0].is_removal());
    assert!(f.store.inner.load(&StoreKey::for_id(&id, true)).await.unwrap().is_none(), "the record survived logout");

    // Within the retired window: no data, and a write is dropped without a cookie.
    let replay = f.manager.start([cookie.as_str()]);
    assert!(replay.is_new().await.unwrap());
    assert_eq!(replay.get::<String>("user").await.unwrap(), None);
    replay.insert("user", "mallory").await.unwrap();
    assert!(f.manager.finish(&replay).await.unwrap().is_empty());
    assert!(replay.changes_dropped());
    // Later: a brand-new session, never the old id.
    f.clock.advance(std::time::Duration::from_secs(61));
    let replay = f.manager.start([cookie.as_str()]);
    assert_eq!(replay.get::<String>("user").await.unwrap(), None);
    replay.insert("user", "mallory").await.unwrap();
    assert_eq!(f.manager.finish(&replay).await.unwrap().len(), 1);
    assert_ne!(replay.id().await.unwrap().unwrap(), id, "a write after logout must not revive the old id");
}

/// A store that records every key and record it is handed.
#[derive(Debug, Clone, Default)]
struct Spy {
    inner: MemoryStore,
    seen: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl Spy {
    fn saw(&self, bytes: &[u8]) {
        self.seen.lock().unwrap().push(bytes.to_vec());
    }
    fn contains(&self, needle: &str) -> bool {
        self.seen.lock().unwrap().iter().any(|b| b.windows(needle.len()).any(|w| w == needle.as_bytes()))
    }
}

#[async_trait]
impl SessionStore for Spy {
    async fn load(&self, key: &StoreKey) -> Result<Option<Record>, StoreError> {
        self.saw(key.as_str().as_bytes());
        self.inner.load(key).await
    }
    async fn create(&self, key: &StoreKey, record: &Record) -> Result<bool, StoreError> {
        self.saw(key.as_str().as_bytes());
        self.saw(&record.to_bytes());
        self.inner.create(key, record).await
    }
    async fn apply(&self, key: &StoreKey, changes: &Changes) -> Result<bool, StoreError> {
        self.saw(key.as_str().as_bytes());
        for (k, v) in &changes.set {
            self.saw(k.as_bytes());
            self.saw(v);
        }
        self.inner.apply(key, changes).await
    }
    async fn touch(
        &self,
        key: &StoreKey,
        accessed: SystemTime,
        expires: Option<SystemTime>,
    ) -> Result<bool, StoreError> {
        self.saw(key.as_str().as_bytes());
        self.inner.touch(key, accessed, expires).await
    }
    async fn delete(&self, key: &StoreKey) -> Result<(), StoreError> {
        self.saw(key.as_str().as_bytes());
        self.inner.delete(key).await
    }
    fn name(&self) -> &'static str {
        "spy"
    }
}

/// Ids are hashed at rest: across create, update, regenerate and logout, the store is
/// never handed a live session id, as a key or inside a record. `hash_ids = false` (for
/// Beaker interoperability) is the explicit switch that files records under the raw id.
#[tokio::test]
async fn stores_never_see_a_live_session_id() {
    async fn walk(manager: &SessionManager) -> Vec<SessionId> {
        let s = manager.start(std::iter::empty());
        s.insert("n", &1).await.unwrap();
        let cookie = pair(&manager.finish(&s).await.unwrap()[0]);
        let first = s.id().await.unwrap().unwrap();
        let s = manager.start([cookie.as_str()]);
        s.insert("n", &2).await.unwrap();
        s.regenerate_id().await.unwrap();
        let cookie = pair(&manager.finish(&s).await.unwrap()[0]);
        let second = s.id().await.unwrap().unwrap();
        let s = manager.start([cookie.as_str()]);
        s.invalidate().await.unwrap();
        manager.finish(&s).await.unwrap();
        vec![first, second]
    }
    let spy = Spy::default();
    let manager = SessionManager::builder(config()).store(spy.clone()).build().unwrap();
    let ids = walk(&manager).await;
    assert_ne!(ids[0], ids[1]);
    for id in &ids {
        assert!(!spy.contains(id.expose()), "the store was handed a live id");
    }

    let raw = Spy::default();
    let manager = SessionManager::builder(config().with_hash_ids(false)).store(raw.clone()).build().unwrap();
    let ids = walk(&manager).await;
    assert!(ids.iter().all(|id| raw.contains(id.expose())), "hash_ids = false files records under the raw id");
}

/// Signature checks compare the whole tag: changing any one character of it, cutting it
/// short or dropping it reads as no session. (The comparison itself is constant-time:
/// `hmac::Mac::verify_slice`, built on `subtle`; AES-GCM tags are checked the same way.)
#[tokio::test]
async fn every_character_of_the_signature_counts() {
    let f = fixture(config());
    let s = f.manager.start(std::iter::empty());
    s.insert("n", &1).await.unwrap();
    let signed = value(&f.manager.finish(&s).await.unwrap()[0]);
    let (id, tag) = signed.rsplit_once('.').unwrap();
    assert_eq!(tag.len(), 43, "an HMAC-SHA256 tag in URL-safe base64");
    let mut forgeries: Vec<String> = (0..tag.len())
        .map(|i| {
            let mut t = tag.as_bytes().to_vec();
            t[i] = if t[i] == b'A' { b'B' } else { b'A' };
            format!("{id}.{}", String::from_utf8(t).unwrap())
        })
        .collect();
    forgeries.extend([format!("{id}.{}", &tag[..42]), format!("{id}."), id.to_owned(), format!("{id}.{tag}A")]);
    for forged in forgeries {
        let s = f.manager.start([format!("{COOKIE}={forged}").as_str()]);
        assert!(s.is_new().await.unwrap(), "accepted a forged signature {forged}");
    }
    let s = f.manager.start([format!("{COOKIE}={signed}").as_str()]);
    assert!(!s.is_new().await.unwrap(), "the genuine cookie must still load");
}

/// A tracing subscriber that writes every span and event, with all their fields, into a
/// buffer.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<String>>);

struct Fields<'a>(&'a mut String);

impl tracing::field::Visit for Fields<'_> {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        let _ = write!(self.0, " {}={value:?}", field.name());
    }
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        let _ = write!(self.0, " {}={value}", field.name());
    }
}

impl tracing::Subscriber for Capture {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, span: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        let mut log = self.0.lock().unwrap();
        let _ = write!(log, "\nspan {}", span.metadata().name());
        span.record(&mut Fields(&mut log));
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, values: &tracing::span::Record<'_>) {
        values.record(&mut Fields(&mut self.0.lock().unwrap()));
    }
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        let mut log = self.0.lock().unwrap();
        let _ = write!(log, "\n{} {}", event.metadata().level(), event.metadata().target());
        event.record(&mut Fields(&mut log));
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

/// No session data in logs: everything the engine logs, at every level, while sessions
/// are created, read, tampered with, regenerated, invalidated and while the store fails,
/// carries neither a session id, a cookie value, a secret nor a session value.
#[test]
fn logs_carry_no_ids_cookie_values_secrets_or_session_data() {
    let capture = Capture::default();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let (ids, cookies) = tracing::subscriber::with_default(capture.clone(), || {
        runtime.block_on(async {
            let f = fixture(config().with_timeout(std::time::Duration::from_secs(60)));
            let s = f.manager.start(std::iter::empty());
            s.insert("card", "4111-1111-1111-1111").await.unwrap();
            let first = f.manager.finish(&s).await.unwrap();
            let cookie = pair(&first[0]);
            let mut ids = vec![s.id().await.unwrap().unwrap()];
            let mut cookies = vec![value(&first[0])];

            // Tampered, malformed and unknown cookies.
            let mut tampered = cookie.clone();
            tampered.pop();
            tampered.push('x');
            let planted = SessionId::generate();
            let keys = Keys::new(&[Secret::new(SECRET.as_bytes().to_vec()).unwrap()]).unwrap();
            let planted_cookie = keys.sign(COOKIE, planted.expose());
            for header in [tampered, format!("{COOKIE}=not-an-id"), format!("{COOKIE}={planted_cookie}")] {
                let s = f.manager.start([header.as_str()]);
                let _ = s.get::<String>("card").await;
                let _ = f.manager.finish(&s).await;
            }
            ids.push(planted);
            cookies.push(planted_cookie);

            // Regenerate, read, and a store outage on load and on save.
            let s = f.manager.start([cookie.as_str()]);
            assert_eq!(s.get::<String>("card").await.unwrap().as_deref(), Some("4111-1111-1111-1111"));
            s.regenerate_id().await.unwrap();
            let out = f.manager.finish(&s).await.unwrap();
            let cookie = pair(&out[0]);
            ids.push(s.id().await.unwrap().unwrap());
            cookies.push(value(&out[0]));
            f.store.down.store(true, std::sync::atomic::Ordering::SeqCst);
            let s = f.manager.start([cookie.as_str()]);
            assert!(s.get::<String>("card").await.is_err());
            assert!(f.manager.finish(&s).await.is_err());
            f.store.down.store(false, std::sync::atomic::Ordering::SeqCst);
            let s = f.manager.start([cookie.as_str()]);
            s.insert("card", "5500-0000-0000-0004").await.unwrap();
            f.store.down.store(true, std::sync::atomic::Ordering::SeqCst);
            assert!(f.manager.finish(&s).await.is_err());
            f.store.down.store(false, std::sync::atomic::Ordering::SeqCst);

            // Logout.
            let s = f.manager.start([cookie.as_str()]);
            s.invalidate().await.unwrap();
            f.manager.finish(&s).await.unwrap();
            (ids, cookies)
        })
    });
    let log = capture.0.lock().unwrap().clone();
    assert!(log.contains("bad signature") || log.contains("ignored"), "the capture saw nothing; log:{log}");
    assert!(log.contains("simulated outage") || log.contains("store call failed"), "outages are logged; log:{log}");
    let secrets = [SECRET, "4111-1111-1111-1111", "5500-0000-0000-0004"];
    for needle in ids.iter().map(|i| i.expose().to_owned()).chain(cookies).chain(secrets.map(str::to_owned)) {
        assert!(!log.contains(&needle), "the logs leak {needle:?}:{log}");
    }
}

/// Cookie-only sessions carry the data encrypted: neither the values nor the id appear
/// in the cookie, and a session configured for `Secure` cookies never sends one without it.
#[tokio::test]
async fn cookie_sessions_are_opaque_and_keep_the_attributes() {
    let config = SessionConfig::new().with_secret(SECRET).unwrap().with_secure(true);
    let manager = SessionManager::builder(config).cookie_store(beaker_core::CookieStore).build().unwrap();
    let s = manager.start(std::iter::empty());
    s.insert("card", "4111-1111-1111-1111").await.unwrap();
    let out = manager.finish(&s).await.unwrap().into_set_cookies().remove(0).into_string();
    let id = s.id().await.unwrap().unwrap();
    assert!(!out.contains("4111") && !out.contains(id.expose()), "{out}");
    for attr in ["Secure", "HttpOnly", "SameSite=Lax", "Path=/"] {
        assert!(out.split("; ").any(|a| a == attr), "{out} lacks {attr}");
    }
}
