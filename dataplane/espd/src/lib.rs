//! `espd`, the poll-mode ESP gateway. This crate holds the application: command line,
//! worker loops, counters. DPDK is reached only through the safe `dpdk` crate.
//!
//! Today it forwards frames between ports as testpmd's io mode does (the baseline every
//! later stage is measured against); the ESP pipeline plugs into the same worker loop.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod bench;
pub mod cli;
pub mod config;
pub mod counters;
pub mod espctl;
pub mod fwd;
pub mod gw;
pub mod net;
pub mod pcap;
pub mod stats;
