//! Cancellation (issue #7): a call cancelled before any byte of it left ends
//! not executed and the server never hears of it; a Cancel for a number the
//! server never saw leaves a tombstone, so the request can never run later; a
//! Cancel that comes too late gets the call's value (cancelling rolls nothing
//! back). Streams stopped by a Cancel are in `tests/streams.rs`.
#![cfg(feature = "cancel")]

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::Tap;
use common::machines::{F, Got, at, client_in, client_out, client_poll, frame, frames, hello, request, server_in};
use wirecall::link::loopback;
use wirecall::machine::{ClientMachine, RetryPolicy, ServerMachine};
use wirecall::wire::{Status, encode_cancel};
use wirecall::{Client, Error, Executed, Server, StdClock};

wirecall::service! {
    /// Work that must not run twice: each run is recorded by tag.
    pub mod work {
        /// Records that `tag` ran; returns `value(tag)`.
        fn work(tag: u32) -> u32 = 1;
    }
}

fn value(tag: u32) -> u32 {
    tag.wrapping_mul(2_654_435_761) ^ 0x00c0_ffee
}

#[derive(Default, Clone)]
struct Runs(Arc<Mutex<HashMap<u32, u32>>>);

impl Runs {
    fn of(&self, tag: u32) -> u32 {
        self.0.lock().unwrap().get(&tag).copied().unwrap_or(0)
    }
}

impl work::Service for Runs {
    fn work(&mut self, tag: u32) -> u32 {
        *self.0.lock().unwrap().entry(tag).or_default() += 1;
        value(tag)
    }
}

const WORK: u16 = work::ids::work;

fn encoded_value(tag: u32) -> Vec<u8> {
    postcard::to_allocvec(&value(tag)).unwrap()
}

fn cancel(seq: u16) -> Vec<u8> {
    common::machines::encoded(|b| encode_cancel(seq, b))
}

fn serve<const W: usize>(runs: &Runs) -> loopback::End {
    let (host, board) = loopback::pair();
    let service = work::Dispatcher(runs.clone());
    std::thread::spawn(move || {
        let mut server: Server<_, _, _, 256, 256, W> = Server::sized(board, service, StdClock::new());
        let _ = server.serve();
    });
    host
}

/// A client machine and a server machine (window 1) with a session open and
/// one call (tag 1000) made; the next call's number is 2.
fn opened() -> (ClientMachine<64, 64>, ServerMachine<64, 64>, work::Dispatcher<Runs>) {
    let mut runs = work::Dispatcher(Runs::default());
    let mut client = ClientMachine::<64, 64>::new();
    client.set_retry_policy(RetryPolicy {
        attempts: 4,
        attempt_timeout: Duration::from_millis(100),
        backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(10),
    });
    let mut server = ServerMachine::<64, 64>::new();
    let seq = client.start(work::methods::work, &(1000u32,), at(0), at(1000)).unwrap();
    let welcome = server_in(&mut server, &client_out(&mut client).concat(), at(0), &mut runs).concat();
    client_in(&mut client, &welcome, at(0));
    let reply = server_in(&mut server, &client_out(&mut client).concat(), at(0), &mut runs).concat();
    assert_eq!(client_in(&mut client, &reply, at(0)), [Got::Done { seq, outcome: Ok(encoded_value(1000)) }]);
    assert_eq!(client.next_seq(), 2);
    (client, server, runs)
}

#[cfg(feature = "pipelining")]
#[test]
fn a_call_cancelled_before_any_byte_left_ends_cancelled_and_the_server_never_hears_of_it() {
    let runs = Runs::default();
    let (link, written) = Tap::new(serve::<2>(&runs));
    let mut client: Client<_, _, 256, 256, 2> = Client::sized(link, StdClock::new());
    // Both calls wait for the session to open; the second is cancelled meanwhile.
    let a = client.start(work::methods::work, &(1u32,)).unwrap();
    let b = client.start(work::methods::work, &(2u32,)).unwrap();
    assert!(client.cancel(b));
    assert!(!client.cancel(999), "no such call");
    let mut outcomes = HashMap::new();
    while let Some(done) = client.next_completed() {
        outcomes.insert(done.seq, done.decode::<u32>());
    }
    assert_eq!(outcomes.len(), 2);
    assert_eq!(outcomes[&a], Ok(value(1)));
    assert_eq!(outcomes[&b], Err(Error::Cancelled));
    assert_eq!(Error::Cancelled.executed(), Executed::No);
    // The session still works, and the cancelled call never ran.
    assert_eq!(wirecall::Call::call::<_, u32>(&mut client, work::methods::work, &(3u32,)), Ok(value(3)));
    assert_eq!((runs.of(1), runs.of(2), runs.of(3)), (1, 0, 1));
    let sent = frames(&written.lock().unwrap());
    assert!(sent.iter().all(|f| f.seq() != b), "nothing of call {b} was written: {sent:?}");
    assert_counted!(client.stats().cancelled, 1);
}

