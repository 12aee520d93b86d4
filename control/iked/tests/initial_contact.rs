//! INITIAL-CONTACT behind a shared NAT, in memory and in virtual time: our manager answers a
//! `%any` connection with a group PSK; clients with their own identities reach it from one
//! public address through a NAT that gives each a port of its own (the test plays the NAT).
//! Each client sends INITIAL-CONTACT (it has no other SA with us). Only the sender's own
//! older IKE SA goes: the other client's stays up.

#[path = "common/sim.rs"]
mod sim;

use ike::engine::{Command, Engine, TrafficSelector, Transmit, TsAddress};
use iked::manager::Manager;
use iked::sadb_writer::SadbWriter;
use sim::WALL;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

const US: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 18, 0, 1));
/// The NAT's public address, shared by every client.
const NAT: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 18, 0, 2));
const LATENCY: Duration = Duration::from_millis(10);

fn subnet(a: [u8; 4], p: u8) -> TrafficSelector {
    TrafficSelector { address: TsAddress::Subnet(IpAddr::V4(Ipv4Addr::from(a)), p), protocol: 0, port: 0 }
}

fn our_config(dir: &std::path::Path) -> iked::config::Config {
    let text = format!(
        r#"
[daemon]
sadb = "{db}"
control_socket = "{dir}/iked.sock"
listen = ["198.18.0.1"]

[connections.rw]
version = 1
local_addrs = "198.18.0.1"
remote_addrs = "%any"
proposals = "aes128-sha256-curve25519"
local.auth = "psk"
local.id = "gw@example.net"
remote.auth = "psk"
[connections.rw.children.net]
local_ts = "10.1.0.0/16"
remote_ts = "10.2.0.0/16"
esp_proposals = "aes128gcm16"
start_action = "none"

[secrets.ike-rw]
id = "gw@example.net"
secret = "group-psk-of-the-road-warriors"
"#,
        db = dir.join("sadb").display(),
        dir = dir.display(),
    );
    iked::config::parse(&text, &dir.join("iked.toml")).unwrap_or_else(|e| panic!("{e}"))
}

/// A road warrior with its own identity, on a private address behind the NAT, without NAT-T
/// (the NAT only rewrites its port, which IKE survives).
fn client(name: &str, spi_base: u32, host_net: [u8; 4]) -> Engine {
    let (id, ts) = (format!("{name}@example.net"), (subnet(host_net, 24), subnet([10, 1, 0, 0], 16)));
    let local = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2));
    let mut p = sim::peer_config(US, local, (&id, "gw@example.net"), b"group-psk-of-the-road-warriors", ts);
    p.name = "gw".into();
    sim::peer_engine_of(p, u64::from(spi_base), spi_base)
}

struct Net {
    us: Manager,
    /// Clients by the public address and port the NAT gave them.
    clients: Vec<(SocketAddr, Engine)>,
    now: Instant,
    wire: Vec<(Instant, Transmit)>,
    dir: tempfile::TempDir,
}

impl Net {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let cfg = Arc::new(our_config(dir.path()));
        let kernel = SadbWriter::open(&cfg.daemon.sadb).unwrap_or_else(|e| panic!("{e}"));
        let now = Instant::now();
        let mut us = Manager::new(cfg, kernel, None, sim::randomness(1));
        us.start(now);
        Self { us, clients: Vec::new(), now, wire: Vec::new(), dir }
    }

    /// A client behind the NAT at public port `port` initiates.
    fn connect(&mut self, name: &str, port: u16, spi_base: u32) {
        self.connect_from(name, SocketAddr::new(NAT, port), spi_base, [10, 2, 0, 0]);
    }

    /// A client seen at `public`, whose hosts are `host_net`/24, initiates.
    fn connect_from(&mut self, name: &str, public: SocketAddr, spi_base: u32, host_net: [u8; 4]) {
        let mut e = client(name, spi_base, host_net);
        e.handle_command(self.now, Command::Initiate { peer: 0 });
        self.clients.push((public, e));
    }

    fn run_for(&mut self, d: Duration) {
        let until = self.now + d;
        loop {
            self.us.commit();
            while let Some(t) = self.us.poll_transmit() {
                self.wire.push((self.now + LATENCY, t));
            }
            for (public, c) in &mut self.clients {
                while let Some(mut t) = c.poll_transmit() {
                    // The NAT: the public address and this client's port.
                    t.source = *public;
                    self.wire.push((self.now + LATENCY, t));
                }
                while c.poll_event().is_some() {}
            }
            let deadlines = [
                self.wire.iter().map(|(t, _)| *t).min(),
                self.clients.iter().filter_map(|(_, c)| c.poll_timeout()).min(),
                self.us.poll_timeout().filter(|t| *t > self.now),
            ];
            let Some(next) = sim::next_moment(until, deadlines) else {
                self.now = until;
                return;
            };
            self.now = self.now.max(next);
            let now = self.now;
            for t in sim::take_due(&mut self.wire, now) {
                if t.destination.ip() == US {
                    self.us.handle_datagram(now, t.destination, t.source, &t.contents);
                } else if let Some((_, c)) = self.clients.iter_mut().find(|(p, _)| *p == t.destination) {
                    // Back through the NAT to the client's own address and port.
                    let to = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)), 500);
                    c.handle_datagram(now, to, t.source, &t.contents);
                }
                // A port the NAT no longer maps: lost.
            }
            for (_, c) in &mut self.clients {
                if c.poll_timeout().is_some_and(|t| t <= now) {
                    c.handle_timeout(now);
                }
            }
            if self.us.poll_timeout().is_some_and(|t| t <= now) {
                self.us.tick(now);
            }
        }
    }

    /// Public ports of the clients we hold an IKE SA with (in any state), with its state.
    fn ike_sas(&self) -> Vec<(u16, String)> {
        let mut v: Vec<(u16, String)> = self
            .us
            .list_sas(self.now, WALL)
            .into_iter()
            .filter(|s| s.uniqueid != 0)
            .map(|s| (s.remote_port, s.state))
            .collect();
        v.sort_unstable();
        v
    }
}

