//! IKE SA bookkeeping: establishment, DPD on idle, re-establishment
//! (reauthentication) before expiry, replaced ISAKMP SAs and the adoption of
//! their children, INITIAL-CONTACT, and the end of an IKE SA.

use super::child::ChildState;
use super::{Entry, Manager, REKEY_OVERLAP};
use crate::config::PeerGoneAction;
use crate::ctl::protocol::MonitorEvent;
use ike::engine::{Command, IkeSaId};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

/// While a peer with DPD sends traffic, its children's counters are looked
/// at this many times per `dpd_delay`, so that the idle time is known
/// within `dpd_delay / DPD_LOOKS_PER_DELAY` when the traffic stops (the
/// dataplane counts packets; it keeps no exact time of the last one).
const DPD_LOOKS_PER_DELAY: u32 = 8;

/// Pause before retrying a failed initiation.
const RETRY_DELAY: Duration = Duration::from_secs(3);

/// DPD bookkeeping of an IKE SA.
#[derive(Debug, Clone, Copy)]
struct Dpd {
    /// When inbound traffic (or a DPD answer) was last seen.
    last_activity: Instant,
    /// Inbound ESP packets of the IKE SA's children at the last look.
    inbound_packets: u64,
    /// A probe is out: unanswered by then, the peer is dead.
    probe_deadline: Option<Instant>,
}

/// What the manager keeps about an IKE SA beside the engine.
#[derive(Debug, Clone)]
pub(super) struct IkeState {
    /// The connection it belongs to.
    pub(super) conn: String,
    /// The peer's address (a `%any` connection has many peers).
    pub(super) remote: Option<IpAddr>,
    /// The peer's authenticated identity (ID payload body), once
    /// established: clients behind one NAT address are told apart by it.
    pub(super) peer_id: Vec<u8>,
    /// When phase 1 completed (`None` while connecting).
    pub(super) established: Option<Instant>,
    /// When to re-establish it, before it expires.
    pub(super) reauth_at: Option<Instant>,
    /// A newer IKE SA of the connection replaced this one.
    pub(super) replaced: bool,
    /// When it was replaced (its deletion waits [`REKEY_OVERLAP`]).
    pub(super) replaced_at: Option<Instant>,
    /// It was replaced by an IKE SA we initiated (see
    /// [`Manager::delete_replaced_ike_sas`]).
    pub(super) replaced_by_us: bool,
    /// DPD, when its connection has a `dpd_delay`.
    dpd: Option<Dpd>,
    /// The DPD probe went unanswered.
    pub(super) dead: bool,
}

impl IkeState {
    /// An IKE SA of `conn` we are initiating, with the peer at `remote`.
    fn connecting(conn: &str, remote: Option<IpAddr>) -> Self {
        Self {
            conn: conn.to_owned(),
            remote,
            peer_id: Vec::new(),
            established: None,
            reauth_at: None,
            replaced: false,
            replaced_at: None,
            replaced_by_us: false,
            dpd: None,
            dead: false,
        }
    }
}

/// Who an IKE SA, or a child pair it left behind, is with, as INITIAL-CONTACT
/// scopes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Contact<'a> {
    /// The connection.
    pub(super) conn: &'a str,
    /// The peer's address (any port).
    pub(super) addr: IpAddr,
    /// The peer's authenticated ID payload body; empty before phase 1 ends.
    pub(super) peer_id: &'a [u8],
}

impl Contact<'_> {
    /// RFC 2407 §4.6.3.3: INITIAL-CONTACT tells that its sender has no
    /// memory of its older SAs with us. Its sender is the identity it
    /// authenticated with, on the same connection, from the same address on
    /// any port (a client re-connecting through a new NAT mapping). Another
    /// identity from that address (another client behind the same NAT, or a
    /// `%any` connection's other peer) is someone else.
    fn same_peer(&self, other: &Contact<'_>) -> bool {
        !self.peer_id.is_empty()
            && self.peer_id == other.peer_id
            && self.conn == other.conn
            && self.addr == other.addr
    }
}

