//! SA configuration and per-direction runtime contexts.
//!
//! An SA is built once from a [`SaConfig`] (keys, algorithms, mode, options) and a crypto
//! backend. Construction validates everything and picks the per-packet path ([`Path`]) once, so
//! the hot path only matches on a precomputed enum. Hot mutable state (sequence number, replay
//! window, IPv4 ident) is kept in its own cache-line-aligned struct, apart from the read-mostly
//! configuration (DPDK `sa.h`, VPP `ipsec_sa_*_rt_t`).

use crate::crypto::{CryptoBackend, CryptoError, CryptoParams, CryptoSession, IvSource, Layout, Operation};
use crate::replay::{InvalidWindowSize, ReplayWindow};
use crate::wire::{ip_proto, ipv4, ipv6, udp};
use core::net::IpAddr;

/// Tunnel endpoints (outer source and destination; same family).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TunnelEndpoints {
    /// Outer source address.
    pub src: IpAddr,
    /// Outer destination address.
    pub dst: IpAddr,
}

/// ESP mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EspMode {
    /// Tunnel mode: a new outer header; the inner packet may be IPv4 or IPv6.
    Tunnel(TunnelEndpoints),
    /// Transport mode: ESP inserted after the IP header (and IPv6 routing-type extensions).
    Transport,
}

/// UDP encapsulation ports (RFC 3948).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdpEncap {
    /// Source port we send from.
    pub src_port: u16,
    /// Destination port we send to; inbound packets must arrive on this SA's `src_port`.
    pub dst_port: u16,
}

impl Default for UdpEncap {
    fn default() -> Self {
        UdpEncap { src_port: udp::NAT_T_PORT, dst_port: udp::NAT_T_PORT }
    }
}

/// How the outer IPv4 DF bit is set (RFC 4301 §8.1: copy, set or clear, configurable).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DfMode {
    /// Copy from an inner IPv4 header (set for an inner IPv6 packet, which never fragments).
    Copy,
    /// Always set.
    Set,
    /// Always clear.
    Clear,
}

/// How the outer DSCP is set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DscpMode {
    /// Copy from the inner header (RFC 4301 §5.1.2.1 default).
    Copy,
    /// A fixed value.
    Set(u8),
}

/// Outer-header settings for tunnel mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OuterHeader {
    /// Outer TTL / hop limit.
    pub ttl: u8,
    /// DF bit (outer IPv4).
    pub df: DfMode,
    /// DSCP.
    pub dscp: DscpMode,
    /// RFC 6040 normal mode: copy inner ECN to the outer header on encapsulation and combine
    /// on decapsulation. When false, the outer ECN is Not-ECT and decapsulation leaves the
    /// inner ECN alone (RFC 6040 compatibility mode, §4.1.2).
    pub ecn_normal: bool,
    /// On decapsulation, copy the outer DSCP into the inner header (RFC 2983 "uniform"
    /// model). Off by default: RFC 4301 §5.1.2.1 leaves the inner DSCP unchanged.
    pub dscp_decap_copy: bool,
}

impl Default for OuterHeader {
    fn default() -> Self {
        OuterHeader {
            ttl: 64,
            df: DfMode::Copy,
            dscp: DscpMode::Copy,
            ecn_normal: true,
            dscp_decap_copy: false,
        }
    }
}

/// An address prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpPrefix {
    /// Network address.
    pub addr: IpAddr,
    /// Prefix length.
    pub len: u8,
}

impl IpPrefix {
    /// Any address of `addr`'s family with prefix length 0.
    pub fn any(v6: bool) -> Self {
        IpPrefix {
            addr: if v6 {
                IpAddr::V6(core::net::Ipv6Addr::UNSPECIFIED)
            } else {
                IpAddr::V4(core::net::Ipv4Addr::UNSPECIFIED)
            },
            len: 0,
        }
    }

