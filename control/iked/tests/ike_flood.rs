//! A spoofed phase-1 flood (10,000 Main Mode message-1s per second from random addresses,
//! for 10 s) against iked while a `%any` road warrior and a configured branch each bring a
//! tunnel up: both must be up within 5 s, iked's memory bounded (`scripts/ike-flood.sh`).
//! Needs root and network namespaces, as CI has.

use std::process::Command;

mod common;
use common::bin;

#[test]
fn spoofed_main_mode_flood_leaves_room_for_real_peers() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
    let out = Command::new("bash")
        .arg(format!("{root}/scripts/ike-flood.sh"))
        .args(["10000", "10"])
        .env("IKED", env!("CARGO_BIN_EXE_iked"))
        .env("IKECTL", env!("CARGO_BIN_EXE_ikectl"))
        .env("IKE_LOAD", bin("ike-load"))
        .output()
        .expect("bash runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    print!("{stdout}");
    eprint!("{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "ike-flood.sh failed (its output above says where)");
    assert!(stdout.contains("ike-flood: 1 passed, 0 failed"), "{stdout}");
    for peer in ["road-warrior", "branch"] {
        assert!(stdout.contains(&format!("flood: {peer}: 1 of 1 tunnel up within 5 s")), "{peer}: {stdout}");
    }
}
