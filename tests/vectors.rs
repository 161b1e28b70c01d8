//! The test vectors of PROTOCOL.md §9, read from PROTOCOL.md itself, checked
//! against the crate in every direction: encoding, decoding, the server
//! machine's answer and the client machine's request.

mod common;

use common::{hex, unhex};
use wirecall::Instant;
use wirecall::heapless::String;
use wirecall::machine::{ClientMachine, Incoming, ServerMachine};
use wirecall::wire::{
    Capabilities, Decoded, Features, Frame, FrameDecoder, Status, WelcomeCaps, encode_cancel, encode_credit,
    encode_end, encode_event, encode_extension, encode_hello, encode_item, encode_oneway, encode_reply, encode_request,
    encode_status, encode_timed_request, encode_welcome,
};

wirecall::service! {
    /// PROTOCOL.md's example service.
    pub mod example {
        /// "Hello <name>".
        fn greet(name: &str) -> String<32> = 1;
        /// a + b
        fn add(a: i32, b: i32) -> i32 = 2;
    }
}

struct Example;

impl example::Service for Example {
    fn greet(&mut self, name: &str) -> String<32> {
        let mut s = String::new();
        s.push_str("Hello ").unwrap();
        s.push_str(name).unwrap();
        s
    }
    fn add(&mut self, a: i32, b: i32) -> i32 {
        a.wrapping_add(b)
    }
}

/// The capabilities of the `welcome` vector: a server with 256-byte buffers and
/// every optional part (PROTOCOL.md §4.1, §9).
const CAPS_256: Capabilities = Capabilities {
    rx: 256,
    tx: 253,
    features: Features(Features::TIMED_REQUESTS.0 | Features::CANCEL.0 | Features::STREAMS.0 | Features::EVENTS.0),
};

/// The Welcome a `ServerMachine<256, 256>` of this build sends to the `hello`
/// vector: the `welcome` vector when the build has every optional part (the
/// default features), else the same with fewer feature bits.
fn welcome_of_this_build() -> Vec<u8> {
    if Features::BUILT_IN == CAPS_256.features {
        return vector("welcome");
    }
    let mut buf = [0u8; 64];
    let caps = Capabilities { features: Features::BUILT_IN, ..CAPS_256 };
    encode_welcome(0xffff, 0, false, 1, Some(caps), &mut buf).unwrap().to_vec()
}

/// What a server of this build answers: the vector, or for `welcome`, the
/// Welcome of this build.
fn answer_of_this_build(name: &str) -> Vec<u8> {
    if name == "welcome" { welcome_of_this_build() } else { vector(name) }
}

/// The `name hex` lines of the block in PROTOCOL.md §9.
fn vectors() -> Vec<(&'static str, Vec<u8>)> {
    let spec = include_str!("../PROTOCOL.md");
    let section = spec.split("## 9. Test vectors").nth(1).expect("§9 in PROTOCOL.md");
    let block = section.split("```text").nth(1).and_then(|b| b.split("```").next()).expect("a text block in §9");
    block.lines().filter_map(|line| line.split_once(' ')).map(|(name, bytes)| (name, unhex(bytes.trim()))).collect()
}

fn vector(name: &str) -> Vec<u8> {
    vectors().into_iter().find(|(n, _)| *n == name).unwrap_or_else(|| panic!("no vector {name}")).1
}

