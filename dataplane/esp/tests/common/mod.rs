//! Helpers shared by the integration tests.
#![allow(dead_code)]

use esp::crypto::rust::RustBackend;
use esp::crypto::{CipherAlgorithm as C, CounterIvSource, CryptoParams, IntegrityAlgorithm as I};
use esp::sa::{EspMode, SaConfig, TunnelEndpoints, UdpEncap};
use esp::{InboundSa, OutboundSa};
use zeroize::Zeroizing;

/// Every algorithm combination the crate supports.
pub const ALGS: [(C, I); 13] = [
    (C::AesGcm128, I::None),
    (C::AesGcm192, I::None),
    (C::AesGcm256, I::None),
    (C::AesCbc128, I::HmacSha1_96),
    (C::AesCbc128, I::HmacSha256_128),
    (C::AesCbc128, I::HmacSha384_192),
    (C::AesCbc128, I::HmacSha512_256),
    (C::AesCbc192, I::HmacSha256_128),
    (C::AesCbc256, I::HmacSha1_96),
    (C::AesCbc256, I::HmacSha256_128),
    (C::AesCbc256, I::HmacSha512_256),
    (C::Null, I::HmacSha1_96),
    (C::Null, I::HmacSha256_128),
];

pub fn params(c: C, i: I) -> CryptoParams {
    CryptoParams {
        cipher: c,
        integrity: i,
        cipher_key: Zeroizing::new((0..c.key_len() + c.salt_len()).map(|x| x as u8 ^ 0x3c).collect()),
        auth_key: Zeroizing::new((0..i.key_len()).map(|x| x as u8 ^ 0xa5).collect()),
    }
}

pub fn tunnel(v6: bool) -> EspMode {
    if v6 {
        EspMode::Tunnel(TunnelEndpoints {
            src: "2001:db8:ffff::1".parse().unwrap(),
            dst: "2001:db8:ffff::2".parse().unwrap(),
        })
    } else {
        EspMode::Tunnel(TunnelEndpoints {
            src: "192.0.2.1".parse().unwrap(),
            dst: "192.0.2.2".parse().unwrap(),
        })
    }
}

pub fn config(c: C, i: I, mode: EspMode, esn: bool, udp: bool) -> SaConfig {
    let mut cfg = SaConfig::new(0x1234_5678, params(c, i), mode);
    cfg.esn = esn;
    cfg.udp_encap = udp.then(UdpEncap::default);
    cfg
}

pub fn pair(cfg: &SaConfig) -> (OutboundSa, InboundSa) {
    let iv = Box::new(CounterIvSource { next: 0x1111, fixed: None });
    (OutboundSa::new(cfg, &RustBackend, iv).unwrap(), InboundSa::new(cfg, &RustBackend).unwrap())
}

/// An IPv4 UDP packet with a valid header checksum.
pub fn ipv4_udp(payload: &[u8], ecn: u8) -> Vec<u8> {
    let total = 28 + payload.len();
    let mut p = vec![0u8; total];
    p[0] = 0x45;
    p[1] = (10 << 2) | ecn;
    p[2..4].copy_from_slice(&(total as u16).to_be_bytes());
    p[4..6].copy_from_slice(&0x4242u16.to_be_bytes());
    p[6] = 0x40;
    p[8] = 63;
    p[9] = 17;
    p[12..16].copy_from_slice(&[10, 0, 0, 1]);
    p[16..20].copy_from_slice(&[10, 0, 1, 2]);
    let c = esp::wire::checksum::checksum(&p[..20]);
    p[10..12].copy_from_slice(&c.to_be_bytes());
    p[20..22].copy_from_slice(&1000u16.to_be_bytes());
    p[22..24].copy_from_slice(&53u16.to_be_bytes());
    p[24..26].copy_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    p[28..].copy_from_slice(payload);
    p
}

/// An IPv6 UDP packet, optionally with a hop-by-hop and a routing header.
pub fn ipv6_udp(payload: &[u8], ext: bool, ecn: u8) -> Vec<u8> {
    let mut pl = Vec::new();
    if ext {
        pl.extend_from_slice(&[43, 0, 1, 4, 0, 0, 0, 0]); // hop-by-hop, PadN
        pl.extend_from_slice(&[17, 0, 0, 0, 0, 0, 0, 0]); // routing type 0, segs left 0
    }
    pl.extend_from_slice(&1000u16.to_be_bytes());
    pl.extend_from_slice(&53u16.to_be_bytes());
    pl.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    pl.extend_from_slice(&[0, 0]);
    pl.extend_from_slice(payload);
    let mut p = vec![0u8; 40];
    let tc = (10u32 << 2) | u32::from(ecn);
    p[0..4].copy_from_slice(&((6u32 << 28) | (tc << 20) | 0x12345).to_be_bytes());
    p[4..6].copy_from_slice(&(pl.len() as u16).to_be_bytes());
    p[6] = if ext { 0 } else { 17 };
    p[7] = 63;
    p[8..24].copy_from_slice(&"2001:db8::1".parse::<std::net::Ipv6Addr>().unwrap().octets());
    p[24..40].copy_from_slice(&"2001:db8:1::2".parse::<std::net::Ipv6Addr>().unwrap().octets());
    p.extend_from_slice(&pl);
    p
}

/// One test case from a vector file: ordered (field, bytes-or-text) pairs.
pub struct Case {
    pub fields: Vec<(String, String)>,
}

impl Case {
    pub fn text(&self, k: &str) -> &str {
        self.fields
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
            .unwrap_or_else(|| panic!("field {k} missing"))
    }
    pub fn hex(&self, k: &str) -> Vec<u8> {
        let s: String = self.text(k).split_whitespace().collect();
        assert_eq!(s.len() % 2, 0, "odd hex in {k}");
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex")).collect()
    }
    pub fn u32(&self, k: &str) -> u32 {
        u32::from_str_radix(&self.text(k).split_whitespace().collect::<String>(), 16).unwrap()
    }
}

/// Parse `tests/vectors/<name>`: `#` comments, `field: value` lines, indented continuation
/// lines, a `test_case:` line starts a case.
pub fn vectors(name: &str) -> Vec<Case> {
    let path = format!("{}/tests/vectors/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let mut cases: Vec<Case> = Vec::new();
    for line in text.lines() {
        let t = line.trim();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        if line.starts_with(char::is_whitespace) {
            let c = cases.last_mut().expect("continuation before a case");
            let f = c.fields.last_mut().expect("continuation before a field");
            f.1.push(' ');
            f.1.push_str(t);
            continue;
        }
        let (k, v) = t.split_once(':').expect("field: value");
        if k == "test_case" {
            cases.push(Case { fields: Vec::new() });
        }
        cases
            .last_mut()
            .expect("field before test_case")
            .fields
            .push((k.trim().to_string(), v.trim().to_string()));
    }
    assert!(!cases.is_empty(), "{name} has no cases");
    cases
}
