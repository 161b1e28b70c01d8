//! UARTE0 on the DK's virtual COM port (P0.06 TX, P0.08 RX), 115200 8N1, as a wirecall link.
//!
//! nrf52840-hal splits the UARTE into halves that implement embedded-io 0.7:
//! [`UarteRx`] receives one byte per EasyDMA transfer and says, without
//! blocking, whether one has arrived (`ReadReady`); [`UarteTx`] copies what it
//! sends into a RAM buffer first, since EasyDMA cannot read flash. [`Vcom`]
//! joins them into one `Read + Write + ReadReady` stream, which makes it a
//! [`wirecall::Link`].
//!
//! The receiver is never stopped: the next one-byte transfer is armed as soon
//! as a byte is taken, and the UARTE holds bytes in its small hardware FIFO
//! until then, so a byte arriving between two polls is not lost. Bytes sent to
//! the board while it is busy (answering, or in `slow`) wait in that FIFO only:
//! past its few bytes they are lost. A wirecall host sends one call and waits
//! for its answer, so this only bites a host that sends while the board answers.

use nrf52840_hal::gpio::p0::{P0_06, P0_08};
use nrf52840_hal::gpio::{Disconnected, Level};
use nrf52840_hal::pac::UARTE0;
use nrf52840_hal::uarte::{Baudrate, Error, Parity, Pins, Uarte, UarteRx, UarteTx};
use wirecall::embedded_io::{ErrorType, Read, ReadReady, Write};

/// Bytes per transmit transfer; a write sends at most this many.
const TX_CHUNK: usize = 64;

/// Core cycles (1 µs at 64 MHz) between starting a transmit transfer and
/// waiting for its end. The HAL's wait takes "TXSTARTED not yet raised" for
/// "nothing started yet" and would start the same transfer a second time. The
/// event follows the start task within a few peripheral clock cycles; 1 µs is a
/// wide margin (reasoned from the HAL's code, not measured on hardware).
const TXSTARTED_GRACE: u32 = 64;

/// UARTE0 on the VCOM pins, as one stream.
pub struct Vcom {
    tx: UarteTx<UARTE0>,
    rx: UarteRx<UARTE0>,
}

impl Vcom {
    /// Configures UARTE0 at 115200 baud, 8 data bits, no parity, one stop bit,
    /// no flow control. `None` if called a second time (its DMA buffers are
    /// static and exist once).
    pub fn new(uarte: UARTE0, txd: P0_06<Disconnected>, rxd: P0_08<Disconnected>) -> Option<Self> {
        let pins = Pins {
            txd: txd.into_push_pull_output(Level::High).degrade(),
            rxd: rxd.into_floating_input().degrade(),
            cts: None,
            rts: None,
        };
        let uarte = Uarte::new(uarte, pins, Parity::EXCLUDED, Baudrate::BAUD115200);
        let tx_buf = cortex_m::singleton!(: [u8; TX_CHUNK] = [0; TX_CHUNK])?;
        let rx_buf = cortex_m::singleton!(: [u8; 1] = [0; 1])?;
        // Fails only for an empty or over-long buffer; neither is possible here.
        let (tx, rx) = uarte.split(tx_buf, rx_buf).ok()?;
        Some(Vcom { tx, rx })
    }
}

impl ErrorType for Vcom {
    type Error = Error;
}

impl Read for Vcom {
    /// Waits for a byte and returns it: one per call, as the HAL receives them.
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, Error> {
        let Some(first) = buf.first_mut() else { return Ok(0) };
        self.rx.read(core::slice::from_mut(first))?;
        // Arms the next one-byte transfer (it reports "not yet" when it arms),
        // so the next byte reaches RAM while this one is being handled.
        self.rx.read_ready()?;
        Ok(1)
    }
}

impl ReadReady for Vcom {
    fn read_ready(&mut self) -> Result<bool, Error> {
        self.rx.read_ready()
    }
}

impl Write for Vcom {
    /// Sends up to [`TX_CHUNK`] bytes and returns once they are out. Each write
    /// waits for its own transfer: the HAL's writer, given more bytes after a
    /// transfer ended but before it noticed, appends them and then, noticing,
    /// empties its buffer without sending them.
    fn write(&mut self, buf: &[u8]) -> Result<usize, Error> {
        if buf.is_empty() {
            return Ok(0);
        }
        let n = self.tx.write(buf)?;
        cortex_m::asm::delay(TXSTARTED_GRACE);
        self.tx.flush()?;
        Ok(n)
    }

    fn flush(&mut self) -> Result<(), Error> {
        self.tx.flush()
    }
}
