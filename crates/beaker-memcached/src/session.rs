//! [`MemcachedStore`]: a session as one blob, changed by a gets/cas loop.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use beaker_core::store::{
    async_trait, Changes, Listed, Lookup, Owner, Page, Record, SessionHandle, SessionStore, StoreKey,
};
use beaker_core::StoreError;
use memcache::exp::{Delete, Get, Meta, MutationStatus, Set};

use crate::client::{make_key, ttl_until, MemcachedClient};
use crate::error::ConnectError;
use crate::index;
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
/// retrying otherwise (at most [`MemcachedOptions::max_cas_retries`] times, then
/// `StoreError::Unavailable` saying so): two requests changing different keys of one
/// session both survive.
///
/// `load` remembers the CAS value of what it read (for small records, for a minute, in a
/// bounded map), and an `apply` or `touch` of the same session that follows writes at
/// once with that CAS value instead of reading again. If the item changed meanwhile the
/// write is refused by memcached and the normal read-merge-write loop runs, so the hint
/// saves a round trip and never loses a write.
///
/// A retired key (ended by `end`, moved away by `rename`) holds a tombstone item: a
/// marker and the end of its retire window, no data, never the new key. `end` writes it
/// in one unconditional set, so every writer still holding the record's CAS value fails.
/// `rename` is a CAS loop: read the old record, `add` it (changed) under the new key,
/// then replace the old item by its tombstone only if its CAS value is unchanged; if a
/// concurrent `apply` won, the copy is deleted and the move starts over with that change
/// in, so every `apply` on the old key is either carried or refused. Should the process
/// die between the `add` and the swap, the copy under the new key (whose id no one was
/// given) lapses with its expiry.
///
/// Round trips per call without contention: `load`/`lookup` 1, `create` 1, `apply` and
/// `touch` 1 after a `load` of the same session by this store (else 2), `delete` and
/// `end` 1, `rename` 3; each lost CAS race costs two more. A write of a session that has
/// an owner costs two more (the index's gets and cas).
///
/// # The principal index and enumeration
///
/// The owner is part of the record's blob. Memcached cannot list keys by prefix, so the
/// sessions of principal `p` are listed in an item of their own,
/// `<session_prefix>principal:<p>` (hashed when long or not plain ASCII): each member's
/// store key and expiry, changed by the same gets/cas loop as records, and expiring with
/// its latest member, so the index never outlives its sessions. The record is written
/// first, then the index (`create`, `apply`, `touch`, `rename`); so a member whose record
/// is gone is gone for good, and `sessions_of` checks every member against its record and
/// prunes the dead ones. `end` and `delete` stay one unconditional write and leave their
/// member to that pruning (it is never listed again). A session filed by one process
/// while another lists the same principal is missed at worst by that listing.
///
/// `count`, `scan` and `find` read `lru_crawler metadump` (memcached 1.4.31 or later,
/// LRU crawler enabled, the default since 1.5), which lists every item of a server in no
/// stable order and cannot resume. It walks the hash table where the server can
/// (`metadump hash`, recent 1.6 releases); older servers walk their LRU queues, and an
/// item moved between queues during the dump (one that was just read, say) can be left
/// out of that listing, so use a recent server where operators list sessions. A page is
/// the `limit` smallest session keys after the cursor's, kept in a bounded set while the dump streams by, so memory is
/// bounded by the page but **each page reads the server's whole dump**, every item of
/// every application on it. Scan in large pages. A server that refuses the command
/// answers `StoreError::Unsupported`.
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
    hints: Arc<Hints>,
}

/// Records bigger than this are not remembered by `load`.
const HINT_MAX_RECORD: usize = 64 * 1024;
/// At most this many remembered records...
const HINT_MAX_COUNT: usize = 4096;
/// ...of at most this many bytes together.
const HINT_MAX_BYTES: usize = 16 * 1024 * 1024;
/// A hint older than this is not used: its request is long over.
const HINT_MAX_AGE: Duration = Duration::from_secs(60);

