//! Classifier cases, one frame each, built byte by byte.

#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use super::*;
use crate::net::addr::IfAddr;
use crate::net::ethernet::{Mac, ETHERTYPE_ARP, ETHERTYPE_IPV4, ETHERTYPE_IPV6};

const OUT_MAC: Mac = Mac([0x02, 0, 0, 0, 0, 0x01]);
const IN_MAC: Mac = Mac([0x02, 0, 0, 0, 0, 0x02]);
const PEER: Mac = Mac([0x52, 0x54, 0, 0x12, 0x34, 0x56]);
const OUT: u16 = 0;
const IN: u16 = 1;

fn ifaces() -> Vec<Interface> {
    let a = |s: &str| s.parse::<IfAddr>().unwrap();
    vec![
        Interface::new(OUT, OUT_MAC, vec![a("198.18.0.1/24"), a("2001:db8::1/64"), a("fe80::1/64")]),
        Interface::new(IN, IN_MAC, vec![a("10.0.0.1/16"), a("2001:db8:10::1/64")]),
    ]
}

fn eth(dst: Mac, ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![0u8; 14];
    ethernet::write_header(&mut f, dst, PEER, ethertype);
    f.extend_from_slice(payload);
    if f.len() < 60 {
        f.resize(60, 0); // Ethernet padding, which the classifier must ignore
    }
    f
}

fn v4(src: &str, dst: &str, proto: u8, options: &[u8], frag: u16, payload: &[u8]) -> Vec<u8> {
    let ihl = 20 + options.len();
    let total = ihl + payload.len();
    let mut h = vec![0x40 | (ihl / 4) as u8, 0];
    h.extend_from_slice(&(total as u16).to_be_bytes());
    h.extend_from_slice(&[0x12, 0x34]);
    h.extend_from_slice(&frag.to_be_bytes());
    h.extend_from_slice(&[64, proto, 0, 0]);
    h.extend_from_slice(&src.parse::<Ipv4Addr>().unwrap().octets());
    h.extend_from_slice(&dst.parse::<Ipv4Addr>().unwrap().octets());
    h.extend_from_slice(options);
    let c = checksum::checksum(&h);
    h[10..12].copy_from_slice(&c.to_be_bytes());
    h.extend_from_slice(payload);
    h
}

fn v6(src: &str, dst: &str, next: u8, hop_limit: u8, payload: &[u8]) -> Vec<u8> {
    let mut h = vec![0x60, 0, 0, 0];
    h.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    h.extend_from_slice(&[next, hop_limit]);
    h.extend_from_slice(&src.parse::<Ipv6Addr>().unwrap().octets());
    h.extend_from_slice(&dst.parse::<Ipv6Addr>().unwrap().octets());
    h.extend_from_slice(payload);
    h
}

fn udp(sport: u16, dport: u16, data: &[u8]) -> Vec<u8> {
    let mut u = sport.to_be_bytes().to_vec();
    u.extend_from_slice(&dport.to_be_bytes());
    u.extend_from_slice(&((8 + data.len()) as u16).to_be_bytes());
    u.extend_from_slice(&[0, 0]);
    u.extend_from_slice(data);
    u
}

/// An ESP header and a bit of ciphertext.
fn esp(spi: u32) -> Vec<u8> {
    let mut e = spi.to_be_bytes().to_vec();
    e.extend_from_slice(&[0, 0, 0, 1]);
    e.extend_from_slice(&[0xaa; 24]);
    e
}

/// An extension header (`next`, 8 bytes).
fn ext(next: u8, rest: [u8; 6]) -> Vec<u8> {
    let mut e = vec![next, 0];
    e.extend_from_slice(&rest);
    e
}

fn c(frame: &[u8], port: u16) -> Classified {
    classify(frame, port, &ifaces())
}

fn out4(proto: u8, payload: &[u8]) -> Vec<u8> {
    eth(OUT_MAC, ETHERTYPE_IPV4, &v4("203.0.113.9", "198.18.0.1", proto, &[], 0, payload))
}

