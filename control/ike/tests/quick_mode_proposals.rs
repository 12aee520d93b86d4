//! Quick Mode proposal choice, between two engines in memory with virtual time.
//!
//! Where our initiator cannot produce the shape under test (transforms we do not
//! implement, unknown attributes, AH or IPCOMP beside ESP), the Quick Mode messages pass
//! through a man in the middle that knows the phase-1 keys: it derives them as a peer
//! would (the initiator's RNG records its draws, the one whose X25519 public value is the
//! initiator's KE is its private value; `derive_phase1` gives SKEYID_a and the encryption
//! key, checked against the engine's key log). It replaces the SA payload of the
//! initiator's QM1, recomputes HASH(1) and re-encrypts every Quick Mode message with the
//! IV chain of the engine that receives it. Both engines then finish the exchange
//! themselves, so every case checks what BOTH ends installed.

use ike::crypto::{Cipher, DhGroup, DhSecret, HashAlgorithm};
use ike::engine::*;
use ike::keys::{derive_phase1, skeyid_psk, Phase1Keys};
use ike::msgs::{
    emit_chain, p2attr, parse_chain, Attribute, ExchangeType, Header, Message, NotifyType, Payload, Proposal,
    ProtocolId, SaPayload, Transform, DEFAULT_MAX_MESSAGE_LEN, HEADER_LEN,
};
use rand_chacha::rand_core::{CryptoRng, RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const A: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
const B: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2));
const PSK: &[u8] = b"proposals";

const GCM128: EspProposal =
    EspProposal { encryption: EspEncryption::AesGcm16(128), integrity: None, esn: false };
const GCM256: EspProposal =
    EspProposal { encryption: EspEncryption::AesGcm16(256), integrity: None, esn: false };
const GCM128_ESN: EspProposal = EspProposal { esn: true, ..GCM128 };
const CBC128_SHA1: EspProposal = EspProposal {
    encryption: EspEncryption::AesCbc(128),
    integrity: Some(EspIntegrity::HmacSha1),
    esn: false,
};
const CBC256_SHA256: EspProposal = EspProposal {
    encryption: EspEncryption::AesCbc(256),
    integrity: Some(EspIntegrity::HmacSha256),
    esn: false,
};

/// ESP transform IDs we do not implement (RFC 2407 §4.4.4).
const ESP_DES: u8 = 2;
const ESP_3DES: u8 = 3;
/// Not assigned by IANA.
const ESP_UNKNOWN: u8 = 250;
/// AUTH_ALGORITHM HMAC-MD5 (RFC 2407 §4.5), which we do not implement.
const AUTH_HMAC_MD5: u16 = 1;
/// An attribute type in the private-use range (RFC 2407 §4.5: 32001-32767).
const ATTR_PRIVATE: u16 = 32_001;

/// A seeded RNG that keeps a copy of every 32-byte draw (the X25519 private value is one).
struct RecordingRng {
    inner: ChaCha20Rng,
    draws: Arc<Mutex<Vec<[u8; 32]>>>,
}

