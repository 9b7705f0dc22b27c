//! Stored-record decoding for every format: whole records, cache entries, and tagged
//! values through each serializer. Errors are fine; panics and unbounded allocations are not.
#![no_main]

use beaker_core::cache::CacheEntry;
use beaker_core::DataSerializer;
use beaker_core::store::Record;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(r) = Record::from_bytes(data) {
        assert_eq!(Record::from_bytes(&r.to_bytes()).unwrap(), r);
        // What a session read does with each stored value.
        for v in r.entries.values() {
            let _ = DataSerializer::decode::<serde_json::Value>(v);
            let _ = DataSerializer::decode::<i64>(v);
            let _ = DataSerializer::decode::<String>(v);
            let _ = DataSerializer::decode::<Vec<String>>(v);
        }
    }
    if let Ok(e) = CacheEntry::from_bytes(data) {
        assert_eq!(CacheEntry::from_bytes(&e.to_bytes()).unwrap(), e);
    }
    let _ = DataSerializer::decode::<serde_json::Value>(data);
    let _ = DataSerializer::decode::<Vec<String>>(data);
    let _ = DataSerializer::decode::<(u64, String, Option<bool>)>(data);
    for tag in [b'j', b'm', b'b'] {
        let mut tagged = vec![tag];
        tagged.extend_from_slice(data);
        let _ = DataSerializer::decode::<std::collections::BTreeMap<String, i64>>(&tagged);
        let _ = DataSerializer::decode::<Vec<String>>(&tagged);
    }
});
