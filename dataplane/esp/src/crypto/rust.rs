//! The pure-Rust backend.
//!
//! Every key-dependent value a session holds is wiped when the session is dropped
//! (`tests/zeroize.rs` checks the freed memory for each algorithm):
//!
//! - AES-GCM (RFC 4106): AES-CTR from RustCrypto `aes` + `ctr` and GHASH from `ghash`, the
//!   parts `aes-gcm` 0.10 is built from, put together here because `aes_gcm::AesGcm` does not
//!   wipe everything (see [`GcmSession`]). `ring`, used before, is faster but cannot zeroize
//!   its key schedule or GHASH key (`docs/benchmarks.md`, "ESP engine"). The tag is compared
//!   in constant time (`subtle`) before anything is decrypted. Cross-checked against `aes-gcm`
//!   in the tests below and against the RFC vectors in `tests/kat.rs`.
//! - AES-CBC: RustCrypto `aes` block functions (round keys wiped by its `zeroize` feature).
//!   Encryption is serial within a packet, so a burst is encrypted [`LANES`] packets in
//!   lockstep: block *i* of every lane goes through one `encrypt_blocks` call, which
//!   pipelines AES-NI. Decryption is parallel within a packet.
//! - HMAC: our own RFC 2104 over the SHA-1/SHA-2 compression functions (SHA-NI detected at
//!   run time), [`super::hmac::HmacKey`]: the inner and outer chaining states are computed
//!   once per SA and wiped on drop; tags are compared with `subtle`.
//!
//! Nothing is allocated per packet.

use super::hmac::HmacKey;
use super::{
    CipherAlgorithm, CryptoBackend, CryptoError, CryptoJob, CryptoParams, CryptoSession, IntegrityAlgorithm,
    JobStatus, Layout, Operation,
};
use crate::wire::esp::HEADER_LEN as ESP_HEADER_LEN;
use aes::cipher::consts::U16;
use aes::cipher::{BlockCipher, BlockDecrypt, BlockEncrypt, BlockSizeUser, KeyInit};
use aes::{Aes128, Aes128Enc, Aes192, Aes192Enc, Aes256, Aes256Enc, Block};
use ctr::cipher::{InnerIvInit, StreamCipherCore};
use ghash::universal_hash::UniversalHash;
use ghash::GHash;
use subtle::ConstantTimeEq;
use wipe::WipeBox;
use zeroize::Zeroize;

/// Packets encrypted in lockstep by multi-buffer CBC.
pub const LANES: usize = 8;

const BLOCK: usize = 16;

/// The pure-Rust backend.
#[derive(Debug, Default, Clone, Copy)]
pub struct RustBackend;

impl CryptoBackend for RustBackend {
    fn name(&self) -> &'static str {
        "rust"
    }

    fn new_session(&self, params: &CryptoParams) -> Result<Box<dyn CryptoSession>, CryptoError> {
        params.validate()?;
        let layout = params.layout();
        let key = params.cipher_key.as_slice();
        match params.cipher {
            CipherAlgorithm::AesGcm128 | CipherAlgorithm::AesGcm192 | CipherAlgorithm::AesGcm256 => {
                let klen = params.cipher.key_len();
                let (k, s) = key.split_at(klen);
                let aes = match params.cipher {
                    CipherAlgorithm::AesGcm128 => {
                        GcmAes::A128(Aes128Enc::new_from_slice(k).map_err(|_| CryptoError::BadKeyLength)?)
                    }
                    CipherAlgorithm::AesGcm192 => {
                        GcmAes::A192(Aes192Enc::new_from_slice(k).map_err(|_| CryptoError::BadKeyLength)?)
                    }
                    _ => GcmAes::A256(Aes256Enc::new_from_slice(k).map_err(|_| CryptoError::BadKeyLength)?),
                };
                let mut salt = [0u8; 4];
                if s.len() != salt.len() {
                    return Err(CryptoError::BadKeyLength);
                }
                salt.copy_from_slice(s);
                Ok(Box::new(WipeBox::new(GcmSession::new(aes, salt, layout))))
            }
            CipherAlgorithm::AesCbc128
            | CipherAlgorithm::AesCbc192
            | CipherAlgorithm::AesCbc256
            | CipherAlgorithm::Null => {
                let cbc = match params.cipher {
                    CipherAlgorithm::AesCbc128 => Some(AesKey::A128(
                        Aes128::new_from_slice(key).map_err(|_| CryptoError::BadKeyLength)?,
                    )),
                    CipherAlgorithm::AesCbc192 => Some(AesKey::A192(
                        Aes192::new_from_slice(key).map_err(|_| CryptoError::BadKeyLength)?,
                    )),
                    CipherAlgorithm::AesCbc256 => Some(AesKey::A256(
                        Aes256::new_from_slice(key).map_err(|_| CryptoError::BadKeyLength)?,
                    )),
                    _ => None,
                };
                let mac = HmacKey::new(params.integrity, &params.auth_key)?;
                Ok(Box::new(WipeBox::new(CbcHmacSession { cbc, mac, layout })))
            }
        }
    }
}

