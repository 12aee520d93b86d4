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
pub mod mixed;
pub mod replay;
pub mod sa;
pub mod wire;

pub use buffer::{PacketBuffer, VecBuffer};
pub use drop::DropReason;
pub use esp_inb::{decap, decap_burst, decap_burst_multi};
pub use esp_outb::{encap, encap_burst, encap_burst_multi};
pub use mixed::{decap_mixed, encap_mixed, SaTable};
pub use sa::{InboundSa, OutboundSa, SaConfig, WarmLevel};

/// Largest burst the batched API processes at once.
pub const MAX_BURST: usize = 64;

/// The chunking of the one-SA burst functions: `bufs` and `results` (up to the shorter of the
/// two) in chunks of at most [`MAX_BURST`], each through `chunk`; returns the good packets.
fn for_each_chunk<B>(
    bufs: &mut [B],
    results: &mut [Result<(), DropReason>],
    mut chunk: impl FnMut(&mut [B], &mut [Result<(), DropReason>]) -> usize,
) -> usize {
    let n = bufs.len().min(results.len());
    let (Some(bufs), Some(results)) = (bufs.get_mut(..n), results.get_mut(..n)) else {
        return 0;
    };
    bufs.chunks_mut(MAX_BURST).zip(results.chunks_mut(MAX_BURST)).map(|(b, r)| chunk(b, r)).sum()
}

/// The grouping loop of the multi-SA burst functions: runs of consecutive packets of one SA
/// (`sa_of[i]` indexes `sas`), at most [`MAX_BURST`] long, go through `per_sa` together;
/// packets whose index is missing or out of range get [`DropReason::NoSa`]. Returns the
/// number of good packets.
fn for_each_sa_run<S, B: PacketBuffer>(
    sas: &mut [S],
    sa_of: &[usize],
    bufs: &mut [B],
    results: &mut [Result<(), DropReason>],
    mut per_sa: impl FnMut(&mut S, &mut [B], &mut [Result<(), DropReason>]) -> usize,
) -> usize {
    let n = bufs.len().min(results.len());
    let mut good = 0;
    let mut start = 0;
    while start < n {
        let k = sa_of.get(start).copied();
        let mut end = start + 1;
        while end < n && end - start < MAX_BURST && sa_of.get(end).copied() == k {
            end += 1;
        }
        let (Some(b), Some(r)) = (bufs.get_mut(start..end), results.get_mut(start..end)) else {
            break;
        };
        match k.and_then(|k| sas.get_mut(k)) {
            Some(sa) => good += per_sa(sa, b, r),
            None => r.fill(Err(DropReason::NoSa)),
        }
        start = end;
    }
    good
}
