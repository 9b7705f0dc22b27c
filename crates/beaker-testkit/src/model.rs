//! A model check for whole session managers: any sequence of session operations spread
//! over requests must leave the same observable state as a plain map.
//!
//! ```
//! use beaker_core::{MemoryStore, SessionConfig, SessionManager};
//! use beaker_testkit::model::{check_model, Op};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let config = SessionConfig::new().with_secret("model check secret, 16+ bytes").unwrap();
//! let manager = SessionManager::builder(config).store(MemoryStore::new()).build().unwrap();
//! let requests = vec![vec![Op::Insert(0, 7)], vec![Op::Regenerate, Op::Get(0)], vec![Op::Invalidate]];
//! check_model(&manager, &requests).await.unwrap();
//! # }
//! ```

use std::collections::BTreeMap;

use beaker_core::SessionManager;
use proptest::prelude::*;

/// One operation on a session; keys are small numbers so that sequences collide often.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// Insert `value` under key `k{0}`.
    Insert(u8, i64),
    /// Remove key `k{0}`.
    Remove(u8),
    /// Read key `k{0}` and compare with the model.
    Get(u8),
    /// Clear every key.
    Clear,
    /// Compare the key list with the model.
    Keys,
    /// Regenerate the id.
    Regenerate,
    /// Invalidate the session.
    Invalidate,
}

/// A proptest strategy for one request's operations.
pub fn request_strategy() -> impl Strategy<Value = Vec<Op>> {
    let op = prop_oneof![
        4 => (0u8..6, any::<i64>()).prop_map(|(k, v)| Op::Insert(k, v)),
        2 => (0u8..6).prop_map(Op::Remove),
        3 => (0u8..6).prop_map(Op::Get),
        1 => Just(Op::Clear),
        2 => Just(Op::Keys),
        1 => Just(Op::Regenerate),
        1 => Just(Op::Invalidate),
    ];
    proptest::collection::vec(op, 0..6)
}

/// A proptest strategy for a sequence of requests.
pub fn requests_strategy() -> impl Strategy<Value = Vec<Vec<Op>>> {
    proptest::collection::vec(request_strategy(), 1..8)
}

fn key(k: u8) -> String {
    format!("k{k}")
}

/// Plays `requests` through `manager` like a browser (keeping the cookie it is given) and
/// checks every read against a map model. Returns a description of the first divergence.
pub async fn check_model(manager: &SessionManager, requests: &[Vec<Op>]) -> Result<(), String> {
    let mut model: BTreeMap<String, i64> = BTreeMap::new();
    let mut cookie: Option<String> = None;
    for (n, ops) in requests.iter().enumerate() {
        let session = manager.start(cookie.as_deref());
        for op in ops {
            let err = |e: beaker_core::Error| format!("request {n}, {op:?}: {e}");
            match op {
                Op::Insert(k, v) => {
                    session.insert(&key(*k), v).await.map_err(err)?;
                    model.insert(key(*k), *v);
                }
                Op::Remove(k) => {
                    let was = session.remove(&key(*k)).await.map_err(err)?;
                    if was != model.remove(&key(*k)).is_some() {
                        return Err(format!("request {n}: remove({k}) said {was}, model disagrees"));
                    }
                }
                Op::Get(k) => {
                    let got: Option<i64> = session.get(&key(*k)).await.map_err(err)?;
                    if got != model.get(&key(*k)).copied() {
                        return Err(format!("request {n}: get({k}) = {got:?}, model has {:?}", model.get(&key(*k))));
                    }
                }
                Op::Clear => {
                    session.clear().await.map_err(err)?;
                    model.clear();
                }
                Op::Keys => {
                    let keys = session.keys().await.map_err(err)?;
                    let expected: Vec<String> = model.keys().cloned().collect();
                    if keys != expected {
                        return Err(format!("request {n}: keys {keys:?}, model has {expected:?}"));
                    }
                }
                Op::Regenerate => session.regenerate_id().await.map_err(err)?,
                Op::Invalidate => {
                    session.invalidate().await.map_err(err)?;
                    model.clear();
                }
            }
        }
        let set_cookies = manager.finish(&session).await.map_err(|e| format!("request {n}: finish: {e}"))?;
        for c in set_cookies {
            let pair = c.as_str().split(';').next().unwrap_or_default().to_owned();
            cookie = if c.is_removal() { None } else { Some(pair) };
        }
    }
    // A last read-only request sees exactly the model.
    let session = manager.start(cookie.as_deref());
    let keys = session.keys().await.map_err(|e| format!("final keys: {e}"))?;
    let expected: Vec<String> = model.keys().cloned().collect();
    if keys != expected {
        return Err(format!("final state: keys {keys:?}, model has {expected:?}"));
    }
    for (k, v) in &model {
        let got: Option<i64> = session.get(k).await.map_err(|e| format!("final get: {e}"))?;
        if got != Some(*v) {
            return Err(format!("final state: {k} = {got:?}, model has {v}"));
        }
    }
    Ok(())
}
