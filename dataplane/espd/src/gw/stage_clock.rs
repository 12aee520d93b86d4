//! Per-stage cycle accounting of a worker, for `espd bench --stages`: TSC reads at the
//! boundaries of the stages that follow classification (a handful per burst, so the cost
//! per packet is a few cycles), summed per stage. Off in production: a worker without a
//! clock pays one branch per stage boundary.
//!
//! The stages, in the order a packet meets them:
//! - `lookup`: after classification, before ESP: the SPI index and the replay owner
//!   (inbound), the SA context, MTU and next hop (outbound);
//! - `esp`: the engine's per-packet work around crypto: headers, padding, IV, sequence and
//!   replay check, trailer, the replay window's update;
//! - `crypto`: the crypto runner's one call per burst (ipsec-mb or the Rust backend);
//! - `post`: counters and lifetimes per run of one SA, routing and the Ethernet rewrite.

use dpdk::lcore;
use esp::crypto::{CryptoJob, CryptoRunner, CryptoSession, Operation};

/// Cycles spent in each stage since the clock was started or reset.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct StageCycles {
    /// SA lookup, ownership, context, MTU and next hop.
    pub lookup: u64,
    /// ESP around crypto.
    pub esp: u64,
    /// The crypto runner.
    pub crypto: u64,
    /// Accounting, routing, Ethernet.
    pub post: u64,
}

/// A worker's optional stage clock.
#[derive(Debug, Default)]
pub struct StageClock {
    on: bool,
    cycles: StageCycles,
}

impl StageClock {
    /// Starts counting (from zero).
    pub fn start(&mut self) {
        self.on = true;
        self.cycles = StageCycles::default();
    }

    /// Zeroes the sums, counting on if started.
    pub fn reset(&mut self) {
        self.cycles = StageCycles::default();
    }

    /// Whether the clock was started.
    #[inline]
    pub fn is_on(&self) -> bool {
        self.on
    }

    /// The sums, if the clock was started.
    pub fn cycles(&self) -> Option<StageCycles> {
        self.on.then_some(self.cycles)
    }

    /// The TSC if the clock runs, else 0 (no read).
    #[inline]
    pub fn now(&self) -> u64 {
        if self.on {
            lcore::tsc()
        } else {
            0
        }
    }

    /// Adds the time since `since` (a value of [`StageClock::now`]) to the stage `pick`
    /// selects, and returns the TSC read (the start of the next stage).
    #[inline]
    pub fn lap(&mut self, since: u64, pick: fn(&mut StageCycles) -> &mut u64) -> u64 {
        if !self.on {
            return 0;
        }
        let t = lcore::tsc();
        *pick(&mut self.cycles) += t.wrapping_sub(since);
        t
    }

    /// Moves `cycles` of a stage already counted under `from` to `to` (crypto measured
    /// inside the ESP stage).
    #[inline]
    pub fn carve(
        &mut self,
        cycles: u64,
        from: fn(&mut StageCycles) -> &mut u64,
        to: fn(&mut StageCycles) -> &mut u64,
    ) {
        if self.on {
            let f = from(&mut self.cycles);
            *f = f.saturating_sub(cycles);
            *to(&mut self.cycles) += cycles;
        }
    }
}

/// A runner that times the runner it wraps (used only while a stage clock runs).
#[derive(Debug)]
pub struct TimedRunner<'a> {
    inner: &'a mut dyn CryptoRunner,
    /// Cycles spent in the wrapped runner.
    pub cycles: u64,
}

impl<'a> TimedRunner<'a> {
    /// Wraps `inner`.
    pub fn new(inner: &'a mut dyn CryptoRunner) -> Self {
        TimedRunner { inner, cycles: 0 }
    }

    /// The wrapped runner, untimed.
    pub fn inner(&mut self) -> &mut dyn CryptoRunner {
        &mut *self.inner
    }
}

impl CryptoRunner for TimedRunner<'_> {
    fn run(&mut self, op: Operation, sessions: &[&dyn CryptoSession], jobs: &mut [CryptoJob<'_>]) {
        let t = lcore::tsc();
        self.inner.run(op, sessions, jobs);
        self.cycles += lcore::tsc().wrapping_sub(t);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stopped_clock_reads_nothing_and_counts_nothing() {
        let mut c = StageClock::default();
        assert_eq!(c.now(), 0);
        assert_eq!(c.lap(0, |s| &mut s.esp), 0);
        c.carve(5, |s| &mut s.esp, |s| &mut s.crypto);
        assert_eq!(c.cycles(), None);
    }

    #[test]
    fn laps_add_to_their_stage_and_carve_moves_cycles() {
        let mut c = StageClock::default();
        c.start();
        let t0 = c.now();
        assert!(t0 > 0);
        let t1 = c.lap(t0, |s| &mut s.lookup);
        assert!(t1 >= t0);
        let _ = c.lap(t1.saturating_sub(1000), |s| &mut s.esp);
        let s = c.cycles().expect("started");
        assert_eq!(s.lookup, t1 - t0);
        assert!(s.esp >= 1000, "{s:?}");
        c.carve(600, |s| &mut s.esp, |s| &mut s.crypto);
        let after = c.cycles().expect("started");
        assert_eq!(after.esp, s.esp - 600);
        assert_eq!(after.crypto, 600);
        assert_eq!(after.post, 0);
        c.reset();
        assert_eq!(c.cycles(), Some(StageCycles::default()));
    }
}
