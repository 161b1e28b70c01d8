//! Board support for the ESP32-C3: UART0 as a wirecall link, and a microsecond clock.
//!
//! Everything goes through esp-hal's stable, safe API; this crate has no `unsafe`.
#![no_std]
#![forbid(unsafe_code)]

pub mod clock;
pub mod uart;

/// Stops here for good: for start-up steps that cannot succeed on a retry.
pub fn halt() -> ! {
    loop {
        core::hint::spin_loop();
    }
}

/// What a panic does: the firmware halts, and a caller on the host sees its calls
/// time out. esp-hal's watchdogs are off (`esp_hal::init` disables them), so it
/// stays stopped until reset.
#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    halt()
}
