//! Every counter's meaning (issue #13): each server counter of the built-in
//! `stats` reply (PROTOCOL.md §3.1) and each client counter, pinned down by
//! scripted frames. Each test keeps the counters it expects in `e` and
//! compares the whole set after every step, so a step also proves which
//! counters it leaves alone. Without feature `stats` the counters read zero and
//! `assert_counted!` checks nothing; the frames are still checked.

mod common;

use common::machines::{
    F, Got, at, client_in, client_out, client_poll, encoded, frame, frames, hello, request, server_in,
};
use wirecall::demo::{Board, demo};
use wirecall::machine::{ClientMachine, ClientStats, Dispatch, ServerMachine, ServerStats, builtin};
use wirecall::stats::LinkStats;
use wirecall::wire::{CRC, Status};
use wirecall::{Error, Instant, StdClock};

type Sm = ServerMachine<64, 64>;
type Cm = ClientMachine<64, 64>;

const ADD: u16 = demo::ids::add;
const GREET: u16 = demo::ids::greet;

fn board() -> demo::Dispatcher<Board<StdClock>> {
    demo::Dispatcher(Board::new(StdClock::new()))
}

/// COBS-encodes `decoded` (header, payload and CRC) and appends the delimiter.
fn cobs(decoded: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8];
    let mut code = 0;
    for &byte in decoded {
        if byte == 0 {
            out[code] = (out.len() - code) as u8;
            code = out.len();
            out.push(0);
        } else {
            out.push(byte);
            if out.len() - code == 0xFF {
                out[code] = 0xFF;
                code = out.len();
                out.push(0);
            }
        }
    }
    out[code] = (out.len() - code) as u8;
    out.push(0);
    out
}

/// `body` (header and payload) as a frame on the wire, with its CRC.
fn wire(body: &[u8]) -> Vec<u8> {
    cobs(&[body, &CRC.checksum(body).to_le_bytes()[..]].concat())
}

/// `body` as a frame on the wire whose CRC does not match.
fn bad_crc(body: &[u8]) -> Vec<u8> {
    cobs(&[body, &(CRC.checksum(body) ^ 0x0101).to_le_bytes()[..]].concat())
}

/// The one frame the server sent for `input`, decoded.
fn answer<D: Dispatch, const RX: usize, const TX: usize, const W: usize>(
    s: &mut ServerMachine<RX, TX, W>,
    input: &[u8],
    now: Instant,
    svc: &mut D,
) -> F {
    frame(&server_in(s, input, now, svc).concat())
}

/// Feeds `input` to the server and checks that it sends nothing.
fn silent<D: Dispatch, const RX: usize, const TX: usize, const W: usize>(
    s: &mut ServerMachine<RX, TX, W>,
    input: &[u8],
    now: Instant,
    svc: &mut D,
) {
    let sent = server_in(s, input, now, svc);
    assert!(sent.is_empty(), "expected no answer, got {:?}", frames(&sent.concat()));
}

/// Carries the client's frames to the server and the server's answers back
/// until the client has nothing more to send; returns what the client delivered.
fn exchange<
    D: Dispatch,
    const CRX: usize,
    const CTX: usize,
    const CW: usize,
    const SRX: usize,
    const STX: usize,
    const SW: usize,
>(
    c: &mut ClientMachine<CRX, CTX, CW>,
    s: &mut ServerMachine<SRX, STX, SW>,
    svc: &mut D,
    now: Instant,
) -> Vec<Got> {
    let mut got = Vec::new();
    loop {
        let out = client_out(c).concat();
        if out.is_empty() {
            return got;
        }
        let answers = server_in(s, &out, now, svc).concat();
        got.extend(client_in(c, &answers, now));
    }
}

/// Delivers the client's Hello to the server and the Welcome back.
fn open<
    D: Dispatch,
    const CRX: usize,
    const CTX: usize,
    const CW: usize,
    const SRX: usize,
    const STX: usize,
    const SW: usize,
>(
    c: &mut ClientMachine<CRX, CTX, CW>,
    s: &mut ServerMachine<SRX, STX, SW>,
    svc: &mut D,
    now: Instant,
) {
    let hello = client_out(c);
    assert_eq!(hello.len(), 1, "one Hello");
    assert!(matches!(frame(&hello[0]), F::Hello { .. }));
    let welcome = server_in(s, &hello[0], now, svc).concat();
    assert!(matches!(frame(&welcome), F::Welcome { .. }));
    assert!(client_in(c, &welcome, now).is_empty());
}

fn ok(seq: u16, value: &[u8]) -> Got {
    Got::Done { seq, outcome: Ok(value.to_vec()) }
}

fn status(seq: u16, status: Status) -> F {
    F::Status { seq, status }
}

/// The `stats` reply's 20 counters, in the order of PROTOCOL.md §3.1.
#[cfg(all(feature = "builtins", feature = "stats"))]
fn in_spec_order(s: ServerStats) -> [u32; 20] {
    let l = s.link;
    [
        l.frames_in,
        l.frames_out,
        l.dropped_cobs,
        l.dropped_crc,
        l.dropped_too_short,
        l.dropped_too_long,
        l.dropped_version,
        l.dropped_kind,
        l.dropped_malformed,
        l.dropped_stale,
        s.dispatched,
        s.refused,
        s.duplicates,
        s.evicted,
        s.no_session,
        s.hellos,
        s.cancelled,
        s.oneway,
        s.items,
        s.events,
    ]
}

// ---------------------------------------------------------------------------
// Server: link counters.

#[test]
fn server_link_counters_count_each_frame_once_and_frames_in_only_parsed_ones() {
    let mut svc = board();
    let mut s = Sm::new();
    let mut e = ServerStats::ZERO;

    // A Hello: one frame in, its Welcome out.
    assert!(matches!(answer(&mut s, &hello(0), at(0), &mut svc), F::Welcome { seq: 0, .. }));
    e.link.frames_in += 1;
    e.link.frames_out += 1;
    e.hellos += 1;
    assert_counted!(s.stats(), e, "hello");

    // A good request: in, dispatched, its Reply out.
    assert_eq!(answer(&mut s, &request(1, ADD, &(2i32, 3i32)), at(1), &mut svc), F::Reply { seq: 1, value: vec![10] });
    e.link.frames_in += 1;
    e.link.frames_out += 1;
    e.dispatched += 1;
    assert_counted!(s.stats(), e, "request");

    // A bad CRC: dropped_crc alone; not in frames_in.
    silent(&mut s, &bad_crc(&[0x11, 2, 0, 2, 4, 6]), at(2), &mut svc);
    e.link.dropped_crc += 1;
    assert_counted!(s.stats(), e, "bad CRC");

    // A Request longer than the receive buffer (87 > 64 bytes, CRC good):
    // dropped_too_long, refused, and its Status 8 in frames_out; not in frames_in.
    let long = request(3, GREET, &("x".repeat(80).as_str(),));
    assert_eq!(answer(&mut s, &long, at(3), &mut svc), status(3, Status::ResourceExhausted));
    e.link.dropped_too_long += 1;
    e.link.frames_out += 1;
    e.refused += 1;
    assert_counted!(s.stats(), e, "too long request");

    // Too long and not a Request: dropped_too_long alone, whatever its kind.
    silent(&mut s, &wire(&[&[0x12, 9, 0][..], &[7; 80]].concat()), at(4), &mut svc);
    e.link.dropped_too_long += 1;
    assert_counted!(s.stats(), e, "too long reply");

    // Not COBS: a 0x00 inside a code byte's run.
    silent(&mut s, &[0x05, 0x11, 0x00], at(5), &mut svc);
    e.link.dropped_cobs += 1;
    assert_counted!(s.stats(), e, "cobs");

    // Too short: nothing between code byte and delimiter; then 5 bytes with a
    // good CRC but no method id (the header of its kind is incomplete).
    silent(&mut s, &[0x01, 0x00], at(6), &mut svc);
    silent(&mut s, &wire(&[0x11, 4, 0]), at(6), &mut svc);
    e.link.dropped_too_short += 2;
    assert_counted!(s.stats(), e, "too short");

    // Another version.
    silent(&mut s, &wire(&[0x21, 5, 0, 2, 4, 6]), at(7), &mut svc);
    e.link.dropped_version += 1;
    assert_counted!(s.stats(), e, "version");

    // Reserved kinds 0 and 15: dropped_kind, not frames_in.
    silent(&mut s, &wire(&[0x10, 5, 0]), at(8), &mut svc);
    silent(&mut s, &wire(&[0x1f, 5, 0]), at(8), &mut svc);
    e.link.dropped_kind += 2;
    assert_counted!(s.stats(), e, "reserved kinds");

    // A Reply, a kind a server never receives: it parses, so it is counted in
    // frames_in, and then dropped, in dropped_kind too.
    silent(&mut s, &wire(&[0x12, 1, 0, 10]), at(9), &mut svc);
    e.link.frames_in += 1;
    e.link.dropped_kind += 1;
    assert_counted!(s.stats(), e, "a reply sent to a server");

    // A method id varint too large for 16 bits.
    silent(&mut s, &wire(&[0x11, 6, 0, 0xff, 0xff, 0x7f]), at(10), &mut svc);
    e.link.dropped_malformed += 1;
    assert_counted!(s.stats(), e, "malformed");

    // Empty frames (0x00 after 0x00) count nowhere.
    silent(&mut s, &[0, 0, 0], at(11), &mut svc);
    assert_counted!(s.stats(), e, "empty frames");

    // Half a frame, then silence longer than the frame gap: dropped_stale once,
    // counted when the next bytes arrive; the frame that follows is whole.
    let r = request(7, ADD, &(1i32, 1i32));
    silent(&mut s, &r[..4], at(20), &mut svc);
    assert_counted!(s.stats(), e, "a partial frame counts nothing yet");
    assert_eq!(answer(&mut s, &r, at(1021), &mut svc), F::Reply { seq: 7, value: vec![4] });
    e.link.dropped_stale += 1;
    e.link.frames_in += 1;
    e.link.frames_out += 1;
    e.dispatched += 1;
    assert_counted!(s.stats(), e, "stale");

    // dropped() is the sum of the eight dropped_* counters.
    assert_counted!(s.stats().link.dropped(), 1 + 1 + 2 + 2 + 1 + 3 + 1 + 1);
}

