//! IPv6 header view (RFC 8200) and extension-header walking.
//!
//! Extension headers are skipped with their own length rules: hop-by-hop, routing and
//! destination options are `(Hdr Ext Len + 1) * 8` bytes (RFC 8200 §4.3-4.6), the fragment
//! header is 8 bytes (§4.5), AH is `(Payload Len + 2) * 4` bytes (RFC 4302 §2.2).

use super::{get_u16, get_u32, get_u8, ip_proto, set_u16, set_u32, set_u8, Error, Result};
use core::net::Ipv6Addr;

mod field {
    pub const VER_TC_FLOW: usize = 0;
    pub const PAYLOAD_LEN: usize = 4;
    pub const NEXT_HEADER: usize = 6;
    pub const HOP_LIMIT: usize = 7;
    pub const SRC: usize = 8;
    pub const DST: usize = 24;
}

/// Fixed header length.
pub const HEADER_LEN: usize = 40;
/// Offset of the fixed header's Next Header byte.
pub const NEXT_HEADER_OFFSET: usize = field::NEXT_HEADER;
/// At most this many extension headers are walked: a longer chain is treated as malformed.
pub const MAX_EXT_HEADERS: usize = 8;

/// A view of an IPv6 packet.
#[derive(Debug, Clone)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wrap without checking.
    pub const fn new_unchecked(buffer: T) -> Self {
        Packet { buffer }
    }
    /// Wrap and run [`Packet::check_len`].
    pub fn new_checked(buffer: T) -> Result<Self> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }
    /// Check version 6 and `40 + payload length <= buffer length` (jumbograms are refused).
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(Error::Truncated);
        }
        if self.version() != 6 {
            return Err(Error::Malformed);
        }
        if len < self.total_len() {
            return Err(Error::Truncated);
        }
        Ok(())
    }
    /// Consume the view.
    pub fn into_inner(self) -> T {
        self.buffer
    }
    /// Version nibble.
    pub fn version(&self) -> u8 {
        get_u8(self.buffer.as_ref(), 0) >> 4
    }
    /// Traffic class byte.
    pub fn traffic_class(&self) -> u8 {
        let w = get_u32(self.buffer.as_ref(), field::VER_TC_FLOW);
        // Bits 20..28 of the first word.
        u8::try_from((w >> 20) & 0xff).unwrap_or(0)
    }
    /// DSCP.
    pub fn dscp(&self) -> u8 {
        self.traffic_class() >> 2
    }
    /// ECN.
    pub fn ecn(&self) -> u8 {
        self.traffic_class() & 3
    }
    /// Flow label.
    pub fn flow_label(&self) -> u32 {
        get_u32(self.buffer.as_ref(), field::VER_TC_FLOW) & 0x000f_ffff
    }
    /// Payload length field.
    pub fn payload_len(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::PAYLOAD_LEN)
    }
    /// Fixed header plus payload length.
    pub fn total_len(&self) -> usize {
        HEADER_LEN + usize::from(self.payload_len())
    }
    /// Next header of the fixed header.
    pub fn next_header(&self) -> u8 {
        get_u8(self.buffer.as_ref(), field::NEXT_HEADER)
    }
    /// Hop limit.
    pub fn hop_limit(&self) -> u8 {
        get_u8(self.buffer.as_ref(), field::HOP_LIMIT)
    }
    /// Source address.
    pub fn src_addr(&self) -> Ipv6Addr {
        addr(self.buffer.as_ref(), field::SRC)
    }
    /// Destination address.
    pub fn dst_addr(&self) -> Ipv6Addr {
        addr(self.buffer.as_ref(), field::DST)
    }
    /// Everything after the fixed header, up to the payload length.
    pub fn payload(&self) -> &[u8] {
        self.buffer.as_ref().get(HEADER_LEN..self.total_len()).unwrap_or(&[])
    }
}

fn addr(b: &[u8], off: usize) -> Ipv6Addr {
    let mut a = [0u8; 16];
    if let Some(s) = b.get(off..off + 16) {
        a.copy_from_slice(s);
    }
    Ipv6Addr::from(a)
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Set version, traffic class and flow label.
    pub fn set_version_tc_flow(&mut self, dscp: u8, ecn: u8, flow: u32) {
        let tc = u32::from((dscp << 2) | (ecn & 3));
        let w = (6u32 << 28) | (tc << 20) | (flow & 0x000f_ffff);
        set_u32(self.buffer.as_mut(), field::VER_TC_FLOW, w);
    }
    /// Set ECN, keeping the rest of the first word.
    pub fn set_ecn(&mut self, ecn: u8) {
        let w = get_u32(self.buffer.as_ref(), field::VER_TC_FLOW);
        let w = (w & !(3 << 20)) | (u32::from(ecn & 3) << 20);
        set_u32(self.buffer.as_mut(), field::VER_TC_FLOW, w);
    }
    /// Set payload length.
    pub fn set_payload_len(&mut self, v: u16) {
        set_u16(self.buffer.as_mut(), field::PAYLOAD_LEN, v);
    }
    /// Set next header.
    pub fn set_next_header(&mut self, v: u8) {
        set_u8(self.buffer.as_mut(), field::NEXT_HEADER, v);
    }
    /// Set hop limit.
    pub fn set_hop_limit(&mut self, v: u8) {
        set_u8(self.buffer.as_mut(), field::HOP_LIMIT, v);
    }
    /// Set source address.
    pub fn set_src_addr(&mut self, a: Ipv6Addr) {
        if let Some(d) = self.buffer.as_mut().get_mut(field::SRC..field::SRC + 16) {
            d.copy_from_slice(&a.octets());
        }
    }
    /// Set destination address.
    pub fn set_dst_addr(&mut self, a: Ipv6Addr) {
        if let Some(d) = self.buffer.as_mut().get_mut(field::DST..field::DST + 16) {
            d.copy_from_slice(&a.octets());
        }
    }
}

