//! UART0 as a wirecall link: esp-hal's blocking UART behind embedded-io 0.7.
//!
//! esp-hal implements the embedded-io traits only with its `unstable` feature,
//! so this newtype maps its stable methods onto them instead. With
//! `ReadReady` it is a `wirecall::Link`, polled by the server.

use core::fmt;

use esp_hal::Blocking;
use esp_hal::uart::{RxError, TxError, Uart};
use wirecall::embedded_io::{self, ErrorKind, ErrorType, Read, ReadReady, Write};

/// A UART in blocking mode, as an embedded-io 0.7 stream.
pub struct Uart0<'d> {
    uart: Uart<'d, Blocking>,
}

impl<'d> Uart0<'d> {
    /// Wraps a configured UART (baud rate, frame format and pins already set).
    pub fn new(uart: Uart<'d, Blocking>) -> Self {
        Uart0 { uart }
    }

    /// Unwraps the UART.
    pub fn into_inner(self) -> Uart<'d, Blocking> {
        self.uart
    }
}

/// What the UART reported.
///
/// A receive error (an overflowed FIFO, a glitch, a framing or parity error)
/// is reported once and then cleared: the next read goes on with the bytes that
/// followed it. A frame it damaged fails its CRC and is dropped by wirecall.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum LinkError {
    /// Receiving failed.
    Rx(RxError),
    /// Sending failed (esp-hal defines no such error yet).
    Tx(TxError),
}

impl fmt::Display for LinkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LinkError::Rx(e) => e.fmt(f),
            LinkError::Tx(e) => e.fmt(f),
        }
    }
}

impl core::error::Error for LinkError {}

impl embedded_io::Error for LinkError {
    fn kind(&self) -> ErrorKind {
        match self {
            LinkError::Rx(RxError::FifoOverflowed) => ErrorKind::OutOfMemory,
            LinkError::Rx(_) => ErrorKind::InvalidData,
            LinkError::Tx(_) => ErrorKind::Other,
        }
    }
}

impl ErrorType for Uart0<'_> {
    type Error = LinkError;
}

impl ReadReady for Uart0<'_> {
    /// Whether the receive FIFO holds at least one byte.
    fn read_ready(&mut self) -> Result<bool, LinkError> {
        Ok(self.uart.read_ready())
    }
}

impl Read for Uart0<'_> {
    /// Waits for one byte, then takes what else the FIFO holds (up to `buf.len()`);
    /// bytes that do not fit stay in the FIFO for the next read.
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, LinkError> {
        self.uart.read(buf).map_err(LinkError::Rx)
    }
}

impl Write for Uart0<'_> {
    /// Waits for room in the transmit FIFO, then fills it; returns how many bytes went in (at least one).
    fn write(&mut self, buf: &[u8]) -> Result<usize, LinkError> {
        self.uart.write(buf).map_err(LinkError::Tx)
    }

    /// Waits until the last byte has left the transmitter.
    fn flush(&mut self) -> Result<(), LinkError> {
        self.uart.flush().map_err(LinkError::Tx)
    }
}
