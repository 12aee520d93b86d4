//! ICMP the gateway answers or originates itself: echo replies (RFC 792, RFC 4443 §4) built
//! in place from echo requests, and the "fragmentation needed" (RFC 792, RFC 1191 §4) and
//! "packet too big" (RFC 4443 §3.2, RFC 8201) errors sent when a packet plus ESP overhead
//! exceeds the path MTU and may not be fragmented.
//!
//! Echo functions take an Ethernet frame (untagged) and return the reply's frame length.
//! Error builders write an IP packet (no Ethernet header) at the start of a buffer: the
//! caller passes the part of its mbuf after the Ethernet header, routes the packet to its
//! destination, then writes the Ethernet header. No function here panics or reads out of
//! bounds, whatever the input.
//!
//! RFC 1812 §4.3.2.8 and RFC 4443 §2.4(f) require ICMP errors to be rate-limited:
//! [`ErrorRateLimiter`] is a per-lcore token bucket for that.

use std::net::{Ipv4Addr, Ipv6Addr};

use super::checksum;
use super::classify::{ipv6_upper_layer, Fragment};
use super::ethernet::{self, Mac, ETHERTYPE_IPV4, ETHERTYPE_IPV6, HEADER_LEN};

/// IPv4 protocol number of ICMP.
pub const PROTO_ICMP: u8 = 1;
/// IPv6 next header of ICMPv6.
pub const PROTO_ICMPV6: u8 = 58;

const ICMP_ECHO_REPLY: u8 = 0;
const ICMP_DEST_UNREACH: u8 = 3;
const ICMP_FRAG_NEEDED: u8 = 4;
const ICMP_ECHO_REQUEST: u8 = 8;
const ICMPV6_PACKET_TOO_BIG: u8 = 2;
const ICMPV6_ECHO_REQUEST: u8 = 128;
const ICMPV6_ECHO_REPLY: u8 = 129;

/// TTL / hop limit of what we originate (the Linux default).
pub const DEFAULT_TTL: u8 = 64;

/// RFC 1812 §4.3.2.3: an ICMPv4 error holds as much of the original datagram as fits in 576
/// bytes.
const IPV4_ERROR_MAX: usize = 576;
/// RFC 4443 §2.4(c): an ICMPv6 error holds as much of the invoking packet as fits in the
/// IPv6 minimum MTU.
const IPV6_ERROR_MAX: usize = 1280;
/// RFC 8200 §5: every IPv6 link has an MTU of at least 1280.
const IPV6_MIN_MTU: u32 = 1280;

const IPV4_MIN_HEADER: usize = 20;
const IPV6_HEADER: usize = 40;
const ICMP_HEADER: usize = 8;

/// IPv4 flags/fragment offset: the More Fragments bit and the offset mask.
const IPV4_MF: u16 = 0x2000;
const IPV4_DF: u16 = 0x4000;
const IPV4_OFFSET_MASK: u16 = 0x1fff;

/// Precedence "internetwork control" (0xc0), which Linux gives the ICMP errors it sends.
const TOS_INTERNETWORK_CONTROL: u8 = 0xc0;

/// A validated IPv4 header at the start of `packet`: header length, total length (bounded
/// by the slice: trailing Ethernet padding excluded).
fn ipv4_lengths(packet: &[u8]) -> Option<(usize, usize)> {
    let vihl = *packet.first()?;
    if vihl >> 4 != 4 {
        return None;
    }
    let ihl = usize::from(vihl & 0x0f) * 4;
    let total = usize::from(ethernet::read_u16(packet, 2)?);
    (ihl >= IPV4_MIN_HEADER && total >= ihl && total <= packet.len()).then_some((ihl, total))
}

fn ipv4_at(b: &[u8], at: usize) -> Option<Ipv4Addr> {
    ethernet::read_u32(b, at).map(Ipv4Addr::from)
}

fn ipv6_at(b: &[u8], at: usize) -> Option<Ipv6Addr> {
    ethernet::read_16_bytes(b, at).map(Ipv6Addr::from)
}

