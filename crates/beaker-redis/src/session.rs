//! [`RedisStore`]: sessions as Redis hashes, changed per key by Lua scripts.

use std::collections::BTreeMap;
use std::sync::LazyLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use beaker_core::{async_trait, Changes, Record, SessionStore, StoreError, StoreKey};
use redis::Script;

use crate::client::RedisClient;
use crate::error::ConnectError;
use crate::options::RedisOptions;

/// Field-name prefix of the session's own entries, keeping them apart from the meta field.
const ENTRY: &str = "k:";
/// The meta field: `"<created> <accessed> <expires>"`, Unix ms (`0`: no expiry). One field
/// rather than three keeps `HGETALL` short (the reply parse is most of a load's CPU).
const META: &str = "m";
/// The meta fields of records written before 0.1 (`m:c`, `m:a`, `m:e`): still read; a
/// write to such a record moves its data to a fresh id (the scripts find no `m`).
const LEGACY_META: [&str; 3] = ["m:c", "m:a", "m:e"];

// Every script starts by reading `m`: Redis never reports an expired key, so "no live
// record" is decided by the server's own clock and TTL.

/// KEYS[1] session; ARGV: meta (`"c a e"`), expires (ms, 0 = none), then field/value pairs.
static CREATE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'm', ARGV[1])
for i = 3, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
if ARGV[2] ~= '0' then redis.call('PEXPIREAT', KEYS[1], ARGV[2]) end
return 1
",
    )
});

/// KEYS[1] session; ARGV: clear (0/1), accessed, expires, number of removals, the removed
/// fields, then field/value pairs to set.
static APPLY: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local m = redis.call('HGET', KEYS[1], 'm')
if not m then return 0 end
if ARGV[1] == '1' then
  for _, f in ipairs(redis.call('HKEYS', KEYS[1])) do
    if string.sub(f, 1, 2) == 'k:' then redis.call('HDEL', KEYS[1], f) end
  end
end
local n = tonumber(ARGV[4])
for i = 5, 4 + n do redis.call('HDEL', KEYS[1], ARGV[i]) end
for i = 5 + n, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
redis.call('HSET', KEYS[1], 'm', (string.match(m, '^%d+') or '0') .. ' ' .. ARGV[2] .. ' ' .. ARGV[3])
if ARGV[3] == '0' then redis.call('PERSIST', KEYS[1]) else redis.call('PEXPIREAT', KEYS[1], ARGV[3]) end
return 1
",
    )
});

/// KEYS[1] session; ARGV: accessed, expires.
static TOUCH: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local m = redis.call('HGET', KEYS[1], 'm')
if not m then return 0 end
redis.call('HSET', KEYS[1], 'm', (string.match(m, '^%d+') or '0') .. ' ' .. ARGV[1] .. ' ' .. ARGV[2])
if ARGV[2] == '0' then redis.call('PERSIST', KEYS[1]) else redis.call('PEXPIREAT', KEYS[1], ARGV[2]) end
return 1
",
    )
});

/// A [`SessionStore`] on Redis (single node, Cluster or Sentinel).
///
/// A session is one hash under `<session_prefix>{<store key>}` (the braces are a cluster
/// hash tag, so everything of one session stays in one slot): the entries as fields
/// `k:<key>`, the timestamps in field `m` as `"<created> <accessed> <expires>"` (Unix
/// milliseconds, `0` for no expiry), and the record's
/// expiry as the key's native TTL (`PEXPIREAT`; no TTL when the record has no expiry).
///
/// Round trips per call, in the steady state: one each. `load` is `HGETALL`; `create`,
/// `apply` and `touch` are an `EVALSHA` of a script that checks the key exists and writes;
/// `delete` is `DEL`. The first time a script runs on a server it costs two more
/// (`NOSCRIPT`, then `SCRIPT LOAD`). `apply` changes only the named fields, atomically, so concurrent requests that
/// change different keys of one session both survive.
///
/// ```no_run
/// use beaker_core::{MemoryStore, SessionConfig, SessionManager};
/// use beaker_redis::{RedisOptions, RedisStore};
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let store = RedisStore::connect("redis://127.0.0.1:6379", RedisOptions::default()).await?;
/// let config = SessionConfig::new().with_secret("change me: at least 16 bytes")?;
/// let manager = SessionManager::builder(config).store(store).build()?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct RedisStore {
    client: RedisClient,
}

impl RedisStore {
    /// A store on an existing client (which a [`RedisCache`](crate::RedisCache) may share).
    pub fn new(client: RedisClient) -> Self {
        RedisStore { client }
    }

    /// Connects a new client; see [`RedisClient::connect`].
    pub async fn connect(url: &str, options: RedisOptions) -> Result<Self, ConnectError> {
        Ok(Self::new(RedisClient::connect(url, options).await?))
    }

