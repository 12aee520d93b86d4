//! What a worker does when its ports are idle (`dataplane.idle`).
//!
//! `poll` (the default) spins, as DPDK applications do: the lowest latency, a whole core
//! whatever the load. `adaptive` is for gateways on shared vCPUs: after a run of empty
//! iterations the worker pauses the pipeline for a while (PAUSE), then sleeps between polls,
//! each sleep twice the last up to [`SLEEP_MAX`], so a worker idle for long costs what one
//! wake-up per [`SLEEP_MAX`] costs; the first packet after idle waits at most one sleep (plus
//! the kernel's timer slack, 50 µs by default) before it is polled. Any received packet puts
//! it back to spinning. The reader's quiescent point is passed at every iteration, sleeping or
//! not, so writers never wait for more than one sleep. What it costs and gains on this
//! project's test machine is in docs/benchmarks.md (`benches/idle.sh`).

use std::time::Duration;

/// `dataplane.idle`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IdleMode {
    /// Spin.
    #[default]
    Poll,
    /// Spin, then pause, then short sleeps while idle.
    Adaptive,
}

impl IdleMode {
    /// The configuration word.
    pub fn parse(s: &str) -> Option<IdleMode> {
        match s {
            "poll" => Some(IdleMode::Poll),
            "adaptive" => Some(IdleMode::Adaptive),
            _ => None,
        }
    }
}

/// Empty iterations spent spinning before backing off (about 100 µs of polling).
pub const SPIN_ITERATIONS: u32 = 200;
/// Empty iterations with a PAUSE loop after each, before sleeping.
pub const PAUSE_ITERATIONS: u32 = 200;
/// The first sleep between polls once idle.
pub const SLEEP_MIN: Duration = Duration::from_micros(10);
/// The longest sleep between polls.
pub const SLEEP_MAX: Duration = Duration::from_micros(100);

/// One worker's backoff state.
#[derive(Debug)]
pub struct Backoff {
    mode: IdleMode,
    empty: u32,
    sleep: Duration,
}

/// What [`Backoff::after_iteration`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Poll again at once.
    Spin,
    /// A short PAUSE loop, then poll.
    Pause,
    /// Sleep (from [`SLEEP_MIN`], doubling up to [`SLEEP_MAX`]), then poll.
    Sleep(Duration),
}

impl Backoff {
    /// A backoff in `mode`.
    pub fn new(mode: IdleMode) -> Backoff {
        Backoff { mode, empty: 0, sleep: SLEEP_MIN }
    }

    /// What to do after an iteration that received `packets` packets.
    pub fn step(&mut self, packets: usize) -> Step {
        if packets > 0 || self.mode == IdleMode::Poll {
            self.empty = 0;
            self.sleep = SLEEP_MIN;
            return Step::Spin;
        }
        self.empty = self.empty.saturating_add(1);
        if self.empty <= SPIN_ITERATIONS {
            Step::Spin
        } else if self.empty <= SPIN_ITERATIONS + PAUSE_ITERATIONS {
            Step::Pause
        } else {
            let s = self.sleep;
            self.sleep = (s * 2).min(SLEEP_MAX);
            Step::Sleep(s)
        }
    }

    /// Does what [`Backoff::step`] decides.
    pub fn after_iteration(&mut self, packets: usize) {
        match self.step(packets) {
            Step::Spin => {}
            Step::Pause => (0..64).for_each(|_| core::hint::spin_loop()),
            Step::Sleep(d) => std::thread::sleep(d),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn poll_never_backs_off() {
        let mut b = Backoff::new(IdleMode::Poll);
        assert!((0..10_000).all(|_| b.step(0) == Step::Spin));
    }

    #[test]
    fn adaptive_spins_pauses_sleeps_and_wakes_on_a_packet() {
        let mut b = Backoff::new(IdleMode::Adaptive);
        let steps: Vec<Step> = (0..SPIN_ITERATIONS + PAUSE_ITERATIONS + 6).map(|_| b.step(0)).collect();
        let count = |s: Step| steps.iter().filter(|&&x| x == s).count() as u32;
        assert_eq!((count(Step::Spin), count(Step::Pause)), (SPIN_ITERATIONS, PAUSE_ITERATIONS));
        let us = |n: u64| Step::Sleep(Duration::from_micros(n));
        assert_eq!(steps[steps.len() - 6..], [us(10), us(20), us(40), us(80), us(100), us(100)]);
        assert_eq!(b.step(1), Step::Spin, "a packet ends the backoff");
        assert_eq!(b.step(0), Step::Spin, "and the spinning starts over");
        let again: Vec<Step> = (0..SPIN_ITERATIONS + PAUSE_ITERATIONS).map(|_| b.step(0)).collect();
        assert_eq!(again.last(), Some(&us(10)), "from the shortest sleep");
    }

    #[test]
    fn configuration_words() {
        assert_eq!(IdleMode::parse("poll"), Some(IdleMode::Poll));
        assert_eq!(IdleMode::parse("adaptive"), Some(IdleMode::Adaptive));
        assert_eq!(IdleMode::parse("interrupt"), None);
    }
}
