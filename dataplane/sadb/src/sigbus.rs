//! A region file truncated under a running process: touching a page past the new end of
//! the file raises SIGBUS. By default that kills the process with no word of why; this
//! handler makes the death explicit instead, and keeps it a death (fail closed: no SA is
//! used from a shrunk file, and a worker that faults sends nothing more).
//!
//! Every mapped region registers its address range in a fixed table of atomics. The
//! handler, for a fault inside a registered range, writes one fixed line to stderr with
//! `write(2)` and leaves with `_exit(TRUNCATED_EXIT_STATUS)`; both are async-signal-safe,
//! and the handler takes no lock and allocates nothing. Any other SIGBUS is not ours: the
//! handler puts the previous action back (the default, or the one Rust's runtime installs)
//! and lets it run, so the process dies as it would have without us.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Once, OnceLock};

/// The exit status of a process that found its SA database file truncated (`EX_IOERR`),
/// by the SIGBUS handler or by a [`crate::Region::check_file`] caller.
pub const TRUNCATED_EXIT_STATUS: i32 = 74;

/// The line the handler writes.
pub const SIGBUS_MESSAGE: &str = "sadb: SIGBUS in the SA database mapping (file truncated?); exiting\n";

/// Regions mapped at once that the handler knows; a region past this many is still
/// usable, a fault in it just gets the default action.
const SLOTS: usize = 64;

static STARTS: [AtomicUsize; SLOTS] = [const { AtomicUsize::new(0) }; SLOTS];
static ENDS: [AtomicUsize; SLOTS] = [const { AtomicUsize::new(0) }; SLOTS];
static INSTALL: Once = Once::new();
static PREVIOUS: OnceLock<libc::sigaction> = OnceLock::new();

/// A mapping's entry in the table, removed on drop.
#[derive(Debug)]
pub(crate) struct Registration(Option<usize>);

impl Registration {
    /// Registers `len` bytes from `start` and installs the handler (once per process).
    pub(crate) fn new(start: *const u8, len: usize) -> Self {
        install();
        let start = start as usize;
        for i in 0..SLOTS {
            if STARTS[i].compare_exchange(0, start, Ordering::AcqRel, Ordering::Relaxed).is_ok() {
                ENDS[i].store(start.saturating_add(len), Ordering::Release);
                return Registration(Some(i));
            }
        }
        Registration(None)
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        if let Some(i) = self.0 {
            ENDS[i].store(0, Ordering::Release);
            STARTS[i].store(0, Ordering::Release);
        }
    }
}

fn in_a_region(addr: usize) -> bool {
    (0..SLOTS).any(|i| {
        let start = STARTS[i].load(Ordering::Acquire);
        let end = ENDS[i].load(Ordering::Acquire);
        start != 0 && start <= addr && addr < end
    })
}

extern "C" fn on_sigbus(sig: libc::c_int, info: *mut libc::siginfo_t, _ctx: *mut libc::c_void) {
    let (addr, code) = if info.is_null() {
        (0, 0)
    } else {
        // SAFETY: the kernel passes a valid siginfo to an SA_SIGINFO handler; for SIGBUS
        // si_addr is the faulting address.
        unsafe { ((*info).si_addr() as usize, (*info).si_code) }
    };
    if code > 0 && in_a_region(addr) {
        // SAFETY: write(2) and _exit(2) are async-signal-safe; the buffer is a static.
        unsafe {
            libc::write(2, SIGBUS_MESSAGE.as_ptr().cast(), SIGBUS_MESSAGE.len());
            libc::_exit(TRUNCATED_EXIT_STATUS);
        }
    }
    // Not ours. A fault recurs when we return and reaches the previous action; a signal
    // sent by kill(2) does not recur, so it gets the default action, raised again and
    // delivered once we return.
    // SAFETY: sigaction(2), signal(2) and raise(3) are async-signal-safe; PREVIOUS is
    // written once, before this handler is installed.
    unsafe {
        match PREVIOUS.get() {
            Some(old) if code > 0 => {
                libc::sigaction(sig, old, std::ptr::null_mut());
            }
            _ => {
                libc::signal(sig, libc::SIG_DFL);
                libc::raise(sig);
            }
        }
    }
}

fn install() {
    INSTALL.call_once(|| {
        // SAFETY: a zeroed sigaction is a valid value to fill in; the handler has the
        // signature SA_SIGINFO requires. The current action is read first, so that
        // PREVIOUS is set before our handler is in place.
        unsafe {
            let mut old: libc::sigaction = std::mem::zeroed();
            if libc::sigaction(libc::SIGBUS, std::ptr::null(), &mut old) != 0 {
                return;
            }
            let _ = PREVIOUS.set(old);
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_sigbus as *const () as usize;
            sa.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(libc::SIGBUS, &sa, std::ptr::null_mut());
        }
    });
}

/// Ends the process at once with [`TRUNCATED_EXIT_STATUS`], as the handler does: no `atexit`
/// handler or destructor runs while other threads (a dataplane's workers) still use the
/// mapping. For a watcher that found the file shrunk; it has printed its line already.
pub fn exit_truncated() -> ! {
    // SAFETY: _exit(2) takes an integer and never returns; it touches no Rust state.
    unsafe { libc::_exit(TRUNCATED_EXIT_STATUS) }
}
