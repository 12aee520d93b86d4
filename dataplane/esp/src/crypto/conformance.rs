//! Backend conformance: checks that a [`CryptoBackend`] produces byte-identical output to the
//! pure-Rust reference backend and behaves as the engine expects. Meant for other backends'
//! test suites (e.g. `ffi/ipsec-mb`):
//!
//! ```text
//! let checked = esp::crypto::conformance::check_backend(&IpsecMbBackend::new()?).unwrap();
//! ```
//!
//! For every algorithm the backend supports (a backend returning
//! [`CryptoError::Unsupported`] skips that algorithm), with and without ESN, over a range of
//! lengths, in bursts of mixed lengths: `Seal` output equals the reference's byte for byte,
//! `Open` of the reference's output restores the plaintext, any flipped bit in the header, IV,
//! ciphertext or ICV gives `AuthFailed`, and a CBC body that is not a block multiple gives
//! `BadLength`.

use super::rust::RustBackend;
use super::{
    CipherAlgorithm as C, CryptoBackend, CryptoError, CryptoJob, CryptoParams, IntegrityAlgorithm as I,
    JobStatus, Operation,
};
use zeroize::Zeroizing;

/// Every algorithm combination the engine supports.
pub const ALGORITHMS: [(C, I); 17] = [
    (C::AesGcm128, I::None),
    (C::AesGcm192, I::None),
    (C::AesGcm256, I::None),
    (C::AesCbc128, I::HmacSha1_96),
    (C::AesCbc128, I::HmacSha256_128),
    (C::AesCbc128, I::HmacSha384_192),
    (C::AesCbc128, I::HmacSha512_256),
    (C::AesCbc192, I::HmacSha1_96),
    (C::AesCbc192, I::HmacSha256_128),
    (C::AesCbc192, I::HmacSha384_192),
    (C::AesCbc256, I::HmacSha1_96),
    (C::AesCbc256, I::HmacSha256_128),
    (C::AesCbc256, I::HmacSha384_192),
    (C::AesCbc256, I::HmacSha512_256),
    (C::Null, I::HmacSha1_96),
    (C::Null, I::HmacSha256_128),
    (C::Null, I::HmacSha512_256),
];

/// What went wrong, for a test failure message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    /// Algorithms.
    pub algorithm: (C, I),
    /// Plaintext length of the failing packet.
    pub len: usize,
    /// ESN high half used.
    pub esn_high: Option<u32>,
    /// Which property failed.
    pub what: &'static str,
}

/// Deterministic filler (xorshift), so failures reproduce.
fn fill(buf: &mut [u8], seed: u64) {
    let mut x = seed | 1;
    for b in buf.iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x.to_le_bytes().first().copied().unwrap_or(0);
    }
}

fn params(c: C, i: I, seed: u64) -> CryptoParams {
    let mut ck = vec![0u8; c.key_len() + c.salt_len()];
    let mut ak = vec![0u8; i.key_len()];
    fill(&mut ck, seed);
    fill(&mut ak, seed ^ 0x5555);
    CryptoParams { cipher: c, integrity: i, cipher_key: Zeroizing::new(ck), auth_key: Zeroizing::new(ak) }
}

/// One ESP job buffer: header, IV, `body` bytes of plaintext, zeroed ICV room.
fn packet(c: C, i: I, body: usize, seed: u64) -> Vec<u8> {
    let lay = params(c, i, 0).layout();
    let mut p = vec![0u8; 8 + lay.iv_len + body + lay.icv_len];
    let n = p.len() - lay.icv_len;
    if let Some(x) = p.get_mut(..n) {
        fill(x, seed);
    }
    p
}

