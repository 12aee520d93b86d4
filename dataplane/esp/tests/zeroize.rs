//! The pure-Rust backend's sessions leave no key material in the memory they free.
//!
//! This binary's global allocator (`ffi/wipe/src/scan.rs`) searches every block freed while a
//! test is armed for needles: the cipher key (AES round key 0 of the schedule; round key 1 too
//! for AES-256), the salt (RFC 4106 §8.1 keying material), the GHASH key H = AES_K(0^128) in
//! the forms a GHASH implementation keeps it (as is, byte-reversed, and POLYVAL's
//! `mulx(reverse(H))`, RFC 8452 Appendix A), the integrity key and the HMAC inner and outer
//! chaining states H(K xor ipad), H(K xor opad) (RFC 2104 §4: they are key-equivalent), in
//! memory order and as big-endian bytes. Each case builds a session through
//! `RustBackend::new_session`, seals and opens a packet, drops the session and asserts that
//! no freed block held a needle.
//!
//! `the_scanner_sees_a_key_left_in_a_freed_block` is the control: an unwiped `Vec` is seen.

use wipe::scan as scan_alloc;

use aes::cipher::{BlockEncrypt, KeyInit};
use esp::crypto::rust::RustBackend;
use esp::crypto::{
    CipherAlgorithm as C, CryptoBackend, CryptoJob, CryptoParams, IntegrityAlgorithm as I, JobStatus,
    Operation,
};
use ring::rand::{SecureRandom, SystemRandom};
use scan_alloc::{arm, disarm, serial, ScanAlloc};
use sha2::digest::generic_array::GenericArray;
use zeroize::Zeroizing;

#[global_allocator]
static ALLOC: ScanAlloc = ScanAlloc;

/// A needle and its name, on the stack (a heap copy would itself be a finding).
struct Needle {
    name: &'static str,
    len: usize,
    bytes: [u8; 64],
}

impl Needle {
    fn new(name: &'static str, b: &[u8]) -> Self {
        let mut bytes = [0u8; 64];
        bytes[..b.len()].copy_from_slice(b);
        Needle { name, len: b.len(), bytes }
    }
}

fn random<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    SystemRandom::new().fill(&mut b).unwrap();
    b
}

// FIPS 180-4 §5.3.1, §5.3.3, §5.3.4, §5.3.5.
const SHA1_IV: [u32; 5] = [0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476, 0xc3d2e1f0];
const SHA256_IV: [u32; 8] =
    [0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19];
const SHA384_IV: [u64; 8] = [
    0xcbbb9d5dc1059ed8,
    0x629a292a367cd507,
    0x9159015a3070dd17,
    0x152fecd8f70e5939,
    0x67332667ffc00b31,
    0x8eb44a8768581511,
    0xdb0c2e0d64f98fa7,
    0x47b5481dbefa4fa4,
];
const SHA512_IV: [u64; 8] = [
    0x6a09e667f3bcc908,
    0xbb67ae8584caa73b,
    0x3c6ef372fe94f82b,
    0xa54ff53a5f1d36f1,
    0x510e527fade682d1,
    0x9b05688c2b3e6c1f,
    0x1f83d9abfb41bd6b,
    0x5be0cd19137e2179,
];

/// RFC 2104 §2: the key padded to the block, xored with `pad`.
fn pad_block<const B: usize>(key: &[u8], pad: u8) -> [u8; B] {
    let mut b = [pad; B];
    for (d, k) in b.iter_mut().zip(key) {
        *d ^= *k;
    }
    b
}

