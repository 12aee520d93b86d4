//! The records of the region, as both processes see them. Everything here is
//! `#[repr(C)]`, fixed-size and free of padding (checked at compile time by `bytemuck`),
//! so the same bytes mean the same thing to `iked`, `espctl` and `espd`. Changing any of
//! it means bumping [`ABI_VERSION`].
//!
//! Enumerations are stored as `u8` codes; a code a reader does not know is an invalid
//! record (the SA is not used), never a panic.

use bytemuck::{Pod, Zeroable};

/// First eight bytes of every region.
pub const MAGIC: [u8; 8] = *b"ESPGWSDB";
/// Version of the layout and of the records below, and of the rules that key them: since
/// version 3 an outbound SA is keyed by SPI and destination, so several outbound SAs may
/// share an SPI (a version 2 writer would take any of them for the one with that SPI).
/// Version 4 replaced the compiled interval classifier in the policy banks with hash tables
/// of candidate lists and per-classifier tables of prefix lengths, updated in place.
pub const ABI_VERSION: u32 = 4;

/// Direction of an SA or a policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Direction {
    /// Traffic arriving from the peer (decapsulate).
    In = 1,
    /// Traffic leaving for the peer (encapsulate).
    Out = 2,
}

/// ESP mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum SaMode {
    /// A new outer IP header (RFC 4303 §3.1.2).
    Tunnel = 1,
    /// ESP between the IP header and its payload (RFC 4303 §3.1.1).
    Transport = 2,
}

/// Encryption algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Cipher {
    /// NULL encryption (RFC 2410), with an integrity algorithm.
    Null = 1,
    /// AES-CBC (RFC 3602), 16, 24 or 32 byte key, with an integrity algorithm.
    AesCbc = 2,
    /// AES-GCM with a 16-byte ICV (RFC 4106), 16, 24 or 32 byte key plus 4 bytes of salt.
    AesGcm16 = 3,
}

/// Integrity algorithm (none for AES-GCM).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Integ {
    /// None: only with AES-GCM.
    None = 0,
    /// HMAC-SHA1-96 (RFC 2404), 20-byte key.
    HmacSha1_96 = 1,
    /// HMAC-SHA-256-128 (RFC 4868), 32-byte key.
    HmacSha256_128 = 2,
    /// HMAC-SHA-384-192 (RFC 4868), 48-byte key.
    HmacSha384_192 = 3,
    /// HMAC-SHA-512-256 (RFC 4868), 64-byte key.
    HmacSha512_256 = 4,
}

/// Crypto implementation the dataplane should use for an SA.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Backend {
    /// The dataplane's default (ipsec-mb on x86-64).
    Default = 0,
    /// Intel's multi-buffer library.
    IpsecMb = 1,
    /// Pure Rust.
    Rust = 2,
}

/// What a policy does with matching traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Action {
    /// Forward in the clear.
    Bypass = 1,
    /// Drop (counted).
    Discard = 2,
    /// Protect with the SA of the policy's reqid (outbound), or require it (inbound).
    Protect = 3,
}

macro_rules! code_enum {
    ($t:ty { $($v:ident),* }) => {
        impl $t {
            /// The enum for a stored code, if the code is known.
            pub fn from_code(c: u8) -> Option<Self> {
                $( if c == <$t>::$v as u8 { return Some(<$t>::$v); } )*
                None
            }
        }
    };
}
code_enum!(Direction { In, Out });
code_enum!(SaMode { Tunnel, Transport });
code_enum!(Cipher { Null, AesCbc, AesGcm16 });
code_enum!(Integ { None, HmacSha1_96, HmacSha256_128, HmacSha384_192, HmacSha512_256 });
code_enum!(Backend { Default, IpsecMb, Rust });
code_enum!(Action { Bypass, Discard, Protect });

