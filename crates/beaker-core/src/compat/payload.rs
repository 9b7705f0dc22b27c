//! Beaker's stored session: what `Session._encrypt_data` makes of the session dict with
//! `data_serializer = json` and no `encrypt_key` (base64 of zlib-compressed JSON), and the
//! pickled `str` its containers (`ext:redis`, `ext:database`) keep that in.
//!
//! The session dict holds the application's keys plus Beaker's reserved
//! `_creation_time` and `_accessed_time` (Unix seconds as floats), which map to
//! [`Record::created`] and [`Record::accessed`]. Its other reserved keys (`_id`, `_domain`,
//! `_path`) are kept as entries under reserved names, so they survive a round trip and are
//! not among the application's keys. Values are JSON: they are kept in
//! the record tagged as JSON, so every serializer-agnostic reader sees them unchanged.

use std::io::Read as _;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use flate2::read::ZlibDecoder;
use flate2::write::ZlibEncoder;
use serde_json::{Map, Value};

use super::cookie_session::{DOMAIN_ENTRY, DOMAIN_KEY, ID_ENTRY, ID_KEY, PATH_ENTRY, PATH_KEY, RESERVED_KEYS};
use super::BeakerSerializer;
use crate::error::StoreError;
use crate::serializer::DataSerializer;
use crate::store::Record;

/// Beaker's key for the creation time.
pub const CREATION_TIME: &str = "_creation_time";
/// Beaker's key for the last-access time (its idle timeout is measured from it).
pub const ACCESSED_TIME: &str = "_accessed_time";
/// Largest session dict accepted once decompressed: a small compressed payload must not
/// be able to make a reader allocate without bound.
const MAX_JSON: u64 = 16 << 20;

pub(crate) fn corrupt(what: impl std::fmt::Display) -> StoreError {
    StoreError::corrupt(format!("beaker session record: {what}"))
}

fn seconds(value: Option<&Value>, key: &str, default: SystemTime) -> Result<SystemTime, StoreError> {
    match value {
        None => Ok(default),
        Some(v) => v
            .as_f64()
            .and_then(|s| Duration::try_from_secs_f64(s).ok())
            .map(|d| UNIX_EPOCH + d)
            .ok_or_else(|| corrupt(format_args!("{key} is not a time"))),
    }
}

fn as_seconds(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}

/// Reads Beaker's serialized session (base64 of zlib-compressed JSON) into a record
/// (without expiry: the store knows it). A session dict without timestamps gets `now`,
/// as Beaker's own `load` does.
pub fn decode_json_session(encoded: &[u8], now: SystemTime) -> Result<Record, StoreError> {
    let compressed = STANDARD.decode(encoded).map_err(|e| corrupt(format_args!("not base64 ({e})")))?;
    let mut json = Vec::new();
    ZlibDecoder::new(compressed.as_slice())
        .take(MAX_JSON + 1)
        .read_to_end(&mut json)
        .map_err(|e| corrupt(format_args!("not zlib-compressed JSON ({e}); is the Beaker app using pickle?")))?;
    if json.len() as u64 > MAX_JSON {
        return Err(corrupt("session larger than 16 MiB"));
    }
    let map: Map<String, Value> =
        serde_json::from_slice(&json).map_err(|e| corrupt(format_args!("not a JSON object ({e})")))?;
    record_from_dict(map, now)
}

/// A record from Beaker's session dict (whatever serializer decoded it).
pub fn record_from_dict(mut map: Map<String, Value>, now: SystemTime) -> Result<Record, StoreError> {
    let created = seconds(map.get(CREATION_TIME), CREATION_TIME, now)?;
    let accessed = seconds(map.get(ACCESSED_TIME), ACCESSED_TIME, created)?;
    map.remove(CREATION_TIME);
    map.remove(ACCESSED_TIME);
    let mut entries = std::collections::BTreeMap::new();
    for (k, v) in map {
        let bytes = DataSerializer::Json.encode(&v).map_err(corrupt)?;
        entries.insert(k, bytes);
    }
    Ok(Record { entries, created, accessed, expires: None, owner: None })
}

