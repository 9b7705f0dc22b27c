//! What store authors need: the [`SessionStore`] trait that every server-side backend
//! implements, the records and change sets it exchanges with the engine, and the
//! [`StoreKey`] records are kept under. Applications pick a store; they do not name these.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;
use std::time::{Duration, SystemTime};

use crate::clock::{from_millis, to_millis};
use crate::error::StoreError;
pub use crate::id::{SessionHandle, StoreKey};

/// Re-exported so that store implementations name the same `async_trait`.
pub use async_trait::async_trait;

/// One session as a store keeps it: its entries (each value already serialized and tagged
/// by the engine: stores see bytes, never Rust types) and its timestamps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Session keys to serialized values.
    pub entries: BTreeMap<String, Vec<u8>>,
    /// When the session was created.
    pub created: SystemTime,
    /// When the session was last accessed (as far as the store was told).
    pub accessed: SystemTime,
    /// When the record stops being valid; `None` = no server-side expiry.
    pub expires: Option<SystemTime>,
    /// Who the session belongs to, once the application said so
    /// (`Session::set_principal`); stores file the key in their principal index.
    pub owner: Option<Owner>,
}

/// Who a session belongs to: the application's id for the user (the *principal*) and,
/// optionally, a short description of the device the application chose to record (a user
/// agent, an address). Both are plain text the store keeps beside the session's entries.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Owner {
    /// The application's id for the user, e.g. a user id or a login name.
    pub principal: String,
    /// What the application recorded about the device, if anything.
    pub device: Option<String>,
}

/// One session as a listing shows it: enough to name it (its key, from which the
/// displayable [`SessionHandle`] is derived) and describe it, without its entries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    /// The key the record is filed under (never shown: use [`SessionHandle::of`]).
    pub key: StoreKey,
    /// When the session was created.
    pub created: SystemTime,
    /// When it was last used, as far as the store was told.
    pub accessed: SystemTime,
    /// When it expires.
    pub expires: Option<SystemTime>,
    /// Who it belongs to.
    pub owner: Option<Owner>,
    /// The size of its entries (keys and serialized values) in bytes.
    pub size: u64,
}

impl Listed {
    /// The listing of `record`, filed under `key`.
    pub fn of(key: &StoreKey, record: &Record) -> Self {
        Listed {
            key: key.clone(),
            created: record.created,
            accessed: record.accessed,
            expires: record.expires,
            owner: record.owner.clone(),
            size: record.entries.iter().map(|(k, v)| (k.len() + v.len()) as u64).sum(),
        }
    }
}

/// One page of a [`SessionStore::scan`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Page {
    /// The sessions on this page (live records only; no tombstones).
    pub items: Vec<Listed>,
    /// Where the next page starts (an opaque cursor for the same store), or `None` when
    /// the scan is complete.
    pub next: Option<String>,
}

impl Record {
    /// Whether the record has expired at `now`. Stores must never return an expired record.
    pub fn is_expired(&self, now: SystemTime) -> bool {
        self.expires.is_some_and(|e| e <= now)
    }

    /// Applies `changes` in place (clear, then removals, then sets, then timestamps).
    pub fn apply(&mut self, changes: &Changes) {
        if changes.clear {
            self.entries.clear();
        }
        for k in &changes.remove {
            self.entries.remove(k);
        }
        for (k, v) in &changes.set {
            match self.entries.get_mut(k) {
                // An update reuses the key and, when it fits, the value's buffer.
                Some(old) => {
                    old.clear();
                    old.extend_from_slice(v);
                }
                None => {
                    self.entries.insert(k.clone(), v.clone());
                }
            }
        }
        self.accessed = changes.accessed;
        self.expires = changes.expires;
        if let Some(owner) = &changes.owner {
            self.owner = Some(owner.clone());
        }
    }

    /// A compact, versioned binary form of the whole record, for stores that keep a session
    /// as one blob (files, Memcached, the cookie store). A record without an owner is
    /// written in the first version of the format, byte for byte, so that an older reader
    /// still reads it.
    pub fn to_bytes(&self) -> Vec<u8> {
        let size: usize = self.entries.iter().map(|(k, v)| 8 + k.len() + v.len()).sum();
        let mut out = Vec::with_capacity(RECORD_HEADER + size);
        out.extend_from_slice(if self.owner.is_some() { RECORD_MAGIC_OWNED } else { RECORD_MAGIC });
        out.extend_from_slice(&to_millis(self.created).to_be_bytes());
        out.extend_from_slice(&to_millis(self.accessed).to_be_bytes());
        out.extend_from_slice(&self.expires.map_or(0, to_millis).to_be_bytes());
        out.extend_from_slice(&(self.entries.len() as u32).to_be_bytes());
        for (k, v) in &self.entries {
            out.extend_from_slice(&(k.len() as u32).to_be_bytes());
            out.extend_from_slice(k.as_bytes());
            out.extend_from_slice(&(v.len() as u32).to_be_bytes());
            out.extend_from_slice(v);
        }
        if let Some(owner) = &self.owner {
            put_str(&mut out, &owner.principal);
            match &owner.device {
                Some(device) => {
                    out.push(1);
                    put_str(&mut out, device);
                }
                None => out.push(0),
            }
        }
        out
    }