/// The start of a tombstone item: the key was retired (logout, regeneration) until the
/// Unix millisecond that follows (8 bytes, big-endian). A record never starts so.
const TOMBSTONE: &[u8] = b"beaker-retired:";

fn tombstone(until: SystemTime) -> Vec<u8> {
    let ms = until.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
    let mut out = TOMBSTONE.to_vec();
    out.extend_from_slice(&ms.to_be_bytes());
    out
}

/// `Some(retired)` for a tombstone item: whether its window still runs at `now`.
fn retired_at(bytes: &[u8], now: SystemTime) -> Option<bool> {
    let rest = bytes.strip_prefix(TOMBSTONE)?;
    let ms = u64::from_be_bytes(rest.try_into().unwrap_or_default());
    Some(std::time::UNIX_EPOCH + Duration::from_millis(ms) > now)
}

/// A record as one write left it, and its owner before the write.
struct Moved {
    before: Option<Owner>,
    after: Record,
}

fn owned_by(owner: Option<&Owner>, principal: &str) -> bool {
    owner.is_some_and(|o| o.principal == principal)
}

/// What one read of a session item found, with the item's CAS value where it matters.
enum Found {
    Live(Record, u64, usize),
    Retired,
    Missing,
}

/// What `load` read, with its CAS value.
struct Hint {
    record: Record,
    cas: u64,
    size: usize,
    at: Instant,
}

/// The remembered CAS values (see [`MemcachedStore`]). The lock is never held across an
/// await.
#[derive(Default)]
struct Hints {
    map: Mutex<HintMap>,
}

#[derive(Default)]
struct HintMap {
    entries: HashMap<String, Hint>,
    bytes: usize,
}

impl fmt::Debug for Hints {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.map.lock().map_or(0, |m| m.entries.len());
        f.debug_struct("Hints").field("remembered", &n).finish()
    }
}

impl Hints {
    fn remember(&self, mkey: &str, record: &Record, cas: u64, size: usize) {
        if size > HINT_MAX_RECORD {
            return;
        }
        let Ok(mut map) = self.map.lock() else { return };
        if map.entries.len() >= HINT_MAX_COUNT || map.bytes + size > HINT_MAX_BYTES {
            map.entries.retain(|_, h| h.at.elapsed() < HINT_MAX_AGE);
            map.bytes = map.entries.values().map(|h| h.size).sum();
            if map.entries.len() >= HINT_MAX_COUNT || map.bytes + size > HINT_MAX_BYTES {
                // Still full of recent hints: a burst. Start over rather than search for
                // the oldest; a lost hint only costs one round trip.
                map.entries.clear();
                map.bytes = 0;
            }
        }
        let hint = Hint { record: record.clone(), cas, size, at: Instant::now() };
        map.bytes += size;
        if let Some(old) = map.entries.insert(mkey.to_owned(), hint) {
            map.bytes -= old.size;
        }
    }

    fn take(&self, mkey: &str) -> Option<(Record, u64)> {
        let mut map = self.map.lock().ok()?;
        let hint = map.entries.remove(mkey)?;
        map.bytes -= hint.size;
        (hint.at.elapsed() < HINT_MAX_AGE).then_some((hint.record, hint.cas))
    }

    fn forget(&self, mkey: &str) {
        let _ = self.take(mkey);
    }
}

impl MemcachedStore {
    /// A store on an existing client (which a [`MemcachedCache`](crate::MemcachedCache)
    /// may share).
    pub fn new(client: MemcachedClient) -> Self {
        MemcachedStore { client, hints: Arc::default() }
    }

    /// Connects a new client; see [`MemcachedClient::connect`].
    pub async fn connect(url: &str, options: MemcachedOptions) -> Result<Self, ConnectError> {
        Ok(Self::new(MemcachedClient::connect(url, options).await?))
    }

    /// The underlying client.
    pub fn client(&self) -> &MemcachedClient {
        &self.client
    }

    /// The memcached key a session is filed under.
    pub fn memcached_key(&self, key: &StoreKey) -> String {
        make_key(&self.client.options.session_prefix, &[key.as_str()])
    }

