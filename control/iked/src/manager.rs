//! The SA manager: what strongSwan's charon does around the protocol. It
//! owns the sans-IO engine and the SA database handle, turns configuration
//! into engine peer entries, installs what the engine negotiates, and runs
//! the lifecycle: start and trap actions, acquires, rekeying
//! (make-before-break), expiry, re-establishment of ISAKMP SAs, DPD on
//! idle, INITIAL-CONTACT. It reads no clock and touches no socket: the
//! caller passes `now` and moves the engine's datagrams (see `net.rs`).
//!
//! Rules worth knowing:
//! - Events are handled before datagrams are sent, so the inbound SA of a
//!   Quick Mode is in the database before the message that lets the peer
//!   use it leaves.
//! - A child pair gets a reqid per (peer entry, selectors). A rekeyed pair
//!   reuses it: the database moves the policy to the newest outbound SA, and
//!   the old pair is deleted (Delete sent) after [`REKEY_OVERLAP`].
//! - Each new pair records which pair of its reqid was current when its
//!   Quick Mode started (`replaces`). Two pairs replacing the same one are
//!   duplicates (both ends rekeyed, or started, at once): both ends keep the
//!   pair with the lower min(SPI in, SPI out) and delete the other, so they
//!   agree without talking. Quick Mode messages cross on a FIFO path, so both
//!   ends see the same `replaces` for both pairs.
//! - A rekey we initiate switches traffic to the new outbound SA
//!   [`OUTBOUND_SWITCH_DELAY`] after HASH(3) leaves, not with it: a responder
//!   may install its inbound SA only once HASH(3) arrives (charon does), and
//!   an ESP packet overtaking it is dropped there (seen against strongSwan
//!   6.0, whose ESP arrives on a socket of its own). The old pair carries
//!   the traffic meanwhile; a first pair, with nothing to fall back on, is
//!   used at once. An old pair nearing its hard volume limit hands over
//!   sooner: within half the time its traffic rate leaves it (the dataplane
//!   drops on an SA past its hard limit).
//! - A soft volume limit's event starts the rekey when it is read (the
//!   daemon reads the dataplane's events every 10 ms, see
//!   [`Manager::poll_dataplane`]); only the outbound SA's counts.

use crate::config::{engine::peer_configs, selector::DisplayTs, Child, Config, Connection};
use crate::config::{PeerGoneAction, StartAction};
use crate::ctl::protocol::{ChildSaInfo, CtlError, ErrorCode, IkeSaInfo, LoadSummary};
use crate::daemon::EngineCounts;
use crate::keylog::{EspKeys, KeyLog};
use crate::knl::{policies, Kernel, SaLimits};
use ike::crypto::{Cipher, DhGroup, HashAlgorithm};
use ike::engine::{
    Command, Encapsulation, Engine, EngineConfig, EspEncryption, EspIntegrity, EspSaDescription, Event,
    IkeSaId, TrafficSelector, Transmit, TsAddress,
};
use rand_core::RngCore;
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How long a rekeyed pair stays after its successor is installed.
pub const REKEY_OVERLAP: Duration = Duration::from_secs(2);
/// How long after our HASH(3) a rekeyed pair's outbound SA takes the traffic
/// (the responder's time to receive it and install its inbound SA; well
/// within [`REKEY_OVERLAP`], so the old pair is still there).
pub const OUTBOUND_SWITCH_DELAY: Duration = Duration::from_millis(200);
/// A rekey without result after this long is tried again.
const REKEY_RETRY: Duration = Duration::from_secs(30);
/// Pause before retrying a failed initiation.
const RETRY_DELAY: Duration = Duration::from_secs(3);
/// First reqid for selectors narrowed by a peer (configured ones use the
/// peer entry index + 1).
const DYNAMIC_REQID: u32 = 0x0001_0000;

/// One engine peer entry: a child's selector pair of a connection.
#[derive(Debug, Clone)]
struct Entry {
    conn: String,
    child: String,
    local_ts: TrafficSelector,
    remote_ts: TrafficSelector,
    retired: bool,
}

/// DPD bookkeeping of an IKE SA.
#[derive(Debug, Clone, Copy)]
struct Dpd {
    /// When inbound traffic (or a DPD answer) was last seen.
    last_activity: Instant,
    /// Inbound ESP packets of the IKE SA's children at the last look.
    inbound_packets: u64,
    probe_deadline: Option<Instant>,
}

#[derive(Debug, Clone)]
struct IkeState {
    conn: String,
    /// The peer's address (a `%any` connection has many peers).
    remote: Option<IpAddr>,
    /// The peer's authenticated identity (ID payload body), once
    /// established: clients behind one NAT address are told apart by it.
    peer_id: Vec<u8>,
    established: Option<(Instant, SystemTime)>,
    reauth_at: Option<Instant>,
    /// A newer IKE SA of the connection replaced this one.
    replaced: bool,
    /// When it was replaced (its deletion waits [`REKEY_OVERLAP`]).
    replaced_at: Option<Instant>,
    /// It was replaced by an IKE SA we initiated (see
    /// [`Manager::delete_replaced_ike_sas`]).
    replaced_by_us: bool,
    dpd: Option<Dpd>,
    /// The DPD probe went unanswered.
    dead: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ChildState {
    /// Responder: inbound installed, waiting for HASH(3).
    Inbound,
    Installed,
    /// We started its rekey.
    Rekeying,
    /// The peer started a Quick Mode that will replace it: we do not
    /// start our own.
    PeerRekeying,
    /// A successor is installed; deleted at `delete_at` (by us if we rekeyed).
    Superseded,
}

#[derive(Debug, Clone)]
struct ChildSa {
    /// `list-sas` uniqueid: a counter, unique for the daemon's life (as
    /// charon's), unlike SPIs.
    id: u64,
    ike_sa: IkeSaId,
    /// The peer's address.
    remote: IpAddr,
    /// The identity the peer authenticated its IKE SA with (the ID payload
    /// body), which scopes an INITIAL-CONTACT.
    peer_id: Vec<u8>,
    entry: usize,
    reqid: u32,
    spi_in: u32,
    spi_out: u32,
    state: ChildState,
    encryption: EspEncryption,
    integrity: Option<EspIntegrity>,
    encapsulation: Encapsulation,
    local_ts: TrafficSelector,
    remote_ts: TrafficSelector,
    installed: Instant,
    installed_wall: SystemTime,
    rekey_at: Option<Instant>,
    expire_at: Option<Instant>,
    delete_at: Option<Instant>,
    /// The pair of the reqid that was current when this one's Quick Mode
    /// started (its inbound SPI here), if any.
    replaces: Option<u32>,
    /// We initiated its Quick Mode.
    initiated: bool,
    /// When we started rekeying it.
    rekey_started: Option<Instant>,
    /// The volume limits its SAs were installed with.
    limits: SaLimits,
    /// Its outbound SA's (bytes, packets) when we started rekeying it: with
    /// the time, how fast it approaches its hard limit (see [`switch_delay`]).
    rekey_mark: Option<(u64, u64)>,
}

/// A reqid's policies.
#[derive(Debug, Clone)]
struct Binding {
    entry: usize,
    local_ts: TrafficSelector,
    remote_ts: TrafficSelector,
    /// Installed by `start_action = trap` (or a trap dpd/close action): kept
    /// without SAs.
    trap: bool,
    /// The pair we are rekeying (its inbound SPI).
    rekey_from: Option<u32>,
}

/// The SA manager.
pub struct Manager {
    config: Arc<Config>,
    engine: Engine,
    kernel: Kernel,
    keylog: Option<Arc<KeyLog>>,
    entries: Vec<Entry>,
    ike: BTreeMap<IkeSaId, IkeState>,
    children: Vec<ChildSa>,
    bindings: BTreeMap<u32, Binding>,
    next_reqid: u32,
    /// Peer entries (children) to negotiate once an IKE SA of their
    /// connection is up.
    pending: Vec<usize>,
    /// Connections to initiate again at a time (keyingtries, restart).
    retries: Vec<(String, Instant, u32)>,
    rng: rand_core::OsRng,
    /// Policies of pairs installed since the last [`Manager::commit`]: the
    /// database recompiles its classifier on every policy change, so they go
    /// in as one batch per round of datagrams (thousands of tunnels coming up
    /// at once would otherwise pay one compile each).
    pending_policies: Vec<sadb::PolicyConfig>,
    /// Outbound SAs of rekeys we initiated, waiting for the peer to have
    /// installed their inbound side (see [`OUTBOUND_SWITCH_DELAY`]).
    deferred_outbound: Vec<DeferredOutbound>,
    /// The next child SA uniqueid.
    next_child_id: u64,
}

/// The second half of a rekeyed pair's installation, due at `due`.
#[derive(Debug)]
struct DeferredOutbound {
    due: Instant,
    ike_sa: IkeSaId,
    entry: usize,
    inbound: EspSaDescription,
    outbound: EspSaDescription,
}

impl std::fmt::Debug for Manager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Manager")
            .field("ike_sas", &self.ike.len())
            .field("child_sas", &self.children.len())
            .finish_non_exhaustive()
    }
}

fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn secs_until(now: Instant, t: Option<Instant>) -> Option<u64> {
    t.map(|t| t.saturating_duration_since(now).as_secs())
}

/// The address a connection uses locally: its `local_addrs` host, else the
/// first listen address of the same family as the peer (or any).
fn local_address(config: &Config, conn: &Connection, remote: Option<IpAddr>) -> Option<IpAddr> {
    conn.local_addrs.iter().find_map(|a| a.host()).or_else(|| {
        let fam = remote.map(|r| r.is_ipv4());
        config.daemon.listen.iter().copied().find(|l| {
            fam.is_none_or(|v4| l.is_ipv4() == v4) && conn.local_addrs.iter().any(|a| a.contains(*l))
        })
    })
}

fn unspecified_like(a: IpAddr) -> IpAddr {
    if a.is_ipv4() {
        IpAddr::V4(Ipv4Addr::UNSPECIFIED)
    } else {
        IpAddr::V6(Ipv6Addr::UNSPECIFIED)
    }
}

fn alg_names(e: EspEncryption, i: Option<EspIntegrity>) -> (String, u16, Option<String>) {
    let (name, bits) = match e {
        EspEncryption::AesCbc(b) => ("AES_CBC", b),
        EspEncryption::AesGcm16(b) => ("AES_GCM_16", b),
    };
    let integ = i.map(|i| {
        match i {
            EspIntegrity::HmacSha1 => "HMAC_SHA1_96",
            EspIntegrity::HmacSha256 => "HMAC_SHA2_256_128",
            EspIntegrity::HmacSha384 => "HMAC_SHA2_384_192",
            EspIntegrity::HmacSha512 => "HMAC_SHA2_512_256",
        }
        .to_owned()
    });
    (name.to_owned(), bits, integ)
}

fn dh_name(g: DhGroup) -> String {
    format!("{g:?}").to_uppercase().replace("MODP", "MODP_").replace("ECP", "ECP_").replace("CURVE", "CURVE_")
}

fn hash_names(h: HashAlgorithm) -> (&'static str, &'static str) {
    match h {
        HashAlgorithm::Sha1 => ("HMAC_SHA1_96", "PRF_HMAC_SHA1"),
        HashAlgorithm::Sha256 => ("HMAC_SHA2_256_128", "PRF_HMAC_SHA2_256"),
        HashAlgorithm::Sha384 => ("HMAC_SHA2_384_192", "PRF_HMAC_SHA2_384"),
        HashAlgorithm::Sha512 => ("HMAC_SHA2_512_256", "PRF_HMAC_SHA2_512"),
    }
}

