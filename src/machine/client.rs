//! The client side: one call in flight, matched to its answer by sequence number,
//! retransmitted under the same number until answered or out of time.
//!
//! Invariants:
//! - A Reply or Status is accepted only if its sequence number is that of the
//!   call waiting; any other is a late (or stray) answer, discarded and counted.
//! - Before its first request on a link the client opens a session (Hello, then
//!   Welcome). A Hello is `fresh` once per client life, so a server drops the
//!   answers it cached for an earlier life: none of them can reach this one.
//! - A call is retransmitted only with its own sequence number, which the server
//!   recognises: a retransmission never runs the handler a second time.
//! - A call is reported "not executed" only when no byte of its request frame
//!   reached the link, or the server said so; otherwise a failure is "unknown".
//! - Retransmissions and the first frame after a failure are preceded by one
//!   0x00, so a partial frame left at the server cannot swallow them.

use core::time::Duration;

use serde::Serialize;

use super::{PREAMBLE, Receiver};
use crate::error::Error;
use crate::stats::{LinkStats, count, count_link};
use crate::time::{Instant, duration_micros};
use crate::wire::{Decoded, Frame, HEADER_LEN, Status, encode_hello, encode_request};

/// A method as the client calls it: its id, and whether running it twice does
/// no more than running it once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Method {
    /// The method id from the service definition.
    pub id: u16,
    /// Declared idempotent: the client may call it again, as a new call, when
    /// the server can no longer tell whether the first call ran (it restarted, or
    /// the answer left its cache). Other methods are never run twice.
    pub idempotent: bool,
}

impl Method {
    /// A method that must run at most once.
    pub const fn new(id: u16) -> Self {
        Method { id, idempotent: false }
    }

    /// A method that may safely run more than once.
    pub const fn idempotent(id: u16) -> Self {
        Method { id, idempotent: true }
    }
}

/// How a client retransmits a request that got no answer, within the call's deadline.
///
/// Retransmissions reuse the call's sequence number, so the server answers them
/// from its reply cache instead of running the handler again: they are safe for
/// every method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct RetryPolicy {
    /// Sends of the request per call, the first included (0 counts as 1).
    pub attempts: u8,
    /// How long one send waits for the answer before the next.
    pub attempt_timeout: Duration,
    /// Wait before the second send; doubled before each further one...
    pub backoff: Duration,
    /// ...up to this.
    pub max_backoff: Duration,
}

impl RetryPolicy {
    /// One send per call: the call waits for its answer until its deadline.
    pub const NONE: RetryPolicy = RetryPolicy {
        attempts: 1,
        attempt_timeout: Duration::MAX,
        backoff: Duration::ZERO,
        max_backoff: Duration::ZERO,
    };

    /// Up to 4 sends, 250 ms apart, after 10, 20, 40 ms of backoff.
    pub const DEFAULT: RetryPolicy = RetryPolicy {
        attempts: 4,
        attempt_timeout: Duration::from_millis(250),
        backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(200),
    };

    /// The wait before send number `attempt + 1`, for `attempt >= 1`, in microseconds.
    fn backoff_after(&self, attempt: u8) -> u64 {
        let doublings = u32::from(attempt.saturating_sub(1)).min(16);
        duration_micros(self.backoff).saturating_mul(1 << doublings).min(duration_micros(self.max_backoff))
    }
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// Client counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub struct ClientStats {
    /// Frame-level counters.
    pub link: LinkStats,
    /// Calls started (and resumed).
    pub calls: u32,
    /// Requests sent again: retransmissions under the same sequence number, and
    /// new calls made for a retry the driver decided on.
    pub retries: u32,
    /// Answers discarded because no call with their sequence number was waiting.
    pub late_replies: u32,
    /// Calls that ended by their deadline.
    pub timeouts: u32,
    /// Calls that ended because the link failed.
    pub link_failures: u32,
    /// Sessions opened (Welcome frames accepted).
    pub sessions: u32,
    /// Times the server had lost a session this client had: it restarted or dropped it.
    pub sessions_lost: u32,
}

