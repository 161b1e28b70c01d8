//! Pipelining (issue #7): several calls in flight, each matched to its own
//! answer by number; a server with a reply cache of W answers and a 32-number
//! "done" bitmap, so a request that arrives after later ones still runs, once;
//! and a window that is the smaller of the client's and the server's.
#![cfg(feature = "pipelining")]

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::machines::{F, Got, at, client_in, client_out, client_poll, frame, frames, hello, request, server_in};
use wirecall::link::loopback;
use wirecall::machine::{ClientMachine, RetryPolicy, ServerMachine};
use wirecall::wire::Status;
use wirecall::{Call, Client, Error, Link, Server, StdClock};

wirecall::service! {
    /// Work that must not run twice: each run is recorded by tag.
    pub mod work {
        /// Records that `tag` ran; returns `value(tag)`.
        fn work(tag: u32) -> u32 = 1;
    }
}

/// What `work(tag)` returns: a function of the tag, so a value handed to the
/// wrong call is recognised.
fn value(tag: u32) -> u32 {
    tag.wrapping_mul(2_654_435_761) ^ 0x00c0_ffee
}

/// The handler, counting runs per tag (shared with the test thread).
#[derive(Default, Clone)]
struct Runs(Arc<Mutex<HashMap<u32, u32>>>);

impl Runs {
    fn of(&self, tag: u32) -> u32 {
        self.0.lock().unwrap().get(&tag).copied().unwrap_or(0)
    }
    fn total(&self) -> u32 {
        self.0.lock().unwrap().values().sum()
    }
}

impl work::Service for Runs {
    fn work(&mut self, tag: u32) -> u32 {
        *self.0.lock().unwrap().entry(tag).or_default() += 1;
        value(tag)
    }
}

const WORK: u16 = work::ids::work;

/// The encoded value `work(tag)` answers with.
fn encoded_value(tag: u32) -> Vec<u8> {
    postcard::to_allocvec(&value(tag)).unwrap()
}

/// A server with window `W` serving `Runs` on a loopback; returns the client end.
fn serve<const W: usize>(runs: &Runs) -> loopback::End {
    let (host, board) = loopback::pair();
    let service = work::Dispatcher(runs.clone());
    std::thread::spawn(move || {
        let mut server: Server<_, _, _, 256, 256, W> = Server::sized(board, service, StdClock::new());
        let _ = server.serve();
    });
    host
}

#[test]
fn w_calls_in_flight_each_get_their_own_answer() {
    let runs = Runs::default();
    let mut client: Client<_, _, 256, 256, 8> = Client::sized(serve::<8>(&runs), StdClock::new());
    client.set_timeout(Duration::from_secs(5));
    let mut tags = HashMap::new();
    for tag in 0..8u32 {
        let seq = client.start(work::methods::work, &(tag,)).expect("room in the window");
        assert!(tags.insert(seq, tag).is_none(), "each call has its own number");
    }
    assert_eq!(client.machine().in_flight(), 8);
    assert_eq!(client.start(work::methods::work, &(1000u32,)), Err(Error::Busy), "the window is full");
    // Keep the window full for a while: every answer must be its own call's.
    let mut next = 8u32;
    let mut answered = 0;
    while let Some(done) = client.next_completed() {
        let tag = tags.remove(&done.seq).expect("an answer for a call in flight");
        assert_eq!(done.decode::<u32>(), Ok(value(tag)), "call {tag} (seq {})", done.seq);
        answered += 1;
        while next < 300 && !client.machine().is_busy() {
            let seq = client.start(work::methods::work, &(next,)).unwrap();
            tags.insert(seq, next);
            next += 1;
        }
    }
    assert_eq!(answered, 300);
    assert!(tags.is_empty());
    assert_eq!(client.machine().window(), 8);
    for tag in 0..300 {
        assert_eq!(runs.of(tag), 1, "call {tag} ran once");
    }
    assert_eq!(runs.of(1000), 0, "a call refused Busy never ran");
}

