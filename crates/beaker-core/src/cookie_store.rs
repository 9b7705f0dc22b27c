//! Cookie-only sessions (Beaker's `type = cookie`): the whole session, encrypted and
//! authenticated with AES-256-GCM, lives in the cookie; the server keeps nothing.

use std::collections::BTreeMap;
use std::time::SystemTime;

use crate::clock::{from_millis, to_millis};
use crate::error::StoreError;
use crate::id::{SessionId, ID_BYTES};
use crate::secret::Keys;
use crate::store::{put_varint, utf8, Owner, Reader, Record};

/// Marker for cookie-only sessions; pass it to
/// [`SessionManagerBuilder::cookie_store`](crate::SessionManagerBuilder::cookie_store).
///
/// Limits, by design: the payload (after encryption and base64) must fit the configured
/// `cookie_limit` (4096 bytes by default); a write past it fails with
/// [`Error::CookieTooLarge`](crate::Error::CookieTooLarge) and the previous cookie stays
/// valid. The server keeps nothing, so an ended cookie-only session cannot be retired:
/// logging out or regenerating the id cannot revoke a copy of the old cookie held
/// elsewhere, which replays until its expiry (bound it with `absolute_timeout`). Use a
/// server-side store when that matters.
#[derive(Debug, Clone, Copy, Default)]
pub struct CookieStore;

/// Where a record of the older cookie layout (a store [`Record`]) keeps the id; Beaker's
/// own cookie format keeps it there too.
pub(crate) const ID_ENTRY: &str = "_beaker.id";

/// What a cookie-only session's cookie holds, borrowed from the request's state.
pub(crate) struct Content<'a> {
    pub(crate) id: &'a SessionId,
    pub(crate) created: SystemTime,
    pub(crate) accessed: SystemTime,
    pub(crate) expires: Option<SystemTime>,
    pub(crate) entries: &'a BTreeMap<String, Vec<u8>>,
    pub(crate) owner: Option<&'a Owner>,
}

// The cookie layout. Every byte of it is sent with each request and encrypted, encoded
// and validated on the way in and out, so it is denser than the store's `Record` layout:
//
//   VERSION, flags, the id's 24 random bytes, created (ms since the epoch),
//   accessed − created and, with EXPIRES, expires − accessed (ms, zigzag),
//   the number of entries, each as key and value, then with OWNER the principal and,
//   with DEVICE, the device.
//
// Numbers are LEB128 varints and strings and values are a varint length and the bytes.
// A record of the older layout starts with `BKR`, which VERSION never does.
const VERSION: u8 = 0xC1;
const EXPIRES: u8 = 1;
const OWNER: u8 = 2;
const DEVICE: u8 = 4;

pub(crate) fn seal(keys: &Keys, cookie_name: &str, content: &Content<'_>) -> String {
    keys.encrypt(cookie_name, &encode(content))
}

/// Opens a sealed session: `None` for anything tampered, foreign or undecodable.
pub(crate) fn open(keys: &Keys, cookie_name: &str, sealed: &str) -> Option<(Record, SessionId, bool)> {
    let (plain, old_key) = keys.decrypt(cookie_name, sealed)?;
    let (record, id) = match plain.first() {
        Some(&VERSION) => decode(&plain).ok()?,
        _ => {
            let mut record = Record::from_bytes(&plain).ok()?;
            let id = record
                .entries
                .remove(ID_ENTRY)
                .and_then(|b| crate::serializer::DataSerializer::decode::<String>(&b).ok())
                .and_then(|s| SessionId::parse(&s))?;
            (record, id)
        }
    };
    Some((record, id, old_key))
}

fn encode(c: &Content<'_>) -> Vec<u8> {
    let size: usize = c.entries.iter().map(|(k, v)| 4 + k.len() + v.len()).sum();
    let mut out = Vec::with_capacity(2 + ID_BYTES + 3 * 10 + 5 + size);
    let mut flags = 0;
    if c.expires.is_some() {
        flags |= EXPIRES;
    }
    if let Some(owner) = c.owner {
        flags |= OWNER;
        if owner.device.is_some() {
            flags |= DEVICE;
        }
    }
    out.extend_from_slice(&[VERSION, flags]);
    out.extend_from_slice(&c.id.to_bytes());
    let created = to_millis(c.created);
    let accessed = to_millis(c.accessed);
    put_varint(&mut out, created);
    put_varint(&mut out, zigzag(accessed.wrapping_sub(created)));
    if let Some(expires) = c.expires {
        put_varint(&mut out, zigzag(to_millis(expires).wrapping_sub(accessed)));
    }
    put_varint(&mut out, c.entries.len() as u64);
    for (k, v) in c.entries {
        put_sized(&mut out, k.as_bytes());
        put_sized(&mut out, v);
    }
    if let Some(owner) = c.owner {
        put_sized(&mut out, owner.principal.as_bytes());
        if let Some(device) = &owner.device {
            put_sized(&mut out, device.as_bytes());
        }
    }
    out
}

