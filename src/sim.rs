//! A simulated link with a server behind it: seeded faults, simulated time, restarts.
//!
//! For tests, on the host (feature `sim`). [`SimLink`] is a [`Link`] a client
//! talks to; behind it a real [`ServerMachine`] answers with your service. Bytes
//! each way pass through a [`FaultInjector`] that, from a seed, drops bytes,
//! flips bits, duplicates, truncates, stalls or reorders frames, delivers late
//! copies of them, and puts garbage between them; the link can also be cut for a while and the server restarted (it loses
//! its session and cache; your service keeps its state, as a physical effect
//! would). Time is a [`SimClock`]: waiting costs no wall-clock time, so a test
//! can make a hundred thousand calls through timeouts in seconds.
//!
//! The stream stays ordered: a stalled frame delays the frames behind it, as on
//! a real wire. Two faults step outside that model on purpose, to reach paths
//! an ordered stream never takes (a request arriving after its Cancel, a copy
//! of a request arriving after its answer left the cache): a frame *reordered*
//! arrives after the frame sent behind it, and a *delayed duplicate* is a copy
//! of a frame that arrives long after it. Both stay within a session: the
//! handshake frames (Hello, Welcome) keep their place, and nothing held back
//! passes them (a reordered frame arrives before, a late copy not at all).
//! PROTOCOL.md §1 assumes an ordered stream, and sessions need it: a request
//! of a lost session arriving after the Hello of the next would be taken for a
//! call of the new one and run again, and a late copy of a Hello cannot be
//! told from a restarted client's.
//!
//! A handler takes simulated time by moving the [`SimClock`] forward (a
//! service holding the clock calls [`SimClock::advance`]): the server is busy
//! for that long, its answer leaves when the handler returns, and input waits
//! meanwhile, while the client's own time goes on as usual (it may time out
//! and send again meanwhile). The client never sees the clock jump.
//!
//! ```
//! use wirecall::sim::{Faults, SimClock, SimLink};
//! use wirecall::Client;
//! # wirecall::service! { pub mod calc { fn add(a: i32, b: i32) -> i32 = 2; } }
//! # struct Calc;
//! # impl calc::Service for Calc { fn add(&mut self, a: i32, b: i32) -> i32 { a + b } }
//! # fn main() {
//! let clock = SimClock::new();
//! let faults = Faults { flip_bit: 0.001, duplicate: 0.05, ..Faults::NONE };
//! let link: SimLink<_> = SimLink::new(&clock, calc::Dispatcher(Calc), faults, 42);
//! let mut board = calc::Client(Client::new(link, &clock));
//! assert_eq!(board.add(2, 3), Ok(5));
//! # }
//! ```

use core::cell::Cell;
use core::time::Duration;
use std::collections::VecDeque;
use std::io::ErrorKind;
use std::vec::Vec;

use embedded_io::{ErrorType, Read, Write};

use crate::link::Link;
use crate::machine::{Dispatch, ServerMachine, ServerStats};
use crate::time::{Clock, Instant};

/// A clock that moves only when told: by [`SimLink`] while a reader waits, or by
/// you. A handler behind a [`SimLink`] that moves it takes that much time on the
/// server (see the module docs).
#[derive(Debug, Default)]
pub struct SimClock {
    now: Cell<Instant>,
}

impl SimClock {
    /// A clock at time zero.
    pub const fn new() -> Self {
        SimClock { now: Cell::new(Instant::ZERO) }
    }

    /// Moves the clock forward by `d`.
    pub fn advance(&self, d: Duration) {
        self.now.set(self.now.get() + d);
    }

    /// Moves the clock to `t`, if that is later than now.
    pub fn advance_to(&self, t: Instant) {
        if t > self.now.get() {
            self.now.set(t);
        }
    }
}

impl Clock for SimClock {
    fn now(&self) -> Instant {
        self.now.get()
    }
}

