//! The server side: sessions, dispatch, and a reply cache that makes retries safe.
//!
//! Invariants:
//! - Every Request with a good CRC gets exactly one answer: a Reply, or a Status
//!   saying why not (a stream's answer is its items and an End). An unknown
//!   method is answered, never ignored. One-way requests are never answered.
//! - A handler runs at most once per (session, sequence number), and the first
//!   answer to a sequence number is final: a repeat of a call whose answer is
//!   cached gets it again (value or refusal); a repeat of one whose answer is
//!   gone is answered ABORTED; a request outside any session is answered
//!   FAILED_PRECONDITION. None of these runs the handler. A number never seen
//!   (after the newest, or with feature `pipelining` one of the 32 before it
//!   that never arrived) is a new call.
//! - A request is refused (Status, not executed) only before its handler is
//!   called; once the handler ran, the answer is its value or INTERNAL.
//! - While an answer is waiting to be sent, no further input is consumed, so
//!   no answer is ever overwritten before it is sent.
//!
//! Memory: the `W` cache slots hold the newest answers and are the transmit
//! buffers they are sent from; answers that are never cached (Welcome,
//! FAILED_PRECONDITION, ABORTED) are written into the receive buffer, which is
//! idle while an answer waits to be sent, so they cannot evict one and cost no
//! memory of their own. Events have a buffer of their own (feature `events`).

use core::time::Duration;

use serde::Serialize;

use super::Receiver;
use crate::stats::{LinkStats, count, count_link};
use crate::time::Instant;
use crate::wire::{Capabilities, Decoded, Features, Frame, Status, encode_reply, encode_status, seq_after};

/// Server counters: what the built-in `stats` method returns, fields in order.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub struct ServerStats {
    /// Frame-level counters.
    pub link: LinkStats,
    /// Requests whose handler was called.
    pub dispatched: u32,
    /// Requests refused before dispatch (unknown method, bad arguments, too large).
    pub refused: u32,
    /// Repeated requests answered from the reply cache, without running the handler.
    pub duplicates: u32,
    /// Repeated requests whose answer was no longer cached (answered ABORTED).
    pub evicted: u32,
    /// Requests received outside any session (answered FAILED_PRECONDITION).
    pub no_session: u32,
    /// Hello frames answered.
    pub hellos: u32,
    /// Calls cancelled: never run, or streams stopped (feature `cancel`).
    pub cancelled: u32,
    /// One-way calls received, run or refused (feature `events`).
    pub oneway: u32,
    /// Stream items sent (feature `streams`).
    pub items: u32,
    /// Events sent (feature `events`).
    pub events: u32,
}

impl ServerStats {
    /// All counters at zero.
    pub const ZERO: ServerStats = ServerStats {
        link: LinkStats::ZERO,
        dispatched: 0,
        refused: 0,
        duplicates: 0,
        evicted: 0,
        no_session: 0,
        hellos: 0,
        cancelled: 0,
        oneway: 0,
        items: 0,
        events: 0,
    };
}

/// Why a dispatcher refused a request before calling any handler.
///
/// Like every answer to a new call, a refusal is cached: a repeat of the request
/// gets the same refusal, and no later copy of it can run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum Refused {
    /// No method has this id. Answered with [`Status::Unimplemented`].
    UnknownMethod,
    /// The arguments did not decode as the method's argument tuple, or bytes
    /// were left over. Answered with [`Status::InvalidArgument`].
    BadArguments,
    /// The request frame was longer than the server's receive buffer.
    /// Answered with [`Status::ResourceExhausted`].
    TooLarge,
    /// An interceptor does not allow this call. Answered with [`Status::PermissionDenied`].
    PermissionDenied,
    /// An interceptor wants credentials first. Answered with [`Status::Unauthenticated`].
    Unauthenticated,
    /// An interceptor turned the call away for now (a rate limit, a busy
    /// resource). Answered with [`Status::Unavailable`].
    Unavailable,
    /// The request's time budget ran out before dispatch. Answered with
    /// [`Status::DeadlineExceeded`].
    DeadlineExceeded,
}

impl Refused {
    /// The status the client gets.
    pub const fn status(self) -> Status {
        match self {
            Refused::UnknownMethod => Status::Unimplemented,
            Refused::BadArguments => Status::InvalidArgument,
            Refused::TooLarge => Status::ResourceExhausted,
            Refused::PermissionDenied => Status::PermissionDenied,
            Refused::Unauthenticated => Status::Unauthenticated,
            Refused::Unavailable => Status::Unavailable,
            Refused::DeadlineExceeded => Status::DeadlineExceeded,
        }
    }
}

/// Proof that a [`Responder`] encoded an answer; only it can make one.
#[derive(Debug)]
#[must_use]
pub struct Replied {
    len: u16,
    /// The call is a stream that started: items follow.
    #[cfg(feature = "streams")]
    stream: bool,
}

impl Replied {
    const fn new(len: u16) -> Self {
        Replied {
            len,
            #[cfg(feature = "streams")]
            stream: false,
        }
    }
}

/// The length of an encoded frame, or 0 if it could not be encoded.
fn frame_len(frame: Result<&[u8], crate::wire::BufferFull>) -> u16 {
    frame.map_or(0, |f| u16::try_from(f.len()).unwrap_or(0))
}

/// Encodes the answer to one request into the server's transmit buffer.
pub struct Responder<'a> {
    seq: u16,
    #[cfg(feature = "deadlines")]
    deadline: Option<Instant>,
    /// The index of the stream item being answered, if it is one.
    #[cfg(feature = "streams")]
    item: Option<u32>,
    /// No stream is in progress.
    #[cfg(feature = "streams")]
    can_stream: bool,
    buf: &'a mut [u8],
}

