//! What every store on one of Python Beaker's record layouts does the same way, whatever
//! back end holds the bytes: Beaker keeps one blob per session, so a change is a read,
//! a decode, the change, an encode and a write that happens only if nobody wrote in
//! between.
//!
//! A store implements [`BeakerLayout`] (read a blob, compare-and-set a blob) and forwards
//! its [`SessionStore`] `load`, `apply` and `touch` to [`load`], [`apply`] and [`touch`],
//! and encodes what it creates with [`create_blob`].

use std::time::SystemTime;

use super::{payload, refuse_owner, BeakerSerializer};
use crate::error::StoreError;
use crate::store::{async_trait, Changes, Record, SessionStore, StoreKey};

/// Attempts of an optimistic read-modify-write before giving up under contention.
pub const CAS_ATTEMPTS: usize = 16;

/// How a Beaker back end wraps the serialized session dict before it stores it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Envelope {
    /// A pickled `str`, as `ext:redis` keeps it ([`payload::pickle_text`]).
    Text,
    /// The pickled namespace dict `{'session': <str>}`, as `ext:database` keeps it in its
    /// `data` column ([`payload::pickle_namespace`]).
    Namespace,
}

/// The stored form of a session in one Beaker layout: the serializer of the session dict
/// and the envelope around it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BeakerCodec {
    /// How the back end wraps the serialized dict.
    pub envelope: Envelope,
    /// Beaker's `data_serializer`.
    pub serializer: BeakerSerializer,
}

impl BeakerCodec {
    /// The record a stored blob holds. Anything else than the configured serializer in the
    /// configured envelope, plain data only, is [`StoreError::Corrupt`].
    pub fn decode(&self, stored: &[u8]) -> Result<Record, StoreError> {
        let text = match self.envelope {
            Envelope::Text => payload::unpickle_text(stored)?,
            Envelope::Namespace => payload::unpickle_namespace(stored)?,
        };
        payload::decode_session(&text, self.serializer, SystemTime::now())
    }

    /// The blob to store for `record`: the reverse of [`decode`](Self::decode).
    pub fn encode(&self, record: &Record) -> Result<Vec<u8>, StoreError> {
        let text = payload::encode_session(record, self.serializer)?;
        Ok(match self.envelope {
            Envelope::Text => payload::pickle_text(&text),
            Envelope::Namespace => payload::pickle_namespace(&text),
        })
    }
}

/// The back end's half of a store on a Beaker layout: one blob per session, read and
/// replaced atomically. The functions of this module build the session operations on it.
#[async_trait]
pub trait BeakerLayout: SessionStore {
    /// How this store's blobs are encoded.
    fn codec(&self) -> BeakerCodec;

    /// The blob stored for `key`, as stored; `None` when there is none.
    async fn read(&self, key: &StoreKey) -> Result<Option<Vec<u8>>, StoreError>;

    /// Replaces the blob of `key` with `swap.new` only if it still is `swap.old`; `true`
    /// when it was replaced. `what` names the session operation, for errors.
    async fn compare_and_set(&self, key: &StoreKey, what: &str, swap: Swap<'_>) -> Result<bool, StoreError>;
}

/// One compare-and-set of [`BeakerLayout`].
#[derive(Debug, Clone, Copy)]
pub struct Swap<'a> {
    /// The blob read: the write happens only if the back end still holds it.
    pub old: &'a [u8],
    /// The blob to write in its place.
    pub new: &'a [u8],
    /// The new record's expiry, for back ends that expire keys themselves.
    pub expires: Option<SystemTime>,
}

/// [`SessionStore::load`] on a Beaker layout.
pub async fn load<S: BeakerLayout + ?Sized>(store: &S, key: &StoreKey) -> Result<Option<Record>, StoreError> {
    match store.read(key).await? {
        None => Ok(None),
        Some(stored) => store.codec().decode(&stored).map(Some),
    }
}