#[test]
fn server_frames_out_duplicates_evicted_and_no_session() {
    let mut svc = board();
    let mut s = Sm::new();
    let mut e = ServerStats::ZERO;
    let add = |seq: u16| request(seq, ADD, &(2i32, 3i32));
    let five = |seq: u16| F::Reply { seq, value: vec![10] };

    // No session: Status 9, in no_session (not refused, not evicted).
    assert_eq!(answer(&mut s, &add(1), at(0), &mut svc), status(1, Status::FailedPrecondition));
    e.link.frames_in += 1;
    e.link.frames_out += 1;
    e.no_session += 1;
    assert_counted!(s.stats(), e, "no session");

    assert!(matches!(answer(&mut s, &hello(0), at(1), &mut svc), F::Welcome { .. }));
    assert_eq!(answer(&mut s, &add(1), at(1), &mut svc), five(1));
    e.link.frames_in += 2;
    e.link.frames_out += 2;
    e.hellos += 1;
    e.dispatched += 1;
    assert_counted!(s.stats(), e, "a call");

    // A copy of the newest call: its cached Reply again, in duplicates and frames_out.
    assert_eq!(answer(&mut s, &add(1), at(2), &mut svc), five(1));
    e.link.frames_in += 1;
    e.link.frames_out += 1;
    e.duplicates += 1;
    assert_counted!(s.stats(), e, "duplicate");

    // Call 2 takes the only slot; a copy of call 1 is then answered Status 10.
    assert_eq!(answer(&mut s, &add(2), at(3), &mut svc), five(2));
    assert_eq!(answer(&mut s, &add(1), at(3), &mut svc), status(1, Status::Aborted));
    e.link.frames_in += 2;
    e.link.frames_out += 2;
    e.dispatched += 1;
    e.evicted += 1;
    assert_counted!(s.stats(), e, "evicted");

    // ...which did not evict call 2's answer.
    assert_eq!(answer(&mut s, &add(2), at(4), &mut svc), five(2));
    e.link.frames_in += 1;
    e.link.frames_out += 1;
    e.duplicates += 1;
    assert_counted!(s.stats(), e, "still cached");

    // A number before the newest that never arrived: a new call with feature
    // `pipelining`; without it, one the server cannot tell from an evicted one.
    assert_eq!(answer(&mut s, &add(10), at(5), &mut svc), five(10));
    e.link.frames_in += 1;
    e.link.frames_out += 1;
    e.dispatched += 1;
    let late = answer(&mut s, &add(8), at(5), &mut svc);
    e.link.frames_in += 1;
    e.link.frames_out += 1;
    if cfg!(feature = "pipelining") {
        assert_eq!(late, five(8));
        e.dispatched += 1;
    } else {
        assert_eq!(late, status(8, Status::Aborted));
        e.evicted += 1;
    }
    assert_counted!(s.stats(), e, "a late new number");

    // frames_out counts an answer when it is queued, not when it is written:
    // one discarded unwritten (the link failed) stays counted.
    assert_eq!(s.receive(&add(11), at(6), &mut svc), add(11).len());
    assert!(!s.outgoing().is_empty());
    s.discard_outgoing();
    e.link.frames_in += 1;
    e.link.frames_out += 1;
    e.dispatched += 1;
    assert_counted!(s.stats(), e, "discarded");
    // (It stays cached: a copy gets it, as a duplicate.)
    assert_eq!(answer(&mut s, &add(11), at(6), &mut svc), five(11));
    e.link.frames_in += 1;
    e.link.frames_out += 1;
    e.duplicates += 1;
    assert_counted!(s.stats(), e, "the discarded answer is still cached");

    // After the session ends, requests are no_session again; a too-long one
    // too: dropped_too_long and no_session, neither frames_in nor refused.
    s.end_session();
    assert_eq!(answer(&mut s, &add(12), at(7), &mut svc), status(12, Status::FailedPrecondition));
    let long = request(13, GREET, &("x".repeat(80).as_str(),));
    assert_eq!(answer(&mut s, &long, at(7), &mut svc), status(13, Status::FailedPrecondition));
    e.link.frames_in += 1;
    e.link.dropped_too_long += 1;
    e.link.frames_out += 2;
    e.no_session += 2;
    assert_counted!(s.stats(), e, "no session again");
}

