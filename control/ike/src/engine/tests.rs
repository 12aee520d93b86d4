use super::*;
use crate::msgs::{IdType, NotifyType};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// SPIs 1, 2, ... after the start value (the engine tests' allocator).
pub(super) struct Counter(pub(super) u32);
impl SpiAllocator for Counter {
    fn allocate(&mut self) -> Option<u32> {
        self.0 += 1;
        Some(self.0)
    }
    fn release(&mut self, _: u32) {}
}

fn engine(seed: u64) -> Engine {
    use rand_chacha::rand_core::SeedableRng;
    Engine::new(
        EngineConfig::default(),
        Box::new(rand_chacha::ChaCha20Rng::seed_from_u64(seed)),
        Box::new(Counter(0x100)),
    )
}

#[test]
fn responder_cookie_depends_on_peer_and_secret() {
    let e = engine(1);
    let a: SocketAddr = "192.0.2.1:500".parse().unwrap();
    let b: SocketAddr = "192.0.2.2:500".parse().unwrap();
    let c: SocketAddr = "192.0.2.1:4500".parse().unwrap();
    let ci = [7u8; 8];
    assert_eq!(e.responder_cookie(a, &ci), e.responder_cookie(a, &ci));
    assert_ne!(e.responder_cookie(a, &ci), e.responder_cookie(b, &ci));
    assert_ne!(e.responder_cookie(a, &ci), e.responder_cookie(c, &ci));
    assert_ne!(e.responder_cookie(a, &ci), e.responder_cookie(a, &[8u8; 8]));
    assert_ne!(e.responder_cookie(a, &ci), engine(2).responder_cookie(a, &ci));
}

#[test]
fn traffic_selectors_round_trip() {
    let cases = [
        TsAddress::Host(IpAddr::V4(Ipv4Addr::new(10, 1, 2, 3))),
        TsAddress::Host(IpAddr::V6(Ipv6Addr::LOCALHOST)),
        TsAddress::Subnet(IpAddr::V4(Ipv4Addr::new(10, 1, 0, 0)), 16),
        TsAddress::Subnet(IpAddr::V4(Ipv4Addr::new(0, 0, 0, 0)), 0),
        TsAddress::Subnet(IpAddr::V6("2001:db8::".parse().unwrap()), 48),
        TsAddress::Range(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)), IpAddr::V4(Ipv4Addr::new(10, 0, 0, 9))),
        TsAddress::Range(
            IpAddr::V6("2001:db8::1".parse().unwrap()),
            IpAddr::V6("2001:db8::9".parse().unwrap()),
        ),
    ];
    for address in cases {
        let ts = TrafficSelector { address, protocol: 6, port: 443 };
        let id = ts_to_id(&ts);
        assert_eq!(id_to_ts(&id), Some(ts), "{address:?}");
    }
    let subnet = ts_to_id(&TrafficSelector {
        address: TsAddress::Subnet(IpAddr::V4(Ipv4Addr::new(10, 1, 0, 0)), 16),
        protocol: 0,
        port: 0,
    });
    assert_eq!(subnet.id_type, IdType::IPV4_ADDR_SUBNET);
    assert_eq!(subnet.data, vec![10, 1, 0, 0, 255, 255, 0, 0]);
    // A non-contiguous mask is refused.
    let mut bad = subnet.clone();
    bad.data = vec![10, 1, 0, 0, 255, 0, 255, 0];
    assert_eq!(id_to_ts(&bad), None);
}

#[test]
fn errors_map_to_notify_types() {
    assert_eq!(Error::AuthenticationFailed.notify_type(), Some(NotifyType::AUTHENTICATION_FAILED));
    assert_eq!(Error::NoProposalChosen.notify_type(), Some(NotifyType::NO_PROPOSAL_CHOSEN));
    assert_eq!(Error::InvalidIdentity.notify_type(), Some(NotifyType::INVALID_ID_INFORMATION));
    assert_eq!(
        Error::PeerMisbehaved(PeerMisbehaved::InvalidKeyExchange).notify_type(),
        Some(NotifyType::INVALID_KEY_INFORMATION)
    );
    assert_eq!(Error::Timeout.notify_type(), None);
}

#[test]
fn identity_matching_allows_udp_500() {
    let id = Identity::Fqdn("gw.example".into());
    let mut p = id.to_payload();
    assert!(id.matches(&p));
    p.protocol = 17;
    p.port = 500;
    assert!(id.matches(&p));
    p.port = 501;
    assert!(!id.matches(&p));
    assert!(!Identity::UserFqdn("gw.example".into()).matches(&id.to_payload()));
}

