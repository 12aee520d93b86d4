//! Every operation and error path of the SA database, in one process.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;

use common::*;
use sadb::*;

fn region(caps: &Capacities) -> (tempfile::TempDir, Arc<Region>) {
    let dir = tempfile::tempdir().unwrap();
    let r = Region::create(dir.path().join("sadb"), caps).unwrap();
    (dir, Arc::new(r))
}

#[test]
fn create_attach_and_refusals() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sadb");
    let r = Region::create(&path, &small_caps()).unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "region file is private");
    assert!(matches!(Region::create(&path, &small_caps()), Err(SadbError::Exists { .. })));
    r.writer().unwrap().add_sa(&gcm_sa(0x1000, Direction::In, 1)).unwrap();

    // A second mapping sees the same SA.
    let r2 = Region::attach(&path).unwrap();
    assert_eq!(r2.capacities(), &small_caps());
    assert_eq!(r2.list_sas().len(), 1);
    assert_eq!(r2.list_sas()[0].config.spi, 0x1000);
    drop(r2);
    drop(r);

    let bytes = std::fs::read(&path).unwrap();
    let write = |name: &str, b: &[u8]| {
        let p = dir.path().join(name);
        std::fs::write(&p, b).unwrap();
        // Only a file nobody else may read is attached.
        std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
        p
    };
    // Foreign ABI version.
    let mut v = bytes.clone();
    v[8..12].copy_from_slice(&99u32.to_ne_bytes());
    let e = Region::attach(write("abi", &v)).unwrap_err();
    assert!(matches!(e, SadbError::AbiMismatch { found: 99, expected: ABI_VERSION, .. }), "{e}");
    assert!(e.to_string().contains("ABI version 99"), "{e}");
    // Not a region at all.
    let e = Region::attach(write("junk", &vec![0x5au8; 8192])).unwrap_err();
    assert!(matches!(e, SadbError::NotARegion { .. }), "{e}");
    // Truncated.
    let e = Region::attach(write("short", &bytes[..bytes.len() / 2])).unwrap_err();
    assert!(matches!(e, SadbError::Truncated { .. }), "{e}");
    let e = Region::attach(write("tiny", &bytes[..100])).unwrap_err();
    assert!(matches!(e, SadbError::Truncated { .. }), "{e}");
    // A record size from another build.
    let mut v = bytes.clone();
    v[16..20].copy_from_slice(&123u32.to_ne_bytes());
    let e = Region::attach(write("layout", &v)).unwrap_err();
    assert!(matches!(e, SadbError::LayoutMismatch { what: "SA record size", found: 123, .. }), "{e}");
    // Impossible capacities.
    let mut v = bytes.clone();
    v[40..44].copy_from_slice(&0u32.to_ne_bytes());
    let e = Region::attach(write("caps", &v)).unwrap_err();
    assert!(matches!(e, SadbError::Corrupt { .. }), "{e}");
    // Missing file.
    assert!(matches!(Region::attach(dir.path().join("none")), Err(SadbError::Io { op: "open", .. })));
}

#[test]
fn sa_lifecycle_and_errors() {
    let (_d, r) = region(&small_caps());
    let reader = r.register_reader(1).unwrap();
    let mut w = r.writer().unwrap();
    let slot = w.add_sa(&gcm_sa(0xabcd, Direction::In, 1)).unwrap();
    assert_eq!(reader.lookup_inbound(0xabcd, None), Some(slot));
    assert_eq!(reader.lookup_inbound(0xabce, None), None, "unknown SPI");
    let (cfg, v1) = reader.read_sa(slot).unwrap();
    assert_eq!(cfg, gcm_sa(0xabcd, Direction::In, 1));
    assert_eq!(v1 % 2, 0);

    let key = SaKey { spi: 0xabcd, direction: Direction::In, dst: None };
    assert_eq!(
        w.add_sa(&gcm_sa(0xabcd, Direction::In, 2)),
        Err(SadbError::Duplicate { key: SaKey { dst: Some(v4([198, 18, 0, 2])), ..key } })
    );
    // The same SPI outbound is another SA.
    let out = w.add_sa(&gcm_sa(0xabcd, Direction::Out, 1)).unwrap();
    assert_ne!(out, slot);
    assert_eq!(reader.lookup_inbound(0xabcd, None), Some(slot), "outbound SAs are not found as inbound");

    w.update_sa(&key, |c| fill_key(c, 9)).unwrap();
    let (cfg, v2) = reader.read_sa(slot).unwrap();
    assert!(v2 != v1 && v2 % 2 == 0, "version moves on update");
    assert_eq!(cfg.salt, [9; 4]);
    assert!(w.update_sa(&key, |c| c.spi = 5).is_err(), "SPI is immutable");
    assert!(
        w.update_sa(&key, |c| c.dst = v4([198, 18, 9, 9])).is_err(),
        "an inbound SA keeps its destination"
    );
    // A NAT rebinding: the outbound SA follows the peer to a new address and UDP port,
    // keeping its sequence number.
    let out_key = SaKey { spi: 0xabcd, direction: Direction::Out, dst: None };
    reader.reserve_seq(out, 5, false).unwrap();
    let v_out = reader.sa_version(out);
    w.update_sa(&out_key, |c| {
        c.flags |= SA_FLAG_UDP_ENCAP;
        c.encap_sport = 4500;
        c.encap_dport = 31_337;
        c.dst = v4([198, 18, 7, 7]);
    })
    .unwrap();
    let (moved, v_moved) = reader.read_sa(out).unwrap();
    assert_ne!(v_moved, v_out, "readers see a new version");
    assert_eq!((moved.encap_sport, moved.encap_dport, moved.dst), (4500, 31_337, v4([198, 18, 7, 7])));
    assert_eq!(reader.reserve_seq(out, 1, false).unwrap(), 6, "the sequence number carries on");
    assert_eq!(r.list_sas().iter().filter(|e| e.config.spi == 0xabcd).count(), 2);
    assert!(w.update_sa(&key, |c| c.cipher_key_len = 7).is_err(), "validated");
    // AES takes 16, 24 or 32 bytes (AES-192 GCM and CBC are installed like the others).
    for len in [24, 32, 16] {
        w.update_sa(&key, |c| c.cipher_key_len = len).unwrap();
        assert_eq!(reader.read_sa(slot).unwrap().0.cipher_key_len, len);
    }

    w.del_sa(&key).unwrap();
    assert_eq!(reader.lookup_inbound(0xabcd, None), None);
    assert_eq!(w.del_sa(&key), Err(SadbError::NotFound { key }));
    assert!(!reader.is_live(slot));
    assert!(reader.read_sa(slot).is_none());
    assert_eq!(r.sa_count(), 1);
    assert_eq!(w.flush_sas(), 1);
    assert_eq!(r.sa_count(), 0);
}

