//! Ethernet II framing (IEEE 802.3 clause 3.2.6 "Length/Type" as an EtherType): the 14-byte
//! header every frame in this module set starts with, and [`Mac`].
//!
//! Untagged only: an 802.1Q/802.1ad tag is recognised by its EtherType so the classifier can set
//! such frames aside, but nothing here looks inside a tag.

use std::fmt;
use std::net::Ipv6Addr;
use std::str::FromStr;

/// Length of the Ethernet II header: destination, source, EtherType.
pub const HEADER_LEN: usize = 14;

/// Smallest Ethernet frame without the FCS (IEEE 802.3 minimum of 64 bytes less 4 of FCS):
/// shorter frames we build are padded with zeros up to this size.
pub const MIN_FRAME_LEN: usize = 60;

/// EtherType of IPv4 (RFC 894).
pub const ETHERTYPE_IPV4: u16 = 0x0800;
/// EtherType of ARP (RFC 826).
pub const ETHERTYPE_ARP: u16 = 0x0806;
/// EtherType of IPv6 (RFC 2464).
pub const ETHERTYPE_IPV6: u16 = 0x86dd;
/// EtherType of an IEEE 802.1Q VLAN tag.
pub const ETHERTYPE_VLAN: u16 = 0x8100;
/// EtherType of an IEEE 802.1ad service tag (QinQ).
pub const ETHERTYPE_QINQ: u16 = 0x88a8;

mod field {
    use std::ops::Range;
    pub const DST: Range<usize> = 0..6;
    pub const SRC: Range<usize> = 6..12;
    pub const ETHERTYPE: Range<usize> = 12..14;
}

/// A 48-bit IEEE 802 MAC address.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub struct Mac(pub [u8; 6]);

impl Mac {
    /// `ff:ff:ff:ff:ff:ff`.
    pub const BROADCAST: Mac = Mac([0xff; 6]);
    /// `00:00:00:00:00:00`, the "unknown" target hardware address of an ARP request.
    pub const ZERO: Mac = Mac([0; 6]);

    /// The group bit (I/G, the least significant bit of the first octet) is set: broadcast or
    /// multicast.
    pub fn is_multicast(&self) -> bool {
        self.0[0] & 1 == 1
    }

    /// `ff:ff:ff:ff:ff:ff`.
    pub fn is_broadcast(&self) -> bool {
        *self == Self::BROADCAST
    }

    /// A unicast address other than all zeros: something a neighbour may really have.
    pub fn is_unicast(&self) -> bool {
        !self.is_multicast() && *self != Self::ZERO
    }

    /// The Ethernet multicast address of an IPv6 multicast group: `33:33` followed by the
    /// group's last 32 bits (RFC 2464 §7).
    pub fn ipv6_multicast(group: Ipv6Addr) -> Mac {
        let o = group.octets();
        let [.., a, b, c, d] = o;
        Mac([0x33, 0x33, a, b, c, d])
    }

    /// The address as the low 48 bits of a `u64` (first octet most significant).
    pub fn to_u64(self) -> u64 {
        let [a, b, c, d, e, f] = self.0;
        u64::from_be_bytes([0, 0, a, b, c, d, e, f])
    }

    /// The inverse of [`Mac::to_u64`]; the top 16 bits are ignored.
    pub fn from_u64(v: u64) -> Mac {
        let [_, _, a, b, c, d, e, f] = v.to_be_bytes();
        Mac([a, b, c, d, e, f])
    }

    /// Reads six bytes; `None` if the slice is shorter.
    pub fn from_slice(b: &[u8]) -> Option<Mac> {
        let six: [u8; 6] = b.get(..6)?.try_into().ok()?;
        Some(Mac(six))
    }
}

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

impl fmt::Debug for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// A MAC address that is not six hex octets separated by `:` or `-`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MacParseError(pub String);

impl fmt::Display for MacParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid MAC address {:?}: expected six hex octets such as 02:00:00:00:00:01", self.0)
    }
}

impl std::error::Error for MacParseError {}

impl FromStr for Mac {
    type Err = MacParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || MacParseError(s.to_string());
        let mut out = [0u8; 6];
        let mut parts = s.split([':', '-']);
        for o in out.iter_mut() {
            let p = parts.next().ok_or_else(err)?;
            if p.is_empty() || p.len() > 2 {
                return Err(err());
            }
            *o = u8::from_str_radix(p, 16).map_err(|_| err())?;
        }
        if parts.next().is_some() {
            return Err(err());
        }
        Ok(Mac(out))
    }
}

/// Destination MAC of a frame; `None` if shorter than an Ethernet header.
pub fn dst(frame: &[u8]) -> Option<Mac> {
    header_ok(frame)?;
    Mac::from_slice(frame.get(field::DST)?)
}

