//! The SA manager: what strongSwan's charon does around the protocol. It
//! owns the sans-IO engine and the SA database handle, turns configuration
//! into engine peer entries, installs what the engine negotiates, and runs
//! the lifecycle: start and trap actions, acquires, rekeying
//! (make-before-break), expiry, re-establishment of ISAKMP SAs, DPD on
//! idle, INITIAL-CONTACT. It reads no clock, draws no randomness of its
//! own and touches no socket: the caller passes `now` (and the wall clock
//! where `list-sas` needs it), the randomness at construction
//! ([`Randomness`]), and moves the engine's datagrams (see `driver.rs`), so
//! tests run it in virtual time with seeded randomness.
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
//! - Time-driven work has no beat: every deadline is armed in one timer
//!   table as it is set, and [`Manager::poll_timeout`] is the earliest.
//!
//! Where things are: this file holds the [`Manager`], its public entry
//! points and the dispatch of the engine's events; `child` the child SA
//! pairs and their transitions (install, rekey, outbound switch, delete,
//! expiry); `ike_sa` the IKE SAs (establishment, DPD, re-establishment,
//! replaced SAs, INITIAL-CONTACT); `reqid` the reqids and the policies they
//! own; `timers` the deadlines and their table; `report` what `ikectl` shows;
//! `monitor` the events `ikectl monitor` streams.

mod child;
mod ike_sa;
mod monitor;
mod report;
mod reqid;
mod timers;

use crate::config::StartAction;
use crate::config::{engine::peer_configs, Child, Config, Connection};
use crate::ctl::protocol::{CtlError, ErrorCode, LoadSummary, MonitorEvent};
use crate::keylog::KeyLog;
use crate::sadb_writer::SadbWriter;
use child::{ChildSa, ChildState, DeferredOutbound};
use ike::crypto::Rng;
use ike::engine::{Command, Engine, EngineConfig, Event, IkeSaId, TrafficSelector, Transmit};
use ike_sa::IkeState;
pub use monitor::EventCounts;
use monitor::Monitor;
use rand_core::RngCore;
use reqid::{Binding, DYNAMIC_REQID};
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};
use timers::Deadlines;

/// How long a rekeyed pair stays after its successor is installed.
pub const REKEY_OVERLAP: Duration = Duration::from_secs(2);

/// How long after our HASH(3) a rekeyed pair's outbound SA takes the traffic
/// (the responder's time to receive it and install its inbound SA; well
/// within [`REKEY_OVERLAP`], so the old pair is still there).
pub const OUTBOUND_SWITCH_DELAY: Duration = Duration::from_millis(200);

/// The randomness a [`Manager`] draws from, given at construction: the
/// daemon passes the operating system's, tests seeded generators so that a
/// run repeats.
pub struct Randomness {
    /// The engine's: cookies, nonces, DH secrets (cryptographic).
    pub engine: Box<dyn Rng + Send>,
    /// The manager's own: the SPI allocator's seed and the jitter of
    /// rekeys, re-establishments and soft volume limits.
    pub manager: Box<dyn RngCore + Send>,
}

impl std::fmt::Debug for Randomness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Randomness").finish_non_exhaustive()
    }
}

/// One engine peer entry: a child's selector pair of a connection.
#[derive(Debug, Clone)]
struct Entry {
    conn: String,
    child: String,
    local_ts: TrafficSelector,
    remote_ts: TrafficSelector,
    retired: bool,
}

/// The SA manager.
pub struct Manager {
    config: Arc<Config>,
    engine: Engine,
    kernel: SadbWriter,
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
    /// The manager's own draws (see [`Randomness::manager`]).
    rng: Box<dyn RngCore + Send>,
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
    /// SAs of an earlier run found in the database at construction, until
    /// they are removed (see [`Leftover`]).
    leftovers: Vec<Leftover>,
    /// The first `now` seen ([`Manager::start`] or [`Manager::tick`]):
    /// the leftovers' deadlines count from it.
    started: Option<Instant>,
    /// Every moment something is due (see [`Deadlines`]).
    deadlines: Deadlines,
    /// Events for `ikectl monitor`, until the daemon reads them.
    monitor: Monitor,
}

