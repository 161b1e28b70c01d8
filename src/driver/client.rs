//! The blocking client: one call at a time through [`Call`], or up to `W` in
//! flight through [`Client::start`]; each bounded by one deadline that covers
//! every retransmission.

use core::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::Inbox;
use crate::error::Error;
use crate::link::Link;
#[cfg(feature = "streams")]
use crate::machine::StreamEnd;
use crate::machine::{ClientMachine, ClientStats, Incoming, Method, RetryPolicy};
use crate::time::{Clock, Instant};

/// Something that can make a remote call; what generated client stubs call.
pub trait Call {
    /// Calls `method` with the argument tuple `args` and decodes its value as `R`.
    ///
    /// # Errors
    /// Every way a call can fail, each saying whether the handler ran: see [`Error`].
    fn call<A: Serialize + ?Sized, R: DeserializeOwned>(&mut self, method: Method, args: &A) -> Result<R, Error>;

    /// The largest encoded value (a Reply's payload) this caller can receive;
    /// what a chunked transfer such as `describe` asks for. 128 unless the
    /// implementation knows better.
    fn max_reply_len(&self) -> usize {
        128
    }

    /// Sends a one-way call (feature `events`): `Ok` once the whole request is
    /// on the link, which proves nothing about it running; the server never
    /// answers one.
    ///
    /// # Errors
    /// [`Error::NotSent`] (and the other "not executed" errors) when nothing
    /// was sent; [`Error::LinkLost`] when the frame was cut short.
    #[cfg(feature = "events")]
    fn send_oneway<A: Serialize + ?Sized>(&mut self, method: Method, args: &A) -> Result<(), Error>;

    /// Calls a stream method (feature `streams`), handing each item to
    /// `on_item` as it arrives; `on_item` returning `false` cancels the stream.
    ///
    /// # Errors
    /// [`StreamError`]: how many items arrived before the stream broke, and why.
    #[cfg(feature = "streams")]
    fn call_stream<A: Serialize + ?Sized, T: DeserializeOwned>(
        &mut self,
        method: Method,
        args: &A,
        on_item: &mut dyn FnMut(T) -> bool,
    ) -> Result<StreamEnd, StreamError>;
}

/// A stream that broke before its End arrived (feature `streams`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct StreamError {
    /// Items that arrived and were handed over.
    pub received: u32,
    /// Why it broke; [`Error::executed`] says whether the stream started at all.
    pub error: Error,
}

impl core::fmt::Display for StreamError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "stream broken after {} items, no End: {}", self.received, self.error)
    }
}

impl core::error::Error for StreamError {}

impl<K: Call + ?Sized> Call for &mut K {
    fn call<A: Serialize + ?Sized, R: DeserializeOwned>(&mut self, method: Method, args: &A) -> Result<R, Error> {
        (**self).call(method, args)
    }

    #[cfg(feature = "events")]
    fn send_oneway<A: Serialize + ?Sized>(&mut self, method: Method, args: &A) -> Result<(), Error> {
        (**self).send_oneway(method, args)
    }

    #[cfg(feature = "streams")]
    fn call_stream<A: Serialize + ?Sized, T: DeserializeOwned>(
        &mut self,
        method: Method,
        args: &A,
        on_item: &mut dyn FnMut(T) -> bool,
    ) -> Result<StreamEnd, StreamError> {
        (**self).call_stream(method, args, on_item)
    }

    fn max_reply_len(&self) -> usize {
        (**self).max_reply_len()
    }
}

/// The default time a call may take, from start to answer, retransmissions included.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1);

/// Credit a stream call grants the server unless told otherwise: items it may
/// send ahead of those received.
pub const DEFAULT_STREAM_CREDITS: u32 = 4;

/// An event from the server (feature `events`), as a handler sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Event<'a> {
    /// The server's event number.
    pub seq: u16,
    /// The topic id, from the service definition.
    pub topic: u16,
    /// The postcard-encoded payload.
    pub payload: &'a [u8],
}

impl Event<'_> {
    /// The payload as a `T`, if the event is on `topic` and its payload decodes as one.
    pub fn decode<T: DeserializeOwned>(&self, topic: crate::Topic<T>) -> Option<T> {
        if self.topic == topic.id { crate::decode_exact(self.payload) } else { None }
    }
}

