//! The accepting side: the connections served, making room for a new one,
//! accept errors, and (feature `events`) the [`Emitter`].

use core::time::Duration;
use std::collections::HashMap;
use std::format;
use std::io;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::Instant;

#[cfg(feature = "events")]
use std::{collections::VecDeque, sync::atomic::AtomicBool, vec::Vec};

use super::ServeConfig;
use super::conn::{self, ConnService, Session};
use crate::machine::Dispatch;
use crate::time::StdClock;

/// Locks `mutex`, whether or not a thread panicked while it held it: the
/// server's own maps stay consistent at every step, and a shared service is
/// used as a panicking handler left it rather than refusing every call after.
pub(super) fn lock<T: ?Sized>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A TCP server: a service (shared, or one per connection), a
/// [`ServeConfig`], and the state its connections share (sessions kept by
/// client id, the connections being served). Build it, take an
/// `emitter()` if you send events (feature `events`), then [`serve`](Self::serve):
///
/// ```no_run
/// use std::sync::{Arc, Mutex};
/// use wirecall::StdClock;
/// use wirecall::demo::{Board, demo};
/// use wirecall::link::tcp::{ServeConfig, TcpServer};
///
/// let board = Arc::new(Mutex::new(demo::Dispatcher(Board::new(StdClock::new()))));
/// let listener = std::net::TcpListener::bind("127.0.0.1:7000")?;
/// TcpServer::shared(board, ServeConfig::default().max_connections(16)).serve(listener)?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct TcpServer<S, F = fn() -> S> {
    source: Source<S, F>,
    shared: Arc<Shared>,
    /// The clock of a shared service's connections, started with the server
    /// (about when the service was made, and its clock if it has one): the
    /// deadlines its handlers see are on it.
    clock: StdClock,
}

/// Where each connection's service comes from.
enum Source<S, F> {
    Shared(Arc<Mutex<S>>),
    Factory(F),
}

/// What the accept loop, the connections and the emitters share.
pub(super) struct Shared {
    pub(super) config: ServeConfig,
    /// The boot id every session's Welcome reports: one per server.
    pub(super) boot_id: u32,
    /// The time `last_active` and `last_used` count from.
    epoch: std::time::Instant,
    next_id: AtomicU64,
    /// The connections being served, by id, each until its thread ends
    /// (closed ones included): their number is the slots taken.
    pub(super) conns: Mutex<HashMap<u64, Arc<Conn>>>,
    /// Signalled when a slot is given back.
    slot_freed: Condvar,
    /// The sessions kept, by client id.
    pub(super) sessions: Mutex<HashMap<u32, Arc<Session>>>,
    /// An [`Emitter`] was handed out: connections with a session look for
    /// queued events every [`EVENT_TICK`] while they wait for input.
    #[cfg(feature = "events")]
    pub(super) emitting: AtomicBool,
}

impl Shared {
    /// Microseconds since the server was built: a time for ordering.
    pub(super) fn micros(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_micros()).unwrap_or(u64::MAX)
    }
}

/// [`Conn::state`]: running a call (its thread holds its session's machine
/// to feed it input or write what it sends): not to be evicted.
const BUSY: u8 = 1;
/// [`Conn::state`]: closed (evicted, taken over, or ended); its thread is
/// leaving, and gives its slot back when it has.
const CLOSED: u8 = 2;

/// How long a new connection waits for the slot of the connection closed to
/// make room for it, once all are taken.
const ADMIT_WAIT: Duration = Duration::from_secs(1);

/// One connection being served, as the others see it.
pub(super) struct Conn {
    /// Never 0 (0 is "no connection" in a session's owner).
    pub(super) id: u64,
    /// The socket; its thread reads and writes through it, and closing it
    /// (eviction, takeover) unblocks that thread at once.
    pub(super) stream: TcpStream,
    /// When the last complete frame arrived or the last call ended (or the
    /// connection was accepted).
    pub(super) last_active: AtomicU64,
    /// [`BUSY`] and [`CLOSED`]: only the connection's thread sets or clears
    /// `BUSY`, and only while not `CLOSED`; eviction closes only a connection
    /// with neither. Both by compare-and-swap, so a call never starts on a
    /// connection being evicted, and one being evicted is never running a call.
    state: AtomicU8,
    /// The session it serves, once its client said Hello.
    pub(super) session: Mutex<Option<Arc<Session>>>,
    /// Events for its thread to send (feature `events`).
    #[cfg(feature = "events")]
    pub(super) events: Mutex<VecDeque<(u16, Vec<u8>)>>,
}

