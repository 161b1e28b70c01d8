#!/usr/bin/env python3
"""An independent reference encoder/decoder for wirecall wire protocol v1,
written from PROTOCOL.md alone (no code shared with the Rust crate).

It produces the test vectors of PROTOCOL.md §9; tests/vectors.rs checks the
Rust crate against the same bytes. Run it to print the vectors:

    python3 tests/reference/wirecall_ref.py
"""

VERSION = 1
KIND_REQUEST, KIND_REPLY, KIND_STATUS, KIND_HELLO, KIND_WELCOME, KIND_TIMED_REQUEST = 1, 2, 3, 4, 5, 6
KIND_CANCEL, KIND_CREDIT, KIND_ITEM, KIND_END, KIND_ONEWAY_REQUEST, KIND_EVENT = 7, 8, 9, 10, 11, 12
KIND_EXTENSION_TO_SERVER, KIND_EXTENSION_TO_CLIENT = 13, 14
# Feature bits of a Welcome's capabilities (PROTOCOL.md §4.1).
F_TIMED, F_CANCEL, F_STREAMS, F_EVENTS = 1, 2, 4, 8

# Status codes used below (PROTOCOL.md §5).
OK, CANCELLED = 0, 1  # 0 only in an End frame: the handler ended the stream


def crc_reflected(data: bytes, width: int, reflected_poly: int) -> int:
    """A reflected CRC with init and final XOR all ones, bit by bit."""
    ones = (1 << width) - 1
    crc = ones
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ reflected_poly if crc & 1 else crc >> 1
    return crc ^ ones


def crc16_ibm_sdlc(data: bytes) -> int:
    """CRC-16/IBM-SDLC (X-25): poly 0x1021 (0x8408 reflected), init 0xFFFF, refin/refout, xorout 0xFFFF."""
    return crc_reflected(data, 16, 0x8408)


RESIDUE = 0x0F47  # the CRC over a whole valid frame, its CRC bytes included


def cobs_encode(data: bytes) -> bytes:
    out, block = bytearray(), bytearray()
    for byte in data:
        if byte == 0:
            out.append(len(block) + 1)
            out += block
            block.clear()
        else:
            block.append(byte)
            if len(block) == 254:
                out.append(255)
                out += block
                block.clear()
    out.append(len(block) + 1)
    out += block
    return bytes(out)


def cobs_decode(data: bytes) -> bytes:
    out, i = bytearray(), 0
    while i < len(data):
        code = data[i]
        if code == 0 or i + code > len(data):
            raise ValueError("bad COBS")
        out += data[i + 1:i + code]
        i += code
        if code < 255 and i < len(data):
            out.append(0)
    return bytes(out)


def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        if n < 0x80:
            out.append(n)
            return bytes(out)
        out.append((n & 0x7F) | 0x80)
        n >>= 7


def zigzag_i32(n: int) -> bytes:
    return varint(((n << 1) ^ (n >> 31)) & 0xFFFFFFFF)


def string(s: str) -> bytes:
    raw = s.encode()
    return varint(len(raw)) + raw


def frame(kind: int, seq: int, body: bytes) -> bytes:
    decoded = bytes([(VERSION << 4) | kind]) + seq.to_bytes(2, "little") + body
    decoded += crc16_ibm_sdlc(decoded).to_bytes(2, "little")
    return cobs_encode(decoded) + b"\x00"


def request(seq: int, method: int, args: bytes) -> bytes:
    return frame(KIND_REQUEST, seq, varint(method) + args)


def timed_request(seq: int, method: int, budget_ms: int, args: bytes) -> bytes:
    return frame(KIND_TIMED_REQUEST, seq, varint(method) + varint(budget_ms) + args)


def reply(seq: int, value: bytes) -> bytes:
    return frame(KIND_REPLY, seq, value)


def status(seq: int, code: int) -> bytes:
    return frame(KIND_STATUS, seq, bytes([code]))


def hello(seq: int, client_id: int, fresh: bool) -> bytes:
    return frame(KIND_HELLO, seq, client_id.to_bytes(4, "little") + bytes([1 if fresh else 0]))


def welcome(seq: int, boot_id: int, resumed: bool, window: int, caps=None) -> bytes:
    """A Welcome; `caps` = (rx, tx, features) appends the capabilities of §4.1."""
    body = boot_id.to_bytes(4, "little") + bytes([1 if resumed else 0, window])
    if caps is not None:
        rx, tx, features = caps
        body += varint(rx) + varint(tx) + varint(features)
    return frame(KIND_WELCOME, seq, body)


def extension(kind: int, seq: int, sub_kind: int, rest: bytes) -> bytes:
    return frame(kind, seq, varint(sub_kind) + rest)


def cancel(seq: int) -> bytes:
    return frame(KIND_CANCEL, seq, b"")


def credit(seq: int, limit: int) -> bytes:
    return frame(KIND_CREDIT, seq, varint(limit))


def item(seq: int, index: int, value: bytes) -> bytes:
    return frame(KIND_ITEM, seq, varint(index) + value)


def end(seq: int, code: int, items: int) -> bytes:
    return frame(KIND_END, seq, bytes([code]) + varint(items))


def oneway_request(seq: int, method: int, args: bytes) -> bytes:
    return frame(KIND_ONEWAY_REQUEST, seq, varint(method) + args)


def event(seq: int, topic: int, payload: bytes) -> bytes:
    return frame(KIND_EVENT, seq, varint(topic) + payload)


