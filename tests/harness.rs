//! Paths the chaos test reaches only by chance, made certain (#12): a stream
//! whose every frame arrives twice, or also late, hands each item over exactly
//! once; an answer the server no longer has (Status 10) makes a call again as
//! a new call only for an idempotent method.

mod common;

use std::thread::{self, JoinHandle};
use std::time::Duration;

use common::accept_session;
use wirecall::embedded_io::{Read, Write};
use wirecall::link::loopback::{self, End};
use wirecall::wire::{Decoded, Frame, FrameDecoder, encode_reply, encode_status};
use wirecall::{Call, Client, Error, Executed, Method, Status, StdClock};

/// Reads the next whole frame from `link`, decoded; `None` once the link closes.
fn next_frame(link: &mut End) -> Option<Vec<u8>> {
    let mut decoder = FrameDecoder::<256>::new();
    let mut byte = [0u8; 1];
    loop {
        match link.read(&mut byte) {
            Ok(1) => {}
            _ => return None,
        }
        if let (_, Some(Decoded::Frame)) = decoder.feed(&byte) {
            return Some(decoder.frame().to_vec());
        }
    }
}

/// A raw server: it opens the session, answers the first request ABORTED (as
/// a server does for a repeat whose answer left its cache, PROTOCOL.md §8.3),
/// and every later one with the value 5. Returns the numbers of the requests
/// it got, once the client hangs up.
fn evicting_server(mut link: End) -> JoinHandle<Vec<u16>> {
    thread::spawn(move || {
        accept_session(&mut link);
        let mut seen = Vec::new();
        while let Some(frame) = next_frame(&mut link) {
            let Ok(Frame::Request { seq, .. }) = Frame::parse(&frame) else { continue };
            let mut buf = [0u8; 16];
            let answer = match seen.is_empty() {
                true => encode_status(seq, Status::Aborted, &mut buf),
                false => encode_reply(seq, &5i32, &mut buf),
            };
            seen.push(seq);
            if link.write_all(answer.unwrap()).is_err() {
                break;
            }
        }
        seen
    })
}

fn client_of(server: fn(End) -> JoinHandle<Vec<u16>>) -> (Client<End, StdClock>, JoinHandle<Vec<u16>>) {
    let (host, board) = loopback::pair();
    let handle = server(board);
    let mut client = Client::new(host, StdClock::new());
    client.set_timeout(Duration::from_secs(5));
    (client, handle)
}

#[test]
fn a_call_answered_aborted_is_not_made_again_unless_idempotent() {
    // Not idempotent: the server can no longer tell whether it ran, so neither
    // can the client; it must not risk running it twice.
    let (mut client, server) = client_of(evicting_server);
    let error = client.call::<_, i32>(Method::new(2), &(2i32, 3i32)).unwrap_err();
    assert_eq!(error, Error::Status(Status::Aborted));
    assert_eq!(error.executed(), Executed::Maybe);
    assert_counted!(client.stats().retries, 0);
    drop(client);
    assert_eq!(server.join().unwrap().len(), 1, "one request, never made again");

    // Idempotent: made again as a new call, under a new number, and answered.
    let (mut client, server) = client_of(evicting_server);
    assert_eq!(client.call::<_, i32>(Method::idempotent(2), &(2i32, 3i32)), Ok(5));
    assert_counted!(client.stats().retries, 1);
    drop(client);
    let seen = server.join().unwrap();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_ne!(seen[0], seen[1], "the retry is a new call, with a new number");
}

/// Streams over a simulated link that delivers frames twice.
#[cfg(feature = "streams")]
mod twice {
    use std::time::Duration;

    use wirecall::sim::{FaultStats, Faults, SimClock, SimLink};
    use wirecall::{Call, Client, StreamEnd};

    wirecall::service! {
        /// A source of numbers.
        pub mod source {
            /// `count` items: `item(0)`, `item(1)`, ...
            fn numbers(count: u32) -> u32 = 1, stream;
        }
    }

    fn item(index: u32) -> u32 {
        index.wrapping_mul(2_654_435_761) ^ 0xa5a5
    }

    /// The handler, recording every item it produced.
    #[derive(Default)]
    struct Numbers {
        produced: Vec<u32>,
    }

    impl source::Service for Numbers {
        fn numbers(&mut self, count: u32, index: u32) -> Option<u32> {
            if index >= count {
                return None;
            }
            self.produced.push(index);
            Some(item(index))
        }
    }

    /// Streams of 40 items with several credits through `faults`: each item
    /// comes out once, in order, and each is produced once. Returns what the
    /// faults did.
    fn each_item_once(faults: Faults) -> FaultStats {
        let clock = SimClock::new();
        let link: SimLink<'_, _> = SimLink::new(&clock, source::Dispatcher(Numbers::default()), faults, 12);
        let mut client = Client::new(link, &clock);
        client.set_timeout(Duration::from_secs(2));
        let credits = [1, 2, 3, 8, 40];
        for credit in credits {
            client.set_stream_credits(credit);
            let mut items = Vec::new();
            let end = client.call_stream(source::methods::numbers, &(40u32,), &mut |x: u32| {
                items.push(x);
                true
            });
            assert_eq!(end, Ok(StreamEnd { sent: 40, received: 40, status: None }), "credit {credit}");
            assert_eq!(items, (0..40).map(item).collect::<Vec<_>>(), "credit {credit}: each item once, in order");
        }
        let (link, _) = client.into_parts();
        let faults = *link.fault_stats();
        let source::Dispatcher(numbers) = link.into_service();
        let once: Vec<u32> = credits.iter().flat_map(|_| 0..40).collect();
        assert_eq!(numbers.produced, once, "no item produced twice");
        faults
    }

    #[test]
    fn a_stream_whose_every_frame_arrives_twice_hands_each_item_over_once() {
        let faults = each_item_once(Faults { duplicate: 1.0, ..Faults::NONE });
        assert!(faults.duplicated > 5 * 40, "every frame, both ways: {faults:?}");
    }

    #[test]
    fn a_stream_whose_every_frame_comes_again_late_hands_each_item_over_once() {
        let late = Faults {
            delay_duplicate: 1.0,
            delay_time: (Duration::from_millis(1), Duration::from_millis(600)),
            ..Faults::NONE
        };
        let faults = each_item_once(late);
        assert!(faults.delayed_duplicates > 5 * 40, "every frame but the handshake's, both ways: {faults:?}");
    }
}