/// The IKE SAs an INITIAL-CONTACT received on `new` deletes: the others of
/// the same peer ([`Contact::same_peer`]).
fn initial_contact_victims(new: (IkeSaId, Contact<'_>), all: &[(IkeSaId, Contact<'_>)]) -> Vec<IkeSaId> {
    all.iter().filter(|(id, c)| *id != new.0 && new.1.same_peer(c)).map(|(id, _)| *id).collect()
}

impl Manager {
    /// DPD of idle peers (probe, or declare dead) and the re-establishment
    /// of ISAKMP SAs that are due. An IKE SA with DPD is looked at
    /// `dpd_delay` after its last sign of life (as strongSwan schedules its
    /// DPD check), and more often while its peer sends
    /// ([`DPD_LOOKS_PER_DELAY`]); it is probed once `dpd_delay` passed with
    /// no inbound packet, so a dead peer is probed within `dpd_delay` and
    /// one look interval of its last packet.
    pub(super) fn ike_timers(&mut self, now: Instant) {
        let mut reauth = Vec::new();
        let mut dpd = Vec::new();
        let mut dead = Vec::new();
        // Inbound packets per IKE SA, in one pass over the children (only
        // when some IKE SA runs DPD).
        let inbound = if self.ike.values().any(|s| s.dpd.is_some()) {
            self.inbound_packets()
        } else {
            Default::default()
        };
        let ids: Vec<IkeSaId> = self.ike.keys().copied().collect();
        for id in ids {
            let Some(s) = self.ike.get(&id).cloned() else {
                continue;
            };
            if s.established.is_none() || s.replaced || s.dead {
                continue;
            }
            if s.reauth_at.is_some_and(|t| t <= now) {
                reauth.push(id);
            }
            let Some(mut d) = s.dpd else {
                continue;
            };
            // RFC 3706 §5.5: only an idle peer is probed. The children's
            // inbound counters say whether it is idle (as strongSwan reads
            // the kernel's SA use times).
            let packets = inbound.get(&id).copied().unwrap_or(0);
            if packets != d.inbound_packets {
                d.inbound_packets = packets;
                d.last_activity = now;
                d.probe_deadline = None;
            }
            let (delay, timeout) = self
                .conn_config(&s.conn)
                .map_or((Duration::ZERO, Duration::ZERO), |c| (c.dpd_delay, c.dpd_timeout));
            match d.probe_deadline {
                Some(deadline) if deadline <= now => dead.push(id),
                Some(_) => {}
                None if now.saturating_duration_since(d.last_activity) >= delay => {
                    d.probe_deadline = Some(now + timeout);
                    dpd.push(id);
                }
                None => {}
            }
            // The next look: the probe's deadline; while the peer sends, a
            // fraction of `dpd_delay` later; else `dpd_delay` after the last
            // sign of life.
            let next = match d.probe_deadline {
                Some(deadline) => deadline,
                None if d.last_activity == now => now + delay / DPD_LOOKS_PER_DELAY,
                None => d.last_activity + delay,
            };
            if next > now {
                self.deadlines.arm(next);
            }
            if let Some(st) = self.ike.get_mut(&id) {
                st.dpd = Some(d);
            }
        }
        for id in dpd {
            tracing::debug!(target: "ike", "IKE SA {} idle: sending R-U-THERE", id.0);
            self.emit(MonitorEvent::DpdProbe { ike: self.ike_name(id), uniqueid: id.0 });
            self.engine.handle_command(now, Command::DeadPeerDetection(id));
        }
        for id in dead {
            tracing::warn!(target: "ike", "IKE SA {}: no DPD answer within dpd_timeout, peer is dead", id.0);
            self.emit(MonitorEvent::DpdDead { ike: self.ike_name(id), uniqueid: id.0 });
            if let Some(s) = self.ike.get_mut(&id) {
                s.dead = true;
            }
            self.engine.handle_command(now, Command::Delete(id));
        }
        for id in reauth {
            self.reestablish(now, id);
        }
    }

