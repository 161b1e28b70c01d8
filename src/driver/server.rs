//! The blocking server: a serve loop and a non-blocking poll step, one mechanism.

use core::time::Duration;

use super::Inbox;
use crate::link::Link;
use crate::machine::{Dispatch, ServerMachine, ServerStats};
use crate::time::Clock;

/// What one [`Server::step`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Step {
    /// No input arrived.
    Idle,
    /// Input was processed and every answer it produced was sent.
    Progress,
    /// The link reached its end of stream.
    Closed,
}

/// Stream items [`Server::step`] sends at most before it returns.
const STREAM_ITEMS_PER_STEP: u32 = 8;

/// How long [`Server::serve`] waits per step; it loops regardless, so this only
/// bounds how often it wakes.
const SERVE_WAIT: Duration = Duration::from_secs(1);

/// A blocking server for `service` over link `L`, with `RX` and `TX` bytes of
/// buffer (see [`ServerMachine`]).
pub struct Server<L, S, C, const RX: usize = 256, const TX: usize = 256, const W: usize = 1> {
    link: L,
    service: S,
    clock: C,
    machine: ServerMachine<RX, TX, W>,
    inbox: Inbox,
}

impl<L: Link, S: Dispatch, C: Clock> Server<L, S, C> {
    /// A server with 256-byte buffers. For other sizes use [`sized`](Self::sized).
    pub fn new(link: L, service: S, clock: C) -> Self {
        Self::sized(link, service, clock)
    }
}

impl<L: Link, S: Dispatch, C: Clock, const RX: usize, const TX: usize, const W: usize> Server<L, S, C, RX, TX, W> {
    /// A server with the buffer sizes of its type, e.g.
    /// `let server: Server<_, _, _, 64, 32> = Server::sized(uart, service, clock);`.
    pub fn sized(link: L, service: S, clock: C) -> Self {
        Self::with_machine(link, service, clock, ServerMachine::new())
    }

    /// A server over a machine set up by the caller (a boot id, a frame gap).
    pub fn with_machine(link: L, service: S, clock: C, machine: ServerMachine<RX, TX, W>) -> Self {
        Server { link, service, clock, machine, inbox: Inbox::new() }
    }

    /// Answers calls until the link reaches its end of stream.
    ///
    /// # Errors
    /// The link's error, when reading or writing fails.
    pub fn serve(&mut self) -> Result<(), L::Error> {
        while self.step(SERVE_WAIT)? != Step::Closed {}
        Ok(())
    }

    /// Handles whatever input is ready without waiting: for a main loop.
    ///
    /// # Errors
    /// The link's error, when reading or writing fails.
    pub fn poll(&mut self) -> Result<Step, L::Error> {
        self.step(Duration::ZERO)
    }

    /// Waits up to `wait` for input (not at all while a stream has items to
    /// send), then handles it and sends every answer, and the stream's items
    /// its credit allows.
    ///
    /// # Errors
    /// The link's error, when reading or writing fails.
    pub fn step(&mut self, wait: Duration) -> Result<Step, L::Error> {
        let streaming = self.machine.has_work();
        if self.inbox.pending().is_empty() {
            match self.inbox.fill(&mut self.link, if streaming { Duration::ZERO } else { wait })? {
                None if !streaming => return Ok(Step::Idle),
                None => {}
                Some(0) => return Ok(Step::Closed),
                Some(_) => {}
            }
        }
        // A stream sends at most this many items per step, so `poll` in a main
        // loop returns even while a client keeps granting credit.
        let mut items_left = STREAM_ITEMS_PER_STEP;
        loop {
            let now = self.clock.now();
            if self.inbox.pending().is_empty() && self.machine.has_work() {
                if items_left == 0 {
                    return Ok(Step::Progress);
                }
                items_left -= 1;
            }
            let used = self.machine.receive(self.inbox.pending(), now, &mut self.service);
            self.inbox.consume(used);
            if !self.send()? {
                return Ok(Step::Closed);
            }
            if self.inbox.pending().is_empty() {
                if !self.machine.has_work() {
                    return Ok(Step::Progress);
                }
                // Between items, read what came meanwhile (a Cancel, more credit,
                // a call) without waiting: a long stream does not deafen the server.
                if self.inbox.fill(&mut self.link, Duration::ZERO)? == Some(0) {
                    return Ok(Step::Closed);
                }
            }
        }
    }

    /// Sends an event (feature `events`) and waits until the link took it.
    ///
    /// # Errors
    /// [`EmitError`](crate::machine::EmitError) if the event does not fit the
    /// transmit buffer; `Ok(Err(..))` carries the link's error.
    #[cfg(feature = "events")]
    pub fn emit<T: serde::Serialize + ?Sized>(
        &mut self,
        topic: crate::Topic<T>,
        payload: &T,
    ) -> Result<Result<(), L::Error>, crate::machine::EmitError> {
        self.machine.emit(topic, payload)?;
        Ok(self.send().map(|_| ()))
    }

    /// Sends the pending answer; `false` if the link accepts no more bytes.
    fn send(&mut self) -> Result<bool, L::Error> {
        let mut wrote_any = false;
        loop {
            let out = self.machine.outgoing();
            if out.is_empty() {
                break;
            }
            match self.link.write(out) {
                Ok(0) => {
                    self.machine.discard_outgoing();
                    return Ok(false);
                }
                Ok(n) => {
                    self.machine.wrote(n);
                    wrote_any = true;
                }
                Err(e) => {
                    self.machine.discard_outgoing();
                    return Err(e);
                }
            }
        }
        if wrote_any {
            self.link.flush()?;
        }
        Ok(true)
    }

    /// The counters (all zero without feature `stats`).
    pub fn stats(&self) -> ServerStats {
        self.machine.stats()
    }

    /// The service.
    pub fn service(&self) -> &S {
        &self.service
    }

    /// The service, mutably.
    pub fn service_mut(&mut self) -> &mut S {
        &mut self.service
    }

    /// Takes the server apart. Bytes already read from the link but not yet
    /// processed (at most 64) are discarded, with any partial frame.
    pub fn into_parts(self) -> (L, S, C) {
        (self.link, self.service, self.clock)
    }
}