#[test]
fn invalid_records_are_refused_with_the_field() {
    let (_d, r) = region(&small_caps());
    let mut w = r.writer().unwrap();
    type Mutation = Box<dyn Fn(&mut SaConfig)>;
    let cases: Vec<(&str, Mutation)> = vec![
        ("direction", Box::new(|c| c.direction = 9)),
        ("mode", Box::new(|c| c.mode = 0)),
        ("family", Box::new(|c| c.family = 5)),
        ("flags", Box::new(|c| c.flags = 0x80)),
        ("cipher", Box::new(|c| c.cipher = 42)),
        ("cipher_key_len", Box::new(|c| c.cipher_key_len = 20)),
        (
            "integ",
            Box::new(|c| {
                c.integ = Integ::HmacSha1_96 as u8;
                c.integ_key_len = 20;
            }),
        ),
        ("integ_key_len", Box::new(|c| c.integ_key_len = 20)),
        ("replay_window", Box::new(|c| c.replay_window = 0)),
        ("replay_window", Box::new(|c| c.replay_window = 4096)),
        ("encap_port", Box::new(|c| c.flags = SA_FLAG_UDP_ENCAP)),
        (
            "ts_local",
            Box::new(|c| {
                c.ts_local.family = 4;
                c.ts_local.port_start = 9;
                c.ts_local.port_end = 1;
            }),
        ),
        (
            "soft_bytes",
            Box::new(|c| {
                c.soft_bytes = 10;
                c.hard_bytes = 5;
            }),
        ),
    ];
    for (field, f) in cases {
        let mut c = gcm_sa(1, Direction::In, 0);
        f(&mut c);
        match w.add_sa(&c) {
            Err(SadbError::Invalid { field: got, reason }) => assert_eq!(got, field, "{reason}"),
            other => panic!("{field}: expected a refusal, got {other:?}"),
        }
    }
    // NULL encryption with an HMAC, and no replay when said so, are fine.
    let mut c = gcm_sa(2, Direction::In, 0);
    c.cipher = Cipher::Null as u8;
    c.cipher_key_len = 0;
    c.integ = Integ::HmacSha256_128 as u8;
    c.integ_key_len = 32;
    c.flags = SA_FLAG_NO_REPLAY;
    c.replay_window = 0;
    w.add_sa(&c).unwrap();
    assert_eq!(r.sa_count(), 1);
}

