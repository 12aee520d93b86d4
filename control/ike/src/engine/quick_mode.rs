//! Quick Mode (RFC 2409 §5.5).
//!
//! ```text
//!       Initiator                          Responder
//!      -----------                        -----------
//!       HDR*, HASH(1), SA, Ni
//!         [, KE ] [, IDci, IDcr ]   -->                      ISent1
//!                                   <--    HDR*, HASH(2), SA, Nr
//!                                          [, KE ] [, IDci, IDcr ]  RSent2
//!       HDR*, HASH(3)               -->                      Done (both)
//! ```
//! Each exchange has a random message id and its own IV chain, seeded by
//! hash(last phase-1 CBC block | M-ID). The initiator installs both SAs
//! after HASH(2) verified, before its HASH(3) leaves. The responder
//! installs its inbound SA before HASH(2) leaves (the initiator may send on
//! it as soon as HASH(2) arrives) and its outbound SA after HASH(3).
//!
//! The responder accepts the initiator's selectors when they lie inside
//! one of the children configured for the peer (narrowing, as strongSwan
//! does for IKEv1) and installs exactly what was proposed.

use super::config::{
    ChildConfig, ChildMode, EspEncryption, EspIntegrity, EspProposal, TrafficSelector, TsAddress,
};
use super::phase1::{find, get_nonce, get_sa};
use super::types::{id_to_ts, ts_to_id, Encapsulation, EspSaDescription, Lifetime, NatOriginalAddresses};
use super::{
    after_first, decrypt_body, encrypt_message, fingerprint, hashed_chain, Engine, Error, Event, Flight,
    PeerMisbehaved,
};
use crate::crypto::{ct_eq, DhGroup, DhSecret, Secret};
use crate::keys::Phase1Keys;
use crate::msgs::{
    emit_chain, p2attr, parse_chain, Attribute, ExchangeType, Header, IdType, NatOaPayload, NotifyPayload,
    NotifyType, Payload, PayloadType, Proposal, ProtocolId, RawPayload, SaPayload, Transform, DOI_IPSEC,
    SIT_IDENTITY_ONLY,
};
use std::net::{IpAddr, SocketAddr};
use std::time::Instant;
use zeroize::Zeroizing;

/// One Quick Mode exchange.
#[derive(Debug)]
pub(super) struct Exchange {
    pub(super) message_id: u32,
    iv: Vec<u8>,
    pub(super) flight: Flight,
    state: QmState,
    /// When the exchange completed; it lingers to answer duplicates.
    pub(super) finished: Option<Instant>,
    /// Initiator: the inbound SPI of the pair it handed out with HASH(3)
    /// queued behind (see [`super::Command::AbortQuickMode`]).
    pub(super) installed_spi: Option<u32>,
}

#[derive(Debug)]
// One state per live exchange, a handful per IKE SA: boxing the initiator's
// would only add an allocation.
#[allow(clippy::large_enum_variant)]
enum QmState {
    ISent1 {
        peer: usize,
        ni: Vec<u8>,
        dh: Option<DhSecret>,
        spi_in: u32,
        offered: Vec<EspProposal>,
        nat_oa: Option<NatOriginalAddresses>,
        mode: ChildMode,
        local_ts: TrafficSelector,
        remote_ts: TrafficSelector,
    },
    RSent2 {
        peer: usize,
        ni: Vec<u8>,
        nr: Vec<u8>,
        spi_in: u32,
        /// (inbound, outbound), keyed when HASH(1) verified; the inbound half
        /// is installed already, both are handed out after HASH(3).
        pair: Box<(EspSaDescription, EspSaDescription)>,
    },
    Done,
}

impl Exchange {
    /// The state name, for traces and the transition snapshot test.
    pub(super) fn state_name(&self) -> &'static str {
        match self.state {
            QmState::ISent1 { .. } => "ISent1",
            QmState::RSent2 { .. } => "RSent2",
            QmState::Done => "Done",
        }
    }

    /// True while we wait for the responder's HASH(2).
    pub(super) fn is_initiator_pending(&self) -> bool {
        matches!(self.state, QmState::ISent1 { .. })
    }

    /// True when the driver was told to install the inbound SA already.
    pub(super) fn inbound_installed(&self) -> bool {
        matches!(self.state, QmState::RSent2 { .. })
    }

    /// The inbound SPI reserved and not yet in a finished pair, if any.
    pub(super) fn allocated_spi(&self) -> Option<u32> {
        match self.state {
            QmState::ISent1 { spi_in, .. } | QmState::RSent2 { spi_in, .. } => Some(spi_in),
            QmState::Done => None,
        }
    }
}

fn auth_id(i: EspIntegrity) -> u16 {
    match i {
        EspIntegrity::HmacSha1 => p2attr::AUTH_HMAC_SHA1,
        EspIntegrity::HmacSha256 => p2attr::AUTH_HMAC_SHA2_256,
        EspIntegrity::HmacSha384 => p2attr::AUTH_HMAC_SHA2_384,
        EspIntegrity::HmacSha512 => p2attr::AUTH_HMAC_SHA2_512,
    }
}