impl ClientStats {
    /// All counters at zero.
    pub const ZERO: ClientStats = ClientStats {
        link: LinkStats::ZERO,
        calls: 0,
        retries: 0,
        late_replies: 0,
        timeouts: 0,
        link_failures: 0,
        sessions: 0,
        sessions_lost: 0,
    };
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Out {
    Idle,
    /// `tx[from..tx_len]`; `from` is 0 with the preamble, 1 without.
    Request {
        from: usize,
    },
    /// `hello[from..hello_len]`.
    Hello {
        from: usize,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Waiting for the Welcome to Hello `seq` until `until`.
    Handshake { seq: u16, until: Instant },
    /// The request was sent; waiting for its answer until `until`.
    Waiting { until: Instant },
    /// Waiting until `until` before sending the request again.
    Backoff { until: Instant },
}

#[derive(Debug, Clone, Copy)]
struct Call {
    seq: u16,
    deadline: Instant,
    /// Sends of the request so far.
    attempts: u8,
    phase: Phase,
    /// Re-asking a call that ended unknown: only a resumed session may answer it.
    resuming: bool,
}

#[derive(Debug, Clone, Copy)]
struct Session {
    boot_id: u32,
}

/// Bytes of the Hello buffer: a preamble and a Hello frame (12 bytes on the wire).
const HELLO: usize = 13;

/// The smallest receive buffer a client can have: one decoded Welcome frame.
const MIN_RX: usize = 11;

/// The smallest transmit buffer a client can have: a preamble and the shortest
/// request frame on the wire (6 decoded bytes, 1 of COBS overhead, the delimiter).
const MIN_TX: usize = 9;

/// The client protocol machine: `RX` bytes of receive buffer (largest decoded
/// answer: header, value and CRC) and `TX` bytes of transmit buffer (largest
/// encoded request: COBS, CRC and delimiter included, plus one preamble byte).
pub struct ClientMachine<const RX: usize, const TX: usize> {
    rx: Receiver<RX>,
    /// `tx[0]` is the preamble; the request frame follows, up to `tx_len`.
    tx: [u8; TX],
    tx_len: usize,
    hello: [u8; HELLO],
    hello_len: usize,
    out: Out,
    /// Bytes of `outgoing()` already accepted by the link.
    sent: usize,
    /// A byte of the current call's request frame has reached the link.
    frame_sent: bool,
    client_id: u32,
    /// The next Hello opens a new life's session.
    fresh: bool,
    session: Option<Session>,
    next_seq: u16,
    call: Option<Call>,
    /// The sequence number of the last call, if it ended unknown and can be resumed.
    resumable: Option<u16>,
    policy: RetryPolicy,
    needs_preamble: bool,
    /// Whether requests carry their time budget (kind 6).
    #[cfg(feature = "deadlines")]
    budget_on_wire: bool,
    #[cfg(feature = "stats")]
    stats: ClientStats,
}

impl<const RX: usize, const TX: usize> ClientMachine<RX, TX> {
    /// A client with id 0 whose first frame uses sequence number 0.
    pub const fn new() -> Self {
        Self::with_identity(0, 0)
    }

    /// A client with `client_id` (reported to the server, for diagnostics) whose
    /// first frame uses sequence number `first_seq`.
    pub const fn with_identity(client_id: u32, first_seq: u16) -> Self {
        const { assert!(RX >= MIN_RX, "a client's RX buffer must hold a decoded Welcome frame (11 bytes)") };
        const { assert!(TX >= MIN_TX, "a client's TX buffer must hold a preamble and a request frame (9 bytes)") };
        ClientMachine {
            rx: Receiver::new(),
            tx: [PREAMBLE; TX],
            tx_len: 0,
            hello: [PREAMBLE; HELLO],
            hello_len: 0,
            out: Out::Idle,
            sent: 0,
            frame_sent: false,
            client_id,
            fresh: true,
            session: None,
            next_seq: first_seq,
            call: None,
            resumable: None,
            policy: RetryPolicy::DEFAULT,
            needs_preamble: true,
            #[cfg(feature = "deadlines")]
            budget_on_wire: false,
            #[cfg(feature = "stats")]
            stats: ClientStats::ZERO,
        }
    }

    /// Sets how requests are retransmitted.
    pub fn set_retry_policy(&mut self, policy: RetryPolicy) {
        self.policy = policy;
    }

    /// Whether each request carries its time budget: the time from its start to
    /// the call's deadline, in whole milliseconds (PROTOCOL.md §4, kind 6). Off by
    /// default: a request is then 1 to 5 bytes shorter. With it, the server
    /// refuses a request whose budget is 0 (DEADLINE_EXCEEDED, not executed)
    /// and handlers can read their deadline. Only for servers that implement
    /// Timed Requests (wirecall's with feature `deadlines`, on by default): one
    /// that does not drops them, and the call ends unknown.
    #[cfg(feature = "deadlines")]
    pub fn set_budget_on_wire(&mut self, on: bool) {
        self.budget_on_wire = on;
    }

    /// How requests are retransmitted.
    pub const fn retry_policy(&self) -> RetryPolicy {
        self.policy
    }

    /// Sets how long a partial answer frame may wait for its next byte.
    pub fn set_frame_gap(&mut self, gap: Duration) {
        self.rx.set_gap(gap);
    }

    /// The counters (all zero without feature `stats`).
    pub const fn stats(&self) -> ClientStats {
        #[cfg(feature = "stats")]
        return self.stats;
        #[cfg(not(feature = "stats"))]
        ClientStats::ZERO
    }

    /// The sequence number the next frame will use.
    pub const fn next_seq(&self) -> u16 {
        self.next_seq
    }

    /// The boot id the server sent when the current session opened, if one is open.
    pub fn boot_id(&self) -> Option<u32> {
        self.session.map(|s| s.boot_id)
    }

    /// Whether a call is in progress.
    pub const fn is_busy(&self) -> bool {
        self.call.is_some()
    }

    /// Whether the last call ended unknown and can be [resumed](Self::resume).
    pub const fn can_resume(&self) -> bool {
        self.resumable.is_some()
    }

    /// Starts a call: encodes the request for `method` with `args` (a tuple), to
    /// be answered by `deadline`. What to send is then in [`outgoing`](Self::outgoing):
    /// a Hello first if no session is open.
    ///
    /// # Errors
    /// Nothing is sent in either case: [`Error::Busy`] if a call is in progress,
    /// [`Error::RequestTooLarge`] if the request does not fit `TX`.
    pub fn start<A: Serialize + ?Sized>(
        &mut self,
        method: Method,
        args: &A,
        now: Instant,
        deadline: Instant,
    ) -> Result<u16, Error> {
        if self.call.is_some() {
            return Err(Error::Busy);
        }
        // A Hello, if one is needed, takes the number before the request's.
        let hello_seq = self.next_seq;
        let seq = if self.session.is_some() { hello_seq } else { hello_seq.wrapping_add(1) };
        let body = self.tx.get_mut(1..).unwrap_or(&mut []);
        #[cfg(feature = "deadlines")]
        let frame = if self.budget_on_wire {
            // Retransmissions repeat these bytes: the budget is the one at the
            // start, so a server may see more time than is left (never less).
            let left = deadline.saturating_duration_since(now);
            let budget = left.as_secs().saturating_mul(1000).saturating_add(u64::from(left.subsec_millis()));
            crate::wire::encode_timed_request(seq, method.id, u32::try_from(budget).unwrap_or(u32::MAX), args, body)
        } else {
            encode_request(seq, method.id, args, body)
        };
        #[cfg(not(feature = "deadlines"))]
        let frame = encode_request(seq, method.id, args, body);
        let frame_len = frame.map_err(|_| Error::RequestTooLarge)?.len();
        self.next_seq = seq.wrapping_add(1);
        self.tx_len = 1 + frame_len;
        self.resumable = None;
        count!(self.stats.calls);
        wc_debug!("call seq={} method={} len={}", seq, method.id, frame_len);
        self.begin(
            Call { seq, deadline, attempts: 0, phase: Phase::Waiting { until: now }, resuming: false },
            now,
            hello_seq,
        );
        Ok(seq)
    }

    /// Asks again, under its own sequence number, for the answer to the last call,
    /// which ended with its outcome unknown. The server answers from its cache if
    /// the call ran, runs it if it never arrived, and otherwise says it cannot
    /// tell; it never runs it twice. What to send is then in [`outgoing`](Self::outgoing).
    ///
    /// # Errors
    /// [`Error::Busy`] if a call is in progress, [`Error::NothingToResume`] if the
    /// last call did not end unknown.
    pub fn resume(&mut self, now: Instant, deadline: Instant) -> Result<u16, Error> {
        if self.call.is_some() {
            return Err(Error::Busy);
        }
        let seq = self.resumable.take().ok_or(Error::NothingToResume)?;
        count!(self.stats.calls);
        let hello_seq = self.next_seq;
        if self.session.is_none() {
            self.next_seq = hello_seq.wrapping_add(1);
        }
        self.begin(
            Call { seq, deadline, attempts: 0, phase: Phase::Waiting { until: now }, resuming: true },
            now,
            hello_seq,
        );
        Ok(seq)
    }

    /// Makes `call` current: opens a session first (Hello `hello_seq`) if none is open.
    fn begin(&mut self, call: Call, now: Instant, hello_seq: u16) {
        self.frame_sent = call.resuming;
        self.call = Some(call);
        if self.session.is_some() { self.send_request(now) } else { self.send_hello(hello_seq, now) }
    }

    fn send_hello(&mut self, seq: u16, now: Instant) {
        let body = self.hello.get_mut(1..).unwrap_or(&mut []);
        self.hello_len = 1 + encode_hello(seq, self.client_id, self.fresh, body).map_or(0, <[u8]>::len);
        let from = self.preamble_offset();
        self.set_out(Out::Hello { from });
        let until = self.attempt_end(now);
        if let Some(call) = &mut self.call {
            call.phase = Phase::Handshake { seq, until };
        }
    }

    fn send_request(&mut self, now: Instant) {
        let from = self.preamble_offset();
        self.set_out(Out::Request { from });
        let until = self.attempt_end(now);
        if let Some(call) = &mut self.call {
            if call.attempts > 0 {
                count!(self.stats.retries);
            }
            call.attempts = call.attempts.saturating_add(1);
            call.phase = Phase::Waiting { until };
        }
        count!(self.stats.link.frames_out);
    }

    /// 0 to send the preamble before the next frame, 1 to skip it.
    fn preamble_offset(&mut self) -> usize {
        usize::from(!core::mem::replace(&mut self.needs_preamble, false))
    }

    fn set_out(&mut self, out: Out) {
        self.out = out;
        self.sent = 0;
    }

    /// When the current send stops waiting: its attempt timeout, or the deadline.
    fn attempt_end(&self, now: Instant) -> Instant {
        let deadline = self.call.map_or(now, |c| c.deadline);
        now.plus_micros(duration_micros(self.policy.attempt_timeout)).min(deadline)
    }

    /// Bytes not yet accepted by the link.
    pub fn outgoing(&self) -> &[u8] {
        let (buf, from, len): (&[u8], usize, usize) = match self.out {
            Out::Idle => return &[],
            Out::Request { from } => (&self.tx, from, self.tx_len),
            Out::Hello { from } => (&self.hello, from, self.hello_len),
        };
        buf.get(from.saturating_add(self.sent)..len).unwrap_or(&[])
    }

    /// Records that the link accepted the first `n` bytes of [`outgoing`](Self::outgoing).
    pub fn wrote(&mut self, n: usize) {
        let n = n.min(self.outgoing().len());
        self.sent += n;
        if let Out::Request { from } = self.out {
            // Byte 0 of `tx` is the preamble; the frame starts at 1.
            self.frame_sent |= n > 0 && from + self.sent > 1;
        }
        if self.outgoing().is_empty() {
            self.set_out(Out::Idle);
        }
    }

    /// When [`poll`](Self::poll) next has something to do, if a call is in progress.
    pub fn poll_at(&self) -> Option<Instant> {
        let call = self.call?;
        Some(match call.phase {
            Phase::Handshake { until, .. } | Phase::Waiting { until } | Phase::Backoff { until } => until,
        })
    }

    /// Advances timers: sends the request again when an attempt timed out and the
    /// policy allows, and ends the call when its deadline has passed.
    pub fn poll(&mut self, now: Instant) -> Option<Error> {
        let call = self.call?;
        let (Phase::Handshake { until, .. } | Phase::Waiting { until } | Phase::Backoff { until }) = call.phase;
        if now < until {
            return None;
        }
        let time_left = now < call.deadline;
        match call.phase {
            Phase::Handshake { seq, .. } if time_left => {
                count!(self.stats.retries);
                self.needs_preamble = true;
                self.send_hello(seq, now);
                None
            }
            Phase::Handshake { .. } => {
                // The request never left unless an earlier call sent it.
                let error = if call.resuming { Error::Timeout } else { Error::Unreachable };
                Some(self.end_with_timeout(error))
            }
            Phase::Waiting { .. } if time_left && call.attempts < self.policy.attempts.max(1) => {
                let wait = self.policy.backoff_after(call.attempts);
                if let Some(call) = &mut self.call {
                    call.phase = Phase::Backoff { until: now.plus_micros(wait).min(call.deadline) };
                }
                None
            }
            Phase::Backoff { .. } if time_left => {
                self.needs_preamble = true;
                self.send_request(now);
                None
            }
            Phase::Waiting { .. } | Phase::Backoff { .. } => {
                let error = if self.frame_sent { Error::Timeout } else { Error::NotSent };
                Some(self.end_with_timeout(error))
            }
        }
    }

    fn end_with_timeout(&mut self, error: Error) -> Error {
        count!(self.stats.timeouts);
        wc_warn!("call timed out");
        self.needs_preamble = true;
        self.finish(error)
    }

    /// Ends the current call with `error`, keeping it resumable if its outcome is unknown.
    fn finish(&mut self, error: Error) -> Error {
        if let Some(call) = self.call.take() {
            if error.executed() == crate::Executed::Maybe && self.frame_sent {
                self.resumable = Some(call.seq);
            }
        }
        self.set_out(Out::Idle);
        error
    }

    /// Ends the call in progress because the link failed or closed, and returns
    /// how it ended: [`Error::NotSent`] if no byte of its request frame ever
    /// reached the link, [`Error::LinkLost`] otherwise. Returns `None` if no call
    /// was in progress. The session must be confirmed again before the next call.
    pub fn link_failed(&mut self) -> Option<Error> {
        self.session = None;
        self.needs_preamble = true;
        self.rx.decoder.reset();
        self.call?;
        count!(self.stats.link_failures);
        wc_warn!("call ended by a link failure");
        let error = if self.frame_sent { Error::LinkLost } else { Error::NotSent };
        Some(self.finish(error))
    }

    /// Feeds received bytes. Stops at the answer that ends the call in progress and
    /// returns the bytes consumed and the call's outcome: the postcard-encoded
    /// value, or the error. Feed the unconsumed rest later; nothing is lost. A
    /// Welcome may put the request in [`outgoing`](Self::outgoing).
    pub fn receive(&mut self, input: &[u8], now: Instant) -> (usize, Option<Result<&[u8], Error>>) {
        if self.rx.arrive(input, now) {
            count!(self.stats.link.dropped_stale);
        }
        let mut consumed = 0;
        while consumed < input.len() {
            let (used, event) = self.rx.decoder.feed(input.get(consumed..).unwrap_or(&[]));
            consumed += used;
            let Some(event) = event else { break };
            if let Some(outcome) = self.accept(event, now) {
                let value = outcome.map(|()| self.rx.decoder.frame().get(HEADER_LEN..).unwrap_or(&[]));
                return (consumed, Some(value));
            }
        }
        (consumed, None)
    }

    /// Counts one decoder event and acts on it. `Some(Ok(()))`: the call's value
    /// is the payload of the decoder's frame.
    fn accept(&mut self, event: Decoded, now: Instant) -> Option<Result<(), Error>> {
        let oversized = match event {
            Decoded::Frame => false,
            Decoded::Oversized { .. } => true,
            Decoded::Dropped(reason) => {
                count_link!(self.stats.link, count_drop(reason));
                return None;
            }
        };
        let frame = match Frame::parse(self.rx.decoder.frame()) {
            Ok(frame) => frame,
            // The head of an oversized frame may end inside its header.
            Err(_) if oversized => {
                count!(self.stats.link.dropped_too_long);
                return None;
            }
            Err(error) => {
                count_link!(self.stats.link, count_parse_error(error));
                return None;
            }
        };
        if let Frame::Request { .. } | Frame::Hello { .. } = frame {
            count!(self.stats.link.dropped_kind);
            return None;
        }
        #[cfg(feature = "stats")]
        crate::stats::bump(if oversized {
            &mut self.stats.link.dropped_too_long
        } else {
            &mut self.stats.link.frames_in
        });
        let Some(call) = self.call else {
            count!(self.stats.late_replies);
            return None;
        };
        match (frame, call.phase) {
            (Frame::Welcome { seq, boot_id, resumed, .. }, Phase::Handshake { seq: hello, .. }) if seq == hello => {
                count!(self.stats.sessions);
                if !resumed && !self.fresh {
                    count!(self.stats.sessions_lost);
                }
                self.fresh = false;
                self.session = Some(Session { boot_id });
                wc_debug!("session open: boot={} resumed={}", boot_id, resumed);
                if call.resuming && !resumed {
                    // The server no longer knows this call; it must not run it blindly.
                    return Some(Err(self.finish(Error::SessionLost)));
                }
                self.send_request(now);
                None
            }
            (Frame::Reply { seq, .. }, Phase::Waiting { .. } | Phase::Backoff { .. }) if seq == call.seq => {
                Some(if oversized { Err(self.finish(Error::ReplyTooLarge)) } else { self.finish_ok() })
            }
            (Frame::Status { seq, status }, Phase::Waiting { .. } | Phase::Backoff { .. }) if seq == call.seq => {
                if status == Status::FailedPrecondition {
                    // The server has no session for us: it restarted.
                    self.session = None;
                    count!(self.stats.sessions_lost);
                }
                Some(Err(self.finish(Error::Status(status))))
            }
            _ => {
                count!(self.stats.late_replies);
                wc_debug!("late answer seq={} discarded", frame.seq());
                None
            }
        }
    }

    /// Counts a retry the driver made as a new call.
    pub fn count_retry(&mut self) {
        count!(self.stats.retries);
    }

    fn finish_ok(&mut self) -> Result<(), Error> {
        self.call = None;
        self.set_out(Out::Idle);
        Ok(())
    }
}

/// A client machine can be built in a `static` (checked at compile time).
const _: ClientMachine<64, 64> = ClientMachine::new();

impl<const RX: usize, const TX: usize> Default for ClientMachine<RX, TX> {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {

    use std::vec::Vec;

    use super::*;
    use crate::machine::DEFAULT_FRAME_GAP;
    use crate::wire::FrameDecoder;
    use crate::wire::{encode_reply, encode_request, encode_status, encode_welcome};

    type Machine = ClientMachine<32, 32>;

    const T0: Instant = Instant::from_millis(0);
    const DEADLINE: Instant = Instant::from_millis(1000);
    const ADD: Method = Method::new(2);

    fn frame(encode: impl FnOnce(&mut [u8]) -> Result<&[u8], crate::wire::BufferFull>) -> Vec<u8> {
        let mut buf = [0u8; 64];
        encode(&mut buf).unwrap().to_vec()
    }

    fn reply(seq: u16, value: i32) -> Vec<u8> {
        frame(|b| encode_reply(seq, &value, b))
    }

    fn welcome(seq: u16, resumed: bool) -> Vec<u8> {
        frame(|b| encode_welcome(seq, 77, resumed, 1, b))
    }

    /// Takes everything the machine wants to send.
    fn take(m: &mut Machine) -> Vec<u8> {
        let out = m.outgoing().to_vec();
        m.wrote(out.len());
        out
    }

    /// Decodes the frames in `bytes`.
    fn frames(bytes: &[u8]) -> Vec<Vec<u8>> {
        let mut dec = FrameDecoder::<64>::new();
        let mut rest = bytes;
        let mut out = Vec::new();
        while !rest.is_empty() {
            let (used, ev) = dec.feed(rest);
            if ev == Some(Decoded::Frame) {
                out.push(dec.frame().to_vec());
            }
            rest = &rest[used..];
        }
        out
    }

    /// A machine with an open session (Hello seq 0 answered), ready for calls from seq 1.
    fn open() -> Machine {
        let mut m = Machine::new();
        m.start(ADD, &(0i32, 0i32), T0, DEADLINE).unwrap();
        take(&mut m);
        assert_eq!(m.receive(&welcome(0, false), T0), (13, None));
        take(&mut m);
        assert_eq!(m.receive(&reply(1, 0), T0).1, Some(Ok(&[0x00][..])));
        m
    }

    #[test]
    fn first_call_opens_a_fresh_session_then_sends_the_request() {
        let mut m = Machine::new();
        assert_eq!(m.start(ADD, &(2i32, 3i32), T0, DEADLINE), Ok(1));
        let hello = take(&mut m);
        assert_eq!(hello[0], 0x00, "preamble before the first frame");
        assert_eq!(frames(&hello), [[0x14, 0, 0, 0, 0, 0, 0, 1]]);
        assert!(m.outgoing().is_empty(), "the request waits for the Welcome");
        assert_eq!(m.receive(&welcome(0, false), T0), (13, None));
        assert_eq!(m.boot_id(), Some(77));
        let request = take(&mut m);
        assert_eq!(request.len(), 10, "no preamble once the session is open");
        assert_eq!(frames(&request), [[0x11, 1, 0, 2, 4, 6]]);
        assert_eq!(m.receive(&reply(1, 5), T0).1, Some(Ok(&[0x0a][..])));
        // The next call goes straight out.
        m.start(ADD, &(1i32, 1i32), T0, DEADLINE).unwrap();
        assert_eq!(frames(&take(&mut m)), [[0x11, 2, 0, 2, 2, 2]]);
        assert_counted!((m.stats().sessions, m.stats().sessions_lost), (1, 0));
    }

    #[test]
    fn only_one_call_at_a_time() {
        let mut m = Machine::new();
        m.start(ADD, &(), T0, DEADLINE).unwrap();
        assert_eq!(m.start(ADD, &(), T0, DEADLINE), Err(Error::Busy));
        assert_eq!(m.resume(T0, DEADLINE), Err(Error::Busy));
    }

    #[test]
    fn unanswered_handshake_is_resent_then_unreachable_and_not_executed() {
        let mut m = Machine::new();
        m.set_retry_policy(RetryPolicy { attempt_timeout: Duration::from_millis(300), ..RetryPolicy::DEFAULT });
        m.start(ADD, &(), T0, DEADLINE).unwrap();
        take(&mut m);
        assert_eq!(m.poll_at(), Some(Instant::from_millis(300)));
        assert_eq!(m.poll(Instant::from_millis(300)), None);
        assert_eq!(frames(&take(&mut m)).len(), 1, "Hello sent again");
        assert_eq!(m.poll(Instant::from_millis(600)), None);
        take(&mut m);
        assert_eq!(m.poll(Instant::from_millis(900)), None);
        take(&mut m);
        assert_eq!(m.poll_at(), Some(DEADLINE));
        let error = m.poll(DEADLINE).unwrap();
        assert_eq!(error, Error::Unreachable);
        assert!(!error.may_have_executed());
        assert!(!m.can_resume());
    }

    #[test]
    fn unanswered_request_is_resent_under_its_own_seq_with_backoff() {
        let mut m = open();
        m.start(ADD, &(2i32, 3i32), T0, DEADLINE).unwrap();
        let first = take(&mut m);
        assert_eq!(m.poll(Instant::from_millis(249)), None);
        assert!(m.outgoing().is_empty());
        assert_eq!(m.poll(Instant::from_millis(250)), None, "attempt over: backoff");
        assert_eq!(m.poll_at(), Some(Instant::from_millis(260)));
        assert!(m.outgoing().is_empty());
        assert_eq!(m.poll(Instant::from_millis(260)), None);
        let second = take(&mut m);
        assert_eq!(second[0], 0x00, "preamble before a retransmission");
        assert_eq!(&second[1..], &first[..], "same frame, same seq");
        // An answer to either send ends the call.
        assert_eq!(m.receive(&reply(2, 5), Instant::from_millis(270)).1, Some(Ok(&[0x0a][..])));
        assert_counted!(m.stats().retries, 1);
    }

    #[test]
    fn attempts_run_out_then_timeout_is_unknown_and_resumable() {
        let mut m = open();
        m.set_retry_policy(RetryPolicy { attempts: 2, ..RetryPolicy::DEFAULT });
        m.start(ADD, &(2i32, 3i32), T0, DEADLINE).unwrap();
        take(&mut m);
        m.poll(Instant::from_millis(250));
        m.poll(Instant::from_millis(260));
        take(&mut m);
        assert_eq!(m.poll_at(), Some(Instant::from_millis(510)));
        let error = m.poll(Instant::from_millis(510)).unwrap();
        assert_eq!(error, Error::Timeout);
        assert!(error.may_have_executed());
        assert!(m.can_resume());
        assert_counted!((m.stats().timeouts, m.stats().retries), (1, 1));

        // The late answer to the timed-out call is discarded while the next waits.
        m.start(ADD, &(1i32, 1i32), T0, DEADLINE).unwrap();
        assert!(!m.can_resume(), "a new call replaces the resumable one");
        take(&mut m);
        assert_eq!(m.receive(&reply(2, 99), T0), (reply(2, 99).len(), None));
        assert_eq!(m.receive(&reply(3, 2), T0).1, Some(Ok(&[0x04][..])));
        assert_counted!(m.stats().late_replies, 1);
    }

    #[test]
    fn resume_asks_again_under_the_same_seq() {
        let mut m = open();
        m.set_retry_policy(RetryPolicy::NONE);
        m.start(ADD, &(2i32, 3i32), T0, Instant::from_millis(100)).unwrap();
        let first = take(&mut m);
        assert_eq!(m.poll(Instant::from_millis(100)), Some(Error::Timeout));
        assert_eq!(m.resume(Instant::from_millis(200), Instant::from_millis(300)), Ok(2));
        let again = take(&mut m);
        assert_eq!(&again[1..], &first[..]);
        assert_eq!(m.receive(&reply(2, 5), Instant::from_millis(210)).1, Some(Ok(&[0x0a][..])));
        assert_eq!(m.resume(T0, DEADLINE), Err(Error::NothingToResume));
    }

    #[test]
    fn resume_after_the_server_lost_the_session_is_refused_not_resent() {
        let mut m = open();
        m.start(ADD, &(2i32, 3i32), T0, DEADLINE).unwrap();
        take(&mut m);
        assert_eq!(m.link_failed(), Some(Error::LinkLost));
        m.resume(T0, DEADLINE).unwrap();
        let hello = take(&mut m);
        assert_eq!(frames(&hello), [[0x14, 3, 0, 0, 0, 0, 0, 0]], "a Hello that is not fresh");
        let (_, outcome) = m.receive(&welcome(3, false), T0);
        assert_eq!(outcome, Some(Err(Error::SessionLost)));
        assert!(m.outgoing().is_empty(), "the request is not sent to a server that lost it");
        assert_counted!(m.stats().sessions_lost, 1);
    }

    #[test]
    fn resume_after_a_reconnect_to_the_same_server_gets_the_answer() {
        let mut m = open();
        m.start(ADD, &(2i32, 3i32), T0, DEADLINE).unwrap();
        take(&mut m);
        m.link_failed();
        m.resume(T0, DEADLINE).unwrap();
        take(&mut m);
        assert_eq!(m.receive(&welcome(3, true), T0), (13, None));
        let again = take(&mut m);
        assert_eq!(frames(&again), [[0x11, 2, 0, 2, 4, 6]]);
        assert_eq!(m.receive(&reply(2, 5), T0).1, Some(Ok(&[0x0a][..])));
    }

    #[test]
    fn link_failure_before_any_request_byte_is_not_sent() {
        let mut m = Machine::new();
        m.start(ADD, &(), T0, DEADLINE).unwrap();
        take(&mut m);
        assert_eq!(m.link_failed(), Some(Error::NotSent), "failed during the handshake");
        let mut m = open();
        m.start(ADD, &(), T0, DEADLINE).unwrap();
        assert_eq!(m.link_failed(), Some(Error::NotSent));
        let mut m = open();
        m.start(ADD, &(), T0, DEADLINE).unwrap();
        m.wrote(1);
        assert_eq!(m.link_failed(), Some(Error::LinkLost), "one byte of the frame left");
        assert_eq!(m.link_failed(), None);
    }

    #[test]
    fn no_session_status_is_unknown_and_forces_a_new_handshake() {
        let mut m = open();
        m.start(ADD, &(), T0, DEADLINE).unwrap();
        take(&mut m);
        let status = frame(|b| encode_status(2, Status::FailedPrecondition, b));
        let error = m.receive(&status, T0).1.unwrap().unwrap_err();
        assert_eq!(error, Error::Status(Status::FailedPrecondition));
        assert!(error.may_have_executed());
        assert!(error.retry_as_new_call(true) && !error.retry_as_new_call(false));
        m.start(ADD, &(), T0, DEADLINE).unwrap();
        assert_eq!(frames(&take(&mut m))[0][0], 0x14, "a Hello first");
    }

    #[test]
    fn answers_for_nobody_are_late_and_wrong_kinds_are_dropped() {
        let mut m = Machine::new();
        assert_eq!(m.receive(&reply(0, 1), T0).1, None);
        assert_eq!(m.receive(&welcome(0, true), T0).1, None);
        assert_counted!(m.stats().late_replies, 2);
        let request = frame(|b| encode_request(0, 1, &(), b));
        assert_eq!(m.receive(&request, T0).1, None);
        assert_counted!(m.stats().link.dropped_kind, 1);
        // A Welcome with the wrong seq does not open the session.
        m.start(ADD, &(), T0, DEADLINE).unwrap();
        take(&mut m);
        m.receive(&welcome(9, false), T0);
        assert!(m.outgoing().is_empty());
        assert_eq!(m.boot_id(), None);
    }

    #[test]
    fn a_reply_too_large_for_the_buffer_ran_and_is_lost() {
        let mut m = ClientMachine::<12, 32>::new();
        m.start(ADD, &(), T0, DEADLINE).unwrap();
        m.wrote(m.outgoing().len());
        m.receive(&welcome(0, false), T0);
        m.wrote(m.outgoing().len());
        let big = frame(|b| encode_reply(1, &[7u8; 20], b));
        assert_eq!(m.receive(&big, T0).1, Some(Err(Error::ReplyTooLarge)));
        assert_counted!(m.stats().link.dropped_too_long, 1);
    }

    #[test]
    fn a_stalled_partial_frame_is_abandoned_after_the_gap() {
        let mut m = open();
        m.start(ADD, &(), T0, Instant::from_millis(10_000)).unwrap();
        take(&mut m);
        let r = reply(2, 5);
        assert_eq!(m.receive(&r[..3], T0), (3, None));
        let later = T0 + DEFAULT_FRAME_GAP + Duration::from_millis(1);
        assert_eq!(m.receive(&r, later).1, Some(Ok(&[0x0a][..])));
        assert_counted!(m.stats().link.dropped_stale, 1);
    }

    #[test]
    fn the_smallest_transmit_buffer_can_make_a_call() {
        let mut m = ClientMachine::<11, 9>::new();
        assert!(m.start(ADD, &(), T0, DEADLINE).is_ok());
    }
}
