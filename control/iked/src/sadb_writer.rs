//! The dataplane side of iked (strongSwan's `knl` subsystem): SAs and
//! policies written into the shared SA database that `espd` reads, SPI
//! allocation, the dataplane's events and counters read back.
//!
//! What is installed, per child SA pair with reqid `r`:
//! - an inbound SA (our SPI) and an outbound SA (the peer's SPI), both with
//!   reqid `r`, selectors and lifetimes;
//! - two Protect policies, outbound `local_ts -> remote_ts` (id `2r`) and
//!   inbound `remote_ts -> local_ts` (id `2r + 1`). The database binds an
//!   outbound policy to the newest outbound SA of its reqid, so installing
//!   the new SA of a rekey switches traffic atomically (make-before-break).
//!
//! Policies are keyed by reqid and installed once; a rekeyed pair reuses
//! them. A trap (`start_action = trap`) is the same policies without SA: the
//! dataplane then raises an acquire event.
//!
//! An inbound SPI is ours, unique in the database, so an inbound SA is named
//! by its SPI. An outbound SPI is the peer's choice, and two peers may choose
//! the same one: the database keys outbound SAs by SPI and destination, and
//! iked names one by SPI and reqid. Installing never removes another
//! tunnel's SA: the same SPI towards the same peer for another reqid is
//! refused.

use ike::engine::{
    Encapsulation, EspEncryption, EspIntegrity, EspSaDescription, SpiAllocator, TrafficSelector, TsAddress,
};
use sadb::{
    Action, Backend, Capacities, Cipher, Direction, Event, Integ, PolicyConfig, Region, SaConfig, SaKey,
    SaMode, SaStats, Selector, SA_FLAG_UDP_ENCAP,
};
use std::collections::{BTreeMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

/// What an SA needs besides the negotiated description.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SaLimits {
    /// Anti-replay window (inbound), in packets.
    pub replay_window: u32,
    /// Soft byte limit (0: none).
    pub soft_bytes: u64,
    /// Hard byte limit (0: none).
    pub hard_bytes: u64,
    /// Soft packet limit (0: none).
    pub soft_packets: u64,
    /// Hard packet limit (0: none).
    pub hard_packets: u64,
}

/// A dataplane error, with the operation that failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnlError(pub String);

impl std::fmt::Display for KnlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn err(what: impl std::fmt::Display, e: impl std::fmt::Display) -> KnlError {
    KnlError(format!("{what}: {e}"))
}

fn addr16(a: IpAddr) -> [u8; 16] {
    let mut out = [0u8; 16];
    match a {
        IpAddr::V4(v4) => {
            if let Some(d) = out.get_mut(..4) {
                d.copy_from_slice(&v4.octets());
            }
        }
        IpAddr::V6(v6) => out = v6.octets(),
    }
    out
}

fn family(a: IpAddr) -> u8 {
    if a.is_ipv4() {
        4
    } else {
        6
    }
}

/// An address as the SA record stores it (IPv4 in the first four bytes).
fn addr_of(b: [u8; 16], family: u8) -> IpAddr {
    if family == 4 {
        IpAddr::from([b[0], b[1], b[2], b[3]])
    } else {
        IpAddr::from(b)
    }
}

/// The selector of an SA record as the engine writes one: a prefix when
/// the range is one, else the range.
fn traffic_selector(s: &Selector) -> TrafficSelector {
    let (lo, hi) = (addr_of(s.addr_start, s.family), addr_of(s.addr_end, s.family));
    let (lo_n, x, bits) = match (lo, hi) {
        (IpAddr::V4(a), IpAddr::V4(b)) => {
            (u128::from(u32::from(a)), u128::from(u32::from(a) ^ u32::from(b)), 32)
        }
        _ => {
            let (a, b) = (u128::from_be_bytes(s.addr_start), u128::from_be_bytes(s.addr_end));
            (a, a ^ b, 128)
        }
    };
    // A prefix: the bits that differ are the low ones, and all zero in `lo`.
    let address = if x.count_ones() == x.trailing_ones() && lo_n & x == 0 {
        TsAddress::Subnet(lo, u8::try_from(bits - x.trailing_ones()).unwrap_or(0))
    } else {
        TsAddress::Range(lo, hi)
    };
    let port = if s.port_start == s.port_end { s.port_start } else { 0 };
    TrafficSelector { address, protocol: s.proto, port }.normalized()
}

/// An SA of the database as `list-sas` shows one it did not install.
#[derive(Debug, Clone, Copy)]
pub struct SaOutline {
    /// Outer source address.
    pub src: IpAddr,
    /// Outer destination address.
    pub dst: IpAddr,
    /// Our side's selector.
    pub local_ts: TrafficSelector,
    /// The peer's side.
    pub remote_ts: TrafficSelector,
    /// Tunnel or transport, UDP-encapsulated or not.
    pub encapsulation: Encapsulation,
    /// Extended Sequence Numbers.
    pub esn: bool,
}

/// The inclusive address range of a selector.
fn ts_bounds(ts: &TrafficSelector) -> (IpAddr, IpAddr) {
    match ts.address {
        TsAddress::Host(a) => (a, a),
        TsAddress::Range(a, b) => (a, b),
        TsAddress::Subnet(a, p) => match a {
            IpAddr::V4(v4) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(p.min(32))).unwrap_or(0);
                let lo = u32::from(v4) & mask;
                (IpAddr::from(lo.to_be_bytes()), IpAddr::from((lo | !mask).to_be_bytes()))
            }
            IpAddr::V6(v6) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(p.min(128))).unwrap_or(0);
                let lo = u128::from(v6) & mask;
                (IpAddr::from(lo.to_be_bytes()), IpAddr::from((lo | !mask).to_be_bytes()))
            }
        },
    }
}

