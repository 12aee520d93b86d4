//! Cryptographic primitives for IKEv1: PRF/hash (RFC 2104 HMAC over SHA-1 and
//! SHA-2), AES-CBC for phase-1 encryption (RFC 3602), Diffie-Hellman groups.
//!
//! Secrets live in [`zeroize::Zeroizing`] buffers or in types that zeroize on
//! drop. Randomness comes from the caller through [`Rng`].

pub mod cipher;
pub mod dh;
pub mod modp_primes;

pub use cipher::Cipher;
pub use dh::{DhGroup, DhSecret};

use hmac::{Hmac, Mac};
use rand_core::{CryptoRng, RngCore};
use sha1::Sha1;
use sha2::{Digest, Sha256, Sha384, Sha512};
use zeroize::Zeroizing;

/// The random source the engine needs: a cryptographic RNG, injected.
pub trait Rng: RngCore + CryptoRng {}
impl<T: RngCore + CryptoRng> Rng for T {}

/// A secret byte string wiped on drop.
pub type Secret = Zeroizing<Vec<u8>>;

/// Errors of the crypto layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CryptoError {
    /// The peer's public value has the wrong length or is out of range
    /// (MODP: not 1 < y < p-1; ECP: not on the curve; X25519: low order).
    InvalidPublicValue,
    /// Ciphertext not a multiple of the block size, or a bad key length.
    InvalidLength,
}

/// Hash algorithm of a phase-1 SA, used as HMAC PRF (RFC 2409 §4:
/// "the HMAC version of the negotiated hash algorithm").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HashAlgorithm {
    /// SHA-1.
    Sha1,
    /// SHA2-256.
    Sha256,
    /// SHA2-384.
    Sha384,
    /// SHA2-512.
    Sha512,
}

macro_rules! hmac_parts {
    ($h:ty, $key:expr, $parts:expr) => {{
        // HMAC accepts keys of any length.
        match <Hmac<$h> as Mac>::new_from_slice($key) {
            Ok(mut m) => {
                for p in $parts {
                    m.update(p);
                }
                m.finalize().into_bytes().to_vec()
            }
            Err(_) => Vec::new(),
        }
    }};
}

macro_rules! hash_parts {
    ($h:ty, $parts:expr) => {{
        let mut d = <$h>::new();
        for p in $parts {
            d.update(p);
        }
        d.finalize().to_vec()
    }};
}

impl HashAlgorithm {
    /// Output length in bytes.
    pub fn output_len(self) -> usize {
        match self {
            Self::Sha1 => 20,
            Self::Sha256 => 32,
            Self::Sha384 => 48,
            Self::Sha512 => 64,
        }
    }

    /// HMAC(key, `parts[0] | parts[1] | ...`).
    pub fn prf(self, key: &[u8], parts: &[&[u8]]) -> Secret {
        Zeroizing::new(match self {
            Self::Sha1 => hmac_parts!(Sha1, key, parts),
            Self::Sha256 => hmac_parts!(Sha256, key, parts),
            Self::Sha384 => hmac_parts!(Sha384, key, parts),
            Self::Sha512 => hmac_parts!(Sha512, key, parts),
        })
    }

    /// Plain hash of the concatenation of `parts`.
    pub fn hash(self, parts: &[&[u8]]) -> Vec<u8> {
        match self {
            Self::Sha1 => hash_parts!(Sha1, parts),
            Self::Sha256 => hash_parts!(Sha256, parts),
            Self::Sha384 => hash_parts!(Sha384, parts),
            Self::Sha512 => hash_parts!(Sha512, parts),
        }
    }
}

/// Constant-time equality for MACs and hashes.
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

#[cfg(test)]
mod tests;
