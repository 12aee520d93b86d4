//! Signature authentication of IKEv1 phase 1 (RFC 2409 §5.1, RFC 4754).
//!
//! ```text
//! SKEYID = prf(Ni_b | Nr_b, g^xy)      (signatures, keys::skeyid_signature)
//! SIG_I  = sign(private key of I, HASH_I)
//! SIG_R  = sign(private key of R, HASH_R)
//! ```
//! What is signed is HASH_I / HASH_R itself, as strongSwan and libreswan
//! do it:
//! - RSA (auth method 3): PKCS#1 v1.5 type-1 padding of the hash with no
//!   DigestInfo prefix (strongSwan's `SIGN_RSA_EMSA_PKCS1_NULL`);
//! - ECDSA (RFC 4754, methods 9 and 10): the hash is the ECDSA input as it
//!   is (a prehash, strongSwan's `SIGN_ECDSA_WITH_NULL`) and the signature is
//!   r || s, each left-padded to the curve size (RFC 4754 §7).
//!
//! Private keys are wrapped: the RustCrypto key types wipe themselves on
//! drop, and `Debug` here never prints key material.

use crate::crypto::Rng;
use crate::msgs::p1attr;
use p256::ecdsa::signature::hazmat::{PrehashSigner, PrehashVerifier};
use rsa::pkcs1::DecodeRsaPrivateKey;
use rsa::pkcs8::DecodePrivateKey;
use rsa::{Pkcs1v15Sign, RsaPrivateKey, RsaPublicKey};

/// The signature algorithm of a key, which fixes the phase-1 auth method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SignatureAlgorithm {
    /// RSA, PKCS#1 v1.5 without DigestInfo (auth method 3).
    Rsa,
    /// ECDSA on P-256 (RFC 4754, auth method 9).
    EcdsaP256,
    /// ECDSA on P-384 (RFC 4754, auth method 10).
    EcdsaP384,
}

impl SignatureAlgorithm {
    /// The phase-1 Authentication Method attribute value (RFC 2409
    /// Appendix A, RFC 4754 §5).
    pub fn auth_method(self) -> u16 {
        match self {
            Self::Rsa => p1attr::AUTH_RSA_SIG,
            Self::EcdsaP256 => p1attr::AUTH_ECDSA_256,
            Self::EcdsaP384 => p1attr::AUTH_ECDSA_384,
        }
    }
}

/// Our private key. The material is wiped on drop by the key types
/// themselves; `Debug` shows the algorithm only.
#[derive(Clone)]
pub enum PrivateKey {
    /// RSA.
    Rsa(Box<RsaPrivateKey>),
    /// ECDSA P-256.
    EcdsaP256(p256::ecdsa::SigningKey),
    /// ECDSA P-384.
    EcdsaP384(p384::ecdsa::SigningKey),
}

impl core::fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "PrivateKey({:?}, ..)", self.algorithm())
    }
}

/// Why a key or a signature was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyError {
    /// Not a PKCS#8, PKCS#1 RSA or SEC1 EC key we read, or not PEM/DER.
    Unreadable,
    /// Signing failed (a key too small for the hash).
    SigningFailed,
}

impl PrivateKey {
    /// Reads a private key: PEM (`PRIVATE KEY`, `RSA PRIVATE KEY`,
    /// `EC PRIVATE KEY`) or DER (PKCS#8, PKCS#1 RSA or SEC1 EC).
    pub fn from_pem_or_der(bytes: &[u8]) -> Result<Self, KeyError> {
        // A PEM RSA-16384 key is under 13 KB.
        let der =
            crate::pki::pem_or_der(bytes, 4 * crate::pki::MAX_DER_LEN).map_err(|_| KeyError::Unreadable)?;
        Self::from_der(&der)
    }

