//! TCP on loopback: connections are isolated, a misbehaving one (garbage, a
//! half frame left hanging) does not disturb another, a full house makes room
//! for a new client, and sessions outlive connections: a client that
//! reconnects resumes its session, and a call in flight at the drop is
//! answered, its handler run once. (tests/tcp_attacks.rs: the server under attack.)

use std::io::{Read as _, Write as _};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use wirecall::demo::{Board, demo};
use wirecall::link::IoLink;
use wirecall::link::tcp::{self, ServeConfig, TcpServer};
use wirecall::machine::ClientMachine;
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
}
