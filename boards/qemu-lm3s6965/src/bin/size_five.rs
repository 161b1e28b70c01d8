//! Footprint: a server with five methods, 64-byte buffers, kept in a static.
#![no_std]
#![no_main]

use cortex_m_rt::entry;
use wirecall::Server;
use wirecall::heapless::{String, Vec};
use wirecall_qemu_lm3s6965::{clock::Ticks, halt, uart::Uart0};

wirecall::service! {
    pub mod five {
        fn greet(name: &str) -> String<32> = 1;
        fn add(a: i32, b: i32) -> i32 = 2;
        fn bump() -> u32 = 3;
        fn scale(values: [i16; 4], by: f32) -> [f32; 4] = 4;
        fn echo(data: &[u8]) -> Vec<u8, 32> = 5;
    }
}

struct Five(u32);

impl five::Service for Five {
    fn greet(&mut self, name: &str) -> String<32> {
        let mut s = String::new();
        let _ = s.push_str("Hello ");
        let _ = s.push_str(name.get(..name.len().min(26)).unwrap_or(""));
        s
    }
    fn add(&mut self, a: i32, b: i32) -> i32 {
        a.wrapping_add(b)
    }
    fn bump(&mut self) -> u32 {
        self.0 = self.0.wrapping_add(1);
        self.0
    }
    fn scale(&mut self, values: [i16; 4], by: f32) -> [f32; 4] {
        values.map(|v| f32::from(v) * by)
    }
    fn echo(&mut self, data: &[u8]) -> Vec<u8, 32> {
        Vec::from_slice(data.get(..data.len().min(32)).unwrap_or(&[])).unwrap_or_default()
    }
}

#[entry]
fn main() -> ! {
    let Some(core) = cortex_m::Peripherals::take() else { halt() };
    let clock = Ticks::start(core.SYST);
    let Some(uart) = Uart0::take() else { halt() };
    let Some(server) = cortex_m::singleton!(: Server<Uart0, five::Dispatcher<Five>, Ticks, 64, 64> = Server::sized(uart, five::Dispatcher(Five(0)), clock))
    else {
        halt()
    };
    loop {
        let _ = server.poll();
    }
}