impl Conn {
    /// Closes the connection: its thread's next read or write fails, and it
    /// starts no call.
    pub(super) fn close(&self) {
        self.state.fetch_or(CLOSED, Ordering::SeqCst);
        let _ = self.stream.shutdown(Shutdown::Both);
    }

    pub(super) fn is_closed(&self) -> bool {
        self.state.load(Ordering::SeqCst) & CLOSED != 0
    }

    /// Marks the connection as running a call (still true if it already
    /// was); `false` if it is closed, and must not.
    pub(super) fn begin_call(&self) -> bool {
        self.state.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |s| (s & CLOSED == 0).then_some(s | BUSY)).is_ok()
    }

    /// The call is over: the connection may be evicted again, counting its
    /// idle time from `now`.
    pub(super) fn end_call(&self, now: u64) {
        self.last_active.store(now, Ordering::Relaxed);
        self.state.fetch_and(!BUSY, Ordering::SeqCst);
    }

    /// Closes the connection if it is neither running a call nor closed.
    fn evict(&self) -> bool {
        let evicted = self.state.compare_exchange(0, CLOSED, Ordering::SeqCst, Ordering::SeqCst).is_ok();
        if evicted {
            let _ = self.stream.shutdown(Shutdown::Both);
        }
        evicted
    }
}

/// A connection's hold on its slot: released when dropped, on every exit of
/// the connection's thread, panics included (or with the thread's closure
/// if the thread could not start). Closing a connection does not release
/// its slot: its thread does, when it has ended.
pub(super) struct Slot {
    pub(super) shared: Arc<Shared>,
    pub(super) conn: Arc<Conn>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.conn.close();
        let session = lock(&self.conn.session).take();
        if let Some(session) = session {
            session.release(self.conn.id, self.shared.micros());
        }
        lock(&self.shared.conns).remove(&self.conn.id);
        self.shared.slot_freed.notify_all();
    }
}

impl<S: Dispatch + Send + 'static> TcpServer<S> {
    /// A server whose connections all share `service`: each call locks it
    /// while it is dispatched (a slow handler holds up the others' calls).
    /// A handler that panics leaves the service as it was at the panic, and
    /// it keeps serving.
    pub fn shared(service: Arc<Mutex<S>>, config: ServeConfig) -> Self {
        TcpServer { source: Source::Shared(service), shared: Self::new_shared(config), clock: StdClock::new() }
    }
}

