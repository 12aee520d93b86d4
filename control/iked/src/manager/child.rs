//! Child SA pairs: their state and its transitions. A pair is installed
//! (inbound first as a responder, both halves as an initiator, the outbound
//! half of a rekey we start deferred), rekeyed, superseded by its successor,
//! deleted or expired; duplicates of one reqid are settled here.

use super::timers::{rekey_delay, soft_limit, switch_delay, Volume};
use super::{Manager, OUTBOUND_SWITCH_DELAY, REKEY_OVERLAP};
use crate::config::selector::DisplayTs;
use crate::ctl::protocol::MonitorEvent;
use crate::keylog::EspKeys;
use crate::sadb_writer::{policies, SaLimits};
use ike::engine::{
    Command, Encapsulation, EspEncryption, EspIntegrity, EspSaDescription, IkeSaId, TrafficSelector,
};
use rand_core::RngCore;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// A rekey without result after this long is tried again.
const REKEY_RETRY: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ChildState {
    /// Responder: inbound installed, waiting for HASH(3).
    Inbound,
    Installed,
    /// We started its rekey.
    Rekeying,
    /// The peer started a Quick Mode that will replace it: we do not
    /// start our own.
    PeerRekeying,
    /// A successor is installed; deleted at `delete_at` (by us if we rekeyed).
    Superseded,
}

#[derive(Debug, Clone)]
pub(super) struct ChildSa {
    /// `list-sas` uniqueid: a counter, unique for the daemon's life (as
    /// charon's), unlike SPIs.
    pub(super) id: u64,
    pub(super) ike_sa: IkeSaId,
    /// The peer's address.
    pub(super) remote: IpAddr,
    /// The identity the peer authenticated its IKE SA with (the ID payload
    /// body), which scopes an INITIAL-CONTACT.
    pub(super) peer_id: Vec<u8>,
    pub(super) entry: usize,
    pub(super) reqid: u32,
    pub(super) spi_in: u32,
    pub(super) spi_out: u32,
    pub(super) state: ChildState,
    pub(super) encryption: EspEncryption,
    pub(super) integrity: Option<EspIntegrity>,
    /// Extended Sequence Numbers negotiated.
    pub(super) esn: bool,
    pub(super) encapsulation: Encapsulation,
    pub(super) local_ts: TrafficSelector,
    pub(super) remote_ts: TrafficSelector,
    pub(super) installed: Instant,
    pub(super) rekey_at: Option<Instant>,
    pub(super) expire_at: Option<Instant>,
    pub(super) delete_at: Option<Instant>,
    /// The pair of the reqid that was current when this one's Quick Mode
    /// started (its inbound SPI here), if any.
    pub(super) replaces: Option<u32>,
    /// We initiated its Quick Mode.
    pub(super) initiated: bool,
    /// When we started rekeying it.
    pub(super) rekey_started: Option<Instant>,
    /// The volume limits its SAs were installed with.
    pub(super) limits: SaLimits,
    /// Its outbound SA's (bytes, packets) when we started rekeying it: with
    /// the time, how fast it approaches its hard limit (see [`switch_delay`]).
    pub(super) rekey_mark: Option<(u64, u64)>,
}

/// The second half of a rekeyed pair's installation, due at `due`.
#[derive(Debug)]
pub(super) struct DeferredOutbound {
    pub(super) due: Instant,
    pub(super) ike_sa: IkeSaId,
    pub(super) entry: usize,
    pub(super) inbound: EspSaDescription,
    pub(super) outbound: EspSaDescription,
}

impl Manager {
    /// Installs the deferred outbound SAs that `take` selects, for pairs
    /// still waiting for theirs (a pair deleted meanwhile is not brought back).
    pub(super) fn install_deferred(&mut self, now: Instant, take: impl Fn(&DeferredOutbound) -> bool) {
        if !self.deferred_outbound.iter().any(&take) {
            return;
        }
        let (due, later): (Vec<_>, Vec<_>) =
            std::mem::take(&mut self.deferred_outbound).into_iter().partition(take);
        self.deferred_outbound = later;
        for d in due {
            let waiting =
                self.children.iter().any(|c| c.spi_in == d.inbound.spi && c.state == ChildState::Inbound);
            if waiting {
                self.on_install(now, d.ike_sa, d.entry, &d.inbound, Some(&d.outbound));
            }
        }
    }

