//! What a host does with a device's `describe` document: decode it, print its
//! signatures, compute its fingerprint, and decode values with its schemas
//! through the CLI's own JSON translation. A device is a peer: none of it may
//! panic or overflow the stack, whatever the bytes.
#![no_main]

#[path = "../../src/bin/wirecall/json.rs"]
mod json;

use libfuzzer_sys::fuzz_target;
use wirecall::describe::remote::decode_document;

fuzz_target!(|data: &[u8]| {
    // The first byte says where the document ends and a value begins.
    let Some((&split, data)) = data.split_first() else { return };
    let (document, value) = data.split_at((usize::from(split) * 4).min(data.len()));
    let Ok(description) = decode_document(document) else { return };
    let _ = description.fingerprint();
    for method in &description.methods {
        let _ = method.signature();
        let _ = json::decode_value(method, value);
        let _ = json::encode_args(method, "[1, \"a\", [2], {\"b\": null}]");
    }
});
