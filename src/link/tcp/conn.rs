//! One connection's thread, and the sessions kept by client id.
//!
//! The thread reads with a timeout, and runs every byte through a small frame
//! decoder of its own (the *watcher*) that finds complete frames (for the idle
//! timeout), a frame in progress (for the frame timeout) and Hellos. A Hello
//! gives the connection that client's session: its `ServerMachine`, taken from
//! the store by client id or created there. The bytes before it go to the
//! machine the connection had; the Hello and what follows to the client's,
//! after a delimiter that ends any partial frame another connection left in
//! it. Before any Hello a small machine with no session answers requests
//! FAILED_PRECONDITION, as a server without a session does.
//!
//! A session's machine is locked while input is fed to it and its answers are
//! written, never while the thread waits for input. A connection feeds a
//! session only while it owns it: a newer connection of the same client takes
//! it over and closes the older one. The older one may still hold the machine
//! (a call of it running); the newer one waits for it without blocking,
//! looking every few milliseconds whether it still owns the session and is
//! still open, so that it can leave at once when it does not or is not.
//!
//! Client id 0 is anonymous: its session belongs to the connection alone, is
//! never kept in the store and never taken from another connection.

use core::time::Duration;
use std::boxed::Box;
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, TryLockError};
use std::time::Instant;

use super::server::{Conn, Shared, Slot, lock};
use crate::machine::{DEFAULT_FRAME_GAP, Dispatch, Refused, Replied, Responder, ServerMachine};
use crate::time::{Clock, StdClock};
use crate::wire::{Decoded, Frame, FrameDecoder, encode_hello};

/// A session machine's receive buffer (largest decoded request).
pub(super) const RX: usize = 1024;
/// A session machine's transmit buffer (largest encoded answer or event).
pub(super) const TX: usize = 1024;

/// A client's session, as the server keeps it.
type Machine = ServerMachine<RX, TX>;

/// Stream items a connection sends at most before it looks for input again.
const STREAM_ITEMS_PER_STEP: u32 = 8;

/// Bytes read from the socket at a time.
const READ_BUF: usize = 4096;

/// The shortest read timeout (a zero timeout means none to `std`).
const MIN_WAIT: Duration = Duration::from_millis(1);

/// The longest pause between two looks at a machine another connection holds.
const MACHINE_POLL: Duration = Duration::from_millis(20);

/// The client id whose sessions are the connection's alone (every `no_std`
/// client's, and `ClientMachine::new()`'s).
const ANONYMOUS: u32 = 0;

/// The connection is over: its peer closed it, it failed or timed out, or
/// another connection took its session over.
pub(super) struct Closed;

/// A client's session kept by client id: the machine, and who serves it.
pub(super) struct Session {
    pub(super) client_id: u32,
    /// The id of the connection serving it; 0 for none.
    owner: AtomicU64,
    /// When a connection last took it or let go of it (microseconds of the
    /// server's clock): the least recently used is forgotten first.
    last_used: AtomicU64,
    machine: Mutex<Box<Machine>>,
}

impl Session {
    fn new(client_id: u32, owner: u64, boot_id: u32, now: u64) -> Self {
        Session {
            client_id,
            owner: AtomicU64::new(owner),
            last_used: AtomicU64::new(now),
            machine: Mutex::new(Box::new(Machine::with_boot_id(boot_id))),
        }
    }

    /// Connection `conn` lets go of the session, if it still holds it.
    pub(super) fn release(&self, conn: u64, now: u64) {
        if self.owner.compare_exchange(conn, 0, Ordering::SeqCst, Ordering::SeqCst).is_ok() {
            self.last_used.store(now, Ordering::Relaxed);
        }
    }

    fn is_owned_by(&self, conn: u64) -> bool {
        self.owner.load(Ordering::SeqCst) == conn
    }

