//! The frame: a header, a postcard payload and a CRC, COBS-encoded on the stream.
//!
//! ```text
//! on the stream:  COBS( header ‖ payload ‖ CRC-16 ) ‖ 0x00
//! header:         byte 0      version (high nibble) | kind (low nibble)
//!                 bytes 1..3  sequence number, u16 little-endian
//!                 bytes 3..   kind-specific fields (method id, status code)
//! CRC:            CRC-16/IBM-SDLC over header ‖ payload, appended little-endian
//! ```
//!
//! [`Frame::parse`] reads a decoded frame whose CRC was already checked by
//! [`FrameDecoder`](super::FrameDecoder); it never panics on any input. The
//! `encode_*` functions write a complete on-wire frame, delimiter included: one
//! postcard serialisation, then one CRC pass and an in-place COBS pass.
//! PROTOCOL.md is the normative text.

use serde::Serialize;

use super::{CRC, Status};

/// The protocol version this crate speaks.
pub const VERSION: u8 = 1;

/// Bytes of the fixed header every frame starts with (version/kind and sequence number).
pub const HEADER_LEN: usize = 3;

/// Bytes of the CRC that ends every decoded frame.
pub const CRC_LEN: usize = 2;

/// The largest method id an application may use; ids above it are reserved for the library.
pub const MAX_APP_METHOD_ID: u16 = 0xFEFF;

/// Byte offsets of the header fields, as in PROTOCOL.md §3.
mod field {
    pub const VERSION_KIND: usize = 0;
    pub const SEQ: core::ops::Range<usize> = 1..3;
    pub const BODY: usize = 3;
}

/// What a frame is; the low nibble of byte 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[repr(u8)]
pub enum Kind {
    /// A call: method id, then the postcard-encoded argument tuple.
    Request = 1,
    /// The handler's return value, postcard-encoded.
    Reply = 2,
    /// A library status instead of a value.
    Status = 3,
    /// Opens or resumes a session: client id and flags.
    Hello = 4,
    /// Answers a Hello: the server's boot id and whether the session was resumed.
    Welcome = 5,
    /// A call that carries its time budget: method id, budget, arguments.
    TimedRequest = 6,
    /// Asks the server not to run, or to stop, the call with this sequence number.
    Cancel = 7,
    /// Lets the server send a stream's items up to an index.
    Credit = 8,
    /// One item of a stream: its index, then the item.
    Item = 9,
    /// The end of a stream: its status and how many items were sent.
    End = 10,
    /// A one-way call: method id, then arguments; never answered.
    OneWay = 11,
    /// A server-initiated event: topic, then the payload.
    Event = 12,
}

impl Kind {
    /// The kind for a nibble, if v1 defines one.
    pub const fn from_nibble(nibble: u8) -> Option<Kind> {
        match nibble {
            1 => Some(Kind::Request),
            2 => Some(Kind::Reply),
            3 => Some(Kind::Status),
            4 => Some(Kind::Hello),
            5 => Some(Kind::Welcome),
            // Without feature `deadlines` a Timed Request is a reserved kind:
            // dropped, as a server that does not implement it must (PROTOCOL.md §4).
            #[cfg(feature = "deadlines")]
            6 => Some(Kind::TimedRequest),
            // Likewise each optional part of the protocol (PROTOCOL.md §4).
            #[cfg(feature = "cancel")]
            7 => Some(Kind::Cancel),
            #[cfg(feature = "streams")]
            8 => Some(Kind::Credit),
            #[cfg(feature = "streams")]
            9 => Some(Kind::Item),
            #[cfg(feature = "streams")]
            10 => Some(Kind::End),
            #[cfg(feature = "events")]
            11 => Some(Kind::OneWay),
            #[cfg(feature = "events")]
            12 => Some(Kind::Event),
            _ => None,
        }
    }
}

/// The optional parts of the protocol a server implements: the `features` of
/// its [`Capabilities`] (PROTOCOL.md §4.1), one bit each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Features(pub u32);

impl Features {
    /// None of the optional parts: what a Welcome without capabilities announces.
    pub const NONE: Features = Features(0);
    /// Timed Requests (kind 6).
    pub const TIMED_REQUESTS: Features = Features(1 << 0);
    /// Cancel (kind 7).
    pub const CANCEL: Features = Features(1 << 1);
    /// Server streams (kinds 8, 9, 10).
    pub const STREAMS: Features = Features(1 << 2);
    /// One-way calls and events (kinds 11, 12).
    pub const EVENTS: Features = Features(1 << 3);

    /// Those this build implements, by its crate features (`deadlines`,
    /// `cancel`, `streams`, `events`).
    pub const BUILT_IN: Features = Features(
        (if cfg!(feature = "deadlines") { Self::TIMED_REQUESTS.0 } else { 0 })
            | (if cfg!(feature = "cancel") { Self::CANCEL.0 } else { 0 })
            | (if cfg!(feature = "streams") { Self::STREAMS.0 } else { 0 })
            | (if cfg!(feature = "events") { Self::EVENTS.0 } else { 0 }),
    );

    /// Whether every bit of `other` is set.
    pub const fn contains(self, other: Features) -> bool {
        self.0 & other.0 == other.0
    }

    /// Whether `feature`'s bit is set.
    pub const fn has(self, feature: Feature) -> bool {
        self.contains(feature.bit())
    }
}