/// How often each fault happens. Probabilities are per byte or per frame, as named.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Faults {
    /// Per byte: the byte is lost.
    pub drop_byte: f64,
    /// Per byte: one of its bits is flipped.
    pub flip_bit: f64,
    /// Per frame: it arrives twice.
    pub duplicate: f64,
    /// Per frame: it loses a random tail (its delimiter stays).
    pub truncate: f64,
    /// Per frame: 1 to 16 random bytes follow it, with a delimiter after them half the time.
    pub garbage: f64,
    /// Per frame: it (and everything behind it) is held back for a time in `stall_time`.
    pub stall: f64,
    /// Range of a stall.
    pub stall_time: (Duration, Duration),
    /// Per frame written by the client: the link goes down for a time in `cut_time`;
    /// bytes in flight are lost, reads and writes fail until it comes back.
    pub cut: f64,
    /// Range of a cut.
    pub cut_time: (Duration, Duration),
    /// Per frame reaching the server: the server restarts before reading it.
    pub restart_before: f64,
    /// Per answer the server produces: the server restarts before sending it.
    pub restart_after: f64,
    /// Per frame other than a Hello or Welcome: it leaves the ordered stream
    /// and arrives right after the next frame sent the same way, or, if none
    /// follows within a time in `reorder_time`, then (see the module docs).
    pub reorder: f64,
    /// Range of the longest a reordered frame waits for the next one.
    pub reorder_time: (Duration, Duration),
    /// Per frame other than a Hello or Welcome: a copy of it arrives a time in
    /// `delay_time` later, between two frames, unless a Hello or Welcome
    /// passes that way first (see the module docs).
    pub delay_duplicate: f64,
    /// Range of the delay of a late copy.
    pub delay_time: (Duration, Duration),
}

impl Faults {
    /// No faults at all.
    pub const NONE: Faults = Faults {
        drop_byte: 0.0,
        flip_bit: 0.0,
        duplicate: 0.0,
        truncate: 0.0,
        garbage: 0.0,
        stall: 0.0,
        stall_time: (Duration::ZERO, Duration::ZERO),
        cut: 0.0,
        cut_time: (Duration::ZERO, Duration::ZERO),
        restart_before: 0.0,
        restart_after: 0.0,
        reorder: 0.0,
        reorder_time: (Duration::ZERO, Duration::ZERO),
        delay_duplicate: 0.0,
        delay_time: (Duration::ZERO, Duration::ZERO),
    };

    /// Whether frames can arrive out of order (`reorder` or `delay_duplicate`).
    pub fn reorders(&self) -> bool {
        self.reorder > 0.0 || self.delay_duplicate > 0.0
    }
}

/// What the faults did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct FaultStats {
    /// Bytes lost.
    pub dropped_bytes: u64,
    /// Bits flipped.
    pub flipped_bits: u64,
    /// Frames sent twice.
    pub duplicated: u64,
    /// Frames truncated.
    pub truncated: u64,
    /// Bursts of garbage.
    pub garbage: u64,
    /// Frames stalled.
    pub stalled: u64,
    /// Times the link went down.
    pub cuts: u64,
    /// Server restarts.
    pub restarts: u64,
    /// Frames that arrived after a frame sent behind them.
    pub reordered: u64,
    /// Copies of frames that arrived late.
    pub delayed_duplicates: u64,
}

/// What becomes of one frame besides the bytes it arrives as (see
/// [`FaultInjector::push_frames`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Fate {
    /// It, and everything behind it on the stream, is held back this long.
    pub delay: Duration,
    /// It leaves the ordered stream: it arrives right after the next frame
    /// sent the same way, or after this long if none comes sooner.
    pub reordered: Option<Duration>,
    /// A copy of it arrives this much later, between two frames.
    pub late_copy: Option<Duration>,
    /// It is a handshake frame (a Hello or Welcome): frames held off the
    /// stream do not pass it: reordered ones arrive before it, late copies
    /// not at all.
    pub barrier: bool,
}

/// Mangles one direction of a byte stream, frame by frame, from a seed.
pub struct FaultInjector {
    rng: fastrand::Rng,
    faults: Faults,
    /// The frame being collected, up to its delimiter.
    frame: Vec<u8>,
}

impl FaultInjector {
    /// An injector drawing from `seed`.
    pub fn new(faults: Faults, seed: u64) -> Self {
        FaultInjector { rng: fastrand::Rng::with_seed(seed), faults, frame: Vec::new() }
    }

    fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && self.rng.f64() < p
    }

    fn within(&mut self, (lo, hi): (Duration, Duration)) -> Duration {
        if hi <= lo {
            return lo;
        }
        let span = u64::try_from((hi - lo).as_micros()).unwrap_or(u64::MAX);
        lo + Duration::from_micros(self.rng.u64(0..=span))
    }

    /// Feeds bytes entering this direction. For each frame completed by a
    /// delimiter, calls `emit` with the bytes that come out (possibly none,
    /// possibly more) and how long they are held back. The stream stays
    /// ordered: a reordered frame comes out held back like a stall for the
    /// longest it may wait, and a late copy as more bytes held back for its
    /// delay (use [`push_frames`](Self::push_frames) for both as they are).
    pub fn push(&mut self, bytes: &[u8], stats: &mut FaultStats, mut emit: impl FnMut(&[u8], Duration)) {
        self.push_frames(bytes, stats, |frame, fate| {
            emit(frame, fate.delay + fate.reordered.unwrap_or(Duration::ZERO));
            if let Some(late) = fate.late_copy {
                emit(frame, fate.delay + late);
            }
        });
    }

    /// As [`push`](Self::push), with what becomes of each frame: how long it is
    /// held back, and whether it is reordered or copied late.
    pub fn push_frames(&mut self, bytes: &[u8], stats: &mut FaultStats, mut emit: impl FnMut(&[u8], Fate)) {
        for &byte in bytes {
            self.frame.push(byte);
            if byte == 0 {
                let mut frame = core::mem::take(&mut self.frame);
                let fate = self.mangle(&mut frame, stats);
                emit(&frame, fate);
                frame.clear();
                self.frame = frame;
            }
        }
    }

    /// Applies the faults to one frame (delimiter included); returns its fate.
    fn mangle(&mut self, frame: &mut Vec<u8>, stats: &mut FaultStats) -> Fate {
        let f = self.faults;
        // Byte 1 of an encoded frame is its version and kind (PROTOCOL.md §8.6):
        // a Hello or a Welcome keeps its place.
        let handshake = matches!(frame.get(1), Some(0x14 | 0x15));
        let whole = frame.len() > 1;
        if whole && self.chance(f.truncate) {
            let keep = self.rng.usize(0..frame.len() - 1);
            frame.truncate(keep);
            frame.push(0);
            stats.truncated += 1;
        }
        let mut i = if f.drop_byte > 0.0 || f.flip_bit > 0.0 { 0 } else { frame.len() };
        while i < frame.len() {
            if self.chance(f.drop_byte) {
                frame.remove(i);
                stats.dropped_bytes += 1;
                continue;
            }
            if self.chance(f.flip_bit) {
                frame[i] ^= 1 << self.rng.u8(0..8);
                stats.flipped_bits += 1;
            }
            i += 1;
        }
        if self.chance(f.duplicate) {
            frame.extend_from_within(..);
            stats.duplicated += 1;
        }
        if self.chance(f.garbage) {
            for _ in 0..self.rng.usize(1..=16) {
                frame.push(self.rng.u8(1..=255));
            }
            if self.rng.bool() {
                frame.push(0);
            }
            stats.garbage += 1;
        }
        let mut fate = Fate { barrier: handshake, ..Fate::default() };
        if self.chance(f.stall) {
            stats.stalled += 1;
            fate.delay = self.within(f.stall_time);
        }
        if whole && !handshake && self.chance(f.reorder) {
            stats.reordered += 1;
            fate.reordered = Some(self.within(f.reorder_time));
        }
        if whole && !handshake && self.chance(f.delay_duplicate) {
            stats.delayed_duplicates += 1;
            fate.late_copy = Some(self.within(f.delay_time));
        }
        fate
    }
}

/// Bytes in flight one way, with the time each arrives.
#[derive(Default)]
struct Pipe {
    bytes: VecDeque<u8>,
    /// When the bytes arrive, in order: runs of (time, count) covering `bytes`.
    times: VecDeque<(Instant, usize)>,
    /// When the last byte queued arrives: the stream stays ordered.
    last: Instant,
    /// Frames off the ordered stream: when each joins it (at the latest), and
    /// whether the next frame sent brings it right behind itself (reordered).
    late: Vec<(Instant, Vec<u8>, bool)>,
}

impl Pipe {
    /// Queues bytes arriving at `at`; frames reordered come right behind them.
    fn send(&mut self, bytes: &[u8], at: Instant) {
        self.settle(at);
        self.queue(bytes, at);
        if bytes.len() > 1 && self.late.iter().any(|l| l.2) {
            let mut i = 0;
            while i < self.late.len() {
                if self.late.get(i).is_some_and(|l| l.2) {
                    let (_, frame, _) = self.late.remove(i);
                    self.queue(&frame, at);
                } else {
                    i += 1;
                }
            }
        }
    }

    fn queue(&mut self, bytes: &[u8], at: Instant) {
        if bytes.is_empty() {
            return;
        }
        self.last = self.last.max(at);
        match self.times.back_mut() {
            Some((t, n)) if *t == self.last => *n += bytes.len(),
            _ => self.times.push_back((self.last, bytes.len())),
        }
        self.bytes.extend(bytes);
    }

