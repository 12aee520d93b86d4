//! A heap box whose whole allocation is zeroed when it is dropped.
//!
//! A type's own `Drop` can wipe the fields it knows, not the bytes it does not: padding, and
//! the unused part of a union. RustCrypto's run-time-detected AES and POLYVAL are such
//! unions (`aes` 0.8 `autodetect.rs`: AES-NI round keys or the larger bitsliced schedule in
//! one `union`); with AES-NI only the first 240 bytes of a 960-byte `Aes256Enc` are written,
//! and moving the value copies the rest from wherever it was built, that is stale stack,
//! which in optimised builds held the key, the salt and HMAC chaining states of the code that
//! ran just before. Each field's `Drop` then wipes what it wrote and the heap block is freed
//! with those stale bytes in it (`dataplane/esp/tests/zeroize.rs` found them there).
//! [`WipeBox`] runs the value's `Drop` and then overwrites every byte of the allocation with
//! zeros, volatile, before the memory goes back to the allocator.
//!
//! It lives under `ffi/` because the project keeps `unsafe` there and in the shared-memory
//! code: a value whose storage outlives its `Drop` needs `MaybeUninit`, and reading it needs
//! the promise that it is initialised (three blocks below, each with its argument).
//!
//! With the `scan` feature, [`scan`] is the scanning global allocator the freed-memory tests
//! of `esp`, `sadb`, `espd` and `ike` install (`tests/zeroize.rs` in each).

#![no_std]

extern crate alloc;
#[cfg(feature = "scan")]
extern crate std;

#[cfg(feature = "scan")]
pub mod scan;

use alloc::boxed::Box;
use core::fmt;
use core::mem::MaybeUninit;
use core::ops::{Deref, DerefMut};
use zeroize::Zeroize;

/// A `Box<T>` that zeroes all `size_of::<T>()` bytes of its allocation after dropping `T`.
///
/// Invariant: the `MaybeUninit` holds an initialised `T` from [`WipeBox::new`] until `drop`.
pub struct WipeBox<T>(Box<MaybeUninit<T>>);

impl<T> WipeBox<T> {
    /// Move `value` to the heap. The stack copy it came from is not this type's to wipe.
    pub fn new(value: T) -> Self {
        WipeBox(Box::new(MaybeUninit::new(value)))
    }
}

impl<T> Deref for WipeBox<T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: initialised by `new` and only de-initialised in `drop` (the invariant).
        unsafe { self.0.assume_init_ref() }
    }
}

impl<T> DerefMut for WipeBox<T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `deref`; `&mut self` makes the access exclusive.
        unsafe { self.0.assume_init_mut() }
    }
}

impl<T> Drop for WipeBox<T> {
    fn drop(&mut self) {
        // SAFETY: the value is initialised (the invariant) and dropped exactly once, here;
        // afterwards only `zeroize` (which writes, never reads it as `T`) and the `Box`'s
        // deallocation (which does not drop a `MaybeUninit`'s contents) touch the memory.
        unsafe { self.0.assume_init_drop() };
        // Volatile writes of zero over every byte, padding and union tails included.
        self.0.zeroize();
    }
}

impl<T: fmt::Debug> fmt::Debug for WipeBox<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::WipeBox;
    use core::sync::atomic::{AtomicUsize, Ordering};

    static DROPS: AtomicUsize = AtomicUsize::new(0);

    struct Counted([u8; 32]);
    impl Drop for Counted {
        fn drop(&mut self) {
            DROPS.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn drops_the_value_once_and_gives_access() {
        let mut b = WipeBox::new(Counted([7; 32]));
        let inner: &mut Counted = &mut b;
        inner.0[0] = 9;
        assert_eq!(((*b).0[0], (*b).0[31]), (9, 7));
        drop(b);
        assert_eq!(DROPS.load(Ordering::SeqCst), 1);
    }
}
