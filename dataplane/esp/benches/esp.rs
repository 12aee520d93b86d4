//! ESP encap/decap cost per packet next to the raw crypto, per crypto backend.
//!
//! `cargo bench -p esp --bench esp [--features ipsec-mb]` (add `-- <filter>` to narrow).
//! Backends: `rust`, and `ipsec-mb` with the feature. Groups:
//! - `raw/<backend>/<alg>/<size>`: the crypto session alone sealing one ESP-sized buffer;
//! - `encap/<backend>/<alg>/<size>`, `decap/…`: one packet through the engine
//!   (tunnel mode, IPv4 outer and inner);
//! - `encap32/…`, `decap32/…`: a burst of 32 (throughput in elements = packets);
//! - `mixed32/<backend>/<alg>/{per-sa,mixed}/<size>`: a burst of 32 packets on 32 SAs of
//!   one algorithm, through the per-SA path (`encap_burst_multi`: one crypto call per SA) and
//!   through one crypto call for the burst (`encap_mixed` with the backend's runner);
//! - `gcm-impl/…`, `hmac-impl/…`: the Rust backend's AES-GCM and HMAC next to `ring`, `aes-gcm`
//!   and `hmac` (what the backend used before it zeroized its keys);
//! - `replay/check+update`: one in-order sequence number through the window.
//!
//! Buffers are prepared outside the timed routine (`iter_batched_ref`; per iteration for the
//! bursts, so a burst's 32 buffers are as cache-warm as the single packet's one). Decap runs with the
//! replay window disabled so the same prepared packet can be fed again.

use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput};
use esp::crypto::rust::RustBackend;
use esp::crypto::{
    AesCounterIvSource, CipherAlgorithm as C, CryptoBackend, CryptoJob, CryptoParams,
    IntegrityAlgorithm as I, Operation,
};
use esp::replay::ReplayWindow;
use esp::sa::{EspMode, SaConfig, TunnelEndpoints};
use esp::{
    decap, decap_burst, encap, encap_burst, encap_burst_multi, encap_mixed, InboundSa, OutboundSa,
    PacketBuffer, VecBuffer,
};
use std::hint::black_box;
use std::time::Duration;
use zeroize::Zeroizing;

const SIZES: [usize; 6] = [64, 128, 256, 512, 1024, 1420];
const ALGS: [(&str, C, I); 5] = [
    ("aes128gcm", C::AesGcm128, I::None),
    ("aes128cbc-sha1", C::AesCbc128, I::HmacSha1_96),
    ("aes128cbc-sha256", C::AesCbc128, I::HmacSha256_128),
    ("aes192gcm", C::AesGcm192, I::None),
    ("aes192cbc-sha256", C::AesCbc192, I::HmacSha256_128),
];

fn config(c: C, i: I) -> SaConfig {
    let p = CryptoParams {
        cipher: c,
        integrity: i,
        cipher_key: Zeroizing::new(vec![0x11; c.key_len() + c.salt_len()]),
        auth_key: Zeroizing::new(vec![0x22; i.key_len()]),
    };
    let mut cfg = SaConfig::new(
        0x1000,
        p,
        EspMode::Tunnel(TunnelEndpoints {
            src: "192.0.2.1".parse().unwrap(),
            dst: "192.0.2.2".parse().unwrap(),
        }),
    );
    cfg.replay_window = 0;
    cfg
}

/// An IPv4/UDP packet of `size` bytes in total.
fn packet(size: usize) -> Vec<u8> {
    let mut p = vec![0x5au8; size];
    p[..20].copy_from_slice(&[0x45, 0, 0, 0, 0, 1, 0x40, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2]);
    p[2..4].copy_from_slice(&(size as u16).to_be_bytes());
    let c = esp::wire::checksum::checksum(&p[..20]);
    p[10..12].copy_from_slice(&c.to_be_bytes());
    p
}

fn outbound(cfg: &SaConfig, backend: &dyn CryptoBackend) -> OutboundSa {
    let iv = Box::new(AesCounterIvSource::from_system_rng().unwrap());
    OutboundSa::new(cfg, backend, iv).unwrap()
}

