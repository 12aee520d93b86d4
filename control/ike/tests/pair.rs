//! Two engines over an in-memory network with virtual time (quinn's `Pair`
//! style). Loss, duplication and delay are parameters of the network.

mod common;
use common::*;

#[test]
fn matrix_fast_groups() {
    let groups = [
        DhGroup::Modp1024,
        DhGroup::Modp2048,
        DhGroup::Ecp256,
        DhGroup::Ecp384,
        DhGroup::Ecp521,
        DhGroup::Curve25519,
    ];
    let mut i = 0;
    for g in groups {
        for mode in [Phase1Mode::Main, Phase1Mode::Aggressive] {
            for _ in 0..2 {
                run_ok(&params(i, mode, g), i as u64, clean());
                i += 1;
            }
        }
    }
}

#[test]
fn matrix_every_hash_and_cipher() {
    for (h, hash) in HASHES.iter().enumerate() {
        for (c, cipher) in CIPHERS.iter().enumerate() {
            let mut p = params(h * 3 + c, Phase1Mode::Main, DhGroup::Curve25519);
            p.ike.hash = *hash;
            p.ike.cipher = *cipher;
            run_ok(&p, (h * 3 + c) as u64, clean());
        }
    }
}

#[test]
fn matrix_every_esp_transform_mode_and_pfs() {
    let mut i = 0;
    for esp in ESPS {
        for child_mode in [ChildMode::Tunnel, ChildMode::Transport] {
            for pfs in [None, Some(DhGroup::Ecp256)] {
                for mode in [Phase1Mode::Main, Phase1Mode::Aggressive] {
                    let p = Params {
                        mode,
                        ike: IkeProposal {
                            cipher: Cipher::Aes128Cbc,
                            hash: HashAlgorithm::Sha256,
                            group: DhGroup::Ecp256,
                        },
                        esp,
                        child_mode,
                        pfs,
                    };
                    run_ok(&p, 100 + i, clean());
                    i += 1;
                }
            }
        }
    }
}

/// AES-192 ESP, as strongSwan and vendor boxes propose it (`aes192gcm16`, `aes192-sha256`):
/// negotiated with key length 192 and installed on both sides with 24-byte keys (and the
/// 4-byte GCM salt), each side's outbound key being the other's inbound one.
#[test]
fn aes192_esp_sas_are_installed_on_both_sides_with_24_byte_keys() {
    let esps = [
        EspProposal { encryption: EspEncryption::AesGcm16(192), integrity: None, esn: false },
        EspProposal {
            encryption: EspEncryption::AesCbc(192),
            integrity: Some(EspIntegrity::HmacSha256),
            esn: false,
        },
    ];
    for (k, esp) in esps.into_iter().enumerate() {
        for child_mode in [ChildMode::Tunnel, ChildMode::Transport] {
            let p = Params {
                mode: Phase1Mode::Main,
                ike: IkeProposal {
                    cipher: Cipher::Aes192Cbc,
                    hash: HashAlgorithm::Sha256,
                    group: DhGroup::Ecp256,
                },
                esp,
                child_mode,
                pfs: None,
            };
            let pair = run_ok(&p, 400 + k as u64, clean());
            let (ia, ib) = (installs(&pair.a_events), installs(&pair.b_events));
            for (side, (inb, outb)) in [("initiator", &ia[0]), ("responder", &ib[0])] {
                for d in [inb, outb] {
                    assert_eq!(d.encryption, esp.encryption, "{side}");
                    assert_eq!(d.encryption_key.len(), 24, "{side} {esp:?}");
                    assert_eq!(d.salt.len(), if k == 0 { 4 } else { 0 }, "{side} {esp:?}");
                    assert_eq!(d.integrity_key.len(), if k == 0 { 0 } else { 32 }, "{side} {esp:?}");
                }
            }
            assert_eq!(*ia[0].1.encryption_key, *ib[0].0.encryption_key);
            assert_eq!(*ia[0].1.salt, *ib[0].0.salt);
            assert_ne!(*ia[0].0.encryption_key, *ia[0].1.encryption_key);
        }
    }
}

#[test]
fn matrix_every_group_both_modes_with_pfs() {
    let mut i = 0;
    for g in DhGroup::ALL {
        for mode in [Phase1Mode::Main, Phase1Mode::Aggressive] {
            let mut p = params(i, mode, g);
            p.pfs = Some(g);
            run_ok(&p, 200 + i as u64, clean());
            i += 1;
        }
    }
}

/// The full product for the fastest group: mode x cipher x hash x PFS x
/// ESP transform x encapsulation mode (576 handshakes).
#[test]
fn matrix_full_product_curve25519() {
    let mut n = 0u64;
    for mode in [Phase1Mode::Main, Phase1Mode::Aggressive] {
        for cipher in CIPHERS {
            for hash in HASHES {
                for pfs in [None, Some(DhGroup::Curve25519)] {
                    for esp in ESPS {
                        for child_mode in [ChildMode::Tunnel, ChildMode::Transport] {
                            let p = Params {
                                mode,
                                ike: IkeProposal { cipher, hash, group: DhGroup::Curve25519 },
                                esp,
                                child_mode,
                                pfs,
                            };
                            run_ok(&p, 1000 + n, clean());
                            n += 1;
                        }
                    }
                }
            }
        }
    }
    assert_eq!(n, 576);
}

#[test]
fn loss_at_every_step() {
    for mode in [Phase1Mode::Main, Phase1Mode::Aggressive] {
        let p = params(1, mode, DhGroup::Curve25519);
        // A clean run's packet count bounds the interesting positions.
        let n = run_ok(&p, 7, clean()).sent;
        for k in 0..n {
            run_ok(&p, 7, Box::new(move |i, _| if i == k { Fault::Drop } else { Fault::Deliver }));
        }
    }
}

#[test]
fn duplication_at_every_step() {
    for mode in [Phase1Mode::Main, Phase1Mode::Aggressive] {
        let p = params(2, mode, DhGroup::Ecp256);
        let n = run_ok(&p, 8, clean()).sent;
        for k in 0..n {
            run_ok(&p, 8, Box::new(move |i, _| if i == k { Fault::Duplicate } else { Fault::Deliver }));
        }
    }
}

#[test]
fn reordering_by_delay() {
    let p = params(4, Phase1Mode::Main, DhGroup::Ecp256);
    for k in 0..8 {
        run_ok(
            &p,
            9,
            Box::new(
                move |i, _| {
                    if i == k {
                        Fault::Delay(Duration::from_millis(700))
                    } else {
                        Fault::Deliver
                    }
                },
            ),
        );
    }
}

#[test]
fn heavy_random_loss_still_converges_or_times_out_cleanly() {
    let p = params(5, Phase1Mode::Main, DhGroup::Curve25519);
    let mut rng = ChaCha20Rng::seed_from_u64(99);
    use rand_chacha::rand_core::RngCore;
    let mut pair = pair_for(&p, 11);
    pair.fault = Box::new(move |_, _| if rng.next_u32() % 3 == 0 { Fault::Drop } else { Fault::Deliver });
    let now = pair.now;
    pair.a.handle_command(now, Command::Initiate { peer: 0 });
    pair.drive();
    let ia = installs(&pair.a_events);
    let ib = installs(&pair.b_events);
    // Whatever both installed must match.
    if let (Some(a), Some(b)) = (ia.first(), ib.first()) {
        assert_eq!(a.1, b.0);
    }
    assert!(!ia.is_empty() || !failures(&pair.a_events).is_empty());
}

