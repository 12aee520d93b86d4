//! Security policies and their classifier.
//!
//! Policies live in slots (the source of truth, listed by `espctl policy list`). The
//! classifier that readers search is kept up to date by the smallest change each add or
//! delete needs, never recompiled per batch:
//!
//! - Per direction and family, the policies are grouped by their pair of prefixes
//!   (destination and source: lengths and masked addresses), a tuple space search. A hash
//!   table in the active bank maps each such key to a list of self-contained candidate
//!   records (protocol, ports, action, priority and id) in priority order.
//! - Per direction and family, a small table under a seqlock lists the pairs of prefix
//!   lengths in use, each with the best (priority, id) among its policies, best first.
//!
//! A lookup walks the pairs of lengths in that order, probes the hash table with the
//! addresses masked to each, and keeps the best matching candidate; it stops at the first
//! pair whose best possible policy ranks below the match it has. With one tunnel per pair of
//! prefixes (a hub's outbound /32s towards its spokes, its inbound ones from them) that is
//! one probe, whatever the number of policies.
//!
//! A change rewrites the affected keys' lists copy-on-write: the new list goes into free
//! pool space, then one Release store of the hash entry's value word publishes it; the old
//! list is reused only after a grace period. A new key is written into an empty hash entry
//! whose value word is stored last. Entries are never emptied while their bank is active,
//! so a reader that has loaded a value word compares it with key words that do not change.
//! When the pool or the hash table runs out of room, the writer compacts everything into
//! the inactive bank (after the last flip's grace period) and flips `active_bank`: amortised
//! over at least a policy capacity's worth of changes. The writer keeps its own index of
//! keys, ids, free slots and pool blocks in process memory, rebuilt from the slots (with a
//! compaction) whenever another writer may have changed the region since.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{fence, Ordering};
use std::time::Duration;

use crate::abi::{Action, Direction, PolicyConfig};
use crate::layout::{CAND_WORDS, ENTRY_WORDS, MAX_LENGTHS};
use crate::reader::{Flow, PolicyMatch};
use crate::region::{load_words, store_words, Region};
use crate::shm::{NO_SLOT, POLICY_FREE, POLICY_LIVE};
use crate::writer::Writer;
use crate::SadbError;

/// Policy slot state: deleted, waiting for a grace period before reuse.
pub(crate) const POLICY_DYING: u32 = 2;

/// Value word of a hash entry: occupied bit, list length, list start.
const ENTRY_USED: u64 = 1 << 63;
/// Longest candidate list one destination prefix may have.
const MAX_LIST: usize = 1 << 20;
/// Consistent reads of a lengths table a lookup tries before using what it has (a writer
/// that died half-way through a rewrite leaves the seqlock odd until the next writer).
const SEQ_TRIES: usize = 64;

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

#[cfg(test)]
/// The inclusive range a prefix covers, in the family's address width.
fn prefix_range(a: &[u8; 16], plen: u8, family: u8) -> (u128, u128) {
    let bits: u32 = if family == 4 { 32 } else { 128 };
    let plen = u32::from(plen).min(bits);
    let v = addr128(a, family);
    let host = if plen == bits { 0 } else { (u128::MAX >> (128 - bits)) >> plen };
    (v & !host, v | host)
}

/// `v` with the host bits of a `plen` prefix cleared, in the family's width.
#[inline]
fn mask(v: u128, plen: u8, family: u8) -> u128 {
    let bits: u32 = if family == 4 { 32 } else { 128 };
    let plen = u32::from(plen).min(bits);
    if plen == 0 {
        0
    } else {
        v & (u128::MAX << (128 - plen)) >> (128 - bits)
    }
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

/// Rank of a policy: lower first (priority, then id).
fn rank(p: &PolicyConfig) -> u64 {
    u64::from(p.priority) << 32 | u64::from(p.id)
}

/// What the hash table is keyed by: classifier, the pair of prefix lengths
/// (`dplen | splen << 8`), the masked addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Key {
    c: u8,
    lens: u16,
    dst: u128,
    src: u128,
}

impl Key {
    fn meta(&self) -> u64 {
        u64::from(self.c) | u64::from(self.lens) << 8
    }
}

fn key_of(p: &PolicyConfig) -> Key {
    let dir = Direction::from_code(p.direction).unwrap_or(Direction::In);
    Key {
        c: classifier(dir, p.family) as u8,
        lens: u16::from(p.dst_plen) | u16::from(p.src_plen) << 8,
        dst: mask(addr128(&p.dst, p.family), p.dst_plen, p.family),
        src: mask(addr128(&p.src, p.family), p.src_plen, p.family),
    }
}