    /// Keeps `frame` off the stream until `until` (or, if `reordered`, until
    /// the next frame is sent).
    fn hold(&mut self, frame: &[u8], until: Instant, reordered: bool) {
        self.late.push((until, frame.to_vec(), reordered));
    }

    /// Before a handshake frame sent at `at`: the frames held back for the
    /// next one go on the stream, and late copies are lost.
    fn barrier(&mut self, at: Instant) {
        for (_, frame, reordered) in core::mem::take(&mut self.late) {
            if reordered {
                self.queue(&frame, at);
            }
        }
    }

    /// Puts the frames held off the stream whose time has come on it, in
    /// order of their time.
    fn settle(&mut self, now: Instant) {
        if self.late.is_empty() {
            return;
        }
        while let Some((i, _)) = self.late.iter().enumerate().filter(|(_, l)| l.0 <= now).min_by_key(|(_, l)| l.0) {
            let (at, frame, _) = self.late.remove(i);
            self.queue(&frame, at);
        }
    }

    fn next_arrival(&self) -> Option<Instant> {
        let held = self.late.iter().map(|l| l.0).min();
        [self.times.front().map(|&(t, _)| t), held].into_iter().flatten().min()
    }

    /// How many bytes have arrived by `now`.
    fn arrived(&self, now: Instant) -> usize {
        self.times.iter().take_while(|(t, _)| *t <= now).map(|(_, n)| n).sum()
    }

    /// Removes the first `n` bytes' times.
    fn consume(&mut self, mut n: usize) {
        while n > 0 {
            let Some((_, count)) = self.times.front_mut() else { return };
            let k = n.min(*count);
            *count -= k;
            n -= k;
            if *count == 0 {
                self.times.pop_front();
            }
        }
    }

    /// The first `n` bytes, in two pieces.
    fn head(&self, n: usize) -> (&[u8], &[u8]) {
        let (a, b) = self.bytes.as_slices();
        let in_a = n.min(a.len());
        (a.get(..in_a).unwrap_or(&[]), b.get(..n - in_a).unwrap_or(&[]))
    }

    /// Removes the first `n` bytes.
    fn pop(&mut self, n: usize) {
        self.bytes.drain(..n);
        self.consume(n);
    }

    fn take_arrived(&mut self, now: Instant, buf: &mut [u8]) -> usize {
        self.settle(now);
        let n = self.arrived(now).min(buf.len());
        let (a, b) = self.head(n);
        if let Some((to_a, rest)) = buf.split_at_mut_checked(a.len()) {
            if let Some(to_b) = rest.get_mut(..b.len()) {
                to_a.copy_from_slice(a);
                to_b.copy_from_slice(b);
            }
        }
        self.pop(n);
        n
    }

    /// Takes the bytes that have arrived up to and including the first
    /// delimiter (all of them if there is none) into `frame`.
    fn take_frame(&mut self, now: Instant, frame: &mut Vec<u8>) {
        self.settle(now);
        let (a, b) = self.head(self.arrived(now));
        let n = match a.iter().position(|&b| b == 0) {
            Some(i) => i + 1,
            None => a.len() + b.iter().position(|&b| b == 0).map_or(b.len(), |i| i + 1),
        };
        let (a, b) = self.head(n);
        frame.extend_from_slice(a);
        frame.extend_from_slice(b);
        self.pop(n);
    }

    /// Puts bytes back at the head of the stream, arriving at `at`.
    fn unread(&mut self, bytes: &[u8], at: Instant) {
        if bytes.is_empty() {
            return;
        }
        for &b in bytes.iter().rev() {
            self.bytes.push_front(b);
        }
        self.times.push_front((at, bytes.len()));
    }

    /// Loses the bytes on the stream (not those held off it).
    fn lose_stream(&mut self) {
        self.bytes.clear();
        self.times.clear();
    }

    /// Loses everything in flight.
    fn clear(&mut self) {
        self.lose_stream();
        self.late.clear();
    }
}