fn cipher_bits(c: Cipher) -> u16 {
    match c {
        Cipher::Aes128Cbc => 128,
        Cipher::Aes192Cbc => 192,
        Cipher::Aes256Cbc => 256,
    }
}

impl Manager {
    /// A manager for `config`, writing into `kernel`. Traps of
    /// `start_action = trap` children are installed at once; call
    /// [`Manager::start`] to initiate `start_action = start` ones.
    pub fn new(config: Arc<Config>, kernel: Kernel, keylog: Option<Arc<KeyLog>>) -> Self {
        let mut seed = [0u8; 8];
        rand_core::OsRng.fill_bytes(&mut seed);
        let spis = kernel.spi_allocator(u64::from_le_bytes(seed));
        let limits = config.daemon.half_open;
        let engine_config = EngineConfig {
            max_half_open: limits.total,
            max_half_open_per_peer: limits.per_source,
            half_open_reserved: limits.reserved,
            ..EngineConfig::default()
        };
        let engine = Engine::new(engine_config, Box::new(rand_core::OsRng), Box::new(spis));
        let mut m = Self {
            config: Arc::clone(&config),
            engine,
            kernel,
            keylog,
            entries: Vec::new(),
            ike: BTreeMap::new(),
            children: Vec::new(),
            bindings: BTreeMap::new(),
            next_reqid: DYNAMIC_REQID,
            pending: Vec::new(),
            retries: Vec::new(),
            rng: rand_core::OsRng,
            pending_policies: Vec::new(),
            deferred_outbound: Vec::new(),
            next_child_id: 1,
        };
        m.install_ike_bypass();
        let orphans = !m.kernel.list_sas().is_empty();
        for conn in &config.connections {
            m.add_connection(conn, orphans);
        }
        m
    }

    /// The configuration in force.
    pub fn config(&self) -> &Arc<Config> {
        &self.config
    }

    /// IKE itself must never be protected by a policy (a transport-mode
    /// child between the gateways covers their addresses): Bypass policies
    /// for UDP from and to the IKE and NAT-T ports of every listen address,
    /// tried before any other (as strongSwan's per-socket bypass).
    fn install_ike_bypass(&mut self) {
        let ps = crate::knl::ike_bypass_policies(
            &self.config.daemon.listen,
            [self.config.daemon.port, self.config.daemon.port_nat_t],
        );
        if let Err(e) = self.kernel.add_policies(&ps) {
            tracing::error!(target: "knl", "IKE bypass policies: {e}");
        }
    }

    /// Adds the engine entries of a connection and installs its traps.
    /// `quiet` suppresses INITIAL-CONTACT (SAs of a previous run are still
    /// in the dataplane and carry traffic until the new ones replace them).
    fn add_connection(&mut self, conn: &Connection, quiet: bool) {
        let remote = conn.initiate_address();
        let Some(local) = local_address(&self.config, conn, remote) else {
            tracing::warn!(target: "cfg", "connection `{}`: no local address to use (local_addrs / daemon.listen)", conn.name);
            return;
        };
        let remote_ip = remote.unwrap_or_else(|| unspecified_like(local));
        for child in &conn.children {
            match peer_configs(&self.config, conn, child, local, remote_ip) {
                Ok(peers) => {
                    for (mut p, (lts, rts)) in peers.into_iter().zip(selector_pairs(child, local, remote_ip))
                    {
                        p.initial_contact = !quiet;
                        // `dynamic` of a responder-only entry stays the
                        // unspecified host; the engine substitutes the peer.
                        let entry = Entry {
                            conn: conn.name.clone(),
                            child: child.name.clone(),
                            local_ts: lts,
                            remote_ts: rts,
                            retired: false,
                        };
                        let idx = self.engine.add_peer(p);
                        self.entries.resize(idx, entry.clone());
                        self.entries.push(entry);
                        if child.start_action == StartAction::Trap {
                            self.install_trap(idx);
                        }
                    }
                }
                Err(e) => tracing::error!(target: "cfg", "{e}"),
            }
        }
    }

    /// Initiates every `start_action = start` child.
    pub fn start(&mut self, now: Instant) {
        let conns: Vec<(Connection, Child)> = self
            .config
            .connections
            .iter()
            .flat_map(|c| c.children.iter().map(move |ch| (c.clone(), ch.clone())))
            .filter(|(_, ch)| ch.start_action == StartAction::Start)
            .collect();
        for (c, ch) in conns {
            if let Err(e) = self.initiate(now, &c.name, Some(&ch.name)) {
                tracing::warn!(target: "ike", "start of `{}`: {}", ch.name, e.message);
            }
        }
    }

    fn entries_of(&self, conn: &str, child: Option<&str>) -> Vec<usize> {
        self.entries
            .iter()
            .enumerate()
            .filter(|(_, e)| !e.retired && e.conn == conn && child.is_none_or(|c| e.child == c))
            .map(|(i, _)| i)
            .collect()
    }

    /// The newest usable IKE SA of `conn` (with the peer at `remote`, for
    /// connections that accept several peers).
    fn established_ike_sa(&self, conn: &str, remote: Option<IpAddr>) -> Option<IkeSaId> {
        self.ike
            .iter()
            .filter(|(_, s)| s.conn == conn && s.established.is_some() && !s.replaced && !s.dead)
            .filter(|(_, s)| remote.is_none() || s.remote == remote)
            .max_by_key(|(_, s)| s.established.map(|e| e.0))
            .map(|(id, _)| *id)
    }

    fn connecting(&self, conn: &str) -> bool {
        self.ike.values().any(|s| s.conn == conn && s.established.is_none())
    }

    /// Starts the children of `conn` (or only `child`): Quick Mode on an
    /// established IKE SA, else a new phase 1 first.
    pub fn initiate(&mut self, now: Instant, conn: &str, child: Option<&str>) -> Result<String, CtlError> {
        let entries = self.entries_of(conn, child);
        let Some(&first) = entries.first() else {
            return Err(CtlError::new(ErrorCode::NotFound, format!("`{conn}` has no child to initiate")));
        };
        if let Some(ike_sa) = self.established_ike_sa(conn, None) {
            for &e in &entries {
                self.engine.handle_command(now, Command::CreateChildFor { ike_sa, peer: e });
            }
            return Ok(format!("Quick Mode for {} selector pair(s) of `{conn}` started", entries.len()));
        }
        if self.config.connection(conn).is_none_or(|c| c.initiate_address().is_none()) {
            return Err(CtlError::new(
                ErrorCode::Unavailable,
                format!("`{conn}` has no single remote address to initiate to (remote_addrs)"),
            ));
        }
        for &e in entries.iter().skip(1) {
            if !self.pending.contains(&e) {
                self.pending.push(e);
            }
        }
        if !self.connecting(conn) {
            self.engine.handle_command(now, Command::Initiate { peer: first });
            // The new IKE SA is the newest in the engine.
            if let Some(s) = self.engine.newest_ike_sa().filter(|s| s.peer == first) {
                self.ike.insert(
                    s.id,
                    IkeState {
                        conn: conn.to_owned(),
                        remote: Some(s.remote.ip()),
                        peer_id: Vec::new(),
                        established: None,
                        reauth_at: None,
                        replaced: false,
                        replaced_at: None,
                        replaced_by_us: false,
                        dpd: None,
                        dead: false,
                    },
                );
            }
        } else if !self.pending.contains(&first) {
            self.pending.push(first);
        }
        Ok(format!("initiating `{conn}`"))
    }

    /// Deletes the SAs of `conn` (only `child`'s when given), telling the peer.
    pub fn terminate(&mut self, now: Instant, conn: &str, child: Option<&str>) -> Result<String, CtlError> {
        match child {
            Some(ch) => {
                let doomed: Vec<(IkeSaId, u32)> = self
                    .children
                    .iter()
                    .filter(|c| self.entries.get(c.entry).is_some_and(|e| e.conn == conn && e.child == ch))
                    .map(|c| (c.ike_sa, c.spi_in))
                    .collect();
                for &(ike_sa, spi) in &doomed {
                    self.delete_child(now, ike_sa, spi);
                }
                Ok(format!("deleting {} child SA pair(s) of `{ch}`", doomed.len()))
            }
            None => {
                let ids: Vec<IkeSaId> =
                    self.ike.iter().filter(|(_, s)| s.conn == conn).map(|(id, _)| *id).collect();
                for id in &ids {
                    self.engine.handle_command(now, Command::Delete(*id));
                }
                // Pairs that outlived their ISAKMP SA go too.
                let orphans: Vec<(IkeSaId, u32)> = self
                    .children
                    .iter()
                    .filter(|c| !self.ike.contains_key(&c.ike_sa))
                    .filter(|c| self.entries.get(c.entry).is_some_and(|e| e.conn == conn))
                    .map(|c| (c.ike_sa, c.spi_in))
                    .collect();
                for (ike_sa, spi) in orphans {
                    self.delete_child(now, ike_sa, spi);
                }
                self.pending.retain(|p| self.entries.get(*p).is_none_or(|e| e.conn != conn));
                self.retries.retain(|r| r.0 != conn);
                Ok(format!("deleting {} IKE SA(s) of `{conn}`", ids.len()))
            }
        }
    }

    /// A datagram arrived on `local` from `remote`.
    pub fn handle_datagram(&mut self, now: Instant, local: SocketAddr, remote: SocketAddr, data: &[u8]) {
        // A wildcard socket does not say which address the datagram was for:
        // the connection's own local address stands in (NAT-D hashes it).
        let local = if local.ip().is_unspecified() {
            let peers = &self.engine.config().peers;
            peers
                .iter()
                .find(|p| p.remote_address == remote.ip())
                .or_else(|| peers.iter().find(|p| p.remote_address.is_unspecified()))
                .map(|p| p.local_address)
                .filter(|a| !a.is_unspecified() && a.is_ipv4() == remote.is_ipv4())
                .map_or(local, |a| SocketAddr::new(a, local.port()))
        } else {
            local
        };
        self.engine.handle_datagram(now, local, remote, data);
        self.process_events(now);
    }

