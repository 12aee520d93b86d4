//! Addresses and traffic selectors as swanctl.conf writes them.
//!
//! `local_addrs`/`remote_addrs`: `%any`, `%any4`, `%any6`, an address, a
//! CIDR subnet or a range `a-b` (subnets and ranges only narrow which peers a
//! responder accepts). `local_ts`/`remote_ts`: `dynamic` (the IKE address),
//! an address, a CIDR subnet or a range, each optionally followed by
//! `[proto/port]` (`10.0.0.0/24[tcp/80]`, `[udp]`, `[17/53]`).

use ike::engine::{TrafficSelector, TsAddress};
use ipnet::IpNet;
use std::fmt;
use std::net::IpAddr;

/// One entry of `local_addrs` / `remote_addrs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AddressSpec {
    /// `%any`: any address of either family.
    Any,
    /// `%any4`.
    AnyV4,
    /// `%any6`.
    AnyV6,
    /// One address.
    Host(IpAddr),
    /// A subnet (network address, no host bits).
    Subnet(IpNet),
    /// An inclusive range.
    Range(IpAddr, IpAddr),
}

impl AddressSpec {
    /// The address when this names exactly one host.
    pub fn host(&self) -> Option<IpAddr> {
        match self {
            Self::Host(a) => Some(*a),
            _ => None,
        }
    }

    /// Whether `addr` is matched.
    pub fn contains(&self, addr: IpAddr) -> bool {
        match self {
            Self::Any => true,
            Self::AnyV4 => addr.is_ipv4(),
            Self::AnyV6 => addr.is_ipv6(),
            Self::Host(a) => *a == addr,
            Self::Subnet(n) => n.contains(&addr),
            Self::Range(a, b) => addr.is_ipv4() == a.is_ipv4() && *a <= addr && addr <= *b,
        }
    }
}

impl fmt::Display for AddressSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Any => f.write_str("%any"),
            Self::AnyV4 => f.write_str("%any4"),
            Self::AnyV6 => f.write_str("%any6"),
            Self::Host(a) => write!(f, "{a}"),
            Self::Subnet(n) => write!(f, "{n}"),
            Self::Range(a, b) => write!(f, "{a}-{b}"),
        }
    }
}

fn parse_subnet(text: &str) -> Result<IpNet, String> {
    let net: IpNet = text.parse().map_err(|_| format!("invalid subnet `{text}`"))?;
    if net.addr() != net.network() {
        return Err(format!("subnet `{text}` has host bits set (did you mean {}?)", net.trunc()));
    }
    Ok(net)
}

fn parse_range(text: &str, a: &str, b: &str) -> Result<(IpAddr, IpAddr), String> {
    let bad = || format!("invalid address range `{text}`");
    let a: IpAddr = a.trim().parse().map_err(|_| bad())?;
    let b: IpAddr = b.trim().parse().map_err(|_| bad())?;
    if a.is_ipv4() != b.is_ipv4() {
        return Err(format!("address range `{text}` mixes IPv4 and IPv6"));
    }
    if a > b {
        return Err(format!("address range `{text}` ends before it starts"));
    }
    Ok((a, b))
}

fn not_an_address(text: &str) -> String {
    if text.contains(|c: char| c.is_ascii_alphabetic()) && !text.contains(':') {
        format!("`{text}` is not an IP address (DNS names are not supported)")
    } else {
        format!("invalid address `{text}`")
    }
}

/// Parses one `local_addrs`/`remote_addrs` entry.
pub fn parse_address(text: &str) -> Result<AddressSpec, String> {
    let t = text.trim();
    Ok(match t {
        "%any" | "0.0.0.0/0,::/0" => AddressSpec::Any,
        "%any4" => AddressSpec::AnyV4,
        "%any6" => AddressSpec::AnyV6,
        _ if t.contains(|c: char| c.is_ascii_alphabetic()) && !t.contains(':') => {
            return Err(not_an_address(t))
        }
        _ if t.contains('/') => AddressSpec::Subnet(parse_subnet(t)?),
        _ => match t.split_once('-') {
            Some((a, b)) => {
                let (a, b) = parse_range(t, a, b)?;
                AddressSpec::Range(a, b)
            }
            None => AddressSpec::Host(t.parse().map_err(|_| not_an_address(t))?),
        },
    })
}

