//! The client side: one call in flight, matched to its reply by sequence number.
//!
//! Invariants:
//! - A Reply or Status is accepted only if its sequence number is that of the
//!   call waiting; any other is a late (or stray) reply, discarded and counted.
//! - A call is reported "not executed" only when no byte of its frame reached
//!   the link, or the server said so; otherwise a failure is "outcome unknown".
//! - After a timeout or a link failure the next request is preceded by one 0x00,
//!   so a partial frame left at the server cannot swallow it.

use core::time::Duration;

use serde::Serialize;

use super::{DEFAULT_FRAME_GAP, PREAMBLE};
use crate::error::Error;
use crate::stats::{LinkStats, bump};
use crate::time::Instant;
use crate::wire::{Decoded, Frame, FrameDecoder, HEADER_LEN, Kind, encode_request};

/// Client counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub struct ClientStats {
    /// Frame-level counters.
    pub link: LinkStats,
    /// Calls started (requests encoded).
    pub calls: u32,
    /// Replies discarded because no call with their sequence number was waiting.
    pub late_replies: u32,
    /// Calls that ended by their deadline.
    pub timeouts: u32,
    /// Calls that ended because the link failed.
    pub link_failures: u32,
}

#[derive(Debug, Clone, Copy)]
struct Pending {
    seq: u16,
    deadline: Instant,
}

/// The client protocol machine: `RX` bytes of receive buffer (largest decoded
/// reply: header, value and CRC) and `TX` bytes of transmit buffer (largest
/// encoded request: COBS, CRC and delimiter included, plus one preamble byte).
pub struct ClientMachine<const RX: usize, const TX: usize> {
    decoder: FrameDecoder<RX>,
    tx: [u8; TX],
    tx_len: usize,
    tx_sent: usize,
    /// Bytes before the frame in `tx` (the optional preamble).
    tx_frame_start: usize,
    next_seq: u16,
    pending: Option<Pending>,
    needs_preamble: bool,
    last_rx: Instant,
    frame_gap: Duration,
    stats: ClientStats,
}

impl<const RX: usize, const TX: usize> ClientMachine<RX, TX> {
    /// A client whose first call uses sequence number 0.
    pub const fn new() -> Self {
        Self::with_first_seq(0)
    }

    /// A client whose first call uses sequence number `seq`.
    pub const fn with_first_seq(seq: u16) -> Self {
        ClientMachine {
            decoder: FrameDecoder::new(),
            tx: [0; TX],
            tx_len: 0,
            tx_sent: 0,
            tx_frame_start: 0,
            next_seq: seq,
            pending: None,
            needs_preamble: true,
            last_rx: Instant::ZERO,
            frame_gap: DEFAULT_FRAME_GAP,
            stats: ClientStats {
                link: LinkStats::ZERO,
                calls: 0,
                late_replies: 0,
                timeouts: 0,
                link_failures: 0,
            },
        }
    }

    /// Sets how long a partial reply frame may wait for its next byte.
    pub fn set_frame_gap(&mut self, gap: Duration) {
        self.frame_gap = gap;
    }

    /// The counters.
    pub const fn stats(&self) -> &ClientStats {
        &self.stats
    }

    /// The sequence number the next call will use.
    pub const fn next_seq(&self) -> u16 {
        self.next_seq
    }

    /// The sequence number and deadline of the call waiting for its reply, if any.
    pub fn waiting(&self) -> Option<(u16, Instant)> {
        self.pending.map(|p| (p.seq, p.deadline))
    }

    /// Starts a call: encodes the request for `method` with `args` (a tuple) and
    /// makes it the call waiting for a reply until `deadline`. The bytes to send
    /// are then in [`outgoing`](Self::outgoing).
    ///
    /// # Errors
    /// Nothing is sent in either case: [`Error::Busy`] if a call is waiting,
    /// [`Error::RequestTooLarge`] if the request does not fit `TX`.
    pub fn start<A: Serialize + ?Sized>(
        &mut self,
        method: u16,
        args: &A,
        deadline: Instant,
    ) -> Result<u16, Error> {
        if self.pending.is_some() {
            return Err(Error::Busy);
        }
        let seq = self.next_seq;
        let preamble = usize::from(self.needs_preamble);
        let (head, body) = self.tx.split_at_mut(preamble.min(TX));
        if let Some(first) = head.first_mut() {
            *first = PREAMBLE;
        }
        let frame_len = encode_request(seq, method, args, body)
            .map_err(|_| Error::RequestTooLarge)?
            .len();
        self.next_seq = seq.wrapping_add(1);
        self.tx_frame_start = preamble;
        self.tx_len = preamble + frame_len;
        self.tx_sent = 0;
        self.needs_preamble = false;
        self.pending = Some(Pending { seq, deadline });
        bump(&mut self.stats.calls);
        bump(&mut self.stats.link.frames_out);
        wc_debug!("call seq={} method={} len={}", seq, method, frame_len);
        Ok(seq)
    }

