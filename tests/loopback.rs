//! Calls over the in-memory loopback link, through the real blocking drivers:
//! every outcome class, and the byte-stream abuse a serial line inflicts.

mod common;

use std::time::Duration;

use common::{Demo, DivError, OneByte, accept_session, demo, read_frame, serve_demo, spawn_server, spawn_sized_server};
use wirecall::embedded_io::Write;
use wirecall::link::loopback::{self, Direction};
use wirecall::machine::ClientMachine;
use wirecall::wire::{Frame, encode_hello, encode_reply, encode_request};
use wirecall::{Call, Client, Error, Executed, Method, RetryPolicy, Status, StdClock};

type Stub<L> = demo::Client<Client<L, StdClock>>;

fn stub<L: wirecall::Link>(link: L) -> Stub<L> {
    demo::Client(Client::new(link, StdClock::new()))
}

#[test]
fn happy_path_every_method() {
    let (host, demo, server) = serve_demo();
    let mut board = stub(host);
    assert_eq!(board.greet("Ada").unwrap().as_str(), "Hello Ada");
    assert_eq!(board.add(2, 3).unwrap(), 5);
    assert_eq!(board.add(i32::MAX, 1).unwrap(), i32::MIN);
    assert_eq!(board.bump().unwrap(), 4);
    assert_eq!(board.echo(&[1, 2, 0, 0, 3]).unwrap().as_slice(), &[1, 2, 0, 0, 3]);
    assert_eq!(board.echo(&[0u8; 200]).unwrap().len(), 200, "200 bytes in one frame");
    assert_eq!(board.divide(7, 2).unwrap(), Ok(3));
    assert_eq!(demo.runs(), 7);
    let stats = board.0.stats();
    assert_counted!((stats.calls, stats.late_replies, stats.link.dropped()), (7, 0, 0));
    drop(board);
    let server = server.join().unwrap();
    assert_counted!((server.dispatched, server.refused, server.link.dropped()), (7, 0, 0));
}

#[test]
fn application_error_is_a_value_and_says_the_handler_ran() {
    let (host, demo, _server) = serve_demo();
    let mut board = stub(host);
    assert_eq!(board.divide(1, 0).unwrap(), Err(DivError::DivideByZero));
    assert_eq!(demo.runs(), 1);
}

#[test]
fn unknown_method_is_answered_not_executed() {
    let (host, demo, _server) = serve_demo();
    let mut client = Client::new(host, StdClock::new());
    let error = client.call::<_, i32>(Method::new(99), &(1i32,)).unwrap_err();
    assert_eq!(error, Error::Status(Status::Unimplemented));
    assert_eq!(error.executed(), Executed::No);
    assert!(!error.may_have_executed());
    assert_eq!(demo.runs(), 0);
    // and the link is fine afterwards
    assert_eq!(demo::Client(&mut client).add(2, 3).unwrap(), 5);
}

#[test]
fn undecodable_arguments_are_refused_before_dispatch() {
    let (host, demo, server) = serve_demo();
    let mut client = Client::new(host, StdClock::new());
    // add takes (i32, i32): one argument is too few, three are too many.
    for error in [
        client.call::<_, i32>(demo::methods::add, &(1i32,)).unwrap_err(),
        client.call::<_, i32>(demo::methods::add, &(1i32, 2i32, 3i32)).unwrap_err(),
        client.call::<_, i32>(demo::methods::greet, &([0xffu8, 0xff],)).unwrap_err(),
    ] {
        assert_eq!(error, Error::Status(Status::InvalidArgument));
        assert!(!error.may_have_executed());
    }
    assert_eq!(demo.runs(), 0);
    drop(client);
    assert_counted!(server.join().unwrap().refused, 3);
}

#[test]
fn reply_that_does_not_decode_is_bad_reply_and_ran() {
    let (host, demo, _server) = serve_demo();
    let mut client = Client::new(host, StdClock::new());
    // greet returns a string; asking for a u64 cannot decode it exactly.
    let error = client.call::<_, u64>(demo::methods::greet, &("Ada",)).unwrap_err();
    assert_eq!(error, Error::BadReply);
    assert_eq!(error.executed(), Executed::Yes);
    assert_eq!(demo.runs(), 1);
}

