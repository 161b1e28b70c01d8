//! wirecall against postcard-rpc and tarpc, in one process (issue #6).
//!
//! Three workloads, each a round trip with one call in flight at a time (as
//! wirecall's blocking client makes them): `add(2, 3)` → 5, `greet("Ada")` →
//! "Hello Ada", and `echo256` (256 bytes in, the same 256 bytes out).
//!
//! - wirecall: a `Client` and a `Server` (512-byte buffers) over
//!   `wirecall::link::loopback::pair()`, the server running `Server::serve()` in
//!   its own thread, the client calling from the bench thread.
//! - postcard-rpc: a `HostClient` and a `Server` joined by its in-process test
//!   channels (`host_client::test_channels` and `server::impls::test_channels`,
//!   feature `test-utils`: tokio mpsc channels carrying one `Vec<u8>` frame each),
//!   endpoints from `endpoints!`, handlers from `define_dispatch!`.
//! - tarpc: a `#[tarpc::service]` client and server over
//!   `tarpc::transport::channel::unbounded()`.
//!
//! Each peer runs in three layouts of tokio runtimes (`support/topology.rs`):
//! `thread-each` (a current-thread runtime on each side, one thread each, as
//! wirecall's client and server: the headline), `multi-thread` (one runtime as
//! `#[tokio::main]` makes it, the server on its workers), and `one-thread` (client
//! and server tasks on the bench thread, no hand-off between threads at all).
//!
//! Where there was a choice, it favours the peers: a tarpc server runs each
//! request in place rather than spawning a task for it (tarpc's README spawns
//! one), and a whole batch of calls runs inside one `block_on`.
//!
//! Run:
//!
//! ```sh
//! cargo bench --bench compare                # criterion (1 s warm-up, 3 s each), then 21 rounds of 10,000 calls
//! cargo bench --bench compare -- --quick     # short mode: criterion's --quick, then 11 rounds of 1,500 calls
//! ```
//!
//! Besides criterion's report (calls per second as "elem/s"), it prints, after
//! interleaved rounds (each round measures every system on every workload, in
//! a rotating order, so machine drift affects all of them alike; each figure is
//! the median round):
//!
//! ```text
//! compare: <peer> <workload> wirecall=<calls/s> peer=<calls/s> ratio=<wirecall/peer>
//! ```
//!
//! for the peers in the `thread-each` layout, the same as `compare-multi-thread:`
//! and `compare-one-thread:` for the other two, and the spread of every figure as
//! `compare-detail:`.
//!
//! Run without `--bench` (as `cargo test --benches` does), it makes a few calls of
//! each kind as a smoke test and measures nothing.

use std::hint::black_box;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput};
use futures::StreamExt as _;
use tokio::runtime::Runtime;

#[path = "support/topology.rs"]
mod topology;

use topology::Topology;

/// The size of the echo payload.
const ECHO_LEN: usize = 256;

/// The echo payload: 256 bytes, all different from their neighbours.
fn payload() -> [u8; ECHO_LEN] {
    core::array::from_fn(|i| i as u8)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Workload {
    Add,
    Greet,
    Echo,
}

impl Workload {
    const ALL: [Workload; 3] = [Workload::Add, Workload::Greet, Workload::Echo];

    fn name(self) -> &'static str {
        match self {
            Workload::Add => "add",
            Workload::Greet => "greet",
            Workload::Echo => "echo256",
        }
    }
}

/// One RPC system with a client and a server already connected.
trait System {
    fn name(&self) -> &'static str;
    /// How a peer's runtimes are laid out; `None` for wirecall.
    fn topology(&self) -> Option<Topology> {
        None
    }
    /// Makes `calls` calls of `workload`, one after the other, checks every
    /// answer, and returns the time they took.
    fn run(&mut self, workload: Workload, calls: u64) -> Duration;
}

// ---------------------------------------------------------------- wirecall

mod wc {
    use core::fmt::Write as _;

