//! What a received frame is for: the first decision of the worker loop for every frame that
//! is not handled by a fast path.
//!
//! [`classify`] takes an untagged Ethernet frame, the port it came in on and the gateway's
//! interfaces, and returns a [`Classified`] verdict with the offsets the next stage needs.
//! It reads at most the headers, never allocates, and never panics or reads out of bounds,
//! whatever the bytes; every length field is checked against the frame before use.
//!
//! Rules, in order:
//! 1. Layer 2: the destination MAC must be the port's MAC, broadcast or multicast, else the
//!    frame is ignored (promiscuous mode leftovers). 802.1Q/802.1ad tags are ignored: espd runs
//!    on untagged ports. ARP is [`Classified::Arp`] once [`arp::parse`] accepts it.
//! 2. IPv4 (RFC 791): version, IHL >= 5, total length within the frame (trailing Ethernet
//!    padding ignored), header checksum (RFC 1812 §5.2.2: a router MUST verify it). IPv6 (RFC
//!    8200): version, payload length within the frame; no jumbograms.
//! 3. Martian sources are malformed (RFC 1812 §5.3.7, RFC 4291 §2.5.2-2.5.3): multicast,
//!    limited broadcast, loopback, class E, or one of our own addresses.
//! 4. To us (strong host model, RFC 1122 §3.3.4.2: the destination is an address of the port
//!    the frame came in on): ESP (IP protocol 50) and UDP 4500 without the non-ESP marker are
//!    [`Classified::EspToUs`] (RFC 3948 §2.1); UDP 500, and UDP 4500 with the 4-byte zero
//!    non-ESP marker, are [`Classified::IkeToUs`] (RFC 3948 §2.2); UDP 4500 carrying the single
//!    byte 0xFF is [`Classified::NatKeepalive`] (RFC 3948 §2.3); ICMP echo requests are
//!    [`Classified::IcmpEchoToUs`]; everything else, including **every fragment** (of ESP or
//!    IKE too: reassembly is the host stack's job, behind the TAP interface) and IPv6 packets
//!    with a routing header still to process, is [`Classified::OtherToUs`].
//! 5. Neighbour solicitations and advertisements (ICMPv6 135/136 right after the IPv6
//!    header, to one of our addresses or to a multicast group) are returned as such, for
//!    [`nd`] to validate; limited and directed broadcasts and link-local multicast (224.0.0.0/24,
//!    ff02::/16) are [`Classified::OtherToUs`]; other multicast is ignored (espd does not route
//!    multicast); an address of another port is ignored.
//! 6. Anything else sent to our MAC is [`Classified::Transit`]: the candidate for an outbound
//!    policy lookup, with the 5-tuple (ports of TCP, UDP, SCTP, UDP-Lite and DCCP; ICMP type
//!    and code in the port fields as Linux's xfrm selectors have them; none in a non-first
//!    fragment, RFC 4301 §7). TTL/hop limit is the forwarding stage's business. Link-local
//!    IPv6 addresses are never forwarded (RFC 4291 §2.5.6).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::addr::{by_port, IfAddr, Interface};
use super::arp;
use super::checksum;
use super::ethernet::{
    self, Mac, ETHERTYPE_ARP, ETHERTYPE_IPV4, ETHERTYPE_IPV6, ETHERTYPE_QINQ, ETHERTYPE_VLAN, HEADER_LEN,
};
use super::nd;

/// IP protocol numbers (IANA "Assigned Internet Protocol Numbers").
pub mod proto {
    /// IPv6 hop-by-hop options.
    pub const HOPOPT: u8 = 0;
    /// ICMP.
    pub const ICMP: u8 = 1;
    /// TCP.
    pub const TCP: u8 = 6;
    /// UDP.
    pub const UDP: u8 = 17;
    /// DCCP.
    pub const DCCP: u8 = 33;
    /// IPv6 routing header.
    pub const ROUTING: u8 = 43;
    /// IPv6 fragment header.
    pub const FRAGMENT: u8 = 44;
    /// ESP.
    pub const ESP: u8 = 50;
    /// AH.
    pub const AH: u8 = 51;
    /// ICMPv6.
    pub const ICMPV6: u8 = 58;
    /// IPv6 "no next header".
    pub const NO_NEXT: u8 = 59;
    /// IPv6 destination options.
    pub const DSTOPTS: u8 = 60;
    /// SCTP.
    pub const SCTP: u8 = 132;
    /// UDP-Lite.
    pub const UDPLITE: u8 = 136;
}

