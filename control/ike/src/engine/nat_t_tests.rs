//! NAT-T dialects: RFC 3947 and draft-ietf-ipsec-nat-t-ike-02/03 between two
//! engines, one behind a NAT, with every datagram kept so the tests read the
//! numbers on the wire (NAT-D/NAT-OA payload types, the Encapsulation Mode
//! value inside the encrypted Quick Mode).

use super::phase1::NatTVersion;
use super::tests::Counter;
use super::*;
use crate::crypto::{Cipher, DhGroup, HashAlgorithm, Secret};
use crate::msgs::{p2attr, Message, PayloadType};
use std::net::{IpAddr, Ipv4Addr};

const A: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
const B: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2));
/// The public side of the NAT in front of A.
const NAT_PUBLIC: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 1));
const NAT_PORT_OFFSET: u16 = 30_000;

pub(super) fn peer(local: IpAddr, remote: IpAddr, mode: Phase1Mode, child_mode: ChildMode) -> PeerConfig {
    let host = |a: IpAddr| TrafficSelector { address: TsAddress::Host(a), protocol: 0, port: 0 };
    PeerConfig {
        name: format!("{remote}"),
        remote_address: remote,
        local_address: local,
        local_id: Identity::Fqdn("gw".into()),
        remote_id: Identity::Fqdn("gw".into()),
        auth: AuthMethod::PreSharedKey(Secret::new(b"secret".to_vec())),
        mode,
        accept_aggressive: true,
        ike_proposals: vec![IkeProposal {
            cipher: Cipher::Aes128Cbc,
            hash: HashAlgorithm::Sha256,
            group: DhGroup::Ecp256,
        }],
        ike_lifetime: Duration::from_secs(86_400),
        child: ChildConfig {
            local_ts: host(local),
            remote_ts: host(remote),
            proposals: vec![EspProposal {
                encryption: EspEncryption::AesGcm16(128),
                integrity: None,
                esn: false,
            }],
            mode: child_mode,
            pfs_group: None,
            lifetime_seconds: 3600,
            lifetime_kilobytes: 0,
        },
        nat_traversal: true,
        force_encap: false,
        initial_contact: true,
        prefer_configured_proposals: false,
    }
}

pub(super) fn engine(peer: PeerConfig, seed: u64, offer: &[NatTVersion]) -> Engine {
    use rand_chacha::rand_core::SeedableRng;
    let mut e = Engine::new(
        EngineConfig { peers: vec![peer], ..EngineConfig::default() },
        Box::new(rand_chacha::ChaCha20Rng::seed_from_u64(seed)),
        Box::new(Counter(u32::try_from(seed).unwrap_or(1) << 12)),
    );
    e.nat_t_offer = offer.to_vec();
    e
}

/// A (initiator, behind the NAT) and B, and every datagram as it crossed
/// the wire (A's with the NAT's source), in order.
struct Run {
    a: Engine,
    b: Engine,
    wire: Vec<Transmit>,
    a_events: Vec<Event>,
    b_events: Vec<Event>,
}

/// What a test may do to a datagram on its way.
type Tamper<'a> = &'a mut dyn FnMut(&mut Transmit);

fn run(
    a_offer: &[NatTVersion],
    b_offer: &[NatTVersion],
    mode: Phase1Mode,
    child: ChildMode,
    tamper: Tamper<'_>,
) -> Run {
    let pa = peer(A, B, mode, child);
    let mut pb = peer(B, NAT_PUBLIC, mode, child);
    // Transport mode: A's selectors carry its private address.
    pb.child.remote_ts = pa.child.local_ts;
    run_between(pa, pb, a_offer, b_offer, true, tamper)
}

/// A negotiation between `pa` (initiator) and `pb`, through the NAT in front
/// of A when `nat`, else straight.
fn run_between(
    pa: PeerConfig,
    pb: PeerConfig,
    a_offer: &[NatTVersion],
    b_offer: &[NatTVersion],
    nat: bool,
    tamper: Tamper<'_>,
) -> Run {
    let mut r = Run {
        a: engine(pa, 1, a_offer),
        b: engine(pb, 2, b_offer),
        wire: Vec::new(),
        a_events: Vec::new(),
        b_events: Vec::new(),
    };
    let now = Instant::now();
    r.a.handle_command(now, Command::Initiate { peer: 0 });
    for _ in 0..64 {
        let mut moved = false;
        while let Some(mut t) = r.a.poll_transmit() {
            moved = true;
            if nat {
                t.source = SocketAddr::new(NAT_PUBLIC, t.source.port() + NAT_PORT_OFFSET);
            }
            tamper(&mut t);
            r.wire.push(t.clone());
            r.b.handle_datagram(now, t.destination, t.source, &t.contents);
        }
        while let Some(t) = r.b.poll_transmit() {
            moved = true;
            let mut t = t;
            tamper(&mut t);
            r.wire.push(t.clone());
            let to =
                if nat { SocketAddr::new(A, t.destination.port() - NAT_PORT_OFFSET) } else { t.destination };
            r.a.handle_datagram(now, to, t.source, &t.contents);
        }
        r.a_events.extend(core::iter::from_fn(|| r.a.poll_event()));
        r.b_events.extend(core::iter::from_fn(|| r.b.poll_event()));
        if !moved {
            break;
        }
    }
    r
}

