//! Capabilities and extensions (PROTOCOL.md §4.1, §4.2): a client sends only
//! what the server's Welcome announces, refuses the rest before sending it, and
//! both sides drop extension frames they do not implement; a retransmitted
//! Hello repeats its bytes (§8.2). Driven through the machines with the §9
//! vectors, so every byte is visible.

mod common;

use common::{hex, unhex};
use wirecall::machine::{ClientMachine, Incoming, ServerMachine};
use wirecall::wire::{Capabilities, Feature, Features, encode_welcome};
use wirecall::{Error, Instant, Method};

wirecall::service! {
    /// PROTOCOL.md's example service.
    pub mod example {
        /// a + b
        fn add(a: i32, b: i32) -> i32 = 2;
    }
}

struct Example;

impl example::Service for Example {
    fn add(&mut self, a: i32, b: i32) -> i32 {
        a.wrapping_add(b)
    }
}

const T0: Instant = Instant::ZERO;
const DEADLINE: Instant = Instant::from_millis(1000);

/// The named vector of PROTOCOL.md §9.
fn vector(name: &str) -> Vec<u8> {
    let spec = include_str!("../PROTOCOL.md");
    let section = spec.split("## 9. Test vectors").nth(1).expect("§9");
    let block = section.split("```text").nth(1).and_then(|b| b.split("```").next()).expect("§9 block");
    let line = block.lines().find(|l| l.split(' ').next() == Some(name)).unwrap_or_else(|| panic!("no {name}"));
    unhex(line.split_once(' ').unwrap().1.trim())
}

type Machine = ClientMachine<64, 300>;

/// Everything the client has to send, as written.
fn take(m: &mut Machine) -> Vec<u8> {
    let out = m.outgoing().to_vec();
    m.wrote(out.len());
    out
}

/// A client whose first frame is number `0xffff` (as the vectors' session),
/// with a call of `add` started and its Hello written.
fn calling() -> Machine {
    let mut m = Machine::with_identity(0, 0xffff);
    m.start(example::methods::add, &(2i32, 3i32), T0, DEADLINE).unwrap();
    assert_eq!(hex(&take(&mut m)), format!("00{}", hex(&vector("hello"))));
    m
}

fn welcome(caps: Option<Capabilities>) -> Vec<u8> {
    let mut buf = [0u8; 32];
    encode_welcome(0xffff, 0, false, 1, caps, &mut buf).unwrap().to_vec()
}

#[test]
fn a_retransmitted_hello_repeats_its_bytes_fresh_included() {
    let mut m = calling();
    // No Welcome: the attempt times out and the Hello goes again.
    assert_eq!(m.poll(Instant::from_millis(250)), None);
    assert_eq!(hex(&take(&mut m)), format!("00{}", hex(&vector("hello_again"))));
    assert_eq!(vector("hello_again"), vector("hello"), "byte for byte, fresh still set");
    // The session opens on the Welcome to either copy.
    assert_eq!(m.receive(&vector("welcome"), T0).1, None);
    assert_eq!(hex(&take(&mut m)), hex(&vector("add_request")));
}

#[test]
fn a_server_announces_its_sizes_and_features() {
    let mut server = ServerMachine::<256, 256>::new();
    let mut service = example::Dispatcher(Example);
    let hello = vector("hello");
    assert_eq!(server.receive(&hello, T0, &mut service), hello.len());
    let caps = Capabilities { rx: 256, tx: 253, features: Features::BUILT_IN };
    assert_eq!(hex(server.outgoing()), hex(&welcome(Some(caps))));
    assert_eq!(ServerMachine::<256, 256>::CAPABILITIES, caps);
    if cfg!(all(feature = "deadlines", feature = "cancel", feature = "streams", feature = "events")) {
        assert_eq!(hex(server.outgoing()), hex(&vector("welcome")), "the vector, with every optional part");
    }
}

