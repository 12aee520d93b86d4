//! Hostile input on a live exchange: an on-path attacker who knows the
//! cookies (they are in the clear) but not the keys. A (initiator) and B
//! (responder) are stepped message by message, so a test decides what is
//! delivered when and injects its own datagrams in between.

use super::nat_t_tests::{engine, peer};
use super::phase1::NatTVersion;
use super::*;
use crate::msgs::{DeletePayload, NotifyPayload, NotifyType, ProtocolId, DOI_IPSEC};
use std::net::{IpAddr, Ipv4Addr};

const A: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
const B: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2));

struct Net {
    a: Engine,
    b: Engine,
    now: Instant,
    a_events: Vec<Event>,
    b_events: Vec<Event>,
}

impl Net {
    fn new(mode: Phase1Mode) -> Self {
        Self {
            a: engine(peer(A, B, mode, ChildMode::Tunnel), 1, &NatTVersion::ALL),
            b: engine(peer(B, A, mode, ChildMode::Tunnel), 2, &NatTVersion::ALL),
            now: Instant::now(),
            a_events: Vec::new(),
            b_events: Vec::new(),
        }
    }

    fn engine(&mut self, at: IpAddr) -> &mut Engine {
        if at == A {
            &mut self.a
        } else {
            &mut self.b
        }
    }

    fn events(&mut self) {
        self.a_events.extend(core::iter::from_fn(|| self.a.poll_event()));
        self.b_events.extend(core::iter::from_fn(|| self.b.poll_event()));
    }

    /// Everything the engine at `from` has to send.
    fn take(&mut self, from: IpAddr) -> Vec<Transmit> {
        let e = self.engine(from);
        let out = core::iter::from_fn(|| e.poll_transmit()).collect();
        self.events();
        out
    }

    fn deliver(&mut self, ts: &[Transmit]) {
        let now = self.now;
        for t in ts {
            self.engine(t.destination.ip()).handle_datagram(now, t.destination, t.source, &t.contents);
        }
        self.events();
    }

    /// A datagram from `from` (address and port) to the engine at `to`.
    fn inject(&mut self, from: SocketAddr, to: IpAddr, bytes: &[u8]) {
        let now = self.now;
        self.engine(to).handle_datagram(now, SocketAddr::new(to, 500), from, bytes);
        self.events();
    }

    /// Delivers until neither side has anything to send.
    fn settle(&mut self) {
        for _ in 0..64 {
            let mut ts = self.take(A);
            ts.extend(self.take(B));
            if ts.is_empty() {
                return;
            }
            self.deliver(&ts);
        }
        panic!("no end");
    }

    /// Moves the clock and runs both engines' timers.
    fn advance(&mut self, d: Duration) {
        self.now += d;
        let now = self.now;
        self.a.handle_timeout(now);
        self.b.handle_timeout(now);
        self.events();
    }

