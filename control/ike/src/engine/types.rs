//! What the engine hands out: transmits, events, SA descriptions, errors.

use super::config::{ChildMode, EspEncryption, EspIntegrity, TrafficSelector, TsAddress};
use crate::crypto::Secret;
use crate::msgs::{DecodeError, IdPayload, IdType, NotifyType};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

/// A datagram to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// Source address and port (500, or 4500 after NAT-T float).
    pub source: SocketAddr,
    /// Destination.
    pub destination: SocketAddr,
    /// The UDP payload (with the non-ESP marker on port 4500).
    pub contents: Vec<u8>,
}

/// Handle of an IKE SA inside one engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IkeSaId(pub u64);

/// ESP encapsulation on the wire (RFC 3947 §5 for the UDP variants).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Encapsulation {
    /// Tunnel mode, plain ESP.
    Tunnel,
    /// Transport mode, plain ESP.
    Transport,
    /// Tunnel mode in UDP (port 4500).
    UdpTunnel,
    /// Transport mode in UDP (port 4500).
    UdpTransport,
}

impl Encapsulation {
    /// The mode plus whether NAT-T applies.
    pub fn new(mode: ChildMode, udp: bool) -> Self {
        match (mode, udp) {
            (ChildMode::Tunnel, false) => Self::Tunnel,
            (ChildMode::Transport, false) => Self::Transport,
            (ChildMode::Tunnel, true) => Self::UdpTunnel,
            (ChildMode::Transport, true) => Self::UdpTransport,
        }
    }
}

/// SA lifetime limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Lifetime {
    /// Seconds.
    pub seconds: u32,
    /// Kilobytes, 0 = unlimited.
    pub kilobytes: u32,
}

/// One direction of an ESP SA, as the dataplane needs it. Plain data; the
/// keys are wiped on drop and left out of `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct EspSaDescription {
    /// SPI, chosen by the receiving side.
    pub spi: u32,
    /// Encapsulation incl. UDP.
    pub encapsulation: Encapsulation,
    /// Encryption transform.
    pub encryption: EspEncryption,
    /// Integrity transform (None for GCM).
    pub integrity: Option<EspIntegrity>,
    /// Extended (64-bit) Sequence Numbers negotiated (RFC 4304).
    pub esn: bool,
    /// Encryption key.
    pub encryption_key: Secret,
    /// GCM salt (4 bytes) or empty; keying material (RFC 4106 §8.1), wiped on drop.
    pub salt: Secret,
    /// Integrity key or empty.
    pub integrity_key: Secret,
    /// Lifetimes.
    pub lifetime: Lifetime,
    /// Source traffic selector (packets entering this SA come from here).
    pub source_ts: TrafficSelector,
    /// Destination traffic selector.
    pub destination_ts: TrafficSelector,
    /// Outer source address/port.
    pub source: SocketAddr,
    /// Outer destination address/port.
    pub destination: SocketAddr,
    /// RFC 3947 §5.2 original addresses (UDP-encapsulated transport mode),
    /// for the checksum fix-up of RFC 3948 §3.1.2.
    pub nat_original: Option<NatOriginalAddresses>,
}

impl core::fmt::Debug for EspSaDescription {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("EspSaDescription")
            .field("spi", &format_args!("{:08x}", self.spi))
            .field("encapsulation", &self.encapsulation)
            .field("encryption", &self.encryption)
            .field("integrity", &self.integrity)
            .field("esn", &self.esn)
            .field("keys", &"<redacted>")
            .field("lifetime", &self.lifetime)
            .field("source_ts", &self.source_ts)
            .field("destination_ts", &self.destination_ts)
            .field("source", &self.source)
            .field("destination", &self.destination)
            .field("nat_original", &self.nat_original)
            .finish()
    }
}

/// NAT-OAi / NAT-OAr as the initiator sent them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct NatOriginalAddresses {
    /// The initiator's original (inner) address.
    pub initiator: IpAddr,
    /// The responder's address as the initiator knew it.
    pub responder: IpAddr,
}

