//! The principal index of [`RedisStore`](crate::RedisStore): one sorted set per principal,
//! and the listing of one session's summary that `sessions_of` and `scan` share.
//!
//! Layout: the index of principal `p` is the sorted set
//! `<session_prefix>principal:{<base64url(p)>}`; its members are the store keys of `p`'s
//! sessions, each scored with the session's expiry (Unix ms, `+inf` for none), and the
//! set's own expiry is its highest score, so the index never outlives its sessions. The
//! session hash names the index key it is filed under in field `x` (beside the principal
//! in `o` and the device in `d`), so that ending or deleting a session finds its index
//! without being told the owner.

use std::sync::LazyLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use beaker_core::store::{Listed, Owner, StoreKey};
use beaker_core::StoreError;
use futures_util::future::try_join_all;
use redis::Script;

use crate::client::{evalsha, RedisClient};
use crate::RedisStore;

/// Field of the session hash holding the owner's principal.
pub(crate) const OWNER: &[u8] = b"o";
/// Field of the session hash holding the owner's device description.
pub(crate) const DEVICE: &[u8] = b"d";

/// How many session keys one listing step inspects at once (bounded concurrency).
const INSPECT_BATCH: usize = 256;

/// The Lua functions every session script starts with. `index_add` / `index_rem` keep the
/// index in the same script on one node (`same_step`); in a Cluster the index key lives in
/// another slot, no script may reach it, and the scripts only report the index keys for
/// the client's second step ([`add`], [`remove`]).
pub(crate) fn lua_prelude(same_step: bool) -> String {
    format!(
        r"
local INDEX = {same_step}
local function member(K) return string.sub(K, (string.find(K, '{{', 1, true) or 0) + 1, -2) end
{REINDEX_FN}
local function index_add(X, K, e)
  if not INDEX then return end
  redis.call('ZADD', X, (e == '0') and '+inf' or e, member(K))
  reindex(X)
end
local function index_rem(X, K)
  if not INDEX then return end
  redis.call('ZREM', X, member(K))
  reindex(X)
end
local function set_owner(K, a)
  if ARGV[a + 1] ~= '1' then return end
  redis.call('HSET', K, 'o', ARGV[a + 2], 'x', ARGV[a + 5])
  if ARGV[a + 3] == '1' then redis.call('HSET', K, 'd', ARGV[a + 4]) else redis.call('HDEL', K, 'd') end
end
local function reindex_record(K, F, old, e)
  local x = redis.call('HGET', K, 'x') or ''
  if old ~= '' and (old ~= x or F ~= K) then index_rem(old, F) end
  if x ~= '' then index_add(x, K, e) end
  return x
end
"
    )
}

/// `reindex(X)`: the index's expiry becomes its highest score (its longest-lived member's
/// expiry; none when a member has none). An empty sorted set is gone already.
const REINDEX_FN: &str = r"
local function reindex(X)
  local top = redis.call('ZRANGE', X, -1, -1, 'WITHSCORES')
  if top[2] == nil then return end
  if top[2] == 'inf' then redis.call('PERSIST', X)
  else redis.call('PEXPIREAT', X, string.format('%.0f', tonumber(top[2]))) end
end
";

/// Cluster, second step: KEYS[1] index; ARGV member, expiry (ms, `0` = none). A score only
/// grows (`GT`): of two racing steps, the later expiry wins, so the index never expires
/// before a member does. A member a racing `end` removed may come back; listing prunes it.
static ADD: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        "{REINDEX_FN}
redis.call('ZADD', KEYS[1], 'GT', (ARGV[2] == '0') and '+inf' or ARGV[2], ARGV[1])
reindex(KEYS[1])
return 1
"
    ))
});

/// KEYS[1] index; ARGV the members to take out.
static REMOVE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        "{REINDEX_FN}
redis.call('ZREM', KEYS[1], unpack(ARGV))
reindex(KEYS[1])
return 1
"
    ))
});

/// KEYS[1] a session key: `false` unless it holds a live record (a hash with a meta field;
/// not a tombstone), else `{meta "c a e", has owner, principal, has device, device, size
/// of the entries}`. Computed on the server so that a listing never moves entries.
static INSPECT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local K = KEYS[1]
if redis.call('TYPE', K).ok ~= 'hash' then return false end
local all = redis.call('HGETALL', K)
local f, size = {}, 0
for i = 1, #all, 2 do
  local name = all[i]
  if string.sub(name, 1, 2) == 'k:' then size = size + #name - 2 + #all[i + 1] else f[name] = all[i + 1] end
