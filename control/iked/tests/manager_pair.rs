//! The SA manager against a peer engine, in memory and in virtual time: the
//! manager owns a real SA database (a file in a temporary directory), the
//! peer is a bare `ike::Engine` the test drives the way strongSwan behaves
//! (it re-establishes the ISAKMP SA, adopts the children into the new one and
//! deletes the old ISAKMP SA alone). Every datagram travels in 10 ms; the
//! manager's timers run when its `poll_timeout` comes, its dataplane events
//! are read every 10 ms, as the daemon does. Where traffic matters, the test plays
//! the dataplane on the same database ([`Dataplane`]).

#[path = "common/sim.rs"]
mod sim;

use ike::engine::{Command, Engine, Event, IkeSaId, TrafficSelector, TsAddress};
use iked::config;
use iked::ctl::protocol::{ErrorCode, EventRecord};
use iked::manager::Manager;
use iked::sadb_writer::SadbWriter;
use sim::WALL;
use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

const US: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 18, 0, 1));
const PEER: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 18, 0, 2));
const LATENCY: Duration = Duration::from_millis(10);
/// How often the daemon reads the dataplane's events.
const DATAPLANE_POLL: Duration = iked::driver::DATAPLANE_POLL;

fn subnet(a: [u8; 4], p: u8) -> TrafficSelector {
    TrafficSelector { address: TsAddress::Subnet(IpAddr::V4(Ipv4Addr::from(a)), p), protocol: 0, port: 0 }
}

/// Our side: connection `peer`, child `net`, 10.1/16 === 10.2/16.
fn our_config(dir: &Path, conn_extra: &str, child_extra: &str) -> config::Config {
    let text = format!(
        r#"
[daemon]
sadb = "{db}"
control_socket = "{dir}/iked.sock"
listen = ["198.18.0.1"]

[connections.peer]
version = 1
local_addrs = "198.18.0.1"
remote_addrs = "198.18.0.2"
proposals = "aes128-sha256-curve25519"
local.auth = "psk"
local.id = "gw-a@example.net"
remote.auth = "psk"
remote.id = "gw-b@example.net"
{conn_extra}
[connections.peer.children.net]
local_ts = "10.1.0.0/16"
remote_ts = "10.2.0.0/16"
esp_proposals = "aes128gcm16"
{child_extra}
[secrets.ike-peer]
id = "gw-a@example.net"
id-1 = "gw-b@example.net"
secret = "manager-pair-psk"
"#,
        db = dir.join("sadb").display(),
        dir = dir.display(),
    );
    config::parse(&text, &dir.join("iked.toml")).unwrap_or_else(|e| panic!("{e}"))
}

/// The peer: the mirror of [`our_config`] as a bare engine entry.
fn peer_engine(lifetime_seconds: u32, lifetime_kilobytes: u32) -> Engine {
    let ids = ("gw-b@example.net", "gw-a@example.net");
    let ts = (subnet([10, 2, 0, 0], 16), subnet([10, 1, 0, 0], 16));
    let mut p = sim::peer_config(US, PEER, ids, b"manager-pair-psk", ts);
    p.name = "us".into();
    (p.child.lifetime_seconds, p.child.lifetime_kilobytes) = (lifetime_seconds, lifetime_kilobytes);
    p.nat_traversal = true;
    sim::peer_engine_of(p, 2, 0x7000_0000)
}

struct Pair {
    us: Manager,
    peer: Engine,
    /// The SA database the manager writes, opened a second time to look.
    db: SadbWriter,
    now: Instant,
    /// How often the manager's timers ran ([`Manager::tick`]).
    ticks: u64,
    /// When the daemon reads the event ring next.
    next_poll: Instant,
    wire: Vec<(Instant, ike::engine::Transmit)>,
    peer_events: Vec<Event>,
    /// The peer's installed SAs, as (SPI, inbound).
    peer_sas: BTreeSet<(u32, bool)>,
    /// The peer is gone: datagrams to and from it are lost.
    peer_silent: bool,
    _dir: tempfile::TempDir,
}

impl Pair {
    fn new(child_extra: &str, peer_lifetime: u32) -> Self {
        Self::with("", child_extra, peer_lifetime)
    }

    fn with(conn_extra: &str, child_extra: &str, peer_lifetime: u32) -> Self {
        Self::build(conn_extra, child_extra, peer_lifetime, 0, 1)
    }

    /// Our side on `seed`'s randomness.
    fn build(
        conn_extra: &str,
        child_extra: &str,
        peer_lifetime: u32,
        peer_kilobytes: u32,
        seed: u64,
    ) -> Self {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let mut pair = Self::in_dir(dir, conn_extra, child_extra, seed);
        pair.peer = peer_engine(peer_lifetime, peer_kilobytes);
        pair
    }

    /// Our side on the SA database `dir` holds (or gets) as `sadb`, the
    /// peer with a lifetime of an hour.
    fn in_dir(dir: tempfile::TempDir, conn_extra: &str, child_extra: &str, seed: u64) -> Self {
        let cfg = Arc::new(our_config(dir.path(), conn_extra, child_extra));
        let kernel = SadbWriter::open(&cfg.daemon.sadb).unwrap_or_else(|e| panic!("{e}"));
        let db = SadbWriter::open(&cfg.daemon.sadb).unwrap_or_else(|e| panic!("{e}"));
        let now = Instant::now();
        Self {
            us: Manager::new(cfg, kernel, None, sim::randomness(seed)),
            peer: peer_engine(3600, 0),
            db,
            now,
            ticks: 0,
            next_poll: now,
            wire: Vec::new(),
            peer_events: Vec::new(),
            peer_sas: BTreeSet::new(),
            peer_silent: false,
            _dir: dir,
        }
    }

    /// Moves datagrams and events until `until` (virtual time).
    fn run_until(&mut self, until: Instant) {
        loop {
            self.us.commit();
            while let Some(t) = self.us.poll_transmit() {
                self.wire.push((self.now + LATENCY, t));
            }
            while let Some(t) = self.peer.poll_transmit() {
                self.wire.push((self.now + LATENCY, t));
            }
            while let Some(e) = self.peer.poll_event() {
                match &e {
                    Event::InstallInbound { inbound, .. } => {
                        self.peer_sas.insert((inbound.spi, true));
                    }
                    Event::InstallSa { inbound, outbound, .. } => {
                        self.peer_sas.insert((inbound.spi, true));
                        self.peer_sas.insert((outbound.spi, false));
                    }
                    Event::DeleteSa { spi, inbound, .. } => {
                        self.peer_sas.remove(&(*spi, *inbound));
                    }
                    _ => {}
                }
                self.peer_events.push(e);
            }
            let deadlines = [
                self.wire.iter().map(|(t, _)| *t).min(),
                self.peer.poll_timeout(),
                self.us.poll_timeout().filter(|t| *t > self.now),
                Some(self.next_poll),
            ];
            let Some(next) = sim::next_moment(until, deadlines) else {
                self.now = until;
                return;
            };
            self.now = self.now.max(next);
            let now = self.now;
            for t in sim::take_due(&mut self.wire, now).into_iter().filter(|_| !self.peer_silent) {
                if t.destination.ip() == US {
                    self.us.handle_datagram(now, t.destination, t.source, &t.contents);
                } else {
                    self.peer.handle_datagram(now, t.destination, t.source, &t.contents);
                }
            }
            if self.peer.poll_timeout().is_some_and(|t| t <= now) {
                self.peer.handle_timeout(now);
            }
            if self.us.poll_timeout().is_some_and(|t| t <= now) {
                self.us.tick(now);
                self.ticks += 1;
            }
            if self.next_poll <= now {
                self.us.poll_dataplane(now);
                self.next_poll = now + DATAPLANE_POLL;
            }
        }
    }

    fn run_for(&mut self, d: Duration) {
        let until = self.now + d;
        self.run_until(until);
    }

    /// We initiate the child: after 2 s its pair (SPI in, SPI out) is the
    /// one installed, with the policies.
    fn bring_up(&mut self) -> (u32, u32) {
        let now = self.now;
        self.us.initiate(now, "peer", Some("net")).unwrap_or_else(|e| panic!("{}", e.message));
        self.run_for(Duration::from_secs(2));
        let first = self.pairs()[0];
        self.assert_installed(first, "first pair");
        first
    }

    fn peer_command(&mut self, c: Command) {
        let now = self.now;
        self.peer.handle_command(now, c);
    }

    /// Our installed SAs, as (SPI, inbound).
    fn our_sas(&self) -> BTreeSet<(u32, bool)> {
        self.db.list_sas().into_iter().map(|(spi, inbound, _)| (spi, inbound)).collect()
    }

    /// Every SA of ours has its mirror at the peer and the reverse: nothing
    /// sent on either side falls into a missing SA.
    fn assert_mirrored(&self, when: &str) {
        let mirror: BTreeSet<(u32, bool)> = self.peer_sas.iter().map(|(s, i)| (*s, !*i)).collect();
        assert_eq!(self.our_sas(), mirror, "{when}: our SAs vs the peer's");
        assert!(!mirror.is_empty(), "{when}: no SA at all");
    }