/// The address part of a traffic selector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TsAddressSpec {
    /// `dynamic`: the IKE SA's own address on that side.
    Dynamic,
    /// A fixed address, subnet or range.
    Fixed(TsAddress),
}

/// One `local_ts`/`remote_ts` entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TrafficSelectorSpec {
    /// Addresses.
    pub address: TsAddressSpec,
    /// IP protocol, 0 = any.
    pub protocol: u8,
    /// Port, 0 = any.
    pub port: u16,
}

impl TrafficSelectorSpec {
    /// The engine's selector, with `dynamic` replaced by `ike_address`.
    pub fn resolve(&self, ike_address: IpAddr) -> TrafficSelector {
        let address = match self.address {
            TsAddressSpec::Dynamic => TsAddress::Host(ike_address),
            TsAddressSpec::Fixed(a) => a,
        };
        TrafficSelector { address, protocol: self.protocol, port: self.port }
    }
}

impl fmt::Display for TrafficSelectorSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.address {
            TsAddressSpec::Dynamic => f.write_str("dynamic")?,
            TsAddressSpec::Fixed(a) => write!(f, "{}", DisplayTsAddress(a))?,
        }
        if self.protocol != 0 || self.port != 0 {
            let proto = match self.protocol {
                0 => "%any".to_owned(),
                p => protocol_name(p).map_or_else(|| p.to_string(), str::to_owned),
            };
            if self.port == 0 {
                write!(f, "[{proto}]")?;
            } else {
                write!(f, "[{proto}/{}]", self.port)?;
            }
        }
        Ok(())
    }
}

/// Displays an engine [`TsAddress`] as swanctl writes it.
#[derive(Debug, Clone, Copy)]
pub struct DisplayTsAddress(pub TsAddress);

impl fmt::Display for DisplayTsAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            TsAddress::Host(a) => write!(f, "{a}/{}", if a.is_ipv4() { 32 } else { 128 }),
            TsAddress::Subnet(a, len) => write!(f, "{a}/{len}"),
            TsAddress::Range(a, b) => write!(f, "{a}-{b}"),
        }
    }
}

/// Displays an engine [`TrafficSelector`] as swanctl writes it.
#[derive(Debug, Clone, Copy)]
pub struct DisplayTs(pub TrafficSelector);

impl fmt::Display for DisplayTs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let spec = TrafficSelectorSpec {
            address: TsAddressSpec::Fixed(self.0.address),
            protocol: self.0.protocol,
            port: self.0.port,
        };
        spec.fmt(f)
    }
}

const PROTOCOLS: &[(&str, u8)] = &[
    ("icmp", 1),
    ("tcp", 6),
    ("udp", 17),
    ("gre", 47),
    ("esp", 50),
    ("ipv6-icmp", 58),
    ("icmpv6", 58),
    ("sctp", 132),
];

const SERVICES: &[(&str, u16)] = &[
    ("ssh", 22),
    ("domain", 53),
    ("http", 80),
    ("ntp", 123),
    ("snmp", 161),
    ("https", 443),
    ("isakmp", 500),
    ("ipsec-nat-t", 4500),
];

fn protocol_name(p: u8) -> Option<&'static str> {
    PROTOCOLS.iter().find(|(_, n)| *n == p).map(|(s, _)| *s)
}

fn parse_protocol(text: &str, whole: &str) -> Result<u8, String> {
    let t = text.trim();
    if t.is_empty() || t == "%any" {
        return Ok(0);
    }
    if let Some((_, n)) = PROTOCOLS.iter().find(|(s, _)| s.eq_ignore_ascii_case(t)) {
        return Ok(*n);
    }
    t.parse().map_err(|_| format!("unknown protocol `{t}` in traffic selector `{whole}`"))
}

