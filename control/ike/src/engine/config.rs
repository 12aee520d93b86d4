//! Engine configuration: plain data, filled in by the daemon (swanctl-style
//! TOML in `iked`) or by tests.

use crate::auth::PrivateKey;
use crate::crypto::{Cipher, DhGroup, HashAlgorithm, Secret};
use crate::msgs::{IdPayload, IdType};
use crate::pki::{Certificate, TrustStore};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

/// Process-wide settings.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Configured peers.
    pub peers: Vec<PeerConfig>,
    /// Most half-open (not yet authenticated) responder IKE SAs in total.
    pub max_half_open: usize,
    /// Most half-open responder IKE SAs per peer address.
    pub max_half_open_per_peer: usize,
    /// Of `max_half_open`, the part only connections that name the peer's
    /// address may use: a connection for any address (`%any`) gets the
    /// rest, so a flood of spoofed first messages onto it cannot lock the
    /// configured peers out.
    pub half_open_reserved: usize,
    /// Most unfinished responder Quick Mode exchanges per IKE SA; an
    /// authenticated message 1 beyond them is refused and counted.
    pub max_quick_modes_per_sa: usize,
    /// First retransmission interval; doubled on each retry.
    pub retransmit_initial: Duration,
    /// Retransmissions before giving up.
    pub retransmit_tries: u32,
    /// Largest ISAKMP message accepted.
    pub max_message_len: usize,
    /// NAT keepalive interval when we are behind a NAT (RFC 3948 §4).
    pub nat_keepalive_interval: Duration,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            peers: Vec::new(),
            max_half_open: 1024,
            max_half_open_per_peer: 16,
            half_open_reserved: 256,
            max_quick_modes_per_sa: 8,
            retransmit_initial: Duration::from_millis(500),
            retransmit_tries: 5,
            max_message_len: crate::msgs::DEFAULT_MAX_MESSAGE_LEN,
            nat_keepalive_interval: Duration::from_secs(20),
        }
    }
}

/// Phase-1 exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase1Mode {
    /// Main Mode (identity protection), 6 messages.
    Main,
    /// Aggressive Mode, 3 messages.
    Aggressive,
}

/// One connection to one peer.
#[derive(Debug, Clone)]
pub struct PeerConfig {
    /// Name, for events and logs.
    pub name: String,
    /// The peer's address; a responder picks the connection by it.
    pub remote_address: IpAddr,
    /// Our address for this connection (port 500 is used).
    pub local_address: IpAddr,
    /// Our identity.
    pub local_id: Identity,
    /// The identity the peer must present.
    pub remote_id: Identity,
    /// Authentication.
    pub auth: AuthMethod,
    /// Mode used when initiating.
    pub mode: Phase1Mode,
    /// Accept Aggressive Mode as responder (off by default: it exposes a
    /// hash of the PSK to offline guessing).
    pub accept_aggressive: bool,
    /// Phase-1 proposals, in order of preference.
    pub ike_proposals: Vec<IkeProposal>,
    /// IKE SA lifetime.
    pub ike_lifetime: Duration,
    /// The child SA negotiated after phase 1.
    pub child: ChildConfig,
    /// Send and accept NAT-T (RFC 3947).
    pub nat_traversal: bool,
    /// Send INITIAL-CONTACT after establishing as initiator.
    pub initial_contact: bool,
    /// As responder, choose the first of our proposals (IKE and ESP) that
    /// the initiator offered, rather than the first of the initiator's that
    /// we accept (strongSwan's `prefer_configured_proposals`).
    pub prefer_configured_proposals: bool,
}

/// Phase-1 authentication. IKEv1 negotiates one method for both sides (the
/// transform's Authentication Method attribute): a connection is PSK or
/// signatures on both ends, and with signatures our key's algorithm (RSA,
/// ECDSA P-256, ECDSA P-384) is the method proposed and accepted.
#[derive(Clone)]
pub enum AuthMethod {
    /// Pre-shared key; the engine's copy is wiped when the configuration or a retired peer
    /// is dropped.
    PreSharedKey(Secret),
    /// Signatures with X.509 certificates (RFC 2409 §5.1, RFC 4754).
    PublicKey(Arc<PublicKeyAuth>),
}

