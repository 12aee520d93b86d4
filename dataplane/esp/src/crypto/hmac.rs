//! HMAC (RFC 2104) over the SHA-1 and SHA-2 compression functions, with state that is wiped.
//!
//! Why our own: `hmac` 0.12 with `sha1`/`sha2` 0.10 keeps the keyed inner and outer hash
//! states, H(K xor ipad) and H(K xor opad), in types that cannot be zeroized, and those two
//! states are as good as the key (RFC 2104 §4: "the intermediate results ... must be
//! protected"). Here they are plain arrays in [`HmacKey`], wiped on drop.
//!
//! The compression functions are `sha1::compress`, `sha2::compress256` and
//! `sha2::compress512` (the crates' `compress` feature); they pick SHA-NI (or AVX2 for
//! SHA-512) at run time. Per packet, [`HmacKey::compute`] copies the two states, compresses
//! the packet's whole blocks straight from the buffer, then the final block or two
//! (FIPS 180-4 §5.1: 0x80, zeros, the message length in bits, big-endian, 64 bits for SHA-1
//! and SHA-256, 128 bits for SHA-384 and SHA-512), with the high half of the ESN appended to
//! the data when the SA uses ESN (RFC 4303 §2.2.1). The outer hash is one block. Nothing is
//! allocated. The stack copies of the keyed states are wiped before returning (the tail
//! blocks and the inner digest hold nothing key-equivalent, see `Keyed::compute`); what
//! the compression functions themselves leave in registers or in their own stack frames is
//! out of reach from safe Rust.

use super::{CryptoError, IntegrityAlgorithm};
use sha2::digest::generic_array::GenericArray;
use zeroize::Zeroize;

/// One Merkle–Damgård hash: its chaining state, block size and compression function.
trait Md {
    /// The chaining state (native-endian words).
    type State: Copy + Zeroize;
    /// FIPS 180-4 §5.3: the initial hash value.
    const IV: Self::State;
    /// Block size in bytes.
    const BLOCK: usize;
    /// Bytes of the length field in the final block.
    const LEN_BYTES: usize;
    /// Digest length in bytes.
    const OUT: usize;
    /// Compress `blocks` (a whole number of blocks) into `st`.
    fn compress(st: &mut Self::State, blocks: &[u8]);
    /// The first [`Self::OUT`] bytes of the digest, big-endian, into `out`.
    fn write(st: &Self::State, out: &mut [u8]);
}

struct Sha1;
struct Sha256;
struct Sha384;
struct Sha512;

fn write32(st: &[u32], out: &mut [u8]) {
    for (d, w) in out.chunks_exact_mut(4).zip(st) {
        d.copy_from_slice(&w.to_be_bytes());
    }
}

fn write64(st: &[u64], out: &mut [u8]) {
    for (d, w) in out.chunks_exact_mut(8).zip(st) {
        d.copy_from_slice(&w.to_be_bytes());
    }
}

impl Md for Sha1 {
    type State = [u32; 5];
    // FIPS 180-4 §5.3.1.
    const IV: [u32; 5] = [0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476, 0xc3d2e1f0];
    const BLOCK: usize = 64;
    const LEN_BYTES: usize = 8;
    const OUT: usize = 20;
    fn compress(st: &mut [u32; 5], blocks: &[u8]) {
        // One block per call: the crates offer no safe view of a byte slice as a slice of
        // blocks. The per-call cost (state load and store) is small next to a block.
        for b in blocks.chunks_exact(64) {
            sha1::compress(st, core::slice::from_ref(GenericArray::from_slice(b)));
        }
    }
    fn write(st: &[u32; 5], out: &mut [u8]) {
        write32(st, out);
    }
}

impl Md for Sha256 {
    type State = [u32; 8];
    // FIPS 180-4 §5.3.3.
    const IV: [u32; 8] =
        [0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19];
    const BLOCK: usize = 64;
    const LEN_BYTES: usize = 8;
    const OUT: usize = 32;
    fn compress(st: &mut [u32; 8], blocks: &[u8]) {
        for b in blocks.chunks_exact(64) {
            sha2::compress256(st, core::slice::from_ref(GenericArray::from_slice(b)));
        }
    }
    fn write(st: &[u32; 8], out: &mut [u8]) {
        write32(st, out);
    }
}

