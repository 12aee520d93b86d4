//! The SPI index: open addressing with linear probing over 64-bit entries, read without
//! locks. An entry is `spi << 32 | out << 31 | (slot + 1)`; 0 is empty; a tombstone keeps
//! probe chains intact after a delete. The destination is not in the entry but in the slot
//! header it names: a key that includes it (every outbound SA's, and an inbound SA's when
//! the region indexes by SPI and destination) walks the chain comparing it, so entries
//! with one SPI and different destinations share a chain. Readers stop at an empty entry or after
//! `MAX_PROBE` entries, so an unknown SPI costs a bounded number of probes.
//!
//! Writers insert into the first tombstone or empty entry of the chain (after checking the
//! whole chain for a duplicate) and publish with a Release store, after the slot it names
//! is fully written. When tombstones pass an eighth of the table, the writer rebuilds the
//! index into the other bank and flips `active_index`; the old bank is rewritten only after
//! a grace period.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::layout::MAX_PROBE;
use crate::region::Region;

pub(crate) const EMPTY: u64 = 0;
const SLOT_MASK: u64 = 0x7fff_ffff;
const OUT_BIT: u64 = 1 << 31;
/// Low bits of a tombstone: a slot number no table reaches.
const TOMB_LOW: u64 = SLOT_MASK;

#[inline]
pub(crate) fn entry(spi: u32, out: bool, slot: u32) -> u64 {
    (u64::from(spi) << 32) | if out { OUT_BIT } else { 0 } | (u64::from(slot) + 1)
}

#[inline]
pub(crate) fn is_tombstone(e: u64) -> bool {
    e & SLOT_MASK == TOMB_LOW
}

#[inline]
pub(crate) fn tombstone(e: u64) -> u64 {
    (e & !SLOT_MASK) | TOMB_LOW
}

/// Slot named by a live entry. A corrupted entry with a zero slot field names
/// `u32::MAX`, which no table reaches (callers check the slot against the capacity).
#[inline]
pub(crate) fn entry_slot(e: u64) -> u32 {
    (e & SLOT_MASK).wrapping_sub(1) as u32
}

#[inline]
fn entry_matches(e: u64, spi: u32, out: bool) -> bool {
    e != EMPTY && !is_tombstone(e) && (e >> 32) as u32 == spi && ((e & OUT_BIT) != 0) == out
}

/// Start of the probe chain for an SPI. The seed is random per region, so a peer choosing
/// SPIs (or probing with unknown ones) cannot aim at one chain.
#[inline]
pub(crate) fn home(seed: u64, spi: u32, out: bool, mask: usize) -> usize {
    let k = (u64::from(spi) | (u64::from(out) << 32)) ^ seed;
    (k.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 32) as usize & mask
}

impl Region {
    /// Whether `slot` is in the table and, when `dst` is given, holds that destination.
    /// A corrupted entry naming a slot past the table matches nothing.
    fn dst_matches(&self, slot: u32, dst: Option<&[u8; 16]>) -> bool {
        if slot >= self.caps.sas {
            return false;
        }
        match dst {
            None => true,
            Some(d) => {
                let h = self.slot_hdr(slot);
                let (hi, lo) = dst_words(d);
                h.dst[0].load(Ordering::Relaxed) == hi && h.dst[1].load(Ordering::Relaxed) == lo
            }
        }
    }

    /// Reader-side lookup in the active bank. `dst` is given when the region indexes by
    /// SPI and destination.
    #[inline]
    pub(crate) fn index_find(&self, spi: u32, out: bool, dst: Option<&[u8; 16]>) -> Option<u32> {
        let bank = self.hdr().active_index.load(Ordering::Acquire);
        let idx = self.index(bank);
        // A corrupted entry naming a slot past the table is a miss, not a panic.
        self.probe_from(idx, home(self.seed, spi, out, idx.len() - 1), spi, out, dst)
    }

    /// Reader-side lookup of a burst: hashes every SPI and prefetches its chain head first,
    /// so the cache misses of a burst overlap instead of queueing one after another.
    #[inline]
    pub(crate) fn index_find_burst(&self, spis: &[u32], dsts: Option<&[[u8; 16]]>, out: &mut [Option<u32>]) {
        let bank = self.hdr().active_index.load(Ordering::Acquire);
        let idx = self.index(bank);
        let mask = idx.len() - 1;
        let mut homes = [0usize; 64];
        for (base, chunk) in spis.chunks(64).enumerate() {
            for (h, &spi) in homes.iter_mut().zip(chunk) {
                *h = home(self.seed, spi, false, mask);
                prefetch(&idx[*h]);
            }
            for (i, (&spi, &h)) in chunk.iter().zip(&homes).enumerate() {
                let k = base * 64 + i;
                let dst = if self.caps.spi_dst_index { dsts.and_then(|d| d.get(k)) } else { None };
                if let Some(o) = out.get_mut(k) {
                    *o = self.probe_from(idx, h, spi, false, dst);
                    // The caller reads the slot's header (version) and hot state next.
                    if let Some(s) = *o {
                        prefetch(self.slot_hdr(s));
                        prefetch(&self.hot(s).seq);
                    }
                }
            }
        }
    }

    #[inline]
    fn probe_from(
        &self,
        idx: &[AtomicU64],
        mut pos: usize,
        spi: u32,
        out: bool,
        dst: Option<&[u8; 16]>,
    ) -> Option<u32> {
        let mask = idx.len() - 1;
        for _ in 0..MAX_PROBE {
            let e = idx[pos].load(Ordering::Acquire);
            if e == EMPTY {
                return None;
            }
            if entry_matches(e, spi, out) {
                let slot = entry_slot(e);
                if self.dst_matches(slot, dst) {
                    return Some(slot);
                }
            }
            pos = (pos + 1) & mask;
        }
        None
    }

