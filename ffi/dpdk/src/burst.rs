//! A fixed-size burst of owned mbufs: what RX fills and TX drains, with no allocation.

use dpdk_sys::rte_mbuf;

use crate::{Mbuf, Mempool};

/// Up to `N` owned mbufs in an inline array.
///
/// Invariant: `slots[..len]` are all `Some`, `slots[len..]` all `None`. Because [`Mbuf`] is a
/// `#[repr(transparent)]` wrapper of a `NonNull` pointer, `Option<Mbuf>` has the layout of
/// `*mut rte_mbuf` (`None` is NULL), so the array is handed to DPDK's burst functions as it
/// is and the filled prefix can be viewed as `&[Mbuf]`.
#[derive(Debug)]
pub struct Burst<const N: usize = 32> {
    slots: [Option<Mbuf>; N],
    len: usize,
}

impl<const N: usize> Default for Burst<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> Burst<N> {
    /// An empty burst.
    pub const fn new() -> Self {
        Self { slots: [const { None }; N], len: 0 }
    }

    /// Number of mbufs held.
    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when no mbuf is held.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Free places left.
    #[inline]
    pub fn room(&self) -> usize {
        N - self.len
    }

    /// The held mbufs.
    #[inline]
    pub fn as_slice(&self) -> &[Mbuf] {
        // SAFETY: slots[..len] are all Some, and Option<Mbuf> has Mbuf's layout when Some
        // (null-pointer optimisation, guaranteed for repr(transparent) NonNull wrappers).
        unsafe { std::slice::from_raw_parts(self.slots.as_ptr().cast::<Mbuf>(), self.len) }
    }

    /// The held mbufs, writable.
    #[inline]
    pub fn as_mut_slice(&mut self) -> &mut [Mbuf] {
        // SAFETY: as in `as_slice`; `&mut self` makes the slice the only access.
        unsafe { std::slice::from_raw_parts_mut(self.slots.as_mut_ptr().cast::<Mbuf>(), self.len) }
    }

    /// Adds an mbuf at the end; gives it back if the burst is full.
    #[inline]
    pub fn push(&mut self, m: Mbuf) -> Result<(), Mbuf> {
        match self.slots.get_mut(self.len) {
            Some(slot) => {
                *slot = Some(m);
                self.len += 1;
                Ok(())
            }
            None => Err(m),
        }
    }

    /// Removes and returns the last mbuf.
    #[inline]
    pub fn pop(&mut self) -> Option<Mbuf> {
        if self.len == 0 {
            return None;
        }
        self.len -= 1;
        self.slots[self.len].take()
    }

    /// Frees every held mbuf.
    pub fn clear(&mut self) {
        for s in &mut self.slots[..self.len] {
            drop(s.take());
        }
        self.len = 0;
    }

    /// Keeps the mbufs for which `keep` returns `true`, in order, and passes the others,
    /// owned, to `reject` (to count and free, or to move to another burst).
    pub fn retain_or(&mut self, mut keep: impl FnMut(&mut Mbuf) -> bool, mut reject: impl FnMut(Mbuf)) {
        let mut kept = 0;
        for i in 0..self.len {
            let Some(mut m) = self.slots[i].take() else { continue };
            if keep(&mut m) {
                self.slots[kept] = Some(m);
                kept += 1;
            } else {
                reject(m);
            }
        }
        self.len = kept;
    }

    /// Removes every mbuf, in order, leaving the burst empty.
    pub fn drain(&mut self) -> impl Iterator<Item = Mbuf> + '_ {
        let n = std::mem::take(&mut self.len);
        self.slots[..n].iter_mut().filter_map(Option::take)
    }

    /// Pointer to the first free slot, as DPDK's RX functions want it.
    #[inline]
    pub(crate) fn free_slots_ptr(&mut self) -> *mut *mut rte_mbuf {
        // SAFETY: len <= N, so the pointer is within or one past the array.
        unsafe { self.slots.as_mut_ptr().add(self.len).cast::<*mut rte_mbuf>() }
    }

    /// Records that DPDK wrote `n` valid mbuf pointers into the free slots.
    ///
    /// # Safety
    /// The `n` slots after `len` must hold valid, owned, non-null mbuf pointers.
    #[inline]
    pub(crate) unsafe fn commit_filled(&mut self, n: usize) {
        debug_assert!(self.len + n <= N);
        self.len += n;
    }

    /// Pointer to the held mbufs, as DPDK's TX functions want it.
    #[inline]
    pub(crate) fn held_ptr(&mut self) -> *mut *mut rte_mbuf {
        self.slots.as_mut_ptr().cast::<*mut rte_mbuf>()
    }

    /// Records that DPDK took ownership of the first `n` held mbufs: they are forgotten
    /// (not freed) and the rest move to the front.
    ///
    /// # Safety
    /// The first `n` held mbufs must now be owned by DPDK.
    #[inline]
    pub(crate) unsafe fn commit_taken(&mut self, n: usize) {
        let n = n.min(self.len);
        for s in &mut self.slots[..n] {
            // The driver owns these now: forget, do not free.
            std::mem::forget(s.take());
        }
        self.slots[..self.len].rotate_left(n);
        self.len -= n;
    }

    pub(crate) fn fill_from_pool(&mut self, pool: &Mempool, count: usize) -> bool {
        if count > self.room() {
            return false;
        }
        // SAFETY: the free slots have room for `count` pointers; the pool pointer is valid.
        let ret = unsafe {
            dpdk_sys::shim_rte_pktmbuf_alloc_bulk(pool.as_ptr(), self.free_slots_ptr(), count as u32)
        };
        if ret != 0 {
            return false;
        }
        // SAFETY: on success DPDK wrote `count` freshly allocated mbuf pointers.
        unsafe { self.commit_filled(count) };
        true
    }
}

impl<const N: usize> Drop for Burst<N> {
    fn drop(&mut self) {
        self.clear();
    }
}
