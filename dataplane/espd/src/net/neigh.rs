//! The neighbour table: IPv4 and IPv6 next hops to MAC addresses and ports, shared by the
//! worker lcores and the main thread without locks.
//!
//! # Layout
//! A fixed-size, power-of-two array of slots, open addressing with linear probing. A slot is
//! five `AtomicU64`s: the key (an IPv6 address; IPv4 addresses are stored IPv4-mapped,
//! `::ffff:a.b.c.d`, RFC 4291 §2.5.5.2, which never appear on a wire as a neighbour), the
//! *entry* word, the time of the last update and the time of the last resolution request.
//! The entry word packs everything a lookup returns, so a reader sees a MAC and port that
//! were written together, never a torn mix:
//!
//! ```text
//!  63      56 55     48 47                                  0
//! +----------+---------+-------------------------------------+
//! |  flags   |  port   |                 MAC                 |
//! +----------+---------+-------------------------------------+
//! ```
//!
//! # Concurrency
//! * A slot goes from empty (entry `0`) to *claiming* by a CAS, the claimer writes the key,
//!   then publishes the entry with a `Release` store. Keys never change after that (there is
//!   no delete: [`NeighborTable::forget`] and [`NeighborTable::expire`] clear the MAC, not the
//!   key), so a reader that loads a published entry with `Acquire` reads a stable key.
//! * [`NeighborTable::lookup`] is wait-free: at most `capacity` slots, stopping at the first
//!   empty one; a slot being claimed at that instant reads as a miss.
//! * Writers change a published entry by CAS on the entry word (static entries win over
//!   learned ones). A writer that meets a slot being claimed by another thread spins a bounded
//!   number of times for the key to appear (two stores away) and otherwise reports
//!   [`NeighError::Busy`] rather than risk inserting the same key twice.
//! * The rate limit of [`NeighborTable::needs_request`] is a CAS on the slot's request
//!   timestamp: of all the threads that find the interval elapsed, exactly one wins.
//!
//! Inserts stop at 3/4 of the capacity ([`NeighError::Full`]) so that probe sequences stay
//! short and a miss always meets an empty slot. Slots are never reclaimed: a table that fills
//! with stale keys is replaced by the owner (build a new one, copy the entries worth keeping,
//! swap it in behind an `Arc`), as the route table is.
//!
//! Times (`now`, `interval`, `max_age`) are in whatever monotonic unit the caller uses (TSC
//! cycles, milliseconds); they are only compared.

use std::collections::hash_map::RandomState;
use std::fmt;
use std::hash::BuildHasher;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use super::ethernet::Mac;

/// Default number of slots.
pub const DEFAULT_CAPACITY: usize = 4096;

const MIN_CAPACITY: usize = 8;
const MAX_CAPACITY: usize = 1 << 22;

/// A key has been written and the slot belongs to it for good.
const PUBLISHED: u64 = 0x01 << 56;
/// The MAC and port are valid.
const REACHABLE: u64 = 0x02 << 56;
/// Configured by the operator: never overridden by learning, never aged.
const STATIC: u64 = 0x04 << 56;
/// Resolution in progress (an ARP request / neighbour solicitation has been or will be sent).
const INCOMPLETE: u64 = 0x08 << 56;
/// A thread is writing the key; not yet published.
const CLAIMING: u64 = 0x80 << 56;

const MAC_MASK: u64 = (1 << 48) - 1;
const PORT_SHIFT: u32 = 48;

/// The request timestamp of an address never asked for.
const NEVER: u64 = u64::MAX;

/// How often a writer re-reads a slot that another thread is claiming before giving up.
const CLAIM_SPINS: u32 = 1 << 12;

/// Why the table refused an update.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u8)]
pub enum NeighError {
    /// The address cannot be a neighbour: unspecified, multicast, broadcast, or an
    /// IPv4-mapped IPv6 address.
    BadAddress,
    /// The MAC is not a unicast address (multicast, broadcast or all zeros).
    BadMac,
    /// The port index does not fit the entry's 8 bits.
    PortOutOfRange,
    /// The table is 3/4 full.
    Full,
    /// Another thread was inserting into the slot this key needs; try again later.
    Busy,
}