    fn cookies(&self) -> ([u8; 8], [u8; 8]) {
        self.b.ike_sas().first().map(|s| s.cookies).expect("B's IKE SA")
    }
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

fn count(events: &[Event], f: impl Fn(&Event) -> bool) -> usize {
    events.iter().filter(|e| f(e)).count()
}

fn is_install(e: &Event) -> bool {
    matches!(e, Event::InstallSa { .. })
}

fn header_of(t: &Transmit) -> Header {
    Header::parse(&t.contents, crate::msgs::DEFAULT_MAX_MESSAGE_LEN).expect("ISAKMP")
}

/// A datagram as anyone can make it: the cookies, an exchange, a message
/// id, a first payload type and a body; random bytes stand for ciphertext.
fn forge(
    cookies: ([u8; 8], [u8; 8]),
    exchange: ExchangeType,
    mid: u32,
    first: PayloadType,
    body: &[u8],
) -> Vec<u8> {
    forge_with(cookies, exchange, mid, first, true, body)
}

fn forge_plain(
    cookies: ([u8; 8], [u8; 8]),
    exchange: ExchangeType,
    first: PayloadType,
    body: &[u8],
) -> Vec<u8> {
    forge_with(cookies, exchange, 0, first, false, body)
}

fn forge_with(
    cookies: ([u8; 8], [u8; 8]),
    exchange: ExchangeType,
    mid: u32,
    first: PayloadType,
    encrypted: bool,
    body: &[u8],
) -> Vec<u8> {
    let h = Header {
        initiator_cookie: cookies.0,
        responder_cookie: cookies.1,
        next_payload: first,
        version: ISAKMP_VERSION,
        exchange_type: exchange,
        flags: if encrypted { FLAG_ENCRYPTION } else { 0 },
        message_id: mid,
        length: u32::try_from(HEADER_LEN + body.len()).unwrap(),
    };
    let mut out = Vec::new();
    h.emit(&mut out);
    out.extend_from_slice(body);
    out
}

/// An unprotected Informational with an error Notify.
fn plain_notify(cookies: ([u8; 8], [u8; 8]), n: NotifyType) -> Vec<u8> {
    let header = Header {
        initiator_cookie: cookies.0,
        responder_cookie: cookies.1,
        next_payload: PayloadType::NONE,
        version: ISAKMP_VERSION,
        exchange_type: ExchangeType::INFORMATIONAL,
        flags: 0,
        message_id: 0,
        length: 0,
    };
    let payloads = vec![Payload::Notify(NotifyPayload {
        doi: DOI_IPSEC,
        protocol: ProtocolId::ISAKMP,
        notify_type: n,
        spi: [cookies.0, cookies.1].concat(),
        data: Vec::new(),
    })];
    crate::msgs::Message { header, payloads }.emit()
}

/// A well-formed protected message of `e`'s IKE SA whose HASH is wrong
/// (only a test holds the keys to make one; it exercises the HASH check).
fn wrong_hash(e: &Engine, exchange: ExchangeType, mid: u32, rest: &[Payload]) -> Vec<u8> {
    let sa = e.sas.first().expect("IKE SA");
    let keys = sa.keys().expect("established");
    let mut iv = keys.phase2_iv(&sa.p1_iv, mid);
    let h = Engine::header(sa, exchange, mid, 0);
    encrypt_message(keys, &mut iv, h, &hashed_chain(vec![0x42; 32], rest)).expect("encrypts")
}

#[test]
fn forged_quick_mode_and_informational_messages_change_nothing() {
    let mut n = Net::new(Phase1Mode::Main);
    let now = n.now;
    n.a.handle_command(now, Command::Initiate { peer: 0 });
    // Phase 1, then QM1 to B; B's QM2 is held back.
    let qm2 = loop {
        let ts = n.take(A);
        n.deliver(&ts);
        let ts = n.take(B);
        if ts.iter().any(|t| header_of(t).exchange_type == ExchangeType::QUICK_MODE) {
            break ts;
        }
        n.deliver(&ts);
    };
    assert_eq!(n.b.ike_sas()[0].quick_modes, ["RSent2"]);
    let mid = header_of(&qm2[0]).message_id;
    let cookies = n.cookies();
    let from_a = SocketAddr::new(A, 500);
    let from_b = SocketAddr::new(B, 500);
    let random: Vec<u8> = (0..48u8).map(|i| i.wrapping_mul(73) ^ 0x5c).collect();
    // The Quick Mode's own message id: next payload NONE (no HASH once
    // decrypted), then garbage after decryption.
    n.inject(from_a, B, &forge(cookies, ExchangeType::QUICK_MODE, mid, PayloadType::NONE, &random));
    n.inject(from_a, B, &forge(cookies, ExchangeType::QUICK_MODE, mid, PayloadType::HASH, &random));
    // A new message 1 and Informationals with no HASH, to both sides.
    n.inject(from_a, B, &forge(cookies, ExchangeType::QUICK_MODE, 7, PayloadType::HASH, &random));
    n.inject(from_a, B, &forge(cookies, ExchangeType::INFORMATIONAL, 8, PayloadType::NONE, &random));
    n.inject(from_b, A, &forge(cookies, ExchangeType::INFORMATIONAL, 9, PayloadType::NONE, &random));
    // A well-formed message 1 whose HASH(1) is wrong.
    let nonce = Payload::Nonce(vec![1; 16]);
    n.inject(from_a, B, &wrong_hash(&n.b, ExchangeType::QUICK_MODE, 10, &[nonce]));
    // No answer (no PAYLOAD-MALFORMED), no event, the exchange as it was.
    assert!(n.take(B).is_empty() && n.take(A).is_empty());
    assert_eq!(failures(&n.b_events), vec![]);
    assert_eq!(count(&n.b_events, |e| matches!(e, Event::DeleteSa { .. })), 0);
    assert_eq!(n.b.ike_sas()[0].quick_modes, ["RSent2"]);
    assert_eq!(n.a.ike_sas()[0].quick_modes, ["ISent1"]);
    let (sa, sb) = (n.a.stats(), n.b.stats());
    assert_eq!((sb.discarded_malformed, sb.discarded_bad_hash, sb.auth_failed, sb.failed), (4, 1, 5, 0));
    assert_eq!((sa.discarded_malformed, sa.auth_failed, sa.failed), (1, 1, 0));
    // The genuine reply completes the Quick Mode on both sides.
    n.deliver(&qm2);
    settles_with_one_tunnel(&mut n);

    // A Delete of the child with a wrong HASH deletes nothing.
    let spi = n.b.ike_sas()[0].children[0].1;
    let delete = Payload::Delete(DeletePayload {
        doi: DOI_IPSEC,
        protocol: ProtocolId::ESP,
        spi_size: 4,
        spis: vec![spi.to_be_bytes().to_vec()],
    });
    n.inject(from_a, B, &wrong_hash(&n.b, ExchangeType::INFORMATIONAL, 11, &[delete]));
    assert_eq!(count(&n.b_events, |e| matches!(e, Event::DeleteSa { .. })), 0);
    assert_eq!(n.b.ike_sas()[0].children.len(), 1);
    assert_eq!(n.b.stats().discarded_bad_hash, 2);
    assert!(n.take(B).is_empty());
}

#[test]
fn only_an_authenticated_message_from_the_new_port_moves_the_peer() {
    let mut n = Net::new(Phase1Mode::Main);
    let now = n.now;
    let log = established(&mut n);
    let a_id = n.a.ike_sas()[0].id;
    // An authenticated Informational (DPD), delivered once.
    n.a.handle_command(now, Command::DeadPeerDetection(a_id));
    let dpd = n.take(A);
    n.deliver(&dpd);
    n.settle();
    let cookies = n.cookies();
    let moved = SocketAddr::new(A, 4501);
    let random: Vec<u8> = (0..32u8).map(|i| i.wrapping_mul(29)).collect();
    // From the same address, a new port: a replay of the authenticated DPD,
    // an Informational with a wrong HASH, an unprotected one, a late copy of
    // Main Mode message 5.
    n.inject(moved, B, &dpd[0].contents);
    let notify = Payload::Notify(NotifyPayload {
        doi: DOI_IPSEC,
        protocol: ProtocolId::ISAKMP,
        notify_type: NotifyType::R_U_THERE,
        spi: [cookies.0, cookies.1].concat(),
        data: vec![0, 0, 0, 9],
    });
    n.inject(moved, B, &wrong_hash(&n.b, ExchangeType::INFORMATIONAL, 12, &[notify]));
    n.inject(moved, B, &plain_notify(cookies, NotifyType::INVALID_PAYLOAD_TYPE));
    let mm5 = log.iter().find(|t| header_of(t).is_encrypted()).expect("MM5");
    n.inject(moved, B, &mm5.contents);
    n.inject(moved, B, &forge(cookies, ExchangeType::INFORMATIONAL, 13, PayloadType::HASH, &random));
    assert_eq!(n.b.ike_sas()[0].remote, SocketAddr::new(A, 500));
    assert_eq!(n.b.stats().peer_moved, 0);
    assert_eq!(n.b.stats().discarded_replay, 1);
    assert_eq!(count(&n.b_events, |e| matches!(e, Event::PeerMoved { .. })), 0);
    // Nothing answered the replayed probe (the copy of message 5 got its
    // copy of message 6, as any retransmission does).
    let answers = n.take(B);
    assert!(answers.iter().all(|t| header_of(t).exchange_type == ExchangeType::MAIN_MODE), "{answers:?}");
    assert_eq!(count(&n.a_events, |e| matches!(e, Event::DeadPeerDetectionAck { .. })), 1);
    // A new authenticated message from the new port moves the IKE SA.
    n.a.handle_command(now, Command::DeadPeerDetection(a_id));
    let mut dpd = n.take(A);
    dpd[0].source = moved;
    n.deliver(&dpd);
    assert_eq!(n.b.ike_sas()[0].remote, moved);
    assert_eq!(n.b.stats().peer_moved, 1);
    assert_eq!(count(&n.b_events, |e| matches!(e, Event::PeerMoved { .. })), 1);
}

#[test]
fn unauthenticated_notifies_and_bad_messages_do_not_end_a_half_open_phase_1() {
    let mut n = Net::new(Phase1Mode::Main);
    let now = n.now;
    n.a.handle_command(now, Command::Initiate { peer: 0 });
    let from_a = SocketAddr::new(A, 500);
    let from_b = SocketAddr::new(B, 500);
    let mm1 = n.take(A);
    n.deliver(&mm1);
    let mm2 = n.take(B);
    let cookies = n.cookies();
    // Before MM2: an error notify in the clear and a garbage MM2 to A.
    n.inject(from_b, A, &plain_notify(cookies, NotifyType::NO_PROPOSAL_CHOSEN));
    n.inject(from_b, A, &forge_plain(cookies, ExchangeType::MAIN_MODE, PayloadType::SA, &[0, 0, 0, 5, 1]));
    n.deliver(&mm2);
    let mm3 = n.take(A);
    // Before MM3: a message 3 without KE and nonce, and an error notify, to B.
    n.inject(from_a, B, &forge_plain(cookies, ExchangeType::MAIN_MODE, PayloadType::NONE, &[]));
    n.inject(from_a, B, &plain_notify(cookies, NotifyType::AUTHENTICATION_FAILED));
    n.deliver(&mm3);
    let mm4 = n.take(B);
    n.deliver(&mm4);
    let mm5 = n.take(A);
    // Before MM5: an encrypted message 5 that decrypts to garbage.
    let random: Vec<u8> = (0..64u8).map(|i| i.wrapping_mul(151) ^ 0x33).collect();
    n.inject(from_a, B, &forge(cookies, ExchangeType::MAIN_MODE, 0, PayloadType::ID, &random));
    assert!(n.take(B).is_empty() && n.take(A).is_empty());
    assert_eq!(n.b.ike_sas()[0].state, "MmRSentKe");
    assert_eq!(n.a.ike_sas()[0].state, "MmISentAuth");
    n.deliver(&mm5);
    settles_with_one_tunnel(&mut n);
    let (sa, sb) = (n.a.stats(), n.b.stats());
    assert_eq!((sa.discarded_unauthenticated_notify, sa.discarded_malformed), (1, 1));
    assert_eq!(
        (sb.discarded_unauthenticated_notify, sb.discarded_malformed, sb.discarded_bad_hash),
        (1, 1, 1)
    );
    assert_eq!(sa.failed + sb.failed, 0);
}

#[test]
fn a_half_open_phase_1_that_times_out_reports_the_notify_it_got() {
    let mut n = Net::new(Phase1Mode::Main);
    let now = n.now;
    n.a.handle_command(now, Command::Initiate { peer: 0 });
    let mm1 = n.take(A);
    n.deliver(&mm1);
    let _lost_mm2 = n.take(B);
    let cookies = n.cookies();
    n.inject(SocketAddr::new(B, 500), A, &plain_notify(cookies, NotifyType::NO_PROPOSAL_CHOSEN));
    assert_eq!(failures(&n.a_events), vec![]);
    assert_eq!(n.a.ike_sa_count(), 1);
    for _ in 0..200 {
        n.advance(Duration::from_secs(1));
        let _ = n.take(A);
    }
    assert_eq!(failures(&n.a_events), vec![Error::PeerNotified(NotifyType::NO_PROPOSAL_CHOSEN)]);
    assert_eq!(n.a.ike_sa_count(), 0);
}

/// Lets the exchanges finish: no failure on either side, one SA pair installed at each.
fn settles_with_one_tunnel(n: &mut Net) {
    n.settle();
    assert_eq!(failures(&n.a_events), vec![]);
    assert_eq!(failures(&n.b_events), vec![]);
    assert_eq!((count(&n.a_events, is_install), count(&n.b_events, is_install)), (1, 1));
}

/// Runs phase 1 and the first Quick Mode; every datagram A sent.
fn established(n: &mut Net) -> Vec<Transmit> {
    let now = n.now;
    n.a.handle_command(now, Command::Initiate { peer: 0 });
    let mut log = Vec::new();
    for _ in 0..8 {
        let ts = n.take(A);
        log.extend(ts.clone());
        n.deliver(&ts);
        let ts = n.take(B);
        n.deliver(&ts);
    }
    assert_eq!((count(&n.a_events, is_install), count(&n.b_events, is_install)), (1, 1));
    log
}

#[test]
fn a_replayed_quick_mode_message_1_or_informational_is_refused() {
    let mut n = Net::new(Phase1Mode::Main);
    let log = established(&mut n);
    let qm1 =
        log.iter().find(|t| header_of(t).exchange_type == ExchangeType::QUICK_MODE).expect("QM1").clone();
    // Long after the exchange stopped lingering, its message 1 again.
    n.advance(Duration::from_secs(600));
    let inbound_before = count(&n.b_events, |e| matches!(e, Event::InstallInbound { .. }));
    n.deliver(std::slice::from_ref(&qm1));
    assert_eq!(count(&n.b_events, |e| matches!(e, Event::InstallInbound { .. })), inbound_before);
    assert!(n.take(B).is_empty());
    assert_eq!(n.b.ike_sas()[0].quick_modes, Vec::<&str>::new());
    assert_eq!(n.b.stats().discarded_replay, 1);
    // An Informational (DPD) delivered twice is answered once.
    let id = n.a.ike_sas()[0].id;
    let now = n.now;
    n.a.handle_command(now, Command::DeadPeerDetection(id));
    let dpd = n.take(A);
    n.deliver(&dpd);
    n.deliver(&dpd);
    assert_eq!(n.take(B).len(), 1);
    assert_eq!(n.b.stats().discarded_replay, 2);
}

#[test]
fn the_unfinished_responder_quick_mode_limit_is_counted_and_retried() {
    let mut n = Net::new(Phase1Mode::Main);
    n.b.config.max_quick_modes_per_sa = 2;
    let _ = established(&mut n);
    let id = n.a.ike_sas()[0].id;
    let now = n.now;
    for _ in 0..3 {
        n.a.handle_command(now, Command::CreateChild(id));
    }
    // B's own Quick Mode (initiator) does not count against the limit.
    let b_id = n.b.ike_sas()[0].id;
    n.b.handle_command(now, Command::CreateChild(b_id));
    let b_qm1 = n.take(B);
    let qm1s = n.take(A);
    assert_eq!(qm1s.len(), 3);
    n.deliver(&qm1s);
    let replies = n.take(B);
    assert_eq!(replies.len(), 2);
    assert_eq!(n.b.stats().discarded_quick_mode_limit, 1);
    // The refused one is not remembered: its retransmission, once the
    // others finished, is taken.
    n.deliver(&replies);
    n.deliver(&b_qm1);
    n.settle();
    n.advance(Duration::from_millis(600));
    n.settle();
    assert_eq!(failures(&n.a_events), vec![]);
    assert_eq!(failures(&n.b_events), vec![]);
    assert_eq!((count(&n.a_events, is_install), count(&n.b_events, is_install)), (5, 5));
    assert_eq!(n.b.stats().discarded_replay, 0);
}

#[test]
fn seen_message_ids_are_bounded_oldest_first() {
    let mut s = SeenIds::default();
    for m in 1..=SeenIds::CAPACITY as u32 + 1 {
        s.insert(m);
    }
    assert!(!s.contains(1));
    assert!(s.contains(2) && s.contains(SeenIds::CAPACITY as u32 + 1));
    assert_eq!(s.order.len(), SeenIds::CAPACITY);
    // A second insert of a known id changes nothing.
    s.insert(2);
    assert!(s.contains(2) && s.contains(3));
}

#[test]
fn unauthenticated_notifies_and_bad_messages_do_not_end_a_half_open_aggressive_mode() {
    let mut n = Net::new(Phase1Mode::Aggressive);
    let now = n.now;
    n.a.handle_command(now, Command::Initiate { peer: 0 });
    let (from_a, from_b) = (SocketAddr::new(A, 500), SocketAddr::new(B, 500));
    let am1 = n.take(A);
    n.deliver(&am1);
    let am2 = n.take(B);
    let cookies = n.cookies();
    // Before AM2: an error notify in the clear and an AM2 that does not decode.
    n.inject(from_b, A, &plain_notify(cookies, NotifyType::AUTHENTICATION_FAILED));
    n.inject(from_b, A, &forge_plain(cookies, ExchangeType::AGGRESSIVE, PayloadType::SA, &[0, 0, 0, 5, 1]));
    assert_eq!(n.a.ike_sas()[0].state, "AmISent1");
    n.deliver(&am2);
    let am3_and_qm1 = n.take(A);
    // Before AM3: an AM3 that decrypts to garbage and an error notify, to B.
    let random: Vec<u8> = (0..48u8).map(|i| i.wrapping_mul(97) ^ 0x21).collect();
    n.inject(from_a, B, &forge(cookies, ExchangeType::AGGRESSIVE, 0, PayloadType::HASH, &random));
    n.inject(from_a, B, &plain_notify(cookies, NotifyType::INVALID_ID_INFORMATION));
    assert!(n.take(B).is_empty());
    assert_eq!(n.b.ike_sas()[0].state, "AmRSent2");
    n.deliver(&am3_and_qm1);
    settles_with_one_tunnel(&mut n);
    let (sa, sb) = (n.a.stats(), n.b.stats());
    assert_eq!((sa.discarded_unauthenticated_notify, sa.discarded_malformed), (1, 1));
    assert_eq!((sb.discarded_unauthenticated_notify, sb.discarded_bad_hash), (1, 1));
}

/// A and B with signature authentication: in-process P-256 keys and no
/// certificates, so whatever CERT a message carries decides its fate.
fn signature_net() -> Net {
    use super::config::{PublicKeyAuth, SendCert};
    use rand_chacha::rand_core::SeedableRng;
    let auth = |seed: u64| {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(seed);
        let key = crate::auth::PrivateKey::EcdsaP256(p256::ecdsa::SigningKey::random(&mut rng));
        AuthMethod::PublicKey(std::sync::Arc::new(PublicKeyAuth {
            certificates: Vec::new(),
            private_key: key,
            trust: crate::pki::TrustStore::default(),
            send_cert: SendCert::Never,
            send_certreq: true,
        }))
    };
    let mut n = Net::new(Phase1Mode::Aggressive);
    for (e, seed) in [(&mut n.a, 7), (&mut n.b, 8)] {
        if let Some(p) = e.config.peers.first_mut() {
            p.auth = auth(seed);
        }
        e.set_wall_clock(n.now, std::time::SystemTime::now());
    }
    n
}

/// `t` with its payloads changed by `f`, re-emitted (a forger's copy).
fn rewrite(t: &Transmit, f: impl FnOnce(&mut Vec<Payload>)) -> Vec<u8> {
    let mut m =
        crate::msgs::Message::parse(&t.contents, crate::msgs::DEFAULT_MAX_MESSAGE_LEN).expect("plain");
    f(&mut m.payloads);
    m.emit()
}

#[test]
fn garbage_truncated_and_huge_cert_certreq_and_sig_payloads_are_counted_drops() {
    use crate::msgs::{CertPayload, CERT_X509_SIGNATURE};
    use crate::pki::CertError;
    let mut n = signature_net();
    let now = n.now;
    n.a.handle_command(now, Command::Initiate { peer: 0 });
    let from_b = SocketAddr::new(B, 500);
    let am1 = n.take(A);
    // AM1 with a CERTREQ of garbage: only its presence means anything.
    let junk_certreq = rewrite(&am1[0], |p| {
        p.push(Payload::CertReq(CertPayload { encoding: CERT_X509_SIGNATURE, data: vec![0xff; 300] }))
    });
    n.inject(SocketAddr::new(A, 500), B, &junk_certreq);
    let am2 = n.take(B);
    assert_eq!(am2.len(), 1, "B answers the first message");
    let cert = |data: Vec<u8>| Payload::Cert(CertPayload { encoding: CERT_X509_SIGNATURE, data });
    let mut truncated = vec![0x30, 0x82, 0x04, 0x00, 0x30, 0x82, 0x03, 0xf0, 0xa0, 0x03];
    truncated.resize(64, 0);
    let forgeries: Vec<(Vec<u8>, Option<CertError>)> = vec![
        (rewrite(&am2[0], |p| p.insert(4, cert(b"not DER at all".to_vec()))), Some(CertError::Malformed)),
        (rewrite(&am2[0], |p| p.insert(4, cert(truncated))), Some(CertError::Malformed)),
        (rewrite(&am2[0], |p| p.insert(4, cert(vec![0x30; 15_000]))), Some(CertError::Malformed)),
        (
            rewrite(&am2[0], |p| p.insert(4, Payload::Cert(CertPayload { encoding: 2, data: vec![1; 8] }))),
            Some(CertError::UnsupportedAlgorithm),
        ),
        // A SIG of garbage and no CERT: no certificate to check it with.
        (
            rewrite(&am2[0], |p| {
                for q in p.iter_mut() {
                    if let Payload::Sig(s) = q {
                        *s = vec![0x5a; 3];
                    }
                }
            }),
            Some(CertError::NoCertificate),
        ),
        // Past max_message_len: not even parsed.
        (rewrite(&am2[0], |p| p.insert(4, cert(vec![0x30; 40_000]))), None),
    ];
    for (i, (bytes, reason)) in forgeries.iter().enumerate() {
        let before = n.a.stats();
        n.inject(from_b, A, bytes);
        let after = n.a.stats();
        match reason {
            Some(r) => {
                let counted = |mut s: EngineStats| *s.cert_refused(*r);
                assert_eq!(counted(after), counted(before) + 1, "forgery {i}: {r:?}");
                assert_eq!(after.discarded_certificate, before.discarded_certificate + 1, "forgery {i}");
            }
            None => assert_eq!(after.dropped_malformed, before.dropped_malformed + 1, "forgery {i}"),
        }
        assert!(n.take(A).is_empty(), "forgery {i} answered");
        assert_eq!(n.a.ike_sas()[0].state, "AmISent1", "forgery {i}");
    }
    assert!(failures(&n.a_events).is_empty() && failures(&n.b_events).is_empty());
}
