//! Decode errors and the Notify type each maps to.

use super::enums::{NotifyType, PayloadType};
use core::fmt;

/// Why a received message could not be decoded.
///
/// Each variant says what the peer sent; [`DecodeError::notify_type`] gives
/// the RFC 2408 §3.14.1 Notify the peer should get back.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DecodeError {
    /// Fewer than 28 bytes: no complete ISAKMP header.
    TruncatedHeader,
    /// The header length field differs from the datagram length.
    LengthMismatch {
        /// Length claimed by the header.
        header: u32,
        /// Bytes received.
        actual: usize,
    },
    /// The message is larger than the configured maximum.
    MessageTooLarge(usize),
    /// Major version other than 1.
    InvalidMajorVersion(u8),
    /// A payload header or payload body runs past the end of its container.
    PayloadTruncated(PayloadType),
    /// A payload length smaller than its fixed part (e.g. zero).
    PayloadLengthTooShort(PayloadType),
    /// A payload type this implementation does not know.
    UnknownPayloadType(u8),
    /// A Proposal or Transform appeared at top level, or something other
    /// than a Proposal/Transform inside an SA/Proposal.
    MisplacedPayload(PayloadType),
    /// A RESERVED field was not zero.
    ReservedNotZero(PayloadType),
    /// A TLV attribute length runs past the end of its transform.
    AttributeOverflow,
    /// Proposal numbers not monotonically increasing (RFC 2408 §4.2).
    ProposalNumbering,
    /// Transform count differs from the Proposal's `# of Transforms`, or
    /// transform numbers are not strictly increasing (RFC 2408 §3.6).
    TransformNumbering,
    /// An SA payload without any proposal, or a proposal without transforms.
    EmptyProposal,
    /// Bytes left after the last payload of an unencrypted message.
    TrailingBytes,
    /// More payloads, proposals, transforms or attributes than allowed.
    TooManyElements,
    /// A length-derived field disagrees with the payload length
    /// (e.g. Delete `# of SPIs` × SPI size).
    InconsistentLength(PayloadType),
}

impl DecodeError {
    /// The Notify message type to report this error with.
    pub fn notify_type(&self) -> NotifyType {
        match self {
            Self::TruncatedHeader
            | Self::PayloadTruncated(_)
            | Self::PayloadLengthTooShort(_)
            | Self::ReservedNotZero(_)
            | Self::AttributeOverflow
            | Self::TrailingBytes
            | Self::TooManyElements
            | Self::InconsistentLength(_)
            | Self::MessageTooLarge(_) => NotifyType::PAYLOAD_MALFORMED,
            Self::LengthMismatch { .. } => NotifyType::UNEQUAL_PAYLOAD_LENGTHS,
            Self::InvalidMajorVersion(_) => NotifyType::INVALID_MAJOR_VERSION,
            Self::UnknownPayloadType(_) | Self::MisplacedPayload(_) => NotifyType::INVALID_PAYLOAD_TYPE,
            Self::ProposalNumbering | Self::TransformNumbering | Self::EmptyProposal => {
                NotifyType::BAD_PROPOSAL_SYNTAX
            }
        }
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "malformed ISAKMP message: {self:?}")
    }
}

impl std::error::Error for DecodeError {}