#[test]
fn answers_in_any_order_are_matched_by_number() {
    let mut runs = work::Dispatcher(Runs::default());
    let mut client = ClientMachine::<64, 64, 4>::new();
    let mut server = ServerMachine::<64, 64, 4>::new();
    let mut seqs = Vec::new();
    for tag in 10..14u32 {
        seqs.push(client.start(work::methods::work, &(tag,), at(0), at(1000)).unwrap());
    }
    let hello = client_out(&mut client).concat();
    assert!(matches!(frame(&hello), F::Hello { .. }), "a Hello first");
    let welcome = server_in(&mut server, &hello, at(0), &mut runs).concat();
    assert_eq!(frame(&welcome), F::Welcome { seq: 0, resumed: false, window: 4 });
    assert!(client_in(&mut client, &welcome, at(1)).is_empty());
    let requests = client_out(&mut client);
    assert_eq!(requests.len(), 4, "all four requests go out at once");
    let answers = server_in(&mut server, &requests.concat(), at(2), &mut runs);
    assert_eq!(answers.len(), 4);
    // The answers arrive last first: each still goes to its own call.
    for (answer, (&seq, tag)) in answers.iter().rev().zip(seqs.iter().zip(10u32..14).rev()) {
        let got = client_in(&mut client, answer, at(3));
        assert_eq!(got, [Got::Done { seq, outcome: Ok(encoded_value(tag)) }]);
    }
    assert_eq!(client.in_flight(), 0);
    assert_eq!(runs.0.total(), 4);
}

/// A server with window 4 and a session for client 7 (Hello seq 0).
fn open_server(runs: &mut work::Dispatcher<Runs>) -> ServerMachine<64, 64, 4> {
    let mut server = ServerMachine::<64, 64, 4>::new();
    let welcome = server_in(&mut server, &hello(0), at(0), runs).concat();
    assert_eq!(frame(&welcome), F::Welcome { seq: 0, resumed: false, window: 4 });
    server
}

#[test]
fn a_lost_request_resent_after_later_calls_ran_runs_once_and_gets_its_value() {
    let mut runs = work::Dispatcher(Runs::default());
    let mut client = ClientMachine::<64, 64, 4>::new();
    client.set_retry_policy(RetryPolicy {
        attempts: 4,
        attempt_timeout: Duration::from_millis(100),
        backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(10),
    });
    let mut server = ServerMachine::<64, 64, 4>::new();
    let mut seqs = Vec::new();
    for tag in 0..4u32 {
        seqs.push(client.start(work::methods::work, &(tag,), at(0), at(1000)).unwrap());
    }
    let welcome = server_in(&mut server, &client_out(&mut client).concat(), at(0), &mut runs).concat();
    client_in(&mut client, &welcome, at(0));
    let requests = client_out(&mut client);
    assert_eq!(requests.len(), 4);
    // The first request is lost on the way; the three after it run and are answered.
    for (request, (&seq, tag)) in requests.iter().zip(seqs.iter().zip(0u32..)).skip(1) {
        let answer = server_in(&mut server, request, at(5), &mut runs).concat();
        assert_eq!(client_in(&mut client, &answer, at(6)), [Got::Done { seq, outcome: Ok(encoded_value(tag)) }]);
    }
    assert_eq!((runs.0.of(0), runs.0.total()), (0, 3));
    // No answer for the first: its attempt times out, and after the backoff it is sent again.
    assert!(client_poll(&mut client, at(100)).is_empty());
    assert!(client_poll(&mut client, at(110)).is_empty());
    let again = client_out(&mut client).concat();
    assert_eq!(frames(&again), [F::Request { seq: seqs[0], method: WORK, oneway: false }]);
    // The server never saw that number: it runs now, although later numbers ran first.
    let answer = server_in(&mut server, &again, at(111), &mut runs).concat();
    assert_eq!(frame(&answer), F::Reply { seq: seqs[0], value: encoded_value(0) });
    assert_eq!(runs.0.of(0), 1);
    // A late copy of the lost request (it was only delayed) finds the cached answer.
    let late = server_in(&mut server, &requests[0], at(112), &mut runs).concat();
    assert_eq!(frame(&late), F::Reply { seq: seqs[0], value: encoded_value(0) });
    assert_eq!(runs.0.of(0), 1, "not run twice");
    assert_eq!(client_in(&mut client, &answer, at(113)), [Got::Done { seq: seqs[0], outcome: Ok(encoded_value(0)) }]);
    assert_eq!(runs.0.total(), 4);
}