#[test]
fn a_call_cancelled_while_its_request_waits_to_be_written_is_withdrawn_and_never_runs() {
    let (mut client, _server, runs) = opened();
    let seq = client.start(work::methods::work, &(1u32,), at(10), at(1000)).unwrap();
    // The request is ready in outgoing(); not one byte of it was written yet.
    assert!(!client.outgoing().is_empty());
    assert!(client.cancel(seq, at(10)));
    let ended = client_poll(&mut client, at(10));
    // None of it was written: it is withdrawn, ends not executed, and never runs.
    assert_eq!(ended, [(seq, Error::Cancelled)]);
    let written = client_out(&mut client);
    assert!(written.is_empty(), "the withdrawn request was written: {written:?}");
    assert_eq!(runs.0.of(1), 0);
}

#[test]
fn a_cancel_for_a_number_the_server_never_saw_leaves_a_tombstone_and_the_request_never_runs() {
    let (mut client, mut server, mut runs) = opened();
    let seq = client.start(work::methods::work, &(1u32,), at(10), at(1000)).unwrap();
    // The request is lost on the way.
    let lost = client_out(&mut client).concat();
    assert_eq!(frames(&lost), [F::Request { seq, method: WORK, oneway: false }]);
    assert!(client.cancel(seq, at(20)));
    let out = client_out(&mut client).concat();
    assert_eq!(frames(&out), [F::Cancel { seq }], "a Cancel goes in place of the request");
    let answer = server_in(&mut server, &out, at(21), &mut runs).concat();
    assert_eq!(frame(&answer), F::Status { seq, status: Status::Cancelled });
    let got = client_in(&mut client, &answer, at(22));
    assert_eq!(got, [Got::Done { seq, outcome: Err(Error::Status(Status::Cancelled)) }]);
    assert_eq!(Error::Status(Status::Cancelled).executed(), Executed::No);
    // The request was only delayed: it arrives now, twice. It never runs.
    for _ in 0..2 {
        let late = server_in(&mut server, &lost, at(30), &mut runs).concat();
        assert_eq!(frame(&late), F::Status { seq, status: Status::Cancelled });
    }
    // A repeated Cancel gets the same final answer.
    let again = server_in(&mut server, &cancel(seq), at(31), &mut runs).concat();
    assert_eq!(frame(&again), F::Status { seq, status: Status::Cancelled });
    assert_eq!(runs.0.of(1), 0);
    assert_counted!(server.stats().cancelled, 1);
}

#[cfg(feature = "pipelining")]
#[test]
fn a_tombstone_below_the_newest_number_keeps_the_request_from_running_until_it_is_aborted() {
    let mut runs = work::Dispatcher(Runs::default());
    let mut server = ServerMachine::<64, 64, 4>::new();
    server_in(&mut server, &hello(0), at(0), &mut runs);
    for seq in [2u16, 3] {
        server_in(&mut server, &request(seq, WORK, &(u32::from(seq),)), at(1), &mut runs);
    }
    // 1 was lost; its Cancel comes after 2 and 3 ran.
    let answer = server_in(&mut server, &cancel(1), at(2), &mut runs).concat();
    assert_eq!(frame(&answer), F::Status { seq: 1, status: Status::Cancelled });
    let late = server_in(&mut server, &request(1, WORK, &(1u32,)), at(3), &mut runs).concat();
    assert_eq!(frame(&late), F::Status { seq: 1, status: Status::Cancelled });
    // Later calls push the tombstone out of the cache: a copy of 1 is then ABORTED, still not run.
    for seq in 4u16..=8 {
        server_in(&mut server, &request(seq, WORK, &(u32::from(seq),)), at(4), &mut runs);
    }
    let later = server_in(&mut server, &request(1, WORK, &(1u32,)), at(5), &mut runs).concat();
    assert_eq!(frame(&later), F::Status { seq: 1, status: Status::Aborted });
    assert_eq!(runs.0.of(1), 0);
    assert_eq!((2..=8).map(|t| runs.0.of(t)).collect::<Vec<_>>(), [1; 7]);
}

