//! A global allocator for tests that look for key material in freed memory.
//!
//! `ScanAlloc` forwards to [`std::alloc::System`]. While armed ([`arm`]), every block handed
//! back to it is searched for the armed needles (key bytes, key schedules, chaining states)
//! before it is freed; [`disarm`] returns how many freed blocks held each needle. A type that
//! leaves a key in a heap block it frees is caught when it is dropped; one that wipes it is
//! not. Stack copies are out of reach of this test (see `docs/reliability.md`).
//!
//! For test binaries only (feature `scan`, a dev-dependency): install it there with
//! `#[global_allocator] static A: ScanAlloc = ScanAlloc;`. Tests that arm it must hold
//! [`SERIAL`], so that one test's needles are not another's.
//!
//! Implementing `GlobalAlloc` needs `unsafe`, which is why it lives in this crate: three
//! blocks, each with its `SAFETY:` argument.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

/// Most needles armed at once.
pub const MAX_NEEDLES: usize = 32;
/// Longest needle.
pub const MAX_LEN: usize = 64;

struct Needles {
    n: usize,
    len: [usize; MAX_NEEDLES],
    bytes: [[u8; MAX_LEN]; MAX_NEEDLES],
    hits: [u32; MAX_NEEDLES],
}

// The scanner's state. Nothing in `arm`, `disarm` or `scan` allocates or frees while holding
// the lock, so the allocator never re-enters it on the same thread.
static NEEDLES: Mutex<Needles> = Mutex::new(Needles {
    n: 0,
    len: [0; MAX_NEEDLES],
    bytes: [[0; MAX_LEN]; MAX_NEEDLES],
    hits: [0; MAX_NEEDLES],
});
static ARMED: AtomicBool = AtomicBool::new(false);

/// Held by every test that arms the scanner.
pub static SERIAL: Mutex<()> = Mutex::new(());

/// Serialize with the other scanning tests of this binary (a failed test poisons nothing).
pub fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn needles() -> std::sync::MutexGuard<'static, Needles> {
    NEEDLES.lock().unwrap_or_else(|e| e.into_inner())
}

/// Start scanning freed blocks for `list` (each at most [`MAX_LEN`] bytes; at most
/// [`MAX_NEEDLES`]).
pub fn arm(list: &[&[u8]]) {
    assert!(list.len() <= MAX_NEEDLES);
    assert!(list.iter().all(|n| !n.is_empty() && n.len() <= MAX_LEN));
    {
        let mut g = needles();
        g.n = list.len();
        for (k, n) in list.iter().enumerate() {
            g.len[k] = n.len();
            g.bytes[k] = [0; MAX_LEN];
            g.bytes[k][..n.len()].copy_from_slice(n);
            g.hits[k] = 0;
        }
    }
    ARMED.store(true, Ordering::SeqCst);
}

/// Stop scanning; the number of freed blocks that contained each needle, in `arm`'s order.
/// The copies of the needles are wiped.
pub fn disarm() -> [u32; MAX_NEEDLES] {
    ARMED.store(false, Ordering::SeqCst);
    let mut g = needles();
    let hits = g.hits;
    g.n = 0;
    for b in g.bytes.iter_mut() {
        // Volatile, so that the wipe of our own copy of the needles is not optimised away.
        for x in b.iter_mut() {
            // SAFETY: `x` is a valid, aligned, exclusive reference to a `u8`.
            unsafe { std::ptr::write_volatile(x, 0) };
        }
    }
    hits
}

/// The control every scanning test binary runs (the caller holds [`serial`]): an unwiped
/// `Vec` holding `key` is seen once when freed, a zeroizing one is not. It fails when this
/// binary did not install [`ScanAlloc`] as its global allocator.
pub fn assert_sees_an_unwiped_vec(key: &[u8]) {
    arm(&[key]);
    let plain = key.to_vec();
    drop(plain);
    let hits = disarm();
    assert_eq!(hits[0], 1, "the scanner missed an unwiped Vec");
    // And a zeroizing one is not seen.
    arm(&[key]);
    let wiped = zeroize::Zeroizing::new(key.to_vec());
    drop(wiped);
    assert_eq!(disarm()[0], 0);
}

fn scan(block: &[u8]) {
    let mut g = needles();
    for k in 0..g.n {
        let needle = &g.bytes[k][..g.len[k]];
        if block.windows(needle.len()).any(|w| w == needle) {
            g.hits[k] += 1;
        }
    }
}

/// The scanning allocator.
#[derive(Debug)]
pub struct ScanAlloc;

// SAFETY: every method forwards to `System`, which upholds `GlobalAlloc`'s contract; `dealloc`
// only reads the block (still allocated) before handing it back.
unsafe impl GlobalAlloc for ScanAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // Zeroed, so that every byte of a block is initialised when `dealloc` reads it.
        // SAFETY: the caller's `layout` has a non-zero size (`GlobalAlloc::alloc`'s contract,
        // which `alloc_zeroed` shares).
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if ARMED.load(Ordering::SeqCst) {
            // SAFETY: `ptr` was returned by `alloc` (zeroed, so initialised) with `layout` and
            // is not freed yet (the caller's contract): `layout.size()` bytes are readable and
            // nobody writes them while the caller frees them.
            let block = unsafe { std::slice::from_raw_parts(ptr, layout.size()) };
            scan(block);
        }
        // SAFETY: `ptr` came from `System.alloc_zeroed` with this `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }
    // `realloc` keeps the default (alloc, copy, dealloc), so a block left behind by growth is
    // scanned as well.
}
