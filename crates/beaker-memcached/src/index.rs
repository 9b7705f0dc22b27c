//! The principal index of [`MemcachedStore`](crate::MemcachedStore): memcached cannot
//! enumerate keys, so each principal's sessions are listed in an item of their own,
//! changed by the same gets/cas loop as the records.
//!
//! The item `<session_prefix>principal:<principal>` (hashed like any long or non-ASCII
//! key) holds `BKX1` and then, per session, the store key (one length byte, the key) and
//! its expiry (Unix ms, big-endian; `u64::MAX` for none). The item's own expiry is the
//! latest of its members', so the index never outlives its sessions; members already
//! expired are dropped whenever the item is written.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use beaker_core::store::StoreKey;
use beaker_core::StoreError;
use memcache::exp::{Delete, Get, Meta, MutationStatus, Set};

use crate::client::{make_key, ttl_until, MemcachedClient};

const MAGIC: &[u8] = b"BKX1";
/// A member's expiry when its session has none.
const NEVER: u64 = u64::MAX;

/// The sessions of one principal: store key → expiry (Unix ms, [`NEVER`] for none).
pub(crate) type Members = BTreeMap<String, u64>;

/// The memcached key of `principal`'s index. Store keys never hold `:`, so this never
/// names a session.
pub(crate) fn index_key(session_prefix: &str, principal: &str) -> String {
    make_key(session_prefix, &["principal:", principal])
}

/// A member's expiry as the index keeps it.
pub(crate) fn expiry_ms(expires: Option<SystemTime>) -> u64 {
    expires.map_or(NEVER, |e| e.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64).min(NEVER - 1))
}

fn encode(members: &Members) -> Vec<u8> {
    let mut out = Vec::with_capacity(MAGIC.len() + members.len() * 52);
    out.extend_from_slice(MAGIC);
    for (key, expires) in members {
        // Store keys are at most 64 ASCII characters (StoreKey's own limit).
        out.push(key.len() as u8);
        out.extend_from_slice(key.as_bytes());
        out.extend_from_slice(&expires.to_be_bytes());
    }
    out
}

fn decode(bytes: &[u8]) -> Result<Members, StoreError> {
    let bad = || StoreError::corrupt("memcached: not a principal index item");
    let mut rest = bytes.strip_prefix(MAGIC).ok_or_else(bad)?;
    let mut members = Members::new();
    while let Some((&len, tail)) = rest.split_first() {
        let len = usize::from(len);
        if tail.len() < len + 8 {
            return Err(bad());
        }
        let key = std::str::from_utf8(&tail[..len]).ok().and_then(StoreKey::from_stored).ok_or_else(bad)?;
        let expires = u64::from_be_bytes(tail[len..len + 8].try_into().map_err(|_| bad())?);
        members.insert(key.as_str().to_owned(), expires);
        rest = &tail[len + 8..];
    }
    Ok(members)
}

/// The members of the index item `ikey` (none if there is no item). An item that does not
/// decode reads as empty: it is rebuilt by the next write, and its sessions still expire.
pub(crate) async fn read(client: &MemcachedClient, ikey: &str) -> Result<Members, StoreError> {
    let get = Get::new(ikey);
    let got = client.run("sessions_of", |mc| async move { mc.run(get).await }).await?;
    Ok(got.value.map(|v| decode(&v).unwrap_or_else(|e| corrupt(ikey, e))).unwrap_or_default())
}

fn corrupt(ikey: &str, e: StoreError) -> Members {
    tracing::warn!(key = ikey, error = %e, "memcached: a principal index item does not decode; it is rebuilt");
    Members::new()
}

/// Changes the index item `ikey` with `edit` in a gets/cas loop (add when there is none),
/// dropping members already expired; the item's expiry becomes its latest member's, and
/// an index left empty is deleted.
pub(crate) async fn update(
    client: &MemcachedClient,
    ikey: &str,
    edit: impl Fn(&mut Members),
) -> Result<(), StoreError> {
    for attempt in 0..=client.options.max_cas_retries {
        let get = Get::new(ikey).meta(Meta::NONE.cas());
        let got = client.run("index", |mc| async move { mc.run(get).await }).await?;
        let mut members = match &got.value {
            Some(v) => decode(v).unwrap_or_else(|e| corrupt(ikey, e)),
            None => Members::new(),
        };
        edit(&mut members);
        let now = SystemTime::now();
        let now_ms = expiry_ms(Some(now));
        members.retain(|_, e| *e > now_ms);
        let cas = got.item.cas.filter(|_| got.value.is_some());
        let status = match (members.values().max(), cas) {
            (None, None) => return Ok(()),
            (None, Some(cas)) => {
                let delete = Delete::new(ikey).compare_cas(cas);
                client.run("index", |mc| async move { mc.run(delete).await }).await?.status
            }
            (Some(&latest), cas) => {
                let bytes = encode(&members);
                client.check_size("index", bytes.len())?;
                let expires = (latest != NEVER).then(|| UNIX_EPOCH + Duration::from_millis(latest));
                let set = Set::new(ikey, &bytes).ttl(ttl_until(expires, now));
                let set = match cas {
                    Some(cas) => set.compare_cas(cas),
                    None => set.add(),
                };
                client.run("index", |mc| async move { mc.run(set).await }).await?.status
            }
        };
        match status {
            MutationStatus::Applied => return Ok(()),
            // Gone meanwhile (a delete, an expiry) or added by another writer: read again.
            _ => tracing::debug!("memcached: index: lost a CAS race, retrying"),
        }
        tokio::time::sleep(crate::session::cas_backoff(attempt)).await;
    }
    Err(StoreError::Unavailable {
        message: format!(
            "memcached: index: the principal's index kept changing under us ({} CAS retries exhausted)",
            client.options.max_cas_retries
        ),
        source: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_round_trip_and_garbage_is_corrupt() {
        let members: Members = [("abc".to_string(), 1_700_000_000_000), ("Zz-_9".to_string(), NEVER)].into();
        assert_eq!(decode(&encode(&members)).unwrap(), members);
        assert_eq!(decode(MAGIC).unwrap(), Members::new());
        let bytes = encode(&members);
        for n in 0..bytes.len() {
            // Whole members end at 4 and 18 bytes.
            if ![MAGIC.len(), MAGIC.len() + 14].contains(&n) {
                assert!(decode(&bytes[..n]).is_err(), "a prefix of {n} bytes decoded");
            }
        }
        assert!(decode(b"BKX1\x03a b\0\0\0\0\0\0\0\0").is_err(), "a key that is no store key");
    }

    #[test]
    fn index_keys_never_name_a_session_and_hash_what_memcached_refuses() {
        assert_eq!(index_key("s:", "ann"), "s:principal:ann");
        let odd = index_key("s:", "Зоя with spaces");
        assert!(odd.starts_with("s:#") && odd.is_ascii() && !odd.contains(' '), "{odd}");
        assert_eq!(expiry_ms(None), NEVER);
        assert_eq!(expiry_ms(Some(UNIX_EPOCH + Duration::from_millis(5))), 5);
    }
}
