//! [`RedisStore`]: sessions as Redis hashes, changed per key by Lua scripts.

use std::collections::BTreeMap;
use std::sync::LazyLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use beaker_core::store::{async_trait, Changes, Listed, Lookup, Owner, Page, Record, SessionStore, StoreKey};
use beaker_core::StoreError;
use std::io::Write as _;

use redis::{Cmd, RedisWrite as _, Script, Value};

use crate::client::{evalsha, RedisClient};
use crate::error::ConnectError;
use crate::index;
use crate::options::RedisOptions;

/// Field-name prefix of the session's own entries, keeping them apart from the meta field.
const ENTRY: &str = "k:";
/// The meta field: `"<created> <accessed> <expires>"`, Unix ms (`0`: no expiry). One field
/// rather than three keeps the load reply short (parsing it is much of a load's CPU).
const META: &str = "m";
/// The meta fields of records written before 0.1 (`m:c`, `m:a`, `m:e`): still read; a
/// write to such a record moves its data to a fresh id (the scripts find no `m`).
const LEGACY_META: [&str; 3] = ["m:c", "m:a", "m:e"];

// `load` is a plain `HGETALL`, not a script: a script call costs the Redis server several
// times the command's own work, and the Redis server is the part every application
// instance shares.
//
// Every script starts by reading `m`: Redis never reports an expired key, so "no live
// record" is decided by the server's own clock and TTL.