#[test]
fn total_loss_times_out() {
    let p = params(0, Phase1Mode::Main, DhGroup::Ecp256);
    let mut pair = pair_for(&p, 12);
    pair.fault = Box::new(|_, _| Fault::Drop);
    let now = pair.now;
    pair.a.handle_command(now, Command::Initiate { peer: 0 });
    pair.drive();
    assert_eq!(failures(&pair.a_events), vec![Error::Timeout]);
    assert_eq!(pair.a.ike_sa_count(), 0);
    // 1 + retransmit_tries datagrams.
    assert_eq!(pair.sent, 1 + EngineConfig::default().retransmit_tries as usize);
}

#[test]
fn wrong_psk_fails_authentication() {
    for mode in [Phase1Mode::Main, Phase1Mode::Aggressive] {
        let p = params(1, mode, DhGroup::Ecp256);
        let a = engine(vec![peer(A, B, &p, b"secret")], 1, 0x1000);
        let b = engine(vec![peer(B, A, &p, b"other secret")], 2, 0x2000);
        let mut pair = Pair::new(a, b);
        let now = pair.now;
        pair.a.handle_command(now, Command::Initiate { peer: 0 });
        pair.drive();
        assert!(installs(&pair.a_events).is_empty());
        assert!(installs(&pair.b_events).is_empty());
        match mode {
            Phase1Mode::Main => {
                assert_eq!(failures(&pair.b_events), vec![Error::AuthenticationFailed]);
                assert_eq!(
                    failures(&pair.a_events),
                    vec![Error::PeerNotified(NotifyType::AUTHENTICATION_FAILED)]
                );
            }
            Phase1Mode::Aggressive => {
                // The initiator checks HASH_R first.
                assert_eq!(failures(&pair.a_events), vec![Error::AuthenticationFailed]);
                assert_eq!(
                    failures(&pair.b_events),
                    vec![Error::PeerNotified(NotifyType::AUTHENTICATION_FAILED)]
                );
            }
        }
        assert_eq!(established(&pair.a_events) + established(&pair.b_events), 0);
    }
}

#[test]
fn no_common_ike_proposal() {
    let p = params(1, Phase1Mode::Main, DhGroup::Ecp256);
    let mut q = p.clone();
    q.ike.group = DhGroup::Ecp384;
    let a = engine(vec![peer(A, B, &p, b"secret")], 1, 0x1000);
    let b = engine(vec![peer(B, A, &q, b"secret")], 2, 0x2000);
    let mut pair = Pair::new(a, b);
    let now = pair.now;
    pair.a.handle_command(now, Command::Initiate { peer: 0 });
    pair.drive();
    assert_eq!(failures(&pair.b_events), vec![Error::NoProposalChosen]);
    assert_eq!(failures(&pair.a_events), vec![Error::PeerNotified(NotifyType::NO_PROPOSAL_CHOSEN)]);
    assert_eq!(pair.b.ike_sa_count(), 0);
}

#[test]
fn no_common_esp_proposal() {
    let p = params(1, Phase1Mode::Main, DhGroup::Ecp256);
    let mut q = p.clone();
    q.esp = ESPS[5];
    let a = engine(vec![peer(A, B, &p, b"secret")], 1, 0x1000);
    let b = engine(vec![peer(B, A, &q, b"secret")], 2, 0x2000);
    let mut pair = Pair::new(a, b);
    let now = pair.now;
    pair.a.handle_command(now, Command::Initiate { peer: 0 });
    pair.drive();
    assert_eq!(established(&pair.a_events), 1);
    assert!(installs(&pair.b_events).is_empty());
    assert_eq!(failures(&pair.b_events), vec![Error::NoProposalChosen]);
    assert!(failures(&pair.a_events).contains(&Error::PeerNotified(NotifyType::NO_PROPOSAL_CHOSEN)));
}

#[test]
fn identity_mismatch() {
    for mode in [Phase1Mode::Main, Phase1Mode::Aggressive] {
        let p = params(1, mode, DhGroup::Ecp256);
        let mut pb = peer(B, A, &p, b"secret");
        pb.remote_id = Identity::UserFqdn("someone@example.net".into());
        let a = engine(vec![peer(A, B, &p, b"secret")], 1, 0x1000);
        let b = engine(vec![pb], 2, 0x2000);
        let mut pair = Pair::new(a, b);
        let now = pair.now;
        pair.a.handle_command(now, Command::Initiate { peer: 0 });
        pair.drive();
        assert_eq!(failures(&pair.b_events), vec![Error::InvalidIdentity], "{mode:?}");
        assert!(installs(&pair.a_events).is_empty());
    }
}

#[test]
fn aggressive_mode_refused_unless_enabled() {
    let p = params(1, Phase1Mode::Aggressive, DhGroup::Ecp256);
    let mut pb = peer(B, A, &p, b"secret");
    pb.accept_aggressive = false;
    let a = engine(vec![peer(A, B, &p, b"secret")], 1, 0x1000);
    let b = engine(vec![pb], 2, 0x2000);
    let mut pair = Pair::new(a, b);
    let now = pair.now;
    pair.a.handle_command(now, Command::Initiate { peer: 0 });
    pair.drive();
    assert_eq!(failures(&pair.b_events), vec![Error::PeerMisbehaved(PeerMisbehaved::AggressiveModeRefused)]);
    assert_eq!(failures(&pair.a_events), vec![Error::PeerNotified(NotifyType::NO_PROPOSAL_CHOSEN)]);
}

#[test]
fn traffic_selector_mismatch_in_quick_mode() {
    let p = params(0, Phase1Mode::Main, DhGroup::Ecp256);
    let mut pb = peer(B, A, &p, b"secret");
    pb.child.remote_ts.port = 80;
    let a = engine(vec![peer(A, B, &p, b"secret")], 1, 0x1000);
    let b = engine(vec![pb], 2, 0x2000);
    let mut pair = Pair::new(a, b);
    let now = pair.now;
    pair.a.handle_command(now, Command::Initiate { peer: 0 });
    pair.drive();
    assert_eq!(failures(&pair.b_events), vec![Error::InvalidIdentity]);
    assert!(installs(&pair.a_events).is_empty());
}

#[test]
fn initial_contact_dpd_and_delete() {
    let p = params(0, Phase1Mode::Main, DhGroup::Curve25519);
    let mut pair = run_ok(&p, 21, clean());
    assert!(pair.b_events.iter().any(|e| matches!(e, Event::InitialContact(_))));
    let ike = pair
        .a_events
        .iter()
        .find_map(|e| match e {
            Event::IkeSaEstablished { ike_sa, .. } => Some(*ike_sa),
            _ => None,
        })
        .unwrap();
    let now = pair.now;
    pair.a.handle_command(now, Command::DeadPeerDetection(ike));
    // A second probe while one is outstanding is not sent.
    pair.a.handle_command(now, Command::DeadPeerDetection(ike));
    pair.drive();
    let now = pair.now;
    pair.a.handle_command(now, Command::DeadPeerDetection(ike));
    pair.drive();
    let acks: Vec<u32> = pair
        .a_events
        .iter()
        .filter_map(|e| match e {
            Event::DeadPeerDetectionAck { sequence, .. } => Some(*sequence),
            _ => None,
        })
        .collect();
    assert_eq!(acks, vec![1, 2]);

    let (a_in, a_out) = installs(&pair.a_events)[0].clone();
    let now = pair.now;
    pair.a.handle_command(now, Command::Delete(ike));
    pair.drive();
    assert!(has_delete(&pair.a_events, a_in.spi, true));
    assert!(has_delete(&pair.b_events, a_out.spi, true));
    assert!(has_delete(&pair.b_events, a_in.spi, false));
    assert_eq!(pair.a.ike_sa_count(), 0);
    assert_eq!(pair.b.ike_sa_count(), 0);
}