impl Md for Sha384 {
    type State = [u64; 8];
    // FIPS 180-4 §5.3.4.
    const IV: [u64; 8] = [
        0xcbbb9d5dc1059ed8,
        0x629a292a367cd507,
        0x9159015a3070dd17,
        0x152fecd8f70e5939,
        0x67332667ffc00b31,
        0x8eb44a8768581511,
        0xdb0c2e0d64f98fa7,
        0x47b5481dbefa4fa4,
    ];
    const BLOCK: usize = 128;
    const LEN_BYTES: usize = 16;
    // FIPS 180-4 §6.5: the leftmost 384 bits.
    const OUT: usize = 48;
    fn compress(st: &mut [u64; 8], blocks: &[u8]) {
        for b in blocks.chunks_exact(128) {
            sha2::compress512(st, core::slice::from_ref(GenericArray::from_slice(b)));
        }
    }
    fn write(st: &[u64; 8], out: &mut [u8]) {
        write64(st, out);
    }
}

impl Md for Sha512 {
    type State = [u64; 8];
    // FIPS 180-4 §5.3.5.
    const IV: [u64; 8] = [
        0x6a09e667f3bcc908,
        0xbb67ae8584caa73b,
        0x3c6ef372fe94f82b,
        0xa54ff53a5f1d36f1,
        0x510e527fade682d1,
        0x9b05688c2b3e6c1f,
        0x1f83d9abfb41bd6b,
        0x5be0cd19137e2179,
    ];
    const BLOCK: usize = 128;
    const LEN_BYTES: usize = 16;
    const OUT: usize = 64;
    fn compress(st: &mut [u64; 8], blocks: &[u8]) {
        for b in blocks.chunks_exact(128) {
            sha2::compress512(st, core::slice::from_ref(GenericArray::from_slice(b)));
        }
    }
    fn write(st: &[u64; 8], out: &mut [u8]) {
        write64(st, out);
    }
}

/// Largest block (SHA-384/512).
const MAX_BLOCK: usize = 128;
/// Largest digest (SHA-512).
const MAX_OUT: usize = 64;

/// Finish the hash in `st` over `data || extra` (`extra` at most 16 bytes), where `prior`
/// bytes were compressed before: the whole blocks of `data` from the buffer, then the padded
/// tail (FIPS 180-4 §5.1.1, §5.1.2). The tail block is wiped when `secret` (a long key being
/// hashed); a packet's tail is packet bytes, the ESN and padding, or the inner digest.
fn finish<H: Md>(st: &mut H::State, prior: usize, data: &[u8], extra: &[u8], secret: bool) {
    let whole = data.len() - data.len() % H::BLOCK;
    let (blocks, rest) = data.split_at(whole);
    H::compress(st, blocks);
    let mut tail = [0u8; 2 * MAX_BLOCK];
    let n = rest.len() + extra.len();
    // One block if the 0x80 byte and the length field fit after the rest, else two.
    let len = if n < H::BLOCK - H::LEN_BYTES { H::BLOCK } else { 2 * H::BLOCK };
    if let Some(t) = tail.get_mut(..len) {
        let (r, after) = t.split_at_mut(rest.len());
        r.copy_from_slice(rest);
        let (e, after) = after.split_at_mut(extra.len().min(after.len()));
        e.copy_from_slice(extra.get(..e.len()).unwrap_or(&[]));
        if let Some(b) = after.first_mut() {
            *b = 0x80;
        }
        // The length in bits; the upper 64 bits of SHA-512's 128-bit field stay zero (no
        // message here comes near 2^64 bits).
        let bits = ((prior + data.len() + extra.len()) as u64).wrapping_mul(8);
        if let Some(l) = t.get_mut(len - 8..) {
            l.copy_from_slice(&bits.to_be_bytes());
        }
        H::compress(st, t);
        if secret {
            t.zeroize();
        }
    }
}

/// The keyed state of one HMAC key (RFC 2104 §4: the inner and outer states precomputed).
struct Keyed<H: Md> {
    inner: H::State,
    outer: H::State,
}

impl<H: Md> Drop for Keyed<H> {
    fn drop(&mut self) {
        self.inner.zeroize();
        self.outer.zeroize();
    }
}

