//! [`GenerationHints`]: the namespace generations a shared backend saw last.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

/// Namespaces whose generation is remembered, at most (the map is emptied beyond it).
const MAX_NAMESPACES: usize = 4096;

/// The generation of each namespace as a backend last saw it, shared by its clones.
///
/// For backends that implement `clear` by moving a per-namespace generation (a counter, an
/// object's version): knowing the generation lets a `get` read it and the entry under it
/// at once. It is only ever a guess, to be checked against the stored generation in the
/// same exchange. Bounded: past 4,096 namespaces the map is emptied, which costs the next
/// call of each namespace one more exchange and nothing else.
#[derive(Debug, Clone)]
pub struct GenerationHints<G> {
    seen: Arc<Mutex<HashMap<String, G>>>,
}

impl<G> Default for GenerationHints<G> {
    fn default() -> Self {
        GenerationHints { seen: Arc::default() }
    }
}

impl<G: Clone> GenerationHints<G> {
    /// An empty map.
    pub fn new() -> Self {
        Self::default()
    }

    /// Remembers `generation` as `namespace`'s.
    pub fn remember(&self, namespace: &str, generation: G) {
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        if seen.len() >= MAX_NAMESPACES && !seen.contains_key(namespace) {
            seen.clear();
        }
        seen.insert(namespace.to_owned(), generation);
    }

    /// The generation last remembered for `namespace`, if any.
    pub fn guess(&self, namespace: &str) -> Option<G> {
        self.seen.lock().unwrap_or_else(PoisonError::into_inner).get(namespace).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_guess_is_the_last_generation_remembered_and_clones_share_it() {
        let hints = GenerationHints::new();
        assert_eq!(hints.guess("ns"), None);
        hints.remember("ns", 3_u64);
        let clone = hints.clone();
        clone.remember("ns", 4);
        assert_eq!(hints.guess("ns"), Some(4));
        assert_eq!(hints.guess("other"), None);
    }

    #[test]
    fn the_map_is_bounded() {
        let hints = GenerationHints::new();
        for i in 0..MAX_NAMESPACES {
            hints.remember(&format!("ns{i}"), i);
        }
        assert_eq!(hints.guess("ns0"), Some(0));
        // A known namespace does not empty the map; a new one past the bound does.
        hints.remember("ns0", 7);
        assert_eq!(hints.guess("ns1"), Some(1));
        hints.remember("one more", 1);
        assert_eq!(hints.guess("ns1"), None);
        assert_eq!(hints.guess("ns0"), None);
        assert_eq!(hints.guess("one more"), Some(1));
    }
}
