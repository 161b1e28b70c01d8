//! [`IoLink`]: a `std::io` stream (a `TcpStream`, a Unix socket, a serial port)
//! as a [`Link`].
//!
//! Invariants:
//! - `read_within(buf, Duration::ZERO)` never sleeps: the stream is put in
//!   non-blocking mode (a serial port: a zero timeout) and the read returns at
//!   once, with `None` if nothing is there. A server polling between stream items
//!   or from a main loop waits for nothing.
//! - A longer wait uses the stream's own read timeout, rounded up to whole
//!   milliseconds. The mode and the timeout are set only when they change, so a
//!   loop that keeps asking for the same wait makes no extra system calls.
//! - Writes always complete as a blocking write would: a write that would block
//!   in non-blocking mode puts the stream back in blocking mode and goes on (a
//!   write timeout set on the stream still applies).

use core::time::Duration;
use std::io::ErrorKind;

use embedded_io::{ErrorType, Read, Write};
use embedded_io_adapters::std::FromStd;

use super::Link;

/// A stream whose reads can be given a timeout or made non-blocking, as a
/// `TcpStream` can.
pub trait SetReadTimeout {
    /// Sets the read timeout; `None` blocks forever.
    ///
    /// # Errors
    /// As the stream's own method.
    fn set_read_timeout(&mut self, timeout: Option<Duration>) -> std::io::Result<()>;

    /// Puts the stream in or out of non-blocking mode: in it, a read with
    /// nothing to return fails at once with `WouldBlock` (or `TimedOut`).
    ///
    /// # Errors
    /// As the stream's own method.
    fn set_nonblocking(&mut self, nonblocking: bool) -> std::io::Result<()>;
}

impl SetReadTimeout for std::net::TcpStream {
    fn set_read_timeout(&mut self, timeout: Option<Duration>) -> std::io::Result<()> {
        std::net::TcpStream::set_read_timeout(self, timeout)
    }

    fn set_nonblocking(&mut self, nonblocking: bool) -> std::io::Result<()> {
        std::net::TcpStream::set_nonblocking(self, nonblocking)
    }
}

#[cfg(unix)]
impl SetReadTimeout for std::os::unix::net::UnixStream {
    fn set_read_timeout(&mut self, timeout: Option<Duration>) -> std::io::Result<()> {
        std::os::unix::net::UnixStream::set_read_timeout(self, timeout)
    }

    fn set_nonblocking(&mut self, nonblocking: bool) -> std::io::Result<()> {
        std::os::unix::net::UnixStream::set_nonblocking(self, nonblocking)
    }
}

/// How reads on the stream wait, as last set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// As the stream was handed over: nothing set yet.
    Unknown,
    /// Blocking, with this read timeout.
    Blocking(Option<Duration>),
    /// Non-blocking.
    NonBlocking,
}

/// A `std::io::Read + Write` stream used as a [`Link`].
///
/// `read_within` waits with the stream's own read timeout (rounded up to whole
/// milliseconds), or not at all for `Duration::ZERO` (non-blocking mode); it
/// changes the stream's settings only when the wait asked for changes.
pub struct IoLink<T> {
    io: FromStd<T>,
    mode: Mode,
}

impl<T> IoLink<T> {
    /// Wraps a stream.
    pub fn new(stream: T) -> Self {
        IoLink { io: FromStd::new(stream), mode: Mode::Unknown }
    }

    /// The stream.
    pub fn get_ref(&self) -> &T {
        self.io.inner()
    }

    /// The stream, mutably. Its blocking mode and read timeout may have been
    /// changed by `read_within`.
    pub fn get_mut(&mut self) -> &mut T {
        self.io.inner_mut()
    }

    /// Unwraps the stream, which may be left in non-blocking mode.
    pub fn into_inner(self) -> T {
        self.io.into_inner()
    }
}

impl<T: SetReadTimeout> IoLink<T> {
    /// Puts the stream in `mode` unless it is there already.
    fn set_mode(&mut self, mode: Mode) -> std::io::Result<()> {
        if self.mode == mode {
            return Ok(());
        }
        let stream = self.io.inner_mut();
        match mode {
            Mode::NonBlocking => stream.set_nonblocking(true)?,
            Mode::Blocking(timeout) => {
                if self.mode == Mode::NonBlocking || self.mode == Mode::Unknown {
                    stream.set_nonblocking(false)?;
                }
                if !matches!(self.mode, Mode::Blocking(t) if t == timeout) {
                    stream.set_read_timeout(timeout)?;
                }
            }
            Mode::Unknown => {}
        }
        self.mode = mode;
        Ok(())
    }

