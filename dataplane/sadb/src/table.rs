//! SA slots: install, update, delete, reclaim; listing.
//!
//! Slot life: FREE → (writer fills it, resets its hot state, publishes it in the index)
//! LIVE → (writer unlinks it from the index and the policies) RETIRED with the epoch of
//! the unlink → (every reader has passed that epoch) FREE. Retired slots wait in a FIFO in
//! the region, so a writer that dies does not leak them: the next writer reclaims them.

use std::sync::atomic::Ordering;

use crate::abi::*;
use crate::index::{dst_words, entry};
use crate::layout::SA_DROP_COUNTERS;
use crate::region::{load_words, store_words, Region};
use crate::shm::{SLOT_FREE, SLOT_LIVE, SLOT_RETIRED};
use crate::writer::Writer;
use crate::SadbError;

/// What identifies an SA: SPI and direction, plus the destination for every outbound SA,
/// and for inbound SAs when the region indexes them by SPI and destination.
///
/// The peer chooses the SPI of an outbound SA, so two peers may choose the same one: the
/// outbound SAs (SPI, peer A) and (SPI, peer B) are two SAs, and only a second (SPI, peer A)
/// is a duplicate. A key without a destination names an outbound SA only while a single one
/// has that SPI; with several, lookups find none and changes are refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SaKey {
    /// SPI.
    pub spi: u32,
    /// Direction.
    pub direction: Direction,
    /// Destination address (the outer one, as [`SaConfig::dst`] holds it).
    pub dst: Option<[u8; 16]>,
}

impl std::fmt::Display for SaKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let dir = match self.direction {
            Direction::In => "in",
            Direction::Out => "out",
        };
        write!(f, "SPI {:#010x} {dir}", self.spi)
    }
}

/// The dataplane's counters of one SA.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SaStats {
    /// Outbound: last sequence number sent; inbound: highest accepted.
    pub seq: u64,
    /// Packets.
    pub packets: u64,
    /// Bytes.
    pub bytes: u64,
    /// Drops by reason code.
    pub drops: [u64; SA_DROP_COUNTERS],
    /// `HOT_FLAG_*`.
    pub flags: u64,
    /// Unix seconds of the last packet.
    pub last_used: u64,
}

/// A live SA as listed. Its copy of the keys is wiped when it is dropped
/// ([`SaConfig::wipe_keys`]); a `config` copied out of it is the caller's to wipe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SaEntry {
    /// Its slot.
    pub slot: u32,
    /// Its configuration version.
    pub version: u32,
    /// Its configuration.
    pub config: SaConfig,
    /// Its counters.
    pub stats: SaStats,
}

impl Drop for SaEntry {
    fn drop(&mut self) {
        self.config.wipe_keys();
    }
}

/// Appends to a list of entries without leaving a copy behind: a `Vec` that grows moves its
/// elements bitwise and frees the old buffer unwiped, so grow by cloning into a larger one
/// and dropping (wiping) the old entries instead.
fn push_wiping(v: &mut Vec<SaEntry>, e: SaEntry) {
    if v.len() == v.capacity() {
        let mut bigger = Vec::with_capacity(v.capacity().saturating_mul(2).max(4));
        bigger.extend(v.iter().cloned());
        *v = bigger;
    }
    v.push(e);
}

fn invalid(field: &'static str, reason: impl Into<String>) -> SadbError {
    SadbError::Invalid { field, reason: reason.into() }
}

