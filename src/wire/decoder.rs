//! The receive side of framing: a streaming COBS decoder that checks the CRC.
//!
//! [`FrameDecoder::feed`] takes any slice of received bytes — a partial frame,
//! several frames, garbage between them — and stops at the first event, telling
//! how many bytes it consumed so the caller can feed the rest later: nothing is
//! lost. Memory is the fixed `[u8; N]` buffer; a frame longer than `N` is still
//! read to its end and its CRC still checked (over every byte, kept or not), so
//! the receiver can prove the frame genuine before it answers "too large".
//! Decoding resynchronises at every 0x00. No input can make it panic.
//!
//! COBS decoding is the `cobs` crate's state machine; the CRC is the `crc`
//! crate's CRC-16/IBM-SDLC. Because that CRC is reflected, the CRC over
//! `data ‖ crc_le(data)` is the constant [`CRC_RESIDUE`] for every valid frame:
//! the check needs no look-behind.

use cobs::{DecodeResult, DecoderState};

use super::{CRC, CRC_LEN, CRC_RESIDUE, HEADER_LEN};

/// The shortest decoded frame that can be valid: a header and a CRC.
pub const MIN_FRAME_LEN: usize = HEADER_LEN + CRC_LEN;

/// Why received bytes were dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum DropReason {
    /// The bytes were not valid COBS (a 0x00 came before a run ended).
    Cobs,
    /// The decoded frame was shorter than a header and a CRC.
    TooShort,
    /// The CRC did not match.
    Crc,
}

/// What [`FrameDecoder::feed`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Decoded {
    /// A frame whose CRC matched; [`FrameDecoder::frame`] holds its header and
    /// payload, CRC removed.
    Frame,
    /// A frame whose CRC matched but that was longer than the buffer;
    /// [`FrameDecoder::frame`] holds its first bytes (at least the header, if the
    /// buffer is that large). `len` is its full decoded length, CRC included
    /// (saturating).
    Oversized {
        /// Decoded length of the whole frame, CRC included.
        len: usize,
    },
    /// The frame was dropped; decoding resumes after its delimiter.
    Dropped(DropReason),
}

/// A streaming frame decoder with a fixed buffer of `N` bytes (header, payload and CRC).
pub struct FrameDecoder<const N: usize> {
    buf: [u8; N],
    /// Decoded bytes of the current frame so far, including any beyond `N`
    /// (saturating; frames are far shorter than 64 KiB).
    len: u16,
    cobs: DecoderState,
    /// The CRC of the frame's bytes so far, finished form (0 for no bytes). A
    /// plain number rather than a `crc::Digest` (which holds a pointer), so a
    /// fresh decoder is all zero bytes and a `static` of one costs no flash.
    crc: u16,
    /// Length of the frame (or head) last reported, until the next `feed`.
    done: u16,
}

impl<const N: usize> FrameDecoder<N> {
    /// An idle decoder.
    pub const fn new() -> Self {
        // The length counter saturates at 65,535, which must stay above N so that
        // any longer frame is still seen as longer than the buffer.
        const { assert!(N < u16::MAX as usize, "a frame decoder holds at most 65,534 bytes") };
        FrameDecoder { buf: [0; N], len: 0, cobs: DecoderState::Idle, crc: 0, done: 0 }
    }

    /// Whether part of a frame has been received and its delimiter has not.
    pub const fn is_mid_frame(&self) -> bool {
        !matches!(self.cobs, DecoderState::Idle)
    }

    /// The frame (or the head of the oversized frame) that the last call to
    /// [`feed`](Self::feed) reported; empty after any other outcome.
    pub fn frame(&self) -> &[u8] {
        self.buf.get(..usize::from(self.done)).unwrap_or(&[])
    }

    /// The whole buffer, for a receiver to write a short answer into between
    /// frames (when not [mid-frame](Self::is_mid_frame)): it overwrites the last
    /// reported frame, and is itself overwritten by the next one fed.
    pub(crate) fn buffer(&mut self) -> &mut [u8] {
        self.done = 0;
        &mut self.buf
    }

    /// The bytes of the buffer in `range` (empty if out of range).
    pub(crate) fn buffered(&self, range: core::ops::Range<usize>) -> &[u8] {
        self.buf.get(range).unwrap_or(&[])
    }

