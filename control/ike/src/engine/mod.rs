//! The sans-IO IKEv1 engine.
//!
//! Inputs: [`Engine::handle_datagram`], [`Engine::handle_timeout`],
//! [`Engine::handle_command`]. Outputs: [`Engine::poll_transmit`],
//! [`Engine::poll_timeout`], [`Engine::poll_event`]. The engine never reads
//! a clock or touches a socket; randomness and SPIs come from the caller.
//!
//! Invariants: a duplicate of the last datagram received in an exchange only
//! resends our last reply and changes no state; every state holding a
//! [`phase1::PeerAuthenticated`] proof passed the HASH_I/HASH_R check (PSK) or the
//! certificate and SIG_I/SIG_R check (signatures).

pub mod config;
mod informational;
mod phase1;
mod quick_mode;
mod signature;
mod stats;
mod table;
pub mod types;

pub use config::*;
pub use phase1::PeerAuthenticated;
pub use stats::EngineStats;
pub use types::*;

use crate::crypto::{HashAlgorithm, Rng};
use crate::keys::Phase1Keys;
use crate::msgs::{
    emit_chain, parse_chain, ExchangeType, Header, Payload, PayloadType, RawPayload, FLAG_ENCRYPTION,
    HEADER_LEN, ISAKMP_VERSION,
};
use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

/// Retransmission state of one outstanding request.
#[derive(Debug)]
struct Retransmit {
    deadline: Instant,
    interval: Duration,
    tries_left: u32,
}

/// The last datagram in and out of one exchange, for duplicate handling
/// and retransmission.
#[derive(Debug, Default)]
struct Flight {
    last_in: Option<[u8; 32]>,
    last_out: Option<Vec<u8>>,
    retransmit: Option<Retransmit>,
}

enum Tick {
    Idle,
    Resend(Vec<u8>),
    GiveUp,
}

impl Flight {
    /// Retransmission with exponential back-off, then give up.
    fn tick(&mut self, now: Instant) -> Tick {
        let Some(r) = self.retransmit.as_mut() else {
            return Tick::Idle;
        };
        if r.deadline > now {
            return Tick::Idle;
        }
        if r.tries_left == 0 {
            self.retransmit = None;
            return Tick::GiveUp;
        }
        r.tries_left -= 1;
        r.interval = r.interval.saturating_mul(2);
        r.deadline = now + r.interval;
        self.last_out.clone().map_or(Tick::Idle, Tick::Resend)
    }
}

/// An outstanding DPD R-U-THERE.
#[derive(Debug)]
struct Dpd {
    sequence: u32,
    deadline: Instant,
    interval: Duration,
    tries_left: u32,
}

/// A child SA pair whose ISAKMP SA was deleted alone (RFC 2408 §3.15): it
/// keeps forwarding until adopted by a newer IKE SA with the peer or deleted.
#[derive(Debug, Clone, Copy)]
struct Orphan {
    remote: std::net::IpAddr,
    inbound: u32,
    outbound: u32,
}

/// The message ids of an IKE SA's recent Quick Modes and Informationals,
/// the peer's and ours: a Quick Mode message 1 or an Informational with one
/// of them is a replay. Bounded: the oldest id goes when a new one comes
/// past [`SeenIds::CAPACITY`]. A short ring, searched whole (256 bytes per
/// IKE SA, nothing until the first id).
#[derive(Debug, Default)]
struct SeenIds {
    order: VecDeque<u32>,
}

impl SeenIds {
    const CAPACITY: usize = 64;

    fn contains(&self, message_id: u32) -> bool {
        self.order.contains(&message_id)
    }

    fn insert(&mut self, message_id: u32) {
        if self.contains(message_id) {
            return;
        }
        if self.order.len() >= Self::CAPACITY {
            self.order.pop_front();
        }
        self.order.push_back(message_id);
    }
}

/// Why a datagram of a known IKE SA was discarded: it changed nothing and
/// got no answer. Each reason has its `discarded-*` counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Discard {
    /// Did not decrypt or decode, lacked its HASH, or was not encrypted.
    Malformed,
    /// The HASH did not verify.
    BadHash,
    /// A half-open phase-1 message that decoded but was refused.
    Refused,
    /// An unprotected Informational of a half-open IKE SA.
    UnauthenticatedNotify,
    /// A message id seen before.
    Replay,
    /// Too many unfinished responder Quick Modes on the IKE SA.
    QuickModeLimit,
    /// Signature authentication refused, for this reason.
    Certificate(crate::pki::CertError),
}

impl Discard {
    /// The reason for an error of a message that did not authenticate.
    fn of(e: &Error) -> Self {
        match e {
            Error::AuthenticationFailed => Self::BadHash,
            Error::Certificate(reason) => Self::Certificate(*reason),
            Error::Malformed(_)
            | Error::PeerMisbehaved(
                PeerMisbehaved::MissingPayload
                | PeerMisbehaved::Unencrypted
                | PeerMisbehaved::UnexpectedExchange
                | PeerMisbehaved::BadNonce
                | PeerMisbehaved::InvalidKeyExchange
                | PeerMisbehaved::MalformedNatDiscovery,
            ) => Self::Malformed,
            Error::PeerNotified(_) => Self::UnauthenticatedNotify,
            _ => Self::Refused,
        }
    }
}

fn fingerprint(datagram: &[u8]) -> [u8; 32] {
    let h = HashAlgorithm::Sha256.hash(&[datagram]);
    let mut out = [0u8; 32];
    for (o, b) in out.iter_mut().zip(h) {
        *o = b;
    }
    out
}