/// Checks an SA record before it is installed.
pub(crate) fn validate_sa(c: &SaConfig, max_window: u32) -> Result<(), SadbError> {
    let dir = Direction::from_code(c.direction)
        .ok_or_else(|| invalid("direction", format!("unknown code {}", c.direction)))?;
    SaMode::from_code(c.mode).ok_or_else(|| invalid("mode", format!("unknown code {}", c.mode)))?;
    if c.family != 4 && c.family != 6 {
        return Err(invalid("family", format!("{} is neither 4 nor 6", c.family)));
    }
    if c.flags & !SA_FLAGS_KNOWN != 0 {
        return Err(invalid("flags", format!("unknown bits {:#04x}", c.flags & !SA_FLAGS_KNOWN)));
    }
    Backend::from_code(c.backend).ok_or_else(|| invalid("backend", format!("unknown code {}", c.backend)))?;
    let cipher =
        Cipher::from_code(c.cipher).ok_or_else(|| invalid("cipher", format!("unknown code {}", c.cipher)))?;
    let integ =
        Integ::from_code(c.integ).ok_or_else(|| invalid("integ", format!("unknown code {}", c.integ)))?;
    match cipher {
        Cipher::AesGcm16 | Cipher::AesCbc if !matches!(c.cipher_key_len, 16 | 24 | 32) => {
            return Err(invalid(
                "cipher_key_len",
                format!("{} bytes; AES takes 16, 24 or 32", c.cipher_key_len),
            ));
        }
        Cipher::Null if c.cipher_key_len != 0 => {
            return Err(invalid("cipher_key_len", "NULL encryption takes no key"));
        }
        _ => {}
    }
    let want_integ_len = match integ {
        Integ::None => 0,
        Integ::HmacSha1_96 => 20,
        Integ::HmacSha256_128 => 32,
        Integ::HmacSha384_192 => 48,
        Integ::HmacSha512_256 => 64,
    };
    if c.integ_key_len != want_integ_len {
        return Err(invalid(
            "integ_key_len",
            format!("{} bytes; the algorithm takes {want_integ_len}", c.integ_key_len),
        ));
    }
    match (cipher, integ) {
        (Cipher::AesGcm16, Integ::None) => {}
        (Cipher::AesGcm16, _) => {
            return Err(invalid("integ", "AES-GCM authenticates itself; no integrity algorithm"))
        }
        (_, Integ::None) => return Err(invalid("integ", "AES-CBC and NULL need an integrity algorithm")),
        _ => {}
    }
    let no_replay = c.flags & SA_FLAG_NO_REPLAY != 0;
    if dir == Direction::In {
        if no_replay && c.replay_window != 0 {
            return Err(invalid("replay_window", "must be 0 when anti-replay is off"));
        }
        if !no_replay && (c.replay_window == 0 || c.replay_window > max_window) {
            return Err(invalid(
                "replay_window",
                format!(
                    "{} is outside 1..={max_window} (0 needs anti-replay turned off explicitly)",
                    c.replay_window
                ),
            ));
        }
    }
    if c.flags & SA_FLAG_UDP_ENCAP != 0 && (c.encap_sport == 0 || c.encap_dport == 0) {
        return Err(invalid("encap_port", "UDP encapsulation needs both ports"));
    }
    for (name, ts) in [("ts_local", &c.ts_local), ("ts_remote", &c.ts_remote)] {
        if !matches!(ts.family, 0 | 4 | 6) {
            return Err(invalid(name, format!("family {} is neither 4 nor 6", ts.family)));
        }
        if ts.family != 0 && (ts.addr_start > ts.addr_end || ts.port_start > ts.port_end) {
            return Err(invalid(name, "range ends before it starts"));
        }
    }
    for (name, soft, hard) in
        [("soft_bytes", c.soft_bytes, c.hard_bytes), ("soft_packets", c.soft_packets, c.hard_packets)]
    {
        if soft != 0 && hard != 0 && soft > hard {
            return Err(invalid(name, "soft lifetime beyond the hard one"));
        }
    }
    Ok(())
}

/// Zeroes a slot's configuration record (keys included) in the region. Only for a slot no
/// reader can reach: a free one, or a retired one whose grace period is over.
fn wipe_config(r: &Region, slot: u32) {
    for w in r.config_words(slot) {
        w.store(0, Ordering::Relaxed);
    }
}

