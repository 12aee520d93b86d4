//! Copies of SA records handed out by the region wipe their keys when dropped.
//!
//! This binary's global allocator (`ffi/wipe/src/scan.rs`, shared with
//! the `esp` crate's test of the same kind) searches every block freed while armed for the
//! needles: an SA's encryption key, integrity key and salt. `Region::list_sas` returns a
//! `Vec<SaEntry>` and `Region::sa_entry` an `SaEntry`, both holding a copy of the record,
//! keys included (`espctl sa list`, iked's `sadb_writer.rs`); dropping them must leave no key in
//! the freed memory.

mod common;
use wipe::scan as scan_alloc;

use common::*;
use sadb::*;
use scan_alloc::{arm, disarm, serial, ScanAlloc};

#[global_allocator]
static ALLOC: ScanAlloc = ScanAlloc;

fn random<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    getrandom::fill(&mut b).unwrap();
    b
}

/// An AES-256-CBC + HMAC-SHA-512 SA with random keys, and a GCM one with a random salt.
fn sas(spi: u32) -> [SaConfig; 2] {
    let mut cbc = gcm_sa(spi, Direction::In, 0);
    cbc.cipher = Cipher::AesCbc as u8;
    cbc.cipher_key_len = 32;
    cbc.cipher_key = random();
    cbc.salt = [0; 4];
    cbc.integ = Integ::HmacSha512_256 as u8;
    cbc.integ_key_len = 64;
    cbc.integ_key = random();
    let mut gcm = gcm_sa(spi + 1, Direction::Out, 0);
    gcm.cipher_key = random();
    gcm.salt = random();
    [cbc, gcm]
}

fn needles(c: &SaConfig) -> Vec<&[u8]> {
    let mut v: Vec<&[u8]> = vec![&c.cipher_key[..usize::from(c.cipher_key_len)]];
    if c.integ_key_len > 0 {
        v.push(&c.integ_key[..usize::from(c.integ_key_len)]);
    }
    if c.cipher == Cipher::AesGcm16 as u8 {
        v.push(&c.salt);
    }
    v
}

#[test]
fn listed_and_looked_up_sa_copies_leave_no_keys_in_freed_memory() {
    let _g = serial();
    let dir = tempfile::tempdir().unwrap();
    let r = Region::create(dir.path().join("sadb"), &small_caps()).unwrap();
    let [cbc, gcm] = sas(0x5000);
    {
        let mut w = r.writer().unwrap();
        // Some others, so that the list is longer than one entry.
        for k in 0..6u32 {
            w.add_sa(&gcm_sa(0x100 + k, Direction::In, k as u8)).unwrap();
        }
        w.add_sa(&cbc).unwrap();
        w.add_sa(&gcm).unwrap();
    }
    let mut list: Vec<&[u8]> = needles(&cbc);
    list.extend(needles(&gcm));
    arm(&list);
    let listed = r.list_sas();
    assert_eq!(listed.len(), 8);
    assert!(listed.iter().any(|e| e.config.cipher_key == cbc.cipher_key), "the list holds the keys");
    let again = listed.clone();
    drop(listed);
    drop(again);
    let slot = r.find_sa(&SaKey { spi: 0x5000, direction: Direction::In, dst: None }).unwrap();
    let one = r.sa_entry(slot).unwrap();
    assert_eq!(one.config.integ_key, cbc.integ_key);
    drop(one);
    // The writer's working copies in `update_sa`.
    r.writer()
        .unwrap()
        .update_sa(&SaKey { spi: 0x5001, direction: Direction::Out, dst: None }, |c| c.soft_bytes = 1 << 30)
        .unwrap();
    let hits = disarm();
    let names = ["CBC key", "HMAC-SHA-512 key", "GCM key", "GCM salt"];
    let found: Vec<_> = names.iter().zip(hits).filter(|(_, h)| *h > 0).collect();
    assert!(found.is_empty(), "SA keys in freed memory: {found:?}");
}
