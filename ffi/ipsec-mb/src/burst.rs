//! The burst API: AES-GCM and AES-CBC + HMAC over caller slices through the
//! multi-buffer job queue.
//!
//! Safety argument (see also the crate docs): jobs carry raw pointers into
//! the operations' slices, the key objects and the manager's scratch. All of
//! them are borrowed for the whole call, and [`run`] empties the job queue
//! before returning (normally, or by the [`Drain`] guard on unwind), so no
//! pointer held by the library outlives what it points into.

use core::ffi::c_void;
use core::ptr;

use ipsec_mb_sys as sys;
use subtle::ConstantTimeEq;

use crate::keys::AesKeySize;
use crate::mgr::{JobScratch, SubmitMode};
use crate::{CbcHmacKey, Error, GcmKey, MbMgr, MAX_BURST};

/// Result of one operation of a burst.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum OpStatus {
    /// Done: encrypted with the ICV written, or decrypted with the ICV
    /// verified.
    Completed = 0,
    /// Decrypt only: the ICV did not match. The buffer holds unauthenticated
    /// output and must be dropped.
    AuthFailed = 1,
    /// Rejected before submission (ranges outside the buffer, CBC length not
    /// a multiple of 16, key from another code path) or by the library's own
    /// job check. Nothing was written.
    InvalidArgs = 2,
    /// The library reported an error for the job.
    EngineError = 3,
}

/// Per-operation statuses of one burst, in the order of the operations.
#[derive(Clone, Copy)]
#[must_use]
pub struct BurstStatus {
    len: u8,
    status: [OpStatus; MAX_BURST],
}

impl BurstStatus {
    fn new(len: usize) -> Self {
        debug_assert!(len <= MAX_BURST);
        BurstStatus { len: len as u8, status: [OpStatus::EngineError; MAX_BURST] }
    }

    fn set(&mut self, i: usize, s: OpStatus) {
        if let Some(slot) = self.status.get_mut(i) {
            *slot = s;
        }
    }

    /// Statuses, one per operation.
    pub fn as_slice(&self) -> &[OpStatus] {
        self.status.get(..usize::from(self.len)).unwrap_or(&[])
    }

    /// Status of operation `i`.
    pub fn get(&self, i: usize) -> Option<OpStatus> {
        self.as_slice().get(i).copied()
    }

    /// Number of operations.
    pub fn len(&self) -> usize {
        usize::from(self.len)
    }

    /// True for an empty burst.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Number of operations that completed.
    pub fn completed(&self) -> usize {
        self.as_slice().iter().filter(|s| **s == OpStatus::Completed).count()
    }

    /// True when every operation completed.
    pub fn all_completed(&self) -> bool {
        self.as_slice().iter().all(|s| *s == OpStatus::Completed)
    }
}

impl core::fmt::Debug for BurstStatus {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_list().entries(self.as_slice()).finish()
    }
}

/// One AES-GCM operation, in place.
///
/// Layout in `buf`: the data (plaintext or ciphertext) is
/// `buf[data_offset..data_offset + data_len]` and the ICV follows it
/// immediately, `key.icv_len()` bytes, as in an ESP packet (RFC 4106 §3). On
/// encrypt the ICV is written there; on decrypt it is read from there.
#[derive(Debug)]
pub struct GcmOp<'a> {
    /// The SA's key.
    pub key: &'a GcmKey,
    /// Nonce: salt (4 bytes, from the SA) || explicit IV (8 bytes) (RFC 4106 §4).
    pub iv: [u8; 12],
    /// Additional authenticated data: SPI || sequence number (8 bytes), or
    /// SPI || ESN high || ESN low (12 bytes) (RFC 4106 §5). Any length works.
    pub aad: &'a [u8],
    /// The packet (or any buffer) holding data and ICV.
    pub buf: &'a mut [u8],
    /// Start of the data in `buf`.
    pub data_offset: usize,
    /// Length of the data (any length, 0 included).
    pub data_len: usize,
}