/// KEYS[1] session; ARGV: meta (`"c a e"`), expires (ms, 0 = none), the owner (five
/// arguments, see [`owner_args`]), then field/value pairs. Answers `0` if the key is taken,
/// else `{1, '', index key or ''}`.
static CREATE: LazyLock<Scripts> = LazyLock::new(|| {
    Scripts::new(
        r"
local K = KEYS[1]
if redis.call('EXISTS', K) == 1 then return 0 end
redis.call('HSET', K, 'm', ARGV[1], unpack(ARGV, 8, math.min(1005, #ARGV)))
for i = 1006, #ARGV, 1000 do redis.call('HSET', K, unpack(ARGV, i, math.min(i + 999, #ARGV))) end
set_owner(K, 2)
if ARGV[2] ~= '0' then redis.call('PEXPIREAT', K, ARGV[2]) end
local x = redis.call('HGET', K, 'x')
if x then index_add(x, K, ARGV[2]) end
return {1, '', x or ''}
",
    )
});

/// The Lua function every script that changes a record starts from: `apply(K, o)` applies
/// the changes in `ARGV[o + 1]…` to the live record `K` and returns the index key it was
/// filed under before (`''` for none), or returns `false` (writing nothing) when `K` holds
/// no live record (missing, or a tombstone, which has no `m`). The arguments: clear (0/1),
/// accessed, expires, the owner (five arguments, see [`owner_args`]), number of removals,
/// the removed fields, then field/value pairs to set. Fields go in one `HDEL` and one
/// `HSET` (with the meta field) per thousand arguments: each `redis.call` costs the server
/// about a microsecond, and Lua's `unpack` has a stack limit.
const APPLY_FN: &str = r"
local function apply(K, o)
  local m = redis.call('HGET', K, 'm')
  if not m then return false end
  local old = redis.call('HGET', K, 'x') or ''
  if ARGV[o + 1] == '1' then
    for _, f in ipairs(redis.call('HKEYS', K)) do
      if string.sub(f, 1, 2) == 'k:' then redis.call('HDEL', K, f) end
    end
  end
  set_owner(K, o + 3)
  local n = tonumber(ARGV[o + 9])
  for i = o + 10, o + 9 + n, 1000 do redis.call('HDEL', K, unpack(ARGV, i, math.min(i + 999, o + 9 + n))) end
  local first = o + 10 + n
  local meta = (string.match(m, '^%d+') or '0') .. ' ' .. ARGV[o + 2] .. ' ' .. ARGV[o + 3]
  redis.call('HSET', K, 'm', meta, unpack(ARGV, first, math.min(first + 997, #ARGV)))
  for i = first + 998, #ARGV, 1000 do redis.call('HSET', K, unpack(ARGV, i, math.min(i + 999, #ARGV))) end
  if ARGV[o + 3] == '0' then redis.call('PERSIST', K) else redis.call('PEXPIREAT', K, ARGV[o + 3]) end
  return old
end
";

/// Replaces key `K` by a tombstone (a hash `{t = 1}`) living `ms` milliseconds, or
/// deletes it when `ms` is `'0'`, and takes it out of its principal's index. Whatever
/// the key held (a corrupt value of another type too) goes.
const RETIRE_FN: &str = r"
local function retire(K, ms)
  local x = false
  if redis.call('TYPE', K).ok == 'hash' then x = redis.call('HGET', K, 'x') end
  redis.call('DEL', K)
  if ms ~= '0' then
    redis.call('HSET', K, 't', '1')
    redis.call('PEXPIRE', K, ms)
  end
  if x then index_rem(x, K) end
  return x or ''
end
";

/// The apply scripts: `apply` on KEYS[1] (the changes in `ARGV[1]`), `0` if the record is
/// not live, else its reindexing and then `tail`, which returns the answer.
fn apply_then(tail: &str) -> Scripts {
    Scripts::new(&format!(
        "{APPLY_FN}
local old = apply(KEYS[1], 0)
if not old then return 0 end
local new = reindex_record(KEYS[1], KEYS[1], old, ARGV[3])
{tail}"
    ))
}

/// KEYS[1] session; ARGV: the changes as `apply` reads them from `ARGV[1]`. `0` if the
/// record is not live, else `{1, old index key, new index key}` (`''`: none).
pub(crate) static APPLY: LazyLock<Scripts> = LazyLock::new(|| apply_then("return {1, old, new}"));

/// [`APPLY`] followed by the record it left, for the near cache: `0` if the record is not
/// live, else `{1, old index key, new index key, the hash as HGETALL lists it}`. Redis
/// remembers the keys a script reads for the client that ran it, so on the tracking
/// connection the read renews the tracking that the write ended, in the same call.
pub(crate) static APPLY_READ: LazyLock<Scripts> =
    LazyLock::new(|| apply_then("return {1, old, new, redis.call('HGETALL', KEYS[1])}"));

/// [`APPLY`] for the near cache when the tier held the record as the write began: the
/// tier computes what the write left itself, so the script only reads the key again
/// (`EXISTS`) to renew the tracking the write ended. Answers as `APPLY`.
pub(crate) static APPLY_TRACK: LazyLock<Scripts> =
    LazyLock::new(|| apply_then("redis.call('EXISTS', KEYS[1])\nreturn {1, old, new}"));

/// KEYS[1] session; ARGV[1] retire window (ms, `0`: delete). `{1, index key or '', ''}`.
static END: LazyLock<Scripts> =
    LazyLock::new(|| Scripts::new(&format!("{RETIRE_FN}\nreturn {{1, retire(KEYS[1], ARGV[1]), ''}}")));

/// One node: KEYS[1] old key, KEYS[2] new key; ARGV[1] retire window (ms), then the
/// changes from `ARGV[2]`. `-1` if the new key is taken, `0` if the old record is not
/// live, `1` once moved (`RENAME` keeps the TTL `apply` just set). The index lists the
/// new key in place of the old one in the same step.
static MOVE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        "{}{APPLY_FN}{RETIRE_FN}
if redis.call('EXISTS', KEYS[2]) == 1 then return -1 end
local old = apply(KEYS[1], 1)
if not old then return 0 end
redis.call('RENAME', KEYS[1], KEYS[2])
retire(KEYS[1], ARGV[1])
reindex_record(KEYS[2], KEYS[1], old, ARGV[4])
return 1
",
        index::lua_prelude(true)
    ))
});

/// Cluster, first step of a move (the old and new keys live in different slots): KEYS[1]
/// old key; ARGV as for `MOVE`. Applies the changes, takes the whole hash and leaves the
/// tombstone, atomically on the old key's slot; `0` if the record is not live, else
/// `{index key the record was filed under or '', the hash}`.
static TAKE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        "{}{APPLY_FN}{RETIRE_FN}
local old = apply(KEYS[1], 1)
if not old then return 0 end
local all = redis.call('HGETALL', KEYS[1])
retire(KEYS[1], ARGV[1])
return {{old, all}}
",
        index::lua_prelude(false)
    ))
});