/// One IKE SA.
#[derive(Debug)]
struct IkeSa {
    id: IkeSaId,
    peer: usize,
    initiator: bool,
    local: SocketAddr,
    remote: SocketAddr,
    /// The peer's ID payload body (type, protocol, port, data), once its
    /// hash verified.
    peer_id: Vec<u8>,
    cky_i: [u8; 8],
    cky_r: [u8; 8],
    state: phase1::State,
    /// CBC IV for the next phase-1 message; after phase 1, the last
    /// phase-1 CBC block that seeds phase-2 IVs (RFC 2409 Appendix B).
    p1_iv: Vec<u8>,
    flight: Flight,
    quick: Vec<quick_mode::Exchange>,
    /// (inbound SPI, outbound SPI) of installed children.
    children: Vec<(u32, u32)>,
    dpd_sequence: u32,
    /// Both sides sent a NAT-T vendor id (RFC 3947 or one of its drafts).
    nat_t: bool,
    /// The NAT-T agreed on is draft-ietf-ipsec-nat-t-ike-02/03: NAT-D and
    /// NAT-OA go out as payload types 130/131 and the UDP modes as
    /// 61443/61444 (strongSwan's `EXT_NATT_DRAFT_02_03`).
    nat_t_draft: bool,
    /// What NAT-D told us (RFC 3947 §3.2).
    nat: NatStatus,
    /// Next NAT keepalive (RFC 3948 §2.3), when we are behind a NAT.
    keepalive_at: Option<Instant>,
    /// End of the IKE SA lifetime.
    expires_at: Option<Instant>,
    /// Outstanding R-U-THERE.
    dpd: Option<Dpd>,
    /// The phase-1 transform agreed on, once known.
    chosen: Option<IkeProposal>,
    /// A responder's place in the half-open budget (see `table.rs`).
    admission: Option<table::Admission>,
    /// Recent Quick Mode and Informational message ids (replay refusal).
    seen_ids: SeenIds,
    /// Why the last discarded message of a half-open phase 1 was refused,
    /// or the error an unprotected notify named: reported (and told the
    /// peer) if the exchange times out, since no unauthenticated message
    /// may end it.
    last_error: Option<Error>,
}

/// What [`Engine::ike_sas`] reports about one IKE SA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IkeSaSummary {
    /// Handle.
    pub id: IkeSaId,
    /// Peer config index.
    pub peer: usize,
    /// We initiated it.
    pub initiator: bool,
    /// Our address and port.
    pub local: SocketAddr,
    /// The peer's address and port.
    pub remote: SocketAddr,
    /// The peer's identity as its authenticated ID payload carried it (type,
    /// protocol, port, data); empty until phase 1 completes.
    pub peer_id: Vec<u8>,
    /// Phase-1 state name (`MmISentSa` ... `Established`).
    pub state: &'static str,
    /// Quick Mode exchange state names.
    pub quick_modes: Vec<&'static str>,
    /// NAT discovery result.
    pub nat: NatStatus,
    /// (inbound SPI, outbound SPI) of installed child SAs.
    pub children: Vec<(u32, u32)>,
    /// Initiator and responder cookies.
    pub cookies: ([u8; 8], [u8; 8]),
    /// The phase-1 transform, once agreed.
    pub proposal: Option<IkeProposal>,
    /// Established (phase 1 complete and authenticated).
    pub established: bool,
}

/// Result of NAT discovery.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NatStatus {
    /// Our NAT-D did not match: we are behind a NAT.
    pub local_behind: bool,
    /// The peer's NAT-D did not match: it is behind a NAT.
    pub remote_behind: bool,
}

impl NatStatus {
    /// Any NAT on the path: float to 4500 and UDP-encapsulate ESP.
    pub fn any(self) -> bool {
        self.local_behind || self.remote_behind
    }
}

impl IkeSa {
    fn keys(&self) -> Option<&Phase1Keys> {
        match &self.state {
            phase1::State::Established { keys, .. } => Some(keys),
            _ => None,
        }
    }

    fn is_half_open(&self) -> bool {
        !matches!(self.state, phase1::State::Established { .. } | phase1::State::Dead)
    }
}

/// The IKEv1 protocol engine for all peers of one gateway.
pub struct Engine {
    config: EngineConfig,
    rng: Box<dyn Rng + Send>,
    spis: Box<dyn SpiAllocator + Send>,
    cookie_secret: [u8; 32],
    next_id: u64,
    sas: table::SaTable,
    /// Active peer entry per exact remote address (the first one), and the
    /// first active entry that accepts any address.
    peer_by_address: HashMap<IpAddr, usize>,
    any_peer: Option<usize>,
    /// Children that outlived their ISAKMP SA.
    orphans: Vec<Orphan>,
    /// Per peer entry: retired by a reload.
    retired: Vec<bool>,
    transmits: VecDeque<Transmit>,
    events: VecDeque<Event>,
    stats: EngineStats,
    /// The NAT-T dialects we speak, in order of preference. All of them
    /// outside tests, which narrow it to play an older peer.
    nat_t_offer: Vec<phase1::NatTVersion>,
    /// Set by the handler of the datagram being processed once its HASH
    /// verified: only then may it move the SA's peer endpoint, and only
    /// then may an error end anything.
    rx_authenticated: bool,
    /// Set by the handler of the datagram being processed when it discarded
    /// a message that decoded (a replay, a refusal by a limit).
    rx_discard: Option<Discard>,
    /// First messages refused, by fingerprint, with the answer each got
    /// (bounded, oldest forgotten first).
    refused_first: HashMap<[u8; 32], Transmit>,
    refused_order: VecDeque<[u8; 32]>,
    /// An instant and the wall-clock time at it: certificate validity is
    /// checked at the wall-clock time of the engine's `now`.
    wall_clock: Option<(Instant, std::time::SystemTime)>,
}

