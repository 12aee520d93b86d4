//! IPv4 header view (RFC 791), options included in the header length.

use super::{checksum, get_u16, get_u8, set_u16, set_u8, Error, Result};
use core::net::Ipv4Addr;

mod field {
    pub const VER_IHL: usize = 0;
    pub const TOS: usize = 1;
    pub const LENGTH: usize = 2;
    pub const IDENT: usize = 4;
    pub const FLAGS_FRAG: usize = 6;
    pub const TTL: usize = 8;
    pub const PROTOCOL: usize = 9;
    pub const CHECKSUM: usize = 10;
    pub const SRC: usize = 12;
    pub const DST: usize = 16;
}

/// Minimum (option-less) header length.
pub const HEADER_LEN: usize = 20;
/// The DF flag in the flags/fragment-offset word.
const DF: u16 = 0x4000;
/// The MF flag.
const MF: u16 = 0x2000;

/// A view of an IPv4 packet.
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
    /// Check version 4, `20 <= IHL*4 <= total length <= buffer length`.
    /// The buffer may be longer than the total length (Ethernet padding).
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(Error::Truncated);
        }
        if self.version() != 4 {
            return Err(Error::Malformed);
        }
        let hl = self.header_len();
        if hl < HEADER_LEN {
            return Err(Error::Malformed);
        }
        let tl = usize::from(self.total_len());
        if tl < hl {
            return Err(Error::Malformed);
        }
        if len < tl {
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
        get_u8(self.buffer.as_ref(), field::VER_IHL) >> 4
    }
    /// Header length in bytes, options included.
    pub fn header_len(&self) -> usize {
        usize::from(get_u8(self.buffer.as_ref(), field::VER_IHL) & 0x0f) * 4
    }
    /// DSCP (upper six bits of the former TOS byte).
    pub fn dscp(&self) -> u8 {
        get_u8(self.buffer.as_ref(), field::TOS) >> 2
    }
    /// ECN (lower two bits).
    pub fn ecn(&self) -> u8 {
        get_u8(self.buffer.as_ref(), field::TOS) & 0x03
    }
    /// Total length field.
    pub fn total_len(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::LENGTH)
    }
    /// Identification.
    pub fn ident(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::IDENT)
    }
    /// Don't-fragment flag.
    pub fn dont_frag(&self) -> bool {
        get_u16(self.buffer.as_ref(), field::FLAGS_FRAG) & DF != 0
    }
    /// True if this is a fragment (MF set or non-zero offset).
    pub fn is_fragment(&self) -> bool {
        get_u16(self.buffer.as_ref(), field::FLAGS_FRAG) & (MF | 0x1fff) != 0
    }
    /// Time to live.
    pub fn ttl(&self) -> u8 {
        get_u8(self.buffer.as_ref(), field::TTL)
    }
    /// Protocol of the payload.
    pub fn protocol(&self) -> u8 {
        get_u8(self.buffer.as_ref(), field::PROTOCOL)
    }
    /// Header checksum field.
    pub fn checksum(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::CHECKSUM)
    }
    /// Source address.
    pub fn src_addr(&self) -> Ipv4Addr {
        addr(self.buffer.as_ref(), field::SRC)
    }
    /// Destination address.
    pub fn dst_addr(&self) -> Ipv4Addr {
        addr(self.buffer.as_ref(), field::DST)
    }
    /// True if the header checksum verifies (options included).
    pub fn verify_checksum(&self) -> bool {
        let b = self.buffer.as_ref();
        match b.get(..self.header_len()) {
            Some(h) => checksum::checksum(h) == 0,
            None => false,
        }
    }
    /// Header bytes, options included.
    pub fn header(&self) -> &[u8] {
        self.buffer.as_ref().get(..self.header_len()).unwrap_or(&[])
    }
    /// Payload: from the end of the header to the total length.
    pub fn payload(&self) -> &[u8] {
        let tl = usize::from(self.total_len());
        self.buffer.as_ref().get(self.header_len()..tl).unwrap_or(&[])
    }
}

fn addr(b: &[u8], off: usize) -> Ipv4Addr {
    match b.get(off..off + 4) {
        Some(&[a, b2, c, d]) => Ipv4Addr::new(a, b2, c, d),
        _ => Ipv4Addr::UNSPECIFIED,
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Set version 4 and the header length in bytes (a multiple of 4).
    pub fn set_version_and_header_len(&mut self, header_len: usize) {
        // header_len / 4 <= 15 for every header we emit; the mask keeps the nibble in range.
        let ihl = u8::try_from((header_len / 4) & 0x0f).unwrap_or(5);
        set_u8(self.buffer.as_mut(), field::VER_IHL, 0x40 | ihl);
    }
    /// Set the TOS byte from DSCP and ECN.
    pub fn set_dscp_ecn(&mut self, dscp: u8, ecn: u8) {
        set_u8(self.buffer.as_mut(), field::TOS, (dscp << 2) | (ecn & 3));
    }
    /// Set the total length.
    pub fn set_total_len(&mut self, v: u16) {
        set_u16(self.buffer.as_mut(), field::LENGTH, v);
    }
    /// Set identification.
    pub fn set_ident(&mut self, v: u16) {
        set_u16(self.buffer.as_mut(), field::IDENT, v);
    }
    /// Set flags (DF only) and clear the fragment offset.
    pub fn set_dont_frag_clear_offset(&mut self, df: bool) {
        set_u16(self.buffer.as_mut(), field::FLAGS_FRAG, if df { DF } else { 0 });
    }
    /// Set TTL.
    pub fn set_ttl(&mut self, v: u8) {
        set_u8(self.buffer.as_mut(), field::TTL, v);
    }
    /// Set protocol.
    pub fn set_protocol(&mut self, v: u8) {
        set_u8(self.buffer.as_mut(), field::PROTOCOL, v);
    }
    /// Set source address.
    pub fn set_src_addr(&mut self, a: Ipv4Addr) {
        if let Some(d) = self.buffer.as_mut().get_mut(field::SRC..field::SRC + 4) {
            d.copy_from_slice(&a.octets());
        }
    }
    /// Set destination address.
    pub fn set_dst_addr(&mut self, a: Ipv4Addr) {
        if let Some(d) = self.buffer.as_mut().get_mut(field::DST..field::DST + 4) {
            d.copy_from_slice(&a.octets());
        }
    }
    /// Recompute the header checksum.
    pub fn fill_checksum(&mut self) {
        set_u16(self.buffer.as_mut(), field::CHECKSUM, 0);
        let hl = self.header_len();
        let c = self.buffer.as_ref().get(..hl).map(checksum::checksum).unwrap_or(0);
        set_u16(self.buffer.as_mut(), field::CHECKSUM, c);
    }
}

/// High-level representation of an option-less IPv4 header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr {
    /// Source address.
    pub src: Ipv4Addr,
    /// Destination address.
    pub dst: Ipv4Addr,
    /// Protocol.
    pub protocol: u8,
    /// Payload length (total length minus header length).
    pub payload_len: usize,
    /// TTL.
    pub ttl: u8,
    /// DSCP.
    pub dscp: u8,
    /// ECN.
    pub ecn: u8,
    /// Identification.
    pub ident: u16,
    /// DF flag.
    pub dont_frag: bool,
}