    /// True if `a` is inside the prefix (false across families).
    pub fn contains(&self, a: IpAddr) -> bool {
        match (self.addr, a) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let l = u32::from(self.len.min(32));
                let mask = if l == 0 { 0 } else { u32::MAX << (32 - l) };
                (u32::from(n) & mask) == (u32::from(a) & mask)
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let l = u32::from(self.len.min(128));
                let mask = if l == 0 { 0 } else { u128::MAX << (128 - l) };
                (u128::from(n) & mask) == (u128::from(a) & mask)
            }
            _ => false,
        }
    }
}

/// A traffic selector (RFC 4301 §4.4.1.1) on the inner packet: source and destination
/// prefixes, protocol, port ranges (ports only checked for TCP, UDP and SCTP).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrafficSelector {
    /// Inner source.
    pub src: IpPrefix,
    /// Inner destination.
    pub dst: IpPrefix,
    /// Protocol, `None` = any.
    pub protocol: Option<u8>,
    /// Source ports (inclusive).
    pub src_ports: (u16, u16),
    /// Destination ports (inclusive).
    pub dst_ports: (u16, u16),
}

impl TrafficSelector {
    /// Any packet of one family.
    pub fn any(v6: bool) -> Self {
        TrafficSelector {
            src: IpPrefix::any(v6),
            dst: IpPrefix::any(v6),
            protocol: None,
            src_ports: (0, u16::MAX),
            dst_ports: (0, u16::MAX),
        }
    }

    fn ports_any(&self) -> bool {
        self.src_ports == (0, u16::MAX) && self.dst_ports == (0, u16::MAX)
    }

    /// True if the packet's fields match. `ports` is `None` when the packet has no (readable)
    /// transport ports; then only selectors with full port ranges match.
    pub fn matches(&self, src: IpAddr, dst: IpAddr, proto: u8, ports: Option<(u16, u16)>) -> bool {
        if !self.src.contains(src) || !self.dst.contains(dst) {
            return false;
        }
        if self.protocol.is_some_and(|p| p != proto) {
            return false;
        }
        if self.ports_any() {
            return true;
        }
        match ports {
            Some((s, d)) => {
                (self.src_ports.0..=self.src_ports.1).contains(&s)
                    && (self.dst_ports.0..=self.dst_ports.1).contains(&d)
            }
            None => false,
        }
    }
}

/// Everything needed to build one SA direction.
#[derive(Debug, Clone)]
pub struct SaConfig {
    /// SPI.
    pub spi: u32,
    /// Algorithms and keys (zeroized on drop).
    pub crypto: CryptoParams,
    /// Tunnel or transport.
    pub mode: EspMode,
    /// 64-bit extended sequence numbers (RFC 4304).
    pub esn: bool,
    /// Inbound replay window size; 0 disables replay checking (only if the SA says so).
    pub replay_window: u32,
    /// UDP encapsulation (RFC 3948), if any.
    pub udp_encap: Option<UdpEncap>,
    /// Outer header settings (tunnel mode).
    pub outer: OuterHeader,
    /// Inbound selectors (RFC 4301 §5.2): the decapsulated packet (tunnel: the inner one;
    /// transport: the rebuilt one, outer addresses included) must match one. Empty means "any".
    pub selectors: Vec<TrafficSelector>,
    /// Tunnel-mode TFC padding (RFC 4303 §2.7): pad inner packets shorter than this many
    /// bytes up to it. 0 = off.
    pub tfc_pad_to: u16,
    /// Last sequence number used (outbound; 0 for a new SA, whose first packet is 1).
    pub initial_seq: u64,
}

impl SaConfig {
    /// A config with defaults: no ESN, window 64 (RFC 4303 §3.4.3 default), no UDP encap,
    /// default outer header, no selectors, no TFC.
    pub fn new(spi: u32, crypto: CryptoParams, mode: EspMode) -> Self {
        SaConfig {
            spi,
            crypto,
            mode,
            esn: false,
            replay_window: 64,
            udp_encap: None,
            outer: OuterHeader::default(),
            selectors: Vec::new(),
            tfc_pad_to: 0,
            initial_seq: 0,
        }
    }
}

/// Error building an SA.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaError {
    /// Crypto parameters rejected.
    Crypto(CryptoError),
    /// Replay window size out of range.
    ReplayWindow(InvalidWindowSize),
    /// Tunnel endpoints of different families.
    MixedFamilies,
}

