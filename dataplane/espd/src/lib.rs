//! `espd`, the poll-mode ESP gateway. This crate holds the application: command line and
//! configuration (`cli`, `config`), the gateway's workers and their staged burst pipeline
//! (`gw`: classification, policy and SA lookup, the ESP engine across SAs, routing, TX),
//! its neighbours, routes and ICMP (`net`), counters, the built-in traffic source of
//! `espd bench` (`bench`) and testpmd's io forwarding as a baseline (`fwd`). DPDK is reached
//! only through the safe `dpdk` crate. `espctl`, which keys SAs by hand, is a package of its
//! own beside the SA database (`dataplane/espctl`).

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod bench;
pub mod cli;
pub mod config;
pub mod counters;
pub mod error;
pub mod fwd;
pub mod gw;
pub mod net;
pub mod pcap;
pub mod stats;
