//! The Intel intel-ipsec-mb backend, through the safe `ipsec-mb` crate (feature `ipsec-mb`,
//! x86-64).
//!
//! One [`IpsecMbBackend`] owns one `MbMgr` (the library's per-thread manager): create one per
//! lcore and build that lcore's SAs with it. Its sessions share the manager behind a mutex
//! that is only ever taken by that lcore (uncontended, once per burst). Each `process` call
//! turns the engine's jobs into `GcmOp` / `CbcHmacOp`s and submits them as one burst, so
//! AES-CBC + HMAC fills the library's multi-buffer lanes.
//!
//! Supported: AES-GCM-128/256 (ICV 16) and AES-CBC-128/256 with every HMAC; NULL encryption is
//! [`CryptoError::Unsupported`] (use the pure-Rust backend for it). The engine writes every
//! header and IV byte, so the output is byte-identical to the pure-Rust backend's
//! (`crypto::conformance` checks it).

use super::{
    CipherAlgorithm as C, CryptoBackend, CryptoError, CryptoJob, CryptoParams, CryptoSession,
    IntegrityAlgorithm as I, JobStatus, Layout, Operation,
};
use crate::wire::esp::HEADER_LEN as ESP_HEADER_LEN;
use ipsec_mb::{CbcHmacKey, CbcHmacOp, GcmKey, GcmOp, HmacAlg, MbMgr, OpStatus};
use std::sync::{Arc, Mutex};

/// The ipsec-mb backend: one library manager, shared by the sessions it creates.
#[derive(Debug, Clone)]
pub struct IpsecMbBackend {
    mgr: Arc<Mutex<MbMgr>>,
}

impl IpsecMbBackend {
    /// Allocate and initialise a manager for the best code path of this CPU.
    pub fn new() -> Result<Self, ipsec_mb::Error> {
        Ok(IpsecMbBackend { mgr: Arc::new(Mutex::new(MbMgr::new()?)) })
    }
}

impl CryptoBackend for IpsecMbBackend {
    fn name(&self) -> &'static str {
        "ipsec-mb"
    }

    fn new_session(&self, params: &CryptoParams) -> Result<Box<dyn CryptoSession>, CryptoError> {
        params.validate()?;
        let layout = params.layout();
        let mgr = self.mgr.lock().map_err(|_| CryptoError::Unsupported)?;
        let key = params.cipher_key.as_slice();
        match params.cipher {
            C::AesGcm128 | C::AesGcm256 => {
                let (k, s) = key.split_at(params.cipher.key_len());
                let mut salt = [0u8; 4];
                salt.copy_from_slice(s);
                let key = GcmKey::new(&mgr, k).map_err(|_| CryptoError::BadKeyLength)?;
                Ok(Box::new(MbGcm { mgr: Arc::clone(&self.mgr), key, salt, layout }))
            }
            C::AesCbc128 | C::AesCbc256 => {
                let h = match params.integrity {
                    I::HmacSha1_96 => HmacAlg::Sha1_96,
                    I::HmacSha256_128 => HmacAlg::Sha256_128,
                    I::HmacSha384_192 => HmacAlg::Sha384_192,
                    I::HmacSha512_256 => HmacAlg::Sha512_256,
                    I::None => return Err(CryptoError::BadAlgorithmCombination),
                };
                let key =
                    CbcHmacKey::new(&mgr, key, h, &params.auth_key).map_err(|_| CryptoError::BadKeyLength)?;
                Ok(Box::new(MbCbc { mgr: Arc::clone(&self.mgr), key, layout }))
            }
            C::Null => Err(CryptoError::Unsupported),
        }
    }
}

fn status(s: Option<OpStatus>) -> JobStatus {
    match s {
        Some(OpStatus::Completed) => JobStatus::Ok,
        Some(OpStatus::AuthFailed) => JobStatus::AuthFailed,
        Some(OpStatus::InvalidArgs) => JobStatus::BadLength,
        _ => JobStatus::Failed,
    }
}

#[derive(Debug)]
struct MbGcm {
    mgr: Arc<Mutex<MbMgr>>,
    key: GcmKey,
    salt: [u8; 4],
    layout: Layout,
}

impl CryptoSession for MbGcm {
    fn layout(&self) -> Layout {
        self.layout
    }

