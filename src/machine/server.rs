//! The server side: decode requests, dispatch them, encode one answer each.
//!
//! Invariants:
//! - Every request frame with a good CRC gets exactly one answer: a Reply, or a
//!   Status saying why not. An unknown method is answered, never ignored.
//! - A request is refused (Status, not executed) only before its handler is
//!   called; once the handler ran, the answer is its value or `INTERNAL`.
//! - While an answer is waiting to be sent, no further input is consumed, so
//!   the transmit buffer is never overwritten.

use core::time::Duration;

use serde::Serialize;

use super::DEFAULT_FRAME_GAP;
use crate::stats::{LinkStats, bump};
use crate::time::Instant;
use crate::wire::{Decoded, Frame, FrameDecoder, Kind, Status, encode_reply, encode_status};

/// Server counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub struct ServerStats {
    /// Frame-level counters.
    pub link: LinkStats,
    /// Requests whose handler was called.
    pub dispatched: u32,
    /// Requests refused before dispatch (unknown method, bad arguments, too large).
    pub refused: u32,
}

/// Why a dispatcher refused a request before calling any handler.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Refused {
    /// No method has this id. Answered with [`Status::Unimplemented`].
    UnknownMethod,
    /// The arguments did not decode as the method's argument tuple, or bytes
    /// were left over. Answered with [`Status::InvalidArgument`].
    BadArguments,
}

impl Refused {
    const fn status(self) -> Status {
        match self {
            Refused::UnknownMethod => Status::Unimplemented,
            Refused::BadArguments => Status::InvalidArgument,
        }
    }
}

/// Proof that a [`Responder`] encoded an answer; only it can make one.
#[derive(Debug)]
#[must_use]
pub struct Replied {
    len: usize,
}

/// Encodes the answer to one request into the server's transmit buffer.
pub struct Responder<'a> {
    seq: u16,
    buf: &'a mut [u8],
}

impl Responder<'_> {
    /// Encodes `value` as the Reply. If it does not fit the transmit buffer, the
    /// answer becomes [`Status::Internal`]: the handler ran, its value is lost.
    pub fn reply<T: Serialize + ?Sized>(self, value: &T) -> Replied {
        let len = match encode_reply(self.seq, value, self.buf) {
            Ok(frame) => frame.len(),
            Err(_) => {
                wc_warn!("reply seq={} does not fit the transmit buffer", self.seq);
                encode_status(self.seq, Status::Internal, self.buf).map_or(0, <[u8]>::len)
            }
        };
        Replied { len }
    }
}

/// A service's dispatcher: decodes arguments, calls the handler, encodes its value.
///
/// The [`service!`](crate::service!) macro implements it; implement it by hand
/// only for unusual servers.
pub trait Dispatch {
    /// Runs `method` with the postcard-encoded argument tuple `args` and answers
    /// through `responder`.
    ///
    /// # Errors
    /// [`Refused`] when the request is turned down before any handler runs.
    fn dispatch(
        &mut self,
        method: u16,
        args: &[u8],
        responder: Responder<'_>,
    ) -> Result<Replied, Refused>;
}

impl<D: Dispatch + ?Sized> Dispatch for &mut D {
    fn dispatch(
        &mut self,
        method: u16,
        args: &[u8],
        responder: Responder<'_>,
    ) -> Result<Replied, Refused> {
        (**self).dispatch(method, args, responder)
    }
}

/// The smallest transmit buffer a server can have: one Status frame.
const MIN_TX: usize = 8;

/// The server protocol machine: `RX` bytes of receive buffer (largest decoded
/// request: header, arguments and CRC) and `TX` bytes of transmit buffer
/// (largest encoded answer: COBS, CRC and delimiter included; at least 8).
pub struct ServerMachine<const RX: usize, const TX: usize> {
    decoder: FrameDecoder<RX>,
    tx: [u8; TX],
    tx_len: usize,
    tx_sent: usize,
    last_rx: Instant,
    frame_gap: Duration,
    stats: ServerStats,
}

impl<const RX: usize, const TX: usize> ServerMachine<RX, TX> {
    /// An idle server.
    pub const fn new() -> Self {
        const {
            assert!(
                TX >= MIN_TX,
                "a server's TX buffer must hold a Status frame (8 bytes)"
            )
        };
        ServerMachine {
            decoder: FrameDecoder::new(),
            tx: [0; TX],
            tx_len: 0,
            tx_sent: 0,
            last_rx: Instant::ZERO,
            frame_gap: DEFAULT_FRAME_GAP,
            stats: ServerStats {
                link: LinkStats::ZERO,
                dispatched: 0,
                refused: 0,
            },
        }
    }