/// MurmurHash3's finaliser.
#[inline]
fn fmix(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ h >> 33
}

/// Seeded per region, so that nobody can choose selectors that share a probe chain.
#[inline]
fn key_hash(seed: u64, meta: u64, dst: u128, src: u128) -> u64 {
    let h = fmix(
        seed ^ meta.wrapping_mul(0x9e37_79b9_7f4a_7c15)
            ^ (dst >> 64) as u64
            ^ ((src >> 64) as u64).rotate_left(32),
    );
    let h = fmix(h ^ dst as u64);
    fmix(h ^ src as u64)
}

/// The writer's maps hash with a multiply-rotate over words, seeded per process: SipHash
/// made a quarter of an install's cost, and the keys (ids, selectors) can come from peers.
#[derive(Clone, Copy)]
pub(crate) struct Seeded(u64);

impl Default for Seeded {
    fn default() -> Self {
        static SEED: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
        Seeded(*SEED.get_or_init(|| std::collections::hash_map::RandomState::new().hash_one(0x5eedu64)))
    }
}

impl BuildHasher for Seeded {
    type Hasher = WordHasher;
    fn build_hasher(&self) -> WordHasher {
        WordHasher(self.0)
    }
}

/// See [`Seeded`].
pub(crate) struct WordHasher(u64);

impl Hasher for WordHasher {
    fn finish(&self) -> u64 {
        fmix(self.0)
    }
    fn write(&mut self, bytes: &[u8]) {
        for c in bytes.chunks(8) {
            let mut w = [0u8; 8];
            w[..c.len()].copy_from_slice(c);
            self.write_u64(u64::from_le_bytes(w));
        }
    }
    fn write_u8(&mut self, v: u8) {
        self.write_u64(u64::from(v));
    }
    fn write_u16(&mut self, v: u16) {
        self.write_u64(u64::from(v));
    }
    fn write_u32(&mut self, v: u32) {
        self.write_u64(u64::from(v));
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = (self.0.rotate_left(23) ^ v).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
    fn write_u128(&mut self, v: u128) {
        self.write_u64((v >> 64) as u64);
        self.write_u64(v as u64);
    }
    fn write_usize(&mut self, v: usize) {
        self.write_u64(v as u64);
    }
}

type HashMap<K, V> = std::collections::HashMap<K, V, Seeded>;
type HashSet<K> = std::collections::HashSet<K, Seeded>;

/// A list's block in the pool: its start and its size class (2^class records).
#[derive(Debug, Clone, Copy)]
struct Block {
    start: u32,
    class: u8,
}

fn class_for(len: usize) -> u8 {
    len.next_power_of_two().trailing_zeros() as u8
}

/// The writer's view of one key.
#[derive(Debug, Default)]
struct KeyState {
    /// Its hash entry in the active bank, once published there.
    pos: Option<usize>,
    /// Its list's block in the active bank's pool.
    block: Option<Block>,
    /// (rank, slot) of its policies, best first.
    members: Vec<(u64, u32)>,
}

/// Which outbound SAs and Protect policies each reqid has: what binding needs, without a
/// scan of either table.
#[derive(Debug, Default)]
pub(crate) struct Bindings {
    /// Live outbound SAs per reqid: (install order, slot).
    out_sas: HashMap<u32, Vec<(u64, u32)>>,
    /// Live outbound Protect policy slots per reqid.
    protect_out: HashMap<u32, Vec<u32>>,
}

impl Bindings {
    fn scan(r: &Region) -> Bindings {
        use crate::shm::SLOT_LIVE;
        let mut b = Bindings::default();
        for s in 0..r.caps.sas {
            let h = r.slot_hdr(s);
            if h.state.load(Ordering::Relaxed) == SLOT_LIVE
                && h.direction.load(Ordering::Relaxed) == Direction::Out as u32
            {
                let reqid = h.reqid.load(Ordering::Relaxed);
                b.out_sas.entry(reqid).or_default().push((h.installed.load(Ordering::Relaxed), s));
            }
        }
        for p in 0..r.caps.policies {
            if r.policy_hdr(p).state.load(Ordering::Relaxed) == POLICY_LIVE {
                let cfg: PolicyConfig = load_words(r.policy_words(p));
                b.add_policy(&cfg, p);
            }
        }
        b
    }

    fn is_protect_out(p: &PolicyConfig) -> bool {
        p.direction == Direction::Out as u8 && p.action == Action::Protect as u8
    }

    fn add_policy(&mut self, p: &PolicyConfig, slot: u32) {
        if Self::is_protect_out(p) {
            self.protect_out.entry(p.reqid).or_default().push(slot);
        }
    }