/// KEYS[1] session; ARGV: accessed, expires. A tombstone has no `m`: nothing to touch.
/// `0`, or `{1, index key, index key}` (`''`: none; the index's expiry follows).
static TOUCH: LazyLock<Scripts> = LazyLock::new(|| {
    Scripts::new(
        r"
local K = KEYS[1]
local m = redis.call('HGET', K, 'm')
if not m then return 0 end
redis.call('HSET', K, 'm', (string.match(m, '^%d+') or '0') .. ' ' .. ARGV[1] .. ' ' .. ARGV[2])
if ARGV[2] == '0' then redis.call('PERSIST', K) else redis.call('PEXPIREAT', K, ARGV[2]) end
local x = redis.call('HGET', K, 'x') or ''
return {1, x, reindex_record(K, K, x, ARGV[2])}
",
    )
});

/// A script in two builds: one that keeps the principal index in the same step (one node,
/// where a script may reach the index key too) and one that leaves it to a second step
/// (Cluster, where the index key lives in another slot).
pub(crate) struct Scripts {
    one_node: Script,
    cluster: Script,
}

impl Scripts {
    fn new(body: &str) -> Self {
        Scripts {
            one_node: Script::new(&format!("{}{body}", index::lua_prelude(true))),
            cluster: Script::new(&format!("{}{body}", index::lua_prelude(false))),
        }
    }
}

/// A [`SessionStore`] on Redis (single node, Cluster or Sentinel).
///
/// A session is one hash under `<session_prefix>{<store key>}` (the braces are a cluster
/// hash tag, so everything of one session stays in one slot): the entries as fields
/// `k:<key>`, the timestamps in field `m` as `"<created> <accessed> <expires>"` (Unix
/// milliseconds, `0` for no expiry), and the record's
/// expiry as the key's native TTL (`PEXPIREAT`; no TTL when the record has no expiry).
///
/// Round trips per call, in the steady state: one each. `load` and `lookup` are
/// `HGETALL`; `create`, `apply`, `touch`, `end`, `delete` and (on one node) `rename` are
/// an `EVALSHA` of a script that checks the key, writes, and keeps the principal index
/// (in a Cluster, one more round trip when the session has an owner: see below). The
/// first time a script runs on a server it costs two more (`NOSCRIPT`, then
/// `SCRIPT LOAD`). `apply` changes only the named fields, atomically, so
/// concurrent requests that change different keys of one session both survive.
///
/// # Ended sessions
///
/// A retired key (ended by `end`, or moved away by `rename`) holds a *tombstone*: a hash
/// with the single field `t` whose TTL is the retire window. It carries no data and never
/// names the new key; `lookup` reports it as retired, and the scripts of `apply`, `touch`
/// and `rename` find no meta field in it and refuse to write. On one node, `rename` is one
/// script: apply the changes, `RENAME` (the TTL moves with the key), tombstone. In a
/// Cluster the old and new keys hash to different slots (each key's hash tag is its own
/// store key) and no script may span two slots, so `rename` takes two round trips: a
/// script on the old key's slot applies the changes, returns the whole record and leaves
/// the tombstone, atomically, so that every concurrent `apply` on the old key is either in
/// that snapshot or refused; then `create` files the snapshot under the new key. Between
/// the two steps the session is under neither key, which no request can see: the new id
/// is not handed out before the response. Should the second step fail, the session has
/// ended (the user signs in again); it never exists twice.
///
/// # The principal index and enumeration
///
/// A session's owner lives in the hash beside its entries, in fields `o` (principal) and
/// `d` (device), which entry fields (`k:…`) can never be. The sessions of principal `p`
/// are the members of the sorted set `<session_prefix>principal:{<base64url(p)>}`, each
/// scored with its session's expiry; the set expires with its highest score, so the index
/// never outlives its sessions. The hash names its index key in field `x`, so `end` and
/// `delete` find the index without being told the owner.
///
/// - **One node** (and Sentinel): the scripts of `create`, `apply`, `touch`, `rename`,
///   `end` and `delete` change the index in the same step as the record, atomically.
///   (The scripts reach the index key without declaring it, which a single server allows.)
/// - **Cluster**: the index key lives in another slot, which no script may reach, so the
///   index follows in a second step: the script on the session's slot writes the record
///   and answers the index keys involved, then the store adds the key to the new index and
///   takes it out of the old one. The record is always written first, so a member whose
///   record is gone is gone for good, and `sessions_of` checks every member against its
///   record (live, not expired, still owned by `p`) and prunes the dead ones; a score only
///   grows (`ZADD GT`), so the index never expires before a member. Guarantee: a session
///   is listed under its principal from the moment its `create`, `apply` or `rename`
///   returns, and never once `end` or `delete` has run (the check against the record),
///   whether or not the second step happened. A session created or renamed at the very
///   moment a sign-out-everywhere lists the index may be missed by it (on one node it
///   cannot). Cost: one more round trip for each write of an owned session.
/// - `count` and `scan` walk the session keys with `SCAN MATCH <prefix>{*` (on every
///   master of a Cluster; the cursor names the node), and read each key with a small
///   script that answers its timestamps, owner and size, never its entries; tombstones
///   and index keys are not listed. A page holds at most `limit` sessions: when a `SCAN`
///   batch is larger, the cursor keeps the last key listed and the next page asks for the
///   same batch again and goes on after it. `find` scans.
///
/// Per request, through [`SessionManager`](beaker_core::SessionManager): one round trip
/// for a request that only reads its session (`HGETALL`), two for one that changes it, none
/// for one that never uses it; a read also touches (one more) once per touch interval
/// when an idle timeout is set. The test `requests_make_the_round_trips_the_docs_promise`
/// counts them.
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
    /// The process-local tier, when on (see [`RedisStore::with_near_cache`]).
    pub(crate) near: Option<crate::tracking::Near<crate::near::CachedSession>>,
}