impl<S: Dispatch + Send + 'static, F: Fn() -> S> TcpServer<S, F> {
    /// A server that gives each connection a service of its own,
    /// `new_service()`, called on the accepting thread (if it panics, that
    /// connection is closed and serving goes on). A client that reconnects
    /// keeps its session, not its service.
    pub fn per_connection(new_service: F, config: ServeConfig) -> Self {
        TcpServer { source: Source::Factory(new_service), shared: Self::new_shared(config), clock: StdClock::new() }
    }

    fn new_shared(config: ServeConfig) -> Arc<Shared> {
        Arc::new(Shared {
            config,
            boot_id: super::random_id(),
            epoch: std::time::Instant::now(),
            next_id: AtomicU64::new(1),
            conns: Mutex::new(HashMap::new()),
            slot_freed: Condvar::new(),
            sessions: Mutex::new(HashMap::new()),
            #[cfg(feature = "events")]
            emitting: AtomicBool::new(false),
        })
    }

    /// A handle that sends events to the clients connected to this server
    /// (feature `events`), from any thread, before or while it serves.
    #[cfg(feature = "events")]
    pub fn emitter(&self) -> Emitter {
        self.shared.emitting.store(true, Ordering::SeqCst);
        Emitter { shared: self.shared.clone() }
    }

    /// Accepts connections on `listener` and serves each on a thread of its
    /// own, for as long as the listener works. Errors of `accept` are logged
    /// and waited out (100 ms while the process has no file descriptor left,
    /// from 10 ms up to 1 s for other repeated errors).
    ///
    /// # Errors
    /// Only when the listener itself is unusable (not listening, or not a
    /// socket): it returns that error.
    pub fn serve(self, listener: TcpListener) -> io::Result<()> {
        // Accepting blocks; the pauses below are for errors only.
        let _ = listener.set_nonblocking(false);
        let mut pause = Duration::ZERO;
        loop {
            match listener.accept() {
                Ok((stream, peer)) => {
                    pause = Duration::ZERO;
                    self.admit(stream, peer);
                }
                Err(e) => match AcceptError::of(&e) {
                    AcceptError::Passing => {}
                    AcceptError::Listener => return Err(e),
                    AcceptError::NoDescriptors => {
                        wc_warn!("tcp: accept: no file descriptor left (os error {}); waiting 100 ms", os_error(&e));
                        thread::sleep(Duration::from_millis(100));
                    }
                    AcceptError::Other => {
                        pause = (pause * 2).clamp(Duration::from_millis(10), Duration::from_secs(1));
                        wc_warn!(
                            "tcp: accept failed (os error {}); waiting {} ms",
                            os_error(&e),
                            pause.as_millis() as u64
                        );
                        thread::sleep(pause);
                    }
                },
            }
        }
    }

    /// Serves a new connection, if it can get a slot.
    fn admit(&self, stream: TcpStream, peer: SocketAddr) {
        let config = &self.shared.config;
        let blocking = stream.set_nonblocking(false);
        if blocking.and_then(|()| stream.set_write_timeout(Some(config.write_timeout))).is_err() {
            // Without a write timeout a peer that stops reading could hold the thread.
            return;
        }
        let _ = stream.set_nodelay(true);
        if let Some(idle) = config.keepalive {
            let _ = set_keepalive(&stream, idle);
        }
        let id = self.shared.next_id.fetch_add(1, Ordering::Relaxed);
        let conn = Arc::new(Conn {
            id,
            stream,
            last_active: AtomicU64::new(self.shared.micros()),
            state: AtomicU8::new(0),
            session: Mutex::new(None),
            #[cfg(feature = "events")]
            events: Mutex::new(VecDeque::new()),
        });
        if let Err(why) = self.take_slot(&conn) {
            wc_warn!("tcp: all {} connections taken, {}; a new one is closed", config.max_connections, why);
            conn.close();
            return;
        }
        // From here on the slot is released whatever happens.
        let slot = Slot { shared: self.shared.clone(), conn };
        let (service, clock) = match &self.source {
            Source::Shared(service) => (ConnService::Shared(service.clone()), self.clock),
            // The clock starts with the connection, as the service's own clock
            // most likely does (it is made here): the deadlines handlers see are on it.
            Source::Factory(new_service) => {
                let made = std::panic::catch_unwind(std::panic::AssertUnwindSafe(new_service));
                let Ok(service) = made else {
                    wc_warn!("tcp: making the service of connection {} panicked; it is closed", id);
                    return;
                };
                (ConnService::Own(service), StdClock::new())
            }
        };
        let spawned =
            thread::Builder::new().name(format!("wirecall {peer}")).spawn(move || conn::run(slot, service, clock));
        if spawned.is_err() {
            // The closure was dropped, and the slot with it.
            wc_warn!("tcp: no thread for connection {}; closed", id);
        }
    }
}

impl<S, F> TcpServer<S, F> {
    /// Gives `conn` a slot. When all are taken, it closes the connection idle
    /// longest (unless one closed and not running a call is already leaving)
    /// and waits for its thread to end and give its slot back; with every
    /// connection running a call, it looks again every 10 ms. Up to
    /// [`ADMIT_WAIT`] in all; `Err` with why not.
    fn take_slot(&self, conn: &Arc<Conn>) -> Result<(), &'static str> {
        let max = self.shared.config.max_connections;
        let until = Instant::now() + ADMIT_WAIT;
        let mut conns = lock(&self.shared.conns);
        while conns.len() >= max {
            let leaving = conns.values().any(|c| c.state.load(Ordering::SeqCst) == CLOSED);
            let closing = leaving || evict_idlest(&conns);
            let Some(left) = until.checked_duration_since(Instant::now()).filter(|d| !d.is_zero()) else {
                return Err(if closing { "none given back in time" } else { "every one running a call" });
            };
            let wait = if closing { left } else { left.min(Duration::from_millis(10)) };
            conns = match self.shared.slot_freed.wait_timeout(conns, wait) {
                Ok((conns, _)) => conns,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
        conns.insert(conn.id, conn.clone());
        Ok(())
    }
}

/// Makes room for a new connection by closing the one whose last complete
/// frame (or call) is oldest, among those neither running a call nor closed
/// already. `false` if there is none.
fn evict_idlest(conns: &HashMap<u64, Arc<Conn>>) -> bool {
    loop {
        let idlest = conns
            .values()
            .filter(|c| c.state.load(Ordering::SeqCst) == 0)
            .min_by_key(|c| c.last_active.load(Ordering::Relaxed));
        let Some(conn) = idlest else { return false };
        // Fails only if it started a call (or closed) meanwhile: try the next.
        if conn.evict() {
            wc_debug!("tcp: all connections taken; closing the idlest, {}", conn.id);
            return true;
        }
    }
}

/// How the accept loop treats an error of `accept`.
enum AcceptError {
    /// A connection that failed before it was accepted, or a signal: accept again.
    Passing,
    /// The process or the system has no file descriptor left.
    NoDescriptors,
    /// The listener cannot accept at all.
    Listener,
    /// Anything else: wait, longer each time it repeats.
    Other,
}

impl AcceptError {
    fn of(e: &io::Error) -> Self {
        use io::ErrorKind::{ConnectionAborted, ConnectionReset, Interrupted, InvalidInput};
        match e.kind() {
            ConnectionAborted | ConnectionReset | Interrupted => return AcceptError::Passing,
            // EINVAL: the socket is not listening.
            InvalidInput => return AcceptError::Listener,
            _ => {}
        }
        // The same numbers on Linux, the BSDs and macOS: EMFILE, ENFILE, EBADF.
        #[cfg(unix)]
        match e.raw_os_error() {
            Some(23 | 24) => return AcceptError::NoDescriptors,
            Some(9) => return AcceptError::Listener,
            _ => {}
        }
        AcceptError::Other
    }
}

fn os_error(e: &io::Error) -> i32 {
    e.raw_os_error().unwrap_or(-1)
}

/// Turns TCP keepalive on: probes after `idle` of silence, then every 10 s
/// at most where the system allows setting the interval.
fn set_keepalive(stream: &TcpStream, idle: Duration) -> io::Result<()> {
    let keepalive = socket2::TcpKeepalive::new().with_time(idle);
    #[cfg(any(
        target_os = "android",
        target_os = "freebsd",
        target_os = "ios",
        target_os = "linux",
        target_os = "macos",
        target_os = "netbsd",
        target_os = "windows",
    ))]
    let keepalive = keepalive.with_interval(idle.min(Duration::from_secs(10)));
    socket2::SockRef::from(stream).set_tcp_keepalive(&keepalive)
}

