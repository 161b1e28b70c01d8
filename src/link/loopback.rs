//! An in-memory, thread-safe byte pipe with two ends, for tests and examples.
//!
//! Bytes written at one end are read at the other, in order. Each direction
//! holds at most [`CAPACITY`] bytes; a writer waits for room. A [`Wire`] handle
//! lets a test cut the pipe (both ends then see end of stream and writes fail)
//! or mute it (bytes written are silently lost, as on a pulled UART cable).

use core::time::Duration;
use std::collections::VecDeque;
use std::io::ErrorKind;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use embedded_io::{ErrorType, Read, Write};

use super::Link;

/// Bytes each direction buffers before a writer waits.
pub const CAPACITY: usize = 4096;

#[derive(Default)]
struct State {
    /// `queues[i]` holds bytes written by end `i`, read by end `1 - i`.
    queues: [VecDeque<u8>; 2],
    cut: bool,
    /// `muted[i]`: bytes written by end `i` are lost.
    muted: [bool; 2],
}

/// One direction of a pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// From the first end [`pair`] returns to the second.
    FirstToSecond,
    /// From the second end to the first.
    SecondToFirst,
}

/// One condition variable per event and direction, so that a write wakes only
/// the reader of its direction, and a read only a writer waiting for room:
/// no thread is woken for nothing (a spurious wake-up costs a round trip its
/// time on a busy machine).
#[derive(Default)]
struct Shared {
    state: Mutex<State>,
    /// `readable[d]`: bytes were written into queue `d`, or the pipe was cut.
    readable: [Condvar; 2],
    /// `writable[d]`: room was made in queue `d`, or the pipe was cut.
    writable: [Condvar; 2],
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// One end of a loopback pair.
pub struct End {
    shared: Arc<Shared>,
    side: usize,
}

/// A handle on the pipe between two ends, to cut or mute it from anywhere.
#[derive(Clone)]
pub struct Wire {
    shared: Arc<Shared>,
}

/// Two connected ends.
pub fn pair() -> (End, End) {
    let shared = Arc::new(Shared::default());
    (End { shared: shared.clone(), side: 0 }, End { shared, side: 1 })
}

impl End {
    /// A handle on the pipe this end belongs to.
    pub fn wire(&self) -> Wire {
        Wire { shared: self.shared.clone() }
    }

    fn read_waiting(&mut self, buf: &mut [u8], timeout: Option<Duration>) -> std::io::Result<Option<usize>> {
        if buf.is_empty() {
            return Ok(Some(0));
        }
        let inbound = 1 - self.side;
        let mut state = self.shared.lock();
        let deadline = timeout.map(|t| std::time::Instant::now() + t);
        loop {
            if state.cut {
                return Ok(Some(0));
            }
            let queue = &mut state.queues[inbound];
            if !queue.is_empty() {
                let was_full = queue.len() >= CAPACITY;
                let n = buf.len().min(queue.len());
                for (slot, byte) in buf.iter_mut().zip(queue.drain(..n)) {
                    *slot = byte;
                }
                // Notified after the lock is released, so the woken writer
                // does not wake only to wait for the lock.
                drop(state);
                if was_full {
                    self.shared.writable[inbound].notify_one();
                }
                return Ok(Some(n));
            }
            let readable = &self.shared.readable[inbound];
            state = match deadline {
                None => readable.wait(state).unwrap_or_else(std::sync::PoisonError::into_inner),
                Some(deadline) => {
                    let now = std::time::Instant::now();
                    if now >= deadline {
                        return Ok(None);
                    }
                    readable.wait_timeout(state, deadline - now).unwrap_or_else(std::sync::PoisonError::into_inner).0
                }
            };
        }
    }
}

impl Wire {
    /// Cuts the pipe: bytes in flight are lost, reads at both ends return end of
    /// stream, writes fail with `BrokenPipe`.
    pub fn cut(&self) {
        let mut state = self.shared.lock();
        state.cut = true;
        state.queues.iter_mut().for_each(VecDeque::clear);
        for condvar in self.shared.readable.iter().chain(&self.shared.writable) {
            condvar.notify_all();
        }
    }