impl RedisStore {
    /// A store on an existing client (which a [`RedisCache`](crate::RedisCache) may share).
    pub fn new(client: RedisClient) -> Self {
        RedisStore { client, near: None }
    }

    /// Connects a new client; see [`RedisClient::connect`].
    pub async fn connect(url: &str, options: RedisOptions) -> Result<Self, ConnectError> {
        Ok(Self::new(RedisClient::connect(url, options).await?))
    }

    /// The underlying client.
    pub fn client(&self) -> &RedisClient {
        &self.client
    }

    pub(crate) fn prefix(&self) -> &str {
        &self.client.options().session_prefix
    }

    /// The build of `scripts` for this client's topology.
    pub(crate) fn script<'a>(&self, scripts: &'a Scripts) -> &'a Script {
        if self.client.is_cluster() {
            &scripts.cluster
        } else {
            &scripts.one_node
        }
    }

    /// Whether a write script wrote (its `reply`), after, in a Cluster, its second step:
    /// files `key` in the index the script reports with `expires`, then takes `from` out of
    /// the index it was in before, if that changed. On one node the script did both.
    pub(crate) async fn follow_index(
        &self,
        from: &StoreKey,
        key: &StoreKey,
        reply: Value,
        expires: u64,
    ) -> Result<bool, StoreError> {
        let Some((before, after)) = written(reply)? else { return Ok(false) };
        if self.client.is_cluster() {
            // Boxed apart: on a single node or behind Sentinel the script has moved the
            // index already, and every write would otherwise carry this future's state.
            Box::pin(self.move_in_cluster_index(from, key, &before, &after, expires)).await?;
        }
        Ok(true)
    }

    /// A Cluster's second step of a write: files `key` in the index the script reported
    /// (`after`), then takes `from` out of the index it was in (`before`) if that changed.
    async fn move_in_cluster_index(
        &self,
        from: &StoreKey,
        key: &StoreKey,
        before: &str,
        after: &str,
        expires: u64,
    ) -> Result<(), StoreError> {
        if !after.is_empty() {
            index::add(&self.client, after, key, expires).await?;
        }
        if !before.is_empty() && (before != after || from != key) {
            index::remove(&self.client, before, &[from.as_str()]).await?;
        }
        Ok(())
    }

    /// Ends (`retire_for` > 0: a tombstone) or deletes the record under `key`, and takes it
    /// out of its index.
    async fn retire(&self, what: &str, key: &StoreKey, retire_for: Duration) -> Result<(), StoreError> {
        let script = self.script(&END);
        let mut call = evalsha(script, &self.redis_key(key));
        call.arg(retire_arg(retire_for));
        let reply = self.client.eval(what, script, &call).await?;
        self.follow_index(key, key, reply, 0).await?;
        Ok(())
    }

    /// `lookup` without the near cache: `HGETALL` on the client's connections.
    async fn lookup_plain(&self, key: &StoreKey) -> Result<Lookup, StoreError> {
        let rkey = self.redis_key(key);
        let raw: Vec<(Vec<u8>, Vec<u8>)> = self
            .client
            .run("load", |mut c| {
                let rkey = &rkey;
                async move { redis::cmd("HGETALL").arg(rkey).query_async(&mut c).await }
            })
            .await?;
        classify(raw)
    }

    /// The Redis key a session is filed under.
    pub fn redis_key(&self, key: &StoreKey) -> String {
        let prefix = &self.client.options().session_prefix;
        let key = key.as_str();
        let mut out = String::with_capacity(prefix.len() + key.len() + 2);
        out.push_str(prefix);
        out.push('{');
        out.push_str(key);
        out.push('}');
        out
    }
}

