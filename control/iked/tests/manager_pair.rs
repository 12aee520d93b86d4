//! The SA manager against a peer engine, in memory and in virtual time: the
//! manager owns a real SA database (a file in a temporary directory), the
//! peer is a bare `ike::Engine` the test drives the way strongSwan behaves
//! (it re-establishes the ISAKMP SA, adopts the children into the new one and
//! deletes the old ISAKMP SA alone). Every datagram travels in 10 ms; the
//! manager's beat runs every 100 ms of virtual time.

use ike::engine::{
    AuthMethod, ChildConfig, Command, Engine, EngineConfig, EspEncryption, EspProposal, Event, Identity,
    IkeProposal, IkeSaId, Mode, PeerConfig, Phase1Mode, SpiAllocator, TrafficSelector, TsAddress,
};
use iked::config;
use iked::knl::Kernel;
use iked::manager::Manager;
use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

const US: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 18, 0, 1));
const PEER: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 18, 0, 2));
const LATENCY: Duration = Duration::from_millis(10);
const BEAT: Duration = Duration::from_millis(100);

struct Spis(u32);

impl SpiAllocator for Spis {
    fn allocate(&mut self) -> Option<u32> {
        self.0 += 1;
        Some(self.0)
    }
    fn release(&mut self, _: u32) {}
}

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
start_action = "none"
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
fn peer_engine(lifetime_seconds: u32) -> Engine {
    let p = PeerConfig {
        name: "us".into(),
        remote_address: US,
        local_address: PEER,
        local_id: Identity::UserFqdn("gw-b@example.net".into()),
        remote_id: Identity::UserFqdn("gw-a@example.net".into()),
        auth: AuthMethod::PreSharedKey(ike::crypto::Secret::new(b"manager-pair-psk".to_vec())),
        mode: Phase1Mode::Main,
        accept_aggressive: false,
        prefer_configured_proposals: false,
        ike_proposals: vec![IkeProposal {
            cipher: ike::crypto::Cipher::Aes128Cbc,
            hash: ike::crypto::HashAlgorithm::Sha256,
            group: ike::crypto::DhGroup::Curve25519,
        }],
        ike_lifetime: Duration::from_secs(4 * 3600),
        child: ChildConfig {
            local_ts: subnet([10, 2, 0, 0], 16),
            remote_ts: subnet([10, 1, 0, 0], 16),
            proposals: vec![EspProposal { encryption: EspEncryption::AesGcm16(128), integrity: None }],
            mode: Mode::Tunnel,
            pfs_group: None,
            lifetime_seconds,
            lifetime_kilobytes: 0,
        },
        nat_traversal: true,
        initial_contact: true,
    };
    Engine::new(
        EngineConfig { peers: vec![p], ..EngineConfig::default() },
        Box::new(rand_core::OsRng),
        Box::new(Spis(0x7000_0000)),
    )
}

struct Pair {
    us: Manager,
    peer: Engine,
    /// The SA database the manager writes, opened a second time to look.
    db: Kernel,
    now: Instant,
    next_beat: Instant,
    wire: Vec<(Instant, ike::engine::Transmit)>,
    peer_events: Vec<Event>,
    /// The peer's installed SAs, as (SPI, inbound).
    peer_sas: BTreeSet<(u32, bool)>,
    _dir: tempfile::TempDir,
}

impl Pair {
    fn new(child_extra: &str, peer_lifetime: u32) -> Self {
        Self::with("", child_extra, peer_lifetime)
    }

    fn with(conn_extra: &str, child_extra: &str, peer_lifetime: u32) -> Self {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let cfg = Arc::new(our_config(dir.path(), conn_extra, child_extra));
        let kernel = Kernel::open(&cfg.daemon.sadb).unwrap_or_else(|e| panic!("{e}"));
        let db = Kernel::open(&cfg.daemon.sadb).unwrap_or_else(|e| panic!("{e}"));
        let now = Instant::now();
        Self {
            us: Manager::new(cfg, kernel, None),
            peer: peer_engine(peer_lifetime),
            db,
            now,
            next_beat: now,
            wire: Vec::new(),
            peer_events: Vec::new(),
            peer_sas: BTreeSet::new(),
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
                    Event::DeleteSa { spi, inbound } => {
                        self.peer_sas.remove(&(*spi, *inbound));
                    }
                    _ => {}
                }
                self.peer_events.push(e);
            }
            let next_wire = self.wire.iter().map(|(t, _)| *t).min();
            let next = [next_wire, self.peer.poll_timeout(), Some(self.next_beat)]
                .into_iter()
                .flatten()
                .min()
                .unwrap_or(until);
            if next > until {
                self.now = until;
                return;
            }
            self.now = self.now.max(next);
            let now = self.now;
            let (due, keep): (Vec<_>, Vec<_>) = self.wire.drain(..).partition(|(t, _)| *t <= now);
            self.wire = keep;
            for (_, t) in due {
                if t.destination.ip() == US {
                    self.us.handle_datagram(now, t.destination, t.source, &t.contents);
                } else {
                    self.peer.handle_datagram(now, t.destination, t.source, &t.contents);
                }
            }
            if self.peer.poll_timeout().is_some_and(|t| t <= now) {
                self.peer.handle_timeout(now);
            }
            if self.next_beat <= now {
                self.us.tick(now);
                self.next_beat = now + BEAT;
            }
        }
    }

    fn run_for(&mut self, d: Duration) {
        let until = self.now + d;
        self.run_until(until);
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
            .list_sas(self.now)
            .into_iter()
            .map(|s| (s.uniqueid, s.state, s.child_sas.into_iter().map(|c| c.spi_in).collect()))
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

fn up(child_extra: &str, peer_lifetime: u32) -> Pair {
    let mut pair = Pair::new(child_extra, peer_lifetime);
    let now = pair.now;
    pair.us.initiate(now, "peer", Some("net")).unwrap_or_else(|e| panic!("{}", e.message));
    pair.run_for(Duration::from_secs(2));
    pair.assert_mirrored("first child up");
    assert_eq!(pair.our_sas().len(), 2);
    pair
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
    assert_eq!(pair.listed().len(), 0, "no IKE SA left");
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
    let listed = pair.us.list_sas(pair.now);
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
    let listed = pair.us.list_sas(pair.now);
    let rekey = listed[0].child_sas[0].rekey_time.unwrap_or(0);
    assert!((20..=28).contains(&rekey), "rekey in {rekey} s");
    pair.run_for(Duration::from_secs(15));
    assert_eq!(pair.our_sas(), first, "no rekey in the first 15 s");
}

/// `list-sas` numbers child SAs with a counter (charon's uniqueid), not
/// with random SPIs: the first pair is 1, its rekeyed successor 2.
#[test]
fn child_sa_ids_are_a_counter() {
    let mut pair = up("rekey_time = \"20s\"\nlife_time = \"30s\"\nrand_time = \"2s\"", 3600);
    let ids = |p: &Pair| -> Vec<u64> {
        p.us.list_sas(p.now).iter().flat_map(|s| s.child_sas.iter().map(|c| c.uniqueid)).collect()
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
