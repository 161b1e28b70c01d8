//! The smallest complete wirecall program: a service defined once, served on one
//! end of an in-memory wire, called from the other. Prints `Hello Ada`.
//!
//! Run it with `cargo run --example greet`.

use core::fmt::Write as _;
use std::thread;

use wirecall::heapless::String;
use wirecall::link::loopback;
use wirecall::{Client, Server, StdClock};

wirecall::service! {
    /// What the board offers.
    pub mod greeter {
        /// Returns "Hello <name>".
        fn greet(name: &str) -> String<32> = 1;
    }
}

/// The board's side: plain Rust, no RPC in sight.
struct Board;

impl greeter::Service for Board {
    fn greet(&mut self, name: &str) -> String<32> {
        let mut greeting = String::new();
        // A name too long for 32 bytes is cut short rather than failing the call.
        let _ = write!(greeting, "Hello {name}");
        greeting
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (host_end, board_end) = loopback::pair();

    // The "board": serves until the host hangs up.
    let board = thread::spawn(move || Server::new(board_end, greeter::Dispatcher(Board), StdClock::new()).serve());

    // The host: a typed stub over a blocking client.
    let mut board_api = greeter::Client(Client::new(host_end, StdClock::new()));
    let greeting = board_api.greet("Ada")?;
    println!("{greeting}");

    drop(board_api); // hang up; the board's serve loop ends
    board.join().expect("board thread")?;
    Ok(())
}
