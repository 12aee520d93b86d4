//! Helpers shared by the sadb tests.
#![allow(dead_code)]

use sadb::*;

pub fn v4(a: [u8; 4]) -> [u8; 16] {
    let mut x = [0u8; 16];
    x[..4].copy_from_slice(&a);
    x
}

pub fn v6(prefix: u32, low: u32) -> [u8; 16] {
    let mut x = [0u8; 16];
    x[..4].copy_from_slice(&prefix.to_be_bytes());
    x[12..].copy_from_slice(&low.to_be_bytes());
    x
}

/// A valid AES-128-GCM tunnel SA whose key bytes are derived from the SPI and a
/// generation, so a reader can check that what it sees is self-consistent.
pub fn gcm_sa(spi: u32, dir: Direction, generation: u8) -> SaConfig {
    let mut c: SaConfig = bytemuck::Zeroable::zeroed();
    c.spi = spi;
    c.reqid = 7;
    c.direction = dir as u8;
    c.mode = SaMode::Tunnel as u8;
    c.family = 4;
    c.cipher = Cipher::AesGcm16 as u8;
    c.cipher_key_len = 16;
    c.integ = Integ::None as u8;
    c.replay_window = 64;
    c.src = v4([198, 18, 0, 1]);
    c.dst = v4([198, 18, 0, 2]);
    fill_key(&mut c, generation);
    c
}

pub fn fill_key(c: &mut SaConfig, generation: u8) {
    let s = c.spi.to_le_bytes();
    for (i, k) in c.cipher_key.iter_mut().enumerate() {
        *k = s[i % 4] ^ generation ^ (i as u8);
    }
    c.salt = [generation; 4];
}

/// Whether a configuration seen by a reader is one a writer could have written.
pub fn consistent(c: &SaConfig) -> bool {
    let g = c.salt[0];
    let mut want = *c;
    fill_key(&mut want, g);
    want.cipher_key == c.cipher_key && c.salt == [g; 4]
}

pub fn policy(
    id: u32,
    dir: Direction,
    action: Action,
    src: ([u8; 16], u8),
    dst: ([u8; 16], u8),
) -> PolicyConfig {
    PolicyConfig {
        id,
        priority: 100,
        reqid: if action == Action::Protect { 7 } else { 0 },
        direction: dir as u8,
        action: action as u8,
        family: 4,
        proto: 0,
        src: src.0,
        dst: dst.0,
        src_plen: src.1,
        dst_plen: dst.1,
        _pad: [0; 2],
        sport: [0, 65535],
        dport: [0, 65535],
        _pad2: 0,
    }
}

pub fn small_caps() -> Capacities {
    Capacities {
        sas: 1024,
        policies: 256,
        readers: 8,
        event_ring: 16,
        max_replay_window: 1024,
        spi_dst_index: false,
    }
}

/// Whether `a` lies in `net`/`plen` (addresses in the record's 16-byte form; `fam` 4 or 6).
pub fn in_prefix(fam: u8, a: &[u8; 16], net: &[u8; 16], plen: u8) -> bool {
    let bits = if fam == 4 { 32 } else { 128 };
    let (x, y) = if fam == 4 {
        (
            u128::from(u32::from_be_bytes([a[0], a[1], a[2], a[3]])),
            u128::from(u32::from_be_bytes([net[0], net[1], net[2], net[3]])),
        )
    } else {
        (u128::from_be_bytes(*a), u128::from_be_bytes(*net))
    };
    let shift = bits - u32::from(plen);
    plen == 0 || (x >> shift) == (y >> shift)
}
