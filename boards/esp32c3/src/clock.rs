//! A microsecond clock for wirecall's deadlines and `slow`: esp-hal's system timer.

use wirecall::{Clock, Instant};

/// Time since boot, from esp-hal's `time::Instant` (the 52-bit SYSTIMER, in
/// microseconds; it wraps after more than seven years).
///
/// Valid only after `esp_hal::init`, which is why [`Uptime::new`] takes the
/// peripherals' proof of it.
#[derive(Clone, Copy)]
pub struct Uptime {
    _private: (),
}

impl Uptime {
    /// The clock; `_init` shows that `esp_hal::init` has run.
    pub fn new(_init: &esp_hal::peripherals::Peripherals) -> Self {
        Uptime { _private: () }
    }
}

impl Clock for Uptime {
    fn now(&self) -> Instant {
        Instant::from_micros(esp_hal::time::Instant::now().duration_since_epoch().as_micros())
    }
}