    /// (IKE SA uniqueid, state, inbound SPIs of its children) from `list-sas`.
    fn listed(&self) -> Vec<(u64, String, Vec<String>)> {
        self.us
            .list_sas(self.now, WALL)
            .into_iter()
            .map(|s| (s.uniqueid, s.state, s.child_sas.into_iter().map(|c| c.spi_in).collect()))
            .collect()
    }

    /// Our Protect policies in the SA database: (policy id, reqid, the SPI
    /// of the SA it is bound to, if any).
    fn policies(&self) -> Vec<(u32, u32, Option<u32>)> {
        let region = self.db.region();
        let mut out: Vec<_> = region
            .list_policies()
            .into_iter()
            .filter(|p| p.config.action == sadb::Action::Protect as u8)
            .map(|p| {
                let spi = p.sa_slot.and_then(|s| region.sa_entry(s)).map(|e| e.config.spi);
                (p.config.id, p.config.reqid, spi)
            })
            .collect();
        // By policy id: the database lists them by slot, and a reinstalled policy may take
        // another slot (freed slots are reused after readers' grace periods).
        out.sort_unstable();
        out
    }

    /// Our child SA pairs as `list-sas` shows them: (SPI in, SPI out).
    fn pairs(&self) -> Vec<(u32, u32)> {
        let spi = |s: &str| u32::from_str_radix(s, 16).unwrap_or_else(|e| panic!("{s}: {e}"));
        self.us
            .list_sas(self.now, WALL)
            .iter()
            .flat_map(|s| s.child_sas.iter().map(|c| (spi(&c.spi_in), spi(&c.spi_out))))
            .collect()
    }

    /// The SA database holds exactly `pair` (SPI in, SPI out) of ours, and
    /// the child's two policies with the outbound one sending on it.
    fn assert_installed(&self, pair: (u32, u32), when: &str) {
        assert_eq!(self.our_sas(), BTreeSet::from([(pair.0, true), (pair.1, false)]), "{when}");
        assert_eq!(self.policies(), vec![(2, 1, Some(pair.1)), (3, 1, None)], "{when}: policies");
    }

    /// The events `ikectl monitor` would have shown since the last call,
    /// as its lines without the time.
    fn events(&mut self) -> Vec<String> {
        std::iter::from_fn(|| self.us.poll_monitor())
            .map(|event| iked::ctl::format::event_line(&EventRecord { time_ms: 0, event }))
            .map(|l| l.trim_start_matches("0.000 ").to_owned())
            .collect()
    }

    fn peer_established(&self) -> Vec<IkeSaId> {
        self.peer_events
            .iter()
            .filter_map(|e| match e {
                Event::IkeSaEstablished { ike_sa, .. } => Some(*ike_sa),
                _ => None,
            })
            .collect()
    }
}

/// The dataplane's side of the manager's SA database, as espd's workers use
/// it: traffic goes to the outbound SA the policy is bound to, its counters
/// grow, and its soft and hard events are raised once each when they cross
/// the SA's limits. An SA past its hard limit drops (espd counts
/// `sa-expired`).
struct Dataplane {
    reader: sadb::Reader,
    /// Outbound SPIs in the order they carried traffic, with what each
    /// carried and where its soft event fired.
    carried: Vec<Carried>,
    /// SPIs whose hard limit was reached.
    hard: Vec<u32>,
}

#[derive(Debug, Clone, Copy)]
struct Carried {
    spi: u32,
    soft_bytes: u64,
    hard_bytes: u64,
    bytes: u64,
    /// The byte count when its soft event fired, and the millisecond.
    soft_at: Option<(u64, u64)>,
    /// The millisecond it carried its first packet.
    first_ms: u64,
}

impl Dataplane {
    fn attach(pair: &Pair) -> Self {
        let region =
            sadb::Region::open_or_create(&pair.us.config().daemon.sadb, &sadb::Capacities::default())
                .unwrap_or_else(|e| panic!("{e}"));
        let reader = Arc::new(region).register_reader(0).unwrap_or_else(|e| panic!("{e}"));
        reader.offline();
        Self { reader, carried: Vec::new(), hard: Vec::new() }
    }

    /// `packets` packets of `bytes` in all from 10.1/16 to 10.2/16 at
    /// millisecond `ms`: the SPI that carried them, or why they were dropped.
    fn send(&mut self, ms: u64, packets: u64, bytes: u64) -> Result<u32, String> {
        self.reader.online();
        let sent = self.send_online(ms, packets, bytes);
        self.reader.quiescent();
        self.reader.offline();
        sent
    }

    /// The hard limit of SA `spi` (of reqid 1) was reached: the event espd's
    /// worker raises as it drops the SA's traffic.
    fn hard_expire(&self, spi: u32) {
        let ev = sadb::Event {
            kind: sadb::EventKind::HardExpire as u8,
            spi,
            reqid: 1,
            ..bytemuck::Zeroable::zeroed()
        };
        assert!(self.reader.emit(&ev), "event ring full");
    }

    /// A packet from 10.1/16 to 10.2/16 met the outbound policy of reqid 1
    /// with no SA: the acquire espd's worker raises.
    fn acquire(&self) {
        let region = self.reader.region();
        let policy = region
            .list_policies()
            .into_iter()
            .find(|p| p.config.direction == sadb::Direction::Out as u8 && p.config.reqid == 1)
            .unwrap_or_else(|| panic!("no outbound policy"));
        let ev = sadb::Event {
            kind: sadb::EventKind::Acquire as u8,
            reqid: 1,
            policy: policy.config.id,
            ..bytemuck::Zeroable::zeroed()
        };
        assert!(self.reader.emit(&ev), "event ring full");
    }

    fn send_online(&mut self, ms: u64, packets: u64, bytes: u64) -> Result<u32, String> {
        let region = self.reader.region();
        let policy = region
            .list_policies()
            .into_iter()
            .find(|p| p.config.direction == sadb::Direction::Out as u8 && p.config.reqid == 1)
            .ok_or("no outbound policy")?;
        let slot = policy.sa_slot.ok_or("the outbound policy has no SA")?;
        let sa = region.sa_entry(slot).ok_or("the policy's SA is gone")?;
        let hot = self.reader.hot(slot);
        let spi = sa.config.spi;
        if hot.flags.load(Relaxed) & sadb::HOT_FLAG_HARD_FIRED != 0 {
            return Err(format!("SA {spi:08x} past its hard limit: dropped"));
        }
        let total_packets = hot.packets.fetch_add(packets, Relaxed) + packets;
        let total = hot.bytes.fetch_add(bytes, Relaxed) + bytes;
        let c = &sa.config;
        let soft = (c.soft_bytes != 0 && total >= c.soft_bytes)
            || (c.soft_packets != 0 && total_packets >= c.soft_packets);
        let hard = (c.hard_bytes != 0 && total >= c.hard_bytes)
            || (c.hard_packets != 0 && total_packets >= c.hard_packets);
        if self.carried.last().is_none_or(|l| l.spi != spi) {
            self.carried.push(Carried {
                spi,
                soft_bytes: c.soft_bytes,
                hard_bytes: c.hard_bytes,
                bytes: 0,
                soft_at: None,
                first_ms: ms,
            });
        }
        if let Some(l) = self.carried.last_mut() {
            l.bytes = total;
        }
        for (flag, fire, kind) in [
            (sadb::HOT_FLAG_SOFT_FIRED, soft, sadb::EventKind::SoftExpire),
            (sadb::HOT_FLAG_HARD_FIRED, hard, sadb::EventKind::HardExpire),
        ] {
            if fire && hot.flags.fetch_or(flag, Relaxed) & flag == 0 {
                let ev = sadb::Event {
                    kind: kind as u8,
                    spi,
                    slot,
                    reqid: c.reqid,
                    value: total,
                    ..bytemuck::Zeroable::zeroed()
                };
                assert!(self.reader.emit(&ev), "event ring full");
                if flag == sadb::HOT_FLAG_HARD_FIRED {
                    self.hard.push(spi);
                } else if let Some(l) = self.carried.iter_mut().find(|l| l.spi == spi) {
                    l.soft_at = Some((total, ms));
                }
            }
        }
        Ok(spi)
    }
}

/// 2 s of traffic through the pair, `packets` packets of `bytes` in all each
/// millisecond, every millisecond's finding an outbound SA: the dataplane
/// that carried them.
fn carry_for_two_seconds(pair: &mut Pair, packets: u64, bytes: u64) -> Dataplane {
    let mut dp = Dataplane::attach(pair);
    for t in 0..2_000u64 {
        pair.run_for(Duration::from_millis(1));
        if let Err(e) = dp.send(t, packets, bytes) {
            panic!("at {t} ms: {e}; carried so far: {:#?}", dp.carried);
        }
    }
    dp
}

