//! Serves one demo board (greet, add, bump, slow) over TCP to every
//! connection until stopped: `bump` counts the calls of all its clients. A
//! client that reconnects resumes its session (`Client::replace_link`).
//!
//! Run it with `cargo run --example tcp_server -- 127.0.0.1:7000`, then call it
//! with `cargo run --example tcp_client -- 127.0.0.1:7000` (twice: the counter
//! goes on).

use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use wirecall::StdClock;
use wirecall::demo::{Board, demo};
use wirecall::link::tcp::{ServeConfig, TcpServer};

fn main() -> std::io::Result<()> {
    let addr = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:7000".into());
    let listener = TcpListener::bind(&addr)?;
    let board = Arc::new(Mutex::new(demo::Dispatcher(Board::new(StdClock::new()))));
    let config = ServeConfig::default().max_connections(64);
    println!("serving one demo board on {} ({config:?})", listener.local_addr()?);
    TcpServer::shared(board, config).serve(listener)
}
