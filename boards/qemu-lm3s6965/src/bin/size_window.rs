//! Footprint (feature `pipelining`): `size_add_static` with a reply cache of
//! four answers, so a client may have four calls in flight.
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
    }
}

struct Calc;

impl calc::Service for Calc {
    fn add(&mut self, a: i32, b: i32) -> i32 {
        a.wrapping_add(b)
    }
}

/// Answers cached, and calls a client may have in flight.
const WINDOW: usize = 4;

static SERVER: Mutex<RefCell<ServerMachine<64, 64, WINDOW>>> = Mutex::new(RefCell::new(ServerMachine::new()));

#[entry]
fn main() -> ! {
    let Some(core) = cortex_m::Peripherals::take() else { halt() };
    let clock = Ticks::start(core.SYST);
    let Some(mut uart) = Uart0::take() else { halt() };
    let mut calc = calc::Dispatcher(Calc);
    let mut byte = [0u8; 1];
    loop {
        if !uart.read_ready().unwrap_or(false) || uart.read(&mut byte).is_err() {
            continue;
        }
        cortex_m::interrupt::free(|cs| {
            let Ok(mut server) = SERVER.borrow(cs).try_borrow_mut() else { return };
            server.receive(&byte, clock.now(), &mut calc);
            let _ = uart.write(server.outgoing());
            let n = server.outgoing().len();
            server.wrote(n);
        });
    }
}
