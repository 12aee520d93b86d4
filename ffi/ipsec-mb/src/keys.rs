//! Per-SA key material, precomputed once and zeroized on drop.

use core::mem::{align_of, size_of};

use ipsec_mb_sys as sys;
use zeroize::Zeroize;

use crate::{Arch, Error, MbMgr};

/// AES key size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AesKeySize {
    /// 16-byte key.
    Aes128,
    /// 24-byte key.
    Aes192,
    /// 32-byte key.
    Aes256,
}

impl AesKeySize {
    fn from_len(len: usize) -> Result<Self, Error> {
        match len {
            16 => Ok(AesKeySize::Aes128),
            24 => Ok(AesKeySize::Aes192),
            32 => Ok(AesKeySize::Aes256),
            _ => Err(Error::KeyLength { len }),
        }
    }

    /// Key length in bytes.
    pub fn len(self) -> usize {
        match self {
            AesKeySize::Aes128 => 16,
            AesKeySize::Aes192 => 24,
            AesKeySize::Aes256 => 32,
        }
    }

    /// Always false (an AES key is never empty); pairs with [`Self::len`].
    pub fn is_empty(self) -> bool {
        false
    }
}

/// `struct gcm_key_data` as bytes, with the library's 64-byte alignment.
#[repr(C, align(64))]
struct GcmKeyData([u8; size_of::<sys::gcm_key_data>()]);

const _: () = assert!(align_of::<GcmKeyData>() >= align_of::<sys::gcm_key_data>());
const _: () = assert!(size_of::<GcmKeyData>() == size_of::<sys::gcm_key_data>());

/// An AES-GCM key: the expanded AES key and GHASH key powers
/// (`IMB_AES128_GCM_PRE` / `IMB_AES192_GCM_PRE` / `IMB_AES256_GCM_PRE`), plus the ICV length.
///
/// The 4-byte salt of RFC 4106 is not part of this object: it belongs to the
/// 12-byte nonce the caller builds (salt || explicit IV). The precomputed
/// layout depends on the code path, so a key only works with managers of the
/// [`Arch`] it was made with (checked per operation).
pub struct GcmKey {
    data: Box<GcmKeyData>,
    size: AesKeySize,
    icv_len: u8,
    arch: Arch,
}

impl GcmKey {
    /// Precomputes a GCM key (16, 24 or 32 bytes) with a 16-byte ICV.
    pub fn new(mgr: &MbMgr, key: &[u8]) -> Result<Self, Error> {
        Self::with_icv_len(mgr, key, 16)
    }

    /// Precomputes a GCM key with an ICV of 8, 12 or 16 bytes (RFC 4106 §8).
    pub fn with_icv_len(mgr: &MbMgr, key: &[u8], icv_len: usize) -> Result<Self, Error> {
        let size = AesKeySize::from_len(key.len())?;
        let icv = match icv_len {
            8 | 12 | 16 => icv_len as u8,
            len => return Err(Error::IcvLength { len }),
        };
        let mut data = Box::new(GcmKeyData([0; size_of::<sys::gcm_key_data>()]));
        let out: *mut sys::gcm_key_data = (&mut *data as *mut GcmKeyData).cast();
        // SAFETY: `key` holds exactly the 16, 24 or 32 bytes GCM_PRE reads
        // (`from_len` matched its length to the function called);
        // `out` is a writable, 64-byte aligned region of
        // size_of::<gcm_key_data>() bytes (checked at compile time above).
        unsafe {
            match size {
                AesKeySize::Aes128 => sys::imb_shim_aes128_gcm_pre(mgr.raw(), key.as_ptr().cast(), out),
                AesKeySize::Aes192 => sys::imb_shim_aes192_gcm_pre(mgr.raw(), key.as_ptr().cast(), out),
                AesKeySize::Aes256 => sys::imb_shim_aes256_gcm_pre(mgr.raw(), key.as_ptr().cast(), out),
            }
        }
        Ok(GcmKey { data, size, icv_len: icv, arch: mgr.arch() })
    }

    /// AES key size.
    pub fn key_size(&self) -> AesKeySize {
        self.size
    }

    /// ICV (tag) length in bytes: 8, 12 or 16.
    pub fn icv_len(&self) -> usize {
        usize::from(self.icv_len)
    }

    /// The code path the key was precomputed for.
    pub fn arch(&self) -> Arch {
        self.arch
    }

    pub(crate) fn as_raw(&self) -> *const sys::gcm_key_data {
        (&*self.data as *const GcmKeyData).cast()
    }

