//! [`BeakerRedisStore`]: sessions in Python Beaker's `ext:redis` layout, so that a Beaker
//! application and a beaker-rs one share them.

use std::sync::LazyLock;
use std::time::{Duration, SystemTime};

use beaker_core::compat::layout::{self, BeakerCodec, BeakerLayout, Envelope, Swap};
use beaker_core::compat::{BeakerSerializer, NO_OWNER};
use beaker_core::store::{async_trait, Changes, Listed, Record, SessionStore, StoreKey};
use beaker_core::StoreError;
use redis::Script;

use crate::client::{evalsha, RedisClient};
use crate::error::ConnectError;
use crate::options::RedisOptions;

/// How much longer than the session's own expiry Redis keeps the key, as Beaker does
/// (`timeout + 2 minutes`), so that the backend never drops a record mid-request.
const TTL_MARGIN: Duration = Duration::from_secs(120);

/// KEYS[1] record; ARGV: the value read, the value to write, the TTL in ms (`0`: none).
/// Writes only if the record still holds what was read.
static COMPARE_AND_SET: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if ARGV[3] == '0' then redis.call('SET', KEYS[1], ARGV[2]) else redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3]) end
return 1
",
    )
});

/// A [`SessionStore`] that reads and writes exactly what Python Beaker 1.14's `ext:redis`
/// back end does (the `compat = beaker` mode), with `data_serializer = json` or, through
/// [`with_serializer`](Self::with_serializer), Beaker's default `pickle`.
///
/// - A session is the string key `beaker_cache:<id>:session` (the id unhashed: Beaker
///   looks records up by id), holding a pickled `str`: the base64 of the zlib-compressed
///   JSON session dict, with Beaker's `_creation_time` and `_accessed_time`.
/// - The key's TTL is the record's expiry plus two minutes, as Beaker sets it
///   (`timeout + 120` seconds); no expiry, no TTL. Idle timeouts are decided from
///   `_accessed_time` by both sides, so configure the same `timeout` on both.
/// - Beaker stores one blob per session, so `apply` is a read-modify-write made atomic
///   by a compare-and-set script: concurrent beaker-rs requests that change different keys
///   of one session both survive (a Beaker writer, which does not lock, still replaces the
///   whole dict, as it does between two Beaker processes).
/// - A record in another serializer than the one configured, an encrypted one, or a
///   pickle holding anything but plain data is [`StoreError::Corrupt`]: treated as absent
///   and logged.
#[derive(Debug, Clone)]
pub struct BeakerRedisStore {
    client: RedisClient,
    serializer: BeakerSerializer,
}

impl BeakerRedisStore {
    /// A store on an existing client.
    pub fn new(client: RedisClient) -> Self {
        BeakerRedisStore { client, serializer: BeakerSerializer::Json }
    }

    /// Uses Beaker's `serializer` for the session dict (`data_serializer`; JSON by default).
    pub fn with_serializer(mut self, serializer: BeakerSerializer) -> Self {
        self.serializer = serializer;
        self
    }

    /// Connects a new client; see [`RedisClient::connect`].
    pub async fn connect(url: &str, options: RedisOptions) -> Result<Self, ConnectError> {
        Ok(Self::new(RedisClient::connect(url, options).await?))
    }

    /// The Redis key Beaker files a session under: `beaker_cache:<id>:session`.
    pub fn redis_key(&self, key: &StoreKey) -> String {
        format!("beaker_cache:{}:session", key.as_str())
    }
}

/// The key's TTL in ms for a record expiring at `expires` (`0`: no TTL).
fn ttl_ms(expires: Option<SystemTime>) -> u64 {
    expires.map_or(0, |e| {
        let left = e.duration_since(SystemTime::now()).unwrap_or_default();
        (left + TTL_MARGIN).as_millis().max(1) as u64
    })
}

#[async_trait]
impl BeakerLayout for BeakerRedisStore {
    fn codec(&self) -> BeakerCodec {
        BeakerCodec { envelope: Envelope::Text, serializer: self.serializer }
    }

    async fn read(&self, key: &StoreKey) -> Result<Option<Vec<u8>>, StoreError> {
        let rkey = self.redis_key(key);
        self.client
            .run("load", |mut c| {
                let rkey = &rkey;
                async move { redis::cmd("GET").arg(rkey).query_async(&mut c).await }
            })
            .await
    }

    async fn compare_and_set(&self, key: &StoreKey, what: &str, swap: Swap<'_>) -> Result<bool, StoreError> {
        let mut call = evalsha(&COMPARE_AND_SET, &self.redis_key(key));
        call.arg(swap.old).arg(swap.new).arg(ttl_ms(swap.expires));
        let written: i64 = self.client.eval(what, &COMPARE_AND_SET, &call).await?;
        Ok(written == 1)
    }
}

#[async_trait]
impl SessionStore for BeakerRedisStore {
    async fn load(&self, key: &StoreKey) -> Result<Option<Record>, StoreError> {
        layout::load(self, key).await
    }

    async fn create(&self, key: &StoreKey, record: &Record) -> Result<bool, StoreError> {
        let value = layout::create_blob(self, record)?;
        let rkey = self.redis_key(key);
        let ttl = ttl_ms(record.expires);
        let set: Option<String> = self
            .client
            .run("create", |mut c| {
                let (rkey, value) = (&rkey, &value);
                async move {
                    let mut cmd = redis::cmd("SET");
                    cmd.arg(rkey).arg(value.as_slice()).arg("NX");
                    if ttl != 0 {
                        cmd.arg("PX").arg(ttl);
                    }
                    cmd.query_async(&mut c).await
                }
            })
            .await?;
        Ok(set.is_some())
    }

    async fn apply(&self, key: &StoreKey, changes: &Changes) -> Result<bool, StoreError> {
        layout::apply(self, key, changes).await
    }

    async fn touch(
        &self,
        key: &StoreKey,
        accessed: SystemTime,
        expires: Option<SystemTime>,
    ) -> Result<bool, StoreError> {
        layout::touch(self, key, accessed, expires).await
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

    async fn sessions_of(&self, _principal: &str) -> Result<Vec<Listed>, StoreError> {
        Err(StoreError::unsupported(self.name(), NO_OWNER))
    }

    fn name(&self) -> &'static str {
        "redis-beaker"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_keeps_beakers_margin() {
        assert_eq!(ttl_ms(None), 0);
        let past = ttl_ms(Some(SystemTime::UNIX_EPOCH));
        assert_eq!(past, 120_000);
        let soon = ttl_ms(Some(SystemTime::now() + Duration::from_secs(60)));
        assert!((179_000..=180_000).contains(&soon), "{soon}");
    }
}