#[test]
fn layer2_decisions() {
    let arp = {
        let mut b = [0u8; 60];
        arp::build_request(&mut b, PEER, "198.18.0.2".parse().unwrap(), "198.18.0.1".parse().unwrap())
            .unwrap();
        b[6..12].copy_from_slice(&PEER.0);
        b
    };
    assert_eq!(c(&arp, OUT), Classified::Arp);
    let mut bad_arp = arp;
    bad_arp[18] = 8;
    assert_eq!(c(&bad_arp, OUT), Classified::Malformed(Malformed::BadArp));
    let f = out4(proto::ESP, &esp(7));
    assert_eq!(c(&f, 9), Classified::Ignore(Ignored::UnknownPort));
    let mut other = f.clone();
    other[5] = 0x99;
    assert_eq!(c(&other, OUT), Classified::Ignore(Ignored::NotOurMac));
    assert_eq!(c(&eth(OUT_MAC, 0x8100, &[0; 50]), OUT), Classified::Ignore(Ignored::VlanTagged));
    assert_eq!(c(&eth(OUT_MAC, 0x88cc, &[0; 50]), OUT), Classified::Ignore(Ignored::UnsupportedEtherType));
    assert_eq!(c(&f[..13], OUT), Classified::Malformed(Malformed::Truncated));
    assert_eq!(c(&eth(OUT_MAC, ETHERTYPE_ARP, &[]), OUT), Classified::Malformed(Malformed::BadArp));
}

#[test]
fn esp_and_ike_to_us_v4() {
    let e = |spi, udp_encap, esp_offset| Classified::EspToUs {
        family: Family::V4,
        spi,
        udp_encap,
        l3_offset: 14,
        esp_offset,
    };
    assert_eq!(c(&out4(proto::ESP, &esp(0x1234_5678)), OUT), e(0x1234_5678, false, 34));
    // IP options move the ESP header (IHL 7).
    let with_opts = eth(OUT_MAC, ETHERTYPE_IPV4, &v4("203.0.113.9", "198.18.0.1", 50, &[1; 8], 0, &esp(9)));
    assert_eq!(c(&with_opts, OUT), e(9, false, 42));
    assert_eq!(c(&out4(proto::ESP, &esp(0)), OUT), Classified::Malformed(Malformed::ZeroSpi));
    assert_eq!(c(&out4(proto::ESP, &[0, 0, 0, 1, 0, 0, 0]), OUT), Classified::Malformed(Malformed::RuntEsp));

    assert_eq!(c(&out4(proto::UDP, &udp(4500, 4500, &esp(0xabcd))), OUT), e(0xabcd, true, 42));
    let ike = |ike_offset, non_esp_marker| Classified::IkeToUs {
        family: Family::V4,
        l3_offset: 14,
        ike_offset,
        non_esp_marker,
    };
    assert_eq!(c(&out4(proto::UDP, &udp(500, 500, &[0x11; 28])), OUT), ike(42, false));
    let mut marked = vec![0u8; 4];
    marked.extend_from_slice(&[0x11; 28]);
    assert_eq!(c(&out4(proto::UDP, &udp(4500, 4500, &marked)), OUT), ike(46, true));
    assert_eq!(
        c(&out4(proto::UDP, &udp(4500, 4500, &[0xff])), OUT),
        Classified::NatKeepalive { family: Family::V4, l3_offset: 14 }
    );
    assert_eq!(
        c(&out4(proto::UDP, &udp(4500, 4500, &[1, 2])), OUT),
        Classified::Malformed(Malformed::BadUdpEncapsulation)
    );
    assert_eq!(
        c(&out4(proto::UDP, &udp(4500, 4500, &[1, 2, 3, 4])), OUT),
        Classified::Malformed(Malformed::RuntEsp)
    );
    assert_eq!(
        c(&out4(proto::UDP, &udp(4500, 4500, &[])), OUT),
        Classified::Malformed(Malformed::BadUdpEncapsulation)
    );
    // UDP length beyond the IP payload, or below 8.
    let mut u = udp(500, 500, &[0; 20]);
    u[5] = 60;
    assert_eq!(c(&out4(proto::UDP, &u), OUT), Classified::Malformed(Malformed::BadUdpLength));
    u[5] = 7;
    assert_eq!(c(&out4(proto::UDP, &u), OUT), Classified::Malformed(Malformed::BadUdpLength));
    assert_eq!(c(&out4(proto::UDP, &[0, 1, 2]), OUT), Classified::Malformed(Malformed::Truncated));
}

