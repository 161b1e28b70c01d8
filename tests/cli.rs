//! The `wirecall` command-line client against the demo service over TCP (the
//! `tcp_server` example's service, served in this process on a free port).

use std::net::{SocketAddr, TcpListener};
use std::sync::OnceLock;

use assert_cmd::Command;
use wirecall::StdClock;
use wirecall::demo::{Board, demo};
use wirecall::link::tcp;

/// The address of a demo server shared by the tests; each test gets its own connection, so its own session.
fn server() -> SocketAddr {
    static ADDR: OnceLock<SocketAddr> = OnceLock::new();
    *ADDR.get_or_init(|| {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || tcp::serve(listener, 64, || demo::Dispatcher(Board::new(StdClock::new()))));
        addr
    })
}

fn wirecall(args: &[&str]) -> Command {
    let mut cmd = Command::cargo_bin("wirecall").unwrap();
    cmd.arg("--tcp").arg(server().to_string()).args(args);
    cmd
}

fn stdout_of(args: &[&str]) -> String {
    let out = wirecall(args).assert().success().get_output().stdout.clone();
    String::from_utf8(out).unwrap()
}

/// Runs and checks the exit code; returns stderr, which must be one line.
fn fails_with(args: &[&str], code: i32) -> String {
    let out = wirecall(args).assert().code(code).get_output().clone();
    assert!(out.stdout.is_empty(), "nothing on stdout");
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "one readable line: {err}");
    err
}

#[test]
fn ls_lists_every_method_with_its_signature() {
    let fingerprint = wirecall::demo::demo::DESCRIPTION.fingerprint();
    let out = stdout_of(&["ls"]);
    let expected = format!(
        "demo 1.0.0 (fingerprint {fingerprint})\n\
         \x20    1  greet(name: String) -> String\n\
         \x20    2  add(a: i32, b: i32) -> i32     idempotent\n\
         \x20    3  bump() -> u32\n\
         \x20    4  slow(ms: u32) -> u32\n"
    );
    assert_eq!(out, expected);
}

#[test]
fn describe_shows_a_method_and_its_schemas() {
    assert_eq!(
        stdout_of(&["describe", "add"]),
        "add(a: i32, b: i32) -> i32\n  id:        2\n  flags:     idempotent\n  arguments: (a: i32, b: i32)\n  returns:   i32\n"
    );
    let json: serde_json::Value = serde_json::from_str(&stdout_of(&["describe", "--json"])).unwrap();
    assert_eq!(json["name"], "demo");
    assert_eq!(json["methods"][1]["args"]["ty"]["Struct"][1]["name"], "b");
    assert_eq!(stdout_of(&["describe"]).matches("  id:").count(), 4);
}

#[test]
fn call_translates_json_both_ways() {
    assert_eq!(stdout_of(&["call", "add", "[2,3]"]), "5\n");
    assert_eq!(stdout_of(&["call", "add", r#"{"a": -7, "b": 3}"#]), "-4\n");
    assert_eq!(stdout_of(&["call", "greet", r#"["Ada"]"#]), "\"Hello Ada\"\n");
    assert_eq!(stdout_of(&["call", "bump"]), "1\n", "a new connection is a new board");
}

#[test]
fn an_unknown_method_is_not_executed() {
    let err = fails_with(&["call", "nope", "[]"], 1);
    assert_eq!(err, "wirecall: `demo` has no method `nope` (not executed; `wirecall ls` lists them)\n");
    fails_with(&["describe", "nope"], 1);
}

#[test]
fn arguments_that_do_not_fit_are_a_usage_error() {
    let err = fails_with(&["call", "add", r#"[2, "x"]"#], 2);
    assert_eq!(err, "wirecall: argument `b` of add(a: i32, b: i32) -> i32: \"x\" does not fit i32\n");
    fails_with(&["call", "add", "[2]"], 2);
    fails_with(&["call", "add", "not json"], 2);
}

#[test]
fn a_call_that_outlives_its_deadline_is_outcome_unknown() {
    let err = fails_with(&["--timeout", "200", "call", "slow", "[1000]"], 3);
    assert_eq!(err, "wirecall: slow: no reply before the deadline: outcome unknown\n");
}

#[test]
fn no_server_is_not_executed() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let out = Command::cargo_bin("wirecall").unwrap().args(["--tcp", &addr.to_string(), "ping"]).assert().code(1);
    let err = String::from_utf8(out.get_output().stderr.clone()).unwrap();
    assert!(err.starts_with(&format!("wirecall: cannot connect to {addr}: ")), "{err}");
}

#[test]
fn usage_errors_exit_2_and_help_lists_the_exit_codes() {
    Command::cargo_bin("wirecall").unwrap().arg("ls").assert().code(2);
    Command::cargo_bin("wirecall").unwrap().args(["--tcp", "x:1", "--serial", "/dev/null", "ls"]).assert().code(2);
    let help = Command::cargo_bin("wirecall").unwrap().arg("--help").assert().success().get_output().stdout.clone();
    let help = String::from_utf8(help).unwrap();
    for line in ["0  success", "1  not executed", "2  usage error", "3  outcome unknown", "4  executed, value lost"] {
        assert!(help.contains(line), "help lists `{line}`:\n{help}");
    }
}

#[test]
fn ping_stats_and_bench() {
    assert!(stdout_of(&["ping"]).starts_with("pong in "));
    let stats: serde_json::Value = serde_json::from_str(&stdout_of(&["stats"])).unwrap();
    assert_eq!(stats["hellos"], 1, "{stats}");
    let out = stdout_of(&["bench", "add", "[2,3]", "-n", "200"]);
    let mut lines = out.lines();
    let first = lines.next().unwrap();
    assert!(first.starts_with("add: 200 calls in ") && first.ends_with(" calls/s"), "{out}");
    let second = lines.next().unwrap();
    assert!(second.starts_with("latency: p50 ") && second.contains(", p99 "), "{out}");
    assert_eq!(lines.next(), None, "no failures reported: {out}");
}