/// An IPv4 source that identifies one host (RFC 1812 §4.3.2.7, RFC 1122 §3.2.2): not
/// 0.0.0.0, loopback, multicast, broadcast or class E.
fn ipv4_unique_host(a: Ipv4Addr) -> bool {
    !(a.is_unspecified() || a.is_loopback() || a.is_multicast() || a.is_broadcast() || a.octets()[0] >= 240)
}

/// An IPv6 source that identifies one host (RFC 4443 §2.4(e.6)).
fn ipv6_unique_host(a: Ipv6Addr) -> bool {
    !(a.is_unspecified() || a.is_loopback() || a.is_multicast())
}

/// Turns an ICMPv4 echo request into the echo reply, in place (RFC 792 "Echo or Echo Reply
/// Message", RFC 1122 §3.2.2.6). Returns the reply's frame length, or `None` (frame possibly
/// unchanged, never half-written on a path that returns `None`) if the frame is not a valid,
/// unfragmented echo request from a unicast source to a unicast destination.
///
/// The caller has checked that the destination is one of our addresses (the classifier's
/// `IcmpEchoToUs`). The reply goes back to the frame's source MAC from `our_mac`, with
/// addresses swapped, TTL 64, DF kept, ICMP type 0 (the checksum updated per RFC 1624) and the
/// data returned unchanged. IP options are removed rather than reflected: RFC 1122 §3.2.2.6
/// asks for record-route and timestamp to be updated and a source route reversed, which a
/// gateway has no reason to do for pings. Ethernet padding is trimmed.
pub fn echo_reply_v4_in_place(frame: &mut [u8], our_mac: Mac) -> Option<usize> {
    if ethernet::ethertype(frame)? != ETHERTYPE_IPV4 {
        return None;
    }
    let peer_mac = ethernet::src(frame)?;
    let ip = frame.get(HEADER_LEN..)?;
    let (ihl, total) = ipv4_lengths(ip)?;
    if ip.get(9) != Some(&PROTO_ICMP) || !checksum::verify(ip.get(..ihl)?) {
        return None;
    }
    let frag = ethernet::read_u16(ip, 6)?;
    if frag & (IPV4_MF | IPV4_OFFSET_MASK) != 0 {
        return None;
    }
    let (src, dst) = (ipv4_at(ip, 12)?, ipv4_at(ip, 16)?);
    if !ipv4_unique_host(src) || dst.is_multicast() || dst.is_broadcast() || !peer_mac.is_unicast() {
        return None;
    }
    let icmp = ip.get(ihl..total)?;
    if icmp.len() < ICMP_HEADER || icmp.first() != Some(&ICMP_ECHO_REQUEST) || icmp.get(1) != Some(&0) {
        return None;
    }
    if !checksum::verify(icmp) {
        return None;
    }
    let icmp_len = icmp.len();
    let old_csum = ethernet::read_u16(icmp, 2)?;
    let tos = *ip.get(1)?;

    // Drop the options: move the ICMP message right after a 20-byte header.
    let l4 = HEADER_LEN + ihl;
    if l4 + icmp_len > frame.len() {
        return None; // cannot happen: ipv4_lengths bounded `total` by the frame
    }
    frame.copy_within(l4..l4 + icmp_len, HEADER_LEN + IPV4_MIN_HEADER);
    let new_total = IPV4_MIN_HEADER + icmp_len;
    let ip = frame.get_mut(HEADER_LEN..HEADER_LEN + new_total)?;
    let header = ip.get_mut(..IPV4_MIN_HEADER)?;
    header.copy_from_slice(&ipv4_header(
        tos,
        new_total as u16,
        frag & IPV4_DF,
        DEFAULT_TTL,
        PROTO_ICMP,
        dst,
        src,
    ));
    let icmp = ip.get_mut(IPV4_MIN_HEADER..)?;
    // RFC 1624: type 8 -> 0 changes one 16-bit word (type, code).
    let new_csum =
        checksum::update_word(old_csum, u16::from(ICMP_ECHO_REQUEST) << 8, u16::from(ICMP_ECHO_REPLY) << 8);
    ethernet::write_bytes(icmp, 0, &[ICMP_ECHO_REPLY])?;
    ethernet::write_u16(icmp, 2, new_csum)?;
    ethernet::write_header(frame, peer_mac, our_mac, ETHERTYPE_IPV4);
    Some(HEADER_LEN + new_total)
}