/// The Encapsulation Mode value; the UDP modes under the number of the
/// NAT-T dialect agreed on in phase 1.
fn mode_id(e: Encapsulation, nat_t_draft: bool) -> u16 {
    match (e, nat_t_draft) {
        (Encapsulation::Tunnel, _) => p2attr::MODE_TUNNEL,
        (Encapsulation::Transport, _) => p2attr::MODE_TRANSPORT,
        (Encapsulation::UdpTunnel, false) => p2attr::MODE_UDP_TUNNEL,
        (Encapsulation::UdpTransport, false) => p2attr::MODE_UDP_TRANSPORT,
        (Encapsulation::UdpTunnel, true) => p2attr::MODE_UDP_TUNNEL_DRAFT,
        (Encapsulation::UdpTransport, true) => p2attr::MODE_UDP_TRANSPORT_DRAFT,
    }
}

fn esp_transform(
    number: u8,
    p: &EspProposal,
    encap: Encapsulation,
    nat_t_draft: bool,
    pfs: Option<DhGroup>,
    life: Lifetime,
) -> Transform {
    let (tid, bits) = match p.encryption {
        EspEncryption::AesCbc(b) => (p2attr::ESP_AES_CBC, b),
        EspEncryption::AesGcm16(b) => (p2attr::ESP_AES_GCM_16, b),
    };
    // RFC 2407 §4.5: each Life Type precedes its Life Duration.
    let mut attributes = vec![
        Attribute::basic(p2attr::LIFE_TYPE, 1),
        Attribute::duration(p2attr::LIFE_DURATION, life.seconds),
    ];
    if life.kilobytes > 0 {
        attributes.push(Attribute::basic(p2attr::LIFE_TYPE, 2));
        attributes.push(Attribute::duration(p2attr::LIFE_DURATION, life.kilobytes));
    }
    if let Some(g) = pfs {
        attributes.push(Attribute::basic(p2attr::GROUP_DESCRIPTION, g.id()));
    }
    attributes.push(Attribute::basic(p2attr::ENCAPSULATION_MODE, mode_id(encap, nat_t_draft)));
    if let Some(i) = p.integrity {
        attributes.push(Attribute::basic(p2attr::AUTH_ALGORITHM, auth_id(i)));
    }
    attributes.push(Attribute::basic(p2attr::KEY_LENGTH, bits));
    if p.esn {
        attributes.push(Attribute::basic(p2attr::EXT_SEQ_NUMBER, p2attr::ESN_64_BIT));
    }
    Transform { number, transform_id: tid, attributes }
}

/// What one received ESP transform asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct EspOffer {
    proposal: EspProposal,
    encap: Encapsulation,
    group: Option<DhGroup>,
    lifetime: Lifetime,
}

fn parse_esp_transform(t: &Transform) -> Option<EspOffer> {
    let (mut bits, mut integ, mut encap, mut group) = (None, None, None, None);
    let mut esn = false;
    let mut life = Lifetime { seconds: 28_800, kilobytes: 0 };
    let mut life_type = None;
    for a in &t.attributes {
        let v = a.as_u64()?;
        match a.kind {
            p2attr::LIFE_TYPE => life_type = Some(v),
            p2attr::LIFE_DURATION => {
                let d = u32::try_from(v).unwrap_or(u32::MAX);
                match life_type? {
                    1 => life.seconds = d,
                    2 => life.kilobytes = d,
                    _ => return None,
                }
            }
            p2attr::GROUP_DESCRIPTION => group = Some(DhGroup::from_id(u16::try_from(v).ok()?)?),
            p2attr::ENCAPSULATION_MODE => {
                encap = Some(match u16::try_from(v).ok()? {
                    p2attr::MODE_TUNNEL => Encapsulation::Tunnel,
                    p2attr::MODE_TRANSPORT => Encapsulation::Transport,
                    // Either dialect's number is read, as strongSwan does.
                    p2attr::MODE_UDP_TUNNEL | p2attr::MODE_UDP_TUNNEL_DRAFT => Encapsulation::UdpTunnel,
                    p2attr::MODE_UDP_TRANSPORT | p2attr::MODE_UDP_TRANSPORT_DRAFT => {
                        Encapsulation::UdpTransport
                    }
                    _ => return None,
                })
            }
            p2attr::AUTH_ALGORITHM => {
                integ = Some(match u16::try_from(v).ok()? {
                    p2attr::AUTH_HMAC_SHA1 => EspIntegrity::HmacSha1,
                    p2attr::AUTH_HMAC_SHA2_256 => EspIntegrity::HmacSha256,
                    p2attr::AUTH_HMAC_SHA2_384 => EspIntegrity::HmacSha384,
                    p2attr::AUTH_HMAC_SHA2_512 => EspIntegrity::HmacSha512,
                    _ => return None,
                })
            }
            p2attr::KEY_LENGTH => bits = Some(u16::try_from(v).ok()?),
            // RFC 4304 §2 defines one value; another is a transform we do not understand.
            p2attr::EXT_SEQ_NUMBER if v == u64::from(p2attr::ESN_64_BIT) => esn = true,
            _ => return None,
        }
    }
    let bits = bits?;
    if !matches!(bits, 128 | 192 | 256) {
        return None;
    }
    let encryption = match t.transform_id {
        p2attr::ESP_AES_CBC if integ.is_some() => EspEncryption::AesCbc(bits),
        p2attr::ESP_AES_GCM_16 if integ.is_none() => EspEncryption::AesGcm16(bits),
        _ => return None,
    };
    Some(EspOffer {
        proposal: EspProposal { encryption, integrity: integ, esn },
        encap: encap?,
        group,
        lifetime: life,
    })
}