/// SA flag: 64-bit extended sequence numbers (RFC 4304).
pub const SA_FLAG_ESN: u8 = 1 << 0;
/// SA flag: ESP in UDP (RFC 3948), with `encap_sport`/`encap_dport`.
pub const SA_FLAG_UDP_ENCAP: u8 = 1 << 1;
/// SA flag: no anti-replay check (only when the SA says so; `replay_window` is then 0).
pub const SA_FLAG_NO_REPLAY: u8 = 1 << 2;
/// SA flag: set DF on the outer IPv4 header (otherwise copied from the inner header).
pub const SA_FLAG_DF: u8 = 1 << 3;
/// Every SA flag this version knows.
pub const SA_FLAGS_KNOWN: u8 = SA_FLAG_ESN | SA_FLAG_UDP_ENCAP | SA_FLAG_NO_REPLAY | SA_FLAG_DF;

/// A traffic selector: an address range (a subnet is the range it covers), an IP protocol
/// (0: any) and a port range. IPv4 addresses sit in the first four bytes.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Pod, Zeroable, Default)]
pub struct Selector {
    /// First address of the range.
    pub addr_start: [u8; 16],
    /// Last address of the range.
    pub addr_end: [u8; 16],
    /// 4 or 6 (0: the selector is unset and matches nothing).
    pub family: u8,
    /// IP protocol, 0 for any.
    pub proto: u8,
    /// Reserved, zero.
    pub _pad: [u8; 2],
    /// First port.
    pub port_start: u16,
    /// Last port.
    pub port_end: u16,
}

/// One SA's configuration: written by the control side, read by the dataplane.
#[repr(C)]
#[derive(Clone, Copy, PartialEq, Eq, Pod, Zeroable)]
pub struct SaConfig {
    /// Security parameter index, host byte order.
    pub spi: u32,
    /// Links the SA to its policies (same reqid), as in xfrm.
    pub reqid: u32,
    /// [`Direction`] code.
    pub direction: u8,
    /// [`SaMode`] code.
    pub mode: u8,
    /// Outer address family, 4 or 6.
    pub family: u8,
    /// `SA_FLAG_*` bits.
    pub flags: u8,
    /// [`Cipher`] code.
    pub cipher: u8,
    /// Encryption key length in bytes (16, 24 or 32 for AES, 0 for NULL).
    pub cipher_key_len: u8,
    /// [`Integ`] code.
    pub integ: u8,
    /// Integrity key length in bytes.
    pub integ_key_len: u8,
    /// [`Backend`] code.
    pub backend: u8,
    /// Outer TTL / hop limit (0: 64).
    pub ttl: u8,
    /// Outer DSCP: 0..=63, or 0xff to copy the inner one (RFC 6040 normal mode for ECN).
    pub dscp: u8,
    /// Reserved, zero.
    pub _pad0: u8,
    /// Anti-replay window in packets (0 with `SA_FLAG_NO_REPLAY`).
    pub replay_window: u32,
    /// UDP source port for `SA_FLAG_UDP_ENCAP` (ours when outbound).
    pub encap_sport: u16,
    /// UDP destination port for `SA_FLAG_UDP_ENCAP`.
    pub encap_dport: u16,
    /// Outer source address (tunnel) or our address (transport).
    pub src: [u8; 16],
    /// Outer destination address (tunnel) or the peer's address (transport). Inbound SAs
    /// are also found by it when the region indexes by SPI and destination.
    pub dst: [u8; 16],
    /// Traffic selector on our side (inner source when outbound, inner destination when
    /// inbound).
    pub ts_local: Selector,
    /// Traffic selector on the peer's side.
    pub ts_remote: Selector,
    /// Encryption key (first `cipher_key_len` bytes).
    pub cipher_key: [u8; 32],
    /// AES-GCM salt (RFC 4106 §4).
    pub salt: [u8; 4],
    /// Reserved, zero.
    pub _pad1: [u8; 8],
    /// Integrity key (first `integ_key_len` bytes).
    pub integ_key: [u8; 64],
    /// Soft lifetime in bytes (0: none): an event asks the control side to rekey.
    pub soft_bytes: u64,
    /// Hard lifetime in bytes (0: none): the SA stops being used.
    pub hard_bytes: u64,
    /// Soft lifetime in packets (0: none).
    pub soft_packets: u64,
    /// Hard lifetime in packets (0: none).
    pub hard_packets: u64,
    /// When the SA was added, in seconds since the Unix epoch.
    pub added_unix: u64,
}

