//! TCP on loopback: connections are isolated sessions, and a misbehaving one
//! (garbage, a half frame left hanging) does not disturb another.

use std::io::Write as _;
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

use wirecall::StdClock;
use wirecall::demo::{Board, demo};
use wirecall::link::tcp;

fn start() -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || tcp::serve(listener, 8, || demo::Dispatcher(Board::new(StdClock::new()))));
    addr
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
fn a_connection_beyond_the_limit_is_closed() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || tcp::serve(listener, 1, || demo::Dispatcher(Board::new(StdClock::new()))));
    let mut first = demo::Client(tcp::connect(addr).unwrap());
    assert_eq!(first.add(1, 1), Ok(2));
    let mut second = demo::Client(tcp::connect(addr).unwrap());
    second.0.set_timeout(Duration::from_millis(500));
    let error = second.add(1, 1).unwrap_err();
    assert!(!error.may_have_executed(), "refused before any request reached a server: {error}");
    assert_eq!(first.add(2, 2), Ok(4));
}
