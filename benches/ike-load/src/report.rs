//! The figures of a run: a few human-readable lines and one JSON line.

use crate::load::Outcome;
use crate::plan::Plan;
use crate::responder::ResponderCounters;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// What our own responder counted (`--self-responder` only).
#[derive(Debug, Clone, Serialize)]
pub struct ResponderReport {
    /// IKE SAs established.
    pub ike_sas: u64,
    /// `InstallSa` events (child SA pairs).
    pub installs: u64,
    /// `Failed` events.
    pub failures: u64,
    /// Byte-identical re-sends.
    pub retransmissions: u64,
    /// Socket errors.
    pub socket_errors: u64,
}

/// One run, as printed.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The responder's name.
    pub responder: String,
    /// IKE proposal.
    pub proposal: String,
    /// ESP proposal (with PFS group).
    pub esp: String,
    /// Tunnels asked for.
    pub tunnels: usize,
    /// Source addresses used.
    pub sources: usize,
    /// Tunnels whose phase 1 completed.
    pub phase1_established: usize,
    /// Tunnels up.
    pub established: usize,
    /// Tunnels that failed or timed out.
    pub failures: usize,
    /// Failure reasons.
    pub failure_kinds: BTreeMap<String, usize>,
    /// Our engines' byte-identical re-sends.
    pub retransmissions: u64,
    /// The responder's byte-identical re-sends that reached us.
    pub duplicates_received: u64,
    /// NAT keepalives we sent.
    pub keepalives: u64,
    /// Datagrams sent and received.
    pub datagrams_sent: u64,
    /// Datagrams received.
    pub datagrams_received: u64,
    /// Dropped datagrams from other addresses.
    pub stray_datagrams: u64,
    /// Socket errors on our side.
    pub socket_errors: u64,
    /// Events no tunnel claimed, and installs beyond one per tunnel.
    pub unattributed_events: usize,
    /// Installs beyond one per tunnel.
    pub extra_installs: usize,
    /// Delete events.
    pub deletions: usize,
    /// First Initiate to last tunnel up, seconds.
    pub time_to_n_seconds: f64,
    /// Tunnels up per second over that span.
    pub handshakes_per_second: f64,
    /// Initiate → up, milliseconds: median, 99th percentile, maximum.
    pub latency_ms_p50: f64,
    /// 99th percentile.
    pub latency_ms_p99: f64,
    /// Maximum.
    pub latency_ms_max: f64,
    /// The responder's CPU seconds over the span (utime + stime).
    pub responder_cpu_seconds: Option<f64>,
    /// Tunnels up per responder CPU-second: the per-core figure.
    pub handshakes_per_cpu_second: Option<f64>,
    /// The generator thread's CPU seconds over the span.
    pub generator_cpu_seconds: Option<f64>,
    /// Our responder's own counts, with --self-responder.
    pub self_responder: Option<ResponderReport>,
    /// Progress samples, with --progress.
    pub samples: Vec<crate::load::Sample>,
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len());
    sorted.get(rank - 1).map_or(0.0, |d| d.as_secs_f64() * 1e3)
}

fn esp_name(plan: &Plan) -> String {
    use ike::engine::{EspEncryption, EspIntegrity};
    let enc = match plan.esp.encryption {
        EspEncryption::AesGcm16(b) => format!("aes{b}gcm16"),
        EspEncryption::AesCbc(b) => format!("aes{b}"),
    };
    let integ = plan.esp.integrity.map(|i| match i {
        EspIntegrity::HmacSha1 => "sha1",
        EspIntegrity::HmacSha256 => "sha256",
        EspIntegrity::HmacSha384 => "sha384",
        EspIntegrity::HmacSha512 => "sha512",
    });
    let pfs = plan.pfs.map(|g| match g.id() {
        2 => "modp1024".to_string(),
        5 => "modp1536".into(),
        14 => "modp2048".into(),
        15 => "modp3072".into(),
        16 => "modp4096".into(),
        17 => "modp6144".into(),
        18 => "modp8192".into(),
        19 => "ecp256".into(),
        20 => "ecp384".into(),
        21 => "ecp521".into(),
        31 => "curve25519".into(),
        other => format!("group{other}"),
    });
    [Some(enc), integ.map(str::to_string), pfs].into_iter().flatten().collect::<Vec<_>>().join("-")
}

