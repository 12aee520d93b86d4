//! The route table: IPv4 and IPv6 prefixes to next hops, longest-prefix match.
//!
//! # Design
//! Built once from a list of routes (allocating, on the main thread) and then read-only: the
//! owner rebuilds a new table and swaps it in (behind an `Arc`, an RCU-style pointer, or the
//! next configuration epoch) rather than editing it under the workers.
//!
//! Per family, one hash table per prefix length present, visited from the longest length to
//! the shortest; the first hit is the longest match. Each per-length table is an open-
//! addressing array at most half full, so a probe ends after one or two slots. A gateway's
//! table has few distinct lengths (connected /24s and /64s, a default route, a handful of
//! statics), so a lookup is a few hashed probes into small arrays, with no pointer chasing:
//! a binary trie would walk up to 32 or 128 nodes for the same answer. With thousands of
//! routes of many lengths the cost grows with the number of distinct lengths (33 or 129 at
//! worst), not with the number of routes; if that ever matters, the same structure can
//! binary-search the lengths (Waldvogel et al., "Scalable High Speed IP Routing Lookups",
//! SIGCOMM '97) with markers. Lookups never allocate.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::addr::{mask_v4, mask_v6, max_prefix_len, Interface};

/// Where a route sends a packet.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
pub enum NextHop {
    /// The destination is on the link of this port: resolve the destination itself.
    OnLink(u16),
    /// Through this gateway, on the link of this port.
    Via(IpAddr, u16),
}

impl NextHop {
    /// The port the packet leaves by.
    pub fn port(&self) -> u16 {
        match *self {
            NextHop::OnLink(p) | NextHop::Via(_, p) => p,
        }
    }
}

/// One route.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
pub struct Route {
    /// The network (host bits zero).
    pub prefix: IpAddr,
    /// Its length.
    pub prefix_len: u8,
    /// Where to send matching packets.
    pub next_hop: NextHop,
}

impl fmt::Display for Route {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.prefix, self.prefix_len)?;
        match self.next_hop {
            NextHop::OnLink(p) => write!(f, " dev port{p}"),
            NextHop::Via(g, p) => write!(f, " via {g} dev port{p}"),
        }
    }
}

/// Why a route table could not be built.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum RouteError {
    /// The prefix length is longer than the address.
    PrefixTooLong(Route),
    /// The prefix has bits set past its length (write `10.0.0.0/8`, not `10.1.2.3/8`).
    HostBitsSet(Route),
    /// The gateway is not of the prefix's family.
    FamilyMismatch(Route),
    /// The gateway is unspecified or multicast.
    BadGateway(Route),
    /// Two routes for the same prefix.
    Duplicate(Route),
}

impl fmt::Display for RouteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RouteError::PrefixTooLong(r) => write!(f, "route {r}: prefix length longer than the address"),
            RouteError::HostBitsSet(r) => write!(f, "route {r}: the prefix has host bits set"),
            RouteError::FamilyMismatch(r) => {
                write!(f, "route {r}: gateway and prefix are of different families")
            }
            RouteError::BadGateway(r) => write!(f, "route {r}: the gateway is unspecified or multicast"),
            RouteError::Duplicate(r) => write!(f, "route {r}: another route has the same prefix"),
        }
    }
}

impl std::error::Error for RouteError {}

/// An address type the per-length tables are keyed by.
trait Key: Copy + Eq + fmt::Debug {
    fn masked(self, len: u8) -> Self;
    fn hash(self) -> u64;
}

fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl Key for u32 {
    fn masked(self, len: u8) -> u32 {
        self & mask_v4(len)
    }
    fn hash(self) -> u64 {
        mix(u64::from(self))
    }
}

impl Key for u128 {
    fn masked(self, len: u8) -> u128 {
        self & mask_v6(len)
    }
    fn hash(self) -> u64 {
        mix(mix((self >> 64) as u64) ^ self as u64)
    }
}

#[derive(Clone, Debug)]
struct Level {
    len: u8,
    start: usize,
    slot_mask: usize,
}

#[derive(Clone, Debug)]
struct Lpm<K> {
    /// Longest prefix length first.
    levels: Vec<Level>,
    slots: Vec<Option<(K, NextHop)>>,
}

