//! The built-in `describe` and the compatibility check, over loopback.
#![cfg(feature = "describe")]

mod common;

use common::{Demo, demo, serve_demo, spawn_sized_server};
use wirecall::describe::remote::{self, DescribeError, RemoteDescription};
use wirecall::link::loopback;
use wirecall::{Client, Error, Status, StdClock};

#[test]
fn describe_reports_every_method_with_its_schema() {
    let (host, _demo, _server) = serve_demo();
    let mut client = Client::new(host, StdClock::new());
    let device = remote::fetch(&mut client).unwrap();
    assert_eq!(device, RemoteDescription::from(&demo::DESCRIPTION));
    assert_eq!(device.fingerprint(), demo::DESCRIPTION.fingerprint());
    let add = device.method("add").unwrap();
    assert_eq!(add.signature(), "add(a: i32, b: i32) -> i32");
    assert_eq!(device.method("divide").unwrap().id, 6);
    assert!(device.method("nope").is_none());
}

#[test]
fn describe_comes_in_chunks_that_fit_small_buffers() {
    // A server with a 64-byte transmit buffer and a client with a 48-byte
    // receive buffer still move the whole document (several hundred bytes).
    let (host, board) = loopback::pair();
    let _server = spawn_sized_server::<_, 64, 64>(board, Demo::default());
    let mut client: Client<_, _, 48, 64> = Client::sized(host, StdClock::new());
    let before = client.stats().calls;
    let device = remote::fetch(&mut client).unwrap();
    assert_eq!(device, RemoteDescription::from(&demo::DESCRIPTION));
    let doc_len = postcard::to_allocvec(&demo::DESCRIPTION).unwrap().len() as u64;
    let calls = u64::from(client.stats().calls - before);
    if cfg!(feature = "stats") {
        assert!(calls >= doc_len / 28, "{calls} chunks for {doc_len} bytes");
    }
}

#[test]
fn a_matching_stub_checks_in_one_call() {
    let (host, _demo, _server) = serve_demo();
    let mut board = demo::Client(Client::new(host, StdClock::new()));
    board.check_compatible().unwrap();
    assert_counted!(board.0.stats().calls, 1);
    assert_eq!(board.add(2, 3).unwrap(), 5);
}

mod changed {
    use wirecall::heapless::String;
    wirecall::service! {
        /// The test service with `add` taking a u32 and `bump` gone.
        pub mod demo {
            fn greet(name: &str) -> String<32> = 1;
            fn add(a: i32, b: u32) -> i32 = 2;
        }
    }
    wirecall::service! {
        /// The test service with `add` made idempotent.
        pub mod idem {
            fn greet(name: &str) -> String<32> = 1;
            fn add(a: i32, b: i32) -> i32 = 2, idempotent;
        }
    }
}

fn mismatch(error: DescribeError) -> String {
    match error {
        DescribeError::Incompatible { first_difference, ours, device } => {
            assert_ne!(ours, device);
            first_difference
        }
        other => panic!("expected a mismatch, got {other}"),
    }
}

#[test]
fn a_mismatch_names_the_first_difference() {
    let (host, demo, _server) = serve_demo();
    let mut board = changed::demo::Client(Client::new(host, StdClock::new()));
    let error = board.check_compatible().unwrap_err();
    let text = error.to_string();
    assert_eq!(
        mismatch(error),
        "method `add` arguments: ours are `(a: i32, b: u32)`, the device's are `(a: i32, b: i32)`"
    );
    assert!(text.starts_with("incompatible service (fingerprint "), "{text}");
    assert_eq!(demo.runs(), 0, "describe runs no handler");
}

#[test]
fn differences_in_flags_names_and_methods_are_named() {
    let ours = RemoteDescription::from(&demo::DESCRIPTION);
    let mut idem = RemoteDescription::from(&changed::idem::DESCRIPTION);
    idem.name = "demo".into();
    let mut device = ours.clone();
    device.methods.retain(|m| m.id != 3);
    assert_eq!(ours.first_difference(&device).unwrap(), "method `bump` (id 3): the device has no method with this id");
    assert_eq!(device.first_difference(&ours).unwrap(), "method `bump` (id 3): only the device has it");
    let mut device = ours.clone();
    device.methods[0].name = "hello".into();
    assert_eq!(ours.first_difference(&device).unwrap(), "method id 1: ours is `greet`, the device's is `hello`");
    let mut renamed = ours.clone();
    renamed.name = "other".into();
    assert_eq!(ours.first_difference(&renamed).unwrap(), "service: ours is `demo`, the device's is `other`");
    let mut idem_device = ours.clone();
    idem_device.methods.truncate(2);
    assert_eq!(
        idem.first_difference(&idem_device).unwrap(),
        "method `add`: ours is idempotent, the device's is not idempotent (flags 0x01 and 0x00)"
    );
    assert_eq!(ours.first_difference(&ours.clone()), None);
}

#[test]
fn a_server_without_a_description_answers_unimplemented() {
    struct Bare;
    impl wirecall::Dispatch for Bare {
        fn dispatch(
            &mut self,
            _: u16,
            _: &[u8],
            _: wirecall::Responder<'_>,
        ) -> Result<wirecall::Replied, wirecall::Refused> {
            Err(wirecall::Refused::UnknownMethod)
        }
    }
    let (host, board) = loopback::pair();
    std::thread::spawn(move || wirecall::Server::new(board, Bare, StdClock::new()).serve());
    let mut board = demo::Client(Client::new(host, StdClock::new()));
    match board.check_compatible() {
        Err(DescribeError::Call(Error::Status(Status::Unimplemented))) => {}
        other => panic!("{other:?}"),
    }
}