#[test]
fn server_dispatched_counts_every_call_whose_dispatcher_ran_refused_every_new_call_turned_down() {
    let mut svc = board();
    let mut s = Sm::new();
    let mut e = ServerStats::ZERO;
    let builtins = cfg!(feature = "builtins");

    assert!(matches!(answer(&mut s, &hello(0), at(0), &mut svc), F::Welcome { .. }));
    assert_eq!(answer(&mut s, &request(1, ADD, &(2i32, 3i32)), at(0), &mut svc), F::Reply { seq: 1, value: vec![10] });
    e.link.frames_in += 2;
    e.link.frames_out += 2;
    e.hellos += 1;
    e.dispatched += 1;
    assert_counted!(s.stats(), e, "dispatched");

    // An unknown method, arguments that do not decode: refused.
    assert_eq!(answer(&mut s, &request(2, 0x99, &()), at(1), &mut svc), status(2, Status::Unimplemented));
    assert_eq!(answer(&mut s, &request(3, ADD, &(1u8,)), at(1), &mut svc), status(3, Status::InvalidArgument));
    e.link.frames_in += 2;
    e.link.frames_out += 2;
    e.refused += 2;
    assert_counted!(s.stats(), e, "refused");

    // A copy of a refused call gets its refusal again: a duplicate, not refused twice.
    assert_eq!(answer(&mut s, &request(3, ADD, &(1u8,)), at(1), &mut svc), status(3, Status::InvalidArgument));
    e.link.frames_in += 1;
    e.link.frames_out += 1;
    e.duplicates += 1;
    assert_counted!(s.stats(), e, "refusal repeated");

    // The built-in ping is dispatched like any method (refused, Status 12,
    // without feature `builtins`); with arguments it is refused, Status 3.
    let ping = answer(&mut s, &request(4, builtin::PING, &()), at(2), &mut svc);
    let ping_args = answer(&mut s, &request(5, builtin::PING, &(1u8,)), at(2), &mut svc);
    e.link.frames_in += 2;
    e.link.frames_out += 2;
    if builtins {
        assert_eq!((ping, ping_args), (F::Reply { seq: 4, value: vec![] }, status(5, Status::InvalidArgument)));
        e.dispatched += 1;
        e.refused += 1;
    } else {
        assert_eq!((ping, ping_args), (status(4, Status::Unimplemented), status(5, Status::Unimplemented)));
        e.refused += 2;
    }
    assert_counted!(s.stats(), e, "ping");

    // A Timed Request whose budget is spent is refused (Status 4) before anything runs.
    #[cfg(feature = "deadlines")]
    {
        let timed = |seq, budget| encoded(|b| wirecall::wire::encode_timed_request(seq, ADD, budget, &(2i32, 3i32), b));
        assert_eq!(answer(&mut s, &timed(6, 0), at(3), &mut svc), status(6, Status::DeadlineExceeded));
        assert_eq!(answer(&mut s, &timed(7, 100), at(3), &mut svc), F::Reply { seq: 7, value: vec![10] });
        e.link.frames_in += 2;
        e.link.frames_out += 2;
        e.refused += 1;
        e.dispatched += 1;
        assert_counted!(s.stats(), e, "timed");
    }

    // A value too large for the transmit buffer: the handler ran, so it is
    // dispatched, although the answer is Status 13.
    let mut small = ServerMachine::<64, 16>::new();
    let mut e = ServerStats::ZERO;
    assert!(matches!(answer(&mut small, &hello(0), at(0), &mut svc), F::Welcome { .. }));
    assert_eq!(answer(&mut small, &request(1, GREET, &("Ada",)), at(0), &mut svc), status(1, Status::Internal));
    e.link.frames_in += 2;
    e.link.frames_out += 2;
    e.hellos += 1;
    e.dispatched += 1;
    assert_counted!(small.stats(), e, "internal");
}

#[test]
fn server_hellos_counts_every_hello_resumed_or_not() {
    let mut svc = board();
    let mut s = Sm::new();
    let mut e = ServerStats::ZERO;
    let hello_from = |seq, client, fresh| encoded(|b| wirecall::wire::encode_hello(seq, client, fresh, b));
    let welcome = |f: F| match f {
        F::Welcome { resumed, .. } => resumed,
        other => panic!("a Welcome: {other:?}"),
    };
    assert!(!welcome(answer(&mut s, &hello(0), at(0), &mut svc)));
    assert!(!welcome(answer(&mut s, &hello(0), at(0), &mut svc)), "a duplicated Hello");
    assert_eq!(answer(&mut s, &request(1, ADD, &(2i32, 3i32)), at(0), &mut svc), F::Reply { seq: 1, value: vec![10] });
    assert!(welcome(answer(&mut s, &hello_from(2, 7, false), at(0), &mut svc)), "client 7 resumes");
    assert!(!welcome(answer(&mut s, &hello_from(3, 8, false), at(0), &mut svc)), "client 8 starts afresh");
    e.link.frames_in += 5;
    e.link.frames_out += 5;
    e.hellos += 4;
    e.dispatched += 1;
    assert_counted!(s.stats(), e);
}

#[cfg(all(feature = "builtins", feature = "stats"))]
#[test]
fn server_stats_reply_is_the_counters_in_spec_order_before_its_own_answer() {
    let mut svc = board();
    let mut s = Sm::new();
    answer(&mut s, &hello(0), at(0), &mut svc);
    answer(&mut s, &request(1, ADD, &(2i32, 3i32)), at(0), &mut svc);
    silent(&mut s, &bad_crc(&[0x11, 2, 0]), at(0), &mut svc);
    let before = s.stats();
    let F::Reply { seq: 2, value } = answer(&mut s, &request(2, builtin::STATS, &()), at(1), &mut svc) else {
        panic!("a Reply");
    };
    // The reply holds the counters as they stood when the call was dispatched:
    // its own request in frames_in; not yet itself in dispatched, nor its
    // Reply in frames_out.
    let mut seen = before;
    seen.link.frames_in += 1;
    let fields: [u32; 20] = postcard::from_bytes(&value).expect("20 varints, nothing left over");
    assert_eq!(fields, in_spec_order(seen));
    assert_eq!(fields, [3, 2, 0, 1, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0]);
    assert_eq!(postcard::from_bytes::<ServerStats>(&value), Ok(seen));
    let mut after = seen;
    after.link.frames_out += 1;
    after.dispatched += 1;
    assert_eq!(s.stats(), after);
}

#[cfg(feature = "cancel")]
#[test]
fn server_cancelled_counts_calls_a_cancel_kept_from_running_not_cancels_answered_from_the_cache() {
    let mut svc = board();
    let mut s = Sm::new();
    let mut e = ServerStats::ZERO;
    let cancel = |seq| encoded(|b| wirecall::wire::encode_cancel(seq, b));
    let add = |seq: u16| request(seq, ADD, &(2i32, 3i32));

    // Without a session: Status 9, no_session.
    assert_eq!(answer(&mut s, &cancel(1), at(0), &mut svc), status(1, Status::FailedPrecondition));
    e.link.frames_in += 1;
    e.link.frames_out += 1;
    e.no_session += 1;
    assert_counted!(s.stats(), e, "no session");

    answer(&mut s, &hello(0), at(0), &mut svc);
    e.link.frames_in += 1;
    e.link.frames_out += 1;
    e.hellos += 1;

    // A Cancel for a call never seen: Status 1, cancelled.
    assert_eq!(answer(&mut s, &cancel(5), at(1), &mut svc), status(5, Status::Cancelled));
    e.link.frames_in += 1;
    e.link.frames_out += 1;
    e.cancelled += 1;
    assert_counted!(s.stats(), e, "cancelled");

    // The Cancel again: Status 1 from the cache, in neither cancelled nor duplicates.
    assert_eq!(answer(&mut s, &cancel(5), at(1), &mut svc), status(5, Status::Cancelled));
    e.link.frames_in += 1;
    e.link.frames_out += 1;
    assert_counted!(s.stats(), e, "cancel repeated");

    // The request arriving after its Cancel: Status 1 from the cache, a duplicate.
    assert_eq!(answer(&mut s, &add(5), at(1), &mut svc), status(5, Status::Cancelled));
    e.link.frames_in += 1;
    e.link.frames_out += 1;
    e.duplicates += 1;
    assert_counted!(s.stats(), e, "request after cancel");

    // A Cancel of an answered call: its Reply again, in neither cancelled nor duplicates.
    assert_eq!(answer(&mut s, &add(6), at(2), &mut svc), F::Reply { seq: 6, value: vec![10] });
    assert_eq!(answer(&mut s, &cancel(6), at(2), &mut svc), F::Reply { seq: 6, value: vec![10] });
    e.link.frames_in += 2;
    e.link.frames_out += 2;
    e.dispatched += 1;
    assert_counted!(s.stats(), e, "cancel of an answered call");

    // A Cancel of an evicted call: Status 10, not in evicted.
    assert_eq!(answer(&mut s, &add(7), at(3), &mut svc), F::Reply { seq: 7, value: vec![10] });
    assert_eq!(answer(&mut s, &cancel(6), at(3), &mut svc), status(6, Status::Aborted));
    e.link.frames_in += 2;
    e.link.frames_out += 2;
    e.dispatched += 1;
    assert_counted!(s.stats(), e, "cancel of an evicted call");
}

// ---------------------------------------------------------------------------
// Server and client: streams.

#[cfg(feature = "streams")]
mod streams {
    use super::*;

