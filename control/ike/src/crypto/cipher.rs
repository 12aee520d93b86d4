//! AES-CBC without padding (RFC 2409 §5.3 pads at the ISAKMP layer).

use super::CryptoError;
use aes::cipher::{block_padding::NoPadding, BlockDecryptMut, BlockEncryptMut, KeyIvInit};

/// AES block length.
pub const AES_BLOCK: usize = 16;

/// Phase-1 cipher: AES-CBC with a 128, 192 or 256-bit key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Cipher {
    /// AES-128-CBC.
    Aes128Cbc,
    /// AES-192-CBC.
    Aes192Cbc,
    /// AES-256-CBC.
    Aes256Cbc,
}

impl Cipher {
    /// From a key length in bits.
    pub fn aes_cbc(key_bits: u16) -> Option<Self> {
        match key_bits {
            128 => Some(Self::Aes128Cbc),
            192 => Some(Self::Aes192Cbc),
            256 => Some(Self::Aes256Cbc),
            _ => None,
        }
    }

    /// Key length in bytes.
    pub fn key_len(self) -> usize {
        match self {
            Self::Aes128Cbc => 16,
            Self::Aes192Cbc => 24,
            Self::Aes256Cbc => 32,
        }
    }

    /// Key length in bits.
    pub fn key_bits(self) -> u16 {
        match self {
            Self::Aes128Cbc => 128,
            Self::Aes192Cbc => 192,
            Self::Aes256Cbc => 256,
        }
    }

    /// Block length in bytes.
    pub fn block_len(self) -> usize {
        AES_BLOCK
    }

    /// Encrypts `data` (a whole number of blocks) in place.
    pub fn encrypt(self, key: &[u8], iv: &[u8], data: &mut [u8]) -> Result<(), CryptoError> {
        if !data.len().is_multiple_of(AES_BLOCK) {
            return Err(CryptoError::InvalidLength);
        }
        let len = data.len();
        let r = self.encrypt_inner(key, iv, data, len);
        wipe_stack();
        r
    }

    #[inline(never)]
    fn encrypt_inner(self, key: &[u8], iv: &[u8], data: &mut [u8], len: usize) -> Result<(), CryptoError> {
        let r = match self {
            Self::Aes128Cbc => cbc::Encryptor::<aes::Aes128>::new_from_slices(key, iv)
                .map(|c| c.encrypt_padded_mut::<NoPadding>(data, len).map(|_| ())),
            Self::Aes192Cbc => cbc::Encryptor::<aes::Aes192>::new_from_slices(key, iv)
                .map(|c| c.encrypt_padded_mut::<NoPadding>(data, len).map(|_| ())),
            Self::Aes256Cbc => cbc::Encryptor::<aes::Aes256>::new_from_slices(key, iv)
                .map(|c| c.encrypt_padded_mut::<NoPadding>(data, len).map(|_| ())),
        };
        match r {
            Ok(Ok(())) => Ok(()),
            _ => Err(CryptoError::InvalidLength),
        }
    }

    /// Decrypts `data` (a whole number of blocks) in place.
    pub fn decrypt(self, key: &[u8], iv: &[u8], data: &mut [u8]) -> Result<(), CryptoError> {
        if !data.len().is_multiple_of(AES_BLOCK) || data.is_empty() {
            return Err(CryptoError::InvalidLength);
        }
        let r = self.decrypt_inner(key, iv, data);
        wipe_stack();
        r
    }

    #[inline(never)]
    fn decrypt_inner(self, key: &[u8], iv: &[u8], data: &mut [u8]) -> Result<(), CryptoError> {
        let r = match self {
            Self::Aes128Cbc => cbc::Decryptor::<aes::Aes128>::new_from_slices(key, iv)
                .map(|c| c.decrypt_padded_mut::<NoPadding>(data).map(|_| ())),
            Self::Aes192Cbc => cbc::Decryptor::<aes::Aes192>::new_from_slices(key, iv)
                .map(|c| c.decrypt_padded_mut::<NoPadding>(data).map(|_| ())),
            Self::Aes256Cbc => cbc::Decryptor::<aes::Aes256>::new_from_slices(key, iv)
                .map(|c| c.decrypt_padded_mut::<NoPadding>(data).map(|_| ())),
        };
        match r {
            Ok(Ok(())) => Ok(()),
            _ => Err(CryptoError::InvalidLength),
        }
    }
}

/// Overwrites the stack below the caller's frame, where the cipher ran. The AES key
/// schedule (whose first round keys are the key itself) is returned by value from the
/// `cbc` constructors and moved on the way: copies of it stay in dead stack frames, and a
/// later value built there can carry those bytes into the heap through its padding or an
/// enum's unused space. libsodium's `sodium_stackzero` does the same after its own
/// primitives. The 4 KiB cover the cipher's frames many times over.
#[inline(never)]
fn wipe_stack() {
    let mut scratch = [0u8; 4096];
    zeroize::Zeroize::zeroize(&mut scratch[..]);
    core::hint::black_box(&scratch);
}