/// UDP port of IKE (IANA `isakmp`).
pub const IKE_PORT: u16 = 500;
/// UDP port of IKE and ESP behind NAT (RFC 3948 §1, RFC 3947).
pub const NAT_T_PORT: u16 = 4500;

const IPV4_MIN_HEADER: usize = 20;
const IPV6_HEADER: usize = 40;
const UDP_HEADER: usize = 8;
/// SPI + sequence number: the smallest ESP header (RFC 4303 §2).
const ESP_MIN: usize = 8;
/// At most this many IPv6 extension headers are walked (bounding the work per packet).
const MAX_EXTENSION_HEADERS: usize = 8;

/// IP version.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
pub enum Family {
    /// IPv4.
    V4,
    /// IPv6.
    V6,
}

/// Whether a packet is a fragment, and which.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
pub enum Fragment {
    /// A whole packet.
    No,
    /// The first fragment (offset 0, more fragments): upper-layer header present.
    First,
    /// A later fragment: no upper-layer header, no ports.
    NonFirst,
}

/// Why a frame was dropped as malformed; `#[repr(u8)]` to index per-lcore counters.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
#[repr(u8)]
pub enum Malformed {
    /// Shorter than the headers it announces.
    Truncated,
    /// ARP that [`arp::parse`] rejects.
    BadArp,
    /// IP version field does not match the EtherType.
    BadIpVersion,
    /// IPv4 IHL below 5 or beyond the total length.
    BadIpv4HeaderLength,
    /// IPv4 total length / IPv6 payload length beyond the frame, or IPv4 total length
    /// shorter than the header; IPv6 jumbogram (payload length 0).
    BadIpLength,
    /// IPv4 header checksum does not verify.
    BadIpv4Checksum,
    /// Source address no packet may carry (multicast, broadcast, loopback, class E, ours).
    MartianSource,
    /// Destination address no packet may be forwarded to (0.0.0.0, loopback, class E, ::).
    MartianDestination,
    /// IPv6 extension headers: hop-by-hop not first, running past the packet, too many.
    BadExtensionHeader,
    /// UDP length below 8 or beyond the IP payload.
    BadUdpLength,
    /// ESP shorter than SPI + sequence number.
    RuntEsp,
    /// ESP with SPI 0, which RFC 4303 §2.1 reserves and forbids on the wire.
    ZeroSpi,
    /// UDP 4500 payload of 1-3 bytes that is not a keepalive.
    BadUdpEncapsulation,
    /// Neighbour discovery with a hop limit other than 255 (RFC 4861 §7.1).
    BadNeighborDiscovery,
}

/// Why a frame was set aside without being malformed.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
#[repr(u8)]
pub enum Ignored {
    /// The port is not one of the interfaces given.
    UnknownPort,
    /// Unicast to another MAC.
    NotOurMac,
    /// 802.1Q or 802.1ad tagged: espd's ports are untagged.
    VlanTagged,
    /// Neither ARP, IPv4 nor IPv6 (LLDP, ...).
    UnsupportedEtherType,
    /// Multicast beyond the link-local groups: espd does not route multicast.
    Multicast,
    /// An address of another port (strong host model).
    OtherInterfaceAddress,
    /// Unicast to an address not ours but received as a link-layer broadcast or multicast
    /// (RFC 1812 §5.3.4: not forwarded).
    LinkBroadcastTransit,
    /// IPv6 link-local source or destination, not ours (RFC 4291 §2.5.6: never forwarded).
    LinkLocalTransit,
}

