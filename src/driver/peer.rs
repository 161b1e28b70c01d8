//! Both directions on one link: a [`Peer`] serves a service and calls the other
//! end's, over the same byte stream (PROTOCOL.md §8.6).
//!
//! Each frame goes to the machine its kind belongs to: requests, Hellos,
//! Cancels, Credits and one-way requests to the server; answers, Welcomes,
//! items, Ends and events to the client. Byte 0 of a frame is never 0, so the
//! second byte of an encoded frame is that byte, and the [`Router`] decides
//! without decoding anything. Each direction keeps its own sequence numbers,
//! session and cache; the machines do not know they share the link.

use core::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::Inbox;
use super::client::{Call, DEFAULT_TIMEOUT};
use crate::error::Error;
use crate::link::Link;
use crate::machine::{ClientMachine, ClientStats, Dispatch, Incoming, Method, ServerMachine, ServerStats};
use crate::time::{Clock, Instant};

/// Which machine a frame is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Side {
    /// Requests, Hellos, Cancels, Credits, one-way requests: the local server.
    Server,
    /// Replies, Statuses, Welcomes, items, Ends, events: the local client.
    Client,
}

impl Side {
    /// The machine a frame whose byte 0 is `first` is for.
    pub const fn of(first: u8) -> Side {
        match first & 0x0F {
            // Kinds 13 and 14 are the extensions to the server and to the client.
            1 | 4 | 6 | 7 | 8 | 11 | 13 => Side::Server,
            _ => Side::Client,
        }
    }
}

/// Splits one byte stream into the frames for the server and those for the
/// client, by each frame's kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Router {
    /// The side of the frame being delivered; `None` between frames.
    side: Option<Side>,
}

/// What the router wants done with the bytes not yet routed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// Drop this many bytes: delimiters between frames (preambles).
    Skip(usize),
    /// Give up to this many bytes to this side (to the end of its frame),
    /// then tell [`Router::delivered`] what it took.
    Deliver(Side, usize),
    /// A frame's side shows in its second byte: read more first.
    NeedMore,
}

impl Router {
    /// A router between frames.
    pub const fn new() -> Self {
        Router { side: None }
    }

    /// What to do with `input`, the bytes not yet routed.
    pub fn route(&mut self, input: &[u8]) -> Route {
        let side = match (self.side, input) {
            (_, []) => return Route::NeedMore,
            (Some(side), _) => side,
            (None, [0, ..]) => return Route::Skip(1),
            (None, [_]) => return Route::NeedMore,
            (None, [_, first, ..]) => *self.side.insert(Side::of(*first)),
        };
        Route::Deliver(side, input.iter().position(|&b| b == 0).map_or(input.len(), |i| i + 1))
    }

    /// Records what the side took of the bytes [`route`](Self::route) gave it.
    pub fn delivered(&mut self, taken: &[u8]) {
        if taken.last() == Some(&0) {
            self.side = None;
        }
    }
}

/// One end of a link on which both ends serve and call: a [`Server`](crate::Server)
/// for `service` and a [`Client`](crate::Client) for the other end's, sharing
/// link `L` and clock `C`. Calls made through it (it is a [`Call`], so a typed
/// stub works over it) keep serving the other end's requests while they wait,
/// so both ends can call each other at the same time without a deadlock.
/// A handler cannot call back through the same peer (it is borrowed while it runs).
pub struct Peer<L, S, C, const RX: usize = 256, const TX: usize = 256> {
    link: L,
    clock: C,
    service: S,
    server: ServerMachine<RX, TX>,
    client: ClientMachine<RX, TX>,
    router: Router,
    inbox: Inbox,
    timeout: Duration,
}

impl<L: Link, S: Dispatch, C: Clock> Peer<L, S, C> {
    /// A peer with 256-byte buffers; for other sizes, [`sized`](Self::sized).
    pub fn new(link: L, service: S, clock: C) -> Self {
        Self::sized(link, service, clock)
    }
}

impl<L: Link, S: Dispatch, C: Clock, const RX: usize, const TX: usize> Peer<L, S, C, RX, TX> {
    /// A peer with the buffer sizes of its type.
    pub fn sized(link: L, service: S, clock: C) -> Self {
        Self::with_machines(link, service, clock, ServerMachine::new(), ClientMachine::new())
    }

