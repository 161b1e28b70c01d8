//! A polled driver for UART0, an ARM PL011 at 0x4000_C000, with its FIFOs on.
//!
//! It implements embedded-io's `Read`, `Write` and `ReadReady`, so it is a
//! wirecall `Link` as it is. QEMU's PL011 needs no baud-rate setup.
#![allow(unsafe_code)]

use core::convert::Infallible;

use wirecall::embedded_io::{ErrorType, Read, ReadReady, Write};

const BASE: usize = 0x4000_C000;
const DR: usize = BASE; // data
const FR: usize = BASE + 0x18; // flags
const LCRH: usize = BASE + 0x2C; // line control
const CTL: usize = BASE + 0x30; // control

const FR_RXFE: u32 = 1 << 4; // receive FIFO empty
const FR_TXFF: u32 = 1 << 5; // transmit FIFO full
const FR_BUSY: u32 = 1 << 3;
const LCRH_FEN: u32 = 1 << 4; // FIFOs enabled
const LCRH_WLEN8: u32 = 0b11 << 5; // 8 data bits
const CTL_UARTEN: u32 = 1 << 0;
const CTL_TXE: u32 = 1 << 8;
const CTL_RXE: u32 = 1 << 9;

fn read(addr: usize) -> u32 {
    // SAFETY: `addr` is one of the PL011 registers above, always mapped on this
    // chip; a 32-bit volatile read of them has no side effect beyond the
    // device's documented ones (reading DR pops the receive FIFO).
    unsafe { core::ptr::read_volatile(addr as *const u32) }
}

fn write(addr: usize, value: u32) {
    // SAFETY: as in `read`; these registers accept any 32-bit write.
    unsafe { core::ptr::write_volatile(addr as *mut u32, value) }
}

/// UART0. Only one exists: [`Uart0::take`] hands it out once.
pub struct Uart0 {
    _private: (),
}

impl Uart0 {
    /// Enables UART0 (8N1, FIFOs on) and returns it; `None` after the first call.
    pub fn take() -> Option<Self> {
        use core::sync::atomic::{AtomicBool, Ordering};
        static TAKEN: AtomicBool = AtomicBool::new(false);
        // A load and a store inside a critical section: thumbv6m has no atomic swap.
        let taken = cortex_m::interrupt::free(|_| {
            let taken = TAKEN.load(Ordering::Relaxed);
            TAKEN.store(true, Ordering::Relaxed);
            taken
        });
        if taken {
            return None;
        }
        write(CTL, 0);
        write(LCRH, LCRH_FEN | LCRH_WLEN8);
        write(CTL, CTL_UARTEN | CTL_TXE | CTL_RXE);
        Some(Uart0 { _private: () })
    }
}

impl ErrorType for Uart0 {
    type Error = Infallible;
}

impl ReadReady for Uart0 {
    fn read_ready(&mut self) -> Result<bool, Infallible> {
        Ok(read(FR) & FR_RXFE == 0)
    }
}

impl Read for Uart0 {
    /// Waits for one byte, then takes what else the FIFO holds.
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, Infallible> {
        let mut n = 0;
        for slot in buf.iter_mut() {
            if read(FR) & FR_RXFE != 0 {
                if n > 0 {
                    break;
                }
                while read(FR) & FR_RXFE != 0 {}
            }
            *slot = read(DR) as u8;
            n += 1;
        }
        Ok(n)
    }
}

impl Write for Uart0 {
    fn write(&mut self, buf: &[u8]) -> Result<usize, Infallible> {
        for &byte in buf {
            while read(FR) & FR_TXFF != 0 {}
            write(DR, u32::from(byte));
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> Result<(), Infallible> {
        while read(FR) & FR_BUSY != 0 {}
        Ok(())
    }
}