impl fmt::Display for NeighError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NeighError::BadAddress => {
                "not a neighbour address (unspecified, multicast, broadcast or IPv4-mapped)"
            }
            NeighError::BadMac => "not a unicast MAC address",
            NeighError::PortOutOfRange => "port index above 255",
            NeighError::Full => "neighbour table full",
            NeighError::Busy => "neighbour table slot busy",
        })
    }
}

impl std::error::Error for NeighError {}

/// What [`NeighborTable::learn`] did.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Learned {
    /// The address had no MAC before (new, incomplete or expired entry).
    New,
    /// The address had another MAC or port, now replaced.
    Changed,
    /// Same MAC and port as before; the entry's age was reset.
    Refreshed,
    /// A static entry exists: left as configured.
    Static,
}

/// The state of an entry, for display.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum NeighState {
    /// Configured; MAC and port valid.
    Static,
    /// Learned; MAC and port valid.
    Reachable,
    /// Being resolved; no MAC yet.
    Incomplete,
    /// Known address without a MAC (forgotten or expired).
    Unresolved,
}

/// One entry of [`NeighborTable::entries`].
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct NeighborEntry {
    /// The neighbour's address.
    pub ip: IpAddr,
    /// Its MAC, when resolved.
    pub mac: Option<Mac>,
    /// The port it is reached through, when resolved.
    pub port: Option<u16>,
    /// Static, reachable, incomplete, unresolved.
    pub state: NeighState,
    /// When the entry was last created, learned or refreshed (caller's time unit).
    pub updated: u64,
}

#[derive(Default)]
struct Slot {
    key_hi: AtomicU64,
    key_lo: AtomicU64,
    entry: AtomicU64,
    updated: AtomicU64,
    requested: AtomicU64,
}

/// A lock-free map from neighbour IP addresses to `(MAC, port)`; see the module docs.
pub struct NeighborTable {
    slots: Box<[Slot]>,
    mask: usize,
    len: AtomicUsize,
    limit: usize,
    seed: u64,
    /// Bumped whenever a resolved address loses or changes its MAC or port, so that a next
    /// hop cached elsewhere (per SA, in the workers) is known to be stale.
    generation: AtomicU64,
}

impl fmt::Debug for NeighborTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NeighborTable").field("capacity", &self.capacity()).field("len", &self.len()).finish()
    }
}

impl Default for NeighborTable {
    fn default() -> Self {
        Self::new()
    }
}

fn pack(mac: Mac, port: u8, flags: u64) -> u64 {
    flags | (u64::from(port) << PORT_SHIFT) | (mac.to_u64() & MAC_MASK)
}

fn unpack(entry: u64) -> (Mac, u16) {
    (Mac::from_u64(entry & MAC_MASK), u16::from((entry >> PORT_SHIFT) as u8))
}

/// The 128-bit key of an address, or `None` for addresses that are never neighbours.
fn key_of(ip: IpAddr) -> Option<(u64, u64)> {
    let v6 = match ip {
        IpAddr::V4(v4) => {
            if v4.is_unspecified() || v4.is_multicast() || v4.is_broadcast() {
                return None;
            }
            v4.to_ipv6_mapped()
        }
        IpAddr::V6(v6) => {
            if v6.is_unspecified() || v6.is_multicast() || v6.to_ipv4_mapped().is_some() {
                return None;
            }
            v6
        }
    };
    let k = u128::from(v6);
    Some(((k >> 64) as u64, k as u64))
}

fn ip_of(hi: u64, lo: u64) -> IpAddr {
    let v6 = Ipv6Addr::from((u128::from(hi) << 64) | u128::from(lo));
    match v6.to_ipv4_mapped() {
        Some(v4) => IpAddr::V4(v4),
        None => IpAddr::V6(v6),
    }
}

