//! The engines shared by the `engine_datagram` target and the corpus generator: the target's
//! responder must be the generator's, byte for byte (same config, same seeded RNG), so that a
//! genuine initiator's messages in the seed corpus take it past its first state.

pub mod quick_mode;

use ike::crypto::{Cipher, DhGroup, HashAlgorithm};
use ike::engine::*;
use rand_chacha::rand_core::SeedableRng;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

/// The initiator's (the fuzzer's) address.
pub const INITIATOR: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
/// The fuzzed responder's address.
pub const RESPONDER: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2));
/// The responder's pre-shared key.
pub const PSK: &[u8] = b"fuzz";
/// Separates the datagrams of one `engine_datagram` input.
pub const SEPARATOR: [u8; 2] = [0xfe, 0xfe];

struct Spis(u32);
impl SpiAllocator for Spis {
    fn allocate(&mut self) -> Option<u32> {
        self.0 += 1;
        Some(self.0)
    }
    fn release(&mut self, _: u32) {}
}

/// UDP 500 at `ip`.
pub fn port500(ip: IpAddr) -> SocketAddr {
    SocketAddr::new(ip, 500)
}

/// A one-peer config from `local`'s point of view.
pub fn peer_config(local: IpAddr, remote: IpAddr, psk: &[u8], mode: Phase1Mode) -> PeerConfig {
    let ts = |a| TrafficSelector { address: TsAddress::Host(a), protocol: 0, port: 0 };
    PeerConfig {
        name: "fuzz".into(),
        remote_address: remote,
        local_address: local,
        local_id: Identity::Address(local),
        remote_id: Identity::Address(remote),
        auth: AuthMethod::PreSharedKey(ike::crypto::Secret::new(psk.to_vec())),
        mode,
        accept_aggressive: true,
        ike_proposals: vec![IkeProposal {
            cipher: Cipher::Aes128Cbc,
            hash: HashAlgorithm::Sha256,
            group: DhGroup::Curve25519,
        }],
        ike_lifetime: Duration::from_secs(3600),
        child: ChildConfig {
            local_ts: ts(local),
            remote_ts: ts(remote),
            proposals: vec![EspProposal { encryption: EspEncryption::AesGcm16(128), integrity: None }],
            mode: ChildMode::Transport,
            pfs_group: None,
            lifetime_seconds: 3600,
            lifetime_kilobytes: 0,
        },
        nat_traversal: true,
        initial_contact: false,
        prefer_configured_proposals: false,
    }
}

fn engine(peer: PeerConfig, seed: u64) -> Engine {
    Engine::new(
        EngineConfig { peers: vec![peer], ..EngineConfig::default() },
        Box::new(rand_chacha::ChaCha20Rng::seed_from_u64(seed)),
        Box::new(Spis(0x1000)),
    )
}

/// The fuzzed responder: Main or Aggressive Mode, PSK [`PSK`], RNG seeded with 0.
pub fn responder() -> Engine {
    engine(peer_config(RESPONDER, INITIATOR, PSK, Phase1Mode::Main), 0)
}

/// Signature authentication with an ECDSA P-256 key drawn from `seed`, no
/// certificate of ours and no CA trusted: every CERT a peer sends is parsed,
/// matched against its ID and validated (and refused), every SIG looked at.
pub fn signature_auth(seed: u64) -> AuthMethod {
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(seed);
    AuthMethod::PublicKey(std::sync::Arc::new(PublicKeyAuth {
        certificates: Vec::new(),
        private_key: ike::auth::PrivateKey::EcdsaP256(p256::ecdsa::SigningKey::random(&mut rng)),
        trust: ike::pki::TrustStore::default(),
        send_cert: SendCert::IfAsked,
        send_certreq: true,
    }))
}

/// The wall-clock time the signature engines are given (a fixed date: runs repeat).
pub fn wall_clock() -> std::time::SystemTime {
    std::time::UNIX_EPOCH + Duration::from_secs(1_790_000_000)
}

/// A signature-authentication engine at `local` for the peer at `remote`.
pub fn signature_engine(local: IpAddr, remote: IpAddr, mode: Phase1Mode, seed: u64, now: Instant) -> Engine {
    let mut p = peer_config(local, remote, b"", mode);
    p.auth = signature_auth(seed);
    let mut e = engine(p, seed);
    e.set_wall_clock(now, wall_clock());
    e
}

/// The fuzzed responder of `engine_signature`: [`responder`] with
/// [`signature_auth`] (key seed 0) instead of the PSK.
pub fn signature_responder(now: Instant) -> Engine {
    signature_engine(RESPONDER, INITIATOR, Phase1Mode::Main, 0, now)
}

/// Feeds the datagrams of one input to the responder `e`: it must never
/// panic and never establish an SA.
pub fn feed_responder(mut e: Engine, now: Instant, data: &[u8]) {
    for d in datagrams(data) {
        e.handle_datagram(now, port500(RESPONDER), port500(INITIATOR), d);
        e.handle_timeout(now + Duration::from_secs(1));
        while e.poll_transmit().is_some() {}
        while let Some(ev) = e.poll_event() {
            assert!(!matches!(ev, Event::IkeSaEstablished { .. }));
        }
    }
}

/// An initiator towards [`responder`] (corpus generation).
pub fn initiator(psk: &[u8], mode: Phase1Mode, seed: u64) -> Engine {
    engine(peer_config(INITIATOR, RESPONDER, psk, mode), seed)
}

/// The datagrams of one `engine_datagram` input, split at [`SEPARATOR`].
pub fn datagrams(mut data: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut done = false;
    std::iter::from_fn(move || {
        if done {
            return None;
        }
        match data.windows(2).position(|w| w == SEPARATOR) {
            Some(i) => {
                let (d, rest) = data.split_at(i);
                data = &rest[2..];
                Some(d)
            }
            None => {
                done = true;
                Some(data)
            }
        }
    })
}