impl AuthMethod {
    /// The Authentication Method attribute value proposed and accepted.
    pub fn method_id(&self) -> u16 {
        match self {
            Self::PreSharedKey(_) => crate::msgs::p1attr::AUTH_PSK,
            Self::PublicKey(p) => p.private_key.algorithm().auth_method(),
        }
    }
}

impl core::fmt::Debug for AuthMethod {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::PreSharedKey(_) => f.write_str("PreSharedKey(..)"),
            Self::PublicKey(p) => f.debug_tuple("PublicKey").field(p).finish(),
        }
    }
}

/// When we send our certificate (strongSwan's `send_cert`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SendCert {
    /// Only when the peer sent a CERTREQ (strongSwan's default).
    #[default]
    IfAsked,
    /// Always.
    Always,
    /// Never (the peer has our certificate configured).
    Never,
}

/// Our credentials and whom we trust, for signature authentication.
#[derive(Debug, Clone)]
pub struct PublicKeyAuth {
    /// Our certificate first, then the intermediate CAs to send with it.
    pub certificates: Vec<Certificate>,
    /// The key of our certificate (wiped on drop, never printed).
    pub private_key: PrivateKey,
    /// Trusted CAs, CRLs, locally configured peer certificates.
    pub trust: TrustStore,
    /// When to send our certificates.
    pub send_cert: SendCert,
    /// Send a CERTREQ for each trusted CA (strongSwan's `send_certreq`,
    /// default on); off, a peer whose `send_cert` waits to be asked sends
    /// no certificate and must be configured locally.
    pub send_certreq: bool,
}

/// A phase-1 transform.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IkeProposal {
    /// Encryption.
    pub cipher: Cipher,
    /// Hash / PRF.
    pub hash: HashAlgorithm,
    /// DH group.
    pub group: DhGroup,
}

/// Identities (RFC 2407 §4.6.2.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    /// ID_IPV4_ADDR / ID_IPV6_ADDR.
    Address(IpAddr),
    /// ID_FQDN.
    Fqdn(String),
    /// ID_USER_FQDN.
    UserFqdn(String),
    /// ID_KEY_ID.
    KeyId(Vec<u8>),
    /// ID_DER_ASN1_DN: a DER-encoded distinguished name (compared byte for
    /// byte; with signatures it must also be the certificate's subject).
    DistinguishedName(Vec<u8>),
    /// Any identity (`%any`): a remote identity a responder for many peers
    /// accepts (the PSK authenticates). Sent as ID_IPV4_ADDR 0.0.0.0 if it
    /// were ever used as our own, which configuration prevents.
    Any,
}

impl Identity {
    /// The ID payload for phase 1 (protocol and port zero).
    pub fn to_payload(&self) -> IdPayload {
        let (id_type, data) = match self {
            Self::Address(IpAddr::V4(a)) => (IdType::IPV4_ADDR, a.octets().to_vec()),
            Self::Address(IpAddr::V6(a)) => (IdType::IPV6_ADDR, a.octets().to_vec()),
            Self::Fqdn(s) => (IdType::FQDN, s.as_bytes().to_vec()),
            Self::UserFqdn(s) => (IdType::USER_FQDN, s.as_bytes().to_vec()),
            Self::KeyId(k) => (IdType::KEY_ID, k.clone()),
            Self::DistinguishedName(d) => (IdType::DER_ASN1_DN, d.clone()),
            Self::Any => (IdType::IPV4_ADDR, vec![0; 4]),
        };
        IdPayload { id_type, protocol: 0, port: 0, data }
    }