impl From<CryptoError> for SaError {
    fn from(e: CryptoError) -> Self {
        SaError::Crypto(e)
    }
}

/// The per-SA processing path, chosen at construction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Path {
    /// Tunnel, outer IPv4.
    TunnelV4,
    /// Tunnel, outer IPv6.
    TunnelV6,
    /// Transport.
    Transport,
}

/// Read-mostly, per-SA data shared by both directions' code.
#[derive(Debug)]
pub(crate) struct SaCommon {
    pub spi: u32,
    pub path: Path,
    pub layout: Layout,
    pub esn: bool,
    pub udp: Option<UdpEncap>,
    pub mode: EspMode,
    pub outer: OuterHeader,
    pub session: Box<dyn CryptoSession>,
}

/// The levels of an SA's state behind its context, in the order a burst that spans many SAs
/// loads them into the cache: each level for every packet, then the next, so that the misses
/// of one level overlap (each is a pointer the next follows).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WarmLevel {
    /// The crypto session object.
    Session,
    /// The session's state behind its box.
    State,
    /// The key lines the crypto call reads first.
    Keys,
}

impl WarmLevel {
    /// Every level, in order.
    pub const ALL: [WarmLevel; 3] = [WarmLevel::Session, WarmLevel::State, WarmLevel::Keys];
}

impl SaCommon {
    /// One level of the crypto session (see [`WarmLevel`]).
    fn warm(&self, level: WarmLevel, op: Operation) {
        match level {
            WarmLevel::Session => warm::touch(&*self.session),
            WarmLevel::State => self.session.warm_state(),
            WarmLevel::Keys => self.session.warm_keys(op),
        }
    }

    fn new(cfg: &SaConfig, backend: &dyn CryptoBackend) -> Result<Self, SaError> {
        cfg.crypto.validate()?;
        let path = match cfg.mode {
            EspMode::Transport => Path::Transport,
            EspMode::Tunnel(t) => match (t.src, t.dst) {
                (IpAddr::V4(_), IpAddr::V4(_)) => Path::TunnelV4,
                (IpAddr::V6(_), IpAddr::V6(_)) => Path::TunnelV6,
                _ => return Err(SaError::MixedFamilies),
            },
        };
        let session = backend.new_session(&cfg.crypto)?;
        Ok(SaCommon {
            spi: cfg.spi,
            path,
            layout: session.layout(),
            esn: cfg.esn,
            udp: cfg.udp_encap,
            mode: cfg.mode,
            outer: cfg.outer,
            session,
        })
    }

    /// Bytes between the outer IP header and the encrypted payload.
    pub fn esp_overhead_front(&self) -> usize {
        let u = if self.udp.is_some() { udp::HEADER_LEN } else { 0 };
        u + crate::wire::esp::HEADER_LEN + self.layout.iv_len
    }

    /// IP protocol number of what follows the (outer) IP header.
    pub fn outer_protocol(&self) -> u8 {
        if self.udp.is_some() {
            ip_proto::UDP
        } else {
            ip_proto::ESP
        }
    }
}

/// The precomputed tunnel-mode outer header (IP, then UDP when encapsulating), with zero
/// TOS/traffic class, lengths, ident, flags and checksum; `sum` is the one's-complement sum of
/// the IPv4 header template, so a packet's checksum only adds the patched words.
#[derive(Debug, Clone)]
pub(crate) struct OuterTemplate {
    pub bytes: [u8; 48],
    pub sum: u32,
}