    /// Starts a rekey of child `i` (Quick Mode on the newest IKE SA of its
    /// connection, or a new phase 1).
    pub(super) fn rekey(&mut self, now: Instant, i: usize) {
        let Some(c) = self.children.get(i) else {
            return;
        };
        if c.state != ChildState::Installed {
            return;
        }
        let (entry, remote, reqid, spi_in, spi_out) = (c.entry, c.remote, c.reqid, c.spi_in, c.spi_out);
        let Some(conn) = self.entries.get(entry).map(|e| e.conn.clone()) else {
            return;
        };
        let mark = self.kernel.sa_stats(spi_out, false, Some(reqid)).map(|s| (s.bytes, s.packets));
        self.mark_rekeying(now, reqid, spi_in, mark);
        match self.established_ike_sa(&conn, Some(remote)) {
            Some(ike_sa) => self.engine.handle_command(now, Command::CreateChildFor { ike_sa, peer: entry }),
            None => {
                if !self.pending.contains(&entry) {
                    self.pending.push(entry);
                }
                if !self.connecting(&conn) {
                    let _ = self.initiate(now, &conn, None);
                }
            }
        }
    }

    /// Pair `spi_in` of `reqid` is being rekeyed by us: the next pair of the
    /// reqid we install replaces it, and no timer rekeys it meanwhile.
    /// `mark` is its outbound SA's (bytes, packets) now, if known (see
    /// [`Manager::outbound_switch_delay`]).
    pub(super) fn mark_rekeying(&mut self, now: Instant, reqid: u32, spi_in: u32, mark: Option<(u64, u64)>) {
        if let Some(b) = self.bindings.get_mut(&reqid) {
            b.rekey_from = Some(spi_in);
        }
        if let Some(c) = self.children.iter_mut().find(|c| c.spi_in == spi_in) {
            c.state = ChildState::Rekeying;
            c.rekey_at = None;
            c.rekey_started = Some(now);
            c.rekey_mark = mark;
            self.deadlines.arm(now + REKEY_RETRY);
        }
    }

    /// Rekeys and deletions that are due, and rekeys that got no result
    /// within [`REKEY_RETRY`] tried again.
    pub(super) fn child_timers(&mut self, now: Instant) {
        let mut rekeys = Vec::new();
        let mut deletes = Vec::new();
        let mut expired = Vec::new();
        for (i, c) in self.children.iter().enumerate() {
            if c.delete_at.is_some_and(|t| t <= now) || c.expire_at.is_some_and(|t| t <= now) {
                deletes.push((c.ike_sa, c.spi_in));
                if c.delete_at.is_none_or(|t| t > now) {
                    expired.push(i);
                }
            } else if c.rekey_at.is_some_and(|t| t <= now) && c.state == ChildState::Installed {
                rekeys.push(i);
            }
        }
        for i in expired {
            self.emit_child_expired(i);
        }
        for c in &mut self.children {
            let stuck = matches!(c.state, ChildState::Rekeying | ChildState::PeerRekeying);
            if stuck && c.rekey_started.is_some_and(|t| now >= t + REKEY_RETRY) {
                // The Quick Mode failed or got no answer: try again.
                c.state = ChildState::Installed;
                c.rekey_at = Some(now);
                self.deadlines.arm(now);
            }
        }
        for i in rekeys {
            tracing::info!(
                target: "ike",
                "rekeying child SA {:08x}/{:08x}",
                self.children.get(i).map_or(0, |c| c.spi_in),
                self.children.get(i).map_or(0, |c| c.spi_out)
            );
            self.rekey(now, i);
        }
        for (ike_sa, inbound_spi) in deletes {
            if let Some(c) = self.children.iter_mut().find(|c| c.spi_in == inbound_spi) {
                c.delete_at = None;
                c.expire_at = None;
            }
            self.delete_child(now, ike_sa, inbound_spi);
        }
    }

