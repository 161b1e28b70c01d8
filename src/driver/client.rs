//! The blocking client: one call at a time, each bounded by one deadline that
//! covers every retransmission.

use core::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::Inbox;
use crate::error::Error;
use crate::link::Link;
use crate::machine::{ClientMachine, ClientStats, Method, RetryPolicy};
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
}

impl<T: Call + ?Sized> Call for &mut T {
    fn call<A: Serialize + ?Sized, R: DeserializeOwned>(&mut self, method: Method, args: &A) -> Result<R, Error> {
        (**self).call(method, args)
    }

    fn max_reply_len(&self) -> usize {
        (**self).max_reply_len()
    }
}

/// The default time a call may take, from start to answer, retransmissions included.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1);

/// A blocking client over link `L`, reading time from clock `C`, with `RX` and
/// `TX` bytes of buffer (see [`ClientMachine`]).
///
/// Requests that get no answer are retransmitted under the same sequence number
/// (see [`RetryPolicy`]); the server answers a retransmission from its cache, so
/// no handler runs twice. All of it happens within one deadline per call.
pub struct Client<L, C, const RX: usize = 256, const TX: usize = 256> {
    link: L,
    clock: C,
    machine: ClientMachine<RX, TX>,
    timeout: Duration,
    inbox: Inbox,
}

impl<L: Link, C: Clock> Client<L, C> {
    /// A client with 256-byte buffers whose calls time out after [`DEFAULT_TIMEOUT`].
    /// For other buffer sizes use [`sized`](Client::sized).
    pub fn new(link: L, clock: C) -> Self {
        Self::sized(link, clock)
    }
}

impl<L: Link, C: Clock, const RX: usize, const TX: usize> Client<L, C, RX, TX> {
    /// A client with the buffer sizes of its type, e.g.
    /// `let client: Client<_, _, 64, 32> = Client::sized(link, clock);`.
    pub fn sized(link: L, clock: C) -> Self {
        Self::with_machine(link, clock, ClientMachine::new())
    }

    /// A client over a machine set up by the caller (identity, first sequence number, policy).
    pub fn with_machine(link: L, clock: C, machine: ClientMachine<RX, TX>) -> Self {
        Client { link, clock, machine, timeout: DEFAULT_TIMEOUT, inbox: Inbox::new() }
    }

    /// Sets how long each call may take, from start to answer, retransmissions included.
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

    /// The counters (all zero without feature `stats`).
    pub fn stats(&self) -> ClientStats {
        self.machine.stats()
    }

    /// The protocol machine.
    pub fn machine(&self) -> &ClientMachine<RX, TX> {
        &self.machine
    }

    /// The link.
    pub fn link_mut(&mut self) -> &mut L {
        &mut self.link
    }

    /// Puts a new link in place of one that failed (a reconnection) and returns
    /// the old one. The next call confirms the session first, so a call that
    /// ended unknown can still be [resumed](Self::resume) if the server kept it.
    pub fn replace_link(&mut self, link: L) -> L {
        self.machine.link_failed();
        self.inbox = Inbox::new();
        core::mem::replace(&mut self.link, link)
    }

    /// Takes the client apart. Bytes already read from the link but not yet
    /// processed (at most 64, the tail of a late answer) are discarded.
    pub fn into_parts(self) -> (L, C) {
        (self.link, self.clock)
    }

    /// Calls `method` and hands the postcard-encoded value to `decode`. A call the
    /// server refused for a passing reason, or an idempotent call the server can
    /// no longer account for, is made again as a new call while time is left,
    /// up to the retry policy's number of attempts in all.
    ///
    /// # Errors
    /// As [`Call::call`]; `decode` returning `None` becomes [`Error::BadReply`].
    pub fn call_with<A, R>(
        &mut self,
        method: Method,
        args: &A,
        mut decode: impl FnMut(&[u8]) -> Option<R>,
    ) -> Result<R, Error>
    where
        A: Serialize + ?Sized,
    {
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
            if let Err(error) = self.machine.start(method, args, self.clock.now(), deadline) {
                return Err(keep_earlier(earlier, error));
            }
            attempts_left = attempts_left.saturating_sub(1);
            match self.finish(&mut decode) {
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
        let now = self.clock.now();
        self.machine.resume(now, now + self.timeout)?;
        self.finish(&mut |bytes| crate::decode_exact::<R>(bytes))
    }

    /// Moves bytes until the call in progress ends.
    fn finish<R>(&mut self, decode: &mut impl FnMut(&[u8]) -> Option<R>) -> Result<R, Error> {
        loop {
            self.send()?;
            let now = self.clock.now();
            if self.inbox.pending().is_empty() {
                if let Some(error) = self.machine.poll(now) {
                    return Err(error);
                }
                if !self.machine.outgoing().is_empty() {
                    continue;
                }
                let wake = self.machine.poll_at().unwrap_or(now);
                match self.inbox.fill(&mut self.link, wake.saturating_duration_since(now)) {
                    Ok(None) => continue,
                    Ok(Some(n)) if n > 0 => {}
                    Ok(Some(_)) | Err(_) => return Err(self.link_failed()),
                }
            }
            let (used, outcome) = self.machine.receive(self.inbox.pending(), self.clock.now());
            let outcome = outcome.map(|value| value.and_then(|bytes| decode(bytes).ok_or(Error::BadReply)));
            self.inbox.consume(used);
            if let Some(outcome) = outcome {
                return outcome;
            }
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
        self.machine.link_failed().unwrap_or(Error::LinkLost)
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

impl<L: Link, C: Clock, const RX: usize, const TX: usize> Call for Client<L, C, RX, TX> {
    fn call<A: Serialize + ?Sized, R: DeserializeOwned>(&mut self, method: Method, args: &A) -> Result<R, Error> {
        self.call_with(method, args, |bytes| crate::decode_exact::<R>(bytes))
    }

    /// The receive buffer less a frame's header and CRC.
    fn max_reply_len(&self) -> usize {
        RX.saturating_sub(crate::wire::HEADER_LEN + crate::wire::CRC_LEN)
    }
}
