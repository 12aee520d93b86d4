//! Fuzz-style property tests for the slow-path modules: random bytes, and valid frames with
//! random byte mutations and truncations, go through every parser, classifier and in-place
//! function. Nothing may panic (a panic fails the property), and what the functions claim
//! must hold: offsets inside the frame, frames left untouched when a function declines,
//! valid checksums on what they build. Also round trips and a model check of the neighbour
//! table.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use proptest::prelude::*;

use espd::net::addr::{IfAddr, Interface};
use espd::net::checksum;
use espd::net::classify::{classify, ipv6_upper_layer, Classified, FastV4};
use espd::net::ethernet::{self, Mac, ETHERTYPE_IPV4, ETHERTYPE_IPV6};
use espd::net::neigh::{Learned, NeighError, NeighTimes, NeighborTable};
use espd::net::{arp, icmp, nd};

const OUR: Mac = Mac([0x02, 0, 0, 0, 0, 0x01]);
const INSIDE: Mac = Mac([0x02, 0, 0, 0, 0, 0x02]);
const PEER: Mac = Mac([0x52, 0x54, 0, 0x12, 0x34, 0x56]);

fn ifaces() -> Vec<Interface> {
    let a = |s: &str| s.parse::<IfAddr>().unwrap();
    vec![
        Interface::new(0, OUR, vec![a("198.18.0.1/24"), a("2001:db8::1/64")]),
        Interface::new(1, INSIDE, vec![a("10.0.0.1/16"), a("2001:db8:10::1/64")]),
    ]
}

fn ipv4_frame(
    dst_mac: Mac,
    src: [u8; 4],
    dst: [u8; 4],
    proto: u8,
    options: usize,
    payload: &[u8],
) -> Vec<u8> {
    let mut f = vec![0u8; 14];
    ethernet::write_header(&mut f, dst_mac, PEER, ETHERTYPE_IPV4);
    let ihl = 20 + options;
    let mut h = vec![0u8; ihl];
    h[0] = 0x40 | (ihl / 4) as u8;
    h[2..4].copy_from_slice(&((ihl + payload.len()) as u16).to_be_bytes());
    h[8] = 64;
    h[9] = proto;
    h[12..16].copy_from_slice(&src);
    h[16..20].copy_from_slice(&dst);
    let c = checksum::checksum(&h);
    h[10..12].copy_from_slice(&c.to_be_bytes());
    f.extend_from_slice(&h);
    f.extend_from_slice(payload);
    f
}

fn ipv6_frame(dst_mac: Mac, src: &str, dst: &str, next: u8, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![0u8; 14];
    ethernet::write_header(&mut f, dst_mac, PEER, ETHERTYPE_IPV6);
    f.extend_from_slice(&[0x60, 0, 0, 0]);
    f.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    f.extend_from_slice(&[next, 64]);
    f.extend_from_slice(&src.parse::<Ipv6Addr>().unwrap().octets());
    f.extend_from_slice(&dst.parse::<Ipv6Addr>().unwrap().octets());
    f.extend_from_slice(payload);
    f
}

fn with_icmp_checksum_v4(mut f: Vec<u8>, l4: usize) -> Vec<u8> {
    let c = checksum::checksum(&f[l4..]);
    f[l4 + 2..l4 + 4].copy_from_slice(&c.to_be_bytes());
    f
}

fn with_icmp_checksum_v6(mut f: Vec<u8>) -> Vec<u8> {
    let src = Ipv6Addr::from(<[u8; 16]>::try_from(&f[22..38]).unwrap());
    let dst = Ipv6Addr::from(<[u8; 16]>::try_from(&f[38..54]).unwrap());
    let sum = checksum::pseudo_header_v6(src, dst, 58, (f.len() - 54) as u32);
    let c = checksum::finish(checksum::add(sum, &f[54..]));
    f[56..58].copy_from_slice(&c.to_be_bytes());
    f
}

