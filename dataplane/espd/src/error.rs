//! Why espd could not run, for every way it runs (the gateway, io forwarding, the bench).

use std::fmt;

/// Why espd could not run.
#[derive(Debug)]
pub enum RunError {
    /// The set-up is wrong (ports, lcores); the message says what to change.
    Config(String),
    /// A DPDK call failed.
    Dpdk(dpdk::Error),
}

impl RunError {
    /// A set-up error with its message.
    pub fn config(m: impl Into<String>) -> RunError {
        RunError::Config(m.into())
    }
}

impl fmt::Display for RunError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RunError::Config(m) => f.write_str(m),
            RunError::Dpdk(e) => write!(f, "{e}"),
        }
    }
}

impl From<dpdk::Error> for RunError {
    fn from(e: dpdk::Error) -> Self {
        RunError::Dpdk(e)
    }
}
