//! Bursts that mix SAs: the SA is a per-packet attribute, and crypto runs once per burst
//! across all of them through a per-lcore [`CryptoRunner`].
//!
//! The stages are the single-SA functions' (`esp_outb`, `esp_inb`): **prepare** each packet with
//! its own SA, in arrival order (sequence numbers, headers, trailer; inbound: parse and replay
//! pre-check); **crypto** for the whole burst in one runner call, which groups by algorithm
//! class, not by SA (VPP's `esp_encrypt` fills one crypto frame from packets of many SAs, DPDK's
//! `aesni_mb` PMD one multi-buffer burst from ops of any session); **finish** each packet with
//! its SA, in arrival order (inbound: the replay window is updated only now, after the ICV).
//!
//! The caller's SA store is reached through [`SaTable`], by key (espd's slot number), so it can
//! be any indexable store; the burst need not be sorted.

use crate::buffer::PacketBuffer;
use crate::crypto::{CryptoJob, CryptoRunner, CryptoSession, JobStatus, Operation};
use crate::sa::{InboundSa, OutboundSa};
use crate::{DropReason, MAX_BURST};
use arrayvec::ArrayVec;

/// Where a mixed burst finds its SAs.
pub trait SaTable<S> {
    /// The SA for the next packet of `key`, or why the packet cannot have one. The prepare
    /// stage calls it once per packet, in arrival order, before that packet takes a sequence
    /// number; `then` holds the keys of the packets after it in the chunk, so a dataplane that
    /// reserves sequence numbers in a shared counter can reserve for a whole run of one SA.
    fn next_packet(&mut self, key: usize, then: &[usize]) -> Result<&mut S, DropReason>;
    /// The SA of `key`, to read.
    fn get(&self, key: usize) -> Option<&S>;
    /// The SA of `key`, to update.
    fn get_mut(&mut self, key: usize) -> Option<&mut S>;
}

impl<S> SaTable<S> for [S] {
    fn next_packet(&mut self, key: usize, _then: &[usize]) -> Result<&mut S, DropReason> {
        <[S]>::get_mut(self, key).ok_or(DropReason::NoSa)
    }
    fn get(&self, key: usize) -> Option<&S> {
        <[S]>::get(self, key)
    }
    fn get_mut(&mut self, key: usize) -> Option<&mut S> {
        <[S]>::get_mut(self, key)
    }
}

/// What the crypto stage needs of an SA of either direction.
trait HasSession {
    fn session(&self) -> &dyn CryptoSession;
}

impl HasSession for OutboundSa {
    fn session(&self) -> &dyn CryptoSession {
        &*self.common.session
    }
}

impl HasSession for InboundSa {
    fn session(&self) -> &dyn CryptoSession {
        &*self.common.session
    }
}

/// The stage between prepare and finish: one runner call for every prepared packet of the
/// chunk. `esp_range(i)` is packet `i`'s ESP region and ESN high half when it was prepared.
fn crypto_stage<S: HasSession, T: SaTable<S> + ?Sized, B: PacketBuffer>(
    runner: &mut dyn CryptoRunner,
    op: Operation,
    table: &T,
    keys: &[usize],
    bufs: &mut [B],
    esp_range: impl Fn(usize) -> Option<(usize, usize, Option<u32>)>,
    statuses: &mut [JobStatus; MAX_BURST],
) {
    let mut sessions: ArrayVec<&dyn CryptoSession, MAX_BURST> = ArrayVec::new();
    let mut jobs: ArrayVec<CryptoJob<'_>, MAX_BURST> = ArrayVec::new();
    let mut idx: ArrayVec<u8, MAX_BURST> = ArrayVec::new();
    for (i, b) in bufs.iter_mut().enumerate().take(MAX_BURST) {
        let Some((off, len, esn_high)) = esp_range(i) else { continue };
        let (Some(sa), Some(esp)) =
            (keys.get(i).and_then(|&k| table.get(k)), b.storage_mut().get_mut(off..off + len))
        else {
            continue;
        };
        sessions.push(sa.session());
        jobs.push(CryptoJob::new(esp, esn_high));
        #[allow(clippy::cast_possible_truncation)] // i < MAX_BURST = 64
        idx.push(i as u8);
    }
    runner.run(op, &sessions, &mut jobs);
    for (j, &i) in jobs.iter().zip(idx.iter()) {
        if let Some(s) = statuses.get_mut(usize::from(i)) {
            *s = j.status;
        }
    }
}

/// The crate's chunking of bursts into [`MAX_BURST`] ([`crate::for_each_chunk`]), with each
/// chunk's keys beside its buffers; packets past the end of `keys` are left alone.
fn for_each_chunk<B>(
    keys: &[usize],
    bufs: &mut [B],
    results: &mut [Result<(), DropReason>],
    mut chunk: impl FnMut(&[usize], &mut [B], &mut [Result<(), DropReason>]) -> usize,
) -> usize {
    let n = keys.len().min(bufs.len());
    let Some(bufs) = bufs.get_mut(..n) else { return 0 };
    let mut at = 0;
    crate::for_each_chunk(bufs, results, |b, r| {
        let k = keys.get(at..at + b.len()).unwrap_or(&[]);
        at += b.len();
        chunk(k, b, r)
    })
}

