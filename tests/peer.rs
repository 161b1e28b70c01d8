//! Both directions on one link (issue #7): two `Peer`s call each other at the
//! same time, each serving the other's calls while it waits for its own.

mod common;

use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, mpsc};
use std::time::Duration;

use common::machines::{F, frames};
use wirecall::driver::{Route, Router, Side};
use wirecall::link::loopback;
use wirecall::{Peer, StdClock};

wirecall::service! {
    /// What the device serves.
    pub mod device {
        /// Not idempotent: counts its runs.
        fn double(x: u32) -> u64 = 1;
    }
}

wirecall::service! {
    /// What the host serves.
    pub mod host {
        /// Not idempotent: counts its runs.
        fn square(x: u32) -> u64 = 1;
        /// Same id space as the device's, different meaning.
        fn negate(x: i32) -> i32 = 2;
    }
}

#[derive(Clone, Default)]
struct Counter(Arc<AtomicU32>);

impl device::Service for Counter {
    fn double(&mut self, x: u32) -> u64 {
        self.0.fetch_add(1, Ordering::SeqCst);
        u64::from(x) * 2
    }
}

impl host::Service for Counter {
    fn square(&mut self, x: u32) -> u64 {
        self.0.fetch_add(1, Ordering::SeqCst);
        u64::from(x) * u64::from(x)
    }
    fn negate(&mut self, x: i32) -> i32 {
        self.0.fetch_add(1, Ordering::SeqCst);
        -x
    }
}

const CALLS: u32 = 300;

#[test]
fn both_ends_call_each_other_at_once_without_deadlock_and_get_their_own_values() {
    let (host_end, device_end) = loopback::pair();
    let (device_runs, host_runs) = (Counter::default(), Counter::default());
    let finished = Arc::new(AtomicUsize::new(0));
    let (report, reports) = mpsc::channel();

    // The device: calls the host's square() while serving double().
    let (runs, done, tx) = (device_runs.clone(), Arc::clone(&finished), report.clone());
    std::thread::spawn(move || {
        let mut peer = Peer::new(device_end, device::Dispatcher(runs), StdClock::new());
        peer.set_timeout(Duration::from_secs(5));
        let mut host = host::Client(peer);
        let mut wrong = Vec::new();
        for x in 0..CALLS {
            match host.square(x) {
                Ok(v) if v == u64::from(x) * u64::from(x) => {}
                other => wrong.push((x, other)),
            }
            if x % 7 == 0 {
                match host.negate(x as i32) {
                    Ok(v) if v == -(x as i32) => {}
                    other => wrong.push((x, other.map(|v| v as u64))),
                }
            }
        }
        done.fetch_add(1, Ordering::SeqCst);
        // Serve the host until it is done too.
        while finished_count(&done) < 2 {
            let _ = host.0.step(Duration::from_millis(5));
        }
        let _ = tx.send(("device", wrong, host.0.server_stats().dispatched));
    });

    // The host: calls the device's double() while serving square() and negate().
    let (runs, done, tx) = (host_runs.clone(), Arc::clone(&finished), report);
    std::thread::spawn(move || {
        let mut peer = Peer::new(host_end, host::Dispatcher(runs), StdClock::new());
        peer.set_timeout(Duration::from_secs(5));
        let mut device = device::Client(peer);
        let mut wrong = Vec::new();
        for x in 0..CALLS {
            match device.double(x) {
                Ok(v) if v == u64::from(x) * 2 => {}
                other => wrong.push((x, other)),
            }
        }
        done.fetch_add(1, Ordering::SeqCst);
        while finished_count(&done) < 2 {
            let _ = device.0.step(Duration::from_millis(5));
        }
        let _ = tx.send(("host", wrong, device.0.server_stats().dispatched));
    });

    for _ in 0..2 {
        let (side, wrong, _) = reports.recv_timeout(Duration::from_secs(60)).expect("no deadlock: both ends finish");
        assert!(wrong.is_empty(), "{side}: wrong outcomes {wrong:?}");
    }
    let negates = CALLS.div_ceil(7);
    assert_eq!(device_runs.0.load(Ordering::SeqCst), CALLS, "each double() ran once");
    assert_eq!(host_runs.0.load(Ordering::SeqCst), CALLS + negates, "each square() and negate() ran once");
}

