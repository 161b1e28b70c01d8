//! Why "outcome unknown" exists: the same non-idempotent call, with the wire cut
//! at four different moments. For each, what the caller was told and whether the
//! handler really ran.
//!
//! Run it with `cargo run --example cut_the_wire`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread;
use std::time::Duration;

use wirecall::link::loopback::{self, Direction, Wire};
use wirecall::{Client, RetryPolicy, Server, StdClock};

wirecall::service! {
    /// A syringe pump: dispensing twice is not the same as dispensing once.
    pub mod pump {
        /// Dispenses `ml` millilitres and returns the total dispensed so far.
        fn dispense(ml: u32) -> u32 = 1;
    }
}

/// Where the wire is cut.
#[derive(Clone, Copy, PartialEq)]
enum Cut {
    BeforeSending,
    AfterDeliveryBeforeHandler,
    AfterHandlerBeforeReply,
    Never,
}

/// The board. The wire is cut from inside the handler, so the moment is exact.
struct Pump {
    total: u32,
    runs: Arc<AtomicU32>,
    cut: Cut,
    wire: Wire,
}

impl pump::Service for Pump {
    fn dispense(&mut self, ml: u32) -> u32 {
        if self.cut == Cut::AfterDeliveryBeforeHandler {
            // The request has arrived; the board loses power before doing anything.
            self.wire.cut();
            return 0;
        }
        self.runs.fetch_add(1, Ordering::SeqCst);
        self.total = self.total.saturating_add(ml);
        if self.cut == Cut::AfterHandlerBeforeReply {
            // The work is done; from now on nothing the board sends arrives.
            self.wire.set_direction_muted(Direction::SecondToFirst, true);
        }
        self.total
    }
}

fn run(cut: Cut) -> (String, bool) {
    let (host_end, board_end) = loopback::pair();
    let wire = host_end.wire();
    let runs = Arc::new(AtomicU32::new(0));

    let pump = Pump { total: 0, runs: runs.clone(), cut, wire: wire.clone() };
    let board = thread::spawn(move || Server::new(board_end, pump::Dispatcher(pump), StdClock::new()).serve());

    if cut == Cut::BeforeSending {
        wire.cut();
    }
    let mut client = Client::new(host_end, StdClock::new());
    // Up to 4 sends of the request, 50 ms apart, all within 300 ms: the retries
    // cannot help when the wire is cut, and they never run the handler twice.
    client.set_timeout(Duration::from_millis(300));
    client.set_retry_policy(RetryPolicy { attempt_timeout: Duration::from_millis(50), ..RetryPolicy::DEFAULT });
    let told = match pump::Client(&mut client).dispense(5) {
        Ok(total) => format!("value {total} (total dispensed, ml)"),
        Err(error) => error.to_string(),
    };

    drop(client);
    let _ = board.join().expect("board thread");
    (told, runs.load(Ordering::SeqCst) > 0)
}

fn main() {
    let cases = [
        ("(a) cut before the request leaves", Cut::BeforeSending),
        ("(b) cut after delivery, before the handler", Cut::AfterDeliveryBeforeHandler),
        ("(c) cut after the handler, before the reply", Cut::AfterHandlerBeforeReply),
        ("(d) not cut", Cut::Never),
    ];
    for (name, cut) in cases {
        let (told, ran) = run(cut);
        println!("{name:<45} caller told: {told:<58} handler ran: {}", if ran { "yes" } else { "no" });
    }
    println!();
    println!("In (b) and (c) the caller knows only that its request left and no answer came back;");
    println!("the handler ran in one case and not in the other.");
    println!("That is why wirecall reports \"outcome unknown\" there instead of guessing, and never");
    println!("says \"not executed\" unless it can prove it.");
}