/// Sessions live in a [`WipeBox`]: their own `Drop`s wipe the fields they know, the box the
/// bytes nobody writes (the unused tail of `aes`'s and `polyval`'s run-time-detected unions,
/// which moving the value fills with stale stack, and padding).
impl<T: CryptoSession> CryptoSession for WipeBox<T> {
    fn layout(&self) -> Layout {
        (**self).layout()
    }
    fn process(&self, op: Operation, jobs: &mut [CryptoJob<'_>]) {
        (**self).process(op, jobs)
    }
    fn as_any(&self) -> &dyn core::any::Any {
        (**self).as_any()
    }
    fn warm_state(&self) {
        warm::all(&**self);
    }
    fn warm_keys(&self, op: Operation) {
        (**self).warm_keys(op)
    }
}

/// Split a job's bytes into (header || IV, body, ICV).
fn split(esp: &mut [u8], layout: Layout) -> Option<(&mut [u8], &mut [u8], &mut [u8])> {
    let hdr = ESP_HEADER_LEN + layout.iv_len;
    let body_len = esp.len().checked_sub(hdr + layout.icv_len)?;
    let (h, rest) = esp.split_at_mut(hdr);
    let (body, icv) = rest.split_at_mut(body_len);
    Some((h, body, icv))
}

// Both variants live once per SA; boxing the larger key would only add a pointer hop.
#[allow(clippy::large_enum_variant)]
enum GcmAes {
    A128(Aes128Enc),
    A192(Aes192Enc),
    A256(Aes256Enc),
}

/// AES-CTR with GCM's 32-bit big-endian counter (NIST SP 800-38D §6.5, `inc_32`).
type Ctr32<'a, A> = ctr::CtrCore<&'a A, ctr::flavors::Ctr32BE>;

/// An AES-GCM SA.
///
/// What is key material and where it is wiped (checked in the sources of the versions in
/// `Cargo.lock`, and by `tests/zeroize.rs`):
/// - the AES round keys: `aes` 0.8.4 with `zeroize` wipes them when `Aes128Enc`/`Aes192Enc`/
///   `Aes256Enc` is dropped (`ni.rs`/`soft.rs` `Drop`, reached through `autodetect.rs`'s `Drop`);
/// - H = AES_K(0^128), the GHASH key: the temporary copies made while keying are wiped by
///   `ghash` 0.5.1 with `zeroize`; the copy inside [`GHash`] is *not* wiped when it is
///   dropped: polyval 0.6.2's run-time-detected backend (`backend/autodetect.rs`) holds the
///   CLMUL or software state in a `ManuallyDrop` and has no `Drop` of its own, so their
///   zeroizing `Drop` never runs. It does run when the state is consumed by `finalize`, so
///   every per-packet copy is wiped, and [`GcmSession`]'s `Drop` swaps the session's own
///   copy for a zero-keyed one and finalizes it. (This is also why `aes_gcm::AesGcm` itself,
///   which keeps its `GHash` private, is not used: `tests/zeroize.rs`
///   `aes_gcm_0_10_leaves_the_ghash_key_in_freed_memory`.)
/// - the salt (RFC 4106 §8.1: keying material): wiped in `Drop`.
struct GcmSession {
    aes: GcmAes,
    ghash: GHash,
    salt: [u8; 4],
    layout: Layout,
}

impl Drop for GcmSession {
    fn drop(&mut self) {
        self.salt.zeroize();
        // Overwrite the session's GHASH state in place with one keyed with zero, then consume
        // the real one: `finalize` moves the backend out of polyval's `ManuallyDrop` and drops
        // it, which runs its zeroizing `Drop` (see above).
        let old = core::mem::replace(&mut self.ghash, GHash::new(&ghash::Key::default()));
        let _ = old.finalize();
        // `aes` wipes its round keys in its own `Drop`.
    }
}

impl core::fmt::Debug for GcmSession {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let bits = match self.aes {
            GcmAes::A128(_) => 128,
            GcmAes::A192(_) => 192,
            GcmAes::A256(_) => 256,
        };
        f.debug_struct("GcmSession").field("key_bits", &bits).finish_non_exhaustive()
    }
}

