//! Known-answer tests from the files in `tests/vectors/` (each file names its source).

mod common;

use common::*;
use esp::crypto::rust::{hmac_for_test, RustBackend};
use esp::crypto::{
    CipherAlgorithm as C, CounterIvSource, CryptoBackend, CryptoJob, CryptoParams, IntegrityAlgorithm as I,
    JobStatus, Operation,
};
use esp::sa::{EspMode, SaConfig, TunnelEndpoints};
use esp::{decap, encap, InboundSa, OutboundSa, PacketBuffer, VecBuffer};
use zeroize::Zeroizing;

fn integrity(name: &str) -> I {
    match name {
        "hmac-sha1-96" => I::HmacSha1_96,
        "hmac-sha256-128" => I::HmacSha256_128,
        "hmac-sha384-192" => I::HmacSha384_192,
        "hmac-sha512-256" => I::HmacSha512_256,
        other => panic!("unknown algorithm {other}"),
    }
}

/// Full HMAC and truncated ICV; when the key has the SA key length, also through a
/// NULL-encryption session (the packet is the data, the ICV appended), both directions.
fn check_hmac_case(c: &Case, truncated_field: &str) {
    let alg = integrity(c.text("algorithm"));
    let (key, data, digest, trunc) = (c.hex("key"), c.hex("data"), c.hex("digest"), c.hex(truncated_field));
    let mut full = vec![0u8; digest.len()];
    assert!(hmac_for_test(alg, &key, &data, &mut full));
    assert_eq!(full, digest, "case {}", c.text("test_case"));
    assert_eq!(trunc.len(), alg.icv_len());
    assert_eq!(&full[..alg.icv_len()], &trunc[..]);
    if key.len() == alg.key_len() && data.len() >= 8 {
        let p = CryptoParams {
            cipher: C::Null,
            integrity: alg,
            cipher_key: Zeroizing::new(vec![]),
            auth_key: Zeroizing::new(key.clone()),
        };
        let s = RustBackend.new_session(&p).unwrap();
        let mut pkt = data.clone();
        pkt.resize(data.len() + alg.icv_len(), 0);
        let mut j = [CryptoJob::new(&mut pkt, None)];
        s.process(Operation::Seal, &mut j);
        assert_eq!(j[0].status, JobStatus::Ok);
        assert_eq!(&pkt[data.len()..], &trunc[..], "session ICV, case {}", c.text("test_case"));
        let mut j = [CryptoJob::new(&mut pkt, None)];
        s.process(Operation::Open, &mut j);
        assert_eq!(j[0].status, JobStatus::Ok);
        let last = pkt.len() - 1;
        pkt[last] ^= 0x80;
        let mut j = [CryptoJob::new(&mut pkt, None)];
        s.process(Operation::Open, &mut j);
        assert_eq!(j[0].status, JobStatus::AuthFailed);
    }
}

#[test]
fn rfc2202_hmac_sha1() {
    let cases = vectors("rfc2202-hmac-sha1.txt");
    assert_eq!(cases.len(), 7);
    for c in &cases {
        check_hmac_case(c, "digest-96");
    }
}

#[test]
fn rfc4868_hmac_sha2() {
    let cases = vectors("rfc4868-hmac-sha2.txt");
    assert_eq!(cases.len(), 9);
    for c in &cases {
        check_hmac_case(c, "truncated");
    }
}

/// RFC 4231, including keys longer than the block (hashed first, RFC 2104 §2).
#[test]
fn rfc4231_hmac_sha2() {
    let cases = vectors("rfc4231-hmac-sha2.txt");
    assert_eq!(cases.len(), 18);
    for c in &cases {
        check_hmac_case(c, "truncated");
    }
}

fn ipv4_checksum_ok(h: &[u8]) -> bool {
    esp::wire::checksum::checksum(&h[..20]) == 0
}

fn fix_ipv4(h: &mut [u8], total: usize) {
    h[2..4].copy_from_slice(&(total as u16).to_be_bytes());
    h[10] = 0;
    h[11] = 0;
    let c = esp::wire::checksum::checksum(&h[..20]);
    h[10..12].copy_from_slice(&c.to_be_bytes());
}