/// Beaker's session dict of a record: its entries as JSON values and the two reserved
/// timestamps. Fails when a value cannot be read back (an unknown serializer tag).
pub fn dict_from_record(record: &Record) -> Result<Map<String, Value>, StoreError> {
    let mut map = Map::with_capacity(record.entries.len() + 2);
    for (k, v) in &record.entries {
        let value: Value = DataSerializer::decode(v).map_err(|e| corrupt(format_args!("value of {k:?}: {e}")))?;
        map.insert(k.clone(), value);
    }
    map.insert(CREATION_TIME.into(), Value::from(as_seconds(record.created)));
    map.insert(ACCESSED_TIME.into(), Value::from(as_seconds(record.accessed)));
    Ok(map)
}

/// Beaker's serialized session for a record: base64 of zlib-compressed JSON.
pub fn encode_json_session(record: &Record) -> Result<Vec<u8>, StoreError> {
    let json = serde_json::to_vec(&dict_from_record(record)?).map_err(corrupt)?;
    let mut z = ZlibEncoder::new(Vec::with_capacity(json.len() / 2 + 16), flate2::Compression::default());
    std::io::Write::write_all(&mut z, &json).map_err(corrupt)?;
    let compressed = z.finish().map_err(corrupt)?;
    Ok(STANDARD.encode(compressed).into_bytes())
}

/// Beaker's own keys kept as entries, and the reserved names they are kept under, so that
/// they survive a round trip without showing among the application's keys.
const KEPT: [(&str, &str); 3] = [(ID_KEY, ID_ENTRY), (DOMAIN_KEY, DOMAIN_ENTRY), (PATH_KEY, PATH_ENTRY)];

/// Reads Beaker's serialized session with `serializer`. Beaker's `_id`, `_domain` and
/// `_path` come back under [`ID_ENTRY`], [`DOMAIN_ENTRY`] and [`PATH_ENTRY`].
pub fn decode_session(encoded: &[u8], serializer: BeakerSerializer, now: SystemTime) -> Result<Record, StoreError> {
    let mut record = match serializer {
        BeakerSerializer::Json => decode_json_session(encoded, now),
        BeakerSerializer::Pickle => super::pickle::decode_pickle_session(encoded, now),
    }?;
    for (key, entry) in KEPT {
        if let Some(v) = record.entries.remove(key) {
            record.entries.insert(entry.to_owned(), v);
        }
    }
    Ok(record)
}

/// Beaker's serialized session for a record, with `serializer`: the reverse of
/// [`decode_session`]. Fails when the application used one of Beaker's own keys (`_id`,
/// `_domain`, `_path`, `_creation_time`, `_accessed_time`) as a key of its own, which
/// would replace Beaker's value.
pub fn encode_session(record: &Record, serializer: BeakerSerializer) -> Result<Vec<u8>, StoreError> {
    if let Some(k) = record.entries.keys().find(|k| RESERVED_KEYS.contains(&k.as_str())) {
        return Err(StoreError::Rejected {
            message: format!("the session key {k:?} is reserved by Beaker's session format"),
            source: None,
        });
    }
    let renamed;
    let record = if KEPT.iter().any(|(_, entry)| record.entries.contains_key(*entry)) {
        let mut copy = record.clone();
        for (key, entry) in KEPT {
            if let Some(v) = copy.entries.remove(entry) {
                copy.entries.insert(key.to_owned(), v);
            }
        }
        renamed = copy;
        &renamed
    } else {
        record
    };
    match serializer {
        BeakerSerializer::Json => encode_json_session(record),
        BeakerSerializer::Pickle => super::pickle::encode_pickle_session(record),
    }
}

/// The text a Beaker container keeps, out of its pickle (Beaker pickles the base64 `str`
/// that `_encrypt_data` returns). Only a pickle of one `str` or `bytes` object is accepted; any global other than the `_codecs.encode` that
/// protocol 2 uses for bytes is refused, so no object is ever constructed.
pub fn unpickle_text(pickled: &[u8]) -> Result<Vec<u8>, StoreError> {
    // A container is never what Beaker stores here: refuse any before serde-pickle runs.
    super::pickle_shape::check(pickled, 0, 1).map_err(|e| corrupt(format_args!("not a pickle of text ({e})")))?;
    let value = serde_pickle::value_from_slice(pickled, serde_pickle::DeOptions::new())
        .map_err(|e| corrupt(format_args!("not a pickle of bytes ({e})")))?;
    match value {
        serde_pickle::Value::Bytes(b) => Ok(b),
        serde_pickle::Value::String(s) => Ok(s.into_bytes()),
        _ => Err(corrupt("the pickle does not hold a bytes object")),
    }
}

