//! Chaos: calls through a simulated link that drops, flips, duplicates, truncates,
//! stalls and reorders bytes and frames, delivers late copies of them, puts
//! garbage between them, goes down, and restarts the server, while clients
//! restart too. The handlers record every execution by call, so the test knows
//! the truth and checks every outcome the client reported:
//!
//! - no wrong value is ever accepted;
//! - no call of a method that is not idempotent runs more than once;
//! - "not executed" is never reported for a call that ran, and a value (or "it
//!   ran") never for one that did not.
//!
//! And liveness, against the simulated clock: a call lives until its deadline
//! (PROTOCOL.md §8.4), so
//!
//! - no call ends "unknown" before its deadline (`premature`) unless something
//!   justifies it, counted apart: a restart the server reported (Status 9), an
//!   answer evicted from its cache (Status 10), the link going down, a session
//!   the server lost;
//! - no call (no stream: its idle deadline, from its last item) is still
//!   waiting after its deadline (`stalled`), beyond `SLACK`;
//! - no call ends Status 10 in a mix without server restarts.
//!
//! A second test, `chaos_pipelined`, runs the same checks with several calls in
//! flight (clients with a window of 4 and of 8, against servers with the same
//! window) and with calls cancelled at random: before the session opens, right
//! after the request, or while the call waits for its answer. A cancelled call
//! must still be reported truthfully: "cancelled" only if it never ran and never
//! will, its value if it ran.
//!
//! Every life of a client has the same client id, so a restarted client is
//! told from the one before only by its `fresh` Hello. (Frames are reordered and
//! copied late within a session only: see `wirecall::sim`.)
//!
//! Time is simulated: a timeout costs no wall-clock time, and a slow handler
//! takes the server's time, during which the client goes on sending. The number
//! of calls is `WIRECALL_CHAOS_CALLS` (default 105,000 for each test, spread over
//! the fault mixes) and the seed `WIRECALL_CHAOS_SEED`; a failure prints the seed
//! and mix to rerun it.
//!
//! Run: `cargo test --release --test chaos -- --nocapture`

use std::time::Duration;

use wirecall::machine::ClientMachine;
use wirecall::sim::{FaultStats, Faults, SimClock, SimLink};
use wirecall::{Call, Client, Clock, Error, Executed, Instant, Method, RetryPolicy, Status};

wirecall::service! {
    /// The service under chaos.
    pub mod chaos {
        /// Not idempotent: dispensing twice is not dispensing once.
        fn dispense(call: u32, ml: u8) -> u32 = 1;
        /// Idempotent: reading twice is harmless.
        fn read(call: u32) -> u32 = 2, idempotent;
        /// Not idempotent, and takes `ms` of (simulated) time.
        fn slow(call: u32, ms: u16) -> u32 = 3;
    }
}

/// The value a call must return: a function of its call id, so an answer meant
/// for any other call is recognised as wrong.
fn expected(call: u32) -> u32 {
    call.wrapping_mul(2_654_435_761) ^ 0x5a5a_5a5a
}

/// The handlers: they record how often each call ran.
struct Truth<'c> {
    runs: Vec<u8>,
    clock: &'c SimClock,
}

impl Truth<'_> {
    fn ran(&mut self, call: u32) -> u32 {
        if let Some(count) = self.runs.get_mut(call as usize) {
            *count = count.saturating_add(1);
        }
        expected(call)
    }
}

impl chaos::Service for Truth<'_> {
    fn dispense(&mut self, call: u32, _ml: u8) -> u32 {
        self.ran(call)
    }
    fn read(&mut self, call: u32) -> u32 {
        self.ran(call)
    }
    fn slow(&mut self, call: u32, ms: u16) -> u32 {
        // The server's time: the simulated link keeps the client's going.
        self.clock.advance(Duration::from_millis(u64::from(ms)));
        self.ran(call)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Dispense,
    Read,
    Slow,
    /// A method the server does not have.
    Unknown,
}

/// What the client reported for one call.
struct Report {
    call: u32,
    kind: Kind,
    outcome: Result<u32, Error>,
}

#[derive(Default, Debug)]
#[cfg_attr(not(all(feature = "pipelining", feature = "cancel")), allow(dead_code))]
struct Tally {
    calls: u64,
    wrong: u64,
    double: u64,
    misclassified: u64,
    unknown: u64,
    retries: u64,
    resumes: u64,
    /// Resumes refused with `NothingToResume`.
    nothing_to_resume: u64,
    client_restarts: u64,
    idempotent_reruns: u64,
    /// Pipelined run: cancels asked for.
    cancels: u64,
    /// Pipelined run: how the cancelled calls ended.
    cancelled_unsent: u64,
    cancelled_by_server: u64,
    cancelled_but_ran: u64,
    cancelled_unknown: u64,
    /// Pipelined run: calls whose `start` failed but that stayed in flight
    /// (their outcome came later, from `next_completed`).
    orphans: u64,
    /// Pipelined run: calls left in flight with `next_completed` returning
    /// `None` (the client is restarted to go on).
    stuck: u64,
    /// Pipelined run: calls in flight when the client restarted: their outcome
    /// is lost with the client, counted unknown.
    abandoned: u64,
    live: Liveness,
}

/// How calls ended against their deadlines (see the module docs).
#[derive(Default, Debug, Clone, Copy)]
struct Liveness {
    /// Ended unknown before the deadline, with nothing to justify it.
    premature: u64,
    /// Still waiting after the deadline.
    stalled: u64,
    /// Ended unknown before the deadline by a Status 9 from a server that restarted.
    restarted: u64,
    /// Ended Status 10 (whenever).
    evicted: u64,
    /// Ended unknown before the deadline because the link went down during the call.
    link_down: u64,
    /// Ended unknown before the deadline because the server lost the session (it restarted).
    session_lost: u64,
}

impl Liveness {
    fn since(self, before: Liveness) -> Liveness {
        Liveness {
            premature: self.premature - before.premature,
            stalled: self.stalled - before.stalled,
            restarted: self.restarted - before.restarted,
            evicted: self.evicted - before.evicted,
            link_down: self.link_down - before.link_down,
            session_lost: self.session_lost - before.session_lost,
        }
    }
}

impl std::fmt::Display for Liveness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "premature={} stalled={} (justified: restarted={} evicted={} link_down={} session_lost={})",
            self.premature, self.stalled, self.restarted, self.evicted, self.link_down, self.session_lost
        )
    }
}

/// How late a call may end after its deadline, and how early an unknown may
/// come before it, for the driver's granularity: a read or write on a link that
/// is down takes 5 ms of simulated time to fail.
const SLACK: Duration = Duration::from_millis(10);

/// What was true when a call started: its deadline and the faults so far.
#[derive(Debug, Clone, Copy)]
struct Window {
    deadline: Instant,
    cuts: u64,
    restarts: u64,
    /// The boot id of the session the client had, if any.
    boot: Option<u32>,
}

/// What was true when it ended.
#[derive(Debug, Clone, Copy)]
struct Ending {
    at: Instant,
    cuts: u64,
    restarts: u64,
    /// The server's boot id now.
    boot: u32,
    /// Time the harness spent outside the driver meanwhile (pipelined runs),
    /// which the call could not end in.
    slack: Duration,
}

impl Window {
    fn open(deadline: Instant, faults: &FaultStats, boot: Option<u32>) -> Self {
        Window { deadline, cuts: faults.cuts, restarts: faults.restarts, boot }
    }
}

impl Ending {
    fn at(at: Instant, faults: &FaultStats, boot: u32) -> Self {
        Ending { at, cuts: faults.cuts, restarts: faults.restarts, boot, slack: Duration::ZERO }
    }
}

/// Judges when a call ended (with `error`, if it failed) against its window;
/// counts it in `live` and describes a problem, if any, naming the call `what`.
fn judge(
    what: impl Fn() -> String,
    error: Option<&Error>,
    w: &Window,
    e: &Ending,
    live: &mut Liveness,
) -> Option<String> {
    let deadline = w.deadline;
    if e.at > deadline + SLACK + e.slack {
        live.stalled += 1;
        let late = e.at.saturating_duration_since(deadline);
        return Some(format!("{} ended {late:?} after its deadline ({error:?})", what()));
    }
    let error = error?;
    if *error == Error::Status(Status::Aborted) {
        live.evicted += 1;
        return None;
    }
    if error.executed() != Executed::Maybe || e.at + SLACK >= deadline {
        return None;
    }
    let restarted = e.restarts > w.restarts || w.boot.is_some_and(|b| b != e.boot);
    let justified = match error {
        Error::Status(Status::FailedPrecondition) => restarted.then_some(&mut live.restarted),
        Error::SessionLost => restarted.then_some(&mut live.session_lost),
        Error::LinkLost => (e.cuts > w.cuts).then_some(&mut live.link_down),
        _ => None,
    };
    match justified {
        Some(count) => {
            *count += 1;
            None
        }
        None => {
            live.premature += 1;
            let early = deadline.saturating_duration_since(e.at);
            Some(format!("{} ended unknown ({error}) {early:?} before its deadline", what()))
        }
    }
}

const MS: fn(u64) -> Duration = Duration::from_millis;