/// One optional part of the protocol (PROTOCOL.md §4.1): what a call that the
/// server cannot take needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum Feature {
    /// Timed Requests (kind 6), feature bit 0.
    TimedRequests = 0,
    /// Cancel (kind 7), bit 1.
    Cancel = 1,
    /// Server streams (kinds 8, 9, 10), bit 2.
    Streams = 2,
    /// One-way calls and events (kinds 11, 12), bit 3.
    Events = 3,
}

impl Feature {
    /// Its bit in a Welcome's `features`.
    pub const fn bit(self) -> Features {
        Features(1 << self as u32)
    }

    /// Its name, for messages: "the server does not implement streams".
    pub const fn name(self) -> &'static str {
        match self {
            Feature::TimedRequests => "Timed Requests",
            Feature::Cancel => "Cancel",
            Feature::Streams => "streams",
            Feature::Events => "one-way calls and events",
        }
    }
}

/// What a server announces in its Welcome (PROTOCOL.md §4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Capabilities {
    /// The longest decoded frame (header, payload, CRC) the server can receive.
    pub rx: u32,
    /// The longest decoded frame the server can send.
    pub tx: u32,
    /// The optional parts of the protocol it implements.
    pub features: Features,
}

/// A parsed frame, borrowing its payload from the receive buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Frame<'a> {
    /// A call of `method`; `args` is the postcard-encoded argument tuple.
    Request {
        /// Sequence number chosen by the caller.
        seq: u16,
        /// Method id from the service definition.
        method: u16,
        /// The time the client still waited for the answer when it sent the
        /// request, in milliseconds (kind 6); `None` for a plain Request (kind 1).
        budget_ms: Option<u32>,
        /// Postcard-encoded arguments.
        args: &'a [u8],
        /// A one-way call (kind 11): never answered.
        oneway: bool,
    },
    /// Asks the server not to run the call `seq` if it has not, and to stop it
    /// if it is a stream in progress; answered with the call's final answer.
    Cancel {
        /// Sequence number of the call.
        seq: u16,
    },
    /// Lets the server send the items of stream `seq` whose index is below `limit`.
    Credit {
        /// Sequence number of the stream's call.
        seq: u16,
        /// Items with an index below it may be sent (cumulative, not a delta).
        limit: u32,
    },
    /// Item number `index` of the stream `seq`.
    Item {
        /// Sequence number of the stream's call.
        seq: u16,
        /// 0 for the first item, then counting up by one.
        index: u32,
        /// Postcard-encoded item.
        value: &'a [u8],
    },
    /// The final answer of a stream that started: why it ended and how many items
    /// were sent.
    End {
        /// Sequence number of the stream's call.
        seq: u16,
        /// `None`: the handler ended the stream; otherwise why it stopped
        /// ([`Status::Cancelled`] or [`Status::Internal`]).
        status: Option<Status>,
        /// Items sent, numbered `0..items`.
        items: u32,
    },
    /// An event from the server, with its own sequence number (not a call's).
    Event {
        /// The server's event counter: one more for each event it sends.
        seq: u16,
        /// What the event is, as declared in the service definition.
        topic: u16,
        /// Postcard-encoded payload.
        payload: &'a [u8],
    },
    /// The return value of the call `seq`.
    Reply {
        /// Sequence number of the request answered.
        seq: u16,
        /// Postcard-encoded return value.
        value: &'a [u8],
    },
    /// A status instead of a value for the call `seq`.
    Status {
        /// Sequence number of the request answered.
        seq: u16,
        /// What happened.
        status: Status,
    },
    /// A client opening (`fresh`) or resuming a session.
    Hello {
        /// Sequence number, echoed by the Welcome.
        seq: u16,
        /// The client's identity.
        client_id: u32,
        /// Set by a client that has just started: the server must forget every
        /// call of any earlier session, so no stale answer can reach it.
        fresh: bool,
    },
    /// The server's answer to a Hello.
    Welcome {
        /// Sequence number of the Hello answered.
        seq: u16,
        /// Identifies the server's current run (it changes when the server restarts,
        /// if the application gives it a new value at each boot).
        boot_id: u32,
        /// The server still holds the session's state (its reply cache); false when
        /// the session is new, e.g. because the server restarted.
        resumed: bool,
        /// How many answers the server caches.
        window: u8,
        /// What else the server can do, as sent: read it with
        /// [`WelcomeCaps::get`]. (Kept raw so a frame stays small to move, and a
        /// server, which never reads a Welcome, carries no code for it.)
        caps: WelcomeCaps<'a>,
    },
}

/// The capabilities at the end of a Welcome (PROTOCOL.md §4.1), as sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct WelcomeCaps<'a>(pub &'a [u8]);

impl WelcomeCaps<'_> {
    /// None sent: the Welcome of a server that predates capabilities.
    pub const NONE: WelcomeCaps<'static> = WelcomeCaps(&[]);

    /// The capabilities; `None` if the Welcome ended after its window.
    ///
    /// # Errors
    /// [`ParseError`] when the bytes are not three varints that fit in `u32`
    /// (bytes after them are reserved and ignored).
    pub fn get(&self) -> Result<Option<Capabilities>, ParseError> {
        if self.0.is_empty() {
            return Ok(None);
        }
        let (rx, rest) = varint_u32(self.0)?;
        let (tx, rest) = varint_u32(rest)?;
        let (features, _) = varint_u32(rest)?;
        Ok(Some(Capabilities { rx, tx, features: Features(features) }))
    }
}