#[test]
fn half_open_limit_per_peer() {
    let p = params(0, Phase1Mode::Main, DhGroup::Ecp256);
    let mut b = engine(vec![peer(B, A, &p, b"secret")], 2, 0x2000);
    let now = Instant::now();
    // Many initiators from the same address: only the limit is kept.
    for s in 0..40u64 {
        let mut a = engine(vec![peer(A, B, &p, b"secret")], 1000 + s, 0x1000);
        a.handle_command(now, Command::Initiate { peer: 0 });
        let t = a.poll_transmit().unwrap();
        b.handle_datagram(now, t.destination, t.source, &t.contents);
    }
    assert_eq!(b.ike_sa_count(), EngineConfig::default().max_half_open_per_peer);
}

#[test]
fn garbage_never_panics() {
    let p = params(0, Phase1Mode::Main, DhGroup::Ecp256);
    let mut pair = pair_for(&p, 5);
    let now = pair.now;
    pair.a.handle_command(now, Command::Initiate { peer: 0 });
    let t = pair.a.poll_transmit().unwrap();
    let mut rng = ChaCha20Rng::seed_from_u64(5);
    use rand_chacha::rand_core::RngCore;
    for _ in 0..2000 {
        let mut m = t.contents.clone();
        let i = (rng.next_u32() as usize) % m.len();
        m[i] = rng.next_u32() as u8;
        let cut = (rng.next_u32() as usize) % (m.len() + 1);
        m.truncate(cut.max(m.len() / 2));
        pair.b.handle_datagram(now, t.destination, t.source, &m);
        while pair.b.poll_transmit().is_some() {}
    }
}

fn nat_pair(p: &Params) -> Pair {
    let pa = peer(A, B, p, b"secret");
    let mut pb = peer(B, NAT_PUBLIC, p, b"secret");
    pb.remote_id = pa.local_id.clone();
    if p.child_mode == ChildMode::Transport {
        // The initiator's selectors carry its private address.
        pb.child.remote_ts = pa.child.local_ts;
    }
    let mut pair = Pair::new(engine(vec![pa], 31, 0x1000), engine(vec![pb], 32, 0x2000));
    pair.nat = true;
    pair
}

#[test]
fn nat_traversal_floats_and_encapsulates() {
    for (mode, child_mode) in [
        (Phase1Mode::Main, ChildMode::Tunnel),
        (Phase1Mode::Main, ChildMode::Transport),
        (Phase1Mode::Aggressive, ChildMode::Tunnel),
        (Phase1Mode::Aggressive, ChildMode::Transport),
    ] {
        let mut p = params(1, mode, DhGroup::Ecp256);
        p.child_mode = child_mode;
        let mut pair = nat_pair(&p);
        let now = pair.now;
        pair.a.handle_command(now, Command::Initiate { peer: 0 });
        pair.drive();
        assert_eq!(failures(&pair.a_events), vec![], "{mode:?} {child_mode:?}");
        assert_eq!(failures(&pair.b_events), vec![]);
        let (a_in, a_out) = installs(&pair.a_events)[0].clone();
        let (b_in, b_out) = installs(&pair.b_events)[0].clone();
        let udp = match child_mode {
            ChildMode::Tunnel => Encapsulation::UdpTunnel,
            ChildMode::Transport => Encapsulation::UdpTransport,
        };
        for sa in [&a_in, &a_out, &b_in, &b_out] {
            assert_eq!(sa.encapsulation, udp);
        }
        // Same SA, seen from both sides of the NAT.
        assert_eq!(a_out.spi, b_in.spi);
        assert_eq!(a_out.encryption_key, b_in.encryption_key);
        assert_eq!(a_out.integrity_key, b_in.integrity_key);
        assert_eq!(a_in.encryption_key, b_out.encryption_key);
        assert_eq!(a_out.source, SocketAddr::new(A, 4500));
        assert_eq!(a_out.destination, SocketAddr::new(B, 4500));
        assert_eq!(b_in.source, SocketAddr::new(NAT_PUBLIC, 4500 + NAT_PORT_OFFSET));
        assert_eq!(b_in.destination, SocketAddr::new(B, 4500));
        let oa = (child_mode == ChildMode::Transport)
            .then_some(NatOriginalAddresses { initiator: A, responder: B });
        assert_eq!(a_out.nat_original, oa);
        assert_eq!(b_in.nat_original, oa);
        // Only the side behind the NAT sends keepalives.
        assert!(pair.keepalives >= 10, "{} keepalives", pair.keepalives);
    }
}

#[test]
fn no_nat_means_no_float() {
    let p = params(1, Phase1Mode::Main, DhGroup::Ecp256);
    let pair = run_ok(&p, 41, clean());
    let (_, a_out) = installs(&pair.a_events)[0].clone();
    assert_eq!(a_out.destination, SocketAddr::new(B, 500));
    assert_eq!(pair.keepalives, 0);
}

#[test]
fn nat_with_loss_at_every_step() {
    let p = params(3, Phase1Mode::Main, DhGroup::Curve25519);
    for k in 0..12 {
        let mut pair = nat_pair(&p);
        pair.fault = Box::new(move |i, _| if i == k { Fault::Drop } else { Fault::Deliver });
        let now = pair.now;
        pair.a.handle_command(now, Command::Initiate { peer: 0 });
        pair.drive();
        assert_eq!(failures(&pair.a_events), vec![], "drop #{k}");
        assert_eq!(installs(&pair.a_events)[0].1.spi, installs(&pair.b_events)[0].0.spi);
    }
}

