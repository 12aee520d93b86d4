//! SA contexts: the ESP engine's runtime SA, built from an SA database record when an lcore
//! first meets the SA (or its record's version changes), and cached per lcore by slot.
//! Building expands keys and allocates; using does neither.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::atomic::Ordering;

use esp::crypto::{
    AesCounterIvSource, CipherAlgorithm, CryptoBackend, CryptoParams, CryptoRunner, IntegrityAlgorithm,
};
use esp::sa::{DfMode, DscpMode, EspMode, IpPrefix, OuterHeader, TrafficSelector, TunnelEndpoints, UdpEncap};
use esp::{DropReason, InboundSa, OutboundSa, WarmLevel};

use crate::counters::{gw_drop, GwDrop};
use sadb::{
    Cipher, Direction, Integ, Selector, SA_FLAG_DF, SA_FLAG_ESN, SA_FLAG_NO_REPLAY, SA_FLAG_UDP_ENCAP,
};
use zeroize::Zeroizing;

/// Why an SA record could not become a context (the SA's packets are dropped and counted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildError(pub String);

fn ip_of(a: &[u8; 16], family: u8) -> IpAddr {
    if family == 4 {
        IpAddr::V4(Ipv4Addr::new(a[0], a[1], a[2], a[3]))
    } else {
        IpAddr::V6(Ipv6Addr::from(*a))
    }
}

/// The smallest set of prefixes covering `[lo, hi]` in a `bits`-wide space.
pub fn range_to_prefixes(mut lo: u128, hi: u128, bits: u32) -> Vec<(u128, u8)> {
    let mut out = Vec::new();
    if lo > hi {
        return out;
    }
    loop {
        // Largest aligned block starting at lo that stays within hi.
        let mut size = if lo == 0 { bits } else { lo.trailing_zeros().min(bits) };
        while size > 0 && (size >= 128 || lo + ((1u128 << size) - 1) > hi) {
            if size == bits && lo == 0 && hi == (u128::MAX >> (128 - bits)) {
                break;
            }
            size -= 1;
        }
        out.push((lo, (bits - size) as u8));
        let last = if size >= 128 { u128::MAX } else { lo + ((1u128 << size) - 1) };
        if last >= hi {
            return out;
        }
        lo = last + 1;
    }
}

fn prefixes(sel: &Selector) -> Vec<IpPrefix> {
    let (bits, lo, hi) = if sel.family == 4 {
        let f = |a: &[u8; 16]| u128::from(u32::from_be_bytes([a[0], a[1], a[2], a[3]]));
        (32, f(&sel.addr_start), f(&sel.addr_end))
    } else {
        (128, u128::from_be_bytes(sel.addr_start), u128::from_be_bytes(sel.addr_end))
    };
    range_to_prefixes(lo, hi, bits)
        .into_iter()
        .map(|(v, len)| IpPrefix {
            addr: if sel.family == 4 {
                IpAddr::V4(Ipv4Addr::from(v as u32))
            } else {
                IpAddr::V6(Ipv6Addr::from(v))
            },
            len,
        })
        .collect()
}

/// Inbound tunnel selectors (RFC 4301 §5.2): inner source in the peer's selector, inner
/// destination in ours. Unset selectors mean any.
fn inbound_selectors(c: &sadb::SaConfig) -> Vec<TrafficSelector> {
    let (local, remote) = (&c.ts_local, &c.ts_remote);
    if local.family == 0 && remote.family == 0 {
        return Vec::new();
    }
    let any = |fam: u8| vec![IpPrefix::any(fam == 6)];
    let fam = if remote.family != 0 { remote.family } else { local.family };
    let srcs = if remote.family == 0 { any(fam) } else { prefixes(remote) };
    let dsts = if local.family == 0 { any(fam) } else { prefixes(local) };
    let proto =
        if remote.proto != 0 { Some(remote.proto) } else { (local.proto != 0).then_some(local.proto) };
    let ports = |s: &Selector| if s.family == 0 { (0, u16::MAX) } else { (s.port_start, s.port_end) };
    let mut out = Vec::with_capacity(srcs.len() * dsts.len());
    for s in &srcs {
        for d in &dsts {
            out.push(TrafficSelector {
                src: *s,
                dst: *d,
                protocol: proto,
                src_ports: ports(remote),
                dst_ports: ports(local),
            });
        }
    }
    out
}