#[test]
fn a_request_that_arrives_after_later_ones_runs_once_whatever_the_order() {
    let mut runs = work::Dispatcher(Runs::default());
    let mut server = open_server(&mut runs);
    // Numbers 1..=6 arrive as 6, 2, 5, 1, 3, 4: each runs once and is answered with its value.
    for seq in [6u16, 2, 5, 1, 3, 4] {
        let answer = server_in(&mut server, &request(seq, WORK, &(u32::from(seq),)), at(1), &mut runs).concat();
        assert_eq!(frame(&answer), F::Reply { seq, value: encoded_value(u32::from(seq)) }, "seq {seq}");
    }
    // Copies of them all: none runs again. The four newest answers are cached
    // (window 4); the two oldest are gone, and their copies are ABORTED.
    for seq in 1u16..=6 {
        let answer = frame(&server_in(&mut server, &request(seq, WORK, &(u32::from(seq),)), at(2), &mut runs).concat());
        let expected = if seq >= 3 {
            F::Reply { seq, value: encoded_value(u32::from(seq)) }
        } else {
            F::Status { seq, status: Status::Aborted }
        };
        assert_eq!(answer, expected, "seq {seq}: the oldest numbers are evicted first");
    }
    for seq in 1..=6 {
        assert_eq!(runs.0.of(seq), 1, "seq {seq} ran once");
    }
}

#[test]
fn a_request_more_than_31_numbers_older_than_the_newest_is_aborted_and_never_runs() {
    let mut runs = work::Dispatcher(Runs::default());
    let mut server = open_server(&mut runs);
    // Numbers 1..=41 arrive, but for 9 and 10.
    for seq in (1u16..=41).filter(|s| ![9, 10].contains(s)) {
        server_in(&mut server, &request(seq, WORK, &(u32::from(seq),)), at(1), &mut runs);
    }
    assert_eq!(runs.0.total(), 39);
    // 10 is 31 numbers older than 41: still in the bitmap, never seen, so it runs.
    let answer = server_in(&mut server, &request(10, WORK, &(10u32,)), at(2), &mut runs).concat();
    assert_eq!(frame(&answer), F::Reply { seq: 10, value: encoded_value(10) });
    // 9 is 32 numbers older: the server cannot tell whether it ran. ABORTED, not run.
    let answer = server_in(&mut server, &request(9, WORK, &(9u32,)), at(3), &mut runs).concat();
    assert_eq!(frame(&answer), F::Status { seq: 9, status: Status::Aborted });
    assert_eq!((runs.0.of(9), runs.0.of(10)), (0, 1));
    // Nor does a later copy of 9, or of any answered number, run.
    for seq in [9u16, 10, 1, 30] {
        server_in(&mut server, &request(seq, WORK, &(u32::from(seq),)), at(4), &mut runs);
    }
    assert_eq!((runs.0.of(9), runs.0.of(10), runs.0.of(1), runs.0.of(30)), (0, 1, 1, 1));
    assert_eq!(runs.0.total(), 40);
}

#[test]
fn the_window_is_the_smaller_of_the_clients_and_the_servers() {
    // Client 8, server 3.
    let runs = Runs::default();
    let mut client: Client<_, _, 256, 256, 8> = Client::sized(serve::<3>(&runs), StdClock::new());
    assert_eq!(client.call::<_, u32>(work::methods::work, &(0u32,)), Ok(value(0)), "opens the session");
    assert_eq!(client.machine().window(), 3);
    for tag in 1..=3u32 {
        client.start(work::methods::work, &(tag,)).unwrap();
    }
    assert_eq!(client.start(work::methods::work, &(4u32,)), Err(Error::Busy));
    let mut values: Vec<u32> = std::iter::from_fn(|| client.next_completed()).map(|d| d.decode().unwrap()).collect();
    values.sort_unstable();
    let mut expected: Vec<u32> = (1..=3).map(value).collect();
    expected.sort_unstable();
    assert_eq!(values, expected);
    assert_eq!(runs.of(4), 0);

    // Client 2, server 8.
    let runs = Runs::default();
    let mut client: Client<_, _, 256, 256, 2> = Client::sized(serve::<8>(&runs), StdClock::new());
    assert_eq!(client.call::<_, u32>(work::methods::work, &(0u32,)), Ok(value(0)));
    assert_eq!(client.machine().window(), 2);
    client.start(work::methods::work, &(1u32,)).unwrap();
    client.start(work::methods::work, &(2u32,)).unwrap();
    assert_eq!(client.start(work::methods::work, &(3u32,)), Err(Error::Busy));
    assert_eq!(std::iter::from_fn(|| client.next_completed()).count(), 2);

    // A server with window 1 (no pipelining) keeps a pipelining client to one call.
    let runs = Runs::default();
    let mut client: Client<_, _, 256, 256, 8> = Client::sized(serve::<1>(&runs), StdClock::new());
    assert_eq!(client.call::<_, u32>(work::methods::work, &(0u32,)), Ok(value(0)));
    assert_eq!(client.machine().window(), 1);
    client.start(work::methods::work, &(1u32,)).unwrap();
    assert_eq!(client.start(work::methods::work, &(2u32,)), Err(Error::Busy));
    assert_eq!(client.next_completed().map(|d| d.decode::<u32>()), Some(Ok(value(1))));
}

