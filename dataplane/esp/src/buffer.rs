//! The buffer contract between the engine and its caller.
//!
//! A packet lives in a storage area (`storage()`); its bytes are `storage()[data_offset ..
//! data_offset + data_len]`. Space before is headroom, space after is tailroom. This is exactly
//! a DPDK mbuf's single segment (`buf_addr`, `data_off`, `data_len`, `buf_len`), so the dataplane
//! implements [`PacketBuffer`] for its `Mbuf` and the engine prepends headers / appends the ESP
//! trailer without copying the payload.
//!
//! The engine always hands the trait an L3 packet: data starts at the IPv4/IPv6 header (strip
//! Ethernet first, see [`crate::wire::ethernet`]).

/// A packet in a storage area with headroom and tailroom.
pub trait PacketBuffer {
    /// The whole storage area.
    fn storage(&self) -> &[u8];
    /// The whole storage area, mutable.
    fn storage_mut(&mut self) -> &mut [u8];
    /// Offset of the first packet byte in the storage.
    fn data_offset(&self) -> usize;
    /// Number of packet bytes.
    fn data_len(&self) -> usize;
    /// Set the packet window. The engine only calls it with `offset + len <= storage().len()`.
    fn set_data(&mut self, offset: usize, len: usize);

    /// The packet bytes (empty if the window is inconsistent).
    fn data(&self) -> &[u8] {
        let (o, l) = (self.data_offset(), self.data_len());
        self.storage().get(o..o.saturating_add(l)).unwrap_or(&[])
    }
    /// The packet bytes, mutable (empty if the window is inconsistent).
    fn data_mut(&mut self) -> &mut [u8] {
        let (o, l) = (self.data_offset(), self.data_len());
        self.storage_mut().get_mut(o..o.saturating_add(l)).unwrap_or(&mut [])
    }
    /// Bytes available before the packet.
    fn headroom(&self) -> usize {
        self.data_offset()
    }
    /// Bytes available after the packet.
    fn tailroom(&self) -> usize {
        self.storage().len().saturating_sub(self.data_offset().saturating_add(self.data_len()))
    }
}

/// A heap buffer implementing [`PacketBuffer`], for tests, tools and the fuzz target.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VecBuffer {
    storage: Vec<u8>,
    offset: usize,
    len: usize,
}

impl VecBuffer {
    /// Default headroom, as DPDK's `RTE_PKTMBUF_HEADROOM`.
    pub const DEFAULT_HEADROOM: usize = 128;
    /// Default tailroom: enough for the largest ESP trailer, ICV and TFC padding we emit.
    pub const DEFAULT_TAILROOM: usize = 512;

    /// A buffer holding `packet` with the given headroom and tailroom.
    pub fn with_room(packet: &[u8], headroom: usize, tailroom: usize) -> Self {
        let mut storage = vec![0u8; headroom + packet.len() + tailroom];
        if let Some(d) = storage.get_mut(headroom..headroom + packet.len()) {
            d.copy_from_slice(packet);
        }
        VecBuffer { storage, offset: headroom, len: packet.len() }
    }

    /// A buffer holding `packet` with the default headroom and tailroom.
    pub fn new(packet: &[u8]) -> Self {
        Self::with_room(packet, Self::DEFAULT_HEADROOM, Self::DEFAULT_TAILROOM)
    }
}

impl PacketBuffer for VecBuffer {
    fn storage(&self) -> &[u8] {
        &self.storage
    }
    fn storage_mut(&mut self) -> &mut [u8] {
        &mut self.storage
    }
    fn data_offset(&self) -> usize {
        self.offset
    }
    fn data_len(&self) -> usize {
        self.len
    }
    fn set_data(&mut self, offset: usize, len: usize) {
        self.offset = offset;
        self.len = len;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rooms() {
        let b = VecBuffer::with_room(&[1, 2, 3], 10, 5);
        assert_eq!(b.headroom(), 10);
        assert_eq!(b.tailroom(), 5);
        assert_eq!(b.data(), &[1, 2, 3]);
        let mut b = b;
        b.set_data(100, 5);
        assert_eq!(b.data(), &[] as &[u8]);
    }
}
