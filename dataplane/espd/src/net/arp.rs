//! ARP (RFC 826) for Ethernet and IPv4 only, untagged frames only (no 802.1Q).
//!
//! Frame layout (offsets from the start of the Ethernet header):
//!
//! ```text
//!  0 dst MAC | 6 src MAC | 12 EtherType 0x0806
//! 14 htype 1 | 16 ptype 0x0800 | 18 hlen 6 | 19 plen 4 | 20 op
//! 22 sender MAC | 28 sender IPv4 | 32 target MAC | 38 target IPv4 | 42 (padding to 60)
//! ```
//!
//! [`parse`] is strict: hardware type Ethernet, protocol type IPv4, lengths exactly 6 and 4,
//! operation request or reply, a unicast sender MAC. Trailing bytes (Ethernet padding) are
//! ignored. No function here panics or reads out of bounds, whatever the input.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};

use super::addr::Interface;
use super::ethernet::{self, Mac, ETHERTYPE_ARP, ETHERTYPE_IPV4, HEADER_LEN, MIN_FRAME_LEN};
use super::neigh::{Learned, NeighError, NeighborTable};

/// Length of the ARP payload for Ethernet/IPv4.
pub const PAYLOAD_LEN: usize = 28;
/// Ethernet header + ARP payload, before padding.
pub const FRAME_LEN: usize = HEADER_LEN + PAYLOAD_LEN;

mod field {
    use std::ops::Range;
    pub const HTYPE: usize = 14;
    pub const PTYPE: usize = 16;
    pub const HLEN: usize = 18;
    pub const PLEN: usize = 19;
    pub const OP: usize = 20;
    pub const SHA: Range<usize> = 22..28;
    pub const SPA: Range<usize> = 28..32;
    pub const THA: Range<usize> = 32..38;
    pub const TPA: Range<usize> = 38..42;
}

const HTYPE_ETHERNET: u16 = 1;

/// The ARP operation (RFC 826 `ar$op`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u16)]
pub enum Operation {
    /// `ares_op$REQUEST`.
    Request = 1,
    /// `ares_op$REPLY`.
    Reply = 2,
}

/// A parsed Ethernet/IPv4 ARP packet.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct ArpPacket {
    /// Request or reply.
    pub op: Operation,
    /// `ar$sha`.
    pub sender_mac: Mac,
    /// `ar$spa` (0.0.0.0 in an RFC 5227 probe).
    pub sender_ip: Ipv4Addr,
    /// `ar$tha` (ignored in requests).
    pub target_mac: Mac,
    /// `ar$tpa`.
    pub target_ip: Ipv4Addr,
}

/// Why a frame is not an ARP packet we accept.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u8)]
pub enum ArpError {
    /// Shorter than 42 bytes.
    Truncated,
    /// EtherType is not 0x0806.
    NotArp,
    /// Hardware type is not Ethernet (1).
    UnsupportedHardware,
    /// Protocol type is not IPv4 (0x0800).
    UnsupportedProtocol,
    /// Address lengths are not 6 and 4.
    BadLengths,
    /// Neither request nor reply (RARP, InARP, ...).
    UnknownOperation,
    /// The sender MAC is multicast, broadcast or zero: nobody can be reached there.
    BadSenderMac,
    /// The sender IPv4 address is multicast or limited broadcast.
    BadSenderIp,
}

impl fmt::Display for ArpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ArpError::Truncated => "ARP frame shorter than 42 bytes",
            ArpError::NotArp => "not an ARP frame",
            ArpError::UnsupportedHardware => "ARP hardware type is not Ethernet",
            ArpError::UnsupportedProtocol => "ARP protocol type is not IPv4",
            ArpError::BadLengths => "ARP address lengths are not 6 and 4",
            ArpError::UnknownOperation => "ARP operation is neither request nor reply",
            ArpError::BadSenderMac => "ARP sender MAC is not unicast",
            ArpError::BadSenderIp => "ARP sender IP is multicast or broadcast",
        })
    }
}

impl std::error::Error for ArpError {}

fn ipv4_at(frame: &[u8], r: std::ops::Range<usize>) -> Option<Ipv4Addr> {
    let four: [u8; 4] = frame.get(r)?.try_into().ok()?;
    Some(Ipv4Addr::from(four))
}

