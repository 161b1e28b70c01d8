//! Both directions on one link, over loopback: the host calls the device, and
//! the device calls the host (for the time, for its configuration) on the same
//! wire, at the same time. Each end is a `Peer`: a server for its own service
//! and a client of the other's, and it keeps answering while it waits.
//!
//! `cargo run --example both_ways`

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use wirecall::link::loopback;
use wirecall::{Peer, StdClock};

wirecall::service! {
    /// What the device serves.
    pub mod device {
        /// How many samples the device has taken.
        fn samples() -> u32 = 1, idempotent;
    }
}

wirecall::service! {
    /// What the host serves to the device.
    pub mod host {
        /// Milliseconds since the Unix epoch, on the host's clock.
        fn unix_ms() -> u64 = 1, idempotent;
        /// A configuration value, if the host has one under `key`.
        fn config(key: &str) -> Option<u32> = 2, idempotent;
    }
}

struct Device {
    samples: u32,
}

impl device::Service for Device {
    fn samples(&mut self) -> u32 {
        self.samples
    }
}

struct Host;

impl host::Service for Host {
    fn unix_ms(&mut self) -> u64 {
        SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
    }

    fn config(&mut self, key: &str) -> Option<u32> {
        (key == "sample_ms").then_some(5)
    }
}

fn main() {
    let (host_end, device_end) = loopback::pair();

    // The device: asks the host for its configuration and the time, then
    // samples, answering the host's calls all along.
    let device_done = Arc::new(AtomicBool::new(false));
    let done = Arc::clone(&device_done);
    let device_thread = std::thread::spawn(move || {
        let peer = Peer::new(device_end, device::Dispatcher(Device { samples: 0 }), StdClock::new());
        let mut host = host::Client(peer);
        let period = host.config("sample_ms").expect("config").unwrap_or(10);
        let missing = host.config("colour").expect("config");
        let started = host.unix_ms().expect("time");
        println!("device: host says sample_ms = {period}, colour = {missing:?}, time = {started} ms");
        for _ in 0..20 {
            host.0.service_mut().0.samples += 1;
            // Between samples, answer whatever the host asks.
            host.0.step(Duration::from_millis(u64::from(period))).expect("link");
        }
        let now = host.unix_ms().expect("time");
        println!("device: 20 samples in {} ms by the host's clock", now.saturating_sub(started));
        done.store(true, Ordering::SeqCst);
        // Serve until the host is done.
        while host.0.step(Duration::from_millis(50)).is_ok() {}
        host.0.server_stats()
    });

    // The host: calls the device while the device calls it.
    let peer = Peer::new(host_end, host::Dispatcher(Host), StdClock::new());
    let mut device = device::Client(peer);
    for _ in 0..5 {
        let n = device.samples().expect("samples");
        println!("host:   device has {n} samples");
        device.0.step(Duration::from_millis(25)).expect("link");
    }
    // Keep answering the device until it is done with the host.
    while !device_done.load(Ordering::SeqCst) {
        device.0.step(Duration::from_millis(5)).expect("link");
    }
    let host_stats = device.0.server_stats();
    drop(device); // closes the link: the device's loop ends
    let device_stats = device_thread.join().expect("device thread");
    println!(
        "host answered {} calls from the device; the device answered {} from the host",
        host_stats.dispatched, device_stats.dispatched
    );
}
