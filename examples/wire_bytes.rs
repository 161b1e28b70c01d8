//! Prints the complete on-wire bytes of `add(2, 3)` and of its reply, delimiter
//! included, as lowercase hex: the first test vector of PROTOCOL.md.
//!
//! The request is encoded as a client encodes it (sequence number 0); the reply
//! is what a real server machine sends back after dispatching it, inside the
//! session a Hello opened first (PROTOCOL.md §8.2).
//!
//! Run it with `cargo run --example wire_bytes`.

use std::fmt::Write as _;

use wirecall::Instant;
use wirecall::machine::ServerMachine;
use wirecall::wire::{encode_hello, encode_request};

wirecall::service! {
    /// PROTOCOL.md's example service.
    pub mod calc {
        /// Adds two numbers.
        fn add(a: i32, b: i32) -> i32 = 2;
    }
}

struct Calc;

impl calc::Service for Calc {
    fn add(&mut self, a: i32, b: i32) -> i32 {
        a.wrapping_add(b)
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

fn main() {
    let mut buf = [0u8; 16];
    let request = encode_request(0, calc::ids::add, &(2i32, 3i32), &mut buf).expect("16 bytes hold add(2, 3)");

    let mut server = ServerMachine::<16, 16>::new();
    let mut calc = calc::Dispatcher(Calc);
    let mut hello_buf = [0u8; 16];
    let hello = encode_hello(0xffff, 0, true, &mut hello_buf).expect("16 bytes hold a Hello");
    server.receive(hello, Instant::ZERO, &mut calc);
    server.wrote(server.outgoing().len()); // the Welcome

    let consumed = server.receive(request, Instant::ZERO, &mut calc);
    assert_eq!(consumed, request.len(), "the server reads the whole request");

    println!("request: {}", hex(request));
    println!("reply: {}", hex(server.outgoing()));
}