    wirecall::service! {
        /// Streams of numbers and of blobs.
        pub mod source {
            /// Items 0, 1, ... `count - 1`.
            fn numbers(count: u32) -> u32 = 1, stream;
            /// An ordinary call.
            fn echo(x: u32) -> u32 = 2;
            /// Items of `len` bytes each, forever.
            fn blobs(len: u32) -> wirecall::heapless::Vec<u8, 64> = 3, stream;
        }
    }

    pub struct Source;

    impl source::Service for Source {
        fn numbers(&mut self, count: u32, index: u32) -> Option<u32> {
            (index < count).then_some(index)
        }
        fn echo(&mut self, x: u32) -> u32 {
            x
        }
        fn blobs(&mut self, len: u32, _index: u32) -> Option<wirecall::heapless::Vec<u8, 64>> {
            let mut blob = wirecall::heapless::Vec::new();
            blob.resize(len.min(64) as usize, 7).ok()?;
            Some(blob)
        }
    }

    const NUMBERS: u16 = source::ids::numbers;

    fn credit(seq: u16, limit: u32) -> Vec<u8> {
        encoded(|b| wirecall::wire::encode_credit(seq, limit, b))
    }

    fn item(seq: u16, index: u32) -> F {
        F::Item { seq, index }
    }

    #[test]
    fn server_items_counts_items_sent_and_frames_out_skips_an_end_the_stream_itself_sends() {
        let mut svc = source::Dispatcher(Source);
        let mut s = Sm::new();
        let mut e = ServerStats::ZERO;
        let sent = |s: &mut Sm, input: &[u8], svc: &mut source::Dispatcher<Source>| {
            frames(&server_in(s, input, at(0), svc).concat())
        };

        // Credit without a session: answered Status 9, counted in no_session.
        assert_eq!(sent(&mut s, &credit(1, 10), &mut svc), [status(1, Status::FailedPrecondition)]);
        e.link.frames_in += 1;
        e.link.frames_out += 1;
        e.no_session += 1;
        assert_counted!(s.stats(), e, "credit without a session");

        answer(&mut s, &hello(0), at(0), &mut svc);
        e.link.frames_in += 1;
        e.link.frames_out += 1;
        e.hellos += 1;

        // A stream starts: dispatched once, nothing sent before credit.
        assert_eq!(sent(&mut s, &request(1, NUMBERS, &(3u32,)), &mut svc), []);
        e.link.frames_in += 1;
        e.dispatched += 1;
        assert_counted!(s.stats(), e, "stream started");

        // Credit: three Items, each in items and frames_out; then the End the
        // stream sends when its handler has no more, in neither.
        let end = F::End { seq: 1, status: None, items: 3 };
        assert_eq!(sent(&mut s, &credit(1, 10), &mut svc), [item(1, 0), item(1, 1), item(1, 2), end.clone()]);
        e.link.frames_in += 1;
        e.items += 3;
        e.link.frames_out += 3;
        assert_counted!(s.stats(), e, "items and end");

        // A Credit for the ended stream: its End from the cache, in frames_out, not duplicates.
        assert_eq!(sent(&mut s, &credit(1, 10), &mut svc), std::slice::from_ref(&end));
        e.link.frames_in += 1;
        e.link.frames_out += 1;
        assert_counted!(s.stats(), e, "end again for a credit");

        // A copy of its request: the End again, a duplicate.
        assert_eq!(sent(&mut s, &request(1, NUMBERS, &(3u32,)), &mut svc), [end]);
        e.link.frames_in += 1;
        e.link.frames_out += 1;
        e.duplicates += 1;
        assert_counted!(s.stats(), e, "end again for a request");

        // A copy of the request of the stream in progress: nothing sent, yet a duplicate.
        assert_eq!(sent(&mut s, &request(2, NUMBERS, &(100u32,)), &mut svc), []);
        assert_eq!(sent(&mut s, &request(2, NUMBERS, &(100u32,)), &mut svc), []);
        assert_eq!(sent(&mut s, &credit(2, 2), &mut svc), [item(2, 0), item(2, 1)]);
        e.link.frames_in += 3;
        e.dispatched += 1;
        e.duplicates += 1;
        e.items += 2;
        e.link.frames_out += 2;
        assert_counted!(s.stats(), e, "stream in progress");

        // A Cancel stops it: its End (status 1) is sent, and counted, and the
        // stream is in cancelled.
        #[cfg(feature = "cancel")]
        {
            let cancel = encoded(|b| wirecall::wire::encode_cancel(2, b));
            assert_eq!(sent(&mut s, &cancel, &mut svc), [F::End { seq: 2, status: Some(Status::Cancelled), items: 2 }]);
            e.link.frames_in += 1;
            e.link.frames_out += 1;
            e.cancelled += 1;
            assert_counted!(s.stats(), e, "stream cancelled");
        }

        // A new call W (1) numbers after a stream in progress: the client gave
        // up on the stream, which ends (cancelled, its End cached, not sent).
        assert_eq!(sent(&mut s, &request(3, NUMBERS, &(100u32,)), &mut svc), []);
        assert_eq!(sent(&mut s, &credit(3, 1), &mut svc), [item(3, 0)]);
        assert_eq!(
            sent(&mut s, &request(4, source::ids::echo, &(7u32,)), &mut svc),
            [F::Reply { seq: 4, value: vec![7] }]
        );
        e.link.frames_in += 3;
        e.dispatched += 2;
        e.items += 1;
        e.link.frames_out += 2;
        e.cancelled += 1;
        assert_counted!(s.stats(), e, "stream given up");
        // (Call 4's answer took the only slot: a Credit for stream 3 finds nothing.)
        assert_eq!(sent(&mut s, &credit(3, 5), &mut svc), []);
        e.link.frames_in += 1;
        assert_counted!(s.stats(), e, "credit for a forgotten stream");

        // An item too large for the transmit buffer: the stream ends with End
        // status 13; neither the lost item nor the End is counted.
        assert_eq!(sent(&mut s, &request(5, source::ids::blobs, &(60u32,)), &mut svc), []);
        assert_eq!(
            sent(&mut s, &credit(5, 1), &mut svc),
            [F::End { seq: 5, status: Some(Status::Internal), items: 0 }]
        );
        e.link.frames_in += 2;
        e.dispatched += 1;
        assert_counted!(s.stats(), e, "item too large");
    }

    #[test]
    fn client_a_credit_sent_again_after_a_silent_attempt_is_not_a_retry() {
        let mut svc = source::Dispatcher(Source);
        let mut s = Sm::new();
        let mut c = Cm::new();
        let seq = c.start_stream(source::methods::numbers, &(100u32,), 2, at(0), at(2000)).unwrap();
        open(&mut c, &mut s, &mut svc, at(0));
        let items = server_in(&mut s, &client_out(&mut c).concat(), at(0), &mut svc).concat();
        assert_eq!(frames(&items), [item(seq, 0), item(seq, 1)]);
        assert_eq!(client_in(&mut c, &items, at(0)).len(), 2);
        let lost = client_out(&mut c); // the Credits the items called for, lost
        let mut e = ClientStats::ZERO;
        e.calls = 1;
        e.sessions = 1;
        e.link.frames_out = 3 + lost.len() as u32; // Hello, request, Credit, and those
        e.link.frames_in = 3;
        e.items = 2;
        assert_counted!(c.stats(), e, "two items");
        // Nothing for an attempt (250 ms), then the backoff (10 ms): more credit
        // goes out, in frames_out, but not in retries (a request sent again would be).
        assert_eq!(client_poll(&mut c, at(250)), []);
        assert_eq!(client_poll(&mut c, at(260)), []);
        let again = client_out(&mut c);
        assert!(matches!(frames(&again.concat())[..], [F::Credit { seq: s, .. }] if s == seq));
        e.link.frames_out += 1;
        assert_counted!(c.stats(), e, "credit again");
    }