fn untouched() -> impl FnMut(&mut Transmit) {
    |_| {}
}

/// The ISAKMP message of a datagram (non-ESP marker removed on 4500).
fn isakmp(t: &Transmit) -> &[u8] {
    if t.destination.port() == 4500 || t.source.port() == 4500 {
        t.contents.get(4..).unwrap_or(&[])
    } else {
        &t.contents
    }
}

/// Payload type numbers of the plaintext phase-1 messages from `from`.
fn plain_types(r: &Run, from: IpAddr) -> Vec<Vec<u8>> {
    r.wire
        .iter()
        .filter(|t| t.source.ip() == from)
        .filter_map(|t| Message::parse(isakmp(t), crate::msgs::DEFAULT_MAX_MESSAGE_LEN).ok())
        .filter(|m| !m.header.is_encrypted())
        .map(|m| m.payloads.iter().map(|p| p.payload_type().0).collect())
        .collect()
}

fn vendor_ids_from(r: &Run, from: IpAddr) -> Vec<Vec<u8>> {
    r.wire
        .iter()
        .filter(|t| t.source.ip() == from)
        .filter_map(|t| Message::parse(isakmp(t), crate::msgs::DEFAULT_MAX_MESSAGE_LEN).ok())
        .flat_map(|m| m.payloads)
        .filter_map(|p| match p {
            Payload::VendorId(v) => Some(v),
            _ => None,
        })
        .collect()
}

/// Quick Mode messages 1 and 2 decrypted with A's phase-1 keys: the payload
/// type numbers of each, and the Encapsulation Mode value of each SA payload.
fn quick_mode_on_the_wire(r: &Run) -> Vec<(Vec<u8>, Vec<u64>)> {
    let sa = r.a.sas.first().expect("A's IKE SA");
    let keys = sa.keys().expect("phase 1 done").clone();
    let qm: Vec<(Header, &[u8])> = r
        .wire
        .iter()
        .filter_map(|t| {
            let d = isakmp(t);
            let h = Header::parse(d, crate::msgs::DEFAULT_MAX_MESSAGE_LEN).ok()?;
            (h.exchange_type == ExchangeType::QUICK_MODE).then_some((h, d))
        })
        .collect();
    let mut iv = keys.phase2_iv(&sa.p1_iv, qm.first().expect("QM1").0.message_id);
    let mut out = Vec::new();
    for (h, d) in qm.iter().take(2) {
        let (plain, next) = decrypt_body(&keys, &iv, d).expect("decrypts");
        iv = next;
        let raws = parse_chain(h.next_payload, &plain, true).expect("parses");
        let types = raws.iter().map(|r| r.payload.payload_type().0).collect();
        let modes = raws
            .iter()
            .filter_map(|r| match &r.payload {
                Payload::Sa(s) => Some(s),
                _ => None,
            })
            .flat_map(|s| &s.proposals)
            .flat_map(|p| &p.transforms)
            .flat_map(|t| &t.attributes)
            .filter(|a| a.kind == p2attr::ENCAPSULATION_MODE)
            .filter_map(|a| a.as_u64())
            .collect();
        out.push((types, modes));
    }
    out
}

fn installs(events: &[Event]) -> Vec<(EspSaDescription, EspSaDescription)> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::InstallSa { inbound, outbound, .. } => Some(((**inbound).clone(), (**outbound).clone())),
            _ => None,
        })
        .collect()
}

fn failures(events: &[Event]) -> Vec<Error> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Failed { error, .. } => Some(error.clone()),
            _ => None,
        })
        .collect()
}

const NAT_D: u8 = PayloadType::NAT_D.0;
const NAT_D_DRAFT: u8 = PayloadType::NAT_D_DRAFT.0;
const NAT_OA: u8 = PayloadType::NAT_OA.0;
const NAT_OA_DRAFT: u8 = PayloadType::NAT_OA_DRAFT.0;