    /// The peer of `id` answered our R-U-THERE: alive, idle from now on.
    pub(super) fn on_dpd_ack(&mut self, now: Instant, id: IkeSaId) {
        let Some(s) = self.ike.get_mut(&id) else {
            return;
        };
        if let Some(d) = s.dpd.as_mut() {
            d.probe_deadline = None;
            d.last_activity = now;
        }
        let delay = self.config.connection(&s.conn).map(|c| c.dpd_delay);
        self.deadlines.arm_opt(delay.map(|d| now + d));
    }

    /// Re-establishes ISAKMP SA `id` before it expires: a new phase 1, and
    /// every child with SAs under `id` moves to the new one by a rekey of
    /// each (the new pair replaces the old, which is deleted after the
    /// overlap, then `id`).
    pub(super) fn reestablish(&mut self, now: Instant, id: IkeSaId) {
        let Some(s) = self.ike.get_mut(&id) else {
            return;
        };
        s.reauth_at = None;
        let conn = s.conn.clone();
        tracing::info!(target: "ike", "re-establishing ISAKMP SA of `{conn}` before it expires");
        let moving: Vec<(usize, u32, u32)> = self
            .children
            .iter()
            .filter(|c| c.ike_sa == id && c.state == ChildState::Installed)
            .map(|c| (c.entry, c.reqid, c.spi_in))
            .collect();
        for (entry, reqid, spi_in) in moving {
            // No mark of an earlier attempt: the switch delay then uses the
            // rate since the install.
            self.mark_rekeying(now, reqid, spi_in, None);
            if !self.pending.contains(&entry) {
                self.pending.push(entry);
            }
        }
        let first = self.pending.iter().position(|p| self.entries.get(*p).is_some_and(|e| e.conn == conn));
        if let Some(pos) = first {
            let p = self.pending.remove(pos);
            self.start_phase1(now, &conn, p);
        }
    }

    /// Starts phase 1 of `conn` for peer entry `entry`, its IKE SA recorded
    /// as connecting.
    pub(super) fn start_phase1(&mut self, now: Instant, conn: &str, entry: usize) {
        let Some(id) = self.engine.initiate(now, entry) else {
            return;
        };
        let remote = self.engine.ike_sa(id).map(|s| s.remote.ip());
        self.ike.insert(id, IkeState::connecting(conn, remote));
    }

    /// Inbound packets of each IKE SA's children, from the dataplane.
    fn inbound_packets(&self) -> std::collections::HashMap<IkeSaId, u64> {
        let mut m = std::collections::HashMap::new();
        for c in &self.children {
            if let Some(s) = self.kernel.sa_stats(c.spi_in, true, None) {
                *m.entry(c.ike_sa).or_insert(0) += s.packets;
            }
        }
        m
    }

    /// RFC 3947 §5: the peer's NAT mapping changed (an authenticated message
    /// of the IKE SA came from a new port or address). The outbound ESP SAs
    /// the IKE SA holds are pointed at the new endpoint in place, and so are
    /// those still waiting to be installed.
    pub(super) fn on_peer_moved(
        &mut self,
        id: IkeSaId,
        local: SocketAddr,
        remote: SocketAddr,
        outbound_spis: &[u32],
    ) {
        tracing::info!(target: "ike", "IKE SA {}: peer moved to {remote}, ESP SAs follow", id.0);
        for &spi in outbound_spis {
            // The SPI is the peer's choice, so the SA is named with the reqid of its child.
            let Some(reqid) =
                self.children.iter().find(|c| c.ike_sa == id && c.spi_out == spi).map(|c| c.reqid)
            else {
                continue;
            };
            match self.kernel.move_outbound_sa(spi, reqid, local, remote) {
                Ok(true) => tracing::info!(target: "knl", "outbound SA {spi:08x} now sends to {remote}"),
                Ok(false) => {}
                Err(e) => tracing::error!(target: "knl", "moving outbound SA {spi:08x} to {remote}: {e}"),
            }
        }
        for d in self.deferred_outbound.iter_mut().filter(|d| d.ike_sa == id) {
            d.outbound.source = local;
            d.outbound.destination = remote;
        }
    }

