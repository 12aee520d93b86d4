//! The manager's deadlines: when a pair rekeys (by time and by volume), when
//! a rekeyed pair's outbound SA takes the traffic, and the one table of
//! moments that tells the daemon when to call [`Manager::tick`] next.

use super::child::ChildState;
use super::Manager;
use crate::config::{Connection, StartAction};
use crate::ctl::protocol::MonitorEvent;
use ike::engine::Command;
use std::collections::{BTreeSet, HashSet};
use std::time::{Duration, Instant};

/// The manager's timer table: every moment at which something is due, as
/// quinn-proto's `connection/timers.rs` keeps its connection's, but for many
/// SAs. Whoever sets a deadline (a child's rekey, expiry or deletion, a
/// stuck rekey's retry, an IKE SA's re-establishment, a DPD look or probe
/// timeout, a replaced ISAKMP SA's overlap, a retry of a connection, a
/// deferred outbound switch, the deadline of an earlier run's SAs) arms its
/// moment here; [`Manager::poll_timeout`] is the earliest, and
/// [`Manager::tick`] runs when it comes, with no beat of its own. A deadline
/// that is moved or cancelled leaves its moment armed: the tick it causes
/// finds nothing due. Early, never late.
#[derive(Debug, Default)]
pub(super) struct Deadlines(BTreeSet<Instant>);

impl Deadlines {
    /// Something is due at `at`.
    pub(super) fn arm(&mut self, at: Instant) {
        self.0.insert(at);
    }

    /// [`Deadlines::arm`] for a deadline that may be absent.
    pub(super) fn arm_opt(&mut self, at: Option<Instant>) {
        if let Some(at) = at {
            self.arm(at);
        }
    }

    /// The earliest armed moment.
    pub(super) fn next(&self) -> Option<Instant> {
        self.0.first().copied()
    }

    /// Forgets the moments up to `now`: the tick running at `now` handles
    /// everything due by then.
    fn fire(&mut self, now: Instant) {
        while self.0.first().is_some_and(|t| *t <= now) {
            self.0.pop_first();
        }
    }
}

/// How long after installation a child is rekeyed: `rekey_time` minus a
/// random part (`draw`) of `rand_time`, when the lifetime in force is the
/// configured `life_time`. A peer that made it shorter (RESPONDER-LIFETIME,
/// or its proposal when we respond) moves the rekey before that expiry: when
/// `rekey_time` no longer fits, the soft time and the jitter are scaled by
/// `life / life_time` (they keep their configured proportions), and the
/// jitter stays below the rekey window (strongSwan scales a `rand_time`
/// that does not fit down the same way).
pub(super) fn rekey_delay(
    rekey_time: Duration,
    rand_time: Duration,
    life_time: Duration,
    life: Duration,
    draw: u64,
) -> Duration {
    let (soft, rand) = if rekey_time < life || life_time.is_zero() {
        (rekey_time, rand_time)
    } else {
        let scale = life.as_secs_f64() / life_time.as_secs_f64().max(rekey_time.as_secs_f64());
        (rekey_time.mul_f64(scale), rand_time.mul_f64(scale))
    };
    let rand = if rand >= soft { soft / 2 } else { rand };
    let ms = u64::try_from(rand.as_millis()).unwrap_or(u64::MAX);
    let jitter = if ms == 0 { 0 } else { draw % ms };
    soft.saturating_sub(Duration::from_millis(jitter))
}

