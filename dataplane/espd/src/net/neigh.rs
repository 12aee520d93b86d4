//! The neighbour table: IPv4 and IPv6 next hops to MAC addresses and ports, shared by the
//! worker lcores and the main thread without locks on the lookup path.
//!
//! # What goes in
//! Only what we resolve. An address enters the table when the gateway needs it as a next hop
//! ([`NeighborTable::needs_request`], which also says when to send the ARP request or
//! neighbour solicitation) or when the operator configures it ([`NeighborTable::add_static`]).
//! A MAC is learnt only for an address already there ([`NeighborTable::learn`]): the answer to
//! our request (ARP reply, solicited NA), or traffic from a neighbour we know (an ARP request
//! or NS from it) refreshing its entry. Anything else on the link (unsolicited NA, ARP or NS
//! from unknown, possibly spoofed senders) is refused and counted ([`Refusals`]), so no host
//! on the link can fill the table.
//!
//! # Ageing
//! A learnt entry is *reachable* for [`NeighTimes::reachable`] after its last confirmation,
//! then *stale* for [`NeighTimes::stale`]: still used, while the owner of
//! [`NeighborTable::sweep`] asks for it again; an answer makes it reachable again. After
//! that it is *removed*: it no longer answers lookups, [`NeighborTable::sweep`] drops its MAC,
//! and its slot is the first to be reused. Static entries never age. Times are in whatever
//! monotonic unit the caller uses (TSC cycles, milliseconds, a test's counter); they are only
//! compared.
//!
//! # Layout
//! A power-of-two array of slots in buckets of [`WAYS`]: a key hashes (with a per-process
//! seed, so on-link hosts cannot aim at one bucket) to one bucket and lives in one of its
//! slots. A slot is six `AtomicU64`s: the key (an IPv6 address; IPv4 addresses are stored
//! IPv4-mapped, `::ffff:a.b.c.d`, RFC 4291 §2.5.5.2, which never appear on a wire as a
//! neighbour), the *entry* word, and the times of the last confirmation, of the last use and
//! of the last resolution request. The entry word packs everything a lookup returns, so a
//! reader sees a MAC and port that were written together, never a torn mix:
//!
//! ```text
//!  63  62..60   59..56   55     48 47                                  0
//! +---+-------+--------+---------+-------------------------------------+
//! | C | epoch | flags  |  port   |                 MAC                 |
//! +---+-------+--------+---------+-------------------------------------+
//! ```
//!
//! # Full buckets
//! Slots of a bucket are taken in order and never emptied. A new address whose bucket is full
//! takes the slot of the least recently used entry of that bucket that is not static,
//! preferring one without a live MAC (incomplete, unresolved, aged out) over a resolved one;
//! "used" is the last lookup (recorded at most every 1/16 of the reachable time, so a busy
//! neighbour does not write its slot per packet). A bucket of static entries only refuses
//! the new address ([`NeighError::Full`], counted). Static entries, and resolved entries in
//! use, are therefore never pushed out by addresses resolved for a flood of strangers.
//!
//! # Concurrency
//! * A slot goes from empty (entry `0`) to *claiming* (`C` set) by a CAS, the claimer writes
//!   the key, then publishes the entry with a `Release` store.
//! * Taking over an occupied slot for another key (eviction) is done by one thread at a time
//!   (a try-lock; a writer that cannot take it reports [`NeighError::Busy`]): it CASes the
//!   entry to *claiming* with the slot's 3-bit epoch incremented, issues a `Release` fence,
//!   writes the new key and publishes. A reader loads the entry (`Acquire`), the key, issues
//!   an `Acquire` fence and loads the entry again: if claiming or epoch changed in between,
//!   it reads the slot again, so it never pairs a key with another key's MAC. Writers' CASes
//!   on an entry word carry the epoch too, so an update meant for the old key fails on the new
//!   one (it would take eight takeovers of one slot between a writer's load and its CAS to
//!   fool this).
//! * [`NeighborTable::lookup`] is wait-free but for that re-read: at most [`WAYS`] slots,
//!   stopping at the first empty one; a slot being claimed reads as a miss.
//! * A writer that meets a slot being claimed by another thread spins a bounded number of
//!   times for it to be published and otherwise reports [`NeighError::Busy`] rather than risk
//!   inserting the same key twice.
//! * The rate limit of [`NeighborTable::needs_request`] is a CAS on the slot's request
//!   timestamp: of all the threads that find the interval elapsed, exactly one wins.

use std::collections::hash_map::RandomState;
use std::fmt;
use std::hash::BuildHasher;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::atomic::{fence, AtomicBool, AtomicU64, AtomicUsize, Ordering};

use super::ethernet::Mac;

/// Default number of slots.
pub const DEFAULT_CAPACITY: usize = 4096;

/// Slots per bucket.
pub const WAYS: usize = 8;

const MIN_CAPACITY: usize = WAYS;
const MAX_CAPACITY: usize = 1 << 22;

/// A key has been written and the slot belongs to it.
const PUBLISHED: u64 = 0x01 << 56;
/// The MAC and port are valid.
const REACHABLE: u64 = 0x02 << 56;
/// Configured by the operator: never overridden by learning, never aged, never evicted.
const STATIC: u64 = 0x04 << 56;
/// Resolution in progress (an ARP request / neighbour solicitation has been or will be sent).
const INCOMPLETE: u64 = 0x08 << 56;
/// One step of the slot's takeover counter.
const EPOCH_ONE: u64 = 0x10 << 56;
/// The slot's takeover counter (3 bits): changes whenever the slot gets another key.
const EPOCH_MASK: u64 = 0x70 << 56;
/// A thread is writing the key; not yet published.
const CLAIMING: u64 = 0x80 << 56;

