//! Beaker's `pickle` serializer (its default), for interop only: the session dict as
//! `pickle.dumps(data, 2)`, base64-encoded.
//!
//! Before decoding, a pass over the opcodes bounds the nesting depth and the number of
//! values the pickle would expand to. Decoding uses serde-pickle, which builds plain values and executes nothing: it knows
//! no classes, and a pickle naming any global other than the few builtins it maps to data
//! (such as `_codecs.encode`, which protocol 2 uses for `bytes`) is an error. On top of
//! that only Beaker's data subset is accepted: dict, list, tuple, str, bytes, int (64-bit),
//! float, bool and None, nested at most [`MAX_DEPTH`] deep; sets, big integers and
//! everything else make the record corrupt. Values are kept in the record as MessagePack
//! (which, unlike JSON, has a bytes type). Writing produces protocol 2 of the same subset
//! (tuples come back as lists).

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde::ser::{SerializeMap as _, SerializeSeq as _};
use serde::{Serialize, Serializer};
use serde_pickle::{DeOptions, HashableValue as PyKey, SerOptions, Value as Py};

use super::payload::{corrupt, ACCESSED_TIME, CREATION_TIME};
use crate::error::StoreError;
use crate::serializer::DataSerializer;
use crate::store::Record;

/// Largest pickle accepted, before decoding.
pub const MAX_PICKLE: usize = 256 << 10;
/// Most values a pickled session may expand to (shared references counted each time).
pub const MAX_VALUES: u64 = 1 << 20;
/// Deepest nesting of lists, tuples and dicts accepted inside a session value.
pub const MAX_DEPTH: usize = 32;

fn allowed(v: &Py, depth: usize) -> bool {
    if depth > MAX_DEPTH {
        return false;
    }
    match v {
        Py::None | Py::Bool(_) | Py::I64(_) | Py::F64(_) | Py::Bytes(_) | Py::String(_) => true,
        Py::Int(big) => i64::try_from(big).is_ok(),
        Py::List(items) | Py::Tuple(items) => items.iter().all(|x| allowed(x, depth + 1)),
        Py::Dict(map) => map.iter().all(|(k, v)| key_allowed(k) && allowed(v, depth + 1)),
        _ => false,
    }
}

fn key_allowed(k: &PyKey) -> bool {
    match k {
        PyKey::String(_) | PyKey::I64(_) | PyKey::Bytes(_) | PyKey::Bool(_) | PyKey::None => true,
        PyKey::Int(big) => i64::try_from(big).is_ok(),
        _ => false,
    }
}

/// A checked value, serialized through serde (into MessagePack for the record).
struct Data<'a>(&'a Py);
struct Key<'a>(&'a PyKey);

impl Serialize for Data<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Py::None => s.serialize_none(),
            Py::Bool(b) => s.serialize_bool(*b),
            Py::I64(i) => s.serialize_i64(*i),
            Py::Int(big) => s.serialize_i64(i64::try_from(big).map_err(serde::ser::Error::custom)?),
            Py::F64(f) => s.serialize_f64(*f),
            Py::Bytes(b) => s.serialize_bytes(b),
            Py::String(t) => s.serialize_str(t),
            Py::List(items) | Py::Tuple(items) => {
                let mut seq = s.serialize_seq(Some(items.len()))?;
                for x in items {
                    seq.serialize_element(&Data(x))?;
                }
                seq.end()
            }
            Py::Dict(m) => {
                let mut map = s.serialize_map(Some(m.len()))?;
                for (k, v) in m {
                    map.serialize_entry(&Key(k), &Data(v))?;
                }
                map.end()
            }
            _ => Err(serde::ser::Error::custom("a value outside Beaker's data subset")),
        }
    }
}

impl Serialize for Key<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            PyKey::None => s.serialize_none(),
            PyKey::Bool(b) => s.serialize_bool(*b),
            PyKey::I64(i) => s.serialize_i64(*i),
            PyKey::Int(big) => s.serialize_i64(i64::try_from(big).map_err(serde::ser::Error::custom)?),
            PyKey::Bytes(b) => s.serialize_bytes(b),
            PyKey::String(t) => s.serialize_str(t),
            _ => Err(serde::ser::Error::custom("a dict key outside Beaker's data subset")),
        }
    }
}