/// The blob to create for `record` ([`SessionStore::create`]): Beaker's layouts have no
/// place for an owner, so a record carrying one is refused.
pub fn create_blob<S: BeakerLayout + ?Sized>(store: &S, record: &Record) -> Result<Vec<u8>, StoreError> {
    refuse_owner(store.name(), record.owner.as_ref())?;
    store.codec().encode(record)
}

/// [`SessionStore::apply`] on a Beaker layout: concurrent changes to different keys of
/// one session all survive; changes that carry an owner are refused.
pub async fn apply<S: BeakerLayout + ?Sized>(store: &S, key: &StoreKey, changes: &Changes) -> Result<bool, StoreError> {
    refuse_owner(store.name(), changes.owner.as_ref())?;
    update(store, key, "apply", |r| r.apply(changes)).await
}

/// [`SessionStore::touch`] on a Beaker layout.
pub async fn touch<S: BeakerLayout + ?Sized>(
    store: &S,
    key: &StoreKey,
    accessed: SystemTime,
    expires: Option<SystemTime>,
) -> Result<bool, StoreError> {
    update(store, key, "touch", |r| {
        r.accessed = accessed;
        r.expires = expires;
    })
    .await
}

/// Reads, changes with `f` and writes back if nobody wrote in between, up to
/// [`CAS_ATTEMPTS`] times; `false` when there is no record.
async fn update<S: BeakerLayout + ?Sized>(
    store: &S,
    key: &StoreKey,
    what: &str,
    f: impl Fn(&mut Record) + Send,
) -> Result<bool, StoreError> {
    let codec = store.codec();
    for _ in 0..CAS_ATTEMPTS {
        let Some(old) = store.read(key).await? else { return Ok(false) };
        let mut record = codec.decode(&old)?;
        f(&mut record);
        let new = codec.encode(&record)?;
        if store.compare_and_set(key, what, Swap { old: &old, new: &new, expires: record.expires }).await? {
            return Ok(true);
        }
    }
    Err(StoreError::Backend {
        message: format!("{}: {what}: the Beaker record kept changing under {CAS_ATTEMPTS} attempts", store.name()),
        source: None,
    })
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use parking_lot::Mutex;

    use super::*;
    use crate::serializer::DataSerializer;

    /// Blobs in a map; `rivals` writes by another process land between a read and the
    /// compare-and-set that follows it.
    #[derive(Debug)]
    struct Blobs {
        codec: BeakerCodec,
        map: Mutex<HashMap<String, Vec<u8>>>,
        rivals: AtomicUsize,
    }

    impl Blobs {
        fn new(envelope: Envelope) -> Self {
            let codec = BeakerCodec { envelope, serializer: BeakerSerializer::Json };
            Blobs { codec, map: Mutex::default(), rivals: AtomicUsize::new(0) }
        }
    }

    #[async_trait]
    impl BeakerLayout for Blobs {
        fn codec(&self) -> BeakerCodec {
            self.codec
        }

        async fn read(&self, key: &StoreKey) -> Result<Option<Vec<u8>>, StoreError> {
            Ok(self.map.lock().get(key.as_str()).cloned())
        }

        async fn compare_and_set(&self, key: &StoreKey, _what: &str, swap: Swap<'_>) -> Result<bool, StoreError> {
            let mut map = self.map.lock();
            let Some(current) = map.get_mut(key.as_str()) else { return Ok(false) };
            if let Ok(left) = self.rivals.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)) {
                // Another writer's whole-dict write, as Beaker makes it, each one different.
                let mut theirs = self.codec.decode(current)?;
                theirs.entries.insert("rival".into(), DataSerializer::Json.encode(&left).unwrap());
                *current = self.codec.encode(&theirs)?;
            }
            if current.as_slice() != swap.old {
                return Ok(false);
            }
            *current = swap.new.to_vec();
            Ok(true)
        }
    }

    #[async_trait]
    impl SessionStore for Blobs {
        async fn load(&self, key: &StoreKey) -> Result<Option<Record>, StoreError> {
            load(self, key).await
        }

        async fn create(&self, key: &StoreKey, record: &Record) -> Result<bool, StoreError> {
            let blob = create_blob(self, record)?;
            Ok(self.map.lock().insert(key.as_str().to_owned(), blob).is_none())
        }

        async fn apply(&self, key: &StoreKey, changes: &Changes) -> Result<bool, StoreError> {
            apply(self, key, changes).await
        }

        async fn touch(&self, k: &StoreKey, a: SystemTime, e: Option<SystemTime>) -> Result<bool, StoreError> {
            touch(self, k, a, e).await
        }

        async fn delete(&self, key: &StoreKey) -> Result<(), StoreError> {
            self.map.lock().remove(key.as_str());
            Ok(())
        }

        fn name(&self) -> &'static str {
            "blobs"
        }
    }

    fn set(key: &str, value: i64) -> Changes {
        Changes {
            clear: false,
            set: [(key.to_owned(), DataSerializer::Json.encode(&value).unwrap())].into(),
            remove: Default::default(),
            accessed: SystemTime::now(),
            expires: None,
            owner: None,
        }
    }

    fn record() -> Record {
        let now = SystemTime::now();
        Record { entries: Default::default(), created: now, accessed: now, expires: None, owner: None }
    }

    #[tokio::test]
    async fn a_write_in_between_is_read_again_and_kept() {
        for envelope in [Envelope::Text, Envelope::Namespace] {
            let store = Blobs::new(envelope);
            let key = StoreKey::from_stored("0123456789abcdef0123456789abcdef").unwrap();
            assert!(!store.apply(&key, &set("n", 1)).await.unwrap(), "no record, nothing written");
            assert!(store.create(&key, &record()).await.unwrap());
            store.rivals.store(3, Ordering::SeqCst);
            assert!(store.apply(&key, &set("n", 1)).await.unwrap());
            let r = store.load(&key).await.unwrap().unwrap();
            assert_eq!(DataSerializer::decode::<i64>(&r.entries["n"]).unwrap(), 1);
            assert_eq!(DataSerializer::decode::<usize>(&r.entries["rival"]).unwrap(), 1, "the last rival's write");
            // Beaker's dict keeps the access time (as float seconds: a whole second survives
            // exactly); the expiry is the back end's.
            let later = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_800_000_000);
            assert!(store.touch(&key, later, Some(later)).await.unwrap());
            assert_eq!(store.load(&key).await.unwrap().unwrap().accessed, later);
        }
    }

    #[tokio::test]
    async fn endless_contention_is_an_error_and_writes_nothing() {
        let store = Blobs::new(Envelope::Text);
        let key = StoreKey::from_stored("0123456789abcdef0123456789abcdef").unwrap();
        assert!(store.create(&key, &record()).await.unwrap());
        store.rivals.store(CAS_ATTEMPTS, Ordering::SeqCst);
        let e = store.apply(&key, &set("n", 1)).await.unwrap_err().to_string();
        assert!(e.contains("blobs: apply") && e.contains("kept changing"), "{e}");
        let r = store.load(&key).await.unwrap().unwrap();
        assert!(!r.entries.contains_key("n") && r.entries.contains_key("rival"));
    }

    #[test]
    fn an_owner_is_refused_and_a_corrupt_blob_is_corrupt() {
        let store = Blobs::new(Envelope::Namespace);
        let owned = Record { owner: Some(crate::store::Owner { principal: "alice".into(), device: None }), ..record() };
        assert!(matches!(create_blob(&store, &owned), Err(StoreError::Unsupported { .. })));
        let text = BeakerCodec { envelope: Envelope::Text, serializer: BeakerSerializer::Json };
        let blob = text.encode(&record()).unwrap();
        assert!(matches!(store.codec().decode(&blob), Err(StoreError::Corrupt { .. })), "the other envelope");
    }
}