#[test]
fn a_call_too_large_for_the_server_is_refused_before_it_is_sent() {
    let mut m = calling();
    let small = Capabilities { rx: 20, tx: 20, features: Features::NONE };
    assert_eq!(m.receive(&welcome(Some(small)), T0).1, None);
    assert_eq!(hex(&take(&mut m)), hex(&vector("add_request")), "10 bytes decoded fit in 20");
    let reply = vector("add_reply");
    assert!(matches!(m.receive(&reply, T0).1, Some(Incoming::Done { seq: 0, outcome: Ok(_) })));
    // A request of 3 (header) + 1 (method) + 16 (a [u8; 16]) + 2 (CRC) = 22 decoded bytes does not.
    let error = m.start(Method::new(5), &([0u8; 16],), T0, DEADLINE).unwrap_err();
    assert_eq!(error, Error::TooLargeForServer { len: 22, max: 20 });
    assert!(!error.may_have_executed());
    assert!(m.outgoing().is_empty(), "nothing sent");
    assert_eq!(error.to_string(), "the request is 22 bytes; the server receives at most 20: not executed");
}

#[test]
fn a_queued_call_too_large_for_the_server_ends_not_executed_when_the_welcome_says_so() {
    let mut m = Machine::with_identity(0, 0xffff);
    let seq = m.start(Method::new(5), &(&[0u8; 200][..],), T0, DEADLINE).unwrap();
    take(&mut m);
    assert_eq!(m.receive(&welcome(Some(Capabilities { rx: 64, tx: 64, features: Features::NONE })), T0).1, None);
    assert!(m.outgoing().is_empty(), "the request is not sent");
    let (ended, error) = m.poll(T0).unwrap();
    assert_eq!((ended, error), (seq, Error::TooLargeForServer { len: 208, max: 64 }));
    assert_eq!(m.in_flight(), 0);
}

#[cfg(feature = "streams")]
#[test]
fn a_stream_to_a_server_without_streams_is_refused_not_executed_and_not_sent() {
    // Queued before the Welcome: it ends when the Welcome says the server has no streams.
    let mut m = Machine::with_identity(0, 0xffff);
    let seq = m.start_stream(Method::new(3), &(4u32,), 4, T0, DEADLINE).unwrap();
    assert_eq!(hex(&take(&mut m)), format!("00{}", hex(&vector("hello"))));
    assert_eq!(m.receive(&vector("welcome_without_capabilities"), T0).1, None);
    assert!(m.outgoing().is_empty(), "no Request, no Credit");
    let (ended, error) = m.poll(T0).unwrap();
    assert_eq!((ended, error), (seq, Error::Unsupported(Feature::Streams)));
    assert!(!error.may_have_executed());
    assert_eq!(error.to_string(), "the server does not implement streams: not executed");
    // With the session open, refused at once; a unary call still goes.
    assert_eq!(m.start_stream(Method::new(3), &(4u32,), 4, T0, DEADLINE), Err(Error::Unsupported(Feature::Streams)));
    assert!(m.start(example::methods::add, &(2i32, 3i32), T0, DEADLINE).is_ok());
    assert!(!take(&mut m).is_empty());
}

#[cfg(feature = "events")]
#[test]
fn a_one_way_call_to_a_server_without_events_is_refused() {
    let mut m = calling();
    assert_eq!(m.receive(&vector("welcome_without_capabilities"), T0).1, None);
    take(&mut m);
    assert!(matches!(m.receive(&vector("add_reply"), T0).1, Some(Incoming::Done { seq: 0, outcome: Ok(_) })));
    assert_eq!(m.start_oneway(Method::new(3), &(true,), T0, DEADLINE), Err(Error::Unsupported(Feature::Events)));
}

#[cfg(feature = "deadlines")]
#[test]
fn a_timed_call_goes_plain_to_a_server_without_timed_requests() {
    let mut m = Machine::with_identity(0, 0xffff);
    m.set_budget_on_wire(true);
    m.start(example::methods::add, &(2i32, 3i32), T0, Instant::from_millis(250)).unwrap();
    take(&mut m);
    // Made before the Welcome as a Timed Request; sent as the plain `add_request`.
    assert_eq!(m.receive(&vector("welcome_without_capabilities"), T0).1, None);
    assert_eq!(hex(&take(&mut m)), hex(&vector("add_request")));
    // To a server that has them, the `timed_request` vector.
    let mut m = Machine::with_identity(0, 0xffff);
    m.set_budget_on_wire(true);
    m.start(example::methods::add, &(2i32, 3i32), T0, Instant::from_millis(250)).unwrap();
    take(&mut m);
    assert_eq!(m.receive(&vector("welcome"), T0).1, None);
    assert_eq!(hex(&take(&mut m)), hex(&vector("timed_request")));
}

