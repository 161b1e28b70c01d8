//! A microsecond clock from the RP2040's 64-bit timer, for wirecall's deadlines and `slow`.

use rp2040_hal::Timer;
use wirecall::{Clock, Instant};

/// The clock: the timer counts microseconds from reset (the watchdog tick
/// runs it at 1 MHz off the 12 MHz crystal) and would wrap after 584 000 years.
#[derive(Clone, Copy)]
pub struct Micros {
    timer: Timer,
}

impl Micros {
    /// A clock over the running timer.
    pub fn new(timer: Timer) -> Self {
        Micros { timer }
    }
}

impl Clock for Micros {
    fn now(&self) -> Instant {
        Instant::from_micros(self.timer.get_counter().ticks())
    }
}