fn timestamp(dict: &BTreeMap<PyKey, Py>, key: &str, default: SystemTime) -> Result<SystemTime, StoreError> {
    let secs = match dict.get(&PyKey::String(key.into())) {
        None => return Ok(default),
        Some(Py::F64(f)) => *f,
        Some(Py::I64(i)) => *i as f64,
        Some(_) => return Err(corrupt(format_args!("{key} is not a time"))),
    };
    std::time::Duration::try_from_secs_f64(secs)
        .map(|d| UNIX_EPOCH + d)
        .map_err(|_| corrupt(format_args!("{key} is not a time")))
}

/// Reads Beaker's pickled session (base64 of a protocol 0–5 pickle of the session dict).
pub fn decode_pickle_session(encoded: &[u8], now: SystemTime) -> Result<Record, StoreError> {
    let pickled = STANDARD.decode(encoded).map_err(|e| corrupt(format_args!("not base64 ({e})")))?;
    if pickled.len() > MAX_PICKLE {
        return Err(corrupt("pickled session larger than 256 KiB"));
    }
    super::pickle_shape::check(&pickled, MAX_DEPTH as u32 + 2, MAX_VALUES)
        .map_err(|e| corrupt(format_args!("not a pickle of plain data ({e})")))?;
    let value = serde_pickle::value_from_slice(&pickled, DeOptions::new())
        .map_err(|e| corrupt(format_args!("not a pickle of plain data ({e})")))?;
    let Py::Dict(dict) = value else { return Err(corrupt("the pickle does not hold a dict")) };
    let created = timestamp(&dict, CREATION_TIME, now)?;
    let accessed = timestamp(&dict, ACCESSED_TIME, created)?;
    let mut entries = BTreeMap::new();
    for (k, v) in &dict {
        let PyKey::String(k) = k else { return Err(corrupt("a session key that is not a str")) };
        if k == CREATION_TIME || k == ACCESSED_TIME {
            continue;
        }
        if !allowed(v, 0) {
            return Err(corrupt(format_args!("the value of {k:?} is outside Beaker's data subset")));
        }
        let bytes = DataSerializer::MessagePack.encode(&Data(v)).map_err(corrupt)?;
        entries.insert(k.clone(), bytes);
    }
    Ok(Record { entries, created, accessed, expires: None, owner: None })
}