/// Whether a selector's address range holds `a` (both in the record's 16-byte form, where
/// an IPv4 address fills the first four bytes, so byte order is address order). An unset
/// selector holds everything.
fn range_holds(sel: &Selector, a: &[u8; 16]) -> bool {
    sel.family == 0 || (sel.addr_start <= *a && *a <= sel.addr_end)
}

/// Inbound transport selectors (RFC 4301 §5.2). The packet rebuilt after decapsulation keeps
/// the outer header, so its source must be the SA's peer endpoint and its destination ours;
/// protocol and ports are the negotiated selectors'. The endpoints must lie in the
/// negotiated address ranges: an SA that could carry nothing it was negotiated for is
/// refused. With UDP encapsulation a NAT may rewrite the peer's address on the way (the
/// negotiated addresses are then the original ones, RFC 3947 §5.2, and the peer's address
/// may change with its NAT mapping), so the source address is not pinned and the endpoints
/// are not compared with the negotiated ranges; the destination, protocol and ports are
/// checked all the same.
fn transport_selectors(c: &sadb::SaConfig) -> Result<Vec<TrafficSelector>, String> {
    let (local, remote) = (&c.ts_local, &c.ts_remote);
    let v6 = c.family == 6;
    for (name, sel) in [("ts_local", local), ("ts_remote", remote)] {
        if sel.family != 0 && sel.family != c.family {
            return Err(format!("{name} is IPv{} in an IPv{} SA", sel.family, c.family));
        }
    }
    let udp = c.flags & SA_FLAG_UDP_ENCAP != 0;
    if !udp {
        if !range_holds(remote, &c.src) {
            return Err(format!(
                "transport mode: the peer {} is outside the negotiated remote addresses",
                ip_of(&c.src, c.family)
            ));
        }
        if !range_holds(local, &c.dst) {
            return Err(format!(
                "transport mode: our address {} is outside the negotiated local addresses",
                ip_of(&c.dst, c.family)
            ));
        }
    }
    let host = |a: &[u8; 16]| IpPrefix { addr: ip_of(a, c.family), len: if v6 { 128 } else { 32 } };
    let proto =
        if remote.proto != 0 { Some(remote.proto) } else { (local.proto != 0).then_some(local.proto) };
    let ports = |s: &Selector| if s.family == 0 { (0, u16::MAX) } else { (s.port_start, s.port_end) };
    Ok(vec![TrafficSelector {
        src: if udp { IpPrefix::any(v6) } else { host(&c.src) },
        dst: host(&c.dst),
        protocol: proto,
        src_ports: ports(remote),
        dst_ports: ports(local),
    }])
}

