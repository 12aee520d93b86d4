//! One worker lcore: run to completion over bursts.
//!
//! Per iteration: for each port, receive a burst on this worker's queue and classify every
//! frame (ARP, ND and echo for our addresses answered in place; IKE and other traffic for
//! the gateway to the host through the exception TAP; ESP for us to the inbound stage;
//! transit traffic from the inside to the outbound policy lookup). Then the inbound stage
//! looks every SPI up in one batch and the outbound stage resolves each packet's SA and next
//! hop; each stage runs its packets, in arrival order, through the ESP engine as one burst
//! that mixes SAs: prepare per packet with its SA (sequence numbers reserved per run of one SA),
//! crypto once for the burst through this lcore's runner (one GCM loop and one multi-buffer
//! CBC+HMAC burst, whatever the SAs), finish per packet; counters once per run of one SA.
//! Both stages route the result and rewrite Ethernet; finally every port's TX burst is
//! flushed and the lcore passes a quiescent point of the SA database. No allocation, lock or
//! system call in the loop: staging vectors are allocated once, contexts are built only when
//! an SA is first seen, the TSC is read once per received burst.
//!
//! Inbound SAs are decapsulated by one lcore at a time: the first worker to see an SA
//! claims it in the region (`owner` in the hot state); another worker that receives its
//! packets hands the frames to the owner through the owner's ring, which the owner polls
//! like a port. So the replay window has a single writer whatever the NIC's RSS does.

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use dpdk::{lcore, Burst, Mbuf, Mempool, Multi, RingConsumer, RingProducer, RxQueue, TxQueue};
use esp::crypto::CryptoRunner;
use esp::DropReason;
use sadb::{Action, Direction, Event, EventKind, Flow, Reader};

use crate::counters::{gw_drop, traffic, Traffic, DROP_BASE};
use crate::gw::flow_cache::FlowCache;
use crate::gw::idle::{Backoff, IdleMode};
use crate::gw::pkt::Pkt;
use crate::gw::sa_ctx::{Backends, Ctx, SaCache, Table};
use crate::gw::stage_clock::{StageClock, TimedRunner};
use crate::net::addr::Interface;
use crate::net::classify::{classify, Classified, Family, FastV4};
use crate::net::ethernet::{self, Mac};
use crate::net::neigh::{NeighborTable, Refusals};
use crate::net::route::RouteTable;
use crate::net::{arp, icmp, nd};

/// Largest burst.
pub const MAX_BURST: usize = 64;

/// A solicited neighbour advertisement with a target link-layer option, Ethernet included.
const NA_LEN: usize = 86;

/// The neighbour table is aged in this many parts, one every 1/`SWEEP_PARTS` s, so the whole
/// table once a second without a pass long enough to keep the worker from its queues.
const SWEEP_PARTS: usize = 16;

/// Stale neighbours asked for again per part (64 a second): more wait for the next pass.
const CONFIRM_PER_SWEEP: usize = 4;

pub use sadb::counters::GwDrop;

/// A hand-off ring: every worker feeds it, its owner drains it.
pub type Handoff = (RingProducer<Multi>, RingConsumer<Multi>);

/// The exception TAP as a worker sees it.
#[derive(Debug)]
pub struct WorkerTap {
    /// Its RX queue (worker 0 only polls the TAP).
    pub rx: Option<RxQueue>,
    /// This worker's TX queue.
    pub tx: TxQueue,
}

/// A port as a worker sees it.
#[derive(Debug)]
pub struct WorkerPort {
    /// This worker's RX queue of the ethdev.
    pub rx: RxQueue,
    /// This worker's TX queue of the ethdev.
    pub tx: TxQueue,
    /// Plaintext side.
    pub inside: bool,
    /// Ciphertext side.
    pub outside: bool,
    /// Frames for the gateway go to the TAP from this port.
    pub to_tap: bool,
    /// Largest IP packet its link carries.
    pub mtu: u16,
}

/// Everything one worker owns or shares.
pub struct Worker {
    /// Worker number (its queue on every port).
    pub index: usize,
    /// Ports, indexed as `Interface::port`.
    pub ports: Vec<WorkerPort>,
    /// Their addresses and MACs, same order.
    pub ifaces: Arc<Vec<Interface>>,
    /// Reader slot → worker index, for handing inbound frames to an SA's owner.
    pub owners: Arc<Vec<Option<usize>>>,
    /// The exception TAP (polled for RX by worker 0 only).
    pub tap: Option<WorkerTap>,
    /// Hand-off rings of every worker (inbound frames for an SA another worker owns).
    pub rings: Arc<Vec<Handoff>>,
    /// SA database reader.
    pub reader: Reader,
    /// SA contexts.
    pub cache: SaCache,
    /// Crypto backends.
    pub backends: Backends,
    /// Neighbours (shared).
    pub neigh: Arc<NeighborTable>,
    /// Routes (shared, read-only).
    pub routes: Arc<RouteTable>,
    /// Pool for frames the worker creates (ARP/NS requests).
    pub pool: Mempool,
    /// Packets per RX burst.
    pub burst: usize,
    /// Stop flag.
    pub stop: Arc<AtomicBool>,
    /// Unix seconds, published by the supervising lcore (no clock call per packet).
    pub clock: Arc<AtomicU64>,
    /// What to do when the ports are idle (`dataplane.idle`).
    pub idle: IdleMode,
    tx: Vec<Burst<MAX_BURST>>,
    tap_tx: Burst<MAX_BURST>,
    inb: Vec<(Mbuf, usize)>,
    inb_spis: Vec<u32>,
    inb_slots: Vec<Option<u32>>,
    stage: Vec<Pkt>,
    keys: Vec<usize>,
    results: Vec<Result<(), DropReason>>,
    /// This lcore's crypto: one call per burst for packets of any SAs.
    runner: Box<dyn CryptoRunner>,
    /// The TSC, read once per received burst.
    now: u64,
    /// Policy lookups of recent flows, valid while the SA database does not change.
    flows: FlowCache,
    /// The region's change counter, read once per received burst.
    changes: u64,
    outb: Vec<(Mbuf, usize, u32, usize)>,
    tsc_hz: u64,
    /// TSC cycles between two sweeps of a part of the neighbour table.
    sweep_period: u64,
    /// When worker 0 last swept the neighbour table, and its list of entries to confirm.
    last_sweep: u64,
    /// The part of the neighbour table the next sweep ages.
    sweep_part: usize,
    confirm: Vec<(IpAddr, u16)>,
    /// The neighbour table's refusals as last added to this lcore's counters.
    neigh_published: Refusals,
    out_mtu: usize,
    icmp_limit: icmp::ErrorRateLimiter,
    /// The common IPv4 frames' classification, with this worker's addresses as integers.
    fast_v4: FastV4,
    /// Cycles per stage, for `espd bench --stages` (stopped otherwise).
    pub stage_clock: StageClock,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker").field("index", &self.index).finish_non_exhaustive()
    }
}

