//! What the tests that run the SA manager in memory and in virtual time
//! share: seeded randomness, so that a run repeats, a counting SPI allocator
//! and a peer entry for the bare peer engines, and a fixed wall clock.

use iked::manager::Randomness;
use rand_core::{impls, CryptoRng, RngCore};
use std::time::{SystemTime, UNIX_EPOCH};

/// The wall clock of every test moment (`list-sas` reads it only to age the
/// dataplane's last-use stamps, which these tests leave at 0).
pub const WALL: SystemTime = UNIX_EPOCH;

/// SplitMix64: a small seeded generator. Not cryptographic: it claims
/// [`CryptoRng`] only so an engine under test takes it (its keys protect
/// nothing here).
#[derive(Debug)]
pub struct Seeded(u64);

impl Seeded {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }
}

impl RngCore for Seeded {
    fn next_u32(&mut self) -> u32 {
        (self.next_u64() >> 32) as u32
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn fill_bytes(&mut self, dest: &mut [u8]) {
        impls::fill_bytes_via_next(self, dest);
    }

    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}

impl CryptoRng for Seeded {}

/// The manager's randomness, from `seed`.
pub fn randomness(seed: u64) -> Randomness {
    Randomness { engine: Box::new(Seeded::new(seed)), manager: Box::new(Seeded::new(!seed)) }
}

/// SPIs `start + 1`, `start + 2`, ...: a peer engine's, told apart from ours.
#[derive(Debug)]
pub struct Spis(pub u32);

impl ike::engine::SpiAllocator for Spis {
    fn allocate(&mut self) -> Option<u32> {
        self.0 += 1;
        Some(self.0)
    }
    fn release(&mut self, _: u32) {}
}

/// The peer entry of a bare engine playing the other end, towards `remote` from `local`:
/// Main Mode with the PSK `psk`, identities `(ours, theirs)` as user FQDNs, AES-128-CBC,
/// SHA-256 and Curve25519 for IKE, AES-GCM-128 tunnels between `(local_ts, remote_ts)`
/// without PFS, INITIAL-CONTACT on; a test changes the fields it is about.
pub fn peer_config(
    remote: std::net::IpAddr,
    local: std::net::IpAddr,
    ids: (&str, &str),
    psk: &[u8],
    ts: (ike::engine::TrafficSelector, ike::engine::TrafficSelector),
) -> ike::engine::PeerConfig {
    use ike::engine::*;
    PeerConfig {
        name: "peer".into(),
        remote_address: remote,
        local_address: local,
        local_id: Identity::UserFqdn(ids.0.into()),
        remote_id: Identity::UserFqdn(ids.1.into()),
        auth: AuthMethod::PreSharedKey(ike::crypto::Secret::new(psk.to_vec())),
        mode: Phase1Mode::Main,
        accept_aggressive: false,
        prefer_configured_proposals: false,
        ike_proposals: vec![IkeProposal {
            cipher: ike::crypto::Cipher::Aes128Cbc,
            hash: ike::crypto::HashAlgorithm::Sha256,
            group: ike::crypto::DhGroup::Curve25519,
        }],
        ike_lifetime: std::time::Duration::from_secs(4 * 3600),
        child: ChildConfig {
            local_ts: ts.0,
            remote_ts: ts.1,
            proposals: vec![EspProposal {
                encryption: EspEncryption::AesGcm16(128),
                integrity: None,
                esn: false,
            }],
            mode: ChildMode::Tunnel,
            pfs_group: None,
            lifetime_seconds: 3600,
            lifetime_kilobytes: 0,
        },
        nat_traversal: false,
        force_encap: false,
        initial_contact: true,
    }
}

/// A bare engine with the one peer entry `p`, seeded with `seed`, its SPIs from `spis`.
pub fn peer_engine_of(p: ike::engine::PeerConfig, seed: u64, spis: u32) -> ike::engine::Engine {
    ike::engine::Engine::new(
        ike::engine::EngineConfig { peers: vec![p], ..ike::engine::EngineConfig::default() },
        Box::new(Seeded::new(seed)),
        Box::new(Spis(spis)),
    )
}

/// The virtual clock's next moment: the earliest of `deadlines` (`until` if none), or `None`
/// when that is past `until`.
pub fn next_moment(
    until: std::time::Instant,
    deadlines: impl IntoIterator<Item = Option<std::time::Instant>>,
) -> Option<std::time::Instant> {
    let next = deadlines.into_iter().flatten().min().unwrap_or(until);
    (next <= until).then_some(next)
}

/// The datagrams on `wire` due at `now`, in the order they were sent; the others stay.
pub fn take_due(
    wire: &mut Vec<(std::time::Instant, ike::engine::Transmit)>,
    now: std::time::Instant,
) -> Vec<ike::engine::Transmit> {
    let (due, keep): (Vec<_>, Vec<_>) = wire.drain(..).partition(|(t, _)| *t <= now);
    *wire = keep;
    due.into_iter().map(|(_, t)| t).collect()
}
