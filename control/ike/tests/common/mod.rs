//! The in-memory pair harness shared by the pair tests (PSK in pair.rs, signatures in
//! cert_pair.rs): two engines over a network with virtual time (quinn's `Pair`
//! style). Loss, duplication and delay are parameters of the network.
#![allow(dead_code, unused_imports)]

pub mod certs;

pub use ike::crypto::{Cipher, DhGroup, HashAlgorithm};
pub use ike::engine::*;
pub use ike::msgs::NotifyType;
pub use rand_chacha::rand_core::SeedableRng;
pub use rand_chacha::ChaCha20Rng;
pub use std::collections::HashSet;
pub use std::net::{IpAddr, Ipv4Addr, SocketAddr};
pub use std::time::{Duration, Instant};

pub const A: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
pub const B: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2));
/// The public side of a NAT in front of A, when enabled.
pub const NAT_PUBLIC: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 1));
pub const NAT_PORT_OFFSET: u16 = 30_000;

/// Hands out SPIs from a base, never twice.
pub struct Spis {
    pub next: u32,
    pub used: HashSet<u32>,
}

impl SpiAllocator for Spis {
    fn allocate(&mut self) -> Option<u32> {
        self.next += 1;
        assert!(self.used.insert(self.next), "SPI reused");
        Some(self.next)
    }
    fn release(&mut self, spi: u32) {
        self.used.remove(&spi);
    }
}

/// Decides the fate of the n-th datagram put on the wire.
pub type FaultFn = Box<dyn FnMut(usize, &Transmit) -> Fault>;

#[derive(Clone, Debug)]
pub enum Fault {
    Deliver,
    Drop,
    Duplicate,
    Delay(Duration),
    /// Flip one bit of the datagram (index into its bits).
    Flip(proptest::sample::Index),
    /// Deliver these bytes instead (a forger on the path).
    Replace(Vec<u8>),
}

#[derive(Clone)]
pub struct Params {
    pub mode: Phase1Mode,
    pub ike: IkeProposal,
    pub esp: EspProposal,
    pub child_mode: ChildMode,
    pub pfs: Option<DhGroup>,
}

pub fn ts(addr: IpAddr) -> TrafficSelector {
    TrafficSelector { address: TsAddress::Host(addr), protocol: 0, port: 0 }
}

pub fn peer(local: IpAddr, remote: IpAddr, p: &Params, psk: &[u8]) -> PeerConfig {
    let subnet = |a: IpAddr| match a {
        IpAddr::V4(v) => TrafficSelector {
            address: TsAddress::Subnet(IpAddr::V4(Ipv4Addr::new(10, v.octets()[3], 0, 0)), 16),
            protocol: 0,
            port: 0,
        },
        _ => ts(a),
    };
    let (lts, rts) = match p.child_mode {
        ChildMode::Tunnel => (subnet(local), subnet(remote)),
        ChildMode::Transport => (ts(local), ts(remote)),
    };
    PeerConfig {
        name: format!("{remote}"),
        remote_address: remote,
        local_address: local,
        local_id: Identity::Fqdn(format!("gw-{local}")),
        remote_id: Identity::Fqdn(format!("gw-{remote}")),
        auth: AuthMethod::PreSharedKey(ike::crypto::Secret::new(psk.to_vec())),
        mode: p.mode,
        accept_aggressive: true,
        ike_proposals: vec![p.ike],
        ike_lifetime: Duration::from_secs(86_400),
        child: ChildConfig {
            local_ts: lts,
            remote_ts: rts,
            proposals: vec![p.esp],
            mode: p.child_mode,
            pfs_group: p.pfs,
            lifetime_seconds: 3600,
            lifetime_kilobytes: 4_000_000,
        },
        nat_traversal: true,
        force_encap: false,
        initial_contact: true,
        prefer_configured_proposals: false,
    }
}

pub fn engine(peers: Vec<PeerConfig>, seed: u64, spi_base: u32) -> Engine {
    Engine::new(
        EngineConfig { peers, ..EngineConfig::default() },
        Box::new(ChaCha20Rng::seed_from_u64(seed)),
        Box::new(Spis { next: spi_base, used: HashSet::new() }),
    )
}

