//! The generator: one `ike::engine::Engine` per source address, each with
//! one peer entry per tunnel of that source, driven over real UDP sockets
//! (one for IKE, one for NAT-T per source) from a single-threaded mio loop.
//!
//! Ports: the engine always sees 500 and 4500 on both sides; the sockets
//! may use others (`Ports`), and datagrams are mapped between the two views
//! as `examples/interop_driver.rs` does.
//!
//! Counting: a tunnel is up when its initiator engine reports `InstallSa`
//! (after a valid HASH(2); HASH(3) leaves right after). A retransmission is
//! a datagram sent that is byte-identical to one sent before by the same
//! engine (the engine resends its stored copy); a duplicate received is the
//! same for the responder's datagrams. Single-byte NAT keepalives are
//! counted apart.

use crate::cpu::CpuSource;
use crate::plan::Plan;
use ike::engine::{Command, Engine, Event, IkeSaId, SpiAllocator};
use mio::net::UdpSocket;
use mio::{Events, Interest, Poll, Token};
use rand_chacha::rand_core::SeedableRng;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet, VecDeque};
use std::hash::{Hash, Hasher};
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Real UDP ports of one side (IKE, NAT-T); 0 = any free port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ports {
    /// Where the engine's port 500 goes.
    pub ike: u16,
    /// Where the engine's port 4500 goes.
    pub nat_t: u16,
}

/// How the generator paces and bounds the run.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// Ports of the initiators' sockets.
    pub source_ports: Ports,
    /// Ports of the responder.
    pub responder_ports: Ports,
    /// Most tunnels being negotiated at once.
    pub concurrency: usize,
    /// Most tunnels being negotiated at once per source address (the
    /// responder's half-open limit per peer address).
    pub per_source: usize,
    /// Give up on tunnels not up by then.
    pub timeout: Duration,
    /// Keep answering after the last tunnel (lost HASH(3)s, responder
    /// retransmissions) for this long, or until `settled` says so.
    pub linger: Duration,
    /// RNG seed (each engine gets its own stream).
    pub seed: u64,
    /// The responder's CPU time, when known.
    pub responder_cpu: Option<CpuSource>,
    /// Print every engine event to stderr.
    pub verbose: bool,
    /// Record (and print to stderr) a progress sample this often.
    pub progress: Option<Duration>,
}

/// One progress sample: how the rate develops with the number of SAs the
/// responder holds.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Sample {
    /// Seconds since the first Initiate.
    pub seconds: f64,
    /// Tunnels up so far.
    pub established: usize,
    /// Responder CPU seconds so far.
    pub responder_cpu_seconds: Option<f64>,
}

/// What happened to the tunnels.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    /// Tunnels started.
    pub started: usize,
    /// Tunnels whose phase 1 completed.
    pub phase1_established: usize,
    /// Tunnels up (their initiator engine reported `InstallSa`).
    pub established: usize,
    /// Tunnels that failed or did not come up in time.
    pub failures: usize,
    /// Failure reasons and their counts.
    pub failure_kinds: HashMap<String, usize>,
    /// `InstallSa` events beyond one per tunnel (should stay 0).
    pub extra_installs: usize,
    /// `InstallSa` or `Failed` events that no tunnel claims (should stay 0).
    pub unattributed_events: usize,
    /// `DeleteSa` / `IkeSaDeleted` events (the responder deleted something;
    /// a tunnel that loses its SAs so counts as a failure).
    pub deletions: usize,
    /// Datagrams sent (all kinds).
    pub datagrams_sent: u64,
    /// Datagrams received.
    pub datagrams_received: u64,
    /// Byte-identical re-sends by our engines.
    pub retransmissions: u64,
    /// Byte-identical copies received from the responder.
    pub duplicates_received: u64,
    /// NAT keepalives sent.
    pub keepalives: u64,
    /// Datagrams from anyone but the responder (dropped).
    pub stray_datagrams: u64,
    /// Send or receive errors of the sockets.
    pub socket_errors: u64,
    /// From the first Initiate to the last tunnel up.
    pub time_to_last: Duration,
    /// Initiate → InstallSa per established tunnel.
    pub latencies: Vec<Duration>,
    /// Responder CPU seconds over the measured span, when known.
    pub responder_cpu_seconds: Option<f64>,
    /// The generator thread's CPU seconds over the measured span.
    pub generator_cpu_seconds: Option<f64>,
    /// Progress samples (`LoadOptions::progress`).
    pub samples: Vec<Sample>,
}