    /// Sets how long a partial request frame may wait for its next byte.
    pub fn set_frame_gap(&mut self, gap: Duration) {
        self.frame_gap = gap;
    }

    /// The counters.
    pub const fn stats(&self) -> &ServerStats {
        &self.stats
    }

    /// Bytes of the current answer not yet accepted by the link.
    pub fn outgoing(&self) -> &[u8] {
        self.tx.get(self.tx_sent..self.tx_len).unwrap_or(&[])
    }

    /// Records that the link accepted the first `n` bytes of [`outgoing`](Self::outgoing).
    pub fn wrote(&mut self, n: usize) {
        self.tx_sent = self.tx_sent.saturating_add(n).min(self.tx_len);
        if self.tx_sent == self.tx_len {
            self.tx_len = 0;
            self.tx_sent = 0;
        }
    }

    /// Forgets an answer that cannot be sent (the link failed).
    pub fn discard_outgoing(&mut self) {
        self.tx_len = 0;
        self.tx_sent = 0;
    }

    /// Feeds received bytes, dispatching each complete request to `service`.
    /// Stops after the first request that produced an answer (now in
    /// [`outgoing`](Self::outgoing)) and returns the bytes consumed; feed the
    /// rest after sending the answer. Consumes nothing while an answer is unsent.
    pub fn receive<S: Dispatch + ?Sized>(
        &mut self,
        input: &[u8],
        now: Instant,
        service: &mut S,
    ) -> usize {
        if self.tx_len != 0 {
            return 0;
        }
        if self.decoder.is_mid_frame()
            && now.saturating_duration_since(self.last_rx) > self.frame_gap
        {
            self.decoder.reset();
            bump(&mut self.stats.link.dropped_stale);
        }
        if !input.is_empty() {
            self.last_rx = now;
        }
        let mut consumed = 0;
        while consumed < input.len() {
            let (used, event) = self.decoder.feed(input.get(consumed..).unwrap_or(&[]));
            consumed += used;
            let Some(event) = event else { break };
            let stats = &mut self.stats;
            let frame = self.decoder.frame();
            let answer = match event {
                Decoded::Dropped(reason) => {
                    stats.link.count_drop(reason);
                    continue;
                }
                Decoded::Oversized { len } => {
                    bump(&mut stats.link.dropped_too_long);
                    match Frame::parse(frame) {
                        Ok(Frame::Request { seq, .. }) => {
                            wc_warn!("request seq={} of {} bytes too large", seq, len);
                            bump(&mut stats.refused);
                            encode_status(seq, Status::ResourceExhausted, &mut self.tx)
                                .map_or(0, <[u8]>::len)
                        }
                        _ => continue,
                    }
                }
                Decoded::Frame => match Frame::parse(frame) {
                    Err(error) => {
                        stats.link.count_parse_error(error);
                        continue;
                    }
                    Ok(frame) if frame.kind() != Kind::Request => {
                        bump(&mut stats.link.dropped_kind);
                        continue;
                    }
                    Ok(Frame::Request { seq, method, args }) => {
                        bump(&mut stats.link.frames_in);
                        let responder = Responder {
                            seq,
                            buf: &mut self.tx,
                        };
                        match service.dispatch(method, args, responder) {
                            Ok(replied) => {
                                bump(&mut stats.dispatched);
                                wc_debug!("seq={} method={} answered", seq, method);
                                replied.len
                            }
                            Err(refused) => {
                                bump(&mut stats.refused);
                                wc_debug!("seq={} method={} refused", seq, method);
                                encode_status(seq, refused.status(), &mut self.tx)
                                    .map_or(0, <[u8]>::len)
                            }
                        }
                    }
                    Ok(_) => continue,
                },
            };
            if answer > 0 {
                self.tx_len = answer;
                self.tx_sent = 0;
                bump(&mut self.stats.link.frames_out);
                break;
            }
        }
        consumed
    }
}

impl<const RX: usize, const TX: usize> Default for ServerMachine<RX, TX> {
    fn default() -> Self {
        Self::new()
    }
}
