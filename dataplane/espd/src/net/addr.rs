//! Interface addresses: [`IfAddr`] (an address with its prefix length, as `ip addr` shows it)
//! and [`Interface`] (a DPDK port, its MAC and its addresses).
//!
//! Each port has its own addresses, and the classifier applies the strong host model (RFC
//! 1122 §3.3.4.2): a packet is "to us" only if its destination is an address of the port it
//! arrived on.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use super::ethernet::Mac;

/// An address assigned to an interface, with the length of its on-link prefix.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct IfAddr {
    /// The address itself (host bits are kept: this is *our* address, not a network).
    pub addr: IpAddr,
    /// The on-link prefix length: 0..=32 for IPv4, 0..=128 for IPv6.
    pub prefix_len: u8,
}

/// Why an interface address or prefix did not parse.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum AddrError {
    /// No `/`: an interface address needs its prefix length, e.g. `198.18.0.1/24`.
    MissingPrefixLength(String),
    /// The part before `/` is not an IPv4 or IPv6 address.
    BadAddress(String),
    /// The part after `/` is not a number.
    BadPrefixLength(String),
    /// The prefix length is longer than the address.
    PrefixTooLong {
        /// What was given.
        prefix_len: u8,
        /// 32 or 128.
        max: u8,
    },
}

impl fmt::Display for AddrError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AddrError::MissingPrefixLength(s) => {
                write!(f, "{s:?}: missing prefix length, write e.g. 198.18.0.1/24 or 2001:db8::1/64")
            }
            AddrError::BadAddress(s) => write!(f, "{s:?} is not an IPv4 or IPv6 address"),
            AddrError::BadPrefixLength(s) => write!(f, "{s:?} is not a prefix length (a number after '/')"),
            AddrError::PrefixTooLong { prefix_len, max } => {
                write!(f, "prefix length /{prefix_len} is longer than the address (at most /{max})")
            }
        }
    }
}

impl std::error::Error for AddrError {}

/// The number of bits of an address of this family: 32 or 128.
pub fn max_prefix_len(addr: IpAddr) -> u8 {
    match addr {
        IpAddr::V4(_) => 32,
        IpAddr::V6(_) => 128,
    }
}

/// Parses `address/length`, the common part of [`IfAddr`] and route prefixes.
pub fn parse_prefix(s: &str) -> Result<(IpAddr, u8), AddrError> {
    let s = s.trim();
    let (a, l) = s.split_once('/').ok_or_else(|| AddrError::MissingPrefixLength(s.to_string()))?;
    let addr: IpAddr = a.parse().map_err(|_| AddrError::BadAddress(a.to_string()))?;
    if l.is_empty() || !l.bytes().all(|b| b.is_ascii_digit()) {
        return Err(AddrError::BadPrefixLength(l.to_string()));
    }
    let prefix_len: u8 = l.parse().map_err(|_| AddrError::BadPrefixLength(l.to_string()))?;
    let max = max_prefix_len(addr);
    if prefix_len > max {
        return Err(AddrError::PrefixTooLong { prefix_len, max });
    }
    Ok((addr, prefix_len))
}

/// The address with every bit past `prefix_len` cleared (`prefix_len` is capped at the
/// family's width).
pub fn mask(addr: IpAddr, prefix_len: u8) -> IpAddr {
    match addr {
        IpAddr::V4(a) => IpAddr::V4(Ipv4Addr::from(u32::from(a) & mask_v4(prefix_len))),
        IpAddr::V6(a) => IpAddr::V6(Ipv6Addr::from(u128::from(a) & mask_v6(prefix_len))),
    }
}

/// The 32-bit netmask of a prefix length (`/0` is 0, `/32` and above all ones).
pub fn mask_v4(prefix_len: u8) -> u32 {
    u32::MAX.checked_shl(32u32.saturating_sub(u32::from(prefix_len))).unwrap_or(0)
}

/// The 128-bit netmask of a prefix length (`/0` is 0, `/128` and above all ones).
pub fn mask_v6(prefix_len: u8) -> u128 {
    u128::MAX.checked_shl(128u32.saturating_sub(u32::from(prefix_len))).unwrap_or(0)
}

impl IfAddr {
    /// An address and its prefix length, checked.
    pub fn new(addr: IpAddr, prefix_len: u8) -> Result<IfAddr, AddrError> {
        let max = max_prefix_len(addr);
        if prefix_len > max {
            return Err(AddrError::PrefixTooLong { prefix_len, max });
        }
        Ok(IfAddr { addr, prefix_len })
    }

