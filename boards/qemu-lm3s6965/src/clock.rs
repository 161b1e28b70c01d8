//! A microsecond clock from SysTick, for wirecall's deadlines and `slow`.
//!
//! SysTick counts down from a reload value of exactly one second's worth of core
//! clock cycles and interrupts once per wrap; the time is the wraps counted so
//! far plus the position of the counter within the current one. It does not
//! count an interrupt per millisecond: QEMU, on a busy host, delivers a timer
//! interrupt late now and then and folds those that pile up into one, and a
//! clock counting them fell behind real time by a fifth (`slow(3000)` took
//! 3.7 s). Only a wrap interrupt more than a second late could be missed.

use core::sync::atomic::{AtomicU32, Ordering};

use cortex_m::peripheral::syst::SystClkSource;
use cortex_m::peripheral::{SCB, SYST};
use cortex_m_rt::exception;
use wirecall::{Clock, Instant};

/// The core clock QEMU gives the LM3S6965 after reset: its 200 MHz divided by
/// the reset value of RCC's SYSDIV field plus one, 16.
const CORE_HZ: u32 = 12_500_000;

/// SysTick's reload value: one wrap per second (the counter has 24 bits).
const RELOAD: u32 = CORE_HZ - 1;
const _: () = assert!(RELOAD < 1 << 24);

/// Seconds since [`Ticks::start`]: the wraps the SysTick handler counted. Only
/// that handler writes it, so a plain load and store suffice (thumbv6m has no
/// atomic read-modify-write).
static SECONDS: AtomicU32 = AtomicU32::new(0);

#[exception]
fn SysTick() {
    SECONDS.store(SECONDS.load(Ordering::Relaxed).wrapping_add(1), Ordering::Relaxed);
}

/// The clock: SysTick wrapping once a second.
#[derive(Clone, Copy)]
pub struct Ticks {
    _private: (),
}

impl Ticks {
    /// Starts SysTick, counting core clock cycles.
    pub fn start(mut syst: SYST) -> Self {
        syst.set_clock_source(SystClkSource::Core);
        syst.set_reload(RELOAD);
        syst.clear_current();
        syst.enable_interrupt();
        syst.enable_counter();
        // Cleared, the counter reads 0 until its first reload: the end of a
        // second, to `now`. Start once it counts down from RELOAD.
        while SYST::get_current() == 0 {}
        Ticks { _private: () }
    }
}

impl Clock for Ticks {
    /// Microseconds since `start`; wraps after 136 years. One copy, not inlined
    /// into each caller: the footprint firmwares charge it to their baseline.
    #[inline(never)]
    fn now(&self) -> Instant {
        // With interrupts off the wrap count cannot change under us; a wrap
        // that happened and is not counted yet shows as a pending SysTick.
        let (seconds, current) = cortex_m::interrupt::free(|_| {
            let seconds = SECONDS.load(Ordering::Relaxed);
            let current = SYST::get_current();
            if SCB::is_pendst_pending() {
                // The counter wrapped, before or after the read above: read it
                // again, now surely after the wrap, and count the wrap.
                (seconds.wrapping_add(1), SYST::get_current())
            } else {
                (seconds, current)
            }
        });
        // Cycles into this second, 12.5 a microsecond: at most 25 million
        // after doubling, so u32 arithmetic suffices.
        let cycles = RELOAD.saturating_sub(current);
        let micros = cycles * 2 / 25;
        Instant::from_micros(u64::from(seconds) * 1_000_000 + u64::from(micros))
    }
}