/// The verdict on one frame. Offsets count from the start of the frame (the Ethernet
/// header).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Classified {
    /// ARP (parsed and valid): answer with [`arp::reply_in_place`] and/or learn.
    Arp,
    /// ICMPv6 Neighbor Solicitation (hop limit 255): [`nd::na_in_place`].
    NeighborSolicit,
    /// ICMPv6 Neighbor Advertisement (hop limit 255): [`nd::parse_na`] and learn.
    NeighborAdvert,
    /// ICMP/ICMPv6 echo request to one of our unicast addresses, unfragmented (for IPv6,
    /// without extension headers): [`super::icmp`]'s echo reply functions.
    IcmpEchoToUs {
        /// IPv4 or IPv6.
        family: Family,
        /// Offset of the IP header.
        l3_offset: usize,
    },
    /// IKE to us: UDP 500, or UDP 4500 after the non-ESP marker.
    IkeToUs {
        /// IPv4 or IPv6.
        family: Family,
        /// Offset of the IP header.
        l3_offset: usize,
        /// Offset of the IKE header (after the UDP header and the marker, if any).
        ike_offset: usize,
        /// Came on port 4500 with the non-ESP marker (RFC 3948 §2.2).
        non_esp_marker: bool,
    },
    /// A NAT keepalive (RFC 3948 §2.3): drop it, perhaps refresh the peer's NAT state.
    NatKeepalive {
        /// IPv4 or IPv6.
        family: Family,
        /// Offset of the IP header.
        l3_offset: usize,
    },
    /// ESP to us, unfragmented: look the SPI up and decrypt.
    EspToUs {
        /// IPv4 or IPv6.
        family: Family,
        /// The SPI (non-zero).
        spi: u32,
        /// Inside UDP 4500 (RFC 3948).
        udp_encap: bool,
        /// Offset of the IP header.
        l3_offset: usize,
        /// Offset of the ESP header (the SPI).
        esp_offset: usize,
    },
    /// Anything else for us or for the link (other ICMP, TCP, fragments, DHCP, RAs, ...):
    /// the host stack's, through the TAP interface.
    OtherToUs {
        /// IPv4 or IPv6.
        family: Family,
        /// Offset of the IP header.
        l3_offset: usize,
    },
    /// Not for us: a candidate for the outbound policy lookup.
    Transit {
        /// IPv4 or IPv6.
        family: Family,
        /// Source address.
        src: IpAddr,
        /// Destination address.
        dst: IpAddr,
        /// Upper-layer protocol (after IPv6 extension headers).
        proto: u8,
        /// Source port; ICMP type; 0 without ports.
        sport: u16,
        /// Destination port; ICMP code; 0 without ports.
        dport: u16,
        /// Offset of the IP header.
        l3_offset: usize,
        /// Offset of the upper-layer header (meaningless for a non-first fragment).
        l4_offset: usize,
        /// Whether this is a fragment; a non-first fragment has no ports.
        fragment: Fragment,
    },
    /// Set aside, not an error.
    Ignore(Ignored),
    /// Dropped: the bytes are wrong.
    Malformed(Malformed),
}

/// Where the upper layer of an IPv6 packet starts, after its extension headers.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct UpperLayer {
    /// The upper-layer protocol (or the extension header where the walk stopped: AH, no
    /// next header, or anything unknown).
    pub protocol: u8,
    /// Offset from the start of the IPv6 header.
    pub offset: usize,
    /// Fragment header present, and which fragment.
    pub fragment: Fragment,
    /// A routing header with segments left (the packet is not at its final destination).
    pub routing_pending: bool,
    /// Any extension header was present.
    pub has_extensions: bool,
}