fn up(child_extra: &str, peer_lifetime: u32) -> Pair {
    let mut pair = Pair::new(child_extra, peer_lifetime);
    let now = pair.now;
    pair.us.initiate(now, "peer", Some("net")).unwrap_or_else(|e| panic!("{}", e.message));
    pair.run_for(Duration::from_secs(2));
    pair.assert_mirrored("first child up");
    assert_eq!(pair.our_sas().len(), 2);
    pair
}

/// The manager draws only on the randomness it is given: two runs on the
/// same seed install the same SPIs and schedule the same rekey (jitter
/// included); another seed gives other SPIs.
#[test]
fn a_run_on_the_same_seed_repeats() {
    let run = |seed| {
        let mut pair = Pair::build("", "", 3600, 0, seed);
        let now = pair.now;
        pair.us.initiate(now, "peer", Some("net")).unwrap_or_else(|e| panic!("{}", e.message));
        pair.run_for(Duration::from_secs(2));
        let rekey = pair.us.list_sas(pair.now, WALL)[0].child_sas[0].rekey_time;
        (pair.our_sas(), rekey)
    };
    let (a, b, c) = (run(1), run(1), run(7));
    assert_eq!(a.0.len(), 2, "{a:?}");
    assert!(a.1.is_some_and(|r| r > 0), "{a:?}");
    assert_eq!(a, b);
    assert_ne!(a.0, c.0, "another seed, other SPIs");
}

/// strongSwan re-keys its ISAKMP SA: a new one, its CHILD_SAs adopted by it,
/// then a Delete for the old ISAKMP SA only. Our pair must survive that
/// Delete (it used to be removed while the peer kept its half) and live on
/// under the new ISAKMP SA, where the peer's later Delete of it is honoured.
#[test]
fn the_peer_reestablishing_its_isakmp_sa_leaves_our_children_alone() {
    let mut pair = up("", 3600);
    let first = pair.our_sas();
    let old_peer_ike = pair.peer_established()[0];
    // The peer's new ISAKMP SA (its Quick Mode adds a second pair).
    pair.peer_command(Command::Initiate { peer: 0 });
    pair.run_for(Duration::from_secs(1));
    let new_peer_ike = *pair.peer_established().last().unwrap_or_else(|| panic!("no second IKE SA"));
    assert_ne!(new_peer_ike, old_peer_ike);
    pair.assert_mirrored("second IKE SA up");
    let listed = pair.listed();
    assert_eq!(listed.len(), 2, "{listed:?}");
    let (old_us, new_us) = (listed[0].0, listed[1].0);
    assert_eq!(listed[0].2.len(), 0, "the new IKE SA adopted the first pair: {listed:?}");
    assert_eq!(listed[1].2.len(), 2, "{listed:?}");

    // The peer adopts its half, and over_time later deletes the old ISAKMP SA.
    let first_in_at_peer = first.iter().find(|(_, inbound)| !*inbound).map(|(s, _)| *s).unwrap_or(0);
    pair.peer_command(Command::AdoptChild { ike_sa: new_peer_ike, inbound_spi: first_in_at_peer });
    pair.run_for(Duration::from_secs(3));
    pair.peer_command(Command::DeleteIsakmpSa(old_peer_ike));
    pair.run_for(Duration::from_secs(3));
    let listed = pair.listed();
    assert_eq!(listed.len(), 1, "the old IKE SA is gone: {listed:?}");
    assert_eq!(listed[0].0, new_us);
    assert_ne!(new_us, old_us);
    assert!(first.is_subset(&pair.our_sas()), "the first pair survived the ISAKMP Delete");
    pair.assert_mirrored("after the old ISAKMP SA's Delete");

    // The peer deletes the first pair over the new ISAKMP SA: we follow.
    pair.peer_command(Command::DeleteChild { ike_sa: new_peer_ike, inbound_spi: first_in_at_peer });
    pair.run_for(Duration::from_secs(1));
    assert!(pair.our_sas().is_disjoint(&first));
    pair.assert_mirrored("after the first pair's Delete");
    assert_eq!(pair.our_sas().len(), 2);
}

/// The peer deletes its only ISAKMP SA: the pair keeps forwarding (no
/// ISAKMP SA listed, the SAs still in the database); its rekey then needs an
/// ISAKMP SA, so we initiate one (without INITIAL-CONTACT, which would make
/// the peer drop the pair), the new pair replaces the old, and the old one is
/// deleted over the new ISAKMP SA, where the peer finds it among its orphans.
#[test]
fn orphaned_children_keep_forwarding_and_their_rekey_initiates_an_isakmp_sa() {
    let mut pair = up("rekey_time = \"20s\"\nlife_time = \"30s\"\nrand_time = \"2s\"", 3600);
    let first = pair.our_sas();
    let ike = pair.peer_established()[0];
    pair.peer_command(Command::DeleteIsakmpSa(ike));
    pair.run_for(Duration::from_secs(5));
    let listed = pair.listed();
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(
        (listed[0].0, listed[0].1.as_str()),
        (0, "DELETED"),
        "no IKE SA left, the pair listed: {listed:?}"
    );
    assert_eq!(pair.our_sas(), first, "the orphaned pair keeps forwarding");
    assert_eq!(pair.peer.orphan_children().len(), 1);
    pair.assert_mirrored("orphaned");

    // The rekey (18-20 s after the install) brings up a new ISAKMP SA.
    pair.run_for(Duration::from_secs(18));
    assert_eq!(pair.peer_established().len(), 2, "a new ISAKMP SA for the rekey");
    let contacts = pair.peer_events.iter().filter(|e| matches!(e, Event::InitialContact(_))).count();
    assert_eq!(contacts, 1, "INITIAL-CONTACT only on the very first ISAKMP SA");
    assert!(pair.our_sas().is_disjoint(&first), "the old pair deleted after the overlap");
    assert_eq!(pair.peer.orphan_children(), vec![], "the peer removed its orphan on our Delete");
    pair.assert_mirrored("rekeyed");
    assert_eq!(pair.our_sas().len(), 2);
}

/// The peer's 30 s lifetime against our rekey_time 1h / rand_time 6 min
/// (defaults): adopted, and the rekey comes in the last part of the 30 s, not
/// right after the install.
#[test]
fn a_short_lifetime_of_the_peer_does_not_rekey_at_once() {
    // We initiate: the peer's RESPONDER-LIFETIME makes it 30 s.
    let mut pair = up("", 30);
    let first = pair.our_sas();
    let listed = pair.us.list_sas(pair.now, WALL);
    let child = &listed[0].child_sas[0];
    let rekey = child.rekey_time.unwrap_or(0);
    assert!((20..=28).contains(&rekey), "rekey in {rekey} s, life {:?}", child.life_time);
    assert!(child.life_time.is_some_and(|l| l <= 30));
    pair.run_for(Duration::from_secs(15));
    assert_eq!(pair.our_sas(), first, "no rekey in the first 15 s");
    pair.run_for(Duration::from_secs(14));
    assert!(pair.our_sas().is_disjoint(&first), "rekeyed before the 30 s ran out");
    pair.assert_mirrored("after the rekey");
}

/// The other direction: the peer initiates with 30 s, we respond (and keep
/// the shorter lifetime, RFC 2407 §4.6.3.1).
#[test]
fn a_short_lifetime_proposed_by_the_peer_does_not_rekey_at_once() {
    let mut pair = Pair::new("", 30);
    pair.peer_command(Command::Initiate { peer: 0 });
    pair.run_for(Duration::from_secs(2));
    pair.assert_mirrored("peer's child up");
    let first = pair.our_sas();
    let listed = pair.us.list_sas(pair.now, WALL);
    let rekey = listed[0].child_sas[0].rekey_time.unwrap_or(0);
    assert!((20..=28).contains(&rekey), "rekey in {rekey} s");
    pair.run_for(Duration::from_secs(15));
    assert_eq!(pair.our_sas(), first, "no rekey in the first 15 s");
}

/// The manager's timers have no beat: its `poll_timeout` is the next thing
/// due (here the rekey, `rekey_time` after the install), and over 100 s of
/// a tunnel rekeyed every 20 s they run a few times per rekey (the rekey,
/// its outbound switch, the old pair's deletion, the moments of deadlines
/// that the rekey made moot), not every 100 ms; the rekeys still come on time.
#[test]
fn timers_run_when_something_is_due_not_on_a_beat() {
    let mut pair = up("rekey_time = \"20s\"\nlife_time = \"30s\"\nrand_time = \"0s\"", 3600);
    let next = pair.us.poll_timeout().unwrap_or_else(|| panic!("nothing armed"));
    let after = next.saturating_duration_since(pair.now);
    assert!(
        after > Duration::from_secs(17) && after <= Duration::from_millis(18_500),
        "next deadline in {after:?}"
    );
    let ticks = pair.ticks;
    pair.run_for(after - Duration::from_millis(1));
    assert_eq!(pair.ticks, ticks, "nothing ran before the rekey was due");
    let before = pair.our_sas();
    pair.run_for(Duration::from_secs(1));
    assert!(
        pair.our_sas().is_disjoint(&before) || pair.our_sas().len() > 2,
        "the rekey started at its moment"
    );
    let ticks = pair.ticks;
    pair.run_for(Duration::from_secs(100));
    let ids: Vec<u64> = pair
        .us
        .list_sas(pair.now, WALL)
        .iter()
        .flat_map(|s| s.child_sas.iter().map(|c| c.uniqueid))
        .collect();
    assert_eq!(ids, vec![6], "one rekey every 20 s: five more");
    let ran = pair.ticks - ticks;
    assert!((5..=40).contains(&ran), "the timers ran {ran} times in 100 s");
    pair.assert_mirrored("after five rekeys");
}

