//! Status codes: what a server says instead of a value, and what each proves.
//!
//! Every code is produced by the library, never by a handler: application
//! errors travel as values inside a Reply (declare the method to return
//! `Result<T, E>`), so the two can never be confused. Codes reuse gRPC's
//! numbers where the meaning matches. Each code states whether the handler ran
//! ([`Executed`]); that table is part of the wire contract (PROTOCOL.md, §5).

/// Whether a call's handler ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Executed {
    /// Provably not: nothing reached the server, or the server refused before dispatch.
    No,
    /// Perhaps: the request may have reached the server and no answer says what happened.
    Maybe,
    /// Yes: the server dispatched the call.
    Yes,
}

/// A status code carried by a Status frame (kind 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum Status {
    /// Code 1 (gRPC CANCELLED): the client cancelled the call before the server
    /// dispatched it, so it did not run and never will. Not executed. (In an
    /// End frame it says a stream stopped, after the items it counts.)
    Cancelled,
    /// Code 3 (gRPC INVALID_ARGUMENT): the arguments did not decode as the method's
    /// argument types, or bytes were left over. Not executed.
    InvalidArgument,
    /// Code 4 (gRPC DEADLINE_EXCEEDED, with a stricter meaning): the request's
    /// time budget had run out when the server was about to dispatch it, so it
    /// did not. Not executed. (A client whose own deadline passes reports
    /// [`Error::Timeout`](crate::Error::Timeout), outcome unknown, instead.)
    DeadlineExceeded,
    /// Code 7 (gRPC PERMISSION_DENIED): an interceptor on the server refused the
    /// call before dispatch. Not executed.
    PermissionDenied,
    /// Code 8 (gRPC RESOURCE_EXHAUSTED): the request frame was larger than the
    /// server's receive buffer. Not executed.
    ResourceExhausted,
    /// Code 9 (gRPC FAILED_PRECONDITION): the server has no session with this
    /// client (it restarted, or never got a Hello), so it cannot tell whether an
    /// earlier run of it executed the call; it did not execute it now. Outcome
    /// unknown; open a session and decide.
    FailedPrecondition,
    /// Code 10 (gRPC ABORTED): a repeat of a call the server already received,
    /// whose answer is no longer cached. Outcome unknown.
    Aborted,
    /// Code 12 (gRPC UNIMPLEMENTED): the server has no method with this id. Not executed.
    Unimplemented,
    /// Code 13 (gRPC INTERNAL): the handler ran, but its return value could not be
    /// encoded into the server's transmit buffer. Executed; the value is lost.
    Internal,
    /// Code 14 (gRPC UNAVAILABLE): the server is busy and refused the call before
    /// dispatch. Not executed.
    Unavailable,
    /// Code 16 (gRPC UNAUTHENTICATED): an interceptor on the server refused the
    /// call before dispatch, for want of credentials. Not executed.
    Unauthenticated,
    /// A code this version of wirecall does not know (sent by a newer peer).
    /// Nothing is known about execution.
    Unrecognized(u8),
}

impl Status {
    /// The code on the wire.
    pub const fn code(self) -> u8 {
        match self {
            Status::Cancelled => 1,
            Status::InvalidArgument => 3,
            Status::DeadlineExceeded => 4,
            Status::PermissionDenied => 7,
            Status::ResourceExhausted => 8,
            Status::FailedPrecondition => 9,
            Status::Aborted => 10,
            Status::Unimplemented => 12,
            Status::Internal => 13,
            Status::Unavailable => 14,
            Status::Unauthenticated => 16,
            Status::Unrecognized(code) => code,
        }
    }

    /// The status for a code read from the wire. Never fails: unknown codes are kept.
    pub const fn from_code(code: u8) -> Self {
        match code {
            1 => Status::Cancelled,
            3 => Status::InvalidArgument,
            4 => Status::DeadlineExceeded,
            7 => Status::PermissionDenied,
            8 => Status::ResourceExhausted,
            9 => Status::FailedPrecondition,
            10 => Status::Aborted,
            12 => Status::Unimplemented,
            13 => Status::Internal,
            14 => Status::Unavailable,
            16 => Status::Unauthenticated,
            other => Status::Unrecognized(other),
        }
    }

    /// What this status proves about the handler having run.
    pub const fn executed(self) -> Executed {
        match self {
            Status::Cancelled
            | Status::InvalidArgument
            | Status::DeadlineExceeded
            | Status::PermissionDenied
            | Status::ResourceExhausted
            | Status::Unimplemented
            | Status::Unavailable
            | Status::Unauthenticated => Executed::No,
            Status::Internal => Executed::Yes,
            Status::FailedPrecondition | Status::Aborted | Status::Unrecognized(_) => Executed::Maybe,
        }
    }

    /// The gRPC-style name of the status.
    pub const fn name(self) -> &'static str {
        match self {
            Status::Cancelled => "CANCELLED",
            Status::InvalidArgument => "INVALID_ARGUMENT",
            Status::DeadlineExceeded => "DEADLINE_EXCEEDED",
            Status::PermissionDenied => "PERMISSION_DENIED",
            Status::ResourceExhausted => "RESOURCE_EXHAUSTED",
            Status::FailedPrecondition => "FAILED_PRECONDITION",
            Status::Aborted => "ABORTED",
            Status::Unimplemented => "UNIMPLEMENTED",
            Status::Internal => "INTERNAL",
            Status::Unavailable => "UNAVAILABLE",
            Status::Unauthenticated => "UNAUTHENTICATED",
            Status::Unrecognized(_) => "UNRECOGNIZED",
        }
    }
}

impl core::fmt::Display for Status {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{} ({})", self.name(), self.code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_round_trips() {
        for code in 0..=u8::MAX {
            assert_eq!(Status::from_code(code).code(), code);
        }
    }

    #[test]
    fn only_internal_proves_execution_and_unknown_codes_prove_nothing() {
        let known = [1u8, 3, 4, 7, 8, 12, 14, 16];
        for code in 0..=u8::MAX {
            let expected = match code {
                13 => Executed::Yes,
                c if known.contains(&c) => Executed::No,
                _ => Executed::Maybe,
            };
            assert_eq!(Status::from_code(code).executed(), expected, "code {code}");
        }
    }
}