end
if f['t'] then return false end
local m = f['m']
if not m then
  if not (f['m:c'] and f['m:a'] and f['m:e']) then return false end
  m = f['m:c'] .. ' ' .. f['m:a'] .. ' ' .. f['m:e']
end
return {m, f['o'] and '1' or '0', f['o'] or '', f['d'] and '1' or '0', f['d'] or '', string.format('%d', size)}
",
    )
});

/// KEYS[1] a session key: `1` if it holds a live record (not a tombstone), else `0`.
static LIVE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('TYPE', KEYS[1]).ok ~= 'hash' or redis.call('HEXISTS', KEYS[1], 't') == 1 then return 0 end
return 1
",
    )
});

/// The index key of `principal`: the principal in URL-safe base64 as the hash tag, so that
/// any text is a valid key and no brace in it can change the key's slot.
pub(crate) fn index_key(session_prefix: &str, principal: &str) -> String {
    let mut out = String::with_capacity(session_prefix.len() + 12 + principal.len() * 4 / 3 + 4);
    out.push_str(session_prefix);
    out.push_str("principal:{");
    URL_SAFE_NO_PAD.encode_string(principal, &mut out);
    out.push('}');
    out
}

/// Cluster, second step: files `key` under the index `index` with `expires` (ms, 0 = none).
pub(crate) async fn add(client: &RedisClient, index: &str, key: &StoreKey, expires: u64) -> Result<(), StoreError> {
    let mut call = evalsha(&ADD, index);
    call.arg(key.as_str()).arg(expires);
    let _: i64 = client.eval("index", &ADD, &call).await?;
    Ok(())
}

/// Takes `members` out of the index `index`, in calls of at most a thousand.
pub(crate) async fn remove(client: &RedisClient, index: &str, members: &[&str]) -> Result<(), StoreError> {
    for chunk in members.chunks(1000) {
        let mut call = evalsha(&REMOVE, index);
        call.arg(chunk);
        let _: i64 = client.eval("index", &REMOVE, &call).await?;
    }
    Ok(())
}

/// The listing of each of `keys` (their Redis keys from `redis_key`): `None` for a key
/// that holds no live record (missing, a tombstone, expired by the record's own clock, or
/// not a session at all), in the order given. At most [`INSPECT_BATCH`] calls in flight.
pub(crate) async fn inspect(
    client: &RedisClient,
    keys: &[StoreKey],
    redis_key: impl Fn(&StoreKey) -> String,
) -> Result<Vec<Option<Listed>>, StoreError> {
    let now = SystemTime::now();
    let mut out = Vec::with_capacity(keys.len());
    for batch in keys.chunks(INSPECT_BATCH) {
        let each = batch.iter().map(|key| {
            let call = evalsha(&INSPECT, &redis_key(key));
            async move {
                let raw: Option<Vec<Vec<u8>>> = client.eval("inspect", &INSPECT, &call).await?;
                match raw {
                    None => Ok(None),
                    Some(fields) => listed(key, fields).map(|l| l.filter(|l| l.expires.is_none_or(|e| e > now))),
                }
            }
        });
        out.extend(try_join_all(each).await?);
    }
    Ok(out)
}

/// How many of `rkeys` (Redis keys) hold a live record.
pub(crate) async fn count_live(client: &RedisClient, rkeys: &[String]) -> Result<u64, StoreError> {
    let mut live = 0;
    for batch in rkeys.chunks(INSPECT_BATCH) {
        let each = batch.iter().map(|rkey| {
            let call = evalsha(&LIVE, rkey);
            async move { client.eval::<i64>("count", &LIVE, &call).await }
        });
        live += try_join_all(each).await?.into_iter().filter(|n| *n == 1).count() as u64;
    }
    Ok(live)
}

