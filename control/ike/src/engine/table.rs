//! The IKE SAs of an engine, looked up by hash, and the accounting of the
//! responder's half-open IKE SAs.
//!
//! Invariants: an SA's `id`, role and initiator cookie, and a responder's
//! responder cookie, never change once it is pushed (they are the index
//! keys); SAs leave only through [`SaTable::remove`],
//! which keeps the indexes and the half-open counts right. Positions are
//! not stable across a removal (the last SA takes the removed one's place):
//! code that removes an SA finds the others again by id.

use super::{IkeSa, IkeSaId};
use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;

/// Which budget a responder's half-open IKE SA was admitted under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Pool {
    /// A connection naming the initiator's address.
    Configured,
    /// A connection that accepts any address (`%any`).
    Any,
}

/// A responder IKE SA's place in the half-open budget, until it is
/// established or removed.
#[derive(Debug, Clone, Copy)]
pub(super) struct Admission {
    source: IpAddr,
    pool: Pool,
    /// Message 3 arrived with our cookie: the initiator receives at its
    /// address, so the SA is no longer evicted for newcomers.
    verified: bool,
}

impl Admission {
    pub(super) fn new(source: IpAddr, pool: Pool) -> Self {
        Self { source, pool, verified: false }
    }
}

/// IKE SAs with cookie indexes and an id index. The keys are ours or
/// derived from a secret, never chosen by a peer alone, so no peer can make
/// a lookup long.
#[derive(Debug, Default)]
pub(super) struct SaTable {
    list: Vec<IkeSa>,
    /// Our initiator SAs by their (random) initiator cookie.
    initiators: HashMap<[u8; 8], IkeSaId>,
    /// Our responder SAs by both cookies (the responder cookie is a keyed
    /// hash of the peer's address, port and initiator cookie).
    responders: HashMap<([u8; 8], [u8; 8]), IkeSaId>,
    /// Id → position in `list`.
    by_id: HashMap<IkeSaId, usize>,
    /// Admitted half-open responder SAs per source address.
    half_open_by_source: HashMap<IpAddr, usize>,
    half_open_total: usize,
    half_open_any: usize,
    /// Half-open SAs without message 3 yet, per pool, oldest (lowest id) first.
    unverified: [BTreeSet<IkeSaId>; 2],
    /// The same, per source address.
    unverified_by_source: HashMap<IpAddr, BTreeSet<IkeSaId>>,
}

fn pool_index(p: Pool) -> usize {
    match p {
        Pool::Configured => 0,
        Pool::Any => 1,
    }
}

impl core::ops::Deref for SaTable {
    type Target = [IkeSa];
    fn deref(&self) -> &[IkeSa] {
        &self.list
    }
}

impl core::ops::DerefMut for SaTable {
    fn deref_mut(&mut self) -> &mut [IkeSa] {
        &mut self.list
    }
}

impl SaTable {
    /// Adds an SA (with its admission, if it has one) and returns its position.
    pub(super) fn push(&mut self, sa: IkeSa) -> usize {
        let pos = self.list.len();
        if sa.initiator {
            self.initiators.insert(sa.cky_i, sa.id);
        } else {
            self.responders.insert((sa.cky_i, sa.cky_r), sa.id);
        }
        self.by_id.insert(sa.id, pos);
        if let Some(a) = sa.admission {
            *self.half_open_by_source.entry(a.source).or_insert(0) += 1;
            self.half_open_total += 1;
            if a.pool == Pool::Any {
                self.half_open_any += 1;
            }
            if !a.verified {
                if let Some(set) = self.unverified.get_mut(pool_index(a.pool)) {
                    set.insert(sa.id);
                }
                self.unverified_by_source.entry(a.source).or_default().insert(sa.id);
            }
        }
        self.list.push(sa);
        pos
    }

