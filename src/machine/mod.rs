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
mod server;

pub use client::{ClientMachine, ClientStats, Method, RetryPolicy};
pub use server::{Dispatch, REPLY_CACHE_WINDOW, Refused, Replied, Responder, ServerMachine, ServerStats};

use core::time::Duration;

/// How long a partial frame may wait for its next byte before it is abandoned
/// (counted in `dropped_stale`) and decoding restarts, unless changed with
/// `set_frame_gap`.
pub const DEFAULT_FRAME_GAP: Duration = Duration::from_secs(1);

/// Bytes with which a sender may precede a frame to terminate whatever partial
/// frame the peer holds (PROTOCOL.md §2).
pub(crate) const PREAMBLE: u8 = 0x00;