/// The soft volume limit (bytes or packets; 0 = none) of an SA whose hard
/// limit in force is `life`: `rekey` minus a random part (`draw`) of `rand`,
/// as configured when `rekey` is below `life`. A lower hard limit (the
/// peer's kilobyte lifetime) scales `rekey` and `rand` by `life / life_cfg`,
/// as [`rekey_delay`] does for time; a hard limit without a configured
/// `rekey` gets strongSwan's default proportion (`life / 1.1`, the rest as
/// jitter). The jitter never takes more than half of the soft limit, and the
/// soft limit always stays below the hard one (the database refuses the SA
/// otherwise).
pub(super) fn soft_limit(rekey: u64, rand: u64, life_cfg: u64, life: u64, draw: u64) -> u64 {
    let (soft, rand) = if life == 0 || (rekey != 0 && rekey < life) {
        (rekey, rand)
    } else if rekey == 0 {
        let soft = life - life / 11;
        (soft, life - soft)
    } else {
        let base = u128::from(life_cfg.max(rekey));
        let scale = |v: u64| u64::try_from(u128::from(v) * u128::from(life) / base).unwrap_or(u64::MAX);
        (scale(rekey), scale(rand))
    };
    let jitter = if rand == 0 { 0 } else { draw % rand };
    let soft = soft.saturating_sub(jitter).max(soft / 2);
    if life != 0 && soft >= life {
        life.saturating_sub(1).max(1)
    } else {
        soft
    }
}

/// Use of one volume of an SA since a moment: how much went through, and
/// how much is left before its hard limit (`None`: no limit).
#[derive(Debug, Clone, Copy)]
pub(super) struct Volume {
    pub(super) used: u64,
    pub(super) left: Option<u64>,
}

/// How long an SA that carried `used` of each volume in `elapsed` may go on
/// carrying traffic before it is replaced: `max`, or half the time the
/// volume closest to its hard limit needs to reach it at that rate, so the
/// switch comes well before the hard limit (where the dataplane drops).
pub(super) fn switch_delay(max: Duration, elapsed: Duration, volumes: [Volume; 2]) -> Duration {
    volumes
        .iter()
        .filter_map(|v| {
            let left = v.left?;
            if v.used == 0 {
                return None;
            }
            let secs = elapsed.as_secs_f64() * left as f64 / v.used as f64;
            Some(Duration::try_from_secs_f64(secs / 2.0).unwrap_or(max))
        })
        .fold(max, Duration::min)
}

impl Manager {
    /// When [`Manager::tick`] must run next: the engine's next timer or the
    /// earliest moment of the timer table, exactly (`None`: nothing is due
    /// until a datagram, a command or a dataplane event comes).
    pub fn poll_timeout(&self) -> Option<Instant> {
        [self.engine.poll_timeout(), self.deadlines.next()].into_iter().flatten().min()
    }

    /// The first `now` this run sees: the deadlines of the SAs an earlier
    /// run left count from it.
    pub(super) fn note_start(&mut self, now: Instant) {
        if self.started.is_some() {
            return;
        }
        self.started = Some(now);
        for l in &self.leftovers {
            self.deadlines.arm(now + l.life);
        }
    }

