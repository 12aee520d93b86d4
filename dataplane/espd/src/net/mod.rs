//! The gateway's L2/L3 slow path: interface addresses, the neighbour table, ARP, IPv6
//! neighbour discovery, ICMP echo and "packet too big", routes, and the classifier that
//! decides what a received frame is for.
//!
//! Everything here is pure Rust over byte slices: a frame is an mbuf's data, starting at the
//! Ethernet header, untagged (802.1Q frames are classified as ignored, not parsed).
//!
//! Contract, for every module: functions that take received bytes never panic and never read
//! past the slice, whatever the bytes are (the lints below forbid indexing and unwrapping
//! outside tests); functions used per packet do not allocate, lock or make system calls.
//! Functions that build frames write into a caller's buffer and return the length written, or
//! `None` when the buffer is too small. The only allocating functions are the ones that build
//! tables ([`route::RouteTable::new`], [`neigh::NeighborTable::with_capacity`]) and snapshots
//! for display ([`neigh::NeighborTable::entries`]); they run on the main thread.
//!
//! See `docs/espd-slowpath.md` for how the worker loop uses these pieces.

#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

pub mod addr;
pub mod arp;
pub mod checksum;
pub mod classify;
pub mod ethernet;
pub mod icmp;
pub mod nd;
pub mod neigh;
pub mod route;

pub use ethernet::Mac;
