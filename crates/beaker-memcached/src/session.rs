//! [`MemcachedStore`]: a session as one blob, changed by a gets/cas loop.

use std::time::SystemTime;

use beaker_core::{async_trait, Changes, Record, SessionStore, StoreError, StoreKey};
use memcache::exp::{Delete, Get, Meta, MutationStatus, Set};

use crate::client::{make_key, ttl_until, MemcachedClient};
use crate::error::ConnectError;
use crate::MemcachedOptions;

/// A [`SessionStore`] on memcached (one server or several).
///
/// A session is one item (`Record::to_bytes`) under `<session_prefix><store key>` with
/// the record's expiry as memcached's own (relative seconds, or an absolute Unix time past
/// 30 days, as the protocol wants; memcached counts whole seconds, and the record's exact
/// expiry is checked again on every read).
///
/// `create` is memcached's `add`, so it never overwrites. `apply` and `touch` read the
/// item with its CAS value, merge, and write back only if nobody wrote in between,
/// retrying otherwise: two requests changing different keys of one session both survive.
///
/// Round trips per call without contention: `load` 1, `create` 1, `apply` 2, `touch` 2,
/// `delete` 1 (each lost CAS race costs `apply`/`touch` two more).
///
/// Memcached may evict any item when it runs out of memory: sessions kept only in
/// memcached can vanish early. That is memcached's nature, not a bug of this store.
///
/// ```no_run
/// use beaker_core::{SessionConfig, SessionManager};
/// use beaker_memcached::{MemcachedOptions, MemcachedStore};
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let store = MemcachedStore::connect("memcached://127.0.0.1:11211", MemcachedOptions::default()).await?;
/// let config = SessionConfig::new().with_secret("change me: at least 16 bytes")?;
/// let manager = SessionManager::builder(config).store(store).build()?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct MemcachedStore {
    client: MemcachedClient,
}

impl MemcachedStore {
    /// A store on an existing client (which a [`MemcachedCache`](crate::MemcachedCache)
    /// may share).
    pub fn new(client: MemcachedClient) -> Self {
        MemcachedStore { client }
    }

    /// Connects a new client; see [`MemcachedClient::connect`].
    pub async fn connect(url: &str, options: MemcachedOptions) -> Result<Self, ConnectError> {
        Ok(Self::new(MemcachedClient::connect(url, options).await?))
    }

    /// The memcached key a session is filed under.
    pub fn memcached_key(&self, key: &StoreKey) -> String {
        make_key(&self.client.options.session_prefix, &[key.as_str()])
    }

    /// The live record and its CAS value.
    async fn read(&self, what: &str, mkey: &str) -> Result<Option<(Record, u64)>, StoreError> {
        let got = self.client.run(what, |mc| async move { mc.run(Get::new(mkey).meta(Meta::NONE.cas())).await }).await?;
        let (Some(bytes), Some(cas)) = (got.value, got.item.cas) else { return Ok(None) };
        let record = Record::from_bytes(&bytes)?;
        Ok((!record.is_expired(SystemTime::now())).then_some((record, cas)))
    }

    /// Reads, changes with `edit`, writes back if the CAS still matches; retries on a lost
    /// race. `false` when there is no live record.
    async fn update(&self, what: &str, key: &StoreKey, edit: impl Fn(&mut Record)) -> Result<bool, StoreError> {
        let mkey = self.memcached_key(key);
        let deadline = tokio::time::Instant::now() + self.client.options.timeout;
        for _ in 0..=self.client.options.max_cas_retries {
            let Some((mut record, cas)) = self.read(what, &mkey).await? else { return Ok(false) };
            edit(&mut record);
            let bytes = record.to_bytes();
            self.client.check_size(what, bytes.len())?;
            let ttl = ttl_until(record.expires, SystemTime::now());
            let set = Set::new(&mkey, &bytes).ttl(ttl).compare_cas(cas);
            let status = self.client.run(what, |mc| async move { mc.run(set).await }).await?.status;
            match status {
                MutationStatus::Applied => return Ok(true),
                MutationStatus::NotFound => return Ok(false),
                _ if tokio::time::Instant::now() >= deadline => break,
                _ => tracing::debug!("memcached: {what}: lost a CAS race, retrying"),
            }
        }
        Err(StoreError::Unavailable {
            message: format!("memcached: {what}: the session kept changing under us (CAS retries exhausted)"),
            source: None,
        })
    }
}

#[async_trait]
impl SessionStore for MemcachedStore {
    async fn load(&self, key: &StoreKey) -> Result<Option<Record>, StoreError> {
        let mkey = self.memcached_key(key);
        let got = self.client.run("load", |mc| async move { mc.run(Get::new(&mkey)).await }).await?;
        let Some(bytes) = got.value else { return Ok(None) };
        let record = Record::from_bytes(&bytes)?;
        Ok((!record.is_expired(SystemTime::now())).then_some(record))
    }

    async fn create(&self, key: &StoreKey, record: &Record) -> Result<bool, StoreError> {
        let mkey = self.memcached_key(key);
        let bytes = record.to_bytes();
        self.client.check_size("create", bytes.len())?;
        let add = Set::new(&mkey, &bytes).ttl(ttl_until(record.expires, SystemTime::now())).add();
        let status = self.client.run("create", |mc| async move { mc.run(add).await }).await?.status;
        match status {
            MutationStatus::Applied => Ok(true),
            // An item still held by memcached but past the record's own expiry is dead:
            // replace it, but only if it is still that very item.
            // An item memcached still holds but whose record has expired is dead: replace
            // it, but only if it is still that very item (CAS), or add if it went meanwhile.
            MutationStatus::AlreadyExists => {
                let get = Get::new(&mkey).meta(Meta::NONE.cas());
                let got = self.client.run("create", |mc| async move { mc.run(get).await }).await?;
                let now = SystemTime::now();
                let live = got.value.as_deref().is_some_and(|b| Record::from_bytes(b).map_or(true, |r| !r.is_expired(now)));
                if live {
                    return Ok(false);
                }
                let set = Set::new(&mkey, &bytes).ttl(ttl_until(record.expires, now));
                let set = match (got.value, got.item.cas) {
                    (Some(_), Some(cas)) => set.compare_cas(cas),
                    _ => set.add(),
                };
                Ok(self.client.run("create", |mc| async move { mc.run(set).await }).await?.applied())
            }
            _ => Ok(false),
        }
    }

    async fn apply(&self, key: &StoreKey, changes: &Changes) -> Result<bool, StoreError> {
        self.update("apply", key, |r| r.apply(changes)).await
    }

    async fn touch(
        &self,
        key: &StoreKey,
        accessed: SystemTime,
        expires: Option<SystemTime>,
    ) -> Result<bool, StoreError> {
        self.update("touch", key, |r| {
            r.accessed = accessed;
            r.expires = expires;
        })
        .await
    }

    async fn delete(&self, key: &StoreKey) -> Result<(), StoreError> {
        let mkey = self.memcached_key(key);
        self.client.run("delete", |mc| async move { mc.run(Delete::new(&mkey)).await }).await?;
        Ok(())
    }

    fn name(&self) -> &'static str {
        "memcached"
    }
}
