//! Interceptors on both sides of a call, over loopback: the server's guard
//! keeps the board read-only (it refuses methods that change state, before
//! they run) and logs every call; the client's hook times every call and
//! says how it ended.
//!
//! `cargo run --example interceptors`

use std::time::Instant;

use wirecall::demo::{Board, demo};
use wirecall::link::loopback;
use wirecall::machine::{Intercepted, Interceptor};
use wirecall::{Client, ClientHook, Error, Hooked, Method, Refused, Server, StdClock};

/// The method's name in the demo service, for the log.
fn name(id: u16) -> &'static str {
    demo::METHODS.iter().find(|(_, m)| m.id == id).map_or("a built-in", |(name, _)| name)
}

/// Server side: `bump` changes the board's state, and a read-only board
/// refuses it.
struct ReadOnly;

impl Interceptor for ReadOnly {
    fn before(&mut self, method: u16, _args: &[u8]) -> Result<(), Refused> {
        if method == demo::ids::bump {
            println!("  server: {} refused before it ran: the board is read-only", name(method));
            return Err(Refused::PermissionDenied);
        }
        println!("  server: {} admitted", name(method));
        Ok(())
    }

    fn after(&mut self, method: u16, outcome: Result<(), Refused>) {
        if outcome.is_ok() {
            println!("  server: {} answered", name(method));
        }
    }
}

/// Client side: times each call and says how it ended.
#[derive(Default)]
struct Timing {
    started: Option<Instant>,
}

impl ClientHook for Timing {
    fn before(&mut self, _method: Method) {
        self.started = Some(Instant::now());
    }

    fn after(&mut self, method: Method, outcome: Result<(), &Error>) {
        let micros = self.started.map_or(0, |t| t.elapsed().as_micros());
        match outcome {
            Ok(()) => println!("  client: {} returned in {micros} µs", name(method.id)),
            Err(error) => println!(
                "  client: {} failed in {micros} µs: {error} (handler ran: {:?})",
                name(method.id),
                error.executed()
            ),
        }
    }
}

fn main() {
    let (host, board) = loopback::pair();
    let clock = StdClock::new();
    std::thread::spawn(move || {
        let service = Intercepted::new(demo::Dispatcher(Board::new(clock)), ReadOnly);
        let _ = Server::new(board, service, clock).serve();
    });
    let mut board = demo::Client(Hooked::new(Client::new(host, StdClock::new()), Timing::default()));

    println!("greet(\"Ada\"):");
    println!("{}", board.greet("Ada").expect("greet is read-only"));
    println!("add(2, 3):");
    println!("{}", board.add(2, 3).expect("add is read-only"));
    println!("bump():");
    let refused = board.bump().expect_err("bump changes the board");
    println!("{refused}");
}