impl Responder<'_> {
    /// When the client stops waiting for this answer, on the server's clock:
    /// the arrival of the request plus the budget it carried (PROTOCOL.md §4).
    /// `None` when the request carried no budget, or without feature
    /// `deadlines`. Work past it is wasted: the client will have reported the
    /// call's outcome unknown.
    pub const fn deadline(&self) -> Option<Instant> {
        #[cfg(feature = "deadlines")]
        return self.deadline;
        #[cfg(not(feature = "deadlines"))]
        None
    }

    /// Encodes `value` as the Reply. If it does not fit the transmit buffer, the
    /// answer becomes [`Status::Internal`]: the handler ran, its value is lost.
    pub fn reply<T: Serialize + ?Sized>(self, value: &T) -> Replied {
        #[cfg(feature = "streams")]
        if let Some(index) = self.item {
            // An item that does not fit is lost: length 0 ends the stream (INTERNAL).
            return Replied::new(frame_len(crate::wire::encode_item(self.seq, index, value, self.buf)));
        }
        let len = match encode_reply(self.seq, value, self.buf) {
            Ok(frame) => frame_len(Ok(frame)),
            Err(_) => {
                wc_warn!("reply seq={} does not fit the transmit buffer", self.seq);
                frame_len(encode_status(self.seq, Status::Internal, self.buf))
            }
        };
        Replied::new(len)
    }

    /// The longest encoded value [`reply`](Responder::reply) can send: the
    /// transmit buffer less a frame's header, CRC, COBS overhead and delimiter.
    pub fn max_value_len(&self) -> usize {
        let len = self.buf.len();
        len.saturating_sub(crate::wire::HEADER_LEN + crate::wire::CRC_LEN + crate::wire::stream_overhead(len))
    }

    /// Encodes an empty Reply (the value of a method returning `()`).
    pub fn reply_empty(self) -> Replied {
        Replied::new(frame_len(crate::wire::encode_empty_reply(self.seq, self.buf)))
    }

    /// Whether a stream can start (feature `streams`): no other stream is in
    /// progress. A dispatcher refuses a stream method with
    /// [`Refused::Unavailable`] otherwise, before running anything.
    #[cfg(feature = "streams")]
    pub const fn can_stream(&self) -> bool {
        self.can_stream
    }

    /// Starts a stream (feature `streams`): the server then asks
    /// [`Dispatch::next_item`] for its items as the client's credit allows, and
    /// ends it with an End frame. Nothing of the handler runs before the first item.
    #[cfg(feature = "streams")]
    pub fn stream(self) -> Replied {
        Replied { len: 0, stream: true }
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
    fn dispatch(&mut self, method: u16, args: &[u8], responder: Responder<'_>) -> Result<Replied, Refused>;

    /// What the built-in `describe` sends (feature `describe`); `None`
    /// answers it UNIMPLEMENTED.
    #[cfg(feature = "describe")]
    fn document(&self) -> Option<&'static crate::describe::Document> {
        None
    }

    /// The item `index` of the stream `method` started with arguments `args`
    /// (feature `streams`), answered through `responder`'s
    /// [`reply`](Responder::reply); `None` ends the stream.
    #[cfg(feature = "streams")]
    fn next_item(&mut self, method: u16, args: &[u8], index: u32, responder: Responder<'_>) -> Option<Replied> {
        let _ = (method, args, index, responder);
        None
    }

    /// Called before every new call, built-in methods included, before
    /// anything runs (unless the server refused it already: too large, or its
    /// time budget spent). An error refuses it: the client gets the refusal's
    /// status and knows the call did not run. Admits everything unless an
    /// [`Intercepted`](crate::machine::Intercepted) dispatcher says otherwise.
    ///
    /// # Errors
    /// The refusal.
    fn admit(&mut self, method: u16, args: &[u8]) -> Result<(), Refused> {
        let _ = (method, args);
        Ok(())
    }

    /// Called after every new call was answered: `Ok` when it was dispatched
    /// and replied to, the refusal otherwise (from the server itself, `admit`
    /// or the dispatcher).
    fn answered(&mut self, method: u16, outcome: Result<(), Refused>) {
        let _ = (method, outcome);
    }
}

impl<D: Dispatch + ?Sized> Dispatch for &mut D {
    fn dispatch(&mut self, method: u16, args: &[u8], responder: Responder<'_>) -> Result<Replied, Refused> {
        (**self).dispatch(method, args, responder)
    }

    #[cfg(feature = "describe")]
    fn document(&self) -> Option<&'static crate::describe::Document> {
        (**self).document()
    }

    fn admit(&mut self, method: u16, args: &[u8]) -> Result<(), Refused> {
        (**self).admit(method, args)
    }

    #[cfg(feature = "streams")]
    fn next_item(&mut self, method: u16, args: &[u8], index: u32, responder: Responder<'_>) -> Option<Replied> {
        (**self).next_item(method, args, index, responder)
    }

    fn answered(&mut self, method: u16, outcome: Result<(), Refused>) {
        (**self).answered(method, outcome);
    }
}

/// The smallest transmit buffer a server can have: one Status frame.
const MIN_TX: usize = 8;

/// Bytes of the encoded Welcome a server with these capabilities sends: 9 of
/// header and fixed fields, the three varints, the CRC, one COBS code byte and
/// the delimiter (16 to 28).
const fn welcome_len(caps: Capabilities) -> usize {
    9 + caps.encoded().1 + 2 + 2
}

/// The methods a server answers itself with feature `builtins` (on by
/// default), on ids above [`MAX_APP_METHOD_ID`](crate::wire::MAX_APP_METHOD_ID)
/// (PROTOCOL.md §3.1). Without the feature they are answered UNIMPLEMENTED.
pub mod builtin {
    /// `ping() -> ()`: answers at once; a session round trip and nothing else.
    pub const PING: u16 = 0xFF00;
    /// `describe(offset: u32, max: u16) -> (fingerprint: u64, total: u32, chunk: bytes)`:
    /// a window of the service's description (feature `describe`; UNIMPLEMENTED without).
    pub const DESCRIBE: u16 = 0xFF01;
    /// `stats() -> ServerStats`: the server's counters (UNIMPLEMENTED without feature `stats`).
    pub const STATS: u16 = 0xFF02;
}

/// Answers a built-in method.
#[cfg(feature = "builtins")]
fn answer_builtin<D: Dispatch + ?Sized>(
    method: u16,
    args: &[u8],
    responder: Responder<'_>,
    #[cfg(feature = "stats")] stats: &ServerStats,
    service: &D,
) -> Result<Replied, Refused> {
    let _ = service;
    match method {
        builtin::PING => {
            let () = crate::__private::decode_args(args)?;
            Ok(responder.reply_empty())
        }
        #[cfg(feature = "stats")]
        builtin::STATS => {
            let () = crate::__private::decode_args(args)?;
            Ok(responder.reply(stats))
        }
        #[cfg(feature = "describe")]
        builtin::DESCRIBE => {
            let document = service.document().ok_or(Refused::UnknownMethod)?;
            let (offset, max): crate::describe::DescribeArgs = crate::__private::decode_args(args)?;
            let room = responder.max_value_len().saturating_sub(crate::describe::CHUNK_OVERHEAD);
            Ok(responder.reply(&document.chunk(offset, max, room)))
        }
        _ => Err(Refused::UnknownMethod),
    }
}

