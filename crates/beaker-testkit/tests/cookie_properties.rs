//! Property tests of the cookie codec: any cookie value either round-trips or is rejected,
//! never misread; arbitrary cookie headers never panic and are never adopted.

use beaker_core::__private::Keys;
use beaker_core::{CookieStore, MemoryStore, Secret, SessionConfig, SessionManager};
use proptest::prelude::*;

fn keys() -> Keys {
    Keys::new(&[Secret::new(b"property secret, 16+ bytes".to_vec()).unwrap()]).unwrap()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn signed_values_round_trip_and_mutations_are_rejected(value in "[ -~]{0,64}", pos in any::<usize>(), byte in 33u8..127) {
        let k = keys();
        let signed = k.sign("c", &value);
        prop_assert_eq!(k.verify("c", &signed), Some((value.as_str(), false)));
        let mut mutated = signed.clone().into_bytes();
        let i = pos % mutated.len();
        mutated[i] = byte;
        let mutated = String::from_utf8(mutated).unwrap();
        if mutated != signed {
            // Either rejected, or (when the mutation only moved the split point inside the
            // value) never a different value with a valid signature.
            let verdict = k.verify("c", &mutated);
            prop_assert!(verdict.is_none(), "mutated cookie accepted: {:?}", verdict);
        }
    }

    #[test]
    fn sealed_payloads_round_trip_and_mutations_are_rejected(payload in proptest::collection::vec(any::<u8>(), 0..256), pos in any::<usize>()) {
        let k = keys();
        let sealed = k.encrypt("c", &payload);
        prop_assert_eq!(k.decrypt("c", &sealed), Some((payload.clone(), false)));
        let mut bytes = sealed.clone().into_bytes();
        let i = pos % bytes.len();
        bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
        let mutated = String::from_utf8(bytes).unwrap();
        prop_assert!(k.decrypt("c", &mutated).is_none());
    }

    #[test]
    fn arbitrary_cookie_headers_are_never_adopted(header in "\\PC{0,200}", value in "[A-Za-z0-9._~%+/=-]{0,120}") {
        let config = SessionConfig::new().with_secret("property secret, 16+ bytes").unwrap();
        let server = SessionManager::builder(config.clone()).store(MemoryStore::new()).build().unwrap();
        let cookie = SessionManager::builder(config).cookie_store(CookieStore).build().unwrap();
        let ours = format!("beaker.session.id={value}");
        runtime().block_on(async {
            for m in [&server, &cookie] {
                for h in [header.as_str(), ours.as_str()] {
                    let s = m.start([h]);
                    prop_assert!(s.is_new().await.unwrap(), "adopted {:?}", h);
                    prop_assert!(s.keys().await.unwrap().is_empty());
                    prop_assert!(m.finish(&s).await.unwrap().is_empty());
                }
            }
            Ok(())
        })?;
    }
}
