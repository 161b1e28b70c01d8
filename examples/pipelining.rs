//! Pipelining and cancellation, over a loopback with 5 ms of latency each way:
//! the same 40 calls one at a time and with 8 in flight, matched to their
//! answers by sequence number; then what cancelling a call can and cannot do.
//!
//! `cargo run --example pipelining`

use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use wirecall::embedded_io::{ErrorType, Read, Write};
use wirecall::link::Link;
use wirecall::link::loopback::{self, End};
use wirecall::{Client, Server, StdClock};

wirecall::service! {
    pub mod calc {
        fn add(a: i32, b: i32) -> i32 = 1;
    }
}

struct Calc;

impl calc::Service for Calc {
    fn add(&mut self, a: i32, b: i32) -> i32 {
        a.wrapping_add(b)
    }
}

/// A link whose bytes arrive `LATENCY` after they are written, like a radio or
/// a USB bridge: it reads from one loopback end, and a thread writes into
/// another when the bytes are due.
struct Delayed {
    end: End,
    tx: mpsc::Sender<(Instant, Vec<u8>)>,
}

const LATENCY: Duration = Duration::from_millis(5);

impl Delayed {
    fn new(end: End, mut writer: End) -> Self {
        let (tx, rx) = mpsc::channel::<(Instant, Vec<u8>)>();
        thread::spawn(move || {
            for (due, bytes) in rx {
                thread::sleep(due.saturating_duration_since(Instant::now()));
                if writer.write_all(&bytes).is_err() {
                    return;
                }
            }
        });
        Delayed { end, tx }
    }
}

impl ErrorType for Delayed {
    type Error = <End as ErrorType>::Error;
}

impl Read for Delayed {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, Self::Error> {
        self.end.read(buf)
    }
}

impl Write for Delayed {
    fn write(&mut self, buf: &[u8]) -> Result<usize, Self::Error> {
        let _ = self.tx.send((Instant::now() + LATENCY, buf.to_vec()));
        Ok(buf.len())
    }
    fn flush(&mut self) -> Result<(), Self::Error> {
        Ok(())
    }
}

impl Link for Delayed {
    fn read_within(&mut self, buf: &mut [u8], timeout: Duration) -> Result<Option<usize>, Self::Error> {
        self.end.read_within(buf, timeout)
    }
}

/// A server that caches 8 answers, so 8 calls can be in flight.
fn board() -> Delayed {
    // One loopback pair per direction, each written through a delay.
    let (host_in, board_out) = loopback::pair();
    let (board_in, host_out) = loopback::pair();
    let board = Delayed::new(board_in, board_out);
    thread::spawn(move || {
        let mut server: Server<_, _, _, 256, 256, 8> = Server::sized(board, calc::Dispatcher(Calc), StdClock::new());
        let _ = server.serve();
    });
    Delayed::new(host_in, host_out)
}

fn main() {
    const CALLS: i32 = 40;
    println!("{CALLS} calls of add(i, i) over a link with {} ms of latency each way:", LATENCY.as_millis());

    let mut one = calc::Client(Client::new(board(), StdClock::new()));
    let t = Instant::now();
    for i in 0..CALLS {
        assert_eq!(one.add(i, i).expect("add"), 2 * i);
    }
    println!("  one at a time: {:>4} ms", t.elapsed().as_millis());

    let mut client: Client<_, _, 256, 256, 8> = Client::sized(board(), StdClock::new());
    let t = Instant::now();
    let (mut started, mut answered) = (0, 0);
    let mut args = std::collections::HashMap::new();
    while answered < CALLS {
        // Keep the window full; then collect whichever answer comes next.
        while started < CALLS {
            match client.start(calc::methods::add, &(started, started)) {
                Ok(seq) => {
                    args.insert(seq, started);
                    started += 1;
                }
                Err(wirecall::Error::Busy) => break,
                Err(error) => panic!("{error}"),
            }
        }
        let done = client.next_completed().expect("a call in flight");
        let i = args.remove(&done.seq).expect("an answer matched to its call");
        assert_eq!(done.decode::<i32>().expect("add"), 2 * i);
        answered += 1;
    }
    println!("  8 in flight:   {:>4} ms (window {})", t.elapsed().as_millis(), client.machine().window());

    println!("cancelling:");
    let mut client: Client<_, _, 256, 256, 8> = Client::sized(board(), StdClock::new());
    let report = |done: wirecall::Completed<256>, name: &str| match done.decode::<i32>() {
        Ok(value) => println!("  {name}: {value}"),
        Err(error) => println!("  {name}: {error}"),
    };
    // Calls started before the session opens wait for the handshake; one
    // cancelled then has sent nothing, and provably never runs.
    let a = client.start(calc::methods::add, &(1, 1)).expect("start");
    let b = client.start(calc::methods::add, &(2, 2)).expect("start");
    client.cancel(b);
    for _ in 0..2 {
        let done = client.next_completed().expect("in flight");
        let name = if done.seq == a { "add(1, 1)" } else { "add(2, 2), cancelled before it was sent" };
        report(done, name);
    }
    // A call already on its way has run by the time the Cancel gets there (the
    // stream of bytes is ordered): the server answers with its value.
    // Cancelling rolls nothing back.
    let c = client.start(calc::methods::add, &(3, 3)).expect("start");
    client.cancel(c);
    report(client.next_completed().expect("in flight"), "add(3, 3), cancelled after it was sent");
    println!(
        "  (a Cancel stops a stream between items, and keeps a request that was lost on the way from ever running)"
    );
}
