//! Where everything sits in the region, derived from the capacities alone. Offsets are
//! never read from the file: both processes compute them from the (validated) capacities
//! in the header, so a corrupted header cannot point a reader outside the mapping.

use std::mem::size_of;

use crate::abi::{Event, PolicyConfig, SaConfig};
use crate::SadbError;

/// Sizes fixed when a region is created.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capacities {
    /// SA slots (default 65,536; up to 16,777,216).
    pub sas: u32,
    /// Policy slots (default 4,096).
    pub policies: u32,
    /// Dataplane readers (lcores) that can register (default 64).
    pub readers: u32,
    /// Events per reader ring, a power of two (default 1,024).
    pub event_ring: u32,
    /// Largest anti-replay window an SA may ask for, in packets (default 1,024; a multiple
    /// of 64, at most 65,536).
    pub max_replay_window: u32,
    /// Inbound SAs are found by SPI and destination address (RFC 4301 §4.1), not SPI alone.
    /// (Outbound SAs are always keyed by SPI and destination.)
    pub spi_dst_index: bool,
}

impl Default for Capacities {
    fn default() -> Self {
        Self {
            sas: 65_536,
            policies: 32_768,
            readers: 64,
            event_ring: 1_024,
            max_replay_window: 1_024,
            spi_dst_index: false,
        }
    }
}

pub(crate) const CACHE_LINE: usize = 64;
/// The header page: static part at 0, dynamic (atomic) part at `HEADER_DYN_OFFSET`.
pub(crate) const HEADER_SIZE: usize = 4096;
pub(crate) const HEADER_DYN_OFFSET: usize = 256;
/// Reader slot: registration, epoch, counters.
pub(crate) const READER_SLOT_SIZE: usize = 1024;
/// SA slot header: seqlock, state, SPI, destination, retire epoch.
pub(crate) const SLOT_HDR_SIZE: usize = 64;
/// Words of an SA configuration record.
pub(crate) const SA_CFG_WORDS: usize = size_of::<SaConfig>() / 8;
/// Words of a policy record.
pub(crate) const POLICY_CFG_WORDS: usize = size_of::<PolicyConfig>() / 8;
/// Policy slot: atomics line plus the record.
pub(crate) const POLICY_SLOT_SIZE: usize = CACHE_LINE + round_up(size_of::<PolicyConfig>(), CACHE_LINE);
/// Per-SA hot state before the replay bitmap: a line of counters, two lines of drops.
pub(crate) const HOT_FIXED_SIZE: usize = 3 * CACHE_LINE;
/// Per-SA drop counters, indexed by the dataplane's drop reason code.
pub const SA_DROP_COUNTERS: usize = 16;
/// Per-reader counters (indexes defined by the dataplane; see `ReaderCounters`).
pub const READER_COUNTERS: usize = 112;
/// Words of a candidate record: slot, action and protocol; rank; ports; spare.
pub(crate) const CAND_WORDS: usize = 4;
/// Words of a classifier hash entry (one cache line): value (list start and length),
/// classifier and prefix lengths, masked destination and source (two words each), spare.
pub(crate) const ENTRY_WORDS: usize = 8;
/// Pairs of prefix lengths one classifier can hold (every IPv4 pair; IPv6 sets with more
/// distinct pairs are refused).
pub(crate) const MAX_LENGTHS: usize = 33 * 33;
/// Words of a classifier's lengths table: seqlock, count, then (best rank, lengths) pairs.
pub(crate) const LENGTHS_WORDS: usize = 2 + 2 * MAX_LENGTHS;
/// Longest linear probe of the SPI index.
pub(crate) const MAX_PROBE: usize = 32;
/// Largest SA capacity.
pub const MAX_SAS: u32 = 1 << 24;

pub(crate) const fn round_up(v: usize, to: usize) -> usize {
    v.div_ceil(to) * to
}