    fn remove_policy(&mut self, p: &PolicyConfig, slot: u32) {
        if Self::is_protect_out(p) {
            if let Some(v) = self.protect_out.get_mut(&p.reqid) {
                v.retain(|&s| s != slot);
                if v.is_empty() {
                    self.protect_out.remove(&p.reqid);
                }
            }
        }
    }

    /// The live outbound SA of a reqid installed last.
    pub(crate) fn newest(&self, reqid: u32) -> Option<u32> {
        self.out_sas.get(&reqid)?.iter().max_by_key(|(installed, _)| *installed).map(|&(_, s)| s)
    }

    /// An outbound SA was installed: the Protect policies of its reqid move to it
    /// (make-before-break).
    pub(crate) fn sa_added(&mut self, r: &Region, reqid: u32, installed: u64, slot: u32) {
        self.out_sas.entry(reqid).or_default().push((installed, slot));
        if self.newest(reqid) != Some(slot) {
            return;
        }
        for &p in self.protect_out.get(&reqid).into_iter().flatten() {
            r.policy_hdr(p).sa_slot.store(slot, Ordering::Release);
            rebind_candidate(r, p, slot);
        }
    }

    /// An outbound SA was unlinked: the policies bound to it move to the newest other one of
    /// their reqid, or to none.
    pub(crate) fn sa_removed(&mut self, r: &Region, reqid: u32, slot: u32) {
        if let Some(v) = self.out_sas.get_mut(&reqid) {
            v.retain(|&(_, s)| s != slot);
            if v.is_empty() {
                self.out_sas.remove(&reqid);
            }
        }
        let next = self.newest(reqid).unwrap_or(NO_SLOT);
        for &p in self.protect_out.get(&reqid).into_iter().flatten() {
            let h = r.policy_hdr(p);
            if h.sa_slot.load(Ordering::Relaxed) == slot {
                h.sa_slot.store(next, Ordering::Release);
                rebind_candidate(r, p, next);
            }
        }
    }
}

/// The writer's index of the policies and of the active bank.
#[derive(Debug, Default)]
pub(crate) struct SpdState {
    /// Live policy id → slot.
    ids: HashMap<u32, u32>,
    /// Free policy slots, the lowest last (taken first).
    free_slots: Vec<u32>,
    /// Deleted policies' slots with the epoch after their unlink.
    dying: VecDeque<(u64, u32)>,
    keys: HashMap<Key, KeyState>,
    /// Per classifier: pair of prefix lengths → ranks of its policies.
    lengths: [BTreeMap<u16, BTreeSet<u64>>; 4],
    /// The active bank.
    bank: u32,
    /// First never-used record of the active bank's pool.
    bump: u32,
    /// Free blocks per size class in the active bank's pool.
    free_blocks: Vec<Vec<u32>>,
    /// Blocks unlinked, with the epoch after which no reader holds them.
    retired: VecDeque<(u64, Block)>,
    /// Hash entries of the active bank ever written (live or empty lists).
    used_entries: usize,
}

/// The writer-side state kept in process memory between writers. `None` parts are rebuilt
/// from the region on first use.
#[derive(Debug, Default)]
pub(crate) struct WriterCache {
    /// The region's change counter when this cache was last known to match it.
    pub(crate) seen: u64,
    pub(crate) bindings: Option<Bindings>,
    pub(crate) spd: Option<SpdState>,
}

/// A candidate record's words.
fn cand_words(slot: u32, p: &PolicyConfig, sa_slot: u32) -> [u64; CAND_WORDS] {
    [
        u64::from(slot) | u64::from(p.action) << 32 | u64::from(p.proto) << 40,
        rank(p),
        u64::from(p.sport[0])
            | u64::from(p.sport[1]) << 16
            | u64::from(p.dport[0]) << 32
            | u64::from(p.dport[1]) << 48,
        binding_word(p.reqid, sa_slot),
    ]
}

/// A candidate's last word: the reqid, and the outbound SA bound to the policy (a copy of
/// the slot header's, so that a lookup reads no line of the policy table).
fn binding_word(reqid: u32, sa_slot: u32) -> u64 {
    u64::from(reqid) | u64::from(sa_slot) << 32
}

/// Writer: the value word of `k`'s entry in bank `bank`, if it has one.
fn find_value(r: &Region, bank: u32, k: &Key) -> Option<u64> {
    let n = r.lay.bank.entries;
    let mut pos = key_hash(r.seed, k.meta(), k.dst, k.src) as usize;
    for _ in 0..n {
        let e = r.spd_entry(bank, pos);
        let v = e[0].load(Ordering::Relaxed);
        if v == 0 {
            return None;
        }
        if e[1].load(Ordering::Relaxed) == k.meta()
            && e[2].load(Ordering::Relaxed) == (k.dst >> 64) as u64
            && e[3].load(Ordering::Relaxed) == k.dst as u64
            && e[4].load(Ordering::Relaxed) == (k.src >> 64) as u64
            && e[5].load(Ordering::Relaxed) == k.src as u64
        {
            return Some(v);
        }
        pos = pos.wrapping_add(1);
    }
    None
}

/// Writer: a policy's binding changed in its slot header; its candidate record in the
/// active bank follows (one Release store: readers see the old SA or the new one).
fn rebind_candidate(r: &Region, policy_slot: u32, sa_slot: u32) {
    let p: PolicyConfig = load_words(r.policy_words(policy_slot));
    let bank = r.hdr().active_bank.load(Ordering::Relaxed) & 1;
    let Some(v) = find_value(r, bank, &key_of(&p)) else { return };
    let (start, len) = ((v & 0xffff_ffff) as usize, (v >> 32 & 0x7fff_ffff) as usize);
    for k in start..(start + len).min(r.lay.bank.cands_cap) {
        let w = r.spd_cand(bank, k);
        if w[0].load(Ordering::Relaxed) as u32 == policy_slot {
            w[3].store(binding_word(p.reqid, sa_slot), Ordering::Release);
            return;
        }
    }
}

impl Region {
    /// The words of hash entry `pos` of bank `bank`.
    fn spd_entry(&self, bank: u32, pos: usize) -> &[std::sync::atomic::AtomicU64] {
        let bl = self.lay.bank;
        self.bank_u64(bank, bl.table + (pos & (bl.entries - 1)) * ENTRY_WORDS * 8, ENTRY_WORDS)
    }

