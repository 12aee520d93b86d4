//! The IKEv1 key schedule (RFC 2409 §5, §5.5 and Appendix B).
//!
//! ```text
//! SKEYID   = prf(pre-shared-key, Ni_b | Nr_b)                        (PSK)
//! SKEYID   = prf(Ni_b | Nr_b, g^xy)                                 (signatures)
//! SKEYID_d = prf(SKEYID, g^xy | CKY-I | CKY-R | 0)
//! SKEYID_a = prf(SKEYID, SKEYID_d | g^xy | CKY-I | CKY-R | 1)
//! SKEYID_e = prf(SKEYID, SKEYID_a | g^xy | CKY-I | CKY-R | 2)
//! HASH_I   = prf(SKEYID, g^xi | g^xr | CKY-I | CKY-R | SAi_b | IDii_b)
//! HASH_R   = prf(SKEYID, g^xr | g^xi | CKY-R | CKY-I | SAi_b | IDir_b)
//! IV       = hash(g^xi | g^xr)                  (phase 1, first message)
//! IV       = hash(last phase-1 CBC block | M-ID)     (QM, Informational)
//! KEYMAT   = prf(SKEYID_d, [g(qm)^xy |] protocol | SPI | Ni_b | Nr_b)
//! ```
//!
//! Every derived secret is a [`Secret`] and is wiped on drop.

use crate::crypto::{Cipher, HashAlgorithm, Secret};
use zeroize::Zeroizing;

/// Phase-1 keying material; secrets are wiped on drop and left out of
/// `Debug`.
#[derive(Clone)]
pub struct Phase1Keys {
    /// Negotiated hash / PRF.
    pub hash: HashAlgorithm,
    /// Negotiated cipher.
    pub cipher: Cipher,
    /// SKEYID.
    pub skeyid: Secret,
    /// SKEYID_d, keys phase 2.
    pub skeyid_d: Secret,
    /// SKEYID_a, authenticates phase 2 and Informational.
    pub skeyid_a: Secret,
    /// SKEYID_e.
    pub skeyid_e: Secret,
    /// The phase-1 encryption key (SKEYID_e expanded per Appendix B).
    pub encryption_key: Secret,
    /// IV of the first encrypted phase-1 message.
    pub initial_iv: Vec<u8>,
}

impl core::fmt::Debug for Phase1Keys {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Phase1Keys")
            .field("hash", &self.hash)
            .field("cipher", &self.cipher)
            .finish_non_exhaustive()
    }
}

/// RFC 2409 §5: SKEYID for pre-shared key authentication.
pub fn skeyid_psk(hash: HashAlgorithm, psk: &[u8], ni_b: &[u8], nr_b: &[u8]) -> Secret {
    hash.prf(psk, &[ni_b, nr_b])
}

/// RFC 2409 §5: SKEYID for signature authentication, prf(Ni_b | Nr_b, g^xy).
pub fn skeyid_signature(hash: HashAlgorithm, ni_b: &[u8], nr_b: &[u8], gxy: &[u8]) -> Secret {
    let key = Secret::new([ni_b, nr_b].concat());
    hash.prf(&key, &[gxy])
}

/// RFC 2409 Appendix B: stretches `key` to `len` bytes when it is too short:
/// K1 = prf(key, 0), K2 = prf(key, K1), ...; otherwise truncates.
pub fn expand_key(hash: HashAlgorithm, key: &[u8], len: usize) -> Secret {
    if key.len() >= len {
        return Zeroizing::new(key.get(..len).unwrap_or(key).to_vec());
    }
    let mut out = Zeroizing::new(Vec::with_capacity(len + hash.output_len()));
    let mut k = hash.prf(key, &[&[0u8]]);
    while out.len() < len {
        out.extend_from_slice(&k);
        k = hash.prf(key, &[&k]);
    }
    out.truncate(len);
    out
}

