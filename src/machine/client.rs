//! The client side: up to `W` calls in flight, each matched to its answer by
//! sequence number, retransmitted under the same number until answered or out
//! of time; stream items, one-way calls, cancels and events beside them.
//!
//! Invariants:
//! - A Reply, Status, Item or End is accepted only if its sequence number is that
//!   of a call in flight; any other is a late (or stray) answer, discarded and counted.
//! - No call is sent again into a session other than the one it was sent in: a
//!   link failure or a lost session ends every call sent in it, unknown.
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
use crate::wire::{
    Capabilities, Decoded, Feature, Features, Frame, HEADER_LEN, Status, encode_hello, encode_request, seq_after,
};

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
///
/// The policy shapes retransmission; it never shortens a call. A call lives
/// until its deadline ([`Client::set_timeout`](crate::Client::set_timeout)) while
/// the link is up: the first `attempts` sends follow the backoff schedule, and
/// after them the request is sent again every `attempt_timeout + max_backoff`
/// until the deadline, so a handler slower than `attempt_timeout` (a flash
/// erase, a motor move) is still answered, and so is a call whose answer was
/// lost. Only [`RetryPolicy::NONE`] (an infinite `attempt_timeout`) sends once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct RetryPolicy {
    /// Sends, the first included (0 counts as 1), spaced by the growing
    /// backoff; later sends, until the deadline, are `max_backoff` apart.
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

    /// A send every 250 ms without an answer, after 10, 20, 40 ms of backoff for
    /// the first four, then 200 ms, until the call's deadline.
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
    /// Answers discarded because no call with their sequence number was waiting,
    /// and repeats of items and events already delivered.
    pub late_replies: u32,
    /// Calls that ended by their deadline.
    pub timeouts: u32,
    /// Calls that ended because the link failed.
    pub link_failures: u32,
    /// Sessions opened (Welcome frames accepted).
    pub sessions: u32,
    /// Times the server had lost a session this client had: it restarted or dropped it.
    pub sessions_lost: u32,
    /// Calls that ended cancelled: never run, or streams stopped.
    pub cancelled: u32,
    /// Stream items received.
    pub items: u32,
    /// Events received.
    pub events: u32,
    /// Events that never arrived, by the gaps in their numbers.
    pub events_missed: u32,
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
        cancelled: 0,
        items: 0,
        events: 0,
        events_missed: 0,
    };
}

/// What a call is waiting for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Its request waits for the session to open.
    Queued,
    /// Its frame (request or cancel) is sent or being sent; waiting for the
    /// answer until `until`.
    Waiting { until: Instant },
    /// Waiting until `until` before sending again.
    Backoff { until: Instant },
}

/// What kind of call it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    /// One request, one answer.
    Unary,
    /// No answer: done once its frame is written.
    #[cfg(feature = "events")]
    OneWay,
    /// Items, then an End.
    #[cfg(feature = "streams")]
    Stream {
        /// The index the next item should have (items received, gaps included).
        next: u32,
        /// Items actually received.
        received: u32,
        /// The limit to grant the server.
        limit: u32,
        /// The limit last sent in a Credit.
        granted: u32,
        /// Credit kept ahead of what was received.
        credits: u32,
        /// A Credit frame is due.
        credit_due: bool,
    },
}

#[derive(Debug, Clone, Copy)]
struct Call {
    seq: u16,
    deadline: Instant,
    /// Sends of the current frame so far.
    attempts: u8,
    phase: Phase,
    /// Its frame is due to be sent (first send or retransmission).
    due: bool,
    /// A byte of its request frame has reached the link.
    frame_sent: bool,
    /// Re-asking a call that ended unknown: only a resumed session may answer it.
    resuming: bool,
    /// The client cancelled it: what is sent is a Cancel, not the request.
    cancelled: bool,
    /// How it ended, decided already (the link failed, the server lost the
    /// session it was sent in): reported at the next poll, never sent again.
    ended: Option<Error>,
    shape: Shape,
    /// For streams: how long the call may stay silent before it ends.
    #[cfg(feature = "streams")]
    idle: Duration,
}

impl Call {
    /// Decides how the call ends; it is reported at the next poll and nothing
    /// of it is sent again.
    fn end(&mut self, error: Error, now: Instant) {
        self.ended.get_or_insert(error);
        self.due = false;
        self.phase = Phase::Backoff { until: now };
        #[cfg(feature = "streams")]
        if let Shape::Stream { credit_due, .. } = &mut self.shape {
            *credit_due = false;
        }
    }
}

/// One call in flight and its request frame (`tx[0]` is a preamble byte).
struct Slot<const TX: usize> {
    tx: [u8; TX],
    tx_len: usize,
    call: Option<Call>,
}

impl<const TX: usize> Slot<TX> {
    const EMPTY: Self = Slot { tx: [PREAMBLE; TX], tx_len: 0, call: None };
}

#[derive(Debug, Clone, Copy)]
struct Session {
    boot_id: u32,
    window: u8,
    /// The optional parts the Welcome announced: none from a server that
    /// predates capabilities (PROTOCOL.md §4.1).
    features: Features,
    /// The longest decoded frame the server receives; `u32::MAX` if not announced.
    rx: u32,
}

impl Session {
    fn new(boot_id: u32, window: u8, caps: Option<Capabilities>) -> Self {
        match caps {
            Some(caps) => Session { boot_id, window, features: caps.features, rx: caps.rx },
            None => Session { boot_id, window, features: Features::NONE, rx: u32::MAX },
        }
    }

    const fn features(&self) -> Features {
        self.features
    }
}

#[derive(Debug, Clone, Copy)]
struct Handshake {
    seq: u16,
    until: Instant,
    due: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Out {
    Idle,
    /// `slots[slot].tx[from..tx_len]`; `from` is 0 with the preamble, 1 without.
    Request {
        slot: u8,
        from: u8,
    },
    /// `hello[from..hello_len]`.
    Hello {
        from: u8,
    },
    /// `ctl[from..ctl_len]`: a Cancel or a Credit.
    Control {
        from: u8,
    },
}

/// Bytes of the Hello buffer: a preamble and a Hello frame (12 bytes on the wire).
const HELLO: usize = 13;

/// Bytes of the control buffer: a preamble and the longest Cancel or Credit
/// frame (3 + 5 decoded bytes, CRC, COBS and delimiter: 12 bytes on the wire).
const CONTROL: usize = 13;

/// The smallest receive buffer a client can have: the longest decoded Welcome
/// frame (with capabilities, PROTOCOL.md §4.1).
const MIN_RX: usize = 26;

/// The smallest transmit buffer a client can have: a preamble and the shortest
/// request frame on the wire (6 decoded bytes, 1 of COBS overhead, the delimiter).
const MIN_TX: usize = 9;

/// What [`ClientMachine::receive`] delivers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Incoming<'a> {
    /// The call `seq` ended: the postcard-encoded value, or why not. (A one-way
    /// call that was sent ends without one.)
    Done {
        /// The call's sequence number.
        seq: u16,
        /// Its outcome.
        outcome: Result<&'a [u8], Error>,
    },
    /// An item of the stream call `seq`.
    Item {
        /// The call's sequence number.
        seq: u16,
        /// The item's index: 0 first. A gap means items were lost (counted in the End).
        index: u32,
        /// The postcard-encoded item.
        value: &'a [u8],
    },
    /// The stream call `seq` ended: its End arrived.
    End {
        /// The call's sequence number.
        seq: u16,
        /// What the server and the client counted.
        end: StreamEnd,
    },
    /// An event from the server.
    Event {
        /// The server's event number; gaps are counted in `events_missed`.
        seq: u16,
        /// The event's topic id.
        topic: u16,
        /// The postcard-encoded payload.
        payload: &'a [u8],
    },
}