    /// Whether the pipe was cut.
    pub fn is_cut(&self) -> bool {
        self.shared.lock().cut
    }

    /// Mutes or unmutes the pipe: while muted, bytes written at either end are
    /// accepted and lost.
    pub fn set_muted(&self, muted: bool) {
        self.shared.lock().muted = [muted; 2];
    }

    /// Mutes or unmutes one direction of the pipe.
    pub fn set_direction_muted(&self, direction: Direction, muted: bool) {
        let from = match direction {
            Direction::FirstToSecond => 0,
            Direction::SecondToFirst => 1,
        };
        self.shared.lock().muted[from] = muted;
    }
}

impl ErrorType for End {
    type Error = std::io::Error;
}

impl Read for End {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, Self::Error> {
        self.read_waiting(buf, None).map(|n| n.unwrap_or(0))
    }
}

impl Write for End {
    fn write(&mut self, buf: &[u8]) -> Result<usize, Self::Error> {
        let outbound = self.side;
        let mut state = self.shared.lock();
        loop {
            if state.cut {
                return Err(ErrorKind::BrokenPipe.into());
            }
            if state.muted[outbound] || buf.is_empty() {
                return Ok(buf.len());
            }
            let room = CAPACITY - state.queues[outbound].len();
            if room > 0 {
                let n = room.min(buf.len());
                state.queues[outbound].extend(&buf[..n]);
                drop(state);
                self.shared.readable[outbound].notify_one();
                return Ok(n);
            }
            state = self.shared.writable[outbound].wait(state).unwrap_or_else(std::sync::PoisonError::into_inner);
        }
    }

    /// Written bytes are in the pipe already: there is nothing to flush, even
    /// if the pipe was cut since.
    fn flush(&mut self) -> Result<(), Self::Error> {
        Ok(())
    }
}

impl Link for End {
    fn read_within(&mut self, buf: &mut [u8], timeout: Duration) -> Result<Option<usize>, Self::Error> {
        self.read_waiting(buf, Some(timeout))
    }
}

impl Drop for End {
    /// Dropping an end closes the pipe, like unplugging the cable.
    fn drop(&mut self) {
        self.wire().cut();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_cross_in_order_both_ways() {
        let (mut a, mut b) = pair();
        a.write_all(b"hello").unwrap();
        b.write_all(b"hi").unwrap();
        let mut buf = [0u8; 8];
        assert_eq!(b.read(&mut buf).unwrap(), 5);
        assert_eq!(&buf[..5], b"hello");
        assert_eq!(a.read_within(&mut buf, Duration::from_millis(1)).unwrap(), Some(2));
        assert_eq!(a.read_within(&mut buf, Duration::from_millis(1)).unwrap(), None);
    }

    #[test]
    fn cut_gives_eof_and_broken_pipe() {
        let (mut a, mut b) = pair();
        a.write_all(b"lost").unwrap();
        a.wire().cut();
        let mut buf = [0u8; 8];
        assert_eq!(b.read(&mut buf).unwrap(), 0);
        assert_eq!(a.write(b"x").unwrap_err().kind(), ErrorKind::BrokenPipe);
    }

    #[test]
    fn muted_bytes_vanish() {
        let (mut a, mut b) = pair();
        a.wire().set_muted(true);
        a.write_all(b"gone").unwrap();
        let mut buf = [0u8; 8];
        assert_eq!(b.read_within(&mut buf, Duration::from_millis(1)).unwrap(), None);
    }

    #[test]
    fn one_direction_can_be_muted() {
        let (mut a, mut b) = pair();
        a.wire().set_direction_muted(Direction::SecondToFirst, true);
        b.write_all(b"gone").unwrap();
        a.write_all(b"kept").unwrap();
        let mut buf = [0u8; 8];
        assert_eq!(a.read_within(&mut buf, Duration::from_millis(1)).unwrap(), None);
        assert_eq!(b.read_within(&mut buf, Duration::from_millis(1)).unwrap(), Some(4));
    }

    #[test]
    fn dropping_an_end_closes_the_other() {
        let (a, mut b) = pair();
        drop(a);
        let mut buf = [0u8; 8];
        assert_eq!(b.read(&mut buf).unwrap(), 0);
    }
}
