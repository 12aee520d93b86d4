//! The Intel ipsec-mb backend against the pure-Rust one through the whole engine (feature
//! `ipsec-mb`): same SA, same IVs, same input → byte-identical ESP packets, and each backend
//! decapsulates the other's, single packets and bursts.
#![cfg(all(feature = "ipsec-mb", target_arch = "x86_64"))]

mod common;

use common::*;
use esp::crypto::ipsec_mb::IpsecMbBackend;
use esp::crypto::rust::RustBackend;
use esp::crypto::{CipherAlgorithm as C, CounterIvSource, CryptoBackend};
use esp::sa::EspMode;
use esp::{decap, decap_burst, encap, encap_burst, InboundSa, OutboundSa, PacketBuffer, VecBuffer};

fn out(cfg: &esp::SaConfig, b: &dyn CryptoBackend) -> OutboundSa {
    OutboundSa::new(cfg, b, Box::new(CounterIvSource { next: 99, fixed: None })).unwrap()
}

#[test]
fn byte_identical_to_the_rust_backend() {
    let mb = IpsecMbBackend::new().unwrap();
    let mut n = 0;
    for (c, i) in ALGS.into_iter().filter(|(c, _)| *c != C::Null) {
        for mode in [tunnel(false), tunnel(true), EspMode::Transport] {
            for esn in [false, true] {
                for udp in [false, true] {
                    let mut cfg = config(c, i, mode, esn, udp);
                    cfg.initial_seq = if esn { (3 << 32) - 5 } else { 0 };
                    let (mut or, mut om) = (out(&cfg, &RustBackend), out(&cfg, &mb));
                    let mut ir = InboundSa::new(&cfg, &RustBackend).unwrap();
                    let mut im = InboundSa::new(&cfg, &mb).unwrap();
                    ir.replay_window_mut().set_top(cfg.initial_seq);
                    im.replay_window_mut().set_top(cfg.initial_seq);
                    let pkts: Vec<Vec<u8>> = (0..20)
                        .map(|k| {
                            let pl: Vec<u8> = (0..k * 71).map(|x| x as u8).collect();
                            if mode != EspMode::Transport && k % 2 == 1 {
                                ipv6_udp(&pl, false, 2)
                            } else {
                                ipv4_udp(&pl, 2)
                            }
                        })
                        .collect();
                    // Single packets: identical bytes; cross-decapsulation.
                    for p in &pkts[..10] {
                        let (mut a, mut b) = (VecBuffer::new(p), VecBuffer::new(p));
                        encap(&mut or, &mut a).unwrap();
                        encap(&mut om, &mut b).unwrap();
                        assert_eq!(a.data(), b.data(), "{c:?} {i:?} {mode:?} esn={esn} udp={udp}");
                        decap(&mut im, &mut a).unwrap();
                        decap(&mut ir, &mut b).unwrap();
                        assert_eq!(a.data(), &p[..]);
                        assert_eq!(b.data(), &p[..]);
                        n += 1;
                    }
                    // Bursts (crossing the ESN wrap when ESN is on).
                    let mut ba: Vec<VecBuffer> = pkts[10..].iter().map(|p| VecBuffer::new(p)).collect();
                    let mut bb = ba.clone();
                    let mut r = vec![Ok(()); ba.len()];
                    assert_eq!(encap_burst(&mut or, &mut ba, &mut r), 10);
                    assert_eq!(encap_burst(&mut om, &mut bb, &mut r), 10);
                    for (x, y) in ba.iter().zip(&bb) {
                        assert_eq!(x.data(), y.data());
                    }
                    assert_eq!(decap_burst(&mut im, &mut ba, &mut r), 10);
                    let l = bb[3].data_len();
                    bb[3].data_mut()[l - 1] ^= 1;
                    assert_eq!(decap_burst(&mut ir, &mut bb, &mut r), 9);
                    assert_eq!(r[3], Err(esp::DropReason::Auth));
                    for (x, p) in ba.iter().zip(&pkts[10..]) {
                        assert_eq!(x.data(), &p[..]);
                    }
                }
            }
        }
    }
    assert_eq!(n, 11 * 3 * 2 * 2 * 10);
}

#[test]
fn null_encryption_is_unsupported() {
    let mb = IpsecMbBackend::new().unwrap();
    let p = params(C::Null, esp::crypto::IntegrityAlgorithm::HmacSha1_96);
    assert_eq!(mb.new_session(&p).unwrap_err(), esp::crypto::CryptoError::Unsupported);
    assert_eq!(mb.name(), "ipsec-mb");
}