/// Answers a server caches per session unless its type says otherwise (the
/// `W` of [`ServerMachine`]).
pub const REPLY_CACHE_WINDOW: u8 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Out {
    /// Nothing to send.
    Idle,
    /// The answer in cache slot `out_slot`, from byte `sent` on.
    Cache { sent: u16 },
    /// An uncached answer, written into the idle receive buffer, from byte `sent` on.
    Small { sent: u16 },
    /// The pending event, from byte `sent` on.
    #[cfg(feature = "events")]
    Event { sent: u16 },
}

/// The session. `open: false` means none: a plain flag rather than an
/// `Option`, whose `None` would be a non-zero byte and keep a fresh machine
/// out of `.bss`.
#[derive(Debug, Clone, Copy)]
struct Session {
    open: bool,
    client_id: u32,
    /// The newest sequence number answered in this session.
    newest: Option<u16>,
    /// Bit `i`: sequence number `newest - i` was answered (or taken by a
    /// one-way call) in this session, so a later copy of it must not run.
    #[cfg(feature = "pipelining")]
    done: u32,
}

impl Session {
    const NONE: Session = Session {
        open: false,
        client_id: 0,
        newest: None,
        #[cfg(feature = "pipelining")]
        done: 0,
    };

    /// Whether `seq`, not after the newest, is one of the 32 before it that never
    /// arrived (feature `pipelining`): a call this session has not seen.
    fn is_late_new(&self, seq: u16) -> bool {
        #[cfg(feature = "pipelining")]
        if let Some(newest) = self.newest {
            let age = newest.wrapping_sub(seq);
            return age < 32 && self.done & (1 << age) == 0;
        }
        let _ = seq;
        false
    }

    /// Records that `seq`, a new call, is answered.
    fn mark(&mut self, seq: u16) {
        // Without late calls, a new number is always after the newest.
        #[cfg(not(feature = "pipelining"))]
        {
            self.newest = Some(seq);
        }
        #[cfg(feature = "pipelining")]
        match self.newest {
            Some(newest) if !seq_after(seq, newest) => {
                let age = newest.wrapping_sub(seq);
                if age < 32 {
                    self.done |= 1 << age;
                }
            }
            newest => {
                let shift = newest.map_or(32, |n| u32::from(seq.wrapping_sub(n)));
                self.done = self.done.checked_shl(shift).unwrap_or(0) | 1;
                self.newest = Some(seq);
            }
        }
    }
}

/// Slot `i` of a cache of `W`: with one slot, always 0, which the compiler
/// then knows is in bounds (firmware with `W = 1` carries no index checks).
const fn at<const W: usize>(i: usize) -> usize {
    if W == 1 { 0 } else { i }
}

/// One entry of the reply cache: an answer and the sequence number it answers.
struct Slot<const TX: usize> {
    buf: [u8; TX],
    len: u16,
    seq: Option<u16>,
}

impl<const TX: usize> Slot<TX> {
    const EMPTY: Self = Slot { buf: [0; TX], len: 0, seq: None };
}

/// The stream in progress (feature `streams`): at most one at a time.
#[cfg(feature = "streams")]
#[derive(Debug, Clone, Copy)]
struct Stream {
    active: bool,
    seq: u16,
    method: u16,
    slot: u8,
    /// The index of the next item.
    next: u32,
    /// Items below this index may be sent (the client's credit).
    limit: u32,
    /// The request's arguments are kept at the end of the slot's buffer, this long.
    args_len: u16,
}

/// The server protocol machine: `RX` bytes of receive buffer (largest decoded
/// request: header, arguments and CRC), and a reply cache of `W` answers of `TX`
/// bytes each (largest encoded answer: COBS, CRC and delimiter included; at
/// least 8), which is also the transmit buffer. `W` is the window announced in
/// the Welcome: how many calls a client may have in flight (feature
/// `pipelining` for more than 1).
pub struct ServerMachine<const RX: usize, const TX: usize, const W: usize = 1> {
    rx: Receiver<RX>,
    slots: [Slot<TX>; W],
    /// Length of an uncached answer in the receive buffer.
    small_len: u16,
    out: Out,
    /// The slot `Out::Cache` sends (always 0 with one slot).
    out_slot: u8,
    session: Session,
    boot_id: u32,
    #[cfg(feature = "streams")]
    stream: Stream,
    /// The event waiting to be sent, if `event_len > 0`, and the next event's number.
    #[cfg(feature = "events")]
    event: [u8; TX],
    #[cfg(feature = "events")]
    event_len: u16,
    #[cfg(feature = "events")]
    event_seq: u16,
    #[cfg(feature = "stats")]
    stats: ServerStats,
}

/// Why [`ServerMachine::emit`] did not take an event.
#[cfg(feature = "events")]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum EmitError {
    /// The previous event is not sent yet: send the outgoing bytes and try again.
    Busy,
    /// The event does not fit the transmit buffer.
    TooLarge,
}

/// What happened to a request that is not a new call.
enum Seen {
    /// Its answer is in this cache slot.
    Cached(u8),
    /// Never seen: a new call.
    New,
    /// Answered, and the answer is gone.
    Evicted,
}

impl<const RX: usize, const TX: usize, const W: usize> ServerMachine<RX, TX, W> {
    /// What its Welcome announces (PROTOCOL.md §4.1): the longest decoded
    /// frame it receives (`RX`) and sends (`TX` less the COBS overhead and
    /// delimiter it must hold), and the optional parts this build implements.
    pub const CAPABILITIES: Capabilities = Capabilities {
        rx: if RX > u32::MAX as usize { u32::MAX } else { RX as u32 },
        tx: {
            let tx = TX.saturating_sub(crate::wire::stream_overhead(TX));
            if tx > u32::MAX as usize { u32::MAX } else { tx as u32 }
        },
        features: Features::BUILT_IN,
    };

    /// [`CAPABILITIES`](Self::CAPABILITIES) as its Welcome carries them.
    const CAPABILITIES_ENCODED: ([u8; crate::wire::MAX_CAPS_LEN], usize) = Self::CAPABILITIES.encoded();

    /// An idle server with boot id 0.
    pub const fn new() -> Self {
        Self::with_boot_id(0)
    }

