//! One bench worker: fills bursts of mbufs from the traffic source and pushes them through
//! the gateway worker's own stages (classification, policy and SA lookup, ESP, replay
//! check, routing, Ethernet rewrite, TX), timing each phase with the TSC.
//!
//! A burst never spans two passes over the ESP pool: after the last packet of a pass has
//! been processed, the worker re-arms the replay windows of its inbound SAs (the time this
//! takes is measured and left out of the rate). Nothing allocates, locks or makes a system
//! call in the loop; the histograms are allocated before it.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use dpdk::{lcore, Burst, Mempool};
use esp::crypto::{CryptoBackend, CryptoJob, CryptoParams, Operation};
use hdrhistogram::Histogram;

use crate::bench::traffic::{EspPool, PlainSource};
use espd::cli::BenchMode;
use espd::counters::{traffic, Traffic};
use espd::gw::stage_clock::StageCycles;
use espd::gw::worker::{Worker, MAX_BURST};

/// What the supervisor reads while a configuration runs (written by the worker only).
#[derive(Debug, Default)]
#[repr(align(64))]
pub struct Live {
    /// Packets sent (measured phase and warm-up).
    pub sent: AtomicU64,
    /// Plaintext frame bytes of the packets generated.
    pub plain_bytes: AtomicU64,
    /// Set once warm-up is over.
    pub measuring: AtomicBool,
}

/// The crypto-only calibration: raw backend cost for one packet size.
#[derive(Debug, Clone)]
pub struct CryptoCalibration {
    /// The SA's algorithms and keys.
    pub params: CryptoParams,
    /// Use ipsec-mb (else the Rust backend).
    pub ipsec_mb: bool,
    /// ESP lengths (header to ICV) of the packets, weighted as sent, with their direction.
    pub jobs: Vec<(usize, Operation)>,
}

/// One worker's job for one configuration.
#[derive(Debug)]
pub struct Job {
    /// The gateway worker whose stages do the work.
    pub worker: Worker,
    /// Mode.
    pub mode: BenchMode,
    /// Plaintext source (encap, both, io).
    pub plain: Option<PlainSource>,
    /// ESP source (decap, both).
    pub esp: Option<EspPool>,
    /// Inbound SA slots to re-arm after every pass.
    pub inbound_slots: Vec<u32>,
    /// Index of the inside and the outside port in the worker's ports.
    pub inside: usize,
    /// See `inside`.
    pub outside: usize,
    /// Packet pool.
    pub pool: Mempool,
    /// Packets per burst.
    pub burst: usize,
    /// TSC cycles of warm-up and of measurement.
    pub warmup: u64,
    /// See `warmup`.
    pub duration: u64,
    /// TSC cycles between packets when paced.
    pub pace: Option<f64>,
    /// Copy only the headers of plaintext frames.
    pub headers_only: bool,
    /// Calibration of the crypto cost.
    pub calibration: Option<CryptoCalibration>,
    /// Shared with the supervisor.
    pub live: Arc<Live>,
    /// Stop (signal).
    pub stop: Arc<AtomicBool>,
}

/// What a worker measured.
#[derive(Debug)]
pub struct Outcome {
    /// Packets generated in the measured phase.
    pub generated: u64,
    /// Packets sent in the measured phase.
    pub sent: u64,
    /// Plaintext frame bytes generated in the measured phase.
    pub plain_bytes: u64,
    /// TSC cycles of the measured phase, re-arming excluded.
    pub cycles: u64,
    /// Cycles allocating and filling mbufs.
    pub fill: u64,
    /// Cycles classifying (policy lookup included).
    pub classify: u64,
    /// Cycles in the stages (SA lookup, ESP, routing, Ethernet).
    pub stages: u64,
    /// Cycles flushing TX.
    pub tx: u64,
    /// Passes over the ESP pool (re-arms), whole run.
    pub passes: u64,
    /// Raw crypto cycles per packet (calibration), 0 without crypto.
    pub crypto: f64,
    /// Per-burst time divided by the burst's packets, ns.
    pub per_packet_ns: Histogram<u64>,
    /// Time from filling a burst to its TX, ns (what each of its packets waited).
    pub burst_ns: Histogram<u64>,
    /// The worker's counters over the whole run (warm-up included), by index.
    pub counters: Vec<u64>,
    /// Mbuf allocation failures.
    pub no_mbuf: u64,
    /// Nanoseconds the worker's thread was on a CPU during the measured phase, and waiting
    /// for one (runnable, another task on the core): the share of the core it really had
    /// (`/proc/thread-self/schedstat`; `None` where the kernel does not provide it).
    pub on_cpu_ns: Option<(u64, u64)>,
    /// The worker's stage clock over the measured phase, if it ran.
    pub stage_cycles: Option<StageCycles>,
}