/// One AES-CBC + HMAC operation, in place.
///
/// Layout in `buf`: the cipher region is
/// `buf[cipher_offset..cipher_offset + cipher_len]` (a multiple of 16, not
/// empty); the authenticated region is `buf[auth_offset..auth_offset +
/// auth_len]` (for ESP: header, IV and ciphertext) and must end at or after
/// the cipher region; the ICV (`key.icv_len()` bytes) follows the
/// authenticated region immediately (RFC 4303 §2).
///
/// Encrypt is cipher-then-hash and writes the ICV; decrypt is
/// hash-then-cipher and verifies it in constant time.
///
/// With `esn_high`, the ICV covers the authenticated region followed by the
/// 4 high-order bytes of the extended sequence number, which are not
/// transmitted (RFC 4303 §2.2.1, RFC 4304). They are written, big endian, in
/// place of the first 4 bytes of the ICV slot for the duration of the hash
/// (where DPDK's librte_ipsec also puts them, between trailer and ICV), and
/// the slot is restored (decrypt) or overwritten with the ICV (encrypt)
/// before the call returns, so no tailroom beyond the ICV is needed.
#[derive(Debug)]
pub struct CbcHmacOp<'a> {
    /// The SA's keys.
    pub key: &'a CbcHmacKey,
    /// The CBC IV (for ESP, a copy of the IV carried in the packet).
    pub iv: [u8; 16],
    /// The packet (or any buffer).
    pub buf: &'a mut [u8],
    /// Start of the cipher region in `buf`.
    pub cipher_offset: usize,
    /// Length of the cipher region: a non-zero multiple of 16.
    pub cipher_len: usize,
    /// Start of the authenticated region in `buf`.
    pub auth_offset: usize,
    /// Length of the authenticated region.
    pub auth_len: usize,
    /// High 32 bits of the ESN, when the SA uses ESN.
    pub esn_high: Option<u32>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dir {
    Encrypt,
    Decrypt,
}

/// What the engine needs from an operation type.
pub(crate) trait Op {
    /// Checks every range and length against the buffer; true when the
    /// operation may be handed to the library.
    fn validate(&self, mgr: &MbMgr) -> bool;

    /// Prepares the buffer and scratch (ESN-high, saved ICV, IV copy) and
    /// fills `job` completely.
    ///
    /// # Safety
    /// `job` must be a job slot obtained from the manager and not yet
    /// submitted; `scratch` must be valid for writes and stay untouched by
    /// anything but the library until [`Op::retire`] for this operation.
    /// `validate` must have returned true. After the call, `self.buf`, the
    /// key and `*scratch` must stay alive and unmoved until the job completes.
    unsafe fn fill(&mut self, dir: Dir, job: *mut sys::IMB_JOB, scratch: *mut JobScratch, index: usize);

    /// Processes the operation synchronously with the library's direct API
    /// when it has one worth using (GCM); returns None otherwise, having done
    /// nothing. Writes the computed tag into `scratch.digest`.
    ///
    /// # Safety
    /// `m` must be a live, initialised manager and `validate` must have
    /// returned true for this operation.
    unsafe fn direct(
        &mut self,
        _m: *mut sys::IMB_MGR,
        _dir: Dir,
        _scratch: &mut JobScratch,
    ) -> Option<sys::IMB_STATUS> {
        None
    }

    /// Finishes a completed job: copies or checks the ICV, restores the ICV
    /// slot, and returns the operation's status.
    fn retire(&mut self, dir: Dir, status: sys::IMB_STATUS, scratch: &JobScratch) -> OpStatus;
}

fn end(offset: usize, len: usize) -> Option<usize> {
    offset.checked_add(len)
}