fn spi_of(p: &Proposal) -> Option<u32> {
    Some(u32::from_be_bytes(p.spi.as_slice().try_into().ok()?))
}

/// The mode an encapsulation belongs to.
fn mode_of(e: Encapsulation) -> ChildMode {
    match e {
        Encapsulation::Tunnel | Encapsulation::UdpTunnel => ChildMode::Tunnel,
        Encapsulation::Transport | Encapsulation::UdpTransport => ChildMode::Transport,
    }
}

/// One ESP transform of the initiator's SA payload that we understand.
#[derive(Debug)]
struct EspCandidate<'a> {
    proposal: &'a Proposal,
    transform: &'a Transform,
    offer: EspOffer,
    /// The initiator's inbound SPI of that proposal.
    spi: u32,
}

/// Every ESP transform of the initiator's SA payload that we understand, in
/// the initiator's order of preference: proposals in order, the transforms
/// of each in order (RFC 2408 §4.2: a proposal's transforms are alternatives,
/// "in the order of preference"). strongSwan and most vendors put all their
/// ESP alternatives as transforms of one proposal; others send one proposal
/// per alternative. Both read the same here.
///
/// Payloads that share a proposal number form one proposal (RFC 2408 §4.2:
/// AND, e.g. AH and ESP, or ESP and IPCOMP, together). We only do ESP alone,
/// so such a proposal is passed over whole, as is one that is not ESP or
/// whose SPI is not 4 octets. A transform with an unknown transform ID, an
/// attribute type we do not know (RFC 2407 §4.5) or a value we do not support
/// is passed over alone: the other transforms remain choices.
fn esp_candidates(sa: &SaPayload) -> Vec<EspCandidate<'_>> {
    sa.proposals
        .chunk_by(|a, b| a.number == b.number)
        .filter_map(|group| match group {
            [p] if p.protocol == ProtocolId::ESP => Some((p, spi_of(p)?)),
            _ => None,
        })
        .flat_map(|(proposal, spi)| {
            proposal.transforms.iter().filter_map(move |transform| {
                let offer = parse_esp_transform(transform)?;
                Some(EspCandidate { proposal, transform, offer, spi })
            })
        })
        .collect()
}

/// The responder's choice for one child among the initiator's candidates:
/// the first one (initiator's order) whose algorithms, PFS group and mode
/// the child allows; with `prefer_configured`, the allowed one that comes
/// first in the child's own list (the initiator's order between transforms
/// of the same configured proposal), as strongSwan's
/// `prefer_configured_proposals`.
fn choose_esp<'c, 'a>(
    candidates: &'c [EspCandidate<'a>],
    child: &ChildConfig,
    prefer_configured: bool,
) -> Option<&'c EspCandidate<'a>> {
    let rank = |c: &EspCandidate<'_>| child.proposals.iter().position(|p| *p == c.offer.proposal);
    let mut allowed = candidates.iter().filter(|c| {
        mode_of(c.offer.encap) == child.mode && c.offer.group == child.pfs_group && rank(c).is_some()
    });
    if prefer_configured {
        // `min_by_key` keeps the first of equal keys: the initiator's order.
        allowed.min_by_key(|c| rank(c))
    } else {
        allowed.next()
    }
}

/// What the initiator takes from a valid Quick Mode reply.
struct Reply {
    spi_out: u32,
    offer: EspOffer,
    nr: Vec<u8>,
    lifetime: Lifetime,
    gxy: Option<Secret>,
}

