//! Owned packet buffers.

use std::ptr::NonNull;

use std::sync::atomic::{AtomicU16, Ordering};

use dpdk_sys::rte_mbuf;

/// `ol_flags` bits of an mbuf whose data buffer may be shared with other mbufs.
const SHARED_BUFFER: u64 = dpdk_sys::RTE_MBUF_F_INDIRECT | dpdk_sys::RTE_MBUF_F_EXTERNAL;

/// An owned DPDK packet buffer. It is freed back to its pool when dropped, unless it is
/// handed to a driver ([`crate::TxQueue::tx_burst`]) or turned into a raw pointer with
/// [`Mbuf::into_raw`].
///
/// Its data (`data_off .. data_off + data_len` of the first segment) is exposed as a byte
/// slice. Writable views ([`Mbuf::data_mut`], [`Mbuf::buffer_mut`], the bytes
/// [`Mbuf::prepend`] and [`Mbuf::append`] return) are given only for an *exclusive* mbuf:
/// reference count 1, a direct mbuf with its own buffer (not indirect, no external buffer).
/// A buffer that another mbuf also points to is read-only here. Field reads and writes are done here, over the bindgen structure, so that they
/// inline into the per-packet path; the structure layout is checked against the C
/// compiler's in `dpdk-sys`'s tests.
#[repr(transparent)]
#[derive(Debug)]
pub struct Mbuf(NonNull<rte_mbuf>);

// SAFETY: an Mbuf is the unique owner of its buffer; moving it to another thread moves the
// ownership, and DPDK's free path is thread-safe.
unsafe impl Send for Mbuf {}

impl Mbuf {
    /// Takes ownership of a raw mbuf.
    ///
    /// # Safety
    /// `m` must point to a valid mbuf that nothing else owns or will free.
    pub unsafe fn from_raw(m: *mut rte_mbuf) -> Mbuf {
        // SAFETY: the caller promises `m` is a valid mbuf pointer, hence non-null.
        Mbuf(unsafe { NonNull::new_unchecked(m) })
    }

    /// Gives up ownership without freeing; the caller must free or transmit the pointer.
    #[must_use]
    pub fn into_raw(self) -> *mut rte_mbuf {
        let p = self.0.as_ptr();
        std::mem::forget(self);
        p
    }

    /// True when nothing else can reach this mbuf's data: reference count 1, not indirect,
    /// no external buffer (`rte_mbuf_refcnt_read(m) == 1 && RTE_MBUF_DIRECT(m)`). Two loads
    /// of the mbuf's first cache line and no branch, so that callers fold it into their one.
    #[inline]
    pub fn is_exclusive(&self) -> bool {
        let p = self.0.as_ptr();
        // SAFETY: `refcnt` is a properly aligned u16 of a valid mbuf, and other holders of a
        // shared mbuf change it only atomically (as rte_mbuf_refcnt_update does), so it is
        // read as an atomic, Relaxed as rte_mbuf_refcnt_read reads it; the field is reached
        // through the raw pointer, without a reference to the whole mbuf.
        let refcnt =
            unsafe { AtomicU16::from_ptr(std::ptr::addr_of_mut!((*p).refcnt)) }.load(Ordering::Relaxed);
        // SAFETY: `ol_flags` of a valid mbuf, read through the raw pointer; the indirect and
        // external flags are set by whoever attached the buffer, before handing the mbuf over.
        let flags = unsafe { std::ptr::addr_of!((*p).ol_flags).read() };
        (refcnt == 1) & (flags & SHARED_BUFFER == 0)
    }

    #[inline]
    fn raw(&self) -> &rte_mbuf {
        // SAFETY: we own a valid mbuf; nothing else writes it while we hold it.
        unsafe { self.0.as_ref() }
    }

    #[inline]
    fn raw_mut(&mut self) -> &mut rte_mbuf {
        // SAFETY: as in `raw`, and `&mut self` makes this the only reference.
        unsafe { self.0.as_mut() }
    }

    /// Bytes of packet data in the first segment.
    #[inline]
    pub fn data_len(&self) -> usize {
        usize::from(self.raw().data_len)
    }

