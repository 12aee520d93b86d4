//! Phase 1: Main Mode and Aggressive Mode, with pre-shared keys or signatures
//! (the signature payloads and checks are in `signature.rs`).
//!
//! RFC 2409 §5.4, Main Mode (Identity Protection):
//! ```text
//!       Initiator                          Responder
//!      -----------                        -----------
//!       HDR, SA                     -->                     MmISentSa
//!                                   <--    HDR, SA          MmRSentSa
//!       HDR, KE, Ni                 -->                     MmISentKe
//!                                   <--    HDR, KE, Nr      MmRSentKe
//!       HDR*, IDii, HASH_I          -->                     MmISentAuth
//!                                   <--    HDR*, IDir, HASH_R  Established
//! ```
//! RFC 2409 §5.4, Aggressive Mode:
//! ```text
//!       HDR, SA, KE, Ni, IDii       -->                     AmISent1
//!                                   <--    HDR, SA, KE, Nr, IDir, HASH_R
//!                                                           AmRSent2
//!       HDR*, HASH_I                -->                     Established
//! ```
//! Transitions (one place, see [`Engine::phase1_datagram`]):
//! MmISentSa → MmISentKe → MmISentAuth → Established (initiator, MM);
//! new → MmRSentSa → MmRSentKe → Established (responder, MM);
//! AmISent1 → Established (initiator, AM); new → AmRSent2 → Established
//! (responder, AM); any error → Dead (the SA is removed).

use super::config::{AuthMethod, IkeProposal, PeerConfig, Phase1Mode};
use super::signature::{certificate_requests, peer_asked_for_certificate, skeyid};
use super::table::{Admission, Pool};
use super::types::secs;
use super::{
    decrypt_body, encrypt_message, fingerprint, parse_plain, Engine, Error, Event, Flight, IkeSa, IkeSaId,
    PeerMisbehaved,
};
use crate::crypto::{ct_eq, Cipher, DhGroup, DhSecret, HashAlgorithm};
use crate::keys::{derive_phase1, Phase1Keys};
use crate::msgs::{
    emit_one, p1attr, parse_chain, Attribute, ExchangeType, Header, IdPayload, NotifyPayload, NotifyType,
    Payload, PayloadType, Proposal, ProtocolId, RawPayload, SaPayload, Transform, DOI_IPSEC, KEY_IKE,
    SIT_IDENTITY_ONLY,
};
use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

/// RFC 3947 §2: the NAT-T vendor id.
pub const VID_NAT_T_RFC3947: [u8; 16] =
    [0x4a, 0x13, 0x1c, 0x81, 0x07, 0x03, 0x58, 0x45, 0x5c, 0x57, 0x28, 0xf2, 0x0e, 0x95, 0x45, 0x2f];
/// draft-ietf-ipsec-nat-t-ike-03: MD5("draft-ietf-ipsec-nat-t-ike-03").
pub const VID_NAT_T_DRAFT_03: [u8; 16] =
    [0x7d, 0x94, 0x19, 0xa6, 0x53, 0x10, 0xca, 0x6f, 0x2c, 0x17, 0x9d, 0x92, 0x15, 0x52, 0x9d, 0x56];
/// draft-ietf-ipsec-nat-t-ike-02: MD5("draft-ietf-ipsec-nat-t-ike-02").
pub const VID_NAT_T_DRAFT_02: [u8; 16] =
    [0xcd, 0x60, 0x46, 0x43, 0x35, 0xdf, 0x21, 0xf8, 0x7c, 0xfd, 0xb2, 0xfc, 0x68, 0xb6, 0xa4, 0x48];
/// draft-ietf-ipsec-nat-t-ike-02 as many implementations hash it, with a
/// trailing newline: MD5("draft-ietf-ipsec-nat-t-ike-02\n").
pub const VID_NAT_T_DRAFT_02_N: [u8; 16] =
    [0x90, 0xcb, 0x80, 0x91, 0x3e, 0xbb, 0x69, 0x6e, 0x08, 0x63, 0x81, 0xb5, 0xec, 0x42, 0x7b, 0x1f];
/// RFC 3706 §3.1: the DPD vendor id.
pub const VID_DPD: [u8; 16] =
    [0xaf, 0xca, 0xd7, 0x13, 0x68, 0xa1, 0xf1, 0xc9, 0x6b, 0x86, 0x96, 0xfc, 0x77, 0x57, 0x01, 0x00];

/// A NAT-T dialect a peer announces with its vendor id. Drafts 02 and 03
/// differ from RFC 3947 only in numbers: NAT-D/NAT-OA payload types 130/131
/// and UDP encapsulation modes 61443/61444 (both sides float to 4500 alike).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NatTVersion {
    /// RFC 3947.
    Rfc3947,
    /// draft-ietf-ipsec-nat-t-ike-03.
    Draft03,
    /// draft-ietf-ipsec-nat-t-ike-02.
    Draft02,
    /// draft-ietf-ipsec-nat-t-ike-02 with the newline in its hash.
    Draft02Newline,
}

impl NatTVersion {
    /// Every dialect, most preferred first (strongSwan's order): a peer that
    /// offers RFC 3947 and drafts gets RFC 3947.
    pub(crate) const ALL: [Self; 4] = [Self::Rfc3947, Self::Draft03, Self::Draft02, Self::Draft02Newline];

    pub(crate) fn vendor_id(self) -> &'static [u8; 16] {
        match self {
            Self::Rfc3947 => &VID_NAT_T_RFC3947,
            Self::Draft03 => &VID_NAT_T_DRAFT_03,
            Self::Draft02 => &VID_NAT_T_DRAFT_02,
            Self::Draft02Newline => &VID_NAT_T_DRAFT_02_N,
        }
    }

    pub(crate) fn is_draft(self) -> bool {
        self != Self::Rfc3947
    }
}

/// Proof that the peer authenticated: its HASH_I/HASH_R verified (PSK), or
/// its certificate validated and its SIG_I/SIG_R verified (signatures).
/// Only `verify_peer_hash` and `Engine::authenticate_peer` create one, and
/// `State::Established` needs one: no code path reaches an established SA
/// around those checks.
#[derive(Debug)]
pub struct PeerAuthenticated(());

/// Compares our computation of the peer's hash with what it sent.
fn verify_peer_hash(expected: &[u8], received: &[u8]) -> Result<PeerAuthenticated, Error> {
    if ct_eq(expected, received) {
        Ok(PeerAuthenticated(()))
    } else {
        Err(Error::AuthenticationFailed)
    }
}

