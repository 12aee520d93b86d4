//! Diffie-Hellman: MODP groups 2, 5, 14–18 (RFC 2409 §6, RFC 3526), ECP
//! groups 19–21 (RFC 5903) and Curve25519 (group 31, RFC 8031 encoding).
//!
//! MODP arithmetic uses `crypto-bigint`'s constant-time Montgomery
//! exponentiation: it was measured against `num-bigint` (see
//! `examples/modpow_timing.rs` and `docs/ike.md`) and is both faster for our
//! sizes and free of exponent-dependent timing.
//!
//! # Short exponents
//! MODP private exponents are random values of [`DhGroup::exponent_bits`]
//! bits: the RFC 3526 §8 "exponent size" for the stronger strength estimate
//! of each group, which is at least twice that group's security strength
//! (group 2: 256 bits against ~80-bit strength; 14: 320 against 112;
//! 15: 420; 16: 480; 17: 540; 18: 620). Group 5 uses 256.
//!
//! # Peer validation
//! MODP: the value must be exactly `len(p)` bytes and 1 < y < p-1.
//! ECP: x||y (RFC 5903 §7, no 0x04 prefix) must be a point on the curve
//! (checked by SEC1 decoding). X25519: the shared secret must not be all
//! zeros (RFC 7748 §6.1).

use super::{modp_primes, CryptoError, Rng, Secret};
use crypto_bigint::{
    modular::runtime_mod::{DynResidue, DynResidueParams},
    Limb, Uint, Word, U1024, U1536, U2048, U3072, U4096, U6144, U8192,
};
use p256::elliptic_curve::sec1::ToEncodedPoint;
use std::sync::OnceLock;
use zeroize::{Zeroize, Zeroizing};

/// A Diffie-Hellman group, by IANA IKEv1 group number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DhGroup {
    /// Group 2, 1024-bit MODP.
    Modp1024,
    /// Group 5, 1536-bit MODP.
    Modp1536,
    /// Group 14, 2048-bit MODP.
    Modp2048,
    /// Group 15, 3072-bit MODP.
    Modp3072,
    /// Group 16, 4096-bit MODP.
    Modp4096,
    /// Group 17, 6144-bit MODP.
    Modp6144,
    /// Group 18, 8192-bit MODP.
    Modp8192,
    /// Group 19, NIST P-256.
    Ecp256,
    /// Group 20, NIST P-384.
    Ecp384,
    /// Group 21, NIST P-521.
    Ecp521,
    /// Group 31, Curve25519.
    Curve25519,
}

impl DhGroup {
    /// Every supported group.
    pub const ALL: [DhGroup; 11] = [
        Self::Modp1024,
        Self::Modp1536,
        Self::Modp2048,
        Self::Modp3072,
        Self::Modp4096,
        Self::Modp6144,
        Self::Modp8192,
        Self::Ecp256,
        Self::Ecp384,
        Self::Ecp521,
        Self::Curve25519,
    ];

    /// The IANA group number.
    pub fn id(self) -> u16 {
        match self {
            Self::Modp1024 => 2,
            Self::Modp1536 => 5,
            Self::Modp2048 => 14,
            Self::Modp3072 => 15,
            Self::Modp4096 => 16,
            Self::Modp6144 => 17,
            Self::Modp8192 => 18,
            Self::Ecp256 => 19,
            Self::Ecp384 => 20,
            Self::Ecp521 => 21,
            Self::Curve25519 => 31,
        }
    }

    /// The group for an IANA number.
    pub fn from_id(id: u16) -> Option<Self> {
        Self::ALL.into_iter().find(|g| g.id() == id)
    }

