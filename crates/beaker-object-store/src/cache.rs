//! [`ObjectCache`]: cache entries as objects under a per-namespace generation, the
//! dogpile lock as a conditional create holding a lease.

use std::time::{Duration, SystemTime};

use beaker_core::cache::{CacheBackend, CacheEntry, GenerationHints, LockOutcome, LockToken};
use beaker_core::store::async_trait;
use beaker_core::StoreError;
use object_store::path::Path;
use object_store::{GetOptions, PutMode, PutOptions, UpdateVersion};

use crate::client::{random_token, segment, ObjectStoreClient};
use crate::error::{map_error, ConnectError};
use crate::ObjectStoreOptions;

/// A [`CacheBackend`] on S3, Google Cloud Storage or Azure Blob Storage.
///
/// An entry is one object, `<prefix>/c/e/<namespace>/<generation>/<key>` (namespace and
/// key base64url-encoded, or hashed when long), holding the hard expiry (Unix
/// milliseconds, 0 for none) followed by `CacheEntry::to_bytes`. An entry past its hard
/// expiry reads as absent. Object stores have no native expiry: a bucket lifecycle rule
/// on `<prefix>/c/e/` reclaims the space of old entries and old generations.
///
/// **Clearing a namespace** writes a new random generation to
/// `<prefix>/c/g/<namespace>` (one request): every entry of the old generation becomes
/// unreachable at once, without listing the bucket.
///
/// **The dogpile lock** is `<prefix>/c/l/<namespace>/<key>`, created only if absent
/// (`If-None-Match: *`) with a random token and a lease (the lock's TTL). A holder that
/// crashed is taken over once its lease has passed, by a write conditional on the very
/// version that was read, so two callers never both take it over. `unlock` marks the
/// lock free by a write conditional on the version it read, so a holder whose lease ran
/// out cannot release the next holder's lock.
///
/// Round trips: `get` 2 requests in one round trip once this instance has seen the
/// namespace's generation (the generation and the entry are read at once; a moved
/// generation costs one more), otherwise 2 in sequence; `put` likewise; `remove` 2;
/// `clear` 1; `try_lock` 1 when the lock object does not exist, 3 when a released or
/// expired one is taken over; `unlock` 2.
#[derive(Debug, Clone)]
pub struct ObjectCache {
    client: ObjectStoreClient,
    /// The generation last seen per namespace: a guess that lets `get` read it and the
    /// entry under it at once, checked against the stored generation.
    seen: GenerationHints<String>,
}

impl ObjectCache {
    /// A cache on an existing client (which an
    /// [`ObjectSessionStore`](crate::ObjectSessionStore) may share).
    pub fn new(client: ObjectStoreClient) -> Self {
        ObjectCache { client, seen: GenerationHints::new() }
    }

    /// Opens `url`; see [`ObjectStoreClient::connect`].
    pub async fn connect(url: &str, options: ObjectStoreOptions) -> Result<Self, ConnectError> {
        Ok(Self::new(ObjectStoreClient::connect(url, options).await?))
    }

    /// The underlying client.
    pub fn client(&self) -> &ObjectStoreClient {
        &self.client
    }

    fn generation_path(&self, namespace: &str) -> Path {
        self.client.path(&["c", "g", &segment(namespace)])
    }

    fn entry_path(&self, generation: &str, namespace: &str, key: &str) -> Path {
        self.client.path(&["c", "e", &segment(namespace), generation, &segment(key)])
    }

    fn lock_path(&self, namespace: &str, key: &str) -> Path {
        self.client.path(&["c", "l", &segment(namespace), &segment(key)])
    }

    /// The bytes of `path` with its version; `None` when there is no object.
    async fn read(&self, what: &str, path: &Path) -> Result<Option<(Vec<u8>, UpdateVersion)>, StoreError> {
        let got = match self.client.store.get_opts(path, GetOptions::default()).await {
            Ok(got) => got,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(map_error(what, e)),
        };
        let version = UpdateVersion { e_tag: got.meta.e_tag.clone(), version: got.meta.version.clone() };
        let bytes = got.bytes().await.map_err(|e| map_error(what, e))?;
        Ok(Some((bytes.to_vec(), version)))
    }

    /// Writes `bytes` in `mode`; `Ok(false)` when the condition failed.
    async fn write(&self, what: &str, path: &Path, bytes: Vec<u8>, mode: PutMode) -> Result<bool, StoreError> {
        let options = PutOptions { mode, ..Default::default() };
        match self.client.store.put_opts(path, bytes.into(), options).await {
            Ok(_) => Ok(true),
            Err(
                object_store::Error::Precondition { .. }
                | object_store::Error::AlreadyExists { .. }
                | object_store::Error::NotFound { .. },
            ) => Ok(false),
            Err(e) => Err(map_error(what, e)),
        }
    }