pub struct Pair {
    pub a: Engine,
    pub b: Engine,
    pub now: Instant,
    pub wire: Vec<(Instant, Transmit)>,
    pub sent: usize,
    pub fault: FaultFn,
    pub a_events: Vec<Event>,
    pub b_events: Vec<Event>,
    /// A sits behind a NAT (address and port translation).
    pub nat: bool,
    /// The NAT's port mapping: A's port plus this (a rebinding changes it).
    pub nat_offset: u16,
    pub keepalives: usize,
}

impl Pair {
    pub fn new(a: Engine, b: Engine) -> Self {
        Self {
            a,
            b,
            now: Instant::now(),
            wire: Vec::new(),
            sent: 0,
            fault: Box::new(|_, _| Fault::Deliver),
            a_events: Vec::new(),
            b_events: Vec::new(),
            nat: false,
            nat_offset: NAT_PORT_OFFSET,
            keepalives: 0,
        }
    }

    pub fn collect(&mut self) {
        let latency = Duration::from_millis(10);
        loop {
            let mut t = match self.a.poll_transmit() {
                Some(t) => t,
                None => match self.b.poll_transmit() {
                    Some(t) => t,
                    None => break,
                },
            };
            if self.nat && t.source.ip() == A {
                t.source = SocketAddr::new(NAT_PUBLIC, t.source.port() + self.nat_offset);
            }
            if t.contents == [0xff] {
                self.keepalives += 1;
            }
            let n = self.sent;
            self.sent += 1;
            match (self.fault)(n, &t) {
                Fault::Deliver => self.wire.push((self.now + latency, t)),
                Fault::Drop => {}
                Fault::Duplicate => {
                    self.wire.push((self.now + latency, t.clone()));
                    self.wire.push((self.now + latency * 2, t));
                }
                Fault::Delay(d) => self.wire.push((self.now + latency + d, t)),
                Fault::Replace(contents) => self.wire.push((self.now + latency, Transmit { contents, ..t })),
                Fault::Flip(bit) => {
                    let mut t = t;
                    let i = bit.index(t.contents.len() * 8);
                    t.contents[i / 8] ^= 1 << (i % 8);
                    self.wire.push((self.now + latency, t));
                }
            }
        }
        while let Some(e) = self.a.poll_event() {
            self.a_events.push(e);
        }
        while let Some(e) = self.b.poll_event() {
            self.b_events.push(e);
        }
    }

    /// Runs until nothing is in flight and no timer is armed, or 5 minutes
    /// of virtual time pass.
    pub fn drive(&mut self) {
        let end = self.now + Duration::from_secs(300);
        loop {
            self.collect();
            let next_wire = self.wire.iter().map(|(t, _)| *t).min();
            let next_timer = [self.a.poll_timeout(), self.b.poll_timeout()].into_iter().flatten().min();
            let Some(next) = [next_wire, next_timer].into_iter().flatten().min() else {
                break;
            };
            if next > end {
                break;
            }
            self.now = self.now.max(next);
            let now = self.now;
            let (due, keep): (Vec<_>, Vec<_>) = self.wire.drain(..).partition(|(t, _)| *t <= now);
            self.wire = keep;
            for (_, mut t) in due {
                if self.nat && t.destination.ip() == NAT_PUBLIC {
                    // A port the NAT maps no more: dropped there.
                    let Some(port) = t.destination.port().checked_sub(self.nat_offset) else {
                        continue;
                    };
                    t.destination = SocketAddr::new(A, port);
                }
                let dst = if t.destination.ip() == B { &mut self.b } else { &mut self.a };
                dst.handle_datagram(now, t.destination, t.source, &t.contents);
            }
            self.a.handle_timeout(now);
            self.b.handle_timeout(now);
        }
    }
}

pub fn installs(events: &[Event]) -> Vec<(EspSaDescription, EspSaDescription)> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::InstallSa { inbound, outbound, .. } => Some(((**inbound).clone(), (**outbound).clone())),
            _ => None,
        })
        .collect()
}

pub fn failures(events: &[Event]) -> Vec<Error> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Failed { error, .. } => Some(error.clone()),
            _ => None,
        })
        .collect()
}

pub fn established(events: &[Event]) -> usize {
    events.iter().filter(|e| matches!(e, Event::IkeSaEstablished { .. })).count()
}

pub fn pair_for(p: &Params, seed: u64) -> Pair {
    let a = engine(vec![peer(A, B, p, b"secret")], seed, 0x1000);
    let b = engine(vec![peer(B, A, p, b"secret")], seed + 1000, 0x2000);
    Pair::new(a, b)
}

