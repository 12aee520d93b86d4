//! One-shot helpers over the direct (synchronous, single-buffer) AES-GCM API
//! and single-operation wrappers of the burst API, for tests and slow paths.

use subtle::ConstantTimeEq;

use ipsec_mb_sys as sys;

use crate::burst::{CbcHmacOp, GcmOp, OpStatus};
use crate::keys::AesKeySize;
use crate::{GcmKey, MbMgr};

impl MbMgr {
    /// AES-GCM encrypt `data` in place with the direct API
    /// (`IMB_AESxxx_GCM_ENC`), writing a tag of `tag.len()` bytes (8, 12 or
    /// 16). Returns false (and does nothing) for another tag length or a key
    /// made for another code path.
    #[must_use]
    pub fn gcm_seal(
        &mut self,
        key: &GcmKey,
        iv: &[u8; 12],
        aad: &[u8],
        data: &mut [u8],
        tag: &mut [u8],
    ) -> bool {
        if !matches!(tag.len(), 8 | 12 | 16) || key.arch() != self.arch() {
            return false;
        }
        let mut ctx = sys::gcm_context_data::default();
        let (p, len) = (data.as_mut_ptr(), data.len() as u64);
        // SAFETY: in-place operation over `data` (dst == src is allowed);
        // `iv` is 12 bytes; `aad` and `tag` are valid for their lengths; the
        // key was precomputed for this manager's code path; synchronous call.
        unsafe {
            let f = match key.key_size() {
                AesKeySize::Aes128 => sys::imb_shim_aes128_gcm_enc,
                AesKeySize::Aes192 => sys::imb_shim_aes192_gcm_enc,
                AesKeySize::Aes256 => sys::imb_shim_aes256_gcm_enc,
            };
            f(
                self.raw(),
                key.as_raw(),
                &mut ctx,
                p,
                p,
                len,
                iv.as_ptr(),
                aad.as_ptr(),
                aad.len() as u64,
                tag.as_mut_ptr(),
                tag.len() as u64,
            );
        }
        true
    }

    /// AES-GCM decrypt `data` in place with the direct API and verify `tag`
    /// (8, 12 or 16 bytes) in constant time. On false, `data` holds
    /// unauthenticated output and must be discarded.
    #[must_use]
    pub fn gcm_open(&mut self, key: &GcmKey, iv: &[u8; 12], aad: &[u8], data: &mut [u8], tag: &[u8]) -> bool {
        if !matches!(tag.len(), 8 | 12 | 16) || key.arch() != self.arch() {
            return false;
        }
        let mut ctx = sys::gcm_context_data::default();
        let mut computed = [0u8; 16];
        let (p, len) = (data.as_mut_ptr(), data.len() as u64);
        // SAFETY: as in gcm_seal; `computed` has room for up to 16 bytes.
        unsafe {
            let f = match key.key_size() {
                AesKeySize::Aes128 => sys::imb_shim_aes128_gcm_dec,
                AesKeySize::Aes192 => sys::imb_shim_aes192_gcm_dec,
                AesKeySize::Aes256 => sys::imb_shim_aes256_gcm_dec,
            };
            f(
                self.raw(),
                key.as_raw(),
                &mut ctx,
                p,
                p,
                len,
                iv.as_ptr(),
                aad.as_ptr(),
                aad.len() as u64,
                computed.as_mut_ptr(),
                tag.len() as u64,
            );
        }
        computed.get(..tag.len()).is_some_and(|c| bool::from(c.ct_eq(tag)))
    }

    /// One GCM encryption through the burst path.
    #[must_use]
    pub fn gcm_encrypt_one(&mut self, op: GcmOp<'_>) -> OpStatus {
        one(self.gcm_encrypt_burst(&mut [op]))
    }

    /// One GCM decryption through the burst path.
    #[must_use]
    pub fn gcm_decrypt_one(&mut self, op: GcmOp<'_>) -> OpStatus {
        one(self.gcm_decrypt_burst(&mut [op]))
    }

    /// One CBC + HMAC encryption through the burst path.
    #[must_use]
    pub fn cbc_hmac_encrypt_one(&mut self, op: CbcHmacOp<'_>) -> OpStatus {
        one(self.cbc_hmac_encrypt_burst(&mut [op]))
    }

    /// One HMAC verification + CBC decryption through the burst path.
    #[must_use]
    pub fn cbc_hmac_decrypt_one(&mut self, op: CbcHmacOp<'_>) -> OpStatus {
        one(self.cbc_hmac_decrypt_burst(&mut [op]))
    }
}

fn one(r: Result<crate::BurstStatus, crate::Error>) -> OpStatus {
    r.ok().and_then(|s| s.get(0)).unwrap_or(OpStatus::EngineError)
}
