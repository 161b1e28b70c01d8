//! Serves the wirecall demo service (greet, add, bump, slow) on UARTE0, the DK's virtual COM port.
#![no_std]
#![no_main]
#![deny(unsafe_code)]

use cortex_m_rt::entry;
use nrf52840_hal::{Clocks, gpio::p0, pac};
use wirecall::Server;
use wirecall::demo::{Board, demo};
use wirecall_nrf52840_dk::{clock::Ticks, halt, vcom::Vcom};

/// The server: 128 bytes to receive, 64 to send (and cache) an answer.
type DemoServer = Server<Vcom, demo::Dispatcher<Board<Ticks>>, Ticks, 128, 64>;

#[entry]
fn main() -> ! {
    // Each of these succeeds on its first call; there is no second.
    let Some(core) = cortex_m::Peripherals::take() else { halt() };
    let Some(p) = pac::Peripherals::take() else { halt() };
    // The 32 MHz crystal for the baud rate, rather than the less precise RC oscillator.
    let _clocks = Clocks::new(p.CLOCK).enable_ext_hfosc();
    let clock = Ticks::start(core.SYST);
    let port0 = p0::Parts::new(p.P0);
    let Some(vcom) = Vcom::new(p.UARTE0, port0.p0_06, port0.p0_08) else { halt() };
    let Some(server) =
        cortex_m::singleton!(: DemoServer = Server::sized(vcom, demo::Dispatcher(Board::new(clock)), clock))
    else {
        halt()
    };
    loop {
        // A UART never ends; on an error (a receive error) start over.
        let _ = server.serve();
    }
}
