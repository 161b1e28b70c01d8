//! Wire protocol v1: frames, their encoding on a byte stream, and status codes.
//!
//! Pure functions and types, no state beyond a decoder's buffer: this layer
//! knows nothing of calls, clients or servers. `PROTOCOL.md` is the normative
//! description; the test vectors there are checked by `tests/vectors.rs`.

mod decoder;
mod frame;
mod status;

pub use decoder::{Decoded, DropReason, FrameDecoder, MIN_FRAME_LEN};
pub(crate) use frame::encode_welcome_raw;
pub use frame::{
    BufferFull, CRC_LEN, Capabilities, Encoded, Feature, Features, Frame, HEADER_LEN, Kind, MAX_APP_METHOD_ID,
    MAX_CAPS_LEN, MAX_WELCOME_LEN, ParseError, VERSION, WelcomeCaps, decoded_len, encode_cancel, encode_credit,
    encode_empty_reply, encode_end, encode_event, encode_extension, encode_hello, encode_item, encode_oneway,
    encode_reply, encode_request, encode_status, encode_timed_request, encode_welcome, encoded_kind, seq_after,
    strip_budget,
};
pub use status::{Executed, Status};

/// The frame check: CRC-16/IBM-SDLC, also known as X-25 (poly 0x1021, init
/// 0xFFFF, reflected in and out, final XOR 0xFFFF; check value 0x906E), appended
/// little-endian. The final XOR matters: without it a frame with 0x00 bytes
/// appended (one flipped delimiter does that through COBS) would still check.
///
/// Computed bit by bit unless feature `fast-crc` (on by default) adds the
/// 512-byte lookup table: firmware built with `default-features = false` saves
/// the table and spends about eight shifts per byte instead.
pub static CRC: crc::Crc<u16, CrcTable> = crc::Crc::<u16, CrcTable>::new(&crc::CRC_16_IBM_SDLC);

/// How [`CRC`] is computed: with a 256-entry table (`fast-crc`) or bit by bit.
#[cfg(feature = "fast-crc")]
pub type CrcTable = crc::Table<1>;
/// How [`CRC`] is computed: with a 256-entry table (`fast-crc`) or bit by bit.
#[cfg(not(feature = "fast-crc"))]
pub type CrcTable = crc::NoTable;

/// The CRC computed over a whole valid frame, its own CRC bytes included.
pub const CRC_RESIDUE: u16 = 0x0F47;

/// At most how many bytes COBS and the delimiter add to a frame whose decoded
/// length is `len` (the exact figure is `len.saturating_sub(1) / 254 + 2`).
pub const fn stream_overhead(len: usize) -> usize {
    len / 254 + 2
}