    /// The generation as stored; `None` when the namespace has none yet.
    async fn stored_generation(&self, what: &str, namespace: &str) -> Result<Option<String>, StoreError> {
        let Some((bytes, _)) = self.read(what, &self.generation_path(namespace)).await? else { return Ok(None) };
        // A foreign or damaged value is a generation like any other (it names a
        // directory): only its shape is checked, so that it cannot leave its segment.
        let text = String::from_utf8(bytes).ok().filter(|t| is_generation(t));
        Ok(Some(text.unwrap_or_else(|| "damaged".to_owned())))
    }

    /// The current generation, started when the namespace has none. The flag says
    /// whether this call started it (then it holds no entries yet).
    async fn generation(&self, what: &str, namespace: &str) -> Result<(String, bool), StoreError> {
        if let Some(g) = self.stored_generation(what, namespace).await? {
            self.seen.remember(namespace, g.clone());
            return Ok((g, false));
        }
        let start = random_token()?;
        let path = self.generation_path(namespace);
        // Concurrent starters agree on one value: the losers read the winner's.
        if self.write(what, &path, start.clone().into_bytes(), PutMode::Create).await? {
            self.seen.remember(namespace, start.clone());
            return Ok((start, true));
        }
        match self.stored_generation(what, namespace).await? {
            Some(g) => {
                self.seen.remember(namespace, g.clone());
                Ok((g, false))
            }
            None => Err(StoreError::Unavailable {
                message: format!("{}: cache generation of {namespace:?} kept changing", self.name()),
                source: None,
            }),
        }
    }

    async fn get_inner(&self, namespace: &str, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        if let Some(guess) = self.seen.guess(namespace) {
            let path = self.entry_path(&guess, namespace, key);
            let (current, entry) =
                tokio::join!(self.stored_generation("cache get", namespace), self.read("cache get", &path));
            if current?.as_deref() == Some(guess.as_str()) {
                return Ok(entry?.map(|(b, _)| b));
            }
        }
        let (generation, started) = self.generation("cache get", namespace).await?;
        if started {
            return Ok(None);
        }
        Ok(self.read("cache get", &self.entry_path(&generation, namespace, key)).await?.map(|(b, _)| b))
    }

    async fn put_inner(&self, namespace: &str, key: &str, bytes: Vec<u8>) -> Result<(), StoreError> {
        if let Some(guess) = self.seen.guess(namespace) {
            let path = self.entry_path(&guess, namespace, key);
            let (current, written) = tokio::join!(
                self.stored_generation("cache put", namespace),
                self.write("cache put", &path, bytes.clone(), PutMode::Overwrite)
            );
            if current?.as_deref() == Some(guess.as_str()) {
                return written.map(drop);
            }
            // A clear came first: the write went to a generation nobody reads.
        }
        let (generation, _) = self.generation("cache put", namespace).await?;
        let path = self.entry_path(&generation, namespace, key);
        self.write("cache put", &path, bytes, PutMode::Overwrite).await.map(drop)
    }

    async fn remove_inner(&self, namespace: &str, key: &str) -> Result<bool, StoreError> {
        let (generation, started) = self.generation("cache remove", namespace).await?;
        if started {
            return Ok(false);
        }
        // Object stores do not say whether a delete found anything; the contract allows
        // answering true.
        match self.client.store.delete(&self.entry_path(&generation, namespace, key)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(true),
            Err(e) => Err(map_error("cache remove", e)),
        }
    }

    async fn try_lock_inner(&self, namespace: &str, key: &str, ttl: Duration) -> Result<LockOutcome, StoreError> {
        let path = self.lock_path(namespace, key);
        let token = random_token()?;
        let lease = encode_lock(&token, SystemTime::now() + ttl);
        if self.write("cache lock", &path, lease.clone(), PutMode::Create).await? {
            return Ok(LockOutcome::Acquired(LockToken(token)));
        }
        let Some((bytes, version)) = self.read("cache lock", &path).await? else {
            // Released by deletion in between (never by this crate): try once more.
            return Ok(if self.write("cache lock", &path, lease, PutMode::Create).await? {
                LockOutcome::Acquired(LockToken(token))
            } else {
                LockOutcome::Busy
            });
        };
        let held = decode_lock(&bytes).is_some_and(|(_, until)| until > SystemTime::now());
        if held {
            return Ok(LockOutcome::Busy);
        }
        // Released or lapsed: take it over, only from the version we saw.
        Ok(if self.write("cache lock", &path, lease, PutMode::Update(version)).await? {
            LockOutcome::Acquired(LockToken(token))
        } else {
            LockOutcome::Busy
        })
    }

