//! Footprint: a server with one method, `add`, 64-byte buffers, kept in a static.
#![no_std]
#![no_main]

use cortex_m_rt::entry;
use wirecall::Server;
use wirecall_qemu_lm3s6965::{clock::Ticks, halt, uart::Uart0};

wirecall::service! {
    pub mod calc {
        fn add(a: i32, b: i32) -> i32 = 2;
    }
}

struct Calc;

impl calc::Service for Calc {
    fn add(&mut self, a: i32, b: i32) -> i32 {
        a.wrapping_add(b)
    }
}

#[entry]
fn main() -> ! {
    let Some(core) = cortex_m::Peripherals::take() else { halt() };
    let clock = Ticks::start(core.SYST);
    let Some(uart) = Uart0::take() else { halt() };
    let Some(server) = cortex_m::singleton!(: Server<Uart0, calc::Dispatcher<Calc>, Ticks, 64, 64> = Server::sized(uart, calc::Dispatcher(Calc), clock))
    else {
        halt()
    };
    loop {
        let _ = server.poll();
    }
}
