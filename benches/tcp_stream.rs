//! A server stream over TCP on 127.0.0.1 (issue #12): items per second from
//! `wirecall::link::tcp::serve` to the blocking client, one `u32` per item, with
//! the client granting 64 items of credit.
//!
//! Before `read_within(Duration::ZERO)` became a non-blocking read, the server
//! slept about a kernel tick (4 to 8 ms) between items: ~115 items/s.
//!
//! ```sh
//! cargo bench --bench tcp_stream              # 9 rounds of a 200,000-item stream
//! cargo bench --bench tcp_stream -- --quick   # 5 rounds of 50,000
//! ```
//!
//! It prints `tcp-stream: items/s median=<n> min=<n> max=<n> rounds=<n> items=<n>`.
//! Run without `--bench` (as `cargo test --benches` does), it streams a few
//! items as a smoke test and measures nothing.

use std::net::TcpListener;
use std::time::{Duration, Instant};

use wirecall::Call as _;
use wirecall::link::tcp;

wirecall::service! {
    /// The benchmark service.
    pub mod counter {
        /// The numbers 0 to n - 1, one item each.
        fn count(n: u32) -> u32 = 1, stream;
    }
}

struct Counter;

impl counter::Service for Counter {
    fn count(&mut self, n: u32, index: u32) -> Option<u32> {
        (index < n).then_some(index)
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let bench = args.iter().any(|a| a == "--bench");
    let quick = args.iter().any(|a| a == "--quick");
    let (rounds, items) = match (bench, quick) {
        (false, _) => (1, 100),
        (true, true) => (5, 50_000),
        (true, false) => (9, 200_000),
    };

    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    std::thread::spawn(move || tcp::serve(listener, 4, || counter::Dispatcher(Counter)));
    let mut client = tcp::connect(addr).expect("connect");
    client.set_timeout(Duration::from_secs(10));
    client.set_stream_credits(64);

    let mut rates = Vec::new();
    for _ in 0..rounds {
        let mut next = 0u32;
        let started = Instant::now();
        let end = client
            .call_stream::<_, u32>(wirecall::Method::new(counter::ids::count), &(items,), &mut |item| {
                assert_eq!(item, next, "items in order, each once");
                next += 1;
                true
            })
            .expect("stream");
        let elapsed = started.elapsed();
        assert!(end.is_complete() && end.received == items, "{end:?}");
        rates.push(f64::from(items) / elapsed.as_secs_f64());
    }
    if !bench {
        println!("tcp-stream: smoke test, {items} items streamed");
        return;
    }
    rates.sort_by(f64::total_cmp);
    println!(
        "tcp-stream: items/s median={:.0} min={:.0} max={:.0} rounds={rounds} items={items}",
        rates[rates.len() / 2],
        rates[0],
        rates[rates.len() - 1]
    );
}
