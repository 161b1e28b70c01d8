//! A TCP server under attack (issue #12): a thousand idle connections, idle
//! and half frames timed out, a client that never reads, no file descriptor
//! left, handlers that panic, a thousand connections opened and closed, a
//! session taken over again and again while its call runs. After each, a new client's `add(2, 3)` is
//! answered within seconds, and the server's threads are back to their number
//! when idle.
//!
//! The server runs in a child process (this test binary again, running only
//! `server_process`), so that its threads (`/proc/<pid>/task`) and file
//! descriptors are its own. The file limit is raised so that the thousand
//! connections really open, and the test checks that they did.
#![cfg(target_os = "linux")]

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use wirecall::demo::{Board, demo};
use wirecall::link::tcp::{self, ServeConfig, TcpServer};
use wirecall::wire::{encode_hello, encode_request};
use wirecall::{Dispatch, Refused, Replied, Responder, StdClock};

/// Set in the child's environment: the server's settings.
const SERVER_ENV: &str = "WIRECALL_TCP_ATTACK_SERVER";
/// What the child prints, then its address.
const READY: &str = "wirecall-attack-server listening on";
/// `slow(PANIC_MS)` panics in the child's service.
const PANIC_MS: u32 = 666;
/// In the panic message, so the child's hook keeps quiet about it.
const PANIC_MARK: &str = "wirecall-test: a handler panics";
/// How long a new client may take for its `add(2, 3)`.
const ANSWER_WITHIN: Duration = Duration::from_secs(3);

/// The demo board, whose `slow(666)` panics.
struct Panicky(demo::Dispatcher<Board<StdClock>>);

impl Dispatch for Panicky {
    fn dispatch(&mut self, method: u16, args: &[u8], responder: Responder<'_>) -> Result<Replied, Refused> {
        if method == demo::ids::slow && postcard::from_bytes::<(u32,)>(args) == Ok((PANIC_MS,)) {
            panic!("{PANIC_MARK}");
        }
        self.0.dispatch(method, args, responder)
    }

    #[cfg(feature = "describe")]
    fn document(&self) -> Option<&'static wirecall::describe::Document> {
        self.0.document()
    }
}

/// The server, when this binary runs as the child (the other tests start it
/// with `--ignored`); ignored in a normal run, so it never counts as a pass.
#[test]
#[ignore = "the child server process the other tests start"]
fn server_process() {
    let Ok(spec) = std::env::var(SERVER_ENV) else { return };
    let ms: Vec<u64> = spec.split(',').map(|n| n.parse().unwrap()).collect();
    let &[max, idle, frame, write, files] = &ms[..] else { panic!("bad {SERVER_ENV}: {spec}") };
    if files > 0 {
        set_file_limit(files);
    }
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info.payload().downcast_ref::<String>().map(String::as_str).unwrap_or("");
        if !message.contains(PANIC_MARK) {
            hook(info);
        }
    }));
    // The parent holds our stdin: when it ends, so do we.
    std::thread::spawn(|| {
        let _ = std::io::stdin().read(&mut [0u8; 1]);
        std::process::exit(0);
    });
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    println!("{READY} {}", listener.local_addr().unwrap());
    std::io::stdout().flush().unwrap();
    let board = Arc::new(Mutex::new(Panicky(demo::Dispatcher(Board::new(StdClock::new())))));
    let config = ServeConfig::default()
        .max_connections(max as usize)
        .idle_timeout(Some(Duration::from_millis(idle)))
        .frame_timeout(Duration::from_millis(frame))
        .write_timeout(Duration::from_millis(write));
    TcpServer::shared(board, config).serve(listener).unwrap();
}

/// A server in a child process, killed when dropped.
struct Server {
    child: Child,
    addr: SocketAddr,
    /// Its threads with no connection.
    idle_threads: usize,
}

impl Server {
    /// Starts a server: at most `max` connections; idle, frame and write timeouts in milliseconds.
    fn start(max: usize, idle_ms: u64, frame_ms: u64, write_ms: u64) -> Server {
        Self::start_with_files(max, idle_ms, frame_ms, write_ms, 0)
    }