/// Run the conformance checks against `backend`. Returns how many algorithms were checked
/// (the others were `Unsupported`), or the first mismatch.
pub fn check_backend(backend: &dyn CryptoBackend) -> Result<usize, Mismatch> {
    let mut checked = 0;
    for (k, &(c, i)) in ALGORITHMS.iter().enumerate() {
        let p = params(c, i, 0x1234 + k as u64);
        let theirs = match backend.new_session(&p) {
            Ok(s) => s,
            Err(CryptoError::Unsupported) => continue,
            Err(_) => {
                return Err(Mismatch {
                    algorithm: (c, i),
                    len: 0,
                    esn_high: None,
                    what: "new_session failed",
                })
            }
        };
        let Ok(reference) = RustBackend.new_session(&p) else {
            return Err(Mismatch { algorithm: (c, i), len: 0, esn_high: None, what: "reference session" });
        };
        checked += 1;
        let block = c.block_len().max(4);
        let lens: Vec<usize> = (1..=24).map(|n| n * block).chain([1424 / block * block, 4 * 1024]).collect();
        for esn in [None, Some(0), Some(0x0102_0304)] {
            let err = |len, what| Mismatch { algorithm: (c, i), len, esn_high: esn, what };
            // A burst of every length through both sessions.
            let plain: Vec<Vec<u8>> =
                lens.iter().enumerate().map(|(s, &l)| packet(c, i, l, 77 + s as u64)).collect();
            let mut a = plain.clone();
            let mut b = plain.clone();
            let mut ja: Vec<CryptoJob<'_>> = a.iter_mut().map(|x| CryptoJob::new(x, esn)).collect();
            let mut jb: Vec<CryptoJob<'_>> = b.iter_mut().map(|x| CryptoJob::new(x, esn)).collect();
            theirs.process(Operation::Seal, &mut ja);
            reference.process(Operation::Seal, &mut jb);
            for ((x, y), &l) in ja.iter().zip(&jb).zip(&lens) {
                if x.status != JobStatus::Ok || y.status != JobStatus::Ok {
                    return Err(err(l, "seal status"));
                }
            }
            drop((ja, jb));
            for ((x, y), &l) in a.iter().zip(&b).zip(&lens) {
                if x != y {
                    return Err(err(l, "sealed bytes differ from the reference"));
                }
            }
            // Open the reference's output; every plaintext comes back.
            let mut jb: Vec<CryptoJob<'_>> = b.iter_mut().map(|x| CryptoJob::new(x, esn)).collect();
            theirs.process(Operation::Open, &mut jb);
            if jb.iter().any(|j| j.status != JobStatus::Ok) {
                return Err(err(0, "open status"));
            }
            drop(jb);
            let icv = p.layout().icv_len;
            for ((x, y), &l) in b.iter().zip(&plain).zip(&lens) {
                if x.get(..x.len() - icv) != y.get(..y.len() - icv) {
                    return Err(err(l, "opened plaintext differs"));
                }
            }
            // Single bit flips anywhere (sampled) are rejected.
            let Some(sealed) = a.get(3) else { continue };
            for bit in (0..sealed.len() * 8).step_by(7) {
                let mut f = sealed.clone();
                if let Some(x) = f.get_mut(bit / 8) {
                    *x ^= 1 << (bit % 8);
                }
                let mut j = [CryptoJob::new(&mut f, esn)];
                theirs.process(Operation::Open, &mut j);
                if j[0].status != JobStatus::AuthFailed {
                    return Err(err(sealed.len(), "bit flip not rejected"));
                }
            }
            // A CBC body that is not a whole number of blocks.
            if c.block_len() == 16 {
                let mut f = packet(c, i, 33, 5);
                let mut j = [CryptoJob::new(&mut f, esn)];
                theirs.process(Operation::Open, &mut j);
                if j[0].status != JobStatus::BadLength {
                    return Err(err(33, "bad CBC length not reported"));
                }
            }
        }
    }
    Ok(checked)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::{CryptoSession, Layout};

    #[test]
    fn reference_backend_conforms() {
        assert_eq!(check_backend(&RustBackend), Ok(ALGORITHMS.len()));
    }

    /// A backend that gets one thing wrong (it ignores the ESN) is caught.
    #[derive(Debug)]
    struct IgnoresEsn;
    #[derive(Debug)]
    struct IgnoresEsnSession(Box<dyn CryptoSession>);
    impl CryptoSession for IgnoresEsnSession {
        fn layout(&self) -> Layout {
            self.0.layout()
        }
        fn process(&self, op: Operation, jobs: &mut [CryptoJob<'_>]) {
            for j in jobs.iter_mut() {
                j.esn_high = None;
            }
            self.0.process(op, jobs)
        }
        fn as_any(&self) -> &dyn core::any::Any {
            self
        }
    }
    impl CryptoBackend for IgnoresEsn {
        fn name(&self) -> &'static str {
            "broken"
        }
        fn new_session(&self, p: &CryptoParams) -> Result<Box<dyn super::super::CryptoSession>, CryptoError> {
            Ok(Box::new(IgnoresEsnSession(RustBackend.new_session(p)?)))
        }
    }

    #[test]
    fn broken_backend_is_caught() {
        let e = check_backend(&IgnoresEsn).unwrap_err();
        assert_eq!(e.esn_high, Some(0));
        assert_eq!(e.what, "sealed bytes differ from the reference");
    }
}