#[test]
fn calls_started_before_the_welcome_never_put_more_than_its_window_on_the_wire() {
    let mut runs = work::Dispatcher(Runs::default());
    let mut client = ClientMachine::<64, 64, 8>::new();
    let mut server = ServerMachine::<64, 64, 3>::new();
    // Before the Welcome the client cannot know the server's window.
    let mut tags = HashMap::new();
    for tag in 0..8u32 {
        tags.insert(client.start(work::methods::work, &(tag,), at(0), at(5000)).unwrap(), tag);
    }
    let welcome = server_in(&mut server, &client_out(&mut client).concat(), at(0), &mut runs).concat();
    assert_eq!(frame(&welcome), F::Welcome { seq: 0, resumed: false, window: 3 });
    client_in(&mut client, &welcome, at(1));
    assert_eq!(client.window(), 3);
    let first = client_out(&mut client);
    let requests = frames(&first.concat());
    assert!(
        requests.len() == 3,
        "the server caches 3 answers, yet {} requests went out before any answer: {requests:?}",
        requests.len()
    );
    // What it is for: the first answer is lost, and the call still gets its
    // value from the cache when it asks again (with 8 sent, it was evicted: ABORTED).
    let mut outcomes = HashMap::new();
    let mut pending = first;
    let mut lost_one = false;
    for ms in (2..4000).step_by(10) {
        for chunk in pending.drain(..) {
            for answer in server_in(&mut server, &chunk, at(ms), &mut runs) {
                if !lost_one {
                    lost_one = true;
                    continue;
                }
                for got in client_in(&mut client, &answer, at(ms)) {
                    if let Got::Done { seq, outcome } = got {
                        outcomes.insert(seq, outcome);
                    }
                }
            }
        }
        outcomes.extend(client_poll(&mut client, at(ms)).into_iter().map(|(seq, e)| (seq, Err(e))));
        pending = client_out(&mut client);
    }
    assert_eq!(outcomes.len(), 8);
    for (seq, tag) in tags {
        assert_eq!(outcomes[&seq], Ok(encoded_value(tag)), "call {tag}");
        assert_eq!(runs.0.of(tag), 1);
    }
}

#[test]
fn after_a_link_failure_every_call_in_flight_ends_and_is_reported_once() {
    // Two calls wait for the session (the Hello is out, no Welcome yet) when the wire is cut.
    let (host, board) = loopback::pair();
    let wire = host.wire();
    let mut client: Client<_, _, 256, 256, 2> = Client::sized(host, StdClock::new());
    let a = client.start(work::methods::work, &(1u32,)).unwrap();
    let b = client.start(work::methods::work, &(2u32,)).unwrap();
    wire.cut();
    let mut ended = HashMap::new();
    for _ in 0..2 {
        match client.next_completed() {
            Some(done) => assert!(ended.insert(done.seq, done.outcome).is_none(), "reported twice"),
            None => break,
        }
    }
    assert_eq!(client.machine().in_flight(), 0, "calls left in flight, none reported: {ended:?}");
    assert_eq!(ended.get(&a), Some(&Err(Error::NotSent)));
    assert_eq!(ended.get(&b), Some(&Err(Error::NotSent)));
    assert!(client.next_completed().is_none());
    drop(board);
}

#[test]
fn a_start_that_fails_leaves_no_call_in_flight() {
    let runs = Runs::default();
    let host = serve::<2>(&runs);
    let wire = host.wire();
    let mut client: Client<_, _, 256, 256, 2> = Client::sized(host, StdClock::new());
    assert_eq!(client.call::<_, u32>(work::methods::work, &(0u32,)), Ok(value(0)));
    wire.cut();
    // The link refuses the first byte: nothing was sent (the documented `NotSent`)...
    let started = client.start(work::methods::work, &(1u32,));
    assert_eq!(started, Err(Error::NotSent));
    // ...and the call is not in flight: no outcome comes later under a number the caller never got.
    assert_eq!(client.machine().in_flight(), 0);
    assert!(client.next_completed().is_none());
}