    /// `ip` is in this address's on-link prefix (same family, same first `prefix_len` bits).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(a), IpAddr::V4(b)) => {
                let m = mask_v4(self.prefix_len);
                u32::from(a) & m == u32::from(b) & m
            }
            (IpAddr::V6(a), IpAddr::V6(b)) => {
                let m = mask_v6(self.prefix_len);
                u128::from(a) & m == u128::from(b) & m
            }
            _ => false,
        }
    }

    /// The network address (host bits cleared).
    pub fn network(&self) -> IpAddr {
        mask(self.addr, self.prefix_len)
    }

    /// The IPv4 directed broadcast address of the prefix, for prefixes up to /30 (RFC 3021
    /// /31s and /32s have none); `None` for IPv6.
    pub fn broadcast(&self) -> Option<Ipv4Addr> {
        match self.addr {
            IpAddr::V4(a) if self.prefix_len <= 30 => {
                Some(Ipv4Addr::from(u32::from(a) | !mask_v4(self.prefix_len)))
            }
            _ => None,
        }
    }

    /// The IPv6 link-local address derived from a MAC by modified EUI-64 (RFC 4291 §2.5.1 and
    /// Appendix A, RFC 4862 §5.3), `fe80::/64`.
    pub fn link_local_from_mac(mac: Mac) -> IfAddr {
        let [a, b, c, d, e, f] = mac.0;
        let o = [0xfe, 0x80, 0, 0, 0, 0, 0, 0, a ^ 0x02, b, c, 0xff, 0xfe, d, e, f];
        IfAddr { addr: IpAddr::V6(Ipv6Addr::from(o)), prefix_len: 64 }
    }
}

impl FromStr for IfAddr {
    type Err = AddrError;
    /// `198.18.0.1/24`, `2001:db8::1/64`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (addr, prefix_len) = parse_prefix(s)?;
        Ok(IfAddr { addr, prefix_len })
    }
}

impl fmt::Display for IfAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix_len)
    }
}

/// One of the gateway's ports as the slow path sees it.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Interface {
    /// The DPDK port index.
    pub port: u16,
    /// The port's MAC address: the source of every frame we send on it.
    pub mac: Mac,
    /// Addresses assigned to the port (built once, read per packet without allocation).
    pub addrs: Vec<IfAddr>,
}

impl Interface {
    /// A port with its MAC and addresses.
    pub fn new(port: u16, mac: Mac, addrs: Vec<IfAddr>) -> Interface {
        Interface { port, mac, addrs }
    }

    /// `ip` is one of this port's own addresses.
    pub fn is_local(&self, ip: IpAddr) -> bool {
        self.addrs.iter().any(|a| a.addr == ip)
    }

    /// `ip` is on one of this port's links (inside one of its prefixes); our own addresses
    /// count as on-link.
    pub fn on_link(&self, ip: IpAddr) -> bool {
        self.addrs.iter().any(|a| a.contains(ip))
    }

    /// `ip` is the directed broadcast address of one of this port's IPv4 prefixes.
    pub fn is_directed_broadcast(&self, ip: Ipv4Addr) -> bool {
        self.addrs.iter().any(|a| a.broadcast() == Some(ip))
    }

    /// The port's first IPv4 address (the source of the ARP requests and ICMP errors it sends).
    pub fn ipv4(&self) -> Option<Ipv4Addr> {
        self.addrs.iter().find_map(|a| match a.addr {
            IpAddr::V4(v) => Some(v),
            IpAddr::V6(_) => None,
        })
    }

    /// The port's IPv4 address on the link of `peer`, or else its first IPv4 address: the
    /// source to use for ARP requests and ICMP errors sent towards `peer`.
    pub fn ipv4_for(&self, peer: Ipv4Addr) -> Option<Ipv4Addr> {
        self.addrs
            .iter()
            .find_map(|a| match a.addr {
                IpAddr::V4(v) if a.contains(IpAddr::V4(peer)) => Some(v),
                _ => None,
            })
            .or_else(|| self.ipv4())
    }

    /// The port's IPv6 address on the link of `peer` (link-local for a link-local peer), or
    /// else its first IPv6 address: the source of neighbour solicitations and ICMPv6 errors.
    pub fn ipv6_for(&self, peer: Ipv6Addr) -> Option<Ipv6Addr> {
        let v6 = || {
            self.addrs.iter().filter_map(|a| match a.addr {
                IpAddr::V6(v) => Some((v, a)),
                IpAddr::V4(_) => None,
            })
        };
        v6().find(|(_, a)| a.contains(IpAddr::V6(peer))).or_else(|| v6().next()).map(|(v, _)| v)
    }
}