/// Alice and Bob share the NAT's address; each one's INITIAL-CONTACT leaves the other's IKE
/// SA alone. Alice restarting (no memory, new NAT port) takes her own old IKE SA down.
#[test]
fn initial_contact_behind_one_nat_deletes_only_the_senders_sas() {
    let mut net = Net::new();
    net.connect("alice", 40_001, 0x1000_0000);
    net.run_for(Duration::from_secs(3));
    let up = |ports: &[u16]| ports.iter().map(|p| (*p, "ESTABLISHED".to_owned())).collect::<Vec<_>>();
    assert_eq!(net.ike_sas(), up(&[40_001]), "alice is up");
    net.connect("bob", 40_002, 0x2000_0000);
    net.run_for(Duration::from_secs(3));
    assert_eq!(net.ike_sas(), up(&[40_001, 40_002]), "bob's INITIAL-CONTACT leaves alice up");
    // Alice restarts: her old engine is gone, the NAT gives her a new port.
    net.clients.retain(|(p, _)| p.port() != 40_001);
    net.connect("alice", 40_003, 0x3000_0000);
    net.run_for(Duration::from_secs(3));
    assert_eq!(net.ike_sas(), up(&[40_002, 40_003]), "alice's old IKE SA is gone, bob's stays");
}

/// Two peers that chose the same SPI for their inbound SA (our outbound): both tunnels come
/// up, each keeps its own outbound SA, and Bob's Delete of his IKE SA and child takes only his
/// pair: Alice's outbound SA, with the same SPI, stays.
#[test]
fn a_delete_from_one_peer_leaves_another_peers_outbound_sa_with_the_same_spi() {
    let mut net = Net::new();
    let alice = SocketAddr::new(NAT, 40_001);
    let bob = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(198, 18, 0, 3)), 40_002);
    net.connect_from("alice", alice, 0x1000_0000, [10, 2, 1, 0]);
    net.connect_from("bob", bob, 0x1000_0000, [10, 2, 2, 0]);
    net.run_for(Duration::from_secs(3));
    let outbound = |net: &Net| {
        let r = sadb::Region::attach(net.dir.path().join("sadb")).unwrap_or_else(|e| panic!("{e}"));
        let mut v: Vec<(u32, [u8; 16])> = r
            .list_sas()
            .iter()
            .filter(|e| e.config.direction == sadb::Direction::Out as u8)
            .map(|e| (e.config.spi, e.config.dst))
            .collect();
        v.sort_unstable();
        v
    };
    let ip = |a: [u8; 4]| {
        let mut x = [0u8; 16];
        x[..4].copy_from_slice(&a);
        x
    };
    let both = outbound(&net);
    assert_eq!(
        both,
        vec![(0x1000_0001, ip([198, 18, 0, 2])), (0x1000_0001, ip([198, 18, 0, 3]))],
        "one SPI, two peers"
    );
    // Bob terminates: a Delete for his child and one for his ISAKMP SA.
    let (_, b) = net.clients.iter_mut().find(|(p, _)| *p == bob).unwrap_or_else(|| panic!("bob"));
    let id = b.ike_sas().first().map(|s| s.id).unwrap_or_else(|| panic!("bob's IKE SA"));
    let now = net.now;
    b.handle_command(now, Command::Delete(id));
    net.run_for(Duration::from_secs(2));
    assert_eq!(
        outbound(&net),
        vec![(0x1000_0001, ip([198, 18, 0, 2]))],
        "alice's outbound SA stays, bob's is gone"
    );
}