    /// The next datagram to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.engine.poll_transmit()
    }

    /// When [`Manager::tick`] must run next (it also runs on a fixed beat).
    pub fn poll_timeout(&self) -> Option<Instant> {
        let deferred = self.deferred_outbound.iter().map(|d| d.due).min();
        match (self.engine.poll_timeout(), deferred) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Timers: the engine's, then rekeys, expiries, DPD, retries and the
    /// dataplane's events.
    pub fn tick(&mut self, now: Instant) {
        if self.engine.poll_timeout().is_some_and(|t| t <= now) {
            self.engine.handle_timeout(now);
            self.process_events(now);
        }
        self.dataplane_events(now);
        self.switch_outbound(now);
        self.child_timers(now);
        self.ike_timers(now);
        self.process_events(now);
        self.delete_replaced_ike_sas(now);
        let due: Vec<(String, u32)> =
            self.retries.iter().filter(|r| r.1 <= now).map(|r| (r.0.clone(), r.2)).collect();
        self.retries.retain(|r| r.1 > now);
        for (conn, _) in due {
            if self.established_ike_sa(&conn, None).is_none() && !self.connecting(&conn) {
                let _ = self.initiate(now, &conn, None);
            }
        }
        self.process_events(now);
    }

    /// The dataplane's events alone (acquires, soft and hard limits), for
    /// a beat shorter than [`Manager::tick`]'s: a soft volume limit close to
    /// its hard one leaves little time, and the rekey starts as soon as its
    /// event is read.
    pub fn poll_dataplane(&mut self, now: Instant) {
        self.dataplane_events(now);
        self.process_events(now);
    }

    /// Installs the deferred outbound SAs that are due.
    fn switch_outbound(&mut self, now: Instant) {
        self.install_deferred(now, |d| d.due <= now);
    }

    /// Installs the deferred outbound SAs that `take` selects, for pairs
    /// still waiting for theirs (a pair deleted meanwhile is not brought back).
    fn install_deferred(&mut self, now: Instant, take: impl Fn(&DeferredOutbound) -> bool) {
        if !self.deferred_outbound.iter().any(&take) {
            return;
        }
        let (due, later): (Vec<_>, Vec<_>) =
            std::mem::take(&mut self.deferred_outbound).into_iter().partition(take);
        self.deferred_outbound = later;
        for d in due {
            let waiting =
                self.children.iter().any(|c| c.spi_in == d.inbound.spi && c.state == ChildState::Inbound);
            if waiting {
                self.on_install(now, d.ike_sa, d.entry, &d.inbound, Some(&d.outbound));
            }
        }
    }

    fn dataplane_events(&mut self, now: Instant) {
        for ev in self.kernel.drain_events() {
            match sadb::EventKind::from_code(ev.kind) {
                Some(sadb::EventKind::Acquire) => {
                    let Some(b) = self.bindings.get(&ev.reqid) else {
                        continue;
                    };
                    let Some(e) = self.entries.get(b.entry).cloned() else {
                        continue;
                    };
                    if self.children.iter().any(|c| c.reqid == ev.reqid && c.state != ChildState::Superseded)
                    {
                        continue;
                    }
                    if self.connecting(&e.conn) || self.pending.contains(&b.entry) {
                        continue;
                    }
                    tracing::info!(target: "knl", "acquire for reqid {} (`{}`): initiating", ev.reqid, e.child);
                    let entry = b.entry;
                    if let Some(ike_sa) = self.established_ike_sa(&e.conn, None) {
                        self.engine.handle_command(now, Command::CreateChildFor { ike_sa, peer: entry });
                    } else if let Err(err) = self.initiate(now, &e.conn, Some(&e.child)) {
                        tracing::warn!(target: "knl", "acquire for `{}`: {}", e.child, err.message);
                    }
                }
                Some(sadb::EventKind::SoftExpire | sadb::EventKind::SeqNearOverflow) => {
                    // Only the sender's count starts a rekey: the peer's inbound
                    // count of the same bytes would fire at the same moment and
                    // make both ends rekey at once (duplicates to resolve).
                    if let Some(i) =
                        self.children.iter().position(|c| c.spi_out == ev.spi && c.reqid == ev.reqid)
                    {
                        tracing::info!(target: "knl", "soft limit of SPI {:08x} reached: rekeying", ev.spi);
                        self.rekey(now, i);
                    }
                }
                Some(sadb::EventKind::HardExpire) => {
                    // By reqid too: another peer's outbound SA may have the same SPI.
                    if let Some(c) = self
                        .children
                        .iter()
                        .find(|c| c.reqid == ev.reqid && (c.spi_out == ev.spi || c.spi_in == ev.spi))
                    {
                        tracing::info!(target: "knl", "hard limit of SPI {:08x} reached: deleting", ev.spi);
                        let (ike_sa, inbound_spi) = (c.ike_sa, c.spi_in);
                        self.delete_child(now, ike_sa, inbound_spi);
                    }
                }
                None => {}
            }
        }
    }

    fn child_config(&self, entry: usize) -> Option<&Child> {
        let e = self.entries.get(entry)?;
        self.config.child(&e.child).map(|(_, ch)| ch)
    }

    fn conn_config(&self, conn: &str) -> Option<&Connection> {
        self.config.connection(conn)
    }

    /// Starts a rekey of child `i` (Quick Mode on the newest IKE SA of its
    /// connection, or a new phase 1).
    fn rekey(&mut self, now: Instant, i: usize) {
        let Some(c) = self.children.get(i) else {
            return;
        };
        if c.state != ChildState::Installed {
            return;
        }
        let (entry, remote, reqid, spi_in, spi_out) = (c.entry, c.remote, c.reqid, c.spi_in, c.spi_out);
        if let Some(b) = self.bindings.get_mut(&reqid) {
            b.rekey_from = Some(spi_in);
        }
        let Some(conn) = self.entries.get(entry).map(|e| e.conn.clone()) else {
            return;
        };
        let mark = self.kernel.sa_stats(spi_out, false, Some(reqid)).map(|s| (s.bytes, s.packets));
        if let Some(c) = self.children.get_mut(i) {
            c.state = ChildState::Rekeying;
            c.rekey_at = None;
            c.rekey_started = Some(now);
            c.rekey_mark = mark;
        }
        match self.established_ike_sa(&conn, Some(remote)) {
            Some(ike_sa) => self.engine.handle_command(now, Command::CreateChildFor { ike_sa, peer: entry }),
            None => {
                if !self.pending.contains(&entry) {
                    self.pending.push(entry);
                }
                if !self.connecting(&conn) {
                    let _ = self.initiate(now, &conn, None);
                }
            }
        }
    }

    fn child_timers(&mut self, now: Instant) {
        let mut rekeys = Vec::new();
        let mut deletes = Vec::new();
        for (i, c) in self.children.iter().enumerate() {
            if c.delete_at.is_some_and(|t| t <= now) || c.expire_at.is_some_and(|t| t <= now) {
                deletes.push((c.ike_sa, c.spi_in));
            } else if c.rekey_at.is_some_and(|t| t <= now) && c.state == ChildState::Installed {
                rekeys.push(i);
            }
        }
        for c in &mut self.children {
            let stuck = matches!(c.state, ChildState::Rekeying | ChildState::PeerRekeying);
            if stuck && c.rekey_started.is_some_and(|t| now > t + REKEY_RETRY) {
                // The Quick Mode failed or got no answer: try again.
                c.state = ChildState::Installed;
                c.rekey_at = Some(now);
            }
        }
        for i in rekeys {
            tracing::info!(
                target: "ike",
                "rekeying child SA {:08x}/{:08x}",
                self.children.get(i).map_or(0, |c| c.spi_in),
                self.children.get(i).map_or(0, |c| c.spi_out)
            );
            self.rekey(now, i);
        }
        for (ike_sa, inbound_spi) in deletes {
            if let Some(c) = self.children.iter_mut().find(|c| c.spi_in == inbound_spi) {
                c.delete_at = None;
                c.expire_at = None;
            }
            self.delete_child(now, ike_sa, inbound_spi);
        }
    }

    fn ike_timers(&mut self, now: Instant) {
        let mut reauth = Vec::new();
        let mut dpd = Vec::new();
        let mut dead = Vec::new();
        // Inbound packets per IKE SA, in one pass over the children (only
        // when some IKE SA runs DPD).
        let inbound = if self.ike.values().any(|s| s.dpd.is_some()) {
            self.inbound_packets()
        } else {
            Default::default()
        };
        let ids: Vec<IkeSaId> = self.ike.keys().copied().collect();
        for id in ids {
            let Some(s) = self.ike.get(&id).cloned() else {
                continue;
            };
            if s.established.is_none() || s.replaced || s.dead {
                continue;
            }
            if s.reauth_at.is_some_and(|t| t <= now) {
                reauth.push(id);
            }
            let Some(mut d) = s.dpd else {
                continue;
            };
            // RFC 3706 §5.5: only an idle peer is probed. The children's
            // inbound counters say whether it is idle (as strongSwan reads
            // the kernel's SA use times), looked at on every beat.
            let packets = inbound.get(&id).copied().unwrap_or(0);
            if packets != d.inbound_packets {
                d.inbound_packets = packets;
                d.last_activity = now;
                d.probe_deadline = None;
            }
            let (delay, timeout) = self
                .conn_config(&s.conn)
                .map_or((Duration::ZERO, Duration::ZERO), |c| (c.dpd_delay, c.dpd_timeout));
            match d.probe_deadline {
                Some(deadline) if deadline <= now => dead.push(id),
                Some(_) => {}
                None if now.saturating_duration_since(d.last_activity) >= delay => {
                    d.probe_deadline = Some(now + timeout);
                    dpd.push(id);
                }
                None => {}
            }
            if let Some(st) = self.ike.get_mut(&id) {
                st.dpd = Some(d);
            }
        }
        for id in dpd {
            tracing::debug!(target: "ike", "IKE SA {} idle: sending R-U-THERE", id.0);
            self.engine.handle_command(now, Command::DeadPeerDetection(id));
        }
        for id in dead {
            tracing::warn!(target: "ike", "IKE SA {}: no DPD answer within dpd_timeout, peer is dead", id.0);
            if let Some(s) = self.ike.get_mut(&id) {
                s.dead = true;
            }
            self.engine.handle_command(now, Command::Delete(id));
        }
        for id in reauth {
            let Some(conn) = self.ike.get(&id).map(|s| s.conn.clone()) else {
                continue;
            };
            tracing::info!(target: "ike", "re-establishing ISAKMP SA of `{conn}` before it expires");
            if let Some(s) = self.ike.get_mut(&id) {
                s.reauth_at = None;
            }
            // Every child with SAs under the old IKE SA moves to the new one:
            // a rekey of each (the new pair replaces the old, which is deleted
            // after the overlap, then the old IKE SA).
            let moving: Vec<(usize, u32, u32)> = self
                .children
                .iter()
                .filter(|c| c.ike_sa == id && c.state == ChildState::Installed)
                .map(|c| (c.entry, c.reqid, c.spi_in))
                .collect();
            for (entry, reqid, spi_in) in moving {
                if let Some(b) = self.bindings.get_mut(&reqid) {
                    b.rekey_from = Some(spi_in);
                }
                if let Some(c) = self.children.iter_mut().find(|c| c.spi_in == spi_in) {
                    c.state = ChildState::Rekeying;
                    c.rekey_at = None;
                    c.rekey_started = Some(now);
                    // No mark of an earlier attempt: the switch delay
                    // then uses the rate since the install.
                    c.rekey_mark = None;
                }
                if !self.pending.contains(&entry) {
                    self.pending.push(entry);
                }
            }
            let first =
                self.pending.iter().position(|p| self.entries.get(*p).is_some_and(|e| e.conn == conn));
            if let Some(pos) = first {
                let p = self.pending.remove(pos);
                self.engine.handle_command(now, Command::Initiate { peer: p });
                if let Some(s) = self.engine.newest_ike_sa().filter(|s| s.peer == p) {
                    self.ike.insert(
                        s.id,
                        IkeState {
                            conn: conn.clone(),
                            remote: Some(s.remote.ip()),
                            peer_id: Vec::new(),
                            established: None,
                            reauth_at: None,
                            replaced: false,
                            replaced_at: None,
                            replaced_by_us: false,
                            dpd: None,
                            dead: false,
                        },
                    );
                }
            }
        }
    }

    /// Inbound packets of each IKE SA's children, from the dataplane.
    fn inbound_packets(&self) -> std::collections::HashMap<IkeSaId, u64> {
        let mut m = std::collections::HashMap::new();
        for c in &self.children {
            if let Some(s) = self.kernel.sa_stats(c.spi_in, true, None) {
                *m.entry(c.ike_sa).or_insert(0) += s.packets;
            }
        }
        m
    }

    fn jitter(&mut self, max: Duration) -> Duration {
        let ms = u64::try_from(max.as_millis()).unwrap_or(u64::MAX);
        if ms == 0 {
            return Duration::ZERO;
        }
        Duration::from_millis(self.rng.next_u64() % ms)
    }

    /// Handles everything the engine produced.
    pub fn process_events(&mut self, now: Instant) {
        while let Some(ev) = self.engine.poll_event() {
            match ev {
                Event::IkeSaEstablished { ike_sa, peer } => self.on_ike_established(now, ike_sa, peer),
                Event::InstallInbound { ike_sa, peer, inbound } => {
                    self.on_install(now, ike_sa, peer, &inbound, None);
                }
                Event::InstallSa { ike_sa, peer, inbound, outbound } => {
                    self.on_install(now, ike_sa, peer, &inbound, Some(&outbound));
                }
                Event::DeleteSa { spi, inbound, pair } => self.remove_child_spi(now, spi, inbound, pair),
                Event::IkeSaDeleted(id) => self.on_ike_gone(now, id, false),
                Event::Failed { ike_sa, error } => {
                    tracing::warn!(target: "ike", "IKE SA {}: {:?}", ike_sa.0, error);
                    let gone = self.engine.ike_sa(ike_sa).is_none();
                    if gone {
                        self.on_ike_gone(now, ike_sa, true);
                    }
                }
                Event::InitialContact(id) => self.on_initial_contact(now, id),
                Event::PeerMoved { ike_sa, local, remote, outbound_spis } => {
                    self.on_peer_moved(ike_sa, local, remote, &outbound_spis);
                }
                Event::DeadPeerDetectionAck { ike_sa, .. } => {
                    if let Some(s) = self.ike.get_mut(&ike_sa) {
                        if let Some(d) = s.dpd.as_mut() {
                            d.probe_deadline = None;
                            d.last_activity = now;
                        }
                    }
                }
            }
        }
    }

    /// RFC 3947 §5: the peer's NAT mapping changed (an authenticated message
    /// of the IKE SA came from a new port or address). The outbound ESP SAs
    /// the IKE SA holds are pointed at the new endpoint in place, and so are
    /// those still waiting to be installed.
    fn on_peer_moved(&mut self, id: IkeSaId, local: SocketAddr, remote: SocketAddr, outbound_spis: &[u32]) {
        tracing::info!(target: "ike", "IKE SA {}: peer moved to {remote}, ESP SAs follow", id.0);
        for &spi in outbound_spis {
            // The SPI is the peer's choice, so the SA is named with the reqid of its child.
            let Some(reqid) =
                self.children.iter().find(|c| c.ike_sa == id && c.spi_out == spi).map(|c| c.reqid)
            else {
                continue;
            };
            match self.kernel.move_outbound_sa(spi, reqid, local, remote) {
                Ok(true) => tracing::info!(target: "knl", "outbound SA {spi:08x} now sends to {remote}"),
                Ok(false) => {}
                Err(e) => tracing::error!(target: "knl", "moving outbound SA {spi:08x} to {remote}: {e}"),
            }
        }
        for d in self.deferred_outbound.iter_mut().filter(|d| d.ike_sa == id) {
            d.outbound.source = local;
            d.outbound.destination = remote;
        }
    }

    fn on_ike_established(&mut self, now: Instant, id: IkeSaId, peer: usize) {
        let Some(entry) = self.entries.get(peer).cloned() else {
            return;
        };
        let conn = self.conn_config(&entry.conn).cloned();
        let summary = self.engine.ike_sa(id);
        tracing::info!(
            target: "ike",
            "IKE SA {} of `{}` established with {}",
            id.0,
            entry.conn,
            summary.as_ref().map_or_else(String::new, |s| s.remote.to_string())
        );
        if let (Some(k), Some((cky_i, key))) = (&self.keylog, self.engine.keylog_ike_sa(id)) {
            if let Err(e) = k.log_ike_sa(&cky_i, &key) {
                tracing::warn!(target: "dmn", "key log: {e}");
            }
        }
        let initiator = summary.as_ref().is_some_and(|s| s.initiator);
        let reauth_at = conn.as_ref().and_then(|c| {
            let base = match (c.rekey_time.is_zero(), c.reauth_time.is_zero()) {
                (true, true) => return None,
                (false, true) => c.rekey_time,
                (true, false) => c.reauth_time,
                (false, false) => c.rekey_time.min(c.reauth_time),
            };
            // The responder waits longer, so one end re-establishes.
            let base =
                if initiator || c.initiate_address().is_none() { base } else { base + c.over_time / 2 };
            Some(base)
        });
        let reauth_at = match reauth_at {
            Some(b) => {
                // The jitter never takes more than half the time (strongSwan
                // scales a rand_time that does not fit the window).
                let r = conn.as_ref().map_or(Duration::ZERO, |c| c.rand_time).min(b / 2);
                let j = self.jitter(r);
                Some(now + b.saturating_sub(j))
            }
            None => None,
        };
        let dpd = conn.as_ref().filter(|c| !c.dpd_delay.is_zero()).map(|_| Dpd {
            last_activity: now,
            inbound_packets: 0,
            probe_deadline: None,
        });
        // Older IKE SAs of this connection with this peer (address and
        // identity: another client behind the same NAT is another peer) are
        // replaced.
        let remote = summary.as_ref().map(|s| s.remote.ip());
        let peer_id = summary.as_ref().map(|s| s.peer_id.clone()).unwrap_or_default();
        for (oid, s) in self.ike.iter_mut() {
            if *oid != id
                && s.conn == entry.conn
                && s.established.is_some()
                && s.remote == remote
                && s.peer_id == peer_id
                && !s.replaced
            {
                s.replaced = true;
                s.replaced_at = Some(now);
                s.replaced_by_us = initiator;
            }
        }
        self.ike.insert(
            id,
            IkeState {
                conn: entry.conn.clone(),
                remote,
                peer_id,
                established: Some((now, SystemTime::now())),
                reauth_at,
                replaced: false,
                replaced_at: None,
                replaced_by_us: false,
                dpd,
                dead: false,
            },
        );
        self.retries.retain(|r| r.0 != entry.conn);
        self.adopt_children(now, id);
        // Children waiting for this connection.
        let (mine, rest): (Vec<usize>, Vec<usize>) =
            self.pending.drain(..).partition(|p| self.entries.get(*p).is_some_and(|e| e.conn == entry.conn));
        self.pending = rest;
        for p in mine {
            if p != peer || !initiator {
                self.engine.handle_command(now, Command::CreateChildFor { ike_sa: id, peer: p });
            }
        }
        self.delete_replaced_ike_sas(now);
    }

    /// An IKE SA replaced by a newer one is deleted, alone (its children
    /// were adopted by the newer one), once it has no children left and
    /// [`REKEY_OVERLAP`] has passed, by us only when the newer one is ours:
    /// the peer, its responder, then adopted the children too (strongSwan
    /// and libreswan do). An IKE SA the peer replaced is left to the peer
    /// (strongSwan deletes it `over_time` later) or to its lifetime: a peer
    /// moves only the children of the ISAKMP SA it re-keys, and strongSwan
    /// deletes the children of an ISAKMP SA it receives a Delete for, so a
    /// Delete from us could take pairs with it when both ends re-establish
    /// at once.
    fn delete_replaced_ike_sas(&mut self, now: Instant) {
        let replaced: Vec<IkeSaId> = self
            .ike
            .iter()
            .filter(|(_, s)| s.replaced && s.established.is_some())
            .filter(|(_, s)| s.replaced_at.is_none_or(|t| now >= t + REKEY_OVERLAP))
            .map(|(id, _)| *id)
            .collect();
        for id in replaced {
            if !self.ike.get(&id).is_some_and(|s| s.replaced_by_us) {
                continue;
            }
            let waiting = self.children.iter().any(|c| c.ike_sa == id);
            let conn = self.ike.get(&id).map(|s| s.conn.clone()).unwrap_or_default();
            let pending = self.pending.iter().any(|p| self.entries.get(*p).is_some_and(|e| e.conn == conn));
            if !waiting && !pending {
                tracing::info!(target: "ike", "deleting replaced IKE SA {}", id.0);
                self.engine.handle_command(now, Command::DeleteIsakmpSa(id));
            }
        }
    }

    /// The child pairs of `id`'s connection with its peer whose IKE SA is
    /// gone or replaced move to `id`, as strongSwan and libreswan adopt the
    /// children of a re-established ISAKMP SA: their rekeys, DPD and Deletes
    /// continue under it. Pairs still half-installed stay with the Quick Mode
    /// that creates them.
    fn adopt_children(&mut self, now: Instant, id: IkeSaId) {
        let Some(s) = self.ike.get(&id) else {
            return;
        };
        let (conn, remote, peer_id) = (s.conn.clone(), s.remote, s.peer_id.clone());
        let adopted: Vec<u32> = self
            .children
            .iter()
            .filter(|c| c.ike_sa != id && c.spi_out != 0 && Some(c.remote) == remote && c.peer_id == peer_id)
            .filter(|c| self.entries.get(c.entry).is_some_and(|e| e.conn == conn))
            .filter(|c| self.ike.get(&c.ike_sa).is_none_or(|o| o.replaced))
            .map(|c| c.spi_in)
            .collect();
        if adopted.is_empty() {
            return;
        }
        for &spi in &adopted {
            self.engine.handle_command(now, Command::AdoptChild { ike_sa: id, inbound_spi: spi });
            if let Some(c) = self.children.iter_mut().find(|c| c.spi_in == spi) {
                c.ike_sa = id;
            }
        }
        tracing::info!(target: "ike", "IKE SA {} of `{conn}` adopts {} child SA pair(s)", id.0, adopted.len());
    }

    /// Deletes a child pair: with a Delete over the IKE SA holding it, or
    /// locally when no ISAKMP SA holds it any more.
    fn delete_child(&mut self, now: Instant, ike_sa: IkeSaId, inbound_spi: u32) {
        match self.engine.child_holder(inbound_spi) {
            Some(holder) => {
                let ike_sa = holder.unwrap_or(ike_sa);
                self.engine.handle_command(now, Command::DeleteChild { ike_sa, inbound_spi });
            }
            None => self.remove_child_spi(now, inbound_spi, true, inbound_spi),
        }
    }

    fn reqid_for(&mut self, entry: usize, local: &TrafficSelector, remote: &TrafficSelector) -> u32 {
        let (l, r) = (local.normalized(), remote.normalized());
        if let Some((id, _)) = self
            .bindings
            .iter()
            .find(|(_, b)| b.entry == entry && b.local_ts.normalized() == l && b.remote_ts.normalized() == r)
        {
            return *id;
        }
        let configured = self
            .entries
            .get(entry)
            .is_some_and(|e| e.local_ts.normalized() == l && e.remote_ts.normalized() == r);
        let id = match u32::try_from(entry + 1) {
            Ok(id) if configured && id < DYNAMIC_REQID => id,
            _ => {
                self.next_reqid = self.next_reqid.wrapping_add(1).max(DYNAMIC_REQID);
                self.next_reqid
            }
        };
        self.bindings.insert(id, Binding { entry, local_ts: l, remote_ts: r, trap: false, rekey_from: None });
        id
    }

    fn install_trap(&mut self, entry: usize) {
        let Some(e) = self.entries.get(entry).cloned() else {
            return;
        };
        let unresolved =
            |ts: &TrafficSelector| matches!(ts.address, TsAddress::Host(a) if a.is_unspecified());
        if unresolved(&e.local_ts) || unresolved(&e.remote_ts) {
            tracing::warn!(target: "cfg", "child `{}`: a trap needs fixed selectors", e.child);
            return;
        }
        let reqid = self.reqid_for(entry, &e.local_ts, &e.remote_ts);
        if let Some(b) = self.bindings.get_mut(&reqid) {
            b.trap = true;
        }
        match policies(reqid, &e.local_ts, &e.remote_ts).and_then(|ps| self.kernel.add_policies(&ps)) {
            Ok(()) => tracing::info!(
                target: "knl",
                "trap installed for `{}`: {} === {} (reqid {reqid})",
                e.child,
                DisplayTs(e.local_ts),
                DisplayTs(e.remote_ts)
            ),
            Err(err) => tracing::error!(target: "knl", "trap for `{}`: {err}", e.child),
        }
    }

    /// The volume limits of a pair of `entry` whose negotiated kilobyte
    /// lifetime is `kilobytes` (0: none): see [`soft_limit`].
    fn limits(&mut self, entry: usize, kilobytes: u32) -> SaLimits {
        let Some(ch) = self.child_config(entry).cloned() else {
            return SaLimits::default();
        };
        // The negotiated kilobytes are a hard limit too (RFC 2407 §4.5):
        // the lower one is in force.
        let negotiated = u64::from(kilobytes).saturating_mul(1024);
        let hard_bytes = match (ch.life_bytes, negotiated) {
            (0, n) | (n, 0) => n,
            (a, b) => a.min(b),
        };
        let (db, dp) = (self.rng.next_u64(), self.rng.next_u64());
        SaLimits {
            replay_window: ch.replay_window,
            soft_bytes: soft_limit(ch.rekey_bytes, ch.rand_bytes, ch.life_bytes, hard_bytes, db),
            hard_bytes,
            soft_packets: soft_limit(ch.rekey_packets, ch.rand_packets, ch.life_packets, ch.life_packets, dp),
            hard_packets: ch.life_packets,
        }
    }

    /// Appends one ESP SA's keys to the key log, when there is one.
    fn log_keys(&self, sa: &EspSaDescription) {
        if let Some(k) = &self.keylog {
            if let Err(e) = k.log_esp_sa(&EspKeys::from_description(sa)) {
                tracing::warn!(target: "dmn", "key log: {e}");
            }
        }
    }

    /// How long a rekey we initiated waits before its outbound SA takes the
    /// traffic: [`OUTBOUND_SWITCH_DELAY`], or less when the pair it replaces
    /// (inbound SPI `old`) would reach its hard volume limit before that.
    fn outbound_switch_delay(&self, now: Instant, old: u32) -> Duration {
        let Some(c) = self.children.iter().find(|c| c.spi_in == old) else {
            return OUTBOUND_SWITCH_DELAY;
        };
        let Some(stats) = self.kernel.sa_stats(c.spi_out, false, Some(c.reqid)) else {
            return OUTBOUND_SWITCH_DELAY;
        };
        // The rate since the rekey started and the one since the install:
        // the faster says how soon the hard limit comes (a sender that
        // paused during the Quick Mode does not make it look far away).
        let windows = [c.rekey_started.zip(c.rekey_mark), Some((c.installed, (0, 0)))];
        windows
            .into_iter()
            .flatten()
            .map(|(since, mark)| {
                let volume = |used: u64, total: u64, hard: u64| Volume {
                    used: total.saturating_sub(used),
                    left: (hard != 0).then(|| hard.saturating_sub(total)),
                };
                switch_delay(
                    OUTBOUND_SWITCH_DELAY,
                    now.saturating_duration_since(since),
                    [
                        volume(mark.0, stats.bytes, c.limits.hard_bytes),
                        volume(mark.1, stats.packets, c.limits.hard_packets),
                    ],
                )
            })
            .fold(OUTBOUND_SWITCH_DELAY, Duration::min)
    }

    fn on_install(
        &mut self,
        now: Instant,
        ike_sa: IkeSaId,
        entry: usize,
        inbound: &EspSaDescription,
        outbound: Option<&EspSaDescription>,
    ) {
        // Selectors as negotiated: ours is the inbound SA's destination.
        let (local_ts, remote_ts) = (inbound.destination_ts, inbound.source_ts);
        let reqid = self.reqid_for(entry, &local_ts, &remote_ts);
        let limits = self.limits(entry, inbound.lifetime.kilobytes);
        let existing = self.children.iter().position(|c| c.spi_in == inbound.spi);
        // A responder saw InstallInbound first; a pair without a record is ours.
        let initiated = existing.is_none() && outbound.is_some();
        let replaces = if initiated {
            self.bindings.get_mut(&reqid).and_then(|b| b.rekey_from.take())
        } else {
            self.current_pair(reqid)
        };
        if existing.is_none() || outbound.is_none() {
            if let Err(e) = self.kernel.add_sa(inbound, true, reqid, &limits) {
                tracing::error!(target: "knl", "installing inbound SA {:08x}: {e}", inbound.spi);
                if outbound.is_none() || existing.is_none() {
                    // Our reply (HASH(2), or as initiator HASH(3)) is still
                    // queued: the Quick Mode ends without it, so the peer
                    // never installs a pair we do not have.
                    self.engine
                        .handle_command(now, Command::AbortQuickMode { ike_sa, inbound_spi: inbound.spi });
                }
                return;
            }
        }
        if existing.is_none() && !initiated {
            // The peer's Quick Mode replaces the current pair: no rekey of
            // ours for it any more (that would be a second replacement).
            if let Some(cur) = replaces {
                if let Some(c) = self.children.iter_mut().find(|c| c.spi_in == cur) {
                    if c.state == ChildState::Installed {
                        c.state = ChildState::PeerRekeying;
                        c.rekey_at = None;
                        c.rekey_started = Some(now);
                    }
                }
            }
        }
        if existing.is_none() {
            // The inbound SA's keys go to the key log as it goes in: as a responder
            // that is at HASH(2), and a peer that never sends HASH(3) still leaves
            // the keys it was answered with (its outbound) to compare.
            self.log_keys(inbound);
            let id = self.next_child_id;
            self.next_child_id += 1;
            let peer_id = self.engine.ike_sa(ike_sa).map(|s| s.peer_id).unwrap_or_default();
            self.children.push(ChildSa {
                id,
                ike_sa,
                remote: inbound.source.ip(),
                peer_id,
                entry,
                reqid,
                spi_in: inbound.spi,
                spi_out: 0,
                state: ChildState::Inbound,
                encryption: inbound.encryption,
                integrity: inbound.integrity,
                encapsulation: inbound.encapsulation,
                local_ts,
                remote_ts,
                installed: now,
                installed_wall: SystemTime::now(),
                rekey_at: None,
                expire_at: None,
                delete_at: None,
                replaces,
                initiated,
                rekey_started: None,
                limits,
                rekey_mark: None,
            });
        }
        let Some(outbound) = outbound else {
            tracing::debug!(target: "knl", "inbound SA {:08x} installed (reqid {reqid})", inbound.spi);
            return;
        };
        if let (true, Some(old)) = (initiated, replaces) {
            // Our HASH(3) is about to leave: the old pair keeps the traffic
            // until the peer has had time to install its inbound SA (or
            // until shortly before the old pair's hard volume limit).
            let delay = self.outbound_switch_delay(now, old);
            tracing::debug!(
                target: "knl",
                "inbound SA {:08x} installed (reqid {reqid}); outbound {:08x} in {} ms",
                inbound.spi,
                outbound.spi,
                delay.as_millis()
            );
            self.deferred_outbound.push(DeferredOutbound {
                due: now + delay,
                ike_sa,
                entry,
                inbound: inbound.clone(),
                outbound: outbound.clone(),
            });
            return;
        }
        match policies(reqid, &local_ts, &remote_ts) {
            Ok(ps) => {
                // Bound to the newest outbound SA of the reqid when they go in
                // (`commit`), or moved to it if they are there already.
                self.pending_policies.retain(|p| ps.iter().all(|q| q.id != p.id));
                self.pending_policies.extend(ps);
            }
            Err(e) => tracing::error!(target: "knl", "policies for reqid {reqid}: {e}"),
        }
        if let Err(e) = self.kernel.add_sa(outbound, false, reqid, &limits) {
            tracing::error!(target: "knl", "installing outbound SA {:08x}: {e}", outbound.spi);
            if initiated {
                // HASH(3) has not left: withdrawn, our inbound half removed.
                self.engine.handle_command(now, Command::AbortQuickMode { ike_sa, inbound_spi: inbound.spi });
                self.remove_child_spi(now, inbound.spi, true, inbound.spi);
            } else {
                self.engine.handle_command(now, Command::DeleteChild { ike_sa, inbound_spi: inbound.spi });
            }
            return;
        }
        self.log_keys(outbound);
        let ch = self.child_config(entry).cloned();
        let negotiated = Duration::from_secs(u64::from(inbound.lifetime.seconds));
        let life =
            ch.as_ref().map_or(negotiated, |c| c.life_time.min(negotiated.max(Duration::from_secs(1))));
        let rekey =
            ch.as_ref().and_then(|c| (!c.rekey_time.is_zero()).then_some((c.rekey_time, c.rand_time)));
        let rekey_at = match (rekey, ch.as_ref()) {
            (Some((t, r)), Some(c)) => {
                let draw = self.rng.next_u64();
                Some(now + rekey_delay(t, r, c.life_time, life, draw))
            }
            _ => None,
        };
        if let Some(c) = self.children.iter_mut().find(|c| c.spi_in == inbound.spi) {
            c.spi_out = outbound.spi;
            c.state = ChildState::Installed;
            c.installed = now;
            c.installed_wall = SystemTime::now();
            c.rekey_at = rekey_at;
            c.expire_at = Some(now + life);
        }
        tracing::info!(
            target: "knl",
            "child SA `{}` installed: SPIs {:08x}_i {:08x}_o, {} === {} (reqid {reqid})",
            self.entries.get(entry).map_or("", |e| e.child.as_str()),
            inbound.spi,
            outbound.spi,
            DisplayTs(local_ts),
            DisplayTs(remote_ts)
        );
        self.settle_reqid(now, reqid, inbound.spi);
        self.delete_replaced_ike_sas(now);
    }

    /// The newest fully installed pair of `reqid` not yet superseded.
    fn current_pair(&self, reqid: u32) -> Option<u32> {
        self.children
            .iter()
            .filter(|c| c.reqid == reqid && c.spi_out != 0 && c.state != ChildState::Superseded)
            .max_by_key(|c| c.installed)
            .map(|c| c.spi_in)
    }

    /// After pair `new_spi` of `reqid` was installed: a duplicate (same
    /// `replaces`) resolved by the lower min(SPI), the pairs it replaces
    /// superseded (deleted after the overlap by the end that rekeyed).
    fn settle_reqid(&mut self, now: Instant, reqid: u32, new_spi: u32) {
        let Some(new) = self.children.iter().find(|c| c.spi_in == new_spi).cloned() else {
            return;
        };
        let others: Vec<ChildSa> = self
            .children
            .iter()
            .filter(|c| c.reqid == reqid && c.spi_in != new_spi && c.spi_out != 0)
            .filter(|c| c.state != ChildState::Superseded)
            .cloned()
            .collect();
        let key = |c: &ChildSa| c.spi_in.min(c.spi_out);
        for o in others {
            if o.replaces == new.replaces {
                let loser = if key(&o) < key(&new) { new.spi_in } else { o.spi_in };
                tracing::info!(target: "ike", "duplicate child SA pair for reqid {reqid}: deleting {loser:08x}");
                if let Some(c) = self.children.iter_mut().find(|c| c.spi_in == loser) {
                    c.state = ChildState::Superseded;
                    c.rekey_at = None;
                    // Stop sending on it now (the policy falls back to the other
                    // pair); keep receiving on it until the peer did the same.
                    c.delete_at = Some(now + REKEY_OVERLAP);
                    let out = c.spi_out;
                    if let Err(e) = self.kernel.del_sa(out, false, Some(reqid)) {
                        tracing::error!(target: "knl", "removing outbound SA {out:08x}: {e}");
                    }
                }
                if loser == new.spi_in {
                    return;
                }
            } else if let Some(c) = self.children.iter_mut().find(|c| c.spi_in == o.spi_in) {
                c.state = ChildState::Superseded;
                c.rekey_at = None;
                if new.initiated || o.state == ChildState::Rekeying {
                    c.delete_at = Some(now + REKEY_OVERLAP);
                }
            }
        }
    }

    /// The engine or the peer removed one SA, of the pair whose inbound SPI is `pair`. An
    /// outbound SPI alone does not name a child: another peer may have chosen the same one.
    fn remove_child_spi(&mut self, now: Instant, spi: u32, inbound: bool, pair: u32) {
        let is_it =
            |c: &ChildSa| if inbound { c.spi_in == spi } else { c.spi_out == spi && c.spi_in == pair };
        // The pair going away may be the one carrying the traffic of a rekey
        // whose outbound SA is still deferred (a reauthentication deletes the
        // old IKE SA's pairs at once): that outbound SA takes over now.
        let gone = self.children.iter().find(|c| is_it(c));
        let gone_reqid = gone.map(|c| c.reqid);
        if let Some((reqid, own_in)) = gone.map(|c| (c.reqid, c.spi_in)) {
            let pending: Vec<u32> = self
                .children
                .iter()
                .filter(|c| c.reqid == reqid && c.spi_in != own_in && c.state == ChildState::Inbound)
                .map(|c| c.spi_in)
                .collect();
            if !pending.is_empty() {
                tracing::debug!(target: "knl", "reqid {reqid}: SA {spi:08x} removed before the deferred outbound switch; switching now");
                self.install_deferred(now, |d| pending.contains(&d.inbound.spi));
            }
        }
        // An outbound SA with no child here is not ours to name by SPI alone.
        if let Err(e) = self.kernel.del_sa(spi, inbound, gone_reqid) {
            tracing::error!(target: "knl", "removing SA {spi:08x}: {e}");
        }
        if inbound {
            self.kernel.release_spi(spi);
        }
        let Some(i) = self.children.iter().position(is_it) else {
            return;
        };
        let Some(c) = self.children.get_mut(i) else {
            return;
        };
        if inbound {
            c.spi_in = 0;
        } else {
            c.spi_out = 0;
        }
        if c.spi_in != 0 && c.spi_out != 0 {
            return;
        }
        // Half-installed or half-deleted: finish the other direction.
        let (other, other_inbound) = if c.spi_in != 0 { (c.spi_in, true) } else { (c.spi_out, false) };
        let c = self.children.remove(i);
        if other != 0 {
            let _ = self.kernel.del_sa(other, other_inbound, Some(c.reqid));
            if other_inbound {
                self.kernel.release_spi(other);
            }
        }
        tracing::info!(target: "knl", "child SA pair of reqid {} removed", c.reqid);
        let live = self.children.iter().any(|x| x.reqid == c.reqid);
        // A child configured to be up (start or trap) keeps its policies as a
        // trap: traffic then renegotiates instead of leaving in the clear.
        let up = self.child_config(c.entry).is_some_and(|ch| ch.start_action != StartAction::None);
        let configured = self.bindings.get(&c.reqid).is_some_and(|b| {
            self.entries.get(b.entry).is_some_and(|e| {
                e.local_ts.normalized() == b.local_ts && e.remote_ts.normalized() == b.remote_ts && !e.retired
            })
        });
        if !live && up && configured {
            if let Some(b) = self.bindings.get_mut(&c.reqid) {
                if !b.trap {
                    tracing::info!(target: "knl", "reqid {}: no SA left, policies stay as a trap", c.reqid);
                }
                b.trap = true;
            }
        }
        let keep = self.bindings.get(&c.reqid).is_some_and(|b| b.trap);
        if !live && !keep {
            let ids = [c.reqid.wrapping_mul(2), c.reqid.wrapping_mul(2).wrapping_add(1)];
            if let Err(e) = self.kernel.del_policies(&ids) {
                tracing::error!(target: "knl", "removing policies of reqid {}: {e}", c.reqid);
            }
            self.bindings.remove(&c.reqid);
        }
    }

    /// An IKE SA ended: by Delete, failure, DPD or expiry. Its children stay
    /// (RFC 2408 §3.15), adopted by the connection's current IKE SA with the
    /// peer if there is one, else orphans that keep forwarding until they
    /// expire or a new IKE SA adopts them (their rekey initiates one). A dead
    /// peer (DPD) takes them along.
    fn on_ike_gone(&mut self, now: Instant, id: IkeSaId, failed: bool) {
        let Some(s) = self.ike.remove(&id) else {
            return;
        };
        let conn = self.conn_config(&s.conn).cloned();
        let action = if s.dead {
            conn.as_ref().and_then(|c| c.children.first()).map(|ch| ch.dpd_action)
        } else if failed && s.established.is_none() {
            None
        } else if !s.replaced {
            conn.as_ref().and_then(|c| c.children.first()).map(|ch| ch.close_action)
        } else {
            None
        };
        let of_peer: Vec<(IkeSaId, u32)> = self
            .children
            .iter()
            .filter(|c| !self.ike.contains_key(&c.ike_sa) && s.remote.is_none_or(|r| r == c.remote))
            .filter(|c| self.entries.get(c.entry).is_some_and(|e| e.conn == s.conn))
            .map(|c| (c.ike_sa, c.spi_in))
            .collect();
        if s.dead {
            for (ike_sa, spi) in of_peer {
                self.delete_child(now, ike_sa, spi);
            }
        } else if !of_peer.is_empty() {
            // The newest remaining IKE SA with the peer takes them, even one
            // marked replaced (the peer may have kept that one).
            let current = self.established_ike_sa(&s.conn, s.remote).or_else(|| {
                self.ike
                    .iter()
                    .filter(|(_, o)| o.conn == s.conn && o.remote == s.remote && o.established.is_some())
                    .filter(|(_, o)| !o.dead)
                    .max_by_key(|(_, o)| o.established.map(|e| e.0))
                    .map(|(i, _)| *i)
            });
            match current {
                Some(cur) => {
                    if let Some(o) = self.ike.get_mut(&cur) {
                        o.replaced = false;
                        o.replaced_at = None;
                        o.replaced_by_us = false;
                    }
                    self.adopt_children(now, cur);
                }
                None if s.established.is_some() => tracing::info!(
                    target: "ike",
                    "{} child SA pair(s) of `{}` keep forwarding without an ISAKMP SA",
                    of_peer.len(),
                    s.conn
                ),
                None => {}
            }
        }
        let name = s.conn.clone();
        match action {
            Some(PeerGoneAction::Restart) => {
                tracing::info!(target: "ike", "`{name}`: peer gone, restarting");
                self.retries.push((name.clone(), now + RETRY_DELAY, 0));
            }
            Some(PeerGoneAction::Trap) => {
                for e in self.entries_of(&name, None) {
                    self.install_trap(e);
                }
            }
            Some(PeerGoneAction::Clear) | None => {}
        }
        if failed && s.established.is_none() {
            // keyingtries: 0 = forever.
            let tries = conn.as_ref().map_or(1, |c| c.keyingtries);
            let done = self.retries.iter().find(|r| r.0 == name).map_or(0, |r| r.2);
            self.retries.retain(|r| r.0 != name);
            if tries == 0 || done + 1 < tries {
                self.retries.push((name, now + RETRY_DELAY, done + 1));
            } else {
                tracing::warn!(target: "ike", "`{name}`: giving up after {tries} keying tries");
                self.pending.retain(|p| self.entries.get(*p).is_none_or(|e| e.conn != s.conn));
            }
        }
    }

    /// INITIAL-CONTACT: the peer has no memory of older SAs with us. "The
    /// peer" is its identity on this connection and address (see
    /// [`Contact::same_peer`]): other clients behind the same NAT keep theirs.
    fn on_initial_contact(&mut self, now: Instant, id: IkeSaId) {
        let sas = self.engine.ike_sas();
        fn contact<'a>(entries: &'a [Entry], s: &'a ike::engine::IkeSaSummary) -> (IkeSaId, Contact<'a>) {
            let conn = entries.get(s.peer).map_or("", |e| e.conn.as_str());
            (s.id, Contact { conn, addr: s.remote.ip(), peer_id: &s.peer_id })
        }
        let contact = |s| contact(&self.entries, s);
        let Some(new) = sas.iter().find(|s| s.id == id).map(contact) else {
            return;
        };
        let all: Vec<(IkeSaId, Contact<'_>)> = sas.iter().map(contact).collect();
        let victims = initial_contact_victims(new, &all);
        // Pairs kept after their IKE SA ended.
        let stale: Vec<u32> = self
            .children
            .iter()
            .filter(|c| c.ike_sa != id && !self.ike.contains_key(&c.ike_sa))
            .filter(|c| {
                let conn = self.entries.get(c.entry).map_or("", |e| e.conn.as_str());
                new.1.same_peer(&Contact { conn, addr: c.remote, peer_id: &c.peer_id })
            })
            .map(|c| c.spi_in)
            .collect();
        let remote = new.1.addr;
        for o in victims {
            tracing::info!(target: "ike", "INITIAL-CONTACT from {remote}: deleting older IKE SA {} of the same peer", o.0);
            if let Some(s) = self.ike.get_mut(&o) {
                s.replaced = true;
            }
            self.engine.handle_command(now, Command::Delete(o));
        }
        // By the inbound SPI (ours, unique): the pair goes, outbound SA too.
        for i in stale {
            self.remove_child_spi(now, i, true, i);
        }
    }

    /// A new configuration: retire the entries of changed and removed
    /// connections (their SAs are deleted), add changed and new ones.
    pub fn reconfigure(&mut self, now: Instant, config: Arc<Config>, summary: &LoadSummary) {
        for name in summary.changed.iter().chain(&summary.removed) {
            let _ = self.terminate(now, name, None);
            for (i, e) in self.entries.iter_mut().enumerate() {
                if &e.conn == name {
                    e.retired = true;
                    self.engine.retire_peer(i);
                }
            }
            let traps: Vec<u32> = self
                .bindings
                .iter()
                .filter(|(_, b)| b.trap && self.entries.get(b.entry).is_some_and(|e| &e.conn == name))
                .map(|(r, _)| *r)
                .collect();
            for r in traps {
                let _ = self.kernel.del_policies(&[r.wrapping_mul(2), r.wrapping_mul(2).wrapping_add(1)]);
                if let Some(b) = self.bindings.get_mut(&r) {
                    b.trap = false;
                }
            }
        }
        self.config = config;
        let cfg = Arc::clone(&self.config);
        for name in summary.changed.iter().chain(&summary.added) {
            if let Some(c) = cfg.connection(name) {
                self.add_connection(c, false);
                for ch in &c.children {
                    if ch.start_action == StartAction::Start {
                        let _ = self.initiate(now, name, Some(&ch.name));
                    }
                }
            }
        }
    }

    /// SA counts for `stats`.
    pub fn counts(&self) -> EngineCounts {
        let sas = self.engine.ike_sas();
        EngineCounts {
            ike_sas: sas.len() as u64,
            ike_sas_half_open: sas.iter().filter(|s| !s.established).count() as u64,
            child_sas: self.children.iter().filter(|c| c.spi_out != 0).count() as u64,
            ike_datagrams: self
                .engine
                .stats()
                .named()
                .into_iter()
                .map(|(k, _, v)| (k.to_owned(), v))
                .collect(),
        }
    }

    /// The dataplane's counters.
    pub fn dataplane_stats(&self) -> crate::ctl::protocol::DataplaneStats {
        self.kernel.dataplane_stats()
    }

    /// `list-sas`.
    pub fn list_sas(&self, now: Instant) -> Vec<IkeSaInfo> {
        let mut out = Vec::new();
        for s in self.engine.ike_sas() {
            let st = self.ike.get(&s.id);
            let entry = self.entries.get(s.peer);
            let conn = entry.and_then(|e| self.conn_config(&e.conn));
            let (encr_alg, encr_keysize, integ_alg, prf_alg, dh_group) = match s.proposal {
                Some(p) => {
                    let (i, prf) = hash_names(p.hash);
                    (
                        "AES_CBC".to_owned(),
                        cipher_bits(p.cipher),
                        i.to_owned(),
                        prf.to_owned(),
                        dh_name(p.group),
                    )
                }
                None => Default::default(),
            };
            let state = match st {
                _ if !s.established => "CONNECTING",
                Some(x) if x.dead => "DELETING",
                Some(x) if x.replaced => "REKEYED",
                _ => "ESTABLISHED",
            };
            let child_sas =
                self.children.iter().filter(|c| c.ike_sa == s.id).map(|c| self.child_info(now, c)).collect();
            out.push(IkeSaInfo {
                name: entry.map_or_else(String::new, |e| e.conn.clone()),
                uniqueid: s.id.0,
                state: state.to_owned(),
                local_host: s.local.ip().to_string(),
                local_port: s.local.port(),
                local_id: conn.map_or_else(String::new, |c| c.local.id.to_string()),
                remote_host: s.remote.ip().to_string(),
                remote_port: s.remote.port(),
                remote_id: conn.map_or_else(String::new, |c| c.remote.id.to_string()),
                initiator: s.initiator,
                initiator_spi: hex8(&s.cookies.0),
                responder_spi: hex8(&s.cookies.1),
                nat_local: s.nat.local_behind,
                nat_remote: s.nat.remote_behind,
                encr_alg,
                encr_keysize,
                integ_alg,
                prf_alg,
                dh_group,
                established: st
                    .and_then(|x| x.established)
                    .map(|e| now.saturating_duration_since(e.0).as_secs()),
                rekey_time: st.and_then(|x| secs_until(now, x.reauth_at)),
                child_sas,
            });
        }
        out.extend(self.orphans_info(now));
        out
    }

    /// Child pairs whose ISAKMP SA is gone (they keep forwarding until a new
    /// one adopts them or they expire), one entry per connection and peer:
    /// uniqueid 0 and state `DELETED` stand for the missing ISAKMP SA; the
    /// rest comes from the configuration, no cookies, algorithms or ports.
    fn orphans_info(&self, now: Instant) -> Vec<IkeSaInfo> {
        let live: std::collections::HashSet<IkeSaId> = self.engine.ike_sas().iter().map(|s| s.id).collect();
        let mut groups: BTreeMap<(String, IpAddr), Vec<ChildSaInfo>> = BTreeMap::new();
        for c in self.children.iter().filter(|c| !live.contains(&c.ike_sa)) {
            let conn = self.entries.get(c.entry).map_or_else(String::new, |e| e.conn.clone());
            groups.entry((conn, c.remote)).or_default().push(self.child_info(now, c));
        }
        groups
            .into_iter()
            .map(|((name, remote), child_sas)| {
                let conn = self.conn_config(&name);
                let local = conn.and_then(|c| local_address(&self.config, c, Some(remote)));
                IkeSaInfo {
                    local_host: local.map_or_else(String::new, |a| a.to_string()),
                    local_id: conn.map_or_else(String::new, |c| c.local.id.to_string()),
                    remote_host: remote.to_string(),
                    remote_id: conn.map_or_else(String::new, |c| c.remote.id.to_string()),
                    name,
                    uniqueid: 0,
                    state: "DELETED".to_owned(),
                    child_sas,
                    ..IkeSaInfo::default()
                }
            })
            .collect()
    }

    fn child_info(&self, now: Instant, c: &ChildSa) -> ChildSaInfo {
        let (encr_alg, encr_keysize, integ_alg) = alg_names(c.encryption, c.integrity);
        let e = self.entries.get(c.entry);
        let ch = self.child_config(c.entry);
        let stat_in = if c.spi_in != 0 { self.kernel.sa_stats(c.spi_in, true, None) } else { None };
        let stat_out =
            if c.spi_out != 0 { self.kernel.sa_stats(c.spi_out, false, Some(c.reqid)) } else { None };
        let wall = unix(SystemTime::now());
        let used = |s: Option<sadb::SaStats>| {
            s.filter(|s| s.last_used > 0).map(|s| wall.saturating_sub(s.last_used))
        };
        ChildSaInfo {
            name: e.map_or_else(String::new, |e| e.child.clone()),
            uniqueid: c.id,
            state: match c.state {
                ChildState::Inbound => "INSTALLING",
                ChildState::Installed => "INSTALLED",
                ChildState::Rekeying | ChildState::PeerRekeying => "REKEYING",
                ChildState::Superseded => "REKEYED",
            }
            .to_owned(),
            mode: match c.encapsulation {
                Encapsulation::Tunnel | Encapsulation::UdpTunnel => "TUNNEL",
                Encapsulation::Transport | Encapsulation::UdpTransport => "TRANSPORT",
            }
            .to_owned(),
            protocol: "ESP".to_owned(),
            encap: matches!(c.encapsulation, Encapsulation::UdpTunnel | Encapsulation::UdpTransport),
            spi_in: format!("{:08x}", c.spi_in),
            spi_out: format!("{:08x}", c.spi_out),
            encr_alg,
            encr_keysize,
            integ_alg,
            dh_group: ch.and_then(|ch| ch.pfs_group).map(dh_name),
            esn: false,
            bytes_in: stat_in.map_or(0, |s| s.bytes),
            packets_in: stat_in.map_or(0, |s| s.packets),
            use_in: used(stat_in),
            bytes_out: stat_out.map_or(0, |s| s.bytes),
            packets_out: stat_out.map_or(0, |s| s.packets),
            use_out: used(stat_out),
            rekey_time: secs_until(now, c.rekey_at),
            life_time: secs_until(now, c.expire_at),
            install_time: now.saturating_duration_since(c.installed).as_secs(),
            local_ts: vec![DisplayTs(c.local_ts).to_string()],
            remote_ts: vec![DisplayTs(c.remote_ts).to_string()],
        }
    }

    /// Stopping: with `delete`, Deletes go out and our SAs and policies
    /// leave the dataplane; otherwise everything stays installed.
    pub fn shutdown(&mut self, now: Instant, delete: bool) {
        self.commit();
        if !delete {
            return;
        }
        let ids: Vec<IkeSaId> = self.engine.ike_sas().iter().map(|s| s.id).collect();
        for id in ids {
            self.engine.handle_command(now, Command::Delete(id));
        }
        self.process_events(now);
        for c in std::mem::take(&mut self.children) {
            let _ = self.kernel.del_sa(c.spi_in, true, None);
            let _ = self.kernel.del_sa(c.spi_out, false, Some(c.reqid));
        }
        let reqids: Vec<u32> = self.bindings.keys().copied().collect();
        for r in reqids {
            let _ = self.kernel.del_policies(&[r.wrapping_mul(2), r.wrapping_mul(2).wrapping_add(1)]);
        }
        self.bindings.clear();
        let bypass: Vec<u32> = crate::knl::ike_bypass_policies(
            &self.config.daemon.listen,
            [self.config.daemon.port, self.config.daemon.port_nat_t],
        )
        .iter()
        .map(|p| p.id)
        .collect();
        let _ = self.kernel.del_policies(&bypass);
    }

    /// Removes SAs left by an earlier run whose reqid now has a fresh pair
    /// (called on the beat; cheap when there are none).
    pub fn reap_orphans(&mut self) {
        let known: std::collections::HashSet<(u32, bool, u32)> = self
            .children
            .iter()
            .flat_map(|c| [(c.spi_in, true, c.reqid), (c.spi_out, false, c.reqid)])
            .collect();
        let fresh: std::collections::HashSet<u32> = self
            .children
            .iter()
            .filter(|c| c.state == ChildState::Installed && c.installed.elapsed() > REKEY_OVERLAP)
            .map(|c| c.reqid)
            .collect();
        for (spi, inbound, reqid) in self.kernel.list_sas() {
            if !known.contains(&(spi, inbound, reqid)) && fresh.contains(&reqid) {
                tracing::info!(target: "knl", "removing SA {spi:08x} left by an earlier run (reqid {reqid})");
                let _ = self.kernel.del_sa(spi, inbound, Some(reqid));
            }
        }
    }

    /// Writes the policies queued by this round of events into the database
    /// in one batch. The engine loop calls it before sending datagrams.
    pub fn commit(&mut self) {
        if self.pending_policies.is_empty() {
            return;
        }
        let batch = std::mem::take(&mut self.pending_policies);
        // Pairs removed since they were queued take their policies with them.
        let live: std::collections::HashSet<u32> = self.bindings.keys().copied().collect();
        let batch: Vec<_> = batch.into_iter().filter(|p| live.contains(&p.reqid)).collect();
        if let Err(e) = self.kernel.add_policies(&batch) {
            tracing::error!(target: "knl", "installing {} policies: {e}", batch.len());
        }
    }
}