    /// Bytes of the current request not yet accepted by the link.
    pub fn outgoing(&self) -> &[u8] {
        self.tx.get(self.tx_sent..self.tx_len).unwrap_or(&[])
    }

    /// Records that the link accepted the first `n` bytes of [`outgoing`](Self::outgoing).
    pub fn wrote(&mut self, n: usize) {
        self.tx_sent = self.tx_sent.saturating_add(n).min(self.tx_len);
    }

    /// Ends the waiting call because the link failed or closed, and returns how
    /// it ended: [`Error::NotSent`] if no byte of its frame was accepted by the
    /// link, [`Error::LinkLost`] otherwise. Returns `None` if no call was waiting.
    pub fn link_failed(&mut self) -> Option<Error> {
        let pending = self.pending.take()?;
        let error = if self.tx_sent <= self.tx_frame_start {
            Error::NotSent
        } else {
            Error::LinkLost
        };
        self.abandon();
        bump(&mut self.stats.link_failures);
        wc_warn!("call seq={} ended by link failure", pending.seq);
        Some(error)
    }

    /// Ends the waiting call with [`Error::Timeout`] if its deadline has passed.
    pub fn poll(&mut self, now: Instant) -> Option<Error> {
        let pending = self.pending?;
        if now < pending.deadline {
            return None;
        }
        self.pending = None;
        self.abandon();
        bump(&mut self.stats.timeouts);
        wc_warn!("call seq={} timed out", pending.seq);
        Some(Error::Timeout)
    }

    fn abandon(&mut self) {
        self.tx_len = 0;
        self.tx_sent = 0;
        self.needs_preamble = true;
    }

    /// Feeds received bytes. Stops at the reply of the waiting call and returns
    /// the bytes consumed and the call's outcome: the postcard-encoded value, or
    /// the error. Feed the unconsumed rest later; nothing is lost.
    pub fn receive(&mut self, input: &[u8], now: Instant) -> (usize, Option<Result<&[u8], Error>>) {
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
            if let Some(outcome) = self.accept(event) {
                let value = outcome.map(|()| self.decoder.frame().get(HEADER_LEN..).unwrap_or(&[]));
                return (consumed, Some(value));
            }
        }
        (consumed, None)
    }

    /// Counts one decoder event and decides whether it ends the waiting call.
    /// `Some(Ok(()))`: the call's value is the payload of the decoder's frame.
    fn accept(&mut self, event: Decoded) -> Option<Result<(), Error>> {
        let link = &mut self.stats.link;
        let oversized = match event {
            Decoded::Frame => false,
            Decoded::Oversized { .. } => true,
            Decoded::Dropped(reason) => {
                link.count_drop(reason);
                return None;
            }
        };
        let frame = match Frame::parse(self.decoder.frame()) {
            Ok(frame) => frame,
            // The head of an oversized frame may end inside its header.
            Err(_) if oversized => {
                bump(&mut link.dropped_too_long);
                return None;
            }
            Err(error) => {
                link.count_parse_error(error);
                return None;
            }
        };
        if oversized {
            bump(&mut link.dropped_too_long);
        } else if frame.kind() == Kind::Request {
            bump(&mut link.dropped_kind);
            return None;
        } else {
            bump(&mut link.frames_in);
        }
        match self.pending {
            Some(p) if p.seq == frame.seq() && frame.kind() != Kind::Request => {}
            _ => {
                if frame.kind() != Kind::Request {
                    bump(&mut self.stats.late_replies);
                    wc_debug!("late reply seq={} discarded", frame.seq());
                }
                return None;
            }
        }
        self.pending = None;
        self.tx_len = 0;
        self.tx_sent = 0;
        Some(match frame {
            Frame::Status { status, .. } => Err(Error::Status(status)),
            Frame::Reply { .. } if oversized => Err(Error::ReplyTooLarge),
            _ => Ok(()),
        })
    }
}

impl<const RX: usize, const TX: usize> Default for ClientMachine<RX, TX> {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{Status, encode_reply, encode_status};

    type Machine = ClientMachine<32, 32>;

    const T0: Instant = Instant::from_millis(0);
    const DEADLINE: Instant = Instant::from_millis(100);

    fn reply(seq: u16, value: i32) -> ([u8; 16], usize) {
        let mut buf = [0u8; 16];
        let n = encode_reply(seq, &value, &mut buf).unwrap().len();
        (buf, n)
    }

    fn send_all(m: &mut Machine) {
        let n = m.outgoing().len();
        m.wrote(n);
    }

    #[test]
    fn first_request_has_a_preamble_and_later_ones_do_not() {
        let mut m = Machine::new();
        m.start(2, &(2i32, 3i32), DEADLINE).unwrap();
        assert_eq!(m.outgoing().first(), Some(&0x00));
        assert_eq!(m.outgoing().len(), 11);
        send_all(&mut m);
        let (r, n) = reply(0, 5);
        assert_eq!(m.receive(&r[..n], T0).1, Some(Ok(&[0x0a][..])));
        m.start(2, &(2i32, 3i32), DEADLINE).unwrap();
        assert_eq!(m.outgoing().len(), 10);
        assert_ne!(m.outgoing().first(), Some(&0x00));
    }