impl core::fmt::Debug for Engine {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Engine").field("sas", &self.sas.len()).finish_non_exhaustive()
    }
}

impl Engine {
    /// A new engine. The cookie secret is drawn from `rng`.
    pub fn new(
        config: EngineConfig,
        mut rng: Box<dyn Rng + Send>,
        spis: Box<dyn SpiAllocator + Send>,
    ) -> Self {
        let mut cookie_secret = [0u8; 32];
        rng.fill_bytes(&mut cookie_secret);
        let retired = vec![false; config.peers.len()];
        let mut engine = Self {
            retired,
            config,
            rng,
            spis,
            cookie_secret,
            next_id: 1,
            sas: table::SaTable::default(),
            peer_by_address: HashMap::new(),
            any_peer: None,
            orphans: Vec::new(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            stats: EngineStats::default(),
            nat_t_offer: phase1::NatTVersion::ALL.to_vec(),
            rx_authenticated: false,
            rx_discard: None,
            refused_first: HashMap::new(),
            refused_order: VecDeque::new(),
            wall_clock: None,
        };
        engine.index_peers();
        engine
    }

    /// Rebuilds the responder's peer lookup (after a peer is added or retired).
    fn index_peers(&mut self) {
        // The configuration changed: a refusal may not hold any more.
        self.refused_first.clear();
        self.refused_order.clear();
        self.peer_by_address.clear();
        self.any_peer = None;
        for (i, p) in self.config.peers.iter().enumerate() {
            if self.retired.get(i).copied().unwrap_or(false) {
                continue;
            }
            if p.remote_address.is_unspecified() {
                self.any_peer.get_or_insert(i);
            } else {
                self.peer_by_address.entry(p.remote_address).or_insert(i);
            }
        }
    }

    /// Ties the engine's clock (the `now` of every call) to wall-clock
    /// time: `wall` is the time at `now`. The engine reads no clock, and
    /// certificate validity periods and CRLs need the date; without this,
    /// signature authentication fails (`cert-refused-no-clock`). The driver
    /// calls it at start and may call it again (after a clock step).
    pub fn set_wall_clock(&mut self, now: Instant, wall: std::time::SystemTime) {
        self.wall_clock = Some((now, wall));
    }

    /// Datagram counters.
    pub fn stats(&self) -> EngineStats {
        self.stats
    }

    /// How long a finished exchange is kept to answer retransmissions: the
    /// peer's whole retransmission schedule.
    fn linger(&self) -> Duration {
        self.config.retransmit_initial.saturating_mul(1 << (self.config.retransmit_tries + 1).min(16))
    }

    /// The configuration.
    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// Number of IKE SAs (any state).
    pub fn ike_sa_count(&self) -> usize {
        self.sas.len()
    }

    /// A snapshot of every IKE SA, for the control socket (`ikectl`).
    pub fn ike_sas(&self) -> Vec<IkeSaSummary> {
        let mut v: Vec<IkeSaSummary> = self.sas.iter().map(summary).collect();
        v.sort_by_key(|s| s.id);
        v
    }

    /// One IKE SA's snapshot.
    pub fn ike_sa(&self, id: IkeSaId) -> Option<IkeSaSummary> {
        self.sas.position(id).and_then(|i| self.sas.get(i)).map(summary)
    }

    /// The IKE SAs with a peer at `remote`.
    pub fn ike_sas_with(&self, remote: std::net::IpAddr) -> Vec<IkeSaId> {
        let mut v: Vec<IkeSaId> = self.sas.iter().filter(|s| s.remote.ip() == remote).map(|s| s.id).collect();
        v.sort_unstable();
        v
    }

    /// (inbound SPI, outbound SPI) of the child SAs that outlived their
    /// ISAKMP SA and no IKE SA has adopted yet.
    pub fn orphan_children(&self) -> Vec<(u32, u32)> {
        self.orphans.iter().map(|o| (o.inbound, o.outbound)).collect()
    }

    /// The IKE SA holding the child pair with this inbound SPI: `Some(Some(id))`,
    /// `Some(None)` for an orphan, `None` when the engine does not know it.
    pub fn child_holder(&self, inbound_spi: u32) -> Option<Option<IkeSaId>> {
        if let Some(sa) = self.sas.iter().find(|s| s.children.iter().any(|(i, _)| *i == inbound_spi)) {
            return Some(Some(sa.id));
        }
        self.orphans.iter().any(|o| o.inbound == inbound_spi).then_some(None)
    }

    /// The initiator cookie and phase-1 encryption key of an established IKE
    /// SA: only for `--keylog` (Wireshark's IKEv1 decryption table).
    pub fn keylog_ike_sa(&self, id: IkeSaId) -> Option<([u8; 8], crate::crypto::Secret)> {
        let sa = self.sas.iter().find(|s| s.id == id)?;
        sa.keys().map(|k| (sa.cky_i, k.encryption_key.clone()))
    }

    /// Adds a peer entry and returns its index. Indices are stable: entries
    /// are never removed, only retired.
    pub fn add_peer(&mut self, peer: PeerConfig) -> usize {
        self.config.peers.push(peer);
        self.retired.push(false);
        self.index_peers();
        self.config.peers.len() - 1
    }

    /// Retires a peer entry: it no longer answers new phase 1 or Quick Mode
    /// exchanges nor initiates; SAs already using it live on until deleted.
    pub fn retire_peer(&mut self, peer: usize) {
        if let Some(r) = self.retired.get_mut(peer) {
            *r = true;
        }
        self.index_peers();
    }

    /// Replaces the authentication of a peer entry (new certificates, keys
    /// or CRLs): exchanges from now on use it; established SAs are not
    /// touched.
    pub fn set_peer_auth(&mut self, peer: usize, auth: AuthMethod) {
        if let Some(p) = self.config.peers.get_mut(peer) {
            p.auth = auth;
        }
    }

    /// True when `peer` exists and is not retired.
    pub(crate) fn peer_active(&self, peer: usize) -> bool {
        peer < self.config.peers.len() && !self.retired.get(peer).copied().unwrap_or(false)
    }

    /// Next datagram to send.
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// Next event for the driver.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`Engine::handle_timeout`] must next be called.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        let linger = self.linger();
        self.sas
            .iter()
            .flat_map(|sa| {
                core::iter::once(&sa.flight)
                    .chain(sa.quick.iter().map(|q| &q.flight))
                    .filter_map(|f| f.retransmit.as_ref().map(|r| r.deadline))
                    .chain(sa.keepalive_at)
                    .chain(sa.expires_at)
                    .chain(sa.dpd.as_ref().map(|d| d.deadline))
                    .chain(sa.quick.iter().filter_map(|q| q.finished.map(|t| t + linger)))
            })
            .min()
    }

