//! Raw crypto throughput of the burst API on one core, burst 32, in the shape
//! of `dpdk-test-crypto-perf --ptest throughput` (see
//! shared/notes/reference-figures.md):
//! - AES-128-GCM encrypt, 8-byte AAD, 16-byte tag, 64 and 1420 bytes;
//! - AES-128-CBC + HMAC-SHA1-96 (cipher-then-hash, the hash over the same
//!   bytes as the cipher), 64 and 1424 bytes.
//!
//! Run: `taskset -c 1 cargo bench -p ipsec-mb --bench raw` (set
//! `IMB_BENCH_SECS` to change the time per measurement, default 1 s; each
//! figure is the median of 5 measurements).

use std::hint::black_box;
use std::time::{Duration, Instant};

use ipsec_mb::{CbcHmacKey, CbcHmacOp, GcmKey, GcmOp, HmacAlg, MbMgr, SubmitMode};

const BURST: usize = 32;
const RUNS: usize = 5;

fn secs() -> f64 {
    std::env::var("IMB_BENCH_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(1.0)
}

/// Runs `burst` (which processes BURST operations) for about `secs()` and
/// returns operations per second; median of RUNS.
fn measure(mut burst: impl FnMut()) -> f64 {
    // Warm-up.
    let t = Instant::now();
    while t.elapsed() < Duration::from_millis(200) {
        burst();
    }
    let per_run = Duration::from_secs_f64(secs() / RUNS as f64);
    let mut rates: Vec<f64> = (0..RUNS)
        .map(|_| {
            let t = Instant::now();
            let mut n = 0u64;
            while t.elapsed() < per_run {
                for _ in 0..16 {
                    burst();
                }
                n += 16;
            }
            (n as f64 * BURST as f64) / t.elapsed().as_secs_f64()
        })
        .collect();
    rates.sort_by(|a, b| a.total_cmp(b));
    rates[RUNS / 2]
}

fn report(what: &str, size: usize, ops_per_sec: f64) {
    let mops = ops_per_sec / 1e6;
    let gbps = ops_per_sec * size as f64 * 8.0 / 1e9;
    println!("{what:<48} {size:>5} B  {mops:>7.2} Mops  {gbps:>7.2} Gbps");
}

fn gcm_encrypt(mgr: &mut MbMgr, size: usize) -> f64 {
    let key = GcmKey::new(mgr, &[0x42; 16]).expect("key");
    let aad = [0x5au8; 8];
    let mut bufs = vec![vec![0xa5u8; size + 16]; BURST];
    measure(|| {
        let mut it = bufs.iter_mut();
        let mut ops: [GcmOp<'_>; BURST] = core::array::from_fn(|i| GcmOp {
            key: &key,
            iv: [i as u8; 12],
            aad: &aad,
            buf: it.next().expect("BURST buffers"),
            data_offset: 0,
            data_len: size,
        });
        let st = mgr.gcm_encrypt_burst(black_box(&mut ops)).expect("burst");
        assert!(st.all_completed());
    })
}

fn gcm_encrypt_direct(mgr: &mut MbMgr, size: usize) -> f64 {
    let key = GcmKey::new(mgr, &[0x42; 16]).expect("key");
    let aad = [0x5au8; 8];
    let mut bufs = vec![vec![0xa5u8; size]; BURST];
    let mut tags = [[0u8; 16]; BURST];
    measure(|| {
        for (i, (b, t)) in bufs.iter_mut().zip(tags.iter_mut()).enumerate() {
            assert!(mgr.gcm_seal(&key, &[i as u8; 12], &aad, black_box(b), t));
        }
    })
}

fn cbc_sha1(mgr: &mut MbMgr, size: usize, alg: HmacAlg) -> f64 {
    let key = CbcHmacKey::new(mgr, &[0x42; 16], alg, &[0x24; 20]).expect("key");
    let mut bufs = vec![vec![0xa5u8; size + alg.icv_len()]; BURST];
    measure(|| {
        let mut it = bufs.iter_mut();
        let mut ops: [CbcHmacOp<'_>; BURST] = core::array::from_fn(|i| CbcHmacOp {
            key: &key,
            iv: [i as u8; 16],
            buf: it.next().expect("BURST buffers"),
            cipher_offset: 0,
            cipher_len: size,
            auth_offset: 0,
            auth_len: size,
            esn_high: None,
        });
        let st = mgr.cbc_hmac_encrypt_burst(black_box(&mut ops)).expect("burst");
        assert!(st.all_completed());
    })
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` runs us too:
    // keep that quick.
    if std::env::args().any(|a| a == "--test" || a == "--list") {
        return;
    }
    let mut mgr = MbMgr::new().expect("MbMgr");
    println!(
        "intel-ipsec-mb {} ({:?}), burst {BURST}, median of {RUNS} x {:.2} s",
        MbMgr::library_version(),
        mgr.arch(),
        secs() / RUNS as f64
    );
    for mode in [SubmitMode::Auto, SubmitMode::Burst, SubmitMode::Job] {
        mgr.set_submit_mode(mode);
        for size in [64, 1420] {
            let r = gcm_encrypt(&mut mgr, size);
            report(&format!("AES-128-GCM encrypt ({mode:?} API)"), size, r);
        }
    }
    for size in [64, 1420] {
        let r = gcm_encrypt_direct(&mut mgr, size);
        report("AES-128-GCM encrypt (gcm_seal one by one)", size, r);
    }
    for mode in [SubmitMode::Auto, SubmitMode::Burst, SubmitMode::Job] {
        mgr.set_submit_mode(mode);
        for size in [64, 1424] {
            let r = cbc_sha1(&mut mgr, size, HmacAlg::Sha1_96);
            report(&format!("AES-128-CBC + HMAC-SHA1-96 ({mode:?} API)"), size, r);
        }
    }
    mgr.set_submit_mode(SubmitMode::Auto);
    for size in [64, 1424] {
        let r = cbc_sha1(&mut mgr, size, HmacAlg::Sha256_128);
        report("AES-128-CBC + HMAC-SHA256-128 (Auto)", size, r);
    }
}
