//! The demo service that wirecall's example boards serve (feature `demo`).
//!
//! One definition shared by the firmware under `boards/`, the host tests that
//! call it, and the examples, so they cannot drift apart. Method ids 1 and 2
//! are those of PROTOCOL.md's test vectors.

use heapless::String;

use crate::time::Clock;

crate::service! {
    /// The demo service.
    pub mod demo {
        const VERSION: &str = "1.0.0";
        /// Returns `"Hello <name>"` (cut short past 32 bytes).
        fn greet(name: &str) -> String<32> = 1;
        /// Adds two numbers, wrapping on overflow.
        fn add(a: i32, b: i32) -> i32 = 2, idempotent;
        /// Adds one to the board's counter and returns it: not idempotent.
        fn bump() -> u32 = 3;
        /// Keeps the board busy for `ms` milliseconds and returns the milliseconds it
        /// spent; when the request carried a budget, it stops 20 ms before its
        /// deadline, so that the answer still reaches the client: for deadline tests.
        fn slow(ms: u32) -> u32 = 4;
    }
}

/// The demo service's handlers, reading time from `C` for `slow`.
pub struct Board<C> {
    /// The counter `bump` advances.
    pub counter: u32,
    clock: C,
    /// The deadline of the call being handled, if its request carried a budget.
    #[cfg(feature = "deadlines")]
    deadline: Option<crate::Instant>,
}

/// How long before its deadline `slow` stops: time for the answer to travel.
#[cfg(feature = "deadlines")]
const SLOW_MARGIN: core::time::Duration = core::time::Duration::from_millis(20);

impl<C: Clock> Board<C> {
    /// A board whose counter starts at 0.
    pub const fn new(clock: C) -> Self {
        Board {
            counter: 0,
            clock,
            #[cfg(feature = "deadlines")]
            deadline: None,
        }
    }
}

impl<C: Clock> demo::Service for Board<C> {
    fn greet(&mut self, name: &str) -> String<32> {
        let mut greeting = String::new();
        let _ = greeting.push_str("Hello ");
        for c in name.chars() {
            if greeting.push(c).is_err() {
                break;
            }
        }
        greeting
    }

    fn add(&mut self, a: i32, b: i32) -> i32 {
        a.wrapping_add(b)
    }

    fn bump(&mut self) -> u32 {
        self.counter = self.counter.wrapping_add(1);
        self.counter
    }

    fn slow(&mut self, ms: u32) -> u32 {
        let started = self.clock.now();
        let until = started + core::time::Duration::from_millis(u64::from(ms));
        #[cfg(feature = "deadlines")]
        if let Some(stop) = self.deadline.map(|deadline| deadline - SLOW_MARGIN).filter(|&stop| stop < until) {
            while self.clock.now() < stop {
                core::hint::spin_loop();
            }
            let spent = stop.saturating_duration_since(started);
            // Whole milliseconds without u128 arithmetic.
            let spent = spent.as_secs().saturating_mul(1000).saturating_add(u64::from(spent.subsec_millis()));
            return u32::try_from(spent).unwrap_or(u32::MAX);
        }
        while self.clock.now() < until {
            core::hint::spin_loop();
        }
        ms
    }

    #[cfg(feature = "deadlines")]
    fn set_deadline(&mut self, deadline: Option<crate::Instant>) {
        self.deadline = deadline;
    }
}

#[cfg(test)]
mod tests {
    use super::demo::Service as _;
    use super::*;

    struct Fake(core::cell::Cell<u64>);

    impl Clock for &Fake {
        fn now(&self) -> crate::Instant {
            self.0.set(self.0.get() + 1000);
            crate::Instant::from_micros(self.0.get())
        }
    }

    #[test]
    fn handlers() {
        let clock = Fake(core::cell::Cell::new(0));
        let mut board = Board::new(&clock);
        assert_eq!(board.greet("Ada").as_str(), "Hello Ada");
        assert_eq!(board.greet(&"x".repeat(40)).len(), 32);
        assert_eq!(board.add(i32::MAX, 1), i32::MIN);
        assert_eq!((board.bump(), board.bump()), (1, 2));
        assert_eq!(board.slow(5), 5);
        assert!(clock.0.get() >= 5000);
        // With a deadline 50 ms away, slow(1000) stops 20 ms before it.
        #[cfg(feature = "deadlines")]
        {
            let now = clock.0.get();
            board.set_deadline(Some(crate::Instant::from_micros(now + 50_000)));
            let spent = board.slow(1000);
            assert!((29..=31).contains(&spent), "{spent}");
        }
    }
}