/// A 20-byte IPv4 header with its checksum; identification 0 (RFC 6864 §4.1 allows any value
/// for atomic datagrams, and none of ours is fragmented).
fn ipv4_header(
    tos: u8,
    total: u16,
    flags: u16,
    ttl: u8,
    proto: u8,
    src: Ipv4Addr,
    dst: Ipv4Addr,
) -> [u8; 20] {
    let [tl0, tl1] = total.to_be_bytes();
    let [f0, f1] = flags.to_be_bytes();
    let [s0, s1, s2, s3] = src.octets();
    let [d0, d1, d2, d3] = dst.octets();
    let mut h = [0x45, tos, tl0, tl1, 0, 0, f0, f1, ttl, proto, 0, 0, s0, s1, s2, s3, d0, d1, d2, d3];
    let [c0, c1] = checksum::checksum(&h).to_be_bytes();
    h[10] = c0;
    h[11] = c1;
    h
}

/// Turns an ICMPv6 echo request into the echo reply, in place (RFC 4443 §4.2). Returns the
/// reply's frame length, or `None` if the frame is not a valid echo request (checksum
/// verified, RFC 4443 §2.3) from a unicast source to a unicast destination with the ICMPv6
/// header right after the IPv6 header. Addresses are swapped (the reply's source is the
/// address the request was sent to, as §4.2 requires), hop limit 64, type 129; the
/// pseudo-header sum is unchanged by the swap, so the checksum is updated per RFC 1624.
pub fn echo_reply_v6_in_place(frame: &mut [u8], our_mac: Mac) -> Option<usize> {
    if ethernet::ethertype(frame)? != ETHERTYPE_IPV6 {
        return None;
    }
    let peer_mac = ethernet::src(frame)?;
    let ip = frame.get(HEADER_LEN..)?;
    if ip.first()? >> 4 != 6 || ip.get(6) != Some(&PROTO_ICMPV6) {
        return None;
    }
    let payload = usize::from(ethernet::read_u16(ip, 4)?);
    let icmp = ip.get(IPV6_HEADER..IPV6_HEADER + payload)?;
    let (src, dst) = (ipv6_at(ip, 8)?, ipv6_at(ip, 24)?);
    if !ipv6_unique_host(src) || dst.is_multicast() || dst.is_unspecified() || !peer_mac.is_unicast() {
        return None;
    }
    if icmp.len() < ICMP_HEADER || icmp.first() != Some(&ICMPV6_ECHO_REQUEST) || icmp.get(1) != Some(&0) {
        return None;
    }
    let len32 = u32::try_from(icmp.len()).ok()?;
    let sum = checksum::add(checksum::pseudo_header_v6(src, dst, PROTO_ICMPV6, len32), icmp);
    if checksum::finish(sum) != 0 {
        return None;
    }
    let old_csum = ethernet::read_u16(icmp, 2)?;
    let ip = frame.get_mut(HEADER_LEN..)?;
    ethernet::write_bytes(ip, 7, &[DEFAULT_TTL])?;
    ethernet::write_bytes(ip, 8, &dst.octets())?;
    ethernet::write_bytes(ip, 24, &src.octets())?;
    let new_csum = checksum::update_word(
        old_csum,
        u16::from(ICMPV6_ECHO_REQUEST) << 8,
        u16::from(ICMPV6_ECHO_REPLY) << 8,
    );
    ethernet::write_bytes(ip, IPV6_HEADER, &[ICMPV6_ECHO_REPLY])?;
    ethernet::write_u16(ip, IPV6_HEADER + 2, new_csum)?;
    ethernet::write_header(frame, peer_mac, our_mac, ETHERTYPE_IPV6);
    Some(HEADER_LEN + IPV6_HEADER + payload)
}

