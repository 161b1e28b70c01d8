//! Chaos: calls through a simulated link that drops, flips, duplicates, truncates
//! and stalls bytes and frames, puts garbage between them, goes down, and restarts
//! the server, while clients restart too. The handlers record every execution by
//! call, so the test knows the truth and checks every outcome the client reported:
//!
//! - no wrong value is ever accepted;
//! - no call of a method that is not idempotent runs more than once;
//! - "not executed" is never reported for a call that ran, and a value (or "it
//!   ran") never for one that did not.
//!
//! A second test, `chaos_pipelined`, runs the same checks with several calls in
//! flight (clients with a window of 4 and of 8, against servers with the same
//! window) and with calls cancelled at random: before the session opens, right
//! after the request, or while the call waits for its answer. A cancelled call
//! must still be reported truthfully: "cancelled" only if it never ran and never
//! will, its value if it ran.
//!
//! Time is simulated: a timeout costs no wall-clock time. The number of calls is
//! `WIRECALL_CHAOS_CALLS` (default 105,000 for each test, spread over the fault
//! mixes) and the seed `WIRECALL_CHAOS_SEED`; a failure prints the seed and mix
//! to rerun it.
//!
//! Run: `cargo test --release --test chaos -- --nocapture`

use std::time::Duration;

use wirecall::machine::ClientMachine;
use wirecall::sim::{FaultStats, Faults, SimClock, SimLink};
use wirecall::{Call, Client, Error, Executed, Method, RetryPolicy};

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
}

const MS: fn(u64) -> Duration = Duration::from_millis;

fn mixes() -> Vec<(&'static str, Faults)> {
    let noise = Faults { drop_byte: 0.002, flip_bit: 0.002, ..Faults::NONE };
    let frames = Faults { duplicate: 0.05, truncate: 0.03, garbage: 0.05, ..Faults::NONE };
    let stalls = Faults { stall: 0.08, stall_time: (MS(50), MS(900)), ..Faults::NONE };
    let restarts = Faults { restart_before: 0.01, restart_after: 0.01, ..Faults::NONE };
    let cuts = Faults { cut: 0.01, cut_time: (MS(10), MS(400)), ..Faults::NONE };
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
    };
    vec![
        ("clean", Faults::NONE),
        ("byte-noise", noise),
        ("frame-faults", frames),
        ("stalls", stalls),
        ("restarts", restarts),
        ("cuts", cuts),
        ("everything", everything),
    ]
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
    // Each life of the client starts its sequence numbers at the same place, so
    // a stale answer from an earlier life would carry a number the new life uses.
    let machine = ClientMachine::with_identity(life, 0);
    let mut client = Client::with_machine(link, clock, machine);
    client.set_timeout(MS(2000));
    client.set_retry_policy(RetryPolicy { attempts: 5, attempt_timeout: MS(250), ..RetryPolicy::DEFAULT });
    // Every other life sends its time budget in each request (Timed Requests),
    // so both request kinds go through the faults.
    #[cfg(feature = "deadlines")]
    client.set_deadline_on_wire(life % 2 == 1);
    client
}

/// A random kind of call: mostly not idempotent.
fn pick_kind(rng: &mut fastrand::Rng) -> Kind {
    match rng.u8(0..20) {
        0..=9 => Kind::Dispense,
        10..=15 => Kind::Read,
        16..=18 => Kind::Slow,
        _ => Kind::Unknown,
    }
}