/// The client's timeout, and the idle time of its streams.
const TIMEOUT: Duration = Duration::from_millis(2000);

/// The client's retry policy: an attempt timeout well below the slow handlers.
const POLICY: RetryPolicy =
    RetryPolicy { attempts: 5, attempt_timeout: Duration::from_millis(250), ..RetryPolicy::DEFAULT };

/// Every life of every client has this id.
const CLIENT_ID: u32 = 7;

/// The slowest handler.
const SLOWEST: Duration = Duration::from_millis(1900);

/// The longest gap between a stream's items (and the slowest poke): a server
/// streaming slow items cannot also answer other calls, so it stays well
/// below the idle time, or calls the client gave up on pile up behind it.
const LONGEST_GAP: Duration = Duration::from_millis(1200);

/// How handlers take their time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Pace {
    /// Slow calls (three in twenty) take up to 600 ms; stream items come at once.
    Brisk,
    /// Calls slower than the attempt timeout (250 ms): with one call at a
    /// time, three in ten, 0.3 to 1.9 s, within the deadline of 2 s; with
    /// several in flight (which a server runs one after the other), three in
    /// twenty, 0.3 to 1 s. The gaps between a stream's items, and pokes, take
    /// 0.3 to 1.2 s: longer than the attempt timeout, shorter than the
    /// stream's idle time.
    Slow,
}

struct Mix {
    name: &'static str,
    faults: Faults,
    pace: Pace,
}

impl Mix {
    /// Whether the server restarts in this mix (the only cause of a Status 10
    /// a client should ever see).
    fn restarts(&self) -> bool {
        self.faults.restart_before > 0.0 || self.faults.restart_after > 0.0
    }
}

fn mixes() -> Vec<Mix> {
    let noise = Faults { drop_byte: 0.002, flip_bit: 0.002, ..Faults::NONE };
    let frames = Faults { duplicate: 0.05, truncate: 0.03, garbage: 0.05, ..Faults::NONE };
    let stalls = Faults { stall: 0.08, stall_time: (MS(50), MS(900)), ..Faults::NONE };
    let restarts = Faults { restart_before: 0.01, restart_after: 0.01, ..Faults::NONE };
    let cuts = Faults { cut: 0.01, cut_time: (MS(10), MS(400)), ..Faults::NONE };
    let reorder = Faults {
        reorder: 0.05,
        reorder_time: (MS(1), MS(100)),
        delay_duplicate: 0.03,
        delay_time: (MS(100), MS(1500)),
        ..Faults::NONE
    };
    // Lost answers while the handlers are slow: the client sends again until
    // its deadline, and the server answers from its cache.
    let slow = Faults { drop_byte: 0.001, duplicate: 0.02, stall: 0.02, stall_time: (MS(50), MS(400)), ..Faults::NONE };
    let everything = Faults {
        drop_byte: 0.001,
        flip_bit: 0.001,
        duplicate: 0.03,
        truncate: 0.02,
        garbage: 0.03,
        stall: 0.04,
        stall_time: (MS(50), MS(900)),
        cut: 0.005,
        cut_time: (MS(10), MS(400)),
        restart_before: 0.005,
        restart_after: 0.005,
        ..Faults::NONE
    };
    let everything_reordered = Faults {
        reorder: 0.02,
        reorder_time: (MS(1), MS(100)),
        delay_duplicate: 0.01,
        delay_time: (MS(100), MS(1500)),
        ..everything
    };
    let brisk = |name, faults| Mix { name, faults, pace: Pace::Brisk };
    vec![
        brisk("clean", Faults::NONE),
        brisk("byte-noise", noise),
        brisk("frame-faults", frames),
        brisk("stalls", stalls),
        brisk("restarts", restarts),
        brisk("cuts", cuts),
        brisk("reorder", reorder),
        Mix { name: "slow", faults: slow, pace: Pace::Slow },
        brisk("everything", everything),
        brisk("all-reordered", everything_reordered),
    ]
}

/// The mixes to run: all, or the one `WIRECALL_CHAOS_MIX` names (to rerun one).
fn chosen_mixes() -> Vec<Mix> {
    let only = std::env::var("WIRECALL_CHAOS_MIX").ok();
    mixes().into_iter().filter(|m| only.as_deref().is_none_or(|name| name == m.name)).collect()
}

fn mix(name: &str) -> Mix {
    mixes().into_iter().find(|m| m.name == name).expect("a mix of that name")
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// A client with up to `W` calls in flight, through a simulated link to a server
/// with a window of `W` answers.
type Stub<'c, const W: usize = 1> =
    Client<SimLink<'c, chaos::Dispatcher<Truth<'c>>, 256, 256, W>, &'c SimClock, 256, 256, W>;

fn new_client<'c, const W: usize>(
    link: SimLink<'c, chaos::Dispatcher<Truth<'c>>, 256, 256, W>,
    clock: &'c SimClock,
    life: u32,
) -> Stub<'c, W> {
    // Each life of the client has the same id and starts its sequence numbers
    // at the same place, so a stale answer from an earlier life would carry a
    // number the new life uses, and only `fresh` tells the lives apart.
    let machine = ClientMachine::with_identity(CLIENT_ID, 0);
    let mut client = Client::with_machine(link, clock, machine);
    client.set_timeout(TIMEOUT);
    client.set_retry_policy(POLICY);
    // Every other life sends its time budget in each request (Timed Requests),
    // so both request kinds go through the faults.
    #[cfg(feature = "deadlines")]
    client.set_deadline_on_wire(life % 2 == 1);
    #[cfg(not(feature = "deadlines"))]
    let _ = life;
    client
}

/// A random kind of call: mostly not idempotent; and how long it takes if
/// slow, `pipelined` or one at a time.
fn pick_kind(rng: &mut fastrand::Rng, pace: Pace, pipelined: bool) -> (Kind, u16) {
    match (pace, pipelined) {
        (Pace::Brisk, _) => match rng.u8(0..20) {
            0..=9 => (Kind::Dispense, 0),
            10..=15 => (Kind::Read, 0),
            16..=18 => (Kind::Slow, rng.u16(0..600)),
            _ => (Kind::Unknown, 0),
        },
        (Pace::Slow, false) => match rng.u8(0..20) {
            0..=7 => (Kind::Dispense, 0),
            8..=12 => (Kind::Read, 0),
            13..=18 => (Kind::Slow, rng.u16(300..=SLOWEST.as_millis() as u16)),
            _ => (Kind::Unknown, 0),
        },
        (Pace::Slow, true) => match rng.u8(0..20) {
            0..=9 => (Kind::Dispense, 0),
            10..=15 => (Kind::Read, 0),
            16..=18 => (Kind::Slow, rng.u16(300..=1000)),
            _ => (Kind::Unknown, 0),
        },
    }
}

/// The window of a call starting now on `client`.
fn window_of<'c, const W: usize>(client: &mut Stub<'c, W>, deadline: Instant) -> Window {
    let boot = client.machine().boot_id();
    Window::open(deadline, client.link_mut().fault_stats(), boot)
}

/// The ending of a call that ended now on `client`.
fn ending_of<'c, const W: usize>(client: &mut Stub<'c, W>) -> Ending {
    let at = client.now();
    let link = client.link_mut();
    Ending::at(at, link.fault_stats(), link.boot_id())
}

/// Runs `calls` calls under `mix`; returns the reports, the ground truth, the
/// faults and the liveness problems.
fn run_mix(mix: &Mix, calls: u32, seed: u64, tally: &mut Tally) -> (Vec<Report>, Vec<u8>, FaultStats, Vec<String>) {
    let clock = SimClock::new();
    let truth = Truth { runs: vec![0; calls as usize], clock: &clock };
    let link: SimLink<'_, _> = SimLink::new(&clock, chaos::Dispatcher(truth), mix.faults, seed);
    let mut rng = fastrand::Rng::with_seed(seed ^ 0xc0ffee);
    let mut life = 0;
    let mut client = new_client(link, &clock, life);
    let mut reports = Vec::with_capacity(calls as usize);
    let mut late = Vec::new();

    for call in 0..calls {
        let (kind, ms) = pick_kind(&mut rng, mix.pace, false);
        let window = window_of(&mut client, clock.now() + TIMEOUT);
        let mut outcome = match kind {
            Kind::Dispense => client.call(chaos::methods::dispense, &(call, rng.u8(..))),
            Kind::Read => client.call(chaos::methods::read, &(call,)),
            Kind::Slow => client.call(chaos::methods::slow, &(call, ms)),
            Kind::Unknown => client.call(Method::new(99), &(call,)),
        };
        let ending = ending_of(&mut client);
        let what = || format!("call {call} ({kind:?}, life {life})");
        late.extend(judge(what, outcome.as_ref().err(), &window, &ending, &mut tally.live));
        if matches!(&outcome, Err(e) if e.executed() == Executed::Maybe) && rng.bool() {
            tally.resumes += 1;
            // Its own deadline; the faults since the call began justify it.
            let resumed = Window { deadline: clock.now() + TIMEOUT, ..window };
            match client.resume::<u32>() {
                // Nothing to ask about again (the unknown outcome came from an
                // earlier attempt of an idempotent call, which a later attempt
                // replaced): that says nothing of the call, whose outcome stands.
                Err(Error::NothingToResume) => tally.nothing_to_resume += 1,
                again => {
                    let ending = ending_of(&mut client);
                    let what = || format!("{}, resumed", what());
                    late.extend(judge(what, again.as_ref().err(), &resumed, &ending, &mut tally.live));
                    outcome = again;
                }
            }
        }
        reports.push(Report { call, kind, outcome });

        if rng.u16(0..1000) == 0 {
            // The client restarts, leaving whatever is in flight on the link.
            tally.retries += u64::from(client.stats().retries);
            tally.client_restarts += 1;
            life += 1;
            let (link, _) = client.into_parts();
            client = new_client(link, &clock, life);
        }
    }
    tally.retries += u64::from(client.stats().retries);
    let (link, _) = client.into_parts();
    let faults = *link.fault_stats();
    let chaos::Dispatcher(truth) = link.into_service();
    (reports, truth.runs, faults, late)
}