fn encoded(name: &str) -> Vec<u8> {
    let mut buf = [0u8; 160];
    let frame = match name {
        "hello" | "hello_again" => encode_hello(0xffff, 0, true, &mut buf),
        "welcome" => encode_welcome(0xffff, 0, false, 1, Some(CAPS_256), &mut buf),
        "welcome_without_capabilities" => encode_welcome(0xffff, 0, false, 1, None, &mut buf),
        "extension_to_server" => encode_extension(true, 0, 0xf000, &[1, 2], &mut buf),
        "extension_to_client" => encode_extension(false, 0, 0xf000, &[1, 2], &mut buf),
        "no_session_status" => encode_status(0, Status::FailedPrecondition, &mut buf),
        "aborted_status" => encode_status(0, Status::Aborted, &mut buf),
        "resume_hello" => encode_hello(3, 0x0102_0304, false, &mut buf),
        "resumed_welcome" => encode_welcome(3, 0xa1b2_c3d4, true, 1, None, &mut buf),
        "ping_request" => encode_request(5, wirecall::machine::builtin::PING, &(), &mut buf),
        "ping_reply" => encode_reply(5, &(), &mut buf),
        "add_request" => encode_request(0, 2, &(2i32, 3i32), &mut buf),
        "add_reply" => encode_reply(0, &5i32, &mut buf),
        "greet_request" => encode_request(1, 1, &("Ada",), &mut buf),
        "greet_reply" => encode_reply(1, "Hello Ada", &mut buf),
        "unknown_method_request" => encode_request(2, 99, &(), &mut buf),
        "unknown_method_status" => encode_status(2, Status::Unimplemented, &mut buf),
        "wrapped_seq_request" => encode_request(0xffff, 2, &(-1i32, 300i32), &mut buf),
        "large_method_id_request" => encode_request(7, 0x0180, &(), &mut buf),
        "timed_request" => encode_timed_request(0, 2, 250, &(2i32, 3i32), &mut buf),
        "expired_request" => encode_timed_request(0, 2, 0, &(2i32, 3i32), &mut buf),
        "deadline_status" => encode_status(0, Status::DeadlineExceeded, &mut buf),
        "describe_request" => encode_request(0, wirecall::machine::builtin::DESCRIBE, &(0u32, 255u16), &mut buf),
        "describe_reply" => {
            // (fingerprint, total, chunk): the whole document in one chunk.
            let document = example_document();
            encode_reply(0, &(0xde33_f72c_90a6_e335u64, document.len() as u32, document.as_slice()), &mut buf)
        }
        "cancel" => encode_cancel(5, &mut buf),
        "cancelled_status" => encode_status(5, Status::Cancelled, &mut buf),
        "credit" => encode_credit(5, 4, &mut buf),
        "item" => encode_item(5, 0, &21i32, &mut buf),
        "end" => encode_end(5, None, 3, &mut buf),
        "end_cancelled" => encode_end(5, Some(Status::Cancelled), 2, &mut buf),
        "oneway_request" => encode_oneway(6, 3, &(true,), &mut buf),
        "event" => encode_event(0, 1, &1234u16, &mut buf),
        other => panic!("PROTOCOL.md has a vector {other} that no test checks"),
    };
    frame.unwrap().to_vec()
}

/// The example service's describe document (PROTOCOL.md §3.2), as §9 spells it out.
fn example_document() -> Vec<u8> {
    unhex(concat!(
        "076578616d706c650002",
        "0567726565740100",
        "0567726565741a01046e616d6503737472101368656170",
        "6c6573733a3a537472696e673c4e3e10",
        "036164640200",
        "036164641a0201610369333204016203693332040369333204",
    ))
}

/// Decodes one on-wire frame; returns its decoded bytes (CRC removed) and the bytes consumed.
fn decode(bytes: &[u8]) -> (Vec<u8>, usize) {
    let mut dec = FrameDecoder::<160>::new();
    let (used, event) = dec.feed(bytes);
    assert_eq!(event, Some(Decoded::Frame), "{}", hex(bytes));
    (dec.frame().to_vec(), used)
}

#[test]
fn spec_lists_the_vectors_the_issue_requires() {
    let names: Vec<_> = vectors().into_iter().map(|(n, _)| n).collect();
    for required in
        ["add_request", "add_reply", "greet_request", "greet_reply", "unknown_method_status", "hello", "welcome"]
    {
        assert!(names.contains(&required), "{required} missing from PROTOCOL.md");
    }
}