/// The backends to measure: pure Rust always, Intel ipsec-mb with `--features ipsec-mb`.
fn backends() -> Vec<(&'static str, Box<dyn CryptoBackend>)> {
    #[allow(unused_mut)]
    let mut v: Vec<(&'static str, Box<dyn CryptoBackend>)> = vec![("rust", Box::new(RustBackend))];
    #[cfg(all(feature = "ipsec-mb", target_arch = "x86_64"))]
    v.push(("ipsec-mb", Box::new(esp::crypto::ipsec_mb::IpsecMbBackend::new().unwrap())));
    v
}

/// The crypto runner an lcore of `backend` would use.
fn runner(bname: &str) -> Box<dyn esp::crypto::CryptoRunner> {
    #[cfg(all(feature = "ipsec-mb", target_arch = "x86_64"))]
    if bname == "ipsec-mb" {
        return Box::new(esp::crypto::ipsec_mb::IpsecMbBackend::new().unwrap().runner().unwrap());
    }
    let _ = bname;
    Box::new(esp::crypto::PerSessionRunner)
}

/// A burst of 32 packets on 32 SAs: the per-SA path against one crypto call per burst.
fn mixed32(c: &mut Criterion, bname: &str, backend: &dyn CryptoBackend) {
    let mut run = runner(bname);
    for (aname, ca, ia) in ALGS {
        let cfg = config(ca, ia);
        let mut sas: Vec<OutboundSa> = (0..32)
            .map(|k| {
                let mut c = cfg.clone();
                c.spi = 0x2000 + k;
                outbound(&c, backend)
            })
            .collect();
        let keys: Vec<usize> = (0..32).collect();
        for size in [64, 1420] {
            let plain = VecBuffer::new(&packet(size));
            let mut g = c.benchmark_group(format!("mixed32/{bname}/{aname}"));
            g.throughput(Throughput::Elements(32));
            g.bench_function(BenchmarkId::new("per-sa", size), |b| {
                b.iter_batched_ref(
                    || vec![plain.clone(); 32],
                    |bufs| {
                        let mut r = [Ok(()); 32];
                        assert_eq!(encap_burst_multi(&mut sas, &keys, bufs, &mut r), 32);
                    },
                    BatchSize::PerIteration,
                )
            });
            g.bench_function(BenchmarkId::new("mixed", size), |b| {
                b.iter_batched_ref(
                    || vec![plain.clone(); 32],
                    |bufs| {
                        let mut r = [Ok(()); 32];
                        assert_eq!(encap_mixed(run.as_mut(), &mut sas[..], &keys, bufs, &mut r), 32);
                    },
                    BatchSize::PerIteration,
                )
            });
            g.finish();
        }
    }
}

fn bench(c: &mut Criterion) {
    for (bname, backend) in backends() {
        let backend = backend.as_ref();
        mixed32(c, bname, backend);
        for (aname, ca, ia) in ALGS {
            let name = format!("{bname}/{aname}");
            let cfg = config(ca, ia);
            for size in SIZES {
                let plain = VecBuffer::new(&packet(size));
                let mut sealed = plain.clone();
                let mut o = outbound(&cfg, backend);
                encap(&mut o, &mut sealed).unwrap();

                let mut g = c.benchmark_group(format!("raw/{name}"));
                g.throughput(Throughput::Bytes(size as u64));
                let session = backend.new_session(&cfg.crypto).unwrap();
                let lay = cfg.crypto.layout();
                // ESP header + IV + payload padded to the block + 2 + ICV, as the engine builds.
                let body = (size + 2).div_ceil(lay.block_len.max(4)) * lay.block_len.max(4);
                let esp_buf = vec![0u8; 8 + lay.iv_len + body + lay.icv_len];
                // Same conditions as encap/decap: a fresh copy of the buffer per iteration.
                g.bench_function(BenchmarkId::from_parameter(size), |b| {
                    b.iter_batched_ref(
                        || esp_buf.clone(),
                        |buf| {
                            let mut j = [CryptoJob::new(buf, None)];
                            session.process(Operation::Seal, &mut j);
                            black_box(j[0].status)
                        },
                        BatchSize::SmallInput,
                    )
                });
                g.finish();

                let mut g = c.benchmark_group(format!("encap/{name}"));
                g.throughput(Throughput::Bytes(size as u64));
                g.bench_function(BenchmarkId::from_parameter(size), |b| {
                    b.iter_batched_ref(
                        || plain.clone(),
                        |buf| encap(&mut o, buf).unwrap(),
                        BatchSize::SmallInput,
                    )
                });
                g.finish();

                let mut g = c.benchmark_group(format!("decap/{name}"));
                g.throughput(Throughput::Bytes(size as u64));
                let mut inb = InboundSa::new(&cfg, backend).unwrap();
                g.bench_function(BenchmarkId::from_parameter(size), |b| {
                    b.iter_batched_ref(
                        || sealed.clone(),
                        |buf| decap(&mut inb, buf).unwrap(),
                        BatchSize::SmallInput,
                    )
                });
                g.finish();

                let mut g = c.benchmark_group(format!("encap32/{name}"));
                g.throughput(Throughput::Elements(32));
                g.bench_function(BenchmarkId::from_parameter(size), |b| {
                    b.iter_batched_ref(
                        || vec![plain.clone(); 32],
                        |bufs| {
                            let mut r = [Ok(()); 32];
                            assert_eq!(encap_burst(&mut o, bufs, &mut r), 32);
                        },
                        BatchSize::PerIteration,
                    )
                });
                g.finish();

                let mut g = c.benchmark_group(format!("decap32/{name}"));
                g.throughput(Throughput::Elements(32));
                g.bench_function(BenchmarkId::from_parameter(size), |b| {
                    b.iter_batched_ref(
                        || vec![sealed.clone(); 32],
                        |bufs| {
                            let mut r = [Ok(()); 32];
                            assert_eq!(decap_burst(&mut inb, bufs, &mut r), 32);
                        },
                        BatchSize::PerIteration,
                    )
                });
                g.finish();
                black_box(sealed.data_len());
            }
        }
    }

    // Which AES-GCM implementation, sealing in place: `ring` (the backend's until it had to
    // zeroize its keys, which ring cannot), RustCrypto `aes-gcm`, and ours (aes + ctr + ghash,
    // wiped on drop; through a backend session, so with the ESP nonce and AAD set-up).
    let mut g = c.benchmark_group("gcm-impl");
    for size in [64usize, 1420] {
        g.throughput(Throughput::Bytes(size as u64));
        let mut buf = vec![0u8; size];
        let key = ring::aead::LessSafeKey::new(
            ring::aead::UnboundKey::new(&ring::aead::AES_128_GCM, &[7; 16]).unwrap(),
        );
        g.bench_function(BenchmarkId::new("ring", size), |b| {
            b.iter(|| {
                let n = ring::aead::Nonce::assume_unique_for_key([1; 12]);
                black_box(key.seal_in_place_separate_tag(n, ring::aead::Aad::from(&[0u8; 8]), &mut buf))
            })
        });
        use aes_gcm::aead::{AeadInPlace, KeyInit};
        let rc = aes_gcm::Aes128Gcm::new(&[7u8; 16].into());
        g.bench_function(BenchmarkId::new("rustcrypto", size), |b| {
            b.iter(|| black_box(rc.encrypt_in_place_detached(&[1u8; 12].into(), &[0u8; 8], &mut buf)))
        });
        let ours = RustBackend.new_session(&config(C::AesGcm128, I::None).crypto).unwrap();
        let mut esp_buf = vec![0u8; 8 + 8 + size + 16];
        g.bench_function(BenchmarkId::new("ours", size), |b| {
            b.iter(|| {
                let mut j = [CryptoJob::new(&mut esp_buf, None)];
                ours.process(Operation::Seal, &mut j);
                black_box(j[0].status)
            })
        });
    }
    g.finish();

    // Which HMAC: the `hmac` crate keyed once and cloned per packet (the backend's until it
    // had to zeroize its keyed state, which `hmac` 0.12 cannot), and ours
    // (`esp::crypto::hmac`, the same compression functions).
    let mut g = c.benchmark_group("hmac-impl");
    for size in [64usize, 1420] {
        g.throughput(Throughput::Bytes(size as u64));
        let data = vec![0x5au8; size];
        use hmac::Mac;
        let sha1 = <hmac::Hmac<sha1::Sha1> as Mac>::new_from_slice(&[0x22; 20]).unwrap();
        g.bench_function(BenchmarkId::new("hmac-crate/sha1", size), |b| {
            b.iter(|| {
                let mut m = sha1.clone();
                m.update(&data);
                black_box(m.finalize().into_bytes())
            })
        });
        let ours = esp::crypto::hmac::HmacKey::new(I::HmacSha1_96, &[0x22; 20]).unwrap();
        let mut out = [0u8; 12];
        g.bench_function(BenchmarkId::new("ours/sha1", size), |b| {
            b.iter(|| {
                ours.compute(&data, None, &mut out);
                black_box(out)
            })
        });
        let sha256 = <hmac::Hmac<sha2::Sha256> as Mac>::new_from_slice(&[0x22; 32]).unwrap();
        g.bench_function(BenchmarkId::new("hmac-crate/sha256", size), |b| {
            b.iter(|| {
                let mut m = sha256.clone();
                m.update(&data);
                black_box(m.finalize().into_bytes())
            })
        });
        let ours = esp::crypto::hmac::HmacKey::new(I::HmacSha256_128, &[0x22; 32]).unwrap();
        let mut out = [0u8; 16];
        g.bench_function(BenchmarkId::new("ours/sha256", size), |b| {
            b.iter(|| {
                ours.compute(&data, None, &mut out);
                black_box(out)
            })
        });
    }
    g.finish();

    // Engine parts: the CBC IV source.
    let mut g = c.benchmark_group("parts");
    let mut ivs = AesCounterIvSource::from_system_rng().unwrap();
    let mut iv = [0u8; 16];
    g.bench_function("iv-fill", |b| {
        b.iter(|| {
            esp::crypto::IvSource::fill(&mut ivs, &mut iv);
            black_box(iv)
        })
    });
    g.finish();

    let mut g = c.benchmark_group("replay");
    for size in [64u32, 4096] {
        let mut w = ReplayWindow::new(size, true).unwrap();
        let mut seq = 0u32;
        g.bench_function(BenchmarkId::new("check+update", size), |b| {
            b.iter(|| {
                seq = seq.wrapping_add(1);
                let full = w.check(black_box(seq)).unwrap();
                w.update(full).unwrap();
            })
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_millis(800));
    targets = bench
}
criterion_main!(benches);