    /// An idle server that reports `boot_id` in its Welcome frames. Give it a new
    /// value at each boot (a counter in flash, or a random number) so clients can
    /// tell a restart; correctness does not depend on it.
    pub const fn with_boot_id(boot_id: u32) -> Self {
        const { assert!(TX >= MIN_TX, "a server's TX buffer must hold a Status frame (8 bytes)") };
        const { assert!(TX <= u16::MAX as usize, "a server's TX buffer holds at most 65,535 bytes") };
        const {
            assert!(
                RX >= welcome_len(Self::CAPABILITIES),
                "a server's RX buffer must hold a decoded Hello (10 bytes) and its encoded Welcome (16 to 28 bytes)"
            )
        };
        const { assert!(W >= 1 && W <= 32, "a server's window W is 1 to 32 answers") };
        #[cfg(not(feature = "pipelining"))]
        const {
            assert!(W == 1, "a window of more than one answer needs feature `pipelining`")
        };
        ServerMachine {
            rx: Receiver::new(),
            slots: [const { Slot::EMPTY }; W],
            small_len: 0,
            out: Out::Idle,
            out_slot: 0,
            session: Session::NONE,
            boot_id,
            #[cfg(feature = "streams")]
            stream: Stream { active: false, seq: 0, method: 0, slot: 0, next: 0, limit: 0, args_len: 0 },
            #[cfg(feature = "events")]
            event: [0; TX],
            #[cfg(feature = "events")]
            event_len: 0,
            #[cfg(feature = "events")]
            event_seq: 0,
            #[cfg(feature = "stats")]
            stats: ServerStats::ZERO,
        }
    }

    /// Sets how long a partial request frame may wait for its next byte.
    pub fn set_frame_gap(&mut self, gap: Duration) {
        self.rx.set_gap(gap);
    }

    /// The boot id sent in Welcome frames.
    pub const fn boot_id(&self) -> u32 {
        self.boot_id
    }

    /// The counters (all zero without feature `stats`).
    pub const fn stats(&self) -> ServerStats {
        #[cfg(feature = "stats")]
        return self.stats;
        #[cfg(not(feature = "stats"))]
        ServerStats::ZERO
    }

    /// Bytes of the current answer not yet accepted by the link.
    pub fn outgoing(&self) -> &[u8] {
        match self.out {
            Out::Idle => &[],
            Out::Cache { sent } => match self.slots.get(at::<W>(usize::from(self.out_slot))) {
                Some(s) => s.buf.get(usize::from(sent)..usize::from(s.len)).unwrap_or(&[]),
                None => &[],
            },
            Out::Small { sent } => self.rx.decoder.buffered(usize::from(sent)..usize::from(self.small_len)),
            #[cfg(feature = "events")]
            Out::Event { sent } => self.event.get(usize::from(sent)..usize::from(self.event_len)).unwrap_or(&[]),
        }
    }

    /// Records that the link accepted the first `n` bytes of [`outgoing`](Self::outgoing).
    pub fn wrote(&mut self, n: usize) {
        let n = u16::try_from(n).unwrap_or(u16::MAX);
        let (sent, len) = match &mut self.out {
            Out::Idle => return,
            Out::Cache { sent } => (sent, self.slots.get(at::<W>(usize::from(self.out_slot))).map_or(0, |s| s.len)),
            Out::Small { sent } => (sent, self.small_len),
            #[cfg(feature = "events")]
            Out::Event { sent } => (sent, self.event_len),
        };
        *sent = sent.saturating_add(n).min(len);
        if *sent == len {
            #[cfg(feature = "events")]
            if let Out::Event { .. } = self.out {
                self.event_len = 0;
            }
            self.out = Out::Idle;
            self.next_out();
        }
    }

    /// With nothing being sent: starts sending a pending event.
    fn next_out(&mut self) {
        #[cfg(feature = "events")]
        if matches!(self.out, Out::Idle) && self.event_len > 0 {
            self.out = Out::Event { sent: 0 };
        }
    }

    /// Forgets an answer that cannot be sent (the link failed). A cached answer
    /// stays cached, so a retry can still get it.
    pub fn discard_outgoing(&mut self) {
        #[cfg(feature = "events")]
        if let Out::Event { .. } = self.out {
            self.event_len = 0;
        }
        self.out = Out::Idle;
        // An event waiting behind the discarded answer goes next.
        self.next_out();
    }

    /// Forgets the session and its cached answers, as a restart would.
    pub fn end_session(&mut self) {
        self.discard_outgoing();
        self.session = Session::NONE;
        self.forget_answers();
    }

    fn forget_answers(&mut self) {
        for slot in &mut self.slots {
            slot.seq = None;
        }
        #[cfg(feature = "streams")]
        {
            self.stream.active = false;
        }
    }

    /// Sends an event (feature `events`): `payload` on `topic`, numbered by the
    /// server's event counter. It goes out as soon as the answer being sent,
    /// if any, is complete; events are never retransmitted.
    ///
    /// # Errors
    /// [`EmitError::Busy`] while the previous event is unsent,
    /// [`EmitError::TooLarge`] if it does not fit the transmit buffer.
    #[cfg(feature = "events")]
    pub fn emit<T: Serialize + ?Sized>(&mut self, topic: crate::Topic<T>, payload: &T) -> Result<(), EmitError> {
        if self.event_len > 0 {
            return Err(EmitError::Busy);
        }
        let len = frame_len(crate::wire::encode_event(self.event_seq, topic.id, payload, &mut self.event));
        if len == 0 {
            return Err(EmitError::TooLarge);
        }
        self.event_len = len;
        self.event_seq = self.event_seq.wrapping_add(1);
        count!(self.stats.events);
        self.next_out();
        Ok(())
    }

    /// Whether a stream has items to send and credit for them: a driver then
    /// calls [`receive`](Self::receive) without waiting for input.
    pub const fn has_work(&self) -> bool {
        #[cfg(feature = "streams")]
        return self.stream.active && self.stream.next < self.stream.limit;
        #[cfg(not(feature = "streams"))]
        false
    }

    /// Feeds received bytes, answering each complete frame. Stops after the first
    /// frame that produced an answer (now in [`outgoing`](Self::outgoing)) and
    /// returns the bytes consumed; feed the rest after sending the answer.
    /// Consumes nothing while an answer is unsent. With no answer to send, a
    /// stream in progress sends its next item (call it with no input for that).
    pub fn receive<S: Dispatch + ?Sized>(&mut self, input: &[u8], now: Instant, service: &mut S) -> usize {
        if !matches!(self.out, Out::Idle) {
            return 0;
        }
        if self.rx.arrive(input, now) {
            count!(self.stats.link.dropped_stale);
        }
        let mut consumed = 0;
        while consumed < input.len() && matches!(self.out, Out::Idle) {
            let (used, event) = self.rx.decoder.feed(input.get(consumed..).unwrap_or(&[]));
            consumed += used;
            if let Some(event) = event {
                self.handle(event, now, service);
                if !matches!(self.out, Out::Idle) {
                    count!(self.stats.link.frames_out);
                }
            }
        }
        #[cfg(feature = "streams")]
        if matches!(self.out, Out::Idle) {
            self.stream_step(service);
        }
        consumed
    }