/// Offsets of the sections and per-item strides, all multiples of 64.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Layout {
    pub readers: usize,
    pub rings: usize,
    pub ring_stride: usize,
    pub slot_hdrs: usize,
    pub configs: usize,
    pub config_stride: usize,
    pub hot: usize,
    pub hot_stride: usize,
    pub replay_words: usize,
    pub free_stack: usize,
    pub retired: usize,
    pub index: [usize; 2],
    pub index_len: usize,
    pub policies: usize,
    /// The four classifiers' lengths tables.
    pub lengths: usize,
    pub banks: [usize; 2],
    pub bank: BankLayout,
    pub total: usize,
}

/// Offsets inside one policy bank (relative to the bank's start): the classifier's hash
/// table and its candidate pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BankLayout {
    /// Hash entries (a power of two, at least twice the policies, so the load stays under
    /// three quarters with every policy under its own destination prefix).
    pub entries: usize,
    pub table: usize,
    /// Candidate records: every live list in a block of the next power of two, plus room
    /// for lists replaced but not yet reusable.
    pub cands_cap: usize,
    pub cands: usize,
    pub size: usize,
}

/// The largest anti-replay window an SA may have: the ESP engine's (2^20 packets). Every SA
/// slot's hot state holds a bitmap for the region's `max_replay_window` (256 KiB at this
/// size), so a region sized for it is large; /dev/shm and hugetlbfs allocate only the pages
/// installed SAs touch.
pub const MAX_REPLAY_WINDOW: u32 = 1 << 20;

/// Words of the replay bitmap for a largest window of `w` packets: RFC 6479 keeps one
/// spare 64-bit block beyond the window, and a power of two of blocks so that the block
/// index is a mask.
pub(crate) fn replay_words_for(w: u32) -> usize {
    (w as usize / 64 + 1).next_power_of_two()
}

struct Cursor(usize);
impl Cursor {
    fn take(&mut self, bytes: usize) -> Result<usize, SadbError> {
        let at = self.0;
        self.0 = at
            .checked_add(round_up(bytes, CACHE_LINE))
            .ok_or(SadbError::Capacity { what: "region size", reason: "overflows".into() })?;
        Ok(at)
    }
}

fn mul(a: usize, b: usize) -> Result<usize, SadbError> {
    a.checked_mul(b).ok_or(SadbError::Capacity { what: "region size", reason: "overflows".into() })
}

impl Layout {
    pub(crate) fn new(c: &Capacities) -> Result<Layout, SadbError> {
        let bad = |what: &'static str, reason: String| Err(SadbError::Capacity { what, reason });
        if c.sas == 0 || c.sas > MAX_SAS {
            return bad("sas", format!("{} is outside 1..={MAX_SAS}", c.sas));
        }
        if c.policies == 0 || c.policies > 1 << 20 {
            return bad("policies", format!("{} is outside 1..=1048576", c.policies));
        }
        if c.readers == 0 || c.readers > 1024 {
            return bad("readers", format!("{} is outside 1..=1024", c.readers));
        }
        if !c.event_ring.is_power_of_two() || c.event_ring < 8 || c.event_ring > 1 << 16 {
            return bad("event_ring", format!("{} is not a power of two in 8..=65536", c.event_ring));
        }
        if c.max_replay_window == 0
            || !c.max_replay_window.is_multiple_of(64)
            || c.max_replay_window > MAX_REPLAY_WINDOW
        {
            return bad(
                "max_replay_window",
                format!("{} is not a multiple of 64 in 64..={MAX_REPLAY_WINDOW}", c.max_replay_window),
            );
        }
        let sas = c.sas as usize;
        let mut cur = Cursor(HEADER_SIZE);
        let readers = cur.take(mul(c.readers as usize, READER_SLOT_SIZE)?)?;
        let ring_stride = CACHE_LINE * 3 + mul(c.event_ring as usize, size_of::<Event>())?;
        let rings = cur.take(mul(c.readers as usize, ring_stride)?)?;
        let slot_hdrs = cur.take(mul(sas, SLOT_HDR_SIZE)?)?;
        let config_stride = round_up(size_of::<SaConfig>(), CACHE_LINE);
        let configs = cur.take(mul(sas, config_stride)?)?;
        let replay_words = replay_words_for(c.max_replay_window);
        let hot_stride = HOT_FIXED_SIZE + round_up(replay_words * 8, CACHE_LINE);
        let hot = cur.take(mul(sas, hot_stride)?)?;
        let free_stack = cur.take(mul(sas, 4)?)?;
        let retired = cur.take(mul(sas, 4)?)?;
        // Twice the SAs, so the load factor stays at or under one half.
        let index_len = (2 * sas).next_power_of_two();
        let index = [cur.take(mul(index_len, 8)?)?, cur.take(mul(index_len, 8)?)?];
        let policies = cur.take(mul(c.policies as usize, POLICY_SLOT_SIZE)?)?;
        let lengths = cur.take(4 * LENGTHS_WORDS * 8)?;
        let bank = BankLayout::new(c.policies as usize)?;
        let banks = [cur.take(bank.size)?, cur.take(bank.size)?];
        // Whole 2 MiB pages, so the same file works on hugetlbfs.
        let total = round_up(cur.0, 2 << 20);
        Ok(Layout {
            readers,
            rings,
            ring_stride,
            slot_hdrs,
            configs,
            config_stride,
            hot,
            hot_stride,
            replay_words,
            free_stack,
            retired,
            index,
            index_len,
            policies,
            lengths,
            banks,
            bank,
            total,
        })
    }
}

