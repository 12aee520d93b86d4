//! AES-CBC + HMAC-SHA1/256/384/512 through the burst API, checked against
//! RustCrypto (`aes` + `cbc` + `hmac` + `sha1`/`sha2`) on ESP-shaped packets,
//! with and without ESN (RFC 4303 §2.2.1: ICV over ESP || ESN-high).

mod common;

use common::{esp_cbc_packet, managers, ref_cbc_decrypt, ref_esp_cbc, Rng, ALL_HMACS};
use ipsec_mb::{CbcHmacKey, CbcHmacOp, HmacAlg, MbMgr, OpStatus};

/// An operation authenticated from the start of `buf`, without ESN (the ESP layout these
/// tests build): cipher range `cipher_offset..+cipher_len`, ICV after `auth_len` bytes.
fn op<'a>(
    key: &'a CbcHmacKey,
    iv: [u8; 16],
    buf: &'a mut [u8],
    cipher_offset: usize,
    cipher_len: usize,
    auth_len: usize,
) -> CbcHmacOp<'a> {
    CbcHmacOp { key, iv, buf, cipher_offset, cipher_len, auth_offset: 0, auth_len, esn_high: None }
}

fn auth_key_len(alg: HmacAlg) -> usize {
    // RFC 2404 / RFC 4868: key length = full digest length.
    alg.digest_len()
}

#[test]
fn cbc_hmac_matches_rustcrypto_for_all_hmacs() {
    let mut rng = Rng::new(0x05ee_dcbc);
    for mut mgr in managers() {
        for aes_len in [16usize, 24, 32] {
            for alg in ALL_HMACS {
                for esn in [None, Some(0x0102_0304u32)] {
                    let aes_key = rng.bytes(aes_len);
                    let auth_key = rng.bytes(auth_key_len(alg));
                    let key = CbcHmacKey::new(&mgr, &aes_key, alg, &auth_key).unwrap();
                    let iv: [u8; 16] = rng.bytes(16).try_into().unwrap();
                    let payload = rng.bytes(96);
                    let (mut pkt, co, cl, al) = esp_cbc_packet(0x1000_0001, 7, &iv, &payload, alg.icv_len());
                    let expected = ref_esp_cbc(&aes_key, alg, &auth_key, &pkt, cl, esn);
                    let st = mgr.cbc_hmac_encrypt_one(CbcHmacOp {
                        key: &key,
                        iv,
                        buf: &mut pkt,
                        cipher_offset: co,
                        cipher_len: cl,
                        auth_offset: 0,
                        auth_len: al,
                        esn_high: esn,
                    });
                    assert_eq!(st, OpStatus::Completed);
                    assert_eq!(
                        pkt,
                        expected,
                        "{alg:?} AES-{} esn={esn:?} {:?}",
                        aes_len * 8,
                        mgr.submit_mode()
                    );

                    // Decrypt + verify restores the plaintext and leaves the ICV.
                    let st = mgr.cbc_hmac_decrypt_one(CbcHmacOp {
                        key: &key,
                        iv,
                        buf: &mut pkt,
                        cipher_offset: co,
                        cipher_len: cl,
                        auth_offset: 0,
                        auth_len: al,
                        esn_high: esn,
                    });
                    assert_eq!(st, OpStatus::Completed, "{alg:?} esn={esn:?}");
                    assert_eq!(pkt[co..co + cl].to_vec(), payload);
                    assert_eq!(pkt[al..], expected[al..], "received ICV must be restored");
                }
            }
        }
    }
}