impl Worker {
    /// A worker; staging space is allocated here, once.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        index: usize,
        ports: Vec<WorkerPort>,
        ifaces: Arc<Vec<Interface>>,
        owners: Arc<Vec<Option<usize>>>,
        tap: Option<WorkerTap>,
        rings: Arc<Vec<Handoff>>,
        reader: Reader,
        backends: Backends,
        neigh: Arc<NeighborTable>,
        routes: Arc<RouteTable>,
        pool: Mempool,
        burst: usize,
        stop: Arc<AtomicBool>,
        clock: Arc<AtomicU64>,
    ) -> Worker {
        let sas = reader.region().capacities().sas;
        let n = ports.len();
        let out_mtu = ports.iter().filter(|p| p.outside).map(|p| usize::from(p.mtu)).min().unwrap_or(1500);
        let cap = MAX_BURST * (n + 2);
        Worker {
            index,
            out_mtu,
            fast_v4: FastV4::new(&ifaces),
            tx: (0..n).map(|_| Burst::new()).collect(),
            ports,
            ifaces,
            owners,
            tap,
            rings,
            reader,
            cache: SaCache::new(sas),
            neigh,
            routes,
            pool,
            burst: burst.clamp(1, MAX_BURST),
            stop,
            clock,
            tap_tx: Burst::new(),
            inb: Vec::with_capacity(cap),
            inb_spis: Vec::with_capacity(cap),
            inb_slots: Vec::with_capacity(cap),
            stage: Vec::with_capacity(cap),
            keys: Vec::with_capacity(cap),
            results: Vec::with_capacity(cap),
            runner: backends.runner(),
            now: lcore::tsc(),
            flows: FlowCache::new(),
            changes: 0,
            idle: IdleMode::Poll,
            outb: Vec::with_capacity(cap),
            tsc_hz: lcore::tsc_hz().max(1),
            sweep_period: lcore::tsc_hz().max(1) / SWEEP_PARTS as u64,
            last_sweep: 0,
            sweep_part: 0,
            confirm: Vec::with_capacity(CONFIRM_PER_SWEEP),
            neigh_published: Refusals::default(),
            icmp_limit: icmp::ErrorRateLimiter::new(lcore::tsc_hz().max(1) / 100, 10),
            stage_clock: StageClock::default(),
            backends,
        }
    }

    #[inline]
    fn drop_gw(&self, why: GwDrop, m: Mbuf) {
        self.reader.count(gw_drop(why), 1);
        drop(m);
    }

    #[inline]
    fn drop_esp(&self, why: DropReason, slot: Option<u32>, m: Mbuf) {
        self.reader.count(DROP_BASE + why as usize, 1);
        if let Some(s) = slot {
            self.reader.count_sa_drop(s, why as usize);
        }
        drop(m);
    }

    #[inline]
    fn count(&self, t: Traffic, n: u64) {
        self.reader.count(traffic(t), n);
    }

    /// Runs until the stop flag is set; returns 0 (the lcore's exit value).
    pub fn run(&mut self) -> i32 {
        let mut rx: Burst<MAX_BURST> = Burst::new();
        let mut backoff = Backoff::new(self.idle);
        while !self.stop.load(Ordering::Relaxed) {
            let mut got = 0;
            for pi in 0..self.ports.len() {
                let n = self.ports[pi].rx.rx_burst_limited(&mut rx, self.burst);
                if n == 0 {
                    continue;
                }
                got += n;
                self.receive(pi, &mut rx);
            }
            // Frames handed to us by other workers (SAs we own).
            if let Some((_, ring)) = self.rings.get(self.index) {
                let n = ring.dequeue_burst(&mut rx);
                if n > 0 {
                    got += n;
                    self.begin_burst();
                    for m in rx.drain() {
                        match self.port_index_of(m.port()) {
                            Some(pi) => self.classify_one(pi, m),
                            None => self.drop_gw(GwDrop::UnknownPort, m),
                        }
                    }
                }
            }
            if self.index == 0 {
                got += self.poll_tap(&mut rx);
            }
            self.run_stages();
            if self.index == 0 {
                self.sweep_neighbours();
            }
            self.end_iteration();
            backoff.after_iteration(got);
        }
        self.flush();
        self.reader.offline();
        0
    }

    /// Counts and classifies a received burst of port `pi` (index in `ports`), staging ESP
    /// and protected traffic for [`Worker::run_stages`]. `run` calls it for every RX burst;
    /// the bench's traffic source (`espd bench`) calls it with the frames it built.
    pub fn receive(&mut self, pi: usize, rx: &mut Burst<MAX_BURST>) {
        self.count(Traffic::RxPackets, rx.len() as u64);
        self.count(Traffic::RxBytes, burst_bytes(rx.as_slice()));
        self.begin_burst();
        for m in rx.drain() {
            self.classify_one(pi, m);
        }
    }

    /// Once per received burst: the clock, and the SA database's change counter for the
    /// flow cache.
    #[inline]
    fn begin_burst(&mut self) {
        self.now = lcore::tsc();
        self.changes = self.reader.region().changes();
        self.flows.begin_burst(self.changes);
    }

    /// Every 1/[`SWEEP_PARTS`] s (by the per-burst TSC): ages the next part of the neighbour
    /// table and asks again for the stale entries it lists, at most [`CONFIRM_PER_SWEEP`] per
    /// part (worker 0 only).
    fn sweep_neighbours(&mut self) {
        let now = self.now;
        if now.wrapping_sub(self.last_sweep) < self.sweep_period {
            return;
        }
        self.last_sweep = now;
        let mut confirm = std::mem::take(&mut self.confirm);
        confirm.clear();
        self.neigh.sweep_part(now, self.sweep_part, SWEEP_PARTS, &mut confirm);
        self.sweep_part = (self.sweep_part + 1) % SWEEP_PARTS;
        for &(ip, port) in &confirm {
            self.resolve(usize::from(port), ip);
        }
        self.confirm = confirm;
        // The table counts for every lcore; the one that ages it publishes the growth.
        let r = self.neigh.refusals();
        let p = self.neigh_published;
        self.count(Traffic::NeighUnsolicited, r.unsolicited.saturating_sub(p.unsolicited));
        self.count(Traffic::NeighTableFull, r.table_full.saturating_sub(p.table_full));
        self.count(Traffic::NeighEvicted, r.evicted.saturating_sub(p.evicted));
        self.neigh_published = r;
    }

    /// The inbound then the outbound stage over what was received since the last call.
    pub fn run_stages(&mut self) {
        self.run_inbound();
        self.run_outbound();
    }

    /// Flushes every port's TX burst and passes a quiescent point of the SA database.
    pub fn end_iteration(&mut self) {
        self.flush();
        self.reader.quiescent();
    }

    /// For the bench's traffic source only (a production path never calls it): forgets
    /// what inbound SA `slot`'s replay window has seen, in this lcore's context and in the
    /// region, so that a pool of pre-generated ESP packets with sequence numbers 1, 2, ...
    /// can be sent again. Returns false if the slot is not an inbound SA this lcore can use.
    #[cfg(feature = "bench")]
    pub fn rearm_inbound(&mut self, slot: u32) -> bool {
        let Some(entry) = self.cache.get(&self.reader, &self.backends, slot) else {
            return false;
        };
        let Ctx::In(sa) = &mut entry.ctx else {
            return false;
        };
        sa.replay_window_mut().set_top(0);
        self.reader.hot(slot).seq.store(0, Ordering::Relaxed);
        true
    }

    fn port_index_of(&self, dpdk_port: u16) -> Option<usize> {
        self.ports.iter().position(|p| p.rx.port_id() == dpdk_port)
    }

    /// Frames from the host stack leave by the exception port. IP packets go through the
    /// outbound policy first, as inside traffic does: the gateway's own traffic can be
    /// protected (transport mode between the gateways, GRE or L2TP over IPsec) while IKE,
    /// which no protect policy should cover, goes out as it is.
    fn poll_tap(&mut self, rx: &mut Burst<MAX_BURST>) -> usize {
        let Some(tap_rx) = self.tap.as_mut().and_then(|t| t.rx.as_mut()) else { return 0 };
        let n = tap_rx.rx_burst(rx);
        if n == 0 {
            return 0;
        }
        let Some(pi) = self.ports.iter().position(|p| p.to_tap) else {
            rx.clear();
            return n;
        };
        self.begin_burst();
        let now = self.now;
        for m in rx.drain() {
            self.count(Traffic::FromHost, 1);
            let Some((flow, l3)) = host_flow(m.data()) else {
                self.push_tx(pi, m);
                continue;
            };
            match self
                .flows
                .lookup(Direction::Out, &flow, || self.reader.lookup_policy(Direction::Out, &flow))
            {
                Some(pm) if pm.action == Action::Protect => match pm.sa_slot {
                    Some(slot) => self.outb.push((m, l3, slot, pi)),
                    None => {
                        self.acquire(&pm, &flow, now);
                        self.drop_gw(GwDrop::NoSaAcquire, m);
                    }
                },
                Some(pm) if pm.action == Action::Discard => self.drop_gw(GwDrop::PolicyDiscard, m),
                _ => self.push_tx(pi, m),
            }
        }
        n
    }

    /// Tells the control side that a protect policy needs an SA (at most once per second per
    /// policy, across lcores).
    fn acquire(&self, pm: &sadb::PolicyMatch, flow: &Flow, now: u64) {
        if self.reader.acquire_due(pm.slot, now, self.tsc_hz) {
            let ev = Event {
                kind: EventKind::Acquire as u8,
                family: flow.family,
                proto: flow.proto,
                reqid: pm.reqid,
                src: flow.src,
                dst: flow.dst,
                sport: flow.sport,
                dport: flow.dport,
                policy: pm.id,
                ..bytemuck::Zeroable::zeroed()
            };
            self.reader.emit(&ev);
            self.count(Traffic::Acquires, 1);
        }
    }

    /// Hands a decapsulated IP packet addressed to the gateway to the host stack, framed for
    /// the TAP (whose MAC is the exception port's).
    fn deliver_to_host(&mut self, mut m: Mbuf, family: u8) {
        let Some(pi) = self.ports.iter().position(|p| p.to_tap) else {
            self.drop_gw(GwDrop::NoException, m);
            return;
        };
        let Some(mac) = self.ifaces.get(pi).map(|i| i.mac) else {
            self.drop_gw(GwDrop::NoException, m);
            return;
        };
        let ethertype = if family == 4 { ethernet::ETHERTYPE_IPV4 } else { ethernet::ETHERTYPE_IPV6 };
        if m.prepend(14).is_some_and(|h| ethernet::write_header(h, mac, mac, ethertype)) {
            self.send_to_host(pi, m);
        } else {
            self.drop_gw(GwDrop::NoException, m);
        }
    }

    fn send_to_host(&mut self, pi: usize, m: Mbuf) {
        if self.tap.is_some() && self.ports[pi].to_tap {
            self.count(Traffic::ToHost, 1);
            if let Err(m) = self.tap_tx.push(m) {
                self.drop_gw(GwDrop::TxFull, m);
            }
        } else {
            self.drop_gw(GwDrop::NoException, m);
        }
    }

    #[inline]
    fn push_tx(&mut self, pi: usize, m: Mbuf) {
        let Some(b) = self.tx.get_mut(pi) else {
            self.drop_gw(GwDrop::NoRoute, m);
            return;
        };
        if let Err(m) = b.push(m) {
            // Full: send what we have, then queue this one.
            self.ports[pi].tx.tx_burst(b);
            let left = b.len() as u64;
            b.clear();
            self.reader.count(gw_drop(GwDrop::TxFull), left);
            if let Err(m) = b.push(m) {
                self.drop_gw(GwDrop::TxFull, m);
            }
        }
    }

    /// Sends `b` on port `pi` by this worker's TX queue, now; returns how many the driver
    /// took (the bench's io mode, which bypasses the stages).
    #[cfg(feature = "bench")]
    pub fn send_burst(&mut self, pi: usize, b: &mut Burst<MAX_BURST>) -> usize {
        self.ports.get_mut(pi).map_or(0, |p| p.tx.tx_burst(b))
    }

    fn flush(&mut self) {
        for (pi, b) in self.tx.iter_mut().enumerate() {
            if b.is_empty() {
                continue;
            }
            let Some(p) = self.ports.get_mut(pi) else { continue };
            let bytes = burst_bytes(b.as_slice());
            let sent = p.tx.tx_burst(b) as u64;
            // What the driver did not take is still in the burst.
            let unsent = burst_bytes(b.as_slice());
            self.reader.count(traffic(Traffic::TxPackets), sent);
            self.reader.count(traffic(Traffic::TxBytes), bytes - unsent);
            if !b.is_empty() {
                self.reader.count(gw_drop(GwDrop::TxFull), b.len() as u64);
                b.clear();
            }
        }
        if let Some(tap) = &mut self.tap {
            if !self.tap_tx.is_empty() {
                tap.tx.tx_burst(&mut self.tap_tx);
                if !self.tap_tx.is_empty() {
                    self.reader.count(gw_drop(GwDrop::TxFull), self.tap_tx.len() as u64);
                    self.tap_tx.clear();
                }
            }
        }
    }

    fn classify_one(&mut self, pi: usize, mut m: Mbuf) {
        // The stages edit packets in place: a chain, or a buffer another mbuf shares (a
        // driver's zero-copy clone), is dropped here, in one branch.
        if !(m.is_contiguous() & m.is_exclusive()) {
            self.drop_gw(GwDrop::ChainedMbuf, m);
            return;
        }
        let now = self.now;
        let class = match self.fast_v4.classify(m.data(), pi as u16) {
            Some(c) => c,
            None => classify(m.data(), pi as u16, &self.ifaces),
        };
        let Some(iface) = self.ifaces.get(pi) else {
            self.drop_gw(GwDrop::UnknownPort, m);
            return;
        };
        match class {
            Classified::Arp => {
                // Only addresses we resolve are learnt; strangers are refused and counted.
                let _ = arp::learn(&self.neigh, m.data(), iface, pi as u16, now);
                if m.data_mut().is_some_and(|d| arp::reply_in_place(d, iface)) {
                    self.count(Traffic::ArpReplies, 1);
                    self.push_tx(pi, m);
                } else {
                    // Replies and requests not for us: the host stack may be waiting for them.
                    self.send_to_host(pi, m);
                }
            }
            Classified::NeighborSolicit => {
                let _ = nd::learn_from_ns(&self.neigh, m.data(), pi as u16, now);
                // The advertisement (86 bytes) can be longer than the solicitation: make room
                // first, then trim to what was written.
                let len = m.data_len();
                if len < NA_LEN && m.append((NA_LEN - len) as u16).is_none() {
                    self.send_to_host(pi, m);
                    return;
                }
                match m.data_mut().and_then(|d| nd::na_in_place(d, len, iface)) {
                    Some(n) if m.trim((m.data_len().saturating_sub(n)) as u16) || m.data_len() == n => {
                        self.count(Traffic::NdReplies, 1);
                        self.push_tx(pi, m);
                    }
                    _ => {
                        let extra = m.data_len().saturating_sub(len);
                        let _ = m.trim(extra as u16);
                        self.send_to_host(pi, m);
                    }
                }
            }
            Classified::NeighborAdvert => {
                let _ = nd::learn_from_na(&self.neigh, m.data(), pi as u16, now);
                self.send_to_host(pi, m);
            }
            Classified::IcmpEchoToUs { family, .. } => {
                if self.ports[pi].to_tap && self.tap.is_some() {
                    self.send_to_host(pi, m);
                    return;
                }
                let mac = iface.mac;
                let len = match family {
                    Family::V4 => m.data_mut().and_then(|d| icmp::echo_reply_v4_in_place(d, mac)),
                    Family::V6 => m.data_mut().and_then(|d| icmp::echo_reply_v6_in_place(d, mac)),
                };
                match len {
                    Some(n) if m.trim((m.data_len().saturating_sub(n)) as u16) || m.data_len() == n => {
                        self.push_tx(pi, m)
                    }
                    _ => self.drop_gw(GwDrop::Malformed, m),
                }
            }
            Classified::IkeToUs { .. } | Classified::NatKeepalive { .. } | Classified::OtherToUs { .. } => {
                self.send_to_host(pi, m)
            }
            Classified::EspToUs { spi, l3_offset, .. } if self.ports[pi].outside => {
                self.inb_spis.push(spi);
                self.inb.push((m, l3_offset));
            }
            Classified::Transit { family, src, dst, proto, sport, dport, l3_offset, .. } => {
                let family = if family == Family::V4 { 4 } else { 6 };
                let flow = Flow { family, src: ip16(src), dst: ip16(dst), proto, sport, dport };
                self.transit(pi, m, l3_offset, flow, now);
            }
            Classified::Ignore(_) => {
                // Not an error (another host's unicast, VLAN-tagged, LLDP...), but counted.
                self.count(Traffic::Ignored, 1);
                drop(m);
            }
            // ESP to one of our addresses from the inside: not a tunnel of ours (those end on
            // the outside); the host's, like anything else for us.
            Classified::EspToUs { .. } => self.send_to_host(pi, m),
            Classified::Malformed(_) => self.drop_gw(GwDrop::Malformed, m),
        }
    }

    /// Plaintext not addressed to us: outbound policy from the inside, inbound policy check
    /// from the outside. With no matching policy the packet is forwarded (xfrm's default).
    fn transit(&mut self, pi: usize, m: Mbuf, l3: usize, flow: Flow, now: u64) {
        let p = &self.ports[pi];
        if p.inside {
            match self
                .flows
                .lookup(Direction::Out, &flow, || self.reader.lookup_policy(Direction::Out, &flow))
            {
                Some(pm) if pm.action == Action::Protect => match pm.sa_slot {
                    Some(slot) => {
                        self.outb.push((m, l3, slot, pi));
                        return;
                    }
                    None => {
                        self.acquire(&pm, &flow, now);
                        self.drop_gw(GwDrop::NoSaAcquire, m);
                        return;
                    }
                },
                Some(pm) if pm.action == Action::Discard => {
                    self.drop_gw(GwDrop::PolicyDiscard, m);
                    return;
                }
                _ => {}
            }
        } else if let Some(pm) =
            self.flows.lookup(Direction::In, &flow, || self.reader.lookup_policy(Direction::In, &flow))
        {
            // Plaintext from the outside that a policy says must arrive protected.
            if pm.action != Action::Bypass {
                self.drop_gw(GwDrop::PolicyDiscard, m);
                return;
            }
        }
        self.count(Traffic::BypassPackets, 1);
        self.forward_l3(m, l3, flow.family, ip_of(&flow.dst, flow.family));
    }

    /// Strips the L2 header (`l3` bytes), routes the IP packet to `dst` and sends it.
    fn forward_l3(&mut self, mut m: Mbuf, l3: usize, family: u8, dst: IpAddr) {
        if l3 > 0 && !m.adj(l3 as u16) {
            self.drop_gw(GwDrop::Malformed, m);
            return;
        }
        self.send_ip(m, family, dst);
    }

    /// Sends an IP packet (data starts at the IP header) towards `dst`.
    fn send_ip(&mut self, m: Mbuf, family: u8, dst: IpAddr) {
        match self.next_hop(dst) {
            Some((mac, pi)) => self.emit(m, family, mac, pi),
            None => self.drop_gw(GwDrop::NoRoute, m),
        }
    }

    /// The MAC and port of the next hop towards `dst`; if the neighbour is unresolved, asks
    /// for it and returns `None`.
    fn next_hop(&mut self, dst: IpAddr) -> Option<(Mac, usize)> {
        let (nh, port) = self.routes.resolve(dst)?;
        let pi = usize::from(port);
        self.ifaces.get(pi)?;
        match self.neigh.lookup(nh, self.now) {
            Some((mac, _)) => Some((mac, pi)),
            None => {
                self.resolve(pi, nh);
                None
            }
        }
    }

    /// Prepends the Ethernet header (to `dst_mac`, from port `pi`) and queues for TX.
    fn emit(&mut self, mut m: Mbuf, family: u8, dst_mac: Mac, pi: usize) {
        let Some(src_mac) = self.ifaces.get(pi).map(|i| i.mac) else {
            self.drop_gw(GwDrop::NoRoute, m);
            return;
        };
        let ethertype = if family == 4 { ethernet::ETHERTYPE_IPV4 } else { ethernet::ETHERTYPE_IPV6 };
        if m.prepend(14).is_some_and(|h| ethernet::write_header(h, dst_mac, src_mac, ethertype)) {
            self.push_tx(pi, m);
        } else {
            self.drop_gw(GwDrop::NoRoute, m);
        }
    }

    /// Sends an ARP request or neighbour solicitation for `ip` on port `pi`, at most one per
    /// second per address across workers.
    fn resolve(&mut self, pi: usize, ip: IpAddr) {
        let now = self.now;
        if !self.neigh.needs_request(ip, now, self.tsc_hz) {
            return;
        }
        let Some(mut m) = self.pool.alloc() else { return };
        let Some(iface) = self.ifaces.get(pi) else { return };
        let len = match (ip, m.append(128)) {
            (IpAddr::V4(t), Some(buf)) => {
                iface.ipv4_for(t).and_then(|src| arp::build_request(buf, iface.mac, src, t))
            }
            (IpAddr::V6(t), Some(buf)) => {
                iface.ipv6_for(t).and_then(|src| nd::build_ns(buf, iface.mac, src, t))
            }
            _ => None,
        };
        match len {
            Some(n) if m.trim((128 - n) as u16) => self.push_tx(pi, m),
            _ => drop(m),
        }
    }

    /// Answers a packet too big for the tunnel with ICMP "fragmentation needed" (IPv4 with
    /// DF) or ICMPv6 "packet too big", from our address on the port it came in by.
    fn too_big(&mut self, m: Mbuf, pi: usize, mtu: usize) {
        let data = m.data();
        let v4 = data.first().is_some_and(|b| b >> 4 == 4);
        let df = data.get(6).is_some_and(|b| b & 0x40 != 0);
        let src = ip_src(data);
        let allowed = (!v4 || df) && self.icmp_limit.allow(lcore::tsc());
        if let (true, Some(src), Some(mut e)) = (allowed, src, self.pool.alloc()) {
            let iface = self.ifaces.get(pi);
            let len = match (src, e.append(1280)) {
                (IpAddr::V4(s), Some(buf)) => iface.and_then(|i| i.ipv4_for(s)).and_then(|ours| {
                    icmp::build_fragmentation_needed(buf, data, ours, mtu.min(usize::from(u16::MAX)) as u16)
                }),
                (IpAddr::V6(s), Some(buf)) => iface
                    .and_then(|i| i.ipv6_for(s))
                    .and_then(|ours| icmp::build_packet_too_big(buf, data, ours, mtu.max(1280) as u32)),
                _ => None,
            };
            match len {
                Some(n) if e.trim((1280 - n) as u16) => self.send_ip(e, if v4 { 4 } else { 6 }, src),
                _ => drop(e),
            }
        }
        self.drop_gw(GwDrop::TooBig, m);
    }

    /// Inbound stage: batch SPI lookup, hand-off of other workers' SAs, ESP per SA group.
    fn run_inbound(&mut self) {
        if self.inb.is_empty() {
            return;
        }
        let t0 = self.stage_clock.now();
        self.inb_slots.clear();
        self.inb_slots.resize(self.inb_spis.len(), None);
        self.reader.lookup_burst(&self.inb_spis, None, &mut self.inb_slots);
        self.cache.warm(&self.reader, self.inb_slots.iter().copied().flatten());
        let me = self.reader.index() + 1;
        let mut items = std::mem::take(&mut self.inb);
        for (i, (m, l3)) in items.drain(..).enumerate() {
            let Some(slot) = self.inb_slots.get(i).copied().flatten() else {
                self.drop_esp(DropReason::NoSa, None, m);
                continue;
            };
            // Single writer for the replay window: claim the SA, or hand the frame to its owner.
            let owner = self.reader.claim_inbound(slot, me);
            if owner != me {
                let worker = self.owners.get(owner.wrapping_sub(1) as usize).copied().flatten();
                match worker.and_then(|w| self.rings.get(w)) {
                    Some((r, _)) => {
                        let mut one: Burst<1> = Burst::new();
                        let _ = one.push(m);
                        if r.enqueue_burst(&mut one) == 0 {
                            self.reader.count(gw_drop(GwDrop::TxFull), 1);
                        } else {
                            self.count(Traffic::HandedOff, 1);
                        }
                    }
                    None => {
                        // The owner is gone: take the SA over.
                        self.reader.release_inbound(slot, owner);
                        self.reader.claim_inbound(slot, me);
                        self.stage_inbound(m, l3, slot);
                    }
                }
                continue;
            }
            self.stage_inbound(m, l3, slot);
        }
        self.inb = items;
        self.inb_spis.clear();
        self.stage_clock.lap(t0, |s| &mut s.lookup);
        self.process_stage(true);
    }

    fn stage_inbound(&mut self, mut m: Mbuf, l3: usize, slot: u32) {
        if l3 > 0 && !m.adj(l3 as u16) {
            self.drop_esp(DropReason::BadLength, Some(slot), m);
            return;
        }
        self.stage.push(Pkt::new(m, slot));
    }

    /// Outbound stage.
    fn run_outbound(&mut self) {
        if self.outb.is_empty() {
            return;
        }
        let t0 = self.stage_clock.now();
        let mut items = std::mem::take(&mut self.outb);
        self.cache.warm(&self.reader, items.iter().map(|i| i.2));
        // Read before any lookup: a hop cached at this generation is current or was resolved
        // after it was read (see `NeighborTable::generation`).
        let generation = self.neigh.generation();
        for (mut m, l3, slot, pi) in items.drain(..) {
            if l3 > 0 && !m.adj(l3 as u16) {
                self.drop_esp(DropReason::BadLength, Some(slot), m);
                continue;
            }
            // RFC 4301 §8: the packet plus ESP overhead (an upper bound: worst-case padding)
            // must fit the outside link, or the sender learns the MTU that does.
            let (overhead, peer, cached) =
                match self.cache.get_at(&self.reader, &self.backends, slot, self.changes) {
                    Some(e) => match &e.ctx {
                        Ctx::Out(sa) => (
                            sa.headroom_needed() + sa.tailroom_needed(),
                            e.peer,
                            e.via.filter(|v| v.2 == generation).map(|(mac, pi, _)| (mac, pi)),
                        ),
                        Ctx::In(_) => (0, None, None),
                    },
                    None => (0, None, None),
                };
            if m.data_len() + overhead > self.out_mtu {
                self.too_big(m, pi, self.out_mtu.saturating_sub(overhead));
                continue;
            }
            // Only spend a sequence number on a packet that can leave: the next hop towards
            // the peer (or, in transport mode, the destination) must be resolved. A tunnel's
            // next hop is the peer's, kept with the SA; transport mode looks it up per packet.
            let via = match cached {
                Some(v) => Some(v),
                None => {
                    let dst = peer.or_else(|| ip_dst(m.data()).map(|(_, d)| d));
                    let via = dst.and_then(|d| self.next_hop(d));
                    if let (Some((mac, hop_pi)), Some(_), Some(e)) = (via, peer, self.cache.peek_mut(slot)) {
                        e.via = Some((mac, hop_pi, generation));
                    }
                    via
                }
            };
            let Some(via) = via else {
                self.drop_gw(GwDrop::NoRoute, m);
                continue;
            };
            let mut p = Pkt::new(m, slot);
            p.via = Some(via);
            p.inner_len = u32::try_from(p.m.data_len()).unwrap_or(u32::MAX);
            self.stage.push(p);
        }
        self.outb = items;
        self.stage_clock.lap(t0, |s| &mut s.lookup);
        self.process_stage(false);
    }

    /// Runs the staged packets, in arrival order, through the engine as one burst that mixes
    /// SAs (crypto once per algorithm class, whatever the SAs), accounts once per run of one
    /// SA, then routes the results.
    fn process_stage(&mut self, inbound: bool) {
        let mut stage = std::mem::take(&mut self.stage);
        let mut results = std::mem::take(&mut self.results);
        let mut keys = std::mem::take(&mut self.keys);
        keys.clear();
        keys.extend(stage.iter().map(|p| p.slot as usize));
        results.clear();
        results.resize(stage.len(), Err(DropReason::NoSa));
        let t0 = self.stage_clock.now();
        let mut timed = TimedRunner::new(&mut *self.runner);
        let runner: &mut dyn CryptoRunner = if self.stage_clock.is_on() { &mut timed } else { timed.inner() };
        let mut table = Table::new(&mut self.cache, &self.reader, &self.backends, self.changes);
        if inbound {
            esp::decap_mixed(runner, &mut table, &keys, &mut stage, &mut results);
        } else {
            esp::encap_mixed(runner, &mut table, &keys, &mut stage, &mut results);
        }
        let crypto = timed.cycles;
        let t1 = self.stage_clock.lap(t0, |s| &mut s.esp);
        self.stage_clock.carve(crypto, |s| &mut s.esp, |s| &mut s.crypto);
        // Counters, lifetimes and the window's edge: once per run of consecutive packets of
        // one SA (VPP's per-SA counter runs), not once per packet.
        let mut run: Option<(u32, u64, u64)> = None;
        for (p, r) in stage.iter().zip(results.iter()) {
            if r.is_err() {
                continue;
            }
            // The protected packet's size: the inner packet, after decapsulation or before
            // encapsulation.
            let len = if inbound { p.m.data_len() as u64 } else { u64::from(p.inner_len) };
            match &mut run {
                Some((slot, n, bytes)) if *slot == p.slot => {
                    *n += 1;
                    *bytes += len;
                }
                _ => {
                    if let Some((slot, n, bytes)) = run.replace((p.slot, 1, len)) {
                        self.account(slot, n, bytes, inbound);
                    }
                }
            }
        }
        if let Some((slot, n, bytes)) = run {
            self.account(slot, n, bytes, inbound);
        }
        for (p, r) in stage.drain(..).zip(results.drain(..)) {
            let slot = p.slot;
            match r {
                Ok(()) => {
                    let (family, dst) = match ip_dst(p.m.data()) {
                        Some(x) => x,
                        None => {
                            self.drop_esp(DropReason::BadInnerHeader, Some(slot), p.m);
                            continue;
                        }
                    };
                    self.count(if inbound { Traffic::DecapPackets } else { Traffic::EncapPackets }, 1);
                    if inbound && self.ifaces.iter().any(|i| i.is_local(dst)) {
                        // Transport mode (or a tunnel) ending at the gateway itself: the host's.
                        self.deliver_to_host(p.m, family);
                    } else {
                        match p.via {
                            Some((mac, pi)) => self.emit(p.m, family, mac, pi),
                            None => self.send_ip(p.m, family, dst),
                        }
                    }
                }
                Err(why) => self.drop_esp(why, Some(slot), p.m),
            }
        }
        self.results = results;
        self.stage = stage;
        self.keys = keys;
        self.stage_clock.lap(t1, |s| &mut s.post);
    }

    /// Adds `good` packets of `bytes` to an SA's counters in the region and fires its soft and
    /// hard lifetime events (once each, across lcores); inbound, publishes the window's right
    /// edge, which the region keeps across restarts.
    fn account(&mut self, slot: u32, good: u64, bytes: u64, inbound: bool) {
        let Some(entry) = self.cache.peek(slot) else { return };
        let hot = self.reader.hot(slot);
        if let (true, Ctx::In(sa)) = (inbound, &entry.ctx) {
            hot.seq.store(sa.replay_window().top(), Ordering::Relaxed);
        }
        let packets = hot.packets.fetch_add(good, Ordering::Relaxed) + good;
        let total = hot.bytes.fetch_add(bytes, Ordering::Relaxed) + bytes;
        hot.last_used.store(self.clock.load(Ordering::Relaxed), Ordering::Relaxed);
        let (spi, reqid) = (entry.spi, entry.reqid);
        let soft = (entry.soft_bytes != 0 && total >= entry.soft_bytes)
            || (entry.soft_packets != 0 && packets >= entry.soft_packets);
        let hard = (entry.hard_bytes != 0 && total >= entry.hard_bytes)
            || (entry.hard_packets != 0 && packets >= entry.hard_packets);
        let seq_warn =
            !inbound && !entry.esn && hot.seq.load(Ordering::Relaxed) >= u64::from(u32::MAX) - (1 << 20);
        for (flag, fire, kind, value) in [
            (sadb::HOT_FLAG_SOFT_FIRED, soft, EventKind::SoftExpire, total),
            (sadb::HOT_FLAG_HARD_FIRED, hard, EventKind::HardExpire, total),
            (
                sadb::HOT_FLAG_SEQ_WARNED,
                seq_warn,
                EventKind::SeqNearOverflow,
                hot.seq.load(Ordering::Relaxed),
            ),
        ] {
            if fire && hot.flags.fetch_or(flag, Ordering::Relaxed) & flag == 0 {
                let ev = Event { kind: kind as u8, spi, slot, reqid, value, ..bytemuck::Zeroable::zeroed() };
                self.reader.emit(&ev);
            }
        }
    }
}