impl<H: Md> Keyed<H> {
    fn new(key: &[u8]) -> Self {
        // RFC 2104 §2: a key longer than the block is hashed first; then it is padded with
        // zeros to the block and xored with ipad (0x36) and opad (0x5c).
        let mut k0 = [0u8; MAX_BLOCK];
        if key.len() > H::BLOCK {
            let mut st = H::IV;
            finish::<H>(&mut st, 0, key, &[], true);
            H::write(&st, k0.get_mut(..H::OUT).unwrap_or(&mut []));
            st.zeroize();
        } else if let Some(d) = k0.get_mut(..key.len()) {
            d.copy_from_slice(key);
        }
        let mut pad = [0u8; MAX_BLOCK];
        let mut state = |byte: u8| {
            for (p, k) in pad.iter_mut().zip(k0.iter()) {
                *p = *k ^ byte;
            }
            let mut st = H::IV;
            H::compress(&mut st, pad.get(..H::BLOCK).unwrap_or(&[]));
            st
        };
        let keyed = Keyed { inner: state(0x36), outer: state(0x5c) };
        pad.zeroize();
        k0.zeroize();
        keyed
    }

    /// HMAC over `data || extra`, truncated to `out.len()` (at most [`Md::OUT`]).
    ///
    /// The copies of the keyed states are key-equivalent until the first compression
    /// overwrites them in place; they are wiped at the end anyway, in case the compiler kept
    /// another copy in this frame. The tail blocks and the inner digest are not wiped: they
    /// hold packet bytes, the ESN, padding and H(K xor ipad || data), none of which gives the
    /// key or a keyed state (wiping them byte by byte doubled the time of a 64-byte packet:
    /// 470 against 200 ns, `hmac-impl/ours/sha1/64`).
    fn compute(&self, data: &[u8], extra: &[u8], out: &mut [u8]) {
        let mut st = self.inner;
        finish::<H>(&mut st, H::BLOCK, data, extra, false);
        let mut digest = [0u8; MAX_OUT];
        let d = digest.get_mut(..H::OUT).unwrap_or(&mut []);
        H::write(&st, d);
        let mut ost = self.outer;
        finish::<H>(&mut ost, H::BLOCK, d, &[], false);
        H::write(&ost, d);
        for (o, s) in out.iter_mut().zip(d.iter()) {
            *o = *s;
        }
        st.zeroize();
        ost.zeroize();
    }
}

enum Alg {
    Sha1(Keyed<Sha1>),
    Sha256(Keyed<Sha256>),
    Sha384(Keyed<Sha384>),
    Sha512(Keyed<Sha512>),
}

/// An HMAC key, keyed once (per SA): the precomputed inner and outer chaining states, wiped
/// when dropped.
pub struct HmacKey(Alg);

impl core::fmt::Debug for HmacKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("HmacKey").finish_non_exhaustive()
    }
}

// Every variant wipes its states in `Keyed::drop`.
impl zeroize::ZeroizeOnDrop for HmacKey {}

impl HmacKey {
    /// Key `alg`'s HMAC with `key`, of any length (RFC 2104 §3; ESP's keys have fixed lengths,
    /// which [`super::CryptoParams::validate`] checks).
    pub fn new(alg: IntegrityAlgorithm, key: &[u8]) -> Result<Self, CryptoError> {
        Ok(HmacKey(match alg {
            IntegrityAlgorithm::HmacSha1_96 => Alg::Sha1(Keyed::new(key)),
            IntegrityAlgorithm::HmacSha256_128 => Alg::Sha256(Keyed::new(key)),
            IntegrityAlgorithm::HmacSha384_192 => Alg::Sha384(Keyed::new(key)),
            IntegrityAlgorithm::HmacSha512_256 => Alg::Sha512(Keyed::new(key)),
            IntegrityAlgorithm::None => return Err(CryptoError::BadAlgorithmCombination),
        }))
    }

    /// Full digest length in bytes.
    pub fn digest_len(&self) -> usize {
        match self.0 {
            Alg::Sha1(_) => Sha1::OUT,
            Alg::Sha256(_) => Sha256::OUT,
            Alg::Sha384(_) => Sha384::OUT,
            Alg::Sha512(_) => Sha512::OUT,
        }
    }