/// SplitMix64's finaliser: a cheap, well-mixing 64-bit hash step.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn port_u8(port: u16) -> Result<u8, NeighError> {
    u8::try_from(port).map_err(|_| NeighError::PortOutOfRange)
}

impl NeighborTable {
    /// A table of [`DEFAULT_CAPACITY`] slots.
    pub fn new() -> NeighborTable {
        Self::with_capacity(DEFAULT_CAPACITY)
    }

    /// A table of `capacity` slots, rounded up to a power of two between 8 and 4 Mi; it holds
    /// 3/4 of that many addresses. Allocates; call at start-up.
    pub fn with_capacity(capacity: usize) -> NeighborTable {
        let cap = capacity.clamp(MIN_CAPACITY, MAX_CAPACITY).next_power_of_two();
        let slots: Box<[Slot]> = (0..cap).map(|_| Slot::default()).collect();
        // A per-process seed, so that on-link hosts cannot choose addresses that collide.
        let seed = RandomState::new().hash_one(0x006e_6569_6768_u64);
        NeighborTable {
            slots,
            mask: cap - 1,
            len: AtomicUsize::new(0),
            limit: cap / 4 * 3,
            seed,
            generation: AtomicU64::new(0),
        }
    }

    /// Changes whenever a resolved address loses or changes its MAC or port: a cached
    /// `lookup` result taken at an equal generation is still what `lookup` would return, or
    /// the address has been resolved since (caching resolved hops only, that is never stale).
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    fn bump(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    /// Number of slots.
    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// Number of addresses in the table (every state).
    pub fn len(&self) -> usize {
        self.len.load(Ordering::Relaxed).min(self.limit)
    }

    /// The table holds no address.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn home(&self, (hi, lo): (u64, u64)) -> usize {
        // Truncation to usize keeps the low bits, which the mask selects anyway.
        (mix(mix(hi ^ self.seed) ^ lo) as usize) & self.mask
    }

    /// The published slot of a key and its entry word; wait-free.
    fn find(&self, key: (u64, u64)) -> Option<(&Slot, u64)> {
        let mut i = self.home(key);
        for _ in 0..self.slots.len() {
            let slot = self.slots.get(i)?;
            let e = slot.entry.load(Ordering::Acquire);
            if e == 0 {
                return None;
            }
            if e & PUBLISHED != 0
                && slot.key_hi.load(Ordering::Relaxed) == key.0
                && slot.key_lo.load(Ordering::Relaxed) == key.1
            {
                return Some((slot, e));
            }
            i = (i + 1) & self.mask;
        }
        None
    }

    /// The slot of a key, inserting it with entry word `initial` if absent. Returns the slot
    /// and `true` if this call inserted it.
    fn find_or_insert(&self, key: (u64, u64), initial: u64, now: u64) -> Result<(&Slot, bool), NeighError> {
        let mut i = self.home(key);
        for _ in 0..self.slots.len() {
            let slot = self.slots.get(i).ok_or(NeighError::Full)?;
            let mut spins = 0;
            loop {
                let e = slot.entry.load(Ordering::Acquire);
                if e == 0 {
                    if self.len.fetch_add(1, Ordering::Relaxed) >= self.limit {
                        self.len.fetch_sub(1, Ordering::Relaxed);
                        return Err(NeighError::Full);
                    }
                    if slot.entry.compare_exchange(0, CLAIMING, Ordering::Acquire, Ordering::Acquire).is_err()
                    {
                        // Another thread claimed it first: look again at what it writes.
                        self.len.fetch_sub(1, Ordering::Relaxed);
                        continue;
                    }
                    slot.key_hi.store(key.0, Ordering::Relaxed);
                    slot.key_lo.store(key.1, Ordering::Relaxed);
                    slot.updated.store(now, Ordering::Relaxed);
                    slot.requested.store(NEVER, Ordering::Relaxed);
                    // Release: the key and times above are visible to whoever sees PUBLISHED.
                    slot.entry.store(initial | PUBLISHED, Ordering::Release);
                    return Ok((slot, true));
                }
                if e & PUBLISHED == 0 {
                    spins += 1;
                    if spins > CLAIM_SPINS {
                        return Err(NeighError::Busy);
                    }
                    std::hint::spin_loop();
                    continue;
                }
                if slot.key_hi.load(Ordering::Relaxed) == key.0
                    && slot.key_lo.load(Ordering::Relaxed) == key.1
                {
                    return Ok((slot, false));
                }
                break;
            }
            i = (i + 1) & self.mask;
        }
        Err(NeighError::Full)
    }