#[cfg(feature = "cancel")]
#[test]
fn no_cancel_is_sent_to_a_server_without_cancel() {
    let mut m = calling();
    assert_eq!(m.receive(&vector("welcome_without_capabilities"), T0).1, None);
    assert_eq!(hex(&take(&mut m)), hex(&vector("add_request")));
    assert!(!m.cancel(0, T0), "sent, and the server cannot be told");
    assert!(m.outgoing().is_empty(), "no Cancel frame");
    let reply = vector("add_reply");
    assert!(matches!(m.receive(&reply, T0).1, Some(Incoming::Done { seq: 0, outcome: Ok(_) })), "its answer");
    // A call none of whose bytes left is still cancelled, without a frame.
    let seq = m.start(example::methods::add, &(1i32, 1i32), T0, DEADLINE).unwrap();
    assert!(m.cancel(seq, T0));
    assert!(m.outgoing().is_empty());
    assert_eq!(m.poll(T0), Some((seq, Error::Cancelled)));
}

#[test]
fn extension_frames_are_dropped_and_counted_by_both_sides() {
    let mut server = ServerMachine::<256, 256>::new();
    let mut service = example::Dispatcher(Example);
    let hello = vector("hello");
    server.receive(&hello, T0, &mut service);
    server.wrote(server.outgoing().len());
    let ext = vector("extension_to_server");
    assert_eq!(server.receive(&ext, T0, &mut service), ext.len());
    assert!(server.outgoing().is_empty(), "never answered");
    let add = vector("add_request");
    server.receive(&add, T0, &mut service);
    assert_eq!(hex(server.outgoing()), hex(&vector("add_reply")), "the link goes on");
    if cfg!(feature = "stats") {
        assert_eq!(server.stats().link.dropped_kind, 1);
    }

    let mut m = calling();
    assert_eq!(m.receive(&vector("welcome"), T0).1, None);
    take(&mut m);
    let ext = vector("extension_to_client");
    assert_eq!(m.receive(&ext, T0), (ext.len(), None));
    assert!(matches!(m.receive(&vector("add_reply"), T0).1, Some(Incoming::Done { seq: 0, outcome: Ok(_) })));
    if cfg!(feature = "stats") {
        assert_eq!(m.stats().link.dropped_kind, 1);
    }
}

#[test]
fn a_peer_routes_extensions_by_their_kind() {
    use wirecall::driver::Side;
    assert_eq!(Side::of(vector("extension_to_server")[1]), Side::Server);
    assert_eq!(Side::of(vector("extension_to_client")[1]), Side::Client);
}

/// Every frame in `bytes`, as (kind, sequence number).
fn kinds(bytes: &[u8]) -> Vec<(u8, u16)> {
    let mut dec = wirecall::wire::FrameDecoder::<512>::new();
    let mut out = Vec::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        let (used, event) = dec.feed(rest);
        rest = &rest[used..];
        if event == Some(wirecall::wire::Decoded::Frame) {
            let frame = wirecall::wire::Frame::parse(dec.frame()).unwrap();
            out.push((dec.frame()[0] & 0x0f, frame.seq()));
        }
    }
    out
}

/// A call refused for its size after it took the slot of the call that could be
/// resumed: that call is no longer resumable (its frame is gone), and `resume`
/// says so instead of sending the refused frame under a new number.
#[test]
fn a_refused_call_in_the_resumable_calls_slot_is_never_sent_by_resume() {
    let mut server = ServerMachine::<64, 64>::new();
    let mut service = example::Dispatcher(Example);
    let mut m = Machine::with_identity(7, 0);
    let a = m.start(example::methods::add, &(2i32, 3i32), T0, DEADLINE).unwrap();
    let hello = take(&mut m);
    server.receive(&hello, T0, &mut service);
    let welcome = server.outgoing().to_vec();
    server.wrote(welcome.len());
    m.receive(&welcome, T0);
    let request = take(&mut m);
    server.receive(&request, T0, &mut service);
    let lost = server.outgoing().len();
    server.wrote(lost); // the Reply is lost
    assert_eq!(m.poll(DEADLINE), Some((a, Error::Timeout)));
    assert!(m.can_resume());
    let later = Instant::from_millis(3000);
    let error = m.start(Method::new(5), &([1u8; 32], [2u8; 32]), DEADLINE, later).unwrap_err();
    assert!(matches!(error, Error::TooLargeForServer { max: 64, .. }), "{error:?}");
    assert_eq!(m.resume(DEADLINE, later), Err(Error::NothingToResume));
    assert!(m.outgoing().is_empty(), "nothing sent under any number");
    // The next call gets its own answer.
    let b = m.start(example::methods::add, &(1i32, 1i32), DEADLINE, later).unwrap();
    let request = take(&mut m);
    assert_eq!(kinds(&request), [(1, b)]);
    server.receive(&request, DEADLINE, &mut service);
    let reply = server.outgoing().to_vec();
    let (_, incoming) = m.receive(&reply, DEADLINE);
    assert_eq!(incoming.and_then(Incoming::done), Some(Ok(&[4u8][..])), "add(1, 1) = 2");
}

