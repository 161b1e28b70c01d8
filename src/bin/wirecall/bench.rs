//! `wirecall bench`: one method called N times in a row, timed call by call.

use std::fmt;
use std::time::{Duration, Instant};

use wirecall::describe::remote::RemoteMethod;
use wirecall::wire::Encoded;
use wirecall::{Client, Executed, Link, StdClock};

/// What a run measured.
pub struct Report {
    method: String,
    calls: u32,
    elapsed: Duration,
    /// The latency of each call that returned a value, sorted.
    latencies: Vec<Duration>,
    not_executed: u32,
    unknown: u32,
    ran: u32,
}

/// Calls `method` with `args` `n` times; draws a progress bar on stderr when `progress`.
pub fn run<L: Link>(
    client: &mut Client<L, StdClock>,
    method: &RemoteMethod,
    args: &[u8],
    n: u32,
    progress: bool,
) -> Report {
    let bar = if progress {
        let bar = indicatif::ProgressBar::new(u64::from(n));
        if let Ok(style) = indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} calls, {per_sec}, eta {eta}") {
            bar.set_style(style);
        }
        bar
    } else {
        indicatif::ProgressBar::hidden()
    };
    let mut report = Report {
        method: method.name.clone(),
        calls: n,
        elapsed: Duration::ZERO,
        latencies: Vec::with_capacity(n as usize),
        not_executed: 0,
        unknown: 0,
        ran: 0,
    };
    let started = Instant::now();
    for _ in 0..n {
        let call_started = Instant::now();
        // The value is not decoded: a bench measures the calls, not JSON.
        match client.call_with(method.method(), &Encoded(args), |_| Some(())) {
            Ok(()) => report.latencies.push(call_started.elapsed()),
            Err(error) => match error.executed() {
                Executed::No => report.not_executed += 1,
                Executed::Maybe => report.unknown += 1,
                Executed::Yes => report.ran += 1,
            },
        }
        bar.inc(1);
    }
    report.elapsed = started.elapsed();
    bar.finish_and_clear();
    report.latencies.sort_unstable();
    report
}

impl Report {
    /// How many calls failed.
    pub fn failed(&self) -> u32 {
        self.not_executed + self.unknown + self.ran
    }

    /// The exit code when calls failed: the worst outcome among them.
    pub fn exit_code(&self) -> Option<u8> {
        if self.unknown > 0 {
            Some(3)
        } else if self.ran > 0 {
            Some(4)
        } else if self.not_executed > 0 {
            Some(1)
        } else {
            None
        }
    }

    /// The latency below which `per_cent` of the successful calls fell (nearest rank).
    fn percentile(&self, per_cent: usize) -> Option<Duration> {
        let n = self.latencies.len();
        let rank = (n * per_cent).div_ceil(100).max(1);
        self.latencies.get(rank - 1).copied()
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let seconds = self.elapsed.as_secs_f64();
        let ok = self.latencies.len();
        let rate = if seconds > 0.0 { ok as f64 / seconds } else { 0.0 };
        writeln!(f, "{}: {} calls in {seconds:.3} s, {rate:.0} calls/s", self.method, self.calls)?;
        let micros = |d: Option<Duration>| d.map_or("-".to_string(), |d| format!("{} µs", d.as_micros()));
        writeln!(
            f,
            "latency: p50 {}, p99 {}, max {}",
            micros(self.percentile(50)),
            micros(self.percentile(99)),
            micros(self.latencies.last().copied())
        )?;
        if self.failed() > 0 {
            writeln!(
                f,
                "failed: {} (not executed {}, outcome unknown {}, ran but value lost {})",
                self.failed(),
                self.not_executed,
                self.unknown,
                self.ran
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(latencies_us: &[u64]) -> Report {
        Report {
            method: "add".into(),
            calls: latencies_us.len() as u32,
            elapsed: Duration::from_secs(1),
            latencies: latencies_us.iter().map(|&us| Duration::from_micros(us)).collect(),
            not_executed: 0,
            unknown: 0,
            ran: 0,
        }
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let r = report(&(1..=100).collect::<Vec<_>>());
        assert_eq!(r.percentile(50), Some(Duration::from_micros(50)));
        assert_eq!(r.percentile(99), Some(Duration::from_micros(99)));
        assert_eq!(report(&[7]).percentile(99), Some(Duration::from_micros(7)));
        assert_eq!(report(&[]).percentile(50), None);
    }

    #[test]
    fn the_worst_failure_sets_the_exit_code() {
        let mut r = report(&[1]);
        assert_eq!(r.exit_code(), None);
        r.not_executed = 1;
        assert_eq!(r.exit_code(), Some(1));
        r.ran = 1;
        assert_eq!(r.exit_code(), Some(4));
        r.unknown = 1;
        assert_eq!(r.exit_code(), Some(3));
        assert!(r.to_string().contains("failed: 3 (not executed 1, outcome unknown 1, ran but value lost 1)"));
    }
}