/// When the SA bound to a policy goes, the policy moves to the live outbound SA of its
/// reqid installed last, even when every SA carries the same `added_unix` (one second) and
/// the newest sits in a lower, reused slot (the old rule, latest second then highest slot,
/// picked the superseded SA here: traffic stayed on a pair about to be deleted).
#[test]
fn rebinding_follows_install_order_not_slot_or_second() {
    let (_d, r) = region(&small_caps());
    let reader = r.register_reader(0).unwrap();
    let mut w = r.writer().unwrap();
    w.add_policy(&policy(
        1,
        Direction::Out,
        Action::Protect,
        (v4([198, 18, 1, 0]), 24),
        (v4([198, 19, 1, 0]), 24),
    ))
    .unwrap();
    let bound = || {
        reader
            .lookup_policy(Direction::Out, &flow([198, 18, 1, 5], [198, 19, 1, 9], 17, 1, 2))
            .and_then(|m| m.sa_slot)
    };
    let out = |spi: u32, generation: u8| {
        let mut c = gcm_sa(spi, Direction::Out, generation);
        c.added_unix = 1_000;
        c
    };
    let key = |spi: u32| SaKey { spi, direction: Direction::Out, dst: None };
    let a = w.add_sa(&out(0x100, 1)).unwrap();
    let b = w.add_sa(&out(0x200, 2)).unwrap();
    // a's slot is freed and reused by a newer SA: the newest now sits below the older b.
    w.del_sa(&key(0x100)).unwrap();
    reader.quiescent();
    assert_eq!(w.reclaim(), 1);
    let c = w.add_sa(&out(0x300, 3)).unwrap();
    assert_eq!(c, a, "the test needs the reused slot");
    assert!(c < b, "the newest SA sits in the lower slot");
    assert_eq!(bound(), Some(c), "a new SA takes the policy");
    let d = w.add_sa(&out(0x400, 4)).unwrap();
    assert_eq!(bound(), Some(d));
    // d goes (a duplicate from simultaneous rekeys, say): c, installed after b, takes over.
    w.del_sa(&key(0x400)).unwrap();
    assert_eq!(bound(), Some(c), "fell back to the superseded SA in the higher slot");
    w.del_sa(&key(0x300)).unwrap();
    assert_eq!(bound(), Some(b));
    w.del_sa(&key(0x200)).unwrap();
    assert_eq!(bound(), None);
}

#[test]
fn full_table_and_reclaim_after_quiescence() {
    let caps = Capacities { sas: 4, ..small_caps() };
    let (_d, r) = region(&caps);
    let reader = r.register_reader(3).unwrap();
    let mut w = r.writer().unwrap();
    let slots: Vec<u32> = (0..4).map(|i| w.add_sa(&gcm_sa(100 + i, Direction::In, 0)).unwrap()).collect();
    assert_eq!(w.add_sa(&gcm_sa(200, Direction::In, 0)), Err(SadbError::Full { what: "SA table" }));

    // The reader has not passed a quiescent point since the delete: the slot waits.
    w.del_sa(&SaKey { spi: 100, direction: Direction::In, dst: None }).unwrap();
    assert_eq!(w.retired_pending(), 1);
    assert_eq!(w.add_sa(&gcm_sa(200, Direction::In, 0)), Err(SadbError::Full { what: "SA table" }));
    reader.quiescent();
    let again = w.add_sa(&gcm_sa(200, Direction::In, 0)).unwrap();
    assert_eq!(again, slots[0], "the retired slot is reused once the reader moved on");
    assert_eq!(w.retired_pending(), 0);

    // An offline reader does not hold reclamation back.
    w.del_sa(&SaKey { spi: 101, direction: Direction::In, dst: None }).unwrap();
    reader.offline();
    assert_eq!(w.reclaim(), 1);
    reader.online();
    drop(w);

    // Nor does a dropped one; nor does a long grace period with none.
    drop(reader);
    let w = r.writer().unwrap();
    w.synchronize(std::time::Duration::from_millis(10)).unwrap();
}

#[test]
fn stuck_reader_is_reported() {
    let (_d, r) = region(&small_caps());
    let reader = r.register_reader(9).unwrap();
    let w = r.writer().unwrap();
    let e = w.synchronize(std::time::Duration::from_millis(20)).unwrap_err();
    assert_eq!(e, SadbError::GraceTimeout { pid: std::process::id(), lcore: 9 });
    drop(reader);
}

#[test]
fn sequence_numbers() {
    let (_d, r) = region(&small_caps());
    let reader = r.register_reader(0).unwrap();
    let slot = r.writer().unwrap().add_sa(&gcm_sa(5, Direction::Out, 0)).unwrap();
    assert_eq!(reader.reserve_seq(slot, 1, false), Ok(1), "the first packet carries 1 (RFC 4303 §3.3.3)");
    assert_eq!(reader.reserve_seq(slot, 32, false), Ok(2));
    assert_eq!(reader.reserve_seq(slot, 1, false), Ok(34));
    // Near the top of the 32-bit space.
    reader.hot(slot).seq.store(u64::from(u32::MAX) - 3, std::sync::atomic::Ordering::Relaxed);
    assert_eq!(reader.reserve_seq(slot, 2, false), Ok(u64::from(u32::MAX) - 2));
    assert_eq!(reader.reserve_seq(slot, 2, false), Err(SeqError::Overflow), "would reach past 2^32 - 1");
    assert_eq!(reader.reserve_seq(slot, 1, false), Ok(u64::from(u32::MAX)));
    assert_eq!(reader.reserve_seq(slot, 1, false), Err(SeqError::Overflow), "never wraps");
    assert_eq!(
        reader.hot(slot).seq.load(std::sync::atomic::Ordering::Relaxed),
        u64::from(u32::MAX),
        "no run-away"
    );
    // With ESN the count goes on past 2^32.
    assert_eq!(reader.reserve_seq(slot, 1, true), Ok(1 << 32));

    // Unique across threads.
    let slot2 = r.writer().unwrap().add_sa(&gcm_sa(6, Direction::Out, 0)).unwrap();
    let got: Vec<u64> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..4)
            .map(|i| {
                let r = r.clone();
                s.spawn(move || {
                    let rd = r.register_reader(10 + i).unwrap();
                    (0..1000).map(|_| rd.reserve_seq(slot2, 4, false).unwrap()).collect::<Vec<_>>()
                })
            })
            .collect();
        hs.into_iter().flat_map(|h| h.join().unwrap()).collect()
    });
    let mut all: Vec<u64> = got.iter().flat_map(|&f| f..f + 4).collect();
    all.sort_unstable();
    assert_eq!(all, (1..=16_000).collect::<Vec<u64>>(), "every number handed out exactly once");
}