/// Walks the IPv6 extension headers (RFC 8200 §4) of `packet` (from the IPv6 header on,
/// bounded by the slice): hop-by-hop (first only, §4.1), routing, destination options,
/// fragment. Stops at the first other header, or after a non-first fragment's fragment header.
pub fn ipv6_upper_layer(packet: &[u8]) -> Result<UpperLayer, Malformed> {
    let mut next = *packet.get(6).ok_or(Malformed::Truncated)?;
    let mut offset = IPV6_HEADER;
    let mut up = UpperLayer {
        protocol: next,
        offset,
        fragment: Fragment::No,
        routing_pending: false,
        has_extensions: false,
    };
    for _ in 0..MAX_EXTENSION_HEADERS {
        let len = match next {
            proto::HOPOPT | proto::ROUTING | proto::DSTOPTS => {
                // RFC 8200 §4.3: hop-by-hop, if present, immediately follows the IPv6 header.
                if next == proto::HOPOPT && offset != IPV6_HEADER {
                    return Err(Malformed::BadExtensionHeader);
                }
                let units = usize::from(*packet.get(offset + 1).ok_or(Malformed::BadExtensionHeader)?);
                if next == proto::ROUTING && packet.get(offset + 3).is_some_and(|left| *left != 0) {
                    up.routing_pending = true;
                }
                (units + 1) * 8
            }
            proto::FRAGMENT => {
                let fo = ethernet::read_u16(packet, offset + 2).ok_or(Malformed::BadExtensionHeader)?;
                up.fragment = if fo >> 3 != 0 {
                    Fragment::NonFirst
                } else if fo & 1 != 0 {
                    Fragment::First
                } else {
                    // An "atomic fragment" (offset 0, M 0): a whole packet (RFC 6946).
                    Fragment::No
                };
                8
            }
            _ => {
                up.protocol = next;
                up.offset = offset;
                return Ok(up);
            }
        };
        up.has_extensions = true;
        let hdr = packet.get(offset..offset + len).ok_or(Malformed::BadExtensionHeader)?;
        next = *hdr.first().ok_or(Malformed::BadExtensionHeader)?;
        offset += len;
        if up.fragment == Fragment::NonFirst {
            up.protocol = next;
            up.offset = offset;
            return Ok(up);
        }
    }
    Err(Malformed::BadExtensionHeader)
}

/// Classifies one frame received on `rx_port`; `ifaces` are all the gateway's interfaces.
pub fn classify(frame: &[u8], rx_port: u16, ifaces: &[Interface]) -> Classified {
    match classify_inner(frame, rx_port, ifaces) {
        Ok(c) | Err(c) => c,
    }
}

fn malformed(m: Malformed) -> Classified {
    Classified::Malformed(m)
}

type Verdict = Result<Classified, Classified>;

fn classify_inner(frame: &[u8], rx_port: u16, ifaces: &[Interface]) -> Verdict {
    let rx = by_port(ifaces, rx_port).ok_or(Classified::Ignore(Ignored::UnknownPort))?;
    let dst_mac = ethernet::dst(frame).ok_or(malformed(Malformed::Truncated))?;
    let l2_group = dst_mac.is_multicast();
    if !l2_group && dst_mac != rx.mac {
        return Err(Classified::Ignore(Ignored::NotOurMac));
    }
    match ethernet::ethertype(frame) {
        Some(ETHERTYPE_ARP) => match arp::parse(frame) {
            Ok(_) => Ok(Classified::Arp),
            Err(_) => Err(malformed(Malformed::BadArp)),
        },
        Some(ETHERTYPE_IPV4) => ipv4(frame, rx, ifaces, l2_group),
        Some(ETHERTYPE_IPV6) => ipv6(frame, rx, ifaces, l2_group),
        Some(ETHERTYPE_VLAN | ETHERTYPE_QINQ) => Err(Classified::Ignore(Ignored::VlanTagged)),
        _ => Err(Classified::Ignore(Ignored::UnsupportedEtherType)),
    }
}

fn is_ours_anywhere(ifaces: &[Interface], ip: IpAddr) -> bool {
    ifaces.iter().any(|i| i.is_local(ip))
}

fn ipv4_martian_source(a: Ipv4Addr) -> bool {
    a.is_multicast() || a.is_broadcast() || a.is_loopback() || a.octets()[0] >= 240
}