#[cfg(feature = "cancel")]
#[test]
fn a_cancel_made_before_a_welcome_without_cancel_is_not_sent() {
    let mut m = Machine::with_identity(7, 0);
    let a = m.start(example::methods::add, &(2i32, 3i32), T0, DEADLINE).unwrap();
    let hello = kinds(&take(&mut m))[0].1;
    m.receive(&welcome_to(hello, false, None), T0);
    take(&mut m);
    assert_eq!(m.poll(DEADLINE), Some((a, Error::Timeout)));
    m.fail_link();
    let later = Instant::from_millis(3000);
    assert_eq!(m.resume(DEADLINE, later), Ok(a));
    let hello = kinds(&take(&mut m))[0].1;
    assert!(m.cancel(a, DEADLINE), "before the Welcome the client cannot know");
    m.receive(&welcome_to(hello, true, None), DEADLINE);
    assert_eq!(kinds(&take(&mut m)), [(1, a)], "the resumed request, not a Cancel");
}

#[cfg(feature = "deadlines")]
#[test]
fn the_size_check_is_made_on_the_frame_that_will_be_sent() {
    let mut m = Machine::with_identity(7, 0);
    m.set_budget_on_wire(true);
    // add(2, 3): 10 decoded bytes as a Timed Request, 8 plain.
    let a = m.start(example::methods::add, &(2i32, 3i32), T0, DEADLINE).unwrap();
    let hello = kinds(&take(&mut m))[0].1;
    m.receive(&welcome_to(hello, false, Some(Capabilities { rx: 8, tx: 64, features: Features::NONE })), T0);
    assert_eq!(kinds(&take(&mut m)), [(1, a)], "plain, and it fits");
}

#[test]
fn a_welcome_with_malformed_capabilities_is_dropped() {
    let mut m = Machine::with_identity(7, 0);
    m.start(example::methods::add, &(2i32, 3i32), T0, DEADLINE).unwrap();
    let hello = kinds(&take(&mut m))[0].1;
    // rx, then a varint cut short: the frame ends inside the capabilities.
    let truncated = raw_welcome(hello, &[0x80, 0x02, 0xfd]);
    assert_eq!(m.receive(&truncated, T0), (truncated.len(), None));
    assert!(m.outgoing().is_empty(), "no session opened");
    if cfg!(feature = "stats") {
        assert_eq!((m.stats().link.frames_in, m.stats().link.dropped_too_short, m.stats().sessions), (0, 1, 0));
    }
    // The well-formed one opens it.
    m.receive(&welcome_to(hello, false, None), T0);
    assert_eq!(kinds(&take(&mut m)).len(), 1);
}

fn welcome_to(seq: u16, resumed: bool, caps: Option<Capabilities>) -> Vec<u8> {
    let mut buf = [0u8; 32];
    encode_welcome(seq, 0, resumed, 1, caps, &mut buf).unwrap().to_vec()
}

/// A Welcome whose bytes after the window are `caps`, whatever they are.
fn raw_welcome(seq: u16, caps: &[u8]) -> Vec<u8> {
    let [lo, hi] = seq.to_le_bytes();
    let mut decoded = vec![0x15, lo, hi, 0, 0, 0, 0, 0, 1];
    decoded.extend_from_slice(caps);
    let crc = wirecall::wire::CRC.checksum(&decoded).to_le_bytes();
    decoded.extend_from_slice(&crc);
    let mut out = vec![0u8; decoded.len() + 4];
    let n = cobs::encode(&decoded, &mut out);
    out.truncate(n);
    out.push(0);
    out
}