/// Commands the driver gives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Start phase 1 and then Quick Mode with the peer at this config index.
    /// [`super::Engine::initiate`] does the same and returns the new IKE SA.
    Initiate {
        /// Index in [`super::EngineConfig::peers`].
        peer: usize,
    },
    /// Delete an IKE SA and its child SAs, telling the peer (`terminate`).
    Delete(IkeSaId),
    /// Delete the ISAKMP SA alone, telling the peer with one Delete for it
    /// (RFC 2408 §3.15: a Delete names exactly the SAs it deletes). The
    /// IPsec SAs negotiated under it stay installed, as orphans of the peer,
    /// until [`Command::AdoptChild`] moves them to a newer IKE SA or
    /// [`Command::DeleteChild`] removes them. An expiring IKE SA and a Delete
    /// received for one end the same way.
    DeleteIsakmpSa(IkeSaId),
    /// Move a child SA pair, named by our inbound SPI, to an established IKE
    /// SA, from whichever IKE SA holds it or from the orphans: its Deletes are
    /// then sent there (as strongSwan and libreswan adopt the children of a
    /// re-established ISAKMP SA).
    AdoptChild {
        /// The IKE SA that takes it.
        ike_sa: IkeSaId,
        /// Our inbound SPI of the pair.
        inbound_spi: u32,
    },
    /// Send a DPD R-U-THERE (RFC 3706).
    DeadPeerDetection(IkeSaId),
    /// Negotiate another child SA (Quick Mode) on an established IKE SA,
    /// e.g. to replace one nearing the end of its lifetime.
    CreateChild(IkeSaId),
    /// Like [`Command::CreateChild`], for the child of another peer entry
    /// (another child or selector pair of the same connection).
    CreateChildFor {
        /// The established IKE SA to run Quick Mode on.
        ike_sa: IkeSaId,
        /// The peer entry whose child config is proposed.
        peer: usize,
    },
    /// The SAs of a Quick Mode could not be installed (e.g. a full SA
    /// table). Responder (after `InstallInbound`): withdraw the HASH(2)
    /// reply still queued, drop the exchange and tell the peer
    /// NO-PROPOSAL-CHOSEN. Initiator (after `InstallSa`): withdraw the HASH(3)
    /// still queued and answer no copy of HASH(2), so the responder never
    /// installs the pair (its Quick Mode times out).
    AbortQuickMode {
        /// The IKE SA.
        ike_sa: IkeSaId,
        /// Our inbound SPI of the exchange.
        inbound_spi: u32,
    },
    /// Delete one child SA, given our inbound SPI, telling the peer
    /// (RFC 2408 §3.15 Delete, protected per RFC 2409 §5.7) over the IKE SA
    /// that holds it. An orphan (no IKE SA holds it) is removed without a
    /// Delete: there is nothing to protect one with.
    DeleteChild {
        /// The IKE SA that holds it (looked up elsewhere if it does not).
        ike_sa: IkeSaId,
        /// Our inbound SPI of the pair.
        inbound_spi: u32,
    },
}

/// Things the driver must act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Phase 1 finished and the peer is authenticated.
    IkeSaEstablished {
        /// The SA.
        ike_sa: IkeSaId,
        /// Peer config index.
        peer: usize,
    },
    /// Phase 1 or Quick Mode failed.
    Failed {
        /// The SA, if one existed.
        ike_sa: IkeSaId,
        /// What went wrong.
        error: Error,
    },
    /// Responder only: the inbound SA of a Quick Mode we just answered
    /// (HASH(2) sent). Install it before sending the reply, which lets the
    /// initiator start using it (the driver handles events before
    /// transmits). [`Event::InstallSa`] follows with both directions when
    /// HASH(3) arrives, or [`Event::DeleteSa`] if the exchange fails.
    InstallInbound {
        /// The IKE SA it belongs to.
        ike_sa: IkeSaId,
        /// The peer entry whose child config matched.
        peer: usize,
        /// Traffic from the peer.
        inbound: Box<EspSaDescription>,
    },
    /// A child SA pair to install (both roles, when the exchange completes;
    /// the initiator's reply HASH(3) is queued after this event).
    InstallSa {
        /// The IKE SA it belongs to.
        ike_sa: IkeSaId,
        /// The peer entry whose child config was negotiated.
        peer: usize,
        /// Traffic from the peer.
        inbound: Box<EspSaDescription>,
        /// Traffic to the peer.
        outbound: Box<EspSaDescription>,
    },
    /// Remove an ESP SA.
    DeleteSa {
        /// SPI.
        spi: u32,
        /// Our inbound SA (true) or outbound.
        inbound: bool,
        /// Our inbound SPI of the pair the SA belongs to (`spi` itself for an inbound SA):
        /// an outbound SPI is the peer's choice and two peers may choose the same one, so
        /// the pair is named by the SPI we chose.
        pair: u32,
    },
    /// The IKE SA is gone. Its children are gone too only where
    /// [`Event::DeleteSa`] says so (a Delete for the ISAKMP SA alone leaves
    /// them installed, see [`Command::DeleteIsakmpSa`]).
    IkeSaDeleted(IkeSaId),
    /// The peer sent INITIAL-CONTACT: drop older state for it. The orphans
    /// the engine kept for that peer address are already deleted
    /// ([`Event::DeleteSa`] before this event).
    InitialContact(IkeSaId),
    /// RFC 3947 §5: an authenticated message of an established IKE SA came
    /// from a new peer port (or address, when the peer is behind a NAT), as
    /// when a NAT's mapping is restarted. The IKE SA already follows it; the
    /// outbound ESP SAs it holds must send to the new endpoint too.
    PeerMoved {
        /// The SA.
        ike_sa: IkeSaId,
        /// Our endpoint of the IKE SA now.
        local: SocketAddr,
        /// The peer's endpoint of the IKE SA now.
        remote: SocketAddr,
        /// SPIs of the outbound ESP SAs this IKE SA holds.
        outbound_spis: Vec<u32>,
    },
    /// A DPD R-U-THERE-ACK arrived with this sequence number.
    DeadPeerDetectionAck {
        /// The SA.
        ike_sa: IkeSaId,
        /// Sequence number echoed.
        sequence: u32,
    },
}

