//! AES-GCM known answers from McGrew & Viega, "The Galois/Counter Mode of
//! Operation (GCM)", Appendix B (the same vectors as draft-mcgrew-gcm-test-01):
//! Test Cases 2, 3, 4 (AES-128; 4 has AAD), 16 (AES-256, AAD) and 7 to 10
//! (AES-192; 10 has AAD; 11 and 12 use 64- and 480-bit IVs, which ESP never
//! does), through the burst API in every submit mode, plus the direct API.

mod common;

use common::{hex, managers};
use ipsec_mb::{GcmKey, GcmOp, MbMgr, OpStatus, MAX_BURST};

struct Vector {
    name: &'static str,
    key: &'static str,
    iv: &'static str,
    aad: &'static str,
    pt: &'static str,
    ct: &'static str,
    tag: &'static str,
}

// 64-byte plaintext of Test Cases 3/4/15/16 (4 and 16 use the first 60 bytes).
const P64: &str = "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72\
                   1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b391aafd255";
const AAD20: &str = "feedfacedeadbeeffeedfacedeadbeefabaddad2";

const VECTORS: &[Vector] = &[
    // Test Case 2: zero key, zero IV, one zero block.
    Vector {
        name: "TC2",
        key: "00000000000000000000000000000000",
        iv: "000000000000000000000000",
        aad: "",
        pt: "00000000000000000000000000000000",
        ct: "0388dace60b6a392f328c2b971b2fe78",
        tag: "ab6e47d42cec13bdf53a67b21257bddf",
    },
    // Test Case 3: 64 bytes, no AAD.
    Vector {
        name: "TC3",
        key: "feffe9928665731c6d6a8f9467308308",
        iv: "cafebabefacedbaddecaf888",
        aad: "",
        pt: P64,
        ct: "42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e\
             21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091473f5985",
        tag: "4d5c2af327cd64a62cf35abd2ba6fab4",
    },
    // Test Case 4: 60 bytes, 20 bytes of AAD.
    Vector {
        name: "TC4",
        key: "feffe9928665731c6d6a8f9467308308",
        iv: "cafebabefacedbaddecaf888",
        aad: AAD20,
        pt: "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72\
             1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39",
        ct: "42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e\
             21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091",
        tag: "5bc94fbc3221a5db94fae95ae7121a47",
    },
    // Test Case 16: AES-256, 60 bytes, 20 bytes of AAD.
    Vector {
        name: "TC16",
        key: "feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308",
        iv: "cafebabefacedbaddecaf888",
        aad: AAD20,
        pt: "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72\
             1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39",
        ct: "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa\
             8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662",
        tag: "76fc6ece0f4e1768cddf8853bb2d551b",
    },
    // Test Case 7: AES-192, zero key, zero IV, empty plaintext (the tag only).
    Vector {
        name: "TC7",
        key: "000000000000000000000000000000000000000000000000",
        iv: "000000000000000000000000",
        aad: "",
        pt: "",
        ct: "",
        tag: "cd33b28ac773f74ba00ed1f312572435",
    },
    // Test Case 8: AES-192, zero key, zero IV, one zero block.
    Vector {
        name: "TC8",
        key: "000000000000000000000000000000000000000000000000",
        iv: "000000000000000000000000",
        aad: "",
        pt: "00000000000000000000000000000000",
        ct: "98e7247c07f0fe411c267e4384b0f600",
        tag: "2ff58d80033927ab8ef4d4587514f0fb",
    },
    // Test Case 9: AES-192, 64 bytes, no AAD.
    Vector {
        name: "TC9",
        key: "feffe9928665731c6d6a8f9467308308feffe9928665731c",
        iv: "cafebabefacedbaddecaf888",
        aad: "",
        pt: P64,
        ct: "3980ca0b3c00e841eb06fac4872a2757859e1ceaa6efd984628593b40ca1e19c\
             7d773d00c144c525ac619d18c84a3f4718e2448b2fe324d9ccda2710acade256",
        tag: "9924a7c8587336bfb118024db8674a14",
    },
    // Test Case 10: AES-192, 60 bytes, 20 bytes of AAD.
    Vector {
        name: "TC10",
        key: "feffe9928665731c6d6a8f9467308308feffe9928665731c",
        iv: "cafebabefacedbaddecaf888",
        aad: AAD20,
        pt: "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72\
             1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39",
        ct: "3980ca0b3c00e841eb06fac4872a2757859e1ceaa6efd984628593b40ca1e19c\
             7d773d00c144c525ac619d18c84a3f4718e2448b2fe324d9ccda2710",
        tag: "2519498e80f1478f37ba55bd6d27618c",
    },
];

fn iv12(s: &str) -> [u8; 12] {
    hex(s).try_into().expect("12-byte IV")
}