impl Op for GcmOp<'_> {
    unsafe fn direct(
        &mut self,
        m: *mut sys::IMB_MGR,
        dir: Dir,
        scratch: &mut JobScratch,
    ) -> Option<sys::IMB_STATUS> {
        let mut ctx = sys::gcm_context_data::default();
        let p = self.buf.as_mut_ptr().wrapping_add(self.data_offset);
        let f = match (self.key.key_size(), dir) {
            (AesKeySize::Aes128, Dir::Encrypt) => sys::imb_shim_aes128_gcm_enc,
            (AesKeySize::Aes128, Dir::Decrypt) => sys::imb_shim_aes128_gcm_dec,
            (AesKeySize::Aes192, Dir::Encrypt) => sys::imb_shim_aes192_gcm_enc,
            (AesKeySize::Aes192, Dir::Decrypt) => sys::imb_shim_aes192_gcm_dec,
            (AesKeySize::Aes256, Dir::Encrypt) => sys::imb_shim_aes256_gcm_enc,
            (AesKeySize::Aes256, Dir::Decrypt) => sys::imb_shim_aes256_gcm_dec,
        };
        // SAFETY: `m` is live (caller); validate() checked (caller) that
        // data_offset + data_len (+ ICV) lies inside `buf`, so `p` is valid for data_len bytes, in place (the
        // library allows dst == src); the IV is 12 bytes; the AAD slice and
        // the 64-byte digest (tag length <= 16) are valid; the key was
        // precomputed for this manager's code path (validate() checked the
        // arch). The call is synchronous: nothing is kept after it returns.
        unsafe {
            f(
                m,
                self.key.as_raw(),
                &mut ctx,
                p,
                p,
                self.data_len as u64,
                self.iv.as_ptr(),
                self.aad.as_ptr(),
                self.aad.len() as u64,
                scratch.digest.as_mut_ptr(),
                self.key.icv_len() as u64,
            )
        };
        Some(sys::IMB_STATUS::IMB_STATUS_COMPLETED)
    }

    fn validate(&self, mgr: &MbMgr) -> bool {
        let Some(data_end) = end(self.data_offset, self.data_len) else { return false };
        let Some(icv_end) = end(data_end, self.key.icv_len()) else { return false };
        icv_end <= self.buf.len() && self.key.arch() == mgr.arch()
    }

    unsafe fn fill(&mut self, dir: Dir, job: *mut sys::IMB_JOB, scratch: *mut JobScratch, index: usize) {
        // SAFETY: the caller guarantees `scratch` is valid for writes and not
        // otherwise referenced.
        let s = unsafe { &mut *scratch };
        if let Some(iv) = s.iv.get_mut(..12) {
            iv.copy_from_slice(&self.iv);
        }
        let base = self.buf.as_mut_ptr();
        let (enc, chain) = match dir {
            Dir::Encrypt => {
                (sys::IMB_CIPHER_DIRECTION::IMB_DIR_ENCRYPT, sys::IMB_CHAIN_ORDER::IMB_ORDER_CIPHER_HASH)
            }
            Dir::Decrypt => {
                (sys::IMB_CIPHER_DIRECTION::IMB_DIR_DECRYPT, sys::IMB_CHAIN_ORDER::IMB_ORDER_HASH_CIPHER)
            }
        };
        let key = self.key.as_raw().cast::<c_void>();
        let j = sys::IMB_JOB {
            enc_keys: key,
            dec_keys: key,
            key_len_in_bytes: self.key.key_size().len() as u64,
            __bindgen_anon_1: sys::IMB_JOB__bindgen_ty_1 { src: base },
            // In range: validate() checked
            // data_offset + data_len + icv_len <= buf.len().
            __bindgen_anon_2: sys::IMB_JOB__bindgen_ty_2 { dst: base.wrapping_add(self.data_offset) },
            __bindgen_anon_3: sys::IMB_JOB__bindgen_ty_3 {
                cipher_start_src_offset_in_bytes: self.data_offset as u64,
            },
            __bindgen_anon_4: sys::IMB_JOB__bindgen_ty_4 { msg_len_to_cipher_in_bytes: self.data_len as u64 },
            hash_start_src_offset_in_bytes: self.data_offset as u64,
            __bindgen_anon_5: sys::IMB_JOB__bindgen_ty_5 { msg_len_to_hash_in_bytes: self.data_len as u64 },
            iv: s.iv.as_ptr(),
            iv_len_in_bytes: 12,
            auth_tag_output: s.digest.as_mut_ptr(),
            auth_tag_output_len_in_bytes: self.key.icv_len() as u64,
            u: sys::IMB_JOB__bindgen_ty_6 {
                GCM: sys::IMB_JOB__bindgen_ty_6__AES_GCM_specific_fields {
                    aad: self.aad.as_ptr().cast(),
                    aad_len_in_bytes: self.aad.len() as u64,
                    ctx: ptr::null_mut(),
                },
            },
            status: sys::IMB_STATUS::IMB_STATUS_BEING_PROCESSED,
            cipher_mode: sys::IMB_CIPHER_MODE::IMB_CIPHER_GCM,
            cipher_direction: enc,
            hash_alg: sys::IMB_HASH_ALG::IMB_AUTH_AES_GMAC,
            chain_order: chain,
            user_data: index as *mut c_void,
            user_data2: ptr::null_mut(),
            cipher_func: None,
            hash_func: None,
            sgl_state: sys::IMB_SGL_STATE::IMB_SGL_ALL,
            cipher_fields: sys::IMB_JOB__bindgen_ty_7 {
                CBCS: sys::IMB_JOB__bindgen_ty_7__CBCS_specific_fields { next_iv: ptr::null_mut() },
            },
        };
        // SAFETY: the caller guarantees `job` is a valid, unsubmitted slot.
        unsafe { ptr::write(job, j) };
    }

    fn retire(&mut self, dir: Dir, status: sys::IMB_STATUS, scratch: &JobScratch) -> OpStatus {
        if status != sys::IMB_STATUS::IMB_STATUS_COMPLETED {
            return engine_status(status);
        }
        let icv = self.key.icv_len();
        let data_end = self.data_offset + self.data_len;
        let (Some(slot), Some(computed)) =
            (self.buf.get_mut(data_end..data_end + icv), scratch.digest.get(..icv))
        else {
            return OpStatus::EngineError;
        };
        match dir {
            Dir::Encrypt => {
                slot.copy_from_slice(computed);
                OpStatus::Completed
            }
            // RFC 4106 §3 / RFC 4303 §3.4.4.1: compare the ICV in constant time.
            Dir::Decrypt => verdict(icv_ct_eq(computed, slot)),
        }
    }
}

