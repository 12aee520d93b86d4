//! The Internet checksum (RFC 1071), the IPv4/IPv6 pseudo-headers that ICMPv6, UDP and TCP
//! include in it, and the incremental update of RFC 1624.
//!
//! Sums are kept unfolded in a `u64` so that no realistic packet overflows them; [`finish`]
//! folds and complements.

use std::net::{Ipv4Addr, Ipv6Addr};

/// Adds `data` to a running one's-complement sum (RFC 1071 §4.1), an odd final byte padded
/// with a zero byte on the right.
pub fn add(mut sum: u64, data: &[u8]) -> u64 {
    // 32-bit big-endian words: their sum folds to the same 16-bit value as the sum of the
    // 16-bit words (RFC 1071 §2(C): the sum may be computed in wider words), in half the steps.
    let mut quads = data.chunks_exact(4);
    for q in &mut quads {
        if let [a, b, c, d] = q {
            sum += u64::from(u32::from_be_bytes([*a, *b, *c, *d]));
        }
    }
    match quads.remainder() {
        [a, b, c] => sum + u64::from(u16::from_be_bytes([*a, *b])) + (u64::from(*c) << 8),
        [a, b] => sum + u64::from(u16::from_be_bytes([*a, *b])),
        [a] => sum + (u64::from(*a) << 8),
        _ => sum,
    }
}

/// Folds a running sum to 16 bits and complements it: the value to put in a checksum field.
pub fn finish(mut sum: u64) -> u16 {
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    // Truncation is exact: the loop leaves at most 16 bits.
    !(sum as u16)
}

/// The checksum of `data` alone (the IPv4 header, ICMPv4).
pub fn checksum(data: &[u8]) -> u16 {
    finish(add(0, data))
}

/// `true` when `data`, checksum field included, sums to all ones (RFC 1071 §1(2)).
pub fn verify(data: &[u8]) -> bool {
    checksum(data) == 0
}

/// The IPv4 pseudo-header sum (RFC 768, RFC 793 §3.1): addresses, protocol, upper-layer length.
pub fn pseudo_header_v4(src: Ipv4Addr, dst: Ipv4Addr, protocol: u8, length: u16) -> u64 {
    let s = add(add(0, &src.octets()), &dst.octets());
    s + u64::from(protocol) + u64::from(length)
}

/// The IPv6 pseudo-header sum (RFC 8200 §8.1): addresses, 32-bit upper-layer length, next
/// header.
pub fn pseudo_header_v6(src: Ipv6Addr, dst: Ipv6Addr, next_header: u8, length: u32) -> u64 {
    let s = add(add(0, &src.octets()), &dst.octets());
    s + u64::from(length >> 16) + u64::from(length & 0xffff) + u64::from(next_header)
}

/// RFC 1624 eqn. 3: the new checksum after one 16-bit word of the covered data changed from
/// `old` to `new`: `HC' = ~(~HC + ~m + m')`. Unlike eqn. 2 it never yields `0x0000` for a
/// non-zero sum, as RFC 1624 §3 explains.
pub fn update_word(checksum: u16, old: u16, new: u16) -> u16 {
    let sum = u64::from(!checksum) + u64::from(!old) + u64::from(new);
    finish(sum)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    /// RFC 1071 §3 example: the bytes 00 01 f2 03 f4 f5 f6 f7 sum to 0xddf2.
    #[test]
    fn rfc1071_example() {
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(finish(add(0, &data)), !0xddf2);
    }

    /// A real IPv4 header (Wikipedia's "IPv4 header checksum" example) with checksum 0xb861.
    #[test]
    fn ipv4_header_known_answer() {
        let mut h = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00, 0xc0, 0xa8, 0x00, 0x01,
            0xc0, 0xa8, 0x00, 0xc7,
        ];
        assert_eq!(checksum(&h), 0xb861);
        h[10..12].copy_from_slice(&0xb861u16.to_be_bytes());
        assert!(verify(&h));
        h[3] ^= 1;
        assert!(!verify(&h));
    }

    #[test]
    fn odd_length_pads_right() {
        assert_eq!(add(0, &[0xab]), 0xab00);
        assert_eq!(add(0, &[0x12, 0x34, 0x56]), 0x1234 + 0x5600);
    }

    #[test]
    fn incremental_matches_recompute() {
        // Change each word of a buffer in turn, to awkward values, and compare with a recompute.
        let mut data: Vec<u8> = (0..64u8).map(|i| i.wrapping_mul(37).wrapping_add(11)).collect();
        let mut csum = checksum(&data);
        for (i, new) in
            [0x0000u16, 0xffff, 0x0800, 0x1234, 0xfffe, 0x0001].iter().cycle().take(32).enumerate()
        {
            let at = (i * 2) % data.len();
            let old = u16::from_be_bytes([data[at], data[at + 1]]);
            data[at..at + 2].copy_from_slice(&new.to_be_bytes());
            csum = update_word(csum, old, *new);
            // The two results may differ only as +0 / -0 (0x0000 vs 0xffff) of one's complement.
            let full = checksum(&data);
            assert!(csum == full || (csum, full) == (0xffff, 0) || (csum, full) == (0, 0xffff), "{i}");
        }
    }
}
