//! The pure-Rust backend.
//!
//! - AES-GCM: `ring` (its AES-GCM is the fastest pure-Rust option on this machine, see
//!   `docs/esp.md`); constant-time tag check inside `ring`.
//! - AES-CBC: RustCrypto `aes` block functions. Encryption is serial within a packet, so a
//!   burst is encrypted [`LANES`] packets in lockstep: block *i* of every lane goes through one
//!   `encrypt_blocks` call, which pipelines AES-NI. Decryption is parallel within a packet.
//! - HMAC: RustCrypto `hmac` + `sha1`/`sha2` (SHA-NI detected at run time). The keyed state is
//!   computed once per SA and cloned per packet; tags are compared with `subtle`.

use super::{
    CipherAlgorithm, CryptoBackend, CryptoError, CryptoJob, CryptoParams, CryptoSession, IntegrityAlgorithm,
    JobStatus, Layout, Operation,
};
use crate::wire::esp::HEADER_LEN as ESP_HEADER_LEN;
use aes::cipher::{BlockDecrypt, BlockEncrypt, KeyInit};
use aes::{Aes128, Aes256, Block};
use hmac::{Hmac, Mac};
use ring::aead;
use subtle::ConstantTimeEq;

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
            CipherAlgorithm::AesGcm128 | CipherAlgorithm::AesGcm256 => {
                let (alg, klen) = if params.cipher == CipherAlgorithm::AesGcm128 {
                    (&aead::AES_128_GCM, 16)
                } else {
                    (&aead::AES_256_GCM, 32)
                };
                let (k, s) = key.split_at(klen);
                let unbound = aead::UnboundKey::new(alg, k).map_err(|_| CryptoError::BadKeyLength)?;
                let mut salt = [0u8; 4];
                salt.copy_from_slice(s);
                Ok(Box::new(GcmSession { key: aead::LessSafeKey::new(unbound), salt, layout }))
            }
            CipherAlgorithm::AesCbc128 | CipherAlgorithm::AesCbc256 | CipherAlgorithm::Null => {
                let cbc = match params.cipher {
                    CipherAlgorithm::AesCbc128 => Some(AesKey::A128(
                        Aes128::new_from_slice(key).map_err(|_| CryptoError::BadKeyLength)?,
                    )),
                    CipherAlgorithm::AesCbc256 => Some(AesKey::A256(
                        Aes256::new_from_slice(key).map_err(|_| CryptoError::BadKeyLength)?,
                    )),
                    _ => None,
                };
                let mac = HmacKey::new(params.integrity, &params.auth_key)?;
                Ok(Box::new(CbcHmacSession { cbc, mac, layout }))
            }
        }
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

struct GcmSession {
    key: aead::LessSafeKey,
    salt: [u8; 4],
    layout: Layout,
}

impl core::fmt::Debug for GcmSession {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("GcmSession").field("algorithm", self.key.algorithm()).finish_non_exhaustive()
    }
}

impl GcmSession {
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
        let nonce = aead::Nonce::assume_unique_for_key(nonce);
        let aad = aead::Aad::from(aad.get(..aad_len).unwrap_or(&[]));
        match op {
            Operation::Seal => match self.key.seal_in_place_separate_tag(nonce, aad, body) {
                Ok(tag) if icv.len() == tag.as_ref().len() => {
                    icv.copy_from_slice(tag.as_ref());
                    JobStatus::Ok
                }
                _ => JobStatus::BadLength,
            },
            Operation::Open => {
                // ring wants ciphertext || tag contiguous: they are (body then icv).
                let n = body.len() + icv.len();
                let Some(ct) = job.esp.get_mut(job.esp.len() - n..) else {
                    return JobStatus::BadLength;
                };
                match self.key.open_in_place(nonce, aad, ct) {
                    Ok(_) => JobStatus::Ok,
                    Err(_) => JobStatus::AuthFailed,
                }
            }
        }
    }
}