impl Region {
    fn stats_of(&self, slot: u32) -> SaStats {
        let h = self.hot(slot);
        let mut drops = [0u64; SA_DROP_COUNTERS];
        for (d, c) in drops.iter_mut().zip(&h.drops) {
            *d = c.load(Ordering::Relaxed);
        }
        SaStats {
            seq: h.seq.load(Ordering::Relaxed),
            packets: h.packets.load(Ordering::Relaxed),
            bytes: h.bytes.load(Ordering::Relaxed),
            drops,
            flags: h.flags.load(Ordering::Relaxed),
            last_used: h.last_used.load(Ordering::Relaxed),
        }
    }

    /// A live SA by slot.
    pub fn sa_entry(&self, slot: u32) -> Option<SaEntry> {
        if slot >= self.caps.sas {
            return None;
        }
        let (config, version) = self.read_config(slot)?;
        Some(SaEntry { slot, version, config, stats: self.stats_of(slot) })
    }

    /// Every live SA, in slot order. Reads without the writer lock. The entries' keys are
    /// wiped when they are dropped, and no copy is left in memory the list frees.
    pub fn list_sas(&self) -> Vec<SaEntry> {
        let live = |s: &u32| self.slot_hdr(*s).state.load(Ordering::Acquire) == SLOT_LIVE;
        // Sized for the SAs live now, so that the list does not usually grow.
        let mut out = Vec::with_capacity((0..self.caps.sas).filter(live).count());
        for e in (0..self.caps.sas).filter(live).filter_map(|s| self.sa_entry(s)) {
            push_wiping(&mut out, e);
        }
        out
    }

    /// The slot of a live SA. An outbound key without a destination finds the SA only when
    /// it is the one outbound SA with that SPI.
    pub fn find_sa(&self, key: &SaKey) -> Option<u32> {
        let out = key.direction == Direction::Out;
        match (out, self.key_dst(key)) {
            (true, None) => match self.index_find_all(key.spi, true, None)[..] {
                [slot] => Some(slot),
                _ => None,
            },
            (_, dst) => self.index_find(key.spi, out, dst),
        }
    }

    /// The slots of every live SA with this SPI and direction: several outbound ones when
    /// peers chose the same SPI (at most the index's probe limit).
    pub fn find_sas(&self, spi: u32, direction: Direction) -> Vec<u32> {
        self.index_find_all(spi, direction == Direction::Out, None)
    }

    /// The part of a key's destination the index compares: always for outbound SAs, for
    /// inbound ones when the region indexes them by SPI and destination.
    fn key_dst<'k>(&self, key: &'k SaKey) -> Option<&'k [u8; 16]> {
        if key.direction == Direction::Out || self.caps.spi_dst_index {
            key.dst.as_ref()
        } else {
            None
        }
    }

    /// Writer: the index position of the one SA a key names in bank `bank`.
    fn locate(&self, bank: u32, key: &SaKey) -> Result<usize, SadbError> {
        let out = key.direction == Direction::Out;
        match self.index_positions(bank, key.spi, out, self.key_dst(key))[..] {
            [] => Err(SadbError::NotFound { key: *key }),
            [pos] => Ok(pos),
            ref several => Err(invalid(
                "dst",
                format!(
                    "{} SAs have SPI {:#010x} {}; name the destination",
                    several.len(),
                    key.spi,
                    if out { "out" } else { "in" }
                ),
            )),
        }
    }
}