    /// The underlying client.
    pub fn client(&self) -> &RedisClient {
        &self.client
    }

    /// The Redis key a session is filed under.
    pub fn redis_key(&self, key: &StoreKey) -> String {
        format!("{}{{{}}}", self.client.options().session_prefix, key.as_str())
    }
}

fn millis(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// Expiry as sent to the scripts: Unix ms, `0` for none. A time at or before the epoch
/// is sent as 1 ms so that it still means "already expired" rather than "never".
fn expiry_arg(expires: Option<SystemTime>) -> u64 {
    expires.map_or(0, |e| millis(e).max(1))
}

fn parse_ms(raw: &[u8], name: &str) -> Result<u64, StoreError> {
    std::str::from_utf8(raw)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| StoreError::corrupt(format!("redis session field {name} is not a number")))
}

/// The `(created, accessed, expires)` milliseconds of a record's meta field (or of the
/// three legacy fields).
fn parse_meta(meta: Option<Vec<u8>>, legacy: &mut [Option<Vec<u8>>; 3]) -> Result<[u64; 3], StoreError> {
    let mut out = [0u64; 3];
    match meta {
        Some(raw) => {
            let mut parts = raw.split(|b| *b == b' ');
            for slot in &mut out {
                let part = parts.next().ok_or_else(|| StoreError::corrupt("redis session meta field is truncated"))?;
                *slot = parse_ms(part, META)?;
            }
            if parts.next().is_some() {
                return Err(StoreError::corrupt("redis session meta field has extra parts"));
            }
        }
        None => {
            for ((slot, raw), name) in out.iter_mut().zip(legacy.iter_mut()).zip(LEGACY_META) {
                let raw =
                    raw.take().ok_or_else(|| StoreError::corrupt(format!("redis session without its {name} field")))?;
                *slot = parse_ms(&raw, name)?;
            }
        }
    }
    Ok(out)
}

/// Turns `HGETALL` output into a record; `None` if the hash is empty (no key).
fn decode(raw: Vec<(Vec<u8>, Vec<u8>)>) -> Result<Option<Record>, StoreError> {
    if raw.is_empty() {
        return Ok(None);
    }
    let mut meta = None;
    let mut legacy: [Option<Vec<u8>>; 3] = Default::default();
    let mut entries = BTreeMap::new();
    for (field, value) in raw {
        if let Some(key) = field.strip_prefix(ENTRY.as_bytes()) {
            let key =
                String::from_utf8(key.to_vec()).map_err(|_| StoreError::corrupt("redis session field is not UTF-8"))?;
            entries.insert(key, value);
        } else if field == META.as_bytes() {
            meta = Some(value);
        } else if let Some(i) = LEGACY_META.iter().position(|m| m.as_bytes() == field.as_slice()) {
            legacy[i] = Some(value);
        }
    }
    let [created, accessed, expires] = parse_meta(meta, &mut legacy)?;
    let from_ms = |ms| UNIX_EPOCH + Duration::from_millis(ms);
    Ok(Some(Record {
        entries,
        created: from_ms(created),
        accessed: from_ms(accessed),
        expires: (expires != 0).then(|| from_ms(expires)),
    }))
}

#[async_trait]
impl SessionStore for RedisStore {
    async fn load(&self, key: &StoreKey) -> Result<Option<Record>, StoreError> {
        let rkey = self.redis_key(key);
        let raw: Vec<(Vec<u8>, Vec<u8>)> = self
            .client
            .run("load", |mut c| {
                let rkey = &rkey;
                async move { redis::cmd("HGETALL").arg(rkey).query_async(&mut c).await }
            })
            .await?;
        // Redis expires on its own clock; the record's own expiry is checked too, so that
        // a skew between the two never hands out a record the engine considers expired.
        Ok(decode(raw)?.filter(|r| !r.is_expired(SystemTime::now())))
    }

    async fn create(&self, key: &StoreKey, record: &Record) -> Result<bool, StoreError> {
        let rkey = self.redis_key(key);
        let mut inv = CREATE.prepare_invoke();
        let expires = expiry_arg(record.expires);
        inv.key(&rkey).arg(format!("{} {} {expires}", millis(record.created), millis(record.accessed))).arg(expires);
        for (k, v) in &record.entries {
            inv.arg(format!("{ENTRY}{k}")).arg(v.as_slice());
        }
        let created: i64 = self
            .client
            .run("create", |mut c| {
                let inv = &inv;
                async move { inv.invoke_async(&mut c).await }
            })
            .await?;
        Ok(created == 1)
    }