pub fn run_ok(p: &Params, seed: u64, fault: FaultFn) -> Pair {
    let mut pair = pair_for(p, seed);
    pair.fault = fault;
    let now = pair.now;
    pair.a.handle_command(now, Command::Initiate { peer: 0 });
    pair.drive();
    check_ok(&pair, p);
    pair
}

pub fn check_ok(pair: &Pair, p: &Params) {
    assert_eq!(failures(&pair.a_events), vec![], "initiator {p:?}", p = p.ike);
    assert_eq!(failures(&pair.b_events), vec![], "responder {:?}", p.ike);
    assert_eq!(established(&pair.a_events), 1);
    assert_eq!(established(&pair.b_events), 1);
    let ia = installs(&pair.a_events);
    let ib = installs(&pair.b_events);
    assert_eq!(ia.len(), 1, "initiator installs");
    assert_eq!(ib.len(), 1, "responder installs");
    let (a_in, a_out) = &ia[0];
    let (b_in, b_out) = &ib[0];
    // My outbound is your inbound, byte for byte.
    assert_eq!(a_out, b_in);
    assert_eq!(a_in, b_out);
    assert_ne!(a_in.spi, a_out.spi);
    assert_ne!(*a_in.encryption_key, *a_out.encryption_key);
    assert_eq!(a_out.encryption, p.esp.encryption);
    assert_eq!(a_out.integrity, p.esp.integrity);
    assert_eq!(a_out.encryption_key.len(), p.esp.encryption.key_len());
    assert_eq!(a_out.salt.len(), p.esp.encryption.salt_len());
    assert_eq!(a_out.integrity_key.len(), p.esp.integrity.map_or(0, |i| i.key_len()));
    let expect_mode = match p.child_mode {
        ChildMode::Tunnel => Encapsulation::Tunnel,
        ChildMode::Transport => Encapsulation::Transport,
    };
    assert_eq!(a_out.encapsulation, expect_mode);
    assert_eq!(a_out.destination.ip(), B);
    assert_eq!(a_out.lifetime.seconds, 3600);
    assert_eq!(a_out.lifetime.kilobytes, 4_000_000);
}

pub const HASHES: [HashAlgorithm; 4] =
    [HashAlgorithm::Sha1, HashAlgorithm::Sha256, HashAlgorithm::Sha384, HashAlgorithm::Sha512];
pub const CIPHERS: [Cipher; 3] = [Cipher::Aes128Cbc, Cipher::Aes192Cbc, Cipher::Aes256Cbc];
pub const ESPS: [EspProposal; 6] = [
    EspProposal {
        encryption: EspEncryption::AesCbc(128),
        integrity: Some(EspIntegrity::HmacSha1),
        esn: false,
    },
    EspProposal {
        encryption: EspEncryption::AesCbc(256),
        integrity: Some(EspIntegrity::HmacSha256),
        esn: false,
    },
    EspProposal {
        encryption: EspEncryption::AesCbc(192),
        integrity: Some(EspIntegrity::HmacSha384),
        esn: false,
    },
    EspProposal {
        encryption: EspEncryption::AesCbc(256),
        integrity: Some(EspIntegrity::HmacSha512),
        esn: false,
    },
    EspProposal { encryption: EspEncryption::AesGcm16(128), integrity: None, esn: false },
    EspProposal { encryption: EspEncryption::AesGcm16(256), integrity: None, esn: false },
];

pub fn params(i: usize, mode: Phase1Mode, group: DhGroup) -> Params {
    Params {
        mode,
        ike: IkeProposal { cipher: CIPHERS[i % 3], hash: HASHES[i % 4], group },
        esp: ESPS[i % ESPS.len()],
        child_mode: if i.is_multiple_of(2) { ChildMode::Tunnel } else { ChildMode::Transport },
        pfs: if i.is_multiple_of(3) { None } else { Some(group) },
    }
}

pub fn clean() -> FaultFn {
    Box::new(|_, _| Fault::Deliver)
}

/// The first IKE SA the events report established.
pub fn established_id(events: &[Event]) -> IkeSaId {
    events
        .iter()
        .find_map(|e| match e {
            Event::IkeSaEstablished { ike_sa, .. } => Some(*ike_sa),
            _ => None,
        })
        .unwrap()
}