/// Valid frames of every kind the modules handle.
fn seeds() -> Vec<Vec<u8>> {
    let mut s = Vec::new();
    let mut b = [0u8; 128];
    let n =
        arp::build_request(&mut b, PEER, Ipv4Addr::new(198, 18, 0, 2), Ipv4Addr::new(198, 18, 0, 1)).unwrap();
    let mut req = b[..n].to_vec();
    req[..6].copy_from_slice(&[0xff; 6]);
    s.push(req);
    let n =
        nd::build_ns(&mut b, PEER, "2001:db8::2".parse().unwrap(), "2001:db8::1".parse().unwrap()).unwrap();
    s.push(b[..n].to_vec());
    let n = nd::build_unsolicited_na(&mut b, PEER, "2001:db8::2".parse().unwrap()).unwrap();
    s.push(b[..n].to_vec());
    let echo: Vec<u8> = [8, 0, 0, 0, 0, 1, 0, 1].iter().copied().chain(*b"0123456789").collect();
    s.push(with_icmp_checksum_v4(ipv4_frame(OUR, [198, 18, 0, 2], [198, 18, 0, 1], 1, 0, &echo), 34));
    s.push(with_icmp_checksum_v4(ipv4_frame(OUR, [198, 18, 0, 2], [198, 18, 0, 1], 1, 8, &echo), 42));
    let mut echo6 = echo.clone();
    echo6[0] = 128;
    s.push(with_icmp_checksum_v6(ipv6_frame(OUR, "2001:db8::2", "2001:db8::1", 58, &echo6)));
    let esp = [0, 0, 0x12, 0x34, 0, 0, 0, 1, 9, 9, 9, 9, 9, 9, 9, 9];
    s.push(ipv4_frame(OUR, [203, 0, 113, 9], [198, 18, 0, 1], 50, 0, &esp));
    let mut udp = vec![0x11, 0x94, 0x11, 0x94, 0, 24, 0, 0];
    udp.extend_from_slice(&esp);
    s.push(ipv4_frame(OUR, [203, 0, 113, 9], [198, 18, 0, 1], 17, 0, &udp));
    let mut ike = vec![0x11, 0x94, 0x11, 0x94, 0, 40, 0, 0, 0, 0, 0, 0];
    ike.extend_from_slice(&[0x42; 28]);
    s.push(ipv4_frame(OUR, [203, 0, 113, 9], [198, 18, 0, 1], 17, 0, &ike));
    s.push(ipv4_frame(
        INSIDE,
        [10, 0, 3, 4],
        [192, 0, 2, 80],
        6,
        0,
        &[0x9c, 0x40, 0, 80, 0, 0, 0, 0, 0, 0, 0, 0],
    ));
    // IPv6 through hop-by-hop, destination options and a fragment header.
    let mut ext = vec![60, 0, 1, 4, 0, 0, 0, 0, 44, 0, 1, 4, 0, 0, 0, 0, 17, 0, 0, 1, 0, 0, 0, 7];
    ext.extend_from_slice(&[0x11, 0x94, 0x11, 0x94, 0, 24, 0, 0]);
    ext.extend_from_slice(&esp);
    s.push(ipv6_frame(OUR, "2001:db8::2", "2001:db8::1", 0, &ext));
    s.push(ipv6_frame(INSIDE, "2001:db8:10::5", "2001:db8:99::1", 0, &ext));
    let mut big = ipv4_frame(INSIDE, [10, 0, 3, 4], [192, 0, 2, 80], 17, 0, &[7u8; 700]);
    big[20] = 0x40; // DF
    big[24..26].fill(0);
    let c = checksum::checksum(&big[14..34]);
    big[24..26].copy_from_slice(&c.to_be_bytes());
    s.push(big);
    s.push(ipv6_frame(INSIDE, "2001:db8:10::5", "2001:db8:99::1", 17, &[7u8; 1400]));
    s
}