/// Runs one negotiation and checks that both engines agree on the NAT, on
/// UDP encapsulation, and that the wire carries `draft`'s numbers only.
fn check_dialect(a_offer: &[NatTVersion], b_offer: &[NatTVersion], draft: bool, expect_vid: &[u8; 16]) {
    for (mode, child) in [
        (Phase1Mode::Main, ChildMode::Tunnel),
        (Phase1Mode::Main, ChildMode::Transport),
        (Phase1Mode::Aggressive, ChildMode::Tunnel),
        (Phase1Mode::Aggressive, ChildMode::Transport),
    ] {
        let what = format!("{a_offer:?} vs {b_offer:?}, {mode:?} {child:?}");
        let mut keep = untouched();
        let r = run(a_offer, b_offer, mode, child, &mut keep);
        assert_eq!(failures(&r.a_events), vec![], "{what}");
        assert_eq!(failures(&r.b_events), vec![], "{what}");
        // Both detected the NAT the same way.
        let (sa_a, sa_b) = (&r.a.sas[0], &r.b.sas[0]);
        assert!(sa_a.nat_t && sa_b.nat_t, "{what}");
        assert_eq!((sa_a.nat_t_draft, sa_b.nat_t_draft), (draft, draft), "{what}");
        assert_eq!(sa_a.nat, NatStatus { local_behind: true, remote_behind: false }, "{what}");
        assert_eq!(sa_b.nat, NatStatus { local_behind: false, remote_behind: true }, "{what}");
        assert_eq!((sa_a.local.port(), sa_a.remote.port()), (4500, 4500), "{what}");
        assert_eq!(sa_b.remote, SocketAddr::new(NAT_PUBLIC, 4500 + NAT_PORT_OFFSET), "{what}");
        // The responder answers with the one vendor id it chose.
        let b_natt: Vec<Vec<u8>> = vendor_ids_from(&r, B)
            .into_iter()
            .filter(|v| NatTVersion::ALL.iter().any(|n| n.vendor_id().as_slice() == v.as_slice()))
            .collect();
        assert_eq!(b_natt, vec![expect_vid.to_vec()], "{what}");
        // NAT-D on the wire (MM3/MM4, or AM2; AM3 is encrypted).
        let (want, other) = if draft { (NAT_D_DRAFT, NAT_D) } else { (NAT_D, NAT_D_DRAFT) };
        let b_types: Vec<u8> = plain_types(&r, B).concat();
        assert_eq!(b_types.iter().filter(|&&t| t == want).count(), 2, "{what}: {b_types:?}");
        assert!(!b_types.contains(&other), "{what}");
        if mode == Phase1Mode::Main {
            let a_types: Vec<u8> = plain_types(&r, NAT_PUBLIC).concat();
            assert_eq!(a_types.iter().filter(|&&t| t == want).count(), 2, "{what}: {a_types:?}");
            assert!(!a_types.contains(&other), "{what}");
        }
        // Quick Mode: the UDP mode value, and NAT-OA numbers in transport mode.
        let qm = quick_mode_on_the_wire(&r);
        let expect_mode = match (child, draft) {
            (ChildMode::Tunnel, false) => p2attr::MODE_UDP_TUNNEL,
            (ChildMode::Transport, false) => p2attr::MODE_UDP_TRANSPORT,
            (ChildMode::Tunnel, true) => p2attr::MODE_UDP_TUNNEL_DRAFT,
            (ChildMode::Transport, true) => p2attr::MODE_UDP_TRANSPORT_DRAFT,
        };
        assert_eq!(qm.len(), 2, "{what}");
        for (types, modes) in &qm {
            assert_eq!(modes, &vec![u64::from(expect_mode)], "{what}");
            let (oa, other_oa) = if draft { (NAT_OA_DRAFT, NAT_OA) } else { (NAT_OA, NAT_OA_DRAFT) };
            let n = if child == ChildMode::Transport { 2 } else { 0 };
            assert_eq!(types.iter().filter(|&&t| t == oa).count(), n, "{what}: {types:?}");
            assert!(!types.contains(&other_oa), "{what}");
        }
        // Both installed UDP-encapsulated SAs of the same keys.
        let udp = Encapsulation::new(child, true);
        let (a_in, a_out) = installs(&r.a_events)[0].clone();
        let (b_in, b_out) = installs(&r.b_events)[0].clone();
        for d in [&a_in, &a_out, &b_in, &b_out] {
            assert_eq!(d.encapsulation, udp, "{what}");
        }
        assert_eq!(a_out.spi, b_in.spi);
        assert_eq!(a_out.encryption_key, b_in.encryption_key);
        assert_eq!(b_out.destination, SocketAddr::new(NAT_PUBLIC, 4500 + NAT_PORT_OFFSET));
        if child == ChildMode::Transport {
            let oa = Some(NatOriginalAddresses { initiator: A, responder: B });
            assert_eq!((a_out.nat_original, b_in.nat_original), (oa, oa), "{what}");
        }
    }
}