/// Builds an ICMPv4 "destination unreachable, fragmentation needed and DF set" (type 3 code
/// 4) with the next-hop MTU field of RFC 1191 §4, about `offending` (an IPv4 packet, from its
/// header on), from `our_ip`. Writes the IPv4 packet (no Ethernet header) at the start of
/// `buf` and returns its length; it quotes as much of the offending packet as fits in 576
/// bytes (RFC 1812 §4.3.2.3).
///
/// Returns `None` (no error must be sent, RFC 1812 §4.3.2.7 / RFC 1122 §3.2.2) when the
/// offending packet is not a valid IPv4 header, is itself an ICMP error, is a non-initial
/// fragment, was sent to a broadcast or multicast address, or comes from an address that is
/// not a single host; also when `buf` is too small. The caller checks the link-layer
/// broadcast case and rate-limits ([`ErrorRateLimiter`]).
pub fn build_fragmentation_needed(
    buf: &mut [u8],
    offending: &[u8],
    our_ip: Ipv4Addr,
    next_hop_mtu: u16,
) -> Option<usize> {
    let (ihl, total) = ipv4_lengths(offending)?;
    let frag = ethernet::read_u16(offending, 6)?;
    if frag & IPV4_OFFSET_MASK != 0 {
        return None;
    }
    let (src, dst) = (ipv4_at(offending, 12)?, ipv4_at(offending, 16)?);
    if !ipv4_unique_host(src) || dst.is_multicast() || dst.is_broadcast() {
        return None;
    }
    if offending.get(9) == Some(&PROTO_ICMP) {
        // RFC 1122 §3.2.2: never an error about an error (3, 4, 5, 11, 12 are the error types).
        match offending.get(ihl) {
            Some(0 | 8 | 13..=18) => {}
            _ => return None,
        }
    }
    let quoted = total.min(IPV4_ERROR_MAX - IPV4_MIN_HEADER - ICMP_HEADER);
    let len = IPV4_MIN_HEADER + ICMP_HEADER + quoted;
    let out = buf.get_mut(..len)?;
    let header = ipv4_header(TOS_INTERNETWORK_CONTROL, len as u16, 0, DEFAULT_TTL, PROTO_ICMP, our_ip, src);
    ethernet::write_bytes(out, 0, &header)?;
    let icmp = out.get_mut(IPV4_MIN_HEADER..)?;
    let [m0, m1] = next_hop_mtu.to_be_bytes();
    ethernet::write_bytes(icmp, 0, &[ICMP_DEST_UNREACH, ICMP_FRAG_NEEDED, 0, 0, 0, 0, m0, m1])?;
    ethernet::write_bytes(icmp, ICMP_HEADER, offending.get(..quoted)?)?;
    let c = checksum::checksum(icmp);
    ethernet::write_u16(icmp, 2, c)?;
    Some(len)
}