    /// The MAC and port of a resolved neighbour. Wait-free, no allocation: the per-packet call.
    #[inline]
    pub fn lookup(&self, ip: IpAddr) -> Option<(Mac, u16)> {
        let (_, e) = self.find(key_of(ip)?)?;
        (e & REACHABLE != 0).then(|| unpack(e))
    }

    /// Creates or updates the entry of `ip` with a MAC seen on the wire (an ARP packet or
    /// neighbour advertisement). Static entries are left alone ([`Learned::Static`]).
    pub fn learn(&self, ip: IpAddr, mac: Mac, port: u16, now: u64) -> Result<Learned, NeighError> {
        self.learn_inner(ip, mac, port, now, true).map(|l| l.unwrap_or(Learned::New))
    }

    /// Updates the entry of `ip` only if the address is already in the table; `Ok(None)` if
    /// it is not. RFC 826 "Packet Reception": a station updates the sender's entry if it has
    /// one (the merge flag) and adds a new entry only when it is itself the target — the
    /// caller uses [`NeighborTable::learn`] for that case and this for the others.
    pub fn update_existing(
        &self,
        ip: IpAddr,
        mac: Mac,
        port: u16,
        now: u64,
    ) -> Result<Option<Learned>, NeighError> {
        self.learn_inner(ip, mac, port, now, false)
    }

    fn learn_inner(
        &self,
        ip: IpAddr,
        mac: Mac,
        port: u16,
        now: u64,
        create: bool,
    ) -> Result<Option<Learned>, NeighError> {
        let key = key_of(ip).ok_or(NeighError::BadAddress)?;
        if !mac.is_unicast() {
            return Err(NeighError::BadMac);
        }
        let new = pack(mac, port_u8(port)?, PUBLISHED | REACHABLE);
        let (slot, mut cur) = if create {
            match self.find_or_insert(key, new, now)? {
                (_, true) => return Ok(Some(Learned::New)),
                (slot, false) => (slot, slot.entry.load(Ordering::Acquire)),
            }
        } else {
            match self.find(key) {
                Some(found) => found,
                None => return Ok(None),
            }
        };
        loop {
            if cur & STATIC != 0 {
                return Ok(Some(Learned::Static));
            }
            let outcome = if cur == new {
                Learned::Refreshed
            } else if cur & REACHABLE != 0 {
                Learned::Changed
            } else {
                Learned::New
            };
            match slot.entry.compare_exchange_weak(cur, new, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => {
                    slot.updated.store(now, Ordering::Relaxed);
                    if outcome == Learned::Changed {
                        self.bump();
                    }
                    return Ok(Some(outcome));
                }
                Err(seen) => cur = seen,
            }
        }
    }

    /// Adds or replaces a static entry: it wins over anything learned and never ages.
    pub fn add_static(&self, ip: IpAddr, mac: Mac, port: u16, now: u64) -> Result<(), NeighError> {
        let key = key_of(ip).ok_or(NeighError::BadAddress)?;
        if !mac.is_unicast() {
            return Err(NeighError::BadMac);
        }
        let new = pack(mac, port_u8(port)?, PUBLISHED | REACHABLE | STATIC);
        let (slot, inserted) = self.find_or_insert(key, new, now)?;
        if !inserted {
            slot.entry.store(new, Ordering::Release);
            slot.updated.store(now, Ordering::Relaxed);
            self.bump();
        }
        Ok(())
    }