    pub(super) fn on_ike_established(&mut self, now: Instant, id: IkeSaId, peer: usize) {
        let Some(entry) = self.entries.get(peer).cloned() else {
            return;
        };
        let conn = self.conn_config(&entry.conn).cloned();
        let summary = self.engine.ike_sa(id);
        tracing::info!(
            target: "ike",
            "IKE SA {} of `{}` established with {}",
            id.0,
            entry.conn,
            summary.as_ref().map_or_else(String::new, |s| s.remote.to_string())
        );
        if let (Some(k), Some((cky_i, key))) = (&self.keylog, self.engine.keylog_ike_sa(id)) {
            if let Err(e) = k.log_ike_sa(&cky_i, &key) {
                tracing::warn!(target: "dmn", "key log: {e}");
            }
        }
        let initiator = summary.as_ref().is_some_and(|s| s.initiator);
        let reauth_at = conn.as_ref().and_then(|c| {
            let base = match (c.rekey_time.is_zero(), c.reauth_time.is_zero()) {
                (true, true) => return None,
                (false, true) => c.rekey_time,
                (true, false) => c.reauth_time,
                (false, false) => c.rekey_time.min(c.reauth_time),
            };
            // The responder waits longer, so one end re-establishes.
            let base =
                if initiator || c.initiate_address().is_none() { base } else { base + c.over_time / 2 };
            Some(base)
        });
        let reauth_at = match reauth_at {
            Some(b) => {
                // The jitter never takes more than half the time (strongSwan
                // scales a rand_time that does not fit the window).
                let r = conn.as_ref().map_or(Duration::ZERO, |c| c.rand_time).min(b / 2);
                let j = self.jitter(r);
                Some(now + b.saturating_sub(j))
            }
            None => None,
        };
        let dpd = conn.as_ref().filter(|c| !c.dpd_delay.is_zero()).map(|c| {
            self.deadlines.arm(now + c.dpd_delay);
            Dpd { last_activity: now, inbound_packets: 0, probe_deadline: None }
        });
        self.deadlines.arm_opt(reauth_at);
        // Older IKE SAs of this connection with this peer (address and
        // identity: another client behind the same NAT is another peer) are
        // replaced.
        let remote = summary.as_ref().map(|s| s.remote.ip());
        let peer_id = summary.as_ref().map(|s| s.peer_id.clone()).unwrap_or_default();
        let mut replaced = Vec::new();
        for (oid, s) in self.ike.iter_mut() {
            if *oid != id
                && s.conn == entry.conn
                && s.established.is_some()
                && s.remote == remote
                && s.peer_id == peer_id
                && !s.replaced
            {
                s.replaced = true;
                s.replaced_at = Some(now);
                s.replaced_by_us = initiator;
                self.deadlines.arm(now + REKEY_OVERLAP);
                replaced.push(oid.0);
            }
        }
        self.ike.insert(
            id,
            IkeState {
                conn: entry.conn.clone(),
                remote,
                peer_id,
                established: Some(now),
                reauth_at,
                replaced: false,
                replaced_at: None,
                replaced_by_us: false,
                dpd,
                dead: false,
            },
        );
        if let Some(s) = &summary {
            let (local, remote) = (s.local.to_string(), s.remote.to_string());
            self.emit(MonitorEvent::IkeUp { ike: entry.conn.clone(), uniqueid: id.0, local, remote });
        }
        for old in replaced {
            self.emit(MonitorEvent::IkeRekeyed { ike: entry.conn.clone(), old, new: id.0 });
        }
        self.retries.retain(|r| r.0 != entry.conn);
        self.adopt_children(now, id);
        // Children waiting for this connection.
        let (mine, rest): (Vec<usize>, Vec<usize>) =
            self.pending.drain(..).partition(|p| self.entries.get(*p).is_some_and(|e| e.conn == entry.conn));
        self.pending = rest;
        for p in mine {
            if p != peer || !initiator {
                self.engine.handle_command(now, Command::CreateChildFor { ike_sa: id, peer: p });
            }
        }
        self.delete_replaced_ike_sas(now);
    }