/// GCM (NIST SP 800-38D §7.1, §7.2) of one packet with a 96-bit nonce: J0 = nonce || 0^31 || 1,
/// the tag mask E_K(J0), CTR from inc_32(J0), GHASH over AAD and ciphertext, each padded to
/// the block, then their lengths in bits. `Open` checks the tag before decrypting.
fn gcm_one<A>(
    aes: &A,
    ghash: &GHash,
    op: Operation,
    nonce: &[u8; 12],
    aad: &[u8],
    body: &mut [u8],
    icv: &mut [u8],
) -> JobStatus
where
    A: BlockEncrypt + BlockCipher + BlockSizeUser<BlockSize = U16>,
{
    let mut j0 = ghash::Block::default();
    if let Some(n) = j0.get_mut(..12) {
        n.copy_from_slice(nonce);
    }
    if let Some(last) = j0.last_mut() {
        *last = 1;
    }
    let mut ctr = Ctr32::<A>::inner_iv_init(aes, &j0);
    let mut mask = ghash::Block::default();
    ctr.write_keystream_block(&mut mask);
    let tag = |body: &[u8]| {
        let mut g = ghash.clone();
        g.update_padded(aad);
        g.update_padded(body);
        let mut lens = ghash::Block::default();
        let (a, c) = lens.split_at_mut(8);
        a.copy_from_slice(&((aad.len() as u64) * 8).to_be_bytes());
        c.copy_from_slice(&((body.len() as u64) * 8).to_be_bytes());
        g.update(&[lens]);
        // `finalize` consumes (and so wipes, see `GcmSession`) this packet's copy.
        let mut t = g.finalize();
        for (x, m) in t.iter_mut().zip(mask.iter()) {
            *x ^= *m;
        }
        t
    };
    if icv.len() != 16 {
        return JobStatus::BadLength;
    }
    match op {
        Operation::Seal => {
            ctr.apply_keystream_partial(body.into());
            icv.copy_from_slice(&tag(body));
            JobStatus::Ok
        }
        Operation::Open => {
            // RFC 4303 §3.4.4.1: integrity first; constant-time comparison.
            if bool::from(tag(body).as_slice().ct_eq(icv)) {
                ctr.apply_keystream_partial(body.into());
                JobStatus::Ok
            } else {
                JobStatus::AuthFailed
            }
        }
    }
}

impl GcmSession {
    fn new(aes: GcmAes, salt: [u8; 4], layout: Layout) -> Self {
        // The GHASH key H = E_K(0^128) (NIST SP 800-38D §7.1 step 1); the stack copy is wiped.
        let mut h = [0u8; 16];
        match &aes {
            GcmAes::A128(k) => k.encrypt_block(Block::from_mut_slice(&mut h)),
            GcmAes::A192(k) => k.encrypt_block(Block::from_mut_slice(&mut h)),
            GcmAes::A256(k) => k.encrypt_block(Block::from_mut_slice(&mut h)),
        }
        let ghash = GHash::new(ghash::Key::from_slice(&h));
        h.zeroize();
        GcmSession { aes, ghash, salt, layout }
    }