/// With DPD (`dpd_delay` 2 s) on an idle tunnel whose peer answers, the
/// timers run for DPD's looks and probes: about one per `dpd_delay`.
#[test]
fn dpd_looks_come_every_dpd_delay() {
    let mut pair = Pair::with(DPD, "", 3600);
    let first = pair.bring_up();
    let ticks = pair.ticks;
    pair.run_for(Duration::from_secs(60));
    let ran = pair.ticks - ticks;
    assert!((15..=70).contains(&ran), "the timers ran {ran} times in 60 s");
    pair.assert_installed(first, "idle, answering DPD");
}

/// What `ikectl monitor` streams, in order: the tunnel coming up, a rekey
/// (the new pair up, the rekey, the old pair down after the overlap), then
/// the peer dying (a DPD probe, dead, the pair and the IKE SA down).
#[test]
fn monitor_events_follow_a_rekey_and_a_dead_peer() {
    let mut pair = Pair::with(DPD, "rekey_time = \"20s\"\nlife_time = \"30s\"\nrand_time = \"0s\"", 3600);
    let first = pair.bring_up();
    let spis = |p: (u32, u32)| format!("SPIs {:08x}_i {:08x}_o", p.0, p.1);
    assert_eq!(
        pair.events(),
        vec![
            "ike-up peer #1 198.18.0.1:500 === 198.18.0.2:500".to_owned(),
            format!("child-up peer/net {{1}} {} 10.1.0.0/16 === 10.2.0.0/16", spis(first)),
        ]
    );
    pair.run_for(Duration::from_secs(22));
    let second = pair.pairs()[0];
    assert_ne!(second, first);
    let (probes, rekey): (Vec<String>, Vec<String>) =
        pair.events().into_iter().partition(|e| e.starts_with("dpd-probe"));
    // The idle peer (no ESP here) is probed every dpd_delay, and answers.
    assert!(
        (9..=12).contains(&probes.len()) && probes.iter().all(|p| p == "dpd-probe peer #1"),
        "{probes:?}"
    );
    assert_eq!(
        rekey,
        vec![
            format!("child-up peer/net {{2}} {} 10.1.0.0/16 === 10.2.0.0/16", spis(second)),
            "child-rekeyed peer/net {1} -> {2}".to_owned(),
            format!("child-down peer/net {{1}} {}", spis(first)),
        ]
    );
    pair.peer_silent = true;
    pair.run_for(Duration::from_secs(10));
    assert_eq!(
        pair.events(),
        vec![
            "dpd-probe peer #1".to_owned(),
            "dpd-dead peer #1".to_owned(),
            format!("child-down peer/net {{2}} {}", spis(second)),
            "ike-down peer #1 (dead)".to_owned(),
        ]
    );
}

/// `ikectl rekey --child` rekeys the pair at once (make-before-break: the
/// new pair takes the traffic, the old one goes after the overlap), and
/// `--ike` re-establishes the ISAKMP SA, the pair moving to the new one;
/// `list-pols` follows the policies onto the newest outbound SA.
#[test]
fn rekey_on_command_and_the_policies_it_moves() {
    let mut pair = Pair::new("", 3600);
    let first = pair.bring_up();
    let pols = pair.us.list_pols();
    assert_eq!(pols.len(), 1, "{pols:#?}");
    let p = &pols[0];
    assert_eq!(
        (p.name.as_str(), p.ike.as_str(), p.reqid, p.mode.as_str(), p.state.as_str()),
        ("net", "peer", 1, "TUNNEL", "INSTALLED")
    );
    assert_eq!(
        (p.local_ts.as_slice(), p.remote_ts.as_slice()),
        (&["10.1.0.0/16".to_owned()][..], &["10.2.0.0/16".to_owned()][..])
    );
    assert_eq!(p.spi_out, Some(format!("{:08x}", first.1)));

    let now = pair.now;
    let err = pair.us.rekey_now(now, "peer", Some("other")).err().map(|e| (e.code, e.message));
    assert_eq!(err, Some((ErrorCode::NotFound, "`other` has no installed child SA to rekey".to_owned())));
    let msg = pair.us.rekey_now(now, "peer", Some("net")).unwrap_or_else(|e| panic!("{}", e.message));
    assert_eq!(msg, "rekeying 1 child SA pair(s) of `net`");
    pair.run_for(Duration::from_secs(3));
    let second = pair.pairs();
    assert_eq!(second.len(), 1, "the old pair gone after the overlap: {second:?}");
    assert_ne!(second[0], first);
    pair.assert_installed(second[0], "rekeyed on command");
    pair.assert_mirrored("rekeyed on command");
    assert_eq!(pair.us.list_pols()[0].spi_out, Some(format!("{:08x}", second[0].1)));

    let old_ike = pair.listed()[0].0;
    let now = pair.now;
    let msg = pair.us.rekey_now(now, "peer", None).unwrap_or_else(|e| panic!("{}", e.message));
    assert_eq!(msg, "re-establishing 1 IKE SA(s) of `peer`");
    pair.run_for(Duration::from_secs(5));
    let listed = pair.listed();
    assert_eq!(listed.len(), 1, "the old ISAKMP SA deleted: {listed:?}");
    assert_ne!(listed[0].0, old_ike, "a new ISAKMP SA");
    assert_eq!(listed[0].2.len(), 1, "holding the one pair: {listed:?}");
    pair.assert_mirrored("after the re-establishment");
    assert!(pair.events().iter().any(|e| e == &format!("ike-rekeyed peer #{old_ike} -> #{}", listed[0].0)));
}

/// Packet limits as byte limits: `rekey_packets` 1,000 and `life_packets`
/// 2,000 under 8 packets a millisecond: each outbound SA is replaced after
/// its soft packet count and before its hard one, and nothing is dropped.
#[test]
fn soft_packet_limits_rekey_before_the_hard_one() {
    let mut pair = up("rekey_packets = 1000\nlife_packets = 2000", 3600);
    let dp = carry_for_two_seconds(&mut pair, 8, 800);
    assert_eq!(dp.hard, Vec::<u32>::new(), "no SA reached its hard limit: {:#?}", dp.carried);
    assert!(dp.carried.len() >= 8, "16,000 packets in 1,000-2,000 pieces: {:#?}", dp.carried);
    for c in dp.carried.iter().take(dp.carried.len() - 1) {
        let packets = c.bytes / 100;
        assert!((500..2_000).contains(&packets), "replaced after its soft count, before its hard one: {c:?}");
        assert!(c.soft_at.is_some(), "its soft event fired: {c:?}");
    }
    pair.run_for(Duration::from_secs(3));
    pair.assert_mirrored("after the packet-triggered rekeys");
    assert_eq!(pair.our_sas().len(), 2, "{:?}", pair.our_sas());
}

/// `dpd_action = trap`: the dead peer's SAs go, the child's policies stay
/// as a trap (unbound); traffic then brings the tunnel up again once the
/// peer answers.
#[test]
fn dpd_trap_leaves_the_policies_as_a_trap() {
    let (mut pair, first) = dead_peer("trap");
    assert_eq!(pair.our_sas(), BTreeSet::new(), "the dead peer's pair deleted");
    assert_eq!(pair.policies(), vec![(2, 1, None), (3, 1, None)], "its policies stay, unbound");
    assert_eq!(pair.listed(), vec![], "no IKE SA left");
    pair.peer_silent = false;
    pair.run_for(Duration::from_secs(5));
    assert_eq!(pair.our_sas(), BTreeSet::new(), "nothing negotiated without traffic");
    let dp = Dataplane::attach(&pair);
    dp.acquire();
    pair.run_for(Duration::from_secs(2));
    let pairs = pair.pairs();
    assert_eq!(pairs.len(), 1, "{pairs:?}");
    assert!(pairs[0].0 != first.0, "a new pair: {pairs:?} after {first:?}");
    pair.assert_installed(pairs[0], "the trap acquired");
    // The peer still holds the pair it never heard was deleted (it was silent).
    let ours: BTreeSet<(u32, bool)> = pair.our_sas().into_iter().map(|(s, i)| (s, !i)).collect();
    assert!(ours.is_subset(&pair.peer_sas), "the peer holds the new pair too");
}