/// Errors, by who did what (the rustls `Error` split).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// The peer sent bytes that do not decode.
    Malformed(DecodeError),
    /// The peer sent something well-formed that the protocol forbids.
    PeerMisbehaved(PeerMisbehaved),
    /// The peer proposed nothing we accept.
    NoProposalChosen,
    /// The peer's identity is not the configured one.
    InvalidIdentity,
    /// HASH or decryption failed: wrong PSK or tampering.
    AuthenticationFailed,
    /// Signature authentication refused: the certificate, the ID it must
    /// hold, or the signature (the reason is counted, see `EngineStats`).
    Certificate(crate::pki::CertError),
    /// The peer told us of an error with this Notify.
    PeerNotified(NotifyType),
    /// Retransmissions exhausted.
    Timeout,
    /// Local failure (RNG, SPI allocation).
    Local(&'static str),
}

/// Protocol violations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerMisbehaved {
    /// A payload required in this message is missing.
    MissingPayload,
    /// The exchange type does not fit the state.
    UnexpectedExchange,
    /// The peer's DH public value is invalid.
    InvalidKeyExchange,
    /// The peer's answer does not match what we proposed.
    InvalidProposalReply,
    /// A message that must be encrypted was not.
    Unencrypted,
    /// A nonce shorter than 8 or longer than 256 bytes (RFC 2409 §5).
    BadNonce,
    /// Aggressive Mode while not enabled as responder.
    AggressiveModeRefused,
    /// A NAT-D payload (RFC 3947 §3.2, or its draft number) whose hash is
    /// not as long as the negotiated hash function's output.
    MalformedNatDiscovery,
}

impl Error {
    /// The Notify to send the peer, if any.
    pub fn notify_type(&self) -> Option<NotifyType> {
        Some(match self {
            Self::Malformed(e) => e.notify_type(),
            Self::PeerMisbehaved(PeerMisbehaved::InvalidKeyExchange) => NotifyType::INVALID_KEY_INFORMATION,
            Self::PeerMisbehaved(PeerMisbehaved::UnexpectedExchange) => NotifyType::INVALID_EXCHANGE_TYPE,
            Self::PeerMisbehaved(PeerMisbehaved::InvalidProposalReply) => NotifyType::BAD_PROPOSAL_SYNTAX,
            Self::PeerMisbehaved(PeerMisbehaved::AggressiveModeRefused) => NotifyType::NO_PROPOSAL_CHOSEN,
            Self::PeerMisbehaved(_) => NotifyType::PAYLOAD_MALFORMED,
            Self::NoProposalChosen => NotifyType::NO_PROPOSAL_CHOSEN,
            Self::InvalidIdentity => NotifyType::INVALID_ID_INFORMATION,
            Self::AuthenticationFailed | Self::Certificate(_) => NotifyType::AUTHENTICATION_FAILED,
            Self::PeerNotified(_) | Self::Timeout | Self::Local(_) => return None,
        })
    }
}

impl From<DecodeError> for Error {
    fn from(e: DecodeError) -> Self {
        Self::Malformed(e)
    }
}

impl From<PeerMisbehaved> for Error {
    fn from(e: PeerMisbehaved) -> Self {
        Self::PeerMisbehaved(e)
    }
}