    #[test]
    fn client_items_counts_items_delivered_late_replies_their_copies() {
        let mut svc = source::Dispatcher(Source);
        let mut s = Sm::new();
        let mut c = Cm::new();
        let seq = c.start_stream(source::methods::numbers, &(5u32,), 2, at(0), at(1000)).unwrap();
        // Every frame the server sends reaches the client twice.
        let (mut out, mut into, mut ends, mut got) = (0, 0, 0, Vec::new());
        loop {
            let chunks = client_out(&mut c);
            if chunks.is_empty() {
                break;
            }
            out += chunks.len();
            for answer in server_in(&mut s, &chunks.concat(), at(0), &mut svc) {
                let copies = match frame(&answer) {
                    F::Item { .. } => 2,
                    // (A Credit that crossed the End asks for it again.)
                    F::End { .. } => {
                        ends += 1;
                        2
                    }
                    _ => 1,
                };
                for _ in 0..copies {
                    into += 1;
                    got.extend(client_in(&mut c, &answer, at(0)));
                }
            }
        }
        assert_eq!(got.iter().filter(|g| matches!(g, Got::Item { .. })).count(), 5);
        let end = wirecall::StreamEnd { sent: 5, received: 5, status: None };
        assert_eq!(got.iter().filter(|g| matches!(g, Got::End { .. })).collect::<Vec<_>>(), [&Got::End { seq, end }]);
        assert_eq!(into, 1 + 2 * (5 + ends), "the Welcome, each Item and each End twice");
        let mut e = ClientStats::ZERO;
        e.calls = 1;
        e.sessions = 1;
        e.link.frames_out = out as u32; // the Hello, the request, its Credits
        e.link.frames_in = into;
        e.items = 5;
        // Each Item's copy (its index is below the next), every End but the first (no call waits).
        e.late_replies = 5 + 2 * ends - 1;
        assert_counted!(c.stats(), e);
        assert_counted!(s.stats().items, 5);

        // An End for a call that is not a stream: late, and the call goes on.
        let add = c.start(wirecall::Method::new(source::ids::echo), &(9u32,), at(1), at(1000)).unwrap();
        let req = client_out(&mut c).concat();
        let wrong = encoded(|b| wirecall::wire::encode_end(add, None, 0, b));
        assert!(client_in(&mut c, &wrong, at(1)).is_empty());
        assert_eq!(client_in(&mut c, &server_in(&mut s, &req, at(1), &mut svc).concat(), at(1)), [ok(add, &[9])]);
        e.calls += 1;
        e.link.frames_out += 1;
        e.link.frames_in += 2;
        e.late_replies += 1;
        assert_counted!(c.stats(), e, "an End for a unary call");

        // A stream the client cancels after its first item: the End with
        // status 1 is in cancelled.
        #[cfg(feature = "cancel")]
        {
            let seq = c.start_stream(source::methods::numbers, &(100u32,), 1, at(2), at(1000)).unwrap();
            let sent = client_out(&mut c); // the request and its Credit
            assert_eq!(sent.len(), 2);
            let items = server_in(&mut s, &sent.concat(), at(2), &mut svc);
            assert_eq!(frames(&items.concat()), [item(seq, 0)]);
            assert_eq!(client_in(&mut c, &items.concat(), at(2)).len(), 1);
            assert!(c.cancel(seq, at(2)));
            let sent = client_out(&mut c); // more credit, then the Cancel
            assert!(matches!(frames(&sent.concat())[..], [F::Credit { .. }, F::Cancel { .. }]));
            let ended = server_in(&mut s, sent.last().unwrap(), at(2), &mut svc).concat();
            let end = wirecall::StreamEnd { sent: 1, received: 1, status: Some(Status::Cancelled) };
            assert_eq!(client_in(&mut c, &ended, at(2)), [Got::End { seq, end }]);
            e.calls += 1;
            e.link.frames_out += 4;
            e.link.frames_in += 2;
            e.items += 1;
            e.cancelled += 1;
            assert_counted!(c.stats(), e, "a stream cancelled");
        }
    }
}

// ---------------------------------------------------------------------------
// Server and client: one-way calls and events.

#[cfg(feature = "events")]
mod events {
    use super::*;

    wirecall::service! {
        /// Notes and events.
        pub mod board {
            /// One-way: records `tag`.
            fn note(tag: u32) = 1, oneway;
            /// Returns `tag`.
            fn get(tag: u32) -> u32 = 2;

            event tick: u32 = 1;
            event text: wirecall::heapless::String<16> = 2;
        }
    }

    #[derive(Default)]
    pub struct Notes(Vec<u32>);

    impl board::Service for Notes {
        fn note(&mut self, tag: u32) {
            self.0.push(tag);
        }
        fn get(&mut self, tag: u32) -> u32 {
            tag
        }
    }

    fn oneway<A: serde::Serialize + ?Sized>(seq: u16, method: u16, args: &A) -> Vec<u8> {
        encoded(|b| wirecall::wire::encode_oneway(seq, method, args, b))
    }

    fn event(seq: u16) -> Vec<u8> {
        encoded(|b| wirecall::wire::encode_event(seq, 1, &7u32, b))
    }

    #[test]
    fn server_events_counts_events_taken_by_emit_not_in_frames_out() {
        let mut svc = board::Dispatcher(Notes::default());
        let mut s = ServerMachine::<64, 24>::new();
        let mut e = ServerStats::ZERO;

        assert_eq!(s.emit(board::events::tick, &1), Ok(()));
        e.events += 1;
        assert_counted!(s.stats(), e, "emitted, not yet written");
        assert!(matches!(frame(s.outgoing()), F::Event { seq: 0, topic: 1 }));
        // Refused events count nowhere: one while another waits, one too large.
        assert_eq!(s.emit(board::events::tick, &2), Err(wirecall::machine::EmitError::Busy));
        s.wrote(s.outgoing().len());
        let long = wirecall::heapless::String::try_from("sixteen bytes!!!").unwrap();
        assert_eq!(s.emit(board::events::text, &long), Err(wirecall::machine::EmitError::TooLarge));
        assert_counted!(s.stats(), e, "busy, too large");
        // An event discarded unwritten (the link failed) stays counted.
        assert_eq!(s.emit(board::events::tick, &3), Ok(()));
        s.discard_outgoing();
        e.events += 1;
        assert_counted!(s.stats(), e, "discarded");

        // An event goes out after the answer being sent, and only the answer is in frames_out.
        assert_eq!(s.receive(&hello(0), at(0), &mut svc), hello(0).len());
        assert_eq!(s.emit(board::events::tick, &4), Ok(()));
        let mut sent = Vec::new();
        while !s.outgoing().is_empty() {
            sent.push(frame(s.outgoing()));
            s.wrote(s.outgoing().len());
        }
        assert!(matches!(sent[..], [F::Welcome { .. }, F::Event { seq: 2, topic: 1 }]));
        e.link.frames_in += 1;
        e.link.frames_out += 1;
        e.hellos += 1;
        e.events += 1;
        assert_counted!(s.stats(), e, "an event after a Welcome");
    }

    #[test]
    fn server_oneway_counts_new_one_way_calls_copies_count_as_evicted() {
        let mut svc = board::Dispatcher(Notes::default());
        let mut s = Sm::new();
        let mut e = ServerStats::ZERO;
        let note = |seq: u16, tag: u32| oneway(seq, board::ids::note, &(tag,));

        // Without a session: no_session alone.
        silent(&mut s, &note(1, 5), at(0), &mut svc);
        e.link.frames_in += 1;
        e.no_session += 1;
        assert_counted!(s.stats(), e, "no session");

        answer(&mut s, &hello(0), at(0), &mut svc);
        e.link.frames_in += 1;
        e.link.frames_out += 1;
        e.hellos += 1;

        // A new one-way call: oneway and dispatched, nothing in frames_out.
        silent(&mut s, &note(1, 5), at(1), &mut svc);
        assert_eq!(svc.0.0, [5]);
        e.link.frames_in += 1;
        e.oneway += 1;
        e.dispatched += 1;
        assert_counted!(s.stats(), e, "one-way");

        // A copy: not run, not oneway, and not duplicates (its answer was
        // never cached): evicted.
        silent(&mut s, &note(1, 5), at(1), &mut svc);
        assert_eq!(svc.0.0, [5]);
        e.link.frames_in += 1;
        e.evicted += 1;
        assert_counted!(s.stats(), e, "one-way copy");

        // Refused one-way calls (unknown method, bad arguments): oneway and refused.
        silent(&mut s, &oneway(2, 0x99, &()), at(2), &mut svc);
        silent(&mut s, &oneway(3, board::ids::note, &()), at(2), &mut svc);
        e.link.frames_in += 2;
        e.oneway += 2;
        e.refused += 2;
        assert_counted!(s.stats(), e, "one-way refused");

        // A one-way call under the number of an answered call: a duplicate, nothing sent.
        assert_eq!(
            answer(&mut s, &request(4, board::ids::get, &(8u32,)), at(3), &mut svc),
            F::Reply { seq: 4, value: vec![8] }
        );
        silent(&mut s, &note(4, 6), at(3), &mut svc);
        assert_eq!(svc.0.0, [5]);
        e.link.frames_in += 2;
        e.link.frames_out += 1;
        e.dispatched += 1;
        e.duplicates += 1;
        assert_counted!(s.stats(), e, "one-way under a cached number");
    }

