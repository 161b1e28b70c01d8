//! Bytes on the wire per call, and what they allow on a 115,200 baud UART.
//!
//! `cargo bench --bench wire` prints a table of bytes per call (request +
//! reply, framing included) for `add(2, 3)`, `greet("Ada")` and a 256-byte
//! echo: wirecall's counted from frames it encodes; eRPC's and postcard-rpc's
//! computed from their published frame layouts (see `../shared/PEERS.md` and
//! postcard-rpc's `header` module docs); then the calls per second each allows
//! at 115,200 baud 8N1 (10 bits per byte, one call at a time, no processing
//! time). Then it measures wirecall over a loopback link throttled to that
//! rate: each write takes as long as a UART would take to send its bytes.
//! `-- --quick` measures for 1 s per workload instead of 3.

use std::thread;
use std::time::{Duration, Instant};

use wirecall::embedded_io::{ErrorType, Read, Write};
use wirecall::heapless::{String, Vec};
use wirecall::link::loopback::{self, End};
use wirecall::wire::{encode_reply, encode_request};
use wirecall::{Client, Link, Server, StdClock};

wirecall::service! {
    /// PROTOCOL.md's example service, with an echo.
    pub mod wire {
        /// "Hello <name>"
        fn greet(name: &str) -> String<32> = 1;
        /// a + b
        fn add(a: i32, b: i32) -> i32 = 2;
        /// Returns its argument.
        fn echo(data: &[u8]) -> Vec<u8, 256> = 3;
    }
}

struct Handlers;

impl wire::Service for Handlers {
    fn greet(&mut self, name: &str) -> String<32> {
        let mut s = String::new();
        let _ = s.push_str("Hello ");
        let _ = s.push_str(name);
        s
    }
    fn add(&mut self, a: i32, b: i32) -> i32 {
        a.wrapping_add(b)
    }
    fn echo(&mut self, data: &[u8]) -> Vec<u8, 256> {
        Vec::from_slice(data).unwrap_or_default()
    }
}

const BAUD: f64 = 115_200.0;
/// 8N1: a start bit, eight data bits, a stop bit.
const BITS_PER_BYTE: f64 = 10.0;

/// A link whose writes take as long as a UART at `BAUD` needs to send them.
struct Throttled(End);

impl ErrorType for Throttled {
    type Error = <End as ErrorType>::Error;
}

impl Read for Throttled {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, Self::Error> {
        self.0.read(buf)
    }
}

impl Write for Throttled {
    fn write(&mut self, buf: &[u8]) -> Result<usize, Self::Error> {
        thread::sleep(Duration::from_secs_f64(buf.len() as f64 * BITS_PER_BYTE / BAUD));
        self.0.write(buf)
    }
    fn flush(&mut self) -> Result<(), Self::Error> {
        self.0.flush()
    }
}

impl Link for Throttled {
    fn read_within(&mut self, buf: &mut [u8], timeout: Duration) -> Result<Option<usize>, Self::Error> {
        self.0.read_within(buf, timeout)
    }
}

/// wirecall's frames for a workload, as the encoder writes them.
fn wirecall_bytes(method: u16, args: &impl serde::Serialize, value: &impl serde::Serialize) -> (usize, usize) {
    let mut buf = [0u8; 600];
    let request = encode_request(0, method, args, &mut buf).expect("request fits").len();
    let reply = encode_reply(0, value, &mut buf).expect("reply fits").len();
    (request, reply)
}

