//! Serves the wirecall demo service (greet, add, bump, slow) on UART0: GP0 TX, GP1 RX, 115200 8N1.
#![no_std]
#![no_main]
#![deny(unsafe_code)]

use wirecall::Server;
use wirecall::demo::{Board, demo};
use wirecall_rp_pico::{Micros, Uart0, halt};

/// The server: 128 bytes to receive, 64 to send (and cache) an answer.
type DemoServer = Server<Uart0, demo::Dispatcher<Board<Micros>>, Micros, 128, 64>;

#[rp2040_hal::entry]
fn main() -> ! {
    // Each of these succeeds on its first call; there is no second.
    let Some((uart, clock)) = wirecall_rp_pico::take() else { halt() };
    let Some(server) =
        cortex_m::singleton!(: DemoServer = Server::sized(uart, demo::Dispatcher(Board::new(clock)), clock))
    else {
        halt()
    };
    loop {
        // A UART never ends. A line error (framing, parity, break, overrun)
        // comes back as an error: the bytes it spoilt fail their frame's
        // check, so serve again.
        let _ = server.serve();
    }
}
