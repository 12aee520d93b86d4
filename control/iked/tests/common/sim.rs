//! What the tests that run the SA manager in memory and in virtual time
//! share: seeded randomness, so that a run repeats, a counting SPI allocator
//! for the bare peer engines, and a fixed wall clock.

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