/// RFC 3947 §5: the NAT in front of A restarts its mapping (new public port).
/// A replayed message from the new port moves nothing; A's next authenticated
/// message (a DPD probe) moves B's IKE SA, and B reports the outbound ESP SA
/// to move with it; the answer reaches A through the new mapping.
#[test]
fn a_nat_rebinding_moves_the_peer_of_the_ike_sa_and_its_esp_sas() {
    let p = params(1, Phase1Mode::Main, DhGroup::Ecp256);
    let mut pair = nat_pair(&p);
    let sent = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
    let log = sent.clone();
    pair.fault = Box::new(move |_, t| {
        log.borrow_mut().push(t.clone());
        Fault::Deliver
    });
    let now = pair.now;
    pair.a.handle_command(now, Command::Initiate { peer: 0 });
    pair.drive();
    assert_eq!(failures(&pair.a_events), vec![]);
    let (_, b_out) = installs(&pair.b_events)[0].clone();
    let old = SocketAddr::new(NAT_PUBLIC, 4500 + NAT_PORT_OFFSET);
    assert_eq!(b_out.destination, old);
    let moved = |events: &[Event]| -> Vec<(SocketAddr, Vec<u32>)> {
        events
            .iter()
            .filter_map(|e| match e {
                Event::PeerMoved { remote, outbound_spis, .. } => Some((*remote, outbound_spis.clone())),
                _ => None,
            })
            .collect()
    };
    let b_remote = |pair: &Pair| pair.b.ike_sas().first().map(|s| s.remote);

    // The mapping restarts on another port.
    pair.nat_offset = NAT_PORT_OFFSET + 1_000;
    let new = SocketAddr::new(NAT_PUBLIC, 4500 + NAT_PORT_OFFSET + 1_000);
    // A copy of A's last message (Quick Mode HASH(3)) replayed from the new
    // port: not authenticated now, so B stays where it was.
    let last_of_a = sent.borrow().iter().rev().find(|t| t.source.ip() == NAT_PUBLIC).cloned().unwrap();
    let now = pair.now;
    pair.b.handle_datagram(now, last_of_a.destination, new, &last_of_a.contents);
    pair.collect();
    assert_eq!(b_remote(&pair), Some(old));
    assert_eq!(moved(&pair.b_events), vec![]);
    assert_eq!(pair.b.stats().peer_moved, 0);

    // A's DPD probe through the new mapping: B follows, with the ESP SA.
    let id = established_id(&pair.a_events);
    pair.a.handle_command(now, Command::DeadPeerDetection(id));
    pair.drive();
    assert_eq!(moved(&pair.b_events), vec![(new, vec![b_out.spi])]);
    assert_eq!(b_remote(&pair), Some(new));
    assert_eq!(pair.b.stats().peer_moved, 1);
    assert!(
        pair.a_events.iter().any(|e| matches!(e, Event::DeadPeerDetectionAck { .. })),
        "B's answer went to the new port"
    );
    // A itself did not move (its side of the NAT did not change).
    assert_eq!(moved(&pair.a_events), vec![]);
}

#[test]
fn responder_lifetime_is_adopted() {
    let p = params(0, Phase1Mode::Main, DhGroup::Ecp256);
    let mut pb = peer(B, A, &p, b"secret");
    pb.child.lifetime_seconds = 1200;
    pb.child.lifetime_kilobytes = 100_000;
    let mut pair = Pair::new(engine(vec![peer(A, B, &p, b"secret")], 1, 0x1000), engine(vec![pb], 2, 0x2000));
    let now = pair.now;
    pair.a.handle_command(now, Command::Initiate { peer: 0 });
    pair.drive();
    let (a_in, a_out) = installs(&pair.a_events)[0].clone();
    let (b_in, b_out) = installs(&pair.b_events)[0].clone();
    let want = Lifetime { seconds: 1200, kilobytes: 100_000 };
    for sa in [&a_in, &a_out, &b_in, &b_out] {
        assert_eq!(sa.lifetime, want);
    }
    assert_eq!(a_out, b_in);
}

#[test]
fn dpd_declares_a_silent_peer_dead() {
    let p = params(0, Phase1Mode::Main, DhGroup::Curve25519);
    let mut pair = run_ok(&p, 51, clean());
    let ike = established_id(&pair.a_events);
    let (a_in, a_out) = installs(&pair.a_events)[0].clone();
    pair.fault = Box::new(|_, _| Fault::Drop);
    let sent_before = pair.sent;
    let now = pair.now;
    pair.a.handle_command(now, Command::DeadPeerDetection(ike));
    pair.drive();
    assert_eq!(pair.sent - sent_before, 1 + EngineConfig::default().retransmit_tries as usize);
    assert_eq!(failures(&pair.a_events), vec![Error::Timeout]);
    assert!(pair.a_events.contains(&Event::IkeSaDeleted(ike)));
    assert!(has_delete(&pair.a_events, a_in.spi, true));
    assert!(has_delete(&pair.a_events, a_out.spi, false));
    assert_eq!(pair.a.ike_sa_count(), 0);
}

#[test]
fn quick_mode_timeout_keeps_the_ike_sa() {
    let p = params(0, Phase1Mode::Main, DhGroup::Curve25519);
    let mut pair = pair_for(&p, 52);
    // Main Mode's six messages pass, everything after is lost.
    pair.fault = Box::new(|i, _| if i < 6 { Fault::Deliver } else { Fault::Drop });
    let now = pair.now;
    pair.a.handle_command(now, Command::Initiate { peer: 0 });
    pair.drive();
    assert_eq!(established(&pair.a_events), 1);
    assert_eq!(failures(&pair.a_events), vec![Error::Timeout]);
    assert!(installs(&pair.a_events).is_empty());
    assert_eq!(pair.a.ike_sa_count(), 1);
    assert_eq!(pair.b.ike_sa_count(), 1);
}

#[test]
fn ike_sa_lifetime_expires() {
    let p = params(0, Phase1Mode::Main, DhGroup::Curve25519);
    let mut pa = peer(A, B, &p, b"secret");
    let mut pb = peer(B, A, &p, b"secret");
    pa.ike_lifetime = Duration::from_secs(60);
    pb.ike_lifetime = Duration::from_secs(120);
    let mut pair = Pair::new(engine(vec![pa], 1, 0x1000), engine(vec![pb], 2, 0x2000));
    let now = pair.now;
    pair.a.handle_command(now, Command::Initiate { peer: 0 });
    pair.drive();
    assert_eq!(installs(&pair.a_events).len(), 1);
    let ike_a = established_id(&pair.a_events);
    let ike_b = established_id(&pair.b_events);
    // A expires first and tells B with a Delete for the ISAKMP SA alone
    // (RFC 2408 §3.15): the child pair stays on both ends, as an orphan.
    assert!(pair.a_events.contains(&Event::IkeSaDeleted(ike_a)));
    assert!(pair.b_events.contains(&Event::IkeSaDeleted(ike_b)));
    assert_eq!(pair.a.ike_sa_count() + pair.b.ike_sa_count(), 0);
    let (a_in, a_out) = installs(&pair.a_events)[0].clone();
    assert_eq!(deletes(&pair.a_events), vec![]);
    assert_eq!(deletes(&pair.b_events), vec![]);
    assert_eq!(pair.a.orphan_children(), vec![(a_in.spi, a_out.spi)]);
    assert_eq!(pair.b.orphan_children(), vec![(a_out.spi, a_in.spi)]);
}

/// Whether `events` hold a `DeleteSa` of `spi` in that direction.
fn has_delete(events: &[Event], spi: u32, inbound: bool) -> bool {
    deletes(events).contains(&(spi, inbound))
}

/// The `DeleteSa` events, as (SPI, inbound).
fn deletes(events: &[Event]) -> Vec<(u32, bool)> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::DeleteSa { spi, inbound, .. } => Some((*spi, *inbound)),
            _ => None,
        })
        .collect()
}

fn established_ids(events: &[Event]) -> Vec<IkeSaId> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::IkeSaEstablished { ike_sa, .. } => Some(*ike_sa),
            _ => None,
        })
        .collect()
}