    fn one(&self, op: Operation, job: &mut CryptoJob<'_>) -> JobStatus {
        let esn = job.esn_high;
        let Some((h, body, icv)) = split(job.esp, self.layout) else {
            return JobStatus::BadLength;
        };
        // RFC 4106 §4: nonce = salt || explicit IV.
        let mut nonce = [0u8; 12];
        let (ns, ni) = nonce.split_at_mut(4);
        ns.copy_from_slice(&self.salt);
        match h.get(ESP_HEADER_LEN..ESP_HEADER_LEN + 8) {
            Some(iv) => ni.copy_from_slice(iv),
            None => return JobStatus::BadLength,
        }
        // RFC 4106 §5: AAD = SPI || seq (8) or SPI || seq high || seq low (12).
        let Some(&[s0, s1, s2, s3, q0, q1, q2, q3]) = h.get(..8) else {
            return JobStatus::BadLength;
        };
        let (aad, aad_len) = match esn {
            None => ([s0, s1, s2, s3, q0, q1, q2, q3, 0, 0, 0, 0], 8),
            Some(hi) => {
                let [h0, h1, h2, h3] = hi.to_be_bytes();
                ([s0, s1, s2, s3, h0, h1, h2, h3, q0, q1, q2, q3], 12)
            }
        };
        let aad = aad.get(..aad_len).unwrap_or(&[]);
        let status = match &self.aes {
            GcmAes::A128(k) => gcm_one(k, &self.ghash, op, &nonce, aad, body, icv),
            GcmAes::A192(k) => gcm_one(k, &self.ghash, op, &nonce, aad, body, icv),
            GcmAes::A256(k) => gcm_one(k, &self.ghash, op, &nonce, aad, body, icv),
        };
        // The nonce's salt half is keying material.
        nonce.zeroize();
        status
    }
}

impl CryptoSession for GcmSession {
    fn layout(&self) -> Layout {
        self.layout
    }
    fn process(&self, op: Operation, jobs: &mut [CryptoJob<'_>]) {
        for job in jobs.iter_mut() {
            job.status = self.one(op, job);
        }
    }
    fn as_any(&self) -> &dyn core::any::Any {
        self
    }
}

// Both variants live once per SA; boxing the larger key would only add a pointer hop.
#[allow(clippy::large_enum_variant)]
enum AesKey {
    A128(Aes128),
    A192(Aes192),
    A256(Aes256),
}

impl AesKey {
    #[inline]
    fn encrypt_blocks(&self, b: &mut [Block]) {
        match self {
            AesKey::A128(k) => k.encrypt_blocks(b),
            AesKey::A192(k) => k.encrypt_blocks(b),
            AesKey::A256(k) => k.encrypt_blocks(b),
        }
    }
    #[inline]
    fn decrypt_blocks(&self, b: &mut [Block]) {
        match self {
            AesKey::A128(k) => k.decrypt_blocks(b),
            AesKey::A192(k) => k.decrypt_blocks(b),
            AesKey::A256(k) => k.decrypt_blocks(b),
        }
    }
}

/// Public for the HMAC known-answer tests: full-length HMAC of `data` with `alg`'s hash.
#[doc(hidden)]
pub fn hmac_for_test(alg: IntegrityAlgorithm, key: &[u8], data: &[u8], out: &mut [u8]) -> bool {
    // Test vectors use keys of any length (RFC 2104 §2), so key the MAC directly.
    match HmacKey::new(alg, key) {
        Ok(k) if out.len() <= k.digest_len() => {
            k.compute(data, None, out);
            true
        }
        _ => false,
    }
}

struct CbcHmacSession {
    cbc: Option<AesKey>,
    mac: HmacKey,
    layout: Layout,
}

impl core::fmt::Debug for CbcHmacSession {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("CbcHmacSession")
            .field("cbc", &self.cbc.is_some())
            .field("layout", &self.layout)
            .finish_non_exhaustive()
    }
}

#[inline]
fn load(b: &[u8], off: usize) -> Block {
    let mut blk = Block::default();
    if let Some(s) = b.get(off..off + BLOCK) {
        blk.copy_from_slice(s);
    }
    blk
}

#[inline]
fn store(b: &mut [u8], off: usize, blk: &Block) {
    if let Some(d) = b.get_mut(off..off + BLOCK) {
        d.copy_from_slice(blk);
    }
}

#[inline]
fn xor(a: &mut Block, b: &Block) {
    for (x, y) in a.iter_mut().zip(b.iter()) {
        *x ^= *y;
    }
}

impl CbcHmacSession {
    /// Ciphertext range of a job, if its length fits the cipher.
    fn body(&self, len: usize) -> Option<(usize, usize)> {
        let start = ESP_HEADER_LEN + self.layout.iv_len;
        let end = len.checked_sub(self.layout.icv_len)?;
        let n = end.checked_sub(start)?;
        if self.cbc.is_some() && (n == 0 || n % BLOCK != 0) {
            return None;
        }
        Some((start, end))
    }

