//! Creating and attaching the region file, and the typed views into it.
//!
//! This module's `unsafe` turns an offset of the mapping into a reference (the crate's other
//! `unsafe` opens and checks the file, `file.rs`, handles SIGBUS, `sigbus.rs`, prefetches,
//! `index.rs`, and probes a process, `reader.rs`). The argument is the same for each
//! accessor and is stated once here:
//!
//! 1. The mapping is `Layout::total` bytes long (checked against the file at attach time)
//!    and lives as long as the `Region`, which every returned reference borrows.
//! 2. Offsets come from `Layout`, computed from validated capacities, never read from the
//!    file; each accessor bounds-checks its index against those capacities.
//! 3. Every section starts on a 64-byte boundary of a page-aligned mapping, so every
//!    record is aligned for its type.
//! 4. The types viewed are atomics or plain integers: every bit pattern is valid, and
//!    concurrent writes by the other process are atomic operations, not data races.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use bytemuck::{Pod, Zeroable};
use memmap2::{MmapOptions, MmapRaw};

use crate::abi::{Event, PolicyConfig, SaConfig, ABI_VERSION, MAGIC};
use crate::file::{self, LooseMode};
use crate::layout::{
    Capacities, Layout, CACHE_LINE, HEADER_DYN_OFFSET, HEADER_SIZE, LENGTHS_WORDS, POLICY_CFG_WORDS,
    READER_SLOT_SIZE, SA_CFG_WORDS, SLOT_HDR_SIZE,
};
use crate::shm::{HeaderDyn, PolicyHdr, ReaderSlot, RingHdr, SaHot, SlotHdr, NO_SLOT};
use crate::sigbus::Registration;
use crate::spd::WriterCache;
use crate::SadbError;

/// Names the region file in refusals.
const WHAT: &str = "the SA database";

/// Flag in the header: inbound SAs are indexed by SPI and destination.
const FLAG_SPI_DST: u32 = 1;
/// Largest epoch a region may hold (see `Region::check_counters`).
const MAX_EPOCH: u64 = 1 << 62;

/// The fixed part of the header, written once at creation.
#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
struct HeaderStatic {
    magic: [u8; 8],
    abi_version: u32,
    header_size: u32,
    sa_config_size: u32,
    policy_config_size: u32,
    event_size: u32,
    hot_size: u32,
    reader_slot_size: u32,
    slot_hdr_size: u32,
    sas: u32,
    policies: u32,
    readers: u32,
    event_ring: u32,
    max_replay_window: u32,
    flags: u32,
    hash_seed: u64,
    total_size: u64,
}

impl HeaderStatic {
    fn sizes() -> [(&'static str, u32); 7] {
        [
            ("header size", HEADER_SIZE as u32),
            ("SA record size", std::mem::size_of::<SaConfig>() as u32),
            ("policy record size", std::mem::size_of::<PolicyConfig>() as u32),
            ("event size", std::mem::size_of::<Event>() as u32),
            ("SA hot state size", std::mem::size_of::<SaHot>() as u32),
            ("reader slot size", READER_SLOT_SIZE as u32),
            ("SA slot header size", SLOT_HDR_SIZE as u32),
        ]
    }

    fn stored_sizes(&self) -> [u32; 7] {
        [
            self.header_size,
            self.sa_config_size,
            self.policy_config_size,
            self.event_size,
            self.hot_size,
            self.reader_slot_size,
            self.slot_hdr_size,
        ]
    }
}

/// A mapped SA database region. Shared by every thread of a process (`Sync`); readers
/// and writers are made from it.
pub struct Region {
    /// The mapping's entry in the SIGBUS handler's table; dropped before the mapping.
    _sigbus: Registration,
    map: MmapRaw,
    file: File,
    path: PathBuf,
    pub(crate) lay: Layout,
    pub(crate) caps: Capacities,
    pub(crate) seed: u64,
    /// Serialises writers inside this process; the file lock serialises processes.
    pub(crate) writer_mutex: Mutex<WriterCache>,
}

impl std::fmt::Debug for Region {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Region").field("path", &self.path).field("caps", &self.caps).finish_non_exhaustive()
    }
}

