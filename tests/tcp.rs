//! TCP on loopback: connections are isolated, a misbehaving one (garbage, a
//! half frame left hanging) does not disturb another, a full house makes room
//! for a new client, and sessions outlive connections: a client that
//! reconnects resumes its session, and a call in flight at the drop is
//! answered, its handler run once. Client id 0 (anonymous) never shares a
//! session. (tests/tcp_attacks.rs: the server under attack.)

use std::io::{Read as _, Write as _};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use wirecall::demo::{Board, demo};
use wirecall::link::IoLink;
use wirecall::link::tcp::{self, ServeConfig, TcpServer};
use wirecall::machine::ClientMachine;
use wirecall::wire::{Decoded, Frame, FrameDecoder, encode_hello, encode_request};
use wirecall::{Client, Executed, StdClock};

/// A server with a board per connection, through the old `serve`.
fn start() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || tcp::serve(listener, 8, || demo::Dispatcher(Board::new(StdClock::new()))));
    addr
}

/// A server with one board shared by every connection.
fn start_shared() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let board = Arc::new(Mutex::new(demo::Dispatcher(Board::new(StdClock::new()))));
    let server = TcpServer::shared(board, ServeConfig::default());
    std::thread::spawn(move || server.serve(listener));
    addr
}

/// A server with one board shared by every connection, at most `max` connections.
fn shared(max: usize) -> SocketAddr {
    shared_with(ServeConfig::default().max_connections(max))
}

fn shared_with(config: ServeConfig) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let board = Arc::new(Mutex::new(demo::Dispatcher(Board::new(StdClock::new()))));
    let server = TcpServer::shared(board, config);
    std::thread::spawn(move || server.serve(listener));
    addr
}

/// The first frame on `stream` that is not a Welcome, decoded (CRC removed).
fn answer(stream: &mut TcpStream) -> Vec<u8> {
    stream.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let mut decoder = FrameDecoder::<256>::new();
    let mut buf = [0u8; 256];
    loop {
        let n = stream.read(&mut buf).expect("an answer within 3 s");
        assert!(n > 0, "closed before an answer");
        let mut rest = &buf[..n];
        while !rest.is_empty() {
            let (used, event) = decoder.feed(rest);
            rest = &rest[used..];
            if event == Some(Decoded::Frame) && !matches!(Frame::parse(decoder.frame()), Ok(Frame::Welcome { .. })) {
                return decoder.frame().to_vec();
            }
        }
    }
}

/// The first Welcome on `stream`: whether it resumed a session.
fn welcome_resumed(stream: &mut TcpStream) -> bool {
    stream.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let mut decoder = FrameDecoder::<256>::new();
    let mut byte = [0u8; 1];
    loop {
        assert_eq!(stream.read(&mut byte).expect("a Welcome within 3 s"), 1, "closed before a Welcome");
        if decoder.feed(&byte).1 == Some(Decoded::Frame) {
            if let Ok(Frame::Welcome { resumed, .. }) = Frame::parse(decoder.frame()) {
                return resumed;
            }
        }
    }
}

fn link(addr: SocketAddr) -> IoLink<TcpStream> {
    let stream = TcpStream::connect(addr).unwrap();
    stream.set_nodelay(true).unwrap();
    IoLink::new(stream)
}

#[test]
fn connections_are_separate_sessions_and_a_bad_one_disturbs_no_other() {
    let addr = start();
    let mut a = demo::Client(tcp::connect(addr).unwrap());
    assert_eq!(a.greet("Ada").unwrap().as_str(), "Hello Ada");

    // A misbehaving peer: garbage, then half a frame, then silence.
    let mut bad = TcpStream::connect(addr).unwrap();
    bad.write_all(&[0x13, 0x37, 0x00, 0xff, 0xff, 0x00, 0x05, 0x11, 0x22]).unwrap();

    let mut b = demo::Client(tcp::connect(addr).unwrap());
    assert_eq!(a.bump(), Ok(1));
    assert_eq!(a.bump(), Ok(2));
    assert_eq!(b.bump(), Ok(1), "each connection has its own board");
    assert_eq!(b.add(2, 3), Ok(5));
    drop(bad);
    assert_eq!(a.bump(), Ok(3));
}

