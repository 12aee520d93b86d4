//! Security policies and their compiled classifier.
//!
//! Policies live in slots (the source of truth, listed by `espctl policy list`). After
//! every change the writer compiles them into the inactive one of two banks and flips
//! `active_bank`; a bank is rewritten only after a grace period, and a deleted policy's
//! slot is freed only after the flip that dropped it plus a grace period.
//!
//! The classifier, per direction and family, cuts the destination address space into the
//! elementary intervals that the policies' destination prefixes define. Each interval
//! holds the list of policies covering it, in priority order, as self-contained candidate
//! records (source range, protocol, ports, action), so a lookup is: find the interval
//! (for IPv4 a 65,537-entry table on the top 16 bits narrows it to a few boundaries;
//! IPv6 uses a binary search), then the first candidate whose other fields match. The cost
//! grows with the logarithm of the number of policies and the depth of nesting, not with
//! the number of policies.

use std::sync::atomic::Ordering;

use crate::abi::{Action, Direction, PolicyConfig};
use crate::layout::{CAND4_WORDS, CAND6_WORDS, DIR16_LEN};
use crate::reader::{Flow, PolicyMatch};
use crate::region::{load_words, store_words, Region};
use crate::shm::{NO_SLOT, POLICY_FREE, POLICY_LIVE};
use crate::writer::Writer;
use crate::SadbError;

/// Policy slot state: deleted, waiting for a grace period before reuse.
const POLICY_DYING: u32 = 2;

fn classifier(dir: Direction, family: u8) -> usize {
    match (dir, family) {
        (Direction::Out, 4) => 0,
        (Direction::In, 4) => 1,
        (Direction::Out, _) => 2,
        (Direction::In, _) => 3,
    }
}

fn addr128(a: &[u8; 16], family: u8) -> u128 {
    if family == 4 {
        u128::from(u32::from_be_bytes([a[0], a[1], a[2], a[3]]))
    } else {
        u128::from_be_bytes(*a)
    }
}

/// The inclusive range a prefix covers, in the family's address width.
fn prefix_range(a: &[u8; 16], plen: u8, family: u8) -> (u128, u128) {
    let bits: u32 = if family == 4 { 32 } else { 128 };
    let plen = u32::from(plen).min(bits);
    let v = addr128(a, family);
    let host = if plen == bits { 0 } else { (u128::MAX >> (128 - bits)) >> plen };
    (v & !host, v | host)
}

fn invalid(field: &'static str, reason: impl Into<String>) -> SadbError {
    SadbError::Invalid { field, reason: reason.into() }
}

pub(crate) fn validate_policy(p: &PolicyConfig) -> Result<(), SadbError> {
    Direction::from_code(p.direction)
        .ok_or_else(|| invalid("direction", format!("unknown code {}", p.direction)))?;
    Action::from_code(p.action).ok_or_else(|| invalid("action", format!("unknown code {}", p.action)))?;
    let max = match p.family {
        4 => 32,
        6 => 128,
        f => return Err(invalid("family", format!("{f} is neither 4 nor 6"))),
    };
    if p.src_plen > max || p.dst_plen > max {
        return Err(invalid("prefix", format!("prefix length above {max}")));
    }
    if p.sport[0] > p.sport[1] || p.dport[0] > p.dport[1] {
        return Err(invalid("ports", "range ends before it starts"));
    }
    if Action::from_code(p.action) == Some(Action::Protect) && p.reqid == 0 {
        return Err(invalid("reqid", "a protect policy needs a non-zero reqid"));
    }
    Ok(())
}

/// One compiled classifier, built in private memory before being copied into a bank.
#[derive(Default)]
struct Compiled {
    bounds: Vec<u128>,
    /// (start, len) into the family's candidate pool.
    ivals: Vec<(u32, u32)>,
}

/// A candidate record: what a policy needs besides the destination.
struct Cand {
    slot: u32,
    action: u8,
    proto: u8,
    src: (u128, u128),
    sport: [u16; 2],
    dport: [u16; 2],
}

fn w0(c: &Cand) -> u64 {
    u64::from(c.slot) | u64::from(c.action) << 32 | u64::from(c.proto) << 40
}