#[test]
fn preset_sequence_numbers() {
    let (_d, r) = region(&small_caps());
    let reader = r.register_reader(0).unwrap();
    let mut w = r.writer().unwrap();
    let slot = w.add_sa_with_seq(&gcm_sa(5, Direction::Out, 0), 1_000_000).unwrap();
    assert_eq!(r.sa_entry(slot).unwrap().stats.seq, 1_000_000);
    assert_eq!(reader.reserve_seq(slot, 1, false), Ok(1_000_001), "continues after the preset number");
    // Past 2^32 - 1 only with ESN.
    let refused = w.add_sa_with_seq(&gcm_sa(6, Direction::Out, 0), 1 << 32);
    assert!(matches!(refused, Err(SadbError::Invalid { field: "seq", .. })), "{refused:?}");
    assert!(
        r.find_sa(&SaKey { spi: 6, direction: Direction::Out, dst: None }).is_none(),
        "nothing installed"
    );
    let mut esn = gcm_sa(6, Direction::Out, 0);
    esn.flags |= SA_FLAG_ESN;
    let slot = w.add_sa_with_seq(&esn, 1 << 32).unwrap();
    assert_eq!(reader.reserve_seq(slot, 1, true), Ok((1 << 32) + 1));
    let slot = w.add_sa(&gcm_sa(7, Direction::Out, 0)).unwrap();
    assert_eq!(r.sa_entry(slot).unwrap().stats.seq, 0, "a plain add starts at 0");
}

#[test]
fn reader_records_outlive_their_reader() {
    let (_d, r) = region(&small_caps());
    assert!(r.reader_records().is_empty(), "no slot held yet");
    let reader = r.register_reader(6).unwrap();
    reader.count(3, 9);
    let live = r.reader_records();
    assert_eq!(live.len(), 1);
    assert_eq!((live[0].registered, live[0].alive, live[0].info.counters[3]), (true, true, 9));
    drop(reader);
    assert!(r.readers().is_empty());
    let left = r.reader_records();
    assert_eq!(left.len(), 1);
    assert_eq!(
        (left[0].registered, left[0].info.lcore, left[0].info.pid, left[0].info.counters[3]),
        (false, 6, std::process::id(), 9),
        "the counters stay as last written"
    );
    // A new reader in the slot starts from zero.
    let again = r.register_reader(1).unwrap();
    assert_eq!(r.reader_records()[0].info.counters[3], 0);
    drop(again);
}

#[test]
fn events_in_order_and_overflow_counted() {
    let (_d, r) = region(&small_caps());
    let reader = r.register_reader(2).unwrap();
    let ev = |i: u32| Event {
        kind: EventKind::SoftExpire as u8,
        spi: i,
        value: u64::from(i) * 10,
        ..bytemuck::Zeroable::zeroed()
    };
    for i in 0..20 {
        let queued = reader.emit(&ev(i));
        assert_eq!(queued, i < 16, "ring of 16");
    }
    let mut w = r.writer().unwrap();
    assert_eq!(w.events_dropped(), 4);
    let mut got = Vec::new();
    assert_eq!(w.drain_events(|rd, e| got.push((rd, e))), 16);
    assert_eq!(got.iter().map(|(_, e)| e.spi).collect::<Vec<_>>(), (0..16).collect::<Vec<_>>());
    assert!(got.iter().all(|(rd, e)| *rd == reader.index() && e.value == u64::from(e.spi) * 10));
    assert!(reader.emit(&ev(99)), "room again after draining");
    assert_eq!(w.drain_events(|_, _| {}), 1);
    assert_eq!(r.readers()[0].events_dropped, 4);
}

