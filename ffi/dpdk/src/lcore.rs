//! Logical cores: which ones the EAL gave us, launching work on them, and the TSC.

use std::ffi::{c_int, c_void};
use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::{Eal, Error, Result};

type Job = Box<dyn FnOnce() -> i32 + Send + 'static>;

/// The lcore id of the calling thread (`u32::MAX` for a thread DPDK does not know).
#[inline]
pub fn id() -> u32 {
    // SAFETY: reads a thread-local; no preconditions.
    unsafe { dpdk_sys::shim_rte_lcore_id() }
}

/// The worker lcores (every enabled lcore except the main one), in order.
pub fn workers(_eal: &Eal) -> Vec<u32> {
    let mut out = Vec::new();
    let mut i = u32::MAX; // rte_get_next_lcore(-1, ...) starts from the first lcore
    loop {
        // SAFETY: a plain query by value (skip the main lcore, do not wrap) on the EAL's
        // lcore table, which the token keeps initialised.
        i = unsafe { dpdk_sys::rte_get_next_lcore(i, 1, 0) };
        if i >= dpdk_sys::RTE_MAX_LCORE {
            return out;
        }
        out.push(i);
    }
}

/// Reads the time-stamp counter: the `rdtsc` instruction inline on x86-64, as DPDK's
/// `rte_rdtsc` does there (no fence), through the shim elsewhere.
#[inline]
pub fn tsc() -> u64 {
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: `rdtsc` has no preconditions; every x86-64 CPU has it.
        unsafe { core::arch::x86_64::_rdtsc() }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        // SAFETY: reads the TSC; no preconditions.
        unsafe { dpdk_sys::shim_rte_rdtsc() }
    }
}

/// TSC ticks per second, as measured by the EAL (0 before it is initialised).
pub fn tsc_hz() -> u64 {
    // SAFETY: a plain query.
    unsafe { dpdk_sys::shim_rte_get_tsc_hz() }
}

/// CPU pause hint for busy-wait loops.
#[inline]
pub fn pause() {
    // SAFETY: a pause instruction; no preconditions.
    unsafe { dpdk_sys::shim_rte_pause() }
}

extern "C" fn trampoline(arg: *mut c_void) -> c_int {
    // SAFETY: `launch` passed a pointer from Box::into_raw of a Box<Job>, used once here.
    let job: Box<Job> = unsafe { Box::from_raw(arg.cast::<Job>()) };
    // A panic must not unwind into DPDK's C frames: report it as a failed lcore.
    catch_unwind(AssertUnwindSafe(job)).unwrap_or(-1)
}

/// Runs `job` on worker lcore `lcore`; collect its return value with [`wait`].
pub fn launch(_eal: &Eal, lcore: u32, job: impl FnOnce() -> i32 + Send + 'static) -> Result<()> {
    let boxed: Box<Job> = Box::new(Box::new(job));
    let arg = Box::into_raw(boxed).cast::<c_void>();
    // SAFETY: the EAL is initialised (the token exists); trampoline matches
    // lcore_function_t and takes ownership of `arg` exactly once when the launch succeeds.
    let ret = unsafe { dpdk_sys::rte_eal_remote_launch(Some(trampoline), arg, lcore) };
    if ret != 0 {
        // SAFETY: the launch failed, so the trampoline never ran; take the job back.
        drop(unsafe { Box::from_raw(arg.cast::<Job>()) });
        return Err(Error::new(format!("rte_eal_remote_launch(lcore {lcore})"), ret));
    }
    Ok(())
}

/// Waits for the job on `lcore` to finish and returns its value (-1 if it panicked).
pub fn wait(_eal: &Eal, lcore: u32) -> i32 {
    // SAFETY: a plain call by value on an initialised EAL; waiting on an idle lcore returns
    // at once.
    unsafe { dpdk_sys::rte_eal_wait_lcore(lcore) }
}
