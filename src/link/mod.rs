//! Links: the byte streams the blocking drivers talk over.
//!
//! A [`Link`] is an embedded-io `Read + Write` stream that can also wait for
//! input without blocking past a deadline. Any stream that implements
//! `ReadReady` is a `Link` already (the driver polls it), which covers most
//! HAL UARTs. With feature `std`: [`loopback`] pairs for tests and examples, and
//! [`IoLink`] for `std::io` streams such as a `TcpStream`.

use core::time::Duration;

use embedded_io::{Read, ReadReady, Write};

#[cfg(feature = "std")]
mod io;
#[cfg(feature = "std")]
pub mod loopback;
#[cfg(feature = "serial")]
pub mod serial;
#[cfg(feature = "std")]
pub mod tcp;

#[cfg(feature = "std")]
pub use io::{IoLink, SetReadTimeout};

/// A byte stream on which a read can wait a bounded time.
pub trait Link: Read + Write {
    /// Reads received bytes into `buf`, waiting at most `timeout` for the first.
    ///
    /// Returns `Ok(Some(n))` with `n >= 1` bytes read, `Ok(Some(0))` at the end
    /// of the stream, and `Ok(None)` when nothing arrived. It may return `None`
    /// before `timeout` has passed (the driver then checks its clock and asks
    /// again), but must not block much longer than `timeout`.
    ///
    /// # Errors
    /// The stream's error; the drivers treat it as the link having failed.
    fn read_within(&mut self, buf: &mut [u8], timeout: Duration) -> Result<Option<usize>, Self::Error>;
}

/// Streams that can say whether a read would block are polled: `read_within`
/// returns at once, and the driver's loop provides the waiting.
impl<T: Read + Write + ReadReady> Link for T {
    fn read_within(&mut self, buf: &mut [u8], _timeout: Duration) -> Result<Option<usize>, Self::Error> {
        if self.read_ready()? { self.read(buf).map(Some) } else { Ok(None) }
    }
}
