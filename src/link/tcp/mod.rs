//! TCP on the host: serve a service to many connections, or connect a client.
//!
//! [`TcpServer`] serves over a `TcpListener`, one thread per connection, and
//! is built to keep serving whatever its peers do:
//!
//! - **Bounded, and never locked out.** At most
//!   [`max_connections`](ServeConfig::max_connections) connections are served
//!   at once, each with a thread and a socket: a connection's slot is held
//!   until its thread has ended, and given back on every exit of it, a
//!   panicking handler's included. When all are taken, a new connection closes
//!   the one that has been idle longest and waits (up to a second) for its
//!   thread to end. A connection running a call is never closed for it: from
//!   the moment its request is fed to the machine to the last byte of the
//!   answer, and while a stream has items and credit to send. If every
//!   connection is running a call for that second, the new one is closed.
//! - **Nothing pins a thread.** A connection with no complete frame for the
//!   [idle timeout](ServeConfig::idle_timeout), a frame started and not
//!   finished within the [frame timeout](ServeConfig::frame_timeout), or an
//!   answer the peer does not read within the
//!   [write timeout](ServeConfig::write_timeout) is closed; TCP keepalive
//!   finds peers that vanished.
//! - **Accepting survives.** An error of `accept` (a peer that reset, no file
//!   descriptor left) is logged and waited out; only a listener that is not
//!   listening ends [`serve`](TcpServer::serve).
//! - **Sessions outlive connections.** The server keeps each client's session
//!   (its sequence numbers and reply cache: a `ServerMachine`) by client id, up
//!   to [`sessions`](ServeConfig::sessions) of them (the least recently used
//!   goes first). A client that reconnects with the same id and a Hello that is
//!   not fresh (`Client::replace_link`) resumes its session: a call in flight
//!   at the drop is answered from the cache if it ran, and runs once if it
//!   never arrived. A newer connection with the same client id takes the
//!   session over and the older one is closed (if a call of the older one is
//!   running, the newer one waits for it, without holding a thread beyond its
//!   slot); a Hello never touches another client's session.
//! - **Client ids must be unique per server.** Two clients with the same id
//!   are one client to the server: each takes the session over from the other,
//!   and one may be answered from the other's reply cache. Hosts draw a random
//!   32-bit id for each client they make (`Client::new` with feature `std`,
//!   and [`connect`]), once per client life. Client id 0 (every `no_std`
//!   client's unless it sets one, and `ClientMachine::new()`'s) is anonymous:
//!   its session is the connection's alone, never kept after it nor taken by
//!   another connection, so an anonymous client that reconnects starts a new
//!   session. Firmware that wants its session to outlive a connection sets an
//!   id of its own, unique among the server's clients
//!   (`ClientMachine::with_identity`).
//! - **Client ids are not credentials.** A peer that knows a client's id can
//!   take its session over, cached answers included. A peer that makes up ids
//!   fills the session store: one connection adds at most one session to it (a
//!   Hello with a new id replaces the session the connection added before), but
//!   many connections, each with new ids, push the sessions of disconnected
//!   clients out, least recently used first, and those clients cannot resume.
//!   Where peers are not trusted, authenticate them first (and limit the
//!   connections each may open).
//! - **One service or one per connection.** [`TcpServer::shared`] serves one
//!   service to every connection, behind a `Mutex` (locked only while a
//!   request is dispatched, never while answers are written);
//!   [`TcpServer::per_connection`] gives each connection its own (a factory
//!   that panics closes that connection only). With feature `events`, an
//!   `Emitter` sends events to every connected client: it only queues them
//!   (never waiting for a client, so a handler can emit under the shared
//!   lock), and each connection's thread writes its own.
//!
//! The server's boot id (in every Welcome) is random, one per `TcpServer`.
//! Its machines have 1024-byte receive and transmit buffers and a window of
//! one call.

use core::time::Duration;
use std::io;
use std::net::{TcpListener, TcpStream, ToSocketAddrs};

use super::IoLink;
use crate::driver::Client;
use crate::machine::Dispatch;
use crate::time::StdClock;

mod conn;
mod server;

#[cfg(feature = "events")]
pub use server::Emitter;
pub use server::TcpServer;

/// Connects a client to `addr`, with Nagle's algorithm off (a request is one
/// small write). The client has a random client id, so a server that keeps
/// sessions by client id can resume its session after a
/// [`replace_link`](Client::replace_link) with a new connection.
///
/// # Errors
/// As `TcpStream::connect`.
pub fn connect(addr: impl ToSocketAddrs) -> io::Result<Client<IoLink<TcpStream>, StdClock>> {
    let stream = TcpStream::connect(addr)?;
    stream.set_nodelay(true)?;
    Ok(Client::new(IoLink::new(stream), StdClock::new()))
}