const MAC_MASK: u64 = (1 << 48) - 1;
const PORT_SHIFT: u32 = 48;

/// The request timestamp of an address never asked for.
const NEVER: u64 = u64::MAX;

/// How often a writer re-reads a slot that another thread is claiming before giving up.
const CLAIM_SPINS: u32 = 1 << 12;

/// How long entries live, in the caller's time unit.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct NeighTimes {
    /// After a confirmation, how long an entry is reachable (used, not asked for again).
    pub reachable: u64,
    /// After that, how long it is stale (still used, asked for again) before it is removed.
    pub stale: u64,
}

impl NeighTimes {
    /// Default reachable time, seconds (RFC 4861 §10 `REACHABLE_TIME`, Linux's
    /// `base_reachable_time`).
    pub const REACHABLE_SECONDS: u64 = 30;
    /// Default stale time, seconds (Linux's `gc_stale_time`).
    pub const STALE_SECONDS: u64 = 60;

    /// The defaults in a unit of `ticks_per_second` (the TSC frequency for the workers).
    pub fn per_second(ticks_per_second: u64) -> NeighTimes {
        NeighTimes {
            reachable: Self::REACHABLE_SECONDS.saturating_mul(ticks_per_second),
            stale: Self::STALE_SECONDS.saturating_mul(ticks_per_second),
        }
    }
}

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
    /// The address's bucket holds static entries only.
    Full,
    /// Another thread was changing the slot this key needs; try again later.
    Busy,
    /// Nobody asked for this address: a MAC for an address not in the table.
    Unsolicited,
}

impl fmt::Display for NeighError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NeighError::BadAddress => {
                "not a neighbour address (unspecified, multicast, broadcast or IPv4-mapped)"
            }
            NeighError::BadMac => "not a unicast MAC address",
            NeighError::PortOutOfRange => "port index above 255",
            NeighError::Full => "neighbour table full (static entries only in this bucket)",
            NeighError::Busy => "neighbour table slot busy",
            NeighError::Unsolicited => "unsolicited: the address is not being resolved",
        })
    }
}

impl std::error::Error for NeighError {}

/// Learning the table refused, and entries it pushed out, since it was created.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct Refusals {
    /// `unsolicited`: a MAC for an address nobody asked for (ARP, NS or NA from a stranger).
    pub unsolicited: u64,
    /// `table-full`: a new address whose bucket holds static entries only.
    pub table_full: u64,
    /// Entries pushed out of a full bucket by a new address (not a refusal: for display).
    pub evicted: u64,
}

/// What [`NeighborTable::learn`] did.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Learned {
    /// The address had no MAC before (incomplete or unresolved entry).
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
    /// Learned; MAC and port valid (maybe stale: compare `updated` with the times).
    Reachable,
    /// Being resolved; no MAC yet.
    Incomplete,
    /// Known address without a MAC (forgotten or aged out).
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
    /// When the entry was last created or confirmed (caller's time unit).
    pub updated: u64,
}

#[derive(Default)]
struct Slot {
    key_hi: AtomicU64,
    key_lo: AtomicU64,
    entry: AtomicU64,
    updated: AtomicU64,
    used: AtomicU64,
    requested: AtomicU64,
}

/// A map from neighbour IP addresses to `(MAC, port)`; see the module docs.
pub struct NeighborTable {
    slots: Box<[Slot]>,
    /// Bucket index mask (buckets - 1).
    mask: usize,
    len: AtomicUsize,
    seed: u64,
    times: NeighTimes,
    /// Lookups record their time in `used` only when it is older than this.
    touch: u64,
    /// Held while a slot is taken over for another key.
    evicting: AtomicBool,
    /// Bumped whenever a resolved address loses or changes its MAC or port, so that a next
    /// hop cached elsewhere (per SA, in the workers) is known to be stale.
    generation: AtomicU64,
    unsolicited: AtomicU64,
    table_full: AtomicU64,
    evicted: AtomicU64,
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

/// What a slot holds, read consistently (see the module docs).
enum Read {
    /// Never used: the bucket has no further entries.
    Empty,
    /// Being claimed or taken over.
    Claiming,
    /// A published entry and its key.
    Entry(u64, (u64, u64)),
}

impl Slot {
    fn read(&self) -> Read {
        loop {
            let e = self.entry.load(Ordering::Acquire);
            if e == 0 {
                return Read::Empty;
            }
            if e & PUBLISHED == 0 {
                return Read::Claiming;
            }
            let key = (self.key_hi.load(Ordering::Relaxed), self.key_lo.load(Ordering::Relaxed));
            fence(Ordering::Acquire);
            let again = self.entry.load(Ordering::Relaxed);
            if again & (EPOCH_MASK | PUBLISHED) == e & (EPOCH_MASK | PUBLISHED) {
                // The key is the one of this epoch; the entry may have been updated since
                // (another MAC for the same key): the later word is the better answer.
                return Read::Entry(again, key);
            }
            std::hint::spin_loop();
        }
    }
}

impl NeighborTable {
    /// A table of [`DEFAULT_CAPACITY`] slots, with the default times in seconds.
    pub fn new() -> NeighborTable {
        Self::with_capacity(DEFAULT_CAPACITY)
    }