/// The engine's configuration of an SA record.
pub fn engine_config(c: &sadb::SaConfig) -> Result<esp::SaConfig, BuildError> {
    let bad = |m: &str| BuildError(format!("SPI {:#010x}: {m}", c.spi));
    let cipher = match (Cipher::from_code(c.cipher), c.cipher_key_len) {
        (Some(Cipher::AesGcm16), 16) => CipherAlgorithm::AesGcm128,
        (Some(Cipher::AesGcm16), 24) => CipherAlgorithm::AesGcm192,
        (Some(Cipher::AesGcm16), 32) => CipherAlgorithm::AesGcm256,
        (Some(Cipher::AesCbc), 16) => CipherAlgorithm::AesCbc128,
        (Some(Cipher::AesCbc), 24) => CipherAlgorithm::AesCbc192,
        (Some(Cipher::AesCbc), 32) => CipherAlgorithm::AesCbc256,
        (Some(Cipher::Null), 0) => CipherAlgorithm::Null,
        _ => return Err(bad("unsupported cipher or key length")),
    };
    let integrity = match Integ::from_code(c.integ) {
        Some(Integ::None) => IntegrityAlgorithm::None,
        Some(Integ::HmacSha1_96) => IntegrityAlgorithm::HmacSha1_96,
        Some(Integ::HmacSha256_128) => IntegrityAlgorithm::HmacSha256_128,
        Some(Integ::HmacSha384_192) => IntegrityAlgorithm::HmacSha384_192,
        Some(Integ::HmacSha512_256) => IntegrityAlgorithm::HmacSha512_256,
        None => return Err(bad("unknown integrity algorithm")),
    };
    let klen = usize::from(c.cipher_key_len).min(c.cipher_key.len());
    // Key || salt (RFC 4106 §8.1), allocated at its final size: a `Vec` that grows frees its
    // old buffer, key included, without wiping it.
    let salt: &[u8] = if cipher.is_aead() { &c.salt } else { &[] };
    let mut cipher_key = Zeroizing::new(Vec::with_capacity(klen + salt.len()));
    cipher_key.extend_from_slice(&c.cipher_key[..klen]);
    cipher_key.extend_from_slice(salt);
    let ilen = usize::from(c.integ_key_len).min(c.integ_key.len());
    let crypto = CryptoParams {
        cipher,
        integrity,
        cipher_key,
        auth_key: Zeroizing::new(c.integ_key[..ilen].to_vec()),
    };
    let mode = match sadb::SaMode::from_code(c.mode) {
        Some(sadb::SaMode::Tunnel) => {
            EspMode::Tunnel(TunnelEndpoints { src: ip_of(&c.src, c.family), dst: ip_of(&c.dst, c.family) })
        }
        Some(sadb::SaMode::Transport) => EspMode::Transport,
        None => return Err(bad("unknown mode")),
    };
    let mut cfg = esp::SaConfig::new(c.spi, crypto, mode);
    cfg.esn = c.flags & SA_FLAG_ESN != 0;
    cfg.replay_window = if c.flags & SA_FLAG_NO_REPLAY != 0 { 0 } else { c.replay_window };
    if c.flags & SA_FLAG_UDP_ENCAP != 0 {
        // The record names the ports as its packets carry them (an inbound SA's source port
        // is the peer's, possibly a NAT's mapping); the engine's are ours and the peer's.
        let inbound = Direction::from_code(c.direction) == Some(Direction::In);
        let (ours, peers) =
            if inbound { (c.encap_dport, c.encap_sport) } else { (c.encap_sport, c.encap_dport) };
        cfg.udp_encap = Some(UdpEncap { src_port: ours, dst_port: peers });
    }
    cfg.outer = OuterHeader {
        ttl: if c.ttl == 0 { 64 } else { c.ttl },
        df: if c.flags & SA_FLAG_DF != 0 { DfMode::Set } else { DfMode::Copy },
        dscp: if c.dscp == 0xff { DscpMode::Copy } else { DscpMode::Set(c.dscp & 0x3f) },
        ..OuterHeader::default()
    };
    if Direction::from_code(c.direction) == Some(Direction::In) {
        cfg.selectors = match cfg.mode {
            EspMode::Tunnel(_) => inbound_selectors(c),
            EspMode::Transport => transport_selectors(c).map_err(|m| bad(&m))?,
        };
    }
    Ok(cfg)
}

/// One lcore's crypto backends.
pub struct Backends {
    rust: esp::crypto::rust::RustBackend,
    ipsec_mb: Option<esp::crypto::ipsec_mb::IpsecMbBackend>,
    /// Backend for SAs whose record says "default".
    prefer_ipsec_mb: bool,
}

impl std::fmt::Debug for Backends {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Backends").field("ipsec_mb", &self.ipsec_mb.is_some()).finish()
    }
}

impl Backends {
    /// Backends for one lcore; ipsec-mb when the CPU and library allow it.
    pub fn new(prefer_ipsec_mb: bool) -> Backends {
        Backends {
            rust: esp::crypto::rust::RustBackend,
            ipsec_mb: esp::crypto::ipsec_mb::IpsecMbBackend::new().ok(),
            prefer_ipsec_mb,
        }
    }

    /// The crypto runner of the lcore these backends belong to: ipsec-mb's, with a manager of
    /// its own, when the library is usable (it runs the Rust backend's sessions through
    /// their own code too), the per-session runner otherwise.
    pub fn runner(&self) -> Box<dyn CryptoRunner> {
        match self.ipsec_mb.as_ref().map(|mb| mb.runner()) {
            Some(Ok(r)) => Box::new(r),
            _ => Box::new(esp::crypto::PerSessionRunner),
        }
    }

    fn pick(&self, code: u8) -> &dyn CryptoBackend {
        let want_mb = match sadb::Backend::from_code(code) {
            Some(sadb::Backend::IpsecMb) => true,
            Some(sadb::Backend::Rust) => false,
            _ => self.prefer_ipsec_mb,
        };
        match (&self.ipsec_mb, want_mb) {
            (Some(mb), true) => mb,
            _ => &self.rust,
        }
    }
}

/// A runtime SA of either direction.
#[derive(Debug)]
pub enum Ctx {
    /// Decapsulates.
    In(InboundSa),
    /// Encapsulates.
    Out(OutboundSa),
}

/// A context's engine SA of one direction ([`Table`] reaches both through it).
trait Side: Sized {
    fn of(ctx: &Ctx) -> Option<&Self>;
    fn of_mut(ctx: &mut Ctx) -> Option<&mut Self>;
}

