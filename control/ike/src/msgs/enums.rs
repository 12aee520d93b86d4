//! Registry values from RFC 2407, RFC 2408, RFC 2409, RFC 3706 and RFC 3947.
//!
//! Each is a transparent newtype over the wire integer, so unknown values
//! survive a parse/emit round trip and the engine decides what to reject.

macro_rules! registry {
    ($(#[$m:meta])* $name:ident($ty:ty) { $($(#[$cm:meta])* $c:ident = $v:expr,)* }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub $ty);
        impl $name {
            $($(#[$cm])* pub const $c: $name = $name($v);)*
        }
    };
}

registry! {
    /// ISAKMP payload types (RFC 2408 §3.1, RFC 3947 §3 and §5).
    PayloadType(u8) {
        /// End of the payload chain.
        NONE = 0,
        /// Security Association.
        SA = 1,
        /// Proposal (only inside SA).
        PROPOSAL = 2,
        /// Transform (only inside Proposal).
        TRANSFORM = 3,
        /// Key Exchange.
        KE = 4,
        /// Identification.
        ID = 5,
        /// Certificate.
        CERT = 6,
        /// Certificate Request.
        CERTREQ = 7,
        /// Hash.
        HASH = 8,
        /// Signature.
        SIG = 9,
        /// Nonce.
        NONCE = 10,
        /// Notification.
        NOTIFY = 11,
        /// Delete.
        DELETE = 12,
        /// Vendor ID.
        VENDOR_ID = 13,
        /// NAT-Discovery (RFC 3947 §3.2).
        NAT_D = 20,
        /// NAT-Original Address (RFC 3947 §5.2).
        NAT_OA = 21,
        /// NAT-Discovery as draft-ietf-ipsec-nat-t-ike-02/03 number it
        /// (private use range; same body as [`PayloadType::NAT_D`]).
        NAT_D_DRAFT = 130,
        /// NAT-Original Address as draft-ietf-ipsec-nat-t-ike-02/03 number it
        /// (same body as [`PayloadType::NAT_OA`]).
        NAT_OA_DRAFT = 131,
    }
}

registry! {
    /// Exchange types (RFC 2408 §3.1, RFC 2409 §9).
    ExchangeType(u8) {
        /// Identity Protection = Main Mode.
        MAIN_MODE = 2,
        /// Aggressive Mode.
        AGGRESSIVE = 4,
        /// Informational.
        INFORMATIONAL = 5,
        /// Quick Mode.
        QUICK_MODE = 32,
    }
}

registry! {
    /// Notify message types (RFC 2408 §3.14.1, RFC 2407 §4.6.3, RFC 3706 §5).
    NotifyType(u16) {
        /// INVALID-PAYLOAD-TYPE.
        INVALID_PAYLOAD_TYPE = 1,
        /// DOI-NOT-SUPPORTED.
        DOI_NOT_SUPPORTED = 2,
        /// SITUATION-NOT-SUPPORTED.
        SITUATION_NOT_SUPPORTED = 3,
        /// INVALID-COOKIE.
        INVALID_COOKIE = 4,
        /// INVALID-MAJOR-VERSION.
        INVALID_MAJOR_VERSION = 5,
        /// INVALID-MINOR-VERSION.
        INVALID_MINOR_VERSION = 6,
        /// INVALID-EXCHANGE-TYPE.
        INVALID_EXCHANGE_TYPE = 7,
        /// INVALID-FLAGS.
        INVALID_FLAGS = 8,
        /// INVALID-MESSAGE-ID.
        INVALID_MESSAGE_ID = 9,
        /// INVALID-PROTOCOL-ID.
        INVALID_PROTOCOL_ID = 10,
        /// INVALID-SPI.
        INVALID_SPI = 11,
        /// INVALID-TRANSFORM-ID.
        INVALID_TRANSFORM_ID = 12,
        /// ATTRIBUTES-NOT-SUPPORTED.
        ATTRIBUTES_NOT_SUPPORTED = 13,
        /// NO-PROPOSAL-CHOSEN.
        NO_PROPOSAL_CHOSEN = 14,
        /// BAD-PROPOSAL-SYNTAX.
        BAD_PROPOSAL_SYNTAX = 15,
        /// PAYLOAD-MALFORMED.
        PAYLOAD_MALFORMED = 16,
        /// INVALID-KEY-INFORMATION.
        INVALID_KEY_INFORMATION = 17,
        /// INVALID-ID-INFORMATION.
        INVALID_ID_INFORMATION = 18,
        /// INVALID-HASH-INFORMATION.
        INVALID_HASH_INFORMATION = 23,
        /// AUTHENTICATION-FAILED.
        AUTHENTICATION_FAILED = 24,
        /// UNSUPPORTED-EXCHANGE-TYPE.
        UNSUPPORTED_EXCHANGE_TYPE = 29,
        /// UNEQUAL-PAYLOAD-LENGTHS.
        UNEQUAL_PAYLOAD_LENGTHS = 30,
        /// RESPONDER-LIFETIME (RFC 2407 §4.6.3.1).
        RESPONDER_LIFETIME = 24576,
        /// REPLAY-STATUS (RFC 2407 §4.6.3.2).
        REPLAY_STATUS = 24577,
        /// INITIAL-CONTACT (RFC 2407 §4.6.3.3).
        INITIAL_CONTACT = 24578,
        /// R-U-THERE (RFC 3706 §5).
        R_U_THERE = 36136,
        /// R-U-THERE-ACK (RFC 3706 §5).
        R_U_THERE_ACK = 36137,
    }
}

impl NotifyType {
    /// RFC 2408 §3.14.1: values below 8192 are errors, 16384.. are status.
    pub fn is_error(self) -> bool {
        self.0 < 8192
    }
}

registry! {
    /// Protocol identifiers (RFC 2407 §4.4.1).
    ProtocolId(u8) {
        /// PROTO_ISAKMP.
        ISAKMP = 1,
        /// PROTO_IPSEC_AH.
        AH = 2,
        /// PROTO_IPSEC_ESP.
        ESP = 3,
        /// PROTO_IPCOMP.
        IPCOMP = 4,
    }
}

registry! {
    /// Identification types (RFC 2407 §4.6.2.1).
    IdType(u8) {
        /// ID_IPV4_ADDR.
        IPV4_ADDR = 1,
        /// ID_FQDN.
        FQDN = 2,
        /// ID_USER_FQDN.
        USER_FQDN = 3,
        /// ID_IPV4_ADDR_SUBNET.
        IPV4_ADDR_SUBNET = 4,
        /// ID_IPV6_ADDR.
        IPV6_ADDR = 5,
        /// ID_IPV6_ADDR_SUBNET.
        IPV6_ADDR_SUBNET = 6,
        /// ID_IPV4_ADDR_RANGE.
        IPV4_ADDR_RANGE = 7,
        /// ID_IPV6_ADDR_RANGE.
        IPV6_ADDR_RANGE = 8,
        /// ID_DER_ASN1_DN.
        DER_ASN1_DN = 9,
        /// ID_DER_ASN1_GN.
        DER_ASN1_GN = 10,
        /// ID_KEY_ID.
        KEY_ID = 11,
    }
}

/// The IPsec DOI (RFC 2407 §4.2).
pub const DOI_IPSEC: u32 = 1;
/// SIT_IDENTITY_ONLY (RFC 2407 §4.2).
pub const SIT_IDENTITY_ONLY: u32 = 1;
/// ISAKMP version 1.0 as it appears in the header (major 1, minor 0).
pub const ISAKMP_VERSION: u8 = 0x10;

/// Header flag: the body is encrypted (RFC 2408 §3.1).
pub const FLAG_ENCRYPTION: u8 = 0x01;
/// Header flag: commit (RFC 2408 §3.1).
pub const FLAG_COMMIT: u8 = 0x02;
/// Header flag: authentication only (RFC 2408 §3.1).
pub const FLAG_AUTH_ONLY: u8 = 0x04;

/// Phase 1 transform id KEY_IKE (RFC 2407 §4.4.2).
pub const KEY_IKE: u8 = 1;

/// Phase 1 attribute classes (RFC 2409 Appendix A).
pub mod p1attr {
    /// Encryption Algorithm (B).
    pub const ENCRYPTION_ALGORITHM: u16 = 1;
    /// Hash Algorithm (B).
    pub const HASH_ALGORITHM: u16 = 2;
    /// Authentication Method (B).
    pub const AUTH_METHOD: u16 = 3;
    /// Group Description (B).
    pub const GROUP_DESCRIPTION: u16 = 4;
    /// Life Type (B).
    pub const LIFE_TYPE: u16 = 11;
    /// Life Duration (V).
    pub const LIFE_DURATION: u16 = 12;
    /// Key Length (B).
    pub const KEY_LENGTH: u16 = 14;
    /// Encryption algorithm value AES-CBC (RFC 3602 / IANA).
    pub const ENCR_AES_CBC: u16 = 7;
    /// Hash value SHA1.
    pub const HASH_SHA1: u16 = 2;
    /// Hash value SHA2-256 (RFC 4868 / IANA).
    pub const HASH_SHA2_256: u16 = 4;
    /// Hash value SHA2-384.
    pub const HASH_SHA2_384: u16 = 5;
    /// Hash value SHA2-512.
    pub const HASH_SHA2_512: u16 = 6;
    /// Authentication method pre-shared key.
    pub const AUTH_PSK: u16 = 1;
    /// Authentication method RSA signatures (RFC 2409 Appendix A).
    pub const AUTH_RSA_SIG: u16 = 3;
    /// Authentication method ECDSA with SHA-256 on the P-256 curve (RFC 4754 §5).
    pub const AUTH_ECDSA_256: u16 = 9;
    /// Authentication method ECDSA with SHA-384 on the P-384 curve (RFC 4754 §5).
    pub const AUTH_ECDSA_384: u16 = 10;
    /// Life type seconds.
    pub const LIFE_SECONDS: u16 = 1;
    /// Life type kilobytes.
    pub const LIFE_KILOBYTES: u16 = 2;
}

/// CERT / CERTREQ encoding "X.509 Certificate - Signature" (RFC 2408 §3.9):
/// a DER certificate in CERT, a CA's DER subject name in CERTREQ.
pub const CERT_X509_SIGNATURE: u8 = 4;

/// Phase 2 (IPsec DOI) attribute classes (RFC 2407 §4.5, RFC 3947 §5).
pub mod p2attr {
    /// SA Life Type (B).
    pub const LIFE_TYPE: u16 = 1;
    /// SA Life Duration (V).
    pub const LIFE_DURATION: u16 = 2;
    /// Group Description (B), PFS group.
    pub const GROUP_DESCRIPTION: u16 = 3;
    /// Encapsulation Mode (B).
    pub const ENCAPSULATION_MODE: u16 = 4;
    /// Authentication Algorithm (B).
    pub const AUTH_ALGORITHM: u16 = 5;
    /// Key Length (B).
    pub const KEY_LENGTH: u16 = 6;
    /// Extended (64-bit) Sequence Number (B), RFC 4304 §2.
    pub const EXT_SEQ_NUMBER: u16 = 11;
    /// Extended Sequence Number value: 64-bit sequence numbers (RFC 4304 §2; the only one
    /// defined; its absence means 32-bit).
    pub const ESN_64_BIT: u16 = 1;
    /// Encapsulation Mode Tunnel.
    pub const MODE_TUNNEL: u16 = 1;
    /// Encapsulation Mode Transport.
    pub const MODE_TRANSPORT: u16 = 2;
    /// RFC 3947 §5: UDP-Encapsulated-Tunnel.
    pub const MODE_UDP_TUNNEL: u16 = 3;
    /// RFC 3947 §5: UDP-Encapsulated-Transport.
    pub const MODE_UDP_TRANSPORT: u16 = 4;
    /// draft-ietf-ipsec-nat-t-ike-02/03: UDP-Encapsulated-Tunnel (private use value).
    pub const MODE_UDP_TUNNEL_DRAFT: u16 = 61443;
    /// draft-ietf-ipsec-nat-t-ike-02/03: UDP-Encapsulated-Transport (private use value).
    pub const MODE_UDP_TRANSPORT_DRAFT: u16 = 61444;
    /// HMAC-SHA1.
    pub const AUTH_HMAC_SHA1: u16 = 2;
    /// HMAC-SHA2-256 (RFC 4868).
    pub const AUTH_HMAC_SHA2_256: u16 = 5;
    /// HMAC-SHA2-384.
    pub const AUTH_HMAC_SHA2_384: u16 = 6;
    /// HMAC-SHA2-512.
    pub const AUTH_HMAC_SHA2_512: u16 = 7;
    /// ESP transform id ESP_AES (CBC, RFC 3602).
    pub const ESP_AES_CBC: u8 = 12;
    /// ESP transform id ESP_AES_GCM_16 (RFC 4106 §8.1).
    pub const ESP_AES_GCM_16: u8 = 20;
}