/// Beaker's pickled session for a record: base64 of a protocol 2 pickle of the dict.
pub fn encode_pickle_session(record: &Record) -> Result<Vec<u8>, StoreError> {
    let mut dict = BTreeMap::new();
    for (k, v) in &record.entries {
        let value: Py = DataSerializer::decode(v).map_err(|e| corrupt(format_args!("value of {k:?}: {e}")))?;
        dict.insert(PyKey::String(k.clone()), value);
    }
    let secs = |t: SystemTime| Py::F64(t.duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64()));
    dict.insert(PyKey::String(CREATION_TIME.into()), secs(record.created));
    dict.insert(PyKey::String(ACCESSED_TIME.into()), secs(record.accessed));
    let pickled = serde_pickle::value_to_vec(&Py::Dict(dict), SerOptions::new().proto_v2()).map_err(corrupt)?;
    Ok(STANDARD.encode(pickled).into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn reads_what_python_beaker_pickles() {
        // Python 3.11: base64.b64encode(pickle.dumps({'_creation_time': 1700000000.25,
        //   '_accessed_time': 1700000100.5, 'user': 'alice', 'raw': b'\x00\xff',
        //   'pair': (1, 'two'), 'nested': {'a': [None, True, 1.5]}, 'big': 2**40}, 2))
        let r = decode_pickle_session(PY_PICKLE.as_bytes(), SystemTime::now()).unwrap();
        assert_eq!(r.created, UNIX_EPOCH + Duration::from_millis(1_700_000_000_250));
        assert_eq!(r.accessed, UNIX_EPOCH + Duration::from_millis(1_700_000_100_500));
        assert_eq!(DataSerializer::decode::<String>(&r.entries["user"]).unwrap(), "alice");
        assert_eq!(DataSerializer::decode::<Vec<u8>>(&r.entries["raw"]).unwrap(), [0, 255]);
        assert_eq!(DataSerializer::decode::<(i64, String)>(&r.entries["pair"]).unwrap(), (1, "two".into()));
        let nested: serde_json::Value = DataSerializer::decode(&r.entries["nested"]).unwrap();
        assert_eq!(nested, serde_json::json!({"a": [null, true, 1.5]}));
        assert_eq!(DataSerializer::decode::<i64>(&r.entries["big"]).unwrap(), 1 << 40);
        // And back: protocol 2, the same data.
        let again = decode_pickle_session(&encode_pickle_session(&r).unwrap(), SystemTime::now()).unwrap();
        assert_eq!(again, r);
    }

    const PY_PICKLE: &str = "gAJ9cQAoWA4AAABfY3JlYXRpb25fdGltZXEBR0HZVPxAEAAAWA4AAABfYWNjZXNzZWRfdGltZXECR0HZVPxZIAAAWAQAAAB1c2VycQNYBQAAAGFsaWNlcQRYAwAAAHJhd3EFY19jb2RlY3MKZW5jb2RlCnEGWAMAAAAAw79xB1gGAAAAbGF0aW4xcQiGcQlScQpYBAAAAHBhaXJxC0sBWAMAAAB0d29xDIZxDVgGAAAAbmVzdGVkcQ59cQ9YAQAAAGFxEF1xEShOiEc/+AAAAAAAAGVzWAMAAABiaWdxEooGAAAAAAABdS4=";

    #[test]
    fn objects_sets_and_deep_nesting_are_corrupt() {
        let now = SystemTime::now();
        let b64 = |p: &[u8]| STANDARD.encode(p).into_bytes();
        // pickle.dumps(os.system) / a REDUCE of it: never resolved, never called.
        assert!(decode_pickle_session(&b64(b"cos\nsystem\n(S'echo owned'\ntR."), now).is_err());
        assert!(decode_pickle_session(&b64(b"\x80\x02cposix\nsystem\nq\x00."), now).is_err());
        // {'s': {1, 2}} and a bare list.
        assert!(decode_pickle_session(
            &b64(b"\x80\x02}q\x00X\x01\x00\x00\x00sc__builtin__\nset\n]q\x01(K\x01K\x02e\x85Rq\x02s."),
            now
        )
        .is_err());
        assert!(decode_pickle_session(&b64(b"\x80\x02]q\x00."), now).is_err());
        // {'d': [[[...]]]} nested deeper than MAX_DEPTH.
        let mut deep = b"\x80\x02}X\x01\x00\x00\x00d".to_vec();
        deep.extend(std::iter::repeat_n(b']', MAX_DEPTH + 2));
        deep.extend(std::iter::repeat_n(b'a', MAX_DEPTH + 1));
        deep.extend(b"s.");
        let e = decode_pickle_session(&b64(&deep), now).unwrap_err().to_string();
        assert!(e.contains("deeper"), "{e}");
        // Far deeper, as a hostile store writer could: refused before serde-pickle recurses.
        let mut deeper = b"\x80\x02}X\x01\x00\x00\x00d".to_vec();
        deeper.extend(std::iter::repeat_n(b']', 100_000));
        deeper.extend(std::iter::repeat_n(b'a', 99_999));
        deeper.extend(b"s.");
        assert!(decode_pickle_session(&b64(&deeper), now).is_err());
        for garbage in [&b""[..], b"!!", b"AAAA", &b64(b"\x80\x02")] {
            assert!(decode_pickle_session(garbage, now).is_err());
        }
        let huge = b64(&vec![b'N'; MAX_PICKLE + 1]);
        assert!(decode_pickle_session(&huge, now).unwrap_err().to_string().contains("256 KiB"));
    }
}

#[cfg(test)]
mod seeds {
    use super::*;

    /// The fuzz target's seeds, written by Python's own pickler (protocols 2 and 5: frames,
    /// memo references, a dict with an int key): the opcode pass accepts what CPython writes.
    #[test]
    fn cpython_pickles_of_every_protocol_decode() {
        let now = SystemTime::now();
        for pickled in [
            &include_bytes!("../../../../fuzz/corpus/beaker_payload/pickle2_session")[..],
            include_bytes!("../../../../fuzz/corpus/beaker_payload/pickle5_session"),
            include_bytes!("../../../../fuzz/corpus/beaker_payload/shared_refs"),
        ] {
            let r = decode_pickle_session(&STANDARD.encode(pickled).into_bytes(), now).unwrap();
            assert!(!r.entries.is_empty());
        }
        let text = super::super::payload::unpickle_text(include_bytes!(
            "../../../../fuzz/corpus/beaker_payload/container_text"
        ))
        .unwrap();
        let r = decode_pickle_session(&text, now).unwrap();
        assert_eq!(DataSerializer::decode::<String>(&r.entries["user"]).unwrap(), "alice");
    }
}
