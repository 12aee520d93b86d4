//! DPDK errors: the operation that failed and DPDK's errno.

use std::ffi::CStr;
use std::fmt;

/// A failed DPDK call: what we asked for and the (positive) errno DPDK gave back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    /// The operation, e.g. `"rte_eth_dev_configure(port 1)"`.
    pub op: String,
    /// DPDK's errno (`rte_errno` or the negated return value).
    pub errno: i32,
}

/// Result of a DPDK call.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub(crate) fn new(op: impl Into<String>, errno: i32) -> Self {
        Self { op: op.into(), errno: errno.abs() }
    }

    /// An error whose errno is DPDK's per-lcore `rte_errno`.
    pub(crate) fn last(op: impl Into<String>) -> Self {
        // SAFETY: reads the calling thread's rte_errno; no preconditions.
        let errno = unsafe { dpdk_sys::shim_rte_errno() };
        Self::new(op, errno)
    }

    /// Turns a negative-errno return value into a result.
    pub(crate) fn check(op: impl FnOnce() -> String, ret: i32) -> Result<i32> {
        if ret < 0 {
            Err(Self::new(op(), ret))
        } else {
            Ok(ret)
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // SAFETY: rte_strerror returns a pointer to a static or thread-local NUL-terminated
        // string for any errno value.
        let msg = unsafe { CStr::from_ptr(dpdk_sys::rte_strerror(self.errno)) };
        write!(f, "{}: {} (errno {})", self.op, msg.to_string_lossy(), self.errno)
    }
}

impl std::error::Error for Error {}