    /// The words of candidate record `k` of bank `bank`.
    fn spd_cand(&self, bank: u32, k: usize) -> &[std::sync::atomic::AtomicU64] {
        self.bank_u64(bank, self.lay.bank.cands + k * CAND_WORDS * 8, CAND_WORDS)
    }

    /// The seqlocked table of prefix lengths of classifier `c`.
    fn spd_lengths(&self, c: usize) -> &[std::sync::atomic::AtomicU64] {
        self.lengths_table(c)
    }
}

impl SpdState {
    /// Rebuilds the writer's index from the policy slots.
    fn scan(r: &Region) -> SpdState {
        let mut st = SpdState {
            bank: r.hdr().active_bank.load(Ordering::Relaxed) & 1,
            free_blocks: vec![Vec::new(); 33],
            ..SpdState::default()
        };
        for s in (0..r.caps.policies).rev() {
            let h = r.policy_hdr(s);
            match h.state.load(Ordering::Relaxed) {
                POLICY_LIVE => {
                    let p: PolicyConfig = load_words(r.policy_words(s));
                    st.ids.insert(p.id, s);
                    st.add_member(&p, s);
                }
                // Its unlink may be recent: free it after a grace period from now.
                POLICY_DYING => st.dying.push_back((r.hdr().epoch.load(Ordering::Relaxed) + 1, s)),
                _ => st.free_slots.push(s),
            }
        }
        st
    }

    fn add_member(&mut self, p: &PolicyConfig, slot: u32) -> Key {
        let k = key_of(p);
        let ks = self.keys.entry(k).or_default();
        let r = rank(p);
        let at = ks.members.partition_point(|&(m, _)| m < r);
        ks.members.insert(at, (r, slot));
        self.lengths[usize::from(k.c)].entry(k.lens).or_default().insert(r);
        k
    }

    fn remove_member(&mut self, p: &PolicyConfig, slot: u32) -> Key {
        let k = key_of(p);
        if let Some(ks) = self.keys.get_mut(&k) {
            ks.members.retain(|&(_, s)| s != slot);
        }
        let set = self.lengths[usize::from(k.c)].entry(k.lens).or_default();
        set.remove(&rank(p));
        if set.is_empty() {
            self.lengths[usize::from(k.c)].remove(&k.lens);
        }
        k
    }

    fn alloc(&mut self, len: usize, cap: usize) -> Option<Block> {
        let class = class_for(len);
        if let Some(start) = self.free_blocks[usize::from(class)].pop() {
            return Some(Block { start, class });
        }
        let size = 1u32 << class;
        if self.bump as usize + size as usize > cap {
            return None;
        }
        let start = self.bump;
        self.bump += size;
        Some(Block { start, class })
    }

