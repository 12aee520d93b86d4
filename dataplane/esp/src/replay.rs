//! Anti-replay window: RFC 6479 bucketed bitmap, RFC 4303 Appendix A ESN inference.
//!
//! The window tracks `top`, the highest sequence number (64-bit with ESN) whose ICV verified,
//! and a ring of `u64` buckets covering at least `size + 64` sequence numbers. Bit `s & 63` of
//! bucket `(s >> 6) & mask` stands for sequence number `s`. Moving `top` forward clears only the
//! buckets it passes (at most the whole ring), so both operations are O(1) (RFC 6479 §2).
//!
//! Use it in two steps, as RFC 4303 §3.4.3 demands:
//! 1. [`ReplayWindow::check`] before decryption: no side effects; it also reconstructs the
//!    64-bit sequence number whose high half enters the ICV input with ESN.
//! 2. [`ReplayWindow::update`] only after the ICV verified. It checks again, so two copies of
//!    one packet inside a burst (both passed step 1) do not both get through.

use crate::DropReason;

/// Smallest configurable window (RFC 4303 §3.4.3: "a minimum window size of 32 packets MUST
/// be supported").
pub const MIN_WINDOW: u32 = 32;
/// Largest configurable window.
pub const MAX_WINDOW: u32 = 1 << 20;

const BUCKET_BITS: u32 = 64;

/// Error building a window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvalidWindowSize(pub u32);

/// An anti-replay window for one inbound SA.
#[derive(Debug, Clone)]
pub struct ReplayWindow {
    /// Configured window size; 0 = checking disabled by the SA.
    size: u32,
    esn: bool,
    /// Highest authenticated sequence number, 0 before the first packet.
    top: u64,
    /// `buckets.len() - 1`; `buckets.len()` is a power of two.
    mask: u64,
    buckets: Box<[u64]>,
}

impl ReplayWindow {
    /// Loads the bits of the window's right edge, where new packets land, into the cache.
    #[inline]
    pub(crate) fn warm(&self) {
        #[allow(clippy::cast_possible_truncation)] // masked to an index of `buckets`
        let i = ((self.top >> 6) & self.mask) as usize;
        if let Some(b) = self.buckets.get(i) {
            warm::touch(b);
        }
    }

    /// A window of `size` packets (0 disables replay checking; otherwise
    /// `MIN_WINDOW..=MAX_WINDOW`), with 64-bit ESN inference when `esn` is set.
    pub fn new(size: u32, esn: bool) -> Result<Self, InvalidWindowSize> {
        if size != 0 && !(MIN_WINDOW..=MAX_WINDOW).contains(&size) {
            return Err(InvalidWindowSize(size));
        }
        // RFC 6479 §2: one bucket more than the window needs, rounded to a power of two.
        let n = (size.div_ceil(BUCKET_BITS) + 1).next_power_of_two() as usize;
        Ok(ReplayWindow {
            size,
            esn,
            top: 0,
            mask: (n as u64) - 1,
            buckets: vec![0u64; n].into_boxed_slice(),
        })
    }

    /// Configured size (0 = disabled).
    pub fn size(&self) -> u32 {
        self.size
    }

    /// Highest authenticated sequence number.
    pub fn top(&self) -> u64 {
        self.top
    }

    /// Restart a window at `top` with every number up to it marked as seen: what a receiver
    /// that lost its bitmap (a restarted dataplane) must assume so that no replay gets in.
    /// A few reordered packets left of `top` may be dropped; none is accepted twice.
    pub fn restore_all_seen(&mut self, top: u64) {
        self.top = top;
        self.buckets.iter_mut().for_each(|b| *b = u64::MAX);
    }

    /// Start a window at `top` (e.g. an SA migrated from another core), all older bits clear.
    pub fn set_top(&mut self, top: u64) {
        self.top = top;
        self.buckets.iter_mut().for_each(|b| *b = 0);
    }

