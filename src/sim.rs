//! A simulated link with a server behind it: seeded faults, simulated time, restarts.
//!
//! For tests, on the host (feature `sim`). [`SimLink`] is a [`Link`] a client
//! talks to; behind it a real [`ServerMachine`] answers with your service. Bytes
//! each way pass through a [`FaultInjector`] that, from a seed, drops bytes,
//! flips bits, duplicates, truncates or stalls frames, and puts garbage between
//! them; the link can also be cut for a while and the server restarted (it loses
//! its session and cache; your service keeps its state, as a physical effect
//! would). Time is a [`SimClock`]: waiting costs no wall-clock time, so a test
//! can make a hundred thousand calls through timeouts in seconds.
//!
//! The stream stays ordered: a stalled frame delays the frames behind it, as on
//! a real wire.
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

/// A clock that moves only when told: by [`SimLink`] while a reader waits, or by you.
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
    };
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
    /// possibly more) and how long they are held back.
    pub fn push(&mut self, bytes: &[u8], stats: &mut FaultStats, mut emit: impl FnMut(&[u8], Duration)) {
        for &byte in bytes {
            self.frame.push(byte);
            if byte == 0 {
                let mut frame = core::mem::take(&mut self.frame);
                let delay = self.mangle(&mut frame, stats);
                emit(&frame, delay);
                frame.clear();
                self.frame = frame;
            }
        }
    }

    /// Applies the faults to one frame (delimiter included); returns its delay.
    fn mangle(&mut self, frame: &mut Vec<u8>, stats: &mut FaultStats) -> Duration {
        let f = self.faults;
        if frame.len() > 1 && self.chance(f.truncate) {
            let keep = self.rng.usize(0..frame.len() - 1);
            frame.truncate(keep);
            frame.push(0);
            stats.truncated += 1;
        }
        let mut i = 0;
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
        if self.chance(f.stall) {
            stats.stalled += 1;
            return self.within(f.stall_time);
        }
        Duration::ZERO
    }
}

/// Bytes in flight one way, each with the time it arrives.
#[derive(Default)]
struct Pipe {
    bytes: VecDeque<(Instant, u8)>,
    /// When the last byte queued arrives: the stream stays ordered.
    last: Instant,
}

impl Pipe {
    fn send(&mut self, bytes: &[u8], at: Instant) {
        self.last = self.last.max(at);
        self.bytes.extend(bytes.iter().map(|&b| (self.last, b)));
    }

    fn next_arrival(&self) -> Option<Instant> {
        self.bytes.front().map(|&(t, _)| t)
    }

    fn take_arrived(&mut self, now: Instant, buf: &mut [u8]) -> usize {
        let mut n = 0;
        while n < buf.len() && self.bytes.front().is_some_and(|&(t, _)| t <= now) {
            if let (Some(slot), Some((_, b))) = (buf.get_mut(n), self.bytes.pop_front()) {
                *slot = b;
                n += 1;
            }
        }
        n
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
    boots: u32,
    stats: FaultStats,
    between_frames: Option<ServerHook<'c, S, RX, TX, W>>,
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
            boots: 1,
            stats: FaultStats::default(),
            between_frames: None,
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
        self.to_server.bytes.clear();
        self.stats.restarts += 1;
    }

    /// Takes the link down now for `time`, as a cut does: the bytes in flight
    /// either way are lost, and reads and writes fail until it comes back.
    pub fn cut_for(&mut self, time: Duration) {
        self.down_until = Some(self.clock.now() + time);
        self.to_server.bytes.clear();
        self.to_client.bytes.clear();
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

    /// Lets the server read every byte that has arrived and send its answers.
    fn run_server(&mut self) {
        let mut chunk = [0u8; 64];
        loop {
            let n = self.to_server.take_arrived(self.clock.now(), &mut chunk);
            if n == 0 {
                return;
            }
            let mut rest = chunk.get(..n).unwrap_or(&[]);
            while !rest.is_empty() {
                // One frame at a time (up to and including its delimiter), so a
                // restart can fall between any two frames.
                let end = rest.iter().position(|&b| b == 0).map_or(rest.len(), |i| i + 1);
                let (mut frame, tail) = rest.split_at(end);
                rest = tail;
                if frame.last() == Some(&0) && frame.len() > 1 && self.chance(self.faults.restart_before) {
                    self.restart_server();
                    continue;
                }
                while !frame.is_empty() {
                    let used = self.server.receive(frame, self.clock.now(), &mut self.service);
                    frame = frame.get(used..).unwrap_or(&[]);
                    self.send_answer();
                }
                self.between_frames();
            }
        }
    }

    /// Runs the hook, if any, and lets a stream in progress send what its
    /// credit allows (running the hook between its items), as a server's
    /// driver does when [`ServerMachine::has_work`].
    fn between_frames(&mut self) {
        loop {
            if let Some(hook) = &mut self.between_frames {
                hook(&mut self.server, &mut self.service);
            }
            self.flush_server();
            if !self.server.has_work() {
                return;
            }
            self.server.receive(&[], self.clock.now(), &mut self.service);
            self.flush_server();
        }
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
        let now = self.clock.now();
        let (down, pipe, stats) = (&mut self.down, &mut self.to_client, &mut self.stats);
        down.push(self.server.outgoing(), stats, |bytes, delay| pipe.send(bytes, now + delay));
        self.server.wrote(len);
    }

    fn fail(&self) -> std::io::Error {
        self.clock.advance(DOWN_OP);
        ErrorKind::BrokenPipe.into()
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
        up.push(buf, stats, |bytes, delay| {
            pipe.send(bytes, now + delay);
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
            let next = [self.to_server.next_arrival(), self.to_client.next_arrival()].into_iter().flatten().min();
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
