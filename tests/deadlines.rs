//! Deadlines on the wire, over loopback: a handler sees the time its client
//! still waits, and a client that sends no budget gets the old behaviour.
#![cfg(feature = "deadlines")]

use std::time::Duration;

use wirecall::demo::{Board, demo};
use wirecall::link::loopback;
use wirecall::{Client, Error, Executed, Server, StdClock};

fn board(budget_on_wire: bool, timeout: Duration) -> demo::Client<Client<loopback::End, StdClock>> {
    let (host, board) = loopback::pair();
    std::thread::spawn(move || {
        let _ = Server::new(board, demo::Dispatcher(Board::new(StdClock::new())), StdClock::new()).serve();
    });
    let mut client = Client::new(host, StdClock::new());
    client.set_deadline_on_wire(budget_on_wire);
    client.set_timeout(timeout);
    demo::Client(client)
}

#[test]
fn a_handler_that_reads_its_deadline_finishes_in_time() {
    let mut board = board(true, Duration::from_millis(400));
    assert_eq!(board.slow(30), Ok(30), "work that fits the budget is done whole");
    // The demo's slow stops 20 ms before its deadline: about 380 ms of the 2,000 asked for.
    let spent = board.slow(2000).expect("the answer arrives before the client's deadline");
    assert!((200..=380).contains(&spent), "stopped after {spent} ms");
}

#[test]
fn without_a_budget_the_handler_cannot_know_and_the_outcome_is_unknown() {
    let mut board = board(false, Duration::from_millis(200));
    let error = board.slow(600).unwrap_err();
    assert_eq!(error, Error::Timeout);
    assert_eq!(error.executed(), Executed::Maybe);
}
