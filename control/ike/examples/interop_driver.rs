//! A minimal blocking driver around the sans-IO engine, for interop runs
//! against strongSwan (`tests/interop/strongswan.sh`). Not a daemon: it runs
//! one exchange, prints the SAs it would install, and exits.
//!
//! Settings come from the environment (defaults in brackets):
//! IKE_ROLE [initiator|responder], IKE_LOCAL [127.0.0.2], IKE_PEER [127.0.0.1],
//! IKE_PEER_PORT [500] and IKE_PEER_NATT_PORT [4500] (the peer's real ports;
//! the engine always sees 500/4500), IKE_PSK, IKE_GROUP [14], IKE_HASH [sha256], IKE_CIPHER [256],
//! IKE_ESP [gcm|cbc], IKE_PFS [0|1], IKE_MODE [transport|tunnel], IKE_NATT [0|1],
//! IKE_AGGRESSIVE [0|1], IKE_TIMEOUT seconds [20], IKE_DPD [0|1],
//! IKE_LOCAL_TS / IKE_REMOTE_TS [the hosts] as a.b.c.d/len.
//!
//! Output lines: `ESTABLISHED`, `INSTALL <in|out> spi=<hex> enc=<hex> salt=<hex>
//! integ=<hex> encap=<..>`, `DPD-ACK <seq>`, `FAILED <error>`.

use ike::crypto::{Cipher, DhGroup, HashAlgorithm};
use ike::engine::*;
use rand_chacha::rand_core::SeedableRng;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

fn env(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_string())
}

