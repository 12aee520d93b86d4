//! Faults and limits: a full SA table, a full event ring, and corrupted region files (the
//! regressions the `attach` fuzz target found, and the header checks added for them).
//! `tests/ops.rs` has the basic refusals (bad magic, foreign ABI version, truncated file,
//! record size from another build, impossible capacities); these tests add the rest.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use common::*;
use sadb::*;

fn region(caps: &Capacities) -> (tempfile::TempDir, PathBuf, Arc<Region>) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sadb");
    let r = Region::create(&path, caps).unwrap();
    (dir, path, Arc::new(r))
}

fn key(spi: u32, direction: Direction) -> SaKey {
    SaKey { spi, direction, dst: Some(v4([198, 18, 0, 2])) }
}

#[test]
fn a_full_sa_table_refuses_cleanly_and_changes_nothing() {
    let caps = Capacities { sas: 8, ..small_caps() };
    let (_d, _p, r) = region(&caps);
    let reader = r.register_reader(0).unwrap();
    let mut w = r.writer().unwrap();
    for i in 0..8 {
        w.add_sa(&gcm_sa(0x100 + i, if i % 2 == 0 { Direction::In } else { Direction::Out }, 3)).unwrap();
    }
    let out = r.find_sa(&key(0x101, Direction::Out)).unwrap();
    assert_eq!(reader.reserve_seq(out, 10, false), Ok(1));
    let before = r.list_sas();
    let changes = r.changes();
    assert_eq!(r.sa_full_refusals(), 0);

    for n in 1..=3 {
        let e = w.add_sa(&gcm_sa(0x900 + n, Direction::In, 0)).unwrap_err();
        assert_eq!(e, SadbError::Full { what: "SA table" });
        assert_eq!(
            e.to_string(),
            "SA table is full: raise espd's [sadb] sas (or `espctl create --sas`) and recreate the database"
        );
        assert_eq!(r.sa_full_refusals(), n, "each refusal is counted");
    }
    assert_eq!(r.sa_count(), 8);
    assert_eq!(r.list_sas(), before, "every SA, key and counter as it was");
    assert_eq!(r.changes(), changes, "a refused install commits nothing");
    assert_eq!(r.find_sa(&key(0x901, Direction::In)), None);
    for i in 0..8 {
        let dir = if i % 2 == 0 { Direction::In } else { Direction::Out };
        let slot = r.find_sa(&key(0x100 + i, dir)).unwrap();
        assert!(consistent(&reader.read_sa(slot).unwrap().0));
    }
    assert_eq!(reader.reserve_seq(out, 1, false), Ok(11), "the sequence counter went on untouched");

    // Room again once a delete's grace period is over, and the counter stays.
    w.del_sa(&key(0x100, Direction::In)).unwrap();
    reader.quiescent();
    w.add_sa(&gcm_sa(0x901, Direction::In, 0)).unwrap();
    assert_eq!(r.sa_full_refusals(), 3);
    drop(w);
    drop(reader);
}

#[test]
fn a_full_event_ring_counts_drops_and_keeps_the_queued_events_intact() {
    // Ring of 16: fill past it by a different amount each round, so head and tail wrap
    // around the ring many times at different phases.
    let (_d, _p, r) = region(&small_caps());
    let reader = r.register_reader(4).unwrap();
    let other = r.register_reader(5).unwrap();
    let mut next = 0u32;
    let mut dropped = 0u64;
    for round in 0..40u32 {
        let burst = 1 + (round * 7) % 29;
        let mut queued = Vec::new();
        for _ in 0..burst {
            let ev = Event {
                kind: EventKind::HardExpire as u8,
                spi: next,
                slot: next ^ 0xa5a5,
                value: u64::from(next) << 20,
                ..bytemuck::Zeroable::zeroed()
            };
            if reader.emit(&ev) {
                queued.push(next);
            } else {
                dropped += 1;
            }
            next += 1;
        }
        assert_eq!(queued.len() as u32, burst.min(16), "round {round}: the ring holds 16");
        assert!(other.emit(&Event {
            kind: EventKind::Acquire as u8,
            spi: round,
            ..bytemuck::Zeroable::zeroed()
        }));
        let mut w = r.writer().unwrap();
        assert_eq!(w.events_dropped(), dropped);
        let mut got = Vec::new();
        w.drain_events(|rd, e| got.push((rd, e)));
        let mine: Vec<&Event> = got.iter().filter(|(rd, _)| *rd == reader.index()).map(|(_, e)| e).collect();
        assert_eq!(mine.iter().map(|e| e.spi).collect::<Vec<_>>(), queued, "round {round}");
        assert!(mine.iter().all(|e| e.slot == e.spi ^ 0xa5a5 && e.value == u64::from(e.spi) << 20));
        let theirs: Vec<u32> =
            got.iter().filter(|(rd, _)| *rd == other.index()).map(|(_, e)| e.spi).collect();
        assert_eq!(theirs, vec![round], "the other reader's ring is unaffected");
    }
    assert!(dropped > 100, "{dropped}");
    let info = r.readers();
    let mine = info.iter().find(|i| i.slot == reader.index()).unwrap();
    assert_eq!(mine.events_dropped, dropped, "drops are per reader, as espctl stats shows them");
    assert_eq!(info.iter().find(|i| i.slot == other.index()).unwrap().events_dropped, 0);
}

