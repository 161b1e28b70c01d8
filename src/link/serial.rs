//! Serial ports on the host (feature `serial`): a UART to a board through a
//! USB adapter, as a [`Link`](super::Link).
//!
//! Built on the `serialport` crate without its default features, so no libudev
//! is needed (port enumeration is the part left out). A read waits at most the
//! time the driver asks for, through the port's own timeout.

use core::time::Duration;
use std::boxed::Box;

use super::{IoLink, SetReadTimeout};

pub use serialport;

/// Opens `path` (`/dev/ttyUSB0`, `COM3`) at `baud` bits per second, 8N1, no flow control.
///
/// # Errors
/// As `serialport::SerialPortBuilder::open`.
pub fn open(path: &str, baud: u32) -> serialport::Result<IoLink<Box<dyn serialport::SerialPort>>> {
    let port = serialport::new(path, baud)
        .data_bits(serialport::DataBits::Eight)
        .parity(serialport::Parity::None)
        .stop_bits(serialport::StopBits::One)
        .flow_control(serialport::FlowControl::None)
        .timeout(Duration::from_millis(10))
        .open()?;
    Ok(IoLink::new(port))
}

/// A timeout for "no timeout": serial ports take a duration, not an option.
const FOREVER: Duration = Duration::from_secs(60 * 60 * 24);

fn set(port: &mut dyn serialport::SerialPort, timeout: Option<Duration>) -> std::io::Result<()> {
    port.set_timeout(timeout.unwrap_or(FOREVER)).map_err(std::io::Error::from)
}

/// A serial port has one timeout for reads and writes: non-blocking is a zero
/// timeout (a read returns at once), blocking again is no timeout until a read
/// sets its own.
fn set_nonblocking(port: &mut dyn serialport::SerialPort, nonblocking: bool) -> std::io::Result<()> {
    set(port, Some(if nonblocking { Duration::ZERO } else { FOREVER }))
}

impl SetReadTimeout for Box<dyn serialport::SerialPort> {
    fn set_read_timeout(&mut self, timeout: Option<Duration>) -> std::io::Result<()> {
        set(self.as_mut(), timeout)
    }

    fn set_nonblocking(&mut self, nonblocking: bool) -> std::io::Result<()> {
        set_nonblocking(self.as_mut(), nonblocking)
    }
}

#[cfg(unix)]
impl SetReadTimeout for serialport::TTYPort {
    fn set_read_timeout(&mut self, timeout: Option<Duration>) -> std::io::Result<()> {
        set(self, timeout)
    }

    fn set_nonblocking(&mut self, nonblocking: bool) -> std::io::Result<()> {
        set_nonblocking(self, nonblocking)
    }
}