/// Encapsulate a burst whose packets belong to any SAs of `table`: `keys[i]` names `bufs[i]`'s
/// SA (a key the table does not have gives [`DropReason::NoSa`]). `results[i]` is set for
/// every packet; returns the number of good packets.
pub fn encap_mixed<B: PacketBuffer, T: SaTable<OutboundSa> + ?Sized>(
    runner: &mut dyn CryptoRunner,
    table: &mut T,
    keys: &[usize],
    bufs: &mut [B],
    results: &mut [Result<(), DropReason>],
) -> usize {
    for_each_chunk(keys, bufs, results, |keys, bufs, results| {
        // Filled as far as used (no zeroing of a whole burst's worth).
        let mut preps: ArrayVec<crate::esp_outb::Prep, MAX_BURST> = ArrayVec::new();
        for (i, ((&k, b), r)) in keys.iter().zip(bufs.iter_mut()).zip(results.iter_mut()).enumerate() {
            let then = keys.get(i + 1..).unwrap_or(&[]);
            let p = table.next_packet(k, then).and_then(|sa| sa.prepare(b));
            *r = p.map(|_| ());
            preps.push(p.unwrap_or_default());
        }
        let mut statuses = [JobStatus::Pending; MAX_BURST];
        let ok = |i: usize| results.get(i).is_some_and(|r| r.is_ok());
        crypto_stage::<OutboundSa, T, B>(
            runner,
            Operation::Seal,
            table,
            keys,
            bufs,
            |i| ok(i).then(|| preps.get(i).map(|p| (p.esp_off, p.esp_len, p.esn_high))).flatten(),
            &mut statuses,
        );
        let mut good = 0;
        for ((((&k, b), r), p), s) in
            keys.iter().zip(bufs.iter_mut()).zip(results.iter_mut()).zip(preps.iter()).zip(statuses.iter())
        {
            if r.is_err() {
                continue;
            }
            *r = match table.get_mut(k) {
                Some(sa) if *s == JobStatus::Ok => {
                    sa.finish(b, p);
                    good += 1;
                    Ok(())
                }
                Some(_) => Err(DropReason::CryptoError),
                None => Err(DropReason::NoSa),
            };
        }
        good
    })
}

/// Decapsulate a burst whose packets belong to any SAs of `table`: `keys[i]` names `bufs[i]`'s
/// SA. Replay windows are checked before the crypto stage and updated after it, in arrival
/// order, so two copies of one packet in a burst let only the first through. `results[i]` is
/// set for every packet; returns the number of good packets.
pub fn decap_mixed<B: PacketBuffer, T: SaTable<InboundSa> + ?Sized>(
    runner: &mut dyn CryptoRunner,
    table: &mut T,
    keys: &[usize],
    bufs: &mut [B],
    results: &mut [Result<(), DropReason>],
) -> usize {
    for_each_chunk(keys, bufs, results, |keys, bufs, results| {
        let mut preps: ArrayVec<(crate::esp_inb::Prep, bool), MAX_BURST> = ArrayVec::new();
        for (i, ((&k, b), r)) in keys.iter().zip(bufs.iter()).zip(results.iter_mut()).enumerate() {
            let then = keys.get(i + 1..).unwrap_or(&[]);
            let p = table.next_packet(k, then).and_then(|sa| Ok((sa.parse(b)?, sa.common.esn)));
            *r = p.map(|_| ());
            preps.push(p.unwrap_or_default());
        }
        let mut statuses = [JobStatus::Pending; MAX_BURST];
        let ok = |i: usize| results.get(i).is_some_and(|r| r.is_ok());
        // The high half of the inferred ESN goes into the ICV input (RFC 4303 §2.2.1).
        #[allow(clippy::cast_possible_truncation)]
        let range = |(p, esn): &(crate::esp_inb::Prep, bool)| {
            (p.esp_off, p.esp_len, esn.then_some((p.seq >> 32) as u32))
        };
        crypto_stage::<InboundSa, T, B>(
            runner,
            Operation::Open,
            table,
            keys,
            bufs,
            |i| ok(i).then(|| preps.get(i).map(range)).flatten(),
            &mut statuses,
        );
        let mut good = 0;
        for ((((&k, b), r), (p, _)), s) in
            keys.iter().zip(bufs.iter_mut()).zip(results.iter_mut()).zip(preps.iter()).zip(statuses.iter())
        {
            if r.is_err() {
                continue;
            }
            let Some(sa) = table.get_mut(k) else {
                *r = Err(DropReason::NoSa);
                continue;
            };
            *r = sa.finish_checked(b, p, *s);
            if r.is_ok() {
                good += 1;
            }
        }
        good
    })
}