#[test]
fn an_initiator_speaking_only_a_draft_gets_the_draft_numbers() {
    for v in [NatTVersion::Draft03, NatTVersion::Draft02, NatTVersion::Draft02Newline] {
        check_dialect(&[v], &NatTVersion::ALL, true, v.vendor_id());
    }
}

#[test]
fn a_responder_speaking_only_a_draft_gets_the_draft_numbers() {
    for v in [NatTVersion::Draft03, NatTVersion::Draft02, NatTVersion::Draft02Newline] {
        check_dialect(&NatTVersion::ALL, &[v], true, v.vendor_id());
    }
}

#[test]
fn a_peer_offering_rfc_3947_and_drafts_gets_rfc_3947() {
    check_dialect(&NatTVersion::ALL, &NatTVersion::ALL, false, &phase1::VID_NAT_T_RFC3947);
    // The initiator announces every dialect, RFC 3947 first.
    let mut keep = untouched();
    let r = run(&NatTVersion::ALL, &NatTVersion::ALL, Phase1Mode::Main, ChildMode::Tunnel, &mut keep);
    let sent: Vec<Vec<u8>> = vendor_ids_from(&r, NAT_PUBLIC)
        .into_iter()
        .filter(|v| v.as_slice() != phase1::VID_DPD.as_slice())
        .collect();
    let all: Vec<Vec<u8>> = NatTVersion::ALL.iter().map(|n| n.vendor_id().to_vec()).collect();
    assert_eq!(sent, all);
    // Of two drafts the more recent wins.
    check_dialect(
        &[NatTVersion::Draft02, NatTVersion::Draft03],
        &NatTVersion::ALL,
        true,
        &phase1::VID_NAT_T_DRAFT_03,
    );
}

#[test]
fn no_common_dialect_means_no_nat_t() {
    let mut keep = untouched();
    let r =
        run(&[NatTVersion::Draft02], &[NatTVersion::Rfc3947], Phase1Mode::Main, ChildMode::Tunnel, &mut keep);
    // Without NAT-T the NAT'ed phase 1 still completes, on port 500, and ESP is not in UDP.
    assert!(!r.a.sas[0].nat_t && !r.b.sas[0].nat_t);
    assert!(plain_types(&r, B).concat().iter().all(|t| ![NAT_D, NAT_D_DRAFT].contains(t)));
    let (_, a_out) = installs(&r.a_events)[0].clone();
    assert_eq!(a_out.encapsulation, Encapsulation::Tunnel);
}

/// Offset of the generic header of the first payload of type `want` in an
/// ISAKMP message, and the offset of the byte that announces its type.
fn find_payload(msg: &[u8], want: u8) -> Option<(usize, usize)> {
    let mut announce = 16;
    let mut at = 28;
    let mut next = *msg.get(16)?;
    while next != 0 {
        if next == want {
            return Some((at, announce));
        }
        next = *msg.get(at)?;
        announce = at;
        let len = usize::from(u16::from_be_bytes([*msg.get(at + 2)?, *msg.get(at + 3)?]));
        at += len.max(4);
    }
    None
}

/// Applies `edit` to A's Main Mode message 3 (the first with NAT-D).
fn tamper_mm3(edit: fn(&mut Vec<u8>, usize, usize)) -> impl FnMut(&mut Transmit) {
    move |t: &mut Transmit| {
        if t.source.ip() != NAT_PUBLIC || t.contents.len() < 28 {
            return;
        }
        let Some((at, announce)) = find_payload(&t.contents, NAT_D_DRAFT) else {
            return;
        };
        edit(&mut t.contents, at, announce);
    }
}

/// Runs `e`'s timers to the end (every retransmission given up); its events.
fn expire(e: &mut Engine) -> Vec<Event> {
    while let Some(t) = e.poll_timeout() {
        e.handle_timeout(t);
        while e.poll_transmit().is_some() {}
    }
    core::iter::from_fn(|| e.poll_event()).collect()
}

