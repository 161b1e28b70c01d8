//! Server streaming with credits, over loopback: a data logger sends its
//! history one reading at a time, never more than the host's credit ahead;
//! the host stops one stream early, and the wire is cut in the middle of
//! another, which then says exactly how many readings arrived.
//!
//! `cargo run --example streaming`

use std::time::Duration;

use wirecall::link::loopback;
use wirecall::{Client, Server, StdClock};

wirecall::service! {
    /// A data logger.
    pub mod logger {
        /// The last `count` readings, oldest first, in millivolts.
        fn history(count: u32) -> u16 = 1, stream;
        /// How many readings the logger holds.
        fn held() -> u32 = 2, idempotent;
    }
}

/// The logger's memory: a slowly rising voltage.
struct Logger {
    readings: Vec<u16>,
}

impl logger::Service for Logger {
    fn history(&mut self, count: u32, index: u32) -> Option<u16> {
        let count = (count as usize).min(self.readings.len());
        let first = self.readings.len() - count;
        // Called once per item, as the client's credit allows; None ends the stream.
        self.readings.get(first..)?.get(index as usize).copied()
    }

    fn held(&mut self) -> u32 {
        self.readings.len() as u32
    }
}

fn main() {
    let (host, board) = loopback::pair();
    let wire = host.wire();
    std::thread::spawn(move || {
        let readings = (0..500).map(|i| 3300 + (i % 50) as u16).collect();
        let mut server = Server::new(board, logger::Dispatcher(Logger { readings }), StdClock::new());
        let _ = server.serve();
    });
    let mut client = Client::new(host, StdClock::new());
    client.set_stream_credits(4);
    client.set_timeout(Duration::from_millis(300));
    let mut logger = logger::Client(client);

    println!("The logger holds {} readings.", logger.held().expect("held"));

    let mut got = Vec::new();
    let end = logger.history(8, |mv| {
        got.push(mv);
        true
    });
    println!("history(8): {got:?}");
    println!("  -> {:?}: complete = {}", end, end.map(|e| e.is_complete()).unwrap_or(false));

    let mut seen = 0;
    let end = logger.history(500, |_| {
        seen += 1;
        seen < 20 // stop after 20: the host cancels, the logger stops
    });
    println!("history(500), stopped by the host after {seen}:");
    println!("  -> {end:?}");
    println!("     the logger sent what the credit allowed before the Cancel arrived, and no more");

    let mut seen = 0;
    let end = logger.history(500, |_| {
        seen += 1;
        if seen == 100 {
            wire.cut(); // the cable is pulled in the middle of the stream
        }
        true
    });
    match end {
        Ok(end) => println!("history(500) with the wire cut: {end:?}"),
        Err(broken) => {
            println!("history(500) with the wire cut after 100 readings:");
            println!("  -> {broken}");
            println!(
                "     {} readings arrived; the End never did, so whether more were sent is unknown",
                broken.received
            );
        }
    }
    let stats = logger.0.stats();
    println!("client counters: {} items, {} calls, {} cancelled", stats.items, stats.calls, stats.cancelled);
}