impl RngCore for RecordingRng {
    fn next_u32(&mut self) -> u32 {
        self.inner.next_u32()
    }
    fn next_u64(&mut self) -> u64 {
        self.inner.next_u64()
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        self.inner.fill_bytes(dest);
        if let Ok(d) = <[u8; 32]>::try_from(&*dest) {
            self.draws.lock().unwrap().push(d);
        }
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_chacha::rand_core::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}
impl CryptoRng for RecordingRng {}

struct Spis(u32);
impl SpiAllocator for Spis {
    fn allocate(&mut self) -> Option<u32> {
        self.0 += 1;
        Some(self.0)
    }
    fn release(&mut self, _: u32) {}
}

/// One side's configuration: our ESP proposals in order, tunnel mode, no PFS.
fn peer(local: IpAddr, remote: IpAddr, ike: &[IkeProposal], esp: &[EspProposal], prefer: bool) -> PeerConfig {
    let net = |a: IpAddr| match a {
        IpAddr::V4(v) => TrafficSelector {
            address: TsAddress::Subnet(IpAddr::V4(Ipv4Addr::new(10, v.octets()[3], 0, 0)), 16),
            protocol: 0,
            port: 0,
        },
        IpAddr::V6(_) => TrafficSelector { address: TsAddress::Host(a), protocol: 0, port: 0 },
    };
    PeerConfig {
        name: format!("{remote}"),
        remote_address: remote,
        local_address: local,
        local_id: Identity::Address(local),
        remote_id: Identity::Address(remote),
        auth: AuthMethod::PreSharedKey(ike::crypto::Secret::new(PSK.to_vec())),
        mode: Phase1Mode::Main,
        accept_aggressive: false,
        ike_proposals: ike.to_vec(),
        ike_lifetime: Duration::from_secs(3600),
        child: ChildConfig {
            local_ts: net(local),
            remote_ts: net(remote),
            proposals: esp.to_vec(),
            mode: ChildMode::Tunnel,
            pfs_group: None,
            lifetime_seconds: 3600,
            lifetime_kilobytes: 0,
        },
        nat_traversal: true,
        force_encap: false,
        initial_contact: false,
        prefer_configured_proposals: prefer,
    }
}

/// A phase-1 proposal the man in the middle can derive keys for (any X25519 one).
const IKE_X25519: IkeProposal =
    IkeProposal { cipher: Cipher::Aes128Cbc, hash: HashAlgorithm::Sha256, group: DhGroup::Curve25519 };

fn engine(cfg: PeerConfig, seed: u64, spi_base: u32, draws: Arc<Mutex<Vec<[u8; 32]>>>) -> Engine {
    Engine::new(
        EngineConfig { peers: vec![cfg], ..EngineConfig::default() },
        Box::new(RecordingRng { inner: ChaCha20Rng::seed_from_u64(seed), draws }),
        Box::new(Spis(spi_base)),
    )
}

/// Rewrites the SA payload of the initiator's QM1.
type Rewrite = Box<dyn Fn(&SaPayload) -> SaPayload>;

/// The initiator (A) and the responder (B), and what passed between them.
struct Mitm {
    a: Engine,
    b: Engine,
    a_draws: Arc<Mutex<Vec<[u8; 32]>>>,
    now: Instant,
    rewrite: Option<Rewrite>,
    /// Main Mode datagrams as sent (true: from A).
    main_mode: Vec<(bool, Vec<u8>)>,
    keys: Option<(Phase1Keys, Vec<u8>)>,
    /// Per message id: the IV chain as A sees it, as B sees it.
    ivs: HashMap<u32, (Vec<u8>, Vec<u8>)>,
    /// The SA payloads of the Quick Mode messages, as each engine received them.
    qm1_sa: Vec<SaPayload>,
    qm2_sa: Vec<SaPayload>,
    a_events: Vec<Event>,
    b_events: Vec<Event>,
}

impl Mitm {
    fn new(a_cfg: PeerConfig, b_cfg: PeerConfig, rewrite: Option<Rewrite>) -> Self {
        let draws = Arc::new(Mutex::new(Vec::new()));
        Self {
            a: engine(a_cfg, 1, 0x1000, draws.clone()),
            b: engine(b_cfg, 2, 0x2000, Arc::new(Mutex::new(Vec::new()))),
            a_draws: draws,
            now: Instant::now(),
            rewrite,
            main_mode: Vec::new(),
            keys: None,
            ivs: HashMap::new(),
            qm1_sa: Vec::new(),
            qm2_sa: Vec::new(),
            a_events: Vec::new(),
            b_events: Vec::new(),
        }
    }

    /// A initiates; datagrams go back and forth until both are quiet.
    fn run(mut self) -> Self {
        let now = self.now;
        self.a.handle_command(now, Command::Initiate { peer: 0 });
        for _ in 0..200 {
            if let Some(t) = self.a.poll_transmit() {
                let d = self.relay(true, t.contents);
                self.b.handle_datagram(self.now, t.destination, t.source, &d);
            } else if let Some(t) = self.b.poll_transmit() {
                let d = self.relay(false, t.contents);
                self.a.handle_datagram(self.now, t.destination, t.source, &d);
            } else {
                break;
            }
            self.now += Duration::from_millis(5);
            while let Some(e) = self.a.poll_event() {
                self.a_events.push(e);
            }
            while let Some(e) = self.b.poll_event() {
                self.b_events.push(e);
            }
        }
        self
    }

