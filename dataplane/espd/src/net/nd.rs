//! IPv6 Neighbor Discovery (RFC 4861): neighbour solicitations and advertisements, on
//! Ethernet (RFC 2464), untagged.
//!
//! Only messages whose ICMPv6 header follows the IPv6 header directly are handled (ND
//! messages carry no extension headers in practice, and RFC 6980 forbids fragmenting them);
//! [`parse_ns`] and [`parse_na`] apply the validity checks of RFC 4861 §7.1.1 and §7.1.2,
//! checksum included. No function here panics or reads out of bounds, whatever the input.
//!
//! ```text
//!  0 Ethernet (14) | 14 IPv6 header (40) | 54 ICMPv6: type, code, checksum
//! 58 NS: reserved (4) / NA: flags R S O (1) + reserved (3)
//! 62 target address (16) | 78 options: type (1), length in 8-byte units (1), ...
//! ```

use std::fmt;
use std::net::{IpAddr, Ipv6Addr};

use super::addr::Interface;
use super::checksum;
use super::ethernet::{self, Mac, ETHERTYPE_IPV6, HEADER_LEN};
use super::neigh::{Learned, NeighError, NeighborTable};

/// IPv6 next-header value of ICMPv6.
pub const NEXT_HEADER_ICMPV6: u8 = 58;
/// ICMPv6 type of a Neighbor Solicitation.
pub const TYPE_NEIGHBOR_SOLICIT: u8 = 135;
/// ICMPv6 type of a Neighbor Advertisement.
pub const TYPE_NEIGHBOR_ADVERT: u8 = 136;

const IPV6_HEADER_LEN: usize = 40;
/// Where ICMPv6 starts in a frame without extension headers.
const ICMP: usize = HEADER_LEN + IPV6_HEADER_LEN;
/// ICMPv6 header + reserved/flags + target: the fixed part of NS and NA (RFC 4861 §4.3-4.4).
const ND_FIXED_LEN: usize = 24;
/// A link-layer address option for Ethernet: type, length 1 (8 bytes), MAC.
const LLA_OPTION_LEN: usize = 8;
/// Length of the NS and NA frames we build: 14 + 40 + 24 + 8.
pub const FRAME_LEN: usize = ICMP + ND_FIXED_LEN + LLA_OPTION_LEN;

const OPTION_SOURCE_LLA: u8 = 1;
const OPTION_TARGET_LLA: u8 = 2;

const FLAG_ROUTER: u8 = 0x80;
const FLAG_SOLICITED: u8 = 0x40;
const FLAG_OVERRIDE: u8 = 0x20;

/// RFC 4861 §6.1.2/§7.1: ND messages are sent with hop limit 255, which proves they were not
/// forwarded by a router.
const ND_HOP_LIMIT: u8 = 255;

mod field {
    pub const VERSION: usize = 14;
    pub const PAYLOAD_LEN: usize = 18;
    pub const NEXT_HEADER: usize = 20;
    pub const HOP_LIMIT: usize = 21;
    pub const SRC: usize = 22;
    pub const DST: usize = 38;
    pub const TYPE: usize = super::ICMP;
    pub const CHECKSUM: usize = super::ICMP + 2;
    pub const FLAGS: usize = super::ICMP + 4;
    pub const TARGET: usize = super::ICMP + 8;
    pub const OPTIONS: usize = super::ICMP + 24;
}

/// A validated Neighbor Solicitation.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct NeighborSolicit {
    /// IPv6 source: the solicitor, or unspecified for duplicate address detection.
    pub src: Ipv6Addr,
    /// IPv6 destination: the target's solicited-node group, or the target itself.
    pub dst: Ipv6Addr,
    /// The address being resolved.
    pub target: Ipv6Addr,
    /// The source link-layer address option.
    pub source_mac: Option<Mac>,
}

impl NeighborSolicit {
    /// Duplicate address detection: the solicitor has no address yet (RFC 4862 §5.4.2).
    pub fn is_dad(&self) -> bool {
        self.src.is_unspecified()
    }