/// COBS adds a byte per started 254-byte block, and the 0x00 terminator one more.
fn cobs(len: usize) -> usize {
    len + len / 254 + 1 + 1
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let echo_data = [0xA5u8; 256];
    let hello_ada: String<32> = String::try_from("Hello Ada").expect("fits");
    let echo_value: Vec<u8, 256> = Vec::from_slice(&echo_data).expect("fits");
    // Encoded payload sizes, postcard: add args 2, value 1; greet args 4 ("Ada"
    // with its length), value 10; echo args and value 258 (two length bytes).
    // (name, wirecall's request and reply bytes, postcard body of arguments and value)
    type Workload = (&'static str, (usize, usize), (usize, usize));
    let workloads: [Workload; 3] = [
        ("add(2, 3)", wirecall_bytes(wire::ids::add, &(2i32, 3i32), &5i32), (2, 1)),
        ("greet(\"Ada\")", wirecall_bytes(wire::ids::greet, &("Ada",), &hello_ada), (4, 10)),
        ("echo 256 B", wirecall_bytes(wire::ids::echo, &(&echo_data[..],), &echo_value), (258, 258)),
    ];
    // eRPC, by its framed transport: 6-byte frame header, 8-byte message
    // header, then int32 as 4 bytes, strings and binaries as a u32 length and
    // the bytes.
    let erpc = [(6 + 8 + 8, 6 + 8 + 4), (6 + 8 + 4 + 3, 6 + 8 + 4 + 9), (6 + 8 + 4 + 256, 6 + 8 + 4 + 256)];
    // postcard-rpc over a serial port: COBS(discriminant byte, key, sequence
    // number, postcard body) and a 0x00; no CRC. Key 1 to 8 bytes, sequence
    // number 1 to 4: the smallest and the largest header.
    let prpc = |header: usize, (args, value): (usize, usize)| (cobs(header + args), cobs(header + value));

    println!("wire: bytes per call (request + reply, framing included) and calls/s at 115,200 baud 8N1");
    println!(
        "wire: | workload | wirecall | eRPC | postcard-rpc, 1-byte key and seq | postcard-rpc, 8-byte key, 4-byte seq |"
    );
    println!("wire: |---|---|---|---|---|");
    let rate = |total: usize| BAUD / BITS_PER_BYTE / total as f64;
    for (i, (name, (req, rep), payload)) in workloads.iter().enumerate() {
        let cell = |(a, b): (usize, usize)| format!("{a} + {b} = {} ({:.0}/s)", a + b, rate(a + b));
        println!(
            "wire: | {name} | {} | {} | {} | {} |",
            cell((*req, *rep)),
            cell(erpc[i]),
            cell(prpc(3, *payload)),
            cell(prpc(13, *payload))
        );
    }

    // Measured: wirecall over the throttled loopback.
    let (host, board) = loopback::pair();
    thread::spawn(move || {
        let mut server: Server<_, _, _, 512, 512> =
            Server::sized(Throttled(board), wire::Dispatcher(Handlers), StdClock::new());
        let _ = server.serve();
    });
    let client: Client<_, _, 512, 512> = Client::sized(Throttled(host), StdClock::new());
    let mut stub = wire::Client(client);
    stub.add(0, 0).expect("the session opens");
    let run_for = Duration::from_secs(if quick { 1 } else { 3 });
    let mut measure = |name: &str, total: usize, call: &mut dyn FnMut(&mut wire::Client<_>)| {
        let started = Instant::now();
        let mut calls = 0u32;
        while started.elapsed() < run_for {
            call(&mut stub);
            calls += 1;
        }
        let measured = f64::from(calls) / started.elapsed().as_secs_f64();
        println!(
            "wire: throttled {name}: {measured:.0} calls/s measured, {:.0} the wire allows ({:.0}%)",
            rate(total),
            100.0 * measured / rate(total)
        );
    };
    let total = |i: usize| workloads[i].1.0 + workloads[i].1.1;
    measure("add(2, 3)", total(0), &mut |s| assert_eq!(s.add(2, 3).expect("add"), 5));
    measure("greet(\"Ada\")", total(1), &mut |s| assert_eq!(s.greet("Ada").expect("greet"), "Hello Ada"));
    measure("echo 256 B", total(2), &mut |s| assert_eq!(s.echo(&echo_data).expect("echo").len(), 256));
}