    /// Forgets any partial frame.
    pub fn reset(&mut self) {
        self.done = 0;
        self.len = 0;
        self.cobs = DecoderState::Idle;
        self.crc = 0;
    }

    /// Decodes `input` up to and including the first frame delimiter that ends a
    /// frame or a dropped frame. Returns the bytes consumed and what was found;
    /// `None` means all input was consumed and the frame in progress (if any) is
    /// incomplete. Empty frames (0x00 after 0x00) are skipped silently.
    pub fn feed(&mut self, input: &[u8]) -> (usize, Option<Decoded>) {
        self.done = 0;
        let mut i = 0;
        while let Some(&byte) = input.get(i) {
            i += 1;
            match self.cobs.feed(byte) {
                Ok(DecodeResult::NoData) => {}
                Ok(DecodeResult::DataContinue(data)) => {
                    if let Some(slot) = self.buf.get_mut(usize::from(self.len)) {
                        *slot = data;
                    }
                    self.len = self.len.saturating_add(1);
                    self.crc = crc_update(self.crc, &[data]);
                }
                Ok(DecodeResult::DataComplete) => return (i, Some(self.finish())),
                Err(_) => {
                    self.reset();
                    return (i, Some(Decoded::Dropped(DropReason::Cobs)));
                }
            }
            #[cfg(feature = "fast-decode")]
            {
                i += self.take_run(input.get(i..).unwrap_or(&[]));
            }
        }
        (input.len(), None)
    }

    /// Keeps decoded bytes (as far as the buffer goes) and runs the CRC over them.
    #[cfg(feature = "fast-decode")]
    fn take(&mut self, data: &[u8]) {
        let len = usize::from(self.len);
        if let Some(free) = self.buf.get_mut(len..) {
            for (slot, &byte) in free.iter_mut().zip(data) {
                *slot = byte;
            }
        }
        self.len = self.len.saturating_add(u16::try_from(data.len()).unwrap_or(u16::MAX));
        self.crc = crc_update(self.crc, data);
    }

    /// The fast path (feature `fast-decode`): inside a COBS block, the bytes up
    /// to the next code byte are data as they are. Takes the non-zero ones at
    /// the start of `rest` in one go, instead of one state-machine step each,
    /// and leaves the decoder state where those steps would have; a 0x00 is
    /// left to the state machine. Returns how many bytes it took.
    #[cfg(feature = "fast-decode")]
    fn take_run(&mut self, rest: &[u8]) -> usize {
        let (DecoderState::Grab(left) | DecoderState::GrabChain(left)) = self.cobs else { return 0 };
        let run = rest.iter().take(usize::from(left)).take_while(|&&b| b != 0).count();
        let Some(data) = rest.get(..run) else { return 0 };
        self.take(data);
        // run <= left <= 254: the cast and the subtraction cannot wrap.
        let taken = run as u8;
        self.cobs = match self.cobs {
            DecoderState::Grab(left) => DecoderState::Grab(left - taken),
            DecoderState::GrabChain(left) => DecoderState::GrabChain(left - taken),
            DecoderState::Idle => DecoderState::Idle,
        };
        run
    }

    fn finish(&mut self) -> Decoded {
        let len = usize::from(self.len);
        let residue = core::mem::replace(&mut self.crc, 0);
        self.len = 0;
        if len < MIN_FRAME_LEN {
            Decoded::Dropped(DropReason::TooShort)
        } else if residue != CRC_RESIDUE {
            Decoded::Dropped(DropReason::Crc)
        } else if len > N {
            self.done = N.min(len - CRC_LEN) as u16;
            Decoded::Oversized { len }
        } else {
            self.done = (len - CRC_LEN) as u16;
            Decoded::Frame
        }
    }
}

/// Extends the CRC-16/IBM-SDLC `crc` of some bytes (finished form) by one byte,
/// through the `crc` crate: its running register is the finished value XOR
/// 0xFFFF, and `digest_with_initial` takes that register bit-reversed (the
/// algorithm is reflected). The CRC of no bytes is 0.
fn crc_update(crc: u16, data: &[u8]) -> u16 {
    let mut digest = CRC.digest_with_initial((crc ^ 0xFFFF).reverse_bits());
    digest.update(data);
    digest.finalize()
}