def boolean(b: bool) -> bytes:
    return bytes([1 if b else 0])


def crc64_xz(data: bytes) -> int:
    """CRC-64/XZ: poly 0x42F0E1EBA9EA3693 (0xC96C5795D7870F42 reflected), init and xorout all ones."""
    return crc_reflected(data, 64, 0xC96C5795D7870F42)


# DataModelType tags of PROTOCOL.md §3.2.
T_I32, T_STRING, T_STRUCT = 4, 16, 26


def named_type(name: str, tag: int, payload: bytes = b"") -> bytes:
    return string(name) + varint(tag) + payload


def struct(name: str, fields) -> bytes:
    body = varint(len(fields)) + b"".join(string(n) + t for n, t in fields)
    return named_type(name, T_STRUCT, body)


def method_entry(name: str, method_id: int, flags: int, args, ret: bytes) -> bytes:
    return string(name) + varint(method_id) + bytes([flags]) + struct(name, args) + ret


def description(name: str, version: str, methods) -> tuple:
    """The document and its fingerprint (CRC-64/XZ over name and methods)."""
    methods = sorted(methods, key=lambda m: m[1])
    encoded = varint(len(methods)) + b"".join(method_entry(*m) for m in methods)
    document = string(name) + string(version) + encoded
    return document, crc64_xz(string(name) + encoded)


# PROTOCOL.md's example service: greet(name: &str) -> String<32> = 1; add(a: i32, b: i32) -> i32 = 2.
I32 = named_type("i32", T_I32)
EXAMPLE_DOC, EXAMPLE_FINGERPRINT = description("example", "", [
    ("greet", 1, 0, [("name", named_type("str", T_STRING))], named_type("heapless::String<N>", T_STRING)),
    ("add", 2, 0, [("a", I32), ("b", I32)], I32),
])


def parse(wire: bytes):
    """Decodes one on-wire frame (delimiter included) into (kind, seq, body)."""
    assert wire[-1] == 0
    decoded = cobs_decode(wire[:-1])
    if crc16_ibm_sdlc(decoded) != RESIDUE:
        raise ValueError("bad CRC")
    head, body = decoded[:3], decoded[3:-2]
    assert head[0] >> 4 == VERSION
    return head[0] & 0x0F, int.from_bytes(head[1:3], "little"), body


# The capabilities of a wirecall server with 256-byte buffers and every optional part: it receives
# frames of up to 256 decoded bytes and sends up to 253 (256 less COBS overhead and delimiter).
CAPS_256 = (256, 253, F_TIMED | F_CANCEL | F_STREAMS | F_EVENTS)

VECTORS = [
    ("hello", hello(0xFFFF, 0, True)),
    ("welcome", welcome(0xFFFF, 0, False, 1, CAPS_256)),
    ("add_request", request(0, 2, zigzag_i32(2) + zigzag_i32(3))),
    ("add_reply", reply(0, zigzag_i32(5))),
    ("greet_request", request(1, 1, string("Ada"))),
    ("greet_reply", reply(1, string("Hello Ada"))),
    ("unknown_method_request", request(2, 99, b"")),
    ("unknown_method_status", status(2, 12)),
    ("wrapped_seq_request", request(0xFFFF, 2, zigzag_i32(-1) + zigzag_i32(300))),
    ("large_method_id_request", request(7, 0x0180, b"")),
    ("no_session_status", status(0, 9)),
    ("aborted_status", status(0, 10)),
    ("resume_hello", hello(3, 0x01020304, False)),
    ("resumed_welcome", welcome(3, 0xA1B2C3D4, True, 1)),
    ("ping_request", request(5, 0xFF00, b"")),
    ("ping_reply", reply(5, b"")),
    ("timed_request", timed_request(0, 2, 250, zigzag_i32(2) + zigzag_i32(3))),
    ("expired_request", timed_request(0, 2, 0, zigzag_i32(2) + zigzag_i32(3))),
    ("deadline_status", status(0, 4)),
    ("describe_request", request(0, 0xFF01, varint(0) + varint(255))),
    ("describe_reply", reply(0, varint(EXAMPLE_FINGERPRINT) + varint(len(EXAMPLE_DOC)) + varint(len(EXAMPLE_DOC))
                         + EXAMPLE_DOC)),
    ("cancel", cancel(5)),
    ("cancelled_status", status(5, CANCELLED)),
    ("credit", credit(5, 4)),
    ("item", item(5, 0, zigzag_i32(21))),
    ("end", end(5, OK, 3)),
    ("end_cancelled", end(5, CANCELLED, 2)),
    ("oneway_request", oneway_request(6, 3, boolean(True))),
    ("event", event(0, 1, varint(1234))),
    ("hello_again", hello(0xFFFF, 0, True)),
    ("welcome_without_capabilities", welcome(0xFFFF, 0, False, 1)),
    ("extension_to_server", extension(KIND_EXTENSION_TO_SERVER, 0, 0xF000, bytes([1, 2]))),
    ("extension_to_client", extension(KIND_EXTENSION_TO_CLIENT, 0, 0xF000, bytes([1, 2]))),
]

if __name__ == "__main__":
    assert crc16_ibm_sdlc(b"123456789") == 0x906E, "catalogue check value"
    assert crc64_xz(b"123456789") == 0x995DC9BBDF1939FA, "catalogue check value"
    for name, wire in VECTORS:
        kind, seq, body = parse(wire)
        assert frame(kind, seq, body) == wire
        print(f"{name} {wire.hex()}")