/// Sends events to the clients connected to a [`TcpServer`] (feature
/// `events`): every connection whose client has said Hello. Cheap to clone;
/// usable from any thread, handlers included.
///
/// Emitting only queues: each connection's own thread writes its events,
/// after the answer it is writing if any, and within 20 ms if it is waiting
/// for input (once a server has handed out an emitter, its connections with
/// a session wait for input 20 ms at a time, to look at their queues).
#[cfg(feature = "events")]
#[derive(Clone)]
pub struct Emitter {
    shared: Arc<Shared>,
}

/// Events queued for a connection, at most: one emitted while its queue is
/// full (its client does not read, or a call holds the connection up) is
/// dropped for it, and not counted in what `emit` returns.
#[cfg(feature = "events")]
const EVENTS_QUEUED: usize = 64;

/// How long a connection with a session waits for input at a time, once the
/// server has an [`Emitter`]: the longest an event waits in its queue while
/// the connection is idle.
#[cfg(feature = "events")]
pub(super) const EVENT_TICK: Duration = Duration::from_millis(20);

#[cfg(feature = "events")]
impl Emitter {
    /// Queues `payload` on `topic` for every connected client and returns
    /// for how many it was queued. It never waits for a client: each
    /// connection's thread writes it (see [`Emitter`]). A client whose queue
    /// is full (64 events) does not get it, and sees no gap for it (events are
    /// numbered as they are written); a client that does not take what is
    /// written within the write timeout is closed. Events are never sent
    /// twice: a client that is not connected misses them.
    ///
    /// # Errors
    /// [`EmitError::TooLarge`](crate::machine::EmitError::TooLarge) if the
    /// event does not fit a transmit buffer: it went to no one.
    pub fn emit<T: serde::Serialize + ?Sized>(
        &self,
        topic: crate::Topic<T>,
        payload: &T,
    ) -> Result<usize, crate::machine::EmitError> {
        let mut buf = [0u8; conn::TX];
        if crate::wire::encode_event(0, topic.id, payload, &mut buf).is_err() {
            return Err(crate::machine::EmitError::TooLarge);
        }
        let encoded: Vec<u8> = match postcard::to_slice(payload, &mut buf) {
            Ok(bytes) => bytes.to_vec(),
            Err(_) => return Err(crate::machine::EmitError::TooLarge),
        };
        let conns: Vec<Arc<Conn>> = lock(&self.shared.conns).values().cloned().collect();
        let mut queued = 0;
        for conn in conns {
            if conn.is_closed() || lock(&conn.session).is_none() {
                continue;
            }
            let mut queue = lock(&conn.events);
            if queue.len() >= EVENTS_QUEUED {
                wc_debug!("tcp: connection {} has {} events queued; one more is dropped", conn.id, EVENTS_QUEUED);
                continue;
            }
            queue.push_back((topic.id, encoded.clone()));
            queued += 1;
        }
        Ok(queued)
    }
}