impl Side for OutboundSa {
    fn of(ctx: &Ctx) -> Option<&Self> {
        match ctx {
            Ctx::Out(sa) => Some(sa),
            Ctx::In(_) => None,
        }
    }
    fn of_mut(ctx: &mut Ctx) -> Option<&mut Self> {
        match ctx {
            Ctx::Out(sa) => Some(sa),
            Ctx::In(_) => None,
        }
    }
}

impl Side for InboundSa {
    fn of(ctx: &Ctx) -> Option<&Self> {
        match ctx {
            Ctx::In(sa) => Some(sa),
            Ctx::Out(_) => None,
        }
    }
    fn of_mut(ctx: &mut Ctx) -> Option<&mut Self> {
        match ctx {
            Ctx::In(sa) => Some(sa),
            Ctx::Out(_) => None,
        }
    }
}

/// A cached context and the record version it was built from.
#[derive(Debug)]
pub struct Entry {
    /// The configuration version (`Reader::sa_version`).
    pub version: u32,
    /// The context.
    pub ctx: Ctx,
    /// ESN in use (outbound sequence reservation).
    pub esn: bool,
    /// Lifetimes from the record.
    pub soft_bytes: u64,
    /// Hard byte lifetime.
    pub hard_bytes: u64,
    /// Soft packet lifetime.
    pub soft_packets: u64,
    /// Hard packet lifetime.
    pub hard_packets: u64,
    /// The SA's reqid.
    pub reqid: u32,
    /// The SA's SPI.
    pub spi: u32,
    /// Tunnel mode: the outer destination (the peer).
    pub peer: Option<IpAddr>,
    /// Outbound: the last sequence number this lcore has reserved in the region (for a run
    /// of packets of this SA in a burst, so the shared counter is written once per run, and
    /// the numbers on the wire stay dense). 0: none yet.
    pub reserved_end: u64,
    /// Outbound tunnel: the next hop towards the peer (MAC, port index) and the neighbour
    /// table's generation it was resolved at, so the route and neighbour lookups run once,
    /// not per packet.
    pub via: Option<(crate::net::Mac, usize, u64)>,
    /// The region's change counter when the version was last checked ([`SaCache::get_at`]);
    /// `u64::MAX`: never.
    pub checked: u64,
}

/// Builds a context from a record.
pub fn build(c: &sadb::SaConfig, version: u32, backends: &Backends) -> Result<Entry, BuildError> {
    let cfg = engine_config(c)?;
    let make = |backend: &dyn CryptoBackend| -> Result<Ctx, BuildError> {
        match Direction::from_code(c.direction) {
            Some(Direction::In) => {
                Ok(Ctx::In(InboundSa::new(&cfg, backend).map_err(|e| BuildError(format!("{e:?}")))?))
            }
            Some(Direction::Out) => {
                let iv = AesCounterIvSource::from_system_rng()
                    .ok_or_else(|| BuildError("no system randomness for IVs".into()))?;
                Ok(Ctx::Out(
                    OutboundSa::new(&cfg, backend, Box::new(iv)).map_err(|e| BuildError(format!("{e:?}")))?,
                ))
            }
            None => Err(BuildError("unknown direction".into())),
        }
    };
    // An SA that leaves the choice to the dataplane falls back to the Rust backend for what
    // ipsec-mb does not do (NULL encryption); one that names its backend gets only that.
    let ctx = match make(backends.pick(c.backend)) {
        Err(_) if sadb::Backend::from_code(c.backend) == Some(sadb::Backend::Default) => {
            make(&backends.rust)?
        }
        other => other?,
    };
    Ok(Entry {
        version,
        ctx,
        esn: cfg.esn,
        soft_bytes: c.soft_bytes,
        hard_bytes: c.hard_bytes,
        soft_packets: c.soft_packets,
        hard_packets: c.hard_packets,
        reqid: c.reqid,
        spi: c.spi,
        peer: match cfg.mode {
            EspMode::Tunnel(t) => Some(t.dst),
            EspMode::Transport => None,
        },
        reserved_end: 0,
        via: None,
        checked: u64::MAX,
    })
}

/// [`SaCache::warm`] walks a burst's SAs once an lcore has built contexts in more slots
/// than this. Measured (AES-128-GCM, 64 B): at 1,000 SAs, whose contexts (some 2 KiB each
/// with their sessions and keys) the caches still mostly hold, the walk cost more than it
/// saved; at 10,000 it gained 30 to 50 %.
pub const WARM_FROM: u32 = 4096;