/// A client-side [`Link`] to a simulated server, with faults (see the module docs).
/// The server has `RX` and `TX` bytes of buffer and a window of `W` answers
/// (see [`ServerMachine`]; more than 1 needs feature `pipelining`).
pub struct SimLink<'c, S, const RX: usize = 256, const TX: usize = 256, const W: usize = 1> {
    clock: &'c SimClock,
    server: ServerMachine<RX, TX, W>,
    service: S,
    up: FaultInjector,
    down: FaultInjector,
    to_server: Pipe,
    to_client: Pipe,
    rng: fastrand::Rng,
    faults: Faults,
    down_until: Option<Instant>,
    /// The server is running a handler until then: its input waits.
    busy_until: Instant,
    boots: u32,
    stats: FaultStats,
    between_frames: Option<ServerHook<'c, S, RX, TX, W>>,
    /// A frame on its way into the server (kept to reuse its allocation).
    frame: Vec<u8>,
}

/// What [`SimLink::set_between_frames`] runs.
type ServerHook<'c, S, const RX: usize, const TX: usize, const W: usize> =
    std::boxed::Box<dyn FnMut(&mut ServerMachine<RX, TX, W>, &mut S) + 'c>;

/// How long a read or write on a link that is down takes to fail.
const DOWN_OP: Duration = Duration::from_millis(5);

impl<'c, S: Dispatch, const RX: usize, const TX: usize, const W: usize> SimLink<'c, S, RX, TX, W> {
    /// A link to a server running `service`, with `faults` drawn from `seed`.
    pub fn new(clock: &'c SimClock, service: S, faults: Faults, seed: u64) -> Self {
        let mut seeds = fastrand::Rng::with_seed(seed);
        SimLink {
            clock,
            server: ServerMachine::with_boot_id(1),
            service,
            up: FaultInjector::new(faults, seeds.u64(..)),
            down: FaultInjector::new(faults, seeds.u64(..)),
            to_server: Pipe::default(),
            to_client: Pipe::default(),
            rng: seeds,
            faults,
            down_until: None,
            busy_until: Instant::ZERO,
            boots: 1,
            stats: FaultStats::default(),
            between_frames: None,
            frame: Vec::new(),
        }
    }

    /// Runs `hook` each time the server has handled a piece of input (and sent
    /// its answers), and between the items of a stream: with the server and the
    /// service, so it can, say, emit an event (`ServerMachine::emit`, feature `events`) at a
    /// random moment. What the hook leaves in the server's outgoing bytes is sent.
    pub fn set_between_frames(&mut self, hook: impl FnMut(&mut ServerMachine<RX, TX, W>, &mut S) + 'c) {
        self.between_frames = Some(std::boxed::Box::new(hook));
    }

    /// The service, with whatever state it keeps.
    pub fn service(&self) -> &S {
        &self.service
    }

    /// The service, mutably.
    pub fn service_mut(&mut self) -> &mut S {
        &mut self.service
    }

    /// Takes the service back.
    pub fn into_service(self) -> S {
        self.service
    }

    /// The server's counters (since its last restart).
    pub fn server_stats(&self) -> ServerStats {
        self.server.stats()
    }

    /// What the faults did.
    pub fn fault_stats(&self) -> &FaultStats {
        &self.stats
    }

    /// The boot id of the server now: a restart changes it.
    pub fn boot_id(&self) -> u32 {
        self.server.boot_id()
    }

    /// Changes the faults from now on.
    pub fn set_faults(&mut self, faults: Faults) {
        self.faults = faults;
        self.up.faults = faults;
        self.down.faults = faults;
    }

    /// Restarts the server: it loses its session, its cache, and every byte it
    /// had not yet read or sent. The service keeps its state.
    pub fn restart_server(&mut self) {
        self.boots = self.boots.wrapping_add(1);
        self.server = ServerMachine::with_boot_id(self.boots);
        // What it had not read is lost; what is still on the wire (frames
        // held off the stream included) is not.
        self.to_server.lose_stream();
        self.stats.restarts += 1;
    }

    /// Takes the link down now for `time`, as a cut does: the bytes in flight
    /// either way are lost, and reads and writes fail until it comes back.
    pub fn cut_for(&mut self, time: Duration) {
        self.down_until = Some(self.clock.now() + time);
        self.to_server.clear();
        self.to_client.clear();
        self.stats.cuts += 1;
    }

    fn is_down(&mut self) -> bool {
        match self.down_until {
            Some(until) if self.clock.now() < until => true,
            Some(_) => {
                self.down_until = None;
                false
            }
            None => false,
        }
    }

    fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && self.rng.f64() < p
    }

    /// Whether the server is running a handler (its input waits).
    fn busy(&self) -> bool {
        self.clock.now() < self.busy_until
    }

    /// After the server did something that started at `t0`: if a handler
    /// moved the clock, the server was busy until then, and the clock goes back
    /// to `t0` (the client's time is not the handler's).
    fn took_time(&mut self, t0: Instant) {
        let t1 = self.clock.now();
        if t1 > t0 {
            self.clock.now.set(t0);
            self.busy_until = t1;
        }
    }

    /// When the server next has something to do, if anything.
    fn server_next(&self) -> Option<Instant> {
        let input = self.to_server.next_arrival().map(|t| t.max(self.busy_until));
        let work = self.server.has_work().then(|| self.busy_until.max(self.clock.now()));
        [input, work].into_iter().flatten().min()
    }

    /// Lets the server read every byte that has arrived and send its answers,
    /// and a stream in progress send what its credit allows (reading what
    /// arrived before each item, as a server's driver does), until it is busy
    /// with a handler or has nothing to do.
    fn run_server(&mut self) {
        loop {
            if self.busy() {
                return;
            }
            // One frame at a time (up to and including its delimiter), so a
            // restart can fall between any two frames.
            let mut frame = core::mem::take(&mut self.frame);
            frame.clear();
            self.to_server.take_frame(self.clock.now(), &mut frame);
            if frame.is_empty() {
                self.frame = frame;
                if !self.server.has_work() {
                    return;
                }
                // The stream's next item.
                let t0 = self.clock.now();
                self.server.receive(&[], t0, &mut self.service);
                self.took_time(t0);
                self.flush_server();
                self.between_frames();
                continue;
            }
            if frame.last() == Some(&0) && frame.len() > 1 && self.chance(self.faults.restart_before) {
                self.restart_server();
                self.frame = frame;
                continue;
            }
            let mut rest = &frame[..];
            while !rest.is_empty() {
                let t0 = self.clock.now();
                let used = self.server.receive(rest, t0, &mut self.service);
                self.took_time(t0);
                rest = rest.get(used..).unwrap_or(&[]);
                self.send_answer();
                if self.busy() {
                    // The rest waits for the handler to return.
                    self.to_server.unread(rest, t0);
                    break;
                }
            }
            self.frame = frame;
            self.between_frames();
        }
    }

    /// Runs the hook, if any, after a frame and between a stream's items, and
    /// sends what it left.
    fn between_frames(&mut self) {
        let t0 = self.clock.now();
        if let Some(hook) = &mut self.between_frames {
            hook(&mut self.server, &mut self.service);
        }
        self.took_time(t0);
        self.flush_server();
    }

    /// Sends everything the server has to send (an answer, then an event behind it).
    fn flush_server(&mut self) {
        while !self.server.outgoing().is_empty() {
            self.send_answer();
        }
    }

    fn send_answer(&mut self) {
        let answer = self.server.outgoing();
        if answer.is_empty() {
            return;
        }
        let len = answer.len();
        if self.chance(self.faults.restart_after) {
            self.server.wrote(len);
            self.restart_server();
            return;
        }
        // It leaves when the handler returns.
        let now = self.clock.now().max(self.busy_until);
        let (down, pipe, stats) = (&mut self.down, &mut self.to_client, &mut self.stats);
        down.push_frames(self.server.outgoing(), stats, |bytes, fate| deliver(pipe, bytes, now, fate));
        self.server.wrote(len);
    }

    fn fail(&self) -> std::io::Error {
        self.clock.advance(DOWN_OP);
        ErrorKind::BrokenPipe.into()
    }
}

/// Puts a frame sent at `now` on `pipe` as its fate says.
fn deliver(pipe: &mut Pipe, bytes: &[u8], now: Instant, fate: Fate) {
    let at = now + fate.delay;
    if fate.barrier {
        pipe.settle(at);
        pipe.barrier(at);
    }
    match fate.reordered {
        Some(wait) => pipe.hold(bytes, at + wait, true),
        None => pipe.send(bytes, at),
    }
    if let Some(late) = fate.late_copy {
        pipe.hold(bytes, at + late, false);
    }
}

impl<S, const RX: usize, const TX: usize, const W: usize> ErrorType for SimLink<'_, S, RX, TX, W> {
    type Error = std::io::Error;
}