#[test]
fn oversized_request_is_refused_and_the_link_recovers() {
    let (host, board) = loopback::pair();
    let demo = Demo::default();
    let server = spawn_sized_server::<_, 64, 64>(board, demo.clone());
    // A client that read the server's capabilities refuses it itself, sending nothing.
    let mut board = stub(host);
    let error = board.echo(&[0x55; 150]).unwrap_err();
    assert_eq!(error, Error::TooLargeForServer { len: 158, max: 64 });
    assert!(!error.may_have_executed());
    // One that does not look (it predates capabilities) is refused by the server.
    let (mut raw, _) = board.0.into_parts();
    let mut buf = [0u8; 256];
    let hello = encode_hello(40, 1, true, &mut buf).unwrap().to_vec();
    raw.write_all(&hello).unwrap();
    assert!(matches!(Frame::parse(&read_frame(&mut raw)), Ok(Frame::Welcome { seq: 40, .. })));
    let request = encode_request(41, demo::ids::echo, &(&[0x55u8; 150][..],), &mut buf).unwrap().to_vec();
    raw.write_all(&request).unwrap();
    assert_eq!(Frame::parse(&read_frame(&mut raw)), Ok(Frame::Status { seq: 41, status: Status::ResourceExhausted }));
    assert_eq!(demo.runs(), 0);
    let mut board = stub(raw);
    assert_eq!(board.echo(&[1, 2, 3]).unwrap().as_slice(), &[1, 2, 3]);
    drop(board);
    let stats = server.join().unwrap();
    assert_counted!((stats.link.dropped_too_long, stats.refused, stats.dispatched), (1, 1, 1));
}

#[test]
fn request_too_large_for_the_client_is_not_sent() {
    let (host, demo, _server) = serve_demo();
    let mut small: Client<_, _, 64, 32> = Client::sized(host, StdClock::new());
    let error = demo::Client(&mut small).echo(&[7; 40]).unwrap_err();
    assert_eq!(error, Error::RequestTooLarge);
    assert!(!error.may_have_executed());
    assert_counted!(small.stats().link.frames_out, 0);
    assert_eq!(demo::Client(&mut small).add(1, 1).unwrap(), 2);
    assert_eq!(demo.runs(), 1);
}

#[test]
fn reply_too_large_for_the_client_ran_and_is_lost() {
    let (host, demo, _server) = serve_demo();
    let mut small: Client<_, _, 32, 256> = Client::sized(host, StdClock::new());
    let error = demo::Client(&mut small).echo(&[7; 40]).unwrap_err();
    assert_eq!(error, Error::ReplyTooLarge);
    assert_eq!(error.executed(), Executed::Yes);
    assert_eq!(demo.runs(), 1);
    assert_eq!(demo::Client(&mut small).add(1, 1).unwrap(), 2);
}

#[test]
fn garbage_between_frames_is_dropped_and_counted() {
    let (host, demo, server) = serve_demo();
    let mut board = stub(host);
    let long = [&[0xffu8; 300][..], &[0x00]].concat();
    let junk: [&[u8]; 4] = [&[0x42, 0x13, 0x99, 0x00], &long, &[0x00, 0x00, 0x05, 0x01, 0x00], &[0x02, 0x01, 0x00]];
    for garbage in junk {
        board.0.link_mut().write_all(garbage).unwrap();
        assert_eq!(board.add(20, 22).unwrap(), 42);
    }
    assert_eq!(demo.runs(), 4);
    drop(board);
    let stats = server.join().unwrap();
    assert_counted!(stats.dispatched, 4);
    assert_counted!((stats.link.dropped_cobs, stats.link.dropped_too_short), (3, 1), "{stats:?}");
}

#[test]
fn garbage_glued_to_a_request_costs_that_send_only() {
    // Noise with no delimiter after it merges with the next frame, which then
    // fails its CRC. The request is sent again under the same sequence number,
    // after a 0x00, and goes through; it runs once.
    let (host, demo, server) = serve_demo();
    let mut board = stub(host);
    assert_eq!(board.add(1, 1).unwrap(), 2);
    board.0.link_mut().write_all(&[0x31, 0x32, 0x33]).unwrap();
    assert_eq!(board.bump().unwrap(), 2);
    assert_counted!(board.0.stats().retries, 1);
    assert_eq!(demo.runs(), 2, "bump ran once");
    // Without retransmission the same noise costs the call: unknown, not run.
    board.0.set_retry_policy(RetryPolicy::NONE);
    board.0.set_timeout(Duration::from_millis(100));
    board.0.link_mut().write_all(&[0x31, 0x32, 0x33]).unwrap();
    let error = board.bump().unwrap_err();
    assert_eq!(error, Error::Timeout);
    assert!(error.may_have_executed());
    assert_eq!(demo.runs(), 2, "the swallowed bump never ran");
    assert_eq!(board.add(2, 2).unwrap(), 4);
    drop(board);
    let stats = server.join().unwrap();
    assert_counted!((stats.dispatched, stats.link.dropped_crc + stats.link.dropped_cobs), (3, 2));
}

