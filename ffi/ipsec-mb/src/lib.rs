//! The one safe layer over Intel's `intel-ipsec-mb` (via `ipsec-mb-sys`).
//!
//! - [`MbMgr`]: an allocated and initialised `IMB_MGR` (best code path for the
//!   CPU, `init_mb_mgr_auto`), freed on drop. One per lcore/thread: it is
//!   `Send` but not `Sync`, and every operation takes `&mut self`.
//! - Key objects precomputed once per SA and zeroized on drop: [`GcmKey`]
//!   (`gcm_key_data` from `IMB_AESxxx_GCM_PRE`) and [`CbcHmacKey`] (AES
//!   encrypt/decrypt schedules and the HMAC ipad/opad states).
//! - The burst API: up to [`MAX_BURST`] operations described by slices
//!   ([`GcmOp`], [`CbcHmacOp`]) are processed in one call and come back as a
//!   [`BurstStatus`], one [`OpStatus`] per operation, in order. No heap
//!   allocation per call. By default ([`SubmitMode::Auto`]) AES-CBC + HMAC
//!   goes through the 1.3 burst API (`IMB_GET_NEXT_BURST` /
//!   `IMB_SUBMIT_BURST` / `IMB_FLUSH_BURST`) so the multi-buffer lanes fill,
//!   and AES-GCM, which the library implements single-buffer, goes through
//!   the direct API (`IMB_AESxxx_GCM_ENC/DEC`), which is faster than queueing
//!   it; [`SubmitMode::Burst`] and [`SubmitMode::Job`] force the queue.
//! - One-shot helpers: [`MbMgr::gcm_seal`] / [`MbMgr::gcm_open`] (direct API)
//!   and `*_one` wrappers of the burst calls.
//!
//! # Example
//!
//! ```
//! use ipsec_mb::{GcmKey, GcmOp, MbMgr, OpStatus};
//!
//! let mut mgr = MbMgr::new()?; // one per lcore
//! let key = GcmKey::new(&mgr, &[0x42; 16])?; // once per SA
//! // ESP payload (plaintext) followed by room for the 16-byte ICV.
//! let mut pkt_a = vec![0u8; 100 + 16];
//! let mut pkt_b = vec![0u8; 1400 + 16];
//! let aad_a = [0, 0, 0, 1, 0, 0, 0, 7]; // SPI || seq
//! let aad_b = [0, 0, 0, 1, 0, 0, 0, 8];
//! let mut ops = [
//!     GcmOp { key: &key, iv: [1; 12], aad: &aad_a, buf: &mut pkt_a, data_offset: 0, data_len: 100 },
//!     GcmOp { key: &key, iv: [2; 12], aad: &aad_b, buf: &mut pkt_b, data_offset: 0, data_len: 1400 },
//! ];
//! let status = mgr.gcm_encrypt_burst(&mut ops)?;
//! assert_eq!(status.as_slice(), &[OpStatus::Completed, OpStatus::Completed]);
//! # Ok::<(), ipsec_mb::Error>(())
//! ```
//!
//! # Why the burst API is sound
//!
//! The library keeps raw pointers (buffer, IV, AAD, keys, tag output) in its
//! job queue between submission and completion. Every burst function that
//! queues jobs:
//! 1. starts with an empty queue (invariant of [`MbMgr`]: no function returns
//!    while a job is queued);
//! 2. points jobs only at memory that outlives the call: the caller's slices
//!    (borrowed for the whole call through `&mut [Op]`), the key objects
//!    (borrowed likewise) and per-job scratch owned by the manager, which the
//!    call borrows mutably;
//! 3. flushes the queue until it is empty before it returns, and also on
//!    unwind (a drop guard), so no job can outlive the borrows it points into.
//!
//! Exclusive borrows also mean no two jobs of a burst can overlap in memory.
//! Ranges are checked against each buffer before anything is submitted, so
//! the library never reads or writes outside the slices it is given. The
//! direct GCM path is synchronous and keeps nothing. Tags are verified in
//! Rust in constant time (`subtle`); the library only computes them.

#![warn(missing_docs)]

mod burst;
mod keys;
mod mgr;
mod oneshot;

pub use burst::{BurstStatus, CbcHmacOp, GcmOp, OpStatus};
pub use keys::{AesKeySize, CbcHmacKey, GcmKey, HmacAlg};
pub use mgr::{Arch, MbMgr, SubmitMode};

/// Largest number of operations one burst call accepts.
pub const MAX_BURST: usize = 64;

/// Errors of the set-up functions and of a burst call as a whole.
///
/// Per-operation failures are [`OpStatus`] values, not errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// `alloc_mb_mgr` returned NULL.
    ManagerAlloc,
    /// `init_mb_mgr_auto` failed (the library's `imb_errno`, e.g. missing CPU
    /// features).
    ManagerInit {
        /// `imb_get_errno()` after the call.
        errno: i32,
    },
    /// An AES key that is neither 16 nor 32 bytes long.
    KeyLength {
        /// The length given.
        len: usize,
    },
    /// A GCM ICV length other than 8, 12 or 16 bytes (RFC 4106 §8).
    IcvLength {
        /// The length given.
        len: usize,
    },
    /// More than [`MAX_BURST`] operations in one call.
    BurstTooLarge {
        /// The number of operations given.
        len: usize,
    },
}

impl core::fmt::Display for Error {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Error::ManagerAlloc => write!(f, "intel-ipsec-mb: alloc_mb_mgr failed"),
            Error::ManagerInit { errno } => {
                write!(f, "intel-ipsec-mb: init_mb_mgr_auto failed (imb_errno {errno})")
            }
            Error::KeyLength { len } => write!(f, "AES key of {len} bytes (want 16 or 32)"),
            Error::IcvLength { len } => write!(f, "GCM ICV of {len} bytes (want 8, 12 or 16)"),
            Error::BurstTooLarge { len } => {
                write!(f, "burst of {len} operations (at most {MAX_BURST})")
            }
        }
    }
}

impl std::error::Error for Error {}
