//! Bursts that mix SAs of every algorithm through one crypto runner (`encap_mixed`,
//! `decap_mixed`): the output is byte-identical to each SA's own burst, every packet
//! decapsulates to its original, and a tampered or replayed packet fails alone.

mod common;

use common::*;
use esp::crypto::rust::RustBackend;
use esp::crypto::{CipherAlgorithm as C, CounterIvSource, CryptoBackend, CryptoRunner, PerSessionRunner};
use esp::sa::EspMode;
use esp::{
    decap_mixed, encap_burst, encap_mixed, DropReason, InboundSa, OutboundSa, PacketBuffer, SaConfig,
    VecBuffer,
};

/// SA `k`: algorithm `ALGS[k % ALGS.len()]`, keys and SPI of its own, mode, family, ESN and UDP
/// encapsulation varying with `k`.
fn sa_config(k: usize) -> SaConfig {
    let (c, i) = ALGS[k % ALGS.len()];
    let mode = match k % 3 {
        0 => tunnel(false),
        1 => tunnel(true),
        _ => EspMode::Transport,
    };
    let mut cfg = config(c, i, mode, k % 2 == 1, k % 4 == 3);
    cfg.spi = 0x100 + k as u32;
    for (n, b) in cfg.crypto.cipher_key.iter_mut().enumerate() {
        *b ^= (k * 31 + n) as u8;
    }
    for b in cfg.crypto.auth_key.iter_mut() {
        *b ^= k as u8;
    }
    if cfg.esn {
        // Across a 2^32 boundary, so the high half is 1 for some packets.
        cfg.initial_seq = (1 << 32) - 3;
    }
    cfg
}

fn outbound(cfg: &SaConfig, b: &dyn CryptoBackend) -> OutboundSa {
    OutboundSa::new(cfg, b, Box::new(CounterIvSource { next: u128::from(cfg.spi) << 20, fixed: None }))
        .unwrap()
}

fn inbound(cfg: &SaConfig, b: &dyn CryptoBackend) -> InboundSa {
    let mut sa = InboundSa::new(cfg, b).unwrap();
    sa.replay_window_mut().set_top(cfg.initial_seq);
    sa
}

/// Session for `cfg` from `b`, or from the Rust backend for what `b` does not do (NULL), as
/// espd falls back.
fn backend_for<'a>(cfg: &SaConfig, b: &'a dyn CryptoBackend) -> &'a dyn CryptoBackend {
    if cfg.crypto.cipher == C::Null {
        &RustBackend
    } else {
        b
    }
}

fn plain(n: usize, v6: bool) -> Vec<u8> {
    let pl: Vec<u8> = (0..(n * 37) % 1400).map(|x| (x ^ n) as u8).collect();
    if v6 {
        ipv6_udp(&pl, false, 2)
    } else {
        ipv4_udp(&pl, 2)
    }
}

/// Packet `n` of a burst: its SA (mostly round robin, with runs of one SA) and plaintext.
fn packet(n: usize, sas: usize) -> (usize, Vec<u8>) {
    let k = if n % 8 < 3 { (n / 8) % sas } else { n % sas };
    // Transport SAs of an IPv6 outer family carry IPv6, the others either family.
    let v6 = match k % 3 {
        1 => true,
        2 => false,
        _ => n % 2 == 1,
    };
    (k, plain(n, v6))
}