/// SPIs unique across all engines of the generator.
#[derive(Debug, Clone)]
pub struct SharedSpis(pub Arc<AtomicU32>);

impl SpiAllocator for SharedSpis {
    fn allocate(&mut self) -> Option<u32> {
        // RFC 4303 §2.1: 1..=255 are reserved; start above and never wrap.
        let spi = self.0.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| v.checked_add(1)).ok()?;
        (spi >= 0x100).then_some(spi)
    }
    fn release(&mut self, _spi: u32) {}
}

/// A cheap fingerprint for "same datagram again" (not security relevant).
pub fn fingerprint(bytes: &[u8]) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    bytes.hash(&mut h);
    h.finish()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TunnelState {
    Waiting,
    Running(Instant),
    Up,
    Failed,
}

struct Source {
    engine: Engine,
    address: IpAddr,
    /// [IKE, NAT-T].
    sockets: [UdpSocket; 2],
    /// Peer entry index -> tunnel index.
    tunnels: Vec<usize>,
    by_sa: HashMap<IkeSaId, usize>,
    /// Our inbound and outbound SPIs of installed pairs -> peer entry.
    by_spi: HashMap<u32, usize>,
    in_flight: usize,
    next_timeout: Option<Instant>,
    sent: HashSet<u64>,
    received: HashSet<u64>,
}

/// Binds a non-blocking UDP socket.
pub fn bind(addr: SocketAddr) -> io::Result<UdpSocket> {
    UdpSocket::bind(addr).map_err(|e| io::Error::new(e.kind(), format!("bind {addr}: {e}")))
}

struct Run<'a> {
    plan: &'a Plan,
    opts: &'a LoadOptions,
    sources: Vec<Source>,
    states: Vec<TunnelState>,
    waiting: VecDeque<usize>,
    in_flight: usize,
    resolved: usize,
    heap: BinaryHeap<Reverse<(Instant, usize)>>,
    out: Outcome,
    start: Instant,
    last_up: Instant,
}

