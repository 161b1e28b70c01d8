//! Why "outcome unknown" exists: the same non-idempotent call, with the wire cut
//! at four different moments. For each, what the caller was told and whether the
//! handler really ran.
//!
//! Run it with `cargo run --example cut_the_wire`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread;
use std::time::Duration;

use wirecall::embedded_io::Read as _;
use wirecall::link::loopback::{self, End, Wire};
use wirecall::{Client, Server, StdClock};

wirecall::service! {
    /// A syringe pump: dispensing twice is not the same as dispensing once.
    pub mod pump {
        /// Dispenses `ml` millilitres and returns the total dispensed so far.
        fn dispense(ml: u32) -> u32 = 1;
    }
}

/// Where the wire is cut.
#[derive(Clone, Copy)]
enum Cut {
    BeforeSending,
    AfterDeliveryBeforeHandler,
    AfterHandlerBeforeReply,
    Never,
}

struct Pump {
    total: u32,
    runs: Arc<AtomicU32>,
    /// In case (c) the handler itself loses the reply: it mutes the wire after doing its work.
    lose_reply: Option<Wire>,
}

impl pump::Service for Pump {
    fn dispense(&mut self, ml: u32) -> u32 {
        self.runs.fetch_add(1, Ordering::SeqCst);
        self.total = self.total.saturating_add(ml);
        if let Some(wire) = &self.lose_reply {
            wire.set_muted(true);
        }
        self.total
    }
}

/// A board that receives the request and resets before dispatching it.
fn board_that_resets(mut end: End) {
    let mut byte = [0u8; 1];
    // Read up to the frame delimiter: the request is fully delivered...
    while end.read(&mut byte).is_ok_and(|n| n == 1) && byte[0] != 0x00 {}
    // ...and the board loses power before its handler runs.
    end.wire().cut();
}

fn run(cut: Cut) -> (String, bool) {
    let (host_end, board_end) = loopback::pair();
    let wire = host_end.wire();
    let runs = Arc::new(AtomicU32::new(0));

    let board = {
        let runs = runs.clone();
        let lose_reply = matches!(cut, Cut::AfterHandlerBeforeReply).then(|| wire.clone());
        thread::spawn(move || match cut {
            Cut::AfterDeliveryBeforeHandler => board_that_resets(board_end),
            _ => {
                let pump = Pump {
                    total: 0,
                    runs,
                    lose_reply,
                };
                let _ = Server::new(board_end, pump::Dispatcher(pump), StdClock::new()).serve();
            }
        })
    };

    if let Cut::BeforeSending = cut {
        wire.cut();
    }
    let mut client = Client::new(host_end, StdClock::new());
    client.set_timeout(Duration::from_millis(200));
    let told = match pump::Client(&mut client).dispense(5) {
        Ok(total) => format!("value {total} (total dispensed, ml)"),
        Err(error) => error.to_string(),
    };

    drop(client);
    board.join().expect("board thread");
    (told, runs.load(Ordering::SeqCst) > 0)
}

fn main() {
    let cases = [
        ("(a) cut before the request leaves", Cut::BeforeSending),
        (
            "(b) cut after delivery, before the handler",
            Cut::AfterDeliveryBeforeHandler,
        ),
        (
            "(c) cut after the handler, before the reply",
            Cut::AfterHandlerBeforeReply,
        ),
        ("(d) not cut", Cut::Never),
    ];
    for (name, cut) in cases {
        let (told, ran) = run(cut);
        println!(
            "{name:<45} caller told: {told:<58} handler ran: {}",
            if ran { "yes" } else { "no" }
        );
    }
    println!();
    println!("In (b) and (c) the caller knows only that its request left and no answer came back;");
    println!("the handler ran in one case and not in the other.");
    println!(
        "That is why wirecall reports \"outcome unknown\" there instead of guessing, and never"
    );
    println!("says \"not executed\" unless it can prove it.");
}
