//! `wirecall`: list, describe and call the methods of any wirecall device from
//! the shell, over TCP or a serial port, with no code generated for the device.
//! Arguments and values are JSON, translated through the schemas the device
//! reports with the built-in `describe` (feature `cli`).

mod bench;
mod json;
mod port;

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use wirecall::describe::remote::{self, DescribeError, RemoteDescription, RemoteMethod};
use wirecall::describe::{FLAG_IDEMPOTENT, FLAG_ONEWAY, FLAG_STREAM};
use wirecall::link::{IoLink, serial};
use wirecall::{Call, Client, Error, Executed, Link, StdClock};

const EXIT_CODES: &str = "\
Exit codes:
  0  success
  1  not executed: the call did not run (refused, no such method, or the link failed before sending)
  2  usage error: bad options, or JSON that does not fit the method's arguments
  3  outcome unknown: the call may or may not have run
  4  executed, value lost: the call ran but its value did not arrive whole";

#[derive(Parser)]
#[command(name = "wirecall", version, about = "Call the methods of a wirecall device from the shell.")]
#[command(after_help = EXIT_CODES)]
#[command(group = clap::ArgGroup::new("link").required(true).args(["tcp", "serial"]))]
struct Cli {
    /// Connect over TCP.
    #[arg(long, value_name = "HOST:PORT")]
    tcp: Option<String>,
    /// Connect over a serial port (8N1, no flow control).
    #[arg(long, value_name = "PATH")]
    serial: Option<String>,
    /// The serial port's speed, in bits per second.
    #[arg(long, value_name = "N", default_value_t = 115_200, requires = "serial")]
    baud: u32,
    /// How long one call may take, retransmissions included, in milliseconds; opening the
    /// connection or port may take as long again.
    #[arg(long, value_name = "MS", default_value_t = 1000)]
    timeout: u64,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// List the device's methods.
    Ls,
    /// Show a method's signature and schemas (every method without METHOD).
    Describe {
        /// The method's name.
        method: Option<String>,
        /// Print the description as JSON (postcard-schema's owned types).
        #[arg(long)]
        json: bool,
    },
    /// Call METHOD and print its value as JSON.
    Call {
        /// The method's name.
        method: String,
        /// The arguments: a JSON array in order, or an object by name; none for a method without any.
        #[arg(default_value = "[]")]
        args: String,
    },
    /// Make one session round trip with the built-in ping.
    Ping,
    /// Print the device's counters (the built-in stats) as JSON.
    Stats,
    /// Call METHOD N times in a row; print calls per second and latency percentiles.
    Bench {
        /// The method's name.
        method: String,
        /// The arguments, as for `call`.
        #[arg(default_value = "[]")]
        args: String,
        /// How many calls.
        #[arg(short = 'n', default_value_t = 1000)]
        n: u32,
    },
}

/// Why the command failed, with its exit code.
struct Failure {
    code: u8,
    message: String,
}

impl Failure {
    const NOT_EXECUTED: u8 = 1;
    const USAGE: u8 = 2;
    const UNKNOWN: u8 = 3;
    const RAN: u8 = 4;

    fn usage(message: impl Into<String>) -> Self {
        Failure { code: Self::USAGE, message: message.into() }
    }

    fn not_executed(message: impl Into<String>) -> Self {
        Failure { code: Self::NOT_EXECUTED, message: message.into() }
    }

    /// A failed call, its exit code from what it says about the handler.
    fn call(what: &str, error: Error) -> Self {
        Failure { code: exit_code(&error), message: format!("{what}: {error}") }
    }

    fn describe(error: DescribeError) -> Self {
        match error {
            DescribeError::Call(error) => Failure::call("describe", error),
            other => Failure::not_executed(other.to_string()),
        }
    }
}