    #[test]
    fn client_events_and_events_missed() {
        let mut c = Cm::new();
        let mut e = ClientStats::ZERO;
        let got = |c: &mut Cm, seq: u16| client_in(c, &event(seq), at(0));
        let delivered = |seq| vec![Got::Event { seq, topic: 1, payload: vec![7] }];

        assert_eq!(got(&mut c, 0), delivered(0));
        e.link.frames_in += 1;
        e.events += 1;
        assert_counted!(c.stats(), e, "first event");
        // The same number again: a copy, in late_replies.
        assert_eq!(got(&mut c, 0), []);
        e.link.frames_in += 1;
        e.late_replies += 1;
        assert_counted!(c.stats(), e, "copy");
        assert_eq!(got(&mut c, 1), delivered(1));
        // Events 2 and 3 never came.
        assert_eq!(got(&mut c, 4), delivered(4));
        e.link.frames_in += 2;
        e.events += 2;
        e.events_missed += 2;
        assert_counted!(c.stats(), e, "a gap");
        // Backwards (a restarted server, a reordering): delivered, no gap counted.
        assert_eq!(got(&mut c, 2), delivered(2));
        e.link.frames_in += 1;
        e.events += 1;
        assert_counted!(c.stats(), e, "backwards");

        // An event too long for the receive buffer: dropped_too_long, not
        // events; the gap it leaves is counted missed at the next.
        let mut c = ClientMachine::<32, 64>::new();
        let mut e = ClientStats::ZERO;
        assert_eq!(got_from(&mut c, &event(0)), delivered(0));
        let big = encoded(|b| wirecall::wire::encode_event(1, 2, &[7u8; 40][..], b));
        assert_eq!(got_from(&mut c, &big), []);
        assert_eq!(got_from(&mut c, &event(2)), delivered(2));
        e.link.frames_in += 2;
        e.link.dropped_too_long += 1;
        e.events += 2;
        e.events_missed += 1;
        assert_counted!(c.stats(), e, "too long");
    }

    fn got_from<const RX: usize>(c: &mut ClientMachine<RX, 64>, bytes: &[u8]) -> Vec<Got> {
        client_in(c, bytes, at(0))
    }

    /// events_missed saturates at u32::MAX, unlike every other counter.
    #[cfg(feature = "stats")]
    #[test]
    fn client_events_missed_saturates() {
        let mut c = Cm::new();
        let frames = [event(0), event(0x8000)];
        // Each event after the first leaves a gap of 32,767.
        let n = u32::MAX / 0x7fff + 2;
        for i in 0..=n {
            client_in(&mut c, &frames[(i % 2) as usize], at(0));
        }
        assert_eq!((c.stats().events, c.stats().events_missed), (n + 1, u32::MAX));
    }

    #[test]
    fn client_a_one_way_call_is_a_call_and_a_frame_out() {
        let mut svc = board::Dispatcher(Notes::default());
        let mut s = Sm::new();
        let mut c = Cm::new();
        let seq = c.start_oneway(wirecall::Method::new(board::ids::note), &(3u32,), at(0), at(1000)).unwrap();
        assert_eq!(exchange(&mut c, &mut s, &mut svc, at(0)), []);
        assert!(!c.is_in_flight(seq));
        assert_eq!(svc.0.0, [3]);
        let mut e = ClientStats::ZERO;
        e.calls = 1;
        e.sessions = 1;
        e.link.frames_out = 2;
        e.link.frames_in = 1;
        assert_counted!(c.stats(), e);
    }
}

// ---------------------------------------------------------------------------
// Client.

#[test]
fn client_link_counters_and_late_replies() {
    let mut svc = board();
    let mut s = Sm::new();
    let mut c = Cm::new();
    let mut e = ClientStats::ZERO;

    // A call: counted when started, its Hello when queued, before any byte is written.
    let seq = c.start(demo::methods::add, &(2i32, 3i32), at(0), at(1000)).unwrap();
    e.calls += 1;
    e.link.frames_out += 1;
    assert_counted!(c.stats(), e, "started");

    let hello = client_out(&mut c).concat();
    let welcome = server_in(&mut s, &hello, at(0), &mut svc).concat();
    assert!(client_in(&mut c, &welcome, at(0)).is_empty());
    e.link.frames_in += 1;
    e.sessions += 1;
    e.link.frames_out += 1; // the request the Welcome released
    assert_counted!(c.stats(), e, "welcome");

    let reply = server_in(&mut s, &client_out(&mut c).concat(), at(0), &mut svc).concat();
    assert_eq!(client_in(&mut c, &reply, at(0)), [ok(seq, &[10])]);
    e.link.frames_in += 1;
    assert_counted!(c.stats(), e, "reply");

    // The Reply again, and the Welcome again: no call or Hello waits for them.
    assert!(client_in(&mut c, &reply, at(1)).is_empty());
    assert!(client_in(&mut c, &welcome, at(1)).is_empty());
    e.link.frames_in += 2;
    e.late_replies += 2;
    assert_counted!(c.stats(), e, "late");

    // Bad CRC, not COBS, too short (twice: empty, and a Status without its code).
    assert!(client_in(&mut c, &bad_crc(&[0x12, 1, 0, 10]), at(2)).is_empty());
    assert!(client_in(&mut c, &[0x05, 0x12, 0x00], at(2)).is_empty());
    assert!(client_in(&mut c, &[0x01, 0x00], at(2)).is_empty());
    assert!(client_in(&mut c, &wire(&[0x13, 1, 0]), at(2)).is_empty());
    e.link.dropped_crc += 1;
    e.link.dropped_cobs += 1;
    e.link.dropped_too_short += 2;
    assert_counted!(c.stats(), e, "drops");

    // Another version; reserved kinds; a Request, a kind clients never receive:
    // dropped_kind, and unlike at a server not in frames_in.
    assert!(client_in(&mut c, &wire(&[0x22, 1, 0, 10]), at(3)).is_empty());
    assert!(client_in(&mut c, &wire(&[0x10, 1, 0]), at(3)).is_empty());
    assert!(client_in(&mut c, &wire(&[0x1f, 1, 0]), at(3)).is_empty());
    assert!(client_in(&mut c, &request(9, ADD, &(1i32, 2i32)), at(3)).is_empty());
    e.link.dropped_version += 1;
    e.link.dropped_kind += 3;
    assert_counted!(c.stats(), e, "kinds");

    // A malformed header field: an Event whose topic overflows 16 bits.
    #[cfg(feature = "events")]
    {
        assert!(client_in(&mut c, &wire(&[0x1c, 0, 0, 0xff, 0xff, 0x7f]), at(3)).is_empty());
        e.link.dropped_malformed += 1;
        assert_counted!(c.stats(), e, "malformed");
    }

    // Half a frame, silence past the frame gap, then a whole (late) Reply.
    assert!(client_in(&mut c, &reply[..3], at(10)).is_empty());
    assert!(client_in(&mut c, &reply, at(1011)).is_empty());
    e.link.dropped_stale += 1;
    e.link.frames_in += 1;
    e.late_replies += 1;
    assert_counted!(c.stats(), e, "stale");

    // An answer for a call that is queued behind the handshake, not yet sent: late.
    c.fail_link();
    let seq = c.start(demo::methods::add, &(2i32, 3i32), at(20), at(1000)).unwrap();
    let early = encoded(|b| wirecall::wire::encode_reply(seq, &5i32, b));
    assert!(client_in(&mut c, &early, at(20)).is_empty());
    e.calls += 1;
    e.link.frames_out += 1; // its Hello
    e.link.frames_in += 1;
    e.late_replies += 1;
    assert_counted!(c.stats(), e, "an answer before the request");
}

