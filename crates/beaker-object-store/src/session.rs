//! [`ObjectSessionStore`]: one object per session, changed by conditional writes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use beaker_core::store::{async_trait, Changes, Listed, Lookup, Page, Record, SessionStore, StoreKey};
use beaker_core::StoreError;
use futures_util::StreamExt as _;
use object_store::path::Path;
use object_store::{Attribute, AttributeValue, Attributes, GetOptions, PutMode, PutOptions, UpdateVersion};

use crate::client::{conflict_backoff, ObjectStoreClient};
use crate::error::{map_error, ConnectError};
use crate::index;
use crate::ObjectStoreOptions;

/// The metadata attribute holding a record's expiry (Unix milliseconds), read by
/// `cleanup` without downloading the record.
pub(crate) const EXPIRES_META: &str = "beakerexpires";
/// The metadata attribute holding the hash of a record's principal (its directory in the
/// index), read by `cleanup` to remove the marker with the record.
pub(crate) const PRINCIPAL_META: &str = "beakerprincipal";

/// A [`SessionStore`] on S3, Google Cloud Storage or Azure Blob Storage.
///
/// A session is one object, `<prefix>/s/<store key>`, holding `Record::to_bytes` (the
/// expiry is inside, and also in the object's metadata as `beakerexpires`, Unix
/// milliseconds). An expired object reads as absent; [`cleanup`](SessionStore::cleanup)
/// lists the prefix and deletes expired objects. A bucket lifecycle rule that deletes
/// objects under `<prefix>/s/` some days after their last write is the cheaper way to
/// reclaim space in production (it costs no requests); keep it longer than the session
/// timeout.
///
/// Every change is a conditional write: `create` is a put-if-absent
/// (`If-None-Match: *`), `apply` and `touch` read the object with its ETag (or GCS
/// generation), merge, and write only if the object is still that version, merging again
/// after a jittered pause when another writer came first
/// ([`ObjectStoreOptions::max_conflict_retries`] times). So concurrent requests that
/// change different keys of one session all survive, and a session that was deleted is
/// never written back: the write finds no object (or another version) and reports it.
///
/// **Ended sessions.** `end` replaces the record by a small tombstone object (no data,
/// the retire-until time inside and in the metadata) in one write; `rename` writes the
/// moved record under the new key, then replaces the old record by a tombstone only if it
/// is still the version it read, moving again when an `apply` came in between. An
/// `apply`, `touch` or `rename` that finds a tombstone refuses, so an ended session is
/// never written back. `cleanup` removes expired tombstones with expired records.
///
/// `load` remembers the version it read (small records, for a minute, in a bounded map),
/// so that the `apply` or `touch` that follows in the same request writes at once: a
/// modified request costs one read and one write.
///
/// **The principal index.** A session with an owner has an empty marker object
/// `<prefix>/principals/<hash of principal>/<store key>`, written before the record (so a
/// live record is never missing from the index) and deleted after the record goes (`end`,
/// `delete`, `rename`, a change of owner; `cleanup` finds the principal's hash in the
/// record's `beakerprincipal` metadata). `sessions_of` lists the principal's markers and
/// reads each record, listing only live records of that principal; markers naming
/// anything else are deleted once older than [`ObjectStoreOptions::index_grace`], by the
/// listing or by `cleanup` (a younger one may belong to a write still running; `cleanup`
/// reads the record of every marker past the grace, one request each, as it reads the
/// metadata of every session object). `count`
/// is one listing of `<prefix>/s/` and counts expired records until `cleanup` removes
/// them; `scan` lists from the cursor (the last key of the previous page) and reads each
/// record; `find` scans. With an owner, `create` and a change of owner cost one more
/// request and `end` and `delete` one more (the marker's deletion); `end` and `delete`
/// of a session this store has not just loaded read it first, to find its principal.
///
/// Round trips without contention: `load` 1, `create` 1, `apply` and `touch` 1 after a
/// `load` by this store (else 2), `delete` 1; each lost race costs two more.
#[derive(Debug, Clone)]
pub struct ObjectSessionStore {
    pub(crate) client: ObjectStoreClient,
    hints: Arc<Hints>,
}

const HINT_MAX_RECORD: usize = 64 * 1024;
const HINT_MAX_COUNT: usize = 4096;
const HINT_MAX_AGE: Duration = Duration::from_secs(60);

/// Versions `load` read, for the write that follows. The lock is never held across an
/// await.
#[derive(Debug, Default)]
struct Hints {
    map: Mutex<HashMap<Path, (Record, UpdateVersion, Instant)>>,
}

