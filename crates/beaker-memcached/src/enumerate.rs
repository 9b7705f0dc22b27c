//! `count`, `scan` and `find` of [`MemcachedStore`](crate::MemcachedStore). Memcached has
//! no way to list keys except `lru_crawler metadump`, which streams the name of every
//! item of one server, in no stable order and with no way to resume. The dump walks the
//! hash table (`metadump hash`, recent memcached 1.6 releases), where an item stays put while
//! it is read; older servers only walk the LRU queues (`metadump all`), and an item the
//! server moves between its queues while the dump runs (any item that was just read) can
//! be left out of that dump. So every call reads whole dumps, keeping only what it needs:
//!
//! - `count`: one dump per server, checking the session keys in batches (a tombstone is
//!   an item too, but not a session).
//! - `scan`: a page is the `limit` smallest store keys after the cursor's, on one server
//!   (cursor: the server and that key), kept in a bounded set while the dump streams by,
//!   then read. Memory is bounded by `limit`, but each page reads the server's whole dump:
//!   a full scan costs one dump per page, so large pages are cheaper.
//! - `find`: one dump per server, hashing each session key into its handle.
//!
//! The memcached client crate has no way to send this command, so it goes over a
//! connection of its own per dump, with the store's timeout between two lines.

use std::collections::BTreeSet;
use std::time::Duration;

use beaker_core::store::{Listed, Page, SessionHandle, StoreKey};
use beaker_core::StoreError;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use crate::MemcachedStore;

/// How many session keys are read at once.
const BATCH: usize = 256;
/// How many times a dump is asked for again while the server's crawler is busy with
/// another one.
const BUSY_RETRIES: u32 = 50;
const CURSOR_VERSION: &str = "m1";

/// What a dump walks: the hash table first, the LRU queues on servers that cannot.
const WALKS: [&str; 2] = ["hash", "all"];

/// One `lru_crawler metadump` on one server, read line by line.
struct Dump {
    lines: tokio::io::Lines<BufReader<TcpStream>>,
    /// The first line, read to see whether the server accepted the command.
    pending: Option<String>,
    server: String,
    timeout: Duration,
}

fn unavailable(server: &str, why: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable { message: format!("memcached: metadump of {server}: {why}"), source: None }
}

impl Dump {
    async fn start(server: &str, timeout: Duration) -> Result<Dump, StoreError> {
        let mut walks = WALKS.iter().peekable();
        let mut attempt = 0;
        while let Some(walk) = walks.peek() {
            let stream = tokio::time::timeout(timeout, TcpStream::connect(server))
                .await
                .map_err(|_| unavailable(server, "connect timed out"))?
                .map_err(|e| unavailable(server, e))?;
            let mut stream = BufReader::new(stream);
            let command = format!("lru_crawler metadump {walk}\r\n");
            stream.get_mut().write_all(command.as_bytes()).await.map_err(|e| unavailable(server, e))?;
            let mut dump = Dump { lines: stream.lines(), pending: None, server: server.to_owned(), timeout };
            match dump.line().await? {
                Some(first) if first.starts_with("BUSY") => {
                    attempt += 1;
                    if attempt > BUSY_RETRIES {
                        return Err(unavailable(server, "the server's LRU crawler stayed busy"));
                    }
                    tokio::time::sleep(Duration::from_millis(20) * attempt.min(10)).await;
                }
                Some(first) if first.starts_with("key=") || first == "END" => {
                    dump.pending = Some(first);
                    return Ok(dump);
                }
                Some(other) => {
                    tracing::debug!(server, walk, reply = %other, "memcached: lru_crawler metadump refused");
                    walks.next();
                }
                None => return Err(unavailable(server, "connection closed")),
            }
        }
        tracing::warn!(server, "memcached: lru_crawler metadump refused");
        Err(StoreError::unsupported(
            "memcached",
            "listing sessions on a server that refuses `lru_crawler metadump` (memcached 1.4.31 or later, LRU crawler \
             enabled)",
        ))
    }

    async fn line(&mut self) -> Result<Option<String>, StoreError> {
        if let Some(first) = self.pending.take() {
            return Ok(Some(first));
        }
        match tokio::time::timeout(self.timeout, self.lines.next_line()).await {
            Ok(Ok(line)) => Ok(line.map(|l| l.trim_end_matches('\r').to_owned())),
            Ok(Err(e)) => Err(unavailable(&self.server, e)),
            Err(_) => Err(unavailable(&self.server, "no line within the timeout")),
        }
    }

    /// The next item's key (decoded), or `None` at the end of the dump.
    async fn next_key(&mut self) -> Result<Option<Vec<u8>>, StoreError> {
        loop {
            let Some(line) = self.line().await? else { return Err(unavailable(&self.server, "the dump ended early")) };
            if line == "END" {
                return Ok(None);
            }
            let Some(key) = line.strip_prefix("key=").and_then(|rest| rest.split(' ').next()) else { continue };
            if let Some(key) = percent_decode(key) {
                return Ok(Some(key));
            }
        }
    }

    /// The next session key of `store` in the dump (other items skipped).
    async fn next_session(&mut self, prefix: &str) -> Result<Option<StoreKey>, StoreError> {
        while let Some(key) = self.next_key().await? {
            if let Some(key) = session_key(prefix, &key) {
                return Ok(Some(key));
            }
        }
        Ok(None)
    }
}

/// The store key of a memcached key, if it names a session: the session prefix and a
/// store key (index items, `<prefix>principal:…`, and hashed keys are not sessions).
fn session_key(prefix: &str, key: &[u8]) -> Option<StoreKey> {
    StoreKey::from_stored(std::str::from_utf8(key.strip_prefix(prefix.as_bytes())?).ok()?)
}