impl<'a> Incoming<'a> {
    /// The outcome, if this says a call ended (`Done`).
    pub fn done(self) -> Option<Result<&'a [u8], Error>> {
        match self {
            Incoming::Done { outcome, .. } => Some(outcome),
            _ => None,
        }
    }
}

/// How a stream ended, as its End frame said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct StreamEnd {
    /// Items the server sent.
    pub sent: u32,
    /// Items that arrived; fewer than `sent` when some were lost on the way.
    pub received: u32,
    /// `None` when the handler ended the stream; [`Status::Cancelled`] when the
    /// client cancelled it, [`Status::Internal`] when an item did not fit the
    /// server's buffer.
    pub status: Option<Status>,
}

impl StreamEnd {
    /// Every item the server sent arrived, and the handler ended the stream.
    pub const fn is_complete(&self) -> bool {
        self.status.is_none() && self.received == self.sent
    }
}

/// The client protocol machine: `RX` bytes of receive buffer (largest decoded
/// answer: header, value and CRC), and `W` calls in flight (1 unless given)
/// each with `TX` bytes of transmit buffer (largest encoded request: COBS, CRC
/// and delimiter included, plus one preamble byte).
pub struct ClientMachine<const RX: usize, const TX: usize, const W: usize = 1> {
    rx: Receiver<RX>,
    slots: [Slot<TX>; W],
    hello: [u8; HELLO],
    hello_len: usize,
    control: [u8; CONTROL],
    control_len: usize,
    out: Out,
    /// Bytes of `outgoing()` already accepted by the link.
    sent: usize,
    client_id: u32,
    /// The next Hello opens a new life's session.
    fresh: bool,
    session: Option<Session>,
    handshake: Option<Handshake>,
    next_seq: u16,
    /// The call that last ended unknown and can be resumed, and its slot.
    resumable: Option<(u16, u8)>,
    policy: RetryPolicy,
    needs_preamble: bool,
    /// The latest time the machine was given.
    now: Instant,
    /// Whether requests carry their time budget (kind 6).
    #[cfg(feature = "deadlines")]
    budget_on_wire: bool,
    /// The number of the last event received.
    #[cfg(feature = "events")]
    last_event: Option<u16>,
    #[cfg(feature = "stats")]
    stats: ClientStats,
}

/// How a new call is sent.
#[derive(Clone, Copy)]
enum Send {
    Request,
    #[cfg(feature = "events")]
    OneWay,
    #[cfg(feature = "streams")]
    Stream {
        credits: u32,
    },
}

impl Send {
    /// The optional part of the protocol the server must have for it.
    const fn needs(self) -> Option<Feature> {
        match self {
            Send::Request => None,
            #[cfg(feature = "events")]
            Send::OneWay => Some(Feature::Events),
            #[cfg(feature = "streams")]
            Send::Stream { .. } => Some(Feature::Streams),
        }
    }
}

impl Shape {
    /// The optional part of the protocol the server must have for it.
    const fn needs(self) -> Option<Feature> {
        match self {
            Shape::Unary => None,
            #[cfg(feature = "events")]
            Shape::OneWay => Some(Feature::Events),
            #[cfg(feature = "streams")]
            Shape::Stream { .. } => Some(Feature::Streams),
        }
    }
}

/// Whether the server of `session` can take a call that needs `needs`, whose
/// encoded request frame is `frame` (PROTOCOL.md §4.1).
fn session_allows(session: Session, needs: Option<Feature>, frame: &[u8]) -> Result<(), Error> {
    if let Some(feature) = needs {
        if !session.features().has(feature) {
            return Err(Error::Unsupported(feature));
        }
    }
    let len = crate::wire::decoded_len(frame);
    if len > session.rx as usize {
        let len = u16::try_from(len).unwrap_or(u16::MAX);
        return Err(Error::TooLargeForServer { len, max: u16::try_from(session.rx).unwrap_or(u16::MAX) });
    }
    Ok(())
}

impl<const RX: usize, const TX: usize, const W: usize> ClientMachine<RX, TX, W> {
    /// A client with id 0 whose first frame uses sequence number 0.
    pub const fn new() -> Self {
        Self::with_identity(0, 0)
    }