    /// Where a sequence number stands in this session.
    fn seen(&self, seq: u16) -> Seen {
        // A number after the newest is new, whatever an old slot (numbers wrap) holds.
        if self.session.newest.is_none_or(|newest| seq_after(seq, newest)) {
            return Seen::New;
        }
        if let Some(i) = self.slots.iter().position(|s| s.seq == Some(seq)) {
            return Seen::Cached(i as u8);
        }
        if self.session.is_late_new(seq) { Seen::New } else { Seen::Evicted }
    }

    /// The slot for a new answer: an empty one, else the oldest answer's (never
    /// the slot of a stream in progress). `None` when every slot is taken by one.
    fn free_slot(&self) -> Option<usize> {
        if W == 1 {
            #[cfg(feature = "streams")]
            if self.stream.active {
                return None;
            }
            return Some(0);
        }
        let newest = self.session.newest.unwrap_or(0);
        let mut best: Option<(usize, u16)> = None;
        for (i, slot) in self.slots.iter().enumerate() {
            #[cfg(feature = "streams")]
            if self.stream.active && usize::from(self.stream.slot) == i {
                continue;
            }
            let age = slot.seq.map_or(u16::MAX, |seq| newest.wrapping_sub(seq));
            if best.is_none_or(|(_, a)| age > a) {
                best = Some((i, age));
            }
        }
        best.map(|(i, _)| i)
    }

    /// Sends the answer in slot `i`.
    fn send_slot(&mut self, i: usize) {
        if W > 1 {
            self.out_slot = i as u8;
        }
        // An answer that could not be encoded (length 0) is nothing to send:
        // waiting for it to be written would stop the server.
        if self.slots.get(at::<W>(i)).is_some_and(|s| s.len > 0) {
            self.out = Out::Cache { sent: 0 };
        }
    }

    /// Answers `status` without caching it, in the idle receive buffer.
    fn small(&mut self, seq: u16, status: Status) {
        self.small_len = frame_len(encode_status(seq, status, self.rx.decoder.buffer()));
        self.out = Out::Small { sent: 0 };
    }