#[test]
fn encoding_matches_every_vector() {
    for (name, bytes) in vectors() {
        assert_eq!(hex(&encoded(name)), hex(&bytes), "{name}");
    }
}

#[test]
fn decoding_every_vector_gives_its_fields() {
    let expect = |name: &str, frame: Frame<'_>| {
        let (decoded, used) = decode(&vector(name));
        assert_eq!(used, vector(name).len(), "{name}: the delimiter ends the frame");
        assert_eq!(Frame::parse(&decoded), Ok(frame), "{name}");
    };
    expect("add_request", Frame::Request { seq: 0, method: 2, budget_ms: None, args: &[0x04, 0x06], oneway: false });
    expect("add_reply", Frame::Reply { seq: 0, value: &[0x0a] });
    expect("greet_request", Frame::Request { seq: 1, method: 1, budget_ms: None, args: b"\x03Ada", oneway: false });
    expect("greet_reply", Frame::Reply { seq: 1, value: b"\x09Hello Ada" });
    expect("unknown_method_request", Frame::Request { seq: 2, method: 99, budget_ms: None, args: &[], oneway: false });
    expect("unknown_method_status", Frame::Status { seq: 2, status: Status::Unimplemented });
    expect(
        "wrapped_seq_request",
        Frame::Request { seq: 0xffff, method: 2, budget_ms: None, args: &[0x01, 0xd8, 0x04], oneway: false },
    );
    expect(
        "large_method_id_request",
        Frame::Request { seq: 7, method: 0x0180, budget_ms: None, args: &[], oneway: false },
    );
    expect("hello", Frame::Hello { seq: 0xffff, client_id: 0, fresh: true });
    // The capabilities as sent (three varints), and as read.
    let caps_256 = [0x80, 0x02, 0xfd, 0x01, 0x0f];
    expect(
        "welcome",
        Frame::Welcome { seq: 0xffff, boot_id: 0, resumed: false, window: 1, caps: WelcomeCaps(&caps_256) },
    );
    assert_eq!(WelcomeCaps(&caps_256).get(), Ok(Some(CAPS_256)));
    expect(
        "welcome_without_capabilities",
        Frame::Welcome { seq: 0xffff, boot_id: 0, resumed: false, window: 1, caps: WelcomeCaps::NONE },
    );
    expect("hello_again", Frame::Hello { seq: 0xffff, client_id: 0, fresh: true });
    expect("no_session_status", Frame::Status { seq: 0, status: Status::FailedPrecondition });
    expect("aborted_status", Frame::Status { seq: 0, status: Status::Aborted });
    expect("resume_hello", Frame::Hello { seq: 3, client_id: 0x0102_0304, fresh: false });
    expect(
        "resumed_welcome",
        Frame::Welcome { seq: 3, boot_id: 0xa1b2_c3d4, resumed: true, window: 1, caps: WelcomeCaps::NONE },
    );
    expect("ping_request", Frame::Request { seq: 5, method: 0xff00, budget_ms: None, args: &[], oneway: false });
    expect("ping_reply", Frame::Reply { seq: 5, value: &[] });
    #[cfg(feature = "deadlines")]
    expect(
        "timed_request",
        Frame::Request { seq: 0, method: 2, budget_ms: Some(250), args: &[0x04, 0x06], oneway: false },
    );
    #[cfg(feature = "deadlines")]
    expect(
        "expired_request",
        Frame::Request { seq: 0, method: 2, budget_ms: Some(0), args: &[0x04, 0x06], oneway: false },
    );
    expect("deadline_status", Frame::Status { seq: 0, status: Status::DeadlineExceeded });
    expect(
        "describe_request",
        Frame::Request { seq: 0, method: 0xff01, budget_ms: None, args: &[0x00, 0xff, 0x01], oneway: false },
    );
    #[cfg(feature = "cancel")]
    expect("cancel", Frame::Cancel { seq: 5 });
    expect("cancelled_status", Frame::Status { seq: 5, status: Status::Cancelled });
    #[cfg(feature = "streams")]
    {
        expect("credit", Frame::Credit { seq: 5, limit: 4 });
        expect("item", Frame::Item { seq: 5, index: 0, value: &[0x2a] });
        expect("end", Frame::End { seq: 5, status: None, items: 3 });
        expect("end_cancelled", Frame::End { seq: 5, status: Some(Status::Cancelled), items: 2 });
    }
    #[cfg(feature = "events")]
    {
        expect("oneway_request", Frame::Request { seq: 6, method: 3, budget_ms: None, args: &[0x01], oneway: true });
        expect("event", Frame::Event { seq: 0, topic: 1, payload: &[0xd2, 0x09] });
    }
    let (decoded, _) = decode(&vector("describe_reply"));
    let Ok(Frame::Reply { seq: 0, value }) = Frame::parse(&decoded) else { panic!("describe_reply is a Reply") };
    let (fingerprint, total, chunk): (u64, u32, &[u8]) = postcard::from_bytes(value).unwrap();
    assert_eq!((fingerprint, total, chunk), (0xde33_f72c_90a6_e335, 88, example_document().as_slice()));
}