/// Moves bytes between a client and a server machine, a millisecond at a time
/// from `from`, until no call is in flight or `until`; returns the outcomes.
fn exchange_until_done<const W: usize, const SW: usize>(
    client: &mut ClientMachine<64, 64, W>,
    server: &mut ServerMachine<64, 64, SW>,
    runs: &mut work::Dispatcher<Runs>,
    from: u64,
    until: u64,
) -> HashMap<u16, Result<Vec<u8>, Error>> {
    let mut outcomes = HashMap::new();
    for ms in from..until {
        for chunk in client_out(client) {
            for answer in server_in(server, &chunk, at(ms), runs) {
                for got in client_in(client, &answer, at(ms)) {
                    if let Got::Done { seq, outcome } = got {
                        outcomes.insert(seq, outcome);
                    }
                }
            }
        }
        outcomes.extend(client_poll(client, at(ms)).into_iter().map(|(seq, e)| (seq, Err(e))));
        if client.in_flight() == 0 {
            break;
        }
    }
    outcomes
}

#[test]
fn a_call_sent_before_the_server_restarted_is_never_run_again_in_the_new_session() {
    let mut runs = work::Dispatcher(Runs::default());
    let mut client = ClientMachine::<64, 64, 4>::new();
    client.set_retry_policy(RetryPolicy {
        attempts: 8,
        attempt_timeout: Duration::from_millis(100),
        backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(10),
    });
    let mut server = ServerMachine::<64, 64, 4>::with_boot_id(1);
    let a = client.start(work::methods::work, &(1u32,), at(0), at(3000)).unwrap();
    let b = client.start(work::methods::work, &(2u32,), at(0), at(3000)).unwrap();
    let welcome = server_in(&mut server, &client_out(&mut client).concat(), at(0), &mut runs).concat();
    client_in(&mut client, &welcome, at(0));
    let requests = client_out(&mut client);
    assert_eq!(requests.len(), 2);
    // A runs; its Reply is lost: the server restarts before sending it.
    server_in(&mut server, &requests[0], at(1), &mut runs);
    assert_eq!(runs.0.of(1), 1);
    let mut server = ServerMachine::<64, 64, 4>::with_boot_id(2);
    // B reaches the new boot, which has no session for it.
    let answer = server_in(&mut server, &requests[1], at(2), &mut runs).concat();
    assert_eq!(frame(&answer), F::Status { seq: b, status: Status::FailedPrecondition });
    let got = client_in(&mut client, &answer, at(3));
    assert_eq!(got, [Got::Done { seq: b, outcome: Err(Error::Status(Status::FailedPrecondition)) }]);
    // The application goes on: a new call opens a new session, while A still waits.
    let c = client.start(work::methods::work, &(3u32,), at(4), at(3000)).unwrap();
    let outcomes = exchange_until_done(&mut client, &mut server, &mut runs, 4, 4000);
    assert_eq!(outcomes.get(&c), Some(&Ok(encoded_value(3))));
    assert_eq!(runs.0.of(1), 1, "A ran again in the new session; it was reported {:?}", outcomes.get(&a));
    // The new server cannot know A ran: its outcome is unknown.
    assert!(matches!(outcomes.get(&a), Some(Err(e)) if e.executed() == wirecall::Executed::Maybe), "{outcomes:?}");
}

#[test]
fn a_call_that_ends_before_its_frame_is_written_withdraws_the_frame() {
    let mut runs = work::Dispatcher(Runs::default());
    let mut client = ClientMachine::<64, 64, 2>::new();
    let mut server = ServerMachine::<64, 64, 2>::new();
    client.start(work::methods::work, &(1u32,), at(0), at(3000)).unwrap();
    let welcome = server_in(&mut server, &client_out(&mut client).concat(), at(0), &mut runs).concat();
    client_in(&mut client, &welcome, at(0));
    exchange_until_done(&mut client, &mut server, &mut runs, 1, 10);
    // A driver writing a few bytes per interrupt has not written any of call 2
    // when its deadline passes: it ends "not sent", so it must never be sent.
    let seq = client.start(work::methods::work, &(2u32,), at(20), at(30)).unwrap();
    assert!(!client.outgoing().is_empty());
    assert_eq!(client_poll(&mut client, at(30)), [(seq, Error::NotSent)]);
    assert!(client.outgoing().is_empty(), "the frame of a call reported not sent is still to be written");
    assert_eq!(runs.0.of(2), 0);
}