impl Hints {
    fn remember(&self, path: &Path, record: &Record, version: UpdateVersion, size: usize) {
        if size > HINT_MAX_RECORD {
            return;
        }
        let Ok(mut map) = self.map.lock() else { return };
        if map.len() >= HINT_MAX_COUNT {
            map.retain(|_, (_, _, at)| at.elapsed() < HINT_MAX_AGE);
            if map.len() >= HINT_MAX_COUNT {
                // A burst of recent hints: start over; a lost hint costs one read.
                map.clear();
            }
        }
        map.insert(path.clone(), (record.clone(), version, Instant::now()));
    }

    fn take(&self, path: &Path) -> Option<(Record, UpdateVersion)> {
        let (record, version, at) = self.map.lock().ok()?.remove(path)?;
        (at.elapsed() < HINT_MAX_AGE).then_some((record, version))
    }
}

/// A stored record, live or expired, with the version it was read at.
pub(crate) struct Read {
    pub(crate) record: Record,
    version: UpdateVersion,
    size: usize,
}

/// What an object holds: a record, or the tombstone of an ended session.
pub(crate) enum Stored {
    Record(Read),
    /// Retired until then; the version it was read at.
    Tombstone(SystemTime, UpdateVersion),
}

/// The first bytes of a tombstone object (a record starts with `BKR1`).
const TOMBSTONE_MAGIC: &[u8] = b"BKT1";
/// The size of a tombstone object: listings tell tombstones from records by it.
pub(crate) const TOMBSTONE_LEN: u64 = 12;

fn tombstone(until: SystemTime) -> Vec<u8> {
    let mut out = TOMBSTONE_MAGIC.to_vec();
    out.extend_from_slice(&millis(until).to_be_bytes());
    out
}