#[cfg(feature = "deadlines")]
#[test]
fn a_server_refuses_a_request_whose_budget_is_spent_and_runs_one_with_time_left() {
    for (request, answer) in [("expired_request", "deadline_status"), ("timed_request", "add_reply")] {
        let mut server = ServerMachine::<256, 256>::new();
        let mut service = example::Dispatcher(Example);
        for (request, answer) in [("hello", "welcome"), (request, answer)] {
            let bytes = vector(request);
            assert_eq!(server.receive(&bytes, Instant::ZERO, &mut service), bytes.len());
            assert_eq!(hex(server.outgoing()), hex(&answer_of_this_build(answer)), "{request}");
            server.wrote(server.outgoing().len());
        }
    }
}

#[cfg(feature = "describe")]
#[test]
fn the_example_description_is_the_spec_document() {
    assert_eq!(hex(&postcard::to_allocvec(&example::DESCRIPTION).unwrap()), hex(&example_document()));
    assert_eq!(example::DESCRIPTION.fingerprint().0, 0xde33_f72c_90a6_e335);
    // A server with a transmit buffer large enough answers the vector with the vector.
    let mut server = ServerMachine::<256, 256>::new();
    let mut service = example::Dispatcher(Example);
    for (request, answer) in [("hello", "welcome"), ("describe_request", "describe_reply")] {
        let bytes = vector(request);
        assert_eq!(server.receive(&bytes, Instant::ZERO, &mut service), bytes.len());
        assert_eq!(hex(server.outgoing()), hex(&answer_of_this_build(answer)), "{request}");
        server.wrote(server.outgoing().len());
    }
}

#[test]
fn server_plays_the_session_of_the_vectors() {
    let mut server = ServerMachine::<256, 256>::new();
    let mut service = example::Dispatcher(Example);
    // Before any Hello, a request is refused with FAILED_PRECONDITION.
    let add = vector("add_request");
    assert_eq!(server.receive(&add, Instant::ZERO, &mut service), add.len());
    assert_eq!(hex(server.outgoing()), hex(&vector("no_session_status")));
    server.wrote(server.outgoing().len());
    for (request, answer) in [
        ("hello", "welcome"),
        ("add_request", "add_reply"),
        ("greet_request", "greet_reply"),
        ("unknown_method_request", "unknown_method_status"),
    ] {
        let bytes = vector(request);
        assert_eq!(server.receive(&bytes, Instant::ZERO, &mut service), bytes.len());
        assert_eq!(hex(server.outgoing()), hex(&answer_of_this_build(answer)), "{request}");
        server.wrote(server.outgoing().len());
    }
    // The built-in ping, in the same session.
    if cfg!(feature = "builtins") {
        let ping = vector("ping_request");
        assert_eq!(server.receive(&ping, Instant::ZERO, &mut service), ping.len());
        assert_eq!(hex(server.outgoing()), hex(&vector("ping_reply")));
        server.wrote(server.outgoing().len());
    }
    // A repeat of call 0 is an older number with its answer evicted: ABORTED.
    assert_eq!(server.receive(&add, Instant::ZERO, &mut service), add.len());
    assert_eq!(hex(server.outgoing()), hex(&vector("aborted_status")));
}