    use wirecall::heapless::{String, Vec};

    wirecall::service! {
        /// The benchmark service.
        pub mod bench {
            /// a + b
            fn add(a: i32, b: i32) -> i32 = 1;
            /// "Hello <name>"
            fn greet(name: &str) -> String<32> = 2;
            /// Returns its argument.
            fn echo(data: &[u8]) -> Vec<u8, 256> = 3;
        }
    }

    pub struct Handlers;

    impl bench::Service for Handlers {
        fn add(&mut self, a: i32, b: i32) -> i32 {
            a.wrapping_add(b)
        }
        fn greet(&mut self, name: &str) -> String<32> {
            let mut s = String::new();
            let _ = write!(s, "Hello {name}");
            s
        }
        fn echo(&mut self, data: &[u8]) -> Vec<u8, 256> {
            Vec::from_slice(data).unwrap_or_default()
        }
    }
}

type WirecallClient = wc::bench::Client<wirecall::Client<wirecall::link::loopback::End, wirecall::StdClock, 512, 512>>;

struct Wirecall {
    client: Option<WirecallClient>,
    server: Option<JoinHandle<()>>,
    payload: [u8; ECHO_LEN],
}

impl Wirecall {
    fn new() -> Self {
        let (host, board) = wirecall::link::loopback::pair();
        let server = std::thread::spawn(move || {
            let mut server: wirecall::Server<_, _, _, 512, 512> =
                wirecall::Server::sized(board, wc::bench::Dispatcher(wc::Handlers), wirecall::StdClock::new());
            let _ = server.serve();
        });
        let client = wc::bench::Client(wirecall::Client::sized(host, wirecall::StdClock::new()));
        Wirecall { client: Some(client), server: Some(server), payload: payload() }
    }
}

impl System for Wirecall {
    fn name(&self) -> &'static str {
        "wirecall"
    }

    fn run(&mut self, workload: Workload, calls: u64) -> Duration {
        let client = self.client.as_mut().expect("connected");
        let started = Instant::now();
        match workload {
            Workload::Add => {
                for _ in 0..calls {
                    assert_eq!(client.add(black_box(2), black_box(3)).expect("add"), 5);
                }
            }
            Workload::Greet => {
                for _ in 0..calls {
                    assert_eq!(client.greet(black_box("Ada")).expect("greet").as_str(), "Hello Ada");
                }
            }
            Workload::Echo => {
                for _ in 0..calls {
                    let back = client.echo(black_box(&self.payload)).expect("echo");
                    assert_eq!(back.as_slice(), &self.payload[..]);
                }
            }
        }
        started.elapsed()
    }
}

impl Drop for Wirecall {
    fn drop(&mut self) {
        // Dropping the client's end closes the pipe; the server's `serve` then returns.
        drop(self.client.take());
        if let Some(server) = self.server.take() {
            let _ = server.join();
        }
    }
}

// ------------------------------------------------------------ postcard-rpc

mod prpc {
    use postcard_rpc::header::{VarHeader, VarKeyKind, VarSeqKind};
    use postcard_rpc::host_client::HostClient;
    // The macros name `postcard_schema` at the call site.
    use postcard_rpc::postcard_schema;
    use postcard_rpc::server::impls::test_channels::dispatch_impl::{Settings, WireSpawnImpl, WireTxImpl, new_server};
    use postcard_rpc::server::impls::test_channels::{ChannelWireRx, ChannelWireSpawn, ChannelWireTx};
    use postcard_rpc::standard_icd::WireError;
    use postcard_rpc::{TopicDirection, define_dispatch, endpoints, topics};
    use tokio::runtime::Runtime;

    use super::Topology;

    pub type AddArgs = (i32, i32);
    pub type Bytes = Vec<u8>;

