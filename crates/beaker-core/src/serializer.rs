//! Value serializers. Every stored value starts with a one-byte format tag, so a value
//! written by one serializer is still read correctly after the configured serializer
//! changes, and formats can evolve without breaking old sessions.

use std::fmt;
use std::str::FromStr;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{BoxError, ConfigError};

const TAG_JSON: u8 = b'j';
const TAG_MSGPACK: u8 = b'm';
const TAG_BINCODE: u8 = b'b';

/// The serializer for session and cache values (Beaker's `data_serializer`).
///
/// A closed set rather than a trait: stored values are tagged with their format, and a
/// reader must be able to decode every tag it may meet, whatever the writer chose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum DataSerializer {
    /// JSON (the default): safe, human-readable, readable by Beaker's `json` serializer.
    #[default]
    Json,
    /// MessagePack: compact, schema-less.
    MessagePack,
    /// bincode 2 (feature `bincode`). Compact and fast, but unmaintained upstream and not
    /// self-describing: the reader must ask for exactly the type that was written.
    #[cfg(feature = "bincode")]
    #[cfg_attr(docsrs, doc(cfg(feature = "bincode")))]
    Bincode,
}

/// An output buffer holding `tag`, with room for a small value: growing from the tag's
/// one byte would reallocate two or three times for a typical session value.
fn tagged(tag: u8) -> Vec<u8> {
    let mut out = Vec::with_capacity(32);
    out.push(tag);
    out
}

impl DataSerializer {
    /// The names accepted in configuration.
    pub const ACCEPTED: &'static str = "json, msgpack, bincode (with the `bincode` feature)";

    /// Encodes `value`, tagged with this serializer's format.
    pub fn encode<T: Serialize + ?Sized>(&self, value: &T) -> Result<Vec<u8>, BoxError> {
        match self {
            DataSerializer::Json => {
                let mut out = tagged(TAG_JSON);
                serde_json::to_writer(&mut out, value)?;
                Ok(out)
            }
            DataSerializer::MessagePack => {
                let mut out = tagged(TAG_MSGPACK);
                rmp_serde::encode::write_named(&mut out, value)?;
                Ok(out)
            }
            #[cfg(feature = "bincode")]
            DataSerializer::Bincode => {
                let mut out = vec![TAG_BINCODE];
                out.extend(bincode::serde::encode_to_vec(value, bincode::config::standard())?);
                Ok(out)
            }
        }
    }

    /// Decodes a tagged value, whatever serializer wrote it.
    pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, BoxError> {
        let (tag, body) = bytes.split_first().ok_or("empty value")?;
        match *tag {
            TAG_JSON => Ok(serde_json::from_slice(body)?),
            TAG_MSGPACK => Ok(rmp_serde::from_slice(body)?),
            #[cfg(feature = "bincode")]
            TAG_BINCODE => decode_bincode(body),
            other => Err(format!("unknown serializer tag {other:#04x}").into()),
        }
    }

    /// Whether `bytes` carries a tag this build can decode.
    pub fn is_known_tag(bytes: &[u8]) -> bool {
        matches!(bytes.first(), Some(&TAG_JSON | &TAG_MSGPACK))
            || (cfg!(feature = "bincode") && bytes.first() == Some(&TAG_BINCODE))
    }
}

/// Decodes a bincode body under a byte limit that grows with the input.
///
/// bincode allocates a string's or a byte vector's declared length before reading it, so
/// without a limit a few garbage bytes can ask for an allocation of any size (found by the
/// `record_decode` fuzz target). A decoder claims at most 16 bytes of memory per input byte
/// (an `u128` in one varint byte), so 16 × the input's size class bounds every valid value.
#[cfg(feature = "bincode")]
fn decode_bincode<T: DeserializeOwned>(body: &[u8]) -> Result<T, BoxError> {
    fn with_limit<T: DeserializeOwned, const LIMIT: usize>(body: &[u8]) -> Result<T, BoxError> {
        let config = bincode::config::standard().with_limit::<LIMIT>();
        let (v, used) = bincode::serde::decode_from_slice(body, config)?;
        if used != body.len() {
            return Err("trailing bytes after a bincode value".into());
        }
        Ok(v)
    }
    const KIB: usize = 1024;
    const MIB: usize = 1024 * KIB;
    match body.len() {
        n if n <= 64 * KIB => with_limit::<T, { 16 * 64 * KIB }>(body),
        n if n <= 4 * MIB => with_limit::<T, { 16 * 4 * MIB }>(body),
        _ => with_limit::<T, { 1024 * MIB }>(body),
    }
}

