//! Footprint (feature `streams`): `size_add_static` plus one stream method,
//! `count`, which sends `0, 1, … to - 1` as the client's credit allows. The main
//! loop also polls the machine with no input while the stream has items to send.
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
        fn count(to: u32) -> u32 = 3, stream;
    }
}

struct Calc;

impl calc::Service for Calc {
    fn add(&mut self, a: i32, b: i32) -> i32 {
        a.wrapping_add(b)
    }

    fn count(&mut self, to: u32, index: u32) -> Option<u32> {
        (index < to).then_some(index)
    }
}

static SERVER: Mutex<RefCell<ServerMachine<64, 64>>> = Mutex::new(RefCell::new(ServerMachine::new()));

#[entry]
fn main() -> ! {
    let Some(core) = cortex_m::Peripherals::take() else { halt() };
    let clock = Ticks::start(core.SYST);
    let Some(mut uart) = Uart0::take() else { halt() };
    let mut calc = calc::Dispatcher(Calc);
    let mut byte = [0u8; 1];
    loop {
        let got = uart.read_ready().unwrap_or(false) && uart.read(&mut byte).is_ok();
        cortex_m::interrupt::free(|cs| {
            let Ok(mut server) = SERVER.borrow(cs).try_borrow_mut() else { return };
            // Without input, only a stream with credit left has something to send.
            if !got && !server.has_work() {
                return;
            }
            let input: &[u8] = if got { &byte } else { &[] };
            server.receive(input, clock.now(), &mut calc);
            let _ = uart.write(server.outgoing());
            let n = server.outgoing().len();
            server.wrote(n);
        });
    }
}
