//! Blocking drivers: the loops that move bytes between a [`Link`](crate::link::Link)
//! and a state machine, reading the time from a [`Clock`](crate::time::Clock).
//!
//! They make no protocol decision of their own; those are in [`crate::machine`].

mod client;
mod hooks;
mod peer;
mod server;

#[cfg(all(feature = "events", feature = "std"))]
pub use client::EVENT_QUEUE;
pub use client::{Call, Client, Completed, DEFAULT_STREAM_CREDITS, DEFAULT_TIMEOUT, Event, StreamError};
pub use hooks::{ClientHook, Hooked};
pub use peer::{Peer, Route, Router, Side};
pub use server::{Server, Step};

/// Bytes read from the link at a time: on a host, many; on a microcontroller,
/// a few, to keep RAM small (a UART FIFO is drained over several reads).
/// Unprocessed bytes are kept for the next step, never dropped.
const INBOX: usize = if cfg!(feature = "std") { 64 } else { 8 };

/// Bytes read from the link and not yet fed to a state machine.
struct Inbox {
    buf: [u8; INBOX],
    start: u8,
    end: u8,
}

impl Inbox {
    const fn new() -> Self {
        Inbox { buf: [0; INBOX], start: 0, end: 0 }
    }

    fn pending(&self) -> &[u8] {
        self.buf.get(usize::from(self.start)..usize::from(self.end)).unwrap_or(&[])
    }

    fn consume(&mut self, n: usize) {
        self.start = self.start.saturating_add(u8::try_from(n).unwrap_or(u8::MAX)).min(self.end);
    }

    /// Reads into the (empty) inbox; the result as [`Link::read_within`](crate::link::Link::read_within).
    fn fill<L: crate::link::Link>(
        &mut self,
        link: &mut L,
        timeout: core::time::Duration,
    ) -> Result<Option<usize>, L::Error> {
        let read = link.read_within(&mut self.buf, timeout)?;
        self.start = 0;
        self.end = read.unwrap_or(0).min(INBOX) as u8;
        Ok(read)
    }

    /// Reads more after the bytes still pending, which move to the start.
    fn fill_more<L: crate::link::Link>(
        &mut self,
        link: &mut L,
        timeout: core::time::Duration,
    ) -> Result<Option<usize>, L::Error> {
        let (start, end) = (usize::from(self.start), usize::from(self.end));
        let kept = end.saturating_sub(start);
        if kept >= INBOX {
            return Ok(None);
        }
        self.buf.copy_within(start..end, 0);
        self.start = 0;
        self.end = kept as u8;
        let read = link.read_within(self.buf.get_mut(kept..).unwrap_or(&mut []), timeout)?;
        self.end = (kept + read.unwrap_or(0)).min(INBOX) as u8;
        Ok(read)
    }
}