#[test]
fn client_plays_the_session_of_the_vectors() {
    let mut client = ClientMachine::<64, 64>::with_identity(0, 0xffff);
    let deadline = Instant::from_millis(1000);
    let send = |client: &mut ClientMachine<64, 64>| {
        let out = client.outgoing().to_vec();
        client.wrote(out.len());
        hex(&out)
    };
    client.start(example::methods::add, &(2i32, 3i32), Instant::ZERO, deadline).unwrap();
    // The first frame on a link is preceded by one 0x00 (PROTOCOL.md §2).
    assert_eq!(send(&mut client), format!("00{}", hex(&vector("hello"))));
    assert_eq!(client.receive(&vector("welcome"), Instant::ZERO).1, None);
    assert_eq!(send(&mut client), hex(&vector("add_request")));
    let (used, outcome) = client.receive(&vector("add_reply"), Instant::ZERO);
    assert_eq!(used, vector("add_reply").len());
    assert_eq!(outcome.and_then(Incoming::done).unwrap().unwrap(), &[0x0a]);

    client.start(example::methods::greet, &("Ada",), Instant::ZERO, deadline).unwrap();
    assert_eq!(send(&mut client), hex(&vector("greet_request")));
    let (_, outcome) = client.receive(&vector("greet_reply"), Instant::ZERO);
    assert_eq!(postcard::from_bytes::<&str>(outcome.and_then(Incoming::done).unwrap().unwrap()).unwrap(), "Hello Ada");

    client.start(wirecall::Method::new(99), &(), Instant::ZERO, deadline).unwrap();
    assert_eq!(send(&mut client), hex(&vector("unknown_method_request")));
    let (_, outcome) = client.receive(&vector("unknown_method_status"), Instant::ZERO);
    let error = outcome.and_then(Incoming::done).unwrap().unwrap_err();
    assert_eq!(error, wirecall::Error::Status(Status::Unimplemented));
    assert!(!error.may_have_executed());
}

/// The example service, counting the handlers that ran.
#[cfg(any(feature = "cancel", feature = "events"))]
#[derive(Default)]
struct Counted {
    runs: u32,
}

#[cfg(any(feature = "cancel", feature = "events"))]
impl example::Service for Counted {
    fn greet(&mut self, name: &str) -> String<32> {
        self.runs += 1;
        Example.greet(name)
    }
    fn add(&mut self, a: i32, b: i32) -> i32 {
        self.runs += 1;
        Example.add(a, b)
    }
}

/// Feeds the whole of `frame` to `server` and returns what it answered (sent at once).
#[cfg(any(feature = "cancel", feature = "events"))]
fn answer<S: wirecall::Dispatch>(
    server: &mut ServerMachine<256, 256>,
    frame: &[u8],
    service: &mut S,
) -> std::string::String {
    assert_eq!(server.receive(frame, Instant::ZERO, service), frame.len());
    let out = server.outgoing().to_vec();
    server.wrote(out.len());
    hex(&out)
}

