//! A millisecond clock from SysTick, for wirecall's deadlines and `slow`.

use core::sync::atomic::{AtomicU32, Ordering};

use cortex_m::peripheral::SYST;
use cortex_m::peripheral::syst::SystClkSource;
use cortex_m_rt::exception;
use wirecall::{Clock, Instant};

/// The nRF52840's core clock: always 64 MHz.
const CORE_HZ: u32 = 64_000_000;

/// Milliseconds since [`Ticks::start`], low and high words. Only the SysTick
/// handler writes them; it runs to completion, so a reader sees it either
/// entirely or not at all, and rereads `HIGH` to notice a carry in between.
static LOW: AtomicU32 = AtomicU32::new(0);
static HIGH: AtomicU32 = AtomicU32::new(0);

#[exception]
fn SysTick() {
    let low = LOW.load(Ordering::Relaxed).wrapping_add(1);
    LOW.store(low, Ordering::Release);
    if low == 0 {
        HIGH.store(HIGH.load(Ordering::Relaxed).wrapping_add(1), Ordering::Release);
    }
}

/// The clock: SysTick interrupting every millisecond.
#[derive(Clone, Copy)]
pub struct Ticks {
    _private: (),
}

impl Ticks {
    /// Starts SysTick at 1 kHz from the core clock.
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
    /// Millisecond resolution; 64 bits of milliseconds never wrap.
    fn now(&self) -> Instant {
        loop {
            let high = HIGH.load(Ordering::Acquire);
            let low = LOW.load(Ordering::Acquire);
            if HIGH.load(Ordering::Acquire) == high {
                return Instant::from_millis(u64::from(high) << 32 | u64::from(low));
            }
        }
    }
}