/// Why a decoded frame (CRC already good) could not be parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum ParseError {
    /// Fewer bytes than the header of its kind needs.
    TooShort,
    /// The version nibble is not [`VERSION`].
    Version(u8),
    /// The kind nibble names no kind this version defines.
    Kind(u8),
    /// A header field is not well formed (a method id varint that overflows u16).
    Malformed,
}

impl<'a> Frame<'a> {
    /// Parses a decoded frame: header and payload, without the CRC.
    ///
    /// # Errors
    /// [`ParseError`] when the frame is too short, of another version, of an
    /// unknown kind or has a malformed header field. Never panics.
    #[inline]
    pub fn parse(bytes: &'a [u8]) -> Result<Self, ParseError> {
        let (&first, _) = bytes.split_first().ok_or(ParseError::TooShort)?;
        debug_assert_eq!(field::VERSION_KIND, 0);
        let version = first >> 4;
        if version != VERSION {
            return Err(ParseError::Version(version));
        }
        let kind = Kind::from_nibble(first & 0x0F).ok_or(ParseError::Kind(first & 0x0F))?;
        let seq = match bytes.get(field::SEQ) {
            Some(&[lo, hi]) => u16::from_le_bytes([lo, hi]),
            _ => return Err(ParseError::TooShort),
        };
        let body = bytes.get(field::BODY..).ok_or(ParseError::TooShort)?;
        match kind {
            Kind::Request | Kind::TimedRequest | Kind::OneWay => {
                if body.is_empty() {
                    return Err(ParseError::TooShort);
                }
                let (method, rest) = varint::<u16>(body)?;
                #[cfg(feature = "deadlines")]
                let (budget_ms, args) = if kind == Kind::TimedRequest {
                    let (budget, args) = varint::<u32>(rest)?;
                    (Some(budget), args)
                } else {
                    (None, rest)
                };
                #[cfg(not(feature = "deadlines"))]
                let (budget_ms, args) = (None, rest);
                Ok(Frame::Request {
                    seq,
                    method,
                    budget_ms,
                    args,
                    oneway: cfg!(feature = "events") && kind == Kind::OneWay,
                })
            }
            #[cfg(feature = "cancel")]
            Kind::Cancel => Ok(Frame::Cancel { seq }),
            #[cfg(feature = "streams")]
            Kind::Credit => Ok(Frame::Credit { seq, limit: varint::<u32>(body)?.0 }),
            #[cfg(feature = "streams")]
            Kind::Item => {
                let (index, value) = varint::<u32>(body)?;
                Ok(Frame::Item { seq, index, value })
            }
            #[cfg(feature = "streams")]
            Kind::End => {
                let (&code, rest) = body.split_first().ok_or(ParseError::TooShort)?;
                let status = if code == 0 { None } else { Some(Status::from_code(code)) };
                Ok(Frame::End { seq, status, items: varint::<u32>(rest)?.0 })
            }
            #[cfg(feature = "events")]
            Kind::Event => {
                let (topic, payload) = varint::<u16>(body)?;
                Ok(Frame::Event { seq, topic, payload })
            }
            Kind::Reply => Ok(Frame::Reply { seq, value: body }),
            Kind::Status => {
                // Bytes after the code are reserved: v1 senders send none, receivers ignore them.
                let (&code, _) = body.split_first().ok_or(ParseError::TooShort)?;
                Ok(Frame::Status { seq, status: Status::from_code(code) })
            }
            Kind::Hello => match body {
                [a, b, c, d, flags, ..] => {
                    Ok(Frame::Hello { seq, client_id: u32::from_le_bytes([*a, *b, *c, *d]), fresh: flags & 1 != 0 })
                }
                _ => Err(ParseError::TooShort),
            },
            Kind::Welcome => match body {
                [a, b, c, d, flags, window, rest @ ..] => Ok(Frame::Welcome {
                    seq,
                    boot_id: u32::from_le_bytes([*a, *b, *c, *d]),
                    resumed: flags & 1 != 0,
                    window: *window,
                    caps: WelcomeCaps(rest),
                }),
                _ => Err(ParseError::TooShort),
            },
            // Kinds of features left out are never made by `from_nibble`.
            #[allow(unreachable_patterns)]
            _ => Err(ParseError::Kind(first & 0x0F)),
        }
    }

    /// The sequence number of the frame.
    pub const fn seq(&self) -> u16 {
        match *self {
            Frame::Request { seq, .. }
            | Frame::Cancel { seq }
            | Frame::Credit { seq, .. }
            | Frame::Item { seq, .. }
            | Frame::End { seq, .. }
            | Frame::Event { seq, .. }
            | Frame::Reply { seq, .. }
            | Frame::Status { seq, .. }
            | Frame::Hello { seq, .. }
            | Frame::Welcome { seq, .. } => seq,
        }
    }

    /// The kind of the frame.
    pub const fn kind(&self) -> Kind {
        match self {
            Frame::Request { oneway: true, .. } => Kind::OneWay,
            Frame::Request { budget_ms: Some(_), .. } => Kind::TimedRequest,
            Frame::Request { .. } => Kind::Request,
            Frame::Cancel { .. } => Kind::Cancel,
            Frame::Credit { .. } => Kind::Credit,
            Frame::Item { .. } => Kind::Item,
            Frame::End { .. } => Kind::End,
            Frame::Event { .. } => Kind::Event,
            Frame::Reply { .. } => Kind::Reply,
            Frame::Status { .. } => Kind::Status,
            Frame::Hello { .. } => Kind::Hello,
            Frame::Welcome { .. } => Kind::Welcome,
        }
    }
}