    /// Deletes a child pair: with a Delete over the IKE SA holding it, or
    /// locally when no ISAKMP SA holds it any more.
    pub(super) fn delete_child(&mut self, now: Instant, ike_sa: IkeSaId, inbound_spi: u32) {
        match self.engine.child_holder(inbound_spi) {
            Some(holder) => {
                let ike_sa = holder.unwrap_or(ike_sa);
                self.engine.handle_command(now, Command::DeleteChild { ike_sa, inbound_spi });
            }
            None => self.remove_child_spi(now, inbound_spi, true, inbound_spi),
        }
    }

    /// The volume limits of a pair of `entry` whose negotiated kilobyte
    /// lifetime is `kilobytes` (0: none): see [`soft_limit`].
    pub(super) fn limits(&mut self, entry: usize, kilobytes: u32) -> SaLimits {
        let Some(ch) = self.child_config(entry).cloned() else {
            return SaLimits::default();
        };
        // The negotiated kilobytes are a hard limit too (RFC 2407 §4.5):
        // the lower one is in force.
        let negotiated = u64::from(kilobytes).saturating_mul(1024);
        let hard_bytes = match (ch.life_bytes, negotiated) {
            (0, n) | (n, 0) => n,
            (a, b) => a.min(b),
        };
        let (db, dp) = (self.rng.next_u64(), self.rng.next_u64());
        SaLimits {
            replay_window: ch.replay_window,
            soft_bytes: soft_limit(ch.rekey_bytes, ch.rand_bytes, ch.life_bytes, hard_bytes, db),
            hard_bytes,
            soft_packets: soft_limit(ch.rekey_packets, ch.rand_packets, ch.life_packets, ch.life_packets, dp),
            hard_packets: ch.life_packets,
        }
    }

    /// Appends one ESP SA's keys to the key log, when there is one.
    fn log_keys(&self, sa: &EspSaDescription) {
        if let Some(k) = &self.keylog {
            if let Err(e) = k.log_esp_sa(&EspKeys::from_description(sa)) {
                tracing::warn!(target: "dmn", "key log: {e}");
            }
        }
    }

    /// How long a rekey we initiated waits before its outbound SA takes the
    /// traffic: [`OUTBOUND_SWITCH_DELAY`], or less when the pair it replaces
    /// (inbound SPI `old`) would reach its hard volume limit before that.
    fn outbound_switch_delay(&self, now: Instant, old: u32) -> Duration {
        let Some(c) = self.children.iter().find(|c| c.spi_in == old) else {
            return OUTBOUND_SWITCH_DELAY;
        };
        let Some(stats) = self.kernel.sa_stats(c.spi_out, false, Some(c.reqid)) else {
            return OUTBOUND_SWITCH_DELAY;
        };
        // The rate since the rekey started and the one since the install:
        // the faster says how soon the hard limit comes (a sender that
        // paused during the Quick Mode does not make it look far away).
        let windows = [c.rekey_started.zip(c.rekey_mark), Some((c.installed, (0, 0)))];
        windows
            .into_iter()
            .flatten()
            .map(|(since, mark)| {
                let volume = |used: u64, total: u64, hard: u64| Volume {
                    used: total.saturating_sub(used),
                    left: (hard != 0).then(|| hard.saturating_sub(total)),
                };
                switch_delay(
                    OUTBOUND_SWITCH_DELAY,
                    now.saturating_duration_since(since),
                    [
                        volume(mark.0, stats.bytes, c.limits.hard_bytes),
                        volume(mark.1, stats.packets, c.limits.hard_packets),
                    ],
                )
            })
            .fold(OUTBOUND_SWITCH_DELAY, Duration::min)
    }