/// One lcore's contexts, by SA slot. A slot's context is rebuilt when the record's version
/// changes (a rekeyed or updated SA, or a reused slot).
#[derive(Debug)]
pub struct SaCache {
    entries: Vec<Option<Box<Entry>>>,
    /// Slots that have held a context (a reused slot counts once).
    built_slots: u32,
    /// Contexts built (for statistics and tests).
    pub builds: u64,
}

impl SaCache {
    /// An empty cache for a region of `sas` slots.
    pub fn new(sas: u32) -> SaCache {
        SaCache { entries: (0..sas).map(|_| None).collect(), built_slots: 0, builds: 0 }
    }

    /// The context of `slot`, built or rebuilt as needed; `None` if the SA is gone or its
    /// record cannot be used.
    pub fn get(&mut self, reader: &sadb::Reader, backends: &Backends, slot: u32) -> Option<&mut Entry> {
        let version = reader.sa_version(slot);
        let fresh = matches!(self.entries.get(slot as usize), Some(Some(e)) if e.version == version);
        if !fresh {
            let (mut rec, v) = reader.read_sa(slot)?;
            let built = build(&rec, v, backends);
            // The crypto sessions hold their own (wiped) copies of the keys; this stack copy
            // of the record is wiped whether or not the build succeeded.
            rec.wipe_keys();
            let entry = built.ok()?;
            self.builds += 1;
            let cell = self.entries.get_mut(slot as usize)?;
            self.built_slots += u32::from(cell.is_none());
            *cell = Some(Box::new(entry));
        }
        self.entries.get_mut(slot as usize)?.as_deref_mut()
    }

    /// [`SaCache::get`] for a burst that read the region's change counter as `changes`: a
    /// context already checked at that value is used without reading the record's version
    /// again (every committed write moves the counter, so nothing it was built from has
    /// changed since), so a burst reads each SA's slot header at most once.
    pub fn get_at(
        &mut self,
        reader: &sadb::Reader,
        backends: &Backends,
        slot: u32,
        changes: u64,
    ) -> Option<&mut Entry> {
        if matches!(self.entries.get(slot as usize), Some(Some(e)) if e.checked == changes) {
            return self.entries.get_mut(slot as usize)?.as_deref_mut();
        }
        let e = self.get(reader, backends, slot)?;
        e.checked = changes;
        Some(e)
    }

    /// Loads what a burst's packets of SAs `slots` will read into the cache, one level at a
    /// time for the whole burst: the region's hot lines and this table's cells; the
    /// contexts; their crypto sessions (and the inbound windows' edges); the sessions'
    /// state; the key lines. Each level is a pointer the next one follows, so walking one
    /// level for all packets before the next overlaps the misses of the burst instead of
    /// taking them one after another in the stages. Only once this lcore has built contexts
    /// in more than [`WARM_FROM`] slots: fewer stay in the cache, and the walk would cost
    /// more than it saves.
    pub fn warm(&self, reader: &sadb::Reader, slots: impl Iterator<Item = u32> + Clone) {
        if !self.warms() {
            return;
        }
        let entry = |s: u32| self.entries.get(s as usize).and_then(|e| e.as_deref());
        for s in slots.clone() {
            if let Some(cell) = self.entries.get(s as usize) {
                warm::touch(cell);
                // Shared memory other processes write: an atomic load, not a raw touch.
                let _ = reader.hot(s).flags.load(Ordering::Relaxed);
            }
        }
        for e in slots.clone().filter_map(entry) {
            warm::all(e);
        }
        for level in WarmLevel::ALL {
            for e in slots.clone().filter_map(entry) {
                match &e.ctx {
                    Ctx::Out(sa) => sa.warm(level),
                    Ctx::In(sa) => sa.warm(level),
                }
            }
        }
    }

    /// Whether [`Self::warm`] walks bursts: more than [`WARM_FROM`] slots have had contexts.
    pub fn warms(&self) -> bool {
        self.built_slots > WARM_FROM
    }

    /// The context of `slot` as last built, without checking the record's version.
    pub fn peek(&self, slot: u32) -> Option<&Entry> {
        self.entries.get(slot as usize)?.as_deref()
    }

    /// The context of `slot` as last built, to update, without checking the record's version.
    pub fn peek_mut(&mut self, slot: u32) -> Option<&mut Entry> {
        self.entries.get_mut(slot as usize)?.as_deref_mut()
    }
}