impl<const N: usize> Default for FrameDecoder<N> {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{Status, encode_reply, encode_request, encode_status};

    fn frame(seq: u16) -> ([u8; 32], usize) {
        let mut buf = [0u8; 32];
        let n = encode_request(seq, 2, &(2i32, 3i32), &mut buf).unwrap().len();
        (buf, n)
    }

    #[test]
    fn crc_over_a_frame_with_its_crc_is_the_residue_and_zeros_appended_are_not() {
        // The property the decoder relies on, checked on the catalogue's check input.
        assert_eq!(CRC.checksum(b"123456789"), 0x906E);
        let mut data = [0u8; 13];
        data[..9].copy_from_slice(b"123456789");
        data[9..11].copy_from_slice(&0x906Eu16.to_le_bytes());
        assert_eq!(CRC.checksum(&data[..11]), CRC_RESIDUE);
        assert_ne!(CRC.checksum(&data[..12]), CRC_RESIDUE, "one 0x00 appended");
        assert_ne!(CRC.checksum(&data[..13]), CRC_RESIDUE, "two 0x00 appended");
    }

    #[test]
    fn the_running_crc_matches_the_crc_crate() {
        let running = b"123456789".iter().fold(0, |crc, &b| crc_update(crc, &[b]));
        assert_eq!(running, 0x906E);
        assert_eq!(running, CRC.checksum(b"123456789"));
        for len in 0..40u8 {
            let data: [u8; 40] = core::array::from_fn(|i| (i as u8).wrapping_mul(37) ^ len);
            let data = &data[..usize::from(len)];
            assert_eq!(data.iter().fold(0, |crc, &b| crc_update(crc, &[b])), CRC.checksum(data));
        }
    }

    #[test]
    fn a_flipped_delimiter_that_appends_a_zero_is_caught() {
        // COBS(frame) ‖ 0x01 ‖ 0x00 decodes to frame ‖ 0x00: it must not check.
        let (buf, n) = frame(5);
        let mut stream = [0u8; 40];
        stream[..n].copy_from_slice(&buf[..n]);
        stream[n - 1] = 0x01;
        let mut dec = FrameDecoder::<32>::new();
        assert_eq!(dec.feed(&stream[..n + 1]), (n + 1, Some(Decoded::Dropped(DropReason::Crc))));
    }

    #[test]
    fn long_frames_with_full_cobs_blocks_round_trip() {
        // More than 254 non-zero bytes in a row: COBS needs 0xFF code blocks.
        let mut buf = [0u8; 400];
        let value = [0x55u8; 300];
        let n = encode_reply(0x0101, &value[..], &mut buf).unwrap().len();
        let mut dec = FrameDecoder::<320>::new();
        assert_eq!(dec.feed(&buf[..n]), (n, Some(Decoded::Frame)));
        assert_eq!(&dec.frame()[..5], &[0x12, 0x01, 0x01, 0xac, 0x02]);
        assert_eq!(&dec.frame()[5..], &value[..]);
    }

    #[test]
    fn decodes_one_frame_and_reports_consumed_bytes() {
        let (buf, n) = frame(7);
        let mut dec = FrameDecoder::<32>::new();
        let (used, ev) = dec.feed(&buf[..n]);
        assert_eq!(used, n);
        assert_eq!(ev, Some(Decoded::Frame));
        assert_eq!(dec.frame(), &[0x11, 7, 0, 2, 4, 6]);
    }

    #[test]
    fn byte_at_a_time_gives_the_same_frame() {
        let (buf, n) = frame(0x0100);
        let mut dec = FrameDecoder::<32>::new();
        for (i, b) in buf[..n].iter().enumerate() {
            let (used, ev) = dec.feed(core::slice::from_ref(b));
            assert_eq!(used, 1);
            if i + 1 < n {
                assert!(ev.is_none());
                assert!(dec.is_mid_frame());
            } else {
                assert_eq!(ev, Some(Decoded::Frame));
                assert_eq!(dec.frame(), &[0x11, 0, 1, 2, 4, 6]);
            }
        }
        assert!(!dec.is_mid_frame());
    }