/// The exit code for a call that ended in `error`.
fn exit_code(error: &Error) -> u8 {
    match error.executed() {
        Executed::No => Failure::NOT_EXECUTED,
        Executed::Maybe => Failure::UNKNOWN,
        Executed::Yes => Failure::RAN,
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let timeout = Duration::from_millis(cli.timeout);
    let result = if let Some(addr) = &cli.tcp {
        let target = addr.clone();
        match port::within(timeout, move || port::connect_tcp(&target)) {
            Some(Ok(stream)) => run(&mut Client::new(IoLink::new(stream), StdClock::new()), timeout, &cli.command),
            Some(Err(error)) => Err(Failure::not_executed(format!("cannot connect to {addr}: {error}"))),
            None => {
                Err(Failure::not_executed(format!("cannot connect to {addr}: no connection within {} ms", cli.timeout)))
            }
        }
    } else if let Some(path) = &cli.serial {
        let (target, baud) = (path.clone(), cli.baud);
        match port::within(timeout, move || serial::open(&target, baud)) {
            Some(Ok(link)) => serial_run(path, cli.baud, port::Watched::new(link), timeout, &cli.command),
            Some(Err(error)) => Err(Failure::not_executed(format!("cannot open {path}: {error}"))),
            None => Err(Failure::not_executed(format!("cannot open {path}: not open within {} ms", cli.timeout))),
        }
    } else {
        unreachable!("clap requires --tcp or --serial")
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("wirecall: {}", failure.message);
            ExitCode::from(failure.code)
        }
    }
}

/// `run` over a serial port, saying so when the device's first answer came
/// later than one attempt waits, or did not come before the deadline.
fn serial_run<L: Link>(
    path: &str,
    baud: u32,
    link: port::Watched<L>,
    timeout: Duration,
    command: &Command,
) -> Result<(), Failure> {
    let mut client = Client::new(link, StdClock::new());
    let result = run(&mut client, timeout, command);
    let attempt = client.machine().retry_policy().attempt_timeout;
    let answered = client.machine().boot_id().is_some();
    let link = client.link_mut();
    let late = link.first_answer().filter(|_| answered).and_then(|first| port::late_note(path, first, attempt));
    if let Some(note) = late {
        eprintln!("wirecall: {note}");
    }
    match result {
        // No Welcome came: the device never answered. Listen a little longer
        // to tell a late device from a missing one.
        Err(mut failure) if !answered && link.sent() => {
            port::linger(link);
            failure.message =
                format!("{}\nwirecall: {}", failure.message, port::silent_note(path, timeout, baud, link));
            Err(failure)
        }
        result => result,
    }
}

fn run<L: Link>(client: &mut Client<L, StdClock>, timeout: Duration, command: &Command) -> Result<(), Failure> {
    client.set_timeout(timeout);
    match command {
        Command::Ls => {
            let device = remote::fetch(client).map_err(Failure::describe)?;
            print!("{}", listing(&device));
        }
        Command::Describe { method, json } => {
            let device = remote::fetch(client).map_err(Failure::describe)?;
            let methods: Vec<&RemoteMethod> = match method {
                Some(name) => vec![find(&device, name)?],
                None => device.methods.iter().collect(),
            };
            if *json {
                let value = match method {
                    Some(_) => serde_json::to_value(methods[0]),
                    None => serde_json::to_value(&device),
                };
                println!("{}", serde_json::to_string_pretty(&value.expect("descriptions are JSON")).expect("JSON"));
            } else {
                for m in methods {
                    print!("{}", method_text(m));
                }
            }
        }
        Command::Call { method, args } => {
            let device = remote::fetch(client).map_err(Failure::describe)?;
            let method = find(&device, method)?;
            let args = json::encode_args(method, args).map_err(Failure::usage)?;
            let encoded = wirecall::wire::Encoded(&args);
            if method.flags & FLAG_ONEWAY != 0 {
                client.send_oneway(method.method(), &encoded).map_err(|e| Failure::call(&method.name, e))?;
                println!("sent (one-way: no answer comes, so whether it ran is not known)");
            } else if method.flags & FLAG_STREAM != 0 {
                // One JSON value per item, as they arrive; the End's counts on stderr.
                let mut bad = None;
                let end = client.call_stream_with(method.method(), &encoded, &mut |bytes| {
                    match json::decode_value(method, bytes) {
                        Ok(value) => println!("{value}"),
                        Err(why) => bad = Some(why),
                    }
                    bad.is_none()
                });
                if let Some(why) = bad {
                    return Err(Failure { code: Failure::RAN, message: format!("{}: {why} (it ran)", method.name) });
                }
                match end {
                    Ok(end) if end.is_complete() => eprintln!("end: {} items", end.sent),
                    Ok(end) => {
                        return Err(Failure {
                            code: Failure::RAN,
                            message: format!(
                                "{}: the stream ended ({}) after sending {} items, {} arrived",
                                method.name,
                                end.status.map_or("complete".to_string(), |s| s.to_string()),
                                end.sent,
                                end.received
                            ),
                        });
                    }
                    Err(broken) => {
                        let mut failure = Failure::call(&method.name, broken.error);
                        failure.message = format!("{} (after {} items)", failure.message, broken.received);
                        if broken.received > 0 {
                            // Items came: it ran, and the rest of its outcome is lost.
                            failure.code = Failure::RAN;
                        }
                        return Err(failure);
                    }
                }
            } else {
                let value = call(client, method, &args)?;
                println!("{value}");
            }
        }
        Command::Ping => {
            let started = std::time::Instant::now();
            client.ping().map_err(|e| Failure::call("ping", e))?;
            println!("pong in {} µs", started.elapsed().as_micros());
        }
        Command::Stats => {
            let stats = client.server_stats().map_err(|e| Failure::call("stats", e))?;
            println!("{}", serde_json::to_string_pretty(&stats).expect("counters are JSON"));
        }
        Command::Bench { method, args, n } => {
            let device = remote::fetch(client).map_err(Failure::describe)?;
            let method = find(&device, method)?;
            let args = json::encode_args(method, args).map_err(Failure::usage)?;
            let progress = std::io::stderr().is_terminal() && *n >= 1000;
            let report = bench::run(client, method, &args, *n, progress);
            print!("{report}");
            if let Some(code) = report.exit_code() {
                return Err(Failure { code, message: format!("{} of {n} calls failed", report.failed()) });
            }
        }
    }
    Ok(())
}