/// `%XX`-decodes a metadump key; `None` if it is malformed.
fn percent_decode(s: &str) -> Option<Vec<u8>> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    Some(out)
}

fn encode(server: usize, after: &str) -> String {
    format!("{CURSOR_VERSION}/{server}/{after}")
}

fn decode(cursor: &str, servers: usize) -> Result<(usize, String), StoreError> {
    let bad = || StoreError::Rejected {
        message: format!("memcached store: not a scan cursor of this store: {cursor:?}"),
        source: None,
    };
    let mut parts = cursor.split('/');
    let (Some(CURSOR_VERSION), Some(server), Some(after), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad());
    };
    let server: usize = server.parse().map_err(|_| bad())?;
    if server >= servers || (!after.is_empty() && StoreKey::from_stored(after).is_none()) {
        return Err(bad());
    }
    Ok((server, after.to_owned()))
}

impl MemcachedStore {
    /// The live listings of `keys`, read [`BATCH`] at a time (each batch concurrently);
    /// dead ones left out.
    async fn listings(&self, keys: &[StoreKey]) -> Result<Vec<Listed>, StoreError> {
        let mut out = Vec::with_capacity(keys.len());
        for batch in keys.chunks(BATCH) {
            let found =
                futures_util::future::try_join_all(batch.iter().map(|k| async move {
                    Ok::<_, StoreError>(self.live(k).await?.map(|record| Listed::of(k, &record)))
                }))
                .await?;
            out.extend(found.into_iter().flatten());
        }
        Ok(out)
    }

    pub(crate) async fn count_sessions(&self) -> Result<u64, StoreError> {
        let (prefix, timeout) = (&self.client().options.session_prefix, self.client().options.timeout);
        let mut live = 0u64;
        for server in self.client().servers() {
            let mut dump = Dump::start(server, timeout).await?;
            let mut batch = Vec::with_capacity(BATCH);
            loop {
                let next = dump.next_session(prefix).await?;
                let done = next.is_none();
                batch.extend(next);
                if batch.len() == BATCH || (done && !batch.is_empty()) {
                    live += self.listings(&batch).await?.len() as u64;
                    batch.clear();
                }
                if done {
                    break;
                }
            }
        }
        Ok(live)
    }

    pub(crate) async fn scan_page(&self, cursor: Option<&str>, limit: usize) -> Result<Page, StoreError> {
        let limit = limit.max(1);
        let servers = self.client().servers();
        let (prefix, timeout) = (&self.client().options.session_prefix, self.client().options.timeout);
        let (mut server, mut after) = match cursor {
            None => (0, String::new()),
            Some(c) => decode(c, servers.len())?,
        };
        loop {
            // The `limit` smallest keys after `after`, whatever order the dump has.
            let mut smallest: BTreeSet<String> = BTreeSet::new();
            let mut dump = Dump::start(&servers[server], timeout).await?;
            while let Some(key) = dump.next_session(prefix).await? {
                if key.as_str() > after.as_str() {
                    smallest.insert(key.as_str().to_owned());
                    if smallest.len() > limit {
                        smallest.pop_last();
                    }
                }
            }
            let full = smallest.len() == limit;
            let last = smallest.last().cloned().unwrap_or_default();
            let keys: Vec<StoreKey> = smallest.iter().filter_map(|k| StoreKey::from_stored(k)).collect();
            let items = self.listings(&keys).await?;
            let next = if full {
                Some((server, last))
            } else if server + 1 < servers.len() {
                Some((server + 1, String::new()))
            } else {
                None
            };
            match next {
                Some((s, a)) if items.is_empty() => (server, after) = (s, a),
                Some((s, a)) => return Ok(Page { items, next: Some(encode(s, &a)) }),
                None => return Ok(Page { items, next: None }),
            }
        }
    }

    pub(crate) async fn find_handle(&self, handle: &SessionHandle) -> Result<Option<StoreKey>, StoreError> {
        let (prefix, timeout) = (&self.client().options.session_prefix, self.client().options.timeout);
        for server in self.client().servers() {
            let mut dump = Dump::start(server, timeout).await?;
            while let Some(key) = dump.next_session(prefix).await? {
                if SessionHandle::of(&key) == *handle && self.live(&key).await?.is_some() {
                    return Ok(Some(key));
                }
            }
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadump_keys_decode_and_only_session_keys_count() {
        assert_eq!(percent_decode("beaker%3Asession%3Aabc").unwrap(), b"beaker:session:abc");
        assert_eq!(percent_decode("%e2%82%AC").unwrap(), "€".as_bytes());
        for bad in ["%", "%4", "%zz", "a%g0"] {
            assert_eq!(percent_decode(bad), None, "{bad}");
        }
        assert_eq!(session_key("s:", b"s:abc-_9").map(|k| k.as_str().to_owned()), Some("abc-_9".into()));
        for other in [&b"s:principal:ann"[..], b"s:#hash", b"t:abc", b"s:", b"s:a b"] {
            assert!(session_key("s:", other).is_none(), "{}", String::from_utf8_lossy(other));
        }
    }

    #[test]
    fn cursors_round_trip_and_garbage_is_refused() {
        assert_eq!(decode(&encode(1, "abc"), 2).unwrap(), (1, "abc".to_owned()));
        assert_eq!(decode(&encode(0, ""), 1).unwrap(), (0, String::new()));
        for bad in ["", "m1", "m1/0", "m1/2/abc", "m1/x/abc", "m2/0/abc", "m1/0/a b", "m1/0/a/b"] {
            assert!(matches!(decode(bad, 2), Err(StoreError::Rejected { .. })), "{bad:?}");
        }
    }
}