/// Derives SKEYID_d/a/e, the encryption key and the first IV.
#[allow(clippy::too_many_arguments)]
pub fn derive_phase1(
    hash: HashAlgorithm,
    cipher: Cipher,
    skeyid: Secret,
    gxy: &[u8],
    cky_i: &[u8; 8],
    cky_r: &[u8; 8],
    gxi: &[u8],
    gxr: &[u8],
) -> Phase1Keys {
    let skeyid_d = hash.prf(&skeyid, &[gxy, cky_i, cky_r, &[0]]);
    let skeyid_a = hash.prf(&skeyid, &[&skeyid_d, gxy, cky_i, cky_r, &[1]]);
    let skeyid_e = hash.prf(&skeyid, &[&skeyid_a, gxy, cky_i, cky_r, &[2]]);
    let encryption_key = expand_key(hash, &skeyid_e, cipher.key_len());
    let initial_iv = truncate(hash.hash(&[gxi, gxr]), cipher.block_len());
    Phase1Keys { hash, cipher, skeyid, skeyid_d, skeyid_a, skeyid_e, encryption_key, initial_iv }
}

fn truncate(mut v: Vec<u8>, n: usize) -> Vec<u8> {
    v.truncate(n);
    v
}

impl Phase1Keys {
    /// HASH_I (RFC 2409 §5).
    pub fn hash_i(
        &self,
        gxi: &[u8],
        gxr: &[u8],
        cky_i: &[u8; 8],
        cky_r: &[u8; 8],
        sai_b: &[u8],
        idii_b: &[u8],
    ) -> Secret {
        self.hash.prf(&self.skeyid, &[gxi, gxr, cky_i, cky_r, sai_b, idii_b])
    }

    /// HASH_R (RFC 2409 §5).
    pub fn hash_r(
        &self,
        gxi: &[u8],
        gxr: &[u8],
        cky_i: &[u8; 8],
        cky_r: &[u8; 8],
        sai_b: &[u8],
        idir_b: &[u8],
    ) -> Secret {
        self.hash.prf(&self.skeyid, &[gxr, gxi, cky_r, cky_i, sai_b, idir_b])
    }

    /// RFC 2409 Appendix B: the IV of a new phase-2 or Informational
    /// exchange, hash(last phase-1 CBC output block | M-ID).
    pub fn phase2_iv(&self, last_phase1_block: &[u8], message_id: u32) -> Vec<u8> {
        truncate(self.hash.hash(&[last_phase1_block, &message_id.to_be_bytes()]), self.cipher.block_len())
    }

    /// RFC 2409 §5.5: `HASH(1) = prf(SKEYID_a, M-ID | payloads after HASH)`.
    /// Also the Informational hash (§5.7).
    pub fn hash1(&self, message_id: u32, rest: &[u8]) -> Secret {
        self.hash.prf(&self.skeyid_a, &[&message_id.to_be_bytes(), rest])
    }

    /// RFC 2409 §5.5: `HASH(2) = prf(SKEYID_a, M-ID | Ni_b | payloads after HASH)`.
    pub fn hash2(&self, message_id: u32, ni_b: &[u8], rest: &[u8]) -> Secret {
        self.hash.prf(&self.skeyid_a, &[&message_id.to_be_bytes(), ni_b, rest])
    }

    /// RFC 2409 §5.5: HASH(3) = prf(SKEYID_a, 0 | M-ID | Ni_b | Nr_b).
    pub fn hash3(&self, message_id: u32, ni_b: &[u8], nr_b: &[u8]) -> Secret {
        self.hash.prf(&self.skeyid_a, &[&[0], &message_id.to_be_bytes(), ni_b, nr_b])
    }

    /// RFC 2409 §5.5: KEYMAT for one SA, expanded to `len` bytes:
    /// K1 = prf(SKEYID_d, [g(qm)^xy |] protocol | SPI | Ni_b | Nr_b),
    /// K(n+1) = prf(SKEYID_d, Kn | [g(qm)^xy |] protocol | SPI | Ni_b | Nr_b).
    pub fn keymat(
        &self,
        pfs_gxy: Option<&[u8]>,
        protocol: u8,
        spi: &[u8],
        ni_b: &[u8],
        nr_b: &[u8],
        len: usize,
    ) -> Secret {
        let g = pfs_gxy.unwrap_or(&[]);
        let mut out = Zeroizing::new(Vec::with_capacity(len + self.hash.output_len()));
        let mut k = self.hash.prf(&self.skeyid_d, &[g, &[protocol], spi, ni_b, nr_b]);
        loop {
            out.extend_from_slice(&k);
            if out.len() >= len {
                break;
            }
            k = self.hash.prf(&self.skeyid_d, &[&k, g, &[protocol], spi, ni_b, nr_b]);
        }
        out.truncate(len);
        out
    }
}
