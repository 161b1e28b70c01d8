//! Turns fuzz input into a byte stream a peer could send: segments separated by
//! 0xA5, each sent raw or, when its first byte is odd, wrapped as a valid frame
//! (COBS and CRC computed here), so the fuzzer reaches what lies behind the CRC.

use wirecall::wire::CRC;

pub fn stream(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for segment in data.split(|&b| b == 0xA5) {
        match segment.split_first() {
            Some((&mode, body)) if mode & 1 == 1 => {
                let mut decoded = body.to_vec();
                decoded.extend_from_slice(&CRC.checksum(body).to_le_bytes());
                let mut encoded = vec![0u8; decoded.len() + decoded.len() / 254 + 2];
                let n = cobs::encode(&decoded, &mut encoded);
                out.extend_from_slice(&encoded[..n]);
                out.push(0);
            }
            _ => out.extend_from_slice(segment),
        }
    }
    out
}
