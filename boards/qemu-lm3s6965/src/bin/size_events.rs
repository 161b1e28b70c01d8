//! Footprint (feature `events`): `size_add_static` plus one one-way method,
//! `set_every`, and one event, `tick`: the main loop emits a counter every
//! `every` polls, an interval the client sets with the one-way call.
#![no_std]
#![no_main]

use core::cell::RefCell;

use cortex_m::interrupt::Mutex;
use cortex_m_rt::entry;
use wirecall::Clock as _;
use wirecall::embedded_io::{Read, ReadReady, Write};
use wirecall::machine::ServerMachine;
use wirecall_qemu_lm3s6965::{clock::Ticks, halt, uart::Uart0};

wirecall::service! {
    pub mod calc {
        fn add(a: i32, b: i32) -> i32 = 2;
        fn set_every(polls: u32) = 3, oneway;

        event tick: u32 = 1;
    }
}

struct Calc {
    /// Main-loop polls between two `tick` events.
    every: u32,
}

impl calc::Service for Calc {
    fn add(&mut self, a: i32, b: i32) -> i32 {
        a.wrapping_add(b)
    }

    fn set_every(&mut self, polls: u32) {
        self.every = polls;
    }
}

static SERVER: Mutex<RefCell<ServerMachine<64, 64>>> = Mutex::new(RefCell::new(ServerMachine::new()));

#[entry]
fn main() -> ! {
    let Some(core) = cortex_m::Peripherals::take() else { halt() };
    let clock = Ticks::start(core.SYST);
    let Some(mut uart) = Uart0::take() else { halt() };
    let mut calc = calc::Dispatcher(Calc { every: 1_000_000 });
    let mut byte = [0u8; 1];
    let mut polls = 0u32;
    let mut ticks = 0u32;
    loop {
        let got = uart.read_ready().unwrap_or(false) && uart.read(&mut byte).is_ok();
        polls = polls.wrapping_add(1);
        let due = polls >= calc.0.every;
        if !got && !due {
            continue;
        }
        cortex_m::interrupt::free(|cs| {
            let Ok(mut server) = SERVER.borrow(cs).try_borrow_mut() else { return };
            if got {
                server.receive(&byte, clock.now(), &mut calc);
            }
            // Busy only while the previous event is unsent: then it is due next poll.
            if due && server.emit(calc::events::tick, &ticks).is_ok() {
                polls = 0;
                ticks = ticks.wrapping_add(1);
            }
            // An answer, then the event queued behind it.
            while !server.outgoing().is_empty() {
                let _ = uart.write(server.outgoing());
                let n = server.outgoing().len();
                server.wrote(n);
            }
        });
    }
}
