//! A millisecond clock from SysTick, for wirecall's deadlines and `slow`.

use core::sync::atomic::{AtomicU32, Ordering};

use cortex_m::peripheral::SYST;
use cortex_m::peripheral::syst::SystClkSource;
use cortex_m_rt::exception;
use wirecall::{Clock, Instant};

/// The core clock QEMU gives the LM3S6965 after reset: 12 MHz.
const CORE_HZ: u32 = 12_000_000;

/// Milliseconds since [`Ticks::start`]. Only the SysTick handler writes it, so a
/// plain load and store suffice (thumbv6m has no atomic read-modify-write).
static MILLIS: AtomicU32 = AtomicU32::new(0);

#[exception]
fn SysTick() {
    MILLIS.store(MILLIS.load(Ordering::Relaxed).wrapping_add(1), Ordering::Relaxed);
}

/// The clock: SysTick interrupting every millisecond.
#[derive(Clone, Copy)]
pub struct Ticks {
    _private: (),
}

impl Ticks {
    /// Starts SysTick at 1 kHz.
    pub fn start(mut syst: SYST) -> Self {
        syst.set_clock_source(SystClkSource::Core);
        syst.set_reload(CORE_HZ / 1000 - 1);
        syst.clear_current();
        syst.enable_interrupt();
        syst.enable_counter();
        Ticks { _private: () }
    }
}

impl Clock for Ticks {
    /// Wraps after 49.7 days; deadlines within a call are far shorter.
    fn now(&self) -> Instant {
        Instant::from_millis(u64::from(MILLIS.load(Ordering::Relaxed)))
    }
}
