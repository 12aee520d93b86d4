//! Main Mode + Quick Mode handshakes per second between two in-memory
//! engines, per DH group, with and without PFS, next to the cost of the DH
//! operations alone. Records the figures in `docs/ike.md`.
//!
//! `cargo run --release -p ike --example handshake_bench [iterations]`

use ike::crypto::{Cipher, DhGroup, DhSecret, HashAlgorithm};
use ike::engine::*;
use rand_chacha::rand_core::SeedableRng;
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

struct Spis(u32);
impl SpiAllocator for Spis {
    fn allocate(&mut self) -> Option<u32> {
        self.0 = self.0.wrapping_add(1).max(256);
        Some(self.0)
    }
    fn release(&mut self, _: u32) {}
}

fn config(local: IpAddr, remote: IpAddr, group: DhGroup, pfs: bool) -> EngineConfig {
    let ts = |a| TrafficSelector { address: TsAddress::Host(a), protocol: 0, port: 0 };
    EngineConfig {
        peers: vec![PeerConfig {
            name: "bench".into(),
            remote_address: remote,
            local_address: local,
            local_id: Identity::Address(local),
            remote_id: Identity::Address(remote),
            auth: AuthMethod::PreSharedKey(ike::crypto::Secret::new(b"bench".to_vec())),
            mode: Phase1Mode::Main,
            accept_aggressive: false,
            ike_proposals: vec![IkeProposal {
                cipher: Cipher::Aes256Cbc,
                hash: HashAlgorithm::Sha256,
                group,
            }],
            ike_lifetime: Duration::from_secs(3600),
            child: ChildConfig {
                local_ts: ts(local),
                remote_ts: ts(remote),
                proposals: vec![EspProposal {
                    encryption: EspEncryption::AesGcm16(256),
                    integrity: None,
                    esn: false,
                }],
                mode: ChildMode::Tunnel,
                pfs_group: pfs.then_some(group),
                lifetime_seconds: 3600,
                lifetime_kilobytes: 0,
            },
            nat_traversal: false,
            force_encap: false,
            initial_contact: false,
            prefer_configured_proposals: false,
        }],
        ..EngineConfig::default()
    }
}

/// One MM + QM handshake; returns whether both sides installed.
fn handshake(group: DhGroup, pfs: bool, seed: u64) -> bool {
    let a_ip = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
    let b_ip = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2));
    let mut a = Engine::new(
        config(a_ip, b_ip, group, pfs),
        Box::new(rand_chacha::ChaCha20Rng::seed_from_u64(seed)),
        Box::new(Spis(0x1000)),
    );
    let mut b = Engine::new(
        config(b_ip, a_ip, group, pfs),
        Box::new(rand_chacha::ChaCha20Rng::seed_from_u64(seed ^ 0xffff)),
        Box::new(Spis(0x2000)),
    );
    let now = Instant::now();
    a.handle_command(now, Command::Initiate { peer: 0 });
    let mut installed = 0;
    for _ in 0..32 {
        let mut moved = false;
        while let Some(t) = a.poll_transmit() {
            b.handle_datagram(now, t.destination, t.source, &t.contents);
            moved = true;
        }
        while let Some(t) = b.poll_transmit() {
            a.handle_datagram(now, t.destination, t.source, &t.contents);
            moved = true;
        }
        while let Some(e) = a.poll_event() {
            installed += usize::from(matches!(e, Event::InstallSa { .. }));
        }
        while let Some(e) = b.poll_event() {
            installed += usize::from(matches!(e, Event::InstallSa { .. }));
        }
        if !moved {
            break;
        }
    }
    installed == 2
}

fn main() {
    let iterations: u32 = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(20);
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(1);
    println!("| group | PFS | handshakes/s | ms/handshake | DH ops | DH ms | non-DH share |");
    println!("|---|---|---|---|---|---|---|");
    for group in DhGroup::ALL {
        // Cost of one DH operation: half of (generate + agree).
        let peer = DhSecret::generate(group, &mut rng).map(|s| s.public_value().to_vec()).unwrap_or_default();
        let t = Instant::now();
        for _ in 0..iterations {
            if let Ok(s) = DhSecret::generate(group, &mut rng) {
                let _ = s.agree(&peer);
            }
        }
        let dh_op = t.elapsed() / (2 * iterations);
        for pfs in [false, true] {
            let t = Instant::now();
            let mut ok = 0;
            for i in 0..iterations {
                ok += u32::from(handshake(group, pfs, u64::from(i)));
            }
            let per = t.elapsed() / iterations;
            // Each side generates one value and agrees once per DH: 4 ops,
            // 8 with PFS.
            let ops = if pfs { 8 } else { 4 };
            let dh = dh_op * ops;
            let share = 1.0 - dh.as_secs_f64() / per.as_secs_f64();
            println!(
                "| {} | {} | {:.0} | {:.2} | {} | {:.2} | {:.0} % |{}",
                group.id(),
                if pfs { "yes" } else { "no" },
                1.0 / per.as_secs_f64(),
                per.as_secs_f64() * 1e3,
                ops,
                dh.as_secs_f64() * 1e3,
                share * 100.0,
                if ok == iterations { "" } else { " (FAILED HANDSHAKES)" }
            );
        }
    }
}
