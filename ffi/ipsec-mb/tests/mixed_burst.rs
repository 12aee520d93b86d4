//! A burst of 32 operations of mixed sizes, keys and algorithms, compared to
//! RustCrypto, then decrypted, with a few tampered packets that must fail
//! alone.

mod common;

use common::{esp_cbc_packet, managers, ref_esp_cbc, ref_gcm_seal, Rng, ALL_HMACS};
use ipsec_mb::{CbcHmacKey, CbcHmacOp, GcmKey, GcmOp, HmacAlg, OpStatus};

const N: usize = 32;

#[test]
fn gcm_burst_of_32_mixed_sizes() {
    let mut rng = Rng::new(0x6c6d);
    for mut mgr in managers() {
        let raw_keys: Vec<Vec<u8>> = vec![rng.bytes(16), rng.bytes(32), rng.bytes(16), rng.bytes(24)];
        let keys: Vec<GcmKey> = raw_keys.iter().map(|k| GcmKey::new(&mgr, k).unwrap()).collect();
        let mut ivs = Vec::new();
        let mut aads = Vec::new();
        let mut pts = Vec::new();
        let mut bufs = Vec::new();
        let mut which = Vec::new();
        for i in 0..N {
            let len = [0, 1, 15, 16, 17, 64, 100, 255, 256, 1420, 1500, 9000][i % 12] + rng.below(3);
            let k = rng.below(keys.len());
            // ESP AAD: SPI || seq (8) or SPI || ESN-hi || seq-lo (12).
            let aad = rng.bytes(if i & 1 == 0 { 8 } else { 12 });
            let iv: [u8; 12] = rng.bytes(12).try_into().unwrap();
            let pt = rng.bytes(len);
            let mut buf = vec![0x11u8; 8];
            buf.extend_from_slice(&pt);
            buf.extend_from_slice(&[0; 16]);
            which.push(k);
            ivs.push(iv);
            aads.push(aad);
            pts.push(pt);
            bufs.push(buf);
        }
        let mut ops: Vec<GcmOp<'_>> = bufs
            .iter_mut()
            .enumerate()
            .map(|(i, buf)| GcmOp {
                key: &keys[which[i]],
                iv: ivs[i],
                aad: &aads[i],
                data_offset: 8,
                data_len: pts[i].len(),
                buf,
            })
            .collect();
        let st = mgr.gcm_encrypt_burst(&mut ops).unwrap();
        assert_eq!(st.len(), N);
        assert!(st.all_completed(), "{st:?}");
        drop(ops);
        for i in 0..N {
            let (ct, tag) = ref_gcm_seal(&raw_keys[which[i]], &ivs[i], &aads[i], &pts[i]);
            let n = pts[i].len();
            assert_eq!(bufs[i][8..8 + n], ct[..], "op {i} ciphertext {:?}", mgr.submit_mode());
            assert_eq!(bufs[i][8 + n..], tag[..], "op {i} tag");
        }

        let tampered = [3usize, 17, 30];
        for &t in &tampered {
            let last = bufs[t].len() - 1;
            bufs[t][last] ^= 0x40; // in the ICV
        }
        let mut ops: Vec<GcmOp<'_>> = bufs
            .iter_mut()
            .enumerate()
            .map(|(i, buf)| GcmOp {
                key: &keys[which[i]],
                iv: ivs[i],
                aad: &aads[i],
                data_offset: 8,
                data_len: pts[i].len(),
                buf,
            })
            .collect();
        let st = mgr.gcm_decrypt_burst(&mut ops).unwrap();
        drop(ops);
        for i in 0..N {
            if tampered.contains(&i) {
                assert_eq!(st.get(i), Some(OpStatus::AuthFailed), "op {i}");
            } else {
                assert_eq!(st.get(i), Some(OpStatus::Completed), "op {i}");
                assert_eq!(bufs[i][8..8 + pts[i].len()], pts[i][..], "op {i} plaintext");
            }
        }
        assert_eq!(st.completed(), N - tampered.len());
    }
}

#[test]
fn cbc_hmac_burst_of_32_mixed() {
    let mut rng = Rng::new(0x0cbc_0032);
    for mut mgr in managers() {
        struct Sa {
            aes: Vec<u8>,
            alg: HmacAlg,
            auth: Vec<u8>,
        }
        let sas: Vec<Sa> = (0..8)
            .map(|i| {
                let alg = ALL_HMACS[i % 4];
                Sa { aes: rng.bytes([16, 24, 32][i % 3]), alg, auth: rng.bytes(alg.digest_len()) }
            })
            .collect();
        let keys: Vec<CbcHmacKey> =
            sas.iter().map(|s| CbcHmacKey::new(&mgr, &s.aes, s.alg, &s.auth).unwrap()).collect();

        let mut pkts = Vec::new();
        let mut meta = Vec::new();
        let mut expected = Vec::new();
        for i in 0..N {
            let sa = rng.below(sas.len());
            let blocks = [1usize, 2, 4, 5, 8, 31, 64, 89][i % 8] + rng.below(2);
            let iv: [u8; 16] = rng.bytes(16).try_into().unwrap();
            let esn = if i % 3 == 0 { Some(rng.next_u64() as u32) } else { None };
            let (pkt, co, cl, al) = esp_cbc_packet(
                rng.next_u64() as u32,
                i as u32,
                &iv,
                &rng.bytes(blocks * 16),
                sas[sa].alg.icv_len(),
            );
            expected.push(ref_esp_cbc(&sas[sa].aes, sas[sa].alg, &sas[sa].auth, &pkt, cl, esn));
            meta.push((sa, iv, co, cl, al, esn));
            pkts.push(pkt);
        }
        let plains = pkts.clone();
        let mut ops: Vec<CbcHmacOp<'_>> = pkts
            .iter_mut()
            .zip(&meta)
            .map(|(buf, &(sa, iv, co, cl, al, esn))| CbcHmacOp {
                key: &keys[sa],
                iv,
                buf,
                cipher_offset: co,
                cipher_len: cl,
                auth_offset: 0,
                auth_len: al,
                esn_high: esn,
            })
            .collect();
        let st = mgr.cbc_hmac_encrypt_burst(&mut ops).unwrap();
        assert!(st.all_completed(), "{st:?}");
        drop(ops);
        for i in 0..N {
            assert_eq!(pkts[i], expected[i], "op {i} {:?}", mgr.submit_mode());
        }

        let tampered = [0usize, 9, 31];
        for &t in &tampered {
            pkts[t][meta[t].2] ^= 1; // first ciphertext byte
        }
        let mut ops: Vec<CbcHmacOp<'_>> = pkts
            .iter_mut()
            .zip(&meta)
            .map(|(buf, &(sa, iv, co, cl, al, esn))| CbcHmacOp {
                key: &keys[sa],
                iv,
                buf,
                cipher_offset: co,
                cipher_len: cl,
                auth_offset: 0,
                auth_len: al,
                esn_high: esn,
            })
            .collect();
        let st = mgr.cbc_hmac_decrypt_burst(&mut ops).unwrap();
        drop(ops);
        for i in 0..N {
            let (_, _, co, cl, al, _) = meta[i];
            if tampered.contains(&i) {
                assert_eq!(st.get(i), Some(OpStatus::AuthFailed), "op {i}");
            } else {
                assert_eq!(st.get(i), Some(OpStatus::Completed), "op {i}");
                assert_eq!(pkts[i][co..co + cl], plains[i][co..co + cl], "op {i} plaintext");
                assert_eq!(pkts[i][al..], expected[i][al..], "op {i} ICV left in place");
            }
        }
    }
}