    /// The deadline of the leftovers of a reqid (none before the start).
    pub(super) fn leftovers_due_of(&self) -> impl Fn(u32) -> Option<Instant> + '_ {
        move |reqid| {
            let start = self.started?;
            self.leftovers.iter().filter(|l| l.reqid == reqid).map(|l| start + l.life).min()
        }
    }

    /// How long an SA of reqid `reqid` left by an earlier run may stay (see
    /// [`super::Leftover`]): the largest configured `life_time` of the
    /// children of the connection that owns the reqid, or of all children
    /// when none does; nothing configured at all: none.
    pub(super) fn leftover_life(&self, reqid: u32) -> Duration {
        let owner = self.reqid_owner(reqid).and_then(|e| self.conn_config(&e.conn));
        let children = |c: &Connection| c.children.iter().map(|ch| ch.life_time).collect::<Vec<_>>();
        owner
            .map(children)
            .unwrap_or_else(|| self.config.connections.iter().flat_map(children).collect())
            .into_iter()
            .max()
            .unwrap_or(Duration::ZERO)
    }

    /// Removes the SAs an earlier run left whose deadline has come, and the
    /// policies of their reqids unless this run uses the reqid or the child
    /// owning it is configured to be up (`start` or `trap`: its policies
    /// stay as a trap, unbound, and traffic then acquires).
    fn expire_leftovers(&mut self, now: Instant) {
        let Some(start) = self.started else {
            return;
        };
        let (due, keep): (Vec<_>, Vec<_>) = self.leftovers.iter().partition(|l| start + l.life <= now);
        if due.is_empty() {
            return;
        }
        self.leftovers = keep;
        let ours: HashSet<(u32, bool, u32)> = self
            .children
            .iter()
            .flat_map(|c| [(c.spi_in, true, c.reqid), (c.spi_out, false, c.reqid)])
            .collect();
        let mut reqids = BTreeSet::new();
        for l in due {
            if ours.contains(&(l.spi, l.inbound, l.reqid)) {
                continue;
            }
            tracing::info!(
                target: "knl",
                "SA {:08x} left by an earlier run (reqid {}) reached its deadline: removing",
                l.spi,
                l.reqid
            );
            if let Err(e) = self.kernel.del_sa(l.spi, l.inbound, Some(l.reqid)) {
                tracing::error!(target: "knl", "removing SA {:08x}: {e}", l.spi);
            }
            reqids.insert(l.reqid);
        }
        for reqid in reqids {
            let pending = self.leftovers.iter().any(|l| l.reqid == reqid);
            if self.bindings.contains_key(&reqid) || pending {
                continue;
            }
            // As when this run's last pair of a reqid goes (`release_reqid`):
            // a child configured to be up keeps its policies as a trap.
            let up = self.reqid_owner_index(reqid).filter(|&e| {
                self.entries.get(e).is_some_and(|e| !e.retired)
                    && self.child_config(e).is_some_and(|ch| ch.start_action != StartAction::None)
            });
            if let Some(entry) = up {
                self.install_trap(entry);
            }
            if !self.bindings.contains_key(&reqid) {
                self.del_reqid_policies(reqid);
            }
        }
    }

    /// Runs what is due at `now` (see [`Manager::poll_timeout`]): the
    /// engine's timers, then the dataplane's events, outbound switches,
    /// rekeys, expiries, DPD, re-establishments, replaced ISAKMP SAs, an
    /// earlier run's SAs and retries of connections. Calling it early is
    /// harmless.
    pub fn tick(&mut self, now: Instant) {
        self.note_start(now);
        self.deadlines.fire(now);
        if self.engine.poll_timeout().is_some_and(|t| t <= now) {
            self.engine.handle_timeout(now);
            self.process_events(now);
        }
        self.dataplane_events(now);
        self.switch_outbound(now);
        self.child_timers(now);
        self.ike_timers(now);
        self.process_events(now);
        self.delete_replaced_ike_sas(now);
        self.expire_leftovers(now);
        if !self.leftovers.is_empty() {
            self.reap_orphans(now);
        }
        let due: Vec<(String, u32)> =
            self.retries.iter().filter(|r| r.1 <= now).map(|r| (r.0.clone(), r.2)).collect();
        self.retries.retain(|r| r.1 > now);
        for (conn, _) in due {
            if self.established_ike_sa(&conn, None).is_none() && !self.connecting(&conn) {
                let _ = self.initiate(now, &conn, None);
            }
        }
        self.process_events(now);
    }

    /// The dataplane's events alone (acquires, soft and hard limits): the
    /// daemon reads the event ring often (see
    /// [`crate::driver::DATAPLANE_POLL`]), as a soft volume limit close to
    /// its hard one leaves little time, and the rekey starts as soon as its
    /// event is read.
    pub fn poll_dataplane(&mut self, now: Instant) {
        self.dataplane_events(now);
        self.process_events(now);
    }

    /// Installs the deferred outbound SAs that are due.
    fn switch_outbound(&mut self, now: Instant) {
        self.install_deferred(now, |d| d.due <= now);
    }

    fn dataplane_events(&mut self, now: Instant) {
        for ev in self.kernel.drain_events() {
            match sadb::EventKind::from_code(ev.kind) {
                Some(sadb::EventKind::Acquire) => {
                    let Some(b) = self.bindings.get(&ev.reqid) else {
                        continue;
                    };
                    let Some(e) = self.entries.get(b.entry).cloned() else {
                        continue;
                    };
                    if self.children.iter().any(|c| c.reqid == ev.reqid && c.state != ChildState::Superseded)
                    {
                        continue;
                    }
                    if self.connecting(&e.conn) || self.pending.contains(&b.entry) {
                        continue;
                    }
                    tracing::info!(target: "knl", "acquire for reqid {} (`{}`): initiating", ev.reqid, e.child);
                    let entry = b.entry;
                    let (ike, child, reqid) = (e.conn.clone(), e.child.clone(), ev.reqid);
                    self.emit(MonitorEvent::Acquire { ike, child, reqid });
                    if let Some(ike_sa) = self.established_ike_sa(&e.conn, None) {
                        self.engine.handle_command(now, Command::CreateChildFor { ike_sa, peer: entry });
                    } else if let Err(err) = self.initiate(now, &e.conn, Some(&e.child)) {
                        tracing::warn!(target: "knl", "acquire for `{}`: {}", e.child, err.message);
                    }
                }
                Some(sadb::EventKind::SoftExpire | sadb::EventKind::SeqNearOverflow) => {
                    // Only the sender's count starts a rekey: the peer's inbound
                    // count of the same bytes would fire at the same moment and
                    // make both ends rekey at once (duplicates to resolve).
                    if let Some(i) =
                        self.children.iter().position(|c| c.spi_out == ev.spi && c.reqid == ev.reqid)
                    {
                        tracing::info!(target: "knl", "soft limit of SPI {:08x} reached: rekeying", ev.spi);
                        self.rekey(now, i);
                    }
                }
                Some(sadb::EventKind::HardExpire) => {
                    // By reqid too: another peer's outbound SA may have the same SPI.
                    let found = self.children.iter().enumerate().find_map(|(i, c)| {
                        let hit = c.reqid == ev.reqid && (c.spi_out == ev.spi || c.spi_in == ev.spi);
                        hit.then_some((i, c.ike_sa, c.spi_in))
                    });
                    if let Some((i, ike_sa, inbound_spi)) = found {
                        tracing::info!(target: "knl", "hard limit of SPI {:08x} reached: deleting", ev.spi);
                        self.emit_child_expired(i);
                        self.delete_child(now, ike_sa, inbound_spi);
                    }
                }
                None => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{rekey_delay, soft_limit, switch_delay, Volume};
    use std::time::Duration;

    const S: fn(u64) -> Duration = Duration::from_secs;

    /// Every draw in a range that covers the whole jitter, and its extremes.
    fn delays(rekey: Duration, rand: Duration, life_cfg: Duration, life: Duration) -> (Duration, Duration) {
        let all: Vec<Duration> = (0..2_000u64)
            .map(|i| i.wrapping_mul(0x9e37_79b9_7f4a_7c15))
            .chain([0, u64::MAX, 359_999, 2_726])
            .map(|d| rekey_delay(rekey, rand, life_cfg, life, d))
            .collect();
        (*all.iter().min().unwrap(), *all.iter().max().unwrap())
    }

    #[test]
    fn configured_lifetime_rekeys_at_rekey_time_minus_rand_time() {
        let (lo, hi) = delays(S(3600), S(360), S(3960), S(3960));
        assert!(lo > S(3240) && hi <= S(3600), "{lo:?}..{hi:?}");
    }

    /// The peer's 30 s against our rekey_time 1h, rand_time 6 min, life_time
    /// 66 min: the rekey lands in the last tenth of the 30 s (the configured
    /// proportion), never in the first half of it.
    #[test]
    fn a_shorter_lifetime_of_the_peer_scales_rekey_and_jitter() {
        let (lo, hi) = delays(S(3600), S(360), S(3960), S(30));
        assert!(lo >= S(24) && hi < S(28), "{lo:?}..{hi:?}");
        assert!(hi - lo > Duration::from_secs(2), "the jitter is still there: {lo:?}..{hi:?}");
    }

    /// Ours is the shorter one (rekey 20 s, life 30 s, rand 3 s) and the peer
    /// proposed 1h: ours is in force, unscaled.
    #[test]
    fn our_shorter_lifetime_is_used_as_configured() {
        let (lo, hi) = delays(S(20), S(3), S(30), S(30));
        assert!(lo > S(17) && hi <= S(20), "{lo:?}..{hi:?}");
    }

    /// A rand_time as large as the rekey time (a configuration mistake, or
    /// left at its default after shortening rekey_time) is cut to half the
    /// window: the rekey never comes right after the install.
    #[test]
    fn a_rand_time_larger_than_the_window_is_bounded() {
        let (lo, hi) = delays(S(20), S(360), S(30), S(30));
        assert!(lo >= S(10) && hi <= S(20), "{lo:?}..{hi:?}");
    }

    const M: u64 = 1 << 20;

    fn soft_limits(rekey: u64, rand: u64, life_cfg: u64, life: u64) -> (u64, u64) {
        let all: Vec<u64> = (0..2_000u64)
            .map(|i| i.wrapping_mul(0x9e37_79b9_7f4a_7c15))
            .chain([0, u64::MAX, rand.saturating_sub(1)])
            .map(|d| soft_limit(rekey, rand, life_cfg, life, d))
            .collect();
        (*all.iter().min().unwrap(), *all.iter().max().unwrap())
    }

    /// rekey_bytes 1 MB, life_bytes 2 MB, rand_bytes 1 MB (its default):
    /// the soft limit lands in the upper half of the first MB.
    #[test]
    fn a_soft_volume_limit_close_to_the_hard_one_is_used_as_configured() {
        let (lo, hi) = soft_limits(M, M, 2 * M, 2 * M);
        assert!(lo >= M / 2 && hi <= M && hi - lo > M / 4, "{lo}..{hi}");
        assert_eq!(soft_limits(M, 0, 2 * M, 2 * M), (M, M), "no jitter");
        assert_eq!(soft_limits(0, 0, 0, 0), (0, 0), "no volume limit at all");
    }

    /// The peer's kilobyte lifetime (1,000 KiB) below our rekey_bytes 2 MB:
    /// the soft limit keeps its proportion of the hard one, below it (the
    /// database refuses soft > hard).
    #[test]
    fn a_lower_hard_limit_of_the_peer_scales_the_soft_one_below_it() {
        let life = 1_000 * 1024;
        let (lo, hi) = soft_limits(2 * M, 256 * 1024, 64 * M, life);
        assert!(hi < life && lo >= life / 64, "{lo}..{hi} against {life}");
        // rekey 2 MB, life 2.2 MB configured, the peer's 1 MB: 10/11 of it, minus jitter.
        let (lo, hi) = soft_limits(2 * M, M / 5, 2 * M + M / 5, M);
        assert!(hi <= M * 10 / 11 + 1 && lo >= M * 10 / 11 - M / 11 - 1, "{lo}..{hi}");
    }

    /// A hard limit without a soft one (the peer's, with no rekey_bytes of
    /// ours) still rekeys before it.
    #[test]
    fn a_hard_limit_alone_gets_a_soft_one() {
        let (lo, hi) = soft_limits(0, 0, 0, 11 * M);
        assert!(lo >= 9 * M && hi <= 10 * M, "{lo}..{hi}");
        assert_eq!(soft_limit(10, 10, 0, 1, 7), 1, "a 1-unit hard limit: the smallest soft one");
    }

    /// 10 MB/s on the old SA for the 30 ms of the Quick Mode, 700 KB left
    /// before its hard limit (70 ms): the switch comes in half of that.
    #[test]
    fn the_outbound_switch_comes_well_before_the_hard_limit() {
        let ms = Duration::from_millis;
        let bytes = Volume { used: 300_000, left: Some(700_000) };
        let packets = Volume { used: 300, left: None };
        assert_eq!(switch_delay(ms(200), ms(30), [bytes, packets]), ms(35));
        // Idle, or far from the limit: the full delay.
        let idle = Volume { used: 0, left: Some(10) };
        assert_eq!(switch_delay(ms(200), ms(30), [idle, packets]), ms(200));
        let far = Volume { used: 1_000, left: Some(1 << 30) };
        assert_eq!(switch_delay(ms(200), ms(30), [far, packets]), ms(200));
        // At the hard limit already: now.
        let full = Volume { used: 1_000, left: Some(0) };
        assert_eq!(switch_delay(ms(200), ms(30), [bytes, full]), Duration::ZERO);
    }
}