    /// The machine, locked for `conn`, which owns the session. If another
    /// thread holds it (the connection `conn` took the session over from, a
    /// call of it running), waits for it without blocking: `Err` as soon as
    /// `conn` no longer owns the session or is closed (evicted, taken over),
    /// or after `bound` (the idle timeout).
    fn lock_for(
        &self,
        conn: &Conn,
        boot_id: u32,
        bound: Option<Duration>,
    ) -> Result<MutexGuard<'_, Box<Machine>>, Closed> {
        let until = bound.and_then(|b| Instant::now().checked_add(b));
        let mut pause = MIN_WAIT;
        loop {
            if !self.is_owned_by(conn.id) || conn.is_closed() {
                return Err(Closed);
            }
            match self.machine.try_lock() {
                Ok(machine) => return Ok(machine),
                Err(TryLockError::Poisoned(poisoned)) => return Ok(self.restart(poisoned.into_inner(), boot_id)),
                Err(TryLockError::WouldBlock) => {}
            }
            if until.is_some_and(|until| Instant::now() >= until) {
                wc_debug!("tcp: connection {} waited too long for its session's machine; closed", conn.id);
                return Err(Closed);
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(MACHINE_POLL);
        }
    }

    /// A handler panicked while this machine ran it, so its state is suspect:
    /// it starts over with no session, as a restarted server does. The
    /// client's calls in flight end "outcome unknown" (FAILED_PRECONDITION,
    /// then a Welcome that does not resume), never misreported.
    fn restart<'a>(&'a self, mut machine: MutexGuard<'a, Box<Machine>>, boot_id: u32) -> MutexGuard<'a, Box<Machine>> {
        wc_warn!("tcp: a handler panicked; the session of client {} starts over", self.client_id);
        **machine = Machine::with_boot_id(boot_id);
        self.machine.clear_poison();
        machine
    }
}

/// Gives connection `conn` the session of `client_id` (not anonymous),
/// created if the store has none. A new session replaces `own`, the one the
/// connection created before, if no connection holds that one now: a
/// connection adds at most one session to the store. Otherwise, when the store
/// is full, the least recently used session is forgotten, preferably one of a
/// client not connected. Returns the session, the connection that held it (0
/// for none), and whether it was created.
fn take_session(shared: &Shared, client_id: u32, conn: u64, own: Option<&Arc<Session>>) -> (Arc<Session>, u64, bool) {
    let now = shared.micros();
    let mut sessions = lock(&shared.sessions);
    if let Some(session) = sessions.get(&client_id) {
        session.last_used.store(now, Ordering::Relaxed);
        return (session.clone(), session.owner.swap(conn, Ordering::SeqCst), false);
    }
    if let Some(own) = own {
        let unheld = |s: &Arc<Session>| Arc::ptr_eq(s, own) && s.owner.load(Ordering::SeqCst) == 0;
        if sessions.get(&own.client_id).is_some_and(unheld) {
            wc_debug!(
                "tcp: connection {} switched to client {}; client {}'s session is forgotten",
                conn,
                client_id,
                own.client_id
            );
            sessions.remove(&own.client_id);
        }
    }
    if sessions.len() >= shared.config.session_capacity() {
        let oldest = sessions
            .values()
            .min_by_key(|s| (s.owner.load(Ordering::SeqCst) != 0, s.last_used.load(Ordering::Relaxed)))
            .map(|s| s.client_id);
        if let Some(id) = oldest {
            sessions.remove(&id);
        }
    }
    let session = Arc::new(Session::new(client_id, conn, shared.boot_id, now));
    sessions.insert(client_id, session.clone());
    (session, 0, true)
}

/// A connection's service: its own, or the one all share.
pub(super) enum ConnService<S> {
    Own(S),
    Shared(Arc<Mutex<S>>),
}

impl<S: Dispatch> ConnService<S> {
    fn with<R>(&mut self, f: impl FnOnce(&mut S) -> R) -> R {
        match self {
            ConnService::Own(service) => f(service),
            ConnService::Shared(service) => f(&mut *lock(service)),
        }
    }
}

/// The service of a machine with no session: never asked to run anything.
struct Nobody;

impl Dispatch for Nobody {
    fn dispatch(&mut self, _: u16, _: &[u8], _: Responder<'_>) -> Result<Replied, Refused> {
        Err(Refused::UnknownMethod)
    }
}