/// Allocates inbound SPIs unique in the SA database.
pub trait SpiAllocator {
    /// A fresh SPI (never 0..=255, RFC 4303 §2.1), or None when exhausted.
    fn allocate(&mut self) -> Option<u32>;
    /// Returns an SPI that was never installed.
    fn release(&mut self, spi: u32);
}

/// Lifetime given as a duration helper.
pub(crate) fn secs(d: Duration) -> u32 {
    u32::try_from(d.as_secs()).unwrap_or(u32::MAX)
}

/// Encodes a traffic selector as an IDci/IDcr payload (RFC 2407 §4.6.2).
pub fn ts_to_id(ts: &TrafficSelector) -> IdPayload {
    let (id_type, data) = match ts.address {
        TsAddress::Host(IpAddr::V4(a)) => (IdType::IPV4_ADDR, a.octets().to_vec()),
        TsAddress::Host(IpAddr::V6(a)) => (IdType::IPV6_ADDR, a.octets().to_vec()),
        TsAddress::Subnet(IpAddr::V4(a), p) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(p.min(32))).unwrap_or(0);
            let mut d = a.octets().to_vec();
            d.extend_from_slice(&mask.to_be_bytes());
            (IdType::IPV4_ADDR_SUBNET, d)
        }
        TsAddress::Subnet(IpAddr::V6(a), p) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(p.min(128))).unwrap_or(0);
            let mut d = a.octets().to_vec();
            d.extend_from_slice(&mask.to_be_bytes());
            (IdType::IPV6_ADDR_SUBNET, d)
        }
        TsAddress::Range(IpAddr::V4(a), IpAddr::V4(b)) => {
            let mut d = a.octets().to_vec();
            d.extend_from_slice(&b.octets());
            (IdType::IPV4_ADDR_RANGE, d)
        }
        TsAddress::Range(a, b) => {
            let v6 = |x: IpAddr| match x {
                IpAddr::V6(x) => x,
                IpAddr::V4(x) => x.to_ipv6_mapped(),
            };
            let mut d = v6(a).octets().to_vec();
            d.extend_from_slice(&v6(b).octets());
            (IdType::IPV6_ADDR_RANGE, d)
        }
    };
    IdPayload { id_type, protocol: ts.protocol, port: ts.port, data }
}

/// Decodes IDci/IDcr into a traffic selector.
pub fn id_to_ts(id: &IdPayload) -> Option<TrafficSelector> {
    let v4 = |b: &[u8]| -> Option<Ipv4Addr> { Some(Ipv4Addr::from(<[u8; 4]>::try_from(b).ok()?)) };
    let v6 = |b: &[u8]| -> Option<Ipv6Addr> { Some(Ipv6Addr::from(<[u8; 16]>::try_from(b).ok()?)) };
    let d = id.data.as_slice();
    let address = match id.id_type {
        IdType::IPV4_ADDR => TsAddress::Host(IpAddr::V4(v4(d)?)),
        IdType::IPV6_ADDR => TsAddress::Host(IpAddr::V6(v6(d)?)),
        IdType::IPV4_ADDR_SUBNET => {
            let (a, m) = (d.get(..4)?, d.get(4..)?);
            let mask = u32::from(v4(m)?);
            // A netmask must be contiguous ones.
            if mask.leading_ones() + mask.trailing_zeros() != 32 {
                return None;
            }
            TsAddress::Subnet(IpAddr::V4(v4(a)?), u8::try_from(mask.leading_ones()).ok()?)
        }
        IdType::IPV6_ADDR_SUBNET => {
            let (a, m) = (d.get(..16)?, d.get(16..)?);
            let mask = u128::from(v6(m)?);
            if mask.leading_ones() + mask.trailing_zeros() != 128 {
                return None;
            }
            TsAddress::Subnet(IpAddr::V6(v6(a)?), u8::try_from(mask.leading_ones()).ok()?)
        }
        IdType::IPV4_ADDR_RANGE => {
            TsAddress::Range(IpAddr::V4(v4(d.get(..4)?)?), IpAddr::V4(v4(d.get(4..)?)?))
        }
        IdType::IPV6_ADDR_RANGE => {
            TsAddress::Range(IpAddr::V6(v6(d.get(..16)?)?), IpAddr::V6(v6(d.get(16..)?)?))
        }
        _ => return None,
    };
    Some(TrafficSelector { address, protocol: id.protocol, port: id.port })
}