/// Text pickled as Beaker's containers store it: a `str` (protocol 3, which every
/// Python 3 reads).
pub fn pickle_text(text: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(text).into_owned();
    serde_pickle::value_to_vec(&serde_pickle::Value::String(text), serde_pickle::SerOptions::new())
        .expect("pickling a string into a Vec cannot fail")
}

/// The text of a Beaker session out of the pickled namespace dict that `ext:database`
/// keeps in its `data` column (SQLAlchemy `PickleType`): `{'session': <text>}`. Only a
/// dict of `str` keys and `str`/`bytes` values is accepted, before serde-pickle runs.
pub fn unpickle_namespace(pickled: &[u8]) -> Result<Vec<u8>, StoreError> {
    // One dict of scalars; a handful of entries at most (Beaker writes one).
    super::pickle_shape::check(pickled, 1, 64).map_err(|e| corrupt(format_args!("not a namespace dict ({e})")))?;
    let value = serde_pickle::value_from_slice(pickled, serde_pickle::DeOptions::new())
        .map_err(|e| corrupt(format_args!("not a pickled namespace dict ({e})")))?;
    let serde_pickle::Value::Dict(mut dict) = value else {
        return Err(corrupt("the pickle does not hold a namespace dict"));
    };
    match dict.remove(&serde_pickle::HashableValue::String("session".into())) {
        Some(serde_pickle::Value::String(s)) => Ok(s.into_bytes()),
        Some(serde_pickle::Value::Bytes(b)) => Ok(b),
        Some(_) => Err(corrupt("the namespace's session is not text")),
        None => Err(corrupt("the namespace dict holds no session")),
    }
}