#[test]
fn reader_counters_and_listing() {
    let (_d, r) = region(&small_caps());
    let reader = r.register_reader(4).unwrap();
    reader.count(3, 5);
    reader.count(3, 2);
    reader.count(9999, 1); // out of range: ignored
    reader.quiescent();
    let info = r.readers();
    assert_eq!(info.len(), 1);
    assert_eq!(
        (info[0].lcore, info[0].pid, info[0].counters[3], info[0].passes),
        (4, std::process::id(), 7, 1)
    );
    let slot = r.writer().unwrap().add_sa(&gcm_sa(77, Direction::In, 0)).unwrap();
    reader.count_sa(slot, 3, 300);
    reader.count_sa_drop(slot, 2);
    reader.count_sa_drop(slot, 200);
    let e = r.sa_entry(slot).unwrap();
    assert_eq!((e.stats.packets, e.stats.bytes, e.stats.drops[2]), (3, 300, 1));
    // Reader slots run out.
    let caps = Capacities { readers: 2, ..small_caps() };
    let (_d2, r2) = region(&caps);
    let a = r2.register_reader(0).unwrap();
    let _b = r2.register_reader(1).unwrap();
    assert!(matches!(r2.register_reader(2), Err(SadbError::Full { what: "reader table" })));
    drop(a);
    r2.register_reader(2).unwrap();
}

#[test]
fn spi_and_destination_index() {
    let caps = Capacities { spi_dst_index: true, ..small_caps() };
    let (_d, r) = region(&caps);
    let reader = r.register_reader(0).unwrap();
    let mut w = r.writer().unwrap();
    let mut a = gcm_sa(0x42, Direction::In, 1);
    a.dst = v4([198, 18, 5, 1]);
    let mut b = gcm_sa(0x42, Direction::In, 2);
    b.dst = v4([198, 18, 5, 2]);
    let sa = w.add_sa(&a).unwrap();
    let sb = w.add_sa(&b).unwrap();
    assert_eq!(reader.lookup_inbound(0x42, Some(&a.dst)), Some(sa));
    assert_eq!(reader.lookup_inbound(0x42, Some(&b.dst)), Some(sb));
    assert_eq!(reader.lookup_inbound(0x42, Some(&v4([198, 18, 5, 3]))), None);
    assert!(w.add_sa(&a).is_err());
    w.del_sa(&SaKey { spi: 0x42, direction: Direction::In, dst: Some(b.dst) }).unwrap();
    assert_eq!(reader.lookup_inbound(0x42, Some(&a.dst)), Some(sa));
    assert_eq!(reader.lookup_inbound(0x42, Some(&b.dst)), None);
}

#[test]
fn churn_rebuilds_the_index_and_keeps_every_sa_findable() {
    let caps = Capacities { sas: 512, ..small_caps() };
    let (_d, r) = region(&caps);
    let reader = r.register_reader(0).unwrap();
    let mut w = r.writer().unwrap();
    let mut live: Vec<u32> = Vec::new();
    let mut next = 1u32;
    let mut x = 0x2545_f491_4f6c_dd1du64;
    for round in 0..20_000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        if live.len() < 400 && (!x.is_multiple_of(3) || live.is_empty()) {
            let spi = next.wrapping_mul(0x9e37_79b9);
            next += 1;
            w.add_sa(&gcm_sa(spi, Direction::In, 0)).unwrap();
            live.push(spi);
        } else {
            let spi = live.swap_remove((x as usize / 3) % live.len());
            w.del_sa(&SaKey { spi, direction: Direction::In, dst: None }).unwrap();
        }
        reader.quiescent();
        if round % 997 == 0 {
            for &spi in &live {
                assert!(reader.lookup_inbound(spi, None).is_some(), "SPI {spi:#x} lost at round {round}");
            }
        }
    }
    for &spi in &live {
        let slot = reader.lookup_inbound(spi, None).unwrap();
        assert_eq!(reader.read_sa(slot).unwrap().0.spi, spi);
    }
    assert_eq!(r.sa_count() as usize, live.len());
}

fn flow(src: [u8; 4], dst: [u8; 4], proto: u8, sport: u16, dport: u16) -> Flow {
    Flow { family: 4, src: v4(src), dst: v4(dst), proto, sport, dport }
}

