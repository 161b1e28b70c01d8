//! How a call can fail, and what each failure proves about the handler having run.
//!
//! A call ends in exactly one of four ways:
//!
//! | outcome | how it reaches the caller | [`Error::executed`] |
//! |---|---|---|
//! | the value | `Ok(value)` | — |
//! | an application error | `Ok(Err(e))`, for a method declared `-> Result<T, E>` | — (it ran) |
//! | not executed | `Err(e)` | [`Executed::No`] |
//! | outcome unknown | `Err(e)` | [`Executed::Maybe`] |
//!
//! A few errors prove the handler ran but its value was lost on the way back
//! ([`Executed::Yes`]): the server could not encode the value, or the client could
//! not decode it.

pub use crate::wire::{Executed, Status};

/// Why a call returned no value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum Error {
    /// The server answered with a status; [`Status::executed`] says what it proves.
    Status(Status),
    /// The request did not fit the client's transmit buffer. Nothing was sent.
    RequestTooLarge,
    /// The link failed before any byte of the request was written. Nothing was sent.
    NotSent,
    /// Another call is still waiting for its reply on this client. Nothing was sent.
    Busy,
    /// The server did not answer the session handshake before the deadline. The
    /// request was not sent.
    Unreachable,
    /// [`resume`](crate::Client::resume) was asked for, but the last call did not end unknown.
    NothingToResume,
    /// No valid reply came before the deadline. The request may have run.
    Timeout,
    /// The link failed or closed after the request was at least partly written,
    /// and before a reply came. The request may have run.
    LinkLost,
    /// A reply came but did not decode as the method's return type (the service
    /// definitions differ). The call ran; its value is lost.
    BadReply,
    /// The reply was larger than the client's receive buffer. The call ran; its value is lost.
    ReplyTooLarge,
    /// A resumed call found the server without the session it was made in (the
    /// server restarted): nobody can tell whether it ran, and it is not run again.
    SessionLost,
    /// The call was cancelled before any byte of its request was sent. Not executed.
    Cancelled,
    /// The server's Welcome does not announce the part of the protocol the call
    /// needs (a stream, a one-way call: PROTOCOL.md §4.1). Nothing was sent.
    Unsupported(crate::wire::Feature),
    /// The request frame is longer than the server's Welcome says it can
    /// receive (PROTOCOL.md §4.1). Nothing was sent.
    TooLargeForServer {
        /// Bytes of the decoded request frame (header, method, arguments, CRC),
        /// at most 65,535 (a receiver holds no longer frame).
        len: u16,
        /// The most the server receives (65,535 for any more).
        max: u16,
    },
}

impl Error {
    /// Whether the handler ran: provably not, perhaps, or certainly.
    pub const fn executed(&self) -> Executed {
        match self {
            Error::Status(status) => status.executed(),
            Error::RequestTooLarge
            | Error::NotSent
            | Error::Busy
            | Error::Unreachable
            | Error::NothingToResume
            | Error::Cancelled
            | Error::Unsupported(_)
            | Error::TooLargeForServer { .. } => Executed::No,
            Error::Timeout | Error::LinkLost | Error::SessionLost => Executed::Maybe,
            Error::BadReply | Error::ReplyTooLarge => Executed::Yes,
        }
    }

    /// `false` only when the call provably did not run, so it is safe to retry
    /// even if the method is not idempotent.
    pub const fn may_have_executed(&self) -> bool {
        !matches!(self.executed(), Executed::No)
    }

    /// Whether the call may be made again as a new call (a new sequence number)
    /// without risk of running it twice: the server refused it for a passing
    /// reason (busy), or `idempotent` is true and the server can no longer tell
    /// whether it ran (it restarted, or its answer left the cache).
    pub const fn retry_as_new_call(&self, idempotent: bool) -> bool {
        match self {
            Error::Status(Status::Unavailable) => true,
            Error::Status(Status::FailedPrecondition | Status::Aborted) | Error::SessionLost => idempotent,
            _ => false,
        }
    }
}

impl core::fmt::Display for Error {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let what = match self {
            Error::Status(status) => {
                return write!(f, "server answered {status}: {}", verdict(status.executed()));
            }
            Error::Unsupported(feature) => {
                return write!(f, "the server does not implement {}: {}", feature.name(), verdict(self.executed()));
            }
            Error::TooLargeForServer { len, max } => {
                return write!(
                    f,
                    "the request is {len} bytes; the server receives at most {max}: {}",
                    verdict(self.executed())
                );
            }
            Error::RequestTooLarge => "request too large for the client buffer",
            Error::NotSent => "link failed before the request was sent",
            Error::Busy => "another call is in progress",
            Error::Unreachable => "the server did not answer the session handshake",
            Error::NothingToResume => "the last call did not end unknown, so there is nothing to resume",
            Error::SessionLost => "the server restarted and no longer knows the call",
            Error::Timeout => "no reply before the deadline",
            Error::LinkLost => "link lost after the request was sent",
            Error::BadReply => "reply did not decode as the declared return type",
            Error::ReplyTooLarge => "reply too large for the client buffer",
            Error::Cancelled => "cancelled before the request was sent",
        };
        write!(f, "{what}: {}", verdict(self.executed()))
    }
}

const fn verdict(executed: Executed) -> &'static str {
    match executed {
        Executed::No => "not executed",
        Executed::Maybe => "outcome unknown",
        Executed::Yes => "executed, value lost",
    }
}

impl core::error::Error for Error {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification() {
        assert!(!Error::NotSent.may_have_executed());
        assert!(!Error::RequestTooLarge.may_have_executed());
        assert!(!Error::Status(Status::Unimplemented).may_have_executed());
        assert!(Error::Timeout.may_have_executed());
        assert!(Error::LinkLost.may_have_executed());
        assert_eq!(Error::Status(Status::Internal).executed(), Executed::Yes);
        assert_eq!(Error::Status(Status::Unrecognized(99)).executed(), Executed::Maybe);
        assert!(!Error::Unsupported(crate::wire::Feature::Streams).may_have_executed());
        assert!(!Error::TooLargeForServer { len: 1300, max: 1024 }.may_have_executed());
    }

    #[cfg(feature = "std")]
    #[test]
    fn display_says_the_verdict() {
        extern crate std;
        use std::string::ToString;
        assert_eq!(Error::Timeout.to_string(), "no reply before the deadline: outcome unknown");
        assert_eq!(
            Error::Status(Status::Unimplemented).to_string(),
            "server answered UNIMPLEMENTED (12): not executed"
        );
        assert_eq!(
            Error::Unsupported(crate::wire::Feature::Streams).to_string(),
            "the server does not implement streams: not executed"
        );
        assert_eq!(
            Error::TooLargeForServer { len: 1300, max: 1024 }.to_string(),
            "the request is 1300 bytes; the server receives at most 1024: not executed"
        );
    }
}
