//! The client's reply path: a call in progress, then any bytes and any times.
//! The call must end at most once, only in a way its inputs allow, and what the
//! client sends must always be whole frames of a client's kinds.
#![no_main]

#[path = "stream.rs"]
mod stream;

use libfuzzer_sys::fuzz_target;
use wirecall::machine::{ClientMachine, Incoming};
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
            assert!(matches!(
                frame,
                Frame::Request { .. } | Frame::Hello { .. } | Frame::Cancel { .. } | Frame::Credit { .. }
            ));
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&first, data)) = data.split_first() else { return };
    // Two calls in flight: a unary one and a stream, which one input byte may cancel.
    let mut client = ClientMachine::<32, 32, 2>::with_identity(7, u16::from(first) << 8);
    let deadline = Instant::from_millis(2_000);
    let unary = client.start(Method::new(2), &(2i32, 3i32), Instant::ZERO, deadline).unwrap();
    let stream = client.start_stream(Method::new(5), &(9u32,), 2, Instant::ZERO, deadline).unwrap();
    let mut now = Instant::ZERO;
    let mut ended = [false; 2];
    let mut end = |seq: u16| {
        let i = usize::from(seq == stream);
        assert!(seq == unary || seq == stream, "only calls in flight end");
        assert!(!ended[i], "a call ends once");
        ended[i] = true;
    };
    let data = stream::stream(data);
    for piece in data.chunks(9) {
        // Each piece's first byte moves time forward by up to 255 ms.
        let Some((&step, bytes)) = piece.split_first() else { continue };
        now = now + core::time::Duration::from_millis(u64::from(step));
        if step == 0xC4 {
            client.cancel(stream, now);
        }
        check_outgoing(client.outgoing());
        let n = client.outgoing().len();
        client.wrote(n);
        let mut rest = bytes;
        while !rest.is_empty() {
            let (used, incoming) = client.receive(rest, now);
            assert!(used > 0);
            rest = &rest[used..];
            match incoming {
                Some(Incoming::Done { seq, outcome }) => {
                    end(seq);
                    if let Ok(value) = outcome {
                        assert!(value.len() <= 32);
                    }
                }
                Some(Incoming::End { seq, end: e }) => {
                    assert_eq!(seq, stream, "only a stream ends with an End");
                    end(seq);
                    assert!(e.received <= e.sent || e.status.is_some() || e.received > 0);
                }
                Some(Incoming::Item { seq, value, .. }) => {
                    assert_eq!(seq, stream, "items only for the stream");
                    assert!(value.len() <= 32);
                }
                Some(Incoming::Event { payload, .. }) => assert!(payload.len() <= 32),
                None => {}
            }
        }
        while let Some((seq, error)) = client.poll(now) {
            end(seq);
            let _ = error.executed();
        }
        if client.in_flight() == 0 {
            assert!(!client.is_busy());
            break;
        }
    }
});