    /// RFC 2407 §4.6.2: in phase 1 the protocol/port are 0 or UDP/500.
    pub fn matches(&self, id: &IdPayload) -> bool {
        if *self == Self::Any {
            return true;
        }
        let mine = self.to_payload();
        let proto_ok = (id.protocol == 0 && id.port == 0) || (id.protocol == 17 && id.port == 500);
        if let Self::DistinguishedName(dn) = self {
            // Compared as names, not bytes: a configured DN string has its own
            // string types (strongSwan compares DNs the same way).
            return proto_ok && id.id_type == IdType::DER_ASN1_DN && crate::pki::dn_matches(dn, &id.data);
        }
        proto_ok && mine.id_type == id.id_type && mine.data == id.data
    }
}

/// Encapsulation mode of the child SA.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChildMode {
    /// Tunnel mode.
    Tunnel,
    /// Transport mode.
    Transport,
}

/// ESP encryption.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EspEncryption {
    /// ESP_AES (CBC) with a key of this many bits.
    AesCbc(u16),
    /// ESP_AES_GCM_16 with a key of this many bits (+4 bytes salt).
    AesGcm16(u16),
}

impl EspEncryption {
    /// Key length in bytes without salt.
    pub fn key_len(self) -> usize {
        match self {
            Self::AesCbc(b) | Self::AesGcm16(b) => usize::from(b / 8),
        }
    }

    /// Salt length (RFC 4106 §8.1: 4 bytes for GCM).
    pub fn salt_len(self) -> usize {
        match self {
            Self::AesCbc(_) => 0,
            Self::AesGcm16(_) => 4,
        }
    }
}

/// ESP integrity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EspIntegrity {
    /// HMAC-SHA1-96.
    HmacSha1,
    /// HMAC-SHA2-256-128.
    HmacSha256,
    /// HMAC-SHA2-384-192.
    HmacSha384,
    /// HMAC-SHA2-512-256.
    HmacSha512,
}

impl EspIntegrity {
    /// Key length in bytes.
    pub fn key_len(self) -> usize {
        match self {
            Self::HmacSha1 => 20,
            Self::HmacSha256 => 32,
            Self::HmacSha384 => 48,
            Self::HmacSha512 => 64,
        }
    }
}

/// An ESP transform proposal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EspProposal {
    /// Encryption.
    pub encryption: EspEncryption,
    /// Integrity; `None` with GCM.
    pub integrity: Option<EspIntegrity>,
}

/// Address part of a traffic selector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TsAddress {
    /// One host.
    Host(IpAddr),
    /// A subnet: address and prefix length.
    Subnet(IpAddr, u8),
    /// An inclusive range.
    Range(IpAddr, IpAddr),
}

/// Traffic selector carried in IDci/IDcr (RFC 2409 §5.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TrafficSelector {
    /// Addresses.
    pub address: TsAddress,
    /// IP protocol, 0 = any.
    pub protocol: u8,
    /// Port, 0 = any.
    pub port: u16,
}

impl TrafficSelector {
    /// The canonical form: a full-length subnet or a one-address range is a
    /// host. Selectors are compared in this form (peers encode a single
    /// host either way).
    pub fn normalized(self) -> Self {
        let full = |a: IpAddr| if a.is_ipv4() { 32 } else { 128 };
        let address = match self.address {
            TsAddress::Subnet(a, p) if p == full(a) => TsAddress::Host(a),
            TsAddress::Range(a, b) if a == b => TsAddress::Host(a),
            other => other,
        };
        Self { address, ..self }
    }
}

/// Child SA settings.
#[derive(Debug, Clone)]
pub struct ChildConfig {
    /// Our side's traffic.
    pub local_ts: TrafficSelector,
    /// The peer's side.
    pub remote_ts: TrafficSelector,
    /// ESP proposals, in order of preference.
    pub proposals: Vec<EspProposal>,
    /// Tunnel or transport.
    pub mode: ChildMode,
    /// PFS group, if any.
    pub pfs_group: Option<DhGroup>,
    /// Lifetime in seconds.
    pub lifetime_seconds: u32,
    /// Lifetime in kilobytes (0 = none).
    pub lifetime_kilobytes: u32,
}