#[test]
fn policies_match_by_priority_and_bind_outbound_sas() {
    let (_d, r) = region(&small_caps());
    let reader = r.register_reader(0).unwrap();
    let mut w = r.writer().unwrap();
    let net_a = (v4([198, 18, 1, 0]), 24);
    let net_b = (v4([198, 19, 1, 0]), 24);
    let any = (v4([0, 0, 0, 0]), 0);
    let mut protect = policy(1, Direction::Out, Action::Protect, net_a, net_b);
    protect.priority = 10;
    let mut ssh_bypass = policy(2, Direction::Out, Action::Bypass, net_a, net_b);
    ssh_bypass.priority = 5;
    ssh_bypass.proto = 6;
    ssh_bypass.dport = [22, 22];
    let mut drop_all = policy(3, Direction::Out, Action::Discard, any, any);
    drop_all.priority = 1000;
    w.add_policies(&[protect, ssh_bypass, drop_all]).unwrap();
    assert_eq!(w.add_policy(&protect), Err(SadbError::DuplicatePolicy { id: 1 }));

    let m =
        reader.lookup_policy(Direction::Out, &flow([198, 18, 1, 5], [198, 19, 1, 9], 17, 1000, 53)).unwrap();
    assert_eq!((m.id, m.action, m.reqid, m.sa_slot), (1, Action::Protect, 7, None), "no SA yet: acquire");
    let m =
        reader.lookup_policy(Direction::Out, &flow([198, 18, 1, 5], [198, 19, 1, 9], 6, 40000, 22)).unwrap();
    assert_eq!(m.action, Action::Bypass, "the higher-priority port rule wins");
    let m =
        reader.lookup_policy(Direction::Out, &flow([198, 18, 1, 5], [198, 19, 1, 9], 6, 40000, 23)).unwrap();
    assert_eq!(m.id, 1);
    let m = reader.lookup_policy(Direction::Out, &flow([10, 0, 0, 1], [198, 19, 1, 9], 6, 1, 2)).unwrap();
    assert_eq!(m.action, Action::Discard, "other sources fall to the catch-all");
    assert!(reader.lookup_policy(Direction::In, &flow([198, 19, 1, 9], [198, 18, 1, 5], 17, 1, 2)).is_none());
    assert!(reader.lookup_policy(Direction::Out, &Flow { family: 6, ..Flow::default() }).is_none());

    // Installing the outbound SA of reqid 7 binds it; a newer one takes over (rekey).
    let mut old = gcm_sa(0x100, Direction::Out, 1);
    old.added_unix = 1000;
    let s_old = w.add_sa(&old).unwrap();
    assert_eq!(
        reader
            .lookup_policy(Direction::Out, &flow([198, 18, 1, 5], [198, 19, 1, 9], 17, 1, 2))
            .unwrap()
            .sa_slot,
        Some(s_old)
    );
    let mut new = gcm_sa(0x200, Direction::Out, 2);
    new.added_unix = 2000;
    let s_new = w.add_sa(&new).unwrap();
    assert_eq!(
        reader
            .lookup_policy(Direction::Out, &flow([198, 18, 1, 5], [198, 19, 1, 9], 17, 1, 2))
            .unwrap()
            .sa_slot,
        Some(s_new)
    );
    // Deleting the new one falls back to the old; deleting both leaves none.
    w.del_sa(&SaKey { spi: 0x200, direction: Direction::Out, dst: None }).unwrap();
    assert_eq!(
        reader
            .lookup_policy(Direction::Out, &flow([198, 18, 1, 5], [198, 19, 1, 9], 17, 1, 2))
            .unwrap()
            .sa_slot,
        Some(s_old)
    );
    w.del_sa(&SaKey { spi: 0x100, direction: Direction::Out, dst: None }).unwrap();
    assert_eq!(
        reader
            .lookup_policy(Direction::Out, &flow([198, 18, 1, 5], [198, 19, 1, 9], 17, 1, 2))
            .unwrap()
            .sa_slot,
        None
    );
    // A policy added after its SA finds it.
    let s3 = w.add_sa(&gcm_sa(0x300, Direction::Out, 3)).unwrap();
    reader.quiescent();
    w.del_policy(1).unwrap();
    reader.quiescent();
    assert_eq!(w.del_policy(1), Err(SadbError::NoPolicy { id: 1 }));
    reader.quiescent();
    w.add_policy(&protect).unwrap();
    reader.quiescent();
    assert_eq!(
        reader
            .lookup_policy(Direction::Out, &flow([198, 18, 1, 5], [198, 19, 1, 9], 17, 1, 2))
            .unwrap()
            .sa_slot,
        Some(s3)
    );
    assert_eq!(r.list_policies().len(), 3);
    assert_eq!(w.flush_policies().unwrap(), 3);
    reader.quiescent();
    assert!(reader
        .lookup_policy(Direction::Out, &flow([198, 18, 1, 5], [198, 19, 1, 9], 17, 1, 2))
        .is_none());

    // Validation and capacity.
    let mut bad = protect;
    bad.dst_plen = 33;
    assert!(matches!(w.add_policy(&bad), Err(SadbError::Invalid { field: "prefix", .. })));
    bad = protect;
    bad.reqid = 0;
    assert!(matches!(w.add_policy(&bad), Err(SadbError::Invalid { field: "reqid", .. })));
    reader.quiescent();
    let many: Vec<PolicyConfig> =
        (0..257).map(|i| policy(1000 + i, Direction::In, Action::Bypass, any, any)).collect();
    assert_eq!(w.add_policies(&many), Err(SadbError::Full { what: "policy table" }));
    assert_eq!(r.list_policies().len(), 0, "a refused batch leaves nothing behind");
}