/// The method called `name`, or a not-executed failure naming the service.
fn find<'d>(device: &'d RemoteDescription, name: &str) -> Result<&'d RemoteMethod, Failure> {
    device.method(name).ok_or_else(|| {
        Failure::not_executed(format!(
            "`{}` has no method `{name}` (not executed; `wirecall ls` lists them)",
            device.name
        ))
    })
}

/// One call with encoded arguments; its value as JSON.
fn call<L: Link>(
    client: &mut Client<L, StdClock>,
    method: &RemoteMethod,
    args: &[u8],
) -> Result<serde_json::Value, Failure> {
    let reply = client
        .call_with(method.method(), &wirecall::wire::Encoded(args), |bytes| Some(json::decode_value(method, bytes)));
    match reply {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(why)) => Err(Failure { code: Failure::RAN, message: format!("{}: {why} (it ran)", method.name) }),
        Err(error) => Err(Failure::call(&method.name, error)),
    }
}

/// `ls`: the service, then a line per method.
fn listing(device: &RemoteDescription) -> String {
    let version = if device.version.is_empty() { String::new() } else { format!(" {}", device.version) };
    let mut text = format!("{}{version} (fingerprint {})\n", device.name, device.fingerprint());
    let width = device.methods.iter().map(|m| m.signature().len()).max().unwrap_or(0);
    for m in &device.methods {
        let flags = match m.flags {
            f if f & FLAG_STREAM != 0 => "  stream",
            f if f & FLAG_ONEWAY != 0 => "  one-way",
            f if f & FLAG_IDEMPOTENT != 0 => "  idempotent",
            _ => "",
        };
        text += format!("{:>6}  {:width$}{flags}", m.id, m.signature()).trim_end();
        text.push('\n');
    }
    text
}

/// `describe METHOD`: the signature, the flags, and both schemas.
fn method_text(m: &RemoteMethod) -> String {
    let idempotent = match m.flags {
        f if f & FLAG_STREAM != 0 => "stream: returns a sequence of the type below, then an End",
        f if f & FLAG_ONEWAY != 0 => "one-way: never answered",
        f if f & FLAG_IDEMPOTENT != 0 => "idempotent",
        _ => "not idempotent: never run twice",
    };
    format!(
        "{}\n  id:        {}\n  flags:     {idempotent}\n  arguments: {}\n  returns:   {}\n",
        m.signature(),
        m.id,
        m.args_text(),
        m.ret.to_pseudocode()
    )
}