    /// CBC-encrypt up to [`LANES`] jobs in lockstep.
    fn encrypt_lanes(key: &AesKey, jobs: &mut [CryptoJob<'_>], spans: &[(usize, usize)]) {
        let mut chain = [Block::default(); LANES];
        let mut nblocks = [0usize; LANES];
        let mut max = 0;
        for (k, (job, &(s, e))) in jobs.iter().zip(spans).enumerate().take(LANES) {
            if let (Some(c), Some(n)) = (chain.get_mut(k), nblocks.get_mut(k)) {
                // The IV precedes the ciphertext.
                *c = load(job.esp, s.saturating_sub(BLOCK));
                *n = e.saturating_sub(s) / BLOCK;
                max = max.max(*n);
            }
        }
        let mut tmp = [Block::default(); LANES];
        let mut lane_of = [0usize; LANES];
        for b in 0..max {
            let mut n = 0;
            for k in 0..jobs.len().min(LANES) {
                if nblocks.get(k).copied().unwrap_or(0) <= b {
                    continue;
                }
                let (Some(job), Some(&(s, _)), Some(c), Some(t), Some(l)) =
                    (jobs.get(k), spans.get(k), chain.get(k), tmp.get_mut(n), lane_of.get_mut(n))
                else {
                    continue;
                };
                *t = load(job.esp, s + b * BLOCK);
                xor(t, c);
                *l = k;
                n += 1;
            }
            if let Some(t) = tmp.get_mut(..n) {
                key.encrypt_blocks(t);
            }
            for (t, &k) in tmp.iter().zip(lane_of.iter()).take(n) {
                if let (Some(job), Some(&(s, _)), Some(c)) = (jobs.get_mut(k), spans.get(k), chain.get_mut(k))
                {
                    store(job.esp, s + b * BLOCK, t);
                    *c = *t;
                }
            }
        }
    }

    /// CBC-decrypt one packet's `[s, e)` in place, [`LANES`] blocks per call, back to front so
    /// that each group's preceding ciphertext block is still intact.
    fn decrypt_one(key: &AesKey, esp: &mut [u8], s: usize, e: usize) {
        let n = e.saturating_sub(s) / BLOCK;
        let mut end = n;
        while end > 0 {
            let start = end.saturating_sub(LANES);
            let cnt = end - start;
            let mut orig = [Block::default(); LANES];
            for (j, o) in orig.iter_mut().enumerate().take(cnt) {
                *o = load(esp, s + (start + j) * BLOCK);
            }
            let mut tmp = orig;
            if let Some(t) = tmp.get_mut(..cnt) {
                key.decrypt_blocks(t);
            }
            for (j, t) in tmp.iter_mut().enumerate().take(cnt) {
                let prev = if j > 0 {
                    orig.get(j - 1).copied().unwrap_or_default()
                } else {
                    // Block start-1, or the IV right before the ciphertext when start == 0.
                    load(esp, (s + start * BLOCK).saturating_sub(BLOCK))
                };
                xor(t, &prev);
                store(esp, s + (start + j) * BLOCK, t);
            }
            end = start;
        }
    }
}

impl CryptoSession for CbcHmacSession {
    fn layout(&self) -> Layout {
        self.layout
    }

    fn as_any(&self) -> &dyn core::any::Any {
        self
    }