pub(crate) fn millis(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// Expiry as sent to the scripts: Unix ms, `0` for none. A time at or before the epoch
/// is sent as 1 ms so that it still means "already expired" rather than "never".
pub(crate) fn expiry_arg(expires: Option<SystemTime>) -> u64 {
    expires.map_or(0, |e| millis(e).max(1))
}

fn parse_ms(raw: &[u8], name: &str) -> Result<u64, StoreError> {
    digits(raw).ok_or_else(|| StoreError::corrupt(format!("redis session field {name} is not a number")))
}

/// A non-empty run of ASCII digits as a number; `None` for anything else or on overflow.
pub(crate) fn digits(raw: &[u8]) -> Option<u64> {
    if raw.is_empty() {
        return None;
    }
    raw.iter().try_fold(0u64, |n, &b| {
        let d = b.wrapping_sub(b'0');
        if d > 9 {
            return None;
        }
        n.checked_mul(10)?.checked_add(u64::from(d))
    })
}

/// The `(created, accessed, expires)` milliseconds of a record's meta field (or of the
/// three legacy fields).
pub(crate) fn parse_meta(meta: Option<&[u8]>, legacy: [Option<&[u8]>; 3]) -> Result<[u64; 3], StoreError> {
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
            for ((slot, raw), name) in out.iter_mut().zip(legacy).zip(LEGACY_META) {
                let raw = raw.ok_or_else(|| StoreError::corrupt(format!("redis session without its {name} field")))?;
                *slot = parse_ms(raw, name)?;
            }
        }
    }
    Ok(out)
}

/// Turns `HGETALL` output into a record; `None` if the hash is empty (no key). Fields and
/// values move into the record as they are (no copies).
pub(crate) fn decode(raw: Vec<(Vec<u8>, Vec<u8>)>) -> Result<Option<Record>, StoreError> {
    if raw.is_empty() {
        return Ok(None);
    }
    let mut meta = None;
    let mut legacy: [Option<Vec<u8>>; 3] = Default::default();
    let mut entries = BTreeMap::new();
    let (mut principal, mut device) = (None, None);
    for (mut field, value) in raw {
        if field.starts_with(ENTRY.as_bytes()) {
            field.drain(..ENTRY.len());
            let key = String::from_utf8(field).map_err(|_| StoreError::corrupt("redis session field is not UTF-8"))?;
            entries.insert(key, value);
        } else if field == META.as_bytes() {
            meta = Some(value);
        } else if let Some(i) = LEGACY_META.iter().position(|m| m.as_bytes() == field.as_slice()) {
            legacy[i] = Some(value);
        } else if field == index::OWNER {
            principal = Some(owner_text(value)?);
        } else if field == index::DEVICE {
            device = Some(owner_text(value)?);
        }
    }
    let [created, accessed, expires] = parse_meta(meta.as_deref(), legacy.each_ref().map(|v| v.as_deref()))?;
    let from_ms = |ms| UNIX_EPOCH + Duration::from_millis(ms);
    Ok(Some(Record {
        entries,
        created: from_ms(created),
        accessed: from_ms(accessed),
        expires: (expires != 0).then(|| from_ms(expires)),
        owner: principal.map(|principal| Owner { principal, device }),
    }))
}

