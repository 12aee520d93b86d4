//! Zero-copy packet views (smoltcp `src/wire/` style).
//!
//! Each protocol has a `Packet<T: AsRef<[u8]>>` view and, where the engine builds headers, a
//! `Repr` whose `parse` and `emit` mirror each other. **Contract:** `Packet::new_checked` (or
//! `check_len`) verifies every length the accessors rely on; once it has passed, no accessor
//! panics or reads past the buffer. Accessors are written with checked slicing throughout
//! (the crate denies `clippy::indexing_slicing`), so even an unchecked view cannot panic: an
//! out-of-range read yields zero and an out-of-range write is ignored.

pub mod esp;
pub mod ethernet;
pub mod ipv4;
pub mod ipv6;
pub mod udp;

/// A parse error. Never carries data: it is returned on hostile input in the fast path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// The buffer is shorter than a header or a length field says.
    Truncated,
    /// A version or header-length field has a value this view does not accept.
    Malformed,
    /// A checksum does not verify.
    Checksum,
}

impl core::fmt::Display for Error {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            Error::Truncated => "truncated",
            Error::Malformed => "malformed",
            Error::Checksum => "bad checksum",
        })
    }
}

/// Result of parsing.
pub type Result<T> = core::result::Result<T, Error>;

/// IP protocol numbers used here (IANA "Assigned Internet Protocol Numbers").
pub mod ip_proto {
    /// IPv6 hop-by-hop options.
    pub const HOP_BY_HOP: u8 = 0;
    /// IPv4-in-IP (tunnel-mode next header for an inner IPv4 packet).
    pub const IPV4: u8 = 4;
    /// TCP.
    pub const TCP: u8 = 6;
    /// UDP.
    pub const UDP: u8 = 17;
    /// IPv6 (tunnel-mode next header for an inner IPv6 packet).
    pub const IPV6: u8 = 41;
    /// IPv6 routing header.
    pub const IPV6_ROUTING: u8 = 43;
    /// IPv6 fragment header.
    pub const IPV6_FRAGMENT: u8 = 44;
    /// ESP.
    pub const ESP: u8 = 50;
    /// AH.
    pub const AH: u8 = 51;
    /// ICMPv6.
    pub const ICMPV6: u8 = 58;
    /// No next header (RFC 4303 §2.6 dummy packets use it).
    pub const NO_NEXT_HEADER: u8 = 59;
    /// IPv6 destination options.
    pub const IPV6_DEST_OPTS: u8 = 60;
}

#[inline]
pub(crate) fn get_u8(b: &[u8], off: usize) -> u8 {
    b.get(off).copied().unwrap_or(0)
}

#[inline]
pub(crate) fn get_u16(b: &[u8], off: usize) -> u16 {
    match b.get(off..off.wrapping_add(2)) {
        Some(&[x, y]) => u16::from_be_bytes([x, y]),
        _ => 0,
    }
}

#[inline]
pub(crate) fn get_u32(b: &[u8], off: usize) -> u32 {
    match b.get(off..off.wrapping_add(4)) {
        Some(&[a, b2, c, d]) => u32::from_be_bytes([a, b2, c, d]),
        _ => 0,
    }
}

#[inline]
pub(crate) fn set_u8(b: &mut [u8], off: usize, v: u8) {
    if let Some(x) = b.get_mut(off) {
        *x = v;
    }
}

#[inline]
pub(crate) fn set_u16(b: &mut [u8], off: usize, v: u16) {
    if let Some(x) = b.get_mut(off..off.wrapping_add(2)) {
        x.copy_from_slice(&v.to_be_bytes());
    }
}

#[inline]
pub(crate) fn set_u32(b: &mut [u8], off: usize, v: u32) {
    if let Some(x) = b.get_mut(off..off.wrapping_add(4)) {
        x.copy_from_slice(&v.to_be_bytes());
    }
}

/// Internet checksum helpers (RFC 1071).
pub mod checksum {
    /// One's-complement sum of `data` (odd trailing byte padded with zero), not folded.
    pub fn sum(data: &[u8]) -> u32 {
        let mut acc: u64 = 0;
        let mut chunks = data.chunks_exact(2);
        for c in &mut chunks {
            if let &[a, b] = c {
                acc += u64::from(u16::from_be_bytes([a, b]));
            }
        }
        if let &[a] = chunks.remainder() {
            acc += u64::from(u16::from_be_bytes([a, 0]));
        }
        while acc > 0xffff_ffff {
            acc = (acc & 0xffff_ffff) + (acc >> 32);
        }
        // Truncation is the point: the loop above folded to 32 bits.
        #[allow(clippy::cast_possible_truncation)]
        let r = acc as u32;
        r
    }

    /// Fold a 32-bit partial sum to 16 bits and complement it.
    pub fn fold(mut s: u32) -> u16 {
        while s > 0xffff {
            s = (s & 0xffff) + (s >> 16);
        }
        // s <= 0xffff after folding.
        #[allow(clippy::cast_possible_truncation)]
        let r = !(s as u16);
        r
    }

    /// The checksum of `data`.
    pub fn checksum(data: &[u8]) -> u16 {
        fold(sum(data))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn helpers_never_panic_out_of_range() {
        let mut b = [1u8, 2, 3];
        assert_eq!(get_u16(&b, 2), 0);
        assert_eq!(get_u32(&b, usize::MAX), 0);
        set_u32(&mut b, 1, 7);
        set_u16(&mut b, usize::MAX, 7);
        assert_eq!(b, [1, 2, 3]);
        assert_eq!(get_u16(&b, 1), 0x0203);
    }

    #[test]
    fn checksum_rfc1071_example() {
        // RFC 1071 §3 example bytes 00 01 f2 03 f4 f5 f6 f7: sum ddf2, checksum 220d.
        let d = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(checksum::checksum(&d), !0xddf2);
    }
}