    /// Acts on a command.
    pub fn handle_command(&mut self, now: Instant, command: Command) {
        match command {
            Command::Initiate { peer } => {
                self.initiate(now, peer);
            }
            Command::Delete(id) => self.delete_ike_sa(id, true, true),
            Command::DeleteIsakmpSa(id) => self.delete_ike_sa(id, true, false),
            Command::AdoptChild { ike_sa, inbound_spi } => self.adopt_child(ike_sa, inbound_spi),
            Command::DeadPeerDetection(id) => self.start_dpd(now, id),
            Command::DeleteChild { ike_sa, inbound_spi } => self.delete_child(ike_sa, inbound_spi),
            Command::CreateChild(id) => {
                if let Some(idx) = self.sas.iter().position(|s| s.id == id && s.keys().is_some()) {
                    let peer = self.sas.get(idx).map_or(0, |s| s.peer);
                    self.start_quick_mode(now, idx, peer);
                }
            }
            Command::AbortQuickMode { ike_sa, inbound_spi } => self.abort_quick_mode(ike_sa, inbound_spi),
            Command::CreateChildFor { ike_sa, peer } => {
                if let Some(idx) = self.sas.iter().position(|s| s.id == ike_sa && s.keys().is_some()) {
                    if self.peer_active(peer) {
                        self.start_quick_mode(now, idx, peer);
                    }
                }
            }
        }
    }

    /// Retransmits or gives up on overdue requests, sends NAT keepalives,
    /// retries or gives up DPD, and expires IKE SAs.
    pub fn handle_timeout(&mut self, now: Instant) {
        let keepalive = self.config.nat_keepalive_interval;
        let linger = self.linger();
        let mut dead = Vec::new();
        let mut expired = Vec::new();
        let mut dpd_retry = Vec::new();
        let mut quick_failed = Vec::new();
        for sa in self.sas.iter_mut() {
            let id = sa.id;
            if sa.expires_at.is_some_and(|t| t <= now) {
                expired.push(id);
                continue;
            }
            // RFC 3948 §2.3: a one-byte 0xFF NAT-keepalive, no marker.
            if let Some(at) = sa.keepalive_at {
                if at <= now {
                    sa.keepalive_at = Some(now + keepalive);
                    self.transmits.push_back(Transmit {
                        source: sa.local,
                        destination: sa.remote,
                        contents: vec![0xff],
                    });
                }
            }
            // RFC 3706 §5.5: unanswered R-U-THERE are retried, then the
            // peer is declared dead.
            if let Some(d) = sa.dpd.as_mut() {
                if d.deadline <= now {
                    if d.tries_left == 0 {
                        dead.push(id);
                        continue;
                    }
                    d.tries_left -= 1;
                    d.interval = d.interval.saturating_mul(2);
                    d.deadline = now + d.interval;
                    dpd_retry.push(id);
                }
            }
            // Finished Quick Modes stay only as long as a peer could still
            // retransmit into them.
            sa.quick.retain(|q| q.finished.is_none_or(|t| t + linger > now));
            let (local, remote) = (sa.local, sa.remote);
            match sa.flight.tick(now) {
                Tick::Resend(out) => self.transmits.push_back(wrap(local, remote, out)),
                Tick::GiveUp => {
                    dead.push(id);
                    continue;
                }
                Tick::Idle => {}
            }
            for q in &mut sa.quick {
                match q.flight.tick(now) {
                    Tick::Resend(out) => self.transmits.push_back(wrap(local, remote, out)),
                    Tick::GiveUp => quick_failed.push((id, q.message_id)),
                    Tick::Idle => {}
                }
            }
        }
        for (id, mid) in quick_failed {
            // A Quick Mode that timed out ends alone; the IKE SA stays.
            if let Some(sa) = self.sas.iter_mut().find(|s| s.id == id) {
                if let Some(pos) = sa.quick.iter().position(|q| q.message_id == mid) {
                    let q = sa.quick.remove(pos);
                    self.abandon_quick(&q);
                }
            }
            self.events.push_back(Event::Failed { ike_sa: id, error: Error::Timeout });
        }
        for id in dpd_retry {
            self.send_dpd_probe(id);
        }
        for id in expired {
            // RFC 2408 §3.15: the expired ISAKMP SA alone; its children keep
            // their own lifetimes (the driver re-establishes before this).
            self.delete_ike_sa(id, true, false);
        }
        for id in dead {
            // A half-open phase 1 that gave up reports why its last
            // discarded message was refused, and tells the peer now.
            let reason = self.sas.position(id).and_then(|i| {
                let sa = self.sas.get_mut(i)?;
                let e = sa.last_error.take().filter(|_| sa.is_half_open())?;
                Some((i, e))
            });
            match reason {
                Some((i, e)) => {
                    if let Some(n) = e.notify_type() {
                        self.send_plain_notify(i, n);
                    }
                    self.fail(id, e);
                }
                None => self.fail(id, Error::Timeout),
            }
        }
    }

