//! Packet-buffer pools.

use std::ffi::CString;
use std::ptr::NonNull;

use crate::{Eal, Error, Mbuf, Result, PKTMBUF_HEADROOM};

/// A pool of packet buffers (`rte_pktmbuf_pool_create`). Pools are shared by every lcore
/// (DPDK's mempool is multi-producer, multi-consumer with a per-lcore cache) and live until
/// the EAL is cleaned up: DPDK has no safe way to free a pool while a driver or ring may
/// still hold one of its buffers, so dropping a `Mempool` handle does not free the pool.
/// A handle holds an [`Eal`] token (cloning one is a reference count, not per packet).
#[derive(Debug, Clone)]
pub struct Mempool {
    ptr: NonNull<dpdk_sys::rte_mempool>,
    _eal: Eal,
}

// SAFETY: rte_mempool is designed for concurrent use from many threads; the handle is only
// a pointer to it and never frees it.
unsafe impl Send for Mempool {}
// SAFETY: as above; every operation through a shared handle is thread-safe in DPDK.
unsafe impl Sync for Mempool {}

impl Mempool {
    /// Data room of each buffer by default: a 2048-byte frame after DPDK's headroom.
    pub const DEFAULT_DATA_ROOM: u16 = 2048 + PKTMBUF_HEADROOM;

    /// Creates a pool of `count` buffers with `data_room` bytes each (headroom included),
    /// a per-lcore cache of `cache` buffers, on NUMA socket `socket` (`None`: any).
    pub fn new(
        eal: &Eal,
        name: &str,
        count: u32,
        cache: u32,
        data_room: u16,
        socket: Option<i32>,
    ) -> Result<Self> {
        let cname = CString::new(name).map_err(|_| Error::new(format!("mempool name {name:?}"), 22))?;
        // SAFETY: cname is a valid NUL-terminated string for the duration of the call; the
        // other arguments are plain values that DPDK validates.
        let ptr = unsafe {
            dpdk_sys::rte_pktmbuf_pool_create(
                cname.as_ptr(),
                count,
                cache,
                0,
                data_room,
                socket.unwrap_or(dpdk_sys::SOCKET_ID_ANY),
            )
        };
        let ptr = NonNull::new(ptr)
            .ok_or_else(|| Error::last(format!("rte_pktmbuf_pool_create({name}, {count} buffers)")))?;
        eal.register_pool(ptr.as_ptr());
        Ok(Mempool { ptr, _eal: eal.clone() })
    }

    /// Takes one buffer from the pool, reset and empty; `None` when the pool is exhausted.
    pub fn alloc(&self) -> Option<Mbuf> {
        // SAFETY: the pool pointer is valid for the life of the EAL.
        let m = unsafe { dpdk_sys::shim_rte_pktmbuf_alloc(self.ptr.as_ptr()) };
        // SAFETY: a non-null result is a freshly allocated mbuf that nobody else owns.
        NonNull::new(m).map(|m| unsafe { Mbuf::from_raw(m.as_ptr()) })
    }

    /// Appends `count` buffers to `out` at once, all or none: `false` when the pool
    /// lacks them or `out` has no room for them.
    pub fn alloc_bulk<const N: usize>(&self, out: &mut crate::Burst<N>, count: usize) -> bool {
        out.fill_from_pool(self, count)
    }

    /// Buffers currently in the pool (not handed out).
    pub fn available(&self) -> u32 {
        // SAFETY: the pool pointer is valid; the count is read without side effects.
        unsafe { dpdk_sys::rte_mempool_avail_count(self.ptr.as_ptr()) }
    }

    /// Total buffers the pool was created with.
    pub fn size(&self) -> u32 {
        // SAFETY: the pool is valid for the life of the EAL, which this handle keeps; the
        // field is read through the raw pointer, with no reference to memory that DPDK
        // mutates from other threads (`size` itself is set at creation and never changes).
        unsafe { std::ptr::addr_of!((*self.ptr.as_ptr()).size).read() }
    }

    pub(crate) fn as_ptr(&self) -> *mut dpdk_sys::rte_mempool {
        self.ptr.as_ptr()
    }

    /// The raw pool, for calls into `dpdk-sys` that this layer does not wrap (every use of
    /// it is `unsafe` there). It stays valid while this handle lives.
    pub fn as_raw(&self) -> *mut dpdk_sys::rte_mempool {
        self.ptr.as_ptr()
    }
}