#[test]
fn a_shared_board_counts_every_connections_calls() {
    let addr = start_shared();
    let mut a = demo::Client(tcp::connect(addr).unwrap());
    let mut b = demo::Client(tcp::connect(addr).unwrap());
    assert_eq!(a.bump(), Ok(1));
    assert_eq!(b.bump(), Ok(2));
    assert_eq!(a.bump(), Ok(3));
}

#[test]
fn a_full_house_closes_the_idlest_connection_for_a_new_client() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || tcp::serve(listener, 1, || demo::Dispatcher(Board::new(StdClock::new()))));
    let mut first = demo::Client(tcp::connect(addr).unwrap());
    assert_eq!(first.add(1, 1), Ok(2));
    // The one slot is taken by an idle connection: the new client gets it.
    let mut second = demo::Client(tcp::connect(addr).unwrap());
    second.0.set_timeout(Duration::from_millis(500));
    assert_eq!(second.add(1, 1), Ok(2));
    // The first was closed; its session was kept, so it reconnects and carries on.
    let error = first.add(2, 2).unwrap_err();
    first.0.replace_link(link(addr));
    if error.may_have_executed() {
        assert_eq!(first.0.resume::<i32>(), Ok(4), "{error}, then resumed");
    } else {
        assert_eq!(first.add(2, 2), Ok(4), "{error}, then called again");
    }
}

#[test]
fn a_call_in_flight_when_the_connection_drops_is_resumed_on_a_new_one() {
    let addr = start_shared();
    let stream = TcpStream::connect(addr).unwrap();
    let cut = stream.try_clone().unwrap();
    let mut board = demo::Client(Client::new(IoLink::new(stream), StdClock::new()));
    board.0.set_timeout(Duration::from_secs(5));
    let before = board.bump().unwrap();

    // The connection drops 300 ms into a one-second call.
    let cutter = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        cut.shutdown(Shutdown::Both).unwrap();
    });
    let started = Instant::now();
    let error = board.slow(1000).unwrap_err();
    assert!(started.elapsed() < Duration::from_millis(900), "the drop ended the call: {:?}", started.elapsed());
    assert_eq!(error.executed(), Executed::Maybe, "{error}");
    cutter.join().unwrap();

    // A new connection: the same client resumes its session, and the call.
    board.0.replace_link(link(addr));
    assert_eq!(board.0.resume::<u32>(), Ok(1000), "the handler's value");
    assert_eq!(board.bump(), Ok(before + 1), "the same board");
    if cfg!(feature = "stats") {
        let stats = board.0.server_stats().unwrap();
        assert_eq!(stats.dispatched, 3, "bump, slow once, bump: {stats:?}");
    }
}

#[test]
fn a_call_whose_answer_was_lost_is_resumed_from_the_cache_on_a_new_connection() {
    let addr = start_shared();
    let mut board = demo::Client(tcp::connect(addr).unwrap());
    // The call ends before its handler does; by the time the client is back
    // on a new connection the answer is waiting in the session's cache.
    board.0.set_timeout(Duration::from_millis(100));
    assert_eq!(board.slow(300), Err(wirecall::Error::Timeout));
    std::thread::sleep(Duration::from_millis(400));
    board.0.replace_link(link(addr));
    board.0.set_timeout(Duration::from_secs(2));
    let started = Instant::now();
    assert_eq!(board.0.resume::<u32>(), Ok(300));
    assert!(started.elapsed() < Duration::from_millis(250), "from the cache, not run again: {:?}", started.elapsed());
    if cfg!(feature = "stats") {
        let stats = board.0.server_stats().unwrap();
        assert_eq!((stats.dispatched, stats.duplicates), (1, 1), "{stats:?}");
    }
}

