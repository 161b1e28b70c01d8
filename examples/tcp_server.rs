//! Serves the demo service (greet, add, bump, slow) over TCP until stopped.
//! Each connection is its own session with its own counter.
//!
//! Run it with `cargo run --example tcp_server -- 127.0.0.1:7000`, then call it
//! with `cargo run --example tcp_client -- 127.0.0.1:7000`.

use std::net::TcpListener;

use wirecall::StdClock;
use wirecall::demo::{Board, demo};
use wirecall::link::tcp;

fn main() -> std::io::Result<()> {
    let addr = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:7000".into());
    let listener = TcpListener::bind(&addr)?;
    println!("serving the demo service on {}", listener.local_addr()?);
    tcp::serve(listener, 64, || demo::Dispatcher(Board::new(StdClock::new())))
}
