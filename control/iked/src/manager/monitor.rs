//! What `ikectl monitor` streams: the lifecycle's events as the manager
//! sees them happen, queued for the daemon to stamp and hand to the clients
//! that follow (the manager sends nothing itself), and counted by kind for
//! the metrics.

use super::Manager;
use crate::config::selector::DisplayTs;
use crate::ctl::protocol::MonitorEvent;
use ike::engine::IkeSaId;
use std::collections::{BTreeMap, VecDeque};

/// Events kept for the daemon to read (it drains them after every round of
/// work, so only a caller that never reads them reaches this); beyond that
/// the oldest go.
const QUEUE: usize = 4096;

/// The queue of events not read yet.
#[derive(Debug, Default)]
pub(super) struct Monitor {
    queue: VecDeque<MonitorEvent>,
    counts: EventCounts,
}

/// Events since the start, counted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventCounts {
    /// By kind (`ike-up`, `child-rekeyed`, ...).
    pub events: BTreeMap<String, u64>,
    /// `ike-down` by reason.
    pub ike_down: BTreeMap<String, u64>,
    /// `auth-failed` by reason.
    pub auth_failures: BTreeMap<String, u64>,
}

impl Manager {
    /// The next event not read yet (see [`MonitorEvent`]).
    pub fn poll_monitor(&mut self) -> Option<MonitorEvent> {
        self.monitor.queue.pop_front()
    }

    /// The events so far, counted.
    pub fn event_counts(&self) -> &EventCounts {
        &self.monitor.counts
    }

    pub(super) fn emit(&mut self, event: MonitorEvent) {
        let c = &mut self.monitor.counts;
        *c.events.entry(event.kind().to_owned()).or_default() += 1;
        match &event {
            MonitorEvent::IkeDown { reason, .. } => *c.ike_down.entry(reason.clone()).or_default() += 1,
            MonitorEvent::AuthFailed { reason, .. } => {
                *c.auth_failures.entry(reason.clone()).or_default() += 1
            }
            _ => {}
        }
        if self.monitor.queue.len() == QUEUE {
            self.monitor.queue.pop_front();
        }
        self.monitor.queue.push_back(event);
    }

    /// The connection of IKE SA `id` (empty when unknown).
    pub(super) fn ike_name(&self, id: IkeSaId) -> String {
        self.ike.get(&id).map(|s| s.conn.clone()).unwrap_or_default()
    }

    /// (connection, child) of peer entry `entry`.
    pub(super) fn entry_names(&self, entry: usize) -> (String, String) {
        self.entries.get(entry).map(|e| (e.conn.clone(), e.child.clone())).unwrap_or_default()
    }

    /// `child-expired` for child `i`.
    pub(super) fn emit_child_expired(&mut self, i: usize) {
        let Some((entry, uniqueid)) = self.children.get(i).map(|c| (c.entry, c.id)) else {
            return;
        };
        let (ike, child) = self.entry_names(entry);
        self.emit(MonitorEvent::ChildExpired { ike, child, uniqueid });
    }

    /// `child-up`, and `child-rekeyed` when it replaces a pair, for the
    /// child whose inbound SPI is `spi_in`, just installed.
    pub(super) fn emit_child_up(&mut self, spi_in: u32) {
        let Some(c) = self.children.iter().find(|c| c.spi_in == spi_in) else {
            return;
        };
        let (ike, child) = self.entry_names(c.entry);
        let old = c.replaces.and_then(|r| self.children.iter().find(|o| o.spi_in == r)).map(|o| o.id);
        let up = MonitorEvent::ChildUp {
            ike: ike.clone(),
            child: child.clone(),
            uniqueid: c.id,
            spi_in: format!("{:08x}", c.spi_in),
            spi_out: format!("{:08x}", c.spi_out),
            local_ts: DisplayTs(c.local_ts).to_string(),
            remote_ts: DisplayTs(c.remote_ts).to_string(),
        };
        let new = c.id;
        self.emit(up);
        if let Some(old) = old {
            self.emit(MonitorEvent::ChildRekeyed { ike, child, old, new });
        }
    }
}