#[test]
fn a_newer_connection_of_the_same_client_takes_its_session_over() {
    let addr = start_shared();
    let mut board = demo::Client(Client::with_machine(
        link(addr),
        StdClock::new(),
        ClientMachine::<256, 256>::with_identity(0x5e55_1011, 0),
    ));
    assert_eq!(board.add(1, 2), Ok(3));
    let mut old = board.0.replace_link(link(addr));
    assert_eq!(board.add(2, 2), Ok(4));
    // The server closed the older connection.
    old.get_mut().set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    assert_eq!(old.get_mut().read(&mut [0u8; 64]).map_err(|e| e.kind()), Ok(0), "closed by the server");
    if cfg!(feature = "stats") {
        assert_eq!(board.0.server_stats().unwrap().hellos, 2, "one session, opened then resumed");
    }
}

#[test]
fn another_clients_hello_leaves_a_session_alone() {
    let addr = start_shared();
    let mut a = demo::Client(tcp::connect(addr).unwrap());
    a.0.set_timeout(Duration::from_millis(100));
    assert_eq!(a.slow(300), Err(wirecall::Error::Timeout));
    // Other clients come and go, each with its own Hello.
    for _ in 0..3 {
        let mut b = demo::Client(tcp::connect(addr).unwrap());
        assert_eq!(b.add(2, 3), Ok(5));
    }
    a.0.set_timeout(Duration::from_secs(2));
    assert_eq!(a.0.resume::<u32>(), Ok(300));
}

#[test]
fn anonymous_clients_never_share_a_session() {
    // Client id 0: every no_std client, and `ClientMachine::new()`.
    let addr = shared(128);
    let mut buf = [0u8; 64];
    // P says Hello and calls add(1, 1) as seq 1; it does not read the answer yet.
    let mut p = TcpStream::connect(addr).unwrap();
    p.write_all(encode_hello(0, 0, true, &mut buf).unwrap()).unwrap();
    p.write_all(encode_request(1, demo::ids::add, &(1i32, 1i32), &mut buf).unwrap()).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    // Q, also id 0, opens a session of its own and calls add(5, 5) as seq 1.
    let mut q = TcpStream::connect(addr).unwrap();
    q.write_all(encode_hello(0, 0, true, &mut buf).unwrap()).unwrap();
    q.write_all(encode_request(1, demo::ids::add, &(5i32, 5i32), &mut buf).unwrap()).unwrap();
    assert_eq!(answer(&mut q), [0x12, 1, 0, 20], "Q: 10");
    // Q took nothing from P: P's connection is open, and its answer is its own.
    assert_eq!(answer(&mut p), [0x12, 1, 0, 4], "P: 2");
    // P reconnects and asks to resume: there is nothing to resume for id 0.
    let mut p2 = TcpStream::connect(addr).unwrap();
    p2.write_all(encode_hello(2, 0, false, &mut buf).unwrap()).unwrap();
    let resumed = welcome_resumed(&mut p2);
    p2.write_all(encode_request(1, demo::ids::add, &(1i32, 1i32), &mut buf).unwrap()).unwrap();
    assert_eq!(answer(&mut p2), [0x12, 1, 0, 4], "run for P, never Q's cached 10");
    assert!(!resumed, "id 0 has no session across connections");
}

#[test]
fn one_connection_keeps_at_most_one_session_however_many_ids_it_says_hello_with() {
    // Room for 8 sessions.
    let addr = shared_with(ServeConfig::default().max_connections(4).sessions(8));
    let mut a = demo::Client(tcp::connect(addr).unwrap());
    a.0.set_timeout(Duration::from_millis(100));
    assert_eq!(a.slow(300), Err(wirecall::Error::Timeout));
    std::thread::sleep(Duration::from_millis(300));
    // A disconnects (its answer is cached in its session) ...
    drop(a.0.replace_link(link(addr)));
    std::thread::sleep(Duration::from_millis(100));
    // ... while one connection says Hello with 50 client ids.
    let mut flood = TcpStream::connect(addr).unwrap();
    let mut buf = [0u8; 64];
    for id in 1..=50u32 {
        flood.write_all(encode_hello(0, 0xf100_0000 + id, true, &mut buf).unwrap()).unwrap();
    }
    for _ in 1..=50 {
        welcome_resumed(&mut flood);
    }
    // A's session is still there.
    a.0.set_timeout(Duration::from_secs(2));
    assert_eq!(a.0.resume::<u32>(), Ok(300));
}