/// What strongSwan does every `rekey_time` of an IKEv1 connection: B (the
/// responder of the first ISAKMP SA) establishes a second one, and deletes
/// the first with a Delete naming the ISAKMP SA only. The pair negotiated
/// under the first survives on both ends (RFC 2408 §3.15), the second IKE SA
/// adopts it, and its Delete then travels over the second one.
#[test]
fn peer_reestablishing_the_isakmp_sa_keeps_and_adopts_the_children() {
    let p = params(0, Phase1Mode::Main, DhGroup::Curve25519);
    let mut pair = run_ok(&p, 71, clean());
    let (old_ike_a, old_ike_b) = (established_id(&pair.a_events), established_id(&pair.b_events));
    let (a_in, a_out) = installs(&pair.a_events)[0].clone();
    let now = pair.now;
    pair.b.handle_command(now, Command::Initiate { peer: 0 });
    pair.drive();
    let new_ike_a = *established_ids(&pair.a_events).last().unwrap();
    let new_ike_b = *established_ids(&pair.b_events).last().unwrap();
    assert_ne!(new_ike_a, old_ike_a);
    // With an IKE SA established, neither end claims to have no state.
    assert!(!pair.a_events.iter().any(|e| *e == Event::InitialContact(new_ike_a)));

    // B adopts the first pair and deletes the old ISAKMP SA alone.
    let now = pair.now;
    pair.b.handle_command(now, Command::AdoptChild { ike_sa: new_ike_b, inbound_spi: a_out.spi });
    pair.b.handle_command(now, Command::DeleteIsakmpSa(old_ike_b));
    pair.drive();
    assert!(pair.a_events.contains(&Event::IkeSaDeleted(old_ike_a)));
    assert!(pair.b_events.contains(&Event::IkeSaDeleted(old_ike_b)));
    assert_eq!(deletes(&pair.a_events), vec![], "no IPsec SA deleted with the ISAKMP SA");
    assert_eq!(deletes(&pair.b_events), vec![]);
    assert_eq!(pair.a.ike_sa_count(), 1);
    assert_eq!(pair.a.orphan_children(), vec![(a_in.spi, a_out.spi)]);
    assert_eq!(pair.a.child_holder(a_in.spi), Some(None));
    assert_eq!(pair.b.child_holder(a_out.spi), Some(Some(new_ike_b)));

    // A adopts it too; a Delete of it now travels over the new ISAKMP SA.
    let now = pair.now;
    pair.a.handle_command(now, Command::AdoptChild { ike_sa: new_ike_a, inbound_spi: a_in.spi });
    assert_eq!(pair.a.orphan_children(), vec![]);
    assert_eq!(pair.a.child_holder(a_in.spi), Some(Some(new_ike_a)));
    assert_eq!(pair.a.ike_sa(new_ike_a).unwrap().children.len(), 2);
    pair.a.handle_command(now, Command::DeleteChild { ike_sa: new_ike_a, inbound_spi: a_in.spi });
    pair.drive();
    assert_eq!(deletes(&pair.a_events), vec![(a_in.spi, true), (a_out.spi, false)]);
    let mut b = deletes(&pair.b_events);
    b.sort_unstable();
    let mut want = vec![(a_out.spi, true), (a_in.spi, false)];
    want.sort_unstable();
    assert_eq!(b, want, "the peer honours the Delete over the adopting IKE SA");
    assert_eq!(pair.b.ike_sa(new_ike_b).unwrap().children.len(), 1, "the second child stays");
}

/// Both ends re-established at once and adopted the pair into different
/// ISAKMP SAs: a Delete over either is still honoured, and an orphan with
/// no ISAKMP SA left is removed locally by `DeleteChild`.
#[test]
fn delete_of_a_pair_held_by_another_isakmp_sa_of_the_peer_is_honoured() {
    let p = params(0, Phase1Mode::Main, DhGroup::Curve25519);
    let mut pair = run_ok(&p, 72, clean());
    let (a_in, a_out) = installs(&pair.a_events)[0].clone();
    let now = pair.now;
    pair.a.handle_command(now, Command::Initiate { peer: 0 });
    pair.drive();
    let new_ike_b = *established_ids(&pair.b_events).last().unwrap();
    // B moves the first pair to the second IKE SA, A leaves it on the first.
    pair.b.handle_command(pair.now, Command::AdoptChild { ike_sa: new_ike_b, inbound_spi: a_out.spi });
    let old_ike_a = established_ids(&pair.a_events)[0];
    pair.a.handle_command(pair.now, Command::DeleteChild { ike_sa: old_ike_a, inbound_spi: a_in.spi });
    pair.drive();
    assert!(deletes(&pair.b_events).contains(&(a_out.spi, true)));
    assert!(deletes(&pair.b_events).contains(&(a_in.spi, false)));
    assert_eq!(pair.b.child_holder(a_out.spi), None);

    // The second pair, orphaned by its ISAKMP SA's expiry-like deletion,
    // goes locally on DeleteChild (no Delete can be protected).
    let (b_in, b_out) = installs(&pair.a_events)[1].clone();
    let new_ike_a = *established_ids(&pair.a_events).last().unwrap();
    pair.a.handle_command(pair.now, Command::DeleteIsakmpSa(new_ike_a));
    pair.drive();
    assert_eq!(pair.a.orphan_children(), vec![(b_in.spi, b_out.spi)]);
    let sent = pair.sent;
    pair.a.handle_command(pair.now, Command::DeleteChild { ike_sa: new_ike_a, inbound_spi: b_in.spi });
    pair.drive();
    assert_eq!(pair.sent, sent, "nothing to send for an orphan");
    assert_eq!(pair.a.orphan_children(), vec![]);
    assert!(deletes(&pair.a_events).ends_with(&[(b_in.spi, true), (b_out.spi, false)]));
}

/// `Command::Delete` (terminate) still takes the children along, and a peer
/// declared dead by DPD takes its orphans with it.
#[test]
fn dpd_death_clears_the_orphans_of_the_peer() {
    let p = params(0, Phase1Mode::Main, DhGroup::Curve25519);
    let mut pair = run_ok(&p, 73, clean());
    let (a_in, a_out) = installs(&pair.a_events)[0].clone();
    let old = established_id(&pair.a_events);
    pair.a.handle_command(pair.now, Command::Initiate { peer: 0 });
    pair.drive();
    pair.a.handle_command(pair.now, Command::DeleteIsakmpSa(old));
    pair.drive();
    assert_eq!(pair.a.orphan_children(), vec![(a_in.spi, a_out.spi)]);
    let new = *established_ids(&pair.a_events).last().unwrap();
    pair.fault = Box::new(|_, _| Fault::Drop);
    pair.a.handle_command(pair.now, Command::DeadPeerDetection(new));
    pair.drive();
    assert_eq!(pair.a.orphan_children(), vec![]);
    let d = deletes(&pair.a_events);
    assert!(d.contains(&(a_in.spi, true)) && d.contains(&(a_out.spi, false)), "{d:?}");
    assert_eq!(d.len(), 4, "both pairs deleted: {d:?}");
}

