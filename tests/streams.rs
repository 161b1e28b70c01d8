//! Server streams with credits (issue #7): items in order, never more than the
//! client's credit ahead, an End that counts them; lost items and a lost End;
//! one stream at a time; a stream stopped by a Cancel.
#![cfg(feature = "streams")]

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::machines::{
    F, Got, at, client_in, client_out, client_poll, encoded, frame, frames, hello, request, server_in,
};
use wirecall::link::loopback;
use wirecall::machine::{ClientMachine, RetryPolicy, ServerMachine};
use wirecall::wire::{Status, encode_credit};
use wirecall::{Call, Client, Error, Server, StdClock, StreamEnd};

wirecall::service! {
    /// A source of numbers.
    pub mod source {
        /// `count` items: `item(0)`, `item(1)`, ...
        fn numbers(count: u32) -> u32 = 1, stream;
        /// An ordinary call.
        fn echo(x: u32) -> u32 = 2;
    }
}

/// Item `index` of every stream.
fn item(index: u32) -> u32 {
    index.wrapping_mul(40_503) ^ 0x1234_5678
}

/// The handlers, recording every item produced as (count, index) and every echo.
#[derive(Default, Clone)]
struct Source {
    produced: Arc<Mutex<Vec<(u32, u32)>>>,
    echoes: Arc<Mutex<Vec<u32>>>,
}

impl Source {
    fn produced(&self) -> usize {
        self.produced.lock().unwrap().len()
    }
    fn produced_for(&self, count: u32) -> usize {
        self.produced.lock().unwrap().iter().filter(|(c, _)| *c == count).count()
    }
}

impl source::Service for Source {
    fn numbers(&mut self, count: u32, index: u32) -> Option<u32> {
        if index >= count {
            return None;
        }
        self.produced.lock().unwrap().push((count, index));
        Some(item(index))
    }
    fn echo(&mut self, x: u32) -> u32 {
        self.echoes.lock().unwrap().push(x);
        x
    }
}

const NUMBERS: u16 = source::ids::numbers;
const ECHO: u16 = source::ids::echo;

fn credit(seq: u16, limit: u32) -> Vec<u8> {
    encoded(|b| encode_credit(seq, limit, b))
}

fn serve(source: &Source) -> loopback::End {
    let (host, board) = loopback::pair();
    let service = source::Dispatcher(source.clone());
    std::thread::spawn(move || {
        let _ = Server::new(board, service, StdClock::new()).serve();
    });
    host
}

#[test]
fn items_arrive_in_order_and_the_end_counts_them() {
    let src = Source::default();
    let mut client = Client::new(serve(&src), StdClock::new());
    for credits in [1, 3, 4, 16] {
        client.set_stream_credits(credits);
        let mut items = Vec::new();
        let end = client.call_stream(source::methods::numbers, &(50u32,), &mut |x: u32| {
            items.push(x);
            true
        });
        assert_eq!(end, Ok(StreamEnd { sent: 50, received: 50, status: None }), "credits {credits}");
        assert!(end.unwrap().is_complete());
        assert_eq!(items, (0..50).map(item).collect::<Vec<_>>(), "in order, each once");
    }
    assert_eq!(src.produced(), 200);
    // An empty stream ends at once; ordinary calls go on.
    let end = client.call_stream(source::methods::numbers, &(0u32,), &mut |_: u32| true);
    assert_eq!(end, Ok(StreamEnd { sent: 0, received: 0, status: None }));
    assert_eq!(client.call::<_, u32>(source::methods::echo, &(7u32,)), Ok(7));
    assert_counted!(client.stats().items, 200);
}

/// A server (window 1) with a session for client 7.
fn open_server(src: &mut source::Dispatcher<Source>) -> ServerMachine<64, 64> {
    let mut server = ServerMachine::<64, 64>::new();
    server_in(&mut server, &hello(0), at(0), src);
    server
}

#[test]
fn the_server_never_sends_an_item_beyond_the_credit() {
    let mut src = source::Dispatcher(Source::default());
    let mut server = open_server(&mut src);
    // The stream starts with no credit: nothing is sent, nothing produced.
    assert!(server_in(&mut server, &request(1, NUMBERS, &(100u32,)), at(1), &mut src).is_empty());
    assert_eq!(src.0.produced(), 0);
    let items = |sent: Vec<Vec<u8>>| -> Vec<u32> {
        sent.iter()
            .map(|f| match frame(f) {
                F::Item { seq: 1, index } => index,
                other => panic!("expected an item of stream 1, got {other:?}"),
            })
            .collect()
    };
    assert_eq!(items(server_in(&mut server, &credit(1, 3), at(2), &mut src)), [0, 1, 2]);
    assert_eq!(src.0.produced(), 3, "the handler is not asked for item 3");
    assert!(!server.has_work());
    // Credit is cumulative: a smaller or repeated limit grants nothing.
    assert!(server_in(&mut server, &credit(1, 2), at(3), &mut src).is_empty());
    assert!(server_in(&mut server, &credit(1, 3), at(3), &mut src).is_empty());
    // Pumping with no input sends nothing either.
    assert!(server_in(&mut server, &[], at(3), &mut src).is_empty());
    assert_eq!(items(server_in(&mut server, &credit(1, 7), at(4), &mut src)), [3, 4, 5, 6]);
    assert_eq!(src.0.produced(), 7);
    // A Credit for another number is dropped.
    assert!(server_in(&mut server, &credit(9, 50), at(5), &mut src).is_empty());
    assert_eq!(src.0.produced(), 7);
}