impl Engine {
    /// The peer's proof over `expected` (HASH_I or HASH_R): its HASH with
    /// PSK; with signatures its certificate, ID (`id_body`) and SIG.
    fn authenticate_peer(
        &self,
        now: Instant,
        cfg: &PeerConfig,
        raws: &[RawPayload<'_>],
        id_body: &[u8],
        expected: &[u8],
    ) -> Result<PeerAuthenticated, Error> {
        match &cfg.auth {
            AuthMethod::PreSharedKey(_) => verify_peer_hash(expected, get_bytes(raws, PayloadType::HASH)?),
            AuthMethod::PublicKey(p) => match self.check_signature(now, p, raws, id_body, expected) {
                Ok(()) => Ok(PeerAuthenticated(())),
                Err(reason) => {
                    tracing::warn!(peer = %cfg.name, ?reason, "signature authentication refused");
                    Err(Error::Certificate(reason))
                }
            },
        }
    }
}

/// Phase-1 state; each variant holds only what its next step needs.
#[derive(Debug)]
pub(super) enum State {
    MmISentSa {
        sa_i_b: Vec<u8>,
    },
    MmISentKe {
        sa_i_b: Vec<u8>,
        chosen: IkeProposal,
        dh: DhSecret,
        ni: Vec<u8>,
    },
    MmISentAuth {
        sa_i_b: Vec<u8>,
        keys: Box<Phase1Keys>,
        gxi: Vec<u8>,
        gxr: Vec<u8>,
    },
    MmRSentSa {
        sa_i_b: Vec<u8>,
        chosen: IkeProposal,
    },
    MmRSentKe {
        sa_i_b: Vec<u8>,
        keys: Box<Phase1Keys>,
        gxi: Vec<u8>,
        gxr: Vec<u8>,
        /// MM3 carried a CERTREQ (one in MM5 counts too).
        peer_asked: bool,
    },
    AmISent1 {
        sa_i_b: Vec<u8>,
        dh: DhSecret,
        ni: Vec<u8>,
        idii_b: Vec<u8>,
    },
    AmRSent2 {
        sa_i_b: Vec<u8>,
        keys: Box<Phase1Keys>,
        gxi: Vec<u8>,
        gxr: Vec<u8>,
        idii_b: Vec<u8>,
    },
    Established {
        keys: Box<Phase1Keys>,
        #[allow(dead_code)]
        proof: PeerAuthenticated,
    },
    Dead,
}

impl State {
    /// The variant name, for traces and the transition snapshot test.
    pub(super) fn name(&self) -> &'static str {
        match self {
            Self::MmISentSa { .. } => "MmISentSa",
            Self::MmISentKe { .. } => "MmISentKe",
            Self::MmISentAuth { .. } => "MmISentAuth",
            Self::MmRSentSa { .. } => "MmRSentSa",
            Self::MmRSentKe { .. } => "MmRSentKe",
            Self::AmISent1 { .. } => "AmISent1",
            Self::AmRSent2 { .. } => "AmRSent2",
            Self::Established { .. } => "Established",
            Self::Dead => "Dead",
        }
    }
}

fn cipher_attrs(c: Cipher) -> [Attribute; 2] {
    [
        Attribute::basic(p1attr::ENCRYPTION_ALGORITHM, p1attr::ENCR_AES_CBC),
        Attribute::basic(p1attr::KEY_LENGTH, c.key_bits()),
    ]
}

fn hash_id(h: HashAlgorithm) -> u16 {
    match h {
        HashAlgorithm::Sha1 => p1attr::HASH_SHA1,
        HashAlgorithm::Sha256 => p1attr::HASH_SHA2_256,
        HashAlgorithm::Sha384 => p1attr::HASH_SHA2_384,
        HashAlgorithm::Sha512 => p1attr::HASH_SHA2_512,
    }
}

/// The phase-1 SA payload offering `proposals` (one transform each).
pub(super) fn ike_sa_payload(proposals: &[IkeProposal], lifetime: u32, auth: u16) -> SaPayload {
    let transforms = proposals
        .iter()
        .zip(1u8..)
        .map(|(p, n)| {
            let [e, k] = cipher_attrs(p.cipher);
            Transform {
                number: n,
                transform_id: KEY_IKE,
                attributes: vec![
                    e,
                    k,
                    Attribute::basic(p1attr::HASH_ALGORITHM, hash_id(p.hash)),
                    Attribute::basic(p1attr::AUTH_METHOD, auth),
                    Attribute::basic(p1attr::GROUP_DESCRIPTION, p.group.id()),
                    Attribute::basic(p1attr::LIFE_TYPE, p1attr::LIFE_SECONDS),
                    Attribute::duration(p1attr::LIFE_DURATION, lifetime),
                ],
            }
        })
        .collect();
    SaPayload {
        doi: DOI_IPSEC,
        situation: SIT_IDENTITY_ONLY,
        proposals: vec![Proposal { number: 1, protocol: ProtocolId::ISAKMP, spi: Vec::new(), transforms }],
    }
}

/// Reads one phase-1 transform; `None` if any attribute is unsupported or
/// its authentication method is not `auth_method`.
pub(super) fn parse_ike_transform(t: &Transform, auth_method: u16) -> Option<IkeProposal> {
    if t.transform_id != KEY_IKE {
        return None;
    }
    let (mut enc, mut keylen, mut hash, mut auth, mut group) = (None, None, None, None, None);
    for a in &t.attributes {
        let v = a.as_u64()?;
        match a.kind {
            p1attr::ENCRYPTION_ALGORITHM => enc = Some(v),
            p1attr::KEY_LENGTH => keylen = Some(v),
            p1attr::HASH_ALGORITHM => {
                hash = Some(match u16::try_from(v).ok()? {
                    p1attr::HASH_SHA1 => HashAlgorithm::Sha1,
                    p1attr::HASH_SHA2_256 => HashAlgorithm::Sha256,
                    p1attr::HASH_SHA2_384 => HashAlgorithm::Sha384,
                    p1attr::HASH_SHA2_512 => HashAlgorithm::Sha512,
                    _ => return None,
                })
            }
            p1attr::AUTH_METHOD => auth = Some(v),
            p1attr::GROUP_DESCRIPTION => group = DhGroup::from_id(u16::try_from(v).ok()?),
            p1attr::LIFE_TYPE | p1attr::LIFE_DURATION => {}
            _ => return None,
        }
    }
    if enc != Some(u64::from(p1attr::ENCR_AES_CBC)) || auth != Some(u64::from(auth_method)) {
        return None;
    }
    Some(IkeProposal { cipher: Cipher::aes_cbc(u16::try_from(keylen?).ok()?)?, hash: hash?, group: group? })
}