impl SaConfig {
    /// Overwrites the keys of this copy (encryption key, salt, integrity key) with zeros,
    /// with writes the compiler keeps (`zeroize`). `SaConfig` is the shared-memory record and
    /// `Copy`, so it cannot wipe itself on drop: whoever copies one out of the region calls
    /// this when done with it ([`crate::SaEntry`] does so in its `Drop`).
    pub fn wipe_keys(&mut self) {
        use zeroize::Zeroize;
        self.cipher_key.zeroize();
        self.salt.zeroize();
        self.integ_key.zeroize();
    }
}

impl std::fmt::Debug for SaConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Keys are never printed.
        f.debug_struct("SaConfig")
            .field("spi", &format_args!("{:#010x}", self.spi))
            .field("reqid", &self.reqid)
            .field("direction", &self.direction)
            .field("mode", &self.mode)
            .field("family", &self.family)
            .field("flags", &self.flags)
            .field("cipher", &self.cipher)
            .field("integ", &self.integ)
            .finish_non_exhaustive()
    }
}

/// A security policy: selectors, an action, a priority (lower wins, then the older).
/// IPv4 addresses sit in the first four bytes.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Pod, Zeroable)]
pub struct PolicyConfig {
    /// Identifier chosen by the writer (unique among live policies).
    pub id: u32,
    /// Lower values are tried first.
    pub priority: u32,
    /// The SA link for [`Action::Protect`].
    pub reqid: u32,
    /// [`Direction`] code.
    pub direction: u8,
    /// [`Action`] code.
    pub action: u8,
    /// 4 or 6.
    pub family: u8,
    /// IP protocol, 0 for any.
    pub proto: u8,
    /// Source prefix.
    pub src: [u8; 16],
    /// Destination prefix.
    pub dst: [u8; 16],
    /// Source prefix length.
    pub src_plen: u8,
    /// Destination prefix length.
    pub dst_plen: u8,
    /// Reserved, zero.
    pub _pad: [u8; 2],
    /// Source port range (inclusive).
    pub sport: [u16; 2],
    /// Destination port range (inclusive).
    pub dport: [u16; 2],
    /// Reserved, zero.
    pub _pad2: u32,
}

/// Kinds of [`Event`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum EventKind {
    /// The soft byte or packet lifetime was reached: rekey.
    SoftExpire = 1,
    /// The hard lifetime was reached: the dataplane stopped using the SA.
    HardExpire = 2,
    /// The outbound sequence number is close to its limit: rekey now.
    SeqNearOverflow = 3,
    /// Outbound traffic hit a Protect policy that has no SA: negotiate one.
    Acquire = 4,
}
code_enum!(EventKind { SoftExpire, HardExpire, SeqNearOverflow, Acquire });

/// A message from the dataplane to the control side, 64 bytes.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Pod, Zeroable)]
pub struct Event {
    /// [`EventKind`] code.
    pub kind: u8,
    /// Address family of `src`/`dst` (acquire).
    pub family: u8,
    /// IP protocol (acquire).
    pub proto: u8,
    /// Reserved, zero.
    pub _pad: u8,
    /// SPI of the SA (expiry events).
    pub spi: u32,
    /// SA slot (expiry events).
    pub slot: u32,
    /// reqid of the SA or policy.
    pub reqid: u32,
    /// Bytes or packets reached (expiry), or the sequence number (overflow).
    pub value: u64,
    /// Packet source (acquire).
    pub src: [u8; 16],
    /// Packet destination (acquire).
    pub dst: [u8; 16],
    /// Source port (acquire).
    pub sport: u16,
    /// Destination port (acquire).
    pub dport: u16,
    /// Policy id (acquire).
    pub policy: u32,
}

const _: () = assert!(std::mem::size_of::<Event>() == 64);
const _: () = assert!(std::mem::size_of::<SaConfig>().is_multiple_of(8));
const _: () = assert!(std::mem::size_of::<PolicyConfig>().is_multiple_of(8));
