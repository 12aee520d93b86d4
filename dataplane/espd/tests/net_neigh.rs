//! The neighbour table against hostile links, frame by frame: hand-made ARP, NS and NA
//! frames go through the classifier and the learning functions exactly as a worker
//! dispatches them (`Classified::Arp` to `arp::learn`, NS and NA to `nd::learn_from_*`),
//! on a virtual clock.
//!
//! A flood of unsolicited ARP and ND from 10,000 random senders leaves only what we
//! resolved; the configured next hop resolves throughout; a flood of addresses we are made
//! to resolve pushes out unresolved entries, never the configured or the resolved ones in
//! use; an entry that is not confirmed again is removed after its reachable and stale time.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use espd::net::addr::{IfAddr, Interface};
use espd::net::classify::{classify, Classified};
use espd::net::ethernet::Mac;
use espd::net::neigh::{Learned, NeighError, NeighTimes, NeighborTable, Refusals, DEFAULT_CAPACITY};
use espd::net::{arp, nd};

const OUR: Mac = Mac([0x02, 0, 0, 0, 0, 0x01]);
const INSIDE: Mac = Mac([0x02, 0, 0, 0, 0, 0x02]);
const GW_MAC: Mac = Mac([0x02, 0, 0, 0, 0, 0xfe]);
const PEER4_MAC: Mac = Mac([0x52, 0x54, 0, 0x12, 0x34, 0x56]);
const PEER6_MAC: Mac = Mac([0x52, 0x54, 0, 0x12, 0x34, 0x66]);

/// Milliseconds: reachable 30 s, stale 60 s (the defaults).
const TIMES: NeighTimes = NeighTimes { reachable: 30_000, stale: 60_000 };

fn our_v4() -> Ipv4Addr {
    Ipv4Addr::new(198, 18, 0, 1)
}
fn our_v6() -> Ipv6Addr {
    "2001:db8::1".parse().unwrap()
}
fn gw() -> IpAddr {
    "198.18.0.254".parse().unwrap()
}
fn peer4() -> Ipv4Addr {
    Ipv4Addr::new(198, 18, 0, 2)
}
fn peer6() -> Ipv6Addr {
    "2001:db8::2".parse().unwrap()
}

fn ifaces() -> Vec<Interface> {
    let a = |s: &str| s.parse::<IfAddr>().unwrap();
    vec![
        Interface::new(0, OUR, vec![a("198.18.0.1/15"), a("2001:db8::1/32")]),
        Interface::new(1, INSIDE, vec![a("10.0.0.1/16")]),
    ]
}

/// An Ethernet/IPv4 ARP frame, padded to 60 bytes.
fn arp_frame(op: u16, dst: Mac, sha: Mac, spa: Ipv4Addr, tha: Mac, tpa: Ipv4Addr) -> Vec<u8> {
    let mut f = Vec::with_capacity(60);
    f.extend(dst.0);
    f.extend(sha.0);
    f.extend([0x08, 0x06, 0, 1, 0x08, 0x00, 6, 4]);
    f.extend(op.to_be_bytes());
    f.extend(sha.0);
    f.extend(spa.octets());
    f.extend(tha.0);
    f.extend(tpa.octets());
    f.resize(60, 0);
    f
}

/// The solicited NA that `who` (at `mac`) sends in answer to our NS for it.
fn solicited_na(who: Ipv6Addr, mac: Mac) -> Vec<u8> {
    let mut buf = vec![0u8; 128];
    let n = nd::build_ns(&mut buf, OUR, our_v6(), who).unwrap();
    let them = Interface::new(0, mac, vec![IfAddr::new(IpAddr::V6(who), 64).unwrap()]);
    let len = nd::na_in_place(&mut buf, n, &them).unwrap();
    buf.truncate(len);
    buf
}

fn unsolicited_na(who: Ipv6Addr, mac: Mac) -> Vec<u8> {
    let mut buf = vec![0u8; 128];
    let n = nd::build_unsolicited_na(&mut buf, mac, who).unwrap();
    buf.truncate(n);
    buf
}

fn ns_for_us(from: Ipv6Addr, mac: Mac) -> Vec<u8> {
    let mut buf = vec![0u8; 128];
    let n = nd::build_ns(&mut buf, mac, from, our_v6()).unwrap();
    buf.truncate(n);
    buf
}

