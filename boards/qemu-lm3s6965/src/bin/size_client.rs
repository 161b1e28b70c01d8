//! Footprint: a client calling `add` over UART0, 64-byte buffers, kept in a static.
#![no_std]
#![no_main]

use cortex_m_rt::entry;
use wirecall::Client;
use wirecall_qemu_lm3s6965::{clock::Ticks, halt, uart::Uart0};

wirecall::service! {
    pub mod calc {
        fn add(a: i32, b: i32) -> i32 = 2;
    }
}

#[entry]
fn main() -> ! {
    let Some(core) = cortex_m::Peripherals::take() else { halt() };
    let clock = Ticks::start(core.SYST);
    let Some(uart) = Uart0::take() else { halt() };
    let Some(client) = cortex_m::singleton!(: Client<Uart0, Ticks, 64, 64> = Client::sized(uart, clock)) else {
        halt()
    };
    let mut n = 0i32;
    loop {
        if let Ok(sum) = calc::Client(&mut *client).add(n, 1) {
            n = sum;
        }
    }
}