fn io<'p>(path: &'p Path, op: &'static str) -> impl FnOnce(std::io::Error) -> SadbError + 'p {
    move |e| SadbError::Io { path: path.to_owned(), op, err: e.to_string() }
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

impl Region {
    /// Creates a new region file (mode 0600; an existing file is an error) sized for
    /// `caps`, and maps it. The default directory is created first if missing
    /// ([`crate::file::prepare_dir`]).
    pub fn create(path: impl AsRef<Path>, caps: &Capacities) -> Result<Region, SadbError> {
        let path = path.as_ref();
        let lay = Layout::new(caps)?;
        file::prepare_dir(path)?;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(path)
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::AlreadyExists => SadbError::Exists { path: path.to_owned() },
                _ => io(path, "create")(e),
            })?;
        // The umask may only remove bits; set exactly 0600 anyway.
        file.set_permissions(std::fs::Permissions::from_mode(0o600)).map_err(io(path, "chmod"))?;
        file.set_len(lay.total as u64).map_err(io(path, "resize"))?;
        let map = MmapOptions::new().len(lay.total).map_raw(&file).map_err(io(path, "map"))?;
        let mut seed = [0u8; 8];
        getrandom::fill(&mut seed).map_err(|e| SadbError::Io {
            path: path.to_owned(),
            op: "getrandom",
            err: e.to_string(),
        })?;
        let region = Region {
            _sigbus: Registration::new(map.as_ptr(), map.len()),
            map,
            file,
            path: path.to_owned(),
            lay,
            caps: *caps,
            seed: u64::from_ne_bytes(seed),
            writer_mutex: Mutex::new(WriterCache::default()),
        };
        region.initialise();
        Ok(region)
    }

    /// Writes the header and the initial free lists of a freshly created (zeroed) file,
    /// then the magic, last, so that a concurrent `attach` waits until all is in place.
    fn initialise(&self) {
        let c = &self.caps;
        let hs = HeaderStatic {
            magic: [0; 8],
            abi_version: ABI_VERSION,
            header_size: HEADER_SIZE as u32,
            sa_config_size: std::mem::size_of::<SaConfig>() as u32,
            policy_config_size: std::mem::size_of::<PolicyConfig>() as u32,
            event_size: std::mem::size_of::<Event>() as u32,
            hot_size: std::mem::size_of::<SaHot>() as u32,
            reader_slot_size: READER_SLOT_SIZE as u32,
            slot_hdr_size: SLOT_HDR_SIZE as u32,
            sas: c.sas,
            policies: c.policies,
            readers: c.readers,
            event_ring: c.event_ring,
            max_replay_window: c.max_replay_window,
            flags: if c.spi_dst_index { FLAG_SPI_DST } else { 0 },
            hash_seed: self.seed,
            total_size: self.lay.total as u64,
        };
        // SAFETY: offset 0 of a mapping of at least HEADER_SIZE bytes; nobody reads the
        // static header before the magic below is published with Release ordering.
        unsafe { std::ptr::write(self.map.as_mut_ptr().cast::<HeaderStatic>(), hs) };
        let h = self.hdr();
        h.epoch.store(1, Ordering::Relaxed);
        h.created_unix.store(unix_now(), Ordering::Relaxed);
        // Free stack: slot 0 on top.
        let stack = self.free_stack();
        for (i, e) in stack.iter().enumerate() {
            e.store(c.sas - 1 - i as u32, Ordering::Relaxed);
        }
        h.free_top.store(c.sas, Ordering::Relaxed);
        for p in 0..c.policies {
            self.policy_hdr(p).sa_slot.store(NO_SLOT, Ordering::Relaxed);
        }
        self.magic().store(u64::from_ne_bytes(MAGIC), Ordering::Release);
    }

    /// Maps an existing region, checking that it is one, of this ABI version and layout.
    /// A region still being created by another process is waited for (up to 2 s).
    ///
    /// Only a regular file owned by our effective uid with no group or other mode bits is
    /// attached, opened without following a symbolic link or blocking and checked on the
    /// open descriptor; anything else is refused with [`SadbError::UnsafeFile`].
    pub fn attach(path: impl AsRef<Path>) -> Result<Region, SadbError> {
        let path = path.as_ref();
        file::prepare_dir(path)?;
        let file =
            file::open_existing(path, WHAT, OpenOptions::new().read(true).write(true), LooseMode::Refuse)?;
        let len = file.metadata().map_err(io(path, "stat"))?.len();
        if len < HEADER_SIZE as u64 {
            return Err(SadbError::Truncated {
                path: path.to_owned(),
                size: len,
                expected: HEADER_SIZE as u64,
            });
        }
        let len = usize::try_from(len).map_err(|_| SadbError::NotARegion { path: path.to_owned() })?;
        let map = MmapOptions::new().len(len).map_raw(&file).map_err(io(path, "map"))?;
        // SAFETY: offset 0 of a mapping of at least HEADER_SIZE bytes, page-aligned.
        let magic = unsafe { &*map.as_ptr().cast::<AtomicU64>() };
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            let m = magic.load(Ordering::Acquire);
            if m == u64::from_ne_bytes(MAGIC) {
                break;
            }
            if m != 0 || Instant::now() > deadline {
                return Err(SadbError::NotARegion { path: path.to_owned() });
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        // SAFETY: as above; the magic was published (Release) after the static header.
        let hs: HeaderStatic = unsafe { std::ptr::read(map.as_ptr().cast::<HeaderStatic>()) };
        if hs.abi_version != ABI_VERSION {
            return Err(SadbError::AbiMismatch {
                path: path.to_owned(),
                found: hs.abi_version,
                expected: ABI_VERSION,
            });
        }
        for ((what, ours), theirs) in HeaderStatic::sizes().into_iter().zip(hs.stored_sizes()) {
            if ours != theirs {
                return Err(SadbError::LayoutMismatch {
                    path: path.to_owned(),
                    what,
                    found: theirs,
                    expected: ours,
                });
            }
        }
        let caps = Capacities {
            sas: hs.sas,
            policies: hs.policies,
            readers: hs.readers,
            event_ring: hs.event_ring,
            max_replay_window: hs.max_replay_window,
            spi_dst_index: hs.flags & FLAG_SPI_DST != 0,
        };
        let lay = Layout::new(&caps)
            .map_err(|e| SadbError::Corrupt { path: path.to_owned(), reason: e.to_string() })?;
        if lay.total as u64 != hs.total_size {
            return Err(SadbError::Corrupt {
                path: path.to_owned(),
                reason: format!(
                    "the header gives the region's size as {} bytes, its capacities make it {}",
                    hs.total_size, lay.total
                ),
            });
        }
        if len < lay.total {
            return Err(SadbError::Truncated {
                path: path.to_owned(),
                size: len as u64,
                expected: lay.total as u64,
            });
        }
        let region = Region {
            _sigbus: Registration::new(map.as_ptr(), map.len()),
            map,
            file,
            path: path.to_owned(),
            lay,
            caps,
            seed: hs.hash_seed,
            writer_mutex: Mutex::new(WriterCache::default()),
        };
        region.check_counters().map_err(|reason| SadbError::Corrupt { path: path.to_owned(), reason })?;
        Ok(region)
    }

    /// The header's changing part, checked once at attach: values no sequence of writes
    /// can produce are refused here with a clear message instead of misleading the
    /// protocols later (a wrapped epoch would let a writer reuse a slot a reader still
    /// holds; a retired FIFO longer than the table would loop a writer billions of times).
    /// Each check holds at every instant of a live region, so a process attaching while
    /// another writes is never refused. The accessors stay bounds-checked regardless: this
    /// is for a clear refusal, not for memory safety.
    fn check_counters(&self) -> Result<(), String> {
        let h = self.hdr();
        let c = &self.caps;
        let epoch = h.epoch.load(Ordering::Acquire);
        // One bump per delete or flip: 2^62 of them take millennia.
        if epoch == 0 || epoch > MAX_EPOCH {
            return Err(format!("epoch {epoch} is outside 1..={MAX_EPOCH}"));
        }
        // Head before tail: a writer may retire and reclaim between the two loads, and
        // both only grow, so this order never sees a head past the tail.
        let retired_head = h.retired_head.load(Ordering::Acquire);
        let retired = h.retired_tail.load(Ordering::Acquire).wrapping_sub(retired_head);
        for (what, v, max) in [
            ("active_bank", h.active_bank.load(Ordering::Relaxed), 1),
            ("active_index", h.active_index.load(Ordering::Relaxed), 1),
            ("free_top", h.free_top.load(Ordering::Relaxed), c.sas),
            ("sa_live", h.sa_live.load(Ordering::Relaxed), c.sas),
            ("policy_live", h.policy_live.load(Ordering::Relaxed), c.policies),
            ("retired slots (retired_tail - retired_head)", retired, c.sas),
        ] {
            if v > max {
                return Err(format!("{what} is {v}, more than {max}"));
            }
        }
        Ok(())
    }

    /// Attaches to the region at `path`, creating it with `caps` if there is none.
    pub fn open_or_create(path: impl AsRef<Path>, caps: &Capacities) -> Result<Region, SadbError> {
        let path = path.as_ref();
        match Region::create(path, caps) {
            Err(SadbError::Exists { .. }) => Region::attach(path),
            other => other,
        }
    }

    /// Checks, with `fstat` on the open file, that the region file still holds the whole
    /// region: a file truncated under us raises SIGBUS at the next access past its end.
    /// Cheap enough to call from a control loop a few times a second.
    pub fn check_file(&self) -> Result<(), SadbError> {
        let size = self.file.metadata().map_err(io(&self.path, "stat"))?.len();
        if size < self.lay.total as u64 {
            return Err(SadbError::Shrunk { path: self.path.clone(), size, expected: self.lay.total as u64 });
        }
        Ok(())
    }

    /// The region file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The capacities it was created with.
    pub fn capacities(&self) -> &Capacities {
        &self.caps
    }

    /// Counter bumped after every committed write: a cheap "has anything changed".
    pub fn changes(&self) -> u64 {
        self.hdr().changes.load(Ordering::Acquire)
    }

    /// Live SAs.
    pub fn sa_count(&self) -> u32 {
        self.hdr().sa_live.load(Ordering::Relaxed)
    }

    /// SA installs refused because the table was full, since the region was created.
    pub fn sa_full_refusals(&self) -> u32 {
        self.hdr().sa_full.load(Ordering::Relaxed)
    }

    /// Live policies.
    pub fn policy_count(&self) -> u32 {
        self.hdr().policy_live.load(Ordering::Relaxed)
    }

    /// Takes the writer lock: the in-process mutex, then an exclusive `flock` on the file,
    /// which the kernel releases if the holder dies.
    /// The writer's cache is dropped unless this process held the lock last and nothing has
    /// been committed since it did.
    pub(crate) fn lock_writer(&self) -> Result<(MutexGuard<'_, WriterCache>, &File), SadbError> {
        let mut guard = self.writer_mutex.lock().unwrap_or_else(|p| p.into_inner());
        self.file.lock().map_err(io(&self.path, "lock"))?;
        let pid = std::process::id();
        let last = self.hdr().writer_pid.swap(pid, Ordering::Relaxed);
        let changes = self.hdr().changes.load(Ordering::Acquire);
        if last != pid || guard.seen != changes {
            // What is rebuilt from now on reflects the region as of this change count.
            *guard = WriterCache { seen: changes, ..WriterCache::default() };
        }
        Ok((guard, &self.file))
    }

    // ---- typed views (see the module documentation for the safety argument) ----

    /// A reference to a `T` at byte offset `off`.
    fn at<T>(&self, off: usize) -> &T {
        assert!(
            off + std::mem::size_of::<T>() <= self.lay.total && off.is_multiple_of(std::mem::align_of::<T>()),
            "sadb: internal layout error at offset {off}"
        );
        // SAFETY: bounds and alignment checked just above; see the module documentation
        // for why the type and the lifetime are sound.
        unsafe { &*self.map.as_ptr().add(off).cast::<T>() }
    }

    /// A slice of `n` values of `T` from byte offset `off`.
    fn slice<T>(&self, off: usize, n: usize) -> &[T] {
        assert!(
            off + n * std::mem::size_of::<T>() <= self.lay.total
                && off.is_multiple_of(std::mem::align_of::<T>()),
            "sadb: internal layout error at offset {off}"
        );
        // SAFETY: bounds and alignment checked just above; see the module documentation.
        unsafe { std::slice::from_raw_parts(self.map.as_ptr().add(off).cast::<T>(), n) }
    }

    fn magic(&self) -> &AtomicU64 {
        self.at(0)
    }

    pub(crate) fn hdr(&self) -> &HeaderDyn {
        self.at(HEADER_DYN_OFFSET)
    }

    pub(crate) fn reader_slot(&self, i: u32) -> &ReaderSlot {
        assert!(i < self.caps.readers);
        self.at(self.lay.readers + i as usize * READER_SLOT_SIZE)
    }

    pub(crate) fn ring_hdr(&self, i: u32) -> &RingHdr {
        assert!(i < self.caps.readers);
        self.at(self.lay.rings + i as usize * self.lay.ring_stride)
    }

    /// The eight words of event `pos` (modulo the ring size) of reader `i`'s ring.
    pub(crate) fn ring_event(&self, i: u32, pos: u64) -> &[AtomicU64] {
        assert!(i < self.caps.readers);
        let idx = (pos & u64::from(self.caps.event_ring - 1)) as usize;
        self.slice(self.lay.rings + i as usize * self.lay.ring_stride + 3 * CACHE_LINE + idx * 64, 8)
    }

    pub(crate) fn slot_hdr(&self, s: u32) -> &SlotHdr {
        assert!(s < self.caps.sas);
        self.at(self.lay.slot_hdrs + s as usize * SLOT_HDR_SIZE)
    }

    pub(crate) fn config_words(&self, s: u32) -> &[AtomicU64] {
        assert!(s < self.caps.sas);
        self.slice(self.lay.configs + s as usize * self.lay.config_stride, SA_CFG_WORDS)
    }

    pub(crate) fn hot(&self, s: u32) -> &SaHot {
        assert!(s < self.caps.sas);
        self.at(self.lay.hot + s as usize * self.lay.hot_stride)
    }

    pub(crate) fn replay_bitmap(&self, s: u32) -> &[AtomicU64] {
        assert!(s < self.caps.sas);
        self.slice(
            self.lay.hot + s as usize * self.lay.hot_stride + std::mem::size_of::<SaHot>(),
            self.lay.replay_words,
        )
    }

    pub(crate) fn free_stack(&self) -> &[AtomicU32] {
        self.slice(self.lay.free_stack, self.caps.sas as usize)
    }

    pub(crate) fn retired(&self) -> &[AtomicU32] {
        self.slice(self.lay.retired, self.caps.sas as usize)
    }

    pub(crate) fn index(&self, bank: u32) -> &[AtomicU64] {
        self.slice(self.lay.index[(bank & 1) as usize], self.lay.index_len)
    }

    pub(crate) fn policy_hdr(&self, p: u32) -> &PolicyHdr {
        assert!(p < self.caps.policies);
        self.at(self.lay.policies + p as usize * crate::layout::POLICY_SLOT_SIZE)
    }

    pub(crate) fn policy_words(&self, p: u32) -> &[AtomicU64] {
        assert!(p < self.caps.policies);
        self.slice(
            self.lay.policies + p as usize * crate::layout::POLICY_SLOT_SIZE + CACHE_LINE,
            POLICY_CFG_WORDS,
        )
    }

    /// The lengths table of policy classifier `c` (0..4).
    pub(crate) fn lengths_table(&self, c: usize) -> &[AtomicU64] {
        assert!(c < 4);
        self.slice(self.lay.lengths + c * LENGTHS_WORDS * 8, LENGTHS_WORDS)
    }

    /// `n` 64-bit words at `off` inside policy bank `bank`.
    pub(crate) fn bank_u64(&self, bank: u32, off: usize, n: usize) -> &[AtomicU64] {
        self.slice(self.lay.banks[(bank & 1) as usize] + off, n)
    }
}

/// Copies a POD record out of words read with relaxed atomic loads. Works through bytes,
/// so the record needs no 8-byte alignment (a `PolicyConfig` has 4).
pub(crate) fn load_words<T: Pod>(words: &[AtomicU64]) -> T {
    let mut v = T::zeroed();
    let out: &mut [u8] = bytemuck::bytes_of_mut(&mut v);
    for (chunk, w) in out.chunks_mut(8).zip(words) {
        let b = w.load(Ordering::Relaxed).to_ne_bytes();
        chunk.copy_from_slice(&b[..chunk.len()]);
    }
    v
}

/// Stores a POD record as words with relaxed atomic stores (through bytes, as above).
pub(crate) fn store_words<T: Pod>(words: &[AtomicU64], v: &T) {
    for (chunk, w) in bytemuck::bytes_of(v).chunks(8).zip(words) {
        let mut b = [0u8; 8];
        b[..chunk.len()].copy_from_slice(chunk);
        w.store(u64::from_ne_bytes(b), Ordering::Relaxed);
    }
}
