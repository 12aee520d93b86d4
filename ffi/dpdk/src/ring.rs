//! DPDK rings of mbufs, for hand-off between lcores.

use std::ffi::CString;
use std::ptr::NonNull;

use crate::{Burst, Error, Result};

/// A DPDK ring carrying owned mbufs from one lcore to another (`rte_ring`). Created
/// single-producer/single-consumer unless asked otherwise; like pools, rings live until the
/// EAL is cleaned up.
#[derive(Debug, Clone, Copy)]
pub struct Ring {
    ptr: NonNull<dpdk_sys::rte_ring>,
}

// SAFETY: rte_ring is built for cross-thread use; the producer/consumer flags chosen at
// creation say how many threads may use each end, which callers of `new` promise to honour.
unsafe impl Send for Ring {}
// SAFETY: as above.
unsafe impl Sync for Ring {}

impl Ring {
    /// Creates a ring of `count` entries (a power of two); `single` makes it
    /// single-producer, single-consumer.
    pub fn new(name: &str, count: u32, single: bool) -> Result<Ring> {
        let cname = CString::new(name).map_err(|_| Error::new(format!("ring name {name:?}"), 22))?;
        let flags = if single { dpdk_sys::RING_F_SP_ENQ | dpdk_sys::RING_F_SC_DEQ } else { 0 };
        // SAFETY: valid NUL-terminated name; DPDK validates count and flags.
        let ptr = unsafe { dpdk_sys::rte_ring_create(cname.as_ptr(), count, dpdk_sys::SOCKET_ID_ANY, flags) };
        NonNull::new(ptr)
            .map(|ptr| Ring { ptr })
            .ok_or_else(|| Error::last(format!("rte_ring_create({name}, {count})")))
    }

    /// Moves as many mbufs of `burst` as fit into the ring; returns how many moved. The
    /// rest stay in `burst`.
    pub fn enqueue_burst<const N: usize>(&self, burst: &mut Burst<N>) -> usize {
        // SAFETY: the ring is valid; the burst's held prefix is `len` valid mbuf pointers.
        let n = unsafe {
            dpdk_sys::shim_rte_ring_enqueue_burst(
                self.ptr.as_ptr(),
                burst.held_ptr().cast::<*mut std::ffi::c_void>(),
                burst.len() as u32,
                std::ptr::null_mut(),
            )
        } as usize;
        // SAFETY: the ring now owns the first n mbufs.
        unsafe { burst.commit_taken(n) };
        n
    }

    /// Moves up to the burst's free room of mbufs out of the ring; returns how many.
    pub fn dequeue_burst<const N: usize>(&self, burst: &mut Burst<N>) -> usize {
        // SAFETY: the ring is valid and the burst has `room()` free slots.
        let n = unsafe {
            dpdk_sys::shim_rte_ring_dequeue_burst(
                self.ptr.as_ptr(),
                burst.free_slots_ptr().cast::<*mut std::ffi::c_void>(),
                burst.room() as u32,
                std::ptr::null_mut(),
            )
        } as usize;
        // SAFETY: the ring only ever holds owned mbufs put there by enqueue_burst.
        unsafe { burst.commit_filled(n) };
        n
    }

    /// Entries currently in the ring.
    pub fn count(&self) -> u32 {
        // SAFETY: the ring is valid; reading its count has no side effects.
        unsafe { dpdk_sys::shim_rte_ring_count(self.ptr.as_ptr()) }
    }
}
