//! End to end in network namespaces: two espd gateways on net_af_packet, keyed by hand with
//! espctl; hosts behind them ping (v4 and v6) and move 8 MiB over TCP through the tunnel;
//! the exception path carries ping and UDP/500 to the gateways' host stacks; per-SA counters
//! agree on both sides. The work is in `scripts/e2e-manual.sh` (also the README's demo);
//! this runs it with the binaries of this build. Needs root, as CI has.

use std::path::PathBuf;
use std::process::Command;

/// The `espctl` binary of this build's profile, beside `espd`. It is another package's
/// binary, which cargo builds for espd's tests only in a workspace run: build it (a no-op
/// when it is up to date) so the script never meets a missing or stale one.
fn espctl_binary() -> PathBuf {
    let espd = PathBuf::from(env!("CARGO_BIN_EXE_espd"));
    let profile = match espd.parent().and_then(|d| d.file_name()).and_then(|n| n.to_str()) {
        Some("debug") | None => "dev".to_string(),
        Some(dir) => dir.to_string(),
    };
    let status = Command::new(env!("CARGO"))
        .args(["build", "--quiet", "-p", "espctl", "--bin", "espctl", "--profile", &profile])
        .status()
        .expect("cargo runs");
    assert!(status.success(), "building espctl");
    espd.with_file_name("espctl")
}

#[test]
fn two_gateways_tunnel_traffic_and_exception_path() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
    let out = Command::new("bash")
        .arg(format!("{root}/scripts/e2e-manual.sh"))
        .env("ESPD", env!("CARGO_BIN_EXE_espd"))
        .env("ESPCTL", espctl_binary())
        .env("NS_TAG", format!("e2e{}", std::process::id()))
        .output()
        .expect("bash runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    print!("{stdout}");
    eprint!("{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "the end-to-end script failed (its output above says where)");
    assert!(stdout.contains("e2e: 1 passed, 0 failed"));
    assert!(stdout.contains("lost in transit: 0") || stdout.contains("lost in transit: 1"), "{stdout}");
}