#[test]
fn crc_failure_on_a_request_is_dropped_and_the_next_call_works() {
    let (host, demo, server) = serve_demo();
    let mut board = stub(host);
    let mut buf = [0u8; 16];
    let frame = encode_request(0x4444, demo::ids::bump, &(), &mut buf).unwrap();
    let mut bad = frame.to_vec();
    bad[2] ^= 0x10; // inside the COBS-encoded header
    board.0.link_mut().write_all(&bad).unwrap();
    assert_eq!(board.add(2, 3).unwrap(), 5);
    assert_eq!(demo.runs(), 1, "the corrupted bump never ran");
    drop(board);
    let stats = server.join().unwrap();
    assert_counted!(stats.link.dropped_crc, 1);
}

#[test]
fn crc_failure_on_a_reply_is_outcome_unknown() {
    // A raw "server" that answers with a corrupted reply.
    let (host, mut raw) = loopback::pair();
    let mut client = Client::new(host, StdClock::new());
    client.set_timeout(Duration::from_millis(100));
    let board = std::thread::spawn(move || {
        accept_session(&mut raw);
        let seq = Frame::parse(&read_frame(&mut raw)).unwrap().seq();
        let mut buf = [0u8; 16];
        let mut reply = encode_reply(seq, &5i32, &mut buf).unwrap().to_vec();
        reply[4] ^= 0x01;
        raw.write_all(&reply).unwrap();
        raw
    });
    let error = demo::Client(&mut client).add(2, 3).unwrap_err();
    assert_eq!(error, Error::Timeout);
    assert_eq!(error.executed(), Executed::Maybe);
    assert_counted!(client.stats().link.dropped_crc, 1);
    drop(board.join().unwrap());
}

#[test]
fn late_reply_after_a_timeout_is_discarded_and_the_next_call_works() {
    let (host, demo, _server) = serve_demo();
    let mut board = stub(host);
    board.0.set_timeout(Duration::from_millis(50));
    let error = board.sleep(300).unwrap_err();
    assert_eq!(error, Error::Timeout);
    assert!(error.may_have_executed());

    board.0.set_timeout(Duration::from_secs(10));
    // The server is still sleeping; its late reply to `sleep` arrives first.
    assert_eq!(board.add(2, 3).unwrap(), 5, "the late reply must not be taken for this call's");
    assert_counted_that!(board.0.stats().late_replies >= 1);
    assert_counted!(board.0.stats().timeouts, 1);
    assert_eq!(demo.runs(), 2);
}

#[test]
fn sequence_numbers_wrap_around() {
    let (host, demo, _server) = serve_demo();
    // The Hello takes 0xfffd; the calls 0xfffe, 0xffff, 0, 1, 2.
    let machine = ClientMachine::<256, 256>::with_identity(1, 0xfffd);
    let mut board = demo::Client(Client::with_machine(host, StdClock::new(), machine));
    for i in 0..5 {
        assert_eq!(board.add(i, 1).unwrap(), i + 1);
    }
    assert_eq!(board.0.machine().next_seq(), 3);
    assert_eq!(demo.runs(), 5);
}

#[test]
fn one_byte_at_a_time_both_ways() {
    let (host, board) = loopback::pair();
    let demo = Demo::default();
    let server = spawn_server(OneByte(board), demo.clone());
    let mut client = stub(OneByte(host));
    assert_eq!(client.greet("Ada").unwrap().as_str(), "Hello Ada");
    assert_eq!(client.echo(&[9; 180]).unwrap().as_slice(), &[9; 180]);
    assert_eq!(client.add(-2, -3).unwrap(), -5);
    drop(client);
    assert_counted!(server.join().unwrap().dispatched, 3);
}