fn owner_text(raw: Vec<u8>) -> Result<String, StoreError> {
    String::from_utf8(raw).map_err(|_| StoreError::corrupt("redis session owner is not UTF-8"))
}

/// `HGETALL` output as a lookup's answer.
pub(crate) fn classify(raw: Vec<(Vec<u8>, Vec<u8>)>) -> Result<Lookup, StoreError> {
    if raw.iter().any(|(field, _)| field == TOMBSTONE) {
        return Ok(Lookup::Retired);
    }
    // Redis expires on its own clock; the record's own expiry is checked too, so that
    // a skew between the two never hands out a record the engine considers expired.
    Ok(match decode(raw)?.filter(|r| !r.is_expired(SystemTime::now())) {
        Some(record) => Lookup::Live(record),
        None => Lookup::Missing,
    })
}

/// The field that marks a tombstone (a retired key); records never have it.
const TOMBSTONE: &[u8] = b"t";

/// Appends the five owner arguments of the scripts' `set_owner`: whether to set one, the
/// principal, whether there is a device, the device, the principal's index key.
fn owner_args(call: &mut Cmd, owner: Option<&Owner>, prefix: &str) {
    match owner {
        None => call.arg("0").arg("").arg("0").arg("").arg(""),
        Some(o) => call
            .arg("1")
            .arg(o.principal.as_str())
            .arg(if o.device.is_some() { "1" } else { "0" })
            .arg(o.device.as_deref().unwrap_or_default())
            .arg(index::index_key(prefix, &o.principal)),
    };
}

/// What a script that writes a record answers: `None` when it wrote nothing, else the
/// index keys the record was filed under before and after (`""`: none).
fn written(value: Value) -> Result<Option<(String, String)>, StoreError> {
    if let Value::Int(_) = value {
        return Ok(None);
    }
    let (_, before, after): (i64, String, String) = redis::from_redis_value(value)
        .map_err(|e| StoreError::corrupt(format!("redis store: unexpected script reply: {e}")))?;
    Ok(Some((before, after)))
}

/// Appends `changes` as the scripts' `apply` reads them.
pub(crate) fn changes_args(call: &mut Cmd, changes: &Changes, prefix: &str) {
    call.arg(if changes.clear { "1" } else { "0" }).arg(millis(changes.accessed)).arg(expiry_arg(changes.expires));
    owner_args(call, changes.owner.as_ref(), prefix);
    call.arg(changes.remove.len());
    for k in &changes.remove {
        entry_arg(call, k);
    }
    for (k, v) in &changes.set {
        entry_arg(call, k);
        call.arg(v.as_slice());
    }
}

/// A retire window as the scripts take it: whole milliseconds, `0` for none (a window
/// under a millisecond still leaves a tombstone).
fn retire_arg(retire_for: Duration) -> u64 {
    if retire_for.is_zero() {
        0
    } else {
        u64::try_from(retire_for.as_millis()).unwrap_or(u64::MAX).max(1)
    }
}

/// Appends the hash field of entry `key` (`k:<key>`) as the call's next argument.
fn entry_arg(call: &mut Cmd, key: &str) {
    let mut arg = call.writer_for_next_arg();
    // Writes into the command's own buffer, which cannot fail.
    let _ = arg.write_all(ENTRY.as_bytes());
    let _ = arg.write_all(key.as_bytes());
}

#[async_trait]
impl SessionStore for RedisStore {
    async fn load(&self, key: &StoreKey) -> Result<Option<Record>, StoreError> {
        Ok(match self.lookup(key).await? {
            Lookup::Live(record) => Some(record),
            Lookup::Retired | Lookup::Missing => None,
        })
    }

    async fn lookup(&self, key: &StoreKey) -> Result<Lookup, StoreError> {
        match &self.near {
            Some(near) => crate::near::lookup(self, near, key).await,
            // Boxed apart: a command's future is kilobytes, and a near-cache hit, which
            // sends none, would otherwise allocate and move it all the same.
            None => Box::pin(self.lookup_plain(key)).await,
        }
    }

