//! Round trips over every algorithm, mode, family, ESN and UDP-encap setting; tamper and
//! replay behaviour through the whole engine; proptest round trip and bit-flip rejection.

mod common;

use common::*;
use esp::sa::{EspMode, TrafficSelector};
use esp::{
    decap, decap_burst, decap_burst_multi, encap, encap_burst, encap_burst_multi, DropReason, PacketBuffer,
    VecBuffer,
};
use proptest::prelude::*;

fn inner(v6: bool, len: usize, ext: bool) -> Vec<u8> {
    let pl: Vec<u8> = (0..len).map(|i| (i * 7) as u8).collect();
    if v6 {
        ipv6_udp(&pl, ext, 2)
    } else {
        ipv4_udp(&pl, 2)
    }
}

#[test]
fn every_combination_round_trips() {
    let mut n = 0;
    for (c, i) in ALGS {
        for outer_v6 in [false, true] {
            for mode in [tunnel(outer_v6), EspMode::Transport] {
                for inner_v6 in [false, true] {
                    if mode == EspMode::Transport && inner_v6 != outer_v6 {
                        continue;
                    }
                    for esn in [false, true] {
                        for udp in [false, true] {
                            let cfg = config(c, i, mode, esn, udp);
                            let (mut o, mut inb) = pair(&cfg);
                            for len in [0usize, 1, 13, 100, 1400] {
                                let p = inner(inner_v6, len, len == 13);
                                let mut b = VecBuffer::new(&p);
                                encap(&mut o, &mut b).unwrap();
                                assert_ne!(b.data(), &p[..]);
                                let proto = if mode == EspMode::Transport {
                                    if inner_v6 && len == 13 {
                                        0
                                    } else {
                                        b.data()[if outer_v6 { 6 } else { 9 }]
                                    }
                                } else {
                                    b.data()[if outer_v6 { 6 } else { 9 }]
                                };
                                if len != 13 || !inner_v6 || mode != EspMode::Transport {
                                    assert_eq!(proto, if udp { 17 } else { 50 });
                                }
                                decap(&mut inb, &mut b).unwrap_or_else(|e| {
                                    panic!("{c:?} {i:?} {mode:?} v6in={inner_v6} esn={esn} udp={udp} len={len}: {e}")
                                });
                                assert_eq!(b.data(), &p[..], "{c:?} {i:?} {mode:?} {len}");
                                n += 1;
                            }
                        }
                    }
                }
            }
        }
    }
    assert!(n > 1000, "{n}");
}

#[test]
fn ipv6_transport_inserts_after_routing_headers() {
    let cfg = config(C::AesGcm128, I::None, EspMode::Transport, false, false);
    let (mut o, mut inb) = pair(&cfg);
    let p = ipv6_udp(b"hello", true, 0);
    let mut b = VecBuffer::new(&p);
    encap(&mut o, &mut b).unwrap();
    // fixed header -> hop-by-hop -> routing -> ESP
    assert_eq!(b.data()[6], 0);
    assert_eq!(&b.data()[40..48], &p[40..48]);
    assert_eq!(b.data()[48], 50);
    assert_eq!(&b.data()[56..60], &0x1234_5678u32.to_be_bytes());
    decap(&mut inb, &mut b).unwrap();
    assert_eq!(b.data(), &p[..]);
}

use esp::crypto::{CipherAlgorithm as C, IntegrityAlgorithm as I};