/// Runs a whole stream between a client machine (with `credits`) and a server
/// machine, checking that no Item leaves the server with an index at or above
/// the largest limit the server had received. `lose` says which server frames
/// are lost on the way (by their position among the frames the server sent).
/// Returns what the client delivered and the frames the server sent.
fn run_stream(count: u32, credits: u32, mut lose: impl FnMut(usize, &F) -> bool) -> (Vec<Got>, Vec<F>, Source) {
    let mut src = source::Dispatcher(Source::default());
    let mut client = ClientMachine::<64, 64>::new();
    client.set_retry_policy(RetryPolicy {
        attempts: 10,
        attempt_timeout: Duration::from_millis(50),
        backoff: Duration::from_millis(5),
        max_backoff: Duration::from_millis(5),
    });
    let mut server = ServerMachine::<64, 64>::new();
    let seq = client.start_stream(source::methods::numbers, &(count,), credits, at(0), at(2000)).unwrap();
    let mut granted = 0u32;
    let mut sent_by_server = Vec::new();
    let mut got = Vec::new();
    let mut to_server = client_out(&mut client);
    let mut ms = 0;
    while !got.iter().any(|g| matches!(g, Got::End { .. } | Got::Done { .. })) && ms < 3000 {
        for chunk in std::mem::take(&mut to_server) {
            for f in frames(&chunk) {
                if let F::Credit { seq: s, limit } = f {
                    assert_eq!(s, seq);
                    granted = granted.max(limit);
                }
            }
            for answer in server_in(&mut server, &chunk, at(ms), &mut src) {
                let f = frame(&answer);
                if let F::Item { index, .. } = f {
                    assert!(index < granted, "item {index} sent with credit up to {granted} only");
                }
                let position = sent_by_server.len();
                sent_by_server.push(f.clone());
                if lose(position, &f) {
                    continue;
                }
                // The client reads one frame at a time, and answers (credit) between them.
                got.extend(client_in(&mut client, &answer, at(ms)));
                to_server.extend(client_out(&mut client));
            }
        }
        ms += 1;
        got.extend(client_poll(&mut client, at(ms)).into_iter().map(|(seq, e)| Got::Done { seq, outcome: Err(e) }));
        to_server.extend(client_out(&mut client));
    }
    (got, sent_by_server, src.0)
}

fn items_of(got: &[Got]) -> Vec<u32> {
    got.iter()
        .filter_map(|g| match g {
            Got::Item { index, value, .. } => {
                assert_eq!(postcard::from_bytes::<u32>(value).unwrap(), item(*index));
                Some(*index)
            }
            _ => None,
        })
        .collect()
}

#[test]
fn credit_keeps_the_server_within_the_window_from_start_to_end() {
    for credits in [1, 2, 3, 8] {
        let (got, sent, src) = run_stream(40, credits, |_, _| false);
        assert_eq!(items_of(&got), (0..40).collect::<Vec<_>>(), "credits {credits}");
        assert_eq!(got.last(), Some(&Got::End { seq: 1, end: StreamEnd { sent: 40, received: 40, status: None } }));
        assert_eq!(sent.iter().filter(|f| matches!(f, F::Item { .. })).count(), 40, "no item sent twice");
        assert_eq!(src.produced(), 40);
    }
}

#[test]
fn a_lost_item_shows_as_fewer_received_than_sent() {
    let (got, _, src) = run_stream(20, 4, |_, f| matches!(f, F::Item { index: 5 | 11, .. }));
    let received = items_of(&got);
    assert_eq!(received, (0..20).filter(|i| ![5, 11].contains(i)).collect::<Vec<_>>());
    let end = StreamEnd { sent: 20, received: 18, status: None };
    assert_eq!(got.last(), Some(&Got::End { seq: 1, end }));
    assert!(!end.is_complete());
    assert_eq!(src.produced(), 20, "lost items are not produced again");
}

