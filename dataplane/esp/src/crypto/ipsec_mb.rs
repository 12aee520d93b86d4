//! The Intel intel-ipsec-mb backend, through the safe `ipsec-mb` crate (feature `ipsec-mb`,
//! x86-64).
//!
//! Sessions hold only their keys (expanded AES keys, GHASH powers, HMAC ipad/opad states),
//! read-only once built. The library's per-thread manager lives in an [`MbRunner`], one per
//! lcore, owned by that lcore: a burst of jobs from any of this backend's sessions becomes one
//! GCM call sequence (the direct API, key per operation) and one AES-CBC + HMAC burst (per-job
//! `enc_keys`/`ipad`/`opad`, so the multi-buffer lanes fill whatever the SA mix), with no lock
//! and no allocation. A session's own `process` (one SA, for tests and the single-packet API)
//! borrows the backend's manager behind a mutex.
//!
//! Supported: AES-GCM-128/192/256 (ICV 16) and AES-CBC-128/192/256 with every HMAC; NULL encryption is
//! [`CryptoError::Unsupported`] (use the pure-Rust backend for it). The engine writes every
//! header and IV byte, so the output is byte-identical to the pure-Rust backend's
//! (`crypto::conformance` checks it).

use super::{
    CipherAlgorithm as C, CryptoBackend, CryptoError, CryptoJob, CryptoParams, CryptoRunner, CryptoSession,
    IntegrityAlgorithm as I, JobStatus, Layout, Operation,
};
use crate::wire::esp::HEADER_LEN as ESP_HEADER_LEN;
use arrayvec::ArrayVec;
use core::any::Any;
use ipsec_mb::{CbcHmacKey, CbcHmacOp, GcmKey, GcmOp, HmacAlg, MbMgr, OpStatus, MAX_BURST};
use std::sync::{Arc, Mutex};
use wipe::WipeBox;

/// The ipsec-mb backend: a manager for the sessions' own single-SA `process`, and the factory
/// of per-lcore [`MbRunner`]s.
#[derive(Debug, Clone)]
pub struct IpsecMbBackend {
    mgr: Arc<Mutex<MbMgr>>,
}

impl IpsecMbBackend {
    /// Allocate and initialise a manager for the best code path of this CPU.
    pub fn new() -> Result<Self, ipsec_mb::Error> {
        Ok(IpsecMbBackend { mgr: Arc::new(Mutex::new(MbMgr::new()?)) })
    }

    /// A runner with a manager of its own, for one lcore.
    pub fn runner(&self) -> Result<MbRunner, ipsec_mb::Error> {
        Ok(MbRunner { mgr: MbMgr::new()? })
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
            C::AesGcm128 | C::AesGcm192 | C::AesGcm256 => {
                let (k, s) = key.split_at(params.cipher.key_len());
                let key = GcmKey::new(&mgr, k).map_err(|_| CryptoError::BadKeyLength)?;
                // The salt goes from the parameters straight into the boxed session: a copy in a
                // local would stay on the stack, where later frames' padding picks it up and
                // carries it into heap blocks freed unwiped (found by espd's freed-memory test).
                let mut gcm =
                    WipeBox::new(MbGcm { mgr: Arc::clone(&self.mgr), key, salt: Salt([0; 4]), layout });
                gcm.salt.0.copy_from_slice(s.get(..4).ok_or(CryptoError::BadKeyLength)?);
                Ok(Box::new(gcm))
            }
            C::AesCbc128 | C::AesCbc192 | C::AesCbc256 => {
                let h = match params.integrity {
                    I::HmacSha1_96 => HmacAlg::Sha1_96,
                    I::HmacSha256_128 => HmacAlg::Sha256_128,
                    I::HmacSha384_192 => HmacAlg::Sha384_192,
                    I::HmacSha512_256 => HmacAlg::Sha512_256,
                    I::None => return Err(CryptoError::BadAlgorithmCombination),
                };
                let key =
                    CbcHmacKey::new(&mgr, key, h, &params.auth_key).map_err(|_| CryptoError::BadKeyLength)?;
                Ok(Box::new(WipeBox::new(MbCbc { mgr: Arc::clone(&self.mgr), key, layout })))
            }
            C::Null => Err(CryptoError::Unsupported),
        }
    }
}

/// RFC 4106 §8.1: the salt is keying material; wiped on drop.
struct Salt([u8; 4]);

impl Drop for Salt {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.0);
    }
}

impl core::fmt::Debug for Salt {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("Salt(..)")
    }
}

#[derive(Debug)]
struct MbGcm {
    mgr: Arc<Mutex<MbMgr>>,
    key: GcmKey,
    salt: Salt,
    layout: Layout,
}

