//! The service and helpers shared by the integration tests.
#![allow(dead_code)]

/// `assert_eq!` on counters: checked only when feature `stats` keeps them.
#[allow(unused_macros)]
#[macro_export]
macro_rules! assert_counted {
    ($($t:tt)*) => {
        if cfg!(feature = "stats") {
            assert_eq!($($t)*);
        }
    };
}

/// `assert!` on counters: checked only when feature `stats` keeps them.
#[allow(unused_macros)]
#[macro_export]
macro_rules! assert_counted_that {
    ($($t:tt)*) => {
        if cfg!(feature = "stats") {
            assert!($($t)*);
        }
    };
}

use core::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use wirecall::embedded_io::{ErrorType, Read, Write};
use wirecall::heapless::{String, Vec};
use wirecall::link::loopback::{self, End};
use wirecall::machine::ServerStats;
use wirecall::{Link, Server, StdClock};

/// An application error, returned as a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "describe", derive(wirecall::schema::Schema), postcard(crate = wirecall::schema))]
pub enum DivError {
    DivideByZero,
}

wirecall::service! {
    /// The test service.
    pub mod demo {
        /// "Hello <name>".
        fn greet(name: &str) -> String<32> = 1;
        /// a + b
        fn add(a: i32, b: i32) -> i32 = 2;
        /// Not idempotent: counts its own runs.
        fn bump() -> u32 = 3;
        /// Sleeps `ms` milliseconds, then returns them.
        fn sleep(ms: u32) -> u32 = 4;
        /// Returns its argument.
        fn echo(data: &[u8]) -> Vec<u8, 200> = 5;
        /// a / b, or an application error.
        fn divide(a: i32, b: i32) -> Result<i32, DivError> = 6;
    }
}

/// The handlers, counting every execution.
#[derive(Default, Clone)]
pub struct Demo {
    pub runs: Arc<AtomicU32>,
}

impl Demo {
    pub fn runs(&self) -> u32 {
        self.runs.load(Ordering::SeqCst)
    }
    fn ran(&self) {
        self.runs.fetch_add(1, Ordering::SeqCst);
    }
}

impl demo::Service for Demo {
    fn greet(&mut self, name: &str) -> String<32> {
        self.ran();
        let mut s = String::new();
        let _ = write!(s, "Hello {name}");
        s
    }
    fn add(&mut self, a: i32, b: i32) -> i32 {
        self.ran();
        a.wrapping_add(b)
    }
    fn bump(&mut self) -> u32 {
        self.ran();
        self.runs()
    }
    fn sleep(&mut self, ms: u32) -> u32 {
        self.ran();
        thread::sleep(Duration::from_millis(u64::from(ms)));
        ms
    }
    fn echo(&mut self, data: &[u8]) -> Vec<u8, 200> {
        self.ran();
        Vec::from_slice(data).unwrap_or_default()
    }
    fn divide(&mut self, a: i32, b: i32) -> Result<i32, DivError> {
        self.ran();
        a.checked_div(b).ok_or(DivError::DivideByZero)
    }
}

/// Serves `Demo` on `end` in a thread until the link closes; returns the server's counters.
pub fn spawn_server<L: Link + Send + 'static>(link: L, demo: Demo) -> JoinHandle<ServerStats> {
    spawn_sized_server::<L, 256, 256>(link, demo)
}

/// As [`spawn_server`], with chosen buffer sizes.
pub fn spawn_sized_server<L: Link + Send + 'static, const RX: usize, const TX: usize>(
    link: L,
    demo: Demo,
) -> JoinHandle<ServerStats> {
    thread::spawn(move || {
        let mut server: Server<L, _, _, RX, TX> = Server::sized(link, demo::Dispatcher(demo), StdClock::new());
        let _ = server.serve();
        server.stats()
    })
}

/// A loopback pair with a `Demo` server on one end; returns the other end.
pub fn serve_demo() -> (End, Demo, JoinHandle<ServerStats>) {
    let (host, board) = loopback::pair();
    let demo = Demo::default();
    let handle = spawn_server(board, demo.clone());
    (host, demo, handle)
}

/// A link that moves at most one byte per read and per write.
pub struct OneByte<L>(pub L);

impl<L: ErrorType> ErrorType for OneByte<L> {
    type Error = L::Error;
}

impl<L: Read> Read for OneByte<L> {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, Self::Error> {
        let n = buf.len().min(1);
        self.0.read(&mut buf[..n])
    }
}

impl<L: Write> Write for OneByte<L> {
    fn write(&mut self, buf: &[u8]) -> Result<usize, Self::Error> {
        self.0.write(&buf[..buf.len().min(1)])
    }
    fn flush(&mut self) -> Result<(), Self::Error> {
        self.0.flush()
    }
}

impl<L: Link> Link for OneByte<L> {
    fn read_within(&mut self, buf: &mut [u8], timeout: Duration) -> Result<Option<usize>, Self::Error> {
        let n = buf.len().min(1);
        self.0.read_within(&mut buf[..n], timeout)
    }
}

/// Lowercase hex of bytes.
pub fn hex(bytes: &[u8]) -> std::string::String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Bytes from lowercase hex.
pub fn unhex(text: &str) -> std::vec::Vec<u8> {
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap()).collect()
}

/// Reads bytes from `link` until one whole frame has arrived; returns it decoded (CRC removed).
pub fn read_frame<L: Read>(link: &mut L) -> std::vec::Vec<u8> {
    let mut decoder = wirecall::wire::FrameDecoder::<256>::new();
    let mut byte = [0u8; 1];
    loop {
        assert_eq!(link.read(&mut byte).ok(), Some(1), "link closed before a whole frame arrived");
        if let (_, Some(wirecall::wire::Decoded::Frame)) = decoder.feed(&byte) {
            return decoder.frame().to_vec();
        }
    }
}

/// Plays the server's part of the handshake on a raw link: reads a Hello and
/// answers a Welcome (boot id 1, not resumed).
pub fn accept_session<L: Read + Write>(link: &mut L) {
    let hello = read_frame(link);
    let Ok(wirecall::wire::Frame::Hello { seq, .. }) = wirecall::wire::Frame::parse(&hello) else {
        panic!("expected a Hello, got {hello:02x?}");
    };
    let mut buf = [0u8; 16];
    let welcome = wirecall::wire::encode_welcome(seq, 1, false, 1, &mut buf).unwrap();
    link.write_all(welcome).unwrap();
}
