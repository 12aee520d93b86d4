//! EAL initialisation and cleanup, and the token every DPDK handle holds.

use std::collections::HashMap;
use std::ffi::{c_char, c_int, CString};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::{Error, Result};

static INITIALISED: AtomicBool = AtomicBool::new(false);

/// Proof that the EAL is initialised in this process, and the token that keeps it so.
///
/// DPDK allows one initialisation per process ([`Eal::init`]). Every function that needs the
/// EAL takes an `&Eal`, and every handle it returns ([`crate::Mempool`], [`crate::Port`], the
/// queue and ring handles) holds a clone of the token: `rte_eal_cleanup` runs when the last
/// clone is dropped, so it cannot run while a handle lives. Cloning is a reference count
/// taken when a handle is created, never per packet.
///
/// Owned [`crate::Mbuf`]s hold no token (that would be an atomic per packet). Instead the
/// cleanup checks that every pool created through this layer has all its buffers back; if
/// some are still out (an `Mbuf` leaked into a `static`, a ring or a driver queue), it skips
/// `rte_eal_cleanup`, leaving the memory to the process's exit, rather than free memory that
/// safe code can still reach.
#[derive(Debug, Clone)]
pub struct Eal {
    inner: Arc<Inner>,
}

/// The per-port queue bookkeeping: which queues were configured and which have a live
/// handle. Locked only when a queue handle is created or dropped, or a port reconfigured.
#[derive(Debug, Default)]
pub(crate) struct PortQueues {
    pub(crate) rx_taken: Vec<bool>,
    pub(crate) tx_taken: Vec<bool>,
}

impl PortQueues {
    /// Queue handles of this port alive now.
    pub(crate) fn live(&self) -> usize {
        self.rx_taken.iter().chain(&self.tx_taken).filter(|t| **t).count()
    }
}

#[derive(Debug)]
struct Inner {
    pools: Mutex<Vec<PoolPtr>>,
    queues: Mutex<HashMap<u16, PortQueues>>,
}

/// A pool pointer kept for the cleanup check.
#[derive(Debug)]
struct PoolPtr(*mut dpdk_sys::rte_mempool);

// SAFETY: only read (by value) under the mutex, and passed to DPDK's thread-safe count query.
unsafe impl Send for PoolPtr {}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding one of these locks leaves plain data behind, still consistent.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Eal {
    /// Initialises the EAL with `args` exactly as they would follow the program name on a
    /// DPDK command line (`-l 0,1 --no-pci --vdev net_null0 ...`). `program` is `argv[0]`.
    pub fn init<S: AsRef<str>>(program: &str, args: &[S]) -> Result<Eal> {
        if INITIALISED.swap(true, Ordering::SeqCst) {
            return Err(Error::new("rte_eal_init: already initialised in this process", 114));
        }
        let mut owned = Vec::with_capacity(args.len() + 1);
        for a in std::iter::once(program).chain(args.iter().map(AsRef::as_ref)) {
            match CString::new(a) {
                Ok(c) => owned.push(c),
                Err(_) => {
                    INITIALISED.store(false, Ordering::SeqCst);
                    return Err(Error::new(format!("EAL argument {a:?} contains a NUL byte"), 22));
                }
            }
        }
        // DPDK may keep pointers into argv (device arguments, for example), so the strings
        // live for the rest of the process.
        let argv: &mut [*mut c_char] = Vec::leak(
            owned.into_iter().map(CString::into_raw).chain(std::iter::once(std::ptr::null_mut())).collect(),
        );
        let argc = (argv.len() - 1) as c_int;
        // SAFETY: argv holds argc valid, leaked (never freed) NUL-terminated strings followed
        // by a NULL, and the INITIALISED flag guarantees this is the process's only call.
        let ret = unsafe { dpdk_sys::rte_eal_init(argc, argv.as_mut_ptr()) };
        if ret < 0 {
            return Err(Error::last("rte_eal_init"));
        }
        Ok(Eal { inner: Arc::new(Inner { pools: Mutex::default(), queues: Mutex::default() }) })
    }

    /// The EAL's runtime directory (`/var/run/dpdk/<file-prefix>`).
    pub fn runtime_dir(&self) -> std::path::PathBuf {
        runtime_dir()
    }

    /// Records a pool for the cleanup check.
    pub(crate) fn register_pool(&self, p: *mut dpdk_sys::rte_mempool) {
        lock(&self.inner.pools).push(PoolPtr(p));
    }

    /// The queue bookkeeping of every port.
    pub(crate) fn queues(&self) -> MutexGuard<'_, HashMap<u16, PortQueues>> {
        lock(&self.inner.queues)
    }
}

fn runtime_dir() -> std::path::PathBuf {
    // SAFETY: only called while the EAL is initialised (an Eal token exists); the function
    // returns a pointer to a NUL-terminated string owned by the EAL, copied here before
    // anything can free it.
    let dir = unsafe { std::ffi::CStr::from_ptr(dpdk_sys::rte_eal_get_runtime_dir()) };
    std::path::PathBuf::from(dir.to_string_lossy().into_owned())
}

impl Drop for Inner {
    fn drop(&mut self) {
        // The last token is gone: no pool, ring, port or queue handle exists any more.
        let out = lock(&self.pools).iter().any(|p| {
            // SAFETY: the pool was created under this EAL, which is still initialised, and
            // pools are never freed; the counts are read without side effects.
            let (avail, size) =
                unsafe { (dpdk_sys::rte_mempool_avail_count(p.0), std::ptr::addr_of!((*p.0).size).read()) };
            avail < size
        });
        if out {
            // An owned mbuf may still exist: leave DPDK's memory mapped until the process ends.
            return;
        }
        let dir = runtime_dir();
        // SAFETY: the EAL was initialised (an Inner only exists after a successful init), no
        // handle holds a token any more, and every buffer is back in its pool, so nothing
        // reachable from safe code points into DPDK's memory.
        unsafe { dpdk_sys::rte_eal_cleanup() };
        // DPDK leaves its runtime directory behind. Remove it if it is empty: one that still
        // holds files belongs to other processes of the same prefix and stays.
        let _ = std::fs::remove_dir(dir);
    }
}
