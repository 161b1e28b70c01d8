//! Serves the wirecall demo service (greet, add, bump, slow) on UART0.
#![no_std]
#![no_main]

use cortex_m_rt::entry;
use wirecall::Server;
use wirecall::demo::{Board, demo};
use wirecall_qemu_lm3s6965::{clock::Ticks, halt, uart::Uart0};

/// The server: 128 bytes to receive, 64 to send (and cache) an answer.
type DemoServer = Server<Uart0, demo::Dispatcher<Board<Ticks>>, Ticks, 128, 64>;

#[entry]
fn main() -> ! {
    // Each of these succeeds on its first call; there is no second.
    let Some(core) = cortex_m::Peripherals::take() else { halt() };
    let clock = Ticks::start(core.SYST);
    let Some(uart) = Uart0::take() else { halt() };
    let Some(server) =
        cortex_m::singleton!(: DemoServer = Server::sized(uart, demo::Dispatcher(Board::new(clock)), clock))
    else {
        halt()
    };
    #[cfg(feature = "defmt")]
    defmt::info!("wirecall demo server on UART0");
    #[cfg(feature = "panic-probe-self-test")]
    if wirecall::Clock::now(&clock).as_micros() == 5_000 {
        panic!("a reachable panic, planted for CI's self-test of the no-panic check");
    }
    loop {
        // A UART never ends; on an error (there are none) start over.
        let _ = server.serve();
    }
}