#[test]
fn a_panicking_service_factory_closes_one_connection_and_serving_goes_on() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let made = Arc::new(AtomicUsize::new(0));
    let count = made.clone();
    let factory = move || {
        assert_ne!(count.fetch_add(1, Ordering::SeqCst), 1, "wirecall-test: the second service cannot be made");
        demo::Dispatcher(Board::new(StdClock::new()))
    };
    let serving =
        std::thread::spawn(move || TcpServer::per_connection(factory, ServeConfig::default()).serve(listener));
    let mut first = demo::Client(tcp::connect(addr).unwrap());
    assert_eq!(first.add(1, 1), Ok(2));
    // The second connection's service panics as it is made: that connection is closed.
    let mut second = TcpStream::connect(addr).unwrap();
    second.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    assert_eq!(second.read(&mut [0u8; 16]).map_err(|e| e.kind()), Ok(0), "closed by the server");
    // The server still serves.
    let mut third = demo::Client(tcp::connect(addr).unwrap());
    third.0.set_timeout(Duration::from_secs(2));
    assert_eq!(third.add(2, 3), Ok(5));
    assert_eq!(first.add(2, 2), Ok(4));
    assert!(!serving.is_finished());
}

/// Events from an [`Emitter`](tcp::Emitter) reach every client with a session,
/// also when a handler emits them.
#[cfg(feature = "events")]
mod events {
    use std::sync::OnceLock;

    use super::*;

    wirecall::service! {
        /// A board that tells everyone.
        pub mod shouter {
            /// Emits `tick(n)` to every client with a session, and returns how many.
            fn shout(n: u32) -> u32 = 1;
            event tick: u32 = 1;
        }
    }

    struct Shouter(Arc<OnceLock<tcp::Emitter>>);

    impl shouter::Service for Shouter {
        fn shout(&mut self, n: u32) -> u32 {
            let reached = self.0.get().unwrap().emit(shouter::events::tick, &n).unwrap();
            u32::try_from(reached).unwrap()
        }
    }

    fn tick<L: wirecall::Link>(client: &mut Client<L, StdClock>) -> Option<u32> {
        client.next_event(Duration::from_secs(2), |e| e.decode(shouter::events::tick)).flatten()
    }

    #[test]
    fn an_emitter_reaches_every_connected_client() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let slot = Arc::new(OnceLock::new());
        let service = Arc::new(Mutex::new(shouter::Dispatcher(Shouter(slot.clone()))));
        let server = TcpServer::shared(service, ServeConfig::default());
        let emitter = server.emitter();
        slot.set(emitter.clone()).ok().unwrap();
        std::thread::spawn(move || server.serve(listener));

