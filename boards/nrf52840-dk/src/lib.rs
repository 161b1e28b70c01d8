//! Board support for the nRF52840-DK: UARTE0 on the virtual COM port, and a millisecond clock.
//!
//! No `unsafe` here: the registers are nrf52840-hal's business.
#![no_std]
#![deny(unsafe_code)]

pub mod clock;
pub mod vcom;

/// Stops here for good, sleeping: for start-up steps that cannot fail twice.
pub fn halt() -> ! {
    loop {
        cortex_m::asm::wfi();
    }
}

/// What a panic does: a permanently undefined instruction, so the core faults
/// and stops (a debugger attached with probe-rs shows where).
#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    cortex_m::asm::udf()
}