impl Run<'_> {
    fn fail(&mut self, tunnel: usize, source: usize, reason: String) {
        if let Some(st) = self.states.get_mut(tunnel) {
            if matches!(st, TunnelState::Running(_) | TunnelState::Waiting) {
                if matches!(st, TunnelState::Running(_)) {
                    self.in_flight = self.in_flight.saturating_sub(1);
                    if let Some(s) = self.sources.get_mut(source) {
                        s.in_flight = s.in_flight.saturating_sub(1);
                    }
                }
                *st = TunnelState::Failed;
                self.resolved += 1;
                self.out.failures += 1;
                *self.out.failure_kinds.entry(reason).or_default() += 1;
            }
        }
    }

    /// A tunnel that was up lost its SA to a Delete from the responder (as
    /// charon does when it cannot install what it negotiated): a failure.
    fn lose(&mut self, tunnel: usize, reason: &str) {
        if let Some(st) = self.states.get_mut(tunnel) {
            if *st == TunnelState::Up {
                *st = TunnelState::Failed;
                self.out.established = self.out.established.saturating_sub(1);
                self.out.failures += 1;
                *self.out.failure_kinds.entry(reason.to_string()).or_default() += 1;
            }
        }
    }

    /// Starts waiting tunnels while the windows allow.
    fn start_tunnels(&mut self, now: Instant) {
        while self.in_flight < self.opts.concurrency {
            let Some(&t) = self.waiting.front() else {
                return;
            };
            let s = self.plan.source_of(t);
            let Some(src) = self.sources.get_mut(s) else {
                return;
            };
            if src.in_flight >= self.opts.per_source {
                // Head-of-line: with tunnels spread round-robin over the
                // sources this only waits for that source's next answer.
                return;
            }
            self.waiting.pop_front();
            let Some(peer) = src.tunnels.iter().position(|&x| x == t) else {
                continue;
            };
            src.engine.handle_command(now, Command::Initiate { peer });
            // The engine does not return the new SA's handle: take the
            // newest initiator SA of this peer entry.
            let id =
                src.engine.ike_sas().iter().filter(|x| x.initiator && x.peer == peer).map(|x| x.id).max();
            if let Some(id) = id {
                src.by_sa.insert(id, peer);
            }
            src.in_flight += 1;
            self.in_flight += 1;
            self.out.started += 1;
            if let Some(st) = self.states.get_mut(t) {
                *st = TunnelState::Running(now);
            }
            self.flush(s, now);
        }
    }

    /// Feeds everything readable on one socket to its engine.
    fn receive(&mut self, s: usize, which: usize, now: Instant, buf: &mut [u8]) {
        let responder = self.plan.responder;
        let nat_t_port = self.opts.responder_ports.nat_t;
        let Some(src) = self.sources.get_mut(s) else {
            return;
        };
        let local = SocketAddr::new(src.address, if which == 1 { 4500 } else { 500 });
        loop {
            let Some(sock) = src.sockets.get(which) else {
                return;
            };
            match sock.recv_from(buf) {
                Ok((n, from)) => {
                    self.out.datagrams_received += 1;
                    if from.ip() != responder {
                        self.out.stray_datagrams += 1;
                        continue;
                    }
                    let data = buf.get(..n).unwrap_or(&[]);
                    if !src.received.insert(fingerprint(data)) {
                        self.out.duplicates_received += 1;
                    }
                    let remote =
                        SocketAddr::new(from.ip(), if from.port() == nat_t_port { 4500 } else { 500 });
                    src.engine.handle_datagram(now, local, remote, data);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => {
                    // ICMP errors (port unreachable) surface here; the
                    // engine's retransmission deals with the loss.
                    self.out.socket_errors += 1;
                    return;
                }
            }
        }
    }

    /// Acts on one engine's events, sends its datagrams and re-arms its timer.
    fn flush(&mut self, s: usize, now: Instant) {
        let ports = self.opts.responder_ports;
        let mut ups = Vec::new();
        let mut fails = Vec::new();
        let mut lost = Vec::new();
        let Some(src) = self.sources.get_mut(s) else {
            return;
        };
        while let Some(event) = src.engine.poll_event() {
            if self.opts.verbose {
                eprintln!("{} {:?}: {event:?}", src.address, now.saturating_duration_since(self.start));
            }
            match event {
                Event::IkeSaEstablished { ike_sa, .. } if src.by_sa.contains_key(&ike_sa) => {
                    self.out.phase1_established += 1;
                }
                Event::InstallSa { ike_sa, inbound, outbound, .. } => match src.by_sa.get(&ike_sa) {
                    Some(&peer) => {
                        src.by_spi.insert(inbound.spi, peer);
                        src.by_spi.insert(outbound.spi, peer);
                        ups.push(src.tunnels.get(peer).copied());
                    }
                    None => self.out.unattributed_events += 1,
                },
                Event::Failed { ike_sa, error } => match src.by_sa.get(&ike_sa) {
                    Some(&peer) => fails.push((src.tunnels.get(peer).copied(), format!("{error:?}"))),
                    None => self.out.unattributed_events += 1,
                },
                Event::DeleteSa { spi, .. } => {
                    self.out.deletions += 1;
                    let peer = src.by_spi.get(&spi);
                    lost.push((
                        peer.and_then(|&p| src.tunnels.get(p).copied()),
                        "child SA deleted by the responder",
                    ));
                }
                Event::IkeSaDeleted(id) => {
                    self.out.deletions += 1;
                    let peer = src.by_sa.get(&id);
                    lost.push((
                        peer.and_then(|&p| src.tunnels.get(p).copied()),
                        "IKE SA deleted by the responder",
                    ));
                }
                _ => {}
            }
        }
        while let Some(t) = src.engine.poll_transmit() {
            self.out.datagrams_sent += 1;
            if t.contents.len() == 1 {
                self.out.keepalives += 1;
            } else if !src.sent.insert(fingerprint(&t.contents)) {
                self.out.retransmissions += 1;
            }
            let (which, port) = if t.source.port() == 4500 { (1, ports.nat_t) } else { (0, ports.ike) };
            let Some(sock) = src.sockets.get(which) else {
                continue;
            };
            if sock.send_to(&t.contents, SocketAddr::new(t.destination.ip(), port)).is_err() {
                // A full send buffer drops the datagram; the engine
                // retransmits it.
                self.out.socket_errors += 1;
            }
        }
        src.next_timeout = src.engine.poll_timeout();
        if let Some(at) = src.next_timeout {
            self.heap.push(Reverse((at, s)));
        }
        for t in ups.into_iter().flatten() {
            match self.states.get(t).copied() {
                Some(TunnelState::Running(started)) => {
                    if let Some(st) = self.states.get_mut(t) {
                        *st = TunnelState::Up;
                    }
                    self.out.latencies.push(now.saturating_duration_since(started));
                    self.out.established += 1;
                    self.resolved += 1;
                    self.in_flight = self.in_flight.saturating_sub(1);
                    if let Some(src) = self.sources.get_mut(s) {
                        src.in_flight = src.in_flight.saturating_sub(1);
                    }
                    self.last_up = now;
                }
                _ => self.out.extra_installs += 1,
            }
        }
        for (t, reason) in fails {
            if let Some(t) = t {
                self.fail(t, s, reason);
            }
        }
        for (t, reason) in lost.into_iter().filter_map(|(t, r)| Some((t?, r))) {
            self.lose(t, reason);
        }
    }

    /// Runs timers that are due.
    fn timers(&mut self, now: Instant) {
        while let Some(&Reverse((at, s))) = self.heap.peek() {
            if at > now {
                return;
            }
            self.heap.pop();
            // Stale heap entries (the timer moved) are skipped.
            let current = self.sources.get(s).and_then(|x| x.next_timeout);
            if current == Some(at) {
                if let Some(src) = self.sources.get_mut(s) {
                    src.engine.handle_timeout(now);
                }
                self.flush(s, now);
            }
        }
    }
}