/// The classifier against a straightforward scan, on random policy sets.
#[test]
fn classifier_agrees_with_a_linear_scan() {
    // Random sets nest far more than real ones; the room once needed for the interval
    // classifier's nesting is kept, so the sets are the same as they were.
    let caps = Capacities { policies: 4096, ..small_caps() };
    let (_d, r) = region(&caps);
    let reader = r.register_reader(0).unwrap();
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let mut rnd = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for round in 0..6 {
        let mut w = r.writer().unwrap();
        reader.quiescent();
        w.flush_policies().unwrap();
        reader.quiescent();
        let fam = if round % 2 == 0 { 4 } else { 6 };
        let mut ps = Vec::new();
        for id in 0..300u32 {
            let v = rnd();
            let addr = |v: u64| {
                if fam == 4 {
                    v4([198, 18 + (v & 1) as u8, (v >> 8) as u8 & 7, (v >> 16) as u8])
                } else {
                    v6(0x2001_0db8, (v as u32) & 0x0007_ffff)
                }
            };
            let maxlen = if fam == 4 { 32 } else { 128 };
            // Mostly specific destinations, with the odd wide or catch-all one, as real
            // policy sets are.
            let dplen = [0u8, 8, 15, 16, 20, 24, 24, 24, 28, 28, 28, 32, 32, maxlen, maxlen, maxlen]
                [(v >> 20) as usize % 16]
                .min(maxlen);
            let splen = [0u8, 16, 24, maxlen][(v >> 24) as usize % 4];
            let mut p = policy(
                id,
                if v >> 30 & 1 == 0 { Direction::Out } else { Direction::In },
                [Action::Bypass, Action::Discard, Action::Protect][(v >> 32) as usize % 3],
                (addr(rnd()), splen),
                (addr(rnd()), if fam == 6 && dplen == 8 { 112 } else { dplen }),
            );
            p.family = fam;
            p.priority = (v >> 40) as u32 % 50;
            p.proto = [0, 6, 17][(v >> 48) as usize % 3];
            if v >> 52 & 1 == 1 {
                let a = (v >> 53) as u16 % 2000;
                p.dport = [a, a + (v >> 8) as u16 % 100];
            }
            ps.push(p);
        }
        w.add_policies(&ps).unwrap();
        reader.quiescent();
        let mut order = ps.clone();
        order.sort_by_key(|p| (p.priority, p.id));
        for _ in 0..3000 {
            let v = rnd();
            let f = Flow {
                family: fam,
                src: if fam == 4 {
                    v4([198, 18 + (v & 1) as u8, (v >> 8) as u8 & 7, (v >> 16) as u8])
                } else {
                    v6(0x2001_0db8, (v as u32) & 0x0007_ffff)
                },
                dst: if fam == 4 {
                    v4([198, 18 + (v >> 1 & 1) as u8, (v >> 24) as u8 & 7, (v >> 32) as u8])
                } else {
                    v6(0x2001_0db8, (v >> 32) as u32 & 0x0007_ffff)
                },
                proto: [6u8, 17, 1][(v >> 40) as usize % 3],
                sport: (v >> 44) as u16 % 3000,
                dport: (v >> 50) as u16 % 2100,
            };
            for dir in [Direction::Out, Direction::In] {
                let want = order.iter().find(|p| {
                    p.direction == dir as u8
                        && in_prefix(fam, &f.dst, &p.dst, p.dst_plen)
                        && in_prefix(fam, &f.src, &p.src, p.src_plen)
                        && (p.proto == 0 || p.proto == f.proto)
                        && p.sport[0] <= f.sport
                        && f.sport <= p.sport[1]
                        && p.dport[0] <= f.dport
                        && f.dport <= p.dport[1]
                });
                let got = reader.lookup_policy(dir, &f);
                assert_eq!(got.map(|m| m.id), want.map(|p| p.id), "round {round}, {dir:?} {f:?}");
            }
        }
    }
}

#[test]
fn inbound_ownership_claims() {
    // One slot, so the reinstalled SA reuses it.
    let (_d, r) = region(&Capacities { sas: 1, ..small_caps() });
    let a = r.register_reader(1).unwrap();
    let b = r.register_reader(2).unwrap();
    let slot = r.writer().unwrap().add_sa(&gcm_sa(0x77, Direction::In, 0)).unwrap();
    let (ma, mb) = (a.index() + 1, b.index() + 1);
    assert_eq!(a.claim_inbound(slot, ma), ma, "first claim wins");
    assert_eq!(b.claim_inbound(slot, mb), ma, "the second sees the owner");
    assert_eq!(a.claim_inbound(slot, ma), ma, "claiming again is idempotent");
    b.release_inbound(slot, mb); // not the owner: no effect
    assert_eq!(b.claim_inbound(slot, mb), ma);
    b.release_inbound(slot, ma); // the owner is gone
    assert_eq!(b.claim_inbound(slot, mb), mb);
    // A reinstalled SA starts unclaimed.
    let mut w = r.writer().unwrap();
    w.del_sa(&SaKey { spi: 0x77, direction: Direction::In, dst: None }).unwrap();
    a.quiescent();
    b.quiescent();
    let again = w.add_sa(&gcm_sa(0x77, Direction::In, 1)).unwrap();
    assert_eq!(again, slot);
    assert_eq!(b.claim_inbound(again, mb), mb, "a reinstalled SA starts unclaimed");
}