/// How long after installation a child is rekeyed: `rekey_time` minus a
/// random part (`draw`) of `rand_time`, when the lifetime in force is the
/// configured `life_time`. A peer that made it shorter (RESPONDER-LIFETIME,
/// or its proposal when we respond) moves the rekey before that expiry: when
/// `rekey_time` no longer fits, the soft time and the jitter are scaled by
/// `life / life_time` (they keep their configured proportions), and the
/// jitter stays below the rekey window (strongSwan scales a `rand_time`
/// that does not fit down the same way).
fn rekey_delay(
    rekey_time: Duration,
    rand_time: Duration,
    life_time: Duration,
    life: Duration,
    draw: u64,
) -> Duration {
    let (soft, rand) = if rekey_time < life || life_time.is_zero() {
        (rekey_time, rand_time)
    } else {
        let scale = life.as_secs_f64() / life_time.as_secs_f64().max(rekey_time.as_secs_f64());
        (rekey_time.mul_f64(scale), rand_time.mul_f64(scale))
    };
    let rand = if rand >= soft { soft / 2 } else { rand };
    let ms = u64::try_from(rand.as_millis()).unwrap_or(u64::MAX);
    let jitter = if ms == 0 { 0 } else { draw % ms };
    soft.saturating_sub(Duration::from_millis(jitter))
}