mod flips {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// One bit flipped in any datagram of a handshake: the pair either
        /// recovers (the damaged copy is rejected, a retransmission goes
        /// through) with matching keys, or nobody installs anything. A flip
        /// never yields mismatched keys or a second SA.
        #[test]
        fn any_bit_flip_is_rejected_or_recovered(
            packet in 0usize..12,
            bit in any::<prop::sample::Index>(),
            aggressive in any::<bool>(),
        ) {
            let mode = if aggressive { Phase1Mode::Aggressive } else { Phase1Mode::Main };
            let p = params(1, mode, DhGroup::Curve25519);
            let mut pair = pair_for(&p, 77);
            let mut flipped = false;
            pair.fault = Box::new(move |i, _| {
                if i == packet && !flipped {
                    flipped = true;
                    Fault::Flip(bit)
                } else {
                    Fault::Deliver
                }
            });
            let now = pair.now;
            pair.a.handle_command(now, Command::Initiate { peer: 0 });
            pair.drive();
            let ia = installs(&pair.a_events);
            let ib = installs(&pair.b_events);
            prop_assert!(ia.len() <= 1 && ib.len() <= 1);
            if let (Some(a), Some(b)) = (ia.first(), ib.first()) {
                prop_assert_eq!(&a.1, &b.0);
                prop_assert_eq!(&a.0, &b.1);
            }
        }
    }
}

#[test]
fn many_children_on_one_ike_sa() {
    let p = params(0, Phase1Mode::Main, DhGroup::Curve25519);
    let mut pair = run_ok(&p, 61, clean());
    let ike = established_id(&pair.a_events);
    // Twice the concurrent Quick Mode limit, one after the other; finished
    // exchanges must age out so the limit never blocks new ones.
    let n = 2 * EngineConfig::default().max_quick_modes_per_sa;
    for _ in 0..n {
        let now = pair.now;
        pair.a.handle_command(now, Command::CreateChild(ike));
        pair.drive();
    }
    let ia = installs(&pair.a_events);
    let ib = installs(&pair.b_events);
    assert_eq!(ia.len(), n + 1);
    assert_eq!(ib.len(), n + 1);
    for (a, b) in ia.iter().zip(&ib) {
        assert_eq!(a.1, b.0);
        assert_eq!(a.0, b.1);
    }
    let spis: HashSet<u32> = ia.iter().map(|(i, _)| i.spi).collect();
    assert_eq!(spis.len(), n + 1, "inbound SPIs are unique");
    for e in [&pair.a, &pair.b] {
        let sa = &e.ike_sas()[0];
        assert_eq!(sa.children.len(), n + 1);
        assert!(sa.quick_modes.is_empty(), "finished exchanges linger only briefly");
    }
    assert_eq!(failures(&pair.a_events), vec![]);
}

#[test]
fn concurrent_children_within_limit() {
    let p = params(0, Phase1Mode::Main, DhGroup::Curve25519);
    let mut pair = run_ok(&p, 62, clean());
    let ike = established_id(&pair.a_events);
    let now = pair.now;
    for _ in 0..5 {
        pair.a.handle_command(now, Command::CreateChild(ike));
    }
    pair.drive();
    assert_eq!(installs(&pair.a_events).len(), 6);
    assert_eq!(installs(&pair.b_events).len(), 6);
}

#[test]
fn child_rekey_by_create_then_delete() {
    let p = params(0, Phase1Mode::Main, DhGroup::Curve25519);
    let mut pair = run_ok(&p, 63, clean());
    let ike = established_id(&pair.a_events);
    let (old_in, old_out) = installs(&pair.a_events)[0].clone();
    let now = pair.now;
    pair.a.handle_command(now, Command::CreateChild(ike));
    pair.drive();
    let now = pair.now;
    pair.a.handle_command(now, Command::DeleteChild { ike_sa: ike, inbound_spi: old_in.spi });
    pair.drive();
    assert!(has_delete(&pair.a_events, old_in.spi, true));
    assert!(has_delete(&pair.a_events, old_out.spi, false));
    // The peer removes the same pair, seen from its side.
    assert!(has_delete(&pair.b_events, old_in.spi, false));
    assert!(has_delete(&pair.b_events, old_out.spi, true));
    let (new_in, _) = installs(&pair.a_events)[1].clone();
    for e in [&pair.a, &pair.b] {
        let sa = &e.ike_sas()[0];
        assert_eq!(sa.children.len(), 1);
        assert!(sa.children[0].0 == new_in.spi || sa.children[0].1 == new_in.spi);
    }
}

fn subnet(a: [u8; 4], p: u8) -> TrafficSelector {
    TrafficSelector { address: TsAddress::Subnet(IpAddr::from(a), p), protocol: 0, port: 0 }
}

fn gcm_params() -> Params {
    Params {
        mode: Phase1Mode::Main,
        ike: IkeProposal { cipher: Cipher::Aes128Cbc, hash: HashAlgorithm::Sha256, group: DhGroup::Ecp256 },
        esp: EspProposal { encryption: EspEncryption::AesGcm16(128), integrity: None, esn: false },
        child_mode: ChildMode::Tunnel,
        pfs: None,
    }
}

/// The responder's inbound SA is handed out with (before) its HASH(2) reply,
/// and the initiator installs before sending HASH(3): no packet can arrive
/// for an SA the receiver does not have yet.
#[test]
fn inbound_sa_is_installed_before_the_message_that_lets_the_peer_use_it() {
    let p = gcm_params();
    let mut pair = pair_for(&p, 7);
    let mut now = pair.now;
    pair.a.handle_command(now, Command::Initiate { peer: 0 });
    let (mut b_inbound, mut a_installed_before) = (None, None);
    for _ in 0..50 {
        now += Duration::from_millis(10);
        let mut moved = false;
        while let Some(t) = pair.a.poll_transmit() {
            moved = true;
            pair.b.handle_datagram(now, t.destination, t.source, &t.contents);
            // What B queued in answer to this one datagram.
            let replies: Vec<Transmit> = std::iter::from_fn(|| pair.b.poll_transmit()).collect();
            let events: Vec<Event> = std::iter::from_fn(|| pair.b.poll_event()).collect();
            for e in &events {
                if let Event::InstallInbound { inbound, peer, .. } = e {
                    assert_eq!(*peer, 0);
                    assert_eq!(replies.len(), 1, "InstallInbound comes with the HASH(2) reply");
                    assert!(a_installed_before.is_none(), "A must not have installed before HASH(2)");
                    b_inbound = Some((**inbound).clone());
                }
                if let Event::InstallSa { inbound, .. } = e {
                    let early =
                        b_inbound.as_ref().unwrap_or_else(|| panic!("InstallSa before InstallInbound"));
                    assert_eq!(**inbound, *early, "the pair completes the inbound SA installed earlier");
                }
            }
            pair.b_events.extend(events);
            for r in replies {
                pair.a.handle_datagram(now, r.destination, r.source, &r.contents);
                while let Some(e) = pair.a.poll_event() {
                    if let Event::InstallSa { outbound, .. } = &e {
                        // A's outbound is B's inbound, and B had it already.
                        assert_eq!(Some(&**outbound), b_inbound.as_ref());
                        a_installed_before = Some(());
                    }
                    pair.a_events.push(e);
                }
            }
        }
        if !moved {
            break;
        }
    }
    assert!(a_installed_before.is_some() && b_inbound.is_some());
    assert_eq!(installs(&pair.b_events).len(), 1);
}