/// Beaker's `ext:database` namespace dict `{'session': <text>}`, pickled (protocol 3,
/// which SQLAlchemy's `PickleType` reads on every Python 3).
pub fn pickle_namespace(text: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(text).into_owned();
    let dict = std::collections::BTreeMap::from([(
        serde_pickle::HashableValue::String("session".into()),
        serde_pickle::Value::String(text),
    )]);
    serde_pickle::value_to_vec(&serde_pickle::Value::Dict(dict), serde_pickle::SerOptions::new())
        .expect("pickling a dict of strings into a Vec cannot fail")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> Record {
        let mut entries = std::collections::BTreeMap::new();
        entries.insert("user".to_string(), DataSerializer::Json.encode(&"alice").unwrap());
        entries.insert("n".to_string(), DataSerializer::MessagePack.encode(&3).unwrap());
        Record {
            entries,
            created: UNIX_EPOCH + Duration::from_millis(1_700_000_000_250),
            accessed: UNIX_EPOCH + Duration::from_millis(1_700_000_100_500),
            expires: None,
            owner: None,
        }
    }

    #[test]
    fn round_trip_keeps_values_and_times() {
        let r = record();
        let encoded = encode_json_session(&r).unwrap();
        let back = decode_json_session(&encoded, SystemTime::now()).unwrap();
        assert_eq!(back.created, r.created);
        assert_eq!(back.accessed, r.accessed);
        assert_eq!(DataSerializer::decode::<String>(&back.entries["user"]).unwrap(), "alice");
        assert_eq!(DataSerializer::decode::<i64>(&back.entries["n"]).unwrap(), 3);
        assert!(!back.entries.contains_key(CREATION_TIME));
    }

    #[test]
    fn reads_what_python_beaker_writes() {
        // Python 3.11, Beaker 1.14.1: pickle.dumps(session._encrypt_data(
        //   {'_creation_time': 1700000000.25, '_accessed_time': 1700000100.5, 'user': 'alice'}))
        // with data_serializer='json'.
        let pickled = STANDARD.decode(PY_PICKLED).unwrap();
        let r = decode_json_session(&unpickle_text(&pickled).unwrap(), SystemTime::now()).unwrap();
        assert_eq!(r.created, UNIX_EPOCH + Duration::from_millis(1_700_000_000_250));
        assert_eq!(r.accessed, UNIX_EPOCH + Duration::from_millis(1_700_000_100_500));
        assert_eq!(DataSerializer::decode::<String>(&r.entries["user"]).unwrap(), "alice");
    }

    const PY_PICKLED: &str = "gASVYAAAAAAAAACMXGVKeXJWb3BQTGtwTkxNbk16NHN2eWN4TlZiSlNNRFEzZ0FJOUkxTWRCYVg0eE9UazFPTGkxQlEwQllaQUJTRDUwdUxVSXFDb1VtSk9abktxVWkwQTkrRVhudz09lC4=";

    #[test]
    fn garbage_is_corrupt_not_a_panic() {
        let now = SystemTime::now();
        for bad in [&b""[..], b"!!!", b"eJw=", b"AAAA", &STANDARD.encode(b"not zlib").into_bytes()] {
            assert!(matches!(decode_json_session(bad, now), Err(StoreError::Corrupt { .. })), "{bad:?}");
        }
        // Python: pickle.dumps(b'x', 2) uses _codecs.encode; os.system must never be reached.
        assert!(unpickle_text(b"cos\nsystem\n(S'true'\ntR.").is_err());
        assert!(unpickle_text(b"\x80\x03K\x01.").is_err());
        assert_eq!(unpickle_text(&pickle_text(b"abc")).unwrap(), b"abc");
        // A JSON object whose timestamps are not numbers.
        let mut z = ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        std::io::Write::write_all(&mut z, br#"{"_creation_time": "yesterday"}"#).unwrap();
        let bad = STANDARD.encode(z.finish().unwrap()).into_bytes();
        assert!(decode_json_session(&bad, now).is_err());
    }

    #[test]
    fn reads_and_writes_the_database_namespace_dict() {
        // CPython 3, Beaker 1.14.1 ext:database: pickle.dumps({'session': <json payload>},
        // pickle.HIGHEST_PROTOCOL) (protocol 5), as SQLAlchemy's PickleType stores it.
        let pickled = STANDARD.decode(PY_NAMESPACE).unwrap();
        let text = unpickle_namespace(&pickled).unwrap();
        assert!(text.starts_with(b"eJyrVkrNS8ksSk1R"), "{}", String::from_utf8_lossy(&text));
        assert_eq!(unpickle_namespace(&pickle_namespace(&text)).unwrap(), text);
        // Not a dict, no session, a session that is not text, nesting, objects.
        for bad in [
            pickle_text(b"abc"),
            b"\x80\x03}q\x00X\x01\x00\x00\x00xq\x01X\x01\x00\x00\x00yq\x02s.".to_vec(),
            b"\x80\x03}q\x00X\x07\x00\x00\x00sessionq\x01K\x01s.".to_vec(),
            b"\x80\x03}q\x00X\x07\x00\x00\x00sessionq\x01}q\x02s.".to_vec(),
            b"cos\nsystem\n(S'true'\ntR.".to_vec(),
            Vec::new(),
        ] {
            assert!(matches!(unpickle_namespace(&bad), Err(StoreError::Corrupt { .. })), "{bad:?}");
        }
    }

    const PY_NAMESPACE: &str = "gAWVZQAAAAAAAAB9lIwHc2Vzc2lvbpSMVGVKeXJWa3JOUzhrc1NrMVJzbElxenM4dFNNM0xMMHBWVXRKUlNzd3JCb29xR1JrYW11Z2FHeHRaR09xWjZocVk2UnVZNmhxYjZ1c2FHaHJxNlFJQZRzLg==";

    #[test]
    fn a_compression_bomb_is_refused() {
        let mut z = ZlibEncoder::new(Vec::new(), flate2::Compression::best());
        std::io::Write::write_all(&mut z, b"{\"a\": \"").unwrap();
        let chunk = vec![b'x'; 1 << 20];
        for _ in 0..17 {
            std::io::Write::write_all(&mut z, &chunk).unwrap();
        }
        std::io::Write::write_all(&mut z, b"\"}").unwrap();
        let encoded = STANDARD.encode(z.finish().unwrap()).into_bytes();
        let e = decode_json_session(&encoded, SystemTime::now()).unwrap_err().to_string();
        assert!(e.contains("16 MiB"), "{e}");
    }
}