/// Peers choose outbound SPIs: two tunnels towards two peers may get the same one. Both SAs
/// live side by side, each bound to its own policy; deleting one leaves the other; only the
/// same SPI towards the same peer is a duplicate; a key without a destination is refused
/// while it could name either.
#[test]
fn outbound_sas_share_an_spi_towards_two_peers() {
    let (_d, r) = region(&small_caps());
    let reader = r.register_reader(0).unwrap();
    let mut w = r.writer().unwrap();
    let (peer_a, peer_b) = (v4([198, 18, 0, 10]), v4([198, 18, 0, 20]));
    let mut pa =
        policy(1, Direction::Out, Action::Protect, (v4([198, 18, 1, 0]), 24), (v4([198, 19, 1, 0]), 24));
    pa.reqid = 10;
    let mut pb =
        policy(2, Direction::Out, Action::Protect, (v4([198, 18, 1, 0]), 24), (v4([198, 19, 2, 0]), 24));
    pb.reqid = 20;
    w.add_policies(&[pa, pb]).unwrap();
    let mut a = gcm_sa(0x5150, Direction::Out, 1);
    (a.dst, a.reqid) = (peer_a, 10);
    let mut b = gcm_sa(0x5150, Direction::Out, 2);
    (b.dst, b.reqid) = (peer_b, 20);
    let sa = w.add_sa(&a).unwrap();
    let sb = w.add_sa(&b).unwrap();
    assert_ne!(sa, sb);
    let bound = |dst: [u8; 4]| {
        reader.lookup_policy(Direction::Out, &flow([198, 18, 1, 5], dst, 17, 1, 2)).unwrap().sa_slot
    };
    assert_eq!((bound([198, 19, 1, 9]), bound([198, 19, 2, 9])), (Some(sa), Some(sb)));
    let key = |dst: Option<[u8; 16]>| SaKey { spi: 0x5150, direction: Direction::Out, dst };
    assert_eq!(r.find_sa(&key(Some(peer_a))), Some(sa));
    assert_eq!(r.find_sa(&key(Some(peer_b))), Some(sb));
    assert_eq!(r.find_sa(&key(Some(v4([198, 18, 0, 30])))), None, "no SA towards a third peer");
    assert_eq!(r.find_sa(&key(None)), None, "without a destination the SPI names two SAs");
    let mut both = r.find_sas(0x5150, Direction::Out);
    both.sort_unstable();
    assert_eq!(both, {
        let mut v = vec![sa, sb];
        v.sort_unstable();
        v
    });
    assert_eq!(r.find_sas(0x5150, Direction::In), Vec::<u32>::new());

    // A second SA with the same SPI towards the same peer is a duplicate, whatever its reqid.
    let mut dup = gcm_sa(0x5150, Direction::Out, 3);
    (dup.dst, dup.reqid) = (peer_a, 30);
    assert_eq!(w.add_sa(&dup), Err(SadbError::Duplicate { key: key(Some(peer_a)) }));
    // Changes through an ambiguous key are refused and touch neither SA.
    let e = w.del_sa(&key(None)).unwrap_err();
    assert!(matches!(e, SadbError::Invalid { field: "dst", .. }), "{e}");
    let e = w.update_sa(&key(None), |c| c.soft_bytes = 1).unwrap_err();
    assert!(matches!(e, SadbError::Invalid { field: "dst", .. }), "{e}");
    // Moving A onto B's destination would make two (SPI, peer B): refused.
    assert_eq!(
        w.update_sa(&key(Some(peer_a)), |c| c.dst = peer_b),
        Err(SadbError::Duplicate { key: key(Some(peer_b)) })
    );
    assert_eq!(r.sa_entry(sa).unwrap().config.dst, peer_a, "not moved");
    assert_eq!(r.list_sas().len(), 2);

    // Deleting A leaves B, still bound; then the SPI alone names B.
    w.del_sa(&key(Some(peer_a))).unwrap();
    assert_eq!(w.del_sa(&key(Some(peer_a))), Err(SadbError::NotFound { key: key(Some(peer_a)) }));
    assert_eq!(r.find_sa(&key(Some(peer_b))), Some(sb));
    assert_eq!((bound([198, 19, 1, 9]), bound([198, 19, 2, 9])), (None, Some(sb)));
    assert_eq!(r.find_sa(&key(None)), Some(sb));
    let (cfg, _) = reader.read_sa(sb).unwrap();
    assert_eq!((cfg.dst, cfg.reqid, cfg.salt), (peer_b, 20, [2; 4]), "B's record untouched");
    // With one SA left, a move is fine (NAT rebinding).
    w.update_sa(&key(None), |c| c.dst = peer_a).unwrap();
    assert_eq!(r.find_sa(&key(Some(peer_a))), Some(sb));
    w.del_sa(&key(None)).unwrap();
    assert!(r.list_sas().is_empty());
}