    endpoints! {
        list = ENDPOINT_LIST;
        | EndpointTy    | RequestTy | ResponseTy | Path          |
        | ----------    | --------- | ---------- | ----          |
        | AddEndpoint   | AddArgs   | i32        | "bench/add"   |
        | GreetEndpoint | String    | String     | "bench/greet" |
        | EchoEndpoint  | Bytes     | Bytes      | "bench/echo"  |
    }

    topics! {
        list = TOPICS_IN_LIST;
        direction = TopicDirection::ToServer;
        | TopicTy | MessageTy | Path |
        | ------- | --------- | ---- |
    }

    topics! {
        list = TOPICS_OUT_LIST;
        direction = TopicDirection::ToClient;
        | TopicTy | MessageTy | Path |
        | ------- | --------- | ---- |
    }

    pub struct Context;

    define_dispatch! {
        app: BenchApp;
        spawn_fn: spawn_fn;
        tx_impl: WireTxImpl;
        spawn_impl: WireSpawnImpl;
        context: Context;

        endpoints: {
            list: ENDPOINT_LIST;

            | EndpointTy    | kind     | handler |
            | ----------    | ----     | ------- |
            | AddEndpoint   | blocking | add     |
            | GreetEndpoint | blocking | greet   |
            | EchoEndpoint  | blocking | echo    |
        };
        topics_in: {
            list: TOPICS_IN_LIST;

            | TopicTy | kind | handler |
            | ------- | ---- | ------- |
        };
        topics_out: {
            list: TOPICS_OUT_LIST;
        };
    }

    fn add(_: &mut Context, _: VarHeader, (a, b): AddArgs) -> i32 {
        a.wrapping_add(b)
    }

    fn greet(_: &mut Context, _: VarHeader, name: String) -> String {
        format!("Hello {name}")
    }

    fn echo(_: &mut Context, _: VarHeader, data: Bytes) -> Bytes {
        data
    }

    /// A server laid out as `topology` says and a client joined to it by
    /// channels; returns the client and the runtime it runs on.
    pub fn connect(topology: Topology) -> (Runtime, HostClient<WireError>) {
        let (to_server, from_client) = tokio::sync::mpsc::channel(16);
        let (to_client, from_server) = tokio::sync::mpsc::channel(16);
        let runtime = topology.start(move || async move {
            let settings = Settings {
                tx: ChannelWireTx::new(to_client),
                rx: ChannelWireRx::new(from_client),
                buf: 1024,
                kkind: VarKeyKind::Key8,
            };
            let mut server = new_server(BenchApp::new(Context, ChannelWireSpawn), settings);
            let _ = server.run().await;
        });
        let client = {
            // The client spawns its I/O tasks on the runtime it is made in.
            let _context = runtime.enter();
            postcard_rpc::host_client::test_channels::new_from_channels(to_server, from_server, VarSeqKind::Seq4)
        };
        (runtime, client)
    }
}

struct PostcardRpc {
    topology: Topology,
    // Dropped after the client.
    client: postcard_rpc::host_client::HostClient<postcard_rpc::standard_icd::WireError>,
    runtime: Runtime,
    name: String,
    payload: Vec<u8>,
}

impl PostcardRpc {
    fn new(topology: Topology) -> Self {
        let (runtime, client) = prpc::connect(topology);
        PostcardRpc { topology, client, runtime, name: "Ada".into(), payload: payload().to_vec() }
    }
}

impl System for PostcardRpc {
    fn name(&self) -> &'static str {
        "postcard-rpc"
    }

    fn topology(&self) -> Option<Topology> {
        Some(self.topology)
    }

    fn run(&mut self, workload: Workload, calls: u64) -> Duration {
        let PostcardRpc { runtime, client, name, payload, .. } = self;
        runtime.block_on(async {
            let started = Instant::now();
            match workload {
                Workload::Add => {
                    for _ in 0..calls {
                        let sum = client.send_resp::<prpc::AddEndpoint>(black_box(&(2, 3))).await.expect("add");
                        assert_eq!(sum, 5);
                    }
                }
                Workload::Greet => {
                    for _ in 0..calls {
                        let hello = client.send_resp::<prpc::GreetEndpoint>(black_box(name)).await.expect("greet");
                        assert_eq!(hello, "Hello Ada");
                    }
                }
                Workload::Echo => {
                    for _ in 0..calls {
                        let back = client.send_resp::<prpc::EchoEndpoint>(black_box(payload)).await.expect("echo");
                        assert_eq!(back, *payload);
                    }
                }
            }
            started.elapsed()
        })
    }
}