fn ports_word(c: &Cand) -> u64 {
    u64::from(c.sport[0])
        | u64::from(c.sport[1]) << 16
        | u64::from(c.dport[0]) << 32
        | u64::from(c.dport[1]) << 48
}

impl Writer<'_> {
    /// Adds policies (one compile for the whole batch).
    pub fn add_policies(&mut self, ps: &[PolicyConfig]) -> Result<(), SadbError> {
        for p in ps {
            validate_policy(p)?;
        }
        let r = self.r;
        let live: Vec<u32> = r.list_policies().iter().map(|e| e.config.id).collect();
        for (i, p) in ps.iter().enumerate() {
            if live.contains(&p.id) || ps[..i].iter().any(|q| q.id == p.id) {
                return Err(SadbError::DuplicatePolicy { id: p.id });
            }
        }
        self.begin_policy_change()?;
        let mut placed = Vec::with_capacity(ps.len());
        let mut slots =
            (0..r.caps.policies).filter(|&s| r.policy_hdr(s).state.load(Ordering::Relaxed) == POLICY_FREE);
        for p in ps {
            let Some(s) = slots.next() else {
                // Roll back what this batch placed.
                for &s in &placed {
                    r.policy_hdr(s).state.store(POLICY_FREE, Ordering::Release);
                }
                return Err(SadbError::Full { what: "policy table" });
            };
            store_words(r.policy_words(s), p);
            let h = r.policy_hdr(s);
            h.id.store(p.id, Ordering::Relaxed);
            h.reqid.store(p.reqid, Ordering::Relaxed);
            h.hits.store(0, Ordering::Relaxed);
            h.last_acquire.store(0, Ordering::Relaxed);
            let bound = if p.direction == Direction::Out as u8 && p.action == Action::Protect as u8 {
                self.newest_out_sa(p.reqid, None)
            } else {
                None
            };
            h.sa_slot.store(bound.unwrap_or(NO_SLOT), Ordering::Relaxed);
            h.state.store(POLICY_LIVE, Ordering::Release);
            placed.push(s);
        }
        if let Err(e) = self.compile_and_publish() {
            for &s in &placed {
                r.policy_hdr(s).state.store(POLICY_FREE, Ordering::Release);
            }
            return Err(e);
        }
        r.hdr().policy_live.fetch_add(ps.len() as u32, Ordering::Relaxed);
        self.committed();
        Ok(())
    }

    /// Adds one policy.
    pub fn add_policy(&mut self, p: &PolicyConfig) -> Result<(), SadbError> {
        self.add_policies(std::slice::from_ref(p))
    }

    /// Deletes the policy with this id.
    pub fn del_policy(&mut self, id: u32) -> Result<(), SadbError> {
        self.begin_policy_change()?;
        let r = self.r;
        let slot = (0..r.caps.policies)
            .find(|&s| {
                let h = r.policy_hdr(s);
                h.state.load(Ordering::Relaxed) == POLICY_LIVE && h.id.load(Ordering::Relaxed) == id
            })
            .ok_or(SadbError::NoPolicy { id })?;
        r.policy_hdr(slot).state.store(POLICY_DYING, Ordering::Release);
        self.compile_and_publish()?;
        r.hdr().policy_live.fetch_sub(1, Ordering::Relaxed);
        self.committed();
        Ok(())
    }

    /// Deletes every policy; returns how many.
    pub fn flush_policies(&mut self) -> Result<usize, SadbError> {
        self.begin_policy_change()?;
        let r = self.r;
        let mut n = 0;
        for s in 0..r.caps.policies {
            let h = r.policy_hdr(s);
            if h.state.load(Ordering::Relaxed) == POLICY_LIVE {
                h.state.store(POLICY_DYING, Ordering::Release);
                n += 1;
            }
        }
        self.compile_and_publish()?;
        r.hdr().policy_live.fetch_sub(n, Ordering::Relaxed);
        self.committed();
        Ok(n as usize)
    }

    /// Waits out the grace period of the last flip (at once, unless that flip was only
    /// microseconds ago), so the inactive bank and the slots of policies deleted then are
    /// free to reuse.
    fn begin_policy_change(&mut self) -> Result<(), SadbError> {
        let flip = self.r.hdr().bank_flip_epoch.load(Ordering::Relaxed);
        self.wait_for(flip, std::time::Duration::from_secs(1))?;
        let r = self.r;
        for s in 0..r.caps.policies {
            let h = r.policy_hdr(s);
            if h.state.load(Ordering::Relaxed) == POLICY_DYING {
                h.sa_slot.store(NO_SLOT, Ordering::Relaxed);
                h.state.store(POLICY_FREE, Ordering::Release);
            }
        }
        Ok(())
    }

    /// Compiles the live policies into the inactive bank and makes it active.
    fn compile_and_publish(&mut self) -> Result<(), SadbError> {
        let r = self.r;
        let mut live: Vec<(u32, PolicyConfig)> = (0..r.caps.policies)
            .filter(|&s| r.policy_hdr(s).state.load(Ordering::Relaxed) == POLICY_LIVE)
            .map(|s| (s, load_words(r.policy_words(s))))
            .collect();
        // Priority order: lower value first, then lower id.
        live.sort_by_key(|(_, p)| (p.priority, p.id));
        let bank = r.hdr().active_bank.load(Ordering::Relaxed) ^ 1;
        let bl = r.lay.bank;
        let mut pools: [Vec<Cand>; 2] = [Vec::new(), Vec::new()];
        let mut compiled: [Compiled; 4] = Default::default();
        for dir in [Direction::Out, Direction::In] {
            for family in [4u8, 6] {
                let c = classifier(dir, family);
                let pool = &mut pools[usize::from(family == 6)];
                let ps: Vec<&(u32, PolicyConfig)> =
                    live.iter().filter(|(_, p)| p.direction == dir as u8 && p.family == family).collect();
                compiled[c] = compile_one(&ps, family, pool, bl.cands_cap)?;
                if compiled[c].bounds.len() > bl.bounds_cap {
                    return Err(SadbError::Full { what: "policy classifier (boundaries)" });
                }
            }
        }
        // Write the inactive bank. No reader uses it: the last flip's grace period is over.
        let counts = r.bank_u32(bank, 0, 8);
        for (c, comp) in compiled.iter().enumerate() {
            counts[c].store(comp.bounds.len() as u32, Ordering::Relaxed);
            let iv = r.bank_u64(bank, bl.ivals[c], comp.ivals.len());
            for (d, &(start, len)) in iv.iter().zip(&comp.ivals) {
                d.store(u64::from(start) << 32 | u64::from(len), Ordering::Relaxed);
            }
            if c < 2 {
                let b = r.bank_u32(bank, bl.bounds4[c], comp.bounds.len());
                for (d, &v) in b.iter().zip(&comp.bounds) {
                    d.store(v as u32, Ordering::Relaxed);
                }
                // dir16[h] = first boundary at or above h << 16.
                let dir = r.bank_u32(bank, bl.dir16[c], DIR16_LEN);
                let mut i = 0usize;
                for (h, d) in dir.iter().enumerate() {
                    let at = (h as u128) << 16;
                    while i < comp.bounds.len() && comp.bounds[i] < at {
                        i += 1;
                    }
                    d.store(i as u32, Ordering::Relaxed);
                }
            } else {
                let b = r.bank_u64(bank, bl.bounds6[c - 2], comp.bounds.len() * 2);
                for (k, &v) in comp.bounds.iter().enumerate() {
                    b[2 * k].store((v >> 64) as u64, Ordering::Relaxed);
                    b[2 * k + 1].store(v as u64, Ordering::Relaxed);
                }
            }
        }
        let c4 = r.bank_u64(bank, bl.cands4, pools[0].len() * CAND4_WORDS);
        for (k, c) in pools[0].iter().enumerate() {
            c4[k * 3].store(w0(c), Ordering::Relaxed);
            c4[k * 3 + 1].store((c.src.0 as u64) | (c.src.1 as u64) << 32, Ordering::Relaxed);
            c4[k * 3 + 2].store(ports_word(c), Ordering::Relaxed);
        }
        let c6 = r.bank_u64(bank, bl.cands6, pools[1].len() * CAND6_WORDS);
        for (k, c) in pools[1].iter().enumerate() {
            let w = &c6[k * CAND6_WORDS..(k + 1) * CAND6_WORDS];
            w[0].store(w0(c), Ordering::Relaxed);
            w[1].store((c.src.0 >> 64) as u64, Ordering::Relaxed);
            w[2].store(c.src.0 as u64, Ordering::Relaxed);
            w[3].store((c.src.1 >> 64) as u64, Ordering::Relaxed);
            w[4].store(c.src.1 as u64, Ordering::Relaxed);
            w[5].store(ports_word(c), Ordering::Relaxed);
        }
        // Release: a reader that sees the new bank number sees everything written above.
        r.hdr().active_bank.store(bank, Ordering::Release);
        let e = self.advance_epoch();
        r.hdr().bank_flip_epoch.store(e, Ordering::Relaxed);
        Ok(())
    }
}