    /// Removes the MAC of `ip` (static or learned); the address stays known, unresolved.
    /// Returns whether the address was in the table.
    pub fn forget(&self, ip: IpAddr) -> bool {
        let Some(key) = key_of(ip) else { return false };
        match self.find(key) {
            Some((slot, _)) => {
                slot.entry.store(PUBLISHED, Ordering::Release);
                self.bump();
                true
            }
            None => false,
        }
    }

    /// Records that `ip` is being resolved: inserts it as incomplete if absent, or marks an
    /// unresolved entry incomplete; a resolved entry is left as it is.
    pub fn mark_incomplete(&self, ip: IpAddr, now: u64) -> Result<(), NeighError> {
        self.incomplete_slot(ip, now).map(|_| ())
    }

    fn incomplete_slot(&self, ip: IpAddr, now: u64) -> Result<&Slot, NeighError> {
        let key = key_of(ip).ok_or(NeighError::BadAddress)?;
        let (slot, inserted) = self.find_or_insert(key, PUBLISHED | INCOMPLETE, now)?;
        if !inserted {
            // Only an entry with neither MAC nor INCOMPLETE changes; losing the race to a
            // learner is fine.
            let _ = slot.entry.compare_exchange(
                PUBLISHED,
                PUBLISHED | INCOMPLETE,
                Ordering::AcqRel,
                Ordering::Relaxed,
            );
        }
        Ok(slot)
    }