    /// Reads what [`to_bytes`](Self::to_bytes) wrote. Every length is checked against the
    /// input, so garbage or truncated input is an error and never a large allocation.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, StoreError> {
        let mut r = Reader(bytes);
        let owned = match r.take(RECORD_MAGIC.len())? {
            m if m == RECORD_MAGIC => false,
            m if m == RECORD_MAGIC_OWNED => true,
            _ => return Err(StoreError::corrupt("not a beaker record (bad magic or version)")),
        };
        let created = from_millis(r.u64()?);
        let accessed = from_millis(r.u64()?);
        let expires = match r.u64()? {
            0 => None,
            ms => Some(from_millis(ms)),
        };
        let count = r.u32()? as usize;
        let mut entries = BTreeMap::new();
        for _ in 0..count {
            let klen = r.u32()? as usize;
            let key = utf8(r.take(klen)?, "record key is not UTF-8")?;
            let vlen = r.u32()? as usize;
            entries.insert(key, r.take(vlen)?.to_vec());
        }
        let owner = if owned {
            let principal = r.str()?;
            let device = match r.take(1)? {
                [0] => None,
                [1] => Some(r.str()?),
                _ => return Err(StoreError::corrupt("bad device flag in the record")),
            };
            Some(Owner { principal, device })
        } else {
            None
        };
        if !r.0.is_empty() {
            return Err(StoreError::corrupt("trailing bytes after the record"));
        }
        Ok(Record { entries, created, accessed, expires, owner })
    }
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u32).to_be_bytes());
    out.extend_from_slice(s.as_bytes());
}

const RECORD_MAGIC: &[u8] = b"BKR1";
/// The same layout followed by the owner (principal, then a flag and the device).
const RECORD_MAGIC_OWNED: &[u8] = b"BKR2";
const RECORD_HEADER: usize = 4 + 8 * 3 + 4;

/// Reads a binary record front to back; every read is checked against what is left.
pub(crate) struct Reader<'a>(pub(crate) &'a [u8]);

impl<'a> Reader<'a> {
    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], StoreError> {
        if n > self.0.len() {
            return Err(StoreError::corrupt("truncated record"));
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Ok(head)
    }
    fn u64(&mut self) -> Result<u64, StoreError> {
        Ok(u64::from_be_bytes(self.take(8)?.try_into().expect("8 bytes")))
    }
    fn u32(&mut self) -> Result<u32, StoreError> {
        Ok(u32::from_be_bytes(self.take(4)?.try_into().expect("4 bytes")))
    }
    fn str(&mut self) -> Result<String, StoreError> {
        let len = self.u32()? as usize;
        utf8(self.take(len)?, "record owner is not UTF-8")
    }

    /// An unsigned LEB128 number (7 bits a byte, low bits first), at most 10 bytes.
    pub(crate) fn varint(&mut self) -> Result<u64, StoreError> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = self.take(1)?[0];
            // The tenth byte holds bit 63 only.
            if shift == 63 && byte > 1 {
                break;
            }
            value |= u64::from(byte & 0x7f) << shift;
            if byte < 0x80 {
                return Ok(value);
            }
        }
        Err(StoreError::corrupt("a number in the record is too long"))
    }

    /// A varint length, then that many bytes.
    pub(crate) fn sized(&mut self) -> Result<&'a [u8], StoreError> {
        let len = usize::try_from(self.varint()?).unwrap_or(usize::MAX);
        self.take(len)
    }
}

