//! Interceptors: server-side hooks that can refuse a call before it runs, and
//! client-side hooks that see every call and its outcome.

mod common;

use std::sync::{Arc, Mutex};

use common::{Demo, demo};
use wirecall::link::loopback;
use wirecall::machine::{Intercepted, Interceptor, builtin};
use wirecall::{Call, Client, ClientHook, Error, Executed, Hooked, Method, Refused, Server, Status, StdClock};

/// Refuses the methods in `deny` with `refusal`; records what it saw.
#[derive(Clone)]
struct Guard {
    deny: Vec<u16>,
    refusal: Refused,
    seen: Arc<Mutex<Vec<String>>>,
}

impl Interceptor for Guard {
    fn before(&mut self, method: u16, args: &[u8]) -> Result<(), Refused> {
        self.seen.lock().unwrap().push(format!("before {method} {args:02x?}"));
        if self.deny.contains(&method) { Err(self.refusal) } else { Ok(()) }
    }
    fn after(&mut self, method: u16, outcome: Result<(), Refused>) {
        self.seen.lock().unwrap().push(format!("after {method} {outcome:?}"));
    }
}

fn serve(guard: Guard) -> (demo::Client<Client<loopback::End, StdClock>>, Demo) {
    let (host, board) = loopback::pair();
    let demo = Demo::default();
    let service = Intercepted::new(demo::Dispatcher(demo.clone()), guard);
    std::thread::spawn(move || Server::new(board, service, StdClock::new()).serve());
    (demo::Client(Client::new(host, StdClock::new())), demo)
}

fn guard(deny: &[u16], refusal: Refused) -> Guard {
    Guard { deny: deny.to_vec(), refusal, seen: Arc::default() }
}

#[test]
fn a_refusal_is_a_status_that_proves_the_call_did_not_run() {
    for (refusal, status) in [
        (Refused::PermissionDenied, Status::PermissionDenied),
        (Refused::Unauthenticated, Status::Unauthenticated),
        (Refused::Unavailable, Status::Unavailable),
    ] {
        let (mut board, demo) = serve(guard(&[demo::ids::bump], refusal));
        let error = board.bump().unwrap_err();
        assert_eq!(error, Error::Status(status));
        assert_eq!(error.executed(), Executed::No);
        assert_eq!(demo.runs(), 0, "the handler did not run");
        assert_eq!(board.add(2, 3), Ok(5), "other methods still run");
        assert_eq!(demo.runs(), 1);
    }
}

#[test]
fn unavailable_is_tried_again_as_a_new_call_as_many_times_as_the_policy_allows() {
    let g = guard(&[demo::ids::bump], Refused::Unavailable);
    let seen = g.seen.clone();
    let (mut board, _demo) = serve(g);
    assert_eq!(board.bump(), Err(Error::Status(Status::Unavailable)));
    let attempts = seen.lock().unwrap().iter().filter(|s| s.starts_with("before 3")).count();
    assert_eq!(attempts, usize::from(wirecall::RetryPolicy::DEFAULT.attempts));
}

#[test]
fn the_interceptor_sees_arguments_and_outcomes_of_every_call_once() {
    let g = guard(&[demo::ids::bump], Refused::PermissionDenied);
    let seen = g.seen.clone();
    let (mut board, _demo) = serve(g);
    assert_eq!(board.add(2, 3), Ok(5));
    let _ = board.bump();
    let _ = board.0.call::<_, u32>(Method::new(99), &());
    assert_eq!(
        *seen.lock().unwrap(),
        [
            "before 2 [04, 06]",
            "after 2 Ok(())",
            "before 3 []",
            "after 3 Err(PermissionDenied)",
            "before 99 []",
            "after 99 Err(UnknownMethod)",
        ]
    );
}

#[test]
fn built_in_methods_pass_through_the_interceptor() {
    let (mut board, _demo) = serve(guard(&[builtin::PING], Refused::Unauthenticated));
    assert_eq!(board.0.ping(), Err(Error::Status(Status::Unauthenticated)));
}

#[derive(Default, Clone)]
struct Record(Arc<Mutex<Vec<String>>>);

impl ClientHook for Record {
    fn before(&mut self, method: Method) {
        self.0.lock().unwrap().push(format!("before {}", method.id));
    }
    fn after(&mut self, method: Method, outcome: Result<(), &Error>) {
        self.0.lock().unwrap().push(format!("after {} {:?}", method.id, outcome.map_err(|e| e.executed())));
    }
}

#[test]
fn a_client_hook_sees_every_call_and_how_it_ended() {
    let (board, _demo) = serve(guard(&[demo::ids::bump], Refused::PermissionDenied));
    let record = Record::default();
    let mut board = demo::Client(Hooked::new(board.0, record.clone()));
    assert_eq!(board.greet("Ada").unwrap(), "Hello Ada");
    assert!(board.bump().is_err());
    assert_eq!(*record.0.lock().unwrap(), ["before 1", "after 1 Ok(())", "before 3", "after 3 Err(No)"]);
}

#[test]
fn a_call_the_server_refuses_itself_skips_before_and_reaches_after() {
    let g = guard(&[], Refused::PermissionDenied);
    let seen = g.seen.clone();
    let (board, _demo) = serve(g);
    let (link, clock) = board.0.into_parts();
    // A request longer than the server's 256-byte receive buffer: a client that
    // read the server's capabilities refuses it itself, sending nothing.
    let mut board = demo::Client(Client::<_, _, 256, 512>::sized(link, clock));
    assert_eq!(board.echo(&[7; 300]), Err(Error::TooLargeForServer { len: 308, max: 256 }));
    assert!(seen.lock().unwrap().is_empty(), "nothing reached the server");
    // One that does not look (a client that predates capabilities) is refused by
    // the server: the interceptor's `before` is skipped, its `after` sees it.
    let (mut link, _) = board.0.into_parts();
    let mut buf = [0u8; 400];
    let request = wirecall::wire::encode_request(100, demo::ids::echo, &(&[7u8; 300][..],), &mut buf).unwrap();
    wirecall::embedded_io::Write::write_all(&mut link, request).unwrap();
    let answer = common::read_frame(&mut link);
    assert_eq!(
        wirecall::wire::Frame::parse(&answer),
        Ok(wirecall::wire::Frame::Status { seq: 100, status: Status::ResourceExhausted })
    );
    assert_eq!(*seen.lock().unwrap(), [format!("after {} Err(TooLarge)", demo::ids::echo)]);
}
