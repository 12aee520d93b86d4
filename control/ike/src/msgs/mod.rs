//! The ISAKMP codec: header, payloads, whole messages.
//!
//! Contract: every `parse` function takes untrusted bytes, never panics, and
//! either consumes its input exactly or returns a [`DecodeError`] whose
//! [`DecodeError::notify_type`] is the Notify to send back.

pub mod codec;
pub mod enums;
pub mod error;
pub mod header;
pub mod payload;

#[cfg(test)]
mod tests;

pub use enums::*;
pub use error::DecodeError;
pub use header::{Header, DEFAULT_MAX_MESSAGE_LEN, HEADER_LEN};
pub use payload::*;

/// A plaintext ISAKMP message: header plus payload chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The header; `next_payload` and `length` are recomputed by [`Message::emit`].
    pub header: Header,
    /// The payloads, in order.
    pub payloads: Vec<Payload>,
}

impl Message {
    /// Parses an unencrypted message.
    pub fn parse(datagram: &[u8], max_len: usize) -> Result<Self, DecodeError> {
        let header = Header::parse(datagram, max_len)?;
        let body = datagram.get(HEADER_LEN..).unwrap_or(&[]);
        let payloads = parse_chain(header.next_payload, body, header.is_encrypted())?
            .into_iter()
            .map(|p| p.payload)
            .collect();
        Ok(Self { header, payloads })
    }

    /// Emits the message, fixing `next_payload` and `length`.
    pub fn emit(&self) -> Vec<u8> {
        let (first, body) = emit_chain(&self.payloads);
        let mut h = self.header;
        h.next_payload = first;
        h.length = u32::try_from(HEADER_LEN + body.len()).unwrap_or(u32::MAX);
        let mut out = Vec::with_capacity(HEADER_LEN + body.len());
        h.emit(&mut out);
        out.extend_from_slice(&body);
        out
    }
}