/// Serves `new_service()`, one per connection, to the connections accepted
/// on `listener`, at most `max_connections` at once, with the other settings
/// of [`ServeConfig::default`]: the same as
/// `TcpServer::per_connection(new_service, ServeConfig::default().max_connections(max_connections)).serve(listener)`.
///
/// # Errors
/// As [`TcpServer::serve`]: only a listener that is not listening.
pub fn serve<S, F>(listener: TcpListener, max_connections: usize, new_service: F) -> io::Result<()>
where
    S: Dispatch + Send + 'static,
    F: Fn() -> S,
{
    TcpServer::per_connection(new_service, ServeConfig::default().max_connections(max_connections)).serve(listener)
}

/// How a [`TcpServer`] treats its connections. Start from
/// [`ServeConfig::default()`] and change what you need:
/// `ServeConfig::default().max_connections(16).idle_timeout(None)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServeConfig {
    max_connections: usize,
    idle_timeout: Option<Duration>,
    frame_timeout: Duration,
    write_timeout: Duration,
    keepalive: Option<Duration>,
    sessions: usize,
}

impl ServeConfig {
    /// The defaults: 128 connections, a 10-minute idle timeout, 5 s for a
    /// started frame, 10 s for a write, keepalive probes after 60 s of
    /// silence, 1024 sessions kept.
    pub const DEFAULT: ServeConfig = ServeConfig {
        max_connections: 128,
        idle_timeout: Some(Duration::from_secs(600)),
        frame_timeout: Duration::from_secs(5),
        write_timeout: Duration::from_secs(10),
        keepalive: Some(Duration::from_secs(60)),
        sessions: 1024,
    };

    /// How many connections are served at once (128; at least 1). When all
    /// are taken, a new connection closes the one idle longest. Each holds a
    /// thread and a file descriptor: keep it below the process's limit on
    /// open files.
    #[must_use]
    pub const fn max_connections(mut self, max: usize) -> Self {
        self.max_connections = if max == 0 { 1 } else { max };
        self
    }

    /// How long a connection may go without a complete frame from its peer
    /// before it is closed (10 minutes); `None` for no limit. A client that
    /// only listens for events should call `ping` within it.
    #[must_use]
    pub const fn idle_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.idle_timeout = timeout;
        self
    }

    /// How long a frame may take from its first byte to its last (5 s; at
    /// least 1 ms): a peer that starts a frame and does not finish it (a half
    /// frame, or one byte at a time) is closed after it.
    #[must_use]
    pub const fn frame_timeout(mut self, timeout: Duration) -> Self {
        self.frame_timeout = at_least_a_millisecond(timeout);
        self
    }

    /// How long a write may wait for the peer to take bytes (10 s; at least
    /// 1 ms): a peer that stops reading is closed after it.
    #[must_use]
    pub const fn write_timeout(mut self, timeout: Duration) -> Self {
        self.write_timeout = at_least_a_millisecond(timeout);
        self
    }

    /// TCP keepalive: how long a connection may be silent before the system
    /// probes its peer (60 s, then a probe every 10 s at most where the system
    /// allows setting it, until the system gives up and the connection fails);
    /// `None` leaves keepalive off.
    #[must_use]
    pub const fn keepalive(mut self, idle: Option<Duration>) -> Self {
        self.keepalive = idle;
        self
    }

    /// How many client sessions are kept by client id for clients to resume
    /// (1024; never fewer than `max_connections`). When a new client id needs
    /// room, the least recently used session of a client that is not
    /// connected is forgotten. Each costs about 3 KiB. Anonymous clients (id
    /// 0) have none kept.
    #[must_use]
    pub const fn sessions(mut self, sessions: usize) -> Self {
        self.sessions = sessions;
        self
    }

    /// Sessions kept: never fewer than connections served.
    const fn session_capacity(&self) -> usize {
        if self.sessions > self.max_connections { self.sessions } else { self.max_connections }
    }
}

impl Default for ServeConfig {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// A random 32-bit number, never 0 (the anonymous client id): std's randomly
/// keyed hasher over the time, the process id and a counter. For client and
/// boot ids, not for secrets.
pub(crate) fn random_id() -> u32 {
    use core::hash::{BuildHasher, Hasher};
    use core::sync::atomic::{AtomicU32, Ordering};
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    if let Ok(since) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        hasher.write_u128(since.as_nanos());
    }
    hasher.write_u32(std::process::id());
    hasher.write_u32(COUNTER.fetch_add(1, Ordering::Relaxed));
    let hash = hasher.finish();
    match (hash ^ (hash >> 32)) as u32 {
        0 => 1,
        id => id,
    }
}

const fn at_least_a_millisecond(d: Duration) -> Duration {
    if d.as_millis() == 0 { Duration::from_millis(1) } else { d }
}
