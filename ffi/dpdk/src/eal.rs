//! EAL initialisation and cleanup.

use std::ffi::{c_char, c_int, CString};
use std::sync::atomic::{AtomicBool, Ordering};

use crate::{Error, Result};

static INITIALISED: AtomicBool = AtomicBool::new(false);

/// Proof that the EAL is initialised in this process. DPDK allows one initialisation per
/// process; dropping this value calls `rte_eal_cleanup`, after which nothing of DPDK may be
/// used, so keep it alive (in `main`) for as long as ports, pools or mbufs exist.
#[derive(Debug)]
pub struct Eal {
    _private: (),
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
        Ok(Eal { _private: () })
    }
}

impl Eal {
    /// The EAL's runtime directory (`/var/run/dpdk/<file-prefix>`).
    pub fn runtime_dir(&self) -> std::path::PathBuf {
        // SAFETY: the EAL is initialised; the function returns a pointer to a NUL-terminated
        // string owned by the EAL, copied here before anything can free it.
        let dir = unsafe { std::ffi::CStr::from_ptr(dpdk_sys::rte_eal_get_runtime_dir()) };
        std::path::PathBuf::from(dir.to_string_lossy().into_owned())
    }
}

impl Drop for Eal {
    fn drop(&mut self) {
        let dir = self.runtime_dir();
        // SAFETY: the EAL was initialised (an Eal only exists after a successful init) and
        // the owner drops this value last, after every port, pool and mbuf.
        unsafe { dpdk_sys::rte_eal_cleanup() };
        // DPDK leaves its runtime directory behind. Remove it if it is empty: one that still
        // holds files belongs to other processes of the same prefix and stays.
        let _ = std::fs::remove_dir(dir);
    }
}