impl OuterTemplate {
    fn new(c: &SaCommon) -> Self {
        let mut bytes = [0u8; 48];
        let proto = c.outer_protocol();
        let ip_len = match c.mode {
            EspMode::Tunnel(TunnelEndpoints { src: IpAddr::V4(src), dst: IpAddr::V4(dst) }) => {
                let r = ipv4::Repr {
                    src,
                    dst,
                    protocol: proto,
                    payload_len: 0,
                    ttl: c.outer.ttl,
                    dscp: 0,
                    ecn: 0,
                    ident: 0,
                    dont_frag: false,
                };
                let mut p = ipv4::Packet::new_unchecked(&mut bytes[..ipv4::HEADER_LEN]);
                let _ = r.emit(&mut p);
                p.set_total_len(0);
                crate::wire::set_u16(&mut bytes, 10, 0);
                ipv4::HEADER_LEN
            }
            EspMode::Tunnel(TunnelEndpoints { src: IpAddr::V6(src), dst: IpAddr::V6(dst) }) => {
                let r = ipv6::Repr {
                    src,
                    dst,
                    next_header: proto,
                    payload_len: 0,
                    hop_limit: c.outer.ttl,
                    dscp: 0,
                    ecn: 0,
                    flow_label: 0,
                };
                let _ = r.emit(&mut ipv6::Packet::new_unchecked(&mut bytes[..ipv6::HEADER_LEN]));
                ipv6::HEADER_LEN
            }
            _ => 0,
        };
        if let Some(u) = c.udp {
            if let Some(h) = bytes.get_mut(ip_len..ip_len + udp::HEADER_LEN) {
                let _ = udp::Repr { src_port: u.src_port, dst_port: u.dst_port, payload_len: 0 }
                    .emit(&mut udp::Packet::new_unchecked(h));
            }
        }
        let sum = if ip_len == ipv4::HEADER_LEN {
            crate::wire::checksum::sum(bytes.get(..ipv4::HEADER_LEN).unwrap_or(&[]))
        } else {
            0
        };
        OuterTemplate { bytes, sum }
    }
}

/// Hot outbound state, on its own cache line.
#[derive(Debug)]
#[repr(align(64))]
pub(crate) struct OutbHot {
    /// Last sequence number used.
    pub seq: u64,
    /// Next outer IPv4 identification.
    pub ident: u16,
    /// Packets and bytes protected.
    pub packets: u64,
    pub bytes: u64,
}

/// An outbound SA: sequence numbers, IV source, crypto session, outer-header template.
#[derive(Debug)]
pub struct OutboundSa {
    pub(crate) hot: OutbHot,
    pub(crate) tmpl: OuterTemplate,
    pub(crate) common: SaCommon,
    pub(crate) iv: Box<dyn IvSource>,
    pub(crate) tfc_pad_to: usize,
}

impl OutboundSa {
    /// Build an outbound SA. `iv` supplies CBC IVs (use
    /// [`crate::crypto::AesCounterIvSource::from_system_rng`] for traffic).
    pub fn new(cfg: &SaConfig, backend: &dyn CryptoBackend, iv: Box<dyn IvSource>) -> Result<Self, SaError> {
        let common = SaCommon::new(cfg, backend)?;
        Ok(OutboundSa {
            tmpl: OuterTemplate::new(&common),
            hot: OutbHot { seq: cfg.initial_seq, ident: 0, packets: 0, bytes: 0 },
            common,
            iv,
            tfc_pad_to: usize::from(cfg.tfc_pad_to),
        })
    }
    /// Loads one level of what this SA's packets will read into the cache (see
    /// [`WarmLevel`]); the session first, with the CBC IV generator.
    #[inline]
    pub fn warm(&self, level: WarmLevel) {
        self.common.warm(level, Operation::Seal);
        if level == WarmLevel::Session {
            warm::touch(&*self.iv);
        }
    }
    /// SPI.
    pub fn spi(&self) -> u32 {
        self.common.spi
    }
    /// Last sequence number used.
    pub fn last_sequence_number(&self) -> u64 {
        self.hot.seq
    }
    /// Sets the last sequence number used, so the next packet carries `seq + 1`. A dataplane
    /// whose lcores share an SA reserves numbers elsewhere (in the SA database) and hands
    /// each burst its block this way.
    pub fn set_last_sequence_number(&mut self, seq: u64) {
        self.hot.seq = seq;
    }
    /// The path chosen at construction.
    pub fn path(&self) -> Path {
        self.common.path
    }
    /// Packets protected so far.
    pub fn packets(&self) -> u64 {
        self.hot.packets
    }
    /// Bytes (ESP packets, outer header included) produced so far.
    pub fn bytes(&self) -> u64 {
        self.hot.bytes
    }
    /// Tailroom a packet needs at most: padding (up to one block), pad length and next header,
    /// TFC padding and the ICV.
    pub fn tailroom_needed(&self) -> usize {
        let l = self.common.layout;
        l.block_len.max(4) - 1 + crate::wire::esp::TRAILER_LEN + l.icv_len + self.tfc_pad_to
    }
    /// Headroom a packet needs (worst case, tunnel mode with an IPv6 outer header).
    pub fn headroom_needed(&self) -> usize {
        let ip = match self.common.path {
            Path::TunnelV4 => crate::wire::ipv4::HEADER_LEN,
            Path::TunnelV6 => crate::wire::ipv6::HEADER_LEN,
            Path::Transport => 0,
        };
        ip + self.common.esp_overhead_front()
    }
}

