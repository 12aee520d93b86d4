//! Test helpers: hex, a deterministic PRNG and RustCrypto reference
//! implementations to compare the library against.
#![allow(dead_code)]

use aes::cipher::{block_padding::NoPadding, BlockDecryptMut, BlockEncryptMut, KeyIvInit};
use aes_gcm::{aead::consts::U12, aead::AeadInPlace, Aes128Gcm, Aes256Gcm, AesGcm, KeyInit};
use hmac::{Hmac, Mac};
use ipsec_mb::{HmacAlg, MbMgr, SubmitMode};

pub fn hex(s: &str) -> Vec<u8> {
    let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    assert!(s.len() & 1 == 0, "odd hex length");
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex")).collect()
}

/// Managers in every submit mode, so every test covers every path.
pub fn managers() -> Vec<MbMgr> {
    [SubmitMode::Auto, SubmitMode::Burst, SubmitMode::Job]
        .into_iter()
        .map(|mode| {
            let mut m = MbMgr::new().expect("MbMgr::new");
            m.set_submit_mode(mode);
            m
        })
        .collect()
}

/// xorshift64*: deterministic test data.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed | 1)
    }
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next_u64() as u8).collect()
    }
}

/// RustCrypto AES-GCM: (ciphertext, full 16-byte tag).
pub fn ref_gcm_seal(key: &[u8], iv: &[u8; 12], aad: &[u8], pt: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let mut buf = pt.to_vec();
    let tag = match key.len() {
        16 => Aes128Gcm::new_from_slice(key)
            .unwrap()
            .encrypt_in_place_detached(iv.into(), aad, &mut buf)
            .unwrap()
            .to_vec(),
        24 => AesGcm::<aes::Aes192, U12>::new_from_slice(key)
            .unwrap()
            .encrypt_in_place_detached(iv.into(), aad, &mut buf)
            .unwrap()
            .to_vec(),
        32 => Aes256Gcm::new_from_slice(key)
            .unwrap()
            .encrypt_in_place_detached(iv.into(), aad, &mut buf)
            .unwrap()
            .to_vec(),
        n => panic!("key length {n}"),
    };
    (buf, tag)
}

/// RustCrypto AES-CBC encrypt (no padding: the length is a multiple of 16).
pub fn ref_cbc_encrypt(key: &[u8], iv: &[u8; 16], data: &mut [u8]) {
    let n = data.len();
    match key.len() {
        16 => {
            cbc::Encryptor::<aes::Aes128>::new_from_slices(key, iv)
                .unwrap()
                .encrypt_padded_mut::<NoPadding>(data, n)
                .unwrap();
        }
        24 => {
            cbc::Encryptor::<aes::Aes192>::new_from_slices(key, iv)
                .unwrap()
                .encrypt_padded_mut::<NoPadding>(data, n)
                .unwrap();
        }
        32 => {
            cbc::Encryptor::<aes::Aes256>::new_from_slices(key, iv)
                .unwrap()
                .encrypt_padded_mut::<NoPadding>(data, n)
                .unwrap();
        }
        k => panic!("key length {k}"),
    }
}

/// RustCrypto AES-CBC decrypt.
pub fn ref_cbc_decrypt(key: &[u8], iv: &[u8; 16], data: &mut [u8]) {
    match key.len() {
        16 => {
            cbc::Decryptor::<aes::Aes128>::new_from_slices(key, iv)
                .unwrap()
                .decrypt_padded_mut::<NoPadding>(data)
                .unwrap();
        }
        24 => {
            cbc::Decryptor::<aes::Aes192>::new_from_slices(key, iv)
                .unwrap()
                .decrypt_padded_mut::<NoPadding>(data)
                .unwrap();
        }
        32 => {
            cbc::Decryptor::<aes::Aes256>::new_from_slices(key, iv)
                .unwrap()
                .decrypt_padded_mut::<NoPadding>(data)
                .unwrap();
        }
        k => panic!("key length {k}"),
    }
}

/// RustCrypto HMAC over `msg`, truncated to the ESP ICV length.
pub fn ref_hmac(alg: HmacAlg, key: &[u8], msg: &[u8]) -> Vec<u8> {
    let full = match alg {
        HmacAlg::Sha1_96 => {
            let mut m = <Hmac<sha1::Sha1> as Mac>::new_from_slice(key).unwrap();
            m.update(msg);
            m.finalize().into_bytes().to_vec()
        }
        HmacAlg::Sha256_128 => {
            let mut m = <Hmac<sha2::Sha256> as Mac>::new_from_slice(key).unwrap();
            m.update(msg);
            m.finalize().into_bytes().to_vec()
        }
        HmacAlg::Sha384_192 => {
            let mut m = <Hmac<sha2::Sha384> as Mac>::new_from_slice(key).unwrap();
            m.update(msg);
            m.finalize().into_bytes().to_vec()
        }
        HmacAlg::Sha512_256 => {
            let mut m = <Hmac<sha2::Sha512> as Mac>::new_from_slice(key).unwrap();
            m.update(msg);
            m.finalize().into_bytes().to_vec()
        }
    };
    full[..alg.icv_len()].to_vec()
}

pub const ALL_HMACS: [HmacAlg; 4] =
    [HmacAlg::Sha1_96, HmacAlg::Sha256_128, HmacAlg::Sha384_192, HmacAlg::Sha512_256];

/// An ESP-shaped packet for CBC + HMAC: header (8) || IV (16) || payload
/// (multiple of 16) || ICV slot. Returns (packet, cipher_offset, cipher_len,
/// auth_len).
pub fn esp_cbc_packet(
    spi: u32,
    seq: u32,
    iv: &[u8; 16],
    payload: &[u8],
    icv_len: usize,
) -> (Vec<u8>, usize, usize, usize) {
    assert!(payload.len() & 15 == 0);
    let mut p = Vec::new();
    p.extend_from_slice(&spi.to_be_bytes());
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(iv);
    p.extend_from_slice(payload);
    let auth_len = p.len();
    p.resize(auth_len + icv_len, 0);
    (p, 24, payload.len(), auth_len)
}

/// The reference result for [`esp_cbc_packet`]: the whole packet with the
/// ciphertext and the ICV over header || IV || ciphertext (|| ESN-high).
pub fn ref_esp_cbc(
    aes_key: &[u8],
    alg: HmacAlg,
    auth_key: &[u8],
    packet: &[u8],
    cipher_len: usize,
    esn_high: Option<u32>,
) -> Vec<u8> {
    let mut p = packet.to_vec();
    let iv: [u8; 16] = p[8..24].try_into().unwrap();
    ref_cbc_encrypt(aes_key, &iv, &mut p[24..24 + cipher_len]);
    let auth_len = 24 + cipher_len;
    let mut msg = p[..auth_len].to_vec();
    if let Some(hi) = esn_high {
        msg.extend_from_slice(&hi.to_be_bytes());
    }
    let icv = ref_hmac(alg, auth_key, &msg);
    p[auth_len..auth_len + alg.icv_len()].copy_from_slice(&icv);
    p
}
