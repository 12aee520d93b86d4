//! Our private keys leave no key material in the heap memory they free: a
//! key read from PEM, used to sign HASH_I and dropped (the scanning
//! allocator of `ffi/wipe`, as in zeroize.rs). Keys are made by `openssl`.

mod common;

use common::certs::run_openssl;
use ike::auth::PrivateKey;
use rand_chacha::rand_core::SeedableRng;
use wipe::scan::{arm, disarm, serial, ScanAlloc};

#[global_allocator]
static A: ScanAlloc = ScanAlloc;

#[test]
fn the_scanner_sees_a_key_left_in_a_freed_block() {
    let _g = serial();
    wipe::scan::assert_sees_an_unwiped_vec(b"an unwiped key 0123456789abcdef!");
}

/// Reads `pem`, signs with it and drops it, armed with `needles`.
fn read_sign_drop(pem: &[u8], needles: &[&[u8]]) -> Vec<u32> {
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(1);
    arm(needles);
    let key = PrivateKey::from_pem_or_der(pem).expect("key");
    let sig = key.sign_hash(&[7; 32], &mut rng).expect("signs");
    drop(key);
    drop(sig);
    disarm()[..needles.len()].to_vec()
}

#[test]
fn ecdsa_keys_are_wiped() {
    let _g = serial();
    let dir = tempfile::tempdir().unwrap();
    for curve in ["P-256", "P-384"] {
        run_openssl(
            dir.path(),
            &[
                "genpkey",
                "-algorithm",
                "EC",
                "-pkeyopt",
                &format!("ec_paramgen_curve:{curve}"),
                "-out",
                "k.pem",
            ],
        );
        let pem = std::fs::read(dir.path().join("k.pem")).unwrap();
        let text = String::from_utf8(pem.clone()).unwrap();
        let scalar = if curve == "P-256" {
            p256::SecretKey::from_pkcs8_pem(&text).unwrap().to_bytes().to_vec()
        } else {
            p384::SecretKey::from_pkcs8_pem(&text).unwrap().to_bytes().to_vec()
        };
        let reversed: Vec<u8> = scalar.iter().rev().copied().collect();
        let hits = read_sign_drop(&pem, &[&scalar, &reversed]);
        assert_eq!(hits, vec![0, 0], "{curve}: the private scalar (as is, reversed) left in freed memory");
    }
}

/// Known to fail, hence ignored (run it with `--ignored`): `rsa` 0.9 wipes
/// its key on drop, but its big-integer temporaries (`num-bigint-dig`) are
/// freed unwiped. Measured (2048-bit key): parsing alone leaves d in 2 freed
/// blocks and p in 9 (little-endian limbs, from the CRT precomputation and
/// the key check), one signature 4 more with p. Nothing in this crate holds
/// those temporaries; see docs/ike.md (signature authentication).
#[test]
#[ignore = "rsa 0.9 frees big-integer temporaries of d and p unwiped"]
fn rsa_keys_are_wiped() {
    use rsa::traits::PrivateKeyParts;
    let _g = serial();
    let dir = tempfile::tempdir().unwrap();
    run_openssl(
        dir.path(),
        &["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", "k.pem"],
    );
    let pem = std::fs::read(dir.path().join("k.pem")).unwrap();
    let k = rsa::RsaPrivateKey::from_pkcs8_pem(&String::from_utf8(pem.clone()).unwrap()).unwrap();
    // The private exponent and the primes, as DER holds them (big-endian)
    // and as the big integers do (little-endian limbs); 64 bytes of each.
    let parts =
        [k.d().to_bytes_be(), k.d().to_bytes_le(), k.primes()[0].to_bytes_be(), k.primes()[0].to_bytes_le()];
    let needles: Vec<&[u8]> = parts.iter().map(|p| &p[8..72]).collect();
    let hits = read_sign_drop(&pem, &needles);
    assert_eq!(hits, vec![0; 4], "d (be, le), p (be, le) left in freed memory");
}

use p256::pkcs8::DecodePrivateKey;