/// `list-sas` numbers child SAs with a counter (charon's uniqueid), not
/// with random SPIs: the first pair is 1, its rekeyed successor 2.
#[test]
fn child_sa_ids_are_a_counter() {
    let mut pair = up("rekey_time = \"20s\"\nlife_time = \"30s\"\nrand_time = \"2s\"", 3600);
    let ids = |p: &Pair| -> Vec<u64> {
        p.us.list_sas(p.now, WALL).iter().flat_map(|s| s.child_sas.iter().map(|c| c.uniqueid)).collect()
    };
    assert_eq!(ids(&pair), vec![1]);
    pair.run_for(Duration::from_secs(25));
    assert_eq!(ids(&pair), vec![2], "the rekeyed pair, the first deleted");
}

/// Both ends re-establish the ISAKMP SA within a second: ours (N1, which
/// re-creates the child) at 10 s, the peer's (N2) half a second later. The
/// peer moves only the children of the ISAKMP SA it re-keys, so it may still
/// hold the new pair under N1: we delete the old ISAKMP SA (replaced by our
/// N1), never N1 (replaced by the peer's N2), and the pairs stay mirrored.
#[test]
fn an_isakmp_sa_the_peer_replaced_is_not_deleted_by_us() {
    let mut pair = Pair::with("rekey_time = \"10s\"\nover_time = \"20s\"\nrand_time = \"0s\"", "", 3600);
    let now = pair.now;
    pair.us.initiate(now, "peer", Some("net")).unwrap_or_else(|e| panic!("{}", e.message));
    pair.run_for(Duration::from_millis(10_300));
    let ids = pair.peer_established();
    assert_eq!(ids.len(), 2, "our re-establishment at 10 s: {ids:?}");
    let (old, n1) = (ids[0], ids[1]);
    pair.peer_command(Command::Initiate { peer: 0 });
    pair.run_for(Duration::from_secs(5));
    assert_eq!(pair.peer_established().len(), 3);
    assert!(pair.peer_events.contains(&Event::IkeSaDeleted(old)), "the ISAKMP SA our N1 replaced is deleted");
    assert!(
        !pair.peer_events.contains(&Event::IkeSaDeleted(n1)),
        "N1, replaced by the peer, is left to the peer"
    );
    pair.assert_mirrored("both re-established");
    let states: Vec<String> = pair.listed().into_iter().map(|(_, st, _)| st).collect();
    assert_eq!(states, vec!["REKEYED".to_owned(), "ESTABLISHED".to_owned()]);
}

/// Traffic at 10 MB/s (10 KB every millisecond) against rekey_bytes 1 MB,
/// life_bytes 2 MB (rand_bytes 1 MB by default, so the soft limit lies
/// between 512 KiB and 1 MiB): at worst 100 ms between the soft and the hard
/// limit. Each soft event starts a rekey at once (the daemon reads the
/// events every 10 ms), the old outbound SA carries the traffic until the new
/// one is installed, and that one takes over before the old one's hard limit:
/// every millisecond's packets find an outbound SA, no hard limit is reached.
#[test]
fn soft_byte_limits_close_to_the_hard_one_rekey_before_it() {
    let mut pair = up("rekey_bytes = \"1m\"\nlife_bytes = \"2m\"", 3600);
    let dp = carry_for_two_seconds(&mut pair, 8, 10_000);
    assert_eq!(dp.hard, Vec::<u32>::new(), "no SA reached its hard limit: {:#?}", dp.carried);
    let done = dp.carried.len().saturating_sub(1);
    assert!(done >= 10, "20 MB in 1-2 MB pieces: {} outbound SAs: {:#?}", dp.carried.len(), dp.carried);
    for (c, next) in dp.carried.iter().zip(dp.carried.iter().skip(1)) {
        assert_eq!(c.hard_bytes, 2 << 20, "{c:?}");
        assert!((1 << 19..=1 << 20).contains(&c.soft_bytes), "soft limit within rekey - rand_bytes: {c:?}");
        let (at, soft_ms) = c.soft_at.unwrap_or_else(|| panic!("replaced before its soft limit: {c:?}"));
        assert!(at >= c.soft_bytes && c.bytes < c.hard_bytes, "{c:?}");
        // The soft event read within 10 ms, a Quick Mode of 20 ms (10 ms per
        // datagram), then the switch within half the time that was left at
        // the soft event (a fixed 200 ms switch delay exceeds it).
        let switch = next.first_ms - soft_ms;
        let left_ms = (c.hard_bytes - at) / 10_000;
        assert!(
            switch <= 35 + left_ms / 2,
            "new outbound SA {switch} ms after the soft event: {c:?} -> {next:?}"
        );
    }
    // Traffic stops: the last rekey completes, the replaced pairs leave
    // after the overlap, both ends agree.
    pair.run_for(Duration::from_secs(3));
    pair.assert_mirrored("after the byte-triggered rekeys");
    assert_eq!(pair.our_sas().len(), 2, "{:?}", pair.our_sas());
}

/// The peer's kilobyte lifetime (1,000 KiB) below our rekey_bytes (1 MiB):
/// the SAs go in with the peer's hard limit and a soft one scaled below it
/// (the database refuses a soft limit above the hard one, which failed the
/// Quick Mode), and traffic rekeys before that hard limit.
#[test]
fn a_lower_kilobyte_lifetime_of_the_peer_scales_the_soft_limit_below_it() {
    let mut pair = Pair::build("", "rekey_bytes = \"1m\"\nlife_bytes = \"2m\"", 3600, 1_000, 1);
    let now = pair.now;
    pair.us.initiate(now, "peer", Some("net")).unwrap_or_else(|e| panic!("{}", e.message));
    pair.run_for(Duration::from_secs(2));
    pair.assert_mirrored("first child up");
    let mut dp = Dataplane::attach(&pair);
    for t in 0..1_000u64 {
        pair.run_for(Duration::from_millis(1));
        if let Err(e) = dp.send(t, 8, 10_000) {
            panic!("at {t} ms: {e}; carried so far: {:#?}", dp.carried);
        }
    }
    assert_eq!(dp.hard, Vec::<u32>::new(), "{:#?}", dp.carried);
    assert!(dp.carried.len() >= 6, "{:#?}", dp.carried);
    for c in &dp.carried {
        assert_eq!(c.hard_bytes, 1_000 * 1024, "the peer's lifetime is in force: {c:?}");
        // Ours: soft at 1/2 of the hard limit, minus up to half of that.
        assert!((256_000..=512_000).contains(&c.soft_bytes), "{c:?}");
    }
}

/// `list-sas` goes on showing a pair whose ISAKMP SA the peer deleted: under
/// its connection, with no ISAKMP SA (uniqueid 0, `DELETED`), its SPIs and
/// counters as before; a new ISAKMP SA with the peer adopts it and the pair
/// is listed under that one, the placeholder gone.
#[test]
fn orphaned_children_are_listed_then_shown_under_the_isakmp_sa_that_adopts_them() {
    let mut pair = up("", 3600);
    let spi = |set: &BTreeSet<(u32, bool)>, inbound: bool| {
        set.iter().find(|(_, i)| *i == inbound).map(|(s, _)| format!("{s:08x}")).unwrap_or_default()
    };
    let first = pair.our_sas();
    let (spi_in, spi_out) = (spi(&first, true), spi(&first, false));
    let before = pair.us.list_sas(pair.now, WALL);
    assert_eq!(before.len(), 1);
    let old_id = before[0].uniqueid;
    assert_ne!(old_id, 0);

    let ike = pair.peer_established()[0];
    pair.peer_command(Command::DeleteIsakmpSa(ike));
    pair.run_for(Duration::from_secs(2));
    let listed = pair.us.list_sas(pair.now, WALL);
    assert_eq!(listed.len(), 1, "{listed:#?}");
    let orphans = &listed[0];
    assert_eq!((orphans.name.as_str(), orphans.uniqueid, orphans.state.as_str()), ("peer", 0, "DELETED"));
    assert_eq!(
        (orphans.local_host.as_str(), orphans.remote_host.as_str()),
        ("198.18.0.1", "198.18.0.2"),
        "{orphans:#?}"
    );
    assert_eq!(
        (orphans.local_id.as_str(), orphans.remote_id.as_str()),
        ("gw-a@example.net", "gw-b@example.net")
    );
    assert_eq!(orphans.child_sas.len(), 1, "{orphans:#?}");
    let c = &orphans.child_sas[0];
    assert_eq!((c.name.as_str(), c.state.as_str()), ("net", "INSTALLED"));
    assert_eq!((c.spi_in.as_str(), c.spi_out.as_str()), (spi_in.as_str(), spi_out.as_str()));
    assert_eq!(c.uniqueid, before[0].child_sas[0].uniqueid, "the same child SA");
    let text = iked::ctl::format::list_sas(&listed);
    assert!(text.starts_with("peer: no ISAKMP SA, DELETED, IKEv1\n"), "{text}");
    assert!(text.contains(&format!("in  {spi_in},")) && text.contains(&format!("out {spi_out},")), "{text}");
    assert!(!text.contains("no IKE SAs"), "{text}");

    // The peer brings up a new ISAKMP SA: ours adopts the pair at once.
    pair.peer_command(Command::Initiate { peer: 0 });
    pair.run_for(Duration::from_millis(500));
    let listed = pair.us.list_sas(pair.now, WALL);
    assert!(listed.iter().all(|s| s.uniqueid != 0), "no placeholder left: {listed:#?}");
    assert_eq!(listed.len(), 1, "{listed:#?}");
    let new = &listed[0];
    assert_eq!(new.state, "ESTABLISHED");
    assert!(new.uniqueid != old_id, "{new:#?}");
    assert!(
        new.child_sas.iter().any(|c| c.spi_in == spi_in && c.spi_out == spi_out),
        "the adopted pair under the new ISAKMP SA: {new:#?}"
    );
}