impl<K: Key> Lpm<K> {
    fn build(mut entries: Vec<(K, u8, NextHop)>) -> Lpm<K> {
        entries.sort_by_key(|e| std::cmp::Reverse(e.1));
        let mut levels = Vec::new();
        let mut slots = Vec::new();
        let mut rest = entries.as_slice();
        while let Some(&(_, len, _)) = rest.first() {
            let n = rest.iter().take_while(|e| e.1 == len).count();
            let (these, more) = rest.split_at(n);
            // At most half full, so every probe sequence meets an empty slot soon.
            let size = (n * 2).next_power_of_two().max(2);
            let start = slots.len();
            slots.resize(start + size, None);
            let level = Level { len, start, slot_mask: size - 1 };
            for &(key, _, nh) in these {
                let mut i = (key.hash() as usize) & level.slot_mask;
                while let Some(Some(_)) = slots.get(start + i) {
                    i = (i + 1) & level.slot_mask;
                }
                if let Some(s) = slots.get_mut(start + i) {
                    *s = Some((key, nh));
                }
            }
            levels.push(level);
            rest = more;
        }
        Lpm { levels, slots }
    }

    #[inline]
    fn lookup(&self, addr: K) -> Option<NextHop> {
        for level in &self.levels {
            let key = addr.masked(level.len);
            let mut i = (key.hash() as usize) & level.slot_mask;
            for _ in 0..=level.slot_mask {
                match self.slots.get(level.start + i) {
                    Some(Some((k, nh))) if *k == key => return Some(*nh),
                    Some(Some(_)) => i = (i + 1) & level.slot_mask,
                    _ => break,
                }
            }
        }
        None
    }
}

/// Longest-prefix-match routes for IPv4 and IPv6; see the module docs.
#[derive(Clone, Debug)]
pub struct RouteTable {
    v4: Lpm<u32>,
    v6: Lpm<u128>,
    routes: Vec<Route>,
}

impl Default for RouteTable {
    fn default() -> Self {
        RouteTable { v4: Lpm::build(Vec::new()), v6: Lpm::build(Vec::new()), routes: Vec::new() }
    }
}

impl RouteTable {
    /// Builds a table, checking every route. Allocates: call on the main thread.
    pub fn new(routes: &[Route]) -> Result<RouteTable, RouteError> {
        let mut v4 = Vec::new();
        let mut v6 = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for r in routes {
            if r.prefix_len > max_prefix_len(r.prefix) {
                return Err(RouteError::PrefixTooLong(*r));
            }
            if let NextHop::Via(g, _) = r.next_hop {
                if g.is_ipv4() != r.prefix.is_ipv4() {
                    return Err(RouteError::FamilyMismatch(*r));
                }
                if g.is_unspecified() || g.is_multicast() {
                    return Err(RouteError::BadGateway(*r));
                }
            }
            if !seen.insert((r.prefix, r.prefix_len)) {
                return Err(RouteError::Duplicate(*r));
            }
            match r.prefix {
                IpAddr::V4(a) => {
                    let k = u32::from(a);
                    if k.masked(r.prefix_len) != k {
                        return Err(RouteError::HostBitsSet(*r));
                    }
                    v4.push((k, r.prefix_len, r.next_hop));
                }
                IpAddr::V6(a) => {
                    let k = u128::from(a);
                    if k.masked(r.prefix_len) != k {
                        return Err(RouteError::HostBitsSet(*r));
                    }
                    v6.push((k, r.prefix_len, r.next_hop));
                }
            }
        }
        Ok(RouteTable { v4: Lpm::build(v4), v6: Lpm::build(v6), routes: routes.to_vec() })
    }

    /// The connected routes of the interfaces: each address's prefix, on-link on its port.
    /// Duplicates (two addresses in one prefix) are folded.
    pub fn connected(ifaces: &[Interface]) -> Vec<Route> {
        let mut out: Vec<Route> = Vec::new();
        for i in ifaces {
            for a in &i.addrs {
                let r = Route {
                    prefix: a.network(),
                    prefix_len: a.prefix_len,
                    next_hop: NextHop::OnLink(i.port),
                };
                if !out.iter().any(|o| (o.prefix, o.prefix_len) == (r.prefix, r.prefix_len)) {
                    out.push(r);
                }
            }
        }
        out
    }