    /// What the receiver of this solicitation SHOULD put in its neighbour cache (RFC 4861
    /// §7.2.3): the solicitor's address and MAC, if it gave both. The gateway only updates
    /// an entry it has with them ([`learn_from_ns`]).
    pub fn learnable(&self) -> Option<(Ipv6Addr, Mac)> {
        (!self.is_dad()).then_some(())?;
        Some((self.src, self.source_mac?))
    }
}

/// A validated Neighbor Advertisement.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct NeighborAdvert {
    /// IPv6 source.
    pub src: Ipv6Addr,
    /// IPv6 destination.
    pub dst: Ipv6Addr,
    /// The address advertised.
    pub target: Ipv6Addr,
    /// R: the sender is a router.
    pub router: bool,
    /// S: an answer to a solicitation.
    pub solicited: bool,
    /// O: override an existing cache entry.
    pub override_entry: bool,
    /// The target link-layer address option.
    pub target_mac: Option<Mac>,
}

impl NeighborAdvert {
    /// The `(address, MAC)` to learn. Without a target link-layer address option there is
    /// nothing to learn on Ethernet (RFC 4861 §7.2.5: such an advertisement is discarded for
    /// an incomplete entry).
    pub fn learnable(&self) -> Option<(Ipv6Addr, Mac)> {
        Some((self.target, self.target_mac?))
    }
}

/// What a received Neighbor Solicitation for one of our addresses teaches the neighbour table
/// (`port`: the port index it came in by): `None` if nothing (invalid, DAD, no source
/// link-layer address). The solicitor's entry is updated only if we have one (a neighbour we
/// resolve); RFC 4861 §7.2.3 would create it, which we do not, so that no host on the link
/// can fill the table: that is refused as unsolicited, and counted.
pub fn learn_from_ns(
    table: &NeighborTable,
    frame: &[u8],
    port: u16,
    now: u64,
) -> Option<Result<Learned, NeighError>> {
    let (ip, mac) = parse_ns(frame).ok()?.learnable()?;
    Some(table.learn(IpAddr::V6(ip), mac, port, now))
}

/// What a received Neighbor Advertisement teaches the neighbour table: the answer to our
/// solicitation (the entry is incomplete or stale) or an update of an entry we have
/// (RFC 4861 §7.2.5: an advertisement for an address without an entry is silently discarded;
/// here it is refused as unsolicited, and counted). `None` if nothing (invalid, no target
/// link-layer address).
pub fn learn_from_na(
    table: &NeighborTable,
    frame: &[u8],
    port: u16,
    now: u64,
) -> Option<Result<Learned, NeighError>> {
    let (ip, mac) = parse_na(frame).ok()?.learnable()?;
    Some(table.learn(IpAddr::V6(ip), mac, port, now))
}

/// Why a frame is not a valid NS or NA.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u8)]
pub enum NdError {
    /// Shorter than its headers or than the IPv6 payload length says.
    Truncated,
    /// Not IPv6 (EtherType or version).
    NotIpv6,
    /// The IPv6 next header is not ICMPv6 (extension headers are not accepted).
    NotIcmpv6,
    /// Not the ICMPv6 type asked for.
    WrongType,
    /// Hop limit is not 255 (RFC 4861 §7.1.1, §7.1.2).
    BadHopLimit,
    /// ICMPv6 checksum does not verify (RFC 4443 §2.3).
    BadChecksum,
    /// ICMPv6 code is not 0.
    BadCode,
    /// ICMPv6 length is less than 24.
    TooShort,
    /// The target address is multicast.
    MulticastTarget,
    /// An option has length zero or runs past the end, or a link-layer address option is
    /// not 8 bytes (RFC 2464 §6).
    BadOption,
    /// DAD (unspecified source) not sent to a solicited-node group, or carrying a source
    /// link-layer address option.
    BadDad,
    /// An advertisement to a multicast group with the Solicited flag set.
    SolicitedToMulticast,
    /// The source address is multicast.
    MulticastSource,
}