    /// What the other engine gets for a datagram one engine sent.
    fn relay(&mut self, from_a: bool, d: Vec<u8>) -> Vec<u8> {
        let Ok(h) = Header::parse(&d, DEFAULT_MAX_MESSAGE_LEN) else { return d };
        if h.exchange_type == ExchangeType::MAIN_MODE {
            self.main_mode.push((from_a, d.clone()));
            return d;
        }
        if h.exchange_type != ExchangeType::QUICK_MODE || !h.is_encrypted() {
            return d;
        }
        let (keys, last_block) =
            self.keys.get_or_insert_with(|| derive_keys(&self.a, &self.main_mode, &self.a_draws));
        let first = keys.phase2_iv(last_block, h.message_id);
        let (iv_a, iv_b) = self.ivs.entry(h.message_id).or_insert_with(|| (first.clone(), first));
        let (iv_in, iv_out) = if from_a { (iv_a, iv_b) } else { (iv_b, iv_a) };
        let mut plain = d[HEADER_LEN..].to_vec();
        keys.cipher.decrypt(&keys.encryption_key, iv_in, &mut plain).expect("Quick Mode decrypts");
        *iv_in = d[d.len() - 16..].to_vec();
        let raws = parse_chain(h.next_payload, &plain, true).expect("Quick Mode parses");
        let mut payloads: Vec<Payload> = raws.into_iter().map(|r| r.payload).collect();
        let mut header = h;
        let mut rewritten = false;
        if let Some(Payload::Sa(sa)) = payloads.iter_mut().find(|p| matches!(p, Payload::Sa(_))) {
            if from_a {
                if let Some(rewrite) = &self.rewrite {
                    *sa = rewrite(sa);
                    rewritten = true;
                }
                self.qm1_sa.push(sa.clone());
            } else {
                self.qm2_sa.push(sa.clone());
            }
        }
        if rewritten {
            // RFC 2409 §5.5: HASH(1) = prf(SKEYID_a, M-ID | everything after HASH).
            let (_, rest) = emit_chain(&payloads[1..]);
            payloads[0] = Payload::Hash(keys.hash1(h.message_id, &rest).to_vec());
            let (next, body) = emit_chain(&payloads);
            header.next_payload = next;
            plain = body;
            plain.resize(plain.len().div_ceil(16) * 16, 0);
        }
        keys.cipher.encrypt(&keys.encryption_key, iv_out, &mut plain).expect("encrypts");
        *iv_out = plain[plain.len() - 16..].to_vec();
        header.length = u32::try_from(HEADER_LEN + plain.len()).unwrap();
        let mut out = Vec::new();
        header.emit(&mut out);
        out.extend_from_slice(&plain);
        out
    }
}

/// The phase-1 keys, from the Main Mode exchange and A's recorded draws, checked against
/// A's key log; and the last ciphertext block of phase 1.
fn derive_keys(a: &Engine, log: &[(bool, Vec<u8>)], draws: &Mutex<Vec<[u8; 32]>>) -> (Phase1Keys, Vec<u8>) {
    let (mut gxi, mut gxr, mut ni, mut nr) = (None, None, None, None);
    let mut last_block = Vec::new();
    for (from_a, d) in log {
        let h = Header::parse(d, DEFAULT_MAX_MESSAGE_LEN).expect("Main Mode header");
        if h.is_encrypted() {
            last_block = d[d.len() - 16..].to_vec();
            continue;
        }
        for p in Message::parse(d, DEFAULT_MAX_MESSAGE_LEN).expect("Main Mode parses").payloads {
            match (p, from_a) {
                (Payload::Ke(k), true) => gxi = Some(k),
                (Payload::Ke(k), false) => gxr = Some(k),
                (Payload::Nonce(n), true) => ni = Some(n),
                (Payload::Nonce(n), false) => nr = Some(n),
                _ => {}
            }
        }
    }
    let (gxi, gxr, ni, nr) = (gxi.unwrap(), gxr.unwrap(), ni.unwrap(), nr.unwrap());
    let private = draws
        .lock()
        .unwrap()
        .iter()
        .find_map(|d| {
            DhSecret::from_private_bytes(DhGroup::Curve25519, d).ok().filter(|s| s.public_value() == &gxi[..])
        })
        .expect("the initiator's X25519 private value is one of its draws");
    let gxy = private.agree(&gxr).expect("agreement");
    let sa = a.ike_sas().into_iter().find(|s| s.established).expect("phase 1 completed");
    let chosen = sa.proposal.expect("a chosen proposal");
    assert_eq!(chosen.group, DhGroup::Curve25519, "the derivation needs X25519");
    let keys = derive_phase1(
        chosen.hash,
        chosen.cipher,
        skeyid_psk(chosen.hash, PSK, &ni, &nr),
        &gxy,
        &sa.cookies.0,
        &sa.cookies.1,
        &gxi,
        &gxr,
    );
    let (_, enc) = a.keylog_ike_sa(sa.id).expect("key log");
    assert_eq!(&keys.encryption_key[..], &enc[..], "derived phase-1 key matches the engine's");
    (keys, last_block)
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

/// Both ends installed one pair with `want`: the same keys each way, of the right lengths.
fn assert_installed(m: &Mitm, want: EspProposal) {
    assert_eq!(failures(&m.a_events), vec![], "initiator");
    assert_eq!(failures(&m.b_events), vec![], "responder");
    let (ia, ib) = (installs(&m.a_events), installs(&m.b_events));
    assert_eq!((ia.len(), ib.len()), (1, 1), "one pair on each side");
    let ((a_in, a_out), (b_in, b_out)) = (&ia[0], &ib[0]);
    assert_eq!(a_out, b_in, "A's outbound is B's inbound");
    assert_eq!(a_in, b_out, "B's outbound is A's inbound");
    for sa in [a_in, a_out, b_in, b_out] {
        assert_eq!((sa.encryption, sa.integrity, sa.esn), (want.encryption, want.integrity, want.esn));
        assert_eq!(sa.encryption_key.len(), want.encryption.key_len());
        assert_eq!(sa.salt.len(), want.encryption.salt_len());
        assert_eq!(sa.integrity_key.len(), want.integrity.map_or(0, |i| i.key_len()));
    }
    assert_ne!(*a_in.encryption_key, *a_out.encryption_key);
}

/// The responder's answer: one proposal with one transform; returns their numbers.
fn answered(m: &Mitm) -> (u8, u8, u8) {
    assert_eq!(m.qm2_sa.len(), 1, "one QM2");
    let [p] = m.qm2_sa[0].proposals.as_slice() else { panic!("one proposal: {:?}", m.qm2_sa[0]) };
    let [t] = p.transforms.as_slice() else { panic!("one transform: {p:?}") };
    assert_eq!(p.protocol, ProtocolId::ESP);
    (p.number, t.number, t.transform_id)
}

/// A transform like `base` (its lifetime and encapsulation attributes) with another
/// transform ID, key length and integrity.
fn like(base: &Transform, number: u8, id: u8, bits: Option<u16>, auth: Option<u16>) -> Transform {
    let mut attributes: Vec<Attribute> = base
        .attributes
        .iter()
        .filter(|a| !matches!(a.kind, p2attr::KEY_LENGTH | p2attr::AUTH_ALGORITHM))
        .cloned()
        .collect();
    if let Some(a) = auth {
        attributes.push(Attribute::basic(p2attr::AUTH_ALGORITHM, a));
    }
    if let Some(b) = bits {
        attributes.push(Attribute::basic(p2attr::KEY_LENGTH, b));
    }
    Transform { number, transform_id: id, attributes }
}

fn cbc(base: &Transform, number: u8, bits: u16, auth: u16) -> Transform {
    like(base, number, p2attr::ESP_AES_CBC, Some(bits), Some(auth))
}

fn gcm(base: &Transform, number: u8, bits: u16) -> Transform {
    like(base, number, p2attr::ESP_AES_GCM_16, Some(bits), None)
}

/// Transforms none of our configurations accept, of every kind the responder must pass
/// over one by one: unimplemented transform IDs, unsupported key lengths or integrity,
/// an unknown attribute, a PFS group nobody asked for, the wrong mode, GCM with an
/// integrity algorithm, CBC without one. Key lengths and integrity are valid for the
/// algorithm where that matters (AES-192 is implemented but configured by neither side).
fn unacceptable(base: &Transform) -> Vec<Transform> {
    // AES-GCM-128 is what both ends configure: each variant below differs from an
    // acceptable transform in one thing only.
    let mut unknown_attr = gcm(base, 0, 128);
    unknown_attr.attributes.insert(0, Attribute::basic(ATTR_PRIVATE, 7));
    let mut with_group = gcm(base, 0, 128);
    with_group.attributes.push(Attribute::basic(p2attr::GROUP_DESCRIPTION, DhGroup::Modp2048.id()));
    let mut transport = gcm(base, 0, 128);
    for a in &mut transport.attributes {
        if a.kind == p2attr::ENCAPSULATION_MODE {
            *a = Attribute::basic(p2attr::ENCAPSULATION_MODE, p2attr::MODE_TRANSPORT);
        }
    }
    // A life type RFC 2407 §4.5 does not define, with its duration.
    let mut unknown_value = gcm(base, 0, 128);
    unknown_value.attributes.splice(
        0..0,
        [Attribute::basic(p2attr::LIFE_TYPE, 9), Attribute::duration(p2attr::LIFE_DURATION, 100)],
    );
    vec![
        like(base, 0, ESP_3DES, None, Some(p2attr::AUTH_HMAC_SHA1)),
        like(base, 0, ESP_DES, None, Some(AUTH_HMAC_MD5)),
        like(base, 0, ESP_UNKNOWN, Some(128), Some(p2attr::AUTH_HMAC_SHA2_256)),
        cbc(base, 0, 192, p2attr::AUTH_HMAC_SHA1),
        gcm(base, 0, 192),
        unknown_attr,
        cbc(base, 0, 256, AUTH_HMAC_MD5),
        cbc(base, 0, 512, p2attr::AUTH_HMAC_SHA2_256),
        like(base, 0, p2attr::ESP_AES_CBC, None, Some(p2attr::AUTH_HMAC_SHA2_256)),
        like(base, 0, p2attr::ESP_AES_GCM_16, Some(128), Some(p2attr::AUTH_HMAC_SHA1)),
        like(base, 0, p2attr::ESP_AES_CBC, Some(256), None),
        with_group,
        transport,
        unknown_value,
        cbc(base, 0, 256, p2attr::AUTH_HMAC_SHA2_512),
    ]
}

/// The engine's own (genuine) first transform, to copy lifetimes and mode from.
fn base_of(sa: &SaPayload) -> Transform {
    sa.proposals[0].transforms[0].clone()
}

/// One ESP proposal: `transforms` renumbered 1.. in order, with the initiator's SPI.
fn one_proposal(sa: &SaPayload, number: u8, transforms: Vec<Transform>) -> Proposal {
    let transforms = transforms.into_iter().zip(1u8..).map(|(t, n)| Transform { number: n, ..t }).collect();
    Proposal { number, protocol: ProtocolId::ESP, spi: sa.proposals[0].spi.clone(), transforms }
}

fn with_proposals(sa: &SaPayload, proposals: Vec<Proposal>) -> SaPayload {
    SaPayload { proposals, ..sa.clone() }
}

#[test]
fn our_initiator_sends_its_alternatives_as_transforms_of_one_proposal() {
    let ours = [CBC128_SHA1, GCM256, GCM128];
    let a = peer(A, B, &[IKE_X25519], &ours, false);
    let b = peer(B, A, &[IKE_X25519], &[GCM128, GCM256], false);
    let m = Mitm::new(a, b, None).run();
    let [p] = m.qm1_sa[0].proposals.as_slice() else { panic!("one proposal: {:?}", m.qm1_sa[0]) };
    assert_eq!((p.number, p.protocol, p.spi.len()), (1, ProtocolId::ESP, 4));
    let ids: Vec<(u8, u8)> = p.transforms.iter().map(|t| (t.number, t.transform_id)).collect();
    assert_eq!(ids, vec![(1, p2attr::ESP_AES_CBC), (2, p2attr::ESP_AES_GCM_16), (3, p2attr::ESP_AES_GCM_16)]);
    // The initiator's order: its second alternative is the first the responder accepts.
    assert_eq!(answered(&m), (1, 2, p2attr::ESP_AES_GCM_16));
    assert_installed(&m, GCM256);
}

#[test]
fn prefer_configured_proposals_both_ways_between_engines() {
    // (initiator's list, responder's list, responder prefers its own, chosen)
    let cases = [
        (vec![CBC128_SHA1, GCM256, GCM128], vec![GCM128, GCM256], false, GCM256),
        (vec![CBC128_SHA1, GCM256, GCM128], vec![GCM128, GCM256], true, GCM128),
        (vec![GCM128, CBC256_SHA256], vec![CBC256_SHA256, GCM128], false, GCM128),
        (vec![GCM128, CBC256_SHA256], vec![CBC256_SHA256, GCM128], true, CBC256_SHA256),
        // One side's list alone: the choice is the same either way.
        (vec![GCM256], vec![CBC128_SHA1, GCM128, GCM256], true, GCM256),
        (vec![CBC128_SHA1, GCM128, GCM256], vec![GCM256], false, GCM256),
    ];
    for (i, (ours, theirs, prefer, want)) in cases.into_iter().enumerate() {
        let a = peer(A, B, &[IKE_X25519], &ours, false);
        let b = peer(B, A, &[IKE_X25519], &theirs, prefer);
        let m = Mitm::new(a, b, None).run();
        let (_, t, _) = answered(&m);
        let position = ours.iter().position(|p| *p == want).unwrap();
        assert_eq!(usize::from(t), position + 1, "case {i}: transform number as offered");
        assert_installed(&m, want);
    }
}

#[test]
fn one_to_sixteen_transforms_unacceptable_ones_first() {
    // n transforms in one proposal: n - 1 the responder cannot take, then AES-CBC-256 with
    // HMAC-SHA2-256; the responder must walk to the last one.
    for n in 1..=16usize {
        let rewrite: Rewrite = Box::new(move |sa| {
            let base = base_of(sa);
            let mut ts: Vec<Transform> = unacceptable(&base).into_iter().cycle().take(n - 1).collect();
            ts.push(cbc(&base, 0, 256, p2attr::AUTH_HMAC_SHA2_256));
            with_proposals(sa, vec![one_proposal(sa, 1, ts)])
        });
        let a = peer(A, B, &[IKE_X25519], &[GCM128, CBC256_SHA256], false);
        let b = peer(B, A, &[IKE_X25519], &[GCM128, CBC256_SHA256], false);
        let m = Mitm::new(a, b, Some(rewrite)).run();
        assert_eq!(m.qm1_sa[0].proposals[0].transforms.len(), n);
        assert_eq!(answered(&m), (1, u8::try_from(n).unwrap(), p2attr::ESP_AES_CBC), "{n} transforms");
        assert_installed(&m, CBC256_SHA256);
    }
}

/// Sixteen transforms: fourteen unacceptable ones with AES-CBC-256/SHA2-256 at 14 and
/// AES-GCM-128 at 16.
fn sixteen(sa: &SaPayload) -> SaPayload {
    let base = base_of(sa);
    let mut ts = unacceptable(&base);
    ts.truncate(14);
    ts.insert(13, cbc(&base, 0, 256, p2attr::AUTH_HMAC_SHA2_256));
    ts.push(gcm(&base, 0, 128));
    assert_eq!(ts.len(), 16);
    with_proposals(sa, vec![one_proposal(sa, 1, ts)])
}

#[test]
fn sixteen_transforms_in_the_initiators_order_by_default() {
    let a = peer(A, B, &[IKE_X25519], &[GCM128, CBC256_SHA256], false);
    let b = peer(B, A, &[IKE_X25519], &[GCM128, CBC256_SHA256], false);
    let m = Mitm::new(a, b, Some(Box::new(sixteen))).run();
    assert_eq!(answered(&m), (1, 14, p2attr::ESP_AES_CBC));
    assert_installed(&m, CBC256_SHA256);
}

#[test]
fn sixteen_transforms_in_our_order_with_prefer_configured_proposals() {
    let a = peer(A, B, &[IKE_X25519], &[GCM128, CBC256_SHA256], false);
    let b = peer(B, A, &[IKE_X25519], &[GCM128, CBC256_SHA256], true);
    let m = Mitm::new(a, b, Some(Box::new(sixteen))).run();
    assert_eq!(answered(&m), (1, 16, p2attr::ESP_AES_GCM_16));
    assert_installed(&m, GCM128);
}

#[test]
fn an_unknown_attribute_refuses_its_transform_only() {
    // The same algorithm twice: first with a private-use attribute, then without.
    let rewrite: Rewrite = Box::new(|sa| {
        let base = base_of(sa);
        let mut odd = gcm(&base, 0, 128);
        odd.attributes.push(Attribute::basic(ATTR_PRIVATE, 1));
        let mut odd_variable = gcm(&base, 0, 128);
        odd_variable.attributes.push(Attribute::variable(ATTR_PRIVATE + 1, vec![1, 2, 3, 4, 5, 6, 7, 8, 9]));
        with_proposals(sa, vec![one_proposal(sa, 1, vec![odd, odd_variable, gcm(&base, 0, 128)])])
    });
    let a = peer(A, B, &[IKE_X25519], &[GCM128], false);
    let b = peer(B, A, &[IKE_X25519], &[GCM128], false);
    let m = Mitm::new(a, b, Some(rewrite)).run();
    assert_eq!(answered(&m), (1, 3, p2attr::ESP_AES_GCM_16));
    assert_installed(&m, GCM128);
}

#[test]
fn ah_or_ipcomp_beside_esp_refuses_that_proposal_and_the_next_is_taken() {
    for other in [ProtocolId::AH, ProtocolId::IPCOMP] {
        // Proposal 1: AH (or IPCOMP) AND ESP with AES-GCM-128, which alone we would take;
        // proposal 2: ESP alone with 3DES, then AES-CBC-256/SHA2-256.
        let rewrite: Rewrite = Box::new(move |sa| {
            let base = base_of(sa);
            let companion = Proposal {
                number: 1,
                protocol: other,
                spi: if other == ProtocolId::IPCOMP { vec![0, 0x42] } else { sa.proposals[0].spi.clone() },
                transforms: vec![Transform {
                    number: 1,
                    // AH_SHA (RFC 2407 §4.4.3) or IPCOMP_DEFLATE (§4.4.5).
                    transform_id: if other == ProtocolId::AH { 3 } else { 2 },
                    attributes: base
                        .attributes
                        .iter()
                        .filter(|a| a.kind != p2attr::KEY_LENGTH)
                        .cloned()
                        .collect(),
                }],
            };
            with_proposals(
                sa,
                vec![
                    companion,
                    one_proposal(sa, 1, vec![gcm(&base, 0, 128)]),
                    one_proposal(
                        sa,
                        2,
                        vec![
                            like(&base, 0, ESP_3DES, None, Some(p2attr::AUTH_HMAC_SHA1)),
                            cbc(&base, 0, 256, p2attr::AUTH_HMAC_SHA2_256),
                        ],
                    ),
                ],
            )
        });
        let a = peer(A, B, &[IKE_X25519], &[GCM128, CBC256_SHA256], false);
        let b = peer(B, A, &[IKE_X25519], &[GCM128, CBC256_SHA256], true);
        let m = Mitm::new(a, b, Some(rewrite)).run();
        assert_eq!(answered(&m), (2, 2, p2attr::ESP_AES_CBC), "{other:?}");
        assert_installed(&m, CBC256_SHA256);
    }
}

#[test]
fn several_single_transform_proposals_are_alternatives_too() {
    // The other common shape: one proposal per alternative.
    let rewrite: Rewrite = Box::new(|sa| {
        let base = base_of(sa);
        with_proposals(
            sa,
            vec![
                one_proposal(sa, 1, vec![like(&base, 0, ESP_3DES, None, Some(p2attr::AUTH_HMAC_SHA1))]),
                one_proposal(sa, 2, vec![cbc(&base, 0, 128, p2attr::AUTH_HMAC_SHA1)]),
                one_proposal(sa, 3, vec![gcm(&base, 0, 256)]),
            ],
        )
    });
    let a = peer(A, B, &[IKE_X25519], &[GCM256, CBC128_SHA1], false);
    let b = peer(B, A, &[IKE_X25519], &[GCM256, CBC128_SHA1], false);
    let m = Mitm::new(a, b, Some(rewrite)).run();
    assert_eq!(answered(&m), (2, 1, p2attr::ESP_AES_CBC));
    assert_installed(&m, CBC128_SHA1);
}

#[test]
fn nothing_acceptable_is_no_proposal_chosen_and_counted() {
    let rewrite: Rewrite = Box::new(|sa| {
        let base = base_of(sa);
        let mut proposals = vec![one_proposal(sa, 1, unacceptable(&base))];
        // AH AND ESP with what we would take alone.
        proposals.push(Proposal {
            protocol: ProtocolId::AH,
            ..one_proposal(sa, 2, vec![like(&base, 0, 3, None, None)])
        });
        proposals.push(one_proposal(sa, 2, vec![gcm(&base, 0, 128)]));
        with_proposals(sa, proposals)
    });
    let a = peer(A, B, &[IKE_X25519], &[GCM128], false);
    let b = peer(B, A, &[IKE_X25519], &[GCM128], false);
    let m = Mitm::new(a, b, Some(rewrite)).run();
    assert_eq!(m.qm1_sa.len(), 1);
    assert!(m.qm2_sa.is_empty(), "no answer but the notification");
    assert!(installs(&m.a_events).is_empty() && installs(&m.b_events).is_empty());
    assert_eq!(failures(&m.b_events), vec![Error::NoProposalChosen]);
    assert!(failures(&m.a_events).contains(&Error::PeerNotified(NotifyType::NO_PROPOSAL_CHOSEN)));
    assert_eq!(m.b.stats().failed, 1, "counted");
    assert_eq!(m.b.ike_sa_count(), 1, "the IKE SA stays");
}

#[test]
fn phase_one_prefer_configured_proposals() {
    let aes128 = IKE_X25519;
    let aes256 = IkeProposal { cipher: Cipher::Aes256Cbc, ..IKE_X25519 };
    for (prefer, want) in [(false, aes128), (true, aes256)] {
        let a = peer(A, B, &[aes128, aes256], &[GCM128], false);
        let b = peer(B, A, &[aes256, aes128], &[GCM128], prefer);
        let m = Mitm::new(a, b, None).run();
        let ours = m.a.ike_sas().into_iter().find(|s| s.established).expect("A established");
        let theirs = m.b.ike_sas().into_iter().find(|s| s.established).expect("B established");
        assert_eq!((ours.proposal, theirs.proposal), (Some(want), Some(want)), "prefer {prefer}");
        assert_eq!(installs(&m.a_events).len(), 1);
    }
}

#[test]
fn a_rewrite_to_the_same_payload_completes() {
    // A check on the relay itself: re-emitting the genuine SA payload, rehashing and
    // re-encrypting must give a message the responder takes.
    let a = peer(A, B, &[IKE_X25519], &[GCM128], false);
    let b = peer(B, A, &[IKE_X25519], &[GCM128], false);
    let m = Mitm::new(a, b, Some(Box::new(|sa: &SaPayload| sa.clone()))).run();
    assert_eq!(answered(&m), (1, 1, p2attr::ESP_AES_GCM_16));
    assert_installed(&m, GCM128);
    assert_eq!(m.main_mode.len(), 6);
    assert_eq!(m.main_mode.iter().filter(|(from_a, _)| *from_a).count(), 3);
}

/// The Extended Sequence Number attribute (RFC 4304 §2) of a transform, if it has one.
fn esn_attribute(t: &Transform) -> Option<u64> {
    t.attributes.iter().find(|a| a.kind == p2attr::EXT_SEQ_NUMBER).and_then(Attribute::as_u64)
}

#[test]
fn extended_sequence_numbers_are_a_transform_of_their_own() {
    // ESN first, then the same algorithm without: two transforms, the first with the
    // attribute (value 1, 64-bit), the second without, as strongSwan's `esn-noesn`.
    let a = peer(A, B, &[IKE_X25519], &[GCM128_ESN, GCM128], false);
    let b = peer(B, A, &[IKE_X25519], &[GCM128_ESN], false);
    let m = Mitm::new(a.clone(), b, None).run();
    let offered: Vec<Option<u64>> = m.qm1_sa[0].proposals[0].transforms.iter().map(esn_attribute).collect();
    assert_eq!(offered, vec![Some(1), None]);
    assert_eq!(answered(&m), (1, 1, p2attr::ESP_AES_GCM_16));
    assert_eq!(esn_attribute(&m.qm2_sa[0].proposals[0].transforms[0]), Some(1), "the answer keeps it");
    assert_installed(&m, GCM128_ESN);

    // A responder without ESN takes the second.
    let b = peer(B, A, &[IKE_X25519], &[GCM128], false);
    let m = Mitm::new(a, b, None).run();
    assert_eq!(answered(&m), (1, 2, p2attr::ESP_AES_GCM_16));
    assert_eq!(esn_attribute(&m.qm2_sa[0].proposals[0].transforms[0]), None);
    assert_installed(&m, GCM128);

    // ESN required by the responder, not offered: nothing in common.
    let a = peer(A, B, &[IKE_X25519], &[GCM128], false);
    let b = peer(B, A, &[IKE_X25519], &[GCM128_ESN], false);
    let m = Mitm::new(a, b, None).run();
    assert!(installs(&m.a_events).is_empty() && installs(&m.b_events).is_empty());
    assert_eq!(failures(&m.b_events), vec![Error::NoProposalChosen]);
}

#[test]
fn an_esn_attribute_of_an_undefined_value_refuses_its_transform_only() {
    // RFC 4304 defines the value 1 alone: a transform with 2 is one we do not understand.
    let rewrite: Rewrite = Box::new(|sa| {
        let base = base_of(sa);
        let mut odd = gcm(&base, 0, 128);
        odd.attributes.push(Attribute::basic(p2attr::EXT_SEQ_NUMBER, 2));
        let mut esn = gcm(&base, 0, 128);
        esn.attributes.push(Attribute::basic(p2attr::EXT_SEQ_NUMBER, p2attr::ESN_64_BIT));
        with_proposals(sa, vec![one_proposal(sa, 1, vec![odd, esn])])
    });
    let a = peer(A, B, &[IKE_X25519], &[GCM128_ESN], false);
    let b = peer(B, A, &[IKE_X25519], &[GCM128_ESN], false);
    let m = Mitm::new(a, b, Some(rewrite)).run();
    assert_eq!(answered(&m), (1, 2, p2attr::ESP_AES_GCM_16));
    assert_installed(&m, GCM128_ESN);
}