impl Op for CbcHmacOp<'_> {
    fn validate(&self, _mgr: &MbMgr) -> bool {
        let Some(cipher_end) = end(self.cipher_offset, self.cipher_len) else { return false };
        let Some(auth_end) = end(self.auth_offset, self.auth_len) else { return false };
        let Some(icv_end) = end(auth_end, self.key.icv_len()) else { return false };
        self.cipher_len != 0
            && self.cipher_len & 15 == 0
            && cipher_end <= auth_end
            && icv_end <= self.buf.len()
    }

    unsafe fn fill(&mut self, dir: Dir, job: *mut sys::IMB_JOB, scratch: *mut JobScratch, index: usize) {
        // SAFETY: the caller guarantees `scratch` is valid for writes and not
        // otherwise referenced.
        let s = unsafe { &mut *scratch };
        s.iv = self.iv;
        let icv = self.key.icv_len();
        let auth_end = self.auth_offset + self.auth_len;
        let mut hash_len = self.auth_len;
        if let Some(hi) = self.esn_high {
            // RFC 4303 §2.2.1 / RFC 4304: ICV over ESP || ESN-high. The 4
            // bytes go where the ICV will be; keep the received ICV aside.
            if let (Some(slot), Some(saved)) =
                (self.buf.get_mut(auth_end..auth_end + icv), s.saved_icv.get_mut(..icv))
            {
                saved.copy_from_slice(slot);
                if let Some(hi_slot) = slot.get_mut(..4) {
                    hi_slot.copy_from_slice(&hi.to_be_bytes());
                }
            }
            hash_len += 4;
        }
        let base = self.buf.as_mut_ptr();
        let kd = self.key.data();
        let (enc, chain) = match dir {
            Dir::Encrypt => {
                (sys::IMB_CIPHER_DIRECTION::IMB_DIR_ENCRYPT, sys::IMB_CHAIN_ORDER::IMB_ORDER_CIPHER_HASH)
            }
            Dir::Decrypt => {
                (sys::IMB_CIPHER_DIRECTION::IMB_DIR_DECRYPT, sys::IMB_CHAIN_ORDER::IMB_ORDER_HASH_CIPHER)
            }
        };
        let j = sys::IMB_JOB {
            enc_keys: kd.enc.as_ptr().cast(),
            dec_keys: kd.dec.as_ptr().cast(),
            key_len_in_bytes: self.key.key_size().len() as u64,
            __bindgen_anon_1: sys::IMB_JOB__bindgen_ty_1 { src: base },
            // In range: validate() checked cipher_offset + cipher_len <= buf.len().
            __bindgen_anon_2: sys::IMB_JOB__bindgen_ty_2 { dst: base.wrapping_add(self.cipher_offset) },
            __bindgen_anon_3: sys::IMB_JOB__bindgen_ty_3 {
                cipher_start_src_offset_in_bytes: self.cipher_offset as u64,
            },
            __bindgen_anon_4: sys::IMB_JOB__bindgen_ty_4 {
                msg_len_to_cipher_in_bytes: self.cipher_len as u64,
            },
            hash_start_src_offset_in_bytes: self.auth_offset as u64,
            __bindgen_anon_5: sys::IMB_JOB__bindgen_ty_5 { msg_len_to_hash_in_bytes: hash_len as u64 },
            iv: s.iv.as_ptr(),
            iv_len_in_bytes: 16,
            auth_tag_output: s.digest.as_mut_ptr(),
            auth_tag_output_len_in_bytes: icv as u64,
            u: sys::IMB_JOB__bindgen_ty_6 {
                HMAC: sys::IMB_JOB__bindgen_ty_6__HMAC_specific_fields {
                    _hashed_auth_key_xor_ipad: kd.ipad.as_ptr(),
                    _hashed_auth_key_xor_opad: kd.opad.as_ptr(),
                },
            },
            status: sys::IMB_STATUS::IMB_STATUS_BEING_PROCESSED,
            cipher_mode: sys::IMB_CIPHER_MODE::IMB_CIPHER_CBC,
            cipher_direction: enc,
            hash_alg: self.key.hmac().to_sys(),
            chain_order: chain,
            user_data: index as *mut c_void,
            user_data2: ptr::null_mut(),
            cipher_func: None,
            hash_func: None,
            sgl_state: sys::IMB_SGL_STATE::IMB_SGL_ALL,
            cipher_fields: sys::IMB_JOB__bindgen_ty_7 {
                CBCS: sys::IMB_JOB__bindgen_ty_7__CBCS_specific_fields { next_iv: ptr::null_mut() },
            },
        };
        // SAFETY: the caller guarantees `job` is a valid, unsubmitted slot.
        unsafe { ptr::write(job, j) };
    }

    fn retire(&mut self, dir: Dir, status: sys::IMB_STATUS, scratch: &JobScratch) -> OpStatus {
        let icv = self.key.icv_len();
        let auth_end = self.auth_offset + self.auth_len;
        let (Some(slot), Some(computed), Some(saved)) = (
            self.buf.get_mut(auth_end..auth_end + icv),
            scratch.digest.get(..icv),
            scratch.saved_icv.get(..icv),
        ) else {
            return OpStatus::EngineError;
        };
        let ok = status == sys::IMB_STATUS::IMB_STATUS_COMPLETED;
        match dir {
            Dir::Encrypt => {
                if ok {
                    slot.copy_from_slice(computed);
                } else if self.esn_high.is_some() {
                    // Do not leave ESN-high in the packet.
                    slot.fill(0);
                }
            }
            Dir::Decrypt => {
                let received: &[u8] = if self.esn_high.is_some() {
                    // Put the received ICV back where ESN-high was.
                    slot.copy_from_slice(saved);
                    saved
                } else {
                    slot
                };
                if ok {
                    // RFC 4303 §3.4.4.1: compare the ICV in constant time.
                    return verdict(icv_ct_eq(computed, received));
                }
            }
        }
        if ok {
            OpStatus::Completed
        } else {
            engine_status(status)
        }
    }
}

