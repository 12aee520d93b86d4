//! The records of the region that change while both processes run. Every field is an
//! atomic, so concurrent access from the other process is never a data race; the
//! protocols that order those accesses (seqlock, QSBR, SPSC rings) are described where
//! they are used.

use std::sync::atomic::{AtomicU32, AtomicU64};

use crate::layout::{READER_COUNTERS, SA_DROP_COUNTERS};

/// The changing part of the header.
#[repr(C, align(64))]
#[derive(Debug)]
pub(crate) struct HeaderDyn {
    /// QSBR epoch: bumped by the writer after each unlink; readers record it.
    pub epoch: AtomicU64,
    /// Bumped after every committed write, so readers can notice changes cheaply.
    pub changes: AtomicU64,
    /// Which policy classifier bank readers use (0 or 1).
    pub active_bank: AtomicU32,
    /// Which SPI index readers use (0 or 1).
    pub active_index: AtomicU32,
    /// Live SAs.
    pub sa_live: AtomicU32,
    /// Live policies.
    pub policy_live: AtomicU32,
    /// Entries on the free-slot stack.
    pub free_top: AtomicU32,
    /// Retired-slot FIFO: next to reclaim, next to fill (monotonic, modulo capacity).
    pub retired_head: AtomicU32,
    pub retired_tail: AtomicU32,
    /// Tombstones in the active SPI index.
    pub tombstones: AtomicU32,
    /// Process that last held the writer lock.
    pub writer_pid: AtomicU32,
    /// Installs refused because the SA table was full.
    pub sa_full: AtomicU32,
    /// Seconds since the Unix epoch when the region was created.
    pub created_unix: AtomicU64,
    /// Epoch after which the inactive SPI index may be rewritten (the last flip's grace).
    pub index_flip_epoch: AtomicU64,
    /// Epoch after which the inactive policy bank may be rewritten.
    pub bank_flip_epoch: AtomicU64,
    /// SAs installed since the region was created: the next SA's install order.
    pub installs: AtomicU64,
}

/// Reader slot states.
pub(crate) const READER_FREE: u32 = 0;
pub(crate) const READER_ACTIVE: u32 = 1;
/// `seen` of a reader that holds no reference into the tables.
pub(crate) const OFFLINE: u64 = u64::MAX;

/// One dataplane reader (an lcore).
#[repr(C, align(64))]
#[derive(Debug)]
pub(crate) struct ReaderSlot {
    pub state: AtomicU32,
    pub pid: AtomicU32,
    /// The reader's own id (its lcore), for display.
    pub lcore: AtomicU32,
    pub _pad: AtomicU32,
    /// Epoch observed at the last quiescent point, or `OFFLINE`.
    pub seen: AtomicU64,
    /// Quiescent points passed (bursts).
    pub passes: AtomicU64,
    /// Counters owned by this reader (per-lcore statistics); written by it only.
    pub counters: [AtomicU64; READER_COUNTERS],
}

/// Header of one reader's event ring (single producer: the reader; single consumer: the
/// writer-lock holder).
#[repr(C)]
#[derive(Debug)]
pub(crate) struct RingHdr {
    pub head: AtomicU64,
    _pad0: [u64; 7],
    pub tail: AtomicU64,
    _pad1: [u64; 7],
    pub dropped: AtomicU64,
    _pad2: [u64; 7],
}

/// SA slot states.
pub(crate) const SLOT_FREE: u32 = 0;
pub(crate) const SLOT_LIVE: u32 = 1;
pub(crate) const SLOT_RETIRED: u32 = 2;

/// The header of an SA slot.
#[repr(C, align(64))]
#[derive(Debug)]
pub(crate) struct SlotHdr {
    /// Seqlock over the configuration: odd while the writer changes it. Its even values
    /// also version the configuration, so a reader's cached crypto context is rebuilt when
    /// it changes.
    pub seq: AtomicU32,
    pub state: AtomicU32,
    pub spi: AtomicU32,
    pub direction: AtomicU32,
    /// Epoch after which the slot may be reused (RETIRED only).
    pub retire_epoch: AtomicU64,
    /// Destination address (for SPI + destination lookups), as two big-endian words.
    pub dst: [AtomicU64; 2],
    pub reqid: AtomicU32,
    /// Install order (the header's `installs` when the SA was added, from 1): of the live
    /// outbound SAs of a reqid, the highest is the newest, whatever its slot or second.
    pub installed: AtomicU64,
}

/// Hot state of an SA: written by the dataplane only (and reset by the writer before the
/// slot is published).
#[repr(C, align(64))]
#[derive(Debug)]
pub struct SaHot {
    /// Outbound: the last sequence number used (64-bit). Inbound: the highest sequence
    /// number accepted (the right edge of the replay window).
    pub seq: AtomicU64,
    /// Packets processed.
    pub packets: AtomicU64,
    /// Bytes processed (inner payload).
    pub bytes: AtomicU64,
    /// `HOT_FLAG_*` bits (which lifetime events have fired).
    pub flags: AtomicU64,
    /// Unix seconds of the last packet (for idle detection).
    pub last_used: AtomicU64,
    /// Inbound: the reader (slot + 1) that owns the replay window; 0 when unclaimed.
    pub owner: AtomicU64,
    _pad: [u64; 2],
    /// Drops by the dataplane's reason code.
    pub drops: [AtomicU64; SA_DROP_COUNTERS],
}

/// Hot flag: the soft lifetime event was sent.
pub const HOT_FLAG_SOFT_FIRED: u64 = 1;
/// Hot flag: the hard lifetime was reached; the SA is no longer used.
pub const HOT_FLAG_HARD_FIRED: u64 = 2;
/// Hot flag: the sequence-number overflow warning was sent.
pub const HOT_FLAG_SEQ_WARNED: u64 = 4;

/// Policy slot states.
pub(crate) const POLICY_FREE: u32 = 0;
pub(crate) const POLICY_LIVE: u32 = 1;

/// The atomics line of a policy slot; the record follows it.
#[repr(C, align(64))]
#[derive(Debug)]
pub(crate) struct PolicyHdr {
    pub state: AtomicU32,
    /// The outbound SA slot bound to this policy (`NO_SLOT`: none yet).
    pub sa_slot: AtomicU32,
    pub reqid: AtomicU32,
    pub id: AtomicU32,
    /// TSC or nanoseconds of the last acquire sent, for rate limiting (dataplane).
    pub last_acquire: AtomicU64,
    /// Packets that matched (dataplane, approximate).
    pub hits: AtomicU64,
}

/// "No slot" in a u32 slot field.
pub const NO_SLOT: u32 = u32::MAX;

const _: () = assert!(std::mem::size_of::<HeaderDyn>() <= 256);
const _: () = assert!(std::mem::size_of::<ReaderSlot>() <= crate::layout::READER_SLOT_SIZE);
const _: () = assert!(std::mem::size_of::<SlotHdr>() == crate::layout::SLOT_HDR_SIZE);
const _: () = assert!(std::mem::size_of::<SaHot>() == crate::layout::HOT_FIXED_SIZE);
const _: () = assert!(std::mem::size_of::<RingHdr>() == 3 * 64);
const _: () = assert!(std::mem::size_of::<PolicyHdr>() == 64);
