//! Footprint baseline: the same startup, clock and UART as the servers, no RPC:
//! echoes what UART0 receives.
#![no_std]
#![no_main]

use cortex_m_rt::entry;
use wirecall::Clock as _;
use wirecall::embedded_io::{Read, ReadReady, Write};
use wirecall_qemu_lm3s6965::{clock::Ticks, halt, uart::Uart0};

#[entry]
fn main() -> ! {
    let Some(core) = cortex_m::Peripherals::take() else { halt() };
    let clock = Ticks::start(core.SYST);
    let Some(mut uart) = Uart0::take() else { halt() };
    let mut byte = [0u8; 1];
    loop {
        if uart.read_ready().unwrap_or(false) && uart.read(&mut byte).is_ok() {
            let _ = uart.write(&byte);
        }
        core::hint::black_box(clock.now());
    }
}