    /// A client with `client_id` (reported to the server, for diagnostics) whose
    /// first frame uses sequence number `first_seq`.
    pub const fn with_identity(client_id: u32, first_seq: u16) -> Self {
        const { assert!(RX >= MIN_RX, "a client's RX buffer must hold a decoded Welcome frame (26 bytes)") };
        const { assert!(TX >= MIN_TX, "a client's TX buffer must hold a preamble and a request frame (9 bytes)") };
        const { assert!(W >= 1 && W <= 32, "a client has 1 to 32 calls in flight") };
        ClientMachine {
            rx: Receiver::new(),
            slots: [const { Slot::EMPTY }; W],
            hello: [PREAMBLE; HELLO],
            hello_len: 0,
            control: [PREAMBLE; CONTROL],
            control_len: 0,
            out: Out::Idle,
            sent: 0,
            client_id,
            fresh: true,
            session: None,
            handshake: None,
            next_seq: first_seq,
            resumable: None,
            policy: RetryPolicy::DEFAULT,
            needs_preamble: true,
            now: Instant::ZERO,
            #[cfg(feature = "deadlines")]
            budget_on_wire: false,
            #[cfg(feature = "events")]
            last_event: None,
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

    /// Calls in flight.
    pub fn in_flight(&self) -> usize {
        self.slots.iter().filter(|s| s.call.is_some()).count()
    }

    /// How many calls may be in flight at once: `W`, or fewer if the server's
    /// window (from its Welcome) is smaller.
    pub fn window(&self) -> usize {
        self.session.map_or(W, |s| W.min(usize::from(s.window.max(1))))
    }

    /// Whether no further call can start until one ends: `window` calls are in
    /// flight, or the next number would be `window` or more after the oldest
    /// call in flight (the server caches the answers of its newest `window`
    /// numbers, so an older call's answer could be gone before it arrives).
    pub fn is_busy(&self) -> bool {
        let window = self.window();
        let spread = self
            .slots
            .iter()
            .filter_map(|s| s.call)
            .map(|c| usize::from(self.next_seq.wrapping_sub(c.seq)))
            .max()
            .unwrap_or(0);
        self.in_flight() >= window || spread >= window
    }

    /// Whether the call `seq` is in flight.
    pub fn is_in_flight(&self, seq: u16) -> bool {
        self.slots.iter().any(|s| s.call.is_some_and(|c| c.seq == seq))
    }

    /// Whether the last call that ended unknown can be [resumed](Self::resume).
    pub const fn can_resume(&self) -> bool {
        self.resumable.is_some()
    }

    /// Starts a call: encodes the request for `method` with `args` (a tuple), to
    /// be answered by `deadline`, and returns its sequence number. What to send
    /// is then in [`outgoing`](Self::outgoing): a Hello first if no session is open.
    ///
    /// # Errors
    /// Nothing is sent in either case: [`Error::Busy`] if [`window`](Self::window)
    /// calls are in flight, [`Error::RequestTooLarge`] if the request does not fit `TX`.
    pub fn start<A: Serialize + ?Sized>(
        &mut self,
        method: Method,
        args: &A,
        now: Instant,
        deadline: Instant,
    ) -> Result<u16, Error> {
        self.begin_call(method, args, now, deadline, Send::Request)
    }

    /// Starts a one-way call (feature `events`): its request is sent once,
    /// never answered, and the call ends once the link took the whole frame
    /// ([`is_in_flight`](Self::is_in_flight) turns false; no [`Incoming::Done`]
    /// comes for it unless it fails first, as [`poll`](Self::poll) reports).
    /// Opens a session first if none is open.
    ///
    /// # Errors
    /// As [`start`](Self::start).
    #[cfg(feature = "events")]
    pub fn start_oneway<A: Serialize + ?Sized>(
        &mut self,
        method: Method,
        args: &A,
        now: Instant,
        deadline: Instant,
    ) -> Result<u16, Error> {
        self.begin_call(method, args, now, deadline, Send::OneWay)
    }

    /// Starts a stream call (feature `streams`): the server may send `credits`
    /// items ahead of those received (at least 1); each item arrives as
    /// [`Incoming::Item`], the end as [`Incoming::End`]. The stream ends
    /// unknown if nothing arrives for `deadline - now`; every item restarts
    /// that time.
    ///
    /// # Errors
    /// As [`start`](Self::start).
    #[cfg(feature = "streams")]
    pub fn start_stream<A: Serialize + ?Sized>(
        &mut self,
        method: Method,
        args: &A,
        credits: u32,
        now: Instant,
        deadline: Instant,
    ) -> Result<u16, Error> {
        self.begin_call(method, args, now, deadline, Send::Stream { credits: credits.max(1) })
    }

    fn begin_call<A: Serialize + ?Sized>(
        &mut self,
        method: Method,
        args: &A,
        now: Instant,
        deadline: Instant,
        send: Send,
    ) -> Result<u16, Error> {
        if self.is_busy() {
            return Err(Error::Busy);
        }
        // A free slot, preferably not the one a resumable call still needs.
        let keep = self.resumable.map(|(_, slot)| usize::from(slot));
        // Never the slot whose frame is still being written (its call ended meanwhile).
        let writing = match self.out {
            Out::Request { slot, .. } => Some(usize::from(slot)),
            _ => None,
        };
        let i = (0..W)
            .filter(|&i| self.slots.get(i).is_some_and(|s| s.call.is_none()) && Some(i) != writing)
            .min_by_key(|&i| Some(i) == keep)
            .ok_or(Error::Busy)?;
        if let (Some(session), Some(feature)) = (self.session, send.needs()) {
            if !session.features().has(feature) {
                return Err(Error::Unsupported(feature));
            }
        }
        if keep == Some(i) {
            // The request is written over the frame of the call that could be
            // resumed: that call can no longer be, whether this one starts or not.
            self.resumable = None;
        }
        // A Hello, if one is needed, takes the number before the request's.
        let needs_hello = self.session.is_none() && self.handshake.is_none();
        let seq = if needs_hello { self.next_seq.wrapping_add(1) } else { self.next_seq };
        let slot = self.slots.get_mut(i).ok_or(Error::Busy)?;
        let body = slot.tx.get_mut(1..).unwrap_or(&mut []);
        let frame = match send {
            #[cfg(feature = "events")]
            Send::OneWay => crate::wire::encode_oneway(seq, method.id, args, body),
            #[cfg(feature = "deadlines")]
            // Before the Welcome the server's capabilities are unknown: the frame
            // is made timed and made plain when the Welcome says so (`welcome`).
            _ if self.budget_on_wire && self.session.is_none_or(|s| s.features().has(Feature::TimedRequests)) => {
                // Retransmissions repeat these bytes: the budget is the one at the
                // start, so a server may see more time than is left (never less).
                let left = deadline.saturating_duration_since(now);
                let budget = left.as_secs().saturating_mul(1000).saturating_add(u64::from(left.subsec_millis()));
                crate::wire::encode_timed_request(seq, method.id, u32::try_from(budget).unwrap_or(u32::MAX), args, body)
            }
            _ => encode_request(seq, method.id, args, body),
        };
        let frame_len = frame.map_err(|_| Error::RequestTooLarge)?.len();
        slot.tx_len = 1 + frame_len;
        if let Some(session) = self.session {
            // Refused here, nothing sent, if the server cannot take it (§4.1).
            session_allows(session, send.needs(), slot.tx.get(1..slot.tx_len).unwrap_or(&[]))?;
        }
        let shape = match send {
            Send::Request => Shape::Unary,
            #[cfg(feature = "events")]
            Send::OneWay => Shape::OneWay,
            #[cfg(feature = "streams")]
            Send::Stream { credits } => {
                Shape::Stream { next: 0, received: 0, limit: credits, granted: 0, credits, credit_due: true }
            }
        };
        slot.call = Some(Call {
            seq,
            deadline,
            attempts: 0,
            phase: Phase::Queued,
            // Made due when the window has room for it (`promote`).
            due: false,
            frame_sent: false,
            resuming: false,
            cancelled: false,
            ended: None,
            shape,
            #[cfg(feature = "streams")]
            idle: deadline.saturating_duration_since(now),
        });
        if needs_hello {
            self.open_session(self.next_seq, now);
        }
        self.next_seq = seq.wrapping_add(1);
        count!(self.stats.calls);
        wc_debug!("call seq={} method={} len={}", seq, method.id, frame_len);
        self.release(now);
        Ok(seq)
    }

    /// Asks again, under its own sequence number, for the answer to the last call
    /// that ended with its outcome unknown. The server answers from its cache if
    /// the call ran, runs it if it never arrived, and otherwise says it cannot
    /// tell; it never runs it twice. What to send is then in [`outgoing`](Self::outgoing).
    ///
    /// # Errors
    /// [`Error::Busy`] if no call can start, [`Error::NothingToResume`] if no call
    /// ended unknown since the last one started in its place.
    pub fn resume(&mut self, now: Instant, deadline: Instant) -> Result<u16, Error> {
        if self.is_busy() {
            return Err(Error::Busy);
        }
        let (seq, i) = self.resumable.ok_or(Error::NothingToResume)?;
        if usize::from(self.next_seq.wrapping_sub(seq)) >= 0x8000 - 32 {
            // So old that the server would take its number for a new one.
            self.resumable = None;
            return Err(Error::NothingToResume);
        }
        let slot = self.slots.get_mut(usize::from(i)).ok_or(Error::NothingToResume)?;
        if slot.call.is_some() {
            return Err(Error::Busy);
        }
        self.resumable = None;
        slot.call = Some(Call {
            seq,
            deadline,
            attempts: 0,
            phase: Phase::Queued,
            // Made due when the window has room for it (`promote`).
            due: false,
            frame_sent: true,
            resuming: true,
            cancelled: false,
            ended: None,
            shape: Shape::Unary,
            #[cfg(feature = "streams")]
            idle: deadline.saturating_duration_since(now),
        });
        count!(self.stats.calls);
        if self.session.is_none() && self.handshake.is_none() {
            self.open_session(self.next_seq, now);
            self.next_seq = self.next_seq.wrapping_add(1);
        }
        self.release(now);
        Ok(seq)
    }

    /// Cancels the call `seq` (feature `cancel`). A call none of whose bytes
    /// were sent ends at once, not executed ([`Error::Cancelled`], returned
    /// by the next [`poll`](Self::poll)). Otherwise a Cancel goes to the server
    /// in place of the request, and the call ends with the server's final
    /// answer: CANCELLED (it never ran and never will), its value (it had
    /// already run: cancelling rolls nothing back), a stream's End counting
    /// the items sent, or an unknown outcome if no answer comes by the deadline.
    ///
    /// Returns `false` if no such call is in flight, or if its request was
    /// sent and the server's Welcome does not announce Cancel (PROTOCOL.md
    /// §4.1): the server cannot be told, and the call goes on to its answer.
    #[cfg(feature = "cancel")]
    pub fn cancel(&mut self, seq: u16, now: Instant) -> bool {
        let Some(call) = self.slots.iter_mut().filter_map(|s| s.call.as_mut()).find(|c| c.seq == seq) else {
            return false;
        };
        let unsent = !call.frame_sent && !call.resuming;
        if !unsent && self.session.is_some_and(|s| !s.features().has(Feature::Cancel)) {
            // The server cannot be told (§4.1): the call goes on to its answer.
            return false;
        }
        if !call.cancelled {
            call.cancelled = true;
            call.attempts = 0;
            if unsent {
                // No byte of its frame left: it ends at the next poll, not executed,
                // and its request, if it waits in `outgoing`, is withdrawn.
                let seq = call.seq;
                call.end(Error::Cancelled, now);
                count!(self.stats.cancelled);
                if let Out::Request { slot, .. } = self.out {
                    if self.slots.get(usize::from(slot)).and_then(|s| s.call).is_some_and(|c| c.seq == seq) {
                        // At most its preamble went: the stream is between frames.
                        self.set_out(Out::Idle);
                    }
                }
            } else if call.phase != Phase::Queued {
                call.due = true;
                call.phase = Phase::Backoff { until: now };
            }
        }
        self.release(now);
        true
    }

    /// Sends the Hello `seq` that opens a session.
    fn open_session(&mut self, seq: u16, now: Instant) {
        let body = self.hello.get_mut(1..).unwrap_or(&mut []);
        self.hello_len = 1 + encode_hello(seq, self.client_id, self.fresh, body).map_or(0, <[u8]>::len);
        let until = self.attempt_end(now, self.latest_deadline(now));
        self.handshake = Some(Handshake { seq, until, due: true });
    }

    /// The latest deadline of the calls in flight.
    fn latest_deadline(&self, now: Instant) -> Instant {
        self.slots.iter().filter_map(|s| s.call).map(|c| c.deadline).max().unwrap_or(now)
    }

    /// When an attempt started `now` stops waiting: its timeout, or `deadline`.
    fn attempt_end(&self, now: Instant, deadline: Instant) -> Instant {
        now.plus_micros(duration_micros(self.policy.attempt_timeout)).min(deadline)
    }

    /// With nothing being sent: chooses the next frame to send, if any.
    fn release(&mut self, now: Instant) {
        self.now = now;
        if self.out != Out::Idle {
            return;
        }
        let from = u8::from(!self.needs_preamble);
        if let Some(h) = &mut self.handshake {
            if h.due {
                h.due = false;
                self.needs_preamble = false;
                self.set_out(Out::Hello { from });
                count!(self.stats.link.frames_out);
            }
            return;
        }
        if self.session.is_none() {
            return;
        }
        self.promote(now);
        let policy_timeout = duration_micros(self.policy.attempt_timeout);
        for i in 0..W {
            let Some(slot) = self.slots.get_mut(i) else { break };
            let Some(call) = &mut slot.call else { continue };
            if call.due {
                call.due = false;
                if call.attempts > 0 {
                    count!(self.stats.retries);
                }
                call.attempts = call.attempts.saturating_add(1);
                call.phase = Phase::Waiting { until: now.plus_micros(policy_timeout).min(call.deadline) };
                self.needs_preamble = false;
                count!(self.stats.link.frames_out);
                if call.cancelled {
                    let body = self.control.get_mut(1..).unwrap_or(&mut []);
                    self.control_len = 1 + crate::wire::encode_cancel(call.seq, body).map_or(0, <[u8]>::len);
                    self.set_out(Out::Control { from });
                } else {
                    // A stream's credit goes out right after its request.
                    #[cfg(feature = "streams")]
                    if let Shape::Stream { credit_due, .. } = &mut call.shape {
                        *credit_due = true;
                    }
                    self.set_out(Out::Request { slot: i as u8, from });
                }
                return;
            }
            #[cfg(feature = "streams")]
            if let Shape::Stream { limit, granted, credit_due: due @ true, .. } = &mut call.shape {
                if call.cancelled || call.phase == Phase::Queued {
                    continue;
                }
                *due = false;
                *granted = *limit;
                let body = self.control.get_mut(1..).unwrap_or(&mut []);
                self.control_len = 1 + crate::wire::encode_credit(call.seq, *limit, body).map_or(0, <[u8]>::len);
                self.needs_preamble = false;
                count!(self.stats.link.frames_out);
                self.set_out(Out::Control { from });
                return;
            }
        }
    }

    fn set_out(&mut self, out: Out) {
        self.out = out;
        self.sent = 0;
    }

    /// Bytes not yet accepted by the link.
    pub fn outgoing(&self) -> &[u8] {
        let (buf, from, len): (&[u8], u8, usize) = match self.out {
            Out::Idle => return &[],
            Out::Request { slot, from } => match self.slots.get(usize::from(slot)) {
                Some(s) => (&s.tx, from, s.tx_len),
                None => return &[],
            },
            Out::Hello { from } => (&self.hello, from, self.hello_len),
            Out::Control { from } => (&self.control, from, self.control_len),
        };
        buf.get(usize::from(from).saturating_add(self.sent)..len).unwrap_or(&[])
    }

    /// Records that the link accepted the first `n` bytes of [`outgoing`](Self::outgoing).
    pub fn wrote(&mut self, n: usize) {
        let n = n.min(self.outgoing().len());
        self.sent += n;
        if let Out::Request { slot, from } = self.out {
            // Byte 0 of `tx` is the preamble; the frame starts at 1.
            if let Some(call) = self.slots.get_mut(usize::from(slot)).and_then(|s| s.call.as_mut()) {
                call.frame_sent |= n > 0 && usize::from(from) + self.sent > 1;
            }
        }
        if self.outgoing().is_empty() {
            #[cfg(feature = "events")]
            if let Out::Request { slot, .. } = self.out {
                if let Some(s) = self.slots.get_mut(usize::from(slot)) {
                    if let Some(Call { shape: Shape::OneWay, .. }) = s.call {
                        // Sent: a one-way call has nothing more to wait for.
                        s.call = None;
                    }
                }
            }
            self.set_out(Out::Idle);
            // The next frame's attempt starts at the last time the machine was told.
            self.release(self.now);
        }
    }

    /// When [`poll`](Self::poll) next has something to do, if anything is in flight.
    pub fn poll_at(&self) -> Option<Instant> {
        let calls = self.slots.iter().filter_map(|s| s.call).map(|c| match c.phase {
            Phase::Queued => c.deadline,
            Phase::Waiting { until } | Phase::Backoff { until } => until,
        });
        let handshake = self.handshake.map(|h| h.until);
        calls.chain(handshake).min()
    }

    /// Advances timers: sends again what an attempt got no answer to, as the
    /// policy allows, and ends a call whose deadline has passed. Returns one
    /// ended call and its error per invocation: call it until it returns `None`.
    pub fn poll(&mut self, now: Instant) -> Option<(u16, Error)> {
        let result = self.poll_timers(now);
        self.release(now);
        result
    }

    fn poll_timers(&mut self, now: Instant) -> Option<(u16, Error)> {
        if let Some(ended) = self.take_failed() {
            return Some(ended);
        }
        if let Some(h) = self.handshake {
            if now >= h.until {
                // Calls whose time is up end; the Hello goes again if any is left.
                for i in 0..W {
                    let Some(call) = self.slots.get(i).and_then(|s| s.call) else { continue };
                    if call.phase == Phase::Queued && now >= call.deadline {
                        // The request never left unless an earlier session sent it.
                        let error = if call.resuming { Error::Timeout } else { Error::Unreachable };
                        return Some((call.seq, self.end_with_timeout(i, error)));
                    }
                }
                if self.in_flight() > 0 {
                    count!(self.stats.retries);
                    self.needs_preamble = true;
                    let until = self.attempt_end(now, self.latest_deadline(now));
                    self.handshake = Some(Handshake { seq: h.seq, until, due: true });
                } else {
                    self.handshake = None;
                }
            }
        }
        let attempts = self.policy.attempts.max(1);
        for i in 0..W {
            let Some(call) = self.slots.get(i).and_then(|s| s.call) else { continue };
            if call.phase == Phase::Queued && self.handshake.is_none() && now >= call.deadline {
                // Its time ran out while it waited for room in the window: never sent.
                let error = if call.resuming { Error::Timeout } else { Error::NotSent };
                return Some((call.seq, self.end_with_timeout(i, error)));
            }
            let (Phase::Waiting { until } | Phase::Backoff { until }) = call.phase else { continue };
            if now < until {
                continue;
            }
            let time_left = now < call.deadline;
            match call.phase {
                Phase::Waiting { .. } if time_left => {
                    // Attempts shape retransmission, never the call's life: once
                    // they are spent the call keeps resending, `max_backoff` apart,
                    // until its deadline, so a slow handler's or a lost answer is
                    // still recovered (PROTOCOL.md §8.4).
                    let wait = if call.attempts < attempts {
                        self.policy.backoff_after(call.attempts)
                    } else {
                        duration_micros(self.policy.max_backoff)
                    };
                    self.set_phase(i, Phase::Backoff { until: now.plus_micros(wait).min(call.deadline) });
                }
                Phase::Backoff { .. } if time_left && (call.frame_sent || !call.cancelled) => {
                    if let Some(c) = self.slots.get_mut(i).and_then(|s| s.call.as_mut()) {
                        c.due = true;
                        c.phase = Phase::Waiting { until: now };
                        // A stream that has items resends its credit, not its request:
                        // the credit also asks a server whose stream ended for the End.
                        #[cfg(feature = "streams")]
                        if let Shape::Stream { received, next, credit_due, limit, credits, .. } = &mut c.shape {
                            // Nothing came for a whole attempt: the items it waited for may
                            // have been lost. More credit lets the server go on past them
                            // (the same limit again would leave it waiting).
                            if !c.cancelled {
                                *limit = limit.saturating_add(*credits);
                            }
                            if (*received > 0 || *next > 0) && !c.cancelled {
                                c.due = false;
                                c.attempts = c.attempts.saturating_add(1);
                                *credit_due = true;
                                c.phase = Phase::Waiting {
                                    until: now
                                        .plus_micros(duration_micros(self.policy.attempt_timeout))
                                        .min(c.deadline),
                                };
                            }
                        }
                    }
                    self.needs_preamble = true;
                }
                _ => {
                    let error = if call.frame_sent { Error::Timeout } else { Error::NotSent };
                    return Some((call.seq, self.end_with_timeout(i, error)));
                }
            }
        }
        None
    }

    fn set_phase(&mut self, i: usize, phase: Phase) {
        if let Some(call) = self.slots.get_mut(i).and_then(|s| s.call.as_mut()) {
            call.phase = phase;
        }
    }

    fn end_with_timeout(&mut self, i: usize, error: Error) -> Error {
        count!(self.stats.timeouts);
        wc_warn!("call timed out");
        self.needs_preamble = true;
        self.finish(i, error)
    }

    /// Ends the call in slot `i` with `error`, keeping it resumable if its outcome
    /// is unknown.
    fn finish(&mut self, i: usize, error: Error) -> Error {
        if let Some(call) = self.slots.get_mut(i).and_then(|s| s.call.take()) {
            if error.executed() == crate::Executed::Maybe && call.frame_sent && call.shape == Shape::Unary {
                self.resumable = Some((call.seq, i as u8));
            }
        }
        if let Out::Request { slot, from } = self.out {
            if usize::from(slot) == i {
                if usize::from(from) + self.sent > 1 {
                    // Part of its frame is in the link: the rest follows, so the
                    // stream stays whole (the call ended unknown, whatever comes).
                    return error;
                }
                // None of it left (at most the preamble): withdrawn, so an outcome
                // of "not sent" stays true.
                self.set_out(Out::Idle);
            }
        }
        if self.in_flight() == 0 {
            self.handshake = None;
        }
        error
    }

    /// Ends the calls in flight because the link failed or closed, and returns
    /// how the first (in slot order) ended: [`Error::NotSent`] if no byte of its
    /// request frame ever reached the link, [`Error::LinkLost`] otherwise.
    /// Returns `None` if no call was in flight. With more than one call in
    /// flight, [`take_failed`](Self::take_failed) ends the others. The session
    /// must be confirmed again before the next call.
    pub fn link_failed(&mut self) -> Option<Error> {
        self.fail_link();
        let (_, error) = self.take_failed()?;
        Some(error)
    }

    /// Notes that the link failed or closed: the session must be confirmed
    /// again, and every call in flight ends ([`Error::NotSent`] if no byte of
    /// its request reached the link, [`Error::LinkLost`] otherwise), reported
    /// one per [`take_failed`](Self::take_failed) or [`poll`](Self::poll). None
    /// of them is sent again, whatever session comes next.
    pub fn fail_link(&mut self) {
        self.session = None;
        self.handshake = None;
        self.needs_preamble = true;
        self.rx.decoder.reset();
        self.set_out(Out::Idle);
        let now = self.now;
        for slot in &mut self.slots {
            if let Some(call) = &mut slot.call {
                count!(self.stats.link_failures);
                call.end(if call.frame_sent { Error::LinkLost } else { Error::NotSent }, now);
            }
        }
        wc_warn!("link failed");
    }

    /// Ends the next call whose end is decided (by [`fail_link`](Self::fail_link),
    /// or a session the server lost), returning its number and how it ended.
    pub fn take_failed(&mut self) -> Option<(u16, Error)> {
        let i = self.slots.iter().position(|s| s.call.is_some_and(|c| c.ended.is_some()))?;
        let call = self.slots.get(i).and_then(|s| s.call)?;
        let error = call.ended?;
        Some((call.seq, self.finish(i, error)))
    }

    /// Ends the call `seq` now if its end is decided, returning how.
    pub fn take_failed_call(&mut self, seq: u16) -> Option<Error> {
        let i = self.slots.iter().position(|s| s.call.is_some_and(|c| c.seq == seq && c.ended.is_some()))?;
        let error = self.slots.get(i).and_then(|s| s.call).and_then(|c| c.ended)?;
        Some(self.finish(i, error))
    }

    /// Feeds received bytes. Stops at the first thing to deliver (a call's end,
    /// a stream item, an event) and returns the bytes consumed and what
    /// arrived. Feed the unconsumed rest later; nothing is lost. A Welcome may
    /// put requests in [`outgoing`](Self::outgoing).
    pub fn receive(&mut self, input: &[u8], now: Instant) -> (usize, Option<Incoming<'_>>) {
        if self.rx.arrive(input, now) {
            count!(self.stats.link.dropped_stale);
        }
        let mut consumed = 0;
        while consumed < input.len() {
            let (used, event) = self.rx.decoder.feed(input.get(consumed..).unwrap_or(&[]));
            consumed += used;
            let Some(event) = event else { break };
            let delivered = self.accept(event, now);
            self.release(now);
            if let Some(delivered) = delivered {
                let frame = self.rx.decoder.frame();
                return (consumed, Some(delivered.resolve(frame)));
            }
        }
        (consumed, None)
    }

    /// Counts one decoder event and acts on it; says what to deliver.
    fn accept(&mut self, event: Decoded, now: Instant) -> Option<Deliver> {
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
        if let Frame::Request { .. } | Frame::Hello { .. } | Frame::Cancel { .. } | Frame::Credit { .. } = frame {
            count!(self.stats.link.dropped_kind);
            return None;
        }
        // A Welcome's capabilities are one of its fields: malformed, it is dropped (§7 row 7).
        let welcome = match frame {
            Frame::Welcome { caps, .. } => match caps.get() {
                Ok(caps) => Some(caps),
                Err(error) => {
                    count_link!(self.stats.link, count_parse_error(error));
                    return None;
                }
            },
            _ => None,
        };
        #[cfg(feature = "stats")]
        crate::stats::bump(if oversized {
            &mut self.stats.link.dropped_too_long
        } else {
            &mut self.stats.link.frames_in
        });
        if let Frame::Welcome { seq, boot_id, resumed, window, .. } = frame {
            return self.welcome(seq, Session::new(boot_id, window, welcome.flatten()), resumed, now);
        }
        #[cfg(feature = "events")]
        if let Frame::Event { seq, topic, .. } = frame {
            if oversized {
                return None;
            }
            if self.last_event == Some(seq) {
                // The same event again (a duplicated frame): delivered once. (A
                // restarted server numbers its events from 0 again; its first event
                // is taken for a repeat only if it has the number of the last one.)
                count!(self.stats.late_replies);
                return None;
            }
            #[cfg(feature = "stats")]
            if let Some(last) = self.last_event {
                let gap = seq.wrapping_sub(last).wrapping_sub(1);
                if gap < 0x8000 {
                    self.stats.events_missed = self.stats.events_missed.saturating_add(u32::from(gap));
                }
            }
            self.last_event = Some(seq);
            count!(self.stats.events);
            return Some(Deliver::Event { seq, topic });
        }
        let seq = frame.seq();
        let found = self.slots.iter().position(|s| s.call.is_some_and(|c| c.seq == seq && c.phase != Phase::Queued));
        let Some(i) = found else {
            count!(self.stats.late_replies);
            wc_debug!("late answer seq={} discarded", seq);
            return None;
        };
        let _call = self.slots.get(i).and_then(|s| s.call)?;
        match frame {
            Frame::Reply { .. } => {
                let outcome = if oversized { Err(self.finish(i, Error::ReplyTooLarge)) } else { self.finish_ok(i) };
                Some(Deliver::Done { seq, error: outcome.err() })
            }
            Frame::Status { status, .. } => {
                if status == Status::FailedPrecondition {
                    // The server has no session for us: it restarted. Every other call
                    // sent in that session went with it: none may be sent again in a new
                    // one, where it could run a second time. They end unknown.
                    self.session = None;
                    count!(self.stats.sessions_lost);
                    for (j, slot) in self.slots.iter_mut().enumerate() {
                        if let Some(c) = slot.call.as_mut().filter(|c| j != i && c.phase != Phase::Queued) {
                            c.end(Error::SessionLost, now);
                        }
                    }
                }
                if status == Status::Cancelled {
                    count!(self.stats.cancelled);
                }
                Some(Deliver::Done { seq, error: Some(self.finish(i, Error::Status(status))) })
            }
            #[cfg(feature = "streams")]
            Frame::Item { index, .. } => {
                let call = _call;
                let Shape::Stream { next, received, limit, granted, credits, credit_due } = call.shape else {
                    count!(self.stats.late_replies);
                    return None;
                };
                if oversized {
                    // Too long to deliver: lost (the End's count shows it).
                    return None;
                }
                if index < next {
                    // A repeat of an item already delivered.
                    count!(self.stats.late_replies);
                    return None;
                }
                count!(self.stats.items);
                let new_limit = index.saturating_add(1).saturating_add(credits);
                let until = self.attempt_end(now, now + call.idle);
                if let Some(c) = self.slots.get_mut(i).and_then(|s| s.call.as_mut()) {
                    c.deadline = now + c.idle;
                    c.attempts = 0;
                    if !c.cancelled {
                        c.phase = Phase::Waiting { until };
                    }
                    let limit = limit.max(new_limit);
                    c.shape = Shape::Stream {
                        next: index.saturating_add(1),
                        received: received.saturating_add(1),
                        limit,
                        granted,
                        credits,
                        // Batches credit: a Credit frame once half the window is used.
                        credit_due: credit_due || limit.saturating_sub(granted) >= credits.div_ceil(2),
                    };
                }
                Some(Deliver::Item { seq, index })
            }
            #[cfg(feature = "streams")]
            Frame::End { status, items, .. } => {
                let Shape::Stream { received, .. } = _call.shape else {
                    count!(self.stats.late_replies);
                    return None;
                };
                if status == Some(Status::Cancelled) {
                    count!(self.stats.cancelled);
                }
                let _ = self.finish_ok(i);
                Some(Deliver::End { seq, end: StreamEnd { sent: items, received, status } })
            }
            _ => {
                count!(self.stats.late_replies);
                None
            }
        }
    }

    /// A Welcome: opens the session if it answers our Hello.
    fn welcome(&mut self, seq: u16, session: Session, resumed: bool, now: Instant) -> Option<Deliver> {
        match self.handshake {
            Some(h) if h.seq == seq => {}
            _ => {
                count!(self.stats.late_replies);
                return None;
            }
        }
        count!(self.stats.sessions);
        if !resumed {
            // The server no longer holds the session the resumable call was made in:
            // resumed into this one, it could run a second time.
            self.resumable = None;
            if !self.fresh {
                count!(self.stats.sessions_lost);
            }
        }
        self.fresh = false;
        self.handshake = None;
        self.session = Some(session);
        wc_debug!("session open: boot={} resumed={}", session.boot_id, resumed);
        let mut lost = None;
        for i in 0..W {
            let Some(slot) = self.slots.get_mut(i) else { continue };
            let Some(call) = slot.call.as_mut() else { continue };
            if call.ended.is_some() {
                continue;
            }
            if call.phase == Phase::Queued && !call.frame_sent && !call.resuming {
                // Never sent: made what this server can take, or refused (§4.1).
                #[cfg(feature = "deadlines")]
                if !session.features().has(Feature::TimedRequests)
                    && crate::wire::encoded_kind(slot.tx.get(1..slot.tx_len).unwrap_or(&[]))
                        == Some(crate::wire::Kind::TimedRequest)
                {
                    // Sent as a plain Request: the budget is advice.
                    let frame = slot.tx.get_mut(1..slot.tx_len).unwrap_or(&mut []);
                    match crate::wire::strip_budget(frame) {
                        Some(len) => slot.tx_len = 1 + len,
                        None => {
                            call.end(Error::RequestTooLarge, now);
                            continue;
                        }
                    }
                }
                let frame = slot.tx.get(1..slot.tx_len).unwrap_or(&[]);
                if let Err(error) = session_allows(session, call.shape.needs(), frame) {
                    call.end(error, now);
                    continue;
                }
            }
            if call.cancelled && !session.features().has(Feature::Cancel) && (call.frame_sent || call.resuming) {
                // Cancelled before this Welcome, which does not announce Cancel:
                // the server cannot be told, and the call goes on to its answer.
                call.cancelled = false;
            }
            if !resumed && (call.resuming || call.phase != Phase::Queued) {
                // The server no longer knows this call; it must not run it blindly.
                if lost.is_none() {
                    lost = Some((i, call.seq));
                } else {
                    call.end(Error::SessionLost, now);
                }
            }
        }
        // The queued calls go out as the window allows (`release`).
        let (i, seq) = lost?;
        Some(Deliver::Done { seq, error: Some(self.finish(i, Error::SessionLost)) })
    }

    /// Makes queued calls due, oldest first, while the window allows: no more
    /// than `window` in flight, none `window` or more numbers after the oldest.
    fn promote(&mut self, now: Instant) {
        let window = self.window();
        loop {
            let active = self.slots.iter().filter_map(|s| s.call).filter(|c| c.phase != Phase::Queued);
            let (count, oldest) = active.fold((0usize, None::<u16>), |(n, old), c| {
                (n + 1, Some(old.map_or(c.seq, |o| if seq_after(o, c.seq) { c.seq } else { o })))
            });
            if count >= window {
                return;
            }
            let next = self.next_seq;
            let queued = self
                .slots
                .iter_mut()
                .filter_map(|s| s.call.as_mut())
                .filter(|c| c.phase == Phase::Queued && c.ended.is_none())
                .min_by_key(|c| c.seq.wrapping_sub(next));
            let Some(call) = queued else { return };
            if oldest.is_some_and(|o| usize::from(call.seq.wrapping_sub(o)) >= window) {
                return;
            }
            call.phase = Phase::Waiting { until: now };
            call.due = true;
        }
    }

    /// Counts a retry the driver made as a new call.
    pub fn count_retry(&mut self) {
        count!(self.stats.retries);
    }

    fn finish_ok(&mut self, i: usize) -> Result<(), Error> {
        if let Some(s) = self.slots.get_mut(i) {
            s.call = None;
        }
        if self.in_flight() == 0 {
            self.handshake = None;
        }
        Ok(())
    }
}

/// What [`ClientMachine::accept`] found, before it borrows the frame.
enum Deliver {
    Done {
        seq: u16,
        error: Option<Error>,
    },
    #[cfg(feature = "streams")]
    Item {
        seq: u16,
        index: u32,
    },
    #[cfg(feature = "streams")]
    End {
        seq: u16,
        end: StreamEnd,
    },
    #[cfg(feature = "events")]
    Event {
        seq: u16,
        topic: u16,
    },
}

impl Deliver {
    /// What to hand out, with the payload borrowed from the decoded `frame`.
    fn resolve(self, frame: &[u8]) -> Incoming<'_> {
        let payload = || match Frame::parse(frame) {
            Ok(Frame::Reply { value, .. }) => value,
            #[cfg(feature = "streams")]
            Ok(Frame::Item { value, .. }) => value,
            #[cfg(feature = "events")]
            Ok(Frame::Event { payload, .. }) => payload,
            _ => &[],
        };
        match self {
            Deliver::Done { seq, error: None } => {
                Incoming::Done { seq, outcome: Ok(frame.get(HEADER_LEN..).map_or(&[], |_| payload())) }
            }
            Deliver::Done { seq, error: Some(e) } => Incoming::Done { seq, outcome: Err(e) },
            #[cfg(feature = "streams")]
            Deliver::Item { seq, index } => Incoming::Item { seq, index, value: payload() },
            #[cfg(feature = "streams")]
            Deliver::End { seq, end } => Incoming::End { seq, end },
            #[cfg(feature = "events")]
            Deliver::Event { seq, topic } => Incoming::Event { seq, topic, payload: payload() },
        }
    }
}

/// A client machine can be built in a `static` (checked at compile time).
const _: ClientMachine<64, 64> = ClientMachine::new();

impl<const RX: usize, const TX: usize, const W: usize> Default for ClientMachine<RX, TX, W> {
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