/// Checks every report against the truth; returns descriptions of violations.
fn check(reports: &[Report], runs: &[u8], tally: &mut Tally) -> Vec<String> {
    let mut problems = Vec::new();
    for r in reports {
        let ran = runs[r.call as usize];
        tally.calls += 1;
        if ran > 1 {
            if r.kind == Kind::Read {
                tally.idempotent_reruns += 1;
            } else {
                tally.double += 1;
                problems.push(format!("call {} ({:?}) ran {} times", r.call, r.kind, ran));
            }
        }
        match &r.outcome {
            Ok(value) => {
                if r.kind == Kind::Unknown || *value != expected(r.call) {
                    tally.wrong += 1;
                    problems.push(format!("call {} ({:?}) got a wrong value {value:#x}", r.call, r.kind));
                }
                if ran == 0 {
                    tally.misclassified += 1;
                    problems.push(format!("call {} ({:?}) got a value but never ran", r.call, r.kind));
                }
            }
            Err(e) => match e.executed() {
                Executed::No if ran > 0 => {
                    tally.misclassified += 1;
                    problems.push(format!("call {} ({:?}) reported not executed ({e}) but ran", r.call, r.kind));
                }
                Executed::Yes if ran == 0 => {
                    tally.misclassified += 1;
                    problems.push(format!("call {} ({:?}) reported executed ({e}) but never ran", r.call, r.kind));
                }
                Executed::Maybe => tally.unknown += 1,
                _ => {}
            },
        }
    }
    problems
}

/// Adds a run's problems to `failures`: its safety `problems`, its liveness
/// problems `late`, and Status 10 in a mix without restarts (`evicted`).
fn report_run(failures: &mut Vec<String>, run: String, mix: &Mix, problems: &[String], late: &[String], evicted: u64) {
    if !problems.is_empty() {
        let first = &problems[..problems.len().min(5)];
        failures.push(format!("{run}: {} problems, first: {first:?}", problems.len()));
    }
    if !late.is_empty() {
        let first = &late[..late.len().min(5)];
        failures.push(format!("{run}: {} calls premature or stalled, first: {first:?}", late.len()));
    }
    if evicted > 0 && !mix.restarts() {
        failures.push(format!("{run}: {evicted} calls ended Status 10 (evicted) with no server restart"));
    }
}

#[test]
fn chaos() {
    let total = env_u64("WIRECALL_CHAOS_CALLS", 105_000);
    let seed = env_u64("WIRECALL_CHAOS_SEED", 0x5eed);
    let mixes = chosen_mixes();
    let per_mix = u32::try_from(total.div_ceil(mixes.len() as u64)).expect("calls per mix fit in u32");
    let started = std::time::Instant::now();
    let mut tally = Tally::default();
    let mut failures = Vec::new();

    for (i, mix) in mixes.iter().enumerate() {
        let name = mix.name;
        let mix_seed = seed.wrapping_add(i as u64);
        let before = (tally.unknown, tally.retries, tally.live);
        let (reports, runs, fault_stats, late) = run_mix(mix, per_mix, mix_seed, &mut tally);
        let problems = check(&reports, &runs, &mut tally);
        let live = tally.live.since(before.2);
        println!(
            "mix {name:<13} seed={mix_seed:#x} calls={per_mix} unknown={} retries={} {live} faults={fault_stats:?}",
            tally.unknown - before.0,
            tally.retries - before.1,
        );
        let run = format!("mix {name} (WIRECALL_CHAOS_SEED={seed} WIRECALL_CHAOS_CALLS={total}), seed {mix_seed:#x}");
        report_run(&mut failures, run, mix, &problems, &late, live.evicted);
    }
    println!(
        "chaos: resumes={} (nothing to resume: {}) client_restarts={} idempotent_reruns={} wall_time={:.1}s",
        tally.resumes,
        tally.nothing_to_resume,
        tally.client_restarts,
        tally.idempotent_reruns,
        started.elapsed().as_secs_f64()
    );
    println!("chaos: liveness: {}", tally.live);
    println!(
        "chaos: calls={} wrong={} double={} misclassified={} unknown={} retries={} premature={} stalled={}",
        tally.calls,
        tally.wrong,
        tally.double,
        tally.misclassified,
        tally.unknown,
        tally.retries,
        tally.live.premature,
        tally.live.stalled
    );
    assert!(failures.is_empty(), "chaos found violations:\n{}", failures.join("\n"));
    assert_eq!((tally.live.premature, tally.live.stalled), (0, 0), "premature and stalled");
    assert!(tally.calls >= total, "ran {} calls, wanted at least {total}", tally.calls);
}

/// Runs `calls` calls under `mix` with up to `W` in flight, cancelling some;
/// returns the reports, the ground truth, the faults and the liveness problems.
#[cfg(all(feature = "pipelining", feature = "cancel"))]
fn run_pipelined_mix<const W: usize>(
    mix: &Mix,
    calls: u32,
    seed: u64,
    tally: &mut Tally,
) -> (Vec<Report>, Vec<u8>, FaultStats, Vec<String>) {
    use std::collections::{BTreeMap, BTreeSet};

    let clock = SimClock::new();
    let truth = Truth { runs: vec![0; calls as usize], clock: &clock };
    let link: SimLink<'_, _, 256, 256, W> = SimLink::new(&clock, chaos::Dispatcher(truth), mix.faults, seed);
    let mut rng = fastrand::Rng::with_seed(seed ^ 0x919e_11ed);
    let mut life = 0;
    let mut client = new_client::<W>(link, &clock, life);
    let mut reports = Vec::with_capacity(calls as usize);
    // The calls in flight, by sequence number (ordered, so a seed replays
    // exactly), with their window and the harness time before they started.
    let mut in_flight: BTreeMap<u16, (u32, Kind, Window, Duration)> = BTreeMap::new();
    let mut cancelled: BTreeSet<u32> = BTreeSet::new();
    let mut late = Vec::new();
    let mut next = 0;
    // Time spent outside `next_completed` (starting and cancelling calls on a
    // link that is down costs time), and when it last returned.
    let mut outside = Duration::ZERO;
    let mut returned = clock.now();

    while next < calls || !in_flight.is_empty() {
        // Start calls: sometimes enough to fill the window, sometimes one.
        let mut wanted = rng.usize(1..=W);
        while next < calls && wanted > 0 {
            let call = next;
            let (kind, ms) = pick_kind(&mut rng, mix.pace, true);
            let window = window_of(&mut client, clock.now() + TIMEOUT);
            let waited = outside + clock.now().saturating_duration_since(returned);
            let started = match kind {
                Kind::Dispense => client.start(chaos::methods::dispense, &(call, rng.u8(..))),
                Kind::Read => client.start(chaos::methods::read, &(call,)),
                Kind::Slow => client.start(chaos::methods::slow, &(call, ms)),
                Kind::Unknown => client.start(Method::new(99), &(call,)),
            };
            match started {
                Err(Error::Busy) => break,
                Ok(seq) => {
                    in_flight.insert(seq, (call, kind, window, waited));
                    // Cancelled at once: before the session opens nothing was
                    // sent; otherwise the Cancel races the request on the wire.
                    if rng.u8(0..25) == 0 && client.cancel(seq) {
                        tally.cancels += 1;
                        cancelled.insert(call);
                    }
                }
                Err(error) => {
                    // `start` failed (the link is down). If the call stayed in
                    // flight all the same, its outcome comes later: follow it.
                    let seq = client.machine().next_seq().wrapping_sub(1);
                    if client.machine().is_in_flight(seq) && !in_flight.contains_key(&seq) {
                        tally.orphans += 1;
                        in_flight.insert(seq, (call, kind, window, waited));
                    } else {
                        reports.push(Report { call, kind, outcome: Err(error) });
                    }
                }
            }
            next += 1;
            wanted -= 1;
        }
        // Now and then, cancel a call that has been waiting for a while.
        if !in_flight.is_empty() && rng.u8(0..12) == 0 {
            let (&seq, &(call, ..)) = in_flight.iter().nth(rng.usize(..in_flight.len())).expect("in range");
            if client.cancel(seq) {
                tally.cancels += 1;
                cancelled.insert(call);
            }
        }
        let mut restart = rng.u16(0..1000) == 0;
        outside += clock.now().saturating_duration_since(returned);
        let done = client.next_completed();
        returned = clock.now();
        match done {
            Some(done) => {
                let Some((call, kind, window, waited)) = in_flight.remove(&done.seq) else {
                    panic!("an outcome for seq {} (life {life}), which is not in flight: {:?}", done.seq, done.outcome);
                };
                let outcome = done.decode::<u32>();
                let mut ending = ending_of(&mut client);
                ending.slack = outside.saturating_sub(waited);
                let what = || format!("call {call} ({kind:?}, seq {}, life {life})", done.seq);
                late.extend(judge(what, outcome.as_ref().err(), &window, &ending, &mut tally.live));
                if cancelled.remove(&call) {
                    match &outcome {
                        Ok(_) => tally.cancelled_but_ran += 1,
                        Err(Error::Cancelled) => tally.cancelled_unsent += 1,
                        Err(Error::Status(Status::Cancelled)) => tally.cancelled_by_server += 1,
                        Err(e) if e.executed() == Executed::Maybe => tally.cancelled_unknown += 1,
                        Err(_) => {}
                    }
                }
                reports.push(Report { call, kind, outcome });
            }
            None if !in_flight.is_empty() => {
                // Calls in flight, yet none will ever end: restart the client to go on.
                tally.stuck += in_flight.len() as u64;
                restart = true;
            }
            None => {}
        }
        if restart {
            // The client restarts, leaving whatever is in flight on the link. The
            // outcome of the calls it had in flight is lost with it: unknown.
            for (_, (call, kind, ..)) in std::mem::take(&mut in_flight) {
                tally.abandoned += 1;
                cancelled.remove(&call);
                reports.push(Report { call, kind, outcome: Err(Error::LinkLost) });
            }
            tally.retries += u64::from(client.stats().retries);
            tally.client_restarts += 1;
            life += 1;
            let (link, _) = client.into_parts();
            client = new_client::<W>(link, &clock, life);
        }
    }
    tally.retries += u64::from(client.stats().retries);
    let (link, _) = client.into_parts();
    let faults = *link.fault_stats();
    let chaos::Dispatcher(truth) = link.into_service();
    (reports, truth.runs, faults, late)
}

