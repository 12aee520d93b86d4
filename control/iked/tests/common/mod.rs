//! What the tests that run the whole gateway (espd and iked in namespaces) share.

use std::path::PathBuf;
use std::process::Command;

/// The workspace's binaries next to this build's `iked`; espd/espctl (and ike-load) are
/// built when a filtered test run did not build them.
pub fn bin(name: &str) -> PathBuf {
    let path = PathBuf::from(env!("CARGO_BIN_EXE_iked")).with_file_name(name);
    if !path.exists() {
        let package = match name {
            "ike-load" | "espctl" => name,
            _ => "espd",
        };
        let status = Command::new(env!("CARGO"))
            .args(["build", "-p", package, "--bin", name])
            .status()
            .expect("cargo runs");
        assert!(status.success(), "building {name}");
    }
    path
}