/// What a worker does with a received frame on port 0, as far as the table is concerned:
/// the classification, then the learning call for its class. `None`: nothing to learn.
fn receive(
    t: &NeighborTable,
    ifs: &[Interface],
    frame: &[u8],
    now: u64,
) -> Option<Result<Learned, NeighError>> {
    match classify(frame, 0, ifs) {
        Classified::Arp => arp::learn(t, frame, &ifs[0], 0, now),
        Classified::NeighborSolicit => nd::learn_from_ns(t, frame, 0, now),
        Classified::NeighborAdvert => nd::learn_from_na(t, frame, 0, now),
        other => panic!("a neighbour frame classified as {other:?}"),
    }
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn mac(&mut self) -> Mac {
        let b = self.next().to_be_bytes();
        Mac([0x02, b[1], b[2], b[3], b[4], b[5]])
    }
    /// An IPv4 sender in 198.19.0.0/16 (on our link, never one of our neighbours).
    fn v4(&mut self) -> Ipv4Addr {
        Ipv4Addr::new(198, 19, (self.next() >> 8) as u8, (self.next() >> 16) as u8 | 1)
    }
    /// An IPv6 sender in 2001:db8:ff00::/40.
    fn v6(&mut self) -> Ipv6Addr {
        let x = self.next();
        Ipv6Addr::new(
            0x2001,
            0xdb8,
            0xff00 | (x as u16 & 0xff),
            0,
            0,
            (x >> 16) as u16,
            (x >> 32) as u16,
            (x >> 48) as u16 | 1,
        )
    }
}

/// The table with the configured next hop and the two neighbours we resolved, frame by frame.
fn resolved_table(ifs: &[Interface]) -> NeighborTable {
    let t = NeighborTable::with_times(DEFAULT_CAPACITY, TIMES);
    t.add_static(gw(), GW_MAC, 0, 0).unwrap();
    // Before we ask, a peer's answer is refused: nothing was pending.
    let reply = arp_frame(2, OUR, PEER4_MAC, peer4(), OUR, our_v4());
    assert_eq!(receive(&t, ifs, &reply, 0), Some(Err(NeighError::Unsolicited)));
    // We ask (the worker sends the ARP request and the NS), they answer.
    assert!(t.needs_request(IpAddr::V4(peer4()), 0, 1000));
    assert!(t.needs_request(IpAddr::V6(peer6()), 0, 1000));
    assert_eq!(receive(&t, ifs, &reply, 5), Some(Ok(Learned::New)));
    assert_eq!(receive(&t, ifs, &solicited_na(peer6(), PEER6_MAC), 6), Some(Ok(Learned::New)));
    assert_eq!(t.lookup(IpAddr::V4(peer4()), 10), Some((PEER4_MAC, 0)));
    assert_eq!(t.lookup(IpAddr::V6(peer6()), 10), Some((PEER6_MAC, 0)));
    assert_eq!(t.len(), 3);
    t
}

#[test]
fn a_flood_of_unsolicited_arp_and_nd_learns_nothing() {
    let ifs = ifaces();
    let t = resolved_table(&ifs);
    let before = t.refusals();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let (mut counted, mut silent) = (0u64, 0u64);
    for i in 0..10_000u64 {
        let now = 100 + i;
        let (mac, v4, v6) = (rng.mac(), rng.v4(), rng.v6());
        let frame = match i % 6 {
            // ARP request for our address from a stranger (RFC 826 would add it).
            0 => arp_frame(1, Mac::BROADCAST, mac, v4, Mac::ZERO, our_v4()),
            // An ARP reply to us that nobody asked for.
            1 => arp_frame(2, OUR, mac, v4, OUR, our_v4()),
            // Gratuitous ARP and ARP between other hosts.
            2 => arp_frame(1, Mac::BROADCAST, mac, v4, Mac::ZERO, v4),
            // Unsolicited NA to all nodes, solicited-looking NA to us, NS for our address.
            3 => unsolicited_na(v6, mac),
            4 => solicited_na(v6, mac),
            _ => ns_for_us(v6, mac),
        };
        let r = receive(&t, &ifs, &frame, now);
        assert_eq!(r, Some(Err(NeighError::Unsolicited)), "frame {i}");
        if i % 6 == 2 {
            silent += 1;
        } else {
            counted += 1;
        }
    }
    // Only what we resolved, and the configured next hop.
    let mut ips: Vec<IpAddr> = t.entries().into_iter().map(|e| e.ip).collect();
    ips.sort();
    let mut want = vec![gw(), IpAddr::V4(peer4()), IpAddr::V6(peer6())];
    want.sort();
    assert_eq!(ips, want);
    assert_eq!(t.lookup(gw(), 20_000), Some((GW_MAC, 0)));
    assert_eq!(t.lookup(IpAddr::V4(peer4()), 20_000), Some((PEER4_MAC, 0)));
    assert_eq!(t.lookup(IpAddr::V6(peer6()), 20_000), Some((PEER6_MAC, 0)));
    assert_eq!(
        t.refusals(),
        Refusals { unsolicited: before.unsolicited + counted, table_full: 0, evicted: 0 },
        "{silent} frames between other hosts are not counted"
    );
    // Our neighbours' own traffic still refreshes them.
    let req = arp_frame(1, Mac::BROADCAST, PEER4_MAC, peer4(), Mac::ZERO, our_v4());
    assert_eq!(receive(&t, &ifs, &req, 20_001), Some(Ok(Learned::Refreshed)));
}