/// A connection being served, as its own thread sees it.
struct Connection<S> {
    slot: Slot,
    service: ConnService<S>,
    clock: StdClock,
    /// Finds frames in the input: complete ones, Hellos, one in progress.
    watcher: FrameDecoder<16>,
    /// Answers what comes before any Hello: requests get FAILED_PRECONDITION.
    lobby: ServerMachine<32, 16>,
    /// The session the connection serves, once its client said Hello.
    session: Option<Arc<Session>>,
    /// The session this connection added to the store, if any: a later one it
    /// adds replaces it.
    created: Option<Arc<Session>>,
    /// When the last byte, the last complete frame and the frame in progress arrived.
    last_byte: Instant,
    last_frame: Instant,
    frame_started: Option<Instant>,
    /// The session's machine has stream items to send: read without waiting.
    work: bool,
    /// The socket's read timeout, once set (`Some(None)`: none).
    read_timeout: Option<Option<Duration>>,
}

/// Serves the connection of `slot` until it ends; the slot is released
/// however that happens.
pub(super) fn run<S: Dispatch>(slot: Slot, service: ConnService<S>, clock: StdClock) {
    let now = Instant::now();
    let mut connection = Connection {
        slot,
        service,
        clock,
        watcher: FrameDecoder::new(),
        lobby: ServerMachine::new(),
        session: None,
        created: None,
        last_byte: now,
        last_frame: now,
        frame_started: None,
        work: false,
        read_timeout: None,
    };
    connection.serve();
}

impl<S: Dispatch> Connection<S> {
    fn serve(&mut self) {
        let mut buf = [0u8; READ_BUF];
        loop {
            let Some(wait) = self.time_left() else { return };
            let read = if self.work { self.read_now(&mut buf) } else { self.read_within(&mut buf, wait) };
            let handled = match read {
                Err(Closed) => return,
                Ok(0) => self.pump(&[]),
                Ok(n) => self.route(buf.get(..n).unwrap_or(&[])),
            };
            if handled.is_err() {
                return;
            }
        }
    }

    /// How long the next read may wait (`Some(None)`: as long as it takes),
    /// or `None` once the idle or the frame timeout has passed.
    fn time_left(&self) -> Option<Option<Duration>> {
        let config = &self.slot.shared.config;
        let frame = self.frame_started.and_then(|t| t.checked_add(config.frame_timeout));
        let idle = config.idle_timeout.and_then(|t| self.last_frame.checked_add(t));
        let deadline = match (frame, idle) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let Some(deadline) = deadline else { return Some(None) };
        let now = Instant::now();
        let left = deadline.checked_duration_since(now).filter(|d| !d.is_zero());
        if left.is_none() {
            let stalled = frame.is_some_and(|f| f <= now);
            wc_debug!(
                "tcp: connection {} closed: {}",
                self.slot.conn.id,
                if stalled { "a frame stalled" } else { "idle" }
            );
        }
        left.map(Some)
    }

    /// Reads what arrives within `wait`: `Ok(0)` if nothing did.
    fn read_within(&mut self, buf: &mut [u8], wait: Option<Duration>) -> Result<usize, Closed> {
        let wanted = wait.map(|w| w.max(MIN_WAIT));
        // Looks at the queue of events now and then, with a session to send them through.
        #[cfg(feature = "events")]
        let wanted = if self.session.is_some() && self.slot.shared.emitting.load(Ordering::Relaxed) {
            Some(wanted.map_or(super::server::EVENT_TICK, |w| w.min(super::server::EVENT_TICK)))
        } else {
            wanted
        };
        // A timeout set earlier that is at most a quarter longer than wanted, or
        // shorter but not below half, will do: the loop looks at the time again
        // when it ends. (So a wait that shrinks as a deadline nears does not cost
        // a system call per read.)
        let set = match (self.read_timeout, wanted) {
            (None, _) => true,
            (Some(None), wanted) => wanted.is_some(),
            (Some(Some(_)), None) => true,
            (Some(Some(current)), Some(wanted)) => {
                current > wanted.saturating_add(wanted / 4) || wanted > current.saturating_mul(2)
            }
        };
        if set {
            self.slot.conn.stream.set_read_timeout(wanted).map_err(|_| Closed)?;
            self.read_timeout = Some(wanted);
        }
        read(&self.slot.conn.stream, buf)
    }

    /// Reads what has arrived, without waiting, while a stream has items to
    /// send. (Only this thread writes to the socket.)
    fn read_now(&mut self, buf: &mut [u8]) -> Result<usize, Closed> {
        if self.session.is_none() {
            self.work = false;
            return Ok(0);
        }
        let stream = &self.slot.conn.stream;
        stream.set_nonblocking(true).map_err(|_| Closed)?;
        let read = read(stream, buf);
        stream.set_nonblocking(false).map_err(|_| Closed)?;
        read
    }

