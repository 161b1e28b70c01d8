//! Counters the application can read: what went over the link and what was dropped.
//!
//! Every counter wraps at `u32::MAX` instead of saturating or panicking. The
//! machines keep them only with feature `stats` (on by default); without it the
//! counting compiles to nothing and `stats()` reads all zeros.

#[cfg(feature = "stats")]
use crate::wire::{DropReason, ParseError};

/// Frame-level counters, kept by both the client and the server. Serialized
/// (by the built-in `stats` method) as its fields in order, each a varint.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub struct LinkStats {
    /// Frames received whose CRC and header were good.
    pub frames_in: u32,
    /// Frames handed to the link for sending.
    pub frames_out: u32,
    /// Dropped: not valid COBS.
    pub dropped_cobs: u32,
    /// Dropped: CRC mismatch.
    pub dropped_crc: u32,
    /// Dropped: shorter than a header and a CRC, or than the header of its kind.
    pub dropped_too_short: u32,
    /// Dropped: longer than the receive buffer (its CRC was good).
    pub dropped_too_long: u32,
    /// Dropped: a protocol version this crate does not speak.
    pub dropped_version: u32,
    /// Dropped: a kind this version does not define, or one this side never receives.
    pub dropped_kind: u32,
    /// Dropped: a malformed header field.
    pub dropped_malformed: u32,
    /// Dropped: a partial frame abandoned after the link was idle too long mid-frame.
    pub dropped_stale: u32,
}

impl LinkStats {
    /// All counters at zero, for `const` construction.
    pub const ZERO: LinkStats = LinkStats {
        frames_in: 0,
        frames_out: 0,
        dropped_cobs: 0,
        dropped_crc: 0,
        dropped_too_short: 0,
        dropped_too_long: 0,
        dropped_version: 0,
        dropped_kind: 0,
        dropped_malformed: 0,
        dropped_stale: 0,
    };

    /// Counts a drop found by the decoder.
    #[cfg(feature = "stats")]
    pub(crate) fn count_drop(&mut self, reason: DropReason) {
        let counter = match reason {
            DropReason::Cobs => &mut self.dropped_cobs,
            DropReason::Crc => &mut self.dropped_crc,
            DropReason::TooShort => &mut self.dropped_too_short,
        };
        *counter = counter.wrapping_add(1);
    }

    /// Counts a frame whose header did not parse.
    #[cfg(feature = "stats")]
    pub(crate) fn count_parse_error(&mut self, error: ParseError) {
        let counter = match error {
            ParseError::TooShort => &mut self.dropped_too_short,
            ParseError::Version(_) => &mut self.dropped_version,
            ParseError::Kind(_) => &mut self.dropped_kind,
            ParseError::Malformed => &mut self.dropped_malformed,
        };
        *counter = counter.wrapping_add(1);
    }

    /// All frames dropped, whatever the reason.
    pub fn dropped(&self) -> u32 {
        [
            self.dropped_cobs,
            self.dropped_crc,
            self.dropped_too_short,
            self.dropped_too_long,
            self.dropped_version,
            self.dropped_kind,
            self.dropped_malformed,
            self.dropped_stale,
        ]
        .iter()
        .fold(0u32, |a, b| a.wrapping_add(*b))
    }
}

/// Increments a wrapping counter.
#[cfg(feature = "stats")]
pub(crate) fn bump(counter: &mut u32) {
    *counter = counter.wrapping_add(1);
}

/// Counts at `$place` (a `u32` counter field) when feature `stats` is on;
/// otherwise expands to nothing, and the place is never evaluated.
macro_rules! count {
    ($($place:tt)+) => {{
        #[cfg(feature = "stats")]
        {
            $crate::stats::bump(&mut $($place)+);
        }
    }};
}

/// Counts a decoder drop or a header parse error at link counters `$link`.
macro_rules! count_link {
    ($link:expr, $method:ident($why:expr)) => {{
        #[cfg(feature = "stats")]
        {
            $link.$method($why);
        }
        #[cfg(not(feature = "stats"))]
        {
            let _ = $why;
        }
    }};
}

pub(crate) use {count, count_link};