/// Constant-time equality of two ICVs (RFC 4303 §3.4.4.1): the XOR of 8-byte words ORed
/// together, then `subtle`'s `ct_eq` on that one word, so the time depends on the lengths
/// only. `subtle`'s slice comparison puts each byte through an optimisation barrier, which
/// for a 16-byte tag costs more than the rest of a 64-byte packet's tag check.
fn icv_ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let (wa, wb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail = wa.remainder().iter().zip(wb.remainder()).fold(0u64, |d, (x, y)| d | u64::from(x ^ y));
    let diff = wa.zip(wb).fold(tail, |d, (x, y)| {
        let w = |c: &[u8]| u64::from_ne_bytes(c.try_into().unwrap_or([0; 8]));
        d | (w(x) ^ w(y))
    });
    diff.ct_eq(&0).into()
}

fn verdict(equal: bool) -> OpStatus {
    if equal {
        OpStatus::Completed
    } else {
        OpStatus::AuthFailed
    }
}

fn engine_status(status: sys::IMB_STATUS) -> OpStatus {
    if status == sys::IMB_STATUS::IMB_STATUS_INVALID_ARGS {
        OpStatus::InvalidArgs
    } else {
        OpStatus::EngineError
    }
}

/// Empties the job queue on drop. On the normal path the queue is already
/// empty and this is one call that returns NULL; on unwind it makes sure the
/// library keeps no pointer into the borrows of the unwinding call.
struct Drain(*mut sys::IMB_MGR);