    /// Loads what a short message's seal or open reads first into the cache: the round keys
    /// (the first 240 bytes, whose last line also holds the first GHASH key power) and the
    /// last 256 bytes of the GHASH powers (a long message reaches the others as it goes,
    /// where the hardware prefetcher follows).
    #[inline]
    pub fn warm(&self) {
        let all = &self.data.0;
        warm::lines(all, GCM_WARM_HEAD);
        warm::all(all.get(all.len().saturating_sub(GCM_WARM_TAIL)..).unwrap_or(&[]));
    }
}

/// The bytes of a GCM key [`GcmKey::warm`] loads from its start (round keys) and from
/// its end (16 of the GHASH key powers).
const GCM_WARM_HEAD: usize = 16 * 15;
const GCM_WARM_TAIL: usize = 16 * 16;

impl Drop for GcmKey {
    fn drop(&mut self) {
        self.data.0.zeroize();
    }
}

impl core::fmt::Debug for GcmKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("GcmKey")
            .field("size", &self.size)
            .field("icv_len", &self.icv_len)
            .finish_non_exhaustive()
    }
}

/// HMAC algorithm with the ESP truncation of its ICV.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HmacAlg {
    /// HMAC-SHA1-96 (RFC 2404): 12-byte ICV.
    Sha1_96,
    /// HMAC-SHA-256-128 (RFC 4868): 16-byte ICV.
    Sha256_128,
    /// HMAC-SHA-384-192 (RFC 4868): 24-byte ICV.
    Sha384_192,
    /// HMAC-SHA-512-256 (RFC 4868): 32-byte ICV.
    Sha512_256,
}

impl HmacAlg {
    /// ICV length in bytes after truncation.
    pub fn icv_len(self) -> usize {
        match self {
            HmacAlg::Sha1_96 => 12,
            HmacAlg::Sha256_128 => 16,
            HmacAlg::Sha384_192 => 24,
            HmacAlg::Sha512_256 => 32,
        }
    }

    /// Hash block size in bytes.
    pub fn block_len(self) -> usize {
        match self {
            HmacAlg::Sha1_96 | HmacAlg::Sha256_128 => 64,
            HmacAlg::Sha384_192 | HmacAlg::Sha512_256 => 128,
        }
    }

    /// Full digest length in bytes.
    pub fn digest_len(self) -> usize {
        match self {
            HmacAlg::Sha1_96 => 20,
            HmacAlg::Sha256_128 => 32,
            HmacAlg::Sha384_192 => 48,
            HmacAlg::Sha512_256 => 64,
        }
    }

    pub(crate) fn to_sys(self) -> sys::IMB_HASH_ALG {
        match self {
            HmacAlg::Sha1_96 => sys::IMB_HASH_ALG::IMB_AUTH_HMAC_SHA_1,
            HmacAlg::Sha256_128 => sys::IMB_HASH_ALG::IMB_AUTH_HMAC_SHA_256,
            HmacAlg::Sha384_192 => sys::IMB_HASH_ALG::IMB_AUTH_HMAC_SHA_384,
            HmacAlg::Sha512_256 => sys::IMB_HASH_ALG::IMB_AUTH_HMAC_SHA_512,
        }
    }
}

/// Expanded AES schedules (15 round keys each) and the HMAC inner/outer
/// states; 16-byte aligned as the library's key loads want.
#[repr(C, align(16))]
pub(crate) struct CbcHmacKeyData {
    pub(crate) enc: [u8; 16 * 15],
    pub(crate) dec: [u8; 16 * 15],
    pub(crate) ipad: [u8; 64],
    pub(crate) opad: [u8; 64],
}

/// An AES-CBC + HMAC-SHA key pair for ESP: AES-128/192/256 encrypt and
/// decrypt schedules (`IMB_AES_KEYEXP_128/192/256`) and the HMAC precomputes, i.e. the
/// hash state after one block of `K ^ ipad` and of `K ^ opad`
/// (`IMB_SHAx_ONE_BLOCK`), as the job API takes them.
pub struct CbcHmacKey {
    data: Box<CbcHmacKeyData>,
    size: AesKeySize,
    hmac: HmacAlg,
}