    /// An IKE SA replaced by a newer one is deleted, alone (its children
    /// were adopted by the newer one), once it has no children left and
    /// [`REKEY_OVERLAP`] has passed, by us only when the newer one is ours:
    /// the peer, its responder, then adopted the children too (strongSwan
    /// and libreswan do). An IKE SA the peer replaced is left to the peer
    /// (strongSwan deletes it `over_time` later) or to its lifetime: a peer
    /// moves only the children of the ISAKMP SA it re-keys, and strongSwan
    /// deletes the children of an ISAKMP SA it receives a Delete for, so a
    /// Delete from us could take pairs with it when both ends re-establish
    /// at once.
    pub(super) fn delete_replaced_ike_sas(&mut self, now: Instant) {
        let replaced: Vec<IkeSaId> = self
            .ike
            .iter()
            .filter(|(_, s)| s.replaced && s.established.is_some())
            .filter(|(_, s)| s.replaced_at.is_none_or(|t| now >= t + REKEY_OVERLAP))
            .map(|(id, _)| *id)
            .collect();
        for id in replaced {
            if !self.ike.get(&id).is_some_and(|s| s.replaced_by_us) {
                continue;
            }
            let waiting = self.children.iter().any(|c| c.ike_sa == id);
            let conn = self.ike.get(&id).map(|s| s.conn.clone()).unwrap_or_default();
            let pending = self.pending.iter().any(|p| self.entries.get(*p).is_some_and(|e| e.conn == conn));
            if !waiting && !pending {
                tracing::info!(target: "ike", "deleting replaced IKE SA {}", id.0);
                self.engine.handle_command(now, Command::DeleteIsakmpSa(id));
            }
        }
    }

    /// The child pairs of `id`'s connection with its peer whose IKE SA is
    /// gone or replaced move to `id`, as strongSwan and libreswan adopt the
    /// children of a re-established ISAKMP SA: their rekeys, DPD and Deletes
    /// continue under it. Pairs still half-installed stay with the Quick Mode
    /// that creates them.
    fn adopt_children(&mut self, now: Instant, id: IkeSaId) {
        let Some(s) = self.ike.get(&id) else {
            return;
        };
        let (conn, remote, peer_id) = (s.conn.clone(), s.remote, s.peer_id.clone());
        let adopted: Vec<u32> = self
            .children
            .iter()
            .filter(|c| c.ike_sa != id && c.spi_out != 0 && Some(c.remote) == remote && c.peer_id == peer_id)
            .filter(|c| self.entries.get(c.entry).is_some_and(|e| e.conn == conn))
            .filter(|c| self.ike.get(&c.ike_sa).is_none_or(|o| o.replaced))
            .map(|c| c.spi_in)
            .collect();
        if adopted.is_empty() {
            return;
        }
        for &spi in &adopted {
            self.engine.handle_command(now, Command::AdoptChild { ike_sa: id, inbound_spi: spi });
            if let Some(c) = self.children.iter_mut().find(|c| c.spi_in == spi) {
                c.ike_sa = id;
            }
        }
        tracing::info!(target: "ike", "IKE SA {} of `{conn}` adopts {} child SA pair(s)", id.0, adopted.len());
    }

