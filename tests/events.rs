//! One-way calls and events (issue #7): a one-way call runs once and is never
//! answered, a copy of it does not run again; events come between answers
//! without disturbing the calls, and gaps in their numbers are counted.
#![cfg(feature = "events")]

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::Tap;
use common::machines::{F, Got, at, client_in, client_out, encoded, frame, frames, hello, request, server_in};
use wirecall::link::loopback::{self, Direction};
use wirecall::machine::{ClientMachine, EmitError, ServerMachine};
use wirecall::wire::{Status, encode_event, encode_oneway};
use wirecall::{Client, Server, StdClock, Step};

wirecall::service! {
    /// A board that takes notes and answers questions.
    pub mod board {
        /// One-way: records `tag`.
        fn note(tag: u32) = 1, oneway;
        /// Returns `value(tag)`.
        fn get(tag: u32) -> u32 = 2;

        event tick: u32 = 1;
        event text: wirecall::heapless::String<16> = 2;
    }
}

fn value(tag: u32) -> u32 {
    tag.wrapping_mul(2_654_435_761) ^ 0x00c0_ffee
}

/// The handlers, recording notes by tag and counting `get`s.
#[derive(Default, Clone)]
struct Board {
    notes: Arc<Mutex<HashMap<u32, u32>>>,
    gets: Arc<Mutex<u32>>,
}

impl Board {
    fn notes_of(&self, tag: u32) -> u32 {
        self.notes.lock().unwrap().get(&tag).copied().unwrap_or(0)
    }
}

impl board::Service for Board {
    fn note(&mut self, tag: u32) {
        *self.notes.lock().unwrap().entry(tag).or_default() += 1;
    }
    fn get(&mut self, tag: u32) -> u32 {
        *self.gets.lock().unwrap() += 1;
        value(tag)
    }
}

const NOTE: u16 = board::ids::note;
const GET: u16 = board::ids::get;

fn oneway(seq: u16, tag: u32) -> Vec<u8> {
    encoded(|b| encode_oneway(seq, NOTE, &(tag,), b))
}

#[test]
fn a_one_way_call_runs_once_and_is_never_answered_and_a_copy_does_not_run_again() {
    let mut board = board::Dispatcher(Board::default());
    let mut server = ServerMachine::<64, 64>::new();
    // Outside a session it is dropped: not run, not answered.
    assert!(server_in(&mut server, &oneway(1, 1), at(0), &mut board).is_empty());
    assert_eq!(board.0.notes_of(1), 0);
    server_in(&mut server, &hello(0), at(0), &mut board);
    assert!(server_in(&mut server, &oneway(1, 1), at(1), &mut board).is_empty(), "never answered");
    assert_eq!(board.0.notes_of(1), 1);
    // A duplicate (the link repeated it) does not run again, and is not answered either.
    assert!(server_in(&mut server, &[oneway(1, 1), oneway(1, 1)].concat(), at(2), &mut board).is_empty());
    assert_eq!(board.0.notes_of(1), 1);
    // A Request under the same number does not run it either.
    let answer = server_in(&mut server, &request(1, NOTE, &(1u32,)), at(3), &mut board).concat();
    assert_eq!(frame(&answer), F::Status { seq: 1, status: Status::Aborted });
    assert_eq!(board.0.notes_of(1), 1);
    // The next calls go on as usual; an unknown one-way method is not answered either.
    assert!(server_in(&mut server, &oneway(2, 2), at(4), &mut board).is_empty());
    assert!(server_in(&mut server, &encoded(|b| encode_oneway(3, 99, &(3u32,), b)), at(4), &mut board).is_empty());
    let answer = server_in(&mut server, &request(4, GET, &(4u32,)), at(5), &mut board).concat();
    assert_eq!(frame(&answer), F::Reply { seq: 4, value: postcard::to_allocvec(&value(4)).unwrap() });
    assert_eq!(board.0.notes_of(2), 1);
    assert_counted!(server.stats().oneway, 3);
}

