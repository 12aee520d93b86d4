//! Ethernet II frame view (IEEE 802.3). The engine works on L3 packets; the dataplane uses this
//! view to find and strip or rebuild the L2 header.

use super::{get_u16, set_u16, Error, Result};

mod field {
    use core::ops::Range;
    pub const DST: Range<usize> = 0..6;
    pub const SRC: Range<usize> = 6..12;
    pub const ETHERTYPE: usize = 12;
    pub const PAYLOAD: usize = 14;
}

/// Ethernet header length.
pub const HEADER_LEN: usize = field::PAYLOAD;
/// EtherType IPv4.
pub const ETHERTYPE_IPV4: u16 = 0x0800;
/// EtherType IPv6.
pub const ETHERTYPE_IPV6: u16 = 0x86dd;
/// EtherType 802.1Q VLAN tag.
pub const ETHERTYPE_VLAN: u16 = 0x8100;

/// A view of an Ethernet frame.
#[derive(Debug, Clone)]
pub struct Frame<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Frame<T> {
    /// Wrap without checking.
    pub const fn new_unchecked(buffer: T) -> Self {
        Frame { buffer }
    }
    /// Wrap and check the length.
    pub fn new_checked(buffer: T) -> Result<Self> {
        let f = Self::new_unchecked(buffer);
        f.check_len()?;
        Ok(f)
    }
    /// Check that the header fits.
    pub fn check_len(&self) -> Result<()> {
        if self.buffer.as_ref().len() < HEADER_LEN {
            Err(Error::Truncated)
        } else {
            Ok(())
        }
    }
    /// Destination MAC.
    pub fn dst_addr(&self) -> [u8; 6] {
        mac(self.buffer.as_ref().get(field::DST))
    }
    /// Source MAC.
    pub fn src_addr(&self) -> [u8; 6] {
        mac(self.buffer.as_ref().get(field::SRC))
    }
    /// EtherType.
    pub fn ethertype(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::ETHERTYPE)
    }
    /// Payload (L3 packet).
    pub fn payload(&self) -> &[u8] {
        self.buffer.as_ref().get(field::PAYLOAD..).unwrap_or(&[])
    }
    /// Consume the view.
    pub fn into_inner(self) -> T {
        self.buffer
    }
}

fn mac(s: Option<&[u8]>) -> [u8; 6] {
    let mut m = [0u8; 6];
    if let Some(s) = s {
        if s.len() == 6 {
            m.copy_from_slice(s);
        }
    }
    m
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Frame<T> {
    /// Set destination MAC.
    pub fn set_dst_addr(&mut self, a: [u8; 6]) {
        if let Some(d) = self.buffer.as_mut().get_mut(field::DST) {
            d.copy_from_slice(&a);
        }
    }
    /// Set source MAC.
    pub fn set_src_addr(&mut self, a: [u8; 6]) {
        if let Some(d) = self.buffer.as_mut().get_mut(field::SRC) {
            d.copy_from_slice(&a);
        }
    }
    /// Set EtherType.
    pub fn set_ethertype(&mut self, t: u16) {
        set_u16(self.buffer.as_mut(), field::ETHERTYPE, t);
    }
}

/// High-level representation of an Ethernet header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr {
    /// Source MAC.
    pub src: [u8; 6],
    /// Destination MAC.
    pub dst: [u8; 6],
    /// EtherType.
    pub ethertype: u16,
}

impl Repr {
    /// Parse a checked frame.
    pub fn parse<T: AsRef<[u8]>>(f: &Frame<T>) -> Result<Repr> {
        f.check_len()?;
        Ok(Repr { src: f.src_addr(), dst: f.dst_addr(), ethertype: f.ethertype() })
    }
    /// Emit into a frame of at least [`HEADER_LEN`] bytes.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, f: &mut Frame<T>) {
        f.set_dst_addr(self.dst);
        f.set_src_addr(self.src);
        f.set_ethertype(self.ethertype);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_truncated() {
        let r = Repr { src: [1, 2, 3, 4, 5, 6], dst: [7, 8, 9, 10, 11, 12], ethertype: ETHERTYPE_IPV6 };
        let mut b = [0u8; 20];
        r.emit(&mut Frame::new_unchecked(&mut b[..]));
        let f = Frame::new_checked(&b[..]).unwrap();
        assert_eq!(Repr::parse(&f).unwrap(), r);
        assert_eq!(f.payload().len(), 6);
        assert_eq!(Frame::new_checked(&b[..13]).unwrap_err(), Error::Truncated);
    }
}
