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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{Frame, encode_request};

    /// A dispatcher with method 1 = echo a u32, method 2 = return `n` bytes.
    struct Echo {
        runs: u32,
    }

    impl Dispatch for Echo {
        fn dispatch(
            &mut self,
            method: u16,
            args: &[u8],
            responder: Responder<'_>,
        ) -> Result<Replied, Refused> {
            match method {
                1 => {
                    let (v,): (u32,) = crate::__private::decode_args(args)?;
                    self.runs += 1;
                    Ok(responder.reply(&v))
                }
                2 => {
                    let (n,): (u8,) = crate::__private::decode_args(args)?;
                    self.runs += 1;
                    Ok(responder.reply(&[0x11u8; 64][..usize::from(n)]))
                }
                _ => Err(Refused::UnknownMethod),
            }
        }
    }

    fn request<A: Serialize>(seq: u16, method: u16, args: &A) -> ([u8; 128], usize) {
        let mut buf = [0u8; 128];
        let n = encode_request(seq, method, args, &mut buf).unwrap().len();
        (buf, n)
    }

    fn answer<const RX: usize, const TX: usize>(server: &ServerMachine<RX, TX>) -> Frame<'static> {
        let mut dec = crate::wire::FrameDecoder::<128>::new();
        let (_, event) = dec.feed(server.outgoing());
        assert_eq!(event, Some(Decoded::Frame));
        match Frame::parse(dec.frame()).unwrap() {
            Frame::Status { seq, status } => Frame::Status { seq, status },
            Frame::Reply { seq, value } => Frame::Reply {
                seq,
                value: if value.len() == 1 { &[0x2a] } else { &[] },
            },
            Frame::Request { .. } => panic!("a server never sends requests"),
        }
    }

    const T0: Instant = Instant::ZERO;

    #[test]
    fn answers_and_holds_input_until_the_answer_is_sent() {
        let mut server = ServerMachine::<64, 64>::new();
        let mut echo = Echo { runs: 0 };
        let (a, na) = request(1, 1, &(42u32,));
        let (b, nb) = request(2, 1, &(42u32,));
        let mut both = [0u8; 256];
        both[..na].copy_from_slice(&a[..na]);
        both[na..na + nb].copy_from_slice(&b[..nb]);
        assert_eq!(
            server.receive(&both[..na + nb], T0, &mut echo),
            na,
            "stops after the first answer"
        );
        assert_eq!(
            answer(&server),
            Frame::Reply {
                seq: 1,
                value: &[0x2a]
            }
        );
        assert_eq!(
            server.receive(&both[na..na + nb], T0, &mut echo),
            0,
            "nothing consumed while an answer waits"
        );
        let half = server.outgoing().len() / 2;
        server.wrote(half);
        assert_eq!(server.receive(&both[na..na + nb], T0, &mut echo), 0);
        server.wrote(server.outgoing().len());
        assert_eq!(server.receive(&both[na..na + nb], T0, &mut echo), nb);
        assert_eq!(
            answer(&server),
            Frame::Reply {
                seq: 2,
                value: &[0x2a]
            }
        );
        assert_eq!(echo.runs, 2);
    }

    #[test]
    fn refusals_are_answered_with_their_status_and_run_nothing() {
        let mut echo = Echo { runs: 0 };
        for (method, args, status) in [
            (9u16, &[][..], Status::Unimplemented),
            (
                1,
                &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff][..],
                Status::InvalidArgument,
            ),
            (1, &[0x01, 0x02][..], Status::InvalidArgument),
        ] {
            let mut server = ServerMachine::<64, 64>::new();
            let mut buf = [0u8; 64];
            // Arguments are passed pre-encoded as a raw tuple of bytes.
            let frame = encode_request(5, method, &RawArgs(args), &mut buf).unwrap();
            server.receive(frame, T0, &mut echo);
            assert_eq!(answer(&server), Frame::Status { seq: 5, status });
            assert_eq!(server.stats().refused, 1);
        }
        assert_eq!(echo.runs, 0);
    }

    /// Serializes bytes as they are, without a length prefix.
    struct RawArgs<'a>(&'a [u8]);

    impl Serialize for RawArgs<'_> {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            use serde::ser::SerializeTuple;
            let mut t = s.serialize_tuple(self.0.len())?;
            for b in self.0 {
                t.serialize_element(b)?;
            }
            t.end()
        }
    }

    #[test]
    fn a_request_too_large_is_answered_resource_exhausted_after_its_crc_is_checked() {
        let mut server = ServerMachine::<16, 64>::new();
        let mut echo = Echo { runs: 0 };
        let mut buf = [0u8; 128];
        let frame = encode_request(77, 1, &(&[0x5au8; 40][..],), &mut buf).unwrap();
        assert_eq!(server.receive(frame, T0, &mut echo), frame.len());
        assert_eq!(
            answer(&server),
            Frame::Status {
                seq: 77,
                status: Status::ResourceExhausted
            }
        );
        server.wrote(8);
        // The same frame with one byte flipped is garbage: no answer.
        let mut bad = [0u8; 128];
        bad[..frame.len()].copy_from_slice(frame);
        bad[20] ^= 0x40;
        assert_eq!(
            server.receive(&bad[..frame.len()], T0, &mut echo),
            frame.len()
        );
        assert!(server.outgoing().is_empty());
        assert_eq!(
            (
                server.stats().link.dropped_too_long,
                server.stats().link.dropped_crc
            ),
            (1, 1)
        );
        assert_eq!(echo.runs, 0);
    }

    #[test]
    fn a_value_too_large_for_tx_becomes_internal_and_counts_as_run() {
        let mut server = ServerMachine::<64, 24>::new();
        let mut echo = Echo { runs: 0 };
        let (r, n) = request(3, 2, &(60u8,));
        server.receive(&r[..n], T0, &mut echo);
        assert_eq!(
            answer(&server),
            Frame::Status {
                seq: 3,
                status: Status::Internal
            }
        );
        assert_eq!((echo.runs, server.stats().dispatched), (1, 1));
    }

    #[test]
    fn answers_and_status_frames_sent_to_a_server_are_dropped() {
        let mut server = ServerMachine::<64, 64>::new();
        let mut buf = [0u8; 16];
        let frame = crate::wire::encode_reply(1, &1u8, &mut buf).unwrap();
        assert_eq!(
            server.receive(frame, T0, &mut Echo { runs: 0 }),
            frame.len()
        );
        assert!(server.outgoing().is_empty());
        assert_eq!(server.stats().link.dropped_kind, 1);
    }

    #[test]
    fn a_partial_frame_left_by_a_dead_client_is_dropped_after_the_gap() {
        let mut server = ServerMachine::<64, 64>::new();
        let mut echo = Echo { runs: 0 };
        let (r, n) = request(1, 1, &(7u32,));
        server.receive(&r[..4], T0, &mut echo);
        let later = T0 + DEFAULT_FRAME_GAP + Duration::from_millis(1);
        assert_eq!(server.receive(&r[..n], later, &mut echo), n);
        assert_eq!(
            answer(&server),
            Frame::Reply {
                seq: 1,
                value: &[0x2a]
            }
        );
        assert_eq!(server.stats().link.dropped_stale, 1);
    }

    #[test]
    fn a_static_server_machine() {
        static MACHINE: ServerMachine<64, 64> = ServerMachine::new();
        assert!(MACHINE.outgoing().is_empty());
    }
}