    async fn create(&self, key: &StoreKey, record: &Record) -> Result<bool, StoreError> {
        if let Some(near) = &self.near {
            return crate::near::around(self, near, &[key], |plain| async move { plain.create(key, record).await })
                .await;
        }
        let script = self.script(&CREATE);
        let mut call = evalsha(script, &self.redis_key(key));
        let expires = expiry_arg(record.expires);
        call.arg(meta_arg(record.created, record.accessed, expires)).arg(expires);
        owner_args(&mut call, record.owner.as_ref(), self.prefix());
        for (k, v) in &record.entries {
            entry_arg(&mut call, k);
            call.arg(v.as_slice());
        }
        let reply = self.client.eval("create", script, &call).await?;
        self.follow_index(key, key, reply, expires).await
    }

    async fn apply(&self, key: &StoreKey, changes: &Changes) -> Result<bool, StoreError> {
        if let Some(near) = &self.near {
            return crate::near::apply(self, near, key, changes).await;
        }
        let script = self.script(&APPLY);
        let mut call = evalsha(script, &self.redis_key(key));
        changes_args(&mut call, changes, self.prefix());
        let reply = self.client.eval("apply", script, &call).await?;
        self.follow_index(key, key, reply, expiry_arg(changes.expires)).await
    }

    async fn touch(
        &self,
        key: &StoreKey,
        accessed: SystemTime,
        expires: Option<SystemTime>,
    ) -> Result<bool, StoreError> {
        if let Some(near) = &self.near {
            return crate::near::around(self, near, &[key], |plain| async move {
                plain.touch(key, accessed, expires).await
            })
            .await;
        }
        let script = self.script(&TOUCH);
        let mut call = evalsha(script, &self.redis_key(key));
        call.arg(millis(accessed)).arg(expiry_arg(expires));
        let reply = self.client.eval("touch", script, &call).await?;
        self.follow_index(key, key, reply, expiry_arg(expires)).await
    }

    async fn delete(&self, key: &StoreKey) -> Result<(), StoreError> {
        if let Some(near) = &self.near {
            return crate::near::around(self, near, &[key], |plain| async move { plain.delete(key).await }).await;
        }
        self.retire("delete", key, Duration::ZERO).await
    }

    async fn end(&self, key: &StoreKey, retire_for: Duration) -> Result<(), StoreError> {
        if let Some(near) = &self.near {
            return crate::near::around(self, near, &[key], |plain| async move { plain.end(key, retire_for).await })
                .await;
        }
        self.retire("end", key, retire_for).await
    }

    async fn rename(
        &self,
        from: &StoreKey,
        to: &StoreKey,
        changes: &Changes,
        retire_for: Duration,
    ) -> Result<bool, StoreError> {
        if let Some(near) = &self.near {
            return crate::near::around(self, near, &[from, to], |plain| async move {
                plain.rename(from, to, changes, retire_for).await
            })
            .await;
        }
        let taken = || StoreError::Backend {
            message: "redis store: rename: a record already exists under the new key".into(),
            source: None,
        };
        if !self.client.is_cluster() {
            let mut call = Cmd::with_capacity(16, 256);
            call.arg("EVALSHA").arg(MOVE.get_hash()).arg(2).arg(self.redis_key(from)).arg(self.redis_key(to));
            call.arg(retire_arg(retire_for));
            changes_args(&mut call, changes, self.prefix());
            return match self.client.eval::<i64>("rename", &MOVE, &call).await? {
                1 => Ok(true),
                0 => Ok(false),
                _ => Err(taken()),
            };
        }
        // Cluster: the two keys hash to different slots, which no script may span. The
        // first step is atomic on the old key's slot (changes, snapshot, tombstone), so
        // every `apply` on the old key is in the snapshot or refused; the second files the
        // snapshot under the new key, which no one can know before this request answers,
        // and then in the index, before the old key leaves it.
        let mut call = evalsha(&TAKE, &self.redis_key(from));
        call.arg(retire_arg(retire_for));
        changes_args(&mut call, changes, self.prefix());
        let (filed_under, snapshot) = match self.client.eval::<Value>("rename", &TAKE, &call).await? {
            Value::Int(0) => return Ok(false),
            value => redis::from_redis_value::<(String, Vec<(Vec<u8>, Vec<u8>)>)>(value)
                .map_err(|e| StoreError::corrupt(format!("redis store: rename: unexpected reply: {e}")))?,
        };
        let record = decode(snapshot)?.ok_or_else(|| StoreError::corrupt("redis store: rename: an empty record"))?;
        if !self.create(to, &record).await? {
            return Err(taken());
        }
        if !filed_under.is_empty() {
            index::remove(&self.client, &filed_under, &[from.as_str()]).await?;
        }
        Ok(true)
    }