/// The soft volume limit (bytes or packets; 0 = none) of an SA whose hard
/// limit in force is `life`: `rekey` minus a random part (`draw`) of `rand`,
/// as configured when `rekey` is below `life`. A lower hard limit (the
/// peer's kilobyte lifetime) scales `rekey` and `rand` by `life / life_cfg`,
/// as [`rekey_delay`] does for time; a hard limit without a configured
/// `rekey` gets strongSwan's default proportion (`life / 1.1`, the rest as
/// jitter). The jitter never takes more than half of the soft limit, and the
/// soft limit always stays below the hard one (the database refuses the SA
/// otherwise).
fn soft_limit(rekey: u64, rand: u64, life_cfg: u64, life: u64, draw: u64) -> u64 {
    let (soft, rand) = if life == 0 || (rekey != 0 && rekey < life) {
        (rekey, rand)
    } else if rekey == 0 {
        let soft = life - life / 11;
        (soft, life - soft)
    } else {
        let base = u128::from(life_cfg.max(rekey));
        let scale = |v: u64| u64::try_from(u128::from(v) * u128::from(life) / base).unwrap_or(u64::MAX);
        (scale(rekey), scale(rand))
    };
    let jitter = if rand == 0 { 0 } else { draw % rand };
    let soft = soft.saturating_sub(jitter).max(soft / 2);
    if life != 0 && soft >= life {
        life.saturating_sub(1).max(1)
    } else {
        soft
    }
}