/// Reads a `u32` varint as postcard writes it (at most 5 bytes, the value in
/// 32 bits), by hand: a client firmware reads no other `u32` varint, and this
/// costs less than postcard's generic decoder.
fn varint_u32(bytes: &[u8]) -> Result<(u32, &[u8]), ParseError> {
    let mut value: u32 = 0;
    for (i, &byte) in bytes.iter().enumerate().take(5) {
        let part = u32::from(byte & 0x7F);
        if i == 4 && part > 0x0F {
            return Err(ParseError::Malformed);
        }
        value |= part << (7 * i);
        if byte & 0x80 == 0 {
            return Ok((value, bytes.get(i + 1..).unwrap_or(&[])));
        }
    }
    Err(if bytes.len() < 5 { ParseError::TooShort } else { ParseError::Malformed })
}

/// Reads a varint field of a header.
fn varint<'b, T: serde::Deserialize<'b>>(bytes: &'b [u8]) -> Result<(T, &'b [u8]), ParseError> {
    postcard::take_from_bytes::<T>(bytes).map_err(|e| match e {
        postcard::Error::DeserializeUnexpectedEnd => ParseError::TooShort,
        _ => ParseError::Malformed,
    })
}

/// A payload already encoded with postcard, serialized as it is: for sending
/// arguments or values encoded elsewhere (by a tool working from a schema, or
/// forwarded from another frame).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Encoded<'a>(pub &'a [u8]);

impl Serialize for Encoded<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeTuple;
        // A tuple of bytes: postcard writes its elements with no length prefix.
        let mut tuple = serializer.serialize_tuple(self.0.len())?;
        for byte in self.0 {
            tuple.serialize_element(byte)?;
        }
        tuple.end()
    }
}

/// The buffer could not hold the encoded frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct BufferFull;

const fn version_kind(kind: Kind) -> u8 {
    (VERSION << 4) | kind as u8
}

/// Writes `COBS(value ‖ CRC) ‖ 0x00` into `buf`.
///
/// postcard serialises `value` once into `buf[1..]` (through [`Bytes`]);
/// then one pass appends the CRC, and one pass COBS-encodes in place. Chaining
/// postcard's CRC and COBS flavors would do the same byte by byte, at about
/// 500 more bytes of firmware; the `cobs` crate has no in-place encoder.
fn encode<'b, T: Serialize + ?Sized>(value: &T, buf: &'b mut [u8]) -> Result<&'b [u8], BufferFull> {
    let body = Bytes { buf: buf.get_mut(1..).ok_or(BufferFull)?, len: 0 };
    let len = postcard::serialize_with_flavor(value, body).map_err(|_| BufferFull)?;
    let total = crc_and_cobs_in_place(buf, len).ok_or(BufferFull)?;
    buf.get(..total).ok_or(BufferFull)
}

/// A postcard flavor writing byte by byte into a slice; its output is the
/// length written. (postcard's `Slice` copies multi-byte pieces with a
/// variable-length `memcpy`, which links a 730-byte routine into firmware.)
struct Bytes<'b> {
    buf: &'b mut [u8],
    len: usize,
}

impl postcard::ser_flavors::Flavor for Bytes<'_> {
    type Output = usize;

    fn try_push(&mut self, byte: u8) -> postcard::Result<()> {
        *self.buf.get_mut(self.len).ok_or(postcard::Error::SerializeBufferFull)? = byte;
        self.len += 1;
        Ok(())
    }

    fn finalize(self) -> postcard::Result<usize> {
        Ok(self.len)
    }
}

/// `buf[1..=len]` holds a frame's header and payload. Appends its CRC (little-
/// endian), COBS-encodes header, payload and CRC in place (code bytes go to
/// `buf[0]` and where each zero was; a run of 254 non-zero bytes makes room for
/// an extra code byte), and appends the delimiter. Returns the encoded length,
/// or `None` if `buf` is too short. Never panics.
fn crc_and_cobs_in_place(buf: &mut [u8], len: usize) -> Option<usize> {
    let [lo, hi] = CRC.checksum(buf.get(1..=len)?).to_le_bytes();
    *buf.get_mut(len + 1)? = lo;
    *buf.get_mut(len + 2)? = hi;
    let mut end = len + 2; // the data now occupies buf[1..=end]
    let mut code = 0; // where the code byte of the current block goes
    let mut i = 1;
    while i <= end {
        if i - code == 0xFF {
            // 254 data bytes without a zero: a full block. Shift the rest right
            // to make room for the next block's code byte at `i`.
            end += 1;
            let mut j = end;
            while j > i {
                *buf.get_mut(j)? = *buf.get(j - 1)?;
                j -= 1;
            }
            *buf.get_mut(code)? = 0xFF;
            code = i;
        } else if *buf.get(i)? == 0 {
            *buf.get_mut(code)? = (i - code) as u8;
            code = i;
        }
        i += 1;
    }
    *buf.get_mut(code)? = (end + 1 - code) as u8;
    *buf.get_mut(end + 1)? = 0;
    Some(end + 2)
}

/// Encodes a complete Request frame (COBS, CRC and delimiter included) into `buf`.
///
/// `args` is the argument tuple, e.g. `&(2i32, 3i32)` or `&("Ada",)`.
///
/// # Errors
/// [`BufferFull`] when `buf` is too small, or when `args` cannot be serialized.
pub fn encode_request<'b, A: Serialize + ?Sized>(
    seq: u16,
    method: u16,
    args: &A,
    buf: &'b mut [u8],
) -> Result<&'b [u8], BufferFull> {
    encode(&(version_kind(Kind::Request), seq.to_le_bytes(), method, args), buf)
}