/// Builds an ICMPv6 "packet too big" (RFC 4443 §3.2) about `offending` (an IPv6 packet, from
/// its header on), from `our_ip`, announcing `mtu` (raised to 1280 if lower: no IPv6 link is
/// smaller, RFC 8200 §5, and RFC 8201 §4 has hosts ignore smaller values). Writes the IPv6
/// packet (no Ethernet header) at the start of `buf` and returns its length; it quotes as
/// much of the offending packet as fits in 1280 bytes (RFC 4443 §2.4(c)).
///
/// Returns `None` when RFC 4443 §2.4(e) forbids the error: the offending packet is an
/// ICMPv6 error message, or its source is not a single host (unspecified, loopback,
/// multicast). Unlike other errors, "packet too big" is sent for multicast destinations
/// (§2.4(e.3) exception). Also `None` if the packet is not valid IPv6 or `buf` is too small.
pub fn build_packet_too_big(buf: &mut [u8], offending: &[u8], our_ip: Ipv6Addr, mtu: u32) -> Option<usize> {
    if offending.first()? >> 4 != 6 || offending.len() < IPV6_HEADER {
        return None;
    }
    let src = ipv6_at(offending, 8)?;
    if !ipv6_unique_host(src) {
        return None;
    }
    let upper = ipv6_upper_layer(offending).ok()?;
    if upper.protocol == PROTO_ICMPV6 && upper.fragment != Fragment::NonFirst {
        // ICMPv6 types below 128 are errors (RFC 4443 §2.1).
        match offending.get(upper.offset) {
            Some(t) if *t >= 128 => {}
            _ => return None,
        }
    }
    let total = (IPV6_HEADER + usize::from(ethernet::read_u16(offending, 4)?)).min(offending.len());
    let quoted = total.min(IPV6_ERROR_MAX - IPV6_HEADER - ICMP_HEADER);
    let icmp_len = ICMP_HEADER + quoted;
    let len = IPV6_HEADER + icmp_len;
    let out = buf.get_mut(..len)?;
    let [p0, p1] = (icmp_len as u16).to_be_bytes();
    ethernet::write_bytes(out, 0, &[0x60, 0, 0, 0, p0, p1, PROTO_ICMPV6, DEFAULT_TTL])?;
    ethernet::write_bytes(out, 8, &our_ip.octets())?;
    ethernet::write_bytes(out, 24, &src.octets())?;
    let icmp = out.get_mut(IPV6_HEADER..)?;
    ethernet::write_bytes(icmp, 0, &[ICMPV6_PACKET_TOO_BIG, 0, 0, 0])?;
    ethernet::write_bytes(icmp, 4, &mtu.max(IPV6_MIN_MTU).to_be_bytes())?;
    ethernet::write_bytes(icmp, ICMP_HEADER, offending.get(..quoted)?)?;
    let sum = checksum::add(checksum::pseudo_header_v6(our_ip, src, PROTO_ICMPV6, icmp_len as u32), icmp);
    ethernet::write_u16(icmp, 2, checksum::finish(sum))?;
    Some(len)
}

/// A token bucket for the ICMP errors one lcore sends (RFC 1812 §4.3.2.8, RFC 4443 §2.4(f)):
/// `burst` errors at once, then one per `interval`. Per lcore, not shared: no atomics.
#[derive(Clone, Debug)]
pub struct ErrorRateLimiter {
    interval: u64,
    burst: u64,
    tokens: u64,
    last: u64,
}

impl ErrorRateLimiter {
    /// One error per `interval` (caller's time unit), up to `burst` in a row.
    pub fn new(interval: u64, burst: u64) -> ErrorRateLimiter {
        ErrorRateLimiter { interval: interval.max(1), burst, tokens: burst, last: 0 }
    }