/// RFC 3602 §4 cases 5 and 7 through the whole engine, with HMAC-SHA1-96 added.
#[test]
fn rfc3602_esp_packets() {
    let cases = vectors("rfc3602-esp.txt");
    assert_eq!(cases.len(), 2);
    let auth_key: Vec<u8> = (1..=20).collect();
    for c in &cases {
        let (plain, rfc) = (c.hex("plain"), c.hex("esp"));
        let tunnel = c.text("mode") == "tunnel";
        let mode = if tunnel {
            EspMode::Tunnel(TunnelEndpoints {
                src: std::net::Ipv4Addr::from(<[u8; 4]>::try_from(&rfc[12..16]).unwrap()).into(),
                dst: std::net::Ipv4Addr::from(<[u8; 4]>::try_from(&rfc[16..20]).unwrap()).into(),
            })
        } else {
            EspMode::Transport
        };
        let params = CryptoParams {
            cipher: C::AesCbc128,
            integrity: I::HmacSha1_96,
            cipher_key: Zeroizing::new(c.hex("key")),
            auth_key: Zeroizing::new(auth_key.clone()),
        };
        let mut cfg = SaConfig::new(c.u32("spi"), params, mode);
        cfg.initial_seq = u64::from(c.u32("seq")) - 1;
        let iv: [u8; 16] = c.hex("iv").try_into().unwrap();
        let ivs = Box::new(CounterIvSource { next: 0, fixed: Some(iv) });
        let mut out = OutboundSa::new(&cfg, &RustBackend, ivs).unwrap();
        let mut inb = InboundSa::new(&cfg, &RustBackend).unwrap();

        // Encapsulate: identical up to the end of the ciphertext.
        let mut b = VecBuffer::new(&plain);
        encap(&mut out, &mut b).unwrap();
        let got = b.data();
        assert_eq!(got.len(), rfc.len() + 12, "case {}", c.text("test_case"));
        assert_eq!(&got[20..rfc.len()], &rfc[20..], "ESP bytes, case {}", c.text("test_case"));
        assert_eq!(got[0..2], rfc[0..2]);
        assert_eq!(got[6..10], rfc[6..10], "flags, TTL, protocol");
        assert_eq!(got[12..20], rfc[12..20], "addresses");
        if !tunnel {
            assert_eq!(got[4..6], rfc[4..6], "transport mode keeps the ident");
        }
        assert_eq!(usize::from(u16::from_be_bytes([got[2], got[3]])), rfc.len() + 12);
        assert!(ipv4_checksum_ok(got));
        let mut icv = [0u8; 20];
        assert!(hmac_for_test(I::HmacSha1_96, &auth_key, &rfc[20..], &mut icv));
        assert_eq!(&got[rfc.len()..], &icv[..12]);

        // Decapsulate the RFC's packet (ICV appended): the original packet comes back.
        let mut pkt = rfc.clone();
        pkt.extend_from_slice(&icv[..12]);
        let n = pkt.len();
        fix_ipv4(&mut pkt, n);
        let mut b = VecBuffer::new(&pkt);
        decap(&mut inb, &mut b).unwrap();
        if tunnel {
            assert_eq!(b.data(), &plain[..]);
        } else {
            // Transport: the header is rebuilt with protocol, length and checksum restored;
            // the RFC's original header had TTL 0x40 and ident 08f2 like the ESP packet.
            assert_eq!(b.data(), &plain[..]);
        }
    }
}

