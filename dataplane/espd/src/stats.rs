//! Counters: per worker (software, written by that worker only) and per port (the
//! device's), printed as a testpmd-like table and as one JSON line at exit.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

/// One worker's counters, on their own cache line so workers never share one.
/// Only the owning worker writes them (relaxed stores of its running totals); the main
/// lcore reads them.
#[derive(Debug, Default)]
#[repr(align(64))]
pub struct WorkerCounters {
    /// Packets received.
    pub rx: AtomicU64,
    /// Packets the driver accepted for transmission.
    pub tx: AtomicU64,
    /// Packets freed because the TX queue was full.
    pub tx_dropped: AtomicU64,
    /// Bursts that returned at least one packet.
    pub busy_polls: AtomicU64,
}

impl WorkerCounters {
    /// Adds to a counter that only this worker writes (no read-modify-write atomics needed).
    #[inline]
    pub fn add(c: &AtomicU64, n: u64) {
        c.store(c.load(Ordering::Relaxed) + n, Ordering::Relaxed);
    }

    /// A consistent-enough copy for printing.
    pub fn snapshot(&self, lcore: u32) -> WorkerSnapshot {
        WorkerSnapshot {
            lcore,
            rx: self.rx.load(Ordering::Relaxed),
            tx: self.tx.load(Ordering::Relaxed),
            tx_dropped: self.tx_dropped.load(Ordering::Relaxed),
        }
    }
}

/// A worker's counters at one moment.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
pub struct WorkerSnapshot {
    /// The worker's lcore.
    pub lcore: u32,
    /// Packets received.
    pub rx: u64,
    /// Packets sent.
    pub tx: u64,
    /// Packets dropped because TX was full.
    pub tx_dropped: u64,
}

/// A port's counters at one moment.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct PortSnapshot {
    /// DPDK port id.
    pub id: u16,
    /// Device name.
    pub name: String,
    /// Packets received.
    pub ipackets: u64,
    /// Packets sent.
    pub opackets: u64,
    /// Bytes received.
    pub ibytes: u64,
    /// Bytes sent.
    pub obytes: u64,
    /// Packets missed by the device.
    pub imissed: u64,
    /// RX errors.
    pub ierrors: u64,
    /// TX errors.
    pub oerrors: u64,
    /// RX mbuf allocation failures.
    pub rx_nombuf: u64,
}

/// Everything printed at one moment.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Seconds since forwarding started.
    pub elapsed_s: f64,
    /// Per port.
    pub ports: Vec<PortSnapshot>,
    /// Per worker.
    pub workers: Vec<WorkerSnapshot>,
}

fn rate(now: u64, before: u64, dt: f64) -> f64 {
    if dt <= 0.0 {
        0.0
    } else {
        now.saturating_sub(before) as f64 / dt
    }
}

impl Report {
    /// The testpmd-like table: totals and, against `prev`, rates.
    pub fn table(&self, prev: Option<&Report>) -> String {
        let dt = prev.map_or(self.elapsed_s, |p| self.elapsed_s - p.elapsed_s);
        let mut s = format!("  -------- espd statistics at {:.1} s --------\n", self.elapsed_s);
        s += "  port name              RX-packets   RX-Mpps  RX-Gbps   TX-packets   TX-Mpps  TX-Gbps  missed  errors\n";
        for p in &self.ports {
            let before = prev.and_then(|r| r.ports.iter().find(|q| q.id == p.id));
            let (bi, bo, bib, bob) =
                before.map_or((0, 0, 0, 0), |b| (b.ipackets, b.opackets, b.ibytes, b.obytes));
            s += &format!(
                "  {:>4} {:<16} {:>12} {:>9.3} {:>8.3} {:>12} {:>9.3} {:>8.3} {:>7} {:>7}\n",
                p.id,
                p.name,
                p.ipackets,
                rate(p.ipackets, bi, dt) / 1e6,
                rate(p.ibytes, bib, dt) * 8.0 / 1e9,
                p.opackets,
                rate(p.opackets, bo, dt) / 1e6,
                rate(p.obytes, bob, dt) * 8.0 / 1e9,
                p.imissed,
                p.ierrors + p.oerrors + p.rx_nombuf,
            );
        }
        s += "  lcore          RX          TX  TX-dropped\n";
        for w in &self.workers {
            s += &format!("  {:>5} {:>11} {:>11} {:>11}\n", w.lcore, w.rx, w.tx, w.tx_dropped);
        }
        s
    }

    /// Packets received by all workers.
    pub fn total_rx(&self) -> u64 {
        self.workers.iter().map(|w| w.rx).sum()
    }
}
