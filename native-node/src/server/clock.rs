//! The real clock, converted to engine time at this edge.
//!
//! Engine [`Instant`]s of a native node are microseconds since the Unix epoch, so instants the
//! engine persists (hint creation, RING_DELAY deadlines, version timestamps) keep their meaning
//! across restarts. Within one process the clock is monotonic: the wall clock is read once at
//! start and advanced by `std::time::Instant`.

use ringside_core::time::Instant;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A monotonic clock in engine time.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    base_micros: u64,
    start: std::time::Instant,
}

impl Clock {
    /// Starts the clock at the current wall-clock time.
    pub fn new() -> Clock {
        let base = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
        Clock { base_micros: base.as_micros() as u64, start: std::time::Instant::now() }
    }

    /// Now, in engine time.
    pub fn now(&self) -> Instant {
        Instant(self.base_micros + self.start.elapsed().as_micros() as u64)
    }

    /// How long from now until `at` (zero when it has passed).
    pub fn until(&self, at: Instant) -> Duration {
        Duration::from_micros(at.0.saturating_sub(self.now().0))
    }
}

impl Default for Clock {
    fn default() -> Self {
        Clock::new()
    }
}