/// The frames' bytes (the packet lengths of their mbufs).
fn burst_bytes(ms: &[Mbuf]) -> u64 {
    ms.iter().map(|m| m.pkt_len() as u64).sum()
}

fn ip16(a: IpAddr) -> [u8; 16] {
    match a {
        IpAddr::V4(v) => {
            let mut x = [0u8; 16];
            x[..4].copy_from_slice(&v.octets());
            x
        }
        IpAddr::V6(v) => v.octets(),
    }
}

fn ip_of(a: &[u8; 16], family: u8) -> IpAddr {
    if family == 4 {
        IpAddr::V4(std::net::Ipv4Addr::new(a[0], a[1], a[2], a[3]))
    } else {
        IpAddr::V6(std::net::Ipv6Addr::from(*a))
    }
}

/// The policy fields of an IP frame from the host stack, and where its IP header starts.
fn host_flow(frame: &[u8]) -> Option<(Flow, usize)> {
    let l3 = 14;
    let ethertype = u16::from_be_bytes(frame.get(12..14)?.try_into().ok()?);
    let ip = frame.get(l3..)?;
    let (family, src, dst, proto, l4) = match ethertype {
        ethernet::ETHERTYPE_IPV4 => {
            let ihl = usize::from(ip.first()? & 0x0f) * 4;
            let frag = u16::from_be_bytes(ip.get(6..8)?.try_into().ok()?) & 0x1fff;
            let l4 = if frag == 0 { Some(ihl) } else { None };
            (
                4,
                ip16(IpAddr::from(<[u8; 4]>::try_from(ip.get(12..16)?).ok()?)),
                ip16(IpAddr::from(<[u8; 4]>::try_from(ip.get(16..20)?).ok()?)),
                *ip.get(9)?,
                l4,
            )
        }
        ethernet::ETHERTYPE_IPV6 => {
            let up = crate::net::classify::ipv6_upper_layer(ip).ok()?;
            let l4 = (up.fragment != crate::net::classify::Fragment::NonFirst).then_some(up.offset);
            (
                6,
                <[u8; 16]>::try_from(ip.get(8..24)?).ok()?,
                <[u8; 16]>::try_from(ip.get(24..40)?).ok()?,
                up.protocol,
                l4,
            )
        }
        _ => return None,
    };
    let ports = |o: usize| -> Option<(u16, u16)> {
        Some((
            u16::from_be_bytes(ip.get(o..o + 2)?.try_into().ok()?),
            u16::from_be_bytes(ip.get(o + 2..o + 4)?.try_into().ok()?),
        ))
    };
    let (sport, dport) = match (proto, l4) {
        (6 | 17 | 132, Some(o)) => ports(o).unwrap_or((0, 0)),
        _ => (0, 0),
    };
    Some((Flow { family, src, dst, proto, sport, dport }, l3))
}

/// Source address of an IP packet.
fn ip_src(p: &[u8]) -> Option<IpAddr> {
    match p.first()? >> 4 {
        4 => {
            let d: [u8; 4] = p.get(12..16)?.try_into().ok()?;
            Some(IpAddr::from(d))
        }
        6 => {
            let d: [u8; 16] = p.get(8..24)?.try_into().ok()?;
            Some(IpAddr::from(d))
        }
        _ => None,
    }
}

/// Family and destination of an IP packet.
fn ip_dst(p: &[u8]) -> Option<(u8, IpAddr)> {
    match p.first()? >> 4 {
        4 => {
            let d: [u8; 4] = p.get(16..20)?.try_into().ok()?;
            Some((4, IpAddr::from(d)))
        }
        6 => {
            let d: [u8; 16] = p.get(24..40)?.try_into().ok()?;
            Some((6, IpAddr::from(d)))
        }
        _ => None,
    }
}
