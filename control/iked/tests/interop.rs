//! Interoperability with strongSwan: our gateway (`espd` + `iked`) against Debian's charon
//! (userspace ESP, so every case runs over NAT-T) in network namespaces. The work is in
//! `scripts/interop.sh`; this runs its CI subset (`--quick`: both initiators, Main and
//! Aggressive Mode, MODP/ECP/Curve25519, GCM and CBC+HMAC, PFS, IPv4 and IPv6) with the
//! binaries of this build. The full matrix and its latest results: docs/interop.md.

use std::path::PathBuf;
use std::process::Command;

fn bin(name: &str) -> PathBuf {
    let path = PathBuf::from(env!("CARGO_BIN_EXE_iked")).with_file_name(name);
    if !path.exists() {
        let status = Command::new(env!("CARGO"))
            .args(["build", "-p", "espd", "--bin", name])
            .status()
            .expect("cargo runs");
        assert!(status.success(), "building {name}");
    }
    path
}

#[test]
fn strongswan_matrix_subset() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
    let out = Command::new("bash")
        .arg(format!("{root}/scripts/interop.sh"))
        .arg("--quick")
        .env("IKED", env!("CARGO_BIN_EXE_iked"))
        .env("IKECTL", env!("CARGO_BIN_EXE_ikectl"))
        .env("ESPD", bin("espd"))
        .env("ESPCTL", bin("espctl"))
        .env("NS_TAG", format!("sw{}", std::process::id()))
        .output()
        .expect("bash runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    print!("{stdout}");
    eprint!("{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "interop.sh --quick failed (its output above says where)");
    assert!(stdout.contains("interop (quick): 7 passed, 0 failed"), "{stdout}");
    assert!(stdout.contains("ESP in UDP: True 4500 True"), "the NAT case saw NAT-T at work");
    assert_eq!(stdout.matches("mirrored").count(), 4, "every matrix case compared both sides' SAs");
    assert!(stdout.contains("ESP packets decrypted with a good ICV"), "tshark checked the wire");
}