fn mac_at(frame: &[u8], r: std::ops::Range<usize>) -> Option<Mac> {
    Mac::from_slice(frame.get(r)?)
}

/// Parses an Ethernet frame carrying ARP.
pub fn parse(frame: &[u8]) -> Result<ArpPacket, ArpError> {
    if frame.len() < FRAME_LEN {
        return Err(ArpError::Truncated);
    }
    let t = ArpError::Truncated;
    if ethernet::ethertype(frame) != Some(ETHERTYPE_ARP) {
        return Err(ArpError::NotArp);
    }
    if ethernet::read_u16(frame, field::HTYPE) != Some(HTYPE_ETHERNET) {
        return Err(ArpError::UnsupportedHardware);
    }
    if ethernet::read_u16(frame, field::PTYPE) != Some(ETHERTYPE_IPV4) {
        return Err(ArpError::UnsupportedProtocol);
    }
    if frame.get(field::HLEN) != Some(&6) || frame.get(field::PLEN) != Some(&4) {
        return Err(ArpError::BadLengths);
    }
    let op = match ethernet::read_u16(frame, field::OP) {
        Some(1) => Operation::Request,
        Some(2) => Operation::Reply,
        _ => return Err(ArpError::UnknownOperation),
    };
    let sender_mac = mac_at(frame, field::SHA).ok_or(t)?;
    if !sender_mac.is_unicast() {
        return Err(ArpError::BadSenderMac);
    }
    let sender_ip = ipv4_at(frame, field::SPA).ok_or(t)?;
    if sender_ip.is_multicast() || sender_ip.is_broadcast() {
        return Err(ArpError::BadSenderIp);
    }
    Ok(ArpPacket {
        op,
        sender_mac,
        sender_ip,
        target_mac: mac_at(frame, field::THA).ok_or(t)?,
        target_ip: ipv4_at(frame, field::TPA).ok_or(t)?,
    })
}

impl ArpPacket {
    /// The sender's address is worth learning: not the 0.0.0.0 of an RFC 5227 probe.
    pub fn sender_is_learnable(&self) -> bool {
        !self.sender_ip.is_unspecified()
    }

    /// A gratuitous ARP / RFC 5227 announcement: sender and target address are the same.
    pub fn is_gratuitous(&self) -> bool {
        self.sender_ip == self.target_ip
    }
}

/// What a received ARP frame teaches the neighbour table (`port`: the port index it came in
/// by): `None` if it teaches nothing (not valid ARP, or an RFC 5227 probe). A request or reply
/// for one of `iface`'s addresses updates the sender's entry if we have one — the answer to
/// our request, or a neighbour we know talking to us — and is refused as unsolicited
/// (counted) otherwise. ARP between other hosts refreshes an entry we have (RFC 826's merge
/// flag) and is otherwise ignored, uncounted (`Err(Unsolicited)` returned, not counted). RFC
/// 826 would also add the sender of a request for us; we do not, so that no host on the link
/// can fill the table.
pub fn learn(
    table: &NeighborTable,
    frame: &[u8],
    iface: &Interface,
    port: u16,
    now: u64,
) -> Option<Result<Learned, NeighError>> {
    let a = parse(frame).ok()?;
    if !a.sender_is_learnable() {
        return None;
    }
    let ip = IpAddr::V4(a.sender_ip);
    Some(if iface.is_local(IpAddr::V4(a.target_ip)) {
        table.learn(ip, a.sender_mac, port, now)
    } else {
        table.refresh(ip, a.sender_mac, port, now).and_then(|l| l.ok_or(NeighError::Unsolicited))
    })
}

/// Turns a received ARP request for one of `iface`'s IPv4 addresses into the reply, in place
/// (RFC 826 "Packet Reception": swap sender and target, put our MAC in the sender field, set
/// the opcode to reply, send to the requester). The Ethernet header goes from us to the
/// requester's `ar$sha`. The frame keeps its length (padding included). Returns `false`, frame
/// untouched, for anything else: not a valid request, not for our address, or a gratuitous
/// request (an announcement, which nobody waits for an answer to).
///
/// An RFC 5227 probe (sender 0.0.0.0) for our address is answered: that is how a host that
/// wants our address learns it is taken (RFC 5227 §2.1.1).
pub fn reply_in_place(frame: &mut [u8], iface: &Interface) -> bool {
    let Ok(p) = parse(frame) else { return false };
    if p.op != Operation::Request || p.is_gratuitous() || !iface.is_local(IpAddr::V4(p.target_ip)) {
        return false;
    }
    let Some(arp) = frame.get_mut(HEADER_LEN..FRAME_LEN) else { return false };
    arp.fill(0);
    write_payload(arp, Operation::Reply, iface.mac, p.target_ip, p.sender_mac, p.sender_ip);
    ethernet::write_header(frame, p.sender_mac, iface.mac, ETHERTYPE_ARP)
}