/// Use of one volume of an SA since a moment: how much went through, and
/// how much is left before its hard limit (`None`: no limit).
#[derive(Debug, Clone, Copy)]
struct Volume {
    used: u64,
    left: Option<u64>,
}

/// How long an SA that carried `used` of each volume in `elapsed` may go on
/// carrying traffic before it is replaced: `max`, or half the time the
/// volume closest to its hard limit needs to reach it at that rate, so the
/// switch comes well before the hard limit (where the dataplane drops).
fn switch_delay(max: Duration, elapsed: Duration, volumes: [Volume; 2]) -> Duration {
    volumes
        .iter()
        .filter_map(|v| {
            let left = v.left?;
            if v.used == 0 {
                return None;
            }
            let secs = elapsed.as_secs_f64() * left as f64 / v.used as f64;
            Some(Duration::try_from_secs_f64(secs / 2.0).unwrap_or(max))
        })
        .fold(max, Duration::min)
}

fn hex8(b: &[u8; 8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The selector pairs of a child in the order `peer_configs` emits them.
fn selector_pairs(child: &Child, local: IpAddr, remote: IpAddr) -> Vec<(TrafficSelector, TrafficSelector)> {
    let mut out = Vec::new();
    for l in &child.local_ts {
        for r in &child.remote_ts {
            out.push((l.resolve(local), r.resolve(remote)));
        }
    }
    out
}

/// Who an IKE SA, or a child pair it left behind, is with, as INITIAL-CONTACT
/// scopes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Contact<'a> {
    /// The connection.
    conn: &'a str,
    /// The peer's address (any port).
    addr: IpAddr,
    /// The peer's authenticated ID payload body; empty before phase 1 ends.
    peer_id: &'a [u8],
}

impl Contact<'_> {
    /// RFC 2407 §4.6.3.3: INITIAL-CONTACT tells that its sender has no
    /// memory of its older SAs with us. Its sender is the identity it
    /// authenticated with, on the same connection, from the same address on
    /// any port (a client re-connecting through a new NAT mapping). Another
    /// identity from that address (another client behind the same NAT, or a
    /// `%any` connection's other peer) is someone else.
    fn same_peer(&self, other: &Contact<'_>) -> bool {
        !self.peer_id.is_empty()
            && self.peer_id == other.peer_id
            && self.conn == other.conn
            && self.addr == other.addr
    }
}

