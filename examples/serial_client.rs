//! Calls the demo service on a board over a serial port:
//! `cargo run --example serial_client --features serial,demo -- /dev/ttyUSB0 115200`
//! (any board under `boards/` serves it).

use wirecall::demo::demo;
use wirecall::link::serial;
use wirecall::{Client, StdClock};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let path = args.next().ok_or("usage: serial_client PORT [BAUD]")?;
    let baud = args.next().map_or(Ok(115_200), |b| b.parse())?;
    let mut board = demo::Client(Client::new(serial::open(&path, baud)?, StdClock::new()));
    println!("{}", board.greet("Ada")?);
    println!("2 + 3 = {}", board.add(2, 3)?);
    println!("counter: {}", board.bump()?);
    Ok(())
}
