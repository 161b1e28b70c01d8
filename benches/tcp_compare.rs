//! wirecall against tarpc over TCP on 127.0.0.1 (issue #6): `add(2, 3)`, one
//! call in flight at a time.
//!
//! - wirecall: the blocking client of `wirecall::link::tcp::connect` against
//!   `wirecall::link::tcp::serve` in a thread (a thread and a 1024-byte server
//!   machine per connection), on an ephemeral port.
//! - tarpc: a `#[tarpc::service]` client and server over
//!   `tarpc::serde_transport::tcp` with its bincode codec
//!   (`tokio_serde::formats::Bincode`, feature `serde-transport-bincode`; tarpc
//!   also offers JSON), length-delimited frames. Like wirecall's, its sockets
//!   have Nagle's algorithm off, and its server answers each request in place
//!   (no task per request). It runs in the three layouts of tokio runtimes of
//!   `support/topology.rs`: `thread-each` (a current-thread runtime on each side,
//!   one thread each, as wirecall's client and server: the headline),
//!   `multi-thread` (one runtime as `#[tokio::main]` makes it) and `one-thread`
//!   (client and server tasks on the bench thread).
//!
//! All of them run in rounds of the same number of calls, in a rotating order,
//! so machine drift affects them alike. Each call is timed with
//! `std::time::Instant`; calls per second is the median round, p50 and p99 are
//! over every call of every round.
//!
//! Run:
//!
//! ```sh
//! cargo bench --bench tcp_compare                # 15 rounds of 20,000 calls each
//! cargo bench --bench tcp_compare -- --quick     # short mode: 9 rounds of 3,000 calls
//! ```
//!
//! It prints one `tcp:` line per system, then, for tarpc in the `thread-each`
//! layout (latencies in microseconds),
//!
//! ```text
//! compare: tarpc tcp-add wirecall=<calls/s> peer=<calls/s> ratio=<wirecall/peer>
//! compare: tarpc tcp-add-p50 wirecall=<µs> peer=<µs>
//! compare: tarpc tcp-add-p99 wirecall=<µs> peer=<µs>
//! ```
//!
//! and the same as `compare-multi-thread:` and `compare-one-thread:` for the
//! other two layouts.
//!
//! Run without `--bench` (as `cargo test --benches` does), it makes a few calls
//! as a smoke test and measures nothing.

use std::hint::black_box;
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use tarpc::tokio_serde::formats::Bincode;
use tokio::runtime::Runtime;

#[path = "support/topology.rs"]
mod topology;

use topology::Topology;

mod wc {
    wirecall::service! {
        /// The benchmark service.
        pub mod calc {
            /// a + b
            fn add(a: i32, b: i32) -> i32 = 1;
        }
    }

    pub struct Handlers;

    impl calc::Service for Handlers {
        fn add(&mut self, a: i32, b: i32) -> i32 {
            a.wrapping_add(b)
        }
    }
}

#[tarpc::service]
trait Calc {
    async fn add(a: i32, b: i32) -> i32;
}

#[derive(Clone)]
struct TarpcHandlers;

impl Calc for TarpcHandlers {
    async fn add(self, _: tarpc::context::Context, a: i32, b: i32) -> i32 {
        a.wrapping_add(b)
    }
}

/// One round: the time each call took, and the time the whole round took.
struct Round {
    latencies: Vec<Duration>,
    elapsed: Duration,
}

/// A client connected to its server, making `add(2, 3)` calls.
trait System {
    fn label(&self) -> String;
    fn round(&mut self, calls: usize) -> Round;
}

type WirecallClient =
    wc::calc::Client<wirecall::Client<wirecall::link::IoLink<std::net::TcpStream>, wirecall::StdClock>>;

struct Wirecall {
    client: WirecallClient,
}

impl Wirecall {
    /// A server on an ephemeral port (its thread runs until the process ends) and a client connected to it.
    fn new() -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("local address");
        std::thread::spawn(move || wirecall::link::tcp::serve(listener, 4, || wc::calc::Dispatcher(wc::Handlers)));
        Wirecall { client: wc::calc::Client(wirecall::link::tcp::connect(addr).expect("connect")) }
    }
}

impl System for Wirecall {
    fn label(&self) -> String {
        "wirecall".into()
    }

    fn round(&mut self, calls: usize) -> Round {
        let mut latencies = Vec::with_capacity(calls);
        let started = Instant::now();
        for _ in 0..calls {
            let call = Instant::now();
            let sum = self.client.add(black_box(2), black_box(3)).expect("add");
            latencies.push(call.elapsed());
            assert_eq!(sum, 5);
        }
        Round { latencies, elapsed: started.elapsed() }
    }
}

struct Tarpc {
    topology: Topology,
    // Dropped after the client.
    client: CalcClient,
    runtime: Runtime,
}

