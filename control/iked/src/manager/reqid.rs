//! Reqids and the policies they own: a child's selector pair gets one reqid
//! for all its pairs, its two policies take their ids from it
//! ([`policy_ids`]), and a trap keeps them without SAs.

use super::{Entry, Manager};
use crate::config::selector::DisplayTs;
use crate::config::StartAction;
use crate::sadb_writer::{policies, policy_ids};
use ike::engine::{TrafficSelector, TsAddress};

/// First reqid for selectors narrowed by a peer (configured ones use the
/// peer entry index + 1).
pub(super) const DYNAMIC_REQID: u32 = 0x0001_0000;

/// A reqid's policies.
#[derive(Debug, Clone)]
pub(super) struct Binding {
    pub(super) entry: usize,
    pub(super) local_ts: TrafficSelector,
    pub(super) remote_ts: TrafficSelector,
    /// Installed by `start_action = trap` (or a trap dpd/close action): kept
    /// without SAs.
    pub(super) trap: bool,
    /// The pair we are rekeying (its inbound SPI).
    pub(super) rekey_from: Option<u32>,
}

impl Manager {
    pub(super) fn reqid_for(
        &mut self,
        entry: usize,
        local: &TrafficSelector,
        remote: &TrafficSelector,
    ) -> u32 {
        let (l, r) = (local.normalized(), remote.normalized());
        if let Some((id, _)) = self
            .bindings
            .iter()
            .find(|(_, b)| b.entry == entry && b.local_ts.normalized() == l && b.remote_ts.normalized() == r)
        {
            return *id;
        }
        let configured = self
            .entries
            .get(entry)
            .is_some_and(|e| e.local_ts.normalized() == l && e.remote_ts.normalized() == r);
        let id = match u32::try_from(entry + 1) {
            Ok(id) if configured && id < DYNAMIC_REQID => id,
            _ => {
                self.next_reqid = self.next_reqid.wrapping_add(1).max(DYNAMIC_REQID);
                self.next_reqid
            }
        };
        self.bindings.insert(id, Binding { entry, local_ts: l, remote_ts: r, trap: false, rekey_from: None });
        id
    }

    /// The peer entry a reqid was given to by its configured selectors
    /// (its index + 1), in this run or in an earlier one with the same
    /// configuration; none for a reqid of narrowed selectors.
    pub(super) fn reqid_owner(&self, reqid: u32) -> Option<&Entry> {
        self.entries.get(self.reqid_owner_index(reqid)?)
    }

    /// The index of [`Manager::reqid_owner`].
    pub(super) fn reqid_owner_index(&self, reqid: u32) -> Option<usize> {
        let index = usize::try_from(reqid).ok().filter(|_| reqid < DYNAMIC_REQID)?.checked_sub(1)?;
        (index < self.entries.len()).then_some(index)
    }

    pub(super) fn install_trap(&mut self, entry: usize) {
        let Some(e) = self.entries.get(entry).cloned() else {
            return;
        };
        let unresolved =
            |ts: &TrafficSelector| matches!(ts.address, TsAddress::Host(a) if a.is_unspecified());
        if unresolved(&e.local_ts) || unresolved(&e.remote_ts) {
            tracing::warn!(target: "cfg", "child `{}`: a trap needs fixed selectors", e.child);
            return;
        }
        let reqid = self.reqid_for(entry, &e.local_ts, &e.remote_ts);
        if let Some(b) = self.bindings.get_mut(&reqid) {
            b.trap = true;
        }
        match policies(reqid, &e.local_ts, &e.remote_ts).and_then(|ps| self.kernel.add_policies(&ps)) {
            Ok(()) => tracing::info!(
                target: "knl",
                "trap installed for `{}`: {} === {} (reqid {reqid})",
                e.child,
                DisplayTs(e.local_ts),
                DisplayTs(e.remote_ts)
            ),
            Err(err) => tracing::error!(target: "knl", "trap for `{}`: {err}", e.child),
        }
    }

    /// The last pair of `reqid` (of peer entry `entry`) is gone. A child
    /// configured to be up (start or trap) keeps its policies as a trap:
    /// traffic then renegotiates instead of leaving in the clear. Otherwise
    /// the policies and the reqid go.
    pub(super) fn release_reqid(&mut self, reqid: u32, entry: usize) {
        let up = self.child_config(entry).is_some_and(|ch| ch.start_action != StartAction::None);
        let configured = self.bindings.get(&reqid).is_some_and(|b| {
            self.entries.get(b.entry).is_some_and(|e| {
                e.local_ts.normalized() == b.local_ts && e.remote_ts.normalized() == b.remote_ts && !e.retired
            })
        });
        if up && configured {
            if let Some(b) = self.bindings.get_mut(&reqid) {
                if !b.trap {
                    tracing::info!(target: "knl", "reqid {reqid}: no SA left, policies stay as a trap");
                }
                b.trap = true;
            }
        }
        if !self.bindings.get(&reqid).is_some_and(|b| b.trap) {
            self.del_reqid_policies(reqid);
            self.bindings.remove(&reqid);
        }
    }

    /// Removes the two policies of `reqid` from the database.
    pub(super) fn del_reqid_policies(&self, reqid: u32) {
        if let Err(e) = self.kernel.del_policies(&policy_ids(reqid)) {
            tracing::error!(target: "knl", "removing policies of reqid {reqid}: {e}");
        }
    }
}
