//! The client's reply path: a call in progress, then any bytes and any times.
//! The call must end at most once, only in a way its inputs allow, and what the
//! client sends must always be whole frames of a client's kinds.
#![no_main]

#[path = "stream.rs"]
mod stream;

use libfuzzer_sys::fuzz_target;
use wirecall::machine::ClientMachine;
use wirecall::wire::{Decoded, Frame, FrameDecoder};
use wirecall::{Instant, Method};

fn check_outgoing(out: &[u8]) {
    let mut check = FrameDecoder::<64>::new();
    let mut rest = out;
    while !rest.is_empty() {
        let (used, event) = check.feed(rest);
        rest = &rest[used..];
        if event.is_some() {
            assert_eq!(event, Some(Decoded::Frame));
            let frame = Frame::parse(check.frame()).expect("the client sends frames that parse");
            assert!(matches!(frame, Frame::Request { .. } | Frame::Hello { .. }));
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&first, data)) = data.split_first() else { return };
    let mut client = ClientMachine::<32, 32>::with_identity(7, u16::from(first) << 8);
    let deadline = Instant::from_millis(2_000);
    client.start(Method::new(2), &(2i32, 3i32), Instant::ZERO, deadline).unwrap();
    let mut now = Instant::ZERO;
    let mut ended = false;
    let data = stream::stream(data);
    for piece in data.chunks(9) {
        // Each piece's first byte moves time forward by up to 255 ms.
        let Some((&step, bytes)) = piece.split_first() else { continue };
        now = now + core::time::Duration::from_millis(u64::from(step));
        check_outgoing(client.outgoing());
        let n = client.outgoing().len();
        client.wrote(n);
        let mut rest = bytes;
        while !rest.is_empty() {
            let (used, outcome) = client.receive(rest, now);
            assert!(used > 0);
            rest = &rest[used..];
            if let Some(outcome) = outcome {
                assert!(!ended, "a call ends once");
                ended = true;
                if let Ok(value) = outcome {
                    assert!(value.len() <= 32);
                }
            }
        }
        if let Some(error) = client.poll(now) {
            assert!(!ended, "a call ends once");
            ended = true;
            assert!(now >= deadline || client.retry_policy().attempts > 0);
            let _ = error.executed();
        }
        if ended {
            assert!(!client.is_busy());
            break;
        }
    }
});