    pub(super) fn on_install(
        &mut self,
        now: Instant,
        ike_sa: IkeSaId,
        entry: usize,
        inbound: &EspSaDescription,
        outbound: Option<&EspSaDescription>,
    ) {
        // Selectors as negotiated: ours is the inbound SA's destination.
        let (local_ts, remote_ts) = (inbound.destination_ts, inbound.source_ts);
        let reqid = self.reqid_for(entry, &local_ts, &remote_ts);
        let limits = self.limits(entry, inbound.lifetime.kilobytes);
        let existing = self.children.iter().position(|c| c.spi_in == inbound.spi);
        // A responder saw InstallInbound first; a pair without a record is ours.
        let initiated = existing.is_none() && outbound.is_some();
        let replaces = if initiated {
            self.bindings.get_mut(&reqid).and_then(|b| b.rekey_from.take())
        } else {
            self.current_pair(reqid)
        };
        if existing.is_none() || outbound.is_none() {
            if let Err(e) = self.kernel.add_sa(inbound, true, reqid, &limits) {
                tracing::error!(target: "knl", "installing inbound SA {:08x}: {e}", inbound.spi);
                if outbound.is_none() || existing.is_none() {
                    // Our reply (HASH(2), or as initiator HASH(3)) is still
                    // queued: the Quick Mode ends without it, so the peer
                    // never installs a pair we do not have.
                    self.engine
                        .handle_command(now, Command::AbortQuickMode { ike_sa, inbound_spi: inbound.spi });
                }
                return;
            }
        }
        if existing.is_none() && !initiated {
            // The peer's Quick Mode replaces the current pair: no rekey of
            // ours for it any more (that would be a second replacement).
            if let Some(cur) = replaces {
                if let Some(c) = self.children.iter_mut().find(|c| c.spi_in == cur) {
                    if c.state == ChildState::Installed {
                        c.state = ChildState::PeerRekeying;
                        c.rekey_at = None;
                        c.rekey_started = Some(now);
                        self.deadlines.arm(now + REKEY_RETRY);
                    }
                }
            }
        }
        if existing.is_none() {
            // The inbound SA's keys go to the key log as it goes in: as a responder
            // that is at HASH(2), and a peer that never sends HASH(3) still leaves
            // the keys it was answered with (its outbound) to compare.
            self.log_keys(inbound);
            let id = self.next_child_id;
            self.next_child_id += 1;
            let peer_id = self.engine.ike_sa(ike_sa).map(|s| s.peer_id).unwrap_or_default();
            self.children.push(ChildSa {
                id,
                ike_sa,
                remote: inbound.source.ip(),
                peer_id,
                entry,
                reqid,
                spi_in: inbound.spi,
                spi_out: 0,
                state: ChildState::Inbound,
                encryption: inbound.encryption,
                integrity: inbound.integrity,
                esn: inbound.esn,
                encapsulation: inbound.encapsulation,
                local_ts,
                remote_ts,
                installed: now,
                rekey_at: None,
                expire_at: None,
                delete_at: None,
                replaces,
                initiated,
                rekey_started: None,
                limits,
                rekey_mark: None,
            });
        }
        let Some(outbound) = outbound else {
            tracing::debug!(target: "knl", "inbound SA {:08x} installed (reqid {reqid})", inbound.spi);
            return;
        };
        if let (true, Some(old)) = (initiated, replaces) {
            // Our HASH(3) is about to leave: the old pair keeps the traffic
            // until the peer has had time to install its inbound SA (or
            // until shortly before the old pair's hard volume limit).
            let delay = self.outbound_switch_delay(now, old);
            tracing::debug!(
                target: "knl",
                "inbound SA {:08x} installed (reqid {reqid}); outbound {:08x} in {} ms",
                inbound.spi,
                outbound.spi,
                delay.as_millis()
            );
            self.deadlines.arm(now + delay);
            self.deferred_outbound.push(DeferredOutbound {
                due: now + delay,
                ike_sa,
                entry,
                inbound: inbound.clone(),
                outbound: outbound.clone(),
            });
            return;
        }
        match policies(reqid, &local_ts, &remote_ts) {
            Ok(ps) => {
                // Bound to the newest outbound SA of the reqid when they go in
                // (`commit`), or moved to it if they are there already.
                self.pending_policies.retain(|p| ps.iter().all(|q| q.id != p.id));
                self.pending_policies.extend(ps);
            }
            Err(e) => tracing::error!(target: "knl", "policies for reqid {reqid}: {e}"),
        }
        if let Err(e) = self.kernel.add_sa(outbound, false, reqid, &limits) {
            tracing::error!(target: "knl", "installing outbound SA {:08x}: {e}", outbound.spi);
            if initiated {
                // HASH(3) has not left: withdrawn, our inbound half removed.
                self.engine.handle_command(now, Command::AbortQuickMode { ike_sa, inbound_spi: inbound.spi });
                self.remove_child_spi(now, inbound.spi, true, inbound.spi);
            } else {
                self.engine.handle_command(now, Command::DeleteChild { ike_sa, inbound_spi: inbound.spi });
            }
            return;
        }
        self.log_keys(outbound);
        let ch = self.child_config(entry).cloned();
        let negotiated = Duration::from_secs(u64::from(inbound.lifetime.seconds));
        let life =
            ch.as_ref().map_or(negotiated, |c| c.life_time.min(negotiated.max(Duration::from_secs(1))));
        let rekey =
            ch.as_ref().and_then(|c| (!c.rekey_time.is_zero()).then_some((c.rekey_time, c.rand_time)));
        let rekey_at = match (rekey, ch.as_ref()) {
            (Some((t, r)), Some(c)) => {
                let draw = self.rng.next_u64();
                Some(now + rekey_delay(t, r, c.life_time, life, draw))
            }
            _ => None,
        };
        if let Some(c) = self.children.iter_mut().find(|c| c.spi_in == inbound.spi) {
            c.spi_out = outbound.spi;
            c.state = ChildState::Installed;
            c.installed = now;
            c.rekey_at = rekey_at;
            c.expire_at = Some(now + life);
            self.deadlines.arm_opt(rekey_at);
            self.deadlines.arm(now + life);
            if !self.leftovers.is_empty() {
                // An earlier run's SAs of this reqid go once this pair is
                // past the overlap (`reap_orphans`).
                self.deadlines.arm(now + REKEY_OVERLAP);
            }
        }
        tracing::info!(
            target: "knl",
            "child SA `{}` installed: SPIs {:08x}_i {:08x}_o, {} === {} (reqid {reqid})",
            self.entries.get(entry).map_or("", |e| e.child.as_str()),
            inbound.spi,
            outbound.spi,
            DisplayTs(local_ts),
            DisplayTs(remote_ts)
        );
        self.emit_child_up(inbound.spi);
        self.settle_reqid(now, reqid, inbound.spi);
        self.delete_replaced_ike_sas(now);
    }