/// [`up`], the first pair (SPI in, SPI out) checked in the SA database,
/// and the peer's IKE SA.
fn up_checked(child_extra: &str) -> (Pair, (u32, u32), IkeSaId) {
    let pair = up(child_extra, 3600);
    let first = pair.pairs()[0];
    pair.assert_installed(first, "first pair");
    let peer_ike = pair.peer_established()[0];
    (pair, first, peer_ike)
}

/// [`up_checked`], then the peer rekeys the child: both pairs installed
/// (the peer has not deleted the old one), the outbound policy on the new
/// one at once. The pair, the old and the new (SPI in, SPI out), the peer's
/// IKE SA.
fn rekeyed_by_the_peer() -> (Pair, (u32, u32), (u32, u32), IkeSaId) {
    let (mut pair, old, peer_ike) = up_checked("");
    pair.peer_command(Command::CreateChild(peer_ike));
    pair.run_for(Duration::from_millis(500));
    let pairs = pair.pairs();
    assert_eq!(pairs.len(), 2, "{pairs:?}");
    let new = pairs[1];
    assert_eq!(pairs[0], old);
    assert!(new.0 != old.0 && new.1 != old.1, "{pairs:?}");
    assert_eq!(pair.our_sas(), two_pairs(old, new), "both pairs while the peer has not deleted the old one");
    assert_eq!(pair.policies(), vec![(2, 1, Some(new.1)), (3, 1, None)], "traffic goes to the new pair");
    pair.assert_mirrored("both pairs");
    (pair, old, new, peer_ike)
}

/// The SAs of two pairs, (SPI in, SPI out) each, as `our_sas` lists them.
fn two_pairs(a: (u32, u32), b: (u32, u32)) -> BTreeSet<(u32, bool)> {
    BTreeSet::from([(a.0, true), (a.1, false), (b.0, true), (b.1, false)])
}

/// The peer rekeys the child (as strongSwan's responder does when its soft
/// lifetime comes first): its Quick Mode installs a second pair here, the
/// outbound policy moves to it at once, and the old pair stays until the
/// peer deletes it, after which only the new pair is left.
#[test]
fn a_rekey_the_peer_initiates_replaces_the_pair() {
    let (mut pair, old, new, peer_ike) = rekeyed_by_the_peer();
    let both = two_pairs(old, new);

    // The old pair is the peer's to delete (it rekeyed): we wait for it.
    pair.run_for(Duration::from_secs(10));
    assert_eq!(pair.our_sas(), both, "we do not delete the pair the peer replaced");
    pair.peer_command(Command::DeleteChild { ike_sa: peer_ike, inbound_spi: old.1 });
    pair.run_for(Duration::from_secs(1));
    pair.assert_installed(new, "after the peer's Delete of the old pair");
    pair.assert_mirrored("after the peer's Delete of the old pair");
}

/// [`up_checked`] with rekey_time 20 s (no jitter), run until our rekey's
/// first Quick Mode message is on the wire (20 s after the install, up to
/// 2 s ago).
fn our_rekey_on_the_wire() -> (Pair, (u32, u32), IkeSaId) {
    let (mut pair, old, peer_ike) =
        up_checked("rekey_time = \"20s\"\nlife_time = \"40s\"\nrand_time = \"0s\"");
    pair.run_for(Duration::from_secs(17));
    assert_eq!(pair.pairs(), vec![old], "no rekey before rekey_time");
    let limit = pair.now + Duration::from_secs(3);
    while !pair.wire.iter().any(|(_, t)| t.source.ip() == US) {
        assert!(pair.now < limit, "our rekey did not start");
        pair.run_for(Duration::from_millis(1));
    }
    (pair, old, peer_ike)
}

/// Both ends rekey the same child at once (our rekey_time and the peer's
/// Quick Mode within one datagram's flight): two new pairs replace the old
/// one. Both are kept until the duplicate is found, then the one with the
/// higher min(SPI in, SPI out) goes with the old pair, and one pair is left
/// at both ends.
#[test]
fn a_rekey_by_both_ends_at_once_leaves_one_pair() {
    let (mut pair, old, peer_ike) = our_rekey_on_the_wire();
    pair.peer_command(Command::CreateChild(peer_ike));
    // Both Quick Modes done, our outbound SA switched (after 200 ms).
    pair.run_for(Duration::from_millis(400));
    let pairs = pair.pairs();
    assert_eq!(pairs.len(), 3, "the old pair and two new ones: {pairs:?}");
    let new: Vec<(u32, u32)> = pairs.iter().copied().filter(|p| *p != old).collect();
    let key = |p: &(u32, u32)| p.0.min(p.1);
    let winner = *new.iter().min_by_key(|p| key(p)).unwrap_or_else(|| panic!("{new:?}"));
    let loser = *new.iter().max_by_key(|p| key(p)).unwrap_or_else(|| panic!("{new:?}"));
    assert_ne!(winner, loser);
    // The duplicate stops sending at once; it receives until the overlap ends.
    let sas =
        BTreeSet::from([(old.0, true), (old.1, false), (winner.0, true), (winner.1, false), (loser.0, true)]);
    assert_eq!(pair.our_sas(), sas, "winner {winner:?}, loser {loser:?}");
    assert_eq!(pair.policies(), vec![(2, 1, Some(winner.1)), (3, 1, None)], "traffic on the winner");

    pair.run_for(Duration::from_secs(5));
    assert_eq!(pair.pairs(), vec![winner], "one pair left: the lower min(SPI)");
    pair.assert_installed(winner, "after the duplicate and the old pair are deleted");
    pair.assert_mirrored("one pair at both ends");
    assert!(pair.our_sas().iter().all(|(s, _)| ![old.0, old.1, loser.0, loser.1].contains(s)));
}

/// `dpd_delay` 2 s, `dpd_timeout` 5 s: an idle peer is probed, and one that
/// went silent is declared dead when the timeout runs out.
const DPD: &str = "dpd_delay = \"2s\"\ndpd_timeout = \"5s\"";

/// Brings the pair up with DPD and `dpd_action`, then silences the peer
/// and runs until our DPD has declared it dead: the pair before.
fn dead_peer(dpd_action: &str) -> (Pair, (u32, u32)) {
    let mut pair = Pair::with(DPD, &format!("dpd_action = \"{dpd_action}\""), 3600);
    let first = pair.bring_up();
    // An idle peer that answers stays up: probes come and go.
    pair.run_for(Duration::from_secs(10));
    pair.assert_installed(first, "idle, answering DPD");
    assert_eq!(pair.listed().len(), 1);
    pair.peer_silent = true;
    // Probed within dpd_delay, dead dpd_timeout later.
    pair.run_for(Duration::from_secs(4));
    pair.assert_installed(first, "silent, not yet dead");
    pair.run_for(Duration::from_secs(5));
    (pair, first)
}

/// `dpd_action = clear`: the dead peer's IKE SA and pair go, with the
/// child's policies (it is not configured to be up), and nothing restarts.
#[test]
fn dpd_clear_removes_the_sas_and_policies_of_a_dead_peer() {
    let (mut pair, _) = dead_peer("clear");
    assert_eq!(pair.our_sas(), BTreeSet::new(), "the dead peer's pair deleted");
    assert_eq!(pair.policies(), vec![], "and its policies");
    assert_eq!(pair.listed(), vec![], "no IKE SA left");
    pair.peer_silent = false;
    pair.run_for(Duration::from_secs(10));
    assert_eq!(pair.our_sas(), BTreeSet::new(), "nothing restarts");
    assert_eq!(pair.peer_established().len(), 1);
}

/// `dpd_action = restart`: the dead peer's SAs go as with `clear`, then the
/// connection is initiated again; once the peer answers, a new IKE SA and a
/// new pair are up.
#[test]
fn dpd_restart_brings_the_connection_up_again() {
    let (mut pair, first) = dead_peer("restart");
    assert_eq!(pair.our_sas(), BTreeSet::new(), "the dead peer's pair deleted");
    assert_eq!(pair.policies(), vec![]);
    pair.peer_silent = false;
    pair.run_for(Duration::from_secs(5));
    assert_eq!(pair.peer_established().len(), 2, "a new IKE SA with the peer");
    let pairs = pair.pairs();
    assert_eq!(pairs.len(), 1, "{pairs:?}");
    assert!(pairs[0].0 != first.0 && pairs[0].1 != first.1, "a new pair: {pairs:?} after {first:?}");
    pair.assert_installed(pairs[0], "restarted");
    let ours: BTreeSet<(u32, bool)> = pair.our_sas().into_iter().map(|(s, i)| (s, !i)).collect();
    assert!(ours.is_subset(&pair.peer_sas), "the peer holds the new pair too");
}