    fn prime_hex(self) -> Option<&'static str> {
        Some(match self {
            Self::Modp1024 => modp_primes::GROUP_2,
            Self::Modp1536 => modp_primes::GROUP_5,
            Self::Modp2048 => modp_primes::GROUP_14,
            Self::Modp3072 => modp_primes::GROUP_15,
            Self::Modp4096 => modp_primes::GROUP_16,
            Self::Modp6144 => modp_primes::GROUP_17,
            Self::Modp8192 => modp_primes::GROUP_18,
            _ => return None,
        })
    }

    /// Length of a public value in the KE payload.
    pub fn public_len(self) -> usize {
        match self {
            Self::Ecp256 => 64,
            Self::Ecp384 => 96,
            Self::Ecp521 => 132,
            Self::Curve25519 => 32,
            modp => modp.prime_hex().map_or(0, |h| h.len() / 2),
        }
    }

    /// MODP private exponent length in bits (see the module doc).
    pub fn exponent_bits(self) -> usize {
        match self {
            Self::Modp1024 | Self::Modp1536 => 256,
            Self::Modp2048 => 320,
            Self::Modp3072 => 420,
            Self::Modp4096 => 480,
            Self::Modp6144 => 540,
            Self::Modp8192 => 620,
            Self::Ecp256 | Self::Curve25519 => 256,
            Self::Ecp384 => 384,
            Self::Ecp521 => 521,
        }
    }
}

/// The prime of a MODP group as big-endian bytes.
pub fn modp_prime(group: DhGroup) -> Option<Vec<u8>> {
    group.prime_hex().and_then(hex_decode)
}

fn hex_decode(s: &str) -> Option<Vec<u8>> {
    let b = s.as_bytes();
    b.chunks(2)
        .map(|c| {
            let hi = char::from(*c.first()?).to_digit(16)?;
            let lo = char::from(*c.get(1)?).to_digit(16)?;
            u8::try_from(hi * 16 + lo).ok()
        })
        .collect()
}

/// A private DH value; the secret is wiped on drop.
///
/// The private value is kept as the bytes it was built from, in a block of its own: moving a
/// `DhSecret` (into and out of the engine's exchange states, which live in heap-allocated
/// `Vec`s) copies only the pointer. A key type held inline would leave a bitwise copy behind in
/// the place it was moved out of (`mem::replace` of a state), which no `Drop` wipes. The
/// group's key type is rebuilt on the stack by [`DhSecret::agree`].
pub struct DhSecret {
    group: DhGroup,
    private: Secret,
    public: Vec<u8>,
}

impl core::fmt::Debug for DhSecret {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("DhSecret").field("group", &self.group).finish_non_exhaustive()
    }
}

impl DhSecret {
    /// Draws a fresh private value.
    pub fn generate(group: DhGroup, rng: &mut dyn Rng) -> Result<Self, CryptoError> {
        let len = match group {
            DhGroup::Ecp256 | DhGroup::Curve25519 => 32,
            DhGroup::Ecp384 => 48,
            DhGroup::Ecp521 => 66,
            modp => modp.exponent_bits().div_ceil(8),
        };
        // ECP scalars are drawn by rejection: a value >= n is rare and retried.
        for _ in 0..64 {
            let mut bytes = Zeroizing::new(vec![0u8; len]);
            rng.fill_bytes(&mut bytes);
            if group == DhGroup::Ecp521 {
                if let Some(b) = bytes.first_mut() {
                    *b &= 0x01;
                }
            }
            if let Some(first) = bytes.first_mut() {
                let extra = len * 8 - group.exponent_bits().min(len * 8);
                *first &= 0xffu8 >> extra;
            }
            if let Ok(s) = Self::from_private_bytes(group, &bytes) {
                return Ok(s);
            }
        }
        Err(CryptoError::InvalidPublicValue)
    }