/// A fresh region with a few SAs, written out and closed: (dir, path, file bytes).
fn image(spi_dst_index: bool) -> (tempfile::TempDir, PathBuf, Vec<u8>) {
    let caps = Capacities { sas: 16, spi_dst_index, ..small_caps() };
    let (d, p, r) = region(&caps);
    let mut w = r.writer().unwrap();
    w.add_sa(&gcm_sa(0x1001, Direction::In, 0)).unwrap();
    w.add_sa(&gcm_sa(0x2001, Direction::Out, 0)).unwrap();
    w.add_policy(&policy(
        1,
        Direction::Out,
        Action::Protect,
        (v4([198, 18, 1, 0]), 24),
        (v4([198, 18, 2, 0]), 24),
    ))
    .unwrap();
    drop(w);
    drop(r);
    let bytes = std::fs::read(&p).unwrap();
    (d, p, bytes)
}

fn rewrite(path: &Path, bytes: &[u8], at: usize, with: &[u8]) {
    let mut v = bytes.to_vec();
    v[at..at + with.len()].copy_from_slice(with);
    std::fs::write(path, v).unwrap();
}

fn refusal(path: &Path) -> String {
    let e = Region::attach(path).unwrap_err();
    let m = e.to_string();
    assert!(m.starts_with(&format!("{}: ", path.display())), "names the file: {m}");
    m
}

/// Offsets in the header (see `region.rs`: `HeaderStatic`, then `HeaderDyn` at 256).
const TOTAL_SIZE: usize = 72;
const EPOCH: usize = 256;
const ACTIVE_INDEX: usize = 276;
const SA_LIVE: usize = 280;
const FREE_TOP: usize = 288;
const RETIRED_HEAD: usize = 292;
const RETIRED_TAIL: usize = 296;

#[test]
fn impossible_header_values_are_refused_with_the_reason() {
    let (_d, path, bytes) = image(false);
    let cases: &[(usize, Vec<u8>, &str)] = &[
        (
            TOTAL_SIZE,
            (1u64 << 40).to_ne_bytes().to_vec(),
            "corrupt header: the header gives the region's size as 1099511627776 bytes, its capacities make it 2097152",
        ),
        (EPOCH, 0u64.to_ne_bytes().to_vec(), "corrupt header: epoch 0 is outside 1..="),
        (EPOCH, u64::MAX.to_ne_bytes().to_vec(), "corrupt header: epoch 18446744073709551615 is outside"),
        (ACTIVE_INDEX, 2u32.to_ne_bytes().to_vec(), "corrupt header: active_index is 2, more than 1"),
        (SA_LIVE, 17u32.to_ne_bytes().to_vec(), "corrupt header: sa_live is 17, more than 16"),
        (FREE_TOP, u32::MAX.to_ne_bytes().to_vec(), "corrupt header: free_top is 4294967295, more than 16"),
        (
            RETIRED_TAIL,
            0x8000_0000u32.to_ne_bytes().to_vec(),
            "corrupt header: retired slots (retired_tail - retired_head) is 2147483648, more than 16",
        ),
        (
            RETIRED_HEAD,
            5u32.to_ne_bytes().to_vec(),
            "corrupt header: retired slots (retired_tail - retired_head) is 4294967291, more than 16",
        ),
    ];
    for (at, with, want) in cases {
        rewrite(&path, &bytes, *at, with);
        let m = refusal(&path);
        assert!(m.contains(want), "offset {at}: {m}");
    }
    // The genuine file still attaches.
    std::fs::write(&path, &bytes).unwrap();
    assert_eq!(Region::attach(&path).unwrap().sa_count(), 2);
}

