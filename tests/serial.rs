//! A serial link over a pseudo-terminal pair: the demo service on one end,
//! a client on the other, through `wirecall::link::serial`'s timeouts.
#![cfg(unix)]

use std::time::Duration;

use wirecall::demo::{Board, demo};
use wirecall::link::IoLink;
use wirecall::link::serial::serialport::TTYPort;
use wirecall::{Client, Server, StdClock};

#[test]
fn calls_over_a_pseudo_terminal() {
    let (host, board) = TTYPort::pair().expect("a pseudo-terminal pair");
    let server = std::thread::spawn(move || {
        let mut server =
            Server::new(IoLink::new(board), demo::Dispatcher(Board::new(StdClock::new())), StdClock::new());
        // Serve until the host side goes away (reads then fail or time out for good).
        for _ in 0..200 {
            if server.step(Duration::from_millis(20)).is_err() {
                break;
            }
        }
    });
    let mut client = demo::Client(Client::new(IoLink::new(host), StdClock::new()));
    assert_eq!(client.greet("Ada").unwrap().as_str(), "Hello Ada");
    assert_eq!(client.add(2, 3), Ok(5));
    assert_eq!(client.bump(), Ok(1));
    // A deadline is honoured on a serial port: the board is busy for 500 ms, and
    // the call ends at its 100 ms deadline (had it waited, the value would be here).
    client.0.set_timeout(Duration::from_millis(100));
    client.0.set_retry_policy(wirecall::RetryPolicy::NONE);
    assert_eq!(client.slow(500), Err(wirecall::Error::Timeout));
    drop(client);
    server.join().unwrap();
}