fn check_backend(backend: &dyn CryptoBackend, runner: &mut dyn CryptoRunner) {
    const SAS: usize = 2 * ALGS.len();
    const N: usize = 150; // more than one chunk of the engine's MAX_BURST
    let cfgs: Vec<SaConfig> = (0..SAS).map(sa_config).collect();
    let mut outs: Vec<OutboundSa> = cfgs.iter().map(|c| outbound(c, backend_for(c, backend))).collect();
    let mut twins: Vec<OutboundSa> = cfgs.iter().map(|c| outbound(c, &RustBackend)).collect();
    let mut ins: Vec<InboundSa> = cfgs.iter().map(|c| inbound(c, backend_for(c, backend))).collect();

    let (keys, plains): (Vec<usize>, Vec<Vec<u8>>) = (0..N).map(|n| packet(n, SAS)).unzip();
    let mut bufs: Vec<VecBuffer> = plains.iter().map(|p| VecBuffer::new(p)).collect();
    let mut results = vec![Err(DropReason::NoSa); N];
    let good = encap_mixed(runner, &mut outs[..], &keys, &mut bufs, &mut results);
    assert_eq!(good, N, "{results:?}");

    // The reference: each SA's packets alone, in order, through the Rust backend.
    for (k, twin) in twins.iter_mut().enumerate() {
        let idx: Vec<usize> = (0..N).filter(|&n| keys[n] == k).collect();
        let mut mine: Vec<VecBuffer> = idx.iter().map(|&n| VecBuffer::new(&plains[n])).collect();
        let mut r = vec![Ok(()); mine.len()];
        assert_eq!(encap_burst(twin, &mut mine, &mut r), mine.len());
        for (b, &n) in mine.iter().zip(&idx) {
            assert_eq!(bufs[n].data(), b.data(), "packet {n} of SA {k} ({:?})", cfgs[k].crypto);
        }
    }

    // Decapsulate the mixed burst, with two packets tampered and one repeated.
    let mut wire: Vec<VecBuffer> = bufs.iter().map(|b| VecBuffer::new(b.data())).collect();
    let mut wire_keys = keys.clone();
    let last = wire[7].data().len() - 1;
    let mut t = wire[7].data().to_vec();
    t[last] ^= 1;
    wire[7] = VecBuffer::new(&t);
    let mut t = wire[90].data().to_vec();
    let at = t.len() - 20;
    t[at] ^= 0x80;
    wire[90] = VecBuffer::new(&t);
    wire.insert(30, VecBuffer::new(bufs[29].data()));
    wire_keys.insert(30, keys[29]);
    // A packet for an SA the table does not have.
    wire.push(VecBuffer::new(bufs[0].data()));
    wire_keys.push(SAS + 5);

    let mut results = vec![Ok(()); wire.len()];
    let good = decap_mixed(runner, &mut ins[..], &wire_keys, &mut wire, &mut results);
    assert_eq!(good, N - 2, "{results:?}");
    for (w, r) in results.iter().enumerate() {
        let want = match w {
            7 => Err(DropReason::Auth),
            30 => Err(DropReason::Replay),
            91 => Err(DropReason::Auth),
            w if w == N + 1 => Err(DropReason::NoSa),
            _ => Ok(()),
        };
        assert_eq!(*r, want, "wire packet {w}");
        if r.is_ok() {
            let n = if w > 30 { w - 1 } else { w };
            assert_eq!(wire[w].data(), &plains[n][..], "packet {n}");
        }
    }
    for (k, sa) in ins.iter().enumerate() {
        let sent = keys.iter().filter(|&&x| x == k).count() as u64;
        let lost = [7usize, 90].iter().filter(|&&n| keys[n] == k).count() as u64;
        assert_eq!(sa.packets(), sent - lost, "SA {k}");
    }
}

#[test]
fn rust_backend_per_session_runner() {
    check_backend(&RustBackend, &mut PerSessionRunner);
}

#[cfg(all(feature = "ipsec-mb", target_arch = "x86_64"))]
#[test]
fn ipsec_mb_runner_batches_across_sas() {
    let mb = esp::crypto::ipsec_mb::IpsecMbBackend::new().unwrap();
    let mut runner = mb.runner().unwrap();
    check_backend(&mb, &mut runner);
    // Rust-backend sessions handed to the ipsec-mb runner run through their own code.
    check_backend(&RustBackend, &mut runner);
}
