//! [`Backend`]: where a manager keeps its sessions, and the store calls the engine makes.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tracing::Instrument as _;

use crate::error::StoreError;
use crate::id::{SessionHandle, StoreKey};
use crate::memory::MemoryStore;
use crate::store::{Changes, Listed, Lookup, Record, SessionStore};
use crate::telemetry::StoreErrorCounters;

/// The manager's backend. The built-in [`MemoryStore`] passed by value is a variant of its
/// own: its operations are plain function calls (no boxed future, no span), every
/// request that reads or changes a session making one.
#[derive(Debug)]
pub(crate) enum Backend {
    /// The built-in in-process store.
    Memory(MemoryStore),
    /// Any other server-side store (or a memory store behind `shared_store`), with its
    /// failed-call counters (registered when the manager is built).
    Store(Arc<dyn SessionStore>, StoreErrorCounters),
    /// Cookie-only sessions: no store at all.
    Cookie,
}

fn no_store() -> StoreError {
    StoreError::Backend { message: "cookie-only sessions have no store".into(), source: None }
}

impl Backend {
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Backend::Memory(_) => "memory",
            Backend::Store(s, _) => s.name(),
            Backend::Cookie => "cookie",
        }
    }

    pub(crate) fn is_cookie(&self) -> bool {
        matches!(self, Backend::Cookie)
    }

    /// Runs one store call inside a span naming the store and operation, and logs the
    /// outcome (never the id or the data).
    async fn call<T>(
        &self,
        op: &'static str,
        fut: impl std::future::Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        // The span only when some subscriber may want debug spans at all: building and
        // entering a disabled span still costs a few hundred instructions per call.
        let result = if tracing::level_enabled!(tracing::Level::DEBUG) {
            fut.instrument(tracing::debug_span!("beaker.store", store = self.name(), op)).await
        } else {
            fut.await
        };
        match &result {
            Ok(_) => tracing::trace!(store = self.name(), op, "ok"),
            Err(e) => {
                if let Backend::Store(_, errors) = self {
                    errors.count(op);
                }
                tracing::warn!(store = self.name(), op, error = %e, "store call failed")
            }
        }
        result
    }

    pub(crate) async fn lookup(&self, key: &StoreKey) -> Result<Lookup, StoreError> {
        match self {
            Backend::Memory(m) => Ok(m.lookup_now(key)),
            Backend::Store(s, _) => self.call("lookup", s.lookup(key)).await,
            Backend::Cookie => Err(no_store()),
        }
    }

    pub(crate) async fn create(&self, key: &StoreKey, record: &Record) -> Result<bool, StoreError> {
        match self {
            Backend::Memory(m) => m.create_now(key, record),
            Backend::Store(s, _) => self.call("create", s.create(key, record)).await,
            Backend::Cookie => Err(no_store()),
        }
    }

    pub(crate) async fn apply(&self, key: &StoreKey, changes: &Changes) -> Result<bool, StoreError> {
        match self {
            Backend::Memory(m) => Ok(m.apply_now(key, changes)),
            Backend::Store(s, _) => self.call("apply", s.apply(key, changes)).await,
            Backend::Cookie => Err(no_store()),
        }
    }

    pub(crate) async fn touch(
        &self,
        key: &StoreKey,
        accessed: SystemTime,
        expires: Option<SystemTime>,
    ) -> Result<bool, StoreError> {
        match self {
            Backend::Memory(m) => Ok(m.touch_now(key, accessed, expires)),
            Backend::Store(s, _) => self.call("touch", s.touch(key, accessed, expires)).await,
            Backend::Cookie => Err(no_store()),
        }
    }

    pub(crate) async fn end(&self, key: &StoreKey, retire_for: Duration) -> Result<(), StoreError> {
        match self {
            Backend::Memory(m) => {
                m.end_now(key, retire_for);
                Ok(())
            }
            Backend::Store(s, _) => self.call("end", s.end(key, retire_for)).await,
            Backend::Cookie => Ok(()),
        }
    }

    pub(crate) async fn rename(
        &self,
        from: &StoreKey,
        to: &StoreKey,
        changes: &Changes,
        retire_for: Duration,
    ) -> Result<bool, StoreError> {
        match self {
            Backend::Memory(m) => m.rename_now(from, to, changes, retire_for),
            Backend::Store(s, _) => self.call("rename", s.rename(from, to, changes, retire_for)).await,
            Backend::Cookie => Err(no_store()),
        }
    }

    pub(crate) async fn sessions_of(&self, principal: &str) -> Result<Vec<Listed>, StoreError> {
        match self {
            Backend::Memory(m) => Ok(m.sessions_of_now(principal)),
            Backend::Store(s, _) => self.call("sessions_of", s.sessions_of(principal)).await,
            Backend::Cookie => Err(StoreError::unsupported("cookie", "a principal index")),
        }
    }

    pub(crate) async fn find(&self, handle: &SessionHandle) -> Result<Option<StoreKey>, StoreError> {
        match self {
            Backend::Memory(m) => m.find(handle).await,
            Backend::Store(s, _) => self.call("find", s.find(handle)).await,
            Backend::Cookie => Err(StoreError::unsupported("cookie", "finding sessions")),
        }
    }

    /// The store as a trait object, for tools that need more than the engine's calls.
    pub(crate) fn store(&self) -> Option<Arc<dyn SessionStore>> {
        match self {
            Backend::Memory(m) => Some(Arc::new(m.clone())),
            Backend::Store(s, _) => Some(s.clone()),
            Backend::Cookie => None,
        }
    }

    pub(crate) async fn cleanup(&self) -> Result<u64, StoreError> {
        match self {
            Backend::Memory(m) => m.cleanup().await,
            Backend::Store(s, _) => self.call("cleanup", s.cleanup()).await,
            Backend::Cookie => Ok(0),
        }
    }
}