#[test]
fn a_lost_end_is_recovered_by_the_credit_probe() {
    let mut lost = 0;
    let (got, sent, src) = run_stream(3, 4, |_, f| {
        let lose = matches!(f, F::End { .. }) && lost < 2;
        lost += usize::from(lose);
        lose
    });
    assert_eq!(items_of(&got), [0, 1, 2]);
    assert_eq!(got.last(), Some(&Got::End { seq: 1, end: StreamEnd { sent: 3, received: 3, status: None } }));
    let ends = sent.iter().filter(|f| matches!(f, F::End { .. })).count();
    assert_eq!(ends, 3, "the End sent again for each probe: {sent:?}");
    assert_eq!(src.produced(), 3, "nothing produced again");
}

#[test]
fn lost_first_items_are_passed_by_more_credit_and_nothing_runs_twice() {
    // The first two items are lost, all the credit there was: the client, hearing
    // nothing, sends its request again (which the server leaves to the stream in
    // progress) with more credit, and the stream goes on past them.
    let (got, sent, src) = run_stream(5, 2, |_, f| matches!(f, F::Item { index: 0 | 1, .. }));
    assert_eq!(items_of(&got), [2, 3, 4]);
    assert_eq!(got.last(), Some(&Got::End { seq: 1, end: StreamEnd { sent: 5, received: 3, status: None } }));
    let items = sent.iter().filter(|f| matches!(f, F::Item { .. })).count();
    assert_eq!(items, 5, "no item sent twice: {sent:?}");
    assert_eq!(src.produced(), 5, "nothing produced twice");
}

#[cfg(feature = "pipelining")]
#[test]
fn a_stream_method_while_another_stream_runs_is_refused_unavailable_without_running() {
    let mut src = source::Dispatcher(Source::default());
    // Window 4: calls 2 and 3 are within 4 numbers of the stream, as a client keeps them.
    let mut server = ServerMachine::<64, 64, 4>::new();
    server_in(&mut server, &hello(0), at(0), &mut src);
    assert!(server_in(&mut server, &request(1, NUMBERS, &(10u32,)), at(1), &mut src).is_empty());
    assert_eq!(
        frames(&server_in(&mut server, &credit(1, 1), at(1), &mut src).concat()),
        [F::Item { seq: 1, index: 0 }]
    );
    // A second stream, while the first runs: refused before anything of it runs.
    let answer = server_in(&mut server, &request(2, NUMBERS, &(5u32,)), at(2), &mut src).concat();
    assert_eq!(frame(&answer), F::Status { seq: 2, status: Status::Unavailable });
    assert!(!Error::Status(Status::Unavailable).may_have_executed());
    // Its credit starts nothing; a copy of its request gets the same refusal.
    server_in(&mut server, &credit(2, 5), at(3), &mut src);
    let again = server_in(&mut server, &request(2, NUMBERS, &(5u32,)), at(3), &mut src).concat();
    assert_eq!(frame(&again), F::Status { seq: 2, status: Status::Unavailable });
    assert_eq!(src.0.produced_for(5), 0);
    // An ordinary call meanwhile is answered; the first stream goes on to its End.
    let echo = server_in(&mut server, &request(3, ECHO, &(33u32,)), at(4), &mut src).concat();
    assert_eq!(frame(&echo), F::Reply { seq: 3, value: postcard::to_allocvec(&33u32).unwrap() });
    let rest = frames(&server_in(&mut server, &credit(1, 100), at(5), &mut src).concat());
    assert_eq!(rest.len(), 10);
    assert_eq!(rest.last(), Some(&F::End { seq: 1, status: None, items: 10 }));
    assert_eq!(src.0.produced_for(10), 10);
}

#[test]
fn with_one_slot_a_new_call_ends_the_stream_its_client_gave_up_on() {
    let mut src = source::Dispatcher(Source::default());
    let mut server = open_server(&mut src);
    assert!(server_in(&mut server, &request(1, NUMBERS, &(10u32,)), at(1), &mut src).is_empty());
    let items = frames(&server_in(&mut server, &credit(1, 3), at(1), &mut src).concat());
    assert_eq!(items.len(), 3);
    // With one call in flight at a time, call 2 means the client gave up on stream 1:
    // the server ends it and answers call 2.
    let echo = server_in(&mut server, &request(2, ECHO, &(2u32,)), at(2), &mut src).concat();
    assert_eq!(frame(&echo), F::Reply { seq: 2, value: postcard::to_allocvec(&2u32).unwrap() });
    // Stream 1 produces nothing more, whatever credit comes; its End (cached
    // as CANCELLED after 3 items) went with the only slot, which call 2 took.
    let late = frames(&server_in(&mut server, &credit(1, 100), at(3), &mut src).concat());
    assert!(late.is_empty(), "{late:?}");
    assert_eq!(src.0.produced_for(10), 3);
}