impl Report {
    /// Puts the figures together.
    pub fn new(
        responder: String,
        proposal: &str,
        plan: &Plan,
        mut o: Outcome,
        ours: Option<&ResponderCounters>,
    ) -> Self {
        o.latencies.sort_unstable();
        let secs = o.time_to_last.as_secs_f64();
        let rate = if secs > 0.0 { o.established as f64 / secs } else { 0.0 };
        let per_cpu = o.responder_cpu_seconds.filter(|c| *c > 0.0).map(|c| o.established as f64 / c);
        Self {
            responder,
            proposal: proposal.to_string(),
            esp: esp_name(plan),
            tunnels: plan.tunnels,
            sources: plan.sources.len(),
            phase1_established: o.phase1_established,
            established: o.established,
            failures: o.failures,
            failure_kinds: o.failure_kinds.into_iter().collect(),
            retransmissions: o.retransmissions,
            duplicates_received: o.duplicates_received,
            keepalives: o.keepalives,
            datagrams_sent: o.datagrams_sent,
            datagrams_received: o.datagrams_received,
            stray_datagrams: o.stray_datagrams,
            socket_errors: o.socket_errors,
            unattributed_events: o.unattributed_events,
            extra_installs: o.extra_installs,
            deletions: o.deletions,
            time_to_n_seconds: secs,
            handshakes_per_second: rate,
            latency_ms_p50: percentile(&o.latencies, 0.5),
            latency_ms_p99: percentile(&o.latencies, 0.99),
            latency_ms_max: percentile(&o.latencies, 1.0),
            responder_cpu_seconds: o.responder_cpu_seconds,
            handshakes_per_cpu_second: per_cpu,
            generator_cpu_seconds: o.generator_cpu_seconds,
            samples: std::mem::take(&mut o.samples),
            self_responder: ours.map(|c| ResponderReport {
                ike_sas: c.ike_sas.load(Ordering::Relaxed),
                installs: c.installs.load(Ordering::Relaxed),
                failures: c.failures.load(Ordering::Relaxed),
                retransmissions: c.retransmissions.load(Ordering::Relaxed),
                socket_errors: c.socket_errors.load(Ordering::Relaxed),
            }),
        }
    }

    /// A few lines for people.
    pub fn summary(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "{}: {} tunnels ({} from {} sources), IKE {}, ESP {}",
            self.responder, self.tunnels, self.established, self.sources, self.proposal, self.esp
        );
        let _ = writeln!(
            s,
            "  up {} / failed {} in {:.2} s: {:.1} handshakes/s; latency p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
            self.established,
            self.failures,
            self.time_to_n_seconds,
            self.handshakes_per_second,
            self.latency_ms_p50,
            self.latency_ms_p99,
            self.latency_ms_max
        );
        let _ = writeln!(
            s,
            "  retransmissions {} sent, {} received from the responder; {} datagrams out, {} in",
            self.retransmissions, self.duplicates_received, self.datagrams_sent, self.datagrams_received
        );
        if let (Some(cpu), Some(rate)) = (self.responder_cpu_seconds, self.handshakes_per_cpu_second) {
            let _ = writeln!(s, "  responder CPU {cpu:.2} s: {rate:.1} handshakes per CPU-second");
        }
        if let Some(g) = self.generator_cpu_seconds {
            let _ = writeln!(s, "  generator CPU {g:.2} s");
        }
        for (why, n) in &self.failure_kinds {
            let _ = writeln!(s, "  failure: {n} x {why}");
        }
        if let Some(r) = &self.self_responder {
            let _ = writeln!(
                s,
                "  our responder: {} IKE SAs, {} child SA pairs installed, {} failures, {} retransmissions",
                r.ike_sas, r.installs, r.failures, r.retransmissions
            );
        }
        s
    }

    /// One JSON line.
    pub fn json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles() {
        let d: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile(&d, 0.5), 50.0);
        assert_eq!(percentile(&d, 0.99), 99.0);
        assert_eq!(percentile(&d, 1.0), 100.0);
        assert_eq!(percentile(&[], 0.5), 0.0);
    }
}