    /// Builds a private value from fixed bytes (known-answer tests, and the
    /// body of [`DhSecret::generate`]). MODP: the exponent, big-endian, must
    /// be > 1. ECP: a scalar in [1, n). X25519: 32 bytes, clamped by X25519.
    pub fn from_private_bytes(group: DhGroup, bytes: &[u8]) -> Result<Self, CryptoError> {
        let public = match group {
            DhGroup::Ecp256 => {
                let k = p256::SecretKey::from_slice(bytes).map_err(|_| CryptoError::InvalidLength)?;
                ecp_public(k.public_key().to_encoded_point(false).as_bytes())
            }
            DhGroup::Ecp384 => {
                let k = p384::SecretKey::from_slice(bytes).map_err(|_| CryptoError::InvalidLength)?;
                ecp_public(k.public_key().to_encoded_point(false).as_bytes())
            }
            DhGroup::Ecp521 => {
                let k = p521::SecretKey::from_slice(bytes).map_err(|_| CryptoError::InvalidLength)?;
                ecp_public(k.public_key().to_encoded_point(false).as_bytes())
            }
            DhGroup::Curve25519 => {
                let k = x25519(bytes)?;
                x25519_dalek::PublicKey::from(&k).as_bytes().to_vec()
            }
            modp => {
                if bytes.iter().rev().skip(1).all(|b| *b == 0) && bytes.last().is_none_or(|b| *b < 2) {
                    return Err(CryptoError::InvalidLength);
                }
                modp_pow(modp, &[2], bytes).ok_or(CryptoError::InvalidLength)?
            }
        };
        Ok(Self { group, private: Zeroizing::new(bytes.to_vec()), public })
    }

    /// The group.
    pub fn group(&self) -> DhGroup {
        self.group
    }

    /// Our public value, encoded for the KE payload.
    pub fn public_value(&self) -> &[u8] {
        &self.public
    }

    /// Computes g^xy from the peer's KE payload data, validating it first.
    pub fn agree(&self, peer: &[u8]) -> Result<Secret, CryptoError> {
        if peer.len() != self.group.public_len() {
            return Err(CryptoError::InvalidPublicValue);
        }
        let x: &[u8] = &self.private;
        match self.group {
            DhGroup::Ecp256 => {
                let k = p256::SecretKey::from_slice(x).map_err(|_| CryptoError::InvalidLength)?;
                let pk = p256::PublicKey::from_sec1_bytes(&sec1(peer))
                    .map_err(|_| CryptoError::InvalidPublicValue)?;
                let s = p256::ecdh::diffie_hellman(k.to_nonzero_scalar(), pk.as_affine());
                Ok(Zeroizing::new(s.raw_secret_bytes().to_vec()))
            }
            DhGroup::Ecp384 => {
                let k = p384::SecretKey::from_slice(x).map_err(|_| CryptoError::InvalidLength)?;
                let pk = p384::PublicKey::from_sec1_bytes(&sec1(peer))
                    .map_err(|_| CryptoError::InvalidPublicValue)?;
                let s = p384::ecdh::diffie_hellman(k.to_nonzero_scalar(), pk.as_affine());
                Ok(Zeroizing::new(s.raw_secret_bytes().to_vec()))
            }
            DhGroup::Ecp521 => {
                let k = p521::SecretKey::from_slice(x).map_err(|_| CryptoError::InvalidLength)?;
                let pk = p521::PublicKey::from_sec1_bytes(&sec1(peer))
                    .map_err(|_| CryptoError::InvalidPublicValue)?;
                let s = p521::ecdh::diffie_hellman(k.to_nonzero_scalar(), pk.as_affine());
                Ok(Zeroizing::new(s.raw_secret_bytes().to_vec()))
            }
            DhGroup::Curve25519 => {
                let k = x25519(x)?;
                let arr: [u8; 32] = peer.try_into().map_err(|_| CryptoError::InvalidPublicValue)?;
                let s = k.diffie_hellman(&x25519_dalek::PublicKey::from(arr));
                // RFC 7748 §6.1: reject the all-zero output of low-order points.
                if !s.was_contributory() {
                    return Err(CryptoError::InvalidPublicValue);
                }
                Ok(Zeroizing::new(s.as_bytes().to_vec()))
            }
            modp => {
                let p = modp_prime(modp).ok_or(CryptoError::InvalidLength)?;
                // RFC 2631 §2.1.5 style range check: 1 < y < p-1.
                let one = {
                    let mut v = vec![0u8; p.len()];
                    if let Some(l) = v.last_mut() {
                        *l = 1;
                    }
                    v
                };
                let mut p_minus_1 = p.clone();
                if let Some(l) = p_minus_1.last_mut() {
                    *l &= 0xfe; // p is odd
                }
                if peer <= one.as_slice() || peer >= p_minus_1.as_slice() {
                    return Err(CryptoError::InvalidPublicValue);
                }
                let z = modp_pow(modp, peer, x).ok_or(CryptoError::InvalidLength)?;
                Ok(Zeroizing::new(z))
            }
        }
    }
}