impl fmt::Display for NdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NdError::Truncated => "ND message truncated",
            NdError::NotIpv6 => "not IPv6",
            NdError::NotIcmpv6 => "next header is not ICMPv6",
            NdError::WrongType => "not the expected ICMPv6 type",
            NdError::BadHopLimit => "ND message with hop limit other than 255",
            NdError::BadChecksum => "bad ICMPv6 checksum",
            NdError::BadCode => "ND message with non-zero code",
            NdError::TooShort => "ND message shorter than 24 bytes",
            NdError::MulticastTarget => "ND target is multicast",
            NdError::BadOption => "bad ND option length",
            NdError::BadDad => "malformed duplicate address detection",
            NdError::SolicitedToMulticast => "solicited advertisement to a multicast group",
            NdError::MulticastSource => "multicast source address",
        })
    }
}

impl std::error::Error for NdError {}

/// The solicited-node multicast group of an address: `ff02::1:ff00:0/104` plus the
/// address's low 24 bits (RFC 4291 §2.7.1).
pub fn solicited_node(addr: Ipv6Addr) -> Ipv6Addr {
    let [.., a, b, c] = addr.octets();
    Ipv6Addr::from([0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0xff, a, b, c])
}

fn is_solicited_node(addr: Ipv6Addr) -> bool {
    u128::from(addr) >> 24 == u128::from(Ipv6Addr::new(0xff02, 0, 0, 0, 0, 1, 0xff00, 0)) >> 24
}

fn ipv6_at(frame: &[u8], at: usize) -> Option<Ipv6Addr> {
    ethernet::read_16_bytes(frame, at).map(Ipv6Addr::from)
}

/// The common checks: IPv6 with ICMPv6 right after, hop limit 255, checksum, code 0, length,
/// type. Returns source, destination, and the ICMPv6 message (trailing padding excluded).
fn icmp_view(frame: &[u8], icmp_type: u8) -> Result<(Ipv6Addr, Ipv6Addr, &[u8]), NdError> {
    if frame.len() < ICMP {
        return Err(NdError::Truncated);
    }
    if ethernet::ethertype(frame) != Some(ETHERTYPE_IPV6)
        || frame.get(field::VERSION).map(|v| v >> 4) != Some(6)
    {
        return Err(NdError::NotIpv6);
    }
    if frame.get(field::NEXT_HEADER) != Some(&NEXT_HEADER_ICMPV6) {
        return Err(NdError::NotIcmpv6);
    }
    let payload_len = usize::from(ethernet::read_u16(frame, field::PAYLOAD_LEN).ok_or(NdError::Truncated)?);
    let icmp = frame.get(ICMP..ICMP + payload_len).ok_or(NdError::Truncated)?;
    if icmp.first() != Some(&icmp_type) {
        return Err(NdError::WrongType);
    }
    if frame.get(field::HOP_LIMIT) != Some(&ND_HOP_LIMIT) {
        return Err(NdError::BadHopLimit);
    }
    let src = ipv6_at(frame, field::SRC).ok_or(NdError::Truncated)?;
    let dst = ipv6_at(frame, field::DST).ok_or(NdError::Truncated)?;
    // RFC 4443 §2.3: the checksum covers the pseudo-header and the whole ICMPv6 message.
    let len32 = u32::try_from(icmp.len()).map_err(|_| NdError::Truncated)?;
    let sum = checksum::add(checksum::pseudo_header_v6(src, dst, NEXT_HEADER_ICMPV6, len32), icmp);
    if checksum::finish(sum) != 0 {
        return Err(NdError::BadChecksum);
    }
    if icmp.get(1) != Some(&0) {
        return Err(NdError::BadCode);
    }
    if icmp.len() < ND_FIXED_LEN {
        return Err(NdError::TooShort);
    }
    if src.is_multicast() {
        return Err(NdError::MulticastSource);
    }
    Ok((src, dst, icmp))
}

