//! The shared-memory SA database: the one contract between `iked` (control) and `espd`
//! (dataplane), as the kernel's xfrm state and policy tables are between strongSwan and
//! Linux.
//!
//! One file, `/run/espgw/sadb` by default (a tmpfs, or a hugetlbfs mount), mode 0600,
//! owned by the daemons' user, in a directory only that user may enter, mapped by both
//! processes ([`file`](mod@file) has the checks made before a file is used, [`sigbus`]
//! what happens when it is truncated under a running process):
//!
//! | section | written by | read by |
//! |---|---|---|
//! | header (magic, ABI version, capacities, epoch) | creator, writers | everyone |
//! | reader slots (QSBR epoch, per-lcore counters) | each dataplane lcore | writers, `espctl stats` |
//! | event rings, one per reader | that reader | the writer-lock holder |
//! | SA slots: seqlock header + configuration ([`SaConfig`]) | writers | readers (copy under seqlock) |
//! | SA hot state ([`SaHot`]: sequence number, replay window, counters) | the dataplane only | everyone |
//! | SPI index (open addressing, two banks) | writers | readers, lock-free |
//! | policies ([`PolicyConfig`]), the classifier's lengths tables and its two banks | writers | readers |
//!
//! **Concurrency.** Readers never lock. Writers are serialised by an `flock` on the file
//! (released by the kernel if the holder dies) plus a mutex inside the process. An SA's
//! configuration is changed under its seqlock, so a reader never uses a half-written one.
//! Structures that are rebuilt (the policy classifier when its pool or table runs out of
//! room, the SPI index when it fills with tombstones) are built in an inactive bank and
//! published by flipping an index; between rebuilds the classifier is changed in place,
//! copy-on-write per list, and its small lengths tables under seqlocks. Memory is reused only after every registered reader has passed a quiescent point
//! (QSBR): each lcore records the global epoch at the end of every burst; a slot retired
//! at epoch `e` is reused once every live reader has recorded `e` or later. A reader whose
//! process has died is found (`kill(pid, 0)`) and deregistered, so it never blocks
//! reclamation.
//!
//! **Versioning.** The header carries [`abi::MAGIC`], [`abi::ABI_VERSION`] and the size of
//! every record; attaching to anything else fails with a message that says what differs.
//! Offsets are computed from the capacities, never read from the file.
//!
//! **Restarts.** Everything lives in the file, so either process can die and re-attach.
//! Outbound sequence numbers are reserved directly in the region (an atomic add per burst),
//! so a restarted dataplane continues after the last number any lcore took: none is reused.
//!
//! **The modules**, from the file on disk to the reader's view. [`file`](mod@file) opens
//! the file (and the daemons' other secret-holding files) only if it is ours and private;
//! `region` maps it, writes or checks the header and hands out typed views of its sections,
//! and [`sigbus`] turns a truncation under a mapping into an explicit exit. What the views
//! show is declared in three places: `abi`, the fixed-size records both processes read (SA
//! and policy configurations, events, enumerations as `u8` codes); `layout`, where each
//! section sits, computed from the capacities alone; `shm`, the records that change while
//! both processes run, all atomics (header counters, reader slots, event rings, slot
//! headers, SA hot state). On those, `table` keeps the SA slots (install, update, delete,
//! reclaim), `index` the SPI index and `spd` the policies and their classifier.
//! Two handles use them: `writer`, the control plane's [`Writer`] (the writer lock, events
//! drained, readers listed), and `reader`, the dataplane's per-lcore [`Reader`] (lock-free
//! lookups, quiescent points, counters, events). [`counters`] names the readers' counters.
//!
//! **`unsafe`** is in this shared-memory code only, each block with its `// SAFETY:`:
//! `region` turns offsets of the mapping into references (the argument is stated once
//! there); the rest are system calls: `file` reads the effective uid, `sigbus` installs its
//! handler and, inside it, reads the fault address and exits or hands the signal back,
//! `index` issues a prefetch, `reader` probes a process with `kill(pid, 0)`.

mod abi;
pub mod counters;
pub mod file;
mod index;
mod layout;
mod reader;
mod region;
mod shm;
pub mod sigbus;
mod spd;
mod table;
mod writer;

use std::path::PathBuf;

pub use abi::*;
pub use layout::{Capacities, MAX_REPLAY_WINDOW, MAX_SAS, READER_COUNTERS, SA_DROP_COUNTERS};
pub use reader::{Flow, PolicyMatch, Reader, SeqError};
pub use region::Region;
pub use shm::{SaHot, HOT_FLAG_HARD_FIRED, HOT_FLAG_SEQ_WARNED, HOT_FLAG_SOFT_FIRED, NO_SLOT};
pub use table::{SaEntry, SaKey, SaStats};
pub use writer::{PolicyEntry, ReaderInfo, ReaderRecord, Writer};

/// Default path of the region, in the private directory [`file::DEFAULT_DIR`].
pub const DEFAULT_PATH: &str = "/run/espgw/sadb";
pub use sigbus::TRUNCATED_EXIT_STATUS;