#[cfg(all(feature = "pipelining", feature = "cancel"))]
#[test]
fn chaos_pipelined() {
    let total = env_u64("WIRECALL_CHAOS_CALLS", 105_000);
    let seed = env_u64("WIRECALL_CHAOS_SEED", 0x5eed);
    let mixes = chosen_mixes();
    // Each mix twice: with a window of 4 and of 8.
    let per_run = u32::try_from(total.div_ceil(2 * mixes.len() as u64)).expect("calls per mix fit in u32");
    let started = std::time::Instant::now();
    let mut tally = Tally::default();
    let mut failures = Vec::new();

    for (i, mix) in mixes.iter().enumerate() {
        let name = mix.name;
        for window in [4, 8] {
            let run_seed = seed.wrapping_add(0x100 + 2 * i as u64 + u64::from(window == 8));
            let before = (tally.unknown, tally.retries, tally.cancels, tally.orphans, tally.stuck, tally.abandoned);
            let live_before = tally.live;
            let (reports, runs, fault_stats, late) = match window {
                4 => run_pipelined_mix::<4>(mix, per_run, run_seed, &mut tally),
                _ => run_pipelined_mix::<8>(mix, per_run, run_seed, &mut tally),
            };
            let problems = check(&reports, &runs, &mut tally);
            let live = tally.live.since(live_before);
            println!(
                "mix {name:<13} window={window} seed={run_seed:#x} calls={per_run} unknown={} retries={} cancels={} orphans={} stuck={} abandoned={} {live} faults={fault_stats:?}",
                tally.unknown - before.0,
                tally.retries - before.1,
                tally.cancels - before.2,
                tally.orphans - before.3,
                tally.stuck - before.4,
                tally.abandoned - before.5,
            );
            let run = format!(
                "mix {name}, window {window} (WIRECALL_CHAOS_SEED={seed} WIRECALL_CHAOS_CALLS={total}), seed {run_seed:#x}"
            );
            report_run(&mut failures, run, mix, &problems, &late, live.evicted);
        }
    }
    println!(
        "chaos pipelined: cancels={} (unsent={} cancelled_by_server={} ran={} unknown={}) client_restarts={} idempotent_reruns={} orphans={} stuck={} abandoned={} wall_time={:.1}s",
        tally.cancels,
        tally.cancelled_unsent,
        tally.cancelled_by_server,
        tally.cancelled_but_ran,
        tally.cancelled_unknown,
        tally.client_restarts,
        tally.idempotent_reruns,
        tally.orphans,
        tally.stuck,
        tally.abandoned,
        started.elapsed().as_secs_f64()
    );
    println!("chaos pipelined: liveness: {}", tally.live);
    println!(
        "chaos pipelined: calls={} wrong={} double={} misclassified={} unknown={} retries={} premature={} stalled={}",
        tally.calls,
        tally.wrong,
        tally.double,
        tally.misclassified,
        tally.unknown,
        tally.retries,
        tally.live.premature,
        tally.live.stalled
    );
    // A failed `start` leaves nothing in flight, and every call ends.
    assert_eq!((tally.orphans, tally.stuck), (0, 0), "calls left in flight");
    // Calls started with `start` are never made again as new calls: an
    // idempotent method that ran twice ran twice for one call.
    if tally.idempotent_reruns > 0 {
        failures.push(format!("{} idempotent calls ran more than once", tally.idempotent_reruns));
    }
    assert!(failures.is_empty(), "chaos found violations:\n{}", failures.join("\n"));
    assert_eq!((tally.live.premature, tally.live.stalled), (0, 0), "premature and stalled");
    assert!(tally.calls >= total, "ran {} calls, wanted at least {total}", tally.calls);
    if total >= 10_000 {
        let kinds = [tally.cancelled_unsent, tally.cancelled_by_server, tally.cancelled_but_ran];
        assert!(kinds.iter().all(|&n| n > 0), "every way a cancel can end happened: {kinds:?}");
    }
}

/// The mix in which `WIRECALL_CHAOS_SEED=16 WIRECALL_CHAOS_CALLS=300000` found
/// a non-idempotent call run twice (the same bug as
/// `tests/pipelining.rs::a_call_that_ran_on_a_server_that_restarted_is_not_run_again_after_a_link_failure`):
/// call 7124 runs, the server restarts, the link is cut, a new call opens a
/// session on the new boot, and the old request is sent again into it. (The
/// simulation has changed since, slow handlers taking the server's time, so the
/// seed no longer replays that very sequence; the run stays.)
#[cfg(all(feature = "pipelining", feature = "cancel"))]
#[test]
fn chaos_pipelined_seed_16_everything_window_8() {
    let mut tally = Tally::default();
    let (reports, runs, _, late) = run_pipelined_mix::<8>(&mix("everything"), 21_429, 0x11d, &mut tally);
    let problems = check(&reports, &runs, &mut tally);
    assert!(problems.is_empty(), "{problems:?}");
    assert!(late.is_empty(), "{late:?}");
}

/// A third test, `chaos_streams`: server streams with credits (some cancelled
/// by the caller at a random item), one-way calls and events, among ordinary
/// calls, under the same fault mixes, against servers with a window of 1 and
/// of 4. The handlers record every item produced, every one-way call run and
/// every event emitted, so the test checks:
///
/// - streams: the items delivered are items the handler produced for that very
///   call, in increasing index order, none twice; an End's `sent` is the number
///   of items the handler produced for the call and its `received` the number
///   delivered (for a stream the caller cancelled, at least the number delivered:
///   items arriving after the cancel are counted, not handed over); an End with
///   no status comes only after the handler ended the stream, a Cancelled one
///   only for a stream the caller cancelled; a stream reported not executed
///   never had its handler called, one reported executed had; a broken
///   stream's `received` is the number delivered; no handler is asked for an
///   item out of turn (a stream started twice would be);
/// - one-way calls: none runs more than once; one reported not sent never ran;
/// - events: each one delivered is one the server emitted (its payload names
///   the server's life and its number, which must match the frame's), in
///   increasing order per server life, and each client life counts exactly
///   the gaps in the numbers it saw as missed: within one server life those
///   are exactly the events emitted between two delivered ones and not
///   delivered. Across a server restart (numbers start again at 0) or at the
///   ends of a client life, the client cannot know what it missed: those
///   events are reported as `unaccounted`, not checked.
///
/// The number of operations is a fifth of `WIRECALL_CHAOS_CALLS` (default
/// 21,000), spread over the mixes and windows.
#[cfg(all(feature = "streams", feature = "events", feature = "cancel", feature = "stats"))]
mod flows {
    use std::collections::{BTreeMap, BTreeSet};
    use std::sync::{Arc, Mutex};

    use wirecall::embedded_io::{ErrorType, Read, Write};
    use wirecall::machine::ClientMachine;
    use wirecall::sim::{FaultStats, SimClock, SimLink};
    use wirecall::wire::{Decoded, Frame, FrameDecoder};
    use wirecall::{Call, Client, Clock, Error, Executed, Instant, Status, StreamEnd, StreamError};