/// Writes the 28-byte payload into `arp` (exactly [`PAYLOAD_LEN`] bytes long).
fn write_payload(arp: &mut [u8], op: Operation, sha: Mac, spa: Ipv4Addr, tha: Mac, tpa: Ipv4Addr) {
    let mut p = [0u8; PAYLOAD_LEN];
    let parts: [&[u8]; 8] = [
        &HTYPE_ETHERNET.to_be_bytes(),
        &ETHERTYPE_IPV4.to_be_bytes(),
        &[6, 4],
        &(op as u16).to_be_bytes(),
        &sha.0,
        &spa.octets(),
        &tha.0,
        &tpa.octets(),
    ];
    let mut at = 0;
    for part in parts {
        if let Some(dst) = p.get_mut(at..at + part.len()) {
            dst.copy_from_slice(part);
        }
        at += part.len();
    }
    if let Some(dst) = arp.get_mut(..PAYLOAD_LEN) {
        dst.copy_from_slice(&p);
    }
}

fn build(
    buf: &mut [u8],
    eth_dst: Mac,
    op: Operation,
    sha: Mac,
    spa: Ipv4Addr,
    tha: Mac,
    tpa: Ipv4Addr,
) -> Option<usize> {
    let frame = buf.get_mut(..MIN_FRAME_LEN)?;
    frame.fill(0);
    ethernet::write_header(frame, eth_dst, sha, ETHERTYPE_ARP);
    write_payload(frame.get_mut(HEADER_LEN..FRAME_LEN)?, op, sha, spa, tha, tpa);
    Some(MIN_FRAME_LEN)
}

/// Builds a broadcast ARP request "who has `target_ip`? tell `our_ip`" into `buf`, padded to
/// the 60-byte Ethernet minimum; the target MAC is zero (RFC 5227 §2.1.1 recommends it).
/// Returns the frame length (60), or `None` if `buf` is shorter.
pub fn build_request(buf: &mut [u8], our_mac: Mac, our_ip: Ipv4Addr, target_ip: Ipv4Addr) -> Option<usize> {
    build(buf, Mac::BROADCAST, Operation::Request, our_mac, our_ip, Mac::ZERO, target_ip)
}