    /// The outcome of a call that ended, if `incoming` says one did.
    fn done(incoming: Option<Incoming<'_>>) -> Option<Result<&[u8], Error>> {
        match incoming? {
            Incoming::Done { outcome, .. } => Some(outcome),
            _ => None,
        }
    }

    const T0: Instant = Instant::from_millis(0);
    /// A server with 256-byte buffers and every optional part this build has.
    const CAPS: Capabilities = Capabilities { rx: 256, tx: 253, features: Features::BUILT_IN };
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
        frame(|b| encode_welcome(seq, 77, resumed, 1, Some(CAPS), b))
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
        assert_eq!(m.receive(&welcome(0, false), T0), (welcome(0, false).len(), None));
        take(&mut m);
        assert_eq!(done(m.receive(&reply(1, 0), T0).1), Some(Ok(&[0x00][..])));
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
        assert_eq!(m.receive(&welcome(0, false), T0), (welcome(0, false).len(), None));
        assert_eq!(m.boot_id(), Some(77));
        let request = take(&mut m);
        assert_eq!(request.len(), 10, "no preamble once the session is open");
        assert_eq!(frames(&request), [[0x11, 1, 0, 2, 4, 6]]);
        assert_eq!(done(m.receive(&reply(1, 5), T0).1), Some(Ok(&[0x0a][..])));
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
        assert_eq!(m.poll(Instant::from_millis(300)).map(|(_, e)| e), None);
        assert_eq!(frames(&take(&mut m)).len(), 1, "Hello sent again");
        assert_eq!(m.poll(Instant::from_millis(600)).map(|(_, e)| e), None);
        take(&mut m);
        assert_eq!(m.poll(Instant::from_millis(900)).map(|(_, e)| e), None);
        take(&mut m);
        assert_eq!(m.poll_at(), Some(DEADLINE));
        let error = m.poll(DEADLINE).map(|(_, e)| e).unwrap();
        assert_eq!(error, Error::Unreachable);
        assert!(!error.may_have_executed());
        assert!(!m.can_resume());
    }