    /// Every live slot indexed under an SPI and direction (and `dst`, when given) in the
    /// active bank, in probe order. An outbound SPI is chosen by the peer, so several
    /// outbound SAs towards different peers may share one.
    pub(crate) fn index_find_all(&self, spi: u32, out: bool, dst: Option<&[u8; 16]>) -> Vec<u32> {
        let bank = self.hdr().active_index.load(Ordering::Acquire);
        self.index_positions(bank, spi, out, dst)
            .into_iter()
            .map(|pos| entry_slot(self.index(bank)[pos].load(Ordering::Acquire)))
            .collect()
    }

    /// The positions of every entry for a key in bank `bank` (at most `MAX_PROBE`).
    pub(crate) fn index_positions(
        &self,
        bank: u32,
        spi: u32,
        out: bool,
        dst: Option<&[u8; 16]>,
    ) -> Vec<usize> {
        let idx = self.index(bank);
        let mask = idx.len() - 1;
        let mut pos = home(self.seed, spi, out, mask);
        let mut found = Vec::new();
        for _ in 0..MAX_PROBE {
            let e = idx[pos].load(Ordering::Acquire);
            if e == EMPTY {
                break;
            }
            if entry_matches(e, spi, out) && self.dst_matches(entry_slot(e), dst) {
                found.push(pos);
            }
            pos = (pos + 1) & mask;
        }
        found
    }

    /// Writer: the position of the entry for a key in bank `bank`, if present.
    pub(crate) fn index_position(
        &self,
        bank: u32,
        spi: u32,
        out: bool,
        dst: Option<&[u8; 16]>,
    ) -> Option<usize> {
        let idx = self.index(bank);
        let mask = idx.len() - 1;
        let mut pos = home(self.seed, spi, out, mask);
        for _ in 0..MAX_PROBE {
            let e = idx[pos].load(Ordering::Relaxed);
            if e == EMPTY {
                return None;
            }
            if entry_matches(e, spi, out) && self.dst_matches(entry_slot(e), dst) {
                return Some(pos);
            }
            pos = (pos + 1) & mask;
        }
        None
    }

    /// Writer: inserts an entry into bank `bank` (the caller checked for duplicates).
    /// Returns whether a tombstone was reused, or `None` if the chain is too long.
    pub(crate) fn index_insert(&self, bank: u32, e: u64) -> Option<bool> {
        let idx = self.index(bank);
        let mask = idx.len() - 1;
        let spi = (e >> 32) as u32;
        let out = e & OUT_BIT != 0;
        let mut pos = home(self.seed, spi, out, mask);
        for _ in 0..MAX_PROBE {
            let cur = idx[pos].load(Ordering::Relaxed);
            if cur == EMPTY || is_tombstone(cur) {
                // Release: the slot's contents are visible before the entry naming it.
                idx[pos].store(e, Ordering::Release);
                return Some(cur != EMPTY);
            }
            pos = (pos + 1) & mask;
        }
        None
    }

    /// Writer: copies every live entry of the active bank into the other one (cleared
    /// first) and returns the new bank number. The caller flips and synchronises.
    pub(crate) fn index_rebuild(&self) -> Option<u32> {
        let active = self.hdr().active_index.load(Ordering::Relaxed);
        let next = active ^ 1;
        let (src, dst) = (self.index(active), self.index(next));
        for e in dst {
            e.store(EMPTY, Ordering::Relaxed);
        }
        for e in src {
            let v = e.load(Ordering::Relaxed);
            if v != EMPTY && !is_tombstone(v) {
                self.index_insert(next, v)?;
            }
        }
        Some(next)
    }

    /// Writer: turns the entry at `pos` of `bank` into a tombstone.
    pub(crate) fn index_remove_at(&self, bank: u32, pos: usize) {
        let slot: &AtomicU64 = &self.index(bank)[pos];
        let e = slot.load(Ordering::Relaxed);
        slot.store(tombstone(e), Ordering::Release);
    }
}

/// Hints the CPU to fetch the cache line holding `v`.
#[inline(always)]
fn prefetch<T>(v: &T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is only a hint: it never faults and has no visible effect, and
    // SSE is part of the x86-64 baseline.
    unsafe {
        core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>((v as *const T).cast::<i8>())
    };
    #[cfg(not(target_arch = "x86_64"))]
    let _ = v;
}

/// A 16-byte address as two big-endian words.
pub(crate) fn dst_words(d: &[u8; 16]) -> (u64, u64) {
    let mut hi = [0u8; 8];
    let mut lo = [0u8; 8];
    hi.copy_from_slice(&d[..8]);
    lo.copy_from_slice(&d[8..]);
    (u64::from_be_bytes(hi), u64::from_be_bytes(lo))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_encoding() {
        let e = entry(0xdead_beef, true, 12345);
        assert!(entry_matches(e, 0xdead_beef, true));
        assert!(!entry_matches(e, 0xdead_beef, false));
        assert!(!entry_matches(e, 0xdead_beee, true));
        assert_eq!(entry_slot(e), 12345);
        let t = tombstone(e);
        assert!(is_tombstone(t));
        assert!(!entry_matches(t, 0xdead_beef, true));
        assert_ne!(t, EMPTY);
        // A corrupted entry with a zero slot field names no slot of any table.
        assert_eq!(entry_slot(0xdead_beef_0000_0000), u32::MAX);
        // Slot 0 with SPI 0 inbound is not the empty entry.
        assert_ne!(entry(0, false, 0), EMPTY);
        assert!(!is_tombstone(entry(0, false, crate::layout::MAX_SAS - 1)));
    }
}