/// The interface of a port, by linear search (a gateway has a handful of ports).
pub fn by_port(ifaces: &[Interface], port: u16) -> Option<&Interface> {
    ifaces.iter().find(|i| i.port == port)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn parse_and_display() {
        let a: IfAddr = "198.18.0.1/24".parse().unwrap();
        assert_eq!(a, IfAddr { addr: ip("198.18.0.1"), prefix_len: 24 });
        assert_eq!(a.to_string(), "198.18.0.1/24");
        let b: IfAddr = " 2001:db8::1/64 ".parse().unwrap();
        assert_eq!(b.prefix_len, 64);
        assert_eq!(b.to_string(), "2001:db8::1/64");
    }

    #[test]
    fn parse_errors_say_what_is_wrong() {
        assert_eq!("198.18.0.1".parse::<IfAddr>(), Err(AddrError::MissingPrefixLength("198.18.0.1".into())));
        assert_eq!("198.18.0/24".parse::<IfAddr>(), Err(AddrError::BadAddress("198.18.0".into())));
        assert_eq!("198.18.0.1/".parse::<IfAddr>(), Err(AddrError::BadPrefixLength("".into())));
        assert_eq!("198.18.0.1/+4".parse::<IfAddr>(), Err(AddrError::BadPrefixLength("+4".into())));
        assert_eq!("198.18.0.1/300".parse::<IfAddr>(), Err(AddrError::BadPrefixLength("300".into())));
        assert_eq!(
            "198.18.0.1/33".parse::<IfAddr>(),
            Err(AddrError::PrefixTooLong { prefix_len: 33, max: 32 })
        );
        assert_eq!("::1/129".parse::<IfAddr>(), Err(AddrError::PrefixTooLong { prefix_len: 129, max: 128 }));
        assert!(AddrError::MissingPrefixLength("x".into()).to_string().contains("198.18.0.1/24"));
        assert!(IfAddr::new(ip("10.0.0.1"), 33).is_err());
    }

    #[test]
    fn contains_and_masks() {
        let a: IfAddr = "198.18.0.1/24".parse().unwrap();
        assert!(a.contains(ip("198.18.0.255")));
        assert!(!a.contains(ip("198.18.1.0")));
        assert!(!a.contains(ip("::ffff:198.18.0.2")), "no cross-family match");
        assert_eq!(a.network(), ip("198.18.0.0"));
        assert_eq!(a.broadcast(), Some("198.18.0.255".parse().unwrap()));
        assert_eq!(IfAddr::new(ip("10.0.0.0"), 31).unwrap().broadcast(), None);
        let any: IfAddr = "0.0.0.0/0".parse().unwrap();
        assert!(any.contains(ip("255.255.255.255")));
        let host: IfAddr = "10.1.2.3/32".parse().unwrap();
        assert!(host.contains(ip("10.1.2.3")) && !host.contains(ip("10.1.2.2")));
        let v6: IfAddr = "2001:db8:1::1/48".parse().unwrap();
        assert!(v6.contains(ip("2001:db8:1:ffff::9")));
        assert!(!v6.contains(ip("2001:db8:2::1")));
        assert_eq!(mask_v4(0), 0);
        assert_eq!(mask_v4(1), 0x8000_0000);
        assert_eq!(mask_v4(32), u32::MAX);
        assert_eq!(mask_v6(0), 0);
        assert_eq!(mask_v6(128), u128::MAX);
        assert_eq!(mask_v6(64), u128::MAX << 64);
    }

    #[test]
    fn link_local_eui64() {
        // RFC 4291 Appendix A: 00:1b:21:aa:bb:cc -> fe80::21b:21ff:feaa:bbcc
        let ll = IfAddr::link_local_from_mac(Mac([0x00, 0x1b, 0x21, 0xaa, 0xbb, 0xcc]));
        assert_eq!(ll.to_string(), "fe80::21b:21ff:feaa:bbcc/64");
    }

    #[test]
    fn interface_helpers() {
        let i = Interface::new(
            1,
            Mac([2, 0, 0, 0, 0, 1]),
            vec![
                "198.18.0.1/24".parse().unwrap(),
                "2001:db8::1/64".parse().unwrap(),
                "10.9.0.1/16".parse().unwrap(),
            ],
        );
        assert!(i.is_local(ip("198.18.0.1")));
        assert!(!i.is_local(ip("198.18.0.2")));
        assert!(i.on_link(ip("198.18.0.2")));
        assert!(i.on_link(ip("2001:db8::99")));
        assert!(!i.on_link(ip("2001:db9::1")));
        assert!(i.is_directed_broadcast("10.9.255.255".parse().unwrap()));
        assert_eq!(i.ipv4(), Some("198.18.0.1".parse().unwrap()));
        assert_eq!(i.ipv4_for("10.9.3.3".parse().unwrap()), Some("10.9.0.1".parse().unwrap()));
        assert_eq!(i.ipv4_for("8.8.8.8".parse().unwrap()), Some("198.18.0.1".parse().unwrap()));
        assert_eq!(i.ipv6_for("fe80::1".parse().unwrap()), Some("2001:db8::1".parse().unwrap()));
        let ifs = [i.clone()];
        assert_eq!(by_port(&ifs, 1), Some(&i));
        assert_eq!(by_port(&ifs, 0), None);
    }
}