#[test]
fn a_malformed_or_unknown_nat_d_is_a_clean_error() {
    // A NAT-D hash shorter than the negotiated hash (SHA-256): the payload and
    // message lengths shrink together, so only the engine can object.
    let mut short = tamper_mm3(|m, at, _| {
        m.drain(at + 4..at + 8);
        let len = u16::from_be_bytes([m[at + 2], m[at + 3]]) - 4;
        m[at + 2..at + 4].copy_from_slice(&len.to_be_bytes());
        let total = u32::try_from(m.len()).unwrap();
        m[24..28].copy_from_slice(&total.to_be_bytes());
    });
    let mut r =
        run(&[NatTVersion::Draft03], &NatTVersion::ALL, Phase1Mode::Main, ChildMode::Tunnel, &mut short);
    // Message 3 is unauthenticated: B discards it, counted, and waits for a
    // good one; it tells A nothing, so A waits too.
    assert_eq!(failures(&r.b_events), vec![]);
    assert_eq!(failures(&r.a_events), vec![]);
    assert_eq!(r.b.stats().discarded_malformed, 1);
    assert_eq!(r.b.ike_sas().iter().map(|s| s.state).collect::<Vec<_>>(), ["MmRSentSa"]);
    assert!(installs(&r.b_events).is_empty() && installs(&r.a_events).is_empty());
    // When its retransmissions run out, B names the reason and tells A.
    let b_events = expire(&mut r.b);
    assert_eq!(failures(&b_events), vec![Error::PeerMisbehaved(PeerMisbehaved::MalformedNatDiscovery)]);
    assert_eq!(r.b.ike_sa_count(), 0);

    // A payload number neither RFC 3947 nor the drafts use: a decode error.
    let mut unknown = tamper_mm3(|m, _, announce| m[announce] = 133);
    let mut r =
        run(&[NatTVersion::Draft03], &NatTVersion::ALL, Phase1Mode::Main, ChildMode::Tunnel, &mut unknown);
    assert_eq!(failures(&r.b_events), vec![]);
    assert_eq!(r.b.stats().discarded_malformed, 1);
    let b_events = expire(&mut r.b);
    assert_eq!(
        failures(&b_events),
        vec![Error::Malformed(crate::msgs::DecodeError::UnknownPayloadType(133))]
    );
    assert!(installs(&r.b_events).is_empty());
}

/// strongSwan's `encap = yes` without a NAT: the side that forces it sends a
/// NAT-D of no address of its own, so the other believes it is behind a NAT;
/// both float to 4500 and install UDP-encapsulated SAs, whichever side forces
/// it and in both phase-1 modes. Without it, the same pair stays on 500 with
/// plain ESP.
#[test]
fn forced_udp_encapsulation_without_a_nat() {
    let offer = [NatTVersion::Rfc3947];
    for mode in [Phase1Mode::Main, Phase1Mode::Aggressive] {
        for forcing in [None, Some('a'), Some('b')] {
            let what = format!("{mode:?}, forced by {forcing:?}");
            let (mut pa, mut pb) = (peer(A, B, mode, ChildMode::Tunnel), peer(B, A, mode, ChildMode::Tunnel));
            pa.force_encap = forcing == Some('a');
            pb.force_encap = forcing == Some('b');
            let mut keep = untouched();
            let r = run_between(pa, pb, &offer, &offer, false, &mut keep);
            assert_eq!((failures(&r.a_events), failures(&r.b_events)), (vec![], vec![]), "{what}");
            let (sa_a, sa_b) = (&r.a.sas[0], &r.b.sas[0]);
            let (a_fakes, b_fakes) = (forcing == Some('a'), forcing == Some('b'));
            assert_eq!(sa_a.nat, NatStatus { local_behind: a_fakes, remote_behind: b_fakes }, "{what}");
            assert_eq!(sa_b.nat, NatStatus { local_behind: b_fakes, remote_behind: a_fakes }, "{what}");
            let port = if forcing.is_some() { 4500 } else { 500 };
            assert_eq!((sa_a.local.port(), sa_a.remote.port()), (port, port), "{what}");
            assert_eq!(sa_b.remote, SocketAddr::new(A, port), "{what}");
            let want = Encapsulation::new(ChildMode::Tunnel, forcing.is_some());
            let (a_in, a_out) = installs(&r.a_events)[0].clone();
            let (b_in, b_out) = installs(&r.b_events)[0].clone();
            for d in [&a_in, &a_out, &b_in, &b_out] {
                assert_eq!(d.encapsulation, want, "{what}");
            }
            assert_eq!((a_out.spi, b_out.destination), (b_in.spi, SocketAddr::new(A, port)), "{what}");
        }
    }
}