    /// Feeds received bytes to the machines they are for: the bytes of each
    /// Hello of another client than the session's, and those after it, to
    /// that client's session.
    fn route(&mut self, chunk: &[u8]) -> Result<(), Closed> {
        let now = Instant::now();
        // As the machines do, drop a partial frame after a silence of the frame gap.
        if self.watcher.is_mid_frame() && now.duration_since(self.last_byte) > DEFAULT_FRAME_GAP {
            self.watcher.reset();
            self.frame_started = None;
        }
        self.last_byte = now;
        let (mut start, mut pos) = (0, 0);
        while pos < chunk.len() {
            let (used, event) = self.watcher.feed(chunk.get(pos..).unwrap_or(&[]));
            let end = pos + used;
            if let Some(event) = event {
                self.frame_started = None;
                if matches!(event, Decoded::Frame | Decoded::Oversized { .. }) {
                    self.last_frame = now;
                    self.slot.conn.last_active.store(self.slot.shared.micros(), Ordering::Relaxed);
                    let hello = match Frame::parse(self.watcher.frame()) {
                        Ok(Frame::Hello { seq, client_id, fresh }) => Some((seq, client_id, fresh)),
                        _ => None,
                    };
                    if let Some((seq, client_id, fresh)) = hello {
                        if self.session.as_ref().is_none_or(|s| s.client_id != client_id) {
                            // The Hello's first byte follows the last delimiter before its own.
                            let body = chunk.get(pos..end.saturating_sub(1)).unwrap_or(&[]);
                            let begin = body.iter().rposition(|&b| b == 0).map_or(pos, |i| pos + i + 1);
                            self.pump(chunk.get(start..begin).unwrap_or(&[]))?;
                            self.switch(client_id);
                            // A delimiter first: it ends any partial frame in the machine.
                            let mut hello = [0u8; 16];
                            let len = encode_hello(seq, client_id, fresh, hello.get_mut(1..).unwrap_or(&mut []))
                                .map_or(0, <[u8]>::len);
                            self.pump(hello.get(..1 + len).unwrap_or(&[]))?;
                            start = end;
                        }
                    }
                }
            }
            pos = end;
        }
        self.pump(chunk.get(start..).unwrap_or(&[]))?;
        if self.watcher.is_mid_frame() && self.frame_started.is_none() {
            self.frame_started = Some(now);
        }
        Ok(())
    }

    /// Gives the connection the session of `client_id`; the connection that
    /// held it before (the client's older one) is closed. An anonymous client
    /// gets a session of this connection's own.
    fn switch(&mut self, client_id: u32) {
        let (shared, conn) = (&self.slot.shared, &self.slot.conn);
        let now = shared.micros();
        if let Some(old) = self.session.take() {
            old.release(conn.id, now);
        }
        if self.work {
            // The stream of the session left behind no longer runs here.
            self.work = false;
            conn.end_call(now);
        }
        let session = if client_id == ANONYMOUS {
            Arc::new(Session::new(ANONYMOUS, conn.id, shared.boot_id, now))
        } else {
            let (session, previous, created) = take_session(shared, client_id, conn.id, self.created.as_ref());
            if created {
                self.created = Some(session.clone());
            }
            if previous != 0 && previous != conn.id {
                let older = lock(&shared.conns).get(&previous).cloned();
                if let Some(older) = older {
                    wc_debug!("tcp: client {} reconnected; its connection {} is closed", client_id, previous);
                    older.close();
                }
            }
            session
        };
        *lock(&conn.session) = Some(session.clone());
        self.session = Some(session);
    }

    /// Feeds `input` to the connection's machine and writes every answer (and
    /// a few stream items, if a stream has credit).
    fn pump(&mut self, input: &[u8]) -> Result<(), Closed> {
        let (clock, conn) = (self.clock, &self.slot.conn);
        let Some(session) = &self.session else {
            if input.is_empty() {
                return Ok(());
            }
            return feed(&mut self.lobby, input, |m, bytes| m.receive(bytes, clock.now(), &mut Nobody), &conn.stream);
        };
        #[cfg(feature = "events")]
        let events = !lock(&conn.events).is_empty();
        #[cfg(not(feature = "events"))]
        let events = false;
        if input.is_empty() && !self.work && !events {
            return Ok(());
        }
        let shared = &self.slot.shared;
        let bound = shared.config.idle_timeout;
        self.work = pump_session(session, conn, &mut self.service, clock, shared, bound, input)?;
        Ok(())
    }
}