#[test]
fn tamper_replay_and_bad_icv_does_not_move_window() {
    for (c, i) in ALGS {
        let cfg = config(c, i, tunnel(false), false, false);
        let (mut o, mut inb) = pair(&cfg);
        let p = inner(false, 64, false);
        let mut pkts = Vec::new();
        for _ in 0..3 {
            let mut b = VecBuffer::new(&p);
            encap(&mut o, &mut b).unwrap();
            pkts.push(b);
        }
        // Packet 3 with a flipped ICV bit: Auth, and the window does not move.
        let mut bad = pkts[2].clone();
        let l = bad.data_len();
        bad.data_mut()[l - 1] ^= 1;
        assert_eq!(decap(&mut inb, &mut bad), Err(DropReason::Auth));
        assert_eq!(inb.replay_window().top(), 0);
        // The genuine packet 3 still gets through, then 1, and then replays fail.
        let mut b3 = pkts[2].clone();
        decap(&mut inb, &mut b3).unwrap();
        let mut b1 = pkts[0].clone();
        decap(&mut inb, &mut b1).unwrap();
        let mut b1 = pkts[0].clone();
        assert_eq!(decap(&mut inb, &mut b1), Err(DropReason::Replay));
        // Wrong SPI
        let mut b2 = pkts[1].clone();
        b2.data_mut()[20] ^= 0x80;
        assert_eq!(decap(&mut inb, &mut b2), Err(DropReason::SpiMismatch));
        // Truncated
        let mut b2 = pkts[1].clone();
        let l = b2.data_len();
        let off = b2.data_offset();
        b2.set_data(off, l - 1);
        assert!(decap(&mut inb, &mut b2).is_err());
    }
}

#[test]
fn sequence_overflow_is_refused_without_esn_and_wraps_with_esn() {
    let mut cfg = config(C::AesGcm128, I::None, tunnel(false), false, false);
    cfg.initial_seq = u64::from(u32::MAX) - 1;
    let (mut o, mut inb) = pair(&cfg);
    inb.replay_window_mut().set_top(u64::from(u32::MAX) - 2);
    let p = inner(false, 10, false);
    let mut b = VecBuffer::new(&p);
    encap(&mut o, &mut b).unwrap();
    decap(&mut inb, &mut b).unwrap();
    let mut b = VecBuffer::new(&p);
    assert_eq!(encap(&mut o, &mut b), Err(DropReason::SeqOverflow));
    assert_eq!(encap(&mut o, &mut VecBuffer::new(&p)), Err(DropReason::SeqOverflow));
    assert_eq!(o.last_sequence_number(), u64::from(u32::MAX));

    cfg.esn = true;
    let (mut o, mut inb) = pair(&cfg);
    inb.replay_window_mut().set_top(u64::from(u32::MAX) - 2);
    for k in 0..4u64 {
        let mut b = VecBuffer::new(&p);
        encap(&mut o, &mut b).unwrap();
        // The wire carries only the low half.
        let seq = u32::from_be_bytes(b.data()[24..28].try_into().unwrap());
        assert_eq!(u64::from(seq), (u64::from(u32::MAX) + k) & 0xffff_ffff);
        decap(&mut inb, &mut b).unwrap();
        assert_eq!(b.data(), &p[..]);
    }
    assert_eq!(inb.replay_window().top(), (1 << 32) | 2);
}