    /// The routes the table was built from, for display.
    pub fn routes(&self) -> &[Route] {
        &self.routes
    }

    /// The longest-prefix match for `dst`. No allocation.
    #[inline]
    pub fn lookup(&self, dst: IpAddr) -> Option<NextHop> {
        match dst {
            IpAddr::V4(a) => self.lookup_v4(a),
            IpAddr::V6(a) => self.lookup_v6(a),
        }
    }

    /// [`RouteTable::lookup`] for IPv4.
    #[inline]
    pub fn lookup_v4(&self, dst: Ipv4Addr) -> Option<NextHop> {
        self.v4.lookup(u32::from(dst))
    }

    /// [`RouteTable::lookup`] for IPv6.
    #[inline]
    pub fn lookup_v6(&self, dst: Ipv6Addr) -> Option<NextHop> {
        self.v6.lookup(u128::from(dst))
    }

    /// The neighbour to send a packet for `dst` to, and the port: the destination itself for
    /// an on-link route, the gateway otherwise. The address is what the neighbour table is
    /// asked about.
    #[inline]
    pub fn resolve(&self, dst: IpAddr) -> Option<(IpAddr, u16)> {
        Some(match self.lookup(dst)? {
            NextHop::OnLink(port) => (dst, port),
            NextHop::Via(gateway, port) => (gateway, port),
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::net::addr::parse_prefix;
    use crate::net::ethernet::Mac;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn route(p: &str, nh: NextHop) -> Route {
        let (prefix, prefix_len) = parse_prefix(p).unwrap();
        Route { prefix, prefix_len, next_hop: nh }
    }

    fn sample() -> RouteTable {
        RouteTable::new(&[
            route("0.0.0.0/0", NextHop::Via(ip("198.18.0.254"), 0)),
            route("198.18.0.0/24", NextHop::OnLink(0)),
            route("10.0.0.0/8", NextHop::Via(ip("10.255.0.1"), 1)),
            route("10.1.0.0/16", NextHop::Via(ip("10.255.0.2"), 1)),
            route("10.1.2.3/32", NextHop::OnLink(2)),
            route("10.255.0.0/24", NextHop::OnLink(1)),
            route("::/0", NextHop::Via(ip("fe80::1"), 0)),
            route("2001:db8::/32", NextHop::Via(ip("2001:db8:ffff::1"), 1)),
            route("2001:db8:1::/48", NextHop::OnLink(1)),
            route("2001:db8:1:2::/64", NextHop::OnLink(2)),
        ])
        .unwrap()
    }

    #[test]
    fn longest_prefix_wins() {
        let t = sample();
        let cases = [
            ("8.8.8.8", Some((ip("198.18.0.254"), 0))),
            ("198.18.0.77", Some((ip("198.18.0.77"), 0))),
            ("10.9.9.9", Some((ip("10.255.0.1"), 1))),
            ("10.1.9.9", Some((ip("10.255.0.2"), 1))),
            ("10.1.2.3", Some((ip("10.1.2.3"), 2))),
            ("10.1.2.4", Some((ip("10.255.0.2"), 1))),
            ("10.255.0.9", Some((ip("10.255.0.9"), 1))),
            ("2001:db8:9::1", Some((ip("2001:db8:ffff::1"), 1))),
            ("2001:db8:1:3::1", Some((ip("2001:db8:1:3::1"), 1))),
            ("2001:db8:1:2::1", Some((ip("2001:db8:1:2::1"), 2))),
            ("2001:db9::1", Some((ip("fe80::1"), 0))),
        ];
        for (dst, want) in cases {
            assert_eq!(t.resolve(ip(dst)), want, "{dst}");
        }
        assert_eq!(t.lookup(ip("10.1.2.3")).map(|n| n.port()), Some(2));
        assert_eq!(t.routes().len(), 10);
    }

    #[test]
    fn no_default_no_match() {
        let t = RouteTable::new(&[route("10.0.0.0/8", NextHop::OnLink(0))]).unwrap();
        assert_eq!(t.resolve(ip("11.0.0.1")), None);
        assert_eq!(t.resolve(ip("2001:db8::1")), None);
        assert_eq!(RouteTable::default().resolve(ip("10.0.0.1")), None);
    }

    #[test]
    fn build_errors() {
        let bad = [
            (route("10.1.0.0/8", NextHop::OnLink(0)), "host bits"),
            (Route { prefix: ip("10.0.0.0"), prefix_len: 33, next_hop: NextHop::OnLink(0) }, "too long"),
            (route("10.0.0.0/8", NextHop::Via(ip("2001:db8::1"), 0)), "family"),
            (route("10.0.0.0/8", NextHop::Via(ip("0.0.0.0"), 0)), "gateway"),
            (route("2001:db8::/32", NextHop::Via(ip("ff02::1"), 0)), "gateway"),
        ];
        for (r, what) in bad {
            let e = RouteTable::new(&[r]).unwrap_err();
            assert!(
                matches!(
                    (what, &e),
                    ("host bits", RouteError::HostBitsSet(_))
                        | ("too long", RouteError::PrefixTooLong(_))
                        | ("family", RouteError::FamilyMismatch(_))
                        | ("gateway", RouteError::BadGateway(_))
                ),
                "{what}: {e}"
            );
        }
        let dup = [route("10.0.0.0/8", NextHop::OnLink(0)), route("10.0.0.0/8", NextHop::OnLink(1))];
        assert!(matches!(RouteTable::new(&dup), Err(RouteError::Duplicate(_))));
        assert!(RouteError::HostBitsSet(dup[0]).to_string().contains("10.0.0.0/8 dev port0"));
    }

    #[test]
    fn connected_routes_from_interfaces() {
        let ifs = [
            Interface::new(
                0,
                Mac([2, 0, 0, 0, 0, 1]),
                vec!["198.18.0.1/24".parse().unwrap(), "198.18.0.2/24".parse().unwrap()],
            ),
            Interface::new(1, Mac([2, 0, 0, 0, 0, 2]), vec!["2001:db8:1::1/64".parse().unwrap()]),
        ];
        let c = RouteTable::connected(&ifs);
        assert_eq!(c.len(), 2);
        let t = RouteTable::new(&c).unwrap();
        assert_eq!(t.resolve(ip("198.18.0.9")), Some((ip("198.18.0.9"), 0)));
        assert_eq!(t.resolve(ip("2001:db8:1::9")), Some((ip("2001:db8:1::9"), 1)));
    }

    /// Thousands of random routes against a brute-force longest match.
    #[test]
    fn matches_brute_force() {
        let mut x = 0x1234_5678_9abc_def0u64;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut routes = Vec::new();
        let mut seen = std::collections::HashSet::new();
        while routes.len() < 3000 {
            let r = next();
            let len = (r % 33) as u8;
            let prefix =
                u32::from_be_bytes([10, (r >> 8) as u8, (r >> 16) as u8, (r >> 24) as u8]) & mask_v4(len);
            if seen.insert((prefix, len)) {
                routes.push(Route {
                    prefix: IpAddr::V4(prefix.into()),
                    prefix_len: len,
                    next_hop: NextHop::OnLink((r >> 40) as u16 % 8),
                });
            }
        }
        let t = RouteTable::new(&routes).unwrap();
        for _ in 0..20_000 {
            let r = next();
            let a = u32::from_be_bytes([
                if r & 1 == 0 { 10 } else { (r >> 32) as u8 },
                (r >> 8) as u8,
                (r >> 16) as u8,
                (r >> 24) as u8,
            ]);
            let want = routes
                .iter()
                .filter(|rt| match rt.prefix {
                    IpAddr::V4(p) => a & mask_v4(rt.prefix_len) == u32::from(p),
                    IpAddr::V6(_) => false,
                })
                .max_by_key(|rt| rt.prefix_len)
                .map(|rt| rt.next_hop);
            assert_eq!(t.lookup_v4(a.into()), want, "{}", Ipv4Addr::from(a));
        }
    }
}