/// Encodes a complete Request frame that carries its time budget (kind 6): the
/// client waits at most `budget_ms` more milliseconds for the answer.
///
/// # Errors
/// [`BufferFull`] when `buf` is too small, or when `args` cannot be serialized.
pub fn encode_timed_request<'b, A: Serialize + ?Sized>(
    seq: u16,
    method: u16,
    budget_ms: u32,
    args: &A,
    buf: &'b mut [u8],
) -> Result<&'b [u8], BufferFull> {
    encode(&(version_kind(Kind::TimedRequest), seq.to_le_bytes(), method, budget_ms, args), buf)
}

/// Encodes a complete Reply frame carrying `value` into `buf`.
///
/// # Errors
/// [`BufferFull`] when `buf` is too small, or when `value` cannot be serialized.
pub fn encode_reply<'b, T: Serialize + ?Sized>(seq: u16, value: &T, buf: &'b mut [u8]) -> Result<&'b [u8], BufferFull> {
    encode(&(version_kind(Kind::Reply), seq.to_le_bytes(), value), buf)
}

/// Encodes a complete Reply frame with an empty value (a method returning `()`)
/// into `buf`: the same bytes as `encode_reply(seq, &(), buf)`, through the
/// encoder fixed-size frames share, which keeps firmware smaller.
///
/// # Errors
/// [`BufferFull`] when `buf` is shorter than the 7 bytes it takes.
pub fn encode_empty_reply(seq: u16, buf: &mut [u8]) -> Result<&[u8], BufferFull> {
    let [lo, hi] = seq.to_le_bytes();
    encode(&Encoded(&[version_kind(Kind::Reply), lo, hi]), buf)
}

/// Encodes a complete Status frame into `buf`.
///
/// # Errors
/// [`BufferFull`] when `buf` is shorter than the 8 bytes a Status frame takes.
// Not inlined: a server encodes statuses from several places, and firmware
// is smaller with one copy (measured with boards/size-report).
#[inline(never)]
pub fn encode_status(seq: u16, status: Status, buf: &mut [u8]) -> Result<&[u8], BufferFull> {
    let [lo, hi] = seq.to_le_bytes();
    encode(&Encoded(&[version_kind(Kind::Status), lo, hi, status.code()]), buf)
}

/// Encodes a complete Hello frame into `buf`.
///
/// # Errors
/// [`BufferFull`] when `buf` is shorter than the 11 bytes a Hello takes.
pub fn encode_hello(seq: u16, client_id: u32, fresh: bool, buf: &mut [u8]) -> Result<&[u8], BufferFull> {
    let [lo, hi] = seq.to_le_bytes();
    let [a, b, c, d] = client_id.to_le_bytes();
    encode(&Encoded(&[version_kind(Kind::Hello), lo, hi, a, b, c, d, u8::from(fresh)]), buf)
}

/// The most bytes an encoded Welcome takes on the wire: 26 decoded (with the
/// longest capabilities), one of COBS overhead and the delimiter.
pub const MAX_WELCOME_LEN: usize = 28;

/// Encodes a complete Welcome frame into `buf`, with the server's capabilities
/// unless `caps` is `None` (the form of a server that predates them).
///
/// # Errors
/// [`BufferFull`] when `buf` is too short: 12 bytes without capabilities, at
/// most [`MAX_WELCOME_LEN`] with.
pub fn encode_welcome(
    seq: u16,
    boot_id: u32,
    resumed: bool,
    window: u8,
    caps: Option<Capabilities>,
    buf: &mut [u8],
) -> Result<&[u8], BufferFull> {
    let (bytes, len) = match caps {
        Some(caps) => caps.encoded(),
        None => ([0; MAX_CAPS_LEN], 0),
    };
    encode_welcome_raw(seq, boot_id, resumed, window, bytes.get(..len).unwrap_or(&[]), buf)
}

/// [`encode_welcome`] with the capabilities already encoded (a server computes
/// them at compile time, so a firmware carries no code to encode them).
pub(crate) fn encode_welcome_raw<'b>(
    seq: u16,
    boot_id: u32,
    resumed: bool,
    window: u8,
    caps: &[u8],
    buf: &'b mut [u8],
) -> Result<&'b [u8], BufferFull> {
    let [lo, hi] = seq.to_le_bytes();
    let [a, b, c, d] = boot_id.to_le_bytes();
    // One byte string, so the frame goes through the same `encode` as a Status
    // (a server's capabilities are constants: this folds to stores).
    let cap = |i: usize| caps.get(i).copied().unwrap_or(0);
    #[rustfmt::skip]
    let body = [
        version_kind(Kind::Welcome), lo, hi, a, b, c, d, u8::from(resumed), window,
        cap(0), cap(1), cap(2), cap(3), cap(4), cap(5), cap(6), cap(7), cap(8), cap(9), cap(10), cap(11), cap(12),
        cap(13), cap(14),
    ];
    encode(&Encoded(body.get(..9 + caps.len().min(MAX_CAPS_LEN)).unwrap_or(&body)), buf)
}

/// The most bytes a Welcome's capabilities take: three varints of up to 5.
pub const MAX_CAPS_LEN: usize = 15;