    async fn apply(&self, key: &StoreKey, changes: &Changes) -> Result<bool, StoreError> {
        let rkey = self.redis_key(key);
        let mut inv = APPLY.prepare_invoke();
        inv.key(&rkey)
            .arg(if changes.clear { "1" } else { "0" })
            .arg(millis(changes.accessed))
            .arg(expiry_arg(changes.expires))
            .arg(changes.remove.len());
        for k in &changes.remove {
            inv.arg(format!("{ENTRY}{k}"));
        }
        for (k, v) in &changes.set {
            inv.arg(format!("{ENTRY}{k}")).arg(v.as_slice());
        }
        let applied: i64 = self
            .client
            .run("apply", |mut c| {
                let inv = &inv;
                async move { inv.invoke_async(&mut c).await }
            })
            .await?;
        Ok(applied == 1)
    }

    async fn touch(
        &self,
        key: &StoreKey,
        accessed: SystemTime,
        expires: Option<SystemTime>,
    ) -> Result<bool, StoreError> {
        let rkey = self.redis_key(key);
        let mut inv = TOUCH.prepare_invoke();
        inv.key(&rkey).arg(millis(accessed)).arg(expiry_arg(expires));
        let touched: i64 = self
            .client
            .run("touch", |mut c| {
                let inv = &inv;
                async move { inv.invoke_async(&mut c).await }
            })
            .await?;
        Ok(touched == 1)
    }

    async fn delete(&self, key: &StoreKey) -> Result<(), StoreError> {
        let rkey = self.redis_key(key);
        let _: i64 = self
            .client
            .run("delete", |mut c| {
                let rkey = &rkey;
                async move { redis::cmd("DEL").arg(rkey).query_async(&mut c).await }
            })
            .await?;
        Ok(())
    }

    fn name(&self) -> &'static str {
        "redis"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_splits_entries_from_meta_and_rejects_garbage() {
        let raw = vec![
            (b"m".to_vec(), b"1000 2000 0".to_vec()),
            ("k:ключ".as_bytes().to_vec(), vec![0, 255]),
            (b"k:k:nested".to_vec(), b"v".to_vec()),
        ];
        let r = decode(raw).unwrap().unwrap();
        assert_eq!(r.entries.get("ключ"), Some(&vec![0, 255]));
        assert_eq!(r.entries.get("k:nested"), Some(&b"v".to_vec()));
        assert_eq!(r.expires, None);
        assert_eq!(r.created, UNIX_EPOCH + Duration::from_secs(1));
        assert_eq!(r.accessed, UNIX_EPOCH + Duration::from_secs(2));
        let r = decode(vec![(b"m".to_vec(), b"1 2 3000".to_vec())]).unwrap().unwrap();
        assert_eq!(r.expires, Some(UNIX_EPOCH + Duration::from_secs(3)));
        assert!(decode(vec![]).unwrap().is_none());
        assert!(matches!(decode(vec![(b"k:a".to_vec(), b"v".to_vec())]), Err(StoreError::Corrupt { .. })));
        for bad in ["soon 1 0", "1 2", "1 2 3 4", "", "1  2 3", "-1 2 3"] {
            let raw = vec![(b"m".to_vec(), bad.as_bytes().to_vec())];
            assert!(matches!(decode(raw), Err(StoreError::Corrupt { .. })), "{bad:?} was accepted");
        }
        let bad_utf8 = vec![(b"m".to_vec(), b"1 2 0".to_vec()), (b"k:\xff".to_vec(), b"v".to_vec())];
        assert!(matches!(decode(bad_utf8), Err(StoreError::Corrupt { .. })));
    }

    #[test]
    fn records_of_the_legacy_layout_still_load() {
        let raw = vec![
            (b"m:c".to_vec(), b"1000".to_vec()),
            (b"m:a".to_vec(), b"2000".to_vec()),
            (b"m:e".to_vec(), b"0".to_vec()),
            (b"k:n".to_vec(), b"1".to_vec()),
        ];
        let r = decode(raw).unwrap().unwrap();
        assert_eq!(
            (r.created, r.accessed, r.expires),
            (UNIX_EPOCH + Duration::from_secs(1), UNIX_EPOCH + Duration::from_secs(2), None)
        );
        let missing = vec![(b"m:c".to_vec(), b"1".to_vec()), (b"m:a".to_vec(), b"1".to_vec())];
        assert!(matches!(decode(missing), Err(StoreError::Corrupt { .. })));
    }

    #[test]
    fn expiry_argument_never_means_forever_by_accident() {
        assert_eq!(expiry_arg(None), 0);
        assert_eq!(expiry_arg(Some(UNIX_EPOCH)), 1);
        assert_eq!(expiry_arg(Some(UNIX_EPOCH + Duration::from_millis(5))), 5);
    }
}
