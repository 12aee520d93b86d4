//! A packet owned by a worker between RX and TX, as the ESP engine sees it.

use dpdk::Mbuf;
use esp::PacketBuffer;

/// An mbuf whose data window starts at the IP header (the Ethernet header is stripped on
/// the way in and rebuilt on the way out), plus what the worker learned about it.
#[derive(Debug)]
pub struct Pkt {
    /// The buffer.
    pub m: Mbuf,
    /// SA slot (inbound or outbound stage).
    pub slot: u32,
    /// Outbound: the next hop (MAC, port index) resolved before encryption.
    pub via: Option<(crate::net::Mac, usize)>,
    /// Outbound: the length of the IP packet before encapsulation, which the SA's byte
    /// counters and lifetimes count (as strongSwan, the kernel and VPP count: the protected
    /// packet, in both directions).
    pub inner_len: u32,
}

impl Pkt {
    /// Wraps an mbuf whose data starts at the IP header.
    pub fn new(m: Mbuf, slot: u32) -> Pkt {
        Pkt { m, slot, via: None, inner_len: 0 }
    }
}

impl PacketBuffer for Pkt {
    fn storage(&self) -> &[u8] {
        self.m.buffer().0
    }
    fn storage_mut(&mut self) -> &mut [u8] {
        // The worker admits only exclusive mbufs (`Mbuf::is_exclusive`); a shared one would
        // show the engine an empty storage, which its bounds-checked accesses refuse.
        self.m.buffer_mut().map_or(&mut [], |b| b.0)
    }
    fn data_offset(&self) -> usize {
        self.m.headroom()
    }
    fn data_len(&self) -> usize {
        self.m.data_len()
    }
    fn set_data(&mut self, offset: usize, len: usize) {
        // The engine only asks for windows inside the storage; a chained mbuf never gets here.
        let _ = self.m.set_data(offset, len);
    }
}