impl Tarpc {
    /// A server on an ephemeral port, laid out as `topology` says, and a client connected to it.
    fn new(topology: Topology) -> Self {
        use tarpc::server::Channel as _;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("local address");
        listener.set_nonblocking(true).expect("non-blocking");
        let runtime = topology.start(move || async move {
            let listener = tokio::net::TcpListener::from_std(listener).expect("a tokio listener");
            let mut incoming =
                tarpc::serde_transport::tcp::listen_on(listener, Bincode::default).await.expect("listen");
            while let Some(Ok(transport)) = incoming.next().await {
                transport.get_ref().set_nodelay(true).expect("nodelay");
                let channel = tarpc::server::BaseChannel::with_defaults(transport);
                tokio::spawn(channel.execute(TarpcHandlers.serve()).for_each(|answer| answer));
            }
        });
        let client = runtime.block_on(async {
            let transport = tarpc::serde_transport::tcp::connect(addr, Bincode::default).await.expect("connect");
            transport.get_ref().set_nodelay(true).expect("nodelay");
            CalcClient::new(tarpc::client::Config::default(), transport).spawn()
        });
        Tarpc { topology, client, runtime }
    }
}

impl System for Tarpc {
    fn label(&self) -> String {
        format!("tarpc/{}", self.topology.label())
    }

    fn round(&mut self, calls: usize) -> Round {
        let Tarpc { client, runtime, .. } = self;
        runtime.block_on(async {
            let mut latencies = Vec::with_capacity(calls);
            let started = Instant::now();
            for _ in 0..calls {
                let call = Instant::now();
                let sum = client.add(tarpc::context::current(), black_box(2), black_box(3)).await.expect("add");
                latencies.push(call.elapsed());
                assert_eq!(sum, 5);
            }
            Round { latencies, elapsed: started.elapsed() }
        })
    }
}

/// Calls per second (median round), p50 and p99 in microseconds (every call).
struct Summary {
    rate: f64,
    p50: f64,
    p99: f64,
}

fn summarize(rounds: &[Round]) -> Summary {
    let mut rates: Vec<f64> = rounds.iter().map(|r| r.latencies.len() as f64 / r.elapsed.as_secs_f64()).collect();
    rates.sort_by(f64::total_cmp);
    let n = rates.len();
    let rate = if n % 2 == 1 { rates[n / 2] } else { (rates[n / 2 - 1] + rates[n / 2]) / 2.0 };
    let mut all: Vec<Duration> = rounds.iter().flat_map(|r| r.latencies.iter().copied()).collect();
    all.sort_unstable();
    // Nearest rank: the smallest latency with at least p of all calls at or below it.
    let percentile = |p: f64| {
        let rank = ((p * all.len() as f64).ceil() as usize).clamp(1, all.len());
        all[rank - 1].as_secs_f64() * 1e6
    };
    Summary { rate, p50: percentile(0.50), p99: percentile(0.99) }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let has = |flag: &str| args.iter().any(|a| a == flag);
    // Without `--bench` (cargo test), or with `--test`, only check that it works.
    let test_mode = !has("--bench") || has("--test");
    let (rounds, calls) = if test_mode {
        (1, 10)
    } else if has("--quick") {
        (9, 3_000)
    } else {
        (15, 20_000)
    };

    let mut systems: Vec<Box<dyn System>> = vec![Box::new(Wirecall::new())];
    for topology in Topology::ALL {
        systems.push(Box::new(Tarpc::new(topology)));
    }

    // Warm up every one (connections, sessions, caches) before anything is timed.
    for system in &mut systems {
        system.round(calls.min(1_000));
    }
    let mut results: Vec<Vec<Round>> = systems.iter().map(|_| Vec::new()).collect();
    for round in 0..rounds {
        for k in 0..systems.len() {
            let s = (round + k) % systems.len();
            results[s].push(systems[s].round(calls));
        }
    }
    if test_mode {
        println!("tcp_compare: smoke test passed (run with `cargo bench` to measure)");
        return;
    }

    let summaries: Vec<Summary> = results.iter().map(|rounds| summarize(rounds)).collect();
    for (system, s) in systems.iter().zip(&summaries) {
        println!(
            "tcp: {} add calls_per_sec={:.0} p50={:.1}us p99={:.1}us rounds={rounds} calls_per_round={calls}",
            system.label(),
            s.rate,
            s.p50,
            s.p99
        );
    }
    let ours = &summaries[0];
    for (i, topology) in Topology::ALL.iter().enumerate() {
        let prefix = if i == 0 { "compare".to_string() } else { format!("compare-{}", topology.label()) };
        let theirs = &summaries[1 + i];
        println!(
            "{prefix}: tarpc tcp-add wirecall={:.0} peer={:.0} ratio={:.2}",
            ours.rate,
            theirs.rate,
            ours.rate / theirs.rate
        );
        println!("{prefix}: tarpc tcp-add-p50 wirecall={:.1} peer={:.1}", ours.p50, theirs.p50);
        println!("{prefix}: tarpc tcp-add-p99 wirecall={:.1} peer={:.1}", ours.p99, theirs.p99);
    }
}