/// Every function, on one input; panics (failing the property) if a claim does not hold.
fn exercise(frame: &[u8]) {
    let ifs = ifaces();
    let fast = FastV4::new(&ifs);
    for port in [0u16, 1, 7] {
        let slow = classify(frame, port, &ifs);
        // The fast path either declines or says exactly what the slow path says.
        if let Some(c) = fast.classify(frame, port) {
            assert_eq!(c, slow, "fast path disagrees on port {port}: {frame:02x?}");
        }
        match slow {
            Classified::EspToUs { spi, l3_offset, esp_offset, .. } => {
                assert!(l3_offset < esp_offset && esp_offset + 8 <= frame.len());
                assert_eq!(u32::from_be_bytes(frame[esp_offset..esp_offset + 4].try_into().unwrap()), spi);
                assert_ne!(spi, 0);
            }
            Classified::IkeToUs { ike_offset, .. } => assert!(ike_offset <= frame.len()),
            Classified::IcmpEchoToUs { l3_offset, .. }
            | Classified::NatKeepalive { l3_offset, .. }
            | Classified::OtherToUs { l3_offset, .. } => assert!(l3_offset < frame.len()),
            Classified::Transit { l3_offset, l4_offset, .. } => {
                assert!(l3_offset < l4_offset && l4_offset <= frame.len())
            }
            _ => {}
        }
    }
    let outside = &ifs[0];

    let parsed = arp::parse(frame);
    let mut f = frame.to_vec();
    if arp::reply_in_place(&mut f, outside) {
        assert_eq!(f.len(), frame.len());
        let r = arp::parse(&f).unwrap();
        assert_eq!(r.op, arp::Operation::Reply);
        assert_eq!(r.target_ip, parsed.unwrap().sender_ip);
    } else {
        assert_eq!(f, frame, "declined but modified");
    }

    let _ = nd::parse_ns(frame);
    let _ = nd::parse_na(frame);
    let mut b = frame.to_vec();
    b.resize(frame.len() + 64, 0xee);
    let before = b.clone();
    match nd::na_in_place(&mut b, frame.len(), outside) {
        Some(n) => {
            assert_eq!(n, nd::FRAME_LEN);
            nd::parse_na(&b[..n]).unwrap();
        }
        None => assert_eq!(b, before),
    }
    // `len` past the buffer must be refused, not panic.
    let _ = nd::na_in_place(&mut b, usize::MAX, outside);

    let mut f = frame.to_vec();
    if let Some(n) = icmp::echo_reply_v4_in_place(&mut f, OUR) {
        assert!(n <= frame.len());
        assert!(checksum::verify(&f[14..34]));
        assert!(checksum::verify(&f[34..n]));
        assert_eq!(f[34], 0);
    }
    let mut f = frame.to_vec();
    if let Some(n) = icmp::echo_reply_v6_in_place(&mut f, OUR) {
        assert!(n <= frame.len());
        assert_eq!(f[54], 129);
        let reply = nd_like_checksum_ok(&f[..n]);
        assert!(reply);
    }

    let mut out = vec![0u8; 1500];
    for l3 in [frame, frame.get(14..).unwrap_or(&[])] {
        if let Some(n) = icmp::build_fragmentation_needed(&mut out, l3, Ipv4Addr::new(10, 0, 0, 1), 1400) {
            assert!(n <= 576);
            assert!(checksum::verify(&out[..20]) && checksum::verify(&out[20..n]));
        }
        if let Some(n) = icmp::build_packet_too_big(&mut out, l3, "2001:db8::1".parse().unwrap(), 1400) {
            assert!(n <= 1280);
        }
        let _ = ipv6_upper_layer(l3);
    }
    let _ = ethernet::dst(frame);
}

/// ICMPv6 checksum of a frame with ICMPv6 right after the IPv6 header.
fn nd_like_checksum_ok(f: &[u8]) -> bool {
    let src = Ipv6Addr::from(<[u8; 16]>::try_from(&f[22..38]).unwrap());
    let dst = Ipv6Addr::from(<[u8; 16]>::try_from(&f[38..54]).unwrap());
    let sum = checksum::pseudo_header_v6(src, dst, 58, (f.len() - 54) as u32);
    checksum::finish(checksum::add(sum, &f[54..])) == 0
}

#[test]
fn seeds_are_accepted_by_something() {
    // The seeds must be the valid frames they claim to be, or mutating them tests little.
    let ifs = ifaces();
    for (i, s) in seeds().iter().enumerate() {
        let c = classify(s, if s[..6] == INSIDE.0 { 1 } else { 0 }, &ifs);
        assert!(!matches!(c, Classified::Malformed(_) | Classified::Ignore(_)), "seed {i}: {c:?}");
        exercise(s);
    }
}

fn mutated() -> impl Strategy<Value = Vec<u8>> {
    let n = seeds().len();
    (
        0..n,
        prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..8),
        any::<prop::sample::Index>(),
        any::<bool>(),
    )
        .prop_map(|(i, flips, cut, truncate)| {
            let mut f = seeds()[i].clone();
            for (at, v) in flips {
                let at = at.index(f.len());
                f[at] = v;
            }
            if truncate {
                f.truncate(cut.index(f.len() + 1));
            }
            f
        })
}