/// Builds a gratuitous ARP announcing `our_ip` at `our_mac` (an RFC 5227 §2.3 announcement:
/// a broadcast request whose sender and target address are both `our_ip`), so neighbours
/// update their caches, e.g. after start-up or a MAC change. Returns 60, or `None` if `buf`
/// is shorter.
pub fn build_gratuitous(buf: &mut [u8], our_mac: Mac, our_ip: Ipv4Addr) -> Option<usize> {
    build(buf, Mac::BROADCAST, Operation::Request, our_mac, our_ip, Mac::ZERO, our_ip)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    const OUR: Mac = Mac([0x02, 0x00, 0x00, 0x00, 0x00, 0x01]);

    fn iface() -> Interface {
        Interface::new(0, OUR, vec!["198.18.0.1/24".parse().unwrap()])
    }

    /// A request "who has 198.18.0.1? tell 198.18.0.2" from 52:54:00:12:34:56, as Wireshark
    /// shows one (60 bytes with padding).
    fn request_hex() -> Vec<u8> {
        let hex = "ffffffffffff525400123456080600010800060400015254001234 56c6120002000000000000c6120001"
            .replace(' ', "");
        let mut f: Vec<u8> =
            (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap()).collect();
        f.resize(60, 0);
        f
    }

    #[test]
    fn parses_a_request() {
        let p = parse(&request_hex()).unwrap();
        assert_eq!(
            p,
            ArpPacket {
                op: Operation::Request,
                sender_mac: Mac([0x52, 0x54, 0, 0x12, 0x34, 0x56]),
                sender_ip: Ipv4Addr::new(198, 18, 0, 2),
                target_mac: Mac::ZERO,
                target_ip: Ipv4Addr::new(198, 18, 0, 1),
            }
        );
        assert!(p.sender_is_learnable() && !p.is_gratuitous());
    }

    #[test]
    fn strict_parse_errors() {
        let good = request_hex();
        assert_eq!(parse(&good[..41]), Err(ArpError::Truncated));
        assert!(parse(&good[..42]).is_ok(), "unpadded frames are fine");
        let cases: [(usize, u8, ArpError); 8] = [
            (12, 0x08, ArpError::NotArp),
            (15, 6, ArpError::UnsupportedHardware),
            (17, 0xdd, ArpError::UnsupportedProtocol),
            (18, 8, ArpError::BadLengths),
            (19, 16, ArpError::BadLengths),
            (21, 3, ArpError::UnknownOperation),
            (22, 0x01, ArpError::BadSenderMac),
            (28, 224, ArpError::BadSenderIp),
        ];
        for (at, v, err) in cases {
            let mut f = good.clone();
            if at == 12 {
                f[13] = 0x00;
            } else {
                f[at] = v;
            }
            assert_eq!(parse(&f), Err(err), "byte {at}");
        }
    }

    #[test]
    fn answers_a_request_for_our_address() {
        let mut f = request_hex();
        assert!(reply_in_place(&mut f, &iface()));
        assert_eq!(f.len(), 60);
        let p = parse(&f).unwrap();
        assert_eq!(p.op, Operation::Reply);
        assert_eq!((p.sender_mac, p.sender_ip), (OUR, Ipv4Addr::new(198, 18, 0, 1)));
        assert_eq!(
            (p.target_mac, p.target_ip),
            (Mac([0x52, 0x54, 0, 0x12, 0x34, 0x56]), Ipv4Addr::new(198, 18, 0, 2))
        );
        assert_eq!(ethernet::dst(&f), Some(Mac([0x52, 0x54, 0, 0x12, 0x34, 0x56])));
        assert_eq!(ethernet::src(&f), Some(OUR));
        assert!(f[42..].iter().all(|&b| b == 0));
    }

    #[test]
    fn leaves_other_frames_alone() {
        // Not our address.
        let mut f = request_hex();
        f[41] = 9;
        let before = f.clone();
        assert!(!reply_in_place(&mut f, &iface()));
        assert_eq!(f, before);
        // A reply.
        let mut f = request_hex();
        f[21] = 2;
        assert!(!reply_in_place(&mut f, &iface()));
        // A gratuitous request for our own address (someone else claims it).
        let mut f = request_hex();
        f[28..32].copy_from_slice(&[198, 18, 0, 1]);
        assert!(!reply_in_place(&mut f, &iface()));
        // Truncated.
        let mut f = request_hex();
        assert!(!reply_in_place(&mut f[..30], &iface()));
    }

    #[test]
    fn builds_request_and_gratuitous() {
        let mut buf = [0xaau8; 64];
        let n = build_request(&mut buf, OUR, Ipv4Addr::new(198, 18, 0, 1), Ipv4Addr::new(198, 18, 0, 254))
            .unwrap();
        assert_eq!(n, 60);
        let p = parse(&buf[..n]).unwrap();
        assert_eq!(p.op, Operation::Request);
        assert_eq!((p.sender_mac, p.sender_ip, p.target_mac), (OUR, Ipv4Addr::new(198, 18, 0, 1), Mac::ZERO));
        assert_eq!(p.target_ip, Ipv4Addr::new(198, 18, 0, 254));
        assert_eq!(ethernet::dst(&buf), Some(Mac::BROADCAST));
        assert!(buf[42..60].iter().all(|&b| b == 0), "padding is zeroed");
        assert_eq!(buf[60], 0xaa, "nothing written past the frame");
        let n = build_gratuitous(&mut buf, OUR, Ipv4Addr::new(198, 18, 0, 1)).unwrap();
        let g = parse(&buf[..n]).unwrap();
        assert!(g.is_gratuitous());
        assert_eq!(build_request(&mut [0u8; 59], OUR, Ipv4Addr::LOCALHOST, Ipv4Addr::LOCALHOST), None);
    }
}