#[test]
fn client_too_long_counts_in_dropped_too_long_not_frames_in() {
    let mut svc = board();
    let mut s = Sm::new();
    let mut c = ClientMachine::<32, 64>::new();
    let mut e = ClientStats::ZERO;
    let name = "x".repeat(26);
    let seq = c.start(demo::methods::greet, &(name.as_str(),), at(0), at(1000)).unwrap();
    open(&mut c, &mut s, &mut svc, at(0));
    // "Hello " and 26 bytes: a 38-byte Reply for a 32-byte buffer.
    let reply = server_in(&mut s, &client_out(&mut c).concat(), at(0), &mut svc).concat();
    assert_eq!(client_in(&mut c, &reply, at(0)), [Got::Done { seq, outcome: Err(Error::ReplyTooLarge) }]);
    e.calls += 1;
    e.link.frames_out += 2;
    e.link.frames_in += 1; // the Welcome
    e.sessions += 1;
    e.link.dropped_too_long += 1;
    assert_counted!(c.stats(), e, "too long reply");
    // Again, with no call waiting for it: dropped_too_long and late_replies both.
    assert!(client_in(&mut c, &reply, at(1)).is_empty());
    e.link.dropped_too_long += 1;
    e.late_replies += 1;
    assert_counted!(c.stats(), e, "too long and late");
}

#[test]
fn client_retries_timeouts_and_resumed_calls() {
    let mut svc = board();
    let mut s = Sm::new();
    let mut c = Cm::new();
    let mut e = ClientStats::ZERO;
    assert_eq!(c.retry_policy(), wirecall::RetryPolicy::DEFAULT); // 250 ms per attempt, 10 ms backoff first

    let seq = c.start(demo::methods::add, &(2i32, 3i32), at(0), at(2000)).unwrap();
    let lost = client_out(&mut c);
    assert_eq!(lost.len(), 1, "a Hello, lost");
    e.calls += 1;
    e.link.frames_out += 1;
    // No Welcome within the attempt: the Hello again, a retry.
    assert_eq!(client_poll(&mut c, at(250)), []);
    e.retries += 1;
    e.link.frames_out += 1;
    assert_counted!(c.stats(), e, "hello again");
    open(&mut c, &mut s, &mut svc, at(250));
    e.link.frames_in += 1;
    e.sessions += 1;
    e.link.frames_out += 1; // the request
    let _lost = client_out(&mut c);
    // No answer within the attempt (250 ms), then the backoff (10 ms): the request again.
    assert_eq!(client_poll(&mut c, at(500)), []);
    assert_counted!(c.stats(), e, "backoff: nothing sent yet");
    assert_eq!(client_poll(&mut c, at(510)), []);
    e.retries += 1;
    e.link.frames_out += 1;
    assert_counted!(c.stats(), e, "retransmission");
    let reply = server_in(&mut s, &client_out(&mut c).concat(), at(510), &mut svc).concat();
    assert_eq!(client_in(&mut c, &reply, at(510)), [ok(seq, &[10])]);
    e.link.frames_in += 1;
    assert_counted!(c.stats(), e, "answered");

    // A retry a driver makes as a new call.
    c.count_retry();
    e.retries += 1;
    assert_counted!(c.stats(), e, "count_retry");

    // No answer by the deadline: a timeout.
    let seq = c.start(demo::methods::add, &(2i32, 3i32), at(600), at(700)).unwrap();
    let request = client_out(&mut c).concat();
    assert_eq!(client_poll(&mut c, at(700)), [(seq, Error::Timeout)]);
    e.calls += 1;
    e.link.frames_out += 1;
    e.timeouts += 1;
    assert_counted!(c.stats(), e, "timeout");

    // Resumed: a call again, and its request out again, not a retry.
    assert_eq!(c.resume(at(700), at(2000)), Ok(seq));
    let again = client_out(&mut c).concat();
    assert_eq!(frames(&again), frames(&request));
    assert_eq!(client_in(&mut c, &server_in(&mut s, &again, at(700), &mut svc).concat(), at(700)), [ok(seq, &[10])]);
    e.calls += 1;
    e.link.frames_out += 1;
    e.link.frames_in += 1;
    assert_counted!(c.stats(), e, "resumed");

    // A Hello that never gets a Welcome: the call ends Unreachable, a timeout.
    let mut c = Cm::new();
    let mut e = ClientStats::ZERO;
    let seq = c.start(demo::methods::add, &(2i32, 3i32), at(0), at(100)).unwrap();
    client_out(&mut c);
    assert_eq!(client_poll(&mut c, at(100)), [(seq, Error::Unreachable)]);
    e.calls += 1;
    e.link.frames_out += 1;
    e.timeouts += 1;
    assert_counted!(c.stats(), e, "unreachable");
}

#[test]
fn client_link_failures_counts_calls_in_flight_not_failures() {
    // Two calls queued behind a Hello (the window is W until a Welcome says otherwise).
    let mut c = ClientMachine::<64, 64, 2>::new();
    let a = c.start(demo::methods::add, &(1i32, 1i32), at(0), at(1000)).unwrap();
    let b = c.start(demo::methods::add, &(2i32, 2i32), at(0), at(1000)).unwrap();
    client_out(&mut c);
    c.fail_link();
    let mut e = ClientStats::ZERO;
    e.calls = 2;
    e.link.frames_out = 1;
    e.link_failures = 2;
    assert_counted!(c.stats(), e, "two calls");
    assert_eq!(c.take_failed(), Some((a, Error::NotSent)));
    assert_eq!(c.take_failed(), Some((b, Error::NotSent)));
    // A failure with no call in flight counts nothing.
    c.fail_link();
    assert_counted!(c.stats(), e, "no call");

    // One call whose request was written: LinkLost, one link failure.
    let mut svc = board();
    let mut s = Sm::new();
    let mut c = Cm::new();
    let seq = c.start(demo::methods::add, &(1i32, 1i32), at(0), at(1000)).unwrap();
    open(&mut c, &mut s, &mut svc, at(0));
    client_out(&mut c);
    c.fail_link();
    assert_eq!(c.take_failed(), Some((seq, Error::LinkLost)));
    let mut e = ClientStats::ZERO;
    e.calls = 1;
    e.sessions = 1;
    e.link.frames_out = 2;
    e.link.frames_in = 1;
    e.link_failures = 1;
    assert_counted!(c.stats(), e, "one call");
}