/// The IKE SAs an INITIAL-CONTACT received on `new` deletes: the others of
/// the same peer ([`Contact::same_peer`]).
fn initial_contact_victims(new: (IkeSaId, Contact<'_>), all: &[(IkeSaId, Contact<'_>)]) -> Vec<IkeSaId> {
    all.iter().filter(|(id, c)| *id != new.0 && new.1.same_peer(c)).map(|(id, _)| *id).collect()
}

#[cfg(test)]
mod tests {
    use super::{rekey_delay, soft_limit, switch_delay, Volume};
    use std::time::Duration;

    const S: fn(u64) -> Duration = Duration::from_secs;

    /// Every draw in a range that covers the whole jitter, and its extremes.
    fn delays(rekey: Duration, rand: Duration, life_cfg: Duration, life: Duration) -> (Duration, Duration) {
        let all: Vec<Duration> = (0..2_000u64)
            .map(|i| i.wrapping_mul(0x9e37_79b9_7f4a_7c15))
            .chain([0, u64::MAX, 359_999, 2_726])
            .map(|d| rekey_delay(rekey, rand, life_cfg, life, d))
            .collect();
        (*all.iter().min().unwrap(), *all.iter().max().unwrap())
    }

    #[test]
    fn configured_lifetime_rekeys_at_rekey_time_minus_rand_time() {
        let (lo, hi) = delays(S(3600), S(360), S(3960), S(3960));
        assert!(lo > S(3240) && hi <= S(3600), "{lo:?}..{hi:?}");
    }