/// This thread's (on-CPU, run-queue wait) nanoseconds from `/proc/thread-self/schedstat`.
fn schedstat() -> Option<(u64, u64)> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let mut f = s.split_whitespace().map(|x| x.parse::<u64>().ok());
    Some((f.next()??, f.next()??))
}

/// A histogram of ns from 1 ns to a minute, 3 significant digits.
pub fn histogram() -> Result<Histogram<u64>, hdrhistogram::CreationError> {
    Histogram::new_with_bounds(1, 60_000_000_000, 3)
}

/// Raw crypto cycles per packet for the calibration's packet mix, on this lcore.
fn calibrate(c: &CryptoCalibration, burst: usize) -> f64 {
    let backend: Box<dyn CryptoBackend> = match (c.ipsec_mb, esp::crypto::ipsec_mb::IpsecMbBackend::new()) {
        (true, Ok(b)) => Box::new(b),
        _ => Box::new(esp::crypto::rust::RustBackend),
    };
    let Ok(session) = backend.new_session(&c.params) else { return 0.0 };
    let mut total = 0.0;
    // Weighted as sent: each (length, op) counts once; per (length, op), the median burst
    // (the machine may be shared: a preempted burst must not count).
    for &(len, op) in &c.jobs {
        let mut per_burst = Vec::with_capacity(300);
        let mut bufs: Vec<Vec<u8>> = (0..burst).map(|i| vec![i as u8; len]).collect();
        let mut sealed = Vec::new();
        for round in 0..300 {
            if op == Operation::Open {
                // Open valid packets: seal them first (not timed).
                let mut jobs: Vec<CryptoJob<'_>> = bufs.iter_mut().map(|b| CryptoJob::new(b, None)).collect();
                if sealed.is_empty() {
                    session.process(Operation::Seal, &mut jobs);
                    drop(jobs);
                    sealed = bufs.clone();
                } else {
                    drop(jobs);
                    for (b, s) in bufs.iter_mut().zip(&sealed) {
                        b.copy_from_slice(s);
                    }
                }
            }
            let mut jobs: Vec<CryptoJob<'_>> = bufs.iter_mut().map(|b| CryptoJob::new(b, None)).collect();
            let t0 = lcore::tsc();
            session.process(op, &mut jobs);
            let t1 = lcore::tsc();
            if round >= 20 && !jobs.is_empty() {
                per_burst.push((t1 - t0) as f64 / jobs.len() as f64);
            }
        }
        per_burst.sort_by(f64::total_cmp);
        total += per_burst.get(per_burst.len() / 2).copied().unwrap_or(0.0);
    }
    total / c.jobs.len().max(1) as f64
}

fn ns(cycles: u64, hz: u64) -> u64 {
    (u128::from(cycles) * 1_000_000_000 / u128::from(hz.max(1))) as u64
}

impl Job {
    /// Fills `b` with up to `n` frames from the plaintext source; returns their plaintext bytes.
    #[inline]
    fn fill_plain(&mut self, b: &mut Burst<MAX_BURST>, n: usize) -> u64 {
        let Some(src) = self.plain.as_mut() else { return 0 };
        if !self.pool.alloc_bulk(b, n) {
            return 0;
        }
        let mut bytes = 0;
        for m in b.as_mut_slice() {
            let len = src.next_len();
            if let Some(d) = m.append(len as u16) {
                bytes += src.fill(d, self.headers_only) as u64;
            }
        }
        bytes
    }

