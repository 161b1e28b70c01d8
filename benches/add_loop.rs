//! N round trips of `add(2, 3)` through the client and server state machines,
//! in one thread, with no I/O: the request the client machine puts out goes
//! straight into the server machine, its answer straight back, and the value is
//! decoded. This is the protocol's own cost per call: encoding, CRC, COBS,
//! decoding, sequence matching, the session and cache logic, dispatch.
//!
//! `cargo bench --bench add_loop -- 100000` prints calls per second (a rough
//! figure: wall-clock time on a shared machine); `benches/instructions.sh` runs
//! it under callgrind for a repeatable instruction count.

use std::time::Instant as WallClock;

use wirecall::Instant;
use wirecall::demo::{Board, demo};
use wirecall::machine::{ClientMachine, ServerMachine};

struct NoClock;

impl wirecall::Clock for NoClock {
    fn now(&self) -> Instant {
        Instant::ZERO
    }
}

fn main() {
    let calls: u32 = std::env::args().nth(1).and_then(|n| n.parse().ok()).unwrap_or(100_000);
    let mut client = ClientMachine::<64, 64>::new();
    let mut server = ServerMachine::<64, 64>::new();
    let mut service = demo::Dispatcher(Board::new(NoClock));
    let deadline = Instant::from_millis(1_000);
    let started = WallClock::now();
    let mut sum = 0i64;
    for _ in 0..calls {
        client.start(demo::methods::add, &(2i32, 3i32), Instant::ZERO, deadline).expect("start");
        loop {
            // Client → server: the request (after a Hello and its Welcome, once),
            // copied as a link would carry it.
            let mut wire = [0u8; 64];
            let n = client.outgoing().len();
            wire[..n].copy_from_slice(client.outgoing());
            client.wrote(n);
            let mut rest = &wire[..n];
            while !rest.is_empty() {
                let used = server.receive(rest, Instant::ZERO, &mut service);
                rest = &rest[used..];
                let answer = server.outgoing();
                let (_, outcome) = client.receive(answer, Instant::ZERO);
                if let Some(outcome) = outcome.and_then(wirecall::machine::Incoming::done) {
                    let value = outcome.expect("a value");
                    sum += i64::from(postcard::from_bytes::<i32>(value).expect("an i32"));
                }
                let m = server.outgoing().len();
                server.wrote(m);
            }
            if !client.is_busy() {
                break;
            }
        }
    }
    let elapsed = started.elapsed();
    assert_eq!(sum, 5 * i64::from(calls));
    println!(
        "calls={calls} wall={:.3}s calls_per_sec={:.0}",
        elapsed.as_secs_f64(),
        f64::from(calls) / elapsed.as_secs_f64()
    );
}