    /// Processes one received UDP payload.
    pub fn handle_datagram(&mut self, now: Instant, local: SocketAddr, remote: SocketAddr, datagram: &[u8]) {
        self.stats.received += 1;
        let Some(datagram) = strip_marker(local, datagram) else {
            self.stats.dropped_malformed += 1;
            return;
        };
        let header = match Header::parse(datagram, self.config.max_message_len) {
            Ok(h) => h,
            // Nothing authenticated to answer to; a malformed header is dropped.
            Err(_) => {
                self.stats.dropped_malformed += 1;
                return;
            }
        };
        let Some(idx) = self.find_sa(&header, remote) else {
            if header.responder_cookie == [0; 8]
                && header.message_id == 0
                && matches!(header.exchange_type, ExchangeType::MAIN_MODE | ExchangeType::AGGRESSIVE)
            {
                self.respond_new(now, local, remote, &header, datagram);
            } else {
                self.stats.dropped_unknown_sa += 1;
            }
            return;
        };
        let Some(sa) = self.sas.get_mut(idx) else {
            return;
        };
        let id = sa.id;
        // RFC 3947 §4, §5: after the float, and when a NAT's mapping changes,
        // follow the peer's port (and its address, if NAT-D found it behind a
        // NAT). The move is tentative: it stands only if the message's HASH
        // verified, and is undone otherwise.
        let previous = (sa.local, sa.remote);
        let was_established = sa.keys().is_some();
        let may_move_address = sa.nat_t && sa.nat.remote_behind;
        if sa.remote != remote && (sa.remote.ip() == remote.ip() || may_move_address) {
            sa.remote = remote;
            sa.local = local;
        }
        self.rx_authenticated = false;
        self.rx_discard = None;
        let result = match header.exchange_type {
            ExchangeType::MAIN_MODE | ExchangeType::AGGRESSIVE => {
                self.phase1_datagram(now, idx, &header, datagram)
            }
            ExchangeType::QUICK_MODE => self.quick_datagram(now, idx, &header, datagram),
            ExchangeType::INFORMATIONAL => self.informational_datagram(idx, &header, datagram),
            _ => Err(Error::PeerMisbehaved(PeerMisbehaved::UnexpectedExchange)),
        };
        let rx_authenticated = core::mem::take(&mut self.rx_authenticated);
        let discard = self.rx_discard.take();
        let authenticated = rx_authenticated && result.is_ok() && discard.is_none();
        // The handler may have removed SAs: this one is found again by id.
        let idx = self.sas.position(id);
        match idx.and_then(|i| self.sas.get_mut(i)) {
            Some(sa) if (sa.local, sa.remote) != previous => {
                if !authenticated {
                    (sa.local, sa.remote) = previous;
                } else if was_established {
                    self.stats.peer_moved += 1;
                    self.events.push_back(Event::PeerMoved {
                        ike_sa: sa.id,
                        local: sa.local,
                        remote: sa.remote,
                        outbound_spis: sa.children.iter().map(|&(_, out)| out).collect(),
                    });
                }
            }
            _ => {}
        }
        match (result, discard) {
            (Ok(()), None) => self.stats.processed += 1,
            (Ok(()), Some(d)) => self.count_discard(d, &header),
            // RFC 2408 §5.1/§5.5: a message that does not decrypt, decode or
            // hash-verify is discarded; so is one of a half-open phase 1 that
            // is refused, as anyone who knows the cookies can send it. It
            // changed nothing (the handlers keep their state until the HASH
            // verified), gets no answer, and the genuine message, or its
            // retransmission, still completes the exchange.
            (Err(e), _) if !rx_authenticated => {
                self.count_discard(Discard::of(&e), &header);
                if let Some(sa) = idx.and_then(|i| self.sas.get_mut(i)) {
                    if sa.is_half_open() {
                        sa.last_error = Some(e);
                    }
                }
            }
            (Err(e), _) => {
                self.stats.failed += 1;
                if matches!(e, Error::AuthenticationFailed | Error::Certificate(_)) {
                    self.stats.auth_failed += 1;
                }
                if let Error::Certificate(reason) = e {
                    *self.stats.cert_refused(reason) += 1;
                }
                if let Some(i) = idx {
                    self.handle_error(i, &header, e);
                }
            }
        }
    }

    fn count_discard(&mut self, d: Discard, header: &Header) {
        let s = &mut self.stats;
        match d {
            Discard::Malformed => s.discarded_malformed += 1,
            Discard::BadHash => s.discarded_bad_hash += 1,
            Discard::Refused => s.discarded_refused += 1,
            Discard::UnauthenticatedNotify => s.discarded_unauthenticated_notify += 1,
            Discard::Replay => s.discarded_replay += 1,
            Discard::QuickModeLimit => s.discarded_quick_mode_limit += 1,
            Discard::Certificate(reason) => {
                s.discarded_certificate += 1;
                *s.cert_refused(reason) += 1;
            }
        }
        if matches!(d, Discard::BadHash | Discard::Certificate(_))
            || (matches!(d, Discard::Malformed) && header.is_encrypted())
        {
            s.auth_failed += 1;
        }
    }