/// Writes `value` as [`Reader::varint`] reads it.
pub(crate) fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push(value as u8 | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// `bytes` as a `String`, or a corrupt-record error saying `what`.
pub(crate) fn utf8(bytes: &[u8], what: &'static str) -> Result<String, StoreError> {
    Ok(std::str::from_utf8(bytes).map_err(|_| StoreError::corrupt(what))?.to_owned())
}

/// What one request changed in a session: per-key sets and removals (so that two
/// requests changing different keys of one session both survive), an optional wholesale
/// clear, and the new timestamps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Changes {
    /// Remove every entry before applying `remove` and `set`.
    pub clear: bool,
    /// Keys to set, with their serialized values.
    pub set: BTreeMap<String, Vec<u8>>,
    /// Keys to remove.
    pub remove: BTreeSet<String>,
    /// The new last-accessed time.
    pub accessed: SystemTime,
    /// The new expiry (`None` = no server-side expiry).
    pub expires: Option<SystemTime>,
    /// A new owner for the session (`None` = unchanged). The store moves the key in its
    /// principal index with the write.
    pub owner: Option<Owner>,
}

/// What [`SessionStore::lookup`] found under a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// A live record.
    Live(Record),
    /// No live record, and the key was retired by [`SessionStore::end`] or
    /// [`SessionStore::rename`] less than its retire window ago: the session under it
    /// ended a moment ago (logout, regeneration), and a request still carrying its id must
    /// neither see its data nor be given a fresh session that would replace the new one.
    Retired,
    /// Nothing: never written, expired, deleted, or retired longer ago than the window.
    Missing,
}

