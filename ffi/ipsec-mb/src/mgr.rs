//! The multi-buffer manager.

use core::ptr::NonNull;

use ipsec_mb_sys as sys;

use crate::{Error, MAX_BURST};

/// Code path chosen by `init_mb_mgr_auto` for this CPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Arch {
    /// No AES-NI: software emulation.
    NoAesni,
    /// SSE (AES-NI, optionally SHA-NI).
    Sse,
    /// AVX.
    Avx,
    /// AVX2 (optionally VAES).
    Avx2,
    /// AVX-512 (optionally VAES / VPCLMULQDQ).
    Avx512,
}

impl Arch {
    fn from_sys(a: sys::IMB_ARCH) -> Option<Self> {
        Some(match a {
            sys::IMB_ARCH::IMB_ARCH_NOAESNI => Arch::NoAesni,
            sys::IMB_ARCH::IMB_ARCH_SSE => Arch::Sse,
            sys::IMB_ARCH::IMB_ARCH_AVX => Arch::Avx,
            sys::IMB_ARCH::IMB_ARCH_AVX2 => Arch::Avx2,
            sys::IMB_ARCH::IMB_ARCH_AVX512 => Arch::Avx512,
            _ => return None,
        })
    }
}

/// How a burst is handed to the library.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SubmitMode {
    /// The fastest path per algorithm, and the default: AES-GCM through the
    /// direct API (`IMB_AESxxx_GCM_ENC/DEC`, synchronous; GCM is not a
    /// multi-lane algorithm in the library, so the queue only adds overhead,
    /// which is why DPDK has a separate `aesni_gcm` PMD), AES-CBC + HMAC
    /// through the burst API so the multi-buffer lanes fill.
    #[default]
    Auto,
    /// Everything through the 1.3 burst API: `IMB_GET_NEXT_BURST`, one
    /// `IMB_SUBMIT_BURST`, then `IMB_FLUSH_BURST`.
    Burst,
    /// Everything through the classic job API: `IMB_GET_NEXT_JOB` +
    /// `IMB_SUBMIT_JOB` per operation, `IMB_GET_COMPLETED_JOB`, then
    /// `IMB_FLUSH_JOB` until empty (what DPDK 22.11's aesni_mb PMD does).
    Job,
}

/// Per-operation scratch the library writes into or reads from: the computed
/// tag, the received ICV saved while ESN-high occupies its first bytes, and a
/// copy of the IV. Owned by the manager, so a burst allocates nothing.
#[repr(C, align(64))]
pub(crate) struct JobScratch {
    pub(crate) digest: [u8; 64],
    pub(crate) saved_icv: [u8; 32],
    pub(crate) iv: [u8; 16],
}

impl JobScratch {
    const ZERO: JobScratch = JobScratch { digest: [0; 64], saved_icv: [0; 32], iv: [0; 16] };
}

/// An allocated, initialised `IMB_MGR` with its job queue, freed on drop.
///
/// One per thread (lcore): the type is `Send` but not `Sync`, and all
/// processing takes `&mut self`. Invariant: between calls, the manager's job
/// queue is empty.
pub struct MbMgr {
    ptr: NonNull<sys::IMB_MGR>,
    arch: Arch,
    mode: SubmitMode,
    scratch: Box<[JobScratch; MAX_BURST]>,
}

// SAFETY: an IMB_MGR is a plain heap object with no thread affinity (no
// thread-local state is tied to it: its errno lives inside it); moving the
// owner to another thread is fine as long as it is not used from two threads
// at once, which `!Sync` plus `&mut self` on every operation guarantees.
unsafe impl Send for MbMgr {}

impl MbMgr {
    /// Allocates a manager and initialises it for the best code path of this
    /// CPU (`alloc_mb_mgr(0)` + `init_mb_mgr_auto`).
    pub fn new() -> Result<Self, Error> {
        // SAFETY: no preconditions; returns NULL or a manager we now own.
        let raw = unsafe { sys::alloc_mb_mgr(0) };
        let ptr = NonNull::new(raw).ok_or(Error::ManagerAlloc)?;
        let mut arch = sys::IMB_ARCH::IMB_ARCH_NONE;
        // SAFETY: `ptr` is a freshly allocated manager; `arch` is a valid out
        // parameter for the duration of the call.
        unsafe { sys::init_mb_mgr_auto(ptr.as_ptr(), &mut arch) };
        // SAFETY: `ptr` is a valid manager.
        let errno = unsafe { sys::imb_get_errno(ptr.as_ptr()) };
        let arch = match Arch::from_sys(arch) {
            Some(a) if errno == 0 => a,
            _ => {
                // SAFETY: allocated above, never used since, freed once.
                unsafe { sys::free_mb_mgr(ptr.as_ptr()) };
                return Err(Error::ManagerInit { errno });
            }
        };
        Ok(MbMgr { ptr, arch, mode: SubmitMode::default(), scratch: Box::new([JobScratch::ZERO; MAX_BURST]) })
    }

    /// The code path `init_mb_mgr_auto` selected.
    pub fn arch(&self) -> Arch {
        self.arch
    }

    /// The library's version string (e.g. `"1.3.0"`).
    pub fn library_version() -> &'static str {
        // SAFETY: returns a pointer to a static NUL-terminated string.
        let p = unsafe { sys::imb_get_version_str() };
        if p.is_null() {
            return "";
        }
        // SAFETY: non-NULL, static and NUL-terminated per the library's API.
        let c = unsafe { core::ffi::CStr::from_ptr(p) };
        c.to_str().unwrap_or("")
    }

    /// How bursts are handed to the library (see [`SubmitMode`]).
    pub fn submit_mode(&self) -> SubmitMode {
        self.mode
    }

    /// Chooses how bursts are handed to the library. Both modes give the same
    /// results; this exists to compare them.
    pub fn set_submit_mode(&mut self, mode: SubmitMode) {
        self.mode = mode;
    }

    /// Raw pointer for the shim calls. Never null.
    pub(crate) fn raw(&self) -> *mut sys::IMB_MGR {
        self.ptr.as_ptr()
    }

    /// Raw pointer to the per-operation scratch array.
    pub(crate) fn scratch_ptr(&mut self) -> *mut JobScratch {
        self.scratch.as_mut_ptr()
    }
}

impl Drop for MbMgr {
    fn drop(&mut self) {
        // SAFETY: the queue is empty between calls (type invariant), so the
        // library holds no pointer into memory we do not own; the manager was
        // allocated by alloc_mb_mgr and is freed exactly once.
        unsafe {
            debug_assert_eq!(sys::imb_shim_queue_size(self.ptr.as_ptr()), 0);
            sys::free_mb_mgr(self.ptr.as_ptr());
        }
    }
}

impl core::fmt::Debug for MbMgr {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("MbMgr").field("arch", &self.arch).field("mode", &self.mode).finish()
    }
}