    /// The live record under `key`, without remembering its CAS value (listings).
    pub(crate) async fn live(&self, key: &StoreKey) -> Result<Option<Record>, StoreError> {
        Ok(self.read("list", &self.memcached_key(key)).await?.map(|(record, ..)| record))
    }

    /// The live record, its CAS value and its size in bytes.
    async fn read(&self, what: &str, mkey: &str) -> Result<Option<(Record, u64, usize)>, StoreError> {
        Ok(match self.find(what, mkey).await? {
            Found::Live(record, cas, size) => Some((record, cas, size)),
            Found::Retired | Found::Missing => None,
        })
    }

    /// The item under `mkey`: a live record (with its CAS value and size), a tombstone
    /// within its window, or nothing.
    async fn find(&self, what: &str, mkey: &str) -> Result<Found, StoreError> {
        let get = Get::new(mkey).meta(Meta::NONE.cas());
        let got = self.client.run(what, |mc| async move { mc.run(get).await }).await?;
        let (Some(bytes), Some(cas)) = (got.value, got.item.cas) else { return Ok(Found::Missing) };
        let now = SystemTime::now();
        if let Some(retired) = retired_at(&bytes, now) {
            return Ok(if retired { Found::Retired } else { Found::Missing });
        }
        let record = Record::from_bytes(&bytes)?;
        Ok(if record.is_expired(now) { Found::Missing } else { Found::Live(record, cas, bytes.len()) })
    }

    /// Writes the tombstone of `mkey` for `retire_for`: unconditionally, or (with `cas`)
    /// only if the item is still the one read with that CAS value.
    async fn retire(
        &self,
        what: &str,
        mkey: &str,
        retire_for: Duration,
        cas: Option<u64>,
    ) -> Result<MutationStatus, StoreError> {
        let now = SystemTime::now();
        let until = now.checked_add(retire_for).unwrap_or(now);
        let bytes = tombstone(until);
        // Memcached counts whole seconds: the item may outlive its window by one, which
        // `retired_at` hides by comparing with the time inside.
        let set = Set::new(mkey, &bytes).ttl(ttl_until(Some(until + Duration::from_secs(1)), now));
        let set = match cas {
            Some(cas) => set.compare_cas(cas),
            None => set,
        };
        Ok(self.client.run(what, |mc| async move { mc.run(set).await }).await?.status)
    }

    /// The CAS loop of `rename`: read the old record, file it (changed) under the new
    /// key, then swap the old item for its tombstone only if nobody wrote it meanwhile;
    /// else withdraw the copy and start over with what they wrote.
    async fn rename_loop(
        &self,
        from: &str,
        to: &str,
        changes: &Changes,
        retire_for: Duration,
    ) -> Result<Option<Moved>, StoreError> {
        self.hints.forget(from);
        for attempt in 0..=self.client.options.max_cas_retries {
            let Some((mut record, cas, _)) = self.read("rename", from).await? else { return Ok(None) };
            let before = record.owner.clone();
            record.apply(changes);
            if !self.create_inner(to, &record).await? {
                return Err(StoreError::Backend {
                    message: "memcached: rename: a record already exists under the new key".into(),
                    source: None,
                });
            }
            let status = if retire_for.is_zero() {
                let delete = Delete::new(from).compare_cas(cas);
                self.client.run("rename", |mc| async move { mc.run(delete).await }).await?.status
            } else {
                self.retire("rename", from, retire_for, Some(cas)).await?
            };
            match status {
                MutationStatus::Applied => return Ok(Some(Moved { before, after: record })),
                MutationStatus::NotFound => {
                    self.delete_item("rename", to).await?;
                    return Ok(None);
                }
                _ => {
                    tracing::debug!("memcached: rename: the session changed during the move; moving again");
                    self.delete_item("rename", to).await?;
                }
            }
            tokio::time::sleep(cas_backoff(attempt)).await;
        }
        Err(StoreError::Unavailable {
            message: format!(
                "memcached: rename: the session kept changing under us ({} CAS retries exhausted)",
                self.client.options.max_cas_retries
            ),
            source: None,
        })
    }