impl Repr {
    /// Parse a packet, verifying length and checksum. Options are skipped.
    pub fn parse<T: AsRef<[u8]>>(p: &Packet<T>) -> Result<Repr> {
        p.check_len()?;
        if !p.verify_checksum() {
            return Err(Error::Checksum);
        }
        Ok(Repr {
            src: p.src_addr(),
            dst: p.dst_addr(),
            protocol: p.protocol(),
            payload_len: usize::from(p.total_len()) - p.header_len(),
            ttl: p.ttl(),
            dscp: p.dscp(),
            ecn: p.ecn(),
            ident: p.ident(),
            dont_frag: p.dont_frag(),
        })
    }
    /// Length of the emitted header.
    pub const fn header_len(&self) -> usize {
        HEADER_LEN
    }
    /// Emit a 20-byte header with a valid checksum. Fails if the total length exceeds 65535.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut Packet<T>) -> Result<()> {
        let total = u16::try_from(HEADER_LEN + self.payload_len).map_err(|_| Error::Malformed)?;
        p.set_version_and_header_len(HEADER_LEN);
        p.set_dscp_ecn(self.dscp, self.ecn);
        p.set_total_len(total);
        p.set_ident(self.ident);
        p.set_dont_frag_clear_offset(self.dont_frag);
        p.set_ttl(self.ttl);
        p.set_protocol(self.protocol);
        p.set_src_addr(self.src);
        p.set_dst_addr(self.dst);
        p.fill_checksum();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repr() -> Repr {
        Repr {
            src: Ipv4Addr::new(192, 0, 2, 1),
            dst: Ipv4Addr::new(198, 51, 100, 7),
            protocol: 17,
            payload_len: 8,
            ttl: 64,
            dscp: 46,
            ecn: 1,
            ident: 0x1234,
            dont_frag: true,
        }
    }

    #[test]
    fn emit_parse_round_trip() {
        let mut b = [0u8; 28];
        repr().emit(&mut Packet::new_unchecked(&mut b[..])).unwrap();
        let p = Packet::new_checked(&b[..]).unwrap();
        assert!(p.verify_checksum());
        assert_eq!(Repr::parse(&p).unwrap(), repr());
        assert_eq!(p.payload().len(), 8);
    }

    #[test]
    fn options_counted_in_header_len() {
        // IHL 6: one option word (NOP NOP NOP EOL).
        let mut b = [0u8; 32];
        b[0] = 0x46;
        b[3] = 32;
        b[20..24].copy_from_slice(&[1, 1, 1, 0]);
        let mut p = Packet::new_unchecked(&mut b[..]);
        p.fill_checksum();
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.header_len(), 24);
        assert_eq!(p.payload().len(), 8);
        assert!(p.verify_checksum());
    }

    #[test]
    fn hostile_lengths() {
        let mut b = [0u8; 28];
        repr().emit(&mut Packet::new_unchecked(&mut b[..])).unwrap();
        // truncated buffer
        assert_eq!(Packet::new_checked(&b[..27]).unwrap_err(), Error::Truncated);
        assert_eq!(Packet::new_checked(&b[..10]).unwrap_err(), Error::Truncated);
        // IHL < 5
        let mut c = b;
        c[0] = 0x44;
        assert_eq!(Packet::new_checked(&c[..]).unwrap_err(), Error::Malformed);
        // IHL beyond total length
        let mut c = b;
        c[0] = 0x4f;
        assert_eq!(Packet::new_checked(&c[..]).unwrap_err(), Error::Malformed);
        // version 6
        let mut c = b;
        c[0] = 0x65;
        assert_eq!(Packet::new_checked(&c[..]).unwrap_err(), Error::Malformed);
        // bad checksum
        let mut c = b;
        c[8] ^= 1;
        let p = Packet::new_checked(&c[..]).unwrap();
        assert_eq!(Repr::parse(&p).unwrap_err(), Error::Checksum);
    }

    #[test]
    fn unchecked_accessors_do_not_panic() {
        let p = Packet::new_unchecked(&[0x4fu8][..]);
        assert_eq!(p.payload(), &[] as &[u8]);
        assert!(!p.verify_checksum());
        assert_eq!(p.dst_addr(), Ipv4Addr::UNSPECIFIED);
    }
}