    #[test]
    fn stops_after_each_frame_and_keeps_the_rest() {
        let mut stream = [0u8; 64];
        let (a, na) = frame(1);
        let (b, nb) = frame(2);
        stream[..na].copy_from_slice(&a[..na]);
        stream[na..na + nb].copy_from_slice(&b[..nb]);
        let mut dec = FrameDecoder::<32>::new();
        let (used, ev) = dec.feed(&stream[..na + nb]);
        assert_eq!(used, na);
        assert_eq!(ev, Some(Decoded::Frame));
        assert_eq!(dec.frame()[1], 1);
        let (used, ev) = dec.feed(&stream[na..na + nb]);
        assert_eq!(used, nb);
        assert_eq!(ev, Some(Decoded::Frame));
        assert_eq!(dec.frame()[1], 2);
    }

    #[test]
    fn a_flipped_bit_anywhere_is_a_crc_or_cobs_drop_never_a_frame() {
        let (buf, n) = frame(3);
        for i in 0..n - 1 {
            for bit in 0..8 {
                let mut bad = buf;
                bad[i] ^= 1 << bit;
                let mut dec = FrameDecoder::<32>::new();
                let mut rest = &bad[..n];
                let mut frames = 0;
                while !rest.is_empty() {
                    let (used, ev) = dec.feed(rest);
                    if let Some(Decoded::Frame | Decoded::Oversized { .. }) = ev {
                        frames += 1;
                    }
                    rest = &rest[used..];
                }
                assert_eq!(frames, 0, "byte {i} bit {bit} slipped through");
            }
        }
    }

    #[test]
    fn garbage_then_frame_resynchronises() {
        let (buf, n) = frame(9);
        let mut stream = [0u8; 64];
        let garbage = [0x42, 0x13, 0x99, 0x00, 0x02, 0x01, 0x00];
        stream[..garbage.len()].copy_from_slice(&garbage);
        stream[garbage.len()..garbage.len() + n].copy_from_slice(&buf[..n]);
        let mut dec = FrameDecoder::<32>::new();
        let mut rest = &stream[..garbage.len() + n];
        let mut events = [None, None, None];
        let mut k = 0;
        while !rest.is_empty() {
            let (used, ev) = dec.feed(rest);
            if let Some(ev) = ev {
                events[k] = Some(match ev {
                    Decoded::Frame => Ok(dec.frame()[1]),
                    Decoded::Dropped(r) => Err(r),
                    Decoded::Oversized { .. } => panic!("unexpected"),
                });
                k += 1;
            }
            rest = &rest[used..];
        }
        assert_eq!(events, [Some(Err(DropReason::Cobs)), Some(Err(DropReason::TooShort)), Some(Ok(9))]);
    }

    #[test]
    fn oversized_frame_with_good_crc_is_reported_with_its_head() {
        let mut buf = [0u8; 64];
        let value = [0xabu8; 20];
        let n = encode_reply(0x0505, &value, &mut buf).unwrap().len();
        let mut dec = FrameDecoder::<8>::new();
        let (used, ev) = dec.feed(&buf[..n]);
        assert_eq!(used, n);
        assert_eq!(ev, Some(Decoded::Oversized { len: 3 + 20 + 2 }));
        assert_eq!(&dec.frame()[..3], &[0x12, 0x05, 0x05]);
        assert_eq!(dec.frame().len(), 8);
        // and the decoder is ready for the next frame
        let mut small = [0u8; 16];
        let m = encode_status(1, Status::Internal, &mut small).unwrap().len();
        assert_eq!(dec.feed(&small[..m]).1, Some(Decoded::Frame));
        assert_eq!(dec.frame(), &[0x13, 1, 0, 13]);
    }

    #[test]
    fn oversized_garbage_is_a_crc_drop() {
        let mut dec = FrameDecoder::<4>::new();
        let mut junk = [0u8; 320];
        let n = cobs::encode(&[0x77u8; 300], &mut junk);
        let (used, ev) = dec.feed(&junk[..n + 1]);
        assert_eq!(used, n + 1);
        assert_eq!(ev, Some(Decoded::Dropped(DropReason::Crc)));
    }

    #[test]
    fn idle_zeros_are_silent() {
        let mut dec = FrameDecoder::<8>::new();
        assert_eq!(dec.feed(&[0, 0, 0]), (3, None));
        assert!(!dec.is_mid_frame());
    }
}