/// A responder for any peer address (`%any`) accepts the initiator's
/// selectors when they lie inside its own (narrowing) and installs what was
/// proposed; selectors outside are refused with INVALID-ID-INFORMATION.
#[test]
fn responder_for_any_peer_narrows_to_the_proposed_selectors() {
    let p = gcm_params();
    let mut a_cfg = peer(A, B, &p, b"secret");
    a_cfg.child.local_ts = subnet([10, 1, 5, 0], 24);
    a_cfg.child.remote_ts = subnet([10, 2, 0, 0], 16);
    let mut b_cfg = peer(B, IpAddr::V4(Ipv4Addr::UNSPECIFIED), &p, b"secret");
    b_cfg.remote_id = Identity::Fqdn(format!("gw-{A}"));
    b_cfg.child.local_ts = subnet([10, 2, 0, 0], 16);
    b_cfg.child.remote_ts = subnet([10, 0, 0, 0], 8);
    let mut pair =
        Pair::new(engine(vec![a_cfg.clone()], 11, 0x1000), engine(vec![b_cfg.clone()], 12, 0x2000));
    let now = pair.now;
    pair.a.handle_command(now, Command::Initiate { peer: 0 });
    pair.drive();
    assert_eq!(failures(&pair.a_events), vec![]);
    let ib = installs(&pair.b_events);
    assert_eq!(ib.len(), 1);
    assert_eq!(ib[0].0.source_ts, subnet([10, 1, 5, 0], 24), "narrowed to the proposal");
    assert_eq!(ib[0].0.destination_ts, subnet([10, 2, 0, 0], 16));
    assert_eq!(ib[0].0.source.ip(), A, "the SA goes to the actual peer");

    // Outside the responder's selectors: refused.
    a_cfg.child.local_ts = subnet([11, 0, 0, 0], 8);
    let mut pair = Pair::new(engine(vec![a_cfg], 13, 0x1000), engine(vec![b_cfg], 14, 0x2000));
    let now = pair.now;
    pair.a.handle_command(now, Command::Initiate { peer: 0 });
    pair.drive();
    assert_eq!(installs(&pair.b_events).len(), 0);
    assert_eq!(installs(&pair.a_events).len(), 0);
    assert!(
        failures(&pair.a_events).contains(&Error::PeerNotified(NotifyType::INVALID_ID_INFORMATION)),
        "{:?}",
        failures(&pair.a_events)
    );
}

/// Several children of one connection (one peer entry each) share the IKE
/// SA: the responder finds the entry whose selectors match, and says which.
#[test]
fn second_child_of_a_peer_runs_on_the_same_ike_sa() {
    let p = gcm_params();
    let mut a0 = peer(A, B, &p, b"secret");
    let mut a1 = a0.clone();
    a0.child.local_ts = subnet([10, 1, 0, 0], 16);
    a0.child.remote_ts = subnet([10, 2, 0, 0], 16);
    a1.child.local_ts = subnet([10, 11, 0, 0], 16);
    a1.child.remote_ts = subnet([10, 12, 0, 0], 16);
    let mut b0 = peer(B, A, &p, b"secret");
    let mut b1 = b0.clone();
    b0.child.local_ts = subnet([10, 2, 0, 0], 16);
    b0.child.remote_ts = subnet([10, 1, 0, 0], 16);
    b1.child.local_ts = subnet([10, 12, 0, 0], 16);
    b1.child.remote_ts = subnet([10, 11, 0, 0], 16);
    let mut pair = Pair::new(engine(vec![a0, a1], 21, 0x1000), engine(vec![b0, b1], 22, 0x2000));
    let now = pair.now;
    pair.a.handle_command(now, Command::Initiate { peer: 0 });
    pair.drive();
    let ike_sa = pair.a.ike_sas()[0].id;
    let now = pair.now;
    pair.a.handle_command(now, Command::CreateChildFor { ike_sa, peer: 1 });
    pair.drive();
    assert_eq!(failures(&pair.b_events), vec![]);
    assert_eq!(pair.a.ike_sas().len(), 1, "one IKE SA");
    let peers: Vec<usize> = pair
        .b_events
        .iter()
        .filter_map(|e| match e {
            Event::InstallSa { peer, .. } => Some(*peer),
            _ => None,
        })
        .collect();
    assert_eq!(peers, vec![0, 1]);
    let ib = installs(&pair.b_events);
    assert_eq!(ib[1].0.source_ts, subnet([10, 11, 0, 0], 16));
}

/// Children that outlived their ISAKMP SA are state the peer shares with us:
/// the next ISAKMP SA must not carry INITIAL-CONTACT (the peer would drop
/// them), and the peer's orphans stay until adopted.
#[test]
fn no_initial_contact_while_orphans_live() {
    let p = params(0, Phase1Mode::Main, DhGroup::Curve25519);
    let mut pair = run_ok(&p, 74, clean());
    assert_eq!(pair.b_events.iter().filter(|e| matches!(e, Event::InitialContact(_))).count(), 1);
    let (a_in, a_out) = installs(&pair.a_events)[0].clone();
    let old = established_id(&pair.a_events);
    pair.a.handle_command(pair.now, Command::DeleteIsakmpSa(old));
    pair.drive();
    assert_eq!(pair.a.ike_sa_count() + pair.b.ike_sa_count(), 0);
    pair.a.handle_command(pair.now, Command::Initiate { peer: 0 });
    pair.drive();
    assert_eq!(established_ids(&pair.b_events).len(), 2);
    assert_eq!(
        pair.b_events.iter().filter(|e| matches!(e, Event::InitialContact(_))).count(),
        1,
        "no INITIAL-CONTACT from an end that kept children"
    );
    assert_eq!(pair.b.orphan_children(), vec![(a_out.spi, a_in.spi)]);
    assert_eq!(deletes(&pair.b_events), vec![]);
}

/// Moves every queued datagram of `from` to `to` (no latency).
fn hand_over(from: &mut Engine, to: &mut Engine, now: Instant) -> usize {
    let mut n = 0;
    while let Some(t) = from.poll_transmit() {
        to.handle_datagram(now, t.destination, t.source, &t.contents);
        n += 1;
    }
    n
}

/// The initiator cannot install the pair it just negotiated (a full SA
/// table): the HASH(3) queued behind `InstallSa` is withdrawn and copies of
/// HASH(2) go unanswered, so the responder never installs the pair; its
/// Quick Mode times out and removes the inbound SA it installed with HASH(2).
#[test]
fn initiator_abort_withdraws_hash3() {
    let p = params(0, Phase1Mode::Main, DhGroup::Curve25519);
    let mut pair = run_ok(&p, 75, clean());
    let ike = established_id(&pair.a_events);
    let now = pair.now;
    pair.a.handle_command(now, Command::CreateChild(ike));
    assert_eq!(hand_over(&mut pair.a, &mut pair.b, now), 1, "HASH(1)");
    assert_eq!(hand_over(&mut pair.b, &mut pair.a, now), 1, "HASH(2)");
    let mut ev = Vec::new();
    while let Some(e) = pair.a.poll_event() {
        ev.push(e);
    }
    let (inb, _) = installs(&ev)[0].clone();
    let b_inbound = pair
        .b
        .poll_event()
        .and_then(|e| match e {
            Event::InstallInbound { inbound, .. } => Some(inbound.spi),
            _ => None,
        })
        .unwrap();
    pair.a.handle_command(now, Command::AbortQuickMode { ike_sa: ike, inbound_spi: inb.spi });
    assert!(pair.a.poll_transmit().is_none(), "HASH(3) withdrawn");
    assert_eq!(pair.a.ike_sas()[0].children.len(), 1, "only the first pair");
    assert_eq!(pair.a.stats().quick_modes_refused, 1);
    pair.drive();
    assert_eq!(installs(&pair.b_events).len(), 1, "the responder never installed the second pair");
    assert!(has_delete(&pair.b_events, b_inbound, true));
    assert_eq!(pair.b.ike_sas()[0].children.len(), 1);
    assert_eq!(pair.a.ike_sa_count() + pair.b.ike_sa_count(), 2, "both IKE SAs stay");
}