impl FromStr for DataSerializer {
    type Err = ConfigError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "json" => Ok(DataSerializer::Json),
            "msgpack" | "messagepack" => Ok(DataSerializer::MessagePack),
            #[cfg(feature = "bincode")]
            "bincode" => Ok(DataSerializer::Bincode),
            _ => Err(ConfigError::invalid("session.data_serializer", s, Self::ACCEPTED)),
        }
    }
}

impl fmt::Display for DataSerializer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DataSerializer::Json => "json",
            DataSerializer::MessagePack => "msgpack",
            #[cfg(feature = "bincode")]
            DataSerializer::Bincode => "bincode",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Cart {
        user: String,
        items: Vec<(u32, String)>,
        total: f64,
        note: Option<String>,
    }

    fn cart() -> Cart {
        Cart { user: "zoë".into(), items: vec![(1, "tea".into()), (2, "scone".into())], total: 4.5, note: None }
    }

    fn all() -> Vec<DataSerializer> {
        vec![
            DataSerializer::Json,
            DataSerializer::MessagePack,
            #[cfg(feature = "bincode")]
            DataSerializer::Bincode,
        ]
    }

    #[test]
    fn struct_round_trip_through_each_serializer() {
        for s in all() {
            let bytes = s.encode(&cart()).unwrap();
            let back: Cart = DataSerializer::decode(&bytes).unwrap();
            assert_eq!(back, cart(), "{s}");
        }
    }

    #[test]
    fn values_stay_readable_after_the_serializer_changes() {
        let by_json = DataSerializer::Json.encode(&cart()).unwrap();
        let by_msgpack = DataSerializer::MessagePack.encode(&cart()).unwrap();
        assert_ne!(by_json, by_msgpack);
        assert_eq!(DataSerializer::decode::<Cart>(&by_json).unwrap(), cart());
        assert_eq!(DataSerializer::decode::<Cart>(&by_msgpack).unwrap(), cart());
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for bad in [&b""[..], b"x{}", b"j{", b"m\xc1", b"b\xff\xff\xff\xff\xff"] {
            assert!(DataSerializer::decode::<Cart>(bad).is_err(), "{bad:?}");
        }
        assert!(!DataSerializer::is_known_tag(b"x"));
        assert!(DataSerializer::is_known_tag(b"j1"));
    }

    #[cfg(feature = "bincode")]
    #[test]
    fn bincode_lengths_past_the_input_are_refused_before_allocating() {
        // Found by the `record_decode` fuzz target: a map whose first key claims a length
        // near u64::MAX made bincode allocate (and abort) before reading it.
        let crash = b"bj\xfd\x00\x00\x00\x00\x00\xa5\xdd\xd3\xcc\x7f";
        assert!(DataSerializer::decode::<std::collections::BTreeMap<String, i64>>(crash).is_err());
        let huge_string = [&[TAG_BINCODE, 0xfc][..], &u32::MAX.to_le_bytes()].concat();
        assert!(DataSerializer::decode::<String>(&huge_string).is_err());
        let long = "x".repeat(200_000);
        let bytes = DataSerializer::Bincode.encode(&long).unwrap();
        assert_eq!(DataSerializer::decode::<String>(&bytes).unwrap(), long);
    }

    #[test]
    fn names_parse() {
        assert_eq!("JSON".parse::<DataSerializer>().unwrap(), DataSerializer::Json);
        assert_eq!("msgpack".parse::<DataSerializer>().unwrap(), DataSerializer::MessagePack);
        let err = "pickle".parse::<DataSerializer>().unwrap_err().to_string();
        assert!(err.contains("session.data_serializer") && err.contains("json"), "{err}");
    }
}
