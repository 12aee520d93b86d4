//! A per-lcore cache of policy lookups, in front of the SA database's SPD.
//!
//! Direct-mapped, keyed by the flow's fields and direction, and stamped with the region's
//! `changes` counter, which every committed write (policy, SA, binding) moves: the worker reads
//! the counter once per burst, and an entry stamped with another value is a miss. A slot's
//! reuse is always preceded by a move of the counter that a reader has seen by its next
//! quiescent point (`sadb`'s retire bumps it before the epoch), so a cached SA slot is never
//! used after the writer could have given it to another SA. Hostile traffic can only make
//! every lookup a miss, which costs what the SPD costs without the cache.

use std::hash::{BuildHasher, RandomState};

use sadb::{Direction, Flow, PolicyMatch};

/// Entries (a power of two): 4,096 × 80 bytes, within L2.
pub const FLOW_CACHE_ENTRIES: usize = 4096;

#[derive(Debug, Clone, Copy, Default)]
struct Entry {
    flow: Flow,
    out: bool,
    /// The `changes` value + 1 it was looked up at (0: empty).
    stamp: u64,
    hit: Option<PolicyMatch>,
}

/// One lcore's flow cache.
#[derive(Debug)]
pub struct FlowCache {
    entries: Box<[Entry]>,
    seed: u64,
    stamp: u64,
    /// Lookups answered from the cache.
    pub hits: u64,
    /// Lookups that went to the SPD.
    pub misses: u64,
}

impl Default for FlowCache {
    fn default() -> Self {
        Self::new()
    }
}

impl FlowCache {
    /// An empty cache of [`FLOW_CACHE_ENTRIES`] entries (allocates; call at start-up), with a
    /// per-process hash seed, so that senders cannot aim flows at one entry from outside.
    pub fn new() -> FlowCache {
        Self::with_seed(RandomState::new().hash_one(0x666c_6f77_u64))
    }

    fn with_seed(seed: u64) -> FlowCache {
        FlowCache {
            entries: vec![Entry::default(); FLOW_CACHE_ENTRIES].into_boxed_slice(),
            seed,
            stamp: 1,
            hits: 0,
            misses: 0,
        }
    }

    /// Starts a burst at the region's `changes` value: entries of another value are stale.
    #[inline]
    pub fn begin_burst(&mut self, changes: u64) {
        self.stamp = changes.wrapping_add(1).max(1);
    }

    fn index(&self, flow: &Flow, out: bool) -> usize {
        let w = |b: &[u8; 16], i: usize| {
            let mut x = [0u8; 8];
            x.copy_from_slice(b.get(i..i + 8).unwrap_or(&[0; 8]));
            u64::from_ne_bytes(x)
        };
        let ports = (u64::from(flow.sport) << 16) | u64::from(flow.dport);
        let misc = (u64::from(flow.proto) << 40) | (u64::from(flow.family) << 48) | (u64::from(out) << 56);
        // Three independent products (they run in parallel), folded, then multiply-shift: the
        // top bits of the last product depend on every input bit.
        let a = (w(&flow.src, 0) ^ w(&flow.src, 8).rotate_left(29) ^ self.seed)
            .wrapping_mul(0x9e37_79b9_7f4a_7c15);
        let b = (w(&flow.dst, 0) ^ w(&flow.dst, 8).rotate_left(13)).wrapping_mul(0xc2b2_ae3d_27d4_eb4f);
        let c = (ports | misc).wrapping_mul(0x1656_67b1_9e37_79f9);
        let h = a ^ b.rotate_left(21) ^ c.rotate_left(42);
        let bits = FLOW_CACHE_ENTRIES.trailing_zeros();
        (h.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> (64 - bits)) as usize
    }

    /// The policy `flow` matches in `direction`, from the cache or from `spd` (whose answer
    /// is cached, "no policy" included).
    #[inline]
    pub fn lookup(
        &mut self,
        direction: Direction,
        flow: &Flow,
        spd: impl FnOnce() -> Option<PolicyMatch>,
    ) -> Option<PolicyMatch> {
        let out = direction == Direction::Out;
        let i = self.index(flow, out);
        let stamp = self.stamp;
        match self.entries.get_mut(i) {
            Some(e) if e.stamp == stamp && e.out == out && e.flow == *flow => {
                self.hits += 1;
                e.hit
            }
            Some(e) => {
                self.misses += 1;
                let hit = spd();
                *e = Entry { flow: *flow, out, stamp, hit };
                hit
            }
            None => spd(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sadb::Action;

    fn flow(n: u8) -> Flow {
        let mut f = Flow { family: 4, proto: 17, sport: 1000, dport: 2000, ..Flow::default() };
        f.src[..4].copy_from_slice(&[198, 18, 1, n]);
        f.dst[..4].copy_from_slice(&[198, 19, 1, 1]);
        f
    }

    fn pm(slot: u32) -> PolicyMatch {
        PolicyMatch { slot, id: slot + 1, action: Action::Protect, reqid: 7, sa_slot: Some(slot * 2) }
    }

    #[test]
    fn hits_until_the_database_changes() {
        // A fixed seed: the flows below must not share an entry for the hit counts to hold.
        let mut c = FlowCache::with_seed(0x5eed);
        c.begin_burst(5);
        let mut asked = 0;
        for _ in 0..3 {
            let r = c.lookup(Direction::Out, &flow(1), || {
                asked += 1;
                Some(pm(3))
            });
            assert_eq!(r, Some(pm(3)));
        }
        assert_eq!((asked, c.hits, c.misses), (1, 2, 1));
        // Another direction, another flow: their own entries, "no policy" cached too.
        assert_eq!(c.lookup(Direction::In, &flow(1), || None), None);
        assert_eq!(c.lookup(Direction::In, &flow(1), || Some(pm(9))), None);
        assert_eq!(c.lookup(Direction::Out, &flow(2), || Some(pm(4))), Some(pm(4)));
        assert_eq!(c.lookup(Direction::Out, &flow(1), || unreachable!()), Some(pm(3)));
        // Any committed write: every entry is stale.
        c.begin_burst(6);
        assert_eq!(c.lookup(Direction::Out, &flow(1), || Some(pm(8))), Some(pm(8)));
        assert_eq!(c.lookup(Direction::In, &flow(1), || Some(pm(9))), Some(pm(9)));
    }

    /// 4,096 flows that differ only in a source and a destination byte spread over the
    /// entries like random keys would (about 1 − 1/e of them used), whatever the seed.
    #[test]
    fn similar_flows_spread() {
        for seed in [0, 1, 0x5eed, u64::MAX] {
            let c = FlowCache::with_seed(seed);
            let mut used = std::collections::HashSet::new();
            for n in 0..=255u8 {
                for d in 0..16u8 {
                    let mut f = flow(n);
                    f.dst[3] = d;
                    used.insert(c.index(&f, true));
                }
            }
            assert!(used.len() > 2400, "seed {seed:#x}: {} of 4096 entries used", used.len());
        }
    }

    /// Flows that share an entry replace each other and are never confused.
    #[test]
    fn collisions_never_mix_flows() {
        let mut c = FlowCache::new();
        c.begin_burst(0);
        for round in 0..3 {
            for n in 0..=255u8 {
                let want = Some(pm(u32::from(n)));
                let got = c.lookup(Direction::Out, &flow(n), || want);
                assert_eq!(got, want, "round {round} flow {n}");
            }
        }
        let mut v6 = flow(1);
        v6.family = 6;
        assert_eq!(c.lookup(Direction::Out, &v6, || None), None, "same bytes, other family");
    }
}