impl CryptoSession for GcmSession {
    fn layout(&self) -> Layout {
        self.layout
    }
    fn process(&mut self, op: Operation, jobs: &mut [CryptoJob<'_>]) {
        for job in jobs.iter_mut() {
            job.status = self.one(op, job);
        }
    }
}

// Both variants live once per SA; boxing the larger key would only add a pointer hop.
#[allow(clippy::large_enum_variant)]
enum AesKey {
    A128(Aes128),
    A256(Aes256),
}

impl AesKey {
    #[inline]
    fn encrypt_blocks(&self, b: &mut [Block]) {
        match self {
            AesKey::A128(k) => k.encrypt_blocks(b),
            AesKey::A256(k) => k.encrypt_blocks(b),
        }
    }
    #[inline]
    fn decrypt_blocks(&self, b: &mut [Block]) {
        match self {
            AesKey::A128(k) => k.decrypt_blocks(b),
            AesKey::A256(k) => k.decrypt_blocks(b),
        }
    }
}

enum HmacKey {
    Sha1(Hmac<sha1::Sha1>),
    Sha256(Hmac<sha2::Sha256>),
    Sha384(Hmac<sha2::Sha384>),
    Sha512(Hmac<sha2::Sha512>),
}

impl HmacKey {
    fn new(alg: IntegrityAlgorithm, key: &[u8]) -> Result<Self, CryptoError> {
        let e = |_| CryptoError::BadKeyLength;
        Ok(match alg {
            IntegrityAlgorithm::HmacSha1_96 => {
                HmacKey::Sha1(<Hmac<_> as Mac>::new_from_slice(key).map_err(e)?)
            }
            IntegrityAlgorithm::HmacSha256_128 => {
                HmacKey::Sha256(<Hmac<_> as Mac>::new_from_slice(key).map_err(e)?)
            }
            IntegrityAlgorithm::HmacSha384_192 => {
                HmacKey::Sha384(<Hmac<_> as Mac>::new_from_slice(key).map_err(e)?)
            }
            IntegrityAlgorithm::HmacSha512_256 => {
                HmacKey::Sha512(<Hmac<_> as Mac>::new_from_slice(key).map_err(e)?)
            }
            IntegrityAlgorithm::None => return Err(CryptoError::BadAlgorithmCombination),
        })
    }

    /// HMAC over `data` || `esn_high` (when present), truncated into `out` (`out.len()` bytes).
    fn compute(&self, data: &[u8], esn_high: Option<u32>, out: &mut [u8]) {
        fn run<M: Mac + Clone>(m: &M, data: &[u8], esn: Option<u32>, out: &mut [u8]) {
            let mut m = m.clone();
            m.update(data);
            if let Some(hi) = esn {
                m.update(&hi.to_be_bytes());
            }
            let tag = m.finalize().into_bytes();
            for (d, s) in out.iter_mut().zip(tag.iter()) {
                *d = *s;
            }
        }
        match self {
            HmacKey::Sha1(m) => run(m, data, esn_high, out),
            HmacKey::Sha256(m) => run(m, data, esn_high, out),
            HmacKey::Sha384(m) => run(m, data, esn_high, out),
            HmacKey::Sha512(m) => run(m, data, esn_high, out),
        }
    }
}

/// Public for the HMAC known-answer tests: full-length HMAC of `data` with `alg`'s hash.
#[doc(hidden)]
pub fn hmac_for_test(alg: IntegrityAlgorithm, key: &[u8], data: &[u8], out: &mut [u8]) -> bool {
    // Test vectors use keys of any length, so build the MAC directly.
    let k = match alg {
        IntegrityAlgorithm::HmacSha1_96 => <Hmac<sha1::Sha1> as Mac>::new_from_slice(key).map(HmacKey::Sha1),
        IntegrityAlgorithm::HmacSha256_128 => {
            <Hmac<sha2::Sha256> as Mac>::new_from_slice(key).map(HmacKey::Sha256)
        }
        IntegrityAlgorithm::HmacSha384_192 => {
            <Hmac<sha2::Sha384> as Mac>::new_from_slice(key).map(HmacKey::Sha384)
        }
        IntegrityAlgorithm::HmacSha512_256 => {
            <Hmac<sha2::Sha512> as Mac>::new_from_slice(key).map(HmacKey::Sha512)
        }
        IntegrityAlgorithm::None => return false,
    };
    match k {
        Ok(k) => {
            k.compute(data, None, out);
            true
        }
        Err(_) => false,
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

    fn process(&mut self, op: Operation, jobs: &mut [CryptoJob<'_>]) {
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
        let mut s = b.new_session(&p).unwrap();
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
        let mut s = b.new_session(&p).unwrap();
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
        let mut s = b.new_session(&p).unwrap();
        let mut tiny = vec![0u8; 8 + 8 + 15];
        let mut j = [CryptoJob::new(&mut tiny, None)];
        s.process(Operation::Open, &mut j);
        assert_eq!(j[0].status, JobStatus::BadLength);
    }

    #[test]
    fn esn_changes_icv() {
        for p in [
            params(CipherAlgorithm::AesGcm128, IntegrityAlgorithm::None),
            params(CipherAlgorithm::Null, IntegrityAlgorithm::HmacSha512_256),
        ] {
            let mut s = RustBackend.new_session(&p).unwrap();
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