/// What a client does with the events it receives.
#[cfg(all(feature = "events", feature = "std"))]
type EventHandler = std::boxed::Box<dyn FnMut(Event<'_>) + Send>;
/// What a client does with the events it receives.
#[cfg(all(feature = "events", not(feature = "std")))]
type EventHandler = fn(Event<'_>);

/// Events kept for [`Client::next_event`] when no handler is set (std only): the
/// oldest beyond this many are dropped and counted.
#[cfg(all(feature = "events", feature = "std"))]
pub const EVENT_QUEUE: usize = 256;

/// A call started with [`Client::start`] that ended: its number and outcome,
/// the value copied out of the receive buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Completed<const N: usize> {
    /// The call's sequence number, as `start` returned it.
    pub seq: u16,
    /// The postcard-encoded value, or why there is none.
    pub outcome: Result<heapless::Vec<u8, N>, Error>,
}

impl<const N: usize> Completed<N> {
    /// The value as an `R`.
    ///
    /// # Errors
    /// The call's error, or [`Error::BadReply`] if the value does not decode.
    pub fn decode<R: DeserializeOwned>(&self) -> Result<R, Error> {
        match &self.outcome {
            Ok(bytes) => crate::decode_exact(bytes).ok_or(Error::BadReply),
            Err(error) => Err(*error),
        }
    }
}

/// What the driver's loop should do after something arrived.
enum Flow<T> {
    Continue,
    #[cfg(feature = "cancel")]
    #[cfg_attr(not(feature = "streams"), allow(dead_code))]
    Cancel(u16),
    Stop(T),
}

/// A blocking client over link `L`, reading time from clock `C`, with `RX` and
/// `TX` bytes of buffer, and up to `W` calls in flight through
/// [`start`](Self::start) (see [`ClientMachine`]).
///
/// Requests that get no answer are retransmitted under the same sequence number
/// (see [`RetryPolicy`]); the server answers a retransmission from its cache, so
/// no handler runs twice. All of it happens within one deadline per call.
pub struct Client<L, C, const RX: usize = 256, const TX: usize = 256, const W: usize = 1> {
    link: L,
    clock: C,
    machine: ClientMachine<RX, TX, W>,
    timeout: Duration,
    inbox: Inbox,
    #[cfg(feature = "streams")]
    credits: u32,
    #[cfg(feature = "events")]
    on_event: Option<EventHandler>,
    #[cfg(all(feature = "events", feature = "std"))]
    events: std::collections::VecDeque<(u16, u16, std::vec::Vec<u8>)>,
    #[cfg(all(feature = "events", feature = "std"))]
    events_dropped: u32,
}

impl<L: Link, C: Clock> Client<L, C> {
    /// A client with 256-byte buffers whose calls time out after [`DEFAULT_TIMEOUT`].
    /// For other buffer sizes use [`sized`](Client::sized).
    pub fn new(link: L, clock: C) -> Self {
        Self::sized(link, clock)
    }
}

impl<L: Link, C: Clock, const RX: usize, const TX: usize, const W: usize> Client<L, C, RX, TX, W> {
    /// A client with the buffer sizes of its type, e.g.
    /// `let client: Client<_, _, 64, 32> = Client::sized(link, clock);`.
    ///
    /// With feature `std` each client gets a random 32-bit client id (a server
    /// that keeps sessions by client id, as `link::tcp`'s does, tells clients
    /// apart by it); without, id 0. To choose one, use
    /// [`with_machine`](Self::with_machine) with [`ClientMachine::with_identity`].
    pub fn sized(link: L, clock: C) -> Self {
        #[cfg(feature = "std")]
        let machine = ClientMachine::with_identity(crate::link::tcp::random_id(), 0);
        #[cfg(not(feature = "std"))]
        let machine = ClientMachine::new();
        Self::with_machine(link, clock, machine)
    }

    /// A client over a machine set up by the caller (identity, first sequence number, policy).
    pub fn with_machine(link: L, clock: C, machine: ClientMachine<RX, TX, W>) -> Self {
        Client {
            link,
            clock,
            machine,
            timeout: DEFAULT_TIMEOUT,
            inbox: Inbox::new(),
            #[cfg(feature = "streams")]
            credits: DEFAULT_STREAM_CREDITS,
            #[cfg(feature = "events")]
            on_event: None,
            #[cfg(all(feature = "events", feature = "std"))]
            events: std::collections::VecDeque::new(),
            #[cfg(all(feature = "events", feature = "std"))]
            events_dropped: 0,
        }
    }

    /// Sets how long each call may take, from start to answer, retransmissions
    /// included; for a stream, how long it may go without an item.
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }

    /// The time each call may take.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Sets how requests without an answer are sent again.
    pub fn set_retry_policy(&mut self, policy: RetryPolicy) {
        self.machine.set_retry_policy(policy);
    }

    /// Sets how many items a stream may send ahead of those received (feature
    /// `streams`; [`DEFAULT_STREAM_CREDITS`] unless set): no more than the link
    /// can hold between the two machines, since the client reads one at a time.
    #[cfg(feature = "streams")]
    pub fn set_stream_credits(&mut self, credits: u32) {
        self.credits = credits.max(1);
    }

    /// Hands every event to `handler` as it arrives, during calls too
    /// (feature `events`). Without a handler, events wait for
    /// [`next_event`](Self::next_event) (with `std`; up to [`EVENT_QUEUE`]) or
    /// are dropped (without).
    #[cfg(feature = "events")]
    pub fn on_event(&mut self, handler: EventHandler) {
        self.on_event = Some(handler);
    }

    /// The counters (all zero without feature `stats`).
    pub fn stats(&self) -> ClientStats {
        self.machine.stats()
    }

    /// The protocol machine.
    pub fn machine(&self) -> &ClientMachine<RX, TX, W> {
        &self.machine
    }

    /// The link.
    pub fn link_mut(&mut self) -> &mut L {
        &mut self.link
    }

    /// Puts a new link in place of one that failed (a reconnection) and returns
    /// the old one. The next call confirms the session first, so a call that
    /// ended unknown can still be [resumed](Self::resume) if the server kept it.
    /// Calls in flight end (not sent, or unknown).
    pub fn replace_link(&mut self, link: L) -> L {
        self.machine.fail_link();
        while self.machine.take_failed().is_some() {}
        self.inbox = Inbox::new();
        core::mem::replace(&mut self.link, link)
    }

    /// Takes the client apart. Bytes already read from the link but not yet
    /// processed (at most 64 with `std`, 8 without: the tail of a late answer)
    /// are discarded.
    pub fn into_parts(self) -> (L, C) {
        (self.link, self.clock)
    }

    /// Calls `method` and hands the postcard-encoded value to `decode`. A call the
    /// server refused for a passing reason, or an idempotent call the server can
    /// no longer account for, is made again as a new call while time is left,
    /// up to the retry policy's number of attempts in all.
    ///
    /// # Errors
    /// As [`Call::call`]; `decode` returning `None` becomes [`Error::BadReply`];
    /// [`Error::Busy`] while calls started with [`start`](Self::start) are in flight.
    pub fn call_with<A, R>(
        &mut self,
        method: Method,
        args: &A,
        mut decode: impl FnMut(&[u8]) -> Option<R>,
    ) -> Result<R, Error>
    where
        A: Serialize + ?Sized,
    {
        if self.machine.in_flight() > 0 {
            return Err(Error::Busy);
        }
        let deadline = self.clock.now() + self.timeout;
        // The error of an earlier attempt that may have run: the call's outcome
        // never claims less than it, whatever later attempts say.
        let mut earlier: Option<Error> = None;
        let keep_earlier = |earlier: Option<Error>, later: Error| match earlier {
            Some(e) if later.executed() == crate::Executed::No => e,
            _ => later,
        };
        let mut attempts_left = self.machine.retry_policy().attempts;
        loop {
            let seq = match self.machine.start(method, args, self.clock.now(), deadline) {
                Ok(seq) => seq,
                Err(error) => return Err(keep_earlier(earlier, error)),
            };
            attempts_left = attempts_left.saturating_sub(1);
            match self.finish(seq, &mut decode) {
                Err(error)
                    if error.retry_as_new_call(method.idempotent)
                        && attempts_left > 0
                        && self.clock.now() < deadline =>
                {
                    self.machine.count_retry();
                    earlier = Some(keep_earlier(earlier, error));
                }
                Err(error) => return Err(keep_earlier(earlier, error)),
                Ok(value) => return Ok(value),
            }
        }
    }

    /// Asks again for the answer to the last call, which ended with its outcome
    /// unknown, under its own sequence number: the server answers from its cache
    /// if the call ran, runs it if it never arrived, and says so if it cannot
    /// tell (it restarted). The call is never run twice.
    ///
    /// # Errors
    /// As [`Call::call`], and [`Error::NothingToResume`] if the last call did not end unknown.
    pub fn resume<R: DeserializeOwned>(&mut self) -> Result<R, Error> {
        if self.machine.in_flight() > 0 {
            // Their outcomes would be lost while this one is waited for.
            return Err(Error::Busy);
        }
        let now = self.clock.now();
        let seq = self.machine.resume(now, now + self.timeout)?;
        self.finish(seq, &mut |bytes| crate::decode_exact::<R>(bytes))
    }

    /// Moves bytes until the call `seq` ends.
    fn finish<R>(&mut self, seq: u16, decode: &mut impl FnMut(&[u8]) -> Option<R>) -> Result<R, Error> {
        let done = self.run(None, |incoming| match incoming {
            Incoming::Done { seq: s, outcome } if s == seq => {
                Flow::Stop(outcome.and_then(|bytes| decode(bytes).ok_or(Error::BadReply)))
            }
            _ => Flow::Continue,
        });
        // (Not reached: the call's end is always handed to the sink.)
        done.unwrap_or(Err(Error::LinkLost))
    }

    /// Starts a call without waiting for its answer, and returns its sequence
    /// number: up to `W` calls (or the server's window, if smaller) can be in
    /// flight, their answers matched by number. Collect outcomes with
    /// [`next_completed`](Self::next_completed). Each call has the client's
    /// timeout and the same guarantees as a blocking one; no call is retried
    /// as a new call.
    ///
    /// # Errors
    /// Nothing was sent: [`Error::Busy`] with the window full,
    /// [`Error::RequestTooLarge`], or the link failed at once ([`Error::NotSent`]).
    pub fn start<A: Serialize + ?Sized>(&mut self, method: Method, args: &A) -> Result<u16, Error> {
        let now = self.clock.now();
        let seq = self.machine.start(method, args, now, now + self.timeout)?;
        match self.send() {
            Ok(()) => Ok(seq),
            // The call ends here, with what the failure proves about it; the
            // other calls in flight are reported by `next_completed`.
            Err(error) => Err(self.machine.take_failed_call(seq).unwrap_or(error)),
        }
    }

    /// Waits until a call started with [`start`](Self::start) ends and returns
    /// it; `None` when none is in flight. Events arriving meanwhile go to the
    /// handler or the queue.
    pub fn next_completed(&mut self) -> Option<Completed<RX>> {
        if self.machine.in_flight() == 0 {
            return None;
        }
        self.run(None, |incoming| match incoming {
            Incoming::Done { seq, outcome } => Flow::Stop(Completed {
                seq,
                outcome: outcome.and_then(|bytes| heapless::Vec::from_slice(bytes).map_err(|_| Error::ReplyTooLarge)),
            }),
            _ => Flow::Continue,
        })
    }

    /// Cancels the call `seq` started with [`start`](Self::start) (feature
    /// `cancel`): its outcome, from [`next_completed`](Self::next_completed),
    /// is then [`Error::Cancelled`] (nothing was sent),
    /// [`Status::Cancelled`](crate::Status::Cancelled) (it never ran and
    /// never will) or, if the server had already run it, its value: cancelling
    /// rolls nothing back. Without an answer it ends unknown. `false` if no
    /// such call is in flight.
    #[cfg(feature = "cancel")]
    pub fn cancel(&mut self, seq: u16) -> bool {
        let cancelled = self.machine.cancel(seq, self.clock.now());
        // A failure to send shows in the call's outcome.
        let _ = self.send();
        cancelled
    }

    /// Waits up to `wait` for an event and hands it to `f` (feature `events`),
    /// with events queued earlier first; `None` if none came. Events reach the
    /// handler instead if one is set. While calls started with
    /// [`start`](Self::start) are in flight it only takes queued events.
    #[cfg(all(feature = "events", feature = "std"))]
    pub fn next_event<T>(&mut self, wait: Duration, f: impl FnOnce(Event<'_>) -> T) -> Option<T> {
        if self.events.is_empty() && self.machine.in_flight() == 0 {
            // Returns at the first event, or when `wait` is over. (With calls
            // started by `start` in flight, `next_completed` reads the link.)
            let until = self.clock.now() + wait;
            self.run(Some(until), |_| Flow::<()>::Continue);
        }
        let (seq, topic, payload) = self.events.pop_front()?;
        Some(f(Event { seq, topic, payload: &payload }))
    }

    /// Events dropped because the queue was full (feature `events`, std).
    #[cfg(all(feature = "events", feature = "std"))]
    pub fn events_dropped(&self) -> u32 {
        self.events_dropped
    }

    /// The loop every call shares: sends, waits, reads, and hands what arrives
    /// to `sink` (events go to the handler) until `sink` stops it, nothing is
    /// in flight, or `until` passes.
    fn run<T>(&mut self, until: Option<Instant>, mut sink: impl FnMut(Incoming<'_>) -> Flow<T>) -> Option<T> {
        loop {
            if self.send().is_err() {
                // Every call in flight ends; the sink hears of each.
                while let Some((seq, error)) = self.machine.take_failed() {
                    if let Flow::Stop(t) = sink(Incoming::Done { seq, outcome: Err(error) }) {
                        return Some(t);
                    }
                }
                return None;
            }
            let now = self.clock.now();
            if self.inbox.pending().is_empty() {
                while let Some((seq, error)) = self.machine.poll(now) {
                    match sink(Incoming::Done { seq, outcome: Err(error) }) {
                        Flow::Stop(t) => return Some(t),
                        #[cfg(feature = "cancel")]
                        Flow::Cancel(seq) => {
                            self.machine.cancel(seq, now);
                        }
                        Flow::Continue => {}
                    }
                }
                if !self.machine.outgoing().is_empty() {
                    continue;
                }
                let wake = match (self.machine.poll_at(), until) {
                    (Some(a), Some(b)) => a.min(b),
                    (Some(a), None) => a,
                    (None, Some(b)) => b,
                    (None, None) => return None,
                };
                if until.is_some_and(|u| now >= u) {
                    return None;
                }
                match self.inbox.fill(&mut self.link, wake.saturating_duration_since(now)) {
                    Ok(None) => continue,
                    Ok(Some(n)) if n > 0 => {}
                    Ok(Some(_)) | Err(_) => {
                        self.machine.fail_link();
                        while let Some((seq, error)) = self.machine.take_failed() {
                            if let Flow::Stop(t) = sink(Incoming::Done { seq, outcome: Err(error) }) {
                                return Some(t);
                            }
                        }
                        return None;
                    }
                }
            }
            let (used, incoming) = self.machine.receive(self.inbox.pending(), self.clock.now());
            self.inbox.consume(used);
            let flow = match incoming {
                None => Flow::Continue,
                #[cfg(feature = "events")]
                Some(Incoming::Event { seq, topic, payload }) => {
                    let event = Event { seq, topic, payload };
                    match &mut self.on_event {
                        Some(handler) => handler(event),
                        #[cfg(feature = "std")]
                        None => {
                            if self.events.len() >= EVENT_QUEUE {
                                self.events.pop_front();
                                self.events_dropped = self.events_dropped.saturating_add(1);
                            }
                            self.events.push_back((seq, topic, payload.to_vec()));
                        }
                        #[cfg(not(feature = "std"))]
                        None => {}
                    }
                    if until.is_some() {
                        // A timed wait (for events) ends at the first one.
                        return None;
                    }
                    Flow::Continue
                }
                Some(incoming) => sink(incoming),
            };
            match flow {
                Flow::Continue => {}
                #[cfg(feature = "cancel")]
                Flow::Cancel(seq) => {
                    self.machine.cancel(seq, self.clock.now());
                }
                Flow::Stop(t) => return Some(t),
            }
        }
    }

    /// Calls a stream method (feature `streams`), handing each item's
    /// postcard bytes to `on_item`; `on_item` returning `false` cancels the
    /// stream (feature `cancel`; without it the rest is read and dropped).
    ///
    /// # Errors
    /// [`StreamError`]: how many items arrived before the stream broke, and why.
    #[cfg(feature = "streams")]
    pub fn call_stream_with<A: Serialize + ?Sized>(
        &mut self,
        method: Method,
        args: &A,
        on_item: &mut dyn FnMut(&[u8]) -> bool,
    ) -> Result<StreamEnd, StreamError> {
        if self.machine.in_flight() > 0 {
            return Err(StreamError { received: 0, error: Error::Busy });
        }
        let now = self.clock.now();
        let seq = self
            .machine
            .start_stream(method, args, self.credits, now, now + self.timeout)
            .map_err(|error| StreamError { received: 0, error })?;
        let mut received = 0u32;
        let mut stopped = false;
        let end = self.run(None, |incoming| match incoming {
            Incoming::Item { seq: s, value, .. } if s == seq => {
                received += 1;
                if stopped || on_item(value) {
                    return Flow::Continue;
                }
                stopped = true;
                #[cfg(feature = "cancel")]
                return Flow::Cancel(seq);
                #[cfg(not(feature = "cancel"))]
                Flow::Continue
            }
            Incoming::End { seq: s, end } if s == seq => Flow::Stop(Ok(end)),
            Incoming::Done { seq: s, outcome } if s == seq => Flow::Stop(Err(match outcome {
                // A Reply to a stream call: the service definitions differ.
                Ok(_) => Error::BadReply,
                Err(error) => error,
            })),
            _ => Flow::Continue,
        });
        match end {
            Some(Ok(end)) => Ok(end),
            Some(Err(error)) => Err(StreamError { received, error }),
            None => Err(StreamError { received, error: Error::LinkLost }),
        }
    }

    /// Writes whatever the machine has to send.
    fn send(&mut self) -> Result<(), Error> {
        let mut wrote = false;
        loop {
            let out = self.machine.outgoing();
            if out.is_empty() {
                break;
            }
            match self.link.write(out) {
                Ok(n) if n > 0 => self.machine.wrote(n),
                _ => return Err(self.link_failed()),
            }
            wrote = true;
        }
        if wrote && self.link.flush().is_err() {
            return Err(self.link_failed());
        }
        Ok(())
    }

    fn link_failed(&mut self) -> Error {
        self.machine.fail_link();
        Error::LinkLost
    }

    /// Calls the built-in `ping`: a round trip that runs nothing.
    ///
    /// # Errors
    /// As [`Call::call`].
    pub fn ping(&mut self) -> Result<(), Error> {
        self.call(Method::idempotent(crate::machine::builtin::PING), &())
    }

    /// Calls the built-in `stats`: the server's counters.
    ///
    /// # Errors
    /// As [`Call::call`]; [`Status::Unimplemented`](crate::Status::Unimplemented)
    /// from a server built without feature `stats`.
    pub fn server_stats(&mut self) -> Result<crate::machine::ServerStats, Error> {
        self.call(Method::idempotent(crate::machine::builtin::STATS), &())
    }

    /// Whether requests carry their time budget, so the server can refuse a
    /// call whose time is up and handlers can read their deadline (see
    /// [`ClientMachine::set_budget_on_wire`]). Off by default. Feature `deadlines`.
    #[cfg(feature = "deadlines")]
    pub fn set_deadline_on_wire(&mut self, on: bool) {
        self.machine.set_budget_on_wire(on);
    }

    /// The current time on the client's clock.
    pub fn now(&self) -> Instant {
        self.clock.now()
    }
}

impl<L: Link, C: Clock, const RX: usize, const TX: usize, const W: usize> Call for Client<L, C, RX, TX, W> {
    fn call<A: Serialize + ?Sized, R: DeserializeOwned>(&mut self, method: Method, args: &A) -> Result<R, Error> {
        self.call_with(method, args, |bytes| crate::decode_exact::<R>(bytes))
    }

    /// The receive buffer less a frame's header and CRC.
    fn max_reply_len(&self) -> usize {
        RX.saturating_sub(crate::wire::HEADER_LEN + crate::wire::CRC_LEN)
    }

    #[cfg(feature = "events")]
    fn send_oneway<A: Serialize + ?Sized>(&mut self, method: Method, args: &A) -> Result<(), Error> {
        if self.machine.in_flight() > 0 {
            return Err(Error::Busy);
        }
        let now = self.clock.now();
        let seq = self.machine.start_oneway(method, args, now, now + self.timeout)?;
        // Sent once the machine lets go of it; a failure before that is reported.
        let failed = self.run(None, |incoming| match incoming {
            Incoming::Done { seq: s, outcome: Err(e) } if s == seq => Flow::Stop(e),
            _ => Flow::Continue,
        });
        match failed {
            Some(error) => Err(error),
            None if self.machine.is_in_flight(seq) => Err(Error::LinkLost),
            None => Ok(()),
        }
    }

    #[cfg(feature = "streams")]
    fn call_stream<A: Serialize + ?Sized, T: DeserializeOwned>(
        &mut self,
        method: Method,
        args: &A,
        on_item: &mut dyn FnMut(T) -> bool,
    ) -> Result<StreamEnd, StreamError> {
        let mut failure = None;
        let end = self.call_stream_with(method, args, &mut |bytes| match crate::decode_exact::<T>(bytes) {
            Some(item) => on_item(item),
            None => {
                failure = Some(Error::BadReply);
                false
            }
        });
        match (end, failure) {
            (Ok(end), Some(error)) => Err(StreamError { received: end.received, error }),
            (Err(StreamError { received, .. }), Some(error)) => Err(StreamError { received, error }),
            (end, None) => end,
        }
    }
}
