//! The file a session leaves behind when it ends: a tombstone saying until when its key
//! counts as retired. It holds no data and names no other key.

use std::time::SystemTime;

use crate::fsops::{from_millis, to_millis};

/// Never the start of a record (`BKR1`), so the two cannot be mistaken for each other.
const MAGIC: &[u8] = b"BKT1";

/// The bytes of a tombstone that lapses at `until`.
pub(crate) fn encode(until: SystemTime) -> Vec<u8> {
    let mut out = Vec::with_capacity(MAGIC.len() + 8);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&to_millis(until).to_be_bytes());
    out
}

/// When the tombstone in `bytes` lapses; `None` when `bytes` is not a tombstone.
pub(crate) fn decode(bytes: &[u8]) -> Option<SystemTime> {
    let rest = bytes.strip_prefix(MAGIC)?;
    let ms: [u8; 8] = rest.try_into().ok()?;
    Some(from_millis(u64::from_be_bytes(ms)))
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;

    #[test]
    fn round_trip_and_records_are_not_tombstones() {
        let t = UNIX_EPOCH + Duration::from_millis(1_700_000_000_123);
        assert_eq!(decode(&encode(t)), Some(t));
        assert_eq!(decode(b"BKR1"), None);
        assert_eq!(decode(b"BKT1short"), None);
        let mut long = encode(t);
        long.push(0);
        assert_eq!(decode(&long), None);
    }
}