fn finished_count(done: &AtomicUsize) -> usize {
    done.load(Ordering::SeqCst)
}

#[test]
fn the_router_sends_each_frame_to_the_machine_its_kind_belongs_to() {
    // Requests, Hellos, Cancels, Credits, one-way requests: the server side.
    for kind in [1u8, 4, 6, 7, 8, 11] {
        assert_eq!(Side::of(0x10 | kind), Side::Server, "kind {kind}");
    }
    // Replies, Statuses, Welcomes, items, Ends, events: the client side.
    for kind in [2u8, 3, 5, 9, 10, 12] {
        assert_eq!(Side::of(0x10 | kind), Side::Client, "kind {kind}");
    }
    // A stream of frames of both kinds, with extra delimiters, split byte by byte.
    let mut buf = [0u8; 64];
    let request = wirecall::wire::encode_request(1, 2, &(3u8,), &mut buf).unwrap().to_vec();
    let reply = wirecall::wire::encode_reply(1, &9u8, &mut buf).unwrap().to_vec();
    let stream = [&[0u8][..], &request, &reply, &[0, 0], &reply, &request].concat();
    for chunk in [1, 2, 3, 64] {
        let mut router = Router::new();
        let (mut to_server, mut to_client) = (Vec::new(), Vec::new());
        let mut pending: Vec<u8> = Vec::new();
        for piece in stream.chunks(chunk) {
            pending.extend_from_slice(piece);
            loop {
                match router.route(&pending) {
                    Route::NeedMore => break,
                    Route::Skip(n) => drop(pending.drain(..n)),
                    Route::Deliver(side, len) => {
                        let bytes: Vec<u8> = pending.drain(..len).collect();
                        match side {
                            Side::Server => to_server.extend_from_slice(&bytes),
                            Side::Client => to_client.extend_from_slice(&bytes),
                        }
                        router.delivered(&bytes);
                    }
                }
            }
        }
        let request = F::Request { seq: 1, method: 2, oneway: false };
        assert_eq!(frames(&to_server), [request.clone(), request], "chunks of {chunk}");
        let reply = F::Reply { seq: 1, value: vec![9] };
        assert_eq!(frames(&to_client), [reply.clone(), reply], "chunks of {chunk}");
        assert!(pending.is_empty() && router == Router::new(), "chunks of {chunk}: between frames at the end");
    }
}

/// `Peer::step(Duration::ZERO)` takes what has arrived without waiting: a main
/// loop that only ever polls still answers the other end. (It used to return
/// before reading anything once its zero wait had passed.)
#[test]
fn a_peer_polled_with_zero_waits_answers_calls() {
    let (host_end, device_end) = loopback::pair();
    let runs = Counter::default();
    let stop = Arc::new(AtomicUsize::new(0));
    let (device_runs, device_stop) = (runs.clone(), Arc::clone(&stop));
    let device = std::thread::spawn(move || {
        let mut peer = Peer::new(device_end, device::Dispatcher(device_runs), StdClock::new());
        let mut polls = 0u64;
        while device_stop.load(Ordering::SeqCst) == 0 {
            peer.step(Duration::ZERO).unwrap();
            polls += 1;
        }
        polls
    });
    let mut client = device::Client(wirecall::Client::new(host_end, StdClock::new()));
    client.0.set_timeout(Duration::from_secs(5));
    for x in 0..20 {
        assert_eq!(client.double(x), Ok(u64::from(x) * 2));
    }
    stop.store(1, Ordering::SeqCst);
    assert!(device.join().unwrap() > 20, "the device only polled");
    assert_eq!(runs.0.load(Ordering::SeqCst), 20);
}