/// A road warrior: no connection names its address, the `%any` one takes it.
const ROAD_WARRIOR: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 3));

/// B with a connection for A and one for any address (`%any`), in
/// transport mode so that the `%any` child takes the IKE address.
fn gateway_with_any(config: EngineConfig) -> (Engine, Params) {
    let p = params(1, Phase1Mode::Main, DhGroup::Ecp256);
    let mut any = peer(B, IpAddr::V4(Ipv4Addr::UNSPECIFIED), &p, b"secret");
    any.remote_id = Identity::Any;
    let peers = vec![peer(B, A, &p, b"secret"), any];
    let b = Engine::new(
        EngineConfig { peers, ..config },
        Box::new(ChaCha20Rng::seed_from_u64(2)),
        Box::new(Spis { next: 0x2000, used: HashSet::new() }),
    );
    (b, p)
}

/// Runs Main Mode and Quick Mode from `initiator` (at `from`) to `b`; B back.
fn connect(b: Engine, from: IpAddr, p: &Params, seed: u64) -> (Pair, usize) {
    let a = engine(vec![peer(from, B, p, b"secret")], seed, 0x1000 + seed as u32 * 0x100);
    let mut pair = Pair::new(a, b);
    let now = pair.now;
    pair.a.handle_command(now, Command::Initiate { peer: 0 });
    pair.drive();
    let installed = installs(&pair.a_events).len();
    (pair, installed)
}

fn half_open(e: &Engine) -> usize {
    e.ike_sas().iter().filter(|s| !s.established).count()
}

#[test]
fn spoofed_message_1_floods_leave_room_for_any_and_configured_peers() {
    use rand_chacha::rand_core::RngCore;
    let cfg = EngineConfig::default();
    let (mut b, p) = gateway_with_any(cfg.clone());
    let now = Instant::now();
    // A genuine message 1, re-sent with fresh cookies from spoofed sources.
    let mut t = engine(vec![peer(ROAD_WARRIOR, B, &p, b"secret")], 3, 0x3000);
    t.handle_command(now, Command::Initiate { peer: 0 });
    let mm1 = t.poll_transmit().unwrap().contents;
    let mut rng = ChaCha20Rng::seed_from_u64(77);
    let spoof = |b: &mut Engine, src: SocketAddr, rng: &mut ChaCha20Rng| {
        let mut m = mm1.clone();
        m[..8].copy_from_slice(&rng.next_u64().to_be_bytes());
        b.handle_datagram(now, SocketAddr::new(B, 500), src, &m);
        while b.poll_transmit().is_some() {}
    };
    // 5000 from random addresses of 198.18.0.0/15, 2000 with the configured peer's own
    // address (its share of half-open state churns, it is not held against it).
    for _ in 0..5000 {
        let ip = Ipv4Addr::from(0xc612_0000 | (rng.next_u32() & 0x1_ffff));
        let port = 1024 + (rng.next_u32() % 60_000) as u16;
        spoof(&mut b, SocketAddr::new(IpAddr::V4(ip), port), &mut rng);
    }
    let one = SocketAddr::new(A, 500);
    for _ in 0..2000 {
        spoof(&mut b, one, &mut rng);
    }
    let any_share = cfg.max_half_open - cfg.half_open_reserved;
    let s = b.stats();
    let per_source = cfg.max_half_open_per_peer;
    assert_eq!(half_open(&b), any_share + per_source, "the %any share is full, the reserve holds A's share");
    assert_eq!(s.half_open_refused_per_source, 0);
    assert_eq!(s.dropped_half_open_limit, 0);
    assert_eq!(s.half_open_evicted, 5000 - any_share as u64 + (2000 - per_source as u64));
    assert_eq!(s.received, 7000);
    // A road warrior (%any) completes: its message 1 takes the place of the
    // oldest spoofed one, its message 3 proves its address.
    let (pair, installed) = connect(b, ROAD_WARRIOR, &p, 4);
    assert_eq!((established(&pair.a_events), installed), (1, 1), "%any initiator");
    assert_eq!(failures(&pair.a_events), vec![]);
    let b = pair.b;
    assert!(half_open(&b) <= cfg.max_half_open);
    // The configured peer completes too.
    let (pair, installed) = connect(b, A, &p, 5);
    assert_eq!((established(&pair.a_events), installed), (1, 1), "configured initiator");
    assert_eq!(failures(&pair.a_events), vec![]);
    // Spoofed state times out; both established IKE SAs stay.
    assert_eq!(pair.b.ike_sas().iter().filter(|s| s.established).count(), 2);
    assert_eq!(half_open(&pair.b), 0);
}

#[test]
fn the_reserve_admits_configured_peers_when_the_any_share_is_past_message_3() {
    let cfg = EngineConfig { max_half_open: 12, half_open_reserved: 4, ..EngineConfig::default() };
    let (mut b, p) = gateway_with_any(cfg.clone());
    let now = Instant::now();
    // Eight %any initiators that receive at their addresses get to message 3
    // (so none can be evicted) and stop there.
    for i in 0..8u8 {
        let at = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 100 + i));
        let mut a = engine(vec![peer(at, B, &p, b"secret")], 100 + u64::from(i), 0x4000);
        a.handle_command(now, Command::Initiate { peer: 0 });
        assert_eq!(hand_over(&mut a, &mut b, now), 1, "MM1");
        assert_eq!(hand_over(&mut b, &mut a, now), 1, "MM2");
        assert_eq!(hand_over(&mut a, &mut b, now), 1, "MM3");
        while b.poll_transmit().is_some() {}
    }
    assert_eq!(half_open(&b), 8);
    // Another road warrior is refused, counted by reason.
    let mut rw = engine(vec![peer(ROAD_WARRIOR, B, &p, b"secret")], 6, 0x6000);
    rw.handle_command(now, Command::Initiate { peer: 0 });
    assert_eq!(hand_over(&mut rw, &mut b, now), 1, "MM1");
    assert!(b.poll_transmit().is_none(), "refused without an answer");
    let s = b.stats();
    assert_eq!((s.dropped_half_open_limit, s.half_open_refused_any, s.half_open_evicted), (1, 1, 0));
    // The configured peer uses the reserve and completes.
    let (pair, installed) = connect(b, A, &p, 7);
    assert_eq!((established(&pair.a_events), installed), (1, 1), "configured initiator");
    assert_eq!(failures(&pair.a_events), vec![]);
    assert_eq!(pair.b.stats().dropped_half_open_limit, 1);
}
