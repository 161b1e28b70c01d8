//! Where the peers' clients and servers run: the tokio runtimes of
//! `benches/compare.rs` and `benches/tcp_compare.rs`.

use std::future::Future;

use tokio::runtime::{Builder, Runtime};

/// How a peer's client and server are laid out on threads. wirecall's are
/// always one thread each: the blocking client on the bench thread, the
/// blocking server in a thread of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Topology {
    /// A current-thread runtime on the bench thread for the client, another in
    /// a thread of its own for the server: one thread each side, as wirecall's.
    ThreadEach,
    /// One multi-thread runtime with the default worker count (what
    /// `#[tokio::main]` makes): the client in `block_on` on the bench thread,
    /// the server a task on the workers.
    MultiThread,
    /// One current-thread runtime: client and server tasks take turns on the
    /// bench thread, with no hand-off between threads at all (which wirecall's
    /// blocking drivers cannot do).
    OneThread,
}

impl Topology {
    /// Every layout, the headline one first.
    pub const ALL: [Topology; 3] = [Topology::ThreadEach, Topology::MultiThread, Topology::OneThread];

    /// The name in the output.
    pub fn label(self) -> &'static str {
        match self {
            Topology::ThreadEach => "thread-each",
            Topology::MultiThread => "multi-thread",
            Topology::OneThread => "one-thread",
        }
    }

    /// Starts the server future that `server` makes (it is called inside the
    /// server's runtime), and returns the runtime for the client.
    pub fn start<F, Fut>(self, server: F) -> Runtime
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        match self {
            Topology::ThreadEach => {
                std::thread::Builder::new()
                    .name("peer server".into())
                    .spawn(move || current_thread().block_on(async move { server().await }))
                    .expect("a server thread");
                current_thread()
            }
            Topology::MultiThread => {
                let runtime = Builder::new_multi_thread().enable_all().build().expect("a tokio runtime");
                runtime.spawn(async move { server().await });
                runtime
            }
            Topology::OneThread => {
                let runtime = current_thread();
                runtime.spawn(async move { server().await });
                runtime
            }
        }
    }
}

fn current_thread() -> Runtime {
    Builder::new_current_thread().enable_all().build().expect("a tokio runtime")
}