#[test]
fn other_to_us_v4() {
    let host = Classified::OtherToUs { family: Family::V4, l3_offset: 14 };
    let echo = [8, 0, 0, 0, 0, 1, 0, 1];
    assert_eq!(
        c(&out4(proto::ICMP, &echo), OUT),
        Classified::IcmpEchoToUs { family: Family::V4, l3_offset: 14 }
    );
    assert_eq!(c(&out4(proto::ICMP, &[3, 4, 0, 0, 0, 0, 5, 0]), OUT), host);
    assert_eq!(c(&out4(proto::TCP, &[0, 22, 0, 22, 0, 0, 0, 0]), OUT), host);
    assert_eq!(c(&out4(proto::UDP, &udp(1000, 53, &[1])), OUT), host);
    // Fragments of ESP and IKE go to the host stack, which reassembles.
    let first = eth(OUT_MAC, ETHERTYPE_IPV4, &v4("203.0.113.9", "198.18.0.1", 50, &[], 0x2000, &esp(5)));
    let later = eth(OUT_MAC, ETHERTYPE_IPV4, &v4("203.0.113.9", "198.18.0.1", 17, &[], 0x00b9, &[1; 8]));
    assert_eq!(c(&first, OUT), host);
    assert_eq!(c(&later, OUT), host);
    // Broadcasts and link-local groups.
    let dhcp = eth(
        Mac::BROADCAST,
        ETHERTYPE_IPV4,
        &v4("0.0.0.0", "255.255.255.255", 17, &[], 0, &udp(68, 67, &[0; 8])),
    );
    assert_eq!(c(&dhcp, OUT), host);
    let directed =
        eth(Mac::BROADCAST, ETHERTYPE_IPV4, &v4("198.18.0.7", "198.18.0.255", 17, &[], 0, &udp(1, 2, &[])));
    assert_eq!(c(&directed, OUT), host);
    let ospf =
        eth(Mac([1, 0, 0x5e, 0, 0, 5]), ETHERTYPE_IPV4, &v4("198.18.0.7", "224.0.0.5", 89, &[], 0, &[0; 20]));
    assert_eq!(c(&ospf, OUT), host);
    let group = eth(
        Mac([1, 0, 0x5e, 1, 1, 1]),
        ETHERTYPE_IPV4,
        &v4("198.18.0.7", "239.1.1.1", 17, &[], 0, &udp(1, 2, &[])),
    );
    assert_eq!(c(&group, OUT), Classified::Ignore(Ignored::Multicast));
}

#[test]
fn malformed_v4() {
    let good = out4(proto::ESP, &esp(7));
    let mut f = good.clone();
    f[24] ^= 0xff;
    assert_eq!(c(&f, OUT), Classified::Malformed(Malformed::BadIpv4Checksum));
    let mut f = good.clone();
    f[14] = 0x44;
    assert_eq!(c(&f, OUT), Classified::Malformed(Malformed::BadIpv4HeaderLength));
    let mut f = good.clone();
    f[14] = 0x65;
    assert_eq!(c(&f, OUT), Classified::Malformed(Malformed::BadIpVersion));
    let mut f = good.clone();
    f[16] = 0x05; // total length 1280+ > frame
    assert_eq!(c(&f, OUT), Classified::Malformed(Malformed::BadIpLength));
    let mut f = good.clone();
    f[17] = 10; // total length < IHL
    f[16] = 0;
    assert_eq!(c(&f, OUT), Classified::Malformed(Malformed::BadIpv4HeaderLength));
    assert_eq!(c(&good[..30], OUT), Classified::Malformed(Malformed::Truncated));
    for src in ["127.0.0.1", "224.0.0.1", "255.255.255.255", "240.0.0.1", "198.18.0.1", "10.0.0.1"] {
        let f = eth(OUT_MAC, ETHERTYPE_IPV4, &v4(src, "198.18.0.1", 50, &[], 0, &esp(7)));
        assert_eq!(c(&f, OUT), Classified::Malformed(Malformed::MartianSource), "{src}");
    }
    let f = eth(IN_MAC, ETHERTYPE_IPV4, &v4("10.0.0.9", "127.0.0.1", 6, &[], 0, &[0; 20]));
    assert_eq!(c(&f, IN), Classified::Malformed(Malformed::MartianDestination));
}