/// `reauth_time` 10 s (and no `rekey_time`): the ISAKMP SA is replaced by a
/// new Main Mode, the pair keeps forwarding until its successor, negotiated
/// under the new ISAKMP SA, takes the traffic; then the old pair and the old
/// ISAKMP SA are deleted, and one ISAKMP SA with one pair is left.
#[test]
fn reauthentication_moves_the_children_to_a_new_isakmp_sa() {
    let conn = "rekey_time = \"0s\"\nreauth_time = \"10s\"\nover_time = \"20s\"\nrand_time = \"0s\"";
    let mut pair = Pair::with(conn, "", 3600);
    let first = pair.bring_up();
    let old_us = pair.listed()[0].0;
    let old_peer = pair.peer_established()[0];
    pair.run_for(Duration::from_secs(7));
    pair.assert_installed(first, "9 s: before reauth_time");
    assert_eq!(pair.peer_established().len(), 1);

    // 10 s: Main Mode and Quick Mode (90 ms), the switch 200 ms after HASH(3).
    pair.run_for(Duration::from_millis(1_500));
    assert_eq!(pair.peer_established().len(), 2, "a new ISAKMP SA");
    let new_peer = pair.peer_established()[1];
    let pairs = pair.pairs();
    assert_eq!(pairs.len(), 2, "{pairs:?}");
    let new = pairs.iter().copied().find(|p| *p != first).unwrap_or_else(|| panic!("{pairs:?}"));
    assert!(new.0 != first.0 && new.1 != first.1, "{pairs:?}");
    assert_eq!(pair.our_sas(), two_pairs(first, new), "the old pair still installed during the overlap");
    assert_eq!(pair.policies(), vec![(2, 1, Some(new.1)), (3, 1, None)], "traffic on the new pair");
    pair.assert_mirrored("overlap");
    let listed = pair.listed();
    assert_eq!(listed.len(), 2, "{listed:?}");
    assert_eq!(listed[0].2, Vec::<String>::new(), "the new ISAKMP SA adopted the old pair: {listed:?}");
    let under_new: BTreeSet<String> = listed[1].2.iter().cloned().collect();
    let spis_in = BTreeSet::from([format!("{:08x}", first.0), format!("{:08x}", new.0)]);
    assert_eq!(under_new, spis_in, "both pairs under the new ISAKMP SA");

    pair.run_for(Duration::from_secs(5));
    pair.assert_installed(new, "after the overlap");
    pair.assert_mirrored("after the overlap");
    let listed = pair.listed();
    assert_eq!(listed.len(), 1, "one ISAKMP SA left: {listed:?}");
    let (id, state, children) = &listed[0];
    assert_ne!(*id, old_us);
    assert_eq!((state.as_str(), children.clone()), ("ESTABLISHED", vec![format!("{:08x}", new.0)]));
    assert!(pair.peer_events.contains(&Event::IkeSaDeleted(old_peer)), "the old ISAKMP SA deleted");
    assert!(!pair.peer_events.contains(&Event::IkeSaDeleted(new_peer)));
    assert_eq!(pair.peer.ike_sas().len(), 1, "the peer holds one ISAKMP SA too");
}

/// `start_action = trap`: the child's policies go in without SA and nothing
/// is negotiated; the dataplane's acquire (a packet met the outbound policy)
/// makes us initiate, and the outbound policy is bound to the new outbound
/// SA. A second acquire with the pair up starts nothing.
#[test]
fn an_acquire_on_a_trap_policy_brings_the_child_up() {
    let mut pair = Pair::new("start_action = \"trap\"", 3600);
    pair.run_for(Duration::from_secs(2));
    assert_eq!(pair.our_sas(), BTreeSet::new(), "a trap installs no SA");
    assert_eq!(pair.policies(), vec![(2, 1, None), (3, 1, None)], "the trap's policies");
    assert_eq!(pair.peer_established(), vec![], "nothing negotiated before the acquire");

    let pol = |p: &Pair| p.us.list_pols().into_iter().map(|p| (p.state, p.spi_out)).collect::<Vec<_>>();
    assert_eq!(pol(&pair), vec![("TRAP".to_owned(), None)], "list-pols shows the trap");

    let dp = Dataplane::attach(&pair);
    dp.acquire();
    pair.run_for(Duration::from_secs(1));
    assert_eq!(pair.peer_established().len(), 1, "the acquire initiated");
    assert!(pair.events().contains(&"acquire peer/net reqid 1".to_owned()), "the acquire is an event");
    let pairs = pair.pairs();
    assert_eq!(pairs.len(), 1, "{pairs:?}");
    pair.assert_installed(pairs[0], "after the acquire");
    pair.assert_mirrored("after the acquire");

    // One raised just before the pair came up, read late.
    dp.acquire();
    pair.run_for(Duration::from_secs(1));
    assert_eq!(pair.pairs(), pairs, "no second pair");
    pair.assert_installed(pairs[0], "after a second acquire");
    assert_eq!(pair.peer_established().len(), 1);
}

/// The peer rekeyed the pair (its replacement in place, the outbound policy
/// on it), then the old outbound SA's hard limit is reached before the
/// peer's Delete: the dataplane's hard-expire event deletes the old pair at
/// both ends, the replacement stays with the policy bound to it.
#[test]
fn a_hard_expire_event_deletes_the_pair_its_replacement_stays() {
    let (mut pair, old, new, _) = rekeyed_by_the_peer();
    let dp = Dataplane::attach(&pair);
    dp.hard_expire(old.1);
    pair.run_for(Duration::from_millis(100));
    pair.assert_installed(new, "after the old pair's hard expiry");
    assert_eq!(pair.pairs(), vec![new]);
    pair.run_for(Duration::from_secs(1));
    pair.assert_mirrored("the peer followed our Delete");
    pair.assert_installed(new, "a second later");
}

/// Our side on an SA database created with room for two SAs (one pair).
fn room_for_two_sas(child_extra: &str) -> Pair {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let caps = sadb::Capacities { sas: 2, ..sadb::Capacities::default() };
    drop(sadb::Region::open_or_create(dir.path().join("sadb"), &caps).unwrap_or_else(|e| panic!("{e}")));
    Pair::in_dir(dir, "", child_extra, 1)
}

/// An SA database with room for two SAs: the first pair fills it. The
/// peer's Quick Mode for a second pair cannot be installed here: it is
/// aborted, and the first pair, its policies and the peer's view of it
/// stay as they were.
#[test]
fn a_full_sa_table_refuses_a_second_pair_and_keeps_the_first() {
    let mut pair = room_for_two_sas("");
    let first = pair.bring_up();
    pair.assert_mirrored("first pair");
    let peer_ike = pair.peer_established()[0];

    pair.peer_command(Command::CreateChild(peer_ike));
    pair.run_for(Duration::from_secs(5));
    assert_eq!(pair.pairs(), vec![first], "no second pair");
    pair.assert_installed(first, "after the refused Quick Mode");
    pair.assert_mirrored("after the refused Quick Mode");
}

/// The daemon killed (no Delete, SAs left in the database), then started
/// again on the same database with `start_action = start`: the new manager
/// initiates without INITIAL-CONTACT (the old pair carries the traffic
/// meanwhile), its new pair takes the policy, and once that pair has been up
/// for the overlap the old run's SAs are reaped. The peer's half of the old
/// pair is left to its own expiry (we know no ISAKMP SA to delete it over).
#[test]
fn a_restart_on_the_same_database_replaces_and_reaps_the_old_run_s_sas() {
    let (mut pair, first, _) = up_checked("start_action = \"start\"");
    let cfg = Arc::clone(pair.us.config());
    let kernel = SadbWriter::open(&cfg.daemon.sadb).unwrap_or_else(|e| panic!("{e}"));
    // As after SIGKILL: the old manager goes with nothing deleted.
    pair.us = Manager::new(cfg, kernel, None, sim::randomness(9));
    pair.wire.clear();
    pair.assert_installed(first, "the old run's pair and policies found in place");
    let now = pair.now;
    pair.us.start(now);
    pair.run_for(Duration::from_millis(500));
    assert_eq!(pair.peer_established().len(), 2, "a new ISAKMP SA");
    let contacts = pair.peer_events.iter().filter(|e| matches!(e, Event::InitialContact(_))).count();
    assert_eq!(contacts, 1, "no INITIAL-CONTACT from the restarted run");
    let pairs = pair.pairs();
    assert_eq!(pairs.len(), 2, "the new run's pair, and the old one listed as left: {pairs:?}");
    assert!(pairs.contains(&first), "{pairs:?}");
    let new = pairs.into_iter().find(|p| *p != first).unwrap_or_else(|| panic!("no new pair"));
    assert!(new.0 != first.0 && new.1 != first.1, "{new:?} {first:?}");
    assert_eq!(pair.our_sas(), two_pairs(first, new), "the old pair still there");
    assert_eq!(pair.policies(), vec![(2, 1, Some(new.1)), (3, 1, None)], "traffic on the new pair");

    // The daemon reaps about every second.
    pair.run_for(Duration::from_secs(2));
    let now = pair.now;
    pair.us.reap_orphans(now);
    pair.assert_installed(new, "the old run's pair reaped");
    let mirror = |p: (u32, u32)| [(p.0, false), (p.1, true)];
    let peer: BTreeSet<(u32, bool)> = mirror(new).into_iter().chain(mirror(first)).collect();
    assert_eq!(pair.peer_sas, peer, "the peer holds the new pair, and the old one until it expires");
}