/// One stderr line per sample, with the rate since the previous one.
fn progress(last: Option<&Sample>, now: &Sample, failures: usize) {
    let (t0, up0, cpu0) =
        last.map_or((0.0, 0, Some(0.0)), |l| (l.seconds, l.established, l.responder_cpu_seconds));
    let up = now.established.saturating_sub(up0) as f64;
    let rate = up / (now.seconds - t0).max(1e-9);
    let per_cpu = now
        .responder_cpu_seconds
        .zip(cpu0)
        .map(|(b, a)| b - a)
        .filter(|c| *c > 0.0)
        .map_or_else(|| "-".to_string(), |c| format!("{:.0}", up / c));
    eprintln!(
        "  {:7.1} s: {:6} up, {} failed; last interval {:.0} handshakes/s, {} per responder CPU-s",
        now.seconds, now.established, failures, rate, per_cpu
    );
}

fn token(s: usize, which: usize) -> Token {
    Token(s * 2 + which)
}

/// Brings up every tunnel of `plan` against the responder. `settled` is
/// asked during the linger phase whether the responder has caught up (our
/// own responder counts its installs; for others it returns false and the
/// whole linger time is waited).
pub fn run(plan: &Plan, opts: &LoadOptions, settled: &dyn Fn(usize) -> bool) -> io::Result<Outcome> {
    let mut poll = Poll::new()?;
    let spis = SharedSpis(Arc::new(AtomicU32::new(0x1000_0000)));
    let mut sources = Vec::with_capacity(plan.sources.len());
    for (s, &address) in plan.sources.iter().enumerate() {
        let (config, tunnels) = plan.initiator(s);
        let rng = rand_chacha::ChaCha20Rng::seed_from_u64(opts.seed.wrapping_add(s as u64));
        let engine = Engine::new(config, Box::new(rng), Box::new(spis.clone()));
        let mut sockets = [
            bind(SocketAddr::new(address, opts.source_ports.ike))?,
            bind(SocketAddr::new(address, opts.source_ports.nat_t))?,
        ];
        for (which, sock) in sockets.iter_mut().enumerate() {
            poll.registry().register(sock, token(s, which), Interest::READABLE)?;
        }
        sources.push(Source {
            engine,
            address,
            sockets,
            tunnels,
            by_sa: HashMap::new(),
            by_spi: HashMap::new(),
            in_flight: 0,
            next_timeout: None,
            sent: HashSet::new(),
            received: HashSet::new(),
        });
    }
    let start = Instant::now();
    let mut run = Run {
        plan,
        opts,
        sources,
        states: vec![TunnelState::Waiting; plan.tunnels],
        waiting: (0..plan.tunnels).collect(),
        in_flight: 0,
        resolved: 0,
        heap: BinaryHeap::new(),
        out: Outcome::default(),
        start,
        last_up: start,
    };
    let generator_cpu = CpuSource::this_thread();
    let cpu0 = (opts.responder_cpu.as_ref().and_then(CpuSource::seconds), generator_cpu.seconds());
    let deadline = start + opts.timeout;
    let mut events = Events::with_capacity(1024);
    let mut buf = vec![0u8; 65536];
    let mut linger_until: Option<Instant> = None;
    let mut next_sample = opts.progress.map(|p| start + p);
    loop {
        let now = Instant::now();
        if let (Some(at), None) = (next_sample, linger_until) {
            if now >= at {
                let cpu =
                    opts.responder_cpu.as_ref().and_then(CpuSource::seconds).zip(cpu0.0).map(|(b, a)| b - a);
                let sample = Sample {
                    seconds: now.saturating_duration_since(start).as_secs_f64(),
                    established: run.out.established,
                    responder_cpu_seconds: cpu,
                };
                progress(run.out.samples.last(), &sample, run.out.failures);
                run.out.samples.push(sample);
                next_sample = opts.progress.map(|p| at + p);
            }
        }
        if linger_until.is_none() {
            run.start_tunnels(now);
        }
        if linger_until.is_none() && (run.resolved >= plan.tunnels || now >= deadline) {
            // The measured span ends here.
            let cpu1 = (opts.responder_cpu.as_ref().and_then(CpuSource::seconds), generator_cpu.seconds());
            run.out.responder_cpu_seconds = cpu0.0.zip(cpu1.0).map(|(a, b)| b - a);
            run.out.generator_cpu_seconds = cpu0.1.zip(cpu1.1).map(|(a, b)| b - a);
            run.out.time_to_last = run.last_up.saturating_duration_since(run.start);
            let stuck: Vec<(usize, usize)> = run
                .states
                .iter()
                .enumerate()
                .filter(|(_, st)| matches!(st, TunnelState::Running(_) | TunnelState::Waiting))
                .map(|(t, _)| (t, plan.source_of(t)))
                .collect();
            for (t, s) in stuck {
                run.fail(t, s, "not up before --timeout".into());
            }
            linger_until = Some(now + opts.linger);
        }
        if let Some(until) = linger_until {
            if now >= until || settled(run.out.established) {
                break;
            }
        }
        let next_timer = run.heap.peek().map(|Reverse((at, _))| *at);
        let wake = [next_timer, Some(deadline), linger_until, Some(now + Duration::from_millis(100))]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(now);
        match poll.poll(&mut events, Some(wake.saturating_duration_since(now))) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
        let now = Instant::now();
        let mut touched = Vec::new();
        for ev in events.iter() {
            let Token(k) = ev.token();
            let (s, which) = (k / 2, k % 2);
            run.receive(s, which, now, &mut buf);
            touched.push(s);
        }
        touched.sort_unstable();
        touched.dedup();
        for s in touched {
            run.flush(s, now);
        }
        run.timers(now);
    }
    Ok(run.out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spis_are_unique_and_never_reserved() {
        let shared = Arc::new(AtomicU32::new(0xfe));
        let mut a = SharedSpis(Arc::clone(&shared));
        let mut b = SharedSpis(shared);
        let got: Vec<_> = (0..4).map(|i| if i % 2 == 0 { a.allocate() } else { b.allocate() }).collect();
        assert_eq!(got, vec![None, None, Some(0x100), Some(0x101)]);
        let mut end = SharedSpis(Arc::new(AtomicU32::new(u32::MAX - 1)));
        assert_eq!(end.allocate(), Some(u32::MAX - 1));
        assert_eq!(end.allocate(), None);
        assert_eq!(end.allocate(), None, "never wraps");
    }
}