#[test]
fn a_call_left_resumable_is_not_resumed_into_a_session_the_server_started_afresh() {
    let mut runs = work::Dispatcher(Runs::default());
    let mut client = ClientMachine::<64, 64, 2>::new();
    let mut server = ServerMachine::<64, 64, 2>::with_boot_id(1);
    // Call A runs, and the link fails before its Reply: A ends unknown, resumable.
    let a = client.start(work::methods::work, &(1u32,), at(0), at(3000)).unwrap();
    let welcome = server_in(&mut server, &client_out(&mut client).concat(), at(0), &mut runs).concat();
    client_in(&mut client, &welcome, at(0));
    server_in(&mut server, &client_out(&mut client).concat(), at(1), &mut runs);
    assert_eq!(runs.0.of(1), 1);
    assert_eq!(client.link_failed(), Some(Error::LinkLost));
    assert!(client.can_resume());
    // The server restarts; call B opens a session there, which is not A's.
    let mut server = ServerMachine::<64, 64, 2>::with_boot_id(2);
    let b = client.start(work::methods::work, &(2u32,), at(2), at(3000)).unwrap();
    let outcomes = exchange_until_done(&mut client, &mut server, &mut runs, 2, 100);
    assert_eq!(outcomes.get(&b), Some(&Ok(encoded_value(2))));
    // Resuming A now would run it a second time on the new boot: refused.
    assert_eq!(client.resume(at(200), at(3000)), Err(Error::NothingToResume));
    assert!(client_out(&mut client).is_empty());
    assert_eq!(runs.0.of(1), 1, "call {a} ran once");
}

#[test]
fn a_call_that_ran_on_a_server_that_restarted_is_not_run_again_after_a_link_failure() {
    use wirecall::sim::{Faults, SimClock, SimLink};
    let clock = SimClock::new();
    let runs = Runs::default();
    let link: SimLink<'_, _, 256, 256, 4> = SimLink::new(&clock, work::Dispatcher(runs.clone()), Faults::NONE, 1);
    let mut client: Client<_, _, 256, 256, 4> = Client::sized(link, &clock);
    client.set_timeout(Duration::from_secs(2));
    assert_eq!(client.call::<_, u32>(work::methods::work, &(0u32,)), Ok(value(0)), "a session is open");
    let lose_everything = Faults { drop_byte: 1.0, ..Faults::NONE };
    // X is lost on the way.
    client.link_mut().set_faults(lose_everything);
    let x = client.start(work::methods::work, &(1u32,)).unwrap();
    client.link_mut().set_faults(Faults::NONE);
    // A reaches the server and runs; its Reply is lost.
    let a = client.start(work::methods::work, &(2u32,)).unwrap();
    client.link_mut().set_faults(lose_everything);
    let mut buf = [0u8; 16];
    assert_eq!(client.link_mut().read_within(&mut buf, Duration::ZERO).unwrap(), None);
    client.link_mut().set_faults(Faults::NONE);
    assert_eq!(runs.of(2), 1);
    // The server restarts, and the link goes down for a moment.
    client.link_mut().restart_server();
    client.link_mut().cut_for(Duration::from_millis(1));
    let mut outcomes = HashMap::new();
    let first = client.next_completed().expect("a call ends with the link");
    outcomes.insert(first.seq, first.outcome);
    // The link is back; the application goes on with a new call.
    let c = client.start(work::methods::work, &(3u32,)).unwrap();
    while let Some(done) = client.next_completed() {
        assert!(outcomes.insert(done.seq, done.outcome).is_none(), "reported twice");
    }
    assert_eq!(outcomes.len(), 3, "{outcomes:?}");
    assert!(outcomes[&x].as_ref().is_err_and(|e| e.may_have_executed()));
    assert_eq!(outcomes[&c].as_ref().map(|v| postcard::from_bytes::<u32>(v).unwrap()), Ok(value(3)));
    assert_eq!(runs.of(2), 1, "A ran again after the restart; it was reported {:?}", outcomes[&a]);
}