impl Capabilities {
    /// The capabilities as a Welcome carries them (three varints), and how
    /// many bytes of the array that is. `const`, so a server's are computed
    /// at compile time.
    pub const fn encoded(&self) -> ([u8; MAX_CAPS_LEN], usize) {
        let mut bytes = [0u8; MAX_CAPS_LEN];
        let mut len = 0;
        let fields = [self.rx, self.tx, self.features.0];
        let mut f = 0;
        while f < fields.len() {
            let mut n = fields[f];
            while n >= 0x80 {
                bytes[len] = (n as u8) | 0x80;
                len += 1;
                n >>= 7;
            }
            bytes[len] = n as u8;
            len += 1;
            f += 1;
        }
        (bytes, len)
    }
}

/// Encodes a complete Extension frame (PROTOCOL.md §4.2): kind 13, to the
/// server, if `to_server`, else kind 14, to the client; `sub_kind` and then
/// `rest`, the bytes the sub-kind defines.
///
/// # Errors
/// [`BufferFull`] when `buf` is too small.
pub fn encode_extension<'b>(
    to_server: bool,
    seq: u16,
    sub_kind: u16,
    rest: &[u8],
    buf: &'b mut [u8],
) -> Result<&'b [u8], BufferFull> {
    let kind = (VERSION << 4) | if to_server { 13 } else { 14 };
    encode(&(kind, seq.to_le_bytes(), sub_kind, Encoded(rest)), buf)
}

/// The length of one encoded frame once decoded (header, payload, CRC), as the
/// receiver's buffer holds it; `encoded` may end with its delimiter.
pub fn decoded_len(encoded: &[u8]) -> usize {
    let body = match encoded.split_last() {
        Some((0, body)) => body,
        _ => encoded,
    };
    let (mut len, mut i) = (0, 0);
    while let Some(&code) = body.get(i) {
        let code = usize::from(code);
        if code == 0 {
            break;
        }
        len += code - 1;
        i += code;
        // A block shorter than 254 data bytes stands for a zero after it, unless it is the last.
        if code < 0xFF && i < body.len() {
            len += 1;
        }
    }
    len
}

/// The kind of an encoded frame, read without decoding it: byte 0 of a frame is
/// never 0x00, so the first COBS code byte is followed by it.
pub fn encoded_kind(encoded: &[u8]) -> Option<Kind> {
    match encoded {
        [code, first, ..] if *code >= 2 && first >> 4 == VERSION => Kind::from_nibble(first & 0x0F),
        _ => None,
    }
}

/// Turns an encoded Timed Request (delimiter included, at the start of `frame`,
/// which may be longer) into the plain Request with the same number, method and
/// arguments, in place: for a server that does not implement Timed Requests
/// (PROTOCOL.md §4.1). Returns the new encoded length, or `None` (and `frame`
/// in an unspecified state) if it was not a well-formed Timed Request.
pub fn strip_budget(frame: &mut [u8]) -> Option<usize> {
    let end = frame.iter().position(|&b| b == 0)?;
    let decoded = cobs::decode_in_place(frame.get_mut(..end)?).ok()?;
    let data_len = decoded.checked_sub(CRC_LEN)?;
    if *frame.first()? != version_kind(Kind::TimedRequest) {
        return None;
    }
    let fields = frame.get(HEADER_LEN..data_len)?;
    let (_, rest) = varint::<u16>(fields).ok()?;
    let (_, args) = varint::<u32>(rest).ok()?;
    let budget_at = HEADER_LEN + (fields.len() - rest.len());
    let budget_len = rest.len() - args.len();
    frame.copy_within(budget_at + budget_len..data_len, budget_at);
    let len = data_len - budget_len;
    *frame.first_mut()? = version_kind(Kind::Request);
    // `crc_and_cobs_in_place` takes header and payload at 1..=len.
    frame.copy_within(..len, 1);
    crc_and_cobs_in_place(frame, len)
}

/// Encodes a complete One-way Request frame (kind 11): a call no answer is sent to.
///
/// # Errors
/// [`BufferFull`] when `buf` is too small, or when `args` cannot be serialized.
pub fn encode_oneway<'b, A: Serialize + ?Sized>(
    seq: u16,
    method: u16,
    args: &A,
    buf: &'b mut [u8],
) -> Result<&'b [u8], BufferFull> {
    encode(&(version_kind(Kind::OneWay), seq.to_le_bytes(), method, args), buf)
}

/// Encodes a complete Cancel frame (kind 7) for the call `seq`.
///
/// # Errors
/// [`BufferFull`] when `buf` is shorter than the 7 bytes a Cancel takes.
pub fn encode_cancel(seq: u16, buf: &mut [u8]) -> Result<&[u8], BufferFull> {
    let [lo, hi] = seq.to_le_bytes();
    encode(&Encoded(&[version_kind(Kind::Cancel), lo, hi]), buf)
}

/// Encodes a complete Credit frame (kind 8): the stream `seq` may send the items
/// whose index is below `limit`.
///
/// # Errors
/// [`BufferFull`] when `buf` is too small (at most 12 bytes are needed).
pub fn encode_credit(seq: u16, limit: u32, buf: &mut [u8]) -> Result<&[u8], BufferFull> {
    encode(&(version_kind(Kind::Credit), seq.to_le_bytes(), limit), buf)
}