    /// RFC 4303 Appendix A2.2: infer the high 32 bits of the sequence number from the low
    /// 32 bits received, the window top and the window size. `None` when the inferred number
    /// would lie before sequence number 0.
    fn infer(&self, seq_lo: u32) -> Option<u64> {
        if !self.esn {
            return Some(u64::from(seq_lo));
        }
        // A disabled window still needs a reference span to pick the high half; use half the
        // 32-bit space around `top`.
        let w = if self.size == 0 { 1u32 << 31 } else { self.size };
        // Splitting a u64 into halves.
        #[allow(clippy::cast_possible_truncation)]
        let (th, tl) = ((self.top >> 32) as u32, self.top as u32);
        let bottom = tl.wrapping_sub(w).wrapping_add(1);
        let seqh = if tl >= w - 1 {
            // Case A: the window lies within one 2^32 subspace.
            if seq_lo >= bottom {
                Some(th)
            } else {
                th.checked_add(1)
            }
        } else if seq_lo >= bottom {
            // Case B: the window spans two subspaces and seq is in the lower one.
            th.checked_sub(1)
        } else {
            Some(th)
        };
        seqh.map(|h| (u64::from(h) << 32) | u64::from(seq_lo))
    }

    fn bit(&self, seq: u64) -> (usize, u64) {
        // The index is masked to the bucket count, which came from a usize.
        #[allow(clippy::cast_possible_truncation)]
        let idx = ((seq >> 6) & self.mask) as usize;
        (idx, 1u64 << (seq & 63))
    }

    /// Pre-check the received low 32 bits, without side effects. Returns the full (64-bit
    /// with ESN) sequence number to use in the ICV and to pass to [`ReplayWindow::update`].
    #[inline]
    pub fn check(&self, seq_lo: u32) -> Result<u64, DropReason> {
        let seq = self.infer(seq_lo).ok_or(DropReason::Replay)?;
        if self.size == 0 {
            return Ok(seq);
        }
        self.check_full(seq).map(|()| seq)
    }

    #[inline]
    fn check_full(&self, seq: u64) -> Result<(), DropReason> {
        // RFC 4303 §3.3.3: the first packet sent has sequence number 1; 0 is never valid.
        if seq == 0 {
            return Err(DropReason::Replay);
        }
        if seq > self.top {
            return Ok(());
        }
        if self.top - seq >= u64::from(self.size) {
            return Err(DropReason::Replay);
        }
        let (i, m) = self.bit(seq);
        match self.buckets.get(i) {
            Some(b) if b & m == 0 => Ok(()),
            _ => Err(DropReason::Replay),
        }
    }