/// Walks the options after the fixed part and returns the MAC of the link-layer address
/// option of type `wanted` (the last one, if repeated), checking every option's length.
fn find_lla(icmp: &[u8], wanted: u8) -> Result<Option<Mac>, NdError> {
    let mut opts = icmp.get(ND_FIXED_LEN..).ok_or(NdError::TooShort)?;
    let mut found = None;
    while !opts.is_empty() {
        let (Some(&kind), Some(&units)) = (opts.first(), opts.get(1)) else { return Err(NdError::BadOption) };
        // RFC 4861 §4.6: an option of length zero MUST cause the packet to be discarded.
        if units == 0 {
            return Err(NdError::BadOption);
        }
        let len = usize::from(units) * 8;
        let opt = opts.get(..len).ok_or(NdError::BadOption)?;
        if kind == wanted {
            // RFC 2464 §6: on Ethernet the link-layer address option is 8 bytes.
            if len != LLA_OPTION_LEN {
                return Err(NdError::BadOption);
            }
            found = Some(Mac::from_slice(opt.get(2..).ok_or(NdError::BadOption)?).ok_or(NdError::BadOption)?);
        }
        opts = opts.get(len..).ok_or(NdError::BadOption)?;
    }
    Ok(found)
}

fn target_of(icmp: &[u8]) -> Result<Ipv6Addr, NdError> {
    let t = ipv6_at(icmp, 8).ok_or(NdError::TooShort)?;
    if t.is_multicast() {
        return Err(NdError::MulticastTarget);
    }
    Ok(t)
}

/// Parses and validates a Neighbor Solicitation (RFC 4861 §7.1.1).
pub fn parse_ns(frame: &[u8]) -> Result<NeighborSolicit, NdError> {
    let (src, dst, icmp) = icmp_view(frame, TYPE_NEIGHBOR_SOLICIT)?;
    let target = target_of(icmp)?;
    let source_mac = find_lla(icmp, OPTION_SOURCE_LLA)?;
    // RFC 4861 §7.1.1: if the source is unspecified, the destination is a solicited-node
    // multicast address and there is no source link-layer address option.
    if src.is_unspecified() && (!is_solicited_node(dst) || source_mac.is_some()) {
        return Err(NdError::BadDad);
    }
    Ok(NeighborSolicit { src, dst, target, source_mac })
}

/// Parses and validates a Neighbor Advertisement (RFC 4861 §7.1.2).
pub fn parse_na(frame: &[u8]) -> Result<NeighborAdvert, NdError> {
    let (src, dst, icmp) = icmp_view(frame, TYPE_NEIGHBOR_ADVERT)?;
    let target = target_of(icmp)?;
    let flags = icmp.get(4).copied().ok_or(NdError::TooShort)?;
    let solicited = flags & FLAG_SOLICITED != 0;
    // RFC 4861 §7.1.2: if the destination is multicast, the Solicited flag is zero.
    if dst.is_multicast() && solicited {
        return Err(NdError::SolicitedToMulticast);
    }
    Ok(NeighborAdvert {
        src,
        dst,
        target,
        router: flags & FLAG_ROUTER != 0,
        solicited,
        override_entry: flags & FLAG_OVERRIDE != 0,
        target_mac: find_lla(icmp, OPTION_TARGET_LLA)?,
    })
}

/// Writes an 86-byte NS or NA frame into `buf`.
#[allow(clippy::too_many_arguments)]
fn emit(
    buf: &mut [u8],
    eth_dst: Mac,
    our_mac: Mac,
    src: Ipv6Addr,
    dst: Ipv6Addr,
    icmp_type: u8,
    flags: u8,
    target: Ipv6Addr,
    option: u8,
) -> Option<usize> {
    let frame = buf.get_mut(..FRAME_LEN)?;
    frame.fill(0);
    ethernet::write_header(frame, eth_dst, our_mac, ETHERTYPE_IPV6);
    let icmp_len = (ND_FIXED_LEN + LLA_OPTION_LEN) as u16;
    ethernet::write_bytes(frame, field::VERSION, &[0x60, 0, 0, 0])?;
    ethernet::write_u16(frame, field::PAYLOAD_LEN, icmp_len)?;
    ethernet::write_bytes(frame, field::NEXT_HEADER, &[NEXT_HEADER_ICMPV6, ND_HOP_LIMIT])?;
    ethernet::write_bytes(frame, field::SRC, &src.octets())?;
    ethernet::write_bytes(frame, field::DST, &dst.octets())?;
    ethernet::write_bytes(frame, field::TYPE, &[icmp_type, 0])?;
    ethernet::write_bytes(frame, field::FLAGS, &[flags])?;
    ethernet::write_bytes(frame, field::TARGET, &target.octets())?;
    ethernet::write_bytes(frame, field::OPTIONS, &[option, 1])?;
    ethernet::write_bytes(frame, field::OPTIONS + 2, &our_mac.0)?;
    let sum = checksum::pseudo_header_v6(src, dst, NEXT_HEADER_ICMPV6, u32::from(icmp_len));
    let csum = checksum::finish(checksum::add(sum, frame.get(ICMP..)?));
    ethernet::write_u16(frame, field::CHECKSUM, csum)?;
    Some(FRAME_LEN)
}