    /// The newest fully installed pair of `reqid` not yet superseded.
    fn current_pair(&self, reqid: u32) -> Option<u32> {
        self.children
            .iter()
            .filter(|c| c.reqid == reqid && c.spi_out != 0 && c.state != ChildState::Superseded)
            .max_by_key(|c| c.installed)
            .map(|c| c.spi_in)
    }

    /// After pair `new_spi` of `reqid` was installed: a duplicate (same
    /// `replaces`) resolved by the lower min(SPI), the pairs it replaces
    /// superseded (deleted after the overlap by the end that rekeyed).
    fn settle_reqid(&mut self, now: Instant, reqid: u32, new_spi: u32) {
        let Some(new) = self.children.iter().find(|c| c.spi_in == new_spi).cloned() else {
            return;
        };
        let others: Vec<ChildSa> = self
            .children
            .iter()
            .filter(|c| c.reqid == reqid && c.spi_in != new_spi && c.spi_out != 0)
            .filter(|c| c.state != ChildState::Superseded)
            .cloned()
            .collect();
        let key = |c: &ChildSa| c.spi_in.min(c.spi_out);
        for o in others {
            if o.replaces == new.replaces {
                let loser = if key(&o) < key(&new) { new.spi_in } else { o.spi_in };
                tracing::info!(target: "ike", "duplicate child SA pair for reqid {reqid}: deleting {loser:08x}");
                if let Some(c) = self.children.iter_mut().find(|c| c.spi_in == loser) {
                    c.state = ChildState::Superseded;
                    c.rekey_at = None;
                    // Stop sending on it now (the policy falls back to the other
                    // pair); keep receiving on it until the peer did the same.
                    c.delete_at = Some(now + REKEY_OVERLAP);
                    self.deadlines.arm(now + REKEY_OVERLAP);
                    let out = c.spi_out;
                    if let Err(e) = self.kernel.del_sa(out, false, Some(reqid)) {
                        tracing::error!(target: "knl", "removing outbound SA {out:08x}: {e}");
                    }
                }
                if loser == new.spi_in {
                    return;
                }
            } else if let Some(c) = self.children.iter_mut().find(|c| c.spi_in == o.spi_in) {
                c.state = ChildState::Superseded;
                c.rekey_at = None;
                if new.initiated || o.state == ChildState::Rekeying {
                    c.delete_at = Some(now + REKEY_OVERLAP);
                    self.deadlines.arm(now + REKEY_OVERLAP);
                }
            }
        }
    }