    /// Removes the SA at `pos`; the last SA moves into its place.
    pub(super) fn remove(&mut self, pos: usize) -> IkeSa {
        let mut sa = self.list.swap_remove(pos);
        if let Some(moved) = self.list.get(pos) {
            self.by_id.insert(moved.id, pos);
        }
        self.by_id.remove(&sa.id);
        if sa.initiator {
            if self.initiators.get(&sa.cky_i) == Some(&sa.id) {
                self.initiators.remove(&sa.cky_i);
            }
        } else if self.responders.get(&(sa.cky_i, sa.cky_r)) == Some(&sa.id) {
            self.responders.remove(&(sa.cky_i, sa.cky_r));
        }
        self.release(&mut sa);
        sa
    }

    /// The position of the SA with this id.
    pub(super) fn position(&self, id: IkeSaId) -> Option<usize> {
        self.by_id.get(&id).copied()
    }

    /// The position of our initiator SA with this initiator cookie.
    pub(super) fn initiator(&self, cky_i: &[u8; 8]) -> Option<usize> {
        self.initiators.get(cky_i).and_then(|id| self.position(*id))
    }

    /// The position of our responder SA with these cookies.
    pub(super) fn responder(&self, cky_i: &[u8; 8], cky_r: &[u8; 8]) -> Option<usize> {
        self.responders.get(&(*cky_i, *cky_r)).and_then(|id| self.position(*id))
    }

    /// Half-open responder SAs admitted from `source`.
    pub(super) fn half_open_from(&self, source: IpAddr) -> usize {
        self.half_open_by_source.get(&source).copied().unwrap_or(0)
    }

    /// Half-open responder SAs in total, and of those for `%any` connections.
    pub(super) fn half_open(&self) -> (usize, usize) {
        (self.half_open_total, self.half_open_any)
    }

    /// The oldest half-open SA of `pool` that has not had message 3.
    pub(super) fn oldest_unverified(&self, pool: Pool) -> Option<IkeSaId> {
        self.unverified.get(pool_index(pool)).and_then(|s| s.first().copied())
    }

    /// The oldest half-open SA admitted from `source` that has not had message 3.
    pub(super) fn oldest_unverified_from(&self, source: IpAddr) -> Option<IkeSaId> {
        self.unverified_by_source.get(&source).and_then(|s| s.first().copied())
    }

    /// Message 3 arrived with our cookie for the SA at `pos`.
    pub(super) fn verified(&mut self, pos: usize) {
        let Some(sa) = self.list.get_mut(pos) else {
            return;
        };
        let id = sa.id;
        let Some(a) = sa.admission.as_mut() else {
            return;
        };
        a.verified = true;
        let (pool, source) = (a.pool, a.source);
        if let Some(set) = self.unverified.get_mut(pool_index(pool)) {
            set.remove(&id);
        }
        self.forget_unverified_from(source, id);
    }

    fn forget_unverified_from(&mut self, source: IpAddr, id: IkeSaId) {
        if let Some(set) = self.unverified_by_source.get_mut(&source) {
            set.remove(&id);
            if set.is_empty() {
                self.unverified_by_source.remove(&source);
            }
        }
    }

    /// The SA at `pos` is established: it leaves the half-open budget.
    pub(super) fn settled(&mut self, pos: usize) {
        let Some(sa) = self.list.get_mut(pos) else {
            return;
        };
        let (id, a) = (sa.id, sa.admission.take());
        self.release_admission(id, a);
    }

    fn release(&mut self, sa: &mut IkeSa) {
        let a = sa.admission.take();
        self.release_admission(sa.id, a);
    }

    fn release_admission(&mut self, id: IkeSaId, a: Option<Admission>) {
        let Some(a) = a else {
            return;
        };
        if let Some(n) = self.half_open_by_source.get_mut(&a.source) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.half_open_by_source.remove(&a.source);
            }
        }
        self.half_open_total = self.half_open_total.saturating_sub(1);
        if a.pool == Pool::Any {
            self.half_open_any = self.half_open_any.saturating_sub(1);
        }
        if let Some(set) = self.unverified.get_mut(pool_index(a.pool)) {
            set.remove(&id);
        }
        self.forget_unverified_from(a.source, id);
    }
}