/// Encodes a complete Item frame (kind 9): item `index` of the stream `seq`.
///
/// # Errors
/// [`BufferFull`] when `buf` is too small, or when `value` cannot be serialized.
pub fn encode_item<'b, T: Serialize + ?Sized>(
    seq: u16,
    index: u32,
    value: &T,
    buf: &'b mut [u8],
) -> Result<&'b [u8], BufferFull> {
    encode(&(version_kind(Kind::Item), seq.to_le_bytes(), index, value), buf)
}

/// Encodes a complete End frame (kind 10): the stream `seq` ended after `items`
/// items, by its handler (`status` `None`) or for `status`.
///
/// # Errors
/// [`BufferFull`] when `buf` is too small (at most 13 bytes are needed).
pub fn encode_end(seq: u16, status: Option<Status>, items: u32, buf: &mut [u8]) -> Result<&[u8], BufferFull> {
    let code = match status {
        Some(status) => status.code(),
        None => 0,
    };
    encode(&(version_kind(Kind::End), seq.to_le_bytes(), code, items), buf)
}

/// Encodes a complete Event frame (kind 12): event number `seq` of the server,
/// on `topic`, carrying `payload`.
///
/// # Errors
/// [`BufferFull`] when `buf` is too small, or when `payload` cannot be serialized.
pub fn encode_event<'b, T: Serialize + ?Sized>(
    seq: u16,
    topic: u16,
    payload: &T,
    buf: &'b mut [u8],
) -> Result<&'b [u8], BufferFull> {
    encode(&(version_kind(Kind::Event), seq.to_le_bytes(), topic, payload), buf)
}

/// Whether sequence number `a` comes after `b`, in serial number arithmetic:
/// `a` is one of the 32,767 numbers after `b`, wrapping at `0xFFFF`.
pub const fn seq_after(a: u16, b: u16) -> bool {
    let d = a.wrapping_sub(b);
    d != 0 && d < 0x8000
}

#[cfg(test)]
mod tests {
    #[test]
    fn capabilities_round_trip_and_a_welcome_without_them_parses() {
        let mut buf = [0u8; MAX_WELCOME_LEN];
        let caps = Capabilities { rx: u32::MAX, tx: u32::MAX, features: Features(u32::MAX) };
        let wire = encode_welcome(0xffff, u32::MAX, true, 32, Some(caps), &mut buf).unwrap().to_vec();
        assert_eq!(wire.len(), MAX_WELCOME_LEN, "the longest Welcome");
        assert_eq!(decoded_len(&wire), 26);
        let mut dec = super::super::FrameDecoder::<32>::new();
        assert_eq!(dec.feed(&wire).1, Some(crate::wire::Decoded::Frame));
        let Ok(Frame::Welcome { seq: 0xffff, boot_id: u32::MAX, resumed: true, window: 32, caps: raw }) =
            Frame::parse(dec.frame())
        else {
            panic!("a Welcome")
        };
        assert_eq!(raw.get(), Ok(Some(caps)));
        // Truncated capabilities are malformed, not "none".
        assert_eq!(WelcomeCaps(raw.0.get(..raw.0.len() - 1).unwrap()).get(), Err(ParseError::TooShort));
        assert_eq!(WelcomeCaps::NONE.get(), Ok(None));
    }

    #[cfg(feature = "deadlines")]
    #[test]
    fn a_timed_request_loses_its_budget_and_nothing_else() {
        for budget in [0u32, 250, u32::MAX] {
            let mut timed = [0u8; 64];
            let len = encode_timed_request(7, 0x0180, budget, &(2i32, 0u8, [0u8; 3]), &mut timed).unwrap().len();
            assert_eq!(encoded_kind(&timed), Some(Kind::TimedRequest));
            let mut plain = [0u8; 64];
            let expected = encode_request(7, 0x0180, &(2i32, 0u8, [0u8; 3]), &mut plain).unwrap().to_vec();
            let new_len = strip_budget(&mut timed[..len]).unwrap();
            assert_eq!(&timed[..new_len], &expected[..], "budget {budget}");
            assert_eq!(encoded_kind(&timed), Some(Kind::Request));
            assert_eq!(decoded_len(&expected), expected.len() - 2);
        }
        let mut plain = [0u8; 32];
        let len = encode_request(1, 2, &(), &mut plain).unwrap().len();
        assert_eq!(strip_budget(&mut plain[..len]), None, "not a Timed Request");
    }

    use super::*;

    #[test]
    fn parses_each_kind() {
        assert_eq!(
            Frame::parse(&[0x11, 0x34, 0x12, 0x02, 0x04, 0x06]),
            Ok(Frame::Request { seq: 0x1234, method: 2, budget_ms: None, args: &[0x04, 0x06], oneway: false })
        );
        assert_eq!(
            Frame::parse(&[0x11, 0x01, 0x00, 0x80, 0x02]),
            Ok(Frame::Request { seq: 1, method: 256, budget_ms: None, args: &[], oneway: false })
        );
        assert_eq!(Frame::parse(&[0x12, 0xff, 0xff, 0x0a]), Ok(Frame::Reply { seq: 0xffff, value: &[0x0a] }));
        assert_eq!(Frame::parse(&[0x12, 0x00, 0x00]), Ok(Frame::Reply { seq: 0, value: &[] }));
        assert_eq!(
            Frame::parse(&[0x13, 0x07, 0x00, 12, 0xaa]),
            Ok(Frame::Status { seq: 7, status: Status::Unimplemented })
        );
    }