    #[test]
    fn unanswered_request_is_resent_under_its_own_seq_with_backoff() {
        let mut m = open();
        m.start(ADD, &(2i32, 3i32), T0, DEADLINE).unwrap();
        let first = take(&mut m);
        assert_eq!(m.poll(Instant::from_millis(249)).map(|(_, e)| e), None);
        assert!(m.outgoing().is_empty());
        assert_eq!(m.poll(Instant::from_millis(250)).map(|(_, e)| e), None, "attempt over: backoff");
        assert_eq!(m.poll_at(), Some(Instant::from_millis(260)));
        assert!(m.outgoing().is_empty());
        assert_eq!(m.poll(Instant::from_millis(260)).map(|(_, e)| e), None);
        let second = take(&mut m);
        assert_eq!(second[0], 0x00, "preamble before a retransmission");
        assert_eq!(&second[1..], &first[..], "same frame, same seq");
        // An answer to either send ends the call.
        assert_eq!(done(m.receive(&reply(2, 5), Instant::from_millis(270)).1), Some(Ok(&[0x0a][..])));
        assert_counted!(m.stats().retries, 1);
    }

    #[test]
    fn attempts_run_out_then_resends_go_on_until_the_deadline() {
        let mut m = open();
        m.set_retry_policy(RetryPolicy { attempts: 2, ..RetryPolicy::DEFAULT });
        m.start(ADD, &(2i32, 3i32), T0, DEADLINE).unwrap();
        take(&mut m);
        assert_eq!(m.poll(Instant::from_millis(250)), None);
        assert_eq!(m.poll(Instant::from_millis(260)), None);
        assert!(!take(&mut m).is_empty(), "the second send");
        // The attempts are spent: the call lives on, resending `max_backoff`
        // (200 ms) after each `attempt_timeout` (250 ms) of silence.
        assert_eq!(m.poll_at(), Some(Instant::from_millis(510)));
        assert_eq!(m.poll(Instant::from_millis(510)), None, "not ended before its deadline");
        assert_eq!(m.poll_at(), Some(Instant::from_millis(710)));
        assert_eq!(m.poll(Instant::from_millis(710)), None);
        assert!(!take(&mut m).is_empty(), "a third send, after the attempts");
        assert_eq!(m.poll_at(), Some(Instant::from_millis(960)));
        assert_eq!(m.poll(Instant::from_millis(960)), None);
        assert_eq!(m.poll_at(), Some(DEADLINE), "the backoff is cut short by the deadline");
        assert_eq!(m.poll(Instant::from_millis(999)), None);
        let error = m.poll(DEADLINE).map(|(_, e)| e).unwrap();
        assert_eq!(error, Error::Timeout);
        assert!(error.may_have_executed());
        assert!(m.can_resume());
        assert_counted!((m.stats().timeouts, m.stats().retries), (1, 2));

        // The late answer to the timed-out call is discarded while the next waits.
        m.start(ADD, &(1i32, 1i32), T0, DEADLINE).unwrap();
        assert!(!m.can_resume(), "a new call replaces the resumable one");
        take(&mut m);
        assert_eq!(m.receive(&reply(2, 99), T0), (reply(2, 99).len(), None));
        assert_eq!(done(m.receive(&reply(3, 2), T0).1), Some(Ok(&[0x04][..])));
        assert_counted!(m.stats().late_replies, 1);
    }