/// High-level representation of a fixed IPv6 header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr {
    /// Source.
    pub src: Ipv6Addr,
    /// Destination.
    pub dst: Ipv6Addr,
    /// Next header.
    pub next_header: u8,
    /// Payload length.
    pub payload_len: usize,
    /// Hop limit.
    pub hop_limit: u8,
    /// DSCP.
    pub dscp: u8,
    /// ECN.
    pub ecn: u8,
    /// Flow label.
    pub flow_label: u32,
}

impl Repr {
    /// Parse the fixed header.
    pub fn parse<T: AsRef<[u8]>>(p: &Packet<T>) -> Result<Repr> {
        p.check_len()?;
        Ok(Repr {
            src: p.src_addr(),
            dst: p.dst_addr(),
            next_header: p.next_header(),
            payload_len: usize::from(p.payload_len()),
            hop_limit: p.hop_limit(),
            dscp: p.dscp(),
            ecn: p.ecn(),
            flow_label: p.flow_label(),
        })
    }
    /// Header length.
    pub const fn header_len(&self) -> usize {
        HEADER_LEN
    }
    /// Emit the fixed header. Fails if the payload length exceeds 65535.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut Packet<T>) -> Result<()> {
        let pl = u16::try_from(self.payload_len).map_err(|_| Error::Malformed)?;
        p.set_version_tc_flow(self.dscp, self.ecn, self.flow_label);
        p.set_payload_len(pl);
        p.set_next_header(self.next_header);
        p.set_hop_limit(self.hop_limit);
        p.set_src_addr(self.src);
        p.set_dst_addr(self.dst);
        Ok(())
    }
}

/// Where an extension-header walk stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeaderChain {
    /// The protocol of the first non-skipped header.
    pub next_header: u8,
    /// Offset (from the start of the IPv6 packet) of that header.
    pub offset: usize,
    /// Offset of the Next Header byte that names it (6 for the fixed header).
    pub next_header_field: usize,
}

/// Length of the extension header of type `nh` starting at `off`, or `None` if `nh` is not a
/// skippable extension header. Truncation is an error.
fn ext_len(packet: &[u8], nh: u8, off: usize) -> Result<Option<usize>> {
    let len = match nh {
        ip_proto::HOP_BY_HOP | ip_proto::IPV6_ROUTING | ip_proto::IPV6_DEST_OPTS => {
            let hel = packet.get(off + 1).ok_or(Error::Truncated)?;
            (usize::from(*hel) + 1) * 8
        }
        ip_proto::IPV6_FRAGMENT => 8,
        ip_proto::AH => {
            let pl = packet.get(off + 1).ok_or(Error::Truncated)?;
            (usize::from(*pl) + 2) * 4
        }
        _ => return Ok(None),
    };
    if off + len > packet.len() {
        return Err(Error::Truncated);
    }
    Ok(Some(len))
}

/// Skip extension headers (hop-by-hop, routing, fragment, destination options, AH) of a
/// checked IPv6 packet `packet` (limited to its payload length) and report the first other
/// header. ESP (50) is never skipped: it ends the walk.
pub fn skip_extension_headers(packet: &[u8]) -> Result<HeaderChain> {
    let p = Packet::new_checked(packet)?;
    let packet = packet.get(..p.total_len()).ok_or(Error::Truncated)?;
    let mut nh = p.next_header();
    let mut nh_field = field::NEXT_HEADER;
    let mut off = HEADER_LEN;
    for i in 0..=MAX_EXT_HEADERS {
        if nh == ip_proto::HOP_BY_HOP && i != 0 {
            // RFC 8200 §4.1: hop-by-hop only immediately after the fixed header.
            return Err(Error::Malformed);
        }
        match ext_len(packet, nh, off)? {
            None => return Ok(HeaderChain { next_header: nh, offset: off, next_header_field: nh_field }),
            Some(len) => {
                nh_field = off;
                nh = get_u8(packet, off);
                off += len;
            }
        }
    }
    Err(Error::Malformed)
}

