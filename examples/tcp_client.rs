//! Calls the demo service over TCP: `cargo run --example tcp_client -- 127.0.0.1:7000`
//! (start `cargo run --example tcp_server` first).

use wirecall::demo::demo;
use wirecall::link::tcp;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:7000".into());
    let mut board = demo::Client(tcp::connect(&addr)?);
    println!("{}", board.greet("Ada")?);
    println!("2 + 3 = {}", board.add(2, 3)?);
    println!("counter: {}", board.bump()?);
    Ok(())
}