    /// The IKE SA a datagram belongs to, by hash lookups: ours as
    /// initiator by its cookie (taking any responder cookie while it waits
    /// for message 2), ours as responder by both cookies; a copy of message
    /// 1 (responder cookie zero) finds the responder SA its address, port
    /// and cookie made.
    fn find_sa(&self, h: &Header, remote: SocketAddr) -> Option<usize> {
        let (cky_i, cky_r) = (&h.initiator_cookie, &h.responder_cookie);
        let initiator = self
            .sas
            .initiator(cky_i)
            .filter(|&i| self.sas.get(i).is_some_and(|sa| sa.cky_r == *cky_r || sa.cky_r == [0; 8]));
        let exact = |i: &usize| self.sas.get(*i).is_some_and(|sa| sa.cky_r == *cky_r);
        if let Some(i) = initiator.filter(exact) {
            return Some(i);
        }
        let responder = if *cky_r == [0; 8] {
            self.sas.responder(cky_i, &self.responder_cookie(remote, cky_i))
        } else {
            self.sas.responder(cky_i, cky_r)
        };
        responder.or(initiator)
    }

    fn alloc_id(&mut self) -> IkeSaId {
        let id = IkeSaId(self.next_id);
        self.next_id += 1;
        id
    }

    fn random_bytes(&mut self, n: usize) -> Vec<u8> {
        let mut v = vec![0u8; n];
        self.rng.fill_bytes(&mut v);
        v
    }

    /// A fresh non-zero message id unused in this SA, remembered as seen.
    fn new_message_id(&mut self, idx: usize) -> u32 {
        loop {
            let m = self.rng.next_u32();
            let used = self
                .sas
                .get(idx)
                .is_some_and(|sa| sa.seen_ids.contains(m) || sa.quick.iter().any(|q| q.message_id == m));
            if m != 0 && !used {
                if let Some(sa) = self.sas.get_mut(idx) {
                    sa.seen_ids.insert(m);
                }
                return m;
            }
        }
    }

    /// RFC 2408 §2.5.3: the responder cookie is a hash over the peer's
    /// address and port, the initiator cookie and a local secret.
    fn responder_cookie(&self, remote: SocketAddr, cky_i: &[u8; 8]) -> [u8; 8] {
        let addr = match remote.ip() {
            std::net::IpAddr::V4(a) => a.octets().to_vec(),
            std::net::IpAddr::V6(a) => a.octets().to_vec(),
        };
        let mac =
            HashAlgorithm::Sha256.prf(&self.cookie_secret, &[&addr, &remote.port().to_be_bytes(), cky_i]);
        let mut c = [0u8; 8];
        for (o, b) in c.iter_mut().zip(mac.iter()) {
            *o = *b;
        }
        c
    }

    fn header(sa: &IkeSa, exchange: ExchangeType, message_id: u32, flags: u8) -> Header {
        Header {
            initiator_cookie: sa.cky_i,
            responder_cookie: sa.cky_r,
            next_payload: PayloadType::NONE,
            version: ISAKMP_VERSION,
            exchange_type: exchange,
            flags,
            message_id,
            length: 0,
        }
    }

    /// Queues a datagram of `sa`; records it as the flight's last output and
    /// arms retransmission when a reply is expected.
    fn send(&mut self, now: Instant, idx: usize, qm: Option<u32>, bytes: Vec<u8>, expect_reply: bool) {
        let initial = self.config.retransmit_initial;
        let tries = self.config.retransmit_tries;
        let Some(sa) = self.sas.get_mut(idx) else {
            return;
        };
        self.transmits.push_back(wrap(sa.local, sa.remote, bytes.clone()));
        let flight = match qm {
            None => &mut sa.flight,
            Some(m) => match sa.quick.iter_mut().find(|q| q.message_id == m) {
                Some(q) => &mut q.flight,
                None => return,
            },
        };
        flight.last_out = Some(bytes);
        flight.retransmit = expect_reply.then(|| Retransmit {
            deadline: now + initial,
            interval: initial,
            tries_left: tries,
        });
    }

    /// Sends a one-shot datagram (Informational) without flight tracking.
    fn send_once(&mut self, idx: usize, bytes: Vec<u8>) {
        if let Some(sa) = self.sas.get(idx) {
            self.transmits.push_back(wrap(sa.local, sa.remote, bytes));
        }
    }

    fn handle_error(&mut self, idx: usize, header: &Header, e: Error) {
        let Some(sa) = self.sas.get(idx) else {
            return;
        };
        let id = sa.id;
        let established = sa.keys().is_some();
        if let Some(n) = e.notify_type() {
            if established {
                self.send_protected_notify(idx, n, Vec::new());
            } else {
                self.send_plain_notify(idx, n);
            }
        }
        match header.exchange_type {
            // A failed phase 1 kills the IKE SA.
            ExchangeType::MAIN_MODE | ExchangeType::AGGRESSIVE if !established => {
                self.fail(id, e);
            }
            ExchangeType::QUICK_MODE => {
                if let Some(sa) = self.sas.get_mut(idx) {
                    if let Some(pos) = sa.quick.iter().position(|q| q.message_id == header.message_id) {
                        let q = sa.quick.remove(pos);
                        self.abandon_quick(&q);
                    }
                }
                self.events.push_back(Event::Failed { ike_sa: id, error: e });
            }
            _ => self.events.push_back(Event::Failed { ike_sa: id, error: e }),
        }
    }