/// draft-mcgrew-gcm-test-01 ESP packets: seal and open in the session (which takes the IV
/// from the packet), then decapsulate through the engine with a transport-mode SA.
#[test]
fn draft_mcgrew_gcm_esp_packets() {
    let cases = vectors("draft-mcgrew-gcm-test-01.txt");
    assert_eq!(cases.len(), 2);
    for c in &cases {
        let (keymat, esp_pkt, plaintext) = (c.hex("keymat"), c.hex("esp"), c.hex("plaintext"));
        let cipher = if keymat.len() == 20 { C::AesGcm128 } else { C::AesGcm256 };
        let params = CryptoParams {
            cipher,
            integrity: I::None,
            cipher_key: Zeroizing::new(keymat.clone()),
            auth_key: Zeroizing::new(vec![]),
        };
        let s = RustBackend.new_session(&params).unwrap();
        // Seal: header and IV from the draft, plaintext, room for the ICV.
        let mut pkt = esp_pkt[..16].to_vec();
        pkt.extend_from_slice(&plaintext);
        pkt.extend_from_slice(&[0; 16]);
        let mut j = [CryptoJob::new(&mut pkt, None)];
        s.process(Operation::Seal, &mut j);
        assert_eq!(j[0].status, JobStatus::Ok);
        assert_eq!(pkt, esp_pkt, "seal, case {}", c.text("test_case"));
        // Open.
        let mut j = [CryptoJob::new(&mut pkt, None)];
        s.process(Operation::Open, &mut j);
        assert_eq!(j[0].status, JobStatus::Ok);
        assert_eq!(&pkt[16..16 + plaintext.len()], &plaintext[..]);

        // Engine: an outer IPv4 header around the ESP packet, transport mode.
        let spi = u32::from_be_bytes(esp_pkt[0..4].try_into().unwrap());
        let cfg = SaConfig::new(spi, params.clone(), EspMode::Transport);
        let mut inb = InboundSa::new(&cfg, &RustBackend).unwrap();
        let mut wire = vec![0x45, 0, 0, 0, 0, 1, 0, 0, 64, 50, 0, 0, 192, 0, 2, 1, 192, 0, 2, 2];
        wire.extend_from_slice(&esp_pkt);
        let n = wire.len();
        fix_ipv4(&mut wire, n);
        let mut b = VecBuffer::new(&wire);
        decap(&mut inb, &mut b).unwrap();
        let pad = usize::from(plaintext[plaintext.len() - 2]);
        let payload = &plaintext[..plaintext.len() - 2 - pad];
        assert_eq!(b.data()[9], plaintext[plaintext.len() - 1], "next header restored");
        assert_eq!(&b.data()[20..], payload);
        assert!(ipv4_checksum_ok(b.data()));
        // Replaying it fails, a flipped ICV bit fails.
        let mut b = VecBuffer::new(&wire);
        assert_eq!(decap(&mut inb, &mut b), Err(esp::DropReason::Replay));
        let mut inb = InboundSa::new(&cfg, &RustBackend).unwrap();
        let mut bad = wire.clone();
        let l = bad.len();
        bad[l - 1] ^= 1;
        let mut b = VecBuffer::new(&bad);
        assert_eq!(decap(&mut inb, &mut b), Err(esp::DropReason::Auth));
    }
}

/// AES-192-CBC (RFC 3602 has no AES-192 case): NIST SP 800-38A F.2.3 and F.2.4, the four-block
/// CBC-AES192 example, as the payload of an ESP packet in a CBC + HMAC-SHA-256-128 session. The
/// session takes the IV from the packet, so the ciphertext must be the NIST one, and the ICV
/// the HMAC over header || IV || ciphertext.
#[test]
fn sp800_38a_aes192_cbc_in_an_esp_session() {
    let hex = |s: &str| -> Vec<u8> {
        let s: String = s.split_whitespace().collect();
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
    };
    let key = hex("8e73b0f7da0e6452c810f32b809079e5 62f8ead2522c6b7b");
    let iv = hex("000102030405060708090a0b0c0d0e0f");
    let pt = hex("6bc1bee22e409f96e93d7e117393172a ae2d8a571e03ac9c9eb76fac45af8e51
         30c81c46a35ce411e5fbc1191a0a52ef f69f2445df4f9b17ad2b417be66c3710");
    let ct = hex("4f021db243bc633d7178183a9fa071e8 b4d9ada9ad7dedf4e5e738763f69145a
         571b242012fb7ae07fa9baac3df102e0 08b0e27988598881d920a9e64f5615cd");
    let auth_key = vec![0x0b; 32];
    let params = CryptoParams {
        cipher: C::AesCbc192,
        integrity: I::HmacSha256_128,
        cipher_key: Zeroizing::new(key),
        auth_key: Zeroizing::new(auth_key.clone()),
    };
    let s = RustBackend.new_session(&params).unwrap();
    let mut pkt = vec![0, 0, 0x01, 0x92, 0, 0, 0, 1];
    pkt.extend_from_slice(&iv);
    pkt.extend_from_slice(&pt);
    pkt.extend_from_slice(&[0; 16]);
    let mut j = [CryptoJob::new(&mut pkt, None)];
    s.process(Operation::Seal, &mut j);
    assert_eq!(j[0].status, JobStatus::Ok);
    assert_eq!(&pkt[24..88], &ct[..], "F.2.3 ciphertext");
    let mut icv = [0u8; 32];
    assert!(hmac_for_test(I::HmacSha256_128, &auth_key, &pkt[..88], &mut icv));
    assert_eq!(&pkt[88..], &icv[..16]);
    let mut j = [CryptoJob::new(&mut pkt, None)];
    s.process(Operation::Open, &mut j);
    assert_eq!(j[0].status, JobStatus::Ok);
    assert_eq!(&pkt[24..88], &pt[..], "F.2.4 plaintext");
}
