//! The one safe layer over DPDK. Every raw pointer the gateway touches lives in this crate
//! (and in `dpdk-sys` below it); the dataplane above sees owned values:
//!
//! - [`Eal`]: the environment abstraction layer, initialised once per process from an
//!   argument list; a token every handle holds, cleaned up when the last one is dropped;
//! - [`Mempool`]: a packet-buffer pool;
//! - [`Mbuf`]: an owned packet buffer, freed on drop, whose data is a byte slice;
//! - [`Burst`]: a fixed array of up to `N` owned mbufs, filled by RX and drained by TX
//!   without allocating;
//! - [`Port`]: an ethdev port (configure, start/stop, link, stats), and its queue handles
//!   [`RxQueue`] / [`TxQueue`], one per (port, queue), through which bursts move;
//! - [`Ring`]: an mbuf ring between lcores, as a [`RingProducer`] and a [`RingConsumer`]
//!   whose [`Single`] / [`Multi`] kind is the ring's concurrency flag;
//! - [`lcore`]: worker lcores and the time-stamp counter.
//!
//! Only single-segment mbufs are exposed as slices: the mempools this crate creates hold
//! a whole frame in one segment, and [`Mbuf::is_contiguous`] tells the caller when a
//! driver handed over a chain anyway.

mod burst;
mod eal;
mod error;
pub mod lcore;
mod mbuf;
mod mempool;
mod port;
mod ring;

pub use burst::Burst;
pub use eal::Eal;
pub use error::{Error, Result};
pub use mbuf::Mbuf;
pub use mempool::Mempool;
pub use port::{Link, Port, PortConfig, PortInfo, PortStats, RxQueue, TxQueue};
pub use ring::{Multi, Ring, RingConsumer, RingProducer, RingSync, Single};

/// Headroom DPDK reserves in front of the data of a fresh mbuf (`RTE_PKTMBUF_HEADROOM`).
pub const PKTMBUF_HEADROOM: u16 = dpdk_sys::RTE_PKTMBUF_HEADROOM as u16;