impl Drop for Drain {
    fn drop(&mut self) {
        // SAFETY: `self.0` is the live manager of the `&mut MbMgr` the burst
        // call holds; flushing completes queued jobs whose pointers are still
        // valid (we are still inside that call).
        while !unsafe { sys::imb_shim_flush_job(self.0) }.is_null() {}
    }
}

impl MbMgr {
    /// AES-GCM encrypt in place, up to [`MAX_BURST`] operations; writes each
    /// ICV after its data.
    pub fn gcm_encrypt_burst(&mut self, ops: &mut [GcmOp<'_>]) -> Result<BurstStatus, Error> {
        run(self, ops, Dir::Encrypt)
    }

    /// AES-GCM decrypt in place and verify each ICV (constant time).
    pub fn gcm_decrypt_burst(&mut self, ops: &mut [GcmOp<'_>]) -> Result<BurstStatus, Error> {
        run(self, ops, Dir::Decrypt)
    }

    /// AES-CBC encrypt then HMAC (cipher-then-hash), in place; writes each
    /// truncated ICV after its authenticated region.
    pub fn cbc_hmac_encrypt_burst(&mut self, ops: &mut [CbcHmacOp<'_>]) -> Result<BurstStatus, Error> {
        run(self, ops, Dir::Encrypt)
    }

    /// HMAC verify then AES-CBC decrypt (hash-then-cipher), in place.
    /// Operations whose ICV does not match are [`OpStatus::AuthFailed`]; their
    /// buffer has been decrypted anyway and must be dropped.
    pub fn cbc_hmac_decrypt_burst(&mut self, ops: &mut [CbcHmacOp<'_>]) -> Result<BurstStatus, Error> {
        run(self, ops, Dir::Decrypt)
    }
}

fn retire_job<O: Op>(
    ops: &mut [O],
    dir: Dir,
    scratch: *const JobScratch,
    job: *const sys::IMB_JOB,
    out: &mut BurstStatus,
) {
    if job.is_null() {
        return;
    }
    // SAFETY: `job` was just returned completed by the library: it points to
    // a slot of the manager's queue that stays valid until the next
    // get_next_job, and the library no longer writes to it.
    let (index, status) = unsafe { ((*job).user_data as usize, (*job).status) };
    let Some(op) = ops.get_mut(index) else { return };
    if index >= MAX_BURST {
        return;
    }
    // SAFETY: index < MAX_BURST, inside the scratch array; the job for this
    // operation has completed, so the library no longer writes to this
    // element and a shared reference is sound.
    let s = unsafe { &*scratch.add(index) };
    out.set(index, op.retire(dir, status, s));
}

fn run<O: Op>(mgr: &mut MbMgr, ops: &mut [O], dir: Dir) -> Result<BurstStatus, Error> {
    if ops.len() > MAX_BURST {
        return Err(Error::BurstTooLarge { len: ops.len() });
    }
    let mut out = BurstStatus::new(ops.len());
    let mut valid = [0u8; MAX_BURST];
    let mut n = 0usize;
    for (i, op) in ops.iter().enumerate() {
        if op.validate(mgr) {
            if let Some(v) = valid.get_mut(n) {
                *v = i as u8;
                n += 1;
            }
        } else {
            out.set(i, OpStatus::InvalidArgs);
        }
    }
    if n == 0 {
        return Ok(out);
    }
    let m = mgr.raw();
    let scratch = mgr.scratch_ptr();
    let valid = valid.get(..n).unwrap_or(&[]);
    if mgr.submit_mode() == SubmitMode::Auto && run_direct(m, scratch, ops, valid, dir, &mut out) {
        return Ok(out);
    }
    let _drain = Drain(m);
    match mgr.submit_mode() {
        SubmitMode::Auto | SubmitMode::Burst => submit_burst(m, scratch, ops, valid, dir, &mut out),
        SubmitMode::Job => submit_jobs(m, scratch, ops, valid, dir, &mut out),
    }
    Ok(out)
}

/// The direct API, one synchronous call per operation. Returns false, having
/// done nothing, when the operation type has no direct path.
fn run_direct<O: Op>(
    m: *mut sys::IMB_MGR,
    scratch: *mut JobScratch,
    ops: &mut [O],
    valid: &[u8],
    dir: Dir,
    out: &mut BurstStatus,
) -> bool {
    for (k, &i) in valid.iter().enumerate() {
        let i = usize::from(i);
        let Some(op) = ops.get_mut(i) else { continue };
        // SAFETY: i < MAX_BURST (an index into `ops`, which is at most
        // MAX_BURST long), so scratch[i] is inside the array; no job is
        // queued, so nothing else refers to it.
        let s = unsafe { &mut *scratch.add(i) };
        // SAFETY: `m` is the live manager of the `&mut MbMgr` held by run();
        // `valid` only lists operations whose validate() returned true.
        let handled = unsafe { op.direct(m, dir, s) };
        match handled {
            Some(status) => out.set(i, op.retire(dir, status, s)),
            None => {
                debug_assert_eq!(k, 0, "an operation type has a direct path or not");
                return false;
            }
        }
    }
    true
}

/// The job API: get_next_job + submit_job per operation, then flush.
fn submit_jobs<O: Op>(
    m: *mut sys::IMB_MGR,
    scratch: *mut JobScratch,
    ops: &mut [O],
    valid: &[u8],
    dir: Dir,
    out: &mut BurstStatus,
) {
    for &i in valid {
        let i = usize::from(i);
        let Some(op) = ops.get_mut(i) else { continue };
        // SAFETY: `m` is a live manager with free queue space (it was empty at
        // the start and holds at most MAX_BURST < IMB_MAX_JOBS jobs). The slot
        // is filled completely before submission. Everything it points to
        // (op.buf, the key, scratch[i], i < MAX_BURST) is borrowed for the
        // whole burst call, which flushes the queue before returning.
        let done = unsafe {
            let job = sys::imb_shim_get_next_job(m);
            op.fill(dir, job, scratch.add(i), i);
            sys::imb_shim_submit_job(m)
        };
        retire_job(ops, dir, scratch, done, out);
        loop {
            // SAFETY: live manager; returns NULL or a completed job.
            let job = unsafe { sys::imb_shim_get_completed_job(m) };
            if job.is_null() {
                break;
            }
            retire_job(ops, dir, scratch, job, out);
        }
    }
    loop {
        // SAFETY: live manager; completes and returns queued jobs in order,
        // NULL once the queue is empty.
        let job = unsafe { sys::imb_shim_flush_job(m) };
        if job.is_null() {
            break;
        }
        retire_job(ops, dir, scratch, job, out);
    }
}

/// The 1.3 burst API: one get_next_burst, one submit_burst, then flush_burst.
fn submit_burst<O: Op>(
    m: *mut sys::IMB_MGR,
    scratch: *mut JobScratch,
    ops: &mut [O],
    valid: &[u8],
    dir: Dir,
    out: &mut BurstStatus,
) {
    let n = valid.len();
    let mut jobs: [*mut sys::IMB_JOB; MAX_BURST] = [ptr::null_mut(); MAX_BURST];
    // SAFETY: live manager; `jobs` has room for n <= MAX_BURST pointers.
    let got = unsafe { sys::imb_shim_get_next_burst(m, n as u32, jobs.as_mut_ptr()) } as usize;
    if got != n {
        // Cannot happen with an empty queue of IMB_MAX_JOBS slots; nothing
        // has been filled yet, so fall back to the job API.
        return submit_jobs(m, scratch, ops, valid, dir, out);
    }
    for (&i, &job) in valid.iter().zip(jobs.iter()) {
        let i = usize::from(i);
        let Some(op) = ops.get_mut(i) else { continue };
        // SAFETY: `job` is one of the n free slots get_next_burst returned;
        // scratch[i] (i < MAX_BURST) belongs to this operation only. What the
        // slot points to is borrowed for the whole burst call (see run()).
        unsafe { op.fill(dir, job, scratch.add(i), i) };
    }
    // SAFETY: the n slots are filled, in queue order, as submit_burst wants.
    let done = unsafe { sys::imb_shim_submit_burst(m, n as u32, jobs.as_mut_ptr()) } as usize;
    // SAFETY: live manager.
    if done == 0 && unsafe { sys::imb_get_errno(m) } != 0 {
        // The checked burst rejected a job and submitted none. Submit them one
        // by one instead: the slots are still the next ones in the queue, and
        // the checked submit_job marks the bad ones INVALID_ARGS.
        for _ in 0..n {
            // SAFETY: get_next_job returns the next slot, already filled
            // above (the failed burst did not advance the queue); submitting
            // it is as in submit_jobs().
            let done = unsafe {
                sys::imb_shim_get_next_job(m);
                sys::imb_shim_submit_job(m)
            };
            retire_job(ops, dir, scratch, done, out);
        }
    } else {
        for &job in jobs.iter().take(done) {
            retire_job(ops, dir, scratch, job, out);
        }
    }
    loop {
        // SAFETY: live manager; `jobs` has room for MAX_BURST pointers.
        let flushed = unsafe { sys::imb_shim_flush_burst(m, MAX_BURST as u32, jobs.as_mut_ptr()) } as usize;
        if flushed == 0 {
            break;
        }
        for &job in jobs.iter().take(flushed) {
            retire_job(ops, dir, scratch, job, out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::icv_ct_eq;

    /// Every ICV length ESP uses (12, 16, 24, 32) and a few others: equal, and different in
    /// any single bit of any byte (word or tail), and different lengths.
    #[test]
    fn icv_comparison() {
        for len in [0usize, 1, 7, 8, 12, 16, 20, 24, 32] {
            let a: Vec<u8> = (0..len).map(|i| (i * 37 + 5) as u8).collect();
            assert!(icv_ct_eq(&a, &a.clone()), "len {len}");
            for i in 0..len {
                for bit in 0..8 {
                    let mut b = a.clone();
                    b[i] ^= 1 << bit;
                    assert!(!icv_ct_eq(&a, &b), "len {len} byte {i} bit {bit}");
                }
            }
            if len > 0 {
                assert!(!icv_ct_eq(&a, &a[..len - 1]), "len {len} vs shorter");
            }
        }
    }
}