/// An SA an earlier run left in the database (iked killed without
/// deleting). Nothing of this run applies its time lifetime (espd fires
/// volume limits only), so it gets a deadline of its own: `life` after this
/// run's start, where `life` is the largest configured `life_time` of the
/// children of the connection that owns its reqid (a configured reqid is
/// its peer entry's index + 1), or of all children when no connection owns
/// it (a reqid of narrowed selectors, or a configuration that changed). The
/// SA record holds its installation time but not the time lifetime it was
/// negotiated with, so its remaining hard lifetime cannot be computed; the
/// largest configured one, counted from our start, errs on the late side
/// (under an unchanged configuration). At the
/// deadline the SA is removed, and the policies of its reqid too unless
/// this run uses that reqid or its child is configured to be up (`start`
/// or `trap`: they stay as a trap, unbound). A fresh pair of
/// its reqid removes it earlier ([`Manager::reap_orphans`]).
#[derive(Debug, Clone, Copy)]
struct Leftover {
    spi: u32,
    inbound: bool,
    reqid: u32,
    life: Duration,
}

impl std::fmt::Debug for Manager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Manager")
            .field("ike_sas", &self.ike.len())
            .field("child_sas", &self.children.len())
            .finish_non_exhaustive()
    }
}

impl Manager {
    /// A manager for `config`, writing into `kernel`. Traps of
    /// `start_action = trap` children are installed at once; call
    /// [`Manager::start`] to initiate `start_action = start` ones.
    pub fn new(
        config: Arc<Config>,
        kernel: SadbWriter,
        keylog: Option<Arc<KeyLog>>,
        randomness: Randomness,
    ) -> Self {
        let Randomness { engine: engine_rng, manager: mut rng } = randomness;
        let spis = kernel.spi_allocator(rng.next_u64());
        let limits = config.daemon.half_open;
        let engine_config = EngineConfig {
            max_half_open: limits.total,
            max_half_open_per_peer: limits.per_source,
            half_open_reserved: limits.reserved,
            ..EngineConfig::default()
        };
        let engine = Engine::new(engine_config, engine_rng, Box::new(spis));
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
            rng,
            pending_policies: Vec::new(),
            deferred_outbound: Vec::new(),
            next_child_id: 1,
            leftovers: Vec::new(),
            started: None,
            deadlines: Deadlines::default(),
            monitor: Monitor::default(),
        };
        m.install_ike_bypass();
        let found = m.kernel.list_sas();
        for conn in &config.connections {
            m.add_connection(conn, !found.is_empty());
        }
        m.leftovers = found
            .into_iter()
            .map(|(spi, inbound, reqid)| Leftover { spi, inbound, reqid, life: m.leftover_life(reqid) })
            .collect();
        for l in &m.leftovers {
            tracing::info!(
                target: "knl",
                "SA {:08x} ({}, reqid {}) left by an earlier run: removed within {} s unless replaced",
                l.spi,
                if l.inbound { "in" } else { "out" },
                l.reqid,
                l.life.as_secs()
            );
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
        let ps = crate::sadb_writer::ike_bypass_policies(
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

    /// Ties the manager's clock to the wall clock: `wall` is the time at
    /// `now` (certificate validity and CRLs need the date). The daemon calls
    /// it at start and after the wall clock steps.
    pub fn set_wall_clock(&mut self, now: Instant, wall: std::time::SystemTime) {
        self.engine.set_wall_clock(now, wall);
    }

    /// Initiates every `start_action = start` child.
    pub fn start(&mut self, now: Instant) {
        self.note_start(now);
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
            .max_by_key(|(_, s)| s.established)
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
            self.start_phase1(now, conn, first);
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

    /// `ikectl rekey`: rekeys the installed pairs of `child` now (Quick
    /// Mode, make-before-break), or with no child re-establishes the
    /// established ISAKMP SAs of `conn` (their pairs move to the new one).
    pub fn rekey_now(&mut self, now: Instant, conn: &str, child: Option<&str>) -> Result<String, CtlError> {
        match child {
            Some(ch) => {
                let due: Vec<usize> = self
                    .children
                    .iter()
                    .enumerate()
                    .filter(|(_, c)| c.state == ChildState::Installed)
                    .filter(|(_, c)| {
                        self.entries.get(c.entry).is_some_and(|e| e.conn == conn && e.child == ch)
                    })
                    .map(|(i, _)| i)
                    .collect();
                if due.is_empty() {
                    return Err(CtlError::new(
                        ErrorCode::NotFound,
                        format!("`{ch}` has no installed child SA to rekey"),
                    ));
                }
                for &i in &due {
                    self.rekey(now, i);
                }
                Ok(format!("rekeying {} child SA pair(s) of `{ch}`", due.len()))
            }
            None => {
                let ids: Vec<IkeSaId> = self
                    .ike
                    .iter()
                    .filter(|(_, s)| s.conn == conn && s.established.is_some() && !s.replaced && !s.dead)
                    .map(|(id, _)| *id)
                    .collect();
                if ids.is_empty() {
                    return Err(CtlError::new(
                        ErrorCode::NotFound,
                        format!("`{conn}` has no established IKE SA to rekey"),
                    ));
                }
                for &id in &ids {
                    self.reestablish(now, id);
                }
                Ok(format!("re-establishing {} IKE SA(s) of `{conn}`", ids.len()))
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

    fn child_config(&self, entry: usize) -> Option<&Child> {
        let e = self.entries.get(entry)?;
        self.config.child(&e.child).map(|(_, ch)| ch)
    }

    fn conn_config(&self, conn: &str) -> Option<&Connection> {
        self.config.connection(conn)
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
                    if matches!(
                        error,
                        ike::engine::Error::AuthenticationFailed
                            | ike::engine::Error::InvalidIdentity
                            | ike::engine::Error::Certificate(_)
                    ) {
                        let ike = Some(self.ike_name(ike_sa)).filter(|n| !n.is_empty());
                        let remote = self.engine.ike_sa(ike_sa).map(|s| s.remote.to_string());
                        let reason = match error {
                            ike::engine::Error::Certificate(e) => {
                                format!("certificate refused: {}", crate::config::credentials::cert_error(e))
                            }
                            other => format!("{other:?}"),
                        };
                        self.emit(MonitorEvent::AuthFailed { ike, remote, reason });
                    }
                    let gone = self.engine.ike_sa(ike_sa).is_none();
                    if gone {
                        self.on_ike_gone(now, ike_sa, true);
                    }
                }
                Event::InitialContact(id) => self.on_initial_contact(now, id),
                Event::PeerMoved { ike_sa, local, remote, outbound_spis } => {
                    self.on_peer_moved(ike_sa, local, remote, &outbound_spis);
                }
                Event::DeadPeerDetectionAck { ike_sa, .. } => self.on_dpd_ack(now, ike_sa),
            }
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
                self.del_reqid_policies(r);
                if let Some(b) = self.bindings.get_mut(&r) {
                    b.trap = false;
                }
            }
        }
        self.config = config;
        let cfg = Arc::clone(&self.config);
        // Unchanged connections keep their SAs; new exchanges of theirs use
        // the certificates, keys and CRLs just read.
        for name in &summary.unchanged {
            let Some(creds) = cfg.credentials.auth_for(name) else { continue };
            for i in self.entries_of(name, None) {
                self.engine.set_peer_auth(i, ike::engine::AuthMethod::PublicKey(Arc::clone(&creds.auth)));
            }
        }
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
            self.del_reqid_policies(r);
        }
        self.bindings.clear();
        let bypass: Vec<u32> = crate::sadb_writer::ike_bypass_policies(
            &self.config.daemon.listen,
            [self.config.daemon.port, self.config.daemon.port_nat_t],
        )
        .iter()
        .map(|p| p.id)
        .collect();
        let _ = self.kernel.del_policies(&bypass);
    }

    /// Removes SAs left by an earlier run whose reqid now has a fresh pair,
    /// installed [`REKEY_OVERLAP`] ago (run by [`Manager::tick`] while there
    /// are such SAs; a pair installed then arms that moment).
    pub fn reap_orphans(&mut self, now: Instant) {
        let known: std::collections::HashSet<(u32, bool, u32)> = self
            .children
            .iter()
            .flat_map(|c| [(c.spi_in, true, c.reqid), (c.spi_out, false, c.reqid)])
            .collect();
        let fresh: std::collections::HashSet<u32> = self
            .children
            .iter()
            .filter(|c| {
                c.state == ChildState::Installed
                    && now.saturating_duration_since(c.installed) >= REKEY_OVERLAP
            })
            .map(|c| c.reqid)
            .collect();
        for (spi, inbound, reqid) in self.kernel.list_sas() {
            if !known.contains(&(spi, inbound, reqid)) && fresh.contains(&reqid) {
                tracing::info!(target: "knl", "removing SA {spi:08x} left by an earlier run (reqid {reqid})");
                let _ = self.kernel.del_sa(spi, inbound, Some(reqid));
                self.leftovers.retain(|l| (l.spi, l.inbound, l.reqid) != (spi, inbound, reqid));
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