/// AES-192-CBC known answer: NIST SP 800-38A F.2.3 (encrypt) and F.2.4
/// (decrypt), the four-block CBC-AES192 example (RFC 3602 has no AES-192
/// case), as the ciphertext of an ESP packet with HMAC-SHA-256-128.
#[test]
fn aes192_cbc_sp800_38a() {
    let key = common::hex("8e73b0f7da0e6452c810f32b809079e562f8ead2522c6b7b");
    let iv: [u8; 16] = common::hex("000102030405060708090a0b0c0d0e0f").try_into().unwrap();
    let pt = common::hex(
        "6bc1bee22e409f96e93d7e117393172a ae2d8a571e03ac9c9eb76fac45af8e51
         30c81c46a35ce411e5fbc1191a0a52ef f69f2445df4f9b17ad2b417be66c3710",
    );
    let ct = common::hex(
        "4f021db243bc633d7178183a9fa071e8 b4d9ada9ad7dedf4e5e738763f69145a
         571b242012fb7ae07fa9baac3df102e0 08b0e27988598881d920a9e64f5615cd",
    );
    let alg = HmacAlg::Sha256_128;
    let auth_key = [0x0b; 32];
    for mut mgr in managers() {
        let k = CbcHmacKey::new(&mgr, &key, alg, &auth_key).unwrap();
        assert_eq!(k.key_size(), ipsec_mb::AesKeySize::Aes192);
        let (mut pkt, co, cl, al) = esp_cbc_packet(0x0000_0192, 1, &iv, &pt, alg.icv_len());
        let st = mgr.cbc_hmac_encrypt_one(op(&k, iv, &mut pkt, co, cl, al));
        assert_eq!(st, OpStatus::Completed, "{:?}", mgr.submit_mode());
        assert_eq!(pkt[co..co + cl].to_vec(), ct, "F.2.3 ciphertext ({:?})", mgr.submit_mode());
        assert_eq!(pkt[al..].to_vec(), common::ref_hmac(alg, &auth_key, &pkt[..al]));
        let st = mgr.cbc_hmac_decrypt_one(op(&k, iv, &mut pkt, co, cl, al));
        assert_eq!(st, OpStatus::Completed);
        assert_eq!(pkt[co..co + cl].to_vec(), pt, "F.2.4 plaintext");
    }
}

/// RFC 2202 test case 6 style: an HMAC key longer than the block is hashed
/// first (RFC 2104 §2).
#[test]
fn long_hmac_keys() {
    let mut rng = Rng::new(77);
    let mut mgr = MbMgr::new().unwrap();
    for alg in ALL_HMACS {
        let aes_key = rng.bytes(16);
        let auth_key = rng.bytes(alg.block_len() + 3);
        let key = CbcHmacKey::new(&mgr, &aes_key, alg, &auth_key).unwrap();
        let iv = [9u8; 16];
        let (mut pkt, co, cl, al) = esp_cbc_packet(1, 1, &iv, &[0x42; 32], alg.icv_len());
        let expected = ref_esp_cbc(&aes_key, alg, &auth_key, &pkt, cl, None);
        let st = mgr.cbc_hmac_encrypt_one(op(&key, iv, &mut pkt, co, cl, al));
        assert_eq!(st, OpStatus::Completed);
        assert_eq!(pkt, expected, "{alg:?}");
    }
}

#[test]
fn tampering_and_wrong_esn_fail_verification() {
    let mut rng = Rng::new(4303);
    for mut mgr in managers() {
        for alg in ALL_HMACS {
            let aes_key = rng.bytes(32);
            let auth_key = rng.bytes(auth_key_len(alg));
            let key = CbcHmacKey::new(&mgr, &aes_key, alg, &auth_key).unwrap();
            let iv: [u8; 16] = rng.bytes(16).try_into().unwrap();
            let (plain, co, cl, al) = esp_cbc_packet(0xabcd, 99, &iv, &rng.bytes(64), alg.icv_len());
            let good = ref_esp_cbc(&aes_key, alg, &auth_key, &plain, cl, Some(5));
            let icv = alg.icv_len();
            // 0: ESP header, 1: IV, 2: ciphertext, 3: ICV, 4: wrong ESN-high, 5: no ESN.
            for case in 0..6 {
                let mut pkt = good.clone();
                let mut esn = Some(5u32);
                match case {
                    0 => pkt[4] ^= 0x01,
                    1 => pkt[10] ^= 0x10,
                    2 => pkt[co + cl - 1] ^= 0x80,
                    3 => pkt[al + icv - 1] ^= 0x01,
                    4 => esn = Some(6),
                    _ => esn = None,
                }
                let st = mgr.cbc_hmac_decrypt_one(CbcHmacOp {
                    key: &key,
                    iv: pkt[8..24].try_into().unwrap(),
                    buf: &mut pkt,
                    cipher_offset: co,
                    cipher_len: cl,
                    auth_offset: 0,
                    auth_len: al,
                    esn_high: esn,
                });
                assert_eq!(st, OpStatus::AuthFailed, "{alg:?} case {case}");
            }
            let mut pkt = good.clone();
            let st = mgr.cbc_hmac_decrypt_one(CbcHmacOp {
                key: &key,
                iv,
                buf: &mut pkt,
                cipher_offset: co,
                cipher_len: cl,
                auth_offset: 0,
                auth_len: al,
                esn_high: Some(5),
            });
            assert_eq!(st, OpStatus::Completed);
            let mut reference = good[co..co + cl].to_vec();
            ref_cbc_decrypt(&aes_key, &iv, &mut reference);
            assert_eq!(pkt[co..co + cl], reference[..]);
            assert_eq!(pkt[co..co + cl], plain[co..co + cl]);
        }
    }
}

