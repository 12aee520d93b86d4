//! DPDK rings of mbufs, for hand-off between lcores, split into a producer and a consumer
//! handle whose types carry the ring's concurrency flags.
//!
//! A ring created single-producer (`RING_F_SP_ENQ`) must never see two enqueues at once, and
//! a single-consumer one (`RING_F_SC_DEQ`) never two dequeues. The end handles enforce it:
//! a [`Single`] end is `Send` (it may move to the lcore that owns it) but neither `Clone` nor
//! `Sync`, so exactly one thread uses it; a [`Multi`] end is `Clone` and `Sync`.
//!
//! ```compile_fail,E0599
//! // A single-producer end cannot be cloned ...
//! fn f(p: dpdk::RingProducer<dpdk::Single>) { let _q = p.clone(); }
//! ```
//!
//! ```compile_fail,E0277
//! // ... nor shared between threads.
//! fn need_sync<T: Sync>() {}
//! need_sync::<dpdk::RingConsumer<dpdk::Single>>();
//! ```
//!
//! ```
//! // Multi-producer ends may be both.
//! fn need<T: Sync + Send + Clone>() {}
//! need::<dpdk::RingProducer<dpdk::Multi>>();
//! need::<dpdk::RingConsumer<dpdk::Multi>>();
//! ```

use std::cell::Cell;
use std::ffi::CString;
use std::marker::PhantomData;
use std::ptr::NonNull;

use crate::{Burst, Eal, Error, Result};

mod sealed {
    pub trait Sealed {}
}

/// How many threads may use one end of a ring: [`Single`] or [`Multi`].
pub trait RingSync: sealed::Sealed {
    /// The `rte_ring_create` flag for a producer end of this kind (0 for [`Multi`]).
    #[doc(hidden)]
    const PRODUCER_FLAG: u32;
    /// The flag for a consumer end of this kind.
    #[doc(hidden)]
    const CONSUMER_FLAG: u32;
    /// What the handle holds to be `Sync` or not: `Cell<()>` (not `Sync`) for [`Single`].
    #[doc(hidden)]
    type Marker: Send + Default + std::fmt::Debug;
}

/// One thread at a time uses this end (`RING_F_SP_ENQ` / `RING_F_SC_DEQ`).
#[derive(Debug)]
pub enum Single {}
/// Any number of threads use this end at once (DPDK's default, with atomics on the head).
#[derive(Debug)]
pub enum Multi {}

impl sealed::Sealed for Single {}
impl sealed::Sealed for Multi {}

impl RingSync for Single {
    const PRODUCER_FLAG: u32 = dpdk_sys::RING_F_SP_ENQ;
    const CONSUMER_FLAG: u32 = dpdk_sys::RING_F_SC_DEQ;
    type Marker = PhantomData<Cell<()>>;
}

impl RingSync for Multi {
    const PRODUCER_FLAG: u32 = 0;
    const CONSUMER_FLAG: u32 = 0;
    type Marker = ();
}

/// A ring pointer: `Send` because rte_ring is built for cross-thread use; whether the end
/// handle is `Sync` is decided by its kind's marker.
#[derive(Debug, Clone, Copy)]
struct RingPtr(NonNull<dpdk_sys::rte_ring>);

// SAFETY: rte_ring is built for use from several threads; each end handle's kind (its
// marker) decides how many threads may use that end at once.
unsafe impl Send for RingPtr {}
// SAFETY: as above; the pointer itself is never written through except by DPDK's ring code.
unsafe impl Sync for RingPtr {}

/// Creates rings; see [`Ring::create`].
#[derive(Debug)]
pub enum Ring {}

impl Ring {
    /// Creates a ring of `count` entries (a power of two) and returns its two ends; `P` and
    /// `C` say whether the producer and the consumer end are [`Single`] or [`Multi`]:
    /// `Ring::create::<Multi, Single>(&eal, "handoff", 4096)` is a ring every lcore may feed and
    /// one lcore drains. Like pools, rings live until the EAL is cleaned up.
    pub fn create<P: RingSync, C: RingSync>(
        eal: &Eal,
        name: &str,
        count: u32,
    ) -> Result<(RingProducer<P>, RingConsumer<C>)> {
        let cname = CString::new(name).map_err(|_| Error::new(format!("ring name {name:?}"), 22))?;
        let flags = P::PRODUCER_FLAG | C::CONSUMER_FLAG;
        // SAFETY: valid NUL-terminated name; DPDK validates count and flags.
        let ptr = unsafe { dpdk_sys::rte_ring_create(cname.as_ptr(), count, dpdk_sys::SOCKET_ID_ANY, flags) };
        let ptr =
            NonNull::new(ptr).ok_or_else(|| Error::last(format!("rte_ring_create({name}, {count})")))?;
        Ok((
            RingProducer { ptr: RingPtr(ptr), _eal: eal.clone(), _kind: Default::default() },
            RingConsumer { ptr: RingPtr(ptr), _eal: eal.clone(), _kind: Default::default() },
        ))
    }
}

/// The enqueue end of a ring.
#[derive(Debug)]
pub struct RingProducer<K: RingSync> {
    ptr: RingPtr,
    _eal: Eal,
    _kind: K::Marker,
}

/// The dequeue end of a ring.
#[derive(Debug)]
pub struct RingConsumer<K: RingSync> {
    ptr: RingPtr,
    _eal: Eal,
    _kind: K::Marker,
}

impl Clone for RingProducer<Multi> {
    fn clone(&self) -> Self {
        Self { ptr: self.ptr, _eal: self._eal.clone(), _kind: () }
    }
}

impl Clone for RingConsumer<Multi> {
    fn clone(&self) -> Self {
        Self { ptr: self.ptr, _eal: self._eal.clone(), _kind: () }
    }
}

impl<K: RingSync> RingProducer<K> {
    /// Moves as many mbufs of `burst` as fit into the ring; returns how many moved. The
    /// rest stay in `burst`.
    pub fn enqueue_burst<const N: usize>(&self, burst: &mut Burst<N>) -> usize {
        // SAFETY: the ring is valid while the EAL token lives; the burst's held prefix is
        // `len` valid mbuf pointers; this end's kind matches the flags the ring was created
        // with (a single-producer end is used by one thread: it is neither Clone nor Sync).
        let n = unsafe {
            dpdk_sys::shim_rte_ring_enqueue_burst(
                self.ptr.0.as_ptr(),
                burst.held_ptr().cast::<*mut std::ffi::c_void>(),
                burst.len() as u32,
                std::ptr::null_mut(),
            )
        } as usize;
        // SAFETY: the ring now owns the first n mbufs.
        unsafe { burst.commit_taken(n) };
        n
    }

    /// Entries currently in the ring.
    pub fn count(&self) -> u32 {
        ring_count(self.ptr)
    }
}

impl<K: RingSync> RingConsumer<K> {
    /// Moves up to the burst's free room of mbufs out of the ring; returns how many.
    pub fn dequeue_burst<const N: usize>(&self, burst: &mut Burst<N>) -> usize {
        // SAFETY: the ring is valid while the EAL token lives and the burst has `room()` free
        // slots; this end's kind matches the ring's consumer flag (see enqueue_burst).
        let n = unsafe {
            dpdk_sys::shim_rte_ring_dequeue_burst(
                self.ptr.0.as_ptr(),
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
        ring_count(self.ptr)
    }
}

fn ring_count(p: RingPtr) -> u32 {
    // SAFETY: the ring is valid while the caller's EAL token lives; reading its count has no
    // side effects and is safe from any thread.
    unsafe { dpdk_sys::shim_rte_ring_count(p.0.as_ptr()) }
}