impl Drop for PostcardRpc {
    fn drop(&mut self) {
        self.client.close();
    }
}

// ------------------------------------------------------------------- tarpc

#[tarpc::service]
trait BenchService {
    async fn add(a: i32, b: i32) -> i32;
    async fn greet(name: String) -> String;
    async fn echo(data: Vec<u8>) -> Vec<u8>;
}

#[derive(Clone)]
struct TarpcHandlers;

impl BenchService for TarpcHandlers {
    async fn add(self, _: tarpc::context::Context, a: i32, b: i32) -> i32 {
        a.wrapping_add(b)
    }
    async fn greet(self, _: tarpc::context::Context, name: String) -> String {
        format!("Hello {name}")
    }
    async fn echo(self, _: tarpc::context::Context, data: Vec<u8>) -> Vec<u8> {
        data
    }
}

struct Tarpc {
    topology: Topology,
    // Dropped after the client.
    client: BenchServiceClient,
    runtime: Runtime,
    payload: Vec<u8>,
}

impl Tarpc {
    fn new(topology: Topology) -> Self {
        use tarpc::server::Channel as _;
        let (client_end, server_end) = tarpc::transport::channel::unbounded();
        let runtime = topology.start(move || {
            // Each request is answered in place, one after the other: no task per request.
            tarpc::server::BaseChannel::with_defaults(server_end)
                .execute(TarpcHandlers.serve())
                .for_each(|answer| answer)
        });
        let client = {
            // The client spawns its dispatch task on the runtime it is made in.
            let _context = runtime.enter();
            BenchServiceClient::new(tarpc::client::Config::default(), client_end).spawn()
        };
        Tarpc { topology, client, runtime, payload: payload().to_vec() }
    }
}

impl System for Tarpc {
    fn name(&self) -> &'static str {
        "tarpc"
    }

    fn topology(&self) -> Option<Topology> {
        Some(self.topology)
    }

    fn run(&mut self, workload: Workload, calls: u64) -> Duration {
        let Tarpc { runtime, client, payload, .. } = self;
        runtime.block_on(async {
            let started = Instant::now();
            match workload {
                Workload::Add => {
                    for _ in 0..calls {
                        let sum = client.add(tarpc::context::current(), black_box(2), black_box(3)).await.expect("add");
                        assert_eq!(sum, 5);
                    }
                }
                Workload::Greet => {
                    for _ in 0..calls {
                        let hello =
                            client.greet(tarpc::context::current(), black_box("Ada").into()).await.expect("greet");
                        assert_eq!(hello, "Hello Ada");
                    }
                }
                Workload::Echo => {
                    for _ in 0..calls {
                        // tarpc takes its arguments by value: one copy of the payload per call.
                        let back =
                            client.echo(tarpc::context::current(), black_box(payload.clone())).await.expect("echo");
                        assert_eq!(back, *payload);
                    }
                }
            }
            started.elapsed()
        })
    }
}

// ------------------------------------------------------------------- main

/// How long the interleaved comparison runs.
struct Plan {
    /// Calls per system, workload and round.
    calls: u64,
    rounds: usize,
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n % 2 == 1 { values[n / 2] } else { (values[n / 2 - 1] + values[n / 2]) / 2.0 }
}

fn label(system: &dyn System) -> String {
    match system.topology() {
        Some(topology) => format!("{}/{}", system.name(), topology.label()),
        None => system.name().to_string(),
    }
}