impl BankLayout {
    fn new(policies: usize) -> Result<BankLayout, SadbError> {
        let entries = mul(policies, 2)?.next_power_of_two().max(64);
        let cands_cap = mul(policies, 4)? + 1024;
        let mut cur = Cursor(0);
        let table = cur.take(mul(entries, ENTRY_WORDS * 8)?)?;
        let cands = cur.take(mul(cands_cap, CAND_WORDS * 8)?)?;
        Ok(BankLayout { entries, table, cands_cap, cands, size: cur.0 })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_at_the_documented_capacities() {
        let l = Layout::new(&Capacities::default()).unwrap();
        assert_eq!(l.total % (2 << 20), 0);
        assert!(l.total < 160 << 20, "default region is {} MiB", l.total >> 20);
        let big = Layout::new(&Capacities { sas: 1 << 20, ..Capacities::default() }).unwrap();
        assert!(big.total < 2 << 30, "a million SAs fit in {} MiB", big.total >> 20);
        // What docs/sadb.md publishes: bytes per tunnel (an SA pair and its two policies),
        // the region's growth from 65,536 to 131,072 tunnels over the tunnels added.
        let at = |t: u32| {
            Layout::new(&Capacities { sas: 2 * t, policies: 2 * t, ..Capacities::default() }).unwrap()
        };
        let per_tunnel = (at(1 << 17).total - at(1 << 16).total) / (1 << 16);
        assert!((2_900..=3_100).contains(&per_tunnel), "{per_tunnel} bytes per tunnel");
        let bank = BankLayout::new(1 << 17).unwrap().size / (1 << 17);
        assert_eq!(bank, 256, "a policy bank takes {bank} bytes per policy");
        assert!(l.total < 96 << 20, "default region is {} MiB", l.total >> 20);
        assert_eq!(replay_words_for(64), 2);
        assert_eq!(replay_words_for(1024), 32);
        assert_eq!(replay_words_for(4096), 128);
        for bad in [
            Capacities { sas: 0, ..Capacities::default() },
            Capacities { sas: MAX_SAS + 1, ..Capacities::default() },
            Capacities { event_ring: 1000, ..Capacities::default() },
            Capacities { max_replay_window: 100, ..Capacities::default() },
            Capacities { readers: 0, ..Capacities::default() },
        ] {
            assert!(Layout::new(&bad).is_err(), "{bad:?}");
        }
    }
}