/// Feeds `input` to the session's machine while `conn` holds the session,
/// writes the answers, and the events queued; returns whether a stream has
/// items to send. All of it is running a call (the connection is not
/// evicted meanwhile), and so is a stream with items to send, until it has
/// none.
fn pump_session<S: Dispatch>(
    session: &Session,
    conn: &Conn,
    service: &mut ConnService<S>,
    clock: StdClock,
    shared: &Shared,
    bound: Option<Duration>,
    input: &[u8],
) -> Result<bool, Closed> {
    let mut machine = session.lock_for(conn, shared.boot_id, bound)?;
    if !session.is_owned_by(conn.id) || !conn.begin_call() {
        return Err(Closed);
    }
    let machine: &mut Machine = &mut machine;
    let receive = |m: &mut Machine, bytes: &[u8]| {
        if !session.is_owned_by(conn.id) {
            // Taken over: what is left is the newer connection's to feed.
            return 0;
        }
        service.with(|s| m.receive(bytes, clock.now(), s))
    };
    let fed = feed(machine, input, receive, &conn.stream);
    #[cfg(feature = "events")]
    let fed = fed.and_then(|()| send_events(machine, conn));
    let work = fed.is_ok() && machine.has_work();
    if !work {
        conn.end_call(shared.micros());
    }
    fed.map(|()| work)
}

/// Feeds `input` to `machine` through `receive`, writing each answer before
/// the next frame is taken, then up to [`STREAM_ITEMS_PER_STEP`] stream items.
fn feed<const R: usize, const T: usize>(
    machine: &mut ServerMachine<R, T>,
    input: &[u8],
    mut receive: impl FnMut(&mut ServerMachine<R, T>, &[u8]) -> usize,
    stream: &TcpStream,
) -> Result<(), Closed> {
    let mut rest = input;
    let mut items_left = STREAM_ITEMS_PER_STEP;
    loop {
        send(machine, stream)?;
        if rest.is_empty() {
            if !machine.has_work() || items_left == 0 {
                return Ok(());
            }
            items_left -= 1;
        }
        let used = receive(machine, rest);
        rest = rest.get(used..).unwrap_or(&[]);
        if used == 0 && !rest.is_empty() && machine.outgoing().is_empty() {
            // A machine with nothing to send always takes input; never spin if not.
            return Ok(());
        }
    }
}

/// Writes what `machine` has to send. On failure (the peer is gone, or did
/// not read within the write timeout) the answer is dropped, and stays cached
/// for the client to ask again, on another connection.
fn send<const R: usize, const T: usize>(
    machine: &mut ServerMachine<R, T>,
    mut stream: &TcpStream,
) -> Result<(), Closed> {
    loop {
        let out = machine.outgoing();
        if out.is_empty() {
            return Ok(());
        }
        match stream.write(out) {
            Ok(n) if n > 0 => machine.wrote(n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            _ => {
                while !machine.outgoing().is_empty() {
                    machine.discard_outgoing();
                }
                return Err(Closed);
            }
        }
    }
}

/// One read: `Ok(0)` if nothing came in time, `Err` at the end of the stream or on an error.
fn read(mut stream: &TcpStream, buf: &mut [u8]) -> Result<usize, Closed> {
    match stream.read(buf) {
        Ok(0) => Err(Closed),
        Ok(n) => Ok(n),
        Err(e)
            if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted) =>
        {
            Ok(0)
        }
        Err(_) => Err(Closed),
    }
}

/// Sends the events queued for `conn` through its session's `machine`, after
/// what it is sending. A connection that fails to take them is closed.
#[cfg(feature = "events")]
fn send_events(machine: &mut Machine, conn: &Conn) -> Result<(), Closed> {
    loop {
        send(machine, &conn.stream)?;
        let next = lock(&conn.events).pop_front();
        let Some((topic, payload)) = next else { return Ok(()) };
        // The emitter checked that it fits, and nothing is being sent: it is taken.
        let _ = machine.emit(crate::Topic::new(topic), &crate::wire::Encoded(&payload));
    }
}