/// Checks the responder's single chosen proposal against what we offered,
/// and reads Nr, KE and RESPONDER-LIFETIME.
fn read_reply(
    raws: &[RawPayload<'_>],
    offered: &[EspProposal],
    dh: Option<&DhSecret>,
    expect_encap: Encapsulation,
) -> Result<Reply, Error> {
    let bad = Error::PeerMisbehaved(PeerMisbehaved::InvalidProposalReply);
    let (sa_p, _) = get_sa(raws)?;
    let (prop, offer) = match sa_p.proposals.as_slice() {
        [p] => match p.transforms.as_slice() {
            [t] => (p, parse_esp_transform(t).ok_or(bad.clone())?),
            _ => return Err(bad),
        },
        _ => return Err(bad),
    };
    if !offered.contains(&offer.proposal)
        || offer.group != dh.map(|d| d.group())
        || offer.encap != expect_encap
    {
        return Err(bad);
    }
    let spi_out = spi_of(prop).ok_or(bad)?;
    let nr = get_nonce(raws)?.to_vec();
    let lifetime = responder_lifetime(raws).unwrap_or(offer.lifetime);
    let gxy = match dh {
        Some(dh) => {
            let ke = find(raws, PayloadType::KE)
                .map(|r| r.body())
                .ok_or(Error::PeerMisbehaved(PeerMisbehaved::MissingPayload))?;
            Some(dh.agree(ke).map_err(|_| Error::PeerMisbehaved(PeerMisbehaved::InvalidKeyExchange))?)
        }
        None => None,
    };
    Ok(Reply { spi_out, offer, nr, lifetime, gxy })
}

/// Proof that the peer's HASH(1) (responder) or HASH(2) (initiator) verified: only
/// [`verify_qm_hash`] creates one and [`make_pair`] needs one, so no child
/// SA is described without the Quick Mode hash check (rustls-style token).
#[derive(Debug)]
struct QuickModeAuthenticated(());

fn verify_qm_hash(expected: &[u8], received: &[u8]) -> Option<QuickModeAuthenticated> {
    ct_eq(expected, received).then_some(QuickModeAuthenticated(()))
}

/// Builds both directions from KEYMAT (RFC 2409 §5.5). Key layout per SA:
/// encryption key | salt (GCM, RFC 4106 §8.1) | integrity key.
#[allow(clippy::too_many_arguments)]
fn make_pair(
    _proof: QuickModeAuthenticated,
    keys: &Phase1Keys,
    gxy: Option<&[u8]>,
    ni: &[u8],
    nr: &[u8],
    spi_in: u32,
    spi_out: u32,
    chosen: EspProposal,
    encap: Encapsulation,
    lifetime: Lifetime,
    local_ts: TrafficSelector,
    remote_ts: TrafficSelector,
    local: SocketAddr,
    remote: SocketAddr,
    nat_original: Option<NatOriginalAddresses>,
) -> (EspSaDescription, EspSaDescription) {
    let ek = chosen.encryption.key_len();
    let sl = chosen.encryption.salt_len();
    let ik = chosen.integrity.map_or(0, |i| i.key_len());
    let one = |spi: u32, inbound: bool| {
        let km = keys.keymat(gxy, ProtocolId::ESP.0, &spi.to_be_bytes(), ni, nr, ek + sl + ik);
        let part = |a: usize, b: usize| Zeroizing::new(km.get(a..b).unwrap_or(&[]).to_vec());
        let (src_ts, dst_ts, src, dst) =
            if inbound { (remote_ts, local_ts, remote, local) } else { (local_ts, remote_ts, local, remote) };
        EspSaDescription {
            spi,
            encapsulation: encap,
            encryption: chosen.encryption,
            integrity: chosen.integrity,
            esn: chosen.esn,
            encryption_key: part(0, ek),
            salt: part(ek, ek + sl),
            integrity_key: part(ek + sl, ek + sl + ik),
            lifetime,
            source_ts: src_ts,
            destination_ts: dst_ts,
            source: src,
            destination: dst,
            nat_original,
        }
    };
    (one(spi_in, true), one(spi_out, false))
}

/// A NAT-OA payload, under the number of the NAT-T dialect agreed on.
fn nat_oa_payload(ip: IpAddr, nat_t_draft: bool) -> Payload {
    let (id_type, address) = match ip {
        IpAddr::V4(a) => (IdType::IPV4_ADDR, a.octets().to_vec()),
        IpAddr::V6(a) => (IdType::IPV6_ADDR, a.octets().to_vec()),
    };
    let oa = NatOaPayload { id_type, address };
    if nat_t_draft {
        Payload::NatOaDraft(oa)
    } else {
        Payload::NatOa(oa)
    }
}

fn nat_oa_address(oa: &NatOaPayload) -> Option<IpAddr> {
    match oa.id_type {
        IdType::IPV4_ADDR => Some(IpAddr::from(<[u8; 4]>::try_from(oa.address.as_slice()).ok()?)),
        IdType::IPV6_ADDR => Some(IpAddr::from(<[u8; 16]>::try_from(oa.address.as_slice()).ok()?)),
        _ => None,
    }
}

/// RFC 2407 §4.6.3.1: lifetimes the responder imposed, if it sent them.
fn responder_lifetime(raws: &[RawPayload<'_>]) -> Option<Lifetime> {
    let n = raws.iter().find_map(|r| match &r.payload {
        Payload::Notify(n) if n.notify_type == NotifyType::RESPONDER_LIFETIME => Some(n),
        _ => None,
    })?;
    let mut life = Lifetime { seconds: 0, kilobytes: 0 };
    let mut r = crate::msgs::codec::Reader::new(&n.data);
    let mut kind = None;
    while !r.is_empty() {
        let a = Attribute::parse(&mut r).ok()?;
        match a.kind {
            p2attr::LIFE_TYPE => kind = a.as_u64(),
            p2attr::LIFE_DURATION => {
                let v = u32::try_from(a.as_u64()?).ok()?;
                match kind? {
                    1 => life.seconds = v,
                    2 => life.kilobytes = v,
                    _ => return None,
                }
            }
            _ => return None,
        }
    }
    (life.seconds > 0).then_some(life)
}

/// A configured host selector on the unspecified address stands for the IKE
/// address (`dynamic` in swanctl.conf, or `%any` peers).
fn resolve(ts: TrafficSelector, ike_address: IpAddr) -> TrafficSelector {
    match ts.address {
        TsAddress::Host(a) if a.is_unspecified() => {
            TrafficSelector { address: TsAddress::Host(ike_address), ..ts }.normalized()
        }
        _ => ts.normalized(),
    }
}

/// The inclusive address range of a selector, as 128-bit numbers (IPv4 in
/// the low bits), with its family.
fn ts_range(a: &TsAddress) -> (bool, u128, u128) {
    let n = |a: IpAddr| match a {
        IpAddr::V4(a) => u128::from(u32::from(a)),
        IpAddr::V6(a) => u128::from(a),
    };
    match *a {
        TsAddress::Host(h) => (h.is_ipv4(), n(h), n(h)),
        TsAddress::Subnet(h, p) => {
            let bits: u32 = if h.is_ipv4() { 32 } else { 128 };
            let host_bits = bits.saturating_sub(u32::from(p));
            let mask = u128::MAX.checked_shl(host_bits).unwrap_or(0);
            let lo = n(h) & mask;
            (h.is_ipv4(), lo, lo | !mask & (u128::MAX >> (128 - bits)))
        }
        TsAddress::Range(x, y) => (x.is_ipv4(), n(x), n(y)),
    }
}

/// True when every packet `inner` matches also matches `outer`.
pub(super) fn ts_contains(outer: &TrafficSelector, inner: &TrafficSelector) -> bool {
    let (f1, lo1, hi1) = ts_range(&outer.address);
    let (f2, lo2, hi2) = ts_range(&inner.address);
    f1 == f2
        && lo1 <= lo2
        && hi2 <= hi1
        && lo2 <= hi2
        && (outer.protocol == 0 || outer.protocol == inner.protocol)
        && (outer.port == 0 || outer.port == inner.port)
}

impl Engine {
    /// Initiator: sends Quick Mode message 1 for the peer's child config.
    pub(super) fn start_quick_mode(&mut self, now: Instant, idx: usize, peer: usize) {
        if let Err(e) = self.try_start_quick_mode(now, idx, peer) {
            if let Some(sa) = self.sas.get(idx) {
                self.events.push_back(Event::Failed { ike_sa: sa.id, error: e });
            }
        }
    }

    fn try_start_quick_mode(&mut self, now: Instant, idx: usize, peer: usize) -> Result<(), Error> {
        let sa = self.sas.get(idx).ok_or(Error::Local("sa"))?;
        let cfg = self.config.peers.get(peer).cloned().ok_or(Error::Local("peer"))?;
        let child = cfg.child;
        // RFC 3947 §5.1: UDP-encapsulated modes only with a NAT on the path.
        let udp = sa.nat_t && sa.nat.any();
        let draft = sa.nat_t_draft;
        let (local_ip, remote_ip) = (sa.local.ip(), sa.remote.ip());
        let local_ts = resolve(child.local_ts, local_ip);
        let remote_ts = resolve(child.remote_ts, remote_ip);
        let mid = self.new_message_id(idx);
        let spi_in = self.spis.allocate().ok_or(Error::Local("no SPI"))?;
        let ni = self.random_bytes(32);
        let dh = match child.pfs_group {
            Some(g) => Some(DhSecret::generate(g, &mut *self.rng).map_err(|_| Error::Local("dh"))?),
            None => None,
        };
        let life = Lifetime { seconds: child.lifetime_seconds, kilobytes: child.lifetime_kilobytes };
        let encap = Encapsulation::new(child.mode, udp);
        // One ESP proposal whose transforms are our alternatives, in our
        // order (RFC 2408 §4.2), the way strongSwan sends them: the
        // responder picks one transform and answers with it alone.
        let transforms = child
            .proposals
            .iter()
            .zip(1u8..)
            .map(|(p, n)| esp_transform(n, p, encap, draft, child.pfs_group, life))
            .collect();
        let proposals = vec![Proposal {
            number: 1,
            protocol: ProtocolId::ESP,
            spi: spi_in.to_be_bytes().to_vec(),
            transforms,
        }];
        let mut rest = vec![
            Payload::Sa(SaPayload { doi: DOI_IPSEC, situation: SIT_IDENTITY_ONLY, proposals }),
            Payload::Nonce(ni.clone()),
        ];
        if let Some(dh) = &dh {
            rest.push(Payload::Ke(dh.public_value().to_vec()));
        }
        rest.push(Payload::Id(ts_to_id(&local_ts)));
        rest.push(Payload::Id(ts_to_id(&remote_ts)));
        // RFC 3947 §5.2: transport mode behind NAT sends NAT-OAi, NAT-OAr.
        let nat_oa = (encap == Encapsulation::UdpTransport)
            .then_some(NatOriginalAddresses { initiator: local_ip, responder: remote_ip });
        if let Some(oa) = nat_oa {
            rest.push(nat_oa_payload(oa.initiator, draft));
            rest.push(nat_oa_payload(oa.responder, draft));
        }
        let sa = self.sas.get_mut(idx).ok_or(Error::Local("sa"))?;
        let keys = sa.keys().ok_or(Error::Local("keys"))?;
        let (_, rest_bytes) = emit_chain(&rest);
        let hash = keys.hash1(mid, &rest_bytes);
        let mut iv = keys.phase2_iv(&sa.p1_iv, mid);
        let bytes = encrypt_message(
            keys,
            &mut iv,
            Self::header(sa, ExchangeType::QUICK_MODE, mid, 0),
            &hashed_chain(hash.to_vec(), &rest),
        )?;
        sa.quick.push(Exchange {
            message_id: mid,
            iv,
            flight: Flight::default(),
            finished: None,
            installed_spi: None,
            state: QmState::ISent1 {
                peer,
                ni,
                dh,
                spi_in,
                offered: child.proposals.clone(),
                nat_oa,
                mode: child.mode,
                local_ts,
                remote_ts,
            },
        });
        self.send(now, idx, Some(mid), bytes, true);
        Ok(())
    }

    pub(super) fn quick_datagram(
        &mut self,
        now: Instant,
        idx: usize,
        header: &Header,
        datagram: &[u8],
    ) -> Result<(), Error> {
        let mid = header.message_id;
        let fp = fingerprint(datagram);
        let sa = self.sas.get_mut(idx).ok_or(Error::Local("sa"))?;
        if sa.keys().is_none() {
            // Quick Mode before our phase 1 finished (e.g. AM3 or MM6 lost):
            // drop it; the initiator retransmits once we are established.
            return Ok(());
        }
        if !header.is_encrypted() {
            return Err(Error::PeerMisbehaved(PeerMisbehaved::Unencrypted));
        }
        let Some(pos) = sa.quick.iter().position(|q| q.message_id == mid) else {
            return self.quick_respond(now, idx, header, datagram);
        };
        let (local, remote) = (sa.local, sa.remote);
        let Some(ex) = sa.quick.get_mut(pos) else {
            return Ok(());
        };
        if ex.flight.last_in == Some(fp) {
            if let Some(out) = ex.flight.last_out.clone() {
                self.transmits.push_back(super::wrap(local, remote, out));
            }
            return Ok(());
        }
        if matches!(ex.state, QmState::Done) {
            // A late copy of an earlier message of a finished exchange.
            return Ok(());
        }
        let Some(keys) = sa.keys().cloned() else {
            return Ok(());
        };
        let Some(ex) = sa.quick.get_mut(pos) else {
            return Ok(());
        };
        let (plain, next_iv) = decrypt_body(&keys, &ex.iv, datagram)?;
        let raws = parse_chain(header.next_payload, &plain, true)?;
        let received_hash = match raws.first().map(|r| &r.payload) {
            Some(Payload::Hash(h)) => h.clone(),
            _ => return Err(Error::PeerMisbehaved(PeerMisbehaved::MissingPayload)),
        };
        let id = sa.id;
        let sa = self.sas.get_mut(idx).ok_or(Error::Local("sa"))?;
        let qm_header = Self::header(sa, ExchangeType::QUICK_MODE, mid, 0);
        let (local, remote) = (sa.local, sa.remote);
        let Some(ex) = sa.quick.get_mut(pos) else {
            return Ok(());
        };
        match core::mem::replace(&mut ex.state, QmState::Done) {
            QmState::ISent1 { peer, ni, dh, spi_in, offered, nat_oa, mode, local_ts, remote_ts } => {
                let rest = after_first(&raws);
                let Some(proof) = verify_qm_hash(&keys.hash2(mid, &ni, &rest), &received_hash) else {
                    ex.state =
                        QmState::ISent1 { peer, ni, dh, spi_in, offered, nat_oa, mode, local_ts, remote_ts };
                    return Err(Error::AuthenticationFailed);
                };
                self.rx_authenticated = true;
                let expect_encap = Encapsulation::new(mode, sa.nat_t && sa.nat.any());
                let reply = match read_reply(&raws, &offered, dh.as_ref(), expect_encap) {
                    Ok(r) => r,
                    Err(e) => {
                        // Keep the state so the error path releases our SPI.
                        ex.state = QmState::ISent1 {
                            peer,
                            ni,
                            dh,
                            spi_in,
                            offered,
                            nat_oa,
                            mode,
                            local_ts,
                            remote_ts,
                        };
                        return Err(e);
                    }
                };
                let Reply { spi_out, offer, nr, lifetime, gxy } = reply;
                let hash3 = keys.hash3(mid, &ni, &nr);
                let mut iv = next_iv;
                let bytes = encrypt_message(&keys, &mut iv, qm_header, &[Payload::Hash(hash3.to_vec())])?;
                ex.iv = iv;
                ex.flight.last_in = Some(fp);
                ex.flight.retransmit = None;
                ex.finished = Some(now);
                ex.installed_spi = Some(spi_in);
                let (inb, outb) = make_pair(
                    proof,
                    &keys,
                    gxy.as_deref().map(|v| v.as_slice()),
                    &ni,
                    &nr,
                    spi_in,
                    spi_out,
                    offer.proposal,
                    offer.encap,
                    lifetime,
                    local_ts,
                    remote_ts,
                    local,
                    remote,
                    nat_oa,
                );
                sa.children.push((spi_in, spi_out));
                self.send(now, idx, Some(mid), bytes, false);
                self.events.push_back(Event::InstallSa {
                    ike_sa: id,
                    peer,
                    inbound: Box::new(inb),
                    outbound: Box::new(outb),
                });
                Ok(())
            }
            QmState::RSent2 { peer, ni, nr, spi_in, pair } => {
                // RFC 2409 §5.5: HASH(3) = prf(SKEYID_a, 0 | M-ID | Ni_b | Nr_b).
                let ok = ct_eq(&keys.hash3(mid, &ni, &nr), &received_hash) && raws.len() == 1;
                if !ok {
                    ex.state = QmState::RSent2 { peer, ni, nr, spi_in, pair };
                    return Err(Error::AuthenticationFailed);
                }
                self.rx_authenticated = true;
                ex.iv = next_iv;
                ex.flight.last_in = Some(fp);
                ex.flight.retransmit = None;
                // HASH(3) ends the exchange: a copy of it needs no answer.
                ex.flight.last_out = None;
                ex.finished = Some(now);
                let (inb, outb) = *pair;
                sa.children.push((inb.spi, outb.spi));
                self.events.push_back(Event::InstallSa {
                    ike_sa: id,
                    peer,
                    inbound: Box::new(inb),
                    outbound: Box::new(outb),
                });
                Ok(())
            }
            QmState::Done => Ok(()),
        }
    }

    /// Responder: a new Quick Mode message 1.
    fn quick_respond(
        &mut self,
        now: Instant,
        idx: usize,
        header: &Header,
        datagram: &[u8],
    ) -> Result<(), Error> {
        let mid = header.message_id;
        let sa = self.sas.get(idx).ok_or(Error::Local("sa"))?;
        // A message 1 whose id this IKE SA saw (after its exchange stopped
        // lingering): a replay, refused before any work.
        if sa.seen_ids.contains(mid) {
            self.rx_discard = Some(super::Discard::Replay);
            return Ok(());
        }
        let keys = sa.keys().cloned().ok_or(Error::Local("keys"))?;
        let child_peers = self.children_of_peer(sa.peer);
        let nat_t_draft = sa.nat_t_draft;
        let (local_ip, remote_ip) = (sa.local.ip(), sa.remote.ip());
        let iv = keys.phase2_iv(&sa.p1_iv, mid);
        let (plain, next_iv) = decrypt_body(&keys, &iv, datagram)?;
        let raws = parse_chain(header.next_payload, &plain, true)?;
        let received_hash = match raws.first().map(|r| &r.payload) {
            Some(Payload::Hash(h)) => h.clone(),
            _ => return Err(Error::PeerMisbehaved(PeerMisbehaved::MissingPayload)),
        };
        // RFC 2409 §5.5: HASH(1) covers M-ID and everything after HASH.
        let Some(proof) = verify_qm_hash(&keys.hash1(mid, &after_first(&raws)), &received_hash) else {
            return Err(Error::AuthenticationFailed);
        };
        // The peer's own message: at the limit of unfinished responder
        // exchanges it is refused (counted) and not remembered, so its
        // retransmission is taken once one finishes.
        let sa = self.sas.get_mut(idx).ok_or(Error::Local("sa"))?;
        if sa.quick.iter().filter(|q| q.inbound_installed()).count() >= self.config.max_quick_modes_per_sa {
            self.rx_discard = Some(super::Discard::QuickModeLimit);
            return Ok(());
        }
        sa.seen_ids.insert(mid);
        self.rx_authenticated = true;
        let fp = fingerprint(datagram);
        let (sa_p, _) = get_sa(&raws)?;
        let ni = get_nonce(&raws)?.to_vec();
        // IDci / IDcr: the initiator's view. Without them the selectors are
        // the IKE addresses (RFC 2409 §5.5).
        let ids: Vec<&RawPayload<'_>> =
            raws.iter().filter(|r| r.payload.payload_type() == PayloadType::ID).collect();
        let host = |a: IpAddr| TrafficSelector { address: TsAddress::Host(a), protocol: 0, port: 0 };
        let (ts_i, ts_r) = match ids.as_slice() {
            [] => (host(remote_ip), host(local_ip)),
            [a, b] => match (&a.payload, &b.payload) {
                (Payload::Id(a), Payload::Id(b)) => match (id_to_ts(a), id_to_ts(b)) {
                    (Some(i), Some(r)) => (i.normalized(), r.normalized()),
                    _ => return Err(Error::InvalidIdentity),
                },
                _ => return Err(Error::InvalidIdentity),
            },
            _ => return Err(Error::InvalidIdentity),
        };
        // The first child (of those configured for this peer) whose
        // selectors contain the proposed ones, then that child's choice among
        // the initiator's ESP transforms (initiator's order, or the child's
        // with `prefer_configured_proposals`).
        let candidates = esp_candidates(sa_p);
        let mut selectors_fit = false;
        let mut choice = None;
        for &peer in &child_peers {
            let Some(cfg) = self.config.peers.get(peer) else {
                continue;
            };
            let child = &cfg.child;
            if !ts_contains(&resolve(child.remote_ts, remote_ip), &ts_i)
                || !ts_contains(&resolve(child.local_ts, local_ip), &ts_r)
            {
                continue;
            }
            selectors_fit = true;
            if let Some(c) = choose_esp(&candidates, child, cfg.prefer_configured_proposals) {
                choice = Some((peer, child.clone(), c.proposal.number, c.transform.clone(), c.offer, c.spi));
                break;
            }
        }
        if !selectors_fit {
            return Err(Error::InvalidIdentity);
        }
        let (peer, child, prop_number, t, offer, spi_out) = choice.ok_or(Error::NoProposalChosen)?;
        let spi_in = self.spis.allocate().ok_or(Error::Local("no SPI"))?;
        let nr = self.random_bytes(32);
        let (ke, gxy) = match offer.group {
            Some(g) => {
                let dh = DhSecret::generate(g, &mut *self.rng).map_err(|_| Error::Local("dh"))?;
                let peer_ke = find(&raws, PayloadType::KE)
                    .map(|r| r.body())
                    .ok_or(Error::PeerMisbehaved(PeerMisbehaved::MissingPayload))?;
                let z = dh
                    .agree(peer_ke)
                    .map_err(|_| Error::PeerMisbehaved(PeerMisbehaved::InvalidKeyExchange))?;
                (Some(dh.public_value().to_vec()), Some(z))
            }
            None => (None, None),
        };
        // Lifetimes: the shorter of the two.
        let lifetime = Lifetime {
            seconds: offer.lifetime.seconds.min(child.lifetime_seconds),
            kilobytes: match (offer.lifetime.kilobytes, child.lifetime_kilobytes) {
                (0, k) | (k, 0) => k,
                (a, b) => a.min(b),
            },
        };
        let mut rest = vec![
            Payload::Sa(SaPayload {
                doi: DOI_IPSEC,
                situation: sa_p.situation,
                // RFC 2408 §4.2: one proposal with the one chosen transform,
                // proposal and transform numbers as received.
                proposals: vec![Proposal {
                    number: prop_number,
                    protocol: ProtocolId::ESP,
                    spi: spi_in.to_be_bytes().to_vec(),
                    transforms: vec![t],
                }],
            }),
            Payload::Nonce(nr.clone()),
        ];
        if let Some(ke) = ke {
            rest.push(Payload::Ke(ke));
        }
        if !ids.is_empty() {
            rest.push(Payload::Id(ts_to_id(&ts_i)));
            rest.push(Payload::Id(ts_to_id(&ts_r)));
        }
        // RFC 3947 §5.2: the initiator's original addresses, echoed with ours.
        let nat_oa = if offer.encap == Encapsulation::UdpTransport {
            let oas: Vec<IpAddr> = raws
                .iter()
                .filter_map(|r| match &r.payload {
                    Payload::NatOa(oa) | Payload::NatOaDraft(oa) => nat_oa_address(oa),
                    _ => None,
                })
                .collect();
            match oas.as_slice() {
                [i, r] => Some(NatOriginalAddresses { initiator: *i, responder: *r }),
                _ => None,
            }
        } else {
            None
        };
        if nat_oa.is_some() {
            rest.push(nat_oa_payload(remote_ip, nat_t_draft));
            rest.push(nat_oa_payload(local_ip, nat_t_draft));
        }
        // RFC 2407 §4.6.3.1: tell the initiator when we shortened its lifetime.
        if lifetime != offer.lifetime {
            let mut data = Vec::new();
            let mut attrs = vec![
                Attribute::basic(p2attr::LIFE_TYPE, 1),
                Attribute::duration(p2attr::LIFE_DURATION, lifetime.seconds),
            ];
            if lifetime.kilobytes > 0 {
                attrs.push(Attribute::basic(p2attr::LIFE_TYPE, 2));
                attrs.push(Attribute::duration(p2attr::LIFE_DURATION, lifetime.kilobytes));
            }
            for a in &attrs {
                a.emit(&mut data);
            }
            rest.push(Payload::Notify(NotifyPayload {
                doi: DOI_IPSEC,
                protocol: ProtocolId::ESP,
                notify_type: NotifyType::RESPONDER_LIFETIME,
                spi: spi_in.to_be_bytes().to_vec(),
                data,
            }));
        }
        let (_, rest_bytes) = emit_chain(&rest);
        let hash2 = keys.hash2(mid, &ni, &rest_bytes);
        let sa = self.sas.get_mut(idx).ok_or(Error::Local("sa"))?;
        let mut iv2 = next_iv;
        let bytes = encrypt_message(
            &keys,
            &mut iv2,
            Self::header(sa, ExchangeType::QUICK_MODE, mid, 0),
            &hashed_chain(hash2.to_vec(), &rest),
        )?;
        // HASH(1) verified above: the pair is keyed by this authenticated
        // exchange. The inbound half goes in before HASH(2) is sent.
        let (inb, outb) = make_pair(
            proof,
            &keys,
            gxy.as_deref().map(|v| v.as_slice()),
            &ni,
            &nr,
            spi_in,
            spi_out,
            offer.proposal,
            offer.encap,
            lifetime,
            ts_r,
            ts_i,
            sa.local,
            sa.remote,
            nat_oa,
        );
        let id = sa.id;
        self.events.push_back(Event::InstallInbound { ike_sa: id, peer, inbound: Box::new(inb.clone()) });
        sa.quick.push(Exchange {
            message_id: mid,
            iv: iv2,
            flight: Flight { last_in: Some(fp), ..Flight::default() },
            finished: None,
            installed_spi: None,
            state: QmState::RSent2 { peer, ni, nr, spi_in, pair: Box::new((inb, outb)) },
        });
        self.send(now, idx, Some(mid), bytes, true);
        Ok(())
    }

    /// The peer entries that describe children of the same peer as `peer`
    /// (same addresses and identity): `peer` first.
    fn children_of_peer(&self, peer: usize) -> Vec<usize> {
        let Some(base) = self.config.peers.get(peer) else {
            return Vec::new();
        };
        let same = |p: &super::PeerConfig| {
            p.remote_address == base.remote_address
                && p.local_address == base.local_address
                && p.remote_id == base.remote_id
        };
        core::iter::once(peer)
            .chain(
                self.config
                    .peers
                    .iter()
                    .enumerate()
                    .filter(|(i, p)| *i != peer && self.peer_active(*i) && same(p))
                    .map(|(i, _)| i),
            )
            .collect()
    }
}
