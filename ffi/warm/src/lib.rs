//! Loads that warm the cache ahead of use.
//!
//! A burst pipeline touches one SA's state per packet; with many SAs each touch is a miss,
//! and a chain of them (a table cell, the context it points to, the session that points to
//! the key schedule) is a chain of misses in series. Touching every packet's first level for
//! the whole burst, then every packet's second level, and so on, overlaps the misses of a
//! burst (DPDK's `rte_prefetch0` passes and VPP's `vlib_prefetch_*` follow the same plan).
//!
//! These are loads, not prefetch hints: measured on the virtual machines this gateway runs
//! on, a `PREFETCHT0` of a line whose page is not in the TLB did a fraction of what a load
//! did (`docs/benchmarks.md`, "100,000 SAs"), as if hints that need a page walk were
//! dropped; a load walks the page tables and brings the line in, and the out-of-order core
//! keeps many of them in flight. Each touch reads one byte per line and throws it away.

#![no_std]

/// The cache line size the touches step by.
pub const LINE: usize = 64;

/// Brings the line holding the start of `v` into the cache.
#[inline(always)]
pub fn touch<T: ?Sized>(v: &T) {
    if core::mem::size_of_val(v) > 0 {
        load((v as *const T).cast::<u8>());
    }
}

/// Brings the lines of the first `bytes` of `v` (at most the size of `v`) into the cache.
#[inline(always)]
pub fn lines<T: ?Sized>(v: &T, bytes: usize) {
    let start = (v as *const T).cast::<u8>();
    let len = bytes.min(core::mem::size_of_val(v));
    for_each_line(start as usize, len, |off| load(start.wrapping_add(off)));
}

/// Brings every line of `v` into the cache.
#[inline(always)]
pub fn all<T: ?Sized>(v: &T) {
    lines(v, core::mem::size_of_val(v));
}

/// Calls `f` with the offset from `addr` of one byte in each line that `len` bytes from
/// `addr` touch, in order.
#[inline(always)]
fn for_each_line(addr: usize, len: usize, mut f: impl FnMut(usize)) {
    if len == 0 {
        return;
    }
    let first = addr / LINE;
    let last = (addr + len - 1) / LINE;
    f(0);
    for l in first + 1..=last {
        f(l * LINE - addr);
    }
}

/// One byte load from `p`, its value discarded.
#[inline(always)]
fn load(p: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: every caller passes an address inside a live reference's bytes, so the load
    // reads mapped, readable memory. It is a machine load the compiler does not see as a
    // Rust access: it neither reads the byte as a Rust value (padding would be
    // uninitialised) nor races in the language's sense with atomics another thread writes
    // there; the value goes to a scratch register and is dropped. No stack, flags untouched.
    unsafe {
        core::arch::asm!(
            "mov {scratch:l}, byte ptr [{p}]",
            p = in(reg) p,
            scratch = out(reg) _,
            options(nostack, readonly, preserves_flags),
        );
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::vec::Vec;

    fn offsets(addr: usize, len: usize) -> Vec<usize> {
        let mut v = Vec::new();
        for_each_line(addr, len, |o| v.push(o));
        v
    }

    /// One load per line touched, each inside the range, whatever the alignment.
    #[test]
    fn one_load_per_line_touched() {
        assert_eq!(offsets(0x1000, 0), Vec::<usize>::new());
        assert_eq!(offsets(0x1000, 1), [0]);
        assert_eq!(offsets(0x1000, 64), [0]);
        assert_eq!(offsets(0x1000, 65), [0, 64]);
        assert_eq!(offsets(0x1030, 32), [0, 16], "48 bytes into a line, 32 bytes: two lines");
        assert_eq!(offsets(0x103f, 2), [0, 1]);
        assert_eq!(offsets(0x1010, 240), [0, 48, 112, 176], "an AES-128 schedule off line start");
        for addr in 0x2000..0x2040 {
            for len in 1..300 {
                let o = offsets(addr, len);
                let lines: Vec<usize> = o.iter().map(|x| (addr + x) / LINE).collect();
                let want: Vec<usize> = (addr / LINE..=(addr + len - 1) / LINE).collect();
                assert_eq!(lines, want, "addr {addr:#x} len {len}");
                assert!(o.iter().all(|&x| x < len));
            }
        }
    }

    /// The touches take sized and unsized values, empty or not, a length past the end, and
    /// values with padding and atomics, and leave them as they were.
    #[test]
    fn touches_take_any_reference() {
        let a = [7u8; 300];
        let b: &[u64] = &[1, 2, 3];
        let padded = (1u8, 2u64, core::sync::atomic::AtomicU32::new(5));
        touch(&a);
        lines(&a, 10_000);
        all(b);
        all("");
        touch(&());
        all(&padded);
        assert_eq!(a, [7u8; 300]);
        assert_eq!(b, &[1, 2, 3]);
        assert_eq!(padded.2.load(core::sync::atomic::Ordering::Relaxed), 5);
    }
}