    fn release(&mut self, b: Block) {
        self.free_blocks[usize::from(b.class)].push(b.start);
    }
}

/// Writes a key's list into `block` and its entry at `pos` of bank `bank` (the value word
/// last, with Release).
fn write_list(r: &Region, bank: u32, pos: usize, k: Key, block: Option<Block>, members: &[(u64, u32)]) {
    if let Some(b) = block {
        for (i, &(_, slot)) in members.iter().enumerate() {
            let p: PolicyConfig = load_words(r.policy_words(slot));
            let sa = r.policy_hdr(slot).sa_slot.load(Ordering::Relaxed);
            for (d, v) in r.spd_cand(bank, b.start as usize + i).iter().zip(cand_words(slot, &p, sa)) {
                d.store(v, Ordering::Relaxed);
            }
        }
    }
    let e = r.spd_entry(bank, pos);
    if e[0].load(Ordering::Relaxed) == 0 {
        e[1].store(k.meta(), Ordering::Relaxed);
        e[2].store((k.dst >> 64) as u64, Ordering::Relaxed);
        e[3].store(k.dst as u64, Ordering::Relaxed);
        e[4].store((k.src >> 64) as u64, Ordering::Relaxed);
        e[5].store(k.src as u64, Ordering::Relaxed);
    }
    let start = block.map_or(0, |b| u64::from(b.start));
    e[0].store(ENTRY_USED | (members.len() as u64) << 32 | start, Ordering::Release);
}

/// The first empty entry of `k`'s probe chain in bank `bank`.
fn free_pos(r: &Region, bank: u32, k: Key) -> usize {
    let n = r.lay.bank.entries;
    let mut pos = key_hash(r.seed, k.meta(), k.dst, k.src) as usize & (n - 1);
    while r.spd_entry(bank, pos)[0].load(Ordering::Relaxed) != 0 {
        pos = (pos + 1) & (n - 1);
    }
    pos
}

/// Publishes classifier `c`'s pairs of prefix lengths, best rank first, under its seqlock.
fn publish_lengths(r: &Region, c: usize, lengths: &BTreeMap<u16, BTreeSet<u64>>) {
    let mut v: Vec<(u64, u16)> =
        lengths.iter().filter_map(|(&lens, set)| set.first().map(|&best| (best, lens))).collect();
    v.sort_unstable();
    let t = r.spd_lengths(c);
    let n = v.len().min(MAX_LENGTHS);
    let same = t[1].load(Ordering::Relaxed) as usize == n
        && v.iter().enumerate().all(|(i, &(best, plen))| {
            t[2 + 2 * i].load(Ordering::Relaxed) == best
                && t[3 + 2 * i].load(Ordering::Relaxed) == u64::from(plen)
        });
    if same {
        return;
    }
    let seq = t[0].load(Ordering::Relaxed);
    t[0].store(seq | 1, Ordering::Relaxed);
    // Pairs with the reader's Acquire fence: a reader that sees any word below sees the odd
    // sequence (or a later one) when it reads the sequence again.
    fence(Ordering::Release);
    t[1].store(n as u64, Ordering::Relaxed);
    for (i, &(best, plen)) in v.iter().take(n).enumerate() {
        t[2 + 2 * i].store(best, Ordering::Relaxed);
        t[3 + 2 * i].store(u64::from(plen), Ordering::Relaxed);
    }
    t[0].store((seq | 1).wrapping_add(1), Ordering::Release);
}

impl Writer<'_> {
    /// The writer's policy index, rebuilt (with a compaction into the other bank) if another
    /// writer may have changed the region. Taken out of the cache while a change is made, so
    /// a change that fails half-way leaves none behind to be trusted.
    fn take_spd(&mut self) -> Result<SpdState, SadbError> {
        if let Some(st) = self.cache.spd.take() {
            return Ok(st);
        }
        let mut st = SpdState::scan(self.r);
        self.compact(&mut st)?;
        for c in 0..4 {
            publish_lengths(self.r, c, &st.lengths[c]);
        }
        Ok(st)
    }

    /// Which outbound SAs and Protect policies each reqid has (scanned if unknown).
    pub(crate) fn bindings(&mut self) -> &mut Bindings {
        let r = self.r;
        self.cache.bindings.get_or_insert_with(|| Bindings::scan(r))
    }

    /// Frees the slots and pool blocks whose grace period is over.
    fn reclaim_spd(&self, st: &mut SpdState) {
        if st.dying.is_empty() && st.retired.is_empty() {
            return;
        }
        let min = self.min_seen();
        while st.dying.front().is_some_and(|&(e, _)| e <= min) {
            let (_, s) = st.dying.pop_front().unwrap_or_default();
            let h = self.r.policy_hdr(s);
            h.sa_slot.store(NO_SLOT, Ordering::Relaxed);
            h.state.store(POLICY_FREE, Ordering::Release);
            st.free_slots.push(s);
        }
        while st.retired.front().is_some_and(|&(e, _)| e <= min) {
            if let Some((_, b)) = st.retired.pop_front() {
                st.release(b);
            }
        }
    }