    #[test]
    fn resume_asks_again_under_the_same_seq() {
        let mut m = open();
        m.set_retry_policy(RetryPolicy::NONE);
        m.start(ADD, &(2i32, 3i32), T0, Instant::from_millis(100)).unwrap();
        let first = take(&mut m);
        assert_eq!(m.poll(Instant::from_millis(100)).map(|(_, e)| e), Some(Error::Timeout));
        assert_eq!(m.resume(Instant::from_millis(200), Instant::from_millis(300)), Ok(2));
        let again = take(&mut m);
        assert_eq!(&again[1..], &first[..]);
        assert_eq!(done(m.receive(&reply(2, 5), Instant::from_millis(210)).1), Some(Ok(&[0x0a][..])));
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
        assert_eq!(done(outcome), Some(Err(Error::SessionLost)));
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
        assert_eq!(m.receive(&welcome(3, true), T0), (welcome(3, true).len(), None));
        let again = take(&mut m);
        assert_eq!(frames(&again), [[0x11, 2, 0, 2, 4, 6]]);
        assert_eq!(done(m.receive(&reply(2, 5), T0).1), Some(Ok(&[0x0a][..])));
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
        let error = done(m.receive(&status, T0).1).unwrap().unwrap_err();
        assert_eq!(error, Error::Status(Status::FailedPrecondition));
        assert!(error.may_have_executed());
        assert!(error.retry_as_new_call(true) && !error.retry_as_new_call(false));
        m.start(ADD, &(), T0, DEADLINE).unwrap();
        assert_eq!(frames(&take(&mut m))[0][0], 0x14, "a Hello first");
    }