    /// Fills `b` with up to `n` frames from the ESP pool, never past the end of a pass.
    #[inline]
    fn fill_esp(&mut self, b: &mut Burst<MAX_BURST>, n: usize) -> u64 {
        let Some(pool) = self.esp.as_mut() else { return 0 };
        let n = n.min(pool.left_in_pass());
        if !self.pool.alloc_bulk(b, n) {
            return 0;
        }
        let mut bytes = 0;
        for m in b.as_mut_slice() {
            let len = pool.next_len();
            if let Some(d) = m.append(len as u16) {
                bytes += pool.fill(d).1 as u64;
            }
        }
        bytes
    }

    /// Runs warm-up and measurement into two empty histograms (allocated by the caller, so
    /// the loop does not allocate); returns what was measured.
    pub fn run(mut self, mut per_packet_ns: Histogram<u64>, mut burst_ns: Histogram<u64>) -> Outcome {
        let hz = lcore::tsc_hz().max(1);
        let crypto = self.calibration.as_ref().map_or(0.0, |c| calibrate(c, self.burst));
        // The SAs may have carried traffic in an earlier configuration of this process: the
        // region keeps their windows' right edge, which a fresh context would restore as
        // "all seen" (the production behaviour across restarts). The pool starts at 1 again.
        for &slot in &self.inbound_slots {
            self.worker.rearm_inbound(slot);
        }
        let mut plain_burst: Burst<MAX_BURST> = Burst::new();
        let mut esp_burst: Burst<MAX_BURST> = Burst::new();
        let (mut generated, mut sent_io, mut plain_bytes) = (0u64, 0u64, 0u64);
        let (mut fill, mut classify, mut stages, mut tx, mut rearm) = (0u64, 0u64, 0u64, 0u64, 0u64);
        let (mut passes, mut no_mbuf) = (0u64, 0u64);
        let pool_len = self.esp.as_ref().map_or(0, |p| p.len() as u64);
        // Warm-up covers every tunnel once, so no SA context is built while measuring.
        let plain_min = self.plain.as_ref().map_or(0, |p| u64::from(p.tunnels()));
        let start = lcore::tsc();
        let mut measure_start = 0u64;
        let mut sched_start = None;
        let mut measuring = false;
        let mut base = (0u64, 0u64, 0u64);
        let mut next_due = start as f64;
        let mut flip = false;
        while !self.stop.load(Ordering::Relaxed) {
            let now = lcore::tsc();
            if !measuring {
                let warm = now - start >= self.warmup;
                let covered = (pool_len == 0 || passes >= 1) && generated >= plain_min;
                if warm && covered {
                    measuring = true;
                    sched_start = schedstat();
                    self.live.measuring.store(true, Ordering::Relaxed);
                    measure_start = now;
                    base = (generated, self_sent(&self.worker) + sent_io, plain_bytes);
                    (fill, classify, stages, tx, rearm) = (0, 0, 0, 0, 0);
                    self.worker.stage_clock.reset();
                    per_packet_ns.reset();
                    burst_ns.reset();
                    next_due = now as f64;
                }
            } else if now - measure_start >= self.duration + rearm {
                break;
            }
            if let Some(p) = self.pace {
                while (lcore::tsc() as f64) < next_due {
                    lcore::pause();
                }
                next_due += p * self.burst as f64;
                // Never try to catch up on more than a millisecond of lateness.
                let late = lcore::tsc() as f64 - next_due;
                if late > hz as f64 / 1000.0 {
                    next_due = lcore::tsc() as f64;
                }
            }
            let t0 = lcore::tsc();
            let (n, bytes) = match self.mode {
                BenchMode::Encap | BenchMode::Io => {
                    let b = self.fill_plain(&mut plain_burst, self.burst);
                    (plain_burst.len(), b)
                }
                BenchMode::Decap => {
                    let b = self.fill_esp(&mut esp_burst, self.burst);
                    (esp_burst.len(), b)
                }
                BenchMode::Both => {
                    // Alternate which direction gets the odd packet.
                    flip = !flip;
                    let half = self.burst / 2 + usize::from(flip && self.burst % 2 == 1);
                    let a = self.fill_plain(&mut plain_burst, half.max(1));
                    let b = self.fill_esp(&mut esp_burst, self.burst.saturating_sub(half).max(1));
                    (plain_burst.len() + esp_burst.len(), a + b)
                }
            };
            if n == 0 {
                no_mbuf += 1;
                // The pool is empty (TX still holds mbufs): let the driver free some.
                self.worker.end_iteration();
                continue;
            }
            let n_esp = esp_burst.len();
            let t1 = lcore::tsc();
            let (t2, t3);
            if self.mode == BenchMode::Io {
                t2 = t1;
                t3 = t1;
                // io mode sends on the first (outside) port, by this worker's queue.
                sent_io += self.worker.send_burst(0, &mut plain_burst) as u64;
                plain_burst.clear();
            } else {
                if !plain_burst.is_empty() {
                    self.worker.receive(self.inside, &mut plain_burst);
                }
                if !esp_burst.is_empty() {
                    self.worker.receive(self.outside, &mut esp_burst);
                }
                t2 = lcore::tsc();
                self.worker.run_stages();
                t3 = lcore::tsc();
                self.worker.end_iteration();
            }
            let t4 = lcore::tsc();
            generated += n as u64;
            plain_bytes += bytes;
            fill += t1 - t0;
            classify += t2 - t1;
            stages += t3 - t2;
            tx += t4 - t3;
            let _ = per_packet_ns.record(ns((t4 - t0) / n as u64, hz).max(1));
            let _ = burst_ns.record_n(ns(t4 - t0, hz).max(1), n as u64);
            if let Some(pool) = &self.esp {
                // A burst never spans two passes: if it took the pool's last packet, the pass
                // is complete and processed.
                if n_esp > 0 && pool.left_in_pass() == pool.len() {
                    // The pass is complete and processed: the peer "starts again" at 1.
                    let r0 = lcore::tsc();
                    for &slot in &self.inbound_slots {
                        self.worker.rearm_inbound(slot);
                    }
                    rearm += lcore::tsc() - r0;
                    passes += 1;
                }
            }
            self.live.sent.store(self_sent(&self.worker) + sent_io, Ordering::Relaxed);
            self.live.plain_bytes.store(plain_bytes, Ordering::Relaxed);
        }
        let end = lcore::tsc();
        let on_cpu_ns = match (sched_start, schedstat()) {
            (Some((c0, w0)), Some((c1, w1))) => Some((c1.saturating_sub(c0), w1.saturating_sub(w0))),
            _ => None,
        };
        self.worker.end_iteration();
        let counters: Vec<u64> =
            self.worker.reader.counters().iter().map(|c| c.load(Ordering::Relaxed)).collect();
        let sent_total = self_sent(&self.worker) + sent_io;
        self.worker.reader.offline();
        Outcome {
            generated: generated - base.0,
            sent: sent_total - base.1,
            plain_bytes: plain_bytes - base.2,
            cycles: if measuring { (end - measure_start).saturating_sub(rearm) } else { 0 },
            fill,
            classify,
            stages,
            tx,
            passes,
            crypto,
            per_packet_ns,
            burst_ns,
            counters,
            no_mbuf,
            on_cpu_ns,
            stage_cycles: self.worker.stage_clock.cycles(),
        }
    }
}

/// Packets the gateway worker has handed to TX.
fn self_sent(w: &Worker) -> u64 {
    w.reader.counters().get(traffic(Traffic::TxPackets)).map_or(0, |c| c.load(Ordering::Relaxed))
}