fn decode(bytes: &[u8]) -> Result<(Record, SessionId), StoreError> {
    let mut r = Reader(bytes);
    let [VERSION, flags] = *r.take(2)? else {
        return Err(StoreError::corrupt("not a cookie session record"));
    };
    if flags & !(EXPIRES | OWNER | DEVICE) != 0 || (flags & DEVICE != 0 && flags & OWNER == 0) {
        return Err(StoreError::corrupt("unknown flags in a cookie session record"));
    }
    let id_bytes: &[u8; ID_BYTES] = r.take(ID_BYTES)?.try_into().map_err(|_| StoreError::corrupt("short id"))?;
    let id = SessionId::from_bytes(id_bytes);
    let created = r.varint()?;
    let accessed = created.wrapping_add(unzigzag(r.varint()?));
    let expires = match flags & EXPIRES {
        0 => None,
        _ => Some(from_millis(accessed.wrapping_add(unzigzag(r.varint()?)))),
    };
    let count = r.varint()?;
    let mut entries = BTreeMap::new();
    for _ in 0..count {
        let key = utf8(r.sized()?, "record key is not UTF-8")?;
        entries.insert(key, r.sized()?.to_vec());
    }
    let owner = match flags & OWNER {
        0 => None,
        _ => Some(Owner {
            principal: utf8(r.sized()?, "record owner is not UTF-8")?,
            device: match flags & DEVICE {
                0 => None,
                _ => Some(utf8(r.sized()?, "record device is not UTF-8")?),
            },
        }),
    };
    if !r.0.is_empty() {
        return Err(StoreError::corrupt("trailing bytes after the record"));
    }
    let record = Record { entries, created: from_millis(created), accessed: from_millis(accessed), expires, owner };
    Ok((record, id))
}