#[test]
fn several_requests_in_one_read_each_get_an_answer() {
    let (mut raw, board) = loopback::pair();
    let demo = Demo::default();
    let _server = spawn_server(board, demo.clone());
    let mut stream = Vec::new();
    let mut buf = [0u8; 32];
    stream.extend_from_slice(encode_hello(9, 1, true, &mut buf).unwrap());
    stream.extend_from_slice(encode_request(10, demo::ids::add, &(1i32, 2i32), &mut buf).unwrap());
    stream.extend_from_slice(encode_request(11, 99, &(), &mut buf).unwrap());
    stream.extend_from_slice(encode_request(12, demo::ids::greet, &("Bo",), &mut buf).unwrap());
    raw.write_all(&stream).unwrap(); // one write: the server reads them together

    assert!(matches!(Frame::parse(&read_frame(&mut raw)).unwrap(), Frame::Welcome { seq: 9, .. }));
    let mut seen = Vec::new();
    while seen.len() < 3 {
        seen.push(match Frame::parse(&read_frame(&mut raw)).unwrap() {
            Frame::Reply { seq, value } => (seq, Ok(value.to_vec())),
            Frame::Status { seq, status } => (seq, Err(status)),
            other => panic!("{other:?}"),
        });
    }
    assert_eq!(seen[0], (10, Ok(vec![6])));
    assert_eq!(seen[1], (11, Err(Status::Unimplemented)));
    assert_eq!(seen[2].0, 12);
    assert_eq!(demo.runs(), 2);
}

#[test]
fn a_late_reply_and_the_real_one_in_one_read() {
    let (host, mut raw) = loopback::pair();
    let mut client = Client::new(host, StdClock::new());
    let board = std::thread::spawn(move || {
        accept_session(&mut raw);
        let seq = Frame::parse(&read_frame(&mut raw)).unwrap().seq();
        let mut stream = Vec::new();
        let mut buf = [0u8; 16];
        stream.extend_from_slice(encode_reply(seq.wrapping_sub(1), &-1i32, &mut buf).unwrap());
        stream.extend_from_slice(encode_reply(seq, &5i32, &mut buf).unwrap());
        stream.extend_from_slice(encode_reply(seq.wrapping_add(7), &-7i32, &mut buf).unwrap());
        raw.write_all(&stream).unwrap();
        raw
    });
    assert_eq!(demo::Client(&mut client).add(2, 3).unwrap(), 5);
    let _raw = board.join().unwrap();
    assert_counted!(client.stats().late_replies, 1);
    // The stray frame after the reply is kept, not lost: the next call's wait sees it.
    client.set_timeout(Duration::from_millis(20));
    assert_eq!(demo::Client(&mut client).add(1, 1).unwrap_err(), Error::Timeout);
    assert_counted!(client.stats().late_replies, 2);
}

#[test]
fn link_closed_before_sending_is_not_executed() {
    let (host, board) = loopback::pair();
    drop(board);
    let mut client = stub(host);
    let error = client.add(1, 2).unwrap_err();
    assert_eq!(error, Error::NotSent);
    assert!(!error.may_have_executed());
}

#[test]
fn link_closed_after_sending_is_outcome_unknown() {
    let (host, mut raw) = loopback::pair();
    let mut client = stub(host);
    let board = std::thread::spawn(move || {
        accept_session(&mut raw);
        read_frame(&mut raw); // the request arrives whole; then the board hangs up
    });
    let error = client.add(1, 2).unwrap_err();
    board.join().unwrap();
    assert_eq!(error, Error::LinkLost);
    assert_eq!(error.executed(), Executed::Maybe);
}

#[test]
fn link_closed_during_the_handshake_is_not_executed() {
    let (host, mut raw) = loopback::pair();
    let mut client = stub(host);
    let board = std::thread::spawn(move || {
        read_frame(&mut raw); // the Hello; the board hangs up before answering
    });
    let error = client.add(1, 2).unwrap_err();
    board.join().unwrap();
    assert_eq!(error, Error::NotSent);
    assert!(!error.may_have_executed());
}

#[test]
fn a_reply_split_across_reads_after_a_long_wait_is_not_taken_for_stale() {
    // The client must stamp bytes with the time they arrive, not the time its
    // wait began: a reply whose two halves arrive after a wait longer than the
    // frame gap is one healthy frame.
    let (host, mut raw) = loopback::pair();
    let mut machine = ClientMachine::<256, 256>::new();
    machine.set_frame_gap(Duration::from_millis(100));
    machine.set_retry_policy(RetryPolicy::NONE);
    let mut client = Client::with_machine(host, StdClock::new(), machine);
    client.set_timeout(Duration::from_secs(5));
    let board = std::thread::spawn(move || {
        accept_session(&mut raw);
        let seq = Frame::parse(&read_frame(&mut raw)).unwrap().seq();
        let mut buf = [0u8; 16];
        let reply = encode_reply(seq, &5i32, &mut buf).unwrap().to_vec();
        std::thread::sleep(Duration::from_millis(250));
        raw.write_all(&reply[..3]).unwrap();
        std::thread::sleep(Duration::from_millis(20));
        raw.write_all(&reply[3..]).unwrap();
        raw
    });
    assert_eq!(demo::Client(&mut client).add(2, 3), Ok(5));
    assert_counted!(client.stats().link.dropped_stale, 0);
    drop(board.join().unwrap());
}