    /// Handles one decoder event, setting `out` if it produced an answer.
    fn handle<S: Dispatch + ?Sized>(&mut self, event: Decoded, now: Instant, service: &mut S) {
        let (frame, oversized) = match event {
            Decoded::Dropped(reason) => return count_link!(self.stats.link, count_drop(reason)),
            Decoded::Oversized { len } => {
                count!(self.stats.link.dropped_too_long);
                match Frame::parse(self.rx.decoder.frame()) {
                    Ok(frame @ Frame::Request { .. }) => {
                        wc_warn!("request seq={} of {} bytes too large", frame.seq(), len);
                        (frame, true)
                    }
                    _ => return,
                }
            }
            Decoded::Frame => match Frame::parse(self.rx.decoder.frame()) {
                Ok(frame) => {
                    count!(self.stats.link.frames_in);
                    (frame, false)
                }
                Err(error) => return count_link!(self.stats.link, count_parse_error(error)),
            },
        };
        match frame {
            Frame::Hello { seq, client_id, fresh } => {
                count!(self.stats.hellos);
                // Resumed only if this client's session has answered a request: a
                // session this very handshake created (a duplicated Hello) is not
                // the one the client lost, and must not claim its calls.
                let s = self.session;
                let resumed = !fresh && s.open && s.client_id == client_id && s.newest.is_some();
                if !resumed {
                    self.session = Session { open: true, client_id, ..Session::NONE };
                    self.forget_answers();
                }
                wc_debug!("hello seq={} client={} resumed={}", seq, client_id, resumed);
                let (caps, len) = Self::CAPABILITIES_ENCODED;
                let caps = caps.get(..len).unwrap_or(&[]);
                self.small_len = frame_len(crate::wire::encode_welcome_raw(
                    seq,
                    self.boot_id,
                    resumed,
                    W as u8,
                    caps,
                    self.rx.decoder.buffer(),
                ));
                self.out = Out::Small { sent: 0 };
            }
            Frame::Request { seq, method, budget_ms, args, oneway } => {
                // Known false without feature `events`, so firmware without it carries none of it.
                let oneway = cfg!(feature = "events") && oneway;
                if !self.session.open {
                    count!(self.stats.no_session);
                    if !oneway {
                        self.small(seq, Status::FailedPrecondition);
                    }
                    return;
                }
                match self.seen(seq) {
                    Seen::Cached(slot) => {
                        count!(self.stats.duplicates);
                        #[cfg(feature = "streams")]
                        if self.stream.active && self.stream.seq == seq {
                            // The stream is answering it already.
                            return;
                        }
                        if !oneway {
                            wc_debug!("seq={} answered from the cache", seq);
                            self.send_slot(usize::from(slot));
                        }
                    }
                    Seen::Evicted => {
                        count!(self.stats.evicted);
                        if !oneway {
                            self.small(seq, Status::Aborted);
                        }
                    }
                    Seen::New => {
                        // A call this session has not seen. Its answer, whatever it is, is
                        // final for its sequence number: cached, so no later copy can run it.
                        // A client never starts a call `W` or more numbers after its oldest
                        // in flight: a stream that far behind was given up on. It ends.
                        #[cfg(feature = "streams")]
                        if self.stream.active
                            && seq_after(seq, self.stream.seq)
                            && usize::from(seq.wrapping_sub(self.stream.seq)) >= W
                        {
                            count!(self.stats.cancelled);
                            // Its End (status CANCELLED) is cached for a client that asks,
                            // and not sent.
                            let Stream { seq: stream_seq, slot, next, .. } = self.stream;
                            self.stream.active = false;
                            if let Some(s) = self.slots.get_mut(at::<W>(usize::from(slot))) {
                                s.len = frame_len(crate::wire::encode_end(
                                    stream_seq,
                                    Some(Status::Cancelled),
                                    next,
                                    &mut s.buf,
                                ));
                            }
                        }
                        self.session.mark(seq);
                        let slot = if oneway { None } else { self.free_slot() };
                        if slot.is_none() && !oneway {
                            // Every slot holds a stream in progress: refused, and final (a
                            // later copy finds the number answered and gets ABORTED).
                            count!(self.stats.refused);
                            return self.small(seq, Status::Unavailable);
                        }
                        #[cfg(feature = "deadlines")]
                        let deadline = budget_ms.map(|ms| now + Duration::from_millis(u64::from(ms)));
                        #[cfg(not(feature = "deadlines"))]
                        let _ = now;
                        let mut none: [u8; 0] = [];
                        let buf = match slot.and_then(|i| self.slots.get_mut(at::<W>(i))) {
                            Some(s) => {
                                // Whatever the answer, it is this number's.
                                s.seq = Some(seq);
                                &mut s.buf[..]
                            }
                            // A one-way call's answer goes nowhere.
                            None => &mut none[..],
                        };
                        let responder = Responder {
                            seq,
                            #[cfg(feature = "deadlines")]
                            deadline,
                            #[cfg(feature = "streams")]
                            item: None,
                            #[cfg(feature = "streams")]
                            can_stream: !self.stream.active,
                            buf,
                        };
                        // Every new call takes this one path: refused by the server itself,
                        // by the service's `admit`, or dispatched; then `answered`.
                        let admitted = if oversized {
                            Err(Refused::TooLarge)
                        } else if cfg!(feature = "deadlines") && budget_ms == Some(0) {
                            // The client stops waiting before any answer could reach it.
                            Err(Refused::DeadlineExceeded)
                        } else {
                            service.admit(method, args)
                        };
                        let dispatched = match admitted {
                            Err(refused) => Err(refused),
                            // Without feature `builtins` the reserved ids reach the service,
                            // which has no method there and answers UNIMPLEMENTED.
                            #[cfg(feature = "builtins")]
                            Ok(()) if method > crate::wire::MAX_APP_METHOD_ID => answer_builtin(
                                method,
                                args,
                                responder,
                                #[cfg(feature = "stats")]
                                &self.stats,
                                service,
                            ),
                            Ok(()) => service.dispatch(method, args, responder),
                        };
                        // A stream keeps its arguments at the end of its slot, beside each item.
                        #[cfg(feature = "streams")]
                        let dispatched = match dispatched {
                            Ok(Replied { stream: true, .. }) if args.len().saturating_add(MIN_TX) > TX => {
                                Err(Refused::TooLarge)
                            }
                            other => other,
                        };
                        service.answered(method, dispatched.as_ref().map(|_| ()).map_err(|r| *r));
                        let Some(i) = slot else {
                            // One-way: nothing is answered, whatever happened.
                            #[cfg(feature = "stats")]
                            crate::stats::bump(if dispatched.is_ok() {
                                &mut self.stats.dispatched
                            } else {
                                &mut self.stats.refused
                            });
                            count!(self.stats.oneway);
                            return;
                        };
                        match dispatched {
                            #[cfg(feature = "streams")]
                            Ok(Replied { stream: true, .. }) => {
                                // No handler ran yet: the dispatcher only checked the arguments.
                                // They are kept at the end of the slot, for every item; the
                                // items are encoded before them.
                                if let Some(s) = self.slots.get_mut(at::<W>(i)) {
                                    // Checked above: they fit with room for an item.
                                    let at = TX.saturating_sub(args.len());
                                    if let Some(tail) = s.buf.get_mut(at..) {
                                        if tail.len() == args.len() {
                                            tail.copy_from_slice(args);
                                        }
                                    }
                                    // Until it ends, the stream holds the slot; its End will be
                                    // the cached answer.
                                    s.seq = Some(seq);
                                    s.len = 0;
                                }
                                count!(self.stats.dispatched);
                                wc_debug!("seq={} method={} stream started", seq, method);
                                self.stream = Stream {
                                    active: true,
                                    seq,
                                    method,
                                    slot: i as u8,
                                    next: 0,
                                    limit: 0,
                                    args_len: args.len() as u16,
                                };
                            }
                            Ok(replied) => {
                                count!(self.stats.dispatched);
                                wc_debug!("seq={} method={} answered", seq, method);
                                if let Some(s) = self.slots.get_mut(at::<W>(i)) {
                                    s.len = replied.len;
                                }
                                self.send_slot(i);
                            }
                            Err(refused) => {
                                count!(self.stats.refused);
                                wc_debug!("seq={} method={} refused", seq, method);
                                self.cache_status(i, seq, refused.status());
                            }
                        }
                    }
                }
            }
            #[cfg(feature = "cancel")]
            Frame::Cancel { seq } => {
                if !self.session.open {
                    count!(self.stats.no_session);
                    return self.small(seq, Status::FailedPrecondition);
                }
                #[cfg(feature = "streams")]
                if self.stream.active && self.stream.seq == seq {
                    count!(self.stats.cancelled);
                    return self.end_stream(Some(Status::Cancelled));
                }
                match self.seen(seq) {
                    Seen::Cached(slot) => self.send_slot(usize::from(slot)),
                    Seen::Evicted => self.small(seq, Status::Aborted),
                    Seen::New => {
                        // It never arrived: it never will run. The refusal is final.
                        count!(self.stats.cancelled);
                        self.session.mark(seq);
                        match self.free_slot() {
                            Some(i) => {
                                if let Some(slot) = self.slots.get_mut(at::<W>(i)) {
                                    slot.seq = Some(seq);
                                }
                                self.cache_status(i, seq, Status::Cancelled);
                            }
                            None => self.small(seq, Status::Cancelled),
                        }
                    }
                }
            }
            #[cfg(feature = "streams")]
            Frame::Credit { seq, limit } => {
                if !self.session.open {
                    // A client streaming to a server that restarted learns it now,
                    // not at its stream's idle deadline (PROTOCOL.md §8.3).
                    count!(self.stats.no_session);
                    return self.small(seq, Status::FailedPrecondition);
                }
                if self.stream.active && self.stream.seq == seq {
                    self.stream.limit = self.stream.limit.max(limit);
                } else if let (true, Seen::Cached(slot)) = (self.session.open, self.seen(seq)) {
                    // The stream ended and its End may be lost: send it again.
                    self.send_slot(usize::from(slot));
                }
            }
            _ => count!(self.stats.link.dropped_kind),
        }
    }

    /// Caches `status` as the answer to `seq` in slot `i` and sends it.
    /// (The slot already belongs to `seq`.)
    fn cache_status(&mut self, i: usize, seq: u16, status: Status) {
        if let Some(slot) = self.slots.get_mut(at::<W>(i)) {
            slot.len = frame_len(encode_status(seq, status, &mut slot.buf));
            self.send_slot(i);
        }
    }

    /// Sends the stream's next item, or its End, if the credit allows.
    #[cfg(feature = "streams")]
    fn stream_step<S: Dispatch + ?Sized>(&mut self, service: &mut S) {
        let Stream { active: true, seq, method, slot, next, limit, args_len } = self.stream else { return };
        if next >= limit {
            return;
        }
        let Some(s) = self.slots.get_mut(at::<W>(usize::from(slot))) else { return };
        let Some((buf, args)) = s.buf.split_at_mut_checked(TX.saturating_sub(usize::from(args_len))) else { return };
        let responder = Responder {
            seq,
            #[cfg(feature = "deadlines")]
            deadline: None,
            item: Some(next),
            can_stream: false,
            buf,
        };
        match service.next_item(method, args, next, responder) {
            Some(Replied { len, .. }) if len > 0 => {
                s.len = len;
                self.stream.next = next.wrapping_add(1);
                count!(self.stats.items);
                self.send_slot(usize::from(slot));
                count!(self.stats.link.frames_out);
            }
            // The item did not fit the transmit buffer: it is lost, the stream ends.
            Some(_) => self.end_stream(Some(Status::Internal)),
            None => self.end_stream(None),
        }
    }

