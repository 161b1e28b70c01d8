//! The protocol state machines: bytes and the current time in, bytes out.
//!
//! They own no I/O and no clock, hold all state in fixed-size buffers sized by
//! const generics, and have `const fn new()`, so they can live in a `static`.
//! Every protocol decision — which reply belongs to which call, what an outcome
//! proves — is made here, where a test can drive it with a byte slice and a
//! number for "now". The blocking drivers in [`crate::driver`] only move bytes.
//!
//! Both sides hand out bytes to send the same way: [`outgoing`](ClientMachine::outgoing)
//! shows what is still unsent and [`wrote`](ClientMachine::wrote) records what the
//! link accepted, so a driver can send all at once or a few bytes per interrupt.

mod client;
mod intercept;
mod server;

pub use client::{ClientMachine, ClientStats, Incoming, Method, RetryPolicy, StreamEnd};
pub use intercept::{Intercepted, Interceptor};
#[cfg(feature = "events")]
pub use server::EmitError;
pub use server::{Dispatch, REPLY_CACHE_WINDOW, Refused, Replied, Responder, ServerMachine, ServerStats, builtin};

use core::time::Duration;

use crate::time::{Instant, duration_micros};
use crate::wire::FrameDecoder;

/// How long a partial frame may wait for its next byte before it is abandoned
/// (counted in `dropped_stale`) and decoding restarts, unless changed with
/// `set_frame_gap`.
pub const DEFAULT_FRAME_GAP: Duration = Duration::from_secs(1);

/// The receive side both machines share: the frame decoder, and the timer that
/// abandons a partial frame when the link stays silent in the middle of it.
///
/// Times are kept as the low 32 bits of microseconds (wrapping every 71
/// minutes) to keep the machines small: a partial frame left exactly a multiple
/// of 71 minutes earlier is taken for a fresh one and merges with the next frame,
/// which then fails its CRC.
pub(crate) struct Receiver<const N: usize> {
    pub(crate) decoder: FrameDecoder<N>,
    /// When the last byte arrived: microseconds, wrapping.
    last_rx: u32,
    /// The frame gap in microseconds (at most about 71 minutes); 0 stands for
    /// [`DEFAULT_FRAME_GAP`], so that a fresh receiver is all zero bytes.
    gap: u32,
}

impl<const N: usize> Receiver<N> {
    pub(crate) const fn new() -> Self {
        Receiver { decoder: FrameDecoder::new(), last_rx: 0, gap: 0 }
    }

    pub(crate) fn set_gap(&mut self, gap: Duration) {
        self.gap = u32::try_from(duration_micros(gap)).unwrap_or(u32::MAX).max(1);
    }

    fn gap(&self) -> u32 {
        if self.gap == 0 { duration_micros(DEFAULT_FRAME_GAP) as u32 } else { self.gap }
    }

    /// Notes that `input` arrives at `now`; returns true if a partial frame
    /// went stale before it and was abandoned.
    pub(crate) fn arrive(&mut self, input: &[u8], now: Instant) -> bool {
        let now = now.as_micros() as u32;
        let stale = self.decoder.is_mid_frame() && now.wrapping_sub(self.last_rx) > self.gap();
        if stale {
            self.decoder.reset();
        }
        if !input.is_empty() {
            self.last_rx = now;
        }
        stale
    }
}

/// Bytes with which a sender may precede a frame to terminate whatever partial
/// frame the peer holds (PROTOCOL.md §2).
pub(crate) const PREAMBLE: u8 = 0x00;