#[test]
fn transit_v4() {
    let f = eth(
        IN_MAC,
        ETHERTYPE_IPV4,
        &v4("10.0.3.4", "192.0.2.80", 6, &[], 0x4000, &[0x9c, 0x40, 0, 80, 0, 0, 0, 0]),
    );
    assert_eq!(
        c(&f, IN),
        Classified::Transit {
            family: Family::V4,
            src: "10.0.3.4".parse().unwrap(),
            dst: "192.0.2.80".parse().unwrap(),
            proto: 6,
            sport: 40000,
            dport: 80,
            l3_offset: 14,
            l4_offset: 34,
            fragment: Fragment::No,
        }
    );
    let later = eth(IN_MAC, ETHERTYPE_IPV4, &v4("10.0.3.4", "192.0.2.80", 17, &[], 0x0010, &[1; 16]));
    assert!(matches!(
        c(&later, IN),
        Classified::Transit { sport: 0, dport: 0, fragment: Fragment::NonFirst, .. }
    ));
    let first =
        eth(IN_MAC, ETHERTYPE_IPV4, &v4("10.0.3.4", "192.0.2.80", 17, &[], 0x2000, &udp(7, 9, &[0; 8])));
    assert!(matches!(
        c(&first, IN),
        Classified::Transit { sport: 7, dport: 9, fragment: Fragment::First, .. }
    ));
    let ping =
        eth(IN_MAC, ETHERTYPE_IPV4, &v4("10.0.3.4", "192.0.2.80", 1, &[], 0, &[8, 0, 0, 0, 0, 0, 0, 0]));
    assert!(matches!(c(&ping, IN), Classified::Transit { proto: 1, sport: 8, dport: 0, .. }));
    let short = eth(IN_MAC, ETHERTYPE_IPV4, &v4("10.0.3.4", "192.0.2.80", 6, &[], 0, &[0x9c]));
    assert_eq!(c(&short, IN), Classified::Malformed(Malformed::Truncated));
    // Unicast IP in a link-layer broadcast is not forwarded.
    let mut bcast = f.clone();
    bcast[0..6].copy_from_slice(&[0xff; 6]);
    assert_eq!(c(&bcast, IN), Classified::Ignore(Ignored::LinkBroadcastTransit));
    // Strong host: the outside address reached through the inside port.
    let wrong = eth(IN_MAC, ETHERTYPE_IPV4, &v4("10.0.3.4", "198.18.0.1", 50, &[], 0, &esp(7)));
    assert_eq!(c(&wrong, IN), Classified::Ignore(Ignored::OtherInterfaceAddress));
}

fn icmpv6(src: &str, dst: &str, hop: u8, icmp: &[u8]) -> Vec<u8> {
    eth(OUT_MAC, ETHERTYPE_IPV6, &v6(src, dst, 58, hop, icmp))
}

#[test]
fn neighbor_discovery_and_icmpv6() {
    let mut ns = [0u8; 86];
    nd::build_ns(&mut ns, PEER, "2001:db8::2".parse().unwrap(), "2001:db8::1".parse().unwrap()).unwrap();
    assert_eq!(c(&ns, OUT), Classified::NeighborSolicit);
    let mut hop = ns;
    hop[21] = 64;
    assert_eq!(c(&hop, OUT), Classified::Malformed(Malformed::BadNeighborDiscovery));
    let na = icmpv6("2001:db8::2", "2001:db8::1", 255, &[136, 0, 0, 0, 0x60, 0, 0, 0]);
    assert_eq!(c(&na, OUT), Classified::NeighborAdvert);
    let echo = icmpv6("2001:db8::2", "2001:db8::1", 64, &[128, 0, 0, 0, 0, 1, 0, 1]);
    assert_eq!(c(&echo, OUT), Classified::IcmpEchoToUs { family: Family::V6, l3_offset: 14 });
    let host = Classified::OtherToUs { family: Family::V6, l3_offset: 14 };
    let ptb = icmpv6("2001:db8::2", "2001:db8::1", 64, &[2, 0, 0, 0, 0, 0, 5, 0]);
    assert_eq!(c(&ptb, OUT), host);
    let mut ra_frame = icmpv6("fe80::9", "ff02::1", 255, &[134, 0, 0, 0, 64, 0, 0, 0]);
    ra_frame[0..6].copy_from_slice(&[0x33, 0x33, 0, 0, 0, 1]);
    assert_eq!(c(&ra_frame, OUT), host);
    let mut site = icmpv6("2001:db8::2", "ff05::1", 64, &[128, 0, 0, 0, 0, 1, 0, 1]);
    site[0..6].copy_from_slice(&[0x33, 0x33, 0, 0, 0, 1]);
    assert_eq!(c(&site, OUT), Classified::Ignore(Ignored::Multicast));
}

