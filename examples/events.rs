//! One-way calls and events, over loopback: the host switches a board's LED
//! with a fire-and-forget call, the board pushes sensor readings and log lines
//! on its own, and ordinary calls go on in between, undisturbed.
//!
//! `cargo run --example events`

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use wirecall::heapless::String;
use wirecall::link::loopback;
use wirecall::{Client, Server, StdClock, Step};

wirecall::service! {
    /// A sensor board.
    pub mod sensor {
        /// Switches the LED. One-way: no answer comes back.
        fn set_led(on: bool) = 1, oneway;
        /// The temperature now, in tenths of a degree.
        fn temperature() -> i16 = 2, idempotent;

        event reading: i16 = 1;
        event log: String<40> = 2;
    }
}

struct Board {
    led: bool,
    /// A line for the log event, when there is one to send.
    note: Option<String<40>>,
    tenths: i16,
}

impl sensor::Service for Board {
    fn set_led(&mut self, on: bool) {
        self.led = on;
        let mut line = String::new();
        let _ = core::fmt::write(&mut line, format_args!("led {}", if on { "on" } else { "off" }));
        self.note = Some(line);
    }

    fn temperature(&mut self) -> i16 {
        self.tenths
    }
}

fn main() {
    let (host, board) = loopback::pair();
    std::thread::spawn(move || {
        let service = sensor::Dispatcher(Board { led: false, note: None, tenths: 215 });
        let mut server = Server::new(board, service, StdClock::new());
        // The board's main loop: answer calls, and every 20 ms push a reading.
        let mut next = Instant::now();
        loop {
            if !matches!(server.step(Duration::from_millis(5)), Ok(Step::Idle | Step::Progress)) {
                return;
            }
            if let Some(line) = server.service_mut().0.note.take() {
                let _ = server.emit(sensor::events::log, &line);
            }
            if Instant::now() >= next {
                next += Duration::from_millis(20);
                let board = &mut server.service_mut().0;
                board.tenths += 1;
                let tenths = board.tenths;
                if server.emit(sensor::events::reading, &tenths).is_err() {
                    return;
                }
            }
        }
    });

    let mut client = Client::new(host, StdClock::new());
    // By callback: every event, as it arrives, during calls too.
    let log = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&log);
    client.on_event(Box::new(move |event| {
        if let Some(tenths) = event.decode(sensor::events::reading) {
            sink.lock().unwrap().push(format!("reading #{}: {:.1} °C", event.seq, f32::from(tenths) / 10.0));
        } else if let Some(line) = event.decode(sensor::events::log) {
            sink.lock().unwrap().push(format!("log #{}: {line}", event.seq));
        }
    }));
    let mut sensor = sensor::Client(client);

    for on in [true, false, true] {
        sensor.set_led(on).expect("sent");
        println!("set_led({on}): sent (one-way: nobody will say whether it ran)");
        let t = sensor.temperature().expect("temperature");
        println!("temperature(): {:.1} °C", f32::from(t) / 10.0);
        std::thread::sleep(Duration::from_millis(30));
    }
    // A last call, so the events sent meanwhile are read.
    sensor.temperature().expect("temperature");
    println!("events that arrived during those calls, by callback:");
    for line in log.lock().unwrap().iter() {
        println!("  {line}");
    }

    // By polling: without a handler, events wait in a queue.
    let (host, board) = loopback::pair();
    std::thread::spawn(move || {
        let service = sensor::Dispatcher(Board { led: false, note: None, tenths: 180 });
        let mut server = Server::new(board, service, StdClock::new());
        for tenths in 180..185 {
            let _ = server.emit(sensor::events::reading, &tenths);
        }
        let _ = server.serve();
    });
    let mut client = Client::new(host, StdClock::new());
    println!("by polling:");
    while let Some(line) = client.next_event(Duration::from_millis(100), |event| {
        format!("  reading #{}: {:?}", event.seq, event.decode(sensor::events::reading))
    }) {
        println!("{line}");
    }
    let stats = client.stats();
    println!("events received: {}, missed (gaps in their numbers): {}", stats.events, stats.events_missed);
}