        // A connection that never said Hello gets no events.
        let _silent = TcpStream::connect(addr).unwrap();
        let mut a = shouter::Client(tcp::connect(addr).unwrap());
        let mut b = shouter::Client(tcp::connect(addr).unwrap());
        // A handler emits, also to its own client, whose session is busy answering it.
        assert_eq!(a.shout(1), Ok(1), "b has no session yet");
        assert_eq!(b.shout(2), Ok(2));
        assert_eq!(tick(&mut a.0), Some(1));
        assert_eq!(tick(&mut a.0), Some(2));
        assert_eq!(tick(&mut b.0), Some(2));
        // From outside any handler.
        assert_eq!(emitter.emit(shouter::events::tick, &8), Ok(2));
        assert_eq!(tick(&mut a.0), Some(8));
        assert_eq!(tick(&mut b.0), Some(8));
        let big = [0u8; 2000];
        assert_eq!(
            emitter.emit(wirecall::Topic::<[u8]>::new(9), &big[..]),
            Err(wirecall::machine::EmitError::TooLarge)
        );
    }

    #[test]
    fn emit_never_waits_for_a_client_that_does_not_read() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let slot = Arc::new(OnceLock::new());
        let service = Arc::new(Mutex::new(shouter::Dispatcher(Shouter(slot.clone()))));
        let server = TcpServer::shared(service, ServeConfig::default().write_timeout(Duration::from_secs(2)));
        let emitter = server.emitter();
        slot.set(emitter.clone()).ok().unwrap();
        std::thread::spawn(move || server.serve(listener));

        // A client with a session that never reads.
        let mut deaf = TcpStream::connect(addr).unwrap();
        deaf.write_all(encode_hello(0, 0xdeaf, true, &mut [0u8; 16]).unwrap()).unwrap();
        std::thread::sleep(Duration::from_millis(100));
        // Megabytes of events: far more than the sockets hold.
        let payload = [7u8; 900];
        let (mut slowest, mut dropped) = (Duration::ZERO, 0);
        for _ in 0..10_000 {
            let started = Instant::now();
            let reached = emitter.emit(wirecall::Topic::<[u8]>::new(9), &payload[..]).unwrap();
            slowest = slowest.max(started.elapsed());
            dropped += usize::from(reached == 0);
        }
        assert!(slowest < Duration::from_millis(300), "an emit waited {slowest:?} for a client that does not read");
        assert!(dropped > 0, "its queue overflowed: those events did not reach it");
        // A handler that emits is not held up by it either.
        let mut a = shouter::Client(tcp::connect(addr).unwrap());
        a.0.set_timeout(Duration::from_secs(1));
        let started = Instant::now();
        assert!(a.shout(1).is_ok());
        assert!(started.elapsed() < Duration::from_millis(300), "{:?}", started.elapsed());
    }
}

/// A connection sending a stream is running a call: a full house does not
/// close it for a new connection.
#[cfg(feature = "streams")]
mod streams {
    use super::*;

    wirecall::service! {
        /// Long lines.
        pub mod source {
            /// `count` lines of 200 bytes.
            fn lines(count: u32) -> heapless::String<200> = 1, stream;
        }
    }

    struct Lines;

    impl source::Service for Lines {
        fn lines(&mut self, count: u32, index: u32) -> Option<heapless::String<200>> {
            (index < count).then(|| core::iter::repeat_n('x', 200).collect())
        }
    }

    #[test]
    fn a_connection_sending_a_stream_is_not_closed_for_a_new_one() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let config = ServeConfig::default().max_connections(1).write_timeout(Duration::from_secs(5));
        let server = TcpServer::per_connection(|| source::Dispatcher(Lines), config);
        std::thread::spawn(move || server.serve(listener));

        // A stream of a million lines with all the credit it wants, whose items
        // the client does not read: the server's writes wait.
        let mut streamer = TcpStream::connect(addr).unwrap();
        let mut buf = [0u8; 64];
        streamer.write_all(encode_hello(0, 0x5743_0001, true, &mut buf).unwrap()).unwrap();
        streamer.write_all(encode_request(1, source::ids::lines, &(1_000_000u32,), &mut buf).unwrap()).unwrap();
        streamer.write_all(wirecall::wire::encode_credit(1, u32::MAX, &mut buf).unwrap()).unwrap();
        std::thread::sleep(Duration::from_millis(500));

        // The one slot is running a call: a new connection is closed, not served.
        let mut late = TcpStream::connect(addr).unwrap();
        let _ = late.write_all(encode_hello(0, 0x5743_0002, true, &mut buf).unwrap());
        late.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let read = late.read(&mut buf);
        assert!(
            matches!(read, Ok(0)) || read.as_ref().is_err_and(|e| e.kind() == std::io::ErrorKind::ConnectionReset),
            "the new connection was served ({read:?}): the stream's was closed for it"
        );
        // The stream goes on.
        streamer.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let mut total = 0;
        while total < 5_000_000 {
            let n = streamer.read(&mut [0u8; 65536]).unwrap();
            assert!(n > 0, "the stream was closed after {total} bytes");
            total += n;
        }
    }
}