impl<S: Dispatch, const RX: usize, const TX: usize, const W: usize> Write for SimLink<'_, S, RX, TX, W> {
    fn write(&mut self, buf: &[u8]) -> Result<usize, Self::Error> {
        if self.is_down() {
            return Err(self.fail());
        }
        let now = self.clock.now();
        let mut frames = 0;
        let (up, pipe, stats) = (&mut self.up, &mut self.to_server, &mut self.stats);
        up.push_frames(buf, stats, |bytes, fate| {
            deliver(pipe, bytes, now, fate);
            frames += 1;
        });
        for _ in 0..frames {
            if self.chance(self.faults.cut) {
                let lo_hi = self.faults.cut_time;
                let time = self.up.within(lo_hi);
                self.cut_for(time);
                break;
            }
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> Result<(), Self::Error> {
        Ok(())
    }
}

impl<S: Dispatch, const RX: usize, const TX: usize, const W: usize> Read for SimLink<'_, S, RX, TX, W> {
    /// Waits up to an hour of simulated time, then fails with `TimedOut`.
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, Self::Error> {
        self.read_within(buf, Duration::from_secs(3600))?.ok_or_else(|| ErrorKind::TimedOut.into())
    }
}

impl<S: Dispatch, const RX: usize, const TX: usize, const W: usize> Link for SimLink<'_, S, RX, TX, W> {
    /// Runs the simulation until bytes arrive for the client or `timeout` has
    /// passed on the [`SimClock`], moving the clock as it goes.
    fn read_within(&mut self, buf: &mut [u8], timeout: Duration) -> Result<Option<usize>, Self::Error> {
        let end = self.clock.now() + timeout;
        loop {
            if self.is_down() {
                return Err(self.fail());
            }
            self.run_server();
            let n = self.to_client.take_arrived(self.clock.now(), buf);
            if n > 0 {
                return Ok(Some(n));
            }
            let next = [self.server_next(), self.to_client.next_arrival()].into_iter().flatten().min();
            match next {
                Some(t) if t <= end => self.clock.advance_to(t),
                _ => {
                    self.clock.advance_to(end);
                    return Ok(None);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_injector_is_deterministic_per_seed_and_frame_aware() {
        let faults = Faults { duplicate: 0.5, garbage: 0.5, flip_bit: 0.05, ..Faults::NONE };
        let run = |seed| {
            let mut inj = FaultInjector::new(faults, seed);
            let mut stats = FaultStats::default();
            let mut out = Vec::new();
            inj.push(&[1, 2, 3, 0, 4, 5, 0, 6], &mut stats, |b, _| out.extend_from_slice(b));
            (out, stats)
        };
        assert_eq!(run(7), run(7));
        assert_ne!(run(7).0, run(8).0);
        // Without faults, bytes pass through frame by frame; the unterminated tail waits.
        let mut clean = FaultInjector::new(Faults::NONE, 1);
        let mut out = Vec::new();
        clean.push(&[1, 2, 0, 3], &mut FaultStats::default(), |b, _| out.extend_from_slice(b));
        assert_eq!(out, [1, 2, 0]);
    }

    #[test]
    fn a_reordered_frame_arrives_after_the_next_one_or_at_its_time() {
        let at = Instant::from_millis;
        let mut pipe = Pipe::default();
        let mut buf = [0u8; 16];
        pipe.hold(&[1, 0], at(100), true);
        pipe.send(&[0], at(10));
        assert_eq!(pipe.take_arrived(at(10), &mut buf), 1, "a lone delimiter is no frame to pass it");
        pipe.send(&[2, 0], at(20));
        assert_eq!(pipe.next_arrival(), Some(at(20)));
        assert_eq!(pipe.take_arrived(at(20), &mut buf), 4);
        assert_eq!(buf[..4], [2, 0, 1, 0]);
        // With no frame behind it, it arrives at its time, in its place.
        pipe.hold(&[3, 0], at(50), true);
        assert_eq!(pipe.next_arrival(), Some(at(50)));
        assert_eq!(pipe.take_arrived(at(49), &mut buf), 0);
        pipe.send(&[4, 0], at(60));
        assert_eq!(pipe.take_arrived(at(60), &mut buf), 4);
        assert_eq!(buf[..4], [3, 0, 4, 0]);
    }

    #[test]
    fn a_late_copy_arrives_between_later_frames() {
        let at = Instant::from_millis;
        let mut pipe = Pipe::default();
        let mut buf = [0u8; 16];
        pipe.send(&[1, 0], at(0));
        pipe.hold(&[1, 0], at(300), false);
        pipe.send(&[2, 0], at(100));
        pipe.send(&[3, 0], at(400));
        assert_eq!(pipe.take_arrived(at(500), &mut buf), 8);
        assert_eq!(buf[..8], [1, 0, 2, 0, 1, 0, 3, 0]);
        // A cut loses it with the rest.
        pipe.hold(&[5, 0], at(600), false);
        pipe.clear();
        assert_eq!(pipe.next_arrival(), None);
    }

    #[test]
    fn nothing_held_back_passes_a_hello() {
        let second = Duration::from_secs(1);
        let faults = Faults {
            reorder: 1.0,
            reorder_time: (second, second),
            delay_duplicate: 1.0,
            delay_time: (second, second),
            ..Faults::NONE
        };
        let mut inj = FaultInjector::new(faults, 3);
        let mut fates = Vec::new();
        let mut hello = [0u8; 16];
        let hello = crate::wire::encode_hello(0, 7, true, &mut hello).unwrap().to_vec();
        let mut ping = [0u8; 16];
        let ping = crate::wire::encode_request(1, 0xff00, &(), &mut ping).unwrap().to_vec();
        let input = [&ping[..], &hello, &ping].concat();
        inj.push_frames(&input, &mut FaultStats::default(), |b, f| fates.push((b.to_vec(), f)));
        let late = Fate { reordered: Some(second), late_copy: Some(second), ..Fate::default() };
        let hello_fate = Fate { barrier: true, ..Fate::default() };
        assert_eq!(fates, [(ping.clone(), late), (hello.clone(), hello_fate), (ping.clone(), late)]);
        // On the pipe: the first request comes before the Hello, its copy never;
        // the second, held back with nothing behind it, at its time, then its copy.
        let mut pipe = Pipe::default();
        for (bytes, fate) in fates {
            deliver(&mut pipe, &bytes, Instant::ZERO, fate);
        }
        let mut buf = [0u8; 64];
        let n = pipe.take_arrived(Instant::from_millis(5000), &mut buf);
        assert_eq!(buf[..n], [&ping[..], &hello, &ping, &ping].concat());
    }

    /// Method 1 takes `ms` of the server's time and returns it.
    struct Slow<'c>(&'c SimClock, u32);

    impl Dispatch for Slow<'_> {
        fn dispatch(&mut self, _: u16, args: &[u8], r: crate::Responder<'_>) -> Result<crate::Replied, crate::Refused> {
            let (ms,): (u32,) = crate::__private::decode_args(args)?;
            self.1 += 1;
            self.0.advance(Duration::from_millis(u64::from(ms)));
            Ok(r.reply(&ms))
        }
    }

    #[test]
    fn a_handler_takes_the_servers_time_while_the_client_goes_on() {
        let clock = SimClock::new();
        let link: SimLink<_> = SimLink::new(&clock, Slow(&clock, 0), Faults::NONE, 1);
        let mut client = crate::Client::new(link, &clock);
        client.set_timeout(Duration::from_secs(5));
        client.set_retry_policy(crate::RetryPolicy {
            attempts: 3,
            attempt_timeout: Duration::from_millis(100),
            backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(50),
        });
        let started = clock.now();
        assert_eq!(crate::Call::call::<_, u32>(&mut client, crate::Method::new(1), &(1000u32,)), Ok(1000));
        let took = clock.now().saturating_duration_since(started);
        assert!(took >= Duration::from_millis(1000) && took < Duration::from_millis(1010), "{took:?}");
        // The client sent it again meanwhile; the repeats waited for the handler,
        // then were answered from the cache.
        let counted = cfg!(feature = "stats");
        assert!(!counted || client.stats().retries >= 5, "{:?}", client.stats());
        let (link, _) = client.into_parts();
        assert_eq!(link.service().1, 1, "the handler ran once");
        assert!(!counted || link.server_stats().duplicates >= 5, "{:?}", link.server_stats());
    }

    #[test]
    fn waiting_costs_simulated_time_only() {
        let clock = SimClock::new();
        struct Nothing;
        impl Dispatch for Nothing {
            fn dispatch(
                &mut self,
                _: u16,
                _: &[u8],
                _: crate::Responder<'_>,
            ) -> Result<crate::Replied, crate::Refused> {
                Err(crate::Refused::UnknownMethod)
            }
        }
        let mut link: SimLink<_> = SimLink::new(&clock, Nothing, Faults::NONE, 1);
        let mut buf = [0u8; 8];
        let started = std::time::Instant::now();
        assert_eq!(link.read_within(&mut buf, Duration::from_secs(3600)).unwrap(), None);
        assert_eq!(clock.now(), Instant::from_millis(3_600_000));
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
    }
}
