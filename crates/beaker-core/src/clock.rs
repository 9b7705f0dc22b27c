//! Time, injectable so that expiry can be tested without sleeping.

use std::fmt::Debug;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A source of wall-clock time for expiry decisions.
pub trait Clock: Send + Sync + Debug + 'static {
    /// The current time.
    fn now(&self) -> SystemTime;

    /// Milliseconds since the Unix epoch, possibly a few milliseconds behind
    /// [`now`](Self::now). Memory cache regions judge freshness with it on every hit,
    /// where a system call would cost more than the whole lookup. The default is exact.
    fn now_millis_coarse(&self) -> u64 {
        to_millis(self.now())
    }
}

/// The system clock.
///
/// Its [`now_millis_coarse`](Clock::now_millis_coarse) reads a process-wide value that
/// one background thread (`beaker-clock`, started on first use) refreshes every
/// 4 ms; if that thread cannot be started, it reads the clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

/// How often the coarse system time behind [`SystemClock::now_millis_coarse`] is refreshed.
pub(crate) const COARSE_RESOLUTION: Duration = Duration::from_millis(4);

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }

    fn now_millis_coarse(&self) -> u64 {
        coarse::now_ms()
    }
}

/// Starts the thread behind [`SystemClock`]'s coarse reading (once per process); whether it
/// runs. While it does, [`system_coarse_ticking_ms`] is that reading.
pub(crate) fn system_coarse_start() -> bool {
    coarse::start()
}

/// [`SystemClock`]'s coarse reading, for callers that know they use the system clock and
/// that [`system_coarse_start`] returned `true`: one load, no check.
#[inline]
pub(crate) fn system_coarse_ticking_ms() -> u64 {
    coarse::ticking_ms()
}

mod coarse {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::OnceLock;
    use std::time::SystemTime;

    use super::{to_millis, COARSE_RESOLUTION};

    static NOW_MS: AtomicU64 = AtomicU64::new(0);
    /// Whether the refreshing thread runs.
    static TICKER: OnceLock<bool> = OnceLock::new();

    pub(super) fn start() -> bool {
        *TICKER.get_or_init(|| {
            NOW_MS.store(to_millis(SystemTime::now()), Ordering::Relaxed);
            std::thread::Builder::new()
                .name("beaker-clock".into())
                .spawn(|| loop {
                    std::thread::sleep(COARSE_RESOLUTION);
                    NOW_MS.store(to_millis(SystemTime::now()), Ordering::Relaxed);
                })
                .is_ok()
        })
    }

    #[inline]
    pub(super) fn ticking_ms() -> u64 {
        NOW_MS.load(Ordering::Relaxed)
    }

    #[inline]
    pub(super) fn now_ms() -> u64 {
        if start() {
            ticking_ms()
        } else {
            to_millis(SystemTime::now())
        }
    }
}

/// A clock that moves only when told to; for tests of timeouts.
#[derive(Debug, Clone)]
pub struct ManualClock(Arc<AtomicU64>);

impl ManualClock {
    /// A clock at the current system time (whole milliseconds).
    pub fn new() -> Self {
        ManualClock(Arc::new(AtomicU64::new(to_millis(SystemTime::now()))))
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: Duration) {
        self.0.fetch_add(by.as_millis() as u64, Ordering::SeqCst);
    }
}

impl Default for ManualClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for ManualClock {
    fn now(&self) -> SystemTime {
        from_millis(self.0.load(Ordering::SeqCst))
    }
}

/// Milliseconds since the Unix epoch (0 for times before it).
pub(crate) fn to_millis(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// The time `ms` milliseconds after the Unix epoch.
pub(crate) fn from_millis(ms: u64) -> SystemTime {
    // Saturated: a stored or decoded value may be anything, and some platforms' clocks
    // end long before `u64::MAX` milliseconds.
    saturating_add(UNIX_EPOCH, Duration::from_millis(ms))
}

/// The latest time beaker computes with (the end of the year 9999): sums of a time and a
/// duration saturate here instead of overflowing, so `Duration::MAX` as a timeout means
/// "never" and every store and cookie can still represent the result.
pub(crate) fn far_future() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(253_402_300_799)
}

/// `t + d`, saturating at [`far_future`].
pub(crate) fn saturating_add(t: SystemTime, d: Duration) -> SystemTime {
    t.checked_add(d).map_or_else(far_future, |sum| sum.min(far_future()))
}