    /// Ends the stream in progress with an End frame, its final (cached) answer.
    #[cfg(feature = "streams")]
    fn end_stream(&mut self, status: Option<Status>) {
        let Stream { seq, slot, next, .. } = self.stream;
        self.stream.active = false;
        if let Some(s) = self.slots.get_mut(at::<W>(usize::from(slot))) {
            s.len = frame_len(crate::wire::encode_end(seq, status, next, &mut s.buf));
            self.send_slot(usize::from(slot));
        }
    }
}

/// A server machine can be built in a `static` (checked at compile time).
const _: ServerMachine<64, 64> = ServerMachine::new();

impl<const RX: usize, const TX: usize, const W: usize> Default for ServerMachine<RX, TX, W> {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {

    use std::vec::Vec;

    use super::*;
    use crate::machine::DEFAULT_FRAME_GAP;
    use crate::wire::{Encoded, encode_hello, encode_request};

    /// Method 1 echoes a u32 xor 0x55; method 2 returns `n` bytes. Counts runs.
    struct Echo {
        runs: u32,
    }

    impl Dispatch for Echo {
        fn dispatch(&mut self, method: u16, args: &[u8], responder: Responder<'_>) -> Result<Replied, Refused> {
            match method {
                1 => {
                    let (v,): (u32,) = crate::__private::decode_args(args)?;
                    self.runs += 1;
                    Ok(responder.reply(&(v ^ 0x55)))
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

    type Server = ServerMachine<64, 64>;
    const T0: Instant = Instant::ZERO;

    fn request<A: Serialize + ?Sized>(seq: u16, method: u16, args: &A) -> Vec<u8> {
        let mut buf = [0u8; 128];
        encode_request(seq, method, args, &mut buf).unwrap().to_vec()
    }

    fn hello(seq: u16, client_id: u32, fresh: bool) -> Vec<u8> {
        let mut buf = [0u8; 16];
        encode_hello(seq, client_id, fresh, &mut buf).unwrap().to_vec()
    }

    /// Feeds `input` completely, collecting every answer as decoded frame bytes.
    fn exchange<const RX: usize, const TX: usize>(
        server: &mut ServerMachine<RX, TX>,
        input: &[u8],
        echo: &mut Echo,
    ) -> Vec<Vec<u8>> {
        let mut answers = Vec::new();
        let mut rest = input;
        loop {
            let used = server.receive(rest, T0, echo);
            rest = &rest[used..];
            let out = server.outgoing().to_vec();
            if !out.is_empty() {
                server.wrote(out.len());
                let mut dec = crate::wire::FrameDecoder::<128>::new();
                assert_eq!(dec.feed(&out), (out.len(), Some(Decoded::Frame)));
                answers.push(dec.frame().to_vec());
            } else if rest.is_empty() {
                return answers;
            }
        }
    }

    /// A decoded Welcome's fixed part followed by the test server's capabilities:
    /// rx 64, tx 62, and this build's feature bits.
    fn with_caps(fixed: &[u8]) -> Vec<u8> {
        let caps = Server::CAPABILITIES;
        assert_eq!((caps.rx, caps.tx, caps.features), (64, 62, Features::BUILT_IN));
        let mut bytes = fixed.to_vec();
        bytes.extend(postcard::to_allocvec(&(caps.rx, caps.tx, caps.features.0)).unwrap());
        bytes
    }

    /// A server with a session for client 7, fresh.
    fn open(echo: &mut Echo) -> Server {
        let mut server = Server::new();
        assert_eq!(exchange(&mut server, &hello(100, 7, true), echo), [with_caps(&[0x15, 100, 0, 0, 0, 0, 0, 0, 1])]);
        server
    }

    #[test]
    fn requests_outside_a_session_are_refused_unknown_and_not_run() {
        let mut echo = Echo { runs: 0 };
        let mut server = Server::with_boot_id(0x0403_0201);
        let answers = exchange(&mut server, &request(5, 1, &(1u32,)), &mut echo);
        assert_eq!(answers, [[0x13, 5, 0, 9]], "FAILED_PRECONDITION");
        assert_counted!((echo.runs, server.stats().no_session), (0, 1));
        let answers = exchange(&mut server, &hello(6, 7, true), &mut echo);
        assert_eq!(answers, [with_caps(&[0x15, 6, 0, 1, 2, 3, 4, 0, 1])], "Welcome: boot id, not resumed, window 1");
        let answers = exchange(&mut server, &request(7, 1, &(1u32,)), &mut echo);
        assert_eq!(answers, [[0x12, 7, 0, 0x54]]);
        assert_eq!(echo.runs, 1);
    }

    #[test]
    fn a_repeat_of_the_newest_call_is_answered_from_the_cache() {
        let mut echo = Echo { runs: 0 };
        let mut server = open(&mut echo);
        let call = request(1, 1, &(0x20u32,));
        let first = exchange(&mut server, &call, &mut echo);
        let twice = exchange(&mut server, &[call.clone(), call.clone()].concat(), &mut echo);
        assert_eq!(first, [[0x12, 1, 0, 0x75]]);
        assert_eq!(twice, [first[0].clone(), first[0].clone()]);
        assert_counted!((echo.runs, server.stats().duplicates, server.stats().dispatched), (1, 2, 1));
    }

    #[test]
    fn a_repeat_of_an_evicted_call_is_aborted_not_run() {
        let mut echo = Echo { runs: 0 };
        let mut server = open(&mut echo);
        exchange(&mut server, &request(1, 1, &(1u32,)), &mut echo);
        exchange(&mut server, &request(2, 1, &(2u32,)), &mut echo);
        assert_eq!(exchange(&mut server, &request(1, 1, &(1u32,)), &mut echo), [[0x13, 1, 0, 10]]);
        assert_counted!((echo.runs, server.stats().evicted), (2, 1));
        // The aborted answer did not evict the cached one.
        assert_eq!(exchange(&mut server, &request(2, 1, &(2u32,)), &mut echo), [[0x12, 2, 0, 0x57]]);
        assert_eq!(echo.runs, 2);
    }

    #[test]
    fn a_fresh_hello_forgets_the_cache_and_a_resumed_one_keeps_it() {
        let mut echo = Echo { runs: 0 };
        let mut server = open(&mut echo);
        exchange(&mut server, &request(1, 1, &(1u32,)), &mut echo);
        // Same client, reconnecting: resumed, the cached answer survives.
        assert_eq!(exchange(&mut server, &hello(2, 7, false), &mut echo)[0][7], 1);
        assert_eq!(exchange(&mut server, &request(1, 1, &(1u32,)), &mut echo), [[0x12, 1, 0, 0x54]]);
        assert_eq!(echo.runs, 1);
        // A new life of the client: nothing from the old one is answered from the cache.
        assert_eq!(exchange(&mut server, &hello(0, 7, true), &mut echo)[0][7], 0);
        assert_eq!(exchange(&mut server, &request(1, 1, &(1u32,)), &mut echo), [[0x12, 1, 0, 0x54]]);
        assert_eq!(echo.runs, 2, "a new life's call runs");
        // Another client id resumes nothing.
        assert_eq!(exchange(&mut server, &hello(3, 8, false), &mut echo)[0][7], 0);
    }

    #[test]
    fn refusals_are_cached_final_and_run_nothing() {
        let mut echo = Echo { runs: 0 };
        let mut server = open(&mut echo);
        exchange(&mut server, &request(1, 1, &(1u32,)), &mut echo);
        for (seq, method, args, code) in
            [(2u16, 9u16, &[][..], 12u8), (3, 1, &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff][..], 3), (4, 1, &[1, 2][..], 3)]
        {
            let mut buf = [0u8; 64];
            let frame = encode_request(seq, method, &Encoded(args), &mut buf).unwrap().to_vec();
            assert_eq!(exchange(&mut server, &frame, &mut echo), [[0x13, seq as u8, 0, code]]);
            assert_eq!(exchange(&mut server, &frame, &mut echo), [[0x13, seq as u8, 0, code]], "same answer again");
        }
        assert_counted!((echo.runs, server.stats().refused, server.stats().duplicates), (1, 3, 3));
        // A copy of seq 4 that would decode now cannot run: the refusal was final.
        assert_eq!(exchange(&mut server, &request(4, 1, &(9u32,)), &mut echo), [[0x13, 4, 0, 3]]);
        assert_eq!(echo.runs, 1);
        // Call 1's answer was evicted by the newer calls.
        assert_eq!(exchange(&mut server, &request(1, 1, &(1u32,)), &mut echo), [[0x13, 1, 0, 10]]);
    }

    #[test]
    fn a_duplicated_resume_hello_after_a_restart_never_claims_the_lost_session() {
        let mut echo = Echo { runs: 0 };
        // A restarted server: no session. The client's resume Hello arrives twice.
        let mut server = Server::new();
        let hello = hello(4, 7, false);
        let answers = exchange(&mut server, &[hello.clone(), hello].concat(), &mut echo);
        assert_eq!(answers.len(), 2);
        assert!(answers.iter().all(|w| w[7] == 0), "neither copy may say resumed: {answers:02x?}");
    }

    #[test]
    fn holds_input_until_the_answer_is_sent() {
        let mut echo = Echo { runs: 0 };
        let mut server = open(&mut echo);
        let a = request(1, 1, &(42u32,));
        let b = request(2, 1, &(43u32,));
        let both = [a.clone(), b.clone()].concat();
        assert_eq!(server.receive(&both, T0, &mut echo), a.len(), "stops after the first answer");
        assert_eq!(server.receive(&both[a.len()..], T0, &mut echo), 0, "nothing consumed while an answer waits");
        server.wrote(3);
        assert_eq!(server.receive(&both[a.len()..], T0, &mut echo), 0);
        server.wrote(server.outgoing().len());
        assert_eq!(server.receive(&both[a.len()..], T0, &mut echo), b.len());
        assert_eq!(echo.runs, 2);
    }

    #[test]
    fn a_request_too_large_is_answered_resource_exhausted_after_its_crc_is_checked() {
        let mut echo = Echo { runs: 0 };
        let mut server = ServerMachine::<16, 64>::new();
        exchange(&mut server, &hello(0, 1, true), &mut echo);
        let frame = request(77, 1, &(&[0x5au8; 40][..],));
        assert_eq!(exchange(&mut server, &frame, &mut echo), [[0x13, 77, 0, 8]]);
        let mut bad = frame.clone();
        bad[20] ^= 0x40;
        assert_eq!(exchange(&mut server, &bad, &mut echo), Vec::<Vec<u8>>::new(), "garbage gets no answer");
        assert_counted!((server.stats().link.dropped_too_long, server.stats().link.dropped_crc), (1, 1));
        assert_eq!(echo.runs, 0);
    }

    #[test]
    fn a_value_too_large_for_tx_becomes_internal_and_counts_as_run() {
        let mut echo = Echo { runs: 0 };
        let mut server = ServerMachine::<64, 24>::new();
        exchange(&mut server, &hello(0, 1, true), &mut echo);
        assert_eq!(exchange(&mut server, &request(3, 2, &(60u8,)), &mut echo), [[0x13, 3, 0, 13]]);
        assert_counted!((echo.runs, server.stats().dispatched), (1, 1));
    }

    #[test]
    fn answers_sent_to_a_server_are_dropped() {
        let mut echo = Echo { runs: 0 };
        let mut server = open(&mut echo);
        let mut buf = [0u8; 16];
        let frame = crate::wire::encode_reply(1, &1u8, &mut buf).unwrap().to_vec();
        assert!(exchange(&mut server, &frame, &mut echo).is_empty());
        assert_counted!(server.stats().link.dropped_kind, 1);
    }

    #[test]
    fn a_partial_frame_left_by_a_dead_client_is_dropped_after_the_gap() {
        let mut echo = Echo { runs: 0 };
        let mut server = open(&mut echo);
        let r = request(1, 1, &(7u32,));
        server.receive(&r[..4], T0, &mut echo);
        let later = T0 + DEFAULT_FRAME_GAP + Duration::from_millis(1);
        assert_eq!(server.receive(&r, later, &mut echo), r.len());
        assert_eq!(server.outgoing().len(), 8);
        assert_counted!(server.stats().link.dropped_stale, 1);
    }

    #[test]
    fn ending_the_session_drops_an_unsent_answer() {
        let mut echo = Echo { runs: 0 };
        let mut server = open(&mut echo);
        server.receive(&request(1, 1, &(1u32,)), T0, &mut echo);
        assert!(!server.outgoing().is_empty());
        server.end_session();
        assert!(server.outgoing().is_empty());
        assert_eq!(exchange(&mut server, &request(2, 1, &(1u32,)), &mut echo), [[0x13, 2, 0, 9]]);
    }
}
