//! The ISAKMP header (RFC 2408 §3.1).
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! !                          Initiator                            !
//! !                            Cookie                             !
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! !                          Responder                            !
//! !                            Cookie                             !
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! !  Next Payload ! MjVer ! MnVer ! Exchange Type !     Flags     !
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! !                          Message ID                           !
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! !                            Length                             !
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```

use super::codec::{Put, Reader};
use super::enums::{ExchangeType, PayloadType, FLAG_ENCRYPTION};
use super::error::DecodeError;

/// Length of the ISAKMP header.
pub const HEADER_LEN: usize = 28;
/// Default largest message accepted or built.
pub const DEFAULT_MAX_MESSAGE_LEN: usize = 16 * 1024;

/// A decoded ISAKMP header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Initiator cookie.
    pub initiator_cookie: [u8; 8],
    /// Responder cookie (zero in the first message).
    pub responder_cookie: [u8; 8],
    /// Type of the first payload.
    pub next_payload: PayloadType,
    /// Major (high nibble) and minor (low nibble) version.
    pub version: u8,
    /// Exchange type.
    pub exchange_type: ExchangeType,
    /// Flags (E, C, A).
    pub flags: u8,
    /// Message ID (zero in phase 1).
    pub message_id: u32,
    /// Total length of the message, header included.
    pub length: u32,
}

impl Header {
    /// Parses and checks a header against the datagram it came in.
    ///
    /// RFC 2408 §5.2: the length must match the datagram
    /// (UNEQUAL-PAYLOAD-LENGTHS), the major version must be 1.
    pub fn parse(datagram: &[u8], max_len: usize) -> Result<Self, DecodeError> {
        if datagram.len() > max_len {
            return Err(DecodeError::MessageTooLarge(datagram.len()));
        }
        let mut r = Reader::new(datagram);
        let h = Self::read(&mut r).ok_or(DecodeError::TruncatedHeader)?;
        if h.version >> 4 != 1 {
            return Err(DecodeError::InvalidMajorVersion(h.version >> 4));
        }
        if usize::try_from(h.length).ok() != Some(datagram.len()) {
            return Err(DecodeError::LengthMismatch { header: h.length, actual: datagram.len() });
        }
        Ok(h)
    }

    fn read(r: &mut Reader<'_>) -> Option<Self> {
        Some(Self {
            initiator_cookie: r.array()?,
            responder_cookie: r.array()?,
            next_payload: PayloadType(r.u8()?),
            version: r.u8()?,
            exchange_type: ExchangeType(r.u8()?),
            flags: r.u8()?,
            message_id: r.u32()?,
            length: r.u32()?,
        })
    }

    /// True when the E flag is set.
    pub fn is_encrypted(&self) -> bool {
        self.flags & FLAG_ENCRYPTION != 0
    }

    /// Appends the 28 header bytes.
    pub fn emit(&self, out: &mut Vec<u8>) {
        out.put(&self.initiator_cookie);
        out.put(&self.responder_cookie);
        out.put_u8(self.next_payload.0);
        out.put_u8(self.version);
        out.put_u8(self.exchange_type.0);
        out.put_u8(self.flags);
        out.put_u32(self.message_id);
        out.put_u32(self.length);
    }
}