/// All the vectors in one burst, encrypt then decrypt, for each submit mode.
#[test]
fn mcgrew_viega_burst() {
    for mut mgr in managers() {
        let keys: Vec<GcmKey> = VECTORS.iter().map(|v| GcmKey::new(&mgr, &hex(v.key)).unwrap()).collect();
        let aads: Vec<Vec<u8>> = VECTORS.iter().map(|v| hex(v.aad)).collect();
        // Each buffer: 5 bytes of header we must not touch, data, 16-byte ICV.
        let mut bufs: Vec<Vec<u8>> = VECTORS
            .iter()
            .map(|v| {
                let mut b = vec![0xa5; 5];
                b.extend_from_slice(&hex(v.pt));
                b.extend_from_slice(&[0; 16]);
                b
            })
            .collect();
        let mut ops: Vec<GcmOp<'_>> = bufs
            .iter_mut()
            .zip(VECTORS)
            .zip(keys.iter().zip(&aads))
            .map(|((buf, v), (key, aad))| GcmOp {
                key,
                iv: iv12(v.iv),
                aad,
                data_offset: 5,
                data_len: hex(v.pt).len(),
                buf: buf.as_mut_slice(),
            })
            .collect();
        let st = mgr.gcm_encrypt_burst(&mut ops).unwrap();
        assert!(st.all_completed(), "{:?} {st:?}", mgr.submit_mode());
        drop(ops);
        for (buf, v) in bufs.iter().zip(VECTORS) {
            let n = hex(v.pt).len();
            assert_eq!(&buf[..5], &[0xa5; 5], "{}: header touched", v.name);
            assert_eq!(buf[5..5 + n].to_vec(), hex(v.ct), "{} ciphertext ({:?})", v.name, mgr.submit_mode());
            assert_eq!(buf[5 + n..].to_vec(), hex(v.tag), "{} tag ({:?})", v.name, mgr.submit_mode());
        }

        let mut ops: Vec<GcmOp<'_>> = bufs
            .iter_mut()
            .zip(VECTORS)
            .zip(keys.iter().zip(&aads))
            .map(|((buf, v), (key, aad))| GcmOp {
                key,
                iv: iv12(v.iv),
                aad,
                data_offset: 5,
                data_len: hex(v.pt).len(),
                buf: buf.as_mut_slice(),
            })
            .collect();
        let st = mgr.gcm_decrypt_burst(&mut ops).unwrap();
        assert!(st.all_completed(), "{st:?}");
        drop(ops);
        for (buf, v) in bufs.iter().zip(VECTORS) {
            let n = hex(v.pt).len();
            assert_eq!(buf[5..5 + n].to_vec(), hex(v.pt), "{} plaintext", v.name);
            assert_eq!(buf[5 + n..].to_vec(), hex(v.tag), "{}: received ICV must be left in place", v.name);
        }
    }
}

/// Test Case 2 has an empty-AAD, one-block message; Test Case 1 (empty
/// plaintext, tag 58e2fccefa7e3061367f1d57a4e7455a) checks zero-length data.
#[test]
fn zero_length_data() {
    for mut mgr in managers() {
        let key = GcmKey::new(&mgr, &[0; 16]).unwrap();
        let mut buf = [0u8; 16];
        let st = mgr.gcm_encrypt_one(GcmOp {
            key: &key,
            iv: [0; 12],
            aad: &[],
            buf: &mut buf,
            data_offset: 0,
            data_len: 0,
        });
        assert_eq!(st, OpStatus::Completed);
        assert_eq!(buf.to_vec(), hex("58e2fccefa7e3061367f1d57a4e7455a"));
        let st = mgr.gcm_decrypt_one(GcmOp {
            key: &key,
            iv: [0; 12],
            aad: &[],
            buf: &mut buf,
            data_offset: 0,
            data_len: 0,
        });
        assert_eq!(st, OpStatus::Completed);
    }
}

#[test]
fn tampering_is_detected() {
    let v = &VECTORS[2]; // TC4: has AAD
    for mut mgr in managers() {
        let key = GcmKey::new(&mgr, &hex(v.key)).unwrap();
        let aad = hex(v.aad);
        let mut good = hex(v.ct);
        good.extend_from_slice(&hex(v.tag));
        let n = good.len() - 16;
        // Flip one bit in ciphertext, tag, or AAD, or use the wrong IV.
        for case in 0..4 {
            let mut buf = good.clone();
            let mut aad2 = aad.clone();
            let mut iv = iv12(v.iv);
            match case {
                0 => buf[7] ^= 0x01,
                1 => buf[n + 15] ^= 0x80,
                2 => aad2[19] ^= 0x02,
                _ => iv[11] ^= 0x01,
            }
            let st = mgr.gcm_decrypt_one(GcmOp {
                key: &key,
                iv,
                aad: &aad2,
                buf: &mut buf,
                data_offset: 0,
                data_len: n,
            });
            assert_eq!(st, OpStatus::AuthFailed, "case {case}");
        }
        // And the untouched one still passes (the test can tell the difference).
        let mut buf = good.clone();
        let st = mgr.gcm_decrypt_one(GcmOp {
            key: &key,
            iv: iv12(v.iv),
            aad: &aad,
            buf: &mut buf,
            data_offset: 0,
            data_len: n,
        });
        assert_eq!(st, OpStatus::Completed);
        assert_eq!(buf[..n].to_vec(), hex(v.pt));
    }
}

