//! Frame decoding: any bytes, cut into any chunks, through the streaming decoder
//! and the header parser. Checks that every call makes progress, that a decoded
//! frame is never longer than the buffer, and that what parses re-encodes to the
//! same decoded bytes (canonical frames only).
#![no_main]

use libfuzzer_sys::fuzz_target;
use wirecall::wire::{
    Decoded, Encoded, Frame, FrameDecoder, encode_cancel, encode_credit, encode_end, encode_event, encode_hello,
    encode_item, encode_oneway, encode_reply, encode_request, encode_status, encode_timed_request, encode_welcome,
};

fn reencode(frame: &Frame<'_>, buf: &mut [u8]) -> Option<usize> {
    let encoded = match *frame {
        Frame::Request { seq, method, args, oneway: true, .. } => encode_oneway(seq, method, &Encoded(args), buf),
        Frame::Request { seq, method, budget_ms: None, args, .. } => encode_request(seq, method, &Encoded(args), buf),
        Frame::Request { seq, method, budget_ms: Some(budget), args, .. } => {
            encode_timed_request(seq, method, budget, &Encoded(args), buf)
        }
        Frame::Cancel { seq } => encode_cancel(seq, buf),
        Frame::Credit { seq, limit } => encode_credit(seq, limit, buf),
        Frame::Item { seq, index, value } => encode_item(seq, index, &Encoded(value), buf),
        Frame::End { seq, status, items } => encode_end(seq, status, items, buf),
        Frame::Event { seq, topic, payload } => encode_event(seq, topic, &Encoded(payload), buf),
        Frame::Reply { seq, value } => encode_reply(seq, &Encoded(value), buf),
        Frame::Status { seq, status } => encode_status(seq, status, buf),
        Frame::Hello { seq, client_id, fresh } => encode_hello(seq, client_id, fresh, buf),
        Frame::Welcome { seq, boot_id, resumed, window, caps } => {
            // Capabilities that do not parse drop the frame at the client. Those
            // that do re-encode alike only in their shortest form with nothing
            // after them (reserved bytes); others are skipped.
            let n = encode_welcome(seq, boot_id, resumed, window, caps.get().ok()?, buf).ok()?.len();
            let mut check = FrameDecoder::<64>::new();
            let _ = check.feed(buf.get(..n)?);
            match Frame::parse(check.frame()) {
                Ok(Frame::Welcome { caps: again, .. }) if again == caps => Ok(buf.get(..n)?),
                _ => return None,
            }
        }
    };
    encoded.ok().map(<[u8]>::len)
}

fuzz_target!(|data: &[u8]| {
    let Some((&split, data)) = data.split_first() else { return };
    let chunk = usize::from(split % 32) + 1;
    let mut decoder = FrameDecoder::<64>::new();
    for piece in data.chunks(chunk) {
        let mut rest = piece;
        while !rest.is_empty() {
            let (used, event) = decoder.feed(rest);
            assert!(used > 0 && used <= rest.len(), "no progress");
            rest = &rest[used..];
            if let Some(Decoded::Frame | Decoded::Oversized { .. }) = event {
                let bytes = decoder.frame();
                assert!(bytes.len() <= 64);
                if let (Some(Decoded::Frame), Ok(frame)) = (event, Frame::parse(bytes)) {
                    let mut buf = [0u8; 160];
                    if let Some(n) = reencode(&frame, &mut buf) {
                        let mut check = FrameDecoder::<64>::new();
                        assert_eq!(check.feed(&buf[..n]), (n, Some(Decoded::Frame)));
                        assert_eq!(Frame::parse(check.frame()).ok(), Some(frame));
                    }
                }
            }
        }
    }
});