    /// The peer's 30 s against our rekey_time 1h, rand_time 6 min, life_time
    /// 66 min: the rekey lands in the last tenth of the 30 s (the configured
    /// proportion), never in the first half of it.
    #[test]
    fn a_shorter_lifetime_of_the_peer_scales_rekey_and_jitter() {
        let (lo, hi) = delays(S(3600), S(360), S(3960), S(30));
        assert!(lo >= S(24) && hi < S(28), "{lo:?}..{hi:?}");
        assert!(hi - lo > Duration::from_secs(2), "the jitter is still there: {lo:?}..{hi:?}");
    }

    /// Ours is the shorter one (rekey 20 s, life 30 s, rand 3 s) and the peer
    /// proposed 1h: ours is in force, unscaled.
    #[test]
    fn our_shorter_lifetime_is_used_as_configured() {
        let (lo, hi) = delays(S(20), S(3), S(30), S(30));
        assert!(lo > S(17) && hi <= S(20), "{lo:?}..{hi:?}");
    }

    /// A rand_time as large as the rekey time (a configuration mistake, or
    /// left at its default after shortening rekey_time) is cut to half the
    /// window: the rekey never comes right after the install.
    #[test]
    fn a_rand_time_larger_than_the_window_is_bounded() {
        let (lo, hi) = delays(S(20), S(360), S(30), S(30));
        assert!(lo >= S(10) && hi <= S(20), "{lo:?}..{hi:?}");
    }

    const M: u64 = 1 << 20;

    fn soft_limits(rekey: u64, rand: u64, life_cfg: u64, life: u64) -> (u64, u64) {
        let all: Vec<u64> = (0..2_000u64)
            .map(|i| i.wrapping_mul(0x9e37_79b9_7f4a_7c15))
            .chain([0, u64::MAX, rand.saturating_sub(1)])
            .map(|d| soft_limit(rekey, rand, life_cfg, life, d))
            .collect();
        (*all.iter().min().unwrap(), *all.iter().max().unwrap())
    }

    /// rekey_bytes 1 MB, life_bytes 2 MB, rand_bytes 1 MB (its default):
    /// the soft limit lands in the upper half of the first MB.
    #[test]
    fn a_soft_volume_limit_close_to_the_hard_one_is_used_as_configured() {
        let (lo, hi) = soft_limits(M, M, 2 * M, 2 * M);
        assert!(lo >= M / 2 && hi <= M && hi - lo > M / 4, "{lo}..{hi}");
        assert_eq!(soft_limits(M, 0, 2 * M, 2 * M), (M, M), "no jitter");
        assert_eq!(soft_limits(0, 0, 0, 0), (0, 0), "no volume limit at all");
    }

    /// The peer's kilobyte lifetime (1,000 KiB) below our rekey_bytes 2 MB:
    /// the soft limit keeps its proportion of the hard one, below it (the
    /// database refuses soft > hard).
    #[test]
    fn a_lower_hard_limit_of_the_peer_scales_the_soft_one_below_it() {
        let life = 1_000 * 1024;
        let (lo, hi) = soft_limits(2 * M, 256 * 1024, 64 * M, life);
        assert!(hi < life && lo >= life / 64, "{lo}..{hi} against {life}");
        // rekey 2 MB, life 2.2 MB configured, the peer's 1 MB: 10/11 of it, minus jitter.
        let (lo, hi) = soft_limits(2 * M, M / 5, 2 * M + M / 5, M);
        assert!(hi <= M * 10 / 11 + 1 && lo >= M * 10 / 11 - M / 11 - 1, "{lo}..{hi}");
    }

    /// A hard limit without a soft one (the peer's, with no rekey_bytes of
    /// ours) still rekeys before it.
    #[test]
    fn a_hard_limit_alone_gets_a_soft_one() {
        let (lo, hi) = soft_limits(0, 0, 0, 11 * M);
        assert!(lo >= 9 * M && hi <= 10 * M, "{lo}..{hi}");
        assert_eq!(soft_limit(10, 10, 0, 1, 7), 1, "a 1-unit hard limit: the smallest soft one");
    }

    /// 10 MB/s on the old SA for the 30 ms of the Quick Mode, 700 KB left
    /// before its hard limit (70 ms): the switch comes in half of that.
    #[test]
    fn the_outbound_switch_comes_well_before_the_hard_limit() {
        let ms = Duration::from_millis;
        let bytes = Volume { used: 300_000, left: Some(700_000) };
        let packets = Volume { used: 300, left: None };
        assert_eq!(switch_delay(ms(200), ms(30), [bytes, packets]), ms(35));
        // Idle, or far from the limit: the full delay.
        let idle = Volume { used: 0, left: Some(10) };
        assert_eq!(switch_delay(ms(200), ms(30), [idle, packets]), ms(200));
        let far = Volume { used: 1_000, left: Some(1 << 30) };
        assert_eq!(switch_delay(ms(200), ms(30), [far, packets]), ms(200));
        // At the hard limit already: now.
        let full = Volume { used: 1_000, left: Some(0) };
        assert_eq!(switch_delay(ms(200), ms(30), [bytes, full]), Duration::ZERO);
    }
}

#[cfg(test)]
mod initial_contact_tests {
    use super::{initial_contact_victims, Contact, IkeSaId};
    use std::net::IpAddr;

    /// An ID payload body: ID_FQDN (2), protocol and port 0, the name.
    fn fqdn(name: &str) -> Vec<u8> {
        [&[2u8, 0, 0, 0][..], name.as_bytes()].concat()
    }

    /// Two clients with distinct identities behind one NAT address on one
    /// `%any` connection, and a client re-connecting with its identity from a
    /// new port: only its own old IKE SA goes.
    #[test]
    fn initial_contact_deletes_only_the_same_identity() {
        let nat: IpAddr = IpAddr::from([198, 18, 0, 1]);
        let (alice, bob) = (fqdn("alice.example"), fqdn("bob.example"));
        let c = |conn, addr, id: &'static [u8]| Contact { conn, addr, peer_id: id };
        let alice: &'static [u8] = alice.leak();
        let bob: &'static [u8] = bob.leak();
        let all = [
            // Alice's old IKE SA (she re-connects through a new NAT mapping: port
            // only, not part of the contact).
            (IkeSaId(1), c("rw", nat, alice)),
            // Bob, behind the same NAT.
            (IkeSaId(2), c("rw", nat, bob)),
            // Alice on another connection, and from another address.
            (IkeSaId(3), c("site", nat, alice)),
            (IkeSaId(4), c("rw", IpAddr::from([198, 18, 0, 2]), alice)),
            // Half-open: no identity yet.
            (IkeSaId(5), c("rw", nat, &[])),
            // Alice's new IKE SA, which carried INITIAL-CONTACT.
            (IkeSaId(6), c("rw", nat, alice)),
        ];
        assert_eq!(initial_contact_victims(all[5], &all), vec![IkeSaId(1)]);
        // Bob's INITIAL-CONTACT touches none of Alice's.
        let bob_new = (IkeSaId(7), c("rw", nat, bob));
        assert_eq!(initial_contact_victims(bob_new, &all), vec![IkeSaId(2)]);
        // A sender with no identity yet names nobody.
        assert_eq!(initial_contact_victims(all[4], &all), Vec::<IkeSaId>::new());
    }
}