#[test]
fn a_flood_of_addresses_to_resolve_keeps_static_and_used_neighbours() {
    let ifs = ifaces();
    let t = resolved_table(&ifs);
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let mut asked = 0;
    // Traffic to 20,000 on-link destinations that do not answer: five times the table.
    for i in 0..20_000u64 {
        let now = 100 + i;
        let a = if i % 2 == 0 { IpAddr::V4(rng.v4()) } else { IpAddr::V6(rng.v6()) };
        if t.needs_request(a, now, 1000) {
            asked += 1;
        }
        // Our neighbours carry traffic throughout.
        if i % 100 == 0 {
            assert_eq!(t.lookup(gw(), now), Some((GW_MAC, 0)));
            assert_eq!(t.lookup(IpAddr::V4(peer4()), now), Some((PEER4_MAC, 0)), "at {i}");
            assert_eq!(t.lookup(IpAddr::V6(peer6()), now), Some((PEER6_MAC, 0)), "at {i}");
        }
    }
    assert!(asked > 19_000, "{asked}");
    assert!(t.len() <= t.capacity());
    let r = t.refusals();
    assert!(r.evicted > 10_000, "{r:?}");
    assert_eq!(r.table_full, 0);
    // And a new neighbour can still be resolved.
    let late = Ipv4Addr::new(198, 18, 0, 3);
    assert!(t.needs_request(IpAddr::V4(late), 30_000, 1000));
    let reply = arp_frame(2, OUR, PEER6_MAC, late, OUR, our_v4());
    assert_eq!(receive(&t, &ifs, &reply, 30_001), Some(Ok(Learned::New)));
    assert_eq!(t.lookup(IpAddr::V4(late), 30_001), Some((PEER6_MAC, 0)));
}

#[test]
fn an_unconfirmed_neighbour_expires() {
    let ifs = ifaces();
    let t = resolved_table(&ifs);
    let peer = IpAddr::V4(peer4());
    // Reachable until 5 + 30 s; stale (still used, asked for again) until 5 + 90 s.
    assert!(!t.needs_request(peer, 30_004, 1000));
    let mut confirm = Vec::with_capacity(8);
    assert_eq!(t.sweep(30_005, &mut confirm), 0);
    assert!(confirm.contains(&(peer, 0)), "stale: listed to ask again");
    assert!(t.needs_request(peer, 30_005, 1000));
    assert_eq!(t.lookup(peer, 90_004), Some((PEER4_MAC, 0)), "stale is still used");
    // The v6 peer answers again; the v4 peer does not.
    assert_eq!(receive(&t, &ifs, &solicited_na(peer6(), PEER6_MAC), 60_000), Some(Ok(Learned::Refreshed)));
    assert_eq!(t.lookup(peer, 90_005), None, "removed at reachable + stale");
    let g = t.generation();
    assert_eq!(t.sweep(90_005, &mut confirm), 1);
    assert!(t.generation() > g, "cached hops learn it");
    assert_eq!(t.lookup(IpAddr::V6(peer6()), 90_005), Some((PEER6_MAC, 0)));
    assert_eq!(t.lookup(gw(), u64::MAX), Some((GW_MAC, 0)), "the configured next hop never ages");
    // Its answer to a new request brings it back.
    assert!(t.needs_request(peer, 90_006, 1000));
    let reply = arp_frame(2, OUR, PEER4_MAC, peer4(), OUR, our_v4());
    assert_eq!(receive(&t, &ifs, &reply, 90_007), Some(Ok(Learned::New)));
    assert_eq!(t.lookup(peer, 90_007), Some((PEER4_MAC, 0)));
}