    /// The engine or the peer removed one SA, of the pair whose inbound SPI is `pair`. An
    /// outbound SPI alone does not name a child: another peer may have chosen the same one.
    pub(super) fn remove_child_spi(&mut self, now: Instant, spi: u32, inbound: bool, pair: u32) {
        let is_it =
            |c: &ChildSa| if inbound { c.spi_in == spi } else { c.spi_out == spi && c.spi_in == pair };
        // The pair going away may be the one carrying the traffic of a rekey
        // whose outbound SA is still deferred (a reauthentication deletes the
        // old IKE SA's pairs at once): that outbound SA takes over now.
        let gone = self.children.iter().find(|c| is_it(c));
        let gone_reqid = gone.map(|c| c.reqid);
        if let Some((reqid, own_in)) = gone.map(|c| (c.reqid, c.spi_in)) {
            let pending: Vec<u32> = self
                .children
                .iter()
                .filter(|c| c.reqid == reqid && c.spi_in != own_in && c.state == ChildState::Inbound)
                .map(|c| c.spi_in)
                .collect();
            if !pending.is_empty() {
                tracing::debug!(target: "knl", "reqid {reqid}: SA {spi:08x} removed before the deferred outbound switch; switching now");
                self.install_deferred(now, |d| pending.contains(&d.inbound.spi));
            }
        }
        // An outbound SA with no child here is not ours to name by SPI alone.
        if let Err(e) = self.kernel.del_sa(spi, inbound, gone_reqid) {
            tracing::error!(target: "knl", "removing SA {spi:08x}: {e}");
        }
        if inbound {
            self.kernel.release_spi(spi);
        }
        let Some(i) = self.children.iter().position(is_it) else {
            return;
        };
        let Some(c) = self.children.get_mut(i) else {
            return;
        };
        let (was_up, id, spis) = (c.state != ChildState::Inbound, c.id, (c.spi_in, c.spi_out));
        if inbound {
            c.spi_in = 0;
        } else {
            c.spi_out = 0;
        }
        if c.spi_in != 0 && c.spi_out != 0 {
            return;
        }
        // Half-installed or half-deleted: finish the other direction.
        let (other, other_inbound) = if c.spi_in != 0 { (c.spi_in, true) } else { (c.spi_out, false) };
        let c = self.children.remove(i);
        if was_up {
            let (ike, child) = self.entry_names(c.entry);
            let (spi_in, spi_out) = (format!("{:08x}", spis.0), format!("{:08x}", spis.1));
            self.emit(MonitorEvent::ChildDown { ike, child, uniqueid: id, spi_in, spi_out });
        }
        if self.ike.get(&c.ike_sa).is_some_and(|s| s.replaced) {
            // A replaced ISAKMP SA may have waited for its last child
            // (`delete_replaced_ike_sas`): look again now.
            self.deadlines.arm(now);
        }
        if other != 0 {
            let _ = self.kernel.del_sa(other, other_inbound, Some(c.reqid));
            if other_inbound {
                self.kernel.release_spi(other);
            }
        }
        tracing::info!(target: "knl", "child SA pair of reqid {} removed", c.reqid);
        if !self.children.iter().any(|x| x.reqid == c.reqid) {
            self.release_reqid(c.reqid, c.entry);
        }
    }
}