fn millis(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

impl ObjectSessionStore {
    /// A store on an existing client (which an [`ObjectCache`](crate::ObjectCache) may
    /// share).
    pub fn new(client: ObjectStoreClient) -> Self {
        ObjectSessionStore { client, hints: Arc::default() }
    }

    /// Opens `url`; see [`ObjectStoreClient::connect`].
    pub async fn connect(url: &str, options: ObjectStoreOptions) -> Result<Self, ConnectError> {
        Ok(Self::new(ObjectStoreClient::connect(url, options).await?))
    }

    /// The underlying client.
    pub fn client(&self) -> &ObjectStoreClient {
        &self.client
    }

    /// The object a session is kept in.
    pub fn object_path(&self, key: &StoreKey) -> Path {
        self.client.path(&["s", key.as_str()])
    }

    /// What is under `path`, expired or not; `None` when there is no object.
    pub(crate) async fn read_stored(&self, what: &str, path: &Path) -> Result<Option<Stored>, StoreError> {
        let got = match self.client.store.get_opts(path, GetOptions::default()).await {
            Ok(got) => got,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(map_error(what, e)),
        };
        let version = UpdateVersion { e_tag: got.meta.e_tag.clone(), version: got.meta.version.clone() };
        let bytes = got.bytes().await.map_err(|e| map_error(what, e))?;
        if let Some(rest) = bytes.strip_prefix(TOMBSTONE_MAGIC) {
            let ms = <[u8; 8]>::try_from(rest).map_err(|_| StoreError::corrupt("damaged tombstone"))?;
            let until = SystemTime::UNIX_EPOCH + Duration::from_millis(u64::from_be_bytes(ms));
            return Ok(Some(Stored::Tombstone(until, version)));
        }
        let record = Record::from_bytes(&bytes)?;
        Ok(Some(Stored::Record(Read { record, version, size: bytes.len() })))
    }

    /// The record under `path`, expired or not; `None` when there is no object or a
    /// tombstone.
    pub(crate) async fn read(&self, what: &str, path: &Path) -> Result<Option<Read>, StoreError> {
        Ok(match self.read_stored(what, path).await? {
            Some(Stored::Record(read)) => Some(read),
            _ => None,
        })
    }

    fn put_options(expires: Option<SystemTime>, principal: Option<&str>, mode: PutMode) -> PutOptions {
        let mut attributes = Attributes::new();
        if let Some(expires) = expires {
            let ms = millis(expires).to_string();
            attributes.insert(Attribute::Metadata(EXPIRES_META.into()), AttributeValue::from(ms));
        }
        if let Some(principal) = principal {
            attributes.insert(
                Attribute::Metadata(PRINCIPAL_META.into()),
                AttributeValue::from(index::principal_segment(principal)),
            );
        }
        PutOptions { mode, attributes, ..Default::default() }
    }

    /// Writes `record` in `mode`; `Ok(false)` when the condition failed.
    async fn write(&self, what: &str, path: &Path, record: &Record, mode: PutMode) -> Result<bool, StoreError> {
        let principal = record.owner.as_ref().map(|o| o.principal.as_str());
        self.write_object(what, path, record.to_bytes(), record.expires, principal, mode).await
    }

    /// Writes `bytes` (a record or a tombstone) in `mode`; `Ok(false)` when the condition
    /// failed.
    async fn write_bytes(
        &self,
        what: &str,
        path: &Path,
        bytes: Vec<u8>,
        expires: Option<SystemTime>,
        mode: PutMode,
    ) -> Result<bool, StoreError> {
        self.write_object(what, path, bytes, expires, None, mode).await
    }

    async fn write_object(
        &self,
        what: &str,
        path: &Path,
        bytes: Vec<u8>,
        expires: Option<SystemTime>,
        principal: Option<&str>,
        mode: PutMode,
    ) -> Result<bool, StoreError> {
        match self.client.store.put_opts(path, bytes.into(), Self::put_options(expires, principal, mode)).await {
            Ok(_) => Ok(true),
            Err(
                object_store::Error::Precondition { .. }
                | object_store::Error::AlreadyExists { .. }
                // An `If-Match` on an object deleted meanwhile.
                | object_store::Error::NotFound { .. },
            ) => Ok(false),
            Err(e) => Err(map_error(what, e)),
        }
    }

    /// Changes the live record with `edit`, written only over the version it was read at;
    /// merges again on a lost race. `false` when there is no live record.
    async fn update(&self, what: &str, key: &StoreKey, edit: impl Fn(&mut Record)) -> Result<bool, StoreError> {
        let path = self.object_path(key);
        if let Some((mut record, version)) = self.hints.take(&path).filter(|(r, _)| !r.is_expired(SystemTime::now())) {
            let old = index::principal_of(&record).map(str::to_owned);
            edit(&mut record);
            let moved = self.client.bounded(what, self.file_before(key, old.as_deref(), &record)).await?;
            let written = self.client.bounded(what, self.write(what, &path, &record, PutMode::Update(version))).await?;
            if written {
                self.client.bounded(what, self.unfile_after(key, old.as_deref(), moved)).await?;
                return Ok(true);
            }
            tracing::debug!("{}: {what}: the session changed since it was loaded; merging again", self.name());
        }
        for attempt in 0..=self.client.options.max_conflict_retries {
            let Some(read) = self.client.bounded(what, self.read(what, &path)).await? else { return Ok(false) };
            if read.record.is_expired(SystemTime::now()) {
                return Ok(false);
            }
            let mut record = read.record;
            let old = index::principal_of(&record).map(str::to_owned);
            edit(&mut record);
            let moved = self.client.bounded(what, self.file_before(key, old.as_deref(), &record)).await?;
            let mode = PutMode::Update(read.version);
            if self.client.bounded(what, self.write(what, &path, &record, mode)).await? {
                self.client.bounded(what, self.unfile_after(key, old.as_deref(), moved)).await?;
                return Ok(true);
            }
            tracing::debug!("{}: {what}: lost a conditional-write race, retrying", self.name());
            tokio::time::sleep(conflict_backoff(attempt)).await;
        }
        Err(StoreError::Unavailable {
            message: format!(
                "{}: {what}: the session kept changing under us ({} retries exhausted)",
                self.name(),
                self.client.options.max_conflict_retries
            ),
            source: None,
        })
    }

    async fn create_inner(&self, path: &Path, record: &Record) -> Result<bool, StoreError> {
        if self.write("create", path, record, PutMode::Create).await? {
            return Ok(true);
        }
        // An object is there. If its record has expired it is dead: replace it, but only
        // if it is still that very version. A live or undecodable object is kept.
        // A live tombstone is kept too: its key ended a moment ago.
        let now = SystemTime::now();
        let dead = match self.read_stored("create", path).await {
            Ok(Some(Stored::Record(read))) if read.record.is_expired(now) => read.version,
            Ok(Some(Stored::Tombstone(until, version))) if until <= now => version,
            Ok(None) => return self.write("create", path, record, PutMode::Create).await,
            Ok(Some(_)) | Err(StoreError::Corrupt { .. }) => return Ok(false),
            Err(e) => return Err(e),
        };
        self.write("create", path, record, PutMode::Update(dead)).await
    }

    async fn end_inner(&self, path: &Path, retire_for: Duration) -> Result<(), StoreError> {
        if retire_for.is_zero() {
            return match self.client.store.delete(path).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
                Err(e) => Err(map_error("end", e)),
            };
        }
        // One unconditional write replaces the record by the tombstone: an `apply` that
        // read the record finds another version when it writes, reads again, and stops.
        let until = SystemTime::now() + retire_for;
        self.write_bytes("end", path, tombstone(until), Some(until), PutMode::Overwrite).await.map(drop)
    }

    /// Reads `from`, writes the changed record under `to`, then replaces `from` by a
    /// tombstone only if it is still the version read. An `apply` that lands in between
    /// makes that write fail, and the move starts again from the new version, so every
    /// `apply` on `from` is either in the record under `to` or refused.
    async fn rename_inner(
        &self,
        (from_key, from): (&StoreKey, &Path),
        (to_key, to): (&StoreKey, &Path),
        changes: &Changes,
        retire_for: Duration,
    ) -> Result<bool, StoreError> {
        let mut written = false;
        for attempt in 0..=self.client.options.max_conflict_retries {
            let read = self.client.bounded("rename", self.read("rename", from)).await?;
            let Some(read) = read.filter(|r| !r.record.is_expired(SystemTime::now())) else {
                if written {
                    // Ended under us after the copy was made: the copy must not outlive it.
                    self.client.bounded("rename", async { self.delete_path("rename", to).await }).await?;
                }
                return Ok(false);
            };
            let mut record = read.record;
            let old = index::principal_of(&record).map(str::to_owned);
            record.apply(changes);
            if let Some(new) = index::principal_of(&record) {
                self.client.bounded("rename", self.put_marker(new, to_key)).await?;
            }
            // The first write never overwrites; later ones replace our own copy.
            let mode = if written { PutMode::Overwrite } else { PutMode::Create };
            if !self.client.bounded("rename", self.write("rename", to, &record, mode)).await? {
                return Err(StoreError::Backend {
                    message: format!("{}: rename: a record already exists under the new key", self.name()),
                    source: None,
                });
            }
            written = true;
            let (bytes, until) = if retire_for.is_zero() {
                // No window: an expired tombstone is as good as nothing, and `cleanup`
                // (or a lifecycle rule) removes it.
                (tombstone(SystemTime::UNIX_EPOCH), SystemTime::UNIX_EPOCH)
            } else {
                let until = SystemTime::now() + retire_for;
                (tombstone(until), until)
            };
            let mode = PutMode::Update(read.version);
            if self.client.bounded("rename", self.write_bytes("rename", from, bytes, Some(until), mode)).await? {
                if let Some(old) = &old {
                    self.client.bounded("rename", self.remove_marker(old, from_key)).await?;
                }
                return Ok(true);
            }
            tracing::debug!("{}: rename: the session changed during the move; moving again", self.name());
            tokio::time::sleep(conflict_backoff(attempt)).await;
        }
        Err(StoreError::Unavailable {
            message: format!("{}: rename: the session kept changing under us", self.name()),
            source: None,
        })
    }

    pub(crate) async fn delete_path(&self, what: &str, path: &Path) -> Result<(), StoreError> {
        match self.client.store.delete(path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(map_error(what, e)),
        }
    }

    async fn cleanup_inner(&self) -> Result<u64, StoreError> {
        let prefix = self.client.path(&["s"]);
        let mut listing = self.client.store.list(Some(&prefix));
        let mut removed = 0;
        let now = SystemTime::now();
        while let Some(meta) = listing.next().await {
            let meta = meta.map_err(|e| map_error("cleanup", e))?;
            let head = GetOptions { head: true, ..Default::default() };
            let (expires, mut principal) = match self.client.store.get_opts(&meta.location, head).await {
                Ok(got) => (
                    got.attributes
                        .get(&Attribute::Metadata(EXPIRES_META.into()))
                        .and_then(|v| v.as_ref().parse::<u64>().ok())
                        .map(|ms| SystemTime::UNIX_EPOCH + Duration::from_millis(ms)),
                    got.attributes.get(&Attribute::Metadata(PRINCIPAL_META.into())).map(|v| v.as_ref().to_owned()),
                ),
                Err(object_store::Error::NotFound { .. }) => continue,
                Err(e) => return Err(map_error("cleanup", e)),
            };
            let expired = match expires {
                Some(at) => at <= now,
                // No metadata (a service that drops it): read the record itself.
                None => match self.read_stored("cleanup", &meta.location).await {
                    Ok(Some(Stored::Record(read))) => {
                        principal = index::principal_of(&read.record).map(index::principal_segment);
                        read.record.is_expired(now)
                    }
                    Ok(Some(Stored::Tombstone(until, _))) => until <= now,
                    Ok(None) | Err(StoreError::Corrupt { .. }) => false,
                    Err(e) => return Err(e),
                },
            };
            if expired {
                match self.client.store.delete(&meta.location).await {
                    Ok(()) | Err(object_store::Error::NotFound { .. }) => removed += 1,
                    Err(e) => return Err(map_error("cleanup", e)),
                }
                if let (Some(segment), Some(name)) = (principal, meta.location.filename()) {
                    let marker = self.client.path(&[index::PRINCIPALS, &segment, name]);
                    self.delete_path("cleanup", &marker).await?;
                }
            }
        }
        self.sweep_markers().await?;
        Ok(removed)
    }
}