    async fn delete_item(&self, what: &str, mkey: &str) -> Result<(), StoreError> {
        self.hints.forget(mkey);
        let delete = Delete::new(mkey);
        self.client.run(what, |mc| async move { mc.run(delete).await }).await?;
        Ok(())
    }

    /// Writes `record` if the item's CAS value is still `cas`.
    async fn write_if(&self, what: &str, mkey: &str, record: &Record, cas: u64) -> Result<MutationStatus, StoreError> {
        let bytes = record.to_bytes();
        self.client.check_size(what, bytes.len())?;
        let set = Set::new(mkey, &bytes).ttl(ttl_until(record.expires, SystemTime::now())).compare_cas(cas);
        Ok(self.client.run(what, |mc| async move { mc.run(set).await }).await?.status)
    }

    /// Changes the live record with `edit` and writes it back if nobody wrote in between;
    /// retries on a lost race; then files the key in its principal's index. `false` when
    /// there is no live record.
    async fn update(&self, what: &str, key: &StoreKey, edit: impl Fn(&mut Record)) -> Result<bool, StoreError> {
        let mkey = self.memcached_key(key);
        let written = self.client.bounded(what, self.update_loop(what, &mkey, edit)).await?;
        let Some(moved) = written else { return Ok(false) };
        self.follow_index(key, key, moved.before.as_ref(), &moved.after).await?;
        Ok(true)
    }

    /// After a write of the record now under `key` (before under `from`): files it in its
    /// owner's index with its expiry (which keeps the index alive as long as the
    /// session), and takes `from` out of the index it was in before, if that changed.
    /// The record is written first, so an index member whose record is gone is dead for
    /// good, which is what lets `sessions_of` prune such members.
    async fn follow_index(
        &self,
        from: &StoreKey,
        key: &StoreKey,
        before: Option<&Owner>,
        record: &Record,
    ) -> Result<(), StoreError> {
        let prefix = &self.client.options.session_prefix;
        let after = record.owner.as_ref().map(|o| o.principal.as_str());
        let before = before.map(|o| o.principal.as_str());
        let expires = index::expiry_ms(record.expires);
        if let Some(p) = after {
            let same = before == Some(p) && from != key;
            index::update(&self.client, &index::index_key(prefix, p), |m| {
                // Two writes of one session may reach the index in either order: an expiry
                // only grows, so the index never expires before the session does.
                let e = m.entry(key.as_str().to_owned()).or_insert(expires);
                *e = (*e).max(expires);
                if same {
                    m.remove(from.as_str());
                }
            })
            .await?;
        }
        if let Some(p) = before.filter(|p| Some(*p) != after) {
            index::update(&self.client, &index::index_key(prefix, p), |m| {
                m.remove(from.as_str());
            })
            .await?;
        }
        Ok(())
    }

    async fn update_loop(
        &self,
        what: &str,
        mkey: &str,
        edit: impl Fn(&mut Record),
    ) -> Result<Option<Moved>, StoreError> {
        let now = SystemTime::now();
        if let Some((mut record, cas)) = self.hints.take(mkey).filter(|(r, _)| !r.is_expired(now)) {
            let before = record.owner.clone();
            edit(&mut record);
            match self.write_if(what, mkey, &record, cas).await? {
                MutationStatus::Applied => return Ok(Some(Moved { before, after: record })),
                MutationStatus::NotFound => return Ok(None),
                _ => tracing::debug!("memcached: {what}: the session changed since it was loaded; merging again"),
            }
        }
        for attempt in 0..=self.client.options.max_cas_retries {
            let Some((mut record, cas, _)) = self.read(what, mkey).await? else { return Ok(None) };
            let before = record.owner.clone();
            edit(&mut record);
            match self.write_if(what, mkey, &record, cas).await? {
                MutationStatus::Applied => return Ok(Some(Moved { before, after: record })),
                MutationStatus::NotFound => return Ok(None),
                _ => tracing::debug!("memcached: {what}: lost a CAS race, retrying"),
            }
            // Many writers on one session (a page firing requests in parallel): back off
            // a random, growing while, so that they stop colliding.
            tokio::time::sleep(cas_backoff(attempt)).await;
        }
        Err(StoreError::Unavailable {
            message: format!(
                "memcached: {what}: the session kept changing under us ({} CAS retries exhausted)",
                self.client.options.max_cas_retries
            ),
            source: None,
        })
    }