#[test]
fn a_restarted_client_never_gets_an_answer_meant_for_its_previous_life() {
    let (host, demo, _server) = serve_demo();
    let mut first = stub(host);
    first.0.set_retry_policy(RetryPolicy::NONE);
    first.0.set_timeout(Duration::from_millis(50));
    assert_eq!(first.sleep(300).unwrap_err(), Error::Timeout);
    // The client restarts on the same link while the server is still in `sleep`:
    // same first sequence numbers, so the old reply's number is reused.
    let (link, _) = first.0.into_parts();
    let mut second = stub(link);
    assert_eq!(second.add(2, 3), Ok(5), "the old `sleep` reply must not be taken for this call's");
    assert_eq!(second.add(20, 30), Ok(50));
    assert_eq!(demo.runs(), 3);
}

#[test]
fn a_call_that_ended_unknown_is_resumed_without_running_twice() {
    // The board answers, but the answer is lost once: the call ends unknown.
    // Resuming asks again under the same number; the server answers from its
    // cache, and the handler ran exactly once.
    let (host, board) = loopback::pair();
    let wire = host.wire();
    let demo = Demo::default();
    let server = spawn_server(board, demo.clone());
    let mut client = stub(host);
    client.0.set_retry_policy(RetryPolicy::NONE);
    client.0.set_timeout(Duration::from_millis(300));
    assert_eq!(client.bump(), Ok(1));
    wire.set_muted(true);
    let error = client.bump().unwrap_err();
    assert_eq!(error, Error::Timeout);
    wire.set_muted(false);
    // The muted request never arrived either; resuming sends it for the first time.
    assert_eq!(client.0.resume::<u32>(), Ok(2));
    assert_eq!(demo.runs(), 2);
    assert_eq!(client.0.resume::<u32>(), Err(Error::NothingToResume));

    // Now only the answer is lost: the call ran. Resuming gets the cached answer.
    wire.set_direction_muted(Direction::SecondToFirst, true);
    assert_eq!(client.bump().unwrap_err(), Error::Timeout);
    wire.set_direction_muted(Direction::SecondToFirst, false);
    assert_eq!(demo.runs(), 3);
    assert_eq!(client.0.resume::<u32>(), Ok(3), "the answer of the run that happened");
    assert_eq!(demo.runs(), 3, "not run again");
    drop(client);
    let stats = server.join().unwrap();
    assert_counted!((stats.dispatched, stats.duplicates), (3, 1));
}

#[test]
fn built_in_ping_and_stats() {
    let (host, demo, _server) = serve_demo();
    let mut board = stub(host);
    if !cfg!(feature = "builtins") {
        assert_eq!(board.0.ping(), Err(Error::Status(Status::Unimplemented)));
        return;
    }
    assert_eq!(board.0.ping(), Ok(()));
    assert_eq!(board.add(2, 3), Ok(5));
    let answer = board.0.server_stats();
    #[cfg(feature = "stats")]
    {
        let stats = answer.unwrap();
        // ping and add were dispatched before this call; the Hello was counted too.
        assert_eq!((stats.dispatched, stats.hellos, stats.refused), (2, 1, 0));
        // In: Hello, ping, add, and this very request. Out: Welcome and two replies.
        assert_eq!((stats.link.frames_in, stats.link.frames_out), (4, 3), "{stats:?}");
    }
    #[cfg(not(feature = "stats"))]
    assert_eq!(answer, Err(Error::Status(Status::Unimplemented)));
    // describe takes (offset, max): without them it is refused before it runs.
    let error = board.0.call::<_, ()>(Method::new(wirecall::machine::builtin::DESCRIBE), &()).unwrap_err();
    let expected = if cfg!(feature = "describe") { Status::InvalidArgument } else { Status::Unimplemented };
    assert_eq!(error, Error::Status(expected));
    assert_eq!(demo.runs(), 1, "built-ins run no handler of the service");
}