fn parse_port(text: &str, whole: &str) -> Result<u16, String> {
    let t = text.trim();
    if t.is_empty() || t == "%any" {
        return Ok(0);
    }
    if t == "%opaque" {
        return Err(format!("`%opaque` ports in `{whole}` are not supported"));
    }
    if let Some((a, b)) = t.split_once('-') {
        let (a, b) = (parse_port(a, whole)?, parse_port(b, whole)?);
        if a == b {
            return Ok(a);
        }
        return Err(format!(
            "port range `{t}` in `{whole}` cannot be expressed in IKEv1 ID payloads (one port or any)"
        ));
    }
    if let Some((_, n)) = SERVICES.iter().find(|(s, _)| *s == t) {
        return Ok(*n);
    }
    t.parse().map_err(|_| format!("invalid port `{t}` in traffic selector `{whole}`"))
}

/// Parses one `local_ts`/`remote_ts` entry.
pub fn parse_traffic_selector(text: &str) -> Result<TrafficSelectorSpec, String> {
    let t = text.trim();
    let (addr, proto_port) = match t.split_once('[') {
        Some((a, rest)) => match rest.strip_suffix(']') {
            Some(pp) => (a.trim(), Some(pp)),
            None => return Err(format!("traffic selector `{t}`: missing `]`")),
        },
        None => (t, None),
    };
    let address = if addr == "dynamic" {
        TsAddressSpec::Dynamic
    } else {
        TsAddressSpec::Fixed(match parse_address(addr)? {
            AddressSpec::Host(a) => TsAddress::Host(a),
            AddressSpec::Subnet(n) if n.prefix_len() == n.max_prefix_len() => TsAddress::Host(n.addr()),
            AddressSpec::Subnet(n) => TsAddress::Subnet(n.network(), n.prefix_len()),
            AddressSpec::Range(a, b) => TsAddress::Range(a, b),
            AddressSpec::Any | AddressSpec::AnyV4 | AddressSpec::AnyV6 => {
                return Err(format!("traffic selector `{t}`: write 0.0.0.0/0 or ::/0 instead of `{addr}`"))
            }
        })
    };
    let (protocol, port) = match proto_port {
        None => (0, 0),
        Some(pp) => match pp.split_once('/') {
            Some((p, port)) => (parse_protocol(p, t)?, parse_port(port, t)?),
            None => (parse_protocol(pp, t)?, 0),
        },
    };
    if protocol == 0 && port != 0 {
        return Err(format!("traffic selector `{t}`: a port needs a protocol (e.g. [tcp/{port}])"));
    }
    Ok(TrafficSelectorSpec { address, protocol, port })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    const A: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 0));

    #[test]
    fn selectors_as_strongswan_writes_them() {
        let cases: &[(&str, TrafficSelectorSpec)] = &[
            ("dynamic", TrafficSelectorSpec { address: TsAddressSpec::Dynamic, protocol: 0, port: 0 }),
            (
                "10.0.0.0/24",
                TrafficSelectorSpec {
                    address: TsAddressSpec::Fixed(TsAddress::Subnet(A, 24)),
                    protocol: 0,
                    port: 0,
                },
            ),
            (
                "10.0.0.0/24[tcp/80]",
                TrafficSelectorSpec {
                    address: TsAddressSpec::Fixed(TsAddress::Subnet(A, 24)),
                    protocol: 6,
                    port: 80,
                },
            ),
            (
                "10.0.0.0/24[udp]",
                TrafficSelectorSpec {
                    address: TsAddressSpec::Fixed(TsAddress::Subnet(A, 24)),
                    protocol: 17,
                    port: 0,
                },
            ),
            (
                "10.0.0.0/24[17/domain]",
                TrafficSelectorSpec {
                    address: TsAddressSpec::Fixed(TsAddress::Subnet(A, 24)),
                    protocol: 17,
                    port: 53,
                },
            ),
            (
                "10.0.0.0/32",
                TrafficSelectorSpec {
                    address: TsAddressSpec::Fixed(TsAddress::Host(A)),
                    protocol: 0,
                    port: 0,
                },
            ),
            (
                "10.0.0.0",
                TrafficSelectorSpec {
                    address: TsAddressSpec::Fixed(TsAddress::Host(A)),
                    protocol: 0,
                    port: 0,
                },
            ),
            (
                "10.0.0.0-10.0.0.9[tcp/%any]",
                TrafficSelectorSpec {
                    address: TsAddressSpec::Fixed(TsAddress::Range(
                        A,
                        IpAddr::V4(Ipv4Addr::new(10, 0, 0, 9)),
                    )),
                    protocol: 6,
                    port: 0,
                },
            ),
            (
                "dynamic[tcp/22-22]",
                TrafficSelectorSpec { address: TsAddressSpec::Dynamic, protocol: 6, port: 22 },
            ),
            (
                "2001:db8::/48",
                TrafficSelectorSpec {
                    address: TsAddressSpec::Fixed(TsAddress::Subnet(
                        IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0)),
                        48,
                    )),
                    protocol: 0,
                    port: 0,
                },
            ),
        ];
        for (text, want) in cases {
            assert_eq!(parse_traffic_selector(text).as_ref(), Ok(want), "{text}");
        }
    }

    #[test]
    fn selectors_display_back() {
        for text in [
            "dynamic",
            "10.0.0.0/24[tcp/80]",
            "10.0.0.0/24[udp]",
            "10.0.0.1/32",
            "10.0.0.1-10.0.0.9",
            "0.0.0.0/0",
        ] {
            let ts = parse_traffic_selector(text).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(ts.to_string(), text);
        }
    }

    #[test]
    fn selector_errors() {
        let cases: &[(&str, &str)] = &[
            ("10.0.0.1/24", "subnet `10.0.0.1/24` has host bits set (did you mean 10.0.0.0/24?)"),
            ("10.0.0.0/33", "invalid subnet `10.0.0.0/33`"),
            ("10.0.0.300", "invalid address `10.0.0.300`"),
            ("gw.example.com", "`gw.example.com` is not an IP address (DNS names are not supported)"),
            ("10.0.0.9-10.0.0.1", "address range `10.0.0.9-10.0.0.1` ends before it starts"),
            ("10.0.0.1-::1", "address range `10.0.0.1-::1` mixes IPv4 and IPv6"),
            ("10.0.0.0/24[tcp/80-90]", "port range `80-90` in `10.0.0.0/24[tcp/80-90]` cannot be expressed in IKEv1 ID payloads (one port or any)"),
            ("10.0.0.0/24[tcp/80", "traffic selector `10.0.0.0/24[tcp/80`: missing `]`"),
            ("10.0.0.0/24[foo]", "unknown protocol `foo` in traffic selector `10.0.0.0/24[foo]`"),
            ("10.0.0.0/24[%any/80]", "traffic selector `10.0.0.0/24[%any/80]`: a port needs a protocol (e.g. [tcp/80])"),
            ("%any", "traffic selector `%any`: write 0.0.0.0/0 or ::/0 instead of `%any`"),
        ];
        for (text, msg) in cases {
            assert_eq!(parse_traffic_selector(text).err().as_deref(), Some(*msg), "{text}");
        }
    }

    #[test]
    fn addresses_and_matching() {
        assert_eq!(parse_address("%any"), Ok(AddressSpec::Any));
        let net = parse_address("192.0.2.0/24").unwrap_or_else(|e| panic!("{e}"));
        assert!(net.contains("192.0.2.77".parse().unwrap_or(A)));
        assert!(!net.contains(A));
        let range = parse_address("10.0.0.1-10.0.0.5").unwrap_or_else(|e| panic!("{e}"));
        assert!(range.contains("10.0.0.3".parse().unwrap_or(A)));
        assert!(!range.contains("::1".parse().unwrap_or(A)));
        assert!(AddressSpec::AnyV6.contains("::1".parse().unwrap_or(A)));
        assert!(!AddressSpec::AnyV6.contains(A));
        assert_eq!(parse_address("192.0.2.1").map(|a| a.host()), Ok(Some("192.0.2.1".parse().unwrap_or(A))));
    }
}
