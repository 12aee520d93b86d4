use super::dh::{modp_pow, modp_prime};
use super::*;
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;

fn h(s: &str) -> Vec<u8> {
    hex::decode(s.replace([' ', '\n'], "")).unwrap()
}

#[test]
fn hmac_rfc4231_case2() {
    let key = b"Jefe";
    let data: &[u8] = b"what do ya want for nothing?";
    assert_eq!(
        *HashAlgorithm::Sha256.prf(key, &[&data[..10], &data[10..]]),
        h("5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
    );
    assert_eq!(
        *HashAlgorithm::Sha512.prf(key, &[data]),
        h("164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea250554\
           9758bf75c05a994a6d034f65f8f0e6fdcaeab1a34d4a6b4b636e070a38bce737")
    );
    assert_eq!(
        *HashAlgorithm::Sha384.prf(key, &[data]),
        h("af45d2e376484031617f78d2b58a6b1b9c7ef464f5a01b47e42ec3736322445e\
           8e2240ca5e69e2c78b3239ecfab21649")
    );
}

#[test]
fn hmac_sha1_rfc2202_case2() {
    assert_eq!(
        *HashAlgorithm::Sha1.prf(b"Jefe", &[b"what do ya want for nothing?"]),
        h("effcdf6ae5eb2fa2d27416d5f184df9c259a7c79")
    );
}

#[test]
fn aes_cbc_rfc3602_case2() {
    let key = h("c286696d887c9aa0611bbb3e2025a45a");
    let iv = h("562e17996d093d28ddb3ba695a2e6f58");
    let pt = h("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f");
    let ct = h("d296cd94c2cccf8a3a863028b5e1dc0a7586602d253cfff91b8266bea6d61ab1");
    let mut buf = pt.clone();
    Cipher::Aes128Cbc.encrypt(&key, &iv, &mut buf).unwrap();
    assert_eq!(buf, ct);
    Cipher::Aes128Cbc.decrypt(&key, &iv, &mut buf).unwrap();
    assert_eq!(buf, pt);
    let mut odd = vec![0u8; 17];
    assert_eq!(Cipher::Aes128Cbc.encrypt(&key, &iv, &mut odd), Err(CryptoError::InvalidLength));
    assert_eq!(
        Cipher::Aes256Cbc.decrypt(&key, &iv, &mut buf),
        Err(CryptoError::InvalidLength),
        "wrong key length"
    );
}

#[test]
fn modp_primes_match_rfc_words() {
    // RFC 3526 §3: group 14 begins FFFFFFFF FFFFFFFF C90FDAA2 2168C234 and
    // ends 15728E5A 8AACAA68 FFFFFFFF FFFFFFFF.
    let p = modp_prime(DhGroup::Modp2048).unwrap();
    assert_eq!(p.len(), 256);
    assert_eq!(&p[..16], &h("FFFFFFFFFFFFFFFFC90FDAA22168C234")[..]);
    assert_eq!(&p[240..], &h("15728E5A8AACAA68FFFFFFFFFFFFFFFF")[..]);
    // RFC 2409 §6.2: group 2 ends ... 49286651 ECE65381 FFFFFFFF FFFFFFFF.
    let p2 = modp_prime(DhGroup::Modp1024).unwrap();
    assert_eq!(&p2[112..], &h("49286651ECE65381FFFFFFFFFFFFFFFF")[..]);
    // RFC 3526 §7: group 18 ends ... 60C980DD 98EDD3DF FFFFFFFF FFFFFFFF.
    let p18 = modp_prime(DhGroup::Modp8192).unwrap();
    assert_eq!(&p18[1008..], &h("60C980DD98EDD3DFFFFFFFFFFFFFFFFF")[..]);
}

#[test]
fn modp_pow_small_values() {
    // 2^10 mod p = 1024 for any group.
    let r = modp_pow(DhGroup::Modp1536, &[2], &[10]).unwrap();
    assert_eq!(r.len(), 192);
    assert_eq!(&r[190..], &[4, 0]);
    assert!(r[..190].iter().all(|b| *b == 0));
}

#[test]
fn every_group_agrees() {
    let mut rng = ChaCha20Rng::seed_from_u64(7);
    for g in DhGroup::ALL {
        let a = DhSecret::generate(g, &mut rng).unwrap();
        let b = DhSecret::generate(g, &mut rng).unwrap();
        assert_eq!(a.public_value().len(), g.public_len(), "{g:?}");
        let za = a.agree(b.public_value()).unwrap();
        let zb = b.agree(a.public_value()).unwrap();
        assert_eq!(*za, *zb, "{g:?}");
        assert!(za.iter().any(|x| *x != 0));
        assert_eq!(DhGroup::from_id(g.id()), Some(g));
    }
}

#[test]
fn modp_rejects_out_of_range() {
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let a = DhSecret::generate(DhGroup::Modp2048, &mut rng).unwrap();
    let p = modp_prime(DhGroup::Modp2048).unwrap();
    let mut one = vec![0u8; 256];
    one[255] = 1;
    let mut pm1 = p.clone();
    pm1[255] -= 1;
    for bad in [vec![0u8; 256], one, pm1, p.clone(), vec![0xff; 256], vec![2u8; 255]] {
        assert_eq!(a.agree(&bad), Err(CryptoError::InvalidPublicValue));
    }
    let mut two = vec![0u8; 256];
    two[255] = 2;
    assert!(a.agree(&two).is_ok());
}

#[test]
fn ecp_rejects_off_curve() {
    let mut rng = ChaCha20Rng::seed_from_u64(2);
    for g in [DhGroup::Ecp256, DhGroup::Ecp384, DhGroup::Ecp521] {
        let a = DhSecret::generate(g, &mut rng).unwrap();
        let mut bad = a.public_value().to_vec();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert_eq!(a.agree(&bad), Err(CryptoError::InvalidPublicValue), "{g:?}");
        assert_eq!(a.agree(&vec![0u8; g.public_len()]), Err(CryptoError::InvalidPublicValue));
    }
}

#[test]
fn x25519_rejects_low_order() {
    let mut rng = ChaCha20Rng::seed_from_u64(3);
    let a = DhSecret::generate(DhGroup::Curve25519, &mut rng).unwrap();
    assert_eq!(a.agree(&[0u8; 32]), Err(CryptoError::InvalidPublicValue));
    let mut one = [0u8; 32];
    one[0] = 1;
    assert_eq!(a.agree(&one), Err(CryptoError::InvalidPublicValue));
    assert_eq!(a.agree(&[9u8; 31]), Err(CryptoError::InvalidPublicValue));
}

#[test]
fn x25519_rfc7748_vector() {
    let a = DhSecret::from_private_bytes(
        DhGroup::Curve25519,
        &h("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a"),
    )
    .unwrap();
    assert_eq!(a.public_value(), &h("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a")[..]);
    let z = a.agree(&h("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f")).unwrap();
    assert_eq!(*z, h("4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742"));
}

#[test]
fn short_exponent_length() {
    let mut rng = ChaCha20Rng::seed_from_u64(4);
    for (g, strength) in [
        (DhGroup::Modp1024, 80),
        (DhGroup::Modp1536, 96),
        (DhGroup::Modp2048, 112),
        (DhGroup::Modp3072, 128),
        (DhGroup::Modp4096, 152),
        (DhGroup::Modp6144, 176),
        (DhGroup::Modp8192, 200),
    ] {
        assert!(g.exponent_bits() >= 2 * strength, "{g:?}");
        let _ = DhSecret::generate(g, &mut rng).unwrap();
    }
}
