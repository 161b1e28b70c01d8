//! Opening the link within the timeout, and what the CLI says about a serial
//! port whose device answers late or not at all.

use std::net::TcpStream;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use wirecall::Link;
use wirecall::embedded_io::{ErrorType, Read, Write};

/// How long the CLI keeps listening, after a serial port gave no answer at all
/// before the deadline, to tell a late device from a missing one.
pub const LINGER: Duration = Duration::from_secs(2);

/// Runs `open` on a thread of its own and waits at most `timeout` for it: a
/// name to resolve, a TCP connection or a serial port that blocks on open
/// cannot hold the CLI past its deadline. `None` when time ran out (the thread
/// is left behind; the process is about to end).
pub fn within<T: Send + 'static>(timeout: Duration, open: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    let (tx, rx) = mpsc::channel();
    std::thread::Builder::new()
        .name("open".into())
        .spawn(move || {
            let _ = tx.send(open());
        })
        .ok()?;
    rx.recv_timeout(timeout).ok()
}

/// Connects to `addr` (resolving it first) without Nagle's delay.
pub fn connect_tcp(addr: &str) -> std::io::Result<TcpStream> {
    let stream = TcpStream::connect(addr)?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// A link that notes when the first bytes went out and when the first bytes
/// came back after them: how long the device took to answer at all.
pub struct Watched<L> {
    link: L,
    first_write: Option<Instant>,
    first_read: Option<Instant>,
}

impl<L> Watched<L> {
    pub fn new(link: L) -> Self {
        Watched { link, first_write: None, first_read: None }
    }

    /// Whether anything was sent yet.
    pub fn sent(&self) -> bool {
        self.first_write.is_some()
    }

    /// From the first byte sent to the first byte received, if one was.
    pub fn first_answer(&self) -> Option<Duration> {
        Some(self.first_read?.saturating_duration_since(self.first_write?))
    }

    /// Since the first byte was sent.
    pub fn waited(&self) -> Duration {
        self.first_write.map_or(Duration::ZERO, |t| t.elapsed())
    }

    fn read_some(&mut self, n: usize) {
        if n > 0 && self.first_write.is_some() && self.first_read.is_none() {
            self.first_read = Some(Instant::now());
        }
    }
}

impl<L: ErrorType> ErrorType for Watched<L> {
    type Error = L::Error;
}

impl<L: Read> Read for Watched<L> {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, Self::Error> {
        let n = self.link.read(buf)?;
        self.read_some(n);
        Ok(n)
    }
}

impl<L: Write> Write for Watched<L> {
    fn write(&mut self, buf: &[u8]) -> Result<usize, Self::Error> {
        let n = self.link.write(buf)?;
        if n > 0 && self.first_write.is_none() {
            self.first_write = Some(Instant::now());
        }
        Ok(n)
    }

    fn flush(&mut self) -> Result<(), Self::Error> {
        self.link.flush()
    }
}

impl<L: Link> Link for Watched<L> {
    fn read_within(&mut self, buf: &mut [u8], timeout: Duration) -> Result<Option<usize>, Self::Error> {
        let n = self.link.read_within(buf, timeout)?;
        self.read_some(n.unwrap_or(0));
        Ok(n)
    }
}

/// Waits up to [`LINGER`] for a first byte on a link that had none before the
/// deadline (a byte that comes is dropped: the command has failed already).
pub fn linger<L: Link>(link: &mut Watched<L>) {
    let until = Instant::now() + LINGER;
    let mut buf = [0u8; 64];
    while link.first_read.is_none() {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return;
        }
        if let Ok(Some(0)) | Err(_) = link.read_within(&mut buf, left.min(Duration::from_millis(100))) {
            return;
        }
    }
}

/// What a pty or a USB serial port may need, for the notes below.
fn advice(port: &str) -> String {
    format!(
        "a pty or USB serial port that no process holds open may not be read at once when opened (QEMU \
         checks a reopened pty once a second): keep it open between calls (`exec 9<>{port}` in the shell) \
         or raise --timeout"
    )
}

/// The note for a device whose first answer came later than the first attempt
/// waits (it came before the deadline, or the command would have failed).
pub fn late_note(port: &str, first_answer: Duration, attempt: Duration) -> Option<String> {
    (first_answer > attempt).then(|| {
        format!(
            "note: {port} answered only after {} ms (an attempt waits {} ms): {}",
            first_answer.as_millis(),
            attempt.as_millis(),
            advice(port)
        )
    })
}

/// The note for a device that did not answer before the deadline: it answered
/// later (seen while [lingering](linger)), sent only what wirecall could not
/// read, or sent nothing.
pub fn silent_note<L>(port: &str, timeout: Duration, baud: u32, link: &Watched<L>) -> String {
    match link.first_answer() {
        Some(after) if after > timeout => format!(
            "{port} answered only after {} ms, past the {} ms timeout: {}",
            after.as_millis(),
            timeout.as_millis(),
            advice(port)
        ),
        Some(_) => format!(
            "{port} sent bytes but no wirecall answer in {} ms: is a wirecall device on it, at {baud} baud?",
            link.waited().as_millis()
        ),
        None => format!(
            "no answer from {port} in {} ms: is a wirecall device on it, at {baud} baud? If one is, {}",
            link.waited().as_millis(),
            advice(port)
        ),
    }
}