    /// Writes every key's list into the inactive bank, packed, and makes it active. Waits
    /// for the grace period of the last flip first (at once, unless that flip was only
    /// microseconds ago).
    fn compact(&mut self, st: &mut SpdState) -> Result<(), SadbError> {
        let r = self.r;
        let flip = r.hdr().bank_flip_epoch.load(Ordering::Relaxed);
        self.wait_for(flip, Duration::from_secs(1))?;
        let bank = r.hdr().active_bank.load(Ordering::Relaxed) & 1 ^ 1;
        let bl = r.lay.bank;
        for pos in 0..bl.entries {
            r.spd_entry(bank, pos)[0].store(0, Ordering::Relaxed);
        }
        st.keys.retain(|_, ks| !ks.members.is_empty());
        st.bank = bank;
        st.bump = 0;
        st.free_blocks = vec![Vec::new(); 33];
        st.retired.clear();
        st.used_entries = 0;
        let keys: Vec<Key> = st.keys.keys().copied().collect();
        for k in keys {
            let len = st.keys[&k].members.len();
            let block = st.alloc(len, bl.cands_cap).ok_or(SadbError::Full { what: "policy classifier" })?;
            let pos = free_pos(r, bank, k);
            let ks = st.keys.get_mut(&k).map(|ks| {
                ks.pos = Some(pos);
                ks.block = Some(block);
                &ks.members
            });
            write_list(r, bank, pos, k, Some(block), ks.map_or(&[][..], |m| &m[..]));
            st.used_entries += 1;
        }
        // Release: a reader that sees the new bank number sees everything written above.
        r.hdr().active_bank.store(bank, Ordering::Release);
        let e = self.advance_epoch();
        r.hdr().bank_flip_epoch.store(e, Ordering::Relaxed);
        Ok(())
    }

    /// Publishes the new lists of `changed` keys in the active bank, or compacts everything
    /// into the other bank when the pool or the table is out of room. Returns the blocks the
    /// readers may still hold, to retire.
    fn publish(&mut self, st: &mut SpdState, changed: &[Key]) -> Result<Vec<Block>, SadbError> {
        let r = self.r;
        let bl = r.lay.bank;
        let new_keys = changed.iter().filter(|k| st.keys.get(k).is_none_or(|ks| ks.pos.is_none())).count();
        let mut blocks = Vec::with_capacity(changed.len());
        let mut room = (st.used_entries + new_keys) * 4 <= bl.entries * 3;
        if room {
            for k in changed {
                let len = st.keys.get(k).map_or(0, |ks| ks.members.len());
                if len == 0 {
                    blocks.push(None);
                    continue;
                }
                match st.alloc(len, bl.cands_cap) {
                    Some(b) => blocks.push(Some(b)),
                    None => {
                        room = false;
                        break;
                    }
                }
            }
        }
        if !room {
            for b in blocks.into_iter().flatten() {
                st.release(b);
            }
            self.compact(st)?;
            return Ok(Vec::new());
        }
        let mut old = Vec::new();
        for (k, block) in changed.iter().zip(blocks) {
            let Some(ks) = st.keys.get_mut(k) else { continue };
            let pos = match ks.pos {
                Some(p) => p,
                None => {
                    st.used_entries += 1;
                    free_pos(r, st.bank, *k)
                }
            };
            write_list(r, st.bank, pos, *k, block, &ks.members);
            ks.pos = Some(pos);
            old.extend(std::mem::replace(&mut ks.block, block));
        }
        Ok(old)
    }