#[test]
fn selectors_are_enforced() {
    let mut cfg = config(C::AesGcm128, I::None, tunnel(false), false, false);
    let mut ts = TrafficSelector::any(false);
    ts.src = esp::sa::IpPrefix { addr: "10.0.0.0".parse().unwrap(), len: 24 };
    ts.protocol = Some(17);
    ts.dst_ports = (53, 53);
    cfg.selectors = vec![ts];
    let (mut o, mut inb) = pair(&cfg);
    let p = inner(false, 10, false);
    let mut b = VecBuffer::new(&p);
    encap(&mut o, &mut b).unwrap();
    decap(&mut inb, &mut b).unwrap();
    let mut q = p.clone();
    q[12] = 11; // source 11.0.0.1
    let c = esp::wire::checksum::checksum(&{
        let mut h = q[..20].to_vec();
        h[10] = 0;
        h[11] = 0;
        h
    });
    q[10..12].copy_from_slice(&c.to_be_bytes());
    let mut b = VecBuffer::new(&q);
    encap(&mut o, &mut b).unwrap();
    assert_eq!(decap(&mut inb, &mut b), Err(DropReason::SelectorMismatch));
    // Transport mode checks the rebuilt packet.
    let mut tcfg = config(C::AesGcm128, I::None, EspMode::Transport, false, true);
    tcfg.selectors = cfg.selectors.clone();
    let (mut to, mut ti) = pair(&tcfg);
    let mut b = VecBuffer::new(&p);
    encap(&mut to, &mut b).unwrap();
    decap(&mut ti, &mut b).unwrap();
    assert_eq!(b.data(), &p[..]);
    let mut b = VecBuffer::new(&q);
    encap(&mut to, &mut b).unwrap();
    assert_eq!(decap(&mut ti, &mut b), Err(DropReason::SelectorMismatch));
    // An IPv6 inner packet cannot match an IPv4 selector.
    let mut b = VecBuffer::new(&inner(true, 10, false));
    encap(&mut o, &mut b).unwrap();
    assert_eq!(decap(&mut inb, &mut b), Err(DropReason::SelectorMismatch));
}

#[test]
fn ecn_dscp_ttl_df_and_tfc() {
    let mut cfg = config(C::AesCbc128, I::HmacSha256_128, tunnel(false), false, false);
    cfg.outer.ttl = 17;
    cfg.outer.dscp = esp::sa::DscpMode::Set(46);
    cfg.outer.df = esp::sa::DfMode::Clear;
    cfg.tfc_pad_to = 300;
    let (mut o, mut inb) = pair(&cfg);
    let p = inner(false, 10, false); // ECT(0)
    let mut b = VecBuffer::new(&p);
    encap(&mut o, &mut b).unwrap();
    let d = b.data();
    assert_eq!(d[8], 17);
    assert_eq!(d[1], (46 << 2) | 2, "DSCP set, ECN copied");
    assert_eq!(d[6] & 0x40, 0);
    assert!(d.len() > 300, "TFC padded to 300 inner bytes: {}", d.len());
    // Congestion experienced on the outer header is carried to the inner (RFC 6040).
    let mut b2 = b.clone();
    {
        let d = b2.data_mut();
        d[1] |= 3;
        d[10] = 0;
        d[11] = 0;
        let c = esp::wire::checksum::checksum(&d[..20]);
        d[10..12].copy_from_slice(&c.to_be_bytes());
    }
    decap(&mut inb, &mut b2).unwrap();
    assert_eq!(b2.data().len(), p.len(), "TFC padding stripped");
    assert_eq!(b2.data()[1] & 3, 3);
    assert!(esp::wire::ipv4::Packet::new_checked(b2.data()).unwrap().verify_checksum());
    // Not-ECT inner with CE outer: drop.
    let p0 = ipv4_udp(&[1, 2, 3], 0);
    let mut b = VecBuffer::new(&p0);
    encap(&mut o, &mut b).unwrap();
    {
        let d = b.data_mut();
        d[1] |= 3;
        d[10] = 0;
        d[11] = 0;
        let c = esp::wire::checksum::checksum(&d[..20]);
        d[10..12].copy_from_slice(&c.to_be_bytes());
    }
    assert_eq!(decap(&mut inb, &mut b), Err(DropReason::EcnDrop));

    // Inner DSCP unchanged by default, copied from the outer header when configured.
    let mut b = VecBuffer::new(&p);
    encap(&mut o, &mut b).unwrap();
    let mut b2 = b.clone();
    decap(&mut inb, &mut b2).unwrap();
    assert_eq!(b2.data()[1] >> 2, 10);
    cfg.outer.dscp_decap_copy = true;
    let (_, mut inb2) = pair(&cfg);
    decap(&mut inb2, &mut b).unwrap();
    assert_eq!(b.data()[1] >> 2, 46);
    assert_eq!(b.data()[1] & 3, 2, "ECN untouched");
    assert!(esp::wire::ipv4::Packet::new_checked(b.data()).unwrap().verify_checksum());
    // The same for IPv6 inner packets.
    let p6 = ipv6_udp(b"x", false, 1);
    let mut b = VecBuffer::new(&p6);
    encap(&mut o, &mut b).unwrap();
    decap(&mut inb2, &mut b).unwrap();
    let ip = esp::wire::ipv6::Packet::new_checked(b.data()).unwrap();
    assert_eq!((ip.dscp(), ip.ecn(), ip.flow_label()), (46, 1, 0x12345));
}

