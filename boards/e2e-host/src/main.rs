//! Boots a wirecall firmware image in QEMU (LM3S6965, UART0 on a local TCP
//! socket) and checks the demo service end to end. Exits 0 if every check
//! passes. QEMU is always stopped: by a guard when this program ends in any way,
//! and by QEMU's own `-no-reboot` plus the `timeout` the script wraps us in.
//!
//! Usage: wirecall-e2e-host FIRMWARE.elf

use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use wirecall::demo::demo;
use wirecall::link::IoLink;
use wirecall::machine::ClientMachine;
use wirecall::wire::{Decoded, Frame, FrameDecoder, encode_request};
use wirecall::{Call, Client, Error, Executed, Method, RetryPolicy, Status, StdClock};

type Board = demo::Client<Client<IoLink<TcpStream>, StdClock>>;

/// Kills QEMU when dropped, whatever happened.
struct Qemu(Child);

impl Drop for Qemu {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn boot(firmware: &str) -> Result<(Qemu, TcpStream), String> {
    let port = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map_err(|e| e.to_string())?.port();
    let child = Command::new("qemu-system-arm")
        .args(["-M", "lm3s6965evb", "-display", "none", "-monitor", "none", "-no-reboot"])
        .args(["-semihosting-config", "enable=on,target=native"])
        .args(["-serial", &format!("tcp:127.0.0.1:{port},server=on,wait=on,nodelay=on")])
        .args(["-kernel", firmware])
        .stdin(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start qemu-system-arm: {e}"))?;
    let qemu = Qemu(child);
    let started = Instant::now();
    loop {
        match TcpStream::connect(("127.0.0.1", port)) {
            Ok(stream) => {
                stream.set_nodelay(true).map_err(|e| e.to_string())?;
                return Ok((qemu, stream));
            }
            Err(_) if started.elapsed() < Duration::from_secs(20) => std::thread::sleep(Duration::from_millis(50)),
            Err(e) => return Err(format!("QEMU's UART socket did not open: {e}")),
        }
    }
}

fn client(stream: TcpStream, life: u32) -> Board {
    let machine = ClientMachine::with_identity(life, 0);
    let mut client = Client::with_machine(IoLink::new(stream), StdClock::new(), machine);
    client.set_timeout(Duration::from_secs(3));
    demo::Client(client)
}

struct Checks {
    failed: usize,
}

impl Checks {
    fn check(&mut self, what: &str, ok: bool, detail: impl std::fmt::Debug) {
        if ok {
            println!("ok   {what}: {detail:?}");
        } else {
            println!("FAIL {what}: {detail:?}");
            self.failed += 1;
        }
    }
}

/// Reads one whole frame from the raw stream.
fn read_frame(stream: &mut TcpStream) -> Result<Vec<u8>, String> {
    stream.set_read_timeout(Some(Duration::from_secs(3))).map_err(|e| e.to_string())?;
    let mut decoder = FrameDecoder::<256>::new();
    let mut byte = [0u8; 1];
    loop {
        stream.read_exact(&mut byte).map_err(|e| format!("reading a frame: {e}"))?;
        if let (_, Some(Decoded::Frame)) = decoder.feed(&byte) {
            return Ok(decoder.frame().to_vec());
        }
    }
}

fn run(firmware: &str) -> Result<usize, String> {
    let (_qemu, stream) = boot(firmware)?;
    let mut c = Checks { failed: 0 };
    let mut board = client(stream, 1);

    let r = board.check_compatible().map_err(|e| e.to_string());
    c.check("describe: the board serves this very demo service", r.is_ok(), r);
    let r = board.greet("Ada");
    c.check("greet(\"Ada\")", r.as_ref().is_ok_and(|s| s.as_str() == "Hello Ada"), &r);
    let r = board.add(2, 3);
    c.check("add(2, 3)", r == Ok(5), r);
    let r = board.add(i32::MAX, 1);
    c.check("add(i32::MAX, 1) wraps", r == Ok(i32::MIN), r);
    let first = board.bump();
    let second = board.bump();
    c.check("bump() twice", first.is_ok() && second == first.map(|n| n + 1), (first, second));
    let r = board.slow(20);
    c.check("slow(20)", r == Ok(20), r);
    // A handler slower than every retry attempt, within the deadline: the call
    // lives until its deadline, and the board's clock keeps real time.
    board.0.set_timeout(Duration::from_secs(5));
    let started = Instant::now();
    let r = board.slow(3000);
    let took = started.elapsed();
    c.check(
        "slow(3000) with a 5 s deadline: 3000, after 3 s",
        r == Ok(3000) && took >= Duration::from_millis(2990),
        (r, took, board.0.stats().retries),
    );
    board.0.set_timeout(Duration::from_secs(3));

    let r = board.0.call::<_, u32>(Method::new(99), &());
    c.check(
        "unknown method 99: refused, not executed",
        r == Err(Error::Status(Status::Unimplemented)) && r.is_err_and(|e| e.executed() == Executed::No),
        r,
    );

    // Garbage before a call: terminated, then glued to the request (retransmission recovers).
    board.0.link_mut().get_mut().write_all(&[0x42, 0x13, 0x99, 0x05, 0x00]).map_err(|e| e.to_string())?;
    let r = board.add(20, 22);
    c.check("add after garbage ending in 0x00", r == Ok(42), r);
    board.0.link_mut().get_mut().write_all(&[0x31, 0x32, 0x33]).map_err(|e| e.to_string())?;
    let r = board.add(20, 23);
    c.check("add after garbage glued to the request", r == Ok(43), (r, board.0.stats().retries));

    // A deadline shorter than the handler: unknown; the late reply is then discarded.
    board.0.set_timeout(Duration::from_millis(300));
    board.0.set_retry_policy(RetryPolicy::NONE);
    let r = board.slow(2000);
    c.check("slow(2000) with a 300 ms deadline: outcome unknown", r == Err(Error::Timeout), r);
    // Generous: the board is busy for 2 s first, and a loaded CI machine slows QEMU.
    board.0.set_timeout(Duration::from_secs(20));
    let r = board.add(1, 1);
    let late = board.0.stats().late_replies;
    c.check("next call after the timeout", r == Ok(2), (r, late));

    // A retried non-idempotent call: the same bump request, same sequence number, sent twice.
    let before = board.bump().map_err(|e| format!("bump: {e}"))?;
    let seq = board.0.machine().next_seq();
    let (link, _) = board.0.into_parts();
    let mut stream = link.into_inner();
    let mut buf = [0u8; 32];
    let request = encode_request(seq, demo::ids::bump, &(), &mut buf).map_err(|_| "encode")?.to_vec();
    stream.write_all(&[request.as_slice(), &request].concat()).map_err(|e| e.to_string())?;
    let answers = [read_frame(&mut stream)?, read_frame(&mut stream)?];
    let values: Vec<_> = answers.iter().map(|a| Frame::parse(a).map(|f| format!("{f:?}"))).collect();
    c.check("the same bump request twice gets one answer, twice", answers[0] == answers[1], &values);
    let mut board = client(stream, 2);
    let after = board.bump();
    c.check("the counter advanced once for the retried call", after == Ok(before + 2), (before, after));
    let server_seen = board.0.stats().sessions;
    c.check("a fresh session for the new client", server_seen == 1, server_seen);

    Ok(c.failed)
}

fn main() {
    let Some(firmware) = std::env::args().nth(1) else {
        eprintln!("usage: wirecall-e2e-host FIRMWARE.elf");
        std::process::exit(2);
    };
    println!("== {firmware}");
    match run(&firmware) {
        Ok(0) => println!("all checks passed"),
        Ok(n) => {
            println!("{n} checks failed");
            std::process::exit(1);
        }
        Err(e) => {
            println!("error: {e}");
            std::process::exit(1);
        }
    }
}