fn ipv4(frame: &[u8], rx: &Interface, ifaces: &[Interface], l2_group: bool) -> Verdict {
    let l3 = HEADER_LEN;
    let ip = frame.get(l3..).ok_or(malformed(Malformed::Truncated))?;
    let vihl = *ip.first().ok_or(malformed(Malformed::Truncated))?;
    if vihl >> 4 != 4 {
        return Err(malformed(Malformed::BadIpVersion));
    }
    let ihl = usize::from(vihl & 0x0f) * 4;
    if ihl < IPV4_MIN_HEADER {
        return Err(malformed(Malformed::BadIpv4HeaderLength));
    }
    let header = ip.get(..ihl).ok_or(malformed(Malformed::Truncated))?;
    let total = usize::from(ethernet::read_u16(ip, 2).ok_or(malformed(Malformed::Truncated))?);
    if total < ihl {
        return Err(malformed(Malformed::BadIpv4HeaderLength));
    }
    // Trailing bytes past the total length are Ethernet padding.
    let ip = ip.get(..total).ok_or(malformed(Malformed::BadIpLength))?;
    // RFC 1812 §5.2.2: a router MUST verify the IP header checksum.
    if !checksum::verify(header) {
        return Err(malformed(Malformed::BadIpv4Checksum));
    }
    let read_ip = |at| ethernet::read_u32(ip, at).map(Ipv4Addr::from).ok_or(malformed(Malformed::Truncated));
    let (src, dst) = (read_ip(12)?, read_ip(16)?);
    let protocol = *ip.get(9).ok_or(malformed(Malformed::Truncated))?;
    let frag_field = ethernet::read_u16(ip, 6).ok_or(malformed(Malformed::Truncated))?;
    let fragment = if frag_field & 0x1fff != 0 {
        Fragment::NonFirst
    } else if frag_field & 0x2000 != 0 {
        Fragment::First
    } else {
        Fragment::No
    };
    // RFC 1812 §5.3.7: martian sources. 0.0.0.0 is only a source for DHCP-like broadcasts.
    if ipv4_martian_source(src) || is_ours_anywhere(ifaces, IpAddr::V4(src)) {
        return Err(malformed(Malformed::MartianSource));
    }
    let family = Family::V4;
    let to_host = Classified::OtherToUs { family, l3_offset: l3 };

    if rx.is_local(IpAddr::V4(dst)) {
        if src.is_unspecified() {
            return Err(malformed(Malformed::MartianSource));
        }
        if fragment != Fragment::No {
            // Reassembly is the host stack's job (it owns the TAP side); this includes
            // fragmented ESP and IKE.
            return Ok(to_host);
        }
        let payload = ip.get(ihl..).ok_or(malformed(Malformed::Truncated))?;
        return to_us(payload, family, l3, l3 + ihl, protocol);
    }
    if dst.is_broadcast() || rx.is_directed_broadcast(dst) || is_link_local_group_v4(dst) {
        return Ok(to_host);
    }
    if dst.is_multicast() {
        return Err(Classified::Ignore(Ignored::Multicast));
    }
    if is_ours_anywhere(ifaces, IpAddr::V4(dst)) {
        return Err(Classified::Ignore(Ignored::OtherInterfaceAddress));
    }
    if l2_group {
        return Err(Classified::Ignore(Ignored::LinkBroadcastTransit));
    }
    if src.is_unspecified() {
        return Err(malformed(Malformed::MartianSource));
    }
    if dst.is_unspecified() || dst.is_loopback() || dst.octets()[0] >= 240 {
        return Err(malformed(Malformed::MartianDestination));
    }
    let l4 = ip.get(ihl..).ok_or(malformed(Malformed::Truncated))?;
    let (sport, dport) = ports(l4, protocol, fragment)?;
    Ok(Classified::Transit {
        family,
        src: IpAddr::V4(src),
        dst: IpAddr::V4(dst),
        proto: protocol,
        sport,
        dport,
        l3_offset: l3,
        l4_offset: l3 + ihl,
        fragment,
    })
}

/// 224.0.0.0/24: link-local multicast (RFC 5771 §4), the host's business (OSPF, VRRP, ...).
fn is_link_local_group_v4(a: Ipv4Addr) -> bool {
    u32::from(a) >> 8 == 0xe0_00_00
}