/// Builds one classifier: boundaries, and for each interval the covering policies in
/// priority order, appended to `pool`.
fn compile_one(
    ps: &[&(u32, PolicyConfig)],
    family: u8,
    pool: &mut Vec<Cand>,
    cap: usize,
) -> Result<Compiled, SadbError> {
    if ps.is_empty() {
        return Ok(Compiled::default());
    }
    let top: u128 = if family == 4 { u128::from(u32::MAX) } else { u128::MAX };
    let ranges: Vec<(u128, u128)> =
        ps.iter().map(|(_, p)| prefix_range(&p.dst, p.dst_plen, family)).collect();
    let mut bounds: Vec<u128> = vec![0];
    for &(lo, hi) in &ranges {
        bounds.push(lo);
        if hi < top {
            bounds.push(hi + 1);
        }
    }
    bounds.sort_unstable();
    bounds.dedup();
    // A policy that matches any source, protocol and port ends the list of every interval
    // it covers: nothing after it in priority order can be reached there.
    let catch_all = |p: &PolicyConfig| {
        p.src_plen == 0 && p.proto == 0 && p.sport == [0, u16::MAX] && p.dport == [0, u16::MAX]
    };
    let mut lists: Vec<Vec<usize>> = vec![Vec::new(); bounds.len()];
    let mut closed = vec![false; bounds.len()];
    let mut total = 0usize;
    for (k, &(lo, hi)) in ranges.iter().enumerate() {
        let a = bounds.partition_point(|&b| b < lo);
        let b = if hi < top { bounds.partition_point(|&b| b <= hi) } else { bounds.len() };
        let ends = catch_all(&ps[k].1);
        for (l, c) in lists[a..b].iter_mut().zip(&mut closed[a..b]) {
            if !*c {
                l.push(k);
                total += 1;
                *c = ends;
            }
        }
        if pool.len() + total > cap {
            return Err(SadbError::Full { what: "policy classifier (too many overlapping policies)" });
        }
    }
    let mut ivals = Vec::with_capacity(bounds.len());
    for l in &lists {
        ivals.push((pool.len() as u32, l.len() as u32));
        for &k in l {
            let (slot, p) = ps[k];
            pool.push(Cand {
                slot: *slot,
                action: p.action,
                proto: p.proto,
                src: prefix_range(&p.src, p.src_plen, family),
                sport: p.sport,
                dport: p.dport,
            });
        }
    }
    Ok(Compiled { bounds, ivals })
}