/// A selector as the SA record stores it (a range, protocol, ports).
pub fn selector(ts: &TrafficSelector) -> Selector {
    let (lo, hi) = ts_bounds(ts);
    let (ps, pe) = if ts.port == 0 { (0, u16::MAX) } else { (ts.port, ts.port) };
    Selector {
        addr_start: addr16(lo),
        addr_end: addr16(hi),
        family: family(lo),
        proto: ts.protocol,
        _pad: [0; 2],
        port_start: ps,
        port_end: pe,
    }
}

/// A selector as a policy prefix; a range that is not a prefix is refused
/// (a wider policy would protect traffic the peer did not agree to).
fn prefix(ts: &TrafficSelector) -> Result<([u8; 16], u8), KnlError> {
    match ts.normalized().address {
        TsAddress::Host(a) => Ok((addr16(a), if a.is_ipv4() { 32 } else { 128 })),
        TsAddress::Subnet(a, p) => Ok((addr16(ts_bounds(ts).0), p.min(if a.is_ipv4() { 32 } else { 128 }))),
        TsAddress::Range(a, b) => Err(KnlError(format!("selector range {a}-{b} is not a prefix"))),
    }
}

fn ports(ts: &TrafficSelector) -> [u16; 2] {
    if ts.port == 0 {
        [0, u16::MAX]
    } else {
        [ts.port, ts.port]
    }
}

/// The ids of a reqid's two policies ([`policies`]): `2 reqid` outbound,
/// `2 reqid + 1` inbound, so that a reqid names its policies.
pub fn policy_ids(reqid: u32) -> [u32; 2] {
    let out = reqid.wrapping_mul(2);
    [out, out.wrapping_add(1)]
}

/// The two Protect policies of a reqid: outbound `local -> remote` and
/// inbound `remote -> local`, with the ids of [`policy_ids`].
pub fn policies(
    reqid: u32,
    local: &TrafficSelector,
    remote: &TrafficSelector,
) -> Result<[PolicyConfig; 2], KnlError> {
    let (l, lp) = prefix(local)?;
    let (r, rp) = prefix(remote)?;
    let fam = match local.address {
        TsAddress::Host(a) | TsAddress::Subnet(a, _) | TsAddress::Range(a, _) => family(a),
    };
    let proto = if local.protocol != 0 { local.protocol } else { remote.protocol };
    let rule = |id, direction| PolicyRule { id, priority: 100, reqid, direction, action: Action::Protect };
    let [out_id, in_id] = policy_ids(reqid);
    Ok([
        rule(out_id, Direction::Out).config(fam, proto, (l, lp, ports(local)), (r, rp, ports(remote))),
        rule(in_id, Direction::In).config(fam, proto, (r, rp, ports(remote)), (l, lp, ports(local))),
    ])
}

/// What a policy is apart from its match.
struct PolicyRule {
    id: u32,
    priority: u32,
    reqid: u32,
    direction: Direction,
    action: Action,
}

impl PolicyRule {
    /// The record matching `family`/`proto` from `src` to `dst`, each (address, prefix
    /// length, port range).
    fn config(
        self,
        family: u8,
        proto: u8,
        src: ([u8; 16], u8, [u16; 2]),
        dst: ([u8; 16], u8, [u16; 2]),
    ) -> PolicyConfig {
        PolicyConfig {
            id: self.id,
            priority: self.priority,
            reqid: self.reqid,
            direction: self.direction as u8,
            action: self.action as u8,
            family,
            proto,
            src: src.0,
            dst: dst.0,
            src_plen: src.1,
            dst_plen: dst.1,
            _pad: [0; 2],
            sport: src.2,
            dport: dst.2,
            _pad2: 0,
        }
    }
}

/// First policy id of the IKE bypass policies (below it: reqid-derived ids).
pub const BYPASS_POLICY_BASE: u32 = 0xffff_0000;