    /// A table of `capacity` slots (rounded up to a power of two between 8 and 4 Mi), with
    /// the default times in seconds. Allocates; call at start-up.
    pub fn with_capacity(capacity: usize) -> NeighborTable {
        Self::with_times(capacity, NeighTimes::per_second(1))
    }

    /// A table of `capacity` slots whose entries age by `times`. Allocates; call at start-up.
    pub fn with_times(capacity: usize, times: NeighTimes) -> NeighborTable {
        let cap = capacity.clamp(MIN_CAPACITY, MAX_CAPACITY).next_power_of_two();
        let slots: Box<[Slot]> = (0..cap).map(|_| Slot::default()).collect();
        // A per-process seed, so that on-link hosts cannot choose addresses that collide.
        let seed = RandomState::new().hash_one(0x006e_6569_6768_u64);
        NeighborTable {
            slots,
            mask: cap / WAYS - 1,
            len: AtomicUsize::new(0),
            seed,
            times,
            touch: (times.reachable / 16).max(1),
            evicting: AtomicBool::new(false),
            generation: AtomicU64::new(0),
            unsolicited: AtomicU64::new(0),
            table_full: AtomicU64::new(0),
            evicted: AtomicU64::new(0),
        }
    }

    /// How entries age.
    pub fn times(&self) -> NeighTimes {
        self.times
    }

    /// Refused learning and evictions so far.
    pub fn refusals(&self) -> Refusals {
        Refusals {
            unsolicited: self.unsolicited.load(Ordering::Relaxed),
            table_full: self.table_full.load(Ordering::Relaxed),
            evicted: self.evicted.load(Ordering::Relaxed),
        }
    }

    /// Changes whenever a resolved address loses or changes its MAC or port: a cached
    /// `lookup` result taken at an equal generation is still what `lookup` would return, or
    /// the address has been resolved since (caching resolved hops only, that is never stale),
    /// or it has aged out ([`NeighborTable::sweep`] moves the generation when it drops the MAC).
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
        self.len.load(Ordering::Relaxed)
    }

    /// The table holds no address.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The slots of a key's bucket.
    fn bucket(&self, (hi, lo): (u64, u64)) -> &[Slot] {
        // Truncation to usize keeps the low bits, which the mask selects anyway.
        let b = (mix(mix(hi ^ self.seed) ^ lo) as usize) & self.mask;
        self.slots.get(b * WAYS..(b + 1) * WAYS).unwrap_or(&[])
    }

    /// The published slot of a key and its entry word.
    fn find(&self, key: (u64, u64)) -> Option<(&Slot, u64)> {
        for slot in self.bucket(key) {
            match slot.read() {
                Read::Empty => return None,
                Read::Entry(e, k) if k == key => return Some((slot, e)),
                _ => {}
            }
        }
        None
    }

    /// The slot of a key, inserting it with entry word `initial` if absent (taking over a
    /// slot of a full bucket). Returns the slot and `true` if this call inserted it.
    fn find_or_insert(&self, key: (u64, u64), initial: u64, now: u64) -> Result<(&Slot, bool), NeighError> {
        for slot in self.bucket(key) {
            let mut spins = 0;
            loop {
                match slot.read() {
                    Read::Empty => {
                        if slot
                            .entry
                            .compare_exchange(0, CLAIMING, Ordering::Acquire, Ordering::Acquire)
                            .is_err()
                        {
                            // Another thread claimed it first: look again at what it writes.
                            continue;
                        }
                        self.len.fetch_add(1, Ordering::Relaxed);
                        self.write_key(slot, key, initial, 0, now);
                        return Ok((slot, true));
                    }
                    Read::Claiming => {
                        spins += 1;
                        if spins > CLAIM_SPINS {
                            return Err(NeighError::Busy);
                        }
                        std::hint::spin_loop();
                    }
                    Read::Entry(_, k) if k == key => return Ok((slot, false)),
                    Read::Entry(..) => break,
                }
            }
        }
        self.take_over(key, initial, now)
    }

    /// Writes a claimed slot's key and times, then publishes `initial` with `epoch`.
    fn write_key(&self, slot: &Slot, key: (u64, u64), initial: u64, epoch: u64, now: u64) {
        slot.key_hi.store(key.0, Ordering::Relaxed);
        slot.key_lo.store(key.1, Ordering::Relaxed);
        slot.updated.store(now, Ordering::Relaxed);
        slot.used.store(now, Ordering::Relaxed);
        slot.requested.store(NEVER, Ordering::Relaxed);
        // Release: the key and times above are visible to whoever sees PUBLISHED.
        slot.entry.store((initial & !EPOCH_MASK) | epoch | PUBLISHED, Ordering::Release);
    }

    /// The address has a MAC that has not aged out at `now`.
    fn live(&self, slot: &Slot, e: u64, now: u64) -> bool {
        e & REACHABLE != 0
            && (e & STATIC != 0
                || now.saturating_sub(slot.updated.load(Ordering::Relaxed))
                    < self.times.reachable.saturating_add(self.times.stale))
    }

