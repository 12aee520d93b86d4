//! The writer: holds the region's writer lock for its lifetime. Control-plane processes
//! (`iked`, `espctl`) take one per batch of changes.

use std::fs::File;
use std::sync::atomic::{fence, Ordering};
use std::sync::MutexGuard;
use std::time::{Duration, Instant};

use crate::abi::{Event, PolicyConfig};
use crate::reader::pid_alive;
use crate::region::{load_words, Region};
use crate::shm::{OFFLINE, READER_ACTIVE, READER_FREE};
use crate::SadbError;

/// Exclusive write access to a region.
pub struct Writer<'r> {
    pub(crate) r: &'r Region,
    file: &'r File,
    pub(crate) cache: MutexGuard<'r, crate::spd::WriterCache>,
}

impl std::fmt::Debug for Writer<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer").field("region", &self.r.path()).finish()
    }
}

/// A registered reader, as `espctl stats` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReaderInfo {
    /// Reader slot.
    pub slot: u32,
    /// Its process.
    pub pid: u32,
    /// Its lcore.
    pub lcore: u32,
    /// Bursts it has finished.
    pub passes: u64,
    /// Its counters.
    pub counters: Vec<u64>,
    /// Events it could not queue.
    pub events_dropped: u64,
}

/// A reader slot as the last process that held it left it, as `espctl stats` shows the
/// counters of a dataplane that has stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReaderRecord {
    /// The slot, its process, lcore and counters.
    pub info: ReaderInfo,
    /// Still registered: the process has not deregistered (it runs, or it died without
    /// deregistering and no writer has noticed yet).
    pub registered: bool,
    /// Its process exists.
    pub alive: bool,
}

/// A live policy with its binding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyEntry {
    /// Policy slot.
    pub slot: u32,
    /// The policy.
    pub config: PolicyConfig,
    /// The outbound SA slot bound to it.
    pub sa_slot: Option<u32>,
    /// Packets that matched it.
    pub hits: u64,
}

impl Region {
    /// Takes the writer lock (blocking while another process or thread holds it).
    pub fn writer(&self) -> Result<Writer<'_>, SadbError> {
        let (guard, file) = self.lock_writer()?;
        Ok(Writer { r: self, file, cache: guard })
    }

    /// The registered readers.
    pub fn readers(&self) -> Vec<ReaderInfo> {
        (0..self.caps.readers)
            .filter(|&i| self.reader_slot(i).state.load(Ordering::Acquire) == READER_ACTIVE)
            .map(|i| {
                let s = self.reader_slot(i);
                ReaderInfo {
                    slot: i,
                    pid: s.pid.load(Ordering::Relaxed),
                    lcore: s.lcore.load(Ordering::Relaxed),
                    passes: s.passes.load(Ordering::Relaxed),
                    counters: s.counters.iter().map(|c| c.load(Ordering::Relaxed)).collect(),
                    events_dropped: self.ring_hdr(i).dropped.load(Ordering::Relaxed),
                }
            })
            .collect()
    }

    /// Every reader slot a process has held, registered or not: a reader that deregistered
    /// (its process stopped) or was deregistered (its process died) leaves its counters as it
    /// last wrote them, until a new reader takes the slot. Read-only: nothing is changed, no
    /// dead reader is deregistered.
    pub fn reader_records(&self) -> Vec<ReaderRecord> {
        (0..self.caps.readers)
            .filter(|&i| self.reader_slot(i).pid.load(Ordering::Relaxed) != 0)
            .map(|i| {
                let s = self.reader_slot(i);
                let pid = s.pid.load(Ordering::Relaxed);
                ReaderRecord {
                    info: ReaderInfo {
                        slot: i,
                        pid,
                        lcore: s.lcore.load(Ordering::Relaxed),
                        passes: s.passes.load(Ordering::Relaxed),
                        counters: s.counters.iter().map(|c| c.load(Ordering::Relaxed)).collect(),
                        events_dropped: self.ring_hdr(i).dropped.load(Ordering::Relaxed),
                    },
                    registered: s.state.load(Ordering::Acquire) == READER_ACTIVE,
                    alive: pid_alive(pid),
                }
            })
            .collect()
    }

    /// The live policies, in slot order.
    pub fn list_policies(&self) -> Vec<PolicyEntry> {
        (0..self.caps.policies)
            .filter(|&p| self.policy_hdr(p).state.load(Ordering::Acquire) == crate::shm::POLICY_LIVE)
            .map(|p| {
                let h = self.policy_hdr(p);
                let sa = h.sa_slot.load(Ordering::Acquire);
                PolicyEntry {
                    slot: p,
                    config: load_words(self.policy_words(p)),
                    sa_slot: (sa != crate::shm::NO_SLOT).then_some(sa),
                    hits: h.hits.load(Ordering::Relaxed),
                }
            })
            .collect()
    }
}