    /// Back to blocking mode, keeping the last read timeout, if non-blocking.
    fn ensure_blocking(&mut self) -> std::io::Result<()> {
        if self.mode == Mode::NonBlocking {
            self.io.inner_mut().set_nonblocking(false)?;
            // The read timeout set before non-blocking mode is still the stream's.
            self.mode = Mode::Unknown;
        }
        Ok(())
    }
}

/// A non-blocking operation that found nothing to do.
fn would_block(e: &std::io::Error) -> bool {
    matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut)
}

impl<T> ErrorType for IoLink<T> {
    type Error = std::io::Error;
}

impl<T: std::io::Read + SetReadTimeout> Read for IoLink<T> {
    /// Blocks until at least one byte arrives (or the stream's read timeout).
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, Self::Error> {
        self.ensure_blocking()?;
        self.io.read(buf)
    }
}

impl<T: std::io::Write + SetReadTimeout> Write for IoLink<T> {
    fn write(&mut self, buf: &[u8]) -> Result<usize, Self::Error> {
        loop {
            match std::io::Write::write(self.io.inner_mut(), buf) {
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if would_block(&e) && self.mode == Mode::NonBlocking => self.ensure_blocking()?,
                result => return result,
            }
        }
    }

    fn flush(&mut self) -> Result<(), Self::Error> {
        loop {
            match std::io::Write::flush(self.io.inner_mut()) {
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if would_block(&e) && self.mode == Mode::NonBlocking => self.ensure_blocking()?,
                result => return result,
            }
        }
    }
}

impl<T: std::io::Read + std::io::Write + SetReadTimeout> Link for IoLink<T> {
    fn read_within(&mut self, buf: &mut [u8], timeout: Duration) -> Result<Option<usize>, Self::Error> {
        if timeout.is_zero() {
            self.set_mode(Mode::NonBlocking)?;
        } else {
            // Whole milliseconds, rounded up: serial ports count in them.
            let millis = timeout.as_nanos().div_ceil(1_000_000).clamp(1, u128::from(u32::MAX));
            let millis = u64::try_from(millis).unwrap_or(u64::from(u32::MAX));
            self.set_mode(Mode::Blocking(Some(Duration::from_millis(millis))))?;
        }
        match std::io::Read::read(self.io.inner_mut(), buf) {
            Ok(n) => Ok(Some(n)),
            Err(e) if would_block(&e) || e.kind() == ErrorKind::Interrupted => Ok(None),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{TcpListener, TcpStream};
    use std::vec;

    fn pair() -> (IoLink<TcpStream>, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        (IoLink::new(client), server)
    }

    #[test]
    fn a_zero_wait_uses_non_blocking_mode_and_still_reads_what_is_there() {
        use std::io::Write as _;
        let (mut link, mut peer) = pair();
        let mut buf = [0u8; 8];
        assert_eq!(link.read_within(&mut buf, Duration::ZERO).unwrap(), None);
        assert_eq!(link.mode, Mode::NonBlocking, "no read timeout, no sleep: a non-blocking read");
        assert_eq!(link.get_ref().read_timeout().unwrap(), None);
        peer.write_all(b"abc").unwrap();
        let mut got = None;
        while got.is_none() {
            got = link.read_within(&mut buf, Duration::ZERO).unwrap();
        }
        assert_eq!(got, Some(3));
        assert_eq!(link.mode, Mode::NonBlocking, "set once, kept while the wait stays zero");
        // A wait after a zero wait blocks again, with the timeout asked for.
        assert_eq!(link.read_within(&mut buf, Duration::from_micros(1500)).unwrap(), None);
        assert_eq!(link.mode, Mode::Blocking(Some(Duration::from_millis(2))), "rounded up to whole ms");
        assert!(link.get_ref().read_timeout().unwrap().is_some(), "(the kernel rounds it to its tick)");
        drop(peer);
        assert_eq!(link.read_within(&mut buf, Duration::ZERO).unwrap(), Some(0), "end of stream");
    }

    #[test]
    fn a_write_in_non_blocking_mode_completes_however_large() {
        use std::io::Read as _;
        let (mut link, mut peer) = pair();
        let mut buf = [0u8; 8];
        assert_eq!(link.read_within(&mut buf, Duration::ZERO).unwrap(), None);
        // More than the socket buffers hold: a non-blocking write would stop short.
        const LEN: usize = 16 << 20;
        let reader = std::thread::spawn(move || {
            let mut total = 0;
            let mut chunk = vec![0u8; 1 << 16];
            loop {
                match peer.read(&mut chunk).unwrap() {
                    0 => return total,
                    n => total += n,
                }
            }
        });
        Write::write_all(&mut link, &vec![7u8; LEN]).unwrap();
        Write::flush(&mut link).unwrap();
        drop(link);
        assert_eq!(reader.join().unwrap(), LEN);
    }
}
