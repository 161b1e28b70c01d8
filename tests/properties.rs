//! Property tests: every frame type survives encode → stream → decode unchanged,
//! and no byte sequence makes a decoder or a state machine panic or lose a good
//! frame that follows a delimiter.

use proptest::prelude::*;
use wirecall::machine::{ClientMachine, ServerMachine};
use wirecall::wire::{
    Decoded, Encoded, Frame, FrameDecoder, Status, encode_hello, encode_reply, encode_request, encode_status,
    encode_welcome,
};
use wirecall::{Dispatch, Instant, Method, Refused, Replied, Responder};

/// Decodes exactly one frame from `wire` and returns its decoded bytes.
fn decode_one(wire: &[u8]) -> Vec<u8> {
    let mut dec = FrameDecoder::<600>::new();
    let (used, event) = dec.feed(wire);
    assert_eq!((used, event), (wire.len(), Some(Decoded::Frame)));
    dec.frame().to_vec()
}

fn status() -> impl Strategy<Value = Status> {
    any::<u8>().prop_map(Status::from_code)
}

/// Answers method 1 with its argument bytes, refuses the rest.
struct Mirror;

impl Dispatch for Mirror {
    fn dispatch(&mut self, method: u16, args: &[u8], responder: Responder<'_>) -> Result<Replied, Refused> {
        if method == 1 { Ok(responder.reply(&Encoded(args))) } else { Err(Refused::UnknownMethod) }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn requests_round_trip(seq: u16, method: u16, args in proptest::collection::vec(any::<u8>(), 0..500)) {
        let mut buf = [0u8; 600];
        let wire = encode_request(seq, method, &Encoded(&args), &mut buf).unwrap().to_vec();
        prop_assert_eq!(wire.last(), Some(&0));
        prop_assert!(!wire[..wire.len() - 1].contains(&0));
        prop_assert!(wire.len() <= 3 + 3 + args.len() + 2 + wirecall::wire::stream_overhead(3 + 3 + args.len() + 2));
        let decoded = decode_one(&wire);
        prop_assert_eq!(Frame::parse(&decoded), Ok(Frame::Request { seq, method, budget_ms: None, args: &args, oneway: false }));
    }

    #[test]
    fn replies_round_trip(seq: u16, value in proptest::collection::vec(any::<u8>(), 0..500)) {
        let mut buf = [0u8; 600];
        let wire = encode_reply(seq, &Encoded(&value), &mut buf).unwrap().to_vec();
        let decoded = decode_one(&wire);
        prop_assert_eq!(Frame::parse(&decoded), Ok(Frame::Reply { seq, value: &value }));
    }

    #[test]
    fn statuses_round_trip(seq: u16, status in status()) {
        let mut buf = [0u8; 16];
        let wire = encode_status(seq, status, &mut buf).unwrap().to_vec();
        prop_assert_eq!(wire.len(), 8);
        let decoded = decode_one(&wire);
        prop_assert_eq!(Frame::parse(&decoded), Ok(Frame::Status { seq, status }));
    }

    #[test]
    fn hellos_and_welcomes_round_trip(
        seq: u16,
        id: u32,
        flag: bool,
        window: u8,
        caps in proptest::option::of((any::<u32>(), any::<u32>(), any::<u32>())),
    ) {
        let mut buf = [0u8; wirecall::wire::MAX_WELCOME_LEN];
        let wire = encode_hello(seq, id, flag, &mut buf).unwrap().to_vec();
        let decoded = decode_one(&wire);
        prop_assert_eq!(Frame::parse(&decoded), Ok(Frame::Hello { seq, client_id: id, fresh: flag }));
        let caps = caps.map(|(rx, tx, f)| wirecall::wire::Capabilities { rx, tx, features: wirecall::wire::Features(f) });
        let wire = encode_welcome(seq, id, flag, window, caps, &mut buf).unwrap().to_vec();
        prop_assert_eq!(wirecall::wire::decoded_len(&wire), decode_one(&wire).len() + 2, "with its CRC");
        let decoded = decode_one(&wire);
        let Ok(Frame::Welcome { seq: s, boot_id, resumed, window: w, caps: raw }) = Frame::parse(&decoded) else {
            panic!("a Welcome")
        };
        prop_assert_eq!((s, boot_id, resumed, w), (seq, id, flag, window));
        prop_assert_eq!(raw.get(), Ok(caps));
    }

    #[test]
    fn any_garbage_then_a_delimiter_then_a_frame_gives_the_frame(
        garbage in proptest::collection::vec(any::<u8>(), 0..400),
        seq: u16,
        value: i32,
    ) {
        let mut buf = [0u8; 32];
        let frame = encode_reply(seq, &value, &mut buf).unwrap().to_vec();
        let stream = [garbage.as_slice(), &[0], &frame].concat();
        let mut dec = FrameDecoder::<64>::new();
        let mut rest = stream.as_slice();
        let mut last = None;
        while !rest.is_empty() {
            let (used, event) = dec.feed(rest);
            prop_assert!(used > 0);
            rest = &rest[used..];
            if event == Some(Decoded::Frame) {
                last = Some(dec.frame().to_vec());
            }
        }
        let expected = postcard::to_stdvec(&value).unwrap();
        let last = last.unwrap();
        prop_assert_eq!(Frame::parse(&last), Ok(Frame::Reply { seq, value: &expected }));
    }

    #[test]
    fn a_server_survives_any_input_and_then_answers_a_good_session(
        chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 0..20),
        arg: u32,
    ) {
        let mut server = ServerMachine::<64, 64>::new();
        for chunk in &chunks {
            let mut rest = chunk.as_slice();
            while !rest.is_empty() {
                let used = server.receive(rest, Instant::ZERO, &mut Mirror);
                rest = &rest[used..];
                let n = server.outgoing().len();
                server.wrote(n);
            }
        }
        let mut buf = [0u8; 64];
        let mut stream = vec![0];
        stream.extend_from_slice(encode_hello(1, 9, true, &mut buf).unwrap());
        stream.extend_from_slice(encode_request(2, 1, &(arg,), &mut buf).unwrap());
        let mut answers = Vec::new();
        let mut rest = stream.as_slice();
        while !rest.is_empty() {
            let used = server.receive(rest, Instant::ZERO, &mut Mirror);
            rest = &rest[used..];
            if !server.outgoing().is_empty() {
                answers.push(decode_one(server.outgoing()));
                let n = server.outgoing().len();
                server.wrote(n);
            }
        }
        let expected = postcard::to_stdvec(&arg).unwrap();
        prop_assert_eq!(answers.len(), 2);
        prop_assert_eq!(Frame::parse(&answers[1]), Ok(Frame::Reply { seq: 2, value: &expected }));
    }