    /// An IKE SA ended: by Delete, failure, DPD or expiry. Its children stay
    /// (RFC 2408 §3.15), adopted by the connection's current IKE SA with the
    /// peer if there is one, else orphans that keep forwarding until they
    /// expire or a new IKE SA adopts them (their rekey initiates one). A dead
    /// peer (DPD) takes them along.
    pub(super) fn on_ike_gone(&mut self, now: Instant, id: IkeSaId, failed: bool) {
        let Some(s) = self.ike.remove(&id) else {
            return;
        };
        let reason = if s.dead {
            "dead"
        } else if failed && s.established.is_none() {
            "failed"
        } else {
            "deleted"
        };
        self.emit(MonitorEvent::IkeDown { ike: s.conn.clone(), uniqueid: id.0, reason: reason.into() });
        let conn = self.conn_config(&s.conn).cloned();
        let action = if s.dead {
            conn.as_ref().and_then(|c| c.children.first()).map(|ch| ch.dpd_action)
        } else if failed && s.established.is_none() {
            None
        } else if !s.replaced {
            conn.as_ref().and_then(|c| c.children.first()).map(|ch| ch.close_action)
        } else {
            None
        };
        let of_peer: Vec<(IkeSaId, u32)> = self
            .children
            .iter()
            .filter(|c| !self.ike.contains_key(&c.ike_sa) && s.remote.is_none_or(|r| r == c.remote))
            .filter(|c| self.entries.get(c.entry).is_some_and(|e| e.conn == s.conn))
            .map(|c| (c.ike_sa, c.spi_in))
            .collect();
        if s.dead {
            for (ike_sa, spi) in of_peer {
                self.delete_child(now, ike_sa, spi);
            }
        } else if !of_peer.is_empty() {
            // The newest remaining IKE SA with the peer takes them, even one
            // marked replaced (the peer may have kept that one).
            let current = self.established_ike_sa(&s.conn, s.remote).or_else(|| {
                self.ike
                    .iter()
                    .filter(|(_, o)| o.conn == s.conn && o.remote == s.remote && o.established.is_some())
                    .filter(|(_, o)| !o.dead)
                    .max_by_key(|(_, o)| o.established)
                    .map(|(i, _)| *i)
            });
            match current {
                Some(cur) => {
                    if let Some(o) = self.ike.get_mut(&cur) {
                        o.replaced = false;
                        o.replaced_at = None;
                        o.replaced_by_us = false;
                    }
                    // Its re-establishment and DPD run again.
                    self.deadlines.arm(now);
                    self.adopt_children(now, cur);
                }
                None if s.established.is_some() => tracing::info!(
                    target: "ike",
                    "{} child SA pair(s) of `{}` keep forwarding without an ISAKMP SA",
                    of_peer.len(),
                    s.conn
                ),
                None => {}
            }
        }
        let name = s.conn.clone();
        match action {
            Some(PeerGoneAction::Restart) => {
                tracing::info!(target: "ike", "`{name}`: peer gone, restarting");
                self.retries.push((name.clone(), now + RETRY_DELAY, 0));
                self.deadlines.arm(now + RETRY_DELAY);
            }
            Some(PeerGoneAction::Trap) => {
                for e in self.entries_of(&name, None) {
                    self.install_trap(e);
                }
            }
            Some(PeerGoneAction::Clear) | None => {}
        }
        if failed && s.established.is_none() {
            // keyingtries: 0 = forever.
            let tries = conn.as_ref().map_or(1, |c| c.keyingtries);
            let done = self.retries.iter().find(|r| r.0 == name).map_or(0, |r| r.2);
            self.retries.retain(|r| r.0 != name);
            if tries == 0 || done + 1 < tries {
                self.retries.push((name, now + RETRY_DELAY, done + 1));
                self.deadlines.arm(now + RETRY_DELAY);
            } else {
                tracing::warn!(target: "ike", "`{name}`: giving up after {tries} keying tries");
                self.pending.retain(|p| self.entries.get(*p).is_none_or(|e| e.conn != s.conn));
            }
        }
    }

