//! The ikectl control channel: protocol types, the server task inside iked,
//! the client used by `ikectl`, and the human-readable formatting.

pub mod client;
pub mod format;
pub mod protocol;
pub mod server;

#[cfg(test)]
mod tests;

pub use protocol::*;
pub use server::{ControlHandler, ServerCounters};