/// Bypass policies for IKE: UDP from and to `ports` of every address, in
/// both directions, with a priority ahead of every Protect policy.
pub fn ike_bypass_policies(addrs: &[IpAddr], ports: [u16; 2]) -> Vec<PolicyConfig> {
    let mut out = Vec::new();
    let mut id = BYPASS_POLICY_BASE;
    for a in addrs {
        let (fam, plen) = if a.is_ipv4() { (4, 32) } else { (6, 128) };
        for port in ports {
            for direction in [Direction::Out, Direction::In] {
                let (ours, any) = ((addr16(*a), plen, [port, port]), ([0; 16], 0, [0, u16::MAX]));
                let (src, dst) = match direction {
                    Direction::Out => (ours, any),
                    Direction::In => (any, ours),
                };
                let rule = PolicyRule { id, priority: 10, reqid: 0, direction, action: Action::Bypass };
                out.push(rule.config(fam, 17, src, dst));
                id = id.wrapping_add(1);
            }
        }
    }
    out
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// The SA record for one negotiated direction.
pub fn sa_config(d: &EspSaDescription, inbound: bool, reqid: u32, limits: &SaLimits) -> SaConfig {
    let mut c = SaConfig::default_zeroed();
    c.spi = d.spi;
    c.reqid = reqid;
    c.direction = if inbound { Direction::In } else { Direction::Out } as u8;
    let (mode, udp) = match d.encapsulation {
        Encapsulation::Tunnel => (SaMode::Tunnel, false),
        Encapsulation::Transport => (SaMode::Transport, false),
        Encapsulation::UdpTunnel => (SaMode::Tunnel, true),
        Encapsulation::UdpTransport => (SaMode::Transport, true),
    };
    c.mode = mode as u8;
    c.family = family(d.source.ip());
    c.flags = if udp { SA_FLAG_UDP_ENCAP } else { 0 };
    if d.esn {
        c.flags |= sadb::SA_FLAG_ESN;
    }
    if udp {
        c.encap_sport = d.source.port();
        c.encap_dport = d.destination.port();
    }
    let (cipher, key_bytes) = match d.encryption {
        EspEncryption::AesCbc(b) => (Cipher::AesCbc, b / 8),
        EspEncryption::AesGcm16(b) => (Cipher::AesGcm16, b / 8),
    };
    c.cipher = cipher as u8;
    c.cipher_key_len = u8::try_from(key_bytes).unwrap_or(0);
    let n = d.encryption_key.len().min(c.cipher_key.len());
    if let (Some(dst), Some(src)) = (c.cipher_key.get_mut(..n), d.encryption_key.get(..n)) {
        dst.copy_from_slice(src);
    }
    if let (Some(dst), Some(src)) = (c.salt.get_mut(..d.salt.len().min(4)), d.salt.get(..d.salt.len().min(4)))
    {
        dst.copy_from_slice(src);
    }
    let (integ, ilen) = match d.integrity {
        None => (Integ::None, 0u8),
        Some(EspIntegrity::HmacSha1) => (Integ::HmacSha1_96, 20),
        Some(EspIntegrity::HmacSha256) => (Integ::HmacSha256_128, 32),
        Some(EspIntegrity::HmacSha384) => (Integ::HmacSha384_192, 48),
        Some(EspIntegrity::HmacSha512) => (Integ::HmacSha512_256, 64),
    };
    c.integ = integ as u8;
    c.integ_key_len = ilen;
    let n = d.integrity_key.len().min(usize::from(ilen));
    if let (Some(dst), Some(src)) = (c.integ_key.get_mut(..n), d.integrity_key.get(..n)) {
        dst.copy_from_slice(src);
    }
    c.backend = Backend::Default as u8;
    c.dscp = 0xff;
    // replay_window = 0 turns anti-replay off (inbound; strongSwan does the same).
    c.replay_window = match (inbound, limits.replay_window) {
        (true, 0) => {
            c.flags |= sadb::SA_FLAG_NO_REPLAY;
            0
        }
        (true, w) => w,
        (false, _) => 32,
    };
    c.src = addr16(d.source.ip());
    c.dst = addr16(d.destination.ip());
    // The SA record's selectors are "ours" and "the peer's" in both directions.
    let (local, remote) =
        if inbound { (&d.destination_ts, &d.source_ts) } else { (&d.source_ts, &d.destination_ts) };
    c.ts_local = selector(local);
    c.ts_remote = selector(remote);
    // The negotiated kilobyte lifetime is a hard limit too.
    let negotiated = u64::from(d.lifetime.kilobytes).saturating_mul(1024);
    c.hard_bytes = match (limits.hard_bytes, negotiated) {
        (0, n) | (n, 0) => n,
        (a, b) => a.min(b),
    };
    c.soft_bytes = limits.soft_bytes;
    c.soft_packets = limits.soft_packets;
    c.hard_packets = limits.hard_packets;
    c.added_unix = unix_now();
    c
}

trait ZeroedExt {
    fn default_zeroed() -> Self;
}

impl ZeroedExt for SaConfig {
    fn default_zeroed() -> Self {
        bytemuck::Zeroable::zeroed()
    }
}

/// The SA database as iked uses it.
#[derive(Debug, Clone)]
pub struct SadbWriter {
    region: Arc<Region>,
    /// Inbound SPIs handed to the engine and not yet released.
    reserved: Arc<Mutex<HashSet<u32>>>,
}

impl SadbWriter {
    /// Attaches to the database at `path`, creating it when the dataplane
    /// has not yet.
    pub fn open(path: &Path) -> Result<Self, KnlError> {
        Self::open_with(path, &Capacities::default())
    }

    /// [`SadbWriter::open`], creating a missing database with `caps`.
    pub fn open_with(path: &Path, caps: &Capacities) -> Result<Self, KnlError> {
        let region = Region::open_or_create(path, caps).map_err(|e| err(path.display(), e))?;
        Ok(Self { region: Arc::new(region), reserved: Arc::default() })
    }

    /// The capacities iked creates a database with for `config`:
    /// the database's defaults (espd's too, so either daemon may create it),
    /// with windows as large as the largest configured `replay_window` (in
    /// 64-packet words).
    pub fn capacities_for(config: &crate::config::Config) -> Capacities {
        let largest = config.connections.iter().flat_map(|c| &c.children).map(|ch| ch.replay_window).max();
        let defaults = Capacities::default();
        let window = largest.unwrap_or(0).div_ceil(64).saturating_mul(64);
        Capacities { max_replay_window: window.max(defaults.max_replay_window), ..defaults }
    }

    /// Every child's `replay_window` fits the database's windows (a
    /// database espd created has its own `max_replay_window`).
    pub fn check_fits(&self, config: &crate::config::Config) -> Result<(), String> {
        let max = self.region.capacities().max_replay_window;
        for c in &config.connections {
            if let Some(ch) = c.children.iter().find(|ch| ch.replay_window > max) {
                return Err(format!(
                    "connections.{}.children.{}.replay_window: {} does not fit the SA database's windows \
                     (max_replay_window {max}; raise espd's [sadb] max_replay_window and recreate the database)",
                    c.name, ch.name, ch.replay_window
                ));
            }
        }
        Ok(())
    }

    /// The region.
    pub fn region(&self) -> &Region {
        &self.region
    }

    /// An SPI allocator for the engine: random, never 0..=255, unused in
    /// the database and not reserved by an unfinished exchange.
    pub fn spi_allocator(&self, seed: u64) -> SpiPool {
        SpiPool { kernel: self.clone(), state: seed | 1 }
    }

    /// Forgets a reserved SPI (its SA was deleted, or never installed).
    pub fn release_spi(&self, spi: u32) {
        if let Ok(mut r) = self.reserved.lock() {
            r.remove(&spi);
        }
    }

    /// Installs one SA, or updates it in place when this reqid has it
    /// already. An inbound SA of another reqid with this SPI (left by an
    /// earlier run: the SPI is ours no more) is replaced; an outbound SA of
    /// another reqid with this SPI and destination belongs to another tunnel
    /// and stays: the install is refused.
    pub fn add_sa(
        &self,
        d: &EspSaDescription,
        inbound: bool,
        reqid: u32,
        l: &SaLimits,
    ) -> Result<(), KnlError> {
        let mut c = sa_config(d, inbound, reqid, l);
        let dir = if inbound { Direction::In } else { Direction::Out };
        let key = SaKey { spi: c.spi, direction: dir, dst: Some(c.dst) };
        let result = (|| {
            let mut w = self.region.writer().map_err(|e| err("SA database lock", e))?;
            match self.region.find_sa(&key).and_then(|s| self.region.sa_entry(s)) {
                // Our own inbound SA installed at HASH(2), completed now.
                Some(old) if old.config.reqid == c.reqid => {
                    // No copy of `c`: the closure borrows it (it is wiped below).
                    w.update_sa(&key, |old| *old = c).map_err(|e| err(key, e))
                }
                // Inbound, left by an earlier run or another configuration (the
                // peer chose an SPI that is ours no more): replaced.
                Some(_) if inbound => {
                    w.del_sa(&key).map_err(|e| err(key, e))?;
                    w.add_sa(&c).map(|_| ()).map_err(|e| err(key, e))
                }
                // Outbound: the same SPI towards the same peer for another tunnel.
                // Deleting it would let one peer's choice of SPI tear that tunnel
                // down; refused instead.
                Some(other) => Err(KnlError(format!(
                    "{key} to {}: the SA of reqid {} has this SPI towards this peer already; not replaced",
                    d.destination.ip(),
                    other.config.reqid
                ))),
                None => w.add_sa(&c).map(|_| ()).map_err(|e| err(key, e)),
            }
        })();
        c.wipe_keys();
        result
    }

    /// The slot and key of an SA: inbound by its SPI, outbound by its SPI and
    /// reqid (without a reqid, no outbound SA: the SPI alone could name
    /// another tunnel's). `None` when no single live SA matches.
    fn locate(&self, spi: u32, inbound: bool, reqid: Option<u32>) -> Option<(u32, SaKey)> {
        let direction = if inbound { Direction::In } else { Direction::Out };
        if !inbound && reqid.is_none() {
            return None;
        }
        let mut found = self
            .region
            .find_sas(spi, direction)
            .into_iter()
            .filter_map(|slot| self.region.sa_entry(slot))
            .filter(|e| reqid.is_none_or(|r| e.config.reqid == r));
        let one = found.next()?;
        if found.next().is_some() {
            return None;
        }
        Some((one.slot, SaKey { spi, direction, dst: Some(one.config.dst) }))
    }

    /// RFC 3947 §5: points the outbound SA of `reqid` with this SPI at the
    /// peer's new endpoint after a NAT rebinding: the outer addresses, and the
    /// UDP encapsulation ports when it is UDP-encapsulated. Updated in place,
    /// so the sequence number and counters carry on and the dataplane never
    /// sees the SA missing. False when there is no such SA.
    pub fn move_outbound_sa(
        &self,
        spi: u32,
        reqid: u32,
        local: SocketAddr,
        remote: SocketAddr,
    ) -> Result<bool, KnlError> {
        let Some((_, key)) = self.locate(spi, false, Some(reqid)) else {
            return Ok(false);
        };
        let mut w = self.region.writer().map_err(|e| err("SA database lock", e))?;
        w.update_sa(&key, |c| {
            c.src = addr16(local.ip());
            c.dst = addr16(remote.ip());
            if c.flags & SA_FLAG_UDP_ENCAP != 0 {
                c.encap_sport = local.port();
                c.encap_dport = remote.port();
            }
        })
        .map_err(|e| err(key, e))?;
        Ok(true)
    }

    /// The UDP encapsulation ports and outer destination of an SA (outbound:
    /// of `reqid`), when it is UDP-encapsulated.
    pub fn sa_encapsulation(
        &self,
        spi: u32,
        inbound: bool,
        reqid: Option<u32>,
    ) -> Option<(u16, u16, IpAddr)> {
        let (slot, _) = self.locate(spi, inbound, reqid)?;
        let c = self.region.sa_entry(slot)?.config;
        let dst = if c.family == 6 {
            IpAddr::from(c.dst)
        } else {
            IpAddr::from(<[u8; 4]>::try_from(c.dst.get(..4)?).ok()?)
        };
        (c.flags & SA_FLAG_UDP_ENCAP != 0).then_some((c.encap_sport, c.encap_dport, dst))
    }

    /// True when an SA of this direction has this SPI (outbound: towards any
    /// peer).
    pub fn has_sa(&self, spi: u32, inbound: bool) -> bool {
        let direction = if inbound { Direction::In } else { Direction::Out };
        !self.region.find_sas(spi, direction).is_empty()
    }

    /// Removes one SA: inbound by its SPI (and `reqid` when given), outbound
    /// by its SPI and `reqid` (without one, nothing is removed: the SPI alone
    /// may be another tunnel's). Absent is not an error.
    pub fn del_sa(&self, spi: u32, inbound: bool, reqid: Option<u32>) -> Result<(), KnlError> {
        let Some((_, key)) = self.locate(spi, inbound, reqid) else {
            return Ok(());
        };
        let mut w = self.region.writer().map_err(|e| err("SA database lock", e))?;
        match w.del_sa(&key) {
            // Gone between the lookup and the lock.
            Ok(()) | Err(sadb::SadbError::NotFound { .. }) => {}
            Err(e) => return Err(err(key, e)),
        }
        w.reclaim();
        Ok(())
    }

    /// Installs the policies of a reqid unless identical ones are there.
    pub fn add_policies(&self, ps: &[PolicyConfig]) -> Result<(), KnlError> {
        let existing = self.region.list_policies();
        let mut w = self.region.writer().map_err(|e| err("SA database lock", e))?;
        let mut missing = Vec::new();
        for p in ps {
            match existing.iter().find(|e| e.config.id == p.id) {
                Some(e) if e.config == *p => {}
                Some(_) => {
                    w.del_policy(p.id).map_err(|e| err(format!("policy {}", p.id), e))?;
                    missing.push(*p);
                }
                None => missing.push(*p),
            }
        }
        if !missing.is_empty() {
            w.add_policies(&missing).map_err(|e| err("policies", e))?;
        }
        Ok(())
    }

    /// Removes the policies with these ids; absent ones are skipped.
    pub fn del_policies(&self, ids: &[u32]) -> Result<(), KnlError> {
        let existing = self.region.list_policies();
        let mut w = self.region.writer().map_err(|e| err("SA database lock", e))?;
        for id in ids {
            if existing.iter().any(|e| e.config.id == *id) {
                w.del_policy(*id).map_err(|e| err(format!("policy {id}"), e))?;
            }
        }
        Ok(())
    }

    /// The dataplane counters of one SA (named as by [`SadbWriter::del_sa`]).
    pub fn sa_stats(&self, spi: u32, inbound: bool, reqid: Option<u32>) -> Option<SaStats> {
        let (slot, _) = self.locate(spi, inbound, reqid)?;
        self.region.sa_entry(slot).map(|e| e.stats)
    }

    /// Every SA in the database: (SPI, inbound, reqid).
    pub fn list_sas(&self) -> Vec<(u32, bool, u32)> {
        self.region
            .list_sas()
            .into_iter()
            .map(|e| (e.config.spi, e.config.direction == Direction::In as u8, e.config.reqid))
            .collect()
    }

    /// What `list-sas` shows of an SA it did not install (one left by an
    /// earlier run), named as by [`SadbWriter::del_sa`].
    pub fn sa_outline(&self, spi: u32, inbound: bool, reqid: Option<u32>) -> Option<SaOutline> {
        let (slot, _) = self.locate(spi, inbound, reqid)?;
        let e = self.region.sa_entry(slot)?;
        let c = &e.config;
        let ip = |b: [u8; 16]| addr_of(b, c.family);
        Some(SaOutline {
            src: ip(c.src),
            dst: ip(c.dst),
            local_ts: traffic_selector(&c.ts_local),
            remote_ts: traffic_selector(&c.ts_remote),
            encapsulation: match (c.mode == SaMode::Tunnel as u8, c.flags & SA_FLAG_UDP_ENCAP != 0) {
                (true, false) => Encapsulation::Tunnel,
                (true, true) => Encapsulation::UdpTunnel,
                (false, false) => Encapsulation::Transport,
                (false, true) => Encapsulation::UdpTransport,
            },
            esn: c.flags & sadb::SA_FLAG_ESN != 0,
        })
    }

    /// Takes the dataplane's queued events.
    pub fn drain_events(&self) -> Vec<Event> {
        let mut out = Vec::new();
        if let Ok(mut w) = self.region.writer() {
            w.drain_events(|_, e| out.push(e));
        }
        out
    }

    /// Each dataplane worker's counters (see `sadb::counters`).
    pub fn lcore_counters(&self) -> Vec<crate::metrics::LcoreCounters> {
        self.region
            .readers()
            .into_iter()
            .map(|r| crate::metrics::LcoreCounters { lcore: r.lcore, counters: r.counters })
            .collect()
    }

    /// Dataplane traffic and drop counters summed over its lcores.
    pub fn dataplane_stats(&self) -> crate::ctl::protocol::DataplaneStats {
        use sadb::counters::{name, traffic, Traffic, TRAFFIC_BASE};
        let mut sums = vec![0u64; sadb::READER_COUNTERS];
        for r in self.region.readers() {
            for (s, c) in sums.iter_mut().zip(&r.counters) {
                *s = s.saturating_add(*c);
            }
        }
        let get = |i: usize| sums.get(i).copied().unwrap_or(0);
        let mut drops = BTreeMap::new();
        for (i, &v) in sums.iter().enumerate().take(TRAFFIC_BASE) {
            if v > 0 {
                let n = name(i);
                drops.insert(n.strip_prefix("drop-").map_or_else(|| n.clone(), str::to_owned), v);
            }
        }
        crate::ctl::protocol::DataplaneStats {
            rx_packets: get(traffic(Traffic::RxPackets)),
            tx_packets: get(traffic(Traffic::TxPackets)),
            drops,
        }
    }
}

/// Allocates inbound SPIs for the engine (see [`SadbWriter::spi_allocator`]).
#[derive(Debug)]
pub struct SpiPool {
    kernel: SadbWriter,
    state: u64,
}

impl SpiPool {
    /// xorshift64*: SPIs need to be unpredictable only against blind
    /// injection, and are checked for uniqueness; the seed is random.
    fn next(&mut self) -> u32 {
        self.state ^= self.state >> 12;
        self.state ^= self.state << 25;
        self.state ^= self.state >> 27;
        (self.state.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 32) as u32
    }
}

impl SpiAllocator for SpiPool {
    fn allocate(&mut self) -> Option<u32> {
        for _ in 0..64 {
            let spi = self.next();
            if spi < 256 || self.kernel.has_sa(spi, true) {
                continue;
            }
            let Ok(mut r) = self.kernel.reserved.lock() else {
                return None;
            };
            if r.insert(spi) {
                return Some(spi);
            }
        }
        None
    }

    fn release(&mut self, spi: u32) {
        self.kernel.release_spi(spi);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ike::engine::Lifetime;
    use std::net::SocketAddr;

    fn ts(s: &str, p: u8) -> TrafficSelector {
        let a: IpAddr = s.parse().unwrap_or(IpAddr::from([0; 4]));
        TrafficSelector { address: TsAddress::Subnet(a, p), protocol: 0, port: 0 }
    }

    /// A record's selector reads back as the engine's: a prefix, a host,
    /// a range that is no prefix, a port; IPv4 and IPv6.
    #[test]
    fn an_sa_record_s_selector_reads_back() {
        let ip = |s: &str| s.parse().unwrap_or(IpAddr::from([0; 4]));
        let range = TrafficSelector {
            address: TsAddress::Range(ip("10.0.0.1"), ip("10.0.0.6")),
            protocol: 0,
            port: 0,
        };
        let port = TrafficSelector { port: 443, protocol: 6, ..ts("10.0.0.7", 32) };
        for t in
            [ts("10.1.0.0", 16), ts("0.0.0.0", 0), ts("2001:db8::", 32), ts("2001:db8::1", 128), range, port]
        {
            assert_eq!(traffic_selector(&selector(&t)), t.normalized(), "{t:?}");
        }
    }

    fn desc(spi: u32, udp: bool) -> EspSaDescription {
        let a: SocketAddr = "198.18.0.1:4500".parse().unwrap_or_else(|_| SocketAddr::from(([0; 4], 0)));
        let b: SocketAddr = "198.18.0.2:4501".parse().unwrap_or_else(|_| SocketAddr::from(([0; 4], 0)));
        EspSaDescription {
            spi,
            encapsulation: if udp { Encapsulation::UdpTunnel } else { Encapsulation::Tunnel },
            encryption: EspEncryption::AesCbc(256),
            integrity: Some(EspIntegrity::HmacSha256),
            esn: false,
            encryption_key: zeroize::Zeroizing::new((0u8..32).collect()),
            salt: zeroize::Zeroizing::new(Vec::new()),
            integrity_key: zeroize::Zeroizing::new((100u8..132).collect()),
            lifetime: Lifetime { seconds: 3600, kilobytes: 1000 },
            source_ts: ts("198.18.1.0", 24),
            destination_ts: ts("198.19.1.0", 24),
            source: a,
            destination: b,
            nat_original: None,
        }
    }

    #[test]
    fn sa_record_carries_the_negotiated_values() {
        let limits =
            SaLimits { replay_window: 64, soft_bytes: 500_000, hard_bytes: 2_000_000, ..Default::default() };
        let c = sa_config(&desc(0x1234_5678, true), false, 7, &limits);
        assert_eq!((c.spi, c.reqid, c.direction), (0x1234_5678, 7, Direction::Out as u8));
        assert_eq!((c.mode, c.family, c.flags), (SaMode::Tunnel as u8, 4, SA_FLAG_UDP_ENCAP));
        assert_eq!((c.encap_sport, c.encap_dport), (4500, 4501));
        assert_eq!((c.cipher, c.cipher_key_len), (Cipher::AesCbc as u8, 32));
        assert_eq!(c.cipher_key.to_vec(), (0u8..32).collect::<Vec<_>>());
        assert_eq!((c.integ, c.integ_key_len), (Integ::HmacSha256_128 as u8, 32));
        assert_eq!(c.integ_key.get(..32).map(<[u8]>::to_vec), Some((100u8..132).collect::<Vec<_>>()));
        // The negotiated 1000 KiB is lower than life_bytes: it wins.
        assert_eq!((c.soft_bytes, c.hard_bytes), (500_000, 1_024_000));
        assert_eq!(c.ts_local.addr_start.get(..4), Some(&[198, 18, 1, 0][..]));
        assert_eq!(c.ts_local.addr_end.get(..4), Some(&[198, 18, 1, 255][..]));
        assert_eq!(c.ts_remote.addr_start.get(..4), Some(&[198, 19, 1, 0][..]));
        // Inbound: ours is the destination side.
        let i = sa_config(&desc(1, false), true, 7, &limits);
        assert_eq!((i.flags, i.replay_window), (0, 64));
        assert_eq!(i.ts_local.addr_start.get(..4), Some(&[198, 19, 1, 0][..]));
    }

    #[test]
    fn policies_are_mirrored_prefixes() {
        let [out, inb] =
            policies(5, &ts("198.18.1.0", 24), &ts("198.19.1.0", 24)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((out.id, inb.id, out.reqid), (10, 11, 5));
        assert_eq!(policy_ids(5), [out.id, inb.id], "the ids the manager removes them by");
        assert_eq!((out.direction, inb.direction), (Direction::Out as u8, Direction::In as u8));
        assert_eq!((out.src.get(..4), out.src_plen), (Some(&[198, 18, 1, 0][..]), 24));
        assert_eq!(
            (inb.src.get(..4), inb.dst.get(..4)),
            (Some(&[198, 19, 1, 0][..]), Some(&[198, 18, 1, 0][..]))
        );
        let range = TrafficSelector {
            address: TsAddress::Range(IpAddr::from([10, 0, 0, 1]), IpAddr::from([10, 0, 0, 5])),
            protocol: 0,
            port: 0,
        };
        assert!(policies(5, &range, &ts("198.19.1.0", 24)).is_err());
    }

    /// A writer on a fresh SA database file for test `tag` (the test removes the file).
    fn scratch(tag: &str) -> (SadbWriter, std::path::PathBuf) {
        let path = std::env::temp_dir().join(format!("iked-sadb-writer-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let k = SadbWriter::open(&path).unwrap_or_else(|e| panic!("{e}"));
        (k, path)
    }

    #[test]
    fn install_update_delete_in_a_real_region() {
        let (k, path) = scratch("install");
        let d = desc(0x4242, false);
        k.add_sa(&d, true, 3, &SaLimits { replay_window: 64, ..Default::default() })
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(k.has_sa(0x4242, true));
        // A second install of the same SPI updates in place.
        k.add_sa(&d, true, 3, &SaLimits { replay_window: 128, ..Default::default() })
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(k.list_sas(), vec![(0x4242, true, 3)]);
        let ps = policies(3, &d.destination_ts, &d.source_ts).unwrap_or_else(|e| panic!("{e}"));
        k.add_policies(&ps).unwrap_or_else(|e| panic!("{e}"));
        k.add_policies(&ps).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(k.region().list_policies().len(), 2);
        let mut pool = k.spi_allocator(99);
        let spis: Vec<u32> = (0..100).filter_map(|_| pool.allocate()).collect();
        assert_eq!(spis.len(), 100);
        assert!(spis.iter().all(|&s| s >= 256 && s != 0x4242));
        assert_eq!(spis.iter().collect::<HashSet<_>>().len(), 100, "SPIs are unique");
        // An inbound SA left with another reqid (an earlier run) is replaced, not refused:
        // the SPI is ours.
        let limits = SaLimits { replay_window: 64, ..Default::default() };
        k.add_sa(&desc(0x5151, false), true, 4, &limits).unwrap_or_else(|e| panic!("{e}"));
        k.add_sa(&desc(0x5151, false), true, 9, &limits).unwrap_or_else(|e| panic!("{e}"));
        assert!(k.list_sas().contains(&(0x5151, true, 9)));
        k.del_sa(0x5151, true, None).unwrap_or_else(|e| panic!("{e}"));
        k.del_sa(0x4242, true, None).unwrap_or_else(|e| panic!("{e}"));
        k.del_policies(&[6, 7]).unwrap_or_else(|e| panic!("{e}"));
        assert!(k.list_sas().is_empty() && k.region().list_policies().is_empty());
        let _ = std::fs::remove_file(&path);
    }

    /// An SA negotiated with Extended Sequence Numbers is installed with the
    /// record's ESN flag, both directions; one without, without it.
    #[test]
    fn esn_is_installed_as_the_record_flag() {
        for inbound in [true, false] {
            let mut d = desc(0x4444, false);
            let c = sa_config(&d, inbound, 3, &SaLimits::default());
            assert_eq!(c.flags & sadb::SA_FLAG_ESN, 0, "inbound {inbound}");
            d.esn = true;
            let c = sa_config(&d, inbound, 3, &SaLimits::default());
            assert_eq!(c.flags & sadb::SA_FLAG_ESN, sadb::SA_FLAG_ESN, "inbound {inbound}");
        }
    }

    /// `replay_window = 0` installs an inbound SA without anti-replay (the
    /// flag, window 0), as the database requires; a window the database
    /// cannot keep is named at start, and a database iked creates is sized
    /// for the largest configured one.
    #[test]
    fn replay_windows_off_and_too_large() {
        let c = sa_config(&desc(0x4343, false), true, 3, &SaLimits::default());
        assert_eq!((c.flags & sadb::SA_FLAG_NO_REPLAY, c.replay_window), (sadb::SA_FLAG_NO_REPLAY, 0));
        let c =
            sa_config(&desc(0x4343, false), true, 3, &SaLimits { replay_window: 1024, ..Default::default() });
        assert_eq!((c.flags & sadb::SA_FLAG_NO_REPLAY, c.replay_window), (0, 1024));
        let (k, path) = scratch("replay");
        k.add_sa(&desc(0x4343, false), true, 3, &SaLimits::default()).unwrap_or_else(|e| panic!("{e}"));
        let text = |w: u32| {
            format!(
                "[connections.a]\nremote_addrs = \"198.18.0.2\"\nlocal.auth = \"psk\"\nremote.auth = \"psk\"\n\
                 [connections.a.children.net]\nremote_ts = \"198.19.0.0/16\"\nreplay_window = {w}\n\
                 [secrets.ike-a]\nsecret = \"x\"\n"
            )
        };
        let cfg =
            |w: u32| crate::config::parse(&text(w), Path::new("t.toml")).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(k.check_fits(&cfg(1024)), Ok(()));
        assert_eq!(
            k.check_fits(&cfg(4000)),
            Err("connections.a.children.net.replay_window: 4000 does not fit the SA database's windows \
                 (max_replay_window 1024; raise espd's [sadb] max_replay_window and recreate the database)"
                .to_owned())
        );
        assert_eq!(SadbWriter::capacities_for(&cfg(4000)).max_replay_window, 4032);
        assert_eq!(SadbWriter::capacities_for(&cfg(0)).max_replay_window, 1024);
        let _ = std::fs::remove_file(&path);
    }

    /// A NAT rebinding moves an installed outbound UDP-encapsulated SA to the
    /// peer's new port and address in place; an inbound SA is not touched.
    #[test]
    fn outbound_sa_follows_a_nat_rebinding() {
        let (k, path) = scratch("move");
        let out = desc(0x6161, true);
        k.add_sa(&out, false, 5, &SaLimits::default()).unwrap_or_else(|e| panic!("{e}"));
        k.add_sa(&desc(0x6262, true), true, 5, &SaLimits::default()).unwrap_or_else(|e| panic!("{e}"));
        let before = k.sa_encapsulation(0x6161, false, Some(5));
        assert_eq!(before, Some((out.source.port(), out.destination.port(), out.destination.ip())));
        let local: SocketAddr = "198.18.0.1:4500".parse().unwrap_or_else(|e| panic!("{e}"));
        let moved: SocketAddr = "198.18.9.9:61000".parse().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(k.move_outbound_sa(0x6161, 5, local, moved), Ok(true));
        assert_eq!(k.sa_encapsulation(0x6161, false, Some(5)), Some((4500, 61000, moved.ip())));
        assert_eq!(k.list_sas().len(), 2, "moved in place, not added");
        // Unknown SPI, or another reqid's: nothing to move.
        assert_eq!(k.move_outbound_sa(0x7777, 5, local, moved), Ok(false));
        assert_eq!(k.move_outbound_sa(0x6161, 6, local, moved), Ok(false));
        // The inbound SA of the same pair is untouched (its SPI is ours).
        assert_eq!(k.move_outbound_sa(0x6262, 5, local, moved), Ok(false));
        let _ = std::fs::remove_file(&path);
    }

    /// AES-192 (`aes192gcm16`, `aes192-sha256`): the record carries the 24-byte key (and the
    /// GCM salt) and the SA database accepts it.
    #[test]
    fn aes192_sas_install_in_a_real_region() {
        let (k, path) = scratch("aes192");
        let limits = SaLimits { replay_window: 64, ..Default::default() };
        let mut gcm = desc(0x1920, false);
        gcm.encryption = EspEncryption::AesGcm16(192);
        gcm.integrity = None;
        gcm.encryption_key = zeroize::Zeroizing::new((0u8..24).collect());
        gcm.salt = zeroize::Zeroizing::new(vec![0xa1, 0xa2, 0xa3, 0xa4]);
        gcm.integrity_key = zeroize::Zeroizing::new(Vec::new());
        let mut cbc = desc(0x1921, false);
        cbc.encryption = EspEncryption::AesCbc(192);
        cbc.encryption_key = zeroize::Zeroizing::new((0u8..24).collect());
        for (d, cipher) in [(&gcm, Cipher::AesGcm16), (&cbc, Cipher::AesCbc)] {
            let c = sa_config(d, true, 3, &limits);
            assert_eq!((c.cipher, c.cipher_key_len), (cipher as u8, 24));
            assert_eq!(c.cipher_key.get(..24).map(<[u8]>::to_vec), Some((0u8..24).collect::<Vec<_>>()));
            assert_eq!(c.cipher_key.get(24..), Some(&[0u8; 8][..]), "nothing past the key");
            k.add_sa(d, true, 3, &limits).unwrap_or_else(|e| panic!("{cipher:?}: {e}"));
            assert!(k.has_sa(d.spi, true));
        }
        assert_eq!(sa_config(&gcm, true, 3, &limits).salt, [0xa1, 0xa2, 0xa3, 0xa4]);
        let mut lens: Vec<(u32, u8)> =
            k.region().list_sas().iter().map(|e| (e.config.spi, e.config.cipher_key_len)).collect();
        lens.sort_unstable();
        assert_eq!(lens, vec![(0x1920, 24), (0x1921, 24)]);
        let _ = std::fs::remove_file(&path);
    }

    /// Two tunnels whose peers chose the same outbound SPI: both SAs are
    /// installed, each found by its reqid, and removing or moving one leaves
    /// the other. The same SPI towards the same peer for a third reqid is
    /// refused and removes nothing; a delete without a reqid removes nothing.
    #[test]
    fn peers_sharing_an_outbound_spi_keep_their_own_sas() {
        let (k, path) = scratch("spi");
        let to = |ip: &str| -> SocketAddr { format!("{ip}:4500").parse().unwrap_or_else(|e| panic!("{e}")) };
        let mut a = desc(0x0ddb_a115, false);
        a.destination = to("198.18.0.10");
        let mut b = desc(0x0ddb_a115, false);
        b.destination = to("198.18.0.20");
        b.encryption_key = zeroize::Zeroizing::new((50u8..82).collect());
        let l = SaLimits::default();
        k.add_sa(&a, false, 10, &l).unwrap_or_else(|e| panic!("{e}"));
        k.add_sa(&b, false, 20, &l).unwrap_or_else(|e| panic!("{e}"));
        let mut listed = k.list_sas();
        listed.sort_unstable();
        assert_eq!(listed, vec![(0x0ddb_a115, false, 10), (0x0ddb_a115, false, 20)]);
        // A's peer again, for another tunnel: refused; A and B stay.
        let e = k.add_sa(&a, false, 30, &l).err().unwrap_or_else(|| panic!("a duplicate was installed"));
        assert!(e.0.contains("reqid 10") && e.0.contains("198.18.0.10"), "{e}");
        assert_eq!(k.list_sas().len(), 2);
        // Re-installing A for its own reqid updates it in place.
        k.add_sa(&a, false, 10, &l).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(k.list_sas().len(), 2);
        // Without a reqid the SPI names no outbound SA.
        k.del_sa(0x0ddb_a115, false, None).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(k.list_sas().len(), 2);
        assert!(k.sa_stats(0x0ddb_a115, false, None).is_none());
        assert!(k.sa_stats(0x0ddb_a115, false, Some(20)).is_some());
        // B's peer moves; A stays where it was.
        let local = to("198.18.0.1");
        assert_eq!(k.move_outbound_sa(0x0ddb_a115, 20, local, to("198.18.0.21")), Ok(true));
        let dst_of =
            |reqid: u32| k.region().list_sas().iter().find(|e| e.config.reqid == reqid).map(|e| e.config.dst);
        assert_eq!(dst_of(10).and_then(|d| d.get(..4).map(<[u8]>::to_vec)), Some(vec![198, 18, 0, 10]));
        assert_eq!(dst_of(20).and_then(|d| d.get(..4).map(<[u8]>::to_vec)), Some(vec![198, 18, 0, 21]));
        // Removing A leaves B with its own key.
        k.del_sa(0x0ddb_a115, false, Some(10)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(k.list_sas(), vec![(0x0ddb_a115, false, 20)]);
        let key_b = k.region().list_sas().first().map(|e| e.config.cipher_key.get(..32).map(<[u8]>::to_vec));
        assert_eq!(key_b, Some(Some((50u8..82).collect::<Vec<_>>())));
        k.del_sa(0x0ddb_a115, false, Some(20)).unwrap_or_else(|e| panic!("{e}"));
        assert!(k.list_sas().is_empty());
        let _ = std::fs::remove_file(&path);
    }
}