    async fn unlock_inner(&self, namespace: &str, key: &str, token: &LockToken) -> Result<(), StoreError> {
        let path = self.lock_path(namespace, key);
        let Some((bytes, version)) = self.read("cache unlock", &path).await? else { return Ok(()) };
        if decode_lock(&bytes).is_none_or(|(owner, _)| owner != token.0) {
            return Ok(());
        }
        // A conditional write rather than a delete (object stores have no conditional
        // delete): if the lease lapsed and someone took the lock over, this fails.
        let released = encode_lock("", SystemTime::UNIX_EPOCH);
        self.write("cache unlock", &path, released, PutMode::Update(version)).await.map(drop)
    }
}

fn is_generation(text: &str) -> bool {
    !text.is_empty() && text.len() <= 64 && text.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// A lock object: `<until, Unix ms> <token>`.
fn encode_lock(token: &str, until: SystemTime) -> Vec<u8> {
    let ms = until.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_millis());
    format!("{ms} {token}").into_bytes()
}

fn decode_lock(bytes: &[u8]) -> Option<(&str, SystemTime)> {
    let (ms, token) = std::str::from_utf8(bytes).ok()?.split_once(' ')?;
    Some((token, SystemTime::UNIX_EPOCH + Duration::from_millis(ms.parse().ok()?)))
}

/// An entry object: the hard expiry (Unix ms, big-endian, 0 = none), then the entry.
fn encode_entry(entry: &CacheEntry, hard_ttl: Option<Duration>) -> Vec<u8> {
    let until = hard_ttl.map_or(0, |ttl| {
        (SystemTime::now() + ttl).duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
    });
    let mut out = until.to_be_bytes().to_vec();
    out.extend_from_slice(&entry.to_bytes());
    out
}

fn decode_entry(bytes: &[u8], now: SystemTime) -> Result<Option<CacheEntry>, StoreError> {
    if bytes.len() < 8 {
        return Err(StoreError::corrupt("not a beaker cache object"));
    }
    let until = u64::from_be_bytes(bytes[..8].try_into().expect("8 bytes"));
    if until != 0 && SystemTime::UNIX_EPOCH + Duration::from_millis(until) <= now {
        return Ok(None);
    }
    CacheEntry::from_bytes(&bytes[8..]).map(Some)
}

#[async_trait]
impl CacheBackend for ObjectCache {
    async fn get(&self, namespace: &str, key: &str) -> Result<Option<CacheEntry>, StoreError> {
        let got = self.client.bounded("cache get", self.get_inner(namespace, key)).await?;
        match got {
            Some(bytes) => decode_entry(&bytes, SystemTime::now()),
            None => Ok(None),
        }
    }

    async fn put(
        &self,
        namespace: &str,
        key: &str,
        entry: &CacheEntry,
        hard_ttl: Option<Duration>,
    ) -> Result<(), StoreError> {
        let bytes = encode_entry(entry, hard_ttl);
        self.client.bounded("cache put", self.put_inner(namespace, key, bytes)).await
    }

    async fn remove(&self, namespace: &str, key: &str) -> Result<bool, StoreError> {
        self.client.bounded("cache remove", self.remove_inner(namespace, key)).await
    }

    async fn clear(&self, namespace: &str) -> Result<(), StoreError> {
        self.client
            .bounded("cache clear", async {
                let generation = random_token()?;
                let path = self.generation_path(namespace);
                self.write("cache clear", &path, generation.clone().into_bytes(), PutMode::Overwrite).await?;
                self.seen.remember(namespace, generation);
                tracing::debug!(namespace, "{}: cache namespace cleared (new generation)", self.name());
                Ok(())
            })
            .await
    }

    async fn try_lock(&self, namespace: &str, key: &str, ttl: Duration) -> Result<LockOutcome, StoreError> {
        self.client.bounded("cache lock", self.try_lock_inner(namespace, key, ttl)).await
    }

    async fn unlock(&self, namespace: &str, key: &str, token: &LockToken) -> Result<(), StoreError> {
        self.client.bounded("cache unlock", self.unlock_inner(namespace, key, token)).await
    }

    fn name(&self) -> &'static str {
        self.client.service.as_str()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_and_locks_round_trip_and_garbage_is_refused() {
        let e = CacheEntry { value: b"j1".to_vec(), stored_at: SystemTime::now(), fresh_until: None };
        let now = SystemTime::now();
        assert_eq!(decode_entry(&encode_entry(&e, None), now).unwrap().unwrap().value, b"j1");
        let gone = encode_entry(&e, Some(Duration::ZERO));
        assert!(decode_entry(&gone, now + Duration::from_millis(5)).unwrap().is_none());
        assert!(decode_entry(b"short", now).is_err());
        let lock = encode_lock("tok", SystemTime::UNIX_EPOCH + Duration::from_millis(42));
        assert_eq!(decode_lock(&lock), Some(("tok", SystemTime::UNIX_EPOCH + Duration::from_millis(42))));
        assert!(decode_lock(b"garbage").is_none());
        assert!(is_generation("abc-_1") && !is_generation("../x") && !is_generation(""));
    }
}