/// Runs `calls` calls under `faults`; returns the reports and the ground truth.
fn run_mix(faults: Faults, calls: u32, seed: u64, tally: &mut Tally) -> (Vec<Report>, Vec<u8>, FaultStats) {
    let clock = SimClock::new();
    let truth = Truth { runs: vec![0; calls as usize], clock: &clock };
    let link: SimLink<'_, _> = SimLink::new(&clock, chaos::Dispatcher(truth), faults, seed);
    let mut rng = fastrand::Rng::with_seed(seed ^ 0xc0ffee);
    let mut life = 0;
    let mut client = new_client(link, &clock, life);
    let mut reports = Vec::with_capacity(calls as usize);

    for call in 0..calls {
        let kind = pick_kind(&mut rng);
        let mut outcome = match kind {
            Kind::Dispense => client.call(chaos::methods::dispense, &(call, rng.u8(..))),
            Kind::Read => client.call(chaos::methods::read, &(call,)),
            Kind::Slow => client.call(chaos::methods::slow, &(call, rng.u16(0..600))),
            Kind::Unknown => client.call(Method::new(99), &(call,)),
        };
        if matches!(&outcome, Err(e) if e.executed() == Executed::Maybe) && rng.bool() {
            tally.resumes += 1;
            match client.resume::<u32>() {
                // Nothing to ask about again (the unknown outcome came from an
                // earlier attempt of an idempotent call, which a later attempt
                // replaced): that says nothing of the call, whose outcome stands.
                Err(Error::NothingToResume) => tally.nothing_to_resume += 1,
                resumed => outcome = resumed,
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
    (reports, truth.runs, faults)
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

#[test]
fn chaos() {
    let total = env_u64("WIRECALL_CHAOS_CALLS", 105_000);
    let seed = env_u64("WIRECALL_CHAOS_SEED", 0x5eed);
    let mixes = mixes();
    let per_mix = u32::try_from(total.div_ceil(mixes.len() as u64)).expect("calls per mix fit in u32");
    let started = std::time::Instant::now();
    let mut tally = Tally::default();
    let mut failures = Vec::new();

    for (i, (name, faults)) in mixes.into_iter().enumerate() {
        let mix_seed = seed.wrapping_add(i as u64);
        let before = (tally.unknown, tally.retries);
        let (reports, runs, fault_stats) = run_mix(faults, per_mix, mix_seed, &mut tally);
        let problems = check(&reports, &runs, &mut tally);
        println!(
            "mix {name:<13} seed={mix_seed:#x} calls={per_mix} unknown={} retries={} faults={fault_stats:?}",
            tally.unknown - before.0,
            tally.retries - before.1,
        );
        if !problems.is_empty() {
            failures.push(format!(
                "mix {name} (WIRECALL_CHAOS_SEED={seed} WIRECALL_CHAOS_CALLS={total}), seed {mix_seed:#x}: {} problems, first: {:?}",
                problems.len(),
                &problems[..problems.len().min(5)]
            ));
        }
    }
    println!(
        "chaos: resumes={} (nothing to resume: {}) client_restarts={} idempotent_reruns={} wall_time={:.1}s",
        tally.resumes,
        tally.nothing_to_resume,
        tally.client_restarts,
        tally.idempotent_reruns,
        started.elapsed().as_secs_f64()
    );
    println!(
        "chaos: calls={} wrong={} double={} misclassified={} unknown={} retries={}",
        tally.calls, tally.wrong, tally.double, tally.misclassified, tally.unknown, tally.retries
    );
    assert!(failures.is_empty(), "chaos found violations:\n{}", failures.join("\n"));
    assert!(tally.calls >= total, "ran {} calls, wanted at least {total}", tally.calls);
}

/// Runs `calls` calls under `faults` with up to `W` in flight, cancelling some;
/// returns the reports and the ground truth.
#[cfg(all(feature = "pipelining", feature = "cancel"))]
fn run_pipelined_mix<const W: usize>(
    faults: Faults,
    calls: u32,
    seed: u64,
    tally: &mut Tally,
) -> (Vec<Report>, Vec<u8>, FaultStats) {
    use std::collections::{BTreeMap, BTreeSet};

    let clock = SimClock::new();
    let truth = Truth { runs: vec![0; calls as usize], clock: &clock };
    let link: SimLink<'_, _, 256, 256, W> = SimLink::new(&clock, chaos::Dispatcher(truth), faults, seed);
    let mut rng = fastrand::Rng::with_seed(seed ^ 0x919e_11ed);
    let mut life = 0;
    let mut client = new_client::<W>(link, &clock, life);
    let mut reports = Vec::with_capacity(calls as usize);
    // The calls in flight, by sequence number (ordered, so a seed replays exactly).
    let mut in_flight: BTreeMap<u16, (u32, Kind)> = BTreeMap::new();
    let mut cancelled: BTreeSet<u32> = BTreeSet::new();
    let mut next = 0;

    while next < calls || !in_flight.is_empty() {
        // Start calls: sometimes enough to fill the window, sometimes one.
        let mut wanted = rng.usize(1..=W);
        while next < calls && wanted > 0 {
            let call = next;
            let kind = pick_kind(&mut rng);
            let started = match kind {
                Kind::Dispense => client.start(chaos::methods::dispense, &(call, rng.u8(..))),
                Kind::Read => client.start(chaos::methods::read, &(call,)),
                Kind::Slow => client.start(chaos::methods::slow, &(call, rng.u16(0..600))),
                Kind::Unknown => client.start(Method::new(99), &(call,)),
            };
            match started {
                Err(Error::Busy) => break,
                Ok(seq) => {
                    in_flight.insert(seq, (call, kind));
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
                        in_flight.insert(seq, (call, kind));
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
            let (&seq, &(call, _)) = in_flight.iter().nth(rng.usize(..in_flight.len())).expect("in range");
            if client.cancel(seq) {
                tally.cancels += 1;
                cancelled.insert(call);
            }
        }
        let mut restart = rng.u16(0..1000) == 0;
        match client.next_completed() {
            Some(done) => {
                let Some((call, kind)) = in_flight.remove(&done.seq) else {
                    panic!("an outcome for seq {} (life {life}), which is not in flight: {:?}", done.seq, done.outcome);
                };
                let outcome = done.decode::<u32>();
                if cancelled.remove(&call) {
                    match &outcome {
                        Ok(_) => tally.cancelled_but_ran += 1,
                        Err(Error::Cancelled) => tally.cancelled_unsent += 1,
                        Err(Error::Status(wirecall::Status::Cancelled)) => tally.cancelled_by_server += 1,
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
            for (_, (call, kind)) in std::mem::take(&mut in_flight) {
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
    (reports, truth.runs, faults)
}

#[cfg(all(feature = "pipelining", feature = "cancel"))]
#[test]
fn chaos_pipelined() {
    let total = env_u64("WIRECALL_CHAOS_CALLS", 105_000);
    let seed = env_u64("WIRECALL_CHAOS_SEED", 0x5eed);
    let mixes = mixes();
    // Each mix twice: with a window of 4 and of 8.
    let per_run = u32::try_from(total.div_ceil(2 * mixes.len() as u64)).expect("calls per mix fit in u32");
    let started = std::time::Instant::now();
    let mut tally = Tally::default();
    let mut failures = Vec::new();

    for (i, (name, faults)) in mixes.into_iter().enumerate() {
        for window in [4, 8] {
            let run_seed = seed.wrapping_add(0x100 + 2 * i as u64 + u64::from(window == 8));
            let before = (tally.unknown, tally.retries, tally.cancels, tally.orphans, tally.stuck, tally.abandoned);
            let (reports, runs, fault_stats) = match window {
                4 => run_pipelined_mix::<4>(faults, per_run, run_seed, &mut tally),
                _ => run_pipelined_mix::<8>(faults, per_run, run_seed, &mut tally),
            };
            let problems = check(&reports, &runs, &mut tally);
            println!(
                "mix {name:<13} window={window} seed={run_seed:#x} calls={per_run} unknown={} retries={} cancels={} orphans={} stuck={} abandoned={} faults={fault_stats:?}",
                tally.unknown - before.0,
                tally.retries - before.1,
                tally.cancels - before.2,
                tally.orphans - before.3,
                tally.stuck - before.4,
                tally.abandoned - before.5,
            );
            if !problems.is_empty() {
                failures.push(format!(
                    "mix {name}, window {window} (WIRECALL_CHAOS_SEED={seed} WIRECALL_CHAOS_CALLS={total}), seed {run_seed:#x}: {} problems, first: {:?}",
                    problems.len(),
                    &problems[..problems.len().min(5)]
                ));
            }
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
    println!(
        "chaos pipelined: calls={} wrong={} double={} misclassified={} unknown={} retries={}",
        tally.calls, tally.wrong, tally.double, tally.misclassified, tally.unknown, tally.retries
    );
    // Calls started with `start` are never made again as new calls: an
    // idempotent method that ran twice ran twice for one call.
    if tally.idempotent_reruns > 0 {
        failures.push(format!("{} idempotent calls ran more than once", tally.idempotent_reruns));
    }
    assert!(failures.is_empty(), "chaos found violations:\n{}", failures.join("\n"));
    assert!(tally.calls >= total, "ran {} calls, wanted at least {total}", tally.calls);
    if total >= 10_000 {
        let kinds = [tally.cancelled_unsent, tally.cancelled_by_server, tally.cancelled_but_ran];
        assert!(kinds.iter().all(|&n| n > 0), "every way a cancel can end happened: {kinds:?}");
    }
}

/// The mix in which `WIRECALL_CHAOS_SEED=16 WIRECALL_CHAOS_CALLS=300000` finds
/// a non-idempotent call run twice (the same bug as
/// `tests/pipelining.rs::a_call_that_ran_on_a_server_that_restarted_is_not_run_again_after_a_link_failure`):
/// call 7124 runs, the server restarts, the link is cut, a new call opens a
/// session on the new boot, and the old request is sent again into it.
#[cfg(all(feature = "pipelining", feature = "cancel"))]
#[test]
fn chaos_pipelined_seed_16_everything_window_8() {
    let (name, faults) = mixes().swap_remove(6);
    assert_eq!(name, "everything");
    let mut tally = Tally::default();
    let (reports, runs, _) = run_pipelined_mix::<8>(faults, 21_429, 0x11d, &mut tally);
    let problems = check(&reports, &runs, &mut tally);
    assert!(problems.is_empty(), "{problems:?}");
}