fn ipv6(frame: &[u8], rx: &Interface, ifaces: &[Interface], l2_group: bool) -> Verdict {
    let l3 = HEADER_LEN;
    let ip = frame.get(l3..).ok_or(malformed(Malformed::Truncated))?;
    if ip.len() < IPV6_HEADER {
        return Err(malformed(Malformed::Truncated));
    }
    if ip.first().map(|v| v >> 4) != Some(6) {
        return Err(malformed(Malformed::BadIpVersion));
    }
    let payload_len = usize::from(ethernet::read_u16(ip, 4).ok_or(malformed(Malformed::Truncated))?);
    let next = *ip.get(6).ok_or(malformed(Malformed::Truncated))?;
    if payload_len == 0 && next == proto::HOPOPT {
        // RFC 2675 jumbograms cannot occur on an Ethernet link.
        return Err(malformed(Malformed::BadIpLength));
    }
    let ip = ip.get(..IPV6_HEADER + payload_len).ok_or(malformed(Malformed::BadIpLength))?;
    let read_ip =
        |at| ethernet::read_16_bytes(ip, at).map(Ipv6Addr::from).ok_or(malformed(Malformed::Truncated));
    let (src, dst) = (read_ip(8)?, read_ip(24)?);
    // RFC 4291 §2.5.3, §2.7: loopback and multicast are never sources.
    if src.is_multicast() || src.is_loopback() || is_ours_anywhere(ifaces, IpAddr::V6(src)) {
        return Err(malformed(Malformed::MartianSource));
    }
    let family = Family::V6;
    let to_host = Classified::OtherToUs { family, l3_offset: l3 };
    let local = rx.is_local(IpAddr::V6(dst));

    // Neighbour discovery: ICMPv6 right after the header, to us or to a group.
    if next == proto::ICMPV6 && (local || dst.is_multicast()) {
        let kind = ip.get(IPV6_HEADER).copied();
        if matches!(kind, Some(nd::TYPE_NEIGHBOR_SOLICIT | nd::TYPE_NEIGHBOR_ADVERT)) {
            // RFC 4861 §7.1.1/§7.1.2: hop limit 255, or the message came through a router.
            if ip.get(7) != Some(&255) {
                return Err(malformed(Malformed::BadNeighborDiscovery));
            }
            return Ok(if kind == Some(nd::TYPE_NEIGHBOR_SOLICIT) {
                Classified::NeighborSolicit
            } else {
                Classified::NeighborAdvert
            });
        }
    }

    if local {
        if src.is_unspecified() {
            return Err(malformed(Malformed::MartianSource));
        }
        let up = ipv6_upper_layer(ip).map_err(malformed)?;
        if up.fragment != Fragment::No || up.routing_pending {
            // Reassembly and source routing are the host stack's job.
            return Ok(to_host);
        }
        if up.protocol == proto::ICMPV6 && up.has_extensions {
            // The echo reply is built in place only without extension headers.
            return Ok(to_host);
        }
        let payload = ip.get(up.offset..).ok_or(malformed(Malformed::Truncated))?;
        return to_us(payload, family, l3, l3 + up.offset, up.protocol);
    }
    if dst.is_multicast() {
        // ff02::/16: link-local scope groups (all-nodes, MLD, RAs) go to the host stack.
        return if dst.segments()[0] == 0xff02 {
            Ok(to_host)
        } else {
            Err(Classified::Ignore(Ignored::Multicast))
        };
    }
    if is_ours_anywhere(ifaces, IpAddr::V6(dst)) {
        return Err(Classified::Ignore(Ignored::OtherInterfaceAddress));
    }
    if l2_group {
        return Err(Classified::Ignore(Ignored::LinkBroadcastTransit));
    }
    if src.is_unspecified() {
        return Err(malformed(Malformed::MartianSource));
    }
    if dst.is_unspecified() || dst.is_loopback() {
        return Err(malformed(Malformed::MartianDestination));
    }
    if is_link_local_v6(src) || is_link_local_v6(dst) {
        return Err(Classified::Ignore(Ignored::LinkLocalTransit));
    }
    let up = ipv6_upper_layer(ip).map_err(malformed)?;
    let l4 = ip.get(up.offset..).ok_or(malformed(Malformed::Truncated))?;
    let (sport, dport) = ports(l4, up.protocol, up.fragment)?;
    Ok(Classified::Transit {
        family,
        src: IpAddr::V6(src),
        dst: IpAddr::V6(dst),
        proto: up.protocol,
        sport,
        dport,
        l3_offset: l3,
        l4_offset: l3 + up.offset,
        fragment: up.fragment,
    })
}

/// fe80::/10 (RFC 4291 §2.5.6).
fn is_link_local_v6(a: Ipv6Addr) -> bool {
    a.segments()[0] & 0xffc0 == 0xfe80
}

