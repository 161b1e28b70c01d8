//! The blocking client: one call at a time, each bounded by a deadline.

use core::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::Inbox;
use crate::error::Error;
use crate::link::Link;
use crate::machine::{ClientMachine, ClientStats};
use crate::time::Clock;

/// Something that can make a remote call; what generated client stubs call.
pub trait Call {
    /// Calls `method` with the argument tuple `args` and decodes its value as `R`.
    ///
    /// # Errors
    /// Every way a call can fail, each saying whether the handler ran: see [`Error`].
    fn call<A: Serialize + ?Sized, R: DeserializeOwned>(
        &mut self,
        method: u16,
        args: &A,
    ) -> Result<R, Error>;
}

impl<T: Call + ?Sized> Call for &mut T {
    fn call<A: Serialize + ?Sized, R: DeserializeOwned>(
        &mut self,
        method: u16,
        args: &A,
    ) -> Result<R, Error> {
        (**self).call(method, args)
    }
}

/// The default time a call may take, from start to reply.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1);

/// A blocking client over link `L`, reading time from clock `C`, with `RX` and
/// `TX` bytes of buffer (see [`ClientMachine`]).
pub struct Client<L, C, const RX: usize = 256, const TX: usize = 256> {
    link: L,
    clock: C,
    machine: ClientMachine<RX, TX>,
    timeout: Duration,
    inbox: Inbox,
}

impl<L: Link, C: Clock> Client<L, C> {
    /// A client with 256-byte buffers whose calls time out after [`DEFAULT_TIMEOUT`].
    /// For other buffer sizes use [`sized`](Self::sized).
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

    /// A client over a machine set up by the caller (e.g. a chosen first sequence number).
    pub fn with_machine(link: L, clock: C, machine: ClientMachine<RX, TX>) -> Self {
        Client {
            link,
            clock,
            machine,
            timeout: DEFAULT_TIMEOUT,
            inbox: Inbox::new(),
        }
    }

    /// Sets how long each call may take, from start to reply.
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }

    /// The time each call may take.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The counters.
    pub fn stats(&self) -> &ClientStats {
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

    /// Takes the client apart.
    pub fn into_parts(self) -> (L, C) {
        (self.link, self.clock)
    }

    /// Calls `method` and hands the postcard-encoded value to `decode`.
    ///
    /// # Errors
    /// As [`Call::call`]; `decode` returning `None` becomes [`Error::BadReply`].
    pub fn call_with<A, R>(
        &mut self,
        method: u16,
        args: &A,
        decode: impl FnOnce(&[u8]) -> Option<R>,
    ) -> Result<R, Error>
    where
        A: Serialize + ?Sized,
    {
        let mut decode = Some(decode);
        let deadline = self.clock.now() + self.timeout;
        self.machine.start(method, args, deadline)?;
        self.send()?;
        loop {
            let now = self.clock.now();
            if self.inbox.pending().is_empty() {
                if let Some(error) = self.machine.poll(now) {
                    return Err(error);
                }
                match self
                    .inbox
                    .fill(&mut self.link, deadline.saturating_duration_since(now))
                {
                    Ok(None) => continue,
                    Ok(Some(n)) if n > 0 => {}
                    Ok(Some(_)) | Err(_) => return Err(self.link_failed()),
                }
            }
            let (used, outcome) = self.machine.receive(self.inbox.pending(), now);
            let outcome = outcome.map(|value| {
                value.and_then(|bytes| decode.take().and_then(|d| d(bytes)).ok_or(Error::BadReply))
            });
            self.inbox.consume(used);
            if let Some(outcome) = outcome {
                return outcome;
            }
        }
    }

    fn send(&mut self) -> Result<(), Error> {
        loop {
            let out = self.machine.outgoing();
            if out.is_empty() {
                break;
            }
            match self.link.write(out) {
                Ok(n) if n > 0 => self.machine.wrote(n),
                _ => return Err(self.link_failed()),
            }
        }
        self.link.flush().map_err(|_| self.link_failed())
    }

    fn link_failed(&mut self) -> Error {
        self.machine.link_failed().unwrap_or(Error::LinkLost)
    }
}

impl<L: Link, C: Clock, const RX: usize, const TX: usize> Call for Client<L, C, RX, TX> {
    fn call<A: Serialize + ?Sized, R: DeserializeOwned>(
        &mut self,
        method: u16,
        args: &A,
    ) -> Result<R, Error> {
        self.call_with(method, args, |bytes| crate::decode_exact::<R>(bytes))
    }
}