#[inline]
fn ports_match(w: u64, sport: u16, dport: u16) -> bool {
    let (s0, s1, d0, d1) = (w as u16, (w >> 16) as u16, (w >> 32) as u16, (w >> 48) as u16);
    s0 <= sport && sport <= s1 && d0 <= dport && dport <= d1
}

#[inline]
fn proto_matches(w0: u64, proto: u8) -> bool {
    let p = (w0 >> 40) as u8;
    p == 0 || p == proto
}

impl Region {
    /// Reader-side policy lookup in the active bank. Every index read from the bank is
    /// checked against the capacities, so a corrupted bank gives no match, never a panic.
    pub(crate) fn spd_lookup(&self, dir: Direction, f: &Flow) -> Option<PolicyMatch> {
        let bank = self.hdr().active_bank.load(Ordering::Acquire);
        let bl = self.lay.bank;
        let c = classifier(dir, f.family);
        let n = (self.bank_u32(bank, 0, 8)[c].load(Ordering::Relaxed) as usize).min(bl.bounds_cap);
        if n == 0 {
            return None;
        }
        let dst = addr128(&f.dst, f.family);
        let i = if c < 2 {
            let bounds = self.bank_u32(bank, bl.bounds4[c], n);
            let dir16 = self.bank_u32(bank, bl.dir16[c], DIR16_LEN);
            let h = (dst >> 16) as usize;
            let lo = (dir16[h].load(Ordering::Relaxed) as usize).min(n);
            let hi = (dir16[h + 1].load(Ordering::Relaxed) as usize).clamp(lo, n);
            // Boundaries in [lo, hi) that are <= dst; everything before lo is below dst.
            let d = dst as u32;
            let (mut a, mut b) = (lo, hi);
            while a < b {
                let m = (a + b) / 2;
                if bounds[m].load(Ordering::Relaxed) <= d {
                    a = m + 1;
                } else {
                    b = m;
                }
            }
            a.checked_sub(1)?
        } else {
            let bounds = self.bank_u64(bank, bl.bounds6[c - 2], n * 2);
            let at = |k: usize| {
                u128::from(bounds[2 * k].load(Ordering::Relaxed)) << 64
                    | u128::from(bounds[2 * k + 1].load(Ordering::Relaxed))
            };
            let (mut a, mut b) = (0, n);
            while a < b {
                let m = (a + b) / 2;
                if at(m) <= dst {
                    a = m + 1;
                } else {
                    b = m;
                }
            }
            a.checked_sub(1)?
        };
        let iv = self.bank_u64(bank, bl.ivals[c], n)[i].load(Ordering::Relaxed);
        let (start, len) = ((iv >> 32) as usize, (iv & 0xffff_ffff) as usize);
        if start.checked_add(len)? > bl.cands_cap {
            return None;
        }
        let src = addr128(&f.src, f.family);
        for k in start..start + len {
            let (w, ok) = if c < 2 {
                let w = self.bank_u64(bank, bl.cands4 + k * CAND4_WORDS * 8, CAND4_WORDS);
                let w0v = w[0].load(Ordering::Relaxed);
                let s = w[1].load(Ordering::Relaxed);
                let (slo, shi) = (u128::from(s as u32), u128::from((s >> 32) as u32));
                (
                    w0v,
                    slo <= src
                        && src <= shi
                        && proto_matches(w0v, f.proto)
                        && ports_match(w[2].load(Ordering::Relaxed), f.sport, f.dport),
                )
            } else {
                let w = self.bank_u64(bank, bl.cands6 + k * CAND6_WORDS * 8, CAND6_WORDS);
                let w0v = w[0].load(Ordering::Relaxed);
                let word = |i: usize| w[i].load(Ordering::Relaxed);
                let slo = u128::from(word(1)) << 64 | u128::from(word(2));
                let shi = u128::from(word(3)) << 64 | u128::from(word(4));
                (
                    w0v,
                    slo <= src
                        && src <= shi
                        && proto_matches(w0v, f.proto)
                        && ports_match(word(5), f.sport, f.dport),
                )
            };
            if !ok {
                continue;
            }
            let slot = w as u32;
            let action = Action::from_code((w >> 32) as u8)?;
            if slot >= self.caps.policies {
                return None;
            }
            let h = self.policy_hdr(slot);
            let sa = h.sa_slot.load(Ordering::Acquire);
            return Some(PolicyMatch {
                slot,
                id: h.id.load(Ordering::Relaxed),
                action,
                reqid: h.reqid.load(Ordering::Relaxed),
                sa_slot: (sa != NO_SLOT && sa < self.caps.sas).then_some(sa),
            });
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_ranges() {
        let mut a = [0u8; 16];
        a[..4].copy_from_slice(&[198, 18, 1, 77]);
        assert_eq!(prefix_range(&a, 24, 4), (0xc612_0100, 0xc612_01ff));
        assert_eq!(prefix_range(&a, 32, 4), (0xc612_014d, 0xc612_014d));
        assert_eq!(prefix_range(&a, 0, 4), (0, 0xffff_ffff));
        let mut b = [0u8; 16];
        b[..4].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
        let (lo, hi) = prefix_range(&b, 32, 6);
        assert_eq!(lo, 0x2001_0db8u128 << 96);
        assert_eq!(hi, (0x2001_0db8u128 << 96) | (u128::MAX >> 32));
        assert_eq!(prefix_range(&b, 0, 6), (0, u128::MAX));
        assert_eq!(prefix_range(&b, 128, 6).0, prefix_range(&b, 128, 6).1);
    }
}