#[test]
fn a_one_way_call_is_done_once_written_and_nothing_waits_for_an_answer() {
    let mut board = board::Dispatcher(Board::default());
    let mut client = ClientMachine::<64, 64>::new();
    let mut server = ServerMachine::<64, 64>::new();
    // It needs a session: a Hello goes first.
    let seq = client.start_oneway(board::methods::note, &(7u32,), at(0), at(1000)).unwrap();
    let out = client_out(&mut client).concat();
    assert!(matches!(frame(&out), F::Hello { .. }));
    let welcome = server_in(&mut server, &out, at(0), &mut board).concat();
    client_in(&mut client, &welcome, at(0));
    let out = client_out(&mut client).concat();
    assert_eq!(frames(&out), [F::Request { seq, method: NOTE, oneway: true }]);
    assert!(!client.is_in_flight(seq), "written: done");
    assert_eq!(client.poll_at(), None, "no timer: it is never sent again");
    assert!(server_in(&mut server, &out, at(1), &mut board).is_empty());
    assert_eq!(board.0.notes_of(7), 1);
}

#[test]
fn one_way_calls_over_a_link_run_once_each_and_get_no_answer() {
    let (host, board_end) = loopback::pair();
    let (board_end, written_by_server) = Tap::new(board_end);
    let service = Board::default();
    let dispatcher = board::Dispatcher(service.clone());
    let server = std::thread::spawn(move || Server::new(board_end, dispatcher, StdClock::new()).serve());
    let mut client = board::Client(Client::new(host, StdClock::new()));
    for tag in 0..50u32 {
        assert_eq!(client.note(tag), Ok(()));
        if tag % 10 == 9 {
            assert_eq!(client.get(tag), Ok(value(tag)));
        }
    }
    // A call after them all: the notes sent before it have been handled.
    assert_eq!(client.get(1000), Ok(value(1000)));
    for tag in 0..50 {
        assert_eq!(service.notes_of(tag), 1, "note {tag}");
    }
    // Closing the link ends the server: everything it wrote is recorded then.
    drop(client);
    let _ = server.join();
    let answers = frames(&written_by_server.lock().unwrap());
    // Hello, then 50 one-way calls (seq 1..=50) interleaved with 6 requests.
    let replies: Vec<u16> = answers.iter().filter(|f| matches!(f, F::Reply { .. })).map(F::seq).collect();
    assert_eq!(replies.len(), 6);
    assert!(answers.iter().all(|f| matches!(f, F::Reply { .. } | F::Welcome { .. })), "{answers:?}");
}

#[test]
fn an_event_waits_for_the_answer_being_sent_and_does_not_disturb_the_call() {
    let mut board = board::Dispatcher(Board::default());
    let mut server = ServerMachine::<64, 64>::new();
    let mut client = ClientMachine::<64, 64>::new();
    let seq = client.start(board::methods::get, &(5u32,), at(0), at(1000)).unwrap();
    let welcome = server_in(&mut server, &client_out(&mut client).concat(), at(0), &mut board).concat();
    client_in(&mut client, &welcome, at(0));
    let request = client_out(&mut client).concat();
    assert_eq!(server.receive(&request, at(1), &mut board), request.len());
    let reply = server.outgoing().to_vec();
    // An event emitted now goes after the reply, never inside it.
    assert_eq!(server.emit(board::events::tick, &1), Ok(()));
    assert_eq!(server.outgoing(), &reply[..]);
    server.wrote(3);
    assert_eq!(server.emit(board::events::tick, &2), Err(EmitError::Busy), "one event waits at a time");
    let mut wire = reply[..3].to_vec();
    wire.extend_from_slice(server.outgoing());
    server.wrote(server.outgoing().len());
    let event = server.outgoing().to_vec();
    assert_eq!(frame(&event), F::Event { seq: 0, topic: board::events::tick.id });
    server.wrote(event.len());
    assert!(server.outgoing().is_empty());
    // The event before the reply, then the reply: each delivered for what it is.
    let mut input = event.clone();
    input.extend_from_slice(&wire);
    let got = client_in(&mut client, &input, at(2));
    assert_eq!(
        got,
        [
            Got::Event { seq: 0, topic: 1, payload: postcard::to_allocvec(&1u32).unwrap() },
            Got::Done { seq, outcome: Ok(postcard::to_allocvec(&value(5)).unwrap()) },
        ]
    );
    // An event too large for the transmit buffer is refused.
    let mut small = ServerMachine::<64, 16>::new();
    let long = wirecall::heapless::String::<16>::try_from("sixteen chars!!!").unwrap();
    assert_eq!(small.emit(board::events::text, &long), Err(EmitError::TooLarge));
}

