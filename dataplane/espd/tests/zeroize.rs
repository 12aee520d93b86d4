//! espd's SA contexts leave no key material in the memory they free.
//!
//! The global allocator of this binary (`ffi/wipe/src/scan.rs`) searches
//! every block freed while armed for an SA's keys. The SA is read from a region the way a
//! worker does (`SaCache::get`: `Reader::read_sa`, `engine_config`, `build`), used to seal a
//! packet, and the cache dropped: once with the Rust backend, once with ipsec-mb (the
//! production default, whose expanded keys, GCM key data and HMAC ipad/opad states live in
//! Rust-allocated blocks of `ffi/ipsec-mb`). Needs neither root nor DPDK.

use wipe::scan as scan_alloc;

use espd::gw::sa_ctx::{Backends, Ctx, SaCache};
use sadb::{Backend, Capacities, Cipher, Direction, Integ, Region, SaConfig, SaKey, SaMode};
use scan_alloc::{arm, disarm, serial, ScanAlloc};

#[global_allocator]
static ALLOC: ScanAlloc = ScanAlloc;

/// Bytes unlikely to be anywhere else in memory (std's randomly seeded hasher; no RNG crate
/// is a dependency here).
fn random<const N: usize>() -> [u8; N] {
    use std::hash::{BuildHasher, Hasher};
    let s = std::collections::hash_map::RandomState::new();
    let mut b = [0u8; N];
    for (i, c) in b.chunks_mut(8).enumerate() {
        let mut h = s.build_hasher();
        h.write_usize(i);
        c.copy_from_slice(&h.finish().to_ne_bytes()[..c.len()]);
    }
    b
}

fn v4(a: [u8; 4]) -> [u8; 16] {
    let mut x = [0u8; 16];
    x[..4].copy_from_slice(&a);
    x
}

fn record(spi: u32, cipher: Cipher, klen: u8, integ: Integ, ilen: u8, backend: Backend) -> SaConfig {
    let mut c: SaConfig = bytemuck::Zeroable::zeroed();
    c.spi = spi;
    c.reqid = 1;
    c.direction = Direction::Out as u8;
    c.mode = SaMode::Tunnel as u8;
    c.family = 4;
    c.cipher = cipher as u8;
    c.cipher_key_len = klen;
    c.cipher_key = random();
    c.salt = if cipher == Cipher::AesGcm16 { random() } else { [0; 4] };
    c.integ = integ as u8;
    c.integ_key_len = ilen;
    if ilen > 0 {
        c.integ_key = random();
    }
    c.backend = backend as u8;
    c.replay_window = 64;
    c.dscp = 0xff;
    c.src = v4([198, 18, 0, 1]);
    c.dst = v4([198, 18, 0, 2]);
    c
}

#[test]
fn rust_backend_contexts_leave_no_keys_in_freed_memory() {
    sa_contexts_built_from_the_region_leave_no_keys_in_freed_memory(Backend::Rust);
}

#[test]
fn ipsec_mb_contexts_leave_no_keys_in_freed_memory() {
    assert!(
        esp::crypto::ipsec_mb::IpsecMbBackend::new().is_ok(),
        "intel-ipsec-mb is not usable here (scripts/setup.sh installs libipsec-mb)"
    );
    sa_contexts_built_from_the_region_leave_no_keys_in_freed_memory(Backend::IpsecMb);
}

fn sa_contexts_built_from_the_region_leave_no_keys_in_freed_memory(backend: Backend) {
    let _g = serial();
    let dir = tempfile::tempdir().unwrap();
    let caps = Capacities {
        sas: 64,
        policies: 16,
        readers: 2,
        event_ring: 16,
        max_replay_window: 1024,
        spi_dst_index: false,
    };
    let r = std::sync::Arc::new(Region::create(dir.path().join("sadb"), &caps).unwrap());
    let gcm = record(0x7001, Cipher::AesGcm16, 16, Integ::None, 0, backend);
    let cbc = record(0x7002, Cipher::AesCbc, 32, Integ::HmacSha256_128, 32, backend);
    {
        let mut w = r.writer().unwrap();
        w.add_sa(&gcm).unwrap();
        w.add_sa(&cbc).unwrap();
    }
    let reader = r.register_reader(0).unwrap();
    let backends = Backends::new(backend == Backend::IpsecMb);
    let needles: [&[u8]; 4] = [&gcm.cipher_key[..16], &gcm.salt, &cbc.cipher_key, &cbc.integ_key[..32]];
    arm(&needles);
    {
        let mut cache = SaCache::new(caps.sas);
        for spi in [0x7001, 0x7002] {
            let slot = r.find_sa(&SaKey { spi, direction: Direction::Out, dst: None }).unwrap();
            let e =
                cache.get(&reader, &backends, slot).unwrap_or_else(|| panic!("{backend:?} context built"));
            let Ctx::Out(o) = &mut e.ctx else { panic!("outbound") };
            let mut pkt = esp::VecBuffer::new(&[
                0x45, 0, 0, 28, 0, 1, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2, 0, 1, 0, 2, 0, 8, 0, 0,
            ]);
            esp::encap(o, &mut pkt).unwrap();
        }
        drop(cache);
    }
    let hits = disarm();
    let names = ["GCM key", "GCM salt", "CBC key", "HMAC key"];
    let found: Vec<_> = names.iter().zip(hits).filter(|(_, h)| *h > 0).collect();
    assert!(found.is_empty(), "{backend:?}: SA keys in freed memory: {found:?}");
}