/// The live sessions of `principal`: every member of its index, checked against its
/// record (live, not expired, still owned by `principal`); members whose record is gone
/// are taken out of the index on the way.
pub(crate) async fn sessions_of(store: &RedisStore, principal: &str) -> Result<Vec<Listed>, StoreError> {
    let client = store.client();
    let index = index_key(&client.options().session_prefix, principal);
    let members: Vec<String> = client
        .run("sessions_of", |mut c| {
            let index = &index;
            async move { redis::cmd("ZRANGE").arg(index).arg(0).arg(-1).query_async(&mut c).await }
        })
        .await?;
    let mut dead: Vec<&str> = Vec::new();
    let mut keys = Vec::with_capacity(members.len());
    for m in &members {
        match StoreKey::from_stored(m) {
            Some(key) => keys.push(key),
            None => dead.push(m),
        }
    }
    let found = inspect(client, &keys, |k| store.redis_key(k)).await?;
    let mut out = Vec::with_capacity(found.len());
    for (key, listed) in keys.iter().zip(found) {
        match listed {
            Some(l) if l.owner.as_ref().is_some_and(|o| o.principal == principal) => out.push(l),
            // Filed under another principal since (a Cluster's second step still to come,
            // or one that failed): that principal's index lists it; this member goes when
            // the record does.
            Some(_) => {}
            // A record gone never comes back (ids are never reused), so this cannot race
            // a write that files the key again.
            None => dead.push(key.as_str()),
        }
    }
    if !dead.is_empty() {
        remove(client, &index, &dead).await?;
    }
    Ok(out)
}

fn listed(key: &StoreKey, fields: Vec<Vec<u8>>) -> Result<Option<Listed>, StoreError> {
    let bad = || StoreError::corrupt("redis store: unexpected reply when inspecting a session");
    let [meta, has_owner, principal, has_device, device, size]: [Vec<u8>; 6] = fields.try_into().map_err(|_| bad())?;
    let [created, accessed, expires] = crate::session::parse_meta(Some(&meta), [None; 3])?;
    let text =
        |raw: Vec<u8>| String::from_utf8(raw).map_err(|_| StoreError::corrupt("redis session owner is not UTF-8"));
    let owner = match has_owner.as_slice() {
        b"1" => Some(Owner {
            principal: text(principal)?,
            device: if has_device == b"1" { Some(text(device)?) } else { None },
        }),
        _ => None,
    };
    let from_ms = |ms| UNIX_EPOCH + Duration::from_millis(ms);
    Ok(Some(Listed {
        key: key.clone(),
        created: from_ms(created),
        accessed: from_ms(accessed),
        expires: (expires != 0).then(|| from_ms(expires)),
        owner,
        size: crate::session::digits(&size).ok_or_else(bad)?,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_keys_keep_any_principal_inside_one_hash_tag() {
        assert_eq!(index_key("p:", "alice"), "p:principal:{YWxpY2U}");
        for principal in ["a}b{c", "", "ключ 🔑", "{x}"] {
            let key = index_key("p:", principal);
            let tag = &key["p:principal:{".len()..key.len() - 1];
            assert!(!tag.contains(['{', '}']), "{key}");
            assert_eq!(URL_SAFE_NO_PAD.decode(tag).unwrap(), principal.as_bytes());
        }
        assert_ne!(index_key("p:", "a"), index_key("p:", "b"));
    }

    #[test]
    fn listings_are_parsed_strictly() {
        let key = StoreKey::from_stored("abc").unwrap();
        let fields = |v: &[&str]| v.iter().map(|s| s.as_bytes().to_vec()).collect::<Vec<_>>();
        let l = listed(&key, fields(&["1000 2000 0", "1", "ann", "1", "Firefox", "42"])).unwrap().unwrap();
        assert_eq!(l.owner, Some(Owner { principal: "ann".into(), device: Some("Firefox".into()) }));
        assert_eq!((l.size, l.expires), (42, None));
        let l = listed(&key, fields(&["1000 2000 3000", "0", "", "0", "", "0"])).unwrap().unwrap();
        assert_eq!((l.owner, l.expires), (None, Some(UNIX_EPOCH + Duration::from_secs(3))));
        for bad in [
            vec!["1000 2000 0", "1", "ann", "1", "Firefox"],
            vec!["1 2", "0", "", "0", "", "0"],
            vec!["1 2 3", "0", "", "0", "", "-1"],
        ] {
            assert!(listed(&key, fields(&bad)).is_err(), "{bad:?}");
        }
    }
}
