//! [`IoLink`]: a `std::io` stream (a `TcpStream`, a serial port) as a [`Link`].
//!
//! Reading and writing go through `embedded-io-adapters`; the only addition is
//! the bounded wait, done with the stream's own read timeout.

use core::time::Duration;
use std::io::ErrorKind;

use embedded_io::{ErrorType, Read, Write};
use embedded_io_adapters::std::FromStd;

use super::Link;

/// A stream whose reads can be given a timeout, as `TcpStream::set_read_timeout`.
pub trait SetReadTimeout {
    /// Sets the read timeout; `None` blocks forever.
    ///
    /// # Errors
    /// As the stream's own method.
    fn set_read_timeout(&mut self, timeout: Option<Duration>) -> std::io::Result<()>;
}

impl SetReadTimeout for std::net::TcpStream {
    fn set_read_timeout(&mut self, timeout: Option<Duration>) -> std::io::Result<()> {
        std::net::TcpStream::set_read_timeout(self, timeout)
    }
}

#[cfg(unix)]
impl SetReadTimeout for std::os::unix::net::UnixStream {
    fn set_read_timeout(&mut self, timeout: Option<Duration>) -> std::io::Result<()> {
        std::os::unix::net::UnixStream::set_read_timeout(self, timeout)
    }
}

/// A `std::io::Read + Write` stream used as a [`Link`].
///
/// `read_within` sets the stream's read timeout (rounded up to whole
/// milliseconds, at least 1 ms) only when it changes.
pub struct IoLink<T> {
    io: FromStd<T>,
    timeout: Option<Duration>,
}

impl<T> IoLink<T> {
    /// Wraps a stream.
    pub fn new(stream: T) -> Self {
        IoLink { io: FromStd::new(stream), timeout: None }
    }

    /// The stream.
    pub fn get_ref(&self) -> &T {
        self.io.inner()
    }

    /// The stream, mutably.
    pub fn get_mut(&mut self) -> &mut T {
        self.io.inner_mut()
    }

    /// Unwraps the stream.
    pub fn into_inner(self) -> T {
        self.io.into_inner()
    }
}

impl<T> ErrorType for IoLink<T> {
    type Error = std::io::Error;
}

impl<T: std::io::Read> Read for IoLink<T> {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, Self::Error> {
        self.io.read(buf)
    }
}

impl<T: std::io::Write> Write for IoLink<T> {
    fn write(&mut self, buf: &[u8]) -> Result<usize, Self::Error> {
        self.io.write(buf)
    }

    fn flush(&mut self) -> Result<(), Self::Error> {
        self.io.flush()
    }
}

impl<T: std::io::Read + std::io::Write + SetReadTimeout> Link for IoLink<T> {
    fn read_within(&mut self, buf: &mut [u8], timeout: Duration) -> Result<Option<usize>, Self::Error> {
        let millis = timeout.as_millis().clamp(1, u128::from(u32::MAX));
        let timeout = Duration::from_millis(u64::try_from(millis).unwrap_or(u64::from(u32::MAX)));
        if self.timeout != Some(timeout) {
            self.io.inner_mut().set_read_timeout(Some(timeout))?;
            self.timeout = Some(timeout);
        }
        match std::io::Read::read(self.io.inner_mut(), buf) {
            Ok(n) => Ok(Some(n)),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted) => {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }
}