    /// Bytes of packet data in the whole chain.
    #[inline]
    pub fn pkt_len(&self) -> usize {
        self.raw().pkt_len as usize
    }

    /// Free bytes in front of the data.
    #[inline]
    pub fn headroom(&self) -> usize {
        usize::from(self.raw().data_off)
    }

    /// Free bytes after the data of the (only) segment.
    #[inline]
    pub fn tailroom(&self) -> usize {
        let m = self.raw();
        usize::from(m.buf_len) - usize::from(m.data_off) - usize::from(m.data_len)
    }

    /// True when the packet is in a single segment (the only kind sliced here).
    #[inline]
    pub fn is_contiguous(&self) -> bool {
        self.raw().nb_segs == 1
    }

    /// The port the packet was received on.
    #[inline]
    pub fn port(&self) -> u16 {
        self.raw().port
    }

    /// The packet data of the first segment.
    #[inline]
    pub fn data(&self) -> &[u8] {
        let m = self.raw();
        // SAFETY: buf_addr points to buf_len bytes owned by this mbuf, and DPDK keeps
        // data_off + data_len <= buf_len; the borrow of self keeps the buffer alive.
        unsafe {
            std::slice::from_raw_parts(
                m.buf_addr.cast::<u8>().add(usize::from(m.data_off)),
                usize::from(m.data_len),
            )
        }
    }

    /// The packet data of the first segment, writable; `None` if the buffer may be shared
    /// (see [`Mbuf::is_exclusive`]).
    #[inline]
    pub fn data_mut(&mut self) -> Option<&mut [u8]> {
        if !self.is_exclusive() {
            return None;
        }
        let m = self.raw_mut();
        // SAFETY: as in `data`; the mbuf is exclusive (no other mbuf points to its buffer)
        // and `&mut self` makes the slice the only access.
        Some(unsafe {
            std::slice::from_raw_parts_mut(
                m.buf_addr.cast::<u8>().add(usize::from(m.data_off)),
                usize::from(m.data_len),
            )
        })
    }

    /// The whole buffer (read-only), with the data's offset and length inside it.
    #[inline]
    pub fn buffer(&self) -> (&[u8], usize, usize) {
        let m = self.raw();
        // SAFETY: buf_addr points to buf_len bytes owned by this mbuf; the borrow of self
        // keeps them alive and unmodified.
        let buf = unsafe { std::slice::from_raw_parts(m.buf_addr.cast::<u8>(), usize::from(m.buf_len)) };
        (buf, usize::from(m.data_off), usize::from(m.data_len))
    }

    /// The whole buffer with the data's offset and length inside it, for in-place
    /// processing that grows the packet at both ends (ESP encapsulation). Commit the new
    /// extent with [`Mbuf::set_data`]. `None` if the buffer may be shared (see
    /// [`Mbuf::is_exclusive`]).
    #[inline]
    pub fn buffer_mut(&mut self) -> Option<(&mut [u8], usize, usize)> {
        if !self.is_exclusive() {
            return None;
        }
        let m = self.raw_mut();
        let (off, len) = (usize::from(m.data_off), usize::from(m.data_len));
        // SAFETY: buf_addr points to buf_len bytes owned by this exclusive mbuf; `&mut self`
        // makes the slice the only access for its lifetime.
        let buf = unsafe { std::slice::from_raw_parts_mut(m.buf_addr.cast::<u8>(), usize::from(m.buf_len)) };
        Some((buf, off, len))
    }

    /// Sets where the data starts in the buffer and how long it is (single segment).
    /// Returns `false`, changing nothing, if the extent does not fit in the buffer, the
    /// mbuf is a chain or its buffer may be shared.
    #[inline]
    pub fn set_data(&mut self, off: usize, len: usize) -> bool {
        let exclusive = self.is_exclusive();
        let m = self.raw_mut();
        if !exclusive || m.nb_segs != 1 || off.checked_add(len).is_none_or(|end| end > usize::from(m.buf_len))
        {
            return false;
        }
        // Both fit in u16: they are bounded by buf_len, a u16.
        m.data_off = off as u16;
        m.data_len = len as u16;
        m.pkt_len = len as u32;
        true
    }

