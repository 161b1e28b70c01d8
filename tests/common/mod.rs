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

/// What the hand-played servers announce: 256-byte buffers, every optional part
/// this build of the crate has (PROTOCOL.md §4.1).
#[allow(dead_code)]
pub const CAPS: wirecall::wire::Capabilities =
    wirecall::wire::Capabilities { rx: 256, tx: 253, features: wirecall::wire::Features::BUILT_IN };

/// Plays the server's part of the handshake on a raw link: reads a Hello and
/// answers a Welcome (boot id 1, not resumed) with [`CAPS`].
pub fn accept_session<L: Read + Write>(link: &mut L) {
    let hello = read_frame(link);
    let Ok(wirecall::wire::Frame::Hello { seq, .. }) = wirecall::wire::Frame::parse(&hello) else {
        panic!("expected a Hello, got {hello:02x?}");
    };
    let mut buf = [0u8; wirecall::wire::MAX_WELCOME_LEN];
    let welcome = wirecall::wire::encode_welcome(seq, 1, false, 1, Some(CAPS), &mut buf).unwrap();
    link.write_all(welcome).unwrap();
}

/// Driving the protocol machines directly: bytes in, bytes out, a fixed time,
/// every frame visible, so a test can drop, reorder or repeat any of them.
pub mod machines {
    use std::vec::Vec;

    use wirecall::machine::{ClientMachine, Dispatch, Incoming, ServerMachine};
    use wirecall::wire::{Decoded, Frame, FrameDecoder, Status};
    use wirecall::{Error, Instant, StreamEnd};