impl Writer<'_> {
    /// Installs an SA and returns its slot. Inbound SAs become visible to lookups;
    /// outbound ones are bound to the Protect policies with the same reqid (the newest SA
    /// of a reqid wins, which is make-before-break rekeying).
    pub fn add_sa(&mut self, cfg: &SaConfig) -> Result<u32, SadbError> {
        self.add_sa_with_seq(cfg, 0)
    }

    /// Installs an SA as [`Writer::add_sa`] does, with its sequence number preset in the hot
    /// state before the SA becomes visible: outbound, the last number sent (the first packet
    /// carries `last_seq + 1`), as `ip xfrm state ... replay-oseq` sets it; inbound, the highest
    /// number received (the dataplane counts every number up to it as seen). An SA moved from
    /// another gateway so continues where it stopped, and reuses no number. Without ESN,
    /// `last_seq` is at most 2^32 - 1.
    pub fn add_sa_with_seq(&mut self, cfg: &SaConfig, last_seq: u64) -> Result<u32, SadbError> {
        let r = self.r;
        validate_sa(cfg, r.caps.max_replay_window)?;
        if cfg.flags & SA_FLAG_ESN == 0 && last_seq > u64::from(u32::MAX) {
            return Err(invalid("seq", format!("{last_seq} needs 64-bit sequence numbers (ESN)")));
        }
        let dir = Direction::from_code(cfg.direction).unwrap_or(Direction::In);
        let key = SaKey { spi: cfg.spi, direction: dir, dst: Some(cfg.dst) };
        let out = dir == Direction::Out;
        let bank = r.hdr().active_index.load(Ordering::Relaxed);
        // Outbound: (SPI, destination), so another peer's SA with the same SPI is no duplicate.
        if r.index_position(bank, cfg.spi, out, r.key_dst(&key)).is_some() {
            return Err(SadbError::Duplicate { key });
        }
        let slot = match self.pop_free() {
            Some(s) => s,
            None => {
                r.hdr().sa_full.fetch_add(1, Ordering::Relaxed);
                return Err(SadbError::Full { what: "SA table" });
            }
        };
        // The slot is unreachable (free), so nothing reads it while it is filled.
        let h = r.slot_hdr(slot);
        let seq = h.seq.load(Ordering::Relaxed);
        h.seq.store(seq | 1, Ordering::Relaxed);
        store_words(r.config_words(slot), cfg);
        let hot = r.hot(slot);
        for a in [&hot.packets, &hot.bytes, &hot.flags, &hot.last_used, &hot.owner] {
            a.store(0, Ordering::Relaxed);
        }
        hot.seq.store(last_seq, Ordering::Relaxed);
        for d in hot.drops.iter().chain(r.replay_bitmap(slot)) {
            d.store(0, Ordering::Relaxed);
        }
        h.spi.store(cfg.spi, Ordering::Relaxed);
        h.direction.store(u32::from(cfg.direction), Ordering::Relaxed);
        h.reqid.store(cfg.reqid, Ordering::Relaxed);
        h.installed.store(r.hdr().installs.fetch_add(1, Ordering::Relaxed) + 1, Ordering::Relaxed);
        let (hi, lo) = dst_words(&cfg.dst);
        h.dst[0].store(hi, Ordering::Relaxed);
        h.dst[1].store(lo, Ordering::Relaxed);
        h.state.store(SLOT_LIVE, Ordering::Relaxed);
        h.seq.store((seq | 1).wrapping_add(1), Ordering::Release);
        if r.index_insert(bank, entry(cfg.spi, out, slot)).is_none() {
            // The probe chain is full: give the slot back untouched by readers.
            wipe_config(r, slot);
            h.state.store(SLOT_FREE, Ordering::Release);
            self.push_free(slot);
            return Err(SadbError::Full { what: "SPI index (probe chain)" });
        }
        if out && cfg.reqid != 0 {
            let installed = h.installed.load(Ordering::Relaxed);
            self.bindings().sa_added(r, cfg.reqid, installed, slot);
        }
        r.hdr().sa_live.fetch_add(1, Ordering::Relaxed);
        self.committed();
        Ok(slot)
    }

    /// Changes a live SA's configuration in place (lifetimes, keys of a manual SA, the
    /// UDP encapsulation ports and outer addresses after a NAT rebinding, ...); the SPI,
    /// direction and reqid cannot change, nor an inbound SA's destination (it may key the
    /// SPI index). An outbound SA may move to a new destination unless another outbound SA
    /// with its SPI is there already (the entry in the index names the slot, whose header
    /// holds the destination, so the entry stays).
    /// Readers see the old or the new record, never a mix, and rebuild their cached
    /// context when the version changes; the hot state (sequence number, counters) stays.
    pub fn update_sa(&mut self, key: &SaKey, f: impl FnOnce(&mut SaConfig)) -> Result<(), SadbError> {
        let r = self.r;
        let bank = r.hdr().active_index.load(Ordering::Relaxed);
        let pos = r.locate(bank, key)?;
        let slot = crate::index::entry_slot(r.index(bank)[pos].load(Ordering::Relaxed));
        if slot >= r.caps.sas {
            return Err(SadbError::NotFound { key: *key });
        }
        let mut cfg: SaConfig = load_words(r.config_words(slot));
        let (spi, direction, dst, reqid) = (cfg.spi, cfg.direction, cfg.dst, cfg.reqid);
        f(&mut cfg);
        let outbound = direction == Direction::Out as u8;
        let checked = if (cfg.spi, cfg.direction, cfg.reqid) != (spi, direction, reqid) {
            Err(invalid("spi", "an update cannot change the SPI, direction or reqid"))
        } else if cfg.dst != dst && !outbound {
            Err(invalid("dst", "an update cannot change an inbound SA's destination"))
        } else if cfg.dst != dst && r.index_position(bank, spi, true, Some(&cfg.dst)).is_some() {
            Err(SadbError::Duplicate { key: SaKey { spi, direction: Direction::Out, dst: Some(cfg.dst) } })
        } else {
            validate_sa(&cfg, r.caps.max_replay_window)
        };
        if let Err(e) = checked {
            cfg.wipe_keys();
            return Err(e);
        }
        let h = r.slot_hdr(slot);
        let seq = h.seq.load(Ordering::Relaxed);
        h.seq.store(seq | 1, Ordering::Relaxed);
        std::sync::atomic::fence(Ordering::Release);
        store_words(r.config_words(slot), &cfg);
        if cfg.dst != dst {
            let (hi, lo) = dst_words(&cfg.dst);
            h.dst[0].store(hi, Ordering::Relaxed);
            h.dst[1].store(lo, Ordering::Relaxed);
        }
        cfg.wipe_keys();
        h.seq.store((seq | 1).wrapping_add(1), Ordering::Release);
        self.committed();
        Ok(())
    }

    /// Deletes an SA: unlinked at once, its slot reused after a grace period.
    pub fn del_sa(&mut self, key: &SaKey) -> Result<(), SadbError> {
        let r = self.r;
        let out = key.direction == Direction::Out;
        let bank = r.hdr().active_index.load(Ordering::Relaxed);
        let pos = r.locate(bank, key)?;
        let slot = crate::index::entry_slot(r.index(bank)[pos].load(Ordering::Relaxed));
        r.index_remove_at(bank, pos);
        r.hdr().tombstones.fetch_add(1, Ordering::Relaxed);
        if out {
            let reqid = r.slot_hdr(slot).reqid.load(Ordering::Relaxed);
            self.bindings().sa_removed(r, reqid, slot);
        }
        self.retire(slot);
        r.hdr().sa_live.fetch_sub(1, Ordering::Relaxed);
        self.maybe_rebuild_index();
        self.reclaim();
        self.committed();
        Ok(())
    }

    /// Deletes every SA; returns how many.
    pub fn flush_sas(&mut self) -> usize {
        let keys: Vec<SaKey> = self
            .r
            .list_sas()
            .iter()
            .filter_map(|e| {
                Direction::from_code(e.config.direction).map(|d| SaKey {
                    spi: e.config.spi,
                    direction: d,
                    dst: Some(e.config.dst),
                })
            })
            .collect();
        keys.iter().filter(|k| self.del_sa(k).is_ok()).count()
    }

    fn retire(&mut self, slot: u32) {
        let r = self.r;
        let h = r.slot_hdr(slot);
        // Before the epoch moves: a reader that caches lookups against `changes` (espd's
        // flow cache) and has passed a quiescent point at this epoch sees the new value, so
        // it never uses a cached slot after the slot can be reused.
        self.committed();
        h.state.store(SLOT_RETIRED, Ordering::Release);
        let epoch = self.advance_epoch();
        h.retire_epoch.store(epoch, Ordering::Relaxed);
        let tail = r.hdr().retired_tail.load(Ordering::Relaxed);
        r.retired()[(tail % r.caps.sas) as usize].store(slot, Ordering::Relaxed);
        r.hdr().retired_tail.store(tail.wrapping_add(1), Ordering::Relaxed);
    }

    /// Frees retired slots that every reader has moved past; returns how many.
    pub fn reclaim(&mut self) -> u32 {
        let r = self.r;
        let hdr = r.hdr();
        let mut head = hdr.retired_head.load(Ordering::Relaxed);
        let tail = hdr.retired_tail.load(Ordering::Relaxed);
        if head == tail {
            return 0;
        }
        let min = self.min_seen();
        let mut n = 0;
        while head != tail {
            let slot = r.retired()[(head % r.caps.sas) as usize].load(Ordering::Relaxed);
            if slot >= r.caps.sas {
                // A corrupted entry: skip it rather than free a wrong slot.
                head = head.wrapping_add(1);
                continue;
            }
            let h = r.slot_hdr(slot);
            if h.retire_epoch.load(Ordering::Relaxed) > min {
                break;
            }
            // No reader can reach the slot any more: its keys need not outlive it in the file.
            wipe_config(r, slot);
            h.state.store(SLOT_FREE, Ordering::Release);
            self.push_free(slot);
            head = head.wrapping_add(1);
            n += 1;
        }
        hdr.retired_head.store(head, Ordering::Relaxed);
        n
    }

    /// Slots retired but not yet reusable.
    pub fn retired_pending(&self) -> u32 {
        let h = self.r.hdr();
        h.retired_tail.load(Ordering::Relaxed).wrapping_sub(h.retired_head.load(Ordering::Relaxed))
    }

    fn pop_free(&mut self) -> Option<u32> {
        let hdr = self.r.hdr();
        if hdr.free_top.load(Ordering::Relaxed) == 0 {
            self.reclaim();
        }
        let top = hdr.free_top.load(Ordering::Relaxed);
        if top == 0 || top > self.r.caps.sas {
            return None;
        }
        let slot = self.r.free_stack()[(top - 1) as usize].load(Ordering::Relaxed);
        if slot >= self.r.caps.sas || self.r.slot_hdr(slot).state.load(Ordering::Relaxed) != SLOT_FREE {
            return None;
        }
        hdr.free_top.store(top - 1, Ordering::Relaxed);
        Some(slot)
    }

    fn push_free(&mut self, slot: u32) {
        let hdr = self.r.hdr();
        let top = hdr.free_top.load(Ordering::Relaxed);
        if let Some(e) = self.r.free_stack().get(top as usize) {
            e.store(slot, Ordering::Relaxed);
            hdr.free_top.store(top + 1, Ordering::Relaxed);
        }
    }

    /// Rebuilds the SPI index into the other bank once tombstones pass an eighth of it.
    /// Never waits: the other bank is rewritten only once every reader has passed the
    /// grace period of the previous flip; until then the tombstones stay (probes stay
    /// bounded by `MAX_PROBE` regardless).
    fn maybe_rebuild_index(&mut self) {
        let r = self.r;
        let h = r.hdr();
        if (h.tombstones.load(Ordering::Relaxed) as usize) < r.lay.index_len / 8 {
            return;
        }
        if self.min_seen() < h.index_flip_epoch.load(Ordering::Relaxed) {
            return;
        }
        if let Some(next) = r.index_rebuild() {
            h.active_index.store(next, Ordering::Release);
            h.tombstones.store(0, Ordering::Relaxed);
            let e = self.advance_epoch();
            h.index_flip_epoch.store(e, Ordering::Relaxed);
        }
    }
}