#[test]
fn client_sessions_and_sessions_lost() {
    let mut svc = board();
    let mut c = Cm::new();
    let mut e = ClientStats::ZERO;
    let mut first = Sm::new();

    let seq = c.start(demo::methods::add, &(2i32, 3i32), at(0), at(1000)).unwrap();
    assert_eq!(exchange(&mut c, &mut first, &mut svc, at(0)), [ok(seq, &[10])]);
    e.calls += 1;
    e.link.frames_out += 2;
    e.link.frames_in += 2;
    e.sessions += 1; // a fresh Hello's Welcome, not resumed: not a session lost
    assert_counted!(c.stats(), e, "first session");

    // The server restarts: Status 9 for the next call.
    let mut restarted = Sm::new();
    let seq = c.start(demo::methods::add, &(2i32, 3i32), at(1), at(1000)).unwrap();
    let expected = [Got::Done { seq, outcome: Err(Error::Status(Status::FailedPrecondition)) }];
    assert_eq!(exchange(&mut c, &mut restarted, &mut svc, at(1)), expected);
    e.calls += 1;
    e.link.frames_out += 1;
    e.link.frames_in += 1;
    e.sessions_lost += 1;
    assert_counted!(c.stats(), e, "status 9");

    // The next Hello's Welcome is not resumed: the same loss counted a second time.
    let seq = c.start(demo::methods::add, &(2i32, 3i32), at(2), at(1000)).unwrap();
    assert_eq!(exchange(&mut c, &mut restarted, &mut svc, at(2)), [ok(seq, &[10])]);
    e.calls += 1;
    e.link.frames_out += 2;
    e.link.frames_in += 2;
    e.sessions += 1;
    e.sessions_lost += 1;
    assert_counted!(c.stats(), e, "not resumed");

    // A link failure, and a server that kept the session: resumed, a session, nothing lost.
    c.fail_link();
    let seq = c.start(demo::methods::add, &(2i32, 3i32), at(3), at(1000)).unwrap();
    assert_eq!(exchange(&mut c, &mut restarted, &mut svc, at(3)), [ok(seq, &[10])]);
    e.calls += 1;
    e.link.frames_out += 2;
    e.link.frames_in += 2;
    e.sessions += 1;
    assert_counted!(c.stats(), e, "resumed");
}

/// With several calls in flight, each Status 9 of the one restart counts.
#[cfg(feature = "pipelining")]
#[test]
fn client_sessions_lost_counts_each_status_9() {
    let mut svc = board();
    let mut c = ClientMachine::<64, 64, 2>::new();
    let mut first = ServerMachine::<64, 64, 2>::new();
    let seq = c.start(demo::methods::add, &(2i32, 3i32), at(0), at(1000)).unwrap();
    assert_eq!(exchange(&mut c, &mut first, &mut svc, at(0)), [ok(seq, &[10])]);
    let mut restarted = ServerMachine::<64, 64, 2>::new();
    let a = c.start(demo::methods::add, &(1i32, 1i32), at(1), at(1000)).unwrap();
    let b = c.start(demo::methods::add, &(2i32, 2i32), at(1), at(1000)).unwrap();
    let got = exchange(&mut c, &mut restarted, &mut svc, at(1));
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(got[0], Got::Done { seq: a, outcome: Err(Error::Status(Status::FailedPrecondition)) });
    assert!(matches!(got[1], Got::Done { seq, outcome: Err(_) } if seq == b), "{got:?}");
    let mut e = ClientStats::ZERO;
    e.calls = 3;
    e.sessions = 1;
    e.link.frames_out = 4;
    e.link.frames_in = 4;
    e.sessions_lost = 2;
    assert_counted!(c.stats(), e);
}

#[cfg(feature = "cancel")]
#[test]
fn client_cancelled_counts_calls_that_ended_cancelled() {
    let mut svc = board();
    let mut s = Sm::new();
    let mut c = Cm::new();
    let mut e = ClientStats::ZERO;
    let add = |c: &mut Cm, now| c.start(demo::methods::add, &(2i32, 3i32), now, at(2000)).unwrap();

    // Cancelled before any byte of it was written: it ends at once.
    let seq = add(&mut c, at(0));
    assert!(c.cancel(seq, at(0)));
    assert_eq!(client_poll(&mut c, at(0)), [(seq, Error::Cancelled)]);
    client_out(&mut c); // the Hello, queued already: lost
    e.calls += 1;
    e.link.frames_out += 1;
    e.cancelled += 1;
    assert_counted!(c.stats(), e, "cancelled unsent");

    // Cancelled after its request was written: a Cancel (not a retry), Status 1.
    let seq = add(&mut c, at(1));
    open(&mut c, &mut s, &mut svc, at(1));
    client_out(&mut c); // the request, lost
    assert!(c.cancel(seq, at(1)));
    let cancel = client_out(&mut c).concat();
    assert_eq!(frames(&cancel), [F::Cancel { seq }]);
    let answer = server_in(&mut s, &cancel, at(1), &mut svc).concat();
    assert_eq!(client_in(&mut c, &answer, at(1)), [Got::Done { seq, outcome: Err(Error::Status(Status::Cancelled)) }]);
    e.calls += 1;
    e.link.frames_out += 3; // Hello, request, Cancel
    e.link.frames_in += 2;
    e.sessions += 1;
    e.cancelled += 1;
    assert_counted!(c.stats(), e, "cancelled by the server");

    // A Cancel sent again after its attempt: a retry.
    let seq = add(&mut c, at(10));
    client_out(&mut c); // the request, lost
    assert!(c.cancel(seq, at(10)));
    client_out(&mut c); // the Cancel, lost
    assert_eq!(client_poll(&mut c, at(260)), []);
    assert_eq!(client_poll(&mut c, at(270)), []);
    let cancel = client_out(&mut c).concat();
    assert_eq!(frames(&cancel), [F::Cancel { seq }]);
    let answer = server_in(&mut s, &cancel, at(270), &mut svc).concat();
    assert_eq!(
        client_in(&mut c, &answer, at(270)),
        [Got::Done { seq, outcome: Err(Error::Status(Status::Cancelled)) }]
    );
    e.calls += 1;
    e.link.frames_out += 3; // request, Cancel, Cancel
    e.retries += 1;
    e.link.frames_in += 1;
    e.cancelled += 1;
    assert_counted!(c.stats(), e, "cancel again");

    // Too late: the call ran, and its Reply answers the Cancel. Not cancelled.
    let seq = add(&mut c, at(300));
    let reply = server_in(&mut s, &client_out(&mut c).concat(), at(300), &mut svc);
    assert_eq!(frames(&reply.concat()), [F::Reply { seq, value: vec![10] }]); // lost
    assert!(c.cancel(seq, at(300)));
    let answer = server_in(&mut s, &client_out(&mut c).concat(), at(300), &mut svc).concat();
    assert_eq!(client_in(&mut c, &answer, at(300)), [ok(seq, &[10])]);
    e.calls += 1;
    e.link.frames_out += 2;
    e.link.frames_in += 1;
    assert_counted!(c.stats(), e, "cancel too late");
}

// ---------------------------------------------------------------------------
// Through the drivers, over a loopback link.

#[cfg(all(feature = "builtins", feature = "stats"))]
#[test]
fn over_a_link_server_stats_reports_the_counters_before_its_own_answer() {
    use wirecall::Call as _;
    let (host, _demo, server) = common::serve_demo();
    let mut client = wirecall::Client::new(host, StdClock::new());
    assert_eq!(client.call::<_, i32>(common::demo::methods::add, &(2, 3)), Ok(5));
    assert_eq!(client.ping(), Ok(()));
    let mut e = ServerStats::ZERO;
    e.hellos = 1;
    e.link.frames_in = 4; // Hello, add, ping, stats
    e.link.frames_out = 3; // Welcome, two Replies
    e.dispatched = 2; // add, ping
    assert_eq!(client.server_stats(), Ok(e));
    let mut c = ClientStats::ZERO;
    c.calls = 3;
    c.sessions = 1;
    c.link.frames_out = 4;
    c.link.frames_in = 4;
    assert_eq!(client.stats(), c);
    drop(client);
    e.link.frames_out += 1;
    e.dispatched += 1;
    assert_eq!(server.join().unwrap(), e);
}

// ---------------------------------------------------------------------------
// Wrapping at 2^32.

#[test]
fn dropped_sums_the_drop_counters_wrapping() {
    let mut link = LinkStats::ZERO;
    link.dropped_crc = u32::MAX;
    link.dropped_cobs = 2;
    assert_eq!(link.dropped(), 1);
}

/// Every counter but `events_missed` wraps: 2^32 retries read 0. Slow in a
/// debug build: `cargo test --release --test counters -- --ignored`.
#[cfg(feature = "stats")]
#[test]
#[ignore = "2^32 increments"]
fn counters_wrap_at_2_pow_32() {
    let mut c = Cm::new();
    for _ in 0..=u32::MAX {
        c.count_retry();
    }
    assert_eq!(c.stats().retries, 0);
    c.count_retry();
    assert_eq!(c.stats().retries, 1);
}