#[test]
fn esp_and_ike_to_us_v6_through_extension_headers() {
    let e = |spi, udp_encap, esp_offset| Classified::EspToUs {
        family: Family::V6,
        spi,
        udp_encap,
        l3_offset: 14,
        esp_offset,
    };
    let f = eth(OUT_MAC, ETHERTYPE_IPV6, &v6("2001:db8::2", "2001:db8::1", 50, 64, &esp(77)));
    assert_eq!(c(&f, OUT), e(77, false, 54));
    // Hop-by-hop then destination options then ESP.
    let mut p = ext(60, [0; 6]);
    p.extend(ext(50, [1, 4, 0, 0, 0, 0]));
    p.extend(esp(78));
    let f = eth(OUT_MAC, ETHERTYPE_IPV6, &v6("2001:db8::2", "2001:db8::1", 0, 64, &p));
    assert_eq!(c(&f, OUT), e(78, false, 70));
    // Destination options (16 bytes long) then UDP 4500 with ESP.
    let mut p = vec![17, 1];
    p.extend_from_slice(&[1, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    p.extend(udp(4500, 4500, &esp(79)));
    let f = eth(OUT_MAC, ETHERTYPE_IPV6, &v6("2001:db8::2", "2001:db8::1", 60, 64, &p));
    assert_eq!(c(&f, OUT), e(79, true, 78));
    let f = eth(OUT_MAC, ETHERTYPE_IPV6, &v6("2001:db8::2", "2001:db8::1", 17, 64, &udp(500, 500, &[0; 28])));
    assert_eq!(
        c(&f, OUT),
        Classified::IkeToUs { family: Family::V6, l3_offset: 14, ike_offset: 62, non_esp_marker: false }
    );
    // A fragment header (first fragment), and a routing header with segments left: host stack.
    let host = Classified::OtherToUs { family: Family::V6, l3_offset: 14 };
    let mut p = ext(50, [0, 1, 0, 0, 0, 1]);
    p.extend(esp(80));
    let f = eth(OUT_MAC, ETHERTYPE_IPV6, &v6("2001:db8::2", "2001:db8::1", 44, 64, &p));
    assert_eq!(c(&f, OUT), host);
    let mut p = ext(50, [4, 1, 0, 0, 0, 0]);
    p.extend(esp(81));
    let f = eth(OUT_MAC, ETHERTYPE_IPV6, &v6("2001:db8::2", "2001:db8::1", 43, 64, &p));
    assert_eq!(c(&f, OUT), host);
    // An atomic fragment (offset 0, M 0) is a whole packet.
    let mut p = ext(50, [0, 0, 0, 0, 0, 1]);
    p.extend(esp(82));
    let f = eth(OUT_MAC, ETHERTYPE_IPV6, &v6("2001:db8::2", "2001:db8::1", 44, 64, &p));
    assert_eq!(c(&f, OUT), e(82, false, 62));
    // Echo behind an extension header: host stack (the in-place reply wants none).
    let mut p = ext(58, [0; 6]);
    p.extend_from_slice(&[128, 0, 0, 0, 0, 1, 0, 1]);
    let f = eth(OUT_MAC, ETHERTYPE_IPV6, &v6("2001:db8::2", "2001:db8::1", 60, 64, &p));
    assert_eq!(c(&f, OUT), host);
}

#[test]
fn malformed_and_transit_v6() {
    let bad = |m| Classified::Malformed(m);
    // Hop-by-hop after another header.
    let mut p = ext(0, [0; 6]);
    p.extend(ext(50, [0; 6]));
    p.extend(esp(1));
    let f = eth(OUT_MAC, ETHERTYPE_IPV6, &v6("2001:db8::2", "2001:db8::1", 60, 64, &p));
    assert_eq!(c(&f, OUT), bad(Malformed::BadExtensionHeader));
    // An extension header longer than the packet.
    let f =
        eth(OUT_MAC, ETHERTYPE_IPV6, &v6("2001:db8::2", "2001:db8::1", 60, 64, &[50, 9, 0, 0, 0, 0, 0, 0]));
    assert_eq!(c(&f, OUT), bad(Malformed::BadExtensionHeader));
    // Nine destination-options headers in a row.
    let mut p = Vec::new();
    for _ in 0..9 {
        p.extend(ext(60, [0; 6]));
    }
    let f = eth(OUT_MAC, ETHERTYPE_IPV6, &v6("2001:db8::2", "2001:db8::1", 60, 64, &p));
    assert_eq!(c(&f, OUT), bad(Malformed::BadExtensionHeader));
    let f = eth(OUT_MAC, ETHERTYPE_IPV6, &v6("2001:db8::2", "2001:db8::1", 0, 64, &[]));
    assert_eq!(c(&f, OUT), bad(Malformed::BadIpLength), "jumbogram");
    let mut f = eth(OUT_MAC, ETHERTYPE_IPV6, &v6("2001:db8::2", "2001:db8::1", 50, 64, &esp(1)));
    f[18] = 0x10;
    assert_eq!(c(&f, OUT), bad(Malformed::BadIpLength));
    f[14] = 0x40;
    assert_eq!(c(&f, OUT), bad(Malformed::BadIpVersion));
    for src in ["::1", "ff02::1", "2001:db8::1"] {
        let f = eth(OUT_MAC, ETHERTYPE_IPV6, &v6(src, "2001:db8::1", 50, 64, &esp(1)));
        assert_eq!(c(&f, OUT), bad(Malformed::MartianSource), "{src}");
    }

    // Transit through hop-by-hop, routing (segments left 0) and destination options.
    let mut p = ext(43, [0; 6]);
    p.extend(ext(60, [0, 0, 0, 0, 0, 0]));
    p.extend(ext(6, [0; 6]));
    p.extend_from_slice(&[0x30, 0x39, 0x01, 0xbb, 0, 0, 0, 0]);
    let f = eth(IN_MAC, ETHERTYPE_IPV6, &v6("2001:db8:10::5", "2001:db8:99::1", 0, 64, &p));
    assert_eq!(
        c(&f, IN),
        Classified::Transit {
            family: Family::V6,
            src: "2001:db8:10::5".parse().unwrap(),
            dst: "2001:db8:99::1".parse().unwrap(),
            proto: 6,
            sport: 12345,
            dport: 443,
            l3_offset: 14,
            l4_offset: 14 + 40 + 24,
            fragment: Fragment::No,
        }
    );
    let mut p = ext(17, [0x05, 0x39, 0, 0, 0, 9]);
    p.extend_from_slice(&[0; 16]);
    let f = eth(IN_MAC, ETHERTYPE_IPV6, &v6("2001:db8:10::5", "2001:db8:99::1", 44, 64, &p));
    assert!(matches!(
        c(&f, IN),
        Classified::Transit { proto: 17, sport: 0, dport: 0, fragment: Fragment::NonFirst, .. }
    ));
    let f = eth(IN_MAC, ETHERTYPE_IPV6, &v6("fe80::5", "2001:db8:99::1", 17, 64, &udp(1, 2, &[])));
    assert_eq!(c(&f, IN), Classified::Ignore(Ignored::LinkLocalTransit));
    let f = eth(IN_MAC, ETHERTYPE_IPV6, &v6("2001:db8:10::5", "::1", 17, 64, &udp(1, 2, &[])));
    assert_eq!(c(&f, IN), bad(Malformed::MartianDestination));
}

#[test]
fn upper_layer_walk() {
    let mut p = ext(60, [0; 6]);
    p.extend(ext(51, [0; 6]));
    p.extend_from_slice(&[6, 4, 0, 0, 0, 0, 0, 1]);
    let pkt = v6("2001:db8::2", "2001:db8::1", 0, 64, &p);
    let up = ipv6_upper_layer(&pkt).unwrap();
    assert_eq!((up.protocol, up.offset, up.fragment, up.has_extensions), (proto::AH, 56, Fragment::No, true));
    assert_eq!(ipv6_upper_layer(&pkt[..5]), Err(Malformed::Truncated));
}
