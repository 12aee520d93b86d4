//! Drop reasons: one small `Copy` code per rejected packet, usable as a counter index.

/// Why a packet was dropped. `#[repr(u8)]`, so `reason as usize` indexes a per-core counter
/// array of [`DropReason::COUNT`] entries.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// No SA for the SPI (the caller's lookup failed; kept here so callers share one enum).
    NoSa = 0,
    /// Sequence number is a duplicate or left of the replay window.
    Replay,
    /// ICV verification failed.
    Auth,
    /// Padding bytes are not 1, 2, 3, ... or pad length exceeds the payload (RFC 4303 §2.4).
    BadPad,
    /// Packet too short or its length does not fit the algorithm's block/ICV layout.
    BadLength,
    /// Decapsulated inner packet does not match the SA's traffic selectors (RFC 4301 §5.2).
    SelectorMismatch,
    /// Outbound 32-bit sequence number would wrap: the SA must be rekeyed (RFC 4303 §3.3.3).
    SeqOverflow,
    /// Outer header malformed (version, header length, truncated).
    BadOuterHeader,
    /// Protocol is not ESP (or UDP-encapsulated ESP on the SA's port).
    NotEsp,
    /// SPI in the packet differs from the SA's SPI.
    SpiMismatch,
    /// Next header in the trailer is not one this SA's mode accepts (e.g. 59 dummy packet, RFC 4303 §2.6).
    BadNextHeader,
    /// Inner packet header invalid (version, length, IPv4 checksum).
    BadInnerHeader,
    /// Not enough headroom or tailroom in the buffer to encapsulate.
    NoRoom,
    /// Outer ECN was CE but inner was Not-ECT: RFC 6040 §4.2 says drop.
    EcnDrop,
    /// Outer address family or mode not supported for this packet.
    Unsupported,
    /// The crypto backend failed for a reason other than authentication.
    CryptoError,
    /// A NAT-T keepalive (RFC 3948 §2.3) or IKE packet on the UDP port: not ESP, hand to IKE.
    NatKeepalive,
}

impl DropReason {
    /// Number of variants, for sizing counter arrays.
    pub const COUNT: usize = DropReason::NatKeepalive as usize + 1;

    /// Short name for counters and logs.
    pub const fn name(self) -> &'static str {
        match self {
            DropReason::NoSa => "no-sa",
            DropReason::Replay => "replay",
            DropReason::Auth => "auth",
            DropReason::BadPad => "bad-pad",
            DropReason::BadLength => "bad-length",
            DropReason::SelectorMismatch => "selector-mismatch",
            DropReason::SeqOverflow => "seq-overflow",
            DropReason::BadOuterHeader => "bad-outer-header",
            DropReason::NotEsp => "not-esp",
            DropReason::SpiMismatch => "spi-mismatch",
            DropReason::BadNextHeader => "bad-next-header",
            DropReason::BadInnerHeader => "bad-inner-header",
            DropReason::NoRoom => "no-room",
            DropReason::EcnDrop => "ecn-drop",
            DropReason::Unsupported => "unsupported",
            DropReason::CryptoError => "crypto-error",
            DropReason::NatKeepalive => "nat-keepalive",
        }
    }
}

impl core::fmt::Display for DropReason {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
    }
}