#[cfg(feature = "cancel")]
#[test]
fn a_server_answers_a_cancel_for_a_call_it_never_saw_cancelled_and_never_runs_it() {
    let mut server = ServerMachine::<256, 256>::new();
    let mut service = example::Dispatcher(Counted::default());
    assert_eq!(answer(&mut server, &vector("hello"), &mut service), hex(&welcome_of_this_build()));
    // Call 5 never arrived: the Cancel is its first and final answer.
    assert_eq!(answer(&mut server, &vector("cancel"), &mut service), hex(&vector("cancelled_status")));
    // A copy of the Cancel, and a later copy of the request, get the same answer.
    assert_eq!(answer(&mut server, &vector("cancel"), &mut service), hex(&vector("cancelled_status")));
    let mut buf = [0u8; 32];
    let add = encode_request(5, 2, &(2i32, 3i32), &mut buf).unwrap().to_vec();
    assert_eq!(answer(&mut server, &add, &mut service), hex(&vector("cancelled_status")));
    assert_eq!(service.0.runs, 0, "a cancelled call never runs");
    // The next call runs as usual.
    let add = encode_request(6, 2, &(2i32, 3i32), &mut buf).unwrap().to_vec();
    assert_eq!(answer(&mut server, &add, &mut service), hex(encode_reply(6, &5i32, &mut [0u8; 16]).unwrap()));
    assert_eq!(service.0.runs, 1);
    #[cfg(feature = "stats")]
    assert_eq!((server.stats().cancelled, server.stats().duplicates, server.stats().dispatched), (1, 1, 1));
}

#[cfg(feature = "cancel")]
#[test]
fn a_server_answers_a_cancel_for_an_answered_call_with_its_answer() {
    let mut server = ServerMachine::<256, 256>::new();
    let mut service = example::Dispatcher(Counted::default());
    assert_eq!(answer(&mut server, &vector("hello"), &mut service), hex(&welcome_of_this_build()));
    assert_eq!(answer(&mut server, &vector("add_request"), &mut service), hex(&vector("add_reply")));
    // Too late: the call ran, and cancelling rolls nothing back.
    let mut buf = [0u8; 32];
    let cancel = encode_cancel(0, &mut buf).unwrap().to_vec();
    assert_eq!(answer(&mut server, &cancel, &mut service), hex(&vector("add_reply")));
    assert_eq!(service.0.runs, 1);
}

#[cfg(feature = "cancel")]
#[test]
fn a_client_cancels_a_sent_call_with_the_cancel_vector() {
    let mut client = ClientMachine::<64, 64>::with_identity(0, 4);
    let send = |client: &mut ClientMachine<64, 64>| {
        let out = client.outgoing().to_vec();
        client.wrote(out.len());
        hex(&out)
    };
    let seq = client.start(example::methods::add, &(2i32, 3i32), Instant::ZERO, Instant::from_millis(1000)).unwrap();
    assert_eq!(seq, 5);
    send(&mut client); // the Hello, sequence 4
    let mut buf = [0u8; 32];
    let welcome = encode_welcome(4, 0, false, 1, Some(common::CAPS), &mut buf).unwrap().to_vec();
    assert_eq!(client.receive(&welcome, Instant::ZERO).1, None);
    send(&mut client); // the request, sequence 5
    assert!(client.cancel(5, Instant::ZERO));
    assert_eq!(send(&mut client), hex(&vector("cancel")));
    let (_, outcome) = client.receive(&vector("cancelled_status"), Instant::ZERO);
    let error = outcome.and_then(Incoming::done).unwrap().unwrap_err();
    assert_eq!(error, wirecall::Error::Status(Status::Cancelled));
    assert!(!error.may_have_executed());
}

#[cfg(feature = "events")]
#[test]
fn a_one_way_request_is_never_answered_and_takes_its_number() {
    let mut server = ServerMachine::<256, 256>::new();
    let mut service = example::Dispatcher(Counted::default());
    // Outside a session it is dropped, unanswered.
    assert_eq!(answer(&mut server, &vector("oneway_request"), &mut service), "");
    assert_eq!(answer(&mut server, &vector("hello"), &mut service), hex(&welcome_of_this_build()));
    // Method 3 does not exist: refused, and still unanswered.
    assert_eq!(answer(&mut server, &vector("oneway_request"), &mut service), "");
    // Its number is taken: a request under it does not run.
    let mut buf = [0u8; 32];
    let add = encode_request(6, 2, &(2i32, 3i32), &mut buf).unwrap().to_vec();
    assert_eq!(
        answer(&mut server, &add, &mut service),
        hex(encode_status(6, Status::Aborted, &mut [0u8; 16]).unwrap())
    );
    assert_eq!(service.0.runs, 0);
}