    /// HMAC over `data`, followed by `esn_high` big-endian when present (RFC 4303 §2.2.1: the
    /// high half of the ESN is in the ICV, not in the packet), truncated into `out`
    /// (RFC 2104 §5, RFC 2404, RFC 4868 §2.1.1: the leftmost `out.len()` bytes).
    pub fn compute(&self, data: &[u8], esn_high: Option<u32>, out: &mut [u8]) {
        let hi = esn_high.map(u32::to_be_bytes);
        let extra: &[u8] = match &hi {
            Some(b) => b,
            None => &[],
        };
        match &self.0 {
            Alg::Sha1(k) => k.compute(data, extra, out),
            Alg::Sha256(k) => k.compute(data, extra, out),
            Alg::Sha384(k) => k.compute(data, extra, out),
            Alg::Sha512(k) => k.compute(data, extra, out),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hmac::Mac;
    use proptest::prelude::*;

    fn reference(alg: IntegrityAlgorithm, key: &[u8], data: &[u8], esn: Option<u32>) -> Vec<u8> {
        fn run<M: Mac + hmac::digest::KeyInit>(key: &[u8], data: &[u8], esn: Option<u32>) -> Vec<u8> {
            let mut m = <M as Mac>::new_from_slice(key).unwrap();
            m.update(data);
            if let Some(hi) = esn {
                m.update(&hi.to_be_bytes());
            }
            m.finalize().into_bytes().to_vec()
        }
        match alg {
            IntegrityAlgorithm::HmacSha1_96 => run::<hmac::Hmac<sha1::Sha1>>(key, data, esn),
            IntegrityAlgorithm::HmacSha256_128 => run::<hmac::Hmac<sha2::Sha256>>(key, data, esn),
            IntegrityAlgorithm::HmacSha384_192 => run::<hmac::Hmac<sha2::Sha384>>(key, data, esn),
            IntegrityAlgorithm::HmacSha512_256 => run::<hmac::Hmac<sha2::Sha512>>(key, data, esn),
            IntegrityAlgorithm::None => unreachable!(),
        }
    }

    const ALGS: [IntegrityAlgorithm; 4] = [
        IntegrityAlgorithm::HmacSha1_96,
        IntegrityAlgorithm::HmacSha256_128,
        IntegrityAlgorithm::HmacSha384_192,
        IntegrityAlgorithm::HmacSha512_256,
    ];

    /// Every data length around the padding boundaries (one block or two for the tail, with
    /// and without the 4 ESN bytes), keys shorter than, equal to and longer than the block.
    #[test]
    fn padding_boundaries_match_the_hmac_crate() {
        for alg in ALGS {
            for klen in [0usize, 1, 20, 64, 65, 128, 129, 200] {
                let key: Vec<u8> = (0..klen).map(|i| (i * 7 + 1) as u8).collect();
                let k = HmacKey::new(alg, &key).unwrap();
                for len in 0..300 {
                    let data: Vec<u8> = (0..len).map(|i| (i * 13 + 5) as u8).collect();
                    for esn in [None, Some(0xdead_beef)] {
                        let want = reference(alg, &key, &data, esn);
                        let mut got = vec![0u8; k.digest_len()];
                        k.compute(&data, esn, &mut got);
                        assert_eq!(got, want, "{alg:?} key {klen} data {len} esn {esn:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn truncation_takes_the_leftmost_bytes() {
        let k = HmacKey::new(IntegrityAlgorithm::HmacSha256_128, &[0x0b; 32]).unwrap();
        let mut full = [0u8; 32];
        let mut short = [0u8; 16];
        k.compute(b"Hi There", None, &mut full);
        k.compute(b"Hi There", None, &mut short);
        assert_eq!(full[..16], short);
        assert_eq!(
            HmacKey::new(IntegrityAlgorithm::None, &[]).unwrap_err(),
            CryptoError::BadAlgorithmCombination
        );
    }

    proptest! {
        #[test]
        fn random_keys_lengths_and_esn_match_the_hmac_crate(
            a in 0usize..4,
            key in proptest::collection::vec(any::<u8>(), 0..200),
            data in proptest::collection::vec(any::<u8>(), 0..1600),
            esn in proptest::option::of(any::<u32>()),
        ) {
            let alg = ALGS[a];
            let k = HmacKey::new(alg, &key).unwrap();
            let mut got = vec![0u8; k.digest_len()];
            k.compute(&data, esn, &mut got);
            prop_assert_eq!(got, reference(alg, &key, &data, esn));
        }
    }
}