/// Everything that can go wrong with a region; the message names the file and the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SadbError {
    /// A system call on the region file failed.
    Io {
        /// The region file.
        path: PathBuf,
        /// What we tried.
        op: &'static str,
        /// The system's message.
        err: String,
    },
    /// `create` found a file already there.
    Exists {
        /// The region file.
        path: PathBuf,
    },
    /// The file at the path may not be trusted: not a regular file, another owner, or a
    /// mode that lets group or others in.
    UnsafeFile {
        /// The file.
        path: PathBuf,
        /// What it should be ("the SA database", "the lock file").
        what: &'static str,
        /// What it is: its kind, owner and mode.
        reason: String,
        /// Our effective uid, the owner it must have.
        euid: u32,
    },
    /// The directory that must be private is not.
    UnsafeDir {
        /// The directory.
        path: PathBuf,
        /// What it should be.
        what: &'static str,
        /// What it is: its kind, owner and mode.
        reason: String,
        /// Our effective uid, the owner it must have.
        euid: u32,
    },
    /// The region file became shorter than the mapped region while in use.
    Shrunk {
        /// The region file.
        path: PathBuf,
        /// Its size now.
        size: u64,
        /// The size of the region.
        expected: u64,
    },
    /// The file is not an SA database (no magic).
    NotARegion {
        /// The region file.
        path: PathBuf,
    },
    /// The file is an SA database of another ABI version.
    AbiMismatch {
        /// The region file.
        path: PathBuf,
        /// Its version.
        found: u32,
        /// Ours.
        expected: u32,
    },
    /// A record size differs from ours (built from other sources).
    LayoutMismatch {
        /// The region file.
        path: PathBuf,
        /// Which size.
        what: &'static str,
        /// In the file.
        found: u32,
        /// Ours.
        expected: u32,
    },
    /// The file is shorter than its header says.
    Truncated {
        /// The region file.
        path: PathBuf,
        /// Its size.
        size: u64,
        /// The size its capacities need.
        expected: u64,
    },
    /// The header holds impossible values.
    Corrupt {
        /// The region file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A capacity asked for at creation is out of range.
    Capacity {
        /// Which.
        what: &'static str,
        /// Why.
        reason: String,
    },
    /// A table is full.
    Full {
        /// Which table.
        what: &'static str,
    },
    /// An SA with this key exists already.
    Duplicate {
        /// The key.
        key: SaKey,
    },
    /// No SA with this key.
    NotFound {
        /// The key.
        key: SaKey,
    },
    /// No policy with this id.
    NoPolicy {
        /// The id.
        id: u32,
    },
    /// A policy with this id exists already.
    DuplicatePolicy {
        /// The id.
        id: u32,
    },
    /// An SA or policy record is inconsistent.
    Invalid {
        /// The field.
        field: &'static str,
        /// Why.
        reason: String,
    },
    /// A dataplane reader did not pass a quiescent point in time.
    GraceTimeout {
        /// Its process.
        pid: u32,
        /// Its lcore.
        lcore: u32,
    },
}

impl std::fmt::Display for SadbError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use SadbError::*;
        match self {
            Io { path, op, err } => write!(f, "{}: {op} failed: {err}", path.display()),
            Exists { path } => write!(f, "{}: already exists", path.display()),
            UnsafeFile { path, what, reason, euid } => write!(
                f,
                "refusing {}: {reason}; {what} must be a regular file owned by uid {euid} with mode 0600",
                path.display()
            ),
            UnsafeDir { path, what, reason, euid } => write!(
                f,
                "refusing {}: {reason}; {what} must be a directory owned by uid {euid} with mode 0700",
                path.display()
            ),
            Shrunk { path, size, expected } => write!(
                f,
                "{}: the SA database file shrank to {size} bytes under the mapped {expected} (truncated?)",
                path.display()
            ),
            NotARegion { path } => write!(f, "{}: not an espgw SA database (bad magic)", path.display()),
            AbiMismatch { path, found, expected } => write!(
                f,
                "{}: SA database ABI version {found}, this program speaks version {expected}; \
                 stop both daemons and remove the file, or run matching versions",
                path.display()
            ),
            LayoutMismatch { path, what, found, expected } => {
                write!(
                    f,
                    "{}: {what} is {found} bytes in the file, {expected} here (mismatched builds)",
                    path.display()
                )
            }
            Truncated { path, size, expected } => {
                write!(f, "{}: file is {size} bytes, its header needs {expected}", path.display())
            }
            Corrupt { path, reason } => write!(f, "{}: corrupt header: {reason}", path.display()),
            Capacity { what, reason } => write!(f, "capacity {what}: {reason}"),
            Full { what } => {
                // Which capacity to raise: they are fixed when the database is created.
                let knob = if what.starts_with("SA table") || what.starts_with("SPI index") {
                    "sas"
                } else {
                    "policies"
                };
                write!(
                    f,
                    "{what} is full: raise espd's [sadb] {knob} (or `espctl create --{knob}`) and recreate the \
                     database"
                )
            }
            Duplicate { key } => write!(f, "an SA with {key} exists already"),
            NotFound { key } => write!(f, "no SA with {key}"),
            NoPolicy { id } => write!(f, "no policy with id {id}"),
            DuplicatePolicy { id } => write!(f, "a policy with id {id} exists already"),
            Invalid { field, reason } => write!(f, "{field}: {reason}"),
            GraceTimeout { pid, lcore } => {
                write!(
                    f,
                    "dataplane reader (pid {pid}, lcore {lcore}) did not pass a quiescent point in time"
                )
            }
        }
    }
}

impl std::error::Error for SadbError {}