#[test]
fn invalid_cbc_ops() {
    let mut mgr = MbMgr::new().unwrap();
    let key = CbcHmacKey::new(&mgr, &[1; 16], HmacAlg::Sha1_96, &[2; 20]).unwrap();
    let mut a = vec![0u8; 24 + 40 + 12];
    let mut b = vec![0u8; 24 + 32 + 11];
    let mut c = vec![0u8; 24 + 32 + 12];
    let mut ops = [
        // Not a multiple of 16.
        op(&key, [0; 16], &mut a, 24, 40, 64),
        // No room for the ICV.
        op(&key, [0; 16], &mut b, 24, 32, 56),
        // Cipher region running into the ICV slot.
        op(&key, [0; 16], &mut c, 24, 32, 48),
    ];
    let st = mgr.cbc_hmac_encrypt_burst(&mut ops).unwrap();
    assert_eq!(st.as_slice(), &[OpStatus::InvalidArgs; 3]);
    assert!(CbcHmacKey::new(&mgr, &[1; 20], HmacAlg::Sha1_96, &[2; 20]).is_err());
    assert!(CbcHmacKey::new(&mgr, &[1; 24], HmacAlg::Sha1_96, &[2; 20]).is_ok());
}

/// An empty authenticated region after the cipher region: our checks accept
/// it; the result must either be right (HMAC of the empty message) or be
/// rejected by the library's own job check alone, without disturbing the
/// valid operation next to it. Exercises the library-rejection path of the
/// burst submission.
#[test]
fn library_check_rejections_stay_per_operation() {
    let mut rng = Rng::new(2104);
    for mut mgr in managers() {
        let aes_key = rng.bytes(16);
        let auth_key = rng.bytes(20);
        let key = CbcHmacKey::new(&mgr, &aes_key, HmacAlg::Sha1_96, &auth_key).unwrap();
        let iv = [3u8; 16];
        let payload = rng.bytes(32);
        let (mut good, co, cl, al) = esp_cbc_packet(1, 2, &iv, &payload, 12);
        let expected_good = ref_esp_cbc(&aes_key, HmacAlg::Sha1_96, &auth_key, &good, cl, None);
        let mut odd = payload.clone();
        odd.resize(32 + 12, 0);
        let orig_odd = odd.clone();
        let mut ops = [
            CbcHmacOp {
                key: &key,
                iv,
                buf: &mut odd,
                cipher_offset: 0,
                cipher_len: 32,
                auth_offset: 32,
                auth_len: 0,
                esn_high: None,
            },
            op(&key, iv, &mut good, co, cl, al),
        ];
        let st = mgr.cbc_hmac_encrypt_burst(&mut ops).unwrap();
        assert_eq!(st.get(1), Some(OpStatus::Completed), "{:?} {st:?}", mgr.submit_mode());
        assert_eq!(good, expected_good);
        match st.get(0) {
            Some(OpStatus::Completed) => {
                let mut ct = payload.clone();
                common::ref_cbc_encrypt(&aes_key, &iv, &mut ct);
                assert_eq!(odd[..32], ct[..]);
                assert_eq!(odd[32..].to_vec(), common::ref_hmac(HmacAlg::Sha1_96, &auth_key, &[]));
            }
            Some(OpStatus::InvalidArgs) => assert_eq!(odd, orig_odd),
            other => panic!("unexpected {other:?}"),
        }
        eprintln!("{:?}: empty auth region -> {:?}", mgr.submit_mode(), st.get(0));
    }
}