struct Spis(u32);
impl SpiAllocator for Spis {
    fn allocate(&mut self) -> Option<u32> {
        self.0 += 1;
        Some(self.0)
    }
    fn release(&mut self, _: u32) {}
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn main() {
    let local: IpAddr = env("IKE_LOCAL", "127.0.0.2").parse().expect("IKE_LOCAL");
    let peer: IpAddr = env("IKE_PEER", "127.0.0.1").parse().expect("IKE_PEER");
    let peer_port: u16 = env("IKE_PEER_PORT", "500").parse().expect("IKE_PEER_PORT");
    let peer_natt_port: u16 = env("IKE_PEER_NATT_PORT", "4500").parse().expect("IKE_PEER_NATT_PORT");
    let initiator = env("IKE_ROLE", "initiator") == "initiator";
    let group = DhGroup::from_id(env("IKE_GROUP", "14").parse().expect("IKE_GROUP")).expect("group");
    let hash = match env("IKE_HASH", "sha256").as_str() {
        "sha1" => HashAlgorithm::Sha1,
        "sha384" => HashAlgorithm::Sha384,
        "sha512" => HashAlgorithm::Sha512,
        _ => HashAlgorithm::Sha256,
    };
    let cipher = Cipher::aes_cbc(env("IKE_CIPHER", "256").parse().expect("IKE_CIPHER")).expect("128|192|256");
    let esp = if env("IKE_ESP", "gcm") == "gcm" {
        EspProposal { encryption: EspEncryption::AesGcm16(256), integrity: None, esn: false }
    } else {
        EspProposal {
            encryption: EspEncryption::AesCbc(128),
            integrity: Some(EspIntegrity::HmacSha256),
            esn: false,
        }
    };
    let mode =
        if env("IKE_MODE", "transport") == "tunnel" { ChildMode::Tunnel } else { ChildMode::Transport };
    let ts = |a| TrafficSelector { address: TsAddress::Host(a), protocol: 0, port: 0 };
    // IKE_LOCAL_TS / IKE_REMOTE_TS: "a.b.c.d/len" subnets instead of the hosts.
    let subnet = |name: &str, host: IpAddr| match std::env::var(name) {
        Ok(v) => {
            let (a, l) = v.split_once('/').expect("a.b.c.d/len");
            TrafficSelector {
                address: TsAddress::Subnet(a.parse().expect("address"), l.parse().expect("prefix")),
                protocol: 0,
                port: 0,
            }
        }
        Err(_) => ts(host),
    };
    let config = EngineConfig {
        peers: vec![PeerConfig {
            name: "interop".into(),
            remote_address: peer,
            local_address: local,
            local_id: Identity::Address(local),
            remote_id: Identity::Address(peer),
            auth: AuthMethod::PreSharedKey(ike::crypto::Secret::new(
                env("IKE_PSK", "interop-secret").into_bytes(),
            )),
            mode: if env("IKE_AGGRESSIVE", "0") == "1" { Phase1Mode::Aggressive } else { Phase1Mode::Main },
            accept_aggressive: true,
            ike_proposals: vec![IkeProposal { cipher, hash, group }],
            ike_lifetime: Duration::from_secs(3600),
            child: ChildConfig {
                local_ts: subnet("IKE_LOCAL_TS", local),
                remote_ts: subnet("IKE_REMOTE_TS", peer),
                proposals: vec![esp],
                mode,
                pfs_group: (env("IKE_PFS", "0") == "1").then_some(group),
                lifetime_seconds: 1200,
                lifetime_kilobytes: 0,
            },
            nat_traversal: env("IKE_NATT", "0") == "1",
            force_encap: false,
            initial_contact: true,
            prefer_configured_proposals: false,
        }],
        ..EngineConfig::default()
    };
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(1);
    let mut engine = Engine::new(
        config,
        Box::new(rand_chacha::ChaCha20Rng::seed_from_u64(seed)),
        Box::new(Spis(0xc0de0000)),
    );
    let s500 = UdpSocket::bind((local, 500)).expect("bind 500");
    let s4500 = UdpSocket::bind((local, 4500)).expect("bind 4500");
    s500.set_nonblocking(true).expect("nonblocking");
    s4500.set_nonblocking(true).expect("nonblocking");
    let deadline = Instant::now() + Duration::from_secs(env("IKE_TIMEOUT", "20").parse().unwrap_or(20));
    if initiator {
        engine.handle_command(Instant::now(), Command::Initiate { peer: 0 });
    }
    let want_dpd = env("IKE_DPD", "0") == "1";
    let mut installed = 0;
    let mut ike_sa = None;
    let mut buf = vec![0u8; 65536];
    loop {
        let now = Instant::now();
        if now > deadline {
            println!("FAILED timeout");
            std::process::exit(1);
        }
        while let Some(t) = engine.poll_transmit() {
            let (sock, port) =
                if t.source.port() == 4500 { (&s4500, peer_natt_port) } else { (&s500, peer_port) };
            let _ = sock.send_to(&t.contents, SocketAddr::new(t.destination.ip(), port));
        }
        for (sock, local_port) in [(&s500, 500u16), (&s4500, 4500u16)] {
            while let Ok((n, from)) = sock.recv_from(&mut buf) {
                let engine_port = if from.port() == peer_natt_port { 4500 } else { 500 };
                engine.handle_datagram(
                    now,
                    SocketAddr::new(local, local_port),
                    SocketAddr::new(from.ip(), engine_port),
                    &buf[..n],
                );
            }
        }
        if engine.poll_timeout().is_some_and(|t| t <= now) {
            engine.handle_timeout(now);
        }
        while let Some(e) = engine.poll_event() {
            match e {
                Event::IkeSaEstablished { ike_sa: id, .. } => {
                    ike_sa = Some(id);
                    println!("ESTABLISHED");
                }
                Event::InstallSa { inbound, outbound, .. } => {
                    for (dir, sa) in [("in", inbound), ("out", outbound)] {
                        println!(
                            "INSTALL {dir} spi={:08x} enc={} salt={} integ={} encap={:?}",
                            sa.spi,
                            hex(&sa.encryption_key),
                            hex(&sa.salt),
                            hex(&sa.integrity_key),
                            sa.encapsulation
                        );
                    }
                    installed += 1;
                    if want_dpd {
                        if let Some(id) = ike_sa {
                            engine.handle_command(now, Command::DeadPeerDetection(id));
                        }
                    }
                }
                Event::DeadPeerDetectionAck { sequence, .. } => {
                    println!("DPD-ACK {sequence}");
                    std::process::exit(0);
                }
                Event::Failed { error, .. } => {
                    println!("FAILED {error:?}");
                    std::process::exit(1);
                }
                other => println!("EVENT {other:?}"),
            }
        }
        if installed > 0 && !want_dpd {
            // Let the last message (HASH(3)) leave before exiting.
            while let Some(t) = engine.poll_transmit() {
                let (sock, port) =
                    if t.source.port() == 4500 { (&s4500, peer_natt_port) } else { (&s500, peer_port) };
                let _ = sock.send_to(&t.contents, SocketAddr::new(t.destination.ip(), port));
            }
            std::thread::sleep(Duration::from_millis(300));
            std::process::exit(0);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}