/// The selector "ports" of a transit packet's upper layer: TCP, UDP, SCTP, UDP-Lite and DCCP
/// ports; ICMP/ICMPv6 type and code (as Linux's xfrm puts them in the port selectors). None
/// for a non-first fragment (RFC 4301 §7) or other protocols.
fn ports(l4: &[u8], protocol: u8, fragment: Fragment) -> Result<(u16, u16), Classified> {
    if fragment == Fragment::NonFirst {
        return Ok((0, 0));
    }
    match protocol {
        proto::TCP | proto::UDP | proto::SCTP | proto::UDPLITE | proto::DCCP => {
            let s = ethernet::read_u16(l4, 0).ok_or(malformed(Malformed::Truncated))?;
            let d = ethernet::read_u16(l4, 2).ok_or(malformed(Malformed::Truncated))?;
            Ok((s, d))
        }
        proto::ICMP | proto::ICMPV6 => {
            let t = l4.first().ok_or(malformed(Malformed::Truncated))?;
            let c = l4.get(1).ok_or(malformed(Malformed::Truncated))?;
            Ok((u16::from(*t), u16::from(*c)))
        }
        _ => Ok((0, 0)),
    }
}

/// A whole (unfragmented) packet to one of our unicast addresses; `payload` is the upper
/// layer, bounded by the IP length; `l4` its offset in the frame.
fn to_us(payload: &[u8], family: Family, l3: usize, l4: usize, protocol: u8) -> Verdict {
    let to_host = Classified::OtherToUs { family, l3_offset: l3 };
    match protocol {
        proto::ESP => {
            let spi = esp_spi(payload)?;
            Ok(Classified::EspToUs { family, spi, udp_encap: false, l3_offset: l3, esp_offset: l4 })
        }
        proto::UDP => {
            if payload.len() < UDP_HEADER {
                return Err(malformed(Malformed::Truncated));
            }
            let udp_len = usize::from(ethernet::read_u16(payload, 4).ok_or(malformed(Malformed::Truncated))?);
            if udp_len < UDP_HEADER || udp_len > payload.len() {
                return Err(malformed(Malformed::BadUdpLength));
            }
            let dport = ethernet::read_u16(payload, 2).ok_or(malformed(Malformed::Truncated))?;
            let data = payload.get(UDP_HEADER..udp_len).ok_or(malformed(Malformed::BadUdpLength))?;
            let data_offset = l4 + UDP_HEADER;
            match dport {
                IKE_PORT => Ok(Classified::IkeToUs {
                    family,
                    l3_offset: l3,
                    ike_offset: data_offset,
                    non_esp_marker: false,
                }),
                NAT_T_PORT => match data {
                    // RFC 3948 §2.3: a NAT-keepalive is one byte, 0xFF.
                    [0xff] => Ok(Classified::NatKeepalive { family, l3_offset: l3 }),
                    // RFC 3948 §2.2: four zero bytes (where an SPI cannot be 0) mark IKE.
                    [0, 0, 0, 0, ..] => Ok(Classified::IkeToUs {
                        family,
                        l3_offset: l3,
                        ike_offset: data_offset + 4,
                        non_esp_marker: true,
                    }),
                    // RFC 3948 §2.1: otherwise the payload is an ESP packet.
                    [_, _, _, _, ..] => {
                        let spi = esp_spi(data)?;
                        Ok(Classified::EspToUs {
                            family,
                            spi,
                            udp_encap: true,
                            l3_offset: l3,
                            esp_offset: data_offset,
                        })
                    }
                    _ => Err(malformed(Malformed::BadUdpEncapsulation)),
                },
                _ => Ok(to_host),
            }
        }
        proto::ICMP if family == Family::V4 => {
            Ok(if payload.first() == Some(&8) && payload.get(1) == Some(&0) {
                Classified::IcmpEchoToUs { family, l3_offset: l3 }
            } else {
                to_host
            })
        }
        proto::ICMPV6 if family == Family::V6 => {
            Ok(if payload.first() == Some(&128) && payload.get(1) == Some(&0) {
                Classified::IcmpEchoToUs { family, l3_offset: l3 }
            } else {
                to_host
            })
        }
        _ => Ok(to_host),
    }
}

/// The IPv4 side of the gateway's interfaces as integers, for [`FastV4::classify`]: built
/// once per worker from the same [`Interface`]s [`classify`] reads.
#[derive(Clone, Debug)]
pub struct FastV4 {
    ports: Vec<FastPort>,
    /// Every IPv4 address of every port.
    ours: Vec<u32>,
}