    /// A frame as a test looks at it: kind, number and the fields that matter.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub enum F {
        Request { seq: u16, method: u16, oneway: bool },
        Cancel { seq: u16 },
        Credit { seq: u16, limit: u32 },
        Item { seq: u16, index: u32 },
        End { seq: u16, status: Option<Status>, items: u32 },
        Event { seq: u16, topic: u16 },
        Reply { seq: u16, value: Vec<u8> },
        Status { seq: u16, status: Status },
        Hello { seq: u16, fresh: bool },
        Welcome { seq: u16, resumed: bool, window: u8 },
    }

    impl F {
        /// The frame's sequence number.
        pub fn seq(&self) -> u16 {
            match *self {
                F::Request { seq, .. }
                | F::Cancel { seq }
                | F::Credit { seq, .. }
                | F::Item { seq, .. }
                | F::End { seq, .. }
                | F::Event { seq, .. }
                | F::Reply { seq, .. }
                | F::Status { seq, .. }
                | F::Hello { seq, .. }
                | F::Welcome { seq, .. } => seq,
            }
        }
    }

    fn summarize(frame: Frame<'_>) -> F {
        match frame {
            Frame::Request { seq, method, oneway, .. } => F::Request { seq, method, oneway },
            Frame::Cancel { seq } => F::Cancel { seq },
            Frame::Credit { seq, limit } => F::Credit { seq, limit },
            Frame::Item { seq, index, .. } => F::Item { seq, index },
            Frame::End { seq, status, items } => F::End { seq, status, items },
            Frame::Event { seq, topic, .. } => F::Event { seq, topic },
            Frame::Reply { seq, value } => F::Reply { seq, value: value.to_vec() },
            Frame::Status { seq, status } => F::Status { seq, status },
            Frame::Hello { seq, fresh, .. } => F::Hello { seq, fresh },
            Frame::Welcome { seq, resumed, window, .. } => F::Welcome { seq, resumed, window },
        }
    }

    /// Every whole, valid frame in `bytes` (encoded, as on the wire).
    pub fn frames(bytes: &[u8]) -> Vec<F> {
        let mut decoder = FrameDecoder::<512>::new();
        let mut rest = bytes;
        let mut out = Vec::new();
        while !rest.is_empty() {
            let (used, event) = decoder.feed(rest);
            if event == Some(Decoded::Frame) {
                let frame = Frame::parse(decoder.frame()).expect("the machines write frames that parse");
                out.push(summarize(frame));
            }
            rest = &rest[used..];
        }
        out
    }

    /// The one frame in `bytes`.
    pub fn frame(bytes: &[u8]) -> F {
        let mut all = frames(bytes);
        assert_eq!(all.len(), 1, "expected one frame in {bytes:02x?}, got {all:?}");
        all.remove(0)
    }

    /// What a client machine delivered, owned.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub enum Got {
        Done { seq: u16, outcome: Result<Vec<u8>, Error> },
        Item { seq: u16, index: u32, value: Vec<u8> },
        End { seq: u16, end: StreamEnd },
        Event { seq: u16, topic: u16, payload: Vec<u8> },
    }

    impl From<Incoming<'_>> for Got {
        fn from(incoming: Incoming<'_>) -> Self {
            match incoming {
                Incoming::Done { seq, outcome } => Got::Done { seq, outcome: outcome.map(<[u8]>::to_vec) },
                Incoming::Item { seq, index, value } => Got::Item { seq, index, value: value.to_vec() },
                Incoming::End { seq, end } => Got::End { seq, end },
                Incoming::Event { seq, topic, payload } => Got::Event { seq, topic, payload: payload.to_vec() },
            }
        }
    }

    /// Takes what a client machine has to send, one chunk per frame it hands
    /// out (a frame, with a preamble byte before it if the machine added one).
    pub fn client_out<const RX: usize, const TX: usize, const W: usize>(
        m: &mut ClientMachine<RX, TX, W>,
    ) -> Vec<Vec<u8>> {
        let mut chunks = Vec::new();
        loop {
            let out = m.outgoing().to_vec();
            if out.is_empty() {
                return chunks;
            }
            m.wrote(out.len());
            chunks.push(out);
        }
    }

    /// Feeds `input` to a client machine at `now`; returns everything it delivered.
    pub fn client_in<const RX: usize, const TX: usize, const W: usize>(
        m: &mut ClientMachine<RX, TX, W>,
        input: &[u8],
        now: Instant,
    ) -> Vec<Got> {
        let mut got = Vec::new();
        let mut rest = input;
        while !rest.is_empty() {
            let (used, incoming) = m.receive(rest, now);
            if let Some(incoming) = incoming {
                got.push(Got::from(incoming));
            }
            rest = &rest[used..];
        }
        got
    }

    /// Polls a client machine at `now` until it has nothing more to report;
    /// returns the calls that ended.
    pub fn client_poll<const RX: usize, const TX: usize, const W: usize>(
        m: &mut ClientMachine<RX, TX, W>,
        now: Instant,
    ) -> Vec<(u16, Error)> {
        let mut ended = Vec::new();
        while let Some(e) = m.poll(now) {
            ended.push(e);
        }
        ended
    }

    /// Feeds `input` to a server machine at `now`, sending everything it
    /// produces (stream items its credit allows included); returns each frame
    /// it sent, encoded.
    pub fn server_in<D: Dispatch, const RX: usize, const TX: usize, const W: usize>(
        s: &mut ServerMachine<RX, TX, W>,
        input: &[u8],
        now: Instant,
        service: &mut D,
    ) -> Vec<Vec<u8>> {
        let mut sent = Vec::new();
        let mut rest = input;
        loop {
            let used = s.receive(rest, now, service);
            rest = &rest[used..];
            let out = s.outgoing().to_vec();
            if !out.is_empty() {
                s.wrote(out.len());
                sent.push(out);
            } else if rest.is_empty() {
                return sent;
            }
        }
    }

    /// `server_in`, with the frames sent decoded.
    pub fn server_frames<D: Dispatch, const RX: usize, const TX: usize, const W: usize>(
        s: &mut ServerMachine<RX, TX, W>,
        input: &[u8],
        now: Instant,
        service: &mut D,
    ) -> Vec<F> {
        frames(&server_in(s, input, now, service).concat())
    }

    /// An encoded frame, from one of the `wirecall::wire::encode_*` functions.
    pub fn encoded(encode: impl FnOnce(&mut [u8]) -> Result<&[u8], wirecall::wire::BufferFull>) -> Vec<u8> {
        let mut buf = [0u8; 512];
        encode(&mut buf).expect("the frame fits").to_vec()
    }

    /// A fresh Hello from client 7.
    pub fn hello(seq: u16) -> Vec<u8> {
        encoded(|b| wirecall::wire::encode_hello(seq, 7, true, b))
    }

    /// A Request for `method` with the argument tuple `args`.
    pub fn request<A: serde::Serialize + ?Sized>(seq: u16, method: u16, args: &A) -> Vec<u8> {
        encoded(|b| wirecall::wire::encode_request(seq, method, args, b))
    }

    /// A time `ms` milliseconds after zero.
    pub const fn at(ms: u64) -> Instant {
        Instant::from_millis(ms)
    }
}

/// A link that keeps a copy of every byte written through it.
pub struct Tap<L> {
    pub inner: L,
    pub written: Arc<std::sync::Mutex<std::vec::Vec<u8>>>,
}

impl<L> Tap<L> {
    /// `inner`, and a handle on what will be written through it.
    pub fn new(inner: L) -> (Self, Arc<std::sync::Mutex<std::vec::Vec<u8>>>) {
        let written = Arc::default();
        (Tap { inner, written: Arc::clone(&written) }, written)
    }
}

impl<L: ErrorType> ErrorType for Tap<L> {
    type Error = L::Error;
}

impl<L: Read> Read for Tap<L> {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, Self::Error> {
        self.inner.read(buf)
    }
}

impl<L: Write> Write for Tap<L> {
    fn write(&mut self, buf: &[u8]) -> Result<usize, Self::Error> {
        let n = self.inner.write(buf)?;
        self.written.lock().unwrap().extend_from_slice(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> Result<(), Self::Error> {
        self.inner.flush()
    }
}

impl<L: Link> Link for Tap<L> {
    fn read_within(&mut self, buf: &mut [u8], timeout: Duration) -> Result<Option<usize>, Self::Error> {
        self.inner.read_within(buf, timeout)
    }
}