#[async_trait]
impl SessionStore for ObjectSessionStore {
    async fn load(&self, key: &StoreKey) -> Result<Option<Record>, StoreError> {
        let path = self.object_path(key);
        let Some(read) = self.client.bounded("load", self.read("load", &path)).await? else { return Ok(None) };
        if read.record.is_expired(SystemTime::now()) {
            return Ok(None);
        }
        self.hints.remember(&path, &read.record, read.version, read.size);
        Ok(Some(read.record))
    }

    async fn lookup(&self, key: &StoreKey) -> Result<Lookup, StoreError> {
        let path = self.object_path(key);
        let now = SystemTime::now();
        Ok(match self.client.bounded("load", self.read_stored("load", &path)).await? {
            Some(Stored::Record(read)) if !read.record.is_expired(now) => {
                self.hints.remember(&path, &read.record, read.version, read.size);
                Lookup::Live(read.record)
            }
            Some(Stored::Tombstone(until, _)) if until > now => Lookup::Retired,
            _ => Lookup::Missing,
        })
    }

    async fn create(&self, key: &StoreKey, record: &Record) -> Result<bool, StoreError> {
        let path = self.object_path(key);
        // The marker first: a failure in between leaves a marker without a record, which
        // listings skip and prune, never a record missing from the index.
        if let Some(principal) = index::principal_of(record) {
            self.client.bounded("create", self.put_marker(principal, key)).await?;
        }
        self.client.bounded("create", self.create_inner(&path, record)).await
    }