/// Answers a Neighbor Solicitation for one of `iface`'s IPv6 addresses with a solicited
/// Neighbor Advertisement, in place (RFC 4861 §7.2.4).
///
/// `buf[..len]` is the received frame; `buf` may be longer (the mbuf's tailroom), because
/// the advertisement ([`FRAME_LEN`], 86 bytes) can be longer than the solicitation (78
/// without options). Returns the length of the advertisement, or `None` (nothing written) if
/// the frame is not a valid NS for our address or `buf` is shorter than 86 bytes.
///
/// The advertisement comes from the target address, carries our MAC in a target link-layer
/// address option (RFC 4861 §7.2.4: required when answering a multicast solicitation;
/// always included here), sets Override (we are not a proxy), and sets Router (espd forwards
/// packets). It goes to the solicitor with Solicited set, or, for duplicate address
/// detection (unspecified source), to all-nodes `ff02::1` with Solicited clear (RFC 4861
/// §7.2.4). The Ethernet destination is the solicitor's source link-layer address option, or
/// the frame's source MAC without one.
pub fn na_in_place(buf: &mut [u8], len: usize, iface: &Interface) -> Option<usize> {
    if buf.len() < FRAME_LEN {
        return None;
    }
    let frame = buf.get(..len)?;
    let ns = parse_ns(frame).ok()?;
    if !iface.is_local(IpAddr::V6(ns.target)) {
        return None;
    }
    let (dst, eth_dst, flags) = if ns.is_dad() {
        let all_nodes = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
        (all_nodes, Mac::ipv6_multicast(all_nodes), FLAG_ROUTER | FLAG_OVERRIDE)
    } else {
        let eth = ns.source_mac.or_else(|| ethernet::src(frame))?;
        (ns.src, eth, FLAG_ROUTER | FLAG_SOLICITED | FLAG_OVERRIDE)
    };
    emit(buf, eth_dst, iface.mac, ns.target, dst, TYPE_NEIGHBOR_ADVERT, flags, ns.target, OPTION_TARGET_LLA)
}

/// Builds a multicast Neighbor Solicitation for `target` (RFC 4861 §7.2.2): from `our_ip`,
/// to `target`'s solicited-node group at MAC `33:33:ff:xx:xx:xx`, with our MAC in a source
/// link-layer address option, hop limit 255. Returns 86, or `None` if `buf` is shorter.
pub fn build_ns(buf: &mut [u8], our_mac: Mac, our_ip: Ipv6Addr, target: Ipv6Addr) -> Option<usize> {
    let group = solicited_node(target);
    emit(
        buf,
        Mac::ipv6_multicast(group),
        our_mac,
        our_ip,
        group,
        TYPE_NEIGHBOR_SOLICIT,
        0,
        target,
        OPTION_SOURCE_LLA,
    )
}

