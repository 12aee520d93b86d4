//! `espd`, the poll-mode ESP gateway. This library is the gateway: command line and
//! configuration (`cli`, `config`), the gateway's workers and their staged burst pipeline
//! (`gw`: classification, policy and SA lookup, the ESP engine across SAs, routing, TX),
//! its neighbours, routes and ICMP (`net`), counters, and testpmd's io forwarding as a
//! baseline (`fwd`). DPDK is reached only through the safe `dpdk` crate.
//!
//! Two things are not in it. The built-in traffic source of `espd bench` is a module of the
//! `espd` binary (`src/bench/`), built with the default feature `bench`: it drives the
//! workers through their public stages (`gw::worker::Worker::receive`, `run_stages`,
//! `end_iteration`) and `gw::app::build`, and `--no-default-features` builds the gateway
//! without it. `espctl`, which keys SAs by hand, is a package of its own beside the SA
//! database (`dataplane/espctl`).

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod cli;
pub mod config;
pub mod counters;
pub mod error;
pub mod fwd;
pub mod gw;
pub mod host;
pub mod net;
pub mod notify;
pub mod pcap;
pub mod port_status;
pub mod stats;