    /// An unfinished Quick Mode ends: a responder whose inbound SA was
    /// already installed (after HASH(2), see quick_mode.rs) asks for its
    /// removal (the driver frees the SPI with it); otherwise the SPI, never
    /// installed, goes back to the allocator.
    fn abandon_quick(&mut self, q: &quick_mode::Exchange) {
        if let Some(spi) = q.allocated_spi() {
            if q.inbound_installed() {
                self.events.push_back(Event::DeleteSa { spi, inbound: true, pair: spi });
            } else {
                self.spis.release(spi);
            }
        }
    }

    fn abort_quick_mode(&mut self, id: IkeSaId, inbound_spi: u32) {
        let Some(idx) = self.sas.position(id) else {
            return;
        };
        let Some(sa) = self.sas.get_mut(idx) else {
            return;
        };
        // Initiator: HASH(3) is queued behind the InstallSa we could not
        // honour. It must not leave (the responder would install a pair we
        // do not have, and a Delete after it is a race): withdrawn, and the
        // exchange answers no copy of HASH(2); the responder's Quick Mode
        // times out and removes its inbound SA.
        if let Some(q) = sa.quick.iter_mut().find(|q| q.installed_spi == Some(inbound_spi)) {
            q.installed_spi = None;
            if let Some(out) = q.flight.last_out.take() {
                let queued = wrap(sa.local, sa.remote, out);
                self.transmits.retain(|t| *t != queued);
            }
            sa.children.retain(|(i, _)| *i != inbound_spi);
            self.spis.release(inbound_spi);
            self.stats.quick_modes_refused += 1;
            return;
        }
        let Some(pos) =
            sa.quick.iter().position(|q| q.inbound_installed() && q.allocated_spi() == Some(inbound_spi))
        else {
            return;
        };
        let q = sa.quick.remove(pos);
        // The reply has not left yet (the driver handles events first).
        if let Some(out) = &q.flight.last_out {
            let (local, remote) = (sa.local, sa.remote);
            let queued = wrap(local, remote, out.clone());
            self.transmits.retain(|t| *t != queued);
        }
        self.spis.release(inbound_spi);
        self.stats.quick_modes_refused += 1;
        self.send_protected_notify(idx, crate::msgs::NotifyType::NO_PROPOSAL_CHOSEN, Vec::new());
    }

    /// Ends an IKE SA after an error, without telling the peer.
    fn fail(&mut self, id: IkeSaId, error: Error) {
        if let Some(pos) = self.sas.position(id) {
            let sa = self.sas.remove(pos);
            let was_established = sa.keys().is_some();
            for q in &sa.quick {
                self.abandon_quick(q);
            }
            self.events.push_back(Event::Failed { ike_sa: id, error });
            for (i, o) in sa.children {
                self.events.push_back(Event::DeleteSa { spi: i, inbound: true, pair: i });
                self.events.push_back(Event::DeleteSa { spi: o, inbound: false, pair: i });
            }
            if was_established {
                // A dead peer (DPD) takes the pairs that outlived its other
                // ISAKMP SAs with it.
                self.forget_orphans_of(sa.remote.ip());
                self.events.push_back(Event::IkeSaDeleted(id));
            }
        }
    }

    /// Deletes the orphans kept for a peer address (it is dead, or has no
    /// memory of them: INITIAL-CONTACT).
    fn forget_orphans_of(&mut self, remote: std::net::IpAddr) {
        let (gone, keep): (Vec<Orphan>, Vec<Orphan>) =
            self.orphans.drain(..).partition(|o| o.remote == remote);
        self.orphans = keep;
        for o in gone {
            self.events.push_back(Event::DeleteSa { spi: o.inbound, inbound: true, pair: o.inbound });
            self.events.push_back(Event::DeleteSa { spi: o.outbound, inbound: false, pair: o.inbound });
        }
    }

    /// [`Command::AdoptChild`]: the pair moves to `id` from another IKE SA
    /// or from the orphans.
    fn adopt_child(&mut self, id: IkeSaId, inbound_spi: u32) {
        if !self.sas.iter().any(|s| s.id == id && s.keys().is_some()) {
            return;
        }
        let mut pair = None;
        for sa in self.sas.iter_mut().filter(|s| s.id != id) {
            if let Some(pos) = sa.children.iter().position(|(i, _)| *i == inbound_spi) {
                pair = Some(sa.children.remove(pos));
                break;
            }
        }
        if pair.is_none() {
            if let Some(pos) = self.orphans.iter().position(|o| o.inbound == inbound_spi) {
                let o = self.orphans.remove(pos);
                pair = Some((o.inbound, o.outbound));
            }
        }
        if let (Some(p), Some(sa)) = (pair, self.sas.iter_mut().find(|s| s.id == id)) {
            sa.children.push(p);
        }
    }

    /// Unprotected Informational with an error Notify (phase 1 failures).
    fn send_plain_notify(&mut self, idx: usize, n: crate::msgs::NotifyType) {
        if let Some(t) = self.plain_notify(idx, n) {
            self.transmits.push_back(t);
        }
    }