/// RFC 4106 allows 8- and 12-byte ICVs: the truncated tag of TC16.
#[test]
fn truncated_icv() {
    let v = &VECTORS[3];
    for mut mgr in managers() {
        for icv in [8usize, 12] {
            let key = GcmKey::with_icv_len(&mgr, &hex(v.key), icv).unwrap();
            let aad = hex(v.aad);
            let mut buf = hex(v.pt);
            let n = buf.len();
            buf.resize(n + icv, 0);
            let st = mgr.gcm_encrypt_one(GcmOp {
                key: &key,
                iv: iv12(v.iv),
                aad: &aad,
                buf: &mut buf,
                data_offset: 0,
                data_len: n,
            });
            assert_eq!(st, OpStatus::Completed);
            assert_eq!(buf[..n].to_vec(), hex(v.ct));
            assert_eq!(buf[n..].to_vec(), hex(v.tag)[..icv].to_vec());
            let st = mgr.gcm_decrypt_one(GcmOp {
                key: &key,
                iv: iv12(v.iv),
                aad: &aad,
                buf: &mut buf,
                data_offset: 0,
                data_len: n,
            });
            assert_eq!(st, OpStatus::Completed);
        }
    }
    let mgr = MbMgr::new().unwrap();
    assert!(GcmKey::with_icv_len(&mgr, &[0; 16], 10).is_err());
    assert!(GcmKey::new(&mgr, &[0; 20]).is_err());
    assert!(GcmKey::new(&mgr, &[0; 24]).is_ok());
}

#[test]
fn direct_api_matches_vectors() {
    let mut mgr = MbMgr::new().unwrap();
    for v in VECTORS {
        let key = GcmKey::new(&mgr, &hex(v.key)).unwrap();
        let mut data = hex(v.pt);
        let mut tag = [0u8; 16];
        assert!(mgr.gcm_seal(&key, &iv12(v.iv), &hex(v.aad), &mut data, &mut tag));
        assert_eq!(data, hex(v.ct), "{}", v.name);
        assert_eq!(tag.to_vec(), hex(v.tag), "{}", v.name);
        assert!(mgr.gcm_open(&key, &iv12(v.iv), &hex(v.aad), &mut data, &tag));
        assert_eq!(data, hex(v.pt));
        tag[0] ^= 1;
        assert!(!mgr.gcm_open(&key, &iv12(v.iv), &hex(v.aad), &mut hex(v.ct), &tag));
    }
}

#[test]
fn invalid_ops_are_rejected_alone() {
    let v = &VECTORS[1];
    for mut mgr in managers() {
        let key = GcmKey::new(&mgr, &hex(v.key)).unwrap();
        let mut good = hex(v.pt);
        good.resize(64 + 16, 0);
        let mut short = vec![0u8; 70]; // no room for the ICV
        let mut ops = [
            GcmOp { key: &key, iv: iv12(v.iv), aad: &[], buf: &mut short, data_offset: 0, data_len: 64 },
            GcmOp { key: &key, iv: iv12(v.iv), aad: &[], buf: &mut good, data_offset: 0, data_len: 64 },
        ];
        let st = mgr.gcm_encrypt_burst(&mut ops).unwrap();
        assert_eq!(st.as_slice(), &[OpStatus::InvalidArgs, OpStatus::Completed]);
        assert_eq!(short, vec![0u8; 70], "rejected op must not be touched");
        assert_eq!(good[..64].to_vec(), hex(v.ct));
        assert_eq!(good[64..].to_vec(), hex(v.tag));
    }
}

#[test]
fn burst_too_large() {
    let mut mgr = MbMgr::new().unwrap();
    let key = GcmKey::new(&mgr, &[0; 16]).unwrap();
    let mut bufs = vec![[0u8; 32]; MAX_BURST + 1];
    let mut ops: Vec<GcmOp<'_>> = bufs
        .iter_mut()
        .map(|b| GcmOp { key: &key, iv: [0; 12], aad: &[], buf: b, data_offset: 0, data_len: 16 })
        .collect();
    assert!(mgr.gcm_encrypt_burst(&mut ops).is_err());
    assert!(mgr.gcm_encrypt_burst(&mut ops[..MAX_BURST]).unwrap().all_completed());
    assert!(mgr.gcm_encrypt_burst(&mut []).unwrap().is_empty());
}