/// One lcore's SAs as the engine's mixed bursts see them ([`esp::SaTable`]), keyed by slot:
/// contexts built or rebuilt as the records change, SAs past their hard lifetime refused,
/// outbound sequence numbers reserved in the region once per run of packets of one SA,
/// inbound windows brought up to the region's right edge (kept there across restarts).
#[derive(Debug)]
pub struct Table<'a> {
    cache: &'a mut SaCache,
    reader: &'a sadb::Reader,
    backends: &'a Backends,
    /// The slot of the previous packet, checked already in this burst.
    last: Option<u32>,
    /// The region's change counter, read at the start of the burst.
    changes: u64,
}

impl<'a> Table<'a> {
    /// The table for one burst, which read the region's change counter as `changes`.
    pub fn new(
        cache: &'a mut SaCache,
        reader: &'a sadb::Reader,
        backends: &'a Backends,
        changes: u64,
    ) -> Self {
        Table { cache, reader, backends, last: None, changes }
    }

    /// The context of `slot` for its next packet, or why there is none, and whether the
    /// packet starts a run of packets of that SA. The hard-lifetime flag and the record's
    /// version are checked once per run of packets of one SA in a burst: a burst is one
    /// instant of the SA's life.
    fn entry(&mut self, key: usize) -> Result<(&mut Entry, bool), DropReason> {
        let slot = u32::try_from(key).map_err(|_| DropReason::NoSa)?;
        if self.last == Some(slot) {
            return self.cache.peek_mut(slot).map(|e| (e, false)).ok_or(DropReason::NoSa);
        }
        self.last = None;
        if self.reader.hot(slot).flags.load(Ordering::Relaxed) & sadb::HOT_FLAG_HARD_FIRED != 0 {
            self.reader.count(gw_drop(GwDrop::SaExpired), 1);
            return Err(DropReason::NoSa);
        }
        let e = self.cache.get_at(self.reader, self.backends, slot, self.changes).ok_or(DropReason::NoSa)?;
        self.last = Some(slot);
        Ok((e, true))
    }

    fn sa<S: Side>(&self, key: usize) -> Option<&S> {
        S::of(&self.cache.peek(u32::try_from(key).ok()?)?.ctx)
    }

    fn sa_mut<S: Side>(&mut self, key: usize) -> Option<&mut S> {
        S::of_mut(&mut self.cache.peek_mut(u32::try_from(key).ok()?)?.ctx)
    }
}

impl esp::SaTable<OutboundSa> for Table<'_> {
    fn next_packet(&mut self, key: usize, then: &[usize]) -> Result<&mut OutboundSa, DropReason> {
        let reader = self.reader;
        let (e, _) = self.entry(key)?;
        let (esn, reserved_end) = (e.esn, &mut e.reserved_end);
        let sa = OutboundSa::of_mut(&mut e.ctx).ok_or(DropReason::NoSa)?;
        if sa.last_sequence_number() >= *reserved_end {
            #[allow(clippy::cast_possible_truncation)] // a slot number is a u32
            let slot = key as u32;
            // This packet and the rest of its run of one SA in the burst, reserved at once;
            // near the end of the number space a whole run may not fit: take one number.
            #[allow(clippy::cast_possible_truncation)] // a burst is at most 64 packets
            let run = 1 + then.iter().take_while(|&&k| k == key).count() as u32;
            let (first, n) = match reader.reserve_seq(slot, run, esn) {
                Ok(first) => (first, run),
                Err(_) => (reader.reserve_seq(slot, 1, esn).map_err(|_| DropReason::SeqOverflow)?, 1),
            };
            sa.set_last_sequence_number(first - 1);
            *reserved_end = first + u64::from(n) - 1;
        }
        Ok(sa)
    }
    fn get(&self, key: usize) -> Option<&OutboundSa> {
        self.sa(key)
    }
    fn get_mut(&mut self, key: usize) -> Option<&mut OutboundSa> {
        self.sa_mut(key)
    }
}