    async fn create_inner(&self, mkey: &str, record: &Record) -> Result<bool, StoreError> {
        let bytes = record.to_bytes();
        self.client.check_size("create", bytes.len())?;
        let add = Set::new(mkey, &bytes).ttl(ttl_until(record.expires, SystemTime::now())).add();
        let status = self.client.run("create", |mc| async move { mc.run(add).await }).await?.status;
        if status != MutationStatus::AlreadyExists {
            return Ok(status == MutationStatus::Applied);
        }
        // An item memcached still holds but whose record has expired (memcached counts
        // whole seconds) is dead: replace it, but only if it is still that very item
        // (CAS), or add if it went meanwhile. A live or undecodable item is kept.
        let get = Get::new(mkey).meta(Meta::NONE.cas());
        let got = self.client.run("create", |mc| async move { mc.run(get).await }).await?;
        let now = SystemTime::now();
        let live = got.value.as_deref().is_some_and(|b| Record::from_bytes(b).map_or(true, |r| !r.is_expired(now)));
        if live {
            return Ok(false);
        }
        let set = Set::new(mkey, &bytes).ttl(ttl_until(record.expires, now));
        let set = match (got.value, got.item.cas) {
            (Some(_), Some(cas)) => set.compare_cas(cas),
            _ => set.add(),
        };
        Ok(self.client.run("create", |mc| async move { mc.run(set).await }).await?.applied())
    }
}

#[async_trait]
impl SessionStore for MemcachedStore {
    async fn load(&self, key: &StoreKey) -> Result<Option<Record>, StoreError> {
        let mkey = self.memcached_key(key);
        match self.read("load", &mkey).await? {
            Some((record, cas, size)) => {
                self.hints.remember(&mkey, &record, cas, size);
                Ok(Some(record))
            }
            None => Ok(None),
        }
    }

    async fn lookup(&self, key: &StoreKey) -> Result<Lookup, StoreError> {
        let mkey = self.memcached_key(key);
        Ok(match self.find("load", &mkey).await? {
            Found::Live(record, cas, size) => {
                self.hints.remember(&mkey, &record, cas, size);
                Lookup::Live(record)
            }
            Found::Retired => Lookup::Retired,
            Found::Missing => Lookup::Missing,
        })
    }

    async fn create(&self, key: &StoreKey, record: &Record) -> Result<bool, StoreError> {
        let mkey = self.memcached_key(key);
        if !self.client.bounded("create", self.create_inner(&mkey, record)).await? {
            return Ok(false);
        }
        if record.owner.is_some() {
            self.follow_index(key, key, None, record).await?;
        }
        Ok(true)
    }

    async fn end(&self, key: &StoreKey, retire_for: Duration) -> Result<(), StoreError> {
        let mkey = self.memcached_key(key);
        if retire_for.is_zero() {
            return self.delete_item("end", &mkey).await;
        }
        self.hints.forget(&mkey);
        // One unconditional set: any writer still holding the record's CAS value fails.
        self.retire("end", &mkey, retire_for, None).await.map(|_| ())
    }

    async fn rename(
        &self,
        from: &StoreKey,
        to: &StoreKey,
        changes: &Changes,
        retire_for: Duration,
    ) -> Result<bool, StoreError> {
        let (mfrom, mto) = (self.memcached_key(from), self.memcached_key(to));
        let moved = self.client.bounded("rename", self.rename_loop(&mfrom, &mto, changes, retire_for)).await?;
        let Some(moved) = moved else { return Ok(false) };
        self.follow_index(from, to, moved.before.as_ref(), &moved.after).await?;
        Ok(true)
    }

    async fn count(&self) -> Result<u64, StoreError> {
        self.count_sessions().await
    }