/// [`up_checked`] with `child_extra`, then the daemon killed and started
/// again on the same database, the peer gone for good: the pair and the
/// old run's (SPI in, SPI out), and the moment of the restart.
fn restarted_with_a_silent_peer(child_extra: &str) -> (Pair, (u32, u32), Instant) {
    let (mut pair, first, _) = up_checked(child_extra);
    assert!(first.0 != 0 && first.1 != 0, "{first:?}");
    let cfg = Arc::clone(pair.us.config());
    let kernel = SadbWriter::open(&cfg.daemon.sadb).unwrap_or_else(|e| panic!("{e}"));
    pair.us = Manager::new(cfg, kernel, None, sim::randomness(9));
    pair.wire.clear();
    pair.peer_silent = true;
    let restart = pair.now;
    (pair, first, restart)
}

/// The daemon killed, then started again on the same database with
/// `start_action = none`, and the peer gone for good: nothing replaces the
/// old run's pair, which stays installed and listed (child uniqueid 0, its
/// deadline as lifetime) with the policy bound to it until the largest
/// configured `life_time` (40 s here) has passed since the restart; then
/// the pair and its policies are removed (nothing of this run uses the
/// reqid).
#[test]
fn a_restart_with_a_silent_peer_removes_the_old_run_s_pair_at_its_deadline() {
    let (mut pair, first, restart) =
        restarted_with_a_silent_peer("rekey_time = \"20s\"\nlife_time = \"40s\"\nrand_time = \"0s\"");
    pair.us.start(restart);
    pair.assert_installed(first, "the old run's pair and policies found in place");
    let deadline = pair.us.poll_timeout();
    assert_eq!(deadline, Some(restart + Duration::from_secs(40)), "the deadline is a timer");

    pair.run_until(restart + Duration::from_millis(39_900));
    pair.assert_installed(first, "just before the deadline");
    let listed = pair.us.list_sas(pair.now, WALL);
    assert_eq!(listed.len(), 1, "{listed:#?}");
    assert_eq!(
        (listed[0].name.as_str(), listed[0].uniqueid, listed[0].state.as_str()),
        ("peer", 0, "DELETED")
    );
    let c = &listed[0].child_sas[0];
    assert_eq!((c.name.as_str(), c.uniqueid, c.state.as_str()), ("net", 0, "INSTALLED"), "{c:#?}");
    assert_eq!(
        (c.spi_in.clone(), c.spi_out.clone()),
        (format!("{:08x}", first.0), format!("{:08x}", first.1))
    );
    assert_eq!(c.life_time, Some(0), "under a second left: {c:#?}");
    assert_eq!(
        (c.local_ts.as_slice(), c.remote_ts.as_slice()),
        (["10.1.0.0/16".to_owned()].as_slice(), ["10.2.0.0/16".to_owned()].as_slice())
    );

    pair.run_until(restart + Duration::from_millis(40_100));
    assert_eq!(pair.our_sas(), BTreeSet::new(), "the old run's pair removed at its deadline");
    assert_eq!(pair.policies(), vec![], "its policies too: start_action = none keeps no trap");
    assert!(pair.us.list_sas(pair.now, WALL).is_empty(), "nothing listed any more");
    assert_eq!(pair.us.poll_timeout(), None, "no deadline left");
}

/// The same with a child configured to be up (`start_action` `trap` or
/// `start`, whose initiations go unanswered): at the deadline the old pair
/// goes, its policies stay as a trap, unbound.
fn a_restart_with_a_silent_peer_leaves_a_trap_at_the_deadline(start_action: &str) {
    let (mut pair, first, restart) = restarted_with_a_silent_peer(&format!(
        "start_action = \"{start_action}\"\nlife_time = \"40s\"\nrekey_time = \"30s\"\nrand_time = \"0s\""
    ));
    pair.us.start(restart);
    pair.run_until(restart + Duration::from_secs(39));
    pair.assert_installed(first, "the trap's policies still bound to the old pair");
    pair.run_until(restart + Duration::from_secs(41));
    assert_eq!(pair.our_sas(), BTreeSet::new(), "the old run's pair removed at its deadline");
    assert_eq!(pair.policies(), vec![(2, 1, None), (3, 1, None)], "the trap stays, unbound");
}

#[test]
fn a_restart_with_a_silent_peer_leaves_the_trap_unbound_at_the_deadline() {
    a_restart_with_a_silent_peer_leaves_a_trap_at_the_deadline("trap");
}

#[test]
fn a_restart_with_a_silent_peer_turns_a_start_child_s_policies_into_a_trap_at_the_deadline() {
    a_restart_with_a_silent_peer_leaves_a_trap_at_the_deadline("start");
}

/// Our rekey of the pair is in flight when the peer deletes the pair: as
/// our first Quick Mode message leaves (`after` 0), or once our HASH(3) has
/// left and the new outbound SA waits for the switch (`after` 50 ms). Our
/// Quick Mode still completes, the new pair takes the policy, the deleted
/// one is gone when the Delete is read, and in the end we hold exactly the
/// SAs the peer holds (nothing leaked, no policy unbound).
fn delete_during_our_rekey(after: Duration) {
    let (mut pair, old, peer_ike) = our_rekey_on_the_wire();
    pair.run_for(after);
    pair.peer_command(Command::DeleteChild { ike_sa: peer_ike, inbound_spi: old.1 });
    // The Delete read (10 ms on the wire), the Quick Mode done.
    pair.run_for(Duration::from_millis(60));
    let pairs = pair.pairs();
    assert_eq!(pairs.len(), 1, "the deleted pair gone, the rekeyed one up: {pairs:?}");
    let new = pairs[0];
    assert!(new.0 != old.0 && new.1 != old.1, "{pairs:?}");
    pair.assert_installed(new, "right after the peer's Delete");
    pair.run_for(Duration::from_millis(500));
    pair.assert_installed(new, "after the peer's Delete and our rekey");
    pair.assert_mirrored("after the peer's Delete and our rekey");
    pair.run_for(Duration::from_secs(5));
    pair.assert_installed(new, "after the overlap");
    pair.assert_mirrored("after the overlap");
}

#[test]
fn the_peer_deleting_a_pair_as_our_rekey_starts_leaves_the_new_pair_only() {
    delete_during_our_rekey(Duration::ZERO);
}

#[test]
fn the_peer_deleting_a_pair_before_our_outbound_switch_leaves_the_new_pair_only() {
    delete_during_our_rekey(Duration::from_millis(50));
}

/// A full SA table when our own rekey comes (20 s): its inbound SA cannot
/// be installed, the Quick Mode is aborted before our HASH(3), and the first
/// pair goes on carrying the traffic with its policies. The bare peer
/// engine installed its inbound SA at HASH(2) (charon waits for HASH(3)):
/// that one alone is left over at the peer. The rekey is tried again only
/// after 30 s, past the pair's 40 s life_time: at its hard expiry the pair
/// goes at both ends.
#[test]
fn a_full_sa_table_fails_our_rekey_and_keeps_the_pair() {
    let mut pair = room_for_two_sas("rekey_time = \"20s\"\nlife_time = \"40s\"\nrand_time = \"0s\"");
    let first = pair.bring_up();
    pair.run_for(Duration::from_secs(23));
    assert_eq!(pair.pairs(), vec![first], "no second pair");
    pair.assert_installed(first, "after the failed rekey");
    let mirror = BTreeSet::from([(first.0, false), (first.1, true)]);
    let extra: Vec<(u32, bool)> = pair.peer_sas.difference(&mirror).copied().collect();
    assert!(mirror.is_subset(&pair.peer_sas), "{:?}", pair.peer_sas);
    assert!(
        matches!(extra.as_slice(), [(spi, true)] if *spi != first.1),
        "the peer's inbound SA of the aborted Quick Mode only: {extra:?}"
    );

    pair.run_for(Duration::from_secs(17));
    assert_eq!(pair.our_sas(), BTreeSet::new(), "the pair's hard expiry at 40 s");
    assert_eq!(pair.pairs(), vec![]);
    assert_eq!(pair.policies(), vec![], "its policies with it (start_action none)");
    assert!(pair.peer_sas.is_disjoint(&mirror), "the peer deleted its half: {:?}", pair.peer_sas);
}