    use super::{
        CLIENT_ID, Ending, LONGEST_GAP, Liveness, MS, Mix, POLICY, Pace, TIMEOUT, Window, chosen_mixes, env_u64, judge,
    };

    /// An item or an event: who it belongs to, its number, and a check value.
    type Tagged = (u32, u32, u32);

    wirecall::service! {
        /// Streams, one-way calls and events under chaos.
        pub mod flow {
            /// `count` items of call `call`: `(call, index, check(call, index))`.
            fn items(call: u32, count: u8) -> (u32, u32, u32) = 1, stream;
            /// One-way: records that call `call` ran.
            fn note(call: u32) = 2, oneway;
            /// An ordinary call, not idempotent.
            fn poke(call: u32) -> u32 = 3;

            // `(boot id, event number, check(boot id, event number))`.
            event tick: (u32, u32, u32) = 1;
        }
    }

    fn check(a: u32, b: u32) -> u32 {
        a.wrapping_mul(0x9e37_79b9) ^ b.wrapping_mul(0x85eb_ca6b) ^ 0x5bd1_e995
    }

    /// The handlers, recording everything they did.
    struct Flows<'c> {
        /// Per call: items produced, and times the stream handler was called.
        produced: Vec<u32>,
        handler_calls: Vec<u32>,
        /// Per call: the stream handler was asked for an index other than the next.
        out_of_turn: Vec<bool>,
        notes: Vec<u8>,
        pokes: Vec<u8>,
        /// Events emitted, per server life (boot id): numbers 0 to n - 1.
        emitted: BTreeMap<u32, u32>,
        /// With `Pace::Slow`: the clock each item (and each poke) takes its time from.
        slow: Option<(&'c SimClock, fastrand::Rng)>,
    }