/// Builds an unsolicited Neighbor Advertisement of `our_ip` to all-nodes (RFC 4861 §7.2.6),
/// Override set, e.g. at start-up. Returns 86, or `None` if `buf` is shorter.
pub fn build_unsolicited_na(buf: &mut [u8], our_mac: Mac, our_ip: Ipv6Addr) -> Option<usize> {
    let all_nodes = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
    let flags = FLAG_ROUTER | FLAG_OVERRIDE;
    emit(
        buf,
        Mac::ipv6_multicast(all_nodes),
        our_mac,
        our_ip,
        all_nodes,
        TYPE_NEIGHBOR_ADVERT,
        flags,
        our_ip,
        OPTION_TARGET_LLA,
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    const OUR: Mac = Mac([0x02, 0, 0, 0, 0, 1]);
    const PEER: Mac = Mac([0x52, 0x54, 0, 0xab, 0xcd, 0xef]);

    fn ip6(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    fn iface() -> Interface {
        Interface::new(0, OUR, vec!["2001:db8::1/64".parse().unwrap(), "198.18.0.1/24".parse().unwrap()])
    }

    /// A Neighbor Solicitation as the peer would send it, built with our own emitter (the
    /// scapy integration test checks the emitter against an independent implementation).
    fn ns_from_peer(target: &str) -> Vec<u8> {
        let mut b = vec![0u8; 128];
        let n = build_ns(&mut b, PEER, ip6("2001:db8::2"), ip6(target)).unwrap();
        b.truncate(n);
        b
    }

    fn recompute_checksum(f: &mut [u8]) {
        f[56] = 0;
        f[57] = 0;
        let src = Ipv6Addr::from(<[u8; 16]>::try_from(&f[22..38]).unwrap());
        let dst = Ipv6Addr::from(<[u8; 16]>::try_from(&f[38..54]).unwrap());
        let plen = u16::from_be_bytes([f[18], f[19]]) as usize;
        let s = checksum::add(checksum::pseudo_header_v6(src, dst, 58, plen as u32), &f[54..54 + plen]);
        let c = checksum::finish(s);
        f[56..58].copy_from_slice(&c.to_be_bytes());
    }

    #[test]
    fn solicited_node_group() {
        assert_eq!(solicited_node(ip6("2001:db8::12:3456")), ip6("ff02::1:ff12:3456"));
        assert!(is_solicited_node(ip6("ff02::1:ff00:1")));
        assert!(!is_solicited_node(ip6("ff02::1")));
        assert!(!is_solicited_node(ip6("ff02::2:ff00:1")));
    }

    #[test]
    fn build_and_parse_ns() {
        let f = ns_from_peer("2001:db8::1");
        assert_eq!(f.len(), 86);
        assert_eq!(&f[0..6], &[0x33, 0x33, 0xff, 0, 0, 1]);
        let ns = parse_ns(&f).unwrap();
        assert_eq!(ns.src, ip6("2001:db8::2"));
        assert_eq!(ns.dst, ip6("ff02::1:ff00:1"));
        assert_eq!(ns.target, ip6("2001:db8::1"));
        assert_eq!(ns.source_mac, Some(PEER));
        assert_eq!(ns.learnable(), Some((ip6("2001:db8::2"), PEER)));
        assert_eq!(parse_na(&f), Err(NdError::WrongType));
        assert_eq!(build_ns(&mut [0u8; 85], OUR, ip6("::1"), ip6("::2")), None);
    }

    #[test]
    fn ns_validation() {
        let good = ns_from_peer("2001:db8::1");
        let mut f = good.clone();
        f[21] = 64;
        assert_eq!(parse_ns(&f), Err(NdError::BadHopLimit));
        let mut f = good.clone();
        f[70] ^= 1;
        assert_eq!(parse_ns(&f), Err(NdError::BadChecksum));
        let mut f = good.clone();
        f[55] = 1;
        recompute_checksum(&mut f);
        assert_eq!(parse_ns(&f), Err(NdError::BadCode));
        let mut f = good.clone();
        f[79] = 0; // option length zero
        recompute_checksum(&mut f);
        assert_eq!(parse_ns(&f), Err(NdError::BadOption));
        let mut f = good.clone();
        f[79] = 2; // 16-byte option running past the end
        recompute_checksum(&mut f);
        assert_eq!(parse_ns(&f), Err(NdError::BadOption));
        let mut f = good.clone();
        f[62] = 0xff; // multicast target
        recompute_checksum(&mut f);
        assert_eq!(parse_ns(&f), Err(NdError::MulticastTarget));
        let mut f = good.clone();
        f[22..38].fill(0); // DAD with a source link-layer option
        recompute_checksum(&mut f);
        assert_eq!(parse_ns(&f), Err(NdError::BadDad));
        let mut f = good.clone();
        f[20] = 0; // hop-by-hop header in front
        assert_eq!(parse_ns(&f), Err(NdError::NotIcmpv6));
        let mut f = good.clone();
        f[19] = 200; // payload length past the frame
        assert_eq!(parse_ns(&f), Err(NdError::Truncated));
        let mut f = good.clone();
        f[14] = 0x40;
        assert_eq!(parse_ns(&f), Err(NdError::NotIpv6));
        assert_eq!(parse_ns(&good[..60]), Err(NdError::Truncated));
        // Padding past the IPv6 payload is ignored.
        let mut padded = good.clone();
        padded.extend_from_slice(&[0xee; 10]);
        assert!(parse_ns(&padded).is_ok());
    }

    #[test]
    fn answers_ns_for_our_address() {
        let mut buf = ns_from_peer("2001:db8::1");
        let len = buf.len();
        buf.resize(2048, 0);
        let n = na_in_place(&mut buf, len, &iface()).unwrap();
        assert_eq!(n, 86);
        let na = parse_na(&buf[..n]).unwrap();
        assert_eq!(na.src, ip6("2001:db8::1"));
        assert_eq!(na.dst, ip6("2001:db8::2"));
        assert_eq!(na.target, ip6("2001:db8::1"));
        assert!(na.solicited && na.override_entry && na.router);
        assert_eq!(na.target_mac, Some(OUR));
        assert_eq!(ethernet::dst(&buf), Some(PEER));
        assert_eq!(ethernet::src(&buf), Some(OUR));
        assert_eq!(na.learnable(), Some((ip6("2001:db8::1"), OUR)));
    }

    #[test]
    fn answers_dad_to_all_nodes_and_ns_without_option_to_frame_source() {
        // DAD: unspecified source, no option (78 bytes); the NA is longer than the NS.
        let mut buf = ns_from_peer("2001:db8::1");
        buf.truncate(78);
        buf[18..20].copy_from_slice(&24u16.to_be_bytes());
        buf[22..38].fill(0);
        recompute_checksum(&mut buf);
        assert!(parse_ns(&buf).unwrap().is_dad());
        assert_eq!(na_in_place(&mut buf, 78, &iface()), None, "no room for the option");
        buf.resize(86, 0);
        let n = na_in_place(&mut buf, 78, &iface()).unwrap();
        let na = parse_na(&buf[..n]).unwrap();
        assert_eq!(na.dst, ip6("ff02::1"));
        assert!(!na.solicited && na.override_entry);
        assert_eq!(ethernet::dst(&buf), Some(Mac([0x33, 0x33, 0, 0, 0, 1])));

        // Unicast NS without a source link-layer address option: reply to the frame source.
        let mut buf = ns_from_peer("2001:db8::1");
        buf.truncate(78);
        buf[18..20].copy_from_slice(&24u16.to_be_bytes());
        buf[38..54].copy_from_slice(&ip6("2001:db8::1").octets());
        recompute_checksum(&mut buf);
        buf.resize(128, 0);
        let n = na_in_place(&mut buf, 78, &iface()).unwrap();
        assert_eq!(parse_na(&buf[..n]).unwrap().dst, ip6("2001:db8::2"));
        assert_eq!(ethernet::dst(&buf), Some(PEER));
    }

    #[test]
    fn ignores_ns_for_other_addresses() {
        let mut buf = ns_from_peer("2001:db8::99");
        let before = buf.clone();
        assert_eq!(na_in_place(&mut buf, 86, &iface()), None);
        assert_eq!(buf, before);
        assert_eq!(na_in_place(&mut buf, 1000, &iface()), None, "len past the buffer");
    }

    #[test]
    fn na_validation_and_unsolicited() {
        let mut buf = [0u8; 86];
        let n = build_unsolicited_na(&mut buf, OUR, ip6("2001:db8::1")).unwrap();
        let na = parse_na(&buf[..n]).unwrap();
        assert!(!na.solicited && na.override_entry);
        assert_eq!(na.dst, ip6("ff02::1"));
        buf[58] |= FLAG_SOLICITED;
        recompute_checksum(&mut buf);
        assert_eq!(parse_na(&buf), Err(NdError::SolicitedToMulticast));
    }
}
