//! The server's input path: any bytes into a server machine with a real service.
//! Every answer it produces must be one well-formed frame of a kind a server sends.
#![no_main]

#[path = "stream.rs"]
mod stream;

use libfuzzer_sys::fuzz_target;
use wirecall::Instant;
use wirecall::heapless::String;
use wirecall::machine::ServerMachine;
use wirecall::wire::{Decoded, Frame, FrameDecoder};

wirecall::service! {
    pub mod target {
        fn greet(name: &str) -> String<16> = 1;
        fn add(a: i32, b: i32) -> i32 = 2;
        fn bytes(data: &[u8]) -> u8 = 3;
        fn many(a: Option<u64>, b: (bool, i8), c: [u16; 3]) -> Result<u8, bool> = 0x1234;
        fn count(to: u32) -> u32 = 4, stream;
        fn poke(x: u8) = 5, oneway;

        event tick: u32 = 1;
    }
}

struct Service;

impl target::Service for Service {
    fn greet(&mut self, name: &str) -> String<16> {
        String::try_from(name).unwrap_or_default()
    }
    fn add(&mut self, a: i32, b: i32) -> i32 {
        a.wrapping_add(b)
    }
    fn bytes(&mut self, data: &[u8]) -> u8 {
        data.iter().fold(0, |a, b| a ^ b)
    }
    fn many(&mut self, a: Option<u64>, b: (bool, i8), c: [u16; 3]) -> Result<u8, bool> {
        if b.0 { Ok(c[0] as u8) } else { Err(a.is_some()) }
    }
    fn count(&mut self, to: u32, index: u32) -> Option<u32> {
        (index < to.min(1000)).then_some(index)
    }
    fn poke(&mut self, _x: u8) {}
}

fuzz_target!(|data: &[u8]| {
    let mut server = ServerMachine::<48, 32, 4>::new();
    let mut service = target::Dispatcher(Service);
    // The first byte spaces the arrival times, to reach the frame-gap path.
    let Some((&gap, data)) = data.split_first() else { return };
    let data = stream::stream(data);
    for (i, piece) in data.chunks(7).enumerate() {
        let now = Instant::from_millis(i as u64 * u64::from(gap) * 10);
        if piece.first() == Some(&0xE7) {
            let _ = server.emit(target::events::tick, &(i as u32));
        }
        let mut rest = piece;
        while !rest.is_empty() {
            let used = server.receive(rest, now, &mut service);
            rest = &rest[used..];
            let out = server.outgoing();
            if out.is_empty() {
                assert!(used > 0, "no progress without an answer to send");
                continue;
            }
            let mut check = FrameDecoder::<64>::new();
            assert_eq!(check.feed(out), (out.len(), Some(Decoded::Frame)), "an answer is one whole frame");
            let frame = Frame::parse(check.frame()).expect("an answer parses");
            assert!(matches!(
                frame,
                Frame::Reply { .. }
                    | Frame::Status { .. }
                    | Frame::Welcome { .. }
                    | Frame::Item { .. }
                    | Frame::End { .. }
                    | Frame::Event { .. }
            ));
            let n = out.len();
            server.wrote(n);
        }
    }
});