/// An X25519 private key from 32 bytes (the stack copy of the array is wiped).
fn x25519(bytes: &[u8]) -> Result<x25519_dalek::StaticSecret, CryptoError> {
    let mut arr: [u8; 32] = bytes.try_into().map_err(|_| CryptoError::InvalidLength)?;
    let k = x25519_dalek::StaticSecret::from(arr);
    arr.zeroize();
    Ok(k)
}

/// RFC 5903 §7: the KE data is x || y; SEC1 wants 0x04 || x || y.
fn sec1(xy: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(xy.len() + 1);
    v.push(0x04);
    v.extend_from_slice(xy);
    v
}

fn ecp_public(sec1_uncompressed: &[u8]) -> Vec<u8> {
    sec1_uncompressed.get(1..).unwrap_or(&[]).to_vec()
}

/// base^exp mod p for a MODP group, result padded to len(p).
///
/// The Montgomery parameters of each prime are computed once per process.
pub fn modp_pow(group: DhGroup, base: &[u8], exp: &[u8]) -> Option<Vec<u8>> {
    macro_rules! cached {
        ($u:ty) => {{
            static PARAMS: OnceLock<Option<DynResidueParams<{ <$u>::LIMBS }>>> = OnceLock::new();
            let params = PARAMS.get_or_init(|| {
                let p = modp_prime(group)?;
                Some(DynResidueParams::new(&uint_from(&p)?))
            });
            pow_n(params.as_ref()?, group.public_len(), base, exp)
        }};
    }
    match group {
        DhGroup::Modp1024 => cached!(U1024),
        DhGroup::Modp1536 => cached!(U1536),
        DhGroup::Modp2048 => cached!(U2048),
        DhGroup::Modp3072 => cached!(U3072),
        DhGroup::Modp4096 => cached!(U4096),
        DhGroup::Modp6144 => cached!(U6144),
        DhGroup::Modp8192 => cached!(U8192),
        _ => None,
    }
}

fn uint_from<const L: usize>(bytes: &[u8]) -> Option<Uint<L>> {
    let width = L * Limb::BYTES;
    if bytes.len() > width {
        return None;
    }
    let mut words = [Limb::ZERO; L];
    for (i, b) in bytes.iter().rev().enumerate() {
        let limb = words.get_mut(i / Limb::BYTES)?;
        limb.0 |= Word::from(*b) << (8 * (i % Limb::BYTES));
    }
    Some(Uint::new(words))
}

/// The low `len` bytes of `v`, big-endian. The full-width buffer is wiped: for g^xy it
/// holds the shared secret (`split_off` copies into a new block, even at 0, and frees the
/// old one as it is).
fn uint_to<const L: usize>(v: &Uint<L>, len: usize) -> Vec<u8> {
    let mut out = Zeroizing::new(Vec::with_capacity(L * Limb::BYTES));
    for limb in v.as_limbs().iter().rev() {
        out.extend_from_slice(&limb.0.to_be_bytes());
    }
    let skip = out.len().saturating_sub(len);
    out.get(skip..).unwrap_or(&[]).to_vec()
}

fn pow_n<const L: usize>(
    params: &DynResidueParams<L>,
    len: usize,
    base: &[u8],
    exp: &[u8],
) -> Option<Vec<u8>> {
    let b = uint_from::<L>(base)?;
    let mut e = uint_from::<L>(exp)?;
    let r = DynResidue::new(&b, *params).pow_bounded_exp(&e, exp.len() * 8);
    e.zeroize();
    let mut v = r.retrieve();
    let out = uint_to(&v, len);
    v.zeroize();
    Some(out)
}