    fn plain_notify(&self, idx: usize, n: crate::msgs::NotifyType) -> Option<Transmit> {
        let sa = self.sas.get(idx)?;
        let h = Self::header(sa, ExchangeType::INFORMATIONAL, 0, 0);
        let payloads = vec![Payload::Notify(crate::msgs::NotifyPayload {
            doi: crate::msgs::DOI_IPSEC,
            protocol: crate::msgs::ProtocolId::ISAKMP,
            notify_type: n,
            spi: [sa.cky_i, sa.cky_r].concat(),
            data: Vec::new(),
        })];
        let bytes = crate::msgs::Message { header: h, payloads }.emit();
        Some(wrap(sa.local, sa.remote, bytes))
    }

    /// Keeps the answer to a refused first message, so that its
    /// retransmissions get the same answer and make no second event.
    fn remember_refusal(&mut self, fp: [u8; 32], answer: Transmit) {
        if self.refused_first.insert(fp, answer).is_none() {
            self.refused_order.push_back(fp);
        }
        if self.refused_order.len() > REFUSED_MEMORY {
            if let Some(old) = self.refused_order.pop_front() {
                self.refused_first.remove(&old);
            }
        }
    }
}

/// How many refused first messages [`Engine::remember_refusal`] keeps.
const REFUSED_MEMORY: usize = 256;

fn summary(sa: &IkeSa) -> IkeSaSummary {
    IkeSaSummary {
        id: sa.id,
        peer: sa.peer,
        initiator: sa.initiator,
        local: sa.local,
        remote: sa.remote,
        peer_id: sa.peer_id.clone(),
        state: sa.state.name(),
        quick_modes: sa.quick.iter().map(|q| q.state_name()).collect(),
        nat: sa.nat,
        children: sa.children.clone(),
        cookies: (sa.cky_i, sa.cky_r),
        proposal: sa.chosen,
        established: sa.keys().is_some(),
    }
}

/// Encrypts `payloads` under `keys` with `iv`, returning the datagram and
/// updating `iv` to the last ciphertext block (RFC 2409 Appendix B chaining).
fn encrypt_message(
    keys: &Phase1Keys,
    iv: &mut Vec<u8>,
    mut header: Header,
    payloads: &[Payload],
) -> Result<Vec<u8>, Error> {
    let (first, mut body) = emit_chain(payloads);
    let bl = keys.cipher.block_len();
    // RFC 2409 §5.3 / RFC 2408 §3.1: pad to the block size.
    let pad = (bl - body.len() % bl) % bl;
    body.resize(body.len() + pad, 0);
    keys.cipher.encrypt(&keys.encryption_key, iv, &mut body).map_err(|_| Error::Local("encryption"))?;
    if let Some(last) = body.get(body.len().saturating_sub(bl)..) {
        *iv = last.to_vec();
    }
    header.next_payload = first;
    header.flags |= FLAG_ENCRYPTION;
    header.length = u32::try_from(HEADER_LEN + body.len()).map_err(|_| Error::Local("size"))?;
    let mut out = Vec::with_capacity(HEADER_LEN + body.len());
    header.emit(&mut out);
    out.extend_from_slice(&body);
    Ok(out)
}

/// Emits `[HASH(hash), rest...]` as a payload chain.
fn hashed_chain(hash: Vec<u8>, rest: &[Payload]) -> Vec<Payload> {
    let mut v = Vec::with_capacity(rest.len() + 1);
    v.push(Payload::Hash(hash));
    v.extend_from_slice(rest);
    v
}

/// Decrypts the body of `datagram`; returns the plaintext and the IV that
/// follows this message.
fn decrypt_body(keys: &Phase1Keys, iv: &[u8], datagram: &[u8]) -> Result<(Vec<u8>, Vec<u8>), Error> {
    let mut body = datagram.get(HEADER_LEN..).unwrap_or(&[]).to_vec();
    let bl = keys.cipher.block_len();
    let next_iv = body.get(body.len().saturating_sub(bl)..).unwrap_or(&[]).to_vec();
    keys.cipher.decrypt(&keys.encryption_key, iv, &mut body).map_err(|_| Error::AuthenticationFailed)?;
    Ok((body, next_iv))
}

/// The bytes of every payload after the first (the HASH payload), as they
/// were received: the input of HASH(1), HASH(2) and the Informational hash.
fn after_first(raws: &[RawPayload<'_>]) -> Vec<u8> {
    raws.iter().skip(1).flat_map(|r| r.raw.iter().copied()).collect()
}

fn parse_plain<'a>(header: &Header, datagram: &'a [u8]) -> Result<Vec<RawPayload<'a>>, Error> {
    let body = datagram.get(HEADER_LEN..).unwrap_or(&[]);
    Ok(parse_chain(header.next_payload, body, false)?)
}

/// Port 4500 carries a 4-byte zero non-ESP marker (RFC 3948 §2.2); a single
/// 0xff byte is a NAT-keepalive.
fn strip_marker(local: SocketAddr, d: &[u8]) -> Option<&[u8]> {
    if local.port() == 4500 {
        match d {
            [0, 0, 0, 0, rest @ ..] => Some(rest),
            _ => None,
        }
    } else {
        Some(d)
    }
}

fn wrap(local: SocketAddr, remote: SocketAddr, bytes: Vec<u8>) -> Transmit {
    let contents = if local.port() == 4500 {
        let mut v = Vec::with_capacity(bytes.len() + 4);
        v.extend_from_slice(&[0, 0, 0, 0]);
        v.extend_from_slice(&bytes);
        v
    } else {
        bytes
    };
    Transmit { source: local, destination: remote, contents }
}

#[cfg(test)]
mod hostile_tests;
#[cfg(test)]
mod nat_t_tests;
#[cfg(test)]
mod tests;
