//! The dataplane's handle: one per lcore. Lookups never lock. Call
//! [`Reader::quiescent`] at the end of every burst, when the lcore holds no slot number
//! or policy match from the tables any more: that is what lets writers reuse memory.

use std::sync::atomic::{fence, AtomicU64, Ordering};
use std::sync::Arc;

use crate::abi::{Action, Event, SaConfig};
use crate::layout::READER_COUNTERS;
use crate::region::{load_words, Region};
use crate::shm::{SaHot, OFFLINE, READER_ACTIVE, READER_FREE, SLOT_LIVE};
use crate::SadbError;

/// A registered dataplane reader (an lcore). Deregisters when dropped.
pub struct Reader {
    region: Arc<Region>,
    idx: u32,
}

impl std::fmt::Debug for Reader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reader").field("slot", &self.idx).finish()
    }
}

/// An outbound sequence number could not be reserved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeqError {
    /// The 32-bit (or 64-bit with ESN) space is used up: the SA must be rekeyed
    /// (RFC 4303 §3.3.3: the counter must not cycle).
    Overflow,
}

/// The fields of a packet that policies match on. IPv4 addresses sit in the first four
/// bytes; ports are 0 for protocols without them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Flow {
    /// 4 or 6.
    pub family: u8,
    /// Source address.
    pub src: [u8; 16],
    /// Destination address.
    pub dst: [u8; 16],
    /// IP protocol.
    pub proto: u8,
    /// Source port.
    pub sport: u16,
    /// Destination port.
    pub dport: u16,
}

/// The policy a flow matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PolicyMatch {
    /// Policy slot (for rate-limiting acquires, counters).
    pub slot: u32,
    /// The policy's id.
    pub id: u32,
    /// What to do.
    pub action: Action,
    /// The policy's reqid.
    pub reqid: u32,
    /// The outbound SA bound to it (Protect, outbound), if one is installed.
    pub sa_slot: Option<u32>,
}