/// Hot inbound state, on its own cache line.
#[derive(Debug)]
#[repr(align(64))]
pub(crate) struct InbHot {
    pub window: ReplayWindow,
    pub packets: u64,
    pub bytes: u64,
}

/// An inbound SA: replay window, crypto session, selectors.
#[derive(Debug)]
pub struct InboundSa {
    pub(crate) hot: InbHot,
    pub(crate) common: SaCommon,
    pub(crate) selectors: Vec<TrafficSelector>,
}

impl InboundSa {
    /// Build an inbound SA.
    pub fn new(cfg: &SaConfig, backend: &dyn CryptoBackend) -> Result<Self, SaError> {
        let window = ReplayWindow::new(cfg.replay_window, cfg.esn).map_err(SaError::ReplayWindow)?;
        Ok(InboundSa {
            hot: InbHot { window, packets: 0, bytes: 0 },
            common: SaCommon::new(cfg, backend)?,
            selectors: cfg.selectors.clone(),
        })
    }
    /// Loads one level of what this SA's packets will read into the cache (see
    /// [`WarmLevel`]); the session first, with the replay window's newest bits.
    #[inline]
    pub fn warm(&self, level: WarmLevel) {
        self.common.warm(level, Operation::Open);
        if level == WarmLevel::Session {
            self.hot.window.warm();
        }
    }
    /// SPI.
    pub fn spi(&self) -> u32 {
        self.common.spi
    }
    /// The replay window.
    pub fn replay_window(&self) -> &ReplayWindow {
        &self.hot.window
    }
    /// The replay window, mutable (e.g. to restore state).
    pub fn replay_window_mut(&mut self) -> &mut ReplayWindow {
        &mut self.hot.window
    }
    /// The path chosen at construction.
    pub fn path(&self) -> Path {
        self.common.path
    }
    /// Packets accepted so far.
    pub fn packets(&self) -> u64 {
        self.hot.packets
    }
    /// Bytes (decapsulated packets) accepted so far.
    pub fn bytes(&self) -> u64 {
        self.hot.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_and_selectors() {
        let p = IpPrefix { addr: "10.1.0.0".parse().unwrap(), len: 16 };
        assert!(p.contains("10.1.255.3".parse().unwrap()));
        assert!(!p.contains("10.2.0.1".parse().unwrap()));
        assert!(!p.contains("::1".parse().unwrap()));
        let p6 = IpPrefix { addr: "2001:db8::".parse().unwrap(), len: 32 };
        assert!(p6.contains("2001:db8:1::5".parse().unwrap()));
        assert!(!p6.contains("2001:db9::5".parse().unwrap()));
        let mut ts = TrafficSelector::any(false);
        ts.src = p;
        ts.protocol = Some(17);
        ts.dst_ports = (53, 53);
        let a = "10.1.0.1".parse().unwrap();
        let b = "192.0.2.1".parse().unwrap();
        assert!(ts.matches(a, b, 17, Some((1000, 53))));
        assert!(!ts.matches(a, b, 17, Some((1000, 54))));
        assert!(!ts.matches(a, b, 6, Some((1000, 53))));
        assert!(!ts.matches(a, b, 17, None));
        assert!(!ts.matches(b, a, 17, Some((1000, 53))));
        assert!(TrafficSelector::any(true).matches("::1".parse().unwrap(), "::2".parse().unwrap(), 58, None));
    }
}