    async fn sessions_of(&self, principal: &str) -> Result<Vec<Listed>, StoreError> {
        index::sessions_of(self, principal).await
    }

    async fn count(&self) -> Result<u64, StoreError> {
        crate::scan::count(self).await
    }

    async fn scan(&self, cursor: Option<&str>, limit: usize) -> Result<Page, StoreError> {
        crate::scan::page(self, cursor, limit).await
    }

    fn name(&self) -> &'static str {
        "redis"
    }
}

/// The meta field's value: `"<created> <accessed> <expires>"`.
fn meta_arg(created: SystemTime, accessed: SystemTime, expires: u64) -> String {
    format!("{} {} {expires}", millis(created), millis(accessed))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(fields: &[(&[u8], &[u8])]) -> Result<Option<Record>, StoreError> {
        decode(fields.iter().map(|(f, v)| (f.to_vec(), v.to_vec())).collect())
    }

    #[test]
    fn decode_splits_entries_from_meta_and_rejects_garbage() {
        let r =
            load(&[(b"m", b"1000 2000 0"), ("k:ключ".as_bytes(), &[0, 255]), (b"k:k:nested", b"v")]).unwrap().unwrap();
        assert_eq!(r.entries.get("ключ"), Some(&vec![0, 255]));
        assert_eq!(r.entries.get("k:nested"), Some(&b"v".to_vec()));
        assert_eq!(r.expires, None);
        assert_eq!(r.created, UNIX_EPOCH + Duration::from_secs(1));
        assert_eq!(r.accessed, UNIX_EPOCH + Duration::from_secs(2));
        let r = load(&[(b"m", b"1 2 3000")]).unwrap().unwrap();
        assert_eq!(r.expires, Some(UNIX_EPOCH + Duration::from_secs(3)));
        assert!(decode(Vec::new()).unwrap().is_none());
        assert!(matches!(load(&[(b"k:a", b"v")]), Err(StoreError::Corrupt { .. })));
        for bad in ["soon 1 0", "1 2", "1 2 3 4", "", "1  2 3", "-1 2 3", "+1 2 3"] {
            assert!(matches!(load(&[(b"m", bad.as_bytes())]), Err(StoreError::Corrupt { .. })), "{bad:?} was accepted");
        }
        assert!(matches!(load(&[(b"m", b"1 2 0"), (b"k:\xff", b"v")]), Err(StoreError::Corrupt { .. })));
    }

    #[test]
    fn records_of_the_legacy_layout_still_load() {
        let r = load(&[(b"m:c", b"1000"), (b"m:a", b"2000"), (b"m:e", b"0"), (b"k:n", b"1")]).unwrap().unwrap();
        assert_eq!(
            (r.created, r.accessed, r.expires),
            (UNIX_EPOCH + Duration::from_secs(1), UNIX_EPOCH + Duration::from_secs(2), None)
        );
        assert!(matches!(load(&[(b"m:c", b"1"), (b"m:a", b"1")]), Err(StoreError::Corrupt { .. })));
    }

    #[test]
    fn digits_accepts_only_plain_decimal_numbers_that_fit() {
        assert_eq!(digits(b"0"), Some(0));
        assert_eq!(digits(b"1732650000123"), Some(1_732_650_000_123));
        assert_eq!(digits(b"18446744073709551615"), Some(u64::MAX));
        for bad in [&b""[..], b"18446744073709551616", b"+1", b"-1", b" 1", b"1 ", b"1.5", b"0x10", b"\xd9\xa1"] {
            assert_eq!(digits(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn expiry_argument_never_means_forever_by_accident() {
        assert_eq!(expiry_arg(None), 0);
        assert_eq!(expiry_arg(Some(UNIX_EPOCH)), 1);
        assert_eq!(expiry_arg(Some(UNIX_EPOCH + Duration::from_millis(5))), 5);
    }
}