#[derive(Debug)]
struct MbCbc {
    mgr: Arc<Mutex<MbMgr>>,
    key: CbcHmacKey,
    layout: Layout,
}

impl CryptoSession for MbGcm {
    fn layout(&self) -> Layout {
        self.layout
    }

    fn process(&self, op: Operation, jobs: &mut [CryptoJob<'_>]) {
        process_alone(&self.mgr, self, op, jobs);
    }

    fn as_any(&self) -> &dyn Any {
        self
    }

    fn warm_keys(&self, _: Operation) {
        self.key.warm();
    }
}

impl CryptoSession for MbCbc {
    fn layout(&self) -> Layout {
        self.layout
    }

    fn process(&self, op: Operation, jobs: &mut [CryptoJob<'_>]) {
        process_alone(&self.mgr, self, op, jobs);
    }

    fn as_any(&self) -> &dyn Any {
        self
    }

    fn warm_keys(&self, op: Operation) {
        self.key.warm(op == Operation::Seal);
    }
}

/// A session's own `process` (one SA): its jobs through the backend's shared manager.
fn process_alone(mgr: &Mutex<MbMgr>, session: &dyn CryptoSession, op: Operation, jobs: &mut [CryptoJob<'_>]) {
    let Ok(mut mgr) = mgr.lock() else {
        jobs.iter_mut().for_each(|j| j.status = JobStatus::Failed);
        return;
    };
    for chunk in jobs.chunks_mut(MAX_BURST) {
        run_chunk(&mut mgr, op, &|_| Some(session), chunk);
    }
}

/// One lcore's ipsec-mb manager, running bursts that mix this backend's sessions: all GCM jobs
/// through the direct API in one loop (GCM is single-buffer in the library), all CBC + HMAC
/// jobs as one multi-buffer burst. Jobs of other backends' sessions (NULL encryption, which
/// the Rust backend does) run through their own `process`.
#[derive(Debug)]
pub struct MbRunner {
    mgr: MbMgr,
}

impl CryptoRunner for MbRunner {
    fn run(&mut self, op: Operation, sessions: &[&dyn CryptoSession], jobs: &mut [CryptoJob<'_>]) {
        let n = sessions.len().min(jobs.len());
        let (Some(sessions), Some(jobs)) = (sessions.get(..n), jobs.get_mut(..n)) else { return };
        for (k, chunk) in jobs.chunks_mut(MAX_BURST).enumerate() {
            let base = k * MAX_BURST;
            run_chunk(&mut self.mgr, op, &|i| sessions.get(base + i).copied(), chunk);
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

/// This backend's session types, as a burst sorts its jobs.
#[derive(Clone, Copy)]
enum Class<'s> {
    Gcm(&'s MbGcm),
    Cbc(&'s MbCbc),
    /// Another backend's session: runs through its own `process`.
    Foreign(&'s dyn CryptoSession),
}

fn class_of(s: &dyn CryptoSession) -> Class<'_> {
    let any = s.as_any();
    if let Some(g) = any.downcast_ref::<MbGcm>() {
        Class::Gcm(g)
    } else if let Some(c) = any.downcast_ref::<MbCbc>() {
        Class::Cbc(c)
    } else {
        Class::Foreign(s)
    }
}

/// One chunk of at most [`MAX_BURST`] jobs, `session_of(i)` being job `i`'s session: this
/// backend's GCM jobs in one GCM call, its CBC + HMAC jobs in one burst, other sessions' jobs
/// through their own code; every job with a session gets a status. Nothing is allocated: the
/// operations live in fixed-capacity arrays on the stack, filled only as far as used.
fn run_chunk<'s>(
    mgr: &mut MbMgr,
    op: Operation,
    session_of: &dyn Fn(usize) -> Option<&'s dyn CryptoSession>,
    chunk: &mut [CryptoJob<'_>],
) {
    // Nonce and RFC 4106 §5 AAD per GCM job, built before the operations borrow the buffers.
    let mut aads = [[0u8; 12]; MAX_BURST];
    let mut gcm: ArrayVec<GcmOp<'_>, MAX_BURST> = ArrayVec::new();
    let mut gcm_idx: ArrayVec<u8, MAX_BURST> = ArrayVec::new();
    let mut cbc: ArrayVec<CbcHmacOp<'_>, MAX_BURST> = ArrayVec::new();
    let mut cbc_idx: ArrayVec<u8, MAX_BURST> = ArrayVec::new();
    let mut other: ArrayVec<(u8, &'s dyn CryptoSession), MAX_BURST> = ArrayVec::new();
    let mut bad: ArrayVec<u8, MAX_BURST> = ArrayVec::new();
    // Consecutive jobs of one SA are the common case: classify a session once per run.
    let mut last: Option<(&'s dyn CryptoSession, Class<'s>)> = None;
    for ((i, job), aad) in chunk.iter_mut().enumerate().zip(aads.iter_mut()) {
        let Some(s) = session_of(i) else { continue };
        let class = match last {
            Some((l, c))
                if core::ptr::addr_eq(l as *const dyn CryptoSession, s as *const dyn CryptoSession) =>
            {
                c
            }
            _ => class_of(s),
        };
        last = Some((s, class));
        #[allow(clippy::cast_possible_truncation)] // i < MAX_BURST = 64
        let i8 = i as u8;
        match class {
            Class::Gcm(g) => match gcm_op(g, job.esp, job.esn_high, aad) {
                Some(o) => {
                    gcm.push(o);
                    gcm_idx.push(i8);
                }
                None => bad.push(i8),
            },
            Class::Cbc(c) => match cbc_op(c, job.esp, job.esn_high) {
                Some(o) => {
                    cbc.push(o);
                    cbc_idx.push(i8);
                }
                None => bad.push(i8),
            },
            Class::Foreign(f) => other.push((i8, f)),
        }
    }
    let g = match op {
        _ if gcm.is_empty() => None,
        Operation::Seal => Some(mgr.gcm_encrypt_burst(&mut gcm)),
        Operation::Open => Some(mgr.gcm_decrypt_burst(&mut gcm)),
    };
    let c = match op {
        _ if cbc.is_empty() => None,
        Operation::Seal => Some(mgr.cbc_hmac_encrypt_burst(&mut cbc)),
        Operation::Open => Some(mgr.cbc_hmac_decrypt_burst(&mut cbc)),
    };
    drop((gcm, cbc));
    for (idx, r) in [(&gcm_idx, g), (&cbc_idx, c)] {
        for (m, &i) in idx.iter().enumerate() {
            if let Some(job) = chunk.get_mut(usize::from(i)) {
                job.status = match &r {
                    Some(Ok(st)) => status(st.get(m)),
                    _ => JobStatus::Failed,
                };
            }
        }
    }
    for &i in &bad {
        if let Some(job) = chunk.get_mut(usize::from(i)) {
            job.status = JobStatus::BadLength;
        }
    }
    for &(i, s) in &other {
        if let Some(job) = chunk.get_mut(usize::from(i)) {
            s.process(op, core::slice::from_mut(job));
        }
    }
}

/// A GCM operation over an ESP packet (header || IV || data || ICV), or `None` when it is too
/// short for the header, IV and ICV.
fn gcm_op<'a>(
    s: &'a MbGcm,
    esp: &'a mut [u8],
    esn_high: Option<u32>,
    aad: &'a mut [u8; 12],
) -> Option<GcmOp<'a>> {
    let hdr = ESP_HEADER_LEN + 8;
    let data_len = esp.len().checked_sub(hdr + s.layout.icv_len)?;
    let &[s0, s1, s2, s3, q0, q1, q2, q3] = esp.get(..ESP_HEADER_LEN)? else { return None };
    let explicit_iv = esp.get(ESP_HEADER_LEN..hdr)?;
    let len = match esn_high {
        None => {
            *aad = [s0, s1, s2, s3, q0, q1, q2, q3, 0, 0, 0, 0];
            8
        }
        Some(hi) => {
            let [h0, h1, h2, h3] = hi.to_be_bytes();
            *aad = [s0, s1, s2, s3, h0, h1, h2, h3, q0, q1, q2, q3];
            12
        }
    };
    // RFC 4106 §4: nonce = salt || explicit IV.
    let mut iv = [0u8; 12];
    let (ns, ni) = iv.split_at_mut(4);
    ns.copy_from_slice(&s.salt.0);
    ni.copy_from_slice(explicit_iv);
    Some(GcmOp { key: &s.key, iv, aad: aad.get(..len)?, buf: esp, data_offset: hdr, data_len })
}

/// A CBC + HMAC operation over an ESP packet, or `None` when the body is not a non-empty
/// multiple of the block.
fn cbc_op<'a>(s: &'a MbCbc, esp: &'a mut [u8], esn_high: Option<u32>) -> Option<CbcHmacOp<'a>> {
    let hdr = ESP_HEADER_LEN + 16;
    let body = esp.len().checked_sub(hdr + s.layout.icv_len)?;
    if body == 0 || body % 16 != 0 {
        return None;
    }
    let iv: [u8; 16] = esp.get(ESP_HEADER_LEN..hdr)?.try_into().ok()?;
    Some(CbcHmacOp {
        key: &s.key,
        iv,
        buf: esp,
        cipher_offset: hdr,
        cipher_len: body,
        auth_offset: 0,
        auth_len: hdr + body,
        esn_high,
    })
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