    impl Flows<'_> {
        /// With `Pace::Slow`, takes 300 ms to 1.2 s of the server's time: longer
        /// than the attempt timeout, shorter than the deadline and a stream's idle time.
        fn take_time(&mut self) {
            if let Some((clock, rng)) = &mut self.slow {
                clock.advance(MS(rng.u64(300..=LONGEST_GAP.as_millis() as u64)));
            }
        }
    }

    impl flow::Service for Flows<'_> {
        fn items(&mut self, call: u32, count: u8, index: u32) -> Option<Tagged> {
            let c = call as usize;
            self.handler_calls[c] += 1;
            if index != self.produced[c] {
                self.out_of_turn[c] = true;
            }
            if index >= u32::from(count) {
                return None;
            }
            self.take_time();
            self.produced[c] += 1;
            Some((call, index, check(call, index)))
        }
        fn note(&mut self, call: u32) {
            self.notes[call as usize] = self.notes[call as usize].saturating_add(1);
        }
        fn poke(&mut self, call: u32) -> u32 {
            self.take_time();
            self.pokes[call as usize] = self.pokes[call as usize].saturating_add(1);
            super::expected(call)
        }
    }

    type Link<'c, const W: usize> = SimLink<'c, flow::Dispatcher<Flows<'c>>, 256, 256, W>;
    type Stub<'c, const W: usize> = Client<Watch<'c, Link<'c, W>>, &'c SimClock, 256, 256, W>;

    /// The client's link, watched: when each new item of a stream arrives
    /// (its index at or past the next one the stream expects), which restarts
    /// the stream's idle time. Decodes what the client reads as its machine does.
    struct Watch<'c, L> {
        inner: L,
        clock: &'c SimClock,
        decoder: FrameDecoder<256>,
        last_byte: Instant,
        /// Per stream number: the next index expected, and when the last new item came.
        items: BTreeMap<u16, (u32, Instant)>,
    }

    impl<L> Watch<'_, L> {
        fn saw(&mut self, bytes: &[u8]) {
            let now = self.clock.now();
            // As the machines do: a partial frame silent for a second is abandoned.
            if self.decoder.is_mid_frame() && now.saturating_duration_since(self.last_byte) > MS(1000) {
                self.decoder.reset();
            }
            self.last_byte = now;
            let mut rest = bytes;
            while !rest.is_empty() {
                let (used, event) = self.decoder.feed(rest);
                rest = &rest[used..];
                if event == Some(Decoded::Frame) {
                    if let Ok(Frame::Item { seq, index, .. }) = Frame::parse(self.decoder.frame()) {
                        let next = self.items.get(&seq).map_or(0, |&(next, _)| next);
                        if index >= next {
                            self.items.insert(seq, (index + 1, now));
                        }
                    }
                }
            }
        }

        /// When the last new item of stream `seq` arrived, if any did since `forget`.
        fn last_item(&self, seq: u16) -> Option<Instant> {
            self.items.get(&seq).map(|&(_, at)| at)
        }

        fn forget(&mut self) {
            self.items.clear();
        }
    }

    impl<L: ErrorType> ErrorType for Watch<'_, L> {
        type Error = L::Error;
    }

    impl<L: Read> Read for Watch<'_, L> {
        fn read(&mut self, buf: &mut [u8]) -> Result<usize, Self::Error> {
            let n = self.inner.read(buf)?;
            self.saw(&buf[..n]);
            Ok(n)
        }
    }

    impl<L: Write> Write for Watch<'_, L> {
        fn write(&mut self, buf: &[u8]) -> Result<usize, Self::Error> {
            self.inner.write(buf)
        }
        fn flush(&mut self) -> Result<(), Self::Error> {
            self.inner.flush()
        }
    }

    impl<L: wirecall::Link> wirecall::Link for Watch<'_, L> {
        fn read_within(&mut self, buf: &mut [u8], timeout: std::time::Duration) -> Result<Option<usize>, Self::Error> {
            let read = self.inner.read_within(buf, timeout)?;
            if let Some(n) = read {
                self.saw(&buf[..n.min(buf.len())]);
            }
            Ok(read)
        }
    }

    /// An event as a client life received it.
    struct Delivered {
        life: u32,
        seq: u16,
        topic: u16,
        payload: Vec<u8>,
    }

    /// What a client life counted of events.
    struct LifeEvents {
        events: u32,
        missed: u32,
    }

    enum Op {
        Stream { count: u8, stop_at: Option<usize>, got: Vec<Tagged>, outcome: Result<StreamEnd, StreamError> },
        OneWay(Result<(), Error>),
        Poke(Result<u32, Error>),
    }

    struct Report {
        call: u32,
        op: Op,
    }

    #[derive(Default, Debug)]
    struct Tally {
        calls: u64,
        wrong: u64,
        double: u64,
        misclassified: u64,
        unknown: u64,
        retries: u64,
        client_restarts: u64,
        /// Streams that broke after they may have started, and calls refused
        /// UNAVAILABLE (a stream still in progress on the server).
        broken_or_refused: u64,
        streams: u64,
        complete: u64,
        /// Streams that ended with fewer items received than sent.
        lossy: u64,
        /// Streams the caller cancelled, and how they ended.
        cancels: u64,
        ended_cancelled: u64,
        ended_anyway: u64,
        cancel_broken: u64,
        broken: u64,
        items_produced: u64,
        items_delivered: u64,
        oneways: u64,
        oneways_ran: u64,
        oneways_not_sent: u64,
        events_emitted: u64,
        events_delivered: u64,
        events_missed: u64,
        /// Events delivered twice (the same number of the same server life).
        event_dups: u64,
        /// Events delivered after a later one of the same server life.
        events_reordered: u64,
        /// Missed events the clients counted across a server restart: a guess.
        missed_across_restarts: u64,
        /// Events emitted and neither delivered nor counted missed within a server life.
        unaccounted: u64,
        live: Liveness,
    }

    fn new_client<'c, const W: usize>(
        link: Link<'c, W>,
        clock: &'c SimClock,
        life: u32,
        sink: &Arc<Mutex<Vec<Delivered>>>,
    ) -> Stub<'c, W> {
        // The same id in every life (see `super::new_client`).
        let watched =
            Watch { inner: link, clock, decoder: FrameDecoder::new(), last_byte: clock.now(), items: BTreeMap::new() };
        let mut client = Client::with_machine(watched, clock, ClientMachine::with_identity(CLIENT_ID, 0));
        client.set_timeout(TIMEOUT);
        client.set_retry_policy(POLICY);
        #[cfg(feature = "deadlines")]
        client.set_deadline_on_wire(life % 2 == 1);
        let sink = Arc::clone(sink);
        client.on_event(Box::new(move |e| {
            let delivered = Delivered { life, seq: e.seq, topic: e.topic, payload: e.payload.to_vec() };
            sink.lock().expect("not poisoned").push(delivered);
        }));
        client
    }

    fn end_life<const W: usize>(client: &Stub<'_, W>, lives: &mut Vec<LifeEvents>, tally: &mut Tally) {
        let stats = client.stats();
        tally.retries += u64::from(stats.retries);
        lives.push(LifeEvents { events: stats.events, missed: stats.events_missed });
    }

    struct Run<'c> {
        reports: Vec<Report>,
        flows: Flows<'c>,
        delivered: Vec<Delivered>,
        lives: Vec<LifeEvents>,
        faults: FaultStats,
        /// Operations that ended unknown too early, or too late.
        late: Vec<String>,
        /// The link reorders frames (events may then come twice, or late).
        reorders: bool,
    }

    /// The window of an operation starting now on `client`.
    fn window_of<const W: usize>(client: &mut Stub<'_, W>) -> Window {
        let boot = client.machine().boot_id();
        let deadline = client.now() + TIMEOUT;
        Window::open(deadline, client.link_mut().inner.fault_stats(), boot)
    }

    /// The ending of an operation that ended now on `client`.
    fn ending_of<const W: usize>(client: &mut Stub<'_, W>) -> Ending {
        let at = client.now();
        let link = &client.link_mut().inner;
        Ending::at(at, link.fault_stats(), link.boot_id())
    }

    fn run_mix<'c, const W: usize>(
        clock: &'c SimClock,
        mix: &Mix,
        calls: u32,
        seed: u64,
        tally: &mut Tally,
    ) -> Run<'c> {
        let n = calls as usize;
        let slow = (mix.pace == Pace::Slow).then(|| (clock, fastrand::Rng::with_seed(seed ^ 0x510)));
        let flows = Flows {
            produced: vec![0; n],
            handler_calls: vec![0; n],
            out_of_turn: vec![false; n],
            notes: vec![0; n],
            pokes: vec![0; n],
            emitted: BTreeMap::new(),
            slow,
        };
        let mut link: Link<'_, W> = SimLink::new(clock, flow::Dispatcher(flows), mix.faults, seed);
        // Between frames (and between a stream's items), now and then, an event.
        let mut events_rng = fastrand::Rng::with_seed(seed ^ 0xe7e7);
        link.set_between_frames(move |server, service| {
            if events_rng.u8(0..4) != 0 {
                return;
            }
            let boot = server.boot_id();
            let next = service.0.emitted.entry(boot).or_insert(0);
            if server.emit(flow::events::tick, &(boot, *next, check(boot, *next))).is_ok() {
                *next += 1;
            }
        });
        let sink = Arc::new(Mutex::new(Vec::new()));
        let mut rng = fastrand::Rng::with_seed(seed ^ 0x5743_3a11);
        let mut life = 0;
        let mut lives = Vec::new();
        let mut client = new_client::<W>(link, clock, life, &sink);
        let mut reports = Vec::with_capacity(n);
        let mut late = Vec::new();

        for call in 0..calls {
            let mut window = window_of(&mut client);
            client.link_mut().forget();
            let op = match rng.u8(0..10) {
                0..=4 => {
                    // With slow items, short streams: each item may take up to 1.9 s.
                    let count = if mix.pace == Pace::Slow { rng.u8(0..=6) } else { rng.u8(0..=24) };
                    client.set_stream_credits(rng.u32(1..=8));
                    // One stream in five is cancelled by its caller after a random item.
                    let stop_at = (count > 0 && rng.u8(0..5) == 0).then(|| rng.usize(1..=usize::from(count)));
                    let mut got = Vec::new();
                    let outcome = client.call_stream(flow::methods::items, &(call, count), &mut |item: Tagged| {
                        got.push(item);
                        stop_at != Some(got.len())
                    });
                    // The stream's idle time runs from its last new item.
                    let seq = client.machine().next_seq().wrapping_sub(1);
                    if let Some(at) = client.link_mut().last_item(seq) {
                        window.deadline = window.deadline.max(at + TIMEOUT);
                    }
                    Op::Stream { count, stop_at, got, outcome }
                }
                5..=7 => Op::OneWay(client.send_oneway(flow::methods::note, &(call,))),
                _ => Op::Poke(client.call(flow::methods::poke, &(call,))),
            };
            let error = match &op {
                Op::Stream { outcome: Err(e), .. } => Some(&e.error),
                Op::OneWay(Err(e)) | Op::Poke(Err(e)) => Some(e),
                _ => None,
            };
            let ending = ending_of(&mut client);
            let what = || format!("call {call} (life {life})");
            late.extend(judge(what, error, &window, &ending, &mut tally.live));
            // A stream that broke after it may have started stays in progress on
            // the server until a call `W` numbers later shows the client gave up on
            // it (see `a_stream_the_client_gave_up_on_does_not_block_the_server`);
            // until then a second stream is refused UNAVAILABLE. Counted, nothing more.
            let broken_or_refused = match &op {
                Op::Stream { outcome: Err(e), .. } => {
                    e.error.executed() != Executed::No || e.error == Error::Status(Status::Unavailable)
                }
                Op::Poke(Err(e)) => *e == Error::Status(Status::Unavailable),
                _ => false,
            };
            reports.push(Report { call, op });
            if broken_or_refused {
                tally.broken_or_refused += 1;
            }
            if rng.u16(0..1000) == 0 {
                // The client restarts, leaving whatever is in flight on the link.
                end_life(&client, &mut lives, tally);
                tally.client_restarts += 1;
                life += 1;
                let (Watch { inner: link, .. }, _) = client.into_parts();
                client = new_client::<W>(link, clock, life, &sink);
            }
        }
        end_life(&client, &mut lives, tally);
        let (Watch { inner: link, .. }, _) = client.into_parts();
        let faults = *link.fault_stats();
        let flow::Dispatcher(flows) = link.into_service();
        let delivered = std::mem::take(&mut *sink.lock().expect("not poisoned"));
        // `WIRECALL_CHAOS_DEBUG=1`: how the calls of each run ended.
        if std::env::var("WIRECALL_CHAOS_DEBUG").is_ok() {
            let mut hist: BTreeMap<String, u32> = BTreeMap::new();
            for r in &reports {
                let key = match &r.op {
                    Op::Stream { outcome: Ok(e), .. } => format!("stream end {:?}", e.status),
                    Op::Stream { outcome: Err(e), .. } => format!("stream err {:?}", e.error),
                    Op::OneWay(o) => format!("oneway {o:?}"),
                    Op::Poke(o) => format!("poke {:?}", o.map(|_| ())),
                };
                *hist.entry(key).or_default() += 1;
            }
            eprintln!("{hist:?}");
        }
        Run { reports, flows, delivered, lives, faults, late, reorders: mix.faults.reorders() }
    }

    fn check_run(run: &Run, tally: &mut Tally) -> Vec<String> {
        let mut problems = Vec::new();
        let mut problem = |counter: &mut u64, what: String| {
            *counter += 1;
            problems.push(what);
        };
        let f = &run.flows;
        for r in &run.reports {
            let c = r.call as usize;
            tally.calls += 1;
            match &r.op {
                Op::Stream { count, stop_at, got, outcome } => {
                    tally.streams += 1;
                    let (produced, handler_calls) = (f.produced[c], f.handler_calls[c]);
                    tally.items_produced += u64::from(produced);
                    tally.items_delivered += got.len() as u64;
                    if f.out_of_turn[c] || handler_calls > produced + 1 {
                        problem(
                            &mut tally.double,
                            format!("stream {c}: handler asked out of turn ({handler_calls} calls, {produced} items)"),
                        );
                    }
                    let mut last: Option<u32> = None;
                    for &(call, index, chk) in got {
                        if call != r.call || chk != check(call, index) || index >= produced {
                            problem(
                                &mut tally.wrong,
                                format!("stream {c}: got {:?}, handler produced {produced}", (call, index, chk)),
                            );
                        } else if last.is_some_and(|l| index == l) {
                            problem(&mut tally.double, format!("stream {c}: item {index} delivered twice"));
                        } else if last.is_some_and(|l| index < l) {
                            problem(&mut tally.wrong, format!("stream {c}: item {index} after item {last:?}"));
                        }
                        last = Some(index);
                    }
                    // Cancelled by the caller: items arriving after that are counted, not handed over.
                    let stopped = stop_at.is_some_and(|k| got.len() >= k);
                    let delivered = got.len() as u32;
                    let counts_ok = |received: u32| if stopped { received >= delivered } else { received == delivered };
                    if stopped {
                        tally.cancels += 1;
                    }
                    match outcome {
                        Ok(end) => {
                            if end.sent != produced || !counts_ok(end.received) || end.received > end.sent {
                                problem(
                                    &mut tally.misclassified,
                                    format!("stream {c}: {end:?}, {produced} produced, {delivered} delivered"),
                                );
                            }
                            match end.status {
                                None if produced != u32::from(*count) => problem(
                                    &mut tally.misclassified,
                                    format!("stream {c}: ended complete, the handler made {produced} of {count}"),
                                ),
                                Some(Status::Cancelled) if !stopped => problem(
                                    &mut tally.misclassified,
                                    format!("stream {c}: ended cancelled, never cancelled: {end:?}"),
                                ),
                                Some(Status::Cancelled) => tally.ended_cancelled += 1,
                                None if stopped => tally.ended_anyway += 1,
                                None => {}
                                Some(other) => {
                                    problem(&mut tally.misclassified, format!("stream {c}: ended {other:?}"))
                                }
                            }
                            if end.is_complete() {
                                tally.complete += 1;
                            } else if end.received < end.sent && !stopped {
                                tally.lossy += 1;
                            }
                        }
                        Err(StreamError { received, error }) => {
                            tally.broken += 1;
                            if stopped {
                                tally.cancel_broken += 1;
                            }
                            if !counts_ok(*received) {
                                problem(
                                    &mut tally.misclassified,
                                    format!(
                                        "stream {c}: broken ({error}) with received {received}, {delivered} delivered"
                                    ),
                                );
                            }
                            match error.executed() {
                                Executed::No if handler_calls > 0 => problem(
                                    &mut tally.misclassified,
                                    format!("stream {c}: reported not executed ({error}) but its handler ran"),
                                ),
                                Executed::Yes if handler_calls == 0 => problem(
                                    &mut tally.misclassified,
                                    format!("stream {c}: reported executed ({error}) but its handler never ran"),
                                ),
                                Executed::Maybe => tally.unknown += 1,
                                _ => {}
                            }
                        }
                    }
                }
                Op::OneWay(outcome) => {
                    tally.oneways += 1;
                    let ran = f.notes[c];
                    tally.oneways_ran += u64::from(ran.min(1));
                    if ran > 1 {
                        problem(&mut tally.double, format!("one-way {c} ran {ran} times"));
                    }
                    match outcome {
                        Ok(()) => {}
                        Err(e) => match e.executed() {
                            Executed::No => {
                                tally.oneways_not_sent += 1;
                                if ran > 0 {
                                    problem(
                                        &mut tally.misclassified,
                                        format!("one-way {c}: reported not sent ({e}) but ran"),
                                    );
                                }
                            }
                            Executed::Yes if ran == 0 => {
                                problem(
                                    &mut tally.misclassified,
                                    format!("one-way {c}: reported executed ({e}) but never ran"),
                                );
                            }
                            Executed::Maybe => tally.unknown += 1,
                            Executed::Yes => {}
                        },
                    }
                }
                Op::Poke(outcome) => {
                    let ran = f.pokes[c];
                    if ran > 1 {
                        problem(&mut tally.double, format!("poke {c} ran {ran} times"));
                    }
                    match outcome {
                        Ok(v) if *v != super::expected(r.call) => {
                            problem(&mut tally.wrong, format!("poke {c}: wrong value {v:#x}"));
                        }
                        Ok(_) if ran == 0 => problem(&mut tally.misclassified, format!("poke {c}: a value, never ran")),
                        Ok(_) => {}
                        Err(e) => match e.executed() {
                            Executed::No if ran > 0 => {
                                problem(&mut tally.misclassified, format!("poke {c}: not executed ({e}) but ran"))
                            }
                            Executed::Yes if ran == 0 => {
                                problem(&mut tally.misclassified, format!("poke {c}: executed ({e}) but never ran"))
                            }
                            Executed::Maybe => tally.unknown += 1,
                            _ => {}
                        },
                    }
                }
            }
        }

        // Events: each delivered one was emitted, in order per server life, once.
        let emitted: u64 = f.emitted.values().map(|&n| u64::from(n)).sum();
        tally.events_emitted += emitted;
        let mut seen: BTreeSet<(u32, u32)> = BTreeSet::new();
        let mut last_of_boot: BTreeMap<u32, u32> = BTreeMap::new();
        // Per client life: the previous event (boot, number, seq), and what the
        // client must have counted missed: the gaps in its numbers.
        let mut previous: Option<(u32, u32, u32, u16)> = None;
        let mut counted = vec![(0u32, 0u32); run.lives.len()];
        let mut within = 0u64;
        for d in &run.delivered {
            tally.events_delivered += 1;
            let life = d.life as usize;
            counted[life].0 += 1;
            let tick: Option<Tagged> = postcard::from_bytes(&d.payload).ok();
            let Some((boot, number, chk)) = tick.filter(|_| d.topic == flow::events::tick.id) else {
                problem(&mut tally.wrong, format!("event {} on topic {}: not a tick", d.seq, d.topic));
                continue;
            };
            if chk != check(boot, number) || number as u16 != d.seq || f.emitted.get(&boot).is_none_or(|&n| number >= n)
            {
                problem(&mut tally.wrong, format!("event {} {:?}: never emitted", d.seq, (boot, number, chk)));
                continue;
            }
            // A client drops an Event with the number of the one just received
            // (PROTOCOL.md §8.5): on an ordered stream, every repeat. On a link
            // that reorders, a late copy or a late event is delivered: counted.
            if !seen.insert((boot, number)) {
                // See `a_duplicated_event_frame_is_delivered_once`.
                tally.event_dups += 1;
                if !run.reorders {
                    problem(&mut tally.double, format!("event {number} of boot {boot} delivered twice"));
                }
            } else if last_of_boot.get(&boot).is_some_and(|&l| number < l) {
                tally.events_reordered += 1;
                if !run.reorders {
                    let after = last_of_boot.get(&boot);
                    problem(&mut tally.wrong, format!("event {number} of boot {boot} after {after:?}"));
                }
            }
            last_of_boot.insert(boot, number.max(last_of_boot.get(&boot).copied().unwrap_or(0)));
            if let Some((prev_life, prev_boot, prev_number, prev_seq)) = previous.filter(|p| p.0 == d.life) {
                let _ = prev_life;
                let gap = d.seq.wrapping_sub(prev_seq).wrapping_sub(1);
                let gap = if gap < 0x8000 { u32::from(gap) } else { 0 };
                counted[life].1 += gap;
                if prev_boot == boot && number > prev_number {
                    // Within one server life: exactly the events emitted between them.
                    within += u64::from(number - prev_number - 1);
                    if gap != number - prev_number - 1 {
                        problem(
                            &mut tally.misclassified,
                            format!("events {prev_number} to {number}: gap counted {gap}"),
                        );
                    }
                } else if prev_boot != boot {
                    tally.missed_across_restarts += u64::from(gap);
                }
            }
            previous = Some((d.life, boot, number, d.seq));
        }
        for (life, (l, &(events, missed))) in run.lives.iter().zip(&counted).enumerate() {
            tally.events_missed += u64::from(l.missed);
            if (l.events, l.missed) != (events, missed) {
                problem(
                    &mut tally.misclassified,
                    format!(
                        "client life {life}: counted {} events, {} missed; delivered {events}, gaps {missed}",
                        l.events, l.missed
                    ),
                );
            }
        }
        tally.unaccounted += emitted.saturating_sub(seen.len() as u64 + within);
        problems
    }

    /// What a client machine handed out, owned.
    #[derive(Debug, Clone, PartialEq, Eq)]
    enum Got {
        Done(u16, Result<Vec<u8>, Error>),
        Item(u16, u32),
        End(u16, StreamEnd),
        Event(u16),
    }

    fn owned(incoming: wirecall::machine::Incoming<'_>) -> Got {
        use wirecall::machine::Incoming;
        match incoming {
            Incoming::Done { seq, outcome } => Got::Done(seq, outcome.map(<[u8]>::to_vec)),
            Incoming::Item { seq, index, .. } => Got::Item(seq, index),
            Incoming::End { seq, end } => Got::End(seq, end),
            Incoming::Event { seq, .. } => Got::Event(seq),
        }
    }

    fn empty_flows(calls: usize) -> flow::Dispatcher<Flows<'static>> {
        flow::Dispatcher(Flows {
            produced: vec![0; calls],
            handler_calls: vec![0; calls],
            out_of_turn: vec![false; calls],
            notes: vec![0; calls],
            pokes: vec![0; calls],
            emitted: BTreeMap::new(),
            slow: None,
        })
    }

    /// Runs a client machine against a server machine, 1 ms per step, for up to
    /// `ms` ms or until `until` says stop, with `lose` deciding which frames
    /// the server sends are lost (given the frame as sent, on the wire).
    fn converse<const W: usize>(
        client: &mut ClientMachine<256, 256, W>,
        server: &mut wirecall::machine::ServerMachine<256, 256, W>,
        service: &mut flow::Dispatcher<Flows<'_>>,
        from_ms: u64,
        ms: u64,
        mut lose: impl FnMut(&[u8]) -> bool,
        mut until: impl FnMut(&Got) -> bool,
    ) -> Vec<Got> {
        let mut got = Vec::new();
        for t in from_ms..from_ms + ms {
            let now = wirecall::Instant::from_millis(t);
            while let Some((seq, e)) = client.poll(now) {
                got.push(Got::Done(seq, Err(e)));
            }
            let mut to_server = client.outgoing().to_vec();
            client.wrote(to_server.len());
            loop {
                let used = server.receive(&to_server, now, service);
                to_server.drain(..used);
                let answer = server.outgoing().to_vec();
                server.wrote(answer.len());
                if !answer.is_empty() && !lose(&answer) {
                    let mut rest = &answer[..];
                    while !rest.is_empty() {
                        let (used, incoming) = client.receive(rest, now);
                        rest = &rest[used..];
                        got.extend(incoming.map(owned));
                    }
                    let more = client.outgoing().to_vec();
                    client.wrote(more.len());
                    to_server.extend_from_slice(&more);
                }
                if answer.is_empty() && to_server.is_empty() && !server.has_work() {
                    break;
                }
            }
            if got.iter().any(&mut until) {
                break;
            }
        }
        got
    }

    /// Whether `frame`, as sent on the wire, is a stream item (kind 9).
    fn is_item(frame: &[u8]) -> bool {
        frame.get(1) == Some(&0x19)
    }

    /// The regression tests below drive the machines by hand; without losses
    /// the same harness ends the stream complete and answers a call.
    #[test]
    fn the_machine_harness_runs_a_stream_and_a_call() {
        let mut service = empty_flows(2);
        let mut server = wirecall::machine::ServerMachine::<256, 256>::new();
        let mut client = ClientMachine::<256, 256>::new();
        let at = wirecall::Instant::from_millis;
        let seq = client.start_stream(flow::methods::items, &(0u32, 5u8), 1, at(0), at(2000)).unwrap();
        let done = |g: &Got| matches!(g, Got::End(..) | Got::Done(..));
        let got = converse(&mut client, &mut server, &mut service, 0, 5000, |_| false, done);
        assert_eq!(got.iter().filter(|g| matches!(g, Got::Item(..))).count(), 5);
        assert_eq!(got.last(), Some(&Got::End(seq, StreamEnd { sent: 5, received: 5, status: None })));
        let poke = client.start(flow::methods::poke, &(1u32,), at(5000), at(7000)).unwrap();
        let got = converse(&mut client, &mut server, &mut service, 5000, 3000, |_| false, done);
        let value = postcard::to_allocvec(&super::expected(1)).unwrap();
        assert_eq!(got, [Got::Done(poke, Ok(value))]);
    }

    /// Found by `chaos_streams` (streams breaking with `Timeout` under byte
    /// noise alone). With a credit of 1, item 1 of 5 is lost on the way: the
    /// client has granted up to index 2 (item 0 + 1 + credit) and keeps
    /// resent that same Credit on each attempt timeout while the server, having
    /// sent everything below 2, waited for a larger limit, until the stream
    /// ended `Timeout` (fixed in d874f70: a silent attempt raises the credit).
    /// Expected: the End (sent 5, received 4), as for any lost item.
    #[test]
    fn a_lost_item_at_the_edge_of_the_credit_does_not_stall_the_stream() {
        let mut service = empty_flows(1);
        let mut server = wirecall::machine::ServerMachine::<256, 256>::new();
        let mut client = ClientMachine::<256, 256>::new();
        let at = wirecall::Instant::from_millis;
        let seq = client.start_stream(flow::methods::items, &(0u32, 5u8), 1, at(0), at(2000)).unwrap();
        let mut items = 0;
        let got = converse(
            &mut client,
            &mut server,
            &mut service,
            0,
            5000,
            |frame| {
                items += usize::from(is_item(frame));
                is_item(frame) && items == 2
            },
            |g| matches!(g, Got::End(..) | Got::Done(..)),
        );
        let end = StreamEnd { sent: 5, received: 4, status: None };
        assert_eq!(got.last(), Some(&Got::End(seq, end)), "{got:?}");
    }

    /// Found by `chaos_streams` (almost every stream after the first broken one
    /// refused UNAVAILABLE, and every call with a window of 1). A stream whose
    /// client gave up (here: nothing from the server for the stream's whole
    /// idle time) stayed in progress on the server for good, and every later
    /// call was refused UNAVAILABLE (fixed in d874f70: a call `W` or more
    /// numbers after a stream ends it). Expected: the next call, once the link
    /// works, is answered.
    #[test]
    fn a_stream_the_client_gave_up_on_does_not_block_the_server() {
        let mut service = empty_flows(2);
        let mut server = wirecall::machine::ServerMachine::<256, 256>::new();
        let mut client = ClientMachine::<256, 256>::new();
        let at = wirecall::Instant::from_millis;
        let mut welcomed = false;
        let seq = client.start_stream(flow::methods::items, &(0u32, 20u8), 2, at(0), at(2000)).unwrap();
        // Everything the server sends after its Welcome is lost.
        let got = converse(
            &mut client,
            &mut server,
            &mut service,
            0,
            5000,
            |_| std::mem::replace(&mut welcomed, true),
            |g| matches!(g, Got::End(..) | Got::Done(..)),
        );
        assert_eq!(got.last(), Some(&Got::Done(seq, Err(Error::Timeout))), "{got:?}");
        // The link works again.
        let poke = client.start(flow::methods::poke, &(1u32,), at(5000), at(7000)).unwrap();
        let got =
            converse(&mut client, &mut server, &mut service, 5000, 3000, |_| false, |g| matches!(g, Got::Done(..)));
        let value = postcard::to_allocvec(&super::expected(1)).unwrap();
        assert_eq!(got.last(), Some(&Got::Done(poke, Ok(value))), "{got:?}");
    }

    /// Found by `chaos_streams` (`event_dups` under frame faults): an Event
    /// frame the link delivers twice is handed to the application twice,
    /// though its number said it was the same event (fixed in d874f70).
    /// Expected: delivered once.
    #[test]
    fn a_duplicated_event_frame_is_delivered_once() {
        let mut server = wirecall::machine::ServerMachine::<256, 256>::new();
        server.emit(flow::events::tick, &(0, 0, check(0, 0))).unwrap();
        let event = server.outgoing().to_vec();
        let mut client = ClientMachine::<256, 256>::new();
        let mut got = Vec::new();
        for _ in 0..2 {
            let (used, incoming) = client.receive(&event, wirecall::Instant::ZERO);
            assert_eq!(used, event.len());
            got.extend(incoming.map(owned));
        }
        assert_eq!(got, [Got::Event(0)], "the same event twice");
    }

    #[test]
    fn chaos_streams() {
        let total = env_u64("WIRECALL_CHAOS_CALLS", 105_000);
        let seed = env_u64("WIRECALL_CHAOS_SEED", 0x5eed);
        let mixes = chosen_mixes();
        let ops = total.div_ceil(5);
        // Each mix twice: servers with a window of 1 and of 4.
        let per_run = u32::try_from(ops.div_ceil(2 * mixes.len() as u64)).expect("calls per mix fit in u32");
        let started = std::time::Instant::now();
        let mut tally = Tally::default();
        let mut failures = Vec::new();

        for (i, mix) in mixes.iter().enumerate() {
            let name = mix.name;
            for window in [1, 4] {
                let run_seed = seed.wrapping_add(0x200 + 2 * i as u64 + u64::from(window == 4));
                let before = (tally.unknown, tally.retries, tally.broken, tally.events_delivered, tally.event_dups);
                let live_before = tally.live;
                let clock = SimClock::new();
                let run = match window {
                    1 => run_mix::<1>(&clock, mix, per_run, run_seed, &mut tally),
                    _ => run_mix::<4>(&clock, mix, per_run, run_seed, &mut tally),
                };
                let problems = check_run(&run, &mut tally);
                let live = tally.live.since(live_before);
                println!(
                    "mix {name:<13} window={window} seed={run_seed:#x} calls={per_run} unknown={} retries={} broken_streams={} events={} event_dups={} {live} faults={:?}",
                    tally.unknown - before.0,
                    tally.retries - before.1,
                    tally.broken - before.2,
                    tally.events_delivered - before.3,
                    tally.event_dups - before.4,
                    run.faults,
                );
                let label = format!(
                    "mix {name}, window {window} (WIRECALL_CHAOS_SEED={seed} WIRECALL_CHAOS_CALLS={total}), seed {run_seed:#x}"
                );
                super::report_run(&mut failures, label, mix, &problems, &run.late, live.evicted);
            }
        }
        println!(
            "chaos streams: streams={} complete={} lossy={} broken={} cancels={} (ended cancelled={} ended anyway={} broken={}) items produced={} delivered={}",
            tally.streams,
            tally.complete,
            tally.lossy,
            tally.broken,
            tally.cancels,
            tally.ended_cancelled,
            tally.ended_anyway,
            tally.cancel_broken,
            tally.items_produced,
            tally.items_delivered,
        );
        println!(
            "chaos streams: oneways={} ran={} not_sent={} events emitted={} delivered={} missed={} (across restarts={}) unaccounted={} event_dups={} (reordered: {}) client_restarts={} (streams broken or refused: {}) wall_time={:.1}s",
            tally.oneways,
            tally.oneways_ran,
            tally.oneways_not_sent,
            tally.events_emitted,
            tally.events_delivered,
            tally.events_missed,
            tally.missed_across_restarts,
            tally.unaccounted,
            tally.event_dups,
            tally.events_reordered,
            tally.client_restarts,
            tally.broken_or_refused,
            started.elapsed().as_secs_f64()
        );
        println!("chaos streams: liveness: {}", tally.live);
        println!(
            "chaos streams: calls={} wrong={} double={} misclassified={} unknown={} retries={} premature={} stalled={}",
            tally.calls,
            tally.wrong,
            tally.double,
            tally.misclassified,
            tally.unknown,
            tally.retries,
            tally.live.premature,
            tally.live.stalled
        );
        assert!(failures.is_empty(), "chaos found violations:\n{}", failures.join("\n"));
        assert_eq!((tally.wrong, tally.double, tally.misclassified), (0, 0, 0));
        assert_eq!((tally.live.premature, tally.live.stalled), (0, 0), "premature and stalled");
        assert!(tally.calls >= ops, "ran {} calls, wanted at least {ops}", tally.calls);
    }
}
