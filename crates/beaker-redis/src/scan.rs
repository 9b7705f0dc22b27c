//! `count` and `scan` of [`RedisStore`]: `SCAN` over the session keys, on every master of a
//! Cluster, never `KEYS`.

use beaker_core::store::{Page, StoreKey};
use beaker_core::StoreError;

use crate::client::glob_escape;
use crate::{index, RedisStore};

/// Where a scan stands, as its opaque cursor says: the node (`host:port`, or `-` on one
/// server), that node's `SCAN` cursor and `COUNT`, and the last store key listed from the
/// batch they return (empty: none yet). A page that fills up in the middle of a batch
/// resumes by asking for the same batch again (same cursor, same `COUNT`, so the same
/// buckets) and skipping the keys up to that one, in sorted order, so a key that lives
/// throughout the scan is listed once even if the batch gained keys meanwhile.
#[derive(Debug, PartialEq, Eq)]
struct Position {
    node: usize,
    cursor: u64,
    count: u32,
    after: String,
}

const CURSOR_VERSION: &str = "r2";

fn encode(nodes: &[Option<(String, u16)>], at: &Position) -> String {
    let node = match &nodes[at.node] {
        Some((host, port)) => format!("{host}:{port}"),
        None => "-".to_owned(),
    };
    format!("{CURSOR_VERSION}/{node}/{}/{}/{}", at.cursor, at.count, at.after)
}

fn decode(nodes: &[Option<(String, u16)>], cursor: &str) -> Result<Position, StoreError> {
    let bad = |why: &str| StoreError::Rejected {
        message: format!("redis store: {why}: not a scan cursor of this store: {cursor:?}"),
        source: None,
    };
    let mut parts = cursor.split('/');
    let (Some(CURSOR_VERSION), Some(node), Some(pos), Some(count), Some(after), None) =
        (parts.next(), parts.next(), parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad("malformed"));
    };
    let cursor = crate::session::digits(pos.as_bytes()).ok_or_else(|| bad("bad SCAN cursor"))?;
    let count = crate::session::digits(count.as_bytes())
        .and_then(|c| u32::try_from(c).ok())
        .filter(|c| *c > 0)
        .ok_or_else(|| bad("bad SCAN count"))?;
    if !after.is_empty() && StoreKey::from_stored(after).is_none() {
        return Err(bad("bad key"));
    }
    let node = nodes
        .iter()
        .position(|n| match n {
            Some((host, port)) => format!("{host}:{port}") == node,
            None => node == "-",
        })
        .ok_or_else(|| StoreError::Unavailable {
            message: format!(
                "redis store: the node {node} of this scan is no longer a master (the cluster changed): start the \
                 scan again"
            ),
            source: None,
        })?;
    Ok(Position { node, cursor, count, after: after.to_owned() })
}

/// The `SCAN MATCH` pattern of every session key (`<prefix>{<store key>}`); index keys
/// (`<prefix>principal:{…}`) do not match it.
fn pattern(store: &RedisStore) -> String {
    format!("{}{{*", glob_escape(&store.client().options().session_prefix))
}

/// The store key of a Redis key the pattern matched, if it is a session key at all.
fn store_key(prefix: &str, rkey: &[u8]) -> Option<StoreKey> {
    let inner = rkey.strip_prefix(prefix.as_bytes())?.strip_prefix(b"{")?.strip_suffix(b"}")?;
    StoreKey::from_stored(std::str::from_utf8(inner).ok()?)
}

/// How many live sessions (tombstones left out) the store holds, over every node.
pub(crate) async fn count(store: &RedisStore) -> Result<u64, StoreError> {
    let client = store.client();
    let (pattern, prefix) = (pattern(store), &client.options().session_prefix);
    let mut live = 0;
    for node in client.scan_nodes().await? {
        let mut cursor = 0;
        loop {
            let (next, keys) = client.scan_step(node.as_ref(), cursor, &pattern, client.options().scan_count).await?;
            let rkeys: Vec<String> =
                keys.iter().filter_map(|k| store_key(prefix, k)).map(|k| store.redis_key(&k)).collect();
            live += index::count_live(client, &rkeys).await?;
            if next == 0 {
                break;
            }
            cursor = next;
        }
    }
    Ok(live)
}