    /// `len` bytes of the buffer from `off` (inside it: callers check against `buf_len`).
    #[inline]
    fn bytes_at(&mut self, off: u16, len: u16) -> &mut [u8] {
        let m = self.raw_mut();
        // SAFETY: buf_addr points to buf_len bytes owned by this mbuf and every caller has
        // checked off + len <= buf_len; `&mut self` makes the slice the only access.
        unsafe {
            std::slice::from_raw_parts_mut(m.buf_addr.cast::<u8>().add(usize::from(off)), usize::from(len))
        }
    }

    /// Grows the data by `len` bytes at the front and returns them (`rte_pktmbuf_prepend`);
    /// `None` if the headroom is too small or the buffer may be shared. A single exclusive
    /// segment is edited here, inline (the per-packet case); a chain goes through DPDK's
    /// function.
    #[inline]
    pub fn prepend(&mut self, len: u16) -> Option<&mut [u8]> {
        let exclusive = self.is_exclusive();
        let m = self.raw_mut();
        if exclusive & (m.nb_segs == 1) {
            if len > m.data_off {
                return None;
            }
            // data_off + data_len <= buf_len, so the new length fits too.
            m.data_off -= len;
            m.data_len += len;
            m.pkt_len += u32::from(len);
            let off = m.data_off;
            return Some(self.bytes_at(off, len));
        }
        if !exclusive {
            return None;
        }
        // SAFETY: we own a valid mbuf; DPDK checks the headroom and returns NULL if short.
        let p = unsafe { dpdk_sys::shim_rte_pktmbuf_prepend(self.0.as_ptr(), len) };
        // SAFETY: a non-null result points to `len` bytes at the front of our data.
        NonNull::new(p)
            .map(|p| unsafe { std::slice::from_raw_parts_mut(p.as_ptr().cast(), usize::from(len)) })
    }

    /// Grows the data by `len` bytes at the end and returns them (`rte_pktmbuf_append`);
    /// `None` if the tailroom is too small, the buffer may be shared, or the mbuf is a chain
    /// (the bytes would land in the last segment, whose sharing is not checked here).
    #[inline]
    pub fn append(&mut self, len: u16) -> Option<&mut [u8]> {
        let exclusive = self.is_exclusive();
        let m = self.raw_mut();
        if exclusive & (m.nb_segs == 1) {
            let tail = u32::from(m.data_off) + u32::from(m.data_len);
            if tail + u32::from(len) > u32::from(m.buf_len) {
                return None;
            }
            m.data_len += len;
            m.pkt_len += u32::from(len);
            // tail < tail + len <= buf_len, a u16.
            return Some(self.bytes_at(tail as u16, len));
        }
        None
    }

    /// Removes `len` bytes from the front (`rte_pktmbuf_adj`, which edits the first segment
    /// only, chain or not); `false` if it holds fewer.
    #[inline]
    pub fn adj(&mut self, len: u16) -> bool {
        let m = self.raw_mut();
        if len > m.data_len {
            return false;
        }
        m.data_len -= len;
        m.data_off += len;
        m.pkt_len -= u32::from(len);
        true
    }

    /// Removes `len` bytes from the end (`rte_pktmbuf_trim`); `false` if there are fewer.
    /// Inline for one segment.
    #[inline]
    pub fn trim(&mut self, len: u16) -> bool {
        let m = self.raw_mut();
        if m.nb_segs == 1 {
            if len > m.data_len {
                return false;
            }
            m.data_len -= len;
            m.pkt_len -= u32::from(len);
            return true;
        }
        // SAFETY: we own a valid mbuf; DPDK checks the length.
        unsafe { dpdk_sys::shim_rte_pktmbuf_trim(self.0.as_ptr(), len) == 0 }
    }

    /// Empties the buffer and restores the default headroom (`rte_pktmbuf_reset`).
    pub fn reset(&mut self) {
        // SAFETY: we own a valid mbuf.
        unsafe { dpdk_sys::shim_rte_pktmbuf_reset(self.0.as_ptr()) }
    }
}

impl Drop for Mbuf {
    fn drop(&mut self) {
        // SAFETY: we own the mbuf (chain) and nothing uses it after this.
        unsafe { dpdk_sys::shim_rte_pktmbuf_free(self.0.as_ptr()) }
    }
}