    #[test]
    fn only_one_call_at_a_time() {
        let mut m = Machine::new();
        assert_eq!(m.start(1, &(), DEADLINE), Ok(0));
        assert_eq!(m.start(1, &(), DEADLINE), Err(Error::Busy));
        assert_eq!(m.stats().calls, 1);
    }

    #[test]
    fn timeout_then_late_reply_is_discarded_and_next_call_matches() {
        let mut m = Machine::new();
        m.start(4, &(), DEADLINE).unwrap();
        send_all(&mut m);
        assert_eq!(m.poll(Instant::from_millis(99)), None);
        assert_eq!(m.poll(DEADLINE), Some(Error::Timeout));
        assert_eq!(m.poll(DEADLINE), None, "a call ends once");

        // The late reply to call 0 arrives while call 1 waits: discarded.
        m.start(2, &(1i32, 1i32), Instant::from_millis(300))
            .unwrap();
        assert_eq!(
            m.outgoing().first(),
            Some(&0x00),
            "preamble after a timeout"
        );
        send_all(&mut m);
        let (late, n) = reply(0, 99);
        assert_eq!(m.receive(&late[..n], Instant::from_millis(150)), (n, None));
        let (good, n) = reply(1, 2);
        assert_eq!(
            m.receive(&good[..n], Instant::from_millis(160)).1,
            Some(Ok(&[0x04][..]))
        );
        assert_eq!((m.stats().late_replies, m.stats().timeouts), (1, 1));
    }

    #[test]
    fn a_reply_for_no_call_is_late() {
        let mut m = Machine::new();
        let (r, n) = reply(0, 1);
        assert_eq!(m.receive(&r[..n], T0), (n, None));
        assert_eq!(m.stats().late_replies, 1);
    }

    #[test]
    fn link_failure_before_any_frame_byte_is_not_sent() {
        let mut m = Machine::new();
        m.start(1, &(), DEADLINE).unwrap();
        assert_eq!(m.link_failed(), Some(Error::NotSent));
        m.start(1, &(), DEADLINE).unwrap();
        m.wrote(1); // only the preamble
        assert_eq!(m.link_failed(), Some(Error::NotSent));
        m.start(1, &(), DEADLINE).unwrap();
        m.wrote(2); // the preamble and one byte of the frame
        assert_eq!(m.link_failed(), Some(Error::LinkLost));
        assert_eq!(m.link_failed(), None);
        assert_eq!(m.stats().link_failures, 3);
    }

    #[test]
    fn status_answers_end_the_call_with_their_meaning() {
        let mut m = Machine::new();
        m.start(9, &(), DEADLINE).unwrap();
        send_all(&mut m);
        let mut buf = [0u8; 16];
        let frame = encode_status(0, Status::Unimplemented, &mut buf).unwrap();
        let outcome = m.receive(frame, T0).1.unwrap().unwrap_err();
        assert_eq!(outcome, Error::Status(Status::Unimplemented));
        assert!(!outcome.may_have_executed());
    }

    #[test]
    fn a_reply_too_large_for_the_buffer_ran_and_is_lost() {
        let mut m = ClientMachine::<8, 32>::new();
        m.start(5, &(), DEADLINE).unwrap();
        let mut buf = [0u8; 64];
        let frame = encode_reply(0, &[7u8; 20], &mut buf).unwrap();
        assert_eq!(m.receive(frame, T0).1, Some(Err(Error::ReplyTooLarge)));
        assert_eq!(m.stats().link.dropped_too_long, 1);
    }

    #[test]
    fn a_stalled_partial_frame_is_abandoned_after_the_gap() {
        let mut m = Machine::new();
        m.start(2, &(), Instant::from_millis(10_000)).unwrap();
        let (r, n) = reply(0, 5);
        // Half a frame, then silence longer than the gap, then a whole frame.
        assert_eq!(m.receive(&r[..3], T0), (3, None));
        let later = T0 + DEFAULT_FRAME_GAP + Duration::from_millis(1);
        assert_eq!(m.receive(&r[..n], later).1, Some(Ok(&[0x0a][..])));
        assert_eq!(m.stats().link.dropped_stale, 1);
        assert_eq!(m.stats().link.dropped(), 1);
    }

    #[test]
    fn requests_from_a_server_are_dropped_by_kind() {
        let mut m = Machine::new();
        let mut buf = [0u8; 16];
        let frame = crate::wire::encode_request(0, 1, &(), &mut buf).unwrap();
        assert_eq!(m.receive(frame, T0).1, None);
        assert_eq!(m.stats().link.dropped_kind, 1);
    }

    #[test]
    fn a_static_client_machine() {
        static MACHINE: ClientMachine<64, 64> = ClientMachine::new();
        assert_eq!(MACHINE.next_seq(), 0);
    }
}