fn put_sized(out: &mut Vec<u8>, bytes: &[u8]) {
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// A difference of two times in ms (wrapped to `u64`) as a small number either way.
fn zigzag(delta: u64) -> u64 {
    let signed = delta as i64;
    ((signed << 1) ^ (signed >> 63)) as u64
}

fn unzigzag(n: u64) -> u64 {
    (n >> 1) ^ (n & 1).wrapping_neg()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use proptest::prelude::*;

    use super::*;
    use crate::secret::Secret;

    fn keys() -> Keys {
        Keys::new(&[Secret::new(b"a secret that is long enough!!".to_vec()).unwrap()]).unwrap()
    }

    fn time(ms: u64) -> SystemTime {
        from_millis(ms)
    }

    /// What sealing `record` under `id` writes.
    fn content<'a>(id: &'a SessionId, record: &'a Record) -> Content<'a> {
        Content {
            id,
            created: record.created,
            accessed: record.accessed,
            expires: record.expires,
            entries: &record.entries,
            owner: record.owner.as_ref(),
        }
    }

    fn check_round_trip(id: &SessionId, record: &Record) {
        let content = content(id, record);
        let (back, back_id) = decode(&encode(&content)).unwrap();
        assert_eq!(&back, record);
        assert_eq!(&back_id, id);
        let sealed = seal(&keys(), "c", &content);
        assert_eq!(open(&keys(), "c", &sealed), Some((record.clone(), id.clone(), false)));
    }

    fn sample() -> Record {
        let now = time(1_796_000_000_123);
        Record {
            entries: BTreeMap::from([("counter".to_owned(), b"j7".to_vec())]),
            created: now,
            accessed: now,
            expires: Some(now + Duration::from_secs(1800)),
            owner: None,
        }
    }

    #[test]
    fn every_shape_round_trips() {
        let id = SessionId::generate();
        let mut r = sample();
        check_round_trip(&id, &r);
        r.expires = None;
        check_round_trip(&id, &r);
        // A clock that went backwards between writes: accessed before created.
        r.accessed = time(1_000);
        r.expires = Some(time(0));
        check_round_trip(&id, &r);
        r.owner = Some(Owner { principal: "ada".into(), device: None });
        check_round_trip(&id, &r);
        r.owner = Some(Owner { principal: "ada".into(), device: Some("laptop".into()) });
        r.entries.clear();
        check_round_trip(&id, &r);
        r.created = time(u64::MAX / 2);
        check_round_trip(&id, &r);
    }

    #[test]
    fn the_older_layout_still_opens_without_its_id_entry() {
        let id = SessionId::generate();
        let mut record = sample();
        record.owner = Some(Owner { principal: "ada".into(), device: Some("laptop".into()) });
        let mut old = record.clone();
        let id_json = crate::serializer::DataSerializer::Json.encode(id.expose()).unwrap();
        old.entries.insert(ID_ENTRY.to_owned(), id_json);
        let sealed = keys().encrypt("c", &old.to_bytes());
        assert_eq!(open(&keys(), "c", &sealed), Some((record, id, false)));
        // Without a usable id it is refused.
        old.entries.remove(ID_ENTRY);
        assert_eq!(open(&keys(), "c", &keys().encrypt("c", &old.to_bytes())), None);
    }

    #[test]
    fn damaged_records_are_errors() {
        let id = SessionId::generate();
        let mut r = sample();
        r.owner = Some(Owner { principal: "ada".into(), device: Some("laptop".into()) });
        let good = encode(&content(&id, &r));
        for len in 0..good.len() {
            assert!(decode(&good[..len]).is_err(), "a record cut to {len} bytes decoded");
        }
        let mut trailing = good.clone();
        trailing.push(0);
        assert!(decode(&trailing).is_err());
        for flags in [8, 0x80, DEVICE, DEVICE | EXPIRES] {
            let mut bad = good.clone();
            bad[1] = flags;
            assert!(decode(&bad).is_err(), "flags {flags:#x} accepted");
        }
        // A created time of eleven varint bytes.
        let mut long = vec![VERSION, 0];
        long.extend_from_slice(&[0; ID_BYTES]);
        long.extend_from_slice(&[0xff; 10]);
        long.push(0);
        assert!(decode(&long).is_err());
        // A length past the end.
        let mut huge = vec![VERSION, 0];
        huge.extend_from_slice(&[0; ID_BYTES]);
        huge.extend_from_slice(&[0, 0, 1, 0xff, 0xff, 0xff, 0xff, 0x0f]);
        assert!(decode(&huge).is_err());
    }

    #[test]
    fn varints_and_zigzag_at_the_edges() {
        for v in [0, 1, 127, 128, 16_383, 16_384, u64::MAX / 2, u64::MAX - 1, u64::MAX] {
            let mut out = Vec::new();
            put_varint(&mut out, v);
            assert!(out.len() <= 10);
            let mut r = Reader(&out);
            assert_eq!(r.varint().unwrap(), v);
            assert!(r.0.is_empty());
            assert_eq!(unzigzag(zigzag(v)), v);
        }
        assert_eq!(zigzag(0), 0);
        assert_eq!(zigzag(1), 2);
        assert_eq!(zigzag(u64::MAX), 1, "minus one is small");
        // Bit 63 alone is the most the tenth byte may hold.
        let mut over = vec![0xff; 9];
        over.push(0x02);
        assert!(Reader(&over).varint().is_err());
    }

    proptest! {
        #[test]
        fn any_content_round_trips(
            created in any::<u64>(),
            accessed in any::<u64>(),
            expires in proptest::option::of(any::<u64>()),
            entries in proptest::collection::btree_map(".{0,12}", proptest::collection::vec(any::<u8>(), 0..40), 0..6),
            owner in proptest::option::of((".{0,10}", proptest::option::of(".{0,10}"))),
        ) {
            // Times as the store keeps them: whole milliseconds, saturated.
            let t = |ms| from_millis(to_millis(from_millis(ms)));
            let record = Record {
                entries,
                created: t(created),
                accessed: t(accessed),
                expires: expires.map(t),
                owner: owner.map(|(principal, device)| Owner { principal, device }),
            };
            check_round_trip(&SessionId::generate(), &record);
        }

        #[test]
        fn any_bytes_decode_or_fail_without_panicking(mut bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = decode(&bytes);
            if bytes.len() > 1 {
                bytes[0] = VERSION;
                let _ = decode(&bytes);
            }
        }
    }
}