/// Source MAC of a frame; `None` if shorter than an Ethernet header.
pub fn src(frame: &[u8]) -> Option<Mac> {
    header_ok(frame)?;
    Mac::from_slice(frame.get(field::SRC)?)
}

/// EtherType of a frame; `None` if shorter than an Ethernet header.
pub fn ethertype(frame: &[u8]) -> Option<u16> {
    header_ok(frame)?;
    read_u16(frame, field::ETHERTYPE.start)
}

fn header_ok(frame: &[u8]) -> Option<()> {
    (frame.len() >= HEADER_LEN).then_some(())
}

/// Writes an Ethernet header at the start of `frame`; `false` (nothing written) if the slice
/// is shorter than [`HEADER_LEN`].
pub fn write_header(frame: &mut [u8], dst: Mac, src: Mac, ethertype: u16) -> bool {
    let Some(h) = frame.get_mut(..HEADER_LEN) else { return false };
    let (d, rest) = h.split_at_mut(6);
    let (s, t) = rest.split_at_mut(6);
    d.copy_from_slice(&dst.0);
    s.copy_from_slice(&src.0);
    t.copy_from_slice(&ethertype.to_be_bytes());
    true
}

/// Big-endian `u16` at `at`; `None` past the end.
pub(crate) fn read_u16(b: &[u8], at: usize) -> Option<u16> {
    let two: [u8; 2] = b.get(at..at.checked_add(2)?)?.try_into().ok()?;
    Some(u16::from_be_bytes(two))
}

/// Big-endian `u32` at `at`; `None` past the end.
pub(crate) fn read_u32(b: &[u8], at: usize) -> Option<u32> {
    let four: [u8; 4] = b.get(at..at.checked_add(4)?)?.try_into().ok()?;
    Some(u32::from_be_bytes(four))
}

/// Sixteen bytes at `at`; `None` past the end.
pub(crate) fn read_16_bytes(b: &[u8], at: usize) -> Option<[u8; 16]> {
    b.get(at..at.checked_add(16)?)?.try_into().ok()
}

/// Writes a big-endian `u16` at `at`; `None` (nothing written) past the end.
pub(crate) fn write_u16(b: &mut [u8], at: usize, v: u16) -> Option<()> {
    b.get_mut(at..at.checked_add(2)?)?.copy_from_slice(&v.to_be_bytes());
    Some(())
}

/// Copies `v` to `at`; `None` (nothing written) past the end.
pub(crate) fn write_bytes(b: &mut [u8], at: usize, v: &[u8]) -> Option<()> {
    b.get_mut(at..at.checked_add(v.len())?)?.copy_from_slice(v);
    Some(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn mac_parse_display_round_trip() {
        let m: Mac = "02:00:5e:10:00:0A".parse().unwrap();
        assert_eq!(m, Mac([2, 0, 0x5e, 0x10, 0, 0x0a]));
        assert_eq!(m.to_string(), "02:00:5e:10:00:0a");
        assert_eq!("02-00-5e-10-00-0a".parse::<Mac>().unwrap(), m);
        for bad in ["", "02:00:5e:10:00", "02:00:5e:10:00:0a:01", "02:00:5e:10:00:xg", "002:0:5e:10:0:a"] {
            assert!(bad.parse::<Mac>().is_err(), "{bad}");
        }
        assert_eq!(Mac::from_u64(m.to_u64()), m);
        assert_eq!(m.to_u64(), 0x0200_5e10_000a);
    }

    #[test]
    fn mac_kinds() {
        assert!(Mac::BROADCAST.is_multicast() && Mac::BROADCAST.is_broadcast());
        assert!(!Mac::ZERO.is_unicast());
        assert!(Mac([0x02, 0, 0, 0, 0, 1]).is_unicast());
        assert!(Mac([0x01, 0, 0x5e, 0, 0, 1]).is_multicast());
        let g: Ipv6Addr = "ff02::1:ff12:3456".parse().unwrap();
        assert_eq!(Mac::ipv6_multicast(g), Mac([0x33, 0x33, 0xff, 0x12, 0x34, 0x56]));
    }

    #[test]
    fn header_accessors() {
        let mut f = [0u8; 20];
        assert!(write_header(&mut f, Mac::BROADCAST, Mac([2, 0, 0, 0, 0, 1]), ETHERTYPE_ARP));
        assert_eq!(dst(&f), Some(Mac::BROADCAST));
        assert_eq!(src(&f), Some(Mac([2, 0, 0, 0, 0, 1])));
        assert_eq!(ethertype(&f), Some(0x0806));
        assert_eq!(ethertype(&f[..13]), None);
        assert!(!write_header(&mut f[..13], Mac::ZERO, Mac::ZERO, 0));
        assert_eq!(read_u16(&f, usize::MAX), None);
        assert_eq!(read_u32(&f, 18), None);
    }
}