    fn process(&mut self, op: Operation, jobs: &mut [CryptoJob<'_>]) {
        let Ok(mut mgr) = self.mgr.lock() else {
            jobs.iter_mut().for_each(|j| j.status = JobStatus::Failed);
            return;
        };
        let hdr = ESP_HEADER_LEN + 8;
        let icv = self.layout.icv_len;
        for chunk in jobs.chunks_mut(ipsec_mb::MAX_BURST) {
            // Nonce and RFC 4106 §5 AAD per job, built before the ops borrow the buffers.
            let mut aads = [[0u8; 12]; ipsec_mb::MAX_BURST];
            let mut aad_lens = [0usize; ipsec_mb::MAX_BURST];
            let mut ivs = [[0u8; 12]; ipsec_mb::MAX_BURST];
            let mut valid = [false; ipsec_mb::MAX_BURST];
            for (k, job) in chunk.iter_mut().enumerate() {
                let (Some(&[s0, s1, s2, s3, q0, q1, q2, q3]), Some(explicit_iv), true) = (
                    job.esp.get(..ESP_HEADER_LEN),
                    job.esp.get(ESP_HEADER_LEN..hdr),
                    job.esp.len() >= hdr + icv,
                ) else {
                    job.status = JobStatus::BadLength;
                    continue;
                };
                let (Some(aad), Some(len), Some(iv), Some(v)) =
                    (aads.get_mut(k), aad_lens.get_mut(k), ivs.get_mut(k), valid.get_mut(k))
                else {
                    continue;
                };
                (*aad, *len) = match job.esn_high {
                    None => ([s0, s1, s2, s3, q0, q1, q2, q3, 0, 0, 0, 0], 8),
                    Some(hi) => {
                        let [h0, h1, h2, h3] = hi.to_be_bytes();
                        ([s0, s1, s2, s3, h0, h1, h2, h3, q0, q1, q2, q3], 12)
                    }
                };
                iv[..4].copy_from_slice(&self.salt);
                iv[4..].copy_from_slice(explicit_iv);
                *v = true;
            }
            let mut idx = [0usize; ipsec_mb::MAX_BURST];
            let mut n = 0;
            let mut ops: Vec<GcmOp<'_>> = Vec::with_capacity(chunk.len());
            for (k, job) in chunk.iter_mut().enumerate() {
                let (Some(true), Some(aad), Some(&len), Some(iv), Some(x)) =
                    (valid.get(k).copied(), aads.get(k), aad_lens.get(k), ivs.get(k), idx.get_mut(n))
                else {
                    continue;
                };
                *x = k;
                n += 1;
                let data_len = job.esp.len() - hdr - icv;
                ops.push(GcmOp {
                    key: &self.key,
                    iv: *iv,
                    aad: aad.get(..len).unwrap_or(&[]),
                    buf: &mut *job.esp,
                    data_offset: hdr,
                    data_len,
                });
            }
            let r = match op {
                Operation::Seal => mgr.gcm_encrypt_burst(&mut ops),
                Operation::Open => mgr.gcm_decrypt_burst(&mut ops),
            };
            drop(ops);
            for (m, &k) in idx.iter().enumerate().take(n) {
                if let Some(job) = chunk.get_mut(k) {
                    job.status = match &r {
                        Ok(st) => status(st.get(m)),
                        Err(_) => JobStatus::Failed,
                    };
                }
            }
        }
    }
}

#[derive(Debug)]
struct MbCbc {
    mgr: Arc<Mutex<MbMgr>>,
    key: CbcHmacKey,
    layout: Layout,
}

impl CryptoSession for MbCbc {
    fn layout(&self) -> Layout {
        self.layout
    }

    fn process(&mut self, op: Operation, jobs: &mut [CryptoJob<'_>]) {
        let Ok(mut mgr) = self.mgr.lock() else {
            jobs.iter_mut().for_each(|j| j.status = JobStatus::Failed);
            return;
        };
        let hdr = ESP_HEADER_LEN + 16;
        let icv = self.layout.icv_len;
        for chunk in jobs.chunks_mut(ipsec_mb::MAX_BURST) {
            let mut idx = [0usize; ipsec_mb::MAX_BURST];
            let mut n = 0;
            let mut ops: Vec<CbcHmacOp<'_>> = Vec::with_capacity(chunk.len());
            for (k, job) in chunk.iter_mut().enumerate() {
                let body = job.esp.len().checked_sub(hdr + icv);
                let (Some(body), Some(ivb)) = (body, job.esp.get(ESP_HEADER_LEN..hdr)) else {
                    job.status = JobStatus::BadLength;
                    continue;
                };
                if body == 0 || body % 16 != 0 {
                    job.status = JobStatus::BadLength;
                    continue;
                }
                let mut iv = [0u8; 16];
                iv.copy_from_slice(ivb);
                let Some(x) = idx.get_mut(n) else { continue };
                *x = k;
                n += 1;
                let esn_high = job.esn_high;
                ops.push(CbcHmacOp {
                    key: &self.key,
                    iv,
                    buf: &mut *job.esp,
                    cipher_offset: hdr,
                    cipher_len: body,
                    auth_offset: 0,
                    auth_len: hdr + body,
                    esn_high,
                });
            }
            let r = match op {
                Operation::Seal => mgr.cbc_hmac_encrypt_burst(&mut ops),
                Operation::Open => mgr.cbc_hmac_decrypt_burst(&mut ops),
            };
            drop(ops);
            for (m, &k) in idx.iter().enumerate().take(n) {
                if let Some(job) = chunk.get_mut(k) {
                    job.status = match &r {
                        Ok(st) => status(st.get(m)),
                        Err(_) => JobStatus::Failed,
                    };
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conforms_to_the_reference_backend() {
        let b = IpsecMbBackend::new().unwrap();
        // Everything but the three NULL-encryption combinations.
        assert_eq!(
            super::super::conformance::check_backend(&b),
            Ok(super::super::conformance::ALGORITHMS.len() - 3)
        );
    }
}
