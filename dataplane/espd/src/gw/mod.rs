//! The gateway pipeline: SA contexts built from the SA database, the per-lcore worker that
//! classifies, protects and unprotects bursts, and the packet type the ESP engine works on.

pub mod app;
pub mod flow_cache;
pub mod idle;
pub mod pkt;
pub mod sa_ctx;
pub mod sadb_guard;
pub mod stage_clock;
pub mod worker;