/// One page of at most `limit` live sessions (see `SessionStore::scan`).
pub(crate) async fn page(store: &RedisStore, cursor: Option<&str>, limit: usize) -> Result<Page, StoreError> {
    let client = store.client();
    let limit = limit.max(1);
    let nodes = client.scan_nodes().await?;
    // The batch a SCAN returns is about `COUNT` keys: no larger than the page needs.
    let count = client.options().scan_count.min(u32::try_from(limit).unwrap_or(u32::MAX)).max(10);
    let mut at = match cursor {
        None => Position { node: 0, cursor: 0, count, after: String::new() },
        Some(c) => decode(&nodes, c)?,
    };
    let (pattern, prefix) = (pattern(store), &client.options().session_prefix);
    let mut items = Vec::new();
    loop {
        let (next, keys) = client.scan_step(nodes[at.node].as_ref(), at.cursor, &pattern, at.count).await?;
        let mut keys: Vec<StoreKey> = keys.iter().filter_map(|k| store_key(prefix, k)).collect();
        keys.sort_unstable_by(|a, b| a.as_str().cmp(b.as_str()));
        keys.retain(|k| k.as_str() > at.after.as_str());
        let mut rest = keys.as_slice();
        while !rest.is_empty() && items.len() < limit {
            let (now, later) = rest.split_at((limit - items.len()).min(rest.len()));
            items.extend(index::inspect(client, now, |k| store.redis_key(k)).await?.into_iter().flatten());
            rest = later;
            if items.len() == limit && !rest.is_empty() {
                let after = now.last().map(|k| k.as_str().to_owned()).unwrap_or_default();
                return Ok(Page { next: Some(encode(&nodes, &Position { after, ..at })), items });
            }
        }
        at = if next != 0 {
            Position { node: at.node, cursor: next, count, after: String::new() }
        } else if at.node + 1 < nodes.len() {
            Position { node: at.node + 1, cursor: 0, count, after: String::new() }
        } else {
            return Ok(Page { items, next: None });
        };
        if items.len() == limit {
            return Ok(Page { next: Some(encode(&nodes, &at)), items });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_garbage_is_refused() {
        let nodes = vec![Some(("127.0.0.1".to_owned(), 7000)), Some(("127.0.0.1".to_owned(), 7001))];
        let at = Position { node: 1, cursor: 1234, count: 97, after: "abc-_9".into() };
        let c = encode(&nodes, &at);
        assert_eq!(decode(&nodes, &c).unwrap(), at);
        for bad in [
            "",
            "r2",
            "r2/127.0.0.1:7000/12/10",
            "r2/127.0.0.1:7000/x/10/",
            "r1/127.0.0.1:7000/1/10/",
            "r2/-/1/10/a b",
            "r2/127.0.0.1:7000/1/0/",
            "r2/127.0.0.1:7000/1/10//",
        ] {
            assert!(matches!(decode(&nodes, bad), Err(StoreError::Rejected { .. })), "{bad:?}");
        }
        assert!(matches!(decode(&nodes, "r2/127.0.0.1:7002/1/10/"), Err(StoreError::Unavailable { .. })));
        let one = vec![None];
        let at = Position { node: 0, cursor: 0, count: 10, after: String::new() };
        assert_eq!(decode(&one, &encode(&one, &at)).unwrap(), at);
    }

    #[test]
    fn only_session_keys_have_a_store_key() {
        assert_eq!(store_key("p:", b"p:{abc}").map(|k| k.as_str().to_owned()), Some("abc".into()));
        for other in [&b"p:principal:{YQ}"[..], b"p:{a b}", b"p:{abc", b"q:{abc}", b"p:{}"] {
            assert!(store_key("p:", other).is_none(), "{}", String::from_utf8_lossy(other));
        }
    }
}
