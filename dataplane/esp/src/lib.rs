//! ESP (RFC 4303) engine for the gateway's dataplane.
//!
//! This crate knows nothing of DPDK: it works on byte buffers through the [`PacketBuffer`]
//! trait (a data area with headroom and tailroom, which a DPDK mbuf provides). It contains:
//!
//! - [`wire`]: zero-copy, no-panic views of Ethernet, IPv4, IPv6, UDP and ESP;
//! - [`replay`]: the RFC 6479 anti-replay window with RFC 4303 Appendix A ESN inference;
//! - [`crypto`]: the crypto backend trait and the pure-Rust backend;
//! - [`sa`]: SA configuration and the per-direction runtime contexts;
//! - [`esp_outb`] / [`esp_inb`]: encapsulation and decapsulation, single packet and burst.
//!
//! Every rejected packet gets a [`DropReason`]. Nothing here allocates per packet or panics on
//! hostile input.
#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)
)]

pub mod buffer;
pub mod crypto;
mod drop;
pub mod esp_inb;
pub mod esp_outb;
pub mod replay;
pub mod sa;
pub mod wire;

pub use buffer::{PacketBuffer, VecBuffer};
pub use drop::DropReason;
pub use esp_inb::{decap, decap_burst, decap_burst_multi};
pub use esp_outb::{encap, encap_burst, encap_burst_multi};
pub use sa::{InboundSa, OutboundSa, SaConfig};

/// Largest burst the batched API processes at once.
pub const MAX_BURST: usize = 64;