/// Addresses of every kind the classifier tells apart: ours on either port, their directed
/// broadcasts, 0/8, loopback, multicast (link-local groups too), class E, the limited
/// broadcast, and ordinary unicast.
fn interesting_v4() -> impl Strategy<Value = [u8; 4]> {
    prop_oneof![
        Just([198, 18, 0, 1]),
        Just([10, 0, 0, 1]),
        Just([198, 18, 0, 255]),
        Just([10, 0, 255, 255]),
        Just([0, 0, 0, 0]),
        Just([0, 1, 2, 3]),
        Just([127, 0, 0, 1]),
        Just([224, 0, 0, 5]),
        Just([239, 1, 2, 3]),
        Just([240, 0, 0, 1]),
        Just([255, 255, 255, 255]),
        any::<[u8; 4]>(),
        (any::<u8>(), any::<u8>()).prop_map(|(a, b)| [198, 18, a, b]),
        (any::<u8>(), any::<u8>()).prop_map(|(a, b)| [10, 0, a, b]),
    ]
}

/// IPv4 frames with a valid header checksum (so the fast path gets past it) and everything
/// else drawn: MAC, header length, flags and offset, addresses, protocol, payload, total
/// length, trailing padding.
fn checksummed_v4() -> impl Strategy<Value = Vec<u8>> {
    (
        prop_oneof![
            Just(OUR),
            Just(INSIDE),
            Just(PEER),
            Just(Mac([0xff; 6])),
            Just(Mac([1, 0, 0x5e, 0, 0, 5]))
        ],
        prop_oneof![Just(0x45u8), Just(0x46), Just(0x44), Just(0x55), any::<u8>()],
        prop_oneof![Just(0u16), Just(0x4000), Just(0x2000), Just(0x0001), any::<u16>()],
        interesting_v4(),
        interesting_v4(),
        prop_oneof![Just(50u8), Just(17), Just(6), Just(1), Just(132), any::<u8>()],
        prop::collection::vec(any::<u8>(), 0..40),
        prop_oneof![Just(None), (0usize..80).prop_map(Some)],
        0usize..8,
    )
        .prop_map(|(mac, vihl, frag, src, dst, proto, mut payload, total, pad)| {
            if proto == 17 && payload.len() >= 8 && payload[0] & 1 == 0 {
                // Often NAT-T or IKE, with a consistent UDP length.
                let port: u16 = if payload[1] & 1 == 0 { 4500 } else { 500 };
                payload[2..4].copy_from_slice(&port.to_be_bytes());
                let n = payload.len() as u16;
                payload[4..6].copy_from_slice(&n.to_be_bytes());
            }
            let mut f = ipv4_frame(mac, src, dst, proto, 0, &payload);
            f[14] = vihl;
            f[20..22].copy_from_slice(&frag.to_be_bytes());
            if let Some(t) = total {
                f[16..18].copy_from_slice(&(t as u16).to_be_bytes());
            }
            let ihl = (usize::from(vihl & 0x0f) * 4).clamp(20, f.len() - 14);
            f[24..26].fill(0);
            let c = checksum::checksum(&f[14..14 + ihl]);
            f[24..26].copy_from_slice(&c.to_be_bytes());
            f.resize(f.len() + pad, 0);
            f
        })
}