/// Measures every system on every workload in `plan.rounds` rounds, rotating
/// the order of the systems from round to round; returns the median calls per
/// second of each system on each workload, `[system][workload]`, and prints the spread.
fn interleaved(systems: &mut [Box<dyn System>], plan: &Plan) -> Vec<[f64; 3]> {
    let mut rates = vec![[const { Vec::new() }; 3]; systems.len()];
    for round in 0..plan.rounds {
        for (w, &workload) in Workload::ALL.iter().enumerate() {
            for k in 0..systems.len() {
                let s = (round + k) % systems.len();
                let elapsed = systems[s].run(workload, plan.calls);
                rates[s][w].push(plan.calls as f64 / elapsed.as_secs_f64());
            }
        }
    }
    let mut medians = Vec::new();
    for (s, system) in systems.iter().enumerate() {
        let mut row = [0.0; 3];
        for (w, workload) in Workload::ALL.iter().enumerate() {
            let values = &mut rates[s][w];
            row[w] = median(values);
            println!(
                "compare-detail: {} {} median={:.0} min={:.0} max={:.0} rounds={} calls_per_round={}",
                label(system.as_ref()),
                workload.name(),
                row[w],
                values[0],
                values[values.len() - 1],
                plan.rounds,
                plan.calls
            );
        }
        medians.push(row);
    }
    medians
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let has = |flag: &str| args.iter().any(|a| a == flag);
    // As criterion decides: without `--bench` (cargo test), or with `--test`, only check that it works.
    let test_mode = !has("--bench") || has("--test");
    let quick = has("--quick");

    let mut systems: Vec<Box<dyn System>> = vec![Box::new(Wirecall::new())];
    for topology in Topology::ALL {
        systems.push(Box::new(PostcardRpc::new(topology)));
        systems.push(Box::new(Tarpc::new(topology)));
    }

    if test_mode {
        for system in &mut systems {
            for workload in Workload::ALL {
                system.run(workload, 10);
            }
        }
        println!("compare: smoke test passed (run with `cargo bench` to measure)");
        return;
    }

    // With `--list`, criterion only names its benchmarks, and there is no comparison.
    let list = has("--list");
    if !list {
        // Warm up every path (threads, caches, allocators) before anything is timed.
        for system in &mut systems {
            for workload in Workload::ALL {
                system.run(workload, 1_000);
            }
        }
    }

    // Criterion's report, one group per workload.
    let mut criterion = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();
    for workload in Workload::ALL {
        let mut group = criterion.benchmark_group(workload.name());
        group.throughput(Throughput::Elements(1));
        for system in &mut systems {
            let id = match system.topology() {
                Some(topology) => BenchmarkId::new(system.name(), topology.label()),
                None => BenchmarkId::from_parameter(system.name()),
            };
            group.bench_function(id, |b| b.iter_custom(|iters| system.run(workload, iters)));
        }
        group.finish();
    }
    criterion.final_summary();
    if list {
        return;
    }

    // The interleaved comparison, against wirecall (the first system).
    let plan = if quick { Plan { calls: 1_500, rounds: 11 } } else { Plan { calls: 10_000, rounds: 21 } };
    let medians = interleaved(&mut systems, &plan);
    for topology in Topology::ALL {
        let prefix = if topology == Topology::ALL[0] { "compare" } else { &format!("compare-{}", topology.label()) };
        for (p, peer) in systems.iter().enumerate().filter(|(_, s)| s.topology() == Some(topology)) {
            for (w, workload) in Workload::ALL.iter().enumerate() {
                let (ours, theirs) = (medians[0][w], medians[p][w]);
                println!(
                    "{prefix}: {} {} wirecall={ours:.0} peer={theirs:.0} ratio={:.2}",
                    peer.name(),
                    workload.name(),
                    ours / theirs
                );
            }
        }
    }
}