    /// Record `seq` (from [`ReplayWindow::check`]) after its ICV verified. Rejects it if it
    /// became a duplicate or too old since the check (another packet of the same burst).
    #[inline]
    pub fn update(&mut self, seq: u64) -> Result<(), DropReason> {
        if self.size == 0 {
            // Keep `top` for ESN inference even when checking is disabled.
            self.top = self.top.max(seq);
            return Ok(());
        }
        self.check_full(seq)?;
        if seq > self.top {
            let cur = self.top >> 6;
            let new = seq >> 6;
            let n = (new - cur).min(self.mask + 1);
            for k in 1..=n {
                #[allow(clippy::cast_possible_truncation)]
                let idx = ((cur + k) & self.mask) as usize;
                if let Some(b) = self.buckets.get_mut(idx) {
                    *b = 0;
                }
            }
            self.top = seq;
        }
        let (i, m) = self.bit(seq);
        if let Some(b) = self.buckets.get_mut(i) {
            *b |= m;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn restore_all_seen_rejects_everything_up_to_the_edge() {
        let mut w = ReplayWindow::new(64, false).unwrap();
        w.restore_all_seen(1000);
        assert_eq!(w.top(), 1000);
        for old in [1000u32, 999, 990, 937, 1] {
            assert_eq!(w.check(old), Err(DropReason::Replay), "{old} was possibly seen before the restart");
        }
        assert_eq!(w.check(1001), Ok(1001));
        w.update(1001).unwrap();
        assert_eq!(w.check(1001), Err(DropReason::Replay));
        assert_eq!(w.check(1003), Ok(1003));
    }

    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    /// Receive = check, then (as if the ICV passed) update.
    fn recv(w: &mut ReplayWindow, seq: u32) -> bool {
        match w.check(seq) {
            Ok(full) => w.update(full).is_ok(),
            Err(_) => false,
        }
    }

    /// WireGuard `counter.c`-style numbered table, window 64, 32-bit sequence numbers.
    #[test]
    fn numbered_table_window_64() {
        const MAX: u32 = u32::MAX;
        let table: &[(u32, bool)] = &[
            (0, false),        // 1: zero is never valid
            (1, true),         // 2
            (1, false),        // 3: duplicate
            (9, true),         // 4
            (8, true),         // 5: out of order, in window
            (7, true),         // 6
            (7, false),        // 7: duplicate
            (64, true),        // 8
            (1, false),        // 9: still in window, seen
            (2, true),         // 10: 64 - 2 = 62 < 64
            (65, true),        // 11
            (1, false),        // 12: 65 - 1 = 64, left of the window
            (2, false),        // 13: seen
            (3, true),         // 14: 65 - 3 = 62
            (200, true),       // 15: jump, clears passed buckets
            (136, false),      // 16: 200 - 136 = 64, too old
            (137, true),       // 17: 63, in window and bit was cleared by the jump
            (137, false),      // 18
            (199, true),       // 19
            (201, true),       // 20
            (200, false),      // 21
            (MAX, true),       // 22: far jump
            (MAX, false),      // 23
            (MAX - 63, true),  // 24: right edge of the window
            (MAX - 64, false), // 25: just left of it
            (201, false),      // 26: ancient
            (MAX - 1, true),   // 27
        ];
        let mut w = ReplayWindow::new(64, false).unwrap();
        for (n, &(seq, want)) in table.iter().enumerate() {
            assert_eq!(recv(&mut w, seq), want, "case {} (seq {seq})", n + 1);
        }
    }

    /// Window 4096: every slot in a full window, then far jumps across the bucket ring.
    #[test]
    fn big_window_and_jumps() {
        let mut w = ReplayWindow::new(4096, false).unwrap();
        for s in (1..=5000u32).rev() {
            // Descending: only the first 4096 below the top (5000) fit.
            assert_eq!(recv(&mut w, s), s > 5000 - 4096, "seq {s}");
        }
        for s in 905..=5000 {
            assert!(!recv(&mut w, s), "replayed {s}");
        }
        // Jump by less than the ring: bits in the surviving window remain.
        assert!(recv(&mut w, 6000));
        assert!(!recv(&mut w, 5000));
        assert!(recv(&mut w, 5500)); // never received
        assert!(!recv(&mut w, 1905)); // 6000 - 1905 = 4095: in window, received before
        assert!(!recv(&mut w, 1904)); // 4096: too old
                                      // Jump much further than the ring: all old bits gone, new ones free.
        assert!(recv(&mut w, 1_000_000));
        assert!(recv(&mut w, 1_000_000 - 4095));
        assert!(!recv(&mut w, 1_000_000 - 4096));
    }

    #[test]
    fn check_has_no_side_effects() {
        let mut w = ReplayWindow::new(32, false).unwrap();
        assert!(recv(&mut w, 10));
        let before = (w.top(), w.buckets.clone());
        for s in [0, 5, 10, 11, 1000] {
            let _ = w.check(s);
        }
        assert_eq!((w.top(), w.buckets.clone()), before);
        // Without update (bad ICV) the same sequence number is still acceptable.
        assert_eq!(w.check(1000), Ok(1000));
        assert_eq!(w.check(1000), Ok(1000));
    }

    #[test]
    fn burst_duplicate_caught_at_update() {
        let mut w = ReplayWindow::new(64, false).unwrap();
        let a = w.check(5).unwrap();
        let b = w.check(5).unwrap();
        assert!(w.update(a).is_ok());
        assert_eq!(w.update(b), Err(DropReason::Replay));
    }

    #[test]
    fn sizes() {
        for bad in [1, 31, MAX_WINDOW + 1] {
            assert_eq!(ReplayWindow::new(bad, false).unwrap_err(), InvalidWindowSize(bad));
        }
        for good in [0, 32, 64, 1024, 4096, 65536] {
            assert!(ReplayWindow::new(good, true).is_ok());
        }
    }

    #[test]
    fn disabled_window_accepts_replays_but_tracks_esn() {
        let mut w = ReplayWindow::new(0, true).unwrap();
        assert!(recv(&mut w, 5));
        assert!(recv(&mut w, 5));
        // Half the 32-bit space around top picks the high half.
        assert!(recv(&mut w, 0x7000_0000));
        assert!(recv(&mut w, 0xf000_0000));
        assert!(recv(&mut w, 3)); // wrapped: high half 1
        assert_eq!(w.top(), (1 << 32) | 3);
    }

    /// ESN per RFC 4303 Appendix A: wrap forward, stragglers from the previous subspace.
    #[test]
    fn esn_wrap() {
        let mut w = ReplayWindow::new(64, true).unwrap();
        w.set_top(0xffff_ff00);
        assert!(recv(&mut w, 0xffff_fff6));
        assert_eq!(w.top(), 0xffff_fff6);
        // Case A, seq below the window bottom -> next subspace.
        assert_eq!(w.check(5), Ok((1 << 32) | 5));
        assert!(recv(&mut w, 5));
        // Case B (Tl=5 < W-1): seq in the upper part -> previous subspace, in window.
        assert_eq!(w.check(0xffff_fff0), Ok(0xffff_fff0));
        assert!(recv(&mut w, 0xffff_fff0));
        assert!(!recv(&mut w, 0xffff_fff6)); // duplicate across the wrap
                                             // 2^32+5 - 0xffff_ffc6 = 63: the window's left edge, still in subspace 0.
        assert_eq!(w.check(0xffff_ffc6), Ok(0xffff_ffc6));
        // One lower lies below the window bottom, so App. A reads it as the next subspace.
        assert_eq!(w.check(0xffff_ffc5), Ok((1 << 32) | 0xffff_ffc5));
        assert!(recv(&mut w, 0)); // low half 0 is valid in subspace 1
        assert!(!recv(&mut w, 0));
        assert_eq!(w.top(), (1 << 32) | 5);
        // Before any packet, a "previous subspace" number does not exist.
        let w = ReplayWindow::new(64, true).unwrap();
        assert_eq!(w.check(0xffff_ffff), Err(DropReason::Replay));
        let mut w = ReplayWindow::new(64, true).unwrap();
        assert!(recv(&mut w, 10));
        // Tl=10 < 63: 0xffff_fff0 would be in subspace -1.
        assert_eq!(w.check(0xffff_fff0), Err(DropReason::Replay));
    }

    proptest! {
        /// The bucketed window agrees with a naive set-based model on any arrival sequence.
        #[test]
        fn matches_naive_model(
            size in prop_oneof![Just(32u32), Just(64), Just(100), Just(1024)],
            seqs in proptest::collection::vec(0u32..3000, 1..400),
        ) {
            let mut w = ReplayWindow::new(size, false).unwrap();
            let mut seen = BTreeSet::new();
            let mut top = 0u32;
            for s in seqs {
                let want = s != 0 && !seen.contains(&s) && (s > top || top - s < size);
                prop_assert_eq!(recv(&mut w, s), want, "seq {}", s);
                if want {
                    seen.insert(s);
                    top = top.max(s);
                }
            }
        }
    }
}