#[test]
fn phase1_proposal_round_trip_and_selection() {
    use crate::crypto::{Cipher, DhGroup, HashAlgorithm};
    let ours = [
        IkeProposal { cipher: Cipher::Aes256Cbc, hash: HashAlgorithm::Sha256, group: DhGroup::Modp2048 },
        IkeProposal { cipher: Cipher::Aes128Cbc, hash: HashAlgorithm::Sha1, group: DhGroup::Ecp256 },
    ];
    let psk = crate::msgs::p1attr::AUTH_PSK;
    let sa = phase1::ike_sa_payload(&ours, 86_400, psk);
    let parsed: Vec<_> =
        sa.proposals[0].transforms.iter().map(|t| phase1::parse_ike_transform(t, psk).unwrap()).collect();
    assert_eq!(parsed, ours);
    // Another authentication method is another transform.
    let rsa = crate::msgs::p1attr::AUTH_RSA_SIG;
    assert!(phase1::parse_ike_transform(&sa.proposals[0].transforms[0], rsa).is_none());
    assert_eq!(phase1::select_ike(&sa, &ours, false, rsa).unwrap_err(), Error::NoProposalChosen);
    // The responder takes the initiator's first acceptable transform.
    let (chosen_p, chosen) = phase1::select_ike(&sa, &ours[1..], false, psk).unwrap();
    assert_eq!(chosen, ours[1]);
    assert_eq!(chosen_p.transforms.len(), 1);
    assert_eq!(chosen_p.transforms[0].number, 2);
    assert_eq!(phase1::select_ike(&sa, &[], false, psk).unwrap_err(), Error::NoProposalChosen);
    // Our order when configured to prefer it, the initiator's otherwise.
    let reversed = [ours[1], ours[0]];
    let (chosen_p, chosen) = phase1::select_ike(&sa, &reversed, false, psk).unwrap();
    assert_eq!((chosen, chosen_p.transforms[0].number), (ours[0], 1));
    let (chosen_p, chosen) = phase1::select_ike(&sa, &reversed, true, psk).unwrap();
    assert_eq!((chosen, chosen_p.transforms[0].number), (ours[1], 2));
    assert_eq!(phase1::select_ike(&sa, &[], true, psk).unwrap_err(), Error::NoProposalChosen);
}

fn snapshot(e: &Engine) -> String {
    e.ike_sas()
        .iter()
        .map(|sa| {
            if sa.quick_modes.is_empty() {
                sa.state.to_string()
            } else {
                format!("{}+QM[{}]", sa.state, sa.quick_modes.join(","))
            }
        })
        .collect::<Vec<_>>()
        .join(";")
}

fn snapshot_config(local: IpAddr, remote: IpAddr, mode: Phase1Mode) -> EngineConfig {
    use crate::crypto::{Cipher, DhGroup, HashAlgorithm};
    let ts = |a| TrafficSelector { address: TsAddress::Host(a), protocol: 0, port: 0 };
    EngineConfig {
        peers: vec![PeerConfig {
            name: "peer".into(),
            remote_address: remote,
            local_address: local,
            local_id: Identity::Address(local),
            remote_id: Identity::Address(remote),
            auth: AuthMethod::PreSharedKey(crate::crypto::Secret::new(b"k".to_vec())),
            mode,
            accept_aggressive: true,
            ike_proposals: vec![IkeProposal {
                cipher: Cipher::Aes128Cbc,
                hash: HashAlgorithm::Sha256,
                group: DhGroup::Curve25519,
            }],
            ike_lifetime: std::time::Duration::from_secs(3600),
            child: ChildConfig {
                local_ts: ts(local),
                remote_ts: ts(remote),
                proposals: vec![EspProposal {
                    encryption: EspEncryption::AesGcm16(256),
                    integrity: None,
                    esn: false,
                }],
                mode: ChildMode::Transport,
                pfs_group: Some(DhGroup::Curve25519),
                lifetime_seconds: 3600,
                lifetime_kilobytes: 0,
            },
            nat_traversal: true,
            force_encap: false,
            initial_contact: false,
            prefer_configured_proposals: false,
        }],
        ..EngineConfig::default()
    }
}