    /// INITIAL-CONTACT: the peer has no memory of older SAs with us. "The
    /// peer" is its identity on this connection and address (see
    /// [`Contact::same_peer`]): other clients behind the same NAT keep theirs.
    pub(super) fn on_initial_contact(&mut self, now: Instant, id: IkeSaId) {
        let sas = self.engine.ike_sas();
        fn contact<'a>(entries: &'a [Entry], s: &'a ike::engine::IkeSaSummary) -> (IkeSaId, Contact<'a>) {
            let conn = entries.get(s.peer).map_or("", |e| e.conn.as_str());
            (s.id, Contact { conn, addr: s.remote.ip(), peer_id: &s.peer_id })
        }
        let contact = |s| contact(&self.entries, s);
        let Some(new) = sas.iter().find(|s| s.id == id).map(contact) else {
            return;
        };
        let all: Vec<(IkeSaId, Contact<'_>)> = sas.iter().map(contact).collect();
        let victims = initial_contact_victims(new, &all);
        // Pairs kept after their IKE SA ended.
        let stale: Vec<u32> = self
            .children
            .iter()
            .filter(|c| c.ike_sa != id && !self.ike.contains_key(&c.ike_sa))
            .filter(|c| {
                let conn = self.entries.get(c.entry).map_or("", |e| e.conn.as_str());
                new.1.same_peer(&Contact { conn, addr: c.remote, peer_id: &c.peer_id })
            })
            .map(|c| c.spi_in)
            .collect();
        let remote = new.1.addr;
        for o in victims {
            tracing::info!(target: "ike", "INITIAL-CONTACT from {remote}: deleting older IKE SA {} of the same peer", o.0);
            if let Some(s) = self.ike.get_mut(&o) {
                s.replaced = true;
            }
            self.engine.handle_command(now, Command::Delete(o));
        }
        // By the inbound SPI (ours, unique): the pair goes, outbound SA too.
        for i in stale {
            self.remove_child_spi(now, i, true, i);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{initial_contact_victims, Contact, IkeSaId};
    use std::net::IpAddr;

    /// An ID payload body: ID_FQDN (2), protocol and port 0, the name.
    fn fqdn(name: &str) -> Vec<u8> {
        [&[2u8, 0, 0, 0][..], name.as_bytes()].concat()
    }

    /// Two clients with distinct identities behind one NAT address on one
    /// `%any` connection, and a client re-connecting with its identity from a
    /// new port: only its own old IKE SA goes.
    #[test]
    fn initial_contact_deletes_only_the_same_identity() {
        let nat: IpAddr = IpAddr::from([198, 18, 0, 1]);
        let (alice, bob) = (fqdn("alice.example"), fqdn("bob.example"));
        let c = |conn, addr, id: &'static [u8]| Contact { conn, addr, peer_id: id };
        let alice: &'static [u8] = alice.leak();
        let bob: &'static [u8] = bob.leak();
        let all = [
            // Alice's old IKE SA (she re-connects through a new NAT mapping: port
            // only, not part of the contact).
            (IkeSaId(1), c("rw", nat, alice)),
            // Bob, behind the same NAT.
            (IkeSaId(2), c("rw", nat, bob)),
            // Alice on another connection, and from another address.
            (IkeSaId(3), c("site", nat, alice)),
            (IkeSaId(4), c("rw", IpAddr::from([198, 18, 0, 2]), alice)),
            // Half-open: no identity yet.
            (IkeSaId(5), c("rw", nat, &[])),
            // Alice's new IKE SA, which carried INITIAL-CONTACT.
            (IkeSaId(6), c("rw", nat, alice)),
        ];
        assert_eq!(initial_contact_victims(all[5], &all), vec![IkeSaId(1)]);
        // Bob's INITIAL-CONTACT touches none of Alice's.
        let bob_new = (IkeSaId(7), c("rw", nat, bob));
        assert_eq!(initial_contact_victims(bob_new, &all), vec![IkeSaId(2)]);
        // A sender with no identity yet names nobody.
        assert_eq!(initial_contact_victims(all[4], &all), Vec::<IkeSaId>::new());
    }
}
