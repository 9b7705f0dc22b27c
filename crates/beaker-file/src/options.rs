//! [`FileOptions`]: how a [`FileStore`](crate::FileStore) writes.

use std::sync::Arc;
use std::time::Duration;

use beaker_core::{Clock, SystemClock};

/// Options of a [`FileStore`](crate::FileStore).
///
/// ```
/// use beaker_core::ManualClock;
/// use beaker_file::FileOptions;
///
/// let clock = ManualClock::new();
/// let options = FileOptions::new().fsync(true).clock(clock.clone());
/// assert!(options.fsync_enabled());
/// ```
#[derive(Debug, Clone)]
pub struct FileOptions {
    fsync: bool,
    clock: Arc<dyn Clock>,
    timeout: Option<Duration>,
}

impl Default for FileOptions {
    fn default() -> Self {
        Self::new()
    }
}

impl FileOptions {
    /// Defaults: no fsync, the system clock, no time limit.
    pub fn new() -> Self {
        FileOptions { fsync: false, clock: Arc::new(SystemClock), timeout: None }
    }

    /// A time limit for each session operation (the session `store_timeout`): past it, the
    /// call fails with [`StoreError::Unavailable`](beaker_core::StoreError::Unavailable)
    /// instead of waiting on a hung disk or network file system.
    pub fn timeout(mut self, limit: Duration) -> Self {
        self.timeout = Some(limit);
        self
    }

    /// The time limit of each session operation, if any.
    pub fn timeout_limit(&self) -> Option<Duration> {
        self.timeout
    }

    /// Flush every written file to the disk before it is renamed into place (default off).
    ///
    /// Off, a write is still atomic for readers, but a power loss may lose the last writes.
    /// On, every session save costs a disk flush.
    pub fn fsync(mut self, on: bool) -> Self {
        self.fsync = on;
        self
    }

    /// The clock expiry is judged by (default: the system clock); tests inject a
    /// [`ManualClock`](beaker_core::ManualClock).
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Whether written files are flushed to the disk.
    pub fn fsync_enabled(&self) -> bool {
        self.fsync
    }

    pub(crate) fn clock_ref(&self) -> &Arc<dyn Clock> {
        &self.clock
    }
}