    /// Adds policies. Each becomes visible to readers as it is published; a batch that is
    /// refused leaves none of them behind.
    pub fn add_policies(&mut self, ps: &[PolicyConfig]) -> Result<(), SadbError> {
        for p in ps {
            validate_policy(p)?;
        }
        let r = self.r;
        let mut st = self.take_spd()?;
        let mut batch = HashSet::with_capacity_and_hasher(ps.len(), Seeded::default());
        for p in ps {
            if st.ids.contains_key(&p.id) || !batch.insert(p.id) {
                self.cache.spd = Some(st);
                return Err(SadbError::DuplicatePolicy { id: p.id });
            }
            let k = key_of(p);
            if st.keys.get(&k).is_some_and(|ks| ks.members.len() >= MAX_LIST) {
                self.cache.spd = Some(st);
                return Err(SadbError::Full { what: "policy classifier (one pair of prefixes)" });
            }
            let pairs = &st.lengths[usize::from(k.c)];
            if pairs.len() >= MAX_LENGTHS && !pairs.contains_key(&k.lens) {
                self.cache.spd = Some(st);
                return Err(SadbError::Full { what: "policy classifier (pairs of prefix lengths)" });
            }
        }
        self.reclaim_spd(&mut st);
        if st.free_slots.len() < ps.len() && st.free_slots.len() + st.dying.len() >= ps.len() {
            // Deleted policies' slots are needed now: wait out their grace period.
            if let Some(&(e, _)) = st.dying.back() {
                self.wait_for(e, Duration::from_secs(1))?;
            }
            self.reclaim_spd(&mut st);
        }
        if st.free_slots.len() < ps.len() {
            self.cache.spd = Some(st);
            return Err(SadbError::Full { what: "policy table" });
        }
        let mut placed = Vec::with_capacity(ps.len());
        let mut changed = Vec::with_capacity(ps.len());
        let mut seen = HashSet::with_capacity_and_hasher(ps.len(), Seeded::default());
        for p in ps {
            let s = st.free_slots.pop().unwrap_or(NO_SLOT);
            store_words(r.policy_words(s), p);
            let h = r.policy_hdr(s);
            h.id.store(p.id, Ordering::Relaxed);
            h.reqid.store(p.reqid, Ordering::Relaxed);
            h.hits.store(0, Ordering::Relaxed);
            h.last_acquire.store(0, Ordering::Relaxed);
            let bound = if Bindings::is_protect_out(p) { self.bindings().newest(p.reqid) } else { None };
            h.sa_slot.store(bound.unwrap_or(NO_SLOT), Ordering::Relaxed);
            h.state.store(POLICY_LIVE, Ordering::Release);
            st.ids.insert(p.id, s);
            let k = st.add_member(p, s);
            if seen.insert(k) {
                changed.push(k);
            }
            placed.push(s);
        }
        match self.publish(&mut st, &changed) {
            Ok(old) => {
                // Lists replaced (not only new ones) wait for a grace period from here.
                if !old.is_empty() {
                    let e = self.advance_epoch();
                    st.retired.extend(old.into_iter().map(|b| (e, b)));
                }
            }
            Err(e) => {
                // Nothing was published: the slots are unreachable.
                for &s in &placed {
                    r.policy_hdr(s).state.store(POLICY_FREE, Ordering::Release);
                }
                return Err(e);
            }
        }
        for (p, &s) in ps.iter().zip(&placed) {
            self.bindings().add_policy(p, s);
        }
        for c in 0..4 {
            if changed.iter().any(|k| usize::from(k.c) == c) {
                publish_lengths(r, c, &st.lengths[c]);
            }
        }
        self.cache.spd = Some(st);
        r.hdr().policy_live.fetch_add(ps.len() as u32, Ordering::Relaxed);
        self.committed();
        Ok(())
    }

    /// Adds one policy.
    pub fn add_policy(&mut self, p: &PolicyConfig) -> Result<(), SadbError> {
        self.add_policies(std::slice::from_ref(p))
    }

    /// Unlinks the policies in `slots` from the classifier; their slots are freed after a
    /// grace period.
    fn remove_policies(&mut self, mut st: SpdState, slots: &[u32]) -> Result<(), SadbError> {
        let r = self.r;
        let mut changed = Vec::with_capacity(slots.len());
        let mut seen = HashSet::with_capacity_and_hasher(slots.len(), Seeded::default());
        let mut cfgs = Vec::with_capacity(slots.len());
        for &s in slots {
            let p: PolicyConfig = load_words(r.policy_words(s));
            st.ids.remove(&p.id);
            let k = st.remove_member(&p, s);
            if seen.insert(k) {
                changed.push(k);
            }
            cfgs.push(p);
        }
        let old = self.publish(&mut st, &changed)?;
        for c in 0..4 {
            publish_lengths(r, c, &st.lengths[c]);
        }
        for (&s, p) in slots.iter().zip(&cfgs) {
            r.policy_hdr(s).state.store(POLICY_DYING, Ordering::Release);
            self.bindings().remove_policy(p, s);
        }
        let e = self.advance_epoch();
        st.retired.extend(old.into_iter().map(|b| (e, b)));
        st.dying.extend(slots.iter().map(|&s| (e, s)));
        self.cache.spd = Some(st);
        r.hdr().policy_live.fetch_sub(slots.len() as u32, Ordering::Relaxed);
        self.committed();
        Ok(())
    }

    /// Deletes the policy with this id.
    pub fn del_policy(&mut self, id: u32) -> Result<(), SadbError> {
        let mut st = self.take_spd()?;
        self.reclaim_spd(&mut st);
        let Some(&slot) = st.ids.get(&id) else {
            self.cache.spd = Some(st);
            return Err(SadbError::NoPolicy { id });
        };
        self.remove_policies(st, &[slot])
    }

