//! Interop against strongSwan (tier 5): runs `tests/interop/strongswan.sh`,
//! which needs root, network namespaces and charon (`scripts/setup.sh` installs it; CI
//! runs as root). Missing prerequisites fail the test rather than skip it.

use std::path::PathBuf;
use std::process::Command;

#[test]
fn strongswan_interop() {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/interop/strongswan.sh");
    // A target directory of its own: the outer `cargo test` may hold the
    // lock of the main one while the script builds the driver.
    let target = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("interop-target");
    let out = Command::new("bash").arg(&script).env("CARGO_TARGET_DIR", target).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    print!("{stdout}");
    eprint!("{}", String::from_utf8_lossy(&out.stderr));
    match out.status.code() {
        Some(0) => assert!(stdout.contains(" passed, 0 failed")),
        Some(77) => panic!("prerequisites missing (root, ip netns, charon): run scripts/setup.sh as root"),
        other => panic!("interop failed: {other:?}"),
    }
}