/// The transitions of both roles, one line per delivered datagram
/// (s2n-quic style snapshot): "who received | initiator | responder".
fn transitions(mode: Phase1Mode) -> Vec<String> {
    use rand_chacha::rand_core::SeedableRng;
    let (a_ip, b_ip) = (IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)), IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2)));
    let mk = |l, r, seed| {
        Engine::new(
            snapshot_config(l, r, mode),
            Box::new(rand_chacha::ChaCha20Rng::seed_from_u64(seed)),
            Box::new(Counter(seed as u32 * 0x1000)),
        )
    };
    let (mut a, mut b) = (mk(a_ip, b_ip, 1), mk(b_ip, a_ip, 2));
    let now = std::time::Instant::now();
    a.handle_command(now, Command::Initiate { peer: 0 });
    let mut lines = vec![format!("start | {} | {}", snapshot(&a), snapshot(&b))];
    for _ in 0..20 {
        if let Some(t) = a.poll_transmit() {
            b.handle_datagram(now, t.destination, t.source, &t.contents);
            lines.push(format!("R got | {} | {}", snapshot(&a), snapshot(&b)));
        } else if let Some(t) = b.poll_transmit() {
            a.handle_datagram(now, t.destination, t.source, &t.contents);
            lines.push(format!("I got | {} | {}", snapshot(&a), snapshot(&b)));
        } else {
            break;
        }
    }
    lines
}

#[test]
fn main_mode_transitions() {
    assert_eq!(
        transitions(Phase1Mode::Main),
        [
            "start | MmISentSa | ",
            "R got | MmISentSa | MmRSentSa",
            "I got | MmISentKe | MmRSentSa",
            "R got | MmISentKe | MmRSentKe",
            "I got | MmISentAuth | MmRSentKe",
            "R got | MmISentAuth | Established",
            "I got | Established+QM[ISent1] | Established",
            "R got | Established+QM[ISent1] | Established+QM[RSent2]",
            "I got | Established+QM[Done] | Established+QM[RSent2]",
            "R got | Established+QM[Done] | Established+QM[Done]",
        ]
    );
}

#[test]
fn aggressive_mode_transitions() {
    assert_eq!(
        transitions(Phase1Mode::Aggressive),
        [
            "start | AmISent1 | ",
            "R got | AmISent1 | AmRSent2",
            "I got | Established+QM[ISent1] | AmRSent2",
            // AM3 and QM1 leave the initiator back to back.
            "R got | Established+QM[ISent1] | Established",
            "R got | Established+QM[ISent1] | Established+QM[RSent2]",
            "I got | Established+QM[Done] | Established+QM[RSent2]",
            "R got | Established+QM[Done] | Established+QM[Done]",
        ]
    );
}

/// `initiate` names the IKE SA it starts, each its own; an unknown or
/// responder-only (`%any`) entry starts none.
#[test]
fn initiate_returns_the_ike_sa_it_starts() {
    use rand_chacha::rand_core::SeedableRng;
    let (local, remote) = (IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)), IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2)));
    let mut config = snapshot_config(local, remote, Phase1Mode::Main);
    let mut any = config.peers[0].clone();
    any.remote_address = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
    config.peers.push(any);
    let mut e =
        Engine::new(config, Box::new(rand_chacha::ChaCha20Rng::seed_from_u64(3)), Box::new(Counter(0)));
    let now = std::time::Instant::now();
    let first = e.initiate(now, 0).expect("an IKE SA");
    let second = e.initiate(now, 0).expect("another IKE SA");
    assert_ne!(first, second);
    let ids: Vec<IkeSaId> = e.ike_sas().iter().map(|s| s.id).collect();
    assert_eq!(ids, vec![first, second]);
    assert_eq!(e.ike_sa(second).map(|s| (s.peer, s.remote.ip(), s.initiator)), Some((0, remote, true)));
    assert_eq!(e.initiate(now, 1), None, "a responder-only entry");
    assert_eq!(e.initiate(now, 7), None, "no such entry");
    assert_eq!(e.ike_sa_count(), 2);
}

#[test]
fn selector_normal_form() {
    let host = TrafficSelector {
        address: TsAddress::Host(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1))),
        protocol: 0,
        port: 0,
    };
    let sub32 =
        TrafficSelector { address: TsAddress::Subnet(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)), 32), ..host };
    let range = TrafficSelector {
        address: TsAddress::Range(
            IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
            IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
        ),
        ..host
    };
    let sub24 =
        TrafficSelector { address: TsAddress::Subnet(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 0)), 24), ..host };
    assert_eq!(sub32.normalized(), host);
    assert_eq!(range.normalized(), host);
    assert_eq!(sub24.normalized(), sub24);
}

#[test]
fn engine_is_send() {
    // The tokio driver (iked) moves the engine between tasks.
    fn assert_send<T: Send>() {}
    assert_send::<Engine>();
    assert_send::<Event>();
}
