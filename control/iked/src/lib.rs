//! iked: the IKEv1 daemon's shell around the sans-IO engine of the `ike`
//! crate: swanctl-style configuration, the ikectl control socket, logging
//! per subsystem, and Wireshark key logs.
//!
//! The engine loop ([`driver`]: UDP sockets on 500/4500, the manager's deadlines) drives the
//! [`manager::Manager`], which runs the SA lifecycle and installs into the
//! SA database through [`sadb_writer`]; the control socket reaches it through
//! [`daemon::EngineControl`].
#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)
)]

pub mod cli;
pub mod config;
pub mod ctl;
pub mod daemon;
pub mod driver;
pub mod keylog;
pub mod logging;
pub mod manager;
pub mod metrics;
pub mod sadb_writer;