pub(crate) fn pid_alive(pid: u32) -> bool {
    let Ok(pid) = i32::try_from(pid) else { return false };
    if pid <= 0 {
        return false;
    }
    // SAFETY: kill with signal 0 sends nothing; it only asks whether the process exists.
    let ret = unsafe { libc::kill(pid, 0) };
    ret == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

impl Region {
    /// Registers a dataplane reader for `lcore` (any id the caller uses for display). A
    /// slot left by a dead process is taken over.
    pub fn register_reader(self: &Arc<Self>, lcore: u32) -> Result<Reader, SadbError> {
        let me = std::process::id();
        let mut chosen = None;
        for i in 0..self.caps.readers {
            let s = self.reader_slot(i);
            if s.state
                .compare_exchange(READER_FREE, READER_ACTIVE, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
            {
                chosen = Some(i);
                break;
            }
        }
        if chosen.is_none() {
            for i in 0..self.caps.readers {
                let s = self.reader_slot(i);
                let pid = s.pid.load(Ordering::Relaxed);
                if !pid_alive(pid)
                    && s.pid.compare_exchange(pid, me, Ordering::AcqRel, Ordering::Relaxed).is_ok()
                {
                    chosen = Some(i);
                    break;
                }
            }
        }
        let idx = chosen.ok_or(SadbError::Full { what: "reader table" })?;
        let s = self.reader_slot(idx);
        s.pid.store(me, Ordering::Relaxed);
        s.lcore.store(lcore, Ordering::Relaxed);
        s.passes.store(0, Ordering::Relaxed);
        for c in &s.counters {
            c.store(0, Ordering::Relaxed);
        }
        let reader = Reader { region: self.clone(), idx };
        reader.online();
        Ok(reader)
    }
}

impl Reader {
    /// The region.
    pub fn region(&self) -> &Arc<Region> {
        &self.region
    }

    /// This reader's slot number (its event ring and counters).
    pub fn index(&self) -> u32 {
        self.idx
    }

    /// Marks the end of a burst: nothing looked up before this call is used after it.
    #[inline]
    pub fn quiescent(&self) {
        let r = &self.region;
        let s = r.reader_slot(self.idx);
        // Acquire on the epoch: having seen epoch e, later lookups see every unlink the
        // writer made before bumping to e, which is what the writer relies on.
        let e = r.hdr().epoch.load(Ordering::Acquire);
        s.seen.store(e, Ordering::Release);
        s.passes.store(s.passes.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
    }

    /// Stops holding references for a while (idle lcore): writers need not wait for it.
    pub fn offline(&self) {
        self.region.reader_slot(self.idx).seen.store(OFFLINE, Ordering::Release);
    }

    /// Resumes after [`Reader::offline`]. The fence pairs with the writer's: either the
    /// writer sees this reader's epoch and waits for it, or this reader sees the writer's
    /// unlink.
    pub fn online(&self) {
        let r = &self.region;
        let e = r.hdr().epoch.load(Ordering::Acquire);
        r.reader_slot(self.idx).seen.store(e, Ordering::SeqCst);
        fence(Ordering::SeqCst);
    }

    /// The inbound SA for an SPI (and destination, when the region indexes by both).
    #[inline]
    pub fn lookup_inbound(&self, spi: u32, dst: Option<&[u8; 16]>) -> Option<u32> {
        let dst = if self.region.caps.spi_dst_index { dst } else { None };
        self.region.index_find(spi, false, dst)
    }

    /// Looks up a burst of inbound SPIs at once: `out[i]` is the slot for `spis[i]`.
    /// `dsts` is used when the region indexes by SPI and destination.
    #[inline]
    pub fn lookup_burst(&self, spis: &[u32], dsts: Option<&[[u8; 16]]>, out: &mut [Option<u32>]) {
        self.region.index_find_burst(spis, dsts, out);
    }

    /// The configuration version of a slot: even and stable while the SA is unchanged, so
    /// a cached crypto context is reused as long as this value is the same.
    #[inline]
    pub fn sa_version(&self, slot: u32) -> u32 {
        self.region.slot_hdr(slot).seq.load(Ordering::Acquire)
    }

    /// A consistent copy of a live SA's configuration and its version, or `None` if the
    /// slot is not live or kept changing under us. The copy holds the keys: the caller wipes
    /// them ([`SaConfig::wipe_keys`]) when done.
    pub fn read_sa(&self, slot: u32) -> Option<(SaConfig, u32)> {
        if slot >= self.region.caps.sas {
            return None;
        }
        self.region.read_config(slot)
    }

    /// An SA's hot state (sequence numbers, counters).
    #[inline]
    pub fn hot(&self, slot: u32) -> &SaHot {
        self.region.hot(slot)
    }

    /// An SA's replay bitmap (RFC 6479 blocks; its size is fixed by the region).
    #[inline]
    pub fn replay_bitmap(&self, slot: u32) -> &[AtomicU64] {
        self.region.replay_bitmap(slot)
    }

    /// Reserves `n` consecutive outbound sequence numbers of an SA and returns the first.
    /// Numbers start at 1; without ESN they never pass 2^32 - 1 (the SA must be rekeyed).
    /// Safe to call from several lcores: each gets distinct numbers.
    #[inline]
    pub fn reserve_seq(&self, slot: u32, n: u32, esn: bool) -> Result<u64, SeqError> {
        let hot = self.region.hot(slot);
        let limit = if esn { u64::MAX } else { u64::from(u32::MAX) };
        let n = u64::from(n.max(1));
        // Check first, so that an exhausted counter stays where it is instead of running on.
        if hot.seq.load(Ordering::Relaxed) > limit - n {
            return Err(SeqError::Overflow);
        }
        let first = hot.seq.fetch_add(n, Ordering::Relaxed) + 1;
        // Another lcore may have reserved between the check and the add.
        match first.checked_add(n - 1) {
            Some(last) if last <= limit => Ok(first),
            _ => Err(SeqError::Overflow),
        }
    }

    /// Claims an inbound SA for this reader (value `me`, conventionally reader index + 1) so
    /// that one lcore alone updates its replay window. Returns the owner: `me` when the claim
    /// succeeded or was already ours, another reader's value otherwise.
    #[inline]
    pub fn claim_inbound(&self, slot: u32, me: u32) -> u32 {
        let o = &self.region.hot(slot).owner;
        // A plain load first: once claimed, an SA's owner stays, so the common case reads a
        // line it shares with nobody writing and never locks it.
        match o.load(Ordering::Acquire) {
            0 => {}
            cur => return u32::try_from(cur).unwrap_or(u32::MAX),
        }
        match o.compare_exchange(0, u64::from(me), Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => me,
            Err(cur) => u32::try_from(cur).unwrap_or(u32::MAX),
        }
    }

    /// Drops a stale claim (`owner` is gone), so the next claim can succeed.
    #[inline]
    pub fn release_inbound(&self, slot: u32, owner: u32) {
        let _ = self.region.hot(slot).owner.compare_exchange(
            u64::from(owner),
            0,
            Ordering::AcqRel,
            Ordering::Relaxed,
        );
    }

    /// Adds to an SA's packet and byte counters (any lcore).
    #[inline]
    pub fn count_sa(&self, slot: u32, packets: u64, bytes: u64) {
        let hot = self.region.hot(slot);
        hot.packets.fetch_add(packets, Ordering::Relaxed);
        hot.bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Adds to an SA's drop counter for `reason` (indexes past the array are ignored).
    #[inline]
    pub fn count_sa_drop(&self, slot: u32, reason: usize) {
        if let Some(c) = self.region.hot(slot).drops.get(reason) {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// This reader's own counters (statistics of the lcore); only this reader writes them.
    #[inline]
    pub fn counters(&self) -> &[AtomicU64; READER_COUNTERS] {
        &self.region.reader_slot(self.idx).counters
    }

    /// Adds `n` to this reader's counter `i` (single writer: no atomic read-modify-write).
    #[inline]
    pub fn count(&self, i: usize, n: u64) {
        if let Some(c) = self.counters().get(i) {
            c.store(c.load(Ordering::Relaxed) + n, Ordering::Relaxed);
        }
    }

    /// Sends an event to the control side; `false` (and a counted drop) if the ring is full.
    pub fn emit(&self, ev: &Event) -> bool {
        self.region.ring_push(self.idx, ev)
    }

    /// Whether to send an acquire for a policy now: at most one per `interval` of the
    /// caller's clock `now` (any monotonic unit), across all lcores.
    pub fn acquire_due(&self, policy_slot: u32, now: u64, interval: u64) -> bool {
        if policy_slot >= self.region.caps.policies {
            return false;
        }
        let h = self.region.policy_hdr(policy_slot);
        let last = h.last_acquire.load(Ordering::Relaxed);
        if last != 0 && now.saturating_sub(last) < interval {
            return false;
        }
        h.last_acquire.compare_exchange(last, now.max(1), Ordering::Relaxed, Ordering::Relaxed).is_ok()
    }

    /// The policy for a flow in a direction, if any matches.
    #[inline]
    pub fn lookup_policy(&self, direction: crate::abi::Direction, flow: &Flow) -> Option<PolicyMatch> {
        self.region.spd_lookup(direction, flow)
    }

    /// Whether a slot holds a live SA.
    #[inline]
    pub fn is_live(&self, slot: u32) -> bool {
        slot < self.region.caps.sas && self.region.slot_hdr(slot).state.load(Ordering::Acquire) == SLOT_LIVE
    }
}

impl Drop for Reader {
    fn drop(&mut self) {
        let s = self.region.reader_slot(self.idx);
        s.seen.store(OFFLINE, Ordering::Release);
        s.state.store(READER_FREE, Ordering::Release);
    }
}

impl Region {
    /// Seqlock read of a slot's configuration.
    pub(crate) fn read_config(&self, slot: u32) -> Option<(SaConfig, u32)> {
        let h = self.slot_hdr(slot);
        for _ in 0..64 {
            let s1 = h.seq.load(Ordering::Acquire);
            if s1 & 1 == 1 {
                std::hint::spin_loop();
                continue;
            }
            if h.state.load(Ordering::Acquire) != SLOT_LIVE {
                return None;
            }
            let mut cfg: SaConfig = load_words(self.config_words(slot));
            fence(Ordering::Acquire);
            if h.seq.load(Ordering::Relaxed) == s1 {
                return Some((cfg, s1));
            }
            // A torn copy: its keys (old, new or a mix) are wiped before trying again.
            cfg.wipe_keys();
        }
        None
    }

    pub(crate) fn ring_push(&self, i: u32, ev: &Event) -> bool {
        let rh = self.ring_hdr(i);
        let head = rh.head.load(Ordering::Relaxed);
        let tail = rh.tail.load(Ordering::Acquire);
        if head.wrapping_sub(tail) >= u64::from(self.caps.event_ring) {
            rh.dropped.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        crate::region::store_words(self.ring_event(i, head), ev);
        rh.head.store(head + 1, Ordering::Release);
        true
    }
}