#[test]
fn no_room_is_reported() {
    let cfg = config(C::AesGcm128, I::None, tunnel(true), false, true);
    let (mut o, _) = pair(&cfg);
    let p = inner(false, 10, false);
    let mut b = VecBuffer::with_room(&p, 10, 100);
    assert_eq!(encap(&mut o, &mut b), Err(DropReason::NoRoom));
    let mut b = VecBuffer::with_room(&p, 128, 5);
    assert_eq!(encap(&mut o, &mut b), Err(DropReason::NoRoom));
    assert_eq!(o.last_sequence_number(), 0, "no sequence number consumed");
    // Exactly the advertised room is enough, for every algorithm and mode.
    for (c, i) in ALGS {
        for mode in [tunnel(true), tunnel(false), EspMode::Transport] {
            let mut cfg = config(c, i, mode, false, true);
            cfg.tfc_pad_to = 100;
            let (mut o, mut inb) = pair(&cfg);
            for len in 0..40 {
                let p = inner(matches!(mode, EspMode::Tunnel(_)) && len % 2 == 0, len, false);
                let mut b = VecBuffer::with_room(&p, o.headroom_needed(), o.tailroom_needed());
                encap(&mut o, &mut b).unwrap();
                decap(&mut inb, &mut b).unwrap();
                assert_eq!(b.data(), &p[..]);
            }
        }
    }
}

