//! ESP header and trailer (RFC 4303 §2).
//!
//! ```text
//!  0                   1                   2                   3
//! |               Security Parameters Index (SPI)                 |
//! |                      Sequence Number                          |
//! |                    Payload Data* (variable)  (IV first)       |
//! |               |     Padding (0-255 bytes)                     |
//! |                               |  Pad Length   | Next Header   |
//! |         Integrity Check Value-ICV   (variable)                |
//! ```

use super::{get_u32, get_u8, set_u32, Error, Result};

mod field {
    pub const SPI: usize = 0;
    pub const SEQ: usize = 4;
    pub const PAYLOAD: usize = 8;
}

/// ESP header length (SPI + sequence number).
pub const HEADER_LEN: usize = field::PAYLOAD;
/// Trailer length without padding (pad length + next header).
pub const TRAILER_LEN: usize = 2;

/// A view of an ESP packet (from the SPI to the end of the ICV).
#[derive(Debug, Clone)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wrap without checking.
    pub const fn new_unchecked(buffer: T) -> Self {
        Packet { buffer }
    }
    /// Wrap and check that the header fits.
    pub fn new_checked(buffer: T) -> Result<Self> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }
    /// Check that the 8-byte header fits.
    pub fn check_len(&self) -> Result<()> {
        if self.buffer.as_ref().len() < HEADER_LEN {
            Err(Error::Truncated)
        } else {
            Ok(())
        }
    }
    /// Security Parameters Index.
    pub fn security_parameter_index(&self) -> u32 {
        get_u32(self.buffer.as_ref(), field::SPI)
    }
    /// Sequence number (low 32 bits with ESN).
    pub fn sequence_number(&self) -> u32 {
        get_u32(self.buffer.as_ref(), field::SEQ)
    }
    /// Everything after the header (IV, ciphertext, ICV).
    pub fn payload(&self) -> &[u8] {
        self.buffer.as_ref().get(field::PAYLOAD..).unwrap_or(&[])
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Set the SPI.
    pub fn set_security_parameter_index(&mut self, v: u32) {
        set_u32(self.buffer.as_mut(), field::SPI, v);
    }
    /// Set the sequence number.
    pub fn set_sequence_number(&mut self, v: u32) {
        set_u32(self.buffer.as_mut(), field::SEQ, v);
    }
}

/// High-level representation of the ESP header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr {
    /// SPI.
    pub spi: u32,
    /// Sequence number (low 32 bits).
    pub seq: u32,
}

impl Repr {
    /// Parse.
    pub fn parse<T: AsRef<[u8]>>(p: &Packet<T>) -> Result<Repr> {
        p.check_len()?;
        Ok(Repr { spi: p.security_parameter_index(), seq: p.sequence_number() })
    }
    /// Emit.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut Packet<T>) {
        p.set_security_parameter_index(self.spi);
        p.set_sequence_number(self.seq);
    }
}

/// The decrypted trailer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Trailer {
    /// Pad length byte.
    pub pad_len: u8,
    /// Next header byte.
    pub next_header: u8,
    /// Length of the payload data before the padding.
    pub payload_len: usize,
}

/// Why a trailer was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrailerError {
    /// Fewer than two bytes, or the pad length exceeds the plaintext.
    Length,
    /// Padding bytes are not 1, 2, 3, ...
    Pad,
}

impl Trailer {
    /// Parse and verify the trailer at the end of `plaintext` (payload || padding || pad length
    /// || next header). RFC 4303 §2.4: padding bytes initialised by the default scheme are
    /// 1, 2, 3, ...; the receiver SHOULD inspect them. We do, in data-independent time over
    /// the (public) pad length.
    pub fn parse(plaintext: &[u8]) -> core::result::Result<Trailer, TrailerError> {
        let n = plaintext.len();
        if n < TRAILER_LEN {
            return Err(TrailerError::Length);
        }
        let pad_len = get_u8(plaintext, n - 2);
        let next_header = get_u8(plaintext, n - 1);
        let pl = usize::from(pad_len);
        let payload_len = n.checked_sub(TRAILER_LEN + pl).ok_or(TrailerError::Length)?;
        let pad = plaintext.get(payload_len..n - TRAILER_LEN).ok_or(TrailerError::Length)?;
        let mut bad = 0u8;
        for (i, b) in pad.iter().enumerate() {
            // i < 255, so i + 1 fits a u8.
            bad |= b ^ u8::try_from(i + 1).unwrap_or(0);
        }
        if bad != 0 {
            return Err(TrailerError::Pad);
        }
        Ok(Trailer { pad_len, next_header, payload_len })
    }

    /// Write padding 1, 2, 3, ..., pad length and next header into `dst`, which must be
    /// exactly `pad_len + 2` bytes. Returns `false` (writing nothing) on a size mismatch.
    pub fn emit(dst: &mut [u8], next_header: u8) -> bool {
        let n = dst.len();
        let Some(pad_len) = n.checked_sub(TRAILER_LEN).and_then(|p| u8::try_from(p).ok()) else {
            return false;
        };
        let (pad, tail) = dst.split_at_mut(usize::from(pad_len));
        for (i, b) in pad.iter_mut().enumerate() {
            *b = u8::try_from(i + 1).unwrap_or(0);
        }
        if let [pl, nh] = tail {
            *pl = pad_len;
            *nh = next_header;
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trip() {
        let mut b = [0u8; 8];
        let r = Repr { spi: 0xdead_beef, seq: 7 };
        r.emit(&mut Packet::new_unchecked(&mut b[..]));
        assert_eq!(b, [0xde, 0xad, 0xbe, 0xef, 0, 0, 0, 7]);
        assert_eq!(Repr::parse(&Packet::new_checked(&b[..]).unwrap()).unwrap(), r);
        assert_eq!(Packet::new_checked(&b[..7]).unwrap_err(), Error::Truncated);
    }

    #[test]
    fn trailer_round_trip_and_rejects() {
        let mut b = [0xaau8, 0xbb, 0, 0, 0, 0, 0];
        assert!(Trailer::emit(&mut b[2..], 4));
        assert_eq!(b, [0xaa, 0xbb, 1, 2, 3, 3, 4]);
        let t = Trailer::parse(&b).unwrap();
        assert_eq!((t.pad_len, t.next_header, t.payload_len), (3, 4, 2));
        let mut c = b;
        c[3] = 9;
        assert_eq!(Trailer::parse(&c).unwrap_err(), TrailerError::Pad);
        let mut c = b;
        c[5] = 6;
        assert_eq!(Trailer::parse(&c).unwrap_err(), TrailerError::Length);
        assert_eq!(Trailer::parse(&[1]).unwrap_err(), TrailerError::Length);
        // zero padding, nothing else
        assert_eq!(Trailer::parse(&[0, 41]).unwrap().payload_len, 0);
        assert!(!Trailer::emit(&mut [0u8; 1], 4));
    }
}