    #[test]
    fn answers_for_nobody_are_late_and_wrong_kinds_are_dropped() {
        let mut m = Machine::new();
        assert_eq!(done(m.receive(&reply(0, 1), T0).1), None);
        assert_eq!(done(m.receive(&welcome(0, true), T0).1), None);
        assert_counted!(m.stats().late_replies, 2);
        let request = frame(|b| encode_request(0, 1, &(), b));
        assert_eq!(done(m.receive(&request, T0).1), None);
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
        let mut m = ClientMachine::<26, 32>::new();
        m.start(ADD, &(), T0, DEADLINE).unwrap();
        m.wrote(m.outgoing().len());
        m.receive(&welcome(0, false), T0);
        m.wrote(m.outgoing().len());
        let big = frame(|b| encode_reply(1, &[7u8; 30], b));
        assert_eq!(done(m.receive(&big, T0).1), Some(Err(Error::ReplyTooLarge)));
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
        assert_eq!(done(m.receive(&r, later).1), Some(Ok(&[0x0a][..])));
        assert_counted!(m.stats().link.dropped_stale, 1);
    }

    #[test]
    fn the_smallest_buffers_can_make_a_call() {
        let mut m = ClientMachine::<26, 9>::new();
        assert!(m.start(ADD, &(), T0, DEADLINE).is_ok());
    }
}