#[test]
fn events_interleave_with_calls_without_disturbing_them() {
    let (host, board_end) = loopback::pair();
    let service = Board::default();
    let dispatcher = board::Dispatcher(service.clone());
    std::thread::spawn(move || {
        let mut server = Server::new(board_end, dispatcher, StdClock::new());
        let mut n = 0u32;
        // An event after every step: between answers, and while the client waits for one.
        loop {
            match server.step(Duration::from_millis(2)) {
                Ok(Step::Idle | Step::Progress) => {}
                _ => return,
            }
            if server.emit(board::events::tick, &n).is_err() {
                return;
            }
            n += 1;
        }
    });
    let mut client = Client::new(host, StdClock::new());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&seen);
    client.on_event(Box::new(move |event| {
        let tick = event.decode(board::events::tick).expect("a tick");
        sink.lock().unwrap().push((event.seq, tick));
        assert!(event.decode(board::events::text).is_none(), "not a text");
    }));
    let mut board = board::Client(client);
    for tag in 0..200u32 {
        assert_eq!(board.get(tag), Ok(value(tag)), "call {tag}");
        if tag % 50 == 0 {
            assert_eq!(board.note(tag), Ok(()));
        }
    }
    let seen = seen.lock().unwrap().clone();
    assert!(seen.len() >= 150, "an event after each step: {}", seen.len());
    for (i, &(seq, tick)) in seen.iter().enumerate() {
        assert_eq!((u32::from(seq), tick), (i as u32, i as u32), "in order, none missing");
    }
    let stats = board.0.stats();
    assert_counted!((stats.events as usize, stats.events_missed), (seen.len(), 0));
    assert_counted!(stats.late_replies, 0);
    assert_eq!(*service.gets.lock().unwrap(), 200, "each call ran once");
}

#[test]
fn gaps_in_event_numbers_are_counted_as_missed() {
    let event = |seq: u16| encoded(|b| encode_event(seq, 1, &u32::from(seq), b));
    let mut client = ClientMachine::<64, 64>::new();
    let mut got = Vec::new();
    for seq in [0u16, 1, 4, 5, 7] {
        got.extend(client_in(&mut client, &event(seq), at(0)));
    }
    assert_eq!(got.len(), 5, "every event is delivered, whatever came before");
    assert_counted!((client.stats().events, client.stats().events_missed), (5, 3));
    // Numbers wrap; an old repeat is no gap.
    let mut client = ClientMachine::<64, 64>::new();
    for seq in [0xfffe_u16, 0xffff, 2, 1] {
        client_in(&mut client, &event(seq), at(0));
    }
    assert_counted!((client.stats().events, client.stats().events_missed), (4, 2));

    // Over a link: three events lost while the wire from the board is muted.
    let (host, board_end) = loopback::pair();
    let wire = host.wire();
    let mut server = Server::new(board_end, board::Dispatcher(Board::default()), StdClock::new());
    let mut client = Client::new(host, StdClock::new());
    for n in 0..7u32 {
        wire.set_direction_muted(Direction::SecondToFirst, (2..5).contains(&n));
        server.emit(board::events::tick, &n).unwrap().unwrap();
    }
    wire.set_direction_muted(Direction::SecondToFirst, false);
    let mut ticks = Vec::new();
    while let Some(tick) = client.next_event(Duration::from_millis(50), |e| e.decode(board::events::tick)) {
        ticks.push(tick.unwrap());
    }
    assert_eq!(ticks, [0, 1, 5, 6]);
    assert_counted!((client.stats().events, client.stats().events_missed), (4, 3));
    assert_eq!(client.events_dropped(), 0);
}
