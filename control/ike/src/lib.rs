//! ISAKMP codec and a sans-IO IKEv1 engine (RFC 2407, 2408, 2409, 3706, 3947).
//!
//! Nothing here opens a socket or reads a clock: the caller feeds datagrams,
//! time and commands in, and polls datagrams, timers and events out.
#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)
)]

pub mod auth;
pub mod crypto;
pub mod engine;
pub mod keys;
pub mod msgs;
pub mod pki;
