//! Liveness: a call lives until its deadline while the link is up, whatever its
//! retry policy's number of attempts (PROTOCOL.md §8.4). Each of these ended
//! "unknown" after about a second before the deadline became a call's only clock.

use std::net::TcpListener;
use std::time::{Duration, Instant};

use wirecall::demo::{Board, demo};
use wirecall::link::{loopback, tcp};
use wirecall::{Client, Server, StdClock};

/// Longer than the default policy's four attempts with their backoff (about 1.07 s).
const SLOW_MS: u32 = 1500;

fn loopback_board() -> demo::Client<Client<loopback::End, StdClock>> {
    let (host, board) = loopback::pair();
    std::thread::spawn(move || {
        Server::new(board, demo::Dispatcher(Board::new(StdClock::new())), StdClock::new()).serve()
    });
    demo::Client(Client::new(host, StdClock::new()))
}

#[test]
fn a_handler_slower_than_the_attempts_is_answered_over_loopback() {
    let mut board = loopback_board();
    board.0.set_timeout(Duration::from_secs(5));
    let started = Instant::now();
    assert_eq!(board.slow(SLOW_MS), Ok(SLOW_MS), "after {:?}", started.elapsed());
    if cfg!(feature = "stats") {
        let stats = board.0.stats();
        assert!(stats.retries >= 4, "the request was sent again while the handler ran: {stats:?}");
        assert_eq!(stats.timeouts, 0);
        // The repeats that reached the server while it ran were answered from its cache.
        let server = board.0.server_stats().unwrap();
        assert_eq!(server.dispatched, 1, "slow ran once (built-ins are not counted): {server:?}");
    }
}

#[test]
fn a_call_still_ends_at_its_deadline() {
    let mut board = loopback_board();
    board.0.set_timeout(Duration::from_millis(600));
    let started = Instant::now();
    let error = board.slow(SLOW_MS).unwrap_err();
    assert_eq!(error, wirecall::Error::Timeout);
    assert!(started.elapsed() >= Duration::from_millis(600), "not before its deadline: {:?}", started.elapsed());
}

#[test]
fn a_resumed_slow_call_is_answered() {
    let mut board = loopback_board();
    board.0.set_timeout(Duration::from_millis(300));
    assert_eq!(board.slow(SLOW_MS), Err(wirecall::Error::Timeout));
    board.0.set_timeout(Duration::from_secs(5));
    assert_eq!(board.0.resume::<u32>(), Ok(SLOW_MS), "the cached answer, the handler not run again");
    if cfg!(feature = "stats") {
        assert_eq!(board.0.server_stats().unwrap().dispatched, 1, "slow ran once");
    }
}

#[test]
fn a_handler_slower_than_the_attempts_is_answered_over_tcp() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || tcp::serve(listener, 8, || demo::Dispatcher(Board::new(StdClock::new()))));
    let mut board = demo::Client(tcp::connect(addr).unwrap());
    board.0.set_timeout(Duration::from_secs(5));
    assert_eq!(board.slow(SLOW_MS), Ok(SLOW_MS));
}