/// A server-side session store: a backend that files [`Record`]s under [`StoreKey`]s.
///
/// # Contract
///
/// - Stores see bytes and keys, never Rust types or raw session ids: the engine serializes
///   values and derives the key (by default a hash of the id).
/// - `load` and `lookup` never return a record whose `expires` has passed (stores with
///   native TTL get this for free; others compare with the clock they were given).
/// - `create` never overwrites: it returns `false` if a live record exists under the key.
///   The engine only creates under keys of freshly generated ids, so `create` need not
///   look for a tombstone (see `end`).
/// - `apply` changes only the keys named in [`Changes`] (unless `clear` is set), atomically
///   with respect to other `apply`, `touch`, `end` and `rename` calls on the same key, and
///   returns `false` without writing anything when no live record exists. The engine then
///   drops the request's changes: a session whose record is gone has ended, and its data
///   is never written again under any key.
/// - `touch` updates `accessed` and `expires` only, and returns `false` when there is no
///   live record.
/// - `delete` of a missing key is not an error. It leaves no tombstone.
/// - **The ended-session rule.** `end(key, retire_for)` removes the record and, when
///   `retire_for` is not zero, leaves a *tombstone* under the key for `retire_for` (by
///   the store's clock), in one step: no `lookup` may see the key neither live nor
///   retired in between. `rename(from, to, changes, retire_for)` moves a live record in
///   one step: it applies `changes` to the record under `from`, files the result under
///   `to` (its `created` kept, so the absolute lifetime survives regeneration), removes
///   `from` and retires it like `end`. It is atomic with respect to `apply` on `from`:
///   every `apply` on `from` either returns `true` before the move, and its change is in
///   the record under `to`, or returns `false`. It returns `false` (and writes nothing)
///   when there is no live record under `from`. `to` is always the key of a freshly
///   generated id; a record already under it is an error, never overwritten.
/// - While a tombstone lives, `lookup` returns [`Lookup::Retired`], `load` returns
///   `None`, and `apply`, `touch` and `rename` from the key return `false`. A tombstone
///   holds no data and never points at the key its session moved to (that would hand the
///   new id to whoever holds the old one: fixation). `cleanup` removes expired
///   tombstones along with expired records; stores with native expiry let them lapse.
/// - Every operation honours the backend's timeout and returns
///   [`StoreError::Unavailable`] when the backend cannot be reached; it never panics.
/// - A record that cannot be decoded is reported as [`StoreError::Corrupt`] (the engine
///   then starts a fresh session when `invalidate_corrupt` is on).
///
/// # Defaults
///
/// `lookup`, `end` and `rename` have default bodies built on the other operations, so that
/// a store written before they existed keeps compiling. The defaults keep no tombstones
/// (`lookup` never says [`Lookup::Retired`], `end` is `delete`) and their `rename` is
/// `load`, `create`, `delete` in three steps: an `apply` on `from` that lands between the
/// `load` and the `delete` returns `true` and is lost. Every built-in store overrides
/// all three with its backend's atomic operations; a third-party store should too (the
/// testkit's store suite checks the contract above).
///
/// # The principal index and enumeration (optional capabilities)
///
/// A store that keeps a *principal index* lists the sessions of one user
/// ([`sessions_of`](Self::sessions_of)), which is how an application shows "your devices",
/// ends one of them, or signs a user out everywhere. The index follows the records:
///
/// - A record's [`owner`](Record::owner), given with the record to `create` or set by
///   [`Changes::owner`] in `apply` or `rename`, files its key under `owner.principal`;
///   changing the owner moves it. `touch` leaves the index alone.
/// - `sessions_of(p)` lists exactly the live records whose owner's principal is `p` (no
///   tombstones, nothing expired): a key whose record was ended, deleted, renamed away,
///   expired or cleaned up is never listed, and `rename` lists the new key in place of the
///   old one in the same step.
/// - The index never outlives its sessions: its entries for a record go no later than the
///   record does (native expiry, `cleanup`, or pruning when listed), so an index does not
///   grow past the live sessions plus those `cleanup` has yet to remove.
/// - Ending a listed session is [`end`](Self::end) on its key, with the same rule as a
///   logout: no request in flight brings it back.
///
/// *Enumeration* is for operators and tools: [`count`](Self::count),
/// [`scan`](Self::scan) in pages of bounded size, [`find`](Self::find) by
/// [`SessionHandle`], and [`cleanup`](Self::cleanup) to delete what expired.
///
/// The defaults answer [`StoreError::Unsupported`] (`find` scans when `scan` works), so
/// a store that keeps no index still compiles and says so; every built-in server store
/// implements all of them (the testkit's store suite checks the rules above).
///
/// The trait is object safe; the engine holds an `Arc<dyn SessionStore>`.
#[async_trait]
pub trait SessionStore: Send + Sync + Debug + 'static {
    /// Loads the live record under `key`.
    async fn load(&self, key: &StoreKey) -> Result<Option<Record>, StoreError>;

    /// Loads the live record under `key`, or says the key was retired a moment ago. This
    /// is what the engine calls to load a session; it must cost no more round trips than
    /// `load`. The default reports no tombstones.
    async fn lookup(&self, key: &StoreKey) -> Result<Lookup, StoreError> {
        Ok(match self.load(key).await? {
            Some(record) => Lookup::Live(record),
            None => Lookup::Missing,
        })
    }

    /// Creates a record; `false` (and nothing written) if a live one already exists.
    async fn create(&self, key: &StoreKey, record: &Record) -> Result<bool, StoreError>;

    /// Applies per-key changes to a live record; `false` (and nothing written) if none.
    async fn apply(&self, key: &StoreKey, changes: &Changes) -> Result<bool, StoreError>;

    /// Updates the timestamps of a live record; `false` if none.
    async fn touch(
        &self,
        key: &StoreKey,
        accessed: SystemTime,
        expires: Option<SystemTime>,
    ) -> Result<bool, StoreError>;

    /// Deletes the record under `key`, if any (no tombstone).
    async fn delete(&self, key: &StoreKey) -> Result<(), StoreError>;

    /// Ends the session under `key` (logout, revocation): removes its record and retires
    /// the key for `retire_for` in one step (see the contract). Ending a missing or
    /// already retired key is not an error. The default is `delete`, without a tombstone.
    async fn end(&self, key: &StoreKey, retire_for: Duration) -> Result<(), StoreError> {
        let _ = retire_for;
        self.delete(key).await
    }

    /// Moves the live record under `from` to the fresh key `to` with `changes` applied,
    /// and retires `from` for `retire_for`, in one step (regeneration; see the contract).
    /// `false`, and nothing written, when there is no live record under `from`. The
    /// default takes three steps (see "Defaults" above).
    async fn rename(
        &self,
        from: &StoreKey,
        to: &StoreKey,
        changes: &Changes,
        retire_for: Duration,
    ) -> Result<bool, StoreError> {
        let Some(mut record) = self.load(from).await? else {
            return Ok(false);
        };
        record.apply(changes);
        if !self.create(to, &record).await? {
            return Err(StoreError::Backend {
                message: "rename: a record already exists under the new key".into(),
                source: None,
            });
        }
        self.end(from, retire_for).await?;
        Ok(true)
    }

    /// Removes expired records (and expired tombstones) and returns how many went; stores
    /// with native expiry keep the default, which does nothing.
    async fn cleanup(&self) -> Result<u64, StoreError> {
        Ok(0)
    }

    /// The live sessions of `principal` (see "The principal index" above), in any order.
    /// The default answers [`StoreError::Unsupported`].
    async fn sessions_of(&self, principal: &str) -> Result<Vec<Listed>, StoreError> {
        let _ = principal;
        Err(StoreError::unsupported(self.name(), "a principal index"))
    }

    /// How many live sessions the store holds. A store whose expired records linger until
    /// `cleanup` may count them; its documentation says so. The default answers
    /// [`StoreError::Unsupported`].
    async fn count(&self) -> Result<u64, StoreError> {
        Err(StoreError::unsupported(self.name(), "counting sessions"))
    }

    /// One page of at most `limit` live sessions (at least one unless the scan is done),
    /// starting at `cursor` (`None`: from the start; then each page's
    /// [`next`](Page::next)). Memory is bounded by `limit` whatever the store's size. A
    /// scan that runs beside writes lists every session that lives throughout it, and may
    /// miss or repeat one created, moved or ended meanwhile. The default answers
    /// [`StoreError::Unsupported`].
    async fn scan(&self, cursor: Option<&str>, limit: usize) -> Result<Page, StoreError> {
        let _ = (cursor, limit);
        Err(StoreError::unsupported(self.name(), "listing sessions"))
    }

    /// The key of the live session whose handle is `handle`, if any. The default scans
    /// page by page; a store that can look a handle up directly should.
    async fn find(&self, handle: &SessionHandle) -> Result<Option<StoreKey>, StoreError> {
        let mut cursor: Option<String> = None;
        loop {
            let page = self.scan(cursor.as_deref(), 1000).await?;
            if let Some(found) = page.items.into_iter().find(|l| SessionHandle::of(&l.key) == *handle) {
                return Ok(Some(found.key));
            }
            match page.next {
                Some(next) => cursor = Some(next),
                None => return Ok(None),
            }
        }
    }

    /// A short name for logs and metrics (`memory`, `redis`, ...).
    fn name(&self) -> &'static str;
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    fn record() -> Record {
        Record {
            entries: [("a".to_string(), b"j1".to_vec()), ("ключ".to_string(), vec![0, 1, 255])].into(),
            created: UNIX_EPOCH + Duration::from_millis(1_700_000_000_123),
            accessed: UNIX_EPOCH + Duration::from_millis(1_700_000_000_456),
            expires: Some(UNIX_EPOCH + Duration::from_millis(1_700_000_999_000)),
            owner: None,
        }
    }

    #[test]
    fn record_bytes_round_trip() {
        let r = record();
        assert_eq!(Record::from_bytes(&r.to_bytes()).unwrap(), r);
        let mut no_expiry = r.clone();
        no_expiry.expires = None;
        assert_eq!(Record::from_bytes(&no_expiry.to_bytes()).unwrap(), no_expiry);
    }

    #[test]
    fn owned_records_round_trip_and_unowned_ones_keep_the_first_format() {
        let plain = record().to_bytes();
        assert_eq!(&plain[..4], b"BKR1");
        for device in [None, Some("Firefox on 203.0.113.7".to_string())] {
            let mut r = record();
            r.owner = Some(Owner { principal: "alice@example.com".into(), device });
            let bytes = r.to_bytes();
            assert_eq!(&bytes[..4], b"BKR2");
            assert_eq!(Record::from_bytes(&bytes).unwrap(), r);
            for n in 0..bytes.len() {
                assert!(Record::from_bytes(&bytes[..n]).is_err(), "prefix of {n} bytes accepted");
            }
        }
    }

    #[test]
    fn a_handle_is_stable_distinct_and_not_the_key() {
        let a = StoreKey::from_stored("abc").unwrap();
        let b = StoreKey::from_stored("abd").unwrap();
        let h = SessionHandle::of(&a);
        assert_eq!(h, SessionHandle::of(&a));
        assert_ne!(h, SessionHandle::of(&b));
        assert_eq!(h.as_str().len(), 22);
        assert!(!h.as_str().contains("abc"));
        assert_eq!(SessionHandle::parse(h.as_str()), Some(h.clone()));
        assert_eq!(SessionHandle::parse("short"), None);
        assert_eq!(SessionHandle::parse(&format!("{}!", &h.as_str()[..21])), None);
    }

    #[test]
    fn truncated_or_garbage_records_are_corrupt() {
        let bytes = record().to_bytes();
        for n in 0..bytes.len() {
            assert!(Record::from_bytes(&bytes[..n]).is_err(), "prefix of {n} bytes accepted");
        }
        let mut huge = bytes.clone();
        huge[32..36].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(matches!(Record::from_bytes(&huge), Err(StoreError::Corrupt { .. })));
        let mut extra = bytes;
        extra.push(0);
        assert!(Record::from_bytes(&extra).is_err());
    }

    #[test]
    fn apply_is_per_key() {
        let mut r = record();
        let changes = Changes {
            clear: false,
            set: [("b".to_string(), b"j2".to_vec())].into(),
            remove: ["a".to_string()].into(),
            accessed: UNIX_EPOCH,
            expires: None,
            owner: None,
        };
        r.apply(&changes);
        assert_eq!(r.entries.keys().collect::<Vec<_>>(), vec!["b", "ключ"]);
        assert_eq!(r.expires, None);
    }
}
