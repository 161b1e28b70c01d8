//! TCP on the host: serve a service to many connections, or connect a client.
//!
//! Each accepted connection gets its own thread, server machine and session, so
//! a misbehaving connection (garbage, a stalled half frame, a sudden close)
//! cannot disturb another. The number of connections served at once is bounded;
//! a connection holds its slot until its peer closes it (there is no idle
//! timeout yet), so peers that connect and stay silent can use up the slots.

use std::format;
use std::io;
use std::net::{TcpListener, TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;

use super::IoLink;
use crate::driver::{Client, Server};
use crate::machine::{Dispatch, ServerMachine};
use crate::time::StdClock;

/// Connects a client to `addr`, with Nagle's algorithm off (a request is one small write).
///
/// # Errors
/// As `TcpStream::connect`.
pub fn connect(addr: impl ToSocketAddrs) -> io::Result<Client<IoLink<TcpStream>, StdClock>> {
    let stream = TcpStream::connect(addr)?;
    stream.set_nodelay(true)?;
    Ok(Client::new(IoLink::new(stream), StdClock::new()))
}

/// Serves `new_service()` to every connection accepted on `listener`, at most
/// `max_connections` at once (a connection beyond that is closed at once).
/// Returns only if accepting fails.
///
/// # Errors
/// The listener's error.
pub fn serve<S, F>(listener: TcpListener, max_connections: usize, new_service: F) -> io::Result<()>
where
    S: Dispatch + Send + 'static,
    F: Fn() -> S,
{
    let live = Arc::new(AtomicUsize::new(0));
    let mut boot_id: u32 = std::process::id();
    loop {
        let (stream, peer) = listener.accept()?;
        if live.load(Ordering::SeqCst) >= max_connections {
            drop(stream);
            continue;
        }
        live.fetch_add(1, Ordering::SeqCst);
        let service = new_service();
        let count = live.clone();
        // Each connection's server reports its own boot id.
        boot_id = boot_id.wrapping_add(1);
        let spawned = thread::Builder::new().name(format!("wirecall {peer}")).spawn(move || {
            let _ = stream.set_nodelay(true);
            let machine = ServerMachine::<1024, 1024>::with_boot_id(boot_id);
            let mut server = Server::with_machine(IoLink::new(stream), service, StdClock::new(), machine);
            let _ = server.serve();
            count.fetch_sub(1, Ordering::SeqCst);
        });
        if spawned.is_err() {
            // The closure never ran: the connection is dropped, and so is its count.
            live.fetch_sub(1, Ordering::SeqCst);
        }
    }
}