/// The two HMAC chaining states of `key` (not longer than the block), each in memory order
/// (native-endian words, as a hash core stores them) and as big-endian bytes.
fn hmac_states(alg: I, key: &[u8], out: &mut Vec<Needle>) {
    fn push32(out: &mut Vec<Needle>, names: [&'static str; 2], st: &[u32]) {
        let ne: Vec<u8> = st.iter().flat_map(|w| w.to_ne_bytes()).collect();
        let be: Vec<u8> = st.iter().flat_map(|w| w.to_be_bytes()).collect();
        out.push(Needle::new(names[0], &ne));
        out.push(Needle::new(names[1], &be));
    }
    fn push64(out: &mut Vec<Needle>, names: [&'static str; 2], st: &[u64]) {
        let ne: Vec<u8> = st.iter().flat_map(|w| w.to_ne_bytes()).collect();
        let be: Vec<u8> = st.iter().flat_map(|w| w.to_be_bytes()).collect();
        out.push(Needle::new(names[0], &ne));
        out.push(Needle::new(names[1], &be));
    }
    let names_i = ["HMAC inner state (memory order)", "HMAC inner state (big-endian)"];
    let names_o = ["HMAC outer state (memory order)", "HMAC outer state (big-endian)"];
    match alg {
        I::HmacSha1_96 => {
            for (pad, names) in [(0x36, names_i), (0x5c, names_o)] {
                let mut st = SHA1_IV;
                sha1::compress(&mut st, &[GenericArray::clone_from_slice(&pad_block::<64>(key, pad))]);
                push32(out, names, &st);
            }
        }
        I::HmacSha256_128 => {
            for (pad, names) in [(0x36, names_i), (0x5c, names_o)] {
                let mut st = SHA256_IV;
                sha2::compress256(&mut st, &[GenericArray::clone_from_slice(&pad_block::<64>(key, pad))]);
                push32(out, names, &st);
            }
        }
        I::HmacSha384_192 | I::HmacSha512_256 => {
            let iv = if alg == I::HmacSha384_192 { SHA384_IV } else { SHA512_IV };
            for (pad, names) in [(0x36, names_i), (0x5c, names_o)] {
                let mut st = iv;
                sha2::compress512(&mut st, &[GenericArray::clone_from_slice(&pad_block::<128>(key, pad))]);
                push64(out, names, &st);
            }
        }
        I::None => {}
    }
}

/// GHASH key H = AES_K(0^128) (RFC 4106 §3 via NIST SP 800-38D §6.4) in three forms.
fn ghash_keys(key: &[u8], out: &mut Vec<Needle>) {
    let mut h = aes::Block::default();
    match key.len() {
        16 => aes::Aes128::new_from_slice(key).unwrap().encrypt_block(&mut h),
        24 => aes::Aes192::new_from_slice(key).unwrap().encrypt_block(&mut h),
        32 => aes::Aes256::new_from_slice(key).unwrap().encrypt_block(&mut h),
        n => panic!("AES key of {n} bytes"),
    }
    let mut rev = h;
    rev.reverse();
    let pv = polyval::mulx(&rev);
    out.push(Needle::new("GHASH key H", &h));
    out.push(Needle::new("GHASH key H, byte-reversed", &rev));
    out.push(Needle::new("GHASH key H, POLYVAL form mulx(rev(H))", &pv));
}

fn random_params(c: C, i: I) -> CryptoParams {
    let ck: [u8; 36] = random();
    let ak: [u8; 64] = random();
    CryptoParams {
        cipher: c,
        integrity: i,
        cipher_key: Zeroizing::new(ck[..c.key_len() + c.salt_len()].to_vec()),
        auth_key: Zeroizing::new(ak[..i.key_len()].to_vec()),
    }
}

/// Every needle of `p`'s session.
fn needles_of(p: &CryptoParams) -> Vec<Needle> {
    let mut v = Vec::new();
    let klen = p.cipher.key_len();
    if klen > 0 {
        let k = &p.cipher_key[..klen];
        v.push(Needle::new("AES round key 0 (the key)", &k[..16]));
        if klen == 32 {
            v.push(Needle::new("AES-256 round key 1", &k[16..]));
        }
        if klen == 24 {
            // AES-192's second round key starts with the key's last 8 bytes.
            v.push(Needle::new("AES-192 round key 1, first half", &k[16..]));
        }
    }
    if p.cipher.is_aead() {
        v.push(Needle::new("GCM salt", &p.cipher_key[klen..]));
        ghash_keys(&p.cipher_key[..klen], &mut v);
    }
    if p.integrity != I::None {
        v.push(Needle::new("integrity key", &p.auth_key));
        hmac_states(p.integrity, &p.auth_key, &mut v);
    }
    v
}

/// Build, seal, open, drop, with the scanner armed; the needles seen in freed blocks.
fn leaks(p: &CryptoParams, needles: &[Needle]) -> Vec<(&'static str, u32)> {
    let refs: Vec<&[u8]> = needles.iter().map(|n| &n.bytes[..n.len]).collect();
    let lay = p.layout();
    let mut pkt = vec![0x5au8; 8 + lay.iv_len + 64 + lay.icv_len];
    arm(&refs);
    {
        let s = RustBackend.new_session(p).unwrap();
        let mut j = [CryptoJob::new(&mut pkt, Some(7))];
        s.process(Operation::Seal, &mut j);
        assert_eq!(j[0].status, JobStatus::Ok);
        let mut j = [CryptoJob::new(&mut pkt, Some(7))];
        s.process(Operation::Open, &mut j);
        assert_eq!(j[0].status, JobStatus::Ok);
        // A second session, dropped first: per-SA state created and freed while another lives.
        let s2 = RustBackend.new_session(p).unwrap();
        drop(s2);
        drop(s);
    }
    let hits = disarm();
    needles.iter().zip(hits).filter(|(_, h)| *h > 0).map(|(n, h)| (n.name, h)).collect()
}

#[test]
fn the_scanner_sees_a_key_left_in_a_freed_block() {
    let _g = serial();
    let key: [u8; 16] = random();
    scan_alloc::assert_sees_an_unwiped_vec(&key);
}

#[test]
fn rust_backend_sessions_leave_no_key_material_in_freed_memory() {
    let _g = serial();
    let cases = [
        (C::AesGcm128, I::None),
        (C::AesGcm192, I::None),
        (C::AesGcm256, I::None),
        (C::AesCbc128, I::HmacSha1_96),
        (C::AesCbc192, I::HmacSha256_128),
        (C::AesCbc256, I::HmacSha256_128),
        (C::Null, I::HmacSha1_96),
        (C::Null, I::HmacSha256_128),
        (C::Null, I::HmacSha384_192),
        (C::Null, I::HmacSha512_256),
    ];
    let mut failures = Vec::new();
    for (c, i) in cases {
        let p = random_params(c, i);
        let needles = needles_of(&p);
        let found = leaks(&p, &needles);
        if !found.is_empty() {
            failures.push(format!("{c:?}/{i:?}: {found:?}"));
        }
    }
    assert!(failures.is_empty(), "key material in freed memory:\n{}", failures.join("\n"));
}

/// Why the backend does not use `aes_gcm::AesGcm` as it is: with its `zeroize` feature the
/// AES round keys are wiped on drop, but polyval 0.6.2's run-time-detected backend keeps the
/// CLMUL state in a `ManuallyDrop` and has no `Drop` of its own, so H in POLYVAL form stays in
/// the freed block. (In optimised builds the AES key may be found as well: the unused tail of
/// `aes`'s run-time-detected union is filled with stale stack when the value moves, the reason
/// the backend keeps its sessions in a `wipe::WipeBox`.) If this starts failing, polyval has
/// fixed it: the backend's own `GcmSession` drop can then be simplified (see `crypto/rust.rs`).
#[test]
fn aes_gcm_0_10_leaves_the_ghash_key_in_freed_memory() {
    use aes_gcm::aead::KeyInit as _;
    let _g = serial();
    let p = random_params(C::AesGcm128, I::None);
    let needles = needles_of(&p);
    let refs: Vec<&[u8]> = needles.iter().map(|n| &n.bytes[..n.len]).collect();
    arm(&refs);
    let g = Box::new(aes_gcm::Aes128Gcm::new_from_slice(&p.cipher_key[..16]).unwrap());
    drop(g);
    let hits = disarm();
    let found: Vec<_> = needles.iter().zip(hits).filter(|(_, h)| *h > 0).map(|(n, _)| n.name).collect();
    assert!(found.contains(&"GHASH key H, POLYVAL form mulx(rev(H))"), "{found:?}");
}

/// `WipeBox` zeroes the whole block whatever the type's own `Drop` does; the same value in a
/// plain `Box` is seen (the control).
#[test]
fn wipe_box_wipes_what_the_value_leaves() {
    struct Leaky([u8; 48]);
    let _g = serial();
    let key: [u8; 48] = random();
    arm(&[&key]);
    drop(Box::new(Leaky(key)));
    assert_eq!(disarm()[0], 1, "a plain Box leaves the bytes");
    arm(&[&key]);
    let b = wipe::WipeBox::new(Leaky(key));
    assert_eq!(b.0, key);
    drop(b);
    assert_eq!(disarm()[0], 0, "WipeBox left the bytes");
}