#[test]
fn a_cancel_after_the_call_ran_gets_its_value() {
    // The Reply is lost; the Cancel that follows gets the cached Reply: it ran.
    let (mut client, mut server, mut runs) = opened();
    let seq = client.start(work::methods::work, &(1u32,), at(10), at(1000)).unwrap();
    let lost_reply = server_in(&mut server, &client_out(&mut client).concat(), at(11), &mut runs).concat();
    assert_eq!(frame(&lost_reply), F::Reply { seq, value: encoded_value(1) });
    assert!(client.cancel(seq, at(20)));
    let answer = server_in(&mut server, &client_out(&mut client).concat(), at(21), &mut runs).concat();
    assert_eq!(frame(&answer), F::Reply { seq, value: encoded_value(1) });
    assert_eq!(client_in(&mut client, &answer, at(22)), [Got::Done { seq, outcome: Ok(encoded_value(1)) }]);
    assert_eq!(runs.0.of(1), 1);

    // Over a loopback: the request is on its way when the Cancel follows it, so
    // the call runs and the caller gets its value.
    let runs = Runs::default();
    let mut client: Client<_, _> = Client::sized(serve::<1>(&runs), StdClock::new());
    assert_eq!(wirecall::Call::call::<_, u32>(&mut client, work::methods::work, &(1000u32,)), Ok(value(1000)));
    for tag in 0..20u32 {
        let seq = client.start(work::methods::work, &(tag,)).unwrap();
        assert!(client.cancel(seq));
        let done = client.next_completed().expect("the call ends");
        assert_eq!((done.seq, done.decode::<u32>()), (seq, Ok(value(tag))));
        assert_eq!(runs.of(tag), 1);
    }
    assert!(client.next_completed().is_none());
}

#[test]
fn a_cancel_that_gets_no_answer_ends_unknown() {
    let (mut client, _server, _runs) = opened();
    let seq = client.start(work::methods::work, &(1u32,), at(10), at(500)).unwrap();
    client_out(&mut client);
    assert!(client.cancel(seq, at(20)));
    // Every Cancel is lost until the deadline.
    let mut ended = Vec::new();
    for ms in (20..=500).step_by(5) {
        client_out(&mut client);
        ended.extend(client_poll(&mut client, at(ms)));
    }
    assert_eq!(ended, [(seq, Error::Timeout)]);
    assert_eq!(Error::Timeout.executed(), Executed::Maybe);
}

#[test]
fn a_cancel_outside_a_session_or_for_a_forgotten_answer_runs_nothing() {
    let mut runs = work::Dispatcher(Runs::default());
    let mut server = ServerMachine::<64, 64>::new();
    let answer = server_in(&mut server, &cancel(5), at(0), &mut runs).concat();
    assert_eq!(frame(&answer), F::Status { seq: 5, status: Status::FailedPrecondition });
    server_in(&mut server, &hello(0), at(0), &mut runs);
    for seq in [1u16, 2] {
        server_in(&mut server, &request(seq, WORK, &(u32::from(seq),)), at(1), &mut runs);
    }
    // 1's answer left the one-answer cache: its Cancel is ABORTED (the server cannot tell).
    let answer = server_in(&mut server, &cancel(1), at(2), &mut runs).concat();
    assert_eq!(frame(&answer), F::Status { seq: 1, status: Status::Aborted });
    // 2's answer is cached: the Cancel gets it.
    let answer = server_in(&mut server, &cancel(2), at(3), &mut runs).concat();
    assert_eq!(frame(&answer), F::Reply { seq: 2, value: encoded_value(2) });
    assert_eq!((runs.0.of(1), runs.0.of(2)), (1, 1));
}