impl esp::SaTable<InboundSa> for Table<'_> {
    fn next_packet(&mut self, key: usize, _then: &[usize]) -> Result<&mut InboundSa, DropReason> {
        let reader = self.reader;
        let (e, first_of_run) = self.entry(key)?;
        let sa = InboundSa::of_mut(&mut e.ctx).ok_or(DropReason::NoSa)?;
        // The region keeps the window's right edge across restarts.
        if first_of_run {
            #[allow(clippy::cast_possible_truncation)] // a slot number is a u32
            let edge = reader.hot(key as u32).seq.load(Ordering::Relaxed);
            if sa.replay_window().top() < edge {
                sa.replay_window_mut().restore_all_seen(edge);
            }
        }
        Ok(sa)
    }
    fn get(&self, key: usize) -> Option<&InboundSa> {
        self.sa(key)
    }
    fn get_mut(&mut self, key: usize) -> Option<&mut InboundSa> {
        self.sa_mut(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_become_prefixes() {
        assert_eq!(range_to_prefixes(0xc612_0100, 0xc612_01ff, 32), vec![(0xc612_0100, 24)]);
        assert_eq!(range_to_prefixes(0, u128::from(u32::MAX), 32), vec![(0, 0)]);
        assert_eq!(range_to_prefixes(5, 5, 32), vec![(5, 32)]);
        // 10.0.0.1 - 10.0.0.6: .1/32 .2/31 .4/31 .6/32
        assert_eq!(
            range_to_prefixes(0x0a00_0001, 0x0a00_0006, 32),
            vec![(0x0a00_0001, 32), (0x0a00_0002, 31), (0x0a00_0004, 31), (0x0a00_0006, 32)]
        );
        assert_eq!(range_to_prefixes(0, u128::MAX, 128), vec![(0, 0)]);
        let p = range_to_prefixes(3, 1000, 32);
        let covered: u128 = p.iter().map(|(_, l)| 1u128 << (32 - u32::from(*l))).sum();
        assert_eq!(covered, 998, "exactly the range, no more");
        assert!(range_to_prefixes(9, 3, 32).is_empty());
    }

    /// UDP encapsulation behind a NAT: the peer sends from a mapped port (here 34500) to our
    /// 4500. The inbound SA accepts packets arriving on 4500, the outbound one sends from
    /// 4500 to the mapped port.
    #[test]
    fn udp_ports_of_a_peer_behind_a_nat() {
        for (dir, sport, dport) in [(Direction::In, 34_500, 4_500), (Direction::Out, 4_500, 34_500)] {
            let mut r: sadb::SaConfig = bytemuck::Zeroable::zeroed();
            r.spi = 0x4500;
            r.direction = dir as u8;
            r.mode = sadb::SaMode::Transport as u8;
            r.family = 4;
            r.cipher = Cipher::AesGcm16 as u8;
            r.cipher_key_len = 16;
            r.flags = SA_FLAG_UDP_ENCAP;
            (r.encap_sport, r.encap_dport) = (sport, dport);
            let cfg = engine_config(&r).unwrap();
            assert_eq!(cfg.udp_encap, Some(UdpEncap { src_port: 4_500, dst_port: 34_500 }), "{dir:?}");
        }
    }

    /// An AES record of every key length becomes the engine algorithm of that length, the
    /// GCM salt appended to the key (RFC 4106 §8.1); other lengths are refused.
    #[test]
    fn aes_records_of_each_key_length() {
        let cases = [
            (Cipher::AesGcm16, 16, CipherAlgorithm::AesGcm128),
            (Cipher::AesGcm16, 24, CipherAlgorithm::AesGcm192),
            (Cipher::AesGcm16, 32, CipherAlgorithm::AesGcm256),
            (Cipher::AesCbc, 16, CipherAlgorithm::AesCbc128),
            (Cipher::AesCbc, 24, CipherAlgorithm::AesCbc192),
            (Cipher::AesCbc, 32, CipherAlgorithm::AesCbc256),
        ];
        for (cipher, klen, want) in cases {
            let mut r: sadb::SaConfig = bytemuck::Zeroable::zeroed();
            r.spi = 0x192;
            r.direction = Direction::Out as u8;
            r.mode = sadb::SaMode::Transport as u8;
            r.family = 4;
            r.cipher = cipher as u8;
            r.cipher_key_len = klen;
            for (i, b) in r.cipher_key.iter_mut().enumerate() {
                *b = i as u8 + 1;
            }
            r.salt = [0xa1, 0xa2, 0xa3, 0xa4];
            if cipher == Cipher::AesCbc {
                r.integ = Integ::HmacSha256_128 as u8;
                r.integ_key_len = 32;
            }
            let cfg = engine_config(&r).unwrap();
            assert_eq!(cfg.crypto.cipher, want);
            let k = usize::from(klen);
            let mut key: Vec<u8> = (1..=klen).collect();
            if cipher == Cipher::AesGcm16 {
                key.extend_from_slice(&r.salt);
            }
            assert_eq!(&cfg.crypto.cipher_key[..], &key[..], "{want:?}");
            assert_eq!(cfg.crypto.cipher_key.len(), k + want.salt_len());
            cfg.crypto.validate().unwrap();
            r.cipher_key_len = 20;
            assert!(engine_config(&r).is_err(), "{cipher:?} with a 20-byte key");
        }
    }

    /// Transport mode: the rebuilt packet's source is the peer endpoint and its destination
    /// ours, protocol and ports the negotiated ones; endpoints outside the negotiated
    /// addresses are refused; with UDP encapsulation the peer's address is not pinned.
    #[test]
    fn transport_selectors_pin_the_endpoints() {
        let a = |x: [u8; 4]| {
            let mut v = [0u8; 16];
            v[..4].copy_from_slice(&x);
            v
        };
        let ip = |x: [u8; 4]| IpAddr::from(x);
        let mut r: sadb::SaConfig = bytemuck::Zeroable::zeroed();
        r.spi = 0x1701;
        r.direction = Direction::In as u8;
        r.mode = sadb::SaMode::Transport as u8;
        r.family = 4;
        r.cipher = Cipher::AesGcm16 as u8;
        r.cipher_key_len = 16;
        (r.src, r.dst) = (a([198, 18, 0, 2]), a([198, 18, 0, 1]));
        // L2TP: UDP 1701 to 1701, each side's host.
        let host = |x: [u8; 4]| Selector {
            addr_start: a(x),
            addr_end: a(x),
            family: 4,
            proto: 17,
            port_start: 1701,
            port_end: 1701,
            ..Default::default()
        };
        (r.ts_local, r.ts_remote) = (host([198, 18, 0, 1]), host([198, 18, 0, 2]));
        let sel = engine_config(&r).unwrap().selectors;
        let want = TrafficSelector {
            src: IpPrefix { addr: ip([198, 18, 0, 2]), len: 32 },
            dst: IpPrefix { addr: ip([198, 18, 0, 1]), len: 32 },
            protocol: Some(17),
            src_ports: (1701, 1701),
            dst_ports: (1701, 1701),
        };
        assert_eq!(sel, vec![want.clone()]);
        let m = |src, dst, proto, ports| sel.iter().any(|t| t.matches(ip(src), ip(dst), proto, ports));
        assert!(m([198, 18, 0, 2], [198, 18, 0, 1], 17, Some((1701, 1701))));
        assert!(!m([198, 18, 0, 9], [198, 18, 0, 1], 17, Some((1701, 1701))), "source");
        assert!(!m([198, 18, 0, 2], [198, 18, 0, 9], 17, Some((1701, 1701))), "destination");
        assert!(!m([198, 18, 0, 2], [198, 18, 0, 1], 6, Some((1701, 1701))), "protocol");
        assert!(!m([198, 18, 0, 2], [198, 18, 0, 1], 17, Some((1702, 1701))), "source port");
        assert!(!m([198, 18, 0, 2], [198, 18, 0, 1], 17, Some((1701, 1702))), "destination port");
        // No negotiated selectors (a hand-keyed SA): still the endpoints.
        let mut bare = r;
        (bare.ts_local, bare.ts_remote) = (Selector::default(), Selector::default());
        let any_ports = TrafficSelector {
            protocol: None,
            src_ports: (0, u16::MAX),
            dst_ports: (0, u16::MAX),
            ..want.clone()
        };
        assert_eq!(engine_config(&bare).unwrap().selectors, vec![any_ports]);
        // Endpoints outside the negotiated addresses: refused, naming the side.
        let mut off = r;
        off.src = a([198, 18, 0, 3]);
        let e = engine_config(&off).unwrap_err();
        assert!(e.0.contains("peer 198.18.0.3"), "{}", e.0);
        let mut off = r;
        off.dst = a([198, 18, 0, 3]);
        assert!(engine_config(&off).unwrap_err().0.contains("our address 198.18.0.3"));
        // UDP encapsulation through a NAT: the outer source is the NAT's, not pinned.
        let mut nat = r;
        nat.flags = SA_FLAG_UDP_ENCAP;
        (nat.encap_sport, nat.encap_dport) = (34_500, 4_500);
        nat.src = a([198, 18, 7, 7]);
        let sel = engine_config(&nat).unwrap().selectors;
        assert_eq!(sel, vec![TrafficSelector { src: IpPrefix::any(false), ..want }]);
        // Outbound transport SAs select nothing on the way in.
        let mut out = r;
        out.direction = Direction::Out as u8;
        assert!(engine_config(&out).unwrap().selectors.is_empty());
    }
}