/// Where ESP goes in transport mode (RFC 4303 §3.1.1): after hop-by-hop, routing and fragment
/// headers, and after destination options that precede a routing header; before other
/// destination options and the upper-layer header.
pub fn esp_insertion_point(packet: &[u8]) -> Result<HeaderChain> {
    let p = Packet::new_checked(packet)?;
    let packet = packet.get(..p.total_len()).ok_or(Error::Truncated)?;
    let mut nh = p.next_header();
    let mut nh_field = field::NEXT_HEADER;
    let mut off = HEADER_LEN;
    for _ in 0..=MAX_EXT_HEADERS {
        let skip = match nh {
            ip_proto::HOP_BY_HOP | ip_proto::IPV6_ROUTING | ip_proto::IPV6_FRAGMENT => true,
            ip_proto::IPV6_DEST_OPTS => get_u8(packet, off) == ip_proto::IPV6_ROUTING,
            _ => false,
        };
        if !skip {
            return Ok(HeaderChain { next_header: nh, offset: off, next_header_field: nh_field });
        }
        let len = ext_len(packet, nh, off)?.ok_or(Error::Malformed)?;
        nh_field = off;
        nh = get_u8(packet, off);
        off += len;
    }
    Err(Error::Malformed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base(next: u8, payload: &[u8]) -> Vec<u8> {
        let mut b = vec![0u8; 40 + payload.len()];
        let r = Repr {
            src: "2001:db8::1".parse().unwrap(),
            dst: "2001:db8::2".parse().unwrap(),
            next_header: next,
            payload_len: payload.len(),
            hop_limit: 64,
            dscp: 10,
            ecn: 2,
            flow_label: 0xabcde,
        };
        r.emit(&mut Packet::new_unchecked(&mut b[..])).unwrap();
        b[40..].copy_from_slice(payload);
        b
    }

    #[test]
    fn round_trip() {
        let b = base(17, &[0; 8]);
        let p = Packet::new_checked(&b[..]).unwrap();
        let r = Repr::parse(&p).unwrap();
        assert_eq!(r.flow_label, 0xabcde);
        assert_eq!((r.dscp, r.ecn, r.hop_limit), (10, 2, 64));
        assert_eq!(p.payload().len(), 8);
    }

    #[test]
    fn skips_every_extension_header_kind() {
        let mut pl = Vec::new();
        // hop-by-hop, 16 bytes (hdr ext len 1), next = routing
        pl.extend_from_slice(&[43, 1, 0, 0, 0, 0, 0, 0]);
        pl.extend_from_slice(&[0; 8]);
        // routing, 8 bytes, next = fragment
        pl.extend_from_slice(&[44, 0, 0, 0, 0, 0, 0, 0]);
        // fragment, 8 bytes, next = dest opts
        pl.extend_from_slice(&[60, 0, 0, 0, 0, 0, 0, 1]);
        // dest opts, 8 bytes, next = AH
        pl.extend_from_slice(&[51, 0, 1, 4, 0, 0, 0, 0]);
        // AH payload len 4 -> (4+2)*4 = 24 bytes, next = ESP
        let mut ah = vec![50, 4];
        ah.resize(24, 0);
        pl.extend_from_slice(&ah);
        pl.extend_from_slice(&[0xaa; 8]);
        let b = base(0, &pl);
        let c = skip_extension_headers(&b).unwrap();
        assert_eq!(c.next_header, 50);
        assert_eq!(c.offset, 40 + 16 + 8 + 8 + 8 + 24);
        assert_eq!(c.next_header_field, 40 + 16 + 8 + 8 + 8);
        // ESP insertion: after HBH, routing, fragment; before dest opts not followed by routing.
        let i = esp_insertion_point(&b).unwrap();
        assert_eq!(i.next_header, 60);
        assert_eq!(i.offset, 40 + 16 + 8 + 8);
        assert_eq!(i.next_header_field, 40 + 16 + 8);
    }

    #[test]
    fn hostile_chains() {
        // hdr ext len beyond the packet
        let b = base(0, &[17, 5, 0, 0, 0, 0, 0, 0]);
        assert_eq!(skip_extension_headers(&b).unwrap_err(), Error::Truncated);
        // missing length byte
        let b = base(60, &[]);
        assert_eq!(skip_extension_headers(&b).unwrap_err(), Error::Truncated);
        // hop-by-hop not first
        let b = base(60, &[0, 0, 0, 0, 0, 0, 0, 0, 17, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(skip_extension_headers(&b).unwrap_err(), Error::Malformed);
        // endless chain of dest opts
        let mut pl = Vec::new();
        for _ in 0..20 {
            pl.extend_from_slice(&[60, 0, 0, 0, 0, 0, 0, 0]);
        }
        let b = base(60, &pl);
        assert_eq!(skip_extension_headers(&b).unwrap_err(), Error::Malformed);
        // payload length beyond the buffer
        let mut b = base(17, &[0; 8]);
        b[5] = 9;
        assert_eq!(Packet::new_checked(&b[..]).unwrap_err(), Error::Truncated);
        b[0] = 0x40;
        assert_eq!(Packet::new_checked(&b[..]).unwrap_err(), Error::Malformed);
    }
}