impl Writer<'_> {
    /// The region.
    pub fn region(&self) -> &Region {
        self.r
    }

    /// Smallest epoch recorded by a live reader (`OFFLINE` if none holds references).
    /// Readers whose process died are deregistered on the way.
    pub(crate) fn min_seen(&self) -> u64 {
        let mut min = OFFLINE;
        for i in 0..self.r.caps.readers {
            let s = self.r.reader_slot(i);
            if s.state.load(Ordering::Acquire) != READER_ACTIVE {
                continue;
            }
            if !pid_alive(s.pid.load(Ordering::Relaxed)) {
                s.seen.store(OFFLINE, Ordering::Relaxed);
                s.state.store(READER_FREE, Ordering::Release);
                continue;
            }
            min = min.min(s.seen.load(Ordering::SeqCst));
        }
        min
    }

    /// Starts a grace period: call after unlinking something. Returns the epoch every
    /// reader must reach before the unlinked memory may be reused.
    pub(crate) fn advance_epoch(&self) -> u64 {
        // Pairs with the reader's fence in `online`: unlinks before this point are seen by
        // any reader whose epoch the scan below misses.
        fence(Ordering::SeqCst);
        self.r.hdr().epoch.fetch_add(1, Ordering::SeqCst) + 1
    }

    /// Waits until every live reader has passed a quiescent point after now.
    pub fn synchronize(&self, timeout: Duration) -> Result<(), SadbError> {
        let target = self.advance_epoch();
        self.wait_for(target, timeout)
    }

    /// Waits until every live reader has recorded epoch `target` or later.
    pub(crate) fn wait_for(&self, target: u64, timeout: Duration) -> Result<(), SadbError> {
        let deadline = Instant::now() + timeout;
        let mut pause = Duration::from_micros(20);
        loop {
            if self.min_seen() >= target {
                return Ok(());
            }
            if Instant::now() >= deadline {
                for i in 0..self.r.caps.readers {
                    let s = self.r.reader_slot(i);
                    if s.state.load(Ordering::Acquire) == READER_ACTIVE
                        && s.seen.load(Ordering::SeqCst) < target
                    {
                        return Err(SadbError::GraceTimeout {
                            pid: s.pid.load(Ordering::Relaxed),
                            lcore: s.lcore.load(Ordering::Relaxed),
                        });
                    }
                }
                return Ok(());
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(5));
        }
    }

    /// Takes every queued event from every reader's ring, in order per reader.
    pub fn drain_events(&mut self, mut f: impl FnMut(u32, Event)) -> usize {
        let mut n = 0;
        for i in 0..self.r.caps.readers {
            let rh = self.r.ring_hdr(i);
            let head = rh.head.load(Ordering::Acquire);
            let mut tail = rh.tail.load(Ordering::Relaxed);
            // A corrupted head more than a ring ahead is clamped, not trusted.
            if head.wrapping_sub(tail) > u64::from(self.r.caps.event_ring) {
                tail = head.wrapping_sub(u64::from(self.r.caps.event_ring));
            }
            while tail != head {
                let ev: Event = load_words(self.r.ring_event(i, tail));
                tail = tail.wrapping_add(1);
                f(i, ev);
                n += 1;
            }
            rh.tail.store(tail, Ordering::Release);
        }
        n
    }

    /// Events lost because a ring was full, summed over readers.
    pub fn events_dropped(&self) -> u64 {
        (0..self.r.caps.readers).map(|i| self.r.ring_hdr(i).dropped.load(Ordering::Relaxed)).sum()
    }

    /// Counts a committed change. The writer's cache follows the change counter: whatever
    /// parts of it are kept have been kept up to date by the change.
    pub(crate) fn committed(&mut self) {
        self.cache.seen = self.r.hdr().changes.fetch_add(1, Ordering::Release).wrapping_add(1);
    }
}

impl Drop for Writer<'_> {
    fn drop(&mut self) {
        let _ = self.file.unlock();
    }
}