#[cfg(feature = "cancel")]
#[test]
fn a_cancelled_stream_ends_cancelled_counting_exactly_the_items_produced() {
    // On the machines: 3 items of credit, then a Cancel.
    let mut src = source::Dispatcher(Source::default());
    let mut server = open_server(&mut src);
    server_in(&mut server, &request(1, NUMBERS, &(100u32,)), at(1), &mut src);
    assert_eq!(server_in(&mut server, &credit(1, 3), at(2), &mut src).len(), 3);
    let cancel = encoded(|b| wirecall::wire::encode_cancel(1, b));
    let end = server_in(&mut server, &cancel, at(3), &mut src).concat();
    assert_eq!(frame(&end), F::End { seq: 1, status: Some(Status::Cancelled), items: 3 });
    // The End is final: more credit, or the Cancel again, gets it again and produces nothing.
    for input in [credit(1, 50), cancel.clone(), request(1, NUMBERS, &(100u32,))] {
        let again = server_in(&mut server, &input, at(4), &mut src).concat();
        assert_eq!(frame(&again), F::End { seq: 1, status: Some(Status::Cancelled), items: 3 });
    }
    assert_eq!(src.0.produced(), 3);
    assert_counted!(server.stats().cancelled, 1);

    // Over a loopback: the caller stops after 5 items; the End counts what the server produced.
    for credits in [1, 4, 10] {
        let src = Source::default();
        let mut client = Client::new(serve(&src), StdClock::new());
        client.set_stream_credits(credits);
        let mut seen = 0;
        let end = client
            .call_stream(source::methods::numbers, &(1000u32,), &mut |x: u32| {
                assert_eq!(x, item(seen));
                seen += 1;
                seen < 5
            })
            .expect("the stream ends");
        assert_eq!(end.status, Some(Status::Cancelled), "credits {credits}");
        assert_eq!(end.sent as usize, src.produced(), "credits {credits}: sent = items produced");
        assert!(end.received >= 5 && end.received <= end.sent, "{end:?}");
        assert!(end.sent < 1000);
        assert_eq!(seen, 5, "no item is handed over after the caller stopped");
        // The client goes on.
        assert_eq!(client.call::<_, u32>(source::methods::echo, &(1u32,)), Ok(1));
        assert_eq!(src.produced(), end.sent as usize, "nothing produced after the End");
    }
}

/// A stream that has items sends Credits, not its Request, when it waits: a
/// server that restarted answers a Credit with Status 9, so the stream ends
/// then (outcome unknown), not at its idle deadline.
#[test]
fn a_stream_whose_server_restarted_ends_at_its_next_credit_not_at_its_idle_deadline() {
    let mut svc = source::Dispatcher(Source::default());
    let mut server = ServerMachine::<256, 256>::new();
    let mut client = ClientMachine::<256, 256>::with_identity(7, 0);
    client.set_retry_policy(RetryPolicy { attempt_timeout: Duration::from_millis(100), ..RetryPolicy::DEFAULT });
    let idle = at(10_000);
    let seq = client.start_stream(source::methods::numbers, &(10u32,), 2, at(0), idle).unwrap();
    let mut got = Vec::new();
    // The handshake, the request, and the first items under credit 2.
    for _ in 0..3 {
        let out = client_out(&mut client).concat();
        let answers = server_in(&mut server, &out, at(0), &mut svc).concat();
        got.extend(client_in(&mut client, &answers, at(0)));
    }
    assert!(got.iter().any(|g| matches!(g, Got::Item { .. })), "items arrived: {got:?}");
    // The server restarts; what it sends now is lost. The client waits an attempt,
    // then sends a Credit (it has items), which the new server answers with Status 9.
    server = ServerMachine::<256, 256>::new();
    assert_eq!(client_poll(&mut client, at(200)), []);
    let out = client_out(&mut client).concat();
    assert!(frames(&out).iter().all(|f| matches!(f, F::Credit { .. })), "{:?}", frames(&out));
    let answers = server_in(&mut server, &out, at(200), &mut svc).concat();
    let answered = frames(&answers);
    assert!(!answered.is_empty(), "answered");
    assert!(answered.iter().all(|f| *f == F::Status { seq, status: Status::FailedPrecondition }), "{answered:?}");
    let ended = client_in(&mut client, &answers, at(200));
    let [Got::Done { seq: s, outcome: Err(error) }] = &ended[..] else { panic!("{ended:?}") };
    assert_eq!(*s, seq);
    assert!(error.may_have_executed(), "the stream ran: unknown, never 'not executed'");
    assert_eq!(client.in_flight(), 0, "ended at 200 ms, not at the 10 s idle deadline");
}
