//! Board support for the emulated LM3S6965: UART0 and a millisecond clock.
//!
//! Only `uart` touches hardware registers, and only through the smallest
//! `unsafe` there is: volatile reads and writes at the PL011's documented
//! addresses (no PAC for this chip has its UART).
#![no_std]
#![deny(unsafe_code)]

pub mod clock;
pub mod uart;

#[cfg(feature = "defmt")]
use defmt_semihosting as _;

/// Stops here for good, sleeping: for start-up steps that cannot fail twice.
pub fn halt() -> ! {
    loop {
        cortex_m::asm::wfi();
    }
}

/// What a panic does. With `no-panic-check` the handler calls a function that
/// does not exist, so the firmware links only if the optimiser proved that no
/// panic is reachable.
#[cfg(not(feature = "no-panic-check"))]
#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    // A permanently undefined instruction: the core faults and stops.
    cortex_m::asm::udf()
}

#[cfg(feature = "no-panic-check")]
#[panic_handler]
#[allow(unsafe_code)]
fn panic(_: &core::panic::PanicInfo) -> ! {
    unsafe extern "C" {
        /// Deliberately undefined: any surviving reference fails the link.
        fn wirecall_a_panic_is_reachable() -> !;
    }
    // SAFETY: never runs; the link fails if this call is still reachable.
    unsafe { wirecall_a_panic_is_reachable() }
}