    #[test]
    fn a_client_survives_any_input_and_then_takes_its_answer(
        chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 0..20),
        value: u16,
    ) {
        let mut client = ClientMachine::<64, 64>::with_identity(0, 100);
        let deadline = Instant::from_millis(1000);
        client.start(Method::new(1), &(), Instant::ZERO, deadline).unwrap();
        let n = client.outgoing().len();
        client.wrote(n);
        for chunk in &chunks {
            let mut rest = chunk.as_slice();
            while !rest.is_empty() {
                let (used, outcome) = client.receive(rest, Instant::ZERO);
                rest = &rest[used..];
                // Garbage can end the handshake only with a frame that checks: vanishingly rare.
                if outcome.is_some() {
                    return Ok(());
                }
            }
        }
        let mut buf = [0u8; 32];
        let mut stream = vec![0];
        stream.extend_from_slice(encode_welcome(100, 1, false, 1, None, &mut buf).unwrap());
        stream.extend_from_slice(encode_reply(101, &value, &mut buf).unwrap());
        let mut rest = stream.as_slice();
        let mut got = None;
        while !rest.is_empty() && got.is_none() {
            let (used, outcome) = client.receive(rest, Instant::ZERO);
            rest = &rest[used..];
            if let Some(outcome) = outcome.and_then(wirecall::machine::Incoming::done) {
                got = Some(outcome.map(|v| v.to_vec()));
            }
            let n = client.outgoing().len();
            client.wrote(n);
        }
        prop_assert_eq!(got, Some(Ok(postcard::to_stdvec(&value).unwrap())));
    }
}