    /// Whether the caller should send an ARP request / neighbour solicitation for `ip` now:
    /// `true` for exactly one caller per `interval` per address, across all threads (a CAS on
    /// the slot's request timestamp). `false` if the address is resolved (static or learned),
    /// was asked for less than `interval` ago, or cannot be tracked (bad address, table full).
    /// Marks the address incomplete as [`NeighborTable::mark_incomplete`] does.
    pub fn needs_request(&self, ip: IpAddr, now: u64, interval: u64) -> bool {
        let Ok(slot) = self.incomplete_slot(ip, now) else { return false };
        if slot.entry.load(Ordering::Acquire) & REACHABLE != 0 {
            return false;
        }
        let last = slot.requested.load(Ordering::Relaxed);
        if last != NEVER && now.saturating_sub(last) < interval {
            return false;
        }
        slot.requested.compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed).is_ok()
    }

    /// Removes the MAC of learned entries not refreshed for `max_age` or more (static entries
    /// never age); they become unresolved and are resolved again on next use. Returns how many
    /// expired. Walks the whole table: for the main thread, every second or so.
    pub fn expire(&self, now: u64, max_age: u64) -> usize {
        let mut n = 0;
        for slot in self.slots.iter() {
            let e = slot.entry.load(Ordering::Acquire);
            if e & PUBLISHED == 0 || e & STATIC != 0 || e & REACHABLE == 0 {
                continue;
            }
            if now.saturating_sub(slot.updated.load(Ordering::Relaxed)) < max_age {
                continue;
            }
            // If a learner refreshed it meanwhile the CAS fails and the entry stays.
            if slot.entry.compare_exchange(e, PUBLISHED, Ordering::AcqRel, Ordering::Relaxed).is_ok() {
                n += 1;
                self.bump();
            }
        }
        n
    }

    /// A snapshot of every address in the table, for display (`espctl neigh`). Allocates.
    pub fn entries(&self) -> Vec<NeighborEntry> {
        let mut out = Vec::new();
        for slot in self.slots.iter() {
            let e = slot.entry.load(Ordering::Acquire);
            if e & PUBLISHED == 0 {
                continue;
            }
            let ip = ip_of(slot.key_hi.load(Ordering::Relaxed), slot.key_lo.load(Ordering::Relaxed));
            let (mac, port) = unpack(e);
            let resolved = e & REACHABLE != 0;
            let state = if e & STATIC != 0 {
                NeighState::Static
            } else if resolved {
                NeighState::Reachable
            } else if e & INCOMPLETE != 0 {
                NeighState::Incomplete
            } else {
                NeighState::Unresolved
            };
            out.push(NeighborEntry {
                ip,
                mac: resolved.then_some(mac),
                port: resolved.then_some(port),
                state,
                updated: slot.updated.load(Ordering::Relaxed),
            });
        }
        out
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;
    use std::sync::atomic::AtomicBool;
    use std::sync::Barrier;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }
    const M1: Mac = Mac([0x02, 0, 0, 0, 0, 1]);
    const M2: Mac = Mac([0x02, 0, 0, 0, 0, 2]);

    /// A cached next hop stays valid exactly while the generation does not move: only a
    /// resolved address losing or changing its MAC or port moves it.
    #[test]
    fn generation_moves_when_a_resolved_hop_changes() {
        let t = NeighborTable::with_capacity(16);
        let a = ip("198.18.0.2");
        let g0 = t.generation();
        assert_eq!(t.learn(a, M1, 1, 10), Ok(Learned::New));
        assert!(t.needs_request(ip("198.18.0.3"), 10, 1));
        assert_eq!(t.learn(a, M1, 1, 11), Ok(Learned::Refreshed));
        assert_eq!(t.generation(), g0, "new, incomplete and refreshed entries change no cached hop");
        assert_eq!(t.learn(a, M2, 1, 12), Ok(Learned::Changed));
        let g1 = t.generation();
        assert!(g1 > g0, "a changed MAC");
        t.add_static(a, M1, 2, 13).unwrap();
        let g2 = t.generation();
        assert!(g2 > g1, "a static entry replacing a learned one");
        assert!(t.forget(a));
        let g3 = t.generation();
        assert!(g3 > g2, "a forgotten MAC");
        assert_eq!(t.learn(a, M1, 1, 14), Ok(Learned::New));
        assert_eq!(t.generation(), g3);
        assert_eq!(t.expire(100, 10), 1);
        assert!(t.generation() > g3, "an aged-out MAC");
    }

    #[test]
    fn learn_lookup_update() {
        let t = NeighborTable::with_capacity(16);
        assert_eq!(t.capacity(), 16);
        assert_eq!(t.lookup(ip("198.18.0.2")), None);
        assert_eq!(t.learn(ip("198.18.0.2"), M1, 1, 10), Ok(Learned::New));
        assert_eq!(t.lookup(ip("198.18.0.2")), Some((M1, 1)));
        assert_eq!(t.learn(ip("198.18.0.2"), M1, 1, 11), Ok(Learned::Refreshed));
        assert_eq!(t.learn(ip("198.18.0.2"), M2, 3, 12), Ok(Learned::Changed));
        assert_eq!(t.lookup(ip("198.18.0.2")), Some((M2, 3)));
        // IPv4 and the IPv6 address with the same low bits are different keys.
        assert_eq!(t.lookup(ip("::c612:2")), None);
        assert_eq!(t.learn(ip("2001:db8::2"), M1, 0, 13), Ok(Learned::New));
        assert_eq!(t.lookup(ip("2001:db8::2")), Some((M1, 0)));
        assert_eq!(t.len(), 2);
    }

    #[test]
    fn rejects_bad_input() {
        let t = NeighborTable::with_capacity(16);
        for bad in ["0.0.0.0", "224.0.0.1", "255.255.255.255", "::", "ff02::1", "::ffff:10.0.0.1"] {
            assert_eq!(t.learn(ip(bad), M1, 0, 0), Err(NeighError::BadAddress), "{bad}");
            assert!(!t.needs_request(ip(bad), 0, 1));
            assert_eq!(t.lookup(ip(bad)), None);
        }
        assert_eq!(t.learn(ip("10.0.0.1"), Mac::BROADCAST, 0, 0), Err(NeighError::BadMac));
        assert_eq!(t.learn(ip("10.0.0.1"), Mac::ZERO, 0, 0), Err(NeighError::BadMac));
        assert_eq!(t.learn(ip("10.0.0.1"), Mac([1, 0, 0x5e, 0, 0, 1]), 0, 0), Err(NeighError::BadMac));
        assert_eq!(t.learn(ip("10.0.0.1"), M1, 256, 0), Err(NeighError::PortOutOfRange));
        assert!(t.is_empty());
    }

    #[test]
    fn static_entries_win() {
        let t = NeighborTable::with_capacity(16);
        t.learn(ip("10.0.0.1"), M1, 0, 0).unwrap();
        t.add_static(ip("10.0.0.1"), M2, 1, 0).unwrap();
        assert_eq!(t.learn(ip("10.0.0.1"), M1, 0, 5), Ok(Learned::Static));
        assert_eq!(t.update_existing(ip("10.0.0.1"), M1, 0, 5), Ok(Some(Learned::Static)));
        assert_eq!(t.lookup(ip("10.0.0.1")), Some((M2, 1)));
        assert_eq!(t.expire(1_000_000, 1), 0, "static entries never age");
        assert!(!t.needs_request(ip("10.0.0.1"), 0, 1));
        assert!(t.forget(ip("10.0.0.1")));
        assert_eq!(t.lookup(ip("10.0.0.1")), None);
        assert_eq!(t.learn(ip("10.0.0.1"), M1, 0, 5), Ok(Learned::New));
        assert!(!t.forget(ip("10.0.0.9")));
    }

    #[test]
    fn update_existing_does_not_create() {
        let t = NeighborTable::with_capacity(16);
        assert_eq!(t.update_existing(ip("10.0.0.1"), M1, 0, 0), Ok(None));
        assert!(t.is_empty());
        t.mark_incomplete(ip("10.0.0.1"), 0).unwrap();
        assert_eq!(t.update_existing(ip("10.0.0.1"), M1, 0, 0), Ok(Some(Learned::New)));
        assert_eq!(t.lookup(ip("10.0.0.1")), Some((M1, 0)));
    }

    #[test]
    fn rate_limited_requests_and_states() {
        let t = NeighborTable::with_capacity(16);
        let a = ip("10.0.0.7");
        assert!(t.needs_request(a, 100, 50));
        assert!(!t.needs_request(a, 100, 50));
        assert!(!t.needs_request(a, 149, 50));
        assert!(t.needs_request(a, 150, 50));
        assert!(!t.needs_request(a, 120, 50), "time going backwards does not re-arm");
        assert_eq!(t.entries()[0].state, NeighState::Incomplete);
        assert_eq!(t.entries()[0].mac, None);
        t.learn(a, M1, 2, 160).unwrap();
        assert!(!t.needs_request(a, 1000, 50), "resolved");
        let e = t.entries();
        assert_eq!(
            e,
            vec![NeighborEntry {
                ip: a,
                mac: Some(M1),
                port: Some(2),
                state: NeighState::Reachable,
                updated: 160
            }]
        );
        assert_eq!(t.expire(200, 100), 0);
        assert_eq!(t.expire(260, 100), 1);
        assert_eq!(t.lookup(a), None);
        assert_eq!(t.entries()[0].state, NeighState::Unresolved);
        assert!(t.needs_request(a, 300, 50));
        assert_eq!(t.entries()[0].state, NeighState::Incomplete);
    }

    #[test]
    fn fills_to_three_quarters_then_reports_full() {
        let t = NeighborTable::with_capacity(16);
        for i in 0..12u8 {
            t.learn(IpAddr::V4(Ipv4Addr::new(10, 0, 0, i + 1)), M1, 0, 0).unwrap();
        }
        assert_eq!(t.learn(ip("10.0.1.1"), M1, 0, 0), Err(NeighError::Full));
        assert!(!t.needs_request(ip("10.0.1.1"), 0, 1));
        // Existing keys still update and every one is still found.
        assert_eq!(t.learn(ip("10.0.0.5"), M2, 0, 0), Ok(Learned::Changed));
        for i in 0..12u8 {
            assert!(t.lookup(IpAddr::V4(Ipv4Addr::new(10, 0, 0, i + 1))).is_some());
        }
        assert_eq!(t.lookup(ip("10.0.1.2")), None, "a miss terminates on a full-ish table");
        assert_eq!(t.len(), 12);
    }

    /// A MAC whose bytes and port all derive from one value `v`, so that a reader can tell a
    /// MAC that was written from a mix of two writes.
    fn pattern(v: u8) -> (Mac, u16) {
        (Mac([0x02, v, v ^ 0x55, v.wrapping_add(1), !v, v.rotate_left(3)]), u16::from(v % 7))
    }

    fn check_pattern(mac: Mac, port: u16) -> bool {
        let v = mac.0[1];
        (mac, port) == pattern(v)
    }

    #[test]
    fn threads_hammer_learn_and_lookup_without_torn_entries() {
        const KEYS: u32 = 256;
        let t = NeighborTable::with_capacity(1024);
        let stop = AtomicBool::new(false);
        let start = Barrier::new(6);
        let key = |i: u32| -> IpAddr {
            if i.is_multiple_of(2) {
                IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i + 1))
            } else {
                IpAddr::V6(Ipv6Addr::from(0x2001_0db8_u128 << 96 | u128::from(i)))
            }
        };
        std::thread::scope(|s| {
            for w in 0..3u32 {
                let (t, start) = (&t, &start);
                s.spawn(move || {
                    start.wait();
                    let mut x = 0x9e37_79b9u32.wrapping_mul(w + 1);
                    for n in 0..200_000u32 {
                        x ^= x << 13;
                        x ^= x >> 17;
                        x ^= x << 5;
                        let (mac, port) = pattern(x as u8);
                        match t.learn(key(x % KEYS), mac, port, u64::from(n)) {
                            Ok(_) | Err(NeighError::Busy) => {}
                            Err(e) => panic!("learn: {e}"),
                        }
                        if n % 1000 == 0 {
                            let _ = t.needs_request(key(KEYS + x % 64), u64::from(n), 10);
                        }
                    }
                });
            }
            for _ in 0..2 {
                let (t, stop, start) = (&t, &stop, &start);
                s.spawn(move || {
                    start.wait();
                    let mut hits = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        for i in 0..KEYS {
                            if let Some((mac, port)) = t.lookup(key(i)) {
                                assert!(check_pattern(mac, port), "torn entry {mac} port {port}");
                                hits += 1;
                            }
                        }
                    }
                    assert!(hits > 0);
                });
            }
            start.wait();
            // The main thread plays its part too: snapshots and ageing while workers run.
            for round in 0..50 {
                for e in t.entries() {
                    if let (Some(mac), Some(port)) = (e.mac, e.port) {
                        assert!(check_pattern(mac, port));
                    }
                }
                if round % 10 == 0 {
                    t.expire(u64::MAX, 1);
                }
                std::thread::yield_now();
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
            stop.store(true, Ordering::Relaxed);
        });
        // No key was inserted twice: every address appears once in the snapshot.
        let mut ips: Vec<IpAddr> = t.entries().into_iter().map(|e| e.ip).collect();
        let n = ips.len();
        ips.sort();
        ips.dedup();
        assert_eq!(ips.len(), n, "duplicate keys");
        assert!(n >= KEYS as usize, "{n}");
    }

    #[test]
    fn one_request_per_interval_across_threads() {
        let t = NeighborTable::with_capacity(64);
        let a = ip("2001:db8::77");
        for (round, now) in [(0, 1000u64), (1, 1010), (2, 1100)] {
            let start = Barrier::new(8);
            let winners = AtomicUsize::new(0);
            std::thread::scope(|s| {
                for _ in 0..8 {
                    s.spawn(|| {
                        start.wait();
                        for _ in 0..1000 {
                            if t.needs_request(a, now, 50) {
                                winners.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    });
                }
            });
            let expected = if round == 1 { 0 } else { 1 };
            assert_eq!(winners.load(Ordering::Relaxed), expected, "round {round}");
        }
    }
}