#[test]
fn fast_path_takes_the_common_frames() {
    // Transit from the inside, ESP and NAT-T ESP and IKE to us: what the fast path is for.
    let ifs = ifaces();
    let fast = FastV4::new(&ifs);
    let mut taken = 0;
    for s in seeds() {
        let port = if s[..6] == INSIDE.0 { 1 } else { 0 };
        let is_v4_plain = s[12..14] == [0x08, 0x00] && s[14] == 0x45 && s[20..22] == [0, 0];
        let is_v4_df = s[12..14] == [0x08, 0x00] && s[14] == 0x45 && s[20..22] == [0x40, 0];
        match fast.classify(&s, port) {
            Some(c) => {
                assert_eq!(c, classify(&s, port, &ifs));
                taken += 1;
            }
            None => {
                assert!(!(is_v4_plain || is_v4_df), "declined a common frame: {:?}", classify(&s, port, &ifs))
            }
        }
    }
    // The two ESP frames, the IKE frame, the echo request, two transit frames.
    assert_eq!(taken, 6);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, ..ProptestConfig::default() })]

    #[test]
    fn fast_path_agrees_with_classify(frame in checksummed_v4()) {
        exercise(&frame);
    }

    #[test]
    fn random_bytes_never_panic(frame in prop::collection::vec(any::<u8>(), 0..200)) {
        exercise(&frame);
    }

    #[test]
    fn mutated_frames_never_panic(frame in mutated()) {
        exercise(&frame);
    }

    #[test]
    fn arp_request_round_trip(mac in any::<[u8; 6]>(), ours in any::<u32>(), target in any::<u32>()) {
        let mac = Mac([mac[0] & 0xfe, mac[1], mac[2], mac[3], mac[4], mac[5] | 1]);
        let ours = Ipv4Addr::from(ours);
        prop_assume!(!ours.is_multicast() && !ours.is_broadcast());
        let mut b = [0u8; 60];
        prop_assert_eq!(arp::build_request(&mut b, mac, ours, Ipv4Addr::from(target)), Some(60));
        let p = arp::parse(&b).unwrap();
        prop_assert_eq!((p.sender_mac, p.sender_ip, p.target_ip), (mac, ours, Ipv4Addr::from(target)));
    }

    #[test]
    fn ns_round_trip(target in any::<u128>(), ours in any::<u128>()) {
        let (target, ours) = (Ipv6Addr::from(target), Ipv6Addr::from(ours));
        prop_assume!(!target.is_multicast() && !ours.is_multicast());
        let mut b = [0u8; 86];
        prop_assert!(nd::build_ns(&mut b, OUR, ours, target).is_some());
        let ns = nd::parse_ns(&b);
        if ours.is_unspecified() {
            // DAD never carries a source link-layer option (RFC 4861 §7.1.1).
            prop_assert!(ns.is_err());
        } else {
            let ns = ns.unwrap();
            prop_assert_eq!((ns.src, ns.target, ns.source_mac), (ours, target, Some(OUR)));
            prop_assert_eq!(ns.dst, nd::solicited_node(target));
        }
    }

    #[test]
    fn text_parsers_never_panic(s in "\\PC{0,40}") {
        let _ = s.parse::<IfAddr>();
        let _ = s.parse::<Mac>();
    }

    /// The neighbour table against a `HashMap`, one thread, arbitrary operations. Only
    /// addresses put in (asked for, or static) are learnt; 24 addresses in 128 buckets of 8
    /// never overflow a bucket, so nothing is pushed out.
    #[test]
    fn neighbor_table_matches_model(ops in prop::collection::vec((0u8..5, 0u8..24, 1u8..4, 0u16..3), 1..200)) {
        let t = NeighborTable::with_times(1024, NeighTimes { reachable: u64::MAX / 4, stale: 0 });
        // Known addresses, with their MAC, port and static flag once resolved.
        let mut model: HashMap<IpAddr, Option<(Mac, u16, bool)>> = HashMap::new();
        let addr = |k: u8| -> IpAddr {
            if k.is_multiple_of(2) { IpAddr::V4(Ipv4Addr::new(10, 0, 0, k + 1)) } else { IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, u16::from(k))) }
        };
        let mut unsolicited = 0;
        for (now, (op, k, m, port)) in ops.into_iter().enumerate() {
            let ip = addr(k);
            let mac = Mac([2, 0, 0, 0, 0, m]);
            match op {
                0 | 4 => {
                    let r = if op == 0 {
                        t.learn(ip, mac, port, now as u64)
                    } else {
                        t.refresh(ip, mac, port, now as u64).map(|l| l.ok_or(NeighError::Unsolicited)).and_then(|r| r)
                    };
                    match model.get(&ip) {
                        Some(&Some((_, _, true))) => prop_assert_eq!(r, Ok(Learned::Static)),
                        Some(_) => { prop_assert!(r.is_ok()); model.insert(ip, Some((mac, port, false))); }
                        None => {
                            prop_assert_eq!(r, Err(NeighError::Unsolicited));
                            if op == 0 { unsolicited += 1; }
                        }
                    }
                }
                1 => { t.add_static(ip, mac, port, now as u64).unwrap(); model.insert(ip, Some((mac, port, true))); }
                2 => {
                    prop_assert_eq!(t.forget(ip), model.contains_key(&ip));
                    if let Some(v) = model.get_mut(&ip) { *v = None; }
                }
                _ => { t.mark_incomplete(ip, now as u64).unwrap(); model.entry(ip).or_insert(None); }
            }
            for k in 0..24 {
                let ip = addr(k);
                prop_assert_eq!(t.lookup(ip, now as u64), model.get(&ip).copied().flatten().map(|(m, p, _)| (m, p)), "{}", ip);
            }
            prop_assert_eq!(t.len(), model.len());
        }
        prop_assert_eq!(t.refusals().unsolicited, unsolicited);
        prop_assert_eq!(t.refusals().evicted, 0);
    }
}