#[cfg(feature = "events")]
#[test]
fn a_client_sends_the_one_way_vector_once_a_session_is_open() {
    let mut client = ClientMachine::<64, 64>::with_identity(0, 5);
    let seq =
        client.start_oneway(wirecall::Method::new(3), &(true,), Instant::ZERO, Instant::from_millis(1000)).unwrap();
    assert_eq!(seq, 6);
    let hello = client.outgoing().to_vec();
    client.wrote(hello.len());
    let mut buf = [0u8; 32];
    let welcome = encode_welcome(5, 0, false, 1, Some(common::CAPS), &mut buf).unwrap().to_vec();
    assert_eq!(client.receive(&welcome, Instant::ZERO).1, None);
    let out = client.outgoing().to_vec();
    assert_eq!(hex(&out), hex(&vector("oneway_request")));
    client.wrote(out.len());
    assert!(!client.is_in_flight(6), "a one-way call ends once sent");
}

#[cfg(feature = "events")]
#[test]
fn a_server_emits_the_event_vector_and_a_client_delivers_it() {
    let mut server = ServerMachine::<256, 256>::new();
    server.emit(wirecall::Topic::<u16>::new(1), &1234).unwrap();
    assert_eq!(hex(server.outgoing()), hex(&vector("event")), "the first event is number 0, session or not");
    let mut client = ClientMachine::<64, 64>::new();
    let (used, delivered) = client.receive(&vector("event"), Instant::ZERO);
    assert_eq!(used, vector("event").len());
    assert_eq!(delivered, Some(Incoming::Event { seq: 0, topic: 1, payload: &[0xd2, 0x09] }));
}

#[cfg(feature = "streams")]
#[test]
fn a_client_plays_the_stream_vectors() {
    let mut client = ClientMachine::<64, 64>::with_identity(0, 4);
    let send = |client: &mut ClientMachine<64, 64>| {
        let out = client.outgoing().to_vec();
        client.wrote(out.len());
        hex(&out)
    };
    let method = wirecall::Method::new(4);
    let seq = client.start_stream(method, &(), 4, Instant::ZERO, Instant::from_millis(1000)).unwrap();
    assert_eq!(seq, 5);
    send(&mut client); // the Hello, sequence 4
    let mut buf = [0u8; 32];
    let welcome = encode_welcome(4, 0, false, 1, Some(common::CAPS), &mut buf).unwrap().to_vec();
    assert_eq!(client.receive(&welcome, Instant::ZERO).1, None);
    assert_eq!(send(&mut client), hex(encode_request(5, 4, &(), &mut buf).unwrap()));
    // The credit follows the request.
    assert_eq!(send(&mut client), hex(&vector("credit")));
    let (_, delivered) = client.receive(&vector("item"), Instant::ZERO);
    assert_eq!(delivered, Some(Incoming::Item { seq: 5, index: 0, value: &[0x2a] }));
    // The End counts 3 items sent; one arrived.
    let (_, delivered) = client.receive(&vector("end"), Instant::ZERO);
    let Some(Incoming::End { seq: 5, end }) = delivered else { panic!("an End: {delivered:?}") };
    assert_eq!((end.sent, end.received, end.status, end.is_complete()), (3, 1, None, false));
    assert!(!client.is_in_flight(5));
}

#[cfg(not(feature = "cancel"))]
#[test]
fn without_feature_cancel_a_cancel_is_a_reserved_kind() {
    let (decoded, _) = decode(&vector("cancel"));
    assert_eq!(Frame::parse(&decoded), Err(wirecall::wire::ParseError::Kind(7)));
}

#[test]
fn size_bars_from_the_issue() {
    assert!(vector("add_request").len() <= 10);
    assert!(vector("add_reply").len() <= 8);
}