    /// Deletes every policy; returns how many.
    pub fn flush_policies(&mut self) -> Result<usize, SadbError> {
        let mut st = self.take_spd()?;
        self.reclaim_spd(&mut st);
        let mut slots: Vec<u32> = st.ids.values().copied().collect();
        slots.sort_unstable();
        let n = slots.len();
        self.remove_policies(st, &slots)?;
        Ok(n)
    }
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
    /// Reader-side policy lookup. Every index read from the region is checked against the
    /// capacities, so a corrupted bank gives no match (or a wrong one), never a panic.
    pub(crate) fn spd_lookup(&self, dir: Direction, f: &Flow) -> Option<PolicyMatch> {
        let c = classifier(dir, f.family);
        let t = self.spd_lengths(c);
        let mut best = None;
        for _ in 0..SEQ_TRIES {
            let seq = t[0].load(Ordering::Acquire);
            if seq & 1 == 1 {
                std::hint::spin_loop();
                continue;
            }
            best = self.spd_search(c, f, t);
            // Pairs with the writer's Release fence: if any word read above was written by a
            // rewrite, the sequence read below has moved.
            fence(Ordering::Acquire);
            if t[0].load(Ordering::Relaxed) == seq {
                break;
            }
        }
        let (rank, w0, w3) = best?;
        let slot = w0 as u32;
        let action = Action::from_code((w0 >> 32) as u8)?;
        if slot >= self.caps.policies {
            return None;
        }
        let sa = (w3 >> 32) as u32;
        Some(PolicyMatch {
            slot,
            id: rank as u32,
            action,
            reqid: w3 as u32,
            sa_slot: (sa != NO_SLOT && sa < self.caps.sas).then_some(sa),
        })
    }

    /// The best matching candidate (its rank, first and last words) under one reading of
    /// the lengths table.
    #[inline]
    fn spd_search(&self, c: usize, f: &Flow, t: &[std::sync::atomic::AtomicU64]) -> Option<(u64, u64, u64)> {
        let n = (t[1].load(Ordering::Relaxed) as usize).min(MAX_LENGTHS);
        if n == 0 {
            return None;
        }
        let bank = self.hdr().active_bank.load(Ordering::Acquire);
        let bl = self.lay.bank;
        let dst = addr128(&f.dst, f.family);
        let src = addr128(&f.src, f.family);
        let mut best: Option<(u64, u64, u64)> = None;
        for i in 0..n {
            let floor = t[2 + 2 * i].load(Ordering::Relaxed);
            if best.is_some_and(|(r, _, _)| r < floor) {
                break;
            }
            let lens = t[3 + 2 * i].load(Ordering::Relaxed) as u16;
            let d = mask(dst, lens as u8, f.family);
            let s = mask(src, (lens >> 8) as u8, f.family);
            let meta = c as u64 | u64::from(lens) << 8;
            let (hi, lo) = ((d >> 64) as u64, d as u64);
            let (shi, slo) = ((s >> 64) as u64, s as u64);
            let mut pos = key_hash(self.seed, meta, d, s) as usize;
            let mut value = 0;
            for _ in 0..bl.entries {
                let e = self.spd_entry(bank, pos);
                let v = e[0].load(Ordering::Acquire);
                if v == 0 {
                    break;
                }
                if e[3].load(Ordering::Relaxed) == lo
                    && e[5].load(Ordering::Relaxed) == slo
                    && e[1].load(Ordering::Relaxed) == meta
                    && e[2].load(Ordering::Relaxed) == hi
                    && e[4].load(Ordering::Relaxed) == shi
                {
                    value = v;
                    break;
                }
                pos = pos.wrapping_add(1);
            }
            let (start, len) = ((value & 0xffff_ffff) as usize, (value >> 32 & 0x7fff_ffff) as usize);
            if start.checked_add(len).is_none_or(|end| end > bl.cands_cap) {
                continue;
            }
            for k in start..start + len {
                let w = self.spd_cand(bank, k);
                let rank = w[1].load(Ordering::Relaxed);
                if best.is_some_and(|(r, _, _)| r < rank) {
                    break;
                }
                let w0 = w[0].load(Ordering::Relaxed);
                // The source prefix is in the key: protocol and ports are left to check.
                if proto_matches(w0, f.proto) && ports_match(w[2].load(Ordering::Relaxed), f.sport, f.dport) {
                    // Acquire: pairs with the Release store of a new binding, so the SA
                    // slot it names is seen complete.
                    best = Some((rank, w0, w[3].load(Ordering::Acquire)));
                    break;
                }
            }
        }
        best
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