/// Responder choice among the initiator's transforms (every proposal, every
/// transform, RFC 2408 §4.2): the first (in the initiator's order) equal to
/// one of ours, or with `prefer_configured` the one equal to our earliest
/// proposal. Returns it verbatim and the parsed value.
pub(super) fn select_ike(
    sa: &SaPayload,
    ours: &[IkeProposal],
    prefer_configured: bool,
    auth: u16,
) -> Result<(Proposal, IkeProposal), Error> {
    if sa.doi != DOI_IPSEC {
        return Err(Error::NoProposalChosen);
    }
    let rank = |ike: &IkeProposal| ours.iter().position(|o| o == ike);
    let mut allowed = sa
        .proposals
        .iter()
        .filter(|p| p.protocol == ProtocolId::ISAKMP)
        .flat_map(|p| p.transforms.iter().map(move |t| (p, t)))
        .filter_map(|(p, t)| {
            parse_ike_transform(t, auth).filter(|ike| rank(ike).is_some()).map(|ike| (p, t, ike))
        });
    let found = if prefer_configured {
        // `min_by_key` keeps the first of equal keys: the initiator's order.
        allowed.min_by_key(|(_, _, ike)| rank(ike))
    } else {
        allowed.next()
    };
    let (p, t, ike) = found.ok_or(Error::NoProposalChosen)?;
    let chosen =
        Proposal { number: p.number, protocol: p.protocol, spi: p.spi.clone(), transforms: vec![t.clone()] };
    Ok((chosen, ike))
}

/// [`select_ike`] with a connection's proposals, preference and method.
fn select_ike_for(sa: &SaPayload, cfg: &PeerConfig) -> Result<(Proposal, IkeProposal), Error> {
    select_ike(sa, &cfg.ike_proposals, cfg.prefer_configured_proposals, cfg.auth.method_id())
}

/// Initiator check of the responder's single chosen transform.
fn accept_ike_reply(sa: &SaPayload, offered: &[IkeProposal], auth: u16) -> Result<IkeProposal, Error> {
    let bad = Error::PeerMisbehaved(PeerMisbehaved::InvalidProposalReply);
    match sa.proposals.as_slice() {
        [p] => match p.transforms.as_slice() {
            [t] => parse_ike_transform(t, auth).filter(|c| offered.contains(c)).ok_or(bad),
            _ => Err(bad),
        },
        _ => Err(bad),
    }
}

pub(super) fn find<'a, 'b>(raws: &'b [RawPayload<'a>], pt: PayloadType) -> Option<&'b RawPayload<'a>> {
    raws.iter().find(|r| r.payload.payload_type() == pt)
}

fn missing() -> Error {
    Error::PeerMisbehaved(PeerMisbehaved::MissingPayload)
}

pub(super) fn get_sa<'b>(raws: &'b [RawPayload<'_>]) -> Result<(&'b SaPayload, &'b [u8]), Error> {
    match find(raws, PayloadType::SA) {
        Some(r) => match &r.payload {
            Payload::Sa(sa) => Ok((sa, r.body())),
            _ => Err(missing()),
        },
        None => Err(missing()),
    }
}