#[test]
fn bursts_match_single_packets_and_catch_in_burst_duplicates() {
    for (c, i) in ALGS {
        let cfg = config(c, i, tunnel(false), true, false);
        let (mut o1, mut inb) = pair(&cfg);
        let (mut o2, _) = pair(&cfg);
        let pkts: Vec<Vec<u8>> = (0..40).map(|k| inner(k % 3 == 0, k * 37 % 1400, false)).collect();
        let mut burst: Vec<VecBuffer> = pkts.iter().map(|p| VecBuffer::new(p)).collect();
        let mut res = vec![Ok(()); burst.len()];
        assert_eq!(encap_burst(&mut o1, &mut burst, &mut res), 40);
        assert_eq!(o1.packets(), 40);
        assert_eq!(o1.bytes(), burst.iter().map(|b| b.data_len() as u64).sum::<u64>());
        for (p, b) in pkts.iter().zip(&burst) {
            let mut s = VecBuffer::new(p);
            encap(&mut o2, &mut s).unwrap();
            assert_eq!(s.data(), b.data(), "burst and single encap differ for {c:?}");
        }
        // Duplicate packet 5 inside the burst, and corrupt packet 7.
        burst.push(burst[5].clone());
        let l = burst[7].data_len();
        burst[7].data_mut()[l - 3] ^= 0x10;
        let mut res = vec![Ok(()); burst.len()];
        assert_eq!(decap_burst(&mut inb, &mut burst, &mut res), 39);
        assert_eq!(inb.packets(), 39);
        let inner_bytes: usize = pkts.iter().enumerate().filter(|(k, _)| *k != 7).map(|(_, p)| p.len()).sum();
        assert_eq!(inb.bytes(), inner_bytes as u64);
        assert_eq!(res[7], Err(DropReason::Auth));
        assert_eq!(res[40], Err(DropReason::Replay));
        for (k, (p, b)) in pkts.iter().zip(&burst).enumerate() {
            if k != 7 {
                assert_eq!(b.data(), &p[..]);
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn prop_round_trip(alg in 0usize..ALGS.len(), v6 in any::<bool>(), trs in any::<bool>(),
                       esn in any::<bool>(), udp in any::<bool>(),
                       payload in proptest::collection::vec(any::<u8>(), 0..1500)) {
        let (c, i) = ALGS[alg];
        let mode = if trs { EspMode::Transport } else { tunnel(!v6) };
        let cfg = config(c, i, mode, esn, udp);
        let (mut o, mut inb) = pair(&cfg);
        let p = if v6 { ipv6_udp(&payload, false, 1) } else { ipv4_udp(&payload, 1) };
        let mut b = VecBuffer::new(&p);
        encap(&mut o, &mut b).unwrap();
        decap(&mut inb, &mut b).unwrap();
        prop_assert_eq!(b.data(), &p[..]);
    }

    /// Flipping any single bit of the ESP part (SPI to ICV) makes decapsulation fail.
    #[test]
    fn prop_single_bit_flip_rejected(alg in 0usize..ALGS.len(), esn in any::<bool>(),
                                     payload in proptest::collection::vec(any::<u8>(), 0..300),
                                     bit in any::<proptest::sample::Index>()) {
        let (c, i) = ALGS[alg];
        let cfg = config(c, i, tunnel(false), esn, false);
        let (mut o, mut inb) = pair(&cfg);
        let p = ipv4_udp(&payload, 0);
        let mut b = VecBuffer::new(&p);
        encap(&mut o, &mut b).unwrap();
        let esp_bits = (b.data_len() - 20) * 8;
        let k = bit.index(esp_bits);
        b.data_mut()[20 + k / 8] ^= 1 << (k % 8);
        prop_assert!(decap(&mut inb, &mut b).is_err());
        // The window did not move.
        prop_assert_eq!(inb.replay_window().top(), 0);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Hostile input: arbitrary bytes never panic the inbound path.
    #[test]
    fn prop_decap_arbitrary_bytes(alg in 0usize..ALGS.len(), trs in any::<bool>(), udp in any::<bool>(),
                                  bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let (c, i) = ALGS[alg];
        let mode = if trs { EspMode::Transport } else { tunnel(false) };
        let (_, mut inb) = pair(&config(c, i, mode, false, udp));
        let mut b = VecBuffer::new(&bytes);
        let r = decap(&mut inb, &mut b);
        // Without the key nothing can be accepted.
        prop_assert!(r.is_err());
    }

    /// Hostile input: genuine packets with random byte overwrites, truncation or extension
    /// never panic; whatever is accepted lies inside the buffer.
    #[test]
    fn prop_decap_mutated_genuine(alg in 0usize..ALGS.len(), v6 in any::<bool>(), trs in any::<bool>(),
                                  udp in any::<bool>(), esn in any::<bool>(),
                                  edits in proptest::collection::vec((any::<proptest::sample::Index>(), any::<u8>()), 0..4),
                                  resize in -40i32..40) {
        let (c, i) = ALGS[alg];
        let mode = if trs { EspMode::Transport } else { tunnel(v6) };
        let (mut o, mut inb) = pair(&config(c, i, mode, esn, udp));
        let p = if v6 { ipv6_udp(b"fuzz", trs, 1) } else { ipv4_udp(b"fuzz", 1) };
        let mut b = VecBuffer::new(&p);
        encap(&mut o, &mut b).unwrap();
        let mut pkt = b.data().to_vec();
        for (at, v) in &edits {
            let k = at.index(pkt.len());
            pkt[k] = *v;
        }
        let n = (pkt.len() as i32 + resize).max(0) as usize;
        pkt.resize(n, 0xee);
        let mut b = VecBuffer::new(&pkt);
        if decap(&mut inb, &mut b).is_ok() {
            prop_assert!(b.data_offset() + b.data_len() <= b.storage().len());
            prop_assert!(!b.data().is_empty());
        }
    }
}

#[test]
fn multi_sa_bursts() {
    let cfgs: Vec<_> = ALGS.iter().take(4).map(|&(c, i)| config(c, i, tunnel(false), false, false)).collect();
    let (mut outs, mut inbs): (Vec<_>, Vec<_>) = cfgs.iter().map(pair).unzip();
    let pkts: Vec<Vec<u8>> = (0..50).map(|k| inner(k % 2 == 0, k * 11, false)).collect();
    // Interleaved SAs, and one packet for an SA that does not exist.
    let mut sa_of: Vec<usize> = (0..50).map(|k| (k / 3) % 4).collect();
    sa_of[17] = 9;
    let mut bufs: Vec<VecBuffer> = pkts.iter().map(|p| VecBuffer::new(p)).collect();
    let mut res = vec![Ok(()); 50];
    assert_eq!(encap_burst_multi(&mut outs, &sa_of, &mut bufs, &mut res), 49);
    assert_eq!(res[17], Err(DropReason::NoSa));
    sa_of[17] = 0;
    let mut res = vec![Ok(()); 50];
    assert_eq!(decap_burst_multi(&mut inbs, &sa_of, &mut bufs, &mut res), 49);
    assert!(res[17].is_err());
    for (k, (p, b)) in pkts.iter().zip(&bufs).enumerate() {
        if k != 17 {
            assert_eq!(b.data(), &p[..], "packet {k}");
        }
    }
    // A short sa_of: the rest has no SA.
    let mut bufs: Vec<VecBuffer> = pkts[..3].iter().map(|p| VecBuffer::new(p)).collect();
    let mut res = vec![Ok(()); 3];
    assert_eq!(encap_burst_multi(&mut outs, &[1], &mut bufs, &mut res), 1);
    assert_eq!(res[1..], [Err(DropReason::NoSa), Err(DropReason::NoSa)]);
}

#[test]
fn bursts_longer_than_max_burst_are_chunked() {
    let cfg = config(C::AesCbc256, I::HmacSha384_192, tunnel(true), true, true);
    let (mut o, mut inb) = pair(&cfg);
    let pkts: Vec<Vec<u8>> = (0..150).map(|k| inner(k % 5 == 0, k * 9 % 700, false)).collect();
    let mut bufs: Vec<VecBuffer> = pkts.iter().map(|p| VecBuffer::new(p)).collect();
    let mut res = vec![Err(DropReason::NoSa); 150];
    assert_eq!(encap_burst(&mut o, &mut bufs, &mut res), 150);
    assert!(res.iter().all(|r| r.is_ok()));
    let mut res = vec![Err(DropReason::NoSa); 150];
    assert_eq!(decap_burst(&mut inb, &mut bufs, &mut res), 150);
    for (p, b) in pkts.iter().zip(&bufs) {
        assert_eq!(b.data(), &p[..]);
    }
    // Fewer result slots than packets: only those are processed.
    let mut bufs: Vec<VecBuffer> = pkts[..5].iter().map(|p| VecBuffer::new(p)).collect();
    let mut res = vec![Ok(()); 2];
    assert_eq!(encap_burst(&mut o, &mut bufs, &mut res), 2);
    assert_eq!(bufs[2].data(), &pkts[2][..]);
}

/// Build an authentic tunnel-mode packet (outer IPv4, SA of `config(C::AesGcm128, ..)`) around
/// a hand-made plaintext `payload || pad || pad_len || next_header`, sealed by a session with
/// the SA's keys: it passes the ICV, so the engine's later checks decide.
fn handmade(seq: u32, plain: &[u8]) -> VecBuffer {
    use esp::crypto::rust::RustBackend;
    use esp::crypto::{CryptoBackend, CryptoJob, Operation};
    let cfg = config(C::AesGcm128, I::None, tunnel(false), false, false);
    let s = RustBackend.new_session(&cfg.crypto).unwrap();
    let mut esp_pkt = Vec::new();
    esp_pkt.extend_from_slice(&cfg.spi.to_be_bytes());
    esp_pkt.extend_from_slice(&seq.to_be_bytes());
    esp_pkt.extend_from_slice(&u64::from(seq).to_be_bytes());
    esp_pkt.extend_from_slice(plain);
    esp_pkt.extend_from_slice(&[0; 16]);
    let mut j = [CryptoJob::new(&mut esp_pkt, None)];
    s.process(Operation::Seal, &mut j);
    let mut wire = vec![0x45, 0, 0, 0, 0, 0, 0, 0, 64, 50, 0, 0, 192, 0, 2, 1, 192, 0, 2, 2];
    wire.extend_from_slice(&esp_pkt);
    let n = wire.len() as u16;
    wire[2..4].copy_from_slice(&n.to_be_bytes());
    let c = esp::wire::checksum::checksum(&wire[..20]);
    wire[10..12].copy_from_slice(&c.to_be_bytes());
    VecBuffer::new(&wire)
}

#[test]
fn checks_after_the_icv() {
    let cfg = config(C::AesGcm128, I::None, tunnel(false), false, false);
    let (_, mut inb) = pair(&cfg);
    let p = inner(false, 5, false); // 33 bytes: pad 1 reaches a multiple of 4 with the trailer
    let trailer = |pad: &[u8], nh: u8| {
        let mut v = p.clone();
        v.extend_from_slice(pad);
        v.push(pad.len() as u8);
        v.push(nh);
        v
    };
    // The construction is right: a correct trailer is accepted.
    let mut b = handmade(1, &trailer(&[1], 4));
    decap(&mut inb, &mut b).unwrap();
    assert_eq!(b.data(), &p[..]);
    // Padding not 1, 2, 3.
    let mut b = handmade(2, &trailer(&[1, 2, 3, 4, 6], 4));
    assert_eq!(decap(&mut inb, &mut b), Err(DropReason::BadPad));
    // Pad length beyond the payload.
    let mut v = trailer(&[1], 4);
    let l = v.len();
    v[l - 2] = 200;
    let mut b = handmade(3, &v);
    assert_eq!(decap(&mut inb, &mut b), Err(DropReason::BadLength));
    // Dummy packet (next header 59) and a next header tunnel mode does not carry.
    let mut b = handmade(4, &trailer(&[1], 59));
    assert_eq!(decap(&mut inb, &mut b), Err(DropReason::BadNextHeader));
    let mut b = handmade(5, &trailer(&[1], 17));
    assert_eq!(decap(&mut inb, &mut b), Err(DropReason::BadNextHeader));
    // Inner IPv4 with a bad checksum, with a wrong version, and longer than the payload.
    let mut q = trailer(&[1], 4);
    q[10] ^= 0xff;
    let mut b = handmade(6, &q);
    assert_eq!(decap(&mut inb, &mut b), Err(DropReason::BadInnerHeader));
    let mut b = handmade(7, &trailer(&[1], 41));
    assert_eq!(decap(&mut inb, &mut b), Err(DropReason::BadInnerHeader));
    let mut q = trailer(&[1], 4);
    q[3] += 1;
    q[11] = q[11].wrapping_sub(1); // keep the header checksum valid (low byte, no carry here)
    let mut b = handmade(8, &q);
    assert_eq!(decap(&mut inb, &mut b), Err(DropReason::BadInnerHeader));
    // Those were authentic: the window moved for each of them.
    assert_eq!(inb.replay_window().top(), 8);
    // Plaintext not 4-byte aligned is refused before the crypto.
    let mut b = handmade(9, &trailer(&[1, 2], 4)); // 33 + 2 + 2 = 37
    assert_eq!(decap(&mut inb, &mut b), Err(DropReason::BadLength));
    assert_eq!(inb.replay_window().top(), 8);
}