impl CbcHmacKey {
    /// Expands `cipher_key` (16, 24 or 32 bytes) and precomputes HMAC for
    /// `auth_key` (any length; longer than a block is hashed first, RFC 2104
    /// §2).
    pub fn new(mgr: &MbMgr, cipher_key: &[u8], hmac: HmacAlg, auth_key: &[u8]) -> Result<Self, Error> {
        let size = AesKeySize::from_len(cipher_key.len())?;
        let mut data =
            Box::new(CbcHmacKeyData { enc: [0; 16 * 15], dec: [0; 16 * 15], ipad: [0; 64], opad: [0; 64] });
        let m = mgr.raw();
        // SAFETY: `cipher_key` holds the 16/24/32 bytes KEYEXP reads
        // (`from_len` matched its length to the function called); `enc` and
        // `dec` are 240 writable, 16-byte aligned bytes each, the size of a
        // 15-round-key schedule (AES-256; AES-192 uses the first 208,
        // AES-128 the first 176).
        unsafe {
            match size {
                AesKeySize::Aes128 => sys::imb_shim_aes_keyexp_128(
                    m,
                    cipher_key.as_ptr().cast(),
                    data.enc.as_mut_ptr().cast(),
                    data.dec.as_mut_ptr().cast(),
                ),
                AesKeySize::Aes192 => sys::imb_shim_aes_keyexp_192(
                    m,
                    cipher_key.as_ptr().cast(),
                    data.enc.as_mut_ptr().cast(),
                    data.dec.as_mut_ptr().cast(),
                ),
                AesKeySize::Aes256 => sys::imb_shim_aes_keyexp_256(
                    m,
                    cipher_key.as_ptr().cast(),
                    data.enc.as_mut_ptr().cast(),
                    data.dec.as_mut_ptr().cast(),
                ),
            }
        }

        // RFC 2104 §2: K is hashed if longer than the block, then zero-padded.
        let block = hmac.block_len();
        let mut k = [0u8; 128];
        if auth_key.len() > block {
            // SAFETY: reads auth_key.len() bytes from a valid slice; writes the
            // digest (at most 64 bytes) into the 128-byte `k`.
            unsafe {
                let (src, len, out) =
                    (auth_key.as_ptr().cast(), auth_key.len() as u64, k.as_mut_ptr().cast());
                match hmac {
                    HmacAlg::Sha1_96 => sys::imb_shim_sha1(m, src, len, out),
                    HmacAlg::Sha256_128 => sys::imb_shim_sha256(m, src, len, out),
                    HmacAlg::Sha384_192 => sys::imb_shim_sha384(m, src, len, out),
                    HmacAlg::Sha512_256 => sys::imb_shim_sha512(m, src, len, out),
                }
            }
        } else if let Some(dst) = k.get_mut(..auth_key.len()) {
            dst.copy_from_slice(auth_key);
        }
        let mut pad = [0u8; 128];
        for (ipad_value, out) in [(0x36u8, &mut data.ipad), (0x5c, &mut data.opad)] {
            for (p, kb) in pad.iter_mut().zip(k.iter()) {
                *p = kb ^ ipad_value;
            }
            // SAFETY: `pad` holds one full block (64 or 128 bytes) for the
            // compression function; `out` has room for the largest state it
            // writes (64 bytes for SHA-384/512) and is 16-byte aligned.
            unsafe {
                let (src, dst) = (pad.as_ptr().cast(), out.as_mut_ptr().cast());
                match hmac {
                    HmacAlg::Sha1_96 => sys::imb_shim_sha1_one_block(m, src, dst),
                    HmacAlg::Sha256_128 => sys::imb_shim_sha256_one_block(m, src, dst),
                    HmacAlg::Sha384_192 => sys::imb_shim_sha384_one_block(m, src, dst),
                    HmacAlg::Sha512_256 => sys::imb_shim_sha512_one_block(m, src, dst),
                }
            }
        }
        k.zeroize();
        pad.zeroize();
        Ok(CbcHmacKey { data, size, hmac })
    }

    /// AES key size.
    pub fn key_size(&self) -> AesKeySize {
        self.size
    }

    /// HMAC algorithm.
    pub fn hmac(&self) -> HmacAlg {
        self.hmac
    }

    /// ICV length in bytes (the truncated HMAC).
    pub fn icv_len(&self) -> usize {
        self.hmac.icv_len()
    }

    pub(crate) fn data(&self) -> &CbcHmacKeyData {
        &self.data
    }
}

impl CbcHmacKey {
    /// Loads what one packet's job reads into the cache: the schedule of its direction and
    /// both HMAC precomputes.
    #[inline]
    pub fn warm(&self, encrypt: bool) {
        let d = &*self.data;
        warm::all(if encrypt { &d.enc } else { &d.dec });
        warm::all(&d.ipad);
        warm::all(&d.opad);
    }
}

impl Drop for CbcHmacKey {
    fn drop(&mut self) {
        self.data.enc.zeroize();
        self.data.dec.zeroize();
        self.data.ipad.zeroize();
        self.data.opad.zeroize();
    }
}

impl core::fmt::Debug for CbcHmacKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("CbcHmacKey")
            .field("size", &self.size)
            .field("hmac", &self.hmac)
            .finish_non_exhaustive()
    }
}