    #[test]
    fn session_frames_round_trip() {
        let mut buf = [0u8; 16];
        let hello = encode_hello(9, 0xdead_beef, true, &mut buf).unwrap().to_vec();
        let mut dec = crate::wire::FrameDecoder::<16>::new();
        assert_eq!(dec.feed(&hello).1, Some(crate::wire::Decoded::Frame));
        assert_eq!(Frame::parse(dec.frame()), Ok(Frame::Hello { seq: 9, client_id: 0xdead_beef, fresh: true }));
        let welcome = encode_welcome(9, 7, true, 1, None, &mut buf).unwrap().to_vec();
        assert_eq!(welcome.len(), 13);
        assert_eq!(dec.feed(&welcome).1, Some(crate::wire::Decoded::Frame));
        assert_eq!(
            Frame::parse(dec.frame()),
            Ok(Frame::Welcome { seq: 9, boot_id: 7, resumed: true, window: 1, caps: WelcomeCaps::NONE })
        );
    }

    #[test]
    fn in_place_cobs_matches_the_cobs_crate_on_every_run_length() {
        // Payloads with runs of non-zero bytes around the 254-byte block size.
        for run in [0usize, 1, 2, 200, 250, 251, 252, 253, 254, 255, 256, 300, 507, 508, 509, 600] {
            for zero_every in [0usize, 7, 254, 255] {
                let data: [u8; 600] = core::array::from_fn(|i| {
                    if zero_every != 0 && i % zero_every == zero_every - 1 { 0 } else { (i % 251) as u8 + 1 }
                });
                let data = &data[..run];
                let mut buf = [0u8; 700];
                buf[1..=run].copy_from_slice(data);
                let n = crc_and_cobs_in_place(&mut buf, run).unwrap();
                // Expected: the cobs crate's encoding of data ‖ crc, then a 0x00.
                let mut plain = [0u8; 602];
                plain[..run].copy_from_slice(data);
                plain[run..run + 2].copy_from_slice(&CRC.checksum(data).to_le_bytes());
                let mut expected = [0u8; 700];
                let m = cobs::encode(&plain[..run + 2], &mut expected);
                assert_eq!(&buf[..n - 1], &expected[..m], "run {run} zero_every {zero_every}");
                assert_eq!(buf[n - 1], 0);
                assert!(!buf[..n - 1].contains(&0));
            }
        }
    }

    #[test]
    fn an_empty_reply_is_a_reply_of_unit() {
        let (mut a, mut b) = ([0u8; 16], [0u8; 16]);
        assert_eq!(encode_empty_reply(9, &mut a), encode_reply(9, &(), &mut b));
    }

    #[test]
    fn encoded_payloads_are_written_as_they_are() {
        let mut a = [0u8; 16];
        let mut b = [0u8; 16];
        let direct = encode_request(3, 2, &(2i32, 3i32), &mut a).unwrap();
        let raw = encode_request(3, 2, &Encoded(&[0x04, 0x06]), &mut b).unwrap();
        assert_eq!(direct, raw);
    }

    #[test]
    fn serial_number_order() {
        assert!(seq_after(1, 0));
        assert!(seq_after(0, 0xffff));
        assert!(seq_after(0x7fff, 0));
        assert!(!seq_after(0x8000, 0));
        assert!(!seq_after(5, 5));
        assert!(!seq_after(4, 5));
    }

    #[test]
    fn rejects_bad_headers_without_panicking() {
        assert_eq!(Frame::parse(&[]), Err(ParseError::TooShort));
        assert_eq!(Frame::parse(&[0x11, 0x00]), Err(ParseError::TooShort));
        assert_eq!(Frame::parse(&[0x11, 0x00, 0x00]), Err(ParseError::TooShort));
        assert_eq!(Frame::parse(&[0x11, 0x00, 0x00, 0x80]), Err(ParseError::TooShort));
        assert_eq!(Frame::parse(&[0x11, 0x00, 0x00, 0xff, 0xff, 0x7f]), Err(ParseError::Malformed));
        assert_eq!(Frame::parse(&[0x13, 0x00, 0x00]), Err(ParseError::TooShort));
        assert_eq!(Frame::parse(&[0x21, 0x00, 0x00, 0x01]), Err(ParseError::Version(2)));
        assert_eq!(Frame::parse(&[0x10, 0x00, 0x00, 0x01]), Err(ParseError::Kind(0)));
        assert_eq!(Frame::parse(&[0x1f, 0x00, 0x00, 0x01]), Err(ParseError::Kind(15)));
    }

    #[test]
    fn parse_never_panics_on_short_inputs() {
        // Every input of up to three bytes, and a spread of four-byte ones.
        for a in 0..=255u8 {
            let _ = Frame::parse(&[a]);
            for b in 0..=255u8 {
                let _ = Frame::parse(&[a, b]);
                let _ = Frame::parse(&[a, b, b ^ 0x5a]);
                let _ = Frame::parse(&[a, 0, 0, b]);
            }
        }
    }

    #[test]
    fn encode_reports_a_full_buffer() {
        let mut small = [0u8; 9];
        assert_eq!(encode_request(0, 2, &(2i32, 3i32), &mut small), Err(BufferFull));
        let mut exact = [0u8; 10];
        assert_eq!(encode_request(0, 2, &(2i32, 3i32), &mut exact).map(|f| f.len()), Ok(10));
        assert_eq!(encode_status(0, Status::Internal, &mut [0u8; 7]), Err(BufferFull));
        assert_eq!(encode_status(0, Status::Internal, &mut [0u8; 8]).map(|f| f.len()), Ok(8));
    }
}
