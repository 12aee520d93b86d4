//! Feed arbitrary datagrams to a responder engine configured for one peer;
//! it must never panic and never emit an established SA.
#![no_main]

use ike::crypto::{Cipher, DhGroup, HashAlgorithm};
use ike::engine::*;
use libfuzzer_sys::fuzz_target;
use rand_chacha::rand_core::SeedableRng;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

struct Spis(u32);
impl SpiAllocator for Spis {
    fn allocate(&mut self) -> Option<u32> {
        self.0 += 1;
        Some(self.0)
    }
    fn release(&mut self, _: u32) {}
}

fuzz_target!(|data: &[u8]| {
    let peer_addr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
    let local_addr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2));
    let ts = |a| TrafficSelector {
        address: TsAddress::Host(a),
        protocol: 0,
        port: 0,
    };
    let peer = PeerConfig {
        name: "fuzz".into(),
        remote_address: peer_addr,
        local_address: local_addr,
        local_id: Identity::Address(local_addr),
        remote_id: Identity::Address(peer_addr),
        auth: AuthMethod::PreSharedKey(b"fuzz".to_vec()),
        mode: Phase1Mode::Main,
        accept_aggressive: true,
        ike_proposals: vec![IkeProposal {
            cipher: Cipher::Aes128Cbc,
            hash: HashAlgorithm::Sha256,
            group: DhGroup::Curve25519,
        }],
        ike_lifetime: Duration::from_secs(3600),
        child: ChildConfig {
            local_ts: ts(local_addr),
            remote_ts: ts(peer_addr),
            proposals: vec![EspProposal {
                encryption: EspEncryption::AesGcm16(128),
                integrity: None,
            }],
            mode: Mode::Transport,
            pfs_group: None,
            lifetime_seconds: 3600,
            lifetime_kilobytes: 0,
        },
        nat_traversal: true,
        initial_contact: false,
    };
    let mut e = Engine::new(
        EngineConfig {
            peers: vec![peer],
            ..EngineConfig::default()
        },
        Box::new(rand_chacha::ChaCha20Rng::seed_from_u64(0)),
        Box::new(Spis(0x1000)),
    );
    let now = Instant::now();
    // The input may hold several datagrams separated by a 0xfe 0xfe marker.
    for d in data.split(|b| *b == 0xfe) {
        e.handle_datagram(
            now,
            SocketAddr::new(local_addr, 500),
            SocketAddr::new(peer_addr, 500),
            d,
        );
        e.handle_timeout(now + Duration::from_secs(1));
        while e.poll_transmit().is_some() {}
        while let Some(ev) = e.poll_event() {
            assert!(!matches!(ev, Event::IkeSaEstablished { .. }));
        }
    }
});
