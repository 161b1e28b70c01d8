//! Deadlines on the wire, over loopback: the client puts its remaining time in
//! each request, the board's handler reads it and finishes in time.
//!
//! `cargo run --example deadlines`

use std::time::Duration;

use wirecall::demo::{Board, demo};
use wirecall::link::loopback;
use wirecall::{Client, Server, StdClock};

fn main() {
    let (host, board) = loopback::pair();
    std::thread::spawn(move || {
        let _ = Server::new(board, demo::Dispatcher(Board::new(StdClock::new())), StdClock::new()).serve();
    });
    let mut client = Client::new(host, StdClock::new());
    client.set_timeout(Duration::from_millis(200));

    println!("Each call may take 200 ms. slow(ms) keeps the board busy for ms milliseconds.");
    client.set_deadline_on_wire(true);
    let mut board = demo::Client(client);
    match board.slow(50) {
        Ok(spent) => println!("budget on the wire, slow(50): {spent} ms of work, answered in time"),
        Err(error) => println!("budget on the wire, slow(50): {error}"),
    }
    match board.slow(1000) {
        Ok(spent) => {
            println!("budget on the wire, slow(1000): the handler saw its deadline and stopped after {spent} ms")
        }
        Err(error) => println!("budget on the wire, slow(1000): {error}"),
    }

    board.0.set_deadline_on_wire(false);
    match board.slow(1000) {
        Ok(spent) => println!("no budget, slow(1000): {spent} ms"),
        Err(error) => println!(
            "no budget, slow(1000): {error} (the handler did not know, ran on, and the client cannot tell: executed {:?})",
            error.executed()
        ),
    }
}