    async fn end(&self, key: &StoreKey, retire_for: Duration) -> Result<(), StoreError> {
        let path = self.object_path(key);
        // The version this process loaded tells the owner without a read; a stale one
        // can only leave a marker behind, which listings skip and prune.
        let hint = self.hints.take(&path).map(|(record, _)| record);
        self.client
            .bounded("end", async {
                let principal = match hint {
                    Some(record) => index::principal_of(&record).map(str::to_owned),
                    None => self.principal_at("end", &path).await?,
                };
                self.end_inner(&path, retire_for).await?;
                self.unfile(key, principal.as_deref()).await
            })
            .await
    }

    async fn rename(
        &self,
        from: &StoreKey,
        to: &StoreKey,
        changes: &Changes,
        retire_for: Duration,
    ) -> Result<bool, StoreError> {
        let from_path = self.object_path(from);
        let _ = self.hints.take(&from_path);
        self.rename_inner((from, &from_path), (to, &self.object_path(to)), changes, retire_for).await
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
        let path = self.object_path(key);
        // The version this process loaded tells the owner without a read; a stale one
        // can only leave a marker behind, which listings skip and prune.
        let hint = self.hints.take(&path).map(|(record, _)| record);
        self.client
            .bounded("delete", async {
                let principal = match hint {
                    Some(record) => index::principal_of(&record).map(str::to_owned),
                    None => self.principal_at("delete", &path).await?,
                };
                self.delete_path("delete", &path).await?;
                self.unfile(key, principal.as_deref()).await
            })
            .await
    }

    async fn cleanup(&self) -> Result<u64, StoreError> {
        // A listing of many sessions takes longer than one request: no overall bound;
        // each request has object_store's own timeout.
        self.cleanup_inner().await
    }

    /// Lists the principal's markers and reads each record they name: only live records
    /// still owned by `principal` are listed; markers whose record is not are removed
    /// once older than [`ObjectStoreOptions::index_grace`].
    async fn sessions_of(&self, principal: &str) -> Result<Vec<Listed>, StoreError> {
        self.sessions_of_inner(principal).await
    }

    /// Lists the sessions prefix (no object is read): counts records, not tombstones, and
    /// expired records until `cleanup` removes them.
    async fn count(&self) -> Result<u64, StoreError> {
        self.count_inner().await
    }

    /// Lists from the cursor (the last key of the previous page) and reads each record.
    async fn scan(&self, cursor: Option<&str>, limit: usize) -> Result<Page, StoreError> {
        self.scan_inner(cursor, limit).await
    }

    fn name(&self) -> &'static str {
        self.client.service.as_str()
    }
}