    /// Gives `key` the slot of its full bucket's least recently used entry that is not
    /// static, preferring entries without a live MAC.
    fn take_over(&self, key: (u64, u64), initial: u64, now: u64) -> Result<(&Slot, bool), NeighError> {
        if self.evicting.compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed).is_err() {
            return Err(NeighError::Busy);
        }
        let r = self.take_over_locked(key, initial, now);
        self.evicting.store(false, Ordering::Release);
        r
    }

    fn take_over_locked(&self, key: (u64, u64), initial: u64, now: u64) -> Result<(&Slot, bool), NeighError> {
        let mut victim: Option<(&Slot, u64, (bool, u64))> = None;
        for slot in self.bucket(key) {
            match slot.read() {
                // The bucket changed since the caller saw it full: let it look again.
                Read::Empty | Read::Claiming => return Err(NeighError::Busy),
                Read::Entry(_, k) if k == key => return Ok((slot, false)),
                Read::Entry(e, _) if e & STATIC != 0 => {}
                Read::Entry(e, _) => {
                    let rank = (self.live(slot, e, now), slot.used.load(Ordering::Relaxed));
                    if victim.is_none_or(|(_, _, r)| rank < r) {
                        victim = Some((slot, e, rank));
                    }
                }
            }
        }
        let Some((slot, e, _)) = victim else {
            self.table_full.fetch_add(1, Ordering::Relaxed);
            return Err(NeighError::Full);
        };
        let epoch = (e & EPOCH_MASK).wrapping_add(EPOCH_ONE) & EPOCH_MASK;
        if slot.entry.compare_exchange(e, CLAIMING | epoch, Ordering::AcqRel, Ordering::Relaxed).is_err() {
            // Updated meanwhile (learnt, or used): leave it, the caller may try again.
            return Err(NeighError::Busy);
        }
        // Release: a reader that sees any of the new key's bytes sees CLAIMING or the new
        // epoch when it loads the entry again (module docs).
        fence(Ordering::Release);
        self.write_key(slot, key, initial, epoch, now);
        self.evicted.fetch_add(1, Ordering::Relaxed);
        if e & REACHABLE != 0 {
            self.bump();
        }
        Ok((slot, true))
    }

    /// The MAC and port of a resolved neighbour at `now` (not aged out). No allocation, no
    /// lock: the per-packet call. Records the use for the choice of entries to push out, at
    /// most once per 1/16 of the reachable time.
    #[inline]
    pub fn lookup(&self, ip: IpAddr, now: u64) -> Option<(Mac, u16)> {
        let (slot, e) = self.find(key_of(ip)?)?;
        if !self.live(slot, e, now) {
            return None;
        }
        if now.saturating_sub(slot.used.load(Ordering::Relaxed)) >= self.touch {
            slot.used.store(now, Ordering::Relaxed);
        }
        Some(unpack(e))
    }

    /// Sets the MAC of `ip` from what it sent us: an answer to our request (ARP reply,
    /// solicited NA) or traffic from it (an ARP request or NS for one of our addresses). Only
    /// an address in the table is updated (being resolved, resolved, or aged out); for any
    /// other the answer is [`NeighError::Unsolicited`], counted. Static entries are left
    /// alone ([`Learned::Static`]). RFC 826 "Packet Reception" would add the sender of a
    /// request for us; we do not, so that strangers cannot fill the table.
    pub fn learn(&self, ip: IpAddr, mac: Mac, port: u16, now: u64) -> Result<Learned, NeighError> {
        match self.update(ip, mac, port, now)? {
            Some(l) => Ok(l),
            None => {
                self.unsolicited.fetch_add(1, Ordering::Relaxed);
                Err(NeighError::Unsolicited)
            }
        }
    }

    /// As [`NeighborTable::learn`] but silent for an address not in the table (`Ok(None)`,
    /// not counted): for ARP traffic between other hosts, which refreshes entries we have
    /// (RFC 826's merge flag) and is nobody's refused learning.
    pub fn refresh(&self, ip: IpAddr, mac: Mac, port: u16, now: u64) -> Result<Option<Learned>, NeighError> {
        self.update(ip, mac, port, now)
    }

    fn update(&self, ip: IpAddr, mac: Mac, port: u16, now: u64) -> Result<Option<Learned>, NeighError> {
        let key = key_of(ip).ok_or(NeighError::BadAddress)?;
        if !mac.is_unicast() {
            return Err(NeighError::BadMac);
        }
        let fresh = pack(mac, port_u8(port)?, PUBLISHED | REACHABLE);
        let Some((slot, mut cur)) = self.find(key) else { return Ok(None) };
        loop {
            if cur & STATIC != 0 {
                return Ok(Some(Learned::Static));
            }
            if cur & PUBLISHED == 0 {
                // Taken over by another key since it was found: not ours any more.
                return Ok(None);
            }
            let new = fresh | (cur & EPOCH_MASK);
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
                Err(seen) if seen & EPOCH_MASK == cur & EPOCH_MASK => cur = seen,
                Err(_) => return Ok(None),
            }
        }
    }

    /// Adds or replaces a static entry: it wins over anything learned, never ages and is
    /// never pushed out.
    pub fn add_static(&self, ip: IpAddr, mac: Mac, port: u16, now: u64) -> Result<(), NeighError> {
        let key = key_of(ip).ok_or(NeighError::BadAddress)?;
        if !mac.is_unicast() {
            return Err(NeighError::BadMac);
        }
        let new = pack(mac, port_u8(port)?, PUBLISHED | REACHABLE | STATIC);
        let (slot, inserted) = self.find_or_insert(key, new, now)?;
        if !inserted {
            let e = slot.entry.load(Ordering::Acquire);
            // A slot being taken over for another key is not ours to write.
            if e & PUBLISHED == 0
                || slot
                    .entry
                    .compare_exchange(e, new | (e & EPOCH_MASK), Ordering::AcqRel, Ordering::Relaxed)
                    .is_err()
            {
                return Err(NeighError::Busy);
            }
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
            Some((slot, e)) => {
                let _ = slot.entry.compare_exchange(
                    e,
                    PUBLISHED | (e & EPOCH_MASK),
                    Ordering::AcqRel,
                    Ordering::Relaxed,
                );
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
            let e = slot.entry.load(Ordering::Acquire);
            if e & (REACHABLE | INCOMPLETE | CLAIMING) == 0 {
                let _ = slot.entry.compare_exchange(e, e | INCOMPLETE, Ordering::AcqRel, Ordering::Relaxed);
            }
        }
        Ok(slot)
    }

    /// Whether the caller should send an ARP request / neighbour solicitation for `ip` now:
    /// `true` for exactly one caller per `interval` per address, across all threads (a CAS on
    /// the slot's request timestamp). `false` if the address is reachable (static, or learnt
    /// less than the reachable time ago), was asked for less than `interval` ago, or cannot be
    /// tracked (bad address, bucket of static entries). Marks the address incomplete as
    /// [`NeighborTable::mark_incomplete`] does; a stale or aged-out entry keeps its MAC until
    /// the answer or [`NeighborTable::sweep`].
    pub fn needs_request(&self, ip: IpAddr, now: u64, interval: u64) -> bool {
        let Ok(slot) = self.incomplete_slot(ip, now) else { return false };
        let e = slot.entry.load(Ordering::Acquire);
        if e & REACHABLE != 0
            && (e & STATIC != 0
                || now.saturating_sub(slot.updated.load(Ordering::Relaxed)) < self.times.reachable)
        {
            return false;
        }
        let last = slot.requested.load(Ordering::Relaxed);
        if last != NEVER && now.saturating_sub(last) < interval {
            return false;
        }
        slot.requested.compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed).is_ok()
    }

    /// The periodic pass over the table (for one thread, every second or so): drops the MAC of
    /// learnt entries older than the reachable plus the stale time (they become unresolved,
    /// are resolved again on next use, and their slots are the first pushed out), and appends
    /// to `confirm` (up to its spare capacity, so it never allocates) the stale entries, which
    /// the caller asks for again with [`NeighborTable::needs_request`]. Returns how many
    /// entries were removed.
    pub fn sweep(&self, now: u64, confirm: &mut Vec<(IpAddr, u16)>) -> usize {
        self.sweep_part(now, 0, 1, confirm)
    }

    /// [`NeighborTable::sweep`] over part `part` of `parts` of the table: a worker sweeps one
    /// part at a time so that no pass keeps it from its queues for long.
    pub fn sweep_part(&self, now: u64, part: usize, parts: usize, confirm: &mut Vec<(IpAddr, u16)>) -> usize {
        let mut n = 0;
        let max_age = self.times.reachable.saturating_add(self.times.stale);
        let len = self.slots.len();
        let parts = parts.max(1);
        let (from, to) = (len * part.min(parts) / parts, len * (part.min(parts) + 1).min(parts) / parts);
        for slot in self.slots.get(from..to).unwrap_or(&[]).iter() {
            let Read::Entry(e, key) = slot.read() else { continue };
            if e & STATIC != 0 || e & REACHABLE == 0 {
                continue;
            }
            let age = now.saturating_sub(slot.updated.load(Ordering::Relaxed));
            if age >= max_age {
                // If a learner refreshed it meanwhile the CAS fails and the entry stays.
                let gone = PUBLISHED | (e & EPOCH_MASK);
                if slot.entry.compare_exchange(e, gone, Ordering::AcqRel, Ordering::Relaxed).is_ok() {
                    n += 1;
                    self.bump();
                }
            } else if age >= self.times.reachable && confirm.len() < confirm.capacity() {
                confirm.push((ip_of(key.0, key.1), unpack(e).1));
            }
        }
        n
    }

    /// A snapshot of every address in the table, for display (`espctl neigh`). Allocates.
    pub fn entries(&self) -> Vec<NeighborEntry> {
        let mut out = Vec::new();
        for slot in self.slots.iter() {
            let Read::Entry(e, key) = slot.read() else { continue };
            let ip = ip_of(key.0, key.1);
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
    /// Virtual time: reachable for 100 ticks, then stale for 200.
    const TIMES: NeighTimes = NeighTimes { reachable: 100, stale: 200 };

    fn table(capacity: usize) -> NeighborTable {
        NeighborTable::with_times(capacity, TIMES)
    }

    /// Resolves `a` as the worker does: the request, then the answer.
    fn resolve(t: &NeighborTable, a: IpAddr, mac: Mac, port: u16, now: u64) -> Learned {
        assert!(t.needs_request(a, now, 1) || t.lookup(a, now).is_some());
        t.learn(a, mac, port, now).unwrap()
    }

    /// A cached next hop stays valid exactly while the generation does not move: only a
    /// resolved address losing or changing its MAC or port moves it.
    #[test]
    fn generation_moves_when_a_resolved_hop_changes() {
        let t = table(16);
        let a = ip("198.18.0.2");
        let g0 = t.generation();
        assert_eq!(resolve(&t, a, M1, 1, 10), Learned::New);
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
        assert_eq!(t.sweep(14 + 300, &mut Vec::new()), 1);
        assert!(t.generation() > g3, "an aged-out MAC");
    }

    #[test]
    fn learn_lookup_update() {
        let t = table(16);
        assert_eq!(t.capacity(), 16);
        assert_eq!(t.lookup(ip("198.18.0.2"), 10), None);
        assert_eq!(resolve(&t, ip("198.18.0.2"), M1, 1, 10), Learned::New);
        assert_eq!(t.lookup(ip("198.18.0.2"), 10), Some((M1, 1)));
        assert_eq!(t.learn(ip("198.18.0.2"), M1, 1, 11), Ok(Learned::Refreshed));
        assert_eq!(t.learn(ip("198.18.0.2"), M2, 3, 12), Ok(Learned::Changed));
        assert_eq!(t.lookup(ip("198.18.0.2"), 12), Some((M2, 3)));
        // IPv4 and the IPv6 address with the same low bits are different keys.
        assert_eq!(t.lookup(ip("::c612:2"), 12), None);
        assert_eq!(resolve(&t, ip("2001:db8::2"), M1, 0, 13), Learned::New);
        assert_eq!(t.lookup(ip("2001:db8::2"), 13), Some((M1, 0)));
        assert_eq!(t.len(), 2);
    }

    /// Nothing is learnt for an address we did not ask for: refused and counted, whether
    /// `learn` (a packet for us) or `refresh` (other hosts' ARP, not counted) is used.
    #[test]
    fn strangers_are_not_learnt() {
        let t = table(64);
        for i in 0..100u32 {
            let a = IpAddr::V4(Ipv4Addr::from(0xc612_0100 + i));
            assert_eq!(t.learn(a, M1, 0, 5), Err(NeighError::Unsolicited));
            assert_eq!(t.refresh(a, M1, 0, 5), Ok(None));
        }
        assert!(t.is_empty());
        assert_eq!(t.refusals(), Refusals { unsolicited: 100, table_full: 0, evicted: 0 });
        // Once asked for, the answer is taken.
        let a = ip("198.18.1.7");
        t.mark_incomplete(a, 6).unwrap();
        assert_eq!(t.refresh(a, M2, 1, 7), Ok(Some(Learned::New)));
        assert_eq!(t.lookup(a, 7), Some((M2, 1)));
    }

    #[test]
    fn rejects_bad_input() {
        let t = table(16);
        for bad in ["0.0.0.0", "224.0.0.1", "255.255.255.255", "::", "ff02::1", "::ffff:10.0.0.1"] {
            assert_eq!(t.learn(ip(bad), M1, 0, 0), Err(NeighError::BadAddress), "{bad}");
            assert!(!t.needs_request(ip(bad), 0, 1));
            assert_eq!(t.lookup(ip(bad), 0), None);
        }
        t.mark_incomplete(ip("10.0.0.1"), 0).unwrap();
        assert_eq!(t.learn(ip("10.0.0.1"), Mac::BROADCAST, 0, 0), Err(NeighError::BadMac));
        assert_eq!(t.learn(ip("10.0.0.1"), Mac::ZERO, 0, 0), Err(NeighError::BadMac));
        assert_eq!(t.learn(ip("10.0.0.1"), Mac([1, 0, 0x5e, 0, 0, 1]), 0, 0), Err(NeighError::BadMac));
        assert_eq!(t.learn(ip("10.0.0.1"), M1, 256, 0), Err(NeighError::PortOutOfRange));
        assert_eq!(t.lookup(ip("10.0.0.1"), 0), None);
    }

    #[test]
    fn static_entries_win() {
        let t = table(16);
        resolve(&t, ip("10.0.0.1"), M1, 0, 0);
        t.add_static(ip("10.0.0.1"), M2, 1, 0).unwrap();
        assert_eq!(t.learn(ip("10.0.0.1"), M1, 0, 5), Ok(Learned::Static));
        assert_eq!(t.refresh(ip("10.0.0.1"), M1, 0, 5), Ok(Some(Learned::Static)));
        assert_eq!(t.lookup(ip("10.0.0.1"), 5), Some((M2, 1)));
        assert_eq!(t.sweep(1_000_000, &mut Vec::with_capacity(4)), 0, "static entries never age");
        assert_eq!(t.lookup(ip("10.0.0.1"), 1_000_000), Some((M2, 1)));
        assert!(!t.needs_request(ip("10.0.0.1"), 0, 1));
        assert!(t.forget(ip("10.0.0.1")));
        assert_eq!(t.lookup(ip("10.0.0.1"), 5), None);
        assert_eq!(t.learn(ip("10.0.0.1"), M1, 0, 5), Ok(Learned::New));
        assert!(!t.forget(ip("10.0.0.9")));
    }

    /// Reachable, then stale (still used, asked for again), then removed; an answer while
    /// stale makes it reachable again. All on a virtual clock.
    #[test]
    fn entries_age_reachable_stale_removed() {
        let t = table(64);
        let (a, b) = (ip("198.18.0.20"), ip("2001:db8::20"));
        resolve(&t, a, M1, 0, 1000);
        resolve(&t, b, M2, 1, 1000);
        let mut confirm = Vec::with_capacity(8);
        // Reachable: used, nothing to ask.
        assert_eq!(t.sweep(1099, &mut confirm), 0);
        assert!(confirm.is_empty());
        assert!(!t.needs_request(a, 1099, 1));
        // Stale: still used, and the sweep lists both for asking again.
        assert_eq!(t.lookup(a, 1100), Some((M1, 0)));
        assert_eq!(t.sweep(1100, &mut confirm), 0);
        confirm.sort();
        assert_eq!(confirm, vec![(a, 0), (b, 1)]);
        assert!(t.needs_request(a, 1100, 50), "a stale entry is asked for again");
        assert!(!t.needs_request(a, 1120, 50), "once per interval");
        // a answers; b does not.
        assert_eq!(t.learn(a, M1, 0, 1150), Ok(Learned::Refreshed));
        assert_eq!(t.lookup(b, 1299), Some((M2, 1)), "stale until reachable + stale");
        assert_eq!(t.lookup(b, 1300), None, "removed at reachable + stale");
        let g = t.generation();
        confirm.clear();
        assert_eq!(t.sweep(1300, &mut confirm), 1, "b's MAC is dropped");
        assert!(t.generation() > g);
        assert_eq!(confirm, vec![(a, 0)], "a, confirmed at 1150, is stale again, not removed");
        assert_eq!(t.lookup(a, 1300), Some((M1, 0)));
        let e: Vec<_> = t.entries().into_iter().filter(|e| e.ip == b).collect();
        assert_eq!(e[0].state, NeighState::Unresolved);
        // b is resolved again on next use.
        assert!(t.needs_request(b, 1301, 50));
        assert_eq!(t.learn(b, M1, 1, 1302), Ok(Learned::New));
        assert_eq!(t.lookup(b, 1302), Some((M1, 1)));
        // A sweep never allocates: it lists only what fits (b is stale at 1500, but the list
        // has no room); a, unanswered since 1150, is removed.
        let mut none = Vec::new();
        assert_eq!(t.sweep(1500, &mut none), 1);
        assert!(none.is_empty() && none.capacity() == 0);
        assert_eq!(t.lookup(a, 1500), None);
        assert_eq!(t.lookup(b, 1500), Some((M1, 1)));
    }

    #[test]
    fn rate_limited_requests_and_states() {
        let t = table(16);
        let a = ip("10.0.0.7");
        assert!(t.needs_request(a, 100, 50));
        assert!(!t.needs_request(a, 100, 50));
        assert!(!t.needs_request(a, 149, 50));
        assert!(t.needs_request(a, 150, 50));
        assert!(!t.needs_request(a, 120, 50), "time going backwards does not re-arm");
        assert_eq!(t.entries()[0].state, NeighState::Incomplete);
        assert_eq!(t.entries()[0].mac, None);
        t.learn(a, M1, 2, 160).unwrap();
        assert!(!t.needs_request(a, 200, 50), "resolved");
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
    }

    /// Keys that share one bucket of a table, found by trying addresses.
    fn same_bucket(t: &NeighborTable, n: usize, base: u32) -> Vec<IpAddr> {
        let want = t.bucket(key_of(IpAddr::V4(Ipv4Addr::from(base))).unwrap()).as_ptr();
        (base..)
            .map(|i| IpAddr::V4(Ipv4Addr::from(i)))
            .filter(|a| t.bucket(key_of(*a).unwrap()).as_ptr() == want)
            .take(n)
            .collect()
    }

    /// A full bucket gives a new address the slot of its least recently used entry that is
    /// not static, an unresolved one first; static entries and entries in use stay.
    #[test]
    fn full_bucket_evicts_least_recently_used() {
        let t = table(64);
        let keys = same_bucket(&t, WAYS + 4, 0x0a00_0001);
        // Two static next hops, three resolved neighbours, three incomplete addresses.
        t.add_static(keys[0], M1, 0, 0).unwrap();
        t.add_static(keys[1], M2, 0, 0).unwrap();
        for (i, k) in keys[2..5].iter().enumerate() {
            resolve(&t, *k, M1, 1, 10 + i as u64);
        }
        for (i, k) in keys[5..8].iter().enumerate() {
            assert!(t.needs_request(*k, 20 + i as u64, 1));
        }
        assert_eq!(t.len(), WAYS);
        // keys[2] is used recently, keys[3] and keys[4] are not.
        assert!(t.lookup(keys[2], 60).is_some());
        // Three new addresses push out the three incomplete ones, oldest first, and are
        // resolved.
        for (i, k) in keys[8..11].iter().enumerate() {
            assert!(t.needs_request(*k, 70 + i as u64, 1), "{k}");
            assert!(t.entries().iter().all(|e| e.ip != keys[5 + i]), "{} pushed out", keys[5 + i]);
            assert_eq!(t.learn(*k, M2, 1, 75), Ok(Learned::New));
        }
        // With no unresolved entry left, the next one pushes out the least recently used
        // resolved entry: keys[3] (keys[2] was used at 60).
        let g = t.generation();
        assert!(t.needs_request(keys[11], 80, 1));
        assert_eq!(t.lookup(keys[3], 80), None);
        assert!(t.generation() > g, "a resolved hop lost its MAC");
        for k in [keys[0], keys[1], keys[2], keys[4]] {
            assert!(t.lookup(k, 80).is_some(), "{k} stays");
        }
        assert_eq!(t.len(), WAYS);
        assert_eq!(t.refusals().evicted, 4);
        // Every key is found once, in its bucket.
        assert_eq!(t.entries().len(), WAYS);
        assert_eq!(t.lookup(keys[11], 80), None, "incomplete: no MAC yet");
        assert_eq!(t.learn(keys[11], M2, 1, 81), Ok(Learned::New));
        assert_eq!(t.lookup(keys[11], 81), Some((M2, 1)));
    }

    #[test]
    fn a_bucket_of_static_entries_refuses_and_counts() {
        let t = table(64);
        let keys = same_bucket(&t, WAYS + 1, 0xc612_0001);
        for k in &keys[..WAYS] {
            t.add_static(*k, M1, 0, 0).unwrap();
        }
        assert!(!t.needs_request(keys[WAYS], 1, 1));
        assert_eq!(t.mark_incomplete(keys[WAYS], 1), Err(NeighError::Full));
        assert_eq!(t.refusals().table_full, 2);
        for k in &keys[..WAYS] {
            assert_eq!(t.lookup(*k, u64::MAX), Some((M1, 0)));
        }
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
        let t = NeighborTable::with_times(4096, NeighTimes { reachable: u64::MAX / 4, stale: 0 });
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
                        let k = key(x % KEYS);
                        // Ask (inserts), then answer, from several threads at once.
                        let _ = t.needs_request(k, u64::from(n), 10);
                        match t.learn(k, mac, port, u64::from(n)) {
                            Ok(_) | Err(NeighError::Busy) | Err(NeighError::Unsolicited) => {}
                            Err(e) => panic!("learn: {e}"),
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
                            if let Some((mac, port)) = t.lookup(key(i), 1) {
                                assert!(check_pattern(mac, port), "torn entry {mac} port {port}");
                                hits += 1;
                            }
                        }
                    }
                    assert!(hits > 0);
                });
            }
            start.wait();
            // The main thread plays its part too: snapshots and sweeps while workers run.
            let mut confirm = Vec::with_capacity(16);
            for _ in 0..50 {
                for e in t.entries() {
                    if let (Some(mac), Some(port)) = (e.mac, e.port) {
                        assert!(check_pattern(mac, port));
                    }
                }
                confirm.clear();
                t.sweep(1, &mut confirm);
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
        // 256 keys in 512 buckets of 8: no bucket overflows, so every key is there.
        assert_eq!(t.refusals().evicted, 0);
        assert_eq!(n, KEYS as usize);
    }

    /// Takeovers of one bucket's slots under readers: a lookup never pairs a key with
    /// another key's MAC, whatever the interleaving.
    #[test]
    fn takeovers_never_pair_a_key_with_another_keys_mac() {
        const KEYS: usize = 24;
        let t = NeighborTable::with_times(WAYS, NeighTimes { reachable: u64::MAX / 4, stale: 0 });
        let keys: Vec<IpAddr> =
            (0..KEYS as u32).map(|i| IpAddr::V4(Ipv4Addr::from(0x0a01_0000 + i))).collect();
        let mac_of = |i: usize| (Mac([0x02, 0, 0, 0, 0x10, i as u8]), (i % 5) as u16);
        let stop = AtomicBool::new(false);
        let hits = AtomicUsize::new(0);
        std::thread::scope(|s| {
            for w in 0..2usize {
                let (t, keys, stop) = (&t, &keys, &stop);
                s.spawn(move || {
                    let mut n = w as u64;
                    while !stop.load(Ordering::Relaxed) {
                        n += 1;
                        let i = (n as usize * 7 + w) % KEYS;
                        let _ = t.needs_request(keys[i], n, 0);
                        let (mac, port) = mac_of(i);
                        let _ = t.learn(keys[i], mac, port, n);
                    }
                });
            }
            for _ in 0..2 {
                let (t, keys, stop, hits) = (&t, &keys, &stop, &hits);
                s.spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        for (i, k) in keys.iter().enumerate() {
                            if let Some(got) = t.lookup(*k, 1) {
                                assert_eq!(got, mac_of(i), "{k} answered with another key's MAC");
                                hits.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    }
                });
            }
            std::thread::sleep(std::time::Duration::from_millis(300));
            stop.store(true, Ordering::Relaxed);
        });
        assert!(hits.load(Ordering::Relaxed) > 0);
        assert!(t.refusals().evicted > 100, "the bucket was taken over often: {:?}", t.refusals());
        assert_eq!(t.len(), WAYS);
    }

    #[test]
    fn one_request_per_interval_across_threads() {
        let t = table(64);
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

    #[test]
    fn a_sweep_in_parts_ages_what_a_whole_sweep_ages() {
        let times = NeighTimes { reachable: 30, stale: 60 };
        // 100 keys in 512 buckets of 8: no bucket overflows, so none is pushed out while learning.
        let (whole, parts) = (NeighborTable::with_times(4096, times), NeighborTable::with_times(4096, times));
        for t in [&whole, &parts] {
            for i in 0..100u8 {
                let a = IpAddr::V4(Ipv4Addr::new(198, 18, 1, i));
                resolve(t, a, Mac([2, 0, 0, 0, 0, i]), 0, if i < 50 { 0 } else { 60 });
            }
        }
        let mut c = Vec::with_capacity(256);
        let gone = whole.sweep(95, &mut c);
        let mut c2 = Vec::with_capacity(256);
        let gone2: usize = (0..16).map(|p| parts.sweep_part(95, p, 16, &mut c2)).sum();
        assert_eq!((gone, gone2), (50, 50), "learnt at 0, older than 30 + 60 at 95");
        c.sort_unstable();
        c2.sort_unstable();
        assert_eq!(c, c2, "the same stale entries to ask for again");
        assert_eq!(c.len(), 50);
    }
}