    fn from_der(der: &[u8]) -> Result<Self, KeyError> {
        if let Ok(k) = RsaPrivateKey::from_pkcs8_der(der).or_else(|_| RsaPrivateKey::from_pkcs1_der(der)) {
            return Ok(Self::Rsa(Box::new(k)));
        }
        if let Ok(k) = p256::SecretKey::from_pkcs8_der(der).or_else(|_| p256::SecretKey::from_sec1_der(der)) {
            return Ok(Self::EcdsaP256(k.into()));
        }
        if let Ok(k) = p384::SecretKey::from_pkcs8_der(der).or_else(|_| p384::SecretKey::from_sec1_der(der)) {
            return Ok(Self::EcdsaP384(k.into()));
        }
        Err(KeyError::Unreadable)
    }

    /// Which algorithm (and so which auth method) this key signs with.
    pub fn algorithm(&self) -> SignatureAlgorithm {
        match self {
            Self::Rsa(_) => SignatureAlgorithm::Rsa,
            Self::EcdsaP256(_) => SignatureAlgorithm::EcdsaP256,
            Self::EcdsaP384(_) => SignatureAlgorithm::EcdsaP384,
        }
    }

    /// The matching public key.
    pub fn public_key(&self) -> PublicKey {
        match self {
            Self::Rsa(k) => PublicKey::Rsa(k.to_public_key()),
            Self::EcdsaP256(k) => PublicKey::EcdsaP256(*k.verifying_key()),
            Self::EcdsaP384(k) => PublicKey::EcdsaP384(*k.verifying_key()),
        }
    }

    /// Signs HASH_I or HASH_R (see the module doc for the encodings). RSA
    /// uses blinding with `rng`; ECDSA nonces are RFC 6979 deterministic.
    pub fn sign_hash(&self, hash: &[u8], rng: &mut dyn Rng) -> Result<Vec<u8>, KeyError> {
        let out = match self {
            Self::Rsa(k) => k.sign_with_rng(&mut RngRef(rng), Pkcs1v15Sign::new_unprefixed(), hash).ok(),
            Self::EcdsaP256(k) => {
                PrehashSigner::<p256::ecdsa::Signature>::sign_prehash(k, hash).ok().map(|s| s.to_vec())
            }
            Self::EcdsaP384(k) => {
                PrehashSigner::<p384::ecdsa::Signature>::sign_prehash(k, hash).ok().map(|s| s.to_vec())
            }
        };
        out.ok_or(KeyError::SigningFailed)
    }
}

/// `&mut dyn Rng` as a sized RNG for the `rsa` crate.
struct RngRef<'a>(&'a mut dyn Rng);

impl rand_core::RngCore for RngRef<'_> {
    fn next_u32(&mut self) -> u32 {
        self.0.next_u32()
    }
    fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        self.0.fill_bytes(dest);
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
        self.0.try_fill_bytes(dest)
    }
}

impl rand_core::CryptoRng for RngRef<'_> {}

/// A public key from a certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublicKey {
    /// RSA.
    Rsa(RsaPublicKey),
    /// ECDSA P-256.
    EcdsaP256(p256::ecdsa::VerifyingKey),
    /// ECDSA P-384.
    EcdsaP384(p384::ecdsa::VerifyingKey),
}

impl PublicKey {
    /// The algorithm this key verifies.
    pub fn algorithm(&self) -> SignatureAlgorithm {
        match self {
            Self::Rsa(_) => SignatureAlgorithm::Rsa,
            Self::EcdsaP256(_) => SignatureAlgorithm::EcdsaP256,
            Self::EcdsaP384(_) => SignatureAlgorithm::EcdsaP384,
        }
    }

    /// Verifies the peer's SIG_I / SIG_R over HASH_I / HASH_R.
    pub fn verify_hash(&self, hash: &[u8], signature: &[u8]) -> bool {
        match self {
            Self::Rsa(k) => k.verify(Pkcs1v15Sign::new_unprefixed(), hash, signature).is_ok(),
            Self::EcdsaP256(k) => p256::ecdsa::Signature::from_slice(signature)
                .is_ok_and(|s| PrehashVerifier::verify_prehash(k, hash, &s).is_ok()),
            Self::EcdsaP384(k) => p384::ecdsa::Signature::from_slice(signature)
                .is_ok_and(|s| PrehashVerifier::verify_prehash(k, hash, &s).is_ok()),
        }
    }
}