/// Offset of the SPI-index entry of an inbound SPI in a region file.
fn index_entry(bytes: &[u8], spi: u32) -> usize {
    bytes
        .chunks_exact(8)
        .position(|w| {
            let v = u64::from_ne_bytes(w.try_into().unwrap());
            (v >> 32) as u32 == spi && v & 0x8000_0000 == 0 && (1..=16).contains(&(v & 0x7fff_ffff))
        })
        .map(|i| i * 8)
        .unwrap()
}

/// Found by the `attach` fuzz target: an SPI-index entry whose slot field is 0 (no slot
/// can be named so) overflowed `slot - 1` in every lookup (a panic in debug builds), and
/// one naming a slot past the table made `del_sa` (and, with SPI + destination indexing,
/// every writer lookup) index the slot headers out of range (an assertion failure instead
/// of a clean "no such SA"). Seeds: `dataplane/sadb/fuzz/corpus/attach/index*-slot-*.bin`.
#[test]
fn corrupted_spi_index_entries_are_misses_not_panics() {
    for spi_dst_index in [false, true] {
        let (_d, path, bytes) = image(spi_dst_index);
        let at = index_entry(&bytes, 0x1001);
        for low in [0u32, 17, 1000, 0x7fff_fffe] {
            let entry = (u64::from(0x1001u32) << 32) | u64::from(low);
            rewrite(&path, &bytes, at, &entry.to_ne_bytes());
            let r = Arc::new(Region::attach(&path).unwrap());
            let k = key(0x1001, Direction::In);
            assert_eq!(r.find_sa(&k), None, "slot field {low}");
            let rd = r.register_reader(0).unwrap();
            assert_eq!(rd.lookup_inbound(0x1001, Some(&v4([198, 18, 0, 2]))), None);
            let mut out = [Some(0)];
            rd.lookup_burst(&[0x1001], Some(&[v4([198, 18, 0, 2])]), &mut out);
            assert_eq!(out, [None]);
            drop(rd);
            let mut w = r.writer().unwrap();
            assert_eq!(w.del_sa(&k), Err(SadbError::NotFound { key: k }), "slot field {low}");
            assert_eq!(w.update_sa(&k, |c| c.soft_bytes = 1), Err(SadbError::NotFound { key: k }));
            // The table itself is intact: the SA is listed (by slot) and the other one works.
            assert_eq!(r.list_sas().len(), 2);
            w.del_sa(&key(0x2001, Direction::Out)).unwrap();
        }
    }
}

/// A deleted SA's keys stay in the region file only for its grace period: once the slot is
/// reclaimed (no reader can reach it), its record is zeroed.
#[test]
fn a_deleted_sas_keys_are_wiped_from_the_file_once_reclaimed() {
    let (_d, path, r) = region(&small_caps());
    let reader = r.register_reader(0).unwrap();
    let mut c = gcm_sa(0x4242, Direction::In, 0);
    c.cipher_key = *b"KEY-MATERIAL-KEY-MATERIAL-KEY-MA";
    c.salt = *b"SALT";
    let mut w = r.writer().unwrap();
    w.add_sa(&c).unwrap();
    let holds_key = |p: &Path| std::fs::read(p).unwrap().windows(16).any(|x| x == b"KEY-MATERIAL-KEY");
    assert!(holds_key(&path), "the live SA's key is in the region (by design)");
    w.del_sa(&key(0x4242, Direction::In)).unwrap();
    assert_eq!(w.retired_pending(), 1);
    assert!(holds_key(&path), "kept while the reader may still be using the slot");
    reader.quiescent();
    assert_eq!(w.reclaim(), 1);
    assert!(!holds_key(&path), "wiped once reclaimed");
    assert!(!std::fs::read(&path).unwrap().windows(4).any(|x| x == b"SALT"));
}
