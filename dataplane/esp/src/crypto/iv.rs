//! Per-packet IV sources for CBC (RFC 3602 §3: the IV MUST be chosen at random and MUST be
//! unpredictable). GCM does not use these: its IV is the sequence number (RFC 4106 §3.1 only
//! requires uniqueness).

use aes::cipher::{BlockEncrypt, KeyInit};
use aes::Aes128;
use core::fmt::Debug;

/// Something that fills IVs. Injected into the outbound SA so tests can fix it.
pub trait IvSource: Send + Debug {
    /// Fill `iv` (16 bytes for CBC).
    fn fill(&mut self, iv: &mut [u8]);
}

/// AES-128 in counter mode under a random per-SA key: the IVs are pseudo-random and
/// unpredictable without the key, and cost one AES block each.
pub struct AesCounterIvSource {
    cipher: Aes128,
    counter: u128,
}

impl Debug for AesCounterIvSource {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("AesCounterIvSource").finish_non_exhaustive()
    }
}

impl AesCounterIvSource {
    /// Keyed from the system RNG. `None` if the system RNG fails.
    pub fn from_system_rng() -> Option<Self> {
        use ring::rand::SecureRandom;
        let rng = ring::rand::SystemRandom::new();
        let mut seed = zeroize::Zeroizing::new([0u8; 32]);
        rng.fill(&mut seed[..]).ok()?;
        let (k, c) = seed.split_at(16);
        let mut ctr = [0u8; 16];
        ctr.copy_from_slice(c);
        Some(Self::from_seed(k, u128::from_le_bytes(ctr)))
    }

    /// Keyed from a given 16-byte key and counter start (tests).
    pub fn from_seed(key: &[u8], counter: u128) -> Self {
        let mut k = [0u8; 16];
        for (d, s) in k.iter_mut().zip(key) {
            *d = *s;
        }
        AesCounterIvSource { cipher: Aes128::new(&k.into()), counter }
    }
}

impl IvSource for AesCounterIvSource {
    fn fill(&mut self, iv: &mut [u8]) {
        let mut block = aes::Block::from(self.counter.to_le_bytes());
        self.counter = self.counter.wrapping_add(1);
        self.cipher.encrypt_block(&mut block);
        for (d, s) in iv.iter_mut().zip(block.iter().cycle()) {
            *d = *s;
        }
    }
}

/// A predictable IV source (big-endian counter) for tests and known-answer vectors.
/// Never use it for traffic.
#[derive(Debug, Clone)]
pub struct CounterIvSource {
    /// Next value.
    pub next: u128,
    /// If set, every IV is this value (known-answer tests).
    pub fixed: Option<[u8; 16]>,
}

impl IvSource for CounterIvSource {
    fn fill(&mut self, iv: &mut [u8]) {
        let v = self.fixed.unwrap_or_else(|| self.next.to_be_bytes());
        self.next = self.next.wrapping_add(1);
        for (d, s) in iv.iter_mut().zip(v.iter()) {
            *d = *s;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aes_counter_ivs_differ_and_are_not_the_counter() {
        let mut s = AesCounterIvSource::from_seed(&[7; 16], 0);
        let (mut a, mut b) = ([0u8; 16], [0u8; 16]);
        s.fill(&mut a);
        s.fill(&mut b);
        assert_ne!(a, b);
        assert_ne!(a, [0u8; 16]);
        assert_ne!(b[15], 1);
        let mut r = AesCounterIvSource::from_system_rng().unwrap();
        r.fill(&mut a);
        assert_ne!(a, [0u8; 16]);
    }

    #[test]
    fn counter_source() {
        let mut s = CounterIvSource { next: 1, fixed: None };
        let mut a = [0u8; 16];
        s.fill(&mut a);
        assert_eq!(a[15], 1);
        s.fill(&mut a);
        assert_eq!(a[15], 2);
    }
}