    /// A peer over machines set up by the caller (boot id, client id, retry policy).
    pub fn with_machines(
        link: L,
        service: S,
        clock: C,
        server: ServerMachine<RX, TX>,
        client: ClientMachine<RX, TX>,
    ) -> Self {
        Peer {
            link,
            clock,
            service,
            server,
            client,
            router: Router::new(),
            inbox: Inbox::new(),
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// Sets how long each call may take, retransmissions included.
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }

    /// The service.
    pub fn service(&self) -> &S {
        &self.service
    }

    /// The service, mutably.
    pub fn service_mut(&mut self) -> &mut S {
        &mut self.service
    }

    /// The server's counters.
    pub fn server_stats(&self) -> ServerStats {
        self.server.stats()
    }

    /// The client's counters.
    pub fn client_stats(&self) -> ClientStats {
        self.client.stats()
    }

    /// Waits up to `wait` for input and handles it: answers the other end's
    /// calls. For a main loop, between the peer's own calls.
    ///
    /// # Errors
    /// [`Error::LinkLost`] when the link failed or reached its end.
    pub fn step(&mut self, wait: Duration) -> Result<(), Error> {
        let until = self.clock.now() + wait;
        self.run(Some(until), |_| None::<()>).map(|_| ())
    }

    /// Moves bytes both ways until `sink` takes something the client machine
    /// delivered, or `until` passes, or (without `until`) the client has
    /// nothing in flight.
    fn run<T>(
        &mut self,
        until: Option<Instant>,
        mut sink: impl FnMut(Incoming<'_>) -> Option<T>,
    ) -> Result<Option<T>, Error> {
        let mut looked = false;
        loop {
            self.send()?;
            let now = self.clock.now();
            while let Some((seq, error)) = self.client.poll(now) {
                if let Some(t) = sink(Incoming::Done { seq, outcome: Err(error) }) {
                    return Ok(Some(t));
                }
            }
            if !self.client.outgoing().is_empty() {
                continue;
            }
            let route = self.router.route(self.inbox.pending());
            if route == Route::NeedMore && self.server.has_work() && until.is_none_or(|u| now < u) {
                // A stream this end serves has items to send and credit: send the
                // next, and take whatever input came meanwhile, without waiting.
                self.server.receive(&[], now, &mut self.service);
                if let Ok(Some(0)) | Err(_) = self.inbox.fill_more(&mut self.link, Duration::ZERO) {
                    return Err(self.fail());
                }
                continue;
            }
            if route == Route::NeedMore {
                let wake = match (self.client.poll_at(), until) {
                    (Some(a), Some(b)) => a.min(b),
                    (Some(a), None) => a,
                    (None, Some(b)) => b,
                    (None, None) => return Ok(None),
                };
                // Once `until` has passed, one last look without waiting: a
                // zero wait (`step(Duration::ZERO)`) still takes what is there.
                let expired = until.is_some_and(|u| now >= u);
                if expired && looked {
                    return Ok(None);
                }
                looked |= expired;
                match self.inbox.fill_more(&mut self.link, wake.saturating_duration_since(now)) {
                    Ok(None) => continue,
                    Ok(Some(n)) if n > 0 => continue,
                    Ok(Some(_)) | Err(_) => return Err(self.fail()),
                }
            }
            let now = self.clock.now();
            let pending = self.inbox.pending();
            match route {
                Route::NeedMore => {}
                Route::Skip(n) => self.inbox.consume(n),
                Route::Deliver(side, len) => {
                    let bytes = pending.get(..len).unwrap_or(&[]);
                    let (n, taken) = match side {
                        Side::Server => (self.server.receive(bytes, now, &mut self.service), None),
                        Side::Client => {
                            let (n, incoming) = self.client.receive(bytes, now);
                            (n, incoming.and_then(&mut sink))
                        }
                    };
                    self.router.delivered(bytes.get(..n).unwrap_or(&[]));
                    self.inbox.consume(n);
                    if taken.is_some() {
                        return Ok(taken);
                    }
                }
            }
        }
    }

    /// Writes whatever either machine has to send, a whole frame at a time.
    fn send(&mut self) -> Result<(), Error> {
        let mut wrote = false;
        loop {
            let (out, server) = match self.server.outgoing() {
                out if !out.is_empty() => (out, true),
                _ => (self.client.outgoing(), false),
            };
            if out.is_empty() {
                break;
            }
            match self.link.write(out) {
                Ok(n) if n > 0 => {
                    if server {
                        self.server.wrote(n);
                    } else {
                        self.client.wrote(n);
                    }
                    wrote = true;
                }
                _ => return Err(self.fail()),
            }
        }
        if wrote && self.link.flush().is_err() {
            return Err(self.fail());
        }
        Ok(())
    }

    fn fail(&mut self) -> Error {
        self.server.discard_outgoing();
        self.client.fail_link();
        self.router = Router::new();
        Error::LinkLost
    }
}

impl<L: Link, S: Dispatch, C: Clock, const RX: usize, const TX: usize> Call for Peer<L, S, C, RX, TX> {
    fn call<A: Serialize + ?Sized, R: DeserializeOwned>(&mut self, method: Method, args: &A) -> Result<R, Error> {
        let now = self.clock.now();
        let seq = self.client.start(method, args, now, now + self.timeout)?;
        let done = self.run(None, |incoming| match incoming {
            Incoming::Done { seq: s, outcome } if s == seq => {
                Some(outcome.and_then(|bytes| crate::decode_exact::<R>(bytes).ok_or(Error::BadReply)))
            }
            _ => None,
        });
        match done {
            Ok(Some(outcome)) => outcome,
            Ok(None) => Err(Error::Timeout),
            Err(_) => Err(self.client.take_failed().map_or(Error::LinkLost, |(_, e)| e)),
        }
    }

    fn max_reply_len(&self) -> usize {
        RX.saturating_sub(crate::wire::HEADER_LEN + crate::wire::CRC_LEN)
    }

    #[cfg(feature = "events")]
    fn send_oneway<A: Serialize + ?Sized>(&mut self, method: Method, args: &A) -> Result<(), Error> {
        let now = self.clock.now();
        let seq = self.client.start_oneway(method, args, now, now + self.timeout)?;
        let failed = self.run(None, |incoming| match incoming {
            Incoming::Done { seq: s, outcome: Err(e) } if s == seq => Some(e),
            _ => None,
        });
        match failed {
            Ok(Some(error)) => Err(error),
            Ok(None) => Ok(()),
            Err(_) => Err(self.client.take_failed().map_or(Error::LinkLost, |(_, e)| e)),
        }
    }

    #[cfg(feature = "streams")]
    fn call_stream<A: Serialize + ?Sized, T: DeserializeOwned>(
        &mut self,
        _method: Method,
        _args: &A,
        _on_item: &mut dyn FnMut(T) -> bool,
    ) -> Result<crate::StreamEnd, super::StreamError> {
        // Calling streams through a Peer is not implemented (serving them is):
        // nothing is sent, and the error says "not executed".
        Err(super::StreamError { received: 0, error: Error::Status(crate::Status::Unimplemented) })
    }
}