    /// Starts a server that may open `files` files at most (0: as many as this process).
    fn start_with_files(max: usize, idle_ms: u64, frame_ms: u64, write_ms: u64, files: u64) -> Server {
        raise_file_limit(4096);
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["server_process", "--exact", "--ignored", "--nocapture", "--test-threads=1"])
            .env(SERVER_ENV, format!("{max},{idle_ms},{frame_ms},{write_ms},{files}"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let addr = loop {
            let line = lines.next().expect("the server process ended").unwrap();
            // (After the harness's "test server_process ... ", on the same line.)
            if let Some(at) = line.find(READY) {
                break line[at + READY.len()..].trim().parse().unwrap();
            }
        };
        std::thread::spawn(move || lines.for_each(drop));
        let mut server = Server { child, addr, idle_threads: 0 };
        server.assert_serves();
        server.idle_threads = server.steady_threads();
        server
    }

    /// The server's threads now.
    fn threads(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/task", self.child.id())).unwrap().count()
    }

    /// The number of threads once it stays the same for 300 ms.
    fn steady_threads(&self) -> usize {
        let until = Instant::now() + Duration::from_secs(10);
        let (mut last, mut since) = (self.threads(), Instant::now());
        while since.elapsed() < Duration::from_millis(300) {
            assert!(Instant::now() < until, "the server's threads never settled");
            std::thread::sleep(Duration::from_millis(20));
            let now = self.threads();
            if now != last {
                (last, since) = (now, Instant::now());
            }
        }
        last
    }

    /// Waits until the server has `n` threads.
    fn wait_for_threads(&self, n: usize, within: Duration, what: &str) {
        let until = Instant::now() + within;
        loop {
            let now = self.threads();
            if now == n {
                return;
            }
            assert!(Instant::now() < until, "{what}: {now} threads, not {n}, after {within:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until the server is back to its idle threads.
    fn wait_until_idle(&self) {
        self.wait_for_threads(self.idle_threads, Duration::from_secs(10), "back to idle");
    }

    /// A new client's `add(2, 3)` is answered within [`ANSWER_WITHIN`].
    fn assert_serves(&self) {
        let started = Instant::now();
        let mut board = demo::Client(tcp::connect(self.addr).unwrap());
        board.0.set_timeout(ANSWER_WITHIN);
        assert_eq!(board.add(2, 3), Ok(5), "a new client is served");
        assert!(board.bump().is_ok(), "the shared board still counts");
        assert!(started.elapsed() < ANSWER_WITHIN, "answered after {:?}", started.elapsed());
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Raises this process's limit on open files (the server inherits it) to `want`.
fn raise_file_limit(want: u64) {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes the limits into the struct it is given.
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) }, 0);
    if limit.rlim_cur >= want {
        return;
    }
    assert!(limit.rlim_max >= want, "RLIMIT_NOFILE allows {} open files; this test needs {want}", limit.rlim_max);
    limit.rlim_cur = want;
    // SAFETY: setrlimit reads the struct it is given.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) }, 0);
}

/// Sets this process's limit on open files to `files`.
fn set_file_limit(files: u64) {
    let limit = libc::rlimit { rlim_cur: files, rlim_max: files.max(4096) };
    // SAFETY: setrlimit reads the struct it is given.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) }, 0);
}

/// Whether the server closed `stream` (it never sends on these connections).
fn closed_by_server(stream: &TcpStream) -> bool {
    stream.set_nonblocking(true).unwrap();
    let closed = match (&*stream).read(&mut [0u8; 64]) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => e.kind() != ErrorKind::WouldBlock,
    };
    stream.set_nonblocking(false).unwrap();
    closed
}

/// Waits until the server has closed every one of `streams`; returns how long it took.
fn wait_until_closed(streams: &[TcpStream], within: Duration, what: &str) -> Duration {
    let started = Instant::now();
    loop {
        let open = streams.iter().filter(|s| !closed_by_server(s)).count();
        if open == 0 {
            return started.elapsed();
        }
        assert!(started.elapsed() < within, "{what}: {open} still open after {within:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn hello(seq: u16, client_id: u32) -> Vec<u8> {
    let mut buf = [0u8; 16];
    encode_hello(seq, client_id, true, &mut buf).unwrap().to_vec()
}

fn resume_hello(seq: u16, client_id: u32) -> Vec<u8> {
    let mut buf = [0u8; 16];
    encode_hello(seq, client_id, false, &mut buf).unwrap().to_vec()
}

fn slow_request(seq: u16, ms: u32) -> Vec<u8> {
    let mut buf = [0u8; 32];
    encode_request(seq, demo::ids::slow, &(ms,), &mut buf).unwrap().to_vec()
}

fn greet_request(seq: u16, name: &str) -> Vec<u8> {
    let mut buf = [0u8; 128];
    encode_request(seq, demo::ids::greet, &(name,), &mut buf).unwrap().to_vec()
}

#[test]
fn a_thousand_idle_connections_are_held_and_a_new_client_still_gets_in() {
    let started = Instant::now();
    let server = Server::start(1000, 60_000, 5_000, 5_000);
    let mut idle = Vec::new();
    // A hundred at a time, each batch accepted before the next, so that no
    // connection waits for a second SYN because the listen queue (128) is full.
    for _ in 0..10 {
        idle.extend((0..100).map(|_| TcpStream::connect(server.addr).unwrap()));
        let what = format!("{} connections served at once", idle.len());
        server.wait_for_threads(server.idle_threads + idle.len(), Duration::from_secs(10), &what);
    }
    // The house is full: the new client takes the place of the idlest connection.
    server.assert_serves();
    let closed = idle.iter().filter(|s| closed_by_server(s)).count();
    assert_eq!(closed, 1, "one idle connection made room for the new client");
    drop(idle);
    server.wait_until_idle();
    server.assert_serves();
    println!("1,000 idle connections: {:?}", started.elapsed());
}

#[test]
fn idle_connections_are_closed_after_the_idle_timeout() {
    let started = Instant::now();
    let server = Server::start(64, 1_000, 5_000, 5_000);
    let opened = Instant::now();
    let mut conns: Vec<TcpStream> = (0..20).map(|_| TcpStream::connect(server.addr).unwrap()).collect();
    // Half of them open a session first, then fall silent.
    for (i, conn) in conns.iter_mut().enumerate().filter(|(i, _)| i % 2 == 0) {
        conn.write_all(&hello(0, 0x1d1e_0000 + i as u32)).unwrap();
    }
    server.wait_for_threads(server.idle_threads + 20, Duration::from_secs(5), "20 connections served");
    wait_until_closed(&conns, Duration::from_secs(5), "idle connections");
    let took = opened.elapsed();
    assert!(took >= Duration::from_millis(900), "closed only once idle for the timeout: {took:?}");
    server.wait_until_idle();
    server.assert_serves();
    println!("idle timeout: {:?}", started.elapsed());
}

#[test]
fn half_frames_are_closed_after_the_frame_timeout() {
    let started = Instant::now();
    let server = Server::start(64, 60_000, 1_000, 5_000);
    // Half a frame: a COBS code byte promising four data bytes, and two of them.
    let halves: Vec<TcpStream> = (0..64)
        .map(|_| {
            let mut s = TcpStream::connect(server.addr).unwrap();
            s.write_all(&[0x05, 0x11, 0x22]).unwrap();
            s
        })
        .collect();
    // Half of them go on, one byte every 300 ms: never a pause of the frame gap,
    // never the end of a frame.
    let drips: Vec<TcpStream> = halves.iter().step_by(2).map(|s| s.try_clone().unwrap()).collect();
    let dripping = std::thread::spawn(move || {
        let mut drips = drips;
        let until = Instant::now() + Duration::from_secs(10);
        while !drips.is_empty() && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(300));
            drips.retain_mut(|s| s.write_all(&[0x33]).is_ok());
        }
    });
    server.wait_for_threads(server.idle_threads + 64, Duration::from_secs(5), "64 connections served");
    server.assert_serves();
    let took = wait_until_closed(&halves, Duration::from_secs(5), "half frames");
    assert!(took < Duration::from_secs(3), "{took:?}");
    dripping.join().unwrap();
    server.wait_until_idle();
    server.assert_serves();
    println!("64 half frames: {:?}", started.elapsed());
}

#[test]
fn a_client_that_never_reads_is_closed_after_the_write_timeout() {
    let started = Instant::now();
    let server = Server::start(16, 60_000, 5_000, 500);
    let mut attacker = TcpStream::connect(server.addr).unwrap();
    attacker.set_write_timeout(Some(Duration::from_millis(200))).unwrap();
    // Requests and more requests, whose answers it never reads.
    let flood = std::thread::spawn(move || {
        let name = "x".repeat(32);
        let mut batch = hello(0xffff, 0xa77a_c4e5);
        let mut seq = 0u16;
        let mut sent = 0usize;
        let until = Instant::now() + Duration::from_secs(20);
        loop {
            for _ in 0..500 {
                batch.extend(greet_request(seq, &name));
                seq = seq.wrapping_add(1);
            }
            let mut rest = &batch[..];
            while !rest.is_empty() {
                assert!(Instant::now() < until, "the server still takes requests after 20 s ({sent} bytes)");
                match attacker.write(rest) {
                    Ok(n) => {
                        rest = &rest[n..];
                        sent += n;
                    }
                    Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                    Err(_) => return sent,
                }
            }
            batch.clear();
        }
    });
    std::thread::sleep(Duration::from_millis(300));
    server.assert_serves();
    let sent = flood.join().unwrap();
    assert!(sent > 100_000, "the server was flooded before it closed the connection: {sent} bytes");
    server.wait_until_idle();
    server.assert_serves();
    println!("a client that never reads ({sent} bytes of requests): {:?}", started.elapsed());
}

#[test]
fn running_out_of_file_descriptors_is_survived() {
    let started = Instant::now();
    // 64 files for the server, and room for 1,000 connections: it runs out of files first.
    let mut server = Server::start_with_files(1000, 60_000, 5_000, 5_000, 64);
    let idle: Vec<TcpStream> = (0..100).map(|_| TcpStream::connect(server.addr).unwrap()).collect();
    // It takes connections until it has no file left, then waits.
    let taken = server.steady_threads() - server.idle_threads;
    assert!((32..64).contains(&taken), "{taken} connections served with 64 files");
    assert!(server.child.try_wait().is_ok_and(|exited| exited.is_none()), "the server is still running");
    // Once the files are back, it serves again.
    drop(idle);
    server.assert_serves();
    server.wait_until_idle();
    println!("no file descriptor left: {:?}", started.elapsed());
}

#[test]
fn handlers_that_panic_release_their_connections() {
    let started = Instant::now();
    let server = Server::start(4, 60_000, 5_000, 5_000);
    for _ in 0..12 {
        let mut board = demo::Client(tcp::connect(server.addr).unwrap());
        board.0.set_timeout(Duration::from_secs(2));
        let error = board.slow(PANIC_MS).unwrap_err();
        assert!(error.may_have_executed(), "a handler that panicked may have done anything: {error}");
    }
    server.assert_serves();
    server.wait_until_idle();
    println!("12 panics: {:?}", started.elapsed());
}

#[test]
fn takeovers_while_a_call_runs_stay_within_max_connections() {
    let started = Instant::now();
    let server = Server::start(4, 60_000, 5_000, 5_000);
    // A client's call runs for 3 s ...
    let mut first = TcpStream::connect(server.addr).unwrap();
    first.write_all(&[hello(0, 0x7a4e_0001), slow_request(1, 3000)].concat()).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    // ... while 40 connections say Hello with its client id, one after another,
    // each taking the session over from the one before.
    let takers: Vec<TcpStream> = (0..40u16)
        .map(|i| {
            let mut s = TcpStream::connect(server.addr).unwrap();
            s.write_all(&resume_hello(i + 1, 0x7a4e_0001)).unwrap();
            std::thread::sleep(Duration::from_millis(10));
            s
        })
        .collect();
    let threads = server.steady_threads();
    assert!(
        threads <= server.idle_threads + 4,
        "{} connection threads with max_connections(4)",
        threads - server.idle_threads
    );
    drop((first, takers));
    server.wait_until_idle();
    server.assert_serves();
    println!("40 takeovers during a call: {:?}", started.elapsed());
}

#[test]
fn a_thousand_connections_opened_and_closed() {
    let started = Instant::now();
    let server = Server::start(32, 60_000, 5_000, 5_000);
    for i in 0..1000u32 {
        let mut s = TcpStream::connect(server.addr).unwrap();
        match i % 4 {
            0 => {}
            1 => s.write_all(&hello(0, i)).unwrap(),
            2 => s.write_all(&[&hello(0, i)[..], &greet_request(1, "Ada")[..], &[0x07, 0x11][..]].concat()).unwrap(),
            // Closed with a reset rather than a FIN.
            _ => reset_on_close(&s),
        }
        drop(s);
        if i % 100 == 99 {
            // The server has caught up (and the listen queue has room again).
            server.wait_until_idle();
        }
    }
    server.assert_serves();
    server.wait_until_idle();
    println!("1,000 connections opened and closed: {:?}", started.elapsed());
}

/// Makes closing `s` send a reset.
fn reset_on_close(s: &TcpStream) {
    use std::os::fd::AsRawFd;
    let linger = libc::linger { l_onoff: 1, l_linger: 0 };
    // SAFETY: setsockopt reads `size_of::<linger>()` bytes from the pointer it is given.
    let set = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&raw const linger).cast(),
            size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    assert_eq!(set, 0);
}