    fn process(&self, op: Operation, jobs: &mut [CryptoJob<'_>]) {
        let icv_len = self.layout.icv_len;
        match op {
            Operation::Seal => {
                for chunk in jobs.chunks_mut(LANES) {
                    let mut spans = [(0usize, 0usize); LANES];
                    for (job, sp) in chunk.iter_mut().zip(spans.iter_mut()) {
                        match self.body(job.esp.len()) {
                            Some(r) => {
                                *sp = r;
                                job.status = JobStatus::Ok;
                            }
                            None => job.status = JobStatus::BadLength,
                        }
                    }
                    if let Some(key) = &self.cbc {
                        Self::encrypt_lanes(key, chunk, &spans);
                    }
                    // RFC 4303 §3.3.4 / §2.2.1: ICV over header, IV, ciphertext (+ ESN high).
                    for (job, &(_, e)) in chunk.iter_mut().zip(spans.iter()) {
                        if job.status != JobStatus::Ok {
                            continue;
                        }
                        let (data, icv) = job.esp.split_at_mut(e);
                        self.mac.compute(data, job.esn_high, icv);
                        debug_assert_eq!(icv.len(), icv_len);
                    }
                }
            }
            Operation::Open => {
                for job in jobs.iter_mut() {
                    let Some((s, e)) = self.body(job.esp.len()) else {
                        job.status = JobStatus::BadLength;
                        continue;
                    };
                    let (data, icv) = job.esp.split_at(e);
                    let mut want = [0u8; 32];
                    let want = want.get_mut(..icv.len()).unwrap_or(&mut []);
                    self.mac.compute(data, job.esn_high, want);
                    // RFC 4303 §3.4.4.1: verify the ICV before decrypting; constant time.
                    if !bool::from(want.ct_eq(icv)) || want.is_empty() {
                        job.status = JobStatus::AuthFailed;
                        continue;
                    }
                    if let Some(key) = &self.cbc {
                        Self::decrypt_one(key, job.esp, s, e);
                    }
                    job.status = JobStatus::Ok;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use zeroize::Zeroizing;

    fn params(c: CipherAlgorithm, i: IntegrityAlgorithm) -> CryptoParams {
        CryptoParams {
            cipher: c,
            integrity: i,
            cipher_key: Zeroizing::new((0..(c.key_len() + c.salt_len()) as u8).collect()),
            auth_key: Zeroizing::new(vec![0x5a; i.key_len()]),
        }
    }

    /// Multi-lane CBC gives the same bytes as one packet at a time, for lanes of different
    /// lengths, and opens back.
    #[test]
    fn lockstep_cbc_equals_single() {
        let b = RustBackend;
        let p = params(CipherAlgorithm::AesCbc128, IntegrityAlgorithm::HmacSha256_128);
        let s = b.new_session(&p).unwrap();
        let pkts: Vec<Vec<u8>> = (0..11)
            .map(|i| {
                let n = 8 + 16 + 16 * (1 + (i * 7) % 13) + 16;
                (0..n).map(|j| (j * 31 + i) as u8).collect()
            })
            .collect();
        let mut burst = pkts.clone();
        let mut jobs: Vec<CryptoJob<'_>> = burst.iter_mut().map(|p| CryptoJob::new(p, None)).collect();
        s.process(Operation::Seal, &mut jobs);
        assert!(jobs.iter().all(|j| j.status == JobStatus::Ok));
        drop(jobs);
        for (orig, sealed) in pkts.iter().zip(&burst) {
            let mut one = orig.clone();
            let mut j = [CryptoJob::new(&mut one, None)];
            s.process(Operation::Seal, &mut j);
            assert_eq!(&one, sealed);
            assert_ne!(&one[24..40], &orig[24..40]);
            let mut j = [CryptoJob::new(&mut one, None)];
            s.process(Operation::Open, &mut j);
            assert_eq!(j[0].status, JobStatus::Ok);
            let n = one.len() - 16;
            assert_eq!(&one[..n], &orig[..n]);
        }
    }

    #[test]
    fn bad_lengths_and_keys() {
        let b = RustBackend;
        let mut p = params(CipherAlgorithm::AesCbc256, IntegrityAlgorithm::HmacSha1_96);
        let s = b.new_session(&p).unwrap();
        let mut short = vec![0u8; 8 + 16 + 15 + 12];
        let mut j = [CryptoJob::new(&mut short, None)];
        s.process(Operation::Open, &mut j);
        assert_eq!(j[0].status, JobStatus::BadLength);
        let mut tiny = vec![0u8; 3];
        let mut j = [CryptoJob::new(&mut tiny, None)];
        s.process(Operation::Seal, &mut j);
        assert_eq!(j[0].status, JobStatus::BadLength);
        p.auth_key = Zeroizing::new(vec![0; 19]);
        assert_eq!(b.new_session(&p).unwrap_err(), CryptoError::BadKeyLength);
        let p = params(CipherAlgorithm::AesGcm128, IntegrityAlgorithm::HmacSha1_96);
        assert_eq!(b.new_session(&p).unwrap_err(), CryptoError::BadAlgorithmCombination);
        let p = params(CipherAlgorithm::AesGcm256, IntegrityAlgorithm::None);
        let s = b.new_session(&p).unwrap();
        let mut tiny = vec![0u8; 8 + 8 + 15];
        let mut j = [CryptoJob::new(&mut tiny, None)];
        s.process(Operation::Open, &mut j);
        assert_eq!(j[0].status, JobStatus::BadLength);
    }

    proptest::proptest! {
        /// The GCM composed here equals RustCrypto `aes-gcm` (RFC 4106 nonce and AAD), opens
        /// back, and refuses a flipped bit without touching the ciphertext.
        #[test]
        fn gcm_matches_aes_gcm(
            size in 0usize..3,
            key in proptest::collection::vec(proptest::num::u8::ANY, 36),
            hdr in proptest::collection::vec(proptest::num::u8::ANY, 16),
            body in proptest::collection::vec(proptest::num::u8::ANY, 0..300),
            esn in proptest::option::of(proptest::num::u32::ANY),
            flip in proptest::num::usize::ANY,
        ) {
            use aes_gcm::aead::{AeadInPlace, KeyInit as _};
            let c = [CipherAlgorithm::AesGcm128, CipherAlgorithm::AesGcm192, CipherAlgorithm::AesGcm256][size];
            let klen = c.key_len();
            let p = CryptoParams {
                cipher: c,
                integrity: IntegrityAlgorithm::None,
                cipher_key: Zeroizing::new(key[..klen + 4].to_vec()),
                auth_key: Zeroizing::new(vec![]),
            };
            let s = RustBackend.new_session(&p).unwrap();
            let mut pkt = [&hdr[..], &body[..], &[0u8; 16]].concat();
            let mut j = [CryptoJob::new(&mut pkt, esn)];
            s.process(Operation::Seal, &mut j);
            proptest::prop_assert_eq!(j[0].status, JobStatus::Ok);

            let nonce = [&key[klen..klen + 4], &hdr[8..16]].concat();
            let aad = match esn {
                None => hdr[..8].to_vec(),
                Some(hi) => [&hdr[..4], &hi.to_be_bytes()[..], &hdr[4..8]].concat(),
            };
            let mut want = body.clone();
            let tag = match size {
                0 => aes_gcm::Aes128Gcm::new_from_slice(&key[..16]).unwrap()
                    .encrypt_in_place_detached(nonce.as_slice().into(), &aad, &mut want),
                1 => aes_gcm::AesGcm::<aes::Aes192, aes_gcm::aead::consts::U12>::new_from_slice(&key[..24])
                    .unwrap()
                    .encrypt_in_place_detached(nonce.as_slice().into(), &aad, &mut want),
                _ => aes_gcm::Aes256Gcm::new_from_slice(&key[..32]).unwrap()
                    .encrypt_in_place_detached(nonce.as_slice().into(), &aad, &mut want),
            }.unwrap();
            proptest::prop_assert_eq!(&pkt[16..16 + body.len()], &want[..]);
            proptest::prop_assert_eq!(&pkt[16 + body.len()..], tag.as_slice());

            let mut bad = pkt.clone();
            let bit = flip % (bad.len() * 8);
            bad[bit / 8] ^= 1 << (bit % 8);
            let mut j = [CryptoJob::new(&mut bad, esn)];
            s.process(Operation::Open, &mut j);
            // A flipped bit of the IV changes the nonce; any other byte is authenticated.
            proptest::prop_assert_eq!(j[0].status, JobStatus::AuthFailed);
            let mut j = [CryptoJob::new(&mut pkt, esn)];
            s.process(Operation::Open, &mut j);
            proptest::prop_assert_eq!(j[0].status, JobStatus::Ok);
            proptest::prop_assert_eq!(&pkt[16..16 + body.len()], &body[..]);
        }
    }

    #[test]
    fn esn_changes_icv() {
        for p in [
            params(CipherAlgorithm::AesGcm128, IntegrityAlgorithm::None),
            params(CipherAlgorithm::Null, IntegrityAlgorithm::HmacSha512_256),
        ] {
            let s = RustBackend.new_session(&p).unwrap();
            let icv = p.layout().icv_len;
            let mut a = vec![7u8; 8 + p.layout().iv_len + 20 + icv];
            let mut b2 = a.clone();
            let mut j = [CryptoJob::new(&mut a, Some(0)), CryptoJob::new(&mut b2, Some(1))];
            s.process(Operation::Seal, &mut j);
            assert_ne!(a[a.len() - icv..], b2[b2.len() - icv..]);
            let mut j = [CryptoJob::new(&mut a, Some(1))];
            s.process(Operation::Open, &mut j);
            assert_eq!(j[0].status, JobStatus::AuthFailed);
            let mut j = [CryptoJob::new(&mut b2, Some(1))];
            s.process(Operation::Open, &mut j);
            assert_eq!(j[0].status, JobStatus::Ok);
        }
    }
}