pub(super) fn get_bytes<'b>(raws: &'b [RawPayload<'_>], pt: PayloadType) -> Result<&'b [u8], Error> {
    find(raws, pt).map(|r| r.body()).ok_or_else(missing)
}

/// RFC 2409 §5: nonce data "MUST be between 8 and 256 bytes inclusive".
pub(super) fn get_nonce<'b>(raws: &'b [RawPayload<'_>]) -> Result<&'b [u8], Error> {
    let n = get_bytes(raws, PayloadType::NONCE)?;
    if (8..=256).contains(&n.len()) {
        Ok(n)
    } else {
        Err(Error::PeerMisbehaved(PeerMisbehaved::BadNonce))
    }
}

fn get_id<'b>(raws: &'b [RawPayload<'_>]) -> Result<(&'b IdPayload, &'b [u8]), Error> {
    match find(raws, PayloadType::ID) {
        Some(r) => match &r.payload {
            Payload::Id(id) => Ok((id, r.body())),
            _ => Err(missing()),
        },
        None => Err(missing()),
    }
}

fn has_initial_contact(raws: &[RawPayload<'_>]) -> bool {
    raws.iter()
        .any(|r| matches!(&r.payload, Payload::Notify(n) if n.notify_type == NotifyType::INITIAL_CONTACT))
}

fn body_of(p: &Payload) -> Vec<u8> {
    emit_one(p, PayloadType::NONE).split_off(4)
}

/// Our vendor ids: DPD, then the vendor id of each NAT-T dialect in
/// `nat_t` (as initiator all we speak; as responder the one chosen).
fn vendor_ids(nat_t: &[NatTVersion]) -> Vec<Payload> {
    let mut v = vec![Payload::VendorId(VID_DPD.to_vec())];
    v.extend(nat_t.iter().map(|n| Payload::VendorId(n.vendor_id().to_vec())));
    v
}

/// The most preferred of `ours` that the peer announced, if any.
fn peer_nat_t(raws: &[RawPayload<'_>], ours: &[NatTVersion]) -> Option<NatTVersion> {
    ours.iter().copied().find(|n| {
        raws.iter().any(|r| matches!(&r.payload, Payload::VendorId(v) if v.as_slice() == n.vendor_id()))
    })
}

/// Records the NAT-T dialect agreed on (none when not enabled or not
/// announced by the peer).
fn agree_nat_t(sa: &mut IkeSa, version: Option<NatTVersion>) {
    sa.nat_t = version.is_some();
    sa.nat_t_draft = version.is_some_and(NatTVersion::is_draft);
}

/// RFC 3947 §3.2: HASH = HASH(CKY-I | CKY-R | IP | Port), negotiated hash.
fn nat_d_hash(hash: HashAlgorithm, sa: &IkeSa, addr: SocketAddr) -> Vec<u8> {
    let ip = match addr.ip() {
        std::net::IpAddr::V4(a) => a.octets().to_vec(),
        std::net::IpAddr::V6(a) => a.octets().to_vec(),
    };
    hash.hash(&[&sa.cky_i, &sa.cky_r, &ip, &addr.port().to_be_bytes()])
}

/// RFC 3947 §3.2: the first NAT-D is the destination (the peer), then ours.
/// With `fake_local` (forced UDP encapsulation) ours hashes no address: the
/// cookies alone, which no address and port of ours can match.
fn nat_d_payloads(hash: HashAlgorithm, sa: &IkeSa, fake_local: bool) -> Vec<Payload> {
    if !sa.nat_t {
        return Vec::new();
    }
    let remote = nat_d_hash(hash, sa, sa.remote);
    let local = if fake_local { hash.hash(&[&sa.cky_i, &sa.cky_r]) } else { nat_d_hash(hash, sa, sa.local) };
    if sa.nat_t_draft {
        vec![Payload::NatDDraft(remote), Payload::NatDDraft(local)]
    } else {
        vec![Payload::NatD(remote), Payload::NatD(local)]
    }
}

/// Compares the peer's NAT-D payloads with the addresses we see. Either
/// payload number is read whatever dialect was agreed, as strongSwan does;
/// a hash whose length is not the negotiated hash's is malformed. With
/// `forced` (forced UDP encapsulation) we count ourselves behind a NAT
/// whatever the hashes say, as our fake NAT-D told the peer.
fn detect_nat(
    hash: HashAlgorithm,
    sa: &mut IkeSa,
    raws: &[RawPayload<'_>],
    forced: bool,
) -> Result<(), Error> {
    if !sa.nat_t {
        return Ok(());
    }
    let nat_d: Vec<&[u8]> = raws
        .iter()
        .filter_map(|r| match &r.payload {
            Payload::NatD(h) | Payload::NatDDraft(h) => Some(h.as_slice()),
            _ => None,
        })
        .collect();
    let me = nat_d_hash(hash, sa, sa.local);
    if nat_d.iter().any(|h| h.len() != me.len()) {
        return Err(Error::PeerMisbehaved(PeerMisbehaved::MalformedNatDiscovery));
    }
    let Some((first, rest)) = nat_d.split_first() else {
        // RFC 3947 §3.2: without NAT-D payloads there is no NAT-T.
        sa.nat_t = false;
        sa.nat_t_draft = false;
        return Ok(());
    };
    let them = nat_d_hash(hash, sa, sa.remote);
    sa.nat = super::NatStatus {
        local_behind: forced || !ct_eq(first, &me),
        remote_behind: !rest.iter().any(|h| ct_eq(h, &them)),
    };
    Ok(())
}

/// RFC 3947 §4: with a NAT on the path the initiator moves to port 4500
/// (MM5 or AM3) and every IKE packet then carries the non-ESP marker.
fn float(sa: &mut IkeSa) {
    if sa.nat_t && sa.nat.any() {
        sa.local.set_port(4500);
        sa.remote.set_port(4500);
    }
}

/// What a phase-1 step may change in an SA besides its state, kept to put
/// back when the message fails.
struct Saved {
    cky_r: [u8; 8],
    local: SocketAddr,
    remote: SocketAddr,
    nat_t: bool,
    nat_t_draft: bool,
    nat: super::NatStatus,
    chosen: Option<IkeProposal>,
    p1_iv: Vec<u8>,
    last_in: Option<[u8; 32]>,
    retransmit: Option<super::Retransmit>,
}

impl Saved {
    /// Keeps the fields and stops retransmission (the step re-arms it).
    fn take(sa: &mut IkeSa) -> Self {
        Self {
            cky_r: sa.cky_r,
            local: sa.local,
            remote: sa.remote,
            nat_t: sa.nat_t,
            nat_t_draft: sa.nat_t_draft,
            nat: sa.nat,
            chosen: sa.chosen,
            p1_iv: sa.p1_iv.clone(),
            last_in: sa.flight.last_in,
            retransmit: sa.flight.retransmit.take(),
        }
    }

    fn restore(self, sa: &mut IkeSa) {
        sa.cky_r = self.cky_r;
        (sa.local, sa.remote) = (self.local, self.remote);
        (sa.nat_t, sa.nat_t_draft, sa.nat) = (self.nat_t, self.nat_t_draft, self.nat);
        sa.chosen = self.chosen;
        sa.p1_iv = self.p1_iv;
        sa.flight.last_in = self.last_in;
        sa.flight.retransmit = self.retransmit;
    }
}

impl Engine {
    /// RFC 2407 §4.6.3.3: INITIAL-CONTACT tells the peer we have no other
    /// SA with it, so it is sent only when no other IKE SA with this peer
    /// is established (not on re-establishment) and no child SA with it
    /// outlived its ISAKMP SA (the peer would drop it).
    fn other_established_with_peer(&self, idx: usize) -> bool {
        let Some(me) = self.sas.get(idx) else {
            return false;
        };
        self.sas.iter().any(|s| s.id != me.id && s.remote.ip() == me.remote.ip() && s.keys().is_some())
            || self.orphans.iter().any(|o| o.remote == me.remote.ip())
    }

    /// Starts phase 1 with the peer at config index `peer` (what
    /// [`Command::Initiate`](super::Command::Initiate) does) and returns the
    /// new IKE SA, so the driver need not look for it. `None` when nothing
    /// was started: no such or a retired entry, a responder-only one
    /// (`%any`), or a failure before the first message (reported as
    /// [`Event::Failed`](super::Event::Failed)).
    pub fn initiate(&mut self, now: Instant, peer: usize) -> Option<IkeSaId> {
        let cfg = self.config.peers.get(peer).cloned()?;
        // A responder-only entry (`%any`) has no address to initiate to.
        if !self.peer_active(peer) || cfg.remote_address.is_unspecified() {
            return None;
        }
        let mut cky_i = [0u8; 8];
        self.rng.fill_bytes(&mut cky_i);
        let id = self.alloc_id();
        let local = SocketAddr::new(cfg.local_address, 500);
        let remote = SocketAddr::new(cfg.remote_address, 500);
        let lifetime = secs(cfg.ike_lifetime);
        let mut sa = IkeSa {
            id,
            peer,
            initiator: true,
            local,
            remote,
            peer_id: Vec::new(),
            cky_i,
            cky_r: [0; 8],
            state: State::Dead,
            p1_iv: Vec::new(),
            flight: Flight::default(),
            quick: Vec::new(),
            children: Vec::new(),
            dpd_sequence: 0,
            nat_t: false,
            nat_t_draft: false,
            nat: super::NatStatus::default(),
            keepalive_at: None,
            expires_at: None,
            dpd: None,
            chosen: None,
            admission: None,
            seen_ids: super::SeenIds::default(),
            last_error: None,
        };
        let nat_t: Vec<NatTVersion> = if cfg.nat_traversal { self.nat_t_offer.clone() } else { Vec::new() };
        let result = match cfg.mode {
            Phase1Mode::Main => {
                let sap = Payload::Sa(ike_sa_payload(&cfg.ike_proposals, lifetime, cfg.auth.method_id()));
                let sa_i_b = body_of(&sap);
                let mut payloads = vec![sap];
                payloads.extend(vendor_ids(&nat_t));
                sa.state = State::MmISentSa { sa_i_b };
                Ok((ExchangeType::MAIN_MODE, payloads))
            }
            Phase1Mode::Aggressive => {
                // All Aggressive Mode proposals must share the KE's group.
                let group = cfg.ike_proposals.first().map(|p| p.group)?;
                let offered: Vec<IkeProposal> =
                    cfg.ike_proposals.iter().copied().filter(|p| p.group == group).collect();
                match DhSecret::generate(group, &mut *self.rng) {
                    Ok(dh) => {
                        let sap = Payload::Sa(ike_sa_payload(&offered, lifetime, cfg.auth.method_id()));
                        let sa_i_b = body_of(&sap);
                        let ni = self.random_bytes(32);
                        let idp = Payload::Id(cfg.local_id.to_payload());
                        let idii_b = body_of(&idp);
                        let mut payloads = vec![
                            sap,
                            Payload::Ke(dh.public_value().to_vec()),
                            Payload::Nonce(ni.clone()),
                            idp,
                        ];
                        payloads.extend(certificate_requests(&cfg));
                        payloads.extend(vendor_ids(&nat_t));
                        sa.state = State::AmISent1 { sa_i_b, dh, ni, idii_b };
                        Ok((ExchangeType::AGGRESSIVE, payloads))
                    }
                    Err(_) => Err(Error::Local("dh")),
                }
            }
        };
        match result {
            Ok((ex, payloads)) => {
                let h = Self::header(&sa, ex, 0, 0);
                let bytes = crate::msgs::Message { header: h, payloads }.emit();
                self.sas.push(sa);
                let idx = self.sas.len() - 1;
                self.send(now, idx, None, bytes, true);
                Some(id)
            }
            Err(e) => {
                self.events.push_back(Event::Failed { ike_sa: id, error: e });
                None
            }
        }
    }

    /// First message from a new initiator.
    pub(super) fn respond_new(
        &mut self,
        now: Instant,
        local: SocketAddr,
        remote: SocketAddr,
        header: &Header,
        datagram: &[u8],
    ) {
        // A copy of a first message we refused: the same answer again.
        if let Some(answer) = self.refused_first.get(&fingerprint(datagram)) {
            self.transmits.push_back(answer.clone());
            self.stats.processed += 1;
            return;
        }
        // An exact address entry first, then one that accepts any peer.
        let exact = self.peer_by_address.get(&remote.ip()).copied();
        let Some(peer) = exact.or(self.any_peer) else {
            self.stats.dropped_no_config += 1;
            return;
        };
        let pool = if exact.is_some() { Pool::Configured } else { Pool::Any };
        let Ok(raws) = parse_plain(header, datagram) else {
            self.stats.dropped_malformed += 1;
            return;
        };
        if !self.admit_half_open(remote.ip(), pool) {
            return;
        }
        let id = self.alloc_id();
        let cky_r = self.responder_cookie(remote, &header.initiator_cookie);
        self.sas.push(IkeSa {
            id,
            peer,
            initiator: false,
            local,
            remote,
            peer_id: Vec::new(),
            cky_i: header.initiator_cookie,
            cky_r,
            state: State::Dead,
            p1_iv: Vec::new(),
            flight: Flight::default(),
            quick: Vec::new(),
            children: Vec::new(),
            dpd_sequence: 0,
            nat_t: false,
            nat_t_draft: false,
            nat: super::NatStatus::default(),
            keepalive_at: None,
            expires_at: None,
            dpd: None,
            chosen: None,
            admission: Some(Admission::new(remote.ip(), pool)),
            seen_ids: super::SeenIds::default(),
            last_error: None,
        });
        let idx = self.sas.len() - 1;
        let r = if header.exchange_type == ExchangeType::MAIN_MODE {
            self.mm_responder_1(now, idx, &raws)
        } else {
            self.am_responder_1(now, idx, &raws)
        };
        match r {
            Ok(()) => {
                self.stats.processed += 1;
                if let Some(sa) = self.sas.get_mut(idx) {
                    sa.flight.last_in = Some(fingerprint(datagram));
                }
            }
            Err(e) => {
                self.stats.failed += 1;
                if let Some(answer) = e.notify_type().and_then(|n| self.plain_notify(idx, n)) {
                    self.remember_refusal(fingerprint(datagram), answer);
                }
                self.handle_error(idx, header, e);
            }
        }
    }

    /// Bounded half-open state (nothing proves a first message came from
    /// its source address): a share per source address, a total, and a part
    /// of the total only connections naming the peer's address may use, so
    /// that a flood from spoofed addresses onto a `%any` connection does not
    /// lock configured peers out. When a budget is full, the oldest SA of it
    /// that never got message 3 (whose initiator may not even exist) makes
    /// room; the first message is refused, counted by reason, only when
    /// every SA of the budget got message 3. The per-source share works the
    /// same way, so that a few message 1s spoofed with a configured peer's
    /// address cannot hold its share against it.
    fn admit_half_open(&mut self, source: IpAddr, pool: Pool) -> bool {
        if self.sas.half_open_from(source) >= self.config.max_half_open_per_peer {
            let Some(pos) = self.sas.oldest_unverified_from(source).and_then(|id| self.sas.position(id))
            else {
                self.stats.dropped_half_open_limit += 1;
                self.stats.half_open_refused_per_source += 1;
                return false;
            };
            // As below: no exchange of it got past message 2.
            let _ = self.sas.remove(pos);
            self.stats.half_open_evicted += 1;
        }
        let (total, any) = self.sas.half_open();
        let any_cap = self.config.max_half_open.saturating_sub(self.config.half_open_reserved);
        let full = match pool {
            Pool::Any => any >= any_cap || total >= self.config.max_half_open,
            Pool::Configured => total >= self.config.max_half_open,
        };
        if !full {
            return true;
        }
        let victim = match pool {
            Pool::Any => self.sas.oldest_unverified(Pool::Any),
            Pool::Configured => {
                self.sas.oldest_unverified(Pool::Any).or_else(|| self.sas.oldest_unverified(Pool::Configured))
            }
        };
        let Some(pos) = victim.and_then(|id| self.sas.position(id)) else {
            self.stats.dropped_half_open_limit += 1;
            if pool == Pool::Any && any >= any_cap {
                self.stats.half_open_refused_any += 1;
            } else {
                self.stats.half_open_refused_total += 1;
            }
            return false;
        };
        // Removed without a word: no exchange of it got past message 2,
        // so no SPI, event or peer knows of it.
        let _ = self.sas.remove(pos);
        self.stats.half_open_evicted += 1;
        true
    }

    fn mm_responder_1(&mut self, now: Instant, idx: usize, raws: &[RawPayload<'_>]) -> Result<(), Error> {
        let peer = self.sas.get(idx).map_or(0, |s| s.peer);
        let cfg = self.config.peers.get(peer).cloned().ok_or(Error::Local("peer"))?;
        let (sa_payload, sa_i_b) = get_sa(raws)?;
        let (chosen_p, chosen) = select_ike_for(sa_payload, &cfg)?;
        let reply_sa =
            SaPayload { doi: DOI_IPSEC, situation: sa_payload.situation, proposals: vec![chosen_p] };
        let nat_t = peer_nat_t(raws, &self.nat_t_offer).filter(|_| cfg.nat_traversal);
        let sa = self.sas.get_mut(idx).ok_or(Error::Local("sa"))?;
        agree_nat_t(sa, nat_t);
        let mut payloads = vec![Payload::Sa(reply_sa)];
        payloads.extend(vendor_ids(nat_t.as_slice()));
        sa.chosen = Some(chosen);
        sa.state = State::MmRSentSa { sa_i_b: sa_i_b.to_vec(), chosen };
        let bytes =
            crate::msgs::Message { header: Self::header(sa, ExchangeType::MAIN_MODE, 0, 0), payloads }.emit();
        self.send(now, idx, None, bytes, true);
        Ok(())
    }

    fn am_responder_1(&mut self, now: Instant, idx: usize, raws: &[RawPayload<'_>]) -> Result<(), Error> {
        let peer = self.sas.get(idx).map_or(0, |s| s.peer);
        let cfg = self.config.peers.get(peer).cloned().ok_or(Error::Local("peer"))?;
        // Aggressive Mode sends a PSK-keyed hash in the clear: refuse unless
        // explicitly enabled.
        if !cfg.accept_aggressive {
            return Err(Error::PeerMisbehaved(PeerMisbehaved::AggressiveModeRefused));
        }
        let (sa_payload, sa_i_b) = get_sa(raws)?;
        let (chosen_p, chosen) = select_ike_for(sa_payload, &cfg)?;
        let gxi = get_bytes(raws, PayloadType::KE)?.to_vec();
        let ni = get_nonce(raws)?.to_vec();
        let (idii, idii_b) = get_id(raws)?;
        if !cfg.remote_id.matches(idii) {
            return Err(Error::InvalidIdentity);
        }
        let dh = DhSecret::generate(chosen.group, &mut *self.rng).map_err(|_| Error::Local("dh"))?;
        let gxy = dh.agree(&gxi).map_err(|_| Error::PeerMisbehaved(PeerMisbehaved::InvalidKeyExchange))?;
        let nr = self.random_bytes(32);
        let nat_t = peer_nat_t(raws, &self.nat_t_offer).filter(|_| cfg.nat_traversal);
        let gxr = dh.public_value().to_vec();
        let skeyid = skeyid(&cfg.auth, chosen.hash, &ni, &nr, &gxy);
        let (cky_i, cky_r) = self.sas.get(idx).map(|s| (s.cky_i, s.cky_r)).ok_or(Error::Local("sa"))?;
        let keys = derive_phase1(chosen.hash, chosen.cipher, skeyid, &gxy, &cky_i, &cky_r, &gxi, &gxr);
        let idp = Payload::Id(cfg.local_id.to_payload());
        let idir_b = body_of(&idp);
        let hash_r = keys.hash_r(&gxi, &gxr, &cky_i, &cky_r, sa_i_b, &idir_b);
        let mut payloads = vec![
            Payload::Sa(SaPayload {
                doi: DOI_IPSEC,
                situation: sa_payload.situation,
                proposals: vec![chosen_p],
            }),
            Payload::Ke(gxr.clone()),
            Payload::Nonce(nr),
            idp,
        ];
        payloads.extend(self.authentication_payloads(&cfg, &hash_r, peer_asked_for_certificate(raws))?);
        payloads.extend(certificate_requests(&cfg));
        let sa = self.sas.get_mut(idx).ok_or(Error::Local("sa"))?;
        agree_nat_t(sa, nat_t);
        payloads.extend(vendor_ids(nat_t.as_slice()));
        payloads.extend(nat_d_payloads(chosen.hash, sa, cfg.force_encap));
        sa.p1_iv = keys.initial_iv.clone();
        sa.chosen = Some(chosen);
        sa.state = State::AmRSent2 {
            sa_i_b: sa_i_b.to_vec(),
            keys: Box::new(keys),
            gxi,
            gxr,
            idii_b: idii_b.to_vec(),
        };
        let bytes =
            crate::msgs::Message { header: Self::header(sa, ExchangeType::AGGRESSIVE, 0, 0), payloads }
                .emit();
        self.send(now, idx, None, bytes, true);
        Ok(())
    }

    /// Every later phase-1 message of an existing SA.
    pub(super) fn phase1_datagram(
        &mut self,
        now: Instant,
        idx: usize,
        header: &Header,
        datagram: &[u8],
    ) -> Result<(), Error> {
        let fp = fingerprint(datagram);
        let peer;
        let state;
        let saved;
        {
            let sa = self.sas.get_mut(idx).ok_or(Error::Local("sa"))?;
            // A duplicate request: resend the last reply, change nothing.
            if sa.flight.last_in == Some(fp) {
                if let Some(out) = sa.flight.last_out.clone() {
                    self.transmits.push_back(super::wrap(sa.local, sa.remote, out));
                }
                return Ok(());
            }
            if matches!(sa.state, State::Established { .. } | State::Dead) {
                // Late or replayed phase-1 traffic: ignore.
                return Ok(());
            }
            let expected = match sa.state {
                State::AmISent1 { .. } | State::AmRSent2 { .. } => ExchangeType::AGGRESSIVE,
                _ => ExchangeType::MAIN_MODE,
            };
            if header.exchange_type != expected {
                // Not this exchange: drop without touching the state.
                return Ok(());
            }
            peer = sa.peer;
            saved = Saved::take(sa);
            state = core::mem::replace(&mut sa.state, State::Dead);
            sa.flight.last_in = Some(fp);
            if sa.cky_r == [0; 8] {
                sa.cky_r = header.responder_cookie;
            }
        }
        let result = self.phase1_step(now, idx, header, datagram, peer, &state);
        if result.is_err() {
            // Nothing of phase 1 is authenticated before HASH_I/HASH_R: a
            // message that fails leaves the exchange as it was, for the
            // genuine message (or its retransmission) to complete it.
            if let Some(sa) = self.sas.get_mut(idx) {
                saved.restore(sa);
                sa.state = state;
            }
        }
        result
    }

    /// One step of phase 1 from `state`; the caller restores the SA if it
    /// fails, so an error here may leave the SA half-updated.
    fn phase1_step(
        &mut self,
        now: Instant,
        idx: usize,
        header: &Header,
        datagram: &[u8],
        peer: usize,
        state: &State,
    ) -> Result<(), Error> {
        let cfg = self.config.peers.get(peer).cloned().ok_or(Error::Local("peer"))?;
        let auth = cfg.auth.method_id();
        match state {
            State::MmISentSa { sa_i_b } => {
                let raws = parse_plain(header, datagram)?;
                let (sa_payload, _) = get_sa(&raws)?;
                let chosen = accept_ike_reply(sa_payload, &cfg.ike_proposals, auth)?;
                let dh = DhSecret::generate(chosen.group, &mut *self.rng).map_err(|_| Error::Local("dh"))?;
                let ni = self.random_bytes(32);
                let nat_t = peer_nat_t(&raws, &self.nat_t_offer).filter(|_| cfg.nat_traversal);
                let sa = self.sas.get_mut(idx).ok_or(Error::Local("sa"))?;
                agree_nat_t(sa, nat_t);
                let mut payloads = vec![Payload::Ke(dh.public_value().to_vec()), Payload::Nonce(ni.clone())];
                payloads.extend(certificate_requests(&cfg));
                payloads.extend(nat_d_payloads(chosen.hash, sa, cfg.force_encap));
                sa.chosen = Some(chosen);
                sa.state = State::MmISentKe { sa_i_b: sa_i_b.clone(), chosen, dh, ni };
                let bytes = crate::msgs::Message {
                    header: Self::header(sa, ExchangeType::MAIN_MODE, 0, 0),
                    payloads,
                }
                .emit();
                self.send(now, idx, None, bytes, true);
                Ok(())
            }
            State::MmRSentSa { sa_i_b, chosen } => {
                let chosen = *chosen;
                let raws = parse_plain(header, datagram)?;
                let gxi = get_bytes(&raws, PayloadType::KE)?.to_vec();
                let ni = get_nonce(&raws)?.to_vec();
                let dh = DhSecret::generate(chosen.group, &mut *self.rng).map_err(|_| Error::Local("dh"))?;
                let gxy =
                    dh.agree(&gxi).map_err(|_| Error::PeerMisbehaved(PeerMisbehaved::InvalidKeyExchange))?;
                let nr = self.random_bytes(32);
                let gxr = dh.public_value().to_vec();
                let sa = self.sas.get_mut(idx).ok_or(Error::Local("sa"))?;
                detect_nat(chosen.hash, sa, &raws, cfg.force_encap)?;
                let skeyid = skeyid(&cfg.auth, chosen.hash, &ni, &nr, &gxy);
                let keys =
                    derive_phase1(chosen.hash, chosen.cipher, skeyid, &gxy, &sa.cky_i, &sa.cky_r, &gxi, &gxr);
                sa.p1_iv = keys.initial_iv.clone();
                sa.state = State::MmRSentKe {
                    sa_i_b: sa_i_b.clone(),
                    keys: Box::new(keys),
                    gxi,
                    gxr: gxr.clone(),
                    peer_asked: peer_asked_for_certificate(&raws),
                };
                let bytes = crate::msgs::Message {
                    header: Self::header(sa, ExchangeType::MAIN_MODE, 0, 0),
                    payloads: [Payload::Ke(gxr), Payload::Nonce(nr)]
                        .into_iter()
                        .chain(certificate_requests(&cfg))
                        .chain(nat_d_payloads(chosen.hash, sa, cfg.force_encap))
                        .collect(),
                }
                .emit();
                self.send(now, idx, None, bytes, true);
                // Message 3 carried our cookie: the initiator receives at
                // its address.
                self.sas.verified(idx);
                Ok(())
            }
            State::MmISentKe { sa_i_b, chosen, dh, ni } => {
                let chosen = *chosen;
                let raws = parse_plain(header, datagram)?;
                let gxr = get_bytes(&raws, PayloadType::KE)?.to_vec();
                let nr = get_nonce(&raws)?.to_vec();
                let gxy =
                    dh.agree(&gxr).map_err(|_| Error::PeerMisbehaved(PeerMisbehaved::InvalidKeyExchange))?;
                let gxi = dh.public_value().to_vec();
                let first_contact = cfg.initial_contact && !self.other_established_with_peer(idx);
                let (cky_i, cky_r) =
                    self.sas.get(idx).map(|s| (s.cky_i, s.cky_r)).ok_or(Error::Local("sa"))?;
                let skeyid = skeyid(&cfg.auth, chosen.hash, ni, &nr, &gxy);
                let keys =
                    derive_phase1(chosen.hash, chosen.cipher, skeyid, &gxy, &cky_i, &cky_r, &gxi, &gxr);
                let idp = Payload::Id(cfg.local_id.to_payload());
                let idii_b = body_of(&idp);
                let hash_i = keys.hash_i(&gxi, &gxr, &cky_i, &cky_r, sa_i_b, &idii_b);
                let mut payloads = vec![idp];
                payloads.extend(self.authentication_payloads(
                    &cfg,
                    &hash_i,
                    peer_asked_for_certificate(&raws),
                )?);
                let sa = self.sas.get_mut(idx).ok_or(Error::Local("sa"))?;
                detect_nat(chosen.hash, sa, &raws, cfg.force_encap)?;
                float(sa);
                if first_contact {
                    payloads.push(initial_contact(sa));
                }
                let mut iv = keys.initial_iv.clone();
                let bytes = encrypt_message(
                    &keys,
                    &mut iv,
                    Self::header(sa, ExchangeType::MAIN_MODE, 0, 0),
                    &payloads,
                )?;
                sa.p1_iv = iv;
                sa.state = State::MmISentAuth { sa_i_b: sa_i_b.clone(), keys: Box::new(keys), gxi, gxr };
                self.send(now, idx, None, bytes, true);
                Ok(())
            }
            State::MmRSentKe { sa_i_b, keys, gxi, gxr, peer_asked } => {
                let sa = self.sas.get(idx).ok_or(Error::Local("sa"))?;
                if !header.is_encrypted() {
                    return Err(Error::PeerMisbehaved(PeerMisbehaved::Unencrypted));
                }
                let (plain, next_iv) = decrypt_body(keys, &sa.p1_iv, datagram)?;
                // The first encrypted message: garbage after decryption almost
                // always means the PSKs differ (RFC 2409 gives no better signal).
                let raws = parse_chain(header.next_payload, &plain, true)
                    .map_err(|_| Error::AuthenticationFailed)?;
                let (idii, idii_b) = get_id(&raws)?;
                if !cfg.remote_id.matches(idii) {
                    return Err(Error::InvalidIdentity);
                }
                let (cky_i, cky_r) = (sa.cky_i, sa.cky_r);
                let expected = keys.hash_i(gxi, gxr, &cky_i, &cky_r, sa_i_b, idii_b);
                let proof = self.authenticate_peer(now, &cfg, &raws, idii_b, &expected)?;
                let ic = has_initial_contact(&raws);
                let idp = Payload::Id(cfg.local_id.to_payload());
                let idir_b = body_of(&idp);
                let hash_r = keys.hash_r(gxi, gxr, &cky_i, &cky_r, sa_i_b, &idir_b);
                let mut payloads = vec![idp];
                // A CERTREQ in MM3 or in MM5 asks for our CERT: strongSwan's initiator sends
                // its CERTREQs in MM5, beside its own CERT, not in MM3.
                let asked = *peer_asked || peer_asked_for_certificate(&raws);
                payloads.extend(self.authentication_payloads(&cfg, &hash_r, asked)?);
                let sa = self.sas.get_mut(idx).ok_or(Error::Local("sa"))?;
                sa.peer_id = idii_b.to_vec();
                let mut iv = next_iv;
                let bytes = encrypt_message(
                    keys,
                    &mut iv,
                    Self::header(sa, ExchangeType::MAIN_MODE, 0, 0),
                    &payloads,
                )?;
                sa.p1_iv = iv;
                sa.state = State::Established { keys: keys.clone(), proof };
                let id = sa.id;
                self.send(now, idx, None, bytes, false);
                self.established(now, idx, id, peer, ic);
                Ok(())
            }
            State::MmISentAuth { sa_i_b, keys, gxi, gxr } => {
                let sa = self.sas.get(idx).ok_or(Error::Local("sa"))?;
                if !header.is_encrypted() {
                    return Err(Error::PeerMisbehaved(PeerMisbehaved::Unencrypted));
                }
                let (plain, next_iv) = decrypt_body(keys, &sa.p1_iv, datagram)?;
                let raws = parse_chain(header.next_payload, &plain, true)
                    .map_err(|_| Error::AuthenticationFailed)?;
                let (idir, idir_b) = get_id(&raws)?;
                if !cfg.remote_id.matches(idir) {
                    return Err(Error::InvalidIdentity);
                }
                let expected = keys.hash_r(gxi, gxr, &sa.cky_i, &sa.cky_r, sa_i_b, idir_b);
                let proof = self.authenticate_peer(now, &cfg, &raws, idir_b, &expected)?;
                let sa = self.sas.get_mut(idx).ok_or(Error::Local("sa"))?;
                sa.peer_id = idir_b.to_vec();
                let ic = has_initial_contact(&raws);
                sa.p1_iv = next_iv;
                sa.state = State::Established { keys: keys.clone(), proof };
                // MM6 ends the exchange: a copy of it needs no answer.
                sa.flight.last_out = None;
                let id = sa.id;
                self.established(now, idx, id, peer, ic);
                Ok(())
            }
            State::AmISent1 { sa_i_b, dh, ni, idii_b } => {
                let raws = parse_plain(header, datagram)?;
                let (sa_payload, _) = get_sa(&raws)?;
                let chosen = accept_ike_reply(sa_payload, &cfg.ike_proposals, auth)?;
                if chosen.group != dh.group() {
                    return Err(Error::PeerMisbehaved(PeerMisbehaved::InvalidProposalReply));
                }
                let gxr = get_bytes(&raws, PayloadType::KE)?.to_vec();
                let nr = get_nonce(&raws)?.to_vec();
                let (idir, idir_b) = get_id(&raws)?;
                if !cfg.remote_id.matches(idir) {
                    return Err(Error::InvalidIdentity);
                }
                let gxy =
                    dh.agree(&gxr).map_err(|_| Error::PeerMisbehaved(PeerMisbehaved::InvalidKeyExchange))?;
                let gxi = dh.public_value().to_vec();
                let first_contact = cfg.initial_contact && !self.other_established_with_peer(idx);
                let nat_t = peer_nat_t(&raws, &self.nat_t_offer).filter(|_| cfg.nat_traversal);
                let (cky_i, cky_r) =
                    self.sas.get(idx).map(|s| (s.cky_i, s.cky_r)).ok_or(Error::Local("sa"))?;
                let skeyid = skeyid(&cfg.auth, chosen.hash, ni, &nr, &gxy);
                let keys =
                    derive_phase1(chosen.hash, chosen.cipher, skeyid, &gxy, &cky_i, &cky_r, &gxi, &gxr);
                let expected = keys.hash_r(&gxi, &gxr, &cky_i, &cky_r, sa_i_b, idir_b);
                let proof = self.authenticate_peer(now, &cfg, &raws, idir_b, &expected)?;
                let hash_i = keys.hash_i(&gxi, &gxr, &cky_i, &cky_r, sa_i_b, idii_b);
                let mut payloads =
                    self.authentication_payloads(&cfg, &hash_i, peer_asked_for_certificate(&raws))?;
                let sa = self.sas.get_mut(idx).ok_or(Error::Local("sa"))?;
                sa.chosen = Some(chosen);
                agree_nat_t(sa, nat_t);
                detect_nat(chosen.hash, sa, &raws, cfg.force_encap)?;
                float(sa);
                sa.peer_id = idir_b.to_vec();
                payloads.extend(nat_d_payloads(chosen.hash, sa, cfg.force_encap));
                if first_contact {
                    payloads.push(initial_contact(sa));
                }
                let mut iv = keys.initial_iv.clone();
                let bytes = encrypt_message(
                    &keys,
                    &mut iv,
                    Self::header(sa, ExchangeType::AGGRESSIVE, 0, 0),
                    &payloads,
                )?;
                sa.p1_iv = iv;
                sa.state = State::Established { keys: Box::new(keys), proof };
                let id = sa.id;
                self.send(now, idx, None, bytes, false);
                self.established(now, idx, id, peer, false);
                Ok(())
            }
            State::AmRSent2 { sa_i_b, keys, gxi, gxr, idii_b } => {
                let sa = self.sas.get(idx).ok_or(Error::Local("sa"))?;
                // The third message may be sent encrypted or not.
                let (plain, next_iv) = if header.is_encrypted() {
                    decrypt_body(keys, &sa.p1_iv, datagram)?
                } else {
                    (datagram.get(super::HEADER_LEN..).unwrap_or(&[]).to_vec(), sa.p1_iv.clone())
                };
                let raws = parse_chain(header.next_payload, &plain, header.is_encrypted())
                    .map_err(|_| Error::AuthenticationFailed)?;
                let expected = keys.hash_i(gxi, gxr, &sa.cky_i, &sa.cky_r, sa_i_b, idii_b);
                let proof = self.authenticate_peer(now, &cfg, &raws, idii_b, &expected)?;
                let sa = self.sas.get_mut(idx).ok_or(Error::Local("sa"))?;
                sa.peer_id = idii_b.clone();
                let ic = has_initial_contact(&raws);
                detect_nat(keys.hash, sa, &raws, cfg.force_encap)?;
                sa.p1_iv = next_iv;
                sa.state = State::Established { keys: keys.clone(), proof };
                // AM3 ends the exchange: a copy of it needs no answer.
                sa.flight.last_out = None;
                let id = sa.id;
                self.established(now, idx, id, peer, ic);
                Ok(())
            }
            State::Established { .. } | State::Dead => Ok(()),
        }
    }

    /// Phase 1 ends only with the peer's hash verified, so the message that
    /// got here was authenticated.
    fn established(&mut self, now: Instant, idx: usize, id: super::IkeSaId, peer: usize, ic: bool) {
        self.rx_authenticated = true;
        self.sas.settled(idx);
        let keepalive = self.config.nat_keepalive_interval;
        let lifetime = self.config.peers.get(peer).map(|p| p.ike_lifetime);
        if let Some(sa) = self.sas.get_mut(idx) {
            if sa.nat_t && sa.nat.local_behind {
                sa.keepalive_at = Some(now + keepalive);
            }
            sa.expires_at = lifetime.map(|l| now + l);
            sa.last_error = None;
        }
        self.events.push_back(Event::IkeSaEstablished { ike_sa: id, peer });
        if ic {
            // RFC 2407 §4.6.3.3: the peer has no memory of earlier SAs.
            if let Some(remote) = self.sas.get(idx).map(|s| s.remote.ip()) {
                self.forget_orphans_of(remote);
            }
            self.events.push_back(Event::InitialContact(id));
        }
        if self.sas.get(idx).is_some_and(|s| s.initiator) {
            self.start_quick_mode(now, idx, peer);
        }
    }
}

fn initial_contact(sa: &IkeSa) -> Payload {
    Payload::Notify(NotifyPayload {
        doi: DOI_IPSEC,
        protocol: ProtocolId::ISAKMP,
        notify_type: NotifyType::INITIAL_CONTACT,
        spi: [sa.cky_i, sa.cky_r].concat(),
        data: Vec::new(),
    })
}
