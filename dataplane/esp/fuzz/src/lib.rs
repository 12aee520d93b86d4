//! Fixed SAs shared by the fuzz target and the corpus generator.

use esp::crypto::rust::RustBackend;
use esp::crypto::{CipherAlgorithm as C, CounterIvSource, CryptoParams, IntegrityAlgorithm as I};
use esp::sa::{EspMode, SaConfig, TrafficSelector, TunnelEndpoints, UdpEncap};
use esp::{InboundSa, OutboundSa};
use zeroize::Zeroizing;

/// The fuzzed SAs: the first input byte picks one.
pub fn configs() -> Vec<SaConfig> {
    let p = |c: C, i: I| CryptoParams {
        cipher: c,
        integrity: i,
        cipher_key: Zeroizing::new(vec![0x42; c.key_len() + c.salt_len()]),
        auth_key: Zeroizing::new(vec![0x24; i.key_len()]),
    };
    let tun4 = EspMode::Tunnel(TunnelEndpoints {
        src: "192.0.2.1".parse().unwrap(),
        dst: "192.0.2.2".parse().unwrap(),
    });
    let tun6 = EspMode::Tunnel(TunnelEndpoints {
        src: "2001:db8::1".parse().unwrap(),
        dst: "2001:db8::2".parse().unwrap(),
    });
    let mut v = vec![
        SaConfig::new(0x100, p(C::AesGcm128, I::None), tun4),
        SaConfig::new(0x101, p(C::AesCbc128, I::HmacSha256_128), EspMode::Transport),
        SaConfig::new(0x102, p(C::Null, I::HmacSha1_96), tun6),
        SaConfig::new(0x103, p(C::AesGcm256, I::None), tun6),
    ];
    v[1].udp_encap = Some(UdpEncap::default());
    v[2].esn = true;
    v[3].udp_encap = Some(UdpEncap::default());
    v[3].esn = true;
    v[0].selectors = vec![TrafficSelector::any(false), TrafficSelector::any(true)];
    v
}

/// Inbound SA for config `k`.
pub fn inbound(k: usize) -> InboundSa {
    let cfgs = configs();
    InboundSa::new(&cfgs[k % cfgs.len()], &RustBackend).unwrap()
}

/// Outbound SA for config `k` (corpus generation).
pub fn outbound(k: usize) -> OutboundSa {
    let cfgs = configs();
    let iv = Box::new(CounterIvSource { next: 7, fixed: None });
    OutboundSa::new(&cfgs[k % cfgs.len()], &RustBackend, iv).unwrap()
}
