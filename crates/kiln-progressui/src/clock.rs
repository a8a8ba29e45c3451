//! Where the displays read the current time from.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

/// A source of the current time.
///
/// The displays read the time to show how long running steps have been running and to limit
/// how often they redraw. Tests give them a [`ManualClock`] so that every frame is
/// reproducible; the binary gives them a [`SystemClock`].
pub trait Clock: Send + Sync {
    /// The current time.
    fn now(&self) -> SystemTime;
}

/// The system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// A clock that only moves when told to, for tests.
///
/// Clones share the same time, so a test can keep one clone and hand another to a display.
#[derive(Debug, Clone)]
pub struct ManualClock {
    now: Arc<Mutex<SystemTime>>,
}

impl ManualClock {
    /// A clock standing at `start`.
    pub fn new(start: SystemTime) -> ManualClock {
        ManualClock {
            now: Arc::new(Mutex::new(start)),
        }
    }

    /// Sets the time.
    pub fn set(&self, now: SystemTime) {
        if let Ok(mut guard) = self.now.lock() {
            *guard = now;
        }
    }

    /// Moves the time forward by `by`.
    pub fn advance(&self, by: Duration) {
        if let Ok(mut guard) = self.now.lock() {
            *guard += by;
        }
    }
}

impl Clock for ManualClock {
    fn now(&self) -> SystemTime {
        self.now
            .lock()
            .map(|guard| *guard)
            .unwrap_or(SystemTime::UNIX_EPOCH)
    }
}

impl<T: Clock + ?Sized> Clock for Arc<T> {
    fn now(&self) -> SystemTime {
        (**self).now()
    }
}