    async fn scan(&self, cursor: Option<&str>, limit: usize) -> Result<Page, StoreError> {
        self.scan_page(cursor, limit).await
    }

    async fn find(&self, handle: &SessionHandle) -> Result<Option<StoreKey>, StoreError> {
        self.find_handle(handle).await
    }

    async fn sessions_of(&self, principal: &str) -> Result<Vec<Listed>, StoreError> {
        let ikey = index::index_key(&self.client.options.session_prefix, principal);
        let members = index::read(&self.client, &ikey).await?;
        let keys: Vec<StoreKey> = members.keys().filter_map(|k| StoreKey::from_stored(k)).collect();
        let mut found = Vec::with_capacity(keys.len());
        // A bounded number of reads in flight, however many sessions the principal has.
        for batch in keys.chunks(256) {
            let each = batch.iter().map(|key| {
                let mkey = self.memcached_key(key);
                async move { self.find("sessions_of", &mkey).await }
            });
            found.extend(futures_util::future::try_join_all(each).await?);
        }
        let mut listed = Vec::new();
        let mut dead = Vec::new();
        for (key, found) in keys.iter().zip(found) {
            match found {
                Found::Live(record, ..) if owned_by(record.owner.as_ref(), principal) => {
                    listed.push(Listed::of(key, &record))
                }
                // Filed under another principal since: listed there; this member lapses.
                Found::Live(..) => {}
                // The record was written before its member, so a member whose record is
                // gone (ended, deleted, expired, evicted) never gets it back.
                Found::Retired | Found::Missing => dead.push(key.as_str().to_owned()),
            }
        }
        if !dead.is_empty() {
            index::update(&self.client, &ikey, |m| {
                for k in &dead {
                    m.remove(k);
                }
            })
            .await?;
        }
        Ok(listed)
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
        self.delete_item("delete", &self.memcached_key(key)).await
    }

    fn name(&self) -> &'static str {
        "memcached"
    }
}

/// A random pause in `[0, 0.5 ms × 2^attempt)`, at most 32 ms: jittered exponential backoff
/// after a lost compare-and-swap race.
pub(crate) fn cas_backoff(attempt: u32) -> std::time::Duration {
    let cap_us = 500u64 << attempt.min(6);
    let mut buf = [0u8; 8];
    let random = getrandom::getrandom(&mut buf).map_or(cap_us / 2, |()| u64::from_le_bytes(buf));
    std::time::Duration::from_micros(random % cap_us)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(n: usize) -> Record {
        let now = SystemTime::now();
        Record {
            entries: [("k".to_string(), vec![0; n])].into(),
            created: now,
            accessed: now,
            expires: None,
            owner: None,
        }
    }

    #[test]
    fn tombstones_hold_their_window_and_never_read_as_records() {
        let now = SystemTime::now();
        let stone = tombstone(now + Duration::from_secs(5));
        assert_eq!(retired_at(&stone, now), Some(true));
        assert_eq!(retired_at(&stone, now + Duration::from_secs(6)), Some(false));
        assert!(Record::from_bytes(&stone).is_err(), "a tombstone must not decode as a record");
        assert_eq!(retired_at(&record(1).to_bytes(), now), None);
    }

    #[test]
    fn hints_are_taken_once_and_bounded() {
        let hints = Hints::default();
        hints.remember("a", &record(10), 7, 10);
        assert_eq!(hints.take("a").map(|(_, cas)| cas), Some(7));
        assert!(hints.take("a").is_none(), "a hint is used once");
        hints.remember("big", &record(1), 1, HINT_MAX_RECORD + 1);
        assert!(hints.take("big").is_none(), "big records are not remembered");
        for i in 0..HINT_MAX_COUNT + 10 {
            hints.remember(&format!("k{i}"), &record(1), 1, 100);
        }
        let map = hints.map.lock().unwrap();
        assert!(map.entries.len() <= HINT_MAX_COUNT);
        assert_eq!(map.bytes, map.entries.values().map(|h| h.size).sum::<usize>());
    }
}