#[derive(Clone, Debug)]
struct FastPort {
    port: u16,
    mac: Mac,
    local: Vec<u32>,
    broadcast: Vec<u32>,
}

impl FastV4 {
    /// The tables for `ifaces`.
    pub fn new(ifaces: &[Interface]) -> FastV4 {
        let v4 = |a: &IfAddr| match a.addr {
            IpAddr::V4(v) => Some(u32::from(v)),
            IpAddr::V6(_) => None,
        };
        FastV4 {
            ports: ifaces
                .iter()
                .map(|i| FastPort {
                    port: i.port,
                    mac: i.mac,
                    local: i.addrs.iter().filter_map(v4).collect(),
                    broadcast: i.addrs.iter().filter_map(|a| a.broadcast().map(u32::from)).collect(),
                })
                .collect(),
            ours: ifaces.iter().flat_map(|i| i.addrs.iter().filter_map(v4)).collect(),
        }
    }

    /// The verdict of [`classify`] for the frames a gateway mostly carries, in one pass over
    /// the headers with integer compares: IPv4 unicast to the port's MAC, a 20-byte header
    /// with a good checksum, not a fragment, source and destination ordinary unicast
    /// addresses (not 0/8, 127/8, 224/3, not ours but the destination on the receiving
    /// port, not the port's directed broadcast). Such a frame is either to us ([`to_us`]
    /// decides what it is, as for the slow path) or transit (with [`ports`]). Anything
    /// else, malformed frames included, is `None`: [`classify`] decides, and counts.
    #[inline]
    pub fn classify(&self, frame: &[u8], rx_port: u16) -> Option<Classified> {
        let rx = self.ports.iter().find(|p| p.port == rx_port)?;
        if ethernet::dst(frame)? != rx.mac || ethernet::ethertype(frame)? != ETHERTYPE_IPV4 {
            return None;
        }
        let ip = frame.get(HEADER_LEN..)?;
        let header = ip.get(..IPV4_MIN_HEADER)?;
        let total = usize::from(ethernet::read_u16(ip, 2)?);
        let frag = ethernet::read_u16(ip, 6)?;
        // Version 4, IHL 5; neither MF nor an offset (DF may be set).
        if header.first() != Some(&0x45) || total < IPV4_MIN_HEADER || frag & 0x3fff != 0 {
            return None;
        }
        let ip = ip.get(..total)?;
        if !checksum::verify(header) {
            return None;
        }
        let (src, dst) = (ethernet::read_u32(ip, 12)?, ethernet::read_u32(ip, 16)?);
        let protocol = *ip.get(9)?;
        let ordinary = |a: u32| !matches!(a >> 24, 0 | 127 | 224..);
        if !ordinary(src) || !ordinary(dst) || self.ours.contains(&src) {
            return None;
        }
        let l4 = ip.get(IPV4_MIN_HEADER..)?;
        let (l3, l4_offset) = (HEADER_LEN, HEADER_LEN + IPV4_MIN_HEADER);
        if rx.local.contains(&dst) {
            return Some(match to_us(l4, Family::V4, l3, l4_offset, protocol) {
                Ok(c) | Err(c) => c,
            });
        }
        if self.ours.contains(&dst) || rx.broadcast.contains(&dst) {
            return None;
        }
        let (sport, dport) = ports(l4, protocol, Fragment::No).ok()?;
        Some(Classified::Transit {
            family: Family::V4,
            src: IpAddr::V4(Ipv4Addr::from(src)),
            dst: IpAddr::V4(Ipv4Addr::from(dst)),
            proto: protocol,
            sport,
            dport,
            l3_offset: l3,
            l4_offset,
            fragment: Fragment::No,
        })
    }
}

fn esp_spi(esp: &[u8]) -> Result<u32, Classified> {
    if esp.len() < ESP_MIN {
        return Err(malformed(Malformed::RuntEsp));
    }
    let spi = ethernet::read_u32(esp, 0).ok_or(malformed(Malformed::RuntEsp))?;
    // RFC 4303 §2.1: SPI 0 is reserved for local use and MUST NOT be sent on the wire.
    if spi == 0 {
        return Err(malformed(Malformed::ZeroSpi));
    }
    Ok(spi)
}

#[cfg(test)]
mod tests;