    /// Whether an error may be sent at `now`; takes a token if so.
    pub fn allow(&mut self, now: u64) -> bool {
        let earned = now.saturating_sub(self.last) / self.interval;
        if earned > 0 {
            self.tokens = self.tokens.saturating_add(earned).min(self.burst);
            self.last = self.last.saturating_add(earned.saturating_mul(self.interval));
        }
        if self.tokens == 0 {
            return false;
        }
        self.tokens -= 1;
        true
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    const OUR: Mac = Mac([0x02, 0, 0, 0, 0, 1]);
    const PEER: Mac = Mac([0x52, 0x54, 0, 0x12, 0x34, 0x56]);

    /// An echo request 198.18.0.2 -> 198.18.0.1, id 0x1234 seq 1, 8 data bytes, and
    /// `options` bytes of IP options (NOPs + EOL), padded to 60 bytes.
    fn echo_v4(options: usize) -> Vec<u8> {
        let mut f = vec![0u8; 14];
        ethernet::write_header(&mut f, OUR, PEER, ETHERTYPE_IPV4);
        let ihl = 20 + options;
        let total = ihl + 16;
        let mut ip = vec![0u8; total];
        ip[0] = 0x40 | (ihl / 4) as u8;
        ip[2..4].copy_from_slice(&(total as u16).to_be_bytes());
        ip[4..6].copy_from_slice(&[0xab, 0xcd]);
        ip[6] = 0x40;
        ip[8] = 7;
        ip[9] = 1;
        ip[12..16].copy_from_slice(&[198, 18, 0, 2]);
        ip[16..20].copy_from_slice(&[198, 18, 0, 1]);
        for b in &mut ip[20..ihl] {
            *b = 1;
        }
        if options > 0 {
            ip[ihl - 1] = 0;
        }
        let c = checksum::checksum(&ip[..ihl]);
        ip[10..12].copy_from_slice(&c.to_be_bytes());
        ip[ihl..ihl + 8].copy_from_slice(&[8, 0, 0, 0, 0x12, 0x34, 0, 1]);
        for (i, b) in ip[ihl + 8..].iter_mut().enumerate() {
            *b = 0x61 + i as u8;
        }
        let c = checksum::checksum(&ip[ihl..]);
        ip[ihl + 2..ihl + 4].copy_from_slice(&c.to_be_bytes());
        f.extend_from_slice(&ip);
        if f.len() < 60 {
            f.resize(60, 0);
        }
        f
    }

    #[test]
    fn echo_reply_v4() {
        for options in [0usize, 4, 12, 40] {
            let mut f = echo_v4(options);
            let n = echo_reply_v4_in_place(&mut f, OUR).unwrap();
            assert_eq!(n, 14 + 20 + 16, "options stripped, padding trimmed");
            let ip = &f[14..n];
            assert_eq!(ip[0], 0x45);
            assert!(checksum::verify(&ip[..20]));
            assert_eq!(ip[8], 64);
            assert_eq!(ip[6] & 0x40, 0x40, "DF kept");
            assert_eq!(&ip[12..16], &[198, 18, 0, 1]);
            assert_eq!(&ip[16..20], &[198, 18, 0, 2]);
            assert_eq!(&ip[20..28], &[0, 0, (ip[22]), ip[23], 0x12, 0x34, 0, 1]);
            assert!(checksum::verify(&ip[20..]), "ICMP checksum");
            assert_eq!(&ip[28..], b"abcdefgh");
            assert_eq!(ethernet::dst(&f), Some(PEER));
            assert_eq!(ethernet::src(&f), Some(OUR));
        }
    }

    #[test]
    fn echo_v4_rejects() {
        type Mutation = (&'static str, fn(&mut Vec<u8>));
        let cases: [Mutation; 7] = [
            ("bad ip checksum", |f| f[24] ^= 1),
            ("bad icmp checksum", |f| f[40] ^= 1),
            ("not a request", |f| f[34] = 0),
            ("fragment", |f| f[20] |= 0x20),
            ("broadcast dst", |f| f[30..34].copy_from_slice(&[255; 4])),
            ("total length past frame", |f| f[17] = 200),
            ("not icmp", |f| f[23] = 17),
        ];
        for (what, mutate) in cases {
            let mut f = echo_v4(0);
            mutate(&mut f);
            // Keep the IP header checksum right where the case is not about it.
            if what != "bad ip checksum" {
                f[24] = 0;
                f[25] = 0;
                let c = checksum::checksum(&f[14..34]);
                f[24..26].copy_from_slice(&c.to_be_bytes());
            }
            assert_eq!(echo_reply_v4_in_place(&mut f, OUR), None, "{what}");
        }
        assert_eq!(echo_reply_v4_in_place(&mut echo_v4(0)[..40], OUR), None, "truncated");
    }

    fn echo_v6() -> Vec<u8> {
        let src: Ipv6Addr = "2001:db8::2".parse().unwrap();
        let dst: Ipv6Addr = "2001:db8::1".parse().unwrap();
        let mut f = vec![0u8; 14 + 40];
        ethernet::write_header(&mut f, OUR, PEER, ETHERTYPE_IPV6);
        f[14] = 0x60;
        f[18..20].copy_from_slice(&16u16.to_be_bytes());
        f[20] = 58;
        f[21] = 3;
        f[22..38].copy_from_slice(&src.octets());
        f[38..54].copy_from_slice(&dst.octets());
        let mut icmp = vec![128, 0, 0, 0, 0x12, 0x34, 0, 1];
        icmp.extend_from_slice(b"abcdefgh");
        let c = checksum::finish(checksum::add(checksum::pseudo_header_v6(src, dst, 58, 16), &icmp));
        icmp[2..4].copy_from_slice(&c.to_be_bytes());
        f.extend_from_slice(&icmp);
        f
    }

    #[test]
    fn echo_reply_v6() {
        let mut f = echo_v6();
        f.extend_from_slice(&[0xee; 4]); // trailing junk is trimmed
        let n = echo_reply_v6_in_place(&mut f, OUR).unwrap();
        assert_eq!(n, 70);
        let src = Ipv6Addr::from(<[u8; 16]>::try_from(&f[22..38]).unwrap());
        let dst = Ipv6Addr::from(<[u8; 16]>::try_from(&f[38..54]).unwrap());
        assert_eq!(src, "2001:db8::1".parse::<Ipv6Addr>().unwrap());
        assert_eq!(dst, "2001:db8::2".parse::<Ipv6Addr>().unwrap());
        assert_eq!((f[21], f[54]), (64, 129));
        assert_eq!(
            checksum::finish(checksum::add(checksum::pseudo_header_v6(src, dst, 58, 16), &f[54..70])),
            0
        );
        let mut bad = echo_v6();
        bad[60] ^= 1;
        assert_eq!(echo_reply_v6_in_place(&mut bad, OUR), None, "bad checksum");
        let mut mcast = echo_v6();
        mcast[38] = 0xff;
        assert_eq!(echo_reply_v6_in_place(&mut mcast, OUR), None, "multicast dst");
    }

    fn udp_v4(len: usize, frag: u16, src: [u8; 4], dst: [u8; 4]) -> Vec<u8> {
        let mut ip = vec![0u8; len];
        ip[0] = 0x45;
        ip[2..4].copy_from_slice(&(len as u16).to_be_bytes());
        ip[6..8].copy_from_slice(&frag.to_be_bytes());
        ip[8] = 64;
        ip[9] = 17;
        ip[12..16].copy_from_slice(&src);
        ip[16..20].copy_from_slice(&dst);
        let c = checksum::checksum(&ip[..20]);
        ip[10..12].copy_from_slice(&c.to_be_bytes());
        for (i, b) in ip[20..].iter_mut().enumerate() {
            *b = i as u8;
        }
        ip
    }

    #[test]
    fn fragmentation_needed() {
        let big = udp_v4(1500, 0x4000, [10, 0, 0, 5], [10, 1, 0, 9]);
        let mut buf = [0u8; 1024];
        let n = build_fragmentation_needed(&mut buf, &big, Ipv4Addr::new(10, 0, 0, 1), 1400).unwrap();
        assert_eq!(n, 576);
        let out = &buf[..n];
        assert!(checksum::verify(&out[..20]));
        assert_eq!(&out[16..20], &[10, 0, 0, 5]);
        assert_eq!(&out[12..16], &[10, 0, 0, 1]);
        assert_eq!(&out[20..22], &[3, 4]);
        assert_eq!(u16::from_be_bytes([out[26], out[27]]), 1400);
        assert!(checksum::verify(&out[20..]));
        assert_eq!(&out[28..], &big[..548]);

        // A small packet is quoted whole.
        let small = udp_v4(60, 0x4000, [10, 0, 0, 5], [10, 1, 0, 9]);
        assert_eq!(build_fragmentation_needed(&mut buf, &small, Ipv4Addr::new(10, 0, 0, 1), 1400), Some(88));
        // Not for: non-initial fragments, multicast/broadcast destinations, odd sources,
        // ICMP errors; nor into a small buffer.
        let no = [
            udp_v4(100, 0x4001, [10, 0, 0, 5], [10, 1, 0, 9]),
            udp_v4(100, 0x4000, [10, 0, 0, 5], [224, 0, 0, 5]),
            udp_v4(100, 0x4000, [10, 0, 0, 5], [255, 255, 255, 255]),
            udp_v4(100, 0x4000, [0, 0, 0, 0], [10, 1, 0, 9]),
            udp_v4(100, 0x4000, [127, 0, 0, 1], [10, 1, 0, 9]),
            udp_v4(100, 0x4000, [240, 0, 0, 1], [10, 1, 0, 9]),
        ];
        for p in &no {
            assert_eq!(build_fragmentation_needed(&mut buf, p, Ipv4Addr::new(10, 0, 0, 1), 1400), None);
        }
        let mut icmp_err = udp_v4(100, 0x4000, [10, 0, 0, 5], [10, 1, 0, 9]);
        icmp_err[9] = 1;
        icmp_err[20] = 11;
        assert_eq!(build_fragmentation_needed(&mut buf, &icmp_err, Ipv4Addr::new(10, 0, 0, 1), 1400), None);
        icmp_err[20] = 8; // an echo request is not an error: answer it
        assert!(build_fragmentation_needed(&mut buf, &icmp_err, Ipv4Addr::new(10, 0, 0, 1), 1400).is_some());
        assert_eq!(build_fragmentation_needed(&mut [0u8; 100], &big, Ipv4Addr::new(10, 0, 0, 1), 1400), None);
        assert_eq!(
            build_fragmentation_needed(&mut buf, &big[..1000], Ipv4Addr::new(10, 0, 0, 1), 1400),
            None
        );
    }

    #[test]
    fn packet_too_big() {
        let src: Ipv6Addr = "2001:db8:1::5".parse().unwrap();
        let mut p = vec![0u8; 1500];
        p[0] = 0x60;
        p[4..6].copy_from_slice(&1460u16.to_be_bytes());
        p[6] = 17;
        p[7] = 64;
        p[8..24].copy_from_slice(&src.octets());
        p[24..40].copy_from_slice(&"2001:db8:2::9".parse::<Ipv6Addr>().unwrap().octets());
        let our: Ipv6Addr = "2001:db8:1::1".parse().unwrap();
        let mut buf = vec![0u8; 2000];
        let n = build_packet_too_big(&mut buf, &p, our, 1400).unwrap();
        assert_eq!(n, 1280);
        assert_eq!(&buf[40..48], &[2, 0, buf[42], buf[43], 0, 0, 0x05, 0x78]);
        assert_eq!(&buf[..8], &[0x60, 0, 0, 0, 0x04, 0xd8, 58, 64]);
        let sum = checksum::add(checksum::pseudo_header_v6(our, src, 58, 1240), &buf[40..n]);
        assert_eq!(checksum::finish(sum), 0);
        assert_eq!(&buf[48..n], &p[..1232]);
        let n = build_packet_too_big(&mut buf, &p, our, 1000).unwrap();
        assert_eq!(u32::from_be_bytes(buf[44..48].try_into().unwrap()), 1280, "clamped to 1280");
        assert_eq!(n, 1280);
        // An ICMPv6 error is not answered; an echo request is.
        p[6] = 58;
        p[40] = 1;
        assert_eq!(build_packet_too_big(&mut buf, &p, our, 1400), None);
        p[40] = 128;
        assert!(build_packet_too_big(&mut buf, &p, our, 1400).is_some());
        // Multicast source: no.
        p[8] = 0xff;
        assert_eq!(build_packet_too_big(&mut buf, &p, our, 1400), None);
    }

    #[test]
    fn rate_limiter() {
        let mut r = ErrorRateLimiter::new(100, 3);
        assert!(r.allow(0) && r.allow(0) && r.allow(0));
        assert!(!r.allow(50));
        assert!(r.allow(100));
        assert!(!r.allow(150));
        assert!(r.allow(1000) && r.allow(1000) && r.allow(1000));
        assert!(!r.allow(1000), "burst capped at 3");
    }
}
