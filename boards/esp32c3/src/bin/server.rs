//! Serves the wirecall demo service (greet, add, bump, slow) on UART0:
//! 115200 baud, 8N1, TX on GPIO21 and RX on GPIO20.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

use esp_hal::uart::{Config, DataBits, Parity, StopBits, Uart};
use wirecall::Server;
use wirecall::demo::{Board, demo};
use wirecall_esp32c3::{clock::Uptime, halt, uart::Uart0};

// The application descriptor the second-stage bootloader checks.
esp_bootloader_esp_idf::esp_app_desc!();

/// The server: 128 bytes to receive, 64 to send (and cache) an answer.
type DemoServer = Server<Uart0<'static>, demo::Dispatcher<Board<Uptime>>, Uptime, 128, 64>;

#[esp_hal::main]
fn main() -> ! {
    let peripherals = esp_hal::init(esp_hal::Config::default());
    let clock = Uptime::new(&peripherals);
    let config = Config::default()
        .with_baudrate(115_200)
        .with_data_bits(DataBits::_8)
        .with_parity(Parity::None)
        .with_stop_bits(StopBits::_1);
    // UART0's own pins, which the DevKitM-1 wires to its USB-UART bridge.
    let Ok(uart) = Uart::new(peripherals.UART0, config) else { halt() };
    let uart = uart.with_tx(peripherals.GPIO21).with_rx(peripherals.GPIO20);
    let mut server: DemoServer = Server::sized(Uart0::new(uart), demo::Dispatcher(Board::new(clock)), clock);
    loop {
        // A UART never ends. After a receive error (reported once, then
        // cleared) serve again: the server keeps its state across the call.
        let _ = server.serve();
    }
}
